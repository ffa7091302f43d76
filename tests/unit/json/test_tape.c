/*
 * libs/json's tape (tk/json_tape.h): structure, the grammar Go's
 * encoding/json accepts (RFC 8259), limits, string unquoting, and
 * allocation failure.
 */
#include <stdio.h>
#include <string.h>

#include "tk/core.h"
#include "tk/json_tape.h"
#include "tk_test.h"

void register_json_tape(void);

static int
tparse(tk_json_tape *d, const char *s, char *err, size_t errlen)
{
	return tk_json_tape_parse(d, s, strlen(s), err, errlen);
}

static void
test_tape_structure(void)
{
	static const char doc[] =
	    " {\"a\" : [1, -2.5e3, {\"b\":null}], \"c\":\"x\\ny\", "
	    "\"d\":\"\xc3\xa9\", \"e\":[], \"f\":{}, \"g\":true,\"h\":false}\n";
	tk_json_tape d;

	tk_json_tape_init(&d, 0, 0);
	CU_ASSERT_EQUAL_FATAL(tparse(&d, doc, NULL, 0), 0);
	/* 0 obj; 1 "a" 2 arr 3 1 4 -2.5e3 5 obj 6 "b" 7 null; 8 "c" 9 str;
	 * 10 "d" 11 str; 12 "e" 13 arr; 14 "f" 15 obj; 16 "g" 17 true;
	 * 18 "h" 19 false */
	CU_ASSERT_EQUAL_FATAL(d.nt, 20);
	CU_ASSERT_EQUAL(tk_json_tape_type(&d, 0), TK_JSON_OBJ);
	CU_ASSERT_EQUAL(tk_json_tape_aux(&d, 0), 7); /* members */
	CU_ASSERT_EQUAL(tk_json_tape_off(&d, 0), 1);
	CU_ASSERT_EQUAL(tk_json_tape_end(&d, 0), strlen(doc) - 1); /* includes the '}' */
	CU_ASSERT_EQUAL(tk_json_tape_next(&d, 0), 20);
	CU_ASSERT_EQUAL(tk_json_tape_type(&d, 1), TK_JSON_STR);
	CU_ASSERT_EQUAL(tk_json_tape_end(&d, 1) - tk_json_tape_off(&d, 1), 1);
	CU_ASSERT_EQUAL(doc[tk_json_tape_off(&d, 1)], 'a'); /* quotes excluded */
	CU_ASSERT_EQUAL(tk_json_tape_type(&d, 2), TK_JSON_ARR);
	CU_ASSERT_EQUAL(tk_json_tape_aux(&d, 2), 3); /* elements */
	CU_ASSERT_EQUAL(tk_json_tape_next(&d, 2), 8);
	CU_ASSERT_EQUAL(tk_json_tape_type(&d, 3), TK_JSON_NUM);
	CU_ASSERT_EQUAL(tk_json_tape_aux(&d, 3), 0);
	CU_ASSERT_EQUAL(tk_json_tape_aux(&d, 4), TK_JSON_FLOAT);
	CU_ASSERT_EQUAL(tk_json_tape_end(&d, 4) - tk_json_tape_off(&d, 4), 6);
	CU_ASSERT_EQUAL(tk_json_tape_type(&d, 5), TK_JSON_OBJ);
	CU_ASSERT_EQUAL(tk_json_tape_next(&d, 5), 8);
	CU_ASSERT_EQUAL(tk_json_tape_type(&d, 7), TK_JSON_NULL);
	CU_ASSERT_EQUAL(tk_json_tape_aux(&d, 9), TK_JSON_ESC);
	CU_ASSERT_EQUAL(tk_json_tape_aux(&d, 11), TK_JSON_HIGH);
	CU_ASSERT_EQUAL(tk_json_tape_aux(&d, 13), 0);
	CU_ASSERT_EQUAL(tk_json_tape_next(&d, 13), 14);
	CU_ASSERT_EQUAL(tk_json_tape_aux(&d, 15), 0);
	CU_ASSERT_EQUAL(tk_json_tape_type(&d, 17), TK_JSON_TRUE);
	CU_ASSERT_EQUAL(tk_json_tape_type(&d, 19), TK_JSON_FALSE);
	/* the tape is reused: a second parse replaces the first */
	CU_ASSERT_EQUAL_FATAL(tparse(&d, "\"s\"", NULL, 0), 0);
	CU_ASSERT_EQUAL(d.nt, 1);
	CU_ASSERT_EQUAL(tk_json_tape_type(&d, 0), TK_JSON_STR);
	tk_json_tape_fini(&d);
	tk_json_tape_fini(&d); /* twice is fine */
}

