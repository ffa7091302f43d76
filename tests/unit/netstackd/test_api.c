/*
 * netstackd's local API codec (ns_api.h): table tests of the request
 * parser, which sees whatever a local client sends.
 */
#include <string.h>

#include "netstackd/ns_api.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk_test.h"

void register_ns_api(void);

typedef struct req_case {
	const char *name;
	const char *hex;
	int rv;		 /* expected return */
	size_t used;	 /* for 0 / TK_EINVAL */
	uint8_t op;
	uint16_t port;
	const char *why; /* substring of the reason for TK_EINVAL */
} req_case;

static const req_case req_cases[] = {
	{ "listen 80", "000a0100000000010050", 0, 10, 1, 80, NULL },
	{ "unlisten 80", "000a0400000000020050", 0, 10, 4, 80, NULL },
	{ "udp any", "000a0300000000030000", 0, 10, 3, 0, NULL },
	{ "dial v4", "000f020000000004" "0464400002" "01bb", 0, 15, 2, 443, NULL },
	{ "dial v6", "001b020000000005" "06fd7a115ca1e000000000000000000002" "0016",
	    0, 27, 2, 22, NULL },
	{ "dial name", "000f050000000006" "0470656572" "0050", 0, 15, 5, 80, NULL },
	{ "dial name empty", "000b050000000006" "00" "0050", TK_EINVAL, 11, 5, 0,
	    "name" },
	{ "incomplete header", "00", TK_EAGAIN, 0, 0, 0, NULL },
	{ "incomplete body", "000a01000000000100", TK_EAGAIN, 0, 0, 0, NULL },
	{ "length below header", "0007010000000001", TK_EPROTO, 0, 0, 0, NULL },
	{ "length above max", "ffff010000000001", TK_EPROTO, 0, 0, 0, NULL },
	{ "reply type from client", "0008810000000001", TK_EPROTO, 0, 0, 0, NULL },
	{ "status not zero", "000a0107000000010050", TK_EINVAL, 10, 1, 0, "status" },
	{ "listen port 0", "000a0100000000010000", TK_EINVAL, 10, 1, 0, "port" },
	{ "listen short body", "00090100000000010a", TK_EINVAL, 9, 1, 0, "port" },
	{ "unknown op", "0008630000000001", TK_EINVAL, 8, 99, 0, "unknown" },
	{ "dial bad family", "000f020000000004" "0564400002" "01bb", TK_EINVAL, 15, 2, 0,
	    "family" },
	{ "dial v4 with v6 length", "001b020000000005"
	    "04fd7a115ca1e000000000000000000002" "0016", TK_EINVAL, 27, 2, 0, "body" },
	{ "dial port 0", "000f020000000004" "0464400002" "0000", TK_EINVAL, 15, 2, 0,
	    "port" },
	{ "dial name NUL", "000f050000000006" "0470650072" "0050", TK_EINVAL, 15, 5, 0,
	    "NUL" },
	{ NULL, NULL, 0, 0, 0, 0, NULL },
};

static void
test_req_table(void)
{
	for (const req_case *c = req_cases; c->name; c++) {
		uint8_t b[NS_API_FRAME_MAX + 16];
		size_t n = tk_test_unhex(b, sizeof(b), c->hex), used = 0;
		ns_api_req r;
		int rv = ns_api_req_parse(b, n, &r, &used);

		if (rv != c->rv)
			fprintf(stderr, "case '%s': rv %d, want %d\n", c->name, rv, c->rv);
		CU_ASSERT_EQUAL(rv, c->rv);
		if (rv == 0 || rv == TK_EINVAL) {
			CU_ASSERT_EQUAL(used, c->used);
			CU_ASSERT_EQUAL(r.op, c->op);
		}
		if (rv == 0) {
			uint8_t again[NS_API_FRAME_MAX];
			CU_ASSERT_EQUAL(r.addr.port, c->port);
			CU_ASSERT_EQUAL(ns_api_req_encode(again, sizeof(again), &r), n);
			TK_ASSERT_MEM_EQ(again, b, n);
		}
		if (rv == TK_EINVAL && c->why) {
			CU_ASSERT_PTR_NOT_NULL_FATAL(r.why);
			if (strstr(r.why, c->why) == NULL)
				fprintf(stderr, "case '%s': why '%s'\n", c->name, r.why);
			CU_ASSERT_PTR_NOT_NULL(strstr(r.why, c->why));
		}
	}
}

