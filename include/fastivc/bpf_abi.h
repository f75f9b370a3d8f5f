/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The contract between the BPF programs (bpf/) and user space (agent/, the
 * CLI): map keys and values, events, counters. The one definition of each;
 * fixed-width types and explicit padding only. See docs/steering.md.
 *
 * Addresses are 16 bytes; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d) so one
 * LPM trie and one key type serve both families. Ports are host order.
 */
#ifndef FASTIVC_BPF_ABI_H
#define FASTIVC_BPF_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* TCP option: kind 254, RFC 6994 ExID, then domid and nonce (big endian). */
#define FIVC_TCPOPT_KIND 254
#define FIVC_TCPOPT_EXID 0xF1C0
#define FIVC_TCPOPT_LEN 12

#define FIVC_MAX_PEERS 4096
#define FIVC_MAX_FLOWS 65536
#define FIVC_MAX_SLOTS 65536

/* peers: LPM trie, co-resident prefix -> domain id. */
struct fivc_peer_key {
	__u32 prefixlen; /* 0..128; an IPv4 /n is 96 + n */
	__u8 addr[16];
};

struct fivc_peer_val {
	__u32 domid;
	__u32 flags; /* reserved, 0 */
};

/*
 * services: LPM trie, a prefix of Service addresses (the `services` key:
 * Kubernetes ClusterIPs) -> 1. A connect from the agent's namespace to one
 * offers the option although the address is no peer's: the DNAT that
 * picks its endpoint (kube-proxy's OUTPUT rule) runs after sockops, and tc
 * sees the endpoint on the SYN (docs/steering.md, "Service addresses").
 *
 * nat_flows: hash, both ways, for a connection a DNAT rewrote where our tc
 * sees it: the app socket's 4-tuple -> the 4-tuple on the wire, and the
 * wire's -> the app's. Active side: a Service's, noted by tc on our SYN
 * (the endpoint replaces the Service). Passive side: a port redirected to
 * the listener (NodePort, REDIRECT), noted by sockops when it answers
 * from what tc saw of the SYN (syn_wire). tc keys its maps by the app's
 * 4-tuple, the agents name the tunnel by the wire's. sockops removes both
 * entries when the reservation goes back or the socket closes.
 *
 * syn_wire: LRU hash, a peer's address and port (raddr, rport; the rest 0)
 * -> the 4-tuple of the last SYN tc saw from there, before any DNAT.
 */
#define FIVC_MAX_SERVICES 16

/* An app socket's 4-tuple, from its own point of view. */
struct fivc_flow_key {
	__u8 laddr[16];
	__u8 raddr[16];
	__u16 lport;
	__u16 rport;
	__u32 pad; /* 0 */
};

enum fivc_sock_role {
	FIVC_SOCK_APP = 1,    /* a steered application socket */
	FIVC_SOCK_SLOT_X = 2, /* slot end the app's bytes are redirected to */
	FIVC_SOCK_SLOT_Y = 3, /* slot end the agent reads and writes */
};

/* socks: sockhash key. APP uses flow; SLOT_* use slot, with flow zeroed. */
struct fivc_sock_key {
	__u32 role; /* enum fivc_sock_role */
	__u32 slot;
	struct fivc_flow_key flow;
};

enum fivc_flow_dir {
	FIVC_FLOW_ACTIVE = 1,  /* this side connected */
	FIVC_FLOW_PASSIVE = 2, /* this side accepted */
};

/*
 * flows: hash, app 4-tuple -> what sockops decided. An entry starts as a
 * reservation (hold_ns set), made before the handshake offers (active) or
 * answers (passive) the option: a slot and this entry are set aside, so a
 * connection both sides agreed on can surely be steered on both, and a
 * side at a limit (no slot, a full map) does not agree at all. Nothing but
 * sockops acts on a reservation; the agent returns those older than any
 * handshake (SYN retries last ~2 minutes) to free_slots.
 */
