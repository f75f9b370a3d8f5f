// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The service manager's view of the agent (deploy/systemd): READY=1 once
 * the programs are attached and the control socket answers, a STATUS=
 * line kept current, RELOADING=1 ... READY=1 around a SIGHUP reload.
 * sd_notify() does nothing when NOTIFY_SOCKET is unset, so the agent run
 * by hand or by the tests behaves as before.
 */
#include <stdio.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "agent.h"
#include "fastivc/log.h"

#define STATUS_EVERY_NS (5ull * 1000000000ull)

static void status_line(struct agent *a, char *buf, size_t len)
{
	snprintf(buf, len,
		 "instance %s, domain %u: %u tunnels, %u flows, %llu "
		 "tunneled, %llu failed",
		 a->cfg.instance, a->cfg.domid, a->n_tunnels, a->n_flows,
		 (unsigned long long)a->ctr.flows_tunneled,
		 (unsigned long long)a->ctr.flows_failed);
}

void agent_notify_ready(struct agent *a)
{
	char st[200];
	int err;

	status_line(a, st, sizeof(st));
	err = sd_notifyf(0, "READY=1\nSTATUS=%s", st);
	if (err < 0)
		pr_warn("Failed to notify the service manager: %d", err);
	a->notify_ns = agent_now_ns();
}

void agent_notify_reloading(void)
{
	struct timespec ts;

	/* MONOTONIC_USEC: systemd >= 253 matches it to its own SIGHUP. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0,
		   "RELOADING=1\nSTATUS=reloading the configuration\n"
		   "MONOTONIC_USEC=%llu",
		   (unsigned long long)ts.tv_sec * 1000000ull +
			   (unsigned long long)ts.tv_nsec / 1000);
}

/* From the agent's tick: STATUS= every few seconds, not every 100 ms. */
void agent_notify_tick(struct agent *a)
{
	uint64_t now = agent_now_ns();
	char st[200];

	if (now - a->notify_ns < STATUS_EVERY_NS)
		return;
	a->notify_ns = now;
	status_line(a, st, sizeof(st));
	sd_notifyf(0, "STATUS=%s", st);
}
