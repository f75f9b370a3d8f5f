// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Ring throughput between two processes (thesis Figures 10 and 12), measured
 * in the same run next to the baselines a socket user would otherwise get:
 * a pipe, an AF_UNIX SOCK_STREAM socketpair, and a single-core memcpy of the
 * same bytes (the physical limit: one copy).
 *
 * The parent is the producer: it offers a local-backend region and event
 * channel, formats the ring and forks; the child maps and binds the
 * inherited descriptors and consumes. Every message is copied in from a
 * source buffer with fivc_tx_write() (which flushes: "no more data to
 * send") and copied out into the consumer's buffer, as recv() would. The
 * consumer checks a sequence stamp in every message and the whole payload
 * of every 256th one, so a broken ring cannot report a fast number.
 *
 * Producer and consumer are pinned to two different CPUs, for the ring and
 * for the pipe and socketpair alike; memcpy runs on the producer's CPU.
 */
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fastivc/log.h"
#include "fastivc/ring.h"
#include "fastivc/ring_wait.h"
#include "fastivc/shm.h"

#define MSG_MAX (1u << 20)
#define STREAM_BYTES (128u << 20) /* > any last-level cache we run on */
#define CHECK_EVERY 256	 /* full payload compare of every 256th message */
#define SPIN_MAX_US 200u /* spin before sleeping: an adaptive budget */
#define WAIT_MS 1000
#define ROUNDS_MAX 15
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define TIMEOUTS_MAX 5 /* a peer silent this many WAIT_MS is a failure */

/*
 * memcpy copies between the same two message-sized buffers the other
 * transports send from and receive into (cache-hot: the best case of one
 * copy); memcpy_stream walks through two buffers larger than the last-level
 * cache (one copy from and to DRAM).
 */
enum xport { X_PIPE, X_UNIX, X_MEMCPY, X_STREAM, X_RING, X_COUNT };

static const char *const xport_name[X_COUNT] = {
	[X_PIPE] = "pipe",     [X_UNIX] = "unix_socketpair",
	[X_MEMCPY] = "memcpy", [X_STREAM] = "memcpy_stream",
	[X_RING] = "ring",
};

/* One ring geometry of the sweep, and the CSV benchmark it belongs to. */
struct ring_cfg {
	const char *bench;
	uint32_t n, s;
};

static const struct ring_cfg cfgs_full[] = {
	{"ring_throughput_msg", 4, 4096},
	{"ring_throughput_nchan", 2, 4096},
	{"ring_throughput_nchan", 8, 4096},
	{"ring_throughput_chsize", 4, 8192},
	{"ring_throughput_chsize", 4, 16384},
	{"ring_throughput_chsize", 4, 32768},
	{"ring_throughput_chsize", 4, 65536},
	{"ring_throughput_chsize", 4, 131072},
	{"ring_throughput_chsize", 4, 262144},
};

#define CFGS_MAX ARRAY_SIZE(cfgs_full)

static const struct ring_cfg cfgs_quick[] = {
	{"ring_throughput_msg", 4, 4096},
	{"ring_throughput_nchan", 2, 4096},
	{"ring_throughput_nchan", 8, 4096},
	{"ring_throughput_chsize", 4, 65536},
};

static const uint32_t sizes_full[] = {1,     64,    1024,   4096,
				      16384, 65536, 262144, 1048576};
static const uint32_t sizes_quick[] = {64, 1024, 65536, 1048576};

struct opts {
	int rounds;
	double seconds;	    /* time cap of one measurement */
	uint64_t max_bytes; /* volume cap of one measurement */
	const char *csv;
	uint32_t msg; /* only this message size, 0: the whole sweep */
	bool quick;
};

/* One measurement. */
struct sample {
	double mbps;
	uint64_t bytes;
	uint64_t tx_kicks, rx_kicks, tx_waits, rx_waits, channels;
};

/* What the consumer reports back, in a page shared across fork(). */
struct report {
	uint64_t bytes, msgs;
	struct timespec t_end;
	uint64_t kicks, waits, timeouts;
	int err;
	char why[160];
};

/* How a blocking ring end waits (ring_wait.h): spin a little, then sleep. */
struct waiter {
	struct fivc_evch *ev;
	struct fivc_spin spin;
	uint64_t timeouts; /* waits that ended in -ETIMEDOUT */
	int silent;	   /* of those, in a row */
};

static struct report *rep;
static uint8_t *pattern; /* the payload every message starts from */
static int cpu_prod = -1, cpu_cons = -1;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		fprintf(stderr, "Failed to pin to CPU %d: %s\n", cpu,
			strerror(errno));
}

