/*
 * libs/derp sealed bodies: ClientInfo/ServerInfo JSON as Go's
 * encoding/json reads them into derp.ClientInfo / derp.ServerInfo, their
 * builders, and the NaCl box around them.
 *
 * Expected results were checked against Go 1.26 json.Unmarshal into
 * tailscale.com v1.102.3 derp.ClientInfo and derp.ServerInfo (the
 * behaviour of key.DERPMesh.UnmarshalJSON included), and
 * derp_test.go TestClientInfoUnmarshal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tk/core.h"
#include "tk/derp.h"
#include "tk/mem.h"
#include "tk_test.h"

void register_derp_info(void);

#define MESH "6d529e9d4ef632d22d4a4214cb49da8f1ba1b72697061fb24e312984c35ec8d8"
#define MESH_UP "6D529E9D4EF632D22D4A4214CB49DA8F1BA1B72697061FB24E312984C35EC8D8"

static const struct ci_case {
	const char *json;
	int rc;
	int64_t version;
	bool ack, prober, mesh;
	const char *app;
} ci_cases[] = {
	/* what tailscaled sends (magicsock derpWriteChanForRegion) */
	{ "{\"version\":2,\"CanAckPings\":true}", 0, 2, true, false, false, "" },
	/* TestClientInfoUnmarshal */
	{ "{}", 0, 0, false, false, false, "" },
	{ "{\"Version\":5,\"MeshKey\":\"" MESH "\"}", 0, 5, false, false, true, "" },
	{ "{\"version\":5,\"meshKey\":\"" MESH "\"}", 0, 5, false, false, true, "" },
	{ "{\"version\":5,\"meshKey\":\"abcdefg\"}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"version\":5,\"meshKey\":\"ffffffffffffffffffffffffffffffffffffffff"
	  "ffffffffffffffffffffffffffff\"}", TK_EPROTO, 0, false, false, false, "" },
	/* mesh keys: 64 hex digits of either case, nothing else */
	{ "{\"MESHKEY\":\"" MESH_UP "\"}", 0, 0, false, false, true, "" },
	{ "{\"meshKey\":\"" MESH "0\"}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"meshKey\":\"" MESH "00\"}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"meshKey\":\"6d529e9d4ef632d22d4a4214cb49da8f1ba1b72697061fb24e312984c35ec8d\"}",
	    TK_EPROTO, 0, false, false, false, "" },
	{ "{\"meshKey\":\"gd529e9d4ef632d22d4a4214cb49da8f1ba1b72697061fb24e312984c35ec8d8\"}",
	    TK_EPROTO, 0, false, false, false, "" },
	{ "{\"meshKey\":\" 6d529e9d4ef632d22d4a4214cb49da8f1ba1b72697061fb24e312984c35ec8d\"}",
	    TK_EPROTO, 0, false, false, false, "" },
	{ "{\"meshKey\":\"\"}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"meshKey\":5}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"meshKey\":[]}", TK_EPROTO, 0, false, false, false, "" },
	/* key.DERPMesh has UnmarshalJSON, which Go calls for null too, and it
	 * refuses the empty string that null leaves it. */
	{ "{\"meshKey\":null}", TK_EPROTO, 0, false, false, false, "" },
	/* escapes are decoded before the hex is read */
	{ "{\"meshKey\":\"\\u0036d529e9d4ef632d22d4a4214cb49da8f1ba1b72697061fb24e312984c35ec8d8\"}",
	    0, 0, false, false, true, "" },
	/* numbers: an int field takes integers only */
	{ "{\"version\":2.0}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"version\":1e2}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"version\":-0}", 0, 0, false, false, false, "" },
	{ "{\"version\":-7}", 0, -7, false, false, false, "" },
	{ "{\"version\":9223372036854775807}", 0, INT64_MAX, false, false, false, "" },
	{ "{\"version\":-9223372036854775808}", 0, INT64_MIN, false, false, false, "" },
	{ "{\"version\":9223372036854775808}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"version\":\"2\"}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"version\":true}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"version\":[2]}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"version\":{}}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"version\":02}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"version\":+2}", TK_EPROTO, 0, false, false, false, "" },
	/* wrong types */
	{ "{\"CanAckPings\":1}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"CanAckPings\":\"true\"}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"IsProber\":{}}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"AppName\":5}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"AppName\":[\"x\"]}", TK_EPROTO, 0, false, false, false, "" },
	/* null leaves a field alone */
	{ "{\"version\":null,\"CanAckPings\":null,\"IsProber\":null,"
	  "\"AppName\":null}", 0, 0, false, false, false, "" },
	{ "null", 0, 0, false, false, false, "" },
	{ " \t\r\n{ } \n", 0, 0, false, false, false, "" },
	/* not an object */
	{ "[]", TK_EPROTO, 0, false, false, false, "" },
	{ "[{\"version\":2}]", TK_EPROTO, 0, false, false, false, "" },
	{ "\"x\"", TK_EPROTO, 0, false, false, false, "" },
	{ "2", TK_EPROTO, 0, false, false, false, "" },
	{ "true", TK_EPROTO, 0, false, false, false, "" },
	/* not JSON */
	{ "", TK_EPROTO, 0, false, false, false, "" },
	{ " ", TK_EPROTO, 0, false, false, false, "" },
	{ "{", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"version\":2", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"version\":2}x", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"version\":2}{}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"version\":2,}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"version\" 2}", TK_EPROTO, 0, false, false, false, "" },
	{ "{version:2}", TK_EPROTO, 0, false, false, false, "" },
	{ "{'version':2}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"x\":tru}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"x\":nul}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"x\":[1,]}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"x\":\"\\x\"}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"x\":\"\\u12\"}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"x\":\"a\tb\"}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"x\":-}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"x\":1.}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"x\":.5}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"x\":1e}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"x\":NaN}", TK_EPROTO, 0, false, false, false, "" },
	{ "\xef\xbb\xbf{}", TK_EPROTO, 0, false, false, false, "" }, /* a BOM */
	/* unknown keys are skipped, whatever they hold */
	{ "{\"version\":2,\"Foo\":[1,{\"a\":null},\"]\"],\"bar\":{\"x\":\"}\"},"
	  "\"CanAckPings\":true,\"baz\":-1.5e-3}", 0, 2, true, false, false, "" },
	/* keys match case-insensitively, escapes decoded first */
	{ "{\"VERSION\":3,\"canackpings\":true,\"isprober\":true,"
	  "\"appname\":\"x\"}", 0, 3, true, true, false, "x" },
	{ "{\"ver\\u0073ion\":4}", 0, 4, false, false, false, "" },
	/* ... with Unicode simple folding: U+017F LONG S is 's' and U+212A
	 * KELVIN SIGN is 'k' (encoding/json foldName). */
	{ "{\"ver\xc5\xbfion\":4,\"CanAc\xe2\x84\xaaPings\":true}", 0, 4, true,
	    false, false, "" },
	{ "{\"versio\\u006e\":4,\"I\\u017fProber\":true}", 0, 4, false, true,
	    false, "" },
	/* ... but no other non-ASCII letter */
	{ "{\"v\xc3\xa9rsion\":4}", 0, 0, false, false, false, "" },
	/* duplicate keys: each occurrence in order, as Go decodes them */
	{ "{\"version\":1,\"version\":2}", 0, 2, false, false, false, "" },
	{ "{\"version\":1,\"version\":null}", 0, 1, false, false, false, "" },
	{ "{\"version\":1,\"Version\":2,\"version\":3}", 0, 3, false, false,
	    false, "" },
	{ "{\"version\":\"x\",\"version\":2}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"version\":2,\"version\":2.5}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"meshKey\":\"" MESH "\",\"meshKey\":\"00\"}", TK_EPROTO, 0, false, false, false, "" },
	{ "{\"AppName\":\"a\",\"appname\":\"b\"}", 0, 0, false, false, false, "b" },
	/* strings: Go keeps NUL and maps invalid UTF-8 to U+FFFD; the C
	 * name stops at the NUL */
	{ "{\"AppName\":\"a\\u0000b\"}", 0, 0, false, false, false, "a" },
	{ "{\"AppName\":\"\xff\"}", 0, 0, false, false, false, "\xef\xbf\xbd" },
	{ "{\"AppName\":\"\\ud83d\\ude00\"}", 0, 0, false, false, false,
	    "\xf0\x9f\x98\x80" },
	{ "{\"AppName\":\"\\ud800\"}", 0, 0, false, false, false,
	    "\xef\xbf\xbd" },
	{ "{\"AppName\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}", 0, 0, false, false,
	    false, "\"\\/\b\f\n\r\t" },
	{ "{\"AppName\":\"0123456789012345678901234567890123456789"
	  "0123456789012345678901234567890123456789\"}", 0, 0, false, false,
	    false, "012345678901234567890123456789012345678901234567890123456789012" },
};

