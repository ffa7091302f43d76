/*
 * The packet filter against the behaviour of Tailscale's wgengine/filter
 * (filter.go, match.go, tailcfg.go, net/packet/packet.go), case by case for
 * IPv4 and IPv6, plus bad input, a randomized rule oracle and allocation
 * failures.  Packets are built by hand; checksums do not matter to the
 * filter.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk/rng.h"
#include "tk/wg_filter.h"
#include "tk_test.h"

void register_filter(void);

/* --- packets ------------------------------------------------------------- */

typedef struct pk {
	uint8_t b[160];
	size_t n;
} pk;

static int
fam_of(const char *s)
{
	return strchr(s, ':') != NULL ? 6 : 4;
}

static void
addr(const char *s, uint8_t *out)
{
	if (inet_pton(fam_of(s) == 4 ? AF_INET : AF_INET6, s, out) != 1) {
		fprintf(stderr, "bad test address %s\n", s);
		abort();
	}
}

/* An IP packet around l4; the family comes from src. */
static pk
ip(uint8_t proto, const char *src, const char *dst, const uint8_t *l4,
    size_t l4n)
{
	pk p;

	memset(&p, 0, sizeof(p));
	if (fam_of(src) == 4) {
		p.b[0] = 0x45;
		tk_be16_store(p.b + 2, (uint16_t)(20 + l4n));
		p.b[8] = 64;
		p.b[9] = proto;
		addr(src, p.b + 12);
		addr(dst, p.b + 16);
		memcpy(p.b + 20, l4, l4n);
		p.n = 20 + l4n;
	} else {
		p.b[0] = 0x60;
		tk_be16_store(p.b + 4, (uint16_t)l4n);
		p.b[6] = proto;
		p.b[7] = 64;
		addr(src, p.b + 8);
		addr(dst, p.b + 24);
		memcpy(p.b + 40, l4, l4n);
		p.n = 40 + l4n;
	}
	return p;
}

#define SYN 0x02
#define ACK 0x10
#define FIN 0x01
#define RST 0x04

static pk
tcp(const char *src, uint16_t sp, const char *dst, uint16_t dp, uint8_t flags)
{
	uint8_t l4[24] = { 0 };

	tk_be16_store(l4, sp);
	tk_be16_store(l4 + 2, dp);
	l4[12] = 0x50;
	l4[13] = flags;
	return ip(TK_WG_PROTO_TCP, src, dst, l4, sizeof(l4));
}

static pk
udp_p(uint8_t proto, const char *src, uint16_t sp, const char *dst,
    uint16_t dp)
{
	uint8_t l4[16] = { 0 };

	tk_be16_store(l4, sp);
	tk_be16_store(l4 + 2, dp);
	tk_be16_store(l4 + 4, sizeof(l4));
	return ip(proto, src, dst, l4, sizeof(l4));
}

static pk
udp(const char *src, uint16_t sp, const char *dst, uint16_t dp)
{
	return udp_p(TK_WG_PROTO_UDP, src, sp, dst, dp);
}

static pk
icmp(const char *src, const char *dst, uint8_t type, uint8_t code)
{
	uint8_t l4[12] = { type, code };

	return ip(fam_of(src) == 4 ? TK_WG_PROTO_ICMP4 : TK_WG_PROTO_ICMP6, src,
	    dst, l4, sizeof(l4));
}

static pk
raw(uint8_t proto, const char *src, const char *dst, size_t l4n)
{
	uint8_t l4[64] = { 0 };

	return ip(proto, src, dst, l4, l4n);
}

static pk
pk_empty(void)
{
	pk p;

	memset(&p, 0, sizeof(p));
	return p;
}

/* IPv4: sets fragment offset (8-byte blocks) and the MF flag. */
static pk
frag4(pk p, unsigned blocks, bool mf)
{
	tk_be16_store(p.b + 6, (uint16_t)((mf ? 0x2000 : 0) | blocks));
	return p;
}

/* IPv6: inserts a Fragment header after the base header. */
static pk
frag6(pk p, unsigned blocks, bool mf)
{
	uint8_t next = p.b[6];

	memmove(p.b + 48, p.b + 40, p.n - 40);
	memset(p.b + 40, 0, 8);
	p.b[40] = next;
	tk_be16_store(p.b + 42, (uint16_t)(blocks << 3 | (mf ? 1 : 0)));
	tk_be32_store(p.b + 44, 0x12345678);
	p.b[6] = 44;
	p.n += 8;
	tk_be16_store(p.b + 4, (uint16_t)(p.n - 40));
	return p;
}

/* --- rules ----------------------------------------------------------------- */

typedef struct tdst {
	const char *ip;
	uint16_t first, last;
} tdst;

#define ALL 0, 65535

typedef struct trule {
	const char *src[12]; /* NULL-terminated */
	tdst dst[6];	     /* .ip NULL-terminated */
	uint32_t protos[6];
	size_t nprotos;
} trule;

#define MAXR 24

static tk_wg_ipmatch
m_of(const char *s)
{
	tk_wg_ipmatch m;

	if (tk_wg_ipmatch_parse(&m, s) != 0) {
		fprintf(stderr, "bad test match %s\n", s);
		abort();
	}
	return m;
}

static int
set_trules(tk_wg_filter *f, const trule *tr, size_t n)
{
	static tk_wg_ipmatch srcs[MAXR][12];
	static tk_wg_portrange dsts[MAXR][6];
	tk_wg_rule rules[MAXR];

	TK_ASSERT(n <= MAXR);
	memset(rules, 0, sizeof(rules));
	for (size_t i = 0; i < n; i++) {
		size_t j;

		for (j = 0; tr[i].src[j] != NULL; j++)
			srcs[i][j] = m_of(tr[i].src[j]);
		rules[i].r_src = srcs[i];
		rules[i].r_nsrc = j;
		for (j = 0; tr[i].dst[j].ip != NULL; j++) {
			dsts[i][j].pr_ip = m_of(tr[i].dst[j].ip);
			dsts[i][j].pr_first = tr[i].dst[j].first;
			dsts[i][j].pr_last = tr[i].dst[j].last;
		}
		rules[i].r_dst = dsts[i];
		rules[i].r_ndst = j;
		rules[i].r_protos = tr[i].protos;
		rules[i].r_nprotos = tr[i].nprotos;
	}
	return tk_wg_filter_set_rules(f, rules, n);
}

static tk_wg_prefix
pfx(const char *s)
{
	tk_wg_prefix p;
	const char *slash = strchr(s, '/');
	char a[64];

	memset(&p, 0, sizeof(p));
	snprintf(a, sizeof(a), "%.*s", slash ? (int)(slash - s) : (int)strlen(s),
	    s);
	p.pf_family = (uint8_t)fam_of(a);
	addr(a, p.pf_addr);
	p.pf_bits = slash ? (uint8_t)atoi(slash + 1) : p.pf_family == 4 ? 32 : 128;
	return p;
}

/* NULL-terminated list of local prefixes. */
static void
set_locals(tk_wg_filter *f, const char *const *l)
{
	tk_wg_prefix v[32];
	size_t n = 0;

	while (l[n] != NULL) {
		v[n] = pfx(l[n]);
		n++;
	}
	CU_ASSERT_FATAL(tk_wg_filter_set_local(f, v, n) == 0);
}

static tk_fake_rng frng;

static tk_wg_filter *
newf(void)
{
	tk_wg_filter *f = NULL;

	tk_fake_rng_init(&frng, 7);
	CU_ASSERT_FATAL(tk_wg_filter_new(&f, &frng.fr_rng) == 0);
	return f;
}

/* Our node: one address per family plus a served subnet. */
static const char *const LOCAL[] = { "100.64.0.1/32", "10.9.0.0/16",
	"fd7a:115c:a1e0::1/128", "fd00:9::/64", NULL };

static tk_wg_filter *
newf_rules(const trule *tr, size_t n)
{
	tk_wg_filter *f = newf();

	CU_ASSERT_FATAL(set_trules(f, tr, n) == 0);
	set_locals(f, LOCAL);
	return f;
}

/* --- verdict checks ------------------------------------------------------ */

static void
check(tk_wg_filter *f, pk p, bool in, tk_wg_verdict want, int why, int line)
{
	tk_wg_filter_stats s0, s1;
	tk_wg_verdict got;
	char msg[160];
	bool ok;

	tk_wg_filter_stats_get(f, &s0);
	got = in ? tk_wg_filter_in(f, p.b, p.n) : tk_wg_filter_out(f, p.b, p.n);
	tk_wg_filter_stats_get(f, &s1);
	ok = got == want;
	if (in && ok && want == TK_WG_ACCEPT && why >= 0)
		ok = s1.fs_accept_why[why] == s0.fs_accept_why[why] + 1;
	snprintf(msg, sizeof(msg), "%s: got %s, want %s (%s)",
	    in ? "in" : "out", tk_wg_verdict_name(got), tk_wg_verdict_name(want),
	    why >= 0 ? tk_wg_accept_why_name((tk_wg_accept_why)why) : "-");
	if (!ok)
		fprintf(stderr, "\n  line %d: %s\n", line, msg);
	CU_assertImplementation(ok, (unsigned)line, msg, __FILE__, "", CU_FALSE);
	/* and it was counted exactly once, under its verdict */
	if (in) {
		CU_ASSERT(s1.fs_in[got] == s0.fs_in[got] + 1);
	} else {
		CU_ASSERT(s1.fs_out[got] == s0.fs_out[got] + 1);
	}
}

#define IN(f, p, v)	    check((f), (p), true, (v), -1, __LINE__)
#define IN_OK(f, p, why)    check((f), (p), true, TK_WG_ACCEPT, (why), __LINE__)
#define OUT(f, p, v)	    check((f), (p), false, (v), -1, __LINE__)
#define DROP_RULE	    TK_WG_DROP_NO_RULE

/* Addresses of one family for the table tests. */
typedef struct fam {
	const char *me, *me2;	      /* local: the node, the served subnet */
	const char *peer, *peer_net;  /* a peer and a net around it */
	const char *in_net, *out_net; /* last of peer_net, first past it */
	const char *lo, *hi, *below, *above; /* a range and its neighbours */
	const char *stranger;	      /* not local */
	const char *other;	      /* not in any source */
} fam;

static const fam FAMS[2] = {
	{ "100.64.0.1", "10.9.3.4", "100.64.1.7", "100.64.1.0/24",
	    "100.64.1.255", "100.64.2.0", "100.64.3.10", "100.64.3.20",
	    "100.64.3.9", "100.64.3.21", "100.64.0.2", "192.0.2.1" },
	{ "fd7a:115c:a1e0::1", "fd00:9::4", "fd7a:115c:a1e0::1:7",
	    "fd7a:115c:a1e0::1:0/112", "fd7a:115c:a1e0::1:ffff",
	    "fd7a:115c:a1e0::2:0", "fd7a:115c:a1e0::3:10",
	    "fd7a:115c:a1e0::3:20", "fd7a:115c:a1e0::3:f",
	    "fd7a:115c:a1e0::3:21", "fd7a:115c:a1e0::2", "2001:db8::1" },
};

/* --- parsing (tailcfg.go parseIPSet) ------------------------------------- */

