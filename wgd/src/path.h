/*
 * wgd's path selection (path.c): which way a WireGuard datagram to a peer
 * goes, direct UDP or DERP, decided as Go's magicsock decides it
 * (wgengine/magicsock/endpoint.go at v1.102.3; constants and rules in
 * dataplane-protocols.md C.6):
 *
 *  - candidates: the peer's netmap endpoints, the endpoints of its last
 *    CallMeMaybe (over DERP), and the sources of disco Pings it sent us
 *    over UDP (forgotten 45 s after the last one);
 *  - a disco Ping to every candidate not pinged in the last 5 s, with a
 *    CallMeMaybe over DERP listing our endpoints when one went out, while
 *    no direct path is trusted; a heartbeat Ping to the best address every
 *    3 s while we send to the peer (45 s);
 *  - a Pong adopts the address the Ping was sent to if it is better
 *    (latency, then loopback/link-local/private/IPv6 bonuses, with
 *    hysteresis), and trusts it alone for 6.5 s;
 *  - sending: the trusted best address alone; else the best address (if
 *    any) and DERP (the peer's home region);
 *  - a Ping to the best address unanswered for 5 s once trust has expired
 *    clears it: DERP again.
 * It applies to peers with a disco key and a home DERP region while wgd has
 * a DERP path (derpd); other peers keep WireGuard's endpoint and roaming.
 */
#ifndef WGDI_PATH_H
#define WGDI_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tk/bus_status.h"
#include "tk/disco.h"
#include "tk/wg.h"

#include "path_state.h"

typedef struct wgdi_paths wgdi_paths;
typedef struct wgdi_disco wgdi_disco;

typedef struct wgdi_paths_io {
	/* a disco datagram to a UDP endpoint from wgd's socket */
	void (*send_udp)(void *arg, const tk_wg_endpoint *ep, const uint8_t *p,
	    size_t n);
	/* our endpoints for a CallMeMaybe; how many written */
	size_t (*my_endpoints)(void *arg, tk_wg_endpoint *out, size_t cap);
	/* optional: the peer's path changed (direct adopted, fell back) */
	void (*changed)(void *arg, tk_wg_peer *peer);
	void *arg;
} wgdi_paths_io;

/* betterAddr: does a (latency la) beat b (lb)? */
bool wgdi_path_better(const tk_wg_endpoint *a, uint64_t la,
    const tk_wg_endpoint *b, uint64_t lb);

int wgdi_paths_new(wgdi_paths **out, tk_wg_device *dev, wgdi_disco *dc,
    const tk_clock *clock, const wgdi_paths_io *io);
void wgdi_paths_free(wgdi_paths *ps);
/*
 * Where a datagram to peer goes.  false: the peer is not under path
 * selection (no disco key or no home region, or no DERP path): use the
 * WireGuard endpoint.  true: *udp (family 0: none) and *derp_region (0:
 * none) say where; both may be set.
 */
bool wgdi_paths_route(wgdi_paths *ps, tk_wg_peer *peer, bool have_derp,
    tk_wg_endpoint *udp, uint16_t *derp_region);
/* TS_DEBUG_ALWAYS_USE_DERP: route sends every datagram to a peer under
 * path selection through its home DERP region, never over UDP. */
void wgdi_paths_set_derp_only(wgdi_paths *ps, bool on);
/* Timers: pings out, heartbeats, timeouts.  Returns the loop time of the
 * next thing to do (0: nothing pending). */
uint64_t wgdi_paths_tick(wgdi_paths *ps, bool have_derp);
/* true if a send asked for discovery since the last tick */
bool wgdi_paths_kicked(const wgdi_paths *ps);
/* Disco from the peer that arrived over UDP from src (disco.c opened it).
 * udp_ping: false for a duplicate (same txid from the same endpoint),
 * which gets no Pong. */
bool wgdi_paths_udp_ping(wgdi_paths *ps, tk_wg_peer *peer,
    const tk_wg_endpoint *src, const tk_disco_msg *m);
void wgdi_paths_udp_pong(wgdi_paths *ps, tk_wg_peer *peer,
    const tk_wg_endpoint *src, const tk_disco_msg *m);
/* A CallMeMaybe over DERP: its endpoints replace the previous ones and all
 * candidates are pinged now. */
void wgdi_paths_cmm(wgdi_paths *ps, tk_wg_peer *peer, const tk_disco_msg *m,
    bool have_derp);
/* The peer's path as status shows it: false if not under path selection;
 * else *cur (the trusted direct address, or the DERP pseudo-address) and
 * *relay_region (0 when direct). */
bool wgdi_paths_status(wgdi_paths *ps, tk_wg_peer *peer, bool have_derp,
    tk_wg_endpoint *cur, uint16_t *relay_region);
/* A peer's path for the "paths" topic. */
typedef struct wgdi_path_info {
	bool managed;	     /* under path selection */
	bool direct;	     /* a trusted direct address */
	tk_wg_endpoint best; /* family 0: none (may be set, untrusted) */
	uint64_t lat_ns;
	uint64_t trust_left_ns; /* 0: not trusted */
	uint16_t region;     /* DERP region used while not direct */
} wgdi_path_info;
void wgdi_paths_info(wgdi_paths *ps, tk_wg_peer *peer, bool have_derp,
    wgdi_path_info *out);
void wgdi_paths_counters(const wgdi_paths *ps, tk_status_counters *cs);

#endif
