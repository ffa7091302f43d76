/*
 * WireGuard receive-side anti-replay window (RFC 6479 style).
 *
 * A ring of TK_WG_REPLAY_BLOCKS 64-bit words = 8192 bits, of which
 * TK_WG_REPLAY_WINDOW = 8192 - 64 = 8128 counters behind the highest one
 * seen are tracked (the same usable window as wireguard-go and Linux).
 *
 * Counters >= TK_WG_REJECT_AFTER_MESSAGES are always rejected.  The check
 * is done only AFTER the packet authenticated: callers must not feed
 * unauthenticated counters (they would move the window).
 */
#ifndef TK_WG_REPLAY_H
#define TK_WG_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#define TK_WG_REPLAY_BLOCKS 128u
#define TK_WG_REPLAY_WINDOW ((TK_WG_REPLAY_BLOCKS - 1u) * 64u) /* 8128 */
/* 2^64 - 2^13 - 1 */
#define TK_WG_REJECT_AFTER_MESSAGES (UINT64_MAX - 8192u)

typedef struct tk_wg_replay {
	uint64_t rp_last;  /* highest counter accepted + 1 (0: none yet) */
	uint64_t rp_bits[TK_WG_REPLAY_BLOCKS];
} tk_wg_replay;

void tk_wg_replay_init(tk_wg_replay *r);
/*
 * Returns true and records the counter if it is new and inside the window;
 * false (and changes nothing) if it was seen, is too old, or is
 * >= TK_WG_REJECT_AFTER_MESSAGES.
 */
bool tk_wg_replay_check(tk_wg_replay *r, uint64_t counter);

#endif