static void
test_parse(void)
{
	static const struct {
		const char *s;
		int rv;
		tk_wg_ipmatch_kind kind;
		int fam, bits;
	} cases[] = {
		{ "*", 0, TK_WG_IPM_ANY, 0, 0 },
		{ "cap:ssh", 0, TK_WG_IPM_CAP, 0, 0 },
		{ "cap:", 0, TK_WG_IPM_CAP, 0, 0 },
		{ "10.0.0.0/8", 0, TK_WG_IPM_PREFIX, 4, 8 },
		{ "0.0.0.0/0", 0, TK_WG_IPM_PREFIX, 4, 0 },
		{ "100.64.0.1", 0, TK_WG_IPM_PREFIX, 4, 32 },
		{ "100.64.0.1/32", 0, TK_WG_IPM_PREFIX, 4, 32 },
		{ "fd7a::1", 0, TK_WG_IPM_PREFIX, 6, 128 },
		{ "::/0", 0, TK_WG_IPM_PREFIX, 6, 0 },
		{ "fd7a:115c::/48", 0, TK_WG_IPM_PREFIX, 6, 48 },
		{ "::ffff:1.2.3.4", 0, TK_WG_IPM_PREFIX, 6, 128 },
		{ "10.0.0.1-10.0.0.9", 0, TK_WG_IPM_RANGE, 4, 0 },
		{ "10.0.0.1-10.0.0.1", 0, TK_WG_IPM_RANGE, 4, 0 },
		{ "2eff::1-2eff::800", 0, TK_WG_IPM_RANGE, 6, 0 },
		{ "cap:a/b-c", 0, TK_WG_IPM_CAP, 0, 0 },   /* cap before '/' */
		{ "::", 0, TK_WG_IPM_PREFIX, 6, 128 },
		{ "::ffff:1.2.3.4/128", 0, TK_WG_IPM_PREFIX, 6, 128 },
		{ "fd7a::9-fd7a::1", TK_EINVAL, 0, 0, 0 },
		{ "1-2", TK_EINVAL, 0, 0, 0 },
		{ " 1.2.3.4", TK_EINVAL, 0, 0, 0 },
		{ "1.2.3.4 ", TK_EINVAL, 0, 0, 0 },
		{ "CAP:x", TK_EINVAL, 0, 0, 0 },
		{ "10.0.0.0/8-10.0.0.1", TK_EINVAL, 0, 0, 0 }, /* '/' first */
		{ "10.0.0.1/8", TK_EINVAL, 0, 0, 0 },	/* host bits */
		{ "fd7a::1/64", TK_EINVAL, 0, 0, 0 },
		{ "10.0.0.0/33", TK_EINVAL, 0, 0, 0 },
		{ "::/129", TK_EINVAL, 0, 0, 0 },
		{ "10.0.0.0/", TK_EINVAL, 0, 0, 0 },
		{ "10.0.0.0/08", TK_EINVAL, 0, 0, 0 },
		{ "10.0.0.0/-1", TK_EINVAL, 0, 0, 0 },
		{ "10.0.0.0/8x", TK_EINVAL, 0, 0, 0 },
		{ "10.0.0.9-10.0.0.1", TK_EINVAL, 0, 0, 0 }, /* first > last */
		{ "10.0.0.1-::1", TK_EINVAL, 0, 0, 0 },	    /* mixed families */
		{ "10.0.0.1-10.0.0.2-10.0.0.3", TK_EINVAL, 0, 0, 0 },
		{ "10.0.0.1-", TK_EINVAL, 0, 0, 0 },
		{ "01.2.3.4", TK_EINVAL, 0, 0, 0 },
		{ "1.2.3", TK_EINVAL, 0, 0, 0 },
		{ "1.2.3.4.5", TK_EINVAL, 0, 0, 0 },
		{ "256.1.1.1", TK_EINVAL, 0, 0, 0 },
		{ "", TK_EINVAL, 0, 0, 0 },
		{ "**", TK_EINVAL, 0, 0, 0 },
		{ "cap", TK_EINVAL, 0, 0, 0 },
		{ "fe80::1%eth0", TK_EINVAL, 0, 0, 0 },
		{ "host.example", TK_EINVAL, 0, 0, 0 },
	};

	for (size_t i = 0; i < TK_ARRAY_LEN(cases); i++) {
		tk_wg_ipmatch m;
		int rv;

		memset(&m, 0xa5, sizeof(m));
		rv = tk_wg_ipmatch_parse(&m, cases[i].s);
		if (rv != cases[i].rv)
			fprintf(stderr, "\n  parse '%s': %d\n", cases[i].s, rv);
		CU_ASSERT_EQUAL(rv, cases[i].rv);
		if (rv != 0 || cases[i].rv != 0)
			continue;
		CU_ASSERT_EQUAL(m.im_kind, cases[i].kind);
		if (cases[i].kind == TK_WG_IPM_PREFIX) {
			CU_ASSERT_EQUAL(m.im_prefix.pf_family, cases[i].fam);
			CU_ASSERT_EQUAL(m.im_prefix.pf_bits, cases[i].bits);
		} else if (cases[i].kind == TK_WG_IPM_RANGE) {
			CU_ASSERT_EQUAL(m.im_range.rg_family, cases[i].fam);
		} else if (cases[i].kind == TK_WG_IPM_CAP) {
			CU_ASSERT_STRING_EQUAL(m.im_cap, cases[i].s + 4);
		}
	}
	/* tk_wg_ipmatch_parse_n: bytes, not a C string (ctrld's JSON) */
	{
		tk_wg_ipmatch m;

		CU_ASSERT_EQUAL(tk_wg_ipmatch_parse_n(&m, "1.2.3.0/24x", 10), 0);
		CU_ASSERT_EQUAL(m.im_prefix.pf_bits, 24);
		CU_ASSERT_EQUAL(tk_wg_ipmatch_parse_n(&m, "1.2.3.4-1.2.3.5-", 15),
		    0);
		CU_ASSERT_EQUAL(m.im_kind, TK_WG_IPM_RANGE);
		CU_ASSERT_EQUAL(tk_wg_ipmatch_parse_n(&m, "*x", 1), 0);
		CU_ASSERT_EQUAL(m.im_kind, TK_WG_IPM_ANY);
		CU_ASSERT_EQUAL(tk_wg_ipmatch_parse_n(&m, "cap:a\0b", 7), 0);
		CU_ASSERT(m.im_kind == TK_WG_IPM_CAP && m.im_cap[2] == 'b');
		/* inet_pton would stop at the NUL and accept "1.2.3.4" */
		CU_ASSERT_EQUAL(tk_wg_ipmatch_parse_n(&m, "1.2.3.4\0", 8),
		    TK_EINVAL);
		CU_ASSERT_EQUAL(tk_wg_ipmatch_parse_n(&m, "1.2.3.0/2\04", 11),
		    TK_EINVAL);
		CU_ASSERT_EQUAL(tk_wg_ipmatch_parse_n(&m, "", 0), TK_EINVAL);
		CU_ASSERT_EQUAL(tk_wg_ipmatch_parse_n(&m, "cap", 3), TK_EINVAL);
	}
	CU_ASSERT_EQUAL(tk_wg_ipmatch_parse(&(tk_wg_ipmatch){ 0 }, NULL),
	    TK_EINVAL);
	{
		tk_wg_ipmatch m = m_of("10.1.2.0/24");
		static const uint8_t want[4] = { 10, 1, 2, 0 };

		TK_ASSERT_MEM_EQ(m.im_prefix.pf_addr, want, 4);
		m = m_of("10.0.0.1-10.0.0.9");
		CU_ASSERT_EQUAL(m.im_range.rg_first[3], 1);
		CU_ASSERT_EQUAL(m.im_range.rg_last[3], 9);
	}
}

/* --- sources: any, prefix, single, range, cap ------------------------------ */

static const char *cap_ip; /* the one source that has cap "ssh" */
static int cap_calls;

static bool
has_cap(void *arg, int family, const uint8_t *src, const char *cap)
{
	uint8_t a[16];

	CU_ASSERT_PTR_EQUAL(arg, &cap_calls);
	cap_calls++;
	if (cap_ip == NULL || family != fam_of(cap_ip))
		return false;
	addr(cap_ip, a);
	return strcmp(cap, "ssh") == 0 &&
	    memcmp(a, src, family == 4 ? 4 : 16) == 0;
}

static void
test_sources(void)
{
	for (int i = 0; i < 2; i++) {
		const fam *F = &FAMS[i];
		char range[128];
		trule r[4];
		tk_wg_filter *f;

		snprintf(range, sizeof(range), "%s-%s", F->lo, F->hi);
		memset(r, 0, sizeof(r));
		r[0].src[0] = F->peer_net;
		r[0].dst[0] = (tdst){ F->me, 22, 22 };
		r[1].src[0] = range;
		r[1].dst[0] = (tdst){ F->me, 80, 80 };
		r[2].src[0] = "*";
		r[2].dst[0] = (tdst){ F->me, 443, 443 };
		r[3].src[0] = "cap:ssh";
		r[3].src[1] = "cap:"; /* adds nothing */
		r[3].dst[0] = (tdst){ F->me, 2222, 2222 };
		f = newf_rules(r, 4);

		/* prefix: inside, both edges, just outside */
		IN_OK(f, tcp(F->peer, 999, F->me, 22, SYN), TK_WG_WHY_TCP_RULE);
		IN_OK(f, tcp(F->in_net, 999, F->me, 22, SYN), TK_WG_WHY_TCP_RULE);
		IN(f, tcp(F->out_net, 999, F->me, 22, SYN), DROP_RULE);
		IN(f, tcp(F->other, 999, F->me, 22, SYN), DROP_RULE);
		/* range: first, last, one below, one above */
		IN_OK(f, tcp(F->lo, 1, F->me, 80, SYN), TK_WG_WHY_TCP_RULE);
		IN_OK(f, tcp(F->hi, 1, F->me, 80, SYN), TK_WG_WHY_TCP_RULE);
		IN(f, tcp(F->below, 1, F->me, 80, SYN), DROP_RULE);
		IN(f, tcp(F->above, 1, F->me, 80, SYN), DROP_RULE);
		/* any */
		IN_OK(f, tcp(F->other, 1, F->me, 443, SYN), TK_WG_WHY_TCP_RULE);
		IN_OK(f, tcp(F->peer, 1, F->me, 443, SYN), TK_WG_WHY_TCP_RULE);
		/* cap: no callback, caps match nothing */
		cap_ip = F->peer;
		IN(f, tcp(F->peer, 1, F->me, 2222, SYN), DROP_RULE);
		tk_wg_filter_set_cap_cb(f, has_cap, &cap_calls);
		cap_calls = 0;
		IN_OK(f, tcp(F->peer, 1, F->me, 2222, SYN), TK_WG_WHY_TCP_RULE);
		CU_ASSERT(cap_calls > 0);
		IN(f, tcp(F->other, 1, F->me, 2222, SYN), DROP_RULE);
		/* the cap grants only that rule's destinations */
		IN(f, tcp(F->peer, 1, F->me, 2223, SYN), DROP_RULE);
		/* a prefix source never asks the callback when it matches */
		cap_calls = 0;
		IN_OK(f, tcp(F->peer, 1, F->me, 22, SYN), TK_WG_WHY_TCP_RULE);
		CU_ASSERT_EQUAL(cap_calls, 0);
		cap_ip = NULL;
		tk_wg_filter_free(f);
	}
}

/*
 * Source sets big enough to be bisected: overlapping, adjacent and nested
 * entries, and the whole address space next to single addresses.
 */
static void
test_source_sets(void)
{
	static const struct {
		const char *src[12];
		const char *in[6], *out[6];
	} sets[] = {
		{ { "10.0.0.1", "10.0.0.3", "10.0.0.5", "10.0.0.7", "10.0.0.9",
		      "10.0.0.20-10.0.0.29", "10.0.0.30-10.0.0.39", /* adjacent */
		      "10.0.0.32/28",			   /* overlaps both */
		      "10.0.1.0/24", "10.0.1.128/25", /* nested */
		      "255.255.255.255" },
		    { "10.0.0.9", "10.0.0.20", "10.0.0.47", "10.0.1.255",
			"255.255.255.255", "10.0.0.30" },
		    { "10.0.0.2", "10.0.0.19", "10.0.0.48", "10.0.2.0",
			"255.255.255.254", "0.0.0.0" } },
		{ { "::/0", "fd00::1", "fd00::3", "fd00::5", "fd00::7", "fd00::9",
		      "fd00::b", "fd00::d", "fd00::f", "fd00::11" },
		    { "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fd00::12", "::",
			"fd00::2", "1::", "fe00::" },
		    { NULL } },
		{ { "fd00::1", "fd00::3", "fd00::5", "fd00::7", "fd00::9",
		      "fd00::b", "fd00::d", "fd00::f", "fd00::10-fd00::1f",
		      "fd00::18/125", "ff00::/8" },
		    { "fd00::1f", "fd00::10", "fd00::1b", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
			"ff00::", "fd00::f" },
		    { "fd00::20", "fd00::e", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
			"::", "fd00::", "fd00::2" } },
	};

	for (size_t k = 0; k < TK_ARRAY_LEN(sets); k++) {
		static const char *const all[] = { "0.0.0.0/0", "::/0", NULL };
		const char *me = fam_of(sets[k].in[0]) == 4 ? "100.64.0.1" :
								 "fd7a::1";
		trule r[1];
		tk_wg_filter *f = newf();

		memset(r, 0, sizeof(r));
		memcpy(r[0].src, sets[k].src, sizeof(sets[k].src));
		r[0].dst[0] = (tdst){ me, 22, 22 };
		CU_ASSERT_FATAL(set_trules(f, r, 1) == 0);
		set_locals(f, all);
		for (size_t j = 0; j < 6 && sets[k].in[j] != NULL; j++)
			IN_OK(f, tcp(sets[k].in[j], 1, me, 22, SYN),
			    TK_WG_WHY_TCP_RULE);
		for (size_t j = 0; j < 6 && sets[k].out[j] != NULL; j++)
			IN(f, tcp(sets[k].out[j], 1, me, 22, SYN), DROP_RULE);
		tk_wg_filter_free(f);
	}
}

/* A rule keeps, per family, the sources and destinations of that family. */
static void
test_families(void)
{
	trule r[3];
	tk_wg_filter *f;
	tk_wg_filter_stats st;

	memset(r, 0, sizeof(r));
	/* v4 source, v6 destination: matches nothing in either family */
	r[0].src[0] = FAMS[0].peer;
	r[0].dst[0] = (tdst){ FAMS[1].me, ALL };
	/* "*" source, v6 destination: IPv6 only */
	r[1].src[0] = "*";
	r[1].dst[0] = (tdst){ FAMS[1].me, 7, 7 };
	/* cap source, v4 destination: kept in IPv4 only */
	r[2].src[0] = "cap:ssh";
	r[2].dst[0] = (tdst){ FAMS[0].me, 8, 8 };
	f = newf_rules(r, 3);
	tk_wg_filter_set_cap_cb(f, has_cap, &cap_calls);
	tk_wg_filter_stats_get(f, &st);
	CU_ASSERT_EQUAL(st.fs_rules4, 1);
	CU_ASSERT_EQUAL(st.fs_rules6, 1);

	IN(f, tcp(FAMS[0].peer, 1, FAMS[0].me, 1, SYN), DROP_RULE);
	IN(f, tcp(FAMS[1].peer, 1, FAMS[1].me, 1, SYN), DROP_RULE);
	IN(f, tcp(FAMS[0].other, 1, FAMS[0].me, 7, SYN), DROP_RULE);
	IN_OK(f, tcp(FAMS[1].other, 1, FAMS[1].me, 7, SYN), TK_WG_WHY_TCP_RULE);
	cap_ip = FAMS[1].peer;
	IN(f, tcp(FAMS[1].peer, 1, FAMS[1].me, 8, SYN), DROP_RULE);
	cap_ip = FAMS[0].peer;
	IN_OK(f, tcp(FAMS[0].peer, 1, FAMS[0].me, 8, SYN), TK_WG_WHY_TCP_RULE);
	cap_ip = NULL;
	tk_wg_filter_free(f);
}

