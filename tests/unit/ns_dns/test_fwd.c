/*
 * The sans-I/O forwarder (ns_dns_fwd.c) with a fake clock and RNG: fresh
 * upstream IDs, replies matched on ID + upstream + question and returned
 * under the client's ID, timeouts as SERVFAIL, the bound on outstanding
 * queries, and replies that match nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ns_dns.h"
#include "qbuild.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk_test.h"

void register_ns_dns_fwd(void);

struct fx {
	tk_fake_clock clk;
	tk_fake_rng rng;
	ns_dns_fwd *f;
	ns_dns_stats st;
	ns_dns_upstreams ups;
};

static void
fx_init(struct fx *x, size_t max)
{
	ns_dns_fwd_cfg cfg;

	memset(x, 0, sizeof(*x));
	tk_fake_clock_init(&x->clk, 1000 * TK_NSEC_PER_SEC, 0);
	tk_fake_rng_init(&x->rng, 7);
	memset(&cfg, 0, sizeof(cfg));
	cfg.clock = &x->clk.fc_clock;
	cfg.rng = &x->rng.fr_rng;
	cfg.timeout_ms = 5000;
	cfg.max_outstanding = max;
	CU_ASSERT_EQUAL_FATAL(ns_dns_fwd_new(&cfg, &x->f), 0);
	x->ups.n = 2;
	CU_ASSERT_EQUAL(tk_ipport_parse(&x->ups.up[0], "10.1.1.1:53", 11), 0);
	CU_ASSERT_EQUAL(tk_ipport_parse(&x->ups.up[1], "10.1.1.2:53", 11), 0);
}

/* Turns an upstream query into its response (QR set, one A record). */
static size_t
respond(uint8_t *q, size_t n)
{
	static const uint8_t a[] = { 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4,
		192, 0, 2, 1 };
	tk_be16_store(q + 2, (uint16_t)(tk_be16_load(q + 2) | NS_DNS_F_QR));
	tk_be16_store(q + 6, 1);
	memcpy(q + n, a, sizeof(a));
	return n + sizeof(a);
}

static void
test_forward_and_reply(void)
{
	struct fx x;
	uint8_t q[512], up[512], back[512];
	size_t n, ul, bl;
	tk_ipport to;
	ns_dns_client cl = { .transport = NS_DNS_UDP, .tag = 42 }, got;

	fx_init(&x, 0);
	n = qbuild(q, 0x1111, NS_DNS_F_RD, "www.corp.example", NS_DNS_TYPE_A,
	    NS_DNS_CLASS_IN, 1232);
	CU_ASSERT_EQUAL_FATAL(ns_dns_fwd_query(x.f, q, n, &cl, &x.ups, up,
				  sizeof(up), &ul, &to, &x.st),
	    0);
	CU_ASSERT_EQUAL(ul, n);
	CU_ASSERT(memcmp(up + 2, q + 2, n - 2) == 0); /* only the ID moved */
	uint16_t up_id = tk_be16_load(up);
	CU_ASSERT(to.port == 53 && to.ip.addr[3] == 1);
	CU_ASSERT_EQUAL(ns_dns_fwd_outstanding(x.f), 1);
	CU_ASSERT_EQUAL(ns_dns_fwd_next_deadline(x.f),
	    1001 * TK_NSEC_PER_SEC);

	size_t rn = respond(up, ul);
	/* from another address: not ours */
	CU_ASSERT_EQUAL(ns_dns_fwd_reply(x.f, up, rn, &x.ups.up[1], back,
			    sizeof(back), &bl, &got, &x.st),
	    TK_ENOENT);
	/* another ID */
	tk_be16_store(up, (uint16_t)(up_id + 1));
	CU_ASSERT_EQUAL(ns_dns_fwd_reply(x.f, up, rn, &to, back, sizeof(back),
			    &bl, &got, &x.st),
	    TK_ENOENT);
	tk_be16_store(up, up_id);
	/* another question (a spoofer guessing the ID) */
	up[13] ^= 0x01;
	CU_ASSERT_EQUAL(ns_dns_fwd_reply(x.f, up, rn, &to, back, sizeof(back),
			    &bl, &got, &x.st),
	    TK_ENOENT);
	up[13] ^= 0x01;
	CU_ASSERT_EQUAL(x.st.fwd_drop_unmatched, 3);
	/* garbage */
	CU_ASSERT_EQUAL(ns_dns_fwd_reply(x.f, up, 11, &to, back, sizeof(back),
			    &bl, &got, &x.st),
	    TK_ENOENT);
	CU_ASSERT_EQUAL(x.st.fwd_drop_garbage, 1);
	CU_ASSERT_EQUAL(ns_dns_fwd_outstanding(x.f), 1);
	/* the real one, with the name in another case (0x20 is fine) */
	up[13] ^= 0x20;
	CU_ASSERT_EQUAL(ns_dns_fwd_reply(x.f, up, rn, &to, back, sizeof(back),
			    &bl, &got, &x.st),
	    0);
	CU_ASSERT_EQUAL(bl, rn);
	CU_ASSERT_EQUAL(tk_be16_load(back), 0x1111);
	CU_ASSERT(memcmp(back + 2, up + 2, rn - 2) == 0);
	CU_ASSERT_EQUAL(got.tag, 42);
	CU_ASSERT_EQUAL(ns_dns_fwd_outstanding(x.f), 0);
	CU_ASSERT_EQUAL(ns_dns_fwd_next_deadline(x.f), 0);
	/* a second copy of the reply: matches nothing any more */
	CU_ASSERT_EQUAL(ns_dns_fwd_reply(x.f, up, rn, &to, back, sizeof(back),
			    &bl, &got, &x.st),
	    TK_ENOENT);
	CU_ASSERT_EQUAL(x.st.fwd_sent, 1);
	CU_ASSERT_EQUAL(x.st.fwd_replied, 1);
	ns_dns_fwd_free(x.f);
}

