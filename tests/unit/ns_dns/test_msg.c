/*
 * netstackd's DNS codec (ns_dns_msg.c): real queries captured from dig,
 * names (compression, loops, label and name limits), malformed headers and
 * records, the response builder (EDNS0 echo, truncation) and the upstream
 * response check.
 *
 * Real queries: bytes dig 9.18.49 (Debian 12, dnsutils 1:9.18.49-1~deb12u3)
 * sent to a UDP socket on 127.0.0.1, captured with a 10-line Python
 * listener:  dig @127.0.0.1 -p P +tries=1 +time=1 <args>.
 *
 * Every input is a heap block of exactly its length, so an over-read is an
 * ASan error in build-asan.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns_dns.h"
#include "qbuild.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk_test.h"

void register_ns_dns_msg(void);

/* dig peer1.tail-test.ts.net A (EDNS0 1232, cookie option, RD+AD) */
const char *const dig_a_edns =
    "a89301200001000000000001057065657231097461696c2d74657374027473036e"
    "6574000001000100002904d000000000000c000a000814ca426a7f1e7803";
/* dig +noedns PEER1.tail-test.ts.net AAAA */
const char *const dig_aaaa_noedns =
    "d20e01200001000000000000055045455231097461696c2d74657374027473036e"
    "657400001c0001";
/* dig -x 100.64.0.2 */
const char *const dig_ptr =
    "480101200001000000000001013201300236340331303007696e2d616464720461"
    "72706100000c000100002904d000000000000c000a00081422809e48e8bedb";

uint8_t *
exact(const void *p, size_t n)
{
	uint8_t *q = malloc(n ? n : 1);

	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	if (n)
		memcpy(q, p, n);
	return q;
}

size_t
unhex_exact(uint8_t **out, const char *hex)
{
	uint8_t tmp[2048];
	size_t n = tk_test_unhex(tmp, sizeof(tmp), hex);
	*out = exact(tmp, n);
	return n;
}

size_t
qbuild(uint8_t *b, uint16_t id, uint16_t flags, const char *name,
    uint16_t qtype, uint16_t qclass, int edns_size)
{
	size_t nl, o;

	memset(b, 0, NS_DNS_HDR_LEN);
	tk_be16_store(b, id);
	tk_be16_store(b + 2, flags);
	tk_be16_store(b + 4, 1);
	CU_ASSERT_FATAL(ns_dns_name_from_text(name, b + NS_DNS_HDR_LEN, &nl) ==
	    0);
	o = NS_DNS_HDR_LEN + nl;
	tk_be16_store(b + o, qtype);
	tk_be16_store(b + o + 2, qclass);
	o += 4;
	if (edns_size >= 0) {
		tk_be16_store(b + 10, 1);
		b[o] = 0;
		tk_be16_store(b + o + 1, NS_DNS_TYPE_OPT);
		tk_be16_store(b + o + 3, (uint16_t)edns_size);
		memset(b + o + 5, 0, 6);
		o += NS_DNS_OPT_RR_LEN;
	}
	return o;
}

static void
test_parse_dig_queries(void)
{
	ns_dns_query q;
	uint8_t *p;
	size_t n;

	n = unhex_exact(&p, dig_a_edns);
	CU_ASSERT_EQUAL(ns_dns_query_parse(&q, p, n), 0);
	CU_ASSERT_EQUAL(q.id, 0xa893);
	CU_ASSERT_EQUAL(q.flags, NS_DNS_F_RD | NS_DNS_F_AD);
	CU_ASSERT_STRING_EQUAL(q.text, "peer1.tail-test.ts.net.");
	CU_ASSERT_EQUAL(q.qtype, NS_DNS_TYPE_A);
	CU_ASSERT_EQUAL(q.qclass, NS_DNS_CLASS_IN);
	CU_ASSERT_EQUAL(q.qname_len, 24);
	CU_ASSERT(q.has_opt);
	CU_ASSERT_EQUAL(q.udp_size, 1232);
	CU_ASSERT_EQUAL(q.edns_version, 0);
	CU_ASSERT(!q.edns_do);
	free(p);

	n = unhex_exact(&p, dig_aaaa_noedns);
	CU_ASSERT_EQUAL(ns_dns_query_parse(&q, p, n), 0);
	CU_ASSERT_STRING_EQUAL(q.text, "peer1.tail-test.ts.net.");
	CU_ASSERT(memcmp(q.qname, "\005PEER1", 6) == 0); /* case kept */
	CU_ASSERT_EQUAL(q.qtype, NS_DNS_TYPE_AAAA);
	CU_ASSERT(!q.has_opt);
	free(p);

	n = unhex_exact(&p, dig_ptr);
	CU_ASSERT_EQUAL(ns_dns_query_parse(&q, p, n), 0);
	CU_ASSERT_STRING_EQUAL(q.text, "2.0.64.100.in-addr.arpa.");
	CU_ASSERT_EQUAL(q.qtype, NS_DNS_TYPE_PTR);
	free(p);
}

