// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The domain's memory, for the bounds sized from it (rings, ingress). */
#include <stdio.h>

#include "agent.h"

/* MemTotal from /proc/meminfo in KiB; 0 if it cannot be read. */
unsigned long long mem_total_kb(void)
{
	unsigned long long kb = 0;
	char line[128];
	FILE *f = fopen("/proc/meminfo", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}
