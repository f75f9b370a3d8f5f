// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <netdb.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

int test_failures;

void test_fail(const char *file, int line, const char *name, const char *fmt,
	       ...)
{
	va_list ap;

	test_failures++;
	fprintf(stderr, "FAIL %s:%d %s:", file, line, name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int test_report(const char *name)
{
	printf("%s - %s\n", test_failures ? "not ok" : "ok", name);
	fflush(stdout);
	return test_failures ? 1 : 0;
}

void prng_fill(uint64_t *s, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len >= 8) {
		uint64_t v = prng_next(s);

		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t v = prng_next(s);

		memcpy(p, &v, len);
	}
}

size_t prng_size(uint64_t *s, size_t lo, size_t hi)
{
	unsigned int bits = 0;
	size_t span, v;

	for (size_t x = hi; x; x >>= 1)
		bits++;
	span = (size_t)1 << (prng_next(s) % (bits + 1));
	v = lo + prng_next(s) % span;
	return v > hi ? hi : v;
}

int sha256_init(struct sha256 *h)
{
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || !EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL))
		return -1;
	return 0;
}

void sha256_update(struct sha256 *h, const void *buf, size_t len)
{
	EVP_DigestUpdate(h->ctx, buf, len);
}

void sha256_final(struct sha256 *h, uint8_t out[32])
{
	unsigned int n = 32;

	EVP_DigestFinal_ex(h->ctx, out, &n);
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

void sha256_hex(const uint8_t d[32], char out[65])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

void print_latency(double *us, size_t n)
{
	double sum = 0;

	for (size_t i = 0; i < n; i++)
		sum += us[i];
	qsort(us, n, sizeof(*us), cmp_double);
	printf("p50 %.1f p99 %.1f mean %.1f\n", us[n / 2], us[n * 99 / 100],
	       sum / (double)n);
}

struct addrinfo *tcp_resolve(const char *prog, const char *host,
			     const char *port, bool passive)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
				 .ai_flags = passive ? AI_PASSIVE : 0};
	struct addrinfo *ai;

	if (getaddrinfo(host, port, &hints, &ai)) {
		fprintf(stderr, "%s: cannot resolve %s\n", prog, host);
		exit(2);
	}
	return ai;
}