/* Every proper prefix of a real query is refused (the OPT record it
 * announces is missing or cut), and none reads past its end. */
static void
test_parse_truncated(void)
{
	uint8_t tmp[512];
	ns_dns_query q;
	size_t n = tk_test_unhex(tmp, sizeof(tmp), dig_a_edns);

	for (size_t k = 0; k < n; k++) {
		uint8_t *p = exact(tmp, k);
		int rv = ns_dns_query_parse(&q, p, k);
		CU_ASSERT_EQUAL(rv, k < NS_DNS_HDR_LEN ? TK_EAGAIN : TK_EPROTO);
		free(p);
	}
}

static void
test_parse_header_rules(void)
{
	uint8_t b[512], *p;
	ns_dns_query q;
	size_t n = qbuild(b, 7, NS_DNS_F_RD, "a.example", NS_DNS_TYPE_A,
	    NS_DNS_CLASS_IN, -1);
	static const struct {
		const char *what;
		size_t off;
		uint16_t v;
		int want;
	} cases[] = {
		{ "ok", 4, 1, 0 },
		{ "qdcount 0", 4, 0, TK_EPROTO },
		{ "qdcount 2", 4, 2, TK_EPROTO },
		{ "ancount 1", 6, 1, TK_EPROTO },
		{ "nscount 1", 8, 1, TK_EPROTO },
		{ "arcount 1, no record", 10, 1, TK_EPROTO },
		{ "QR set", 2, NS_DNS_F_QR, TK_EEXIST },
		{ "opcode STATUS", 2, 2 << 11, TK_ENOTSUP },
		{ "opcode NOTIFY", 2, 4 << 11, TK_ENOTSUP },
	};

	for (size_t i = 0; i < TK_ARRAY_LEN(cases); i++) {
		uint8_t c[512];
		memcpy(c, b, n);
		tk_be16_store(c + cases[i].off, cases[i].v);
		p = exact(c, n);
		int rv = ns_dns_query_parse(&q, p, n);
		if (rv != cases[i].want)
			fprintf(stderr, "case %s: %d\n", cases[i].what, rv);
		CU_ASSERT_EQUAL(rv, cases[i].want);
		if (rv == TK_ENOTSUP || rv == TK_EPROTO)
			CU_ASSERT_EQUAL(q.id, 7); /* enough for an error reply */
		free(p);
	}
}

