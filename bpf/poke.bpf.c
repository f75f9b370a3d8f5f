// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The write-space poke. A steered app's bytes are redirected into X, so
 * when X's buffer drains the kernel wakes X's waiters, not the app's: an
 * app waiting for EPOLLOUT (edge-triggered) on its own socket would wait
 * forever. When the agent sees X become writable again, it flags the app
 * socket in `poke` and runs this iterator over the namespace's TCP sockets:
 * setting TCP_NOTSENT_LOWAT to its current value calls the socket's
 * sk_write_space, which wakes the app. See docs/steering.md.
 *
 * Only non-blocking sockets are poked: a blocking sender sleeps on X's own
 * queue and X wakes it, while any wake-up of the app socket would make a
 * thread blocked in its recv() return EAGAIN (tcp_bpf_recvmsg).
 */
#include "fastivc.bpf.h"
#include <bpf/bpf_core_read.h>

#define TCP_NOTSENT_LOWAT 25
#define O_NONBLOCK 04000

/* App sockets to wake, by 4-tuple; the agent adds, this program removes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct fivc_flow_key);
	__type(value, __u32);
	__uint(max_entries, FIVC_MAX_FLOWS);
} poke SEC(".maps");

SEC("iter/tcp")
int fivc_poke(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct fivc_flow_key k = {};
	struct tcp_sock *tp;
	int lowat;

	if (!skc)
		return 0;
	if (skc->skc_family == AF_INET) {
		addr_v4mapped(k.laddr, skc->skc_rcv_saddr);
		addr_v4mapped(k.raddr, skc->skc_daddr);
	} else if (skc->skc_family == AF_INET6) {
		__builtin_memcpy(k.laddr, &skc->skc_v6_rcv_saddr, 16);
		__builtin_memcpy(k.raddr, &skc->skc_v6_daddr, 16);
	} else {
		return 0;
	}
	k.lport = skc->skc_num;
	k.rport = bpf_ntohs(skc->skc_dport);
	if (!bpf_map_lookup_elem(&poke, &k))
		return 0;
	bpf_map_delete_elem(&poke, &k);
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	if (!(BPF_CORE_READ(tp, inet_conn.icsk_inet.sk.sk_socket, file,
			    f_flags) &
	      O_NONBLOCK))
		return 0;
	lowat = tp->notsent_lowat;
	bpf_setsockopt(tp, SOL_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof(lowat));
	return 0;
}
