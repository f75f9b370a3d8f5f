/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The agent: its configuration, event loop, counters and the services its
 * modules share. Flows are in flow.h, links to peer agents in link.h. See
 * docs/steering.md.
 */
#ifndef FASTIVC_AGENT_H
#define FASTIVC_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "fastivc/bpf_abi.h"
#include "fastivc/ring.h"
#include "fastivc/shm.h"
#include "fastivc/tunnel_msg.h"
#include "poll.h"

struct agent;

#define container_of(ptr, type, member)                                        \
	((type *)((char *)(ptr)-offsetof(type, member)))

struct agent_config {
	char instance[32];   /* names the pin dir and the run dir */
	char cgroup[256];    /* cgroup v2 directory of the applications */
	char bpffs[128];     /* bpffs mount point */
	char run_dir[256];   /* control socket and pid lock */
	char link_dir[256];  /* local backend: agents listen on dom<N>.sock */
	char ifaces[256];    /* tc ingress (FIN hold) on these; "" = all */
	char services[256];  /* Service prefixes (DNAT'd to peers); "" = none */
	uint32_t domid;	     /* our domain id */
	uint32_t n_channels; /* ring geometry of each direction */
	uint32_t channel_size;
	uint32_t pool;	      /* free slots kept ready */
	uint32_t max_tunnels; /* CREATE beyond this is refused */
	uint32_t uid_share;   /* % of the fast path one local uid may hold */
	uint32_t setup_timeout_ms; /* wait for the peer's CREATE */
	uint32_t drain_timeout_ms; /* SIGTERM: let flows finish this long */
	uint32_t window;	   /* bytes queued per flow and direction */
	uint32_t max_flows;	   /* size of the flow maps (BPF) */
	uint32_t max_shm_bytes; /* local backend: ring bytes offered; 0 = any */
	uint32_t poll_us;	/* longest polling window (poll.c); 0 = off */
	uint32_t sched_batch;	/* 1: SCHED_BATCH, woken without preempting */
	uint32_t shm_mem_permille; /* ring memory held: of MemTotal, at most */
	char metrics_listen[64];   /* HOST:PORT of /metrics; "" = off */
	char log_level[8];	   /* as given; "" = not set */
	bool coresident_xs;	   /* peers from dom0's xenstore list */
	bool channel_size_set;	   /* given: not the backend's default */
	bool sched_batch_set;	   /* likewise */
	uint32_t backend;	   /* enum fivc_backend_kind */
};

/*
 * Every fd in the epoll set is registered with one of these. A callback may
 * tear down objects whose events are still pending in the same batch: their
 * watches are marked dead at once and their memory is freed only after the
 * batch (agent_defer_free).
 */
struct agent_watch {
	void (*fn)(struct agent *a, struct agent_watch *w, uint32_t events);
	int fd;
	bool live;
};

/* A flow that fell back to plain TCP, kept for `fastivc status`. */
struct fallback_rec {
	struct fivc_flow_key key;
	const char *reason;
	uint64_t when_ns;
};

#define FALLBACK_RECS 64

/* Clients of the control socket or /metrics dropped, by cause (clients.c) */
struct client_drops {
	uint64_t deadline;  /* no whole request and reply within 1 s */
	uint64_t too_many;  /* the oldest, when one more came than the bound */
	uint64_t too_large; /* a request over the bound */
};

