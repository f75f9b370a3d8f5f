// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Blocking helpers: adaptive spin, then sleep on the event channel. */
#include <errno.h>
#include <time.h>

#include "fastivc/ring_wait.h"

/*
 * A sleep costs a wake-up through the event channel, ~25 us here (eventfd
 * between two processes on a VM): spinning for less than that before
 * sleeping gains nothing, so the budget never drops below SPIN_FLOOR_US.
 */
#define SPIN_FLOOR_US 30u

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
#endif
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void fivc_spin_init(struct fivc_spin *s, unsigned int max_us)
{
	s->max = max_us;
	s->budget = max_us < SPIN_FLOOR_US ? max_us : SPIN_FLOOR_US;
}

/* Polls @ready for up to budget us; adapts the budget to the outcome. */
static bool spin(struct fivc_spin *s, bool (*ready)(void *), void *arg)
{
	uint64_t end;

	if (!s->budget)
		return false;
	end = now_ns() + s->budget * 1000ull;
	do {
		for (int i = 0; i < 16; i++) {
			if (ready(arg)) {
				s->budget = s->budget * 2 > s->max
						    ? s->max
						    : s->budget * 2;
				return true;
			}
			cpu_relax();
		}
	} while (now_ns() < end);
	s->budget /= 2;
	if (s->budget < SPIN_FLOOR_US)
		s->budget = s->max < SPIN_FLOOR_US ? s->max : SPIN_FLOOR_US;
	return false;
}

static bool tx_ready(void *arg)
{
	return fivc_tx_writable(arg);
}

static bool rx_ready(void *arg)
{
	return fivc_rx_readable(arg);
}

int fivc_tx_wait(struct fivc_tx *tx, struct fivc_evch *ev, struct fivc_spin *s,
		 int timeout_ms)
{
	if (spin(s, tx_ready, tx))
		return 0;
	while (fivc_tx_prepare_wait(tx)) {
		int err = fivc_evch_wait(ev, timeout_ms);

		if (err)
			return err;
	}
	return 0;
}

int fivc_rx_wait(struct fivc_rx *rx, struct fivc_evch *ev, struct fivc_spin *s,
		 int timeout_ms)
{
	if (spin(s, rx_ready, rx))
		return 0;
	while (fivc_rx_prepare_wait(rx)) {
		int err = fivc_evch_wait(ev, timeout_ms);

		if (err)
			return err;
	}
	return 0;
}

ssize_t fivc_tx_write_all(struct fivc_tx *tx, struct fivc_evch *ev,
			  struct fivc_spin *s, const void *buf, size_t len,
			  int timeout_ms)
{
	const char *p = buf;
	size_t done = 0;

	while (done < len) {
		ssize_t n = fivc_tx_write(tx, p + done, len - done);
		int err;

		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		err = n == -EAGAIN ? fivc_tx_wait(tx, ev, s, timeout_ms)
				   : (int)n;
		/* Like write(2): what went out counts more than the error. */
		if (err)
			return done ? (ssize_t)done : err;
	}
	return (ssize_t)done;
}

ssize_t fivc_rx_read_wait(struct fivc_rx *rx, struct fivc_evch *ev,
			  struct fivc_spin *s, void *buf, size_t len,
			  int timeout_ms)
{
	for (;;) {
		ssize_t n = fivc_rx_read(rx, buf, len);
		int err;

		if (n != -EAGAIN)
			return n;
		err = fivc_rx_wait(rx, ev, s, timeout_ms);
		if (err)
			return err;
	}
}
