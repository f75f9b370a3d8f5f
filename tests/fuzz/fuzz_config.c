// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target: the agent's configuration (agent/config.c). The input
 * is a config file for agent_config_load, read through a memfd; its first
 * line, split at the first '=', is also one --set KEY=VALUE for
 * agent_config_set. A configuration either loads was valid, or is refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../agent/agent.h"
#include "fastivc/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What a configuration that loaded must satisfy. */
static void check_config(const struct agent_config *c)
{
	struct fivc_ring_geom g;

	fivc_ring_geom_default(&g);
	g.n_channels = c->n_channels;
	g.channel_size = c->channel_size;
	if (fivc_ring_geom_check(&g, NULL) ||
	    (c->domid > 0x7fef && c->domid != UINT32_MAX) || !c->pool ||
	    strnlen(c->instance, sizeof(c->instance)) >= sizeof(c->instance) ||
	    strnlen(c->link_dir, sizeof(c->link_dir)) >= sizeof(c->link_dir) ||
	    strnlen(c->log_level, sizeof(c->log_level)) >= sizeof(c->log_level))
		abort();
}

static void fuzz_set(const uint8_t *data, size_t size)
{
	struct agent_config c;
	char kv[512], *val;
	size_t n = size < sizeof(kv) - 1 ? size : sizeof(kv) - 1;

	memcpy(kv, data, n);
	kv[n] = 0;
	kv[strcspn(kv, "\n")] = 0;
	val = strchr(kv, '=');
	if (!val)
		return;
	*val++ = 0;
	agent_config_defaults(&c);
	if (!agent_config_set(&c, kv, val))
		check_config(&c);
}

static void fuzz_load(const uint8_t *data, size_t size)
{
	struct agent_config c;
	char path[64];
	int fd = memfd_create("fuzz_config", MFD_CLOEXEC);

	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	agent_config_defaults(&c);
	if (!agent_config_load(&c, path))
		check_config(&c);
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_set(data, size);
	fuzz_load(data, size);
	/* A log_level key changes the process's level: put it back. */
	fivc_log_set_level(FIVC_LOG_ERR);
	return 0;
}