static void
test_client_info_parse(void)
{
	for (size_t i = 0; i < TK_ARRAY_LEN(ci_cases); i++) {
		const struct ci_case *c = &ci_cases[i];
		size_t n = strlen(c->json);
		uint8_t *p = malloc(n ? n : 1); /* no NUL after the text */
		tk_derp_client_info ci;
		int rc;

		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		memcpy(p, c->json, n);
		memset(&ci, 0xa5, sizeof(ci));
		rc = tk_derp_client_info_parse(p, n, &ci);
		CU_ASSERT_EQUAL(rc, c->rc);
		if (rc != c->rc) {
			fprintf(stderr, "\n  ClientInfo %s: rc %d want %d\n", c->json,
			    rc, c->rc);
		} else if (rc == 0) {
			bool same = ci.version == c->version &&
			    ci.can_ack_pings == c->ack && ci.is_prober == c->prober &&
			    ci.has_mesh_key == c->mesh &&
			    strcmp(ci.app_name, c->app) == 0;
			CU_ASSERT_TRUE(same);
			if (!same)
				fprintf(stderr, "\n  ClientInfo %s: v %lld ack %d "
				    "prober %d mesh %d app \"%s\"\n", c->json,
				    (long long)ci.version, ci.can_ack_pings,
				    ci.is_prober, ci.has_mesh_key, ci.app_name);
			if (c->mesh) {
				uint8_t want[32];
				tk_test_unhex(want, 32, MESH);
				TK_ASSERT_MEM_EQ(ci.mesh_key, want, 32);
			} else {
				CU_ASSERT(tk_ct_is_zero(ci.mesh_key, 32));
			}
		} else {
			/* out is written only on success */
			uint8_t s[sizeof(ci)];
			memset(s, 0xa5, sizeof(s));
			TK_ASSERT_MEM_EQ(&ci, s, sizeof(ci));
		}
		free(p);
	}
}

