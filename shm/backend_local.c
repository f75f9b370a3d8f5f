// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The local backend: sealed memfd regions and eventfd pairs, handed to the
 * peer over a Unix socket (SCM_RIGHTS) by the caller. For network namespaces
 * on one kernel. Whatever the peer sends us is checked before use.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fastivc/log.h"
#include "fastivc/shm.h"

#define LOCAL_PAGE_SIZE 4096u
#define LOCAL_MAX_SIZE ((size_t)FIVC_SHM_MAX_PAGES * LOCAL_PAGE_SIZE)

/* The backend, with what it has offered against its limit. */
struct local_backend {
	struct fivc_backend be; /* first: the ops get a struct fivc_backend * */
	size_t limit;		/* bytes offered at once at most; 0: any */
	size_t offered;
};

struct local_shm {
	struct fivc_shm shm; /* first: the ops get a struct fivc_shm * */
	int fd;
	bool offered; /* counted in its backend's offered bytes */
};

struct local_evch {
	struct fivc_evch ev; /* first: the ops get a struct fivc_evch * */
	int fd_wait;	     /* we sleep on this; the other end writes it */
	int fd_kick;	     /* we write this to wake the other end */
	int offered;	     /* 1 on the offering side */
};

static struct local_backend *to_lb(struct fivc_backend *be)
{
	return (struct local_backend *)be;
}

static struct local_shm *to_local_shm(struct fivc_shm *shm)
{
	return (struct local_shm *)shm;
}

static struct local_evch *to_local_evch(struct fivc_evch *ev)
{
	return (struct local_evch *)ev;
}

static int local_size_ok(size_t size)
{
	return size && !(size % LOCAL_PAGE_SIZE) && size <= LOCAL_MAX_SIZE;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void local_shm_destroy(struct fivc_shm *shm)
{
	struct local_shm *ls = to_local_shm(shm);

	if (!ls)
		return;
	if (ls->offered)
		to_lb(ls->shm.be)->offered -= ls->shm.size;
	if (ls->shm.addr && ls->shm.addr != MAP_FAILED)
		munmap(ls->shm.addr, ls->shm.size);
	close_fd(&ls->fd);
	free(ls);
}

static struct local_shm *local_shm_alloc(struct fivc_backend *be)
{
	struct local_shm *ls = calloc(1, sizeof(*ls));

	if (!ls)
		return NULL;
	ls->shm.be = be;
	ls->fd = -1;
	return ls;
}

static int local_shm_mmap(struct local_shm *ls, size_t size)
{
	void *addr;

	addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, ls->fd, 0);
	if (addr == MAP_FAILED)
		return -errno;
	ls->shm.addr = addr;
	ls->shm.size = size;
	return 0;
}

static int local_shm_offer(struct fivc_backend *be, size_t size, uint32_t peer,
			   struct fivc_shm **out)
{
	struct local_shm *ls;
	int err;

	(void)peer;
	if (!local_size_ok(size))
		return -EINVAL;
	/* Like a full grant table on Xen. */
	if (to_lb(be)->limit && to_lb(be)->offered + size > to_lb(be)->limit)
		return -ENOSPC;
	ls = local_shm_alloc(be);
	if (!ls)
		return -ENOMEM;

