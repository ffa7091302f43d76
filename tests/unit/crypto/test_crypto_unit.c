/* Unit tests: AEAD/box/X25519 wrappers, BLAKE2s vs libb2, Noise rejects. */
#include <string.h>

#include <sodium.h>
#ifdef TK_HAVE_LIBB2
#include <blake2.h>
#endif

#include "tk/blake2s.h"
#include "tk/core.h"
#include "tk/noise.h"
#include "tk_test.h"

void register_crypto_unit(void);

static void
test_aead_inplace_and_tamper(void)
{
	uint8_t key[32], buf[1420 + 16], orig[1420], out[1420];

	memset(key, 7, sizeof(key));
	randombytes_buf(orig, sizeof(orig));
	memcpy(buf, orig, sizeof(orig));
	for (int order = 0; order < 2; order++) {
		memcpy(buf, orig, sizeof(orig));
		CU_ASSERT_EQUAL(tk_chacha_seal(buf, key, 5, order, (const uint8_t *)"ad", 2, buf, 1420), 0);
		CU_ASSERT(memcmp(buf, orig, 1420) != 0);
		/* wrong counter, wrong AD, flipped bit all fail and write nothing */
		memset(out, 0xEE, sizeof(out));
		CU_ASSERT_EQUAL(tk_chacha_open(out, key, 6, order, (const uint8_t *)"ad", 2, buf, sizeof(buf)), TK_ECRYPTO);
		CU_ASSERT_EQUAL(tk_chacha_open(out, key, 5, order, (const uint8_t *)"AD", 2, buf, sizeof(buf)), TK_ECRYPTO);
		/* no plaintext escapes: untouched or cleared (libsodium clears) */
		CU_ASSERT(out[0] == 0xEE || tk_ct_is_zero(out, sizeof(out)));
		buf[100] ^= 1;
		CU_ASSERT_EQUAL(tk_chacha_open(out, key, 5, order, (const uint8_t *)"ad", 2, buf, sizeof(buf)), TK_ECRYPTO);
		buf[100] ^= 1;
		CU_ASSERT_EQUAL(tk_chacha_open(buf, key, 5, order, (const uint8_t *)"ad", 2, buf, sizeof(buf)), 0);
		TK_ASSERT_MEM_EQ(buf, orig, 1420);
	}
	/* the byte order of the nonce matters except at counter 0 */
	uint8_t a[32], b[32];
	tk_chacha_seal(a, key, 0, TK_NONCE_LE, NULL, 0, orig, 16);
	tk_chacha_seal(b, key, 0, TK_NONCE_BE, NULL, 0, orig, 16);
	TK_ASSERT_MEM_EQ(a, b, 32);
	tk_chacha_seal(a, key, 1, TK_NONCE_LE, NULL, 0, orig, 16);
	tk_chacha_seal(b, key, 1, TK_NONCE_BE, NULL, 0, orig, 16);
	CU_ASSERT(memcmp(a, b, 32) != 0);
	CU_ASSERT_EQUAL(tk_chacha_open(out, key, 0, TK_NONCE_LE, NULL, 0, a, 15), TK_ECRYPTO);

	uint8_t n24[24] = { 1 }, x[64];
	tk_xchacha_seal(x, key, n24, (const uint8_t *)"m1", 2, orig, 32);
	CU_ASSERT_EQUAL(tk_xchacha_open(out, key, n24, (const uint8_t *)"m1", 2, x, 48), 0);
	TK_ASSERT_MEM_EQ(out, orig, 32);
	CU_ASSERT_EQUAL(tk_xchacha_open(out, key, n24, (const uint8_t *)"m2", 2, x, 48), TK_ECRYPTO);
}