struct fivc_flow {
	__u64 cookie; /* socket cookie of the app socket; passive hold: 0 */
	__u32 slot;
	__u32 peer_domid;
	__u32 nonce;
	__u32 dir;     /* enum fivc_flow_dir */
	__u64 tx_msgs; /* sk_msg redirects of app sends (counter) */
	__u64 tx_bytes;
	__u64 hold_ns; /* bpf_ktime_get_ns() of the reservation; 0: steered */
	__u32 via_x;   /* sk_msg's route for the app's sends (skmsg.bpf.c) */
	__u32 pad;
};

/*
 * slot_sw: array by slot, mmap-able, one __u64 per slot, shared by the
 * agent (atomics on its mapping) and sk_msg (BPF cmpxchg). It decides,
 * once per flow and atomically, whether the tunnel or plain TCP gets the
 * app's bytes (docs/steering.md, "Fallback"):
 *
 *   CAPTURED   sk_msg redirected a first send to the slot: from then on
 *              the flow's bytes are the tunnel's
 *   CANCELLED  the agent gave the flow back to TCP before any byte was
 *              captured: sk_msg passes every send
 *
 * The bits from FIVC_SW_SENT_SHIFT up count the bytes sk_msg redirected
 * into the slot's X for this flow (only once CAPTURED, so only sk_msg
 * writes then, under the app socket's lock). It is what the app sent
 * before its FIN: sk_msg redirects only in ESTABLISHED and CLOSE_WAIT, and
 * the FIN's state change takes the same lock. It can only be too high (a
 * push into a full X that failed part way, which the app sends again),
 * never too low. The agent resets the word to 0 before the slot goes back
 * to free_slots (docs/steering.md, "Slot reuse").
 */
/*
 * slot_rd: array by slot, mmap-able, one __u64 per slot, written by the
 * agent only: the bytes it has read from the slot's Y for its current flow
 * (reset with slot_sw). sk_msg takes sent - read as the flow's bytes in
 * flight to the agent, and routes a send straight into Y's receive queue
 * (ingress) while they stay under ingress_window, through X otherwise
 * (docs/steering.md, "The data path"). A count too low only keeps the
 * flow on X longer.
 */
/*
 * slot_in: array by slot, mmap-able, one __u64 per slot, written by the
 * agent only: the bytes it has injected into the slot's app socket for its
 * current flow (reset with slot_sw). With slot_rd it is what TCP_INFO adds
 * to the socket's own counts (bpf/tcp_info.bpf.c).
 */
#define FIVC_SW_CAPTURED (1ULL << 0)
#define FIVC_SW_CANCELLED (1ULL << 1)
#define FIVC_SW_SENT_SHIFT 2

enum fivc_slot_mode {
	FIVC_SLOT_IDLE = 0,   /* Y's sends are not redirected */
	FIVC_SLOT_INJECT = 1, /* Y's sends go ingress into the app socket */
	FIVC_SLOT_RELAY = 2,  /* Y's sends go egress out of the app socket */
};

/* slots: array indexed by slot, written by the agent. */
struct fivc_slot {
	struct fivc_flow_key flow; /* the app socket this slot serves */
	__u32 mode;		   /* enum fivc_slot_mode */
	__u32 pad;
};

/* slot_ports: hash, Y's local port (host order) -> slot. */

/*
 * uid_use: LRU hash, a local uid (not root) -> what its connections hold
 * of the fast path: reservations of handshakes under way, and steered
 * flows whose app socket is open. sockops charges a connect to its
 * socket's uid and refuses the option beyond uid_hold_limit or
 * uid_flow_limit (globals the agent sets: docs/operations.md, "Sharing").
 */
struct fivc_uid_use {
	__u32 holds;
	__u32 flows;
};
#define FIVC_MAX_UIDS 4096

enum fivc_event_type {
	FIVC_EV_ESTABLISHED = 1, /* a socket was steered; slot popped */
	FIVC_EV_STATE = 2,	 /* a steered socket changed TCP state */
	FIVC_EV_FIN_HELD = 3,	 /* tc held the peer's FIN (see held_fins) */
	FIVC_EV_SPLICE = 4,	 /* an app spliced from a steered socket */
};

