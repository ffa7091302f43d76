#include <string.h>

#include <sodium.h>
#ifdef TK_AEAD_OPENSSL
#include <limits.h>
#include <pthread.h>

#include <openssl/evp.h>
#endif

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

#ifdef TK_AEAD_OPENSSL
/*
 * ChaCha20-Poly1305 through OpenSSL 3: one encrypting and one decrypting
 * context per thread, set up with the cipher once and re-keyed per message
 * (EVP_CipherInit_ex2 with a NULL cipher), so a message costs no fetch and
 * no allocation.  Anything unexpected falls back to libsodium.
 */
typedef struct ossl_ctxs {
	EVP_CIPHER_CTX *enc, *dec;
} ossl_ctxs;

static pthread_once_t ossl_once = PTHREAD_ONCE_INIT;
static pthread_key_t ossl_key;
static EVP_CIPHER *ossl_cipher;
static _Thread_local ossl_ctxs *ossl_mine;

static void
ossl_free(void *arg)
{
	ossl_ctxs *c = arg;

	EVP_CIPHER_CTX_free(c->enc);
	EVP_CIPHER_CTX_free(c->dec);
	tk_free(c);
}

static void
ossl_init(void)
{
	if (pthread_key_create(&ossl_key, ossl_free) == 0)
		ossl_cipher = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
}

static EVP_CIPHER_CTX *
ossl_ctx(int enc)
{
	ossl_ctxs *c = ossl_mine;

	if (c == NULL) {
		pthread_once(&ossl_once, ossl_init);
		if (ossl_cipher == NULL || (c = tk_calloc(1, sizeof(*c))) == NULL)
			return NULL;
		if ((c->enc = EVP_CIPHER_CTX_new()) == NULL ||
		    (c->dec = EVP_CIPHER_CTX_new()) == NULL ||
		    EVP_CipherInit_ex2(c->enc, ossl_cipher, NULL, NULL, 1,
			NULL) != 1 ||
		    EVP_CipherInit_ex2(c->dec, ossl_cipher, NULL, NULL, 0,
			NULL) != 1 ||
		    pthread_setspecific(ossl_key, c) != 0) {
			ossl_free(c);
			return NULL;
		}
		ossl_mine = c;
	}
	return enc ? c->enc : c->dec;
}

/* 1 done, 0 not done (fall back), -1 bad tag. */
static int
ossl_seal(uint8_t *out, const uint8_t key[32], const uint8_t nonce[12],
    const uint8_t *ad, size_t adlen, const uint8_t *in, size_t n)
{
	EVP_CIPHER_CTX *c = ossl_ctx(1);
	int l;

	if (c == NULL || n > INT_MAX || adlen > INT_MAX ||
	    EVP_CipherInit_ex2(c, NULL, key, nonce, 1, NULL) != 1 ||
	    (adlen && EVP_EncryptUpdate(c, NULL, &l, ad, (int)adlen) != 1) ||
	    (n && EVP_EncryptUpdate(c, out, &l, in, (int)n) != 1) ||
	    EVP_EncryptFinal_ex(c, out + n, &l) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, TK_AEAD_TAG_LEN,
		out + n) != 1)
		return 0;
	return 1;
}

static int
ossl_open(uint8_t *out, const uint8_t key[32], const uint8_t nonce[12],
    const uint8_t *ad, size_t adlen, const uint8_t *in, size_t n)
{
	EVP_CIPHER_CTX *c = ossl_ctx(0);
	uint8_t tag[TK_AEAD_TAG_LEN];
	size_t m = n - TK_AEAD_TAG_LEN;
	int l;

	/* the tag first: an in-place open overwrites nothing before it */
	memcpy(tag, in + m, sizeof(tag));
	if (c == NULL || n > INT_MAX || adlen > INT_MAX ||
	    EVP_CipherInit_ex2(c, NULL, key, nonce, 0, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, sizeof(tag), tag) != 1 ||
	    (adlen && EVP_DecryptUpdate(c, NULL, &l, ad, (int)adlen) != 1))
		return 0;
	if ((m && EVP_DecryptUpdate(c, out, &l, in, (int)m) != 1) ||
	    EVP_DecryptFinal_ex(c, out + m, &l) != 1) {
		/* OpenSSL decrypts before it checks: leave no plaintext */
		sodium_memzero(out, m);
		return -1;
	}
	return 1;
}
#endif

int
tk_chacha_seal(uint8_t *out, const uint8_t key[32], uint64_t counter,
    enum tk_nonce_order order, const uint8_t *ad, size_t adlen,
    const uint8_t *in, size_t n)
{
	uint8_t nonce[12];

	make_nonce(nonce, counter, order);
#ifdef TK_AEAD_OPENSSL
	if (ossl_seal(out, key, nonce, ad, adlen, in, n) == 1)
		return 0;
#endif
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
#ifdef TK_AEAD_OPENSSL
	switch (ossl_open(out, key, nonce, ad, adlen, in, n)) {
	case 1:
		return 0;
	case -1:
		return TK_ECRYPTO;
	}
#endif
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
