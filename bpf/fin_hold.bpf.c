// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tc on the domain's interfaces, for steered flows whose tunnel has not yet
 * delivered its end of stream (no fin_ok entry):
 *
 * - Ingress FIN: the peer app's FIN travels over TCP and would overtake the
 *   bytes still in the tunnel (its app wrote them first). It is dropped and a
 *   copy kept in held_fins; the agent re-sends the copy once the last byte
 *   is in the app socket. Only FIVC_HELD_FIN_MAX bytes are kept: a FIN of a
 *   tunneled flow carries no payload (the payload took the tunnel).
 * - Ingress pure ACK after our own FIN: it would move the app socket to
 *   FIN_WAIT2, and that state change wakes a reader blocked in recv(), which
 *   tcp_bpf_recvmsg() then answers with EAGAIN although the socket blocks.
 *   Dropping it keeps the socket in FIN_WAIT1 (TCP retransmits the FIN); the
 *   held FIN, re-sent after the data, acknowledges ours. The hold ends
 *   when our stack acknowledges the peer's FIN (seen on egress): only then
 *   has the state change that frees a blocked reader (EOF) happened.
 * - Egress: records in fin_sent that our app sent its FIN (FIN_OURS) and
 *   that our stack acknowledged the peer's FIN (FIN_PEER_ACKED).
 *
 * - Ingress FIN while the flow is still a reservation (passive side): the
 *   handshake's last ACK was lost, or dropped by a full accept queue, and
 *   this FIN completes the handshake. Its copy is kept as above, but the
 *   segment goes on with its FIN bit cleared: as a pure ACK it still
 *   completes the handshake, and sockops tells the agent a FIN is held.
 *
 * - DNAT (bpf_abi.h, nat_flows): our SYN to a Service, sockops having
 *   offered it, notes where the DNAT sent it (dnat_note); a peer's SYN is
 *   kept as it came (syn_note), for sockops to see a port redirected to
 *   its listener. Segments of such a connection find the app socket's
 *   4-tuple in nat_flows (wire_flow).
 *
 * RSTs pass, one behind a held FIN given that FIN's sequence number (see
 * rst_after_fin). A flow whose agent is gone is ended instead (see
 * orphan.bpf.h); a SYN for its 4-tuple starts a new connection, so the
 * stale entry goes.
 */
#include "fastivc.bpf.h"
#include "orphan.bpf.h"
#include "sock_flow.bpf.h"

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_RST 0x04

/* Flows whose tunnel delivered end of stream: their FINs pass. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct fivc_flow_key);
	__type(value, __u32);
	__uint(max_entries, FIVC_MAX_FLOWS);
} fin_ok SEC(".maps");

#define FIN_OURS 1u	  /* our app's FIN went out */
#define FIN_PEER_ACKED 2u /* our stack acknowledged the peer's FIN */

/* FIN_* flags per flow, set on egress. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct fivc_flow_key);
	__type(value, __u32);
	__uint(max_entries, FIVC_MAX_FLOWS);
} fin_sent SEC(".maps");

/* The sequence number just past the peer's held FIN. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct fivc_flow_key);
	__type(value, __u32);
	__uint(max_entries, FIVC_MAX_FLOWS);
} peer_fin_end SEC(".maps");

/* Scratch for the copy (too big for the BPF stack). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct fivc_held_fin);
	__uint(max_entries, 1);
} fin_scratch SEC(".maps");

/*
 * Fills @k (the local socket's view: @ingress swaps source and destination)
 * and *ip_len; returns the TCP header offset or -1.
 */
static __always_inline int parse(struct __sk_buff *skb, struct fivc_flow_key *k,
				 __u32 *ip_len, bool ingress)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	int off = ETH_HLEN;

	if ((void *)(eth + 1) > end)
		return -1;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + ETH_HLEN;

		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP ||
		    ip->ihl != 5 || (ip->frag_off & bpf_htons(0x3fff)))
			return -1;
		addr_v4mapped(k->laddr, ingress ? ip->daddr : ip->saddr);
		addr_v4mapped(k->raddr, ingress ? ip->saddr : ip->daddr);
		*ip_len = bpf_ntohs(ip->tot_len);
		return off + sizeof(*ip);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + ETH_HLEN;

		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_TCP)
			return -1;
		__builtin_memcpy(k->laddr, ingress ? &ip6->daddr : &ip6->saddr,
				 16);
		__builtin_memcpy(k->raddr, ingress ? &ip6->saddr : &ip6->daddr,
				 16);
		*ip_len = sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
		return off + sizeof(*ip6);
	}
	return -1;
}