/* --- destinations and ports --------------------------------------------- */

static void
test_ports(void)
{
	for (int i = 0; i < 2; i++) {
		const fam *F = &FAMS[i];
		trule r[4];
		tk_wg_filter *f;

		memset(r, 0, sizeof(r));
		r[0].src[0] = F->peer;
		r[0].dst[0] = (tdst){ F->me, 1000, 2000 };
		r[0].dst[1] = (tdst){ F->me2, 53, 53 };
		r[1].src[0] = F->other;
		r[1].dst[0] = (tdst){ "*", ALL };
		r[2].src[0] = F->lo;
		r[2].dst[0] = (tdst){ F->me, 9, 8 }; /* first > last: nothing */
		r[3].src[0] = F->hi;
		r[3].dst[0] = (tdst){ F->me, 0, 0 };
		r[3].dst[1] = (tdst){ F->me, 65535, 65535 };
		f = newf_rules(r, 4);

		for (int u = 0; u < 2; u++) {
			/* TCP SYN and UDP are matched alike */
#define T(s, sp, d, dp) (u ? udp((s), (sp), (d), (dp)) : tcp((s), (sp), (d), (dp), SYN))
			int ok = u ? TK_WG_WHY_UDP_RULE : TK_WG_WHY_TCP_RULE;

			IN_OK(f, T(F->peer, 5, F->me, 1000), ok);
			IN_OK(f, T(F->peer, 5, F->me, 1500), ok);
			IN_OK(f, T(F->peer, 5, F->me, 2000), ok);
			IN(f, T(F->peer, 5, F->me, 999), DROP_RULE);
			IN(f, T(F->peer, 5, F->me, 2001), DROP_RULE);
			/* ports belong to their own destination */
			IN_OK(f, T(F->peer, 5, F->me2, 53), ok);
			IN(f, T(F->peer, 5, F->me2, 54), DROP_RULE);
			IN(f, T(F->peer, 5, F->me, 53), DROP_RULE);
			/* "*" address, all ports: 0 and 65535 included */
			IN_OK(f, T(F->other, 5, F->me, 0), ok);
			IN_OK(f, T(F->other, 5, F->me2, 65535), ok);
			/* the source port does not matter */
			IN(f, T(F->peer, 1500, F->me, 5), DROP_RULE);
			/* an empty range */
			IN(f, T(F->lo, 5, F->me, 8), DROP_RULE);
			IN(f, T(F->lo, 5, F->me, 9), DROP_RULE);
			/* single-port ranges at the edges */
			IN_OK(f, T(F->hi, 5, F->me, 0), ok);
			IN_OK(f, T(F->hi, 5, F->me, 65535), ok);
			IN(f, T(F->hi, 5, F->me, 1), DROP_RULE);
			IN(f, T(F->hi, 5, F->me, 65534), DROP_RULE);
#undef T
		}
		tk_wg_filter_free(f);
	}
}

/* --- protocols ------------------------------------------------------------- */

static void
test_protocols(void)
{
	for (int i = 0; i < 2; i++) {
		const fam *F = &FAMS[i];
		trule r[3];
		tk_wg_filter *f;

		memset(r, 0, sizeof(r));
		r[0].src[0] = F->peer; /* default protocols */
		r[0].dst[0] = (tdst){ F->me, 22, 22 };
		r[1].src[0] = F->lo; /* SCTP only */
		r[1].dst[0] = (tdst){ F->me, 22, 22 };
		r[1].protos[0] = TK_WG_PROTO_SCTP;
		r[1].nprotos = 1;
		r[2].src[0] = F->hi; /* UDP only */
		r[2].dst[0] = (tdst){ F->me, 22, 22 };
		r[2].protos[0] = TK_WG_PROTO_UDP;
		r[2].nprotos = 1;
		f = newf_rules(r, 3);

		/* defaults: TCP, UDP, ICMP; not SCTP */
		IN_OK(f, tcp(F->peer, 1, F->me, 22, SYN), TK_WG_WHY_TCP_RULE);
		IN_OK(f, udp(F->peer, 1, F->me, 22), TK_WG_WHY_UDP_RULE);
		IN_OK(f, icmp(F->peer, F->me, i ? 128 : 8, 0), TK_WG_WHY_ICMP_RULE);
		IN(f, udp_p(TK_WG_PROTO_SCTP, F->peer, 1, F->me, 22), DROP_RULE);
		/* explicit SCTP */
		IN_OK(f, udp_p(TK_WG_PROTO_SCTP, F->lo, 1, F->me, 22),
		    TK_WG_WHY_UDP_RULE);
		IN(f, udp_p(TK_WG_PROTO_SCTP, F->lo, 1, F->me, 23), DROP_RULE);
		IN(f, tcp(F->lo, 1, F->me, 22, SYN), DROP_RULE);
		IN(f, udp(F->lo, 1, F->me, 22), DROP_RULE);
		/* explicit UDP: no TCP SYN ... */
		IN(f, tcp(F->hi, 1, F->me, 22, SYN), DROP_RULE);
		IN_OK(f, udp(F->hi, 1, F->me, 22), TK_WG_WHY_UDP_RULE);
		/* ... but ICMP ignores protocols and ports (matchIPsOnly) */
		IN_OK(f, icmp(F->hi, F->me, i ? 128 : 8, 0), TK_WG_WHY_ICMP_RULE);
		IN_OK(f, icmp(F->lo, F->me, i ? 128 : 8, 0), TK_WG_WHY_ICMP_RULE);
		IN(f, icmp(F->other, F->me, i ? 128 : 8, 0), DROP_RULE);
		/* ... only the destination IP */
		IN(f, icmp(F->hi, F->me2, i ? 128 : 8, 0), DROP_RULE);
		tk_wg_filter_free(f);
	}
}

/* IPProto numbers above 255 are ignored; only those = no protocol at all. */
static void
test_protocols_reserved(void)
{
	for (int i = 0; i < 2; i++) {
		const fam *F = &FAMS[i];
		trule r[2];
		tk_wg_filter *f;

		memset(r, 0, sizeof(r));
		r[0].src[0] = F->peer; /* only reserved numbers */
		r[0].dst[0] = (tdst){ F->me, ALL };
		r[0].protos[0] = 256 + TK_WG_PROTO_TCP;
		r[0].protos[1] = 0xffffffffu; /* a -1 from JSON */
		r[0].nprotos = 2;
		r[1].src[0] = F->lo; /* TCP, and UDP + 256 */
		r[1].dst[0] = (tdst){ F->me, 22, 22 };
		r[1].protos[0] = TK_WG_PROTO_TCP;
		r[1].protos[1] = 256 + TK_WG_PROTO_UDP;
		r[1].nprotos = 2;
		f = newf_rules(r, 2);

		/* not the defaults: nothing with ports gets through ... */
		IN(f, tcp(F->peer, 1, F->me, 22, SYN), DROP_RULE);
		IN(f, udp(F->peer, 1, F->me, 22), DROP_RULE);
		IN(f, raw(47, F->peer, F->me, 8), DROP_RULE);
		IN(f, raw(41, F->peer, F->me, 8), DROP_RULE);
		/* ... but ICMP only looks at the addresses */
		IN_OK(f, icmp(F->peer, F->me, i ? 128 : 8, 0), TK_WG_WHY_ICMP_RULE);
		IN_OK(f, tcp(F->lo, 1, F->me, 22, SYN), TK_WG_WHY_TCP_RULE);
		IN(f, udp(F->lo, 1, F->me, 22), DROP_RULE);
		tk_wg_filter_free(f);
	}
}

/* --- TCP: SYN needs a rule, everything else is return traffic -------------- */

static void
test_tcp(void)
{
	static const struct {
		uint8_t flags;
		bool syn;
	} fl[] = {
		{ SYN, true }, { SYN | FIN, true }, { SYN | RST, true },
		{ SYN | 0x08, true }, { SYN | 0xc0, true }, { SYN | ACK, false },
		{ ACK, false }, { 0, false }, { FIN, false }, { RST, false },
		{ FIN | ACK, false }, { 0xff, false }, { 0xff & ~ACK, true },
	};

	for (int i = 0; i < 2; i++) {
		const fam *F = &FAMS[i];
		trule r[1];
		tk_wg_filter *f;

		memset(r, 0, sizeof(r));
		r[0].src[0] = F->peer;
		r[0].dst[0] = (tdst){ F->me, 22, 22 };
		f = newf_rules(r, 1);
		for (size_t k = 0; k < TK_ARRAY_LEN(fl); k++) {
			if (fl[k].syn) {
				IN_OK(f, tcp(F->peer, 1, F->me, 22, fl[k].flags),
				    TK_WG_WHY_TCP_RULE);
				IN(f, tcp(F->other, 1, F->me, 22, fl[k].flags),
				    DROP_RULE);
			} else {
				IN_OK(f, tcp(F->other, 1, F->me, 9, fl[k].flags),
				    TK_WG_WHY_TCP_NON_SYN);
			}
		}
		/* non-SYN still has to be for us */
		IN(f, tcp(F->peer, 1, F->stranger, 22, ACK), TK_WG_DROP_NOT_LOCAL);
		tk_wg_filter_free(f);
	}
}

/* --- UDP/SCTP flows ---------------------------------------------------------- */

static void
test_udp_flows(void)
{
	for (int i = 0; i < 2; i++) {
		const fam *F = &FAMS[i];
		tk_wg_filter *f = newf_rules(NULL, 0);
		tk_wg_filter_stats st;

		/* unsolicited: dropped */
		IN(f, udp(F->peer, 53, F->me, 4000), DROP_RULE);
		/* we talk first; the reply comes back */
		OUT(f, udp(F->me, 4000, F->peer, 53), TK_WG_ACCEPT);
		IN_OK(f, udp(F->peer, 53, F->me, 4000), TK_WG_WHY_FLOW);
		IN_OK(f, udp(F->peer, 53, F->me, 4000), TK_WG_WHY_FLOW);
		/* exactly that 5-tuple */
		IN(f, udp(F->peer, 54, F->me, 4000), DROP_RULE);
		IN(f, udp(F->peer, 53, F->me, 4001), DROP_RULE);
		IN(f, udp(F->other, 53, F->me, 4000), DROP_RULE);
		IN(f, udp(F->peer, 53, F->me2, 4000), DROP_RULE);
		/* not the same direction as the outbound packet */
		IN(f, udp(F->me, 4000, F->peer, 53), TK_WG_DROP_NOT_LOCAL);
		/* a UDP flow admits UDP only */
		IN(f, udp_p(TK_WG_PROTO_SCTP, F->peer, 53, F->me, 4000), DROP_RULE);
		/* SCTP is tracked like UDP */
		OUT(f, udp_p(TK_WG_PROTO_SCTP, F->me, 7, F->peer, 8), TK_WG_ACCEPT);
		IN_OK(f, udp_p(TK_WG_PROTO_SCTP, F->peer, 8, F->me, 7),
		    TK_WG_WHY_FLOW);
		IN(f, udp(F->peer, 8, F->me, 7), DROP_RULE);
		/* TCP and ICMP are not tracked */
		OUT(f, tcp(F->me, 5, F->peer, 6, SYN), TK_WG_ACCEPT);
		OUT(f, icmp(F->me, F->peer, i ? 128 : 8, 0), TK_WG_ACCEPT);
		tk_wg_filter_stats_get(f, &st);
		CU_ASSERT_EQUAL(st.fs_flows, 2);
		IN(f, tcp(F->peer, 6, F->me, 5, SYN), DROP_RULE);

		/* flows survive new rules and new local addresses */
		CU_ASSERT(set_trules(f, NULL, 0) == 0);
		set_locals(f, LOCAL);
		IN_OK(f, udp(F->peer, 53, F->me, 4000), TK_WG_WHY_FLOW);
		/* a flow does not override the local-address check */
		OUT(f, udp(F->stranger, 4000, F->peer, 53), TK_WG_ACCEPT);
		IN(f, udp(F->peer, 53, F->stranger, 4000), TK_WG_DROP_NOT_LOCAL);
		{
			static const char *const none[] = { NULL };

			set_locals(f, none);
			IN(f, udp(F->peer, 53, F->me, 4000),
			    TK_WG_DROP_NOT_LOCAL);
			set_locals(f, LOCAL);
		}
		/* flushed: forgotten */
		tk_wg_filter_flush_flows(f);
		tk_wg_filter_stats_get(f, &st);
		CU_ASSERT_EQUAL(st.fs_flows, 0);
		IN(f, udp(F->peer, 53, F->me, 4000), DROP_RULE);
		OUT(f, udp(F->me, 4000, F->peer, 53), TK_WG_ACCEPT);
		IN_OK(f, udp(F->peer, 53, F->me, 4000), TK_WG_WHY_FLOW);
		tk_wg_filter_free(f);
	}
	/* an IPv4 flow says nothing about IPv6, and the other way round */
	{
		tk_wg_filter *f = newf_rules(NULL, 0);

		OUT(f, udp(FAMS[0].me, 1, FAMS[0].peer, 2), TK_WG_ACCEPT);
		IN(f, udp(FAMS[1].peer, 2, FAMS[1].me, 1), DROP_RULE);
		IN_OK(f, udp(FAMS[0].peer, 2, FAMS[0].me, 1), TK_WG_WHY_FLOW);
		tk_wg_filter_free(f);
	}
}

/* Flow i: our port 10000 + i to the peer's port 53. */
static pk
flow_out(int i)
{
	return udp(FAMS[i % 2].me, (uint16_t)(10000 + i), FAMS[i % 2].peer, 53);
}

