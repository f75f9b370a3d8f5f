// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target: what the command line parses without side effects, the
 * peer prefix (`fastivc peer add|del PREFIX`, agent/addr.c) and the metrics
 * address (`--set metrics_listen=`, agent/metrics.c). The input is argv:
 * arguments separated by NUL bytes, each given to both parsers. A prefix
 * that parses must print and parse back to the same key.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "../../agent/agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_prefix(const char *arg)
{
	struct fivc_peer_key k, back;
	static const uint8_t v4[12] = {0, 0, 0, 0, 0,	 0,
				       0, 0, 0, 0, 0xff, 0xff};
	char addr[INET6_ADDRSTRLEN], again[INET6_ADDRSTRLEN + 8];
	bool is_v4;

	if (addr_parse_prefix(arg, &k))
		return;
	is_v4 = !memcmp(k.addr, v4, sizeof(v4));
	if (k.prefixlen > 128)
		abort();
	/*
	 * An IPv6 prefix shorter than /96 over a v4-mapped address prints as
	 * a dotted quad, which cannot say its length: no round trip.
	 */
	if (is_v4 && k.prefixlen < 96)
		return;
	addr_format(k.addr, addr, sizeof(addr));
	snprintf(again, sizeof(again), "%s/%u", addr,
		 is_v4 ? k.prefixlen - 96 : k.prefixlen);
	if (addr_parse_prefix(again, &back) || memcmp(&k, &back, sizeof(k)))
		abort();
}

static void fuzz_listen(const char *arg)
{
	struct sockaddr_storage ss;
	unsigned int len = 0;

	if (addr_parse_listen(arg, &ss, &len))
		return;
	if (!((ss.ss_family == AF_INET && len == sizeof(struct sockaddr_in)) ||
	      (ss.ss_family == AF_INET6 && len == sizeof(struct sockaddr_in6))))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *args = malloc(size + 1);

	if (!args)
		return 0;
	memcpy(args, data, size);
	args[size] = 0;
	for (char *p = args; p < args + size; p += strlen(p) + 1) {
		fuzz_prefix(p);
		fuzz_listen(p);
	}
	free(args);
	return 0;
}
