// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Tunnel lifecycle messages: encode/decode round trips, the exact wire
 * bytes, refusal of every kind of malformed input (each truncation, each
 * bit flip, each bad field), and the Unix socket transport with its fds.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/testutil.h"
#include "fastivc/log.h"
#include "fastivc/tunnel_msg.h"

#define N_SAMPLES 12

/* Offsets into an encoded message, from the wire format in the header. */
#define OFF_BODY_LEN 4
#define OFF_CREATE(x) (FIVC_TMSG_HDR_SIZE + (x))

static uint32_t sample_refs[FIVC_SHM_MAX_PAGES];

static struct fivc_ring_geom geom(uint32_t n, uint32_t s, uint32_t k)
{
	struct fivc_ring_geom g = {n, s, k, 0xfffffff0u};

	return g;
}

/* One valid message of each shape; @i in 0..N_SAMPLES-1. */
static void sample(int i, struct fivc_tunnel_msg *m)
{
	switch (i) {
	case 0: /* local, region only */
		fivc_tunnel_msg_init(m, FIVC_TMSG_CREATE, 1);
		m->geom = geom(4, 4096, 1);
		m->shm.kind = FIVC_BACKEND_LOCAL;
		m->shm.size = (uint32_t)fivc_ring_region_size(&m->geom);
		break;
	case 1: /* local, region and event channel */
		sample(0, m);
		m->tunnel_id = 0x0123456789abcdefull;
		m->geom = geom(8, 65536, 3);
		m->shm.size = (uint32_t)fivc_ring_region_size(&m->geom);
		m->has_evch = true;
		m->evch.kind = FIVC_BACKEND_LOCAL;
		break;
	case 2: /* xen, a few refs */
		fivc_tunnel_msg_init(m, FIVC_TMSG_CREATE, 3);
		m->geom = geom(2, 4096, 1);
		m->shm.kind = FIVC_BACKEND_XEN;
		m->shm.size = (uint32_t)fivc_ring_region_size(&m->geom);
		m->shm.domid = 7;
		m->shm.n_refs = m->shm.size / 4096;
		m->shm.refs = sample_refs;
		m->has_evch = true;
		m->evch.kind = FIVC_BACKEND_XEN;
		m->evch.domid = 7;
		m->evch.port = 42;
		break;
	case 3: /* xen, the largest region there is */
		sample(2, m);
		m->geom = geom(FIVC_CHANNELS_MAX, FIVC_CHANNEL_SIZE_MAX, 8);
		m->shm.size = (uint32_t)fivc_ring_region_size(&m->geom);
		m->shm.n_refs = m->shm.size / 4096;
		m->has_evch = false;
		memset(&m->evch, 0, sizeof(m->evch));
		m->evch.fd_wait = m->evch.fd_kick = -1;
		break;
	case 4:
		fivc_tunnel_msg_init(m, FIVC_TMSG_ACCEPT, ~0ull);
		break;
	case 5:
		fivc_tunnel_msg_init(m, FIVC_TMSG_FALLBACK, 77);
		m->fb_mode = FIVC_FB_END;
		m->fb_bytes = 0x123456789abcull;
		break;
	case 6:
		fivc_tunnel_msg_init(m, FIVC_TMSG_FALLBACK, 78);
		m->fb_mode = FIVC_FB_RELAY;
		m->has_socket = true;
		break;
	case 7:
		fivc_tunnel_msg_init(m, FIVC_TMSG_KEEPALIVE, 0);
		break;
	case 9: /* a ring the consumer keeps mapped, named by its id, and the
		 * answer to the consumer's own CREATE */
		fivc_tunnel_msg_init(m, FIVC_TMSG_CREATE, 9);
		m->geom = geom(4, 65536, 1);
		m->cached = true;
		m->accepts = true;
		m->ring_id = FIVC_RING_ID_MAX;
		break;
	case 10:
		fivc_tunnel_msg_init(m, FIVC_TMSG_RELEASE, 0);
		m->ring_id = 3;
		m->kept = true;
		break;
	case 11:
		fivc_tunnel_msg_init(m, FIVC_TMSG_EVICT, 0);
		m->ring_id = 0xfffffffeu;
		break;
	default:
		fivc_tunnel_msg_init(m, FIVC_TMSG_REJECT, 5);
		m->reason = ENOMEM;
		break;
	}
}