static pk
flow_in(int i)
{
	return udp(FAMS[i % 2].peer, 53, FAMS[i % 2].me, (uint16_t)(10000 + i));
}

static void
test_flow_lru(void)
{
	const int N = TK_WG_FILTER_FLOWS;
	tk_wg_filter *f = newf_rules(NULL, 0);
	tk_wg_filter_stats st;

	CU_ASSERT_EQUAL(N, 512); /* filter.go lruMax */
	for (int i = 0; i < N; i++)
		OUT(f, flow_out(i), TK_WG_ACCEPT);
	tk_wg_filter_stats_get(f, &st);
	CU_ASSERT_EQUAL(st.fs_flows, N);
	CU_ASSERT_EQUAL(st.fs_flow_evictions, 0);
	/* all remembered; refreshing them in order keeps 0 the oldest */
	for (int i = 0; i < N; i++)
		IN_OK(f, flow_in(i), TK_WG_WHY_FLOW);
	/* one more: flow 0, the least recently used, goes */
	OUT(f, flow_out(N), TK_WG_ACCEPT);
	IN(f, flow_in(0), DROP_RULE);
	IN_OK(f, flow_in(N), TK_WG_WHY_FLOW);
	IN_OK(f, flow_in(2), TK_WG_WHY_FLOW); /* 2 is now newer than 1 */
	OUT(f, flow_out(N + 1), TK_WG_ACCEPT);
	IN(f, flow_in(1), DROP_RULE);
	IN_OK(f, flow_in(2), TK_WG_WHY_FLOW);
	IN_OK(f, flow_in(3), TK_WG_WHY_FLOW);
	/* sending on a known flow refreshes it and adds nothing */
	OUT(f, flow_out(4), TK_WG_ACCEPT);
	OUT(f, flow_out(N + 2), TK_WG_ACCEPT);
	IN_OK(f, flow_in(4), TK_WG_WHY_FLOW);
	IN(f, flow_in(5), DROP_RULE);
	tk_wg_filter_stats_get(f, &st);
	CU_ASSERT_EQUAL(st.fs_flows, N);
	CU_ASSERT_EQUAL(st.fs_flow_evictions, 3);
	/* churn: the table always holds exactly the newest N (probed
	 * newest first, so probing does not reorder what is left to probe) */
	tk_wg_filter_flush_flows(f);
	for (int i = 0; i < 4 * N; i++)
		OUT(f, flow_out(1000 + i), TK_WG_ACCEPT);
	for (int i = 4 * N - 1; i >= 0; i--) {
		pk p = flow_in(1000 + i);

		if (i >= 3 * N)
			IN_OK(f, p, TK_WG_WHY_FLOW);
		else
			IN(f, p, DROP_RULE);
	}
	tk_wg_filter_free(f);
}

/* --- ICMP -------------------------------------------------------------------- */

static void
test_icmp(void)
{
	/* type, code, is a response (echo reply or error) per packet.go */
	static const struct {
		uint8_t t, c;
		bool resp;
	} v4[] = {
		{ 0, 0, true },	   /* echo reply */
		{ 0, 1, false },   /* echo reply with a code: not NoCode */
		{ 3, 0, true },	   /* unreachable */
		{ 3, 13, true },
		{ 11, 0, true },   /* time exceeded */
		{ 0x12, 0, true }, /* icmp4.go ICMP4ParamProblem = 0x12 */
		{ 12, 0, false },  /* RFC 792 parameter problem: not in Go's list */
		{ 8, 0, false },   /* echo request */
		{ 5, 0, false },   /* redirect */
		{ 13, 0, false },
	}, v6[] = {
		{ 129, 0, true }, { 129, 1, false }, { 1, 0, true },
		{ 2, 0, true }, { 3, 0, true }, { 4, 0, true },
		{ 128, 0, false }, { 133, 0, false }, { 135, 0, false },
		{ 0, 0, false }, { 5, 0, false },
	};

	for (int i = 0; i < 2; i++) {
		const fam *F = &FAMS[i];
		size_t n = i ? TK_ARRAY_LEN(v6) : TK_ARRAY_LEN(v4);
		trule r[2];
		tk_wg_filter *f;

		memset(r, 0, sizeof(r));
		r[0].src[0] = F->peer;
		r[0].dst[0] = (tdst){ F->me, 22, 22 };
		r[1].src[0] = "cap:ssh";
		r[1].dst[0] = (tdst){ F->stranger, 1, 1 };
		f = newf_rules(r, 2);

		for (size_t k = 0; k < n; k++) {
			uint8_t t = i ? v6[k].t : v4[k].t, c = i ? v6[k].c : v4[k].c;
			bool resp = i ? v6[k].resp : v4[k].resp;

			if (resp) {
				IN_OK(f, icmp(F->other, F->me, t, c),
				    TK_WG_WHY_ICMP_RESPONSE);
				/* still only to local addresses */
				IN(f, icmp(F->other, F->stranger, t, c),
				    TK_WG_DROP_NOT_LOCAL);
			} else {
				IN(f, icmp(F->other, F->me, t, c), DROP_RULE);
				IN_OK(f, icmp(F->peer, F->me, t, c),
				    TK_WG_WHY_ICMP_RULE);
			}
		}
		/* a response needs 8 bytes of ICMP; 4..7 is a bare header */
		{
			uint8_t l4[8] = { i ? 129 : 0, 0 };
			uint8_t pr = i ? TK_WG_PROTO_ICMP6 : TK_WG_PROTO_ICMP4;

			IN_OK(f, ip(pr, F->other, F->me, l4, 8),
			    TK_WG_WHY_ICMP_RESPONSE);
			for (size_t len = 4; len < 8; len++) {
				IN(f, ip(pr, F->other, F->me, l4, len), DROP_RULE);
				IN_OK(f, ip(pr, F->peer, F->me, l4, len),
				    TK_WG_WHY_ICMP_RULE);
			}
			for (size_t len = 0; len < 4; len++)
				IN(f, ip(pr, F->peer, F->me, l4, len),
				    TK_WG_DROP_MALFORMED);
		}
		/* matchIPsOnly: a source with any cap a rule names may ping any
		 * local address, whatever that rule's destinations */
		tk_wg_filter_set_cap_cb(f, has_cap, &cap_calls);
		cap_ip = F->other;
		IN_OK(f, icmp(F->other, F->me2, i ? 128 : 8, 0),
		    TK_WG_WHY_ICMP_RULE);
		IN(f, tcp(F->other, 1, F->me2, 1, SYN), DROP_RULE);
		cap_ip = NULL;
		/* the other family's ICMP number is just another protocol */
		{
			uint8_t l4[8] = { i ? 0 : 129 };

			IN(f, ip(i ? TK_WG_PROTO_ICMP4 : TK_WG_PROTO_ICMP6, F->peer,
				  F->me, l4, 8), DROP_RULE);
		}
		tk_wg_filter_free(f);
	}
}

/* --- fragments ---------------------------------------------------------- */

static void
test_fragments(void)
{
	tk_wg_filter *f;
	trule r[1];

	memset(r, 0, sizeof(r));
	r[0].src[0] = FAMS[0].peer;
	r[0].src[1] = FAMS[1].peer;
	r[0].dst[0] = (tdst){ "*", 22, 22 };
	f = newf_rules(r, 1);

	/* IPv4 later fragments pass, wherever they go (filter.go pre) */
	IN_OK(f, frag4(raw(TK_WG_PROTO_TCP, FAMS[0].other, FAMS[0].me, 40), 10,
		      false), TK_WG_WHY_FRAGMENT);
	IN_OK(f, frag4(raw(TK_WG_PROTO_UDP, FAMS[0].other, FAMS[0].stranger, 40),
		      0x1fff, true), TK_WG_WHY_FRAGMENT);
	/* ... unless they could overlap a transport header (RFC 1858) */
	for (unsigned b = 1; b < 10; b++)
		IN(f, frag4(raw(TK_WG_PROTO_TCP, FAMS[0].peer, FAMS[0].me, 40), b,
			   true), TK_WG_DROP_MALFORMED);
	/* ... or are multicast */
	IN(f, frag4(raw(TK_WG_PROTO_UDP, FAMS[0].peer, "224.0.0.251", 40), 100,
		   false), TK_WG_DROP_MULTICAST);
	/* a first fragment is judged like a whole packet */
	IN_OK(f, frag4(tcp(FAMS[0].peer, 1, FAMS[0].me, 22, SYN), 0, true),
	    TK_WG_WHY_TCP_RULE);
	IN(f, frag4(tcp(FAMS[0].other, 1, FAMS[0].me, 22, SYN), 0, true),
	    DROP_RULE);
	/* TSMP is never fragmented */
	IN_OK(f, raw(TK_WG_PROTO_TSMP, FAMS[0].other, FAMS[0].me, 8),
	    TK_WG_WHY_TSMP);
	IN(f, frag4(raw(TK_WG_PROTO_TSMP, FAMS[0].other, FAMS[0].me, 8), 0, true),
	    TK_WG_DROP_MALFORMED);

	/* IPv6: a Fragment header straight after the base header */
	IN_OK(f, frag6(udp(FAMS[1].peer, 1, FAMS[1].me, 22), 0, true),
	    TK_WG_WHY_UDP_RULE);
	IN(f, frag6(udp(FAMS[1].peer, 1, FAMS[1].me, 23), 0, true), DROP_RULE);
	IN_OK(f, frag6(tcp(FAMS[1].peer, 1, FAMS[1].me, 22, SYN), 0, false),
	    TK_WG_WHY_TCP_RULE);
	IN_OK(f, frag6(udp(FAMS[1].other, 1, FAMS[1].stranger, 23), 10, true),
	    TK_WG_WHY_FRAGMENT);
	IN_OK(f, frag6(udp(FAMS[1].other, 1, FAMS[1].me, 23), 0x1fff, false),
	    TK_WG_WHY_FRAGMENT);
	for (unsigned b = 1; b < 10; b++)
		IN(f, frag6(udp(FAMS[1].peer, 1, FAMS[1].me, 22), b, true),
		    TK_WG_DROP_MALFORMED);
	IN(f, frag6(udp(FAMS[1].peer, 1, "ff02::fb", 22), 20, true),
	    TK_WG_DROP_MULTICAST);
	/* a first fragment too short for its transport header */
	{
		pk p = frag6(raw(TK_WG_PROTO_UDP, FAMS[1].peer, FAMS[1].me, 7), 0,
		    true);

		IN(f, p, TK_WG_DROP_MALFORMED);
		/* a fragment header cut short */
		p = raw(44, FAMS[1].peer, FAMS[1].me, 7);
		IN(f, p, TK_WG_DROP_MALFORMED);
		/* a fragment header naming hop-by-hop (0) or 255 */
		p = frag6(raw(0, FAMS[1].peer, FAMS[1].me, 8), 0, true);
		IN(f, p, TK_WG_DROP_MALFORMED);
		p = frag6(raw(255, FAMS[1].peer, FAMS[1].me, 8), 0, true);
		IN(f, p, TK_WG_DROP_MALFORMED);
		/* two fragment headers: the inner one is "protocol 44" */
		p = frag6(frag6(udp(FAMS[1].peer, 1, FAMS[1].me, 22), 0, true), 0,
		    true);
		IN(f, p, DROP_RULE);
	}
	/* fragments pass even before any rules are set */
	{
		tk_wg_filter *g = newf();

		IN_OK(g, frag4(raw(TK_WG_PROTO_UDP, FAMS[0].peer, FAMS[0].me, 40),
			      50, false), TK_WG_WHY_FRAGMENT);
		IN_OK(g, frag6(udp(FAMS[1].peer, 1, FAMS[1].me, 22), 50, false),
		    TK_WG_WHY_FRAGMENT);
		OUT(g, frag4(raw(TK_WG_PROTO_UDP, FAMS[0].me, FAMS[0].peer, 40), 50,
			    false), TK_WG_ACCEPT);
		tk_wg_filter_free(g);
	}
	tk_wg_filter_free(f);
}

/* --- other protocols ----------------------------------------------------- */

