// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Xen backend: regions granted with gntalloc (libxengnttab's gntshr side)
 * and mapped by the peer with gntdev; interdomain event channels from
 * libxenevtchn.
 *
 * The gntshr, gnttab and xenstore handles are opened once per backend.
 * Every event channel gets its own xenevtchn handle so that each has its
 * own pollable fd and xenevtchn_pending() can only ever return that one
 * port.
 *
 * Threading: evch_notify may be called from any thread; evch_ack (and so
 * fivc_evch_wait()) from one thread at a time per event channel, as the
 * library requires of xenevtchn_pending(). Offer, map and destroy may run
 * concurrently on one backend. After fork() the child must not use
 * anything inherited from here (a Xen library rule), only close it.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xen/xen.h> /* needs <stdint.h> first */
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>
#include <xentoollog.h>

#include "fastivc/log.h"
#include "fastivc/shm.h"
#include "fastivc/xen_rendezvous.h"

_Static_assert(FIVC_XEN_DOMID_FIRST_RESERVED == DOMID_FIRST_RESERVED,
	       "DOMID_FIRST_RESERVED changed");

/* Upper bound on kicks consumed by one evch_ack call. */
#define XEN_ACK_MAX 64

struct xen_backend {
	struct fivc_backend be;
	xengntshr_handle *gntshr; /* /dev/xen/gntalloc: regions we offer */
	xengnttab_handle *gnttab; /* /dev/xen/gntdev: regions we map */
	struct xs_handle *xs;	  /* our domid, the rendezvous */
};

struct xen_shm {
	struct fivc_shm shm;
	bool granted;	 /* offered by us (gntshr) or mapped (gnttab) */
	uint32_t n_refs; /* pages, one grant each */
	uint32_t refs[]; /* granted: what the peer maps; mapped: a copy */
};

struct xen_evch {
	struct fivc_evch ev;
	xenevtchn_handle *xce;
	bool offered; /* describable: an unbound port waiting for the peer */
	bool bound;   /* port is valid and must be unbound on destroy */
	evtchn_port_t port;
};

static const struct fivc_backend_ops xen_ops;

static struct xen_backend *to_xb(struct fivc_backend *be)
{
	return (struct xen_backend *)be;
}

static struct xen_shm *to_xshm(struct fivc_shm *shm)
{
	return (struct xen_shm *)shm;
}

static struct xen_evch *to_xev(struct fivc_evch *ev)
{
	return (struct xen_evch *)ev;
}

/* libxen* set errno on failure; make sure a failure never reads as 0. */
static int neg_errno(int fallback)
{
	int e = errno;

	return e > 0 ? -e : -fallback;
}

/*
 * libxengnttab logs map failures at error level on its own. We return the
 * errno and the caller reports it once at the edge, so keep the library's
 * words for debugging only.
 */
static void __attribute__((format(printf, 5, 0)))
xen_tl_vmessage(struct xentoollog_logger *logger, xentoollog_level level,
		int errnoval, const char *context, const char *format,
		va_list al)
{
	char msg[256];

	(void)logger;
	(void)level;
	vsnprintf(msg, sizeof(msg), format, al);
	if (errnoval >= 0)
		pr_debug("%s: %s: %s", context ? context : "xen", msg,
			 strerror(errnoval));
	else
		pr_debug("%s: %s", context ? context : "xen", msg);
}

static void xen_tl_destroy(struct xentoollog_logger *logger)
{
	(void)logger; /* static, nothing to free */
}

static struct xentoollog_logger xen_logger = {
	.vmessage = xen_tl_vmessage,
	.progress = NULL,
	.destroy = xen_tl_destroy,
};

/* --- regions -------------------------------------------------------------- */

static void usage_add(uint64_t *v, int64_t n)
{
	__atomic_add_fetch(v, (uint64_t)n, __ATOMIC_RELAXED);
}

