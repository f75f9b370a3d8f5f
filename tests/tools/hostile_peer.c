// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * hostile_peer: a fake peer agent for tests/netns/test_hostile_peer.sh. It
 * speaks the agent-to-agent link protocol (agent/link.c) to a real victim
 * agent, sets each steered connection's tunnel up honestly, then breaks the
 * ring it offered: one connection per MODE, in order.
 *
 *   hostile_peer LINK_SOCK PEER_DOMID MODE...
 *
 * LINK_SOCK is the victim's <link_dir>/dom<victim>.sock; the HELLO names
 * PEER_DOMID. For each MODE it waits for the victim's CREATE, ACCEPTs it,
 * offers its own ring with CREATE under the same tunnel id, waits for the
 * victim's ACCEPT, prints "MODE up", rewrites the ring's headers and kicks.
 * It holds the link until its stdin closes.
 *
 *   size    channel 0 published with size S + 1
 *   gen     channel 0 published with a generation far ahead
 *   pend    channel 0 published with pend_read 7 (one receiver)
 *   close   SEND_CLOSE over a published channel of size 0
 *   random  random bytes in every channel header
 *
 * Ring ids (docs/steering.md, "Ring reuse"): these MODEs answer the
 * victim's CREATE with one naming a ring by id, print "MODE refused ERRNO"
 * with the victim's REJECT, and send FALLBACK (TCP) for the tunnel:
 *
 *   ringrange  a cached ring id out of range
 *   ringnone   a cached ring id never offered
 *   ringhold   (not an attack) a real ring with id 5, set up: "ringhold up"
 *   ringbusy   cached ring 5 while ringhold's flow still reads it; then
 *              resets ring 5, so the victim frees that flow and releases
 *              the ring
 *   ringgeom   "released 5 kept K" once the victim gave ring 5 back (in
 *              the ring, or a RELEASE message; 2 s at most), then cached
 *              ring 5 with another geometry
 *
 * Or one attack on the link itself (docs/security.md, "Link frames and
 * parked messages"):
 *
 *   hostile_peer LINK_SOCK PEER_DOMID trickle [FRAMES [PAUSE_MS]]
 *       FRAMES (5) KEEPALIVEs a byte at a time, PAUSE_MS (80) apart, then
 *       prints "trickled"; then 15 bytes of a header it never completes,
 *       "stalled", and "dropped after S s" once the victim closes the link
 *   hostile_peer LINK_SOCK PEER_DOMID flood N
 *       N CREATEs (a local ring's 3 fds each) for tunnel ids no flow has,
 *       reading the victim's replies; prints "flooded N", and "dropped
 *       after S s" if the victim closes the link
 *   hostile_peer LINK_SOCK PEER_DOMID fbflood N
 *       N FALLBACKs for tunnel ids no flow has, never reading what the
 *       victim answers; prints "flooded I" (I sent before the victim
 *       closed the link, if it did) and "dropped after S s"
 *   hostile_peer LINK_SOCK PEER_DOMID slowhello
 *       3 bytes of the HELLO, never the rest: "stalled", then "dropped
 *       after S s" once the victim closes the link
 *
 * Each holds the link until its stdin closes or the victim drops it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../util/testutil.h"
#include "fastivc/ring.h"
#include "fastivc/shm.h"
#include "fastivc/tunnel_msg.h"

/* agent/link.c's HELLO: "FIVL", then the connecting domain, host order. */
#define LINK_HELLO_MAGIC 0x4c564946u

struct tunnel {
	struct fivc_shm *shm;
	struct fivc_evch *ev;
	struct fivc_tx tx;
};

static void die(const char *what, int err) __attribute__((noreturn));

static void die(const char *what, int err)
{
	fprintf(stderr, "hostile_peer: %s: %s\n", what, strerror(-err));
	exit(1);
}

/* Connect and send the first @hello_len bytes of the HELLO. */
static int link_connect_n(const char *path, uint32_t domid, size_t hello_len)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	uint32_t hello[2] = {LINK_HELLO_MAGIC, domid};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    send(fd, hello, hello_len, MSG_NOSIGNAL) != (ssize_t)hello_len)
		die(path, -errno);
	return fd;
}

