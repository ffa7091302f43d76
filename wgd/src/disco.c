/*
 * wgd's disco over DERP: see disco.h.  Facts from Go's magicsock at
 * v1.102.3 (handleDiscoMessage, handlePingLocked), dataplane-protocols.md
 * B.4:
 *  - a sender disco key no current peer has is dropped before any crypto
 *    (metricRecvDiscoBadPeer);
 *  - over DERP the source node key must be a current peer (Go answers no
 *    ping otherwise) whose netmap disco key is the sender's (Go's rule for
 *    CallMeMaybe; wgd applies it to every type, before opening);
 *  - a box that does not open (a forged one, or one for our previous disco
 *    key) and a message that does not parse are dropped;
 *  - a Ping is answered over DERP to the source, Src 127.3.3.40:<region>
 *    (magicsock's DERP pseudo-address); Go suppresses duplicate txids only
 *    for UDP sources (addCandidateEndpoint), so nothing is suppressed here;
 *  - a CallMeMaybe is only kept (direct paths are later work); the relay
 *    types and anything newer are counted and ignored.
 * Lookups walk the peer list: one pass per packet, fine for the rates
 * disco runs at (heartbeats every few seconds per peer).
 */
#include <string.h>

#include "tk/aead.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk/rng.h"
#include "disco.h"
#include "netmap.h"
#include "path.h"

static const uint8_t derp_magic_ip[4] = { 127, 3, 3, 40 };

void
wgdi_disco_init(wgdi_disco *dc, tk_wg_device *dev, const tk_disco_priv *priv,
    const wgdi_disco_io *io)
{
	dc->dev = dev;
	dc->io = *io;
	dc->keyed = priv != NULL;
	if (priv != NULL) {
		dc->priv = *priv;
		if (tk_disco_priv_public(priv, &dc->pub) != 0)
			dc->keyed = false;
	}
}

void
wgdi_disco_fini(wgdi_disco *dc)
{
	tk_secure_zero(&dc->priv, sizeof(dc->priv));
	dc->keyed = false;
}

/* The record of the peer with node key k, if it has a disco key. */
static wgdi_peer_rec *
rec_of_key(const wgdi_disco *dc, const uint8_t k[32])
{
	tk_wg_peer *p = tk_wg_peer_find(dc->dev, k);
	wgdi_peer_rec *n = p != NULL ? tk_wg_peer_user(p) : NULL;

	return n != NULL && n->has_disco ? n : NULL;
}

/* The peer whose netmap disco key is disco, if any. */
static tk_wg_peer *
peer_of_disco(const wgdi_disco *dc, const uint8_t disco[32])
{
	for (tk_wg_peer *p = tk_wg_peer_first(dc->dev); p; p = tk_wg_peer_next(p)) {
		const wgdi_peer_rec *n = tk_wg_peer_user(p);
		if (n != NULL && n->has_disco && memcmp(n->disco, disco, 32) == 0)
			return p;
	}
	return NULL;
}

/* Seals msg to the disco key into out (*len); 0, or an error (counted). */
static int
seal_msg(wgdi_disco *dc, const uint8_t disco[32], const uint8_t *msg, size_t n,
    uint8_t *out, size_t cap, size_t *len)
{
	uint8_t shared[32];
	int rv;

	if ((rv = tk_box_precompute(shared, disco, dc->priv.b)) == 0)
		rv = tk_disco_seal(out, cap, len, shared, dc->pub.b, msg, n);
	tk_secure_zero(shared, sizeof(shared));
	if (rv != 0)
		dc->tx_failed++;
	return rv;
}

/* Opens p (from sender) into dc->msg and parses it: 0, -1 (the box does
 * not open), -2 (the message does not parse). */
static int
open_msg(wgdi_disco *dc, const uint8_t *sender, const uint8_t *p, size_t n,
    tk_disco_msg *m)
{
	uint8_t shared[32];
	size_t len;
	int rv;

	if ((rv = tk_box_precompute(shared, sender, dc->priv.b)) == 0)
		rv = tk_disco_open(p, n, shared, dc->msg, sizeof(dc->msg), &len);
	tk_secure_zero(shared, sizeof(shared));
	if (rv != 0)
		return -1;
	return tk_disco_parse(dc->msg, len, m) == 0 ? 0 : -2;
}

