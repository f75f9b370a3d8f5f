// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The Xen backend and rendezvous, tested without Xen.
 *
 *  1. The pure parts: names, paths, strict numbers, refs lists, key=value
 *     sets, descriptor checks, descriptor <-> key=value.
 *  2. fivc_backend_open_xen() on this very machine: -ENOSYS and one
 *     warning line when there is no Xen.
 *  3. The glue (offer/map, event channels, xenstore transactions and
 *     permissions) against a small in-process model of libxengnttab,
 *     libxenevtchn and libxenstore, with three "domains" in one process.
 *
 * The model's functions are defined here under the libraries' own names,
 * so the linker binds libfastivc's calls to them. Until mock_on is set
 * they forward to the real libraries (dlsym RTLD_NEXT), which is how part
 * 2 sees the machine as it is. The model only knows what fastivc uses; it
 * says nothing about how real Xen behaves (see the report of the commit
 * for what only a real Xen host can check).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>

#include "fastivc/log.h"
#include "fastivc/shm.h"
#include "fastivc/xen_rendezvous.h"

#define PAGE FIVC_XEN_PAGE_SIZE

static int failures;
static int case_failures;

static void check_(bool ok, const char *what, int line)
{
	if (ok)
		return;
	case_failures++;
	fprintf(stderr, "#   line %d: %s\n", line, what);
}
#define CHECK(cond) check_((cond), #cond, __LINE__)
#define CHECK_RC(call, want)                                                   \
	do {                                                                   \
		long got_ = (long)(call);                                      \
		if (got_ != (long)(want))                                      \
			fprintf(stderr, "#   %s = %ld, want %ld\n", #call,     \
				got_, (long)(want));                           \
		check_(got_ == (long)(want), #call, __LINE__);                 \
	} while (0)

static void run(const char *name, void (*fn)(void))
{
	case_failures = 0;
	fn();
	printf("%s - %s\n", case_failures ? "not ok" : "ok", name);
	fflush(stdout);
	if (case_failures)
		failures++;
}

/* --- the model of the Xen libraries --------------------------------------- */

static bool mock_on;
static uint32_t mock_domid;	   /* the "domain" whose handles are opened */
static int mock_open_errno[4];	   /* gntshr, gnttab, evtchn, xs: fail opens */
static const char *mock_domid_str; /* what xenstore "domid" holds, or NULL */
static bool mock_no_domid;	   /* xenstore has no "domid" for us */
static int mock_share_errno;	   /* share_pages fails with this */

enum { M_GNTSHR, M_GNTTAB, M_EVTCHN, M_XS };

/*
 * The real function behind one of ours. The libraries are loaded by hand:
 * with every symbol defined here, the linker (--as-needed) drops them
 * from the executable.
 */
static void *real_sym(const char *name)
{
	static const struct {
		const char *prefix, *soname;
	} libs[] = {
		{"xengnt", "libxengnttab.so.1"},
		{"xenevtchn_", "libxenevtchn.so.1"},
		{"xs_", "libxenstore.so.4"},
	};
	static void *handles[3];
	void *p = NULL;
	unsigned int i;

	for (i = 0; i < 3; i++) {
		if (strncmp(name, libs[i].prefix, strlen(libs[i].prefix)))
			continue;
		if (!handles[i])
			handles[i] =
				dlopen(libs[i].soname, RTLD_NOW | RTLD_LOCAL);
		if (handles[i])
			p = dlsym(handles[i], name);
		break;
	}
	if (!p) {
		printf("Bail out! real %s not found: %s\n", name, dlerror());
		fflush(stdout);
		abort();
	}
	return p;
}
#define REAL(fn) ((__typeof__(&fn))real_sym(#fn))

static bool mock_open_fails(int which)
{
	if (!mock_open_errno[which])
		return false;
	errno = mock_open_errno[which];
	return true;
}

/* gntshr and gnttab share one handle type in the library. */
struct xengntdev_handle {
	uint32_t domid;
};

struct mock_region {
	bool live;
	uint32_t granter, grantee, first_ref, n;
	int memfd;
	void *addr; /* the granter's mapping, NULL once unshared */
	int maps;   /* the grantee's mappings */
};

struct mock_mapping {
	void *addr;
	int region;
};

#define MOCK_REGIONS 16
static struct mock_region regions[MOCK_REGIONS];
static struct mock_mapping mappings[MOCK_REGIONS];
static uint32_t next_ref = 8; /* refs 0..7 are reserved in Xen */

static void region_put(struct mock_region *r)
{
	if (!r->addr && !r->maps) {
		close(r->memfd);
		memset(r, 0, sizeof(*r));
	}
}

xengntshr_handle *xengntshr_open(struct xentoollog_logger *logger,
				 unsigned open_flags)
{
	xengntshr_handle *h;

	if (!mock_on)
		return REAL(xengntshr_open)(logger, open_flags);
	if (mock_open_fails(M_GNTSHR))
		return NULL;
	h = calloc(1, sizeof(*h));
	if (h)
		h->domid = mock_domid;
	return h;
}

int xengntshr_close(xengntshr_handle *xgs)
{
	if (!mock_on)
		return REAL(xengntshr_close)(xgs);
	free(xgs);
	return 0;
}

void *xengntshr_share_pages(xengntshr_handle *xgs, uint32_t domid, int count,
			    uint32_t *refs, int writable)
{
	struct mock_region *r = NULL;
	void *addr;
	int i, fd;

	if (!mock_on)
		return REAL(xengntshr_share_pages)(xgs, domid, count, refs,
						   writable);
	if (mock_share_errno) {
		errno = mock_share_errno;
		return NULL;
	}
	for (i = 0; i < MOCK_REGIONS && !r; i++)
		if (!regions[i].live)
			r = &regions[i];
	if (!r || count <= 0 || !writable) {
		errno = ENOSPC;
		return NULL;
	}
	fd = memfd_create("mock-grant", MFD_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (ftruncate(fd, (off_t)count * PAGE) < 0) {
		close(fd);
		return NULL;
	}
	addr = mmap(NULL, (size_t)count * PAGE, PROT_READ | PROT_WRITE,
		    MAP_SHARED, fd, 0);
	if (addr == MAP_FAILED) {
		close(fd);
		return NULL;
	}
	/* Dirty pages, to see that the backend zeroes them itself. */
	memset(addr, 0xa5, (size_t)count * PAGE);
	r->live = true;
	r->granter = xgs->domid;
	r->grantee = domid;
	r->first_ref = next_ref;
	r->n = (uint32_t)count;
	r->memfd = fd;
	r->addr = addr;
	for (i = 0; i < count; i++)
		refs[i] = next_ref++;
	return addr;
}

int xengntshr_unshare(xengntshr_handle *xgs, void *start_address,
		      uint32_t count)
{
	int i;

	if (!mock_on)
		return REAL(xengntshr_unshare)(xgs, start_address, count);
	for (i = 0; i < MOCK_REGIONS; i++) {
		struct mock_region *r = &regions[i];

		if (r->live && r->addr == start_address && r->n == count &&
		    r->granter == xgs->domid) {
			munmap(r->addr, (size_t)count * PAGE);
			r->addr = NULL;
			region_put(r);
			return 0;
		}
	}
	errno = EINVAL;
	return -1;
}

xengnttab_handle *xengnttab_open(struct xentoollog_logger *logger,
				 unsigned open_flags)
{
	xengnttab_handle *h;

	if (!mock_on)
		return REAL(xengnttab_open)(logger, open_flags);
	if (mock_open_fails(M_GNTTAB))
		return NULL;
	h = calloc(1, sizeof(*h));
	if (h)
		h->domid = mock_domid;
	return h;
}

int xengnttab_close(xengnttab_handle *xgt)
{
	if (!mock_on)
		return REAL(xengnttab_close)(xgt);
	free(xgt);
	return 0;
}

void *xengnttab_map_domain_grant_refs(xengnttab_handle *xgt, uint32_t count,
				      uint32_t domid, uint32_t *refs, int prot)
{
	struct mock_region *r;
	uint32_t k;
	void *addr;
	int i, m;

	if (!mock_on)
		return REAL(xengnttab_map_domain_grant_refs)(xgt, count, domid,
							     refs, prot);
	for (i = 0; i < MOCK_REGIONS; i++) {
		r = &regions[i];
		if (!r->live || r->granter != domid ||
		    r->grantee != xgt->domid || r->n != count)
			continue;
		for (k = 0; k < count; k++)
			if (refs[k] != r->first_ref + k)
				break;
		if (k < count)
			continue;
		for (m = 0; m < MOCK_REGIONS && mappings[m].addr; m++)
			;
		if (m == MOCK_REGIONS)
			break;
		addr = mmap(NULL, (size_t)count * PAGE, prot, MAP_SHARED,
			    r->memfd, 0);
		if (addr == MAP_FAILED)
			return NULL;
		mappings[m].addr = addr;
		mappings[m].region = i;
		r->maps++;
		return addr;
	}
	/* gntdev's answer when a ref was not granted to us */
	errno = EINVAL;
	return NULL;
}

int xengnttab_unmap(xengnttab_handle *xgt, void *start_address, uint32_t count)
{
	int m;

	if (!mock_on)
		return REAL(xengnttab_unmap)(xgt, start_address, count);
	for (m = 0; m < MOCK_REGIONS; m++) {
		struct mock_region *r = &regions[mappings[m].region];

		if (!start_address || mappings[m].addr != start_address ||
		    r->n != count)
			continue;
		munmap(start_address, (size_t)count * PAGE);
		mappings[m].addr = NULL;
		r->maps--;
		region_put(r);
		return 0;
	}
	errno = EINVAL;
	return -1;
}

/*
 * Event channels: each handle has a pipe that plays the evtchn device's
 * read queue. Like Xen plus Linux, a delivered port is masked until
 * unmasked, and a kick that arrives meanwhile is delivered at unmask.
 */
struct xenevtchn_handle {
	uint32_t domid;
	int pipe[2];
};

struct mock_port {
	bool used;
	uint32_t owner, remote;
	struct xenevtchn_handle *h;
	int peer;     /* the connected port, 0 while unbound */
	bool masked;  /* delivered, not yet unmasked */
	bool latched; /* kicked while masked */
};

#define MOCK_PORTS 32
static struct mock_port ports[MOCK_PORTS];
static int mock_kicks_dropped;

static int port_alloc(void)
{
	int p;

	for (p = 1; p < MOCK_PORTS; p++)
		if (!ports[p].used)
			return p;
	errno = ENOSPC;
	return -1;
}

static void port_deliver(int p)
{
	struct mock_port *mp = &ports[p];

	if (mp->masked) {
		mp->latched = true;
		return;
	}
	mp->masked = true;
	if (write(mp->h->pipe[1], &p, sizeof(p)) != sizeof(p))
		abort();
}

xenevtchn_handle *xenevtchn_open(struct xentoollog_logger *logger,
				 unsigned int flags)
{
	xenevtchn_handle *h;

	if (!mock_on)
		return REAL(xenevtchn_open)(logger, flags);
	if (mock_open_fails(M_EVTCHN))
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	if (pipe2(h->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
		free(h);
		return NULL;
	}
	h->domid = mock_domid;
	return h;
}

int xenevtchn_close(xenevtchn_handle *xce)
{
	int p;

	if (!mock_on)
		return REAL(xenevtchn_close)(xce);
	if (!xce)
		return 0;
	for (p = 1; p < MOCK_PORTS; p++)
		if (ports[p].used && ports[p].h == xce)
			xenevtchn_unbind(xce, (evtchn_port_t)p);
	close(xce->pipe[0]);
	close(xce->pipe[1]);
	free(xce);
	return 0;
}

int xenevtchn_fd(xenevtchn_handle *xce)
{
	if (!mock_on)
		return REAL(xenevtchn_fd)(xce);
	return xce->pipe[0];
}

static bool port_is(xenevtchn_handle *xce, evtchn_port_t port)
{
	return port > 0 && port < MOCK_PORTS && ports[port].used &&
	       ports[port].h == xce;
}

int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port)
{
	if (!mock_on)
		return REAL(xenevtchn_notify)(xce, port);
	if (!port_is(xce, port)) {
		errno = EINVAL;
		return -1;
	}
	if (ports[port].peer)
		port_deliver(ports[port].peer);
	else
		mock_kicks_dropped++; /* Xen drops kicks on unbound ports */
	return 0;
}

xenevtchn_port_or_error_t xenevtchn_bind_unbound_port(xenevtchn_handle *xce,
						      uint32_t domid)
{
	int p;

	if (!mock_on)
		return REAL(xenevtchn_bind_unbound_port)(xce, domid);
	p = port_alloc();
	if (p < 0)
		return -1;
	ports[p] = (struct mock_port){
		.used = true, .owner = xce->domid, .remote = domid, .h = xce};
	return p;
}

xenevtchn_port_or_error_t xenevtchn_bind_interdomain(xenevtchn_handle *xce,
						     uint32_t domid,
						     evtchn_port_t remote_port)
{
	struct mock_port *rp;
	int p;

	if (!mock_on)
		return REAL(xenevtchn_bind_interdomain)(xce, domid,
							remote_port);
	if (!remote_port || remote_port >= MOCK_PORTS) {
		errno = EINVAL;
		return -1;
	}
	rp = &ports[remote_port];
	/* Xen: the port must be unbound, owned by @domid, offered to us. */
	if (!rp->used || rp->owner != domid || rp->remote != xce->domid ||
	    rp->peer) {
		errno = EINVAL;
		return -1;
	}
	p = port_alloc();
	if (p < 0)
		return -1;
	ports[p] = (struct mock_port){.used = true,
				      .owner = xce->domid,
				      .remote = domid,
				      .h = xce,
				      .peer = (int)remote_port};
	rp->peer = p;
	return p;
}

int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port)
{
	if (!mock_on)
		return REAL(xenevtchn_unbind)(xce, port);
	if (!port_is(xce, port)) {
		errno = EINVAL;
		return -1;
	}
	if (ports[port].peer)
		ports[ports[port].peer].peer = 0;
	memset(&ports[port], 0, sizeof(ports[port]));
	return 0;
}

xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce)
{
	int p;

	if (!mock_on)
		return REAL(xenevtchn_pending)(xce);
	if (read(xce->pipe[0], &p, sizeof(p)) != sizeof(p))
		return -1; /* errno EAGAIN from the non-blocking pipe */
	return p;
}

