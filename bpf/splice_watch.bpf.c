// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * splice() from a steered socket (docs/steering.md, "What the kernel
 * sets"): tcp_splice_read() reads the socket's TCP queue, never the psock
 * queue that tunnel bytes are injected into, so such a splice() finds
 * nothing however much there is to read (HAProxy with `option
 * splice-response` waits for its own timeout). docs/kernel/0005 is the
 * kernel's fix. Until a kernel has it, this watch sees the first such
 * splice() of a service and keeps the service's later connections on plain
 * TCP, where splice() works: a listener's listen_opts entry gets
 * FIVC_OPT_SPLICE (the spliced socket was accepted), or the address and
 * port it connected to go into splice_dst with the socket's uid (it
 * connected); sockops then offers neither, counting opt_splice. The flow that
 * spliced keeps its tunnel: an app that reads with recv() after a fruitless
 * splice() (HAProxy's `splice-auto`) reads every byte. The agent hears of each
 * new mark (FIVC_EV_SPLICE) and logs it.
 *
 * Two hooks, one of them attached (agent/splice_watch.c): fentry on
 * tcp_splice_read() runs only when a TCP socket is spliced from and costs
 * nothing else; where the kernel refuses fentry, the tracepoint on
 * splice()'s entry, which sends every syscall of the machine through the
 * tracing entry path (docs/performance.md, "The splice() watch's hook").
 */
#include "sockopt_refuse.bpf.h"

#define S_IFMT 00170000
#define S_IFSOCK 0140000

/* The socket behind descriptor @fd of the current task, or NULL. */
static __always_inline struct sock *fd_sock(int fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds, *file;
	struct socket *sock;

	if (fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_core_read(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	if ((BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	return sock ? BPF_CORE_READ(sock, sk) : NULL;
}

/* @sk's flow key; false for a socket of another family. */
static __always_inline bool sock_key(struct sock *sk, struct fivc_flow_key *k)
{
	struct sock_common *skc = &sk->__sk_common;
	__u16 fam = BPF_CORE_READ(skc, skc_family);

	if (fam == AF_INET) {
		addr_v4mapped(k->laddr, BPF_CORE_READ(skc, skc_rcv_saddr));
		addr_v4mapped(k->raddr, BPF_CORE_READ(skc, skc_daddr));
	} else if (fam == AF_INET6) {
		BPF_CORE_READ_INTO(&k->laddr, skc, skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&k->raddr, skc, skc_v6_daddr);
	} else {
		return false;
	}
	k->lport = BPF_CORE_READ(skc, skc_num);
	k->rport = bpf_ntohs(BPF_CORE_READ(skc, skc_dport));
	return true;
}

/* True if this marks the service anew (it did not refuse splice yet). */
static __always_inline bool mark(struct sock *sk, const struct fivc_flow_key *k,
				 __u32 dir)
{
	__u64 netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, net_cookie);
	struct fivc_splice_key dst = {.netns = netns, .port = k->rport};
	struct fivc_listen_opts *lopts;
	__u32 one = 1;

	if (dir == FIVC_FLOW_PASSIVE) {
		lopts = listen_opts_find(netns, k->laddr, k->lport);
		return lopts &&
		       !(__sync_fetch_and_or(&lopts->why, FIVC_OPT_SPLICE) &
			 FIVC_OPT_SPLICE);
	}
	dst.uid = BPF_CORE_READ(sk, sk_uid.val);
	__builtin_memcpy(dst.addr, k->raddr, sizeof(dst.addr));
	return !bpf_map_update_elem(&splice_dst, &dst, &one, BPF_NOEXIST);
}

/* @sk was spliced from: mark its service if its flow is steered. */
static __always_inline int watch(struct sock *sk)
{
	struct fivc_flow_key k = {};
	struct fivc_flow *flow;
	struct fivc_event *ev;

	if (!sk || !sock_key(sk, &k))
		return 0;
	flow = bpf_map_lookup_elem(&flows, &k);
	if (!flow || flow->hold_ns ||
	    flow->cookie !=
		    (__u64)BPF_CORE_READ(sk, __sk_common.skc_cookie.counter))
		return 0;
	if (!mark(sk, &k, flow->dir))
		return 0;
	stat_inc(FIVC_STAT_SPLICE_MARKED);
	ev = bpf_ringbuf_reserve(&events, sizeof(*ev), 0);
	if (!ev)
		return 0;
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->type = FIVC_EV_SPLICE;
	ev->slot = flow->slot;
	ev->flow = k;
	ev->dir = flow->dir;
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

/*
 * tcp_splice_read(struct socket *sock, ...): ctx[0] is @sock. Not loaded
 * unless the agent finds that fentry loads ("?"), as some kernels refuse
 * it and the skeleton's other users (tests/bpf) do not need it.
 */
SEC("?fentry/tcp_splice_read")
int fivc_splice_read(__u64 *ctx)
{
	struct socket *sock = (struct socket *)ctx[0];

	return watch(BPF_CORE_READ(sock, sk));
}

SEC("tracepoint/syscalls/sys_enter_splice")
int fivc_splice_enter(struct trace_event_raw_sys_enter *ctx)
{
	return watch(fd_sock((int)ctx->args[0]));
}
