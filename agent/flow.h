/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Flows (agent/flow.c): one per steered connection, from its ESTABLISHED
 * event until its app socket is gone, with its tunnel's two rings, or its
 * relay (agent/relay.c) when the tunnel did not come up. See
 * docs/steering.md.
 */
#ifndef FASTIVC_AGENT_FLOW_H
#define FASTIVC_AGENT_FLOW_H

#include "link.h"

struct ring_half;

enum flow_state {
	FLOW_PENDING = 0, /* steered; tunnel being set up; bytes wait in Y */
	FLOW_TUNNEL,	  /* both rings mapped: bytes take the ring */
	FLOW_FALLBACK,	  /* no tunnel: waiting for the peer's FALLBACK */
	FLOW_RELAY,	  /* no tunnel: captured bytes take the relay */
	FLOW_FAILED,	  /* setup refused or torn down: see reason */
	FLOW_DONE,	  /* both directions finished, app socket closed */
};

/* One direction of a relay (agent/relay.c). */
struct relay_buf {
	int fd; /* -1: this direction is not relayed */
	uint8_t *data;
	size_t off, len; /* bytes read, not yet written on */
	uint64_t total;	 /* bytes that crossed the relay socket */
	uint32_t events; /* what its watch is registered for */
};

struct flow {
	uint32_t slot;
	struct fivc_flow_key key;  /* the app socket's own view */
	struct fivc_flow_key wire; /* on the wire: a Service's endpoint */
	uint64_t cookie;
	uint32_t peer_domid;
	uint32_t nonce;
	uint32_t dir;		   /* enum fivc_flow_dir */
	uint32_t snd_nxt, rcv_nxt; /* the app socket's, after the handshake */
	uint64_t tunnel_id;
	enum flow_state state;
	const char *reason; /* why the flow is not (or no longer) tunneled */
	uint64_t deadline_ns;
	uint64_t destroy_ns; /* reset the app socket then, if still there */

	struct agent_watch w_y; /* the slot's agent end */
	struct agent_watch w_x; /* the redirect target: EPOLLOUT edges only */

	struct peer_link *link;
	struct ring_half *tx_half, *rx_half; /* own tx_shm and ev_tx, rx... */
	struct fivc_shm *tx_shm, *rx_shm;
	struct fivc_evch *ev_tx; /* offered with our CREATE */
	struct fivc_evch *ev_rx; /* bound from the peer's CREATE */
	struct fivc_tx tx;
	struct fivc_rx rx;
	bool tx_sent, tx_accepted; /* our CREATE sent, and accepted */
	bool rx_attached;	   /* we accepted the peer's CREATE */
	bool kicks_on;		   /* its rings' kicks reach it */
	bool tx_cached;		   /* our CREATE named a ring the peer keeps */
	bool inject_on;		   /* the slot injects into the app socket */
	/* Before the tunnel is up (docs/steering.md, "Early bytes"): */
	uint8_t *early;	       /* what went into our ring: a relay's start */
	size_t early_len;      /* ... if the peer refuses it */
	uint64_t early_left;   /* of those, not yet written on the relay */
	bool early_rx;	       /* bytes injected: the peer must relay */
	uint64_t relay_skip;   /* ... and its relay repeats them first */
	uint32_t peer_fb;      /* the peer's FALLBACK mode, 0 if none */
	bool fb_sent;	       /* ours went out */
	bool rx_end_known;     /* the peer's FALLBACK(END) came */
	uint64_t rx_end_bytes; /* ... with the relay's length */
	struct relay_buf relay_tx, relay_rx;
	struct agent_watch w_relay_tx, w_relay_rx;
	bool app_wr_shut;   /* the app shut its write side */
	bool app_fd_closed; /* ... by close(): nothing reads any more */
	bool app_closed;    /* the app socket is gone */
	bool tx_eof;	    /* Y read to EOF and SEND_CLOSE sent */
	bool x_shut;	    /* X shut down: Y's EOF ends tx, no reuse */
	uint64_t tx_final;  /* at the app's FIN: what it sent into the slot */
	uint64_t short_ns;  /* Y was found short of tx_final since then */
	uint64_t y_read;    /* read from this pair's Y before this flow */
	bool rx_eof;	    /* the peer's SEND_CLOSE was delivered */
	bool fin_held;	    /* tc holds the peer's FIN for us */
	bool rx_paused;	    /* the app's unread bytes fill the window */
	bool x_registered;  /* X's first (registration) edge came */
	bool other_netns;   /* the app socket is not in our namespace */
	uint64_t rx_unread; /* last measured + injected since */
	uint32_t y_events;  /* what Y is registered for in epoll */
	uint64_t bytes_tx, bytes_rx;
	/* Out of budget with more to move: run again after this batch. */
	bool more_tx, more_rx, more_queued;
	struct flow *more_next;
	struct poll_links poll; /* on the hot list (poll.c) */
};

