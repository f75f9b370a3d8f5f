// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The agent's BPF side: load the skeleton, pin its maps under
 * <bpffs>/fastivc/<instance>/ (with BTF, for `bpftool map dump pinned`),
 * attach sockops to the apps' cgroup and sk_msg to the sockhash, and give
 * the rest of the agent typed access to the maps.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <net/if.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "agent.h"
#include "fastivc.skel.h"
#include "fastivc/log.h"
#include "splice_watch.h"

#define MAX_IFACES 16
#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif
#define SLOT_SW_BYTES (FIVC_MAX_SLOTS * sizeof(uint64_t))

struct agent_bpf {
	struct fastivc_bpf *skel;
	struct ring_buffer *rb;
	struct bpf_link *sockops;
	struct bpf_link *sockopt_watch; /* cgroup/setsockopt */
	struct bpf_link *tcp_info;	/* cgroup/getsockopt */
	struct bpf_link *splice_watch;	/* agent/splice_watch.c */
	int cgroup_fd;
	bool skmsg_attached;
	char pin_dir[256];
	uint64_t *slot_sw;	    /* the slot_sw map, mapped: atomics only */
	uint64_t *slot_rd;	    /* the slot_rd map, mapped: ours to write */
	uint64_t *slot_in;	    /* the slot_in map, mapped: ours to write */
	int tc_ifindex[MAX_IFACES]; /* FIN hold attached here */
	int n_tc;
	const struct agent_bpf_events *on; /* where sockops' events go */
};

/* libbpf's own messages, one level below ours. */
/* libbpf's messages, one log line per line (a verifier log has many). */
static int libbpf_print(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	char *text, *line, *save = NULL;

	if (level == LIBBPF_DEBUG && fivc_log_get_level() < FIVC_LOG_DEBUG)
		return 0;
	if (vasprintf(&text, fmt, ap) < 0)
		return 0;
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		fivc_log(level == LIBBPF_WARN ? FIVC_LOG_INFO : FIVC_LOG_DEBUG,
			 "libbpf: %s", line);
	free(text);
	return 0;
}

int agent_pin_dir(const struct agent_config *c, char *buf, size_t len)
{
	if (snprintf(buf, len, "%s/fastivc/%s", c->bpffs, c->instance) >=
	    (int)len)
		return -ENAMETOOLONG;
	return 0;
}

static int check_fs(const char *path, long magic, const char *what)
{
	struct statfs st;

	if (statfs(path, &st)) {
		pr_err("%s: %s", path, strerror(errno));
		return -errno;
	}
	if (st.f_type != magic) {
		pr_err("%s is not %s", path, what);
		return -ENODEV;
	}
	return 0;
}

/* Maps that must outlive one agent run; the rest start empty each time. */
static bool keep_pin(const char *name)
{
	return !strcmp(name, "peers");
}

/* Our network namespace's cookie (Linux 5.14+), or 0. */
static uint64_t own_netns_cookie(void)
{
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len))
		cookie = 0;
	close(fd);
	return cookie;
}

/* The `services` prefixes into their map; 0 or -errno. */
static int services_fill(struct agent *a)
{
	struct fivc_peer_key k[FIVC_MAX_SERVICES];
	int n, fd = bpf_map__fd(a->bpf->skel->maps.services);
	uint32_t one = 1;

	if (!a->cfg.services[0])
		return 0;
	if (!a->bpf->skel->rodata->self_netns)
		pr_warn("services: this kernel has no SO_NETNS_COOKIE (Linux "
			"5.14+): connections to them stay on plain TCP");
	n = addr_parse_prefixes(a->cfg.services, k, FIVC_MAX_SERVICES);
	for (int i = 0; i < n; i++)
		if (bpf_map_update_elem(fd, &k[i], &one, BPF_ANY))
			return -errno;
	pr_info("services: %s, when DNAT'd to a peer", a->cfg.services);
	return n < 0 ? n : 0;
}

