// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Agent configuration: defaults, `key = value` files and command-line
 * overrides, validated with an error that names the key (and the line).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "fastivc/log.h"

/*
 * channel_size by backend, unless set. 4 KiB (the thesis) costs a wake-up
 * per 4 KiB. On one kernel bytes in flight bound a stream: 4 x 256 KiB
 * moved iperf3 -P 1 at 0.83x veth TCP where 4 x 64 KiB gave 0.46x, at half
 * the CPU per GB (docs/performance.md, "Ring size by backend"); memfd
 * pages are taken only as bytes fill them. On xen a ring's pages are all
 * granted at once and the lab's copy rate, not the ring, bounds a stream.
 */
#define CHANNEL_SIZE_LOCAL (256u * 1024)
#define CHANNEL_SIZE_XEN (64u * 1024)

/*
 * sched_batch by backend, unless set: worth it where an agent run is dear
 * and a ring small (a domU under a hypervisor), not where megabyte batches
 * are copied cache-cold (docs/performance.md, "Batch wake-ups").
 */
#define SCHED_BATCH_LOCAL 0
#define SCHED_BATCH_XEN 1

/* The keys whose default follows the backend, where not given. */
static void backend_defaults(struct agent_config *c)
{
	bool xen = c->backend == FIVC_BACKEND_XEN;

	if (!c->channel_size_set)
		c->channel_size = xen ? CHANNEL_SIZE_XEN : CHANNEL_SIZE_LOCAL;
	if (!c->sched_batch_set)
		c->sched_batch = xen ? SCHED_BATCH_XEN : SCHED_BATCH_LOCAL;
}

void agent_config_defaults(struct agent_config *c)
{
	struct fivc_ring_geom g;

	fivc_ring_geom_default(&g);
	memset(c, 0, sizeof(*c));
	snprintf(c->instance, sizeof(c->instance), "default");
	snprintf(c->cgroup, sizeof(c->cgroup), "/sys/fs/cgroup/unified");
	snprintf(c->bpffs, sizeof(c->bpffs), "/sys/fs/bpf");
	snprintf(c->run_dir, sizeof(c->run_dir), "/run/fastivc");
	snprintf(c->link_dir, sizeof(c->link_dir), "/run/fastivc/link");
	c->domid = UINT32_MAX; /* must be set */
	c->backend = FIVC_BACKEND_LOCAL;
	c->n_channels = g.n_channels;
	c->channel_size = CHANNEL_SIZE_LOCAL;
	c->pool = 32;
	c->max_tunnels = 4096;
	c->uid_share = 50;
	c->setup_timeout_ms = 2000;
	c->drain_timeout_ms = 30000;
	c->window = 4u << 20;
	c->poll_us = 0;
	c->sched_batch = SCHED_BATCH_LOCAL;
	c->max_flows = FIVC_MAX_FLOWS;
	c->shm_mem_permille = 250;
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	unsigned long long v;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || v < lo || v > hi)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int set_str(char *dst, size_t len, const char *val)
{
	if (!*val || strlen(val) >= len)
		return -EINVAL;
	memcpy(dst, val, strlen(val) + 1);
	return 0;
}

static int check_instance(const char *s)
{
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
			return -EINVAL;
	return 0;
}

