/*
 * wgd's ping probes (wgd/src/probe.c): the packets built are well-formed
 * (checksums, lengths) and their answers are recognised; truncated,
 * oversized and garbage input is classified without reading past the end.
 */
#include <string.h>

#include "tk/endian.h"
#include "tk_test.h"
#include "probe.h"

void register_probe(void);

static const uint8_t self4[4] = { 100, 64, 0, 1 }, peer4[4] = { 100, 64, 0, 2 };
static const uint8_t self6[16] = { 0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, [15] = 1 };
static const uint8_t peer6[16] = { 0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, [15] = 2 };
static const uint8_t data[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

/* The answer the peer would send to probe p: addresses swapped, echo
 * reply or pong with the given PeerAPIPort.  Returns its length. */
static size_t
answer_of(uint8_t *o, const uint8_t *p, size_t n, uint16_t port)
{
	size_t h = p[0] >> 4 == 4 ? 20 : 40, al = h == 20 ? 4 : 16;
	size_t so = h == 20 ? 12 : 8;

	memcpy(o, p, n);
	memcpy(o + so, p + so + al, al);
	memcpy(o + so + al, p + so, al);
	if (o[h] == 'p') {
		o[h] = 'o';
		tk_be16_store(o + h + 9, port);
		n = h + 11;
		if (h == 20)
			tk_be16_store(o + 2, (uint16_t)n);
		else
			tk_be16_store(o + 4, 11);
		return n;
	}
	o[h] = h == 20 ? 0 : 129;
	return n;
}

static void
test_probe_build(void)
{
	uint8_t p[WGDI_PROBE_MAX];
	size_t n;

	n = wgdi_probe_build(p, WGDI_PROBE_TSMP, 4, self4, peer4, data);
	CU_ASSERT_EQUAL(n, 29);
	CU_ASSERT_EQUAL(p[9], WGDI_TSMP_PROTO);
	CU_ASSERT_EQUAL(tk_be16_load(p + 2), 29);
	CU_ASSERT_EQUAL(wgdi_csum_fold(wgdi_csum_add(0, p, 20)), 0);
	CU_ASSERT_EQUAL(p[20], 'p');
	TK_ASSERT_MEM_EQ(p + 21, data, 8);
	TK_ASSERT_MEM_EQ(p + 16, peer4, 4);

	n = wgdi_probe_build(p, WGDI_PROBE_ICMP, 4, self4, peer4, data);
	CU_ASSERT_EQUAL(n, 36);
	CU_ASSERT_EQUAL(p[9], 1);
	CU_ASSERT_EQUAL(p[20], 8); /* echo request */
	CU_ASSERT_EQUAL(wgdi_csum_fold(wgdi_csum_add(0, p + 20, 16)), 0);

	n = wgdi_probe_build(p, WGDI_PROBE_ICMP, 6, self6, peer6, data);
	CU_ASSERT_EQUAL(n, 56);
	CU_ASSERT_EQUAL(p[6], 58);
	CU_ASSERT_EQUAL(p[40], 128);
	/* the ICMPv6 checksum covers the pseudo-header */
	uint8_t ph[8] = { 0, 0, 0, 16, 0, 0, 0, 58 };
	uint32_t s = wgdi_csum_add(wgdi_csum_add(wgdi_csum_add(0, self6, 16),
	    peer6, 16), ph, 8);
	CU_ASSERT_EQUAL(wgdi_csum_fold(wgdi_csum_add(s, p + 40, 16)), 0);

	n = wgdi_probe_build(p, WGDI_PROBE_TSMP, 6, self6, peer6, data);
	CU_ASSERT_EQUAL(n, 49);
	CU_ASSERT_EQUAL(tk_be16_load(p + 4), 9);
	CU_ASSERT_EQUAL(wgdi_probe_build(p, 3, 4, self4, peer4, data), 0);
	CU_ASSERT_EQUAL(wgdi_probe_build(p, WGDI_PROBE_TSMP, 5, self4, peer4,
	    data), 0);
}

static void
test_probe_parse_answers(void)
{
	static const struct {
		int kind, family;
	} cases[] = { { WGDI_PROBE_TSMP, 4 }, { WGDI_PROBE_TSMP, 6 },
		{ WGDI_PROBE_ICMP, 4 }, { WGDI_PROBE_ICMP, 6 } };
	uint8_t p[WGDI_PROBE_MAX], a[WGDI_PROBE_MAX];
	wgdi_probe_reply r;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int fam = cases[i].family;
		size_t n = wgdi_probe_build(p, cases[i].kind, fam,
		    fam == 4 ? self4 : self6, fam == 4 ? peer4 : peer6, data);
		/* our own probe is not an answer */
		CU_ASSERT_EQUAL(wgdi_probe_parse(p, n, &r), WGDI_PROBE_NONE);
		size_t an = answer_of(a, p, n, 4242);
		CU_ASSERT_EQUAL_FATAL(wgdi_probe_parse(a, an, &r),
		    WGDI_PROBE_REPLY);
		CU_ASSERT_EQUAL(r.kind, cases[i].kind);
		CU_ASSERT_EQUAL(r.family, fam);
		TK_ASSERT_MEM_EQ(r.data, data, 8);
		TK_ASSERT_MEM_EQ(r.src, fam == 4 ? peer4 : peer6, fam == 4 ? 4 : 16);
		CU_ASSERT_EQUAL(r.peerapi_port,
		    cases[i].kind == WGDI_PROBE_TSMP ? 4242 : 0);
		/* every truncation: never a reply read past the end */
		for (size_t k = 0; k < an; k++) {
			int v = wgdi_probe_parse(a, k, &r);
			CU_ASSERT(v == WGDI_PROBE_NONE || v == WGDI_PROBE_BAD);
		}
	}
}

