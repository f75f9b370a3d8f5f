// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Is a used slot pair fit for another flow? Only if nothing of its flow
 * is left anywhere in it (docs/steering.md, "Slot reuse"): X's TCP has
 * every byte it took acked and nothing unsent, Y received all of it and
 * no more than the agent read from Y (the rest came straight into Y's
 * ingress queue), Y never sent on its own TCP (every injection went to
 * the app), both are still ESTABLISHED (so the guard still holds X: it
 * drops X only at X's FIN or RST), and no byte waits in Y's psock queue.
 * Any doubt: the pair is closed as before.
 * Linux's own tcp_info: the C library's lacks the byte counts.
 */
#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "agent.h"

#define TCP_STATE_ESTABLISHED 1 /* the kernel's TCP_ESTABLISHED */

static bool tcp_info_of(int fd, struct tcp_info *ti)
{
	socklen_t len = sizeof(*ti);

	return !getsockopt(fd, IPPROTO_TCP, TCP_INFO, ti, &len) &&
	       len >= sizeof(*ti) && ti->tcpi_state == TCP_STATE_ESTABLISHED;
}

bool slot_pair_clean(int fd_x, int fd_y, uint64_t y_read)
{
	struct tcp_info x, y;
	char byte;

	if (!tcp_info_of(fd_x, &x) || x.tcpi_notsent_bytes || x.tcpi_unacked ||
	    x.tcpi_bytes_received)
		return false;
	if (!tcp_info_of(fd_y, &y) ||
	    y.tcpi_bytes_received != x.tcpi_bytes_acked ||
	    y.tcpi_bytes_received > y_read || y.tcpi_bytes_sent ||
	    y.tcpi_notsent_bytes)
		return false;
	/* Y's psock queue (tcp_bpf reads it first) and its TCP queue. */
	return recv(fd_y, &byte, 1, MSG_PEEK | MSG_DONTWAIT) < 0 &&
	       (errno == EAGAIN || errno == EWOULDBLOCK);
}
