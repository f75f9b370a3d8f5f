// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * xen_ring_xfer: the Xen backend between two domUs on real Xen.
 *
 *   xen_ring_xfer server|client PEER_DOMID [MIB]
 *
 * Each side offers the ring of its own tx direction (4 channels of 64 KiB)
 * and an event channel to PEER_DOMID, publishes both under its own xenstore
 * data/fastivc/xenlab/, readable by the peer only, then maps the peer's ring
 * as its rx direction. Then:
 *   ping-pong  the client sends 64 bytes, the server echoes them, PINGS times
 *   stream     the client sends MIB MiB (default 64) of pseudo-random data and
 *              closes; the server hashes what it reads until end of stream and
 *              answers with its SHA-256, byte count and time (first byte to
 *              end of stream), which the client compares with its own hash.
 * Prints "ok - NAME" or "not ok - NAME" per step; exits non-zero on failure.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/testutil.h"
#include "fastivc/log.h"
#include "fastivc/ring_wait.h"
#include "fastivc/xen_rendezvous.h"

#define RDV_NAME "xenlab"
#define CHANNELS 4u
#define CHANNEL_SIZE (64u * 1024u)
#define GEN_FIRST 1u
#define PINGS 1000
#define PING_SIZE 64
#define CHUNK (64u * 1024u)
#define SEED 0x5eed1234abcdULL
#define WAIT_MS 30000	   /* one wait this long means a lost kick */
#define RENDEZVOUS_S 300.0 /* the client boots and measures netfront first */

/* What the server answers after the stream. */
struct digest_msg {
	uint8_t sha[32];
	uint64_t bytes;
	uint64_t ns; /* first byte to end of stream, at the receiver */
};

struct link {
	struct fivc_backend *be;
	uint32_t peer;
	struct fivc_ring_geom g;
	struct fivc_shm *tx_shm, *rx_shm;
	struct fivc_evch *tx_ev; /* offered: tx kicks and sleeps on it */
	struct fivc_evch *rx_ev; /* bound to the peer's: rx kicks and sleeps */
	struct fivc_tx tx;
	struct fivc_rx rx;
	struct fivc_spin tx_spin, rx_spin;
};