static int pin_maps(struct agent_bpf *b)
{
	struct bpf_map *map;
	char path[320];

	if (mkdir(b->pin_dir, 0700) && errno != EEXIST)
		return -errno;
	bpf_object__for_each_map(map, b->skel->obj)
	{
		const char *name = bpf_map__name(map);

		if (strchr(name, '.')) /* .rodata, .bss */
			continue;
		snprintf(path, sizeof(path), "%s/%s", b->pin_dir, name);
		if (!keep_pin(name))
			unlink(path);
		bpf_map__set_pin_path(map, path);
	}
	return 0;
}

/*
 * The maps with one entry per flow get max_flows entries (a small value
 * shows what a full map does: docs/steering.md, "Limits"). The sockhash
 * also holds every slot's two ends, so it cannot fill before them.
 */
static int size_maps(struct fastivc_bpf *s, uint32_t max_flows)
{
	struct bpf_map *per_flow[] = {s->maps.flows, s->maps.held_fins,
				      s->maps.fin_ok, s->maps.fin_sent,
				      s->maps.peer_fin_end};
	int err = bpf_map__set_max_entries(s->maps.socks,
					   max_flows + 2 * FIVC_MAX_SLOTS);

	if (!err) /* both ways */
		err = bpf_map__set_max_entries(s->maps.nat_flows,
					       2 * max_flows);

	for (size_t i = 0; !err && i < sizeof(per_flow) / sizeof(*per_flow);
	     i++)
		err = bpf_map__set_max_entries(per_flow[i], max_flows);
	return err;
}

/* bpf/splice_watch.bpf.c marked a service: once per service. */
static void splice_marked(const struct fivc_event *ev)
{
	bool active = ev->dir == FIVC_FLOW_ACTIVE;

	pr_warn("flow slot %u (port %u -> %u): the app spliced from its "
		"socket, which this kernel cannot do with tunnel bytes; later "
		"connections %s port %u stay on TCP (opt_splice)",
		ev->slot, ev->flow.lport, ev->flow.rport,
		active ? "to" : "to its listener on",
		active ? ev->flow.rport : ev->flow.lport);
}

static int on_event(void *ctx, void *data, size_t len)
{
	struct agent *a = ctx;
	const struct agent_bpf_events *on = a->bpf->on;
	const struct fivc_event *ev = data;

	if (len < sizeof(*ev))
		return 0;
	if (ev->type == FIVC_EV_ESTABLISHED)
		on->established(a, ev);
	else if (ev->type == FIVC_EV_STATE)
		on->state(a, ev);
	else if (ev->type == FIVC_EV_FIN_HELD)
		on->fin_held(a, ev);
	else if (ev->type == FIVC_EV_SPLICE)
		splice_marked(ev);

	return 0;
}

static int tc_attach_point(int ifindex, enum bpf_tc_attach_point where,
			   struct bpf_program *prog)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
			    .attach_point = where);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = AGENT_TC_HANDLE,
			    .priority = 1, .flags = BPF_TC_F_REPLACE);

	opts.prog_fd = bpf_program__fd(prog);
	return bpf_tc_attach(&hook, &opts);
}

static int tc_attach_one(struct agent_bpf *b, int ifindex)
{
	int err;

	DECLARE_LIBBPF_OPTS(bpf_tc_hook, clsact, .ifindex = ifindex,
			    .attach_point = BPF_TC_INGRESS | BPF_TC_EGRESS);

	if (b->n_tc == MAX_IFACES)
		return -E2BIG;
	/* One clsact qdisc serves both points; it may exist already. */
	err = bpf_tc_hook_create(&clsact);
	if (err && err != -EEXIST)
		return err;
	err = tc_attach_point(ifindex, BPF_TC_INGRESS,
			      b->skel->progs.fivc_fin_hold);
	if (!err)
		err = tc_attach_point(ifindex, BPF_TC_EGRESS,
				      b->skel->progs.fivc_fin_seen);
	b->tc_ifindex[b->n_tc++] = ifindex;
	return err;
}

