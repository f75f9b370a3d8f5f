// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Listener adoption, run once when the agent starts. A listener the apps
 * opened before sockops was attached never had its TCP_LISTEN_CB: it saves
 * no SYN and its SYN-ACKs carry no option, so all its connections would
 * stay plain TCP. This iterator walks the namespace's TCP sockets and does
 * for each listener of the apps' cgroup (or a cgroup below it) what
 * sockops' on_listen does. The listener is enough: a request answering a
 * SYN saves it and writes options by the listener's flags, and the child
 * copies them and gets PASSIVE_ESTABLISHED. See docs/steering.md.
 *
 * It also gives each listener it adopts its listen_opts entry (the socket
 * options the tunnel cannot honour), as sockops does at TCP_LISTEN_CB, and
 * the state callback that removes it at close.
 *
 * Its own object, loaded apart from the rest: where it does not load the
 * agent runs without it and says so. The agent hands it the main object's
 * listen_opts.
 */
#define FIVC_LISTEN_OPTS_DEFINE
#include "sockopt_refuse.bpf.h"
/* uapi, since Linux 6.10 in bpf_setsockopt; older kernels: -EINVAL. */
#define FIVC_TCP_BPF_SOCK_OPS_CB_FLAGS 1008
#define FIVC_CGROUP_MAX_LEVEL 64

const volatile __u64 apps_cgroup_id; /* the agent's --cgroup */

__u32 adopted;	   /* flags set now, or set by an earlier agent */
__u32 not_adopted; /* left as they were: plain TCP */
__u32 no_entry;	   /* adopted, but listen_opts was full: plain TCP */
int first_err;	   /* bpf_setsockopt's answer for the first of those */

static bool in_apps_cgroup(struct sock *sk)
{
	struct cgroup *cg = BPF_CORE_READ(sk, sk_cgrp_data.cgroup);
	int level;

	if (!cg)
		return false;
	level = BPF_CORE_READ(cg, level);
	for (int i = 0; i < FIVC_CGROUP_MAX_LEVEL; i++) {
		struct cgroup *anc = NULL;

		if (i > level)
			break;
		bpf_core_read(&anc, sizeof(anc), &cg->ancestors[i]);
		if (anc && BPF_CORE_READ(anc, kn, id) == apps_cgroup_id)
			return true;
	}
	return false;
}

static int adopt(struct tcp_sock *tp)
{
	const int want =
		BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG | BPF_SOCK_OPS_STATE_CB_FLAG;
	int flags = tp->bpf_sock_ops_cb_flags;
	int save = 1, err;

	if ((flags & want) == want &&
	    BPF_CORE_READ_BITFIELD_PROBED(tp, save_syn))
		return 0;
	/* The flags first: where the kernel cannot, nothing is changed. */
	flags |= want;
	err = bpf_setsockopt(tp, SOL_TCP, FIVC_TCP_BPF_SOCK_OPS_CB_FLAGS,
			     &flags, sizeof(flags));
	if (err)
		return err;
	/* An app's own TCP_SAVE_SYN (2: with the MAC header) is kept. */
	if (BPF_CORE_READ_BITFIELD_PROBED(tp, save_syn))
		return 0;
	err = bpf_setsockopt(tp, SOL_TCP, TCP_SAVE_SYN, &save, sizeof(save));
	if (err) {
		flags = tp->bpf_sock_ops_cb_flags &
			~BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG;
		bpf_setsockopt(tp, SOL_TCP, FIVC_TCP_BPF_SOCK_OPS_CB_FLAGS,
			       &flags, sizeof(flags));
	}
	return err;
}

/* The listener's entry in listen_opts; false if the table is full. */
static bool note_listener(struct sock_common *skc, struct tcp_sock *tp)
{
	struct fivc_listen_key lk = {};

	lk.netns = BPF_CORE_READ(skc, skc_net.net, net_cookie);
	if (skc->skc_family == AF_INET)
		addr_v4mapped(lk.addr, skc->skc_rcv_saddr);
	else
		__builtin_memcpy(lk.addr, &skc->skc_v6_rcv_saddr,
				 sizeof(lk.addr));
	lk.port = skc->skc_num;
	return listen_opts_add(&lk, sockopt_refusals((struct sock *)tp, true));
}

SEC("iter/tcp")
int fivc_listen_adopt(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct tcp_sock *tp;
	int err;

	if (!skc || skc->skc_state != TCP_LISTEN)
		return 0;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp || !in_apps_cgroup((struct sock *)tp))
		return 0;
	err = adopt(tp);
	if (!err) {
		adopted++;
		if (!note_listener(skc, tp))
			no_entry++;
	} else {
		if (!not_adopted)
			first_err = err;
		not_adopted++;
	}
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