/* Encode into a buffer of exactly the encoded size, so ASan sees overruns. */
static uint8_t *encode(const struct fivc_tunnel_msg *m, size_t *len)
{
	ssize_t n = fivc_tunnel_msg_size(m);
	uint8_t *buf;

	if (n < 0)
		return NULL;
	buf = malloc((size_t)n);
	if (buf && fivc_tunnel_msg_encode(m, buf, (size_t)n) != n) {
		free(buf);
		return NULL;
	}
	*len = (size_t)n;
	return buf;
}

/* Decode a private copy of exactly @len bytes of @buf. */
static int decode_copy(const uint8_t *buf, size_t len,
		       struct fivc_tunnel_msg *m)
{
	uint8_t *copy = malloc(len ? len : 1);
	int err;

	memcpy(copy, buf, len);
	err = fivc_tunnel_msg_decode(copy, len, m, NULL);
	free(copy);
	return err;
}

static bool msg_equal(const struct fivc_tunnel_msg *a,
		      const struct fivc_tunnel_msg *b)
{
	if (a->type != b->type || a->tunnel_id != b->tunnel_id)
		return false;
	if (a->type == FIVC_TMSG_REJECT)
		return a->reason == b->reason;
	if (a->type == FIVC_TMSG_FALLBACK)
		return a->fb_mode == b->fb_mode &&
		       a->has_socket == b->has_socket &&
		       a->fb_bytes == b->fb_bytes;
	if (a->ring_id != b->ring_id || a->kept != b->kept ||
	    a->cached != b->cached || a->accepts != b->accepts)
		return false;
	if (a->type != FIVC_TMSG_CREATE)
		return true;
	if (memcmp(&a->geom, &b->geom, sizeof(a->geom)) ||
	    a->shm.kind != b->shm.kind || a->shm.size != b->shm.size ||
	    a->shm.domid != b->shm.domid || a->shm.n_refs != b->shm.n_refs ||
	    a->has_evch != b->has_evch || a->evch.kind != b->evch.kind ||
	    a->evch.domid != b->evch.domid || a->evch.port != b->evch.port)
		return false;
	return !a->shm.n_refs || !memcmp(a->shm.refs, b->shm.refs,
					 a->shm.n_refs * sizeof(uint32_t));
}

static void test_round_trip(void)
{
	for (int i = 0; i < N_SAMPLES; i++) {
		struct fivc_tunnel_msg m, out;
		uint8_t *buf;
		size_t len = 0;

		sample(i, &m);
		buf = encode(&m, &len);
		if (!CHECK(buf, "encode sample", "%d", i))
			continue;
		if (CHECK_EQ(decode_copy(buf, len, &out), 0, "decode sample")) {
			CHECK(msg_equal(&m, &out), "decoded equals encoded",
			      "sample %d", i);
			CHECK(out.shm.fd == -1 && out.evch.fd_wait == -1 &&
				      out.evch.fd_kick == -1,
			      "decoded fds are -1");
			CHECK(!out.shm.n_refs || out.shm.refs != m.shm.refs,
			      "decoded refs are the message's own copy");
			fivc_tunnel_msg_release(&out);
		}
		free(buf);
	}
}

/* The wire format is fixed little-endian, whatever the host. */
static void test_wire_bytes(void)
{
	static const uint8_t want[] = {
		0x46, 0x54, 2,	  3,	8,    0,    0,	  0,	/* hdr */
		0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01, /* id */
		12,   0,    0,	  0,	0,    0,    0,	  0,	/* body */
	};
	struct fivc_tunnel_msg m;
	uint8_t buf[64];

	fivc_tunnel_msg_init(&m, FIVC_TMSG_REJECT, 0x0123456789abcdefull);
	m.reason = ENOMEM;
	CHECK_EQ(fivc_tunnel_msg_encode(&m, buf, sizeof(buf)), sizeof(want),
		 "reject length");
	CHECK(!memcmp(buf, want, sizeof(want)), "reject bytes");
	CHECK_EQ(fivc_tunnel_msg_frame_len(buf, FIVC_TMSG_HDR_SIZE),
		 sizeof(want), "frame length from the header");
	CHECK_EQ(fivc_tunnel_msg_frame_len(buf, FIVC_TMSG_HDR_SIZE - 1),
		 -EINVAL, "frame length needs a whole header");
	CHECK_EQ(fivc_tunnel_msg_encode(&m, buf, sizeof(want) - 1), -ENOSPC,
		 "encode into a short buffer");
}

