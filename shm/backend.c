// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Backend-independent glue around struct fivc_backend_ops. */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fastivc/shm.h"

void fivc_backend_close(struct fivc_backend *be)
{
	if (!be)
		return;
	/* A half-built backend may not have its ops yet. */
	if (be->ops && be->ops->close)
		be->ops->close(be);
}

size_t fivc_backend_shm_room(struct fivc_backend *be)
{
	if (!be || !be->ops || !be->ops->shm_room)
		return SIZE_MAX;
	return be->ops->shm_room(be);
}

int fivc_evch_kick(void *arg)
{
	struct fivc_evch *ev = arg;

	if (!ev || !ev->be)
		return -EINVAL;
	return ev->be->ops->evch_notify(ev);
}

int fivc_evch_wait(struct fivc_evch *ev, int timeout_ms)
{
	struct pollfd pfd;
	int n;

	if (!ev || !ev->be)
		return -EINVAL;
	pfd.fd = ev->be->ops->evch_fd(ev);
	pfd.events = POLLIN;
	pfd.revents = 0;
	if (pfd.fd < 0)
		return -EBADF;

	n = poll(&pfd, 1, timeout_ms);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ETIMEDOUT;
	if (pfd.revents & POLLNVAL)
		return -EBADF;
	/* POLLERR/POLLHUP without POLLIN: the channel is dead, not kicked. */
	if (!(pfd.revents & POLLIN))
		return -EIO;
	return ev->be->ops->evch_ack(ev);
}

/*
 * The refs array belongs to the desc (a backend's describe hands out a copy);
 * the fd does not: it stays with the shm object or whoever received it.
 */
void fivc_shm_desc_clear(struct fivc_shm_desc *d)
{
	if (!d)
		return;
	free(d->refs);
	memset(d, 0, sizeof(*d));
	d->fd = -1;
}
