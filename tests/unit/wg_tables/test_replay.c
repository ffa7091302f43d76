/*
 * The WireGuard anti-replay window: the sequence of the Linux kernel's
 * counter selftest, the window edges, full-window sweeps and a random
 * out-of-order oracle.
 *
 * The window rule under test (tk/wg_replay.h): with h the highest counter
 * accepted, c is accepted iff c < TK_WG_REJECT_AFTER_MESSAGES, c is new and
 * c + 8128 >= h, as in Linux and wireguard-go (both accept c == h - 8128;
 * EDGE marks the selftest cases that land exactly there).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk/mem.h"
#include "tk/wg_replay.h"
#include "tk_test.h"

void register_replay(void);

#define W	TK_WG_REPLAY_WINDOW
#define RAM	TK_WG_REJECT_AFTER_MESSAGES
#define T_LIM	((uint64_t)W + 1)
/* c == h - 8128: accepted, as by Linux and wireguard-go. */
#define EDGE	true
/* Counters tracked behind and including the highest: h - 8128 .. h. */
#define WIN	(W + 1)

/*
 * One check with its expectation; a rejection must leave the state
 * byte-for-byte unchanged.  Returns whether it went as expected.
 */
static bool
expect(tk_wg_replay *r, uint64_t c, bool want, const char *what, size_t i)
{
	tk_wg_replay before = *r;
	bool got = tk_wg_replay_check(r, c);

	if (got != want) {
		fprintf(stderr, "%s #%zu: counter %llu: got %d want %d\n", what,
		    i, (unsigned long long)c, got, want);
		CU_FAIL("replay check");
		return false;
	}
	if (!got && memcmp(&before, r, sizeof(*r)) != 0) {
		fprintf(stderr, "%s #%zu: counter %llu: reject changed state\n",
		    what, i, (unsigned long long)c);
		CU_FAIL("reject changed state");
		return false;
	}
	return true;
}

typedef struct step {
	uint64_t c;
	bool ok;
} step;

static void
run_steps(const step *s, size_t n, const char *what)
{
	tk_wg_replay r;

	tk_wg_replay_init(&r);
	for (size_t i = 0; i < n; i++)
		expect(&r, s[i].c, s[i].ok, what, i + 1);
}

/* The numbered sequence of drivers/net/wireguard/selftest/counter.c. */
static void
test_replay_linux_sequence(void)
{
	static const step s[] = {
		/*  1 */ { 0, true },
		/*  2 */ { 1, true },
		/*  3 */ { 1, false },
		/*  4 */ { 9, true },
		/*  5 */ { 8, true },
		/*  6 */ { 7, true },
		/*  7 */ { 7, false },
		/*  8 */ { T_LIM, true },
		/*  9 */ { T_LIM - 1, true },
		/* 10 */ { T_LIM - 1, false },
		/* 11 */ { T_LIM - 2, true },
		/* 12 */ { 2, true },
		/* 13 */ { 2, false },
		/* 14 */ { T_LIM + 16, true },
		/* 15 */ { 3, false },
		/* 16 */ { T_LIM + 16, false },
		/* 17 */ { T_LIM * 4, true },
		/* 18 */ { T_LIM * 4 - (T_LIM - 1), EDGE }, /* h - 8128 */
		/* 19 */ { 10, false },
		/* 20 */ { T_LIM * 4 - T_LIM, false },
		/* 21 */ { T_LIM * 4 - (T_LIM + 1), false },
		/* 22 */ { T_LIM * 4 - (T_LIM - 2), true }, /* h - 8127 */
		/* 23 */ { T_LIM * 4 + 1 - T_LIM, false },
		/* 24 */ { 0, false },
		/* 25 */ { RAM, false },
		/* 26 */ { RAM - 1, true },
		/* 27 */ { RAM, false },
		/* 28 */ { RAM - 1, false },
		/* 29 */ { RAM - 2, true },
		/* 30 */ { RAM + 1, false },
		/* 31 */ { RAM + 2, false },
		/* 32 */ { RAM - 2, false },
		/* 33 */ { RAM - 3, true },
		/* 34 */ { 0, false },
	};

	run_steps(s, TK_ARRAY_LEN(s), "linux");
}