static void
test_timeout(void)
{
	struct fx x;
	uint8_t q[512], up[512], out[512];
	size_t n, ul, ol;
	tk_ipport to;
	ns_dns_client cl = { .transport = NS_DNS_TCP, .tag = 9 }, got;

	int send;
	tk_ipport again;

	fx_init(&x, 0);
	x.ups.n = 1; /* nobody to retry with */
	n = qbuild(q, 0x2222, NS_DNS_F_RD, "slow.example", NS_DNS_TYPE_AAAA,
	    NS_DNS_CLASS_IN, -1);
	CU_ASSERT_EQUAL_FATAL(ns_dns_fwd_query(x.f, q, n, &cl, &x.ups, up,
				  sizeof(up), &ul, &to, &x.st),
	    0);
	tk_fake_clock_advance(&x.clk, 4900 * TK_NSEC_PER_MSEC);
	CU_ASSERT_EQUAL(ns_dns_fwd_poll(x.f, out, sizeof(out), &ol, &send, &got,
			    &again, &x.st),
	    TK_ENOENT);
	tk_fake_clock_advance(&x.clk, 200 * TK_NSEC_PER_MSEC);
	CU_ASSERT_EQUAL(ns_dns_fwd_poll(x.f, out, sizeof(out), &ol, &send, &got,
			    &again, &x.st),
	    0);
	CU_ASSERT_EQUAL(send, NS_DNS_FWD_TO_CLIENT);
	CU_ASSERT_EQUAL(got.tag, 9);
	CU_ASSERT_EQUAL(tk_be16_load(out), 0x2222);
	CU_ASSERT_EQUAL(tk_be16_load(out + 2) & NS_DNS_F_RCODE,
	    NS_DNS_RCODE_SERVFAIL);
	CU_ASSERT_EQUAL(tk_be16_load(out + 4), 1);
	CU_ASSERT(memcmp(out + 12, q + 12, n - 12) == 0); /* the question */
	CU_ASSERT_EQUAL(ol, n);
	CU_ASSERT_EQUAL(ns_dns_fwd_poll(x.f, out, sizeof(out), &ol, &send, &got,
			    &again, &x.st),
	    TK_ENOENT);
	CU_ASSERT_EQUAL(x.st.fwd_timeout, 1);
	CU_ASSERT_EQUAL(x.st.fwd_retried, 0);
	/* the late reply is dropped */
	size_t rn = respond(up, ul);
	CU_ASSERT_EQUAL(ns_dns_fwd_reply(x.f, up, rn, &to, out, sizeof(out),
			    &ol, &got, &x.st),
	    TK_ENOENT);
	ns_dns_fwd_free(x.f);
}

