/*
 * Shared by ctrld's tailcfg decoder (tailcfg_decode.c) and its node
 * encoding and diffing (node_diff.c).
 */
#ifndef CTRLD_TAILCFG_INT_H
#define CTRLD_TAILCFG_INT_H

#include <stdbool.h>
#include <string.h>

#include "tk/netaddr.h"
#include "mapstate.h"

static inline bool
ctrldi_str_eq(ctrldi_str a, ctrldi_str b)
{
	return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* Byte order, shorter first on a tie (Go's string comparison). */
static inline int
ctrldi_str_cmp(ctrldi_str a, ctrldi_str b)
{
	int r = memcmp(a.p, b.p, a.n < b.n ? a.n : b.n);

	if (r != 0)
		return r;
	return a.n < b.n ? -1 : a.n > b.n;
}

/* Whether two prefix lists are equal, element by element. */
static inline bool
ctrldi_prefixes_eq(const tk_ipprefix *a, uint32_t na, const tk_ipprefix *b,
    uint32_t nb)
{
	if (na != nb)
		return false;
	for (uint32_t i = 0; i < na; i++)
		if (a[i].ip.family != b[i].ip.family || a[i].bits != b[i].bits ||
		    memcmp(a[i].ip.addr, b[i].ip.addr, 16) != 0)
			return false;
	return true;
}

/* A tk.bus.v1.CapMapEntry as field `field`. */
void ctrldi_capent_encode(ctrldi_pbw *w, unsigned field,
    const ctrldi_capent *e);

#endif
