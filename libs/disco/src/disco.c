/*
 * Disco message codec (tk/disco.h).  Every length is checked before it is
 * read; nothing is allocated.
 */
#include <string.h>

#include "tk/aead.h"
#include "tk/disco.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/rng.h"

#define DISCO_MSG_HDR 2 /* type, version */
/* relayEndpoint without its endpoint list: 3 keys, lamport, VNI, 2 lifetimes */
#define RELAY_EP_FIXED (3 * TK_DISCO_KEY_LEN + 8 + 4 + 8 + 8)

static const uint8_t v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

bool
tk_disco_looks_like(const uint8_t *p, size_t n)
{
	return n >= TK_DISCO_MAGIC_LEN + TK_DISCO_KEY_LEN &&
	    memcmp(p, TK_DISCO_MAGIC, TK_DISCO_MAGIC_LEN) == 0;
}

void
tk_disco_ep_at(const uint8_t *eps, size_t i, tk_disco_ep *out)
{
	const uint8_t *r = eps + i * TK_DISCO_EP_LEN;

	memcpy(out->ip, r, 16);
	out->port = tk_be16_load(r + 16);
}

void
tk_disco_ep_set(tk_disco_ep *ep, const uint8_t *ip, size_t iplen,
    uint16_t port)
{
	if (iplen == 4) {
		memcpy(ep->ip, v4_mapped, 12);
		memcpy(ep->ip + 12, ip, 4);
	} else {
		memcpy(ep->ip, ip, 16);
	}
	ep->port = port;
}

/* relayEndpoint: RELAY_EP_FIXED bytes, then >= 1 whole endpoint records */
static int
parse_relay_ep(const uint8_t *p, size_t n, tk_disco_relay_ep *r)
{
	if (n < RELAY_EP_FIXED + TK_DISCO_EP_LEN ||
	    (n - RELAY_EP_FIXED) % TK_DISCO_EP_LEN != 0)
		return TK_EPROTO;
	memcpy(r->server_disco, p, TK_DISCO_KEY_LEN);
	memcpy(r->client_disco[0], p + 32, TK_DISCO_KEY_LEN);
	memcpy(r->client_disco[1], p + 64, TK_DISCO_KEY_LEN);
	r->lamport_id = tk_be64_load(p + 96);
	r->vni = tk_be32_load(p + 104);
	r->bind_lifetime_ns = tk_be64_load(p + 108);
	r->steady_state_lifetime_ns = tk_be64_load(p + 116);
	r->eps = p + RELAY_EP_FIXED;
	r->neps = (n - RELAY_EP_FIXED) / TK_DISCO_EP_LEN;
	return 0;
}

int
tk_disco_parse(const uint8_t *msg, size_t n, tk_disco_msg *m)
{
	memset(m, 0, sizeof(*m));
	if (n < DISCO_MSG_HDR)
		return TK_EPROTO;
	m->type = msg[0];
	m->version = msg[1];
	const uint8_t *b = msg + DISCO_MSG_HDR;
	size_t bl = n - DISCO_MSG_HDR;

	switch (m->type) {
	case TK_DISCO_PING:
		if (bl < TK_DISCO_TXID_LEN)
			return TK_EPROTO;
		memcpy(m->txid, b, TK_DISCO_TXID_LEN);
		bl -= TK_DISCO_TXID_LEN;
		if (bl >= TK_DISCO_KEY_LEN) {
			m->has_node_key = true;
			memcpy(m->node_key, b + TK_DISCO_TXID_LEN, TK_DISCO_KEY_LEN);
			bl -= TK_DISCO_KEY_LEN;
		}
		m->padding = bl;
		return 0;
	case TK_DISCO_PONG:
		if (bl < TK_DISCO_TXID_LEN + TK_DISCO_EP_LEN)
			return TK_EPROTO;
		memcpy(m->txid, b, TK_DISCO_TXID_LEN);
		tk_disco_ep_at(b + TK_DISCO_TXID_LEN, 0, &m->src);
		return 0;
	case TK_DISCO_CALL_ME_MAYBE:
		if (m->version == 0 && bl % TK_DISCO_EP_LEN == 0) {
			m->eps = bl ? b : NULL;
			m->neps = bl / TK_DISCO_EP_LEN;
		}
		return 0;
	case TK_DISCO_BIND_UDP_RELAY_ENDPOINT:
	case TK_DISCO_BIND_UDP_RELAY_ENDPOINT_CHALLENGE:
	case TK_DISCO_BIND_UDP_RELAY_ENDPOINT_ANSWER:
		if (bl < TK_DISCO_RELAY_COMMON_LEN)
			return TK_EPROTO;
		m->vni = tk_be32_load(b);
		m->generation = tk_be32_load(b + 4);
		memcpy(m->remote_disco, b + 8, TK_DISCO_KEY_LEN);
		memcpy(m->challenge, b + 40, 32);
		return 0;
	case TK_DISCO_CALL_ME_MAYBE_VIA:
		if (m->version != 0)
			return 0;
		return parse_relay_ep(b, bl, &m->relay);
	case TK_DISCO_ALLOCATE_UDP_RELAY_ENDPOINT_REQUEST:
		if (m->version != 0)
			return 0;
		if (bl < 2 * TK_DISCO_KEY_LEN + 4)
			return TK_EPROTO;
		memcpy(m->client_disco[0], b, TK_DISCO_KEY_LEN);
		memcpy(m->client_disco[1], b + 32, TK_DISCO_KEY_LEN);
		m->generation = tk_be32_load(b + 64);
		return 0;
	case TK_DISCO_ALLOCATE_UDP_RELAY_ENDPOINT_RESPONSE:
		if (m->version != 0)
			return 0;
		if (bl < 4)
			return TK_EPROTO;
		m->generation = tk_be32_load(b);
		return parse_relay_ep(b + 4, bl - 4, &m->relay);
	default:
		return TK_EPROTO;
	}
}

