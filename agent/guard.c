// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The guard: a child process that holds a copy of every slot's X, so that
 * a killed agent cannot leave an app asleep for good.
 *
 * An app whose send() blocks because its slot is full sleeps on X's wait
 * queue (sk_msg pushes its bytes into X). When the agent dies, its close()
 * of X orphans the socket first, and nothing can wake that queue again:
 * measured, the app stayed in sk_stream_wait_memory() until it was
 * signalled. With the guard holding X, the agent's death closes only Y: X
 * gets Y's FIN or RST and its sleepers wake with an error (EPIPE). The
 * guard then shuts down every X it holds and exits.
 *
 * The agent hands over each new X (SCM_RIGHTS); the guard drops its copy
 * once X is shut down or its Y is gone (the slot was released). A stopping
 * agent says goodbye (a message without a socket); EOF without one means
 * it died, and the guard says so in one line.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "fastivc/log.h"

#define GUARD_FD 3 /* the guard's end of its socket pair */

/* Our copies of X, indexed by fd (the guard's own fd numbers). */
static unsigned char *held;
static unsigned int n_held_cap;

static int guard_take(int ep)
{
	char byte;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c;
	struct epoll_event ev = {.events = EPOLLRDHUP};
	ssize_t n = recvmsg(GUARD_FD, &mh, MSG_CMSG_CLOEXEC);
	int fd;

	/* EOF without a goodbye: the agent died. */
	if (n <= 0)
		return n ? -errno : -ENOTCONN;
	if (mh.msg_flags & MSG_CTRUNC) {
		pr_warn("guard: a slot socket did not fit (out of fds?)");
		return 0;
	}
	c = CMSG_FIRSTHDR(&mh);
	if (!c || c->cmsg_type != SCM_RIGHTS)
		return 1; /* the agent stops */
	memcpy(&fd, CMSG_DATA(c), sizeof(fd));
	if ((unsigned int)fd >= n_held_cap) {
		unsigned int cap = (unsigned int)fd * 2 + 64;
		unsigned char *h = realloc(held, cap);

		if (!h) {
			close(fd);
			return 0;
		}
		memset(h + n_held_cap, 0, cap - n_held_cap);
		held = h;
		n_held_cap = cap;
	}
	ev.data.fd = fd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) {
		close(fd);
		return 0;
	}
	held[fd] = 1;
	return 0;
}

/* The agent is gone: wake whatever still sleeps on an X, then leave. */
static void guard_release_all(bool died)
{
	unsigned int n = 0;

	for (unsigned int fd = 0; fd < n_held_cap; fd++) {
		if (!held[fd])
			continue;
		shutdown((int)fd, SHUT_RDWR);
		close((int)fd);
		n++;
	}
	if (died)
		pr_warn("guard: the agent died; %u slot sockets were still "
			"open, shut down",
			n);
}

static void guard_main(void)
{
	struct epoll_event evs[64], ev = {.events = EPOLLIN, .data.fd = -1};
	int ep = epoll_create1(EPOLL_CLOEXEC);

	prctl(PR_SET_NAME, "fastivc-guard");
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, GUARD_FD, &ev))
		_exit(1);
	for (;;) {
		int n = epoll_wait(ep, evs, 64, -1), err;

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd >= 0) { /* X shut down, or its Y gone */
				held[fd] = 0;
				close(fd);
			} else if ((err = guard_take(ep))) {
				guard_release_all(err < 0);
				_exit(0);
			}
		}
		if (n < 0 && errno != EINTR)
			_exit(1);
	}
}

/*
 * Fork the guard. Call before any thread starts and before the agent opens
 * what the guard must not keep (the pid lock is inherited but closed).
 */
int guard_start(struct agent *a)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (!pid) {
		sigset_t all;

		/* Signals for the agent are not ours: its exit ends us. */
		sigfillset(&all);
		sigprocmask(SIG_BLOCK, &all, NULL);
		if (dup2(sv[1], GUARD_FD) < 0)
			_exit(1);
		close_range(GUARD_FD + 1, ~0U, 0);
		guard_main();
	}
	close(sv[1]);
	a->guard_fd = sv[0];
	a->guard_pid = pid;
	return 0;
}

/* Hand the guard its copy of a new slot's X. */
int guard_add(struct agent *a, int fd_x)
{
	char byte = 0;
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u = {};
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd_x, sizeof(fd_x));
	if (sendmsg(a->guard_fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}

/* The agent stops: a message without a socket says so, then EOF. */
void guard_stop(struct agent *a)
{
	char byte = 0;

	if (a->guard_pid <= 0)
		return;
	if (send(a->guard_fd, &byte, 1, MSG_NOSIGNAL) < 0)
		pr_warn("Failed to tell the guard: %s", strerror(errno));
	close(a->guard_fd);
	waitpid(a->guard_pid, NULL, 0);
	a->guard_pid = 0;
}
