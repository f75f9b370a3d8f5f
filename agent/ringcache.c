// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Ring reuse (docs/steering.md, "Ring reuse"): offering a ring costs
 * a region, an event channel, descriptors over the link and the peer's map
 * and bind; unmapping costs TLB shootdowns on both sides. So a flow's ring
 * outlives it, per peer link:
 *
 *   ours    in use by a flow, then idle: waiting for the peer to give it
 *           back (it may still read the last bytes), then free once given
 *           back kept (FIVC_STATE_RELEASED in the ring, or a RELEASE KEPT
 *           of an older peer): reformatted and named by id in a later
 *           CREATE.
 *   peer's  mapped for a flow, then idle once that flow is freed: we gave
 *           it back in the ring, and a CREATE naming its id attaches it
 *           again.
 *
 * Both idle sets are bounded per link (cfg.pool): past it ours are
 * destroyed with an EVICT, the peer's unmapped with a RELEASE not KEPT. What
 * the peer names is checked: an id out of range, unknown, in use by a live
 * flow or with another geometry is refused (ring_refused, one log line).
 *
 * The ring memory this agent holds (ours and the peer's mapped here, in
 * use or idle) stays under shm_mem_permille of MemTotal: beyond it a flow
 * stays on TCP (docs/operations.md, "Shared memory").
 *
 * A half's event channel stays in the epoll set for the half's life, not
 * its flow's: a reused ring costs no epoll_ctl. Kicks go to the flow once
 * its tunnel is up; others (early, or on an idle ring) are only acked.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "flow.h"
#include "fastivc/log.h"
#include "ringcache.h"

#define RC_BUCKETS 64

struct ring_half {
	uint32_t id; /* the owner's name for it; 0: not reusable */
	bool mine;   /* offered by us; else the peer's, mapped */
	/* mine: the peer maps it (a CREATE may name it) / said it is done */
	bool peer_maps, peer_done;
	bool sent; /* mine: a CREATE for it went out since it was taken */
	struct fivc_shm *shm;
	struct fivc_evch *ev;
	struct fivc_ring_geom geom;
	struct flow *flow;	     /* using it; NULL when idle */
	struct ringcache *rc;	     /* NULL: its link is gone */
	struct ring_half *hnext;     /* by id */
	struct ring_half *idle_next; /* idle, oldest first */
	struct agent_watch w;	     /* its event channel */
};

struct ringcache {
	struct ring_half *by_id[2][RC_BUCKETS]; /* [mine] */
	struct ring_half *idle[2];		/* [mine], oldest first */
	uint32_t n_idle[2];
	uint32_t next_id;
};

static uint64_t mem_bound; /* bytes; 0: none */
static uint64_t held;	   /* bytes of every half alive */
static bool bound_biting;  /* the bound cut the room short, said once */

int ringcache_init(struct agent *a)
{
	unsigned long long kb = mem_total_kb();

	if (!kb) {
		pr_err("No MemTotal in /proc/meminfo: ring memory unbounded");
		return -EINVAL;
	}
	mem_bound = kb * 1024 / 1000 * a->cfg.shm_mem_permille;
	pr_info("ring memory bound: %llu MiB (%u/1000 of MemTotal)",
		(unsigned long long)(mem_bound >> 20), a->cfg.shm_mem_permille);
	return 0;
}

static struct ringcache *rc_of(struct peer_link *l)
{
	if (!l->rc)
		l->rc = calloc(1, sizeof(*l->rc));
	return l->rc;
}

static struct ring_half **bucket(struct ringcache *rc, bool mine, uint32_t id)
{
	return &rc->by_id[mine][id % RC_BUCKETS];
}

static struct ring_half *lookup(struct ringcache *rc, bool mine, uint32_t id)
{
	struct ring_half *h = *bucket(rc, mine, id);

	while (h && h->id != id)
		h = h->hnext;
	return h;
}

static void index_add(struct ringcache *rc, struct ring_half *h)
{
	struct ring_half **b = bucket(rc, h->mine, h->id);

	h->rc = rc;
	h->hnext = *b;
	*b = h;
}