static void tc_detach_all(struct agent_bpf *b)
{
	static const enum bpf_tc_attach_point points[] = {BPF_TC_INGRESS,
							  BPF_TC_EGRESS};

	for (int i = 0; i < b->n_tc; i++) {
		for (int p = 0; p < 2; p++) {
			DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook,
					    .ifindex = b->tc_ifindex[i],
					    .attach_point = points[p]);
			DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts,
					    .handle = AGENT_TC_HANDLE,
					    .priority = 1);

			bpf_tc_detach(&hook, &opts);
		}
	}
	b->n_tc = 0;
}

/* The FIN hold on every interface named in cfg.ifaces, or on all but lo. */
static int tc_attach(struct agent *a)
{
	struct if_nameindex *ifs = if_nameindex(), *i;
	char list[sizeof(a->cfg.ifaces) + 2];
	int err = 0;

	if (!ifs)
		return -errno;
	snprintf(list, sizeof(list), ",%s,", a->cfg.ifaces);
	for (i = ifs; i->if_index && !err; i++) {
		char name[IF_NAMESIZE + 3];

		snprintf(name, sizeof(name), ",%s,", i->if_name);
		if (a->cfg.ifaces[0] ? !strstr(list, name)
				     : !strcmp(i->if_name, "lo"))
			continue;
		err = tc_attach_one(a->bpf, (int)i->if_index);
		if (err)
			pr_err("Failed to attach the FIN hold to %s: %s",
			       i->if_name, strerror(-err));
	}
	if_freenameindex(ifs);
	return err;
}

/*
 * One test run of the rmem probe (bpf/rmem_probe.bpf.c): @p's q[0, n)
 * hold keys of socks and come back holding answers; only they go in and
 * out (most runs ask for one). 0 or -errno.
 */
int agent_bpf_rmem_probe(struct agent *a, struct fivc_rmem_probe *p)
{
	uint32_t len = (uint32_t)(offsetof(struct fivc_rmem_probe, q) +
				  p->n * sizeof(p->q[0]));
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = p, .data_size_in = len,
		    .data_out = p, .data_size_out = len);

	a->ctr.rmem_probes++;
	if (bpf_prog_test_run_opts(
		    bpf_program__fd(a->bpf->skel->progs.fivc_rmem_probe), &o))
		return -errno;
	return o.data_size_out == len ? 0 : -EIO;
}

/* An mmap-able array of one __u64 per slot (slot_sw, ...), mapped. */
static int slot_words_map(struct bpf_map *map, uint64_t **words)
{
	void *p = mmap(NULL, SLOT_SW_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED,
		       bpf_map__fd(map), 0);

	if (p == MAP_FAILED) {
		int err = -errno;

		pr_err("Failed to map %s: %s", bpf_map__name(map),
		       strerror(-err));
		return err;
	}
	*words = p;
	return 0;
}

