// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* dom0's co-resident lists in xenstore: the layout of coresident.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xenstore.h>

#include "agent.h"
#include "coresident.h"
#include "fastivc/log.h"
#include "fastivc/xen_rendezvous.h"

/* Times a transaction is retried when xenstored answers EAGAIN. */
#define TXN_RETRIES 8

/* libxenstore reports failures in errno; never turn one into success. */
static int xs_err(void)
{
	return errno > 0 ? -errno : -EIO;
}

struct xs_handle *cores_xs_open(void)
{
	struct xs_handle *xs = xs_open(0);

	if (!xs)
		pr_err("Failed to open xenstore: %s (no Xen, or xenstored is "
		       "not running)",
		       strerror(errno));
	return xs;
}

/* Run @fn in a transaction, again while xenstored says EAGAIN. */
static int in_txn(struct xs_handle *xs,
		  int (*fn)(struct xs_handle *xs, xs_transaction_t t,
			    void *ctx),
		  void *ctx)
{
	for (int attempt = 0; attempt < TXN_RETRIES; attempt++) {
		xs_transaction_t t = xs_transaction_start(xs);
		int err;

		if (t == XBT_NULL)
			return xs_err();
		err = fn(xs, t, ctx);
		if (err) {
			xs_transaction_end(xs, t, true);
			return err;
		}
		if (xs_transaction_end(xs, t, false))
			return 0;
		if (errno != EAGAIN)
			return xs_err();
		usleep(1000u * (unsigned int)(attempt + 1));
	}
	return -EAGAIN;
}

static int node_path(char *buf, size_t len, uint32_t domid)
{
	int n = snprintf(buf, len, CORES_DIR "/%u", domid);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

struct publish_ctx {
	const char *path, *value;
};

static int publish_in(struct xs_handle *xs, xs_transaction_t t, void *ctx)
{
	const struct publish_ctx *p = ctx;
	/* Owner dom0; every other domain may read (xenstore-chmod r0). */
	struct xs_permissions perms = {.id = 0, .perms = XS_PERM_READ};

	if (!xs_mkdir(xs, t, CORES_DIR) ||
	    !xs_set_permissions(xs, t, CORES_DIR, &perms, 1) ||
	    !xs_write(xs, t, p->path, p->value,
		      (unsigned int)strlen(p->value)) ||
	    !xs_set_permissions(xs, t, p->path, &perms, 1))
		return xs_err();
	return 0;
}

int cores_xs_publish(struct xs_handle *xs, uint32_t domid, const char *value)
{
	char path[FIVC_XRDV_PATH_MAX];
	struct publish_ctx p = {path, value};
	int err = node_path(path, sizeof(path), domid);

	return err ? err : in_txn(xs, publish_in, &p);
}

int cores_xs_remove(struct xs_handle *xs, uint32_t domid)
{
	char path[FIVC_XRDV_PATH_MAX];
	int err = node_path(path, sizeof(path), domid);

	if (err)
		return err;
	if (!xs_rm(xs, XBT_NULL, path) && errno != ENOENT)
		return xs_err();
	return 0;
}

struct read_ctx {
	uint32_t self;
	struct cores_set *out;
};

/* One node: 0 if taken or skipped, else an error that ends the read. */
static int read_node(struct xs_handle *xs, xs_transaction_t t, const char *name,
		     struct read_ctx *r)
{
	struct fivc_peer_key keys[CORES_MAX_ADDRS];
	char path[FIVC_XRDV_PATH_MAX], *val;
	unsigned int len;
	uint32_t domid;
	int n, err = 0;

	if (fivc_xrdv_parse_u32(name, &domid) ||
	    domid >= FIVC_XEN_DOMID_FIRST_RESERVED) {
		pr_warn("coresident: skipping %s/%s: not a domain id",
			CORES_DIR, name);
		return 0;
	}
	if (domid == r->self)
		return 0;
	node_path(path, sizeof(path), domid);
	val = xs_read(xs, t, path, &len);
	if (!val)
		return errno == ENOENT ? 0 : xs_err();
	n = len > CORES_VALUE_MAX || memchr(val, 0, len)
		    ? -EINVAL
		    : cores_parse_addrs(val, keys, CORES_MAX_ADDRS);
	if (n < 0)
		pr_warn("coresident: skipping %s: not an address list", path);
	for (int i = 0; i < n && !err; i++)
		err = cores_set_add(r->out, &keys[i], domid);
	free(val);
	return err;
}

static int read_in(struct xs_handle *xs, xs_transaction_t t, void *ctx)
{
	struct read_ctx *r = ctx;
	unsigned int num;
	char **names;
	int err = 0;

	r->out->n = 0; /* a retried transaction starts again */
	names = xs_directory(xs, t, CORES_DIR, &num);
	if (!names)
		return errno == ENOENT ? 0 : xs_err();
	for (unsigned int i = 0; i < num && !err; i++)
		err = read_node(xs, t, names[i], r);
	free(names);
	return err;
}

int cores_xs_read(struct xs_handle *xs, uint32_t self, struct cores_set *out)
{
	struct read_ctx r = {self, out};
	uint32_t dropped;
	int err = in_txn(xs, read_in, &r);

	if (err)
		return err;
	dropped = cores_set_sort(out);
	if (dropped)
		pr_warn("coresident: %u addresses claimed by two domains left "
			"out",
			dropped);
	return 0;
}
