/* HMAC-BLAKE2s (RFC 2104 with BLAKE2s-256, block 64) and WireGuard's KDFn. */
#include <string.h>

#include "tk/blake2s.h"
#include "tk/mem.h"

void
tk_hmac_blake2s(uint8_t out[TK_BLAKE2S_OUTBYTES], const uint8_t *key,
    size_t keylen, const uint8_t *p, size_t n)
{
	uint8_t k[TK_BLAKE2S_BLOCKBYTES] = { 0 };
	uint8_t pad[TK_BLAKE2S_BLOCKBYTES];
	uint8_t inner[TK_BLAKE2S_OUTBYTES];
	tk_blake2s_ctx c;

	if (keylen > TK_BLAKE2S_BLOCKBYTES)
		tk_blake2s(k, TK_BLAKE2S_OUTBYTES, NULL, 0, key, keylen);
	else if (keylen > 0)
		memcpy(k, key, keylen);

	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] = k[i] ^ 0x36;
	tk_blake2s_init(&c, TK_BLAKE2S_OUTBYTES, NULL, 0);
	tk_blake2s_update(&c, pad, sizeof(pad));
	tk_blake2s_update(&c, p, n);
	tk_blake2s_final(&c, inner);

	for (size_t i = 0; i < sizeof(pad); i++)
		pad[i] = k[i] ^ 0x5c;
	tk_blake2s_init(&c, TK_BLAKE2S_OUTBYTES, NULL, 0);
	tk_blake2s_update(&c, pad, sizeof(pad));
	tk_blake2s_update(&c, inner, sizeof(inner));
	tk_blake2s_final(&c, out);

	tk_secure_zero(k, sizeof(k));
	tk_secure_zero(pad, sizeof(pad));
	tk_secure_zero(inner, sizeof(inner));
}

void
tk_kdf(uint8_t out1[32], uint8_t out2[32], uint8_t out3[32],
    const uint8_t key[32], const uint8_t *input, size_t n)
{
	uint8_t prk[32], t[33];

	tk_hmac_blake2s(prk, key, 32, input, n);
	/* t1 = HMAC(prk, 0x1) */
	t[0] = 1;
	tk_hmac_blake2s(t, prk, 32, t, 1);
	if (out1 != NULL)
		memcpy(out1, t, 32);
	if (out2 != NULL || out3 != NULL) {
		/* t2 = HMAC(prk, t1 || 0x2) */
		t[32] = 2;
		tk_hmac_blake2s(t, prk, 32, t, 33);
		if (out2 != NULL)
			memcpy(out2, t, 32);
	}
	if (out3 != NULL) {
		t[32] = 3;
		tk_hmac_blake2s(t, prk, 32, t, 33);
		memcpy(out3, t, 32);
	}
	tk_secure_zero(prk, sizeof(prk));
	tk_secure_zero(t, sizeof(t));
}