static void
test_probe_parse_garbage(void)
{
	uint8_t p[WGDI_PROBE_MAX], a[128];
	wgdi_probe_reply r;
	size_t n = wgdi_probe_build(p, WGDI_PROBE_TSMP, 4, self4, peer4, data);
	size_t an = answer_of(a, p, n, 0);

	/* a pong without PeerAPIPort (Go's older form): port 0 */
	tk_be16_store(a + 2, 29);
	CU_ASSERT_EQUAL(wgdi_probe_parse(a, 29, &r), WGDI_PROBE_REPLY);
	CU_ASSERT_EQUAL(r.peerapi_port, 0);
	/* IP says 8 bytes of TSMP: a truncated pong, dropped (BAD) */
	tk_be16_store(a + 2, 28);
	CU_ASSERT_EQUAL(wgdi_probe_parse(a, an, &r), WGDI_PROBE_BAD);
	/* IP total length beyond the buffer (oversized claim): not parsed */
	tk_be16_store(a + 2, 200);
	CU_ASSERT_EQUAL(wgdi_probe_parse(a, an, &r), WGDI_PROBE_NONE);
	/* a bigger pong than needed (trailing bytes): still a pong */
	memset(a + an, 0xee, 20);
	tk_be16_store(a + 2, (uint16_t)(an + 20));
	CU_ASSERT_EQUAL(wgdi_probe_parse(a, an + 20, &r), WGDI_PROBE_REPLY);
	/* fragments are never probes' answers */
	tk_be16_store(a + 2, (uint16_t)an);
	tk_be16_store(a + 6, 0x2000);
	CU_ASSERT_EQUAL(wgdi_probe_parse(a, an, &r), WGDI_PROBE_NONE);
	/* an echo reply whose id/seq are not its payload's: not wgd's */
	n = wgdi_probe_build(p, WGDI_PROBE_ICMP, 4, self4, peer4, data);
	an = answer_of(a, p, n, 0);
	a[24] ^= 1;
	CU_ASSERT_EQUAL(wgdi_probe_parse(a, an, &r), WGDI_PROBE_NONE);
	/* garbage: version nibbles, zeros, all ones */
	memset(a, 0, sizeof(a));
	CU_ASSERT_EQUAL(wgdi_probe_parse(a, sizeof(a), &r), WGDI_PROBE_NONE);
	memset(a, 0xff, sizeof(a));
	CU_ASSERT_EQUAL(wgdi_probe_parse(a, sizeof(a), &r), WGDI_PROBE_NONE);
	a[0] = 0x45;
	CU_ASSERT_EQUAL(wgdi_probe_parse(a, sizeof(a), &r), WGDI_PROBE_NONE);
	CU_ASSERT_EQUAL(wgdi_probe_parse(a, 0, &r), WGDI_PROBE_NONE);
}

/* Packet summaries for the tap: ports only from whole headers. */
static void
test_pkt_summarize(void)
{
	/* 10.0.0.1:1000 -> 10.0.0.2:53, UDP */
	uint8_t u[28] = { 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1,
		10, 0, 0, 2, 0x03, 0xe8, 0, 53, 0, 8, 0, 0 };
	uint8_t p[WGDI_PROBE_MAX], g[64];
	wgdi_pkt_sum s;

	wgdi_pkt_summarize(u, sizeof(u), &s);
	CU_ASSERT(s.family == 4 && s.proto == 17 && s.sport == 1000 &&
	    s.dport == 53);
	CU_ASSERT(s.src[3] == 1 && s.dst[3] == 2);
	/* truncated inside the UDP header: addresses, no ports */
	u[3] = 22;
	wgdi_pkt_summarize(u, 22, &s);
	CU_ASSERT(s.family == 4 && s.sport == 0 && s.dport == 0);
	/* the IP length claims more than there is: no ports */
	u[3] = 200;
	wgdi_pkt_summarize(u, sizeof(u), &s);
	CU_ASSERT(s.family == 4 && s.sport == 0);
	/* ICMPv6 echo: type and code */
	size_t n = wgdi_probe_build(p, WGDI_PROBE_ICMP, 6, self6, peer6, data);
	wgdi_pkt_summarize(p, n, &s);
	CU_ASSERT(s.family == 6 && s.proto == 58 && s.sport == 128 && s.dport == 0);
	/* too short for any header, or garbage: family 0 */
	for (size_t k = 0; k < 20; k++) {
		wgdi_pkt_summarize(u, k, &s);
		CU_ASSERT_EQUAL(s.family, 0);
	}
	memset(g, 0xa5, sizeof(g));
	wgdi_pkt_summarize(g, sizeof(g), &s);
	CU_ASSERT_EQUAL(s.family, 0);
}

void
register_probe(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_probe_build),
		TK_TEST(test_probe_parse_answers),
		TK_TEST(test_probe_parse_garbage),
		TK_TEST(test_pkt_summarize),
		TK_TEST_END,
	};

	tk_test_suite("wgd_probe", cases);
}
