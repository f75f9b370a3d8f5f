// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Prometheus text format (version 0.0.4) on cfg.metrics_listen, served
 * from the agent's epoll loop: one short request, one reply, close, all
 * within a deadline (clients.c). The values are the counters `fastivc
 * status` shows; docs/operations.md lists every metric. Off unless
 * metrics_listen is set: the endpoint has no authentication, so bind it to
 * loopback or a node-local address.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "flow.h"
#include "ringcache.h"
#include "clients.h"
#include "fastivc/log.h"
#include "park.h"

#define MAX_REASONS 16

/* A label value as the text format wants it: \\, \" and \n escaped. */
static void put_label(FILE *o, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(o, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", o);
		else
			fputc(*v, o);
	}
}

static void head(FILE *o, const char *name, const char *type, const char *help)
{
	fprintf(o, "# HELP fastivc_%s %s\n# TYPE fastivc_%s %s\n", name, help,
		name, type);
}

static void one(FILE *o, const char *name, const char *label, const char *value,
		unsigned long long v)
{
	if (label)
		fprintf(o, "fastivc_%s{%s=\"%s\"} %llu\n", name, label, value,
			v);
	else
		fprintf(o, "fastivc_%s %llu\n", name, v);
}

static void drops(FILE *o, const char *listener, const struct client_drops *d)
{
	static const char *const cause[] = {"deadline", "too_many",
					    "too_large"};
	const uint64_t n[] = {d->deadline, d->too_many, d->too_large};

	for (int i = 0; i < 3; i++)
		fprintf(o,
			"fastivc_clients_dropped_total{listener=\"%s\","
			"cause=\"%s\"} %llu\n",
			listener, cause[i], (unsigned long long)n[i]);
}

