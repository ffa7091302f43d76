#include <string.h>

#include "tk/core.h"
#include "tk_test.h"

void register_enc(void);

/* RFC 4648 section 10 test vectors. */
static const struct {
	const char *in, *b64, *hex;
} rfc4648[] = {
	{ "", "", "" },
	{ "f", "Zg==", "66" },
	{ "fo", "Zm8=", "666f" },
	{ "foo", "Zm9v", "666f6f" },
	{ "foob", "Zm9vYg==", "666f6f62" },
	{ "fooba", "Zm9vYmE=", "666f6f6261" },
	{ "foobar", "Zm9vYmFy", "666f6f626172" },
};

static void
test_base64_rfc4648(void)
{
	for (size_t i = 0; i < TK_ARRAY_LEN(rfc4648); i++) {
		char enc[64];
		uint8_t dec[64];
		size_t n = 99;
		const char *in = rfc4648[i].in;

		tk_base64_encode(enc, (const uint8_t *)in, strlen(in));
		CU_ASSERT_STRING_EQUAL(enc, rfc4648[i].b64);
		CU_ASSERT_EQUAL(tk_base64_decode(dec, sizeof(dec), &n,
		    rfc4648[i].b64, strlen(rfc4648[i].b64)), 0);
		CU_ASSERT_EQUAL(n, strlen(in));
		CU_ASSERT(memcmp(dec, in, n) == 0);
	}
}

static void
test_base64_rejects(void)
{
	static const char *bad[] = {
		"Zg=",	    /* truncated */
		"Zg",	    /* no padding */
		"Zh==",	    /* non-canonical trailing bits */
		"Zm9=",	    /* non-canonical trailing bits (1 pad) */
		"Z===",	    /* too much padding */
		"Zm9v\n",   /* stray char / length */
		"Zm 9",	    /* space */
		"Zm9-",	    /* url alphabet */
		"=Zm9",	    /* padding in front */
		"Zg==Zm9v", /* padding in the middle */
		"Zm9v\0Zm9", /* embedded NUL (length 8 given below) */
	};
	uint8_t out[16];

	for (size_t i = 0; i < TK_ARRAY_LEN(bad); i++) {
		size_t n = 77, len = i == 10 ? 8 : strlen(bad[i]);

		memset(out, 0xAA, sizeof(out));
		CU_ASSERT_EQUAL(tk_base64_decode(out, sizeof(out), &n, bad[i],
		    len), TK_EINVAL);
		CU_ASSERT_EQUAL(n, 77); /* untouched on failure */
		CU_ASSERT_EQUAL(out[0], 0xAA);
	}
	/* Oversized for the output buffer. */
	size_t n;
	CU_ASSERT_EQUAL(tk_base64_decode(out, 2, &n, "Zm9v", 4), TK_EMSGSIZE);
}

static void
test_base64_roundtrip_random(void)
{
	tk_fake_rng r;
	uint8_t in[300], dec[300];
	char enc[TK_BASE64_LEN(300) + 1];

	tk_fake_rng_init(&r, 7);
	for (size_t n = 0; n <= 300; n++) {
		size_t got;

		tk_rng_fill(&r.fr_rng, in, n);
		tk_base64_encode(enc, in, n);
		CU_ASSERT_EQUAL(strlen(enc), TK_BASE64_LEN(n));
		CU_ASSERT_EQUAL_FATAL(tk_base64_decode(dec, sizeof(dec), &got,
		    enc, strlen(enc)), 0);
		CU_ASSERT_EQUAL(got, n);
		CU_ASSERT(memcmp(in, dec, n) == 0);
	}
}

static void
test_hex(void)
{
	uint8_t out[8];
	char enc[17];

	for (size_t i = 0; i < TK_ARRAY_LEN(rfc4648); i++) {
		const char *in = rfc4648[i].in;
		size_t n = strlen(in);

		tk_hex_encode(enc, (const uint8_t *)in, n);
		CU_ASSERT_STRING_EQUAL(enc, rfc4648[i].hex);
		CU_ASSERT_EQUAL(tk_hex_decode(out, n, enc, 2 * n), 0);
		CU_ASSERT(memcmp(out, in, n) == 0);
	}
	CU_ASSERT_EQUAL(tk_hex_decode(out, 2, "ABcd", 4), 0);
	CU_ASSERT_EQUAL(out[0], 0xab);
	CU_ASSERT_EQUAL(out[1], 0xcd);
	memset(out, 0x11, sizeof(out));
	CU_ASSERT_EQUAL(tk_hex_decode(out, 2, "abcg", 4), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_hex_decode(out, 2, "abc", 3), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_hex_decode(out, 2, "ab:d", 4), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_hex_decode(out, 2, "ab G", 4), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_hex_decode(out, 1, "/0", 2), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_hex_decode(out, 1, "@0", 2), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_hex_decode(out, 1, "`0", 2), TK_EINVAL);
	CU_ASSERT_EQUAL(out[0], 0x11); /* untouched on failure */
	/* every single byte value: only 0-9a-fA-F are accepted */
	for (int c = 0; c < 256; c++) {
		char s[3] = { (char)c, '0', 0 };
		int ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		    (c >= 'A' && c <= 'F');

		CU_ASSERT_EQUAL(tk_hex_decode(out, 1, s, 2) == 0, ok);
	}
}

void
register_enc(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_base64_rfc4648),
		TK_TEST(test_base64_rejects),
		TK_TEST(test_base64_roundtrip_random),
		TK_TEST(test_hex),
		TK_TEST_END,
	};
	tk_test_suite("enc", cases);
}
