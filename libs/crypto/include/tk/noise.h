/*
 * A sans-I/O Noise engine for the two IK patterns tailkit speaks:
 *
 *   Noise_IK_25519_ChaChaPoly_BLAKE2s      Tailscale ts2021 control channel
 *   Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s  WireGuard
 *
 *   IK:  <- s
 *        ...
 *        -> e, es, s, ss
 *        <- e, ee, se          (IKpsk2 adds "psk" at the end of message 2)
 *
 * Bytes in, bytes out; the RNG is injected (tk_rng) and nothing here touches
 * a socket or a clock.  The raw Noise messages are:
 *
 *   msg1 = e.pub(32) || AEAD(s.pub)(48) || AEAD(payload)(n+16)
 *   msg2 = e.pub(32) || AEAD(payload)(n+16)
 *
 * ts2021 wraps them in its own headers; WireGuard wraps them with type,
 * indices, a TAI64N payload and MAC1/MAC2.  The symmetric-state primitives
 * are public so wgd can check byte-exact WireGuard derivations.
 *
 * Every read function is transactional: on failure the handshake state is
 * left exactly as before the call (a forged message cannot wedge a session).
 */
#ifndef TK_NOISE_H
#define TK_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tk/aead.h"
#include "tk/rng.h"

#define TK_NOISE_DH_LEN	  32
#define TK_NOISE_HASH_LEN 32
#define TK_NOISE_KEY_LEN  32
#define TK_NOISE_TAG_LEN  16
#define TK_NOISE_MAX_MSG  65535 /* Noise spec §3 */

#define TK_NOISE_IK_NAME     "Noise_IK_25519_ChaChaPoly_BLAKE2s"
#define TK_NOISE_IKPSK2_NAME "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"

/* Message sizes for a payload of n bytes. */
#define TK_NOISE_IK_MSG1_LEN(n) (32 + 32 + 16 + (n) + 16)
#define TK_NOISE_IK_MSG2_LEN(n) (32 + (n) + 16)

/* Noise §5.2 SymmetricState (with its CipherState). */
typedef struct tk_noise_ss {
	uint8_t ss_ck[TK_NOISE_HASH_LEN];
	uint8_t ss_h[TK_NOISE_HASH_LEN];
	uint8_t ss_k[TK_NOISE_KEY_LEN];
	bool ss_has_k;
	uint64_t ss_n;
} tk_noise_ss;

void tk_noise_ss_init(tk_noise_ss *ss, const char *protocol_name);
void tk_noise_ss_mix_hash(tk_noise_ss *ss, const uint8_t *p, size_t n);
void tk_noise_ss_mix_key(tk_noise_ss *ss, const uint8_t *ikm, size_t n);
void tk_noise_ss_mix_key_and_hash(tk_noise_ss *ss, const uint8_t *ikm,
    size_t n);
/* MixKey(DH(priv, pub)); TK_ECRYPTO for a low-order point. */
int tk_noise_ss_mix_dh(tk_noise_ss *ss, const uint8_t priv[32],
    const uint8_t pub[32]);
/* out gets n (+16 once a key is set) bytes; in-place allowed. */
int tk_noise_ss_encrypt_and_hash(tk_noise_ss *ss, uint8_t *out,
    const uint8_t *in, size_t n);
/* out gets n (-16 once a key is set) bytes; TK_ECRYPTO on a bad tag. */
int tk_noise_ss_decrypt_and_hash(tk_noise_ss *ss, uint8_t *out,
    const uint8_t *in, size_t n);
/* Split: (k1, k2) = HKDF(ck, empty). */
void tk_noise_ss_split(const tk_noise_ss *ss, uint8_t k1[32], uint8_t k2[32]);
void tk_noise_ss_wipe(tk_noise_ss *ss);

enum tk_noise_role { TK_NOISE_INITIATOR = 1, TK_NOISE_RESPONDER = 2 };

typedef struct tk_noise_config {
	const char *protocol_name; /* TK_NOISE_IK_NAME or TK_NOISE_IKPSK2_NAME */
	const uint8_t *prologue;
	size_t prologue_len;
	enum tk_noise_role role;
	const uint8_t *local_static_priv; /* 32 bytes, required */
	const uint8_t *remote_static_pub; /* 32 bytes, initiator only */
	const uint8_t *psk;		  /* 32 bytes, psk2 only; may be set later */
	const tk_rng *rng;		  /* NULL: system */
} tk_noise_config;