static int link_connect(const char *path, uint32_t domid)
{
	return link_connect_n(path, domid, 8);
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Read and drop what the victim sent; -1 once it closed the link. */
static int drain(int fd)
{
	char buf[4096];
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		;
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		return -1;
	return 0;
}

/*
 * Hold the link until stdin closes (exit 0) or the victim drops it: then
 * print how long after @since, and exit 0 too.
 */
static int hold(int fd, double since)
{
	struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
			      {.fd = STDIN_FILENO, .events = POLLIN}};
	char c;

	for (;;) {
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			die("poll", -errno);
		if (p[0].revents && drain(fd)) {
			printf("dropped after %.1f s\n", now_sec() - since);
			fflush(stdout);
			/* The test closes stdin once it has looked. */
			while (read(STDIN_FILENO, &c, 1) > 0)
				;
			return 0;
		}
		if (p[1].revents && read(STDIN_FILENO, &c, 1) <= 0)
			return 0;
	}
}

/* @frames KEEPALIVEs a byte at a time, then a header never finished. */
static int trickle(int fd, unsigned int frames, unsigned int pause_ms)
{
	uint8_t buf[FIVC_TMSG_HDR_SIZE];
	struct fivc_tunnel_msg m;

	fivc_tunnel_msg_init(&m, FIVC_TMSG_KEEPALIVE, 0);
	if (fivc_tunnel_msg_encode(&m, buf, sizeof(buf)) != sizeof(buf))
		die("encoding", -EINVAL);
	for (unsigned int i = 0; i <= frames; i++) {
		/* The last frame stops one byte short, for good. */
		size_t n = i < frames ? sizeof(buf) : sizeof(buf) - 1;

		for (size_t b = 0; b < n; b++) {
			if (drain(fd) ||
			    send(fd, buf + b, 1, MSG_NOSIGNAL) != 1) {
				printf("dropped while trickling frame %u\n", i);
				return 1;
			}
			sleep_ms(pause_ms);
		}
		if (i + 1 == frames) {
			printf("trickled\n");
			fflush(stdout);
		}
	}
	printf("stalled\n");
	fflush(stdout);
	return hold(fd, now_sec());
}

/* @n FALLBACKs for flows nobody has; the answers are never read. */
static int fbflood(int fd, unsigned long n, uint64_t *seed)
{
	struct fivc_tunnel_msg m;
	unsigned long i;

	fivc_tunnel_msg_init(&m, FIVC_TMSG_FALLBACK, 0);
	m.fb_mode = FIVC_FB_TCP;
	for (i = 0; i < n; i++) {
		m.tunnel_id = prng_next(seed) | 1;
		if (fivc_tunnel_msg_send(fd, &m))
			break;
	}
	printf("flooded %lu\n", i);
	fflush(stdout);
	return hold(fd, now_sec());
}

/* @n CREATEs, each with a local ring's 3 fds, for flows nobody has. */
static int flood(struct fivc_backend *be, int fd, unsigned long n,
		 uint64_t *seed)
{
	const struct fivc_backend_ops *ops = be->ops;
	struct fivc_shm *shm = NULL;
	struct fivc_evch *ev = NULL;
	struct fivc_tunnel_msg m;
	struct fivc_ring_geom g;
	unsigned long i;
	int err;

	fivc_ring_geom_default(&g);
	fivc_tunnel_msg_init(&m, FIVC_TMSG_CREATE, 0);
	m.geom = g;
	m.has_evch = true;
	err = ops->shm_offer(be, fivc_ring_region_size(&g), 0, &shm);
	if (!err)
		err = ops->evch_offer(be, 0, &ev);
	if (!err)
		err = ops->shm_describe(shm, &m.shm);
	if (!err)
		err = ops->evch_describe(ev, &m.evch);
	if (err)
		die("offering a ring", err);
	for (i = 0; i < n; i++) {
		m.tunnel_id = prng_next(seed) | 1;
		if (drain(fd) || fivc_tunnel_msg_send(fd, &m))
			break;
	}
	fivc_shm_desc_clear(&m.shm);
	printf("flooded %lu\n", i);
	fflush(stdout);
	return hold(fd, now_sec());
}

/* The next message of @type from the victim; others are skipped. */
static void recv_type(int fd, uint32_t type, struct fivc_tunnel_msg *m)
{
	for (;;) {
		int err = fivc_tunnel_msg_recv(fd, m);

		if (err)
			die("reading the link", err);
		if (m->type == type)
			return;
		if (m->type == FIVC_TMSG_REJECT && type == FIVC_TMSG_ACCEPT)
			die("the victim refused our ring", -(int)m->reason);
		if (m->type == FIVC_TMSG_RELEASE) {
			printf("released %u kept %d\n", m->ring_id, m->kept);
			fflush(stdout);
		}
		fprintf(stderr, "hostile_peer: skipping message type %u\n",
			m->type);
		fivc_tunnel_msg_release(m);
	}
}