	ls->fd = memfd_create("fastivc-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (ls->fd < 0) {
		err = -errno;
		pr_err("Failed to create memfd: %s", strerror(-err));
		goto err_free;
	}
	if (ftruncate(ls->fd, (off_t)size) < 0) {
		err = -errno;
		goto err_free;
	}
	/* The peer insists on SHRINK: a truncate would SIGBUS its mapping. */
	if (fcntl(ls->fd, F_ADD_SEALS,
		  F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		err = -errno;
		goto err_free;
	}
	err = local_shm_mmap(ls, size);
	if (err)
		goto err_free;
	ls->offered = true;
	to_lb(be)->offered += size;
	*out = &ls->shm;
	return 0;

err_free:
	local_shm_destroy(&ls->shm);
	return err;
}

static int local_shm_describe(struct fivc_shm *shm, struct fivc_shm_desc *d)
{
	struct local_shm *ls = to_local_shm(shm);

	memset(d, 0, sizeof(*d));
	d->kind = FIVC_BACKEND_LOCAL;
	d->size = (uint32_t)ls->shm.size;
	d->fd = ls->fd;
	return 0;
}

/*
 * The fd comes from the peer. Seals are checked before the size: once
 * F_SEAL_SHRINK is set it can never be removed, so the size we then read
 * is a lower bound for as long as we keep the mapping.
 */
static int local_check_memfd(int fd, size_t size)
{
	struct stat st;
	int seals;

	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0) {
		pr_warn("local shm: peer fd is not a sealable memfd: %s",
			strerror(errno));
		return -EINVAL;
	}
	if (!(seals & F_SEAL_SHRINK)) {
		pr_warn("local shm: peer memfd lacks F_SEAL_SHRINK (seals %#x)",
			seals);
		return -EINVAL;
	}
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || st.st_size < 0 ||
	    (uint64_t)st.st_size < size) {
		pr_warn("local shm: peer memfd too small (%lld < %zu bytes)",
			(long long)st.st_size, size);
		return -EINVAL;
	}
	return 0;
}

static int local_shm_map(struct fivc_backend *be, const struct fivc_shm_desc *d,
			 struct fivc_shm **out)
{
	struct local_shm *ls;
	int err;

	if (d->kind != FIVC_BACKEND_LOCAL || !local_size_ok(d->size) ||
	    d->n_refs || d->fd < 0) {
		pr_warn("local shm: bad descriptor (kind %u size %u fd %d)",
			d->kind, d->size, d->fd);
		return -EINVAL;
	}
	ls = local_shm_alloc(be);
	if (!ls)
		return -ENOMEM;

	/* The caller keeps d->fd; we hold our own reference. */
	ls->fd = fcntl(d->fd, F_DUPFD_CLOEXEC, 0);
	if (ls->fd < 0) {
		err = errno == EBADF ? -EINVAL : -errno;
		goto err_free;
	}
	err = local_check_memfd(ls->fd, d->size);
	if (err)
		goto err_free;
	err = local_shm_mmap(ls, d->size);
	if (err) {
		pr_warn("local shm: cannot map peer memfd: %s", strerror(-err));
		/* A read-only fd or a write seal is the peer's doing. */
		if (err == -EACCES || err == -EPERM)
			err = -EINVAL;
		goto err_free;
	}
	*out = &ls->shm;
	return 0;

err_free:
	local_shm_destroy(&ls->shm);
	return err;
}

static void local_evch_destroy(struct fivc_evch *ev)
{
	struct local_evch *le = to_local_evch(ev);

	if (!le)
		return;
	close_fd(&le->fd_wait);
	close_fd(&le->fd_kick);
	free(le);
}

static struct local_evch *local_evch_alloc(struct fivc_backend *be)
{
	struct local_evch *le = calloc(1, sizeof(*le));

	if (!le)
		return NULL;
	le->ev.be = be;
	le->fd_wait = -1;
	le->fd_kick = -1;
	return le;
}

static int local_evch_offer(struct fivc_backend *be, uint32_t peer,
			    struct fivc_evch **out)
{
	struct local_evch *le;
	int err;

	(void)peer;
	le = local_evch_alloc(be);
	if (!le)
		return -ENOMEM;
	le->offered = 1;
	le->fd_wait = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (le->fd_wait < 0)
		goto err_errno;
	le->fd_kick = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (le->fd_kick < 0)
		goto err_errno;
	*out = &le->ev;
	return 0;

err_errno:
	err = -errno;
	pr_err("Failed to create eventfd: %s", strerror(-err));
	local_evch_destroy(&le->ev);
	return err;
}

/* The binder's view is ours crossed over: it sleeps where we kick. */
static int local_evch_describe(struct fivc_evch *ev, struct fivc_evch_desc *d)
{
	struct local_evch *le = to_local_evch(ev);

	if (!le->offered)
		return -EINVAL;
	memset(d, 0, sizeof(*d));
	d->kind = FIVC_BACKEND_LOCAL;
	d->fd_wait = le->fd_kick;
	d->fd_kick = le->fd_wait;
	return 0;
}