/*
 * @k, parsed from a segment, is the wire's 4-tuple. For a connection to a
 * Service whose DNAT we saw (nat_flows) it becomes the app socket's, which
 * keys every map here. Its entry in flows, if any.
 */
static __always_inline struct fivc_flow *wire_flow(struct fivc_flow_key *k)
{
	struct fivc_flow *flow = bpf_map_lookup_elem(&flows, k);
	struct fivc_flow_key *app;

	if (flow)
		return flow;
	app = bpf_map_lookup_elem(&nat_flows, k);
	if (!app)
		return NULL;
	*k = *app;
	return bpf_map_lookup_elem(&flows, k);
}

/*
 * A peer's SYN, as it came, before any DNAT: sockops finds it in syn_wire
 * when it answers, and so learns of a port redirected to its listener.
 */
static __always_inline void syn_note(const struct fivc_flow_key *wire)
{
	struct fivc_flow_key rk;

	if (!peer_lookup(wire->raddr))
		return;
	syn_wire_key(wire, &rk);
	bpf_map_update_elem(&syn_wire, &rk, wire, BPF_ANY);
}

/*
 * Our SYN goes elsewhere than its socket's remote: a DNAT (kube-proxy's
 * OUTPUT rule) chose a Service's endpoint. For a connect that sockops
 * offered the option (this socket's reservation), keep both 4-tuples in
 * nat_flows: ACTIVE_ESTABLISHED finds the endpoint's peer there, we the
 * app's key for the wire's.
 */
static __always_inline void dnat_note(struct __sk_buff *skb,
				      const struct fivc_flow_key *wire)
{
	struct fivc_flow_key app = {};
	struct fivc_flow *hold;
	struct bpf_sock *sk;
	__u32 fam;

	sk = skb->sk;
	if (!sk)
		return;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return;
	fam = CTX_READ(sk, family);
	if (fam != AF_INET && fam != AF_INET6)
		return;
	sock_key(sk, fam, &app);
	hold = bpf_map_lookup_elem(&flows, &app);
	if (!hold || !hold->hold_ns ||
	    hold->cookie != bpf_get_socket_cookie(skb))
		return;
	if (bpf_map_update_elem(&nat_flows, &app, wire, BPF_ANY) ||
	    bpf_map_update_elem(&nat_flows, wire, &app, BPF_ANY)) {
		nat_forget(&app);
		stat_inc(FIVC_STAT_NAT_FULL);
	}
}

/*
 * A SYN for the 4-tuple of a flow whose agent is gone: a new connection,
 * the entry is stale. True for any SYN (nothing else to do with it).
 */
static __always_inline bool orphan_syn(const struct fivc_flow *flow,
				       const struct tcphdr *th,
				       const struct fivc_flow_key *k)
{
	if (!th->syn)
		return false;
	if (flow_orphaned(flow))
		bpf_map_delete_elem(&flows, k);
	return true;
}

/*
 * The peer's segment for a flow whose agent is gone becomes an RST. The app
 * socket expects @seq, unless it never took the peer's FIN (held): then it
 * expects that FIN's sequence number.
 */
static __always_inline int orphan_ingress(struct __sk_buff *skb, int off,
					  __u32 seq,
					  const struct fivc_flow_key *k)
{
	__u32 *end = bpf_map_lookup_elem(&peer_fin_end, k);

	if (end && !bpf_map_lookup_elem(&fin_ok, k))
		seq = *end - 1;
	if (!tcp_make_rst(skb, off, seq))
		stat_inc(FIVC_STAT_ORPHAN_RST);
	return TC_ACT_OK;
}

