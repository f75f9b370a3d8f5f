// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Control links over Xen (backend = xen): one per pair of domains, set up
 * once through xenstore and reused by every tunnel, so that a connection
 * costs no xenstore transaction.
 *
 * Each agent offers the ring of its own direction (grant pages) and an
 * event channel to the peer and publishes them, readable by the peer only,
 * under /local/domain/<self>/data/fastivc/link-<peer>/ (xen_rendezvous.h),
 * with "nonce", naming this offer, and "for", the nonce of the peer's offer
 * it is paired with (0 while fresh). An agent maps the peer's ring only if
 * that offer is fresh or paired with its own, so a restarted agent never
 * reads a ring that still carries its previous instance's stream. The link
 * is up once each side has mapped the other's (the peer's "for" names our
 * nonce); only then does coresident.c put the peer's addresses in the peers
 * map, so a domain without a working agent stays on plain TCP.
 *
 * link.c speaks through one end of a socketpair; this file pumps bytes
 * between the other end and the two rings, so framing, queueing and
 * dispatch stay in link.c. A link dies when the peer closes or resets its
 * ring, when its offer changes or disappears (a restart, xl destroy: read
 * every second), or when link.c hears no keepalive (a killed agent). Then
 * link.c resets the flows on it, this file tears both rings down and
 * publishes a fresh offer.
 *
 * A message split across a full ring arrives in pieces, each pumped by
 * this same thread: link.c never waits for the rest (it keeps what came,
 * with a deadline), or the agent would stall on its own pump.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "link.h"
#include "fastivc/log.h"
#include "fastivc/xen_rendezvous.h"

#define XLINK_CHANNELS 2u
#define XLINK_CHANNEL_SIZE (16u * 1024u)
/* How often the peer's offer is read: while setting up, once up. */
#define XLINK_SETUP_POLL_NS (250 * 1000000ULL)
#define XLINK_UP_POLL_NS (1000 * 1000000ULL)

struct xlink {
	uint32_t peer;
	uint32_t nonce;		 /* names our offer */
	uint32_t peer_nonce;	 /* the peer's offer we mapped; 0: none yet */
	bool wanted;		 /* the peer is in dom0's list */
	bool up;		 /* the peer mapped ours too */
	bool dead;		 /* freed: skip it while walking the list */
	bool tx_ready, rx_ready; /* fivc_tx_init / fivc_rx_attach done */
	struct fivc_shm *tx_shm, *rx_shm;
	struct fivc_evch *tx_ev, *rx_ev;
	struct fivc_tx tx;
	struct fivc_rx rx;
	struct agent_watch w_sock, w_tx_ev, w_rx_ev; /* w_sock.fd: our end */
	uint32_t sock_events;
	uint64_t next_poll_ns;
	struct xlink *next;
};

static void link_geom(struct fivc_ring_geom *g)
{
	fivc_ring_geom_default(g);
	g->n_channels = XLINK_CHANNELS;
	g->channel_size = XLINK_CHANNEL_SIZE;
}

static void rdv_name(char *buf, size_t len, uint32_t peer)
{
	snprintf(buf, len, "link-%u", peer);
}

static void sock_want(struct agent *a, struct xlink *x, uint32_t events)
{
	if (x->sock_events != events) {
		x->sock_events = events;
		agent_watch_mod(a, &x->w_sock, events);
	}
}

static struct xlink *xlink_find(struct agent *a, uint32_t peer)
{
	struct xlink *x;

	for (x = a->xlinks; x; x = x->next)
		if (x->peer == peer)
			return x;
	return NULL;
}

/*
 * Tear @x down and forget it. link.c sees its socket close and resets the
 * flows on it; the caller updates the peers map.
 */
static void xlink_free(struct agent *a, struct xlink *x, bool orderly)
{
	const struct fivc_backend_ops *ops = a->be->ops;
	struct xlink **pp;

	for (pp = &a->xlinks; *pp; pp = &(*pp)->next) {
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	}
	x->dead = true;
	if (x->w_sock.fn) {
		agent_watch_del(a, &x->w_sock);
		close(x->w_sock.fd);
	}
	agent_watch_del(a, &x->w_tx_ev);
	agent_watch_del(a, &x->w_rx_ev);
	/* Orderly: the peer reads end of stream; else it sees a reset. */
	if (x->tx_ready && orderly)
		fivc_tx_close(&x->tx);
	else if (x->tx_ready)
		fivc_tx_reset(&x->tx);
	if (x->rx_ready && orderly)
		fivc_rx_close(&x->rx);
	else if (x->rx_ready)
		fivc_rx_reset(&x->rx);
	ops->evch_destroy(x->tx_ev);
	ops->evch_destroy(x->rx_ev);
	ops->shm_destroy(x->tx_shm);
	ops->shm_destroy(x->rx_shm);
	agent_defer_free(a, x);
}