/* Offer a real, formatted ring under the victim's tunnel id. */
static void offer_id(struct fivc_backend *be, int fd, uint64_t id,
		     struct tunnel *t, uint64_t *seed, uint32_t ring_id)
{
	const struct fivc_backend_ops *ops = be->ops;
	struct fivc_kick kick = {fivc_evch_kick, NULL};
	struct fivc_tunnel_msg m;
	struct fivc_ring_geom g;
	int err;

	fivc_ring_geom_default(&g);
	g.gen_first = (uint32_t)prng_next(seed);
	err = ops->shm_offer(be, fivc_ring_region_size(&g), 0, &t->shm);
	if (!err)
		err = ops->evch_offer(be, 0, &t->ev);
	kick.arg = t->ev;
	if (!err)
		err = fivc_tx_init(&t->tx, t->shm->addr, t->shm->size, &g,
				   &kick);
	fivc_tunnel_msg_init(&m, FIVC_TMSG_CREATE, id);
	m.geom = g;
	m.has_evch = true;
	m.ring_id = ring_id;
	if (!err)
		err = ops->shm_describe(t->shm, &m.shm);
	if (!err)
		err = ops->evch_describe(t->ev, &m.evch);
	if (!err)
		err = fivc_tunnel_msg_send(fd, &m);
	fivc_shm_desc_clear(&m.shm);
	if (err)
		die("offering a ring", err);
}

static void offer(struct fivc_backend *be, int fd, uint64_t id,
		  struct tunnel *t, uint64_t *seed)
{
	offer_id(be, fd, id, t, seed, 0);
}

/* CREATE naming cached ring @ring_id; print the victim's REJECT; fall back. */
static void name_ring(int fd, uint64_t id, const char *mode, uint32_t ring_id,
		      uint32_t channel_size)
{
	struct fivc_tunnel_msg m;

	fivc_tunnel_msg_init(&m, FIVC_TMSG_CREATE, id);
	fivc_ring_geom_default(&m.geom);
	m.geom.channel_size = channel_size;
	m.cached = true;
	m.ring_id = ring_id;
	if (fivc_tunnel_msg_send(fd, &m))
		die("naming a ring", -EIO);
	recv_type(fd, FIVC_TMSG_REJECT, &m);
	printf("%s refused %s\n", mode,
	       m.reason == EINVAL  ? "EINVAL"
	       : m.reason == EBUSY ? "EBUSY"
				   : strerror((int)m.reason));
	fflush(stdout);
	fivc_tunnel_msg_init(&m, FIVC_TMSG_FALLBACK, id);
	m.fb_mode = FIVC_FB_TCP;
	if (fivc_tunnel_msg_send(fd, &m))
		die("falling back", -EIO);
}

/* The ring modes; @held is ringhold's tunnel. */
static int ring_mode(struct fivc_backend *be, int fd, uint64_t id,
		     const char *mode, struct tunnel *held, uint64_t *seed)
{
	struct fivc_tunnel_msg m;
	uint32_t size = FIVC_CHANNEL_SIZE_DEFAULT;

	if (!strcmp(mode, "ringrange")) {
		name_ring(fd, id, mode, FIVC_RING_ID_MAX + 1, size);
	} else if (!strcmp(mode, "ringnone")) {
		name_ring(fd, id, mode, 77, size);
	} else if (!strcmp(mode, "ringhold")) {
		offer_id(be, fd, id, held, seed, 5);
		recv_type(fd, FIVC_TMSG_ACCEPT, &m);
		printf("ringhold up\n");
	} else if (!strcmp(mode, "ringbusy")) {
		name_ring(fd, id, mode, 5, size);
		fivc_tx_reset(&held->tx);
	} else if (!strcmp(mode, "ringgeom")) {
		double until = now_sec() + 2;

		while (!fivc_ring_given_back(held->shm->addr, &held->tx.g) &&
		       now_sec() < until)
			usleep(10000);
		if (fivc_ring_given_back(held->shm->addr, &held->tx.g))
			printf("released 5 kept 1\n");
		name_ring(fd, id, mode, 5, size * 2);
	} else {
		return -EINVAL;
	}
	fflush(stdout);
	return 0;
}

