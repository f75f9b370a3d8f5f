// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Which hook watches splice() from steered sockets (bpf/splice_watch.bpf.c):
 * fentry on tcp_splice_read() where the kernel loads it, as it costs only
 * the splices of TCP sockets; else the tracepoint on splice()'s entry,
 * which sends every syscall of the machine through the tracing entry path
 * (docs/performance.md, "The splice() watch's hook"). Never fatal: without
 * either, only splice() from a steered socket is not as TCP.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "fastivc.skel.h"
#include "fastivc/log.h"
#include "splice_watch.h"

/* Does this kernel load an empty fentry program on tcp_splice_read()? */
static bool fentry_loads(void)
{
	const struct bpf_insn ret0[] = {
		{.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0},
		{.code = BPF_JMP | BPF_EXIT},
	};
	LIBBPF_OPTS(bpf_prog_load_opts, opts,
		    .expected_attach_type = BPF_TRACE_FENTRY);
	int id, fd;

	id = libbpf_find_vmlinux_btf_id("tcp_splice_read", BPF_TRACE_FENTRY);
	if (id < 0)
		return false;
	opts.attach_btf_id = (__u32)id;
	fd = bpf_prog_load(BPF_PROG_TYPE_TRACING, NULL, "GPL", ret0, 2, &opts);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

void splice_watch_choose(struct fastivc_bpf *skel)
{
	bpf_program__set_autoload(skel->progs.fivc_splice_read, fentry_loads());
}

struct bpf_link *splice_watch_attach(struct fastivc_bpf *skel)
{
	struct bpf_link *link;
	int err;

	if (bpf_program__autoload(skel->progs.fivc_splice_read)) {
		link = bpf_program__attach(skel->progs.fivc_splice_read);
		if (link) {
			pr_info("splice() from steered sockets watched at "
				"tcp_splice_read() (fentry)");
			return link;
		}
		pr_info("fentry on tcp_splice_read() does not attach (%s): "
			"splice() watched at its syscall's entry instead",
			strerror(errno));
	}
	link = bpf_program__attach(skel->progs.fivc_splice_enter);
	if (link) {
		pr_info("splice() from steered sockets watched at splice()'s "
			"entry (a syscall tracepoint: every syscall of the "
			"machine takes the tracing path)");
		return link;
	}
	err = errno;
	pr_warn("splice() from steered sockets is not watched (%s%s): an app "
		"that splices from one waits for its own timeout",
		strerror(err),
		err == ENOENT ? "; is tracefs mounted at /sys/kernel/tracing?"
			      : "");
	return NULL;
}
