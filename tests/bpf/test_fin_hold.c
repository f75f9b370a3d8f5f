// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * tc ingress fin_hold through BPF_PROG_TEST_RUN, no network: segments for a
 * passive flow that is still a reservation (its handshake's last ACK has
 * not reached the stack). A bare FIN|ACK is kept in held_fins and goes on
 * as a pure ACK with a valid checksum (it completes the handshake); a FIN
 * with payload, a pure ACK, and a segment of no flow pass untouched. The
 * peer's RST just past that held FIN gets the FIN's sequence number (the
 * socket would otherwise answer it with a challenge ACK); other RSTs, and
 * any once the FIN was released, pass untouched.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "fastivc/bpf_abi.h"
#include "fastivc.skel.h"

#define CLIENT_IP 0x0a4d0002u /* 10.77.0.2: the peer, sending */
#define SERVER_IP 0x0a4d0001u /* 10.77.0.1: us, the passive side */
#define CLIENT_PORT 40000
#define SERVER_PORT 6701
#define SEQ 1000001u
#define TCP_HLEN 20

static int n_ok, n_fail;

static void check(bool cond, const char *what)
{
	printf("%s - fin_hold: %s\n", cond ? "ok" : "not ok", what);
	cond ? n_ok++ : n_fail++;
}

struct pkt {
	struct ethhdr eth;
	struct iphdr ip;
	struct tcphdr tcp;
	unsigned char payload[8];
} __attribute__((packed));

static __u16 fold(__u32 sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

static __u32 sum16(const void *p, size_t len, __u32 sum)
{
	const unsigned char *b = p;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (__u32)(b[i] << 8 | b[i + 1]);
	if (len & 1)
		sum += (__u32)b[len - 1] << 8;
	return sum;
}

/* The TCP checksum's one's complement sum, pseudo header included. */
static __u16 tcp_sum(const struct pkt *p, size_t tcp_len)
{
	__u32 sum = sum16(&p->ip.saddr, 8, 0);

	sum += IPPROTO_TCP + (__u32)tcp_len;
	return fold(sum16(&p->tcp, tcp_len, sum));
}

/* A segment from the client to us; @payload bytes of data. */
static size_t make_pkt(struct pkt *p, bool fin, size_t payload)
{
	size_t tcp_len = TCP_HLEN + payload;

	memset(p, 0, sizeof(*p));
	p->eth.h_proto = htons(ETH_P_IP);
	p->ip.version = 4;
	p->ip.ihl = 5;
	p->ip.ttl = 64;
	p->ip.protocol = IPPROTO_TCP;
	p->ip.tot_len = htons((__u16)(sizeof(p->ip) + tcp_len));
	p->ip.saddr = htonl(CLIENT_IP);
	p->ip.daddr = htonl(SERVER_IP);
	p->ip.check = htons((__u16)~fold(sum16(&p->ip, sizeof(p->ip), 0)));
	p->tcp.source = htons(CLIENT_PORT);
	p->tcp.dest = htons(SERVER_PORT);
	p->tcp.seq = htonl(SEQ);
	p->tcp.ack_seq = htonl(77);
	p->tcp.doff = TCP_HLEN / 4;
	p->tcp.ack = 1;
	p->tcp.fin = fin;
	p->tcp.window = htons(512);
	memset(p->payload, 'x', payload);
	p->tcp.check = htons((__u16)~tcp_sum(p, tcp_len));
	return sizeof(p->eth) + sizeof(p->ip) + tcp_len;
}

/* The peer's RST with sequence number @seq. */
static size_t make_rst(struct pkt *p, __u32 seq)
{
	size_t len = make_pkt(p, false, 0);

	p->tcp.rst = 1;
	p->tcp.seq = htonl(seq);
	p->tcp.check = 0;
	p->tcp.check = htons((__u16)~tcp_sum(p, TCP_HLEN));
	return len;
}

static void flow_key(struct fivc_flow_key *k)
{
	__u32 w[4] = {0, 0, htonl(0xffff), 0};

	memset(k, 0, sizeof(*k));
	w[3] = htonl(SERVER_IP);
	memcpy(k->laddr, w, sizeof(w));
	w[3] = htonl(CLIENT_IP);
	memcpy(k->raddr, w, sizeof(w));
	k->lport = SERVER_PORT;
	k->rport = CLIENT_PORT;
}

static __u64 stat_sum(struct fastivc_bpf *s, __u32 idx)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 *v, total = 0;

	if (ncpu <= 0)
		return 0;
	v = calloc((size_t)ncpu, sizeof(*v));
	if (v && !bpf_map__lookup_elem(s->maps.stats, &idx, sizeof(idx), v,
				       sizeof(*v) * (size_t)ncpu, 0))
		for (int i = 0; i < ncpu; i++)
			total += v[i];
	free(v);
	return total;
}

