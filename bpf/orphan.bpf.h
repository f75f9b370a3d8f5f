/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * tc, for a steered flow whose agent is gone (killed: its slot sockets
 * closed with it, while this program, the maps and the app sockets stay).
 * Bytes may have died with the agent, so the flow must end in an error on
 * both sides, never in a hang or an early EOF (docs/steering.md, "An agent
 * that is killed"):
 *
 * - egress: the app's payload is dropped. With its slot gone, sk_msg
 *   passes the app's sends to TCP, behind the bytes lost with the agent;
 *   the peer must not read them. A FIN may go: after dropped bytes its
 *   sequence number is past what the peer expects, so the peer's TCP
 *   cannot deliver it as an EOF; without them the peer's tc holds it.
 * - ingress: every other segment from the peer becomes an RST for the app
 *   (a held FIN, an ACK, data), with the sequence number the app's socket
 *   expects, so that it is accepted at once.
 *
 * The flow's X still in socks says its agent lives: the kernel takes a
 * socket out of a sockhash when it closes, also when its process dies.
 */
#ifndef FASTIVC_ORPHAN_BPF_H
#define FASTIVC_ORPHAN_BPF_H

#include "fastivc.bpf.h"

#define TCP_FLAGS_OFF 12 /* doff, reserved and flags: one 16-bit word */
#define TCP_SEQ_OFF 4
#define TCP_CSUM_OFF 16
#define TCP_FLAGS_RST 0x0004
#define TCP_FLAGS_ACK 0x0010
#define TCP_FLAGS_MASK 0x01ff /* below it: doff and the reserved bits */

static __always_inline bool flow_orphaned(const struct fivc_flow *flow)
{
	struct fivc_sock_key skey = {.role = FIVC_SOCK_SLOT_X,
				     .slot = flow->slot};
	struct bpf_sock *x = bpf_map_lookup_elem(&socks, &skey);

	if (!x)
		return true;
	bpf_sk_release(x);
	return false;
}

/*
 * Turn the TCP segment whose header starts at @off into an RST with
 * sequence number @seq (host order); ACK is kept, every other flag goes.
 * Its payload stays: a receiver takes an RST before any data. 0 or < 0.
 */
static __always_inline int tcp_make_rst(struct __sk_buff *skb, int off,
					__u32 seq)
{
	__be32 old_seq, new_seq = bpf_htonl(seq);
	__be16 old_flags, new_flags;

	if (bpf_skb_load_bytes(skb, off + TCP_SEQ_OFF, &old_seq, 4) ||
	    bpf_skb_load_bytes(skb, off + TCP_FLAGS_OFF, &old_flags, 2))
		return -1;
	new_flags = bpf_htons((bpf_ntohs(old_flags) & ~TCP_FLAGS_MASK) |
			      (bpf_ntohs(old_flags) & TCP_FLAGS_ACK) |
			      TCP_FLAGS_RST);
	/* l4_csum_replace leaves a CHECKSUM_PARTIAL sum alone, as it must. */
	if (bpf_skb_store_bytes(skb, off + TCP_SEQ_OFF, &new_seq, 4, 0) ||
	    bpf_l4_csum_replace(skb, off + TCP_CSUM_OFF, old_seq, new_seq, 4) ||
	    bpf_skb_store_bytes(skb, off + TCP_FLAGS_OFF, &new_flags, 2, 0) ||
	    bpf_l4_csum_replace(skb, off + TCP_CSUM_OFF, old_flags, new_flags,
				2))
		return -1;
	return 0;
}

#endif /* FASTIVC_ORPHAN_BPF_H */