static void
test_x25519_and_box(void)
{
	uint8_t a[32], b[32], ap[32], bp[32], s1[32], s2[32], zero[32] = { 0 };
	uint8_t nonce[24] = { 9 }, msg[40], ct[56], pt[40];

	tk_key_generate(a, NULL);
	tk_key_generate(b, NULL);
	tk_key_public(ap, a);
	tk_key_public(bp, b);
	CU_ASSERT_EQUAL(tk_x25519(s1, a, bp), 0);
	CU_ASSERT_EQUAL(tk_x25519(s2, b, ap), 0);
	TK_ASSERT_MEM_EQ(s1, s2, 32);
	/* low-order point: all-zero shared secret is rejected */
	memset(s1, 0x5a, 32);
	CU_ASSERT_EQUAL(tk_x25519(s1, a, zero), TK_ECRYPTO);
	CU_ASSERT_EQUAL(s1[0], 0x5a);

	memset(msg, 'm', sizeof(msg));
	CU_ASSERT_EQUAL(tk_box_seal(ct, msg, 40, nonce, bp, a), 0);
	/* layout matches libsodium's crypto_box_easy (Go nacl/box Seal) */
	uint8_t ref[56];
	CU_ASSERT_EQUAL(crypto_box_easy(ref, msg, 40, nonce, bp, a), 0);
	TK_ASSERT_MEM_EQ(ct, ref, 56);
	CU_ASSERT_EQUAL(tk_box_open(pt, ct, 56, nonce, ap, b), 0);
	TK_ASSERT_MEM_EQ(pt, msg, 40);
	uint8_t sh[32];
	CU_ASSERT_EQUAL(tk_box_precompute(sh, ap, b), 0);
	CU_ASSERT_EQUAL(tk_box_open_shared(pt, ct, 56, nonce, sh), 0);
	CU_ASSERT_EQUAL(tk_box_seal_shared(ct, msg, 40, nonce, sh), 0);
	TK_ASSERT_MEM_EQ(ct, ref, 56);
	ct[20] ^= 1;
	CU_ASSERT_EQUAL(tk_box_open(pt, ct, 56, nonce, ap, b), TK_ECRYPTO);
	CU_ASSERT_EQUAL(tk_box_open(pt, ct, 15, nonce, ap, b), TK_ECRYPTO);
}

static void
test_blake2s_params(void)
{
	uint8_t out[32], key[33] = { 0 };

	CU_ASSERT_EQUAL(tk_blake2s(out, 0, NULL, 0, NULL, 0), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_blake2s(out, 33, NULL, 0, NULL, 0), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_blake2s(out, 32, key, 33, NULL, 0), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_blake2s(out, 32, NULL, 5, NULL, 0), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_blake2s(out, 16, key, 32, (const uint8_t *)"x", 1), 0);
}

static void
test_blake2s_vs_libb2(void)
{
#ifdef TK_HAVE_LIBB2
	tk_fake_rng r;
	uint8_t in[2048], key[32], a[32], b[32];

	tk_fake_rng_init(&r, 11);
	for (int i = 0; i < 2000; i++) {
		size_t n = tk_rng_uniform(&r.fr_rng, sizeof(in) + 1);
		size_t kl = tk_rng_uniform(&r.fr_rng, 33);
		size_t ol = 1 + tk_rng_uniform(&r.fr_rng, 32);

		tk_rng_fill(&r.fr_rng, in, n);
		tk_rng_fill(&r.fr_rng, key, kl);
		CU_ASSERT_EQUAL_FATAL(tk_blake2s(a, ol, kl ? key : NULL, kl, in, n), 0);
		CU_ASSERT_EQUAL_FATAL(blake2s(b, in, kl ? key : NULL, ol, n, kl), 0);
		CU_ASSERT(memcmp(a, b, ol) == 0);
	}
#else
	CU_FAIL("libb2 not found: the differential BLAKE2s test needs libb2-dev (tools/setup.sh installs it)");
#endif
}

/* A completed initiator/responder pair for the reject tests. */
struct pair {
	tk_noise_hs i, r;
	uint8_t ipriv[32], rpriv[32], rpub[32];
	tk_noise_config ci, cr;
};

static void
pair_init(struct pair *p, const char *proto)
{
	static const uint8_t psk[32] = { 3 };

	memset(p, 0, sizeof(*p));
	tk_key_generate(p->ipriv, NULL);
	tk_key_generate(p->rpriv, NULL);
	tk_key_public(p->rpub, p->rpriv);
	p->ci.protocol_name = proto;
	p->ci.role = TK_NOISE_INITIATOR;
	p->ci.local_static_priv = p->ipriv;
	p->ci.remote_static_pub = p->rpub;
	p->ci.psk = psk;
	p->cr = p->ci;
	p->cr.role = TK_NOISE_RESPONDER;
	p->cr.local_static_priv = p->rpriv;
	p->cr.remote_static_pub = NULL;
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_init(&p->i, &p->ci), 0);
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_init(&p->r, &p->cr), 0);
}

