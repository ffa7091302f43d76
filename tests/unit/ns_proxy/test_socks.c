/*
 * SOCKS5 server parser (ns_socks.c): the exchanges curl has with a SOCKS5
 * proxy (RFC 1928 §3-§6, RFC 1929), fed whole and byte by byte; wrong
 * versions, methods, credentials, commands and address types with the
 * reply the RFC asks for; the UDP ASSOCIATE header (§7).
 *
 * Real exchanges: bytes curl 7.88.1 (Debian 12) sent to a Python listener
 * on 127.0.0.1 playing the server: `curl --socks5-hostname H:P
 * http://peer1:80/` and `curl -x socks5h://alice:s3cret@H:P ...`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns_proxy.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk_test.h"

void register_ns_socks(void);

static uint8_t *
exact(const void *p, size_t n)
{
	uint8_t *q = malloc(n ? n : 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	if (n)
		memcpy(q, p, n);
	return q;
}

/* Feeds one message: every proper prefix needs more, the whole is taken. */
static void
feed_msg(ns_socks *s, const uint8_t *m, size_t n, ns_socks_result *r)
{
	for (size_t k = 0; k < n; k++) {
		ns_socks saved = *s;
		uint8_t *p = exact(m, k);
		CU_ASSERT_EQUAL(ns_socks_feed(s, p, k, r), 0);
		CU_ASSERT_EQUAL(r->event, NS_SOCKS_NEED_MORE);
		CU_ASSERT_EQUAL(r->consumed, 0);
		CU_ASSERT_EQUAL(memcmp(&saved, s, sizeof(*s)), 0);
		free(p);
	}
	uint8_t *p = exact(m, n);
	CU_ASSERT_EQUAL(ns_socks_feed(s, p, n, r), 0);
	free(p);
}

static void
test_connect_noauth_domain(void)
{
	ns_socks s;
	ns_socks_result r;
	uint8_t out[NS_SOCKS_REPLY_MAX];
	size_t ol;
	ns_socks_cfg cfg = { 0 };

	ns_socks_init(&s, &cfg);
	/* curl: 05 02 00 01 (no auth, GSSAPI) */
	static const uint8_t greet[] = { 5, 2, 0, 1 };
	feed_msg(&s, greet, sizeof(greet), &r);
	CU_ASSERT_EQUAL(r.event, NS_SOCKS_REPLY);
	CU_ASSERT_EQUAL(r.consumed, 4);
	CU_ASSERT(r.reply_len == 2 && r.reply[0] == 5 && r.reply[1] == 0);
	/* curl: CONNECT peer1:80 by name */
	static const uint8_t req[] = { 5, 1, 0, 3, 5, 'p', 'e', 'e', 'r', '1',
		0, 80 };
	feed_msg(&s, req, sizeof(req), &r);
	CU_ASSERT_EQUAL(r.event, NS_SOCKS_CONNECT);
	CU_ASSERT_EQUAL(r.consumed, sizeof(req));
	CU_ASSERT_EQUAL(r.dst.atyp, NS_SOCKS_ATYP_DOMAIN);
	CU_ASSERT_STRING_EQUAL(r.dst.name, "peer1");
	CU_ASSERT_EQUAL(r.dst.port, 80);
	uint8_t more[sizeof(req) + 3];
	memcpy(more, req, sizeof(req));
	memcpy(more + sizeof(req), "GET", 3);
	/* while waiting for the caller, nothing more is parsed */
	CU_ASSERT_EQUAL(ns_socks_feed(&s, more, sizeof(more), &r), TK_ESTATE);
	tk_ipport bnd;
	CU_ASSERT_EQUAL(tk_ipport_parse(&bnd, "100.64.0.1:40000", 16), 0);
	CU_ASSERT_EQUAL(ns_socks_reply(&s, NS_SOCKS_REP_OK, &bnd, out, &ol), 0);
	static const uint8_t want[] = { 5, 0, 0, 1, 100, 64, 0, 1, 0x9c, 0x40 };
	CU_ASSERT_EQUAL(ol, sizeof(want));
	TK_ASSERT_MEM_EQ(out, want, sizeof(want));
	CU_ASSERT_EQUAL(ns_socks_reply(&s, 0, NULL, out, &ol), TK_ESTATE);
}

