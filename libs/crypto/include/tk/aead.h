/*
 * AEAD, X25519 and NaCl box through libsodium, with tailkit error codes.
 *
 * ChaCha20-Poly1305 (IETF) nonces are 4 zero bytes then a 64-bit counter:
 * little-endian for WireGuard and standard Noise, BIG-endian for Tailscale's
 * ts2021 control channel (controlbase conn.go).  All seal/open functions
 * work in place (out == in).  A failed open never yields plaintext: libsodium
 * verifies the tag first and clears `out` on failure, so an in-place open
 * that fails leaves zeros where the ciphertext was (the packet is dropped
 * anyway); callers that must keep the input decrypt into a scratch buffer.
 */
#ifndef TK_AEAD_H
#define TK_AEAD_H

#include <stddef.h>
#include <stdint.h>

#define TK_AEAD_KEY_LEN	   32
#define TK_AEAD_TAG_LEN	   16
#define TK_XAEAD_NONCE_LEN 24
#define TK_BOX_NONCE_LEN   24
#define TK_BOX_MAC_LEN	   16

enum tk_nonce_order {
	TK_NONCE_LE = 0, /* WireGuard, Noise */
	TK_NONCE_BE = 1, /* Tailscale controlbase */
};

/* out gets n + 16 bytes. */
int tk_chacha_seal(uint8_t *out, const uint8_t key[32], uint64_t counter,
    enum tk_nonce_order order, const uint8_t *ad, size_t adlen,
    const uint8_t *in, size_t n);
/* n >= 16; out gets n - 16 bytes.  TK_ECRYPTO on a bad tag. */
int tk_chacha_open(uint8_t *out, const uint8_t key[32], uint64_t counter,
    enum tk_nonce_order order, const uint8_t *ad, size_t adlen,
    const uint8_t *in, size_t n);

int tk_xchacha_seal(uint8_t *out, const uint8_t key[32],
    const uint8_t nonce[24], const uint8_t *ad, size_t adlen,
    const uint8_t *in, size_t n);
int tk_xchacha_open(uint8_t *out, const uint8_t key[32],
    const uint8_t nonce[24], const uint8_t *ad, size_t adlen,
    const uint8_t *in, size_t n);

/* X25519; TK_ECRYPTO if the shared secret is all zero (low-order point). */
int tk_x25519(uint8_t out[32], const uint8_t priv[32], const uint8_t pub[32]);

/* NaCl box (crypto_box_easy layout: MAC then ciphertext; out gets n + 16). */
int tk_box_seal(uint8_t *out, const uint8_t *in, size_t n,
    const uint8_t nonce[24], const uint8_t peer_pub[32],
    const uint8_t priv[32]);
int tk_box_open(uint8_t *out, const uint8_t *in, size_t n,
    const uint8_t nonce[24], const uint8_t peer_pub[32],
    const uint8_t priv[32]);
/* Precomputed shared key for repeated boxes with one peer. */
int tk_box_precompute(uint8_t shared[32], const uint8_t peer_pub[32],
    const uint8_t priv[32]);
int tk_box_seal_shared(uint8_t *out, const uint8_t *in, size_t n,
    const uint8_t nonce[24], const uint8_t shared[32]);
int tk_box_open_shared(uint8_t *out, const uint8_t *in, size_t n,
    const uint8_t nonce[24], const uint8_t shared[32]);

#endif
