/*
 * The cross-platform WireGuard userspace API (what wg(8) speaks over
 * /var/run/wireguard/<iface>.sock): "get=1" and "set=1" requests of
 * key=value lines ended by an empty line, answered with "errno=N".
 *
 * A set request is parsed and validated completely before anything is
 * applied: a bad line answers errno=22 (EINVAL) and changes nothing.
 */
#ifndef TK_WG_UAPI_H
#define TK_WG_UAPI_H

#include <stddef.h>
#include <stdint.h>

#include "tk/wg.h"

/* Interface-level settings the embedder owns (sockets). */
typedef struct tk_wg_uapi_iface {
	uint16_t listen_port;
	uint32_t fwmark;
	/* set by tk_wg_uapi_handle when a set changed them */
	int listen_port_changed, fwmark_changed;
} tk_wg_uapi_iface;

/* Largest request accepted (wg(8) sends one line per allowed IP). */
#define TK_WG_UAPI_MAX_REQUEST (4u << 20)

/*
 * Handles one complete request (`req`, n bytes, ending with "\n\n").
 * *resp gets a tk_malloc'd response ending with "\n\n" (free with
 * tk_free).  `why` (may be NULL) gets a human reason when errno != 0.
 * Returns the errno value sent (0 on success), or TK_ENOMEM as a negative
 * value when no response could be built.
 */
int tk_wg_uapi_handle(tk_wg_device *dev, tk_wg_uapi_iface *ifc,
    const char *req, size_t n, char **resp, size_t *resplen, char *why,
    size_t whylen);

/* Parses "1.2.3.4:5" / "[::1]:5" (numeric only).  0 or TK_EINVAL. */
int tk_wg_endpoint_parse(tk_wg_endpoint *ep, const char *s);
/* Formats into buf (>= 64 bytes). */
void tk_wg_endpoint_format(const tk_wg_endpoint *ep, char *buf, size_t cap);

#endif
