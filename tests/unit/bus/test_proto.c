/* Round trips of every bus schema type (proto/tk/bus/v1). */
#include <stdlib.h>
#include <string.h>

#include "tk/bus/v1/common.pb-c.h"
#include "tk/bus/v1/ctrl.pb-c.h"
#include "tk/bus/v1/derp.pb-c.h"
#include "tk/bus/v1/packet.pb-c.h"
#include "tk/bus/v1/wg.pb-c.h"
#include "tk/bus_topic.h"
#include "tk/bus/fields.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk_test.h"

void register_proto(void);

/*
 * Packs m, unpacks it, packs the result again: the bytes must be identical
 * (nothing lost, nothing invented).  Returns the unpacked copy.
 */
static ProtobufCMessage *
roundtrip(const ProtobufCMessage *m)
{
	size_t n = protobuf_c_message_get_packed_size(m), n2;
	uint8_t *a = malloc(n + 1), *b;
	ProtobufCMessage *u;

	CU_ASSERT_FATAL(a != NULL);
	CU_ASSERT_EQUAL_FATAL(protobuf_c_message_pack(m, a), n);
	CU_ASSERT_TRUE(protobuf_c_message_check(m));
	u = protobuf_c_message_unpack(m->descriptor, NULL, n, a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	n2 = protobuf_c_message_get_packed_size(u);
	CU_ASSERT_EQUAL(n, n2);
	b = malloc(n2 + 1);
	CU_ASSERT_FATAL(b != NULL);
	protobuf_c_message_pack(u, b);
	if (n == n2)
		TK_ASSERT_MEM_EQ(a, b, n);
	free(a);
	free(b);
	return u;
}

static const ProtobufCMessageDescriptor *const all_descs[] = {
	&tk__bus__v1__envelope__descriptor,
	&tk__bus__v1__request__descriptor,
	&tk__bus__v1__reply__descriptor,
	&tk__bus__v1__snapshot_request__descriptor,
	&tk__bus__v1__prefix__descriptor,
	&tk__bus__v1__addr_port__descriptor,
	&tk__bus__v1__addr_port_list__descriptor,
	&tk__bus__v1__string_list__descriptor,
	&tk__bus__v1__node__descriptor,
	&tk__bus__v1__cap_map_entry__descriptor,
	&tk__bus__v1__cap_map__descriptor,
	&tk__bus__v1__peer_change__descriptor,
	&tk__bus__v1__derpnode__descriptor,
	&tk__bus__v1__derpregion__descriptor,
	&tk__bus__v1__region_score__descriptor,
	&tk__bus__v1__derpmap__descriptor,
	&tk__bus__v1__ipmatch__descriptor,
	&tk__bus__v1__iprange__descriptor,
	&tk__bus__v1__net_port_range__descriptor,
	&tk__bus__v1__cap_grant__descriptor,
	&tk__bus__v1__filter_rule__descriptor,
	&tk__bus__v1__packet_filter__descriptor,
	&tk__bus__v1__resolver__descriptor,
	&tk__bus__v1__dnsroute__descriptor,
	&tk__bus__v1__dnsrecord__descriptor,
	&tk__bus__v1__dnsconfig__descriptor,
	&tk__bus__v1__user_profile__descriptor,
	&tk__bus__v1__netmap__descriptor,
	&tk__bus__v1__netmap_delta__descriptor,
	&tk__bus__v1__prefs__descriptor,
	&tk__bus__v1__keys__descriptor,
	&tk__bus__v1__endpoint__descriptor,
	&tk__bus__v1__endpoints__descriptor,
	&tk__bus__v1__status_request__descriptor,
	&tk__bus__v1__topic_status__descriptor,
	&tk__bus__v1__peer_status__descriptor,
	&tk__bus__v1__status_response__descriptor,
	&tk__bus__v1__region_latency__descriptor,
	&tk__bus__v1__derp_conn__descriptor,
	&tk__bus__v1__derp_state__descriptor,
	&tk__bus__v1__peer_addr__descriptor,
	&tk__bus__v1__packet_control__descriptor,
	&tk__bus__v1__peer_gone__descriptor,
	&tk__bus__v1__peer_path__descriptor,
	&tk__bus__v1__peer_paths__descriptor,
};

/* Every type: packs empty, and no field is `required` (proto2 rule). */
static void
test_all_types_empty_and_optional(void)
{
	for (size_t i = 0; i < TK_ARRAY_LEN(all_descs); i++) {
		const ProtobufCMessageDescriptor *d = all_descs[i];
		ProtobufCMessage *m = calloc(1, d->sizeof_message), *u;

		CU_ASSERT_FATAL(m != NULL);
		protobuf_c_message_init(d, m);
		u = roundtrip(m);
		protobuf_c_message_free_unpacked(u, NULL);
		free(m);
		CU_ASSERT_STRING_EQUAL(d->package_name, "tk.bus.v1");
		for (unsigned f = 0; f < d->n_fields; f++)
			CU_ASSERT(d->fields[f].label !=
			    PROTOBUF_C_LABEL_REQUIRED);
	}
}

static uint8_t key_a[32], key_b[32];
static uint8_t v4[4] = { 100, 64, 0, 1 };
static uint8_t v6[16] = { 0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 1 };

static ProtobufCBinaryData
bin(uint8_t *p, size_t n)
{
	ProtobufCBinaryData b = { n, p };

	return b;
}

static void
test_node_roundtrip(void)
{
	Tk__Bus__V1__Node n = TK__BUS__V1__NODE__INIT, *u;
	Tk__Bus__V1__Prefix p4 = TK__BUS__V1__PREFIX__INIT;
	Tk__Bus__V1__Prefix p6 = TK__BUS__V1__PREFIX__INIT;
	Tk__Bus__V1__Prefix *addrs[2] = { &p4, &p6 };
	Tk__Bus__V1__AddrPort ep = TK__BUS__V1__ADDR_PORT__INIT;
	Tk__Bus__V1__AddrPort *eps[1] = { &ep };
	Tk__Bus__V1__CapMapEntry ce = TK__BUS__V1__CAP_MAP_ENTRY__INIT;
	Tk__Bus__V1__CapMapEntry *ces[1] = { &ce };
	char *tags[2] = { "tag:server", "tag:prod" };
	char *vals[1] = { "{\"x\":1}" };
	char *caps[1] = { "https://tailscale.com/cap/ssh" };

	memset(key_a, 0xa1, sizeof(key_a));
	memset(key_b, 0xb2, sizeof(key_b));
	p4.has_addr = p4.has_bits = p6.has_addr = p6.has_bits = true;
	p4.addr = bin(v4, 4);
	p4.bits = 32;
	p6.addr = bin(v6, 16);
	p6.bits = 128;
	ep.has_addr = ep.has_port = true;
	ep.addr = bin(v4, 4);
	ep.port = 41641;
	ce.name = "cap/x";
	ce.n_json_values = 1;
	ce.json_values = vals;
	n.has_id = true;
	n.id = 1234567890123LL;
	n.stable_id = "nLzY4qgWws11CNTRL";
	n.name = "host.tailnet.ts.net.";
	n.has_key = n.has_disco_key = true;
	n.key = bin(key_a, 32);
	n.disco_key = bin(key_b, 32);
	n.has_key_expiry_unix = true;
	n.key_expiry_unix = 1893456000;
	n.n_addresses = 2;
	n.addresses = addrs;
	n.n_allowed_ips = 2;
	n.allowed_ips = addrs;
	n.n_endpoints = 1;
	n.endpoints = eps;
	n.has_home_derp = true;
	n.home_derp = 900;
	n.has_online = true;
	n.online = false; /* present and false differs from absent */
	n.n_tags = 2;
	n.tags = tags;
	n.n_capabilities = 1;
	n.capabilities = caps;
	n.n_cap_map = 1;
	n.cap_map = ces;
	u = (Tk__Bus__V1__Node *)roundtrip(&n.base);
	CU_ASSERT_EQUAL(u->id, 1234567890123LL);
	CU_ASSERT_STRING_EQUAL(u->name, "host.tailnet.ts.net.");
	CU_ASSERT_EQUAL(u->key.len, 32);
	TK_ASSERT_MEM_EQ(u->key.data, key_a, 32);
	TK_ASSERT_MEM_EQ(u->disco_key.data, key_b, 32);
	CU_ASSERT_EQUAL(u->n_addresses, 2);
	CU_ASSERT_EQUAL(u->addresses[1]->bits, 128);
	CU_ASSERT_EQUAL(u->endpoints[0]->port, 41641);
	CU_ASSERT_EQUAL(u->home_derp, 900);
	CU_ASSERT_TRUE(u->has_online);
	CU_ASSERT_FALSE(u->online);
	CU_ASSERT_FALSE(u->has_last_seen_unix);
	CU_ASSERT_STRING_EQUAL(u->tags[1], "tag:prod");
	CU_ASSERT_STRING_EQUAL(u->cap_map[0]->json_values[0], "{\"x\":1}");
	CU_ASSERT_EQUAL(u->key_expiry_unix, 1893456000);
	tk__bus__v1__node__free_unpacked(u, NULL);
}

static void
test_derpmap_roundtrip(void)
{
	Tk__Bus__V1__DERPMap dm = TK__BUS__V1__DERPMAP__INIT, *u;
	Tk__Bus__V1__DERPRegion r = TK__BUS__V1__DERPREGION__INIT;
	Tk__Bus__V1__DERPRegion *rs[1] = { &r };
	Tk__Bus__V1__DERPNode dn = TK__BUS__V1__DERPNODE__INIT;
	Tk__Bus__V1__DERPNode *dns[1] = { &dn };
	Tk__Bus__V1__RegionScore sc = TK__BUS__V1__REGION_SCORE__INIT;
	Tk__Bus__V1__RegionScore *scs[1] = { &sc };

	dn.name = "900a";
	dn.has_region_id = true;
	dn.region_id = 900;
	dn.host_name = "derp.example.com";
	dn.ipv4 = "127.0.0.1";
	dn.ipv6 = "none";
	dn.has_stun_port = true;
	dn.stun_port = -1;
	dn.has_derp_port = true;
	dn.derp_port = 8443;
	dn.has_insecure_for_tests = true;
	dn.insecure_for_tests = true;
	r.has_region_id = true;
	r.region_id = 900;
	r.region_code = "local";
	r.n_nodes = 1;
	r.nodes = dns;
	sc.has_region_id = sc.has_score = true;
	sc.region_id = 900;
	sc.score = 0.5;
	dm.n_regions = 1;
	dm.regions = rs;
	dm.n_region_scores = 1;
	dm.region_scores = scs;
	u = (Tk__Bus__V1__DERPMap *)roundtrip(&dm.base);
	CU_ASSERT_EQUAL(u->regions[0]->region_id, 900);
	CU_ASSERT_STRING_EQUAL(u->regions[0]->nodes[0]->host_name,
	    "derp.example.com");
	CU_ASSERT_EQUAL(u->regions[0]->nodes[0]->stun_port, -1);
	CU_ASSERT_STRING_EQUAL(u->regions[0]->nodes[0]->ipv6, "none");
	CU_ASSERT_TRUE(u->regions[0]->nodes[0]->insecure_for_tests);
	CU_ASSERT_DOUBLE_EQUAL(u->region_scores[0]->score, 0.5, 1e-12);
	tk__bus__v1__derpmap__free_unpacked(u, NULL);
}

/* FilterRule forms and the absent / present-but-empty filter distinction. */
static void
test_filter_roundtrip(void)
{
	Tk__Bus__V1__FilterRule fr = TK__BUS__V1__FILTER_RULE__INIT;
	Tk__Bus__V1__FilterRule *frs[1] = { &fr };
	Tk__Bus__V1__IPMatch any = TK__BUS__V1__IPMATCH__INIT;
	Tk__Bus__V1__IPMatch cap = TK__BUS__V1__IPMATCH__INIT;
	Tk__Bus__V1__IPMatch rng = TK__BUS__V1__IPMATCH__INIT;
	Tk__Bus__V1__IPMatch dst = TK__BUS__V1__IPMATCH__INIT;
	Tk__Bus__V1__IPMatch *srcs[3] = { &any, &cap, &rng };
	Tk__Bus__V1__IPRange range = TK__BUS__V1__IPRANGE__INIT;
	Tk__Bus__V1__Prefix pfx = TK__BUS__V1__PREFIX__INIT;
	Tk__Bus__V1__NetPortRange npr = TK__BUS__V1__NET_PORT_RANGE__INIT;
	Tk__Bus__V1__NetPortRange *nprs[1] = { &npr };
	uint32_t protos[2] = { 6, 17 };
	uint8_t lo[4] = { 100, 64, 0, 1 }, hi[4] = { 100, 64, 0, 9 };
	Tk__Bus__V1__PacketFilter pf = TK__BUS__V1__PACKET_FILTER__INIT;
	Tk__Bus__V1__PacketFilter empty = TK__BUS__V1__PACKET_FILTER__INIT;
	Tk__Bus__V1__NetmapDelta d1 = TK__BUS__V1__NETMAP_DELTA__INIT, *u1;
	Tk__Bus__V1__NetmapDelta d2 = TK__BUS__V1__NETMAP_DELTA__INIT, *u2;
	Tk__Bus__V1__NetmapDelta d3 = TK__BUS__V1__NETMAP_DELTA__INIT, *u3;

	any.match_case = TK__BUS__V1__IPMATCH__MATCH_ANY;
	any.any = true;
	cap.match_case = TK__BUS__V1__IPMATCH__MATCH_CAP;
	cap.cap = "cap:https://tailscale.com/cap/funnel";
	range.has_first = range.has_last = true;
	range.first = bin(lo, 4);
	range.last = bin(hi, 4);
	rng.match_case = TK__BUS__V1__IPMATCH__MATCH_RANGE;
	rng.range = &range;
	pfx.has_addr = pfx.has_bits = true;
	pfx.addr = bin(v4, 4);
	pfx.bits = 32;
	dst.match_case = TK__BUS__V1__IPMATCH__MATCH_PREFIX;
	dst.prefix = &pfx;
	npr.ip = &dst;
	npr.has_first_port = npr.has_last_port = true;
	npr.first_port = 22;
	npr.last_port = 22;
	fr.n_src_ips = 3;
	fr.src_ips = srcs;
	fr.n_dst_ports = 1;
	fr.dst_ports = nprs;
	fr.n_ip_proto = 2;
	fr.ip_proto = protos;
	pf.has_received = true;
	pf.received = true;
	pf.n_rules = 1;
	pf.rules = frs;
	empty.has_received = true;
	empty.received = true;

	d1.packet_filter = &pf; /* rules */
	d2.packet_filter = &empty; /* present, empty: deny all */
	/* d3: absent: unchanged */
	u1 = (Tk__Bus__V1__NetmapDelta *)roundtrip(&d1.base);
	u2 = (Tk__Bus__V1__NetmapDelta *)roundtrip(&d2.base);
	u3 = (Tk__Bus__V1__NetmapDelta *)roundtrip(&d3.base);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u1->packet_filter);
	CU_ASSERT_EQUAL_FATAL(u1->packet_filter->n_rules, 1);
	{
		Tk__Bus__V1__FilterRule *r = u1->packet_filter->rules[0];

		CU_ASSERT_EQUAL_FATAL(r->n_src_ips, 3);
		CU_ASSERT_EQUAL(r->src_ips[0]->match_case,
		    TK__BUS__V1__IPMATCH__MATCH_ANY);
		CU_ASSERT_EQUAL(r->src_ips[1]->match_case,
		    TK__BUS__V1__IPMATCH__MATCH_CAP);
		CU_ASSERT_STRING_EQUAL(r->src_ips[1]->cap,
		    "cap:https://tailscale.com/cap/funnel");
		CU_ASSERT_EQUAL(r->src_ips[2]->match_case,
		    TK__BUS__V1__IPMATCH__MATCH_RANGE);
		TK_ASSERT_MEM_EQ(r->src_ips[2]->range->last.data, hi, 4);
		CU_ASSERT_EQUAL(r->dst_ports[0]->ip->match_case,
		    TK__BUS__V1__IPMATCH__MATCH_PREFIX);
		CU_ASSERT_EQUAL(r->dst_ports[0]->first_port, 22);
		CU_ASSERT_EQUAL(r->n_ip_proto, 2);
		CU_ASSERT_EQUAL(r->ip_proto[1], 17);
	}
	CU_ASSERT_PTR_NOT_NULL(u2->packet_filter);
	if (u2->packet_filter != NULL)
		CU_ASSERT_EQUAL(u2->packet_filter->n_rules, 0);
	CU_ASSERT_PTR_NULL(u3->packet_filter);
	tk__bus__v1__netmap_delta__free_unpacked(u1, NULL);
	tk__bus__v1__netmap_delta__free_unpacked(u2, NULL);
	tk__bus__v1__netmap_delta__free_unpacked(u3, NULL);
}