static void unlink_from(struct ring_half **pp, struct ring_half *h, bool idle)
{
	for (; *pp; pp = idle ? &(*pp)->idle_next : &(*pp)->hnext) {
		if (*pp == h) {
			*pp = idle ? h->idle_next : h->hnext;
			return;
		}
	}
}

static void idle_add(struct ringcache *rc, struct ring_half *h)
{
	struct ring_half **pp = &rc->idle[h->mine];

	while (*pp)
		pp = &(*pp)->idle_next;
	h->idle_next = NULL;
	*pp = h;
	rc->n_idle[h->mine]++;
}

static void idle_del(struct ringcache *rc, struct ring_half *h)
{
	unlink_from(&rc->idle[h->mine], h, true);
	rc->n_idle[h->mine]--;
}

/* Free a half that is in no idle list; drops it from its index. */
static void half_destroy(struct agent *a, struct ring_half *h)
{
	const struct fivc_backend_ops *ops = a->be->ops;

	if (h->rc && h->id)
		unlink_from(bucket(h->rc, h->mine, h->id), h, false);
	if (h->shm)
		held -= h->shm->size;
	agent_watch_del(a, &h->w);
	ops->evch_destroy(h->ev);
	ops->shm_destroy(h->shm);
	agent_defer_free(a, h); /* its watch may be in this epoll batch */
}

static void half_kicked(struct agent *a, struct agent_watch *w, uint32_t events)
{
	struct ring_half *h = container_of(w, struct ring_half, w);

	(void)events;
	a->ctr.kicks_taken++;
	a->be->ops->evch_ack(h->ev);
	if (h->flow && h->flow->kicks_on)
		flow_kicked(a, h->flow, h->mine);
}

/* Watch @h's event channel from now until it is destroyed. */
static int half_watch(struct agent *a, struct ring_half *h)
{
	h->w.fn = half_kicked;
	h->w.fd = a->be->ops->evch_fd(h->ev);
	return agent_watch_add(a, &h->w, EPOLLIN);
}

static void ring_msg(struct agent *a, struct peer_link *l, uint32_t type,
		     uint32_t id, bool kept)
{
	struct fivc_tunnel_msg m;

	fivc_tunnel_msg_init(&m, type, 0);
	m.ring_id = id;
	m.kept = kept;
	link_send(a, l, &m);
}

static struct peer_link *link_of(struct agent *a, struct ringcache *rc)
{
	for (struct peer_link *l = a->links; l; l = l->next)
		if (l->rc == rc)
			return l;
	return NULL;
}

/* Drop our idle half: the peer drops its mapping too. */
static void mine_drop(struct agent *a, struct ringcache *rc,
		      struct ring_half *h)
{
	struct peer_link *l = link_of(a, rc);

	idle_del(rc, h);
	if (l && h->peer_maps)
		ring_msg(a, l, FIVC_TMSG_EVICT, h->id, false);
	a->ctr.rings_evicted++;
	half_destroy(a, h);
}

/* The oldest idle rings of ours on this link beyond @keep go. */
static void mine_trim(struct agent *a, struct ringcache *rc, uint32_t keep)
{
	while (rc->n_idle[1] > keep)
		mine_drop(a, rc, rc->idle[1]);
}

static bool over_bound(size_t bytes)
{
	return mem_bound && held + bytes > mem_bound;
}

/*
 * Room for @bytes more under the bound, evicting idle rings of ours (any
 * peer's) to make it; for an @offer, room in the backend's limit too.
 */
static bool mem_room(struct agent *a, size_t bytes, bool offer)
{
	for (struct peer_link *l = a->links; l; l = l->next)
		while (l->rc && l->rc->n_idle[1] &&
		       (over_bound(bytes) ||
			(offer && fivc_backend_shm_room(a->be) < bytes)))
			mine_drop(a, l->rc, l->rc->idle[1]);
	return !over_bound(bytes);
}

