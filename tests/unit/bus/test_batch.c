/* Packet batch codec: round trips, limits, and table tests of garbage. */
#include <stdlib.h>
#include <string.h>

#include "tk/bus.h"
#include "tk/bus_batch.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk/rng.h"
#include "tk_test.h"

void register_batch(void);

static void
fill_pkt(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed * 31 + i * 7);
}

static void
test_ip_roundtrip(void)
{
	tk_bus_batch_enc e;
	tk_bus_batch_view v;
	tk_bus_batch_rec rec;
	tk_bus_batch_stats st;
	nng_msg *m;
	uint8_t pkt[1420], chk[1420];
	unsigned n = 0, got = 0;
	int rv;

	memset(&st, 0, sizeof(st));
	memset(&rec, 0, sizeof(rec));
	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_enc_init(&e, TK_BATCH_IP, 0), 0);
	/* Fill to the 64 KiB target: 46 x (4 + 1420) + 8 = 65512. */
	for (;;) {
		fill_pkt(pkt, sizeof(pkt), n);
		rec.data = pkt;
		rec.len = sizeof(pkt);
		rv = tk_bus_batch_enc_add(&e, &rec);
		if (rv == TK_EMSGSIZE)
			break;
		CU_ASSERT_EQUAL_FATAL(rv, 0);
		n++;
	}
	CU_ASSERT_EQUAL(n, (TK_BATCH_TARGET - TK_BATCH_HDR_LEN) / (4 + 1420));
	CU_ASSERT_EQUAL(tk_bus_batch_enc_count(&e), n);
	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_enc_finish(&e, &m), 0);
	CU_ASSERT_EQUAL(nng_msg_len(m), TK_BATCH_HDR_LEN + n * (4 + 1420));
	CU_ASSERT(nng_msg_len(m) <= TK_BATCH_TARGET);
	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_parse_msg(&v, m, &st), 0);
	CU_ASSERT_EQUAL(tk_bus_batch_kind(&v), TK_BATCH_IP);
	while (tk_bus_batch_next(&v, &rec)) {
		fill_pkt(chk, sizeof(chk), got);
		CU_ASSERT_EQUAL(rec.len, sizeof(chk));
		TK_ASSERT_MEM_EQ(rec.data, chk, sizeof(chk));
		/* zero-copy: records point into the message */
		CU_ASSERT(rec.data > (const uint8_t *)nng_msg_body(m) &&
		    rec.data + rec.len <=
			(const uint8_t *)nng_msg_body(m) + nng_msg_len(m));
		got++;
	}
	CU_ASSERT_EQUAL(got, n);
	CU_ASSERT_EQUAL(st.bs_batches, 1);
	CU_ASSERT_EQUAL(st.bs_records, n);
	CU_ASSERT_EQUAL(st.bs_dropped, 0);
	nng_msg_free(m);
	/* The encoder is empty after finish; fini is then a no-op. */
	tk_bus_batch_enc_fini(&e);
}

