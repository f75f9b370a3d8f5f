/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Adaptive polling (agent/poll.c): after activity the agent spins for a
 * bounded window on the rings of its busy flows instead of sleeping, so
 * that the next message costs neither a notification nor a wake-up.
 */
#ifndef FASTIVC_AGENT_POLL_H
#define FASTIVC_AGENT_POLL_H

#include <stdbool.h>
#include <stdint.h>

struct agent;
struct flow;

struct agent_poll {
	uint64_t max_ns;    /* cfg.poll_us: the longest window; 0: off */
	uint64_t window_ns; /* the current window, adapted to the traffic */
	struct flow *hot;   /* flows whose receive ring is polled, not armed */
	uint32_t n_hot;
	bool idle;	 /* running as SCHED_IDLE while it spins */
	int work_policy; /* SCHED_BATCH or SCHED_OTHER (cfg.sched_batch) */
	int loadavg_fd;	 /* /proc/loadavg: how many tasks are runnable */
	uint32_t n_cpus; /* CPUs the agent may run on */
	uint64_t moved;	 /* tunnel bytes counted when it last looked */
	/* Data found on a polled ring: the flow's receive pump. */
	void (*rx_ready)(struct agent *a, struct flow *f);
	/* What polling did, for status and metrics. */
	uint64_t spins;	  /* windows spun */
	uint64_t hits;	  /* ... that found work before they ended */
	uint64_t yields;  /* ... ended because another task wanted the CPU */
	uint64_t spin_ns; /* CPU time they took (wall clock while spinning) */
};

struct poll_links {
	struct flow *prev, *next;
	bool hot;
	bool stream;	  /* moved a stream's bytes lately: not polled */
	uint64_t mark_ns; /* when the flow's rate was last measured */
	uint64_t mark_tx, mark_rx; /* ... and its bytes then */
};

void poll_init(struct agent *a,
	       void (*rx_ready)(struct agent *, struct flow *));
/* The config changed (poll_us, sched_batch). */
void poll_configure(struct agent *a);
/*
 * @f's app sent and an answer is likely: poll @f's receive ring instead of
 * arming its notification. false: polling is off, or the agent is moving
 * a stream; the caller arms and sleeps as before.
 */
bool poll_rx_defer(struct agent *a, struct flow *f);
/* @f goes away. */
void poll_forget(struct agent *a, struct flow *f);
/*
 * Before a blocking wait: spin while there is work now and then, until
 * the window passes without any. @batch runs one non-blocking round of
 * the event loop and says whether it found events. true: the loop should
 * go round again (work was found while arming).
 */
bool poll_before_sleep(struct agent *a, int (*batch)(struct agent *a));
/* Events came while spinning: back to the normal priority to serve them. */
void poll_awake(struct agent *a);
/* After a blocking wait of @slept_ns: adapt the window. */
void poll_after_sleep(struct agent *a, uint64_t slept_ns);

#endif /* FASTIVC_AGENT_POLL_H */