/*
 * Page-aligned, prefaulted by the caller. @parent_only: not inherited by the
 * children, so the parent's writes after a fork() take no copy-on-write
 * faults.
 */
static void *buf_alloc(size_t len, bool parent_only)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	if (parent_only && madvise(p, len, MADV_DONTFORK)) {
		munmap(p, len);
		return NULL;
	}
	return p;
}

static const char *fmt_size(char *buf, size_t len, uint64_t v)
{
	if (v >= (1u << 20) && !(v % (1u << 20)))
		snprintf(buf, len, "%lluM", (unsigned long long)(v >> 20));
	else if (v >= 1024 && !(v % 1024))
		snprintf(buf, len, "%lluK", (unsigned long long)(v >> 10));
	else
		snprintf(buf, len, "%llu", (unsigned long long)v);
	return buf;
}

/*
 * The stamp: the low bytes of the sequence number first, a byte derived from
 * it last, and the sequence number again at an offset that moves with it.
 * Catches lost, duplicated, reordered and torn messages, and over many
 * messages a wrong byte anywhere in them.
 */
static size_t probe_off(size_t len, uint64_t seq)
{
	return len > 24 ? 8 + (seq * 2654435761u) % (len - 16) : 0;
}

static void stamp(uint8_t *p, size_t len, uint64_t seq)
{
	memcpy(p, &seq, len < 8 ? len : 8);
	if (len > 8)
		p[len - 1] = (uint8_t)(seq * 157 + 11);
	if (len > 24)
		memcpy(p + probe_off(len, seq), &seq, 8);
}

/* Every CHECK_EVERY-th message is compared whole, the others at the stamp. */
static int verify(const uint8_t *got, uint8_t *expect, size_t len, uint64_t seq)
{
	size_t off = probe_off(len, seq);
	int bad;

	stamp(expect, len, seq);
	if (seq % CHECK_EVERY == CHECK_EVERY - 1)
		bad = memcmp(got, expect, len);
	else
		bad = memcmp(got, expect, len < 8 ? len : 8) ||
		      (len > 8 && got[len - 1] != expect[len - 1]) ||
		      (off && memcmp(got + off, expect + off, 8));
	/* Undo the moving part, so that expect is the pattern again. */
	if (off)
		memcpy(expect + off, pattern + off, 8);
	return bad ? -1 : 0;
}

/* --- blocking ring calls -------------------------------------------------- */

/*
 * A wait that times out is retried: the peer is always busy in this bench,
 * so a timeout means a lost wake-up (counted and reported), and
 * TIMEOUTS_MAX of them in a row fail the measurement.
 */
static int ring_timeout(struct waiter *w, int err)
{
	if (err != -ETIMEDOUT)
		return err;
	w->timeouts++;
	return ++w->silent >= TIMEOUTS_MAX ? err : 0;
}

static int ring_send(struct fivc_tx *tx, struct waiter *w, const uint8_t *buf,
		     size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = fivc_tx_write(tx, buf + off, len - off);
		int err;

		if (n > 0) {
			off += n;
			w->silent = 0;
			continue;
		}
		if (n != -EAGAIN)
			return n ? (int)n : -EPROTO;
		err = fivc_tx_wait(tx, w->ev, &w->spin, WAIT_MS);
		err = ring_timeout(w, err);
		if (err)
			return err;
	}
	return 0;
}

/* len bytes, 0 at end of stream, or -errno (also for a torn message). */
static ssize_t ring_recv(struct fivc_rx *rx, struct waiter *w, uint8_t *buf,
			 size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = fivc_rx_read_wait(rx, w->ev, &w->spin, buf + off,
					      len - off, WAIT_MS);

		if (n > 0) {
			off += n;
			w->silent = 0;
			continue;
		}
		if (n == 0)
			return off ? -EPROTO : 0;
		n = ring_timeout(w, (int)n);
		if (n)
			return n;
	}
	return (ssize_t)len;
}

