/* Direct-path candidates of a peer (path_state.h): no I/O, no disco. */
#include <string.h>

#include "path_state.h"

bool
wgdi_ep_eq(const tk_wg_endpoint *a, const tk_wg_endpoint *b)
{
	return a->ep_family == b->ep_family && a->ep_port == b->ep_port &&
	    memcmp(a->ep_addr, b->ep_addr, a->ep_family == 4 ? 4 : 16) == 0;
}

static bool
v6_link_local(const tk_wg_endpoint *e)
{
	return e->ep_family == 6 && e->ep_addr[0] == 0xfe &&
	    (e->ep_addr[1] & 0xc0) == 0x80;
}

/* The index of ep among the candidates, added (no source yet) if new;
 * -1 if the list is full. */
int
wgdi_path_cand_add(wgdi_path *pt, const tk_wg_endpoint *ep)
{
	size_t j;

	for (j = 0; j < pt->ncand; j++)
		if (wgdi_ep_eq(&pt->cand[j].ep, ep))
			return (int)j;
	if (pt->ncand == WGDI_PATH_MAX_CANDS)
		return -1;
	memset(&pt->cand[j], 0, sizeof(pt->cand[j]));
	pt->cand[j].ep = *ep;
	pt->ncand++;
	return (int)j;
}

/* Drops candidates no source lists any more. */
void
wgdi_path_cands_compact(wgdi_path *pt)
{
	size_t k = 0;

	for (size_t i = 0; i < pt->ncand; i++)
		if (pt->cand[i].from != 0)
			pt->cand[k++] = pt->cand[i];
	pt->ncand = (uint8_t)k;
}

void
wgdi_path_set_cands(wgdi_path *pt, uint8_t from, const tk_wg_endpoint *eps,
    size_t n)
{
	for (size_t i = 0; i < pt->ncand; i++)
		pt->cand[i].from &= (uint8_t)~from;
	for (size_t i = 0; i < n; i++) {
		int j;
		if (eps[i].ep_family == 0 || eps[i].ep_port == 0 ||
		    (from == WGDI_CAND_CMM && v6_link_local(&eps[i])) ||
		    tk_wg_endpoint_is_derp(&eps[i]))
			continue;
		if ((j = wgdi_path_cand_add(pt, &eps[i])) >= 0)
			pt->cand[j].from |= from;
	}
	wgdi_path_cands_compact(pt);
}
