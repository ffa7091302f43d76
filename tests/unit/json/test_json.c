#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk/core.h"
#include "tk/json.h"
#include "tk_test.h"

void register_json(void);

static json_t *
parse(const char *s)
{
	json_t *v = NULL;
	char err[128];

	CU_ASSERT_EQUAL(tk_json_parse(&v, s, strlen(s), NULL, err, sizeof(err)), 0);
	return v;
}

static void
test_int64_ids(void)
{
	json_t *v = parse("{\"ID\":1000000009999,\"Max\":9223372036854775807,"
	    "\"Min\":-9223372036854775808,\"F\":1.5,\"S\":\"12\",\"N\":null,\"B\":true}");
	int64_t x = 7;
	uint64_t u;
	bool b;
	char *out;

	CU_ASSERT_PTR_NOT_NULL_FATAL(v);
	CU_ASSERT_EQUAL(tk_json_get_int64(v, "ID", &x), 0);
	CU_ASSERT_EQUAL(x, 1000000009999LL);
	CU_ASSERT_EQUAL(tk_json_get_int64(v, "Max", &x), 0);
	CU_ASSERT_EQUAL(x, INT64_MAX);
	CU_ASSERT_EQUAL(tk_json_get_int64(v, "Min", &x), 0);
	CU_ASSERT_EQUAL(x, INT64_MIN);
	x = 7;
	CU_ASSERT_EQUAL(tk_json_get_int64(v, "F", &x), TK_EPROTO);
	CU_ASSERT_EQUAL(tk_json_get_int64(v, "S", &x), TK_EPROTO);
	CU_ASSERT_EQUAL(tk_json_get_int64(v, "N", &x), TK_ENOENT);
	CU_ASSERT_EQUAL(tk_json_get_int64(v, "absent", &x), TK_ENOENT);
	CU_ASSERT_EQUAL(tk_json_get_int64(v, "B", &x), TK_EPROTO);
	CU_ASSERT_EQUAL(x, 7); /* untouched on failure */
	CU_ASSERT_EQUAL(tk_json_get_uint64(v, "Min", &u), TK_EPROTO);
	CU_ASSERT_EQUAL(tk_json_get_bool(v, "B", &b), 0);
	CU_ASSERT_TRUE(b);
	CU_ASSERT_EQUAL(tk_json_get_bool(v, "ID", &b), TK_EPROTO);
	/* wrong container type never crashes */
	json_t *arr = json_array();
	CU_ASSERT_EQUAL(tk_json_get_int64(arr, "ID", &x), TK_EPROTO);
	CU_ASSERT_EQUAL(tk_json_get_int64(NULL, "ID", &x), TK_EPROTO);
	json_decref(arr);
	/* round trip of 64-bit values through the builders */
	json_t *o = json_object();
	CU_ASSERT_EQUAL(tk_json_set_int64(o, "Max", INT64_MAX), 0);
	CU_ASSERT_EQUAL(tk_json_set_int64(o, "ID", 1000000009999LL), 0);
	CU_ASSERT_EQUAL(tk_json_dump(o, &out, NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "9223372036854775807"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "1000000009999"));
	tk_free(out);
	json_decref(o);
	/* too big for int64 is an error, not a silent wrap */
	json_t *w = NULL;
	CU_ASSERT_EQUAL(tk_json_parse(&w, "{\"x\":9223372036854775808}", 25, NULL, NULL, 0), TK_EPROTO);
	json_decref(v);
}

static void
test_limits_and_garbage(void)
{
	json_t *v = NULL;
	char err[128];
	size_t n = 100000;
	char *deep = malloc(n + 1);
	tk_json_limits lim = { 1000, 8 };

	memset(deep, '[', n);
	deep[n] = '\0';
	CU_ASSERT_EQUAL(tk_json_parse(&v, deep, n, NULL, err, sizeof(err)), TK_EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "deeper"));
	/* brackets inside strings do not count */
	CU_ASSERT_EQUAL(tk_json_depth_check("[\"[[[[[[[[[[\\\"[[[[\"]", 19, 2), 0);
	CU_ASSERT_EQUAL(tk_json_parse(&v, "[[[[[[[[[1]]]]]]]]]", 19, &lim, err, sizeof(err)), TK_EPROTO);
	CU_ASSERT_EQUAL(tk_json_parse(&v, deep, 1001, &lim, err, sizeof(err)), TK_EMSGSIZE);
	free(deep);

	static const char *bad[] = {
		"", "{", "{\"a\":", "{\"a\":1,}", "[1,2", "nul", "{\"a\" 1}",
		"\"unterminated", "{\"a\":01}", "\xff\xfe", "{}}", "[1] x",
	};
	for (size_t i = 0; i < TK_ARRAY_LEN(bad); i++) {
		v = NULL;
		CU_ASSERT_EQUAL(tk_json_parse(&v, bad[i], strlen(bad[i]), NULL, err, sizeof(err)), TK_EPROTO);
		CU_ASSERT_PTR_NULL(v);
	}
	CU_ASSERT_EQUAL(tk_json_parse(&v, "{\n\"a\":\n}", 8, NULL, err, sizeof(err)), TK_EPROTO);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "line 3"));
	/* duplicate keys: last wins, like Go */
	v = parse("{\"a\":1,\"a\":2}");
	int64_t x;
	CU_ASSERT_EQUAL(tk_json_get_int64(v, "a", &x), 0);
	CU_ASSERT_EQUAL(x, 2);
	json_decref(v);
	/* huge arrays capped by the getter */
	v = parse("{\"Peers\":[1,2,3,4,5]}");
	json_t *a;
	CU_ASSERT_EQUAL(tk_json_get_array(v, "Peers", 4, &a), TK_EMSGSIZE);
	CU_ASSERT_EQUAL(tk_json_get_array(v, "Peers", 5, &a), 0);
	CU_ASSERT_EQUAL(tk_json_get_object(v, "Peers", &a), TK_EPROTO);
	json_decref(v);
	/* allocation failure */
	tk_fault_arm(1);
	CU_ASSERT_EQUAL(tk_json_parse(&v, "{}", 2, NULL, NULL, 0), TK_ENOMEM);
	tk_fault_disarm();
}

