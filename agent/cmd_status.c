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

#define ASK_TRIES 5

/* Connect and send the request: the fd, or -errno. */
static int ask(const struct sockaddr_un *sun, const struct timeval *tv,
	       bool json)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), err;

	if (fd < 0)
		return -errno;
	/* The agent answers within 1 s or drops us; never wait forever. */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, sizeof(*tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, tv, sizeof(*tv));
	if (connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) ||
	    send(fd, json ? "status json\n" : "status\n", json ? 12 : 7,
		 MSG_NOSIGNAL) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
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
	/*
	 * A crowd of clients may fill the agent's client slots: it then drops
	 * the newest before reading its request (docs/security.md). That is
	 * no answer yet: ask again, a few times.
	 */
	for (int try = 1;; try++) {
		fd = ask(&sun, &tv, json);
		if (fd == -ENOENT || fd == -ECONNREFUSED || fd == -EACCES) {
			pr_err("No agent answers for instance '%s' (%s): %s",
			       c.instance, sun.sun_path, strerror(-fd));
			return 1;
		}
		if (fd < 0 && fd != -EPIPE && fd != -ECONNRESET) {
			pr_err("Failed to ask the agent: %s", strerror(-fd));
			return 1;
		}
		n = 0;
		if (fd >= 0) {
			while ((n = read(fd, buf, sizeof(buf))) > 0) {
				total += (size_t)n;
				if (!quiet)
					fwrite(buf, 1, (size_t)n, stdout);
			}
			if (n < 0)
				n = -errno;
			close(fd);
			if (total || n == -EAGAIN)
				break; /* a reply, or no answer in time */
		}
		if (try == ASK_TRIES) {
			pr_err("The agent for instance '%s' closed without a "
			       "reply (%d tries)",
			       c.instance, try);
			return 1;
		}
		usleep(try * 50000);
	}
	if (n < 0)
		pr_err("Failed to read the agent's reply: %s",
		       n == -EAGAIN ? "timed out" : strerror((int)-n));
	return n < 0 ? 1 : 0;
}
