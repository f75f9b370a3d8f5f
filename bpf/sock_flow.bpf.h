/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * An app socket's flow, from the struct bpf_sock a cgroup sockopt program
 * is handed (or tc finds on our SYN): its 4-tuple as flows keys it
 * (IPv4-mapped if need be).
 */
#ifndef FASTIVC_SOCK_FLOW_BPF_H
#define FASTIVC_SOCK_FLOW_BPF_H

#include "fastivc.bpf.h"

/* The most of optval a program sees (a page, at least 4 KiB). */
#define SOCKOPT_SEEN_MAX 4096

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

/* @sk's 4-tuple as flows keys it (@k zeroed by the caller). */
static __always_inline void sock_key(const struct bpf_sock *sk, __u32 fam,
				     struct fivc_flow_key *k)
{
	sock_addrs(sk, fam, k->laddr, k->raddr);
	k->lport = CTX_READ(sk, src_port);
	k->rport = bpf_ntohs(sk->dst_port);
}

/*
 * @sk's entry in flows, if any: steered, or its handshake offered or
 * answered (hold_ns set).
 */
static __always_inline struct fivc_flow *sock_flow(const struct bpf_sock *sk,
						   __u32 fam)
{
	struct fivc_flow_key k = {};

	sock_key(sk, fam, &k);
	return bpf_map_lookup_elem(&flows, &k);
}

#endif