static void
test_names_compression(void)
{
	uint8_t out[NS_DNS_NAME_MAX], m[600];
	size_t ol, next;

	/* "a.b." at 0, then "c" + pointer to 0 at 5 */
	static const uint8_t ok[] = { 1, 'a', 1, 'b', 0, 1, 'c', 0xc0, 0 };
	CU_ASSERT_EQUAL(ns_dns_name_read(ok, sizeof(ok), 5, out, &ol, &next),
	    0);
	CU_ASSERT_EQUAL(ol, 7);
	CU_ASSERT(memcmp(out, "\001c\001a\001b\000", 7) == 0);
	CU_ASSERT_EQUAL(next, 9); /* just past the first pointer */

	/* a pointer to itself, and a forward pointer */
	static const uint8_t self[] = { 0xc0, 0 };
	CU_ASSERT_EQUAL(ns_dns_name_read(self, 2, 0, out, &ol, &next),
	    TK_EPROTO);
	static const uint8_t fwd[] = { 0xc0, 2, 0 };
	CU_ASSERT_EQUAL(ns_dns_name_read(fwd, 3, 0, out, &ol, &next),
	    TK_EPROTO);
	/* two pointers pointing at each other: the forward one is refused */
	static const uint8_t loop[] = { 0xc0, 2, 0xc0, 0 };
	CU_ASSERT_EQUAL(ns_dns_name_read(loop, 4, 2, out, &ol, &next),
	    TK_EPROTO);
	/* a backward pointer whose target runs forward into the pointer
	 * again: the hop bound ends it */
	static const uint8_t back[] = { 1, 'a', 0xc0, 0 };
	CU_ASSERT_EQUAL(ns_dns_name_read(back, 4, 2, out, &ol, &next),
	    TK_EPROTO);
	/* a pointer cut in half */
	static const uint8_t half[] = { 1, 'a', 0xc0 };
	CU_ASSERT_EQUAL(ns_dns_name_read(half, 3, 0, out, &ol, &next),
	    TK_EPROTO);

	/* a chain of backward pointers: at most NS_DNS_PTR_HOPS_MAX hops */
	for (int hops = 1; hops <= NS_DNS_PTR_HOPS_MAX + 8; hops++) {
		m[0] = 0;
		for (int i = 0; i < hops; i++)
			tk_be16_store(m + 1 + 2 * i, (uint16_t)(0xc000 | (i ? 1 + 2 * (i - 1) : 0)));
		size_t start = 1 + 2 * (size_t)(hops - 1);
		int rv = ns_dns_name_read(m, 1 + 2 * (size_t)hops, start, out,
		    &ol, &next);
		CU_ASSERT_EQUAL(rv, hops <= NS_DNS_PTR_HOPS_MAX ? 0 : TK_EPROTO);
	}

	/* extended label types 0x40 and 0x80 (and so length 64) */
	static const uint8_t ext1[] = { 0x40, 'a', 0 };
	CU_ASSERT_EQUAL(ns_dns_name_read(ext1, 3, 0, out, &ol, &next),
	    TK_EPROTO);
	static const uint8_t ext2[] = { 0x81, 'a', 0 };
	CU_ASSERT_EQUAL(ns_dns_name_read(ext2, 3, 0, out, &ol, &next),
	    TK_EPROTO);
	/* a label running past the end, and no terminating root */
	static const uint8_t past[] = { 5, 'a', 'b' };
	CU_ASSERT_EQUAL(ns_dns_name_read(past, 3, 0, out, &ol, &next),
	    TK_EPROTO);
	static const uint8_t noroot[] = { 1, 'a' };
	CU_ASSERT_EQUAL(ns_dns_name_read(noroot, 2, 0, out, &ol, &next),
	    TK_EPROTO);
}

/* Wire name from label lengths, each label filled with `fill`. */
static size_t
mkname(uint8_t *w, const int *labels, size_t nl, uint8_t fill)
{
	size_t o = 0;

	for (size_t i = 0; i < nl; i++) {
		w[o++] = (uint8_t)labels[i];
		memset(w + o, fill, (size_t)labels[i]);
		o += (size_t)labels[i];
	}
	w[o++] = 0;
	return o;
}

/* 255 bytes of wire name are fine, 256 are not, also when reached only
 * through a pointer. */
