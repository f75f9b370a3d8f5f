// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* `fastivc agent`: the foreground daemon. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "flow.h"
#include "link.h"
#include "park.h"
#include "ringcache.h"
#include "clients.h"
#include "fastivc/log.h"

/*
 * The tick's chores (deadlines, the slot pool, the ingress route) run
 * every TICK_MS while anything is in flight, and every TICK_IDLE_MS once
 * a second has passed with nothing: in a domU under TCG each wake-up
 * costs about 2.5 ms, so an idle agent ticking at 10 Hz took 4% of its
 * vCPU (docs/performance.md, "Where a lab byte's time goes"). Whatever
 * puts something in flight brings TICK_MS back before the loop sleeps.
 */
#define TICK_MS 100u
#define TICK_IDLE_MS 1000u

static uint32_t tick_ms = TICK_MS;
static uint32_t quiet_ticks;

static void usage(FILE *o)
{
	fprintf(o,
		"Usage: fastivc agent [OPTIONS]\n"
		"Run the fastivc agent for one domain in the foreground.\n\n"
		"  -c, --config FILE      read settings from FILE (key = "
		"value)\n"
		"  -i, --instance NAME    instance name (pin dir, sockets) "
		"[default]\n"
		"  -d, --domid N          this domain's id (required)\n"
		"  -g, --cgroup PATH      cgroup v2 directory of the "
		"applications\n"
		"  -s, --set KEY=VALUE    any config key, after the file\n"
		"  -v, --verbose          debug logging\n"
		"  -h, --help             this text\n\n"
		"Config keys: instance cgroup bpffs run_dir link_dir domid "
		"channels\n"
		"channel_size pool max_tunnels uid_share setup_timeout_ms "
		"drain_timeout_ms\n"
		"window poll_us sched_batch max_flows max_shm_bytes "
		"shm_mem_permille "
		"ifaces services "
		"log_level metrics_listen coresident backend (see fastivc(8), "
		"docs/operations.md).\n"
		"SIGHUP reads the file and the options again; window, poll_us, "
		"sched_batch, "
		"max_tunnels,\n"
		"pool, uid_share, setup_timeout_ms, drain_timeout_ms, "
		"log_level and "
		"metrics_listen change at once.\n"
		"SIGTERM/SIGINT drain: new connections stay on TCP, flows may "
		"finish\nfor drain_timeout_ms, the rest are reset; a second "
		"signal stops at once.\n");
}

/* Root, or at least the capabilities loading and attaching BPF needs. */
static int check_privileges(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2] = {};
	/* What deploy/systemd/fastivc-agent.service grants; no CAP_SYS_ADMIN */
	static const int need[] = {CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN,
				   CAP_NET_RAW};

	if (syscall(SYS_capget, &h, d))
		return -errno;
	for (unsigned int i = 0; i < sizeof(need) / sizeof(need[0]); i++) {
		int c = need[i];

		if (!(d[c / 32].effective & (1u << (c % 32)))) {
			pr_err("fastivc agent needs root (CAP_BPF, "
			       "CAP_PERFMON, CAP_NET_ADMIN, CAP_NET_RAW)");
			return -EPERM;
		}
	}
	return 0;
}

/* One agent per instance: a lock held for the agent's lifetime. */
static int take_lock(const struct agent_config *c)
{
	char path[300], pid[32];
	int fd;

	if (mkdir(c->run_dir, 0755) && errno != EEXIST) {
		pr_err("Failed to create %s: %s", c->run_dir, strerror(errno));
		return -errno;
	}
	snprintf(path, sizeof(path), "%s/%s.pid", c->run_dir, c->instance);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		pr_err("Failed to open %s: %s", path, strerror(errno));
		return -errno;
	}
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);

		pid[n > 0 ? n : 0] = 0;
		pr_err("An agent is already running for instance '%s' (pid %s)",
		       c->instance, strtok(pid, "\n") ? pid : "?");
		close(fd);
		return -EEXIST;
	}
	snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) || pwrite(fd, pid, strlen(pid), 0) < 0)
		pr_warn("Failed to write %s", path);
	return fd; /* kept open: the lock lives as long as we do */
}

static int parse_args(struct agent_config *c, int argc, char **argv);

/* SIGHUP: the file and the command line again; see agent_config_apply. */
static void reload(struct agent *a)
{
	enum fivc_log_level old = fivc_log_get_level();
	struct agent_config n;

	agent_notify_reloading();
	agent_config_defaults(&n);
	fivc_log_set_level(FIVC_LOG_INFO);
	optind = 0;
	if (parse_args(&n, a->argc, a->argv)) {
		fivc_log_set_level(old);
		pr_err("reload: configuration left as it was");
	} else {
		agent_config_apply(a, &n);
	}
	agent_notify_ready(a);
}