static void test_encode_refuses(void)
{
	struct fivc_tunnel_msg m;
	uint8_t buf[256];

	sample(0, &m);
	m.type = 9;
	CHECK_EQ(fivc_tunnel_msg_encode(&m, buf, sizeof(buf)), -EINVAL,
		 "bad type");
	sample(0, &m);
	m.geom.channel_size = 5000;
	CHECK_EQ(fivc_tunnel_msg_encode(&m, buf, sizeof(buf)), -EINVAL,
		 "bad geometry");
	sample(2, &m);
	m.shm.refs = NULL;
	CHECK_EQ(fivc_tunnel_msg_encode(&m, buf, sizeof(buf)), -EINVAL,
		 "refs missing");
	fivc_tunnel_msg_init(&m, FIVC_TMSG_REJECT, 1);
	CHECK_EQ(fivc_tunnel_msg_encode(&m, buf, sizeof(buf)), -EINVAL,
		 "reject without reason");
	fivc_tunnel_msg_init(&m, FIVC_TMSG_FALLBACK, 1);
	CHECK_EQ(fivc_tunnel_msg_encode(&m, buf, sizeof(buf)), -EINVAL,
		 "fallback without a mode");
	m.fb_mode = FIVC_FB_TCP;
	m.has_socket = true;
	CHECK_EQ(fivc_tunnel_msg_encode(&m, buf, sizeof(buf)), -EINVAL,
		 "TCP fallback with a socket");
	m.has_socket = false;
	m.fb_bytes = 5;
	CHECK_EQ(fivc_tunnel_msg_encode(&m, buf, sizeof(buf)), -EINVAL,
		 "TCP fallback with a length");
	fivc_tunnel_msg_init(&m, FIVC_TMSG_KEEPALIVE, 3);
	CHECK_EQ(fivc_tunnel_msg_encode(&m, buf, sizeof(buf)), -EINVAL,
		 "keepalive with a tunnel id");
}

/* Every proper prefix, and one byte too many, of every sample. */
static void test_truncations(void)
{
	for (int i = 0; i < N_SAMPLES; i++) {
		struct fivc_tunnel_msg m, out;
		uint8_t *buf, *longer;
		size_t len = 0;
		int bad = 0;

		sample(i, &m);
		buf = encode(&m, &len);
		if (!CHECK(buf, "encode sample", "%d", i))
			continue;
		/* The large sample: every length near the edges, then strides.
		 */
		for (size_t cut = 0; cut < len;
		     cut += (cut < 256 || len - cut < 256) ? 1 : 61) {
			if (decode_copy(buf, cut, &out) != -EINVAL ||
			    out.shm.refs || out.type)
				bad++;
		}
		CHECK_EQ(bad, 0, "every truncation refused");
		longer = calloc(1, len + 1);
		memcpy(longer, buf, len);
		CHECK_EQ(decode_copy(longer, len + 1, &out), -EINVAL,
			 "trailing byte refused");
		free(longer);
		free(buf);
	}
}

/*
 * Any single bit flipped: refused, or accepted only if it re-encodes to the
 * same bytes (no field is ignored, no encoding is ambiguous).
 */