static const struct si_case {
	const char *json;
	int rc;
	int64_t version, rate, burst;
} si_cases[] = {
	{ "{\"version\":2}", 0, 2, 0, 0 },
	{ "{\"TokenBucketBytesPerSecond\":5,\"tokenbucketbytesburst\":7}", 0,
	    0, 5, 7 },
	{ "{\"version\":2,\"TokenBucketBytesPerSecond\":-1,"
	  "\"TokenBucketBytesBurst\":9223372036854775807}", 0, 2, -1, INT64_MAX },
	{ "{\"To\xe2\x84\xaa" "enBucketBytesBur\xc5\xbft\":3}", 0, 0, 0, 3 },
	{ "null", 0, 0, 0, 0 },
	{ "{\"meshKey\":null,\"version\":null}", 0, 0, 0, 0 },
	{ "{\"version\":2,\"version\":null}", 0, 2, 0, 0 },
	{ "{\"version\":2.0}", TK_EPROTO, 0, 0, 0 },
	{ "{\"TokenBucketBytesBurst\":\"1\"}", TK_EPROTO, 0, 0, 0 },
	{ "{\"version\":\"x\",\"version\":2}", TK_EPROTO, 0, 0, 0 },
	{ "[]", TK_EPROTO, 0, 0, 0 },
	{ "", TK_EPROTO, 0, 0, 0 },
	{ "{\"version\":2", TK_EPROTO, 0, 0, 0 },
};

