/*
 * The replay window (kernel-selftest-style cases, a full-window sweep, a
 * random oracle) and the allowed-IPs trie against a naive longest-match.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk/err.h"
#include "tk/mem.h"
#include "tk/wg_aip.h"
#include "tk/wg_replay.h"
#include "tk_test.h"

void register_wg_tables(void);

#define W TK_WG_REPLAY_WINDOW

static void
test_replay_cases(void)
{
	/* counter, expected: the shape of the Linux selftest's sequence */
	static const struct {
		uint64_t c;
		bool ok;
	} t[] = {
		{ 0, true }, { 1, true }, { 1, false }, { 9, true }, { 8, true },
		{ 7, true }, { 7, false }, { W, true }, { 6, true }, { 0, false },
		{ W + 1, true }, { 2, true }, { 1, false }, { W + 2, true },
		{ 2, false }, { W + 3, true }, { 3, false }, { W + 4, true },
		{ 3, false }, { 2 * W, true }, { W, false }, { W + 1, false },
		{ 2 * W + 1, true }, { W + 1, false }, { 2 * W - 1, true },
		{ 2 * W - 1, false },
	};
	tk_wg_replay r;

	tk_wg_replay_init(&r);
	for (size_t i = 0; i < TK_ARRAY_LEN(t); i++) {
		bool got = tk_wg_replay_check(&r, t[i].c);
		if (got != t[i].ok)
			fprintf(stderr, "case %zu: counter %llu got %d want %d\n", i,
			    (unsigned long long)t[i].c, got, t[i].ok);
		CU_ASSERT_EQUAL(got, t[i].ok);
	}
	/* the reject-after-messages edge */
	tk_wg_replay_init(&r);
	CU_ASSERT(tk_wg_replay_check(&r, TK_WG_REJECT_AFTER_MESSAGES - 1));
	CU_ASSERT(!tk_wg_replay_check(&r, TK_WG_REJECT_AFTER_MESSAGES));
	CU_ASSERT(!tk_wg_replay_check(&r, UINT64_MAX));
	CU_ASSERT(!tk_wg_replay_check(&r, TK_WG_REJECT_AFTER_MESSAGES - 1));
	CU_ASSERT(tk_wg_replay_check(&r, TK_WG_REJECT_AFTER_MESSAGES - 2));
	CU_ASSERT(!tk_wg_replay_check(&r, TK_WG_REJECT_AFTER_MESSAGES - 1 - W));
}

static void
test_replay_sweep(void)
{
	const uint64_t N = 20000;
	tk_wg_replay r;

	tk_wg_replay_init(&r);
	CU_ASSERT(tk_wg_replay_check(&r, N));
	for (uint64_t c = N - W + 1; c < N; c++) {
		CU_ASSERT_FATAL(tk_wg_replay_check(&r, c));
		CU_ASSERT_FATAL(!tk_wg_replay_check(&r, c));
	}
	for (uint64_t c = 0; c <= N - W; c++)
		CU_ASSERT_FATAL(!tk_wg_replay_check(&r, c));
	/* a jump of exactly a full ring clears everything */
	CU_ASSERT(tk_wg_replay_check(&r, N + 100000));
	for (uint64_t c = N + 100000 - W + 1; c < N + 100000; c += 97)
		CU_ASSERT_FATAL(tk_wg_replay_check(&r, c));
}

static uint64_t rs = 88172645463325252ull;

static uint64_t
xr(void)
{
	rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
	return rs;
}

static void
test_replay_oracle(void)
{
	enum { SPAN = 40000 };
	static uint8_t seen[SPAN];
	uint64_t max = 0;
	bool any = false;
	tk_wg_replay r;

	tk_wg_replay_init(&r);
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < 200000; i++) {
		uint64_t base = max > 9000 ? max - 9000 : 0;
		uint64_t c = base + xr() % 9300;
		if (c >= SPAN)
			c = SPAN - 1 - xr() % 50;
		bool want = !seen[c] && (!any || c > max || max - c < W);
		bool got = tk_wg_replay_check(&r, c);
		CU_ASSERT_FATAL(got == want);
		if (got) {
			seen[c] = 1;
			if (!any || c > max)
				max = c;
			any = true;
		}
	}
}

