// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The local backend: a region and an event channel shared with a forked
 * child over SCM_RIGHTS, kicks and waits both ways, and refusal of every
 * kind of fd a hostile peer could hand us instead of a sealed memfd or an
 * eventfd.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../util/testutil.h"
#include "fastivc/log.h"
#include "fastivc/ring.h"
#include "fastivc/shm.h"

#define REGION_SIZE (3 * 4096u)
#define WAIT_MS 5000 /* a wait this long means a lost kick */

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

static int send_fds(int sock, const void *data, size_t len, const int *fds,
		    unsigned int n_fds)
{
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;

	memset(&cbuf, 0, sizeof(cbuf));
	mh.msg_control = cbuf.buf;
	mh.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
	memcpy(CMSG_DATA(c), fds, n_fds * sizeof(int));
	return sendmsg(sock, &mh, 0) == (ssize_t)len ? 0 : -1;
}

static int recv_fds(int sock, void *data, size_t len, int *fds,
		    unsigned int n_fds)
{
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {.iov_base = data, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;

	mh.msg_control = cbuf.buf;
	mh.msg_controllen = sizeof(cbuf.buf);
	if (recvmsg(sock, &mh, MSG_CMSG_CLOEXEC) != (ssize_t)len)
		return -1;
	c = CMSG_FIRSTHDR(&mh);
	if (!c || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(n_fds * sizeof(int)))
		return -1;
	memcpy(fds, CMSG_DATA(c), n_fds * sizeof(int));
	return 0;
}

static void fill(uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 31 + seed);
}

static bool same(const uint8_t *p, size_t len, uint8_t seed)
{
	for (size_t i = 0; i < len; i++) {
		if (p[i] != (uint8_t)(i * 31 + seed))
			return false;
	}
	return true;
}

/* The child: a consumer in another process, as a peer would be. */
static int child_consumer(int sock)
{
	struct fivc_backend *be;
	struct fivc_shm_desc d = {.fd = -1};
	struct fivc_evch_desc ed = {.fd_wait = -1, .fd_kick = -1};
	struct fivc_shm *shm = NULL;
	struct fivc_evch *ev = NULL;
	uint32_t size;
	int fds[3], rc = 1;
	uint8_t *p;

	if (recv_fds(sock, &size, sizeof(size), fds, 3))
		return 2;
	if (fivc_backend_open_local(&be))
		return 3;
	d.kind = FIVC_BACKEND_LOCAL;
	d.size = size;
	d.fd = fds[0];
	ed.kind = FIVC_BACKEND_LOCAL;
	ed.fd_wait = fds[1];
	ed.fd_kick = fds[2];
	if (be->ops->shm_map(be, &d, &shm) ||
	    be->ops->evch_bind(be, &ed, &ev)) {
		rc = 4;
		goto out;
	}
	/* Ours now: map and bind hold their own references. */
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	p = shm->addr;
	if (shm->size != size || !same(p, 4096, 1)) {
		rc = 5;
		goto out;
	}
	fill(p + 4096, 4096, 2);
	if (fivc_evch_kick(ev) || fivc_evch_wait(ev, WAIT_MS)) {
		rc = 6;
		goto out;
	}
	rc = same(p + 8192, 4096, 3) ? 0 : 7;
out:
	be->ops->evch_destroy(ev);
	be->ops->shm_destroy(shm);
	fivc_backend_close(be);
	return rc;
}

