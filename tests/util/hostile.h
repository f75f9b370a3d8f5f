/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Drives a producer and its receivers over one in-process region while a
 * "hostile peer" rewrites the shared control block and channel headers
 * between operations, all from a byte script: an 8-byte header (geometry),
 * then 8-byte records (an operation and its arguments). Any out-of-bounds
 * pointer, unexpected return value or non-sticky error aborts (for libFuzzer
 * and ASan); a clean run returns 0. Used by the fuzz target and by the hostile
 * peer test with random scripts.
 */
#ifndef FASTIVC_HOSTILE_H
#define FASTIVC_HOSTILE_H

#include <stddef.h>
#include <stdint.h>

int hostile_run(const uint8_t *script, size_t len);

#endif /* FASTIVC_HOSTILE_H */
