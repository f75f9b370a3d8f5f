// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockops, attached to the apps' cgroup: negotiates fastivc in the TCP
 * handshake and steers the socket at ESTABLISHED (docs/steering.md,
 * "Negotiation").
 *
 * Active side: TCP_CONNECT_CB keeps a nonce in sk storage and turns on the
 * header-option callbacks; the SYN carries {self_domid, nonce}; at
 * ACTIVE_ESTABLISHED the SYN-ACK must carry {peer's domid, same nonce}.
 * Passive side: TCP_LISTEN_CB makes the listener save SYNs and write options;
 * each SYN-ACK answers only a valid SYN from a peer; at PASSIVE_ESTABLISHED
 * the saved SYN is checked again. Then the socket gets a slot, a flows entry,
 * a place in socks and an ESTABLISHED event; the option callbacks go off and
 * the state callback stays on for the agent's STATE events.
 */
#define FIVC_MAPS_DEFINE
#include "fastivc.bpf.h"

/* This domain's id, set by the loader. */
const volatile __u32 self_domid;

/* Active side: the nonce our SYN carries, until ACTIVE_ESTABLISHED. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, __u32);
} nonces SEC(".maps");

/* The socket's 4-tuple from its own point of view; -1 if not IP. */
/* Slots set aside by SYN-ACKs that answered, until PASSIVE_ESTABLISHED. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct fivc_flow_key);
	__type(value, struct fivc_slot_hold);
	__uint(max_entries, FIVC_MAX_SLOTS);
} synack_slots SEC(".maps");

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

static __always_inline struct fivc_peer_val *peer_lookup(const __u8 *raddr)
{
	struct fivc_peer_key pk = {.prefixlen = 128};

	__builtin_memcpy(pk.addr, raddr, sizeof(pk.addr));
	return bpf_map_lookup_elem(&peers, &pk);
}

static __always_inline bool slot_available(void)
{
	__u32 slot;

	return bpf_map_peek_elem(&free_slots, &slot) == 0;
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

static __always_inline void set_cb_flags(struct bpf_sock_ops *skops, __u32 on,
					 __u32 off)
{
	__u32 flags = skops->bpf_sock_ops_cb_flags;

	bpf_sock_ops_cb_flags_set(skops, (flags & ~off) | on);
}

static void on_connect(struct bpf_sock_ops *skops)
{
	struct fivc_flow_key k;
	struct bpf_sock *sk;
	__u32 *nonce;

	if (skops_flow_key(skops, &k))
		return;
	if (!peer_lookup(k.raddr)) {
		stat_inc(FIVC_STAT_NOT_PEER);
		return;
	}
	/* Without a slot we could not steer: do not even ask. */
	if (!slot_available()) {
		stat_inc(FIVC_STAT_NO_SLOT);
		return;
	}
	sk = skops->sk;
	if (!sk)
		return;
	nonce = bpf_sk_storage_get(&nonces, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!nonce) {
		/* The ABI has one counter for "an insert failed". */
		stat_inc(FIVC_STAT_SOCKHASH_FULL);
		return;
	}
	*nonce = bpf_get_prandom_u32();
	set_cb_flags(skops, BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG, 0);
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
	set_cb_flags(skops, BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG, 0);
}

/*
 * Set a slot aside for this 4-tuple (once: the SYN-ACK's length and write
 * callbacks and its retransmits come here again). Answering while a slot is
 * merely free would let concurrent handshakes answer more SYNs than there
 * are slots, and the active side would then steer alone.
 */
static __always_inline bool slot_hold(const struct fivc_flow_key *k)
{
	struct fivc_slot_hold hold = {};

	if (bpf_map_lookup_elem(&synack_slots, k))
		return true;
	if (bpf_map_pop_elem(&free_slots, &hold.slot))
		return false;
	hold.ts_ns = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&synack_slots, k, &hold, BPF_NOEXIST)) {
		bpf_map_push_elem(&free_slots, &hold.slot, 0);
		return false;
	}
	return true;
}

/*
 * Passive side, for a SYN-ACK: answer (fill *opt) only a SYN that carried
 * our option from an address peers maps to the domid it claims, and only
 * while a slot is free (else the active side would steer alone). Not in
 * SYN cookie mode: no SYN would be saved for PASSIVE_ESTABLISHED.
 */
static __always_inline bool synack_answer(struct bpf_sock_ops *skops,
					  struct fivc_tcpopt *opt)
{
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
	if (!slot_hold(&k))
		return false;
	opt->domid = bpf_htonl(self_domid); /* the nonce is echoed */
	return true;
}

/* Active side, for a SYN: our nonce if TCP_CONNECT_CB chose this socket. */
static __always_inline bool syn_offer(struct bpf_sock_ops *skops,
				      struct fivc_tcpopt *opt)
{
	struct bpf_sock *sk;
	__u32 *nonce;

