// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockops, attached to the apps' cgroup: negotiates fastivc in the TCP
 * handshake and steers the socket at ESTABLISHED (docs/steering.md,
 * "Negotiation").
 *
 * Active side: TCP_CONNECT_CB reserves a slot and a flows entry, keeps a
 * nonce in sk storage and turns on the header-option callbacks; the SYN
 * carries {self_domid, nonce}; at ACTIVE_ESTABLISHED the SYN-ACK must carry
 * {peer's domid, same nonce}. Passive side: TCP_LISTEN_CB makes the listener
 * save SYNs and write options; a SYN-ACK answers only a valid SYN from a
 * peer, and only once it has reserved the same; at PASSIVE_ESTABLISHED the
 * saved SYN is checked again. Then the reservation becomes the flow: the
 * socket takes its place in socks and an ESTABLISHED event goes out; the
 * option callbacks go off and the state callback stays on for the agent's
 * STATE events. A connection that is not steered gives its reservation back.
 */
#define FIVC_MAPS_DEFINE
#include "fastivc.bpf.h"
#include <bpf/bpf_core_read.h>
#include "sockopt_refuse.bpf.h"
#include "uid_share.bpf.h"

/* This domain's id, set by the loader. */
const volatile __u32 self_domid;
/* The agent's network namespace (cookie), where tc sees a Service's DNAT. */
const volatile __u64 self_netns;

/* Active side: the nonce our SYN carries, until ACTIVE_ESTABLISHED. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u32);
} nonces SEC(".maps");

/* The socket's 4-tuple from its own point of view; -1 if not IP. */
static __always_inline int skops_flow_key(const struct bpf_sock_ops *skops,
					  struct fivc_flow_key *k)
{
	__u32 family = CTX_READ(skops, family);

	if (family == AF_INET) {
		addr_v4mapped(k->laddr, CTX_READ(skops, local_ip4));
		addr_v4mapped(k->raddr, CTX_READ(skops, remote_ip4));
	} else if (family == AF_INET6) {
		addr_v6(k->laddr, CTX_READ(skops, local_ip6[0]),
			CTX_READ(skops, local_ip6[1]),
			CTX_READ(skops, local_ip6[2]),
			CTX_READ(skops, local_ip6[3]));
		addr_v6(k->raddr, CTX_READ(skops, remote_ip6[0]),
			CTX_READ(skops, remote_ip6[1]),
			CTX_READ(skops, remote_ip6[2]),
			CTX_READ(skops, remote_ip6[3]));
	} else {
		return -1;
	}
	/* local_port is host order, remote_port network order in a u32 */
	k->lport = CTX_READ(skops, local_port);
	k->rport = bpf_ntohl(CTX_READ(skops, remote_port));
	k->pad = 0;
	return 0;
}

static __always_inline bool is_service(const __u8 *raddr)
{
	struct fivc_peer_key pk = {.prefixlen = 128};

	__builtin_memcpy(pk.addr, raddr, sizeof(pk.addr));
	return bpf_map_lookup_elem(&services, &pk);
}

/*
 * May a connect to @k's remote offer the option: a Service's address from
 * our namespace (tc there sees the DNAT that picks its endpoint; elsewhere
 * nothing would, and the endpoint could steer alone), whatever `peers`
 * says of it; else a peer's address.
 */
static __always_inline bool offer_to(struct bpf_sock_ops *skops,
				     const struct fivc_flow_key *k)
{
	if (is_service(k->raddr)) {
		if (bpf_get_netns_cookie(skops) == self_netns)
			return true;
		stat_inc(FIVC_STAT_SERVICE_NETNS);
		return false;
	}
	if (peer_lookup(k->raddr))
		return true;
	stat_inc(FIVC_STAT_NOT_PEER);
	return false;
}

/*
 * At ACTIVE_ESTABLISHED, the peer behind @k's remote: for a connection whose
 * DNAT tc saw (a Service), the endpoint's, and then *dnat is true and *wire
 * holds the wire's 4-tuple; else the remote's own, never a Service's (a
 * `peers` prefix that happens to cover one must not name the tunnel by an
 * address the endpoint never sees). NULL, counted, if there is none.
 */
static __always_inline struct fivc_peer_val *
remote_peer(const struct fivc_flow_key *k, struct fivc_flow_key *wire,
	    bool *dnat)
{
	struct fivc_flow_key *w = bpf_map_lookup_elem(&nat_flows, k);
	struct fivc_peer_val *peer;

	*dnat = w;
	if (w) {
		*wire = *w;
		peer = peer_lookup(wire->raddr);
	} else if (is_service(k->raddr)) {
		stat_inc(FIVC_STAT_SERVICE_NO_DNAT);
		return NULL;
	} else {
		peer = peer_lookup(k->raddr);
	}
	if (!peer)
		stat_inc(FIVC_STAT_NOT_PEER);
	return peer;
}

/*
 * Our option in the SYN (the saved one, or the one being answered when
 * flags is BPF_LOAD_HDR_OPT_TCP_SYN) or in the segment at hand. The search
 * key is kind + length 4 + ExID: the kernel then matches the 2-byte ExID.
 * Returns 0, < 0 if absent (or no SYN saved), > 0 if malformed.
 */
static __always_inline int load_opt(struct bpf_sock_ops *skops,
				    struct fivc_tcpopt *opt, __u64 flags)
{
	int ret;

	__builtin_memset(opt, 0, sizeof(*opt));
	opt->kind = FIVC_TCPOPT_KIND;
	opt->len = 4;
	opt->exid = bpf_htons(FIVC_TCPOPT_EXID);
	ret = bpf_load_hdr_opt(skops, opt, sizeof(*opt), flags);
	if (ret < 0)
		return ret;
	if (ret != FIVC_TCPOPT_LEN || opt->len != FIVC_TCPOPT_LEN)
		return 1; /* ours, but malformed */
	return 0;
}

static __always_inline long set_cb_flags(struct bpf_sock_ops *skops, __u32 on,
					 __u32 off)
{
	__u32 flags = skops->bpf_sock_ops_cb_flags;

	return bpf_sock_ops_cb_flags_set(skops, (flags & ~off) | on);
}

/*
 * Set a slot and the flows entry aside for this 4-tuple before the option
 * is offered or answered (see struct fivc_flow): true if they are, now or
 * from an earlier call (a SYN-ACK's length and write callbacks and its
 * retransmits come here again). @count: say why not in the stats.
 */
static __always_inline bool reserve(const struct fivc_flow_key *k, __u64 cookie,
				    __u32 dir, bool count)
{
	struct fivc_flow hold = {.cookie = cookie, .dir = dir};
	struct fivc_flow *old = bpf_map_lookup_elem(&flows, k);

	if (old && old->hold_ns)
		return true;
	if (bpf_map_pop_elem(&free_slots, &hold.slot)) {
		if (count)
			stat_inc(FIVC_STAT_NO_SLOT);
		return false;
	}
	hold.hold_ns = bpf_ktime_get_ns();
	/* BPF_ANY: an entry that is no reservation belongs to a dead socket. */
	if (bpf_map_update_elem(&flows, k, &hold, BPF_ANY)) {
		bpf_map_push_elem(&free_slots, &hold.slot, 0);
		if (count)
			stat_inc(FIVC_STAT_FLOWS_FULL);
		return false;
	}
	/* A FIN held for an earlier connection of this 4-tuple is stale. */
	bpf_map_delete_elem(&held_fins, k);
	return true;
}

/* Not steered after all: the reservation's slot and entry go back. */
static __always_inline void unreserve(const struct fivc_flow_key *k)
{
	struct fivc_flow *hold = bpf_map_lookup_elem(&flows, k);

	if (!hold || !hold->hold_ns)
		return;
	bpf_map_push_elem(&free_slots, &hold->slot, 0);
	bpf_map_delete_elem(&flows, k);
	/* Not steered: the FIN's retransmits will reach TCP (fin_hold). */
	bpf_map_delete_elem(&held_fins, k);
	nat_forget(k);
}

/*
 * @tp's uid spliced from a connection to @k's remote before
 * (splice_watch.bpf.c).
 */
static __always_inline bool spliced_dst(struct bpf_sock_ops *skops,
					struct tcp_sock *tp,
					const struct fivc_flow_key *k)
{
	struct fivc_splice_key dst = {.netns = bpf_get_netns_cookie(skops),
				      .port = k->rport};

	dst.uid = tp->inet_conn.icsk_inet.sk.sk_uid.val;
	__builtin_memcpy(dst.addr, k->raddr, sizeof(dst.addr));
	return bpf_map_lookup_elem(&splice_dst, &dst);
}

static void on_connect(struct bpf_sock_ops *skops)
{
	struct fivc_flow_key k;
	struct tcp_sock *tp;
	struct bpf_sock *sk;
	__u32 *nonce, why;

	if (skops_flow_key(skops, &k) || !offer_to(skops, &k))
		return;
	sk = skops->sk;
	if (!sk)
		return;
	tp = bpf_skc_to_tcp_sock(sk);
	why = tp ? sockopt_refusals((struct sock *)tp, false) : 0;
	if (!why && tp && spliced_dst(skops, tp, &k))
		why = FIVC_OPT_SPLICE;
	if (why) {
		stat_inc(refusal_stat(why));
		return;
	}
	/* What we could not steer we do not offer. */
	if (!uid_charge_hold(skops))
		return;
	if (!reserve(&k, bpf_get_socket_cookie(skops), FIVC_FLOW_ACTIVE,
		     true)) {
		uid_uncharge(skops);
		return;
	}
	nonce = bpf_sk_storage_get(&nonces, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!nonce) {
		/* The ABI has one counter for "an insert failed". */
		stat_inc(FIVC_STAT_SOCKHASH_FULL);
		unreserve(&k);
		uid_uncharge(skops);
		return;
	}
	*nonce = bpf_get_prandom_u32();
	/* STATE: a connect that fails gives its reservation back. */
	set_cb_flags(skops,
		     BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG |
			     BPF_SOCK_OPS_STATE_CB_FLAG,
		     0);
}

/* A listener's key in listen_opts: its namespace, address and port. */
static __always_inline int listener_key(struct bpf_sock_ops *skops,
					struct fivc_listen_key *lk)
{
	struct fivc_flow_key k;

	if (skops_flow_key(skops, &k))
		return -1;
	lk->netns = bpf_get_netns_cookie(skops);
	__builtin_memcpy(lk->addr, k.laddr, sizeof(lk->addr));
	lk->port = k.lport;
	return 0;
}

/*
 * A new listener's entry in listen_opts: what it refuses already (options
 * set before listen()); the setsockopt watch follows later changes, its
 * close (on_state) removes it.
 */
static void listen_opts_note(struct bpf_sock_ops *skops)
{
	struct fivc_listen_key lk = {};
	struct tcp_sock *tp;
	struct bpf_sock *sk;

	sk = skops->sk;
	if (!sk || listener_key(skops, &lk))
		return;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return;
	if (!listen_opts_add(&lk, sockopt_refusals((struct sock *)tp, true)))
		stat_inc(FIVC_STAT_LISTEN_FULL);
}

static void on_listen(struct bpf_sock_ops *skops)
{
	int save = 0;

	/*
	 * PASSIVE_ESTABLISHED sees the final ACK, not the SYN: keep the SYN
	 * (TCP/IP headers) on the listener's requests and children. An app's
	 * own TCP_SAVE_SYN (2: with the MAC header) is left as it is.
	 */
	if (bpf_getsockopt(skops, SOL_TCP, TCP_SAVE_SYN, &save, sizeof(save)) ||
	    !save) {
		save = 1;
		if (bpf_setsockopt(skops, SOL_TCP, TCP_SAVE_SYN, &save,
				   sizeof(save)))
			return;
	}
	/* STATE: its close removes the listen_opts entry noted next. */
	if (set_cb_flags(skops,
			 BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG |
				 BPF_SOCK_OPS_STATE_CB_FLAG,
			 0))
		return;
	listen_opts_note(skops);
}

/*
 * Passive side: the SYN that tc saw from @k's remote was for another local
 * address or port (a NodePort, a REDIRECT: a DNAT before our stack). Note
 * both 4-tuples in nat_flows, as tc does for a Service on the active side:
 * the peer names the tunnel by what it sent to. False if that cannot be
 * noted (counted; then the option is not answered).
 */
static __always_inline bool port_dnat_note(const struct fivc_flow_key *k)
{
	struct fivc_flow_key rk, *w;

	if (bpf_map_lookup_elem(&nat_flows, k))
		return true; /* an earlier callback of this SYN-ACK's */
	syn_wire_key(k, &rk);
	w = bpf_map_lookup_elem(&syn_wire, &rk);
	if (!w || (w->lport == k->lport && addr_eq(w->laddr, k->laddr)))
		return true;
	if (bpf_map_update_elem(&nat_flows, k, w, BPF_ANY) ||
	    bpf_map_update_elem(&nat_flows, w, k, BPF_ANY)) {
		nat_forget(k);
		stat_inc(FIVC_STAT_NAT_FULL);
		return false;
	}
	return true;
}

/*
 * Passive side, for a SYN-ACK: answer (fill *opt) only a SYN that carried
 * our option from an address peers maps to the domid it claims, to a
 * listener known to set no option the tunnel cannot honour (listen_opts;
 * one without an entry may have set one), and only
 * with a reservation (else the active side would steer alone). Not in SYN
 * cookie mode: no SYN would be saved for PASSIVE_ESTABLISHED. @count: the
 * length callback counts a refusal, the write callback does not again.
 */
static __always_inline bool synack_answer(struct bpf_sock_ops *skops,
					  struct fivc_tcpopt *opt, bool count)
{
	struct fivc_listen_opts *lopts;
	struct fivc_peer_val *peer;
	struct fivc_flow_key k;

	if (skops->args[0] & BPF_WRITE_HDR_TCP_SYNACK_COOKIE)
		return false;
	if (skops_flow_key(skops, &k))
		return false;
	peer = peer_lookup(k.raddr);
	if (!peer)
		return false;
	if (load_opt(skops, opt, BPF_LOAD_HDR_OPT_TCP_SYN))
		return false;
	if (bpf_ntohl(opt->domid) != peer->domid)
		return false;
	lopts = listen_opts_find(bpf_get_netns_cookie(skops), k.laddr, k.lport);
	if (!lopts || lopts->why) {
		if (count)
			stat_inc(lopts ? refusal_stat(lopts->why)
				       : FIVC_STAT_LISTEN_NONE);
		return false;
	}
	if (!reserve(&k, 0, FIVC_FLOW_PASSIVE, count))
		return false;
	if (!port_dnat_note(&k)) {
		unreserve(&k);
		return false;
	}
	opt->domid = bpf_htonl(self_domid); /* the nonce is echoed */
	return true;
}

/*
 * Active side, for a SYN: our nonce if TCP_CONNECT_CB chose this socket and
 * its reservation is still there (the agent reaps those of handshakes that
 * take too long: a later SYN retransmit then goes without the option).
 */
static __always_inline bool syn_offer(struct bpf_sock_ops *skops,
				      struct fivc_tcpopt *opt)
{
	struct fivc_flow_key k;
	struct fivc_flow *hold;
	struct bpf_sock *sk;
	__u32 *nonce;

	sk = skops->sk;
	if (!sk)
		return false;
	nonce = bpf_sk_storage_get(&nonces, sk, 0, 0);
	if (!nonce)
		return false;
	if (skops_flow_key(skops, &k))
		return false;
	hold = bpf_map_lookup_elem(&flows, &k);
	if (!hold || !hold->hold_ns ||
	    hold->cookie != bpf_get_socket_cookie(skops))
		return false;
	opt->kind = FIVC_TCPOPT_KIND;
	opt->len = FIVC_TCPOPT_LEN;
	opt->exid = bpf_htons(FIVC_TCPOPT_EXID);
	opt->domid = bpf_htonl(self_domid);
	opt->nonce = bpf_htonl(*nonce);
	return true;
}

/* HDR_OPT_LEN_CB (reserve) and WRITE_HDR_OPT_CB (store): SYN and SYN-ACK. */
static void on_hdr_opt(struct bpf_sock_ops *skops, bool write)
{
	__u32 tcp_flags = skops->skb_tcp_flags;
	struct fivc_tcpopt opt;
	bool ok;

	/* No skb (tcp_current_mss) or not a SYN: nothing to add. */
	if (!(tcp_flags & TCPHDR_SYN))
		return;
	if (tcp_flags & TCPHDR_ACK)
		ok = synack_answer(skops, &opt, !write);
	else
		ok = syn_offer(skops, &opt);
	if (!ok)
		return;
	if (write)
		bpf_store_hdr_opt(skops, &opt, sizeof(opt), 0);
	else
		bpf_reserve_hdr_opt(skops, sizeof(opt), 0);
}

/*
 * Put the socket on the fast path, with the reservation the handshake made
 * (none on the passive side: it did not answer, counted then). The event is
 * reserved first, so that a full ring buffer leaves the socket alone
 * instead of steering it behind the agent's back; a later failure gives
 * the reservation back.
 */
static __always_inline bool steer(struct bpf_sock_ops *skops,
				  const struct fivc_flow_key *k,
				  __u32 peer_domid, __u32 nonce, __u32 dir,
				  const struct fivc_flow_key *dnat)
{
	struct fivc_sock_key skey = {.role = FIVC_SOCK_APP};
	struct fivc_slot slotv = {.mode = FIVC_SLOT_IDLE};
	struct fivc_flow flow = {}, *hold;
	struct fivc_event *ev;
	__u32 slot;

	hold = bpf_map_lookup_elem(&flows, k);
	if (!hold || !hold->hold_ns) {
		/*
		 * Active side: the agent reaped the reservation of a connect
		 * that stalled (docs/steering.md), and it completed after all
		 * with the peer's answer: reserve again, or the peer would
		 * steer alone. Passive side: we did not answer.
		 */
		if (dir != FIVC_FLOW_ACTIVE ||
		    !reserve(k, bpf_get_socket_cookie(skops), dir, true))
			return false;
		hold = bpf_map_lookup_elem(&flows, k);
		if (!hold)
			return false;
	}
	slot = hold->slot;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		stat_inc(FIVC_STAT_EVENT_LOST);
		goto unreserve;
	}
	if (slot >= FIVC_MAX_SLOTS)
		goto discard;
	slotv.flow = *k;
	if (bpf_map_update_elem(&slots, &slot, &slotv, BPF_ANY)) {
		stat_inc(FIVC_STAT_NO_SLOT);
		goto discard;
	}
	flow.cookie = bpf_get_socket_cookie(skops);
	flow.slot = slot;
	flow.peer_domid = peer_domid;
	flow.nonce = nonce;
	flow.dir = dir;
	/* The entry exists (the reservation): this cannot fail for room. */
	if (bpf_map_update_elem(&flows, k, &flow, BPF_EXIST)) {
		stat_inc(FIVC_STAT_FLOWS_FULL);
		goto discard;
	}
	skey.flow = *k;
	if (bpf_sock_hash_update(skops, &socks, &skey, BPF_NOEXIST)) {
		stat_inc(FIVC_STAT_SOCKHASH_FULL);
		bpf_map_delete_elem(&flows, k);
		bpf_map_push_elem(&free_slots, &slot, 0);
		bpf_ringbuf_discard(ev, 0);
		return false;
	}

	__builtin_memset(ev, 0, sizeof(*ev));
	ev->type = FIVC_EV_ESTABLISHED;
	ev->slot = slot;
	ev->flow = *k;
	ev->cookie = flow.cookie;
	ev->peer_domid = peer_domid;
	ev->nonce = nonce;
	ev->dir = dir;
	ev->snd_nxt = skops->snd_nxt;
	ev->rcv_nxt = skops->rcv_nxt;
	if (bpf_map_lookup_elem(&held_fins, k))
		ev->flags = FIVC_EV_F_FIN_HELD;
	if (bpf_get_netns_cookie(skops) != self_netns)
		ev->flags |= FIVC_EV_F_OTHER_NETNS;
	if (dnat) {
		ev->flags |= FIVC_EV_F_DNAT;
		ev->wire = *dnat;
		stat_inc(dir == FIVC_FLOW_ACTIVE ? FIVC_STAT_SERVICE_DNAT
						 : FIVC_STAT_PORT_DNAT);
	}
	bpf_ringbuf_submit(ev, 0);
	stat_inc(FIVC_STAT_STEERED);
	return true;

discard:
	bpf_ringbuf_discard(ev, 0);
unreserve:
	unreserve(k);
	return false;
}

