// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target: the byte stream of an agent-to-agent link as the agent
 * reads it (agent/link.c): tunnel messages back to back over a Unix stream
 * socket, read with the event loop's non-blocking reader
 * (fivc_tunnel_rx_read). The first input byte says how many fds ride on
 * the stream's first byte (its value mod 5) and where the stream, the rest
 * of the input, is cut in two (its value / 5, in 51ths): the first part is
 * read until the reader says -EAGAIN (it must never wait), then the rest
 * arrives, then the peer's close. Every message the
 * reader accepts must also be what frame_len + decode make of the same
 * bytes, in the same order, and a dropped reader leaves no fd open.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fastivc/log.h"
#include "fastivc/tunnel_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FDS 4

/*
 * The stream and its fds into @sock. The fds are /dev/null: a socket in
 * flight would wake the kernel's garbage collector of Unix sockets on every
 * run.
 */
static void feed(int sock, const uint8_t *data, size_t size, unsigned int n_fds)
{
	static int null_fd = -1;
	union {
		char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {.iov_base = (void *)data, .iov_len = size};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	int fds[MAX_FDS];

	if (null_fd < 0)
		null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	for (unsigned int i = 0; i < n_fds; i++)
		fds[i] = null_fd;
	if (n_fds && size) {
		struct cmsghdr *c;

		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, n_fds * sizeof(int));
	}
	if (sock < 0)
		return;
	if (size && sendmsg(sock, &mh, MSG_NOSIGNAL) != (ssize_t)size)
		abort();
}

static int count_fds(void)
{
	int n = 0;

	for (int fd = 0; fd < 256; fd++)
		n += fcntl(fd, F_GETFD) >= 0;
	return n;
}

/* The next message the pure functions find at *off, or -1. */
static int next_frame(const uint8_t *data, size_t size, size_t *off,
		      struct fivc_tunnel_msg *m)
{
	ssize_t len = fivc_tunnel_msg_frame_len(data + *off, size - *off);

	if (len < 0 || (size_t)len > size - *off)
		return -1;
	if (fivc_tunnel_msg_decode(data + *off, (size_t)len, m, NULL))
		return -1;
	*off += (size_t)len;
	return 0;
}

/* Read until the reader stops: its last answer. Checks every message. */
static int drain(int sock, struct fivc_tunnel_rx *r, const uint8_t *data,
		 size_t size, size_t *off)
{
	struct fivc_tunnel_msg m, p;
	int err;

	while (!(err = fivc_tunnel_rx_read(sock, r, &m))) {
		if (next_frame(data, size, off, &p) || p.type != m.type ||
		    p.tunnel_id != m.tunnel_id || p.reason != m.reason ||
		    fivc_tunnel_msg_n_fds(&m) != (unsigned int)(m.shm.fd >= 0) +
							 (m.evch.fd_wait >= 0) +
							 (m.evch.fd_kick >= 0) +
							 (m.relay_fd >= 0))
			abort();
		fivc_tunnel_msg_release(&p);
		fivc_tunnel_msg_release(&m);
	}
	return err;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fivc_tunnel_rx r;
	size_t off = 0, cut;
	int sv[2], before, err;

	if (!size)
		return 0;
	fivc_log_set_level(FIVC_LOG_ERR);
	feed(-1, NULL, 0, 0); /* opens /dev/null once, before the count */
	before = count_fds();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	/* data[0] / 5 in 0..51: where the stream is cut, 51 = the end */
	cut = (size - 1) * (data[0] / (MAX_FDS + 1)) / 51;
	fivc_tunnel_rx_init(&r);
	feed(sv[0], data + 1, cut, data[0] % (MAX_FDS + 1));
	err = drain(sv[1], &r, data + 1, size - 1, &off);
	if (err == -EAGAIN) { /* the rest, then the peer's close */
		feed(sv[0], data + 1 + cut, size - 1 - cut, 0);
		close(sv[0]);
		sv[0] = -1;
		err = drain(sv[1], &r, data + 1, size - 1, &off);
	}
	/* A reader that refused, or was dropped half-way, holds nothing. */
	fivc_tunnel_rx_fini(&r);
	if (sv[0] >= 0)
		close(sv[0]);
	close(sv[1]);
	if (err == -EAGAIN || count_fds() != before)
		abort();
	return 0;
}