static void
test_peer_roundtrip_and_reserve(void)
{
	tk_bus_batch_enc e;
	tk_bus_batch_view v;
	tk_bus_batch_rec rec, out;
	nng_msg *m;
	uint8_t *d;

	memset(&rec, 0, sizeof(rec));
	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_enc_init(&e, TK_BATCH_PEER, 4096),
	    0);
	for (unsigned i = 0; i < 3; i++) {
		memset(rec.key.b, 0x10 + (int)i, TK_KEY_LEN);
		rec.derp_region = 900 + i;
		rec.type = 0;
		/* Build the payload in place: no copy. */
		CU_ASSERT_EQUAL_FATAL(tk_bus_batch_enc_reserve(&e, &rec,
					  100 + i, &d),
		    0);
		memset(d, (int)i + 1, 100 + i);
	}
	CU_ASSERT_EQUAL(tk_bus_batch_enc_reserve(&e, &rec, 0, &d), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_bus_batch_enc_reserve(&e, &rec, 65536, &d),
	    TK_EINVAL);
	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_enc_finish(&e, &m), 0);
	CU_ASSERT_EQUAL(nng_msg_len(m),
	    TK_BATCH_HDR_LEN + 3 * (4 + 36) + 100 + 101 + 102);
	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_parse_msg(&v, m, NULL), 0);
	CU_ASSERT_EQUAL(tk_bus_batch_kind(&v), TK_BATCH_PEER);
	for (unsigned i = 0; i < 3; i++) {
		uint8_t want[TK_KEY_LEN];

		CU_ASSERT_TRUE_FATAL(tk_bus_batch_next(&v, &out));
		memset(want, 0x10 + (int)i, sizeof(want));
		TK_ASSERT_MEM_EQ(out.key.b, want, TK_KEY_LEN);
		CU_ASSERT_EQUAL(out.derp_region, 900 + i);
		CU_ASSERT_EQUAL(out.len, 100 + i);
		CU_ASSERT_EQUAL(out.data[0], i + 1);
		CU_ASSERT_EQUAL(out.data[out.len - 1], i + 1);
	}
	CU_ASSERT_FALSE(tk_bus_batch_next(&v, &out));
	nng_msg_free(m);
}

static void
test_encoder_limits(void)
{
	tk_bus_batch_enc e;
	tk_bus_batch_view v;
	tk_bus_batch_rec rec, out;
	nng_msg *m;
	uint8_t *big = calloc(1, TK_BATCH_REC_MAX);

	CU_ASSERT_FATAL(big != NULL);
	memset(&rec, 0, sizeof(rec));
	CU_ASSERT_EQUAL(tk_bus_batch_enc_init(&e, 7, 0), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_bus_batch_enc_init(&e, TK_BATCH_IP,
			    TK_BATCH_MAX + 1),
	    TK_EINVAL);
	/* Empty batches are not sent. */
	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_enc_init(&e, TK_BATCH_IP, 0), 0);
	CU_ASSERT_EQUAL(tk_bus_batch_enc_finish(&e, &m), TK_ESTATE);
	/* A record larger than the target fits alone... */
	big[0] = 0x45;
	big[TK_BATCH_REC_MAX - 1] = 0x99;
	rec.data = big;
	rec.len = TK_BATCH_REC_MAX;
	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_enc_add(&e, &rec), 0);
	/* ...and nothing more joins it. */
	rec.len = 1;
	CU_ASSERT_EQUAL(tk_bus_batch_enc_add(&e, &rec), TK_EMSGSIZE);
	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_enc_finish(&e, &m), 0);
	CU_ASSERT_EQUAL(nng_msg_len(m), TK_BATCH_HDR_LEN + 4 + TK_BATCH_REC_MAX);
	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_parse_msg(&v, m, NULL), 0);
	CU_ASSERT_TRUE_FATAL(tk_bus_batch_next(&v, &out));
	CU_ASSERT_EQUAL(out.len, TK_BATCH_REC_MAX);
	CU_ASSERT_EQUAL(out.data[0], 0x45);
	CU_ASSERT_EQUAL(out.data[TK_BATCH_REC_MAX - 1], 0x99);
	nng_msg_free(m);
	/* An unfinished encoder frees its message. */
	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_enc_init(&e, TK_BATCH_CONTROL, 0),
	    0);
	CU_ASSERT_EQUAL(tk_bus_batch_enc_add(&e, &rec), 0);
	tk_bus_batch_enc_fini(&e);
	free(big);
}

/* ---- table tests of bad input ----------------------------------------- */

struct bad_case {
	const char *name;
	const char *hex; /* the whole message */
	enum tk_batch_why why;
};