static void
test_noise_rejects(void)
{
	const char *protos[] = { TK_NOISE_IK_NAME, TK_NOISE_IKPSK2_NAME };

	for (int pi = 0; pi < 2; pi++) {
		struct pair p;
		uint8_t m1[256], m2[256], bad[256], pt[256];
		size_t l1, l2, pl;

		pair_init(&p, protos[pi]);
		CU_ASSERT_EQUAL_FATAL(tk_noise_hs_write_msg1(&p.i, (const uint8_t *)"hi", 2, m1, sizeof(m1), &l1), 0);
		tk_noise_hs before = p.r;

		/* truncated at every length, and one byte too long with junk */
		for (size_t n = 0; n < l1; n++) {
			int rv = tk_noise_hs_read_msg1(&p.r, m1, n, pt, sizeof(pt), &pl);
			CU_ASSERT(rv == TK_EPROTO || rv == TK_ECRYPTO);
		}
		memcpy(bad, m1, l1);
		bad[l1] = 0;
		CU_ASSERT_EQUAL(tk_noise_hs_read_msg1(&p.r, bad, l1 + 1, pt, sizeof(pt), &pl), TK_ECRYPTO);
		/* every single-bit flip is caught */
		for (size_t byte = 0; byte < l1; byte++) {
			memcpy(bad, m1, l1);
			bad[byte] ^= 0x80;
			CU_ASSERT_NOT_EQUAL(tk_noise_hs_read_msg1(&p.r, bad, l1, pt, sizeof(pt), &pl), 0);
		}
		/* oversized */
		CU_ASSERT_EQUAL(tk_noise_hs_read_msg1(&p.r, m1, TK_NOISE_MAX_MSG + 1, pt, sizeof(pt), &pl), TK_EPROTO);
		/* short output buffer */
		CU_ASSERT_EQUAL(tk_noise_hs_read_msg1(&p.r, m1, l1, pt, 1, &pl), TK_EMSGSIZE);
		/* none of that changed the responder's state */
		CU_ASSERT(memcmp(&before, &p.r, sizeof(before)) == 0);

		CU_ASSERT_EQUAL_FATAL(tk_noise_hs_read_msg1(&p.r, m1, l1, pt, sizeof(pt), &pl), 0);
		CU_ASSERT_EQUAL(pl, 2);
		/* a second msg1 in the wrong state */
		CU_ASSERT_EQUAL(tk_noise_hs_read_msg1(&p.r, m1, l1, pt, sizeof(pt), &pl), TK_ESTATE);
		CU_ASSERT_EQUAL_FATAL(tk_noise_hs_write_msg2(&p.r, NULL, 0, m2, sizeof(m2), &l2), 0);
		tk_noise_hs ibefore = p.i;
		for (size_t n = 0; n < l2; n++)
			CU_ASSERT_NOT_EQUAL(tk_noise_hs_read_msg2(&p.i, m2, n, pt, sizeof(pt), &pl), 0);
		for (size_t byte = 0; byte < l2; byte++) {
			memcpy(bad, m2, l2);
			bad[byte] ^= 1;
			CU_ASSERT_NOT_EQUAL(tk_noise_hs_read_msg2(&p.i, bad, l2, pt, sizeof(pt), &pl), 0);
		}
		CU_ASSERT(memcmp(&ibefore, &p.i, sizeof(ibefore)) == 0);
		CU_ASSERT_EQUAL(tk_noise_hs_read_msg2(&p.i, m2, l2, pt, sizeof(pt), &pl), 0);
		uint8_t k1[32], k2[32];
		CU_ASSERT_EQUAL(tk_noise_hs_split(&p.i, k1, k2), 0);
		tk_noise_hs_wipe(&p.i);
		tk_noise_hs_wipe(&p.r);
	}
}

