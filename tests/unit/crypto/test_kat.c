/* Known answers: BLAKE2s (RFC 7693, keyed KAT), HMAC/KDF, WireGuard constants. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk/blake2s.h"
#include "tk/core.h"
#include "tk_test.h"

void register_kat(void);

static void
test_rfc7693_abc(void)
{
	/* RFC 7693 Appendix B. */
	uint8_t want[32], got[32];

	tk_test_unhex(want, 32, "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982");
	CU_ASSERT_EQUAL(tk_blake2s(got, 32, NULL, 0, (const uint8_t *)"abc", 3), 0);
	TK_ASSERT_MEM_EQ(got, want, 32);
}

/* RFC 7693 Appendix E: deterministic test sequence. */
static void
selftest_seq(uint8_t *out, size_t len, uint32_t seed)
{
	uint32_t a = 0xDEAD4BAD * seed, b = 1, t;

	for (size_t i = 0; i < len; i++) {
		t = a + b;
		a = b;
		b = t;
		out[i] = (uint8_t)(t >> 24);
	}
}

static void
test_rfc7693_selftest(void)
{
	/* RFC 7693 Appendix E, blake2s_selftest grand hash. */
	static const size_t md_len[] = { 16, 20, 28, 32 };
	static const size_t in_len[] = { 0, 3, 64, 65, 255, 1024 };
	uint8_t in[1024], md[32], key[32], want[32];
	tk_blake2s_ctx ctx;

	tk_test_unhex(want, 32, "6a411f08ce25adcdfb02aba641451cec53c598b24f4fc787fbdc88797f4c1dfe");
	CU_ASSERT_EQUAL_FATAL(tk_blake2s_init(&ctx, 32, NULL, 0), 0);
	for (size_t i = 0; i < 4; i++) {
		size_t outlen = md_len[i];

		for (size_t j = 0; j < 6; j++) {
			size_t inlen = in_len[j];

			selftest_seq(in, inlen, (uint32_t)inlen);
			tk_blake2s(md, outlen, NULL, 0, in, inlen);
			tk_blake2s_update(&ctx, md, outlen);
			selftest_seq(key, outlen, (uint32_t)outlen);
			tk_blake2s(md, outlen, key, outlen, in, inlen);
			tk_blake2s_update(&ctx, md, outlen);
		}
	}
	tk_blake2s_final(&ctx, md);
	TK_ASSERT_MEM_EQ(md, want, 32);
}

static void
test_keyed_kat_file(void)
{
	char *text = tk_test_read_file(tk_test_vector_path("blake2s_keyed_kat.txt"), NULL);
	uint8_t key[32], in[256], want[32], got[32];
	int checked = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(text);
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 256; i++)
		in[i] = (uint8_t)i;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		unsigned n;
		char hex[65];

		if (line[0] == '#' || sscanf(line, "%u %64s", &n, hex) != 2)
			continue;
		tk_test_unhex(want, 32, hex);
		tk_blake2s(got, 32, key, 32, in, n);
		CU_ASSERT(memcmp(got, want, 32) == 0);
		/* streaming in odd pieces gives the same answer */
		tk_blake2s_ctx c;
		tk_blake2s_init(&c, 32, key, 32);
		for (unsigned off = 0; off < n;) {
			unsigned take = (off % 7) + 1;
			if (take > n - off)
				take = n - off;
			tk_blake2s_update(&c, in + off, take);
			off += take;
		}
		tk_blake2s_final(&c, got);
		CU_ASSERT(memcmp(got, want, 32) == 0);
		checked++;
	}
	CU_ASSERT_EQUAL(checked, 256);
	free(text);
}

