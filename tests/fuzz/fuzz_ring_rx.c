// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target: the ring's consumer (and producer) facing arbitrary
 * shared-memory contents. The input is a hostile_run() script; see
 * tests/util/hostile.h.
 */
#include <stddef.h>
#include <stdint.h>

#include "../util/hostile.h"
#include "fastivc/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fivc_log_set_level(FIVC_LOG_ERR);
	hostile_run(data, size);
	return 0;
}
