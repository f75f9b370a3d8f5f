/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Xen rendezvous: how two domUs find each other's first region and event
 * channel without dom0's help, and the checks the Xen backend applies to
 * what a peer tells it.
 *
 * The offering domain publishes opaque key=value strings under its own
 * xenstore area,
 *
 *   /local/domain/<self>/data/fastivc/<name>/<key> = <value>
 *
 * owned by itself with no access for others except read for the peer
 * (xenstore-chmod PATH n<self> r<peer>), all written in one transaction.
 * The peer reads /local/domain/<peer>/data/fastivc/<name>/. A domU may
 * write only under its own area, so the path itself says who wrote the
 * data: the grant domain of a region read from there is always <peer>.
 *
 * This is done once per pair of domains, for the control link. Tunnels
 * send their descriptors over that link instead: xenstored limits each
 * domain's transactions and nodes, and one value holds at most
 * FIVC_XRDV_VALUE_MAX bytes, so a refs list of more than a few dozen pages
 * does not fit (fivc_xrdv_put_shm() fails with -E2BIG).
 *
 * Everything returns 0 (or a length, where said) or a negative errno.
 * The parsers accept exactly what the formatters produce and return
 * -EINVAL on anything else. Only fivc_xrdv_publish(), fivc_xrdv_read()
 * and fivc_xrdv_unpublish() talk to xenstore; the rest is pure and
 * thread-safe.
 */
#ifndef FASTIVC_XEN_RENDEZVOUS_H
#define FASTIVC_XEN_RENDEZVOUS_H

#include <stddef.h>
#include <stdint.h>

#include "fastivc/shm.h"

/* Grants are always 4 KiB pages, whatever the guest's page size. */
#define FIVC_XEN_PAGE_SIZE 4096u
/* Xen's DOMID_FIRST_RESERVED: ids from here on are not ordinary domains. */
#define FIVC_XEN_DOMID_FIRST_RESERVED 0x7FF0u
/* Highest port of the FIFO ABI (2^17 - 1); port 0 is never valid. */
#define FIVC_XEN_PORT_MAX ((1u << 17) - 1u)

/* A rendezvous name or key: [a-z0-9_-]{1,FIVC_XRDV_NAME_MAX}. */
#define FIVC_XRDV_NAME_MAX 32u
/*
 * Longest value, without its NUL. xenstored's per-node quota (2048 bytes
 * by default, data and permissions together) must hold it.
 */
#define FIVC_XRDV_VALUE_MAX 1024u
/* Most keys under one name; a peer that publishes more is rejected. */
#define FIVC_XRDV_MAX_KEYS 16u
/* Room for the longest path fivc_xrdv_path() builds, with its NUL. */
#define FIVC_XRDV_PATH_MAX 128u
/* Times a transaction is retried when xenstored answers EAGAIN. */
#define FIVC_XRDV_TXN_RETRIES 8

struct fivc_xrdv_kv {
	char key[FIVC_XRDV_NAME_MAX + 1];
	char value[FIVC_XRDV_VALUE_MAX + 1];
};

/* One published directory: its keys in insertion order, no duplicates. */
struct fivc_xrdv_data {
	uint32_t n;
	struct fivc_xrdv_kv kv[FIVC_XRDV_MAX_KEYS];
};

/* --- pure helpers --------------------------------------------------------- */

/* 0 if @name matches [a-z0-9_-]{1,32}, else -EINVAL. */
int fivc_xrdv_check_name(const char *name);

/*
 * Build /local/domain/<domid>/data/fastivc/<name>[/<key>] into @buf.
 * @key may be NULL for the directory itself. -EINVAL for a bad name, key
 * or domid, -ENAMETOOLONG if @len is too small (@buf then holds "").
 */
int fivc_xrdv_path(char *buf, size_t len, uint32_t domid, const char *name,
		   const char *key);

/*
 * Strict decimal: digits only, no sign, no spaces, no leading zero except
 * "0" itself, at most UINT32_MAX.
 */
int fivc_xrdv_parse_u32(const char *s, uint32_t *out);

/*
 * Write @n refs as comma-separated decimals ("8,9,10"). Returns the length
 * written (without the NUL), -EINVAL if @n is 0 or above
 * FIVC_SHM_MAX_PAGES, -E2BIG if @buf is too small.
 */
int fivc_xrdv_format_refs(char *buf, size_t len, const uint32_t *refs,
			  uint32_t n);

/*
 * Parse exactly @n refs (1..FIVC_SHM_MAX_PAGES) into @refs. An empty
 * list, an empty element, a count other than @n, a value of 2^32 or more
 * and any character but digits and commas give -EINVAL; @refs is then
 * left partly written.
 */
