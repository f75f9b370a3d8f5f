// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The control socket, <run_dir>/<instance>.sock (root only): one request
 * line ("status" or "status json"), one reply, then close, all within a
 * deadline (clients.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "flow.h"
#include "ringcache.h"
#include "clients.h"
#include "fastivc/log.h"
#include "park.h"

static const char *const stat_names[FIVC_STAT__MAX] = {
	[FIVC_STAT_STEERED] = "steered",
	[FIVC_STAT_NOT_PEER] = "not_peer",
	[FIVC_STAT_NO_OPTION] = "no_option",
	[FIVC_STAT_BAD_OPTION] = "bad_option",
	[FIVC_STAT_NO_SLOT] = "no_slot",
	[FIVC_STAT_FLOWS_FULL] = "flows_full",
	[FIVC_STAT_SOCKHASH_FULL] = "sockhash_full",
	[FIVC_STAT_EVENT_LOST] = "event_lost",
	[FIVC_STAT_MSG_REDIRECT] = "msg_redirect",
	[FIVC_STAT_MSG_PASS] = "msg_pass",
	[FIVC_STAT_INJECT] = "inject",
	[FIVC_STAT_INJECT_FAIL] = "inject_fail",
	[FIVC_STAT_FIN_HELD] = "fin_held",
	[FIVC_STAT_FIN_DATA] = "fin_data",
	[FIVC_STAT_ACK_HELD] = "ack_held",
	[FIVC_STAT_CANCELLED] = "cancelled",
	[FIVC_STAT_ORPHAN_RST] = "orphan_rst",
	[FIVC_STAT_ORPHAN_DROP] = "orphan_drop",
	[FIVC_STAT_FIN_EARLY] = "fin_early",
	[FIVC_STAT_UID_LIMIT] = "uid_limit",
	[FIVC_STAT_RST_AFTER_FIN] = "rst_after_fin",
	[FIVC_STAT_VIA_X] = "via_x",
	[FIVC_STAT_OPT_RCVLOWAT] = "opt_rcvlowat",
	[FIVC_STAT_OPT_DEFER] = "opt_defer_accept",
	[FIVC_STAT_OPT_LATE] = "opt_late",
	[FIVC_STAT_LISTEN_FULL] = "listen_opts_full",
	[FIVC_STAT_LISTEN_NONE] = "listener_unknown",
	[FIVC_STAT_SERVICE_DNAT] = "service_dnat",
	[FIVC_STAT_PORT_DNAT] = "port_dnat",
	[FIVC_STAT_SERVICE_NO_DNAT] = "service_no_dnat",
	[FIVC_STAT_SERVICE_NETNS] = "service_other_netns",
	[FIVC_STAT_NAT_FULL] = "nat_full",
	[FIVC_STAT_POKE_TAKEN] = "pokes_taken",
	[FIVC_STAT_SPLICE_MARKED] = "splice_marked",
	[FIVC_STAT_OPT_SPLICE] = "opt_splice",
};

const char *agent_stat_name(unsigned int i)
{
	return i < FIVC_STAT__MAX && stat_names[i] ? stat_names[i] : "unnamed";
}

static const char *const state_names[] = {
	[FLOW_PENDING] = "pending", [FLOW_TUNNEL] = "tunnel",
	[FLOW_FALLBACK] = "tcp",    [FLOW_RELAY] = "relay",
	[FLOW_FAILED] = "failed",   [FLOW_DONE] = "done",
};

const char *flow_state_name(enum flow_state s)
{
	return s <= FLOW_DONE ? state_names[s] : "unknown";
}

int control_path(const struct agent_config *c, char *buf, size_t len)
{
	if (snprintf(buf, len, "%s/%s.sock", c->run_dir, c->instance) >=
	    (int)len)
		return -ENAMETOOLONG;
	return 0;
}

/* The latest flows that fell back to plain TCP, newest first. */
static void print_fallbacks(struct agent *a, FILE *o, bool json)
{
	uint32_t n =
		a->n_fallbacks < FALLBACK_RECS ? a->n_fallbacks : FALLBACK_RECS;
	uint64_t now = agent_now_ns();

	if (json)
		fprintf(o, "],\"fallbacks\":[");
	else if (n)
		fprintf(o, "fell back to plain TCP (latest %u):\n", n);
	for (uint32_t i = 0; i < n; i++) {
		const struct fallback_rec *r =
			&a->fallbacks[(a->n_fallbacks - 1 - i) % FALLBACK_RECS];
		char l[INET6_ADDRSTRLEN], rem[INET6_ADDRSTRLEN];
		double age = (double)(now - r->when_ns) / 1e9;

		addr_format(r->key.laddr, l, sizeof(l));
		addr_format(r->key.raddr, rem, sizeof(rem));
		if (json)
			fprintf(o,
				"%s{\"local\":\"%s\",\"lport\":%u,"
				"\"remote\":\"%s\",\"rport\":%u,"
				"\"path\":\"tcp\",\"reason\":\"%s\","
				"\"age_s\":%.1f}",
				i ? "," : "", l, r->key.lport, rem,
				r->key.rport, r->reason, age);
		else
			fprintf(o, "  %s:%u -> %s:%u  tcp  %.1f s ago  %s\n", l,
				r->key.lport, rem, r->key.rport, age,
				r->reason);
	}
	if (json)
		fprintf(o, "]");
}

/* The backend and, for xen, what it holds and each link's state. */
static void print_backend(struct agent *a, FILE *o, bool json)
{
	const struct fivc_backend_usage *u = &a->be->usage;
	bool xen = a->be->kind == FIVC_BACKEND_XEN;
	const struct peer_link *l;

	if (json) {
		fprintf(o,
			"\"backend\":{\"kind\":\"%s\",\"pages_granted\":%llu,"
			"\"pages_mapped\":%llu,\"event_channels\":%llu},"
			"\"links\":[",
			xen ? "xen" : "local",
			(unsigned long long)u->pages_granted,
			(unsigned long long)u->pages_mapped,
			(unsigned long long)u->evchs);
		for (l = a->links; l; l = l->next)
			fprintf(o, "%s{\"domid\":%u,\"up\":%s}",
				l == a->links ? "" : ",", l->domid,
				!xen || xlink_up(a, l->domid) ? "true"
							      : "false");
		fprintf(o, "]");
		return;
	}
	fprintf(o, "backend %s", xen ? "xen" : "local");
	if (xen)
		fprintf(o,
			": %llu pages granted, %llu mapped, %llu event "
			"channels",
			(unsigned long long)u->pages_granted,
			(unsigned long long)u->pages_mapped,
			(unsigned long long)u->evchs);
	fprintf(o, "; links to domains:");
	for (l = a->links; l; l = l->next)
		fprintf(o, " %u%s", l->domid,
			!xen || xlink_up(a, l->domid) ? "" : " (setting up)");
	fprintf(o, "\n");
}

/* Listeners opened before the agent (listen_adopt.c). */
static void print_listeners(struct agent *a, FILE *o, bool json)
{
	const struct agent_counters *c = &a->ctr;
	const char *why = c->listeners_reason ? c->listeners_reason : "";

	if (json)
		fprintf(o,
			"\"listeners\":{\"adopted\":%llu,"
			"\"not_adopted\":%llu,\"reason\":\"%s\"},",
			(unsigned long long)c->listeners_adopted,
			(unsigned long long)c->listeners_not_adopted, why);
	else
		fprintf(o,
			"listeners opened before the agent: adopted %llu, "
			"not adopted %llu%s%s\n",
			(unsigned long long)c->listeners_adopted,
			(unsigned long long)c->listeners_not_adopted,
			*why ? ": " : "", why);
}

/* Clients of this socket and /metrics dropped, by cause (clients.c). */
static void print_drops(struct agent *a, FILE *o, bool json)
{
	const struct client_drops *d[] = {&a->ctr.metrics_dropped,
					  &a->ctr.control_dropped};
	static const char *const name[] = {"metrics", "control"};

	for (int i = 0; i < 2; i++) {
		unsigned long long dl = d[i]->deadline, many = d[i]->too_many,
				   large = d[i]->too_large;

		if (json)
			fprintf(o,
				"\"%s_clients_dropped_deadline\":%llu,"
				"\"%s_clients_dropped_too_many\":%llu,"
				"\"%s_clients_dropped_too_large\":%llu,",
				name[i], dl, name[i], many, name[i], large);
		else
			fprintf(o,
				"%s%s deadline %llu too_many %llu too_large "
				"%llu",
				i ? "; " : "clients dropped: ", name[i], dl,
				many, large);
	}
	if (!json)
		fprintf(o, "\n");
}

static void print_status(struct agent *a, FILE *o, bool json)
{
	uint64_t st[FIVC_STAT__MAX];
	const struct agent_counters *c = &a->ctr;
	bool first = true;

	agent_bpf_stats(a, st);
	if (json) {
		fprintf(o,
			"{\"schema_version\":1,\"version\":1,"
			"\"instance\":\"%s\",\"domid\":%u,"
			"\"pid\":%d,\"tunnels\":%u,\"slots_free\":%u,",
			a->cfg.instance, a->cfg.domid, (int)getpid(),
			a->n_tunnels, a->slots_free);
		print_listeners(a, o, true);
		fprintf(o, "\"counters\":{");
		print_drops(a, o, true);
		fprintf(o,
			"\"flows_steered\":%llu,"
			"\"flows_tunneled\":%llu,\"flows_failed\":%llu,"
			"\"flows_done\":%llu,\"flows_reset\":%llu,"
			"\"resets_rst\":%llu,\"resets_abort\":%llu,"
			"\"flows_tcp\":%llu,\"flows_relayed\":%llu,"
			"\"creates_refused\":%llu,"
			"\"creates_rejected_by_peer\":%llu,"
			"\"tunnel_bytes_tx\":%llu,\"tunnel_bytes_rx\":%llu,"
			"\"relay_bytes_tx\":%llu,\"relay_bytes_rx\":%llu,"
			"\"ring_full\":%llu,\"ring_waits\":%llu,"
			"\"kicks_sent\":%llu,\"kicks_taken\":%llu,"
			"\"inject_nomem\":%llu,"
			"\"pokes\":%llu,"
			"\"rmem_probes\":%llu,"
			"\"flows_leftover\":%llu,"
			"\"flows_no_shm\":%llu,\"pool_shm_short\":%llu,"
			"\"slot_impostors\":%llu,\"holds_reaped\":%llu,"
			"\"slots_reused\":%llu,\"slots_eof_shut\":%llu,"
			"\"ingress_closed\":%llu,"
			"\"link_hello_timeouts\":%llu,"
			"\"link_frame_timeouts\":%llu,"
			"\"parked_refused\":%llu,\"parked_expired\":%llu,"
			"\"link_out_overflows\":%llu,"
			"\"rings_reused\":%llu,\"peer_rings_reused\":%llu,"
			"\"rings_evicted\":%llu,\"ring_refused\":%llu,"
			"\"shm_mem_short\":%llu,\"rings_cached\":%llu,"
			"\"early_tx\":%llu,\"early_rx\":%llu,"
			"\"early_relayed\":%llu,"
			"\"poll_spins\":%llu,\"poll_found\":%llu,"
			"\"poll_yields\":%llu,\"poll_spin_us\":%llu},"
			"\"parked\":%u,\"bpf\":{",
			(unsigned long long)c->flows_steered,
			(unsigned long long)c->flows_tunneled,
			(unsigned long long)c->flows_failed,
			(unsigned long long)c->flows_done,
			(unsigned long long)c->flows_reset,
			(unsigned long long)c->resets_rst,
			(unsigned long long)c->resets_abort,
			(unsigned long long)c->flows_tcp,
			(unsigned long long)c->flows_relayed,
			(unsigned long long)c->creates_refused,
			(unsigned long long)c->creates_rejected_by_peer,
			(unsigned long long)c->bytes_tx,
			(unsigned long long)c->bytes_rx,
			(unsigned long long)c->relay_bytes_tx,
			(unsigned long long)c->relay_bytes_rx,
			(unsigned long long)c->ring_full,
			(unsigned long long)c->ring_waits,
			(unsigned long long)flows_kicks_sent(a),
			(unsigned long long)c->kicks_taken,
			(unsigned long long)c->inject_nomem,
			(unsigned long long)c->pokes,
			(unsigned long long)c->rmem_probes,
			(unsigned long long)c->flows_leftover,
			(unsigned long long)c->flows_no_shm,
			(unsigned long long)c->pool_shm_short,
			(unsigned long long)c->slot_impostors,
			(unsigned long long)c->holds_reaped,
			(unsigned long long)c->slots_reused,
			(unsigned long long)c->slots_eof_shut,
			(unsigned long long)c->ingress_closed,
			(unsigned long long)c->link_hello_timeouts,
			(unsigned long long)c->link_frame_timeouts,
			(unsigned long long)c->parked_refused,
			(unsigned long long)c->parked_expired,
			(unsigned long long)c->link_out_overflows,
			(unsigned long long)c->rings_reused,
			(unsigned long long)c->peer_rings_reused,
			(unsigned long long)c->rings_evicted,
			(unsigned long long)c->ring_refused,
			(unsigned long long)c->shm_mem_short,
			(unsigned long long)ring_cached(a),
			(unsigned long long)c->early_tx,
			(unsigned long long)c->early_rx,
			(unsigned long long)c->early_relayed,
			(unsigned long long)a->poll.spins,
			(unsigned long long)a->poll.hits,
			(unsigned long long)a->poll.yields,
			(unsigned long long)(a->poll.spin_ns / 1000),
			park_count(a));
		for (int i = 0; i < FIVC_STAT__MAX; i++)
			fprintf(o, "%s\"%s\":%llu", i ? "," : "", stat_names[i],
				(unsigned long long)st[i]);
		fprintf(o, "},");
		print_backend(a, o, true);
		fprintf(o, ",\"flows\":[");
	} else {
		fprintf(o,
			"instance %s domid %u pid %d: %u tunnels, %u free "
			"slots (%llu reused, %llu ended by shutdown)\n",
			a->cfg.instance, a->cfg.domid, (int)getpid(),
			a->n_tunnels, a->slots_free,
			(unsigned long long)c->slots_reused,
			(unsigned long long)c->slots_eof_shut);
		fprintf(o,
			"flows: steered %llu tunneled %llu tcp %llu relayed "
			"%llu "
			"failed %llu reset %llu done %llu; tunnel bytes tx "
			"%llu "
			"rx %llu\n",
			(unsigned long long)c->flows_steered,
			(unsigned long long)c->flows_tunneled,
			(unsigned long long)c->flows_tcp,
			(unsigned long long)c->flows_relayed,
			(unsigned long long)c->flows_failed,
			(unsigned long long)c->flows_reset,
			(unsigned long long)c->flows_done,
			(unsigned long long)c->bytes_tx,
			(unsigned long long)c->bytes_rx);
		print_backend(a, o, false);
		print_drops(a, o, false);
		print_listeners(a, o, false);
		fprintf(o,
			"links: hello timeouts %llu frame timeouts %llu "
			"out overflows %llu; parked %u refused %llu expired "
			"%llu\n",
			(unsigned long long)c->link_hello_timeouts,
			(unsigned long long)c->link_frame_timeouts,
			(unsigned long long)c->link_out_overflows,
			park_count(a), (unsigned long long)c->parked_refused,
			(unsigned long long)c->parked_expired);
		fprintf(o,
			"local: slot impostors %llu, stalled handshakes %llu\n",
			(unsigned long long)c->slot_impostors,
			(unsigned long long)c->holds_reaped);
		fprintf(o,
			"polling: window %llu us (max %u), %llu spins found "
			"work %llu times, gave way %llu times, in %llu ms\n",
			(unsigned long long)(a->poll.window_ns / 1000),
			a->cfg.poll_us, (unsigned long long)a->poll.spins,
			(unsigned long long)a->poll.hits,
			(unsigned long long)a->poll.yields,
			(unsigned long long)(a->poll.spin_ns / 1000000));
		fprintf(o, "bpf:");
		for (int i = 0; i < FIVC_STAT__MAX; i++)
			fprintf(o, " %s %llu", stat_names[i],
				(unsigned long long)st[i]);
		fprintf(o, "\n%-6s %-44s %-7s %-8s %12s %12s  %s\n", "slot",
			"local -> remote", "dir", "path", "bytes_tx",
			"bytes_rx", "reason");
	}
	for (uint32_t s = 0; s < a->next_slot; s++) {
		const struct flow *f = a->flows[s];
		char l[INET6_ADDRSTRLEN], r[INET6_ADDRSTRLEN];
		char wl[INET6_ADDRSTRLEN], wr[INET6_ADDRSTRLEN], tuple[192];

		if (!f)
			continue;
		addr_format(f->key.laddr, l, sizeof(l));
		addr_format(f->key.raddr, r, sizeof(r));
		/* As on the wire: differs where a DNAT rewrote the socket's. */
		addr_format(f->wire.laddr, wl, sizeof(wl));
		addr_format(f->wire.raddr, wr, sizeof(wr));
		if (json) {
			fprintf(o,
				"%s{\"slot\":%u,\"local\":\"%s\",\"lport\":%u,"
				"\"remote\":\"%s\",\"rport\":%u,"
				"\"wire\":\"%s:%u %s:%u\","
				"\"dir\":\"%s\",\"path\":\"%s\","
				"\"peer_domid\":%u,\"bytes_tx\":%llu,"
				"\"bytes_rx\":%llu,\"reason\":\"%s\"}",
				first ? "" : ",", f->slot, l, f->key.lport, r,
				f->key.rport, wl, f->wire.lport, wr,
				f->wire.rport,
				f->dir == FIVC_FLOW_ACTIVE ? "active"
							   : "passive",
				state_names[f->state], f->peer_domid,
				(unsigned long long)f->bytes_tx,
				(unsigned long long)f->bytes_rx,
				f->reason ? f->reason : "");
			first = false;
			continue;
		}
		snprintf(tuple, sizeof(tuple), "%s:%u -> %s:%u", l,
			 f->key.lport, r, f->key.rport);
		if (memcmp(&f->wire, &f->key, sizeof(f->key)))
			snprintf(tuple + strlen(tuple),
				 sizeof(tuple) - strlen(tuple),
				 " (wire %s:%u -> %s:%u)", wl, f->wire.lport,
				 wr, f->wire.rport);
		fprintf(o, "%-6u %-44s %-7s %-8s %12llu %12llu  %s\n", f->slot,
			tuple,
			f->dir == FIVC_FLOW_ACTIVE ? "active" : "passive",
			state_names[f->state], (unsigned long long)f->bytes_tx,
			(unsigned long long)f->bytes_rx,
			f->reason ? f->reason : "");
	}
	print_fallbacks(a, o, json);
	if (json)
		fprintf(o, "}\n");
}

/* One line; a client that shuts its write side is answered too. */
static bool request_whole(const char *req, size_t len)
{
	return memchr(req, '\n', len);
}

static void answer(struct agent *a, const char *req, FILE *o)
{
	if (!strncmp(req, "status json", 11))
		print_status(a, o, true);
	else if (!strncmp(req, "status", 6))
		print_status(a, o, false);
	else
		fprintf(o, "error: unknown request\n");
}

static struct client_set control_clients = {
	.name = "control",
	.max_req = 64,
	.whole = request_whole,
	.answer = answer,
};

int control_init(struct agent *a)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd, err;

	if (control_path(&a->cfg, sun.sun_path, sizeof(sun.sun_path)))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	unlink(sun.sun_path); /* stale: the pid lock proved no agent runs */
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    chmod(sun.sun_path, 0600) || listen(fd, 16)) {
		err = -errno;
		pr_err("Failed to listen on %s: %s", sun.sun_path,
		       strerror(errno));
		close(fd);
		return err;
	}
	control_clients.drops = &a->ctr.control_dropped;
	return clients_listen(a, &control_clients, fd);
}

void control_fini(struct agent *a)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];

	if (!control_clients.w.fn)
		return;
	clients_close(a, &control_clients);
	if (!control_path(&a->cfg, path, sizeof(path)))
		unlink(path);
}
