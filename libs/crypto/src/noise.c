/*
 * Noise IK / IKpsk2 engine (Noise Protocol Framework rev 34, §5 processing
 * rules, §7.5 IK, §9 psk modifiers) over BLAKE2s, X25519, ChaCha20-Poly1305.
 */
#include <string.h>

#include "tk/blake2s.h"
#include "tk/err.h"
#include "tk/keys.h"
#include "tk/mem.h"
#include "tk/noise.h"

void
tk_noise_ss_init(tk_noise_ss *ss, const char *name)
{
	size_t n = strlen(name);

	memset(ss, 0, sizeof(*ss));
	/* §5.2 InitializeSymmetric: pad if short, else hash. */
	if (n <= TK_NOISE_HASH_LEN)
		memcpy(ss->ss_h, name, n);
	else
		tk_blake2s(ss->ss_h, 32, NULL, 0, (const uint8_t *)name, n);
	memcpy(ss->ss_ck, ss->ss_h, 32);
}

void
tk_noise_ss_mix_hash(tk_noise_ss *ss, const uint8_t *p, size_t n)
{
	tk_blake2s_ctx c;

	tk_blake2s_init(&c, 32, NULL, 0);
	tk_blake2s_update(&c, ss->ss_h, 32);
	tk_blake2s_update(&c, p, n);
	tk_blake2s_final(&c, ss->ss_h);
}

void
tk_noise_ss_mix_key(tk_noise_ss *ss, const uint8_t *ikm, size_t n)
{
	tk_kdf(ss->ss_ck, ss->ss_k, NULL, ss->ss_ck, ikm, n);
	ss->ss_has_k = true;
	ss->ss_n = 0;
}

void
tk_noise_ss_mix_key_and_hash(tk_noise_ss *ss, const uint8_t *ikm, size_t n)
{
	uint8_t th[32];

	tk_kdf(ss->ss_ck, th, ss->ss_k, ss->ss_ck, ikm, n);
	tk_noise_ss_mix_hash(ss, th, 32);
	ss->ss_has_k = true;
	ss->ss_n = 0;
	tk_secure_zero(th, sizeof(th));
}

int
tk_noise_ss_mix_dh(tk_noise_ss *ss, const uint8_t priv[32],
    const uint8_t pub[32])
{
	uint8_t dh[32];
	int rv = tk_x25519(dh, priv, pub);

	if (rv == 0)
		tk_noise_ss_mix_key(ss, dh, 32);
	tk_secure_zero(dh, sizeof(dh));
	return rv;
}

int
tk_noise_ss_encrypt_and_hash(tk_noise_ss *ss, uint8_t *out, const uint8_t *in,
    size_t n)
{
	size_t outn = n;

	if (ss->ss_has_k) {
		if (ss->ss_n == UINT64_MAX)
			return TK_ESTATE;
		tk_chacha_seal(out, ss->ss_k, ss->ss_n++, TK_NONCE_LE,
		    ss->ss_h, 32, in, n);
		outn += TK_NOISE_TAG_LEN;
	} else if (out != in) {
		memmove(out, in, n);
	}
	tk_noise_ss_mix_hash(ss, out, outn);
	return 0;
}

int
tk_noise_ss_decrypt_and_hash(tk_noise_ss *ss, uint8_t *out, const uint8_t *in,
    size_t n)
{
	uint8_t h_next[32];
	tk_blake2s_ctx c;
	int rv = 0;

	/* The hash covers the ciphertext, so compute it before in-place open. */
	tk_blake2s_init(&c, 32, NULL, 0);
	tk_blake2s_update(&c, ss->ss_h, 32);
	tk_blake2s_update(&c, in, n);
	tk_blake2s_final(&c, h_next);
	if (ss->ss_has_k) {
		if (ss->ss_n == UINT64_MAX)
			rv = TK_ESTATE;
		else
			rv = tk_chacha_open(out, ss->ss_k, ss->ss_n, TK_NONCE_LE,
			    ss->ss_h, 32, in, n);
		if (rv == 0)
			ss->ss_n++;
	} else if (out != in) {
		memmove(out, in, n);
	}
	if (rv == 0)
		memcpy(ss->ss_h, h_next, 32);
	return rv;
}

void
tk_noise_ss_split(const tk_noise_ss *ss, uint8_t k1[32], uint8_t k2[32])
{
	tk_kdf(k1, k2, NULL, ss->ss_ck, NULL, 0);
}

void
tk_noise_ss_wipe(tk_noise_ss *ss)
{
	tk_secure_zero(ss, sizeof(*ss));
}