/*
 * The peer's RST after its FIN, while that FIN is held: its sequence number
 * is one past what the app socket expects, and TCP answers it with a
 * challenge ACK instead of a reset (RFC 5961); only the peer's answer to
 * that ACK, unless rate limited, would end the connection. Given the held
 * FIN's sequence number it is taken at once.
 */
static __always_inline int rst_after_fin(struct __sk_buff *skb, int off,
					 __u32 seq,
					 const struct fivc_flow_key *k)
{
	__u32 *end = bpf_map_lookup_elem(&peer_fin_end, k);

	if (!end || seq != *end || bpf_map_lookup_elem(&fin_ok, k))
		return TC_ACT_OK;
	if (!tcp_make_rst(skb, off, *end - 1))
		stat_inc(FIVC_STAT_RST_AFTER_FIN);
	return TC_ACT_OK;
}

/*
 * Keep a copy of the peer's FIN (IP header on, @ip_len bytes, no payload)
 * in held_fins, and where its sequence space ends. 0 or -1.
 */
static __always_inline int fin_keep(struct __sk_buff *skb,
				    const struct fivc_flow_key *k, __u32 ip_len,
				    __u32 seq)
{
	struct fivc_held_fin *held;
	__u32 zero = 0, end = seq + 1;

	/*
	 * The explicit lower bound is for older verifiers (Debian's 6.1):
	 * they refuse a load whose length may be 0.
	 */
	if (ip_len < 20 || ip_len > FIVC_HELD_FIN_MAX)
		return -1;
	held = bpf_map_lookup_elem(&fin_scratch, &zero);
	if (!held)
		return -1;
	held->len = ip_len;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, held->pkt, ip_len) ||
	    bpf_map_update_elem(&held_fins, k, held, BPF_ANY))
		return -1;
	bpf_map_update_elem(&peer_fin_end, k, &end, BPF_ANY);
	return 0;
}

/*
 * The segment whose TCP header starts at @off loses its FIN bit (its
 * checksum follows). 0 or -1.
 */
static __always_inline int tcp_clear_fin(struct __sk_buff *skb, int off)
{
	__be16 old_flags, new_flags;

	if (bpf_skb_load_bytes(skb, off + TCP_FLAGS_OFF, &old_flags, 2))
		return -1;
	new_flags = old_flags & ~bpf_htons(TCP_FLAG_FIN);
	/* l4_csum_replace leaves a CHECKSUM_PARTIAL sum alone, as it must. */
	if (bpf_skb_store_bytes(skb, off + TCP_FLAGS_OFF, &new_flags, 2, 0) ||
	    bpf_l4_csum_replace(skb, off + TCP_CSUM_OFF, old_flags, new_flags,
				2))
		return -1;
	return 0;
}

/*
 * A segment for a reservation (the handshake's last ACK has not reached
 * the stack): a bare FIN is kept and goes on as a pure ACK (top of file).
 * A FIN with payload means the peer's bytes are on TCP: it passes.
 */
static __always_inline int handshake_fin(struct __sk_buff *skb, int off,
					 const struct tcphdr *th,
					 const struct fivc_flow_key *k,
					 __u32 ip_len)
{
	__u32 seq = bpf_ntohl(th->seq);

	if (!th->fin || th->syn || !th->ack ||
	    ip_len != (off - ETH_HLEN) + th->doff * 4u)
		return TC_ACT_OK;
	if (fin_keep(skb, k, ip_len, seq))
		return TC_ACT_OK;
	if (tcp_clear_fin(skb, off)) {
		/* It would reach the app as an early EOF. */
		bpf_map_delete_elem(&held_fins, k);
		return TC_ACT_SHOT;
	}
	stat_inc(FIVC_STAT_FIN_EARLY);
	return TC_ACT_OK;
}

