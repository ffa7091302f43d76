/*
 * Anti-replay window (RFC 6479): a ring of TK_WG_REPLAY_BLOCKS 64-bit words;
 * counter c lives in bit c % 64 of word (c / 64) % TK_WG_REPLAY_BLOCKS.
 *
 * With h the highest counter accepted so far, c is accepted iff
 *
 *	c < TK_WG_REJECT_AFTER_MESSAGES, c was not accepted before, and
 *	c > h or h - c <= TK_WG_REPLAY_WINDOW (that is, c + 8128 >= h),
 *
 * the rule of Linux (counter_validate) and wireguard-go (ValidateCounter):
 * 8129 counters, h - 8128 .. h, are tracked.  They fall in exactly 128
 * distinct words (h - 8128 is in the word 127 below h's), so a ring slot
 * never holds bits of two different live words.
 *
 * rp_last is h + 1, so 0 means "nothing accepted yet" and a fresh (zeroed)
 * state accepts counter 0.  A rejected counter leaves the state unchanged.
 */
#include <string.h>

#include "tk/wg_replay.h"

#define WORD_BITS 64u
#define RING_MASK ((uint64_t)TK_WG_REPLAY_BLOCKS - 1u)

_Static_assert((TK_WG_REPLAY_BLOCKS & (TK_WG_REPLAY_BLOCKS - 1u)) == 0,
    "ring size must be a power of two");
_Static_assert(TK_WG_REPLAY_WINDOW == 8128u, "window as in wireguard-go");

void
tk_wg_replay_init(tk_wg_replay *r)
{
	memset(r, 0, sizeof(*r));
}

/*
 * Moves the top of the window to counter c (> every counter seen): clears
 * the ring words strictly after the current top word, up to c's word.
 */
static void
advance(tk_wg_replay *r, uint64_t c)
{
	uint64_t to = c / WORD_BITS;

	if (r->rp_last == 0) {
		/* nothing accepted yet: no bit in the ring can be live */
		memset(r->rp_bits, 0, sizeof(r->rp_bits));
	} else {
		uint64_t from = (r->rp_last - 1) / WORD_BITS;
		uint64_t n = to - from;

		if (n > TK_WG_REPLAY_BLOCKS)
			n = TK_WG_REPLAY_BLOCKS; /* all of it, once */
		for (uint64_t i = 1; i <= n; i++)
			r->rp_bits[(from + i) & RING_MASK] = 0;
	}
	r->rp_last = c + 1;
}

bool
tk_wg_replay_check(tk_wg_replay *r, uint64_t counter)
{
	uint64_t bit, *word;

	if (counter >= TK_WG_REJECT_AFTER_MESSAGES)
		return false;
	/* counter + 1 cannot overflow: counter < UINT64_MAX - 8192 */
	if (counter + 1 > r->rp_last) {
		/* ahead of everything: always new, since advance() clears */
		advance(r, counter);
	} else if (r->rp_last - 1 - counter > TK_WG_REPLAY_WINDOW) {
		return false; /* too far behind the highest */
	}
	bit = (uint64_t)1 << (counter % WORD_BITS);
	word = &r->rp_bits[(counter / WORD_BITS) & RING_MASK];
	if (*word & bit)
		return false; /* replay (only possible when not advancing) */
	*word |= bit;
	return true;
}
