// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * dom0's co-resident lists without Xen (agent/cores_list.c): address lists
 * parsed and written back, sets made unique, and the diff that turns the
 * peers map into dom0's list.
 */
#include <errno.h>
#include <string.h>

#include "../../agent/agent.h"
#include "../../agent/coresident.h"
#include "../util/testutil.h"

static struct fivc_peer_key key(const char *s)
{
	struct fivc_peer_key k;

	CHECK(!addr_parse_prefix(s, &k), "addr_parse_prefix", "%s", s);
	return k;
}

static void test_parse(void)
{
	static const char *const bad[] = {
		"",
		",",
		"10.0.0.1,",
		",10.0.0.1",
		"10.0.0.0/24",
		"10.0.0.1/32",
		"10.0.0.300",
		" 10.0.0.1",
		"10.0.0.1 ",
		"fd00::1/128",
		"10.0.0.1,,fd00::1",
		"x",
	};
	struct fivc_peer_key k[CORES_MAX_ADDRS + 1], want;
	char many[1024] = "", buf[CORES_VALUE_MAX];

	CHECK_EQ(cores_parse_addrs("10.0.0.1", k, 4), 1, "one IPv4");
	CHECK_EQ(k[0].prefixlen, 128, "IPv4 is a /32 (96 + 32)");
	want = key("10.0.0.1/32");
	CHECK(!memcmp(&k[0], &want, sizeof(want)),
	      "IPv4 key as fastivc peer add makes it");
	CHECK_EQ(cores_parse_addrs("10.0.0.1,FD00:0::1", k, 4), 2, "v4,v6");
	CHECK_EQ(k[1].prefixlen, 128, "IPv6 is a /128");
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_EQ(cores_parse_addrs(bad[i], k, 4), -EINVAL,
			 "refused list");
	for (unsigned int i = 0; i <= CORES_MAX_ADDRS; i++)
		snprintf(many + strlen(many), sizeof(many) - strlen(many),
			 "%s10.0.1.%u", i ? "," : "", i);
	CHECK_EQ(cores_parse_addrs(many, k, CORES_MAX_ADDRS), -EINVAL,
		 "one address more than the maximum");
	CHECK_EQ(cores_parse_addrs(many, k, CORES_MAX_ADDRS + 1),
		 CORES_MAX_ADDRS + 1, "the same list with room");

	/* Written back canonical; the parser takes what the writer writes. */
	cores_parse_addrs("10.0.0.1,FD00:0::1", k, 4);
	CHECK_EQ(cores_format_addrs(k, 2, buf, sizeof(buf)), 16, "format");
	CHECK(!strcmp(buf, "10.0.0.1,fd00::1"), "canonical", "got '%s'", buf);
	CHECK_EQ(cores_format_addrs(k, 2, buf, 10), -E2BIG, "short buffer");
	CHECK_EQ(cores_format_addrs(k, 0, buf, sizeof(buf)), -EINVAL, "none");
	cores_parse_addrs(many, k, CORES_MAX_ADDRS);
	CHECK_EQ(cores_parse_addrs(many, k, CORES_MAX_ADDRS + 1),
		 CORES_MAX_ADDRS + 1, "parse the longest list");
	CHECK(cores_format_addrs(k, CORES_MAX_ADDRS, buf, sizeof(buf)) > 0,
	      "the maximum fits a value");
}

/* The `services` key: prefixes this time (agent/addr.c). */
static void test_prefixes(void)
{
	static const char *const bad[] = {
		"",	      ",",	    "10.96.0.0/12,", "10.96.0.0/33",
		"fd96::/129", "10.96.0.0/", "x/8",
	};
	struct fivc_peer_key k[3];

	CHECK_EQ(addr_parse_prefixes("10.96.0.0/12,fd96::/112", k, 3), 2,
		 "an IPv4 and an IPv6 range");
	CHECK(k[0].prefixlen == 96 + 12 && k[1].prefixlen == 112,
	      "their lengths", "%u %u", k[0].prefixlen, k[1].prefixlen);
	CHECK_EQ(addr_parse_prefixes("10.96.0.10", k, 3), 1, "one address");
	CHECK_EQ(k[0].prefixlen, 128, "an address is a /32");
	CHECK_EQ(addr_parse_prefixes("1.0.0.0/8,2.0.0.0/8,3.0.0.0/8,4.0.0.0/8",
				     k, 3),
		 -EINVAL, "more than the bound");
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(addr_parse_prefixes(bad[i], k, 3) == -EINVAL,
		      "a bad list is refused", "'%s'", bad[i]);
}

static void add(struct cores_set *s, const char *addr, uint32_t domid)
{
	struct fivc_peer_key k = key(addr);

	CHECK_EQ(cores_set_add(s, &k, domid), 0, "cores_set_add");
}

static void test_sort(void)
{
	struct cores_set s = {};
	struct fivc_peer_key k = key("10.0.0.1");

	add(&s, "10.0.0.9", 3);
	add(&s, "10.0.0.1", 2);
	add(&s, "10.0.0.5", 4); /* claimed by 4 and 5: dropped */
	add(&s, "10.0.0.5", 5);
	add(&s, "10.0.0.9", 3); /* the same claim twice: kept once */
	CHECK_EQ(cores_set_sort(&s), 1, "one address claimed twice");
	CHECK_EQ(s.n, 2, "two addresses left");
	CHECK(s.n == 2 && s.e[0].domid == 2 && s.e[1].domid == 3,
	      "sorted by key");
	cores_set_free(&s);

	for (uint32_t i = 0; i < FIVC_MAX_PEERS; i++)
		cores_set_add(&s, &k, i);
	CHECK_EQ(cores_set_add(&s, &k, 1), -E2BIG, "no more than the map");
	cores_set_free(&s);
}

struct calls {
	char log[256];
};

static void record(void *ctx, const struct cores_entry *e, bool del)
{
	struct calls *c = ctx;
	char a[64];
	size_t n = strlen(c->log);

	addr_format(e->key.addr, a, sizeof(a));
	snprintf(c->log + n, sizeof(c->log) - n, "%s%s=%u ", del ? "-" : "+", a,
		 e->domid);
}

static void test_diff(void)
{
	struct cores_set old = {}, new = {};
	struct calls c = {};

	CHECK_EQ(cores_diff(&old, &new, record, &c), 0, "empty to empty");
	add(&old, "10.0.0.1", 1);
	add(&old, "10.0.0.2", 2);
	add(&old, "10.0.0.3", 3);
	add(&old, "10.0.0.0/24", 9); /* added by hand: not dom0's */
	add(&new, "10.0.0.2", 2);
	add(&new, "10.0.0.3", 4);
	add(&new, "fd00::4", 5);
	cores_set_sort(&old);
	cores_set_sort(&new);
	CHECK_EQ(cores_diff(&old, &new, record, &c), 4, "four changes");
	CHECK(!strcmp(c.log, "-10.0.0.0=9 -10.0.0.1=1 +10.0.0.3=4 "
			     "+fd00::4=5 "),
	      "delete gone, update moved, add new", "got '%s'", c.log);
	c.log[0] = 0;
	CHECK_EQ(cores_diff(&new, &new, record, &c), 0, "same to same");
	CHECK_EQ(cores_diff(&new, &old, record, &c), 4, "and back");
	cores_set_free(&old);
	cores_set_free(&new);
}

int main(void)
{
	test_parse();
	test_prefixes();
	test_sort();
	test_diff();
	return test_report(
		"coresident lists and prefixes: parse, format, sort, diff");
}