SEC("tc")
int fivc_fin_hold(struct __sk_buff *skb)
{
	struct fivc_flow_key k = {};
	struct fivc_event *ev;
	struct fivc_flow *flow;
	struct tcphdr *th;
	__u32 ip_len = 0, hlen;
	int off;

	off = parse(skb, &k, &ip_len, true);
	if (off < 0)
		return TC_ACT_OK;
	th = (void *)(long)skb->data + off;
	if ((void *)(th + 1) > (void *)(long)skb->data_end)
		return TC_ACT_OK;
	k.lport = bpf_ntohs(th->dest);
	k.rport = bpf_ntohs(th->source);
	flow = wire_flow(&k);
	if (th->rst)
		return rst_after_fin(skb, off, bpf_ntohl(th->seq), &k);
	if (!flow) {
		if (th->syn && !th->ack)
			syn_note(&k);
		return TC_ACT_OK;
	}
	if (flow->hold_ns)
		return handshake_fin(skb, off, th, &k, ip_len);
	if (orphan_syn(flow, th, &k))
		return TC_ACT_OK;
	if (flow_orphaned(flow))
		return orphan_ingress(skb, off, bpf_ntohl(th->seq), &k);
	hlen = (off - ETH_HLEN) + th->doff * 4;
	if (!th->fin) {
		__u32 *fs = bpf_map_lookup_elem(&fin_sent, &k);

		/* A pure ACK of our FIN: see the top of the file. */
		if (ip_len == hlen && fs && (*fs & FIN_OURS) &&
		    !(*fs & FIN_PEER_ACKED)) {
			stat_inc(FIVC_STAT_ACK_HELD);
			return TC_ACT_SHOT;
		}
		return TC_ACT_OK;
	}
	if (bpf_map_lookup_elem(&fin_ok, &k))
		return TC_ACT_OK;
	if (ip_len != hlen) {
		stat_inc(FIVC_STAT_FIN_DATA);
		return TC_ACT_OK;
	}
	if (fin_keep(skb, &k, ip_len, bpf_ntohl(th->seq)))
		return TC_ACT_OK;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (ev) {
		__builtin_memset(ev, 0, sizeof(*ev));
		ev->type = FIVC_EV_FIN_HELD;
		ev->slot = flow->slot;
		ev->flow = k;
		ev->cookie = flow->cookie;
		bpf_ringbuf_submit(ev, 0);
	} else {
		stat_inc(FIVC_STAT_EVENT_LOST);
	}
	stat_inc(FIVC_STAT_FIN_HELD);
	return TC_ACT_SHOT;
}

SEC("tc")
int fivc_fin_seen(struct __sk_buff *skb)
{
	struct fivc_flow_key k = {};
	__u32 ip_len = 0, flags, old, *fs, *end;
	struct fivc_flow *flow;
	struct tcphdr *th;
	int off;

	off = parse(skb, &k, &ip_len, false);
	if (off < 0)
		return TC_ACT_OK;
	th = (void *)(long)skb->data + off;
	if ((void *)(th + 1) > (void *)(long)skb->data_end || th->rst)
		return TC_ACT_OK;
	k.lport = bpf_ntohs(th->source);
	k.rport = bpf_ntohs(th->dest);
	flow = wire_flow(&k);
	if (!flow && th->syn && !th->ack)
		dnat_note(skb, &k);
	if (!flow || flow->hold_ns || orphan_syn(flow, th, &k))
		return TC_ACT_OK;
	/* Payload of a flow whose agent is gone: see orphan.bpf.h */
	if (ip_len > (__u32)(off - ETH_HLEN) + th->doff * 4 &&
	    flow_orphaned(flow)) {
		stat_inc(FIVC_STAT_ORPHAN_DROP);
		return TC_ACT_SHOT;
	}
	fs = bpf_map_lookup_elem(&fin_sent, &k);
	old = flags = fs ? *fs : 0;
	if (th->fin)
		flags |= FIN_OURS;
	/* Our FIN itself often carries the ACK of theirs (one FIN|ACK). */
	end = bpf_map_lookup_elem(&peer_fin_end, &k);
	if (end && th->ack && (int)(bpf_ntohl(th->ack_seq) - *end) >= 0)
		flags |= FIN_PEER_ACKED;
	if (flags != old)
		bpf_map_update_elem(&fin_sent, &k, &flags, BPF_ANY);
	return TC_ACT_OK;
}