static uint32_t id_next(struct ringcache *rc)
{
	for (;;) {
		rc->next_id = rc->next_id % FIVC_RING_ID_MAX + 1;
		if (!lookup(rc, true, rc->next_id))
			return rc->next_id;
	}
}

static void flow_tx_set(struct flow *f, struct ring_half *h)
{
	f->tx_half = h;
	f->tx_shm = h->shm;
	f->ev_tx = h->ev;
	h->flow = f;
	h->sent = false;
	h->peer_done = false;
}

/* Has the peer given our idle @h back? A RELEASE KEPT comes in the ring. */
static bool mine_given_back(struct ring_half *h)
{
	if (!h->peer_done && h->peer_maps &&
	    fivc_ring_given_back(h->shm->addr, &h->geom))
		h->peer_done = true;
	return h->peer_done;
}

/* A free ring of ours with geometry @g, if the peer keeps it mapped. */
static struct ring_half *mine_free(struct agent *a, struct ringcache *rc,
				   const struct fivc_ring_geom *g)
{
	struct ring_half *h, *next;

	for (h = rc->idle[1]; h; h = next) {
		next = h->idle_next;
		if (!mine_given_back(h))
			continue; /* still being read: not yet */
		if (memcmp(&h->geom, g, sizeof(*g))) {
			mine_drop(a, rc, h); /* reloaded geometry */
			continue;
		}
		idle_del(rc, h);
		return h;
	}
	return NULL;
}

int ring_tx_take(struct agent *a, struct flow *f,
		 const struct fivc_ring_geom *g, struct fivc_tunnel_msg *m)
{
	const struct fivc_backend_ops *ops = a->be->ops;
	size_t size = fivc_ring_region_size(g);
	struct ringcache *rc = rc_of(f->link);
	struct ring_half *h;
	int err;

	if (!rc)
		return -ENOMEM;
	h = mine_free(a, rc, g);
	if (h) {
		a->ctr.rings_reused++;
		m->cached = true;
		m->ring_id = h->id;
		flow_tx_set(f, h);
		return 0;
	}
	if (!mem_room(a, size, true))
		return -ENOSPC;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->mine = true;
	h->geom = *g;
	err = ops->shm_offer(a->be, size, f->peer_domid, &h->shm);
	if (!err)
		err = ops->evch_offer(a->be, f->peer_domid, &h->ev);
	if (h->shm)
		held += h->shm->size;
	if (!err)
		err = half_watch(a, h);
	if (err) {
		half_destroy(a, h);
		return err;
	}
	err = ops->shm_describe(h->shm, &m->shm);
	if (!err)
		err = ops->evch_describe(h->ev, &m->evch);
	if (err) {
		fivc_shm_desc_clear(&m->shm);
		half_destroy(a, h);
		return err;
	}
	m->has_evch = true;
	h->id = id_next(rc);
	m->ring_id = h->id;
	index_add(rc, h);
	flow_tx_set(f, h);
	return 0;
}

void ring_tx_put(struct agent *a, struct flow *f)
{
	struct ring_half *h = f->tx_half;
	struct peer_link *l;

	if (!h)
		return;
	f->tx_half = NULL;
	h->flow = NULL;
	l = h->rc ? link_of(a, h->rc) : NULL;
	if (!h->sent && h->peer_maps)
		h->peer_done = true; /* taken, never named: as it was */
	if (l && h->sent && !h->peer_done && f->tx_accepted)
		h->peer_maps = true; /* read still: wait for its RELEASE */
	if (l && h->sent && !h->peer_done && !f->tx_accepted) {
		/* Refused, or never answered: the peer must drop it. */
		ring_msg(a, l, FIVC_TMSG_EVICT, h->id, false);
		a->ctr.rings_evicted++;
		half_destroy(a, h);
		return;
	}
	if (!l || !h->peer_maps) {
		half_destroy(a, h); /* nobody else maps it */
		return;
	}
	idle_add(h->rc, h);
	mine_trim(a, h->rc, a->cfg.pool);
}

void ring_tx_sent(struct flow *f)
{
	if (f->tx_half)
		f->tx_half->sent = true;
}

