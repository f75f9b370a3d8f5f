// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Flows: a steered app socket, its slot and its tunnel, from the ESTABLISHED
 * event to the last byte. The tunnel protocol's lifecycle (thesis §3.4.4):
 * each agent offers its transmit ring with CREATE_TUNNEL, the other maps it
 * and answers ACCEPT_TUNNEL or REJECT_TUNNEL; the flow is up when both
 * directions are mapped. Until then the app's bytes wait in Y.
 *
 * A flow whose tunnel does not come up goes back to plain TCP if no byte
 * took the slot on either side (docs/steering.md, "Fallback"); otherwise
 * it is reset, never left short.
 */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "flow.h"
#include "fastivc/log.h"
#include "fastivc/tunnel_msg.h"
#include "park.h"
#include "ringcache.h"

#define TUNNEL_BUCKETS 4096

/* tunnel_id -> flow; each bucket chains through chain_next, by slot */
static struct flow *by_tunnel[TUNNEL_BUCKETS];
static struct flow **chain_next; /* by slot */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	return h;
}

/*
 * Both agents name the tunnel alike: active side's address first, as on the
 * wire (neither side sees what a DNAT on the other replaced).
 */
static uint64_t tunnel_id_of(const struct flow *f)
{
	const struct fivc_flow_key *k = &f->wire;
	bool active = f->dir == FIVC_FLOW_ACTIVE;
	uint64_t h = 0xcbf29ce484222325ULL;

	h = fnv1a(h, active ? k->laddr : k->raddr, 16);
	h = fnv1a(h, active ? &k->lport : &k->rport, 2);
	h = fnv1a(h, active ? k->raddr : k->laddr, 16);
	h = fnv1a(h, active ? &k->rport : &k->lport, 2);
	return fnv1a(h, &f->nonce, 4);
}

static struct flow *flow_by_tunnel(uint64_t id, uint32_t domid)
{
	for (struct flow *f = by_tunnel[id % TUNNEL_BUCKETS]; f;
	     f = chain_next[f->slot])
		if (f->tunnel_id == id && f->peer_domid == domid)
			return f;
	return NULL;
}

static void tunnel_index(struct flow *f)
{
	struct flow **head = &by_tunnel[f->tunnel_id % TUNNEL_BUCKETS];

	chain_next[f->slot] = *head;
	*head = f;
}

static void tunnel_unindex(struct flow *f)
{
	struct flow **pp = &by_tunnel[f->tunnel_id % TUNNEL_BUCKETS];

	for (; *pp; pp = &chain_next[(*pp)->slot]) {
		if (*pp == f) {
			*pp = chain_next[f->slot];
			return;
		}
	}
}

void flow_y_want(struct agent *a, struct flow *f, uint32_t events)
{
	if (f->y_events == events)
		return;
	f->y_events = events;
	agent_watch_mod(a, &f->w_y, events);
}

static void window_arm(struct agent *a, bool on)
{
	struct itimerspec t = {{0, 0}, {0, 0}};

	if (on) /* 1 ms: short next to a reader's pause, cheap per query */
		t.it_interval.tv_nsec = t.it_value.tv_nsec = 1000000;
	timerfd_settime(a->w_window.fd, 0, &t, NULL);
}

/*
 * The app's bytes end where its FIN was. X is shut down (Y sees EOF) only
 * for a relay, a failed flow, or when the count cannot be met: otherwise
 * the end is the count sk_msg kept (bpf_abi.h, slot_sw), and the pair
 * stays fit for reuse.
 */
static void x_shut(struct flow *f)
{
	if (!f->x_shut)
		shutdown(f->w_x.fd, SHUT_WR);
	f->x_shut = true;
}

static void flow_free(struct agent *a, struct flow *f)
{
	/* Its end was the count, not X's shutdown: the pair may serve again. */
	bool clean = f->state == FLOW_TUNNEL && f->tx_eof && f->rx_eof &&
		     f->app_wr_shut && !f->x_shut;

	if (f->state == FLOW_TUNNEL && a->n_tunnels)
		a->n_tunnels--;
	a->ctr.kicks_sent += f->tx.st.kicks + f->rx.st.kicks;
	poll_forget(a, f);
	tunnel_unindex(f);
	agent_watch_del(a, &f->w_y);
	agent_watch_del(a, &f->w_x);
	/* The rings may serve later flows to the same peer (ringcache.c). */
	ring_tx_put(a, f);
	ring_rx_put(a, f);
	relay_close(a, f);
	early_drop(f);
	agent_bpf_fin_ok(a, &f->key, false);
	agent_bpf_flow_del(a, &f->key);
	if (clean)
		slots_recycle(a, f->slot, f->w_x.fd, f->w_y.fd,
			      f->y_read + f->bytes_tx);
	else
		slots_release(a, f->slot, f->w_x.fd, f->w_y.fd);
	if (f->rx_paused && !--a->n_paused)
		window_arm(a, false);
	a->flows[f->slot] = NULL;
	a->n_flows--;
	a->ctr.flows_done++;
	f->state = FLOW_DONE;
	agent_defer_free(a, f);
}

/*
 * Resets that TCP itself defines (an app's abort, data for a closed socket)
 * and their echo from the peer: no tunnel failure. Compared by identity.
 */
static const char R_APP_RESET[] = "connection reset";
static const char R_CLOSED_DATA[] = "data for a closed socket";
static const char R_PEER_RESET[] = "peer reset the tunnel";
static const char R_PEER_CLOSED[] = "peer closed the tunnel";

/*
 * How long a flow back on TCP waits for the peer to say the same (its agent
 * may be stalled): meanwhile only the peer's FIN waits, then a reset.
 */
#define FALLBACK_CONFIRM_NS (10 * 1000000000ULL)

/* A peer that resets its tunnel also resets its TCP: give that RST time. */
#define PEER_RST_GRACE_NS (200 * 1000000ULL)

/*
 * The tunnel cannot go on: reset the app's connection (its peer gets an RST
 * over TCP first), then both rings. When the peer reset the tunnel, its own
 * RST should reach our app first, so ours waits a moment.
 */
