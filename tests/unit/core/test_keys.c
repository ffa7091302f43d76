#include <string.h>

#include "tk/core.h"
#include "tk_test.h"

void register_keys(void);

/* tailscale types/key node_test.go / machine_test.go known answer. */
#define KAT_PRIV "privkey:40ab1b58e9076c7a4d9d07291f5edf9d1aa017eb949624ba683317f48a640369"
#define KAT_PUB_HEX "50d20b455ecf12bc453f83c2cfdb2a24925d06cf2598dcaa54e91af82ce9f765"

static void
test_key_kat(void)
{
	tk_node_priv priv;
	tk_node_pub pub;
	tk_machine_priv mpriv;
	tk_machine_pub mpub;
	char text[TK_KEY_TEXT_MAX];

	CU_ASSERT_EQUAL_FATAL(tk_node_priv_parse(&priv, KAT_PRIV), 0);
	CU_ASSERT_EQUAL_FATAL(tk_node_priv_public(&priv, &pub), 0);
	tk_node_pub_format(&pub, text);
	CU_ASSERT_STRING_EQUAL(text, "nodekey:" KAT_PUB_HEX);
	tk_node_priv_format(&priv, text);
	CU_ASSERT_STRING_EQUAL(text, KAT_PRIV);

	CU_ASSERT_EQUAL_FATAL(tk_machine_priv_parse(&mpriv, KAT_PRIV), 0);
	CU_ASSERT_EQUAL_FATAL(tk_machine_priv_public(&mpriv, &mpub), 0);
	tk_machine_pub_format(&mpub, text);
	CU_ASSERT_STRING_EQUAL(text, "mkey:" KAT_PUB_HEX);
}

static void
test_key_text_rejects(void)
{
	tk_node_pub k;
	tk_disco_pub d;

	memset(&k, 0x5a, sizeof(k));
	/* wrong prefix */
	CU_ASSERT_EQUAL(tk_node_pub_parse(&k, "mkey:" KAT_PUB_HEX), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_node_pub_parse(&k, "NODEKEY:" KAT_PUB_HEX), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_node_pub_parse(&k, KAT_PUB_HEX), TK_EINVAL);
	/* wrong length */
	CU_ASSERT_EQUAL(tk_node_pub_parse(&k, "nodekey:50d2"), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_node_pub_parse(&k, "nodekey:" KAT_PUB_HEX "00"), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_node_pub_parse(&k, ""), TK_EINVAL);
	/* bad hex */
	CU_ASSERT_EQUAL(tk_node_pub_parse(&k,
	    "nodekey:z0d20b455ecf12bc453f83c2cfdb2a24925d06cf2598dcaa54e91af82ce9f765"),
	    TK_EINVAL);
	CU_ASSERT_EQUAL(k.b[0], 0x5a);
	/* uppercase hex accepted */
	CU_ASSERT_EQUAL(tk_disco_pub_parse(&d,
	    "discokey:50D20B455ECF12BC453F83C2CFDB2A24925D06CF2598DCAA54E91AF82CE9F765"), 0);
	CU_ASSERT_EQUAL(d.b[0], 0x50);
}

static void
test_key_base64(void)
{
	uint8_t k[32], k2[32];
	char b64[TK_KEY_BASE64_LEN + 1];

	for (int i = 0; i < 32; i++)
		k[i] = (uint8_t)i;
	tk_key_to_base64(b64, k);
	CU_ASSERT_STRING_EQUAL(b64, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
	CU_ASSERT_EQUAL(tk_key_from_base64(k2, b64, strlen(b64)), 0);
	CU_ASSERT(memcmp(k, k2, 32) == 0);
	/* a 33-byte base64 (also 44 chars) is rejected, as is a short one */
	CU_ASSERT_EQUAL(tk_key_from_base64(k2, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g",
	    44), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_key_from_base64(k2, "AAEC", 4), TK_EINVAL);
}

static void
test_key_generate(void)
{
	tk_fake_rng r;
	tk_node_priv a, b;
	tk_node_pub pa;
	char fp[TK_KEY_FP_MAX];

	tk_fake_rng_init(&r, 1);
	tk_node_priv_generate(&a, &r.fr_rng);
	tk_node_priv_generate(&b, &r.fr_rng);
	CU_ASSERT(memcmp(&a, &b, sizeof(a)) != 0);
	CU_ASSERT_EQUAL(a.b[0] & 7, 0);
	CU_ASSERT_EQUAL(a.b[31] & 0xc0, 0x40);
	CU_ASSERT_EQUAL(tk_node_priv_public(&a, &pa), 0);
	CU_ASSERT_FALSE(tk_key_is_zero(pa.b));
	tk_key_fingerprint(fp, TK_PREFIX_NODE_PUB, pa.b);
	CU_ASSERT_EQUAL(strlen(fp), strlen("nodekey:") + 8);
	/* a deterministic rng repeats */
	tk_fake_rng_init(&r, 1);
	tk_node_priv_generate(&b, &r.fr_rng);
	CU_ASSERT(memcmp(&a, &b, sizeof(a)) == 0);
}

void
register_keys(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_key_kat),
		TK_TEST(test_key_text_rejects),
		TK_TEST(test_key_base64),
		TK_TEST(test_key_generate),
		TK_TEST_END,
	};
	tk_test_suite("keys", cases);
}
