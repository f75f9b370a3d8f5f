// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * xen_forge: a hostile peer on a fastivc control link over Xen.
 *
 *   xen_forge PEER_DOMID [LIVE_FLOWS]
 *
 * Run as root in a domU whose own agent is stopped (SIGSTOP: its BPF still
 * puts the option on SYN-ACKs, so the peer's agent still steers connections
 * to us and sends us their CREATEs). It takes the agent's place on the link
 * to PEER_DOMID the way agent/xlink.c sets one up (what it mirrors:
 * xlink_offer, xlink_publish, xlink_poll, xlink_attach; the same geometry
 * and rendezvous name link-<peer>, a fresh "nonce", "for" once we mapped
 * the peer's ring, which we map only while its offer is fresh or paired
 * with ours). There is no HELLO on this backend: the xenstore path names the
 * domain. Then, never accepting anything:
 *   live      for each of the first LIVE_FLOWS (default 3) CREATEs the peer
 *             sends for a real flow, a CREATE of ours for the same tunnel:
 *             region and event channel of domain 0, then of the peer itself,
 *             then of us with grant refs we never made. Expected: REJECT
 *             EPERM, EPERM, then any REJECT.
 *   flood     FLOOD CREATEs for tunnels that do not exist: each REJECTed,
 *             EBUSY past the peer's bound on parked messages, ENOENT once a
 *             parked one expires.
 *   geometry  a CREATE whose geometry needs more than its region (an
 *             oversized ring): malformed, so the peer must drop the link.
 * Prints "ok - NAME" or "not ok - NAME" per check, then one line
 * "xen_forge: summary: ..."; exits non-zero on any failure.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "../util/testutil.h"
#include "fastivc/ring_wait.h"
#include "fastivc/tunnel_msg.h"
#include "fastivc/xen_rendezvous.h"

/* agent/xlink.c's XLINK_CHANNELS and XLINK_CHANNEL_SIZE: the peer checks. */
#define LINK_CHANNELS 2u
#define LINK_CHANNEL_SIZE (16u * 1024u)
#define SETUP_S 120.0	/* the peer notices our offer within a second */
#define LIVE_S 60.0	/* the peer's client connects once we are up */
#define REPLY_S 20.0	/* a REJECT for a live flow */
#define FLOOD 256u	/* the lab's bound: 4 x pool = 128 */
#define FLOOD_S 40.0	/* parked ones expire after setup_timeout_ms (10 s) */
#define DROP_S 20.0	/* the peer drops a link that sent a malformed frame */
#define KEEPALIVE_S 1.0 /* the peer drops a link silent for 10 s */
#define WAIT_MS 30000
#define MAX_LIVE 8u
/* Grant refs far above any grant table's size: never a real grant. */
#define GARBAGE_REF 0x7fff0000u

struct forge {
	struct fivc_backend *be;
	uint32_t peer, self;
	uint32_t nonce, peer_nonce; /* ours; the peer's offer we mapped */
	struct fivc_ring_geom g;
	struct fivc_shm *tx_shm, *rx_shm;
	struct fivc_evch *tx_ev, *rx_ev;
	struct fivc_tx tx;
	struct fivc_rx rx;
	bool tx_ready, rx_ready;
	struct fivc_spin tx_spin, rx_spin;
	uint8_t in[FIVC_TMSG_MAX_SIZE]; /* what came of the next message */
	size_t in_len;
	double last_tx;
	char name[FIVC_XRDV_NAME_MAX + 1];	/* ours: link-<peer> */
	char peer_name[FIVC_XRDV_NAME_MAX + 1]; /* the peer's: link-<self> */
};

static int failures;

