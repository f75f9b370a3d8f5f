// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The relay: where a flow's captured bytes go when its tunnel does not come
 * up (docs/steering.md, "Fallback"). Bytes that sk_msg already took from
 * the app cannot go back onto its own TCP, so the agent carries them to the
 * peer agent over a Unix socket of their own, passed with FALLBACK(RELAY)
 * over the link, and the peer injects them like tunnel bytes. One socket
 * per direction: we write the one we created, read the one we were given.
 * FALLBACK(END) over the link says how many bytes the relay carried: a
 * relay that ends short (a crashed agent) resets the flow, never EOF.
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "flow.h"
#include "fastivc/log.h"
#include "fastivc/tunnel_msg.h"

static void watch_want(struct agent *a, struct agent_watch *w, uint32_t *cur,
		       uint32_t events)
{
	if (*cur != events && w->fn) {
		*cur = events;
		agent_watch_mod(a, w, events);
	}
}

/* App -> Y -> the relay socket we write. */
void relay_pump_tx(struct agent *a, struct flow *f)
{
	struct relay_buf *b = &f->relay_tx;

	while (f->state == FLOW_RELAY && !f->tx_eof) {
		ssize_t n;

		if (!b->len) {
			n = recv(f->w_y.fd, b->data, RELAY_BUF, MSG_DONTWAIT);
			if (n > 0) {
				b->off = 0;
				b->len = (size_t)n;
				continue;
			}
			if (n < 0 && errno == EAGAIN) {
				flow_y_want(a, f, f->y_events | EPOLLIN);
				return;
			}
			if (n < 0) {
				flow_fail(a, f, "slot socket failed");
				return;
			}
			relay_tx_end(a, f);
			return;
		}
		n = send(b->fd, b->data + b->off, b->len,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			/* Early bytes were counted when Y gave them. */
			uint64_t again = f->early_left < (uint64_t)n
						 ? f->early_left
						 : (uint64_t)n;

			f->early_left -= again;
			b->off += (size_t)n;
			b->len -= (size_t)n;
			b->total += (uint64_t)n;
			f->bytes_tx += (uint64_t)n - again;
			if ((uint64_t)n > again)
				agent_bpf_slot_read(a, f->slot, f->bytes_tx);
			a->ctr.relay_bytes_tx += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EAGAIN) {
			flow_y_want(a, f, f->y_events & ~EPOLLIN);
			watch_want(a, &f->w_relay_tx, &b->events, EPOLLOUT);
			return;
		}
		flow_fail(a, f, "relay to the peer agent broke");
		return;
	}
}

/* Y read to its end: the relay ends, and the peer hears how long it was. */
void relay_tx_end(struct agent *a, struct flow *f)
{
	struct fivc_tunnel_msg m;

	shutdown(f->relay_tx.fd, SHUT_WR);
	fivc_tunnel_msg_init(&m, FIVC_TMSG_FALLBACK, f->tunnel_id);
	m.fb_mode = FIVC_FB_END;
	m.fb_bytes = f->relay_tx.total;
	f->tx_eof = true;
	flow_y_want(a, f, f->y_events & ~EPOLLIN);
	if (!f->link || link_send(a, f->link, &m)) {
		flow_fail(a, f, "peer agent gone");
		return;
	}
	flow_maybe_done(a, f);
}

/* The relay socket we were given -> Y -> (ingress) the app socket. */
void relay_pump_rx(struct agent *a, struct flow *f)
{
	struct relay_buf *b = &f->relay_rx;

	while (f->state == FLOW_RELAY && !f->rx_eof) {
		ssize_t n;

		if (!b->len) {
			n = recv(b->fd, b->data, RELAY_BUF, MSG_DONTWAIT);
			if (n > 0) {
				/* What its ring gave us early is here again. */
				size_t dup = f->relay_skip < (uint64_t)n
						     ? (size_t)f->relay_skip
						     : (size_t)n;

				f->relay_skip -= dup;
				b->off = dup;
				b->len = (size_t)n - dup;
				b->total += (uint64_t)n;
				continue;
			}
			if (n < 0 && errno == EAGAIN) {
				watch_want(a, &f->w_relay_rx, &b->events,
					   EPOLLIN);
				return;
			}
			if (n < 0) {
				flow_fail(a, f,
					  "relay from the peer agent broke");
				return;
			}
			/*
			 * Its end: orderly only with a matching END. Nothing
			 * more to read, and an EOF stays readable.
			 */
			agent_watch_del(a, &f->w_relay_rx);
			if (!f->rx_end_known)
				return;
			if (b->total != f->rx_end_bytes) {
				flow_fail(a, f,
					  "relay from the peer ended short");
				return;
			}
			f->rx_eof = true;
			if (f->fin_held)
				flow_fin_release(a, f);
			flow_maybe_done(a, f);
			return;
		}
		/* Hold further reads while these bytes wait for the app. */
		watch_want(a, &f->w_relay_rx, &b->events, 0);
		if (f->app_fd_closed) {
			flow_fail(a, f, "data for a closed socket");
			return;
		}
		if (!flow_window_open(a, f, b->len))
			return;
		n = send(f->w_y.fd, b->data + b->off, b->len,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			b->off += (size_t)n;
			b->len -= (size_t)n;
			f->rx_unread += (uint64_t)n;
			f->bytes_rx += (uint64_t)n;
			agent_bpf_slot_injected(a, f->slot, f->bytes_rx);
			a->ctr.relay_bytes_rx += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EAGAIN) {
			flow_y_want(a, f, f->y_events | EPOLLOUT);
			return;
		}
		if (n < 0 && errno == ENOMEM) { /* see pump_rx() */
			a->ctr.inject_nomem++;
			flow_rx_pause(a, f);
			return;
		}
		flow_fail(a, f, "injection into the app socket failed");
		return;
	}
}

