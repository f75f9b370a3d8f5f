// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Segments the agent writes itself, through two raw sockets (IPv4, IPv6)
 * that stay open (a connection's FIN then costs one sendto() instead of
 * three syscalls), their checksums computed here.
 * Re-sending a held FIN (see bpf/fin_hold.bpf.c): once the tunnel has
 * delivered its last byte into the app socket, the peer's FIN that tc held
 * is sent again into our own stack (the held copy had only the offload's
 * partial sum). The RSTs agent/reset.c sends are built here too.
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

static int raw_send(uint8_t *pkt, uint32_t len)
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

#define TCP_RST 0x04
#define TCP_ACK 0x10

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/*
 * A segment from @from:@sport to @to:@dport (addresses as in keys), no
 * payload, with @opt (@optlen: 0 or a multiple of 4) after its header.
 */
static int raw_tcp(const uint8_t from[16], uint16_t sport, const uint8_t to[16],
		   uint16_t dport, uint32_t seq, uint32_t ack, uint8_t flags,
		   const uint8_t *opt, uint32_t optlen)
{
	uint8_t pkt[60 + 40] = {0}, *th;
	uint32_t len;

	if (optlen > 40 || optlen % 4)
		return -EINVAL;
	if (!memcmp(from, v4_mapped, 12)) {
		len = 40 + optlen;
		pkt[0] = 0x45;
		put16(pkt + 2, (uint16_t)len);
		put16(pkt + 6, 0x4000); /* DF */
		pkt[8] = 64;
		pkt[9] = 6; /* TCP */
		memcpy(pkt + 12, from + 12, 4);
		memcpy(pkt + 16, to + 12, 4);
		th = pkt + 20;
	} else {
		len = 60 + optlen;
		pkt[0] = 0x60;
		put16(pkt + 4, (uint16_t)(20 + optlen));
		pkt[6] = 6;
		pkt[7] = 64;
		memcpy(pkt + 8, from, 16);
		memcpy(pkt + 24, to, 16);
		th = pkt + 40;
	}
	put16(th, sport);
	put16(th + 2, dport);
	put32(th + 4, seq);
	th[12] = (uint8_t)((5 + optlen / 4) << 4);
	th[13] = flags;
	if (flags & TCP_ACK) {
		put32(th + 8, ack);
		/* The peer's window now: never one that holds a FIN back. */
		put16(th + 14, 0xffff);
	}
	if (optlen)
		memcpy(th + 20, opt, optlen);
	return raw_send(pkt, len);
}

int agent_raw_rst(const uint8_t from[16], uint16_t sport, const uint8_t to[16],
		  uint16_t dport, uint32_t seq)
{
	return raw_tcp(from, sport, to, dport, seq, 0, TCP_RST, NULL, 0);
}

int agent_raw_poke(const uint8_t from[16], uint16_t sport, const uint8_t to[16],
		   uint16_t dport, uint32_t seq, uint32_t ack, uint32_t domid,
		   uint32_t nonce)
{
	uint8_t opt[FIVC_TCPOPT_LEN] = {FIVC_TCPOPT_KIND, FIVC_TCPOPT_LEN};

	put16(opt + 2, FIVC_TCPOPT_EXID);
	put32(opt + 4, domid);
	put32(opt + 8, nonce);
	return raw_tcp(from, sport, to, dport, seq, ack, TCP_ACK, opt,
		       sizeof(opt));
}

int agent_fin_resend(struct agent *a, const struct fivc_flow_key *k)
{
	struct fivc_held_fin held;
	int err;

	if (agent_bpf_held_fin_take(a, k, &held))
		return -ENOENT;
	err = raw_send(held.pkt, held.len);
	if (err)
		pr_warn("Failed to re-send a held FIN: %s", strerror(-err));
	return err;
}
