/* netstackd's DNS (netstackd/src/ns_dns_*.c): the MagicDNS answer path on
 * any message (UDP and TCP), the codec's name reader at every offset, and
 * the forwarder taking the input as an upstream reply.  Invariants: a
 * reply fits the transport's limit, carries the query's ID and parses back
 * as a response; a forwarded reply keeps the client's ID. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nm_fixture.h"
#include "ns_dns.h"
#include "tk/endian.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ns_dns_table *table;
static ns_dns_fwd *fwd;
static tk_fake_clock clk;
static tk_fake_rng rng;

static ns_dns_server *srv;

static void
sink_client(void *arg, const ns_dns_client *c, const uint8_t *p, size_t n)
{
	/* relayed upstream replies are as long as the upstream made them */
	(void)arg;
	(void)c;
	if (n < NS_DNS_HDR_LEN || n > NS_DNS_TCP_MAX || !(p[2] & 0x80))
		__builtin_trap();
}

static void
sink_upstream(void *arg, const tk_ipport *up, const uint8_t *p, size_t n)
{
	(void)arg;
	(void)up;
	if (n < NS_DNS_HDR_LEN || (p[2] & 0x80))
		__builtin_trap();
}

static void
setup(void)
{
	Tk__Bus__V1__Netmap *nm = nm_fixture_new("127.0.0.1:5353", "127.0.0.1:5354");
	ns_dns_fwd_cfg cfg = { .clock = &clk.fc_clock, .rng = &rng.fr_rng,
		.timeout_ms = 1000, .retry_ms = 500,
		.max_outstanding = 4 };

	tk_fake_clock_init(&clk, 1, 0);
	tk_fake_rng_init(&rng, 1);
	if (ns_dns_table_new_from_netmap(nm, &table) != 0 ||
	    ns_dns_fwd_new(&cfg, &fwd) != 0)
		__builtin_trap();
	ns_dns_server_ops ops = { sink_client, sink_upstream, NULL };
	ns_dns_table *t2;
	if (ns_dns_server_new(&cfg, &ops, &srv) != 0 ||
	    ns_dns_table_new_from_netmap(nm, &t2) != 0)
		__builtin_trap();
	ns_dns_server_set_table(srv, t2);
	nm_fixture_free(nm);
}

static void
answer(const uint8_t *data, size_t size, int transport)
{
	static uint8_t out[NS_DNS_TCP_MAX];
	size_t ol = 0;
	int action = -1;
	ns_dns_upstreams ups;
	ns_dns_stats st = { 0 };
	ns_dns_query q;

	if (ns_dns_answer(table, data, size, transport, out, sizeof(out), &ol,
		&ups, &action, &st) != 0)
		__builtin_trap();
	if (action == NS_DNS_REPLY) {
		bool parsed = ns_dns_query_parse(&q, data, size) == 0;
		size_t limit = parsed ? ns_dns_size_limit(&q, transport) :
					NS_DNS_UDP_MAX;
		if (ol < NS_DNS_HDR_LEN || ol > limit ||
		    memcmp(out, data, 2) != 0 || !(out[2] & 0x80))
			__builtin_trap();
		uint8_t name[NS_DNS_NAME_MAX];
		size_t nl;
		uint16_t id, t, c;
		if (tk_be16_load(out + 4) == 1 &&
		    ns_dns_response_check(out, ol, &id, name, &nl, &t, &c) != 0)
			__builtin_trap();
	} else if (action == NS_DNS_FORWARD) {
		if (ups.n == 0 || ups.n > NS_DNS_FWD_MAX_UPSTREAMS)
			__builtin_trap();
	} else if (action != NS_DNS_DROP) {
		__builtin_trap();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (table == NULL)
		setup();
	answer(data, size, NS_DNS_UDP);
	answer(data, size, NS_DNS_TCP);

	uint8_t name[NS_DNS_NAME_MAX];
	char text[NS_DNS_TEXT_MAX];
	size_t nl, next;
	for (size_t off = 0; off < size && off < 64; off++)
		if (ns_dns_name_read(data, size, off, name, &nl, &next) == 0) {
			if (nl > NS_DNS_NAME_MAX || next > size || next <= off)
				__builtin_trap();
			if (ns_dns_name_to_text(name, nl, text, sizeof(text)) != 0)
				__builtin_trap();
		}

	/* the input as an answer to one of netstackd's own lookups */
	tk_ipaddr ra;
	if (ns_dns_response_addr(data, size, &ra) == 0 &&
	    ra.family != TK_AF_INET && ra.family != TK_AF_INET6)
		__builtin_trap();

	/* the input through ns_dns_server, as a query and as an upstream
	 * datagram (the callbacks check the bounds) */
	ns_dns_client sc = { .transport = (int)(size & 1) };
	tk_ipport sfrom = { .port = 53 };
	sfrom.ip.family = TK_AF_INET;
	ns_dns_server_query(srv, &sc, data, size);
	ns_dns_server_upstream(srv, &sfrom, data, size);
	tk_fake_clock_advance(&clk, 100 * TK_NSEC_PER_MSEC);
	ns_dns_server_tick(srv);

	/* the input as a DNS-over-TCP stream */
	const uint8_t *m = data;
	size_t left = size, ml, used;
	while (ns_dns_tcp_next(m, left, &m, &ml, &used) == 0) {
		if (used != ml + 2 || used > left || ml == 0)
			__builtin_trap();
		m += ml;
		left -= used;
	}

	/* the input as the upstream's reply to a forwarded query */
	static const uint8_t query[] = { 0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0,
		0, 3, 'w', 'w', 'w', 4, 'c', 'o', 'r', 'p', 7, 'e', 'x', 'a',
		'm', 'p', 'l', 'e', 0, 0, 1, 0, 1 };
	static uint8_t up[512], back[65536];
	size_t ul, bl;
	tk_ipport to;
	ns_dns_upstreams ups = { .n = 2 };
	ns_dns_client cl = { .tag = 5 }, got;
	tk_ipaddr_parse(&ups.up[0].ip, "127.0.0.1", 9);
	ups.up[0].port = 5353;
	ups.up[1] = ups.up[0];
	ups.up[1].port = 5354;
	if (ns_dns_fwd_query(fwd, query, sizeof(query), &cl, &ups, up,
		sizeof(up), &ul, &to, NULL) != 0)
		__builtin_trap();
	if (size >= 2 && size <= sizeof(back)) {
		static uint8_t r[65536];
		memcpy(r, data, size);
		memcpy(r, up, 2); /* the right ID: the question decides */
		if (ns_dns_fwd_reply(fwd, r, size, &to, back, sizeof(back), &bl,
			&got, NULL) == 0 &&
		    (bl != size || tk_be16_load(back) != 0x1234 || got.tag != 5))
			__builtin_trap();
	}
	/* retry to a second upstream, then the deadline */
	for (int step = 0; step < 2; step++) {
		int send;
		tk_fake_clock_advance(&clk, 600 * TK_NSEC_PER_MSEC);
		while (ns_dns_fwd_poll(fwd, back, sizeof(back), &bl, &send, &got,
			   &to, NULL) == 0)
			if (got.tag != 5 || (send == NS_DNS_FWD_TO_CLIENT &&
						tk_be16_load(back) != 0x1234))
				__builtin_trap();
	}
	if (ns_dns_fwd_outstanding(fwd) != 0)
		__builtin_trap();
	return 0;
}
