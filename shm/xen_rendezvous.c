// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Xen rendezvous through xenstore, and the checks applied to what a peer
 * says. The pure parts come first so the tests can reach them without Xen.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xenstore.h>

#include "fastivc/log.h"
#include "fastivc/xen_rendezvous.h"

/* --- names, paths, numbers ------------------------------------------------ */

static bool name_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
	       c == '-';
}

int fivc_xrdv_check_name(const char *name)
{
	size_t i;

	if (!name)
		return -EINVAL;
	for (i = 0; name[i]; i++) {
		if (i >= FIVC_XRDV_NAME_MAX || !name_char_ok(name[i]))
			return -EINVAL;
	}
	return i ? 0 : -EINVAL;
}

int fivc_xrdv_path(char *buf, size_t len, uint32_t domid, const char *name,
		   const char *key)
{
	int n;

	if (!buf || !len)
		return -EINVAL;
	buf[0] = '\0';
	if (domid >= FIVC_XEN_DOMID_FIRST_RESERVED ||
	    fivc_xrdv_check_name(name) || (key && fivc_xrdv_check_name(key)))
		return -EINVAL;
	if (key)
		n = snprintf(buf, len, "/local/domain/%u/data/fastivc/%s/%s",
			     domid, name, key);
	else
		n = snprintf(buf, len, "/local/domain/%u/data/fastivc/%s",
			     domid, name);
	if (n < 0 || (size_t)n >= len) {
		/* Never leave a truncated path that still names a node. */
		buf[0] = '\0';
		return -ENAMETOOLONG;
	}
	return 0;
}

/*
 * Parse the decimal that starts at @s and ends before @end (exclusive).
 * Hand-rolled rather than strtoul(): strtoul accepts spaces, signs and
 * "0x", and wraps "-1" to ULONG_MAX.
 */
static int parse_u32_span(const char *s, const char *end, uint32_t *out)
{
	uint64_t v = 0;
	const char *p;

	if (s == end)
		return -EINVAL;
	if (*s == '0' && end - s > 1)
		return -EINVAL;
	for (p = s; p < end; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > UINT32_MAX)
			return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

int fivc_xrdv_parse_u32(const char *s, uint32_t *out)
{
	if (!s || !out)
		return -EINVAL;
	return parse_u32_span(s, s + strlen(s), out);
}

int fivc_xrdv_format_refs(char *buf, size_t len, const uint32_t *refs,
			  uint32_t n)
{
	size_t used = 0;
	uint32_t i;
	int w;

	if (!buf || !len)
		return -EINVAL;
	buf[0] = '\0';
	if (!refs || !n || n > FIVC_SHM_MAX_PAGES)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		w = snprintf(buf + used, len - used, i ? ",%u" : "%u", refs[i]);
		if (w < 0 || (size_t)w >= len - used) {
			buf[0] = '\0';
			return -E2BIG;
		}
		used += (size_t)w;
	}
	return (int)used;
}

int fivc_xrdv_parse_refs(const char *s, uint32_t *refs, uint32_t n)
{
	const char *p, *comma;
	uint32_t count = 0;
	int err;

	if (!s || !refs || !n || n > FIVC_SHM_MAX_PAGES)
		return -EINVAL;
	p = s;
	for (;;) {
		/* More elements than expected: stop before writing past @n. */
		if (count == n)
			return -EINVAL;
		comma = strchr(p, ',');
		err = parse_u32_span(p, comma ? comma : p + strlen(p),
				     &refs[count]);
		if (err)
			return err;
		count++;
		if (!comma)
			break;
		p = comma + 1;
	}
	return count == n ? 0 : -EINVAL;
}

/* --- key=value sets ------------------------------------------------------- */

void fivc_xrdv_data_init(struct fivc_xrdv_data *dd)
{
	if (dd)
		memset(dd, 0, sizeof(*dd));
}