int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port)
{
	struct mock_port *mp;

	if (!mock_on)
		return REAL(xenevtchn_unmask)(xce, port);
	if (!port_is(xce, port)) {
		errno = EINVAL;
		return -1;
	}
	mp = &ports[port];
	mp->masked = false;
	if (mp->latched) {
		mp->latched = false;
		port_deliver((int)port);
	}
	return 0;
}

/*
 * xenstore: a flat table of nodes with xenstored's permission rules (the
 * first entry names the owner and what everyone else may do; the owner
 * and dom0 may do anything), one transaction at a time, a node quota,
 * and commits that can be made to fail with EAGAIN.
 */
struct xs_handle {
	uint32_t domid;
};

struct mock_node {
	bool used;
	char path[160];
	char value[FIVC_XRDV_VALUE_MAX + 64];
	unsigned int len;
	struct xs_permissions perms[4];
	unsigned int nperms;
};

#define MOCK_NODES 48
static struct mock_node store[MOCK_NODES], snapshot[MOCK_NODES];
static bool in_txn;
static int txn_starts, txn_eagain, txn_aborts;

static struct mock_node *node_find(const char *path)
{
	int i;

	for (i = 0; i < MOCK_NODES; i++)
		if (store[i].used && !strcmp(store[i].path, path))
			return &store[i];
	return NULL;
}

static bool node_allows(const struct mock_node *n, uint32_t domid,
			unsigned int perm)
{
	unsigned int i;

	if (!domid || n->perms[0].id == domid)
		return true;
	for (i = 1; i < n->nperms; i++)
		if (n->perms[i].id == domid)
			return n->perms[i].perms & perm;
	return n->perms[0].perms & perm;
}

static void parent_of(const char *path, char *out, size_t len)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash && slash != path ? (size_t)(slash - path) : 1;

	snprintf(out, len, "%.*s", (int)n, path);
}

/* Create @path (and its parents) for @domid, or find it. */
static struct mock_node *node_make(uint32_t domid, const char *path)
{
	struct mock_node *n = node_find(path), *parent;
	char up[160];
	int i;

	if (n) {
		if (node_allows(n, domid, XS_PERM_WRITE))
			return n;
		errno = EACCES;
		return NULL;
	}
	parent_of(path, up, sizeof(up));
	parent = strcmp(up, "/") ? node_make(domid, up) : NULL;
	if (strcmp(up, "/") && !parent)
		return NULL;
	for (i = 0; i < MOCK_NODES && store[i].used; i++)
		;
	if (i == MOCK_NODES) {
		errno = ENOSPC; /* xenstored's quota answer */
		return NULL;
	}
	n = &store[i];
	memset(n, 0, sizeof(*n));
	n->used = true;
	snprintf(n->path, sizeof(n->path), "%s", path);
	if (parent) {
		memcpy(n->perms, parent->perms, sizeof(n->perms));
		n->nperms = parent->nperms;
	} else {
		n->perms[0].id = domid;
		n->nperms = 1;
	}
	return n;
}

/* What a domain's toolstack sets up: /local/domain/<d>, owned by d. */
static void mock_add_domain(uint32_t domid)
{
	char path[64];
	struct mock_node *n;

	snprintf(path, sizeof(path), "/local/domain/%u", domid);
	n = node_make(0, path);
	n->perms[0].id = domid;
	n->perms[0].perms = XS_PERM_NONE;
	n->nperms = 1;
	snprintf(path, sizeof(path), "/local/domain/%u/data", domid);
	node_make(domid, path);
}

