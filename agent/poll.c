// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Adaptive polling. A message through the tunnel costs the sending agent a
 * notification (a syscall, on Xen a hypercall) and the receiving agent a
 * wake-up, on top of the application's own: measured, the wake-ups are most
 * of the latency (docs/performance.md). So after a flow's receive ring runs
 * dry the agent does not arm its notification at once: it keeps the flow on
 * a "hot" list and, before it would sleep, spins on those rings and on a
 * non-blocking round of its event loop, for a window that adapts like the
 * kernel's halt polling: it grows while the next event keeps coming soon
 * after the spin gave up, and shrinks while it comes late or not at all.
 * The window never exceeds poll_us, an idle agent does not spin at all, a
 * stream is not polled, and a spin that finds another task wanting its
 * CPU ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "flow.h"
#include "fastivc/log.h"

/* The smallest window: a fraction of the largest. */
#define WINDOW_MIN_SHIFT 4

static uint64_t window_min(const struct agent_poll *p)
{
	return p->max_ns >> WINDOW_MIN_SHIFT;
}

void poll_init(struct agent *a, void (*rx_ready)(struct agent *, struct flow *))
{
	a->poll.rx_ready = rx_ready;
	poll_configure(a);
}

/*
 * Back from SCHED_IDLE to our nice value needs CAP_SYS_NICE or an
 * RLIMIT_NICE that allows it: without either, a spin would leave the
 * agent at SCHED_IDLE for good.
 */
static bool may_leave_idle(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[2] = {};
	int nice = getpriority(PRIO_PROCESS, 0);
	struct rlimit r;

	if (!getrlimit(RLIMIT_NICE, &r) &&
	    (r.rlim_cur == RLIM_INFINITY || (long)r.rlim_cur >= 20 - nice))
		return true;
	return !syscall(SYS_capget, &h, d) &&
	       (d[CAP_SYS_NICE / 32].effective & (1u << (CAP_SYS_NICE % 32)));
}

/*
 * The policy the agent works at. SCHED_BATCH: an app whose send wakes the
 * agent is not preempted by it, so the agent runs when that app blocks or
 * at the next tick and moves all it sent by then in one run, instead of
 * one run per segment that reaches Y; an app that waits for an answer
 * blocks at once. Worth it where a run is dear and a ring small (a domU's
 * context switch traps to the hypervisor): docs/performance.md, "Batch
 * wake-ups".
 */
static void set_work_policy(struct agent *a)
{
	struct agent_poll *p = &a->poll;
	struct sched_param sp = {0};
	int policy = a->cfg.sched_batch ? SCHED_BATCH : SCHED_OTHER;

	if (p->work_policy == policy)
		return;
	if (!p->idle && sched_setscheduler(0, policy, &sp)) {
		pr_warn("sched_batch %u: %s", a->cfg.sched_batch,
			strerror(errno));
		return;
	}
	p->work_policy = policy;
}

void poll_configure(struct agent *a)
{
	struct agent_poll *p = &a->poll;
	cpu_set_t cpus;

	set_work_policy(a);
	p->max_ns = (uint64_t)a->cfg.poll_us * 1000;
	if (p->max_ns && !may_leave_idle()) {
		pr_warn("polling off (poll_us %u): leaving SCHED_IDLE needs "
			"CAP_SYS_NICE or RLIMIT_NICE (systemd: LimitNICE=+0)",
			a->cfg.poll_us);
		p->max_ns = 0;
	}
	if (p->max_ns && p->loadavg_fd <= 0) {
		p->loadavg_fd = open("/proc/loadavg", O_RDONLY | O_CLOEXEC);
		if (p->loadavg_fd < 0) {
			pr_warn("polling off (poll_us %u): /proc/loadavg: %s",
				a->cfg.poll_us, strerror(errno));
			p->max_ns = 0;
		}
	}
	p->n_cpus = 1;
	if (!sched_getaffinity(0, sizeof(cpus), &cpus) && CPU_COUNT(&cpus))
		p->n_cpus = (uint32_t)CPU_COUNT(&cpus);
	p->window_ns = window_min(p);
}