int
tk_noise_hs_init(tk_noise_hs *hs, const tk_noise_config *cfg)
{
	bool psk2;

	if (cfg == NULL || cfg->protocol_name == NULL ||
	    cfg->local_static_priv == NULL ||
	    (cfg->prologue == NULL && cfg->prologue_len > 0))
		return TK_EINVAL;
	if (strcmp(cfg->protocol_name, TK_NOISE_IK_NAME) == 0)
		psk2 = false;
	else if (strcmp(cfg->protocol_name, TK_NOISE_IKPSK2_NAME) == 0)
		psk2 = true;
	else
		return TK_EINVAL;
	if (cfg->role != TK_NOISE_INITIATOR && cfg->role != TK_NOISE_RESPONDER)
		return TK_EINVAL;
	if (cfg->role == TK_NOISE_INITIATOR && cfg->remote_static_pub == NULL)
		return TK_EINVAL;
	if (psk2 && cfg->role == TK_NOISE_INITIATOR && cfg->psk == NULL)
		return TK_EINVAL;

	memset(hs, 0, sizeof(*hs));
	hs->hs_role = cfg->role;
	hs->hs_psk2 = psk2;
	hs->hs_rng = cfg->rng;
	memcpy(hs->hs_s_priv, cfg->local_static_priv, 32);
	if (tk_key_public(hs->hs_s_pub, hs->hs_s_priv) != 0) {
		tk_noise_hs_wipe(hs);
		return TK_EINVAL;
	}
	if (cfg->psk != NULL) {
		memcpy(hs->hs_psk, cfg->psk, 32);
		hs->hs_has_psk = true;
	}
	tk_noise_ss_init(&hs->hs_ss, cfg->protocol_name);
	tk_noise_ss_mix_hash(&hs->hs_ss, cfg->prologue, cfg->prologue_len);
	/* Pre-message "<- s": both sides hash the responder's static key. */
	if (cfg->role == TK_NOISE_INITIATOR) {
		memcpy(hs->hs_rs, cfg->remote_static_pub, 32);
		tk_noise_ss_mix_hash(&hs->hs_ss, hs->hs_rs, 32);
	} else {
		tk_noise_ss_mix_hash(&hs->hs_ss, hs->hs_s_pub, 32);
	}
	hs->hs_state = TK_NOISE_S_INIT;
	return 0;
}

void
tk_noise_hs_wipe(tk_noise_hs *hs)
{
	tk_secure_zero(hs, sizeof(*hs));
}

int
tk_noise_hs_set_ephemeral(tk_noise_hs *hs, const uint8_t priv[32])
{
	if (tk_key_public(hs->hs_e_pub, priv) != 0)
		return TK_EINVAL;
	memcpy(hs->hs_e_priv, priv, 32);
	hs->hs_fixed_e = true;
	return 0;
}

void
tk_noise_hs_set_psk(tk_noise_hs *hs, const uint8_t psk[32])
{
	memcpy(hs->hs_psk, psk, 32);
	hs->hs_has_psk = true;
}

/* Token "e" on the writing side (§5.3, plus MixKey(e.pub) in psk mode §9.2). */
static int
write_e(tk_noise_hs *hs, uint8_t out[32])
{
	if (!hs->hs_fixed_e) {
		tk_key_generate(hs->hs_e_priv, hs->hs_rng);
		if (tk_key_public(hs->hs_e_pub, hs->hs_e_priv) != 0)
			return TK_EINTERNAL;
	}
	memcpy(out, hs->hs_e_pub, 32);
	tk_noise_ss_mix_hash(&hs->hs_ss, hs->hs_e_pub, 32);
	if (hs->hs_psk2)
		tk_noise_ss_mix_key(&hs->hs_ss, hs->hs_e_pub, 32);
	return 0;
}

static void
read_e(tk_noise_hs *hs, const uint8_t in[32])
{
	memcpy(hs->hs_re, in, 32);
	tk_noise_ss_mix_hash(&hs->hs_ss, hs->hs_re, 32);
	if (hs->hs_psk2)
		tk_noise_ss_mix_key(&hs->hs_ss, hs->hs_re, 32);
}