static void write_metrics(struct agent *a, FILE *o)
{
	const struct agent_counters *c = &a->ctr;
	const char *reasons[MAX_REASONS];
	uint32_t by_reason[MAX_REASONS] = {}, n_reasons = 0;
	uint32_t by_path[FLOW_DONE + 1] = {};
	uint64_t st[FIVC_STAT__MAX] = {};

	agent_bpf_stats(a, st);
	for (uint32_t s = 0; s < a->next_slot; s++) {
		const struct flow *f = a->flows[s];
		uint32_t r;

		if (!f || (unsigned int)f->state > FLOW_DONE)
			continue;
		by_path[f->state]++;
		if (f->state != FLOW_FAILED)
			continue;
		/* Reasons are named constants: compare them by identity. */
		for (r = 0; r < n_reasons && reasons[r] != f->reason; r++)
			;
		if (r == n_reasons && n_reasons < MAX_REASONS)
			reasons[n_reasons++] = f->reason;
		if (r < n_reasons)
			by_reason[r]++;
	}

	head(o, "info", "gauge", "The agent: instance and domain id.");
	fprintf(o, "fastivc_info{instance=\"");
	put_label(o, a->cfg.instance);
	fprintf(o, "\",domid=\"%u\"} 1\n", a->cfg.domid);
	head(o, "tunnels", "gauge", "Tunnels set up now.");
	one(o, "tunnels", NULL, NULL, a->n_tunnels);
	head(o, "slots_free", "gauge", "Loopback slots ready for new flows.");
	one(o, "slots_free", NULL, NULL, a->slots_free);
	head(o, "flows", "gauge", "Flows the agent holds now, by path.");
	for (int p = 0; p <= FLOW_DONE; p++)
		one(o, "flows", "path", flow_state_name(p), by_path[p]);
	head(o, "flows_failed_now", "gauge",
	     "Failed flows held until their app closes, by reason.");
	for (uint32_t r = 0; r < n_reasons; r++) {
		fprintf(o, "fastivc_flows_failed_now{reason=\"");
		put_label(o, reasons[r] ? reasons[r] : "unknown");
		fprintf(o, "\"} %u\n", by_reason[r]);
	}
	head(o, "flows_total", "counter", "Flows by what happened to them.");
	one(o, "flows_total", "event", "steered", c->flows_steered);
	one(o, "flows_total", "event", "tunneled", c->flows_tunneled);
	one(o, "flows_total", "event", "failed", c->flows_failed);
	one(o, "flows_total", "event", "done", c->flows_done);
	one(o, "flows_total", "event", "reset", c->flows_reset);
	one(o, "flows_total", "event", "leftover_reset", c->flows_leftover);
	head(o, "resets_total", "counter",
	     "App connections the agent reset, by how the app heard it.");
	one(o, "resets_total", "by", "rst", c->resets_rst);
	one(o, "resets_total", "by", "sock_destroy", c->resets_abort);
	head(o, "tunnel_bytes_total", "counter",
	     "Bytes carried through tunnels, by direction.");
	one(o, "tunnel_bytes_total", "direction", "tx", c->bytes_tx);
	one(o, "tunnel_bytes_total", "direction", "rx", c->bytes_rx);
	head(o, "relay_bytes_total", "counter",
	     "Bytes carried through relays (no tunnel), by direction.");
	one(o, "relay_bytes_total", "direction", "tx", c->relay_bytes_tx);
	one(o, "relay_bytes_total", "direction", "rx", c->relay_bytes_rx);
	head(o, "fallbacks_total", "counter",
	     "Connections left on (or put back to) plain TCP, by reason.");
	one(o, "fallbacks_total", "reason", "not_peer", st[FIVC_STAT_NOT_PEER]);
	one(o, "fallbacks_total", "reason", "no_option",
	    st[FIVC_STAT_NO_OPTION]);
	one(o, "fallbacks_total", "reason", "bad_option",
	    st[FIVC_STAT_BAD_OPTION]);
	one(o, "fallbacks_total", "reason", "no_slot", st[FIVC_STAT_NO_SLOT]);
	one(o, "fallbacks_total", "reason", "flows_full",
	    st[FIVC_STAT_FLOWS_FULL]);
	one(o, "fallbacks_total", "reason", "sockhash_full",
	    st[FIVC_STAT_SOCKHASH_FULL]);
	one(o, "fallbacks_total", "reason", "no_shared_memory",
	    c->flows_no_shm);
	one(o, "fallbacks_total", "reason", "no_tunnel_tcp", c->flows_tcp);
	one(o, "fallbacks_total", "reason", "no_tunnel_relayed",
	    c->flows_relayed);
	one(o, "fallbacks_total", "reason", "tunnel_failed", c->flows_failed);
	one(o, "fallbacks_total", "reason", "service_no_dnat",
	    st[FIVC_STAT_SERVICE_NO_DNAT]);
	one(o, "fallbacks_total", "reason", "service_other_netns",
	    st[FIVC_STAT_SERVICE_NETNS]);
	one(o, "fallbacks_total", "reason", "nat_full", st[FIVC_STAT_NAT_FULL]);
	head(o, "dnat_flows_total", "counter",
	     "Connections steered through a DNAT, by the side that saw it.");
	one(o, "dnat_flows_total", "side", "service",
	    st[FIVC_STAT_SERVICE_DNAT]);
	one(o, "dnat_flows_total", "side", "port", st[FIVC_STAT_PORT_DNAT]);
	head(o, "tunnel_errors_total", "counter",
	     "Tunnel set-up and data path errors, by kind.");
	one(o, "tunnel_errors_total", "kind", "create_refused",
	    c->creates_refused);
	one(o, "tunnel_errors_total", "kind", "create_rejected_by_peer",
	    c->creates_rejected_by_peer);
	one(o, "tunnel_errors_total", "kind", "inject_fail",
	    st[FIVC_STAT_INJECT_FAIL]);
	one(o, "tunnel_errors_total", "kind", "event_lost",
	    st[FIVC_STAT_EVENT_LOST]);
	head(o, "ring_full_total", "counter",
	     "Times a tunnel's ring had no free channel for the sender.");
	one(o, "ring_full_total", NULL, NULL, c->ring_full);
	head(o, "ring_waits_total", "counter",
	     "Times the agent slept waiting for data on a peer's ring.");
	one(o, "ring_waits_total", NULL, NULL, c->ring_waits);
	head(o, "ring_kicks_total", "counter",
	     "Tunnels' event channel notifications, by direction.");
	one(o, "ring_kicks_total", "dir", "sent", flows_kicks_sent(a));
	one(o, "ring_kicks_total", "dir", "taken", c->kicks_taken);
	head(o, "poll_spin_seconds_total", "counter",
	     "Time the agent spent polling rings instead of sleeping.");
	fprintf(o, "fastivc_poll_spin_seconds_total %.6f\n",
		(double)a->poll.spin_ns / 1e9);
	head(o, "slots_reused_total", "counter",
	     "Slot pairs that served another flow after a clean end.");
	one(o, "slots_reused_total", NULL, NULL, c->slots_reused);
	head(o, "slots_eof_shut_total", "counter",
	     "App FINs whose end was X's shutdown, not the count (no reuse).");
	one(o, "slots_eof_shut_total", NULL, NULL, c->slots_eof_shut);
	head(o, "ingress_closed_total", "counter",
	     "Times the host's TCP memory closed sk_msg's ingress route.");
	one(o, "ingress_closed_total", NULL, NULL, c->ingress_closed);
	head(o, "pokes_total", "counter",
	     "Write-space pokes: ACKs that wake a steered app's writer.");
	one(o, "pokes_total", NULL, NULL, c->pokes);
	head(o, "rmem_probes_total", "counter",
	     "Runs of the probe that reads other namespaces' unread bytes.");
	one(o, "rmem_probes_total", NULL, NULL, c->rmem_probes);
	head(o, "listeners_adopted", "gauge",
	     "Listeners opened before the agent, prepared for the option.");
	one(o, "listeners_adopted", NULL, NULL, c->listeners_adopted);
	head(o, "listeners_not_adopted", "gauge",
	     "Listeners opened before the agent left on plain TCP, by reason.");
	one(o, "listeners_not_adopted", "reason",
	    c->listeners_reason ? c->listeners_reason : "none",
	    c->listeners_not_adopted);
	head(o, "local_abuse_total", "counter",
	     "What local processes tried and the agent bounded, by kind.");
	one(o, "local_abuse_total", "kind", "slot_impostor", c->slot_impostors);
	one(o, "local_abuse_total", "kind", "hold_reaped", c->holds_reaped);
	one(o, "local_abuse_total", "kind", "uid_limit",
	    st[FIVC_STAT_UID_LIMIT]);
	head(o, "link_bounds_total", "counter",
	     "Peers cut off at a link bound (docs/security.md), by bound.");
	one(o, "link_bounds_total", "bound", "hello_timeout",
	    c->link_hello_timeouts);
	one(o, "link_bounds_total", "bound", "frame_timeout",
	    c->link_frame_timeouts);
	one(o, "link_bounds_total", "bound", "parked_refused",
	    c->parked_refused);
	one(o, "link_bounds_total", "bound", "parked_expired",
	    c->parked_expired);
	one(o, "link_bounds_total", "bound", "out_overflow",
	    c->link_out_overflows);
	head(o, "rings_reused_total", "counter",
	     "Rings attached again from the caches instead of set up anew.");
	one(o, "rings_reused_total", "owner", "ours", c->rings_reused);
	one(o, "rings_reused_total", "owner", "peer", c->peer_rings_reused);
	head(o, "early_flows_total", "counter",
	     "Flows that moved bytes before their tunnel was up, by way.");
	one(o, "early_flows_total", "way", "tx", c->early_tx);
	one(o, "early_flows_total", "way", "rx", c->early_rx);
	one(o, "early_flows_total", "way", "relayed", c->early_relayed);
	head(o, "ring_events_total", "counter",
	     "Ring cache and memory bound events, by kind.");
	one(o, "ring_events_total", "kind", "evicted", c->rings_evicted);
	one(o, "ring_events_total", "kind", "refused", c->ring_refused);
	one(o, "ring_events_total", "kind", "mem_short", c->shm_mem_short);
	head(o, "rings_cached", "gauge", "Rings idle in the caches now.");
	one(o, "rings_cached", NULL, NULL, ring_cached(a));
	head(o, "parked_messages", "gauge",
	     "Peer messages waiting for a flow not seen yet.");
	one(o, "parked_messages", NULL, NULL, park_count(a));
	head(o, "bpf_stat_total", "counter",
	     "Every counter of the BPF stats map, by name.");
	for (unsigned int i = 0; i < FIVC_STAT__MAX; i++)
		one(o, "bpf_stat_total", "stat", agent_stat_name(i), st[i]);
	head(o, "clients_dropped_total", "counter",
	     "Control and metrics clients dropped, by listener and cause.");
	drops(o, "metrics", &c->metrics_dropped);
	drops(o, "control", &c->control_dropped);
}

