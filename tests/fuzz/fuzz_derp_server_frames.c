/*
 * A client's byte stream into derpd's per-connection state machine
 * (http.c then server_conn.c), without sockets.
 *
 * Input: byte 0 picks the mode: bit 0 set = start with the HTTP request
 * parser (the rest is a raw stream: request head, then DERP); clear = the
 * harness upgrades and sends a valid ClientInfo itself (as a mesh-key
 * holder when bit 1 is set), so the fuzzer's bytes reach the registered
 * frame handlers.  Byte 1 sets the read chunk size, so frames also arrive
 * split.  A second, registered client is the destination of SendPacket
 * frames addressed to its key (the private key 0x10 0x00.. is fixed here).
 */
#include <stdint.h>
#include <string.h>

#include "server_int.h"
#include "tk/core.h"
#include "tk/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
feed_ws(derpdi_conn *c, const uint8_t *p, size_t n)
{
	if (c->wrlen + n > (600u << 10))
		return -1;
	uint8_t *nb = tk_realloc(c->wr, c->wrlen + n);
	if (nb == NULL)
		return -1;
	c->wr = nb;
	c->wrcap = c->wrlen + n;
	memcpy(c->wr + c->wrlen, p, n);
	c->wrlen += n;
	derpdi_ws_decode(c);
	if (c->st == CS_INFO || c->st == CS_DERP)
		derpdi_derp_input(c);
	return 0;
}

static int
feed(derpdi_conn *c, const uint8_t *p, size_t n)
{
	if (c->st == CS_CLOSED || c->st == CS_LINGER)
		return -1;
	if (c->ws) /* after a WebSocket upgrade: raw frames */
		return feed_ws(c, p, n);
	if (c->icap - c->ilen < n) {
		if (c->ioff) {
			memmove(c->ib, c->ib + c->ioff, c->ilen - c->ioff);
			c->ilen -= c->ioff;
			c->ioff = 0;
		}
		size_t need = c->ilen + n;
		if (need > (300u << 10))
			return -1; /* server.c caps its buffer too */
		uint8_t *nb = tk_realloc(c->ib, need);
		if (nb == NULL)
			return -1;
		c->ib = nb;
		c->icap = need;
	}
	memcpy(c->ib + c->ilen, p, n);
	c->ilen += n;
	if (c->st == CS_HTTP)
		derpdi_http_input(c);
	if (c->ws && c->st != CS_CLOSED)
		derpdi_ws_decode(c);
	if (c->st == CS_INFO || c->st == CS_DERP)
		derpdi_derp_input(c);
	return 0;
}

static bool
alive(const derpd_server *s, const derpdi_conn *c)
{
	for (const derpdi_conn *x = s->conns; x; x = x->next)
		if (x == c)
			return true;
	return false;
}

static void
client_info(derpdi_conn *c, const uint8_t priv[32], const uint8_t *mesh)
{
	uint8_t pub[32], f[5 + 32 + 256];
	char js[200];
	size_t jl, bl;
	tk_derp_client_info ci = { .version = 2, .can_ack_pings = true };

	if (mesh) {
		ci.has_mesh_key = true;
		memcpy(ci.mesh_key, mesh, 32);
	}
	tk_key_public(pub, priv);
	tk_derp_client_info_json(&ci, js, sizeof(js), &jl);
	memcpy(f + 5, pub, 32);
	tk_derp_box_seal(f + 5 + 32, sizeof(f) - 37, &bl, (const uint8_t *)js,
	    jl, c->s->pub, priv, c->s->rng);
	tk_derp_frame_hdr(f, TK_DERP_FRAME_CLIENT_INFO, (uint32_t)(32 + bl));
	derpdi_derp_begin(c);
	feed(c, f, 5 + 32 + bl);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool inited;
	static tk_fake_rng rng;
	/* distinct after X25519 clamping (which clears the low 3 bits) */
	static uint8_t peer_priv[32] = { 0x10 }, me_priv[32] = { 0x20 };

	if (!inited) {
		tk_init();
		tk_log_set_level(TK_LOG_ERR);
		inited = true;
	}
	if (size < 2)
		return 0;
	tk_fake_rng_init(&rng, 7);
	derpd_server_config cfg = { .stun_port = -1, .rng = &rng.fr_rng };
	derpd_server *s;
	if (derpd_server_new(&s, &cfg, NULL, 0) != 0)
		return 0;
	memset(s->mesh_key, 0x5a, 32);
	s->has_mesh_key = true;
	/* the destination: registered, with packets queued for it */
	derpdi_conn *peer = derpdi_conn_new(s, -1, false);
	if (peer) {
		peer->st = CS_HTTP;
		client_info(peer, peer_priv, NULL);
	}
	derpdi_conn *c = derpdi_conn_new(s, -1, false);
	if (c) {
		if (!(data[0] & 1))
			client_info(c, me_priv, data[0] & 2 ? s->mesh_key : NULL);
		size_t chunk = (size_t)data[1] * 16 + 1;
		for (size_t off = 2; off < size; off += chunk) {
			size_t n = size - off < chunk ? size - off : chunk;
			if (feed(c, data + off, n) != 0 || c->st == CS_CLOSED)
				break; /* c is freed by the next idle pass */
			if (data[0] & 4) {
				derpdi_server_idle(s); /* may close and free c */
				if (!alive(s, c))
					break;
			}
		}
	}
	derpdi_server_idle(s);
	derpd_server_free(s);
	return 0;
}