/* Index of @key in @dd, or -1. */
static int find_kv(const struct fivc_xrdv_data *dd, const char *key)
{
	uint32_t i;

	for (i = 0; i < dd->n && i < FIVC_XRDV_MAX_KEYS; i++) {
		if (!strcmp(dd->kv[i].key, key))
			return (int)i;
	}
	return -1;
}

int fivc_xrdv_set(struct fivc_xrdv_data *dd, const char *key, const char *value)
{
	struct fivc_xrdv_kv *kv;
	size_t vlen;
	int i;

	if (!dd || !value || fivc_xrdv_check_name(key))
		return -EINVAL;
	vlen = strlen(value);
	if (vlen > FIVC_XRDV_VALUE_MAX)
		return -E2BIG;
	i = find_kv(dd, key);
	if (i >= 0) {
		kv = &dd->kv[i];
	} else {
		if (dd->n >= FIVC_XRDV_MAX_KEYS)
			return -E2BIG;
		kv = &dd->kv[dd->n++];
		strcpy(kv->key, key); /* checked: at most NAME_MAX chars */
	}
	memcpy(kv->value, value, vlen + 1);
	return 0;
}

int fivc_xrdv_set_u32(struct fivc_xrdv_data *dd, const char *key,
		      uint32_t value)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "%u", value);
	return fivc_xrdv_set(dd, key, buf);
}

const char *fivc_xrdv_get(const struct fivc_xrdv_data *dd, const char *key)
{
	int i;

	if (!dd || !key)
		return NULL;
	i = find_kv(dd, key);
	return i >= 0 ? dd->kv[i].value : NULL;
}

int fivc_xrdv_get_u32(const struct fivc_xrdv_data *dd, const char *key,
		      uint32_t *out)
{
	const char *v = fivc_xrdv_get(dd, key);

	if (!v)
		return -ENOENT;
	return fivc_xrdv_parse_u32(v, out);
}

/* <prefix>-<suffix>, which must itself be a valid key. */
static int make_key(char key[FIVC_XRDV_NAME_MAX + 1], const char *prefix,
		    const char *suffix)
{
	int n;

	if (fivc_xrdv_check_name(prefix))
		return -EINVAL;
	n = snprintf(key, FIVC_XRDV_NAME_MAX + 1, "%s-%s", prefix, suffix);
	if (n < 0 || n > (int)FIVC_XRDV_NAME_MAX)
		return -EINVAL;
	return 0;
}

/* --- descriptor checks ---------------------------------------------------- */

int fivc_xen_check_domid(uint32_t domid, uint32_t self)
{
	if (domid == self || domid >= FIVC_XEN_DOMID_FIRST_RESERVED)
		return -EINVAL;
	return 0;
}

/* Size and refs agree; shared by what we send and what we receive. */
static int check_shm_geometry(const struct fivc_shm_desc *d)
{
	if (!d || d->kind != FIVC_BACKEND_XEN)
		return -EINVAL;
	if (!d->size || d->size % FIVC_XEN_PAGE_SIZE)
		return -EINVAL;
	if (d->n_refs != d->size / FIVC_XEN_PAGE_SIZE ||
	    d->n_refs > FIVC_SHM_MAX_PAGES || !d->refs)
		return -EINVAL;
	return 0;
}

int fivc_xen_check_shm_desc(const struct fivc_shm_desc *d, uint32_t self)
{
	int err = check_shm_geometry(d);

	if (err)
		return err;
	return fivc_xen_check_domid(d->domid, self);
}

int fivc_xen_check_evch_desc(const struct fivc_evch_desc *d, uint32_t self)
{
	if (!d || d->kind != FIVC_BACKEND_XEN)
		return -EINVAL;
	if (!d->port || d->port > FIVC_XEN_PORT_MAX)
		return -EINVAL;
	return fivc_xen_check_domid(d->domid, self);
}

/* --- descriptors <-> key=value ------------------------------------------ */