static void mock_reset(void)
{
	int i;

	for (i = 0; i < MOCK_REGIONS; i++) {
		if (mappings[i].addr)
			munmap(mappings[i].addr,
			       (size_t)regions[mappings[i].region].n * PAGE);
		if (regions[i].live) {
			if (regions[i].addr)
				munmap(regions[i].addr,
				       (size_t)regions[i].n * PAGE);
			close(regions[i].memfd);
		}
	}
	memset(regions, 0, sizeof(regions));
	memset(mappings, 0, sizeof(mappings));
	memset(ports, 0, sizeof(ports));
	memset(store, 0, sizeof(store));
	memset(mock_open_errno, 0, sizeof(mock_open_errno));
	mock_share_errno = 0;
	mock_domid_str = NULL;
	mock_no_domid = false;
	in_txn = false;
	txn_starts = txn_eagain = txn_aborts = 0;
	mock_kicks_dropped = 0;
	mock_add_domain(1);
	mock_add_domain(2);
	mock_add_domain(3);
}

struct xs_handle *xs_open(unsigned long flags)
{
	struct xs_handle *h;

	if (!mock_on)
		return REAL(xs_open)(flags);
	if (mock_open_fails(M_XS))
		return NULL;
	h = calloc(1, sizeof(*h));
	if (h)
		h->domid = mock_domid;
	return h;
}

void xs_close(struct xs_handle *xsh)
{
	if (!mock_on) {
		REAL(xs_close)(xsh);
		return;
	}
	free(xsh);
}

void *xs_read(struct xs_handle *h, xs_transaction_t t, const char *path,
	      unsigned int *len)
{
	const struct mock_node *n;
	char buf[16];
	char *v;

	if (!mock_on)
		return REAL(xs_read)(h, t, path, len);
	if (!strcmp(path, "domid")) {
		if (mock_no_domid) {
			errno = ENOENT;
			return NULL;
		}
		if (!mock_domid_str)
			snprintf(buf, sizeof(buf), "%u", h->domid);
		v = strdup(mock_domid_str ? mock_domid_str : buf);
		if (v && len)
			*len = (unsigned int)strlen(v);
		return v;
	}
	n = node_find(path);
	if (!n) {
		errno = ENOENT;
		return NULL;
	}
	if (!node_allows(n, h->domid, XS_PERM_READ)) {
		errno = EACCES;
		return NULL;
	}
	v = malloc(n->len + 1);
	if (!v)
		return NULL;
	memcpy(v, n->value, n->len);
	v[n->len] = '\0';
	if (len)
		*len = n->len;
	return v;
}

bool xs_write(struct xs_handle *h, xs_transaction_t t, const char *path,
	      const void *data, unsigned int len)
{
	struct mock_node *n;

	if (!mock_on)
		return REAL(xs_write)(h, t, path, data, len);
	if (len > FIVC_XRDV_VALUE_MAX + 63) {
		errno = E2BIG;
		return false;
	}
	n = node_make(h->domid, path);
	if (!n)
		return false;
	memcpy(n->value, data, len);
	n->len = len;
	return true;
}

bool xs_mkdir(struct xs_handle *h, xs_transaction_t t, const char *path)
{
	if (!mock_on)
		return REAL(xs_mkdir)(h, t, path);
	return node_make(h->domid, path) != NULL;
}

bool xs_rm(struct xs_handle *h, xs_transaction_t t, const char *path)
{
	struct mock_node *n;
	size_t plen = strlen(path);
	int i;

	if (!mock_on)
		return REAL(xs_rm)(h, t, path);
	n = node_find(path);
	if (!n) {
		errno = ENOENT;
		return false;
	}
	if (!node_allows(n, h->domid, XS_PERM_WRITE)) {
		errno = EACCES;
		return false;
	}
	for (i = 0; i < MOCK_NODES; i++)
		if (store[i].used && !strncmp(store[i].path, path, plen) &&
		    (store[i].path[plen] == '/' || !store[i].path[plen]))
			memset(&store[i], 0, sizeof(store[i]));
	return true;
}

bool xs_set_permissions(struct xs_handle *h, xs_transaction_t t,
			const char *path, struct xs_permissions *perms,
			unsigned int num_perms)
{
	struct mock_node *n;

	if (!mock_on)
		return REAL(xs_set_permissions)(h, t, path, perms, num_perms);
	n = node_find(path);
	if (!n) {
		errno = ENOENT;
		return false;
	}
	/* Only the owner (or dom0) may change permissions. */
	if (h->domid && n->perms[0].id != h->domid) {
		errno = EACCES;
		return false;
	}
	if (!num_perms || num_perms > 4) {
		errno = EINVAL;
		return false;
	}
	memcpy(n->perms, perms, num_perms * sizeof(*perms));
	n->nperms = num_perms;
	return true;
}

char **xs_directory(struct xs_handle *h, xs_transaction_t t, const char *path,
		    unsigned int *num)
{
	const struct mock_node *n;
	size_t plen = strlen(path), bytes = 0;
	unsigned int count = 0, k = 0;
	char **out, *strs;
	int i;

	if (!mock_on)
		return REAL(xs_directory)(h, t, path, num);
	n = node_find(path);
	if (!n) {
		errno = ENOENT;
		return NULL;
	}
	if (!node_allows(n, h->domid, XS_PERM_READ)) {
		errno = EACCES;
		return NULL;
	}
	/* Children: "<path>/<name>" with no further slash. */
	for (i = 0; i < MOCK_NODES; i++) {
		const char *p = store[i].path;

		if (store[i].used && !strncmp(p, path, plen) &&
		    p[plen] == '/' && !strchr(p + plen + 1, '/')) {
			count++;
			bytes += strlen(p + plen + 1) + 1;
		}
	}
	/* Like libxenstore: one block, freed with one free(). */
	out = malloc((count + 1) * sizeof(char *) + bytes);
	if (!out)
		return NULL;
	strs = (char *)(out + count + 1);
	for (i = 0; i < MOCK_NODES; i++) {
		const char *p = store[i].path;

		if (store[i].used && !strncmp(p, path, plen) &&
		    p[plen] == '/' && !strchr(p + plen + 1, '/')) {
			out[k++] = strs;
			strcpy(strs, p + plen + 1);
			strs += strlen(strs) + 1;
		}
	}
	out[k] = NULL;
	*num = count;
	return out;
}

xs_transaction_t xs_transaction_start(struct xs_handle *h)
{
	if (!mock_on)
		return REAL(xs_transaction_start)(h);
	if (in_txn) {
		errno = EBUSY; /* the model runs one at a time */
		return XBT_NULL;
	}
	memcpy(snapshot, store, sizeof(store));
	in_txn = true;
	txn_starts++;
	return 1;
}

bool xs_transaction_end(struct xs_handle *h, xs_transaction_t t, bool abort)
{
	if (!mock_on)
		return REAL(xs_transaction_end)(h, t, abort);
	if (!in_txn || t != 1) {
		errno = EINVAL;
		return false;
	}
	in_txn = false;
	if (abort || txn_eagain) {
		memcpy(store, snapshot, sizeof(store));
		if (abort) {
			txn_aborts++;
			return true;
		}
		txn_eagain--;
		errno = EAGAIN;
		return false;
	}
	return true;
}

/* --- capturing our own log lines ------------------------------------------ */

static int saved_stderr = -1;
static FILE *capture_file;

static void capture_start(void)
{
	fflush(stderr);
	capture_file = tmpfile();
	saved_stderr = dup(2);
	if (!capture_file || saved_stderr < 0)
		abort();
	dup2(fileno(capture_file), 2);
}

/* Restores stderr; returns how many lines had @level ("warn") in @buf. */
static int capture_end(char *buf, size_t len, const char *level)
{
	char tag[32];
	size_t n;
	int lines = 0;
	char *p;

	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	rewind(capture_file);
	n = fread(buf, 1, len - 1, capture_file);
	buf[n] = '\0';
	fclose(capture_file);
	snprintf(tag, sizeof(tag), "fastivc %s:", level);
	for (p = buf; (p = strstr(p, tag)); p += strlen(tag))
		lines++;
	return lines;
}

/* --- 1. pure parts -------------------------------------------------------- */