/* --- the fd transports ---------------------------------------------------- */

static int fd_send(int fd, const uint8_t *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = write(fd, buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		off += n;
	}
	return 0;
}

static ssize_t fd_recv(int fd, uint8_t *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = read(fd, buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return off ? -EPROTO : 0;
		off += n;
	}
	return (ssize_t)len;
}

/* --- one measurement ------------------------------------------------------ */

/* Everything one transport needs on both sides of the fork. */
struct link {
	enum xport x;
	int fd[2]; /* pipe/socketpair: [0] consumer, [1] producer */
	int sync[2];
	struct fivc_ring_geom g;
	struct fivc_backend *be;
	struct fivc_shm *shm;
	struct fivc_evch *ev;
	struct fivc_shm_desc sd;
	struct fivc_evch_desc ed;
	struct fivc_tx tx;
	struct waiter w;
};

static void consumer_fail(const char *what, int err, uint64_t seq)
{
	rep->err = err;
	snprintf(rep->why, sizeof(rep->why), "%s: %s (message %llu)", what,
		 strerror(-err), (unsigned long long)seq);
}

/* Child: open its own backend, map and bind what the producer offered. */
static int consumer_ring_open(struct link *l, struct fivc_backend **be,
			      struct fivc_shm **shm, struct fivc_rx *rx)
{
	struct fivc_kick kick;
	int err;

	err = fivc_backend_open_local(be);
	if (err)
		return err;
	err = (*be)->ops->shm_map(*be, &l->sd, shm);
	if (err)
		return err;
	err = (*be)->ops->evch_bind(*be, &l->ed, &l->w.ev);
	if (err)
		return err;
	kick.fn = fivc_evch_kick;
	kick.arg = l->w.ev;
	return fivc_rx_attach(rx, (*shm)->addr, (*shm)->size, &l->g, 0, &kick);
}

static void consumer(struct link *l, size_t msg)
{
	struct fivc_backend *be = NULL;
	struct fivc_shm *shm = NULL;
	struct fivc_rx rx;
	uint8_t *buf, *expect;
	uint64_t seq = 0;
	int err = 0;
	char c = 1;

	pin(cpu_cons);
	buf = malloc(msg);
	expect = malloc(msg);
	if (!buf || !expect) {
		consumer_fail("Failed to allocate buffers", -ENOMEM, 0);
		return;
	}
	memset(buf, 0, msg);
	memcpy(expect, pattern, msg);
	if (l->x == X_RING) {
		memset(&rx, 0, sizeof(rx));
		l->w.ev = NULL; /* the producer's end, inherited: not ours */
		fivc_spin_init(&l->w.spin, SPIN_MAX_US);
		err = consumer_ring_open(l, &be, &shm, &rx);
		if (err) {
			consumer_fail("Failed to attach the ring", err, 0);
			goto out;
		}
	}
	if (write(l->sync[1], &c, 1) != 1)
		goto out;
	for (;;) {
		ssize_t n = l->x == X_RING ? ring_recv(&rx, &l->w, buf, msg)
					   : fd_recv(l->fd[0], buf, msg);

		if (n == 0)
			break;
		if (n < 0) {
			consumer_fail("Failed to receive", (int)n, seq);
			break;
		}
		if (verify(buf, expect, msg, seq)) {
			consumer_fail("Corrupt data", -EBADMSG, seq);
			break;
		}
		seq++;
	}
	clock_gettime(CLOCK_MONOTONIC, &rep->t_end);
	rep->msgs = seq;
	rep->bytes = seq * msg;
	if (l->x == X_RING) {
		if (rep->err)
			fivc_rx_reset(&rx);
		rep->kicks = rx.st.kicks;
		rep->waits = rx.st.waits;
		rep->timeouts = l->w.timeouts;
	}
out:
	if (shm)
		shm->be->ops->shm_destroy(shm);
	if (l->x == X_RING && l->w.ev)
		l->w.ev->be->ops->evch_destroy(l->w.ev);
	fivc_backend_close(be);
	free(buf);
	free(expect);
}