/* agent/flow.c: lifecycle and data path */
int flows_init(struct agent *a);
void flow_established(struct agent *a, const struct fivc_event *ev);
void flow_state_event(struct agent *a, const struct fivc_event *ev);
void flow_fin_held(struct agent *a, const struct fivc_event *ev);
void flow_expire(struct agent *a, uint64_t now);
void flows_window_poll(struct agent *a);
uint32_t flows_busy(struct agent *a);
uint64_t flows_kicks_sent(struct agent *a);
void flow_link_down(struct agent *a, struct peer_link *l);
struct fivc_tunnel_msg;
/* CREATE or FALLBACK: may come before our event; takes @m's fds */
void flow_on_offer(struct agent *a, struct peer_link *l,
		   struct fivc_tunnel_msg *m);
void flow_on_reply(struct agent *a, struct peer_link *l,
		   const struct fivc_tunnel_msg *m);
void flows_fini(struct agent *a);
/* ... shared with agent/relay.c */
void flow_fail(struct agent *a, struct flow *f, const char *reason);
void flow_maybe_done(struct agent *a, struct flow *f);
void flow_y_want(struct agent *a, struct flow *f, uint32_t events);
bool flow_window_open(struct agent *a, struct flow *f, size_t n);
void flow_rx_pause(struct agent *a, struct flow *f);
void flow_fin_release(struct agent *a, struct flow *f);
/* The slot's sends go into the app socket (once per flow); 0 or -1. */
int flow_inject_arm(struct agent *a, struct flow *f);
/* A kick on @f's ring (ours: the peer read or closed; else it wrote). */
void flow_kicked(struct agent *a, struct flow *f, bool ours);
size_t flow_ring_bytes(const struct agent_config *cfg); /* one tx ring */

const char *flow_state_name(enum flow_state s); /* status' "path" */

/* agent/relay.c: captured bytes of a flow with no tunnel */
#define RELAY_BUF (64 * 1024)
int relay_offer(struct flow *f, int *peer_end);
void relay_start(struct agent *a, struct flow *f);
void relay_pump_tx(struct agent *a, struct flow *f);
void relay_pump_rx(struct agent *a, struct flow *f);
void relay_tx_end(struct agent *a, struct flow *f);
void relay_close(struct agent *a, struct flow *f);

/*
 * agent/early.c: the copy of a flow's early bytes. early_room: how many
 * more may go early (0: no buffer now); early_take: the copy, now the
 * caller's to free (the relay's buffer).
 */
size_t early_room(struct flow *f);
void early_keep(struct flow *f, const void *buf, size_t n);
void early_drop(struct flow *f);
uint8_t *early_take(struct flow *f, size_t *len);
void early_fini(void);

/* agent/reset.c: a failed flow's connection reset as a network RST would */
void flow_reset_tcp(struct agent *a, struct flow *f);

#endif
