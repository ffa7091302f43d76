/*
 * HTTP CONNECT request parser (ns_hconn.c): what curl -p -x sends, header
 * names in any case and order, IPv6 literals, Basic proxy credentials, and
 * the 400/405/407 answers to everything else; the 8 KiB head bound.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns_proxy.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk_test.h"

void register_ns_hconn(void);

static int
parse(const ns_hconn_cfg *cfg, const char *s, ns_hconn_req *req)
{
	size_t n = strlen(s);
	uint8_t *p = malloc(n ? n : 1);

	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	memcpy(p, s, n);
	CU_ASSERT_EQUAL(ns_hconn_parse(cfg, p, n, req), 0);
	free(p);
	return req->status;
}

/* What curl 7.88.1 (Debian 12) sends for `curl -p -x http://H:P
 * http://127.0.0.1:8080/` (captured with a Python listener; for
 * http://peer1:8080/ the same with peer1 in both places). */
static const char curl_req[] =
    "CONNECT 127.0.0.1:8080 HTTP/1.1\r\n"
    "Host: 127.0.0.1:8080\r\n"
    "User-Agent: curl/7.88.1\r\n"
    "Proxy-Connection: Keep-Alive\r\n"
    "\r\n";

static void
test_curl_request(void)
{
	ns_hconn_req req;
	size_t n = strlen(curl_req);

	CU_ASSERT_EQUAL(parse(NULL, curl_req, &req), 200);
	CU_ASSERT_EQUAL(req.consumed, n);
	CU_ASSERT_STRING_EQUAL(req.host, "127.0.0.1");
	CU_ASSERT(req.is_ip && req.ip.family == TK_AF_INET);
	CU_ASSERT_EQUAL(req.port, 8080);
	CU_ASSERT_EQUAL(req.http_minor, 1);
	/* every proper prefix needs more */
	for (size_t k = 0; k < n; k++) {
		char tmp[sizeof(curl_req)];
		memcpy(tmp, curl_req, k);
		tmp[k] = '\0';
		CU_ASSERT_EQUAL(parse(NULL, tmp, &req), 0);
	}
	/* tunnel bytes after the head are not consumed */
	char more[sizeof(curl_req) + 8];
	snprintf(more, sizeof(more), "%s\x16\x03\x01", curl_req);
	CU_ASSERT_EQUAL(parse(NULL, more, &req), 200);
	CU_ASSERT_EQUAL(req.consumed, n);
}

static void
test_targets(void)
{
	static const struct {
		const char *line;
		int status;
		const char *host;
		bool is_ip;
		uint16_t port;
	} cases[] = {
		{ "CONNECT peer1:443 HTTP/1.1", 200, "peer1", false, 443 },
		{ "CONNECT peer1.tail-test.ts.net:22 HTTP/1.0", 200,
		    "peer1.tail-test.ts.net", false, 22 },
		{ "CONNECT [::1]:8080 HTTP/1.1", 200, "::1", true, 8080 },
		{ "CONNECT [fd7a:115c:a1e0::2]:1 HTTP/1.1", 200,
		    "fd7a:115c:a1e0::2", true, 1 },
		{ "CONNECT 100.64.0.2:65535 HTTP/1.1", 200, "100.64.0.2", true,
		    65535 },
		{ "CONNECT peer1 HTTP/1.1", 400, NULL, false, 0 },
		{ "CONNECT peer1: HTTP/1.1", 400, NULL, false, 0 },
		{ "CONNECT peer1:0 HTTP/1.1", 400, NULL, false, 0 },
		{ "CONNECT peer1:65536 HTTP/1.1", 400, NULL, false, 0 },
		{ "CONNECT peer1:80x HTTP/1.1", 400, NULL, false, 0 },
		{ "CONNECT :80 HTTP/1.1", 400, NULL, false, 0 },
		{ "CONNECT ::1:80 HTTP/1.1", 400, NULL, false, 0 },
		{ "CONNECT [::1:80 HTTP/1.1", 400, NULL, false, 0 },
		{ "CONNECT [::1]80 HTTP/1.1", 400, NULL, false, 0 },
		{ "CONNECT [1.2.3.4]:80 HTTP/1.1", 400, NULL, false, 0 },
		{ "CONNECT pe/er:80 HTTP/1.1", 400, NULL, false, 0 },
		{ "CONNECT http://peer1:80/ HTTP/1.1", 400, NULL, false, 0 },
		{ "CONNECT peer1:80 HTTP/2.0", 400, NULL, false, 0 },
		{ "CONNECT peer1:80 HTTP/1.1 ", 400, NULL, false, 0 },
		{ "CONNECT  peer1:80 HTTP/1.1", 400, NULL, false, 0 },
		{ "CONNECT peer1:80", 400, NULL, false, 0 },
		{ "connect peer1:80 HTTP/1.1", 405, NULL, false, 0 },
		{ "GET http://peer1/ HTTP/1.1", 405, NULL, false, 0 },
		{ "POST / HTTP/1.1", 405, NULL, false, 0 },
		{ "GE(T / HTTP/1.1", 400, NULL, false, 0 },
		{ "", 400, NULL, false, 0 },
	};

	for (size_t i = 0; i < TK_ARRAY_LEN(cases); i++) {
		char buf[256];
		ns_hconn_req req;
		snprintf(buf, sizeof(buf), "%s\r\nHost: x\r\n\r\n",
		    cases[i].line);
		int st = parse(NULL, buf, &req);
		if (st != cases[i].status)
			fprintf(stderr, "case '%s': %d\n", cases[i].line, st);
		CU_ASSERT_EQUAL(st, cases[i].status);
		if (st == 200) {
			CU_ASSERT_STRING_EQUAL(req.host, cases[i].host);
			CU_ASSERT_EQUAL(req.is_ip, cases[i].is_ip);
			CU_ASSERT_EQUAL(req.port, cases[i].port);
		}
	}
}