static void
test_wireguard_initial_constants(void)
{
	/* whitepaper §5.4.2: Ci = HASH(Construction), Hi = HASH(Ci || Identifier) */
	static const char construction[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
	static const char identifier[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";
	uint8_t ci[32], hi[32], want[32];
	tk_blake2s_ctx c;

	tk_blake2s(ci, 32, NULL, 0, (const uint8_t *)construction, strlen(construction));
	tk_test_unhex(want, 32, "60e26daef327efc02ec335e2a025d2d016eb4206f87277f52d38d1988b78cd36");
	TK_ASSERT_MEM_EQ(ci, want, 32);
	tk_blake2s_init(&c, 32, NULL, 0);
	tk_blake2s_update(&c, ci, 32);
	tk_blake2s_update(&c, (const uint8_t *)identifier, strlen(identifier));
	tk_blake2s_final(&c, hi);
	tk_test_unhex(want, 32, "2211b361081ac566691243db458ad5322d9c6c662293e8b70ee19c65ba079ef3");
	TK_ASSERT_MEM_EQ(hi, want, 32);
}

static void
test_hmac_kdf_consistency(void)
{
	/* KDF outputs are a prefix-consistent chain: KDF1 == first of KDF3. */
	uint8_t key[32], a1[32], b1[32], b2[32], c1[32], c2[32], c3[32];

	memset(key, 0x42, sizeof(key));
	tk_kdf(a1, NULL, NULL, key, (const uint8_t *)"in", 2);
	tk_kdf(b1, b2, NULL, key, (const uint8_t *)"in", 2);
	tk_kdf(c1, c2, c3, key, (const uint8_t *)"in", 2);
	TK_ASSERT_MEM_EQ(a1, b1, 32);
	TK_ASSERT_MEM_EQ(b1, c1, 32);
	TK_ASSERT_MEM_EQ(b2, c2, 32);
	CU_ASSERT(memcmp(c2, c3, 32) != 0);
	/* t1 = HMAC(HMAC(key, in), 0x01) by definition */
	uint8_t prk[32], t1[32], one = 1;
	tk_hmac_blake2s(prk, key, 32, (const uint8_t *)"in", 2);
	tk_hmac_blake2s(t1, prk, 32, &one, 1);
	TK_ASSERT_MEM_EQ(t1, a1, 32);
}

static void
test_hmac_kdf_vectors(void)
{
	/* Computed with CPython's hmac + hashlib.blake2s (independent code). */
	uint8_t got[32], want[32], k100[100], m200[200], key[32], t[3][32];

	tk_hmac_blake2s(got, (const uint8_t *)"key", 3,
	    (const uint8_t *)"The quick brown fox jumps over the lazy dog", 43);
	tk_test_unhex(want, 32, "f93215bb90d4af4c3061cd932fb169fb8bb8a91d0b4022baea1271e1323cd9a0");
	TK_ASSERT_MEM_EQ(got, want, 32);
	/* a key longer than the block is hashed first (RFC 2104 §2) */
	for (int i = 0; i < 100; i++)
		k100[i] = (uint8_t)i;
	memset(m200, 'x', sizeof(m200));
	tk_hmac_blake2s(got, k100, sizeof(k100), m200, sizeof(m200));
	tk_test_unhex(want, 32, "834cd67f8ca0de35dfcdfff1510ae170f5850f5455aba1c085196c441d7ca7d9");
	TK_ASSERT_MEM_EQ(got, want, 32);
	memset(key, 0x42, sizeof(key));
	tk_kdf(t[0], t[1], t[2], key, (const uint8_t *)"in", 2);
	tk_test_unhex(want, 32, "d13037b52e9a96dbf7eaf599b29456052ff7210a981dea51a7586eb4729326b8");
	TK_ASSERT_MEM_EQ(t[0], want, 32);
	tk_test_unhex(want, 32, "c3f337231b386affed48c16248ddf446d89112b21843e85da5787568d393c7bb");
	TK_ASSERT_MEM_EQ(t[1], want, 32);
	tk_test_unhex(want, 32, "9b8984ffbf51d48e2afb3af37083a0066f9f6b38b3cada65873f4f5b534c8641");
	TK_ASSERT_MEM_EQ(t[2], want, 32);
}

void
register_kat(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_rfc7693_abc),
		TK_TEST(test_rfc7693_selftest),
		TK_TEST(test_keyed_kat_file),
		TK_TEST(test_wireguard_initial_constants),
		TK_TEST(test_hmac_kdf_consistency),
		TK_TEST(test_hmac_kdf_vectors),
		TK_TEST_END,
	};
	tk_test_suite("blake2s_kat", cases);
}
