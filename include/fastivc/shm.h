/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Shared-memory backends: how a ring's pages and its event channel are
 * shared with the peer.
 *
 *   local  memfd pages + eventfds, handed over a Unix socket (SCM_RIGHTS);
 *          for network namespaces on one kernel (tests, demo).
 *   xen    pages granted with gntalloc (libxengnttab's gntshr side) and
 *          mapped by the peer with gntdev; an interdomain event channel
 *          from libxenevtchn.
 *
 * The producer of a ring "offers" its region (it allocates the memory, as
 * in the thesis) and describes it in a fivc_shm_desc; the consumer "maps"
 * that description. An event channel is likewise offered by one side and
 * bound by the other; either side may then kick the other.
 *
 * Every call returns 0 or a negative errno. Destroy functions accept NULL
 * and half-built objects. A descriptor received from the peer is untrusted:
 * map/bind validate it and fail with -EINVAL rather than trust it.
 */
#ifndef FASTIVC_SHM_H
#define FASTIVC_SHM_H

#include <stddef.h>
#include <stdint.h>

enum fivc_backend_kind {
	FIVC_BACKEND_LOCAL = 1,
	FIVC_BACKEND_XEN = 2,
};

/* Most grant references one region may use: 64 channels of 1 MiB + header. */
#define FIVC_SHM_MAX_PAGES (64u * 256u + 2u)

/* What the consumer needs to map a producer's region. */
struct fivc_shm_desc {
	uint32_t kind;	 /* enum fivc_backend_kind */
	uint32_t size;	 /* bytes, a multiple of 4096 */
	uint32_t domid;	 /* xen: the domain that granted the pages */
	uint32_t n_refs; /* xen: size / 4096 */
	uint32_t *refs;	 /* xen: grant references (a copy the desc owns) */
	int fd;		 /* local: the memfd, -1 if none */
};

/* What the other side needs to bind an offered event channel. */
struct fivc_evch_desc {
	uint32_t kind;
	uint32_t domid; /* xen: the offering domain */
	uint32_t port;	/* xen: its unbound port */
	int fd_wait; /* local: the binder sleeps on this eventfd, -1 if none */
	int fd_kick; /* local: the binder kicks the offerer through this */
};

struct fivc_shm;  /* a mapped region, offered or mapped */
struct fivc_evch; /* one end of an event channel */
struct fivc_backend;

struct fivc_backend_ops {
	const char *name;
	/* Producer: allocate @size bytes shared with domain @peer, zeroed. */
	int (*shm_offer)(struct fivc_backend *be, size_t size, uint32_t peer,
			 struct fivc_shm **out);
	/*
	 * Fill @d for the peer. d->refs is a copy that fivc_shm_desc_clear()
	 * frees; d->fd stays owned by @shm and is never closed through @d.
	 */
	int (*shm_describe)(struct fivc_shm *shm, struct fivc_shm_desc *d);
	/* Consumer: map a region the peer described. */
	int (*shm_map)(struct fivc_backend *be, const struct fivc_shm_desc *d,
		       struct fivc_shm **out);
	void (*shm_destroy)(struct fivc_shm *shm);

	int (*evch_offer)(struct fivc_backend *be, uint32_t peer,
			  struct fivc_evch **out);
	int (*evch_describe)(struct fivc_evch *ev, struct fivc_evch_desc *d);
	int (*evch_bind)(struct fivc_backend *be,
			 const struct fivc_evch_desc *d,
			 struct fivc_evch **out);
	/* Kick the other end. Async-signal-unsafe, thread-safe. */
	int (*evch_notify)(struct fivc_evch *ev);
	/* An fd that polls readable when the other end kicked. */
	int (*evch_fd)(struct fivc_evch *ev);
	/* Consume pending kicks after the fd polled readable; never blocks. */
	int (*evch_ack)(struct fivc_evch *ev);
	void (*evch_destroy)(struct fivc_evch *ev);

	/*
	 * Bytes still to be offered before a limit refuses (SIZE_MAX: none
	 * known). A hint, not a promise: another user of the same limit may
	 * take them first, and shm_offer then fails with ENOSPC.
	 */
	size_t (*shm_room)(struct fivc_backend *be);

	void (*close)(struct fivc_backend *be);
};

/* What a backend holds now (xen; the local backend leaves them 0). */
struct fivc_backend_usage {
	uint64_t pages_granted; /* offered to peers */
	uint64_t pages_mapped;	/* of peers' offers */
	uint64_t evchs;		/* event channel ends, offered or bound */
};

struct fivc_backend {
	const struct fivc_backend_ops *ops;
	uint32_t kind;			 /* enum fivc_backend_kind */
	uint32_t self_domid;		 /* xen: our domid; local: 0 */
	struct fivc_backend_usage usage; /* updated atomically */
	void *priv;
};

/* A region's mapping, common to all backends. */
struct fivc_shm {
	struct fivc_backend *be;
	void *addr;
	size_t size;
};

struct fivc_evch {
	struct fivc_backend *be;
};

/* Open a backend. -ENOSYS if this build or this machine lacks it. */
int fivc_backend_open_local(struct fivc_backend **out);
int fivc_backend_open_xen(struct fivc_backend **out);
/*
 * Local backend: offer at most @bytes of regions at once (0: no limit). An
 * offer beyond it fails with -ENOSPC, as a full grant table does on Xen.
 * -EINVAL for another backend.
 */
int fivc_backend_local_limit(struct fivc_backend *be, size_t bytes);
/* ops->shm_room, SIZE_MAX for a backend without one. */
size_t fivc_backend_shm_room(struct fivc_backend *be);
void fivc_backend_close(struct fivc_backend *be);

/* Adapter for struct fivc_kick: @arg is a struct fivc_evch *. */
int fivc_evch_kick(void *arg);
/*
 * Sleep until the other end kicks or @timeout_ms passes (-1: forever).
 * 0 on a kick, -ETIMEDOUT, -EINTR, or another -errno.
 */
int fivc_evch_wait(struct fivc_evch *ev, int timeout_ms);

void fivc_shm_desc_clear(struct fivc_shm_desc *d);

#endif /* FASTIVC_SHM_H */