static void
test_connect_ip_literals(void)
{
	ns_socks s;
	ns_socks_result r;
	uint8_t out[NS_SOCKS_REPLY_MAX];
	size_t ol;

	ns_socks_init(&s, NULL);
	static const uint8_t greet[] = { 5, 1, 0 };
	feed_msg(&s, greet, sizeof(greet), &r);
	static const uint8_t v6[] = { 5, 1, 0, 4, 0xfd, 0x7a, 0x11, 0x5c, 0xa1,
		0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0x1f, 0x90 };
	feed_msg(&s, v6, sizeof(v6), &r);
	CU_ASSERT_EQUAL(r.event, NS_SOCKS_CONNECT);
	CU_ASSERT_EQUAL(r.dst.atyp, NS_SOCKS_ATYP_IPV6);
	CU_ASSERT(r.dst.ip.family == TK_AF_INET6 && r.dst.ip.addr[15] == 2);
	CU_ASSERT_EQUAL(r.dst.port, 8080);
	tk_ipport bnd;
	CU_ASSERT_EQUAL(tk_ipport_parse(&bnd, "[fd7a:115c:a1e0::1]:1", 21), 0);
	CU_ASSERT_EQUAL(ns_socks_reply(&s, NS_SOCKS_REP_OK, &bnd, out, &ol), 0);
	CU_ASSERT_EQUAL(ol, 22);
	CU_ASSERT_EQUAL(out[3], NS_SOCKS_ATYP_IPV6);

	/* IPv4, and an IP literal sent as a name counts as an IP */
	ns_socks_init(&s, NULL);
	feed_msg(&s, greet, sizeof(greet), &r);
	static const uint8_t v4[] = { 5, 1, 0, 1, 127, 0, 0, 1, 0, 80 };
	feed_msg(&s, v4, sizeof(v4), &r);
	CU_ASSERT(r.event == NS_SOCKS_CONNECT &&
	    r.dst.atyp == NS_SOCKS_ATYP_IPV4 && r.dst.ip.addr[0] == 127);
	/* a failed dial: the REP code goes back, then close */
	CU_ASSERT_EQUAL(ns_socks_reply(&s, NS_SOCKS_REP_REFUSED, NULL, out,
			    &ol),
	    0);
	static const uint8_t refused[] = { 5, 5, 0, 1, 0, 0, 0, 0, 0, 0 };
	CU_ASSERT_EQUAL(ol, sizeof(refused));
	TK_ASSERT_MEM_EQ(out, refused, sizeof(refused));
	ns_socks_init(&s, NULL);
	feed_msg(&s, greet, sizeof(greet), &r);
	static const uint8_t lit[] = { 5, 1, 0, 3, 3, ':', ':', '1', 0, 22 };
	feed_msg(&s, lit, sizeof(lit), &r);
	CU_ASSERT(r.event == NS_SOCKS_CONNECT &&
	    r.dst.atyp == NS_SOCKS_ATYP_IPV6 && r.dst.ip.addr[15] == 1 &&
	    r.dst.port == 22);
}

/* The longest name (255 bytes) and the longest credentials (255 + 255:
 * NS_SOCKS_MSG_MAX) fit; every prefix of them needs more. */
static void
test_longest_messages(void)
{
	ns_socks s;
	ns_socks_result r;
	uint8_t m[NS_SOCKS_MSG_MAX + 8];
	char user[256], pass[256];
	size_t o = 0;

	memset(user, 'u', 255);
	user[255] = '\0';
	memset(pass, 'p', 255);
	pass[255] = '\0';
	ns_socks_cfg cfg = { .user = user, .pass = pass };
	ns_socks_init(&s, &cfg);
	static const uint8_t greet[] = { 5, 1, 2 };
	feed_msg(&s, greet, sizeof(greet), &r);
	m[o++] = 1;
	m[o++] = 255;
	memset(m + o, 'u', 255);
	o += 255;
	m[o++] = 255;
	memset(m + o, 'p', 255);
	o += 255;
	CU_ASSERT_EQUAL(o, NS_SOCKS_MSG_MAX);
	feed_msg(&s, m, o, &r);
	CU_ASSERT(r.event == NS_SOCKS_REPLY && r.reply[1] == 0);
	o = 0;
	m[o++] = 5;
	m[o++] = 1;
	m[o++] = 0;
	m[o++] = 3;
	m[o++] = 255;
	memset(m + o, 'n', 255);
	o += 255;
	m[o++] = 0x01;
	m[o++] = 0xbb;
	feed_msg(&s, m, o, &r);
	CU_ASSERT_EQUAL(r.event, NS_SOCKS_CONNECT);
	CU_ASSERT_EQUAL(strlen(r.dst.name), 255);
	CU_ASSERT_EQUAL(r.dst.port, 443);
}

