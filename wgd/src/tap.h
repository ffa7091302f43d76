/*
 * wgd's packet tap (rpc "pkt_tap", tap.c): summaries of the IP packets on
 * the packet bus, kept in a ring only while someone asks (a call keeps it
 * on for 5 s), for `tailkit debug bus --pkt wgd-pkt`.
 */
#ifndef WGDI_TAP_H
#define WGDI_TAP_H

#include "wgd_int.h"

typedef struct wgdi_tap wgdi_tap;

int wgdi_tap_new(wgdi_tap **out, wgd *w, tk_rpc_server *rpc);
void wgdi_tap_free(wgdi_tap *t);
/* One packet on the packet bus (inbound: to the stack).  Cheap when off. */
void wgdi_tap_note(wgdi_tap *t, bool inbound, const uint8_t *p, size_t n);

#endif
