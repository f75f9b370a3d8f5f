// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <string.h>

#include "ringpair.h"

int ring_producer_open(struct ring_producer *p, const struct fivc_ring_geom *g)
{
	const struct fivc_backend_ops *ops;
	struct fivc_kick kick[FIVC_RECEIVERS_MAX];
	int err;

	memset(p, 0, sizeof(*p));
	p->g = *g;
	p->desc.fd = -1;
	err = fivc_backend_open_local(&p->be);
	if (err)
		return err;
	ops = p->be->ops;
	err = ops->shm_offer(p->be, fivc_ring_region_size(g), 0, &p->shm);
	if (!err)
		err = ops->shm_describe(p->shm, &p->desc);
	for (uint32_t r = 0; !err && r < g->n_receivers; r++) {
		err = ops->evch_offer(p->be, 0, &p->ev[r]);
		if (!err)
			err = ops->evch_describe(p->ev[r], &p->ev_desc[r]);
		kick[r].fn = fivc_evch_kick;
		kick[r].arg = p->ev[r];
	}
	if (!err)
		err = fivc_tx_init(&p->tx, p->shm->addr, p->shm->size, g, kick);
	if (err)
		ring_producer_close(p);
	return err;
}

void ring_producer_close(struct ring_producer *p)
{
	if (!p->be)
		return;
	for (uint32_t r = 0; r < FIVC_RECEIVERS_MAX; r++)
		p->be->ops->evch_destroy(p->ev[r]);
	p->be->ops->shm_destroy(p->shm);
	fivc_backend_close(p->be);
	memset(p, 0, sizeof(*p));
}

int ring_consumer_open(struct ring_consumer *c, const struct ring_producer *p,
		       uint32_t id, bool same_mapping)
{
	void *addr;
	const struct fivc_backend_ops *ops;
	struct fivc_kick kick;
	int err;

	memset(c, 0, sizeof(*c));
	err = fivc_backend_open_local(&c->be);
	if (err)
		return err;
	ops = c->be->ops;
	if (!same_mapping)
		err = ops->shm_map(c->be, &p->desc, &c->shm);
	addr = same_mapping ? p->shm->addr : c->shm ? c->shm->addr : NULL;
	if (!err)
		err = ops->evch_bind(c->be, &p->ev_desc[id], &c->ev_sleep);
	if (!err && id)
		err = ops->evch_bind(c->be, &p->ev_desc[0], &c->ev_kick);
	if (!err && !id)
		c->ev_kick = c->ev_sleep;
	kick.fn = fivc_evch_kick;
	kick.arg = c->ev_kick;
	if (!err)
		err = fivc_rx_attach(&c->rx, addr, p->shm->size, &p->g, id,
				     &kick);
	if (err)
		ring_consumer_close(c);
	return err;
}

void ring_consumer_close(struct ring_consumer *c)
{
	if (!c->be)
		return;
	if (c->ev_kick != c->ev_sleep)
		c->be->ops->evch_destroy(c->ev_kick);
	c->be->ops->evch_destroy(c->ev_sleep);
	c->be->ops->shm_destroy(c->shm);
	fivc_backend_close(c->be);
	memset(c, 0, sizeof(*c));
}