void flow_fail(struct agent *a, struct flow *f, const char *reason)
{
	bool by_app = reason == R_APP_RESET || reason == R_CLOSED_DATA ||
		      reason == R_PEER_RESET || reason == R_PEER_CLOSED;
	bool peer_reset = f->state == FLOW_TUNNEL && f->rx_attached &&
			  f->rx.err == -ECONNRESET;

	if (f->state == FLOW_FAILED || f->state == FLOW_DONE)
		return;
	fivc_log(by_app ? FIVC_LOG_DEBUG : FIVC_LOG_INFO,
		 "flow slot %u: %s; resetting the connection", f->slot, reason);
	f->reason = reason;
	if (f->state == FLOW_TUNNEL && a->n_tunnels)
		a->n_tunnels--;
	f->state = FLOW_FAILED;
	if (by_app)
		a->ctr.flows_reset++;
	else
		a->ctr.flows_failed++;
	if (peer_reset)
		f->destroy_ns = agent_now_ns() + PEER_RST_GRACE_NS;
	else
		flow_reset_tcp(a, f);
	/*
	 * An app blocked in send() sleeps on X's buffer, not on its own
	 * socket: shutting X down wakes it, and its redirect fails (EPIPE).
	 */
	shutdown(f->w_x.fd, SHUT_RDWR);
	f->x_shut = true;
	if (f->tx_shm)
		fivc_tx_reset(&f->tx);
	if (f->rx_attached)
		fivc_rx_reset(&f->rx);
	if (f->app_closed)
		flow_free(a, f);
}

void flow_maybe_done(struct agent *a, struct flow *f)
{
	bool moving =
		f->state == FLOW_TUNNEL || f->state == FLOW_RELAY ||
		(f->state == FLOW_PENDING && (f->early_len || f->early_rx));

	if (f->app_closed && (!moving || (f->tx_eof && f->rx_eof)))
		flow_free(a, f);
}

static void reply(struct agent *a, struct peer_link *l, uint64_t id,
		  int reason);

/*
 * Give the flow back to TCP unless sk_msg already captured a byte: true if
 * no byte of ours ever took the slot, nor will.
 */
static bool tx_cancel(struct agent *a, struct flow *f)
{
	uint64_t *sw = agent_bpf_slot_sw(a, f->slot);
	uint64_t v = __atomic_load_n(sw, __ATOMIC_SEQ_CST);

	while (!(v & FIVC_SW_CAPTURED))
		if ((v & FIVC_SW_CANCELLED) ||
		    __atomic_compare_exchange_n(sw, &v, v | FIVC_SW_CANCELLED,
						false, __ATOMIC_SEQ_CST,
						__ATOMIC_SEQ_CST))
			return true;
	return false;
}

/*
 * Both directions are plain TCP: the socket leaves the sockhash (no cost
 * from now on), and the peer's FIN, if tc held it, is in order behind its
 * bytes. Release it and forget the flow.
 */
static void fallback_done(struct agent *a, struct flow *f)
{
	agent_bpf_app_release(a, &f->key);
	if (f->fin_held)
		flow_fin_release(a, f);
	a->ctr.flows_tcp++;
	flow_free(a, f);
}

/* Both sides said where their bytes go: finish, or relay what needs it. */
static void fallback_settle(struct agent *a, struct flow *f)
{
	if (f->state != FLOW_FALLBACK || !f->fb_sent || !f->peer_fb)
		return;
	if (f->relay_tx.fd < 0 && f->relay_rx.fd < 0)
		fallback_done(a, f);
	else
		relay_start(a, f);
}

/* Tell the peer where our bytes go: TCP, or a relay socket (captured). */
static int fallback_send(struct agent *a, struct flow *f, bool captured)
{
	struct fivc_tunnel_msg m;
	int peer_end = -1, err = 0;

	fivc_tunnel_msg_init(&m, FIVC_TMSG_FALLBACK, f->tunnel_id);
	m.fb_mode = captured ? FIVC_FB_RELAY : FIVC_FB_TCP;
	if (captured) {
		err = relay_offer(f, &peer_end);
		m.has_socket = true;
		m.relay_fd = peer_end;
	}
	if (!err)
		err = link_send(a, f->link, &m);
	if (peer_end >= 0)
		close(peer_end);
	f->fb_sent = !err;
	return err;
}

/*
 * The tunnel will not carry this flow and carried no byte yet (it is not
 * up). Our bytes go on TCP if sk_msg captured none (cancelled now), else
 * over a relay through the peer agent; the peer decides the same for its
 * bytes, and the flow settles once both have said so. Without a link to
 * the peer there is no peer agent to have captured anything, nor a relay.
 */
static void flow_give_up(struct agent *a, struct flow *f, const char *reason)
{
	struct fallback_rec *r;
	bool clean;

	if (f->state == FLOW_FALLBACK || f->state == FLOW_RELAY)
		return;
	if (f->state != FLOW_PENDING) {
		flow_fail(a, f, reason);
		return;
	}
	clean = tx_cancel(a, f);
	if (!clean && (!f->link || !f->link->carries_fds)) {
		/* No relay without one (xen links pass no sockets). */
		flow_fail(a, f, reason);
		return;
	}
	pr_info("flow slot %u (port %u -> %u): no tunnel: %s", f->slot,
		f->key.lport, f->key.rport, reason);
	r = &a->fallbacks[a->n_fallbacks++ % FALLBACK_RECS];
	r->key = f->key;
	r->reason = reason;
	r->when_ns = agent_now_ns();
	f->reason = reason;
	f->state = FLOW_FALLBACK;
	/* A relay reads Y to its EOF: the app's FIN must reach it. */
	if (f->app_wr_shut)
		x_shut(f);
	f->deadline_ns = agent_now_ns() + FALLBACK_CONFIRM_NS;
	if (!f->link) {
		fallback_done(a, f);
		return;
	}
	if (fallback_send(a, f, !clean)) {
		flow_fail(a, f, "cannot reach the peer agent");
		return;
	}
	fallback_settle(a, f);
}