/*
 * Option callbacks off in any case; the state callback only if steered (a
 * child has its listener's). The uid's charge follows: a flow now, or
 * given back.
 */
static __always_inline void established_done(struct bpf_sock_ops *skops,
					     bool steered)
{
	__u32 on = BPF_SOCK_OPS_STATE_CB_FLAG;

	if (steered)
		uid_charge_flow(skops);
	else
		uid_uncharge(skops);
	/* The agent's write-space pokes come as segments (on_poke). */
	on |= BPF_SOCK_OPS_PARSE_UNKNOWN_HDR_OPT_CB_FLAG;
	set_cb_flags(skops, steered ? on : 0,
		     BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG |
			     (steered ? 0 : BPF_SOCK_OPS_STATE_CB_FLAG));
}

static void on_active_established(struct bpf_sock_ops *skops)
{
	struct fivc_flow_key k, wire;
	struct fivc_peer_val *peer;
	struct fivc_tcpopt opt;
	bool steered = false, dnat;
	__u32 *noncep, nonce;
	struct bpf_sock *sk;
	int ret;

	sk = skops->sk;
	if (!sk)
		return;
	noncep = bpf_sk_storage_get(&nonces, sk, 0, 0);
	if (!noncep)
		return; /* not offered: counted at TCP_CONNECT_CB */
	nonce = *noncep;
	bpf_sk_storage_delete(&nonces, sk);

	if (skops_flow_key(skops, &k))
		goto out;
	peer = remote_peer(&k, &wire, &dnat);
	if (!peer)
		goto give_back;
	ret = load_opt(skops, &opt, 0);
	if (ret) {
		stat_inc(ret < 0 ? FIVC_STAT_NO_OPTION : FIVC_STAT_BAD_OPTION);
		goto give_back;
	}
	if (bpf_ntohl(opt.domid) != peer->domid ||
	    bpf_ntohl(opt.nonce) != nonce) {
		stat_inc(FIVC_STAT_BAD_OPTION);
		goto give_back;
	}
	steered = steer(skops, &k, peer->domid, nonce, FIVC_FLOW_ACTIVE,
			dnat ? &wire : NULL);
	goto out;
give_back:
	unreserve(&k);
out:
	established_done(skops, steered);
}

