// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Parked messages without a network (agent/park.c): the bound per link and
 * its counter, arrival order per tunnel, ids that share a hash bucket,
 * expiry in arrival order, and the fds of what a dead link parked.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../../agent/link.h"
#include "../../agent/park.h"
#include "../util/testutil.h"
#include "fastivc/log.h"

#define MS 1000000ULL

static void msg(struct fivc_tunnel_msg *m, uint32_t type, uint64_t id)
{
	fivc_tunnel_msg_init(m, type, id);
}

static void test_bound(void)
{
	struct agent a = {0};
	struct peer_link l = {.domid = 12}, other = {.domid = 13};
	struct fivc_tunnel_msg m;
	uint32_t max;

	a.cfg.pool = 32;
	a.cfg.max_tunnels = 4096;
	a.cfg.setup_timeout_ms = 2000;
	max = park_max(&a);
	CHECK_EQ(max, 128, "4 x pool");
	for (uint32_t i = 0; i < max; i++) {
		msg(&m, FIVC_TMSG_CREATE, i + 1);
		if (!CHECK_EQ(park_add(&a, &l, &m, 0), 0, "under the bound"))
			break;
	}
	msg(&m, FIVC_TMSG_CREATE, 9999);
	CHECK_EQ(park_add(&a, &l, &m, 0), -EBUSY, "at the bound: refused");
	CHECK_EQ(a.ctr.parked_refused, 1, "refusal counted");
	CHECK_EQ(park_add(&a, &other, &m, 0), 0, "another link has its own");
	CHECK_EQ(park_count(&a), max + 1, "count");
	CHECK_EQ(l.n_parked, max, "per link count");
	park_fini(&a);
	CHECK_EQ(park_count(&a), 0, "fini empties");

	a.cfg.max_tunnels = 2;
	CHECK_EQ(park_max(&a), 16, "at least 16");
	a.cfg.max_tunnels = 40;
	CHECK_EQ(park_max(&a), 40, "at most max_tunnels");
}

static void test_order(void)
{
	struct agent a = {0};
	struct peer_link l = {.domid = 12}, other = {.domid = 13}, *got;
	struct fivc_tunnel_msg m;
	/* Same bucket: the ids differ by a multiple of the bucket count. */
	uint64_t id = 77, twin = 77 + 1024;

	a.cfg.pool = 32;
	a.cfg.max_tunnels = 4096;
	a.cfg.setup_timeout_ms = 100;
	msg(&m, FIVC_TMSG_CREATE, id);
	park_add(&a, &l, &m, 0);
	msg(&m, FIVC_TMSG_CREATE, twin);
	park_add(&a, &l, &m, 1 * MS);
	msg(&m, FIVC_TMSG_FALLBACK, id);
	park_add(&a, &l, &m, 2 * MS);
	msg(&m, FIVC_TMSG_CREATE, id);
	park_add(&a, &other, &m, 3 * MS);

	CHECK(!park_take(&a, 5, 12, &got, &m), "no such tunnel", "");
	CHECK(park_take(&a, id, 12, &got, &m) && got == &l &&
		      m.type == FIVC_TMSG_CREATE,
	      "oldest first: the CREATE", "type %u", m.type);
	CHECK(park_take(&a, id, 12, &got, &m) && m.type == FIVC_TMSG_FALLBACK,
	      "then the FALLBACK", "type %u", m.type);
	CHECK(!park_take(&a, id, 12, &got, &m), "none left for domain 12", "");
	CHECK(park_take(&a, id, 13, &got, &m) && got == &other,
	      "the same id from another domain is its own", "");
	CHECK(!park_expired(&a, 100 * MS, &got, &m), "nothing due yet", "");
	CHECK(park_expired(&a, 101 * MS, &got, &m) && m.tunnel_id == twin,
	      "the twin expires", "id %llu", (unsigned long long)m.tunnel_id);
	CHECK_EQ(park_count(&a), 0, "all taken");
	CHECK_EQ(l.n_parked + other.n_parked, 0, "links' counts back to 0");
	park_fini(&a);
}

static void test_link_down(void)
{
	struct agent a = {0};
	struct peer_link l = {.domid = 12}, other = {.domid = 13}, *got;
	struct fivc_tunnel_msg m;
	int fd = -1;

	a.cfg.pool = 32;
	a.cfg.max_tunnels = 4096;
	a.cfg.setup_timeout_ms = 100;
	for (int i = 0; i < 3; i++) {
		msg(&m, FIVC_TMSG_CREATE, (uint64_t)i + 1);
		m.shm.fd = eventfd(0, EFD_CLOEXEC);
		if (i == 1)
			fd = m.shm.fd;
		park_add(&a, i == 2 ? &other : &l, &m, 0);
	}
	park_link_down(&a, &l);
	CHECK(fcntl(fd, F_GETFD) < 0 && errno == EBADF,
	      "a dead link's parked fds are closed", "");
	CHECK_EQ(l.n_parked, 0, "none left for it");
	CHECK(park_take(&a, 3, 13, &got, &m) && m.shm.fd >= 0,
	      "the other link's message stays", "");
	fivc_tunnel_msg_release(&m);
	park_fini(&a);
}

int main(void)
{
	fivc_log_set_level(FIVC_LOG_ERR); /* the bound's one line */
	test_bound();
	test_order();
	test_link_down();
	return test_report("parked messages: bound, order, expiry, link down");
}