/* Run fin_hold on @in; *out gets what goes on. The verdict, or -1. */
static int run(struct fastivc_bpf *s, const struct pkt *in, size_t len,
	       struct pkt *out)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in, .data_size_in = len,
		    .data_out = out, .data_size_out = sizeof(*out));

	memset(out, 0, sizeof(*out));
	if (bpf_prog_test_run_opts(bpf_program__fd(s->progs.fivc_fin_hold), &o))
		return -1;
	return o.data_size_out == len ? (int)o.retval : -1;
}

int main(void)
{
	struct fivc_flow hold = {
		.slot = 0, .dir = FIVC_FLOW_PASSIVE, .hold_ns = 1};
	struct fivc_held_fin held;
	struct fivc_flow_key k;
	struct fastivc_bpf *s;
	struct pkt in, out;
	size_t len;
	int verdict;

	if (geteuid()) {
		printf("skip - fin_hold: needs root\n");
		return 0;
	}
	libbpf_set_print(NULL);
	s = fastivc_bpf__open_and_load();
	if (!s) {
		printf("not ok - fin_hold: load the programs: %s\n",
		       strerror(errno));
		return 1;
	}
	flow_key(&k);

	/* No flow: a FIN passes as it is. */
	len = make_pkt(&in, true, 0);
	verdict = run(s, &in, len, &out);
	check(verdict == TC_ACT_OK && !memcmp(&in, &out, len),
	      "a FIN of no flow passes untouched");

	check(!bpf_map__update_elem(s->maps.flows, &k, sizeof(k), &hold,
				    sizeof(hold), BPF_NOEXIST),
	      "a passive reservation in flows");

	len = make_pkt(&in, false, 0);
	verdict = run(s, &in, len, &out);
	check(verdict == TC_ACT_OK && !memcmp(&in, &out, len),
	      "reservation: a pure ACK passes untouched");

	len = make_pkt(&in, true, 5);
	verdict = run(s, &in, len, &out);
	check(verdict == TC_ACT_OK && !memcmp(&in, &out, len) &&
		      bpf_map__lookup_elem(s->maps.held_fins, &k, sizeof(k),
					   &held, sizeof(held), 0),
	      "reservation: a FIN with payload (bytes on TCP) passes, not "
	      "kept");

	len = make_pkt(&in, true, 0);
	verdict = run(s, &in, len, &out);
	check(verdict == TC_ACT_OK,
	      "reservation: a bare FIN goes on (TC_ACT_OK)");
	check(!out.tcp.fin && out.tcp.ack && out.tcp.seq == in.tcp.seq &&
		      out.tcp.ack_seq == in.tcp.ack_seq,
	      "... as a pure ACK: FIN cleared, ACK, sequence numbers kept");
	check(tcp_sum(&out, TCP_HLEN) == 0xffff,
	      "... with a valid TCP checksum");
	check(!bpf_map__lookup_elem(s->maps.held_fins, &k, sizeof(k), &held,
				    sizeof(held), 0) &&
		      held.len == len - sizeof(in.eth) &&
		      !memcmp(held.pkt, &in.ip, held.len),
	      "... and the FIN itself is kept in held_fins, IP header on");
	check(stat_sum(s, FIVC_STAT_FIN_EARLY) == 1 &&
		      stat_sum(s, FIVC_STAT_FIN_HELD) == 0,
	      "... counted as fin_early (1), not fin_held");

	len = make_rst(&in, SEQ + 5);
	verdict = run(s, &in, len, &out);
	check(verdict == TC_ACT_OK && !memcmp(&in, &out, len),
	      "an RST not just past the held FIN passes untouched");
	len = make_rst(&in, SEQ + 1);
	verdict = run(s, &in, len, &out);
	check(verdict == TC_ACT_OK && out.tcp.rst && out.tcp.ack &&
		      ntohl(out.tcp.seq) == SEQ && !out.tcp.fin &&
		      tcp_sum(&out, TCP_HLEN) == 0xffff,
	      "the RST just past the held FIN gets the FIN's sequence "
	      "number, a valid checksum");
	check(stat_sum(s, FIVC_STAT_RST_AFTER_FIN) == 1,
	      "... counted as rst_after_fin (1)");
	check(!bpf_map__update_elem(s->maps.fin_ok, &k, sizeof(k), &(__u32){1},
				    sizeof(__u32), BPF_ANY),
	      "the FIN released (fin_ok)");
	verdict = run(s, &in, len, &out);
	check(verdict == TC_ACT_OK && !memcmp(&in, &out, len),
	      "... then that RST passes untouched");

	fastivc_bpf__destroy(s);
	printf("# %d passed, %d failed\n", n_ok, n_fail);
	return n_fail ? 1 : 0;
}
