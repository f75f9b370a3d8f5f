// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Slots: loopback TCP pairs made before any connection needs one, so a
 * socket steered at ESTABLISHED has a redirect target for its first byte.
 * Y connects (its ephemeral port names the slot for sk_msg), X is accepted.
 * A pair whose flow ended cleanly goes back to the pool and serves the
 * next flow; one in any doubt is closed and a fresh one made, so no stale
 * byte can leak between flows (slot_clean.c; docs/steering.md, "Slot
 * reuse").
 *
 * Any local process can connect to the slot listener too (it is a
 * loopback port like any other): an accepted socket becomes X only if its
 * peer is one of our own pending Ys, 4-tuple checked, and everything else
 * is closed at once (docs/security.md, "Slot pairs"). Connects are
 * non-blocking: a listener that someone keeps full delays a pair, never
 * the event loop.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "fastivc/log.h"
#include "ringcache.h"

/* Per-slot fds while the slot waits in the pool. */
struct pooled {
	int fd_x, fd_y;
	uint64_t y_read; /* read from Y by the flows it served */
};

/* A Y whose connect is under way; its X is not accepted yet. */
struct pending_y {
	uint32_t slot;
	int fd_y;
	uint16_t port; /* Y's local port: our X's peer port */
	uint64_t since_ns;
};

/* Ys connecting at once, and how long one may wait for its X. */
#define PENDING_MAX 64
#define PENDING_NS (1000ull * 1000000ull)
/* Accepts per call: an impostor flood costs the loop a bounded batch. */
#define ACCEPT_BATCH 256

static struct pooled *pool_fds;
static struct pending_y pending[PENDING_MAX];
static uint32_t n_pending;
static uint64_t impostors_logged_ns;

static void slots_on_listen(struct agent *a, struct agent_watch *w,
			    uint32_t events);

int slots_init(struct agent *a)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	int fd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	pool_fds = calloc(FIVC_MAX_SLOTS, sizeof(*pool_fds));
	a->recycled = calloc(FIVC_MAX_SLOTS, sizeof(*a->recycled));
	if (!pool_fds || !a->recycled)
		return -ENOMEM;
	/* Port 0 each time, no SO_REUSEADDR: nobody can be bound there. */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) ||
	    listen(fd, ACCEPT_BATCH)) {
		int err = -errno;

		pr_err("Failed to listen on loopback for slots: %s",
		       strerror(errno));
		close(fd);
		return err;
	}
	a->w_slot_listen.fd = fd;
	a->w_slot_listen.fn = slots_on_listen;
	return agent_watch_add(a, &a->w_slot_listen, EPOLLIN);
}

static int slot_id_take(struct agent *a, uint32_t *slot)
{
	if (a->n_recycled) {
		*slot = a->recycled[--a->n_recycled];
		return 0;
	}
	if (a->next_slot >= FIVC_MAX_SLOTS)
		return -ENOSPC;
	*slot = a->next_slot++;
	return 0;
}

/*
 * What the app sent and the agent has not yet put in the ring stays under
 * the window: ingress_share() straight in Y's ingress queue (sk_msg's route
 * while the agent keeps up: agent/ingress.c), the rest in X's send and Y's
 * receive buffers, half each (the kernel doubles the value set; fixing it
 * also stops their autotuning).
 */
static int slot_buf(struct agent *a)
{
	return (int)((a->cfg.window - ingress_share(a)) / 4);
}

