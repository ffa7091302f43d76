/*
 * Anti-replay window: a ring of 64-bit words indexed by counter / 64.  The
 * newest word is never fully usable, which is why the window is
 * (blocks - 1) * 64 counters.
 */
#include <string.h>

#include "tk/wg_replay.h"

#define WORD_BITS 64u
#define RING_MASK (TK_WG_REPLAY_BLOCKS - 1u)

void
tk_wg_replay_init(tk_wg_replay *r)
{
	memset(r, 0, sizeof(*r));
}

bool
tk_wg_replay_check(tk_wg_replay *r, uint64_t counter)
{
	if (counter >= TK_WG_REJECT_AFTER_MESSAGES)
		return false;
	uint64_t next = counter + 1; /* compare in "+1" space: 0 = empty */
	uint64_t word = counter / WORD_BITS;

	if (next > r->rp_last) {
		/* moves the window forward: clear the words we skip over */
		uint64_t top = r->rp_last ? (r->rp_last - 1) / WORD_BITS : 0;
		uint64_t gap = r->rp_last ? word - top : word + 1;
		if (gap > TK_WG_REPLAY_BLOCKS)
			gap = TK_WG_REPLAY_BLOCKS;
		for (uint64_t i = 1; i <= gap; i++)
			r->rp_bits[(top + i) & RING_MASK] = 0;
		if (r->rp_last == 0)
			r->rp_bits[word & RING_MASK] = 0;
		r->rp_last = next;
	} else if (r->rp_last - next >= TK_WG_REPLAY_WINDOW) {
		return false; /* too old */
	}
	uint64_t bit = 1ull << (counter & (WORD_BITS - 1));
	uint64_t *w = &r->rp_bits[word & RING_MASK];
	if (*w & bit)
		return false;
	*w |= bit;
	return true;
}