static void xen_shm_destroy(struct fivc_shm *shm)
{
	struct xen_shm *xs = to_xshm(shm);
	struct xen_backend *xb;

	if (!shm)
		return;
	xb = to_xb(shm->be);
	if (shm->addr) {
		/*
		 * gntalloc keeps a granted page alive until the peer unmaps
		 * it, so unsharing under a peer that still maps is safe.
		 */
		if (xs->granted)
			xengntshr_unshare(xb->gntshr, shm->addr, xs->n_refs);
		else
			xengnttab_unmap(xb->gnttab, shm->addr, xs->n_refs);
		usage_add(xs->granted ? &xb->be.usage.pages_granted
				      : &xb->be.usage.pages_mapped,
			  -(int64_t)xs->n_refs);
	}
	free(xs);
}

static struct xen_shm *xen_shm_alloc(struct fivc_backend *be, uint32_t n)
{
	struct xen_shm *xs;

	xs = calloc(1, sizeof(*xs) + (size_t)n * sizeof(xs->refs[0]));
	if (!xs)
		return NULL;
	xs->shm.be = be;
	xs->n_refs = n;
	return xs;
}

static int xen_shm_offer(struct fivc_backend *be, size_t size, uint32_t peer,
			 struct fivc_shm **out)
{
	struct xen_backend *xb = to_xb(be);
	struct xen_shm *xs;
	uint32_t n;
	void *addr;
	int err;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!size || size % FIVC_XEN_PAGE_SIZE ||
	    size / FIVC_XEN_PAGE_SIZE > FIVC_SHM_MAX_PAGES)
		return -EINVAL;
	err = fivc_xen_check_domid(peer, be->self_domid);
	if (err)
		return err;
	n = (uint32_t)(size / FIVC_XEN_PAGE_SIZE);
	xs = xen_shm_alloc(be, n);
	if (!xs)
		return -ENOMEM;
	xs->granted = true;

	errno = 0;
	addr = xengntshr_share_pages(xb->gntshr, peer, (int)n, xs->refs, 1);
	if (!addr) {
		/* ENOSPC: gntalloc's page limit or our grant table is full. */
		err = neg_errno(ENOMEM);
		pr_debug("gntshr: cannot share %u pages with domain %u: %s", n,
			 peer, strerror(-err));
		goto fail;
	}
	xs->shm.addr = addr;
	xs->shm.size = size;
	usage_add(&xb->be.usage.pages_granted, n);
	/*
	 * Linux's gntalloc hands out zeroed pages, but the interface does not
	 * promise it and the contract of shm_offer does.
	 */
	memset(addr, 0, size);
	*out = &xs->shm;
	return 0;

fail:
	xen_shm_destroy(&xs->shm);
	return err;
}

static int xen_shm_describe(struct fivc_shm *shm, struct fivc_shm_desc *d)
{
	struct xen_shm *xs = to_xshm(shm);
	uint32_t *refs;

	if (!shm || !d)
		return -EINVAL;
	/* Only the granter can tell the peer how to map. */
	if (!xs->granted || !shm->addr)
		return -EINVAL;
	/* A copy: fivc_shm_desc_clear() frees the desc's refs. */
	refs = malloc((size_t)xs->n_refs * sizeof(*refs));
	if (!refs)
		return -ENOMEM;
	memcpy(refs, xs->refs, (size_t)xs->n_refs * sizeof(*refs));
	memset(d, 0, sizeof(*d));
	d->kind = FIVC_BACKEND_XEN;
	d->size = (uint32_t)shm->size;
	d->domid = shm->be->self_domid;
	d->n_refs = xs->n_refs;
	d->refs = refs;
	d->fd = -1;
	return 0;
}

static int xen_shm_map(struct fivc_backend *be, const struct fivc_shm_desc *d,
		       struct fivc_shm **out)
{
	struct xen_backend *xb = to_xb(be);
	struct xen_shm *xs;
	void *addr;
	int err;

	if (!out)
		return -EINVAL;
	*out = NULL;
	err = fivc_xen_check_shm_desc(d, be->self_domid);
	if (err)
		return err;
	xs = xen_shm_alloc(be, d->n_refs);
	if (!xs)
		return -ENOMEM;
	/* A copy: the library wants a mutable array, the desc is const. */
	memcpy(xs->refs, d->refs, (size_t)d->n_refs * sizeof(xs->refs[0]));