static void
test_keys_and_addrs(void)
{
	json_t *v = parse("{\"Key\":\"nodekey:50d20b455ecf12bc453f83c2cfdb2a24925d06cf2598dcaa54e91af82ce9f765\","
	    "\"Machine\":\"mkey:50d20b455ecf12bc453f83c2cfdb2a24925d06cf2598dcaa54e91af82ce9f765\","
	    "\"Bad\":\"nodekey:50d2\",\"Wrong\":\"discokey:50d20b455ecf12bc453f83c2cfdb2a24925d06cf2598dcaa54e91af82ce9f765\","
	    "\"P4\":\"100.64.0.1/32\",\"P6\":\"fd7a:115c:a1e0::1/128\",\"E4\":\"1.2.3.4:41641\",\"E6\":\"[::1]:41641\"}");
	tk_node_pub nk;
	tk_machine_pub mk;
	tk_ipprefix p;
	tk_ipport e;
	char text[TK_NETADDR_TEXT_MAX];

	CU_ASSERT_EQUAL(tk_json_get_node_pub(v, "Key", &nk), 0);
	CU_ASSERT_EQUAL(nk.b[0], 0x50);
	CU_ASSERT_EQUAL(tk_json_get_machine_pub(v, "Machine", &mk), 0);
	CU_ASSERT_EQUAL(tk_json_get_node_pub(v, "Bad", &nk), TK_EPROTO);
	CU_ASSERT_EQUAL(tk_json_get_node_pub(v, "Wrong", &nk), TK_EPROTO);
	CU_ASSERT_EQUAL(tk_json_get_prefix(v, "P4", &p), 0);
	CU_ASSERT_EQUAL(p.ip.family, TK_AF_INET);
	CU_ASSERT_EQUAL(p.bits, 32);
	tk_ipprefix_format(&p, text);
	CU_ASSERT_STRING_EQUAL(text, "100.64.0.1/32");
	CU_ASSERT_EQUAL(tk_json_get_prefix(v, "P6", &p), 0);
	CU_ASSERT_EQUAL(p.ip.family, TK_AF_INET6);
	CU_ASSERT_EQUAL(p.bits, 128);
	CU_ASSERT_EQUAL(tk_json_get_ipport(v, "E4", &e), 0);
	CU_ASSERT_EQUAL(e.port, 41641);
	CU_ASSERT_EQUAL(tk_json_get_ipport(v, "E6", &e), 0);
	tk_ipport_format(&e, text);
	CU_ASSERT_STRING_EQUAL(text, "[::1]:41641");
	json_decref(v);

	static const char *bad_prefix[] = { "100.64.0.1", "100.64.0.1/33",
		"100.64.0.1/", "100.64.0.1/3a", "::1/129", "1.2.3/8", "01.2.3.4/8",
		"100.64.0.1/08", "fe80::1%eth0/64", "/8", "1.2.3.4/-1", "" };
	for (size_t i = 0; i < TK_ARRAY_LEN(bad_prefix); i++)
		CU_ASSERT_EQUAL(tk_ipprefix_parse(&p, bad_prefix[i], strlen(bad_prefix[i])), TK_EINVAL);
	static const char *bad_ep[] = { "1.2.3.4", "1.2.3.4:", "1.2.3.4:65536",
		"::1:80", "[1.2.3.4]:80", "[::1]80", "[::1]:", "[::1", "host:80",
		"1.2.3.4:80x", "" };
	for (size_t i = 0; i < TK_ARRAY_LEN(bad_ep); i++)
		CU_ASSERT_EQUAL(tk_ipport_parse(&e, bad_ep[i], strlen(bad_ep[i])), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_ipport_parse(&e, "0.0.0.0:0", 9), 0);
	CU_ASSERT_EQUAL(tk_ipport_parse(&e, "[fd7a:115c:a1e0::1]:65535", 25), 0);
	CU_ASSERT_EQUAL(e.port, 65535);
}