static void
test_userpass(void)
{
	ns_socks s;
	ns_socks_result r;
	ns_proxy_stats st = { 0 };
	ns_socks_cfg cfg = { .user = "alice", .pass = "s3cret", .stats = &st };

	ns_socks_init(&s, &cfg);
	/* curl with credentials: 05 03 00 01 02 (no auth, GSSAPI, user/pass) */
	static const uint8_t greet[] = { 5, 3, 0, 1, 2 };
	feed_msg(&s, greet, sizeof(greet), &r);
	CU_ASSERT(r.event == NS_SOCKS_REPLY && r.reply[1] == 2);
	/* curl: 01 05 "alice" 06 "s3cret" */
	static const uint8_t auth[] = { 1, 5, 'a', 'l', 'i', 'c', 'e', 6, 's',
		'3', 'c', 'r', 'e', 't' };
	feed_msg(&s, auth, sizeof(auth), &r);
	CU_ASSERT_EQUAL(r.event, NS_SOCKS_REPLY);
	CU_ASSERT(r.reply_len == 2 && r.reply[0] == 1 && r.reply[1] == 0);
	CU_ASSERT_EQUAL(r.consumed, sizeof(auth));
	static const uint8_t req[] = { 5, 1, 0, 1, 10, 0, 0, 1, 0, 80 };
	feed_msg(&s, req, sizeof(req), &r);
	CU_ASSERT_EQUAL(r.event, NS_SOCKS_CONNECT);

	/* wrong password, prefix of the password, longer password, wrong
	 * user: status 1 and close */
	static const char *const bad[][2] = { { "alice", "s3creT" },
		{ "alice", "s3cre" }, { "alice", "s3cret!" }, { "bob", "s3cret" },
		{ "", "" } };
	for (size_t i = 0; i < TK_ARRAY_LEN(bad); i++) {
		uint8_t m[600];
		size_t ul = strlen(bad[i][0]), pl = strlen(bad[i][1]), o = 0;
		ns_socks_init(&s, &cfg);
		feed_msg(&s, greet, sizeof(greet), &r);
		m[o++] = 1;
		m[o++] = (uint8_t)ul;
		memcpy(m + o, bad[i][0], ul);
		o += ul;
		m[o++] = (uint8_t)pl;
		memcpy(m + o, bad[i][1], pl);
		o += pl;
		feed_msg(&s, m, o, &r);
		CU_ASSERT_EQUAL(r.event, NS_SOCKS_CLOSE);
		CU_ASSERT(r.reply_len == 2 && r.reply[0] == 1 && r.reply[1] != 0);
		CU_ASSERT_EQUAL(ns_socks_feed(&s, m, o, &r), TK_ESTATE);
	}
	CU_ASSERT_EQUAL(st.socks_auth_failed, TK_ARRAY_LEN(bad));
	CU_ASSERT_EQUAL(st.socks_connect, 1);
	/* auth required, client offers no-auth only: 0xFF, close */
	ns_socks_init(&s, &cfg);
	static const uint8_t noauth[] = { 5, 1, 0 };
	feed_msg(&s, noauth, sizeof(noauth), &r);
	CU_ASSERT_EQUAL(r.event, NS_SOCKS_CLOSE);
	CU_ASSERT(r.reply_len == 2 && r.reply[1] == NS_SOCKS_M_NONE);
	/* sub-negotiation version other than 1 */
	ns_socks_init(&s, &cfg);
	feed_msg(&s, greet, sizeof(greet), &r);
	static const uint8_t v2[] = { 2, 0, 0 };
	CU_ASSERT_EQUAL(ns_socks_feed(&s, v2, sizeof(v2), &r), 0);
	CU_ASSERT_EQUAL(r.event, NS_SOCKS_CLOSE);
	/* no auth configured, client offers only user/pass: any works */
	ns_socks_init(&s, NULL);
	static const uint8_t only2[] = { 5, 1, 2 };
	feed_msg(&s, only2, sizeof(only2), &r);
	CU_ASSERT(r.event == NS_SOCKS_REPLY && r.reply[1] == 2);
	static const uint8_t any[] = { 1, 1, 'x', 0 };
	feed_msg(&s, any, sizeof(any), &r);
	CU_ASSERT(r.event == NS_SOCKS_REPLY && r.reply[1] == 0);
}

