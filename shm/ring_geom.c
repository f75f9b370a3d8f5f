// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Ring geometry: defaults, validation and the size of the shared region. */
#include <errno.h>

#include "ring_internal.h"

void fivc_ring_geom_default(struct fivc_ring_geom *g)
{
	g->n_channels = FIVC_CHANNELS_DEFAULT;
	g->channel_size = FIVC_CHANNEL_SIZE_DEFAULT;
	g->n_receivers = 1;
	g->gen_first = 1;
}

int fivc_ring_geom_check(const struct fivc_ring_geom *g, const char **why)
{
	const char *reason = NULL;

	if (g->n_channels < FIVC_CHANNELS_MIN ||
	    g->n_channels > FIVC_CHANNELS_MAX)
		reason = "channel count must be 2..64";
	else if (g->channel_size < FIVC_CHANNEL_SIZE_MIN ||
		 g->channel_size > FIVC_CHANNEL_SIZE_MAX ||
		 (g->channel_size & (g->channel_size - 1)))
		reason = "channel size must be a power of two, 4 KiB..1 MiB";
	else if (g->n_receivers < 1 || g->n_receivers > FIVC_RECEIVERS_MAX)
		reason = "receiver count must be 1..8";
	if (why)
		*why = reason;
	return reason ? -EINVAL : 0;
}

size_t fivc_ring_region_size(const struct fivc_ring_geom *g)
{
	return (size_t)ring_data_off(g->n_channels) +
	       (size_t)g->n_channels * g->channel_size;
}