void ring_on_release(struct agent *a, struct peer_link *l,
		     const struct fivc_tunnel_msg *m)
{
	struct ring_half *h = l->rc ? lookup(l->rc, true, m->ring_id) : NULL;

	/* Unknown: we evicted it meanwhile (the messages crossed). */
	if (!h || h->peer_done) {
		pr_debug("stray RELEASE of ring %u from domain %u", m->ring_id,
			 l->domid);
		return;
	}
	h->peer_done = true;
	h->peer_maps = m->kept;
	if (h->flow)
		return; /* our flow still holds it: decided when it is freed */
	if (!m->kept) {
		idle_del(l->rc, h);
		half_destroy(a, h);
	}
}

/* Said once per cause: a peer naming rings it should not. */
static int refuse(struct agent *a, struct peer_link *l, uint32_t id, int why,
		  const char *what)
{
	static uint32_t said;
	uint32_t bit = why == EBUSY ? 1 : 2;

	a->ctr.ring_refused++;
	if (!(said & bit)) {
		said |= bit;
		pr_warn("domain %u named ring %u: %s: refused (ring_refused)",
			l->domid, id, what);
	}
	return why;
}

static int rx_attach(struct flow *f, struct ring_half *h,
		     const struct fivc_ring_geom *g)
{
	struct fivc_kick kick = {fivc_evch_kick, h->ev};

	f->rx_half = h;
	f->rx_shm = h->shm;
	f->ev_rx = h->ev;
	h->flow = f;
	return fivc_rx_attach(&f->rx, h->shm->addr, h->shm->size, g, 0, &kick);
}

/* The cached ring @m names; a positive errno if it names none. */
static int rx_cached(struct agent *a, struct flow *f, struct peer_link *l,
		     const struct fivc_tunnel_msg *m)
{
	struct ring_half *h = l->rc ? lookup(l->rc, false, m->ring_id) : NULL;

	if (m->ring_id > FIVC_RING_ID_MAX)
		return refuse(a, l, m->ring_id, EINVAL, "id out of range");
	if (!h)
		return refuse(a, l, m->ring_id, EINVAL, "not cached here");
	if (h->flow)
		return refuse(a, l, m->ring_id, EBUSY, "in use by a flow");
	if (memcmp(&h->geom, &m->geom, sizeof(m->geom)))
		return refuse(a, l, m->ring_id, EINVAL, "geometry changed");
	idle_del(l->rc, h);
	if (rx_attach(f, h, &m->geom)) {
		/* Not reformatted: the peer broke it, it is no use. */
		f->rx_half = NULL;
		f->rx_shm = NULL;
		f->ev_rx = NULL;
		half_destroy(a, h);
		return refuse(a, l, m->ring_id, EINVAL, "not reformatted");
	}
	a->ctr.peer_rings_reused++;
	return 0;
}

int ring_rx_get(struct agent *a, struct flow *f, struct peer_link *l,
		const struct fivc_tunnel_msg *m)
{
	const struct fivc_backend_ops *ops = a->be->ops;
	struct ring_half *h;
	int err;

	if (m->cached)
		return rx_cached(a, f, l, m);
	if (m->ring_id > FIVC_RING_ID_MAX)
		return refuse(a, l, m->ring_id, EINVAL, "id out of range");
	if (m->ring_id && (!rc_of(l) || lookup(l->rc, false, m->ring_id)))
		return l->rc ? refuse(a, l, m->ring_id, EBUSY, "id in use")
			     : ENOMEM;
	if (!mem_room(a, m->shm.size, false))
		return ENOMEM;
	h = calloc(1, sizeof(*h));
	if (!h)
		return ENOMEM;
	h->id = m->ring_id;
	h->geom = m->geom;
	err = ops->shm_map(a->be, &m->shm, &h->shm);
	if (!err)
		err = ops->evch_bind(a->be, &m->evch, &h->ev);
	if (h->shm)
		held += h->shm->size;
	if (!err)
		err = half_watch(a, h);
	if (!err && h->id)
		index_add(l->rc, h);
	if (!err)
		err = rx_attach(f, h, &m->geom);
	if (err) {
		f->rx_half = NULL;
		f->rx_shm = NULL;
		f->ev_rx = NULL;
		half_destroy(a, h);
		return -err;
	}
	return 0;
}

