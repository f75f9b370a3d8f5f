// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Request/reply clients of the control socket and /metrics (clients.h).
 * The loop never waits on one: a client whose request is already there
 * when it is accepted is answered at once and never held; the others wait
 * in the epoll set, oldest first, until their request is whole and their
 * reply written, within CLIENT_TIMEOUT_NS of the accept, CLIENTS_MAX at
 * most. Every bound has a counter; drops are logged once per episode.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clients.h"
#include "fastivc/log.h"

#define ACCEPTS_PER_WAKE 32 /* then let the rest of the loop run */
#define EPISODE_QUIET_NS (10 * 1000000000ull) /* drops this far apart */
#define CLIENT_GRACE_NS (20 * 1000000ull)     /* not pushed out before this */

struct client {
	struct agent_watch w;
	struct client_set *set;
	struct client *prev, *next; /* set's list, oldest first */
	bool held;		    /* in the list (counts against the bound) */
	uint64_t accept_ns; /* the deadline is CLIENT_TIMEOUT_NS after */
	char *out;	    /* the reply (open_memstream), NULL while reading */
	size_t out_len, out_off;
	size_t got;
	char req[]; /* set->max_req + 1 */
};

static struct client_set *sets; /* listening now, for clients_tick */

static void client_free(struct agent *a, struct client *c)
{
	struct client_set *s = c->set;

	if (c->held) {
		*(c->prev ? &c->prev->next : &s->oldest) = c->next;
		*(c->next ? &c->next->prev : &s->newest) = c->prev;
		s->n--;
	}
	agent_watch_del(a, &c->w);
	close(c->w.fd);
	free(c->out);
	/* Its events may still be pending in this batch. */
	agent_defer_free(a, c);
}

enum drop_cause { DROP_DEADLINE, DROP_TOO_MANY, DROP_TOO_LARGE };

static void client_drop(struct agent *a, struct client *c, enum drop_cause why,
			uint64_t now)
{
	static const char *const what[] = {
		[DROP_DEADLINE] = "no whole request and reply within 1 s",
		[DROP_TOO_MANY] = "more than 16 at once",
		[DROP_TOO_LARGE] = "request too large",
	};
	struct client_set *s = c->set;

	if (why == DROP_DEADLINE)
		s->drops->deadline++;
	else if (why == DROP_TOO_MANY)
		s->drops->too_many++;
	else
		s->drops->too_large++;
	/* One line per episode: an attack must not flood the log. */
	if (now >= s->quiet_until_ns)
		pr_warn("%s: dropping clients (%s); further drops are counted "
			"(%s_clients_dropped_*), not logged, until none for "
			"10 s",
			s->name, what[why], s->name);
	s->quiet_until_ns = now + EPISODE_QUIET_NS;
	client_free(a, c);
}

/* Hold @c in the epoll set, waiting for @events; false: it was freed. */
static bool client_wait(struct agent *a, struct client *c, uint32_t events)
{
	struct client_set *s = c->set;

	if (c->w.live) {
		if (!agent_watch_mod(a, &c->w, events))
			return true;
		client_free(a, c);
		return false;
	}
	if (!c->held) {
		uint64_t now = agent_now_ns();

		/*
		 * Full: the oldest goes if it had its grace, else the new
		 * one. A crowd that reconnects as fast as it is dropped
		 * cannot push out a client that sends its request within
		 * the grace (a well-behaved one sends it with the connect).
		 */
		if (s->n >= CLIENTS_MAX &&
		    now - s->oldest->accept_ns < CLIENT_GRACE_NS) {
			client_drop(a, c, DROP_TOO_MANY, now);
			return false;
		}
		if (s->n >= CLIENTS_MAX)
			client_drop(a, s->oldest, DROP_TOO_MANY, now);
		c->prev = s->newest;
		*(s->newest ? &s->newest->next : &s->oldest) = c;
		s->newest = c;
		c->held = true;
		s->n++;
	}
	if (agent_watch_add(a, &c->w, events)) {
		client_free(a, c);
		return false;
	}
	return true;
}