/* Seals msg to the disco key and hands it to io.send; counts failures. */
static int
seal_send(wgdi_disco *dc, const uint8_t node_key[32], const uint8_t disco[32],
    uint16_t region, const uint8_t *msg, size_t n)
{
	uint8_t out[TK_DISCO_OVERHEAD + 128];
	size_t len;
	int rv;

	if ((rv = seal_msg(dc, disco, msg, n, out, sizeof(out), &len)) != 0)
		return rv;
	if (dc->io.send == NULL) {
		dc->tx_failed++;
		return TK_ESTATE;
	}
	dc->io.send(dc->io.arg, node_key, region, out, len);
	return 0;
}

/* The same to a UDP endpoint through io.send_udp. */
static int
seal_send_udp(wgdi_disco *dc, const uint8_t disco[32],
    const tk_wg_endpoint *ep, const uint8_t *msg, size_t n)
{
	uint8_t out[TK_DISCO_OVERHEAD + 128];
	size_t len;
	int rv;

	if ((rv = seal_msg(dc, disco, msg, n, out, sizeof(out), &len)) != 0)
		return rv;
	if (dc->io.send_udp == NULL) {
		dc->tx_failed++;
		return TK_ESTATE;
	}
	dc->io.send_udp(dc->io.arg, ep, out, len);
	return 0;
}

static void
on_ping(wgdi_disco *dc, const uint8_t src_key[32], const uint8_t disco[32],
    uint16_t region, const tk_disco_msg *m)
{
	uint8_t pong[TK_DISCO_PONG_LEN + 8];
	tk_disco_ep src;
	size_t n;

	dc->rx_ping++;
	tk_disco_ep_set(&src, derp_magic_ip, 4, region);
	n = tk_disco_write_pong(pong, sizeof(pong), m->txid, &src);
	if (n != 0 && seal_send(dc, src_key, disco, region, pong, n) == 0)
		dc->tx_pong++;
	else if (n == 0)
		dc->tx_failed++;
}

/* Keeps a CallMeMaybe's endpoints (as many as the record holds). */
static void
on_cmm(wgdi_disco *dc, wgdi_peer_rec *n, const tk_disco_msg *m)
{
	size_t k = m->neps < WGDI_MAX_ADDRS ? m->neps : WGDI_MAX_ADDRS;

	dc->rx_cmm++;
	dc->rx_cmm_eps += m->neps;
	for (size_t i = 0; i < k; i++)
		memcpy(n->cmm[i], m->eps + i * TK_DISCO_EP_LEN, TK_DISCO_EP_LEN);
	n->ncmm = (uint8_t)k;
}

void
wgdi_disco_rx_derp(wgdi_disco *dc, const uint8_t src_key[32], uint32_t region,
    const uint8_t *p, size_t n)
{
	const uint8_t *sender;
	wgdi_peer_rec *rec;
	tk_disco_msg m;
	int rv;

	if (!dc->keyed) {
		dc->drop_no_key++;
		return;
	}
	if (n < TK_DISCO_OVERHEAD + 2 || !tk_disco_looks_like(p, n)) {
		dc->drop_short++;
		return;
	}
	if (region == 0 || region > 65535) {
		dc->drop_bad_region++;
		return;
	}
	sender = tk_disco_sender(p);
	if (peer_of_disco(dc, sender) == NULL) {
		dc->drop_unknown_sender++;
		return;
	}
	if ((rec = rec_of_key(dc, src_key)) == NULL ||
	    memcmp(rec->disco, sender, 32) != 0) {
		dc->drop_bad_src++;
		return;
	}
	if ((rv = open_msg(dc, sender, p, n, &m)) != 0) {
		if (rv == -1)
			dc->drop_bad_box++;
		else
			dc->drop_bad_parse++;
		return;
	}
	dc->rx++;
	switch (m.type) {
	case TK_DISCO_PING:
		on_ping(dc, src_key, sender, (uint16_t)region, &m);
		break;
	case TK_DISCO_PONG:
		dc->rx_pong++;
		if (dc->io.pong == NULL ||
		    !dc->io.pong(dc->io.arg, src_key, (uint16_t)region, &m))
			dc->rx_pong_unmatched++;
		break;
	case TK_DISCO_CALL_ME_MAYBE:
		on_cmm(dc, rec, &m);
		if (dc->paths != NULL)
			wgdi_paths_cmm(dc->paths, tk_wg_peer_find(dc->dev, src_key),
			    &m, true);
		break;
	default:
		dc->rx_other++; /* relay types: peer relays are not done */
		break;
	}
}