/* Publish channel 0 of @t as the producer would, with chosen lies. */
static void publish(struct tunnel *t, uint32_t gen, uint32_t size,
		    uint32_t pend)
{
	struct fivc_chan_hdr *h = t->tx.hdr;

	memset(t->tx.data, 'x', t->tx.g.channel_size);
	__atomic_store_n(&h->gen_num, gen, __ATOMIC_RELAXED);
	__atomic_store_n(&h->size, size, __ATOMIC_RELAXED);
	__atomic_store_n(&h->pend_read, pend, __ATOMIC_SEQ_CST);
}

static int corrupt(struct tunnel *t, const char *mode, uint64_t *seed)
{
	uint32_t gen = t->tx.g.gen_first, s = t->tx.g.channel_size;

	if (!strcmp(mode, "size")) {
		publish(t, gen, s + 1, 1);
	} else if (!strcmp(mode, "gen")) {
		publish(t, gen + 1000, 16, 1);
	} else if (!strcmp(mode, "pend")) {
		publish(t, gen, 16, 7);
	} else if (!strcmp(mode, "close")) {
		publish(t, gen, 0, 1);
		__atomic_store_n(&t->tx.ctrl->tx_state, FIVC_STATE_CLOSED,
				 __ATOMIC_SEQ_CST);
	} else if (!strcmp(mode, "random")) {
		prng_fill(seed, t->tx.hdr,
			  t->tx.g.n_channels * sizeof(*t->tx.hdr));
		/* Channel 0 must look published, or the victim just waits. */
		t->tx.hdr[0].pend_read |= 1;
	} else {
		return -EINVAL;
	}
	return t->shm->be->ops->evch_notify(t->ev);
}

int main(int argc, char **argv)
{
	uint64_t seed = (uint64_t)time(NULL) | 1;
	struct fivc_backend *be;
	struct tunnel *t;
	int fd, err;

	if (argc < 4) {
		fprintf(stderr,
			"usage: hostile_peer LINK_SOCK PEER_DOMID MODE...\n");
		return 2;
	}
	err = fivc_backend_open_local(&be);
	if (err)
		die("opening the local backend", err);
	if (!strcmp(argv[3], "slowhello")) {
		fd = link_connect_n(argv[1],
				    (uint32_t)strtoul(argv[2], NULL, 10), 3);
		printf("stalled\n");
		fflush(stdout);
		return hold(fd, now_sec());
	}
	if (!strcmp(argv[3], "fbflood")) {
		fd = link_connect(argv[1],
				  (uint32_t)strtoul(argv[2], NULL, 10));
		return fbflood(fd,
			       argc > 4 ? strtoul(argv[4], NULL, 10) : 100000,
			       &seed);
	}
	if (!strcmp(argv[3], "trickle") || !strcmp(argv[3], "flood")) {
		fd = link_connect(argv[1],
				  (uint32_t)strtoul(argv[2], NULL, 10));
		if (argv[3][0] == 'f')
			return flood(be, fd,
				     argc > 4 ? strtoul(argv[4], NULL, 10)
					      : 5000,
				     &seed);
		return trickle(fd, argc > 4 ? (unsigned int)atoi(argv[4]) : 5,
			       argc > 5 ? (unsigned int)atoi(argv[5]) : 80);
	}
	t = calloc((size_t)argc + 1, sizeof(*t)); /* t[argc]: ringhold's */
	if (!t)
		die("allocating", -ENOMEM);
	fd = link_connect(argv[1], (uint32_t)strtoul(argv[2], NULL, 10));
	printf("seed %llu\n", (unsigned long long)seed);
	for (int i = 3; i < argc; i++) {
		struct fivc_tunnel_msg m;
		uint64_t id;

		recv_type(fd, FIVC_TMSG_CREATE, &m);
		id = m.tunnel_id;
		fivc_tunnel_msg_release(&m);
		fivc_tunnel_msg_init(&m, FIVC_TMSG_ACCEPT, id);
		err = fivc_tunnel_msg_send(fd, &m);
		if (err)
			die("accepting", err);
		if (!strncmp(argv[i], "ring", 4)) {
			err = ring_mode(be, fd, id, argv[i], &t[argc], &seed);
			if (err)
				die(argv[i], err);
			continue;
		}
		offer(be, fd, id, &t[i], &seed);
		recv_type(fd, FIVC_TMSG_ACCEPT, &m);
		printf("%s up\n", argv[i]);
		fflush(stdout);
		err = corrupt(&t[i], argv[i], &seed);
		if (err)
			die(argv[i], err);
	}
	/*
	 * Hold the link until stdin closes: a link that went down would tear
	 * the last tunnel down before the victim saw what broke it.
	 */
	while (read(STDIN_FILENO, &seed, sizeof(seed)) > 0)
		;
	close(fd);
	return 0;
}
