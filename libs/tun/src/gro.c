/*
 * Userspace GRO: merge consecutive TCP segments of a flow into one TUN
 * super-packet written with a virtio_net_hdr (GSO TCPV4/TCPV6, NEEDS_CSUM).
 *
 * Packets are copied into one arena.  A frame (item) starts as
 * [virtio_net_hdr][packet]; payloads merged into it are appended to its last
 * run when that run ends at the arena's tail (the common single-flow case:
 * the frame stays one contiguous run) and otherwise get a run of their own,
 * so a frame is written with one writev() of its runs.
 *
 * Merge conditions are the kernel's (net/ipv4/tcp_offload.c tcp_gro_receive,
 * net/ipv4/af_inet.c inet_gro_receive, net/ipv6/ip6_offload.c
 * ipv6_gro_receive) restricted to what re-segments exactly: same 4-tuple,
 * ack, window, urgent pointer, data-offset byte and option bytes; IPv4 TOS,
 * TTL, flags byte (DF) equal, no options, not a fragment, ID exactly +1;
 * IPv6 version/traffic class/flow label and hop limit equal, next header
 * TCP; seq continuous; payload not larger than the first segment's and
 * nothing after a shorter one; flags ACK, or ACK|PSH on the last segment
 * only.  IPv4 header and TCP checksums are verified before a packet is
 * merged (as the kernel's GRO does, and wireguard-go's checksumValid): a
 * merged frame is handed up as CHECKSUM_PARTIAL and would not be checked
 * again.
 *
 * Only the newest frame of a flow may grow, and every TCP packet whose
 * 4-tuple is known becomes the flow's newest frame when it does not merge,
 * so packets of one flow leave in the order they came.
 */
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"

#include "tun_int.h"

#define ARENA_BYTES (512u * 1024)
#define MAX_ITEMS   1024
#define MAX_RUNS    1024
#define NBUCKETS    1024 /* power of two */

enum { K_PASS, K_TCP4, K_TCP6 };

typedef struct item {
	uint32_t it_off;   /* arena offset of the vnet header; packet follows */
	uint32_t it_len;   /* bytes of the first run */
	uint32_t it_total; /* IP length of the merged packet */
	int32_t it_rfirst; /* further runs (indices into g_runs), -1: none */
	int32_t it_rlast;
	int32_t it_hprev; /* older item in the same bucket, -1: none */
	uint32_t it_seq_next;
	uint16_t it_id_next;
	uint16_t it_bucket;
	uint16_t it_l4off;
	uint16_t it_hlen;
	uint16_t it_gso; /* payload of the first segment */
	uint16_t it_nseg;
	uint16_t it_nruns; /* including the first */
	uint8_t it_kind;
	bool it_open;	 /* a further segment may be appended */
	bool it_psh;	 /* the last merged segment had PSH */
	bool it_keyed;	 /* in the flow table */
} item;

typedef struct run {
	uint32_t r_off;
	uint32_t r_len;
	int32_t r_next;
} run;

struct tk_tun_gro {
	uint8_t *g_arena;
	uint32_t g_used;
	unsigned g_nitems;
	unsigned g_nruns;
	bool g_sealed;
	tk_tun_gro_stats g_st;
	int32_t g_table[NBUCKETS];
	item g_items[MAX_ITEMS];
	run g_runs[MAX_RUNS];
};

/* What an added packet is. */
typedef struct pinfo {
	uint8_t kind;	/* K_PASS unless a parseable TCP packet */
	bool bad;	/* malformed */
	bool cand;	/* may start or extend a merged frame */
	uint16_t l4off; /* TCP header offset */
	uint16_t hlen;	/* IP + TCP headers */
	uint16_t paylen;
	uint8_t flags;
	uint32_t hash;
} pinfo;

static uint32_t
flow_hash(const uint8_t *p, const pinfo *pi)
{
	const uint8_t *a = p + (pi->kind == K_TCP6 ? 8 : 12);
	size_t alen = pi->kind == K_TCP6 ? 32 : 8;
	uint32_t h = pi->kind;

	for (size_t i = 0; i < alen; i += 4)
		h = (h ^ tk_be32_load(a + i)) * 0x9e3779b1u;
	h = (h ^ tk_be32_load(p + pi->l4off)) * 0x9e3779b1u;
	return h ^ (h >> 16);
}

