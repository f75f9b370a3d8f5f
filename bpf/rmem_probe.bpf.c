// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The rmem probe: what apps in other network namespaces have not read. The
 * agent keeps an app's unread bytes under its window (agent/flow.c,
 * flow_window_open) and asks sock_diag for them, which answers for the
 * agent's own namespace only. For a pod's socket it runs this program with
 * BPF_PROG_TEST_RUN instead, never attached: the packet is a struct
 * fivc_rmem_probe holding up to FIVC_RMEM_PROBE_MAX sockhash keys, and the
 * program writes each socket's cookie and sk_rmem_alloc over its key. See
 * docs/steering.md, "Backpressure with bounded memory".
 */
#include "fastivc.bpf.h"

#define TC_ACT_OK 0

/* Over @q's key: its socket's cookie and unread bytes (cookie 0: none). */
static __always_inline void probe_one(union fivc_rmem_q *q)
{
	struct tcp_sock *tp;
	struct sock *sk;
	void *ref;

	/* A sockhash lookup takes a reference on the socket: released below. */
	ref = bpf_map_lookup_elem(&socks, &q->key);
	__builtin_memset(&q->ans, 0, sizeof(q->ans));
	if (!ref)
		return;
	tp = bpf_skc_to_tcp_sock(ref);
	if (tp) {
		sk = &tp->inet_conn.icsk_inet.sk;
		q->ans.cookie = (__u64)sk->__sk_common.skc_cookie.counter;
		q->ans.rmem = (__u32)sk->sk_backlog.rmem_alloc.counter;
	}
	bpf_sk_release(ref);
}

SEC("tc")
int fivc_rmem_probe(struct __sk_buff *skb)
{
	__u16 n;

	if (bpf_skb_load_bytes(skb, offsetof(struct fivc_rmem_probe, n), &n,
			       sizeof(n)))
		return TC_ACT_OK;
	for (__u32 i = 0; i < FIVC_RMEM_PROBE_MAX && i < n; i++) {
		__u32 off = offsetof(struct fivc_rmem_probe, q) +
			    i * sizeof(union fivc_rmem_q);
		union fivc_rmem_q q;

		if (bpf_skb_load_bytes(skb, off, &q.key, sizeof(q.key)))
			break;
		probe_one(&q);
		bpf_skb_store_bytes(skb, off, &q.ans, sizeof(q.ans), 0);
	}
	return TC_ACT_OK;
}
