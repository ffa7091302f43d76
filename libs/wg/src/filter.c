/*
 * wgd's packet filter: tailcfg FilterRule semantics as wgengine/filter
 * applies them (see tk/wg_filter.h for the decision order).
 *
 * Rules are compiled per address family into one allocation: every address
 * set becomes sorted, merged inclusive ranges of 128-bit integers (IPv4 is
 * the low 32 bits), so prefixes, "*" and a-b ranges match alike.  The UDP
 * flow table is fixed: TK_WG_FILTER_FLOWS slots, a keyed hash over index
 * chains and an LRU list, all inside the filter object.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk/wg_filter.h"

#define PROTO_UNKNOWN  0x00 /* ipproto.Unknown: a Decode failure */
#define PROTO_IGMP     2
#define PROTO_IP6_FRAG 44   /* IPv6 Fragment extension header */
#define PROTO_FRAGMENT 0xff /* ipproto.Fragment: a later fragment */

#define IP4_HDR	   20
#define IP6_HDR	   40
#define IP6_FRAG   8
#define TCP_HDR	   20
#define UDP_HDR	   8
#define SCTP_HDR   12
#define ICMP_HDR   4  /* packet.go icmp4HeaderLength/icmp6HeaderLength */
#define IGMP_HDR   8
#define TSMP_MIN   7  /* tsmp.go minTSMPSize */
#define TCP_SYN	   0x02
#define TCP_ACK	   0x10
/* packet.go minFragBlks: later fragments may not start inside the first
 * 60 + 20 bytes (max IPv4 header + TCP header; RFC 1858), in 8-byte units. */
#define MIN_FRAG_BLKS ((60 + 20) / 8)

#define NO_IDX	     0xffffu
#define FLOW_BUCKETS 1024u /* power of two, >= 2 * TK_WG_FILTER_FLOWS */
#define NO_VERDICT   TK_WG_VERDICT_COUNT
#define LINEAR_MAX   8 /* range sets up to this size are scanned, not bisected */

_Static_assert(TK_WG_FILTER_FLOWS < NO_IDX, "flow index must fit uint16_t");
_Static_assert((FLOW_BUCKETS & (FLOW_BUCKETS - 1)) == 0, "power of two");

typedef struct a128 {
	uint64_t hi, lo;
} a128;

typedef struct arange {
	a128 ar_lo, ar_hi; /* inclusive */
} arange;

typedef struct cdst {
	arange cd_net;
	uint16_t cd_first, cd_last;
} cdst;

typedef struct crule {
	uint32_t cr_src, cr_nsrc; /* into cf_srcs: sorted, merged */
	uint32_t cr_cap, cr_ncap; /* into cf_caps */
	uint32_t cr_dst, cr_ndst; /* into cf_dsts */
	uint8_t cr_protos[32];	  /* bitmap of IP protocol numbers */
} crule;

typedef struct cfamily {
	crule *cf_rules;
	size_t cf_nrules;
	arange *cf_srcs;
	cdst *cf_dsts;
	const char **cf_caps;
} cfamily;

/* One allocation: this header, then the arrays, then the cap strings. */
typedef struct ruleset {
	cfamily rs_fam[2]; /* [0] IPv4, [1] IPv6 */
} ruleset;

typedef struct flow {
	uint64_t fl_key[5];
	uint16_t fl_hnext; /* next in the bucket chain */
	uint16_t fl_newer, fl_older;
} flow;

struct tk_wg_filter {
	ruleset *f_rules; /* NULL: never set */
	arange *f_local;  /* IPv4 ranges, then IPv6 */
	size_t f_nlocal[2];
	tk_wg_filter_cap_fn f_has_cap;
	void *f_cap_arg;
	uint64_t f_seed[2];
	uint16_t f_newest, f_oldest;
	uint32_t f_nflows;
	uint16_t f_buckets[FLOW_BUCKETS];
	flow f_flows[TK_WG_FILTER_FLOWS];
	tk_wg_filter_stats f_stats;
	char f_err[192];
};

/* A decoded packet: only what the filter looks at. */
typedef struct pkt {
	int p_fi; /* 0: IPv4, 1: IPv6 */
	uint8_t p_proto;
	uint8_t p_flags; /* TCP */
	uint16_t p_sport, p_dport;
	const uint8_t *p_src, *p_dst;
	const uint8_t *p_l4; /* transport header */
	size_t p_l4len;	     /* bytes of it up to the IP total length */
} pkt;

/* --- 128-bit address arithmetic ------------------------------------------ */

static a128
addr_load(int fi, const uint8_t *a)
{
	a128 r;

	if (fi == 0) {
		r.hi = 0;
		r.lo = tk_be32_load(a);
	} else {
		r.hi = tk_be64_load(a);
		r.lo = tk_be64_load(a + 8);
	}
	return r;
}

static bool
a_le(a128 a, a128 b)
{
	return a.hi < b.hi || (a.hi == b.hi && a.lo <= b.lo);
}

static bool
a_lt(a128 a, a128 b)
{
	return a.hi < b.hi || (a.hi == b.hi && a.lo < b.lo);
}

static a128
family_max(int fi)
{
	a128 r = { fi ? UINT64_MAX : 0, fi ? UINT64_MAX : 0xffffffffu };

	return r;
}