static void __attribute__((format(printf, 2, 3)))
report(bool ok, const char *fmt, ...)
{
	va_list ap;

	if (!ok)
		failures++;
	printf("%s - ", ok ? "ok" : "not ok");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static const char *errname(uint32_t e)
{
	static char buf[16];

	switch (e) {
	case EPERM:
		return "EPERM";
	case ENOENT:
		return "ENOENT";
	case EBUSY:
		return "EBUSY";
	case EINVAL:
		return "EINVAL";
	case ENOMEM:
		return "ENOMEM";
	case EFAULT:
		return "EFAULT";
	default:
		snprintf(buf, sizeof(buf), "errno %u", e);
		return buf;
	}
}

/* As xlink_publish: our ring, event channel, nonce and pairing. */
static int publish(struct forge *f)
{
	const struct fivc_backend_ops *ops = f->be->ops;
	struct fivc_shm_desc d = {.fd = -1};
	struct fivc_evch_desc ed;
	struct fivc_xrdv_data dd;
	int err;

	fivc_xrdv_data_init(&dd);
	err = ops->shm_describe(f->tx_shm, &d);
	if (!err)
		err = ops->evch_describe(f->tx_ev, &ed);
	if (!err)
		err = fivc_xrdv_put_shm(&dd, "ring", &d);
	if (!err)
		err = fivc_xrdv_put_evch(&dd, "ev", &ed);
	if (!err)
		err = fivc_xrdv_set_u32(&dd, "nonce", f->nonce);
	if (!err)
		err = fivc_xrdv_set_u32(&dd, "for", f->peer_nonce);
	if (!err)
		err = fivc_xrdv_publish(f->be, f->peer, f->name, &dd);
	fivc_shm_desc_clear(&d);
	return err;
}

/* As xlink_offer: a fresh offer of our ring and event channel. */
static int offer(struct forge *f)
{
	const struct fivc_backend_ops *ops = f->be->ops;
	struct fivc_kick kick;
	int err;

	do {
		if (getrandom(&f->nonce, sizeof(f->nonce), 0) < 0)
			f->nonce = (uint32_t)(now_sec() * 1e6);
	} while (!f->nonce);
	err = ops->shm_offer(f->be, fivc_ring_region_size(&f->g), f->peer,
			     &f->tx_shm);
	if (!err)
		err = ops->evch_offer(f->be, f->peer, &f->tx_ev);
	if (err)
		return err;
	kick.fn = fivc_evch_kick;
	kick.arg = f->tx_ev;
	err = fivc_tx_init(&f->tx, f->tx_shm->addr, f->tx_shm->size, &f->g,
			   &kick);
	f->tx_ready = !err;
	return err ? err : publish(f);
}

/* As xlink_attach: map the peer's offer as our rx, then name it in "for". */
static int attach(struct forge *f, const struct fivc_xrdv_data *dd,
		  uint32_t nonce)
{
	const struct fivc_backend_ops *ops = f->be->ops;
	struct fivc_shm_desc d = {.fd = -1};
	struct fivc_evch_desc ed;
	struct fivc_kick kick;
	int err;

	err = fivc_xrdv_take_shm(dd, "ring", f->peer, f->self, &d);
	if (!err)
		err = fivc_xrdv_take_evch(dd, "ev", f->peer, f->self, &ed);
	if (!err)
		err = ops->shm_map(f->be, &d, &f->rx_shm);
	fivc_shm_desc_clear(&d);
	if (!err)
		err = ops->evch_bind(f->be, &ed, &f->rx_ev);
	if (err)
		return err;
	kick.fn = fivc_evch_kick;
	kick.arg = f->rx_ev;
	err = fivc_rx_attach(&f->rx, f->rx_shm->addr, f->rx_shm->size, &f->g, 0,
			     &kick);
	f->rx_ready = !err;
	if (err)
		return err;
	f->peer_nonce = nonce;
	return publish(f);
}

/* The peer's offer: 0, or -errno while it is absent or being rewritten. */
static int read_offer(struct forge *f, uint32_t *nonce, uint32_t *paired)
{
	struct fivc_xrdv_data dd;
	int err = fivc_xrdv_read(f->be, f->peer, f->peer_name, &dd);

	if (!err)
		err = fivc_xrdv_get_u32(&dd, "nonce", nonce);
	if (!err)
		err = fivc_xrdv_get_u32(&dd, "for", paired);
	return err;
}

/* As xlink_poll, until the link is up at both ends. */
static int link_setup(struct forge *f)
{
	double t0 = now_sec();

	while (now_sec() - t0 < SETUP_S) {
		struct fivc_xrdv_data dd;
		uint32_t nonce, paired;
		int err = fivc_xrdv_read(f->be, f->peer, f->peer_name, &dd);

		if (!err)
			err = fivc_xrdv_get_u32(&dd, "nonce", &nonce);
		if (!err)
			err = fivc_xrdv_get_u32(&dd, "for", &paired);
		if (err) {
			/* not offered yet, or being rewritten */
		} else if (!f->rx_ready) {
			/* Fresh, or paired with us: never a stale stream. */
			if (nonce && (!paired || paired == f->nonce)) {
				err = attach(f, &dd, nonce);
				if (err)
					return err;
			}
		} else if (nonce != f->peer_nonce) {
			return -ECONNRESET; /* the peer agent restarted */
		} else if (paired == f->nonce) {
			return 0;
		}
		usleep(250 * 1000);
	}
	return -ETIMEDOUT;
}

static void forge_close(struct forge *f)
{
	const struct fivc_backend_ops *ops;

	if (!f->be)
		return;
	ops = f->be->ops;
	fivc_xrdv_unpublish(f->be, f->name);
	if (f->tx_ready)
		fivc_tx_reset(&f->tx);
	if (f->rx_ready)
		fivc_rx_reset(&f->rx);
	ops->evch_destroy(f->rx_ev);
	ops->shm_destroy(f->rx_shm);
	ops->evch_destroy(f->tx_ev);
	ops->shm_destroy(f->tx_shm);
	fivc_backend_close(f->be);
}

static int send_bytes(struct forge *f, const void *buf, size_t len)
{
	ssize_t n = fivc_tx_write_all(&f->tx, f->tx_ev, &f->tx_spin, buf, len,
				      WAIT_MS);

	f->last_tx = now_sec();
	if (n < 0)
		return (int)n;
	return (size_t)n == len ? 0 : -EIO;
}

static int send_msg(struct forge *f, const struct fivc_tunnel_msg *m)
{
	static uint8_t buf[FIVC_TMSG_MAX_SIZE];
	ssize_t n = fivc_tunnel_msg_encode(m, buf, sizeof(buf));

	return n < 0 ? (int)n : send_bytes(f, buf, (size_t)n);
}

/*
 * The next message from the peer, waiting at most @timeout_s and saying
 * our keepalives meanwhile: 0 (release @m), -ETIMEDOUT, -EPIPE or
 * -ECONNRESET once the peer closed or reset its ring, -EINVAL.
 */
static int recv_msg(struct forge *f, struct fivc_tunnel_msg *m,
		    double timeout_s)
{
	double t0 = now_sec();

	for (;;) {
		size_t need = FIVC_TMSG_HDR_SIZE;
		const void *buf;
		ssize_t n;

		if (f->in_len >= FIVC_TMSG_HDR_SIZE) {
			n = fivc_tunnel_msg_frame_len(f->in, f->in_len);
			if (n < 0 || (size_t)n > sizeof(f->in))
				return -EINVAL;
			need = (size_t)n;
			if (f->in_len == need) {
				f->in_len = 0;
				return fivc_tunnel_msg_decode(f->in, need, m,
							      NULL);
			}
		}
		n = fivc_rx_peek(&f->rx, &buf);
		if (n > 0) {
			size_t take = need - f->in_len;

			if ((size_t)n < take)
				take = (size_t)n;
			memcpy(f->in + f->in_len, buf, take);
			f->in_len += take;
			fivc_rx_release(&f->rx, take);
			continue;
		}
		if (n == 0)
			return -EPIPE;
		if (n != -EAGAIN)
			return (int)n;
		if (now_sec() - t0 > timeout_s)
			return -ETIMEDOUT;
		if (now_sec() - f->last_tx >= KEEPALIVE_S) {
			struct fivc_tunnel_msg k;
			int err;

			fivc_tunnel_msg_init(&k, FIVC_TMSG_KEEPALIVE, 0);
			err = send_msg(f, &k);
			if (err)
				return err;
		}
		fivc_rx_wait(&f->rx, f->rx_ev, &f->rx_spin, 200);
	}
}

/*
 * A CREATE for tunnel @id naming a region and event channel of @domid,
 * with grant refs nobody made; @refs has room for the region's pages.
 */
static void forged_create(struct forge *f, struct fivc_tunnel_msg *m,
			  uint64_t id, uint32_t domid, uint32_t *refs)
{
	size_t size = fivc_ring_region_size(&f->g);

	size = (size + FIVC_XEN_PAGE_SIZE - 1) &
	       ~(size_t)(FIVC_XEN_PAGE_SIZE - 1);
	fivc_tunnel_msg_init(m, FIVC_TMSG_CREATE, id);
	m->geom = f->g;
	m->shm.kind = FIVC_BACKEND_XEN;
	m->shm.size = (uint32_t)size;
	m->shm.domid = domid;
	m->shm.n_refs = (uint32_t)(size / FIVC_XEN_PAGE_SIZE);
	m->shm.refs = refs;
	m->shm.fd = -1;
	for (uint32_t i = 0; i < m->shm.n_refs; i++)
		refs[i] = GARBAGE_REF + i;
	m->has_evch = true;
	m->evch.kind = FIVC_BACKEND_XEN;
	m->evch.domid = domid;
	m->evch.port = 4242;
	m->evch.fd_wait = m->evch.fd_kick = -1;
}

struct live_case {
	const char *what;
	uint32_t domid; /* named by the region and event channel */
	bool want_eperm;
	uint64_t id;
	bool sent, answered, accepted;
	uint32_t reason;
};

/* Answer the peer's real CREATEs with forged ones for the same tunnels. */
static void live_phase(struct forge *f, struct live_case *c, uint32_t n,
		       char *sum, size_t len)
{
	static uint32_t refs[FIVC_SHM_MAX_PAGES];
	uint32_t n_sent = 0, n_answered = 0;
	double t0 = now_sec(), last_sent = 0;
	int err = 0;

	while (n_answered < n) {
		struct fivc_tunnel_msg m;
		double left = n_sent < n ? LIVE_S - (now_sec() - t0)
					 : REPLY_S - (now_sec() - last_sent);

		if (left <= 0) {
			err = -ETIMEDOUT;
			break;
		}
		err = recv_msg(f, &m, left);
		if (err == -ETIMEDOUT)
			continue;
		if (err)
			break;
		if (m.type == FIVC_TMSG_CREATE && n_sent < n) {
			struct fivc_tunnel_msg fm;

			c[n_sent].id = m.tunnel_id;
			forged_create(f, &fm, m.tunnel_id, c[n_sent].domid,
				      refs);
			err = send_msg(f, &fm);
			if (err)
				break;
			c[n_sent++].sent = true;
			last_sent = now_sec();
		} else if (m.type == FIVC_TMSG_REJECT ||
			   m.type == FIVC_TMSG_ACCEPT) {
			for (uint32_t i = 0; i < n_sent; i++) {
				if (c[i].id != m.tunnel_id || c[i].answered)
					continue;
				c[i].answered = true;
				c[i].accepted = m.type == FIVC_TMSG_ACCEPT;
				c[i].reason = m.reason;
				n_answered++;
			}
		}
		fivc_tunnel_msg_release(&m);
	}
	for (uint32_t i = 0; i < n; i++) {
		const char *got = !c[i].sent	   ? "no live flow to forge for"
				  : !c[i].answered ? "no answer"
				  : c[i].accepted  ? "ACCEPT"
						   : errname(c[i].reason);
		bool ok = c[i].answered && !c[i].accepted &&
			  (!c[i].want_eperm || c[i].reason == EPERM);
		size_t l = strlen(sum);

		report(ok, "xen_forge: forged CREATE for a live flow, %s: %s%s",
		       c[i].what,
		       c[i].answered && !c[i].accepted ? "REJECT " : "", got);
		snprintf(sum + l, len - l, "%s%s %s", l ? ", " : "", c[i].what,
			 got);
	}
	if (err && err != -ETIMEDOUT)
		printf("xen_forge: the link failed: %s\n", strerror(-err));
}

/* CREATEs for tunnels that do not exist: the peer parks a bounded few. */
static void flood_phase(struct forge *f, char *sum, size_t len)
{
	static uint32_t refs[FIVC_SHM_MAX_PAGES];
	static uint64_t ids[FLOOD];
	static bool answered[FLOOD];
	uint32_t n_ebusy = 0, n_enoent = 0, n_other = 0, n_accept = 0, n = 0;
	double t0;
	int err = 0;
	size_t l;

	for (uint32_t i = 0; i < FLOOD && !err; i++) {
		struct fivc_tunnel_msg m;

		if (getrandom(&ids[i], sizeof(ids[i]), 0) < 0)
			ids[i] = ((uint64_t)f->nonce << 32) | i;
		forged_create(f, &m, ids[i], f->self, refs);
		err = send_msg(f, &m);
	}
	t0 = now_sec();
	while (!err && n < FLOOD && now_sec() - t0 < FLOOD_S) {
		struct fivc_tunnel_msg m;

		err = recv_msg(f, &m, FLOOD_S - (now_sec() - t0));
		if (err == -ETIMEDOUT) {
			err = 0;
			continue;
		}
		if (err)
			break;
		for (uint32_t i = 0; i < FLOOD; i++) {
			if (ids[i] != m.tunnel_id || answered[i] ||
			    (m.type != FIVC_TMSG_REJECT &&
			     m.type != FIVC_TMSG_ACCEPT))
				continue;
			answered[i] = true;
			n++;
			if (m.type == FIVC_TMSG_ACCEPT)
				n_accept++;
			else if (m.reason == EBUSY)
				n_ebusy++;
			else if (m.reason == ENOENT)
				n_enoent++;
			else
				n_other++;
		}
		fivc_tunnel_msg_release(&m);
	}
	report(!err && n == FLOOD && !n_accept && n_ebusy,
	       "xen_forge: %u CREATEs for no flow: %u answered, %u REJECT "
	       "EBUSY (the parked bound), %u REJECT ENOENT (expired), "
	       "%u other REJECT, %u ACCEPT%s%s",
	       FLOOD, n, n_ebusy, n_enoent, n_other, n_accept, err ? ": " : "",
	       err ? strerror(-err) : "");
	l = strlen(sum);
	snprintf(sum + l, len - l, ", flood %u: %u EBUSY %u ENOENT %u ACCEPT",
		 FLOOD, n_ebusy, n_enoent, n_accept);
}

/* A CREATE whose ring needs more than its region: the link must go. */
static void geometry_phase(struct forge *f, char *sum, size_t len)
{
	static uint32_t refs[FIVC_SHM_MAX_PAGES];
	static uint8_t buf[FIVC_TMSG_MAX_SIZE];
	struct fivc_tunnel_msg m;
	uint64_t id;
	uint32_t nonce, paired, big = 64u << 20;
	double t0;
	ssize_t n;
	int err;
	size_t l;

	if (getrandom(&id, sizeof(id), 0) < 0)
		id = f->nonce;
	forged_create(f, &m, id, f->self, refs);
	n = fivc_tunnel_msg_encode(&m, buf, sizeof(buf));
	err = n < 0 ? (int)n : 0;
	if (!err) {
		/* channel_size (LE, as x86): 64 MiB in a few pages */
		memcpy(buf + FIVC_TMSG_HDR_SIZE + 4, &big, sizeof(big));
		err = send_bytes(f, buf, (size_t)n);
	}
	t0 = now_sec();
	while (!err && now_sec() - t0 < DROP_S) {
		err = recv_msg(f, &m, 0.5);
		if (!err) {
			bool accepted =
				m.type == FIVC_TMSG_ACCEPT && m.tunnel_id == id;

			fivc_tunnel_msg_release(&m);
			if (accepted) {
				err = -EBADMSG;
				break;
			}
			continue;
		}
		if (err != -ETIMEDOUT)
			break;
		err = 0;
		/* Or its fresh offer replaced the one we mapped. */
		if (!read_offer(f, &nonce, &paired) && nonce != f->peer_nonce) {
			err = -ECONNRESET;
			break;
		}
	}
	report(err == -ECONNRESET || err == -EPIPE,
	       "xen_forge: a CREATE whose geometry outgrows its region: %s",
	       err == -ECONNRESET || err == -EPIPE ? "the peer dropped the link"
	       : err == -EBADMSG		   ? "ACCEPT"
	       : err				   ? strerror(-err)
						   : "the link stayed up");
	l = strlen(sum);
	snprintf(sum + l, len - l, ", bad geometry: %s",
		 err == -ECONNRESET || err == -EPIPE ? "link dropped"
						     : "link kept");
}

static int usage(void)
{
	fprintf(stderr, "usage: xen_forge PEER_DOMID [LIVE_FLOWS]\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct forge f = {0};
	struct live_case c[MAX_LIVE];
	uint32_t n_live = 3;
	char sum[512] = "";
	int err;

	if (argc < 2 || argc > 3 || fivc_xrdv_parse_u32(argv[1], &f.peer) ||
	    (argc == 3 &&
	     (fivc_xrdv_parse_u32(argv[2], &n_live) || n_live > MAX_LIVE)))
		return usage();
	fivc_ring_geom_default(&f.g);
	f.g.n_channels = LINK_CHANNELS;
	f.g.channel_size = LINK_CHANNEL_SIZE;
	fivc_spin_init(&f.tx_spin, 200);
	fivc_spin_init(&f.rx_spin, 200);
	snprintf(f.name, sizeof(f.name), "link-%u", f.peer);

	err = fivc_backend_open_xen(&f.be);
	if (!err) {
		f.self = f.be->self_domid;
		snprintf(f.peer_name, sizeof(f.peer_name), "link-%u", f.self);
		err = offer(&f);
	}
	if (!err)
		err = link_setup(&f);
	report(!err,
	       "xen_forge: link up with domain %u's agent in place of ours%s%s",
	       f.peer, err ? ": " : "", err ? strerror(-err) : "");
	if (!err) {
		/* The first three kinds; more live flows repeat the third. */
		for (uint32_t i = 0; i < n_live; i++) {
			c[i] = (struct live_case){.what = "garbage grant refs",
						  .domid = f.self};
			if (i == 0)
				c[i] = (struct live_case){.what = "domain 0",
							  .domid = 0,
							  .want_eperm = true};
			if (i == 1)
				c[i] = (struct live_case){
					.what = "the peer's own domain",
					.domid = f.peer,
					.want_eperm = true};
		}
		live_phase(&f, c, n_live, sum, sizeof(sum));
		flood_phase(&f, sum, sizeof(sum));
		geometry_phase(&f, sum, sizeof(sum));
		printf("xen_forge: summary: %s\n", sum);
	}
	forge_close(&f);
	return err || failures ? 1 : 0;
}
