// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * 16-byte addresses as the maps store them (IPv6, or IPv4-mapped), and
 * the listen address of metrics_listen.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
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

/* "P1,P2,...": at most @max prefixes into @out; how many, or -EINVAL. */
int addr_parse_prefixes(const char *s, struct fivc_peer_key *out,
			unsigned int max)
{
	char one[INET6_ADDRSTRLEN + 5];
	unsigned int n = 0;

	for (;;) {
		const char *comma = strchr(s, ',');
		size_t len = comma ? (size_t)(comma - s) : strlen(s);

		if (!len || len >= sizeof(one) || n == max)
			return -EINVAL;
		memcpy(one, s, len);
		one[len] = 0;
		if (addr_parse_prefix(one, &out[n]))
			return -EINVAL;
		n++;
		if (!comma)
			return (int)n;
		s = comma + 1;
	}
}

/* "A.B.C.D:PORT" or "[V6]:PORT": 0 or -EINVAL. */
int addr_parse_listen(const char *s, struct sockaddr_storage *ss,
		      unsigned int *len)
{
	struct sockaddr_storage tmp = {};
	char host[64], *colon, *end;
	unsigned long port;

	if (strlen(s) >= sizeof(host))
		return -EINVAL;
	snprintf(host, sizeof(host), "%s", s);
	colon = strrchr(host, ':');
	if (!colon || !colon[1])
		return -EINVAL;
	*colon = 0;
	port = strtoul(colon + 1, &end, 10);
	if (*end || port == 0 || port > 65535)
		return -EINVAL;
	if (!ss)
		ss = &tmp;
	if (host[0] == '[' && colon[-1] == ']') {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		colon[-1] = 0;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &sin6->sin6_addr) != 1)
			return -EINVAL;
		if (len)
			*len = sizeof(*sin6);
		return 0;
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -EINVAL;
		if (len)
			*len = sizeof(*sin);
		return 0;
	}
}