static void
test_names_length(void)
{
	uint8_t m[600], out[NS_DNS_NAME_MAX];
	size_t o, ol, next;
	static const int l255[] = { 63, 63, 63, 61 }, l256[] = { 63, 63, 63, 62 };

	o = mkname(m, l255, 4, 'x');
	CU_ASSERT_EQUAL(o, 255);
	CU_ASSERT_EQUAL(ns_dns_name_read(m, o, 0, out, &ol, &next), 0);
	CU_ASSERT_EQUAL(ol, 255);
	o = mkname(m, l256, 4, 'x');
	CU_ASSERT_EQUAL(o, 256);
	CU_ASSERT_EQUAL(ns_dns_name_read(m, o, 0, out, &ol, &next),
	    TK_EPROTO);
	/* 200 bytes of labels, then a pointer to a 60-byte name */
	o = 0;
	m[o++] = 58;
	memset(m + o, 'p', 58);
	o += 58;
	m[o++] = 0; /* 60 bytes */
	size_t start = o;
	for (int i = 0; i < 4; i++) {
		m[o++] = 49;
		memset(m + o, 'q', 49);
		o += 49;
	}
	tk_be16_store(m + o, 0xc000);
	o += 2;
	CU_ASSERT_EQUAL(ns_dns_name_read(m, o, start, out, &ol, &next),
	    TK_EPROTO); /* 200 + 60 > 255 */

	/* text -> wire limits */
	char t[400];
	memset(t, 'a', 64);
	t[64] = '\0';
	CU_ASSERT_EQUAL(ns_dns_name_from_text(t, out, &ol), TK_EINVAL);
	t[63] = '\0';
	CU_ASSERT_EQUAL(ns_dns_name_from_text(t, out, &ol), 0);
	CU_ASSERT_EQUAL(ns_dns_name_from_text("a..b", out, &ol), TK_EINVAL);
	CU_ASSERT_EQUAL(ns_dns_name_from_text("", out, &ol), TK_EINVAL);
	CU_ASSERT_EQUAL(ns_dns_name_from_text(".", out, &ol), 0);
	CU_ASSERT_EQUAL(ol, 1);
}

static void
test_names_text(void)
{
	char t[NS_DNS_TEXT_MAX];
	static const uint8_t odd[] = { 3, 'A', '.', 0x01, 2, 'B', '\\', 0 };

	CU_ASSERT_EQUAL(ns_dns_name_to_text(odd, sizeof(odd), t, sizeof(t)),
	    0);
	CU_ASSERT_STRING_EQUAL(t, "a\\046\\001.b\\092.");
	static const uint8_t root[] = { 0 };
	CU_ASSERT_EQUAL(ns_dns_name_to_text(root, 1, t, sizeof(t)), 0);
	CU_ASSERT_STRING_EQUAL(t, ".");
	/* the worst case fits NS_DNS_TEXT_MAX: 255 bytes all escaped */
	uint8_t w[NS_DNS_NAME_MAX];
	static const int l255[] = { 63, 63, 63, 61 };
	size_t o = mkname(w, l255, 4, 0xff);
	CU_ASSERT_EQUAL(ns_dns_name_to_text(w, o, t, sizeof(t)), 0);
	CU_ASSERT_EQUAL(strlen(t), 250 * 4 + 4);
	CU_ASSERT(ns_dns_name_eq((const uint8_t *)"\001A\000", 3,
	    (const uint8_t *)"\001a\000", 3));
	CU_ASSERT(!ns_dns_name_eq((const uint8_t *)"\001A\000", 3,
	    (const uint8_t *)"\001b\000", 3));
}

static void
test_parse_records(void)
{
	uint8_t b[512], *p;
	ns_dns_query q;
	size_t n = qbuild(b, 1, 0, "x.example", NS_DNS_TYPE_A,
	    NS_DNS_CLASS_IN, 4096);

	/* two OPT records: FORMERR (RFC 6891 §6.1.1) */
	memcpy(b + n, b + n - NS_DNS_OPT_RR_LEN, NS_DNS_OPT_RR_LEN);
	tk_be16_store(b + 10, 2);
	p = exact(b, n + NS_DNS_OPT_RR_LEN);
	CU_ASSERT_EQUAL(ns_dns_query_parse(&q, p, n + NS_DNS_OPT_RR_LEN),
	    TK_EPROTO);
	free(p);
	/* OPT owned by a non-root name */
	n = qbuild(b, 1, 0, "x.example", NS_DNS_TYPE_A, NS_DNS_CLASS_IN, -1);
	static const uint8_t opt_named[] = { 0xc0, 12, 0, 41, 0x10, 0, 0, 0, 0,
		0, 0, 0 };
	memcpy(b + n, opt_named, sizeof(opt_named));
	tk_be16_store(b + 10, 1);
	p = exact(b, n + sizeof(opt_named));
	CU_ASSERT_EQUAL(ns_dns_query_parse(&q, p, n + sizeof(opt_named)),
	    TK_EPROTO);
	free(p);
	/* a non-OPT additional record is skipped; RDLENGTH past the end is
	 * not */
	static const uint8_t txt[] = { 0, 0, 16, 0, 1, 0, 0, 0, 0, 0, 2, 'h',
		'i' };
	memcpy(b + n, txt, sizeof(txt));
	p = exact(b, n + sizeof(txt));
	CU_ASSERT_EQUAL(ns_dns_query_parse(&q, p, n + sizeof(txt)), 0);
	CU_ASSERT(!q.has_opt);
	free(p);
	p = exact(b, n + sizeof(txt) - 1);
	CU_ASSERT_EQUAL(ns_dns_query_parse(&q, p, n + sizeof(txt) - 1),
	    TK_EPROTO);
	free(p);
	/* small EDNS payload sizes count as 512; version and DO are read */
	n = qbuild(b, 1, 0, "x.example", NS_DNS_TYPE_A, NS_DNS_CLASS_IN, 100);
	b[n - 5] = 1;	 /* version 1 */
	b[n - 4] = 0x80; /* DO */
	p = exact(b, n);
	CU_ASSERT_EQUAL(ns_dns_query_parse(&q, p, n), 0);
	CU_ASSERT_EQUAL(q.udp_size, 512);
	CU_ASSERT_EQUAL(q.edns_version, 1);
	CU_ASSERT(q.edns_do);
	free(p);
}

