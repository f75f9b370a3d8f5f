// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The agent's one epoll loop and its bookkeeping. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include "agent.h"
#include "fastivc/log.h"

uint64_t agent_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int agent_watch_add(struct agent *a, struct agent_watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, w->fd, &ev)) {
		pr_warn("Failed to watch fd %d: %s", w->fd, strerror(errno));
		return -errno;
	}
	w->live = true;
	return 0;
}

int agent_watch_mod(struct agent *a, struct agent_watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	if (epoll_ctl(a->epfd, EPOLL_CTL_MOD, w->fd, &ev))
		return -errno;
	return 0;
}

void agent_watch_del(struct agent *a, struct agent_watch *w)
{
	if (w->live)
		epoll_ctl(a->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->live = false;
}

void agent_defer_free(struct agent *a, void *p)
{
	if (a->n_dead == a->cap_dead) {
		uint32_t cap = a->cap_dead ? a->cap_dead * 2 : 64;
		void **d = realloc(a->dead, cap * sizeof(*d));

		if (!d) {
			/* Leak rather than risk a use after free. */
			pr_warn("Out of memory: leaking %p", p);
			return;
		}
		a->dead = d;
		a->cap_dead = cap;
	}
	a->dead[a->n_dead++] = p;
}

void agent_reap(struct agent *a)
{
	while (a->n_dead)
		free(a->dead[--a->n_dead]);
}

/*
 * One round of the loop: wait up to @timeout ms (0: do not wait, -1: until
 * an event), run the callbacks, then the deferred work. Events seen, or
 * -errno on a failure of epoll itself.
 */
static int loop_round(struct agent *a, int timeout)
{
	struct epoll_event evs[64];
	int n = epoll_wait(a->epfd, evs, 64, timeout);

	if (n < 0) {
		if (errno == EINTR)
			return 0;
		pr_err("epoll_wait: %s", strerror(errno));
		a->stop = 1;
		return -errno;
	}
	if (n > 0)
		poll_awake(a);
	for (int i = 0; i < n && !a->stop; i++) {
		struct agent_watch *w = evs[i].data.ptr;

		if (w->live)
			w->fn(a, w, evs[i].events);
	}
	for (uint32_t i = 0; i < a->n_batch_hooks; i++)
		a->batch_hooks[i](a);
	agent_reap(a);
	return n;
}

int agent_on_batch(struct agent *a, void (*fn)(struct agent *a))
{
	if (a->n_batch_hooks == AGENT_BATCH_HOOKS)
		return -ENOSPC;
	a->batch_hooks[a->n_batch_hooks++] = fn;
	return 0;
}

static int loop_round_now(struct agent *a)
{
	return loop_round(a, 0);
}

/* Runs until a->stop. */
int agent_loop(struct agent *a)
{
	int err = 0;

	while (!a->stop && err >= 0) {
		uint64_t start;

		if (a->more) {
			err = loop_round(a, 0);
			continue;
		}
		if (poll_before_sleep(a, loop_round_now))
			continue;
		start = agent_now_ns();
		err = loop_round(a, -1);
		poll_after_sleep(a, agent_now_ns() - start);
	}
	return err < 0 ? err : 0;
}