/* The peer's FALLBACK for @f; takes the relay socket that came with it. */
static void fallback_from_peer(struct agent *a, struct flow *f,
			       struct fivc_tunnel_msg *m)
{
	if (m->fb_mode == FIVC_FB_END) {
		if (f->state != FLOW_RELAY || f->relay_rx.fd < 0 ||
		    f->rx_end_known) {
			flow_fail(a, f,
				  "peer agent broke the fallback protocol");
			return;
		}
		f->rx_end_known = true;
		f->rx_end_bytes = m->fb_bytes;
		relay_pump_rx(a, f);
		return;
	}
	/*
	 * Bytes we took from its ring early are in its relay, first (the
	 * ring held nothing else); a peer that says TCP cannot have sent them.
	 */
	if (f->peer_fb ||
	    (f->state != FLOW_PENDING && f->state != FLOW_FALLBACK) ||
	    (m->fb_mode == FIVC_FB_RELAY && !m->has_socket) ||
	    (m->fb_mode != FIVC_FB_RELAY && f->early_rx)) {
		flow_fail(a, f, "peer agent broke the fallback protocol");
		return;
	}
	f->peer_fb = m->fb_mode;
	if (m->fb_mode == FIVC_FB_RELAY) {
		f->relay_rx.fd = m->relay_fd;
		m->relay_fd = -1;
	}
	flow_give_up(a, f,
		     m->fb_mode == FIVC_FB_RELAY ? "peer relays its bytes"
						 : "peer went back to TCP");
	fallback_settle(a, f);
}

/*
 * Bytes one pump call moves before it lets the loop serve the others: on
 * a busy CPU a flow whose peer keeps up would otherwise hold the loop for
 * seconds (no keepalives, no other flow).
 */
#define PUMP_BUDGET (1u << 20)

/* Run this direction again after the current batch of events. */
static void flow_more(struct agent *a, struct flow *f, bool rx)
{
	if (rx)
		f->more_rx = true;
	else
		f->more_tx = true;
	if (!f->more_queued) {
		f->more_queued = true;
		f->more_next = a->more;
		a->more = f;
	}
}

/* Everything the app sent is in the ring: wait for more on Y. */
static void y_drained(struct agent *a, struct flow *f)
{
	fivc_tx_flush(&f->tx);
	flow_y_want(a, f, f->y_events | EPOLLIN);
	/* An answer is likely to follow what the app sent. */
	if (f->rx_attached && !f->rx_eof)
		poll_rx_defer(a, f);
}

/* Y has given every byte the app sent before its FIN. */
static bool tx_at_end(const struct flow *f)
{
	return f->app_wr_shut && !f->x_shut && f->bytes_tx >= f->tx_final;
}

/*
 * Y is empty short of the count: bytes on their way come (Y's EPOLLIN),
 * those X still holds and those of another thread's send still pushing
 * (on the ingress route they never were in X). With X empty and nothing
 * come for TX_SHORT_NS, the count was too high (a push that failed part
 * way and was sent again): shut X, the end is Y's EOF (a push after it
 * fails with EPIPE), and the pair is not reused. flow_expire() looks
 * again. True if X was shut now.
 */
#define TX_SHORT_NS (100 * 1000000ULL)

static bool tx_short(struct agent *a, struct flow *f)
{
	uint64_t now;
	int outq;

	if (!f->app_wr_shut || f->x_shut)
		return false;
	if (!ioctl(f->w_x.fd, SIOCOUTQ, &outq) && outq > 0)
		return false;
	now = agent_now_ns();
	if (!f->short_ns)
		f->short_ns = now;
	if (now - f->short_ns < TX_SHORT_NS)
		return false;
	f->short_ns = 0;
	x_shut(f);
	a->ctr.slots_eof_shut++;
	return true;
}

static void tx_end(struct agent *a, struct flow *f)
{
	fivc_tx_close(&f->tx);
	f->tx_eof = true;
	flow_y_want(a, f, f->y_events & ~EPOLLIN);
	flow_maybe_done(a, f);
}

/*
 * How many bytes pump_tx may move now. Up: any. Before the peer's answer,
 * into a ring it keeps mapped: RELAY_BUF in all, each kept in a copy that
 * starts the relay if the peer refuses the ring (docs/steering.md, "Early
 * bytes"). The end of stream waits for the answer.
 */
static size_t tx_room(struct flow *f)
{
	if (f->state == FLOW_TUNNEL)
		return SIZE_MAX;
	if (f->state != FLOW_PENDING || !f->tx_cached || f->tx_eof)
		return 0;
	return early_room(f);
}

/* App -> Y -> our ring. */
static void pump_tx(struct agent *a, struct flow *f)
{
	size_t budget = PUMP_BUDGET, limit;
	bool early;

	while (!f->tx_eof && (limit = tx_room(f))) {
		void *buf;
		size_t room;
		ssize_t n;
		int err;

		early = f->state == FLOW_PENDING;
		if (tx_at_end(f)) {
			if (!early)
				tx_end(a, f);
			return;
		}

		err = fivc_tx_reserve(&f->tx, &buf, &room);
		if (err == -EAGAIN) {
			fivc_tx_flush(&f->tx);
			if (fivc_tx_prepare_wait(&f->tx)) {
				a->ctr.ring_full++;
				flow_y_want(a, f, f->y_events & ~EPOLLIN);
				return;
			}
			continue;
		}
		if (err) {
			flow_fail(a, f,
				  err == -EPIPE	       ? R_PEER_CLOSED
				  : err == -ECONNRESET ? R_PEER_RESET
						       : "tunnel broken (tx)");
			return;
		}
		/* Never past the FIN's count (it can only be too high). */
		if (f->app_wr_shut && !f->x_shut &&
		    room > f->tx_final - f->bytes_tx)
			room = (size_t)(f->tx_final - f->bytes_tx);
		if (room > limit)
			room = limit;
		n = recv(f->w_y.fd, buf, room, MSG_DONTWAIT);
		if (n > 0 && early) {
			if (!f->early_len)
				a->ctr.early_tx++;
			early_keep(f, buf, (size_t)n);
		}
		if (n > 0) {
			fivc_tx_commit(&f->tx, (size_t)n);
			f->bytes_tx += (uint64_t)n;
			agent_bpf_slot_read(a, f->slot, f->bytes_tx);
			/* Early bytes count once the peer took the ring. */
			if (!early)
				a->ctr.bytes_tx += (uint64_t)n;
			f->short_ns = 0;
			/*
			 * Less than asked: Y was empty. No recv() to hear
			 * EAGAIN: Y's watch is level-triggered and says if
			 * more (or the end) came meanwhile.
			 */
			if ((size_t)n < room) {
				if (!early && tx_short(a, f))
					continue;
				y_drained(a, f);
				return;
			}
			if ((size_t)n < budget) {
				budget -= (size_t)n;
				continue;
			}
			fivc_tx_flush(&f->tx);
			flow_more(a, f, false);
			return;
		}
		if (n == 0 && early)
			break; /* the end waits for the answer */
		if (n == 0) {  /* X was shut after the app's FIN */
			tx_end(a, f);
			return;
		}
		if (errno == EAGAIN && !early && tx_short(a, f))
			continue;
		if (errno == EAGAIN) {
			y_drained(a, f);
			return;
		}
		flow_fail(a, f, "slot socket failed");
		return;
	}
	/* Early bytes at their bound, or Y at its end: wait for the answer. */
	if (f->state == FLOW_PENDING)
		flow_y_want(a, f, f->y_events & ~EPOLLIN);
}

