// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * `fastivc peer add|del|list`: the co-resident map of an instance, pinned
 * at <bpffs>/fastivc/<instance>/peers by the agent (it outlives the agent).
 */
#include <bpf/bpf.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "fastivc/log.h"

static void usage(FILE *o)
{
	fprintf(o,
		"Usage: fastivc peer [-i INSTANCE] [-b BPFFS] add PREFIX "
		"DOMID\n"
		"       fastivc peer [-i INSTANCE] [-b BPFFS] del PREFIX\n"
		"       fastivc peer [-i INSTANCE] [-b BPFFS] list\n"
		"The co-resident map: connections to an address in PREFIX "
		"may take\n"
		"the shared-memory path to domain DOMID. The map is pinned at\n"
		"<bpffs>/fastivc/<instance>/peers and outlives the agent.\n\n"
		"  -i, --instance NAME  the agent's instance [default]\n"
		"  -b, --bpffs DIR      where bpffs is mounted [/sys/fs/bpf]\n"
		"  -h, --help           this text\n\n"
		"PREFIX is an IPv4 or IPv6 address or prefix (10.0.0.0/24, "
		"fd00::2).\n");
}

static int open_peers(const struct agent_config *c)
{
	char dir[256], path[300];
	int fd;

	agent_pin_dir(c, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/peers", dir);
	fd = bpf_obj_get(path);
	if (fd < 0)
		pr_err("No peers map at %s (%s): has the agent for instance "
		       "'%s' run?",
		       path, strerror(errno), c->instance);
	return fd;
}

static int list(int fd)
{
	struct fivc_peer_key k, next, *prev = NULL;
	struct fivc_peer_val v;
	char addr[64];

	printf("%-44s %s\n", "prefix", "domid");
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		k = next;
		prev = &k;
		if (bpf_map_lookup_elem(fd, &k, &v))
			continue;
		addr_format(k.addr, addr, sizeof(addr));
		printf("%s/%-*u %u\n", addr, (int)(43 - strlen(addr)),
		       k.prefixlen >= 96 && strchr(addr, '.') ? k.prefixlen - 96
							      : k.prefixlen,
		       v.domid);
	}
	return 0;
}

int cmd_peer(int argc, char **argv)
{
	struct agent_config c;
	struct fivc_peer_key k;
	struct fivc_peer_val v = {};
	const char *verb;
	int opt, fd, ret = 0;

	static const struct option lo[] = {
		{"instance", required_argument, NULL, 'i'},
		{"bpffs", required_argument, NULL, 'b'},
		{"help", no_argument, NULL, 'h'},
		{},
	};

	agent_config_defaults(&c);
	while ((opt = getopt_long(argc, argv, "+i:b:h", lo, NULL)) != -1) {
		if (opt == 'h') {
			usage(stdout);
			return 0;
		}
		if ((opt != 'i' && opt != 'b') ||
		    agent_config_set(&c, opt == 'i' ? "instance" : "bpffs",
				     optarg)) {
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	verb = argv[optind++];
	if (!strcmp(verb, "add") && argc - optind == 2) {
		char *end;
		unsigned long d = strtoul(argv[optind + 1], &end, 10);

		if (addr_parse_prefix(argv[optind], &k) || *end ||
		    !argv[optind + 1][0] || d > 0x7fef) {
			pr_err("bad prefix or domain id: '%s' '%s'",
			       argv[optind], argv[optind + 1]);
			return 2;
		}
		v.domid = (uint32_t)d;
	} else if (!strcmp(verb, "del") && argc - optind == 1) {
		if (addr_parse_prefix(argv[optind], &k)) {
			pr_err("bad prefix '%s'", argv[optind]);
			return 2;
		}
	} else if (strcmp(verb, "list") || argc != optind) {
		usage(stderr);
		return 2;
	}
	fd = open_peers(&c);
	if (fd < 0)
		return 1;
	if (!strcmp(verb, "add") && bpf_map_update_elem(fd, &k, &v, BPF_ANY)) {
		pr_err("Failed to add the peer: %s", strerror(errno));
		ret = 1;
	} else if (!strcmp(verb, "del") && bpf_map_delete_elem(fd, &k)) {
		pr_err("Failed to delete the peer: %s", strerror(errno));
		ret = 1;
	} else if (!strcmp(verb, "list")) {
		ret = list(fd);
	}
	return ret;
}
