/*
 * Packet filter CPU cost on one core, per inbound packet (decode + verdict),
 * for rule sets of 1, 100 and 1000 rules.  Rule i lets 10.0.i.1-4 and
 * 10.1.i.0/24 reach 100.64.0.1 on port 1000+i and 2000+i (an ACL entry
 * of a few users and a subnet, as control sends them).  Cases:
 *   syn_last   a TCP SYN only the last rule admits (every rule is tried)
 *   syn_miss   a TCP SYN no rule admits (dropped after every rule)
 *   udp_last   the same for UDP, with a full flow table it does not hit
 *   udp_flow   a reply to one of 512 recorded UDP flows
 *   tcp_ack    return traffic (no rule is looked at)
 * Prints one "name value unit" line per figure (median of --runs).
 *
 * usage: tk_bench_wg_filter [--runs N] [--secs S]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tk/endian.h"
#include "tk/rng.h"
#include "tk/wg_filter.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* A 1420-byte IPv4 packet from 10.a.b.c to 100.64.0.1. */
static size_t
packet(uint8_t *p, uint8_t proto, const uint8_t src[4], uint16_t sport,
    uint16_t dport, uint8_t flags)
{
	static const uint8_t me[4] = { 100, 64, 0, 1 };
	const size_t n = 1420;

	memset(p, 0, n);
	p[0] = 0x45;
	tk_be16_store(p + 2, (uint16_t)n);
	p[8] = 64;
	p[9] = proto;
	memcpy(p + 12, src, 4);
	memcpy(p + 16, me, 4);
	tk_be16_store(p + 20, sport);
	tk_be16_store(p + 22, dport);
	if (proto == 6) {
		p[32] = 0x50;
		p[33] = flags;
	} else {
		tk_be16_store(p + 24, (uint16_t)(n - 20));
	}
	return n;
}

static tk_wg_filter *
build(size_t nrules)
{
	tk_wg_ipmatch *src = calloc(nrules * 2, sizeof(*src));
	tk_wg_portrange *dst = calloc(nrules * 2, sizeof(*dst));
	tk_wg_rule *rules = calloc(nrules, sizeof(*rules));
	tk_wg_prefix me = { 4, { 100, 64, 0, 1 }, 32 };
	tk_wg_filter *f;

	if (src == NULL || dst == NULL || rules == NULL ||
	    tk_wg_filter_new(&f, NULL) != 0)
		exit(1);
	for (size_t i = 0; i < nrules; i++) {
		tk_wg_ipmatch *s = &src[2 * i];
		tk_wg_portrange *d = &dst[2 * i];

		s[0].im_kind = TK_WG_IPM_RANGE;
		s[0].im_range = (tk_wg_range){ 4, { 10, 0, (uint8_t)(i >> 0), 1 },
			{ 10, 0, (uint8_t)i, 4 } };
		s[0].im_range.rg_first[1] = s[0].im_range.rg_last[1] =
		    (uint8_t)(i >> 8);
		s[1].im_kind = TK_WG_IPM_PREFIX;
		s[1].im_prefix = (tk_wg_prefix){ 4,
			{ 10, (uint8_t)(1 + (i >> 8)), (uint8_t)i, 0 }, 24 };
		for (int k = 0; k < 2; k++) {
			d[k].pr_ip.im_kind = TK_WG_IPM_PREFIX;
			d[k].pr_ip.im_prefix = me;
			d[k].pr_first = d[k].pr_last =
			    (uint16_t)((k ? 2000 : 1000) + i);
		}
		rules[i] = (tk_wg_rule){ s, 2, d, 2, NULL, 0 };
	}
	if (tk_wg_filter_set_rules(f, rules, nrules) != 0 ||
	    tk_wg_filter_set_local(f, &me, 1) != 0)
		exit(1);
	free(src);
	free(dst);
	free(rules);
	return f;
}

/* ns per call of tk_wg_filter_in on p, which must get verdict want. */
static double
time_in(tk_wg_filter *f, const uint8_t *p, size_t n, tk_wg_verdict want,
    double secs)
{
	uint64_t calls = 0;
	double t0 = now_s(), t;

	if (tk_wg_filter_in(f, p, n) != want) {
		fprintf(stderr, "wg_filter bench: unexpected verdict\n");
		exit(1);
	}
	do {
		for (int i = 0; i < 4096; i++)
			if (tk_wg_filter_in(f, p, n) != want)
				exit(1);
		calls += 4096;
		t = now_s() - t0;
	} while (t < secs);
	return t * 1e9 / (double)calls;
}

int
main(int argc, char **argv)
{
	static const size_t sizes[] = { 1, 100, 1000 };
	static uint8_t p[1500], q[1500];
	int runs = 5;
	double secs = 0.3;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (strcmp(argv[i], "--secs") == 0 && i + 1 < argc)
			secs = atof(argv[++i]);
		else {
			fprintf(stderr, "tk_bench_wg_filter: unknown option '%s' "
			    "(accepted: --runs N --secs S)\n", argv[i]);
			return 2;
		}
	}
	if (runs < 1 || runs > 99)
		runs = 5;
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t nr = sizes[s], last = nr - 1;
		tk_wg_filter *f = build(nr);
		uint8_t hit[4] = { 10, (uint8_t)(last >> 8), (uint8_t)last, 3 };
		uint8_t miss[4] = { 10, 200, 0, 1 };
		const char *names[] = { "syn_last", "syn_miss", "udp_last",
			"udp_flow", "tcp_ack" };
		double v[5][99];

		/* a full flow table, none of it for the udp_last packet */
		for (int i = 0; i < TK_WG_FILTER_FLOWS; i++) {
			size_t n = packet(q, 17, miss, 53, (uint16_t)(30000 + i), 0);

			memcpy(q + 12, (const uint8_t[4]){ 100, 64, 0, 1 }, 4);
			memcpy(q + 16, miss, 4);
			tk_be16_store(q + 20, (uint16_t)(30000 + i));
			tk_be16_store(q + 22, 53);
			tk_wg_filter_out(f, q, n);
		}
		for (int r = 0; r < runs; r++) {
			size_t n;

			n = packet(p, 6, hit, 40000, (uint16_t)(1000 + last), 0x02);
			v[0][r] = time_in(f, p, n, TK_WG_ACCEPT, secs);
			n = packet(p, 6, miss, 40000, 1000, 0x02);
			v[1][r] = time_in(f, p, n, TK_WG_DROP_NO_RULE, secs);
			n = packet(p, 17, hit, 40000, (uint16_t)(2000 + last), 0);
			v[2][r] = time_in(f, p, n, TK_WG_ACCEPT, secs);
			n = packet(p, 17, miss, 53, 30000 + 77, 0);
			v[3][r] = time_in(f, p, n, TK_WG_ACCEPT, secs);
			n = packet(p, 6, miss, 40000, 9, 0x10);
			v[4][r] = time_in(f, p, n, TK_WG_ACCEPT, secs);
		}
		for (int c = 0; c < 5; c++) {
			qsort(v[c], (size_t)runs, sizeof(double), cmp);
			printf("filter_%s_%zu %.1f ns/pkt\n", names[c], nr,
			    v[c][runs / 2]);
		}
		tk_wg_filter_free(f);
	}
	return 0;
}