/* Header: 01 <kind> <count:2> 00000000.  IP record: <len:2> <type> 00. */
static const struct bad_case bad_cases[] = {
	{ "empty", "", TK_BATCH_WHY_SHORT },
	{ "half header", "01010001", TK_BATCH_WHY_SHORT },
	{ "7 bytes", "01010001000000", TK_BATCH_WHY_SHORT },
	{ "version 0", "00010001000000000001000045", TK_BATCH_WHY_VERSION },
	{ "version 2", "02010001000000000001000045", TK_BATCH_WHY_VERSION },
	{ "kind 0", "01000001000000000001000045", TK_BATCH_WHY_KIND },
	{ "kind 4", "01040001000000000001000045", TK_BATCH_WHY_KIND },
	{ "kind ff", "01ff0001000000000001000045", TK_BATCH_WHY_KIND },
	{ "reserved", "01010001000000010001000045", TK_BATCH_WHY_RESERVED },
	{ "record flags", "01010001000000000001000145",
	    TK_BATCH_WHY_RESERVED },
	{ "count 0", "0101000000000000", TK_BATCH_WHY_EMPTY },
	{ "count 0 + data", "01010000000000000001000045",
	    TK_BATCH_WHY_EMPTY },
	{ "no records", "0101000100000000", TK_BATCH_WHY_TRUNCATED },
	{ "partial record header", "010100010000000000",
	    TK_BATCH_WHY_TRUNCATED },
	{ "len past end", "0101000100000000000500004545",
	    TK_BATCH_WHY_TRUNCATED },
	{ "len ffff", "0101000100000000ffff00004545",
	    TK_BATCH_WHY_TRUNCATED },
	{ "count too high", "01010002000000000001000045",
	    TK_BATCH_WHY_TRUNCATED },
	{ "count ffff", "0101ffff000000000001000045",
	    TK_BATCH_WHY_TRUNCATED },
	{ "zero length", "010100010000000000000000", TK_BATCH_WHY_ZERO_LEN },
	{ "trailing byte", "0101000100000000000100004500",
	    TK_BATCH_WHY_TRAILING },
	{ "count too low", "010100010000000000010000450001000045",
	    TK_BATCH_WHY_TRAILING },
	/* PEER records need 40 header bytes: 4 + region + key. */
	{ "peer record short", "01020001000000000001000045",
	    TK_BATCH_WHY_TRUNCATED },
};

static void
test_bad_table(void)
{
	for (size_t i = 0; i < TK_ARRAY_LEN(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		unsigned char buf[64];
		size_t n;
		tk_bus_batch_view v;
		tk_bus_batch_stats st;
		int rv;

		CU_ASSERT_EQUAL_FATAL(strlen(c->hex) % 2, 0);
		n = tk_test_unhex(buf, sizeof(buf), c->hex);
		memset(&st, 0, sizeof(st));
		memset(&v, 0xa5, sizeof(v));
		rv = tk_bus_batch_parse(&v, n ? buf : (const uint8_t *)"", n,
		    &st);
		if (rv != TK_EPROTO || st.bs_why[c->why] != 1)
			fprintf(stderr, "\n  case \"%s\": rv %d why %s\n",
			    c->name, rv, tk_bus_batch_why_name(c->why));
		CU_ASSERT_EQUAL(rv, TK_EPROTO);
		CU_ASSERT_EQUAL(st.bs_dropped, 1);
		CU_ASSERT_EQUAL(st.bs_why[c->why], 1);
		CU_ASSERT_EQUAL(st.bs_batches, 0);
	}
}

/* Sanity of the table itself: a valid one-record batch parses. */
static void
test_good_minimal(void)
{
	unsigned char buf[64];
	size_t n = tk_test_unhex(buf, sizeof(buf), "01010001000000000001000045");
	tk_bus_batch_view v;
	tk_bus_batch_rec r;

	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_parse(&v, buf, n, NULL), 0);
	CU_ASSERT_TRUE_FATAL(tk_bus_batch_next(&v, &r));
	CU_ASSERT_EQUAL(r.len, 1);
	CU_ASSERT_EQUAL(r.data[0], 0x45);
	CU_ASSERT_FALSE(tk_bus_batch_next(&v, &r));
}