static void
test_headers(void)
{
	ns_hconn_req req;

	/* bare LF line ends, no headers at all */
	CU_ASSERT_EQUAL(parse(NULL, "CONNECT a:1 HTTP/1.1\n\n", &req), 200);
	CU_ASSERT_EQUAL(req.consumed, 22);
	CU_ASSERT_EQUAL(parse(NULL, "CONNECT a:1 HTTP/1.1\r\n\r\n", &req), 200);
	/* obs-fold, no colon, space before the colon, empty name, NUL */
	static const char *const bad[] = {
		"CONNECT a:1 HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
		"CONNECT a:1 HTTP/1.1\r\nNoColon\r\n\r\n",
		"CONNECT a:1 HTTP/1.1\r\nHost : a\r\n\r\n",
		"CONNECT a:1 HTTP/1.1\r\n: a\r\n\r\n",
		"CONNECT a:1 HTTP/1.1\r\nX: a\rb\r\n\r\n",
	};
	for (size_t i = 0; i < TK_ARRAY_LEN(bad); i++)
		CU_ASSERT_EQUAL(parse(NULL, bad[i], &req), 400);
	uint8_t nul[] = "CONNECT a:1 HTTP/1.1\r\nX: a\0b\r\n\r\n";
	CU_ASSERT_EQUAL(ns_hconn_parse(NULL, nul, sizeof(nul) - 1, &req), 0);
	CU_ASSERT_EQUAL(req.status, 400);
}

static void
test_head_bound(void)
{
	ns_hconn_req req;
	size_t n = NS_HCONN_HEAD_MAX + 100;
	uint8_t *p = malloc(n);
	const char *start = "CONNECT a:1 HTTP/1.1\r\nX-Pad: ";

	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	memset(p, 'a', n);
	memcpy(p, start, strlen(start));
	/* below the bound, no end in sight: need more */
	CU_ASSERT_EQUAL(ns_hconn_parse(NULL, p, NS_HCONN_HEAD_MAX - 1, &req), 0);
	CU_ASSERT_EQUAL(req.status, 0);
	/* at the bound: 400 */
	CU_ASSERT_EQUAL(ns_hconn_parse(NULL, p, NS_HCONN_HEAD_MAX, &req), 0);
	CU_ASSERT_EQUAL(req.status, 400);
	/* a head ending exactly at the bound is fine, one byte more is not */
	memcpy(p + NS_HCONN_HEAD_MAX - 4, "\r\n\r\n", 4);
	CU_ASSERT_EQUAL(ns_hconn_parse(NULL, p, n, &req), 0);
	CU_ASSERT_EQUAL(req.status, 200);
	CU_ASSERT_EQUAL(req.consumed, NS_HCONN_HEAD_MAX);
	memset(p + NS_HCONN_HEAD_MAX - 4, 'a', 4);
	memcpy(p + NS_HCONN_HEAD_MAX - 3, "\r\n\r\n", 4);
	CU_ASSERT_EQUAL(ns_hconn_parse(NULL, p, n, &req), 0);
	CU_ASSERT_EQUAL(req.status, 400);
	free(p);
}

