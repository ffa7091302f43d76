/* wgd's rpc "ping" (ping.c): probes to peers, answers by deferred reply. */
#ifndef WGDI_PING_H
#define WGDI_PING_H

#include "wgd_int.h"

#include "tk/disco.h"

typedef struct wgdi_ping wgdi_ping;
struct wgdi_netmap;
struct wgdi_disco;

/* Registers TK_METHOD_PING on rpc; nm gives the node's own addresses,
 * dc sends disco pings. */
int wgdi_ping_new(wgdi_ping **out, wgd *w, const struct wgdi_netmap *nm,
    struct wgdi_disco *dc, tk_rpc_server *rpc);
/* Answers what is pending ("wgd is stopping"); before freeing rpc. */
void wgdi_ping_free(wgdi_ping *pp);
/* An inbound decrypted packet: true if it was the answer to a pending
 * probe, or a malformed TSMP pong: consumed. */
bool wgdi_ping_consume(wgdi_ping *pp, const uint8_t *p, size_t n);
/* A disco Pong from node_key via DERP region: true if it answered a
 * pending disco ping (same txid, same peer). */
bool wgdi_ping_disco_pong(wgdi_ping *pp, const uint8_t node_key[32],
    uint16_t region, const tk_disco_msg *m);
void wgdi_ping_counters(const wgdi_ping *pp, tk_status_counters *cs);

#endif
