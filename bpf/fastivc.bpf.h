/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the two BPF sources share: the maps of include/fastivc/bpf_abi.h,
 * the TCP option's wire format and small inline helpers. sockops.bpf.c
 * defines the maps (FIVC_MAPS_DEFINE); the other sources see them extern
 * and `bpftool gen object` links all into fastivc.bpf.o.
 */
#ifndef FASTIVC_BPF_H
#define FASTIVC_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "fastivc/bpf_abi.h"

/* UAPI constants vmlinux.h does not carry (they are #defines). */
#define AF_INET 2
#define AF_INET6 10
#define SOL_TCP 6
#define TCP_SAVE_SYN 27
#define TCPHDR_SYN 0x02
#define TCPHDR_ACK 0x10

#ifdef FIVC_MAPS_DEFINE
#define FIVC_MAP
#else
#define FIVC_MAP extern
#endif

/* Co-resident prefixes -> domain id; written by the agent. */
FIVC_MAP struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct fivc_peer_key);
	__type(value, struct fivc_peer_val);
	__uint(max_entries, FIVC_MAX_PEERS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} peers SEC(".maps");

/* Service prefixes (bpf_abi.h); written by the agent from its config. */
FIVC_MAP struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct fivc_peer_key);
	__type(value, __u32);
	__uint(max_entries, FIVC_MAX_SERVICES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} services SEC(".maps");

/* DNAT seen by tc: app 4-tuple <-> wire 4-tuple (bpf_abi.h). */
FIVC_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct fivc_flow_key);
	__type(value, struct fivc_flow_key);
	__uint(max_entries, 2 * FIVC_MAX_FLOWS);
} nat_flows SEC(".maps");

/* A peer's last SYN before any DNAT, by its address and port (bpf_abi.h). */
FIVC_MAP struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct fivc_flow_key);
	__type(value, struct fivc_flow_key);
	__uint(max_entries, 4096);
} syn_wire SEC(".maps");

/* Steered app sockets by 4-tuple; inserted by sockops, removed by the agent. */
FIVC_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct fivc_flow_key);
	__type(value, struct fivc_flow);
	__uint(max_entries, FIVC_MAX_FLOWS);
} flows SEC(".maps");

/* Where each slot's app sends go; see slot_sw in bpf_abi.h. */
FIVC_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, FIVC_MAX_SLOTS);
	__uint(map_flags, BPF_F_MMAPABLE);
} slot_sw SEC(".maps");

/* What the agent has read from each slot's Y; see slot_rd in bpf_abi.h. */
FIVC_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, FIVC_MAX_SLOTS);
	__uint(map_flags, BPF_F_MMAPABLE);
} slot_rd SEC(".maps");

/* What the agent has injected into each slot's app socket; see slot_in. */
FIVC_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, FIVC_MAX_SLOTS);
	__uint(map_flags, BPF_F_MMAPABLE);
} slot_in SEC(".maps");

/* App sockets (by flow) and slot ends X, Y (by slot); sk_msg runs on all. */
FIVC_MAP struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__type(key, struct fivc_sock_key);
	__type(value, __u64);
	__uint(max_entries, FIVC_MAX_FLOWS + 2 * FIVC_MAX_SLOTS);
} socks SEC(".maps");

/* Per slot: the flow it serves (set by sockops) and Y's mode (agent). */
FIVC_MAP struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct fivc_slot);
	__uint(max_entries, FIVC_MAX_SLOTS);
} slots SEC(".maps");

/* Y's local port (host order) -> slot; written by the agent. */
FIVC_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);
	__type(value, __u32);
	__uint(max_entries, FIVC_MAX_SLOTS);
} slot_ports SEC(".maps");

/*
 * Held FIN segments by app 4-tuple (tc keeps them; sockops clears a stale
 * one when it reserves the 4-tuple anew and tells the agent of one held
 * during the handshake).
 */