static void test_bit_flips(void)
{
	for (int i = 0; i < N_SAMPLES; i++) {
		struct fivc_tunnel_msg m, out;
		size_t len = 0, span;
		uint8_t *buf, *re;
		int bad = 0, accepted = 0;

		sample(i, &m);
		buf = encode(&m, &len);
		if (!CHECK(buf, "encode sample", "%d", i))
			continue;
		/* The refs of a big sample are opaque; the head is what
		 * matters. */
		span = len < 1024 ? len : 256;
		for (size_t b = 0; b < span * 8; b++) {
			size_t rlen = 0;
			int err;

			buf[b / 8] ^= (uint8_t)(1u << (b % 8));
			err = decode_copy(buf, len, &out);
			if (!err) {
				accepted++;
				re = encode(&out, &rlen);
				if (!re || rlen != len || memcmp(re, buf, len))
					bad++;
				free(re);
				fivc_tunnel_msg_release(&out);
			} else if (err != -EINVAL) {
				bad++;
			}
			buf[b / 8] ^= (uint8_t)(1u << (b % 8));
		}
		CHECK_EQ(bad, 0, "bit flips refused or canonical");
		/* Only id, geometry/domid/port/refs/reason values can move. */
		CHECK(accepted < (int)(span * 8), "most flips refused");
		free(buf);
	}
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

struct corruption {
	const char *name;
	int sample;
	size_t off;
	uint32_t val;
	int width; /* 1 or 4 bytes */
};

static const struct corruption corruptions[] = {
	{"magic", 0, 0, 0x00, 1},
	{"version 0", 0, 2, 0, 1},
	{"version 1", 0, 2, 1, 1},
	{"version 3", 0, 2, 3, 1},
	{"type 0", 4, 3, 0, 1},
	{"type 4", 4, 3, 4, 1},
	{"type 255", 4, 3, 255, 1},
	{"type 8", 7, 3, 8, 1},
	{"keepalive with a tunnel id", 7, 8, 1, 1},
	{"keepalive with a body length", 7, OFF_BODY_LEN, 8, 4},
	{"accept with a body length", 4, OFF_BODY_LEN, 8, 4},
	{"body length huge", 0, OFF_BODY_LEN, 0xffffffffu, 4},
	{"body length short", 0, OFF_BODY_LEN, 55, 4},
	{"body length long", 0, OFF_BODY_LEN, 60, 4},
	{"n_channels 0", 0, OFF_CREATE(0), 0, 4},
	{"n_channels 1", 0, OFF_CREATE(0), 1, 4},
	{"n_channels 65", 0, OFF_CREATE(0), 65, 4},
	{"channel_size 0", 0, OFF_CREATE(4), 0, 4},
	{"channel_size 2048", 0, OFF_CREATE(4), 2048, 4},
	{"channel_size 6000", 0, OFF_CREATE(4), 6000, 4},
	{"channel_size 2 MiB", 0, OFF_CREATE(4), 2u << 20, 4},
	{"n_receivers 0", 0, OFF_CREATE(8), 0, 4},
	{"n_receivers 9", 0, OFF_CREATE(8), 9, 4},
	{"unknown flag", 0, OFF_CREATE(16), 8, 4},
	{"create reserved", 0, OFF_CREATE(52), 1, 4},
	{"cached flag with a region", 0, OFF_CREATE(16), 2, 4},
	{"cached ring id 0", 9, OFF_CREATE(48), 0, 4},
	{"cached with an evch", 9, OFF_CREATE(16), 3, 4},
	{"cached with a region size", 9, OFF_CREATE(24), 4096, 4},
	{"release with a tunnel id", 10, 8, 1, 1},
	{"release ring id 0", 10, FIVC_TMSG_HDR_SIZE, 0, 4},
	{"release unknown flag", 10, FIVC_TMSG_HDR_SIZE + 4, 2, 4},
	{"evict kept flag", 11, FIVC_TMSG_HDR_SIZE + 4, 1, 4},
	{"evict body length 4", 11, OFF_BODY_LEN, 4, 4},
	{"evch flag without its fields", 0, OFF_CREATE(16), 1, 4},
	{"shm kind 0", 0, OFF_CREATE(20), 0, 4},
	{"shm kind 3", 0, OFF_CREATE(20), 3, 4},
	{"shm size 0", 0, OFF_CREATE(24), 0, 4},
	{"shm size unaligned", 0, OFF_CREATE(24), 40000, 4},
	{"shm size below geometry", 0, OFF_CREATE(24), 4096, 4},
	{"shm size over max", 0, OFF_CREATE(24), 0xfffff000u, 4},
	{"local domid", 0, OFF_CREATE(28), 1, 4},
	{"local n_refs", 0, OFF_CREATE(32), 1, 4},
	{"n_refs huge", 0, OFF_CREATE(32), 0xffffffffu, 4},
	{"n_refs over max", 2, OFF_CREATE(32), FIVC_SHM_MAX_PAGES + 1, 4},
	{"n_refs below size", 2, OFF_CREATE(32), 1, 4},
	{"evch fields without flag", 0, OFF_CREATE(36), 1, 4},
	{"evch kind differs", 1, OFF_CREATE(36), 2, 4},
	{"local evch port", 1, OFF_CREATE(44), 1, 4},
	{"xen domid reserved", 2, OFF_CREATE(28), 0x7ff0, 4},
	{"xen evch domid reserved", 2, OFF_CREATE(40), 0xffff, 4},
	{"xen evch port 0", 2, OFF_CREATE(44), 0, 4},
	{"reject reason 0", 8, FIVC_TMSG_HDR_SIZE, 0, 4},
	{"reject reason 4096", 8, FIVC_TMSG_HDR_SIZE, 4096, 4},
	{"reject reserved", 8, FIVC_TMSG_HDR_SIZE + 4, 1, 4},
	{"reject body length 4", 8, OFF_BODY_LEN, 4, 4},
	{"fallback mode 0", 5, FIVC_TMSG_HDR_SIZE, 0, 4},
	{"fallback mode 4", 5, FIVC_TMSG_HDR_SIZE, 4, 4},
	{"fallback unknown flag", 5, FIVC_TMSG_HDR_SIZE + 4, 2, 4},
	{"fallback end with a socket", 5, FIVC_TMSG_HDR_SIZE + 4, 1, 4},
	{"fallback relay with a length", 6, FIVC_TMSG_HDR_SIZE + 8, 1, 4},
	{"fallback body length 8", 5, OFF_BODY_LEN, 8, 4},
};

static void test_corruptions(void)
{
	for (size_t i = 0; i < sizeof(corruptions) / sizeof(corruptions[0]);
	     i++) {
		const struct corruption *c = &corruptions[i];
		struct fivc_tunnel_msg m, out;
		const char *why = NULL;
		uint8_t *buf;
		size_t len = 0;
		int err;

		sample(c->sample, &m);
		buf = encode(&m, &len);
		if (!CHECK(buf, "encode sample", "%d", c->sample))
			continue;
		if (c->width == 1)
			buf[c->off] = (uint8_t)c->val;
		else
			put32(buf + c->off, c->val);
		err = fivc_tunnel_msg_decode(buf, len, &out, &why);
		CHECK_EQ(err, -EINVAL, c->name);
		CHECK(err || !out.shm.refs, "nothing owned after a refusal");
		CHECK(!err ? true : why != NULL, "refusal says why", "%s",
		      c->name);
		if (!err)
			fivc_tunnel_msg_release(&out);
		free(buf);
	}
}

/* --- the Unix socket transport ------------------------------------------ */

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

static bool same_file(int a, int b)
{
	struct stat sa, sb;

	return !fstat(a, &sa) && !fstat(b, &sb) && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

/* Bytes and fds exactly as given, for messages send() would refuse. */
static int raw_send(int sock, const void *data, size_t len, const int *fds,
		    unsigned int n_fds)
{
	union {
		char buf[CMSG_SPACE(16 * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = {.iov_base = (void *)data, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *c;

	memset(&cbuf, 0, sizeof(cbuf));
	if (n_fds) {
		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, n_fds * sizeof(int));
	}
	return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

static void test_socket_round_trip(void)
{
	struct fivc_backend *be = NULL;
	struct fivc_shm *shm = NULL, *peer_shm = NULL;
	struct fivc_evch *ev = NULL;
	struct fivc_tunnel_msg m, out;
	int sv[2], before;

	if (!CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0,
		      "socketpair"))
		return;
	before = count_fds();
	if (!CHECK_EQ(fivc_backend_open_local(&be), 0, "open local backend"))
		goto out;

	/* A CREATE built the way the producer's agent builds it. */
	sample(1, &m);
	if (!CHECK_EQ(be->ops->shm_offer(be, m.shm.size, 0, &shm), 0,
		      "shm_offer") ||
	    !CHECK_EQ(be->ops->evch_offer(be, 0, &ev), 0, "evch_offer"))
		goto out;
	be->ops->shm_describe(shm, &m.shm);
	be->ops->evch_describe(ev, &m.evch);
	memset(shm->addr, 0x5a, 4096);
	CHECK_EQ(fivc_tunnel_msg_send(sv[0], &m), 0, "send create");
	if (CHECK_EQ(fivc_tunnel_msg_recv(sv[1], &out), 0, "recv create")) {
		CHECK(msg_equal(&m, &out), "create arrives intact");
		CHECK(same_file(out.shm.fd, m.shm.fd), "region fd");
		CHECK(same_file(out.evch.fd_wait, m.evch.fd_wait), "wait fd");
		CHECK(same_file(out.evch.fd_kick, m.evch.fd_kick), "kick fd");
		CHECK(fcntl(out.shm.fd, F_GETFD) & FD_CLOEXEC,
		      "received fds are close-on-exec");
		if (CHECK_EQ(be->ops->shm_map(be, &out.shm, &peer_shm), 0,
			     "map the received region"))
			CHECK_EQ(((uint8_t *)peer_shm->addr)[4095], 0x5a,
				 "received region is the offered one");
		fivc_tunnel_msg_release(&out);
	}
	fivc_shm_desc_clear(&m.shm);

	/* Answers, and a big xen CREATE, in order on the same stream. */
	fivc_tunnel_msg_init(&m, FIVC_TMSG_ACCEPT, 77);
	CHECK_EQ(fivc_tunnel_msg_send(sv[1], &m), 0, "send accept");
	sample(8, &m); /* the reject */
	CHECK_EQ(fivc_tunnel_msg_send(sv[1], &m), 0, "send reject");
	sample(3, &m);
	CHECK_EQ(fivc_tunnel_msg_send(sv[1], &m), 0, "send big xen create");
	CHECK(!fivc_tunnel_msg_recv(sv[0], &out) &&
		      out.type == FIVC_TMSG_ACCEPT && out.tunnel_id == 77,
	      "recv accept");
	CHECK(!fivc_tunnel_msg_recv(sv[0], &out) &&
		      out.type == FIVC_TMSG_REJECT && out.reason == ENOMEM,
	      "recv reject");
	if (CHECK_EQ(fivc_tunnel_msg_recv(sv[0], &out), 0, "recv xen create")) {
		CHECK(msg_equal(&m, &out), "xen create arrives intact");
		fivc_tunnel_msg_release(&out);
	}

	/* Sending a local CREATE whose fds are missing fails, sends nothing. */
	sample(0, &m);
	CHECK_EQ(fivc_tunnel_msg_send(sv[0], &m), -EBADF, "send without fd");
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	CHECK_EQ(fivc_tunnel_msg_recv(sv[1], &out), -EAGAIN,
		 "nothing queued: EAGAIN");
out:
	if (be) {
		be->ops->shm_destroy(peer_shm);
		be->ops->shm_destroy(shm);
		be->ops->evch_destroy(ev);
	}
	fivc_backend_close(be);
	CHECK_EQ(count_fds(), before, "no fd leaked");
	close(sv[0]);
	close(sv[1]);
}

/*
 * Send @data with @n_fds fresh eventfds (@split: the fds on the body, not
 * the header) and expect recv to refuse it with @want and close every fd.
 */
static void expect_refused(const char *name, const uint8_t *data, size_t len,
			   unsigned int n_fds, bool split, int want)
{
	struct fivc_tunnel_msg out;
	int sv[2], fds[16], before;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
		CHECK(false, name, "socketpair");
		return;
	}
	before = count_fds();
	for (unsigned int i = 0; i < n_fds; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC);
	if (split && len > FIVC_TMSG_HDR_SIZE) {
		raw_send(sv[0], data, FIVC_TMSG_HDR_SIZE, NULL, 0);
		raw_send(sv[0], data + FIVC_TMSG_HDR_SIZE,
			 len - FIVC_TMSG_HDR_SIZE, fds, n_fds);
	} else {
		raw_send(sv[0], data, len, fds, n_fds);
	}
	for (unsigned int i = 0; i < n_fds; i++)
		close(fds[i]);
	close(sv[0]);
	CHECK_EQ(fivc_tunnel_msg_recv(sv[1], &out), want, name);
	CHECK(count_fds() == before - 1, "refused fds closed", "%s", name);
	close(sv[1]);
}

/* A RELAY fallback carries its socket; the other modes carry none. */
static void test_socket_relay(void)
{
	struct fivc_tunnel_msg m, out;
	int sv[2], relay[2];

	if (!CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0,
		      "socketpair") ||
	    !CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, relay),
		      0, "relay socketpair"))
		return;
	sample(6, &m);
	m.relay_fd = relay[1];
	CHECK_EQ(fivc_tunnel_msg_send(sv[0], &m), 0, "send relay");
	if (CHECK_EQ(fivc_tunnel_msg_recv(sv[1], &out), 0, "recv relay")) {
		CHECK(msg_equal(&m, &out), "relay arrives intact");
		CHECK(same_file(out.relay_fd, relay[1]), "relay socket");
		fivc_tunnel_msg_release(&out);
		CHECK(out.relay_fd == -1, "release closes the relay socket");
	}
	m.relay_fd = -1;
	CHECK_EQ(fivc_tunnel_msg_send(sv[0], &m), -EBADF,
		 "relay without its socket");
	close(relay[0]);
	close(relay[1]);
	close(sv[0]);
	close(sv[1]);
}

/*
 * Frames through a small non-blocking socket: sends stop at EAGAIN, never
 * block, and resume where they stopped; every message and fd arrives once,
 * in order, even though the original fd is closed before it is sent.
 */
static void test_frames_nonblocking(void)
{
	enum { N = 300 };
	struct fivc_tunnel_frame *q[N];
	int sv[2], relay[2], sndbuf = 4096, sent = 0, got = 0, eagain = 0;

	if (!CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0,
		      "socketpair") ||
	    !CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, relay),
		      0, "relay socketpair"))
		return;
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	for (int i = 0; i < N; i++) {
		struct fivc_tunnel_msg m;
		int dup_fd = dup(relay[1]);

		sample(i % 2 ? 6 : 5, &m);
		m.tunnel_id = (uint64_t)i;
		m.relay_fd = i % 2 ? dup_fd : -1;
		CHECK_EQ(fivc_tunnel_frame_new(&m, &q[i]), 0, "frame");
		close(dup_fd); /* the frame keeps its own copy */
	}
	while (got < N) {
		struct fivc_tunnel_msg out;
		int err = 0;

		while (sent < N &&
		       !(err = fivc_tunnel_frame_send(sv[0], q[sent])))
			fivc_tunnel_frame_free(q[sent++]);
		eagain += err == -EAGAIN;
		if (!CHECK(!err || err == -EAGAIN, "send", "%d", err) ||
		    !CHECK_EQ(fivc_tunnel_msg_recv(sv[1], &out), 0, "recv"))
			break;
		CHECK(out.tunnel_id == (uint64_t)got &&
			      out.type == FIVC_TMSG_FALLBACK,
		      "message in order", "%d", got);
		CHECK(got % 2 ? same_file(out.relay_fd, relay[1])
			      : out.relay_fd == -1,
		      "fd of the message", "%d", got);
		fivc_tunnel_msg_release(&out);
		got++;
	}
	CHECK(eagain > 0, "the socket filled at least once", "%d", eagain);
	while (sent < N)
		fivc_tunnel_frame_free(q[sent++]);
	close(relay[0]);
	close(relay[1]);
	close(sv[0]);
	close(sv[1]);
}