static void
classify(const uint8_t *p, size_t n, pinfo *pi)
{
	size_t l4off, thl;
	uint8_t proto;

	memset(pi, 0, sizeof(*pi));
	pi->kind = K_PASS;
	if (p[0] >> 4 == 4) {
		if (n < TKI_IP4_HLEN)
			goto bad;
		l4off = (size_t)(p[0] & 0x0f) * 4;
		if (l4off < TKI_IP4_HLEN || l4off > n || tk_be16_load(p + 2) != n)
			goto bad;
		if ((tk_be16_load(p + 6) & 0x3fff) != 0)
			return; /* a fragment (MF or offset): no TCP header to key on */
		proto = p[9];
	} else if (p[0] >> 4 == 6) {
		if (n < TKI_IP6_HLEN ||
		    (size_t)tk_be16_load(p + 4) + TKI_IP6_HLEN != n)
			goto bad;
		l4off = TKI_IP6_HLEN;
		proto = p[6]; /* extension headers: not merged, not keyed */
	} else {
		goto bad;
	}
	if (proto != TKI_IPPROTO_TCP)
		return;
	if (l4off + TKI_TCP_HLEN > n)
		goto bad;
	thl = (size_t)(p[l4off + 12] >> 4) * 4;
	if (thl < TKI_TCP_HLEN || l4off + thl > n)
		goto bad;
	pi->kind = p[0] >> 4 == 4 ? K_TCP4 : K_TCP6;
	pi->l4off = (uint16_t)l4off;
	pi->hlen = (uint16_t)(l4off + thl);
	pi->paylen = (uint16_t)(n - pi->hlen);
	pi->flags = p[l4off + TKI_TCP_FLAGS_OFF];
	pi->hash = flow_hash(p, pi);
	pi->cand = pi->paylen > 0 &&
	    (pi->kind == K_TCP6 || l4off == TKI_IP4_HLEN) &&
	    (pi->flags == TKI_TCP_ACK ||
		pi->flags == (TKI_TCP_ACK | TKI_TCP_PSH));
	return;
bad:
	pi->bad = true;
}

static const uint8_t *
item_pkt(const tk_tun_gro *g, const item *it)
{
	return g->g_arena + it->it_off + TK_TUN_VNET_HDR_LEN;
}

static bool
same_flow(const uint8_t *a, const item *it, const uint8_t *p,
    const pinfo *pi)
{
	if (it->it_kind != pi->kind)
		return false;
	if (pi->kind == K_TCP6 ? memcmp(a + 8, p + 8, 32) != 0 :
				 memcmp(a + 12, p + 12, 8) != 0)
		return false;
	return memcmp(a + it->it_l4off, p + pi->l4off, 4) == 0;
}

/* The flow's newest item, or -1. */
static int32_t
lookup(const tk_tun_gro *g, const uint8_t *p, const pinfo *pi)
{
	int32_t i = g->g_table[pi->hash & (NBUCKETS - 1)];

	for (; i >= 0; i = g->g_items[i].it_hprev)
		if (same_flow(item_pkt(g, &g->g_items[i]), &g->g_items[i], p, pi))
			return i;
	return -1;
}

static bool
ip4_hdr_ok(const uint8_t *p)
{
	return tki_csum_fold(tki_csum_add(0, p, TKI_IP4_HLEN)) == 0xffff;
}

/* Everything but the checksums: can p be appended to it? */
static bool
can_append(const tk_tun_gro *g, const item *it, const uint8_t *p,
    const pinfo *pi)
{
	const uint8_t *h = item_pkt(g, it);
	const uint8_t *ht = h + it->it_l4off, *pt = p + pi->l4off;

	if (!it->it_open || !pi->cand || pi->hlen != it->it_hlen)
		return false;
	if (pi->kind == K_TCP4) {
		if (p[1] != h[1] || p[6] != h[6] || p[8] != h[8] ||
		    tk_be16_load(p + 4) != it->it_id_next)
			return false;
	} else {
		if (memcmp(p, h, 4) != 0 || p[7] != h[7])
			return false;
	}
	if (tk_be32_load(pt + 4) != it->it_seq_next ||
	    memcmp(pt + 8, ht + 8, 5) != 0 ||	/* ack, data offset byte */
	    memcmp(pt + 14, ht + 14, 2) != 0 || /* window */
	    memcmp(pt + 18, ht + 18, 2) != 0 || /* urgent pointer */
	    memcmp(pt + TKI_TCP_HLEN, ht + TKI_TCP_HLEN,
		(size_t)pi->hlen - pi->l4off - TKI_TCP_HLEN) != 0)
		return false;
	if (pi->paylen > it->it_gso || it->it_nseg >= TK_TUN_GRO_MAX_SEGS ||
	    it->it_total + pi->paylen > TK_TUN_MAX_PKT)
		return false;
	return true;
}

static bool
pkt_csums_ok(const uint8_t *p, size_t n, const pinfo *pi)
{
	if (pi->kind == K_TCP4 && !ip4_hdr_ok(p))
		return false;
	return tki_l4_csum_ok(p, n, pi->l4off, pi->kind == K_TCP6,
	    TKI_IPPROTO_TCP);
}

