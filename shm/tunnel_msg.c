// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Tunnel lifecycle messages: the wire encoding, validation and decoding. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fastivc/ring.h"
#include "fastivc/tunnel_msg.h"

#define TMSG_PAGE_SIZE 4096u
/* Xen domids at and above DOMID_FIRST_RESERVED name no real domain. */
#define TMSG_DOMID_FIRST_RESERVED 0x7ff0u

static void put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	put_le16(p, (uint16_t)v);
	put_le16(p + 2, (uint16_t)(v >> 16));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	put_le32(p, (uint32_t)v);
	put_le32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get_le32(const uint8_t *p)
{
	return get_le16(p) | (uint32_t)get_le16(p + 2) << 16;
}

static uint64_t get_le64(const uint8_t *p)
{
	return get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

void fivc_tunnel_msg_init(struct fivc_tunnel_msg *m, enum fivc_tmsg_type type,
			  uint64_t tunnel_id)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->tunnel_id = tunnel_id;
	m->shm.fd = -1;
	m->evch.fd_wait = -1;
	m->evch.fd_kick = -1;
	m->relay_fd = -1;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void fivc_tunnel_msg_release(struct fivc_tunnel_msg *m)
{
	if (!m)
		return;
	close_fd(&m->shm.fd);
	close_fd(&m->evch.fd_wait);
	close_fd(&m->evch.fd_kick);
	close_fd(&m->relay_fd);
	fivc_shm_desc_clear(&m->shm);
}

static int fail(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return -EINVAL;
}

static int check_geom(const struct fivc_ring_geom *g, const char **why)
{
	const char *reason = "bad geometry";
	int err;

	err = fivc_ring_geom_check(g, &reason);
	if (err)
		return fail(why, reason);
	return 0;
}

static int check_shm(const struct fivc_shm_desc *d, const char **why)
{
	if (!d->size || d->size % TMSG_PAGE_SIZE ||
	    d->size / TMSG_PAGE_SIZE > FIVC_SHM_MAX_PAGES)
		return fail(why, "bad region size");
	switch (d->kind) {
	case FIVC_BACKEND_LOCAL:
		if (d->domid || d->n_refs)
			return fail(why, "local region with domid or refs");
		return 0;
	case FIVC_BACKEND_XEN:
		if (d->domid >= TMSG_DOMID_FIRST_RESERVED)
			return fail(why, "bad region domid");
		if (d->n_refs != d->size / TMSG_PAGE_SIZE)
			return fail(why, "n_refs does not match region size");
		return 0;
	default:
		return fail(why, "bad region kind");
	}
}

static int check_evch(const struct fivc_tunnel_msg *m, const char **why)
{
	const struct fivc_evch_desc *d = &m->evch;

	if (!m->has_evch) {
		if (d->kind || d->domid || d->port)
			return fail(why, "event channel fields without flag");
		return 0;
	}
	if (d->kind != m->shm.kind)
		return fail(why, "event channel and region kinds differ");
	if (d->kind == FIVC_BACKEND_LOCAL && (d->domid || d->port))
		return fail(why, "local event channel with domid or port");
	if (d->kind == FIVC_BACKEND_XEN &&
	    (d->domid >= TMSG_DOMID_FIRST_RESERVED || !d->port))
		return fail(why, "bad xen event channel");
	return 0;
}

/* A CREATE naming a cached ring: the geometry and the id, nothing else. */
static int check_cached(const struct fivc_tunnel_msg *m, const char **why)
{
	const struct fivc_shm_desc *d = &m->shm;
	const struct fivc_evch_desc *e = &m->evch;

	if (!m->ring_id)
		return fail(why, "cached ring without a ring id");
	if (m->has_evch || d->kind || d->size || d->domid || d->n_refs ||
	    e->kind || e->domid || e->port)
		return fail(why, "cached ring with a region or event channel");
	return check_geom(&m->geom, why);
}

/* Everything but the fds, which are the transport's business. */
static int check_msg(const struct fivc_tunnel_msg *m, const char **why)
{
	int err;

	switch (m->type) {
	case FIVC_TMSG_CREATE:
		if (m->cached)
			return check_cached(m, why);
		err = check_geom(&m->geom, why);
		if (!err)
			err = check_shm(&m->shm, why);
		if (!err)
			err = check_evch(m, why);
		if (!err && m->shm.size < fivc_ring_region_size(&m->geom))
			err = fail(why, "region smaller than its geometry");
		return err;
	case FIVC_TMSG_ACCEPT:
		return 0;
	case FIVC_TMSG_RELEASE:
	case FIVC_TMSG_EVICT:
		if (m->tunnel_id)
			return fail(why, "ring message with a tunnel id");
		if (!m->ring_id)
			return fail(why, "ring message without a ring id");
		if (m->kept && m->type == FIVC_TMSG_EVICT)
			return fail(why, "evict with the kept flag");
		return 0;
	case FIVC_TMSG_KEEPALIVE:
		return m->tunnel_id ? fail(why, "keepalive with a tunnel id")
				    : 0;
	case FIVC_TMSG_REJECT:
		if (!m->reason || m->reason > 4095)
			return fail(why, "bad reject reason");
		return 0;
	case FIVC_TMSG_FALLBACK:
		if (m->fb_mode < FIVC_FB_TCP || m->fb_mode > FIVC_FB_END)
			return fail(why, "bad fallback mode");
		if (m->has_socket && m->fb_mode != FIVC_FB_RELAY)
			return fail(why,
				    "socket with a fallback other than relay");
		if (m->fb_bytes && m->fb_mode != FIVC_FB_END)
			return fail(why,
				    "bytes with a fallback other than end");
		return 0;
	default:
		return fail(why, "bad message type");
	}
}

static size_t body_len(const struct fivc_tunnel_msg *m)
{
	switch (m->type) {
	case FIVC_TMSG_CREATE:
		return FIVC_TMSG_CREATE_SIZE + 4 * (size_t)m->shm.n_refs;
	case FIVC_TMSG_REJECT:
		return FIVC_TMSG_REJECT_SIZE;
	case FIVC_TMSG_FALLBACK:
		return FIVC_TMSG_FALLBACK_SIZE;
	case FIVC_TMSG_RELEASE:
	case FIVC_TMSG_EVICT:
		return FIVC_TMSG_RING_SIZE;
	default:
		return 0;
	}
}

ssize_t fivc_tunnel_msg_size(const struct fivc_tunnel_msg *m)
{
	int err = check_msg(m, NULL);

	if (err)
		return err;
	return (ssize_t)(FIVC_TMSG_HDR_SIZE + body_len(m));
}

unsigned int fivc_tunnel_msg_n_fds(const struct fivc_tunnel_msg *m)
{
	if (m->type == FIVC_TMSG_FALLBACK)
		return m->has_socket ? 1 : 0;
	if (m->type != FIVC_TMSG_CREATE || m->cached ||
	    m->shm.kind != FIVC_BACKEND_LOCAL)
		return 0;
	return m->has_evch ? 3 : 1;
}

static void encode_create(const struct fivc_tunnel_msg *m, uint8_t *p)
{
	put_le32(p + 0, m->geom.n_channels);
	put_le32(p + 4, m->geom.channel_size);
	put_le32(p + 8, m->geom.n_receivers);
	put_le32(p + 12, m->geom.gen_first);
	put_le32(p + 16, (m->has_evch ? FIVC_TMSG_F_EVCH : 0) |
				 (m->cached ? FIVC_TMSG_F_CACHED : 0) |
				 (m->accepts ? FIVC_TMSG_F_ACCEPTS : 0));
	put_le32(p + 20, m->shm.kind);
	put_le32(p + 24, m->shm.size);
	put_le32(p + 28, m->shm.domid);
	put_le32(p + 32, m->shm.n_refs);
	put_le32(p + 36, m->evch.kind);
	put_le32(p + 40, m->evch.domid);
	put_le32(p + 44, m->evch.port);
	put_le32(p + 48, m->ring_id);
	put_le32(p + 52, 0);
	p += FIVC_TMSG_CREATE_SIZE;
	for (uint32_t i = 0; i < m->shm.n_refs; i++)
		put_le32(p + 4 * i, m->shm.refs[i]);
}

static void encode_reject(const struct fivc_tunnel_msg *m, uint8_t *p)
{
	put_le32(p + 0, m->reason);
	put_le32(p + 4, 0);
}

static void encode_ring(const struct fivc_tunnel_msg *m, uint8_t *p)
{
	put_le32(p + 0, m->ring_id);
	put_le32(p + 4, m->kept ? FIVC_TMSG_F_KEPT : 0);
}

static void encode_fallback(const struct fivc_tunnel_msg *m, uint8_t *p)
{
	put_le32(p + 0, m->fb_mode);
	put_le32(p + 4, m->has_socket ? FIVC_TMSG_F_SOCKET : 0);
	put_le64(p + 8, m->fb_bytes);
}

ssize_t fivc_tunnel_msg_encode(const struct fivc_tunnel_msg *m, void *buf,
			       size_t len)
{
	uint8_t *p = buf;
	ssize_t total;

	total = fivc_tunnel_msg_size(m);
	if (total < 0)
		return total;
	if (m->shm.n_refs && !m->shm.refs)
		return -EINVAL;
	if ((size_t)total > len)
		return -ENOSPC;

	put_le16(p + 0, FIVC_TMSG_MAGIC);
	p[2] = FIVC_TMSG_VERSION;
	p[3] = (uint8_t)m->type;
	put_le32(p + 4, (uint32_t)(total - FIVC_TMSG_HDR_SIZE));
	put_le64(p + 8, m->tunnel_id);
	p += FIVC_TMSG_HDR_SIZE;
	if (m->type == FIVC_TMSG_CREATE)
		encode_create(m, p);
	else if (m->type == FIVC_TMSG_REJECT)
		encode_reject(m, p);
	else if (m->type == FIVC_TMSG_FALLBACK)
		encode_fallback(m, p);
	else if (m->type == FIVC_TMSG_RELEASE || m->type == FIVC_TMSG_EVICT)
		encode_ring(m, p);
	return total;
}

/* The body length a type allows at most; the exact check comes later. */
static uint32_t max_body_len(uint8_t type)
{
	switch (type) {
	case FIVC_TMSG_CREATE:
		return FIVC_TMSG_CREATE_SIZE + 4u * FIVC_SHM_MAX_PAGES;
	case FIVC_TMSG_REJECT:
		return FIVC_TMSG_REJECT_SIZE;
	case FIVC_TMSG_FALLBACK:
		return FIVC_TMSG_FALLBACK_SIZE;
	case FIVC_TMSG_RELEASE:
	case FIVC_TMSG_EVICT:
		return FIVC_TMSG_RING_SIZE;
	default:
		return 0;
	}
}

static int check_hdr(const uint8_t *p, size_t len, const char **why)
{
	uint8_t type;

	if (len < FIVC_TMSG_HDR_SIZE)
		return fail(why, "short header");
	if (get_le16(p) != FIVC_TMSG_MAGIC)
		return fail(why, "bad magic");
	if (p[2] != FIVC_TMSG_VERSION)
		return fail(why, "unsupported version");
	type = p[3];
	if (type < FIVC_TMSG_CREATE || type > FIVC_TMSG_EVICT)
		return fail(why, "bad message type");
	if (get_le32(p + 4) > max_body_len(type))
		return fail(why, "body too long");
	return 0;
}

ssize_t fivc_tunnel_msg_frame_len(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	int err;

	err = check_hdr(p, len, NULL);
	if (err)
		return err;
	return (ssize_t)(FIVC_TMSG_HDR_SIZE + get_le32(p + 4));
}

static int decode_create(const uint8_t *p, size_t len,
			 struct fivc_tunnel_msg *m, const char **why)
{
	uint32_t flags, n_refs;

	if (len < FIVC_TMSG_CREATE_SIZE)
		return fail(why, "short create body");
	n_refs = get_le32(p + 32);
	/* Bound n_refs before it sizes anything. */
	if (n_refs > FIVC_SHM_MAX_PAGES)
		return fail(why, "too many refs");
	if (len != FIVC_TMSG_CREATE_SIZE + 4 * (size_t)n_refs)
		return fail(why, "create body length does not match n_refs");
	flags = get_le32(p + 16);
	if (flags &
	    ~(FIVC_TMSG_F_EVCH | FIVC_TMSG_F_CACHED | FIVC_TMSG_F_ACCEPTS))
		return fail(why, "unknown create flags");
	if (get_le32(p + 52))
		return fail(why, "reserved field not zero");

	m->geom.n_channels = get_le32(p + 0);
	m->geom.channel_size = get_le32(p + 4);
	m->geom.n_receivers = get_le32(p + 8);
	m->geom.gen_first = get_le32(p + 12);
	m->has_evch = flags & FIVC_TMSG_F_EVCH;
	m->cached = flags & FIVC_TMSG_F_CACHED;
	m->accepts = flags & FIVC_TMSG_F_ACCEPTS;
	m->ring_id = get_le32(p + 48);
	m->shm.kind = get_le32(p + 20);
	m->shm.size = get_le32(p + 24);
	m->shm.domid = get_le32(p + 28);
	m->shm.n_refs = n_refs;
	m->evch.kind = get_le32(p + 36);
	m->evch.domid = get_le32(p + 40);
	m->evch.port = get_le32(p + 44);
	if (check_msg(m, why))
		return -EINVAL;

	if (!n_refs)
		return 0;
	m->shm.refs = calloc(n_refs, sizeof(*m->shm.refs));
	if (!m->shm.refs) {
		if (why)
			*why = "out of memory";
		return -ENOMEM;
	}
	p += FIVC_TMSG_CREATE_SIZE;
	for (uint32_t i = 0; i < n_refs; i++)
		m->shm.refs[i] = get_le32(p + 4 * i);
	return 0;
}

int fivc_tunnel_msg_decode(const void *buf, size_t len,
			   struct fivc_tunnel_msg *m, const char **why)
{
	const uint8_t *p = buf;
	int err;

	fivc_tunnel_msg_init(m, 0, 0);
	err = check_hdr(p, len, why);
	if (err)
		return err;
	if (len - FIVC_TMSG_HDR_SIZE != get_le32(p + 4))
		return fail(why, "length does not match header");
	m->type = p[3];
	m->tunnel_id = get_le64(p + 8);
	p += FIVC_TMSG_HDR_SIZE;
	len -= FIVC_TMSG_HDR_SIZE;

	switch (m->type) {
	case FIVC_TMSG_CREATE:
		err = decode_create(p, len, m, why);
		break;
	case FIVC_TMSG_ACCEPT:
		err = 0;
		break;
	case FIVC_TMSG_KEEPALIVE:
		err = check_msg(m, why);
		break;
	case FIVC_TMSG_RELEASE:
	case FIVC_TMSG_EVICT:
		if (len != FIVC_TMSG_RING_SIZE) {
			err = fail(why, "bad ring message body length");
			break;
		}
		m->ring_id = get_le32(p);
		m->kept = m->type == FIVC_TMSG_RELEASE &&
			  (get_le32(p + 4) & FIVC_TMSG_F_KEPT);
		if (get_le32(p + 4) &
		    ~(m->type == FIVC_TMSG_RELEASE ? FIVC_TMSG_F_KEPT : 0u))
			err = fail(why, "unknown ring message flags");
		else
			err = check_msg(m, why);
		break;
	case FIVC_TMSG_FALLBACK:
		if (len != FIVC_TMSG_FALLBACK_SIZE) {
			err = fail(why, "bad fallback body length");
			break;
		}
		m->fb_mode = get_le32(p);
		if (get_le32(p + 4) & ~FIVC_TMSG_F_SOCKET) {
			err = fail(why, "unknown fallback flags");
			break;
		}
		m->has_socket = get_le32(p + 4) & FIVC_TMSG_F_SOCKET;
		m->fb_bytes = get_le64(p + 8);
		err = check_msg(m, why);
		break;
	default:
		if (len != FIVC_TMSG_REJECT_SIZE) {
			err = fail(why, "bad reject body length");
			break;
		}
		m->reason = get_le32(p);
		if (get_le32(p + 4))
			err = fail(why, "reserved field not zero");
		else
			err = check_msg(m, why);
		break;
	}
	if (err) {
		/* Leave @m owning nothing, as documented. */
		fivc_tunnel_msg_release(m);
		fivc_tunnel_msg_init(m, 0, 0);
	}
	return err;
}