struct agent_counters {
	uint64_t flows_steered, flows_tunneled, flows_failed, flows_done;
	uint64_t flows_tcp;	/* fell back to plain TCP, every byte intact */
	uint64_t flows_relayed; /* no tunnel, but bytes captured: relayed */
	uint64_t flows_reset;  /* RSTs the apps caused (abort, close, unread) */
	uint64_t resets_rst;   /* our RST reset the app socket (ECONNRESET) */
	uint64_t resets_abort; /* ... it did not: SOCK_DESTROY (ECONNABORTED) */
	uint64_t creates_refused, creates_rejected_by_peer;
	uint64_t bytes_tx, bytes_rx;		 /* through tunnels */
	uint64_t relay_bytes_tx, relay_bytes_rx; /* through relays */
	uint64_t ring_full;   /* our ring full: waited for RECV_GET_DATA */
	uint64_t ring_waits;  /* the peer's ring empty: waited for SEND_DATA */
	uint64_t kicks_sent;  /* tunnels' notifications to peers, ended flows */
	uint64_t kicks_taken; /* tunnels' notifications from peers */
	uint64_t inject_nomem;	 /* injections retried: TCP memory pressure */
	uint64_t pokes;		 /* write-space pokes: ACKs to app sockets */
	uint64_t rmem_probes;	 /* rmem probe runs: other netns' unread */
	uint64_t flows_leftover; /* a killed previous agent's, reset */
	uint64_t flows_no_shm;	 /* no room to offer a ring: not tunneled */
	uint64_t pool_shm_short; /* times the pool stopped short of room */
	uint64_t slot_impostors; /* others' connects to the slot listener */
	uint64_t holds_reaped;	 /* stalled handshakes: slot back */
	uint64_t slots_reused;	 /* pairs that served another flow */
	uint64_t slots_eof_shut; /* FINs ended by shutting X (no reuse) */
	uint64_t ingress_closed; /* times TCP memory closed the ingress route */
	struct client_drops metrics_dropped, control_dropped;
	uint64_t link_hello_timeouts; /* links closed: no HELLO in time */
	uint64_t link_frame_timeouts; /* links closed: a message never ended */
	uint64_t parked_refused; /* early messages refused: a link's bound */
	uint64_t
		parked_expired; /* CREATEs for no flow of ours: REJECT ENOENT */
	uint64_t link_out_overflows; /* links closed: the peer did not read */
	uint64_t rings_reused;	     /* our rings named again by id */
	uint64_t peer_rings_reused;  /* the peer's attached from our cache */
	uint64_t rings_evicted;	     /* ours dropped: the peer told to unmap */
	uint64_t ring_refused;	     /* CREATEs naming rings they should not */
	uint64_t shm_mem_short;	     /* times the memory bound cut the room */
	/* Flows that moved bytes before their tunnel was up ("Early
	 * bytes"): ours into a ring, the peer's into the app; early bytes
	 * a refusal sent on a relay. */
	uint64_t early_tx, early_rx, early_relayed;
	/* Listeners opened before the agent (listen_adopt.c): prepared for
	 * the option, or left on plain TCP for listeners_reason ("" none). */
	uint64_t listeners_adopted, listeners_not_adopted;
	const char *listeners_reason;
};

struct agent_bpf; /* agent/bpf.c */

#define AGENT_BATCH_HOOKS 4

struct agent {
	struct agent_config cfg;
	int epfd;
	struct agent_bpf *bpf;
	struct fivc_backend *be;
	struct flow **flows; /* by slot */
	uint32_t n_tunnels;
	uint32_t n_flows; /* steered, not yet freed */
	struct agent_watch w_events, w_link_listen, w_timer;
	struct agent_watch w_window; /* polls paused flows' unread bytes */
	uint32_t n_paused;
	int diag_fd;
	struct agent_watch w_slot_listen; /* loopback: the slots' Ys connect */
	uint32_t slots_free;		  /* in free_slots, ready */
	bool pool_shm_short; /* the last fill stopped for want of shm room */
	uint32_t next_slot;
	uint32_t *recycled; /* slot ids free for a new pair */
	uint32_t n_recycled;
	struct peer_link *links;
	struct xlink *xlinks; /* xen: links being set up or up (xlink.c) */
	/* xen: a link came up or went down (registered by the peers' owner) */
	void (*xlinks_changed)(struct agent *a);
	const struct link_handlers *link_on; /* link.c hands messages on */
	struct agent_coresident *cores;	     /* coresident = xenstore */
	/* Messages for flows not seen yet (park.c). */
	struct agent_park *park;
	struct flow *more; /* flows to pump again after this batch */
	/* Work deferred to the end of each batch of events (agent_on_batch) */
	void (*batch_hooks[AGENT_BATCH_HOOKS])(struct agent *a);
	uint32_t n_batch_hooks;
	struct agent_poll poll;
	struct agent_counters ctr;
	struct fallback_rec fallbacks[FALLBACK_RECS]; /* the latest, a ring */
	uint32_t n_fallbacks;
	void **dead; /* freed after the current epoll batch */
	uint32_t n_dead, cap_dead;
	volatile int stop;
	uint64_t drain_deadline_ns; /* SIGTERM came: draining until then */
	/* deploy: reload, readiness and metrics (notify.c, metrics.c) */
	int argc;
	char **argv;
	struct agent_watch w_hup; /* SIGHUP: reload the configuration */
	uint64_t notify_ns;	  /* last STATUS= sent */
	int guard_fd;		  /* to the guard process (guard.c) */
	int guard_pid;
};