static void
test_other_protocols(void)
{
	for (int i = 0; i < 2; i++) {
		const fam *F = &FAMS[i];
		trule r[4];
		tk_wg_filter *f;

		memset(r, 0, sizeof(r));
		r[0].src[0] = F->peer_net; /* GRE (47), all ports */
		r[0].dst[0] = (tdst){ F->me, ALL };
		r[0].protos[0] = 47;
		r[0].nprotos = 1;
		r[1].src[0] = F->lo; /* GRE, not all ports */
		r[1].dst[0] = (tdst){ F->me, 1, 65535 };
		r[1].protos[0] = 47;
		r[1].nprotos = 1;
		r[2].src[0] = "cap:ssh"; /* caps do not count here */
		r[2].dst[0] = (tdst){ F->me, ALL };
		r[2].protos[0] = 47;
		r[2].nprotos = 1;
		r[3].src[0] = F->hi; /* defaults, all ports */
		r[3].dst[0] = (tdst){ F->me, ALL };
		f = newf_rules(r, 4);
		tk_wg_filter_set_cap_cb(f, has_cap, &cap_calls);
		cap_ip = F->other;

		IN_OK(f, raw(47, F->peer, F->me, 8), TK_WG_WHY_OTHER_PROTO);
		IN_OK(f, raw(47, F->peer, F->me, 0), TK_WG_WHY_OTHER_PROTO);
		IN(f, raw(47, F->peer, F->me2, 8), DROP_RULE);
		IN(f, raw(47, F->lo, F->me, 8), DROP_RULE);
		IN(f, raw(47, F->other, F->me, 8), DROP_RULE);
		IN(f, raw(47, F->hi, F->me, 8), DROP_RULE);
		IN(f, raw(50, F->peer, F->me, 8), DROP_RULE);
		/* a default-protocol rule with all ports admits the other
		 * family's ICMP number as a portless protocol */
		IN_OK(f, raw(i ? TK_WG_PROTO_ICMP4 : TK_WG_PROTO_ICMP6, F->hi,
			      F->me, 8), TK_WG_WHY_OTHER_PROTO);
		IN(f, raw(i ? TK_WG_PROTO_ICMP4 : TK_WG_PROTO_ICMP6, F->peer,
			   F->me, 8), DROP_RULE);
		IN(f, raw(47, F->peer, F->stranger, 8), TK_WG_DROP_NOT_LOCAL);
		/* IGMP (IPv4) needs its 8-byte header; in IPv6, 2 is opaque */
		if (i == 0)
			IN(f, raw(2, F->peer, F->me, 7), TK_WG_DROP_MALFORMED);
		IN(f, raw(2, F->peer, F->me, 8), DROP_RULE);
		/* TSMP: always accepted once it is for us, 7 bytes minimum */
		IN_OK(f, raw(TK_WG_PROTO_TSMP, F->other, F->me, 7), TK_WG_WHY_TSMP);
		IN(f, raw(TK_WG_PROTO_TSMP, F->other, F->me, 6),
		    TK_WG_DROP_MALFORMED);
		IN(f, raw(TK_WG_PROTO_TSMP, F->other, F->stranger, 7),
		    TK_WG_DROP_NOT_LOCAL);
		/* protocol 0 (Unknown) and 255 (Fragment) never pass */
		IN(f, raw(0, F->peer, F->me, 8), TK_WG_DROP_MALFORMED);
		IN(f, raw(255, F->peer, F->me, 8), TK_WG_DROP_MALFORMED);
		/* IPv6 extension headers other than Fragment are protocols */
		if (i == 1) {
			IN(f, raw(43, F->peer, F->me, 8), DROP_RULE);
			IN(f, raw(60, F->peer, F->me, 8), DROP_RULE);
		}
		cap_ip = NULL;
		tk_wg_filter_free(f);
	}
}

/* --- local addresses, multicast, link-local -------------------------------- */

static void
test_local(void)
{
	static const char *const many[] = { "100.64.0.1/32", "100.64.0.3/32",
		"100.64.0.5/32", "100.64.0.7/32", "100.64.0.9/32",
		"100.64.0.11/32", "100.64.0.13/32", "100.64.0.15/32",
		"100.64.0.17/32", "100.64.0.19/32", "100.64.0.20/31",
		"10.1.2.3/8", /* host bits: masked, 10/8 */
		"fd7a:115c:a1e0::1/128", "fd7a:115c:a1e0::3/128", NULL };
	static const char *const v4only[] = { "0.0.0.0/0", NULL };
	trule r[1];
	tk_wg_filter *f;

	memset(r, 0, sizeof(r));
	r[0].src[0] = "*";
	r[0].dst[0] = (tdst){ "*", ALL };
	f = newf_rules(r, 1);
	set_locals(f, many);
	IN_OK(f, tcp(FAMS[0].peer, 1, "100.64.0.1", 1, SYN), TK_WG_WHY_TCP_RULE);
	IN_OK(f, tcp(FAMS[0].peer, 1, "100.64.0.19", 1, SYN), TK_WG_WHY_TCP_RULE);
	IN_OK(f, tcp(FAMS[0].peer, 1, "100.64.0.20", 1, SYN), TK_WG_WHY_TCP_RULE);
	IN_OK(f, tcp(FAMS[0].peer, 1, "100.64.0.21", 1, SYN), TK_WG_WHY_TCP_RULE);
	IN_OK(f, tcp(FAMS[0].peer, 1, "10.0.0.0", 1, SYN), TK_WG_WHY_TCP_RULE);
	IN_OK(f, tcp(FAMS[0].peer, 1, "10.255.255.255", 1, SYN),
	    TK_WG_WHY_TCP_RULE);
	IN(f, tcp(FAMS[0].peer, 1, "100.64.0.2", 1, SYN), TK_WG_DROP_NOT_LOCAL);
	IN(f, tcp(FAMS[0].peer, 1, "100.64.0.18", 1, SYN), TK_WG_DROP_NOT_LOCAL);
	IN(f, tcp(FAMS[0].peer, 1, "100.64.0.22", 1, SYN), TK_WG_DROP_NOT_LOCAL);
	IN(f, tcp(FAMS[0].peer, 1, "11.0.0.0", 1, SYN), TK_WG_DROP_NOT_LOCAL);
	IN(f, tcp(FAMS[0].peer, 1, "9.255.255.255", 1, SYN),
	    TK_WG_DROP_NOT_LOCAL);
	IN_OK(f, tcp(FAMS[1].peer, 1, "fd7a:115c:a1e0::3", 1, SYN),
	    TK_WG_WHY_TCP_RULE);
	IN(f, tcp(FAMS[1].peer, 1, "fd7a:115c:a1e0::2", 1, SYN),
	    TK_WG_DROP_NOT_LOCAL);
	/* every kind of packet is held to it */
	IN(f, tcp(FAMS[0].peer, 1, "100.64.0.2", 1, ACK), TK_WG_DROP_NOT_LOCAL);
	IN(f, icmp(FAMS[0].peer, "100.64.0.2", 0, 0), TK_WG_DROP_NOT_LOCAL);
	IN(f, raw(TK_WG_PROTO_TSMP, FAMS[0].peer, "100.64.0.2", 8),
	    TK_WG_DROP_NOT_LOCAL);
	/* an IPv4 set covers no IPv6 */
	set_locals(f, v4only);
	IN_OK(f, tcp(FAMS[0].peer, 1, FAMS[0].stranger, 1, SYN),
	    TK_WG_WHY_TCP_RULE);
	IN(f, tcp(FAMS[1].peer, 1, FAMS[1].me, 1, SYN), TK_WG_DROP_NOT_LOCAL);
	IN(f, tcp(FAMS[1].peer, 1, "::ffff:100.64.0.1", 1, SYN),
	    TK_WG_DROP_NOT_LOCAL);
	tk_wg_filter_free(f);

	/* rules set, local never set: nothing is for us */
	f = newf();
	CU_ASSERT_FATAL(set_trules(f, r, 1) == 0);
	IN(f, tcp(FAMS[0].peer, 1, FAMS[0].me, 1, SYN), TK_WG_DROP_NOT_LOCAL);
	IN(f, tcp(FAMS[1].peer, 1, FAMS[1].me, 1, ACK), TK_WG_DROP_NOT_LOCAL);
	tk_wg_filter_free(f);
}

static void
test_multicast_link_local(void)
{
	static const char *const everything[] = { "0.0.0.0/0", "::/0", NULL };
	static const struct {
		const char *dst;
		tk_wg_verdict v;
	} cases[] = {
		{ "224.0.0.1", TK_WG_DROP_MULTICAST },
		{ "239.255.255.250", TK_WG_DROP_MULTICAST },
		{ "255.255.255.255", TK_WG_ACCEPT }, /* broadcast is not multicast */
		{ "223.255.255.255", TK_WG_ACCEPT },
		{ "240.0.0.1", TK_WG_ACCEPT },
		{ "169.254.1.1", TK_WG_DROP_LINK_LOCAL },
		{ "169.254.169.253", TK_WG_DROP_LINK_LOCAL },
		{ "169.254.169.254", TK_WG_ACCEPT }, /* the GCP metadata/DNS */
		{ "169.255.0.1", TK_WG_ACCEPT },
		{ "ff02::1", TK_WG_DROP_MULTICAST },
		{ "ff05::1:3", TK_WG_DROP_MULTICAST },
		{ "fe80::1", TK_WG_DROP_LINK_LOCAL },
		{ "febf::1", TK_WG_DROP_LINK_LOCAL },
		{ "fec0::1", TK_WG_ACCEPT },
		{ "fe7f::1", TK_WG_ACCEPT },
		/* netip unmaps IPv4-mapped addresses for these checks */
		{ "::ffff:224.0.0.1", TK_WG_DROP_MULTICAST },
		{ "::ffff:169.254.1.1", TK_WG_DROP_LINK_LOCAL },
		{ "::ffff:169.254.169.254", TK_WG_DROP_LINK_LOCAL },
		{ "::ffff:100.64.0.1", TK_WG_ACCEPT },
	};
	trule r[1];
	tk_wg_filter *f;

	memset(r, 0, sizeof(r));
	r[0].src[0] = "*";
	r[0].dst[0] = (tdst){ "*", ALL };
	f = newf();
	CU_ASSERT_FATAL(set_trules(f, r, 1) == 0);
	set_locals(f, everything);
	for (size_t k = 0; k < TK_ARRAY_LEN(cases); k++) {
		const char *src = fam_of(cases[k].dst) == 4 ? FAMS[0].peer :
								FAMS[1].peer;

		IN(f, udp(src, 1, cases[k].dst, 2), cases[k].v);
		IN(f, tcp(src, 1, cases[k].dst, 2, ACK), cases[k].v);
		/* outbound too (RunOut runs pre) */
		OUT(f, udp(src, 1, cases[k].dst, 2), cases[k].v);
	}
	/* the source does not matter */
	IN(f, udp("224.0.0.1", 1, FAMS[0].me, 2), TK_WG_ACCEPT);
	IN(f, udp("fe80::1", 1, FAMS[1].me, 2), TK_WG_ACCEPT);
	tk_wg_filter_free(f);
}

/* --- deny-all and never-set ---------------------------------------------- */

static void
test_deny_all(void)
{
	for (int i = 0; i < 2; i++) {
		const fam *F = &FAMS[i];
		tk_wg_filter *f = newf_rules(NULL, 0);
		tk_wg_filter_stats st;

		tk_wg_filter_stats_get(f, &st);
		CU_ASSERT_EQUAL(st.fs_rules4 + st.fs_rules6, 0);
		/* every new flow is dropped */
		IN(f, tcp(F->peer, 1, F->me, 22, SYN), DROP_RULE);
		IN(f, udp(F->peer, 1, F->me, 53), DROP_RULE);
		IN(f, icmp(F->peer, F->me, i ? 128 : 8, 0), DROP_RULE);
		IN(f, raw(47, F->peer, F->me, 8), DROP_RULE);
		/* return traffic still passes */
		IN_OK(f, tcp(F->peer, 22, F->me, 1, ACK), TK_WG_WHY_TCP_NON_SYN);
		IN_OK(f, tcp(F->peer, 22, F->me, 1, SYN | ACK),
		    TK_WG_WHY_TCP_NON_SYN);
		IN_OK(f, icmp(F->peer, F->me, i ? 129 : 0, 0),
		    TK_WG_WHY_ICMP_RESPONSE);
		IN_OK(f, raw(TK_WG_PROTO_TSMP, F->peer, F->me, 8), TK_WG_WHY_TSMP);
		OUT(f, udp(F->me, 53, F->peer, 1), TK_WG_ACCEPT);
		IN_OK(f, udp(F->peer, 1, F->me, 53), TK_WG_WHY_FLOW);
		/* a rule set with rules and then none again */
		{
			trule r[1];

			memset(r, 0, sizeof(r));
			r[0].src[0] = "*";
			r[0].dst[0] = (tdst){ "*", ALL };
			CU_ASSERT(set_trules(f, r, 1) == 0);
			IN_OK(f, tcp(F->peer, 1, F->me, 22, SYN),
			    TK_WG_WHY_TCP_RULE);
			CU_ASSERT(tk_wg_filter_set_rules(f, NULL, 0) == 0);
			IN(f, tcp(F->peer, 1, F->me, 22, SYN), DROP_RULE);
		}
		tk_wg_filter_free(f);
	}
}

/*
 * A jailed peer's packets: filter.NewShieldsUpFilter with the same local
 * set (net/tstun wrap.go jailedFilter).  Rules that admit everything do
 * not open anything; return traffic and TSMP still pass.
 */
static void
test_shields_up(void)
{
	for (int i = 0; i < 2; i++) {
		const fam *F = &FAMS[i];
		trule r[1];
		tk_wg_filter *f;
		pk p;

		memset(r, 0, sizeof(r));
		r[0].src[0] = "*";
		r[0].dst[0] = (tdst){ "*", ALL };
		r[0].protos[0] = 47;
		r[0].protos[1] = TK_WG_PROTO_TCP;
		r[0].protos[2] = TK_WG_PROTO_UDP;
		r[0].nprotos = 3;
		f = newf_rules(r, 1);
#define SHIELDS(pp) tk_wg_filter_in_shields_up(f, (pp).b, (pp).n)
		p = tcp(F->peer, 1, F->me, 22, SYN);
		CU_ASSERT_EQUAL(SHIELDS(p), DROP_RULE);
		IN_OK(f, p, TK_WG_WHY_TCP_RULE); /* the rules admit it */
		p = udp(F->peer, 1, F->me, 53);
		CU_ASSERT_EQUAL(SHIELDS(p), DROP_RULE);
		p = icmp(F->peer, F->me, i ? 128 : 8, 0);
		CU_ASSERT_EQUAL(SHIELDS(p), DROP_RULE);
		p = raw(47, F->peer, F->me, 8);
		CU_ASSERT_EQUAL(SHIELDS(p), DROP_RULE);
		p = tcp(F->peer, 1, F->stranger, 22, SYN);
		CU_ASSERT_EQUAL(SHIELDS(p), TK_WG_DROP_NOT_LOCAL);
		/* return traffic of our connections, and TSMP */
		p = tcp(F->peer, 22, F->me, 1, ACK);
		CU_ASSERT_EQUAL(SHIELDS(p), TK_WG_ACCEPT);
		p = icmp(F->peer, F->me, i ? 129 : 0, 0);
		CU_ASSERT_EQUAL(SHIELDS(p), TK_WG_ACCEPT);
		p = raw(TK_WG_PROTO_TSMP, F->peer, F->me, 8);
		CU_ASSERT_EQUAL(SHIELDS(p), TK_WG_ACCEPT);
		OUT(f, udp(F->me, 4000, F->peer, 7), TK_WG_ACCEPT);
		p = udp(F->peer, 7, F->me, 4000);
		CU_ASSERT_EQUAL(SHIELDS(p), TK_WG_ACCEPT);
#undef SHIELDS
		tk_wg_filter_free(f);
	}
	/* rules never set: nothing */
	tk_wg_filter *f = newf();
	set_locals(f, LOCAL);
	pk p = tcp(FAMS[0].peer, 22, FAMS[0].me, 1, ACK);
	CU_ASSERT_EQUAL(tk_wg_filter_in_shields_up(f, p.b, p.n),
	    TK_WG_DROP_NO_FILTER);
	tk_wg_filter_free(f);
}

