// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Segments the agent writes itself, through two raw sockets (IPv4, IPv6)
 * that stay open (a connection's FIN then costs one sendto() instead of
 * three syscalls), their checksums computed here.
 * Re-sending a held FIN (see bpf/fin_hold.bpf.c): once the tunnel has
 * delivered its last byte into the app socket, the peer's FIN that tc held
 * is sent again into our own stack (the held copy had only the offload's
 * partial sum). agent/reset.c writes RSTs the same way.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "fastivc/log.h"

static uint32_t sum16(const uint8_t *p, size_t n, uint32_t s)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		s += (uint32_t)(p[n - 1] << 8);
	return s;
}

static uint16_t fold(uint32_t s)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Fix the checksums of the IP packet in @pkt; returns its family or -1. */
static int fix_checksums(uint8_t *pkt, uint32_t len,
			 struct sockaddr_storage *to)
{
	uint32_t s;

	if (len >= 40 && (pkt[0] >> 4) == 4 && (pkt[0] & 15) == 5) {
		struct sockaddr_in *sin = (struct sockaddr_in *)to;
		uint8_t *th = pkt + 20;
		uint32_t tlen = len - 20;

		put16(pkt + 10, 0);
		put16(pkt + 10, fold(sum16(pkt, 20, 0)));
		put16(th + 16, 0);
		s = sum16(pkt + 12, 8, 0) + 6 + tlen;
		put16(th + 16, fold(sum16(th, tlen, s)));
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, pkt + 16, 4);
		return AF_INET;
	}
	if (len >= 60 && (pkt[0] >> 4) == 6 && pkt[6] == IPPROTO_TCP) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)to;
		uint8_t *th = pkt + 40;
		uint32_t tlen = len - 40;

		put16(th + 16, 0);
		s = sum16(pkt + 8, 32, 0) + 6 + tlen;
		put16(th + 16, fold(sum16(th, tlen, s)));
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, pkt + 24, 16);
		return AF_INET6;
	}
	return -1;
}

static int raw_fd[2] = {-1, -1}; /* [0]: IPv4, [1]: IPv6 */

int agent_fin_init(void)
{
	raw_fd[0] = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	raw_fd[1] = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (raw_fd[0] < 0 || raw_fd[1] < 0) {
		int err = -errno;

		pr_err("Failed to open the raw sockets that re-send held FINs: "
		       "%s (CAP_NET_RAW?)",
		       strerror(errno));
		agent_fin_exit();
		return err;
	}
	return 0;
}

void agent_fin_exit(void)
{
	for (int i = 0; i < 2; i++) {
		if (raw_fd[i] >= 0)
			close(raw_fd[i]);
		raw_fd[i] = -1;
	}
}

int agent_raw_send(uint8_t *pkt, uint32_t len)
{
	struct sockaddr_storage to = {};
	int family = fix_checksums(pkt, len, &to);

	if (family < 0)
		return -EINVAL;
	if (sendto(raw_fd[family == AF_INET6], pkt, len, 0,
		   (struct sockaddr *)&to,
		   family == AF_INET ? sizeof(struct sockaddr_in)
				     : sizeof(struct sockaddr_in6)) < 0)
		return -errno;
	return 0;
}

int agent_fin_resend(struct agent *a, const struct fivc_flow_key *k)
{
	struct fivc_held_fin held;
	int err;

	if (agent_bpf_held_fin_take(a, k, &held))
		return -ENOENT;
	err = agent_raw_send(held.pkt, held.len);
	if (err)
		pr_warn("Failed to re-send a held FIN: %s", strerror(-err));
	return err;
}