static void
test_proxy_auth(void)
{
	ns_proxy_stats st = { 0 };
	ns_hconn_cfg cfg = { .user = "alice", .pass = "s3:cret", .stats = &st };
	ns_hconn_req req;
	/* base64("alice:s3:cret") = YWxpY2U6czM6Y3JldA== */
	static const struct {
		const char *hdrs;
		int status;
	} cases[] = {
		{ "Proxy-Authorization: Basic YWxpY2U6czM6Y3JldA==\r\n", 200 },
		{ "proxy-authorization:basic   YWxpY2U6czM6Y3JldA==  \r\n", 200 },
		{ "Host: a\r\nPROXY-AUTHORIZATION: BASIC YWxpY2U6czM6Y3JldA==\r\n"
		  "User-Agent: x\r\n",
		    200 },
		{ "", 407 },
		{ "Authorization: Basic YWxpY2U6czM6Y3JldA==\r\n", 407 },
		/* alice:s3:creT */
		{ "Proxy-Authorization: Basic YWxpY2U6czM6Y3JlVA==\r\n", 407 },
		/* alice:s3:cre */
		{ "Proxy-Authorization: Basic YWxpY2U6czM6Y3Jl\r\n", 407 },
		{ "Proxy-Authorization: Bearer YWxpY2U6czM6Y3JldA==\r\n", 407 },
		{ "Proxy-Authorization: Basic !!!!\r\n", 407 },
		{ "Proxy-Authorization: Basic\r\n", 407 },
		{ "Proxy-Authorization: Basic YWxpY2U6czM6Y3JldA==\r\n"
		  "Proxy-Authorization: Basic YWxpY2U6czM6Y3JldA==\r\n",
		    400 },
	};

	for (size_t i = 0; i < TK_ARRAY_LEN(cases); i++) {
		char buf[512];
		snprintf(buf, sizeof(buf), "CONNECT peer1:80 HTTP/1.1\r\n%s\r\n",
		    cases[i].hdrs);
		int got = parse(&cfg, buf, &req);
		if (got != cases[i].status)
			fprintf(stderr, "auth case %zu: %d\n", i, got);
		CU_ASSERT_EQUAL(got, cases[i].status);
	}
	CU_ASSERT_EQUAL(st.http_ok, 3);
	CU_ASSERT_EQUAL(st.http_auth, 7);
	CU_ASSERT_EQUAL(st.http_bad, 1);
	CU_ASSERT_EQUAL(st.http_method, 0);
	/* without credentials configured, any header is ignored */
	CU_ASSERT_EQUAL(parse(NULL,
			    "CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: x\r\n\r\n",
			    &req),
	    200);
}

static void
test_responses(void)
{
	static const int codes[] = { 200, 400, 405, 407, 502, 504 };
	size_t n;

	for (size_t i = 0; i < TK_ARRAY_LEN(codes); i++) {
		const char *s = ns_hconn_response(codes[i], &n);
		char want[32];
		CU_ASSERT_PTR_NOT_NULL_FATAL(s);
		snprintf(want, sizeof(want), "HTTP/1.1 %d ", codes[i]);
		CU_ASSERT(strncmp(s, want, strlen(want)) == 0);
		CU_ASSERT(n >= 4 && memcmp(s + n - 4, "\r\n\r\n", 4) == 0);
		CU_ASSERT_EQUAL(strlen(s), n);
	}
	const char *s = ns_hconn_response(407, &n);
	CU_ASSERT(strstr(s, "\r\nProxy-Authenticate: Basic realm=") != NULL);
	s = ns_hconn_response(405, &n);
	CU_ASSERT(strstr(s, "\r\nAllow: CONNECT\r\n") != NULL);
	CU_ASSERT_PTR_NULL(ns_hconn_response(418, &n));
}

void
register_ns_hconn(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_curl_request),
		TK_TEST(test_targets),
		TK_TEST(test_headers),
		TK_TEST(test_head_bound),
		TK_TEST(test_proxy_auth),
		TK_TEST(test_responses),
		TK_TEST_END,
	};
	tk_test_suite("ns_hconn", cases);
}