static void
test_builder_edns_and_truncation(void)
{
	uint8_t b[512], out[2048];
	ns_dns_query q;
	ns_dns_builder bd;
	size_t n, ol;
	tk_ipaddr v6 = { .family = TK_AF_INET6 };

	v6.addr[0] = 0xfd;
	/* no EDNS: 512 bytes; 20 AAAA records (28 bytes each) do not fit */
	n = qbuild(b, 0x1234, NS_DNS_F_RD, "many.example", NS_DNS_TYPE_AAAA,
	    NS_DNS_CLASS_IN, -1);
	CU_ASSERT_EQUAL_FATAL(ns_dns_query_parse(&q, b, n), 0);
	CU_ASSERT_EQUAL(ns_dns_size_limit(&q, NS_DNS_UDP), 512);
	CU_ASSERT_EQUAL(ns_dns_size_limit(&q, NS_DNS_TCP), 65535);
	CU_ASSERT_EQUAL(ns_dns_resp_begin(&bd, out, sizeof(out),
			    ns_dns_size_limit(&q, NS_DNS_UDP), &q, 0, true, true),
	    0);
	for (int i = 0; i < 20; i++)
		CU_ASSERT_EQUAL(ns_dns_resp_add_addr(&bd, &v6, 60), 0);
	CU_ASSERT_EQUAL(ns_dns_resp_finish(&bd, &ol), 0);
	CU_ASSERT(ol <= 512);
	CU_ASSERT(tk_be16_load(out + 2) & NS_DNS_F_TC);
	CU_ASSERT_EQUAL(tk_be16_load(out + 6), 0); /* no partial RRset */
	CU_ASSERT_EQUAL(tk_be16_load(out + 4), 1);
	CU_ASSERT_EQUAL(tk_be16_load(out), 0x1234);
	CU_ASSERT(tk_be16_load(out + 2) & NS_DNS_F_RD);
	/* the same over TCP fits */
	CU_ASSERT_EQUAL(ns_dns_resp_begin(&bd, out, sizeof(out),
			    ns_dns_size_limit(&q, NS_DNS_TCP), &q, 0, true, true),
	    0);
	for (int i = 0; i < 20; i++)
		CU_ASSERT_EQUAL(ns_dns_resp_add_addr(&bd, &v6, 60), 0);
	CU_ASSERT_EQUAL(ns_dns_resp_finish(&bd, &ol), 0);
	CU_ASSERT(!(tk_be16_load(out + 2) & NS_DNS_F_TC));
	CU_ASSERT_EQUAL(tk_be16_load(out + 6), 20);
	CU_ASSERT_EQUAL(ol, 12 + 14 + 4 + 20 * 28);

	/* EDNS 1232: fits, and the OPT record is echoed (DO copied) */
	n = qbuild(b, 0x1234, 0, "many.example", NS_DNS_TYPE_AAAA,
	    NS_DNS_CLASS_IN, 4096);
	b[n - 4] = 0x80;
	CU_ASSERT_EQUAL_FATAL(ns_dns_query_parse(&q, b, n), 0);
	CU_ASSERT_EQUAL(ns_dns_size_limit(&q, NS_DNS_UDP), NS_DNS_EDNS_PAYLOAD);
	CU_ASSERT_EQUAL(ns_dns_resp_begin(&bd, out, sizeof(out),
			    ns_dns_size_limit(&q, NS_DNS_UDP), &q, 0, true, true),
	    0);
	for (int i = 0; i < 20; i++)
		CU_ASSERT_EQUAL(ns_dns_resp_add_addr(&bd, &v6, 60), 0);
	CU_ASSERT_EQUAL(ns_dns_resp_finish(&bd, &ol), 0);
	CU_ASSERT(!(tk_be16_load(out + 2) & NS_DNS_F_TC));
	CU_ASSERT_EQUAL(tk_be16_load(out + 6), 20);
	CU_ASSERT_EQUAL(tk_be16_load(out + 10), 1);
	const uint8_t *opt = out + ol - NS_DNS_OPT_RR_LEN;
	CU_ASSERT_EQUAL(opt[0], 0);
	CU_ASSERT_EQUAL(tk_be16_load(opt + 1), NS_DNS_TYPE_OPT);
	CU_ASSERT_EQUAL(tk_be16_load(opt + 3), NS_DNS_EDNS_PAYLOAD);
	CU_ASSERT_EQUAL(tk_be16_load(opt + 7), NS_DNS_OPT_DO);
	/* EDNS with 600 bytes and 40 records: truncated, OPT still there */
	n = qbuild(b, 0x1234, 0, "many.example", NS_DNS_TYPE_AAAA,
	    NS_DNS_CLASS_IN, 600);
	CU_ASSERT_EQUAL_FATAL(ns_dns_query_parse(&q, b, n), 0);
	CU_ASSERT_EQUAL(ns_dns_resp_begin(&bd, out, sizeof(out),
			    ns_dns_size_limit(&q, NS_DNS_UDP), &q, 0, true, true),
	    0);
	for (int i = 0; i < 40; i++)
		CU_ASSERT_EQUAL(ns_dns_resp_add_addr(&bd, &v6, 60), 0);
	CU_ASSERT_EQUAL(ns_dns_resp_finish(&bd, &ol), 0);
	CU_ASSERT(ol <= 600);
	CU_ASSERT(tk_be16_load(out + 2) & NS_DNS_F_TC);
	CU_ASSERT_EQUAL(tk_be16_load(out + 10), 1);
	/* BADVERS needs the OPT record */
	CU_ASSERT_EQUAL(ns_dns_resp_error(&q, NS_DNS_UDP, NS_DNS_RCODE_BADVERS,
			    false, out, sizeof(out), &ol),
	    0);
	CU_ASSERT_EQUAL(out[ol - NS_DNS_OPT_RR_LEN + 5], 1);
	CU_ASSERT_EQUAL(out[3] & 0x0f, 0);
	q.has_opt = false;
	CU_ASSERT_EQUAL(ns_dns_resp_error(&q, NS_DNS_UDP, NS_DNS_RCODE_BADVERS,
			    false, out, sizeof(out), &ol),
	    TK_EINVAL);
	/* too small an output buffer */
	CU_ASSERT_EQUAL(ns_dns_resp_error(&q, NS_DNS_UDP, 2, false, out, 100,
			    &ol),
	    TK_EINVAL);
}

