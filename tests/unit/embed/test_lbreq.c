/*
 * tailscale_loopback's request checks (tools/embed/src/ts_lbreq.c) on
 * tables of good, truncated, oversized and garbage requests.
 */
#include <stdio.h>
#include <string.h>

#include "ts_lbreq.h"
#include "tk_test.h"

void register_lbreq(void);

#define CRED "0123456789abcdef0123456789abcdef"
/* base64(":" CRED), base64("alice:" CRED), base64(":" 31 chars),
 * base64(":" CRED "x") */
#define OK_EMPTY_USER "OjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm"
#define OK_ALICE "YWxpY2U6MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
#define SHORT "OjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGU="
#define LONG "OjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVmeA=="

static void
test_lb_check_table(void)
{
	static const struct {
		const char *req;
		int code;
	} t[] = {
		{ "", 400 },
		{ "garbage", 400 },
		{ "GET /localapi/v0/status HTTP/1.1\r\n", 400 }, /* truncated */
		{ "GET\r\n /localapi/ HTTP/1.1\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\n\r\n", 404 },
		{ "GET /localapiX HTTP/1.1\r\n\r\n", 404 },
		{ "GET /localapi/v0/status HTTP/1.1\r\n\r\n", 403 },
		{ "GET /localapi/v0/status HTTP/1.1\r\nSec-Tailscale: other\r\n\r\n",
		    403 },
		{ "GET /localapi/v0/status HTTP/1.1\r\nSec-Tailscale: localapi\r\n"
		  "\r\n", 401 },
		{ "GET /localapi/v0/status HTTP/1.1\r\nsec-tailscale:\tlocalapi \r\n"
		  "Authorization: Bearer x\r\n\r\n", 401 },
		{ "GET /localapi/v0/status HTTP/1.1\r\nSec-Tailscale: localapi\r\n"
		  "Authorization: Basic !!!notbase64\r\n\r\n", 403 },
		{ "GET /localapi/v0/status HTTP/1.1\r\nSec-Tailscale: localapi\r\n"
		  "Authorization: Basic " SHORT "\r\n\r\n", 403 },
		{ "GET /localapi/v0/status HTTP/1.1\r\nSec-Tailscale: localapi\r\n"
		  "Authorization: Basic " LONG "\r\n\r\n", 403 },
		{ "GET /localapi/v0/status HTTP/1.1\r\nSec-Tailscale: localapi\r\n"
		  "Authorization: Basic " OK_EMPTY_USER "\r\n\r\n", 0 },
		{ "GET /localapi/v0/status HTTP/1.1\r\nAUTHORIZATION: basic "
		  OK_ALICE "\r\nSec-Tailscale: localapi\r\n\r\n", 0 },
		/* headers after the blank line are body, not head */
		{ "POST /localapi/v0/start HTTP/1.1\r\n\r\nSec-Tailscale: localapi"
		  "\r\nAuthorization: Basic " OK_EMPTY_USER "\r\n\r\n", 403 },
	};
	const char *why;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int c = ts_lb_check(t[i].req, CRED, &why);
		if (c != t[i].code)
			fprintf(stderr, "case %zu: %d, want %d\n", i, c, t[i].code);
		CU_ASSERT_EQUAL(c, t[i].code);
		CU_ASSERT_PTR_NOT_NULL(why);
	}
}

static void
test_lb_headers_and_length(void)
{
	static const struct {
		const char *head;
		long len;
	} t[] = {
		{ "POST / HTTP/1.1\r\n\r\n", 0 },
		{ "POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n", 12 },
		{ "POST / HTTP/1.1\r\ncontent-length:0\r\n\r\n", 0 },
		{ "POST / HTTP/1.1\r\nContent-Length: 65536\r\n\r\n", 65536 },
		{ "POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", -1 },
		{ "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
		    -1 },
		{ "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", -1 },
		{ "POST / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n", -1 },
		{ "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n", -1 },
		{ "POST / HTTP/1.1\r\nContent-Length: 123456789012345678901234567890"
		  "1234567890\r\n\r\n", 0 }, /* value too long to be a header */
	};
	char big[TS_LB_HEAD_MAX], v[16];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		CU_ASSERT_EQUAL(ts_lb_body_len(t[i].head), t[i].len);
	/* an oversized value does not fit: absent */
	memset(big, 0, sizeof(big));
	snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nX: ");
	memset(big + strlen(big), 'a', 1000);
	strcat(big, "\r\n\r\n");
	CU_ASSERT_FALSE(ts_lb_header(big, "X", v, sizeof(v)));
	CU_ASSERT_TRUE(ts_lb_header("GET / HTTP/1.1\r\nx-y:  v \t\r\n\r\n",
	    "X-Y", v, sizeof(v)));
	CU_ASSERT_STRING_EQUAL(v, "v");
	/* a prefix of the name is not the name */
	CU_ASSERT_FALSE(ts_lb_header("GET / HTTP/1.1\r\nX-Yz: 1\r\n\r\n", "X-Y",
	    v, sizeof(v)));
	CU_ASSERT_FALSE(ts_lb_header("no line end", "X", v, sizeof(v)));
}

void
register_lbreq(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_lb_check_table),
		TK_TEST(test_lb_headers_and_length),
		TK_TEST_END,
	};
	tk_test_suite("lbreq", cases);
}