int agent_bpf_open(struct agent *a, const struct agent_bpf_events *on)
{
	struct agent_bpf *b = calloc(1, sizeof(*b));
	char base[192];
	int err;

	if (!b)
		return -ENOMEM;
	a->bpf = b;
	b->on = on;
	b->cgroup_fd = -1;
	libbpf_set_print(libbpf_print);
	err = check_fs(a->cfg.bpffs, BPF_FS_MAGIC,
		       "a bpffs mount (mount -t bpf bpf /sys/fs/bpf)");
	if (!err)
		err = check_fs(a->cfg.cgroup, CGROUP2_SUPER_MAGIC,
			       "a cgroup v2 directory");
	if (err)
		return err;
	snprintf(base, sizeof(base), "%s/fastivc", a->cfg.bpffs);
	mkdir(base, 0700);
	err = agent_pin_dir(&a->cfg, b->pin_dir, sizeof(b->pin_dir));
	if (err)
		return err;
	/* Before the maps are made anew: they hold its flows. */
	leftover_flows_reset(a, b->pin_dir);
	leftover_tc_remove();

	b->skel = fastivc_bpf__open();
	if (!b->skel) {
		pr_err("Failed to open the BPF object: %s", strerror(errno));
		return -errno;
	}
	b->skel->rodata->self_domid = a->cfg.domid;
	b->skel->rodata->self_netns = own_netns_cookie();
	splice_watch_choose(b->skel);
	err = size_maps(b->skel, a->cfg.max_flows);
	if (!err)
		err = pin_maps(b);
	if (!err)
		err = fastivc_bpf__load(b->skel);
	if (err) {
		pr_err("Failed to load the BPF programs: %s (does this kernel "
		       "have sockops, sk_msg and sockhash? see `bpftool "
		       "feature probe`)",
		       strerror(-err));
		return err;
	}

	err = services_fill(a);
	if (err) {
		pr_err("Failed to fill the services map: %s", strerror(-err));
		return err;
	}
	err = slot_words_map(b->skel->maps.slot_sw, &b->slot_sw);
	if (!err)
		err = slot_words_map(b->skel->maps.slot_rd, &b->slot_rd);
	if (!err)
		err = slot_words_map(b->skel->maps.slot_in, &b->slot_in);
	if (err)
		return err;

	b->cgroup_fd = open(a->cfg.cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b->cgroup_fd < 0) {
		err = -errno;
		pr_err("Failed to open cgroup %s: %s", a->cfg.cgroup,
		       strerror(errno));
		return err;
	}
	err = bpf_prog_attach(bpf_program__fd(b->skel->progs.fivc_skmsg),
			      bpf_map__fd(b->skel->maps.socks),
			      BPF_SK_MSG_VERDICT, 0);
	if (err) {
		err = -errno;
		pr_err("Failed to attach sk_msg to the sockhash: %s",
		       strerror(errno));
		return err;
	}
	b->skmsg_attached = true;
	b->sockops = bpf_program__attach_cgroup(b->skel->progs.fivc_sockops,
						b->cgroup_fd);
	if (!b->sockops) {
		err = -errno;
		pr_err("Failed to attach sockops to %s: %s", a->cfg.cgroup,
		       strerror(errno));
		return err;
	}
	b->sockopt_watch = bpf_program__attach_cgroup(
		b->skel->progs.fivc_sockopt_watch, b->cgroup_fd);
	if (!b->sockopt_watch) {
		err = -errno;
		pr_err("Failed to attach the setsockopt watch to %s: %s",
		       a->cfg.cgroup, strerror(errno));
		return err;
	}
	b->tcp_info = bpf_program__attach_cgroup(b->skel->progs.fivc_tcp_info,
						 b->cgroup_fd);
	if (!b->tcp_info) {
		err = -errno;
		pr_err("Failed to attach the TCP_INFO program to %s: %s",
		       a->cfg.cgroup, strerror(errno));
		return err;
	}
	listen_adopt(a, b->cgroup_fd, bpf_map__fd(b->skel->maps.listen_opts));
	b->splice_watch = splice_watch_attach(b->skel);
	err = tc_attach(a);
	if (err)
		return err;
	b->rb = ring_buffer__new(bpf_map__fd(b->skel->maps.events), on_event, a,
				 NULL);
	if (!b->rb) {
		err = -errno;
		pr_err("Failed to open the event ring buffer: %s",
		       strerror(errno));
		return err;
	}
	return 0;
}