static void reply(FILE *o, const char *status, const char *type,
		  const char *body, size_t len)
{
	fprintf(o,
		"HTTP/1.0 %s\r\nContent-Type: %s\r\n"
		"Content-Length: %zu\r\nConnection: close\r\n\r\n",
		status, type, len);
	fwrite(body, 1, len, o);
}

/* The blank line that ends the request's head. */
static bool request_whole(const char *req, size_t len)
{
	(void)len;
	return strstr(req, "\r\n\r\n") || strstr(req, "\n\n");
}

static void answer(struct agent *a, const char *req, FILE *out)
{
	char *body = NULL;
	size_t len = 0;
	FILE *o;

	if (strncmp(req, "GET ", 4)) {
		reply(out, "405 Method Not Allowed", "text/plain", "GET only\n",
		      9);
		return;
	}
	if (strncmp(req + 4, "/metrics ", 9) && strncmp(req + 4, "/ ", 2)) {
		reply(out, "404 Not Found", "text/plain", "try /metrics\n", 13);
		return;
	}
	o = open_memstream(&body, &len);
	if (!o)
		return;
	write_metrics(a, o);
	if (!fclose(o))
		reply(out, "200 OK", "text/plain; version=0.0.4; charset=utf-8",
		      body, len);
	free(body);
}

/* One request head of 1 KiB at most; clients.c bounds the rest. */
static struct client_set metrics_clients = {
	.name = "metrics",
	.max_req = 1024,
	.whole = request_whole,
	.answer = answer,
};

int metrics_init(struct agent *a)
{
	struct sockaddr_storage ss = {};
	unsigned int len = 0;
	int one = 1, fd, err;

	if (!a->cfg.metrics_listen[0])
		return 0;
	if (addr_parse_listen(a->cfg.metrics_listen, &ss, &len))
		return -EINVAL;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
		    0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) || listen(fd, 16)) {
		err = -errno;
		pr_err("Failed to listen for metrics on %s: %s",
		       a->cfg.metrics_listen, strerror(errno));
		close(fd);
		return err;
	}
	metrics_clients.drops = &a->ctr.metrics_dropped;
	err = clients_listen(a, &metrics_clients, fd);
	if (err)
		return err;
	pr_info("metrics on http://%s/metrics", a->cfg.metrics_listen);
	return 0;
}

void metrics_fini(struct agent *a)
{
	clients_close(a, &metrics_clients);
}