/* Start one pair: Y connects, non-blocking. */
static int pair_start(struct agent *a, uint32_t slot)
{
	int buf = slot_buf(a);
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	struct pending_y *p;
	int y;

	if (getsockname(a->w_slot_listen.fd, (struct sockaddr *)&sin, &len))
		return -errno;
	y = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (y < 0)
		return -errno;
	setsockopt(y, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	if (connect(y, (struct sockaddr *)&sin, sizeof(sin)) &&
	    errno != EINPROGRESS)
		goto err;
	len = sizeof(sin);
	if (getsockname(y, (struct sockaddr *)&sin, &len))
		goto err;
	p = &pending[n_pending++];
	p->slot = slot;
	p->fd_y = y;
	p->port = ntohs(sin.sin_port);
	p->since_ns = agent_now_ns();
	return 0;
err:
	buf = -errno;
	close(y);
	return buf;
}

static void pending_drop(struct agent *a, uint32_t i)
{
	a->recycled[a->n_recycled++] = pending[i].slot;
	pending[i] = pending[--n_pending];
}

/* Guarded before sockops can hand it to a flow (guard.c), then pooled. */
static int pair_finish(struct agent *a, const struct pending_y *p, int x)
{
	int buf = slot_buf(a), one = 1, err;

	/* Y carries many small writes to the app: no Nagle on either end. */
	setsockopt(x, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(x, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(p->fd_y, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	err = guard_add(a, x);
	if (!err)
		err = agent_bpf_slot_add(a, p->slot, x, p->fd_y, p->port);
	if (err)
		return err;
	pool_fds[p->slot].fd_x = x;
	pool_fds[p->slot].fd_y = p->fd_y;
	pool_fds[p->slot].y_read = 0;
	a->slots_free++;
	return 0;
}

/* Retried every tick: said once per cause. */
static void slot_failed(uint32_t slot, const char *what, int err)
{
	static int last_err;

	fivc_log(err == last_err ? FIVC_LOG_DEBUG : FIVC_LOG_WARN,
		 "Failed to %s slot %u: %s", what, slot, strerror(-err));
	last_err = err;
}

/* Said once a minute at most, with the count so far. */
static void impostor(struct agent *a, int x)
{
	uint64_t now = agent_now_ns();

	close(x);
	a->ctr.slot_impostors++;
	if (!impostors_logged_ns ||
	    now - impostors_logged_ns > 60000000000ull) {
		impostors_logged_ns = now;
		pr_warn("a local process connected to the slot listener: "
			"closed (slot_impostors %llu)",
			(unsigned long long)a->ctr.slot_impostors);
	}
}

/*
 * Accept what the listener holds: an X whose peer is a pending Y of ours
 * completes that pair, anything else is an impostor. Pending Ys past their
 * deadline (their SYN met a full queue) are closed; the slot is retried.
 */
static void slots_accept(struct agent *a)
{
	uint64_t now = agent_now_ns();

	for (int n = 0; n < ACCEPT_BATCH; n++) {
		struct sockaddr_in peer;
		socklen_t len = sizeof(peer);
		uint32_t i;
		int x, err;

		x = accept4(a->w_slot_listen.fd, (struct sockaddr *)&peer, &len,
			    SOCK_CLOEXEC);
		if (x < 0)
			break;
		for (i = 0; i < n_pending; i++)
			if (peer.sin_family == AF_INET &&
			    peer.sin_addr.s_addr == htonl(INADDR_LOOPBACK) &&
			    ntohs(peer.sin_port) == pending[i].port)
				break;
		if (i == n_pending) {
			impostor(a, x);
			continue;
		}
		err = pair_finish(a, &pending[i], x);
		if (!err) {
			pending[i] = pending[--n_pending];
			continue;
		}
		slot_failed(pending[i].slot, "add", err);
		close(x);
		close(pending[i].fd_y);
		pending_drop(a, i);
	}
	for (uint32_t i = 0; i < n_pending;) {
		if (now - pending[i].since_ns < PENDING_NS) {
			i++;
			continue;
		}
		close(pending[i].fd_y);
		pending_drop(a, i);
	}
}

static void slots_on_listen(struct agent *a, struct agent_watch *w,
			    uint32_t events)
{
	(void)w;
	(void)events;
	slots_accept(a);
}

/*
 * How many more rings shared memory has room for (flows in use have
 * offered theirs already). A slot the pool holds is a promise: sockops
 * hands it out in the handshake and both sides steer. A ring that could
 * not be offered then would cost a fallback, or a reset on Xen for a flow
 * whose app already sent; so the pool holds no more slots than rings fit,
 * and beyond them new connections stay plain TCP from the handshake
 * (no_slot). Said once each time the pool comes short.
 */
static uint32_t shm_rings(struct agent *a)
{
	size_t n = ring_room(a); /* the backend's and the memory bound's */
	bool short_now = n != SIZE_MAX && n < a->cfg.pool;

	if (short_now && !a->pool_shm_short) {
		a->ctr.pool_shm_short++;
		pr_info("shared memory has room for %zu more rings: new "
			"connections beyond them stay on TCP (no_slot)",
			n);
	}
	a->pool_shm_short = short_now;
	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* Pooled slots beyond @keep go back: sockops finds none of them. */
static void slots_trim(struct agent *a, uint32_t keep)
{
	uint64_t y_read;
	uint32_t slot;
	int x, y;

	while (a->slots_free > keep && !agent_bpf_free_slot_pop(a, &slot))
		if (!slots_take(a, slot, &x, &y, &y_read))
			slots_release(a, slot, x, y);
}

/*
 * One local uid may hold uid_share percent of the pool in handshakes under
 * way and of the tunnels there is room for in steered flows, so the others
 * always find the rest (docs/operations.md, "Sharing").
 */
static void uid_limits_set(struct agent *a, uint32_t rings)
{
	uint64_t share = a->cfg.uid_share, room, holds, flows;

	if (share >= 100) {
		agent_bpf_uid_limits(a, 0, 0);
		return;
	}
	room = (uint64_t)a->n_flows + a->slots_free + n_pending + rings;
	if (room > a->cfg.max_tunnels)
		room = a->cfg.max_tunnels;
	holds = a->cfg.pool * share / 100;
	flows = room * share / 100;
	agent_bpf_uid_limits(a, holds ? (uint32_t)holds : 1,
			     flows ? (uint32_t)flows : 1);
}

/*
 * The pool was full at the last slots_fill(), or at max_tunnels: only an
 * event changes that. Short of rings is not: a ring comes back without one
 * (the consumer's RELEASED is read when we look), so the tick keeps looking.
 */
static bool pool_filled;

bool slots_settled(void)
{
	return pool_filled && !n_pending;
}

/*
 * Keep cfg.pool slots ready in free_slots, but never more slots in use and
 * ready than max_tunnels, nor more ready than shared memory has rings for:
 * past that, sockops finds no slot, does not answer the handshake option
 * and the connection stays plain TCP (counted as no_slot), instead of
 * being refused later.
 */
void slots_fill(struct agent *a)
{
	uint32_t rings;

	if (a->drain_deadline_ns)
		return;
	rings = shm_rings(a);
	uid_limits_set(a, rings);
	slots_trim(a, rings);
	/* Nothing of ours to accept: impostors wake the listener's watch. */
	if (n_pending)
		slots_accept(a);
	while (a->slots_free + n_pending < a->cfg.pool &&
	       a->slots_free + n_pending < rings &&
	       a->n_flows + a->slots_free + n_pending < a->cfg.max_tunnels &&
	       n_pending < PENDING_MAX) {
		uint32_t slot;
		int err;

		if (slot_id_take(a, &slot))
			break;
		err = pair_start(a, slot);
		if (err) {
			slot_failed(slot, "start", err);
			a->recycled[a->n_recycled++] = slot;
			break;
		}
	}
	/* Loopback handshakes are done by now, as a rule. */
	if (n_pending)
		slots_accept(a);
	pool_filled =
		a->slots_free >= a->cfg.pool ||
		a->n_flows + a->slots_free + n_pending >= a->cfg.max_tunnels;
}

/* sockops popped @slot for a flow: hand its fds over. */
int slots_take(struct agent *a, uint32_t slot, int *fd_x, int *fd_y,
	       uint64_t *y_read)
{
	if (slot >= FIVC_MAX_SLOTS || !pool_fds[slot].fd_y)
		return -ENOENT;
	*fd_x = pool_fds[slot].fd_x;
	*fd_y = pool_fds[slot].fd_y;
	*y_read = pool_fds[slot].y_read;
	pool_fds[slot].fd_x = 0;
	pool_fds[slot].fd_y = 0;
	a->slots_free--;
	return 0;
}

void slots_release(struct agent *a, uint32_t slot, int fd_x, int fd_y)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	uint16_t port = 0;

	if (!getsockname(fd_y, (struct sockaddr *)&sin, &len))
		port = ntohs(sin.sin_port);
	agent_bpf_slot_del(a, slot, port);
	close(fd_x);
	close(fd_y);
	a->recycled[a->n_recycled++] = slot;
}

/*
 * A flow ended cleanly on this pair, @y_read bytes read from Y over the
 * pair's life: pool it again if nothing of the flow is left in it. Reuse
 * keeps flows + ready slots as they were (within max_tunnels); the pool
 * may grow past cfg.pool after a burst, up to twice that, and slots_fill
 * trims it to the rings there is room for, as for fresh pairs.
 */
void slots_recycle(struct agent *a, uint32_t slot, int fd_x, int fd_y,
		   uint64_t y_read)
{
	if (a->drain_deadline_ns ||
	    a->slots_free + n_pending >= 2 * a->cfg.pool ||
	    !slot_pair_clean(fd_x, fd_y, y_read) ||
	    agent_bpf_slot_reuse(a, slot)) {
		slots_release(a, slot, fd_x, fd_y);
		return;
	}
	pool_fds[slot].fd_x = fd_x;
	pool_fds[slot].fd_y = fd_y;
	pool_fds[slot].y_read = y_read;
	a->slots_free++;
	a->ctr.slots_reused++;
}

/*
 * Draining: take every ready slot back, so that sockops finds none and new
 * connections stay plain TCP (no_slot). slots_fill() is not called again.
 */
void slots_drain(struct agent *a)
{
	slots_trim(a, 0);
}

void slots_fini(struct agent *a)
{
	if (pool_fds)
		for (uint32_t s = 0; s < FIVC_MAX_SLOTS; s++)
			if (pool_fds[s].fd_y) {
				close(pool_fds[s].fd_x);
				close(pool_fds[s].fd_y);
			}
	while (n_pending)
		close(pending[--n_pending].fd_y);
	free(pool_fds);
	pool_fds = NULL;
	free(a->recycled);
	a->recycled = NULL;
	if (a->w_slot_listen.live)
		agent_watch_del(a, &a->w_slot_listen);
	if (a->w_slot_listen.fd > 0)
		close(a->w_slot_listen.fd);
}
