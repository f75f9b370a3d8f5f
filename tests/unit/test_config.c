// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * channel_size by backend (agent/config.c): the backend's default unless
 * given, in whichever order the file or the command line names them.
 */
#include "../../agent/agent.h"
#include "../util/testutil.h"

static uint32_t size_after(const char *k1, const char *v1, const char *k2,
			   const char *v2)
{
	struct agent_config c;

	agent_config_defaults(&c);
	if (k1 && agent_config_set(&c, k1, v1))
		return 0;
	if (k2 && agent_config_set(&c, k2, v2))
		return 0;
	return c.channel_size;
}

int main(void)
{
	CHECK_EQ(size_after(NULL, NULL, NULL, NULL), 262144, "local: default");
	CHECK_EQ(size_after("backend", "xen", NULL, NULL), 65536,
		 "xen: default");
	CHECK_EQ(size_after("backend", "xen", "backend", "local"), 262144,
		 "xen, then local: local's default");
	CHECK_EQ(size_after("channel_size", "131072", "backend", "xen"), 131072,
		 "given, then xen: as given");
	CHECK_EQ(size_after("backend", "xen", "channel_size", "8192"), 8192,
		 "xen, then given: as given");
	CHECK_EQ(size_after("channel_size", "70000", NULL, NULL), 0,
		 "not a power of two: refused");
	return test_report("channel_size: the backend's default unless given");
}