static void
test_noise_bad_config(void)
{
	tk_noise_hs hs;
	tk_noise_config c = { 0 };
	uint8_t k[32] = { 1 }, out[200];
	size_t n;

	CU_ASSERT_EQUAL(tk_noise_hs_init(&hs, NULL), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_noise_hs_init(&hs, &c), TK_EINVAL);
	c.protocol_name = "Noise_XX_25519_AESGCM_SHA256";
	c.local_static_priv = k;
	c.role = TK_NOISE_RESPONDER;
	CU_ASSERT_EQUAL(tk_noise_hs_init(&hs, &c), TK_EINVAL);
	c.protocol_name = TK_NOISE_IK_NAME;
	c.role = TK_NOISE_INITIATOR; /* no remote static */
	CU_ASSERT_EQUAL(tk_noise_hs_init(&hs, &c), TK_EINVAL);
	c.role = TK_NOISE_RESPONDER;
	CU_ASSERT_EQUAL(tk_noise_hs_init(&hs, &c), 0);
	/* a responder cannot write msg1 */
	CU_ASSERT_EQUAL(tk_noise_hs_write_msg1(&hs, NULL, 0, out, sizeof(out), &n), TK_ESTATE);
	CU_ASSERT_EQUAL(tk_noise_hs_split(&hs, k, k), TK_ESTATE);
	tk_noise_hs_wipe(&hs);
}

static void
test_noise_fault_injection(void)
{
	/* Allocation failures inside the readers leave state unchanged. */
	for (unsigned long f = 1; f < 8; f++) {
		struct pair p;
		uint8_t m1[256], m2[256], pt[64];
		size_t l1, l2, pl;
		int rv;

		pair_init(&p, TK_NOISE_IKPSK2_NAME);
		tk_noise_hs_write_msg1(&p.i, NULL, 0, m1, sizeof(m1), &l1);
		tk_fault_arm(f);
		rv = tk_noise_hs_read_msg1(&p.r, m1, l1, pt, sizeof(pt), &pl);
		if (tk_fault_fired()) {
			CU_ASSERT_EQUAL(rv, TK_ENOMEM);
			CU_ASSERT_EQUAL(p.r.hs_state, TK_NOISE_S_INIT);
			tk_fault_disarm();
			CU_ASSERT_EQUAL(tk_noise_hs_read_msg1(&p.r, m1, l1, pt, sizeof(pt), &pl), 0);
		} else {
			CU_ASSERT_EQUAL(rv, 0);
		}
		tk_fault_disarm();
		tk_noise_hs_write_msg2(&p.r, NULL, 0, m2, sizeof(m2), &l2);
		tk_fault_arm(f);
		rv = tk_noise_hs_read_msg2(&p.i, m2, l2, pt, sizeof(pt), &pl);
		if (tk_fault_fired()) {
			CU_ASSERT_EQUAL(rv, TK_ENOMEM);
			CU_ASSERT_EQUAL(p.i.hs_state, TK_NOISE_S_SENT1);
		} else {
			CU_ASSERT_EQUAL(rv, 0);
		}
		tk_fault_disarm();
	}
}

static void
test_cipherstate_exhaustion(void)
{
	tk_noise_cs tx, rx;
	uint8_t key[32] = { 5 }, buf[64], pt[64];

	tk_noise_cs_init(&tx, key, TK_NONCE_BE);
	tk_noise_cs_init(&rx, key, TK_NONCE_BE);
	tx.cs_n = rx.cs_n = UINT64_MAX - 1;
	CU_ASSERT_EQUAL(tk_noise_cs_seal(&tx, buf, NULL, 0, (const uint8_t *)"x", 1), 0);
	CU_ASSERT_EQUAL(tk_noise_cs_open(&rx, pt, NULL, 0, buf, 17), 0);
	CU_ASSERT_EQUAL(tk_noise_cs_seal(&tx, buf, NULL, 0, (const uint8_t *)"x", 1), TK_ESTATE);
	CU_ASSERT_EQUAL(tk_noise_cs_open(&rx, pt, NULL, 0, buf, 17), TK_ESTATE);
	/* a failed open does not advance the counter */
	tk_noise_cs_init(&rx, key, TK_NONCE_BE);
	buf[0] ^= 1;
	CU_ASSERT_EQUAL(tk_noise_cs_open(&rx, pt, NULL, 0, buf, 17), TK_ECRYPTO);
	CU_ASSERT_EQUAL(rx.cs_n, 0);
}

void
register_crypto_unit(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_aead_inplace_and_tamper),
		TK_TEST(test_x25519_and_box),
		TK_TEST(test_blake2s_params),
		TK_TEST(test_blake2s_vs_libb2),
		TK_TEST(test_noise_rejects),
		TK_TEST(test_noise_bad_config),
		TK_TEST(test_noise_fault_injection),
		TK_TEST(test_cipherstate_exhaustion),
		TK_TEST_END,
	};
	tk_test_suite("crypto", cases);
}