static void on_hup(struct agent *a, struct agent_watch *w, uint32_t events)
{
	struct signalfd_siginfo si;

	(void)events;
	if (read(w->fd, &si, sizeof(si)) == sizeof(si))
		reload(a);
}

static void on_signal(struct agent *a, struct agent_watch *w, uint32_t events)
{
	struct signalfd_siginfo si;

	(void)events;
	if (read(w->fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (a->drain_deadline_ns || !a->cfg.drain_timeout_ms ||
	    !flows_busy(a)) {
		pr_info("signal %u: stopping", si.ssi_signo);
		a->stop = 1;
		return;
	}
	/* No new flows from here on: the connections they would be stay TCP. */
	a->drain_deadline_ns =
		agent_now_ns() + a->cfg.drain_timeout_ms * 1000000ULL;
	slots_drain(a);
	pr_info("signal %u: draining %u flows for up to %u ms (again to stop "
		"now)",
		si.ssi_signo, flows_busy(a), a->cfg.drain_timeout_ms);
}

/* Stop once the drain is over: every flow finished, or time is up. */
static void drain_check(struct agent *a)
{
	uint32_t busy = flows_busy(a);

	if (!busy)
		pr_info("drained: stopping");
	else if (agent_now_ns() >= a->drain_deadline_ns)
		pr_warn("drain timed out: resetting %u flows", busy);
	else
		return;
	a->stop = 1;
}

/*
 * Once a second: the reservation of a connect older than HOLD_ACTIVE_NS
 * is a handshake that stalled (a SYN lost three times, or a local user
 * holding connects open to a port that never answers): its slot goes back
 * to the pool, a later SYN retransmit of it carries no option, and if the
 * peer's answer comes after all, sockops reserves again. An answered SYN
 * whose handshake has not completed after HOLD_PASSIVE_NS never will (the
 * SYN-ACK retries give up after 63 s). Also says, at most once a minute,
 * that a local uid reached its share.
 */
#define HOLD_ACTIVE_NS (10ull * 1000000000ull)
#define HOLD_PASSIVE_NS (70ull * 1000000000ull)
#define SAY_EVERY_NS (60ull * 1000000000ull)
static void holds_check(struct agent *a)
{
	static uint64_t reap_said_ns, uid_said_ns, uid_limit_seen;
	uint64_t uid_limit, now = agent_now_ns();
	uint32_t n = agent_bpf_reap_holds(a, HOLD_ACTIVE_NS, HOLD_PASSIVE_NS);

	a->ctr.holds_reaped += n;
	if (n && (!reap_said_ns || now - reap_said_ns > SAY_EVERY_NS)) {
		reap_said_ns = now;
		pr_warn("%u stalled handshakes gave their slots back "
			"(holds_reaped %llu)",
			n, (unsigned long long)a->ctr.holds_reaped);
	}
	if (agent_bpf_stat(a, FIVC_STAT_UID_LIMIT, &uid_limit) ||
	    uid_limit == uid_limit_seen)
		return;
	uid_limit_seen = uid_limit;
	if (!uid_said_ns || now - uid_said_ns > SAY_EVERY_NS) {
		uid_said_ns = now;
		pr_warn("connections of a local user beyond its share "
			"(uid_share %u%%) stay on plain TCP (uid_limit %llu)",
			a->cfg.uid_share, (unsigned long long)uid_limit_seen);
	}
}

/* Nothing in flight that a tick must serve within TICK_MS. */
static bool agent_quiet(struct agent *a)
{
	return !a->n_flows && !park_count(a) && !a->n_paused &&
	       !a->drain_deadline_ns && slots_settled() && links_settled(a) &&
	       xlinks_settled(a) && clients_none();
}

static int tick_every(struct agent *a, uint32_t ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	struct itimerspec t = {ts, ts};

	if (timerfd_settime(a->w_timer.fd, 0, &t, NULL))
		return -errno;
	tick_ms = ms;
	return 0;
}

/*
 * After each round of the loop: back to TICK_MS once anything is in
 * flight, with the ingress route judged now, not up to a second ago.
 */
static void tick_wake(struct agent *a)
{
	if (tick_ms != TICK_MS && !agent_quiet(a)) {
		quiet_ticks = 0;
		tick_every(a, TICK_MS);
		ingress_tick(a);
	}
}

static void on_tick(struct agent *a, struct agent_watch *w, uint32_t events)
{
	static uint64_t holds_ns;
	uint64_t n, now;

	(void)events;
	if (read(w->fd, &n, sizeof(n)) < 0)
		return;
	now = agent_now_ns();
	flow_expire(a, now);
	link_tick(a, now);
	xlink_tick(a, now);
	clients_tick(a, now);
	if (a->drain_deadline_ns) {
		drain_check(a);
		return;
	}
	slots_fill(a);
	ingress_tick(a);
	agent_notify_tick(a);
	if (now - holds_ns >= 1000000000ull) {
		holds_ns = now;
		holds_check(a);
	}
	quiet_ticks = agent_quiet(a) ? quiet_ticks + 1 : 0;
	if (tick_ms == TICK_MS && quiet_ticks >= 1000 / TICK_MS)
		tick_every(a, TICK_IDLE_MS);
}

static void on_window(struct agent *a, struct agent_watch *w, uint32_t events)
{
	uint64_t n;

	(void)events;
	if (read(w->fd, &n, sizeof(n)) > 0)
		flows_window_poll(a);
}

static void on_events(struct agent *a, struct agent_watch *w, uint32_t events)
{
	(void)w;
	(void)events;
	agent_bpf_events_poll(a);
}

static int parse_args(struct agent_config *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{"config", required_argument, NULL, 'c'},
		{"instance", required_argument, NULL, 'i'},
		{"domid", required_argument, NULL, 'd'},
		{"cgroup", required_argument, NULL, 'g'},
		{"set", required_argument, NULL, 's'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{},
	};
	const char *key = NULL;
	char kv[512];
	int opt, err;

	/* The config file first, so command-line settings override it. */
	for (int i = 1; i < argc - 1; i++)
		if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config"))
			if (agent_config_load(c, argv[i + 1]))
				return -EINVAL;
	while ((opt = getopt_long(argc, argv, "c:i:d:g:s:vh", lo, NULL)) !=
	       -1) {
		char *val = optarg;

		switch (opt) {
		case 'c':
			continue;
		case 'i':
			key = "instance";
			break;
		case 'd':
			key = "domid";
			break;
		case 'g':
			key = "cgroup";
			break;
		case 's':
			snprintf(kv, sizeof(kv), "%s", optarg);
			val = strchr(kv, '=');
			if (!val) {
				pr_err("--set wants KEY=VALUE, got '%s'",
				       optarg);
				return -EINVAL;
			}
			*val++ = 0;
			key = kv;
			break;
		case 'v':
			fivc_log_set_level(FIVC_LOG_DEBUG);
			continue;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
		err = agent_config_set(c, key, val);
		if (err) {
			pr_err(err == -ENOENT ? "unknown setting '%s'"
					      : "bad value '%s' for '%s'",
			       err == -ENOENT ? key : val, key);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		pr_err("unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	if (c->domid == UINT32_MAX) {
		pr_err("the domain id is not set (--domid N or domid = N)");
		return -EINVAL;
	}
	return 0;
}

/*
 * How the layers report upward: sockops' events and a link's messages go
 * to the flows and the rings, a Xen link's state to the peers' owner.
 */
static const struct agent_bpf_events bpf_on = {
	.established = flow_established,
	.state = flow_state_event,
	.fin_held = flow_fin_held,
};

static void link_gone(struct agent *a, struct peer_link *l)
{
	ringcache_link_down(a, l); /* rings in use stay their flows' */
	flow_link_down(a, l);
}

static const struct link_handlers link_on = {
	.offer = flow_on_offer,
	.reply = flow_on_reply,
	.release = ring_on_release,
	.evict = ring_on_evict,
	.down = link_gone,
};

static int add_fd_watch(struct agent *a, struct agent_watch *w, int fd,
			void (*fn)(struct agent *, struct agent_watch *,
				   uint32_t))
{
	if (fd < 0)
		return -errno;
	w->fd = fd;
	w->fn = fn;
	return agent_watch_add(a, w, EPOLLIN);
}

/*
 * SIGHUP has its own signalfd: reload, not stop; blocked, so that it never
 * takes its default action (as signalfd needs).
 */
static void block_hup(sigset_t *hup)
{
	sigemptyset(hup);
	sigaddset(hup, SIGHUP);
	sigprocmask(SIG_BLOCK, hup, NULL);
}

static int add_hup_watch(struct agent *a, sigset_t *hup)
{
	return add_fd_watch(a, &a->w_hup, signalfd(-1, hup, SFD_CLOEXEC),
			    on_hup);
}

/*
 * backend = xen needs dom0's list: links are set up to the domains on it,
 * and only those whose link is up enter the peers map.
 */
static int open_backend(struct agent *a)
{
	if (a->cfg.backend == FIVC_BACKEND_LOCAL)
		return fivc_backend_open_local(&a->be);
	if (!a->cfg.coresident_xs) {
		pr_err("backend = xen needs coresident = xenstore");
		return -EINVAL;
	}
	return fivc_backend_open_xen(&a->be);
}

int cmd_agent(int argc, char **argv)
{
	struct agent *a = calloc(1, sizeof(*a));
	struct agent_watch w_sig = {};
	sigset_t mask, hup;
	int lock_fd = -1, err;

	if (!a)
		return 1;
	agent_config_defaults(&a->cfg);
	a->argc = argc;
	a->argv = argv;
	a->xlinks_changed = coresident_changed;
	err = parse_args(&a->cfg, argc, argv);
	if (!err)
		err = check_privileges();
	if (err)
		goto out;
	lock_fd = take_lock(&a->cfg);
	if (lock_fd < 0) {
		err = lock_fd;
		goto out;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	block_hup(&hup);
	signal(SIGPIPE, SIG_IGN);

	err = guard_start(a);
	if (err) {
		pr_err("Failed to start the guard process: %s", strerror(-err));
		goto out;
	}
	a->epfd = epoll_create1(EPOLL_CLOEXEC);
	err = a->epfd < 0 ? -errno : open_backend(a);
	/* The xen backend's limit is its grant table. */
	if (!err && a->cfg.max_shm_bytes &&
	    fivc_backend_local_limit(a->be, a->cfg.max_shm_bytes)) {
		pr_err("max_shm_bytes applies to the local backend only");
		err = -EINVAL;
	}
	if (!err)
		err = ringcache_init(a);
	if (!err)
		err = agent_fin_init();
	if (!err)
		err = flows_init(a);
	if (!err)
		err = slots_init(a);
	if (!err)
		err = agent_bpf_open(a, &bpf_on);
	if (!err)
		err = add_fd_watch(a, &a->w_events, agent_bpf_events_fd(a),
				   on_events);
	if (!err)
		err = link_init(a, &link_on);
	if (!err)
		err = control_init(a);
	if (!err)
		err = add_fd_watch(a, &w_sig, signalfd(-1, &mask, SFD_CLOEXEC),
				   on_signal);
	if (!err)
		err = add_fd_watch(a, &a->w_timer,
				   timerfd_create(CLOCK_MONOTONIC,
						  TFD_CLOEXEC | TFD_NONBLOCK),
				   on_tick);
	if (!err)
		err = tick_every(a, TICK_MS);
	if (!err)
		err = agent_on_batch(a, tick_wake);
	if (!err)
		err = add_fd_watch(a, &a->w_window,
				   timerfd_create(CLOCK_MONOTONIC,
						  TFD_CLOEXEC | TFD_NONBLOCK),
				   on_window);
	if (!err)
		err = add_hup_watch(a, &hup);
	if (!err)
		err = metrics_init(a);
	/* Peers from dom0's list in xenstore, if so configured. */
	if (!err)
		err = coresident_init(a);
	if (err)
		goto out;
	ingress_tick(a);
	slots_fill(a);
	pr_info("agent ready: instance %s, domain %u, cgroup %s, %u channels "
		"of %u bytes",
		a->cfg.instance, a->cfg.domid, a->cfg.cgroup, a->cfg.n_channels,
		a->cfg.channel_size);
	agent_notify_ready(a);
	err = agent_loop(a);
out:
	coresident_fini(a);
	metrics_fini(a);
	if (a->w_hup.live)
		close(a->w_hup.fd);
	control_fini(a);
	link_fini(a);
	if (a->flows)
		flows_fini(a);
	if (a->bpf)
		agent_bpf_close(a);
	slots_fini(a);
	fivc_backend_close(a->be);
	guard_stop(a);
	agent_reap(a);
	free(a->dead);
	if (w_sig.live)
		close(w_sig.fd);
	if (a->w_timer.live)
		close(a->w_timer.fd);
	if (a->w_window.live)
		close(a->w_window.fd);
	if (a->diag_fd > 0)
		close(a->diag_fd);
	agent_fin_exit();
	if (a->epfd > 0)
		close(a->epfd);
	if (lock_fd >= 0)
		close(lock_fd);
	free(a);
	return err ? 1 : 0;
}
