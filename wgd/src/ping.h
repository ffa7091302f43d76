/* wgd's rpc "ping" (ping.c): probes to peers, answers by deferred reply. */
#ifndef WGDI_PING_H
#define WGDI_PING_H

#include "wgd_int.h"

typedef struct wgdi_ping wgdi_ping;
struct wgdi_netmap;

/* Registers TK_METHOD_PING on rpc; nm gives the node's own addresses. */
int wgdi_ping_new(wgdi_ping **out, wgd *w, const struct wgdi_netmap *nm,
    tk_rpc_server *rpc);
/* Answers what is pending ("wgd is stopping"); before freeing rpc. */
void wgdi_ping_free(wgdi_ping *pp);
/* An inbound decrypted packet: true if it was the answer to a pending
 * probe, or a malformed TSMP pong: consumed. */
bool wgdi_ping_consume(wgdi_ping *pp, const uint8_t *p, size_t n);
void wgdi_ping_counters(const wgdi_ping *pp, tk_status_counters *cs);

#endif