static void __attribute__((format(printf, 2, 3)))
report(bool ok, const char *fmt, ...)
{
	va_list ap;

	printf("%s - ", ok ? "ok" : "not ok");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* Offer our tx ring and event channel and publish them for the peer. */
static int offer_tx(struct link *l)
{
	const struct fivc_backend_ops *ops = l->be->ops;
	struct fivc_shm_desc d = {.fd = -1};
	struct fivc_evch_desc ed;
	struct fivc_xrdv_data dd;
	struct fivc_kick kick;
	int err;

	err = ops->shm_offer(l->be, fivc_ring_region_size(&l->g), l->peer,
			     &l->tx_shm);
	if (!err)
		err = ops->evch_offer(l->be, l->peer, &l->tx_ev);
	if (err)
		return err;
	kick.fn = fivc_evch_kick;
	kick.arg = l->tx_ev;
	err = fivc_tx_init(&l->tx, l->tx_shm->addr, l->tx_shm->size, &l->g,
			   &kick);
	if (!err)
		err = ops->shm_describe(l->tx_shm, &d);
	if (!err)
		err = ops->evch_describe(l->tx_ev, &ed);
	if (err)
		goto out;
	fivc_xrdv_data_init(&dd);
	err = fivc_xrdv_put_shm(&dd, "ring", &d);
	if (!err)
		err = fivc_xrdv_put_evch(&dd, "ev", &ed);
	if (!err)
		err = fivc_xrdv_publish(l->be, l->peer, RDV_NAME, &dd);
out:
	fivc_shm_desc_clear(&d);
	return err;
}

/* Wait for the peer's publication, then map its ring as our rx. */
static int attach_rx(struct link *l)
{
	const struct fivc_backend_ops *ops = l->be->ops;
	struct fivc_shm_desc d = {.fd = -1};
	struct fivc_evch_desc ed;
	struct fivc_xrdv_data dd;
	struct fivc_kick kick;
	double t0 = now_sec();
	int err;

	/* -ENOENT until published, -EACCES until the peer granted us read. */
	while ((err = fivc_xrdv_read(l->be, l->peer, RDV_NAME, &dd)) ==
		       -ENOENT ||
	       err == -EACCES) {
		if (now_sec() - t0 > RENDEZVOUS_S)
			return -ETIMEDOUT;
		usleep(100 * 1000);
	}
	if (err)
		return err;
	err = fivc_xrdv_take_shm(&dd, "ring", l->peer, l->be->self_domid, &d);
	if (!err)
		err = fivc_xrdv_take_evch(&dd, "ev", l->peer, l->be->self_domid,
					  &ed);
	if (!err)
		err = ops->shm_map(l->be, &d, &l->rx_shm);
	if (!err)
		err = ops->evch_bind(l->be, &ed, &l->rx_ev);
	fivc_shm_desc_clear(&d);
	if (err)
		return err;
	kick.fn = fivc_evch_kick;
	kick.arg = l->rx_ev;
	return fivc_rx_attach(&l->rx, l->rx_shm->addr, l->rx_shm->size, &l->g,
			      0, &kick);
}

static void link_close(struct link *l)
{
	if (!l->be)
		return;
	fivc_xrdv_unpublish(l->be, RDV_NAME);
	l->be->ops->evch_destroy(l->rx_ev);
	l->be->ops->shm_destroy(l->rx_shm);
	l->be->ops->evch_destroy(l->tx_ev);
	l->be->ops->shm_destroy(l->tx_shm);
	fivc_backend_close(l->be);
}

static int send_all(struct link *l, const void *buf, size_t len)
{
	ssize_t n = fivc_tx_write_all(&l->tx, l->tx_ev, &l->tx_spin, buf, len,
				      WAIT_MS);

	if (n < 0)
		return (int)n;
	return (size_t)n == len ? 0 : -EIO;
}

/* Exactly @len bytes; -EPIPE if the stream ends first. */
static int recv_all(struct link *l, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = fivc_rx_read_wait(&l->rx, l->rx_ev, &l->rx_spin, p,
					      len, WAIT_MS);

		if (n <= 0)
			return n ? (int)n : -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int client_pingpong(struct link *l)
{
	uint8_t out[PING_SIZE], in[PING_SIZE];
	static double us[PINGS];
	double sum = 0;
	uint64_t rng = SEED;
	int i, err = 0;

	for (i = 0; i < PINGS && !err; i++) {
		double t0 = now_sec();

		prng_fill(&rng, out, sizeof(out));
		err = send_all(l, out, sizeof(out));
		if (!err)
			err = recv_all(l, in, sizeof(in));
		if (!err && memcmp(in, out, sizeof(in)))
			err = -EBADMSG;
		us[i] = (now_sec() - t0) * 1e6;
		sum += us[i];
	}
	if (err) {
		report(false, "xen ring: ping-pong %d B: round %d: %s",
		       PING_SIZE, i, strerror(-err));
		return err;
	}
	qsort(us, PINGS, sizeof(us[0]), cmp_double);
	report(true,
	       "xen ring: ping-pong %d B x %d (p50 %.0f us, mean %.0f us)",
	       PING_SIZE, PINGS, us[PINGS / 2], sum / PINGS);
	return 0;
}

static int server_echo(struct link *l)
{
	uint8_t buf[PING_SIZE];
	int i, err = 0;

	for (i = 0; i < PINGS && !err; i++) {
		err = recv_all(l, buf, sizeof(buf));
		if (!err)
			err = send_all(l, buf, sizeof(buf));
	}
	report(!err, "xen ring: echo %d B x %d%s%s", PING_SIZE, PINGS,
	       err ? ": " : "", err ? strerror(-err) : "");
	return err;
}

static int client_stream(struct link *l, uint64_t bytes)
{
	struct digest_msg m;
	uint8_t sha[32];
	char hex[65];
	struct sha256 h;
	uint64_t rng = SEED, sent = 0;
	uint8_t *buf = malloc(CHUNK);
	int err = buf ? sha256_init(&h) : -ENOMEM;

	while (!err && sent < bytes) {
		size_t len = bytes - sent < CHUNK ? bytes - sent : CHUNK;

		prng_fill(&rng, buf, len);
		sha256_update(&h, buf, len);
		err = send_all(l, buf, len);
		sent += len;
	}
	free(buf);
	if (!err)
		err = fivc_tx_close(&l->tx);
	if (!err)
		err = recv_all(l, &m, sizeof(m));
	if (err) {
		report(false, "xen ring: %llu MiB stream: %s",
		       (unsigned long long)(bytes >> 20), strerror(-err));
		return err;
	}
	sha256_final(&h, sha);
	sha256_hex(m.sha, hex);
	printf("xen_ring_xfer: sent %llu bytes, receiver got %llu, sha256 %s\n",
	       (unsigned long long)bytes, (unsigned long long)m.bytes, hex);
	err = m.bytes == bytes && !memcmp(sha, m.sha, sizeof(sha)) ? 0
								   : -EBADMSG;
	report(!err, "xen ring: %llu MiB stream, sha256 %s (%.1f MB/s)",
	       (unsigned long long)(bytes >> 20), err ? "MISMATCH" : "match",
	       m.ns ? (double)m.bytes * 1e3 / (double)m.ns : 0.0);
	return err;
}

static int server_stream(struct link *l)
{
	struct digest_msg m = {0};
	struct sha256 h;
	double t0 = 0;
	uint8_t *buf = malloc(CHUNK);
	ssize_t n = buf ? sha256_init(&h) : -ENOMEM;
	char hex[65];

	while (n >= 0) {
		n = fivc_rx_read_wait(&l->rx, l->rx_ev, &l->rx_spin, buf, CHUNK,
				      WAIT_MS);
		if (n <= 0)
			break;
		if (!m.bytes)
			t0 = now_sec();
		sha256_update(&h, buf, (size_t)n);
		m.bytes += (uint64_t)n;
	}
	free(buf);
	if (n == 0) {
		m.ns = (uint64_t)((now_sec() - t0) * 1e9);
		sha256_final(&h, m.sha);
		n = send_all(l, &m, sizeof(m));
	}
	if (n == 0)
		n = fivc_tx_close(&l->tx);
	sha256_hex(m.sha, hex);
	report(!n, "xen ring: received %llu bytes, sha256 %s%s%s",
	       (unsigned long long)m.bytes, n ? "-" : hex, n ? ": " : "",
	       n ? strerror((int)-n) : "");
	return (int)n;
}

static int usage(void)
{
	fprintf(stderr,
		"usage: xen_ring_xfer server|client PEER_DOMID [MIB]\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct link l = {0};
	bool server;
	uint32_t mib = 64;
	int err;

	if (argc < 3 || argc > 4)
		return usage();
	server = !strcmp(argv[1], "server");
	if ((!server && strcmp(argv[1], "client")) ||
	    fivc_xrdv_parse_u32(argv[2], &l.peer) ||
	    (argc == 4 &&
	     (fivc_xrdv_parse_u32(argv[3], &mib) || !mib || mib > 4096)))
		return usage();
	l.g = (struct fivc_ring_geom){.n_channels = CHANNELS,
				      .channel_size = CHANNEL_SIZE,
				      .n_receivers = 1,
				      .gen_first = GEN_FIRST};
	fivc_spin_init(&l.tx_spin, 200);
	fivc_spin_init(&l.rx_spin, 200);

	err = fivc_backend_open_xen(&l.be);
	if (!err)
		err = offer_tx(&l);
	if (!err)
		err = attach_rx(&l);
	report(!err, "xen ring: rendezvous with domain %u (%u x %u KiB)%s%s",
	       l.peer, CHANNELS, CHANNEL_SIZE / 1024, err ? ": " : "",
	       err ? strerror(-err) : "");
	if (!err && server)
		err = server_echo(&l);
	if (!err && server)
		err = server_stream(&l);
	if (!err && !server)
		err = client_pingpong(&l);
	if (!err && !server)
		err = client_stream(&l, (uint64_t)mib << 20);
	link_close(&l);
	return err ? 1 : 0;
}