static void
test_bad_requests(void)
{
	static const struct {
		const char *what;
		uint8_t msg[16];
		size_t n;
		int event;
		uint8_t rep; /* reply byte 1, when a reply */
		size_t reply_len;
	} cases[] = {
		{ "BIND", { 5, 2, 0, 1, 1, 2, 3, 4, 0, 80 }, 10, NS_SOCKS_CLOSE,
		    NS_SOCKS_REP_CMD, 10 },
		{ "cmd 9", { 5, 9, 0, 1, 1, 2, 3, 4, 0, 80 }, 10, NS_SOCKS_CLOSE,
		    NS_SOCKS_REP_CMD, 10 },
		{ "UDP not allowed", { 5, 3, 0, 1, 0, 0, 0, 0, 0, 0 }, 10,
		    NS_SOCKS_CLOSE, NS_SOCKS_REP_CMD, 10 },
		{ "ATYP 2", { 5, 1, 0, 2, 1, 2, 3, 4, 0, 80 }, 10, NS_SOCKS_CLOSE,
		    NS_SOCKS_REP_ATYP, 10 },
		{ "empty name", { 5, 1, 0, 3, 0, 0, 80 }, 7, NS_SOCKS_CLOSE,
		    NS_SOCKS_REP_FAIL, 10 },
		{ "NUL in name", { 5, 1, 0, 3, 2, 'a', 0, 0, 80 }, 9,
		    NS_SOCKS_CLOSE, NS_SOCKS_REP_FAIL, 10 },
		{ "version 4", { 4, 1, 0, 1, 1, 2, 3, 4, 0, 80 }, 10,
		    NS_SOCKS_CLOSE, 0, 0 },
	};
	static const uint8_t greet[] = { 5, 1, 0 };
	ns_proxy_stats st = { 0 };
	ns_socks_cfg cfg = { .stats = &st };

	for (size_t i = 0; i < TK_ARRAY_LEN(cases); i++) {
		ns_socks s;
		ns_socks_result r;
		ns_socks_init(&s, &cfg);
		feed_msg(&s, greet, sizeof(greet), &r);
		uint8_t *p = exact(cases[i].msg, cases[i].n);
		CU_ASSERT_EQUAL(ns_socks_feed(&s, p, cases[i].n, &r), 0);
		if (r.event != cases[i].event ||
		    r.reply_len != cases[i].reply_len)
			fprintf(stderr, "case %s: event %d len %zu\n",
			    cases[i].what, r.event, r.reply_len);
		CU_ASSERT_EQUAL(r.event, cases[i].event);
		CU_ASSERT_EQUAL(r.reply_len, cases[i].reply_len);
		if (r.reply_len > 1)
			CU_ASSERT_EQUAL(r.reply[1], cases[i].rep);
		free(p);
	}
	CU_ASSERT_EQUAL(st.socks_bad_request, TK_ARRAY_LEN(cases));
	CU_ASSERT_EQUAL(st.socks_connect, 0);
	/* greetings: SOCKS4, TLS, HTTP; zero methods; no method we take */
	static const struct {
		uint8_t msg[8];
		size_t n;
		size_t reply_len;
	} greets[] = {
		{ { 4, 1, 0, 80 }, 4, 0 },
		{ { 0x16, 3, 1 }, 3, 0 },
		{ { 'G', 'E', 'T', ' ' }, 4, 0 },
		{ { 5, 0 }, 2, 2 },
		{ { 5, 2, 1, 0x80 }, 4, 2 },
	};
	for (size_t i = 0; i < TK_ARRAY_LEN(greets); i++) {
		ns_socks s;
		ns_socks_result r;
		ns_socks_init(&s, &cfg);
		uint8_t *p = exact(greets[i].msg, greets[i].n);
		CU_ASSERT_EQUAL(ns_socks_feed(&s, p, greets[i].n, &r), 0);
		CU_ASSERT_EQUAL(r.event, NS_SOCKS_CLOSE);
		CU_ASSERT_EQUAL(r.reply_len, greets[i].reply_len);
		if (r.reply_len == 2)
			CU_ASSERT_EQUAL(r.reply[1], NS_SOCKS_M_NONE);
		free(p);
	}
	CU_ASSERT_EQUAL(st.socks_not_socks5, 3);
	CU_ASSERT_EQUAL(st.socks_no_method, 2);
}

