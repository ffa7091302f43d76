/*
 * wgd's disco over DERP (disco.c, issue 15 first step): receive rules,
 * Pong answers and Ping sending, without I/O of its own (the bus gives it
 * a sender and a pong matcher, so unit tests drive it with crafted
 * packets).  Direct UDP paths, STUN and path selection are not done.
 */
#ifndef WGDI_DISCO_H
#define WGDI_DISCO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tk/bus_status.h"
#include "tk/derp_wire.h"
#include "tk/disco.h"
#include "tk/keys.h"
#include "tk/wg.h"

typedef struct wgdi_disco_io {
	/* a sealed disco packet for the node key through DERP region */
	void (*send)(void *arg, const uint8_t node_key[32], uint16_t region,
	    const uint8_t *p, size_t n);
	/* a Pong from the peer with node_key via region: true if it
	 * completed a ping of ours */
	bool (*pong)(void *arg, const uint8_t node_key[32], uint16_t region,
	    const tk_disco_msg *m);
	/* a sealed disco packet to a UDP endpoint (wgd's socket) */
	void (*send_udp)(void *arg, const tk_wg_endpoint *ep, const uint8_t *p,
	    size_t n);
	void *arg;
} wgdi_disco_io;

struct wgdi_paths;

typedef struct wgdi_disco {
	tk_wg_device *dev; /* peers carry wgdi_peer_rec (netmap.h) */
	bool keyed;	   /* no disco key (no state): everything dropped */
	tk_disco_priv priv;
	tk_disco_pub pub;
	wgdi_disco_io io;
	struct wgdi_paths *paths; /* path selection (path.h); NULL: none */
	uint64_t udp_rx, udp_drop_unknown_sender, udp_drop_bad_box,
	    udp_drop_bad_parse, udp_drop_cmm, udp_dup_ping, udp_tx_ping,
	    udp_tx_pong, tx_cmm;
	uint64_t rx, rx_ping, rx_pong, rx_pong_unmatched, rx_cmm, rx_cmm_eps,
	    rx_other;
	uint64_t drop_short, drop_no_key, drop_unknown_sender, drop_bad_src,
	    drop_bad_box, drop_bad_parse, drop_bad_region;
	uint64_t tx_ping, tx_pong, tx_failed;
	uint8_t msg[TK_DERP_MAX_PACKET_SIZE];
} wgdi_disco;

void wgdi_disco_init(wgdi_disco *dc, tk_wg_device *dev,
    const tk_disco_priv *priv /* NULL: no key */, const wgdi_disco_io *io);
void wgdi_disco_fini(wgdi_disco *dc);
/*
 * A disco-looking packet that DERP brought from src_key through region.
 * Magicsock's rules: the sender's disco key must be a current peer's and
 * the DERP source node key that same peer (else dropped before opening);
 * the box must open and the message parse.  A Ping is answered with a
 * Pong over DERP to src_key (Src 127.3.3.40:<region>), a Pong is offered
 * to io.pong, a CallMeMaybe's endpoints are kept in the peer's record.
 */
void wgdi_disco_rx_derp(wgdi_disco *dc, const uint8_t src_key[32],
    uint32_t region, const uint8_t *p, size_t n);
/*
 * Sends a Ping (random txid, our node key) to peer through region.
 * 0 and txid, TK_ESTATE (no disco key here or at the peer, no node key),
 * TK_EINVAL (region).
 */
int wgdi_disco_ping(wgdi_disco *dc, tk_wg_peer *peer, uint32_t region,
    uint8_t txid[TK_DISCO_TXID_LEN]);
/*
 * A disco-looking datagram that arrived over UDP from src.  The sender's
 * disco key must be a current peer's, the box must open and the message
 * parse; a Ping is answered with a Pong to src (Src = src) unless path
 * selection calls it a duplicate; a Pong goes to path selection; a
 * CallMeMaybe over UDP is dropped (Go accepts it only via DERP).
 */
void wgdi_disco_rx_udp(wgdi_disco *dc, const tk_wg_endpoint *src,
    const uint8_t *p, size_t n);
/* A Ping (our node key, txid) to peer at a UDP endpoint. */
int wgdi_disco_ping_udp(wgdi_disco *dc, tk_wg_peer *peer,
    const tk_wg_endpoint *ep, const uint8_t txid[TK_DISCO_TXID_LEN]);
/* A CallMeMaybe with eps[0..n) to peer through DERP region. */
int wgdi_disco_call_me_maybe(wgdi_disco *dc, tk_wg_peer *peer,
    uint16_t region, const tk_wg_endpoint *eps, size_t n);
void wgdi_disco_counters(const wgdi_disco *dc, tk_status_counters *cs);

#endif