static int xlink_publish(struct agent *a, struct xlink *x)
{
	const struct fivc_backend_ops *ops = a->be->ops;
	struct fivc_shm_desc d = {.fd = -1};
	struct fivc_evch_desc ed;
	struct fivc_xrdv_data dd;
	char name[FIVC_XRDV_NAME_MAX + 1];
	int err;

	rdv_name(name, sizeof(name), x->peer);
	fivc_xrdv_data_init(&dd);
	err = ops->shm_describe(x->tx_shm, &d);
	if (!err)
		err = ops->evch_describe(x->tx_ev, &ed);
	if (!err)
		err = fivc_xrdv_put_shm(&dd, "ring", &d);
	if (!err)
		err = fivc_xrdv_put_evch(&dd, "ev", &ed);
	if (!err)
		err = fivc_xrdv_set_u32(&dd, "nonce", x->nonce);
	if (!err)
		err = fivc_xrdv_set_u32(&dd, "for", x->peer_nonce);
	if (!err)
		err = fivc_xrdv_publish(a->be, x->peer, name, &dd);
	fivc_shm_desc_clear(&d);
	return err;
}

/* A fresh offer to @peer: our ring and event channel, published. */
static int xlink_offer(struct agent *a, uint32_t peer)
{
	const struct fivc_backend_ops *ops = a->be->ops;
	struct xlink *x = calloc(1, sizeof(*x));
	struct fivc_ring_geom g;
	struct fivc_kick kick;
	int err;

	if (!x)
		return -ENOMEM;
	x->peer = peer;
	x->wanted = true;
	x->next = a->xlinks;
	a->xlinks = x;
	link_geom(&g);
	do {
		if (getrandom(&x->nonce, sizeof(x->nonce), 0) < 0)
			x->nonce = (uint32_t)agent_now_ns();
	} while (!x->nonce);
	err = ops->shm_offer(a->be, fivc_ring_region_size(&g), peer,
			     &x->tx_shm);
	if (!err)
		err = ops->evch_offer(a->be, peer, &x->tx_ev);
	if (!err) {
		kick.fn = fivc_evch_kick;
		kick.arg = x->tx_ev;
		err = fivc_tx_init(&x->tx, x->tx_shm->addr, x->tx_shm->size, &g,
				   &kick);
		x->tx_ready = !err;
	}
	if (!err)
		err = xlink_publish(a, x);
	if (err) {
		pr_warn("link to domain %u: cannot offer a ring: %s", peer,
			strerror(-err));
		xlink_free(a, x, false);
		return err;
	}
	pr_debug("link to domain %u: offered (nonce %08x)", peer, x->nonce);
	return 0;
}

/* The link cannot go on: tear it down and, if still wanted, offer anew. */
static void xlink_fail(struct agent *a, struct xlink *x, const char *why)
{
	uint32_t peer = x->peer;
	bool wanted = x->wanted, was_up = x->up;

	pr_info("link to domain %u down: %s", peer, why);
	xlink_free(a, x, false);
	if (wanted)
		xlink_offer(a, peer);
	if (was_up)
		a->xlinks_changed(a); /* its addresses leave the peers map */
}

