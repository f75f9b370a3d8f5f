// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * `fastivc dom0 publish|remove|list`: dom0's list of co-resident domains
 * and their addresses in xenstore (see agent/coresident.h), for the
 * toolstack or the vif hotplug script. `list` works in a domU too: it
 * reads what dom0 published, as the agent does.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xenstore.h>

#include "agent.h"
#include "coresident.h"
#include "fastivc/log.h"
#include "fastivc/xen_rendezvous.h"

static void usage(FILE *o)
{
	fprintf(o,
		"Usage: fastivc dom0 publish DOMID ADDR...\n"
		"       fastivc dom0 remove DOMID\n"
		"       fastivc dom0 list\n"
		"dom0's list of co-resident domains, in xenstore at\n"
		"  " CORES_DIR "/<domid> = \"ADDR,...\"\n"
		"owned by dom0, readable by every domain. Agents with "
		"`coresident = xenstore`\n"
		"fill their peers map from it. publish and remove need dom0; "
		"list works\nanywhere. ADDR is one IPv4 or IPv6 address, at "
		"most %u per domain.\n",
		CORES_MAX_ADDRS);
}

static int parse_domid(const char *s, uint32_t *domid)
{
	if (fivc_xrdv_parse_u32(s, domid) || *domid > 0x7fef) {
		pr_err("bad domain id '%s' (0..32751)", s);
		return -EINVAL;
	}
	return 0;
}

/* The addresses, checked, as the value publish writes. */
static int join_addrs(int n, char **argv, char *value, size_t len)
{
	struct fivc_peer_key keys[CORES_MAX_ADDRS];

	if (n < 1 || n > (int)CORES_MAX_ADDRS) {
		pr_err("publish wants 1 to %u addresses, got %d",
		       CORES_MAX_ADDRS, n);
		return -EINVAL;
	}
	for (int i = 0; i < n; i++)
		if (cores_parse_addrs(argv[i], &keys[i], 1) != 1) {
			pr_err("bad address '%s' (one IPv4 or IPv6 address, "
			       "no prefix)",
			       argv[i]);
			return -EINVAL;
		}
	return cores_format_addrs(keys, (unsigned int)n, value, len) < 0
		       ? -E2BIG
		       : 0;
}

static int list(struct xs_handle *xs)
{
	struct cores_set s = {};
	char addr[INET6_ADDRSTRLEN];
	int err = cores_xs_read(xs, UINT32_MAX, &s);

	if (err) {
		pr_err("Failed to read %s: %s", CORES_DIR, strerror(-err));
		return err;
	}
	printf("%-40s %s\n", "address", "domid");
	for (uint32_t i = 0; i < s.n; i++) {
		addr_format(s.e[i].key.addr, addr, sizeof(addr));
		printf("%-40s %u\n", addr, s.e[i].domid);
	}
	cores_set_free(&s);
	return 0;
}

int cmd_dom0(int argc, char **argv)
{
	char value[CORES_VALUE_MAX];
	struct xs_handle *xs;
	const char *verb = argc > 1 ? argv[1] : "";
	uint32_t domid = 0;
	int err;

	if (!strcmp(verb, "-h") || !strcmp(verb, "--help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(verb, "publish") && argc >= 3) {
		err = parse_domid(argv[2], &domid);
		if (!err)
			err = join_addrs(argc - 3, argv + 3, value,
					 sizeof(value));
	} else if (!strcmp(verb, "remove") && argc == 3) {
		err = parse_domid(argv[2], &domid);
	} else if (!strcmp(verb, "list") && argc == 2) {
		err = 0;
	} else {
		usage(stderr);
		return 2;
	}
	if (err)
		return 2;
	xs = cores_xs_open();
	if (!xs)
		return 1;
	if (!strcmp(verb, "publish"))
		err = cores_xs_publish(xs, domid, value);
	else if (!strcmp(verb, "remove"))
		err = cores_xs_remove(xs, domid);
	else
		err = list(xs);
	if (err && strcmp(verb, "list"))
		pr_err("Failed to %s domain %u in %s: %s%s", verb, domid,
		       CORES_DIR, strerror(-err),
		       err == -EACCES ? " (only dom0 may write there)" : "");
	xs_close(xs);
	return err ? 1 : 0;
}
