/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Links to peer agents (agent/link.c; over grant pages, agent/xlink.c): one
 * per peer domain, carrying the tunnel messages. What a link receives goes
 * up through the handlers registered at link_init().
 */
#ifndef FASTIVC_AGENT_LINK_H
#define FASTIVC_AGENT_LINK_H

#include "agent.h"

struct fivc_tunnel_frame;
struct ringcache;

struct peer_link {
	uint32_t domid;
	struct agent_watch w;
	bool hello_done;
	uint8_t hello_got;	    /* bytes of the HELLO in hello_buf */
	uint8_t hello_buf[8];	    /* struct link_hello, as it arrives */
	uint64_t hello_deadline_ns; /* accepted: closed if no HELLO by then */
	/* What came of the message being received, and since when (0: none) */
	struct fivc_tunnel_rx rx;
	uint64_t rx_since_ns;
	uint32_t n_parked;	 /* its messages in park.c (bounded) */
	uint64_t park_logged_ns; /* it last hit that bound, and we said so */
	/* Messages the socket did not take yet, oldest first (never block). */
	struct fivc_tunnel_frame *out_head, *out_tail;
	uint32_t out_n;	  /* ... how many (at most LINK_OUT_MAX, link.c) */
	bool out_cut;	  /* it reached that: being torn down */
	bool out_waiting; /* registered for EPOLLOUT */
	bool carries_fds; /* a Unix socket between agents: relays possible */
	bool keepalive;	  /* nothing else tells that the peer died (xen) */
	uint64_t last_rx_ns, last_tx_ns;
	struct ringcache *rc; /* rings kept for reuse (ringcache.c) */
	struct peer_link *next;
};

/* agent/link.c: per-peer control links (local backend: Unix sockets) */
/* What a link receives, handed on to the layers above (flows, rings). */
struct link_handlers {
	/* CREATE or FALLBACK: may come before our event; takes @m's fds */
	void (*offer)(struct agent *a, struct peer_link *l,
		      struct fivc_tunnel_msg *m);
	/* ACCEPT, REJECT and the flows' other messages */
	void (*reply)(struct agent *a, struct peer_link *l,
		      const struct fivc_tunnel_msg *m);
	void (*release)(struct agent *a, struct peer_link *l,
			const struct fivc_tunnel_msg *m);
	void (*evict)(struct agent *a, struct peer_link *l,
		      const struct fivc_tunnel_msg *m);
	/* The link is going: whatever used it goes with it. */
	void (*down)(struct agent *a, struct peer_link *l);
};
int link_init(struct agent *a, const struct link_handlers *on);
struct peer_link *link_get(struct agent *a, uint32_t domid);
int link_send(struct agent *a, struct peer_link *l,
	      const struct fivc_tunnel_msg *m);
/* A connected stream to @domid's agent (xen: from xlink.c); takes @fd. */
struct peer_link *link_adopt(struct agent *a, int fd, uint32_t domid);
/* Keepalives: send when idle, take down links that went silent. */
void link_tick(struct agent *a, uint64_t now);
/* Every link past its hello, none inside a frame: no deadline but LINK_DEAD. */
bool links_settled(const struct agent *a);
void link_fini(struct agent *a);

/* agent/xlink.c: links over grant pages (backend = xen) */
struct xlink;
/* Set a link to @peer up (no-op if there is one). */
void xlink_want(struct agent *a, uint32_t peer);
/* Links to exactly these domains: others are closed, missing ones set up. */
void xlink_want_only(struct agent *a, const uint32_t *peers, uint32_t n);
/* Both sides mapped each other's ring. */
bool xlink_up(struct agent *a, uint32_t peer);
/* Read peers' offers: set links up, notice restarts and destroyed peers. */
void xlink_tick(struct agent *a, uint64_t now);
/* Every domain link up: none polled every XLINK_SETUP_POLL_NS. */
bool xlinks_settled(const struct agent *a);
void xlink_fini(struct agent *a);

#endif