/* Requests back to back, split at every byte: the parser sees a stream. */
static void
test_req_stream_split(void)
{
	uint8_t s[64];
	size_t n = tk_test_unhex(s, sizeof(s),
	    "000a0100000000010050" "0008630000000002" "000f020000000003" "0464400002" "01bb");

	for (size_t cut = 0; cut <= n; cut++) {
		uint8_t buf[64];
		size_t have = 0, off = 0, got = 0;
		int ops[3] = { 0 };

		memcpy(buf, s, cut);
		have = cut;
		for (int round = 0; round < 2; round++) {
			for (;;) {
				ns_api_req r;
				size_t used;
				int rv = ns_api_req_parse(buf + off, have - off, &r, &used);
				if (rv == TK_EAGAIN)
					break;
				CU_ASSERT(rv == 0 || rv == TK_EINVAL);
				CU_ASSERT(got < 3);
				if (got < 3)
					ops[got++] = r.op;
				off += used;
			}
			if (round == 0) {
				memcpy(buf + have, s + cut, n - cut);
				have = n;
			}
		}
		CU_ASSERT_EQUAL(got, 3);
		CU_ASSERT(ops[0] == 1 && ops[1] == 99 && ops[2] == 2);
	}
}

/* field by field: the struct has padding */
static bool
addr_eq(const ns_api_addr *a, const ns_api_addr *b)
{
	return a->family == b->family && a->port == b->port &&
	    memcmp(a->addr, b->addr, 16) == 0;
}

static void
test_peer_roundtrip(void)
{
	ns_api_peer p = { 0 }, q;
	uint8_t b[NS_API_FRAME_MAX];
	size_t n;

	p.remote.family = 6;
	p.remote.addr[0] = 0xfd;
	p.remote.port = 4242;
	p.local.family = 4;
	p.local.addr[0] = 100;
	p.local.port = 80;
	p.node_id = 123456789012345;
	p.user_id = -7;
	strcpy(p.name, "peer.tail0.ts.net.");
	strcpy(p.login, "bob@example.com");
	n = ns_api_peer_encode(b, sizeof(b), &p);
	CU_ASSERT(n > NS_API_PEER_MIN);
	CU_ASSERT_EQUAL(ns_api_peer_decode(b, n, &q), 0);
	CU_ASSERT(addr_eq(&p.remote, &q.remote) && addr_eq(&p.local, &q.local));
	CU_ASSERT(p.node_id == q.node_id && p.user_id == q.user_id);
	CU_ASSERT_STRING_EQUAL(q.name, p.name);
	CU_ASSERT_STRING_EQUAL(q.login, p.login);
	/* truncated or padded: refused */
	CU_ASSERT_EQUAL(ns_api_peer_decode(b, n - 1, &q), TK_EPROTO);
	CU_ASSERT_EQUAL(ns_api_peer_decode(b, n + 1, &q), TK_EPROTO);
	CU_ASSERT_EQUAL(ns_api_peer_decode(b, 3, &q), TK_EPROTO);
	/* a name length that runs past the end */
	b[NS_API_PEER_MIN - 2] = 250;
	CU_ASSERT_EQUAL(ns_api_peer_decode(b, n, &q), TK_EPROTO);
}

static void
test_udp_hdr(void)
{
	ns_api_addr a = { .family = 4, .addr = { 100, 64, 0, 2 }, .port = 53 }, b;
	uint8_t h[NS_UDP_HDR_LEN];

	ns_udp_hdr_encode(h, &a);
	CU_ASSERT_EQUAL(ns_udp_hdr_decode(h, sizeof(h), &b), 0);
	CU_ASSERT(addr_eq(&a, &b));
	CU_ASSERT_EQUAL(ns_udp_hdr_decode(h, sizeof(h) - 1, &b), TK_EPROTO);
	h[0] = 5;
	CU_ASSERT_EQUAL(ns_udp_hdr_decode(h, sizeof(h), &b), TK_EPROTO);
	h[0] = 4;
	h[1] = 1; /* flags must be 0 */
	CU_ASSERT_EQUAL(ns_udp_hdr_decode(h, sizeof(h), &b), TK_EPROTO);
	h[1] = 0;
	tk_be16_store(h + 2, 0);
	CU_ASSERT_EQUAL(ns_udp_hdr_decode(h, sizeof(h), &b), TK_EPROTO);
}

void
register_ns_api(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_req_table),
		TK_TEST(test_req_stream_split),
		TK_TEST(test_peer_roundtrip),
		TK_TEST(test_udp_hdr),
		TK_TEST_END,
	};
	tk_test_suite("ns_api", cases);
}