int fivc_xrdv_put_shm(struct fivc_xrdv_data *dd, const char *prefix,
		      const struct fivc_shm_desc *d)
{
	char key_size[FIVC_XRDV_NAME_MAX + 1], key_refs[FIVC_XRDV_NAME_MAX + 1];
	char refs[FIVC_XRDV_VALUE_MAX + 1];
	int err;

	if (!dd || check_shm_geometry(d))
		return -EINVAL;
	err = make_key(key_size, prefix, "size");
	if (!err)
		err = make_key(key_refs, prefix, "refs");
	if (err)
		return err;
	err = fivc_xrdv_format_refs(refs, sizeof(refs), d->refs, d->n_refs);
	if (err < 0)
		return err;
	err = fivc_xrdv_set_u32(dd, key_size, d->size);
	if (err)
		return err;
	return fivc_xrdv_set(dd, key_refs, refs);
}

int fivc_xrdv_take_shm(const struct fivc_xrdv_data *dd, const char *prefix,
		       uint32_t peer, uint32_t self, struct fivc_shm_desc *d)
{
	char key_size[FIVC_XRDV_NAME_MAX + 1], key_refs[FIVC_XRDV_NAME_MAX + 1];
	const char *refs_str;
	uint32_t size, n;
	int err;

	if (!d)
		return -EINVAL;
	memset(d, 0, sizeof(*d));
	d->fd = -1;
	if (!dd)
		return -EINVAL;
	err = make_key(key_size, prefix, "size");
	if (!err)
		err = make_key(key_refs, prefix, "refs");
	if (err)
		return err;
	/* A missing key is as malformed as a bad one: both are -EINVAL. */
	if (fivc_xrdv_get_u32(dd, key_size, &size))
		return -EINVAL;
	refs_str = fivc_xrdv_get(dd, key_refs);
	if (!refs_str || !size || size % FIVC_XEN_PAGE_SIZE)
		return -EINVAL;
	n = size / FIVC_XEN_PAGE_SIZE;
	if (n > FIVC_SHM_MAX_PAGES)
		return -EINVAL;

	d->refs = calloc(n, sizeof(*d->refs));
	if (!d->refs)
		return -ENOMEM;
	err = fivc_xrdv_parse_refs(refs_str, d->refs, n);
	if (err)
		goto fail;
	d->kind = FIVC_BACKEND_XEN;
	d->size = size;
	/* Only @peer writes under its own area: the path names the granter. */
	d->domid = peer;
	d->n_refs = n;
	err = fivc_xen_check_shm_desc(d, self);
	if (err)
		goto fail;
	return 0;

fail:
	free(d->refs);
	memset(d, 0, sizeof(*d));
	d->fd = -1;
	return err;
}

int fivc_xrdv_put_evch(struct fivc_xrdv_data *dd, const char *prefix,
		       const struct fivc_evch_desc *d)
{
	char key[FIVC_XRDV_NAME_MAX + 1];
	int err;

	if (!dd || !d || d->kind != FIVC_BACKEND_XEN || !d->port ||
	    d->port > FIVC_XEN_PORT_MAX)
		return -EINVAL;
	err = make_key(key, prefix, "port");
	if (err)
		return err;
	return fivc_xrdv_set_u32(dd, key, d->port);
}

int fivc_xrdv_take_evch(const struct fivc_xrdv_data *dd, const char *prefix,
			uint32_t peer, uint32_t self, struct fivc_evch_desc *d)
{
	char key[FIVC_XRDV_NAME_MAX + 1];
	uint32_t port;
	int err;

	if (!d)
		return -EINVAL;
	memset(d, 0, sizeof(*d));
	d->fd_wait = -1;
	d->fd_kick = -1;
	if (!dd)
		return -EINVAL;
	err = make_key(key, prefix, "port");
	if (err)
		return err;
	if (fivc_xrdv_get_u32(dd, key, &port))
		return -EINVAL;
	d->kind = FIVC_BACKEND_XEN;
	d->domid = peer;
	d->port = port;
	err = fivc_xen_check_evch_desc(d, self);
	if (err) {
		d->kind = 0;
		d->port = 0;
	}
	return err;
}

/* --- xenstore ------------------------------------------------------------- */

