/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The splice() watch's hook (bpf/splice_watch.bpf.c): chosen, attached. */
#ifndef FASTIVC_AGENT_SPLICE_WATCH_H
#define FASTIVC_AGENT_SPLICE_WATCH_H

struct bpf_link;
struct fastivc_bpf;

/* Before the skeleton loads: load the fentry hook only where it can. */
void splice_watch_choose(struct fastivc_bpf *skel);
/* After: the hook's link, or NULL (one warning) where none attached. */
struct bpf_link *splice_watch_attach(struct fastivc_bpf *skel);

#endif