	errno = 0;
	addr = xengnttab_map_domain_grant_refs(xb->gnttab, d->n_refs, d->domid,
					       xs->refs,
					       PROT_READ | PROT_WRITE);
	if (!addr) {
		/*
		 * A ref the peer never granted us, or granted read-only, fails
		 * here (gntdev: EINVAL); nothing is left mapped.
		 */
		err = neg_errno(EFAULT);
		pr_debug("gntdev: cannot map %u refs of domain %u: %s",
			 d->n_refs, d->domid, strerror(-err));
		goto fail;
	}
	xs->shm.addr = addr;
	xs->shm.size = d->size;
	usage_add(&xb->be.usage.pages_mapped, d->n_refs);
	*out = &xs->shm;
	return 0;

fail:
	xen_shm_destroy(&xs->shm);
	return err;
}

/* --- event channels ------------------------------------------------------- */

static void xen_evch_destroy(struct fivc_evch *ev)
{
	struct xen_evch *xe = to_xev(ev);

	if (!ev)
		return;
	if (xe->xce) {
		if (xe->bound) {
			xenevtchn_unbind(xe->xce, xe->port);
			usage_add(&ev->be->usage.evchs, -1);
		}
		xenevtchn_close(xe->xce);
	}
	free(xe);
}

static int xen_evch_new(struct fivc_backend *be, struct xen_evch **out)
{
	struct xen_evch *xe;
	int err;

	xe = calloc(1, sizeof(*xe));
	if (!xe)
		return -ENOMEM;
	xe->ev.be = be;
	errno = 0;
	xe->xce = xenevtchn_open(&xen_logger, 0);
	if (!xe->xce) {
		err = neg_errno(ENODEV);
		free(xe);
		return err;
	}
	*out = xe;
	return 0;
}

/* A fresh port starts unmasked in Linux, but say what we rely on. */
static int xen_evch_finish(struct xen_evch *xe, xenevtchn_port_or_error_t port)
{
	xe->port = (evtchn_port_t)port;
	xe->bound = true;
	usage_add(&xe->ev.be->usage.evchs, 1);
	if (xenevtchn_unmask(xe->xce, xe->port) < 0)
		return neg_errno(EIO);
	return 0;
}

static int xen_evch_offer(struct fivc_backend *be, uint32_t peer,
			  struct fivc_evch **out)
{
	xenevtchn_port_or_error_t port;
	struct xen_evch *xe;
	int err;

	if (!out)
		return -EINVAL;
	*out = NULL;
	err = fivc_xen_check_domid(peer, be->self_domid);
	if (err)
		return err;
	err = xen_evch_new(be, &xe);
	if (err)
		return err;
	errno = 0;
	port = xenevtchn_bind_unbound_port(xe->xce, peer);
	if (port < 0) {
		err = neg_errno(EIO);
		goto fail;
	}
	xe->offered = true;
	err = xen_evch_finish(xe, port);
	if (err)
		goto fail;
	*out = &xe->ev;
	return 0;

fail:
	xen_evch_destroy(&xe->ev);
	return err;
}

static int xen_evch_describe(struct fivc_evch *ev, struct fivc_evch_desc *d)
{
	struct xen_evch *xe = to_xev(ev);

	if (!ev || !d || !xe->offered)
		return -EINVAL;
	memset(d, 0, sizeof(*d));
	d->kind = FIVC_BACKEND_XEN;
	d->domid = ev->be->self_domid;
	d->port = xe->port;
	d->fd_wait = -1;
	d->fd_kick = -1;
	return 0;
}