/* Write what the socket takes; the rest on EPOLLOUT. */
static void client_write(struct agent *a, struct client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->w.fd, c->out + c->out_off,
				 c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			client_wait(a, c, EPOLLOUT);
			return;
		}
		if (n <= 0)
			break;
		c->out_off += (size_t)n;
	}
	client_free(a, c); /* done, or the client went away */
}

static void client_answer(struct agent *a, struct client *c)
{
	FILE *o = open_memstream(&c->out, &c->out_len);

	if (!o) {
		client_free(a, c);
		return;
	}
	c->set->answer(a, c->req, o);
	if (fclose(o) || !c->out) {
		client_free(a, c);
		return;
	}
	client_write(a, c);
}

/* Read what is there; answer a whole request. */
static void client_read(struct agent *a, struct client *c)
{
	struct client_set *s = c->set;

	for (;;) {
		ssize_t n = recv(c->w.fd, c->req + c->got, s->max_req - c->got,
				 MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			client_wait(a, c, EPOLLIN);
			return;
		}
		if (n < 0 || (!n && !c->got)) {
			client_free(a, c); /* gone before asking: not a drop */
			return;
		}
		c->got += (size_t)n;
		c->req[c->got] = 0;
		/* A half-closed client said all it will. */
		if (!n || s->whole(c->req, c->got)) {
			client_answer(a, c);
			return;
		}
		if (c->got == s->max_req) {
			client_drop(a, c, DROP_TOO_LARGE, agent_now_ns());
			return;
		}
	}
}

static void client_event(struct agent *a, struct agent_watch *w,
			 uint32_t events)
{
	struct client *c = container_of(w, struct client, w);

	(void)events; /* errors and hang-ups show in recv and send */
	if (c->out)
		client_write(a, c);
	else
		client_read(a, c);
}

static void on_listen(struct agent *a, struct agent_watch *w, uint32_t events)
{
	struct client_set *s = container_of(w, struct client_set, w);

	(void)events;
	for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
		struct client *c;
		int fd = accept4(w->fd, NULL, NULL,
				 SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0)
			return;
		c = calloc(1, sizeof(*c) + s->max_req + 1);
		if (!c) {
			close(fd);
			return;
		}
		c->w.fd = fd;
		c->w.fn = client_event;
		c->set = s;
		c->accept_ns = agent_now_ns();
		client_read(a, c);
	}
}

int clients_listen(struct agent *a, struct client_set *s, int fd)
{
	int err;

	s->w.fd = fd;
	s->w.fn = on_listen;
	s->oldest = s->newest = NULL;
	s->n = 0;
	err = agent_watch_add(a, &s->w, EPOLLIN);
	if (err) {
		close(fd);
		s->w.fn = NULL;
		return err;
	}
	s->next = sets;
	sets = s;
	return 0;
}

void clients_close(struct agent *a, struct client_set *s)
{
	struct client_set **p;

	if (!s || !s->w.fn)
		return;
	while (s->oldest)
		client_free(a, s->oldest);
	for (p = &sets; *p; p = &(*p)->next)
		if (*p == s) {
			*p = s->next;
			break;
		}
	agent_watch_del(a, &s->w);
	close(s->w.fd);
	s->w.fn = NULL;
}

bool clients_none(void)
{
	for (struct client_set *s = sets; s; s = s->next)
		if (s->oldest)
			return false;
	return true;
}

void clients_tick(struct agent *a, uint64_t now)
{
	for (struct client_set *s = sets; s; s = s->next)
		/* Oldest first: the deadlines are in the list's order. */
		while (s->oldest &&
		       now - s->oldest->accept_ns >= CLIENT_TIMEOUT_NS)
			client_drop(a, s->oldest, DROP_DEADLINE, now);
}