static void
test_dns_roundtrip(void)
{
	Tk__Bus__V1__DNSConfig dc = TK__BUS__V1__DNSCONFIG__INIT, *u;
	Tk__Bus__V1__Resolver r = TK__BUS__V1__RESOLVER__INIT;
	Tk__Bus__V1__Resolver *rs[1] = { &r };
	Tk__Bus__V1__DNSRoute local = TK__BUS__V1__DNSROUTE__INIT;
	Tk__Bus__V1__DNSRoute split = TK__BUS__V1__DNSROUTE__INIT;
	Tk__Bus__V1__DNSRoute *routes[2] = { &local, &split };
	Tk__Bus__V1__DNSRecord rec = TK__BUS__V1__DNSRECORD__INIT;
	Tk__Bus__V1__DNSRecord *recs[1] = { &rec };
	char *domains[1] = { "tailnet.ts.net" };

	r.addr = "https://dns.example/dns-query";
	local.suffix = "tailnet.ts.net."; /* no resolvers: answered locally */
	split.suffix = "corp.example.";
	split.n_resolvers = 1;
	split.resolvers = rs;
	rec.name = "db.tailnet.ts.net.";
	rec.type = "A";
	rec.value = "100.64.0.7";
	dc.n_resolvers = 1;
	dc.resolvers = rs;
	dc.n_routes = 2;
	dc.routes = routes;
	dc.n_domains = 1;
	dc.domains = domains;
	dc.has_proxied = true;
	dc.proxied = true;
	dc.n_extra_records = 1;
	dc.extra_records = recs;
	u = (Tk__Bus__V1__DNSConfig *)roundtrip(&dc.base);
	CU_ASSERT_TRUE(u->has_proxied && u->proxied);
	CU_ASSERT_EQUAL(u->n_routes, 2);
	CU_ASSERT_EQUAL(u->routes[0]->n_resolvers, 0);
	CU_ASSERT_STRING_EQUAL(u->routes[1]->resolvers[0]->addr,
	    "https://dns.example/dns-query");
	CU_ASSERT_STRING_EQUAL(u->extra_records[0]->value, "100.64.0.7");
	CU_ASSERT_STRING_EQUAL(u->domains[0], "tailnet.ts.net");
	tk__bus__v1__dnsconfig__free_unpacked(u, NULL);
}

