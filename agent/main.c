// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* fastivc: one binary, subcommands in the style of ip and bpftool. */
#include <stdio.h>
#include <string.h>

#include "agent.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *what;
} cmds[] = {
	{"agent", cmd_agent, "run the agent of this domain (foreground)"},
	{"status", cmd_status, "flows, tunnels and counters of the agent"},
	{"peer", cmd_peer, "add, delete or list co-resident peers"},
	{"dom0", cmd_dom0, "dom0: publish domains' addresses in xenstore"},
};

static void usage(FILE *o)
{
	fprintf(o,
		"Usage: fastivc COMMAND [ARGS]   (fastivc COMMAND --help)\n");
	for (unsigned int i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		fprintf(o, "  %-8s %s\n", cmds[i].name, cmds[i].what);
	fprintf(o, "See fastivc(8) and docs/operations.md.\n");
}

int main(int argc, char **argv)
{
	/* `fastivc help COMMAND` is `fastivc COMMAND --help`. */
	if (argc == 3 && !strcmp(argv[1], "help")) {
		char *sub[] = {argv[2], "--help", NULL};

		for (unsigned int i = 0; i < sizeof(cmds) / sizeof(cmds[0]);
		     i++)
			if (!strcmp(argv[2], cmds[i].name))
				return cmds[i].fn(2, sub);
	}
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (unsigned int i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "fastivc: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