static void
test_bounded(void)
{
	struct fx x;
	uint8_t q[512], up[512];
	size_t n, ul;
	tk_ipport to;
	ns_dns_client cl = { .transport = NS_DNS_UDP };
	uint16_t ids[4];

	fx_init(&x, 4);
	n = qbuild(q, 1, 0, "a.example", NS_DNS_TYPE_A, NS_DNS_CLASS_IN, -1);
	for (int i = 0; i < 4; i++) {
		CU_ASSERT_EQUAL(ns_dns_fwd_query(x.f, q, n, &cl, &x.ups, up,
				    sizeof(up), &ul, &to, &x.st),
		    0);
		ids[i] = tk_be16_load(up);
		for (int k = 0; k < i; k++)
			CU_ASSERT(ids[k] != ids[i]); /* distinct upstream IDs */
	}
	CU_ASSERT_EQUAL(ns_dns_fwd_query(x.f, q, n, &cl, &x.ups, up,
			    sizeof(up), &ul, &to, &x.st),
	    TK_EAGAIN);
	CU_ASSERT_EQUAL(x.st.fwd_full, 1);
	/* after the timeout every slot is free again */
	tk_fake_clock_advance(&x.clk, 6 * TK_NSEC_PER_SEC);
	uint8_t out[512];
	size_t ol;
	ns_dns_client got;
	int expired = 0, send;
	tk_ipport again;
	while (ns_dns_fwd_poll(x.f, out, sizeof(out), &ol, &send, &got, &again,
		   &x.st) == 0)
		expired += send == NS_DNS_FWD_TO_CLIENT;
	CU_ASSERT_EQUAL(expired, 4);
	CU_ASSERT_EQUAL(x.st.fwd_timeout, 4);
	CU_ASSERT_EQUAL(ns_dns_fwd_query(x.f, q, n, &cl, &x.ups, up,
			    sizeof(up), &ul, &to, &x.st),
	    0);
	/* not a query, no upstream, too small an output */
	q[2] |= 0x80;
	CU_ASSERT_EQUAL(ns_dns_fwd_query(x.f, q, n, &cl, &x.ups, up,
			    sizeof(up), &ul, &to, &x.st),
	    TK_EPROTO);
	q[2] &= 0x7f;
	ns_dns_upstreams none = { 0 };
	CU_ASSERT_EQUAL(ns_dns_fwd_query(x.f, q, n, &cl, &none, up,
			    sizeof(up), &ul, &to, &x.st),
	    TK_EINVAL);
	CU_ASSERT_EQUAL(ns_dns_fwd_query(x.f, q, n, &cl, &x.ups, up, n - 1,
			    &ul, &to, &x.st),
	    TK_EINVAL);
	CU_ASSERT_EQUAL(ns_dns_fwd_outstanding(x.f), 1);
	ns_dns_fwd_free(x.f);
	ns_dns_fwd_free(NULL);
}

/* Two upstreams: after retry_ms the second is asked too, under its own
 * ID; the first matching reply wins, the other is then dropped. */
static void
test_race(void)
{
	for (int winner = 0; winner < 2; winner++) {
		struct fx x;
		uint8_t q[512], up0[512], up1[512], out[512];
		size_t n, l0, l1, ol;
		tk_ipport to0, to1;
		ns_dns_client cl = { .tag = 77 }, got;
		int send;

		fx_init(&x, 0);
		n = qbuild(q, 0x3333, NS_DNS_F_RD, "race.example",
		    NS_DNS_TYPE_A, NS_DNS_CLASS_IN, 1232);
		CU_ASSERT_EQUAL_FATAL(ns_dns_fwd_query(x.f, q, n, &cl, &x.ups,
					  up0, sizeof(up0), &l0, &to0, &x.st),
		    0);
		CU_ASSERT_EQUAL(ns_dns_fwd_next_deadline(x.f),
		    1001 * TK_NSEC_PER_SEC);
		tk_fake_clock_advance(&x.clk, 999 * TK_NSEC_PER_MSEC);
		CU_ASSERT_EQUAL(ns_dns_fwd_poll(x.f, up1, sizeof(up1), &l1,
				    &send, &got, &to1, &x.st),
		    TK_ENOENT);
		tk_fake_clock_advance(&x.clk, 1 * TK_NSEC_PER_MSEC);
		CU_ASSERT_EQUAL_FATAL(ns_dns_fwd_poll(x.f, up1, sizeof(up1),
					  &l1, &send, &got, &to1, &x.st),
		    0);
		CU_ASSERT_EQUAL(send, NS_DNS_FWD_TO_UPSTREAM);
		CU_ASSERT_EQUAL(got.tag, 77);
		CU_ASSERT(to1.ip.addr[3] == 2 && to0.ip.addr[3] == 1);
		CU_ASSERT_EQUAL(l1, n);
		CU_ASSERT(memcmp(up1 + 2, q + 2, n - 2) == 0);
		CU_ASSERT_EQUAL(x.st.fwd_retried, 1);
		/* both asked: nothing more until the deadline */
		CU_ASSERT_EQUAL(ns_dns_fwd_poll(x.f, out, sizeof(out), &ol,
				    &send, &got, &to1, &x.st),
		    TK_ENOENT);
		CU_ASSERT_EQUAL(ns_dns_fwd_next_deadline(x.f),
		    1005 * TK_NSEC_PER_SEC);
		size_t r0 = respond(up0, l0), r1 = respond(up1, l1);
		/* a reply must come from the upstream its ID went to */
		CU_ASSERT_EQUAL(ns_dns_fwd_reply(x.f, up0, r0, &to1, out,
				    sizeof(out), &ol, &got, &x.st),
		    TK_ENOENT);
		uint8_t *wr = winner ? up1 : up0, *lr = winner ? up0 : up1;
		size_t wn = winner ? r1 : r0, ln = winner ? r0 : r1;
		tk_ipport *wt = winner ? &to1 : &to0, *lt = winner ? &to0 : &to1;
		CU_ASSERT_EQUAL(ns_dns_fwd_reply(x.f, wr, wn, wt, out,
				    sizeof(out), &ol, &got, &x.st),
		    0);
		CU_ASSERT_EQUAL(tk_be16_load(out), 0x3333);
		CU_ASSERT_EQUAL(got.tag, 77);
		CU_ASSERT_EQUAL(ns_dns_fwd_reply(x.f, lr, ln, lt, out,
				    sizeof(out), &ol, &got, &x.st),
		    TK_ENOENT);
		CU_ASSERT_EQUAL(ns_dns_fwd_outstanding(x.f), 0);
		ns_dns_fwd_free(x.f);
	}
}