static void test_socket_refuses(void)
{
	struct fivc_tunnel_msg m;
	uint8_t *buf, bad[FIVC_TMSG_HDR_SIZE] = {0};
	size_t len = 0;

	sample(4, &m);
	buf = encode(&m, &len);
	expect_refused("accept with an fd", buf, len, 1, false, -EINVAL);
	expect_refused("accept with 10 fds", buf, len, 10, false, -EINVAL);
	free(buf);

	sample(5, &m);
	buf = encode(&m, &len);
	expect_refused("fd on the body", buf, len, 1, true, -EINVAL);
	expect_refused("truncated, then closed", buf, len - 1, 0, false,
		       -ECONNRESET);
	free(buf);

	sample(0, &m);
	buf = encode(&m, &len);
	expect_refused("local create without its fd", buf, len, 0, false,
		       -EINVAL);
	expect_refused("local create with 3 fds", buf, len, 3, false, -EINVAL);
	expect_refused("local create, fd then truncated", buf, len - 8, 1,
		       false, -ECONNRESET);
	buf[OFF_CREATE(0)] = 1; /* n_channels 1 */
	expect_refused("local create, bad geometry", buf, len, 1, false,
		       -EINVAL);
	free(buf);

	sample(1, &m);
	buf = encode(&m, &len);
	expect_refused("local create+evch with 1 fd", buf, len, 1, false,
		       -EINVAL);
	free(buf);

	sample(2, &m);
	buf = encode(&m, &len);
	expect_refused("xen create with an fd", buf, len, 1, false, -EINVAL);
	free(buf);

	expect_refused("bad header", bad, sizeof(bad), 1, false, -EINVAL);
	expect_refused("orderly close", bad, 0, 0, false, -ENOTCONN);
}