FIVC_MAP struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct fivc_flow_key);
	__type(value, struct fivc_held_fin);
	__uint(max_entries, FIVC_MAX_FLOWS);
} held_fins SEC(".maps");

/* Slots ready for a new flow; the agent pushes, sockops pops. */
FIVC_MAP struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__type(value, __u32);
	__uint(max_entries, FIVC_MAX_SLOTS);
} free_slots SEC(".maps");

/* Services whose later connections stay on TCP (bpf_abi.h). */
FIVC_MAP struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct fivc_splice_key);
	__type(value, __u32);
	__uint(max_entries, FIVC_MAX_SPLICE_DST);
} splice_dst SEC(".maps");

/* struct fivc_event records for the agent. */
FIVC_MAP struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

/* enum fivc_stat counters, per CPU. */
FIVC_MAP struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, FIVC_STAT__MAX);
} stats SEC(".maps");

/* The option on the wire: kind 254, length 12, RFC 6994 ExID, payload. */
struct fivc_tcpopt {
	__u8 kind;
	__u8 len;
	__be16 exid;
	__be32 domid;
	__be32 nonce;
} __attribute__((packed));

_Static_assert(sizeof(struct fivc_tcpopt) == FIVC_TCPOPT_LEN, "option size");

/*
 * A u32 context field, loaded at its constant offset from the context
 * pointer. Plain C lets clang merge the loads of two branches into one load
 * from a computed address, which the verifier refuses ("dereference of
 * modified ctx ptr"); neither volatile nor barriers stop that.
 */
#define CTX_READ(ctx, field)                                                   \
	({                                                                     \
		__u32 v_;                                                      \
		asm volatile("%0 = *(u32 *)(%1 + %2)"                          \
			     : "=r"(v_)                                        \
			     : "r"(ctx), "i"(__builtin_offsetof(               \
						 typeof(*(ctx)), field)));     \
		v_;                                                            \
	})

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	if (v)
		*v += 1;
}

static __always_inline void addr_v4mapped(__u8 *addr, __u32 ip4)
{
	__u32 w[4] = {0, 0, bpf_htonl(0xffff), ip4};

	__builtin_memcpy(addr, w, sizeof(w));
}

static __always_inline void addr_v6(__u8 *addr, __u32 w0, __u32 w1, __u32 w2,
				    __u32 w3)
{
	__u32 w[4] = {w0, w1, w2, w3};

	__builtin_memcpy(addr, w, sizeof(w));
}

static __always_inline bool addr_eq(const __u8 *a, const __u8 *b)
{
	__u64 a0, a1, b0, b1;

	__builtin_memcpy(&a0, a, 8);
	__builtin_memcpy(&a1, a + 8, 8);
	__builtin_memcpy(&b0, b, 8);
	__builtin_memcpy(&b1, b + 8, 8);
	return a0 == b0 && a1 == b1;
}

static __always_inline struct fivc_peer_val *peer_lookup(const __u8 *raddr)
{
	struct fivc_peer_key pk = {.prefixlen = 128};

	__builtin_memcpy(pk.addr, raddr, sizeof(pk.addr));
	return bpf_map_lookup_elem(&peers, &pk);
}

/* syn_wire's key for @k's remote: its address and port, the rest 0. */
static __always_inline void syn_wire_key(const struct fivc_flow_key *k,
					 struct fivc_flow_key *rk)
{
	__builtin_memset(rk, 0, sizeof(*rk));
	__builtin_memcpy(rk->raddr, k->raddr, sizeof(rk->raddr));
	rk->rport = k->rport;
}

/* A DNAT'd connection's two nat_flows entries go (@k: either 4-tuple). */
static __always_inline void nat_forget(const struct fivc_flow_key *k)
{
	struct fivc_flow_key *other = bpf_map_lookup_elem(&nat_flows, k);

	if (!other)
		return;
	bpf_map_delete_elem(&nat_flows, other);
	bpf_map_delete_elem(&nat_flows, k);
}

#endif /* FASTIVC_BPF_H */