/*
 * Does another task want a CPU the agent could spin on? A spin only takes
 * CPU time that would otherwise idle, as the kernel's halt polling does:
 * at SCHED_IDLE a spinning agent that shares its CPU with a busy app gets
 * the CPU only at the scheduler's rare turn for an idle task, and the
 * app's bytes wait for it (docs/performance.md, "Polling"). /proc/loadavg's
 * fourth field counts the runnable tasks, this one included.
 */
static bool cpu_wanted(struct agent_poll *p)
{
	char buf[128], *slash;
	ssize_t n = pread(p->loadavg_fd, buf, sizeof(buf) - 1, 0);
	unsigned long running;

	if (n <= 0)
		return true;
	buf[n] = 0;
	slash = strchr(buf, '/');
	if (!slash)
		return true;
	while (slash > buf && slash[-1] != ' ')
		slash--;
	running = strtoul(slash, NULL, 10);
	return running > p->n_cpus;
}

/*
 * Above this, what the agent moved since it last went to sleep is a
 * stream, not a message: a stream's next bytes come soon and with a
 * notification anyway, and polling between its chunks would cost each
 * chunk a ring re-armed and two switches of scheduling policy.
 */
#define POLL_MSG_MAX (8u << 10)

static uint64_t moved_total(struct agent *a)
{
	return a->ctr.bytes_tx + a->ctr.bytes_rx;
}

static bool streaming(struct agent *a)
{
	return moved_total(a) - a->poll.moved > POLL_MSG_MAX;
}

/*
 * A flow that moves more than this per period one way, and less than an
 * eighth of it the other way, streams: it is not polled. The agent alone
 * cannot tell (it may wake for a few KiB of a stream as for a request),
 * and a spin at SCHED_IDLE beside an app that then keeps the CPU waits for
 * the scheduler's rare turn (measured in the Xen lab: 14-18 such turns in
 * one 3 s iperf3 run, which fell from 120 to 30 Mbit/s). Requests and
 * answers go both ways, however fast.
 */
#define POLL_STREAM_BYTES (64u << 10)
#define POLL_STREAM_NS (10u * 1000 * 1000)

static bool one_way(uint64_t a, uint64_t b, uint64_t min)
{
	uint64_t hi = a > b ? a : b, lo = a > b ? b : a;

	return hi > min && lo < hi / 8;
}

static bool flow_streams(struct flow *f)
{
	struct poll_links *l = &f->poll;
	uint64_t now = agent_now_ns(), dt = now - l->mark_ns;
	uint64_t dtx = f->bytes_tx - l->mark_tx, drx = f->bytes_rx - l->mark_rx;

	if (dt >= POLL_STREAM_NS) {
		l->stream = one_way(dtx, drx,
				    POLL_STREAM_BYTES * (dt / POLL_STREAM_NS));
		l->mark_ns = now;
		l->mark_tx = f->bytes_tx;
		l->mark_rx = f->bytes_rx;
	} else if (one_way(dtx, drx, POLL_STREAM_BYTES)) {
		l->stream = true;
	}
	return l->stream;
}

static void unlink_hot(struct agent_poll *p, struct flow *f)
{
	struct poll_links *l = &f->poll;

	if (l->prev)
		l->prev->poll.next = l->next;
	else
		p->hot = l->next;
	if (l->next)
		l->next->poll.prev = l->prev;
	l->prev = l->next = NULL;
	l->hot = false;
	p->n_hot--;
}

bool poll_rx_defer(struct agent *a, struct flow *f)
{
	struct agent_poll *p = &a->poll;

	if (!p->max_ns)
		return false;
	if (f->poll.hot)
		return true;
	if (streaming(a) || flow_streams(f))
		return false;
	/* The peer need not notify us while we look ourselves. */
	fivc_rx_unwait(&f->rx);
	f->poll.hot = true;
	f->poll.prev = NULL;
	f->poll.next = p->hot;
	if (p->hot)
		p->hot->poll.prev = f;
	p->hot = f;
	p->n_hot++;
	return true;
}