static void
test_never_set(void)
{
	for (int i = 0; i < 2; i++) {
		const fam *F = &FAMS[i];
		tk_wg_filter *f = newf();

		set_locals(f, LOCAL);
		/* Go's NewAllowNone: everything past pre() is dropped */
		IN(f, tcp(F->peer, 1, F->me, 22, SYN), TK_WG_DROP_NO_FILTER);
		IN(f, tcp(F->peer, 22, F->me, 1, ACK), TK_WG_DROP_NO_FILTER);
		IN(f, icmp(F->peer, F->me, i ? 129 : 0, 0), TK_WG_DROP_NO_FILTER);
		IN(f, raw(TK_WG_PROTO_TSMP, F->peer, F->me, 8),
		    TK_WG_DROP_NO_FILTER);
		OUT(f, udp(F->me, 53, F->peer, 1), TK_WG_ACCEPT);
		IN(f, udp(F->peer, 1, F->me, 53), TK_WG_DROP_NO_FILTER);
		IN(f, tcp(F->peer, 22, F->stranger, 1, ACK), TK_WG_DROP_NO_FILTER);
		/* pre() still decides first */
		IN_OK(f, pk_empty(), TK_WG_WHY_KEEPALIVE);
		IN(f, udp(F->peer, 1, i ? "ff02::1" : "224.0.0.1", 2),
		    TK_WG_DROP_MULTICAST);
		IN(f, raw(0, F->peer, F->me, 8), TK_WG_DROP_MALFORMED);
		/* the flow recorded before the rules came still counts after */
		CU_ASSERT(tk_wg_filter_set_rules(f, NULL, 0) == 0);
		IN_OK(f, udp(F->peer, 1, F->me, 53), TK_WG_WHY_FLOW);
		tk_wg_filter_free(f);
	}
}

/* --- the cases of filter_test.go TestFilter, restated -------------------- */

static bool
go_cap(void *arg, int family, const uint8_t *src, const char *cap)
{
	static const uint8_t with[4] = { 10, 0, 0, 1 };

	(void)arg;
	return family == 4 && memcmp(src, with, 4) == 0 &&
	    strcmp(cap, "cap-hit-1234-ssh") == 0;
}

static void
test_go_table(void)
{
	static const trule r[] = {
		{ { "8.1.1.1", "8.2.2.2" },
		    { { "1.2.3.4", 22, 22 }, { "5.6.7.8", 23, 24 } }, { 0 }, 0 },
		{ { "9.1.1.1", "9.2.2.2" },
		    { { "1.2.3.4", 22, 22 }, { "5.6.7.8", 23, 24 } },
		    { TK_WG_PROTO_SCTP }, 1 },
		{ { "8.1.1.1", "8.2.2.2" }, { { "5.6.7.8", 27, 28 } }, { 0 }, 0 },
		{ { "2.2.2.2" }, { { "8.1.1.1", 22, 22 } }, { 0 }, 0 },
		{ { "0.0.0.0/0" }, { { "100.122.98.50", ALL } }, { 0 }, 0 },
		{ { "0.0.0.0/0" }, { { "0.0.0.0/0", 443, 443 } }, { 0 }, 0 },
		{ { "153.1.1.1", "153.1.1.2", "153.3.3.3" },
		    { { "1.2.3.4", 999, 999 } }, { 0 }, 0 },
		{ { "::1", "::2" },
		    { { "2001::1", 22, 22 }, { "2001::2", 22, 22 } }, { 0 }, 0 },
		{ { "::/0" }, { { "::/0", 443, 443 } }, { 0 }, 0 },
		{ { "0.0.0.0/0" }, { { "0.0.0.0/0", ALL } }, { 116 }, 1 },
		{ { "::/0" }, { { "::/0", ALL } }, { 116 }, 1 },
		{ { "cap:cap-hit-1234-ssh" }, { { "1.2.3.4", 22, 22 } }, { 0 }, 0 },
	};
	static const char *const local[] = { "100.122.98.50/32", "1.2.3.4/32",
		"5.6.7.8/32", "102.102.102.102/32", "119.119.119.119/32",
		"8.1.0.0/16", "2001::/16", NULL };
	static const struct {
		bool ok;
		uint8_t proto;
		const char *src, *dst;
		uint16_t dport;
	} c[] = {
		{ true, 6, "8.1.1.1", "1.2.3.4", 22 },
		{ true, 1, "8.1.1.1", "1.2.3.4", 0 },
		{ false, 6, "8.1.1.1", "1.2.3.4", 0 },
		{ false, 6, "8.1.1.1", "1.2.3.4", 21 },
		{ true, 6, "8.2.2.2", "1.2.3.4", 22 },
		{ false, 6, "8.2.2.2", "1.2.3.4", 23 },
		{ false, 6, "8.3.3.3", "1.2.3.4", 22 },
		{ true, 6, "8.1.1.1", "5.6.7.8", 23 },
		{ true, 6, "8.1.1.1", "5.6.7.8", 24 },
		{ false, 6, "8.1.1.3", "5.6.7.8", 24 },
		{ false, 6, "8.1.1.1", "5.6.7.8", 22 },
		{ true, 6, "17.34.51.68", "8.1.34.51", 443 },
		{ false, 6, "17.34.51.68", "8.1.34.51", 444 },
		{ true, 6, "17.34.51.68", "100.122.98.50", 999 },
		{ true, 6, "17.34.51.68", "100.122.98.50", 0 },
		{ true, 6, "::1", "2001::1", 22 },
		{ true, 58, "::1", "2001::1", 0 },
		{ true, 6, "::2", "2001::1", 22 },
		{ true, 6, "::2", "2001::2", 22 },
		{ false, 6, "::1", "2001::1", 23 },
		{ false, 6, "::1", "2001::3", 22 },
		{ false, 6, "::3", "2001::1", 22 },
		{ true, 6, "::1", "2001::1", 443 },
		{ false, 6, "::1", "2001::1", 444 },
		{ false, 6, "8.1.1.1", "16.32.48.64", 443 }, /* not local */
		{ false, 6, "1::", "2602::1", 443 },
		{ false, 132, "8.1.1.1", "1.2.3.4", 22 },
		{ true, 132, "9.1.1.1", "1.2.3.4", 22 },
		{ true, 116, "1.2.3.4", "5.6.7.8", 0 },
		{ true, 116, "2001::1", "2001::2", 0 },
		{ false, 127, "1.2.3.4", "5.6.7.8", 0 },
		{ false, 127, "2001::1", "2001::2", 0 },
		{ true, 6, "10.0.0.1", "1.2.3.4", 22 }, /* has the cap */
		{ false, 6, "10.0.0.2", "1.2.3.4", 22 },
	};
	tk_wg_filter *f = newf();
	int accepted = 0;

	CU_ASSERT_FATAL(set_trules(f, r, TK_ARRAY_LEN(r)) == 0);
	set_locals(f, local);
	tk_wg_filter_set_cap_cb(f, go_cap, NULL);
	for (size_t k = 0; k < TK_ARRAY_LEN(c); k++) {
		tk_wg_verdict want = c[k].ok ? TK_WG_ACCEPT : TK_WG_DROP_NO_RULE;
		pk p;

		if (strcmp(c[k].dst, "16.32.48.64") == 0 ||
		    strcmp(c[k].dst, "2602::1") == 0)
			want = TK_WG_DROP_NOT_LOCAL;
		switch (c[k].proto) {
		case 6:
			p = tcp(c[k].src, 1, c[k].dst, c[k].dport, SYN);
			/* Go checks UDP the same way */
			IN(f, udp(c[k].src, 1, c[k].dst, c[k].dport), want);
			break;
		case 132:
			p = udp_p(132, c[k].src, 1, c[k].dst, c[k].dport);
			break;
		case 1:
		case 58:
			p = icmp(c[k].src, c[k].dst, c[k].proto == 1 ? 8 : 128, 0);
			break;
		default:
			p = raw(c[k].proto, c[k].src, c[k].dst, 8);
		}
		IN(f, p, want);
		accepted += want == TK_WG_ACCEPT;
	}
	CU_ASSERT(accepted > 10);
	tk_wg_filter_free(f);
}

/* --- keepalives, truncation, bad headers, garbage ------------------------ */

static tk_wg_verdict
in_exact(tk_wg_filter *f, const uint8_t *b, size_t n)
{
	/* an exact-size heap copy, so ASan sees any over-read */
	uint8_t *c = malloc(n ? n : 1);
	tk_wg_verdict v;

	memcpy(c, b, n);
	v = tk_wg_filter_in(f, c, n);
	free(c);
	return v;
}

static tk_wg_verdict
out_exact(tk_wg_filter *f, const uint8_t *b, size_t n)
{
	uint8_t *c = malloc(n ? n : 1);
	tk_wg_verdict v;

	memcpy(c, b, n);
	v = tk_wg_filter_out(f, c, n);
	free(c);
	return v;
}

static void
test_keepalive(void)
{
	tk_wg_filter *f = newf();
	uint8_t b[1] = { 0x45 };

	IN_OK(f, pk_empty(), TK_WG_WHY_KEEPALIVE);
	OUT(f, pk_empty(), TK_WG_ACCEPT);
	CU_ASSERT_EQUAL(tk_wg_filter_in(f, b, 0), TK_WG_ACCEPT);
	CU_ASSERT_EQUAL(tk_wg_filter_in(f, NULL, 0), TK_WG_ACCEPT);
	CU_ASSERT_EQUAL(tk_wg_filter_in(f, b, 1), TK_WG_DROP_TOO_SHORT);
	tk_wg_filter_free(f);
}

/* Valid packets of every shape the parser follows. */
static size_t
valid_packets(pk *v)
{
	size_t n = 0;

	for (int i = 0; i < 2; i++) {
		const fam *F = &FAMS[i];

		v[n++] = tcp(F->peer, 1, F->me, 22, SYN);
		v[n++] = tcp(F->peer, 1, F->me, 22, ACK);
		v[n++] = udp(F->peer, 1, F->me, 53);
		v[n++] = udp_p(TK_WG_PROTO_SCTP, F->peer, 1, F->me, 53);
		v[n++] = icmp(F->peer, F->me, i ? 128 : 8, 0);
		v[n++] = icmp(F->peer, F->me, i ? 129 : 0, 0);
		v[n++] = raw(TK_WG_PROTO_TSMP, F->peer, F->me, 8);
		v[n++] = raw(47, F->peer, F->me, 8);
	}
	v[n++] = frag6(udp(FAMS[1].peer, 1, FAMS[1].me, 22), 0, true);
	v[n++] = frag6(udp(FAMS[1].peer, 1, FAMS[1].me, 22), 20, true);
	v[n++] = frag4(raw(TK_WG_PROTO_UDP, FAMS[0].peer, FAMS[0].me, 40), 20,
	    true);
	return n;
}

static tk_wg_filter *
allow_all(void)
{
	trule r[1];

	memset(r, 0, sizeof(r));
	r[0].src[0] = "*";
	r[0].dst[0] = (tdst){ "*", ALL };
	r[0].protos[0] = 6;
	r[0].protos[1] = 17;
	r[0].protos[2] = 1;
	r[0].protos[3] = 58;
	r[0].protos[4] = 132;
	r[0].protos[5] = 47;
	r[0].nprotos = 6;
	return newf_rules(r, 1);
}

static void
test_truncation(void)
{
	pk v[24];
	size_t nv = valid_packets(v);
	tk_wg_filter *f = allow_all();
	tk_wg_filter_stats s0, s1;
	uint64_t calls = 0;

	tk_wg_filter_stats_get(f, &s0);
	for (size_t k = 0; k < nv; k++) {
		/* the whole packet passes this filter ... */
		CU_ASSERT_EQUAL(in_exact(f, v[k].b, v[k].n), TK_WG_ACCEPT);
		calls++;
		/* ... every proper prefix of it is dropped */
		for (size_t len = 1; len < v[k].n; len++) {
			tk_wg_verdict want = len < 20 ? TK_WG_DROP_TOO_SHORT :
							TK_WG_DROP_MALFORMED;
			tk_wg_verdict got = in_exact(f, v[k].b, len);

			if (got != want)
				fprintf(stderr, "\n  packet %zu cut to %zu: %s\n", k,
				    len, tk_wg_verdict_name(got));
			CU_ASSERT_EQUAL(got, want);
			CU_ASSERT_EQUAL(out_exact(f, v[k].b, len), want);
			calls++;
		}
		/* WireGuard pads to 16 bytes: trailing bytes are ignored */
		for (size_t pad = 1; pad <= 16; pad++) {
			pk p = v[k];

			memset(p.b + p.n, 0xee, pad);
			CU_ASSERT_EQUAL(in_exact(f, p.b, p.n + pad), TK_WG_ACCEPT);
			calls++;
		}
	}
	tk_wg_filter_stats_get(f, &s1);
	{
		uint64_t sum = 0;

		for (int k = 0; k < TK_WG_VERDICT_COUNT; k++)
			sum += s1.fs_in[k] - s0.fs_in[k];
		CU_ASSERT_EQUAL(sum, calls);
		CU_ASSERT(s1.fs_in[TK_WG_DROP_TOO_SHORT] -
			s0.fs_in[TK_WG_DROP_TOO_SHORT] == nv * 19);
	}
	tk_wg_filter_free(f);
}