/* --- allowed IPs ------------------------------------------------------- */

typedef struct pfx {
	int fam;
	uint8_t a[16];
	unsigned bits;
	void *peer;
	bool live;
} pfx;

static bool
matches(const pfx *p, const uint8_t *addr)
{
	for (unsigned i = 0; i < p->bits; i++) {
		unsigned bit_p = (p->a[i / 8] >> (7 - i % 8)) & 1;
		unsigned bit_a = (addr[i / 8] >> (7 - i % 8)) & 1;
		if (bit_p != bit_a)
			return false;
	}
	return true;
}

static void *
naive(const pfx *ps, size_t n, int fam, const uint8_t *addr)
{
	const pfx *best = NULL;

	for (size_t i = 0; i < n; i++)
		if (ps[i].live && ps[i].fam == fam && matches(&ps[i], addr) &&
		    (best == NULL || ps[i].bits > best->bits))
			best = &ps[i];
	return best ? best->peer : NULL;
}

static void
mask(pfx *p)
{
	size_t len = p->fam == 4 ? 4 : 16;

	for (unsigned i = p->bits; i < len * 8; i++)
		p->a[i / 8] &= (uint8_t)~(0x80u >> (i % 8));
}

static void
test_aip_fixed(void)
{
	tk_wg_aip *t;
	int p1, p2, p3;
	uint8_t any4[4] = { 0 }, h[4] = { 10, 0, 0, 5 }, n8[4] = { 10, 9, 9, 9 };
	uint8_t any6[16] = { 0 }, h6[16] = { 0xfd, 0, [15] = 1 };

	CU_ASSERT_FATAL(tk_wg_aip_new(&t) == 0);
	CU_ASSERT(tk_wg_aip_insert(t, 4, any4, 0, &p1) == 0);
	CU_ASSERT(tk_wg_aip_insert(t, 4, n8, 8, &p2) == 0); /* host bits masked */
	CU_ASSERT(tk_wg_aip_insert(t, 4, h, 32, &p3) == 0);
	CU_ASSERT(tk_wg_aip_insert(t, 6, any6, 0, &p1) == 0);
	CU_ASSERT(tk_wg_aip_insert(t, 6, h6, 128, &p3) == 0);
	CU_ASSERT(tk_wg_aip_insert(t, 4, h, 33, &p3) == TK_EINVAL);
	CU_ASSERT(tk_wg_aip_insert(t, 6, h6, 129, &p3) == TK_EINVAL);
	CU_ASSERT(tk_wg_aip_insert(t, 5, h, 1, &p3) == TK_EINVAL);
	CU_ASSERT(tk_wg_aip_lookup(t, 4, h) == &p3);
	uint8_t x[4] = { 10, 0, 0, 6 }, y[4] = { 11, 0, 0, 6 };
	CU_ASSERT(tk_wg_aip_lookup(t, 4, x) == &p2);
	CU_ASSERT(tk_wg_aip_lookup(t, 4, y) == &p1);
	CU_ASSERT(tk_wg_aip_lookup(t, 6, h6) == &p3);
	CU_ASSERT(tk_wg_aip_count(t) == 5);
	/* replace: same prefix, new peer */
	CU_ASSERT(tk_wg_aip_insert(t, 4, x, 8, &p3) == 0);
	CU_ASSERT(tk_wg_aip_lookup(t, 4, x) == &p3 && tk_wg_aip_count(t) == 5);
	CU_ASSERT(tk_wg_aip_remove(t, 4, h, 32) == 0);
	CU_ASSERT(tk_wg_aip_remove(t, 4, h, 32) == TK_ENOENT);
	CU_ASSERT(tk_wg_aip_lookup(t, 4, h) == &p3); /* now the /8 */
	CU_ASSERT(tk_wg_aip_remove_peer(t, &p3) == 2);
	CU_ASSERT(tk_wg_aip_lookup(t, 4, h) == &p1);
	CU_ASSERT(tk_wg_aip_lookup(t, 6, h6) == &p1);
	CU_ASSERT(tk_wg_aip_count(t) == 2);
	tk_wg_aip_free(t);
}

