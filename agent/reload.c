// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * SIGHUP: apply a configuration read again to the running agent. Parsing
 * stays in config.c; this is the part that touches the agent's state.
 */
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "fastivc/log.h"

/* Appends ", name" (or "name") to a list of keys. */
static void key_list_add(char *list, size_t len, const char *name)
{
	size_t n = strlen(list);

	snprintf(list + n, len - n, "%s%s", n ? ", " : "", name);
}

#define CFG_FIXED(field, name)                                                 \
	do {                                                                   \
		if (memcmp(&c->field, &n->field, sizeof(c->field)))            \
			key_list_add(fixed, sizeof(fixed), name);              \
	} while (0)
#define CFG_LIVE(field, name)                                                  \
	do {                                                                   \
		if (c->field != n->field) {                                    \
			size_t l = strlen(live);                               \
			snprintf(live + l, sizeof(live) - l,                   \
				 "%s%s %u (was %u)", l ? ", " : "", name,      \
				 n->field, c->field);                          \
			c->field = n->field;                                   \
		}                                                              \
	} while (0)

/*
 * SIGHUP: @n is the configuration read again (file, then command line).
 * Keys that only shape new flows and slots change at once; the others
 * (geometry, places, identity) need a restart and are named in one line.
 */
void agent_config_apply(struct agent *a, const struct agent_config *n)
{
	struct agent_config *c = &a->cfg;
	char fixed[256] = "", live[512] = "";

	CFG_FIXED(instance, "instance");
	CFG_FIXED(cgroup, "cgroup");
	CFG_FIXED(bpffs, "bpffs");
	CFG_FIXED(run_dir, "run_dir");
	CFG_FIXED(link_dir, "link_dir");
	CFG_FIXED(ifaces, "ifaces");
	CFG_FIXED(services, "services");
	CFG_FIXED(domid, "domid");
	CFG_FIXED(n_channels, "channels");
	CFG_FIXED(channel_size, "channel_size");
	CFG_FIXED(coresident_xs, "coresident");
	CFG_FIXED(backend, "backend");
	CFG_FIXED(max_flows, "max_flows");
	CFG_FIXED(max_shm_bytes, "max_shm_bytes");
	CFG_FIXED(shm_mem_permille, "shm_mem_permille");
	CFG_LIVE(window, "window");
	CFG_LIVE(poll_us, "poll_us");
	CFG_LIVE(sched_batch, "sched_batch");
	poll_configure(a);
	CFG_LIVE(max_tunnels, "max_tunnels");
	CFG_LIVE(pool, "pool");
	CFG_LIVE(uid_share, "uid_share");
	CFG_LIVE(setup_timeout_ms, "setup_timeout_ms");
	CFG_LIVE(drain_timeout_ms, "drain_timeout_ms");
	if (strcmp(c->log_level, n->log_level)) {
		memcpy(c->log_level, n->log_level, sizeof(c->log_level));
		char l[32];

		snprintf(l, sizeof(l), "log_level %s",
			 *n->log_level ? n->log_level : "info");
		key_list_add(live, sizeof(live), l);
	}
	if (strcmp(c->metrics_listen, n->metrics_listen)) {
		metrics_fini(a);
		memcpy(c->metrics_listen, n->metrics_listen,
		       sizeof(c->metrics_listen));
		key_list_add(live, sizeof(live), "metrics_listen");
		if (metrics_init(a))
			pr_err("reload: metrics are off until the next reload");
	}
	if (*fixed)
		pr_warn("reload: changed keys that need a restart, left as "
			"they were: %s",
			fixed);
	pr_info("reload: %s%s", *live ? "applied " : "no run-time key changed",
		live);
}
