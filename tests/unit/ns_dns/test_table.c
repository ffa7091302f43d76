/*
 * MagicDNS answers (ns_dns_table.c) from the fixed netmap of nm_fixture.h:
 * tailnet names (FQDN, short, any case), ExtraRecords, PTR (v4 and v6),
 * NXDOMAIN inside local domains, split-DNS forwarding by longest suffix,
 * DoH-only routes, default resolvers, and the error answers to garbage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nm_fixture.h"
#include "ns_dns.h"
#include "qbuild.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk_test.h"

void register_ns_dns_table(void);

/* What a stub resolver reads back from a response. */
struct reply {
	uint16_t id, flags, qd, an, ar;
	unsigned rcode;
	size_t n;
	struct {
		uint16_t type;
		uint32_t ttl;
		uint8_t rdata[256];
		size_t rdlen;
		uint8_t name[NS_DNS_NAME_MAX];
		size_t name_len;
	} rr[48];
	uint8_t qname[NS_DNS_NAME_MAX];
	size_t qname_len;
	uint16_t opt_payload;
	uint8_t opt_ext_rcode;
};

static void
reply_read(const uint8_t *p, size_t n, struct reply *r)
{
	size_t off, next;

	memset(r, 0, sizeof(*r));
	CU_ASSERT_FATAL(n >= NS_DNS_HDR_LEN);
	r->id = tk_be16_load(p);
	r->flags = tk_be16_load(p + 2);
	r->rcode = r->flags & NS_DNS_F_RCODE;
	r->qd = tk_be16_load(p + 4);
	r->an = tk_be16_load(p + 6);
	r->ar = tk_be16_load(p + 10);
	CU_ASSERT_EQUAL(tk_be16_load(p + 8), 0);
	off = NS_DNS_HDR_LEN;
	if (r->qd == 1) {
		CU_ASSERT_EQUAL_FATAL(ns_dns_name_read(p, n, off, r->qname,
					  &r->qname_len, &next),
		    0);
		off = next + 4;
	}
	for (uint16_t i = 0; i < r->an + r->ar; i++) {
		uint8_t nm[NS_DNS_NAME_MAX];
		size_t nl;
		CU_ASSERT_EQUAL_FATAL(ns_dns_name_read(p, n, off, nm, &nl, &next),
		    0);
		CU_ASSERT_FATAL(next + 10 <= n);
		uint16_t type = tk_be16_load(p + next);
		size_t rdlen = tk_be16_load(p + next + 8);
		CU_ASSERT_FATAL(next + 10 + rdlen <= n);
		if (type == NS_DNS_TYPE_OPT) {
			r->opt_payload = tk_be16_load(p + next + 2);
			r->opt_ext_rcode = p[next + 4];
		} else if (r->n < 48) {
			r->rr[r->n].type = type;
			r->rr[r->n].ttl = tk_be32_load(p + next + 4);
			memcpy(r->rr[r->n].rdata, p + next + 10, rdlen);
			r->rr[r->n].rdlen = rdlen;
			memcpy(r->rr[r->n].name, nm, nl);
			r->rr[r->n].name_len = nl;
			/* a PTR target may be compressed: read it back */
			if (type == NS_DNS_TYPE_PTR) {
				size_t pn;
				CU_ASSERT_EQUAL(ns_dns_name_read(p, n, next + 10,
						    r->rr[r->n].rdata,
						    &r->rr[r->n].rdlen, &pn),
				    0);
			}
			r->n++;
		}
		off = next + 10 + rdlen;
	}
	CU_ASSERT_EQUAL(off, n); /* nothing after the records */
}

struct ctx {
	Tk__Bus__V1__Netmap *nm;
	ns_dns_table *t;
	ns_dns_stats st;
};

static void
ctx_init(struct ctx *c)
{
	memset(c, 0, sizeof(*c));
	c->nm = nm_fixture_new(NULL, NULL);
	CU_ASSERT_EQUAL_FATAL(ns_dns_table_new_from_netmap(c->nm, &c->t), 0);
}

static void
ctx_fini(struct ctx *c)
{
	ns_dns_table_free(c->t);
	nm_fixture_free(c->nm);
}

/* Asks name/qtype (edns: payload size or -1); returns the action. */
static int
ask(struct ctx *c, const char *name, uint16_t qtype, int edns,
    struct reply *r, ns_dns_upstreams *fwd)
{
	uint8_t q[512], out[1500];
	size_t n = qbuild(q, 0xbeef, NS_DNS_F_RD, name, qtype, NS_DNS_CLASS_IN,
	    edns), ol = 0;
	int action = -1;
	uint8_t *p = exact(q, n);
	ns_dns_upstreams up;

