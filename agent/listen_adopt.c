// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Listeners the apps opened before sockops was attached: run the adoption
 * iterator (bpf/listen_adopt.bpf.c) once, count what it did, and say why
 * where it could not. Never fatal: such listeners then stay plain TCP, and
 * status, metrics and one warning say how many and why.
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "fastivc/log.h"
#include "listen_adopt.skel.h"

static int run_iter(struct listen_adopt *s)
{
	struct bpf_link *link;
	char buf[64];
	int fd, err = 0;

	link = bpf_program__attach_iter(s->progs.fivc_listen_adopt, NULL);
	if (!link)
		return -errno;
	fd = bpf_iter_create(bpf_link__fd(link));
	if (fd < 0)
		err = -errno;
	else
		while (read(fd, buf, sizeof(buf)) > 0)
			;
	if (fd >= 0)
		close(fd);
	bpf_link__destroy(link);
	return err;
}

void listen_adopt(struct agent *a, int cgroup_fd, int listen_opts_fd)
{
	struct agent_counters *c = &a->ctr;
	struct listen_adopt *s;
	struct stat st;
	int err;

	s = fstat(cgroup_fd, &st) ? NULL : listen_adopt__open();
	err = s ? 0 : -errno;
	if (!err) {
		s->rodata->apps_cgroup_id = st.st_ino; /* the cgroup's id */
		err = bpf_map__reuse_fd(s->maps.listen_opts, listen_opts_fd);
	}
	if (!err)
		err = listen_adopt__load(s);
	if (!err)
		err = run_iter(s);
	if (err) {
		c->listeners_reason = "iterator_not_loaded";
		pr_warn("Listeners opened before the agent were not checked "
			"(the listener iterator: %s): any stays on plain TCP; "
			"restart those services",
			strerror(-err));
		listen_adopt__destroy(s);
		return;
	}
	c->listeners_adopted = s->bss->adopted;
	c->listeners_not_adopted = s->bss->not_adopted;
	if (c->listeners_adopted)
		pr_info("Adopted %llu listeners opened before the agent",
			(unsigned long long)c->listeners_adopted);
	if (s->bss->no_entry)
		pr_warn("%u adopted listeners found listen_opts full: their "
			"connections stay on plain TCP (bpf.listener_unknown)",
			s->bss->no_entry);
	if (c->listeners_not_adopted) {
		bool no_sockopt = s->bss->first_err == -EINVAL;

		c->listeners_reason = no_sockopt ? "no_cb_flags_sockopt"
						 : "setsockopt_failed";
		pr_warn("%llu listeners opened before the agent stay on plain "
			"TCP: %s; restart those services",
			(unsigned long long)c->listeners_not_adopted,
			no_sockopt ? "this kernel's bpf_setsockopt has no "
				     "TCP_BPF_SOCK_OPS_CB_FLAGS (Linux 6.10+)"
				   : strerror(-s->bss->first_err));
	}
	listen_adopt__destroy(s);
}