static void
test_bad_headers(void)
{
	tk_wg_filter *f = allow_all();
	const fam *F4 = &FAMS[0], *F6 = &FAMS[1];
	pk p;

	/* IP versions other than 4 and 6 */
	for (unsigned ver = 0; ver < 16; ver++) {
		if (ver == 4 || ver == 6)
			continue;
		p = tcp(F4->peer, 1, F4->me, 22, SYN);
		p.b[0] = (uint8_t)(ver << 4 | 5);
		IN(f, p, TK_WG_DROP_MALFORMED);
		OUT(f, p, TK_WG_DROP_MALFORMED);
		p = tcp(F6->peer, 1, F6->me, 22, SYN);
		p.b[0] = (uint8_t)(ver << 4);
		IN(f, p, TK_WG_DROP_MALFORMED);
	}
	/* IHL below 5: refused (packet.go would read ports from the IP
	 * header; the stack behind us refuses such packets anyway) */
	for (unsigned ihl = 0; ihl < 5; ihl++) {
		p = tcp(F4->peer, 1, F4->me, 22, SYN);
		p.b[0] = (uint8_t)(0x40 | ihl);
		IN(f, p, TK_WG_DROP_MALFORMED);
	}
	/* IHL past the total length */
	p = tcp(F4->peer, 1, F4->me, 22, SYN); /* total 44 */
	p.b[0] = 0x4c;			       /* 48 */
	IN(f, p, TK_WG_DROP_MALFORMED);
	p.b[0] = 0x4b; /* 44: header fills it, no room for TCP */
	IN(f, p, TK_WG_DROP_MALFORMED);
	/* IHL 6: four bytes of options, then the TCP header */
	{
		uint8_t l4[24] = { 0 };

		p = tcp(F4->peer, 1, F4->me, 22, SYN);
		memcpy(l4, p.b + 20, 20);
		memmove(p.b + 24, p.b + 20, p.n - 20);
		memset(p.b + 20, 1, 4); /* NOPs */
		p.b[0] = 0x46;
		p.n += 4;
		tk_be16_store(p.b + 2, (uint16_t)p.n);
		IN(f, p, TK_WG_ACCEPT);
		/* the SYN is read at the right offset: with no rules, dropped */
		{
			tk_wg_filter *g = newf_rules(NULL, 0);

			IN(g, p, TK_WG_DROP_NO_RULE);
			p.b[24 + 13] = ACK;
			IN(g, p, TK_WG_ACCEPT);
			tk_wg_filter_free(g);
		}
	}
	/* total length: longer than the bytes, shorter than the header */
	p = tcp(F4->peer, 1, F4->me, 22, SYN);
	for (unsigned tl = 0; tl < 20; tl++) {
		tk_be16_store(p.b + 2, (uint16_t)tl);
		IN(f, p, TK_WG_DROP_MALFORMED);
	}
	tk_be16_store(p.b + 2, (uint16_t)(p.n + 1));
	IN(f, p, TK_WG_DROP_MALFORMED);
	tk_be16_store(p.b + 2, 0xffff);
	IN(f, p, TK_WG_DROP_MALFORMED);
	/* shorter than the transport header needs: the bytes past the IP
	 * length are padding, not TCP (stricter than packet.go, which reads
	 * to the end of the buffer) */
	tk_be16_store(p.b + 2, 20 + 19);
	IN(f, p, TK_WG_DROP_MALFORMED);
	tk_be16_store(p.b + 2, 20 + 20);
	IN(f, p, TK_WG_ACCEPT);
	/* IPv6 payload length */
	p = udp(F6->peer, 1, F6->me, 53);
	tk_be16_store(p.b + 4, (uint16_t)(p.n - 40 + 1));
	IN(f, p, TK_WG_DROP_MALFORMED);
	tk_be16_store(p.b + 4, 7);
	IN(f, p, TK_WG_DROP_MALFORMED);
	tk_be16_store(p.b + 4, 0);
	IN(f, p, TK_WG_DROP_MALFORMED);
	tk_be16_store(p.b + 4, 8);
	IN(f, p, TK_WG_ACCEPT);
	/* an IPv6 header cut anywhere past 20 bytes */
	p = udp(F6->peer, 1, F6->me, 53);
	for (size_t len = 20; len < 40; len++)
		CU_ASSERT_EQUAL(in_exact(f, p.b, len), TK_WG_DROP_MALFORMED);
	tk_wg_filter_free(f);
}

static uint64_t xs = 0x9e3779b97f4a7c15ull;

static uint64_t
xr(void)
{
	xs ^= xs << 13;
	xs ^= xs >> 7;
	xs ^= xs << 17;
	return xs;
}

static void
test_garbage(void)
{
	tk_wg_filter *f = allow_all();
	pk v[24];
	size_t nv = valid_packets(v);
	uint64_t calls = 0, accepted = 0, sum = 0;
	tk_wg_filter_stats st;

	for (int it = 0; it < 30000; it++) {
		uint8_t b[200];
		size_t n = xr() % sizeof(b);
		tk_wg_verdict vi, vo;

		if (it % 2 == 0) {
			/* random bytes, often with a plausible first byte */
			for (size_t k = 0; k < n; k++)
				b[k] = (uint8_t)xr();
			if (n > 0 && it % 4 == 0)
				b[0] = (xr() & 1) ? 0x45 : 0x60;
		} else {
			/* a valid packet with a few bytes changed */
			const pk *base = &v[xr() % nv];

			n = base->n;
			memcpy(b, base->b, n);
			for (int k = (int)(xr() % 4); k >= 0; k--)
				b[xr() % n] = (uint8_t)xr();
		}
		vi = in_exact(f, b, n);
		vo = out_exact(f, b, n);
		CU_ASSERT((unsigned)vi < TK_WG_VERDICT_COUNT);
		CU_ASSERT((unsigned)vo < TK_WG_VERDICT_COUNT);
		calls++;
		accepted += vi == TK_WG_ACCEPT;
	}
	tk_wg_filter_stats_get(f, &st);
	for (int k = 0; k < TK_WG_VERDICT_COUNT; k++)
		sum += st.fs_in[k];
	CU_ASSERT_EQUAL(sum, calls);
	CU_ASSERT_EQUAL(st.fs_in[TK_WG_ACCEPT], accepted);
	sum = 0;
	for (int k = 0; k < TK_WG_WHY_COUNT; k++)
		sum += st.fs_accept_why[k];
	CU_ASSERT_EQUAL(sum, accepted);
	/* the mutations reach deep enough to be accepted sometimes */
	CU_ASSERT(accepted > 1000);
	CU_ASSERT(st.fs_in[TK_WG_DROP_MALFORMED] > 1000);
	tk_wg_filter_free(f);
}

static void
test_names(void)
{
	for (int i = 0; i < TK_WG_VERDICT_COUNT; i++) {
		const char *a = tk_wg_verdict_name((tk_wg_verdict)i);

		CU_ASSERT(a != NULL && strcmp(a, "?") != 0);
		for (int j = 0; j < i; j++)
			CU_ASSERT(strcmp(a, tk_wg_verdict_name((tk_wg_verdict)j)) != 0);
	}
	for (int i = 0; i < TK_WG_WHY_COUNT; i++) {
		const char *a = tk_wg_accept_why_name((tk_wg_accept_why)i);

		CU_ASSERT(a != NULL && strcmp(a, "?") != 0);
		for (int j = 0; j < i; j++)
			CU_ASSERT(strcmp(a,
			    tk_wg_accept_why_name((tk_wg_accept_why)j)) != 0);
	}
	CU_ASSERT_STRING_EQUAL(tk_wg_verdict_name(TK_WG_VERDICT_COUNT), "?");
	CU_ASSERT_STRING_EQUAL(tk_wg_verdict_name((tk_wg_verdict)-1), "?");
	CU_ASSERT_STRING_EQUAL(tk_wg_accept_why_name(TK_WG_WHY_COUNT), "?");
	CU_ASSERT_STRING_EQUAL(tk_wg_verdict_name(TK_WG_ACCEPT), "accept");
	CU_ASSERT_STRING_EQUAL(tk_wg_verdict_name(TK_WG_DROP_NO_RULE),
	    "no_rule");
}

/* --- API errors ---------------------------------------------------------- */

/* The filter still has the rules and locals newf_rules gave it. */
static void
still_works(tk_wg_filter *f, int line)
{
	tk_wg_verdict a = tk_wg_filter_in(f, tcp(FAMS[0].peer, 1, FAMS[0].me, 22,
	    SYN).b, 64);
	tk_wg_verdict b = tk_wg_filter_in(f, tcp(FAMS[0].other, 1, FAMS[0].me, 22,
	    SYN).b, 64);
	tk_wg_verdict c = tk_wg_filter_in(f, tcp(FAMS[0].peer, 1, FAMS[0].me2, 22,
	    SYN).b, 64);

	CU_assertImplementation(a == TK_WG_ACCEPT && b == TK_WG_DROP_NO_RULE &&
		c == TK_WG_DROP_NO_RULE, (unsigned)line, "old rules kept",
	    __FILE__, "", CU_FALSE);
}

static tk_wg_filter *
base_filter(void)
{
	trule r[1];

	memset(r, 0, sizeof(r));
	r[0].src[0] = FAMS[0].peer;
	r[0].dst[0] = (tdst){ FAMS[0].me, 22, 22 };
	return newf_rules(r, 1);
}

static void
test_set_rules_errors(void)
{
	tk_wg_ipmatch good = m_of("10.0.0.0/8"), bad;
	tk_wg_portrange dst = { m_of("100.64.0.1"), 1, 2 }, bdst;
	uint32_t proto = 6;
	tk_wg_filter *f = base_filter();

	still_works(f, __LINE__);
	for (int k = 0; k < 17; k++) {
		tk_wg_rule r = { &good, 1, &dst, 1, NULL, 0 };
		const tk_wg_rule *rp = &r;
		size_t n = 1;

		bad = good;
		bdst = dst;
		switch (k) {
		case 0: rp = NULL; break;
		case 1: r.r_src = NULL; break;
		case 2: r.r_dst = NULL; break;
		case 3: r.r_protos = NULL; r.r_nprotos = 1; break;
		case 4: bad.im_kind = (tk_wg_ipmatch_kind)77; r.r_src = &bad; break;
		case 5: bad.im_prefix.pf_family = 5; r.r_src = &bad; break;
		case 6: bad.im_prefix.pf_bits = 33; r.r_src = &bad; break;
		case 7: bad = m_of("::/0"); bad.im_prefix.pf_bits = 129; r.r_src = &bad; break;
		case 8: bad.im_prefix.pf_addr[3] = 1; r.r_src = &bad; break;
		case 9: bad = m_of("10.0.0.1-10.0.0.2"); bad.im_range.rg_last[3] = 0;
			r.r_src = &bad; break;
		case 10: bad = m_of("10.0.0.1-10.0.0.2"); bad.im_range.rg_family = 0;
			r.r_src = &bad; break;
		case 11: bad.im_kind = TK_WG_IPM_CAP; bad.im_cap = NULL;
			r.r_src = &bad; break;
		case 12: bdst.pr_ip = m_of("cap:x"); r.r_dst = &bdst; break;
		case 13: bdst.pr_ip.im_prefix.pf_bits = 24; r.r_dst = &bdst; break;
		case 14: bdst.pr_ip.im_prefix.pf_family = 0; r.r_dst = &bdst; break;
		case 15: bdst.pr_ip.im_kind = (tk_wg_ipmatch_kind)-1; r.r_dst = &bdst;
			break;
		case 16: bad.im_prefix.pf_addr[3] = 1; r.r_src = &bad; n = 1;
			break;
		}
		(void)proto;
		CU_ASSERT_EQUAL(tk_wg_filter_set_rules(f, rp, n), TK_EINVAL);
		if (strlen(tk_wg_filter_error(f)) < 10)
			fprintf(stderr, "\n  case %d: no message\n", k);
		CU_ASSERT(strlen(tk_wg_filter_error(f)) >= 10);
		still_works(f, __LINE__);
	}
	/* a message says where: the 3rd rule's 2nd source */
	{
		tk_wg_ipmatch s[2] = { good, good };
		tk_wg_rule r[3] = { { &good, 1, &dst, 1, NULL, 0 },
			{ &good, 1, &dst, 1, NULL, 0 }, { s, 2, &dst, 1, NULL, 0 } };

		s[1].im_prefix.pf_addr[2] = 1;
		CU_ASSERT_EQUAL(tk_wg_filter_set_rules(f, r, 3), TK_EINVAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(tk_wg_filter_error(f),
		    "rule 2: src 1: prefix has host bits set"));
		still_works(f, __LINE__);
		/* success clears it */
		CU_ASSERT_EQUAL(tk_wg_filter_set_local(f, NULL, 0), 0);
		CU_ASSERT_STRING_EQUAL(tk_wg_filter_error(f), "");
		set_locals(f, LOCAL);
	}
	/* set_local */
	{
		tk_wg_prefix p = pfx("100.64.0.1");

		CU_ASSERT_EQUAL(tk_wg_filter_set_local(f, NULL, 1), TK_EINVAL);
		p.pf_family = 0;
		CU_ASSERT_EQUAL(tk_wg_filter_set_local(f, &p, 1), TK_EINVAL);
		p = pfx("100.64.0.1");
		p.pf_bits = 33;
		CU_ASSERT_EQUAL(tk_wg_filter_set_local(f, &p, 1), TK_EINVAL);
		CU_ASSERT(strstr(tk_wg_filter_error(f), "/33") != NULL);
		p = pfx("::");
		p.pf_bits = 129;
		CU_ASSERT_EQUAL(tk_wg_filter_set_local(f, &p, 1), TK_EINVAL);
		still_works(f, __LINE__);
	}
	tk_wg_filter_free(f);
	tk_wg_filter_free(NULL);
}