	sk = skops->sk;
	if (!sk)
		return false;
	nonce = bpf_sk_storage_get(&nonces, sk, 0, 0);
	if (!nonce)
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
		ok = synack_answer(skops, &opt);
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
 * Put the socket on the fast path. The event is reserved first, so that a
 * full ring buffer leaves the socket alone instead of steering it behind
 * the agent's back; every later failure undoes what came before it.
 */
static bool steer(struct bpf_sock_ops *skops, const struct fivc_flow_key *k,
		  __u32 peer_domid, __u32 nonce, __u32 dir)
{
	struct fivc_sock_key skey = {.role = FIVC_SOCK_APP};
	struct fivc_slot slotv = {.mode = FIVC_SLOT_IDLE};
	struct fivc_flow flow = {};
	struct fivc_slot_hold *hold;
	struct fivc_event *ev;
	__u32 slot;

	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev) {
		stat_inc(FIVC_STAT_EVENT_LOST);
		return false;
	}
	hold = dir == FIVC_FLOW_PASSIVE ? bpf_map_lookup_elem(&synack_slots, k)
					: NULL;
	if (hold) {
		slot = hold->slot;
		bpf_map_delete_elem(&synack_slots, k);
	} else if (bpf_map_pop_elem(&free_slots, &slot)) {
		stat_inc(FIVC_STAT_NO_SLOT);
		goto discard;
	}
	if (slot >= FIVC_MAX_SLOTS)
		goto discard;
	slotv.flow = *k;
	if (bpf_map_update_elem(&slots, &slot, &slotv, BPF_ANY)) {
		stat_inc(FIVC_STAT_NO_SLOT);
		goto push_back;
	}
	flow.cookie = bpf_get_socket_cookie(skops);
	flow.slot = slot;
	flow.peer_domid = peer_domid;
	flow.nonce = nonce;
	flow.dir = dir;
	/* BPF_ANY: a stale entry for this 4-tuple belongs to a dead socket. */
	if (bpf_map_update_elem(&flows, k, &flow, BPF_ANY)) {
		stat_inc(FIVC_STAT_SOCKHASH_FULL);
		goto push_back;
	}
	skey.flow = *k;
	if (bpf_sock_hash_update(skops, &socks, &skey, BPF_NOEXIST)) {
		stat_inc(FIVC_STAT_SOCKHASH_FULL);
		bpf_map_delete_elem(&flows, k);
		goto push_back;
	}

	__builtin_memset(ev, 0, sizeof(*ev));
	ev->type = FIVC_EV_ESTABLISHED;
	ev->slot = slot;
	ev->flow = *k;
	ev->cookie = flow.cookie;
	ev->peer_domid = peer_domid;
	ev->nonce = nonce;
	ev->dir = dir;
	bpf_ringbuf_submit(ev, 0);
	stat_inc(FIVC_STAT_STEERED);
	return true;

push_back:
	bpf_map_push_elem(&free_slots, &slot, 0);
discard:
	bpf_ringbuf_discard(ev, 0);
	return false;
}

/* Option callbacks off in any case; the state callback only if steered. */
static __always_inline void established_done(struct bpf_sock_ops *skops,
					     bool steered)
{
	set_cb_flags(skops, steered ? BPF_SOCK_OPS_STATE_CB_FLAG : 0,
		     BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG);
}

static void on_active_established(struct bpf_sock_ops *skops)
{
	struct fivc_peer_val *peer;
	struct fivc_flow_key k;
	struct fivc_tcpopt opt;
	bool steered = false;
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
	peer = peer_lookup(k.raddr);
	if (!peer) {
		stat_inc(FIVC_STAT_NOT_PEER);
		goto out;
	}
	ret = load_opt(skops, &opt, 0);
	if (ret) {
		stat_inc(ret < 0 ? FIVC_STAT_NO_OPTION : FIVC_STAT_BAD_OPTION);
		goto out;
	}
	if (bpf_ntohl(opt.domid) != peer->domid ||
	    bpf_ntohl(opt.nonce) != nonce) {
		stat_inc(FIVC_STAT_BAD_OPTION);
		goto out;
	}
	steered = steer(skops, &k, peer->domid, nonce, FIVC_FLOW_ACTIVE);
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
		goto out;
	}
	if (bpf_ntohl(opt.domid) != peer->domid) {
		stat_inc(FIVC_STAT_BAD_OPTION);
		goto out;
	}
	steered = steer(skops, &k, peer->domid, bpf_ntohl(opt.nonce),
			FIVC_FLOW_PASSIVE);
out:
	established_done(skops, steered);
}

/* A steered socket changed state (args: old, new): tell the agent. */
static void on_state(struct bpf_sock_ops *skops)
{
	struct fivc_flow_key k;
	struct fivc_flow *flow;
	struct fivc_event *ev;
	__u64 cookie;

	if (skops_flow_key(skops, &k))
		return;
	flow = bpf_map_lookup_elem(&flows, &k);
	if (!flow)
		return;
	cookie = bpf_get_socket_cookie(skops);
	if (flow->cookie != cookie)
		return;
	/*
	 * The passive side is steered in SYN_RECV, just before the kernel
	 * moves it to ESTABLISHED: the ESTABLISHED event already said that.
	 */
	if (skops->args[1] == BPF_TCP_ESTABLISHED)
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
	}
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