static int xen_evch_bind(struct fivc_backend *be,
			 const struct fivc_evch_desc *d, struct fivc_evch **out)
{
	xenevtchn_port_or_error_t port;
	struct xen_evch *xe;
	int err;

	if (!out)
		return -EINVAL;
	*out = NULL;
	err = fivc_xen_check_evch_desc(d, be->self_domid);
	if (err)
		return err;
	err = xen_evch_new(be, &xe);
	if (err)
		return err;
	errno = 0;
	/* Xen checks the port is unbound and offered to us; EINVAL if not. */
	port = xenevtchn_bind_interdomain(xe->xce, d->domid, d->port);
	if (port < 0) {
		err = neg_errno(EIO);
		goto fail;
	}
	err = xen_evch_finish(xe, port);
	if (err)
		goto fail;
	*out = &xe->ev;
	return 0;

fail:
	xen_evch_destroy(&xe->ev);
	return err;
}

static int xen_evch_notify(struct fivc_evch *ev)
{
	struct xen_evch *xe = to_xev(ev);

	if (!ev || !xe->bound)
		return -EINVAL;
	if (xenevtchn_notify(xe->xce, xe->port) < 0)
		return neg_errno(EIO);
	return 0;
}

static int xen_evch_fd(struct fivc_evch *ev)
{
	struct xen_evch *xe = to_xev(ev);

	if (!ev || !xe->xce)
		return -EBADF;
	return xenevtchn_fd(xe->xce);
}

static int xen_evch_ack(struct fivc_evch *ev)
{
	struct xen_evch *xe = to_xev(ev);
	xenevtchn_port_or_error_t port;
	struct pollfd pfd;
	int i, n;

	if (!ev || !xe->xce)
		return -EINVAL;
	pfd.fd = xenevtchn_fd(xe->xce);
	pfd.events = POLLIN;
	/*
	 * xenevtchn_pending() may block even on an O_NONBLOCK fd (the
	 * library's own warning), so read only what poll() says is there.
	 * The kernel masks a port once it queued it, so our single port is
	 * queued at most once per unmask; the bound only stops a peer that
	 * kicks as fast as we unmask from keeping us here.
	 */
	for (i = 0; i < XEN_ACK_MAX; i++) {
		pfd.revents = 0;
		n = poll(&pfd, 1, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return neg_errno(EIO);
		}
		if (n == 0)
			break;
		if (pfd.revents & POLLNVAL)
			return -EBADF;
		if (!(pfd.revents & POLLIN))
			return -EIO;
		errno = 0;
		port = xenevtchn_pending(xe->xce);
		if (port < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			return neg_errno(EIO);
		}
		/* Re-arm: a kick that came meanwhile is delivered again. */
		if (xenevtchn_unmask(xe->xce, (evtchn_port_t)port) < 0)
			return neg_errno(EIO);
	}
	return 0;
}

/* --- backend -------------------------------------------------------------- */

static void xen_close(struct fivc_backend *be)
{
	struct xen_backend *xb = to_xb(be);

	if (!be)
		return;
	if (xb->gntshr)
		xengntshr_close(xb->gntshr);
	if (xb->gnttab)
		xengnttab_close(xb->gnttab);
	xs_close(xb->xs); /* NULL is fine */
	free(xb);
}

/*
 * gntalloc's page limit (a module parameter an admin may change at any
 * time) less what we granted: it counts every gntalloc user of this
 * domain, we only know ours.
 */
#define GNTALLOC_LIMIT "/sys/module/xen_gntalloc/parameters/limit"

static size_t xen_shm_room(struct fivc_backend *be)
{
	uint64_t granted =
		__atomic_load_n(&be->usage.pages_granted, __ATOMIC_RELAXED);
	unsigned long limit;
	FILE *f = fopen(GNTALLOC_LIMIT, "re");
	int n;

	if (!f)
		return SIZE_MAX;
	n = fscanf(f, "%lu", &limit);
	fclose(f);
	if (n != 1)
		return SIZE_MAX;
	return limit > granted ? (size_t)(limit - granted) * FIVC_XEN_PAGE_SIZE
			       : 0;
}

static const struct fivc_backend_ops xen_ops = {
	.name = "xen",
	.shm_offer = xen_shm_offer,
	.shm_describe = xen_shm_describe,
	.shm_map = xen_shm_map,
	.shm_destroy = xen_shm_destroy,
	.evch_offer = xen_evch_offer,
	.evch_describe = xen_evch_describe,
	.evch_bind = xen_evch_bind,
	.evch_notify = xen_evch_notify,
	.evch_fd = xen_evch_fd,
	.evch_ack = xen_evch_ack,
	.evch_destroy = xen_evch_destroy,
	.shm_room = xen_shm_room,
	.close = xen_close,
};

