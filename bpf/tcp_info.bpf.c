// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * cgroup/getsockopt on the apps' cgroup: TCP_INFO of a steered socket
 * counts the bytes the tunnel carried (docs/steering.md, "TCP_INFO"). The
 * socket's own TCP saw the handshake and the FINs only; to what it says,
 * this adds
 *   bytes_sent, bytes_acked  what the agent took from the slot (into the
 *                            ring: the tunnel has them)
 *   notsent_bytes            what the app sent that the agent has not
 *                            taken yet
 *   bytes_received           what the agent injected into the socket
 * Every other answer stays as the kernel gave it.
 */
#include "sock_flow.bpf.h"

#define SOL_TCP 6
#define TCP_INFO 11

/*
 * Whether @field lies whole in what the kernel wrote for the app (@len
 * bytes) and in what the program sees of it (up to @end).
 */
#define IN_ANSWER(ti, field, end, len)                                         \
	((void *)(&(ti)->field + 1) <= (end) &&                                \
	 __builtin_offsetof(struct tcp_info, field) + sizeof((ti)->field) <=   \
		 (len))

static __always_inline __u64 slot_word(void *map, __u32 slot)
{
	__u64 *w = bpf_map_lookup_elem(map, &slot);

	return w ? *(volatile __u64 *)w : 0;
}

SEC("cgroup/getsockopt")
int fivc_tcp_info(struct bpf_sockopt *ctx)
{
	struct tcp_info *ti = ctx->optval;
	void *end = ctx->optval_end;
	struct bpf_sock *sk = ctx->sk;
	struct fivc_flow *flow;
	__u64 taken, sent;
	__u32 fam, len;

	if (ctx->optlen > SOCKOPT_SEEN_MAX) {
		ctx->optlen = 0; /* the app gets the kernel's whole answer */
		return 1;
	}
	if (ctx->level != SOL_TCP || ctx->optname != TCP_INFO || ctx->retval ||
	    !sk)
		return 1;
	fam = CTX_READ(sk, family);
	if (fam != AF_INET && fam != AF_INET6)
		return 1;
	flow = sock_flow(sk, fam);
	if (!flow || flow->hold_ns)
		return 1;
	len = (__u32)ctx->optlen;
	taken = slot_word(&slot_rd, flow->slot);
	sent = slot_word(&slot_sw, flow->slot) >> FIVC_SW_SENT_SHIFT;
	if (IN_ANSWER(ti, tcpi_bytes_acked, end, len))
		ti->tcpi_bytes_acked += taken;
	if (IN_ANSWER(ti, tcpi_bytes_received, end, len))
		ti->tcpi_bytes_received += slot_word(&slot_in, flow->slot);
	if (IN_ANSWER(ti, tcpi_notsent_bytes, end, len) && sent > taken)
		ti->tcpi_notsent_bytes += (__u32)(sent - taken);
	if (IN_ANSWER(ti, tcpi_bytes_sent, end, len))
		ti->tcpi_bytes_sent += taken;
	return 1;
}