/* events: ring buffer records. */
struct fivc_event {
	__u32 type; /* enum fivc_event_type */
	__u32 slot;
	struct fivc_flow_key flow;
	__u64 cookie;
	__u32 peer_domid;
	__u32 nonce;
	__u32 dir;	 /* enum fivc_flow_dir */
	__u32 old_state; /* STATE: kernel TCP_* values */
	__u32 new_state;
	__u32 flags; /* FIVC_EV_F_* */
	/*
	 * ESTABLISHED: the app socket's snd_nxt and rcv_nxt after the
	 * handshake. Steered bytes never take its TCP, so only the FINs move
	 * them on: the agent resets the connection with RSTs of its own at
	 * these numbers (agent/reset.c).
	 */
	__u32 snd_nxt;
	__u32 rcv_nxt;
	/*
	 * ESTABLISHED with FIVC_EV_F_DNAT: the 4-tuple on the wire, where a
	 * DNAT made the socket's differ (a Service's endpoint, or a port
	 * redirected to this socket).
	 */
	struct fivc_flow_key wire;
};

/*
 * ESTABLISHED: tc already holds the peer's FIN (it completed the handshake,
 * its last ACK having been lost or refused by a full accept queue).
 */
#define FIVC_EV_F_FIN_HELD (1u << 0)
/* ESTABLISHED: a DNAT made the socket's 4-tuple differ from the wire's. */
#define FIVC_EV_F_DNAT (1u << 1)
/* ESTABLISHED: the app socket is in another network namespace than ours. */
#define FIVC_EV_F_OTHER_NETNS (1u << 2)

/*
 * The rmem probe (bpf/rmem_probe.bpf.c): what apps in other network
 * namespaces than ours have not read yet (sk_rmem_alloc, as sock_diag's
 * SK_MEMINFO_RMEM_ALLOC says it). The agent runs it with BPF_PROG_TEST_RUN
 * on a struct fivc_rmem_probe as the packet; each asked entry comes back
 * holding its answer in place of its key.
 */
#define FIVC_RMEM_PROBE_MAX 64
union fivc_rmem_q {
	struct fivc_sock_key key; /* in: an app socket's, in socks */
	struct {
		__u64 cookie; /* the socket's; 0: not in socks */
		__u32 rmem;
		__u32 pad;
	} ans; /* out */
};
struct fivc_rmem_probe {
	__u8 eth[14]; /* zeros: test runs of tc programs start at L2 */
	__u16 n;      /* q[0, n) are asked, n <= FIVC_RMEM_PROBE_MAX */
	union fivc_rmem_q q[FIVC_RMEM_PROBE_MAX];
};

/*
 * held_fins: hash, app 4-tuple -> the peer's FIN segment, held by the tc
 * ingress program while tunnel bytes may still be on their way; the agent
 * re-sends it once it has injected the last byte (docs/steering.md).
 * fin_ok: hash, app 4-tuple -> 1 once that happened (FINs then pass).
 */
#define FIVC_HELD_FIN_MAX 128
struct fivc_held_fin {
	__u32 len; /* bytes of pkt, from the IP header on */
	__u32 pad;
	__u8 pkt[FIVC_HELD_FIN_MAX];
};

/*
 * Socket options the tunnel cannot honour (docs/steering.md, "Socket
 * options"): a connection whose socket has one at the handshake stays on
 * plain TCP. listen_opts keeps them per listener, by its network namespace
 * and the address and port it is bound to (a wildcard as bound:
 * ::ffff:0.0.0.0 or ::), because the SYN-ACK's callback sees the request,
 * not the listener. Every listener has an entry, refusing or not, from
 * listen() to its close: a SYN-ACK whose listener has none (the table was
 * full) is not answered, so a full table costs speed, never behaviour.
 */
enum fivc_opt_refusal {
	FIVC_OPT_RCVLOWAT = 1 << 0,
	FIVC_OPT_DEFER = 1 << 1,
	FIVC_OPT_SPLICE = 1 << 2, /* splice() from one of its sockets */
};

#define FIVC_MAX_LISTENERS 4096

struct fivc_listen_key {
	__u64 netns; /* the namespace's cookie */
	__u8 addr[16];
	__u16 port;
	__u16 pad[3]; /* 0 */
};

struct fivc_listen_opts {
	__u32 why;	 /* enum fivc_opt_refusal bits */
	__u32 listeners; /* on this key (SO_REUSEPORT): the last deletes it */
};