static void
test_response_check(void)
{
	uint8_t b[512], name[NS_DNS_NAME_MAX];
	size_t n, nl;
	uint16_t id, t, c;

	n = qbuild(b, 0x4242, NS_DNS_F_QR, "Up.Example", NS_DNS_TYPE_TXT,
	    NS_DNS_CLASS_IN, -1);
	CU_ASSERT_EQUAL(ns_dns_response_check(b, n, &id, name, &nl, &t, &c),
	    0);
	CU_ASSERT_EQUAL(id, 0x4242);
	CU_ASSERT_EQUAL(t, NS_DNS_TYPE_TXT);
	CU_ASSERT(ns_dns_name_eq(name, nl, (const uint8_t *)"\002up\007example",
	    12));
	b[2] = 0; /* a query, not a response */
	CU_ASSERT_EQUAL(ns_dns_response_check(b, n, &id, name, &nl, &t, &c),
	    TK_EPROTO);
	b[2] = 0x80;
	CU_ASSERT_EQUAL(ns_dns_response_check(b, n - 1, &id, name, &nl, &t,
			    &c),
	    TK_EPROTO);
	CU_ASSERT_EQUAL(ns_dns_response_check(b, 11, &id, name, &nl, &t, &c),
	    TK_EPROTO);
}