static int link_open(struct link *l, const struct ring_cfg *cfg)
{
	struct fivc_kick kick[FIVC_RECEIVERS_MAX] = {0};
	struct fivc_backend *be = l->be;
	int err;

	if (pipe(l->sync))
		return -errno;
	if (l->x == X_PIPE)
		return pipe(l->fd) ? -errno : 0;
	if (l->x == X_UNIX)
		return socketpair(AF_UNIX, SOCK_STREAM, 0, l->fd) ? -errno : 0;

	fivc_ring_geom_default(&l->g);
	l->g.n_channels = cfg->n;
	l->g.channel_size = cfg->s;
	fivc_shm_desc_clear(&l->sd);
	err = be->ops->shm_offer(be, fivc_ring_region_size(&l->g), 0, &l->shm);
	if (!err)
		err = be->ops->shm_describe(l->shm, &l->sd);
	if (!err)
		err = be->ops->evch_offer(be, 0, &l->ev);
	if (!err)
		err = be->ops->evch_describe(l->ev, &l->ed);
	if (err)
		return err;
	kick[0].fn = fivc_evch_kick;
	kick[0].arg = l->ev;
	l->w.ev = l->ev;
	fivc_spin_init(&l->w.spin, SPIN_MAX_US);
	return fivc_tx_init(&l->tx, l->shm->addr, l->shm->size, &l->g, kick);
}

static void link_close(struct link *l)
{
	for (int i = 0; i < 2; i++) {
		if (l->fd[i] >= 0)
			close(l->fd[i]);
		if (l->sync[i] >= 0)
			close(l->sync[i]);
		l->fd[i] = l->sync[i] = -1;
	}
	if (l->ev)
		l->be->ops->evch_destroy(l->ev);
	if (l->shm)
		l->be->ops->shm_destroy(l->shm);
	l->ev = NULL;
	l->shm = NULL;
}

/*
 * Parent: send msg-sized messages until the time or volume cap, then end the
 * stream. *sent: how many messages went out whole.
 */
static int producer(struct link *l, uint8_t *src, size_t msg,
		    const struct opts *o, double t0, uint64_t *sent)
{
	uint64_t every = msg >= 4096 ? 1 : 4096 / msg, bytes = 0, seq;
	int err = 0;

	memcpy(src, pattern, msg); /* no stamps left from another size */
	for (seq = 0;; seq++) {
		if (seq && probe_off(msg, seq - 1))
			memcpy(src + probe_off(msg, seq - 1),
			       pattern + probe_off(msg, seq - 1), 8);
		stamp(src, msg, seq);
		if (l->x == X_RING)
			err = ring_send(&l->tx, &l->w, src, msg);
		else
			err = fd_send(l->fd[1], src, msg);
		if (err)
			break;
		bytes += msg;
		if (seq % every == every - 1 &&
		    (bytes >= o->max_bytes || now_s() - t0 >= o->seconds)) {
			seq++;
			break;
		}
	}
	*sent = seq;
	if (l->x != X_RING) {
		close(l->fd[1]);
		l->fd[1] = -1;
	} else if (err) {
		fivc_tx_reset(&l->tx);
	} else {
		err = fivc_tx_close(&l->tx);
	}
	return err;
}

/* @stream: walk through STREAM_BYTES buffers instead of reusing src/dst. */
static int measure_memcpy(uint8_t *src, uint8_t *dst, size_t msg, bool stream,
			  const struct opts *o, struct sample *s)
{
	static uint8_t *ssrc, *sdst;
	uint64_t every = msg >= 4096 ? 1 : 4096 / msg, bytes = 0;
	size_t off = 0;
	double t0, t;

	if (stream && !ssrc) {
		ssrc = buf_alloc(STREAM_BYTES, true);
		sdst = buf_alloc(STREAM_BYTES, true);
		if (!ssrc || !sdst)
			return -ENOMEM;
		memset(ssrc, 0x5a, STREAM_BYTES);
		memset(sdst, 0, STREAM_BYTES);
	}
	t0 = now_s();
	for (uint64_t i = 0;; i++) {
		if (stream) {
			src = ssrc + off;
			dst = sdst + off;
			off = off + 2 * msg > STREAM_BYTES ? 0 : off + msg;
		}
		memcpy(dst, src, msg);
		/* Keep the compiler from dropping the copy. */
		__asm__ __volatile__("" : : "r"(dst) : "memory");
		bytes += msg;
		if (i % every == every - 1 &&
		    (bytes >= o->max_bytes || now_s() - t0 >= o->seconds))
			break;
	}
	t = now_s() - t0;
	memset(s, 0, sizeof(*s));
	s->bytes = bytes;
	s->mbps = bytes / t / 1e6;
	return 0;
}

