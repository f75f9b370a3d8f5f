// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A failed flow's connection is reset the way the network resets a TCP
 * connection: an RST into our app socket, whose own TCP then gives the app
 * what it gives for any RST (ECONNRESET; EPIPE once its peer had closed),
 * and an RST to the peer's app socket. SOCK_DESTROY, the fallback, would
 * say ECONNABORTED, which TCP never does for a reset.
 *
 * The sequence numbers: steered bytes never take the app socket's TCP, so
 * after the handshake (sockops passed snd_nxt and rcv_nxt with ESTABLISHED)
 * only a FIN each way moves them on. Each RST is sent at the number before
 * such a FIN and then after it: TCP takes an RST only at exactly rcv_nxt,
 * drops one below it without an answer, and the second one finds the
 * socket gone. An app socket still there after ours (an RST queued behind
 * a busy socket, a number we got wrong) is destroyed, and counted.
 */
#include <errno.h>
#include <string.h>

#include "flow.h"
#include "fastivc/log.h"

void flow_reset_tcp(struct agent *a, struct flow *f)
{
	const struct fivc_flow_key *k = &f->key;
	int err = 0;

	/* Ours first: the app hears of the reset before its peer does. */
	for (uint32_t fin = 0; fin < 2 && !err; fin++)
		err = agent_raw_rst(k->raddr, k->rport, k->laddr, k->lport,
				    f->rcv_nxt + fin);
	for (uint32_t fin = 0; fin < 2 && !err; fin++)
		err = agent_raw_rst(k->laddr, k->lport, k->raddr, k->rport,
				    f->snd_nxt + fin);
	if (err)
		pr_warn("Failed to send the RSTs of connection %u->%u: %s",
			k->lport, k->rport, strerror(-err));
	if (!agent_sock_destroy(a, k, f->cookie))
		a->ctr.resets_abort++;
	else
		a->ctr.resets_rst++;
}
