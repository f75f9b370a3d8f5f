// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target: the tunnel control-message decoder, fed arbitrary bytes
 * from the peer's agent. A message it accepts must re-encode to exactly the
 * bytes it came from (the wire format has one encoding per message).
 */
#include <stdlib.h>
#include <string.h>

#include "fastivc/tunnel_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out[FIVC_TMSG_MAX_SIZE];
	struct fivc_tunnel_msg m;
	const char *why;
	ssize_t n;

	if (fivc_tunnel_msg_decode(data, size, &m, &why))
		return 0;
	n = fivc_tunnel_msg_encode(&m, out, sizeof(out));
	if (n != (ssize_t)size || memcmp(out, data, size))
		abort();
	fivc_tunnel_msg_release(&m);
	return 0;
}