static void
test_netmap_status_keys_roundtrip(void)
{
	Tk__Bus__V1__Netmap nm = TK__BUS__V1__NETMAP__INIT, *un;
	Tk__Bus__V1__Node self = TK__BUS__V1__NODE__INIT;
	Tk__Bus__V1__Node peer = TK__BUS__V1__NODE__INIT;
	Tk__Bus__V1__Node *peers[1] = { &peer };
	Tk__Bus__V1__Keys k = TK__BUS__V1__KEYS__INIT, *uk;
	Tk__Bus__V1__Endpoints eps = TK__BUS__V1__ENDPOINTS__INIT, *ue;
	Tk__Bus__V1__Endpoint e = TK__BUS__V1__ENDPOINT__INIT;
	Tk__Bus__V1__Endpoint *es[1] = { &e };
	Tk__Bus__V1__AddrPort ap = TK__BUS__V1__ADDR_PORT__INIT;
	Tk__Bus__V1__StatusResponse st = TK__BUS__V1__STATUS_RESPONSE__INIT,
				    *us;
	Tk__Bus__V1__TopicStatus ts = TK__BUS__V1__TOPIC_STATUS__INIT;
	Tk__Bus__V1__TopicStatus *tss[1] = { &ts };
	Tk__Bus__V1__Prefs pr = TK__BUS__V1__PREFS__INIT, *up;
	Tk__Bus__V1__PeerChange pc = TK__BUS__V1__PEER_CHANGE__INIT, *upc;
	Tk__Bus__V1__AddrPortList none = TK__BUS__V1__ADDR_PORT_LIST__INIT;

	self.has_id = peer.has_id = true;
	self.id = 1;
	peer.id = 2;
	nm.self = &self;
	nm.n_peers = 1;
	nm.peers = peers;
	nm.domain = "tailnet.ts.net";
	un = (Tk__Bus__V1__Netmap *)roundtrip(&nm.base);
	CU_ASSERT_EQUAL(un->self->id, 1);
	CU_ASSERT_EQUAL(un->peers[0]->id, 2);
	CU_ASSERT_PTR_NULL(un->derp_map);
	tk__bus__v1__netmap__free_unpacked(un, NULL);

	k.has_node_key = k.has_disco_key = true;
	k.node_key = bin(key_a, 32);
	k.disco_key = bin(key_b, 32);
	uk = (Tk__Bus__V1__Keys *)roundtrip(&k.base);
	TK_ASSERT_MEM_EQ(uk->node_key.data, key_a, 32);
	CU_ASSERT_FALSE(uk->has_old_node_key);
	tk__bus__v1__keys__free_unpacked(uk, NULL);

	ap.has_addr = ap.has_port = true;
	ap.addr = bin(v6, 16);
	ap.port = 3478;
	e.addr = &ap;
	e.has_type = true;
	e.type = TK__BUS__V1__ENDPOINT_TYPE__ENDPOINT_TYPE_STUN;
	eps.n_endpoints = 1;
	eps.endpoints = es;
	ue = (Tk__Bus__V1__Endpoints *)roundtrip(&eps.base);
	CU_ASSERT_EQUAL(ue->endpoints[0]->type, 2); /* tailcfg EndpointSTUN */
	CU_ASSERT_EQUAL(ue->endpoints[0]->addr->addr.len, 16);
	tk__bus__v1__endpoints__free_unpacked(ue, NULL);

	ts.topic = TK_TOPIC_NETMAP;
	ts.has_seq = ts.has_epoch = true;
	ts.seq = 42;
	ts.epoch = 0xfeedfacecafebeefull;
	st.component = "ctrld";
	st.has_state = true;
	st.state = TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_RUNNING;
	st.n_topics = 1;
	st.topics = tss;
	us = (Tk__Bus__V1__StatusResponse *)roundtrip(&st.base);
	CU_ASSERT_EQUAL(us->state,
	    TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_RUNNING);
	CU_ASSERT_EQUAL(us->topics[0]->epoch, 0xfeedfacecafebeefull);
	tk__bus__v1__status_response__free_unpacked(us, NULL);

	pr.control_url = "https://controlplane.tailscale.com";
	pr.has_want_running = pr.has_corp_dns = true;
	pr.want_running = true;
	pr.corp_dns = false;
	up = (Tk__Bus__V1__Prefs *)roundtrip(&pr.base);
	CU_ASSERT_TRUE(up->has_corp_dns && !up->corp_dns);
	CU_ASSERT_FALSE(up->has_route_all);
	tk__bus__v1__prefs__free_unpacked(up, NULL);

	/* PeerChange: Endpoints present-but-empty differs from absent. */
	pc.has_node_id = true;
	pc.node_id = 2;
	pc.endpoints = &none;
	upc = (Tk__Bus__V1__PeerChange *)roundtrip(&pc.base);
	CU_ASSERT_PTR_NOT_NULL(upc->endpoints);
	CU_ASSERT_PTR_NULL(upc->cap_map);
	CU_ASSERT_FALSE(upc->has_online);
	tk__bus__v1__peer_change__free_unpacked(upc, NULL);
}

