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

#define TCP_RST 0x04

static const uint8_t v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/* An RST from @from:@sport to @to:@dport at @seq (addresses as in keys). */
static int send_rst(const uint8_t from[16], uint16_t sport,
		    const uint8_t to[16], uint16_t dport, uint32_t seq)
{
	uint8_t pkt[60] = {0}, *th;
	uint32_t len;

	if (!memcmp(from, v4_mapped, 12)) {
		len = 40;
		pkt[0] = 0x45;
		put16(pkt + 2, (uint16_t)len);
		put16(pkt + 6, 0x4000); /* DF */
		pkt[8] = 64;
		pkt[9] = 6; /* TCP */
		memcpy(pkt + 12, from + 12, 4);
		memcpy(pkt + 16, to + 12, 4);
		th = pkt + 20;
	} else {
		len = 60;
		pkt[0] = 0x60;
		put16(pkt + 4, 20);
		pkt[6] = 6;
		pkt[7] = 64;
		memcpy(pkt + 8, from, 16);
		memcpy(pkt + 24, to, 16);
		th = pkt + 40;
	}
	put16(th, sport);
	put16(th + 2, dport);
	put32(th + 4, seq);
	th[12] = 5 << 4;
	th[13] = TCP_RST;
	return agent_raw_send(pkt, len);
}

void flow_reset_tcp(struct agent *a, struct flow *f)
{
	const struct fivc_flow_key *k = &f->key;
	int err = 0;

	/* Ours first: the app hears of the reset before its peer does. */
	for (uint32_t fin = 0; fin < 2 && !err; fin++)
		err = send_rst(k->raddr, k->rport, k->laddr, k->lport,
			       f->rcv_nxt + fin);
	for (uint32_t fin = 0; fin < 2 && !err; fin++)
		err = send_rst(k->laddr, k->lport, k->raddr, k->rport,
			       f->snd_nxt + fin);
	if (err)
		pr_warn("Failed to send the RSTs of connection %u->%u: %s",
			k->lport, k->rport, strerror(-err));
	if (!agent_sock_destroy(a, k, f->cookie))
		a->ctr.resets_abort++;
	else
		a->ctr.resets_rst++;
}