static void
test_tape_grammar(void)
{
	static const char *good[] = {
		"0", "-0", "1e5", "1E+5", "-1.25e-3", "[]", "{}", "null",
		"\"\"", " [ 1 , [ ] , { } ] ", "\"\\u00e9\\ud83d\\ude00\"",
		"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "{\"a\":1,\"a\":2}",
		"\"\xff\"", /* bad UTF-8 is Go's decoder's business */
		"\"\\ud800\"", "[[[[]]]]", "\t\r\n1\t\r\n",
	};
	static const struct {
		const char *s;
		const char *why;
	} bad[] = {
		{ "", "no JSON value" },
		{ "   ", "no JSON value" },
		{ "[1,]", "unexpected character" },
		{ "{\"a\":1,}", "expected a string key" },
		{ "01", "data after the top-level value" },
		{ "-", "bad number" },
		{ "1.", "bad number" },
		{ ".5", "unexpected character" },
		{ "1e", "bad number" },
		{ "+1", "unexpected character" },
		{ "tru", "bad literal" },
		{ "nul", "bad literal" },
		{ "True", "unexpected character" },
		{ "\"abc", "unterminated string" },
		{ "\"a\\", "unterminated string" },
		{ "\"\\x\"", "bad escape in string" },
		{ "\"\\u12g4\"", "bad \\u escape in string" },
		{ "\"\\u12\"", "bad \\u escape in string" },
		{ "\"a\tb\"", "control character in string" },
		{ "{\"a\" 1}", "expected ':'" },
		{ "{1:2}", "expected a string key" },
		{ "[1 2]", "expected ',' or a closing bracket" },
		{ "[1}", "expected ',' or a closing bracket" },
		{ "{\"a\":1]", "expected ',' or a closing bracket" },
		{ "[1", "unexpected end of JSON" },
		{ "{\"a\":", "unexpected end of JSON" },
		{ "1 2", "data after the top-level value" },
		{ "[]]", "data after the top-level value" },
		{ "'a'", "unexpected character" },
		{ "NaN", "unexpected character" },
	};
	tk_json_tape d;
	char err[128];

	tk_json_tape_init(&d, 0, 0);
	for (size_t i = 0; i < TK_ARRAY_LEN(good); i++) {
		int rv = tparse(&d, good[i], err, sizeof(err));

		if (rv != 0)
			fprintf(stderr, "\n  '%s': %s\n", good[i], err);
		CU_ASSERT_EQUAL(rv, 0);
	}
	for (size_t i = 0; i < TK_ARRAY_LEN(bad); i++) {
		int rv;

		err[0] = '\0';
		rv = tparse(&d, bad[i].s, err, sizeof(err));
		CU_ASSERT_EQUAL(rv, TK_EPROTO);
		if (strstr(err, bad[i].why) == NULL) {
			fprintf(stderr, "\n  '%s': '%s', want '%s'\n", bad[i].s,
			    err, bad[i].why);
			CU_FAIL("wrong error");
		}
	}
	/* offsets name the byte */
	CU_ASSERT_EQUAL(tparse(&d, "[1,]", err, sizeof(err)), TK_EPROTO);
	CU_ASSERT_STRING_EQUAL(err, "JSON offset 3: unexpected character");
	/* a NUL byte is a control character, not the end */
	CU_ASSERT_EQUAL(tk_json_tape_parse(&d, "\"a\0\"", 4, NULL, 0),
	    TK_EPROTO);
	CU_ASSERT_EQUAL(tk_json_tape_parse(&d, "1\0", 2, NULL, 0), TK_EPROTO);
	/* length, not NUL, ends the input */
	CU_ASSERT_EQUAL(tk_json_tape_parse(&d, "[1]xyz", 3, NULL, 0), 0);
	/* no err buffer is fine */
	CU_ASSERT_EQUAL(tparse(&d, "[", NULL, 0), TK_EPROTO);
	tk_json_tape_fini(&d);
}

static void
test_tape_limits(void)
{
	tk_json_tape d;
	char err[128];

	tk_json_tape_init(&d, 4, 3);
	CU_ASSERT_EQUAL(tparse(&d, "[[[1]]]", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(tparse(&d, "[[[[]]]]", err, sizeof(err)), TK_EPROTO);
	CU_ASSERT_STRING_EQUAL(err, "JSON nests deeper than 3 levels");
	CU_ASSERT_EQUAL(tparse(&d, "[1,2,3]", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(d.nt, 4);
	CU_ASSERT_EQUAL(tparse(&d, "[1,2,3,4]", err, sizeof(err)), TK_EPROTO);
	CU_ASSERT_STRING_EQUAL(err, "more than 4 JSON values");
	CU_ASSERT_EQUAL(tparse(&d, "{\"a\":1,\"b\":2}", err, sizeof(err)),
	    TK_EPROTO); /* keys are values */
	tk_json_tape_fini(&d);

	/* out-of-range limits are clamped, not trusted */
	tk_json_tape_init(&d, 0, 100000);
	CU_ASSERT_EQUAL(d.max_depth, TK_JSON_TAPE_DEPTH_MAX);
	{
		char deep[2 * TK_JSON_TAPE_DEPTH_MAX + 3];
		size_t k = TK_JSON_TAPE_DEPTH_MAX + 1;

		memset(deep, '[', k);
		memset(deep + k, ']', k);
		CU_ASSERT_EQUAL(tk_json_tape_parse(&d, deep, 2 * k, NULL, 0),
		    TK_EPROTO);
		CU_ASSERT_EQUAL(tk_json_tape_parse(&d, deep + 1, 2 * k - 2,
				    NULL, 0), 0);
	}
	tk_json_tape_fini(&d);
}

static void
unq(const char *in, const char *want)
{
	uint8_t out[256];
	size_t n = strlen(in), len;

	len = tk_json_unquote(out, (const uint8_t *)in, n,
	    memchr(in, '\\', n) != NULL);
	CU_ASSERT(len <= 3 * n);
	CU_ASSERT_EQUAL(out[len], '\0');
	if (len != strlen(want) || memcmp(out, want, len) != 0) {
		fprintf(stderr, "\n  unquote '%s' -> '%.*s'\n", in, (int)len,
		    (const char *)out);
		CU_FAIL("unquote differs");
	}
}

static void
test_tape_strings(void)
{
	unq("plain", "plain");
	unq("a\\nb\\t\\\"\\\\\\/\\b\\f\\r", "a\nb\t\"\\/\b\f\r");
	unq("\\u00e9", "\xc3\xa9");
	unq("\\u20AC", "\xe2\x82\xac");
	unq("\\ud83d\\ude00", "\xf0\x9f\x98\x80");	/* a pair */
	unq("\\ud83d", "\xef\xbf\xbd");			/* lone high */
	unq("\\ude00", "\xef\xbf\xbd");			/* lone low */
	unq("\\ud83d\\u0041", "\xef\xbf\xbd" "A");	/* high, not low */
	unq("\\u0000", "\xef\xbf\xbd");			/* NUL: text */
	unq("\xff", "\xef\xbf\xbd");			/* each bad byte */
	unq("\xc3", "\xef\xbf\xbd");
	unq("\xe2\x82", "\xef\xbf\xbd\xef\xbf\xbd");
	unq("\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd");	/* overlong */
	unq("\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	unq("\xf4\x90\x80\x80",				/* > U+10FFFF */
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	unq("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80");
	/* without esc, a backslash is a byte */
	{
		uint8_t out[16];

		CU_ASSERT_EQUAL(tk_json_unquote(out, (const uint8_t *)"a\\n",
				    3, false), 3);
		CU_ASSERT(memcmp(out, "a\\n", 4) == 0);
	}
	CU_ASSERT(tk_json_utf8_valid((const uint8_t *)"", 0));
	CU_ASSERT(tk_json_utf8_valid((const uint8_t *)"\xf4\x8f\xbf\xbf", 4));
	CU_ASSERT(tk_json_utf8_valid((const uint8_t *)"\xee\x80\x80", 3));
	CU_ASSERT(!tk_json_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));
	CU_ASSERT(!tk_json_utf8_valid((const uint8_t *)"\xe0\x80\xaf", 3));
	CU_ASSERT(!tk_json_utf8_valid((const uint8_t *)"\xf8\x88\x80\x80\x80",
	    5));
	CU_ASSERT(!tk_json_utf8_valid((const uint8_t *)"a\x80", 2));
}

static void
test_tape_oom(void)
{
	char doc[4096];
	size_t n = 0;
	int fired_n = 0;

	TK_TEST_NEED_FAULT_INJECTION();
	/* more than the first 256-value block, so the tape grows */
	n += (size_t)snprintf(doc + n, sizeof(doc) - n, "[");
	for (int i = 0; i < 600; i++)
		n += (size_t)snprintf(doc + n, sizeof(doc) - n, "%s%d",
		    i ? "," : "", i);
	n += (size_t)snprintf(doc + n, sizeof(doc) - n, "]");
	for (unsigned long k = 1; k < 100; k++) {
		tk_json_tape d;
		bool fired;
		int rv;

		tk_json_tape_init(&d, 0, 0);
		tk_fault_arm(k);
		rv = tk_json_tape_parse(&d, doc, n, NULL, 0);
		fired = tk_fault_fired();
		tk_fault_disarm();
		if (fired) {
			CU_ASSERT_EQUAL(rv, TK_ENOMEM);
			fired_n++;
			/* usable afterwards */
			CU_ASSERT_EQUAL(tk_json_tape_parse(&d, doc, n, NULL, 0),
			    0);
		} else {
			CU_ASSERT_EQUAL(rv, 0);
		}
		if (rv == 0 || !fired)
			CU_ASSERT_EQUAL(d.nt, 601);
		tk_json_tape_fini(&d);
		if (!fired)
			break;
	}
	CU_ASSERT(fired_n >= 2);
}

void
register_json_tape(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_tape_structure),
		TK_TEST(test_tape_grammar),
		TK_TEST(test_tape_limits),
		TK_TEST(test_tape_strings),
		TK_TEST(test_tape_oom),
		TK_TEST_END,
	};
	tk_test_suite("json_tape", cases);
}
