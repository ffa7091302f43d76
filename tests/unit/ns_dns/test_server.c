/*
 * ns_dns_server (ns_dns_server.c): table + forwarder + callbacks, with a
 * fake clock and RNG and callbacks that record what would be sent.
 */
#include <stdlib.h>
#include <string.h>

#include "nm_fixture.h"
#include "ns_dns.h"
#include "qbuild.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk_test.h"

void register_ns_dns_server(void);

struct sent {
	int n_client, n_upstream;
	ns_dns_client client;
	tk_ipport up;
	uint8_t msg[2048];
	size_t len;
};

static void
to_client(void *arg, const ns_dns_client *c, const uint8_t *p, size_t n)
{
	struct sent *s = arg;
	s->n_client++;
	s->client = *c;
	CU_ASSERT_FATAL(n <= sizeof(s->msg));
	memcpy(s->msg, p, n);
	s->len = n;
}

static void
to_upstream(void *arg, const tk_ipport *up, const uint8_t *p, size_t n)
{
	struct sent *s = arg;
	s->n_upstream++;
	s->up = *up;
	CU_ASSERT_FATAL(n <= sizeof(s->msg));
	memcpy(s->msg, p, n);
	s->len = n;
}

static void
test_server(void)
{
	tk_fake_clock clk;
	tk_fake_rng rng;
	struct sent out;
	ns_dns_server_ops ops = { to_client, to_upstream, &out };
	ns_dns_fwd_cfg cfg = { .clock = &clk.fc_clock, .rng = &rng.fr_rng,
		.timeout_ms = 3000, .retry_ms = 1000, .max_outstanding = 1 };
	ns_dns_server *s;
	ns_dns_table *t;
	ns_dns_stats st;
	ns_dns_client cl = { .transport = NS_DNS_UDP, .tag = 1 };
	uint8_t q[512];
	size_t n;

	tk_fake_clock_init(&clk, TK_NSEC_PER_SEC, 0);
	tk_fake_rng_init(&rng, 3);
	ns_dns_server_ops bad = { NULL, to_upstream, NULL };
	CU_ASSERT_EQUAL(ns_dns_server_new(&cfg, &bad, &s), TK_EINVAL);
	CU_ASSERT_EQUAL_FATAL(ns_dns_server_new(&cfg, &ops, &s), 0);
	memset(&out, 0, sizeof(out));

	/* no table yet: SERVFAIL */
	n = qbuild(q, 0x0101, NS_DNS_F_RD, "peer1", NS_DNS_TYPE_A,
	    NS_DNS_CLASS_IN, -1);
	ns_dns_server_query(s, &cl, q, n);
	CU_ASSERT_EQUAL(out.n_client, 1);
	CU_ASSERT_EQUAL(tk_be16_load(out.msg + 2) & 0xf, NS_DNS_RCODE_SERVFAIL);

	Tk__Bus__V1__Netmap *nm = nm_fixture_new(NULL, NULL);
	CU_ASSERT_EQUAL_FATAL(ns_dns_table_new_from_netmap(nm, &t), 0);
	nm_fixture_free(nm);
	ns_dns_server_set_table(s, t);
	ns_dns_server_query(s, &cl, q, n);
	CU_ASSERT_EQUAL(out.n_client, 2);
	CU_ASSERT_EQUAL(tk_be16_load(out.msg + 6), 1); /* one answer */
	CU_ASSERT_EQUAL(out.client.tag, 1);

	/* forwarded: to the first corp.example resolver */
	n = qbuild(q, 0x0202, NS_DNS_F_RD, "www.corp.example", NS_DNS_TYPE_A,
	    NS_DNS_CLASS_IN, -1);
	ns_dns_server_query(s, &cl, q, n);
	CU_ASSERT_EQUAL(out.n_upstream, 1);
	CU_ASSERT(out.up.ip.addr[3] == 1 && out.up.port == 53);
	uint16_t up_id = tk_be16_load(out.msg);
	/* the forwarder is full (max 1): the next one gets SERVFAIL */
	ns_dns_client cl2 = { .transport = NS_DNS_TCP, .tag = 2 };
	n = qbuild(q, 0x0303, NS_DNS_F_RD, "x.corp.example", NS_DNS_TYPE_A,
	    NS_DNS_CLASS_IN, -1);
	ns_dns_server_query(s, &cl2, q, n);
	CU_ASSERT_EQUAL(out.n_client, 3);
	CU_ASSERT_EQUAL(out.client.tag, 2);
	CU_ASSERT_EQUAL(tk_be16_load(out.msg), 0x0303);
	CU_ASSERT_EQUAL(tk_be16_load(out.msg + 2) & 0xf, NS_DNS_RCODE_SERVFAIL);
	/* 1 s: the second resolver is asked too */
	tk_fake_clock_advance(&clk, TK_NSEC_PER_SEC);
	CU_ASSERT_EQUAL(ns_dns_server_next_deadline(s), 2 * TK_NSEC_PER_SEC);
	ns_dns_server_tick(s);
	CU_ASSERT_EQUAL(out.n_upstream, 2);
	CU_ASSERT(out.up.ip.addr[3] == 2 && out.up.port == 5353);
	/* the first one answers */
	n = qbuild(q, up_id, NS_DNS_F_QR | NS_DNS_F_RD, "www.corp.example",
	    NS_DNS_TYPE_A, NS_DNS_CLASS_IN, -1);
	tk_ipport from;
	CU_ASSERT_EQUAL(tk_ipport_parse(&from, "10.1.1.1:53", 11), 0);
	ns_dns_server_upstream(s, &from, q, n);
	CU_ASSERT_EQUAL(out.n_client, 4);
	CU_ASSERT_EQUAL(out.client.tag, 1);
	CU_ASSERT_EQUAL(tk_be16_load(out.msg), 0x0202);
	/* a second copy: dropped */
	ns_dns_server_upstream(s, &from, q, n);
	CU_ASSERT_EQUAL(out.n_client, 4);
	/* one that times out */
	n = qbuild(q, 0x0404, NS_DNS_F_RD, "x.b.corp.example", NS_DNS_TYPE_A,
	    NS_DNS_CLASS_IN, -1);
	ns_dns_server_query(s, &cl, q, n);
	CU_ASSERT_EQUAL(out.n_upstream, 3);
	tk_fake_clock_advance(&clk, 3 * TK_NSEC_PER_SEC);
	ns_dns_server_tick(s);
	CU_ASSERT_EQUAL(out.n_client, 5);
	CU_ASSERT_EQUAL(tk_be16_load(out.msg), 0x0404);
	CU_ASSERT_EQUAL(tk_be16_load(out.msg + 2) & 0xf, NS_DNS_RCODE_SERVFAIL);
	CU_ASSERT_EQUAL(ns_dns_server_next_deadline(s), 0);
	/* garbage: nothing sent, counted */
	ns_dns_server_query(s, &cl, q, 5);
	CU_ASSERT_EQUAL(out.n_client, 5);
	ns_dns_server_stats(s, &st);
	CU_ASSERT_EQUAL(st.drop_short, 1);
	CU_ASSERT_EQUAL(st.fwd_timeout, 1);
	CU_ASSERT_EQUAL(st.fwd_full, 1);
	CU_ASSERT_EQUAL(st.fwd_replied, 1);
	CU_ASSERT_EQUAL(st.fwd_retried, 1);
	CU_ASSERT_EQUAL(st.servfail_no_upstream, 1);
	ns_dns_server_free(s);
	ns_dns_server_free(NULL);
}

void
register_ns_dns_server(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_server),
		TK_TEST_END,
	};
	tk_test_suite("ns_dns_server", cases);
}
