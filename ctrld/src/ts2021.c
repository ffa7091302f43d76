/*
 * ts2021: Noise_IK_25519_ChaChaPoly_BLAKE2s with the prologue
 * "Tailscale Control Protocol v<version>", empty handshake payloads, and
 * transport records "04 | be16 len | ciphertext" with 12-byte nonces of
 * four zero bytes and a big-endian 64-bit counter.
 */
#include <stdio.h>
#include <string.h>

#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "ts2021.h"

int
ts2021_client_init(ts2021 *c, uint16_t version, const uint8_t machine_priv[32],
    const uint8_t server_pub[32], const uint8_t *eph_priv, const tk_rng *rng,
    uint8_t init[TS2021_INIT_LEN])
{
	char prologue[64];
	tk_noise_config cfg = { 0 };
	size_t len;
	int rv;

	memset(c, 0, sizeof(*c));
	c->version = version;
	snprintf(prologue, sizeof(prologue), TS2021_PROLOGUE_PREFIX "%u",
	    (unsigned)version);
	cfg.protocol_name = TK_NOISE_IK_NAME;
	cfg.prologue = (const uint8_t *)prologue;
	cfg.prologue_len = strlen(prologue);
	cfg.role = TK_NOISE_INITIATOR;
	cfg.local_static_priv = machine_priv;
	cfg.remote_static_pub = server_pub;
	cfg.rng = rng;
	if ((rv = tk_noise_hs_init(&c->hs, &cfg)) != 0)
		return rv;
	if (eph_priv != NULL && (rv = tk_noise_hs_set_ephemeral(&c->hs, eph_priv)) != 0)
		return rv;
	tk_be16_store(init, version);
	init[2] = TS2021_MSG_INITIATION;
	tk_be16_store(init + 3, TS2021_INIT_PAYLOAD);
	rv = tk_noise_hs_write_msg1(&c->hs, NULL, 0, init + 5, TS2021_INIT_PAYLOAD,
	    &len);
	if (rv == 0 && len != TS2021_INIT_PAYLOAD)
		rv = TK_EPROTO;
	return rv;
}

int
ts2021_client_finish(ts2021 *c, const uint8_t *p, size_t n, size_t *used,
    char *err, size_t errlen)
{
	uint8_t send[32], recv[32];
	size_t plen;
	int rv;

	*used = 0;
	if (n < TS2021_HDR_LEN)
		return TK_EAGAIN;
	plen = tk_be16_load(p + 1);
	if (p[0] == TS2021_MSG_ERROR) {
		if (n < TS2021_HDR_LEN + plen)
			return TK_EAGAIN;
		snprintf(err, errlen, "control server error: %.*s", (int)plen,
		    (const char *)p + TS2021_HDR_LEN);
		c->dead = true;
		return TK_EPROTO;
	}
	if (p[0] != TS2021_MSG_RESPONSE || plen != TS2021_RESP_PAYLOAD) {
		snprintf(err, errlen, "bad handshake response (type %u, length %zu)",
		    p[0], plen);
		c->dead = true;
		return TK_EPROTO;
	}
	if (n < TS2021_RESP_LEN)
		return TK_EAGAIN;
	rv = tk_noise_hs_read_msg2(&c->hs, p + TS2021_HDR_LEN, TS2021_RESP_PAYLOAD,
	    NULL, 0, &plen);
	if (rv != 0) {
		snprintf(err, errlen, "handshake response does not authenticate");
		c->dead = true;
		return rv;
	}
	tk_noise_hs_split(&c->hs, send, recv);
	tk_noise_cs_init(&c->tx, send, TK_NONCE_BE);
	tk_noise_cs_init(&c->rx, recv, TK_NONCE_BE);
	tk_secure_zero(send, sizeof(send)); /* memset could be elided */
	tk_secure_zero(recv, sizeof(recv));
	c->done = true;
	*used = TS2021_RESP_LEN;
	return 0;
}

int
ts2021_seal(ts2021 *c, const uint8_t *p, size_t n, tk_buf *out)
{
	int rv;

	if (!c->done || c->dead)
		return TK_ESTATE;
	do {
		size_t chunk = n > TS2021_MAX_PLAIN ? TS2021_MAX_PLAIN : n;
		uint8_t *f;
		if ((rv = tk_buf_extend(out, TS2021_HDR_LEN + chunk + 16, &f)) != 0)
			return rv;
		f[0] = TS2021_MSG_RECORD;
		tk_be16_store(f + 1, (uint16_t)(chunk + 16));
		if ((rv = tk_noise_cs_seal(&c->tx, f + TS2021_HDR_LEN, NULL, 0, p,
			 chunk)) != 0) {
			c->dead = true;
			return rv;
		}
		c->records_out++;
		p += chunk;
		n -= chunk;
	} while (n > 0);
	return 0;
}

int
ts2021_open(ts2021 *c, const uint8_t *p, size_t n, tk_buf *out)
{
	int rv;

	if (!c->done || c->dead)
		return TK_ESTATE;
	while (n > 0) {
		size_t take = sizeof(c->in) - c->inlen;
		if (take > n)
			take = n;
		memcpy(c->in + c->inlen, p, take);
		c->inlen += take;
		p += take;
		n -= take;
		/* every whole frame in the buffer */
		size_t off = 0;
		while (c->inlen - off >= TS2021_HDR_LEN) {
			const uint8_t *f = c->in + off;
			size_t clen = tk_be16_load(f + 1);
			if (f[0] != TS2021_MSG_RECORD || clen > TS2021_MAX_CIPHER ||
			    clen < 16) {
				c->dead = true;
				return TK_EPROTO;
			}
			if (c->inlen - off < TS2021_HDR_LEN + clen)
				break;
			uint8_t *pt;
			if ((rv = tk_buf_extend(out, clen - 16, &pt)) != 0) {
				/* The records before this one are decrypted
				 * (their nonces used) and in out, and part of
				 * p may be buffered: nothing can resume here.
				 * Drop what was consumed and end the
				 * connection, so a later call says TK_ESTATE
				 * rather than failing to authenticate a record
				 * it already opened. */
				memmove(c->in, c->in + off, c->inlen - off);
				c->inlen -= off;
				c->dead = true;
				return rv;
			}
			if ((rv = tk_noise_cs_open(&c->rx, pt, NULL, 0,
				 f + TS2021_HDR_LEN, clen)) != 0) {
				out->len -= clen - 16;
				c->dead = true;
				return TK_ECRYPTO;
			}
			c->records_in++;
			off += TS2021_HDR_LEN + clen;
		}
		memmove(c->in, c->in + off, c->inlen - off);
		c->inlen -= off;
	}
	return 0;
}

void
ts2021_wipe(ts2021 *c)
{
	tk_noise_hs_wipe(&c->hs);
	tk_noise_cs_wipe(&c->tx);
	tk_noise_cs_wipe(&c->rx);
	tk_secure_zero(c, sizeof(*c));
}