	memset(&up, 0, sizeof(up));
	int rv = ns_dns_answer(c->t, p, n, NS_DNS_UDP, out, sizeof(out), &ol,
	    &up, &action, &c->st);
	if (rv != 0)
		fprintf(stderr, "ask %s: %d\n", name, rv);
	CU_ASSERT_EQUAL(rv, 0);
	if (action == NS_DNS_REPLY) {
		reply_read(out, ol, r);
		CU_ASSERT_EQUAL(r->id, 0xbeef);
		CU_ASSERT(r->flags & NS_DNS_F_QR);
		CU_ASSERT(r->flags & NS_DNS_F_RD);
		CU_ASSERT_EQUAL(r->qd, 1);
		/* the question comes back as it was asked */
		CU_ASSERT(r->qname_len == n - 12 - 4 - (edns >= 0 ? 11 : 0) &&
		    memcmp(r->qname, q + 12, r->qname_len) == 0);
	}
	if (fwd != NULL)
		*fwd = up;
	free(p);
	return action;
}

static bool
rr_is_addr(const struct reply *r, size_t i, const char *ip)
{
	tk_ipaddr a;
	if (tk_ipaddr_parse(&a, ip, strlen(ip)) != 0 || i >= r->n)
		return false;
	size_t l = a.family == TK_AF_INET ? 4 : 16;
	uint16_t type = l == 4 ? NS_DNS_TYPE_A : NS_DNS_TYPE_AAAA;
	return r->rr[i].type == type && r->rr[i].rdlen == l &&
	    memcmp(r->rr[i].rdata, a.addr, l) == 0;
}