/* Host-part mask of a /bits prefix in family fi. */
static a128
host_mask(int fi, unsigned bits)
{
	a128 m = family_max(fi);

	if (fi == 0) {
		m.lo = bits >= 32 ? 0 : 0xffffffffu >> bits;
		return m;
	}
	m.hi = bits >= 64 ? 0 : UINT64_MAX >> bits;
	m.lo = bits >= 128 ? 0 : bits <= 64 ? UINT64_MAX : UINT64_MAX >> (bits - 64);
	return m;
}

static bool
range_has(const arange *r, a128 a)
{
	return a_le(r->ar_lo, a) && a_le(a, r->ar_hi);
}

/* Does the sorted, disjoint set v[0..n) contain a? */
static bool
set_has(const arange *v, size_t n, a128 a)
{
	size_t lo = 0, hi = n;

	if (n <= LINEAR_MAX) {
		for (size_t i = 0; i < n; i++)
			if (range_has(&v[i], a))
				return true;
		return false;
	}
	/* the last range starting at or below a is the only candidate */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (a_le(v[mid].ar_lo, a))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo > 0 && a_le(a, v[lo - 1].ar_hi);
}

static int
range_cmp(const void *x, const void *y)
{
	const arange *a = x, *b = y;

	if (a_lt(a->ar_lo, b->ar_lo))
		return -1;
	return a_lt(b->ar_lo, a->ar_lo);
}

/* Sorts v and merges overlapping or adjacent ranges; returns the new n. */
static size_t
set_normalize(arange *v, size_t n)
{
	size_t out = 0;

	if (n < 2)
		return n;
	qsort(v, n, sizeof(*v), range_cmp);
	for (size_t i = 1; i < n; i++) {
		arange *last = &v[out];
		a128 next = last->ar_hi;

		/* next = last.hi + 1; an all-ones hi absorbs everything */
		if (++next.lo == 0 && ++next.hi == 0)
			continue;
		if (a_le(v[i].ar_lo, next)) {
			if (a_lt(last->ar_hi, v[i].ar_hi))
				last->ar_hi = v[i].ar_hi;
		} else {
			v[++out] = v[i];
		}
	}
	return out + 1;
}

/* --- packet decoding (net/packet/packet.go Decode) ----------------------- */

static size_t
alen(int fi)
{
	return fi == 0 ? 4 : 16;
}

/* The transport header of a first fragment or whole packet. */
static bool
decode_l4(pkt *p)
{
	const uint8_t *l = p->p_l4;

	switch (p->p_proto) {
	case TK_WG_PROTO_TCP:
		if (p->p_l4len < TCP_HDR)
			return false;
		p->p_flags = l[13];
		break;
	case TK_WG_PROTO_UDP:
	case TK_WG_PROTO_SCTP:
		if (p->p_l4len <
		    (p->p_proto == TK_WG_PROTO_UDP ? UDP_HDR : SCTP_HDR))
			return false;
		break;
	case TK_WG_PROTO_TSMP:
		return p->p_l4len >= TSMP_MIN;
	case PROTO_UNKNOWN:
	case PROTO_FRAGMENT: /* never real: suspicious */
		return false;
	default:
		/* ICMP of the packet's own family and IGMP in IPv4 need their
		 * header; anything else is passed on unparsed. */
		if (p->p_proto == (p->p_fi ? TK_WG_PROTO_ICMP6 : TK_WG_PROTO_ICMP4))
			return p->p_l4len >= ICMP_HDR;
		if (p->p_fi == 0 && p->p_proto == PROTO_IGMP)
			return p->p_l4len >= IGMP_HDR;
		return true;
	}
	p->p_sport = tk_be16_load(l);
	p->p_dport = tk_be16_load(l + 2);
	return true;
}

/*
 * Stricter than packet.go in two ways, both only ever dropping more: an
 * IHL below 5 is refused (Go reads the transport header from inside the
 * IP header), and transport checks stop at the IP total length instead of
 * the buffer's end.
 */
static bool
decode4(pkt *p, const uint8_t *b, size_t n)
{
	size_t total = tk_be16_load(b + 2), hl = (size_t)(b[0] & 0x0f) * 4;
	uint16_t frag = tk_be16_load(b + 6);

	if (total > n)
		return false; /* cut off before the IP length */
	if (hl < IP4_HDR || hl > total)
		return false;
	p->p_fi = 0;
	p->p_proto = b[9];
	p->p_src = b + 12;
	p->p_dst = b + 16;
	p->p_l4 = b + hl;
	p->p_l4len = total - hl;
	if ((frag & 0x1fff) != 0) {
		if ((frag & 0x1fff) < MIN_FRAG_BLKS)
			return false;
		p->p_proto = PROTO_FRAGMENT;
		return true;
	}
	/* packet.go: TSMP is never fragmented */
	if (p->p_proto == TK_WG_PROTO_TSMP && (frag & 0x2000) != 0)
		return false;
	return decode_l4(p);
}

/*
 * Like packet.go decode6, the one extension header followed is a Fragment
 * header straight after the base header; any other next-header value is
 * the protocol (so hop-by-hop, 0, is a failure and routing, AH, ... are
 * "other" protocols no default rule lists).
 */