static void
test_wg_derp_packet_roundtrip(void)
{
	Tk__Bus__V1__PeerPaths pp = TK__BUS__V1__PEER_PATHS__INIT, *upp;
	Tk__Bus__V1__PeerPath p = TK__BUS__V1__PEER_PATH__INIT;
	Tk__Bus__V1__PeerPath *ps[1] = { &p };
	ProtobufCBinaryData removed[1];
	Tk__Bus__V1__DerpState ds = TK__BUS__V1__DERP_STATE__INIT, *uds;
	Tk__Bus__V1__RegionLatency rl = TK__BUS__V1__REGION_LATENCY__INIT;
	Tk__Bus__V1__RegionLatency *rls[1] = { &rl };
	Tk__Bus__V1__PacketControl pc = TK__BUS__V1__PACKET_CONTROL__INIT, *upc;
	Tk__Bus__V1__PeerGone pg = TK__BUS__V1__PEER_GONE__INIT;
	Tk__Bus__V1__PeerAddr pa = TK__BUS__V1__PEER_ADDR__INIT;

	p.has_node_key = p.has_kind = p.has_latency_us = true;
	p.node_key = bin(key_a, 32);
	p.kind = TK__BUS__V1__PATH_KIND__PATH_KIND_DIRECT;
	p.latency_us = 1234;
	removed[0] = bin(key_b, 32);
	pp.n_peers = 1;
	pp.peers = ps;
	pp.n_removed = 1;
	pp.removed = removed;
	upp = (Tk__Bus__V1__PeerPaths *)roundtrip(&pp.base);
	CU_ASSERT_EQUAL(upp->peers[0]->kind,
	    TK__BUS__V1__PATH_KIND__PATH_KIND_DIRECT);
	CU_ASSERT_EQUAL(upp->peers[0]->latency_us, 1234);
	TK_ASSERT_MEM_EQ(upp->removed[0].data, key_b, 32);
	tk__bus__v1__peer_paths__free_unpacked(upp, NULL);

	rl.has_region_id = rl.has_latency_v4_us = true;
	rl.region_id = 1;
	rl.latency_v4_us = 15000;
	ds.has_home_region = true;
	ds.home_region = 1;
	ds.n_latencies = 1;
	ds.latencies = rls;
	uds = (Tk__Bus__V1__DerpState *)roundtrip(&ds.base);
	CU_ASSERT_EQUAL(uds->home_region, 1);
	CU_ASSERT_TRUE(uds->latencies[0]->has_latency_v4_us);
	CU_ASSERT_FALSE(uds->latencies[0]->has_latency_v6_us);
	tk__bus__v1__derp_state__free_unpacked(uds, NULL);

	pa.has_node_key = true;
	pa.node_key = bin(key_a, 32);
	pg.peer = &pa;
	pg.has_reason = true;
	pg.reason = TK__BUS__V1__PEER_GONE_REASON__PEER_GONE_NOT_HERE;
	pc.msg_case = TK__BUS__V1__PACKET_CONTROL__MSG_PEER_GONE;
	pc.peer_gone = &pg;
	upc = (Tk__Bus__V1__PacketControl *)roundtrip(&pc.base);
	CU_ASSERT_EQUAL_FATAL(upc->msg_case,
	    TK__BUS__V1__PACKET_CONTROL__MSG_PEER_GONE);
	CU_ASSERT_EQUAL(upc->peer_gone->reason, 1);
	TK_ASSERT_MEM_EQ(upc->peer_gone->peer->node_key.data, key_a, 32);
	tk__bus__v1__packet_control__free_unpacked(upc, NULL);
}

