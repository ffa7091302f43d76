/*
 * BLAKE2s (RFC 7693), HMAC-BLAKE2s (RFC 2104, block 64) and WireGuard's
 * HKDF-style KDF1/KDF2/KDF3 (whitepaper §5.4, Noise §4.3 HKDF).
 *
 * Written here because libsodium, nettle and GnuTLS on Debian 12 have no
 * BLAKE2s.  It only runs in handshakes and cookie MACs, never per packet.
 */
#ifndef TK_BLAKE2S_H
#define TK_BLAKE2S_H

#include <stddef.h>
#include <stdint.h>

#define TK_BLAKE2S_OUTBYTES   32
#define TK_BLAKE2S_KEYBYTES   32
#define TK_BLAKE2S_BLOCKBYTES 64

typedef struct tk_blake2s_ctx {
	uint32_t h[8];
	uint32_t t[2];
	uint8_t buf[TK_BLAKE2S_BLOCKBYTES];
	size_t buflen;
	size_t outlen;
} tk_blake2s_ctx;

/* outlen 1..32, keylen 0..32 (key may be NULL when keylen is 0). */
int tk_blake2s_init(tk_blake2s_ctx *c, size_t outlen, const uint8_t *key,
    size_t keylen);
void tk_blake2s_update(tk_blake2s_ctx *c, const uint8_t *p, size_t n);
/* Writes c->outlen bytes and wipes the context. */
void tk_blake2s_final(tk_blake2s_ctx *c, uint8_t *out);
/* One-shot. */
int tk_blake2s(uint8_t *out, size_t outlen, const uint8_t *key, size_t keylen,
    const uint8_t *p, size_t n);

/* HMAC-BLAKE2s-256 over the concatenation of up to two inputs. */
void tk_hmac_blake2s(uint8_t out[TK_BLAKE2S_OUTBYTES], const uint8_t *key,
    size_t keylen, const uint8_t *p, size_t n);

/*
 * KDFn(key, input) of the WireGuard whitepaper: t0 = HMAC(key, input),
 * t1 = HMAC(t0, 0x1), t2 = HMAC(t0, t1 || 0x2), t3 = HMAC(t0, t2 || 0x3).
 * Outputs t1..tn into out1..out3; pass NULL for outputs not wanted (they
 * are still computed in order when a later one is wanted).
 */
void tk_kdf(uint8_t out1[32], uint8_t out2[32], uint8_t out3[32],
    const uint8_t key[32], const uint8_t *input, size_t n);

#endif
