/*
 * The allowed-IPs trie: fixed cases, a randomized comparison against a naive
 * linear longest-prefix match, and allocation-failure sweeps.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk/err.h"
#include "tk/mem.h"
#include "tk/wg_aip.h"
#include "tk_test.h"

void register_aip(void);

/* Peers are just distinct addresses. */
static char peers[64];
#define P(i) ((void *)&peers[(i)])

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t
xr(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint64_t
live_allocs(void)
{
	tk_alloc_stats st;

	tk_alloc_stats_get(&st);
	return st.as_allocs - st.as_frees;
}

static size_t
alen(int fam)
{
	return fam == 4 ? 4 : 16;
}

static unsigned
maxbits(int fam)
{
	return fam == 4 ? 32 : 128;
}

static unsigned
getbit(const uint8_t *a, unsigned i)
{
	return (a[i / 8] >> (7 - i % 8)) & 1u;
}

static void
setbit(uint8_t *a, unsigned i, unsigned v)
{
	uint8_t m = (uint8_t)(0x80u >> (i % 8));

	a[i / 8] = (uint8_t)(v ? a[i / 8] | m : a[i / 8] & ~m);
}

/* --- the model: a plain array of (masked prefix, peer) ----------------- */

typedef struct pfx {
	int fam;
	unsigned bits;
	uint8_t a[16]; /* masked; bytes past the family's length are zero */
	void *peer;
} pfx;

typedef struct model {
	pfx *v;
	size_t n, cap;
} model;

static void
mask_into(uint8_t out[16], int fam, const uint8_t *addr, unsigned bits)
{
	memset(out, 0, 16);
	memcpy(out, addr, alen(fam));
	for (unsigned i = bits; i < maxbits(fam); i++)
		setbit(out, i, 0);
}

static bool
pfx_matches(const pfx *p, const uint8_t *addr)
{
	unsigned full = p->bits / 8, rest = p->bits % 8;

	if (memcmp(p->a, addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t m = (uint8_t)(0xffu << (8 - rest));
	return (p->a[full] & m) == (addr[full] & m);
}

static ptrdiff_t
model_find(const model *m, int fam, const uint8_t *addr, unsigned bits)
{
	uint8_t k[16];

	mask_into(k, fam, addr, bits);
	for (size_t i = 0; i < m->n; i++)
		if (m->v[i].fam == fam && m->v[i].bits == bits &&
		    memcmp(m->v[i].a, k, 16) == 0)
			return (ptrdiff_t)i;
	return -1;
}

static void
model_insert(model *m, int fam, const uint8_t *addr, unsigned bits, void *peer)
{
	ptrdiff_t i = model_find(m, fam, addr, bits);

	if (i >= 0) {
		m->v[i].peer = peer;
		return;
	}
	if (m->n == m->cap) {
		m->cap = m->cap ? 2 * m->cap : 64;
		m->v = realloc(m->v, m->cap * sizeof(*m->v));
		CU_ASSERT_FATAL(m->v != NULL);
	}
	pfx *p = &m->v[m->n++];
	p->fam = fam;
	p->bits = bits;
	p->peer = peer;
	mask_into(p->a, fam, addr, bits);
}

static bool
model_remove(model *m, int fam, const uint8_t *addr, unsigned bits)
{
	ptrdiff_t i = model_find(m, fam, addr, bits);

	if (i < 0)
		return false;
	m->v[i] = m->v[--m->n];
	return true;
}

static size_t
model_remove_peer(model *m, void *peer)
{
	size_t k = 0;

	for (size_t i = 0; i < m->n;)
		if (m->v[i].peer == peer) {
			m->v[i] = m->v[--m->n];
			k++;
		} else {
			i++;
		}
	return k;
}

static void *
naive_lookup(const model *m, int fam, const uint8_t *addr)
{
	const pfx *best = NULL;

	for (size_t i = 0; i < m->n; i++) {
		const pfx *p = &m->v[i];

		if (p->fam == fam && (best == NULL || p->bits > best->bits) &&
		    pfx_matches(p, addr))
			best = p;
	}
	return best ? best->peer : NULL;
}

static int
pfx_cmp(const void *x, const void *y)
{
	const pfx *a = x, *b = y;
	int c;

	if (a->fam != b->fam)
		return a->fam < b->fam ? -1 : 1;
	if (a->bits != b->bits)
		return a->bits < b->bits ? -1 : 1;
	if ((c = memcmp(a->a, b->a, 16)) != 0)
		return c;
	if (a->peer != b->peer)
		return (char *)a->peer < (char *)b->peer ? -1 : 1;
	return 0;
}

/* --- checking the table against the model ------------------------------ */

typedef struct walk_acc {
	model got;
	bool bad; /* a visited prefix with host bits set or bad family/bits */
} walk_acc;

static void
walk_cb(void *arg, int fam, const uint8_t *addr, unsigned bits, void *peer)
{
	walk_acc *w = arg;
	uint8_t k[16];

	if ((fam != 4 && fam != 6) || bits > maxbits(fam) || peer == NULL) {
		w->bad = true;
		return;
	}
	mask_into(k, fam, addr, bits);
	if (memcmp(k, addr, alen(fam)) != 0)
		w->bad = true; /* walk must report masked prefixes */
	/* append without merging: duplicates must show up */
	if (w->got.n == w->got.cap) {
		w->got.cap = w->got.cap ? 2 * w->got.cap : 64;
		w->got.v = realloc(w->got.v, w->got.cap * sizeof(pfx));
		if (w->got.v == NULL)
			abort();
	}
	pfx *p = &w->got.v[w->got.n++];
	p->fam = fam;
	p->bits = bits;
	p->peer = peer;
	memcpy(p->a, k, 16);
}

/* Walk (all, or one peer's) equals the model (filtered), as a set. */
static bool
walk_matches(const tk_wg_aip *t, const model *m, void *peer)
{
	walk_acc w = { { NULL, 0, 0 }, false };
	model want = { NULL, 0, 0 };
	bool ok;

	tk_wg_aip_walk(t, peer, walk_cb, &w);
	want.v = malloc((m->n + 1) * sizeof(pfx));
	CU_ASSERT_FATAL(want.v != NULL);
	for (size_t i = 0; i < m->n; i++)
		if (peer == NULL || m->v[i].peer == peer)
			want.v[want.n++] = m->v[i];
	if (w.got.n > 1)
		qsort(w.got.v, w.got.n, sizeof(pfx), pfx_cmp);
	if (want.n > 1)
		qsort(want.v, want.n, sizeof(pfx), pfx_cmp);
	ok = !w.bad && w.got.n == want.n;
	for (size_t i = 0; ok && i < want.n; i++)
		ok = pfx_cmp(&w.got.v[i], &want.v[i]) == 0;
	if (!ok)
		fprintf(stderr, "walk: got %zu prefixes, want %zu%s\n", w.got.n,
		    want.n, w.bad ? " (bad entry)" : "");
	free(w.got.v);
	free(want.v);
	return ok;
}

/*
 * A lookup address biased to land in or right next to a live prefix: the
 * prefix's bits, then random host bits; sometimes the last prefix bit
 * flipped (a near miss).
 */
static int
rand_addr(const model *m, uint8_t a[16])
{
	int fam;

	for (int i = 0; i < 16; i++)
		a[i] = (uint8_t)xr();
	if (m->n == 0 || xr() % 4 == 0)
		return xr() % 2 ? 4 : 6;
	const pfx *p = &m->v[xr() % m->n];
	fam = p->fam;
	for (unsigned i = 0; i < p->bits; i++)
		setbit(a, i, getbit(p->a, i));
	if (p->bits > 0 && xr() % 4 == 0)
		setbit(a, p->bits - 1, !getbit(p->a, p->bits - 1));
	return fam;
}

static bool
lookups_match(const tk_wg_aip *t, const model *m, int n)
{
	for (int i = 0; i < n; i++) {
		uint8_t a[16];
		int fam = rand_addr(m, a);
		void *want = naive_lookup(m, fam, a), *got;

		got = tk_wg_aip_lookup(t, fam, a);
		if (got != want) {
			fprintf(stderr, "lookup v%d #%d: got %p want %p\n",
			    fam, i, got, want);
			return false;
		}
	}
	return true;
}

static bool
consistent(const tk_wg_aip *t, const model *m, int nlookups)
{
	if (tk_wg_aip_count(t) != m->n) {
		fprintf(stderr, "count %zu, model %zu\n", tk_wg_aip_count(t),
		    m->n);
		return false;
	}
	return walk_matches(t, m, NULL) && lookups_match(t, m, nlookups);
}

/* --- fixed cases -------------------------------------------------------- */

static const uint8_t any[16];

static void
v4(uint8_t a[4], unsigned x, unsigned y, unsigned z, unsigned w)
{
	a[0] = (uint8_t)x, a[1] = (uint8_t)y, a[2] = (uint8_t)z;
	a[3] = (uint8_t)w;
}

static void *
lk4(const tk_wg_aip *t, unsigned x, unsigned y, unsigned z, unsigned w)
{
	uint8_t a[4];

	v4(a, x, y, z, w);
	return tk_wg_aip_lookup(t, 4, a);
}

static int
ins4(tk_wg_aip *t, unsigned x, unsigned y, unsigned z, unsigned w,
    unsigned bits, void *peer)
{
	uint8_t a[4];

	v4(a, x, y, z, w);
	return tk_wg_aip_insert(t, 4, a, bits, peer);
}

static int
rm4(tk_wg_aip *t, unsigned x, unsigned y, unsigned z, unsigned w,
    unsigned bits)
{
	uint8_t a[4];

	v4(a, x, y, z, w);
	return tk_wg_aip_remove(t, 4, a, bits);
}

static void
test_aip_empty(void)
{
	uint64_t live0 = live_allocs();
	tk_wg_aip *t = NULL;
	model m = { NULL, 0, 0 };

	CU_ASSERT_FATAL(tk_wg_aip_new(&t) == 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_EQUAL(tk_wg_aip_count(t), 0);
	CU_ASSERT_PTR_NULL(tk_wg_aip_lookup(t, 4, any));
	CU_ASSERT_PTR_NULL(tk_wg_aip_lookup(t, 6, any));
	CU_ASSERT_EQUAL(tk_wg_aip_remove(t, 4, any, 0), TK_ENOENT);
	CU_ASSERT_EQUAL(tk_wg_aip_remove(t, 6, any, 128), TK_ENOENT);
	CU_ASSERT_EQUAL(tk_wg_aip_remove_peer(t, P(1)), 0);
	CU_ASSERT(walk_matches(t, &m, NULL));
	tk_wg_aip_free(t);
	tk_wg_aip_free(NULL);
	CU_ASSERT_EQUAL(live_allocs(), live0);
}

static void
test_aip_default_routes(void)
{
	uint64_t live0 = live_allocs();
	tk_wg_aip *t;
	uint8_t a[16];

	CU_ASSERT_FATAL(tk_wg_aip_new(&t) == 0);
	/* host bits of a /0 are all host bits */
	CU_ASSERT_EQUAL(ins4(t, 1, 2, 3, 4, 0, P(1)), 0);
	CU_ASSERT_PTR_EQUAL(lk4(t, 0, 0, 0, 0), P(1));
	CU_ASSERT_PTR_EQUAL(lk4(t, 255, 255, 255, 255), P(1));
	CU_ASSERT_PTR_EQUAL(lk4(t, 128, 0, 0, 1), P(1));
	CU_ASSERT_PTR_NULL(tk_wg_aip_lookup(t, 6, any)); /* families apart */
	memset(a, 0xff, sizeof(a));
	CU_ASSERT_EQUAL(tk_wg_aip_insert(t, 6, a, 0, P(2)), 0);
	CU_ASSERT_PTR_EQUAL(tk_wg_aip_lookup(t, 6, any), P(2));
	CU_ASSERT_PTR_EQUAL(tk_wg_aip_lookup(t, 6, a), P(2));
	CU_ASSERT_PTR_EQUAL(lk4(t, 10, 0, 0, 1), P(1));
	CU_ASSERT_EQUAL(tk_wg_aip_count(t), 2);
	/* the same default again, different host bits: a replace */
	CU_ASSERT_EQUAL(ins4(t, 0, 0, 0, 0, 0, P(3)), 0);
	CU_ASSERT_EQUAL(tk_wg_aip_count(t), 2);
	CU_ASSERT_PTR_EQUAL(lk4(t, 9, 9, 9, 9), P(3));
	CU_ASSERT_EQUAL(rm4(t, 7, 7, 7, 7, 0), 0);
	CU_ASSERT_PTR_NULL(lk4(t, 9, 9, 9, 9));
	CU_ASSERT_PTR_EQUAL(tk_wg_aip_lookup(t, 6, a), P(2));
	CU_ASSERT_EQUAL(tk_wg_aip_remove(t, 6, any, 0), 0);
	CU_ASSERT_PTR_NULL(tk_wg_aip_lookup(t, 6, a));
	CU_ASSERT_EQUAL(tk_wg_aip_count(t), 0);
	tk_wg_aip_free(t);
	CU_ASSERT_EQUAL(live_allocs(), live0);
}

static void
test_aip_hosts(void)
{
	uint64_t live0 = live_allocs();
	tk_wg_aip *t;
	uint8_t h6[16] = { 0xfd, 0x7a, 0x11, 0x5c, [15] = 0x01 }, n6[16];

	CU_ASSERT_FATAL(tk_wg_aip_new(&t) == 0);
	CU_ASSERT_EQUAL(ins4(t, 192, 168, 4, 28, 32, P(1)), 0);
	CU_ASSERT_PTR_EQUAL(lk4(t, 192, 168, 4, 28), P(1));
	CU_ASSERT_PTR_NULL(lk4(t, 192, 168, 4, 29));
	CU_ASSERT_PTR_NULL(lk4(t, 192, 168, 4, 27));
	CU_ASSERT_PTR_NULL(lk4(t, 64, 168, 4, 28));
	CU_ASSERT_EQUAL(tk_wg_aip_insert(t, 6, h6, 128, P(2)), 0);
	CU_ASSERT_PTR_EQUAL(tk_wg_aip_lookup(t, 6, h6), P(2));
	memcpy(n6, h6, 16);
	n6[15] ^= 1; /* the last bit differs */
	CU_ASSERT_PTR_NULL(tk_wg_aip_lookup(t, 6, n6));
	memcpy(n6, h6, 16);
	n6[0] ^= 0x80; /* the first bit differs */
	CU_ASSERT_PTR_NULL(tk_wg_aip_lookup(t, 6, n6));
	/* a v4 host does not match the v6 address with the same first bytes */
	uint8_t v4like[16] = { 192, 168, 4, 28 };
	CU_ASSERT_PTR_NULL(tk_wg_aip_lookup(t, 6, v4like));
	/* neighbouring hosts: a branch at bit 127 / 31 */
	CU_ASSERT_EQUAL(ins4(t, 192, 168, 4, 29, 32, P(3)), 0);
	CU_ASSERT_PTR_EQUAL(lk4(t, 192, 168, 4, 28), P(1));
	CU_ASSERT_PTR_EQUAL(lk4(t, 192, 168, 4, 29), P(3));
	memcpy(n6, h6, 16);
	n6[15] ^= 1;
	CU_ASSERT_EQUAL(tk_wg_aip_insert(t, 6, n6, 128, P(4)), 0);
	CU_ASSERT_PTR_EQUAL(tk_wg_aip_lookup(t, 6, h6), P(2));
	CU_ASSERT_PTR_EQUAL(tk_wg_aip_lookup(t, 6, n6), P(4));
	CU_ASSERT_EQUAL(tk_wg_aip_count(t), 4);
	/* the branch between two hosts is not a prefix of its own */
	CU_ASSERT_EQUAL(rm4(t, 192, 168, 4, 28, 31), TK_ENOENT);
	CU_ASSERT_EQUAL(tk_wg_aip_remove(t, 6, h6, 127), TK_ENOENT);
	CU_ASSERT_EQUAL(tk_wg_aip_count(t), 4);
	tk_wg_aip_free(t);
	CU_ASSERT_EQUAL(live_allocs(), live0);
}

/* Nested prefixes in every insertion order; lookups at every level. */
static void
test_aip_overlap(void)
{
	static const struct {
		uint8_t a[4];
		unsigned bits;
	} nest[5] = {
		{ { 10, 0, 0, 0 }, 8 }, { { 10, 1, 0, 0 }, 16 },
		{ { 10, 1, 2, 0 }, 24 }, { { 10, 1, 2, 3 }, 32 },
		{ { 10, 1, 128, 0 }, 17 },
	};
	uint64_t live0 = live_allocs();
	int order[5] = { 0, 1, 2, 3, 4 };
	int nperm = 0;

	/* Heap's algorithm over the 120 orders */
	int c[5] = { 0 };
	for (int i = 0;;) {
		tk_wg_aip *t;

		CU_ASSERT_FATAL(tk_wg_aip_new(&t) == 0);
		for (int k = 0; k < 5; k++)
			CU_ASSERT_EQUAL(tk_wg_aip_insert(t, 4, nest[order[k]].a,
			    nest[order[k]].bits, P(order[k])), 0);
		CU_ASSERT_EQUAL(tk_wg_aip_count(t), 5);
		CU_ASSERT_PTR_EQUAL(lk4(t, 10, 1, 2, 3), P(3));
		CU_ASSERT_PTR_EQUAL(lk4(t, 10, 1, 2, 4), P(2));
		CU_ASSERT_PTR_EQUAL(lk4(t, 10, 1, 3, 3), P(1));
		CU_ASSERT_PTR_EQUAL(lk4(t, 10, 1, 127, 255), P(1));
		CU_ASSERT_PTR_EQUAL(lk4(t, 10, 1, 128, 0), P(4));
		CU_ASSERT_PTR_EQUAL(lk4(t, 10, 1, 255, 255), P(4));
		CU_ASSERT_PTR_EQUAL(lk4(t, 10, 2, 2, 3), P(0));
		CU_ASSERT_PTR_EQUAL(lk4(t, 10, 255, 255, 255), P(0));
		CU_ASSERT_PTR_NULL(lk4(t, 11, 1, 2, 3));
		CU_ASSERT_PTR_NULL(lk4(t, 9, 1, 2, 3));
		/* removing the middle levels falls back to the next shorter */
		CU_ASSERT_EQUAL(rm4(t, 10, 1, 0, 0, 16), 0);
		CU_ASSERT_PTR_EQUAL(lk4(t, 10, 1, 3, 3), P(0));
		CU_ASSERT_PTR_EQUAL(lk4(t, 10, 1, 2, 3), P(3));
		CU_ASSERT_PTR_EQUAL(lk4(t, 10, 1, 200, 3), P(4));
		CU_ASSERT_EQUAL(rm4(t, 10, 1, 2, 3, 32), 0);
		CU_ASSERT_PTR_EQUAL(lk4(t, 10, 1, 2, 3), P(2));
		CU_ASSERT_EQUAL(rm4(t, 10, 0, 0, 0, 8), 0);
		CU_ASSERT_PTR_NULL(lk4(t, 10, 1, 3, 3));
		CU_ASSERT_PTR_EQUAL(lk4(t, 10, 1, 2, 3), P(2));
		CU_ASSERT_EQUAL(tk_wg_aip_count(t), 2);
		tk_wg_aip_free(t);
		nperm++;

		while (i < 5 && c[i] >= i)
			c[i++] = 0;
		if (i >= 5)
			break;
		int j = i % 2 ? c[i] : 0, tmp = order[j];
		order[j] = order[i];
		order[i] = tmp;
		c[i]++;
		i = 0;
	}
	CU_ASSERT_EQUAL(nperm, 120);
	CU_ASSERT_EQUAL(live_allocs(), live0);
}

static void
test_aip_replace_and_mask(void)
{
	uint64_t live0 = live_allocs();
	tk_wg_aip *t;
	model m = { NULL, 0, 0 };
	uint8_t a6[16], b6[16];

	CU_ASSERT_FATAL(tk_wg_aip_new(&t) == 0);
	/* host bits are dropped: 192.168.1.77/24 is 192.168.1.0/24 */
	CU_ASSERT_EQUAL(ins4(t, 192, 168, 1, 77, 24, P(1)), 0);
	model_insert(&m, 4, (const uint8_t[]){ 192, 168, 1, 0 }, 24, P(1));
	CU_ASSERT(walk_matches(t, &m, NULL));
	CU_ASSERT_PTR_EQUAL(lk4(t, 192, 168, 1, 0), P(1));
	CU_ASSERT_PTR_EQUAL(lk4(t, 192, 168, 1, 255), P(1));
	CU_ASSERT_PTR_NULL(lk4(t, 192, 168, 0, 255));
	/* the same prefix spelt differently replaces the peer */
	CU_ASSERT_EQUAL(ins4(t, 192, 168, 1, 200, 24, P(2)), 0);
	m.v[0].peer = P(2);
	CU_ASSERT_EQUAL(tk_wg_aip_count(t), 1);
	CU_ASSERT_PTR_EQUAL(lk4(t, 192, 168, 1, 77), P(2));
	CU_ASSERT(walk_matches(t, &m, NULL));
	/* a different length is a different prefix */
	CU_ASSERT_EQUAL(ins4(t, 192, 168, 1, 200, 25, P(3)), 0);
	model_insert(&m, 4, (const uint8_t[]){ 192, 168, 1, 128 }, 25, P(3));
	CU_ASSERT_EQUAL(tk_wg_aip_count(t), 2);
	CU_ASSERT_PTR_EQUAL(lk4(t, 192, 168, 1, 127), P(2));
	CU_ASSERT_PTR_EQUAL(lk4(t, 192, 168, 1, 128), P(3));
	/* removal masks too */
	CU_ASSERT_EQUAL(rm4(t, 192, 168, 1, 1, 24), 0);
	model_remove(&m, 4, (const uint8_t[]){ 192, 168, 1, 0 }, 24);
	CU_ASSERT_PTR_NULL(lk4(t, 192, 168, 1, 127));
	CU_ASSERT_PTR_EQUAL(lk4(t, 192, 168, 1, 129), P(3));
	CU_ASSERT(walk_matches(t, &m, NULL));

	/* v6: a /65 with host bits set, at a byte boundary and not */
	memset(a6, 0xff, sizeof(a6));
	a6[0] = 0x20, a6[1] = 0x01, a6[2] = 0x0d, a6[3] = 0xb8;
	CU_ASSERT_EQUAL(tk_wg_aip_insert(t, 6, a6, 65, P(4)), 0);
	model_insert(&m, 6, a6, 65, P(4));
	CU_ASSERT_EQUAL(tk_wg_aip_insert(t, 6, a6, 64, P(5)), 0);
	model_insert(&m, 6, a6, 64, P(5));
	CU_ASSERT(walk_matches(t, &m, NULL));
	memcpy(b6, a6, 16);
	memset(b6 + 8, 0, 8); /* bit 64 clear: only the /64 */
	CU_ASSERT_PTR_EQUAL(tk_wg_aip_lookup(t, 6, b6), P(5));
	b6[8] = 0x80; /* bit 64 set: the /65 */
	CU_ASSERT_PTR_EQUAL(tk_wg_aip_lookup(t, 6, b6), P(4));
	b6[7] ^= 1; /* bit 63 differs: neither */
	CU_ASSERT_PTR_NULL(tk_wg_aip_lookup(t, 6, b6));
	CU_ASSERT_EQUAL(tk_wg_aip_count(t), 3);
	CU_ASSERT(consistent(t, &m, 2000));
	tk_wg_aip_free(t);
	free(m.v);
	CU_ASSERT_EQUAL(live_allocs(), live0);
}

static void
test_aip_remove(void)
{
	uint64_t live0 = live_allocs();
	tk_wg_aip *t;

	CU_ASSERT_FATAL(tk_wg_aip_new(&t) == 0);
	uint64_t empty = live_allocs();
	CU_ASSERT_EQUAL(ins4(t, 10, 1, 2, 0, 24, P(1)), 0);
	CU_ASSERT_EQUAL(ins4(t, 10, 1, 3, 0, 24, P(2)), 0);
	/* 10.1.2.0/23 exists only as the branch between the two */
	CU_ASSERT_EQUAL(rm4(t, 10, 1, 2, 0, 23), TK_ENOENT);
	CU_ASSERT_EQUAL(rm4(t, 10, 1, 2, 0, 25), TK_ENOENT);
	CU_ASSERT_EQUAL(rm4(t, 10, 1, 4, 0, 24), TK_ENOENT);
	CU_ASSERT_EQUAL(rm4(t, 10, 0, 0, 0, 8), TK_ENOENT);
	CU_ASSERT_EQUAL(tk_wg_aip_count(t), 2);
	/* filling the branch makes it a prefix; removing it restores */
	CU_ASSERT_EQUAL(ins4(t, 10, 1, 2, 0, 23, P(3)), 0);
	CU_ASSERT_EQUAL(tk_wg_aip_count(t), 3);
	CU_ASSERT_PTR_EQUAL(lk4(t, 10, 1, 2, 9), P(1));
	CU_ASSERT_PTR_EQUAL(lk4(t, 10, 1, 3, 9), P(2));
	CU_ASSERT_EQUAL(rm4(t, 10, 1, 2, 0, 24), 0);
	CU_ASSERT_PTR_EQUAL(lk4(t, 10, 1, 2, 9), P(3));
	CU_ASSERT_EQUAL(rm4(t, 10, 1, 2, 0, 24), TK_ENOENT);
	CU_ASSERT_EQUAL(rm4(t, 10, 1, 3, 99, 23), 0);
	CU_ASSERT_PTR_NULL(lk4(t, 10, 1, 2, 9));
	CU_ASSERT_PTR_EQUAL(lk4(t, 10, 1, 3, 9), P(2));
	CU_ASSERT_EQUAL(rm4(t, 10, 1, 3, 0, 24), 0);
	CU_ASSERT_EQUAL(tk_wg_aip_count(t), 0);
	CU_ASSERT_EQUAL(live_allocs(), empty); /* every node freed */
	CU_ASSERT_PTR_NULL(lk4(t, 10, 1, 3, 9));
	/* the emptied table works as new */
	CU_ASSERT_EQUAL(ins4(t, 10, 1, 3, 0, 24, P(4)), 0);
	CU_ASSERT_PTR_EQUAL(lk4(t, 10, 1, 3, 9), P(4));
	tk_wg_aip_free(t);
	CU_ASSERT_EQUAL(live_allocs(), live0);
}

static void
test_aip_remove_peer_and_walk(void)
{
	uint64_t live0 = live_allocs();
	tk_wg_aip *t;
	model m = { NULL, 0, 0 };
	uint8_t a[16];

	CU_ASSERT_FATAL(tk_wg_aip_new(&t) == 0);
	uint64_t empty = live_allocs();
	for (unsigned i = 0; i < 40; i++) {
		memset(a, 0, sizeof(a));
		a[0] = 10, a[1] = (uint8_t)(i * 7), a[2] = (uint8_t)i;
		unsigned b4 = 16 + i % 17, b6 = 24 + i * 2;

		CU_ASSERT_EQUAL(tk_wg_aip_insert(t, 4, a, b4, P(i % 3)), 0);
		model_insert(&m, 4, a, b4, P(i % 3));
		a[0] = 0xfd;
		CU_ASSERT_EQUAL(tk_wg_aip_insert(t, 6, a, b6, P(i % 4)), 0);
		model_insert(&m, 6, a, b6, P(i % 4));
	}
	CU_ASSERT(consistent(t, &m, 3000));
	for (int p = 0; p < 5; p++)
		CU_ASSERT(walk_matches(t, &m, P(p)));
	CU_ASSERT_EQUAL(tk_wg_aip_remove_peer(t, NULL), 0);
	CU_ASSERT_EQUAL(tk_wg_aip_remove_peer(t, P(9)), 0);
	size_t k = model_remove_peer(&m, P(1));
	CU_ASSERT(k > 0);
	CU_ASSERT_EQUAL(tk_wg_aip_remove_peer(t, P(1)), k);
	CU_ASSERT_EQUAL(tk_wg_aip_remove_peer(t, P(1)), 0);
	CU_ASSERT(walk_matches(t, &m, P(1)));
	CU_ASSERT(consistent(t, &m, 3000));
	k = model_remove_peer(&m, P(0));
	CU_ASSERT_EQUAL(tk_wg_aip_remove_peer(t, P(0)), k);
	k = model_remove_peer(&m, P(2)) + model_remove_peer(&m, P(3));
	CU_ASSERT_EQUAL(tk_wg_aip_remove_peer(t, P(2)) +
	    tk_wg_aip_remove_peer(t, P(3)), k);
	CU_ASSERT_EQUAL(m.n, 0);
	CU_ASSERT(consistent(t, &m, 500));
	CU_ASSERT_EQUAL(live_allocs(), empty); /* every node freed */
	tk_wg_aip_free(t);
	free(m.v);
	CU_ASSERT_EQUAL(live_allocs(), live0);
}

static void
test_aip_einval(void)
{
	uint64_t live0 = live_allocs();
	tk_wg_aip *t;
	uint8_t a[16] = { 10, 1, 2, 3 };

	CU_ASSERT_FATAL(tk_wg_aip_new(&t) == 0);
	CU_ASSERT_EQUAL(tk_wg_aip_insert(t, 4, a, 33, P(1)), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_wg_aip_insert(t, 4, a, 128, P(1)), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_wg_aip_insert(t, 6, a, 129, P(1)), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_wg_aip_insert(t, 6, a, ~0u, P(1)), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_wg_aip_insert(t, 0, a, 8, P(1)), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_wg_aip_insert(t, 5, a, 8, P(1)), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_wg_aip_insert(t, -4, a, 8, P(1)), TK_EINVAL);
	/* NULL would be indistinguishable from "no route" */
	CU_ASSERT_EQUAL(tk_wg_aip_insert(t, 4, a, 8, NULL), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_wg_aip_remove(t, 4, a, 33), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_wg_aip_remove(t, 6, a, 129), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_wg_aip_remove(t, 7, a, 8), TK_EINVAL);
	CU_ASSERT_PTR_NULL(tk_wg_aip_lookup(t, 5, a));
	CU_ASSERT_EQUAL(tk_wg_aip_count(t), 0);
	/* the limits themselves are fine */
	CU_ASSERT_EQUAL(tk_wg_aip_insert(t, 4, a, 32, P(1)), 0);
	CU_ASSERT_EQUAL(tk_wg_aip_insert(t, 6, a, 128, P(1)), 0);
	CU_ASSERT_PTR_NULL(tk_wg_aip_lookup(t, 0, a));
	CU_ASSERT_EQUAL(tk_wg_aip_count(t), 2);
	tk_wg_aip_free(t);
	CU_ASSERT_EQUAL(live_allocs(), live0);
}

/* --- randomized comparison with the naive model ------------------------- */

/* Anchors that random prefixes branch off from, so they nest and overlap. */
static uint8_t anchors[2][6][16];

static void
rand_prefix(int *fam, uint8_t a[16], unsigned *bits)
{
	unsigned max, from;
	const uint8_t *anc;

	*fam = xr() % 2 ? 4 : 6;
	max = maxbits(*fam);
	anc = anchors[*fam == 6][xr() % 6];
	memcpy(a, anc, 16);
	from = (unsigned)(xr() % (max + 1)); /* keep the anchor up to here */
	for (unsigned i = from; i < max; i++)
		setbit(a, i, (unsigned)(xr() & 1));
	if (*fam == 4)
		memset(a + 4, 0, 12);
	switch (xr() % 8) {
	case 0:
		*bits = (unsigned)(xr() % 9); /* short, incl. /0 */
		break;
	case 1:
	case 2:
		*bits = max - (unsigned)(xr() % 4); /* hosts and near-hosts */
		break;
	case 3:
		*bits = from; /* ends where it leaves the anchor */
		break;
	default:
		*bits = (unsigned)(xr() % (max + 1));
		break;
	}
	/* leave host bits set half the time: the table must mask them */
	if (xr() % 2 == 0)
		for (unsigned i = *bits; i < max; i++)
			setbit(a, i, 0);
}

static void
init_anchors(void)
{
	for (int f = 0; f < 2; f++)
		for (int k = 0; k < 6; k++)
			for (int i = 0; i < 16; i++)
				anchors[f][k][i] = (uint8_t)xr();
	/* two anchors close to each other in each family */
	memcpy(anchors[0][1], anchors[0][0], 16);
	anchors[0][1][3] ^= 0x04;
	memcpy(anchors[1][1], anchors[1][0], 16);
	anchors[1][1][9] ^= 0x10;
}

static void
test_aip_random_oracle(void)
{
	enum { OPS = 6000 };
	uint64_t live0 = live_allocs();
	model m = { NULL, 0, 0 };
	tk_wg_aip *t;
	size_t inserts = 0, removes = 0, misses = 0, peer_removes = 0;

	init_anchors();
	CU_ASSERT_FATAL(tk_wg_aip_new(&t) == 0);
	uint64_t empty = live_allocs();
	for (int op = 0; op < OPS; op++) {
		unsigned kind = (unsigned)(xr() % 100), bits;
		uint8_t a[16];
		int fam, rv;

		if (kind < 72 || m.n == 0) {
			void *peer = P(xr() % 48);

			rand_prefix(&fam, a, &bits);
			rv = tk_wg_aip_insert(t, fam, a, bits, peer);
			CU_ASSERT_EQUAL_FATAL(rv, 0);
			model_insert(&m, fam, a, bits, peer);
			inserts++;
		} else if (kind < 92) {
			/* an existing prefix, spelt with random host bits */
			const pfx *p = &m.v[xr() % m.n];

			fam = p->fam, bits = p->bits;
			memcpy(a, p->a, 16);
			for (unsigned i = bits; i < maxbits(fam); i++)
				setbit(a, i, (unsigned)(xr() & 1));
			rv = tk_wg_aip_remove(t, fam, a, bits);
			CU_ASSERT_EQUAL_FATAL(rv, 0);
			CU_ASSERT_FATAL(model_remove(&m, fam, a, bits));
			removes++;
		} else if (kind < 99) {
			/* probably absent */
			rand_prefix(&fam, a, &bits);
			bool there = model_find(&m, fam, a, bits) >= 0;
			rv = tk_wg_aip_remove(t, fam, a, bits);
			CU_ASSERT_EQUAL_FATAL(rv, there ? 0 : TK_ENOENT);
			if (there)
				model_remove(&m, fam, a, bits);
			misses += !there;
		} else {
			void *peer = P(xr() % 48);
			size_t k = model_remove_peer(&m, peer);

			size_t got = tk_wg_aip_remove_peer(t, peer);

			CU_ASSERT_EQUAL_FATAL(got, k);
			peer_removes++;
		}
		CU_ASSERT_EQUAL_FATAL(tk_wg_aip_count(t), m.n);
		if (op % 1000 == 999)
			CU_ASSERT_FATAL(consistent(t, &m, 3000));
	}
	CU_ASSERT_FATAL(consistent(t, &m, 20000));
	for (int p = 0; p < 48; p += 7)
		CU_ASSERT(walk_matches(t, &m, P(p)));
	fprintf(stderr, "aip oracle: %zu inserts, %zu removes, %zu misses, "
	    "%zu peer removes, %zu live\n", inserts, removes, misses,
	    peer_removes, m.n);
	CU_ASSERT(m.n > 1000);
	/* empty it prefix by prefix */
	while (m.n > 0) {
		pfx p = m.v[xr() % m.n];

		int rv = tk_wg_aip_remove(t, p.fam, p.a, p.bits);

		CU_ASSERT_EQUAL_FATAL(rv, 0);
		model_remove(&m, p.fam, p.a, p.bits);
		if (m.n % 500 == 0)
			CU_ASSERT_FATAL(consistent(t, &m, 500));
	}
	CU_ASSERT_EQUAL(live_allocs(), empty); /* every node freed */
	/* and the same through remove_peer */
	for (int i = 0; i < 2000; i++) {
		unsigned bits;
		uint8_t a[16];
		int fam;
		void *peer = P(xr() % 4);

		rand_prefix(&fam, a, &bits);
		int rv = tk_wg_aip_insert(t, fam, a, bits, peer);

		CU_ASSERT_EQUAL_FATAL(rv, 0);
		model_insert(&m, fam, a, bits, peer);
	}
	for (int p = 0; p < 4; p++) {
		size_t k = model_remove_peer(&m, P(p));

		CU_ASSERT_EQUAL(tk_wg_aip_remove_peer(t, P(p)), k);
		CU_ASSERT_FATAL(consistent(t, &m, 1000));
	}
	CU_ASSERT_EQUAL(live_allocs(), empty);
	tk_wg_aip_free(t);
	free(m.v);
	CU_ASSERT_EQUAL(live_allocs(), live0);
}

/* --- allocation failures ------------------------------------------------ */

static void
test_aip_fault_new(void)
{
	uint64_t live0 = live_allocs();
	tk_wg_aip *t = (tk_wg_aip *)(void *)P(0);

	TK_TEST_NEED_FAULT_INJECTION();
	tk_fault_arm(1);
	int rv = tk_wg_aip_new(&t);
	bool fired = tk_fault_fired();
	tk_fault_disarm();
	if (fired) {
		CU_ASSERT_EQUAL(rv, TK_ENOMEM);
		CU_ASSERT_PTR_EQUAL(t, P(0)); /* out untouched */
	} else {
		/* built without TK_FAULT_INJECTION */
		CU_ASSERT_EQUAL_FATAL(rv, 0);
		tk_wg_aip_free(t);
	}
	CU_ASSERT_EQUAL(live_allocs(), live0);
}

/*
 * Each insert shape (new leaf, a leaf above an existing node, a leaf plus a
 * branch, a replace, filling a branch) against every fault point in turn:
 * TK_ENOMEM must leave the table exactly as before.
 */
static void
test_aip_fault_sweep(void)
{
	static const struct {
		int fam;
		uint8_t a[16];
		unsigned bits;
		bool allocates;
	} shapes[] = {
		{ 4, { 10, 1, 4, 0 }, 24, true },     /* sibling: +branch */
		{ 4, { 10, 0, 0, 0 }, 8, true },      /* above */
		{ 4, { 10, 1, 2, 128 }, 25, true },   /* below */
		{ 4, { 0 }, 0, true },		      /* default route on top */
		{ 4, { 10, 1, 2, 0 }, 24, false },    /* replace */
		{ 4, { 10, 1, 2, 0 }, 23, false },    /* fills the branch */
		{ 4, { 172, 16, 0, 0 }, 12, true },   /* far away: new root */
		{ 6, { 0xfd, 0, 1 }, 48, true },      /* v6 sibling */
		{ 6, { 0xfd }, 8, true },	      /* v6 above */
		{ 6, { 0xfd, [15] = 9 }, 128, true }, /* v6 host below */
	};
	static const uint8_t b1[4] = { 10, 1, 2, 0 }, b2[4] = { 10, 1, 3, 0 };
	static const uint8_t b3[16] = { 0xfd, 0, 0 };
	uint64_t live0 = live_allocs();
	int fired_total = 0;
	bool injecting;

	TK_TEST_NEED_FAULT_INJECTION();
	injecting = true;

	for (size_t s = 0; s < TK_ARRAY_LEN(shapes); s++) {
		bool done = false;
		int fired_here = 0;

		for (unsigned long n = 1; n < 16 && !done; n++) {
			model m = { NULL, 0, 0 };
			tk_wg_aip *t;

			CU_ASSERT_FATAL(tk_wg_aip_new(&t) == 0);
			/* the base table: two siblings under a /23 branch */
			CU_ASSERT_FATAL(ins4(t, 10, 1, 2, 0, 24, P(1)) == 0);
			model_insert(&m, 4, b1, 24, P(1));
			CU_ASSERT_FATAL(ins4(t, 10, 1, 3, 0, 24, P(2)) == 0);
			model_insert(&m, 4, b2, 24, P(2));
			CU_ASSERT_FATAL(tk_wg_aip_insert(t, 6, b3, 48, P(3)) ==
			    0);
			model_insert(&m, 6, b3, 48, P(3));

			tk_fault_arm(n);
			int rv = tk_wg_aip_insert(t, shapes[s].fam, shapes[s].a,
			    shapes[s].bits, P(7));
			bool fired = tk_fault_fired();
			tk_fault_disarm();
			if (fired) {
				CU_ASSERT_EQUAL(rv, TK_ENOMEM);
				fired_here++;
			} else {
				CU_ASSERT_EQUAL(rv, 0);
				model_insert(&m, shapes[s].fam, shapes[s].a,
				    shapes[s].bits, P(7));
				done = true;
			}
			if (!consistent(t, &m, 400)) {
				fprintf(stderr, "shape %zu, fault %lu\n", s, n);
				CU_FAIL("table changed by a failed insert");
			}
			/* and it still works afterwards */
			CU_ASSERT_EQUAL(tk_wg_aip_insert(t, shapes[s].fam,
			    shapes[s].a, shapes[s].bits, P(8)), 0);
			model_insert(&m, shapes[s].fam, shapes[s].a,
			    shapes[s].bits, P(8));
			CU_ASSERT(consistent(t, &m, 400));
			tk_wg_aip_free(t);
			free(m.v);
		}
		CU_ASSERT(done);
		if (!shapes[s].allocates) {
			CU_ASSERT_EQUAL(fired_here, 0);
		} else if (injecting) {
			CU_ASSERT(fired_here > 0);
		}
		fired_total += fired_here;
	}
	fprintf(stderr, "aip fault sweep: %d injected failures\n", fired_total);
	CU_ASSERT_EQUAL(live_allocs(), live0);
}

/* Random inserts with a fault armed at a random near point. */
static void
test_aip_fault_random(void)
{
	enum { OPS = 3000 };
	uint64_t live0 = live_allocs();
	model m = { NULL, 0, 0 };
	tk_wg_aip *t;
	int failed = 0;

	init_anchors();
	CU_ASSERT_FATAL(tk_wg_aip_new(&t) == 0);
	for (int op = 0; op < OPS; op++) {
		unsigned bits;
		uint8_t a[16];
		int fam, rv;
		void *peer = P(xr() % 16);

		rand_prefix(&fam, a, &bits);
		if (m.n > 0 && xr() % 5 == 0) {
			/* a remove never allocates: unaffected by the fault */
			const pfx *p = &m.v[xr() % m.n];

			fam = p->fam, bits = p->bits;
			memcpy(a, p->a, 16);
			tk_fault_arm(1);
			rv = tk_wg_aip_remove(t, fam, a, bits);
			tk_fault_disarm();
			CU_ASSERT_EQUAL_FATAL(rv, 0);
			model_remove(&m, fam, a, bits);
			continue;
		}
		tk_fault_arm(1 + xr() % 3);
		rv = tk_wg_aip_insert(t, fam, a, bits, peer);
		bool fired = tk_fault_fired();
		tk_fault_disarm();
		if (fired) {
			CU_ASSERT_EQUAL_FATAL(rv, TK_ENOMEM);
			failed++;
		} else {
			CU_ASSERT_EQUAL_FATAL(rv, 0);
			model_insert(&m, fam, a, bits, peer);
		}
		CU_ASSERT_EQUAL_FATAL(tk_wg_aip_count(t), m.n);
		if (op % 500 == 499)
			CU_ASSERT_FATAL(consistent(t, &m, 2000));
	}
	CU_ASSERT_FATAL(consistent(t, &m, 10000));
	fprintf(stderr, "aip fault random: %d failed inserts, %zu live\n",
	    failed, m.n);
	tk_wg_aip_free(t);
	free(m.v);
	CU_ASSERT_EQUAL(live_allocs(), live0);
}

void
register_aip(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_aip_empty),
		TK_TEST(test_aip_default_routes),
		TK_TEST(test_aip_hosts),
		TK_TEST(test_aip_overlap),
		TK_TEST(test_aip_replace_and_mask),
		TK_TEST(test_aip_remove),
		TK_TEST(test_aip_remove_peer_and_walk),
		TK_TEST(test_aip_einval),
		TK_TEST(test_aip_random_oracle),
		TK_TEST(test_aip_fault_new),
		TK_TEST(test_aip_fault_sweep),
		TK_TEST(test_aip_fault_random),
		TK_TEST_END,
	};
	tk_test_suite("wg_aip", cases);
}
