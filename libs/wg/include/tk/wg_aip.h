/*
 * WireGuard allowed-IPs: a longest-prefix-match table from IPv4/IPv6
 * prefixes to an opaque peer pointer, as a binary (path-compressed) trie.
 *
 * - tk_wg_aip_insert replaces the peer of an existing identical prefix
 *   (WireGuard semantics: a prefix belongs to one peer only).
 * - Host bits beyond the prefix length are ignored (masked off).
 * - Lookup is by a raw address (4 or 16 bytes, network order).
 * - Memory goes through tk_malloc/tk_free (fault injection applies).
 */
#ifndef TK_WG_AIP_H
#define TK_WG_AIP_H

#include <stddef.h>
#include <stdint.h>

typedef struct tk_wg_aip tk_wg_aip;

int tk_wg_aip_new(tk_wg_aip **out);
void tk_wg_aip_free(tk_wg_aip *t);

/* family: 4 or 6.  addr: 4 or 16 bytes.  TK_EINVAL for a bad family/bits. */
int tk_wg_aip_insert(tk_wg_aip *t, int family, const uint8_t *addr,
    unsigned bits, void *peer);
/* Removes exactly this prefix; TK_ENOENT if absent. */
int tk_wg_aip_remove(tk_wg_aip *t, int family, const uint8_t *addr,
    unsigned bits);
/* Removes every prefix that maps to peer; returns how many. */
size_t tk_wg_aip_remove_peer(tk_wg_aip *t, void *peer);
/* Longest match, or NULL. */
void *tk_wg_aip_lookup(const tk_wg_aip *t, int family, const uint8_t *addr);

/* Visits every prefix of `peer` (or all when peer is NULL), in no order. */
typedef void (*tk_wg_aip_visit_fn)(void *arg, int family, const uint8_t *addr,
    unsigned bits, void *peer);
void tk_wg_aip_walk(const tk_wg_aip *t, void *peer, tk_wg_aip_visit_fn fn,
    void *arg);
size_t tk_wg_aip_count(const tk_wg_aip *t);

#endif