/* The selftest's six loops, each from a fresh window. */
static void
test_replay_linux_loops(void)
{
	tk_wg_replay r;
	uint64_t i;

	/* 1..W in order, then 0 (= h - W) */
	tk_wg_replay_init(&r);
	for (i = 1; i <= W; i++)
		expect(&r, i, true, "loop1", i);
	expect(&r, 0, EDGE, "loop1", 0);
	expect(&r, 0, false, "loop1", 0);

	/* 2..W+1 in order, then 1 (= h - W) and 0 */
	tk_wg_replay_init(&r);
	for (i = 2; i <= W + 1; i++)
		expect(&r, i, true, "loop2", i);
	expect(&r, 1, EDGE, "loop2", 1);
	expect(&r, 0, false, "loop2", 0);

	/* W down to 0: the last one is h - W */
	tk_wg_replay_init(&r);
	for (i = W + 1; i-- > 0;)
		expect(&r, i, i == 0 ? EDGE : true, "loop3", i);

	/* W+1 down to 1, then 0 */
	tk_wg_replay_init(&r);
	for (i = W + 2; i-- > 1;)
		expect(&r, i, i == 1 ? EDGE : true, "loop4", i);
	expect(&r, 0, false, "loop4", 0);

	/* W down to 1, then W+1 moves the window, then 0 is out */
	tk_wg_replay_init(&r);
	for (i = W + 1; i-- > 1;)
		expect(&r, i, true, "loop5", i);
	expect(&r, W + 1, true, "loop5", W + 1);
	expect(&r, 0, false, "loop5", 0);

	/* W down to 1, then 0 (= h - W), then W+1 */
	tk_wg_replay_init(&r);
	for (i = W + 1; i-- > 1;)
		expect(&r, i, true, "loop6", i);
	expect(&r, 0, EDGE, "loop6", 0);
	expect(&r, W + 1, true, "loop6", W + 1);

	/* the same shapes one counter inside the window: all accepted */
	tk_wg_replay_init(&r);
	for (i = 1; i < W; i++)
		expect(&r, i, true, "inside1", i);
	expect(&r, 0, true, "inside1", 0);
	expect(&r, 0, false, "inside1", 0);
	tk_wg_replay_init(&r);
	for (i = W; i-- > 0;)
		expect(&r, i, true, "inside3", i);
}

/* h - (WIN - 1) = h - 8128 is the oldest counter accepted, h - WIN the
 * newest refused. */
static void
test_replay_edges(void)
{
	static const uint64_t highs[] = {
		WIN, WIN + 1, WIN + 63, WIN + 64, 64 * 1000, 64 * 1000 + 1,
		64 * 1000 - 1, 20000, 1000000007ull, (uint64_t)1 << 40,
		RAM - 1, RAM - 2, RAM - 64,
	};
	tk_wg_replay r;

	for (size_t k = 0; k < TK_ARRAY_LEN(highs); k++) {
		uint64_t h = highs[k];

		tk_wg_replay_init(&r);
		expect(&r, h, true, "edge", k);
		CU_ASSERT_EQUAL(r.rp_last, h + 1);
		expect(&r, h - WIN, false, "edge", k);
		expect(&r, h - WIN - 1, false, "edge", k);
		expect(&r, 0, false, "edge", k);
		expect(&r, h - (WIN - 1), true, "edge", k);
		expect(&r, h - (WIN - 1), false, "edge", k);
		expect(&r, h - 1, true, "edge", k);
		expect(&r, h, false, "edge", k);
		CU_ASSERT_EQUAL(r.rp_last, h + 1);
		if (h + 1 < RAM) {
			/* one step forward moves the far edge by one */
			expect(&r, h + 1, true, "edge", k);
			CU_ASSERT_EQUAL(r.rp_last, h + 2);
			expect(&r, h + 1 - WIN, false, "edge", k);
			expect(&r, h + 2 - WIN, true, "edge", k);
		}
	}
}