int
tk_noise_hs_write_msg1(tk_noise_hs *hs, const uint8_t *payload, size_t n,
    uint8_t *out, size_t outcap, size_t *outlen)
{
	size_t len;
	int rv;

	if (hs->hs_role != TK_NOISE_INITIATOR || hs->hs_state != TK_NOISE_S_INIT)
		return TK_ESTATE;
	if (n > TK_NOISE_MAX_MSG - TK_NOISE_IK_MSG1_LEN(0))
		return TK_EMSGSIZE;
	len = TK_NOISE_IK_MSG1_LEN(n);
	if (outcap < len)
		return TK_EMSGSIZE;
	if ((rv = write_e(hs, out)) != 0)
		goto fail;
	if ((rv = tk_noise_ss_mix_dh(&hs->hs_ss, hs->hs_e_priv, hs->hs_rs)) != 0)
		goto fail; /* es */
	if ((rv = tk_noise_ss_encrypt_and_hash(&hs->hs_ss, out + 32,
		 hs->hs_s_pub, 32)) != 0)
		goto fail; /* s */
	if ((rv = tk_noise_ss_mix_dh(&hs->hs_ss, hs->hs_s_priv, hs->hs_rs)) != 0)
		goto fail; /* ss */
	if ((rv = tk_noise_ss_encrypt_and_hash(&hs->hs_ss, out + 80, payload,
		 n)) != 0)
		goto fail;
	hs->hs_state = TK_NOISE_S_SENT1;
	*outlen = len;
	return 0;
fail:
	hs->hs_state = TK_NOISE_S_FAILED;
	return rv;
}

int
tk_noise_hs_read_msg1(tk_noise_hs *hs, const uint8_t *msg, size_t n,
    uint8_t *out, size_t outcap, size_t *outlen)
{
	tk_noise_hs t;
	uint8_t rs[32];
	int rv;

	if (hs->hs_role != TK_NOISE_RESPONDER || hs->hs_state != TK_NOISE_S_INIT)
		return TK_ESTATE;
	if (n < TK_NOISE_IK_MSG1_LEN(0) || n > TK_NOISE_MAX_MSG)
		return TK_EPROTO;
	if (outcap < n - TK_NOISE_IK_MSG1_LEN(0))
		return TK_EMSGSIZE;
	t = *hs; /* work on a copy: commit only on success */
	read_e(&t, msg);
	if ((rv = tk_noise_ss_mix_dh(&t.hs_ss, t.hs_s_priv, t.hs_re)) != 0)
		goto out; /* es */
	if ((rv = tk_noise_ss_decrypt_and_hash(&t.hs_ss, rs, msg + 32, 48)) != 0)
		goto out; /* s */
	memcpy(t.hs_rs, rs, 32);
	if ((rv = tk_noise_ss_mix_dh(&t.hs_ss, t.hs_s_priv, t.hs_rs)) != 0)
		goto out; /* ss */
	/* Decrypt into the caller's buffer only after every check passed. */
	{
		size_t pn = n - 80;
		uint8_t *tmp = tk_malloc(pn);

		if (tmp == NULL) {
			rv = TK_ENOMEM;
			goto out;
		}
		rv = tk_noise_ss_decrypt_and_hash(&t.hs_ss, tmp, msg + 80, pn);
		if (rv == 0) {
			if (pn > TK_NOISE_TAG_LEN)
				memcpy(out, tmp, pn - TK_NOISE_TAG_LEN);
			*outlen = pn - TK_NOISE_TAG_LEN;
		}
		tk_secure_zero(tmp, pn);
		tk_free(tmp);
		if (rv != 0)
			goto out;
	}
	t.hs_state = TK_NOISE_S_READ1;
	*hs = t;
out:
	tk_secure_zero(&t, sizeof(t));
	tk_secure_zero(rs, sizeof(rs));
	return rv;
}

int
tk_noise_hs_write_msg2(tk_noise_hs *hs, const uint8_t *payload, size_t n,
    uint8_t *out, size_t outcap, size_t *outlen)
{
	size_t len;
	int rv;

	if (hs->hs_role != TK_NOISE_RESPONDER || hs->hs_state != TK_NOISE_S_READ1)
		return TK_ESTATE;
	if (hs->hs_psk2 && !hs->hs_has_psk)
		return TK_ESTATE;
	if (n > TK_NOISE_MAX_MSG - TK_NOISE_IK_MSG2_LEN(0))
		return TK_EMSGSIZE;
	len = TK_NOISE_IK_MSG2_LEN(n);
	if (outcap < len)
		return TK_EMSGSIZE;
	if ((rv = write_e(hs, out)) != 0)
		goto fail;
	if ((rv = tk_noise_ss_mix_dh(&hs->hs_ss, hs->hs_e_priv, hs->hs_re)) != 0)
		goto fail; /* ee */
	if ((rv = tk_noise_ss_mix_dh(&hs->hs_ss, hs->hs_e_priv, hs->hs_rs)) != 0)
		goto fail; /* se */
	if (hs->hs_psk2)
		tk_noise_ss_mix_key_and_hash(&hs->hs_ss, hs->hs_psk, 32);
	if ((rv = tk_noise_ss_encrypt_and_hash(&hs->hs_ss, out + 32, payload,
		 n)) != 0)
		goto fail;
	hs->hs_state = TK_NOISE_S_DONE;
	*outlen = len;
	return 0;
fail:
	hs->hs_state = TK_NOISE_S_FAILED;
	return rv;
}

