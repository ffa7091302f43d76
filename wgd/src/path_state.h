/*
 * The per-peer state of path selection (path.h), kept in each peer's
 * wgdi_peer_rec (netmap.h); depends on tk/wg.h only.
 */
#ifndef WGDI_PATH_STATE_H
#define WGDI_PATH_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tk/wg.h"

#define WGDI_PATH_HEARTBEAT_NS	  (3ull * 1000000000ull)
#define WGDI_PATH_TRUST_NS	  (6500ull * 1000000ull)
#define WGDI_PATH_ACTIVE_NS	  (45ull * 1000000000ull)
#define WGDI_PATH_PING_TIMEOUT_NS (5ull * 1000000000ull)
#define WGDI_PATH_PING_GAP_NS	  (5ull * 1000000000ull)
#define WGDI_PATH_UPGRADE_NS	  (60ull * 1000000000ull)
#define WGDI_PATH_GOOD_LAT_NS	  (5ull * 1000000ull)
#define WGDI_PATH_MAX_CANDS	  24
#define WGDI_PATH_MAX_PINGS	  64

/* where a candidate came from (bits) */
#define WGDI_CAND_NETMAP 1u
#define WGDI_CAND_CMM	 2u
#define WGDI_CAND_PING	 4u

typedef struct wgdi_cand {
	tk_wg_endpoint ep;
	uint8_t from;
	bool has_txid;
	uint8_t last_txid[12]; /* of its last Ping to us (a disco txid) */
	uint64_t last_ping;  /* we pinged it (loop ns); 0: never */
	uint64_t heard;	     /* its last Ping to us */
} wgdi_cand;

/* Per peer, in its wgdi_peer_rec. */
typedef struct wgdi_path {
	tk_wg_endpoint best; /* family 0: none */
	uint64_t best_lat;   /* ns */
	uint64_t trust_until, last_send, last_heartbeat, last_full;
	uint8_t ncand;
	wgdi_cand cand[WGDI_PATH_MAX_CANDS];
} wgdi_path;

/* Replaces the candidates from `from` with eps[0..n) (IPv6 link-local
 * skipped for CallMeMaybe, as Go does). */
void wgdi_path_set_cands(wgdi_path *pt, uint8_t from,
    const tk_wg_endpoint *eps, size_t n);
/* The index of ep among the candidates, added (no source yet) if new; -1
 * if the list is full. */
int wgdi_path_cand_add(wgdi_path *pt, const tk_wg_endpoint *ep);
/* Same family, address and port (path_cands.c; wgd's one endpoint
 * comparison). */
bool wgdi_ep_eq(const tk_wg_endpoint *a, const tk_wg_endpoint *b);
/* Drops candidates no source lists any more. */
void wgdi_path_cands_compact(wgdi_path *pt);

#endif
