// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * What a killed agent leaves behind, cleared by the next one at start
 * (systemd restarts it): its pinned maps, with the app sockets of its flows
 * still in them, and its tc filters (legacy tc filters belong to no
 * process). Its sockops and cgroup programs were bpf_links and went with it;
 * its sk_msg goes with the sockhash once that is unpinned.
 *
 * Its flows are not resumed: the bytes in its slots and the state of its
 * rings died with it. Every app socket in its `flows` map is reset
 * (SOCK_DESTROY: the app gets an error, its peer an RST). A FIN it held is
 * never re-sent: the bytes before it may be short. Until this runs, tc
 * keeps those flows from hanging or reading an early EOF (orphan.bpf.h).
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "fastivc/log.h"

static int pin_open(const char *pin_dir, const char *name)
{
	char path[320];

	snprintf(path, sizeof(path), "%s/%s", pin_dir, name);
	return bpf_obj_get(path);
}

/* A per-CPU counter of the previous agent's stats map, summed. */
static uint64_t old_stat(int fd, uint32_t idx)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *v, sum = 0;

	if (fd < 0 || ncpu <= 0)
		return 0;
	v = calloc((size_t)ncpu, sizeof(*v));
	if (v && !bpf_map_lookup_elem(fd, &idx, v))
		for (int c = 0; c < ncpu; c++)
			sum += v[c];
	free(v);
	return sum;
}

/* Reset every app socket the previous agent still had in `flows`. */
static void reset_flows(struct agent *a, int flows_fd, uint32_t *reset,
			uint32_t *closed)
{
	struct fivc_flow_key k, next, *prev = NULL;
	struct fivc_flow v;

	while (!bpf_map_get_next_key(flows_fd, prev, &next)) {
		char l[INET6_ADDRSTRLEN], r[INET6_ADDRSTRLEN];

		k = next;
		prev = &k;
		if (bpf_map_lookup_elem(flows_fd, &k, &v) || v.hold_ns)
			continue;
		if (agent_sock_destroy(a, &k, v.cookie)) {
			(*closed)++;
			continue;
		}
		addr_format(k.laddr, l, sizeof(l));
		addr_format(k.raddr, r, sizeof(r));
		pr_info("reset %s:%u -> %s:%u: its agent was killed", l,
			k.lport, r, k.rport);
		(*reset)++;
	}
}

/* The previous agent's flows, if it did not exit cleanly. */
void leftover_flows_reset(struct agent *a, const char *pin_dir)
{
	int flows_fd = pin_open(pin_dir, "flows");
	int stats_fd = pin_open(pin_dir, "stats");
	uint32_t reset = 0, closed = 0;

	if (flows_fd >= 0) {
		reset_flows(a, flows_fd, &reset, &closed);
		pr_warn("the previous agent did not stop cleanly: reset %u app "
			"connections (%u already closed); while no agent ran, "
			"%llu peer segments became RSTs and %llu app segments "
			"were dropped",
			reset, closed,
			(unsigned long long)old_stat(stats_fd,
						     FIVC_STAT_ORPHAN_RST),
			(unsigned long long)old_stat(stats_fd,
						     FIVC_STAT_ORPHAN_DROP));
		a->ctr.flows_leftover += reset;
		close(flows_fd);
	}
	if (stats_fd >= 0)
		close(stats_fd);
}

/* Our tc filters on any interface, from an agent that did not remove them. */
void leftover_tc_remove(void)
{
	static const enum bpf_tc_attach_point points[] = {BPF_TC_INGRESS,
							  BPF_TC_EGRESS};
	struct if_nameindex *ifs = if_nameindex(), *i;
	libbpf_print_fn_t print;
	unsigned int n = 0;

	if (!ifs)
		return;
	/* Most interfaces have no clsact: libbpf would say so each time. */
	print = libbpf_set_print(NULL);
	for (i = ifs; i->if_index; i++) {
		for (int p = 0; p < 2; p++) {
			DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook,
					    .ifindex = (int)i->if_index,
					    .attach_point = points[p]);
			DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts,
					    .handle = AGENT_TC_HANDLE,
					    .priority = 1);

			if (bpf_tc_query(&hook, &opts))
				continue;
			opts.prog_fd = opts.prog_id = opts.flags = 0;
			if (!bpf_tc_detach(&hook, &opts))
				n++;
		}
	}
	libbpf_set_print(print);
	if_freenameindex(ifs);
	if (n)
		pr_info("removed %u tc filters a previous agent left", n);
}