/* Two messages back to back in a stream, split at every byte. */
static void
test_tcp_framing(void)
{
	uint8_t s[64];
	const uint8_t *m;
	size_t l, c;

	s[0] = 0;
	s[1] = 3;
	memcpy(s + 2, "abc", 3);
	s[5] = 0;
	s[6] = 1;
	s[7] = 'z';
	for (size_t k = 0; k < 5; k++) {
		uint8_t *p = exact(s, k);
		CU_ASSERT_EQUAL(ns_dns_tcp_next(p, k, &m, &l, &c), TK_EAGAIN);
		free(p);
	}
	CU_ASSERT_EQUAL(ns_dns_tcp_next(s, 8, &m, &l, &c), 0);
	CU_ASSERT(m == s + 2 && l == 3 && c == 5);
	CU_ASSERT_EQUAL(ns_dns_tcp_next(s + c, 8 - c, &m, &l, &c), 0);
	CU_ASSERT(l == 1 && *m == 'z' && c == 3);
	s[0] = s[1] = 0;
	CU_ASSERT_EQUAL(ns_dns_tcp_next(s, 8, &m, &l, &c), TK_EPROTO);
}

/* ns_dns_response_addr: the address after a CNAME, AAAA, and what is not
 * an answer (NXDOMAIN, a query, cut records). */
static void
test_response_addr(void)
{
	/* www.example.com A: CNAME web.example.com (compressed), then A */
	static const char *cname_a =
	    "12348180000100020000000003777777076578616d706c6503636f6d0000010001"
	    "c00c000500010000001e000603776562c010c02d000100010000001e000464400002";
	static const char *aaaa =
	    "0001818000010001000000000168076578616d706c6500001c0001c00c001c0001"
	    "0000001e0010fd7a115ca1e000000000000000000002";
	uint8_t m[256];
	size_t n;
	tk_ipaddr ip;

	n = tk_test_unhex(m, sizeof(m), cname_a);
	CU_ASSERT_EQUAL(ns_dns_response_addr(m, n, &ip), 0);
	CU_ASSERT(ip.family == TK_AF_INET && ip.addr[0] == 100 && ip.addr[1] == 64 &&
	    ip.addr[2] == 0 && ip.addr[3] == 2);
	for (size_t cut = 0; cut < n; cut++)
		CU_ASSERT_EQUAL(ns_dns_response_addr(m, cut, &ip), TK_EPROTO);
	m[3] = 0x83; /* NXDOMAIN */
	CU_ASSERT_EQUAL(ns_dns_response_addr(m, n, &ip), TK_ENOENT);
	m[3] = 0x80;
	m[2] = 0x01; /* QR clear: a query */
	CU_ASSERT_EQUAL(ns_dns_response_addr(m, n, &ip), TK_EPROTO);
	n = tk_test_unhex(m, sizeof(m), aaaa);
	CU_ASSERT_EQUAL(ns_dns_response_addr(m, n, &ip), 0);
	CU_ASSERT(ip.family == TK_AF_INET6 && ip.addr[0] == 0xfd && ip.addr[15] == 2);
	m[7] = 0; /* no answers: NOERROR, no data */
	CU_ASSERT_EQUAL(ns_dns_response_addr(m, n, &ip), TK_ENOENT);
}

void
register_ns_dns_msg(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_parse_dig_queries),
		TK_TEST(test_response_addr),
		TK_TEST(test_parse_truncated),
		TK_TEST(test_parse_header_rules),
		TK_TEST(test_names_compression),
		TK_TEST(test_names_length),
		TK_TEST(test_names_text),
		TK_TEST(test_parse_records),
		TK_TEST(test_builder_edns_and_truncation),
		TK_TEST(test_response_check),
		TK_TEST(test_tcp_framing),
		TK_TEST_END,
	};
	tk_test_suite("ns_dns_msg", cases);
}