static void
test_server_info_parse(void)
{
	for (size_t i = 0; i < TK_ARRAY_LEN(si_cases); i++) {
		const struct si_case *c = &si_cases[i];
		size_t n = strlen(c->json);
		uint8_t *p = malloc(n ? n : 1);
		tk_derp_server_info si = { 11, 12, 13 };
		int rc;

		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		memcpy(p, c->json, n);
		rc = tk_derp_server_info_parse(p, n, &si);
		CU_ASSERT_EQUAL(rc, c->rc);
		if (rc != c->rc)
			fprintf(stderr, "\n  ServerInfo %s: rc %d want %d\n", c->json,
			    rc, c->rc);
		if (rc == 0 && c->rc == 0) {
			CU_ASSERT_EQUAL(si.version, c->version);
			CU_ASSERT_EQUAL(si.token_bucket_bytes_per_second, c->rate);
			CU_ASSERT_EQUAL(si.token_bucket_bytes_burst, c->burst);
		} else if (rc != 0) {
			CU_ASSERT(si.version == 11 &&
			    si.token_bucket_bytes_per_second == 12 &&
			    si.token_bucket_bytes_burst == 13);
		}
		free(p);
	}
}

/* Deep nesting in an ignored member: Go's scanner allows 10000 levels. */
static void
test_info_nesting(void)
{
	size_t depth = 5000, n = 0;
	char *s = malloc(2 * depth + 64);
	tk_derp_client_info ci;

	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	n += (size_t)sprintf(s, "{\"x\":");
	for (size_t i = 0; i < depth; i++)
		s[n++] = '[';
	for (size_t i = 0; i < depth; i++)
		s[n++] = ']';
	n += (size_t)sprintf(s + n, ",\"version\":2}");
	CU_ASSERT_EQUAL(tk_derp_client_info_parse((uint8_t *)s, n, &ci), 0);
	CU_ASSERT_EQUAL(ci.version, 2);
	/* unbalanced */
	s[5 + depth] = '}';
	CU_ASSERT_EQUAL(tk_derp_client_info_parse((uint8_t *)s, n, &ci),
	    TK_EPROTO);
	free(s);

	/* Go's limit: the object and 9999 arrays, not 10000 */
	for (depth = 9999; depth <= 10000; depth++) {
		s = malloc(2 * depth + 64);
		CU_ASSERT_PTR_NOT_NULL_FATAL(s);
		n = (size_t)sprintf(s, "{\"x\":");
		for (size_t i = 0; i < depth; i++)
			s[n++] = '[';
		for (size_t i = 0; i < depth; i++)
			s[n++] = ']';
		s[n++] = '}';
		CU_ASSERT_EQUAL(tk_derp_client_info_parse((uint8_t *)s, n, &ci),
		    depth == 9999 ? 0 : TK_EPROTO);
		free(s);
	}

	/* past Go's limit: an error, not a stack overflow */
	depth = 20000;
	s = malloc(2 * depth + 64);
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	n = (size_t)sprintf(s, "{\"x\":");
	for (size_t i = 0; i < depth; i++)
		s[n++] = '[';
	for (size_t i = 0; i < depth; i++)
		s[n++] = ']';
	s[n++] = '}';
	CU_ASSERT_EQUAL(tk_derp_client_info_parse((uint8_t *)s, n, &ci),
	    TK_EPROTO);
	free(s);
}

static void
test_client_info_build(void)
{
	tk_derp_client_info ci;
	char out[512];
	size_t len = 0;

	/* Exactly the bytes Go's client writes. */
	memset(&ci, 0, sizeof(ci));
	ci.version = TK_DERP_PROTOCOL_VERSION;
	ci.can_ack_pings = true;
	CU_ASSERT_EQUAL(tk_derp_client_info_json(&ci, out, sizeof(out), &len), 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"version\":2,\"CanAckPings\":true}");
	CU_ASSERT_EQUAL(len, strlen(out));

	memset(&ci, 0, sizeof(ci));
	CU_ASSERT_EQUAL(tk_derp_client_info_json(&ci, out, sizeof(out), &len), 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"CanAckPings\":false}");

	ci.has_mesh_key = true;
	tk_test_unhex(ci.mesh_key, 32, MESH);
	ci.version = 2;
	ci.is_prober = true;
	strcpy(ci.app_name, "tailkit-1.0");
	CU_ASSERT_EQUAL(tk_derp_client_info_json(&ci, out, sizeof(out), &len), 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"meshKey\":\"" MESH "\",\"version\":2,"
	    "\"CanAckPings\":false,\"IsProber\":true,\"AppName\":\"tailkit-1.0\"}");

	/* every cap too small: TK_EMSGSIZE; len+1 fits */
	size_t full = len;
	for (size_t cap = 0; cap <= full; cap++) {
		char *o = malloc(cap ? cap : 1);
		size_t l = 999;
		CU_ASSERT_EQUAL(tk_derp_client_info_json(&ci, o, cap, &l),
		    TK_EMSGSIZE);
		CU_ASSERT_EQUAL(l, 999);
		free(o);
	}
	char *o = malloc(full + 1);
	CU_ASSERT_EQUAL(tk_derp_client_info_json(&ci, o, full + 1, &len), 0);
	CU_ASSERT_EQUAL(len, full);
	free(o);

	/* names the builder cannot write plainly */
	static const char *bad[] = { "a\"b", "a\\b", "a\nb", "\x7f", "caf\xc3\xa9" };
	for (size_t i = 0; i < TK_ARRAY_LEN(bad); i++) {
		memset(&ci, 0, sizeof(ci));
		strcpy(ci.app_name, bad[i]);
		CU_ASSERT_EQUAL(tk_derp_client_info_json(&ci, out, sizeof(out),
				    &len), TK_EINVAL);
	}
}

