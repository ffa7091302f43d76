/*
 * WireGuard wire constants: message types, sizes and protocol timers, named
 * as the whitepaper (§5.4, §6) and wireguard-go's device/constants.go name
 * them.  tk/wg.h (the device API) includes this.
 */
#ifndef TK_WG_WIRE_H
#define TK_WG_WIRE_H

#include "tk/clock.h"

/* Message types and sizes (little-endian header: type, 3 zero bytes). */
#define TK_WG_MSG_INITIATION 1
#define TK_WG_MSG_RESPONSE   2
#define TK_WG_MSG_COOKIE     3
#define TK_WG_MSG_DATA	     4
#define TK_WG_INITIATION_LEN 148
#define TK_WG_RESPONSE_LEN   92
#define TK_WG_COOKIE_LEN     64
#define TK_WG_DATA_HDR_LEN   16
#define TK_WG_DATA_MIN_LEN   32 /* header + tag: a keepalive */
#define TK_WG_PADDING	     16
/* Largest inner packet we carry (a datagram of 65535 - header - tag). */
#define TK_WG_MAX_INNER	     (65535 - 32 - 16)
/* Worst-case outer size for an inner packet of n bytes. */
#define TK_WG_DATA_LEN(n) \
	(TK_WG_DATA_HDR_LEN + ((((n) + TK_WG_PADDING - 1) / TK_WG_PADDING) * TK_WG_PADDING) + 16)

/* Protocol constants (whitepaper §6, wireguard-go device/constants.go). */
#define TK_WG_REKEY_AFTER_MESSAGES  (1ull << 60)
#define TK_WG_REKEY_AFTER_TIME	    (120ull * TK_NSEC_PER_SEC)
#define TK_WG_REJECT_AFTER_TIME	    (180ull * TK_NSEC_PER_SEC)
#define TK_WG_REKEY_ATTEMPT_TIME    (90ull * TK_NSEC_PER_SEC)
#define TK_WG_REKEY_TIMEOUT	    (5ull * TK_NSEC_PER_SEC)
#define TK_WG_REKEY_JITTER_MAX	    (334ull * TK_NSEC_PER_MSEC)
#define TK_WG_KEEPALIVE_TIMEOUT	    (10ull * TK_NSEC_PER_SEC)
#define TK_WG_COOKIE_REFRESH_TIME   (120ull * TK_NSEC_PER_SEC)
#define TK_WG_HANDSHAKE_MIN_GAP	    (20ull * TK_NSEC_PER_MSEC) /* 50/s */
#define TK_WG_MAX_TIMER_HANDSHAKES  18 /* 90 s / 5 s */
#define TK_WG_MAX_STAGED	    128
#define TK_WG_UNDER_LOAD_HOLD	    (1ull * TK_NSEC_PER_SEC)

#endif