int fivc_xrdv_parse_refs(const char *s, uint32_t *refs, uint32_t n);

void fivc_xrdv_data_init(struct fivc_xrdv_data *dd);
/* Add or replace. -EINVAL for a bad key, -E2BIG if full or too long. */
int fivc_xrdv_set(struct fivc_xrdv_data *dd, const char *key,
		  const char *value);
int fivc_xrdv_set_u32(struct fivc_xrdv_data *dd, const char *key,
		      uint32_t value);
/* The value of @key, or NULL if absent. */
const char *fivc_xrdv_get(const struct fivc_xrdv_data *dd, const char *key);
/* -ENOENT if absent, -EINVAL if not a strict decimal u32. */
int fivc_xrdv_get_u32(const struct fivc_xrdv_data *dd, const char *key,
		      uint32_t *out);

/*
 * Store a region's description as <prefix>-size and <prefix>-refs (the
 * grant domain is implied by the path). @prefix follows the key rules and
 * leaves room for the suffix.
 */
int fivc_xrdv_put_shm(struct fivc_xrdv_data *dd, const char *prefix,
		      const struct fivc_shm_desc *d);
/*
 * Rebuild it from data read under @peer's area, for a backend whose
 * domid is @self. @d->refs is allocated; release it with
 * fivc_shm_desc_clear(). The result has passed fivc_xen_check_shm_desc().
 */
int fivc_xrdv_take_shm(const struct fivc_xrdv_data *dd, const char *prefix,
		       uint32_t peer, uint32_t self, struct fivc_shm_desc *d);
/* An offered event channel as <prefix>-port. */
int fivc_xrdv_put_evch(struct fivc_xrdv_data *dd, const char *prefix,
		       const struct fivc_evch_desc *d);
int fivc_xrdv_take_evch(const struct fivc_xrdv_data *dd, const char *prefix,
			uint32_t peer, uint32_t self, struct fivc_evch_desc *d);

/*
 * Checks the Xen backend applies to every descriptor from a peer, for a
 * backend whose own domid is @self.
 *   domid: not @self, below FIVC_XEN_DOMID_FIRST_RESERVED.
 *   shm:   kind XEN; size a nonzero multiple of 4096; n_refs == size/4096
 *          and <= FIVC_SHM_MAX_PAGES; refs not NULL.
 *   evch:  kind XEN; port 1..FIVC_XEN_PORT_MAX.
 * 0 or -EINVAL.
 */
int fivc_xen_check_domid(uint32_t domid, uint32_t self);
int fivc_xen_check_shm_desc(const struct fivc_shm_desc *d, uint32_t self);
int fivc_xen_check_evch_desc(const struct fivc_evch_desc *d, uint32_t self);

/* --- xenstore ------------------------------------------------------------- */

struct xs_handle;

/* The Xen backend's xenstore handle; NULL if @be is not a Xen backend. */
struct xs_handle *fivc_xen_backend_xs(struct fivc_backend *be);

/*
 * Replace /local/domain/<self>/data/fastivc/<name>/ with @dd, readable by
 * @peer only, in one transaction. -EINVAL if @be is not a Xen backend or
 * an argument is bad, -EAGAIN if xenstored kept conflicting, else the
 * errno xenstored gave (e.g. -EACCES, -ENOSPC for a quota).
 */
int fivc_xrdv_publish(struct fivc_backend *be, uint32_t peer, const char *name,
		      const struct fivc_xrdv_data *dd);
/*
 * Read /local/domain/<peer>/data/fastivc/<name>/ into @dd, as one
 * consistent snapshot. -ENOENT if it is not published (yet), -EACCES if
 * the peer did not grant us read access, -EINVAL if it holds more than
 * FIVC_XRDV_MAX_KEYS keys, a bad key or an oversized value.
 */
int fivc_xrdv_read(struct fivc_backend *be, uint32_t peer, const char *name,
		   struct fivc_xrdv_data *dd);
/*
 * Read one number, /local/domain/<peer>/data/fastivc/<name>/<key>: one
 * xenstore request where fivc_xrdv_read() makes one per key and two for
 * its transaction. The errors of fivc_xrdv_read(); -EINVAL if the value
 * is not a number.
 */
int fivc_xrdv_read_u32(struct fivc_backend *be, uint32_t peer, const char *name,
		       const char *key, uint32_t *out);
/* Remove our directory <name>; 0 if it was not there. */
int fivc_xrdv_unpublish(struct fivc_backend *be, const char *name);

#endif /* FASTIVC_XEN_RENDEZVOUS_H */