static int measure(enum xport x, const struct ring_cfg *cfg,
		   struct fivc_backend *be, uint8_t *src, uint8_t *dst,
		   size_t msg, const struct opts *o, struct sample *s)
{
	struct link l = {.x = x, .fd = {-1, -1}, .sync = {-1, -1}};
	struct timespec t0ts;
	uint64_t sent = 0;
	int err, status;
	double t0;
	pid_t pid;
	char c;

	if (x == X_MEMCPY || x == X_STREAM)
		return measure_memcpy(src, dst, msg, x == X_STREAM, o, s);
	l.be = be;
	memset(rep, 0, sizeof(*rep));
	err = link_open(&l, cfg);
	if (err) {
		fprintf(stderr, "Failed to set up %s: %s\n", xport_name[x],
			strerror(-err));
		link_close(&l);
		return err;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		err = -errno;
		link_close(&l);
		return err;
	}
	if (!pid) {
		close(l.sync[0]);
		if (l.fd[1] >= 0)
			close(l.fd[1]);
		consumer(&l, msg);
		_exit(rep->err ? 1 : 0);
	}
	close(l.sync[1]);
	if (l.fd[0] >= 0)
		close(l.fd[0]);
	l.sync[1] = l.fd[0] = -1;
	if (read(l.sync[0], &c, 1) != 1) {
		err = -EPIPE; /* the consumer failed to start */
	} else {
		clock_gettime(CLOCK_MONOTONIC, &t0ts);
		t0 = t0ts.tv_sec + t0ts.tv_nsec * 1e-9;
		err = producer(&l, src, msg, o, t0, &sent);
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status))
		err = err ? err : -ECHILD;
	if (rep->err) {
		fprintf(stderr, "%s consumer: %s\n", xport_name[x], rep->why);
		err = rep->err;
	} else if (err) {
		fprintf(stderr, "%s producer: %s\n", xport_name[x],
			strerror(-err));
	} else if (rep->msgs != sent) {
		fprintf(stderr, "%s: %llu messages sent, %llu received\n",
			xport_name[x], (unsigned long long)sent,
			(unsigned long long)rep->msgs);
		err = -EBADMSG;
	}
	memset(s, 0, sizeof(*s));
	if (!err) {
		double t = (rep->t_end.tv_sec - t0ts.tv_sec) +
			   (rep->t_end.tv_nsec - t0ts.tv_nsec) * 1e-9;

		s->bytes = rep->bytes;
		s->mbps = rep->bytes / t / 1e6;
	}
	if (x == X_RING) {
		s->tx_kicks = l.tx.st.kicks;
		s->tx_waits = l.tx.st.waits;
		s->channels = l.tx.st.channels;
		s->rx_kicks = rep->kicks;
		s->rx_waits = rep->waits;
		if (rep->timeouts || l.w.timeouts)
			fprintf(stderr,
				"ring: %llu/%llu wait timeouts of %d ms "
				"(tx/rx): a lost wake-up?\n",
				(unsigned long long)l.w.timeouts,
				(unsigned long long)rep->timeouts, WAIT_MS);
	}
	link_close(&l);
	return err;
}

/* --- the sweep ------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median rate of @n samples; the counters are summed over all of them. */
static struct sample median(const struct sample *s, int n)
{
	struct sample m = {0};
	double v[ROUNDS_MAX];

	for (int i = 0; i < n; i++) {
		v[i] = s[i].mbps;
		m.bytes += s[i].bytes;
		m.tx_kicks += s[i].tx_kicks;
		m.rx_kicks += s[i].rx_kicks;
		m.tx_waits += s[i].tx_waits;
		m.rx_waits += s[i].rx_waits;
		m.channels += s[i].channels;
	}
	qsort(v, n, sizeof(v[0]), cmp_double);
	m.mbps = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	return m;
}