int
tk_tun_gro_new(tk_tun_gro **out)
{
	tk_tun_gro *g;

	if (out == NULL)
		return TK_EINVAL;
	if ((g = tk_calloc(1, sizeof(*g))) == NULL)
		return TK_ENOMEM;
	if ((g->g_arena = tk_malloc(ARENA_BYTES)) == NULL) {
		tk_free(g);
		return TK_ENOMEM;
	}
	for (size_t i = 0; i < NBUCKETS; i++)
		g->g_table[i] = -1;
	*out = g;
	return 0;
}

void
tk_tun_gro_free(tk_tun_gro *g)
{
	if (g == NULL)
		return;
	tk_free(g->g_arena);
	tk_free(g);
}

static int
append(tk_tun_gro *g, item *it, const uint8_t *p, const pinfo *pi)
{
	run *last = it->it_rlast >= 0 ? &g->g_runs[it->it_rlast] : NULL;
	uint32_t end = last ? last->r_off + last->r_len : it->it_off + it->it_len;
	bool contiguous = end == g->g_used;

	if (g->g_used + pi->paylen > ARENA_BYTES ||
	    (!contiguous && g->g_nruns == MAX_RUNS))
		return TK_EMSGSIZE;
	memcpy(g->g_arena + g->g_used, p + pi->hlen, pi->paylen);
	if (contiguous) {
		if (last)
			last->r_len += pi->paylen;
		else
			it->it_len += pi->paylen;
	} else {
		run *r = &g->g_runs[g->g_nruns];

		r->r_off = g->g_used;
		r->r_len = pi->paylen;
		r->r_next = -1;
		if (last)
			last->r_next = (int32_t)g->g_nruns;
		else
			it->it_rfirst = (int32_t)g->g_nruns;
		it->it_rlast = (int32_t)g->g_nruns;
		g->g_nruns++;
		it->it_nruns++;
	}
	g->g_used += pi->paylen;
	it->it_total += pi->paylen;
	it->it_seq_next += pi->paylen;
	it->it_id_next++;
	it->it_nseg++;
	if (pi->flags & TKI_TCP_PSH) {
		it->it_psh = true;
		it->it_open = false;
	}
	if (pi->paylen < it->it_gso || it->it_nseg == TK_TUN_GRO_MAX_SEGS)
		it->it_open = false;
	g->g_st.gs_merged++;
	return 0;
}

static int
insert(tk_tun_gro *g, const uint8_t *p, size_t n, const pinfo *pi, bool open)
{
	item *it;

	if (g->g_nitems == MAX_ITEMS ||
	    g->g_used + TK_TUN_VNET_HDR_LEN + n > ARENA_BYTES)
		return TK_EMSGSIZE;
	it = &g->g_items[g->g_nitems];
	memset(it, 0, sizeof(*it));
	it->it_off = g->g_used;
	it->it_len = (uint32_t)(TK_TUN_VNET_HDR_LEN + n);
	it->it_total = (uint32_t)n;
	it->it_rfirst = it->it_rlast = it->it_hprev = -1;
	it->it_kind = pi->kind;
	it->it_nseg = 1;
	it->it_nruns = 1;
	memset(g->g_arena + g->g_used, 0, TK_TUN_VNET_HDR_LEN);
	memcpy(g->g_arena + g->g_used + TK_TUN_VNET_HDR_LEN, p, n);
	g->g_used += it->it_len;
	if (pi->kind != K_PASS) {
		const uint8_t *t = p + pi->l4off;

		it->it_keyed = true;
		it->it_bucket = (uint16_t)(pi->hash & (NBUCKETS - 1));
		it->it_hprev = g->g_table[it->it_bucket];
		g->g_table[it->it_bucket] = (int32_t)g->g_nitems;
		it->it_l4off = pi->l4off;
		it->it_hlen = pi->hlen;
		it->it_gso = pi->paylen;
		it->it_seq_next = tk_be32_load(t + 4) + pi->paylen;
		if (pi->kind == K_TCP4)
			it->it_id_next = (uint16_t)(tk_be16_load(p + 4) + 1);
		it->it_open = open && pi->cand && !(pi->flags & TKI_TCP_PSH);
	}
	g->g_nitems++;
	return 0;
}

