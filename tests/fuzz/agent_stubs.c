// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The agent's epoll loop and BPF side, which agent/metrics.c references and
 * the parsers under fuzz never reach: linking them would pull in libbpf and
 * the skeleton. Reaching one is a bug in the fuzz target.
 */
#include <stdlib.h>

#include "../../agent/agent.h"

int agent_watch_add(struct agent *a, struct agent_watch *w, uint32_t events)
{
	(void)a, (void)w, (void)events;
	abort();
}

void agent_watch_del(struct agent *a, struct agent_watch *w)
{
	(void)a, (void)w;
	abort();
}

int agent_bpf_stats(struct agent *a, uint64_t out[FIVC_STAT__MAX])
{
	(void)a, (void)out;
	abort();
}

const char *agent_stat_name(unsigned int i)
{
	(void)i;
	abort();
}

const char *flow_state_name(enum flow_state s)
{
	(void)s;
	abort();
}
