#include <string.h>

#include <sodium.h>

#include "tk/enc.h"
#include "tk/err.h"
#include "tk/keys.h"
#include "tk/mem.h"

int
tk_key_parse(uint8_t out[TK_KEY_LEN], const char *prefix, const char *s,
    size_t n)
{
	size_t pl = strlen(prefix);

	if (n != pl + TK_KEY_HEX_LEN || memcmp(s, prefix, pl) != 0)
		return TK_EINVAL;
	return tk_hex_decode(out, TK_KEY_LEN, s + pl, TK_KEY_HEX_LEN);
}

void
tk_key_format(char out[TK_KEY_TEXT_MAX], const char *prefix,
    const uint8_t k[TK_KEY_LEN])
{
	size_t pl = strlen(prefix);

	TK_ASSERT(pl + TK_KEY_HEX_LEN < TK_KEY_TEXT_MAX);
	memcpy(out, prefix, pl);
	tk_hex_encode(out + pl, k, TK_KEY_LEN);
}

int
tk_key_from_base64(uint8_t out[TK_KEY_LEN], const char *s, size_t n)
{
	uint8_t tmp[TK_KEY_LEN];
	size_t got;
	int rv;

	if (n != TK_KEY_BASE64_LEN)
		return TK_EINVAL;
	rv = tk_base64_decode(tmp, sizeof(tmp), &got, s, n);
	if (rv == 0 && got != TK_KEY_LEN)
		rv = TK_EINVAL;
	if (rv == 0)
		memcpy(out, tmp, TK_KEY_LEN);
	tk_secure_zero(tmp, sizeof(tmp));
	return rv == 0 ? 0 : TK_EINVAL;
}

void
tk_key_to_base64(char out[TK_KEY_BASE64_LEN + 1], const uint8_t k[TK_KEY_LEN])
{
	tk_base64_encode(out, k, TK_KEY_LEN);
}

void
tk_key_fingerprint(char out[TK_KEY_FP_MAX], const char *prefix,
    const uint8_t pub[TK_KEY_LEN])
{
	char hex[9];
	size_t pl = strnlen(prefix, TK_KEY_FP_MAX - 9);

	tk_hex_encode(hex, pub, 4);
	memcpy(out, prefix, pl);
	memcpy(out + pl, hex, 9);
}

void
tk_key_generate(uint8_t priv[TK_KEY_LEN], const tk_rng *rng)
{
	tk_rng_fill(rng, priv, TK_KEY_LEN);
	/* Curve25519 clamping, as tailscale's types/key does at creation. */
	priv[0] &= 248;
	priv[31] = (uint8_t)((priv[31] & 127) | 64);
}

int
tk_key_public(uint8_t pub[TK_KEY_LEN], const uint8_t priv[TK_KEY_LEN])
{
	uint8_t tmp[TK_KEY_LEN];

	if (crypto_scalarmult_curve25519_base(tmp, priv) != 0)
		return TK_ECRYPTO;
	memcpy(pub, tmp, TK_KEY_LEN);
	return 0;
}

bool
tk_key_is_zero(const uint8_t k[TK_KEY_LEN])
{
	return tk_ct_is_zero(k, TK_KEY_LEN);
}

#define TEXT_FORMS(type, prefix)                                              \
	int type##_parse(type *out, const char *s)                            \
	{                                                                     \
		return tk_key_parse(out->b, prefix, s, strlen(s));            \
	}

#define TEXT_FORMAT(type, prefix)                                             \
	void type##_format(const type *k, char out[TK_KEY_TEXT_MAX])          \
	{                                                                     \
		tk_key_format(out, prefix, k->b);                             \
	}

#define KEYPAIR(priv, pub)                                                    \
	void priv##_generate(priv *out, const tk_rng *rng)                    \
	{                                                                     \
		tk_key_generate(out->b, rng);                                 \
	}                                                                     \
	int priv##_public(const priv *k, pub *out)                            \
	{                                                                     \
		return tk_key_public(out->b, k->b);                           \
	}

TEXT_FORMS(tk_node_pub, TK_PREFIX_NODE_PUB)
TEXT_FORMAT(tk_node_pub, TK_PREFIX_NODE_PUB)
TEXT_FORMS(tk_machine_pub, TK_PREFIX_MACHINE_PUB)
TEXT_FORMAT(tk_machine_pub, TK_PREFIX_MACHINE_PUB)
TEXT_FORMS(tk_disco_pub, TK_PREFIX_DISCO_PUB)
TEXT_FORMAT(tk_disco_pub, TK_PREFIX_DISCO_PUB)
TEXT_FORMS(tk_chal_pub, TK_PREFIX_CHAL_PUB)
TEXT_FORMS(tk_node_priv, TK_PREFIX_PRIVATE)
TEXT_FORMAT(tk_node_priv, TK_PREFIX_PRIVATE)
TEXT_FORMS(tk_machine_priv, TK_PREFIX_PRIVATE)
TEXT_FORMAT(tk_machine_priv, TK_PREFIX_PRIVATE)
KEYPAIR(tk_node_priv, tk_node_pub)
KEYPAIR(tk_machine_priv, tk_machine_pub)
KEYPAIR(tk_disco_priv, tk_disco_pub)
