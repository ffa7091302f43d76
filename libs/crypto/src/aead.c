#include <string.h>

#include <sodium.h>

#include "tk/aead.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"

static void
make_nonce(uint8_t nonce[12], uint64_t counter, enum tk_nonce_order order)
{
	memset(nonce, 0, 4);
	if (order == TK_NONCE_BE)
		tk_be64_store(nonce + 4, counter);
	else
		tk_le64_store(nonce + 4, counter);
}

int
tk_chacha_seal(uint8_t *out, const uint8_t key[32], uint64_t counter,
    enum tk_nonce_order order, const uint8_t *ad, size_t adlen,
    const uint8_t *in, size_t n)
{
	uint8_t nonce[12];

	make_nonce(nonce, counter, order);
	/* detached form so in-place sealing never overlaps the tag write */
	crypto_aead_chacha20poly1305_ietf_encrypt_detached(out, out + n, NULL,
	    in, n, ad, adlen, NULL, nonce, key);
	return 0;
}

int
tk_chacha_open(uint8_t *out, const uint8_t key[32], uint64_t counter,
    enum tk_nonce_order order, const uint8_t *ad, size_t adlen,
    const uint8_t *in, size_t n)
{
	uint8_t nonce[12];

	if (n < TK_AEAD_TAG_LEN)
		return TK_ECRYPTO;
	make_nonce(nonce, counter, order);
	/* libsodium verifies the tag before writing plaintext. */
	if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(out, NULL, in,
		n - TK_AEAD_TAG_LEN, in + n - TK_AEAD_TAG_LEN, ad, adlen, nonce,
		key) != 0)
		return TK_ECRYPTO;
	return 0;
}

int
tk_xchacha_seal(uint8_t *out, const uint8_t key[32], const uint8_t nonce[24],
    const uint8_t *ad, size_t adlen, const uint8_t *in, size_t n)
{
	crypto_aead_xchacha20poly1305_ietf_encrypt_detached(out, out + n, NULL,
	    in, n, ad, adlen, NULL, nonce, key);
	return 0;
}

int
tk_xchacha_open(uint8_t *out, const uint8_t key[32], const uint8_t nonce[24],
    const uint8_t *ad, size_t adlen, const uint8_t *in, size_t n)
{
	if (n < TK_AEAD_TAG_LEN)
		return TK_ECRYPTO;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(out, NULL, in,
		n - TK_AEAD_TAG_LEN, in + n - TK_AEAD_TAG_LEN, ad, adlen, nonce,
		key) != 0)
		return TK_ECRYPTO;
	return 0;
}

int
tk_x25519(uint8_t out[32], const uint8_t priv[32], const uint8_t pub[32])
{
	uint8_t tmp[32];
	int rv = 0;

	/* libsodium returns -1 for an all-zero result (low-order point). */
	if (crypto_scalarmult_curve25519(tmp, priv, pub) != 0)
		rv = TK_ECRYPTO;
	else
		memcpy(out, tmp, 32);
	tk_secure_zero(tmp, sizeof(tmp));
	return rv;
}

int
tk_box_seal(uint8_t *out, const uint8_t *in, size_t n, const uint8_t nonce[24],
    const uint8_t peer_pub[32], const uint8_t priv[32])
{
	return crypto_box_easy(out, in, n, nonce, peer_pub, priv) == 0 ?
	    0 : TK_ECRYPTO;
}

int
tk_box_open(uint8_t *out, const uint8_t *in, size_t n, const uint8_t nonce[24],
    const uint8_t peer_pub[32], const uint8_t priv[32])
{
	if (n < TK_BOX_MAC_LEN)
		return TK_ECRYPTO;
	return crypto_box_open_easy(out, in, n, nonce, peer_pub, priv) == 0 ?
	    0 : TK_ECRYPTO;
}

int
tk_box_precompute(uint8_t shared[32], const uint8_t peer_pub[32],
    const uint8_t priv[32])
{
	return crypto_box_beforenm(shared, peer_pub, priv) == 0 ? 0 :
	    TK_ECRYPTO;
}

int
tk_box_seal_shared(uint8_t *out, const uint8_t *in, size_t n,
    const uint8_t nonce[24], const uint8_t shared[32])
{
	return crypto_box_easy_afternm(out, in, n, nonce, shared) == 0 ? 0 :
	    TK_ECRYPTO;
}

int
tk_box_open_shared(uint8_t *out, const uint8_t *in, size_t n,
    const uint8_t nonce[24], const uint8_t shared[32])
{
	if (n < TK_BOX_MAC_LEN)
		return TK_ECRYPTO;
	return crypto_box_open_easy_afternm(out, in, n, nonce, shared) == 0 ?
	    0 : TK_ECRYPTO;
}
