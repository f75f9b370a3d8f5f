// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Tunnel lifecycle messages over a Unix stream socket: the encoded bytes,
 * with a local CREATE's fds as SCM_RIGHTS on the same sendmsg. The reader
 * (fivc_tunnel_rx_read) never waits: what came of a message waits in it;
 * fivc_tunnel_msg_recv is the same reader plus a bounded wait, for tools.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fastivc/log.h"
#include "fastivc/tunnel_msg.h"

/* How long fivc_tunnel_msg_recv lets a peer stall inside one message. */
#define TMSG_STALL_MS 1000

/*
 * Wait for @events, up to @ms (-1: no limit). @intr: a signal ends the
 * wait with -EINTR; else it resumes (with the whole timeout again).
 */
static int wait_sock(int sock, short events, int ms, bool intr)
{
	struct pollfd pfd = {.fd = sock, .events = events};
	int n;

	do {
		n = poll(&pfd, 1, ms);
	} while (n < 0 && errno == EINTR && !intr);
	if (n < 0)
		return -errno;
	return n ? 0 : -ETIMEDOUT;
}

/* Keep the fds that came with some bytes; -EBADMSG past FIVC_TMSG_RX_FDS. */
static int collect_fds(struct msghdr *mh, struct fivc_tunnel_rx *r)
{
	struct cmsghdr *c;
	int err = 0;

	for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			if (r->n_fds < FIVC_TMSG_RX_FDS) {
				r->fds[r->n_fds++] = fd;
			} else {
				close(fd);
				err = -EBADMSG;
			}
		}
	}
	/* The kernel dropped fds that did not fit: too many for any message. */
	if (mh->msg_flags & MSG_CTRUNC)
		err = -EBADMSG;
	return err;
}

void fivc_tunnel_rx_init(struct fivc_tunnel_rx *r)
{
	memset(r, 0, sizeof(*r));
}

bool fivc_tunnel_rx_partial(const struct fivc_tunnel_rx *r)
{
	return r->got || r->n_fds;
}

void fivc_tunnel_rx_fini(struct fivc_tunnel_rx *r)
{
	if (!r)
		return;
	for (unsigned int i = 0; i < r->n_fds; i++)
		close(r->fds[i]);
	free(r->buf);
	fivc_tunnel_rx_init(r);
}

/* The whole message in @r decoded into @m, which takes its fds. */
static int rx_finish(struct fivc_tunnel_rx *r, struct fivc_tunnel_msg *m,
		     const char **why)
{
	const int *fds = r->fds;
	int err;

	err = fivc_tunnel_msg_decode(r->buf, r->len, m, why);
	if (err)
		return err;
	if (r->n_fds != fivc_tunnel_msg_n_fds(m)) {
		fivc_tunnel_msg_release(m);
		*why = "wrong number of fds";
		return -EINVAL;
	}
	if (r->n_fds >= 1 && m->type == FIVC_TMSG_FALLBACK)
		m->relay_fd = fds[0];
	else if (r->n_fds >= 1)
		m->shm.fd = fds[0];
	if (r->n_fds == 3) {
		m->evch.fd_wait = fds[1];
		m->evch.fd_kick = fds[2];
	}
	r->n_fds = 0; /* they are @m's now */
	return 0;
}

/*
 * One recvmsg of at most the rest of the current part (the header, then
 * the frame): never into the next message, so fds stay with their own.
 */