/* Retry this flow's injection from the window timer (1 ms). */
void flow_rx_pause(struct agent *a, struct flow *f)
{
	if (!f->rx_paused) {
		f->rx_paused = true;
		if (!a->n_paused++)
			window_arm(a, true);
	}
}

/*
 * What the apps of @fs[0, n) (n <= FIVC_RMEM_PROBE_MAX), in other network
 * namespaces, have not read, in one run of the rmem probe: rmem[i], or -1
 * where it found no socket with @fs[i]'s cookie (gone) or did not run.
 */
static void rmem_probe(struct agent *a, struct flow *const *fs, uint32_t n,
		       int64_t *rmem)
{
	struct fivc_rmem_probe p = {.n = (uint16_t)n};
	int err;

	for (uint32_t i = 0; i < n; i++)
		p.q[i].key = (struct fivc_sock_key){.role = FIVC_SOCK_APP,
						    .flow = fs[i]->key};
	err = agent_bpf_rmem_probe(a, &p);
	if (err)
		pr_warn("Failed to run the rmem probe: %s", strerror(-err));
	for (uint32_t i = 0; i < n; i++) {
		rmem[i] = -1;
		if (!err && p.q[i].ans.cookie == fs[i]->cookie)
			rmem[i] = p.q[i].ans.rmem;
	}
}

/*
 * What @f's app has not read, 0 or -errno. In our namespace sock_diag
 * says, by exact 4-tuple and cookie; it answers for ours only, so for an
 * app in another (a pod's) the rmem probe does, by sockhash key and cookie.
 */
static int app_rmem(struct agent *a, struct flow *f, uint32_t *rmem)
{
	int64_t r;

	if (!f->other_netns)
		return agent_sock_rmem(a, &f->key, f->cookie, rmem);
	rmem_probe(a, &f, 1, &r);
	if (r < 0)
		return -ENOENT;
	*rmem = (uint32_t)r;
	return 0;
}

/*
 * May @n more bytes go to the app? Injected bytes are not charged to any
 * sender, so the agent keeps the app's unread bytes under the window
 * itself: it counts what it injected and, when that would pass the window,
 * asks the kernel what is really still unread.
 */
bool flow_window_open(struct agent *a, struct flow *f, size_t n)
{
	uint32_t rmem;

	if (f->rx_unread + n <= a->cfg.window)
		return true;
	if (app_rmem(a, f, &rmem))
		return true; /* gone: the injection fails and says so */
	f->rx_unread = rmem;
	if (rmem + n <= a->cfg.window || !rmem)
		return true;
	flow_rx_pause(a, f);
	return false;
}

/*
 * The tunnel delivered end of stream and tc holds the peer's FIN: re-send
 * the held copy, then let the FIN's retransmits and the ACKs of ours pass.
 * Not earlier: an ACK of our own FIN let through before the peer's FIN
 * would wake our app's blocked reader into EAGAIN (see fin_hold.bpf.c).
 */
void flow_fin_release(struct agent *a, struct flow *f)
{
	/*
	 * The copy first: it enters through lo, which tc does not watch, and
	 * is processed before sendto() returns (or queued ahead in the
	 * socket's backlog). Only then may duplicate ACKs of our FIN pass.
	 */
	agent_fin_resend(a, &f->key);
	agent_bpf_fin_ok(a, &f->key, true);
	f->fin_held = false;
}

/*
 * Injection may run once we accepted the peer's ring, before our own is
 * accepted (docs/steering.md, "Early bytes"); its end waits for the tunnel.
 */
static bool rx_open(const struct flow *f)
{
	return f->state == FLOW_TUNNEL ||
	       (f->state == FLOW_PENDING && f->rx_attached && f->inject_on);
}

