/*
 * wgd's STUN client (stun.c): the node's endpoints as the DERP map's STUN
 * servers see them, learned from wgd's own UDP socket, so the mapping is
 * the one peers must use (Go's netcheck sends through magicsock's sockets
 * for the same reason).  Binding requests (libs/stun, Go's net/stun form)
 * go to every IPv4 STUN address in the DERP map at a netmap change and then
 * every 20-26 s; a success matched by txid gives a mapped address.  The
 * endpoints are the distinct mappings answered in the last two rounds, the
 * most common first (Go: the report's main mapping, then others seen more
 * than once); several distinct mappings mean the NAT maps by destination
 * (netcheck's MappingVariesByDestIP).  Sans I/O: a sender is passed in.
 */
#ifndef WGDI_STUN_H
#define WGDI_STUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tk/bus_status.h"
#include "tk/clock.h"
#include "tk/wg.h"
#include "tk/bus/v1/ctrl.pb-c.h"

#define WGDI_STUN_MAX_SERVERS 16

typedef struct wgdi_stun wgdi_stun;
typedef void (*wgdi_stun_send_fn)(void *arg, const tk_wg_endpoint *ep,
    const uint8_t *p, size_t n);

int wgdi_stun_new(wgdi_stun **out, const tk_clock *clock);
void wgdi_stun_free(wgdi_stun *s);
/* The servers of a DERP map (IPv4 literals; STUN port 0 is 3478, -1
 * none); a changed list is probed at the next tick.  true if changed. */
bool wgdi_stun_set_map(wgdi_stun *s, const Tk__Bus__V1__DERPMap *m);
/* Sends what is due; returns the loop time of the next round. */
uint64_t wgdi_stun_tick(wgdi_stun *s, wgdi_stun_send_fn send, void *arg);
/* Does p look like STUN (magicsock's test: a binding message with the
 * magic cookie)? */
bool wgdi_stun_looks_like(const uint8_t *p, size_t n);
/* A STUN datagram from src: true if it answered one of our requests;
 * *changed if the endpoint list changed. */
bool wgdi_stun_rx(wgdi_stun *s, const tk_wg_endpoint *src, const uint8_t *p,
    size_t n, bool *changed);
/* The STUN-learned endpoints, most common first. */
size_t wgdi_stun_endpoints(wgdi_stun *s, tk_wg_endpoint *out, size_t cap);
void wgdi_stun_counters(const wgdi_stun *s, tk_status_counters *cs);

#endif