static void
test_oversize(void)
{
	size_t n = TK_BATCH_MAX + 1;
	uint8_t *p = calloc(1, n);
	tk_bus_batch_view v;
	tk_bus_batch_stats st;

	CU_ASSERT_FATAL(p != NULL);
	memset(&st, 0, sizeof(st));
	p[0] = 1;
	p[1] = TK_BATCH_IP;
	CU_ASSERT_EQUAL(tk_bus_batch_parse(&v, p, n, &st), TK_EPROTO);
	CU_ASSERT_EQUAL(st.bs_why[TK_BATCH_WHY_OVERSIZE], 1);
	free(p);
}

/* Every strict prefix of a valid batch is rejected, never over-read. */
static void
test_every_truncation(void)
{
	tk_bus_batch_enc e;
	tk_bus_batch_rec rec;
	tk_bus_batch_view v;
	tk_bus_batch_stats st;
	nng_msg *m;
	uint8_t pkt[300];
	uint8_t *copy;
	size_t n;

	memset(&rec, 0, sizeof(rec));
	memset(&st, 0, sizeof(st));
	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_enc_init(&e, TK_BATCH_PEER, 0), 0);
	for (unsigned i = 0; i < 5; i++) {
		fill_pkt(pkt, sizeof(pkt), i);
		rec.data = pkt;
		rec.len = 50 + i * 50;
		CU_ASSERT_EQUAL(tk_bus_batch_enc_add(&e, &rec), 0);
	}
	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_enc_finish(&e, &m), 0);
	n = nng_msg_len(m);
	for (size_t k = 0; k < n; k++) {
		/* exact-size heap copy so ASan catches any over-read */
		copy = malloc(k ? k : 1);
		memcpy(copy, nng_msg_body(m), k);
		CU_ASSERT_EQUAL(tk_bus_batch_parse(&v, copy, k, &st),
		    TK_EPROTO);
		free(copy);
	}
	CU_ASSERT_EQUAL(st.bs_dropped, n);
	CU_ASSERT_EQUAL(st.bs_batches, 0);
	CU_ASSERT_EQUAL(tk_bus_batch_parse_msg(&v, m, &st), 0);
	nng_msg_free(m);
}

/* Random garbage and random bit flips never crash; accepted ones iterate
 * within bounds and exactly `count` records. */
static void
test_random_garbage(void)
{
	tk_fake_rng fr;
	tk_bus_batch_stats st;
	unsigned accepted = 0;

	tk_fake_rng_init(&fr, 7);
	memset(&st, 0, sizeof(st));
	for (unsigned i = 0; i < 20000; i++) {
		size_t n = tk_rng_uniform(&fr.fr_rng, 600);
		uint8_t *p = malloc(n ? n : 1);
		tk_bus_batch_view v;
		tk_bus_batch_rec r;

		tk_rng_fill(&fr.fr_rng, p, n);
		if (n >= 8 && (i & 1)) { /* plausible header */
			p[0] = 1;
			p[1] = (uint8_t)(1 + i % 3);
			p[2] = 0;
			p[3] = (uint8_t)(1 + i % 4);
			memset(p + 4, 0, 4);
		}
		if (tk_bus_batch_parse(&v, p, n, &st) == 0) {
			unsigned cnt = 0;

			accepted++;
			while (tk_bus_batch_next(&v, &r)) {
				CU_ASSERT(r.data >= p && r.data + r.len <= p + n);
				cnt++;
			}
			CU_ASSERT_EQUAL(cnt, v.bv_count);
		}
		free(p);
	}
	CU_ASSERT_EQUAL(st.bs_batches + st.bs_dropped, 20000);
	CU_ASSERT_EQUAL(st.bs_batches, accepted);
}