static void
test_aip_oracle(void)
{
	enum { NP = 3000, NPEERS = 40 };
	static pfx ps[NP];
	static int peers[NPEERS];
	tk_wg_aip *t;

	CU_ASSERT_FATAL(tk_wg_aip_new(&t) == 0);
	for (int i = 0; i < NP; i++) {
		pfx *p = &ps[i];
		p->fam = xr() % 2 ? 4 : 6;
		size_t len = p->fam == 4 ? 4 : 16;
		for (size_t j = 0; j < len; j++)
			p->a[j] = (uint8_t)xr();
		if (xr() % 2) /* cluster to force overlaps */
			p->a[0] = 10, p->a[1] = (uint8_t)(xr() % 4);
		p->bits = (unsigned)(xr() % (len * 8 + 1));
		mask(p);
		p->peer = &peers[xr() % NPEERS];
		/* a later identical prefix replaces an earlier one */
		for (int k = 0; k < i; k++)
			if (ps[k].live && ps[k].fam == p->fam && ps[k].bits == p->bits &&
			    memcmp(ps[k].a, p->a, 16) == 0)
				ps[k].live = false;
		p->live = true;
		CU_ASSERT_FATAL(tk_wg_aip_insert(t, p->fam, p->a, p->bits, p->peer) == 0);
		if (i % 5 == 4) { /* remove a random live one */
			pfx *v = &ps[xr() % (unsigned)(i + 1)];
			if (v->live) {
				CU_ASSERT_FATAL(tk_wg_aip_remove(t, v->fam, v->a, v->bits) == 0);
				v->live = false;
			}
		}
	}
	tk_wg_aip_remove_peer(t, &peers[0]);
	for (int i = 0; i < NP; i++)
		if (ps[i].peer == &peers[0])
			ps[i].live = false;
	size_t live = 0;
	for (int i = 0; i < NP; i++)
		live += ps[i].live;
	CU_ASSERT(tk_wg_aip_count(t) == live);
	for (int i = 0; i < 20000; i++) {
		uint8_t a[16];
		int fam = xr() % 2 ? 4 : 6;
		for (size_t j = 0; j < 16; j++)
			a[j] = (uint8_t)xr();
		if (xr() % 2) {
			const pfx *p = &ps[xr() % NP];
			fam = p->fam;
			memcpy(a, p->a, p->bits / 8);
		}
		CU_ASSERT_FATAL(tk_wg_aip_lookup(t, fam, a) == naive(ps, NP, fam, a));
	}
	tk_wg_aip_free(t);
}

static void
test_aip_alloc_failure(void)
{
	int p1, p2;
	uint8_t a[4] = { 10, 1, 2, 3 }, b[4] = { 10, 1, 3, 3 };

	for (int n = 1; n < 4; n++) {
		tk_wg_aip *t;
		CU_ASSERT_FATAL(tk_wg_aip_new(&t) == 0);
		CU_ASSERT_FATAL(tk_wg_aip_insert(t, 4, a, 24, &p1) == 0);
		tk_fault_arm(n);
		int rv = tk_wg_aip_insert(t, 4, b, 24, &p2);
		tk_fault_disarm();
		CU_ASSERT(rv == 0 || rv == TK_ENOMEM);
		CU_ASSERT(tk_wg_aip_lookup(t, 4, a) == &p1);
		CU_ASSERT(tk_wg_aip_lookup(t, 4, b) == (rv == 0 ? (void *)&p2 : NULL));
		tk_wg_aip_free(t);
	}
}

static const tk_test_case table_tests[] = {
	TK_TEST(test_replay_cases),
	TK_TEST(test_replay_sweep),
	TK_TEST(test_replay_oracle),
	TK_TEST(test_aip_fixed),
	TK_TEST(test_aip_oracle),
	TK_TEST(test_aip_alloc_failure),
	TK_TEST_END,
};

void
register_wg_tables(void)
{
	tk_test_suite("wg_tables", table_tests);
}