static void test_names(void)
{
	static const char *const good[] = {
		"a", "ctl", "a-b_c9",
		"0", "--",  "abcdefghijklmnopqrstuvwxyz012345",
	};
	static const char *const bad[] = {
		"",    "abcdefghijklmnopqrstuvwxyz0123456",
		"A",   "a/b",
		"a.b", "a b",
		"..",  "\xc3\xa9",
		"a\n", "tx:refs",
	};
	unsigned int i;

	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		CHECK_RC(fivc_xrdv_check_name(good[i]), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_RC(fivc_xrdv_check_name(bad[i]), -EINVAL);
	CHECK_RC(fivc_xrdv_check_name(NULL), -EINVAL);
}

static void test_paths(void)
{
	const char *want = "/local/domain/7/data/fastivc/ctl/tx-refs";
	char buf[FIVC_XRDV_PATH_MAX];
	char longname[33], longkey[33];

	CHECK_RC(fivc_xrdv_path(buf, sizeof(buf), 7, "ctl", "tx-refs"), 0);
	CHECK(!strcmp(buf, want));
	CHECK_RC(fivc_xrdv_path(buf, sizeof(buf), 32751, "ctl", NULL), 0);
	CHECK(!strcmp(buf, "/local/domain/32751/data/fastivc/ctl"));

	/* The longest path there is fits FIVC_XRDV_PATH_MAX. */
	memset(longname, 'n', 32);
	longname[32] = '\0';
	memset(longkey, 'k', 32);
	longkey[32] = '\0';
	CHECK_RC(fivc_xrdv_path(buf, sizeof(buf), 32751, longname, longkey), 0);

	/* Truncation: exactly enough room, then one byte short. */
	CHECK_RC(fivc_xrdv_path(buf, strlen(want) + 1, 7, "ctl", "tx-refs"), 0);
	CHECK(!strcmp(buf, want));
	CHECK_RC(fivc_xrdv_path(buf, strlen(want), 7, "ctl", "tx-refs"),
		 -ENAMETOOLONG);
	CHECK(buf[0] == '\0');
	CHECK_RC(fivc_xrdv_path(buf, 1, 7, "ctl", NULL), -ENAMETOOLONG);
	CHECK_RC(fivc_xrdv_path(buf, 0, 7, "ctl", NULL), -EINVAL);
	CHECK_RC(fivc_xrdv_path(NULL, 16, 7, "ctl", NULL), -EINVAL);

	/* Bad names, keys, domids; the buffer never names a node then. */
	CHECK_RC(fivc_xrdv_path(buf, sizeof(buf), 7, "../x", NULL), -EINVAL);
	CHECK(buf[0] == '\0');
	CHECK_RC(fivc_xrdv_path(buf, sizeof(buf), 7, "ctl", "a/b"), -EINVAL);
	CHECK_RC(fivc_xrdv_path(buf, sizeof(buf), 7, "ctl", ""), -EINVAL);
	CHECK_RC(fivc_xrdv_path(buf, sizeof(buf), 7, NULL, NULL), -EINVAL);
	CHECK_RC(fivc_xrdv_path(buf, sizeof(buf), 0x7FF0, "ctl", NULL),
		 -EINVAL);
	CHECK_RC(fivc_xrdv_path(buf, sizeof(buf), UINT32_MAX, "ctl", NULL),
		 -EINVAL);
}

static void test_parse_u32(void)
{
	static const char *const bad[] = {
		"",	"4294967296",
		"-1",	"+1",
		" 1",	"1 ",
		"01",	"00",
		"0x10", "1a",
		"1,2",	"99999999999999999999999",
		"\t1",	"18446744073709551617",
	};
	uint32_t v = 12345;
	unsigned int i;

	CHECK_RC(fivc_xrdv_parse_u32("0", &v), 0);
	CHECK(v == 0);
	CHECK_RC(fivc_xrdv_parse_u32("42", &v), 0);
	CHECK(v == 42);
	CHECK_RC(fivc_xrdv_parse_u32("4294967295", &v), 0);
	CHECK(v == UINT32_MAX);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 777;
		CHECK_RC(fivc_xrdv_parse_u32(bad[i], &v), -EINVAL);
		CHECK(v == 777); /* untouched on failure */
	}
	CHECK_RC(fivc_xrdv_parse_u32(NULL, &v), -EINVAL);
	CHECK_RC(fivc_xrdv_parse_u32("1", NULL), -EINVAL);
}

static void test_format_refs(void)
{
	const uint32_t refs[] = {8, 9, 10};
	const uint32_t big[] = {0, UINT32_MAX};
	char buf[64];

	CHECK_RC(fivc_xrdv_format_refs(buf, sizeof(buf), refs, 3), 6);
	CHECK(!strcmp(buf, "8,9,10"));
	CHECK_RC(fivc_xrdv_format_refs(buf, sizeof(buf), big, 2), 12);
	CHECK(!strcmp(buf, "0,4294967295"));
	CHECK_RC(fivc_xrdv_format_refs(buf, sizeof(buf), refs, 1), 1);
	CHECK(!strcmp(buf, "8"));
	/* "8,9,10" needs 7 bytes with its NUL. */
	CHECK_RC(fivc_xrdv_format_refs(buf, 7, refs, 3), 6);
	CHECK_RC(fivc_xrdv_format_refs(buf, 6, refs, 3), -E2BIG);
	CHECK(buf[0] == '\0');
	CHECK_RC(fivc_xrdv_format_refs(buf, 2, refs, 3), -E2BIG);
	CHECK_RC(fivc_xrdv_format_refs(buf, sizeof(buf), refs, 0), -EINVAL);
	CHECK_RC(fivc_xrdv_format_refs(buf, sizeof(buf), NULL, 3), -EINVAL);
	CHECK_RC(fivc_xrdv_format_refs(buf, sizeof(buf), refs,
				       FIVC_SHM_MAX_PAGES + 1),
		 -EINVAL);
	CHECK_RC(fivc_xrdv_format_refs(buf, 0, refs, 3), -EINVAL);
}

static void test_parse_refs_good(void)
{
	uint32_t refs[4] = {0}, *many, *back;
	size_t len = (size_t)FIVC_SHM_MAX_PAGES * 11 + 1;
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	char *buf;
	uint32_t i;
	int n;

	CHECK_RC(fivc_xrdv_parse_refs("8,9,10", refs, 3), 0);
	CHECK(refs[0] == 8 && refs[1] == 9 && refs[2] == 10);
	CHECK_RC(fivc_xrdv_parse_refs("4294967295", refs, 1), 0);
	CHECK(refs[0] == UINT32_MAX);
	CHECK_RC(fivc_xrdv_parse_refs("0,0", refs, 2), 0);

	/* Round trip of the largest list, with values of every width. */
	many = calloc(FIVC_SHM_MAX_PAGES, sizeof(*many));
	back = calloc(FIVC_SHM_MAX_PAGES, sizeof(*back));
	buf = malloc(len);
	if (!many || !back || !buf) {
		CHECK(!"out of memory");
		goto out;
	}
	for (i = 0; i < FIVC_SHM_MAX_PAGES; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		many[i] = (uint32_t)(x >> (32 + (i % 32)));
	}
	many[0] = UINT32_MAX;
	n = fivc_xrdv_format_refs(buf, len, many, FIVC_SHM_MAX_PAGES);
	CHECK(n > 0 && (size_t)n == strlen(buf));
	CHECK_RC(fivc_xrdv_parse_refs(buf, back, FIVC_SHM_MAX_PAGES), 0);
	CHECK(!memcmp(many, back, FIVC_SHM_MAX_PAGES * sizeof(*many)));
out:
	free(many);
	free(back);
	free(buf);
}

static void test_parse_refs_bad(void)
{
	static const struct {
		const char *s;
		uint32_t n;
	} bad[] = {
		{"", 1},
		{",", 1},
		{"1,", 1},
		{"1,", 2}, /* trailing comma */
		{",1", 1},
		{",1", 2}, /* leading comma */
		{"1,,2", 2},
		{"1,,2", 3},	   /* empty element */
		{"4294967296", 1}, /* 2^32 */
		{"1,4294967296", 2},
		{"99999999999", 1},
		{"-1", 1}, /* negative */
		{"1,-2", 2},
		{"+1", 1},
		{"a", 1}, /* non-digit */
		{"1,a", 2},
		{"1;2", 2},
		{"1 ,2", 2},
		{"1, 2", 2},
		{" 1", 1},
		{"1\n", 1},
		{"0x1", 1},
		{"01", 1},
		{"1,2", 3},   /* count mismatch: too few */
		{"1,2,3", 2}, /* too many */
		{"1", 2},
		{"1,2", 0},
	};
	uint32_t refs[4] = {0}, *big;
	char *s;
	unsigned int i;
	size_t len = (size_t)(FIVC_SHM_MAX_PAGES + 1) * 2 + 1;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = fivc_xrdv_parse_refs(bad[i].s, refs, bad[i].n);

		if (rc != -EINVAL)
			fprintf(stderr, "#   \"%s\" n=%u gave %d\n", bad[i].s,
				bad[i].n, rc);
		CHECK(rc == -EINVAL);
	}
	CHECK_RC(fivc_xrdv_parse_refs(NULL, refs, 1), -EINVAL);
	CHECK_RC(fivc_xrdv_parse_refs("1", NULL, 1), -EINVAL);

	/* Too many refs: one more than a region may have, either way. */
	big = calloc(FIVC_SHM_MAX_PAGES + 1, sizeof(*big));
	s = malloc(len);
	if (!big || !s) {
		CHECK(!"out of memory");
		goto out;
	}
	for (i = 0; i <= FIVC_SHM_MAX_PAGES; i++) {
		s[2 * i] = '7';
		s[2 * i + 1] = ',';
	}
	s[2 * FIVC_SHM_MAX_PAGES + 1] = '\0';
	CHECK_RC(fivc_xrdv_parse_refs(s, big, FIVC_SHM_MAX_PAGES + 1), -EINVAL);
	CHECK_RC(fivc_xrdv_parse_refs(s, big, FIVC_SHM_MAX_PAGES), -EINVAL);
	/* Without the last element it is exactly the maximum. */
	s[2 * FIVC_SHM_MAX_PAGES - 1] = '\0';
	CHECK_RC(fivc_xrdv_parse_refs(s, big, FIVC_SHM_MAX_PAGES), 0);
