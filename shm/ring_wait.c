// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Blocking helpers: adaptive spin, then sleep on the event channel. */
#include <errno.h>

#include "fastivc/ring_wait.h"

#define SPIN_DEFAULT 64u
#define SPIN_MIN 16u

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#else
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
#endif
}

void fivc_spin_init(struct fivc_spin *s, unsigned int max)
{
	s->max = max;
	s->budget = max < SPIN_DEFAULT ? max : SPIN_DEFAULT;
}

/* Polls @ready up to the budget; adapts the budget to the outcome. */
static bool spin(struct fivc_spin *s, bool (*ready)(void *), void *arg)
{
	for (unsigned int i = 0; i < s->budget; i++) {
		if (ready(arg)) {
			if (s->budget < s->max)
				s->budget = s->budget * 2 > s->max
						    ? s->max
						    : s->budget * 2;
			return true;
		}
		cpu_relax();
	}
	if (s->budget > SPIN_MIN)
		s->budget /= 2;
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
		if (n != -EAGAIN)
			return n;
		err = fivc_tx_wait(tx, ev, s, timeout_ms);
		if (err)
			return err;
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
