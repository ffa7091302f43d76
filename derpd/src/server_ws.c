/*
 * DERP over WebSocket (derpserver/websocket.go, net/wsconn): for clients
 * that can only speak WebSocket (the browser client).  An upgrade with
 * "Upgrade: websocket" and the "derp" subprotocol is accepted (RFC 6455,
 * no compression, any Origin); then the DERP byte stream travels in binary
 * messages whose boundaries mean nothing.  A text message is an error, as
 * in wsconn.  Client frames must be masked (RFC 6455 5.1).  No fast start:
 * the server sends ServerKey as usual.
 */
#include <stdio.h>
#include <string.h>

#include <gnutls/crypto.h>

#include "server_int.h"
#include "tk/enc.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" /* RFC 6455 1.3 */
#define WS_OP_CONT   0x0
#define WS_OP_TEXT   0x1
#define WS_OP_BINARY 0x2
#define WS_OP_CLOSE  0x8
#define WS_OP_PING   0x9
#define WS_OP_PONG   0xa
#define IB_MAX (TK_DERP_FRAME_HDR_LEN + TK_DERP_CLIENT_INFO_MAX + 4096)

int
derpdi_wob_put(derpdi_conn *c, const void *p, size_t n)
{
	if (c->wooff > 0 && c->wooff == c->wolen)
		c->wooff = c->wolen = 0;
	if (c->wocap - c->wolen < n) {
		if (c->wooff > 0) {
			memmove(c->wob, c->wob + c->wooff, c->wolen - c->wooff);
			c->wolen -= c->wooff;
			c->wooff = 0;
		}
		size_t ncap = c->wocap ? c->wocap : 4096;
		while (ncap - c->wolen < n)
			ncap *= 2;
		if (ncap != c->wocap) {
			uint8_t *nb = tk_realloc(c->wob, ncap);
			if (nb == NULL)
				return TK_ENOMEM;
			c->wob = nb;
			c->wocap = ncap;
		}
	}
	memcpy(c->wob + c->wolen, p, n);
	c->wolen += n;
	return 0;
}

static int
frame_hdr(derpdi_conn *c, uint8_t op, uint64_t n)
{
	uint8_t h[10];
	size_t hl;

	h[0] = 0x80 | op; /* FIN; server frames are not masked */
	if (n < 126) {
		h[1] = (uint8_t)n;
		hl = 2;
	} else if (n <= 0xffff) {
		h[1] = 126;
		tk_be16_store(h + 2, (uint16_t)n);
		hl = 4;
	} else {
		h[1] = 127;
		tk_be64_store(h + 2, n);
		hl = 10;
	}
	return derpdi_wob_put(c, h, hl);
}

int
derpdi_ws_wrap(derpdi_conn *c)
{
	size_t n = c->olen - c->ooff;
	int rc;

	if (n == 0)
		return 0;
	if ((rc = frame_hdr(c, WS_OP_BINARY, n)) != 0 ||
	    (rc = derpdi_wob_put(c, c->ob + c->ooff, n)) != 0)
		return rc;
	c->ooff = c->olen = 0;
	return 0;
}

int
derpdi_ws_accept(derpdi_conn *c, const char *key, size_t keylen)
{
	uint8_t sha[20];
	char acc[32], h[512];
	char kg[128];
	int rc;

	if (keylen == 0 || keylen > 64)
		return TK_EPROTO;
	memcpy(kg, key, keylen);
	memcpy(kg + keylen, WS_GUID, sizeof(WS_GUID) - 1);
	if (gnutls_hash_fast(GNUTLS_DIG_SHA1, kg, keylen + sizeof(WS_GUID) - 1,
	    sha) < 0)
		return TK_EINTERNAL;
	tk_base64_encode(acc, sha, sizeof(sha));
	int n = snprintf(h, sizeof(h),
	    "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n"
	    "Sec-WebSocket-Protocol: derp\r\n\r\n", acc);
	/* answers to requests pipelined before this one go out first, raw */
	if (c->olen > c->ooff &&
	    (rc = derpdi_wob_put(c, c->ob + c->ooff, c->olen - c->ooff)) != 0)
		return rc;
	c->ooff = c->olen = 0;
	if ((rc = derpdi_wob_put(c, h, (size_t)n)) != 0)
		return rc;
	c->ws = true;
	c->s->st.websocket_accepts++;
	/* what the client sent after its request head is WebSocket frames */
	size_t rest = c->ilen - c->ioff;
	if (rest) {
		if ((c->wr = tk_malloc(rest)) == NULL)
			return TK_ENOMEM;
		memcpy(c->wr, c->ib + c->ioff, rest);
		c->wrlen = c->wrcap = rest;
	}
	c->ioff = c->ilen = 0;
	return 0;
}