void agent_bpf_close(struct agent *a)
{
	struct agent_bpf *b = a->bpf;
	struct bpf_map *map;

	if (!b)
		return;
	ring_buffer__free(b->rb);
	tc_detach_all(b);
	bpf_link__destroy(b->sockopt_watch);
	bpf_link__destroy(b->tcp_info);
	bpf_link__destroy(b->splice_watch);
	bpf_link__destroy(b->sockops);
	if (b->skmsg_attached)
		bpf_prog_detach2(bpf_program__fd(b->skel->progs.fivc_skmsg),
				 bpf_map__fd(b->skel->maps.socks),
				 BPF_SK_MSG_VERDICT);
	if (b->skel)
		bpf_object__for_each_map(
			map, b->skel->obj) if (!keep_pin(bpf_map__name(map)) &&
					       bpf_map__pin_path(map))
			bpf_map__unpin(map, NULL);
	if (b->slot_sw)
		munmap(b->slot_sw, SLOT_SW_BYTES);
	if (b->slot_rd)
		munmap(b->slot_rd, SLOT_SW_BYTES);
	if (b->slot_in)
		munmap(b->slot_in, SLOT_SW_BYTES);
	fastivc_bpf__destroy(b->skel);
	if (b->cgroup_fd >= 0)
		close(b->cgroup_fd);
	free(b);
	a->bpf = NULL;
}

int agent_bpf_events_fd(struct agent *a)
{
	return ring_buffer__epoll_fd(a->bpf->rb);
}

void agent_bpf_events_poll(struct agent *a)
{
	ring_buffer__consume(a->bpf->rb);
}

int agent_bpf_slot_add(struct agent *a, uint32_t slot, int fd_x, int fd_y,
		       uint16_t y_port)
{
	struct fastivc_bpf *s = a->bpf->skel;
	struct fivc_sock_key k = {.role = FIVC_SOCK_SLOT_X, .slot = slot};
	struct fivc_slot idle = {.mode = FIVC_SLOT_IDLE};
	__u64 x = (__u64)fd_x, y = (__u64)fd_y; /* sockhash values are u64 */
	__u16 port = y_port;

	__atomic_store_n(&a->bpf->slot_rd[slot], 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&a->bpf->slot_in[slot], 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&a->bpf->slot_sw[slot], 0, __ATOMIC_SEQ_CST);
	if (bpf_map__update_elem(s->maps.slots, &slot, sizeof(slot), &idle,
				 sizeof(idle), BPF_ANY) ||
	    bpf_map__update_elem(s->maps.socks, &k, sizeof(k), &x, sizeof(x),
				 BPF_ANY))
		return -errno;
	k.role = FIVC_SOCK_SLOT_Y;
	if (bpf_map__update_elem(s->maps.socks, &k, sizeof(k), &y, sizeof(y),
				 BPF_ANY) ||
	    bpf_map__update_elem(s->maps.slot_ports, &port, sizeof(port), &slot,
				 sizeof(slot), BPF_ANY) ||
	    bpf_map__update_elem(s->maps.free_slots, NULL, 0, &slot,
				 sizeof(slot), BPF_ANY))
		return -errno;
	return 0;
}

void agent_bpf_slot_del(struct agent *a, uint32_t slot, uint16_t y_port)
{
	struct fastivc_bpf *s = a->bpf->skel;
	struct fivc_slot idle = {.mode = FIVC_SLOT_IDLE};
	__u16 port = y_port;

	/* The sockets leave socks when they are closed. */
	bpf_map__delete_elem(s->maps.slot_ports, &port, sizeof(port), 0);
	bpf_map__update_elem(s->maps.slots, &slot, sizeof(slot), &idle,
			     sizeof(idle), BPF_ANY);
}

/*
 * A used pair serves the next flow (slots.c checked it is clean): idle,
 * no flow, no count, back in sockops' queue.
 */
int agent_bpf_slot_reuse(struct agent *a, uint32_t slot)
{
	struct fastivc_bpf *s = a->bpf->skel;
	struct fivc_slot idle = {.mode = FIVC_SLOT_IDLE};

	__atomic_store_n(&a->bpf->slot_rd[slot], 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&a->bpf->slot_in[slot], 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&a->bpf->slot_sw[slot], 0, __ATOMIC_SEQ_CST);
	if (bpf_map__update_elem(s->maps.slots, &slot, sizeof(slot), &idle,
				 sizeof(idle), BPF_ANY) ||
	    bpf_map__update_elem(s->maps.free_slots, NULL, 0, &slot,
				 sizeof(slot), BPF_ANY))
		return -errno;
	return 0;
}