static void
test_server_info_build(void)
{
	tk_derp_server_info si = { 2, 0, 0 };
	char out[256];
	size_t len;

	CU_ASSERT_EQUAL(tk_derp_server_info_json(&si, out, sizeof(out), &len), 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"version\":2}"); /* derpserver.go */
	si.version = 0;
	CU_ASSERT_EQUAL(tk_derp_server_info_json(&si, out, sizeof(out), &len), 0);
	CU_ASSERT_STRING_EQUAL(out, "{}");
	si = (tk_derp_server_info){ 2, 5, 7 };
	CU_ASSERT_EQUAL(tk_derp_server_info_json(&si, out, sizeof(out), &len), 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"version\":2,\"TokenBucketBytesPerSecond\":5,"
	    "\"TokenBucketBytesBurst\":7}");
	si = (tk_derp_server_info){ 0, 0, 7 };
	CU_ASSERT_EQUAL(tk_derp_server_info_json(&si, out, sizeof(out), &len), 0);
	CU_ASSERT_STRING_EQUAL(out, "{\"TokenBucketBytesBurst\":7}");
	si = (tk_derp_server_info){ INT64_MIN, INT64_MAX, -1 };
	size_t full;
	CU_ASSERT_EQUAL(tk_derp_server_info_json(&si, out, sizeof(out), &full), 0);
	for (size_t cap = 0; cap <= full; cap++)
		CU_ASSERT_EQUAL(tk_derp_server_info_json(&si, out, cap, &len),
		    TK_EMSGSIZE);
}

static void
test_info_round_trip(void)
{
	static const tk_derp_client_info cis[] = {
		{ 2, true, false, false, { 0 }, "" },
		{ 0, false, false, false, { 0 }, "" },
		{ INT64_MIN, true, true, true, { 1, 2, 3 }, "x" },
		{ INT64_MAX, false, true, true, { 0 }, "tailkit derp probe 1.2.3" },
		{ -1, false, false, false, { 0 },
		    "012345678901234567890123456789012345678901234567890123456789012" },
	};
	static const tk_derp_server_info sis[] = {
		{ 2, 0, 0 }, { 0, 0, 0 }, { INT64_MIN, INT64_MAX, -1 },
		{ 0, 1, 0 },
	};
	char out[512];
	size_t len;

	for (size_t i = 0; i < TK_ARRAY_LEN(cis); i++) {
		tk_derp_client_info back;
		CU_ASSERT_EQUAL_FATAL(tk_derp_client_info_json(&cis[i], out,
					  sizeof(out), &len), 0);
		memset(&back, 0x5a, sizeof(back));
		CU_ASSERT_EQUAL_FATAL(tk_derp_client_info_parse((uint8_t *)out,
					  len, &back), 0);
		CU_ASSERT_EQUAL(back.version, cis[i].version);
		CU_ASSERT_EQUAL(back.can_ack_pings, cis[i].can_ack_pings);
		CU_ASSERT_EQUAL(back.is_prober, cis[i].is_prober);
		CU_ASSERT_EQUAL(back.has_mesh_key, cis[i].has_mesh_key);
		TK_ASSERT_MEM_EQ(back.mesh_key, cis[i].mesh_key, 32);
		CU_ASSERT_STRING_EQUAL(back.app_name, cis[i].app_name);
	}
	for (size_t i = 0; i < TK_ARRAY_LEN(sis); i++) {
		tk_derp_server_info back;
		CU_ASSERT_EQUAL_FATAL(tk_derp_server_info_json(&sis[i], out,
					  sizeof(out), &len), 0);
		CU_ASSERT_EQUAL_FATAL(tk_derp_server_info_parse((uint8_t *)out,
					  len, &back), 0);
		CU_ASSERT(memcmp(&back, &sis[i], sizeof(back)) == 0);
	}
}