static void on_passive_established(struct bpf_sock_ops *skops)
{
	struct fivc_peer_val *peer;
	struct fivc_flow_key k;
	struct fivc_tcpopt opt;
	bool steered = false;
	int ret;

	if (skops_flow_key(skops, &k))
		goto out;
	peer = peer_lookup(k.raddr);
	if (!peer) {
		stat_inc(FIVC_STAT_NOT_PEER);
		goto out;
	}
	/* -ENOENT here: the listener saved no SYN (it predates us). */
	ret = load_opt(skops, &opt, BPF_LOAD_HDR_OPT_TCP_SYN);
	if (ret) {
		stat_inc(ret < 0 ? FIVC_STAT_NO_OPTION : FIVC_STAT_BAD_OPTION);
		goto give_back;
	}
	if (bpf_ntohl(opt.domid) != peer->domid) {
		stat_inc(FIVC_STAT_BAD_OPTION);
		goto give_back;
	}
	steered = steer(skops, &k, peer->domid, bpf_ntohl(opt.nonce),
			FIVC_FLOW_PASSIVE, bpf_map_lookup_elem(&nat_flows, &k));
	goto out;
give_back:
	unreserve(&k);
out:
	established_done(skops, steered);
}

/*
 * A steered socket changed state (args: old, new): tell the agent. An
 * active connect that failed gives its reservation back; a listener that
 * closed, its listen_opts entry.
 */