int agent_bpf_slot_mode(struct agent *a, uint32_t slot,
			const struct fivc_flow_key *key, uint32_t mode)
{
	struct fivc_slot v = {.flow = *key, .mode = mode};

	if (bpf_map__update_elem(a->bpf->skel->maps.slots, &slot, sizeof(slot),
				 &v, sizeof(v), BPF_ANY))
		return -errno;
	return 0;
}

bool agent_bpf_app_present(struct agent *a, const struct fivc_flow_key *key)
{
	struct fivc_sock_key k = {.role = FIVC_SOCK_APP, .flow = *key};
	__u64 cookie;

	/* close() takes the socket out of the sockhash before its FIN. */
	return !bpf_map__lookup_elem(a->bpf->skel->maps.socks, &k, sizeof(k),
				     &cookie, sizeof(cookie), 0);
}

uint64_t *agent_bpf_slot_sw(struct agent *a, uint32_t slot)
{
	return &a->bpf->slot_sw[slot];
}

/* Bytes sk_msg redirected into the slot's X for its current flow. */
uint64_t agent_bpf_slot_sent(struct agent *a, uint32_t slot)
{
	return __atomic_load_n(&a->bpf->slot_sw[slot], __ATOMIC_ACQUIRE) >>
	       FIVC_SW_SENT_SHIFT;
}

/* The agent has read @n bytes of the slot's current flow from its Y. */
void agent_bpf_slot_read(struct agent *a, uint32_t slot, uint64_t n)
{
	__atomic_store_n(&a->bpf->slot_rd[slot], n, __ATOMIC_RELEASE);
}

/* The agent has injected @n bytes into the slot's app socket (TCP_INFO). */
void agent_bpf_slot_injected(struct agent *a, uint32_t slot, uint64_t n)
{
	__atomic_store_n(&a->bpf->slot_in[slot], n, __ATOMIC_RELAXED);
}

/* Bytes in flight to us under which an app's send skips X (skmsg.bpf.c). */
void agent_bpf_ingress_window(struct agent *a, uint32_t bytes)
{
	a->bpf->skel->bss->ingress_window = bytes;
}

/* Back to plain TCP: the app socket leaves the sockhash (and tcp_bpf). */
void agent_bpf_app_release(struct agent *a, const struct fivc_flow_key *key)
{
	struct fivc_sock_key k = {.role = FIVC_SOCK_APP, .flow = *key};

	bpf_map__delete_elem(a->bpf->skel->maps.socks, &k, sizeof(k), 0);
}

void agent_bpf_flow_del(struct agent *a, const struct fivc_flow_key *key)
{
	bpf_map__delete_elem(a->bpf->skel->maps.flows, key, sizeof(*key), 0);
}

int agent_bpf_fin_ok(struct agent *a, const struct fivc_flow_key *key, bool ok)
{
	struct fastivc_bpf *s = a->bpf->skel;
	__u32 one = 1;

	if (!ok) {
		bpf_map__delete_elem(s->maps.fin_ok, key, sizeof(*key), 0);
		bpf_map__delete_elem(s->maps.fin_sent, key, sizeof(*key), 0);
		bpf_map__delete_elem(s->maps.peer_fin_end, key, sizeof(*key),
				     0);
		bpf_map__delete_elem(s->maps.held_fins, key, sizeof(*key), 0);
		return 0;
	}
	if (bpf_map__update_elem(s->maps.fin_ok, key, sizeof(*key), &one,
				 sizeof(one), BPF_ANY))
		return -errno;
	return 0;
}

int agent_bpf_held_fin_take(struct agent *a, const struct fivc_flow_key *key,
			    struct fivc_held_fin *out)
{
	struct fastivc_bpf *s = a->bpf->skel;

	if (bpf_map__lookup_and_delete_elem(s->maps.held_fins, key,
					    sizeof(*key), out, sizeof(*out), 0))
		return -errno;
	return out->len <= FIVC_HELD_FIN_MAX ? 0 : -EINVAL;
}