/*
 * epoll reports EPOLLHUP and EPOLLERR whatever the events asked for: a
 * relay socket whose other end is closed leaves the epoll set, or every
 * wait returns at once for it (seen: an agent at 100% CPU, its relay's
 * peer end closed, the app's slot empty).
 */
static void relay_tx_ready(struct agent *a, struct agent_watch *w,
			   uint32_t events)
{
	struct flow *f = container_of(w, struct flow, w_relay_tx);

	/*
	 * The peer closed its end (its flow is over): bytes our app sends
	 * from now on fail to go there (EPIPE, a reset), as on TCP; an app
	 * that just closes ends the relay as usual.
	 */
	if (events & (EPOLLHUP | EPOLLERR))
		agent_watch_del(a, w);
	else
		watch_want(a, w, &f->relay_tx.events, 0);
	relay_pump_tx(a, f);
}

static void relay_rx_ready(struct agent *a, struct agent_watch *w,
			   uint32_t events)
{
	struct flow *f = container_of(w, struct flow, w_relay_rx);

	/* The writer is gone: what is left is read as Y takes it. */
	if (events & (EPOLLHUP | EPOLLERR))
		agent_watch_del(a, w);
	relay_pump_rx(a, f);
}

/*
 * Our half of a relay: a socket pair, one end kept (nonblocking), the other
 * returned for FALLBACK(RELAY). 0 or -errno.
 */
int relay_offer(struct flow *f, int *peer_end)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		       sv))
		return -errno;
	f->relay_tx.fd = sv[0];
	*peer_end = sv[1];
	return 0;
}

static int
relay_buf_start(struct agent *a, struct relay_buf *b, struct agent_watch *w,
		void (*fn)(struct agent *, struct agent_watch *, uint32_t))
{
	if (!b->data)
		b->data = malloc(RELAY_BUF);
	if (!b->data)
		return -ENOMEM;
	w->fd = b->fd;
	w->fn = fn;
	return agent_watch_add(a, w, 0);
}

/*
 * Both sides said where their bytes go and at least one relays: run the
 * relayed directions. A direction that stayed on TCP is finished here: its
 * FIN, if held, is in order behind its bytes.
 */
void relay_start(struct agent *a, struct flow *f)
{
	bool tx = f->relay_tx.fd >= 0, rx = f->relay_rx.fd >= 0;

	f->state = FLOW_RELAY;
	/* What went into the refused ring goes first (RELAY_BUF at most). */
	if (tx && f->early_len) {
		f->relay_tx.data = early_take(f, &f->relay_tx.len);
		f->early_left = f->relay_tx.len;
		a->ctr.early_relayed++;
	}
	if ((tx && relay_buf_start(a, &f->relay_tx, &f->w_relay_tx,
				   relay_tx_ready)) ||
	    (rx && (relay_buf_start(a, &f->relay_rx, &f->w_relay_rx,
				    relay_rx_ready) ||
		    flow_inject_arm(a, f)))) {
		flow_fail(a, f, "cannot start the relay");
		return;
	}
	pr_info("flow slot %u (port %u -> %u): relayed through the peer agent "
		"(%s)",
		f->slot, f->key.lport, f->key.rport,
		tx && rx ? "both ways"
		: tx	 ? "outbound"
			 : "inbound");
	a->ctr.flows_relayed++;
	f->tx_eof = !tx;
	/* Only early bytes from the peer's ring were injected before. */
	if (rx)
		f->relay_skip = f->bytes_rx;
	if (!rx) {
		f->rx_eof = true;
		if (f->fin_held)
			flow_fin_release(a, f);
	}
	if (tx)
		relay_pump_tx(a, f);
	if (rx && a->flows[f->slot] == f)
		relay_pump_rx(a, f);
}

void relay_close(struct agent *a, struct flow *f)
{
	struct relay_buf *bufs[2] = {&f->relay_tx, &f->relay_rx};
	struct agent_watch *ws[2] = {&f->w_relay_tx, &f->w_relay_rx};

	for (int i = 0; i < 2; i++) {
		if (ws[i]->fn)
			agent_watch_del(a, ws[i]);
		if (bufs[i]->fd >= 0)
			close(bufs[i]->fd);
		free(bufs[i]->data);
	}
}
