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

/* Runs until a->stop. */
int agent_loop(struct agent *a)
{
	struct epoll_event evs[64];

	while (!a->stop) {
		int n = epoll_wait(a->epfd, evs, 64, a->more ? 0 : -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			pr_err("epoll_wait: %s", strerror(errno));
			return -errno;
		}
		for (int i = 0; i < n && !a->stop; i++) {
			struct agent_watch *w = evs[i].data.ptr;

			if (w->live)
				w->fn(a, w, evs[i].events);
		}
		flows_run_more(a);
		if (a->poke_pending)
			agent_bpf_poke_run(a);
		agent_reap(a);
	}
	return 0;
}