struct xs_handle *fivc_xen_backend_xs(struct fivc_backend *be)
{
	if (!be || be->ops != &xen_ops)
		return NULL;
	return to_xb(be)->xs;
}

/*
 * Append "what (reason)" to the list of what is missing. A device or
 * daemon that is not there makes the backend -ENOSYS; anything else
 * (EACCES when not root, say) is kept as the error, unless something is
 * missing too.
 */
static void note_missing(char *buf, size_t len, const char *what, int e,
			 int *err)
{
	size_t used = strlen(buf);
	int rc;

	snprintf(buf + used, len - used, "%s%s (%s)", used ? ", " : "", what,
		 strerror(e > 0 ? e : ENODEV));
	if (e <= 0 || e == ENOENT || e == ENODEV || e == ENXIO ||
	    e == ECONNREFUSED || e == ENOSYS)
		rc = -ENOSYS;
	else
		rc = -e;
	if (!*err || rc == -ENOSYS)
		*err = rc;
}

static int xen_read_self_domid(struct xs_handle *xs, uint32_t *out)
{
	unsigned int len = 0;
	uint32_t domid;
	char *s;
	int e;

	errno = 0;
	/* Relative paths are relative to our own /local/domain/<id>. */
	s = xs_read(xs, XBT_NULL, "domid", &len);
	if (!s) {
		e = errno;
		pr_warn("Xen backend unavailable: no domid in xenstore: %s",
			strerror(e > 0 ? e : EIO));
		return -ENOSYS;
	}
	if (strlen(s) != len || fivc_xrdv_parse_u32(s, &domid) ||
	    domid >= FIVC_XEN_DOMID_FIRST_RESERVED) {
		pr_warn("Xen backend unavailable: bad xenstore domid \"%.16s\"",
			s);
		free(s);
		return -EINVAL;
	}
	free(s);
	*out = domid;
	return 0;
}

int fivc_backend_open_xen(struct fivc_backend **out)
{
	xenevtchn_handle *probe;
	struct xen_backend *xb;
	char missing[256] = "";
	int err = 0;

	if (!out)
		return -EINVAL;
	*out = NULL;
	xb = calloc(1, sizeof(*xb));
	if (!xb)
		return -ENOMEM;
	xb->be.ops = &xen_ops;
	xb->be.kind = FIVC_BACKEND_XEN;
	xb->be.priv = xb;

	/* Try everything, so the one warning names all that is missing. */
	errno = 0;
	xb->gntshr = xengntshr_open(&xen_logger, 0);
	if (!xb->gntshr)
		note_missing(missing, sizeof(missing), "/dev/xen/gntalloc",
			     errno, &err);
	errno = 0;
	xb->gnttab = xengnttab_open(&xen_logger, 0);
	if (!xb->gnttab)
		note_missing(missing, sizeof(missing), "/dev/xen/gntdev", errno,
			     &err);
	/* Event channels get a handle each; only check we can open one. */
	errno = 0;
	probe = xenevtchn_open(&xen_logger, 0);
	if (probe)
		xenevtchn_close(probe);
	else
		note_missing(missing, sizeof(missing), "/dev/xen/evtchn", errno,
			     &err);
	errno = 0;
	xb->xs = xs_open(0);
	if (!xb->xs)
		note_missing(missing, sizeof(missing), "xenstore", errno, &err);
	if (err) {
		pr_warn("Xen backend unavailable: cannot open %s", missing);
		goto fail;
	}

	err = xen_read_self_domid(xb->xs, &xb->be.self_domid);
	if (err)
		goto fail;
	pr_debug("Xen backend open, domid %u", xb->be.self_domid);
	*out = &xb->be;
	return 0;

fail:
	xen_close(&xb->be);
	return err;
}