void
wgdi_disco_rx_udp(wgdi_disco *dc, const tk_wg_endpoint *src, const uint8_t *p,
    size_t n)
{
	const uint8_t *sender;
	tk_wg_peer *peer;
	tk_disco_msg m;
	int rv;

	dc->udp_rx++;
	if (!dc->keyed) {
		dc->drop_no_key++;
		return;
	}
	if (n < TK_DISCO_OVERHEAD + 2 || !tk_disco_looks_like(p, n)) {
		dc->drop_short++;
		return;
	}
	sender = tk_disco_sender(p);
	if ((peer = peer_of_disco(dc, sender)) == NULL) {
		dc->udp_drop_unknown_sender++;
		return;
	}
	if ((rv = open_msg(dc, sender, p, n, &m)) != 0) {
		if (rv == -1)
			dc->udp_drop_bad_box++;
		else
			dc->udp_drop_bad_parse++;
		return;
	}
	switch (m.type) {
	case TK_DISCO_PING: {
		uint8_t pong[TK_DISCO_PONG_LEN + 8];
		tk_disco_ep sep;
		size_t k;

		dc->rx_ping++;
		if (dc->paths != NULL &&
		    !wgdi_paths_udp_ping(dc->paths, peer, src, &m)) {
			dc->udp_dup_ping++;
			break;
		}
		tk_disco_ep_set(&sep, src->ep_addr, src->ep_family == 4 ? 4 : 16,
		    src->ep_port);
		k = tk_disco_write_pong(pong, sizeof(pong), m.txid, &sep);
		if (k != 0 && seal_send_udp(dc, sender, src, pong, k) == 0)
			dc->udp_tx_pong++;
		break;
	}
	case TK_DISCO_PONG:
		dc->rx_pong++;
		if (dc->paths != NULL)
			wgdi_paths_udp_pong(dc->paths, peer, src, &m);
		break;
	case TK_DISCO_CALL_ME_MAYBE:
		dc->udp_drop_cmm++; /* only via DERP */
		break;
	default:
		dc->rx_other++;
		break;
	}
}

int
wgdi_disco_ping_udp(wgdi_disco *dc, tk_wg_peer *peer, const tk_wg_endpoint *ep,
    const uint8_t txid[TK_DISCO_TXID_LEN])
{
	const wgdi_peer_rec *rec = tk_wg_peer_user(peer);
	uint8_t msg[TK_DISCO_PING_LEN], self[32];
	size_t n;
	int rv;

	if (!dc->keyed || rec == NULL || !rec->has_disco ||
	    !tk_wg_device_public_key(dc->dev, self))
		return TK_ESTATE;
	if ((n = tk_disco_write_ping(msg, sizeof(msg), txid, self, 0)) == 0)
		return TK_EINVAL;
	if ((rv = seal_send_udp(dc, rec->disco, ep, msg, n)) == 0)
		dc->udp_tx_ping++;
	return rv;
}

int
wgdi_disco_call_me_maybe(wgdi_disco *dc, tk_wg_peer *peer, uint16_t region,
    const tk_wg_endpoint *eps, size_t n)
{
	const wgdi_peer_rec *rec = tk_wg_peer_user(peer);
	tk_disco_ep de[4];
	uint8_t msg[2 + 4 * TK_DISCO_EP_LEN];
	size_t k = 0, len;
	int rv;

	/* 4 endpoints: seal_send's buffer holds 128 bytes of message */
	if (!dc->keyed || rec == NULL || !rec->has_disco || region == 0)
		return TK_ESTATE;
	for (size_t i = 0; i < n && k < 4; i++)
		tk_disco_ep_set(&de[k++], eps[i].ep_addr,
		    eps[i].ep_family == 4 ? 4 : 16, eps[i].ep_port);
	if ((len = tk_disco_write_call_me_maybe(msg, sizeof(msg), de, k)) == 0)
		return TK_EINVAL;
	if ((rv = seal_send(dc, tk_wg_peer_public_key(peer), rec->disco, region,
		 msg, len)) == 0)
		dc->tx_cmm++;
	return rv;
}