static bool
decode6(pkt *p, const uint8_t *b, size_t n)
{
	size_t total, off = IP6_HDR;

	if (n < IP6_HDR)
		return false;
	total = (size_t)tk_be16_load(b + 4) + IP6_HDR;
	if (total > n)
		return false;
	p->p_fi = 1;
	p->p_proto = b[6];
	p->p_src = b + 8;
	p->p_dst = b + 24;
	if (p->p_proto == PROTO_IP6_FRAG) {
		unsigned blks;

		if (total < IP6_HDR + IP6_FRAG)
			return false;
		blks = tk_be16_load(b + IP6_HDR + 2) >> 3;
		off += IP6_FRAG;
		if (blks != 0) {
			if (blks < MIN_FRAG_BLKS)
				return false;
			p->p_proto = PROTO_FRAGMENT;
			return true;
		}
		p->p_proto = b[IP6_HDR];
	}
	p->p_l4 = b + off;
	p->p_l4len = total - off;
	return decode_l4(p);
}

static bool
mapped4(const uint8_t *a)
{
	static const uint8_t pfx[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	return memcmp(a, pfx, sizeof(pfx)) == 0;
}

/*
 * filter.go pre(): the checks both directions share.  Returns a verdict,
 * or NO_VERDICT when the rules must decide.
 */
static unsigned
pre(pkt *p, const uint8_t *b, size_t n, tk_wg_accept_why *why)
{
	const uint8_t *d;
	bool ok;

	if (n == 0) {
		*why = TK_WG_WHY_KEEPALIVE;
		return TK_WG_ACCEPT;
	}
	if (n < IP4_HDR)
		return TK_WG_DROP_TOO_SHORT;
	memset(p, 0, sizeof(*p));
	switch (b[0] >> 4) {
	case 4:
		ok = decode4(p, b, n);
		break;
	case 6:
		ok = decode6(p, b, n);
		break;
	default:
		ok = false;
	}
	if (!ok)
		return TK_WG_DROP_MALFORMED;
	/* netip's IsMulticast/IsLinkLocalUnicast unmap ::ffff:a.b.c.d */
	d = p->p_dst;
	if (p->p_fi == 1 && mapped4(d))
		d += 12;
	else if (p->p_fi == 1) {
		if (d[0] == 0xff)
			return TK_WG_DROP_MULTICAST;
		if (d[0] == 0xfe && (d[1] & 0xc0) == 0x80)
			return TK_WG_DROP_LINK_LOCAL;
		d = NULL;
	}
	if (d != NULL) {
		if ((d[0] & 0xf0) == 0xe0)
			return TK_WG_DROP_MULTICAST;
		/* the GCP metadata/DNS address is allowed, as a plain IPv4 */
		if (d[0] == 169 && d[1] == 254 &&
		    !(p->p_fi == 0 && d[2] == 169 && d[3] == 254))
			return TK_WG_DROP_LINK_LOCAL;
	}
	if (p->p_proto == PROTO_FRAGMENT) {
		*why = TK_WG_WHY_FRAGMENT;
		return TK_WG_ACCEPT;
	}
	return NO_VERDICT;
}

/* --- rule matching (match.go) -------------------------------------------- */

static bool
proto_in(const crule *r, uint8_t proto)
{
	return (r->cr_protos[proto >> 3] >> (proto & 7)) & 1;
}

static bool
cap_match(const tk_wg_filter *f, const cfamily *cf, const crule *r,
    const pkt *p)
{
	if (f->f_has_cap == NULL)
		return false;
	for (uint32_t i = 0; i < r->cr_ncap; i++)
		if (f->f_has_cap(f->f_cap_arg, p->p_fi ? 6 : 4, p->p_src,
			cf->cf_caps[r->cr_cap + i]))
			return true;
	return false;
}

/* matches.match: protocol, source (prefix or cap), destination IP + port. */
static bool
match_full(const tk_wg_filter *f, const cfamily *cf, const pkt *p, a128 src,
    a128 dst)
{
	for (size_t i = 0; i < cf->cf_nrules; i++) {
		const crule *r = &cf->cf_rules[i];
		const cdst *d = &cf->cf_dsts[r->cr_dst];

		if (!proto_in(r, p->p_proto))
			continue;
		if (!set_has(&cf->cf_srcs[r->cr_src], r->cr_nsrc, src) &&
		    !cap_match(f, cf, r, p))
			continue;
		for (uint32_t j = 0; j < r->cr_ndst; j++)
			if (range_has(&d[j].cd_net, dst) &&
			    p->p_dport >= d[j].cd_first &&
			    p->p_dport <= d[j].cd_last)
				return true;
	}
	return false;
}

/*
 * matches.matchIPsOnly, for ICMP: any rule (whatever its protocols) with
 * the source and the destination IP; or a source cap any rule names, whatever
 * the destination.
 */
static bool
match_ips(const tk_wg_filter *f, const cfamily *cf, const pkt *p, a128 src,
    a128 dst)
{
	for (size_t i = 0; i < cf->cf_nrules; i++) {
		const crule *r = &cf->cf_rules[i];
		const cdst *d = &cf->cf_dsts[r->cr_dst];

		if (!set_has(&cf->cf_srcs[r->cr_src], r->cr_nsrc, src))
			continue;
		for (uint32_t j = 0; j < r->cr_ndst; j++)
			if (range_has(&d[j].cd_net, dst))
				return true;
	}
	for (size_t i = 0; i < cf->cf_nrules; i++)
		if (cap_match(f, cf, &cf->cf_rules[i], p))
			return true;
	return false;
}

/* matches.matchProtoAndIPsOnlyIfAllPorts: no caps, only 0-65535 dsts. */
static bool
match_portless(const cfamily *cf, const pkt *p, a128 src, a128 dst)
{
	for (size_t i = 0; i < cf->cf_nrules; i++) {
		const crule *r = &cf->cf_rules[i];
		const cdst *d = &cf->cf_dsts[r->cr_dst];

		if (!proto_in(r, p->p_proto) ||
		    !set_has(&cf->cf_srcs[r->cr_src], r->cr_nsrc, src))
			continue;
		for (uint32_t j = 0; j < r->cr_ndst; j++)
			if (d[j].cd_first == 0 && d[j].cd_last == 0xffff &&
			    range_has(&d[j].cd_net, dst))
				return true;
	}
	return false;
}

/* --- the flow table (net/flowtrack Cache, MaxEntries lruMax) ------------- */

/* flowtrack.Tuple: addresses as 16 bytes (IPv4 mapped), ports, protocol. */
static void
flow_key(uint64_t k[5], const pkt *p, bool reverse)
{
	const uint8_t *s = reverse ? p->p_dst : p->p_src;
	const uint8_t *d = reverse ? p->p_src : p->p_dst;
	uint16_t sp = reverse ? p->p_dport : p->p_sport;
	uint16_t dp = reverse ? p->p_sport : p->p_dport;
	a128 as = addr_load(p->p_fi, s), ad = addr_load(p->p_fi, d);

	if (p->p_fi == 0) {
		as.lo |= 0xffff00000000ull;
		ad.lo |= 0xffff00000000ull;
	}
	k[0] = as.hi;
	k[1] = as.lo;
	k[2] = ad.hi;
	k[3] = ad.lo;
	k[4] = (uint64_t)p->p_proto << 32 | (uint64_t)sp << 16 | dp;
}

static uint32_t
flow_hash(const tk_wg_filter *f, const uint64_t k[5])
{
	uint64_t h = f->f_seed[0];

	for (int i = 0; i < 5; i++) {
		h = (h ^ k[i]) * 0x9e3779b97f4a7c15ull;
		h ^= h >> 29;
	}
	h = (h ^ f->f_seed[1]) * 0xff51afd7ed558ccdull;
	h ^= h >> 32;
	return (uint32_t)h & (FLOW_BUCKETS - 1);
}

static uint16_t
flow_find(const tk_wg_filter *f, const uint64_t k[5], uint32_t b)
{
	uint16_t i;

	for (i = f->f_buckets[b]; i != NO_IDX; i = f->f_flows[i].fl_hnext)
		if (memcmp(f->f_flows[i].fl_key, k, sizeof(f->f_flows[i].fl_key)) == 0)
			break;
	return i;
}

static void
lru_unlink(tk_wg_filter *f, uint16_t i)
{
	flow *fl = &f->f_flows[i];

	if (fl->fl_newer != NO_IDX)
		f->f_flows[fl->fl_newer].fl_older = fl->fl_older;
	else
		f->f_newest = fl->fl_older;
	if (fl->fl_older != NO_IDX)
		f->f_flows[fl->fl_older].fl_newer = fl->fl_newer;
	else
		f->f_oldest = fl->fl_newer;
}

static void
lru_push(tk_wg_filter *f, uint16_t i)
{
	flow *fl = &f->f_flows[i];

	fl->fl_newer = NO_IDX;
	fl->fl_older = f->f_newest;
	if (f->f_newest != NO_IDX)
		f->f_flows[f->f_newest].fl_newer = i;
	else
		f->f_oldest = i;
	f->f_newest = i;
}

static void
lru_touch(tk_wg_filter *f, uint16_t i)
{
	if (f->f_newest != i) {
		lru_unlink(f, i);
		lru_push(f, i);
	}
}

/* Frees the oldest flow's slot and returns it. */
static uint16_t
flow_evict(tk_wg_filter *f)
{
	uint16_t i = f->f_oldest;
	uint16_t *pp = &f->f_buckets[flow_hash(f, f->f_flows[i].fl_key)];

	while (*pp != i) {
		TK_ASSERT(*pp != NO_IDX);
		pp = &f->f_flows[*pp].fl_hnext;
	}
	*pp = f->f_flows[i].fl_hnext;
	lru_unlink(f, i);
	f->f_stats.fs_flow_evictions++;
	return i;
}

/* flowtrack Cache.Add: refresh an existing flow or insert, evicting LRU. */
static void
flow_add(tk_wg_filter *f, const uint64_t k[5])
{
	uint32_t b = flow_hash(f, k);
	uint16_t i = flow_find(f, k, b);

	if (i != NO_IDX) {
		lru_touch(f, i);
		return;
	}
	if (f->f_nflows < TK_WG_FILTER_FLOWS)
		i = (uint16_t)f->f_nflows++;
	else
		i = flow_evict(f);
	memcpy(f->f_flows[i].fl_key, k, sizeof(f->f_flows[i].fl_key));
	f->f_flows[i].fl_hnext = f->f_buckets[b];
	f->f_buckets[b] = i;
	lru_push(f, i);
}

/* flowtrack Cache.Get: a hit becomes the newest. */
static bool
flow_get(tk_wg_filter *f, const uint64_t k[5])
{
	uint16_t i = flow_find(f, k, flow_hash(f, k));

	if (i == NO_IDX)
		return false;
	lru_touch(f, i);
	return true;
}

void
tk_wg_filter_flush_flows(tk_wg_filter *f)
{
	for (size_t i = 0; i < FLOW_BUCKETS; i++)
		f->f_buckets[i] = NO_IDX;
	f->f_newest = f->f_oldest = NO_IDX;
	f->f_nflows = 0;
}

/* --- verdicts (filter.go runIn4/runIn6, runOut) -------------------------- */

/* No rules: what a shields-up filter matches against. */
static const cfamily no_rules;

static unsigned
run_in(tk_wg_filter *f, pkt *p, bool shields_up, tk_wg_accept_why *why)
{
	int fi = p->p_fi;
	a128 src, dst = addr_load(fi, p->p_dst);
	const cfamily *cf;
	uint64_t k[5];

	if (f->f_rules == NULL)
		return TK_WG_DROP_NO_FILTER;
	/* a peer may not reach addresses this node did not advertise */
	if (f->f_nlocal[fi] == 0 ||
	    !set_has(f->f_local + (fi ? f->f_nlocal[0] : 0), f->f_nlocal[fi],
		dst))
		return TK_WG_DROP_NOT_LOCAL;
	/* filter.go NewShieldsUpFilter: the same local set and flow state,
	 * no rules */
	cf = shields_up ? &no_rules : &f->f_rules->rs_fam[fi];
	src = addr_load(fi, p->p_src);

	switch (p->p_proto) {
	case TK_WG_PROTO_TCP:
		/* return traffic of our own connections; a new one needs a SYN */
		if ((p->p_flags & (TCP_SYN | TCP_ACK)) != TCP_SYN) {
			*why = TK_WG_WHY_TCP_NON_SYN;
			return TK_WG_ACCEPT;
		}
		if (match_full(f, cf, p, src, dst)) {
			*why = TK_WG_WHY_TCP_RULE;
			return TK_WG_ACCEPT;
		}
		return TK_WG_DROP_NO_RULE;
	case TK_WG_PROTO_UDP:
	case TK_WG_PROTO_SCTP:
		flow_key(k, p, false);
		if (flow_get(f, k)) {
			*why = TK_WG_WHY_FLOW;
			return TK_WG_ACCEPT;
		}
		if (match_full(f, cf, p, src, dst)) {
			*why = TK_WG_WHY_UDP_RULE;
			return TK_WG_ACCEPT;
		}
		return TK_WG_DROP_NO_RULE;
	case TK_WG_PROTO_TSMP:
		*why = TK_WG_WHY_TSMP;
		return TK_WG_ACCEPT;
	default:
		break;
	}
	if (p->p_proto == (fi ? TK_WG_PROTO_ICMP6 : TK_WG_PROTO_ICMP4)) {
		/* packet.go IsEchoResponse/IsError; they need 8 bytes of ICMP */
		if (p->p_l4len >= 8) {
			uint8_t t = p->p_l4[0], c = p->p_l4[1];
			bool resp;

			if (fi == 0) /* icmp4.go: ICMP4ParamProblem is 0x12 */
				resp = (t == 0 && c == 0) || t == 3 || t == 11 ||
				    t == 0x12;
			else
				resp = (t == 129 && c == 0) || (t >= 1 && t <= 4);
			if (resp) {
				*why = TK_WG_WHY_ICMP_RESPONSE;
				return TK_WG_ACCEPT;
			}
		}
		if (match_ips(f, cf, p, src, dst)) {
			*why = TK_WG_WHY_ICMP_RULE;
			return TK_WG_ACCEPT;
		}
		return TK_WG_DROP_NO_RULE;
	}
	if (match_portless(cf, p, src, dst)) {
		*why = TK_WG_WHY_OTHER_PROTO;
		return TK_WG_ACCEPT;
	}
	return TK_WG_DROP_NO_RULE;
}

static tk_wg_verdict
filter_in(tk_wg_filter *f, const uint8_t *b, size_t n, bool shields_up)
{
	tk_wg_accept_why why = TK_WG_WHY_KEEPALIVE;
	pkt p;
	unsigned v = pre(&p, b, n, &why);

	if (v == NO_VERDICT)
		v = run_in(f, &p, shields_up, &why);
	f->f_stats.fs_in[v]++;
	if (v == TK_WG_ACCEPT)
		f->f_stats.fs_accept_why[why]++;
	return (tk_wg_verdict)v;
}

tk_wg_verdict
tk_wg_filter_in(tk_wg_filter *f, const uint8_t *b, size_t n)
{
	return filter_in(f, b, n, false);
}

tk_wg_verdict
tk_wg_filter_in_shields_up(tk_wg_filter *f, const uint8_t *b, size_t n)
{
	return filter_in(f, b, n, true);
}

tk_wg_verdict
tk_wg_filter_out(tk_wg_filter *f, const uint8_t *b, size_t n)
{
	tk_wg_accept_why why;
	pkt p;
	unsigned v = pre(&p, b, n, &why);

	if (v == NO_VERDICT) {
		/* filter.go UpdateOutboundFlowState: remember the reply tuple */
		if (p.p_proto == TK_WG_PROTO_UDP || p.p_proto == TK_WG_PROTO_SCTP) {
			uint64_t k[5];

			flow_key(k, &p, true);
			flow_add(f, k);
		}
		v = TK_WG_ACCEPT;
	}
	f->f_stats.fs_out[v]++;
	return (tk_wg_verdict)v;
}

/* --- lifecycle ----------------------------------------------------------- */

int
tk_wg_filter_new(tk_wg_filter **out, const tk_rng *rng)
{
	tk_wg_filter *f = tk_calloc(1, sizeof(*f));

	if (f == NULL)
		return TK_ENOMEM;
	tk_rng_fill(rng, f->f_seed, sizeof(f->f_seed));
	tk_wg_filter_flush_flows(f);
	*out = f;
	return 0;
}

void
tk_wg_filter_free(tk_wg_filter *f)
{
	if (f == NULL)
		return;
	tk_free(f->f_rules);
	tk_free(f->f_local);
	tk_free(f);
}

void
tk_wg_filter_set_cap_cb(tk_wg_filter *f, tk_wg_filter_cap_fn has_cap,
    void *arg)
{
	f->f_has_cap = has_cap;
	f->f_cap_arg = arg;
}

void
tk_wg_filter_stats_get(const tk_wg_filter *f, tk_wg_filter_stats *out)
{
	*out = f->f_stats;
	out->fs_flows = f->f_nflows;
	out->fs_rules4 = f->f_rules ? (uint32_t)f->f_rules->rs_fam[0].cf_nrules : 0;
	out->fs_rules6 = f->f_rules ? (uint32_t)f->f_rules->rs_fam[1].cf_nrules : 0;
}

const char *
tk_wg_filter_error(const tk_wg_filter *f)
{
	return f->f_err;
}

const char *
tk_wg_verdict_name(tk_wg_verdict v)
{
	static const char *const names[TK_WG_VERDICT_COUNT] = {
		[TK_WG_ACCEPT] = "accept",
		[TK_WG_DROP_TOO_SHORT] = "too_short",
		[TK_WG_DROP_MALFORMED] = "malformed",
		[TK_WG_DROP_MULTICAST] = "multicast",
		[TK_WG_DROP_LINK_LOCAL] = "link_local_unicast",
		[TK_WG_DROP_NO_FILTER] = "no_filter",
		[TK_WG_DROP_NOT_LOCAL] = "not_local",
		[TK_WG_DROP_NO_RULE] = "no_rule",
	};

	return (unsigned)v < TK_WG_VERDICT_COUNT ? names[v] : "?";
}

const char *
tk_wg_accept_why_name(tk_wg_accept_why w)
{
	static const char *const names[TK_WG_WHY_COUNT] = {
		[TK_WG_WHY_KEEPALIVE] = "keepalive",
		[TK_WG_WHY_FRAGMENT] = "fragment",
		[TK_WG_WHY_ICMP_RESPONSE] = "icmp_response",
		[TK_WG_WHY_ICMP_RULE] = "icmp_rule",
		[TK_WG_WHY_TCP_NON_SYN] = "tcp_non_syn",
		[TK_WG_WHY_TCP_RULE] = "tcp_rule",
		[TK_WG_WHY_FLOW] = "flow",
		[TK_WG_WHY_UDP_RULE] = "udp_rule",
		[TK_WG_WHY_TSMP] = "tsmp",
		[TK_WG_WHY_OTHER_PROTO] = "other_proto",
	};

	return (unsigned)w < TK_WG_WHY_COUNT ? names[w] : "?";
}

/* --- compiling rules ----------------------------------------------------- */

static int
fam_index(uint8_t family)
{
	return family == 4 ? 0 : family == 6 ? 1 : -1;
}

/*
 * The range of one prefix or range match; *fi gets its family.  NULL
 * return: fine; otherwise what is wrong with it.
 */
static const char *
ipmatch_range(const tk_wg_ipmatch *m, bool exact, arange *out, int *fi)
{
	a128 lo, hi, hm;

	switch (m->im_kind) {
	case TK_WG_IPM_PREFIX:
		*fi = fam_index(m->im_prefix.pf_family);
		if (*fi < 0)
			return "prefix family is not 4 or 6";
		if (m->im_prefix.pf_bits > alen(*fi) * 8)
			return "prefix longer than the address";
		lo = addr_load(*fi, m->im_prefix.pf_addr);
		hm = host_mask(*fi, m->im_prefix.pf_bits);
		if (exact && ((lo.hi & hm.hi) || (lo.lo & hm.lo)))
			return "prefix has host bits set (give the network address)";
		out->ar_lo.hi = lo.hi & ~hm.hi;
		out->ar_lo.lo = lo.lo & ~hm.lo;
		out->ar_hi.hi = lo.hi | hm.hi;
		out->ar_hi.lo = lo.lo | hm.lo;
		return NULL;
	case TK_WG_IPM_RANGE:
		*fi = fam_index(m->im_range.rg_family);
		if (*fi < 0)
			return "range family is not 4 or 6";
		lo = addr_load(*fi, m->im_range.rg_first);
		hi = addr_load(*fi, m->im_range.rg_last);
		if (a_lt(hi, lo))
			return "range first is above last";
		out->ar_lo = lo;
		out->ar_hi = hi;
		return NULL;
	default:
		return "unknown match kind";
	}
}

typedef struct sizing {
	size_t sz_srcs, sz_caps, sz_dsts, sz_str;
} sizing;

/* Checks one match; counts what it adds (per family: one entry at most). */
static const char *
check_match(const tk_wg_ipmatch *m, bool is_src, sizing *sz)
{
	const char *why;
	arange r;
	int fi;

	switch (m->im_kind) {
	case TK_WG_IPM_ANY:
		break;
	case TK_WG_IPM_CAP:
		if (!is_src)
			return "a cap cannot be a destination";
		if (m->im_cap == NULL)
			return "cap name is NULL";
		sz->sz_caps++;
		sz->sz_str += strlen(m->im_cap) + 1;
		return NULL;
	default:
		if ((why = ipmatch_range(m, true, &r, &fi)) != NULL)
			return why;
	}
	if (is_src)
		sz->sz_srcs++;
	else
		sz->sz_dsts++;
	return NULL;
}

#define ALIGN16(x) (((x) + 15) & ~(size_t)15)

/* acc += ALIGN16(count * size), false on overflow. */
static bool
size_add(size_t *acc, size_t count, size_t size)
{
	size_t bytes;

	if (size != 0 && count > (SIZE_MAX / 2) / size)
		return false;
	bytes = ALIGN16(count * size);
	if (bytes > SIZE_MAX / 2 - *acc)
		return false;
	*acc += bytes;
	return true;
}

static void *
carve(uint8_t **cur, size_t count, size_t size)
{
	void *p = *cur;

	*cur += ALIGN16(count * size);
	return p;
}

/* Adds m's range in each family it covers (src: to srcs, else to dsts). */
static void
fill_match(ruleset *rs, size_t ns[2], size_t nd[2], const tk_wg_ipmatch *m,
    bool is_src, uint16_t first, uint16_t last)
{
	arange r[2];
	bool has[2] = { false, false };
	int fi;

	if (m->im_kind == TK_WG_IPM_ANY) {
		for (fi = 0; fi < 2; fi++) {
			r[fi].ar_lo.hi = r[fi].ar_lo.lo = 0;
			r[fi].ar_hi = family_max(fi);
			has[fi] = true;
		}
	} else {
		arange one;

		if (TK_NEVER(ipmatch_range(m, true, &one, &fi) != NULL))
			return;
		r[fi] = one;
		has[fi] = true;
	}
	for (fi = 0; fi < 2; fi++) {
		cfamily *cf = &rs->rs_fam[fi];

		if (!has[fi])
			continue;
		if (is_src) {
			cf->cf_srcs[ns[fi]++] = r[fi];
		} else {
			cdst *d = &cf->cf_dsts[nd[fi]++];

			d->cd_net = r[fi];
			d->cd_first = first;
			d->cd_last = last;
		}
	}
}

static int
fail(tk_wg_filter *f, int rv, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
fail(tk_wg_filter *f, int rv, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(f->f_err, sizeof(f->f_err), fmt, ap);
	va_end(ap);
	return rv;
}

int
tk_wg_filter_set_rules(tk_wg_filter *f, const tk_wg_rule *rules, size_t n)
{
	static const uint32_t defaults[] = { TK_WG_PROTO_TCP, TK_WG_PROTO_UDP,
		TK_WG_PROTO_ICMP4, TK_WG_PROTO_ICMP6 };
	sizing sz = { 0 };
	size_t total = 0, ns[2] = { 0 }, nc[2] = { 0 }, nd[2] = { 0 };
	uint8_t *cur;
	char *str;
	ruleset *rs;

	f->f_err[0] = '\0';
	if (rules == NULL && n != 0)
		return fail(f, TK_EINVAL, "rules is NULL with n = %zu", n);
	for (size_t i = 0; i < n; i++) {
		const tk_wg_rule *r = &rules[i];
		const char *why;

		if ((r->r_src == NULL && r->r_nsrc != 0) ||
		    (r->r_dst == NULL && r->r_ndst != 0) ||
		    (r->r_protos == NULL && r->r_nprotos != 0))
			return fail(f, TK_EINVAL,
			    "rule %zu: NULL array with a non-zero count", i);
		for (size_t j = 0; j < r->r_nsrc; j++)
			if ((why = check_match(&r->r_src[j], true, &sz)) != NULL)
				return fail(f, TK_EINVAL, "rule %zu: src %zu: %s",
				    i, j, why);
		for (size_t j = 0; j < r->r_ndst; j++)
			if ((why = check_match(&r->r_dst[j].pr_ip, false, &sz)) !=
			    NULL)
				return fail(f, TK_EINVAL, "rule %zu: dst %zu: %s",
				    i, j, why);
	}
	if (n > UINT32_MAX || sz.sz_srcs > UINT32_MAX ||
	    sz.sz_caps > UINT32_MAX || sz.sz_dsts > UINT32_MAX)
		return fail(f, TK_EINVAL, "too many rules or entries");
	/* each family is sized for the worst case ("*" adds to both), in
	 * the order carved below */
	if (!size_add(&total, 1, sizeof(ruleset)))
		return fail(f, TK_ENOMEM, "rules too large");
	for (int fi = 0; fi < 2; fi++)
		if (!size_add(&total, n, sizeof(crule)) ||
		    !size_add(&total, sz.sz_srcs, sizeof(arange)) ||
		    !size_add(&total, sz.sz_dsts, sizeof(cdst)) ||
		    !size_add(&total, sz.sz_caps, sizeof(char *)))
			return fail(f, TK_ENOMEM, "rules too large");
	if (!size_add(&total, sz.sz_str, 1))
		return fail(f, TK_ENOMEM, "rules too large");
	rs = tk_malloc(total);
	if (rs == NULL)
		return fail(f, TK_ENOMEM, "out of memory for %zu rules", n);
	cur = (uint8_t *)rs;
	carve(&cur, 1, sizeof(ruleset));
	for (int fi = 0; fi < 2; fi++) {
		cfamily *cf = &rs->rs_fam[fi];

		cf->cf_nrules = 0;
		cf->cf_rules = carve(&cur, n, sizeof(crule));
		cf->cf_srcs = carve(&cur, sz.sz_srcs, sizeof(arange));
		cf->cf_dsts = carve(&cur, sz.sz_dsts, sizeof(cdst));
		cf->cf_caps = carve(&cur, sz.sz_caps, sizeof(char *));
	}
	str = (char *)cur;

	for (size_t i = 0; i < n; i++) {
		const tk_wg_rule *r = &rules[i];
		size_t s0[2] = { ns[0], ns[1] }, c0[2] = { nc[0], nc[1] };
		size_t d0[2] = { nd[0], nd[1] };
		const uint32_t *protos = r->r_protos;
		size_t nprotos = r->r_nprotos;

		if (nprotos == 0) {
			protos = defaults;
			nprotos = TK_ARRAY_LEN(defaults);
		}
		for (size_t j = 0; j < r->r_nsrc; j++) {
			const tk_wg_ipmatch *m = &r->r_src[j];

			if (m->im_kind != TK_WG_IPM_CAP) {
				fill_match(rs, ns, nd, m, true, 0, 0);
			} else if (m->im_cap[0] != '\0') {
				/* tailcfg.go: an empty cap name adds nothing */
				size_t len = strlen(m->im_cap) + 1;

				memcpy(str, m->im_cap, len);
				for (int fi = 0; fi < 2; fi++)
					rs->rs_fam[fi].cf_caps[nc[fi]++] = str;
				str += len;
			}
		}
		for (size_t j = 0; j < r->r_ndst; j++)
			fill_match(rs, ns, nd, &r->r_dst[j].pr_ip, false,
			    r->r_dst[j].pr_first, r->r_dst[j].pr_last);
		/* filter.go matchesFamily: a family keeps the rule if it has a
		 * source (prefix or cap) and a destination there */
		for (int fi = 0; fi < 2; fi++) {
			cfamily *cf = &rs->rs_fam[fi];
			crule *cr;

			if ((ns[fi] == s0[fi] && nc[fi] == c0[fi]) ||
			    nd[fi] == d0[fi]) {
				ns[fi] = s0[fi];
				nc[fi] = c0[fi];
				nd[fi] = d0[fi];
				continue;
			}
			cr = &cf->cf_rules[cf->cf_nrules++];
			memset(cr, 0, sizeof(*cr));
			cr->cr_src = (uint32_t)s0[fi];
			cr->cr_nsrc = (uint32_t)set_normalize(&cf->cf_srcs[s0[fi]],
			    ns[fi] - s0[fi]);
			ns[fi] = s0[fi] + cr->cr_nsrc;
			cr->cr_cap = (uint32_t)c0[fi];
			cr->cr_ncap = (uint32_t)(nc[fi] - c0[fi]);
			cr->cr_dst = (uint32_t)d0[fi];
			cr->cr_ndst = (uint32_t)(nd[fi] - d0[fi]);
			/* tailcfg.go: numbers outside 0..255 are Tailscale's */
			for (size_t j = 0; j < nprotos; j++)
				if (protos[j] <= 0xff)
					cr->cr_protos[protos[j] >> 3] |=
					    (uint8_t)(1u << (protos[j] & 7));
		}
	}
	tk_free(f->f_rules);
	f->f_rules = rs;
	return 0;
}

int
tk_wg_filter_set_local(tk_wg_filter *f, const tk_wg_prefix *local, size_t n)
{
	size_t cnt[2] = { 0, 0 }, at[2], n4, n6;
	arange *v = NULL;

	f->f_err[0] = '\0';
	if (local == NULL && n != 0)
		return fail(f, TK_EINVAL, "local is NULL with n = %zu", n);
	for (size_t i = 0; i < n; i++) {
		int fi = fam_index(local[i].pf_family);

		if (fi < 0)
			return fail(f, TK_EINVAL,
			    "local %zu: family %u is not 4 or 6", i,
			    local[i].pf_family);
		if (local[i].pf_bits > alen(fi) * 8)
			return fail(f, TK_EINVAL,
			    "local %zu: /%u is longer than the address", i,
			    local[i].pf_bits);
		cnt[fi]++;
	}
	if (n > SIZE_MAX / sizeof(*v))
		return fail(f, TK_ENOMEM, "too many local prefixes");
	if (n != 0 && (v = tk_malloc(n * sizeof(*v))) == NULL)
		return fail(f, TK_ENOMEM, "out of memory for %zu local prefixes",
		    n);
	/* IPv4 ranges first, then IPv6, each sorted and merged */
	at[0] = 0;
	at[1] = cnt[0];
	for (size_t i = 0; i < n; i++) {
		tk_wg_ipmatch m = { .im_kind = TK_WG_IPM_PREFIX,
			.im_prefix = local[i] };
		arange r;
		int fi;

		/* IPSetBuilder.AddPrefix masks host bits instead of refusing */
		if (TK_NEVER(ipmatch_range(&m, false, &r, &fi) != NULL))
			continue;
		v[at[fi]++] = r;
	}
	n4 = n6 = 0;
	if (v != NULL) {
		n4 = set_normalize(v, cnt[0]);
		n6 = set_normalize(v + cnt[0], cnt[1]);
		memmove(v + n4, v + cnt[0], n6 * sizeof(*v));
	}
	tk_free(f->f_local);
	f->f_local = v;
	f->f_nlocal[0] = n4;
	f->f_nlocal[1] = n6;
	return 0;
}
