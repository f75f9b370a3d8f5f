/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The fast path shared between local users (sockops.bpf.c only): an active
 * connect is charged to its socket's uid from its reservation until its
 * socket closes (a hold while the handshake lasts, a flow once steered), so
 * that one uid cannot take every slot or tunnel from the others. Root is
 * not charged: it can stop the agent anyway. A socket carries its charge in
 * uid_charges, so each one is given back exactly once.
 */
#ifndef FASTIVC_UID_SHARE_BPF_H
#define FASTIVC_UID_SHARE_BPF_H

#include "fastivc.bpf.h"

/* Per uid, what its sockets hold now (bpf_abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u32);
	__type(value, struct fivc_uid_use);
	__uint(max_entries, FIVC_MAX_UIDS);
} uid_use SEC(".maps");

enum uid_charge_kind {
	UID_CHARGE_HOLD = 1,
	UID_CHARGE_FLOW = 2,
};

/* Per socket: which uid it is charged to, and for what. */
struct uid_charge {
	__u32 uid;
	__u32 kind; /* enum uid_charge_kind */
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct uid_charge);
} uid_charges SEC(".maps");

/* Set by the agent every tick (its share policy); 0: no limit. */
volatile __u32 uid_hold_limit;
volatile __u32 uid_flow_limit;

/* The socket's owner (sk_uid: who created it), or -1 if unknown. */
static __always_inline int sock_uid(struct bpf_sock *sk, __u32 *uid)
{
	struct tcp_sock *tp;

	if (!sk)
		return -1;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return -1;
	*uid = tp->inet_conn.icsk_inet.sk.sk_uid.val;
	return 0;
}

/*
 * Charge a new reservation to the socket's uid: false (counted) if the uid
 * is at a limit or cannot be accounted. Two CPUs may both pass the check
 * for the last unit: the limit is exceeded by at most the CPU count.
 */
static __noinline bool uid_charge_hold(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct fivc_uid_use zero = {}, *use;
	struct uid_charge *ch;
	__u32 uid;

	if (!sk || sock_uid(sk, &uid))
		goto refuse;
	if (!uid)
		return true;
	use = bpf_map_lookup_elem(&uid_use, &uid);
	if (!use) {
		bpf_map_update_elem(&uid_use, &uid, &zero, BPF_NOEXIST);
		use = bpf_map_lookup_elem(&uid_use, &uid);
		if (!use)
			goto refuse;
	}
	if ((uid_hold_limit && use->holds >= uid_hold_limit) ||
	    (uid_flow_limit && use->flows >= uid_flow_limit))
		goto refuse;
	ch = bpf_sk_storage_get(&uid_charges, sk, 0,
				BPF_SK_STORAGE_GET_F_CREATE);
	if (!ch)
		goto refuse;
	ch->uid = uid;
	ch->kind = UID_CHARGE_HOLD;
	__sync_fetch_and_add(&use->holds, 1);
	return true;
refuse:
	stat_inc(FIVC_STAT_UID_LIMIT);
	return false;
}

/* The reservation became a steered flow: charge it as one. */
static __noinline void uid_charge_flow(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct fivc_uid_use *use;
	struct uid_charge *ch;

	if (!sk)
		return;
	ch = bpf_sk_storage_get(&uid_charges, sk, 0, 0);
	if (!ch || ch->kind != UID_CHARGE_HOLD)
		return;
	use = bpf_map_lookup_elem(&uid_use, &ch->uid);
	if (use) {
		__sync_fetch_and_add(&use->holds, -1);
		__sync_fetch_and_add(&use->flows, 1);
	}
	ch->kind = UID_CHARGE_FLOW;
}

/* Not steered, or the socket closed: give its charge back, once. */
static __noinline void uid_uncharge(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct fivc_uid_use *use;
	struct uid_charge *ch;

	if (!sk)
		return;
	ch = bpf_sk_storage_get(&uid_charges, sk, 0, 0);
	if (!ch)
		return;
	use = bpf_map_lookup_elem(&uid_use, &ch->uid);
	if (use)
		__sync_fetch_and_add(ch->kind == UID_CHARGE_HOLD ? &use->holds
								 : &use->flows,
				     -1);
	bpf_sk_storage_delete(&uid_charges, sk);
}

#endif /* FASTIVC_UID_SHARE_BPF_H */