int
tk_tun_gro_add(tk_tun_gro *g, const uint8_t *p, size_t n)
{
	pinfo pi;
	int32_t idx = -1;
	bool open = true;
	int rv;

	if (g == NULL || p == NULL || n == 0 || n > TK_TUN_MAX_PKT)
		return TK_EINVAL;
	if (g->g_sealed)
		return TK_ESTATE;
	classify(p, n, &pi);
	if (pi.kind != K_PASS)
		idx = lookup(g, p, &pi);
	if (idx >= 0 && can_append(g, &g->g_items[idx], p, &pi)) {
		item *it = &g->g_items[idx];

		/* Room first: nothing may change when the caller must drain. */
		if (g->g_used + TK_TUN_VNET_HDR_LEN + n > ARENA_BYTES ||
		    g->g_nruns == MAX_RUNS || g->g_nitems == MAX_ITEMS)
			return TK_EMSGSIZE;
		if (it->it_nseg == 1 &&
		    !pkt_csums_ok(item_pkt(g, it), it->it_total, &pi)) {
			it->it_open = false; /* the head goes up alone */
			g->g_st.gs_bad++;
		} else if (!pkt_csums_ok(p, n, &pi)) {
			open = false;
			pi.bad = true;
		} else {
			g->g_st.gs_packets++;
			return append(g, it, p, &pi);
		}
	}
	if ((rv = insert(g, p, n, &pi, open)) != 0)
		return rv;
	g->g_st.gs_packets++;
	if (pi.bad)
		g->g_st.gs_bad++;
	return 0;
}

static void
seal_item(tk_tun_gro *g, item *it)
{
	uint8_t *vh = g->g_arena + it->it_off;
	uint8_t *p = vh + TK_TUN_VNET_HDR_LEN;
	uint8_t *t = p + it->it_l4off;
	bool v6 = it->it_kind == K_TCP6;
	tki_vnet h;

	if (v6) {
		tk_be16_store(p + 4, (uint16_t)(it->it_total - TKI_IP6_HLEN));
	} else {
		tk_be16_store(p + 2, (uint16_t)it->it_total);
		tk_be16_store(p + 10, 0);
		tk_be16_store(p + 10,
		    (uint16_t)~tki_csum_fold(tki_csum_add(0, p, it->it_l4off)));
	}
	if (it->it_psh)
		t[TKI_TCP_FLAGS_OFF] |= TKI_TCP_PSH;
	/* CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum. */
	tk_be16_store(t + TKI_TCP_CSUM_OFF,
	    tki_csum_fold(tki_csum_pseudo(p, v6, TKI_IPPROTO_TCP,
		it->it_total - it->it_l4off)));
	h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	h.gso_type = v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
	h.hdr_len = it->it_hlen;
	h.gso_size = it->it_gso;
	h.csum_start = it->it_l4off;
	h.csum_offset = TKI_TCP_CSUM_OFF;
	tki_vnet_store(vh, &h);
}

unsigned
tk_tun_gro_frames(tk_tun_gro *g)
{
	if (!g->g_sealed) {
		for (unsigned i = 0; i < g->g_nitems; i++)
			if (g->g_items[i].it_nseg > 1)
				seal_item(g, &g->g_items[i]);
		g->g_sealed = true;
	}
	return g->g_nitems;
}

int
tk_tun_gro_frame_iov(tk_tun_gro *g, unsigned i, struct iovec *iov,
    unsigned cap, unsigned *niov)
{
	const item *it;
	unsigned k = 0;

	if (i >= tk_tun_gro_frames(g))
		return TK_EINVAL;
	it = &g->g_items[i];
	if (cap < it->it_nruns)
		return TK_EMSGSIZE;
	iov[k].iov_base = g->g_arena + it->it_off;
	iov[k++].iov_len = it->it_len;
	for (int32_t r = it->it_rfirst; r >= 0; r = g->g_runs[r].r_next) {
		iov[k].iov_base = g->g_arena + g->g_runs[r].r_off;
		iov[k++].iov_len = g->g_runs[r].r_len;
	}
	*niov = k;
	return 0;
}

int
tk_tun_gro_frame_copy(tk_tun_gro *g, unsigned i, uint8_t *buf, size_t cap,
    size_t *n)
{
	struct iovec iov[TK_TUN_GRO_MAX_IOV];
	unsigned niov;
	size_t len = 0;
	int rv;

	if ((rv = tk_tun_gro_frame_iov(g, i, iov, TK_TUN_GRO_MAX_IOV, &niov)) != 0)
		return rv;
	for (unsigned k = 0; k < niov; k++)
		len += iov[k].iov_len;
	if (len > cap)
		return TK_EMSGSIZE;
	len = 0;
	for (unsigned k = 0; k < niov; k++) {
		memcpy(buf + len, iov[k].iov_base, iov[k].iov_len);
		len += iov[k].iov_len;
	}
	*n = len;
	return 0;
}

void
tk_tun_gro_reset(tk_tun_gro *g)
{
	for (unsigned i = 0; i < g->g_nitems; i++)
		if (g->g_items[i].it_keyed)
			g->g_table[g->g_items[i].it_bucket] = -1;
	g->g_nitems = 0;
	g->g_nruns = 0;
	g->g_used = 0;
	g->g_sealed = false;
}

void
tk_tun_gro_stats_get(const tk_tun_gro *g, tk_tun_gro_stats *st)
{
	*st = g->g_st;
}
