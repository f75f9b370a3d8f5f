// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Parked messages (park.h). One list in arrival order, which is deadline
 * order while setup_timeout_ms stays the same (after a reload that shortens
 * it, an entry may wait behind an older one up to the old timeout), and a
 * hash by tunnel id whose chains hold only the ids that share a bucket.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "link.h"
#include "fastivc/log.h"
#include "fastivc/tunnel_msg.h"
#include "park.h"

#define PARK_BUCKETS 1024u
/* Each link parks at most this many per slot the pool keeps ready ... */
#define PARK_PER_POOL_SLOT 4u
/* ... and at least this many, whatever pool and max_tunnels say. */
#define PARK_MIN 16u
/* A link at its bound says so once, then again no sooner than this. */
#define PARK_LOG_NS (10 * 1000000000ULL)

struct park_entry {
	struct peer_link *link;
	uint64_t deadline_ns;
	struct park_entry *prev, *next; /* every entry, oldest first */
	struct park_entry *hnext;	/* its bucket, newest first */
	struct fivc_tunnel_msg m;
};

struct agent_park {
	struct park_entry *head, *tail;
	struct park_entry *bucket[PARK_BUCKETS];
	uint32_t n;
};

static struct park_entry **bucket_of(struct agent_park *p, uint64_t id)
{
	/* Tunnel ids are hashes already (flow.c, tunnel_id_of). */
	return &p->bucket[(id ^ (id >> 32)) % PARK_BUCKETS];
}

uint32_t park_max(const struct agent *a)
{
	uint32_t n = PARK_PER_POOL_SLOT * a->cfg.pool;

	/* More than max_tunnels could never all be accepted. */
	if (n > a->cfg.max_tunnels)
		n = a->cfg.max_tunnels;
	return n < PARK_MIN ? PARK_MIN : n;
}

uint32_t park_count(const struct agent *a)
{
	return a->park ? a->park->n : 0;
}

int park_add(struct agent *a, struct peer_link *l, struct fivc_tunnel_msg *m,
	     uint64_t now)
{
	struct agent_park *p = a->park;
	struct park_entry *e, **b;

	if (l->n_parked >= park_max(a)) {
		a->ctr.parked_refused++;
		if (!l->park_logged_ns || now - l->park_logged_ns > PARK_LOG_NS)
			pr_warn("parked messages from domain %u reached the "
				"bound (%u): refusing more",
				l->domid, park_max(a));
		l->park_logged_ns = now;
		return -EBUSY;
	}
	if (!p && !(p = a->park = calloc(1, sizeof(*p))))
		return -ENOMEM;
	e = malloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->link = l;
	e->deadline_ns = now + a->cfg.setup_timeout_ms * 1000000ULL;
	e->m = *m; /* the entry owns its fds now */
	e->next = NULL;
	e->prev = p->tail;
	if (p->tail)
		p->tail->next = e;
	else
		p->head = e;
	p->tail = e;
	b = bucket_of(p, m->tunnel_id);
	e->hnext = *b;
	*b = e;
	p->n++;
	l->n_parked++;
	return 0;
}

/* Unlink @e from both lists and hand its message to @m. */
static void take(struct agent_park *p, struct park_entry *e,
		 struct fivc_tunnel_msg *m)
{
	struct park_entry **pp = bucket_of(p, e->m.tunnel_id);

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (e->prev)
		e->prev->next = e->next;
	else
		p->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		p->tail = e->prev;
	p->n--;
	e->link->n_parked--;
	*m = e->m;
	free(e);
}

bool park_take(struct agent *a, uint64_t id, uint32_t domid,
	       struct peer_link **l, struct fivc_tunnel_msg *m)
{
	struct park_entry *e, *oldest = NULL;

	if (!a->park)
		return false;
	/* Newest first: the last match is the oldest. */
	for (e = *bucket_of(a->park, id); e; e = e->hnext)
		if (e->m.tunnel_id == id && e->link->domid == domid)
			oldest = e;
	if (!oldest)
		return false;
	*l = oldest->link;
	take(a->park, oldest, m);
	return true;
}

bool park_expired(struct agent *a, uint64_t now, struct peer_link **l,
		  struct fivc_tunnel_msg *m)
{
	struct park_entry *e = a->park ? a->park->head : NULL;

	if (!e || e->deadline_ns > now)
		return false;
	*l = e->link;
	take(a->park, e, m);
	return true;
}

void park_link_down(struct agent *a, struct peer_link *l)
{
	struct park_entry *e, *next;
	struct fivc_tunnel_msg m;

	for (e = a->park ? a->park->head : NULL; e && l->n_parked; e = next) {
		next = e->next;
		if (e->link != l)
			continue;
		take(a->park, e, &m);
		fivc_tunnel_msg_release(&m);
	}
}

void park_fini(struct agent *a)
{
	struct fivc_tunnel_msg m;
	struct peer_link *l;

	while (park_expired(a, UINT64_MAX, &l, &m))
		fivc_tunnel_msg_release(&m);
	free(a->park);
	a->park = NULL;
}