/* tk/bus_topics.h: every topic is a valid, unique Envelope topic with
 * both body types, and can be found by name. */
static void
test_topic_table(void)
{
	size_t n = 0;

	for (const tk_bus_topic_info *t = tk_bus_topics; t->name; t++, n++) {
		nng_msg *m;

		CU_ASSERT_PTR_EQUAL(tk_bus_topic_find(t->name), t);
		CU_ASSERT(t->publisher != NULL && t->snapshot != NULL &&
		    t->delta != NULL);
		CU_ASSERT_EQUAL(tk_envelope_pack(&m, t->name, 1, 1,
				    TK__BUS__V1__KIND__KIND_DELTA, NULL, 0),
		    0);
		nng_msg_free(m);
	}
	CU_ASSERT_EQUAL(n, 5);
	CU_ASSERT_PTR_NULL(tk_bus_topic_find("self"));
	CU_ASSERT_PTR_NULL(tk_bus_topic_find(NULL));
	CU_ASSERT(!tk_bus_topic_find(TK_TOPIC_NETMAP)->planned);
	CU_ASSERT(tk_bus_topic_find(TK_TOPIC_DERP)->planned);
	CU_ASSERT_PTR_EQUAL(tk_bus_topic_find(TK_TOPIC_NETMAP)->delta,
	    &tk__bus__v1__netmap_delta__descriptor);
}