void ring_rx_put(struct agent *a, struct flow *f)
{
	struct ring_half *h = f->rx_half;
	struct ringcache *rc;
	struct peer_link *l;
	bool keep;

	if (!h)
		return;
	f->rx_half = NULL;
	h->flow = NULL;
	rc = h->rc;
	l = rc ? link_of(a, rc) : NULL;
	keep = l && h->id && rc->n_idle[0] < a->cfg.pool;
	/* Kept: said in the ring, read when the producer needs a ring. */
	if (keep && f->rx_attached)
		fivc_rx_give_back(&f->rx);
	else if (l && h->id)
		ring_msg(a, l, FIVC_TMSG_RELEASE, h->id, keep);
	if (keep)
		idle_add(rc, h);
	else
		half_destroy(a, h);
}

void ring_on_evict(struct agent *a, struct peer_link *l,
		   const struct fivc_tunnel_msg *m)
{
	struct ring_half *h = l->rc ? lookup(l->rc, false, m->ring_id) : NULL;

	if (!h)
		return; /* we dropped it first (RELEASE not kept) */
	if (h->flow) {
		/* Still read: unmapped when its flow is freed, unnamed now. */
		unlink_from(bucket(l->rc, false, h->id), h, false);
		h->rc = NULL;
		return;
	}
	idle_del(l->rc, h);
	half_destroy(a, h);
}

void ringcache_link_down(struct agent *a, struct peer_link *l)
{
	struct ringcache *rc = l->rc;

	if (!rc)
		return;
	for (int mine = 0; mine < 2; mine++) {
		while (rc->idle[mine]) {
			struct ring_half *h = rc->idle[mine];

			idle_del(rc, h);
			half_destroy(a, h);
		}
		/* In use: destroyed with their flow. */
		for (int b = 0; b < RC_BUCKETS; b++)
			for (struct ring_half *h = rc->by_id[mine][b]; h;
			     h = h->hnext)
				h->rc = NULL;
	}
	free(rc);
	l->rc = NULL;
}

uint64_t ring_cached(struct agent *a)
{
	uint64_t n = 0;

	for (struct peer_link *l = a->links; l; l = l->next)
		if (l->rc)
			n += l->rc->n_idle[0] + l->rc->n_idle[1];
	return n;
}

/*
 * A new flow needs two rings here, ours and the peer's mapped (both count:
 * on Xen a mapped grant takes a ballooned page of ours), unless a free one
 * of ours is cached for its peer; the backend's own limit applies to ours.
 */
size_t ring_room(struct agent *a)
{
	size_t ring = flow_ring_bytes(&a->cfg),
	       be = fivc_backend_shm_room(a->be);
	size_t n = SIZE_MAX, free_mine = 0;
	bool short_now;

	for (struct peer_link *l = a->links; l; l = l->next)
		for (struct ring_half *h = l->rc ? l->rc->idle[1] : NULL; h;
		     h = h->idle_next)
			free_mine += mine_given_back(h);
	if (be != SIZE_MAX)
		n = be / ring + free_mine;
	if (!mem_bound)
		return n;
	n = n < SIZE_MAX ? n : SIZE_MAX - 1;
	{
		size_t m = (held < mem_bound ? (mem_bound - held) / (2 * ring)
					     : 0) +
			   free_mine;

		short_now = m < a->cfg.pool && m < n;
		if (short_now && !bound_biting) {
			a->ctr.shm_mem_short++;
			pr_info("ring memory at its bound (%llu of %llu MiB): "
				"room for %zu more flows, the rest stay on TCP",
				(unsigned long long)(held >> 20),
				(unsigned long long)(mem_bound >> 20), m);
		}
		bound_biting = short_now;
		return m < n ? m : n;
	}
}
