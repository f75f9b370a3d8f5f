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
#include "sock_flow.bpf.h"
#include "sockopt_refuse.bpf.h"

#define SOL_SOCKET 1
#define SO_RCVLOWAT 18
#define TCP_DEFER_ACCEPT 9
#define IPPROTO_TCP 6

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
	else if (on && sock_flow(sk, fam))
		stat_inc(FIVC_STAT_OPT_LATE);
	return 1;
}