out:
	free(big);
	free(s);
}

static void test_kv(void)
{
	struct fivc_xrdv_data *dd = malloc(sizeof(*dd));
	char key[16], big[FIVC_XRDV_VALUE_MAX + 2];
	uint32_t v;
	int i;

	if (!dd) {
		CHECK(!"out of memory");
		return;
	}
	fivc_xrdv_data_init(dd);
	CHECK_RC(fivc_xrdv_set(dd, "n-channels", "4"), 0);
	CHECK_RC(fivc_xrdv_set_u32(dd, "size", 4096), 0);
	CHECK_RC(fivc_xrdv_set(dd, "n-channels", "8"), 0); /* replaces */
	CHECK(dd->n == 2);
	CHECK_RC(fivc_xrdv_get_u32(dd, "n-channels", &v), 0);
	CHECK(v == 8);
	CHECK_RC(fivc_xrdv_get_u32(dd, "absent", &v), -ENOENT);
	CHECK(fivc_xrdv_get(dd, "absent") == NULL);
	CHECK_RC(fivc_xrdv_set(dd, "junk", "12x"), 0);
	CHECK_RC(fivc_xrdv_get_u32(dd, "junk", &v), -EINVAL);
	CHECK_RC(fivc_xrdv_set(dd, "Bad", "1"), -EINVAL);
	CHECK_RC(fivc_xrdv_set(dd, "a/b", "1"), -EINVAL);
	CHECK_RC(fivc_xrdv_set(dd, "ok", NULL), -EINVAL);

	memset(big, 'v', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0'; /* VALUE_MAX + 1 characters */
	CHECK_RC(fivc_xrdv_set(dd, "big", big), -E2BIG);
	big[sizeof(big) - 2] = '\0'; /* exactly VALUE_MAX */
	CHECK_RC(fivc_xrdv_set(dd, "big", big), 0);

	for (i = (int)dd->n; i < (int)FIVC_XRDV_MAX_KEYS; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		CHECK_RC(fivc_xrdv_set(dd, key, "x"), 0);
	}
	CHECK_RC(fivc_xrdv_set(dd, "one-more", "x"), -E2BIG);
	CHECK_RC(fivc_xrdv_set(dd, "size", "8192"), 0); /* replacing fits */
	free(dd);
}

static void test_desc_checks(void)
{
	uint32_t refs[3] = {8, 9, 10};
	const struct fivc_shm_desc good = {
		.kind = FIVC_BACKEND_XEN,
		.size = 3 * PAGE,
		.domid = 1,
		.n_refs = 3,
		.refs = refs,
		.fd = -1,
	};
	const struct fivc_evch_desc egood = {
		.kind = FIVC_BACKEND_XEN,
		.domid = 1,
		.port = 5,
		.fd_wait = -1,
		.fd_kick = -1,
	};
	struct fivc_shm_desc d;
	struct fivc_evch_desc e;

	CHECK_RC(fivc_xen_check_shm_desc(&good, 2), 0);
	CHECK_RC(fivc_xen_check_shm_desc(NULL, 2), -EINVAL);
	d = good, d.kind = FIVC_BACKEND_LOCAL;
	CHECK_RC(fivc_xen_check_shm_desc(&d, 2), -EINVAL);
	d = good, d.kind = 0;
	CHECK_RC(fivc_xen_check_shm_desc(&d, 2), -EINVAL);
	d = good, d.size = 0, d.n_refs = 0;
	CHECK_RC(fivc_xen_check_shm_desc(&d, 2), -EINVAL);
	d = good, d.size = 3 * PAGE - 1;
	CHECK_RC(fivc_xen_check_shm_desc(&d, 2), -EINVAL);
	d = good, d.size = 3 * PAGE + 1;
	CHECK_RC(fivc_xen_check_shm_desc(&d, 2), -EINVAL);
	d = good, d.n_refs = 2;
	CHECK_RC(fivc_xen_check_shm_desc(&d, 2), -EINVAL);
	d = good, d.n_refs = 4;
	CHECK_RC(fivc_xen_check_shm_desc(&d, 2), -EINVAL);
	d = good, d.size = (FIVC_SHM_MAX_PAGES + 1) * PAGE,
	d.n_refs = FIVC_SHM_MAX_PAGES + 1;
	CHECK_RC(fivc_xen_check_shm_desc(&d, 2), -EINVAL);
	d = good, d.refs = NULL;
	CHECK_RC(fivc_xen_check_shm_desc(&d, 2), -EINVAL);
	d = good, d.domid = 2; /* ourselves */
	CHECK_RC(fivc_xen_check_shm_desc(&d, 2), -EINVAL);
	d = good, d.domid = 0x7FF0; /* DOMID_FIRST_RESERVED */
	CHECK_RC(fivc_xen_check_shm_desc(&d, 2), -EINVAL);
	d = good, d.domid = 0x7FF0 + 0x5; /* DOMID_SELF */
	CHECK_RC(fivc_xen_check_shm_desc(&d, 2), -EINVAL);
	d = good, d.domid = UINT32_MAX;
	CHECK_RC(fivc_xen_check_shm_desc(&d, 2), -EINVAL);
	d = good, d.domid = 0; /* dom0 is a domain like any other here */
	CHECK_RC(fivc_xen_check_shm_desc(&d, 2), 0);

	CHECK_RC(fivc_xen_check_evch_desc(&egood, 2), 0);
	CHECK_RC(fivc_xen_check_evch_desc(NULL, 2), -EINVAL);
	e = egood, e.kind = FIVC_BACKEND_LOCAL;
	CHECK_RC(fivc_xen_check_evch_desc(&e, 2), -EINVAL);
	e = egood, e.port = 0;
	CHECK_RC(fivc_xen_check_evch_desc(&e, 2), -EINVAL);
	e = egood, e.port = FIVC_XEN_PORT_MAX;
	CHECK_RC(fivc_xen_check_evch_desc(&e, 2), 0);
	e = egood, e.port = FIVC_XEN_PORT_MAX + 1;
	CHECK_RC(fivc_xen_check_evch_desc(&e, 2), -EINVAL);
	e = egood, e.port = UINT32_MAX;
	CHECK_RC(fivc_xen_check_evch_desc(&e, 2), -EINVAL);
	e = egood, e.domid = 2;
	CHECK_RC(fivc_xen_check_evch_desc(&e, 2), -EINVAL);
	e = egood, e.domid = 0x7FF2;
	CHECK_RC(fivc_xen_check_evch_desc(&e, 2), -EINVAL);
}

static void test_desc_kv(void)
{
	struct fivc_xrdv_data *dd = malloc(sizeof(*dd));
	uint32_t refs[3] = {8, 9, 10}, *many = NULL;
	struct fivc_shm_desc in = {
		.kind = FIVC_BACKEND_XEN,
		.size = 3 * PAGE,
		.domid = 1,
		.n_refs = 3,
		.refs = refs,
		.fd = -1,
	};
	struct fivc_evch_desc ein = {.kind = FIVC_BACKEND_XEN,
				     .domid = 1,
				     .port = 17,
				     .fd_wait = -1,
				     .fd_kick = -1};
	struct fivc_shm_desc out, big;
	struct fivc_evch_desc eout;
	uint32_t i;

	if (!dd) {
		CHECK(!"out of memory");
		return;
	}
	fivc_xrdv_data_init(dd);
	CHECK_RC(fivc_xrdv_put_shm(dd, "tx", &in), 0);
	CHECK(!strcmp(fivc_xrdv_get(dd, "tx-size"), "12288"));
	CHECK(!strcmp(fivc_xrdv_get(dd, "tx-refs"), "8,9,10"));
	CHECK_RC(fivc_xrdv_take_shm(dd, "tx", 1, 2, &out), 0);
	CHECK(out.kind == FIVC_BACKEND_XEN && out.size == 3 * PAGE &&
	      out.domid == 1 && out.n_refs == 3 && out.fd == -1);
	CHECK(out.refs && out.refs != refs &&
	      !memcmp(out.refs, refs, sizeof(refs)));
	fivc_shm_desc_clear(&out);

	/* The granter is the domain whose area it came from, never us. */
	CHECK_RC(fivc_xrdv_take_shm(dd, "tx", 2, 2, &out), -EINVAL);
	CHECK(out.refs == NULL && out.fd == -1);
	CHECK_RC(fivc_xrdv_take_shm(dd, "tx", 0x7FF0, 2, &out), -EINVAL);
	/* Absent. */
	CHECK_RC(fivc_xrdv_take_shm(dd, "rx", 1, 2, &out), -EINVAL);

	/* What a hostile peer could publish instead. */
	CHECK_RC(fivc_xrdv_set(dd, "tx-refs", "8,9"), 0);
	CHECK_RC(fivc_xrdv_take_shm(dd, "tx", 1, 2, &out), -EINVAL);
	CHECK_RC(fivc_xrdv_set(dd, "tx-refs", "8,9,10,11"), 0);
	CHECK_RC(fivc_xrdv_take_shm(dd, "tx", 1, 2, &out), -EINVAL);
	CHECK_RC(fivc_xrdv_set(dd, "tx-refs", "8,9,4294967296"), 0);
	CHECK_RC(fivc_xrdv_take_shm(dd, "tx", 1, 2, &out), -EINVAL);
	CHECK_RC(fivc_xrdv_set(dd, "tx-refs", "8,9,10"), 0);
	CHECK_RC(fivc_xrdv_set(dd, "tx-size", "12289"), 0);
	CHECK_RC(fivc_xrdv_take_shm(dd, "tx", 1, 2, &out), -EINVAL);
	CHECK_RC(fivc_xrdv_set(dd, "tx-size", "0"), 0);
	CHECK_RC(fivc_xrdv_take_shm(dd, "tx", 1, 2, &out), -EINVAL);
	CHECK_RC(fivc_xrdv_set(dd, "tx-size", "4294963200"), 0); /* huge */
	CHECK_RC(fivc_xrdv_take_shm(dd, "tx", 1, 2, &out), -EINVAL);
	CHECK_RC(fivc_xrdv_set(dd, "tx-size", "-12288"), 0);
	CHECK_RC(fivc_xrdv_take_shm(dd, "tx", 1, 2, &out), -EINVAL);
	CHECK(out.refs == NULL);

	/* Bad prefixes, bad descs, a list too long for one xenstore value. */
	CHECK_RC(fivc_xrdv_put_shm(dd, "Tx", &in), -EINVAL);
	/* "-size" and "-refs" must fit too: 27 + 5 characters at most. */
	CHECK_RC(fivc_xrdv_put_shm(dd, "abcdefghijklmnopqrstuvwxyz01", &in),
		 -EINVAL);
	CHECK_RC(fivc_xrdv_put_shm(dd, "abcdefghijklmnopqrstuvwxyz0", &in), 0);
	big = in;
	big.n_refs = 2;
	CHECK_RC(fivc_xrdv_put_shm(dd, "tx", &big), -EINVAL);
	many = calloc(200, sizeof(*many));
	if (many) {
		for (i = 0; i < 200; i++)
			many[i] = 4000000000u + i;
		big.refs = many;
		big.n_refs = 200;
		big.size = 200 * PAGE;
		CHECK_RC(fivc_xrdv_put_shm(dd, "tx", &big), -E2BIG);
		free(many);
	}

	/* Event channels. */
	fivc_xrdv_data_init(dd);
	CHECK_RC(fivc_xrdv_put_evch(dd, "tx", &ein), 0);
	CHECK(!strcmp(fivc_xrdv_get(dd, "tx-port"), "17"));
	CHECK_RC(fivc_xrdv_take_evch(dd, "tx", 1, 2, &eout), 0);
	CHECK(eout.kind == FIVC_BACKEND_XEN && eout.domid == 1 &&
	      eout.port == 17 && eout.fd_wait == -1 && eout.fd_kick == -1);
	CHECK_RC(fivc_xrdv_take_evch(dd, "tx", 2, 2, &eout), -EINVAL);
	CHECK_RC(fivc_xrdv_take_evch(dd, "rx", 1, 2, &eout), -EINVAL);
	CHECK_RC(fivc_xrdv_set(dd, "tx-port", "0"), 0);
	CHECK_RC(fivc_xrdv_take_evch(dd, "tx", 1, 2, &eout), -EINVAL);
	CHECK_RC(fivc_xrdv_set(dd, "tx-port", "131072"), 0);
	CHECK_RC(fivc_xrdv_take_evch(dd, "tx", 1, 2, &eout), -EINVAL);
	CHECK_RC(fivc_xrdv_set(dd, "tx-port", "5 "), 0);
	CHECK_RC(fivc_xrdv_take_evch(dd, "tx", 1, 2, &eout), -EINVAL);
	ein.port = 0;
	CHECK_RC(fivc_xrdv_put_evch(dd, "tx", &ein), -EINVAL);
	free(dd);
}

/* --- 2. this machine ------------------------------------------------------ */

static void test_open_here(void)
{
	struct fivc_backend *be = (struct fivc_backend *)&be;
	char logbuf[4096];
	int rc, warns;

	capture_start();
	rc = fivc_backend_open_xen(&be);
	warns = capture_end(logbuf, sizeof(logbuf), "warn");
	if (rc == 0) {
		/* A real Xen guest: nothing to prove, but close cleanly. */
		printf("# Xen present (domid %u): -ENOSYS case skipped\n",
		       be->self_domid);
		be->ops->close(be);
		return;
	}
	fprintf(stderr, "%s", logbuf);
	CHECK_RC(rc, -ENOSYS);
	CHECK(be == NULL);
	CHECK(warns == 1);
	CHECK(strstr(logbuf, "/dev/xen/gntalloc") != NULL);
	CHECK_RC(fivc_backend_open_xen(NULL), -EINVAL);
}

static void test_not_xen(void)
{
	struct fivc_backend fake = {.ops = NULL, .self_domid = 1};
	struct fivc_xrdv_data *dd = calloc(1, sizeof(*dd));

	CHECK(fivc_xen_backend_xs(NULL) == NULL);
	CHECK(fivc_xen_backend_xs(&fake) == NULL);
	CHECK_RC(fivc_xrdv_publish(NULL, 2, "ctl", dd), -EINVAL);
	CHECK_RC(fivc_xrdv_publish(&fake, 2, "ctl", dd), -EINVAL);
	CHECK_RC(fivc_xrdv_read(&fake, 2, "ctl", dd), -EINVAL);
	CHECK_RC(fivc_xrdv_unpublish(&fake, "ctl"), -EINVAL);
	free(dd);
}

/* --- 3. the glue, against the model --------------------------------------- */

static struct fivc_backend *open_as(uint32_t domid)
{
	struct fivc_backend *be = NULL;
	int rc;

	mock_domid = domid;
	rc = fivc_backend_open_xen(&be);
	if (rc)
		fprintf(stderr, "#   open as domain %u: %d\n", domid, rc);
	CHECK(rc == 0 && be && be->self_domid == domid);
	return rc ? NULL : be;
}

/*
 * Event channel handles are opened per channel, so the model gives each
 * to the domain that is current then, as a real process lives in one
 * domain: make @be's domain current.
 */
static struct fivc_backend *as(struct fivc_backend *be)
{
	mock_domid = be->self_domid;
	return be;
}

static void test_mock_open(void)
{
	struct fivc_backend *be = (struct fivc_backend *)&be;
	char logbuf[4096];
	int warns;

	mock_reset();
	mock_open_errno[M_GNTTAB] = ENOENT;
	mock_open_errno[M_XS] = ENOENT;
	capture_start();
	CHECK_RC(fivc_backend_open_xen(&be), -ENOSYS);
	warns = capture_end(logbuf, sizeof(logbuf), "warn");
	CHECK(be == NULL);
	CHECK(warns == 1);
	CHECK(strstr(logbuf, "/dev/xen/gntdev") && strstr(logbuf, "xenstore"));
	CHECK(!strstr(logbuf, "gntalloc") && !strstr(logbuf, "evtchn"));

	/* Not root on a Xen guest: say so rather than "no Xen". */
	mock_reset();
	mock_open_errno[M_GNTSHR] = EACCES;
	capture_start();
	CHECK_RC(fivc_backend_open_xen(&be), -EACCES);
	warns = capture_end(logbuf, sizeof(logbuf), "warn");
	CHECK(warns == 1);
	/* ...unless something is missing as well. */
	mock_open_errno[M_EVTCHN] = ENOENT;
	capture_start();
	CHECK_RC(fivc_backend_open_xen(&be), -ENOSYS);
	warns = capture_end(logbuf, sizeof(logbuf), "warn");
	CHECK(warns == 1);

	/* xenstore reachable but our domid is not readable or not sane. */
	mock_reset();
	mock_domid_str = "01";
	capture_start();
	CHECK_RC(fivc_backend_open_xen(&be), -EINVAL);
	mock_domid_str = "32752";
	CHECK_RC(fivc_backend_open_xen(&be), -EINVAL);
	mock_domid_str = "";
	CHECK_RC(fivc_backend_open_xen(&be), -EINVAL);
	mock_domid_str = NULL;
	mock_no_domid = true;
	CHECK_RC(fivc_backend_open_xen(&be), -ENOSYS);
	warns = capture_end(logbuf, sizeof(logbuf), "warn");
	CHECK(warns == 4);
	CHECK(strstr(logbuf, "no domid in xenstore") != NULL);
	CHECK(be == NULL);

	mock_reset();
	be = open_as(5);
	if (be)
		be->ops->close(be);
}

static void test_mock_shm(void)
{
	struct fivc_backend *b1, *b2, *b3;
	struct fivc_shm *tx = NULL, *rx = NULL, *s = (struct fivc_shm *)&s;
	struct fivc_shm_desc d = {.fd = -1}, bad;
	const struct fivc_backend_ops *ops;
	size_t i;

	mock_reset();
	b1 = open_as(1);
	b2 = open_as(2);
	b3 = open_as(3);
	if (!b1 || !b2 || !b3)
		goto out;
	ops = b1->ops;
	CHECK(!strcmp(ops->name, "xen"));

	CHECK_RC(ops->shm_offer(b1, 3 * PAGE, 2, &tx), 0);
	CHECK(tx && tx->addr && tx->size == 3 * PAGE && tx->be == b1);
	if (!tx)
		goto out;
	for (i = 0; i < tx->size; i++)
		if (((uint8_t *)tx->addr)[i])
			break;
	CHECK(i == tx->size); /* zeroed although the model dirtied it */
	CHECK_RC(ops->shm_describe(tx, &d), 0);
	CHECK(d.kind == FIVC_BACKEND_XEN && d.size == 3 * PAGE &&
	      d.domid == 1 && d.n_refs == 3 && d.fd == -1 && d.refs);

	CHECK_RC(ops->shm_map(b2, &d, &rx), 0);
	CHECK(rx && rx->addr && rx->size == 3 * PAGE && rx->be == b2);
	if (rx) {
		memcpy((char *)tx->addr + 2 * PAGE, "hello", 6);
		CHECK(!strcmp((char *)rx->addr + 2 * PAGE, "hello"));
		memcpy(rx->addr, "olleh", 6);
		CHECK(!strcmp((char *)tx->addr, "olleh"));
		/* Only the granter describes. */
		CHECK_RC(ops->shm_describe(rx, &bad), -EINVAL);
	}

	/* Not granted to domain 3: the map fails, nothing is returned. */
	CHECK_RC(ops->shm_map(b3, &d, &s), -EINVAL);
	CHECK(s == NULL);
	/* A ref the peer never granted. */
	bad = d;
	bad.refs = (uint32_t[]){d.refs[0], d.refs[1], 9999};
	s = (struct fivc_shm *)&s;
	CHECK_RC(ops->shm_map(b2, &bad, &s), -EINVAL);
	CHECK(s == NULL);
	/* Descriptors that never reach the library. */
	bad = d, bad.domid = 2;
	CHECK_RC(ops->shm_map(b2, &bad, &s), -EINVAL);
	bad = d, bad.n_refs = 4;
	CHECK_RC(ops->shm_map(b2, &bad, &s), -EINVAL);
	bad = d, bad.kind = FIVC_BACKEND_LOCAL;
	CHECK_RC(ops->shm_map(b2, &bad, &s), -EINVAL);
	CHECK_RC(ops->shm_map(b2, NULL, &s), -EINVAL);

	/* Offers that make no sense. */
	CHECK_RC(ops->shm_offer(b1, 0, 2, &s), -EINVAL);
	CHECK_RC(ops->shm_offer(b1, PAGE + 1, 2, &s), -EINVAL);
	CHECK_RC(ops->shm_offer(b1, (size_t)(FIVC_SHM_MAX_PAGES + 1) * PAGE, 2,
				&s),
		 -EINVAL);
	CHECK_RC(ops->shm_offer(b1, PAGE, 1, &s), -EINVAL);
	CHECK_RC(ops->shm_offer(b1, PAGE, 0x7FF0, &s), -EINVAL);
	CHECK(s == NULL);
	/* A full grant table (or gntalloc's limit). */
	mock_share_errno = ENOSPC;
	s = (struct fivc_shm *)&s;
	CHECK_RC(ops->shm_offer(b1, PAGE, 2, &s), -ENOSPC);
	CHECK(s == NULL);
	mock_share_errno = 0;

	ops->shm_destroy(rx);
	ops->shm_destroy(tx);
	ops->shm_destroy(NULL);
	for (i = 0; i < MOCK_REGIONS; i++)
		CHECK(!regions[i].live); /* every grant and map undone */
out:
	fivc_shm_desc_clear(&d);
	fivc_backend_close(b1);
	fivc_backend_close(b2);
	fivc_backend_close(b3);
}

static bool readable(int fd)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

static void test_mock_evch(void)
{
	struct fivc_backend *b1, *b2, *b3;
	struct fivc_evch *off = NULL, *bnd = NULL, *e = (struct fivc_evch *)&e;
	struct fivc_evch_desc d, bad;
	const struct fivc_backend_ops *ops;

	mock_reset();
	b1 = open_as(1);
	b2 = open_as(2);
	b3 = open_as(3);
	if (!b1 || !b2 || !b3)
		goto out;
	ops = b1->ops;

	CHECK_RC(ops->evch_offer(as(b1), 2, &off), 0);
	if (!off)
		goto out;
	CHECK_RC(ops->evch_describe(off, &d), 0);
	CHECK(d.kind == FIVC_BACKEND_XEN && d.domid == 1 && d.port > 0 &&
	      d.fd_wait == -1 && d.fd_kick == -1);
	/* A kick before the peer bound is dropped, not an error. */
	CHECK_RC(ops->evch_notify(off), 0);
	CHECK(mock_kicks_dropped == 1);

	/* Offered to domain 2 only. */
	CHECK_RC(ops->evch_bind(as(b3), &d, &e), -EINVAL);
	CHECK(e == NULL);
	bad = d, bad.port = d.port + 7;
	CHECK_RC(ops->evch_bind(as(b2), &bad, &e), -EINVAL);
	bad = d, bad.port = 0;
	CHECK_RC(ops->evch_bind(as(b2), &bad, &e), -EINVAL);
	bad = d, bad.domid = 2;
	CHECK_RC(ops->evch_bind(as(b2), &bad, &e), -EINVAL);
	CHECK_RC(ops->evch_offer(as(b1), 1, &e), -EINVAL);

	CHECK_RC(ops->evch_bind(as(b2), &d, &bnd), 0);
	if (!bnd)
		goto out;
	CHECK_RC(ops->evch_describe(bnd, &bad), -EINVAL);
	CHECK(ops->evch_fd(off) >= 0 && ops->evch_fd(bnd) >= 0);
	CHECK(ops->evch_fd(off) != ops->evch_fd(bnd));

	/* Nothing pending: ack returns at once. */
	CHECK_RC(ops->evch_ack(off), 0);
	CHECK_RC(ops->evch_notify(bnd), 0);
	CHECK(readable(ops->evch_fd(off)));
	CHECK(!readable(ops->evch_fd(bnd)));
	CHECK_RC(ops->evch_ack(off), 0);
	CHECK(!readable(ops->evch_fd(off)));

	/* Kicks while masked coalesce and are all consumed by one ack. */
	CHECK_RC(ops->evch_notify(off), 0);
	CHECK_RC(ops->evch_notify(off), 0);
	CHECK_RC(ops->evch_notify(off), 0);
	CHECK(readable(ops->evch_fd(bnd)));
	CHECK_RC(fivc_evch_wait(bnd, 0), 0);
	CHECK(!readable(ops->evch_fd(bnd)));
	CHECK_RC(fivc_evch_wait(bnd, 0), -ETIMEDOUT);
	CHECK_RC(fivc_evch_kick(bnd), 0);
	CHECK_RC(fivc_evch_wait(off, 0), 0);

	/* After the offerer is gone, kicks from the peer go nowhere. */
	ops->evch_destroy(off);
	off = NULL;
	CHECK_RC(ops->evch_notify(bnd), 0);
out:
	if (b1) {
		b1->ops->evch_destroy(bnd);
		b1->ops->evch_destroy(off);
		b1->ops->evch_destroy(NULL);
	}
	fivc_backend_close(b1);
	fivc_backend_close(b2);
	fivc_backend_close(b3);
	for (int p = 1; p < MOCK_PORTS; p++)
		CHECK(!ports[p].used); /* every port unbound */
}

static bool perms_are(const char *path, uint32_t self, uint32_t peer)
{
	const struct mock_node *n = node_find(path);

	return n && n->nperms == 2 && n->perms[0].id == self &&
	       n->perms[0].perms == XS_PERM_NONE && n->perms[1].id == peer &&
	       n->perms[1].perms == XS_PERM_READ;
}

static void test_mock_rendezvous(void)
{
	struct fivc_backend *b1, *b2, *b3;
	struct fivc_xrdv_data *pub = calloc(1, sizeof(*pub));
	struct fivc_xrdv_data *got = calloc(1, sizeof(*got));
	struct fivc_shm_desc sd = {.fd = -1}, rd = {.fd = -1};
	struct fivc_evch_desc ed, red;
	struct fivc_shm *tx = NULL, *rx = NULL;
	struct fivc_evch *off = NULL, *bnd = NULL;
	const struct fivc_backend_ops *ops;
	struct mock_node *n;
	uint32_t v;
	int i;

	mock_reset();
	b1 = open_as(1);
	b2 = open_as(2);
	b3 = open_as(3);
	if (!b1 || !b2 || !b3 || !pub || !got)
		goto out;
	ops = b1->ops;

	/* Domain 1 offers its control ring and event channel to domain 2. */
	CHECK_RC(ops->shm_offer(b1, 2 * PAGE, 2, &tx), 0);
	CHECK_RC(ops->evch_offer(as(b1), 2, &off), 0);
	if (!tx || !off)
		goto out;
	CHECK_RC(ops->shm_describe(tx, &sd), 0);
	CHECK_RC(ops->evch_describe(off, &ed), 0);
	fivc_xrdv_data_init(pub);
	CHECK_RC(fivc_xrdv_put_shm(pub, "tx", &sd), 0);
	CHECK_RC(fivc_xrdv_put_evch(pub, "tx", &ed), 0);
	CHECK_RC(fivc_xrdv_set_u32(pub, "n-channels", 4), 0);
	CHECK_RC(fivc_xrdv_set(pub, "stale", "from an older run"), 0);
	CHECK_RC(fivc_xrdv_publish(b1, 2, "ctl", pub), 0);
	CHECK(txn_starts == 1);
	CHECK(perms_are("/local/domain/1/data/fastivc/ctl", 1, 2));
	CHECK(perms_are("/local/domain/1/data/fastivc/ctl/tx-refs", 1, 2));
	CHECK(perms_are("/local/domain/1/data/fastivc/ctl/tx-port", 1, 2));
	CHECK(perms_are("/local/domain/1/data/fastivc/ctl/stale", 1, 2));

	/* Republishing replaces the whole directory. */
	pub->n--; /* drop "stale" */
	CHECK_RC(fivc_xrdv_publish(b1, 2, "ctl", pub), 0);
	CHECK(node_find("/local/domain/1/data/fastivc/ctl/stale") == NULL);

	/* Domain 2 reads it, maps the ring and binds the channel. */
	CHECK_RC(fivc_xrdv_read(b2, 1, "ctl", got), 0);
	CHECK(got->n == 4);
	CHECK_RC(fivc_xrdv_get_u32(got, "n-channels", &v), 0);
	CHECK(v == 4);
	CHECK_RC(fivc_xrdv_take_shm(got, "tx", 1, b2->self_domid, &rd), 0);
	CHECK_RC(fivc_xrdv_take_evch(got, "tx", 1, b2->self_domid, &red), 0);
	CHECK_RC(ops->shm_map(b2, &rd, &rx), 0);
	CHECK_RC(ops->evch_bind(as(b2), &red, &bnd), 0);
	if (rx && bnd) {
		strcpy(tx->addr, "ping");
		CHECK_RC(ops->evch_notify(off), 0);
		CHECK_RC(fivc_evch_wait(bnd, 0), 0);
		CHECK(!strcmp(rx->addr, "ping"));
	}

	/* Domain 3 was not granted read access; nobody published "nope". */
	i = txn_starts;
	CHECK_RC(fivc_xrdv_read(b3, 1, "ctl", got), -EACCES);
	CHECK(got->n == 0);
	CHECK_RC(fivc_xrdv_read(b2, 1, "nope", got), -ENOENT);
	CHECK_RC(fivc_xrdv_read(b2, 2, "ctl", got), -EINVAL); /* ourselves */
	CHECK_RC(fivc_xrdv_read(b2, 1, "Bad", got), -EINVAL);
	CHECK_RC(fivc_xrdv_publish(b1, 1, "ctl", pub), -EINVAL);
	CHECK_RC(fivc_xrdv_publish(b1, 0x7FF0, "ctl", pub), -EINVAL);
	CHECK_RC(fivc_xrdv_publish(b1, 2, "../x", pub), -EINVAL);
	/* Only the two reads that reached xenstore cost a transaction. */
	CHECK(txn_starts == i + 2);

	/* xenstored conflicts: retried, then given up on, never partial. */
	txn_eagain = 2;
	i = txn_starts;
	CHECK_RC(fivc_xrdv_publish(b1, 2, "ctl", pub), 0);
	CHECK(txn_starts == i + 3);
	txn_eagain = 1;
	CHECK_RC(fivc_xrdv_read(b2, 1, "ctl", got), 0);
	CHECK(got->n == 4);
	txn_eagain = 1000;
	CHECK_RC(fivc_xrdv_publish(b1, 2, "other", pub), -EAGAIN);
	CHECK(node_find("/local/domain/1/data/fastivc/other") == NULL);
	CHECK_RC(fivc_xrdv_read(b2, 1, "ctl", got), -EAGAIN);
	CHECK(got->n == 0);
	txn_eagain = 0;
	CHECK(!in_txn);

	/* Out of quota halfway: the transaction is aborted as a whole. */
	for (i = 0; i < (int)FIVC_XRDV_MAX_KEYS - 4; i++) {
		char key[16];

		snprintf(key, sizeof(key), "pad%d", i);
		fivc_xrdv_set(pub, key, "x");
	}
	CHECK(pub->n == FIVC_XRDV_MAX_KEYS);
	for (i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "fill%d", i);
		fivc_xrdv_publish(b1, 2, name, pub);
	}
	i = txn_aborts;
	CHECK_RC(fivc_xrdv_publish(b1, 2, "full", pub), -ENOSPC);
	CHECK(txn_aborts == i + 1 && !in_txn);
	CHECK(node_find("/local/domain/1/data/fastivc/full") == NULL);
	for (i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "fill%d", i);
		CHECK_RC(fivc_xrdv_unpublish(b1, name), 0);
	}

	/* What a hostile peer could leave in its own directory. */
	n = node_find("/local/domain/1/data/fastivc/ctl/tx-refs");
	if (n) {
		n->value[1] = '\0'; /* embedded NUL */
		CHECK_RC(fivc_xrdv_read(b2, 1, "ctl", got), -EINVAL);
		n->len = FIVC_XRDV_VALUE_MAX + 1;
		memset(n->value, '1', n->len);
		CHECK_RC(fivc_xrdv_read(b2, 1, "ctl", got), -EINVAL);
		CHECK(got->n == 0);
		snprintf(n->path, sizeof(n->path), "%s",
			 "/local/domain/1/data/fastivc/ctl/Tx-refs");
		n->len = 1;
		CHECK_RC(fivc_xrdv_read(b2, 1, "ctl", got), -EINVAL);
	}
	CHECK_RC(fivc_xrdv_unpublish(b1, "ctl"), 0);
	fivc_xrdv_data_init(pub);
	for (i = 0; i < (int)FIVC_XRDV_MAX_KEYS; i++) {
		char key[16];

		snprintf(key, sizeof(key), "k%d", i);
		fivc_xrdv_set(pub, key, "x");
	}
	CHECK_RC(fivc_xrdv_publish(b1, 2, "ctl", pub), 0);
	/* One key more than allowed, written behind our back. */
	{
		struct xs_handle *xs = fivc_xen_backend_xs(b1);

		CHECK(xs &&
		      xs_write(xs, XBT_NULL,
			       "/local/domain/1/data/fastivc/ctl/k99", "x", 1));
	}
	CHECK_RC(fivc_xrdv_read(b2, 1, "ctl", got), -EINVAL);

	/* Unpublish: gone for the reader; twice is fine. */
	CHECK_RC(fivc_xrdv_unpublish(b1, "ctl"), 0);
	CHECK_RC(fivc_xrdv_read(b2, 1, "ctl", got), -ENOENT);
	CHECK_RC(fivc_xrdv_unpublish(b1, "ctl"), 0);
	CHECK_RC(fivc_xrdv_unpublish(b1, "a.b"), -EINVAL);