static void
test_tailnet_names(void)
{
	struct ctx c;
	struct reply r;

	ctx_init(&c);
	CU_ASSERT_EQUAL(ask(&c, "peer1.tail-test.ts.net.", NS_DNS_TYPE_A, -1,
			    &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.rcode, NS_DNS_RCODE_NOERROR);
	CU_ASSERT(r.flags & NS_DNS_F_AA);
	CU_ASSERT_EQUAL(r.n, 1);
	CU_ASSERT(rr_is_addr(&r, 0, "100.64.0.2"));
	CU_ASSERT_EQUAL(r.rr[0].ttl, NS_DNS_TTL);
	CU_ASSERT(ns_dns_name_eq(r.rr[0].name, r.rr[0].name_len, r.qname,
	    r.qname_len));
	/* short name, any case, with or without the trailing dot */
	CU_ASSERT_EQUAL(ask(&c, "PEER1", NS_DNS_TYPE_AAAA, -1, &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.n, 1);
	CU_ASSERT(rr_is_addr(&r, 0, "fd7a:115c:a1e0::2"));
	CU_ASSERT_EQUAL(ask(&c, "peer2.TAIL-TEST.ts.net", NS_DNS_TYPE_A, -1,
			    &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT(rr_is_addr(&r, 0, "100.64.0.3"));
	CU_ASSERT_EQUAL(ask(&c, "self", NS_DNS_TYPE_A, -1, &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT(rr_is_addr(&r, 0, "100.64.0.1"));
	/* ANY: both families */
	CU_ASSERT_EQUAL(ask(&c, "self.tail-test.ts.net", NS_DNS_TYPE_ANY, -1,
			    &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.n, 2);
	/* a name with no record of the type: NOERROR, no answers */
	uint64_t nodata = c.st.nodata;
	CU_ASSERT_EQUAL(ask(&c, "peer2", NS_DNS_TYPE_AAAA, -1, &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.rcode, NS_DNS_RCODE_NOERROR);
	CU_ASSERT_EQUAL(r.an, 0);
	CU_ASSERT(r.flags & NS_DNS_F_AA);
	CU_ASSERT_EQUAL(ask(&c, "peer1.tail-test.ts.net", NS_DNS_TYPE_MX, -1,
			    &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.an, 0);
	CU_ASSERT_EQUAL(c.st.nodata, nodata + 2);
	/* a short name is one label only: "peer1.other." is not ours */
	CU_ASSERT_EQUAL(ask(&c, "peer1.other", NS_DNS_TYPE_A, -1, &r, NULL),
	    NS_DNS_FORWARD);
	ctx_fini(&c);
}

static void
test_extra_records(void)
{
	struct ctx c;
	struct reply r;

	ctx_init(&c);
	CU_ASSERT_EQUAL(ask(&c, "db.internal", NS_DNS_TYPE_A, -1, &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.n, 1);
	CU_ASSERT(rr_is_addr(&r, 0, "10.0.0.5"));
	CU_ASSERT_EQUAL(ask(&c, "DB.INTERNAL.", NS_DNS_TYPE_AAAA, -1, &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.n, 1);
	CU_ASSERT(rr_is_addr(&r, 0, "fd00::5"));
	/* 40 A records: 683 bytes do not fit 512 (TC, no partial RRset),
	 * fit EDNS0's 1232 */
	uint64_t tc = c.st.truncated;
	CU_ASSERT_EQUAL(ask(&c, "many.internal", NS_DNS_TYPE_A, -1, &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT(r.flags & NS_DNS_F_TC);
	CU_ASSERT_EQUAL(r.an, 0);
	CU_ASSERT_EQUAL(c.st.truncated, tc + 1);
	CU_ASSERT_EQUAL(ask(&c, "many.internal", NS_DNS_TYPE_A, 1232, &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT(!(r.flags & NS_DNS_F_TC));
	CU_ASSERT_EQUAL(r.an, NM_FIXTURE_MANY);
	CU_ASSERT(rr_is_addr(&r, NM_FIXTURE_MANY - 1, "10.0.1.40"));
	/* extra records have no short names */
	CU_ASSERT_EQUAL(ask(&c, "db", NS_DNS_TYPE_A, -1, &r, NULL),
	    NS_DNS_FORWARD);
	ctx_fini(&c);
}

static void
test_ptr(void)
{
	struct ctx c;
	struct reply r;
	uint8_t want[NS_DNS_NAME_MAX];
	size_t wl;

	ctx_init(&c);
	CU_ASSERT_EQUAL(ask(&c, "2.0.64.100.in-addr.arpa", NS_DNS_TYPE_PTR, -1,
			    &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.rcode, 0);
	CU_ASSERT_EQUAL_FATAL(r.n, 1);
	CU_ASSERT_EQUAL(r.rr[0].type, NS_DNS_TYPE_PTR);
	CU_ASSERT_EQUAL(ns_dns_name_from_text("peer1.tail-test.ts.net", want,
			    &wl),
	    0);
	CU_ASSERT(ns_dns_name_eq(r.rr[0].rdata, r.rr[0].rdlen, want, wl));
	/* fd7a:115c:a1e0::1, nibbles reversed */
	CU_ASSERT_EQUAL(ask(&c,
			    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0"
			    ".0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa.",
			    NS_DNS_TYPE_PTR, 1232, &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL_FATAL(r.n, 1);
	CU_ASSERT_EQUAL(ns_dns_name_from_text("self.tail-test.ts.net", want,
			    &wl),
	    0);
	CU_ASSERT(ns_dns_name_eq(r.rr[0].rdata, r.rr[0].rdlen, want, wl));
	CU_ASSERT_EQUAL(r.opt_payload, NS_DNS_EDNS_PAYLOAD);
	/* a tailnet address asked for another type: exists, no data */
	CU_ASSERT_EQUAL(ask(&c, "2.0.64.100.in-addr.arpa", NS_DNS_TYPE_TXT, -1,
			    &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.rcode, NS_DNS_RCODE_NOERROR);
	CU_ASSERT_EQUAL(r.an, 0);
	/* an unknown address inside 100.64.0.0/10 or fd7a:115c:a1e0::/48:
	 * NXDOMAIN here; outside: forwarded */
	CU_ASSERT_EQUAL(ask(&c, "9.9.64.100.in-addr.arpa", NS_DNS_TYPE_PTR, -1,
			    &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.rcode, NS_DNS_RCODE_NXDOMAIN);
	CU_ASSERT(r.flags & NS_DNS_F_AA);
	/* the zone's inner names are not NXDOMAIN (RFC 8020): whole
	 * addresses may exist below them */
	CU_ASSERT_EQUAL(ask(&c, "127.100.in-addr.arpa", NS_DNS_TYPE_PTR, -1,
			    &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.rcode, NS_DNS_RCODE_NOERROR);
	CU_ASSERT_EQUAL(r.an, 0);
	CU_ASSERT(r.flags & NS_DNS_F_AA);
	CU_ASSERT_EQUAL(ask(&c,
			    "9.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0"
			    ".0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa.",
			    NS_DNS_TYPE_PTR, -1, &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.rcode, NS_DNS_RCODE_NXDOMAIN);
	CU_ASSERT_EQUAL(ask(&c, "1.0.128.100.in-addr.arpa", NS_DNS_TYPE_PTR, -1,
			    &r, NULL),
	    NS_DNS_FORWARD);
	CU_ASSERT_EQUAL(ask(&c, "8.8.8.8.in-addr.arpa", NS_DNS_TYPE_PTR, -1, &r,
			    NULL),
	    NS_DNS_FORWARD);
	/* malformed reverse names are not addresses */
	CU_ASSERT_EQUAL(ask(&c, "2.0.064x.100.in-addr.arpa", NS_DNS_TYPE_PTR,
			    -1, &r, NULL),
	    NS_DNS_FORWARD);
	CU_ASSERT_EQUAL(ask(&c, "256.0.64.100.in-addr.arpa", NS_DNS_TYPE_PTR,
			    -1, &r, NULL),
	    NS_DNS_REPLY); /* in 100.64/10's zone: NXDOMAIN */
	CU_ASSERT_EQUAL(r.rcode, NS_DNS_RCODE_NXDOMAIN);
	ctx_fini(&c);
}

static bool
ups_is(const ns_dns_upstreams *u, size_t i, const char *ap)
{
	tk_ipport want;
	if (i >= u->n || tk_ipport_parse(&want, ap, strlen(ap)) != 0)
		return false;
	size_t l = want.ip.family == TK_AF_INET ? 4 : 16;
	return u->up[i].port == want.port &&
	    u->up[i].ip.family == want.ip.family &&
	    memcmp(u->up[i].ip.addr, want.ip.addr, l) == 0;
}

static void
test_local_and_split(void)
{
	struct ctx c;
	struct reply r;
	ns_dns_upstreams u;

	ctx_init(&c);
	/* unknown names in the tailnet domain and in local routes */
	CU_ASSERT_EQUAL(ask(&c, "nope.tail-test.ts.net", NS_DNS_TYPE_A, -1, &r,
			    NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.rcode, NS_DNS_RCODE_NXDOMAIN);
	CU_ASSERT(r.flags & NS_DNS_F_AA);
	CU_ASSERT_EQUAL(r.an, 0);
	CU_ASSERT_EQUAL(ask(&c, "a.b.local.example", NS_DNS_TYPE_A, -1, &r,
			    NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.rcode, NS_DNS_RCODE_NXDOMAIN);
	CU_ASSERT_EQUAL(c.st.nxdomain, 2);
	/* zone apexes and names with tailnet names below them exist
	 * (RFC 8020): NOERROR, no data */
	static const char *const ents[] = { "tail-test.ts.net",
		"TAIL-test.ts.net.", "local.example" };
	for (size_t i = 0; i < TK_ARRAY_LEN(ents); i++) {
		CU_ASSERT_EQUAL(ask(&c, ents[i], NS_DNS_TYPE_SOA, -1, &r, NULL),
		    NS_DNS_REPLY);
		CU_ASSERT_EQUAL(r.rcode, NS_DNS_RCODE_NOERROR);
		CU_ASSERT_EQUAL(r.an, 0);
		CU_ASSERT(r.flags & NS_DNS_F_AA);
	}
	CU_ASSERT_EQUAL(c.st.nxdomain, 2);
	/* above the tailnet domain is not ours */
	CU_ASSERT_EQUAL(ask(&c, "ts.net", NS_DNS_TYPE_SOA, -1, &r, NULL),
	    NS_DNS_FORWARD);
	/* split DNS, longest suffix */
	CU_ASSERT_EQUAL(ask(&c, "www.corp.example", NS_DNS_TYPE_A, -1, &r, &u),
	    NS_DNS_FORWARD);
	CU_ASSERT_EQUAL(u.n, 2);
	CU_ASSERT(ups_is(&u, 0, "10.1.1.1:53"));
	CU_ASSERT(ups_is(&u, 1, "10.1.1.2:5353"));
	CU_ASSERT_EQUAL(ask(&c, "x.b.corp.example", NS_DNS_TYPE_A, -1, &r, &u),
	    NS_DNS_FORWARD);
	CU_ASSERT_EQUAL(u.n, 1);
	CU_ASSERT(ups_is(&u, 0, "10.2.2.2:53"));
	CU_ASSERT_EQUAL(ask(&c, "CORP.example", NS_DNS_TYPE_A, -1, &r, &u),
	    NS_DNS_FORWARD);
	CU_ASSERT(ups_is(&u, 0, "10.1.1.1:53"));
	/* a suffix matches on a label boundary only */
	CU_ASSERT_EQUAL(ask(&c, "xcorp.example", NS_DNS_TYPE_A, -1, &r, &u),
	    NS_DNS_FORWARD);
	CU_ASSERT(ups_is(&u, 0, "1.1.1.1:53"));
	CU_ASSERT(ups_is(&u, 1, "[2606:4700:4700::1111]:53"));
	/* DoH only: SERVFAIL, counted */
	CU_ASSERT_EQUAL(ask(&c, "www.doh.example", NS_DNS_TYPE_A, -1, &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.rcode, NS_DNS_RCODE_SERVFAIL);
	CU_ASSERT_EQUAL(c.st.servfail_unforwardable, 1);
	CU_ASSERT_EQUAL(c.st.forwarded, 5);
	ctx_fini(&c);
}

static void
test_no_dns_config(void)
{
	struct ctx c;
	struct reply r;
	ns_dns_table *t;

	/* netmap without DNS config: names still answered, the rest has
	 * nowhere to go */
	ctx_init(&c);
	tk__bus__v1__dnsconfig__free_unpacked(c.nm->dns_config, NULL);
	c.nm->dns_config = NULL;
	ns_dns_table_free(c.t);
	CU_ASSERT_EQUAL_FATAL(ns_dns_table_new_from_netmap(c.nm, &c.t), 0);
	CU_ASSERT_EQUAL(ask(&c, "peer1", NS_DNS_TYPE_A, -1, &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT(rr_is_addr(&r, 0, "100.64.0.2"));
	CU_ASSERT_EQUAL(ask(&c, "example.com", NS_DNS_TYPE_A, -1, &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.rcode, NS_DNS_RCODE_SERVFAIL);
	CU_ASSERT_EQUAL(c.st.servfail_no_upstream, 1);
	/* without MagicDNS (Proxied off) nothing is authoritative */
	CU_ASSERT_EQUAL(ask(&c, "nope.tail-test.ts.net", NS_DNS_TYPE_A, -1, &r,
			    NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.rcode, NS_DNS_RCODE_SERVFAIL);
	ctx_fini(&c);
	/* no netmap at all */
	CU_ASSERT_EQUAL_FATAL(ns_dns_table_new_from_netmap(NULL, &t), 0);
	c.t = t;
	memset(&c.st, 0, sizeof(c.st));
	CU_ASSERT_EQUAL(ask(&c, "peer1", NS_DNS_TYPE_A, -1, &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.rcode, NS_DNS_RCODE_SERVFAIL);
	ns_dns_table_free(t);
}

/* Garbage: dropped or answered with an error, and counted. */
static void
test_garbage(void)
{
	struct ctx c;
	struct reply r;
	uint8_t q[512], out[600];
	size_t n, ol;
	int action;
	ns_dns_upstreams u;

	ctx_init(&c);
	static const struct {
		const char *what;
		size_t off; /* 0: no patch */
		uint16_t v;
		int action;
		unsigned rcode;
		uint16_t qd; /* question echoed */
	} cases[] = {
		{ "ok", 0, 0, NS_DNS_REPLY, NS_DNS_RCODE_NOERROR, 1 },
		{ "qdcount 2", 4, 2, NS_DNS_REPLY, NS_DNS_RCODE_FORMERR, 0 },
		{ "qdcount 0", 4, 0, NS_DNS_REPLY, NS_DNS_RCODE_FORMERR, 0 },
		{ "ancount 3", 6, 3, NS_DNS_REPLY, NS_DNS_RCODE_FORMERR, 0 },
		{ "opcode 5", 2, 5 << 11, NS_DNS_REPLY, NS_DNS_RCODE_NOTIMP, 0 },
		{ "response", 2, NS_DNS_F_QR, NS_DNS_DROP, 0, 0 },
		{ "class CH", 12 + 7 + 2, 3, NS_DNS_REPLY, NS_DNS_RCODE_REFUSED, 1 },
		{ "label 64", 12, 0x4000 | 'p', NS_DNS_REPLY, NS_DNS_RCODE_FORMERR, 0 },
		{ "pointer loop", 12, 0xc00c, NS_DNS_REPLY, NS_DNS_RCODE_FORMERR, 0 },
	};
	for (size_t i = 0; i < TK_ARRAY_LEN(cases); i++) {
		n = qbuild(q, 0x7777, 0, "peer1", NS_DNS_TYPE_A, NS_DNS_CLASS_IN,
		    -1);
		if (cases[i].off)
			tk_be16_store(q + cases[i].off, cases[i].v);
		uint8_t *p = exact(q, n);
		action = -1;
		CU_ASSERT_EQUAL(ns_dns_answer(c.t, p, n, NS_DNS_UDP, out,
				    sizeof(out), &ol, &u, &action, &c.st),
		    0);
		if (action != cases[i].action)
			fprintf(stderr, "case %s: action %d\n", cases[i].what,
			    action);
		CU_ASSERT_EQUAL(action, cases[i].action);
		if (action == NS_DNS_REPLY) {
			reply_read(out, ol, &r);
			CU_ASSERT_EQUAL(r.rcode, cases[i].rcode);
			CU_ASSERT_EQUAL(r.qd, cases[i].qd);
			CU_ASSERT_EQUAL(r.id, 0x7777);
		}
		free(p);
	}
	CU_ASSERT_EQUAL(c.st.formerr, 5);
	CU_ASSERT_EQUAL(c.st.notimp, 1);
	CU_ASSERT_EQUAL(c.st.refused, 1);
	CU_ASSERT_EQUAL(c.st.drop_response, 1);
	/* shorter than a header */
	for (size_t k = 0; k < NS_DNS_HDR_LEN; k++) {
		uint8_t *p = exact(q, k);
		CU_ASSERT_EQUAL(ns_dns_answer(c.t, p, k, NS_DNS_UDP, out,
				    sizeof(out), &ol, &u, &action, &c.st),
		    0);
		CU_ASSERT_EQUAL(action, NS_DNS_DROP);
		free(p);
	}
	CU_ASSERT_EQUAL(c.st.drop_short, NS_DNS_HDR_LEN);
	/* oversized: a query followed by 70000 bytes of junk is still
	 * answered (bytes after the records are ignored), within 512 */
	{
		size_t big = 70000;
		uint8_t *p = malloc(big);
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		memset(p, 0xc0, big);
		n = qbuild(p, 0x7777, 0, "peer1", NS_DNS_TYPE_A,
		    NS_DNS_CLASS_IN, -1);
		CU_ASSERT_EQUAL(ns_dns_answer(c.t, p, big, NS_DNS_UDP, out,
				    sizeof(out), &ol, &u, &action, &c.st),
		    0);
		CU_ASSERT_EQUAL(action, NS_DNS_REPLY);
		CU_ASSERT(ol <= 512);
		reply_read(out, ol, &r);
		CU_ASSERT(rr_is_addr(&r, 0, "100.64.0.2"));
		free(p);
	}
	/* EDNS version 1: BADVERS (extended rcode 16 = OPT byte 1) */
	n = qbuild(q, 0x7777, 0, "peer1", NS_DNS_TYPE_A, NS_DNS_CLASS_IN, 1232);
	q[n - 5] = 1;
	CU_ASSERT_EQUAL(ns_dns_answer(c.t, q, n, NS_DNS_UDP, out, sizeof(out),
			    &ol, &u, &action, &c.st),
	    0);
	CU_ASSERT_EQUAL(action, NS_DNS_REPLY);
	reply_read(out, ol, &r);
	CU_ASSERT_EQUAL(r.rcode, 0);
	CU_ASSERT_EQUAL(r.opt_ext_rcode, 1);
	CU_ASSERT_EQUAL(r.an, 0);
	CU_ASSERT_EQUAL(c.st.badvers, 1);
	/* too small an output buffer is the caller's mistake */
	CU_ASSERT_EQUAL(ns_dns_answer(c.t, q, n, NS_DNS_UDP, out, 511, &ol, &u,
			    &action, &c.st),
	    TK_EINVAL);
	ctx_fini(&c);
}

/* The real dig queries get the answers dig expects. */
static void
test_dig_queries(void)
{
	struct ctx c;
	struct reply r;
	uint8_t *p, out[1500];
	size_t n, ol;
	int action;
	ns_dns_upstreams u;

	ctx_init(&c);
	n = unhex_exact(&p, dig_a_edns);
	CU_ASSERT_EQUAL(ns_dns_answer(c.t, p, n, NS_DNS_UDP, out, sizeof(out),
			    &ol, &u, &action, &c.st),
	    0);
	CU_ASSERT_EQUAL_FATAL(action, NS_DNS_REPLY);
	reply_read(out, ol, &r);
	CU_ASSERT_EQUAL(r.id, 0xa893);
	CU_ASSERT(rr_is_addr(&r, 0, "100.64.0.2"));
	CU_ASSERT_EQUAL(r.ar, 1);
	CU_ASSERT_EQUAL(r.opt_payload, NS_DNS_EDNS_PAYLOAD);
	free(p);
	n = unhex_exact(&p, dig_aaaa_noedns);
	CU_ASSERT_EQUAL(ns_dns_answer(c.t, p, n, NS_DNS_UDP, out, sizeof(out),
			    &ol, &u, &action, &c.st),
	    0);
	reply_read(out, ol, &r);
	CU_ASSERT(rr_is_addr(&r, 0, "fd7a:115c:a1e0::2"));
	CU_ASSERT_EQUAL(r.ar, 0);
	CU_ASSERT(memcmp(out + 12, "\005PEER1", 6) == 0);
	free(p);
	n = unhex_exact(&p, dig_ptr);
	CU_ASSERT_EQUAL(ns_dns_answer(c.t, p, n, NS_DNS_UDP, out, sizeof(out),
			    &ol, &u, &action, &c.st),
	    0);
	reply_read(out, ol, &r);
	CU_ASSERT_EQUAL(r.n, 1);
	CU_ASSERT_EQUAL(r.rr[0].type, NS_DNS_TYPE_PTR);
	free(p);
	ctx_fini(&c);
}

static void
test_lookup(void)
{
	struct ctx c;
	tk_ipaddr ip;

	ctx_init(&c);
	CU_ASSERT_EQUAL(ns_dns_table_lookup(c.t, "peer1", 0, &ip), 0);
	CU_ASSERT(ip.family == TK_AF_INET && ip.addr[3] == 2);
	CU_ASSERT_EQUAL(ns_dns_table_lookup(c.t, "Peer1.tail-test.ts.net.",
			    TK_AF_INET6, &ip),
	    0);
	CU_ASSERT(ip.family == TK_AF_INET6 && ip.addr[15] == 2);
	CU_ASSERT_EQUAL(ns_dns_table_lookup(c.t, "peer2", TK_AF_INET6, &ip),
	    TK_ENOENT);
	CU_ASSERT_EQUAL(ns_dns_table_lookup(c.t, "db.internal", 0, &ip), 0);
	CU_ASSERT_EQUAL(ns_dns_table_lookup(c.t, "nope", 0, &ip), TK_ENOENT);
	CU_ASSERT_EQUAL(ns_dns_table_lookup(c.t, "", 0, &ip), TK_ENOENT);
	CU_ASSERT_EQUAL(ns_dns_table_lookup(NULL, "peer1", 0, &ip), TK_ENOENT);
	ctx_fini(&c);
}

/* Every allocation of the table build fails once: TK_ENOMEM, no leak. */
static void
test_table_alloc_failures(void)
{
	Tk__Bus__V1__Netmap *nm = nm_fixture_new(NULL, NULL);
	ns_dns_table *t;
	tk_alloc_stats before, after;

	TK_TEST_NEED_FAULT_INJECTION();
	for (unsigned long k = 1; k < 256; k++) {
		tk_alloc_stats_get(&before);
		tk_fault_arm(k);
		int rv = ns_dns_table_new_from_netmap(nm, &t);
		bool fired = tk_fault_fired();
		tk_fault_disarm();
		if (!fired) {
			CU_ASSERT_EQUAL(rv, 0);
			ns_dns_table_free(t);
			break;
		}
		CU_ASSERT_EQUAL(rv, TK_ENOMEM);
		tk_alloc_stats_get(&after);
		CU_ASSERT_EQUAL(after.as_allocs - after.as_frees,
		    before.as_allocs - before.as_frees);
	}
	nm_fixture_free(nm);
}

/* Replaces route i of dc with suffix -> one resolver. */
static void
route_set(Tk__Bus__V1__DNSConfig *dc, size_t i, const char *suffix,
    const char *resolver)
{
	Tk__Bus__V1__DNSRoute *r = calloc(1, sizeof(*r));

	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	tk__bus__v1__dnsroute__init(r);
	r->suffix = strdup(suffix);
	r->n_resolvers = 1;
	r->resolvers = calloc(1, sizeof(*r->resolvers));
	r->resolvers[0] = calloc(1, sizeof(Tk__Bus__V1__Resolver));
	CU_ASSERT_FATAL(r->suffix && r->resolvers && r->resolvers[0]);
	tk__bus__v1__resolver__init(r->resolvers[0]);
	r->resolvers[0]->addr = strdup(resolver);
	tk__bus__v1__dnsroute__free_unpacked(dc->routes[i], NULL);
	dc->routes[i] = r;
}

/* The piecewise builder: what a caller keeping its own netmap uses. */
static void
test_builder(void)
{
	ns_dns_table *t;
	struct ctx c;
	struct reply r;
	ns_dns_upstreams u;
	tk_ipaddr a[3];

	CU_ASSERT_EQUAL_FATAL(ns_dns_table_new(&t), 0);
	CU_ASSERT_EQUAL(tk_ipaddr_parse(&a[0], "100.64.0.9", 10), 0);
	CU_ASSERT_EQUAL(tk_ipaddr_parse(&a[1], "fd7a:115c:a1e0::9", 17), 0);
	a[2].family = 0; /* ignored */
	CU_ASSERT_EQUAL(ns_dns_table_add_node(t, "me.tn.example.", a, 3, true),
	    0);
	CU_ASSERT_EQUAL(ns_dns_table_add_node(t, "bad..name", a, 1, false),
	    TK_EINVAL);
	CU_ASSERT_EQUAL(ns_dns_table_add_node(t, "", a, 1, false), TK_EINVAL);
	for (int i = 0; i < 40; i++) { /* grows past its first allocation */
		char n[32];
		snprintf(n, sizeof(n), "n%d.tn.example", i);
		CU_ASSERT_EQUAL(ns_dns_table_add_node(t, n, a, 1, false), 0);
	}
	/* config: MagicDNS on, a forwarded sub-domain of the tailnet
	 * domain, and a split route for a tailnet reverse zone */
	Tk__Bus__V1__Netmap *nm = nm_fixture_new(NULL, NULL);
	Tk__Bus__V1__DNSConfig *dc = nm->dns_config;
	route_set(dc, 0, "fwd.tn.example", "10.9.9.9");
	route_set(dc, 2, "0.64.100.in-addr.arpa", "10.8.8.8");
	/* set twice: the second replaces the first */
	CU_ASSERT_EQUAL(ns_dns_table_set_config(t, dc), 0);
	CU_ASSERT_EQUAL(ns_dns_table_set_config(t, dc), 0);
	memset(&c, 0, sizeof(c));
	c.t = t;
	CU_ASSERT_EQUAL(ask(&c, "me", NS_DNS_TYPE_AAAA, -1, &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT(rr_is_addr(&r, 0, "fd7a:115c:a1e0::9"));
	CU_ASSERT_EQUAL(ask(&c, "n39.tn.example", NS_DNS_TYPE_A, -1, &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT(rr_is_addr(&r, 0, "100.64.0.9"));
	/* PTR: the first node with the address */
	CU_ASSERT_EQUAL(ask(&c, "9.0.64.100.in-addr.arpa", NS_DNS_TYPE_PTR, -1,
			    &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.n, 1);
	CU_ASSERT_EQUAL(ask(&c, "zz.tn.example", NS_DNS_TYPE_A, -1, &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.rcode, NS_DNS_RCODE_NXDOMAIN);
	CU_ASSERT_EQUAL(ask(&c, "x.fwd.tn.example", NS_DNS_TYPE_A, -1, &r, &u),
	    NS_DNS_FORWARD);
	CU_ASSERT(ups_is(&u, 0, "10.9.9.9:53"));
	/* a split route for part of a tailnet reverse zone beats the zone */
	CU_ASSERT_EQUAL(ask(&c, "7.0.64.100.in-addr.arpa", NS_DNS_TYPE_PTR, -1,
			    &r, &u),
	    NS_DNS_FORWARD);
	CU_ASSERT(ups_is(&u, 0, "10.8.8.8:53"));
	CU_ASSERT_EQUAL(ask(&c, "7.1.64.100.in-addr.arpa", NS_DNS_TYPE_PTR, -1,
			    &r, &u),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.rcode, NS_DNS_RCODE_NXDOMAIN);
	/* the fixture's tailnet names are not in this table */
	CU_ASSERT_EQUAL(ask(&c, "peer1.tail-test.ts.net", NS_DNS_TYPE_A, -1,
			    &r, &u),
	    NS_DNS_FORWARD);
	/* config removed: nothing is local or forwardable any more */
	CU_ASSERT_EQUAL(ns_dns_table_set_config(t, NULL), 0);
	CU_ASSERT_EQUAL(ask(&c, "zz.tn.example", NS_DNS_TYPE_A, -1, &r, NULL),
	    NS_DNS_REPLY);
	CU_ASSERT_EQUAL(r.rcode, NS_DNS_RCODE_SERVFAIL);
	nm_fixture_free(nm);
	ns_dns_table_free(t);
}

void
register_ns_dns_table(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_tailnet_names),
		TK_TEST(test_extra_records),
		TK_TEST(test_ptr),
		TK_TEST(test_local_and_split),
		TK_TEST(test_no_dns_config),
		TK_TEST(test_garbage),
		TK_TEST(test_dig_queries),
		TK_TEST(test_lookup),
		TK_TEST(test_table_alloc_failures),
		TK_TEST(test_builder),
		TK_TEST_END,
	};
	tk_test_suite("ns_dns_table", cases);
}
