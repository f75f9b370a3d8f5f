// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Slots: loopback TCP pairs made before any connection needs one, so a
 * socket steered at ESTABLISHED has a redirect target for its first byte.
 * Y connects (its ephemeral port names the slot for sk_msg), X is accepted.
 * A used slot is never reused as is: its pair is closed and a fresh one is
 * made for the next flow, so no stale byte can leak between flows.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.h"
#include "fastivc/log.h"

/* Per-slot fds while the slot waits in the pool. */
struct pooled {
	int fd_x, fd_y;
};

static struct pooled *pool_fds;

int slots_init(struct agent *a)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	int fd, one = 1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	pool_fds = calloc(FIVC_MAX_SLOTS, sizeof(*pool_fds));
	a->recycled = calloc(FIVC_MAX_SLOTS, sizeof(*a->recycled));
	if (!pool_fds || !a->recycled)
		return -ENOMEM;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) || listen(fd, 256)) {
		int err = -errno;

		pr_err("Failed to listen on loopback for slots: %s",
		       strerror(errno));
		close(fd);
		return err;
	}
	a->slot_listen_fd = fd;
	return 0;
}

static int slot_id_take(struct agent *a, uint32_t *slot)
{
	if (a->n_recycled) {
		*slot = a->recycled[--a->n_recycled];
		return 0;
	}
	if (a->next_slot >= FIVC_MAX_SLOTS)
		return -ENOSPC;
	*slot = a->next_slot++;
	return 0;
}

/*
 * One loopback pair; Y's local port is returned for slot_ports. X's send
 * and Y's receive buffers hold what the app sent and the agent has not yet
 * put in the ring: fixed at half the window each (the kernel doubles the
 * value set), which also stops their autotuning.
 */
static int pair_make(int listen_fd, uint32_t window, int *fd_x, int *fd_y,
		     uint16_t *y_port)
{
	int buf = (int)(window / 4);
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int y, x, one = 1;

	if (getsockname(listen_fd, (struct sockaddr *)&sin, &len))
		return -errno;
	y = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (y < 0)
		return -errno;
	setsockopt(y, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	if (connect(y, (struct sockaddr *)&sin, sizeof(sin)))
		goto err_y;
	x = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
	if (x < 0)
		goto err_y;
	len = sizeof(sin);
	if (getsockname(y, (struct sockaddr *)&sin, &len))
		goto err_x;
	/* Y carries many small writes to the app: no Nagle on either end. */
	setsockopt(x, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(x, SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(y, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*fd_x = x;
	*fd_y = y;
	*y_port = ntohs(sin.sin_port);
	return 0;
err_x:
	close(x);
err_y:
	close(y);
	return -errno;
}

/*
 * How many more rings shared memory has room for (flows in use have
 * offered theirs already). A slot the pool holds is a promise: sockops
 * hands it out in the handshake and both sides steer. A ring that could
 * not be offered then would cost a fallback, or a reset on Xen for a flow
 * whose app already sent; so the pool holds no more slots than rings fit,
 * and beyond them new connections stay plain TCP from the handshake
 * (no_slot). Said once each time the pool comes short.
 */
static uint32_t shm_rings(struct agent *a)
{
	size_t room = fivc_backend_shm_room(a->be);
	size_t n = room / flow_ring_bytes(&a->cfg);
	bool short_now = room != SIZE_MAX && n < a->cfg.pool;

	if (short_now && !a->pool_shm_short) {
		a->ctr.pool_shm_short++;
		pr_info("shared memory has room for %zu more rings: new "
			"connections beyond them stay on TCP (no_slot)",
			n);
	}
	a->pool_shm_short = short_now;
	return room == SIZE_MAX || n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

/* Pooled slots beyond @keep go back: sockops finds none of them. */
static void slots_trim(struct agent *a, uint32_t keep)
{
	uint32_t slot;
	int x, y;

	while (a->slots_free > keep && !agent_bpf_free_slot_pop(a, &slot))
		if (!slots_take(a, slot, &x, &y))
			slots_release(a, slot, x, y);
}

/*
 * Keep cfg.pool slots ready in free_slots, but never more slots in use and
 * ready than max_tunnels, nor more ready than shared memory has rings for:
 * past that, sockops finds no slot, does not answer the handshake option
 * and the connection stays plain TCP (counted as no_slot), instead of
 * being refused later.
 */
void slots_fill(struct agent *a)
{
	uint32_t rings;

	if (a->drain_deadline_ns)
		return;
	rings = shm_rings(a);
	slots_trim(a, rings);
	while (a->slots_free < a->cfg.pool && a->slots_free < rings &&
	       a->n_flows + a->slots_free < a->cfg.max_tunnels) {
		uint32_t slot;
		uint16_t port = 0;
		int x = -1, y = -1, err;

		if (slot_id_take(a, &slot))
			return;
		err = pair_make(a->slot_listen_fd, a->cfg.window, &x, &y,
				&port);
		/* Guarded before sockops can hand it to a flow (guard.c). */
		if (!err) {
			err = guard_add(a, x);
			if (!err)
				err = agent_bpf_slot_add(a, slot, x, y, port);
			if (err) {
				close(x);
				close(y);
			}
		}
		if (err) {
			/* Retried every tick: say it once per cause. */
			static int last_err;

			fivc_log(err == last_err ? FIVC_LOG_DEBUG
						 : FIVC_LOG_WARN,
				 "Failed to add slot %u: %s", slot,
				 strerror(-err));
			last_err = err;
			a->recycled[a->n_recycled++] = slot;
			return;
		}
		pool_fds[slot].fd_x = x;
		pool_fds[slot].fd_y = y;
		a->slots_free++;
	}
}

/* sockops popped @slot for a flow: hand its fds over. */
int slots_take(struct agent *a, uint32_t slot, int *fd_x, int *fd_y)
{
	if (slot >= FIVC_MAX_SLOTS || !pool_fds[slot].fd_y)
		return -ENOENT;
	*fd_x = pool_fds[slot].fd_x;
	*fd_y = pool_fds[slot].fd_y;
	pool_fds[slot].fd_x = 0;
	pool_fds[slot].fd_y = 0;
	a->slots_free--;
	return 0;
}

void slots_release(struct agent *a, uint32_t slot, int fd_x, int fd_y)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	uint16_t port = 0;

	if (!getsockname(fd_y, (struct sockaddr *)&sin, &len))
		port = ntohs(sin.sin_port);
	agent_bpf_slot_del(a, slot, port);
	close(fd_x);
	close(fd_y);
	a->recycled[a->n_recycled++] = slot;
}

/*
 * Draining: take every ready slot back, so that sockops finds none and new
 * connections stay plain TCP (no_slot). slots_fill() is not called again.
 */
void slots_drain(struct agent *a)
{
	slots_trim(a, 0);
}

void slots_fini(struct agent *a)
{
	if (pool_fds)
		for (uint32_t s = 0; s < FIVC_MAX_SLOTS; s++)
			if (pool_fds[s].fd_y) {
				close(pool_fds[s].fd_x);
				close(pool_fds[s].fd_y);
			}
	free(pool_fds);
	pool_fds = NULL;
	free(a->recycled);
	a->recycled = NULL;
	if (a->slot_listen_fd > 0)
		close(a->slot_listen_fd);
}