static FILE *csv_open(const char *path)
{
	FILE *f = fopen(path, "a+");

	if (!f) {
		fprintf(stderr, "Failed to open %s: %s\n", path,
			strerror(errno));
		return NULL;
	}
	fseek(f, 0, SEEK_END);
	if (ftell(f) == 0)
		fprintf(f, "env,benchmark,param,baseline,baseline_value,"
			   "fastivc_value,unit,ratio\n");
	return f;
}

static const struct ring_cfg *cfgs;
static int n_cfgs;
static int misses;

/*
 * A target the ring is judged on: at least @min_ratio of baseline @x, or
 * strictly ahead of it when @min_ratio is 1.
 */
static void target(const char *what, const struct sample *base, enum xport x,
		   double min_ratio, double ring, const char *m)
{
	double want = min_ratio * base[x].mbps;

	if (min_ratio == 1 ? ring > want : ring >= want)
		return;
	printf("    TARGET MISSED: %s %s at msg=%s (%.2f vs %.2f MB/s)\n", what,
	       xport_name[x], m, ring, base[x].mbps);
	misses++;
}

static void report_point(FILE *csv, const struct ring_cfg *c, size_t msg,
			 const struct sample *base, const struct sample *ring)
{
	double mb = ring->bytes / 1e6, v = ring->mbps;
	char m[16], s[16];

	fmt_size(m, sizeof(m), msg);
	fmt_size(s, sizeof(s), c->s);
	printf("  N=%-2u S=%-4s ring %9.2f MB/s  x%-6.2f pipe  x%-6.2f unix  "
	       "%5.1f%% memcpy  %5.1f%% stream | per MB: kicks tx %.2f rx "
	       "%.2f, sleeps %.2f, channels %.1f\n",
	       c->n, s, v, v / base[X_PIPE].mbps, v / base[X_UNIX].mbps,
	       100 * v / base[X_MEMCPY].mbps, 100 * v / base[X_STREAM].mbps,
	       ring->tx_kicks / mb, ring->rx_kicks / mb,
	       (ring->tx_waits + ring->rx_waits) / mb, ring->channels / mb);
	if (msg >= 65536) {
		target("below 50% of", base, X_MEMCPY, 0.5, v, m);
		target("below 50% of", base, X_STREAM, 0.5, v, m);
	}
	if (msg >= 1024)
		target("not ahead of", base, X_UNIX, 1, v, m);
	for (int x = 0; csv && x < X_RING; x++)
		fprintf(csv,
			"local,%s,\"msg=%s,N=%u,S=%s\",%s,%.2f,%.2f,%s,%.3f\n",
			c->bench, m, c->n, s, xport_name[x], base[x].mbps, v,
			"MB/s", v / base[x].mbps);
}

/* Every sample of one message size, for all rounds. */
struct size_samples {
	struct sample base[X_RING][ROUNDS_MAX];
	struct sample ring[CFGS_MAX][ROUNDS_MAX];
};

/* Round @r at one message size: baselines and ring, in alternating order. */
static int measure_size(struct size_samples *ss, int r, struct fivc_backend *be,
			uint8_t *src, uint8_t *dst, size_t msg,
			const struct opts *o)
{
	int err = 0;

	for (int half = 0; half < 2; half++) {
		bool do_ring = (half == 0) == (r % 2 == 1);

		for (int x = 0; !do_ring && !err && x < X_RING; x++)
			err = measure(x, NULL, be, src, dst, msg, o,
				      &ss->base[x][r]);
		for (int c = 0; do_ring && !err && c < n_cfgs; c++)
			err = measure(X_RING, &cfgs[c], be, src, dst, msg, o,
				      &ss->ring[c][r]);
	}
	return err;
}

static void report_size(FILE *csv, const struct size_samples *ss, size_t msg,
			const struct opts *o)
{
	struct sample bm[X_RING];
	char m[16];

	for (int x = 0; x < X_RING; x++)
		bm[x] = median(ss->base[x], o->rounds);
	printf("msg=%s: pipe %.2f, unix_socketpair %.2f, memcpy %.2f, "
	       "memcpy_stream %.2f MB/s\n",
	       fmt_size(m, sizeof(m), msg), bm[X_PIPE].mbps, bm[X_UNIX].mbps,
	       bm[X_MEMCPY].mbps, bm[X_STREAM].mbps);
	for (int c = 0; c < n_cfgs; c++) {
		struct sample rm = median(ss->ring[c], o->rounds);

		report_point(csv, &cfgs[c], msg, bm, &rm);
	}
}