/* A region and an event channel offered here, used by a forked child. */
static void test_share_across_fork(void)
{
	struct fivc_backend *be = NULL;
	struct fivc_shm *shm = NULL;
	struct fivc_evch *ev = NULL;
	struct fivc_shm_desc d;
	struct fivc_evch_desc ed;
	int sv[2], fds[3], status = -1;
	uint32_t size = REGION_SIZE;
	uint8_t *p;
	pid_t pid;

	if (!CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0,
		      "socketpair"))
		return;
	/* Fork first: the child gets the fds only through the socket. */
	pid = fork();
	if (pid == 0) {
		close(sv[0]);
		_exit(child_consumer(sv[1]));
	}
	close(sv[1]);
	if (!CHECK(pid > 0, "fork"))
		goto out;

	if (!CHECK_EQ(fivc_backend_open_local(&be), 0, "open local backend"))
		goto out;
	if (!CHECK_EQ(be->ops->shm_offer(be, size, 0, &shm), 0, "shm_offer") ||
	    !CHECK_EQ(be->ops->evch_offer(be, 0, &ev), 0, "evch_offer"))
		goto out;
	CHECK_EQ(be->ops->shm_describe(shm, &d), 0, "shm_describe");
	CHECK_EQ(be->ops->evch_describe(ev, &ed), 0, "evch_describe");
	CHECK_EQ(d.kind, FIVC_BACKEND_LOCAL, "desc kind");
	CHECK_EQ(d.size, size, "desc size");
	CHECK(d.n_refs == 0 && !d.refs, "local desc has no refs");
	p = shm->addr;
	fill(p, 4096, 1);

	fds[0] = d.fd;
	fds[1] = ed.fd_wait;
	fds[2] = ed.fd_kick;
	if (!CHECK_EQ(send_fds(sv[0], &size, sizeof(size), fds, 3), 0,
		      "send fds to child"))
		goto out;
	if (!CHECK_EQ(fivc_evch_wait(ev, WAIT_MS), 0, "child kicked us"))
		goto out;
	CHECK(same(p + 4096, 4096, 2), "child's writes visible here");
	fill(p + 8192, 4096, 3);
	CHECK_EQ(fivc_evch_kick(ev), 0, "kick child");
out:
	close(sv[0]);
	if (pid > 0) {
		waitpid(pid, &status, 0);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child saw our writes and our kick", "status %#x",
		      status);
	}
	if (be) {
		be->ops->evch_destroy(ev);
		be->ops->shm_destroy(shm);
	}
	fivc_backend_close(be);
}

