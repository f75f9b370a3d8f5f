// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* 16-byte addresses as the maps store them: IPv6, or IPv4-mapped. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

static const uint8_t v4_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

void addr_format(const uint8_t a[16], char *buf, size_t len)
{
	if (!memcmp(a, v4_prefix, 12))
		inet_ntop(AF_INET, a + 12, buf, (socklen_t)len);
	else
		inet_ntop(AF_INET6, a, buf, (socklen_t)len);
}

/* "10.0.0.0/24", "10.0.0.1", "fd00::/64": the LPM key, or -EINVAL. */
int addr_parse_prefix(const char *s, struct fivc_peer_key *k)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	unsigned long plen;
	bool v4;
	char *end;

	if (!n || n >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = 0;
	memset(k, 0, sizeof(*k));
	v4 = inet_pton(AF_INET, host, k->addr + 12) == 1;
	if (v4)
		memcpy(k->addr, v4_prefix, 12);
	else if (inet_pton(AF_INET6, host, k->addr) != 1)
		return -EINVAL;
	plen = v4 ? 32 : 128;
	if (slash) {
		plen = strtoul(slash + 1, &end, 10);
		if (!slash[1] || *end || plen > (v4 ? 32u : 128u))
			return -EINVAL;
	}
	k->prefixlen = (uint32_t)(v4 ? 96 + plen : plen);
	return 0;
}