/* agent/main.c: log level from the command line */
uint64_t agent_now_ns(void);
int agent_watch_add(struct agent *a, struct agent_watch *w, uint32_t events);
int agent_watch_mod(struct agent *a, struct agent_watch *w, uint32_t events);
void agent_watch_del(struct agent *a, struct agent_watch *w);
void agent_defer_free(struct agent *a, void *p);
void agent_reap(struct agent *a);
/* Run @fn after each batch of events, before the batch's memory is freed. */
int agent_on_batch(struct agent *a, void (*fn)(struct agent *a));
int agent_loop(struct agent *a);

/* agent/config.c */
void agent_config_defaults(struct agent_config *c);
int agent_config_load(struct agent_config *c, const char *path);
int agent_config_set(struct agent_config *c, const char *key, const char *val);

/* agent/bpf.c: load, pin, attach; map access by the rest */
/* What sockops reports, handed on to the layer above (the flows). */
struct agent_bpf_events {
	void (*established)(struct agent *a, const struct fivc_event *ev);
	void (*state)(struct agent *a, const struct fivc_event *ev);
	void (*fin_held)(struct agent *a, const struct fivc_event *ev);
};
int agent_pin_dir(const struct agent_config *c, char *buf, size_t len);
int agent_bpf_open(struct agent *a, const struct agent_bpf_events *on);
void agent_bpf_close(struct agent *a);
/* agent/listen_adopt.c: once, after sockops is attached to @cgroup_fd */
void listen_adopt(struct agent *a, int cgroup_fd, int listen_opts_fd);
int agent_bpf_events_fd(struct agent *a);
void agent_bpf_events_poll(struct agent *a);
int agent_bpf_slot_add(struct agent *a, uint32_t slot, int fd_x, int fd_y,
		       uint16_t y_port);
void agent_bpf_slot_del(struct agent *a, uint32_t slot, uint16_t y_port);
int agent_bpf_slot_mode(struct agent *a, uint32_t slot,
			const struct fivc_flow_key *key, uint32_t mode);
void agent_bpf_flow_del(struct agent *a, const struct fivc_flow_key *key);
/* The slot's word of slot_sw (bpf_abi.h), shared with sk_msg. */
uint64_t *agent_bpf_slot_sw(struct agent *a, uint32_t slot);
uint64_t agent_bpf_slot_sent(struct agent *a, uint32_t slot);
void agent_bpf_slot_read(struct agent *a, uint32_t slot, uint64_t n);
void agent_bpf_slot_injected(struct agent *a, uint32_t slot, uint64_t n);
void agent_bpf_ingress_window(struct agent *a, uint32_t bytes);
int agent_bpf_slot_reuse(struct agent *a, uint32_t slot);
void agent_bpf_app_release(struct agent *a, const struct fivc_flow_key *key);
bool agent_bpf_app_present(struct agent *a, const struct fivc_flow_key *key);
int agent_bpf_rmem_probe(struct agent *a, struct fivc_rmem_probe *p);
uint32_t agent_bpf_reap_holds(struct agent *a, uint64_t active_ns,
			      uint64_t passive_ns);
void agent_bpf_uid_limits(struct agent *a, uint32_t holds, uint32_t flows);
int agent_bpf_stats(struct agent *a, uint64_t out[FIVC_STAT__MAX]);
/* One of them (enum fivc_stat): 0 or -errno. */
int agent_bpf_stat(struct agent *a, uint32_t stat, uint64_t *out);
int agent_bpf_free_slot_pop(struct agent *a, uint32_t *slot);
/* End of stream delivered: let later FINs pass, and clear held state. */
int agent_bpf_fin_ok(struct agent *a, const struct fivc_flow_key *key, bool ok);
int agent_bpf_held_fin_take(struct agent *a, const struct fivc_flow_key *key,
			    struct fivc_held_fin *out);

/* Our tc filters' handle (priority 1), ingress and egress. */
#define AGENT_TC_HANDLE 0xf1c0

/* agent/leftover.c: what a killed previous agent left, cleared at start */
void leftover_flows_reset(struct agent *a, const char *pin_dir);
void leftover_tc_remove(void);