static void on_state(struct bpf_sock_ops *skops)
{
	struct fivc_listen_key lk = {};
	struct fivc_flow_key k;
	struct fivc_flow *flow;
	struct fivc_event *ev;
	__u64 cookie;

	if (skops->args[0] == BPF_TCP_LISTEN) {
		if (!listener_key(skops, &lk))
			listen_opts_drop(&lk);
		return;
	}
	/*
	 * Nothing to say of ESTABLISHED: the passive side is steered in
	 * SYN_RECV, just before the kernel moves it there, and its ESTABLISHED
	 * event said that (every passive child passes here: a listener's state
	 * callback is inherited).
	 */
	if (skops->args[1] == BPF_TCP_ESTABLISHED)
		return;
	/* Before the lookup: the agent may have reaped the reservation. */
	if (skops->args[1] == BPF_TCP_CLOSE)
		uid_uncharge(skops);
	if (skops_flow_key(skops, &k))
		return;
	/* A Service's connection: tc has nothing left to translate. */
	if (skops->args[1] == BPF_TCP_CLOSE)
		nat_forget(&k);
	flow = bpf_map_lookup_elem(&flows, &k);
	if (!flow)
		return;
	cookie = bpf_get_socket_cookie(skops);
	if (flow->cookie != cookie)
		return;
	if (flow->hold_ns) {
		if (skops->args[1] == BPF_TCP_CLOSE)
			unreserve(&k);
		return;
	}
	/*
	 * The agent acts on the app's FIN (FIN_WAIT1, LAST_ACK) and on the
	 * socket's end (CLOSE) only: an event for the other states would wake
	 * it for nothing, about twice per connection and side.
	 */
	if (skops->args[1] != BPF_TCP_FIN_WAIT1 &&
	    skops->args[1] != BPF_TCP_LAST_ACK &&
	    skops->args[1] != BPF_TCP_CLOSE)
		return;
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		stat_inc(FIVC_STAT_EVENT_LOST);
		return;
	}
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->type = FIVC_EV_STATE;
	ev->slot = flow->slot;
	ev->flow = k;
	ev->cookie = cookie;
	ev->peer_domid = flow->peer_domid;
	ev->nonce = flow->nonce;
	ev->dir = flow->dir;
	ev->old_state = skops->args[0];
	ev->new_state = skops->args[1];
	bpf_ringbuf_submit(ev, 0);
}