void poll_forget(struct agent *a, struct flow *f)
{
	if (f->poll.hot)
		unlink_hot(&a->poll, f);
}

/*
 * While it only looks, the agent runs as SCHED_IDLE: an application that
 * wakes up on this CPU preempts it at once (a spinning SCHED_OTHER task
 * would hold the CPU until its slice ends: measured, request/response went
 * from 90 to 400 us). It does its work at its normal priority.
 */
static void set_idle(struct agent_poll *p, bool idle)
{
	struct sched_param sp = {0};

	if (p->idle == idle)
		return;
	if (sched_setscheduler(0, idle ? SCHED_IDLE : p->work_policy, &sp)) {
		/* Leaving SCHED_IDLE needs CAP_SYS_NICE or RLIMIT_NICE. */
		pr_warn("polling off: cannot leave or enter SCHED_IDLE: %s",
			strerror(errno));
		p->max_ns = 0;
		return;
	}
	p->idle = idle;
}

void poll_awake(struct agent *a)
{
	set_idle(&a->poll, false);
}

/* Pump every hot flow whose ring has something; true if one had. */
static bool pump_hot(struct agent *a)
{
	struct agent_poll *p = &a->poll;
	struct flow *f, *next;
	bool found = false;

	for (f = p->hot; f; f = next) {
		next = f->poll.next;
		if (!fivc_rx_readable(&f->rx))
			continue;
		/* Off the list: the pump puts it back when it runs dry. */
		unlink_hot(p, f);
		set_idle(p, false);
		p->rx_ready(a, f);
		found = true;
	}
	return found;
}

/* Arm every hot flow's notification; true if one turned out readable. */
static bool arm_hot(struct agent *a)
{
	struct agent_poll *p = &a->poll;

	while (p->hot) {
		struct flow *f = p->hot;

		unlink_hot(p, f);
		if (!fivc_rx_prepare_wait(&f->rx)) {
			p->rx_ready(a, f);
			return true;
		}
	}
	return false;
}

bool poll_before_sleep(struct agent *a, int (*batch)(struct agent *a))
{
	struct agent_poll *p = &a->poll;
	uint64_t start, now, deadline;

	if (!p->n_hot || streaming(a)) {
		p->moved = moved_total(a);
		return arm_hot(a);
	}
	start = now = agent_now_ns();
	deadline = start + p->window_ns;
	p->spins++;
	while (!a->stop && p->n_hot) {
		bool other = batch(a) > 0, hit = pump_hot(a);

		now = agent_now_ns();
		if ((hit || other) && streaming(a)) {
			break;
		} else if (hit) {
			p->hits++;
			deadline = now + p->window_ns;
		} else if (now >= deadline || !p->max_ns) {
			break;
		} else if (other) {
			continue;
		} else if (p->idle && cpu_wanted(p)) {
			/*
			 * We run at SCHED_IDLE while another task wants a CPU:
			 * the scheduler's rare turn for an idle task, not an
			 * idle CPU. Stop: the work that comes for us while we
			 * spin would wait for the next such turn.
			 */
			p->yields++;
			break;
		} else {
			set_idle(p, true);
		}
	}
	set_idle(p, false);
	p->spin_ns += now - start;
	p->moved = moved_total(a);
	return arm_hot(a);
}

void poll_after_sleep(struct agent *a, uint64_t slept_ns)
{
	struct agent_poll *p = &a->poll;

	if (!p->max_ns)
		return;
	if (slept_ns < p->max_ns) {
		/* A longer spin would have caught it. */
		p->window_ns *= 2;
		if (p->window_ns > p->max_ns)
			p->window_ns = p->max_ns;
	} else if (p->window_ns / 2 >= window_min(p)) {
		p->window_ns /= 2;
	}
}