static int
ib_put_unmasked(derpdi_conn *c, const uint8_t *p, size_t n)
{
	if (c->ioff > 0) {
		memmove(c->ib, c->ib + c->ioff, c->ilen - c->ioff);
		c->ilen -= c->ioff;
		c->ioff = 0;
	}
	if (c->icap - c->ilen < n) {
		size_t ncap = c->icap ? c->icap : 16384;
		while (ncap - c->ilen < n)
			ncap *= 2;
		uint8_t *nb = tk_realloc(c->ib, ncap);
		if (nb == NULL)
			return TK_ENOMEM;
		c->ib = nb;
		c->icap = ncap;
	}
	for (size_t i = 0; i < n; i++)
		c->ib[c->ilen + i] = p[i] ^ c->ws_mask[(c->ws_mpos + i) & 3];
	c->ws_mpos = (c->ws_mpos + (unsigned)n) & 3;
	c->ilen += n;
	return 0;
}

static void
bad(derpdi_conn *c)
{
	c->s->st.websocket_bad++;
	derpdi_conn_close(c, CLOSE_BAD_FRAME);
}

void
derpdi_ws_decode(derpdi_conn *c)
{
	if (c->wr == NULL)
		return; /* nothing received yet */
	while (c->st != CS_CLOSED) {
		uint8_t *p = c->wr + c->wroff;
		size_t avail = c->wrlen - c->wroff;
		if (c->ws_left) {
			/* payload of a data frame: as much as the DERP buffer
			 * may hold (the rest waits: back-pressure) */
			size_t room = IB_MAX > c->ilen - c->ioff ?
			    IB_MAX - (c->ilen - c->ioff) : 0;
			size_t k = TK_MIN((uint64_t)avail, c->ws_left);
			k = TK_MIN(k, room);
			if (k == 0)
				break;
			if (ib_put_unmasked(c, p, k) != 0) {
				derpdi_conn_close(c, CLOSE_NOMEM);
				return;
			}
			c->wroff += k;
			c->ws_left -= k;
			continue;
		}
		if (avail < 2)
			break;
		uint8_t op = p[0] & 0x0f;
		bool fin = p[0] & 0x80, masked = p[1] & 0x80;
		uint64_t len = p[1] & 0x7f;
		size_t hl = 2;
		if ((p[0] & 0x70) || !masked) { /* RSV bits (no extensions) */
			bad(c);
			return;
		}
		if (len == 126) {
			if (avail < 4)
				break;
			len = tk_be16_load(p + 2);
			hl = 4;
		} else if (len == 127) {
			if (avail < 10)
				break;
			len = tk_be64_load(p + 2);
			hl = 10;
			if (len >> 63) {
				bad(c);
				return;
			}
		}
		if (avail < hl + 4)
			break;
		memcpy(c->ws_mask, p + hl, 4);
		hl += 4;
		if (op >= 0x8) { /* control: <= 125 bytes, not fragmented */
			if (len > 125 || !fin) {
				bad(c);
				return;
			}
			if (avail < hl + len)
				break;
			uint8_t pl[125];
			for (size_t i = 0; i < len; i++)
				pl[i] = p[hl + i] ^ c->ws_mask[i & 3];
			c->wroff += hl + (size_t)len;
			if (op == WS_OP_PING) {
				if (frame_hdr(c, WS_OP_PONG, len) != 0 ||
				    derpdi_wob_put(c, pl, (size_t)len) != 0) {
					derpdi_conn_close(c, CLOSE_NOMEM);
					return;
				}
				derpdi_conn_mark_dirty(c);
			} else if (op == WS_OP_CLOSE) {
				derpdi_conn_close(c, CLOSE_EOF);
				return;
			} else if (op != WS_OP_PONG) {
				bad(c);
				return;
			}
			continue;
		}
		if (op != WS_OP_BINARY && op != WS_OP_CONT) {
			bad(c); /* text, or a reserved opcode */
			return;
		}
		c->wroff += hl;
		c->ws_left = len;
		c->ws_mpos = 0;
	}
	if (c->st != CS_CLOSED && c->wroff == c->wrlen)
		c->wroff = c->wrlen = 0;
}