static void
test_replay_limits(void)
{
	tk_wg_replay r;

	/* the limit applies to a fresh window too */
	tk_wg_replay_init(&r);
	expect(&r, UINT64_MAX, false, "limit", 0);
	expect(&r, RAM, false, "limit", 1);
	expect(&r, RAM + 1, false, "limit", 2);
	CU_ASSERT_EQUAL(r.rp_last, 0);
	expect(&r, RAM - 1, true, "limit", 3);
	CU_ASSERT_EQUAL(r.rp_last, RAM);
	expect(&r, RAM - 1, false, "limit", 4);
	expect(&r, RAM, false, "limit", 5);
	expect(&r, UINT64_MAX, false, "limit", 6);
	expect(&r, UINT64_MAX - 1, false, "limit", 7);
	expect(&r, RAM - 1 - WIN, false, "limit", 8);
	expect(&r, RAM - WIN, true, "limit", 9);
	expect(&r, 0, false, "limit", 10);

	/* the first counter may be anything below the limit */
	tk_wg_replay_init(&r);
	expect(&r, 1000000000000ull, true, "first", 0);
	expect(&r, 0, false, "first", 1);
	expect(&r, 999999999999ull, true, "first", 2);
	tk_wg_replay_init(&r);
	expect(&r, 0, true, "zero", 0);
	CU_ASSERT_EQUAL(r.rp_last, 1);
	expect(&r, 0, false, "zero", 1);
}

/*
 * Big jumps must clear the ring words they pass over: fill a whole window,
 * jump by various distances, and every unseen counter of the new window must
 * be accepted (a stale bit from the previous lap would reject it).
 */
static void
test_replay_jumps(void)
{
	static const uint64_t jumps[] = {
		1, 63, 64, 65, 127 * 64, 127 * 64 + 1, 128 * 64 - 1, 128 * 64,
		128 * 64 + 1, 129 * 64, 3 * 128 * 64 + 17, 1000000,
	};
	tk_wg_replay r;

	for (size_t k = 0; k < TK_ARRAY_LEN(jumps); k++) {
		uint64_t base = 20000, h;
		bool ok = true;

		tk_wg_replay_init(&r);
		for (uint64_t c = base; c > base - WIN && ok; c--)
			ok = expect(&r, c, true, "fill", k);
		h = base + jumps[k];
		ok = ok && expect(&r, h, true, "jump", k);
		for (uint64_t c = h - 1; c > h - WIN && ok; c--)
			ok = expect(&r, c, c > base, "after jump", k);
		ok = ok && expect(&r, h - WIN, false, "after jump", k);
		CU_ASSERT_FATAL(ok);
	}
}

/*
 * After accepting N (and, in the second pass, a sparse set below it), every
 * counter in (N - WIN, N] not yet seen is accepted once and then refused, and
 * everything at or below N - WIN is refused.
 */
static void
test_replay_sweep(void)
{
	static const uint64_t ns[] = {
		20000, 20000 + 63, 64 * 400, 64 * 400 - 1,
	};
	tk_wg_replay r;

	for (size_t k = 0; k < TK_ARRAY_LEN(ns); k++) {
		const uint64_t N = ns[k];

		for (int sparse = 0; sparse < 2; sparse++) {
			bool ok = true;

			tk_wg_replay_init(&r);
			if (sparse) {
				for (uint64_t c = 0; c < N && ok; c += 3)
					ok = expect(&r, c, true, "pre", k);
			}
			ok = ok && expect(&r, N, true, "N", k);
			ok = ok && expect(&r, N, false, "N", k);
			/* ascending for one pass, descending for the other */
			for (uint64_t i = 1; i < WIN && ok; i++) {
				uint64_t c = sparse ? N - i : N - WIN + i;
				bool seen = sparse && c % 3 == 0;

				ok = expect(&r, c, !seen, "sweep", k) &&
				    expect(&r, c, false, "sweep again", k);
			}
			for (uint64_t c = 0; c <= N - WIN && ok; c++)
				ok = expect(&r, c, false, "old", k);
			CU_ASSERT_EQUAL(r.rp_last, N + 1);
			CU_ASSERT_FATAL(ok);
		}
	}
}

/* --- random out-of-order traffic against a naive oracle ---------------- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t
xr(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Seen counters as offsets from a base, plus the maximum. */
typedef struct oracle {
	uint64_t base;
	uint8_t *seen; /* bitmap over [base, base + span) */
	uint64_t span;
	uint64_t max;
	bool any;
} oracle;

static bool
oracle_want(const oracle *o, uint64_t c)
{
	uint64_t x = c - o->base;

	if (c >= RAM)
		return false;
	if (o->seen[x / 8] & (1u << (x % 8)))
		return false;
	return !o->any || c > o->max || o->max - c < WIN;
}

