/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Tunnel lifecycle messages (the thesis's Table 1) that travel out of band,
 * over a control connection: a Unix stream socket for the local backend, a
 * Xen control ring later. The encoding below is independent of the
 * transport; fivc_tunnel_msg_send/recv are the Unix socket transport.
 * SEND_DATA, RECV_GET_DATA, SEND_CLOSE and RECV_CLOSE live in the ring.
 *
 *   CREATE_TUNNEL  producer -> consumer: geometry, region, event channel
 *   ACCEPT_TUNNEL  consumer -> producer: mapped it (our extension)
 *   REJECT_TUNNEL  consumer -> producer: could not map it, with an errno
 *   FALLBACK       either way, once the tunnel will not come up (our
 *                  extension, docs/steering.md "Fallback"): where this
 *                  side's bytes go instead
 *   KEEPALIVE      either way on a link whose transport cannot tell that
 *                  the peer died (Xen): "still here", tunnel_id 0
 *   RELEASE        consumer -> producer, tunnel_id 0: I no longer read
 *                  your ring `ring_id`; KEPT: I keep it mapped, with its
 *                  event channel bound, for a later CREATE naming it
 *   EVICT          producer -> consumer, tunnel_id 0: drop your mapping
 *                  of my ring `ring_id` (I destroyed it)
 *
 * Ring ids (docs/steering.md, "Ring reuse"): a producer names each
 * ring it offers with an id 1..FIVC_RING_ID_MAX unique on the link, or 0
 * for a ring never to be reused. Once the consumer RELEASEd it KEPT, the
 * producer reformats it and a CREATE with FIVC_TMSG_F_CACHED names it
 * instead of describing it again: no region, no event channel, no fds.
 *
 * Wire format, all fields little-endian, no implicit padding:
 *
 *   header (FIVC_TMSG_HDR_SIZE = 16)
 *     0  u16 magic       FIVC_TMSG_MAGIC
 *     2  u8  version     FIVC_TMSG_VERSION
 *     3  u8  type        enum fivc_tmsg_type
 *     4  u32 body_len    bytes after the header
 *     8  u64 tunnel_id
 *   CREATE body (FIVC_TMSG_CREATE_SIZE = 56 + 4 * n_refs)
 *     0  u32 n_channels, 4 u32 channel_size, 8 u32 n_receivers,
 *    12  u32 gen_first                     (struct fivc_ring_geom)
 *    16  u32 flags       FIVC_TMSG_F_EVCH: an event channel is included;
 *                        FIVC_TMSG_F_CACHED: the consumer's cached ring
 *                        ring_id, so every shm and evch field is 0;
 *                        FIVC_TMSG_F_ACCEPTS: and the sender attached the
 *                        receiver's CREATE of this tunnel (its ACCEPT)
 *    20  u32 shm.kind, 24 u32 shm.size, 28 u32 shm.domid, 32 u32 shm.n_refs
 *    36  u32 evch.kind, 40 u32 evch.domid, 44 u32 evch.port  (0 if no evch)
 *    48  u32 ring_id     0: not reusable (never with F_CACHED)
 *    52  u32 reserved    0
 *    56  u32 refs[n_refs]                  (xen grant references)
 *   ACCEPT and KEEPALIVE bodies: empty
 *   RELEASE body (8)
 *     0  u32 ring_id     1..FIVC_RING_ID_MAX
 *     4  u32 flags       FIVC_TMSG_F_KEPT: still mapped here
 *   EVICT body (8)
 *     0  u32 ring_id     1..FIVC_RING_ID_MAX
 *     4  u32 reserved    0
 *   REJECT body (8)
 *     0  u32 reason      a positive errno, 1..4095
 *     4  u32 reserved    0
 *   FALLBACK body (16)
 *     0  u32 mode        enum fivc_fallback_mode
 *     4  u32 flags       FIVC_TMSG_F_SOCKET: a relay socket travels with
 *                        it (RELAY on the local backend; the only fd)
 *     8  u64 bytes       END: the relay's length; 0 otherwise
 *
 * A local CREATE carries n_refs = 0 and its fds as SCM_RIGHTS in the same
 * sendmsg, in this order: shm.fd, then evch.fd_wait and evch.fd_kick if
 * FIVC_TMSG_F_EVCH. Xen messages and ACCEPT/REJECT carry no fds.
 *
 * Everything received is untrusted: decode and recv refuse any message that
 * is not exactly well formed with -EINVAL.
 */
#ifndef FASTIVC_TUNNEL_MSG_H
#define FASTIVC_TUNNEL_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fastivc/ring.h"
#include "fastivc/shm.h"

#define FIVC_TMSG_MAGIC 0x5446u /* "FT" on the wire */
#define FIVC_TMSG_VERSION 2u
#define FIVC_TMSG_HDR_SIZE 16u
#define FIVC_TMSG_CREATE_SIZE 56u
#define FIVC_TMSG_REJECT_SIZE 8u
#define FIVC_TMSG_RING_SIZE 8u /* RELEASE and EVICT */
#define FIVC_TMSG_FALLBACK_SIZE 16u
#define FIVC_TMSG_MAX_SIZE                                                     \
	(FIVC_TMSG_HDR_SIZE + FIVC_TMSG_CREATE_SIZE + 4u * FIVC_SHM_MAX_PAGES)
/* Most fds one message carries: a region and an event channel's two. */
#define FIVC_TMSG_MAX_FDS 3u
/* fds a receiver keeps for one message: room to see a peer send too many. */
#define FIVC_TMSG_RX_FDS 8u

#define FIVC_TMSG_F_EVCH (1u << 0)
#define FIVC_TMSG_F_CACHED (1u << 1)
#define FIVC_TMSG_F_ACCEPTS (1u << 2)
#define FIVC_TMSG_F_SOCKET (1u << 0)
#define FIVC_TMSG_F_KEPT (1u << 0)
/* Ring ids a producer may use (24 bits: a wrap takes 16M offers). */
#define FIVC_RING_ID_MAX 0xffffffu

enum fivc_tmsg_type {
	FIVC_TMSG_CREATE = 1,
	FIVC_TMSG_ACCEPT = 2,
	FIVC_TMSG_REJECT = 3,
	FIVC_TMSG_FALLBACK = 4,
	FIVC_TMSG_KEEPALIVE = 5,
	FIVC_TMSG_RELEASE = 6,
	FIVC_TMSG_EVICT = 7,
};

enum fivc_fallback_mode {
	FIVC_FB_TCP = 1,   /* none of my bytes took the tunnel: all on TCP */
	FIVC_FB_RELAY = 2, /* my bytes come over the relay socket instead */
	FIVC_FB_END = 3,   /* the relay ended after `bytes` bytes */
};

struct fivc_tunnel_msg {
	uint32_t type; /* enum fivc_tmsg_type */
	uint64_t tunnel_id;
	/* CREATE only */
	struct fivc_ring_geom geom;
	struct fivc_shm_desc shm;
	bool has_evch;
	struct fivc_evch_desc evch; /* zero, fds -1, unless has_evch */
	bool cached;  /* the consumer's cached ring ring_id: no shm, no evch */
	bool accepts; /* and the receiver's CREATE is attached: its ACCEPT */
	/* CREATE, RELEASE, EVICT: the producer's name for the ring, 0: none */
	uint32_t ring_id;
	bool kept; /* RELEASE only: the consumer still maps it */
	/* REJECT only: why the consumer refused, a positive errno */
	uint32_t reason;
	/* FALLBACK only */
	uint32_t fb_mode;  /* enum fivc_fallback_mode */
	bool has_socket;   /* relay_fd travels with it */
	uint64_t fb_bytes; /* END only */
	int relay_fd;	   /* -1 unless has_socket */
};

/* Zero @m, set its type and id, and every fd to -1. */
void fivc_tunnel_msg_init(struct fivc_tunnel_msg *m, enum fivc_tmsg_type type,
			  uint64_t tunnel_id);
/*
 * Release what a decoded or received message owns: its fds and refs.
 * Not for a message whose descs came from shm_describe/evch_describe
 * (those fds belong to the shm/evch objects; fivc_shm_desc_clear(&m->shm)
 * is enough there). Accepts NULL.
 */
void fivc_tunnel_msg_release(struct fivc_tunnel_msg *m);

/* Bytes @m encodes to, or -EINVAL if it is not a valid message. */
ssize_t fivc_tunnel_msg_size(const struct fivc_tunnel_msg *m);
/* fds @m travels with (0..FIVC_TMSG_MAX_FDS). */
unsigned int fivc_tunnel_msg_n_fds(const struct fivc_tunnel_msg *m);
/*
 * Encode @m into @buf: bytes written, -EINVAL for an invalid message,
 * -ENOSPC if @len is too small. fds are not part of the encoding.
 */
ssize_t fivc_tunnel_msg_encode(const struct fivc_tunnel_msg *m, void *buf,
			       size_t len);
/*
 * From the first FIVC_TMSG_HDR_SIZE bytes of @buf, the length of the whole
 * message (header included), or -EINVAL for a header that cannot start one.
 */
ssize_t fivc_tunnel_msg_frame_len(const void *buf, size_t len);
/*
 * Decode exactly one message of @len bytes. A pure function: no I/O, no
 * logging; on success @m owns its refs (release it), fds are -1. On
 * failure -EINVAL (-ENOMEM), @m is left initialised and owns nothing, and
 * *why (if @why is not NULL) says what was wrong.
 */
int fivc_tunnel_msg_decode(const void *buf, size_t len,
			   struct fivc_tunnel_msg *m, const char **why);

/*
 * Unix stream socket transport. send writes one whole message and its fds
 * (which stay the caller's); recv reads one and takes ownership of the fds
 * that came with it (FD_CLOEXEC), closing them if the message is refused.
 * Both return 0 or a negative errno; recv: -ENOTCONN on an orderly close
 * between messages, -ECONNRESET on one inside a message, -EINVAL for a
 * malformed message or wrong fd count (the stream is then out of step:
 * close it), -ETIMEDOUT when the peer stalls inside a message for more
 * than a second. -EINTR (a signal) and, on a non-blocking socket, -EAGAIN
 * only before the first byte of a message.
 */
int fivc_tunnel_msg_send(int sock, const struct fivc_tunnel_msg *m);
int fivc_tunnel_msg_recv(int sock, struct fivc_tunnel_msg *m);

/*
 * The receiving side for an event loop, which must never wait for the rest
 * of a message (on Xen the bytes that would complete it are pumped by the
 * same thread): one reader per stream keeps what arrived of the current
 * message, with the fds that came with it (at most FIVC_TMSG_RX_FDS), until
 * the rest arrives or the reader is dropped. The caller bounds how long a
 * message may stay partial.
 */
struct fivc_tunnel_rx {
	uint8_t hdr[FIVC_TMSG_HDR_SIZE];
	uint8_t *buf;	 /* the whole message, once its header is in */
	size_t len, got; /* its length (0: header not in yet), bytes in */
	int fds[FIVC_TMSG_RX_FDS];
	unsigned int n_fds;
};

void fivc_tunnel_rx_init(struct fivc_tunnel_rx *r);
/*
 * Read what @sock has of the next message without waiting (MSG_DONTWAIT,
 * whatever the socket's mode): 0 and @m (which owns the fds) once it is
 * whole; -EAGAIN while it is not, what came kept in @r; -ENOTCONN on an
 * orderly close between messages, -ECONNRESET on one inside a message,
 * -EINVAL for a malformed message, a wrong fd count or too many fds (one
 * log line; the stream is out of step: close it), -ENOMEM or another
 * -errno. After any error but -EAGAIN, @r holds nothing.
 */
int fivc_tunnel_rx_read(int sock, struct fivc_tunnel_rx *r,
			struct fivc_tunnel_msg *m);
/* Part of a message (bytes or fds) waits in @r. */
bool fivc_tunnel_rx_partial(const struct fivc_tunnel_rx *r);
/* Drop what @r holds: close its fds, free its buffer. Accepts NULL. */
void fivc_tunnel_rx_fini(struct fivc_tunnel_rx *r);

/*
 * The same transport for a non-blocking sender (an agent must never block
 * on its peer: two agents blocked sending to each other deadlock). A frame
 * is one encoded message with its own copies (dup) of the message's fds,
 * so the message and its owners may go away before it is sent.
 */
struct fivc_tunnel_frame {
	struct fivc_tunnel_frame *next; /* for the caller's queue */
	uint8_t *buf;
	size_t len, off;
	int fds[FIVC_TMSG_MAX_FDS];
	unsigned int n_fds; /* sent with the first byte, then closed */
};

/* 0 and *out, or -EINVAL (bad message), -EBADF, -ENOMEM, -EMFILE. */
int fivc_tunnel_frame_new(const struct fivc_tunnel_msg *m,
			  struct fivc_tunnel_frame **out);
/*
 * Send what the socket takes now: 0 once the whole frame is sent, -EAGAIN
 * while some remains (wait for POLLOUT), or another -errno.
 */
int fivc_tunnel_frame_send(int sock, struct fivc_tunnel_frame *f);
/* Free @f, closing fds not sent yet. Accepts NULL. */
void fivc_tunnel_frame_free(struct fivc_tunnel_frame *f);

#endif /* FASTIVC_TUNNEL_MSG_H */
