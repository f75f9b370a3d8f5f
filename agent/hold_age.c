// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * When a reservation in flows (struct fivc_flow) is a handshake that
 * stalled: older than @active_ns for our connects, @passive_ns for the
 * SYNs we answered. sockops stamps it with bpf_ktime_get_ns(), our clock
 * too (CLOCK_MONOTONIC); one made after @now was taken, while the agent
 * walks the map, is new, not 2^64 ns old (that wrap reaped fresh passive
 * reservations, and the peer then steered alone: parked_expired).
 */
#include "agent.h"

bool hold_stalled(const struct fivc_flow *hold, uint64_t now,
		  uint64_t active_ns, uint64_t passive_ns)
{
	uint64_t limit = hold->dir == FIVC_FLOW_ACTIVE ? active_ns : passive_ns;

	return hold->hold_ns && hold->hold_ns <= now &&
	       now - hold->hold_ns >= limit;
}