/* 0, or -EINVAL after printing why (the caller adds where). */
int agent_config_set(struct agent_config *c, const char *key, const char *val)
{
	struct fivc_ring_geom g;
	int err = -ENOENT;

	if (!strcmp(key, "instance")) {
		err = set_str(c->instance, sizeof(c->instance), val);
		if (!err)
			err = check_instance(val);
	} else if (!strcmp(key, "cgroup")) {
		err = set_str(c->cgroup, sizeof(c->cgroup), val);
	} else if (!strcmp(key, "bpffs")) {
		err = set_str(c->bpffs, sizeof(c->bpffs), val);
	} else if (!strcmp(key, "run_dir")) {
		err = set_str(c->run_dir, sizeof(c->run_dir), val);
	} else if (!strcmp(key, "link_dir")) {
		err = set_str(c->link_dir, sizeof(c->link_dir), val);
	} else if (!strcmp(key, "ifaces")) {
		err = set_str(c->ifaces, sizeof(c->ifaces), val);
	} else if (!strcmp(key, "services")) {
		struct fivc_peer_key k[FIVC_MAX_SERVICES];

		err = 0;
		if (!*val || !strcmp(val, "none"))
			c->services[0] = 0;
		else if (addr_parse_prefixes(val, k, FIVC_MAX_SERVICES) < 0)
			err = -EINVAL;
		else
			err = set_str(c->services, sizeof(c->services), val);
	} else if (!strcmp(key, "domid")) {
		err = parse_u32(val, 0, 0x7fef, &c->domid);
	} else if (!strcmp(key, "channels")) {
		err = parse_u32(val, FIVC_CHANNELS_MIN, FIVC_CHANNELS_MAX,
				&c->n_channels);
	} else if (!strcmp(key, "channel_size")) {
		err = parse_u32(val, FIVC_CHANNEL_SIZE_MIN,
				FIVC_CHANNEL_SIZE_MAX, &c->channel_size);
		c->channel_size_set = !err;
		fivc_ring_geom_default(&g);
		g.channel_size = c->channel_size;
		if (!err)
			err = fivc_ring_geom_check(&g, NULL);
	} else if (!strcmp(key, "pool")) {
		err = parse_u32(val, 1, 4096, &c->pool);
	} else if (!strcmp(key, "uid_share")) {
		err = parse_u32(val, 1, 100, &c->uid_share);
	} else if (!strcmp(key, "max_tunnels")) {
		err = parse_u32(val, 0, FIVC_MAX_SLOTS - 1, &c->max_tunnels);
	} else if (!strcmp(key, "setup_timeout_ms")) {
		err = parse_u32(val, 10, 60000, &c->setup_timeout_ms);
	} else if (!strcmp(key, "drain_timeout_ms")) {
		err = parse_u32(val, 0, 600000, &c->drain_timeout_ms);
	} else if (!strcmp(key, "window")) {
		err = parse_u32(val, 256u << 10, 256u << 20, &c->window);
	} else if (!strcmp(key, "max_flows")) {
		err = parse_u32(val, 1, FIVC_MAX_FLOWS, &c->max_flows);
	} else if (!strcmp(key, "poll_us")) {
		err = parse_u32(val, 0, 100000, &c->poll_us);
	} else if (!strcmp(key, "sched_batch")) {
		err = parse_u32(val, 0, 1, &c->sched_batch);
		if (!err)
			c->sched_batch_set = true;
	} else if (!strcmp(key, "max_shm_bytes")) {
		err = parse_u32(val, 0, UINT32_MAX, &c->max_shm_bytes);
	} else if (!strcmp(key, "shm_mem_permille")) {
		err = parse_u32(val, 1, 500, &c->shm_mem_permille);
	} else if (!strcmp(key, "log_level")) {
		enum fivc_log_level l;

		err = fivc_log_parse_level(val, &l);
		if (!err) {
			fivc_log_set_level(l);
			snprintf(c->log_level, sizeof(c->log_level), "%s", val);
		}
	} else if (!strcmp(key, "backend")) {
		err = 0;
		if (!strcmp(val, "local"))
			c->backend = FIVC_BACKEND_LOCAL;
		else if (!strcmp(val, "xen"))
			c->backend = FIVC_BACKEND_XEN;
		else
			err = -EINVAL;
		if (!err)
			backend_defaults(c);
	} else if (!strcmp(key, "coresident")) {
		err = strcmp(val, "manual") && strcmp(val, "xenstore") ? -EINVAL
								       : 0;
		if (!err)
			c->coresident_xs = !strcmp(val, "xenstore");
	} else if (!strcmp(key, "metrics_listen")) {
		if (!strcmp(val, "off") || !*val) {
			c->metrics_listen[0] = 0;
			err = 0;
		} else {
			err = set_str(c->metrics_listen,
				      sizeof(c->metrics_listen), val);
			if (!err)
				err = addr_parse_listen(val, NULL, NULL);
		}
	}
	return err;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

int agent_config_load(struct agent_config *c, const char *path)
{
	char line[512];
	unsigned int n = 0;
	FILE *f = fopen(path, "re");
	int err = 0;

	if (!f) {
		err = -errno;
		pr_err("Failed to open config %s: %s", path, strerror(errno));
		return err;
	}
	while (fgets(line, sizeof(line), f)) {
		char *key, *val, *eq;

		n++;
		key = trim(line);
		if (!*key || *key == '#')
			continue;
		eq = strchr(key, '=');
		if (!eq) {
			pr_err("%s:%u: expected 'key = value'", path, n);
			err = -EINVAL;
			break;
		}
		*eq = 0;
		key = trim(key);
		val = trim(eq + 1);
		err = agent_config_set(c, key, val);
		if (err == -ENOENT)
			pr_err("%s:%u: unknown key '%s'", path, n, key);
		else if (err)
			pr_err("%s:%u: bad value '%s' for key '%s'", path, n,
			       val, key);
		if (err) {
			err = -EINVAL;
			break;
		}
	}
	fclose(f);
	return err;
}