/* link.c's bytes -> our ring. */
static void pump_out(struct agent *a, struct xlink *x)
{
	for (;;) {
		void *buf;
		size_t room;
		ssize_t n;
		int err = fivc_tx_reserve(&x->tx, &buf, &room);

		if (err == -EAGAIN) {
			fivc_tx_flush(&x->tx);
			if (fivc_tx_prepare_wait(&x->tx)) {
				sock_want(a, x, x->sock_events & ~EPOLLIN);
				return;
			}
			continue;
		}
		if (err) {
			xlink_fail(a, x,
				   err == -ECONNRESET ? "peer reset its ring"
						      : "ring broken (tx)");
			return;
		}
		n = recv(x->w_sock.fd, buf, room, MSG_DONTWAIT);
		if (n > 0) {
			fivc_tx_commit(&x->tx, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EAGAIN) {
			fivc_tx_flush(&x->tx);
			sock_want(a, x, x->sock_events | EPOLLIN);
			return;
		}
		xlink_fail(a, x, "closed here");
		return;
	}
}

/* The peer's ring -> link.c. */
static void pump_in(struct agent *a, struct xlink *x)
{
	for (;;) {
		const void *buf;
		ssize_t n = fivc_rx_peek(&x->rx, &buf), s;

		if (n == -EAGAIN) {
			if (fivc_rx_prepare_wait(&x->rx))
				return;
			continue;
		}
		if (n <= 0) {
			xlink_fail(a, x,
				   !n		      ? "peer closed its ring"
				   : n == -ECONNRESET ? "peer reset its ring"
						      : "ring broken (rx)");
			return;
		}
		s = send(x->w_sock.fd, buf, (size_t)n,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (s > 0) {
			fivc_rx_release(&x->rx, (size_t)s);
			continue;
		}
		if (s < 0 && errno == EAGAIN) {
			sock_want(a, x, x->sock_events | EPOLLOUT);
			return;
		}
		xlink_fail(a, x, "closed here");
		return;
	}
}

static void sock_ready(struct agent *a, struct agent_watch *w, uint32_t events)
{
	struct xlink *x = container_of(w, struct xlink, w_sock);

	if (events & EPOLLOUT) {
		sock_want(a, x, x->sock_events & ~EPOLLOUT);
		pump_in(a, x);
		if (!w->live)
			return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		pump_out(a, x);
}

static void tx_ev_ready(struct agent *a, struct agent_watch *w, uint32_t events)
{
	struct xlink *x = container_of(w, struct xlink, w_tx_ev);

	(void)events;
	a->be->ops->evch_ack(x->tx_ev);
	pump_out(a, x);
}

static void rx_ev_ready(struct agent *a, struct agent_watch *w, uint32_t events)
{
	struct xlink *x = container_of(w, struct xlink, w_rx_ev);

	(void)events;
	a->be->ops->evch_ack(x->rx_ev);
	pump_in(a, x);
}

static int watch(struct agent *a, struct agent_watch *w, int fd,
		 void (*fn)(struct agent *, struct agent_watch *, uint32_t),
		 uint32_t events)
{
	int err;

	w->fd = fd;
	w->fn = fn;
	err = agent_watch_add(a, w, events);
	if (err)
		w->fn = NULL;
	return err;
}

/* Map the peer's offer as our receive direction and hand link.c its end. */
static int xlink_attach(struct agent *a, struct xlink *x,
			const struct fivc_xrdv_data *dd, uint32_t nonce)
{
	const struct fivc_backend_ops *ops = a->be->ops;
	struct fivc_shm_desc d = {.fd = -1};
	struct fivc_evch_desc ed;
	struct fivc_ring_geom g;
	struct fivc_kick kick;
	int sv[2], err;

	link_geom(&g);
	err = fivc_xrdv_take_shm(dd, "ring", x->peer, a->be->self_domid, &d);
	if (!err)
		err = fivc_xrdv_take_evch(dd, "ev", x->peer, a->be->self_domid,
					  &ed);
	if (!err)
		err = ops->shm_map(a->be, &d, &x->rx_shm);
	fivc_shm_desc_clear(&d);
	if (!err)
		err = ops->evch_bind(a->be, &ed, &x->rx_ev);
	if (!err) {
		kick.fn = fivc_evch_kick;
		kick.arg = x->rx_ev;
		err = fivc_rx_attach(&x->rx, x->rx_shm->addr, x->rx_shm->size,
				     &g, 0, &kick);
		x->rx_ready = !err;
	}
	if (err)
		return err;
	x->peer_nonce = nonce;
	err = xlink_publish(a, x); /* "for" now names the peer's offer */
	if (err)
		return err;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0,
		       sv))
		return -errno;
	x->sock_events = EPOLLIN;
	err = watch(a, &x->w_sock, sv[0], sock_ready, EPOLLIN);
	if (err) {
		close(sv[0]);
		close(sv[1]);
		return err;
	}
	if (!link_adopt(a, sv[1], x->peer))
		return -ENOMEM;
	err = watch(a, &x->w_tx_ev, ops->evch_fd(x->tx_ev), tx_ev_ready,
		    EPOLLIN);
	if (!err)
		err = watch(a, &x->w_rx_ev, ops->evch_fd(x->rx_ev), rx_ev_ready,
			    EPOLLIN);
	return err;
}

/* Read the peer's offer and move the link along; false if @x is gone. */
static bool xlink_poll(struct agent *a, struct xlink *x)
{
	struct fivc_xrdv_data dd;
	char name[FIVC_XRDV_NAME_MAX + 1];
	uint32_t nonce, paired_with;
	int err;

	rdv_name(name, sizeof(name), a->be->self_domid);
	err = fivc_xrdv_read(a->be, x->peer, name, &dd);
	if (!err)
		err = fivc_xrdv_get_u32(&dd, "nonce", &nonce);
	if (!err)
		err = fivc_xrdv_get_u32(&dd, "for", &paired_with);
	if (err && x->rx_shm) {
		/* -ENOENT or -EACCES: the domain is being destroyed. */
		xlink_fail(a, x, "its offer is gone");
		return false;
	}
	if (err) /* not offered yet (-ENOENT, -EACCES) or being rewritten */
		return true;
	if (x->rx_shm && nonce != x->peer_nonce) {
		xlink_fail(a, x, "the peer agent restarted");
		return false;
	}
	if (!x->rx_shm) {
		if (!nonce || (paired_with && paired_with != x->nonce))
			return true; /* paired with our previous instance */
		err = xlink_attach(a, x, &dd, nonce);
		if (err) {
			xlink_fail(a, x, strerror(-err));
			return false;
		}
		pump_in(a, x);
		return xlink_find(a, x->peer) == x;
	}
	if (!x->up && paired_with == x->nonce) {
		x->up = true;
		pr_info("link to domain %u up (grant pages, event channels)",
			x->peer);
		a->xlinks_changed(a);
	}
	return true;
}

/*
 * An up link's peer restarted (a new nonce) or is going (no offer): one
 * xenstore read. The tick's poll of an up link only looks for that, and
 * a whole read of the offer, a transaction over every key, holds the
 * event loop for a dozen round trips to xenstored once a second
 * (docs/performance.md, "The Xen lab's p99").
 */
static bool xlink_peer_changed(struct agent *a, struct xlink *x)
{
	char name[FIVC_XRDV_NAME_MAX + 1];
	uint32_t nonce;

	rdv_name(name, sizeof(name), a->be->self_domid);
	return fivc_xrdv_read_u32(a->be, x->peer, name, "nonce", &nonce) ||
	       nonce != x->peer_nonce;
}

void xlink_tick(struct agent *a, uint64_t now)
{
	struct xlink *x, *next;

	for (x = a->xlinks; x; x = next) {
		next = x->next;
		if (x->dead || now < x->next_poll_ns)
			continue;
		x->next_poll_ns =
			now + (x->up ? XLINK_UP_POLL_NS : XLINK_SETUP_POLL_NS);
		if (!x->up || xlink_peer_changed(a, x))
			xlink_poll(a, x);
	}
}

bool xlinks_settled(const struct agent *a)
{
	for (const struct xlink *x = a->xlinks; x; x = x->next)
		if (!x->dead && !x->up)
			return false;
	return true;
}

void xlink_want(struct agent *a, uint32_t peer)
{
	struct xlink *x = xlink_find(a, peer);

	if (x)
		x->wanted = true;
	else
		xlink_offer(a, peer);
}

void xlink_want_only(struct agent *a, const uint32_t *peers, uint32_t n)
{
	struct xlink *x, *next;
	char name[FIVC_XRDV_NAME_MAX + 1];

	for (x = a->xlinks; x; x = x->next)
		x->wanted = false;
	for (uint32_t i = 0; i < n; i++)
		xlink_want(a, peers[i]);
	for (x = a->xlinks; x; x = next) {
		next = x->next;
		if (x->dead || x->wanted)
			continue;
		pr_info("link to domain %u: no longer co-resident", x->peer);
		rdv_name(name, sizeof(name), x->peer);
		fivc_xrdv_unpublish(a->be, name);
		xlink_free(a, x, true);
	}
}

bool xlink_up(struct agent *a, uint32_t peer)
{
	struct xlink *x = xlink_find(a, peer);

	return x && x->up;
}

void xlink_fini(struct agent *a)
{
	char name[FIVC_XRDV_NAME_MAX + 1];

	while (a->xlinks) {
		rdv_name(name, sizeof(name), a->xlinks->peer);
		fivc_xrdv_unpublish(a->be, name);
		xlink_free(a, a->xlinks, true);
	}
}
