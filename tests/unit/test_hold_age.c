// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * When a reservation counts as a stalled handshake (agent/hold_age.c): by
 * its direction's limit, never when it is steered, and never when sockops
 * made it after the agent took the time (it once wrapped to 2^64 ns old).
 */
#include "../../agent/agent.h"
#include "../util/testutil.h"

#define S 1000000000ULL

int main(void)
{
	const uint64_t now = 1000 * S, active = 10 * S, passive = 70 * S;
	struct fivc_flow act = {.dir = FIVC_FLOW_ACTIVE};
	struct fivc_flow pas = {.dir = FIVC_FLOW_PASSIVE};

	act.hold_ns = now - active;
	CHECK(hold_stalled(&act, now, active, passive), "active at its limit",
	      "");
	act.hold_ns = now - active + 1;
	CHECK(!hold_stalled(&act, now, active, passive),
	      "active 1 ns under its limit", "");
	pas.hold_ns = now - active;
	CHECK(!hold_stalled(&pas, now, active, passive),
	      "passive: the active limit is not its own", "");
	pas.hold_ns = now - passive;
	CHECK(hold_stalled(&pas, now, active, passive), "passive at its limit",
	      "");
	pas.hold_ns = now + 1;
	CHECK(!hold_stalled(&pas, now, active, passive),
	      "passive, made after the agent took the time", "");
	act.hold_ns = now + 5 * S;
	CHECK(!hold_stalled(&act, now, active, passive),
	      "active, made after the agent took the time", "");
	pas.hold_ns = 0;
	CHECK(!hold_stalled(&pas, now, active, passive), "steered (no hold)",
	      "");
	return test_report("stalled reservations: limits, new ones, steered");
}