/*
 * splice_dst: LRU hash, an address and port that an app connected to and
 * then spliced from (bpf/splice_watch.bpf.c) -> 1: later connections of
 * that uid there stay on plain TCP. By uid, so that one user's splice()
 * costs no other user the tunnel.
 */
#define FIVC_MAX_SPLICE_DST 1024

struct fivc_splice_key {
	__u64 netns; /* the namespace's cookie */
	__u8 addr[16];
	__u16 port;
	__u16 pad; /* 0 */
	__u32 uid; /* the socket's owner (sk_uid) */
};

/* stats: per-CPU array, one __u64 per counter. */
enum fivc_stat {
	FIVC_STAT_STEERED = 0,	   /* sockets put on the fast path */
	FIVC_STAT_NOT_PEER,	   /* remote not in peers: plain TCP */
	FIVC_STAT_NO_OPTION,	   /* peer did not answer the option */
	FIVC_STAT_BAD_OPTION,	   /* wrong domid or nonce in the option */
	FIVC_STAT_NO_SLOT,	   /* no free slot: plain TCP */
	FIVC_STAT_FLOWS_FULL,	   /* flows map full: plain TCP */
	FIVC_STAT_SOCKHASH_FULL,   /* insert failed: plain TCP */
	FIVC_STAT_EVENT_LOST,	   /* ring buffer full */
	FIVC_STAT_MSG_REDIRECT,	   /* app sends redirected to a slot */
	FIVC_STAT_MSG_PASS,	   /* app sends passed to TCP (fallback) */
	FIVC_STAT_INJECT,	   /* agent sends redirected into an app */
	FIVC_STAT_INJECT_FAIL,	   /* agent sends with no target */
	FIVC_STAT_FIN_HELD,	   /* peer FINs held until the tunnel drained */
	FIVC_STAT_FIN_DATA,	   /* FINs with payload on a steered flow */
	FIVC_STAT_ACK_HELD,	   /* ACKs of our FIN dropped (see fin_hold) */
	FIVC_STAT_CANCELLED,	   /* sends passed: the flow fell back to TCP */
	FIVC_STAT_ORPHAN_RST,	   /* agent gone: peer segments made RSTs */
	FIVC_STAT_ORPHAN_DROP,	   /* agent gone: app payload dropped */
	FIVC_STAT_FIN_EARLY,	   /* FINs held before the handshake ended */
	FIVC_STAT_UID_LIMIT,	   /* a local uid at its share: plain TCP */
	FIVC_STAT_RST_AFTER_FIN,   /* peer RSTs given their held FIN's seq */
	FIVC_STAT_VIA_X,	   /* app sends that went through X */
	FIVC_STAT_OPT_RCVLOWAT,	   /* SO_RCVLOWAT above 1: plain TCP */
	FIVC_STAT_OPT_DEFER,	   /* a TCP_DEFER_ACCEPT listener: plain TCP */
	FIVC_STAT_OPT_LATE,	   /* SO_RCVLOWAT set on a steered socket */
	FIVC_STAT_LISTEN_FULL,	   /* a listener got no listen_opts entry */
	FIVC_STAT_LISTEN_NONE,	   /* its SYN-ACKs, unanswered: plain TCP */
	FIVC_STAT_SERVICE_DNAT,	   /* steered to a Service's endpoint */
	FIVC_STAT_PORT_DNAT,	   /* steered, answering a DNAT'd SYN */
	FIVC_STAT_SERVICE_NO_DNAT, /* to a Service, no DNAT seen: plain TCP */
	FIVC_STAT_SERVICE_NETNS,   /* to a Service from another netns: TCP */
	FIVC_STAT_NAT_FULL,	   /* nat_flows full: that connection on TCP */
	FIVC_STAT_POKE_TAKEN,	   /* write-space pokes (segments) taken */
	FIVC_STAT_SPLICE_MARKED,   /* services marked by a splice() from one */
	FIVC_STAT_OPT_SPLICE,	   /* ... their later connections: plain TCP */
	FIVC_STAT__MAX,
};

#endif /* FASTIVC_BPF_ABI_H */