static void
oracle_note(oracle *o, uint64_t c)
{
	uint64_t x = c - o->base;

	o->seen[x / 8] |= (uint8_t)(1u << (x % 8));
	if (!o->any || c > o->max)
		o->max = c;
	o->any = true;
}

static bool
feed(tk_wg_replay *r, oracle *o, uint64_t c, size_t i)
{
	bool want = oracle_want(o, c);

	if (!expect(r, c, want, "oracle", i))
		return false;
	if (want)
		oracle_note(o, c);
	if (o->any && r->rp_last != o->max + 1) {
		CU_FAIL("rp_last is not highest + 1");
		return false;
	}
	return true;
}

/* Mixed traffic: mostly forward, reordering around the edge, replays, jumps. */
static void
random_traffic(uint64_t base, uint64_t span, int steps)
{
	oracle o = { base, calloc(span / 8 + 1, 1), span, 0, false };
	tk_wg_replay r;
	bool ok = true;

	CU_ASSERT_FATAL(o.seen != NULL);
	tk_wg_replay_init(&r);
	for (int i = 0; i < steps && ok; i++) {
		uint64_t top = o.any ? o.max - base : 0, x;
		unsigned kind = (unsigned)(xr() % 1000);

		if (kind < 450)
			x = top + xr() % 80; /* forward, small gaps */
		else if (kind < 850)
			x = top - TK_MIN(top, xr() % (WIN + 200)); /* behind */
		else if (kind < 900)
			x = top - TK_MIN(top, WIN - 2 + xr() % 4); /* the edge */
		else if (kind < 995)
			x = top - TK_MIN(top, xr() % 64); /* replays */
		else
			x = top + xr() % (3 * 8192); /* jumps past the ring */
		if (x >= span - 1) /* out of room: stay at the top end */
			x = span - 1 - xr() % 100;
		ok = feed(&r, &o, base + x, (size_t)i);
	}
	CU_ASSERT_FATAL(ok);
	free(o.seen);
}

static void
test_replay_oracle_traffic(void)
{
	random_traffic(0, (uint64_t)1 << 25, 300000);
	/* up against the limit: the top counters are >= RAM and refused */
	random_traffic(RAM - 2000000, 2000000 + 8192, 40000);
}

/*
 * Random permutations of 0..n-1: fully random (most late counters refused)
 * and shuffled within blocks of WIN/2 (everything in the window: all accepted,
 * then all refused as replays).
 */
static void
test_replay_oracle_permutation(void)
{
	enum { N = 3 * 8128 + 1000 };
	static uint64_t perm[N];

	for (int blocked = 0; blocked < 2; blocked++) {
		uint64_t blk = blocked ? WIN / 2 : N;
		oracle o = { 0, calloc(N / 8 + 1, 1), N, 0, false };
		tk_wg_replay r;
		bool ok = true;
		size_t accepted = 0;

		CU_ASSERT_FATAL(o.seen != NULL);
		for (uint64_t i = 0; i < N; i++)
			perm[i] = i;
		for (uint64_t s = 0; s < N; s += blk) {
			uint64_t len = TK_MIN(blk, N - s);

			for (uint64_t i = len; i > 1; i--) {
				uint64_t j = xr() % i, t = perm[s + i - 1];

				perm[s + i - 1] = perm[s + j];
				perm[s + j] = t;
			}
		}
		tk_wg_replay_init(&r);
		for (size_t i = 0; i < N && ok; i++) {
			bool want = oracle_want(&o, perm[i]);

			ok = feed(&r, &o, perm[i], i);
			accepted += want;
		}
		if (blocked) {
			CU_ASSERT_EQUAL(accepted, N);
			/* replays of the last window's worth are all refused */
			for (uint64_t c = N - WIN + 1; c < N && ok; c++)
				ok = expect(&r, c, false, "perm replay", c);
		} else {
			CU_ASSERT(accepted > WIN && accepted < N);
		}
		CU_ASSERT_FATAL(ok);
		free(o.seen);
	}
}

void
register_replay(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_replay_linux_sequence),
		TK_TEST(test_replay_linux_loops),
		TK_TEST(test_replay_edges),
		TK_TEST(test_replay_limits),
		TK_TEST(test_replay_jumps),
		TK_TEST(test_replay_sweep),
		TK_TEST(test_replay_oracle_traffic),
		TK_TEST(test_replay_oracle_permutation),
		TK_TEST_END,
	};
	tk_test_suite("wg_replay", cases);
}