int
tk_noise_hs_read_msg2(tk_noise_hs *hs, const uint8_t *msg, size_t n,
    uint8_t *out, size_t outcap, size_t *outlen)
{
	tk_noise_hs t;
	uint8_t *tmp = NULL;
	size_t pn;
	int rv;

	if (hs->hs_role != TK_NOISE_INITIATOR || hs->hs_state != TK_NOISE_S_SENT1)
		return TK_ESTATE;
	if (n < TK_NOISE_IK_MSG2_LEN(0) || n > TK_NOISE_MAX_MSG)
		return TK_EPROTO;
	pn = n - 32;
	if (outcap < pn - TK_NOISE_TAG_LEN)
		return TK_EMSGSIZE;
	if ((tmp = tk_malloc(pn)) == NULL)
		return TK_ENOMEM;
	t = *hs;
	read_e(&t, msg);
	if ((rv = tk_noise_ss_mix_dh(&t.hs_ss, t.hs_e_priv, t.hs_re)) != 0)
		goto out; /* ee */
	if ((rv = tk_noise_ss_mix_dh(&t.hs_ss, t.hs_s_priv, t.hs_re)) != 0)
		goto out; /* se */
	if (t.hs_psk2)
		tk_noise_ss_mix_key_and_hash(&t.hs_ss, t.hs_psk, 32);
	if ((rv = tk_noise_ss_decrypt_and_hash(&t.hs_ss, tmp, msg + 32, pn)) != 0)
		goto out;
	if (pn > TK_NOISE_TAG_LEN) /* out may be NULL for an empty payload */
		memcpy(out, tmp, pn - TK_NOISE_TAG_LEN);
	*outlen = pn - TK_NOISE_TAG_LEN;
	t.hs_state = TK_NOISE_S_DONE;
	*hs = t;
out:
	tk_secure_zero(tmp, pn);
	tk_free(tmp);
	tk_secure_zero(&t, sizeof(t));
	return rv;
}

int
tk_noise_hs_split(const tk_noise_hs *hs, uint8_t send_key[32],
    uint8_t recv_key[32])
{
	uint8_t k1[32], k2[32];

	if (hs->hs_state != TK_NOISE_S_DONE)
		return TK_ESTATE;
	tk_noise_ss_split(&hs->hs_ss, k1, k2);
	/* §5.2 Split: the initiator sends with k1, the responder with k2. */
	if (hs->hs_role == TK_NOISE_INITIATOR) {
		memcpy(send_key, k1, 32);
		memcpy(recv_key, k2, 32);
	} else {
		memcpy(send_key, k2, 32);
		memcpy(recv_key, k1, 32);
	}
	tk_secure_zero(k1, sizeof(k1));
	tk_secure_zero(k2, sizeof(k2));
	return 0;
}

const uint8_t *
tk_noise_hs_hash(const tk_noise_hs *hs)
{
	return hs->hs_ss.ss_h;
}

void
tk_noise_cs_init(tk_noise_cs *cs, const uint8_t key[32],
    enum tk_nonce_order order)
{
	memcpy(cs->cs_k, key, 32);
	cs->cs_n = 0;
	cs->cs_order = order;
}

int
tk_noise_cs_seal(tk_noise_cs *cs, uint8_t *out, const uint8_t *ad,
    size_t adlen, const uint8_t *in, size_t n)
{
	/* Noise §5.1: nonce 2^64-1 is reserved; the channel is then dead. */
	if (cs->cs_n == UINT64_MAX)
		return TK_ESTATE;
	return tk_chacha_seal(out, cs->cs_k, cs->cs_n++, cs->cs_order, ad,
	    adlen, in, n);
}

int
tk_noise_cs_open(tk_noise_cs *cs, uint8_t *out, const uint8_t *ad,
    size_t adlen, const uint8_t *in, size_t n)
{
	int rv;

	if (cs->cs_n == UINT64_MAX)
		return TK_ESTATE;
	rv = tk_chacha_open(out, cs->cs_k, cs->cs_n, cs->cs_order, ad, adlen,
	    in, n);
	if (rv == 0)
		cs->cs_n++;
	return rv;
}

void
tk_noise_cs_wipe(tk_noise_cs *cs)
{
	tk_secure_zero(cs, sizeof(*cs));
}