enum tk_noise_state {
	TK_NOISE_S_INIT = 0,
	TK_NOISE_S_SENT1,  /* initiator waiting for msg2 */
	TK_NOISE_S_READ1,  /* responder has msg1, must write msg2 */
	TK_NOISE_S_DONE,   /* split available */
	TK_NOISE_S_FAILED,
};

typedef struct tk_noise_hs {
	tk_noise_ss hs_ss;
	enum tk_noise_role hs_role;
	enum tk_noise_state hs_state;
	bool hs_psk2;
	bool hs_has_psk;
	bool hs_fixed_e;
	uint8_t hs_s_priv[32], hs_s_pub[32];
	uint8_t hs_e_priv[32], hs_e_pub[32];
	uint8_t hs_rs[32], hs_re[32];
	uint8_t hs_psk[32];
	const tk_rng *hs_rng;
} tk_noise_hs;

/* TK_EINVAL for a missing key, unknown protocol or wrong role inputs. */
int tk_noise_hs_init(tk_noise_hs *hs, const tk_noise_config *cfg);
void tk_noise_hs_wipe(tk_noise_hs *hs);
/* Tests and KATs: use this ephemeral instead of a random one. */
int tk_noise_hs_set_ephemeral(tk_noise_hs *hs, const uint8_t priv[32]);
/* IKpsk2 responder: the psk is known only after msg1 names the peer. */
void tk_noise_hs_set_psk(tk_noise_hs *hs, const uint8_t psk[32]);

/* Initiator: -> e, es, s, ss, payload.  out needs TK_NOISE_IK_MSG1_LEN(n). */
int tk_noise_hs_write_msg1(tk_noise_hs *hs, const uint8_t *payload, size_t n,
    uint8_t *out, size_t outcap, size_t *outlen);
/*
 * Responder: reads msg1; the initiator's static key is then in hs->hs_rs.
 * Payload (n - 96 bytes) goes to out (capacity outcap).  TK_EPROTO for a
 * short/oversized message, TK_ECRYPTO for a bad tag or DH.
 */
int tk_noise_hs_read_msg1(tk_noise_hs *hs, const uint8_t *msg, size_t n,
    uint8_t *out, size_t outcap, size_t *outlen);
/* Responder: <- e, ee, se, [psk,] payload. */
int tk_noise_hs_write_msg2(tk_noise_hs *hs, const uint8_t *payload, size_t n,
    uint8_t *out, size_t outcap, size_t *outlen);
/* Initiator: reads msg2. */
int tk_noise_hs_read_msg2(tk_noise_hs *hs, const uint8_t *msg, size_t n,
    uint8_t *out, size_t outcap, size_t *outlen);

/* After DONE: the transport keys (send, recv) for this side. */
int tk_noise_hs_split(const tk_noise_hs *hs, uint8_t send_key[32],
    uint8_t recv_key[32]);
/* The handshake hash h (channel binding). */
const uint8_t *tk_noise_hs_hash(const tk_noise_hs *hs);

/* A transport CipherState with a per-direction counter. */
typedef struct tk_noise_cs {
	uint8_t cs_k[32];
	uint64_t cs_n;
	enum tk_nonce_order cs_order;
} tk_noise_cs;

void tk_noise_cs_init(tk_noise_cs *cs, const uint8_t key[32],
    enum tk_nonce_order order);
/* out gets n+16.  TK_ESTATE when the counter is exhausted (2^64-1). */
int tk_noise_cs_seal(tk_noise_cs *cs, uint8_t *out, const uint8_t *ad,
    size_t adlen, const uint8_t *in, size_t n);
/* out gets n-16.  The counter advances only on success. */
int tk_noise_cs_open(tk_noise_cs *cs, uint8_t *out, const uint8_t *ad,
    size_t adlen, const uint8_t *in, size_t n);
void tk_noise_cs_wipe(tk_noise_cs *cs);

#endif
