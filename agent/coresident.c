// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * coresident = xenstore: the agent watches dom0's list (coresident.h) and
 * keeps the pinned peers map equal to it, less our own domain. Entries
 * added by hand (`fastivc peer add`) are removed at the next change: the
 * map follows the trusted source only.
 */
#include <bpf/bpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xenstore.h>

#include "link.h"
#include "coresident.h"
#include "fastivc/log.h"
#include "fastivc/xen_rendezvous.h"

#define WATCH_TOKEN "fastivc-coresident"

struct agent_coresident {
	struct agent_watch w; /* xs_fileno: watch events are queued */
	struct xs_handle *xs;
	int peers_fd;
};

struct apply {
	int fd;
	uint32_t set, removed, failed;
};

static void apply_one(void *ctx, const struct cores_entry *e, bool del)
{
	struct apply *ap = ctx;
	struct fivc_peer_val v = {.domid = e->domid};
	int rc = del ? bpf_map_delete_elem(ap->fd, &e->key)
		     : bpf_map_update_elem(ap->fd, &e->key, &v, BPF_ANY);

	if (rc) {
		ap->failed++;
		pr_warn("coresident: Failed to %s a peer of domain %u: %s",
			del ? "delete" : "update", e->domid, strerror(errno));
	} else if (del) {
		ap->removed++;
	} else {
		ap->set++;
	}
}

/* What the map holds now, sorted. */
static int map_read(int fd, struct cores_set *s)
{
	struct fivc_peer_key k, next, *prev = NULL;
	struct fivc_peer_val v;
	int err = 0;

	while (!err && !bpf_map_get_next_key(fd, prev, &next)) {
		k = next;
		prev = &k;
		if (!bpf_map_lookup_elem(fd, &k, &v))
			err = cores_set_add(s, &k, v.domid);
	}
	cores_set_sort(s);
	return err;
}

/*
 * backend = xen: keep a link to every domain of the list, and let only the
 * domains whose link is up into the peers map.
 */
static int xen_links(struct agent *a, struct cores_set *want)
{
	uint32_t *domids = calloc(want->n + 1, sizeof(*domids));
	uint32_t n = 0, kept = 0;

	if (!domids)
		return -ENOMEM;
	for (uint32_t i = 0; i < want->n; i++) {
		uint32_t j = 0;

		while (j < n && domids[j] != want->e[i].domid)
			j++;
		if (j == n)
			domids[n++] = want->e[i].domid;
	}
	xlink_want_only(a, domids, n);
	free(domids);
	for (uint32_t i = 0; i < want->n; i++)
		if (xlink_up(a, want->e[i].domid))
			want->e[kept++] = want->e[i];
	want->n = kept;
	return 0;
}

static void sync_peers(struct agent *a, struct agent_coresident *c)
{
	struct cores_set want = {}, have = {};
	struct apply ap = {.fd = c->peers_fd};
	int err = cores_xs_read(c->xs, a->cfg.domid, &want);

	if (!err && a->cfg.backend == FIVC_BACKEND_XEN)
		err = xen_links(a, &want);
	if (!err)
		err = map_read(c->peers_fd, &have);
	if (err)
		pr_warn("coresident: peers map left as it was: %s",
			strerror(-err));
	else if (cores_diff(&have, &want, apply_one, &ap))
		pr_info("coresident: %u peer addresses from dom0 (%u set, %u "
			"removed, %u failed)",
			want.n, ap.set, ap.removed, ap.failed);
	cores_set_free(&want);
	cores_set_free(&have);
}

static void on_watch(struct agent *a, struct agent_watch *w, uint32_t events)
{
	struct agent_coresident *c =
		container_of(w, struct agent_coresident, w);
	char **ev;

	(void)events;
	/* One read of the whole list covers every queued event. */
	while ((ev = xs_check_watch(c->xs)))
		free(ev);
	sync_peers(a, c);
}

/* The configured domid must be the one xenstore knows us by. */
static int check_domid(struct xs_handle *xs, uint32_t domid)
{
	unsigned int len;
	char *s = xs_read(xs, XBT_NULL, "domid", &len);
	uint32_t got = UINT32_MAX;

	if (s)
		fivc_xrdv_parse_u32(s, &got);
	free(s);
	if (got == domid)
		return 0;
	if (got == UINT32_MAX)
		pr_err("coresident = xenstore: no domid readable in xenstore");
	else
		pr_err("coresident = xenstore: domid is %u but xenstore says "
		       "%u",
		       domid, got);
	return -EINVAL;
}

static void free_cores(struct agent *a, struct agent_coresident *c)
{
	if (!c)
		return;
	agent_watch_del(a, &c->w);
	if (c->xs)
		xs_close(c->xs);
	if (c->peers_fd >= 0)
		close(c->peers_fd);
	free(c);
}

static int open_peers(struct agent *a, struct agent_coresident *c)
{
	char dir[256], path[300];

	agent_pin_dir(&a->cfg, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/peers", dir);
	c->peers_fd = bpf_obj_get(path);
	if (c->peers_fd >= 0)
		return 0;
	pr_err("Failed to open the peers map %s: %s", path, strerror(errno));
	return -errno;
}

void coresident_changed(struct agent *a)
{
	if (a->cores)
		sync_peers(a, a->cores);
}

int coresident_init(struct agent *a)
{
	struct agent_coresident *c;
	int err;

	if (!a->cfg.coresident_xs)
		return 0;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->peers_fd = -1;
	c->xs = cores_xs_open();
	err = c->xs ? check_domid(c->xs, a->cfg.domid) : -ENODEV;
	if (!err)
		err = open_peers(a, c);
	if (!err) {
		c->w.fd = xs_fileno(c->xs);
		c->w.fn = on_watch;
		if (c->w.fd < 0 || !xs_watch(c->xs, CORES_DIR, WATCH_TOKEN)) {
			err = errno ? -errno : -EIO;
			pr_err("Failed to watch %s: %s", CORES_DIR,
			       strerror(-err));
		}
	}
	if (!err)
		err = agent_watch_add(a, &c->w, EPOLLIN);
	if (err) {
		free_cores(a, c);
		return err;
	}
	a->cores = c;
	sync_peers(a, c);
	pr_info("coresident: following dom0's list at %s", CORES_DIR);
	return 0;
}

void coresident_fini(struct agent *a)
{
	free_cores(a, a->cores);
	a->cores = NULL;
}
