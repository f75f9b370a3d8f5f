// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Tunnel lifecycle messages over a Unix stream socket: the encoded bytes,
 * with a local CREATE's fds as SCM_RIGHTS on the same sendmsg.
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

/* How long a peer may stall inside one message before we give up on it. */
#define TMSG_STALL_MS 1000
/* Room for more fds than any message carries, to see a peer send too many. */
#define TMSG_RX_FDS 8u

/* Wait for @events on a socket the peer left half-way through a message. */
static int wait_sock(int sock, short events)
{
	struct pollfd pfd = {.fd = sock, .events = events};
	int n;

	do {
		n = poll(&pfd, 1, TMSG_STALL_MS);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return n ? 0 : -ETIMEDOUT;
}

static int collect_fds(struct msghdr *mh, int *fds, unsigned int *n_fds)
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
			if (*n_fds < TMSG_RX_FDS) {
				fds[(*n_fds)++] = fd;
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

/*
 * Read exactly @len bytes, keeping any fds that arrive with them; -EBADMSG
 * once all are read if more fds came than any message carries. @first:
 * nothing of this message was read yet, so the socket's own blocking mode
 * applies and an orderly close is not an error of the stream.
 */
static int recv_full(int sock, uint8_t *buf, size_t len, bool first, int *fds,
		     unsigned int *n_fds)
{
	union {
		char buf[CMSG_SPACE(TMSG_RX_FDS * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	size_t got = 0;
	int err = 0;

	while (got < len) {
		struct iovec iov = {.iov_base = buf + got,
				    .iov_len = len - got};
		struct msghdr mh = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = cbuf.buf,
			.msg_controllen = sizeof(cbuf.buf),
		};
		bool started = !first || got;
		ssize_t n;
		int ferr;

		n = recvmsg(sock, &mh,
			    MSG_CMSG_CLOEXEC | (started ? MSG_DONTWAIT : 0));
		if (n < 0) {
			/* Between messages, let the caller see its signal. */
			if (errno == EINTR && started)
				continue;
			if (started &&
			    (errno == EAGAIN || errno == EWOULDBLOCK)) {
				err = wait_sock(sock, POLLIN);
				if (err)
					return err;
				continue;
			}
			return -errno;
		}
		ferr = collect_fds(&mh, fds, n_fds);
		if (ferr)
			err = ferr;
		if (n == 0)
			return started ? -ECONNRESET : -ENOTCONN;
		got += (size_t)n;
	}
	return err;
}

int fivc_tunnel_msg_recv(int sock, struct fivc_tunnel_msg *m)
{
	int fds[TMSG_RX_FDS];
	uint8_t hdr[FIVC_TMSG_HDR_SIZE];
	unsigned int n_fds = 0;
	const char *why = NULL;
	uint8_t *buf = NULL;
	ssize_t total;
	int err;

	fivc_tunnel_msg_init(m, 0, 0);
	err = recv_full(sock, hdr, sizeof(hdr), true, fds, &n_fds);
	if (err)
		goto out_fds;
	total = fivc_tunnel_msg_frame_len(hdr, sizeof(hdr));
	if (total < 0) {
		err = -EINVAL;
		why = "bad header";
		goto out_warn;
	}
	buf = malloc((size_t)total);
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	memcpy(buf, hdr, sizeof(hdr));
	err = recv_full(sock, buf + sizeof(hdr), (size_t)total - sizeof(hdr),
			false, fds, &n_fds);
	if (err)
		goto out_fds;
	err = fivc_tunnel_msg_decode(buf, (size_t)total, m, &why);
	if (err)
		goto out_warn;
	if (n_fds != fivc_tunnel_msg_n_fds(m)) {
		fivc_tunnel_msg_release(m);
		err = -EINVAL;
		why = "wrong number of fds";
		goto out_warn;
	}
	if (n_fds >= 1 && m->type == FIVC_TMSG_FALLBACK)
		m->relay_fd = fds[0];
	else if (n_fds >= 1)
		m->shm.fd = fds[0];
	if (n_fds == 3) {
		m->evch.fd_wait = fds[1];
		m->evch.fd_kick = fds[2];
	}
	free(buf);
	return 0;

out_fds:
	if (err != -EBADMSG)
		goto out;
	err = -EINVAL;
	why = "too many fds";
out_warn:
	pr_warn("tunnel_msg: refusing message from peer: %s (%u fds)", why,
		n_fds);
out:
	for (unsigned int i = 0; i < n_fds; i++)
		close(fds[i]);
	free(buf);
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
			int err = wait_sock(sock, POLLOUT);

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