/* Peer's ring -> Y -> (sk_msg ingress redirect) -> the app socket. */
static void pump_rx(struct agent *a, struct flow *f)
{
	size_t budget = PUMP_BUDGET;

	while (rx_open(f) && !f->rx_eof) {
		const void *buf;
		ssize_t n = fivc_rx_peek(&f->rx, &buf), s;

		if (n == -EAGAIN) {
			/*
			 * Polled only while an answer is awaited (y_drained):
			 * a one-way stream's receiver sleeps between chunks.
			 */
			if (f->poll.hot)
				return;
			if (fivc_rx_prepare_wait(&f->rx)) {
				a->ctr.ring_waits++;
				return;
			}
			continue;
		}
		if (n == 0 && f->state == FLOW_PENDING)
			return;
		if (n == 0) {
			/* Every byte is in the app socket: now its FIN. */
			f->rx_eof = true;
			if (f->fin_held)
				flow_fin_release(a, f);
			flow_maybe_done(a, f);
			return;
		}
		if (n < 0) {
			flow_fail(a, f,
				  n == -ECONNRESET ? R_PEER_RESET
						   : "tunnel broken (rx)");
			return;
		}
		if (f->app_fd_closed) {
			/* TCP answers data for a closed socket with an RST. */
			flow_fail(a, f, R_CLOSED_DATA);
			return;
		}
		if (!flow_window_open(a, f, (size_t)n))
			return;
		s = send(f->w_y.fd, buf, (size_t)n,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (s > 0) {
			if (f->state == FLOW_PENDING && !f->early_rx) {
				f->early_rx = true;
				a->ctr.early_rx++;
			}
			f->rx_unread += (uint64_t)s;
			fivc_rx_release(&f->rx, (size_t)s);
			f->bytes_rx += (uint64_t)s;
			agent_bpf_slot_injected(a, f->slot, f->bytes_rx);
			a->ctr.bytes_rx += (uint64_t)s;
			if ((size_t)s < budget) {
				budget -= (size_t)s;
				continue;
			}
			flow_more(a, f, true);
			return;
		}
		if (s < 0 && errno == EAGAIN) {
			flow_y_want(a, f, f->y_events | EPOLLOUT);
			return;
		}
		/* TCP memory under pressure host-wide: not this flow's fault.
		 */
		if (s < 0 && errno == ENOMEM) {
			a->ctr.inject_nomem++;
			flow_rx_pause(a, f);
			return;
		}
		flow_fail(a, f, "injection into the app socket failed");
		return;
	}
}

/* Flows that ran out of budget in the last batch: pump them again. */
static void flows_run_more(struct agent *a)
{
	struct flow *f = a->more, *next;

	a->more = NULL;
	for (; f; f = next) {
		uint32_t slot = f->slot;

		next = f->more_next;
		f->more_queued = false;
		if (a->flows[slot] != f) /* freed in this batch: memory kept */
			continue;
		if (f->more_tx) {
			f->more_tx = false;
			pump_tx(a, f);
		}
		if (a->flows[slot] == f && f->more_rx) {
			f->more_rx = false;
			pump_rx(a, f);
		}
	}
}

static void y_ready(struct agent *a, struct agent_watch *w, uint32_t events)
{
	struct flow *f = container_of(w, struct flow, w_y);
	uint32_t slot = f->slot;

	if (events & EPOLLOUT)
		flow_y_want(a, f, f->y_events & ~EPOLLOUT);
	if (f->state == FLOW_RELAY) {
		if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			relay_pump_tx(a, f);
		if (a->flows[slot] == f && (events & EPOLLOUT))
			relay_pump_rx(a, f);
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		pump_tx(a, f);
	/* pump_tx may have freed the flow */
	if (a->flows[slot] == f && (events & EPOLLOUT))
		pump_rx(a, f);
}

/*
 * Wake the app's writer: a pure ACK from its peer, at the numbers its
 * socket expects, carrying our option with the flow's nonce; sockops on
 * that socket sees the option and calls its sk_write_space (on_poke). It
 * reaches the socket in any namespace, and costs one segment where a walk
 * of the namespace's TCP hash (an iter/tcp program, until 2026-12) cost
 * ~1.5 ms. Steered bytes never move those numbers; the peer's FIN may
 * have, so past the tunnel's end both are sent (TCP drops the stale one,
 * answering with a duplicate ACK the peer ignores).
 */
static void poke_writer(struct agent *a, struct flow *f)
{
	const struct fivc_flow_key *k = &f->key;

	for (uint32_t fin = 0; fin < (f->rx_eof ? 2u : 1u); fin++)
		agent_raw_poke(k->raddr, k->rport, k->laddr, k->lport,
			       f->rcv_nxt + fin, f->snd_nxt, a->cfg.domid,
			       f->nonce);
	a->ctr.pokes++;
}

/*
 * X has room again after an app filled it (only then does an edge come):
 * the app may sleep waiting for EPOLLOUT on its own socket; wake it.
 */
static void x_writable(struct agent *a, struct agent_watch *w, uint32_t events)
{
	struct flow *f = container_of(w, struct flow, w_x);

	/*
	 * The first edge is X's registration, not a drained buffer, unless
	 * the app sent past Y's ingress share before we saw its flow: X may
	 * have filled and drained already, or been full when we registered
	 * it (no registration edge then), and this edge is the one the app
	 * waits for. Skipping it left a pod's writer hanging in one CI run.
	 */
	if (!f->x_registered) {
		f->x_registered = true;
		if (agent_bpf_slot_sent(a, f->slot) <= ingress_share(a))
			return;
	}
	/* After its FIN the app writes no more: X's edges are our shutdown. */
	if (!(events & EPOLLOUT) || f->state == FLOW_DONE || f->app_wr_shut ||
	    (events & (EPOLLHUP | EPOLLERR)))
		return;
	poke_writer(a, f);
}

void flow_kicked(struct agent *a, struct flow *f, bool ours)
{
	if (!ours) {
		pump_rx(a, f); /* SEND_DATA / SEND_CLOSE on the peer's ring */
		return;
	}
	/* RECV_GET_DATA / RECV_CLOSE for our ring. */
	if (fivc_tx_writable(&f->tx) && !f->tx_eof)
		flow_y_want(a, f, f->y_events | EPOLLIN);
	pump_tx(a, f);
}

int flow_inject_arm(struct agent *a, struct flow *f)
{
	if (!f->inject_on &&
	    agent_bpf_slot_mode(a, f->slot, &f->key, FIVC_SLOT_INJECT))
		return -1;
	f->inject_on = true;
	return 0;
}

static void flow_maybe_up(struct agent *a, struct flow *f)
{
	uint32_t slot;

	if (f->state != FLOW_PENDING || !f->tx_accepted || !f->rx_attached)
		return;
	if (flow_inject_arm(a, f)) {
		flow_fail(a, f, "cannot arm injection");
		return;
	}
	a->ctr.bytes_tx += f->early_len;
	early_drop(f); /* accepted: no relay will need them */
	f->state = FLOW_TUNNEL;
	f->reason = NULL;
	a->n_tunnels++;
	a->ctr.flows_tunneled++;
	f->kicks_on = true; /* earlier kicks were acked: the pumps below */
	pr_debug("flow slot %u: tunnel up", f->slot);
	flow_y_want(a, f, EPOLLIN);
	slot = f->slot;
	pump_tx(a, f);
	if (a->flows[slot] == f)
		pump_rx(a, f);
}

static void ring_geom_of(const struct agent_config *cfg,
			 struct fivc_ring_geom *g)
{
	fivc_ring_geom_default(g);
	g->n_channels = cfg->n_channels;
	g->channel_size = cfg->channel_size;
}

size_t flow_ring_bytes(const struct agent_config *cfg)
{
	struct fivc_ring_geom g;

	ring_geom_of(cfg, &g);
	return fivc_ring_region_size(&g);
}

/*
 * Offer our ring: a new one described, or a cached one the peer keeps
 * mapped, named by its id. Either way (re)formatted first: the peer
 * released it, so nobody reads it until our CREATE. @accepts: the peer's
 * CREATE is attached, and ours answers it.
 */
static int flow_offer(struct agent *a, struct flow *f, bool accepts)
{
	struct fivc_ring_geom g;
	struct fivc_tunnel_msg m;
	struct fivc_kick kick;
	int err;

	ring_geom_of(&a->cfg, &g);
	fivc_tunnel_msg_init(&m, FIVC_TMSG_CREATE, f->tunnel_id);
	m.geom = g;
	m.accepts = accepts;
	err = ring_tx_take(a, f, &g, &m);
	if (err)
		return err;
	kick.fn = fivc_evch_kick;
	kick.arg = f->ev_tx;
	err = fivc_tx_init(&f->tx, f->tx_shm->addr, f->tx_shm->size, &g, &kick);
	if (!err)
		err = link_send(a, f->link, &m);
	fivc_shm_desc_clear(&m.shm);
	if (!err) {
		f->tx_sent = true;
		ring_tx_sent(f);
	}
	/* The peer keeps it mapped: the app's bytes may go in at once. */
	if (!err && m.cached) {
		f->tx_cached = true;
		f->kicks_on = true;
		flow_y_want(a, f, EPOLLIN);
	}
	return err;
}

static void reply(struct agent *a, struct peer_link *l, uint64_t id, int reason)
{
	struct fivc_tunnel_msg m;

	fivc_tunnel_msg_init(&m, reason ? FIVC_TMSG_REJECT : FIVC_TMSG_ACCEPT,
			     id);
	m.reason = (uint32_t)reason;
	link_send(a, l, &m);
}

/*
 * Map the peer's ring described by @m, which came on @l (a pair of agents
 * may have two links: the ids are those of @l); 0 or a positive errno to
 * refuse.
 */
static int flow_attach_rx(struct agent *a, struct flow *f, struct peer_link *l,
			  const struct fivc_tunnel_msg *m)
{
	int err;

	if (f->state != FLOW_PENDING || f->rx_attached)
		return EALREADY;
	if (a->n_tunnels >= a->cfg.max_tunnels)
		return EBUSY;
	if (m->geom.n_receivers != 1 ||
	    (!m->cached && (!m->has_evch || m->shm.kind != a->cfg.backend ||
			    m->evch.kind != a->cfg.backend)))
		return EINVAL;
	/* Only pages and a port of the link's own domain. */
	if (!m->cached && m->shm.kind == FIVC_BACKEND_XEN &&
	    (m->shm.domid != f->peer_domid || m->evch.domid != f->peer_domid))
		return EPERM;
	/* Maps it, or takes the cached one it names; attaches (validates). */
	err = ring_rx_get(a, f, l, m);
	if (err)
		return err;
	f->rx_attached = true;
	return 0;
}

/* Offer our ring; false if the flow gave up for want of one. */
static bool flow_offer_or_give_up(struct agent *a, struct flow *f, bool accepts)
{
	int err = flow_offer(a, f, accepts);

	/* No room for our ring (a full grant table, max_shm_bytes). */
	if (!f->tx_shm && (err == -ENOSPC || err == -ENOMEM)) {
		a->ctr.flows_no_shm++;
		flow_give_up(a, f, "no shared memory");
	} else if (err) {
		flow_give_up(a, f, "cannot offer a tunnel");
	}
	return !err;
}

/*
 * The peer's CREATE: attached, and answered. The passive side offers its
 * own ring only now, and its CREATE carries the answer
 * (FIVC_TMSG_F_ACCEPTS): one link message, and a wake-up of the active
 * side's agent, less per connection. An answer in the peer's CREATE counts
 * only for a ring we offered.
 */
static void create_for_flow(struct agent *a, struct flow *f,
			    struct peer_link *l, struct fivc_tunnel_msg *m)
{
	bool accepted = m->accepts && f->tx_sent;
	int reason = flow_attach_rx(a, f, l, m);
	uint32_t slot = f->slot;

	if (reason) {
		a->ctr.creates_refused++;
		pr_info("flow slot %u: refusing the peer's tunnel: %s", f->slot,
			strerror(reason));
	}
	if (reason || f->tx_sent)
		reply(a, l, m->tunnel_id, reason);
	fivc_tunnel_msg_release(m);
	if (reason) {
		flow_give_up(a, f, "tunnel refused here");
		return;
	}
	if (!f->tx_sent && !flow_offer_or_give_up(a, f, true))
		return;
	if (a->flows[slot] != f)
		return;
	if (accepted)
		f->tx_accepted = true;
	/* Ours to read now: inject without waiting for our ring's answer. */
	flow_inject_arm(a, f);
	f->kicks_on = true;
	flow_maybe_up(a, f);
	if (a->flows[slot] == f && f->state == FLOW_PENDING)
		pump_rx(a, f);
}

/*
 * A message for a flow whose ESTABLISHED event we have not read yet: keep
 * it a moment (park.c, bounded per link). Takes @m (and its fds); one that
 * cannot be kept is refused as an expired one would be.
 */
static void park(struct agent *a, struct peer_link *l,
		 struct fivc_tunnel_msg *m)
{
	int err = park_add(a, l, m, agent_now_ns());

	if (!err)
		return;
	if (m->type == FIVC_TMSG_CREATE)
		reply(a, l, m->tunnel_id, err == -EBUSY ? EBUSY : ENOMEM);
	else if (m->fb_mode != FIVC_FB_END)
		reply(a, l, m->tunnel_id, ENOENT);
	fivc_tunnel_msg_release(m);
}

static void dispatch(struct agent *a, struct flow *f, struct peer_link *l,
		     struct fivc_tunnel_msg *m)
{
	if (m->type == FIVC_TMSG_CREATE) {
		create_for_flow(a, f, l, m); /* releases @m */
		return;
	}
	fallback_from_peer(a, f, m);
	fivc_tunnel_msg_release(m);
}

void flow_on_offer(struct agent *a, struct peer_link *l,
		   struct fivc_tunnel_msg *m)
{
	struct flow *f = flow_by_tunnel(m->tunnel_id, l->domid);

	if (f)
		dispatch(a, f, l, m);
	else
		park(a, l, m);
}

void flow_on_reply(struct agent *a, struct peer_link *l,
		   const struct fivc_tunnel_msg *m)
{
	struct flow *f = flow_by_tunnel(m->tunnel_id, l->domid);
	bool reject = m->type == FIVC_TMSG_REJECT;

	/* ENOENT: no such flow there, so its bytes took TCP all along. */
	if (f && reject && m->reason == ENOENT && !f->peer_fb &&
	    (f->state == FLOW_PENDING || f->state == FLOW_FALLBACK)) {
		/* ... yet we read its ring (early): a broken peer. */
		if (f->early_rx) {
			flow_fail(a, f,
				  "peer has no flow for the ring we read");
			return;
		}
		f->peer_fb = FIVC_FB_TCP;
		flow_give_up(a, f, "peer has no such flow");
		fallback_settle(a, f);
		return;
	}
	/* Up here but refused there: what we sent can no longer arrive. */
	if (f && reject && f->state == FLOW_TUNNEL) {
		flow_fail(a, f, "peer refused the tunnel after it was up");
		return;
	}
	if (!f || f->state != FLOW_PENDING || !f->tx_sent) {
		pr_debug("stray tunnel reply %u from domain %u", m->type,
			 l->domid);
		return;
	}
	if (!reject) {
		f->tx_accepted = true;
		flow_maybe_up(a, f);
		return;
	}
	a->ctr.creates_rejected_by_peer++;
	flow_give_up(a, f, "peer refused the tunnel");
}

/* Messages that arrived before @f's event, in their order. */
static void unpark(struct agent *a, struct flow *f)
{
	uint32_t slot = f->slot;
	struct fivc_tunnel_msg m;
	struct peer_link *l;

	while (a->flows[slot] == f &&
	       park_take(a, f->tunnel_id, f->peer_domid, &l, &m))
		dispatch(a, f, l, &m);
}

void flow_established(struct agent *a, const struct fivc_event *ev)
{
	struct flow *f;
	int fd_x, fd_y;
	uint64_t y_read;

	if (ev->slot >= FIVC_MAX_SLOTS || a->flows[ev->slot] ||
	    slots_take(a, ev->slot, &fd_x, &fd_y, &y_read)) {
		pr_warn("ESTABLISHED event for unknown slot %u", ev->slot);
		return;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		slots_release(a, ev->slot, fd_x, fd_y);
		return;
	}
	f->slot = ev->slot;
	f->key = ev->flow;
	f->wire = ev->flow;
	if (ev->flags & FIVC_EV_F_DNAT)
		f->wire = ev->wire;
	f->cookie = ev->cookie;
	f->peer_domid = ev->peer_domid;
	f->nonce = ev->nonce;
	f->dir = ev->dir;
	f->snd_nxt = ev->snd_nxt;
	f->rcv_nxt = ev->rcv_nxt;
	f->other_netns = ev->flags & FIVC_EV_F_OTHER_NETNS;
	/* The peer's FIN completed the handshake: tc holds it already. */
	f->fin_held = ev->flags & FIVC_EV_F_FIN_HELD;
	f->tunnel_id = tunnel_id_of(f);
	f->deadline_ns = agent_now_ns() + a->cfg.setup_timeout_ms * 1000000ULL;
	f->w_x.fd = fd_x;
	f->w_y.fd = fd_y; /* non-blocking from its socket() (slots.c) */
	f->y_read = y_read;
	f->relay_tx.fd = f->relay_rx.fd = -1;
	f->w_y.fn = y_ready;
	a->flows[f->slot] = f;
	a->n_flows++;
	tunnel_index(f);
	a->ctr.flows_steered++;
	agent_watch_add(a, &f->w_y, 0);
	f->w_x.fn = x_writable;
	agent_watch_add(a, &f->w_x, EPOLLOUT | EPOLLET);

	f->link = link_get(a, f->peer_domid);
	if (!f->link)
		flow_give_up(a, f, "no link to the peer agent");
	else if (f->dir == FIVC_FLOW_PASSIVE)
		unpark(a, f); /* the active side's CREATE: ours answers it */
	else if (flow_offer_or_give_up(a, f, false))
		unpark(a, f);
	slots_fill(a);
}

void flow_state_event(struct agent *a, const struct fivc_event *ev)
{
	struct flow *f = ev->slot < FIVC_MAX_SLOTS ? a->flows[ev->slot] : NULL;

	if (!f || f->cookie != ev->cookie)
		return;
	if ((ev->new_state == TCP_FIN_WAIT1 || ev->new_state == TCP_LAST_ACK) &&
	    !f->app_wr_shut) {
		/*
		 * Every byte sent before the FIN is counted (sk_msg sends
		 * no more): Y's end is there. A relay reads Y to its EOF.
		 */
		f->app_wr_shut = true;
		f->app_fd_closed = !agent_bpf_app_present(a, &f->key);
		f->tx_final = agent_bpf_slot_sent(a, f->slot);
		if (f->state != FLOW_TUNNEL && f->state != FLOW_PENDING)
			x_shut(f);
		if (f->state == FLOW_TUNNEL)
			pump_tx(a, f);
		if (a->flows[ev->slot] != f)
			return;
		if (f->app_fd_closed && f->state == FLOW_TUNNEL)
			pump_rx(a, f);
		else if (f->app_fd_closed && f->state == FLOW_RELAY)
			relay_pump_rx(a, f);
	}
	if (ev->new_state != TCP_CLOSE)
		return;
	f->app_closed = true;
	/* Reset by us (flow_fail): nothing waits for the socket any more. */
	if (f->state == FLOW_FAILED)
		flow_free(a, f);
	else if (ev->old_state == TCP_ESTABLISHED ||
		 ev->old_state == TCP_CLOSE_WAIT)
		flow_fail(a, f, R_APP_RESET);
	else
		flow_maybe_done(a, f);
}

/* Flows still moving bytes, or about to: what a drain waits for. */
uint32_t flows_busy(struct agent *a)
{
	uint32_t n = 0;

	for (uint32_t s = 0; s < a->next_slot; s++)
		n += a->flows[s] && a->flows[s]->state != FLOW_FAILED &&
		     a->flows[s]->state != FLOW_DONE;
	return n;
}

/* Tunnels' notifications to peers so far, the live flows' included. */
uint64_t flows_kicks_sent(struct agent *a)
{
	uint64_t n = a->ctr.kicks_sent;

	for (uint32_t s = 0; s < a->next_slot; s++)
		if (a->flows[s])
			n += a->flows[s]->tx.st.kicks +
			     a->flows[s]->rx.st.kicks;
	return n;
}

/*
 * Paused @f goes on unless its app holds @rmem > half the window (-1:
 * gone). What it still holds counts: the window bounds unread bytes, not
 * what is injected after a resume.
 */
static void window_poll_one(struct agent *a, struct flow *f, int64_t rmem)
{
	if (rmem > a->cfg.window / 2)
		return;
	f->rx_paused = false;
	f->rx_unread = rmem > 0 ? (uint64_t)rmem : 0;
	if (!--a->n_paused)
		window_arm(a, false);
	if (f->state == FLOW_RELAY)
		relay_pump_rx(a, f);
	else
		pump_rx(a, f);
}

/* @fs[0, n), apps in other namespaces: one probe run for all of them. */
static void window_poll_probe(struct agent *a, struct flow *const *fs,
			      uint32_t n)
{
	int64_t rmem[FIVC_RMEM_PROBE_MAX];

	rmem_probe(a, fs, n, rmem);
	/* A pump may have ended a flow of the batch (freed after the batch). */
	for (uint32_t i = 0; i < n; i++)
		if (a->flows[fs[i]->slot] == fs[i] && fs[i]->rx_paused)
			window_poll_one(a, fs[i], rmem[i]);
}

/*
 * Paused flows whose app has read enough go on: sock_diag asks for each in
 * our namespace, one probe run for up to FIVC_RMEM_PROBE_MAX in others.
 */
void flows_window_poll(struct agent *a)
{
	struct flow *batch[FIVC_RMEM_PROBE_MAX];
	uint32_t n = 0;

	for (uint32_t s = 0; s < a->next_slot && a->n_paused; s++) {
		struct flow *f = a->flows[s];
		uint32_t rmem;

		if (!f || !f->rx_paused)
			continue;
		if (f->state != FLOW_TUNNEL && f->state != FLOW_RELAY) {
			window_poll_one(a, f, -1);
		} else if (f->other_netns) {
			batch[n++] = f;
			if (n == FIVC_RMEM_PROBE_MAX) {
				window_poll_probe(a, batch, n);
				n = 0;
			}
		} else if (agent_sock_rmem(a, &f->key, f->cookie, &rmem)) {
			window_poll_one(a, f, -1); /* gone */
		} else {
			window_poll_one(a, f, rmem);
		}
	}
	if (n)
		window_poll_probe(a, batch, n);
}

void flow_fin_held(struct agent *a, const struct fivc_event *ev)
{
	struct flow *f = ev->slot < FIVC_MAX_SLOTS ? a->flows[ev->slot] : NULL;

	if (!f || f->cookie != ev->cookie)
		return;
	f->fin_held = true;
	/* A flow still setting up holds it too: its bytes are yet to come. */
	if (f->rx_eof || f->state == FLOW_FAILED)
		flow_fin_release(a, f);
}

/*
 * A CREATE waited setup_timeout_ms for a connection of ours that never
 * came: the peer steered one that we did not (or a forger lies). Its
 * bytes cannot reach our app; said at most once a minute.
 */
static void create_expired(struct agent *a, struct peer_link *l, uint64_t now)
{
	static uint64_t said_ns;

	a->ctr.parked_expired++;
	if (said_ns && now - said_ns < 60 * 1000000000ULL)
		return;
	said_ns = now;
	pr_warn("a CREATE from domain %u named no connection steered here "
		"(parked_expired %llu): steered on its side only",
		l->domid, (unsigned long long)a->ctr.parked_expired);
}

void flow_expire(struct agent *a, uint64_t now)
{
	struct fivc_tunnel_msg m;
	struct peer_link *l;

	while (park_expired(a, now, &l, &m)) {
		/* No such flow here: the peer's bytes and ours stay on TCP. */
		if (m.type == FIVC_TMSG_CREATE)
			create_expired(a, l, now);
		if (m.fb_mode != FIVC_FB_END)
			reply(a, l, m.tunnel_id, ENOENT);
		fivc_tunnel_msg_release(&m);
	}
	/*
	 * Only a flow that has not accepted the peer's ring may give up: once
	 * we sent ACCEPT the peer may already be up and sending.
	 */
	for (uint32_t s = 0; s < a->next_slot; s++) {
		struct flow *f = a->flows[s];

		if (!f)
			continue;
		if (f->state == FLOW_PENDING && !f->rx_attached &&
		    f->deadline_ns <= now) {
			flow_give_up(a, f, "tunnel setup timed out");
			continue;
		}
		if (f->state == FLOW_FALLBACK && f->deadline_ns <= now) {
			flow_fail(a, f, "peer did not confirm the fallback");
			continue;
		}
		if (f->short_ns && now - f->short_ns >= TX_SHORT_NS)
			flow_more(a, f, false);
		if (f->destroy_ns && f->destroy_ns <= now) {
			f->destroy_ns = 0;
			flow_reset_tcp(a, f);
		}
	}
}

void flow_link_down(struct agent *a, struct peer_link *l)
{
	park_link_down(a, l);
	for (uint32_t s = 0; s < a->next_slot; s++) {
		struct flow *f = a->flows[s];

		/*
		 * Even a flow still setting up: the peer's slot may have
		 * taken bytes of its app that died with its agent, and no
		 * FALLBACK said otherwise.
		 */
		if (f && f->link == l) {
			f->link = NULL;
			flow_fail(a, f, "peer agent gone");
		}
	}
}

int flows_init(struct agent *a)
{
	poll_init(a, pump_rx);
	agent_on_batch(a, flows_run_more);
	a->flows = calloc(FIVC_MAX_SLOTS, sizeof(*a->flows));
	chain_next = calloc(FIVC_MAX_SLOTS, sizeof(*chain_next));
	return a->flows && chain_next ? 0 : -ENOMEM;
}

void flows_fini(struct agent *a)
{
	if (a->flows)
		for (uint32_t s = 0; s < a->next_slot; s++)
			if (a->flows[s])
				flow_free(a, a->flows[s]);
	park_fini(a);
	early_fini();
	free(a->flows);
	free(chain_next);
	a->flows = NULL;
	chain_next = NULL;
}