static int rx_some(int sock, struct fivc_tunnel_rx *r)
{
	union {
		char buf[CMSG_SPACE(FIVC_TMSG_RX_FDS * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov;
	struct msghdr mh = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cbuf.buf,
		.msg_controllen = sizeof(cbuf.buf),
	};
	ssize_t n;

	if (r->len) {
		iov.iov_base = r->buf + r->got;
		iov.iov_len = r->len - r->got;
	} else {
		iov.iov_base = r->hdr + r->got;
		iov.iov_len = sizeof(r->hdr) - r->got;
	}
	do
		n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	if (collect_fds(&mh, r))
		return -EBADMSG;
	if (n == 0)
		return fivc_tunnel_rx_partial(r) ? -ECONNRESET : -ENOTCONN;
	r->got += (size_t)n;
	return 0;
}

int fivc_tunnel_rx_read(int sock, struct fivc_tunnel_rx *r,
			struct fivc_tunnel_msg *m)
{
	const char *why = NULL;
	ssize_t total;
	int err;

	fivc_tunnel_msg_init(m, 0, 0);
	for (;;) {
		err = rx_some(sock, r);
		if (err == -EBADMSG) {
			why = "too many fds";
			goto refuse;
		}
		if (err) {
			if (err != -EAGAIN)
				fivc_tunnel_rx_fini(r);
			return err;
		}
		if (!r->len && r->got == sizeof(r->hdr)) {
			total = fivc_tunnel_msg_frame_len(r->hdr,
							  sizeof(r->hdr));
			if (total < 0) {
				why = "bad header";
				goto refuse;
			}
			/* Bounded by the header check: FIVC_TMSG_MAX_SIZE. */
			r->buf = malloc((size_t)total);
			if (!r->buf) {
				fivc_tunnel_rx_fini(r);
				return -ENOMEM;
			}
			memcpy(r->buf, r->hdr, sizeof(r->hdr));
			r->len = (size_t)total;
		}
		if (r->len && r->got == r->len)
			break;
	}
	err = rx_finish(r, m, &why);
	if (err)
		goto refuse;
	fivc_tunnel_rx_fini(r);
	return 0;

refuse:
	pr_warn("tunnel_msg: refusing message from peer: %s (%u fds)", why,
		r->n_fds);
	fivc_tunnel_rx_fini(r);
	return -EINVAL;
}

int fivc_tunnel_msg_recv(int sock, struct fivc_tunnel_msg *m)
{
	int fl = fcntl(sock, F_GETFL);
	struct fivc_tunnel_rx r;
	int err;

	fivc_tunnel_rx_init(&r);
	for (;;) {
		err = fivc_tunnel_rx_read(sock, &r, m);
		if (err != -EAGAIN)
			break;
		/* Between messages the socket's own blocking mode applies. */
		if (!fivc_tunnel_rx_partial(&r) && fl >= 0 && (fl & O_NONBLOCK))
			break;
		if (fivc_tunnel_rx_partial(&r))
			err = wait_sock(sock, POLLIN, TMSG_STALL_MS, false);
		else
			err = wait_sock(sock, POLLIN, -1, true);
		if (err)
			break;
	}
	fivc_tunnel_rx_fini(&r);
	return err;
}

/*
 * One sendmsg of @len bytes of @buf, @n_fds fds riding on its first byte:
 * bytes sent, or -errno.
 */
static ssize_t send_some(int sock, const uint8_t *buf, size_t len,
			 const int *fds, unsigned int n_fds, int flags)
{
	union {
		char buf[CMSG_SPACE(FIVC_TMSG_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;

	memset(&cbuf, 0, sizeof(cbuf));
	if (n_fds) {
		struct cmsghdr *c;

		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, n_fds * sizeof(int));
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL | flags);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static int send_all(int sock, const uint8_t *buf, size_t len, const int *fds,
		    unsigned int n_fds)
{
	size_t sent = 0;

	while (sent < len) {
		/* The fds ride on the first byte; once sent, never again. */
		ssize_t n = send_some(sock, buf + sent, len - sent, fds,
				      sent ? 0 : n_fds, 0);

		if (n == -EAGAIN || n == -EWOULDBLOCK) {
			int err =
				wait_sock(sock, POLLOUT, TMSG_STALL_MS, false);

			if (err)
				return err;
			continue;
		}
		if (n < 0)
			return (int)n;
		sent += (size_t)n;
	}
	return 0;
}

/* The fds @m travels with, in wire order, and how many. */
static unsigned int msg_fds(const struct fivc_tunnel_msg *m,
			    int fds[FIVC_TMSG_MAX_FDS])
{
	fds[0] = m->type == FIVC_TMSG_FALLBACK ? m->relay_fd : m->shm.fd;
	fds[1] = m->evch.fd_wait;
	fds[2] = m->evch.fd_kick;
	return fivc_tunnel_msg_n_fds(m);
}

/* @m encoded into a new buffer: its length, or -errno. */
static ssize_t encode_new(const struct fivc_tunnel_msg *m, uint8_t **out)
{
	ssize_t len = fivc_tunnel_msg_size(m);

	if (len < 0)
		return len;
	*out = malloc((size_t)len);
	if (!*out)
		return -ENOMEM;
	len = fivc_tunnel_msg_encode(m, *out, (size_t)len);
	if (len < 0) {
		free(*out);
		*out = NULL;
	}
	return len;
}

int fivc_tunnel_msg_send(int sock, const struct fivc_tunnel_msg *m)
{
	int fds[FIVC_TMSG_MAX_FDS];
	unsigned int n_fds = msg_fds(m, fds);
	uint8_t *buf;
	ssize_t len;
	int err;

	for (unsigned int i = 0; i < n_fds; i++) {
		if (fds[i] < 0)
			return -EBADF;
	}
	len = encode_new(m, &buf);
	if (len < 0)
		return (int)len;
	err = send_all(sock, buf, (size_t)len, fds, n_fds);
	free(buf);
	return err;
}

int fivc_tunnel_frame_new(const struct fivc_tunnel_msg *m,
			  struct fivc_tunnel_frame **out)
{
	struct fivc_tunnel_frame *f = calloc(1, sizeof(*f));
	int fds[FIVC_TMSG_MAX_FDS];
	unsigned int n = msg_fds(m, fds);
	ssize_t len;
	int err = 0;

	if (!f)
		return -ENOMEM;
	for (unsigned int i = 0; i < n && !err; i++) {
		f->fds[i] = fds[i] < 0 ? -1 : fcntl(fds[i], F_DUPFD_CLOEXEC, 0);
		if (f->fds[i] < 0)
			err = fds[i] < 0 ? -EBADF : -errno;
		else
			f->n_fds = i + 1;
	}
	if (err) {
		fivc_tunnel_frame_free(f);
		return err;
	}
	len = encode_new(m, &f->buf);
	if (len < 0) {
		fivc_tunnel_frame_free(f);
		return (int)len;
	}
	f->len = (size_t)len;
	*out = f;
	return 0;
}

int fivc_tunnel_frame_send(int sock, struct fivc_tunnel_frame *f)
{
	while (f->off < f->len) {
		ssize_t n =
			send_some(sock, f->buf + f->off, f->len - f->off,
				  f->fds, f->off ? 0 : f->n_fds, MSG_DONTWAIT);

		if (n == -EWOULDBLOCK)
			n = -EAGAIN;
		if (n < 0)
			return (int)n;
		if (!f->off) { /* the fds went with these bytes */
			for (unsigned int i = 0; i < f->n_fds; i++)
				close(f->fds[i]);
			f->n_fds = 0;
		}
		f->off += (size_t)n;
	}
	return 0;
}

void fivc_tunnel_frame_free(struct fivc_tunnel_frame *f)
{
	if (!f)
		return;
	for (unsigned int i = 0; i < f->n_fds; i++)
		close(f->fds[i]);
	free(f->buf);
	free(f);
}