/* agent/fin.c */
/* The raw sockets held FINs are re-sent through: open, close. */
int agent_fin_init(void);
void agent_fin_exit(void);
int agent_fin_resend(struct agent *a, const struct fivc_flow_key *k);
/* An RST from @from:@sport to @to:@dport at @seq (addresses as in keys). */
int agent_raw_rst(const uint8_t from[16], uint16_t sport, const uint8_t to[16],
		  uint16_t dport, uint32_t seq);
/*
 * A pure ACK, the same way, at @seq acknowledging @ack, with our option
 * {@domid, @nonce}: sockops on the app socket takes it as a write-space
 * poke (bpf/sockops.bpf.c, on_poke).
 */
int agent_raw_poke(const uint8_t from[16], uint16_t sport, const uint8_t to[16],
		   uint16_t dport, uint32_t seq, uint32_t ack, uint32_t domid,
		   uint32_t nonce);

/* agent/slots.c: the pool of loopback pairs */
int slots_init(struct agent *a);
void slots_fill(struct agent *a);
/* The pool full (or at max_tunnels) at the last fill, none in handshake. */
bool slots_settled(void);
void slots_release(struct agent *a, uint32_t slot, int fd_x, int fd_y);
void slots_recycle(struct agent *a, uint32_t slot, int fd_x, int fd_y,
		   uint64_t y_read);
int slots_take(struct agent *a, uint32_t slot, int *fd_x, int *fd_y,
	       uint64_t *y_read);
/* agent/slot_clean.c */
bool slot_pair_clean(int fd_x, int fd_y, uint64_t y_read);
void slots_fini(struct agent *a);
void slots_drain(struct agent *a);

/* agent/guard.c: a child that holds every X, for apps of a killed agent */
int guard_start(struct agent *a);
int guard_add(struct agent *a, int fd_x);
void guard_stop(struct agent *a);

/* agent/sockdiag.c: the app socket, seen through sock_diag */
int agent_sock_destroy(struct agent *a, const struct fivc_flow_key *k,
		       uint64_t cookie);
int agent_sock_rmem(struct agent *a, const struct fivc_flow_key *k,
		    uint64_t cookie, uint32_t *rmem);

/* agent/control.c: the status socket */
int control_path(const struct agent_config *c, char *buf, size_t len);
int control_init(struct agent *a);
void control_fini(struct agent *a);

/* agent/addr.c: printing and parsing 16-byte (IPv4-mapped) addresses */
void addr_format(const uint8_t a[16], char *buf, size_t len);
int addr_parse_prefix(const char *s, struct fivc_peer_key *k);
int addr_parse_prefixes(const char *s, struct fivc_peer_key *out,
			unsigned int max);
/* A listen address, "A.B.C.D:PORT" or "[V6]:PORT"; @ss may be NULL. */
struct sockaddr_storage;
int addr_parse_listen(const char *s, struct sockaddr_storage *ss,
		      unsigned int *len);

/* The subcommands (agent/cmd_*.c) */
int cmd_agent(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_peer(int argc, char **argv);

/* agent/reload.c: SIGHUP reload; says which keys need a restart */
void agent_config_apply(struct agent *a, const struct agent_config *n);

/* agent/control.c: the name of a BPF stat in status and metrics */
const char *agent_stat_name(unsigned int i);

/* agent/notify.c: sd_notify (a no-op outside a Type=notify unit) */
void agent_notify_ready(struct agent *a);
void agent_notify_reloading(void);
void agent_notify_tick(struct agent *a);

/* agent/metrics.c: Prometheus text on cfg.metrics_listen, if set */
int metrics_init(struct agent *a);
void metrics_fini(struct agent *a);

/* agent/coresident.c: peers from dom0's list (coresident = xenstore) */
struct agent_coresident;
int coresident_init(struct agent *a);
/* A link went up or down (xen): redo the peers map. */
void coresident_changed(struct agent *a);
void coresident_fini(struct agent *a);

/* agent/cmd_dom0.c: dom0's list in xenstore (coresident.h) */
int cmd_dom0(int argc, char **argv);

/* agent/ingress.c, agent/hold_age.c, agent/meminfo.c */
uint32_t ingress_share(const struct agent *a);
void ingress_tick(struct agent *a);
bool hold_stalled(const struct fivc_flow *hold, uint64_t now,
		  uint64_t active_ns, uint64_t passive_ns);
unsigned long long mem_total_kb(void);

#endif /* FASTIVC_AGENT_H */