/* tk/bus/fields.h (generated by proto/gen_fields.c) names fields as the
 * descriptors do: message in upper snake case, acronyms whole. */
static void
test_generated_fields(void)
{
	static const struct {
		const ProtobufCMessageDescriptor *d;
		const char *field;
		unsigned id, wire, type;
	} t[] = {
		{ &tk__bus__v1__envelope__descriptor, "topic",
		    TK_F_ENVELOPE_TOPIC, TK_W_ENVELOPE_TOPIC, TK_T_ENVELOPE_TOPIC },
		{ &tk__bus__v1__node__descriptor, "key", TK_F_NODE_KEY,
		    TK_W_NODE_KEY, TK_T_NODE_KEY },
		{ &tk__bus__v1__node__descriptor, "peerapi6_port",
		    TK_F_NODE_PEERAPI6_PORT, TK_W_NODE_PEERAPI6_PORT,
		    TK_T_NODE_PEERAPI6_PORT },
		{ &tk__bus__v1__derpnode__descriptor, "stun_port",
		    TK_F_DERP_NODE_STUN_PORT, TK_W_DERP_NODE_STUN_PORT,
		    TK_T_DERP_NODE_STUN_PORT },
		{ &tk__bus__v1__derpregion__descriptor, "latitude",
		    TK_F_DERP_REGION_LATITUDE, TK_W_DERP_REGION_LATITUDE,
		    TK_T_DERP_REGION_LATITUDE },
		{ &tk__bus__v1__ipmatch__descriptor, "cap", TK_F_IP_MATCH_CAP,
		    TK_W_IP_MATCH_CAP, TK_T_IP_MATCH_CAP },
		{ &tk__bus__v1__netmap_delta__descriptor, "health",
		    TK_F_NETMAP_DELTA_HEALTH, TK_W_NETMAP_DELTA_HEALTH,
		    TK_T_NETMAP_DELTA_HEALTH },
		{ &tk__bus__v1__derp_state__descriptor, "home_region",
		    TK_F_DERP_STATE_HOME_REGION, TK_W_DERP_STATE_HOME_REGION,
		    TK_T_DERP_STATE_HOME_REGION },
	};
	/* wire type of each TK_PBT_* here, as the protobuf encoding has it */
	static const struct {
		ProtobufCType pbc;
		unsigned pbt, wire;
	} types[] = {
		{ PROTOBUF_C_TYPE_STRING, TK_PBT_STRING, TK_WIRE_LEN },
		{ PROTOBUF_C_TYPE_BYTES, TK_PBT_BYTES, TK_WIRE_LEN },
		{ PROTOBUF_C_TYPE_UINT32, TK_PBT_UINT32, TK_WIRE_VARINT },
		{ PROTOBUF_C_TYPE_INT32, TK_PBT_INT32, TK_WIRE_VARINT },
		{ PROTOBUF_C_TYPE_DOUBLE, TK_PBT_DOUBLE, TK_WIRE_I64 },
		{ PROTOBUF_C_TYPE_MESSAGE, TK_PBT_MESSAGE, TK_WIRE_LEN },
	};

	for (size_t i = 0; i < TK_ARRAY_LEN(t); i++) {
		const ProtobufCFieldDescriptor *f =
		    protobuf_c_message_descriptor_get_field_by_name(t[i].d,
			t[i].field);
		bool typed = false;

		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		CU_ASSERT_EQUAL(f->id, t[i].id);
		for (size_t k = 0; k < TK_ARRAY_LEN(types); k++)
			if (types[k].pbc == f->type)
				typed = types[k].pbt == t[i].type &&
				    types[k].wire == t[i].wire;
		CU_ASSERT(typed);
	}
	CU_ASSERT_EQUAL(TK_TAG(NODE_KEY),
	    TK_F_NODE_KEY << 3 | TK_WIRE_LEN);
	CU_ASSERT_EQUAL(TK_FIELD_T(NODE_PEERAPI4_PORT, UINT32),
	    TK_F_NODE_PEERAPI4_PORT);
}