/* --- NaCl box ------------------------------------------------------------------ */

static void
test_box(void)
{
	uint8_t apub[32], apriv[32], bpub[32], bpriv[32], cpub[32], cpriv[32];
	static const char msg[] = "{\"version\":2,\"CanAckPings\":true}";
	size_t mn = strlen(msg);
	uint8_t sealed[128], sealed2[128], opened[128];
	size_t sl, sl2, ol;
	tk_fake_rng fr;

	CU_ASSERT_FATAL(sodium_init() >= 0);
	crypto_box_keypair(apub, apriv);
	crypto_box_keypair(bpub, bpriv);
	crypto_box_keypair(cpub, cpriv);

	/* a -> b, opened by b knowing a */
	CU_ASSERT_EQUAL_FATAL(tk_derp_box_seal(sealed, sizeof(sealed), &sl,
				  (const uint8_t *)msg, mn, bpub, apriv, NULL), 0);
	CU_ASSERT_EQUAL(sl, TK_DERP_SEALED_LEN(mn));
	CU_ASSERT_EQUAL(tk_derp_box_open(opened, sizeof(opened), &ol, sealed, sl,
			    apub, bpriv), 0);
	CU_ASSERT_EQUAL(ol, mn);
	TK_ASSERT_MEM_EQ(opened, msg, mn);
	/* and by libsodium directly: nonce || crypto_box_easy */
	CU_ASSERT_EQUAL(crypto_box_open_easy(opened, sealed + 24, sl - 24, sealed,
			    apub, bpriv), 0);
	TK_ASSERT_MEM_EQ(opened, msg, mn);

	/* the nonce comes from the injected rng */
	tk_fake_rng_init(&fr, 3);
	CU_ASSERT_EQUAL(tk_derp_box_seal(sealed, sizeof(sealed), &sl,
			    (const uint8_t *)msg, mn, bpub, apriv, &fr.fr_rng), 0);
	tk_fake_rng_init(&fr, 3);
	CU_ASSERT_EQUAL(tk_derp_box_seal(sealed2, sizeof(sealed2), &sl2,
			    (const uint8_t *)msg, mn, bpub, apriv, &fr.fr_rng), 0);
	CU_ASSERT_EQUAL(sl, sl2);
	TK_ASSERT_MEM_EQ(sealed, sealed2, sl);
	tk_fake_rng_init(&fr, 3);
	uint8_t nonce[24];
	tk_rng_fill(&fr.fr_rng, nonce, 24);
	TK_ASSERT_MEM_EQ(sealed, nonce, 24);

	/* any flipped bit: TK_ECRYPTO, nothing written */
	for (size_t i = 0; i < sl; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			sealed[i] ^= (uint8_t)(1 << bit);
			ol = 777;
			CU_ASSERT_EQUAL(tk_derp_box_open(opened, sizeof(opened), &ol,
					    sealed, sl, apub, bpriv), TK_ECRYPTO);
			CU_ASSERT_EQUAL(ol, 777);
			sealed[i] ^= (uint8_t)(1 << bit);
		}
	}
	/* wrong keys */
	CU_ASSERT_EQUAL(tk_derp_box_open(opened, sizeof(opened), &ol, sealed, sl,
			    cpub, bpriv), TK_ECRYPTO);
	CU_ASSERT_EQUAL(tk_derp_box_open(opened, sizeof(opened), &ol, sealed, sl,
			    apub, cpriv), TK_ECRYPTO);
	/* every truncation */
	for (size_t n = 0; n < sl; n++) {
		uint8_t *q = malloc(n ? n : 1);
		memcpy(q, sealed, n);
		CU_ASSERT_EQUAL(tk_derp_box_open(opened, sizeof(opened), &ol, q, n,
				    apub, bpriv), TK_ECRYPTO);
		free(q);
	}
	/* caps */
	CU_ASSERT_EQUAL(tk_derp_box_open(opened, mn - 1, &ol, sealed, sl, apub,
			    bpriv), TK_EMSGSIZE);
	CU_ASSERT_EQUAL(tk_derp_box_open(opened, mn, &ol, sealed, sl, apub,
			    bpriv), 0);
	CU_ASSERT_EQUAL(tk_derp_box_seal(sealed, TK_DERP_SEALED_LEN(mn) - 1, &sl,
			    (const uint8_t *)msg, mn, bpub, apriv, NULL), TK_EMSGSIZE);
	/* an empty message */
	CU_ASSERT_EQUAL(tk_derp_box_seal(sealed, sizeof(sealed), &sl, NULL, 0,
			    bpub, apriv, NULL), 0);
	CU_ASSERT_EQUAL(sl, 40);
	CU_ASSERT_EQUAL(tk_derp_box_open(opened, 0, &ol, sealed, sl, apub, bpriv),
	    0);
	CU_ASSERT_EQUAL(ol, 0);
	/* a low-order (all-zero) peer key is refused */
	uint8_t zero[32] = { 0 };
	CU_ASSERT_EQUAL(tk_derp_box_seal(sealed, sizeof(sealed), &sl,
			    (const uint8_t *)msg, mn, zero, apriv, NULL), TK_ECRYPTO);
}

