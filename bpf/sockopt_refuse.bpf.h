/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Socket options the tunnel cannot honour (docs/steering.md, "Socket
 * options"): read from the socket itself, and kept per listener in
 * listen_opts (include/fastivc/bpf_abi.h). Included by sockops and the
 * setsockopt watch, and by the listener adoption iterator, an object of
 * its own that defines listen_opts too (FIVC_LISTEN_OPTS_DEFINE) and is
 * handed the main object's map by the agent.
 */
#ifndef FASTIVC_SOCKOPT_REFUSE_BPF_H
#define FASTIVC_SOCKOPT_REFUSE_BPF_H

#include "fastivc.bpf.h"
#include <bpf/bpf_core_read.h>

#if defined(FIVC_MAPS_DEFINE) || defined(FIVC_LISTEN_OPTS_DEFINE)
#define FIVC_LISTEN_OPTS_MAP
#else
#define FIVC_LISTEN_OPTS_MAP extern
#endif

FIVC_LISTEN_OPTS_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct fivc_listen_key);
	__type(value, struct fivc_listen_opts);
	__uint(max_entries, FIVC_MAX_LISTENERS);
} listen_opts SEC(".maps");

/*
 * enum fivc_opt_refusal bits for what @sk has set now: an SO_RCVLOWAT above
 * 1 (tcp_bpf_recvmsg() and poll() ignore it), TCP_DEFER_ACCEPT on a
 * listener (it would accept only when its deferral ends: the client's bytes
 * are in the tunnel). SO_LINGER and SO_OOBINLINE the tunnel honours.
 */
static __always_inline __u32 sockopt_refusals(struct sock *sk, bool listener)
{
	__u32 why = 0;

	if (BPF_CORE_READ(sk, sk_rcvlowat) > 1)
		why |= FIVC_OPT_RCVLOWAT;
	if (listener && BPF_CORE_READ((struct inet_connection_sock *)sk,
				      icsk_accept_queue.rskq_defer_accept))
		why |= FIVC_OPT_DEFER;
	return why;
}

/* The stats counter that names a refusal (the first of its reasons). */
static __always_inline __u32 refusal_stat(__u32 why)
{
	return why & FIVC_OPT_RCVLOWAT ? FIVC_STAT_OPT_RCVLOWAT
	       : why & FIVC_OPT_DEFER  ? FIVC_STAT_OPT_DEFER
				       : FIVC_STAT_OPT_SPLICE;
}

/*
 * A listener on @lk starts, refusing @why: its entry, shared with the
 * other listeners of an SO_REUSEPORT group (their refusals add up; they
 * go with the last). False where the table is full: the listener has no
 * entry, and its SYN-ACKs are not answered (listen_opts_find).
 */
static __always_inline bool listen_opts_add(const struct fivc_listen_key *lk,
					    __u32 why)
{
	struct fivc_listen_opts first = {.why = why, .listeners = 1}, *v;

	v = bpf_map_lookup_elem(&listen_opts, lk);
	if (!v) {
		if (!bpf_map_update_elem(&listen_opts, lk, &first, BPF_NOEXIST))
			return true;
		v = bpf_map_lookup_elem(&listen_opts, lk); /* a race */
		if (!v)
			return false;
	}
	__sync_fetch_and_or(&v->why, why);
	__sync_fetch_and_add(&v->listeners, 1);
	return true;
}

/* A listener on @lk closed. */
static __always_inline void listen_opts_drop(const struct fivc_listen_key *lk)
{
	struct fivc_listen_opts *v = bpf_map_lookup_elem(&listen_opts, lk);

	if (v && __sync_fetch_and_add(&v->listeners, -1) <= 1)
		bpf_map_delete_elem(&listen_opts, lk);
}

/*
 * A listener on @lk sets or clears an option's @bit. Cleared only where it
 * is the key's one listener: a sibling may have set it.
 */
static __always_inline void listen_opts_change(const struct fivc_listen_key *lk,
					       __u32 bit, bool on)
{
	struct fivc_listen_opts *v = bpf_map_lookup_elem(&listen_opts, lk);

	if (!v)
		return; /* none: its SYN-ACKs are not answered anyway */
	if (on)
		__sync_fetch_and_or(&v->why, bit);
	else if (v->listeners <= 1)
		__sync_fetch_and_and(&v->why, ~bit);
}

/*
 * The entry of the listener of a connection to @laddr:@port in namespace
 * @netns: by its exact address, else by its family's wildcard; NULL if it
 * has none.
 */
static __always_inline struct fivc_listen_opts *
listen_opts_find(__u64 netns, const __u8 *laddr, __u16 port)
{
	struct fivc_listen_key lk = {.netns = netns, .port = port};
	struct fivc_listen_opts *v;
	__u32 w[4];

	__builtin_memcpy(lk.addr, laddr, sizeof(lk.addr));
	v = bpf_map_lookup_elem(&listen_opts, &lk);
	if (v)
		return v;
	__builtin_memcpy(w, laddr, sizeof(w));
	if (!w[0] && !w[1] && w[2] == bpf_htonl(0xffff)) {
		addr_v4mapped(lk.addr, 0);
		v = bpf_map_lookup_elem(&listen_opts, &lk);
		if (v)
			return v;
	}
	__builtin_memset(lk.addr, 0, sizeof(lk.addr));
	return bpf_map_lookup_elem(&listen_opts, &lk); /* :: (dual stack) */
}

#endif /* FASTIVC_SOCKOPT_REFUSE_BPF_H */
