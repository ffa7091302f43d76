/*
 * Fuzz wgd's packet filter.  The input's first nibble picks the mode, so the
 * seed corpus can be plain IP packets:
 *   4, 6, anything else: one packet, judged inbound and outbound;
 *   0xE: rule text, one entry a line ("s <match>", "d <match> <first>
 *        <last>", "p <proto>", "r" starts the next rule), compiled and run
 *        against a few fixed packets;
 *   0xF: a packet sequence, records of [flags, length, bytes], flags bit 0
 *        = outbound (drives the flow table: hashing, LRU, eviction).
 * Invariants: no crash, over-read or leak; every verdict is a known one and
 * counted once; trailing padding never changes a verdict that got past
 * decoding; strings tk_wg_ipmatch_parse accepts are accepted by set_rules.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk/mem.h"
#include "tk/rng.h"
#include "tk/wg_filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static tk_wg_filter *F;
static tk_fake_rng rng;
static uint64_t calls_in;

static bool
has_cap(void *arg, int family, const uint8_t *src, const char *cap)
{
	(void)arg;
	/* deterministic: a source "has" a cap if its last byte is odd */
	return cap[0] != '\0' && (src[family == 4 ? 3 : 15] & 1);
}

static const char *const SRC[][4] = {
	{ "*", NULL },
	{ "100.64.0.0/10", "fd7a:115c:a1e0::/48", NULL },
	{ "10.0.0.1-10.0.0.200", "2001:db8::1-2001:db8::ff", NULL },
	{ "cap:ssh", "192.0.2.7", NULL },
};
static const char *const DST[] = { "*", "100.64.0.1", "fd7a:115c:a1e0::1",
	"10.9.0.0/16" };

static void
setup(void)
{
	static tk_wg_ipmatch src[4][4];
	static tk_wg_portrange dst[4];
	static const uint32_t p0[] = { 6, 17 }, p2[] = { 47, 132, 1, 58, 300 };
	static const uint16_t ports[4][2] = { { 22, 22 }, { 0, 65535 },
		{ 1000, 2000 }, { 53, 53 } };
	tk_wg_rule rules[4];
	tk_wg_prefix local[4];
	const char *loc[4] = { "100.64.0.1", "10.9.0.0", "fd7a:115c:a1e0::1",
		"169.254.169.254" };
	uint8_t bits[4] = { 32, 16, 128, 32 };

	tk_fake_rng_init(&rng, 1);
	if (tk_wg_filter_new(&F, &rng.fr_rng) != 0)
		abort();
	for (int i = 0; i < 4; i++) {
		size_t n = 0;
		tk_wg_ipmatch m;

		while (SRC[i][n] != NULL) {
			if (tk_wg_ipmatch_parse(&src[i][n], SRC[i][n]) != 0)
				abort();
			n++;
		}
		if (tk_wg_ipmatch_parse(&dst[i].pr_ip, DST[i]) != 0)
			abort();
		dst[i].pr_first = ports[i][0];
		dst[i].pr_last = ports[i][1];
		rules[i] = (tk_wg_rule){ src[i], n, &dst[i], 1,
			i == 0 ? p0 : i == 2 ? p2 : NULL,
			i == 0 ? 2 : i == 2 ? 5 : 0 };
		if (tk_wg_ipmatch_parse(&m, loc[i]) != 0)
			abort();
		local[i] = m.im_prefix;
		local[i].pf_bits = bits[i];
	}
	if (tk_wg_filter_set_rules(F, rules, 4) != 0 ||
	    tk_wg_filter_set_local(F, local, 4) != 0)
		abort();
	tk_wg_filter_set_cap_cb(F, has_cap, NULL);
}

static tk_wg_verdict
in(const uint8_t *p, size_t n)
{
	tk_wg_verdict v = tk_wg_filter_in(F, p, n);

	if ((unsigned)v >= TK_WG_VERDICT_COUNT)
		abort();
	calls_in++;
	return v;
}

static void
one_packet(const uint8_t *data, size_t size)
{
	tk_wg_verdict v = in(data, size), o;

	/* before the outbound call below, which may record a flow */
	if (size > 0 && v != TK_WG_DROP_TOO_SHORT && v != TK_WG_DROP_MALFORMED) {
		uint8_t *pad = malloc(size + 16);
		tk_wg_verdict pv;

		memcpy(pad, data, size);
		memset(pad + size, 0, 16);
		pv = in(pad, size + 16);
		free(pad);
		if (pv != v) {
			fprintf(stderr, "padding changed %s to %s\n",
			    tk_wg_verdict_name(v), tk_wg_verdict_name(pv));
			abort();
		}
	}
	o = tk_wg_filter_out(F, data, size);
	if ((unsigned)o >= TK_WG_VERDICT_COUNT)
		abort();
	/* outbound runs the same pre-checks: they agree on those drops */
	if ((v == TK_WG_DROP_TOO_SHORT || v == TK_WG_DROP_MALFORMED ||
		v == TK_WG_DROP_MULTICAST || v == TK_WG_DROP_LINK_LOCAL) !=
	    (o != TK_WG_ACCEPT))
		abort();
}