static double elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1e3 +
	       (t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Both ends in one process: each kick wakes the other end, and only once. */
static void test_kick_wait(void)
{
	struct fivc_backend *be;
	struct fivc_evch *off = NULL, *bnd = NULL;
	struct fivc_evch_desc ed;
	struct fivc_kick k;
	struct timespec t0;
	int err;

	if (!CHECK_EQ(fivc_backend_open_local(&be), 0, "open local backend"))
		return;
	if (!CHECK_EQ(be->ops->evch_offer(be, 0, &off), 0, "evch_offer") ||
	    !CHECK_EQ(be->ops->evch_describe(off, &ed), 0, "evch_describe") ||
	    !CHECK_EQ(be->ops->evch_bind(be, &ed, &bnd), 0, "evch_bind"))
		goto out;
	CHECK(be->ops->evch_fd(off) != be->ops->evch_fd(bnd),
	      "ends sleep on different fds");
	CHECK_EQ(be->ops->evch_describe(bnd, &ed), -EINVAL,
		 "a bound end cannot be described");

	CHECK_EQ(fivc_evch_wait(off, 0), -ETIMEDOUT, "offerer idle");
	CHECK_EQ(fivc_evch_wait(bnd, 0), -ETIMEDOUT, "binder idle");

	CHECK_EQ(fivc_evch_kick(bnd), 0, "binder kicks");
	CHECK_EQ(fivc_evch_wait(bnd, 0), -ETIMEDOUT, "no kick to oneself");
	CHECK_EQ(fivc_evch_wait(off, WAIT_MS), 0, "offerer woken");
	CHECK_EQ(fivc_evch_wait(off, 0), -ETIMEDOUT, "wait acked the kick");

	/* Through the ring's adapter, twice: kicks coalesce into one wake. */
	k.fn = fivc_evch_kick;
	k.arg = off;
	CHECK_EQ(k.fn(k.arg), 0, "offerer kicks");
	CHECK_EQ(k.fn(k.arg), 0, "offerer kicks again");
	CHECK_EQ(fivc_evch_wait(bnd, WAIT_MS), 0, "binder woken");
	CHECK_EQ(fivc_evch_wait(bnd, 0), -ETIMEDOUT, "kicks coalesced");

	/* ack on an idle channel is a no-op, never a block. */
	CHECK_EQ(be->ops->evch_ack(bnd), 0, "ack with nothing pending");

	clock_gettime(CLOCK_MONOTONIC, &t0);
	err = fivc_evch_wait(off, 50);
	CHECK_EQ(err, -ETIMEDOUT, "timed wait times out");
	CHECK(elapsed_ms(&t0) >= 45, "timed wait slept its timeout", "%.1f ms",
	      elapsed_ms(&t0));

	CHECK_EQ(fivc_evch_kick(NULL), -EINVAL, "kick NULL");
	CHECK_EQ(fivc_evch_wait(NULL, 0), -EINVAL, "wait NULL");
out:
	be->ops->evch_destroy(bnd);
	be->ops->evch_destroy(off);
	fivc_backend_close(be);
}

/* A peer's eventfds made blocking still never block ack. */
static void test_bind_blocking_eventfd(void)
{
	struct fivc_backend *be;
	struct fivc_evch *ev = NULL;
	struct fivc_evch_desc ed = {.kind = FIVC_BACKEND_LOCAL};

	ed.fd_wait = eventfd(0, EFD_CLOEXEC);
	ed.fd_kick = eventfd(0, EFD_CLOEXEC);
	if (!CHECK_EQ(fivc_backend_open_local(&be), 0, "open local backend"))
		goto out;
	if (CHECK_EQ(be->ops->evch_bind(be, &ed, &ev), 0, "bind blocking")) {
		alarm(10); /* the watchdog if ack did block */
		CHECK_EQ(be->ops->evch_ack(ev), 0, "ack does not block");
		alarm(0);
	}
	be->ops->evch_destroy(ev);
	fivc_backend_close(be);
out:
	close(ed.fd_wait);
	close(ed.fd_kick);
}

static void test_offer(void)
{
	struct fivc_backend *be;
	struct fivc_shm *shm = NULL;
	struct fivc_shm_desc d;
	const uint8_t *p;
	bool zero = true;
	int seals;

	if (!CHECK_EQ(fivc_backend_open_local(&be), 0, "open local backend"))
		return;
	CHECK_EQ(be->ops->shm_offer(be, 0, 0, &shm), -EINVAL, "offer 0 bytes");
	CHECK_EQ(be->ops->shm_offer(be, 4097, 0, &shm), -EINVAL,
		 "offer unaligned");
	CHECK_EQ(be->ops->shm_offer(be, (FIVC_SHM_MAX_PAGES + 1) * (size_t)4096,
				    0, &shm),
		 -EINVAL, "offer too much");
	if (!CHECK_EQ(be->ops->shm_offer(be, REGION_SIZE, 0, &shm), 0, "offer"))
		goto out;
	p = shm->addr;
	for (size_t i = 0; i < REGION_SIZE; i++)
		zero &= !p[i];
	CHECK(zero, "offered region is zeroed");
	CHECK_EQ(shm->size, REGION_SIZE, "offered size");
	CHECK(shm->be == be, "region knows its backend");
	be->ops->shm_describe(shm, &d);
	seals = fcntl(d.fd, F_GET_SEALS);
	CHECK_EQ(seals, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL,
		 "memfd sealed against resizing");
	CHECK(fcntl(d.fd, F_GETFD) & FD_CLOEXEC, "memfd is close-on-exec");
	be->ops->shm_destroy(shm);
out:
	fivc_backend_close(be);
}

/* A limit on what is offered at once: -ENOSPC past it, room again after. */
static void test_offer_limit(void)
{
	struct fivc_backend *be;
	struct fivc_shm *a = NULL, *b = NULL, *c = NULL;

	if (!CHECK_EQ(fivc_backend_open_local(&be), 0, "open local backend"))
		return;
	CHECK_EQ(fivc_backend_local_limit(be, 2 * REGION_SIZE), 0, "set limit");
	CHECK_EQ(be->ops->shm_offer(be, REGION_SIZE, 0, &a), 0, "offer 1 of 2");
	CHECK_EQ(be->ops->shm_offer(be, REGION_SIZE, 0, &b), 0, "offer 2 of 2");
	CHECK_EQ(be->ops->shm_offer(be, REGION_SIZE, 0, &c), -ENOSPC,
		 "offer past the limit");
	be->ops->shm_destroy(a);
	CHECK_EQ(be->ops->shm_offer(be, REGION_SIZE, 0, &c), 0,
		 "offer again once one is gone");
	CHECK_EQ(fivc_backend_local_limit(NULL, 1), -EINVAL, "no backend");
	be->ops->shm_destroy(b);
	be->ops->shm_destroy(c);
	fivc_backend_close(be);
}

static int make_memfd(unsigned int flags, size_t size, int seals)
{
	int fd = memfd_create("test", MFD_CLOEXEC | flags);

	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)size) < 0 ||
	    (seals && fcntl(fd, F_ADD_SEALS, seals) < 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int map_fd(struct fivc_backend *be, int fd, uint32_t size)
{
	struct fivc_shm_desc d = {.kind = FIVC_BACKEND_LOCAL, .size = size};
	struct fivc_shm *shm = NULL;
	int err;

	d.fd = fd;
	err = be->ops->shm_map(be, &d, &shm);
	if (!err)
		be->ops->shm_destroy(shm);
	else if (shm)
		err = -EFAULT; /* a failed map must not hand anything out */
	return err;
}

static void test_map_refuses(void)
{
	struct fivc_backend *be;
	struct fivc_shm_desc d;
	struct fivc_shm *shm = NULL;
	char path[64];
	int fd, rofd, pipefd[2], before;

	if (!CHECK_EQ(fivc_backend_open_local(&be), 0, "open local backend"))
		return;
	before = count_fds();

	fd = make_memfd(0, REGION_SIZE, 0);
	CHECK_EQ(map_fd(be, fd, REGION_SIZE), -EINVAL, "memfd without sealing");
	close(fd);
	fd = make_memfd(MFD_ALLOW_SEALING, REGION_SIZE, 0);
	CHECK_EQ(map_fd(be, fd, REGION_SIZE), -EINVAL, "memfd with no seals");
	close(fd);
	fd = make_memfd(MFD_ALLOW_SEALING, REGION_SIZE,
			F_SEAL_GROW | F_SEAL_SEAL);
	CHECK_EQ(map_fd(be, fd, REGION_SIZE), -EINVAL, "memfd without SHRINK");
	close(fd);
	fd = make_memfd(MFD_ALLOW_SEALING, 4096, F_SEAL_SHRINK);
	CHECK_EQ(map_fd(be, fd, REGION_SIZE), -EINVAL, "memfd too small");
	CHECK_EQ(map_fd(be, fd, 4096), 0, "same memfd at its real size");
	close(fd);
	fd = make_memfd(MFD_ALLOW_SEALING, 4096, F_SEAL_SHRINK | F_SEAL_WRITE);
	CHECK_EQ(map_fd(be, fd, 4096), -EINVAL, "write-sealed memfd");
	close(fd);
	fd = make_memfd(MFD_ALLOW_SEALING, 4096, F_SEAL_SHRINK);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	rofd = open(path, O_RDONLY | O_CLOEXEC);
	close(fd);
	CHECK_EQ(map_fd(be, rofd, 4096), -EINVAL, "read-only memfd");
	close(rofd);

	snprintf(path, sizeof(path), "/tmp/fivc-test-XXXXXX");
	fd = mkstemp(path);
	if (CHECK(fd >= 0, "mkstemp")) {
		unlink(path);
		CHECK_EQ(ftruncate(fd, REGION_SIZE), 0, "size tmp file");
		CHECK_EQ(map_fd(be, fd, REGION_SIZE), -EINVAL,
			 "regular file, not a memfd");
		close(fd);
	}
	if (CHECK_EQ(pipe(pipefd), 0, "pipe")) {
		CHECK_EQ(map_fd(be, pipefd[0], REGION_SIZE), -EINVAL, "pipe");
		close(pipefd[0]);
		close(pipefd[1]);
	}
	fd = eventfd(0, EFD_CLOEXEC);
	CHECK_EQ(map_fd(be, fd, 4096), -EINVAL, "eventfd");
	close(fd);
	CHECK_EQ(map_fd(be, -1, REGION_SIZE), -EINVAL, "fd -1");
	CHECK_EQ(map_fd(be, 999, REGION_SIZE), -EINVAL, "closed fd");

	/* A good memfd with a bad descriptor around it. */
	fd = make_memfd(MFD_ALLOW_SEALING, REGION_SIZE, F_SEAL_SHRINK);
	CHECK_EQ(map_fd(be, fd, 0), -EINVAL, "size 0");
	CHECK_EQ(map_fd(be, fd, 100), -EINVAL, "size not page-aligned");
	CHECK_EQ(map_fd(be, fd, (FIVC_SHM_MAX_PAGES + 1) * 4096u), -EINVAL,
		 "size over the maximum");
	d = (struct fivc_shm_desc){
		.kind = FIVC_BACKEND_XEN, .size = REGION_SIZE, .fd = fd};
	CHECK_EQ(be->ops->shm_map(be, &d, &shm), -EINVAL, "xen kind");
	d.kind = FIVC_BACKEND_LOCAL;
	d.n_refs = 3;
	CHECK_EQ(be->ops->shm_map(be, &d, &shm), -EINVAL, "local with refs");
	CHECK(!shm, "nothing handed out on failure");

	/* The caller keeps its fd: closing it leaves the mapping usable. */
	d.n_refs = 0;
	if (CHECK_EQ(be->ops->shm_map(be, &d, &shm), 0, "map good memfd")) {
		close(fd);
		fd = -1;
		memset(shm->addr, 0xab, REGION_SIZE);
		CHECK_EQ(((uint8_t *)shm->addr)[REGION_SIZE - 1], 0xab,
			 "mapping outlives the caller's fd");
		be->ops->shm_destroy(shm);
	}
	if (fd >= 0)
		close(fd);
	CHECK_EQ(count_fds(), before, "no fd leaked by refusals");
	fivc_backend_close(be);
}

static void test_bind_refuses(void)
{
	struct fivc_backend *be;
	struct fivc_evch *ev = NULL;
	struct fivc_evch_desc ed = {.kind = FIVC_BACKEND_LOCAL};
	int efd, mfd, pipefd[2], before;

	if (!CHECK_EQ(fivc_backend_open_local(&be), 0, "open local backend"))
		return;
	before = count_fds();
	efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	mfd = make_memfd(0, 4096, 0);
	if (!CHECK_EQ(pipe(pipefd), 0, "pipe"))
		goto out;

	ed.fd_wait = pipefd[0];
	ed.fd_kick = efd;
	CHECK_EQ(be->ops->evch_bind(be, &ed, &ev), -EINVAL, "pipe to wait on");
	ed.fd_wait = efd;
	ed.fd_kick = mfd;
	CHECK_EQ(be->ops->evch_bind(be, &ed, &ev), -EINVAL, "memfd to kick");
	ed.fd_kick = -1;
	CHECK_EQ(be->ops->evch_bind(be, &ed, &ev), -EINVAL, "fd -1");
	ed.fd_kick = 999;
	CHECK_EQ(be->ops->evch_bind(be, &ed, &ev), -EINVAL, "closed fd");
	ed.fd_kick = efd;
	ed.kind = FIVC_BACKEND_XEN;
	CHECK_EQ(be->ops->evch_bind(be, &ed, &ev), -EINVAL, "xen kind");
	CHECK(!ev, "nothing handed out on failure");
	close(pipefd[0]);
	close(pipefd[1]);
out:
	close(efd);
	close(mfd);
	CHECK_EQ(count_fds(), before, "no fd leaked by refusals");
	fivc_backend_close(be);
}

static void test_null_and_half_built(void)
{
	struct fivc_backend *be;
	struct fivc_backend empty = {0};
	struct fivc_shm_desc d = {.fd = -1};

	if (!CHECK_EQ(fivc_backend_open_local(&be), 0, "open local backend"))
		return;
	be->ops->shm_destroy(NULL);
	be->ops->evch_destroy(NULL);
	fivc_backend_close(be);
	fivc_backend_close(NULL);
	fivc_backend_close(&empty);
	d.refs = malloc(4 * sizeof(*d.refs));
	d.n_refs = 4;
	fivc_shm_desc_clear(&d);
	CHECK(!d.refs && !d.n_refs && d.fd == -1, "desc cleared");
	fivc_shm_desc_clear(NULL);
}

static void run(const char *name, void (*fn)(void))
{
	int before = test_failures;

	fn();
	printf("%s - %s\n", test_failures == before ? "ok" : "not ok", name);
	fflush(stdout);
}

int main(void)
{
	/* The refusals log one line each; keep the output to the results. */
	fivc_log_set_level(FIVC_LOG_ERR);
	run("backend_local/share_across_fork", test_share_across_fork);
	run("backend_local/kick_wait", test_kick_wait);
	run("backend_local/bind_blocking_eventfd", test_bind_blocking_eventfd);
	run("backend_local/offer", test_offer);
	run("backend_local/offer_limit", test_offer_limit);
	run("backend_local/map_refuses", test_map_refuses);
	run("backend_local/bind_refuses", test_bind_refuses);
	run("backend_local/null_and_half_built", test_null_and_half_built);
	return test_report("backend_local");
}
