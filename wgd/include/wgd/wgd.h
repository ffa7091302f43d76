/*
 * wgd: the node's WireGuard engine as an instance (ARCHITECTURE.md
 * "Components").  The daemon's main.c, tailkitd and the tests all drive it
 * through this API; nothing else of wgd is public.
 *
 * One instance owns one tk_wg device, one dual-stack UDP socket, its own
 * event-loop thread, and optionally:
 *
 *   tun_name    a Linux TUN device: decrypted packets go to the kernel
 *               (standalone WireGuard, like wireguard-go);
 *   pkt_url     the packet bus to netstackd or the tk-tun adapter (wgd
 *               listens; batches of IP packets both ways);
 *   uapi_dir    the wg(8) UAPI socket <uapi_dir>/<uapi_name>.sock;
 *   state_dir   sqlite state: the node private key, the disco private key
 *               and the listen port survive restarts;
 *   pub_url +   wgd's control-bus publisher ("keys", "endpoints") and its
 *   rpc_url     req/rep server ("status", "tk.snapshot");
 *   ctrld_pub_url + ctrld_rpc_url
 *               where ctrld publishes: wgd follows the "netmap" topic
 *               (peers as deltas, the packet filter, its own addresses).
 *
 * tun_name and pkt_url exclude each other: the decrypted side goes to one
 * place.  With ctrld configured, inbound packets pass the netmap's packet
 * filter (deny-all until one arrives); without it (standalone WireGuard)
 * there is no filter, as with wireguard-go.
 */
#ifndef WGD_WGD_H
#define WGD_WGD_H

#include <stddef.h>
#include <stdint.h>

#include "tk/bus.h"

typedef struct wgd wgd;

typedef struct wgd_config {
	const char *tun_name;
	const char *uapi_dir;
	const char *uapi_name; /* NULL: tun_name, else "wgd" */
	int mtu;	       /* 576..65535; 0: 1420 */
	int batch;	       /* datagrams per recvmmsg/sendmmsg, 1..128; 0: 64 */
	uint16_t listen_port;  /* 0: the stored one, else random */
	const char *state_dir;
	const char *pub_url, *rpc_url;
	const char *ctrld_pub_url, *ctrld_rpc_url;
	const char *pkt_url;
	/* packet bus to derpd (BATCH_KIND_PEER): tailnet peers with a home
	 * DERP region are reached through it (wgd listens) */
	const char *derp_url;
	const tk_bus_tls *tls; /* for tls+tcp:// bus URLs */
} wgd_config;

/*
 * Checks the configuration, opens the state, sockets and devices.  On
 * error `err` (may be NULL) gets one line saying what was wrong and what is
 * accepted.  Strings in cfg are copied.
 */
int wgd_new(wgd **out, const wgd_config *cfg, char *err, size_t errlen);
/* Starts the loop thread. */
int wgd_start(wgd *w);
/* Stops and joins the loop thread (no-op when not started).  Any thread. */
void wgd_stop(wgd *w);
/* Stops if needed and frees everything.  NULL is a no-op. */
void wgd_free(wgd *w);
/* The UDP port in use (after wgd_new). */
uint16_t wgd_listen_port(const wgd *w);

#endif