/* A DNAT'd connection's two nat_flows entries (bpf/fastivc.bpf.h). */
static void nat_forget(struct fastivc_bpf *s, const struct fivc_flow_key *k)
{
	struct fivc_flow_key other;

	if (bpf_map__lookup_elem(s->maps.nat_flows, k, sizeof(*k), &other,
				 sizeof(other), 0))
		return;
	bpf_map__delete_elem(s->maps.nat_flows, &other, sizeof(other), 0);
	bpf_map__delete_elem(s->maps.nat_flows, k, sizeof(*k), 0);
}

/*
 * Reservations of handshakes that did not complete in time give their
 * slots back, active ones (our connects) after @active_ns, passive ones
 * (answered SYNs) after @passive_ns; returns how many.
 */
uint32_t agent_bpf_reap_holds(struct agent *a, uint64_t active_ns,
			      uint64_t passive_ns)
{
	struct fastivc_bpf *s = a->bpf->skel;
	struct fivc_flow_key k, next, *prev = NULL;
	struct fivc_flow hold;
	uint64_t now = agent_now_ns();
	uint32_t n = 0;

	while (!bpf_map__get_next_key(s->maps.flows, prev, &next,
				      sizeof(next))) {
		k = next;
		prev = &k;
		if (bpf_map__lookup_elem(s->maps.flows, &k, sizeof(k), &hold,
					 sizeof(hold), 0) ||
		    !hold_stalled(&hold, now, active_ns, passive_ns))
			continue;
		if (bpf_map__delete_elem(s->maps.flows, &k, sizeof(k), 0))
			continue;
		bpf_map__update_elem(s->maps.free_slots, NULL, 0, &hold.slot,
				     sizeof(hold.slot), BPF_ANY);
		bpf_map__delete_elem(s->maps.held_fins, &k, sizeof(k), 0);
		/* No socket will close for it: its DNAT note goes here. */
		if (hold.dir == FIVC_FLOW_PASSIVE)
			nat_forget(s, &k);
		n++;
	}
	return n;
}

/* What one local uid may hold (bpf/uid_share.bpf.h); 0: no limit. */
void agent_bpf_uid_limits(struct agent *a, uint32_t holds, uint32_t flows)
{
	a->bpf->skel->bss->uid_hold_limit = holds;
	a->bpf->skel->bss->uid_flow_limit = flows;
}

/* Take a ready slot back from sockops' queue: 0, or -ENOENT if empty. */
int agent_bpf_free_slot_pop(struct agent *a, uint32_t *slot)
{
	if (bpf_map__lookup_and_delete_elem(a->bpf->skel->maps.free_slots, NULL,
					    0, slot, sizeof(*slot), 0))
		return -errno;
	return 0;
}

/* Stats [first, first + n) summed over CPUs into out[0, n): one lookup each. */
static int stats_read(struct agent *a, uint32_t first, uint32_t n,
		      uint64_t *out)
{
	int ncpu = libbpf_num_possible_cpus();
	uint64_t *v;

	if (ncpu <= 0)
		return -EINVAL;
	v = calloc((size_t)ncpu, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t key = first + i;

		out[i] = 0;
		if (bpf_map__lookup_elem(a->bpf->skel->maps.stats, &key,
					 sizeof(key), v,
					 (size_t)ncpu * sizeof(*v), 0))
			continue;
		for (int c = 0; c < ncpu; c++)
			out[i] += v[c];
	}
	free(v);
	return 0;
}

int agent_bpf_stats(struct agent *a, uint64_t out[FIVC_STAT__MAX])
{
	return stats_read(a, 0, FIVC_STAT__MAX, out);
}

int agent_bpf_stat(struct agent *a, uint32_t stat, uint64_t *out)
{
	return stat < FIVC_STAT__MAX ? stats_read(a, stat, 1, out) : -EINVAL;
}