out:
	if (b1) {
		b1->ops->evch_destroy(bnd);
		b1->ops->evch_destroy(off);
		b1->ops->shm_destroy(rx);
		b1->ops->shm_destroy(tx);
	}
	fivc_shm_desc_clear(&sd);
	fivc_shm_desc_clear(&rd);
	fivc_backend_close(b1);
	fivc_backend_close(b2);
	fivc_backend_close(b3);
	free(pub);
	free(got);
}

int main(void)
{
	run("xrdv_names", test_names);
	run("xrdv_paths", test_paths);
	run("xrdv_parse_u32", test_parse_u32);
	run("xrdv_format_refs", test_format_refs);
	run("xrdv_parse_refs_good", test_parse_refs_good);
	run("xrdv_parse_refs_bad", test_parse_refs_bad);
	run("xrdv_kv", test_kv);
	run("xen_desc_checks", test_desc_checks);
	run("xrdv_desc_kv", test_desc_kv);
	run("xen_open_this_machine", test_open_here);
	run("xrdv_not_xen", test_not_xen);

	mock_on = true;
	run("xen_mock_open", test_mock_open);
	run("xen_mock_shm", test_mock_shm);
	run("xen_mock_evch", test_mock_evch);
	run("xen_mock_rendezvous", test_mock_rendezvous);
	mock_reset();
	mock_on = false;

	return failures ? 1 : 0;
}