#define TCP_NOTSENT_LOWAT 25
#define O_NONBLOCK 04000

/*
 * A segment with an option TCP does not know, on a steered socket: the
 * agent's write-space poke, a pure ACK carrying our option with the flow's
 * nonce (agent/flow.c, poke_writer). A steered app's bytes go into X, so
 * when X drains the kernel wakes X's waiters, not the app's; setting
 * TCP_NOTSENT_LOWAT to its value calls the app socket's sk_write_space.
 * Non-blocking sockets only: a blocking sender sleeps on X and X wakes it,
 * while any wake-up of the app socket would make a thread blocked in its
 * recv() return EAGAIN (tcp_bpf_recvmsg).
 */
static void on_poke(struct bpf_sock_ops *skops)
{
	struct fivc_flow_key k;
	struct fivc_tcpopt opt;
	struct fivc_flow *flow;
	struct tcp_sock *tp;
	struct bpf_sock *sk;
	int lowat;

	sk = skops->sk;
	if (!sk || load_opt(skops, &opt, 0) || skops_flow_key(skops, &k))
		return;
	flow = bpf_map_lookup_elem(&flows, &k);
	if (!flow || flow->hold_ns ||
	    flow->cookie != bpf_get_socket_cookie(skops) ||
	    flow->nonce != bpf_ntohl(opt.nonce))
		return;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp || !(BPF_CORE_READ(tp, inet_conn.icsk_inet.sk.sk_socket, file,
				   f_flags) &
		     O_NONBLOCK))
		return;
	lowat = tp->notsent_lowat;
	if (!bpf_setsockopt(skops, SOL_TCP, TCP_NOTSENT_LOWAT, &lowat,
			    sizeof(lowat)))
		stat_inc(FIVC_STAT_POKE_TAKEN);
}

SEC("sockops")
int fivc_sockops(struct bpf_sock_ops *skops)
{
	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		on_connect(skops);
		break;
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		on_listen(skops);
		break;
	case BPF_SOCK_OPS_HDR_OPT_LEN_CB:
		on_hdr_opt(skops, false);
		break;
	case BPF_SOCK_OPS_WRITE_HDR_OPT_CB:
		on_hdr_opt(skops, true);
		break;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		on_active_established(skops);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		on_passive_established(skops);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		on_state(skops);
		break;
	case BPF_SOCK_OPS_PARSE_HDR_OPT_CB:
		on_poke(skops);
		break;
	}
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