/* Envelope: the packed topic is the sub0 prefix; unpack validates. */
static void
test_envelope_codec(void)
{
	nng_msg *m;
	tk_envelope env;
	static const uint8_t body[] = { 1, 2, 3 };
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff };

	CU_ASSERT_EQUAL_FATAL(tk_envelope_pack(&m, TK_TOPIC_NETMAP, 77, 5,
				  TK__BUS__V1__KIND__KIND_DELTA, body, 3),
	    0);
	{
		const uint8_t *p = nng_msg_body(m);

		CU_ASSERT_EQUAL(p[0], 0x0a); /* field 1, LEN: sub0 prefix */
		CU_ASSERT_EQUAL(p[1], strlen(TK_TOPIC_NETMAP));
		TK_ASSERT_MEM_EQ(p + 2, TK_TOPIC_NETMAP, strlen(TK_TOPIC_NETMAP));
	}
	CU_ASSERT_EQUAL_FATAL(tk_envelope_unpack(&env, nng_msg_body(m),
				  nng_msg_len(m)),
	    0);
	CU_ASSERT_STRING_EQUAL(env.topic, TK_TOPIC_NETMAP);
	CU_ASSERT_EQUAL(env.epoch, 77);
	CU_ASSERT_EQUAL(env.seq, 5);
	CU_ASSERT_EQUAL(env.kind, TK__BUS__V1__KIND__KIND_DELTA);
	CU_ASSERT_EQUAL(env.len, 3);
	TK_ASSERT_MEM_EQ(env.body, body, 3);
	tk_envelope_fini(&env);
	nng_msg_free(m);

	CU_ASSERT_EQUAL(tk_envelope_pack(&m, "bad topic", 1, 1, 2, NULL, 0),
	    TK_EINVAL);
	CU_ASSERT_EQUAL(tk_envelope_unpack(&env, junk, sizeof(junk)),
	    TK_EPROTO);
	/* Valid protobuf, invalid envelope: delta with seq 0; unknown kind. */
	CU_ASSERT_EQUAL_FATAL(tk_envelope_pack(&m, "x", 1, 0, 2, NULL, 0), 0);
	CU_ASSERT_EQUAL(tk_envelope_unpack(&env, nng_msg_body(m),
			    nng_msg_len(m)),
	    TK_EPROTO);
	nng_msg_free(m);
	CU_ASSERT_EQUAL_FATAL(tk_envelope_pack(&m, "x", 1, 1, 9, NULL, 0), 0);
	CU_ASSERT_EQUAL(tk_envelope_unpack(&env, nng_msg_body(m),
			    nng_msg_len(m)),
	    TK_EPROTO);
	nng_msg_free(m);
	CU_ASSERT_EQUAL(tk_envelope_unpack(&env, NULL, 0), TK_EPROTO);
}

void
register_proto(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_all_types_empty_and_optional),
		TK_TEST(test_node_roundtrip),
		TK_TEST(test_derpmap_roundtrip),
		TK_TEST(test_filter_roundtrip),
		TK_TEST(test_dns_roundtrip),
		TK_TEST(test_netmap_status_keys_roundtrip),
		TK_TEST(test_wg_derp_packet_roundtrip),
		TK_TEST(test_envelope_codec),
		TK_TEST(test_topic_table),
		TK_TEST(test_generated_fields),
		TK_TEST_END,
	};

	tk_test_suite("proto", cases);
}