static void
test_udp_associate(void)
{
	ns_socks s;
	ns_socks_result r;
	ns_socks_cfg cfg = { .allow_udp = true };
	uint8_t out[NS_SOCKS_REPLY_MAX];
	size_t ol;

	ns_socks_init(&s, &cfg);
	static const uint8_t greet[] = { 5, 1, 0 };
	feed_msg(&s, greet, sizeof(greet), &r);
	static const uint8_t req[] = { 5, 3, 0, 1, 0, 0, 0, 0, 0, 0 };
	feed_msg(&s, req, sizeof(req), &r);
	CU_ASSERT_EQUAL(r.event, NS_SOCKS_UDP_ASSOCIATE);
	CU_ASSERT_EQUAL(r.dst.port, 0);
	tk_ipport relay;
	CU_ASSERT_EQUAL(tk_ipport_parse(&relay, "127.0.0.1:5000", 14), 0);
	CU_ASSERT_EQUAL(ns_socks_reply(&s, NS_SOCKS_REP_OK, &relay, out, &ol),
	    0);
	CU_ASSERT(ol == 10 && out[1] == 0 && tk_be16_load(out + 8) == 5000);
}

static void
test_udp_header(void)
{
	ns_proxy_stats st = { 0 };
	ns_socks_addr a, b;
	uint8_t buf[300];
	size_t hl, hl2;

	/* name, v4, v6: encode then decode gives the same address */
	memset(&a, 0, sizeof(a));
	a.atyp = NS_SOCKS_ATYP_DOMAIN;
	strcpy(a.name, "peer1.tail-test.ts.net");
	a.port = 53;
	CU_ASSERT_EQUAL(ns_socks_udp_encode(&a, buf, sizeof(buf), &hl), 0);
	CU_ASSERT_EQUAL(hl, 3 + 2 + 22 + 2);
	memcpy(buf + hl, "data", 4);
	uint8_t *p = exact(buf, hl + 4);
	CU_ASSERT_EQUAL(ns_socks_udp_decode(p, hl + 4, &b, &hl2, NULL), 0);
	CU_ASSERT_EQUAL(hl2, hl);
	CU_ASSERT_STRING_EQUAL(b.name, "peer1.tail-test.ts.net");
	CU_ASSERT_EQUAL(b.port, 53);
	free(p);
	memset(&a, 0, sizeof(a));
	a.atyp = NS_SOCKS_ATYP_IPV6;
	a.ip.family = TK_AF_INET6;
	a.ip.addr[15] = 1;
	a.port = 9;
	CU_ASSERT_EQUAL(ns_socks_udp_encode(&a, buf, sizeof(buf), &hl), 0);
	CU_ASSERT_EQUAL(hl, 22);
	CU_ASSERT_EQUAL(ns_socks_udp_encode(&a, buf, 21, &hl), TK_EMSGSIZE);
	CU_ASSERT_EQUAL(ns_socks_udp_decode(buf, 22, &b, &hl2, NULL), 0);
	CU_ASSERT(b.atyp == NS_SOCKS_ATYP_IPV6 && b.ip.addr[15] == 1 &&
	    b.port == 9);
	/* every truncation is malformed */
	for (size_t k = 0; k < 22; k++) {
		p = exact(buf, k);
		CU_ASSERT_EQUAL(ns_socks_udp_decode(p, k, &b, &hl2, &st),
		    TK_EPROTO);
		free(p);
	}
	/* FRAG != 0: not supported (dropped) */
	buf[2] = 1;
	CU_ASSERT_EQUAL(ns_socks_udp_decode(buf, 22, &b, &hl2, &st),
	    TK_ENOTSUP);
	buf[2] = 0;
	buf[3] = 7;
	CU_ASSERT_EQUAL(ns_socks_udp_decode(buf, 22, &b, &hl2, &st), TK_EPROTO);
	CU_ASSERT_EQUAL(st.socks_udp_frag, 1);
	CU_ASSERT_EQUAL(st.socks_udp_bad, 22 + 1);
	a.atyp = 9;
	CU_ASSERT_EQUAL(ns_socks_udp_encode(&a, buf, sizeof(buf), &hl),
	    TK_EINVAL);
}

void
register_ns_socks(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_connect_noauth_domain),
		TK_TEST(test_connect_ip_literals),
		TK_TEST(test_userpass),
		TK_TEST(test_longest_messages),
		TK_TEST(test_bad_requests),
		TK_TEST(test_udp_associate),
		TK_TEST(test_udp_header),
		TK_TEST_END,
	};
	tk_test_suite("ns_socks", cases);
}