/* The whole ClientInfo exchange: frame, parse, open, decode. */
static void
test_client_info_frame(void)
{
	uint8_t cpub[32], cpriv[32], spub[32], spriv[32];
	tk_derp_client_info ci = { 2, true, false, false, { 0 }, "" }, got;
	char json[128];
	size_t jl, sl, used, nbl, ol;
	uint8_t frame[256], key[32], opened[128];
	const uint8_t *nb;
	tk_derp_frame f;

	CU_ASSERT_FATAL(sodium_init() >= 0);
	crypto_box_keypair(cpub, cpriv);
	crypto_box_keypair(spub, spriv);
	CU_ASSERT_EQUAL_FATAL(tk_derp_client_info_json(&ci, json, sizeof(json), &jl), 0);
	memcpy(frame + 5, cpub, 32);
	CU_ASSERT_EQUAL_FATAL(tk_derp_box_seal(frame + 37, sizeof(frame) - 37, &sl,
				  (uint8_t *)json, jl, spub, cpriv, NULL), 0);
	tk_derp_frame_hdr(frame, TK_DERP_FRAME_CLIENT_INFO, (uint32_t)(32 + sl));
	CU_ASSERT_EQUAL_FATAL(tk_derp_frame_next(frame, 5 + 32 + sl,
				  TK_DERP_CLIENT_INFO_MAX, &f, &used), 0);
	CU_ASSERT_EQUAL(f.type, TK_DERP_FRAME_CLIENT_INFO);
	CU_ASSERT_EQUAL_FATAL(tk_derp_parse_client_info(f.payload, f.len, key, &nb,
				  &nbl), 0);
	TK_ASSERT_MEM_EQ(key, cpub, 32);
	CU_ASSERT_EQUAL_FATAL(tk_derp_box_open(opened, sizeof(opened), &ol, nb, nbl,
				  key, spriv), 0);
	CU_ASSERT_EQUAL_FATAL(tk_derp_client_info_parse(opened, ol, &got), 0);
	CU_ASSERT_EQUAL(got.version, 2);
	CU_ASSERT_TRUE(got.can_ack_pings);
}

void
register_derp_info(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_client_info_parse),
		TK_TEST(test_server_info_parse),
		TK_TEST(test_info_nesting),
		TK_TEST(test_client_info_build),
		TK_TEST(test_server_info_build),
		TK_TEST(test_info_round_trip),
		TK_TEST(test_box),
		TK_TEST(test_client_info_frame),
		TK_TEST_END,
	};
	tk_test_suite("derp_info", cases);
}
