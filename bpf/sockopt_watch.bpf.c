// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * cgroup/setsockopt on the apps' cgroup: follows the options of
 * sockopt_refuse.bpf.h as the apps set them (docs/steering.md, "Socket
 * options"). On a listener it keeps listen_opts current (nginx sets
 * TCP_DEFER_ACCEPT after listen()); on a steered socket, or one whose
 * handshake has been offered, it counts opt_late: that connection stays on
 * the tunnel, which does not honour the option. It never changes what the
 * app asked for.
 */
#include "sockopt_refuse.bpf.h"

#define SOL_SOCKET 1
#define SO_RCVLOWAT 18
#define TCP_DEFER_ACCEPT 9
#define IPPROTO_TCP 6
/* The most of optval a program sees (a page, at least 4 KiB). */
#define SOCKOPT_SEEN_MAX 4096

/* The refusal bit an option may set, 0 if it is none of ours. */
static __always_inline __u32 watched(int level, int optname)
{
	if (level == SOL_SOCKET && optname == SO_RCVLOWAT)
		return FIVC_OPT_RCVLOWAT;
	if (level == SOL_TCP && optname == TCP_DEFER_ACCEPT)
		return FIVC_OPT_DEFER;
	return 0;
}

/*
 * Whether the new value refuses, as the kernel will read it: a negative
 * SO_RCVLOWAT means INT_MAX, a TCP_DEFER_ACCEPT of 0 or less none.
 */
static __always_inline bool refuses(__u32 bit, int val)
{
	if (bit == FIVC_OPT_RCVLOWAT)
		return val < 0 || val > 1;
	return val > 0;
}

/*
 * @sk's own address (and its peer's), IPv4-mapped if need be. CTX_READ: one
 * load per field, as the verifier wants of a socket pointer.
 */
static __always_inline void sock_addrs(const struct bpf_sock *sk, __u32 fam,
				       __u8 *laddr, __u8 *raddr)
{
	if (fam == AF_INET) {
		addr_v4mapped(laddr, CTX_READ(sk, src_ip4));
		if (raddr)
			addr_v4mapped(raddr, CTX_READ(sk, dst_ip4));
		return;
	}
	addr_v6(laddr, CTX_READ(sk, src_ip6[0]), CTX_READ(sk, src_ip6[1]),
		CTX_READ(sk, src_ip6[2]), CTX_READ(sk, src_ip6[3]));
	if (raddr)
		addr_v6(raddr, CTX_READ(sk, dst_ip6[0]),
			CTX_READ(sk, dst_ip6[1]), CTX_READ(sk, dst_ip6[2]),
			CTX_READ(sk, dst_ip6[3]));
}

/* Has @sk an entry in flows: steered, or its handshake offered or answered. */
static __always_inline bool has_flow(const struct bpf_sock *sk, __u32 fam)
{
	struct fivc_flow_key k = {};

	sock_addrs(sk, fam, k.laddr, k.raddr);
	k.lport = CTX_READ(sk, src_port);
	k.rport = bpf_ntohs(sk->dst_port);
	return bpf_map_lookup_elem(&flows, &k);
}

/* A listener's entry after this option: its other bits stay. */
static __always_inline void listener_update(struct bpf_sockopt *ctx,
					    const struct bpf_sock *sk,
					    __u32 fam, __u32 bit, bool on)
{
	struct fivc_listen_key lk = {};

	lk.netns = bpf_get_netns_cookie(ctx);
	sock_addrs(sk, fam, lk.addr, NULL);
	lk.port = CTX_READ(sk, src_port);
	listen_opts_change(&lk, bit, on);
}

SEC("cgroup/setsockopt")
int fivc_sockopt_watch(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	int *val = ctx->optval;
	__u32 bit, fam;
	bool on;

	if (ctx->optlen > SOCKOPT_SEEN_MAX) {
		ctx->optlen = 0; /* the kernel takes the app's whole buffer */
		return 1;
	}
	if (!sk || CTX_READ(sk, protocol) != IPPROTO_TCP)
		return 1;
	fam = CTX_READ(sk, family);
	if (fam != AF_INET && fam != AF_INET6)
		return 1;
	bit = watched(ctx->level, ctx->optname);
	if (!bit)
		return 1;
	if ((void *)(val + 1) > ctx->optval_end)
		return 1; /* too short: the kernel refuses it */
	on = refuses(bit, *val);
	if (CTX_READ(sk, state) == BPF_TCP_LISTEN)
		listener_update(ctx, sk, fam, bit, on);
	else if (on && has_flow(sk, fam))
		stat_inc(FIVC_STAT_OPT_LATE);
	return 1;
}
