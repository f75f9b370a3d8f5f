// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* dom0's co-resident lists: address lists and sets of entries, no I/O. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "coresident.h"

int cores_parse_addrs(const char *s, struct fivc_peer_key *out,
		      unsigned int max)
{
	/* Host addresses only: a prefix would claim a whole subnet. */
	if (strchr(s, '/'))
		return -EINVAL;
	return addr_parse_prefixes(s, out, max);
}

int cores_format_addrs(const struct fivc_peer_key *k, unsigned int n, char *buf,
		       size_t len)
{
	char one[INET6_ADDRSTRLEN];
	size_t used = 0;

	if (!n || !len)
		return -EINVAL;
	buf[0] = 0;
	for (unsigned int i = 0; i < n; i++) {
		int w;

		addr_format(k[i].addr, one, sizeof(one));
		w = snprintf(buf + used, len - used, i ? ",%s" : "%s", one);
		if (w < 0 || (size_t)w >= len - used) {
			buf[0] = 0;
			return -E2BIG;
		}
		used += (size_t)w;
	}
	return (int)used;
}

int cores_set_add(struct cores_set *s, const struct fivc_peer_key *k,
		  uint32_t domid)
{
	if (s->n == s->cap) {
		uint32_t cap = s->cap ? s->cap * 2 : 16;
		struct cores_entry *e;

		if (s->n >= FIVC_MAX_PEERS)
			return -E2BIG;
		e = realloc(s->e, cap * sizeof(*e));
		if (!e)
			return -ENOMEM;
		s->e = e;
		s->cap = cap;
	}
	s->e[s->n].key = *k;
	s->e[s->n].domid = domid;
	s->n++;
	return 0;
}

static int key_cmp(const struct fivc_peer_key *a, const struct fivc_peer_key *b)
{
	if (a->prefixlen != b->prefixlen)
		return a->prefixlen < b->prefixlen ? -1 : 1;
	return memcmp(a->addr, b->addr, sizeof(a->addr));
}

static int entry_cmp(const void *pa, const void *pb)
{
	const struct cores_entry *a = pa, *b = pb;
	int c = key_cmp(&a->key, &b->key);

	if (c)
		return c;
	return a->domid < b->domid ? -1 : a->domid > b->domid;
}

uint32_t cores_set_sort(struct cores_set *s)
{
	uint32_t i = 0, out = 0, dropped = 0;

	if (s->n)
		qsort(s->e, s->n, sizeof(*s->e), entry_cmp);
	while (i < s->n) {
		uint32_t j = i + 1;
		bool claimed_twice = false;

		for (; j < s->n && !key_cmp(&s->e[i].key, &s->e[j].key); j++)
			claimed_twice |= s->e[j].domid != s->e[i].domid;
		if (claimed_twice)
			dropped++;
		else
			s->e[out++] = s->e[i];
		i = j;
	}
	s->n = out;
	return dropped;
}

void cores_set_free(struct cores_set *s)
{
	free(s->e);
	memset(s, 0, sizeof(*s));
}

uint32_t cores_diff(const struct cores_set *old, const struct cores_set *new,
		    void (*fn)(void *ctx, const struct cores_entry *e,
			       bool del),
		    void *ctx)
{
	uint32_t i = 0, j = 0, calls = 0;

	while (i < old->n || j < new->n) {
		int c = i == old->n   ? 1
			: j == new->n ? -1
				      : key_cmp(&old->e[i].key, &new->e[j].key);

		if (c < 0) {
			fn(ctx, &old->e[i++], true);
			calls++;
			continue;
		}
		if (c > 0 || old->e[i].domid != new->e[j].domid) {
			fn(ctx, &new->e[j], false);
			calls++;
		}
		i += c == 0;
		j++;
	}
	return calls;
}
