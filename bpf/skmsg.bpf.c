// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sk_msg, attached to socks: runs on every send of a steered app socket and
 * of the agent's slot sockets (docs/steering.md, "The data path").
 *
 * App socket A: ingress redirect into its slot's Y, or egress to its X
 * under backpressure (or plain TCP once the agent cancelled the flow). Agent
 * socket Y: by its slot's mode, ingress into A (INJECT) or egress out of A
 * (RELAY).
 *
 * The verdict is never SK_DROP: one drop makes every later send() on the
 * socket fail with EACCES without running the program again. A failed
 * redirect sets nothing (bpf_msg_redirect_hash fails before recording the
 * target), so returning SK_PASS then sends on the socket's own TCP path.
 */
#include "fastivc.bpf.h"

/*
 * Slot sockets are loopback TCP; a steered app socket never is (peers
 * holds no loopback prefix). One comparison sends each kind its own way.
 */
static __always_inline bool msg_is_loopback(const struct sk_msg_md *msg,
					    __u32 family)
{
	__u32 w2, w3;

	if (family == AF_INET)
		return (CTX_READ(msg, remote_ip4) & bpf_htonl(0xff000000)) ==
		       bpf_htonl(0x7f000000);
	if (family != AF_INET6)
		return false;
	if (CTX_READ(msg, remote_ip6[0]) || CTX_READ(msg, remote_ip6[1]))
		return false;
	w2 = CTX_READ(msg, remote_ip6[2]);
	w3 = CTX_READ(msg, remote_ip6[3]);
	if (w2 == 0)
		return w3 == bpf_htonl(1); /* ::1 */
	return w2 == bpf_htonl(0xffff) &&  /* ::ffff:127.0.0.0/104 */
	       (w3 & bpf_htonl(0xff000000)) == bpf_htonl(0x7f000000);
}

/* The same key sockops built for this socket; -1 if not IP. */
static __always_inline int msg_flow_key(const struct sk_msg_md *msg,
					__u32 family, struct fivc_flow_key *k)
{
	if (family == AF_INET) {
		addr_v4mapped(k->laddr, CTX_READ(msg, local_ip4));
		addr_v4mapped(k->raddr, CTX_READ(msg, remote_ip4));
	} else if (family == AF_INET6) {
		addr_v6(k->laddr, CTX_READ(msg, local_ip6[0]),
			CTX_READ(msg, local_ip6[1]),
			CTX_READ(msg, local_ip6[2]),
			CTX_READ(msg, local_ip6[3]));
		addr_v6(k->raddr, CTX_READ(msg, remote_ip6[0]),
			CTX_READ(msg, remote_ip6[1]),
			CTX_READ(msg, remote_ip6[2]),
			CTX_READ(msg, remote_ip6[3]));
	} else {
		return -1;
	}
	/* local_port is host order, remote_port network order in a u32 */
	k->lport = CTX_READ(msg, local_port);
	k->rport = bpf_ntohl(CTX_READ(msg, remote_port));
	k->pad = 0;
	return 0;
}

enum claim {
	CLAIM_NONE = 0,	   /* the agent gave the flow back to TCP */
	CLAIM_NOW = 1,	   /* this send is the flow's first for the tunnel */
	CLAIM_EARLIER = 2, /* bytes took the tunnel before this send */
};

/*
 * The flow's first send claims it for the tunnel (CAPTURED) unless the
 * agent gave it back to TCP first (CANCELLED); one cmpxchg decides, so the
 * agent knows whether any byte can have left for the slot.
 */
static __always_inline enum claim app_claim(__u64 *sw, __u64 *seen)
{
	__u64 v = *(volatile __u64 *)sw;

	for (int i = 0; i < 4; i++) {
		__u64 old;

		if (v & FIVC_SW_CAPTURED)
			return CLAIM_EARLIER;
		if (v & FIVC_SW_CANCELLED)
			return CLAIM_NONE;
		old = __sync_val_compare_and_swap(sw, v, v | FIVC_SW_CAPTURED);
		if (old == v) {
			*seen = v;
			return CLAIM_NOW;
		}
		v = old;
	}
	return CLAIM_NONE; /* two writers, one change each: unreachable */
}

/*
 * Only before the app's FIN may its bytes take the slot: the agent takes
 * the count in slot_sw at the FIN as the flow's last (slot reuse). A send
 * after shutdown(SHUT_WR) passes to TCP, which fails it with EPIPE as
 * always. Sends and the FIN's state change hold the socket's lock.
 */
static __always_inline bool app_may_send(const struct sk_msg_md *msg)
{
	struct bpf_sock *sk = msg->sk;

	if (!sk)
		return false;
	return sk->state == BPF_TCP_ESTABLISHED ||
	       sk->state == BPF_TCP_CLOSE_WAIT;
}

