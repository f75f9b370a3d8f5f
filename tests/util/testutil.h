/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Small helpers shared by the C tests: assertions, PRNG, SHA-256. */
#ifndef FASTIVC_TESTUTIL_H
#define FASTIVC_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int test_failures;

void test_fail(const char *file, int line, const char *name, const char *fmt,
	       ...) __attribute__((format(printf, 4, 5)));

/* Assertions name what they check; a failure is counted, not fatal. */
#define CHECK(cond, name, ...)                                                 \
	({                                                                     \
		bool ok_ = (cond);                                             \
		if (!ok_)                                                      \
			test_fail(__FILE__, __LINE__, name, " " __VA_ARGS__);  \
		ok_;                                                           \
	})
#define CHECK_EQ(a, b, name)                                                   \
	({                                                                     \
		long long a_ = (long long)(a), b_ = (long long)(b);            \
		CHECK(a_ == b_, name, "%lld != %lld", a_, b_);                 \
	})

/* Prints "ok - name" or "not ok - name" and returns the process exit code. */
int test_report(const char *name);

/* xorshift64*: fast, seedable, good enough for sizes and payload. */
static inline uint64_t prng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545F4914F6CDD1DULL;
}
void prng_fill(uint64_t *s, void *buf, size_t len);
/* A size in [lo, hi], log-uniform so small and large both occur often. */
size_t prng_size(uint64_t *s, size_t lo, size_t hi);

struct sha256 {
	void *ctx;
};
int sha256_init(struct sha256 *h);
void sha256_update(struct sha256 *h, const void *buf, size_t len);
void sha256_final(struct sha256 *h, uint8_t out[32]);
void sha256_hex(const uint8_t d[32], char out[65]);

/* Monotonic time in seconds. */
double now_sec(void);

/* Sorts n latencies (us) and prints "p50 X p99 Y mean Z" on stdout. */
void print_latency(double *us, size_t n);

struct addrinfo;
/*
 * A TCP address for HOST PORT (passive: to listen on), or exit(2) after
 * "PROG: cannot resolve HOST" on stderr. Release with freeaddrinfo().
 */
struct addrinfo *tcp_resolve(const char *prog, const char *host,
			     const char *port, bool passive);

#endif /* FASTIVC_TESTUTIL_H */