/* A forwarder freed with queries in flight frees their copies (ASan/LSan
 * and the allocation counters would see a leak). */
static void
test_free_in_flight(void)
{
	struct fx x;
	uint8_t q[512], up[512];
	size_t n, ul;
	tk_ipport to;
	ns_dns_client cl = { 0 };
	tk_alloc_stats before, after;

	tk_alloc_stats_get(&before);
	fx_init(&x, 8);
	n = qbuild(q, 1, 0, "a.example", NS_DNS_TYPE_A, NS_DNS_CLASS_IN, -1);
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(ns_dns_fwd_query(x.f, q, n, &cl, &x.ups, up,
				    sizeof(up), &ul, &to, &x.st),
		    0);
	ns_dns_fwd_free(x.f);
	tk_alloc_stats_get(&after);
	CU_ASSERT_EQUAL(after.as_allocs - after.as_frees,
	    before.as_allocs - before.as_frees);
}

/* Each allocation of ns_dns_fwd_new fails once: TK_ENOMEM, no leak. */
static void
test_fwd_alloc_failures(void)
{
	ns_dns_fwd *f;
	tk_alloc_stats before, after;

	TK_TEST_NEED_FAULT_INJECTION();
	for (unsigned long k = 1; k < 8; k++) {
		tk_alloc_stats_get(&before);
		tk_fault_arm(k);
		int rv = ns_dns_fwd_new(NULL, &f);
		bool fired = tk_fault_fired();
		tk_fault_disarm();
		if (!fired) {
			CU_ASSERT_EQUAL(rv, 0);
			CU_ASSERT_EQUAL(k, 3); /* two allocations */
			ns_dns_fwd_free(f);
			break;
		}
		CU_ASSERT_EQUAL(rv, TK_ENOMEM);
		tk_alloc_stats_get(&after);
		CU_ASSERT_EQUAL(after.as_allocs - after.as_frees,
		    before.as_allocs - before.as_frees);
	}
	/* the query's copy */
	struct fx x;
	uint8_t q[512], up[512];
	size_t n, ul;
	tk_ipport to;
	ns_dns_client cl = { 0 };
	fx_init(&x, 0);
	n = qbuild(q, 1, 0, "a.example", NS_DNS_TYPE_A, NS_DNS_CLASS_IN, -1);
	tk_fault_arm(1);
	CU_ASSERT_EQUAL(ns_dns_fwd_query(x.f, q, n, &cl, &x.ups, up,
			    sizeof(up), &ul, &to, &x.st),
	    TK_ENOMEM);
	tk_fault_disarm();
	CU_ASSERT_EQUAL(ns_dns_fwd_outstanding(x.f), 0);
	CU_ASSERT_EQUAL(ns_dns_fwd_query(x.f, q, n, &cl, &x.ups, up,
			    sizeof(up), &ul, &to, &x.st),
	    0);
	ns_dns_fwd_free(x.f);
}

void
register_ns_dns_fwd(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_forward_and_reply),
		TK_TEST(test_timeout),
		TK_TEST(test_bounded),
		TK_TEST(test_race),
		TK_TEST(test_free_in_flight),
		TK_TEST(test_fwd_alloc_failures),
		TK_TEST_END,
	};
	tk_test_suite("ns_dns_fwd", cases);
}