static void
sequence(const uint8_t *data, size_t size)
{
	while (size >= 2) {
		uint8_t flags = data[0];
		size_t n = data[1];

		data += 2;
		size -= 2;
		if (n > size)
			n = size;
		if (flags & 1) {
			if ((unsigned)tk_wg_filter_out(F, data, n) >=
			    TK_WG_VERDICT_COUNT)
				abort();
		} else {
			in(data, n);
		}
		data += n;
		size -= n;
	}
}

enum { MAXR = 8, MAXE = 16 };

static void
rules_text(const uint8_t *data, size_t size)
{
	static tk_wg_ipmatch src[MAXR][MAXE];
	static tk_wg_portrange dst[MAXR][MAXE];
	static uint32_t protos[MAXR][MAXE];
	tk_wg_rule rules[MAXR];
	char *text = malloc(size + 1), *line, *save = NULL;
	size_t nr = 1;
	bool dst_cap = false;
	tk_wg_filter *g;
	int rv;

	memcpy(text, data, size);
	text[size] = '\0';
	memset(rules, 0, sizeof(rules));
	for (line = strtok_r(text, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		tk_wg_rule *r = &rules[nr - 1];
		char *word, *ws = NULL, *pa, *pb;
		unsigned a, b;

		if (line[0] == 'r' && nr < MAXR) {
			nr++;
			continue;
		}
		if (line[0] == 'p' && r->r_nprotos < MAXE) {
			protos[nr - 1][r->r_nprotos++] = (uint32_t)strtoul(line + 1, NULL, 10);
			r->r_protos = protos[nr - 1];
			continue;
		}
		/* tokens stay inside text: a cap name points into it */
		if ((word = strtok_r(line + 1, " ", &ws)) == NULL)
			continue;
		pa = strtok_r(NULL, " ", &ws);
		pb = strtok_r(NULL, " ", &ws);
		a = pa ? (unsigned)strtoul(pa, NULL, 10) : 0;
		b = pb ? (unsigned)strtoul(pb, NULL, 10) : 0;
		if (line[0] == 's' && r->r_nsrc < MAXE) {
			if (tk_wg_ipmatch_parse(&src[nr - 1][r->r_nsrc], word) == 0) {
				r->r_src = src[nr - 1];
				r->r_nsrc++;
			}
		} else if (line[0] == 'd' && r->r_ndst < MAXE) {
			tk_wg_portrange *d = &dst[nr - 1][r->r_ndst];

			if (tk_wg_ipmatch_parse(&d->pr_ip, word) == 0) {
				dst_cap |= d->pr_ip.im_kind == TK_WG_IPM_CAP;
				d->pr_first = (uint16_t)a;
				d->pr_last = (uint16_t)b;
				r->r_dst = dst[nr - 1];
				r->r_ndst++;
			}
		}
	}
	if (tk_wg_filter_new(&g, &rng.fr_rng) != 0)
		abort();
	rv = tk_wg_filter_set_rules(g, rules, nr);
	/* parsed entries are valid rule entries, except a cap as destination */
	if ((rv != 0) != dst_cap) {
		fprintf(stderr, "set_rules: %d (%s)\n", rv, tk_wg_filter_error(g));
		abort();
	}
	if (rv == 0) {
		static const uint8_t pk4[] = { 0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0,
			0, 10, 0, 0, 7, 100, 64, 0, 1, 0, 1, 0, 22, 0, 0, 0, 0, 0,
			0, 0, 0, 0x50, 0x02, 0, 0, 0, 0, 0, 0 };
		tk_wg_prefix all[2] = { { 4, { 0 }, 0 }, { 6, { 0 }, 0 } };

		tk_wg_filter_set_local(g, all, 2);
		tk_wg_filter_set_cap_cb(g, has_cap, NULL);
		(void)tk_wg_filter_in(g, pk4, sizeof(pk4));
		(void)tk_wg_filter_in(g, data, size); /* the text as a packet */
	}
	tk_wg_filter_free(g);
	free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tk_wg_filter_stats st;
	uint64_t sum = 0;

	if (F == NULL)
		setup();
	if (size > 0 && data[0] >> 4 == 0xf)
		sequence(data + 1, size - 1);
	else if (size > 0 && data[0] >> 4 == 0xe)
		rules_text(data + 1, size - 1);
	else
		one_packet(data, size);
	tk_wg_filter_stats_get(F, &st);
	for (int i = 0; i < TK_WG_VERDICT_COUNT; i++)
		sum += st.fs_in[i];
	if (sum != calls_in || st.fs_flows > TK_WG_FILTER_FLOWS)
		abort();
	return 0;
}