int
wgdi_disco_ping(wgdi_disco *dc, tk_wg_peer *peer, uint32_t region,
    uint8_t txid[TK_DISCO_TXID_LEN])
{
	const wgdi_peer_rec *rec = tk_wg_peer_user(peer);
	uint8_t msg[TK_DISCO_PING_LEN], self[32];
	size_t n;
	int rv;

	if (!dc->keyed || rec == NULL || !rec->has_disco ||
	    !tk_wg_device_public_key(dc->dev, self))
		return TK_ESTATE;
	if (region == 0 || region > 65535)
		return TK_EINVAL;
	tk_rng_fill(NULL, txid, TK_DISCO_TXID_LEN);
	n = tk_disco_write_ping(msg, sizeof(msg), txid, self, 0);
	if (n == 0)
		return TK_EINVAL;
	rv = seal_send(dc, tk_wg_peer_public_key(peer), rec->disco,
	    (uint16_t)region, msg, n);
	if (rv == 0)
		dc->tx_ping++;
	return rv;
}

void
wgdi_disco_counters(const wgdi_disco *dc, tk_status_counters *cs)
{
	tk_status_counter(cs, "disco_rx", dc->rx);
	tk_status_counter(cs, "disco_rx_ping", dc->rx_ping);
	tk_status_counter(cs, "disco_rx_pong", dc->rx_pong);
	tk_status_counter(cs, "disco_rx_pong_unmatched", dc->rx_pong_unmatched);
	tk_status_counter(cs, "disco_rx_call_me_maybe", dc->rx_cmm);
	tk_status_counter(cs, "disco_rx_call_me_maybe_endpoints",
	    dc->rx_cmm_eps);
	tk_status_counter(cs, "disco_rx_other", dc->rx_other);
	tk_status_counter(cs, "disco_drop_no_key", dc->drop_no_key);
	tk_status_counter(cs, "disco_drop_short", dc->drop_short);
	tk_status_counter(cs, "disco_drop_bad_region", dc->drop_bad_region);
	tk_status_counter(cs, "disco_drop_unknown_sender",
	    dc->drop_unknown_sender);
	tk_status_counter(cs, "disco_drop_bad_derp_src", dc->drop_bad_src);
	tk_status_counter(cs, "disco_drop_bad_box", dc->drop_bad_box);
	tk_status_counter(cs, "disco_drop_bad_parse", dc->drop_bad_parse);
	tk_status_counter(cs, "disco_tx_ping", dc->tx_ping);
	tk_status_counter(cs, "disco_tx_pong", dc->tx_pong);
	tk_status_counter(cs, "disco_tx_failed", dc->tx_failed);
	tk_status_counter(cs, "disco_udp_rx", dc->udp_rx);
	tk_status_counter(cs, "disco_udp_drop_unknown_sender",
	    dc->udp_drop_unknown_sender);
	tk_status_counter(cs, "disco_udp_drop_bad_box", dc->udp_drop_bad_box);
	tk_status_counter(cs, "disco_udp_drop_bad_parse", dc->udp_drop_bad_parse);
	tk_status_counter(cs, "disco_udp_drop_call_me_maybe", dc->udp_drop_cmm);
	tk_status_counter(cs, "disco_udp_dup_ping", dc->udp_dup_ping);
	tk_status_counter(cs, "disco_udp_tx_ping", dc->udp_tx_ping);
	tk_status_counter(cs, "disco_udp_tx_pong", dc->udp_tx_pong);
	tk_status_counter(cs, "disco_tx_call_me_maybe", dc->tx_cmm);
}