static void
test_times(void)
{
	static const struct {
		const char *in;
		int64_t sec;
		int32_t nsec;
		int zero;
		const char *out;
	} ok[] = {
		{ "0001-01-01T00:00:00Z", -62135596800LL, 0, 1, "0001-01-01T00:00:00Z" },
		{ "1970-01-01T00:00:00Z", 0, 0, 0, "1970-01-01T00:00:00Z" },
		{ "1969-12-31T23:59:59Z", -1, 0, 0, "1969-12-31T23:59:59Z" },
		{ "2024-02-29T12:34:56.123456789+02:00", 1709202896, 123456789, 0,
		  "2024-02-29T10:34:56.123456789Z" },
		{ "2024-02-29T10:34:56.5Z", 1709202896, 500000000, 0, "2024-02-29T10:34:56.5Z" },
		{ "2024-02-29T05:04:56-05:30", 1709202896, 0, 0, "2024-02-29T10:34:56Z" },
	};
	static const char *bad[] = { "", "2024-02-30T00:00:00Z", "2023-02-29T00:00:00Z",
		"2024-13-01T00:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T00:00:00",
		"2024-01-01T00:00:00.Z", "2024-01-01T00:00:00.1234567890Z",
		"2024-01-01 00:00:00Z", "2024-01-01T00:00:00+0200", "2024-01-01T00:00:00Zjunk",
		"x024-01-01T00:00:00Z" };
	tk_json_time t;
	char out[48];

	for (size_t i = 0; i < TK_ARRAY_LEN(ok); i++) {
		CU_ASSERT_EQUAL_FATAL(tk_json_time_parse(&t, ok[i].in, strlen(ok[i].in)), 0);
		CU_ASSERT_EQUAL(t.sec, ok[i].sec);
		CU_ASSERT_EQUAL(t.nsec, ok[i].nsec);
		CU_ASSERT_EQUAL(t.zero, ok[i].zero);
		tk_json_time_format(&t, out);
		CU_ASSERT_STRING_EQUAL(out, ok[i].out);
	}
	for (size_t i = 0; i < TK_ARRAY_LEN(bad); i++)
		CU_ASSERT_EQUAL(tk_json_time_parse(&t, bad[i], strlen(bad[i])), TK_EPROTO);
	json_t *v = parse("{\"KeyExpiry\":\"2024-02-29T10:34:56Z\",\"N\":5}");
	CU_ASSERT_EQUAL(tk_json_get_time(v, "KeyExpiry", &t), 0);
	CU_ASSERT_EQUAL(t.sec, 1709202896);
	CU_ASSERT_EQUAL(tk_json_get_time(v, "N", &t), TK_EPROTO);
	json_decref(v);
}

/*
 * Out of memory at any point of a parse or a dump is TK_ENOMEM, never a
 * value cut short: jansson 2.14 drops a character it cannot save (parse)
 * or a key it cannot write (dump) and carries on.
 */
static void
test_oom_is_never_partial(void)
{
	static const char doc[] =
	    "{\"Endpoints\":[\"192.0.2.1:41641\",\"[2001:db8::1]:41641\"],"
	    "\"Name\":\"a-rather-long-host-name.tailnet-example.ts.net\","
	    "\"Nested\":{\"Key\":\"nodekey:50d20b455ecf12bc453f83c2cfdb2a24\"}}";
	json_t *ref = parse(doc);
	char *want = NULL;
	int bad = 0, fired_n = 0;

	TK_TEST_NEED_FAULT_INJECTION();
	CU_ASSERT_EQUAL_FATAL(tk_json_dump(ref, &want, NULL), 0);
	for (unsigned long n = 1; n < 10000; n++) {
		json_t *v = NULL;
		char *out = NULL;
		int rv;

		tk_fault_arm(n);
		rv = tk_json_parse(&v, doc, strlen(doc), NULL, NULL, 0);
		if (rv == 0)
			rv = tk_json_dump(v, &out, NULL);
		bool fired = tk_fault_fired();
		tk_fault_disarm();
		if (rv == 0 && strcmp(out, want) != 0) {
			if (bad++ == 0)
				fprintf(stderr, "\n  fault %lu: %s\n", n, out);
		} else if (rv != 0) {
			CU_ASSERT_EQUAL(rv, TK_ENOMEM);
		}
		tk_free(out);
		json_decref(v);
		if (!fired)
			break;
		fired_n++;
	}
	CU_ASSERT(fired_n > 0);
	CU_ASSERT_EQUAL(bad, 0);
	tk_free(want);
	json_decref(ref);
}

void
register_json(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_int64_ids),
		TK_TEST(test_limits_and_garbage),
		TK_TEST(test_keys_and_addrs),
		TK_TEST(test_times),
		TK_TEST(test_oom_is_never_partial),
		TK_TEST_END,
	};
	tk_test_suite("json", cases);
}