/*
 * Busy and steal time of the whole machine, in seconds. The bench compares
 * it with its own CPU time to say how much else ran during the measurement.
 */
static void cpu_times(double *busy, double *steal)
{
	unsigned long long v[8] = {0};
	double hz = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "r");

	*busy = *steal = 0;
	if (!f)
		return;
	/* user nice system idle iowait irq softirq steal */
	if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
		   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
		*busy = (v[0] + v[1] + v[2] + v[5] + v[6]) / hz;
		*steal = v[7] / hz;
	}
	fclose(f);
}

static double own_cpu(void)
{
	struct rusage self, kids;

	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	return self.ru_utime.tv_sec + self.ru_stime.tv_sec +
	       kids.ru_utime.tv_sec + kids.ru_stime.tv_sec +
	       (self.ru_utime.tv_usec + self.ru_stime.tv_usec +
		kids.ru_utime.tv_usec + kids.ru_stime.tv_usec) *
		       1e-6;
}

/* Says how much else ran on the machine since cpu_times(busy0, steal0). */
static void report_noise(double wall, double busy0, double steal0)
{
	double busy, steal, other;

	cpu_times(&busy, &steal);
	other = busy - busy0 - own_cpu();
	if (other < 0)
		other = 0;
	steal -= steal0;
	printf("CPU time during the run: %.1f s wall, %.1f s ours, %.1f s by "
	       "other processes, %.1f s stolen by the hypervisor%s\n",
	       wall, own_cpu(), other, steal,
	       other > 0.05 * wall || steal > 0.05 * wall
		       ? " (NOISY: numbers are unreliable)"
		       : "");
}

/* Producer and consumer on the first two CPUs we may use. */
static void pick_cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set))
		return;
	for (int i = 0; i < CPU_SETSIZE && cpu_cons < 0; i++) {
		if (!CPU_ISSET(i, &set))
			continue;
		if (cpu_prod < 0)
			cpu_prod = i;
		else
			cpu_cons = i;
	}
	if (cpu_cons < 0) {
		printf("only one CPU: producer and consumer share it, "
		       "nothing pinned\n");
		cpu_prod = -1;
		return;
	}
	printf("pinned (sched_setaffinity): producer on CPU %d, consumer on "
	       "CPU %d, for the ring, pipe and socketpair; memcpy on CPU "
	       "%d\n",
	       cpu_prod, cpu_cons, cpu_prod);
	pin(cpu_prod);
}

/* xorshift32: incompressible, and the same in every process. */
static void fill_pattern(uint8_t *p, size_t len)
{
	uint32_t x = 2463534242u;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

static void usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s [--quick] [--rounds N] [--seconds S] [--csv PATH]\n"
		"  --quick      fewer message sizes and ring geometries, 1 "
		"round\n"
		"  --rounds N   repetitions per point, median taken (default "
		"3)\n"
		"  --seconds S  time cap of one measurement (default 0.3)\n"
		"  --csv PATH   append result rows (default "
		"build/bench/results.csv)\n"
		"  --msg SIZE   only this message size (e.g. 64K), for "
		"profiling\n",
		prog);
}