/* Bytes in flight to the agent under which a send skips X (agent-set). */
volatile __u32 ingress_window;

/*
 * Which of the slot's ends takes this send: Y's receive queue directly
 * (ingress: no loopback TCP on the way, but no backpressure either), or X
 * (egress: X's send and Y's receive buffers bound it, a blocking app
 * blocks). Ingress while the bytes in flight to the agent stay under
 * ingress_window. The agent reads Y's ingress queue before its TCP queue,
 * so bytes may follow X's onto ingress only once every byte sent is read:
 * until then the flow stays on X.
 */
static __always_inline bool route_via_x(struct fivc_flow *flow, __u64 sw,
					__u32 size)
{
	__u64 *rd = bpf_map_lookup_elem(&slot_rd, &flow->slot);
	__u64 in_flight;

	if (!rd)
		return true;
	in_flight = (sw >> FIVC_SW_SENT_SHIFT) - *(volatile __u64 *)rd;
	if (flow->via_x && in_flight)
		return true;
	flow->via_x = in_flight + size > ingress_window;
	return flow->via_x;
}

/*
 * A steered app socket sends: its bytes go to the slot, the agent reads
 * them on Y. A redirect fails only without the slot: before the flow's
 * first byte that leaves it on TCP; after it, X went with its agent, whose
 * peer resets the connection (docs/steering.md, "RST, close() and
 * failures").
 */
static __always_inline int app_send(struct sk_msg_md *msg, __u32 family)
{
	struct fivc_sock_key skey = {.role = FIVC_SOCK_SLOT_X};
	struct fivc_flow_key k;
	struct fivc_flow *flow;
	enum claim claim;
	__u64 *sw, seen = 0;

	if (msg_flow_key(msg, family, &k) || !app_may_send(msg))
		goto pass;
	flow = bpf_map_lookup_elem(&flows, &k);
	if (!flow || flow->hold_ns)
		goto pass;
	sw = bpf_map_lookup_elem(&slot_sw, &flow->slot);
	if (!sw)
		goto pass;
	claim = app_claim(sw, &seen);
	if (claim == CLAIM_NONE) {
		stat_inc(FIVC_STAT_CANCELLED);
		return SK_PASS;
	}
	skey.slot = flow->slot;
	if (!route_via_x(flow, claim == CLAIM_NOW ? seen : *sw, msg->size))
		skey.role = FIVC_SOCK_SLOT_Y;
	if (bpf_msg_redirect_hash(msg, &socks, &skey,
				  skey.role == FIVC_SOCK_SLOT_Y
					  ? BPF_F_INGRESS
					  : 0) != SK_PASS) {
		/* Nothing took the tunnel yet: the claim is void. */
		if (claim == CLAIM_NOW)
			__sync_val_compare_and_swap(sw, seen | FIVC_SW_CAPTURED,
						    seen);
		goto pass;
	}
	/* Sends on one socket hold its lock: plain adds are exact. */
	flow->tx_msgs += 1;
	flow->tx_bytes += msg->size;
	__sync_fetch_and_add(sw, (__u64)msg->size << FIVC_SW_SENT_SHIFT);
	stat_inc(FIVC_STAT_MSG_REDIRECT);
	if (flow->via_x)
		stat_inc(FIVC_STAT_VIA_X);
	return SK_PASS;
pass:
	stat_inc(FIVC_STAT_MSG_PASS);
	return SK_PASS;
}

/* The agent sends on a slot socket: into or out of the slot's app socket. */
static __always_inline int slot_send(struct sk_msg_md *msg)
{
	struct fivc_sock_key skey = {.role = FIVC_SOCK_APP};
	struct fivc_slot *slot;
	__u16 port = CTX_READ(msg, local_port);
	__u64 flags;
	__u32 *idx;

	idx = bpf_map_lookup_elem(&slot_ports, &port);
	if (!idx)
		goto fail;
	slot = bpf_map_lookup_elem(&slots, idx);
	if (!slot)
		goto fail;
	if (slot->mode == FIVC_SLOT_INJECT)
		flags = BPF_F_INGRESS;
	else if (slot->mode == FIVC_SLOT_RELAY)
		flags = 0;
	else
		goto fail;
	skey.flow = slot->flow;
	if (bpf_msg_redirect_hash(msg, &socks, &skey, flags) != SK_PASS)
		goto fail;
	stat_inc(FIVC_STAT_INJECT);
	return SK_PASS;
fail:
	stat_inc(FIVC_STAT_INJECT_FAIL);
	return SK_PASS;
}

SEC("sk_msg")
int fivc_skmsg(struct sk_msg_md *msg)
{
	__u32 family = CTX_READ(msg, family);

	if (msg_is_loopback(msg, family))
		return slot_send(msg);
	return app_send(msg, family);
}