/* libxenstore reports failures in errno; never turn one into success. */
static int xs_errno(int fallback)
{
	int e = errno;

	return e > 0 ? -e : -fallback;
}

static int check_data(const struct fivc_xrdv_data *dd)
{
	uint32_t i;

	if (!dd || dd->n > FIVC_XRDV_MAX_KEYS)
		return -EINVAL;
	for (i = 0; i < dd->n; i++) {
		if (fivc_xrdv_check_name(dd->kv[i].key))
			return -EINVAL;
		if (strnlen(dd->kv[i].value, sizeof(dd->kv[i].value)) >
		    FIVC_XRDV_VALUE_MAX)
			return -EINVAL;
	}
	return 0;
}

static void txn_backoff(int attempt)
{
	/* Whoever we conflicted with is mid-transaction: give it a moment. */
	usleep(1000u * (unsigned int)(attempt + 1));
}

static int publish_in(struct xs_handle *xs, xs_transaction_t t, uint32_t self,
		      const char *name, const char *dir,
		      struct xs_permissions perms[2],
		      const struct fivc_xrdv_data *dd)
{
	char path[FIVC_XRDV_PATH_MAX];
	uint32_t i;
	int err;

	/* Start from an empty directory so no key of an older publish stays. */
	if (!xs_rm(xs, t, dir) && errno != ENOENT)
		return xs_errno(EIO);
	if (!xs_mkdir(xs, t, dir))
		return xs_errno(EIO);
	if (!xs_set_permissions(xs, t, dir, perms, 2))
		return xs_errno(EIO);
	for (i = 0; i < dd->n; i++) {
		err = fivc_xrdv_path(path, sizeof(path), self, name,
				     dd->kv[i].key);
		if (err)
			return err;
		if (!xs_write(xs, t, path, dd->kv[i].value,
			      (unsigned int)strlen(dd->kv[i].value)))
			return xs_errno(EIO);
		/*
		 * New nodes inherit the directory's permissions in xenstored,
		 * but set them anyway so no daemon's default can widen them.
		 */
		if (!xs_set_permissions(xs, t, path, perms, 2))
			return xs_errno(EIO);
	}
	return 0;
}

int fivc_xrdv_publish(struct fivc_backend *be, uint32_t peer, const char *name,
		      const struct fivc_xrdv_data *dd)
{
	struct xs_handle *xs = fivc_xen_backend_xs(be);
	struct xs_permissions perms[2];
	char dir[FIVC_XRDV_PATH_MAX];
	xs_transaction_t t;
	int attempt, err;

	if (!xs)
		return -EINVAL;
	err = fivc_xen_check_domid(peer, be->self_domid);
	if (!err)
		err = check_data(dd);
	if (!err)
		err = fivc_xrdv_path(dir, sizeof(dir), be->self_domid, name,
				     NULL);
	if (err)
		return err;

	/* Owner: ourselves; everyone else: nothing; the peer: read. */
	perms[0].id = be->self_domid;
	perms[0].perms = XS_PERM_NONE;
	perms[1].id = peer;
	perms[1].perms = XS_PERM_READ;

	for (attempt = 0; attempt < FIVC_XRDV_TXN_RETRIES; attempt++) {
		t = xs_transaction_start(xs);
		if (t == XBT_NULL)
			return xs_errno(EIO);
		err = publish_in(xs, t, be->self_domid, name, dir, perms, dd);
		if (err) {
			xs_transaction_end(xs, t, true);
			return err;
		}
		if (xs_transaction_end(xs, t, false))
			return 0;
		if (errno != EAGAIN)
			return xs_errno(EIO);
		txn_backoff(attempt);
	}
	pr_debug("xenstore kept conflicting while publishing %s", dir);
	return -EAGAIN;
}