size_t
tk_disco_write_ping(uint8_t *out, size_t cap,
    const uint8_t txid[TK_DISCO_TXID_LEN], const uint8_t node_key[TK_DISCO_KEY_LEN],
    size_t padding)
{
	size_t n = DISCO_MSG_HDR + TK_DISCO_TXID_LEN +
	    (node_key ? TK_DISCO_KEY_LEN : 0);

	if (padding > cap || n > cap - padding)
		return 0;
	out[0] = TK_DISCO_PING;
	out[1] = 0;
	memcpy(out + 2, txid, TK_DISCO_TXID_LEN);
	if (node_key)
		memcpy(out + 2 + TK_DISCO_TXID_LEN, node_key, TK_DISCO_KEY_LEN);
	memset(out + n, 0, padding);
	return n + padding;
}

size_t
tk_disco_write_pong(uint8_t *out, size_t cap,
    const uint8_t txid[TK_DISCO_TXID_LEN], const tk_disco_ep *src)
{
	if (cap < TK_DISCO_PONG_LEN)
		return 0;
	out[0] = TK_DISCO_PONG;
	out[1] = 0;
	memcpy(out + 2, txid, TK_DISCO_TXID_LEN);
	memcpy(out + 14, src->ip, 16);
	tk_be16_store(out + 30, src->port);
	return TK_DISCO_PONG_LEN;
}

size_t
tk_disco_write_call_me_maybe(uint8_t *out, size_t cap, const tk_disco_ep *eps,
    size_t n)
{
	if (cap < DISCO_MSG_HDR || n > (cap - DISCO_MSG_HDR) / TK_DISCO_EP_LEN)
		return 0;
	out[0] = TK_DISCO_CALL_ME_MAYBE;
	out[1] = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t *r = out + DISCO_MSG_HDR + i * TK_DISCO_EP_LEN;
		memcpy(r, eps[i].ip, 16);
		tk_be16_store(r + 16, eps[i].port);
	}
	return DISCO_MSG_HDR + n * TK_DISCO_EP_LEN;
}

int
tk_disco_seal(uint8_t *out, size_t cap, size_t *out_len,
    const uint8_t shared[32], const uint8_t sender_pub[TK_DISCO_KEY_LEN],
    const uint8_t *msg, size_t n)
{
	if (cap < TK_DISCO_OVERHEAD || n > cap - TK_DISCO_OVERHEAD)
		return TK_EMSGSIZE;
	memcpy(out, TK_DISCO_MAGIC, TK_DISCO_MAGIC_LEN);
	memcpy(out + TK_DISCO_MAGIC_LEN, sender_pub, TK_DISCO_KEY_LEN);
	uint8_t *nonce = out + TK_DISCO_MAGIC_LEN + TK_DISCO_KEY_LEN;
	tk_rng_fill(tk_rng_system(), nonce, TK_DISCO_NONCE_LEN);
	int rv = tk_box_seal_shared(out + TK_DISCO_HDR_LEN, msg, n, nonce, shared);
	if (rv != 0)
		return rv;
	*out_len = TK_DISCO_OVERHEAD + n;
	return 0;
}

int
tk_disco_open(const uint8_t *pkt, size_t n, const uint8_t shared[32],
    uint8_t *msg, size_t cap, size_t *msg_len)
{
	if (n < TK_DISCO_OVERHEAD || !tk_disco_looks_like(pkt, n))
		return TK_EPROTO;
	if (n - TK_DISCO_OVERHEAD > cap)
		return TK_EMSGSIZE;
	const uint8_t *nonce = pkt + TK_DISCO_MAGIC_LEN + TK_DISCO_KEY_LEN;
	int rv = tk_box_open_shared(msg, pkt + TK_DISCO_HDR_LEN,
	    n - TK_DISCO_HDR_LEN, nonce, shared);
	if (rv != 0)
		return TK_ECRYPTO;
	*msg_len = n - TK_DISCO_OVERHEAD;
	return 0;
}