static int local_is_eventfd(int fd)
{
	char path[64], target[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return -errno;
	target[n] = '\0';
	return strcmp(target, "anon_inode:[eventfd]") ? -EINVAL : 0;
}

/* Dup a peer's eventfd and make sure that is what it is. */
static int local_take_eventfd(int fd, int *out)
{
	int dup_fd, flags, err;

	if (fd < 0)
		return -EINVAL;
	dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (dup_fd < 0)
		return errno == EBADF ? -EINVAL : -errno;
	err = local_is_eventfd(dup_fd);
	if (err) {
		pr_warn("local evch: peer fd is not an eventfd: %s",
			strerror(-err));
		goto err_close;
	}
	/*
	 * ack and notify must never block. O_NONBLOCK lives in the shared file
	 * description, so this also covers a peer that created it blocking.
	 */
	flags = fcntl(dup_fd, F_GETFL);
	if (flags < 0 || fcntl(dup_fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		err = -errno;
		goto err_close;
	}
	*out = dup_fd;
	return 0;

err_close:
	close(dup_fd);
	return err;
}

static int local_evch_bind(struct fivc_backend *be,
			   const struct fivc_evch_desc *d,
			   struct fivc_evch **out)
{
	struct local_evch *le;
	int err;

	if (d->kind != FIVC_BACKEND_LOCAL) {
		pr_warn("local evch: bad descriptor kind %u", d->kind);
		return -EINVAL;
	}
	le = local_evch_alloc(be);
	if (!le)
		return -ENOMEM;
	err = local_take_eventfd(d->fd_wait, &le->fd_wait);
	if (err)
		goto err_free;
	err = local_take_eventfd(d->fd_kick, &le->fd_kick);
	if (err)
		goto err_free;
	*out = &le->ev;
	return 0;

err_free:
	local_evch_destroy(&le->ev);
	return err;
}

static int local_evch_notify(struct fivc_evch *ev)
{
	uint64_t one = 1;

	if (write(to_local_evch(ev)->fd_kick, &one, sizeof(one)) < 0) {
		/* EAGAIN: counter saturated, so the peer is kicked anyway. */
		if (errno == EAGAIN)
			return 0;
		return -errno;
	}
	return 0;
}

static int local_evch_fd(struct fivc_evch *ev)
{
	return to_local_evch(ev)->fd_wait;
}

static int local_evch_ack(struct fivc_evch *ev)
{
	uint64_t count;

	if (read(to_local_evch(ev)->fd_wait, &count, sizeof(count)) < 0) {
		/* EAGAIN: nothing pending, e.g. a spurious wake-up. */
		if (errno == EAGAIN)
			return 0;
		return -errno;
	}
	return 0;
}

static void local_close(struct fivc_backend *be)
{
	free(be);
}

static size_t local_shm_room(struct fivc_backend *be)
{
	const struct local_backend *lb = to_lb(be);

	if (!lb->limit)
		return SIZE_MAX;
	return lb->limit > lb->offered ? lb->limit - lb->offered : 0;
}

static const struct fivc_backend_ops local_ops = {
	.name = "local",
	.shm_offer = local_shm_offer,
	.shm_describe = local_shm_describe,
	.shm_map = local_shm_map,
	.shm_destroy = local_shm_destroy,
	.evch_offer = local_evch_offer,
	.evch_describe = local_evch_describe,
	.evch_bind = local_evch_bind,
	.evch_notify = local_evch_notify,
	.evch_fd = local_evch_fd,
	.evch_ack = local_evch_ack,
	.evch_destroy = local_evch_destroy,
	.shm_room = local_shm_room,
	.close = local_close,
};

int fivc_backend_open_local(struct fivc_backend **out)
{
	struct local_backend *lb = calloc(1, sizeof(*lb));

	if (!lb)
		return -ENOMEM;
	lb->be.ops = &local_ops;
	lb->be.kind = FIVC_BACKEND_LOCAL;
	lb->be.self_domid = 0;
	*out = &lb->be;
	return 0;
}

int fivc_backend_local_limit(struct fivc_backend *be, size_t bytes)
{
	if (!be || be->ops != &local_ops)
		return -EINVAL;
	to_lb(be)->limit = bytes;
	return 0;
}
