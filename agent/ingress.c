// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The size of sk_msg's ingress route (docs/steering.md, "The data path"),
 * set once per tick. An ingress redirect charges the agent's Y like a
 * receive, and under TCP memory pressure such a charge can fail: the app's
 * send() then returns ENOMEM where TCP would block (1000 flows starting at
 * once, each with a megabyte on the route, did). So the route is small
 * (INGRESS_MAX per flow: request/response sizes; a bulk sender keeps its
 * window full and takes X anyway) and closed while the TCP memory of the
 * whole host is above half of tcp_mem's low mark, under which the kernel
 * refuses no charge. X's path blocks instead, as TCP does.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "fastivc/log.h"

#define INGRESS_MAX (128u * 1024)

static unsigned long long low_pages; /* tcp_mem[0]; 0: unknown */
static bool closed;

/*
 * tcp_mem is visible in the host's first namespace only; elsewhere the
 * kernel's own default (3/64 of the memory, in pages) stands in.
 */
static unsigned long long tcp_mem_low(void)
{
	unsigned long long v = 0;
	FILE *f = fopen("/proc/sys/net/ipv4/tcp_mem", "re");

	if (f) {
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		fclose(f);
		if (v)
			return v;
	}
	return mem_total_kb() / 4 * 3 / 64;
}

/*
 * The host's TCP memory in pages (/proc/net/sockstat), or -1. Read every
 * tick, so the file stays open and is read again from its start: one
 * syscall, where opening it each time took five.
 */
static long long tcp_mem_pages(void)
{
	static int fd = -1;
	long long pages = -1;
	char buf[1024], *tcp;
	ssize_t n;

	if (fd < 0)
		fd = open("/proc/net/sockstat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	tcp = strstr(buf, "\nTCP: ");
	if (tcp && sscanf(tcp + 1,
			  "TCP: inuse %*d orphan %*d tw %*d alloc %*d "
			  "mem %lld",
			  &pages) != 1)
		pages = -1;
	return pages;
}

uint32_t ingress_share(const struct agent *a)
{
	uint32_t bytes = a->cfg.window / 4;

	return bytes > INGRESS_MAX ? INGRESS_MAX : bytes;
}

void ingress_tick(struct agent *a)
{
	long long pages = tcp_mem_pages();
	bool close_now;

	if (!low_pages)
		low_pages = tcp_mem_low();
	/* Unknown: closed, the safe side. */
	close_now = !low_pages || pages < 0 ||
		    (unsigned long long)pages > low_pages / 2;
	if (close_now != closed) {
		closed = close_now;
		if (closed)
			a->ctr.ingress_closed++;
		pr_info("sk_msg's ingress route %s: host TCP memory %lld of "
			"%llu pages (half of tcp_mem's low mark)",
			closed ? "closed" : "open again", pages, low_pages / 2);
	}
	agent_bpf_ingress_window(a, closed ? 0 : ingress_share(a));
}
