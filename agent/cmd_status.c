// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `fastivc status [--json]`: ask the running agent. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"
#include "fastivc/log.h"

static void usage(FILE *o)
{
	fprintf(o, "Usage: fastivc status [-i INSTANCE] [--run-dir DIR] "
		   "[--json | --quiet] [--timeout S]\n"
		   "Flows (4-tuple, path, bytes each way, fallback reason), "
		   "tunnels\n"
		   "and counters of the running agent, asked through its "
		   "control socket\n"
		   "<run-dir>/<instance>.sock.\n\n"
		   "  -i, --instance NAME  the agent's instance [default]\n"
		   "  -r, --run-dir DIR    its run_dir [/run/fastivc]\n"
		   "  -j, --json           one JSON object; its fields are "
		   "documented in\n"
		   "                       docs/operations.md (schema_version "
		   "1)\n"
		   "  -q, --quiet          print nothing: exit 0 if the agent "
		   "answers\n"
		   "                       (health probes)\n"
		   "  -t, --timeout S      give up after S seconds without "
		   "a byte [10]\n"
		   "  -h, --help           this text\n\n"
		   "Exit status: 0 answered, 1 no agent answers, 2 usage "
		   "error.\n");
}

int cmd_status(int argc, char **argv)
{
	static const struct option lo[] = {
		{"instance", required_argument, NULL, 'i'},
		{"run-dir", required_argument, NULL, 'r'},
		{"json", no_argument, NULL, 'j'},
		{"quiet", no_argument, NULL, 'q'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 10};
	struct agent_config c;
	bool json = false, quiet = false;
	size_t total = 0;
	char buf[65536];
	ssize_t n;
	int opt, fd;

	agent_config_defaults(&c);
	while ((opt = getopt_long(argc, argv, "i:r:jqt:h", lo, NULL)) != -1) {
		int err = 0;

		if (opt == 'i')
			err = agent_config_set(&c, "instance", optarg);
		else if (opt == 'r')
			err = agent_config_set(&c, "run_dir", optarg);
		else if (opt == 'j')
			json = true;
		else if (opt == 'q')
			quiet = true;
		else if (opt == 't') {
			char *end;
			long t = strtol(optarg, &end, 10);

			if (*end || t < 1 || t > 3600)
				err = -EINVAL;
			tv.tv_sec = t;
		} else if (opt == 'h') {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
		if (err) {
			pr_err("bad value '%s'", optarg);
			return 2;
		}
	}
	if (optind < argc) {
		pr_err("unexpected argument '%s'", argv[optind]);
		return 2;
	}
	control_path(&c, sun.sun_path, sizeof(sun.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	/* The agent answers within 1 s or drops us; never wait forever. */
	if (fd >= 0) {
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		pr_err("No agent answers for instance '%s' (%s): %s",
		       c.instance, sun.sun_path, strerror(errno));
		return 1;
	}
	if (send(fd, json ? "status json\n" : "status\n", json ? 12 : 7,
		 MSG_NOSIGNAL) < 0) {
		pr_err("Failed to ask the agent: %s", strerror(errno));
		close(fd);
		return 1;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		total += (size_t)n;
		if (!quiet)
			fwrite(buf, 1, (size_t)n, stdout);
	}
	if (n < 0)
		pr_err("Failed to read the agent's reply: %s",
		       errno == EAGAIN ? "timed out" : strerror(errno));
	close(fd);
	if (!n && !total) {
		pr_err("The agent for instance '%s' closed without a reply",
		       c.instance);
		return 1;
	}
	return n < 0 ? 1 : 0;
}