/* --- allocation failures ------------------------------------------------- */

static uint64_t
live_allocs(void)
{
	tk_alloc_stats st;

	tk_alloc_stats_get(&st);
	return st.as_allocs - st.as_frees;
}

static bool
injecting(void)
{
	bool on;

	tk_fault_arm(1);
	on = tk_fault_hit("probe");
	tk_fault_disarm();
	return on;
}

static void
test_fault_new(void)
{
	uint64_t live0 = live_allocs();
	tk_wg_filter *f = (tk_wg_filter *)(void *)&live0;
	int rv;
	bool fired;

	if (!injecting()) {
		tk_test_skip("fault injection not compiled in");
		return;
	}
	tk_fault_arm(1);
	rv = tk_wg_filter_new(&f, &frng.fr_rng);
	fired = tk_fault_fired();
	tk_fault_disarm();
	if (fired) {
		CU_ASSERT_EQUAL(rv, TK_ENOMEM);
		CU_ASSERT_PTR_EQUAL(f, (void *)&live0);
	} else {
		CU_ASSERT_FATAL(rv == 0);
		CU_ASSERT(!injecting());
		tk_wg_filter_free(f);
	}
	CU_ASSERT_EQUAL(live_allocs(), live0);
}

static void
test_fault_sweep(void)
{
	uint64_t live0 = live_allocs();
	int fired_total = 0;
	trule r[2];

	if (!injecting()) {
		tk_test_skip("fault injection not compiled in");
		return;
	}
	memset(r, 0, sizeof(r));
	r[0].src[0] = "*";
	r[0].src[1] = "cap:ssh";
	r[0].dst[0] = (tdst){ "*", 80, 80 };
	r[1].src[0] = FAMS[1].peer;
	r[1].dst[0] = (tdst){ FAMS[1].me, ALL };
	for (int op = 0; op < 3; op++) {
		bool done = false;

		for (unsigned long n = 1; n < 8 && !done; n++) {
			tk_wg_filter *f = base_filter();
			static const char *const l2[] = { "100.64.0.1/32",
				"100.64.0.99/32", NULL };
			tk_wg_prefix lp[2] = { pfx(l2[0]), pfx(l2[1]) };
			int rv;
			bool fired;

			tk_fault_arm(n);
			if (op == 0)
				rv = set_trules(f, r, 2);
			else if (op == 1)
				rv = tk_wg_filter_set_rules(f, NULL, 0);
			else
				rv = tk_wg_filter_set_local(f, lp, 2);
			fired = tk_fault_fired();
			tk_fault_disarm();
			if (fired) {
				fired_total++;
				CU_ASSERT_EQUAL(rv, TK_ENOMEM);
				CU_ASSERT(strlen(tk_wg_filter_error(f)) > 0);
				still_works(f, __LINE__);
				IN(f, tcp(FAMS[0].peer, 1, "100.64.0.99", 22, SYN),
				    TK_WG_DROP_NOT_LOCAL);
			} else {
				CU_ASSERT_EQUAL(rv, 0);
				done = true;
				if (op == 0) {
					IN(f, tcp(FAMS[0].other, 1, FAMS[0].me, 80,
						  SYN), TK_WG_ACCEPT);
					IN(f, tcp(FAMS[1].peer, 1, FAMS[1].me, 9,
						  SYN), TK_WG_ACCEPT);
				} else if (op == 1) {
					IN(f, tcp(FAMS[0].peer, 1, FAMS[0].me, 22,
						  SYN), TK_WG_DROP_NO_RULE);
				} else {
					IN(f, tcp(FAMS[0].peer, 1, "100.64.0.99",
						  22, SYN), TK_WG_DROP_NO_RULE);
				}
			}
			tk_wg_filter_free(f);
		}
		CU_ASSERT(done);
	}
	CU_ASSERT_EQUAL(fired_total, 3); /* one allocation per call */
	CU_ASSERT_EQUAL(live_allocs(), live0);
}

/* --- a randomized oracle over many rules ---------------------------------- */

/* Address x of family fi: IPv4 x, or IPv6 fd00::<x>. */
static void
put_addr(int fi, uint32_t x, uint8_t *a)
{
	memset(a, 0, 16);
	if (fi == 0) {
		tk_be32_store(a, x);
	} else {
		a[0] = 0xfd;
		tk_be32_store(a + 12, x);
	}
}

typedef struct orule {
	uint32_t slo[14], shi[14];
	size_t ns;
	uint32_t dlo[4], dhi[4];
	uint16_t pf[4], pl[4];
	size_t nd;
	uint32_t protos[2];
	size_t np;
} orule;

static bool
o_proto(const orule *r, uint8_t p)
{
	if (r->np == 0)
		return p == 6 || p == 17 || p == 1 || p == 58;
	for (size_t i = 0; i < r->np; i++)
		if (r->protos[i] == p)
			return true;
	return false;
}

static bool
o_src(const orule *r, uint32_t s)
{
	for (size_t i = 0; i < r->ns; i++)
		if (s >= r->slo[i] && s <= r->shi[i])
			return true;
	return false;
}

/* mode 0: TCP SYN, 1: ICMP echo request, 2: protocol 47 */
static bool
oracle(const orule *r, size_t n, int mode, uint32_t s, uint32_t d, uint16_t dp)
{
	for (size_t i = 0; i < n; i++) {
		if (mode != 1 && !o_proto(&r[i], mode == 0 ? 6 : 47))
			continue;
		if (!o_src(&r[i], s))
			continue;
		for (size_t j = 0; j < r[i].nd; j++) {
			if (d < r[i].dlo[j] || d > r[i].dhi[j])
				continue;
			if (mode == 1 ||
			    (mode == 0 && dp >= r[i].pf[j] && dp <= r[i].pl[j]) ||
			    (mode == 2 && r[i].pf[j] == 0 && r[i].pl[j] == 65535))
				return true;
		}
	}
	return false;
}

static void
test_oracle(void)
{
	enum { NR = 60, PKTS = 20000 };
	static orule o[NR];
	static tk_wg_ipmatch srcs[NR][14];
	static tk_wg_portrange dsts[NR][4];
	static tk_wg_rule rules[NR];
	const uint32_t S0 = 0x0a000000, D0 = 0x64400000; /* 10/8, 100.64/10 */
	uint64_t agree[2] = { 0, 0 };

	for (int fi = 0; fi < 2; fi++) {
		tk_wg_filter *f = newf();
		tk_wg_prefix local;

		for (size_t i = 0; i < NR; i++) {
			orule *r = &o[i];

			memset(r, 0, sizeof(*r));
			r->ns = 1 + xr() % 14;
			for (size_t j = 0; j < r->ns; j++) {
				tk_wg_ipmatch *m = &srcs[i][j];
				uint32_t base = S0 + (uint32_t)(xr() % 1024);

				memset(m, 0, sizeof(*m));
				if (xr() % 2) {
					unsigned bits = 22 + (unsigned)(xr() % 11);
					uint32_t mask = ~(uint32_t)(0xffffffffull >> bits);

					base &= mask;
					r->slo[j] = base;
					r->shi[j] = base | ~mask;
					m->im_kind = TK_WG_IPM_PREFIX;
					m->im_prefix.pf_family = fi ? 6 : 4;
					m->im_prefix.pf_bits =
					    (uint8_t)(fi ? 96 + bits : bits);
					put_addr(fi, base, m->im_prefix.pf_addr);
				} else {
					r->slo[j] = base;
					r->shi[j] = base + (uint32_t)(xr() % 40);
					m->im_kind = TK_WG_IPM_RANGE;
					m->im_range.rg_family = fi ? 6 : 4;
					put_addr(fi, r->slo[j], m->im_range.rg_first);
					put_addr(fi, r->shi[j], m->im_range.rg_last);
				}
			}
			r->nd = 1 + xr() % 4;
			for (size_t j = 0; j < r->nd; j++) {
				tk_wg_portrange *d = &dsts[i][j];
				uint32_t a = D0 + (uint32_t)(xr() % 8);

				memset(d, 0, sizeof(*d));
				d->pr_ip.im_kind = TK_WG_IPM_PREFIX;
				d->pr_ip.im_prefix.pf_family = fi ? 6 : 4;
				if (xr() % 4 == 0) {
					a &= ~3u;
					r->dlo[j] = a;
					r->dhi[j] = a + 3;
					d->pr_ip.im_prefix.pf_bits = fi ? 126 : 30;
				} else {
					r->dlo[j] = r->dhi[j] = a;
					d->pr_ip.im_prefix.pf_bits = fi ? 128 : 32;
				}
				put_addr(fi, a, d->pr_ip.im_prefix.pf_addr);
				if (xr() % 5 == 0) {
					r->pf[j] = 0;
					r->pl[j] = 65535;
				} else {
					r->pf[j] = (uint16_t)(xr() % 50);
					r->pl[j] = (uint16_t)(r->pf[j] + xr() % 20);
				}
				d->pr_first = r->pf[j];
				d->pr_last = r->pl[j];
			}
			switch (xr() % 4) {
			case 0:
				r->np = 1;
				r->protos[0] = 6;
				break;
			case 1:
				r->np = 2;
				r->protos[0] = 17;
				r->protos[1] = 47;
				break;
			default:
				r->np = 0;
			}
			rules[i] = (tk_wg_rule){ srcs[i], r->ns, dsts[i], r->nd,
				r->protos, r->np };
		}
		CU_ASSERT_FATAL(tk_wg_filter_set_rules(f, rules, NR) == 0);
		memset(&local, 0, sizeof(local));
		local.pf_family = fi ? 6 : 4;
		local.pf_bits = fi ? 8 : 10;
		put_addr(fi, D0, local.pf_addr);
		CU_ASSERT_FATAL(tk_wg_filter_set_local(f, &local, 1) == 0);

		for (int k = 0; k < PKTS; k++) {
			uint32_t s = S0 + (uint32_t)(xr() % 1100);
			uint32_t d = D0 + (uint32_t)(xr() % 8);
			uint16_t dp = (uint16_t)(xr() % 72);
			int mode = (int)(xr() % 3);
			char sa[64], da[64];
			uint8_t a[16];
			bool want;
			tk_wg_verdict got;
			pk p;

			put_addr(fi, s, a);
			inet_ntop(fi ? AF_INET6 : AF_INET, a, sa, sizeof(sa));
			put_addr(fi, d, a);
			inet_ntop(fi ? AF_INET6 : AF_INET, a, da, sizeof(da));
			if (mode == 0)
				p = tcp(sa, 1, da, dp, SYN);
			else if (mode == 1)
				p = icmp(sa, da, fi ? 128 : 8, 0);
			else
				p = raw(47, sa, da, 8);
			want = oracle(o, NR, mode, s, d, dp);
			got = tk_wg_filter_in(f, p.b, p.n);
			if (got != (want ? TK_WG_ACCEPT : TK_WG_DROP_NO_RULE)) {
				fprintf(stderr, "\n  oracle: mode %d %s -> %s:%u: %s\n",
				    mode, sa, da, dp, tk_wg_verdict_name(got));
				CU_FAIL("filter disagrees with the oracle");
				break;
			}
			agree[want]++;
		}
		tk_wg_filter_free(f);
	}
	/* both outcomes are well represented */
	fprintf(stderr, "oracle: %llu accepted, %llu dropped\n",
	    (unsigned long long)agree[1], (unsigned long long)agree[0]);
	CU_ASSERT(agree[0] > 4000 && agree[1] > 4000);
}

void
register_filter(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_parse),
		TK_TEST(test_sources),
		TK_TEST(test_source_sets),
		TK_TEST(test_families),
		TK_TEST(test_ports),
		TK_TEST(test_protocols),
		TK_TEST(test_protocols_reserved),
		TK_TEST(test_tcp),
		TK_TEST(test_udp_flows),
		TK_TEST(test_flow_lru),
		TK_TEST(test_icmp),
		TK_TEST(test_fragments),
		TK_TEST(test_other_protocols),
		TK_TEST(test_local),
		TK_TEST(test_multicast_link_local),
		TK_TEST(test_deny_all),
		TK_TEST(test_shields_up),
		TK_TEST(test_never_set),
		TK_TEST(test_go_table),
		TK_TEST(test_keepalive),
		TK_TEST(test_truncation),
		TK_TEST(test_bad_headers),
		TK_TEST(test_garbage),
		TK_TEST(test_names),
		TK_TEST(test_set_rules_errors),
		TK_TEST(test_fault_new),
		TK_TEST(test_fault_sweep),
		TK_TEST(test_oracle),
		TK_TEST_END,
	};

	tk_test_suite("wg_filter", cases);
}