static int read_in(struct xs_handle *xs, xs_transaction_t t, uint32_t peer,
		   const char *name, const char *dir, struct fivc_xrdv_data *dd)
{
	char path[FIVC_XRDV_PATH_MAX];
	struct fivc_xrdv_kv *kv;
	unsigned int num, len, i;
	char **keys;
	char *val;
	int err = 0;

	fivc_xrdv_data_init(dd);
	keys = xs_directory(xs, t, dir, &num);
	if (!keys)
		return xs_errno(ENOENT);
	/* The peer controls this directory: bound what we accept from it. */
	if (num > FIVC_XRDV_MAX_KEYS) {
		err = -EINVAL;
		goto out;
	}
	for (i = 0; i < num; i++) {
		err = fivc_xrdv_path(path, sizeof(path), peer, name, keys[i]);
		if (err) {
			err = -EINVAL;
			goto out;
		}
		val = xs_read(xs, t, path, &len);
		if (!val) {
			err = xs_errno(EIO);
			goto out;
		}
		if (len > FIVC_XRDV_VALUE_MAX || memchr(val, '\0', len)) {
			free(val);
			err = -EINVAL;
			goto out;
		}
		kv = &dd->kv[dd->n++];
		strcpy(kv->key, keys[i]); /* checked by fivc_xrdv_path() */
		memcpy(kv->value, val, len);
		kv->value[len] = '\0';
		free(val);
	}
out:
	free(keys);
	if (err)
		fivc_xrdv_data_init(dd);
	return err;
}

int fivc_xrdv_read(struct fivc_backend *be, uint32_t peer, const char *name,
		   struct fivc_xrdv_data *dd)
{
	struct xs_handle *xs = fivc_xen_backend_xs(be);
	char dir[FIVC_XRDV_PATH_MAX];
	xs_transaction_t t;
	int attempt, err;

	if (!xs || !dd)
		return -EINVAL;
	fivc_xrdv_data_init(dd);
	err = fivc_xen_check_domid(peer, be->self_domid);
	if (!err)
		err = fivc_xrdv_path(dir, sizeof(dir), peer, name, NULL);
	if (err)
		return err;

	/* A transaction, so a concurrent re-publish is seen whole or not. */
	for (attempt = 0; attempt < FIVC_XRDV_TXN_RETRIES; attempt++) {
		t = xs_transaction_start(xs);
		if (t == XBT_NULL)
			return xs_errno(EIO);
		err = read_in(xs, t, peer, name, dir, dd);
		if (err) {
			xs_transaction_end(xs, t, true);
			return err;
		}
		if (xs_transaction_end(xs, t, false))
			return 0;
		err = xs_errno(EIO);
		fivc_xrdv_data_init(dd);
		if (err != -EAGAIN)
			return err;
		txn_backoff(attempt);
	}
	pr_debug("xenstore kept conflicting while reading %s", dir);
	return -EAGAIN;
}

int fivc_xrdv_read_u32(struct fivc_backend *be, uint32_t peer, const char *name,
		       const char *key, uint32_t *out)
{
	struct xs_handle *xs = fivc_xen_backend_xs(be);
	char path[FIVC_XRDV_PATH_MAX];
	unsigned int len;
	char *val;
	int err;

	if (!xs || !out)
		return -EINVAL;
	err = fivc_xen_check_domid(peer, be->self_domid);
	if (!err)
		err = fivc_xrdv_path(path, sizeof(path), peer, name, key);
	if (err)
		return err;
	val = xs_read(xs, XBT_NULL, path, &len);
	if (!val)
		return xs_errno(ENOENT);
	/* The peer wrote it: a NUL inside is not a number either. */
	err = strlen(val) == len ? fivc_xrdv_parse_u32(val, out) : -EINVAL;
	free(val);
	return err;
}

int fivc_xrdv_unpublish(struct fivc_backend *be, const char *name)
{
	struct xs_handle *xs = fivc_xen_backend_xs(be);
	char dir[FIVC_XRDV_PATH_MAX];
	int err;

	if (!xs)
		return -EINVAL;
	err = fivc_xrdv_path(dir, sizeof(dir), be->self_domid, name, NULL);
	if (err)
		return err;
	if (!xs_rm(xs, XBT_NULL, dir) && errno != ENOENT)
		return xs_errno(EIO);
	return 0;
}