/* The batcher: records into batches on a pair socket, a kind change sends
 * the batch, an uncarriable record and a refused batch are counted. */
static void
test_batcher(void)
{
	nng_socket a, b;
	tk_bus_batcher bt;
	nng_msg *m;
	tk_bus_batch_view v;
	tk_bus_batch_rec r, got;
	uint8_t data[200];

	memset(data, 7, sizeof(data));
	CU_ASSERT_EQUAL_FATAL(tk_bus_open(&a, TK_BUS_PAIR), 0);
	CU_ASSERT_EQUAL_FATAL(tk_bus_open(&b, TK_BUS_PAIR), 0);
	tk_bus_batcher_init(&bt, a, 0);
	r = (tk_bus_batch_rec){ .data = data, .len = 100 };
	CU_ASSERT_EQUAL_FATAL(tk_bus_listen(b, "inproc://batcher/test", NULL, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(tk_bus_dial(a, "inproc://batcher/test", NULL,
				  TK_BUS_DIAL_WAIT, NULL), 0);
	/* two IP records, then a PEER record: the IP batch goes first */
	CU_ASSERT_EQUAL(tk_bus_batcher_add(&bt, TK_BATCH_IP, &r), 0);
	CU_ASSERT_EQUAL(tk_bus_batcher_add(&bt, TK_BATCH_IP, &r), 0);
	tk_bus_batch_rec pr = { .derp_region = 3, .data = data, .len = 50 };
	memset(pr.key.b, 9, 32);
	CU_ASSERT_EQUAL(tk_bus_batcher_add(&bt, TK_BATCH_PEER, &pr), 0);
	tk_bus_batcher_flush(&bt);
	tk_bus_batcher_flush(&bt); /* nothing more: no empty batch */
	CU_ASSERT_EQUAL_FATAL(nng_recvmsg(b, &m, 0), 0);
	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_parse_msg(&v, m, NULL), 0);
	CU_ASSERT_EQUAL(tk_bus_batch_kind(&v), TK_BATCH_IP);
	int n = 0;
	while (tk_bus_batch_next(&v, &got))
		n++;
	CU_ASSERT_EQUAL(n, 2);
	nng_msg_free(m);
	CU_ASSERT_EQUAL_FATAL(nng_recvmsg(b, &m, 0), 0);
	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_parse_msg(&v, m, NULL), 0);
	CU_ASSERT_EQUAL(tk_bus_batch_kind(&v), TK_BATCH_PEER);
	CU_ASSERT(tk_bus_batch_next(&v, &got) && got.derp_region == 3 &&
	    got.len == 50 && got.key.b[0] == 9);
	nng_msg_free(m);
	CU_ASSERT_EQUAL(nng_recvmsg(b, &m, NNG_FLAG_NONBLOCK), NNG_EAGAIN);
	/* a record no batch can carry: dropped, counted, nothing sent */
	uint64_t before = bt.dropped;
	tk_bus_batch_rec huge = { .data = data, .len = 70000 };
	CU_ASSERT_NOT_EQUAL(tk_bus_batcher_add(&bt, TK_BATCH_IP, &huge), 0);
	CU_ASSERT_EQUAL(bt.dropped, before + 1);
	CU_ASSERT_EQUAL(bt.recs, 3);
	CU_ASSERT_EQUAL(bt.dropped, 1);
	tk_bus_batcher_fini(&bt);
	nng_close(a);
	nng_close(b);
}

void
register_batch(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_ip_roundtrip),
		TK_TEST(test_peer_roundtrip_and_reserve),
		TK_TEST(test_encoder_limits),
		TK_TEST(test_good_minimal),
		TK_TEST(test_bad_table),
		TK_TEST(test_oversize),
		TK_TEST(test_every_truncation),
		TK_TEST(test_random_garbage),
		TK_TEST(test_batcher),
		TK_TEST_END,
	};

	tk_test_suite("batch", cases);
}