/* "64", "4K", "1M"; 0 if malformed. */
static uint32_t parse_size(const char *arg)
{
	char *end;
	unsigned long v = strtoul(arg, &end, 10);

	if (*end == 'K' || *end == 'k')
		v <<= 10;
	else if (*end == 'M' || *end == 'm')
		v <<= 20;
	if (*end && *end != 'K' && *end != 'k' && *end != 'M' && *end != 'm')
		return 0;
	if (*end && end[1])
		return 0;
	return v > MSG_MAX ? 0 : (uint32_t)v;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lopts[] = {
		{"quick", no_argument, NULL, 'q'},
		{"rounds", required_argument, NULL, 'r'},
		{"seconds", required_argument, NULL, 's'},
		{"csv", required_argument, NULL, 'c'},
		{"msg", required_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	int rounds = 0, opt;

	*o = (struct opts){.rounds = 3,
			   .seconds = 0.3,
			   .max_bytes = 4ull << 30,
			   .csv = "build/bench/results.csv"};
	while ((opt = getopt_long(argc, argv, "qr:s:c:m:h", lopts, NULL)) !=
	       -1) {
		switch (opt) {
		case 'q':
			o->quick = true;
			break;
		case 'r':
			rounds = atoi(optarg);
			if (rounds < 1 || rounds > ROUNDS_MAX)
				return -EINVAL;
			break;
		case 's':
			o->seconds = atof(optarg);
			if (!(o->seconds > 0))
				return -EINVAL;
			break;
		case 'c':
			o->csv = optarg;
			break;
		case 'm':
			o->msg = parse_size(optarg);
			if (!o->msg || o->msg > MSG_MAX)
				return -EINVAL;
			break;
		default:
			return -EINVAL;
		}
	}
	if (optind != argc)
		return -EINVAL;
	if (o->quick) {
		o->rounds = 1;
		o->seconds = 0.15;
		o->max_bytes = 512ull << 20;
	}
	if (rounds)
		o->rounds = rounds;
	return 0;
}

int main(int argc, char **argv)
{
	struct fivc_backend *be = NULL;
	const uint32_t *sizes;
	uint8_t *src, *dst;
	int n_sizes, err;
	double busy0, steal0, wall0;
	struct size_samples *ss;
	struct opts o;
	FILE *csv;

	if (parse_opts(argc, argv, &o)) {
		usage(argv[0]);
		return 2;
	}
	cfgs = o.quick ? cfgs_quick : cfgs_full;
	n_cfgs = o.quick ? ARRAY_SIZE(cfgs_quick) : ARRAY_SIZE(cfgs_full);
	sizes = o.quick ? sizes_quick : sizes_full;
	n_sizes = o.quick ? ARRAY_SIZE(sizes_quick) : ARRAY_SIZE(sizes_full);
	if (o.msg) {
		sizes = &o.msg;
		n_sizes = 1;
	}

	signal(SIGPIPE, SIG_IGN);
	rep = mmap(NULL, sizeof(*rep), PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	src = buf_alloc(MSG_MAX, true);
	dst = buf_alloc(MSG_MAX, true);
	pattern = buf_alloc(MSG_MAX, false); /* the consumer's reference */
	if (rep == MAP_FAILED || !src || !dst || !pattern) {
		fprintf(stderr, "Failed to allocate buffers\n");
		return 1;
	}
	fill_pattern(pattern, MSG_MAX);
	memcpy(src, pattern, MSG_MAX);
	memset(dst, 0, MSG_MAX);

	err = fivc_backend_open_local(&be);
	if (err) {
		fprintf(stderr, "Failed to open the local backend: %s\n",
			strerror(-err));
		return 1;
	}
	ss = calloc(n_sizes, sizeof(*ss));
	csv = csv_open(o.csv);
	if (!csv || !ss)
		return 1;
	printf("bench_ring: %d round(s), median; each point up to %.2f s or "
	       "%llu MiB; MB = 10^6 bytes\n",
	       o.rounds, o.seconds, (unsigned long long)(o.max_bytes >> 20));
	pick_cpus();
	cpu_times(&busy0, &steal0);
	wall0 = now_s();
	/*
	 * Rounds outermost: the samples of one point are spread over the whole
	 * run, so a slow spell of the machine cannot take all of them.
	 */
	for (int r = 0; r < o.rounds && !err; r++) {
		printf("round %d/%d\n", r + 1, o.rounds);
		fflush(stdout);
		for (int i = 0; i < n_sizes && !err; i++)
			err = measure_size(&ss[i], r, be, src, dst, sizes[i],
					   &o);
	}
	for (int i = 0; i < n_sizes && !err; i++)
		report_size(csv, &ss[i], sizes[i], &o);
	report_noise(now_s() - wall0, busy0, steal0);
	fclose(csv);
	free(ss);
	fivc_backend_close(be);
	if (err) {
		fprintf(stderr, "bench_ring: failed: %s\n", strerror(-err));
		return 1;
	}
	printf("bench_ring: %d target miss(es); rows appended to %s\n", misses,
	       o.csv);
	return 0;
}
