/* BLAKE2s, written from RFC 7693 sections 2-3. */
#include <string.h>

#include "tk/blake2s.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"

/* RFC 7693 §2.6: the SHA-256 initial hash values. */
static const uint32_t blake2s_iv[8] = {
	0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
	0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
};

/* RFC 7693 §2.7: message word schedule for rounds 0..9. */
static const uint8_t sigma[10][16] = {
	{ 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 },
	{ 14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3 },
	{ 11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4 },
	{ 7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8 },
	{ 9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13 },
	{ 2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9 },
	{ 12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11 },
	{ 13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10 },
	{ 6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5 },
	{ 10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0 },
};

static inline uint32_t
ror32(uint32_t x, unsigned r)
{
	return (x >> r) | (x << (32 - r));
}

/* RFC 7693 §3.1, rotation constants (R1..R4) = (16, 12, 8, 7). */
#define MIX(v, a, b, c, d, x, y)                                              \
	do {                                                                  \
		v[a] = v[a] + v[b] + (x);                                     \
		v[d] = ror32(v[d] ^ v[a], 16);                                \
		v[c] = v[c] + v[d];                                           \
		v[b] = ror32(v[b] ^ v[c], 12);                                \
		v[a] = v[a] + v[b] + (y);                                     \
		v[d] = ror32(v[d] ^ v[a], 8);                                 \
		v[c] = v[c] + v[d];                                           \
		v[b] = ror32(v[b] ^ v[c], 7);                                 \
	} while (0)

/* RFC 7693 §3.2, compression function F. */
static void
compress(tk_blake2s_ctx *c, const uint8_t block[64], int last)
{
	uint32_t v[16], m[16];

	for (int i = 0; i < 16; i++)
		m[i] = tk_le32_load(block + 4 * i);
	for (int i = 0; i < 8; i++) {
		v[i] = c->h[i];
		v[i + 8] = blake2s_iv[i];
	}
	v[12] ^= c->t[0];
	v[13] ^= c->t[1];
	if (last)
		v[14] = ~v[14];
	for (int r = 0; r < 10; r++) {
		const uint8_t *s = sigma[r];

		MIX(v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
		MIX(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
		MIX(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
		MIX(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
		MIX(v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
		MIX(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
		MIX(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
		MIX(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
	}
	for (int i = 0; i < 8; i++)
		c->h[i] ^= v[i] ^ v[i + 8];
	tk_secure_zero(v, sizeof(v));
	tk_secure_zero(m, sizeof(m));
}

static void
add_counter(tk_blake2s_ctx *c, uint32_t n)
{
	c->t[0] += n;
	if (c->t[0] < n)
		c->t[1]++;
}

int
tk_blake2s_init(tk_blake2s_ctx *c, size_t outlen, const uint8_t *key,
    size_t keylen)
{
	if (outlen == 0 || outlen > TK_BLAKE2S_OUTBYTES ||
	    keylen > TK_BLAKE2S_KEYBYTES || (keylen > 0 && key == NULL))
		return TK_EINVAL;
	memset(c, 0, sizeof(*c));
	memcpy(c->h, blake2s_iv, sizeof(c->h));
	/* Parameter block word 0: digest length, key length, fanout 1, depth 1. */
	c->h[0] ^= 0x01010000u ^ ((uint32_t)keylen << 8) ^ (uint32_t)outlen;
	c->outlen = outlen;
	if (keylen > 0) {
		/* The key, zero-padded to a full block, is the first block. */
		memcpy(c->buf, key, keylen);
		c->buflen = TK_BLAKE2S_BLOCKBYTES;
	}
	return 0;
}

void
tk_blake2s_update(tk_blake2s_ctx *c, const uint8_t *p, size_t n)
{
	while (n > 0) {
		size_t take;

		/* Keep the last block buffered: it must be compressed as final. */
		if (c->buflen == TK_BLAKE2S_BLOCKBYTES) {
			add_counter(c, TK_BLAKE2S_BLOCKBYTES);
			compress(c, c->buf, 0);
			c->buflen = 0;
		}
		take = TK_BLAKE2S_BLOCKBYTES - c->buflen;
		if (take > n)
			take = n;
		memcpy(c->buf + c->buflen, p, take);
		c->buflen += take;
		p += take;
		n -= take;
	}
}

void
tk_blake2s_final(tk_blake2s_ctx *c, uint8_t *out)
{
	uint8_t full[TK_BLAKE2S_OUTBYTES];

	add_counter(c, (uint32_t)c->buflen);
	memset(c->buf + c->buflen, 0, TK_BLAKE2S_BLOCKBYTES - c->buflen);
	compress(c, c->buf, 1);
	for (int i = 0; i < 8; i++)
		tk_le32_store(full + 4 * i, c->h[i]);
	memcpy(out, full, c->outlen);
	tk_secure_zero(full, sizeof(full));
	tk_secure_zero(c, sizeof(*c));
}

int
tk_blake2s(uint8_t *out, size_t outlen, const uint8_t *key, size_t keylen,
    const uint8_t *p, size_t n)
{
	tk_blake2s_ctx c;
	int rv = tk_blake2s_init(&c, outlen, key, keylen);

	if (rv != 0)
		return rv;
	tk_blake2s_update(&c, p, n);
	tk_blake2s_final(&c, out);
	return 0;
}