/* A peer that stops half-way through a message does not hold us forever. */
static void test_socket_stall(void)
{
	struct fivc_tunnel_msg m, out;
	int sv[2];
	uint8_t *buf;
	size_t len = 0;

	if (!CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0,
		      "socketpair"))
		return;
	sample(5, &m);
	buf = encode(&m, &len);
	raw_send(sv[0], buf, len - 3, NULL, 0);
	CHECK_EQ(fivc_tunnel_msg_recv(sv[1], &out), -ETIMEDOUT,
		 "stalled peer times out");
	free(buf);
	close(sv[0]);
	close(sv[1]);
}

/*
 * The event loop's reader: a message trickled a byte at a time never makes
 * it wait, its fds wait with the partial message, and a reader dropped
 * half-way closes them.
 */
static void test_rx_partial(void)
{
	struct fivc_tunnel_msg m, out;
	struct fivc_tunnel_rx r;
	int sv[2], fds[3], before, err = 0;
	uint8_t *buf;
	size_t len = 0;

	if (!CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0,
		      "socketpair"))
		return;
	before = count_fds();
	sample(1, &m); /* local CREATE with an event channel: 3 fds */
	buf = encode(&m, &len);
	for (int i = 0; i < 3; i++)
		fds[i] = eventfd(0, EFD_CLOEXEC);
	fivc_tunnel_rx_init(&r);
	for (size_t i = 0; i < len; i++) {
		double t0 = now_sec();

		raw_send(sv[0], buf + i, 1, i ? NULL : fds, i ? 0 : 3);
		err = fivc_tunnel_rx_read(sv[1], &r, &out);
		if (i + 1 < len && !CHECK_EQ(err, -EAGAIN, "partial: -EAGAIN"))
			break;
		CHECK(now_sec() - t0 < 0.5, "rx_read never waits", "%zu", i);
		CHECK(i + 1 == len ||
			      (fivc_tunnel_rx_partial(&r) && r.n_fds == 3),
		      "partial message keeps its fds", "%zu", i);
	}
	if (CHECK_EQ(err, 0, "the last byte completes it")) {
		CHECK(out.type == FIVC_TMSG_CREATE && out.shm.fd >= 0 &&
			      out.evch.fd_wait >= 0 && out.evch.fd_kick >= 0,
		      "whole message with its fds", "type %u", out.type);
		CHECK(!fivc_tunnel_rx_partial(&r), "reader empty again", "");
		fivc_tunnel_msg_release(&out);
	}
	CHECK_EQ(fivc_tunnel_rx_read(sv[1], &r, &out), -EAGAIN,
		 "nothing more: -EAGAIN");

	/* Half a message with its fds, then the reader is dropped. */
	raw_send(sv[0], buf, len / 2, fds, 3);
	CHECK_EQ(fivc_tunnel_rx_read(sv[1], &r, &out), -EAGAIN,
		 "half: -EAGAIN");
	fivc_tunnel_rx_fini(&r);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	CHECK_EQ(count_fds(), before, "a dropped reader closed its fds");

	/* Two messages in one write come out one by one. */
	fivc_tunnel_rx_init(&r);
	fivc_tunnel_msg_init(&m, FIVC_TMSG_KEEPALIVE, 0);
	free(buf);
	buf = encode(&m, &len);
	raw_send(sv[0], buf, len, NULL, 0);
	raw_send(sv[0], buf, len, NULL, 0);
	CHECK_EQ(fivc_tunnel_rx_read(sv[1], &r, &out), 0, "first of two");
	CHECK_EQ(fivc_tunnel_rx_read(sv[1], &r, &out), 0, "second of two");
	close(sv[0]);
	CHECK_EQ(fivc_tunnel_rx_read(sv[1], &r, &out), -ENOTCONN,
		 "orderly close between messages");
	fivc_tunnel_rx_fini(&r);
	free(buf);
	close(sv[1]);
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
	for (uint32_t i = 0; i < FIVC_SHM_MAX_PAGES; i++)
		sample_refs[i] = i * 2654435761u;
	/* Refusals log one line each; keep the output to the results. */
	fivc_log_set_level(FIVC_LOG_ERR);
	run("tunnel_msg/round_trip", test_round_trip);
	run("tunnel_msg/wire_bytes", test_wire_bytes);
	run("tunnel_msg/encode_refuses", test_encode_refuses);
	run("tunnel_msg/truncations", test_truncations);
	run("tunnel_msg/bit_flips", test_bit_flips);
	run("tunnel_msg/corruptions", test_corruptions);
	run("tunnel_msg/socket_round_trip", test_socket_round_trip);
	run("tunnel_msg/socket_relay", test_socket_relay);
	run("tunnel_msg/frames_nonblocking", test_frames_nonblocking);
	run("tunnel_msg/socket_refuses", test_socket_refuses);
	run("tunnel_msg/socket_stall", test_socket_stall);
	run("tunnel_msg/rx_partial", test_rx_partial);
	return test_report("tunnel_msg");
}
