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
 */
#include <errno.h>
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

static int link_connect(const char *path, uint32_t domid)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	uint32_t hello[2] = {LINK_HELLO_MAGIC, domid};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) ||
	    send(fd, hello, sizeof(hello), MSG_NOSIGNAL) != sizeof(hello))
		die(path, -errno);
	return fd;
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
		fprintf(stderr, "hostile_peer: skipping message type %u\n",
			m->type);
		fivc_tunnel_msg_release(m);
	}
}

/* Offer a real, formatted ring under the victim's tunnel id. */
static void offer(struct fivc_backend *be, int fd, uint64_t id,
		  struct tunnel *t, uint64_t *seed)
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
	t = calloc((size_t)argc, sizeof(*t));
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
