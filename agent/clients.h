/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * A listener whose clients send one short request and get one reply (the
 * control socket, /metrics), served from the agent's loop without ever
 * waiting on a client: sockets are non-blocking, each client has a buffer
 * and a deadline for the whole exchange, and a listener holds a bounded
 * number of them. docs/security.md, "Metrics and control clients".
 */
#ifndef FASTIVC_CLIENTS_H
#define FASTIVC_CLIENTS_H

#include <stdio.h>

#include "agent.h"

#define CLIENTS_MAX 16 /* per listener: then the oldest or the new goes */
#define CLIENT_TIMEOUT_NS 1000000000ull /* request and reply, together */

struct client;

struct client_set {
	/* Set by the owner before clients_listen(). */
	const char *name; /* "metrics", "control": log lines */
	size_t max_req;	  /* request bytes; more is dropped (too_large) */
	/* @req (NUL-terminated, @len bytes) is a whole request. */
	bool (*whole)(const char *req, size_t len);
	/* Writes the reply to @req (whole, or all the client sent) to @o. */
	void (*answer)(struct agent *a, const char *req, FILE *o);
	struct client_drops *drops; /* in a->ctr */

	/* Kept by clients.c. */
	struct agent_watch w; /* the listening socket */
	struct client *oldest, *newest;
	uint32_t n;		 /* clients waiting, at most CLIENTS_MAX */
	uint64_t quiet_until_ns; /* a drop before then is not logged */
	struct client_set *next; /* clients_tick's list */
};

/* Serve @s on listening socket @fd (non-blocking); takes @fd. */
int clients_listen(struct agent *a, struct client_set *s, int fd);
/* Drop every client of @s and close its listener (NULL-safe, idempotent). */
void clients_close(struct agent *a, struct client_set *s);
/* From the agent's tick: drop clients past their deadline. */
void clients_tick(struct agent *a, uint64_t now);
/* No client connected, so no deadline for clients_tick() to keep. */
bool clients_none(void);

#endif /* FASTIVC_CLIENTS_H */
