/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Co-residency from a trusted source. dom0 lists the addresses of each
 * running domU in xenstore, one node per domain:
 *
 *   /local/domain/0/data/fastivc/coresident/<domid> = "10.0.0.1,fd00::1"
 *
 * The directory and every node are owned by dom0 with read for every other
 * domain (xenstore-chmod PATH r0): domUs can read and watch them, never
 * write them. `fastivc dom0` writes them (agent/cmd_dom0.c); an agent with
 * `coresident = xenstore` watches the directory and keeps its peers map
 * equal to it, one /32 or /128 per address, less its own domain
 * (agent/coresident.c). Nothing a domU writes anywhere is read.
 *
 * A value is a comma-separated list of 1..CORES_MAX_ADDRS host addresses
 * (IPv4 or IPv6, no prefix length), as cores_format_addrs() writes them.
 */
#ifndef FASTIVC_CORESIDENT_H
#define FASTIVC_CORESIDENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fastivc/bpf_abi.h"

#define CORES_DIR "/local/domain/0/data/fastivc/coresident"
#define CORES_MAX_ADDRS 16u
/* 16 IPv6 addresses of at most 39 characters, commas, NUL. */
#define CORES_VALUE_MAX 1024u

/* One address of one domain: a peers map entry. */
struct cores_entry {
	struct fivc_peer_key key;
	uint32_t domid;
};

/* A growable list of entries; cores_set_sort() orders it by key. */
struct cores_set {
	struct cores_entry *e;
	uint32_t n, cap;
};

/* --- pure (agent/cores_list.c) -------------------------------------------- */

/*
 * Parse "A[,A...]" into at most @max host keys (/32 or /128). Returns the
 * count, or -EINVAL for an empty list or element, a prefix length, a bad
 * address or more than @max.
 */
int cores_parse_addrs(const char *s, struct fivc_peer_key *out,
		      unsigned int max);
/* The inverse: a length, -EINVAL for @n of 0, -E2BIG if @len is short. */
int cores_format_addrs(const struct fivc_peer_key *k, unsigned int n, char *buf,
		       size_t len);

/* Add one entry; -ENOMEM, or -E2BIG beyond FIVC_MAX_PEERS entries. */
int cores_set_add(struct cores_set *s, const struct fivc_peer_key *k,
		  uint32_t domid);
/*
 * Sort by key and make keys unique: an address that two domains claim is
 * dropped (it stays on plain TCP). Returns how many addresses were dropped.
 */
uint32_t cores_set_sort(struct cores_set *s);
void cores_set_free(struct cores_set *s);

/*
 * Walk two sorted sets: @fn(ctx, e, true) for each key of @old that @new
 * lacks, @fn(ctx, e, false) for each entry of @new that @old lacks or maps
 * to another domain. Returns the number of calls.
 */
uint32_t cores_diff(const struct cores_set *old, const struct cores_set *new,
		    void (*fn)(void *ctx, const struct cores_entry *e,
			       bool del),
		    void *ctx);

/* --- xenstore (agent/cores_xs.c) ------------------------------------------ */

struct xs_handle;

/* xs_open(0), or NULL after one error line that says why. */
struct xs_handle *cores_xs_open(void);
/* dom0: write @value (checked by the caller) as <domid>'s node. */
int cores_xs_publish(struct xs_handle *xs, uint32_t domid, const char *value);
/* dom0: remove <domid>'s node; 0 if it was not there. */
int cores_xs_remove(struct xs_handle *xs, uint32_t domid);
/*
 * Read the directory, as one snapshot, into @out (sorted, unique keys),
 * leaving out domain @self. An absent directory is an empty list; a node
 * that is not a domid with a valid list is skipped with a warning.
 */
int cores_xs_read(struct xs_handle *xs, uint32_t self, struct cores_set *out);

#endif /* FASTIVC_CORESIDENT_H */
