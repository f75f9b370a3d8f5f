// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Early bytes (docs/steering.md, "Early bytes"): what a flow moved into a
 * ring the peer keeps before the peer answered, copied so that a refusal
 * can relay it. At most EARLY_FLOWS flows hold a copy at once, in buffers
 * kept for the next ones: a burst of a thousand connections would
 * otherwise leave RELAY_BUF each of fragmented heap behind (measured:
 * 10-26 MiB after test_soak's rounds). A flow without a buffer waits for
 * the answer, as every flow did before.
 */
#include <stdlib.h>
#include <string.h>

#include "flow.h"

#define EARLY_FLOWS 64

static uint8_t *spare[EARLY_FLOWS];
static unsigned int n_spare, n_out;

size_t early_room(struct flow *f)
{
	if (!f->early) {
		if (n_spare)
			f->early = spare[--n_spare];
		else if (n_out < EARLY_FLOWS)
			f->early = malloc(RELAY_BUF);
		if (!f->early)
			return 0;
		n_out++;
	}
	return RELAY_BUF - f->early_len;
}

void early_keep(struct flow *f, const void *buf, size_t n)
{
	memcpy(f->early + f->early_len, buf, n);
	f->early_len += n;
}

void early_drop(struct flow *f)
{
	if (!f->early)
		return;
	spare[n_spare++] = f->early;
	n_out--;
	f->early = NULL;
	f->early_len = 0;
}

uint8_t *early_take(struct flow *f, size_t *len)
{
	uint8_t *buf = f->early;

	*len = f->early_len;
	if (buf)
		n_out--;
	f->early = NULL;
	f->early_len = 0;
	return buf;
}

void early_fini(void)
{
	while (n_spare)
		free(spare[--n_spare]);
}
