/*
 * wgd's view of the netmap (netmap.c): applies Netmap snapshots and
 * NetmapDelta deltas (proto/tk/bus/v1/ctrl.proto) to a tk_wg device and its
 * packet filter.  Undecodable input changes nothing and is counted.
 */
#ifndef WGD_NETMAP_H
#define WGD_NETMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tk/wg.h"
#include "tk/wg_filter.h"
#include "path_state.h"
#include "tk/bus/v1/ctrl.pb-c.h"

/* What wgd remembers of a peer that came from the netmap. */
#define WGDI_MAX_ADDRS 8

typedef struct wgdi_peer_rec {
	int64_t id;
	unsigned gen;	   /* last snapshot that listed it */
	tk_wg_endpoint ep; /* the endpoint the netmap gave last */
	int32_t home_derp; /* Node.home_derp (0: none) */
	/* Node.disco_key: who may send it disco (disco.c) */
	bool has_disco;
	uint8_t disco[32];
	/* the endpoints of its last CallMeMaybe (over DERP), as status
	 * shows them (path.candidates has them too) */
	uint8_t ncmm;
	uint8_t cmm[WGDI_MAX_ADDRS][18];
	/* direct-path state (path.c): candidates, best address, timers */
	wgdi_path path;
	/* Node.addresses (its own tailnet IPs, for "cap:" sources) */
	uint8_t naddrs;
	uint8_t addr_len[WGDI_MAX_ADDRS]; /* 4 or 16 */
	uint8_t addr[WGDI_MAX_ADDRS][16];
	/* the names of its CapMap (not the legacy Capabilities), one
	 * allocation */
	char **caps;
	size_t ncaps;
	bool unsigned_only; /* Node.unsigned_peer_api_only: no caps count */
	bool jailed; /* Node.is_jailed: shields up for its packets */
} wgdi_peer_rec;

typedef struct wgdi_netmap {
	tk_wg_device *dev;
	/* optional: the DERP map of a snapshot, or of a delta that has one
	 * (wgd's STUN client takes its servers from it) */
	void (*derp_map_cb)(void *arg, const Tk__Bus__V1__DERPMap *m);
	void *derp_map_arg;
	tk_wg_filter *filter; /* NULL: no filtering */
	unsigned gen;	      /* snapshot generation */
	bool filter_set;      /* rules were set at least once */
	/* a DERP path exists (derpd bus): peers with a home region are
	 * reached through it, as magicsock does before disco confirms a
	 * direct path */
	bool derp;
	uint64_t bad;	      /* undecodable messages, unreadable filter entries */
	uint64_t peers_bad;   /* unusable peer records skipped */
	uint64_t snapshots, deltas;
	size_t njailed;	      /* peers with is_jailed, after each apply */
	/* the node's own addresses (Netmap.self), for the endpoint scan:
	 * the interface holding them is the node's tunnel */
	uint8_t nself;
	uint8_t self_len[WGDI_MAX_ADDRS];
	uint8_t self_addr[WGDI_MAX_ADDRS][16];
	bool self_changed;    /* set by an apply, cleared by the reader */
	/* exit and subnet routes left out of WireGuard (no exit node
	 * selected, routes not accepted), expired peer records skipped */
	uint64_t routes_skipped, peers_expired;
} wgdi_netmap;

/* 0, TK_EPROTO (undecodable: resync), or TK_ENOMEM. */
int wgdi_netmap_snapshot(wgdi_netmap *nm, const uint8_t *body, size_t len);
int wgdi_netmap_delta(wgdi_netmap *nm, const uint8_t *body, size_t len);
/*
 * tk_wg_filter_cap_fn for "cap:<name>" sources: does the peer whose
 * tailnet address is src have capability cap?  arg is the wgdi_netmap.
 */
bool wgdi_netmap_has_cap(void *arg, int family, const uint8_t *src,
    const char *cap);
/*
 * Is the peer that owns inbound source address src (the one the device
 * checked it against) jailed?  Cheap when no peer is.
 */
bool wgdi_netmap_src_jailed(const wgdi_netmap *nm, int family,
    const uint8_t *src);
/* tsaddr.IsTailscaleIP: 100.64.0.0/10 (not 100.115.92.0/23), or
 * fd7a:115c:a1e0::/48; family 4 (4 bytes) or 6 (16 bytes). */
bool wgdi_is_tailscale_ip(int family, const uint8_t *addr);
/* Drops the per-peer records (before the device is freed). */
void wgdi_netmap_forget(wgdi_netmap *nm);

#endif
