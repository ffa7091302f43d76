/*
 * ctrld map state: MapResponse JSON in, bus Netmap/NetmapDelta out, with
 * Go's semantics (tailscale.com v1.102.3 control/controlclient/map.go).
 *
 * Every apply in these tests goes through ap(), which also checks what
 * must hold after any message: on error the snapshot is byte-identical;
 * on success the delta applied to the old snapshot (the subscriber's
 * view, ctrldi_netmap_apply_delta) equals the new snapshot, protobuf-c
 * re-packs the snapshot to the same bytes, and restore -> snapshot gives
 * the same bytes again.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tk_test.h"
#include "tk/clock.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk/wg_filter.h"
#include "tk/bus/v1/ctrl.pb-c.h"
#include "mapstate.h"
#include "test_contract.h"

typedef Tk__Bus__V1__Netmap Netmap;
typedef Tk__Bus__V1__NetmapDelta Delta;
typedef Tk__Bus__V1__Node Node;

static tk_fake_clock fclock;

/* ---------------------------------------------------------------------
 * JSON builders
 * ------------------------------------------------------------------ */

/* printf into one of a ring of buffers (valid for a few calls). */
static const char *
S(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static const char *
S(const char *fmt, ...)
{
	static char ring[16][16384];
	static unsigned k;
	char *b = ring[k++ % 16];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b, sizeof(ring[0]), fmt, ap);
	va_end(ap);
	return b;
}

/* "<prefix>" + 64 hex chars of byte b repeated. */
static const char *
K(const char *prefix, int b)
{
	char hex[65];

	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", b & 0xff);
	return S("%s%s", prefix, hex);
}

/* A peer Node as control sends it; extra: more members, starting ",". */
static const char *
NODE(int id, const char *extra)
{
	return S("{\"ID\":%d,\"StableID\":\"n%dCNTRL\",\"Name\":\"host%d.tail.ts.net.\","
	    "\"User\":%d,\"Key\":\"%s\",\"Machine\":\"%s\",\"DiscoKey\":\"%s\","
	    "\"Addresses\":[\"100.64.%d.%d/32\",\"fd7a:115c:a1e0::%x/128\"],"
	    "\"AllowedIPs\":[\"100.64.%d.%d/32\",\"fd7a:115c:a1e0::%x/128\"],"
	    "\"Endpoints\":[\"192.0.2.%d:41641\"],\"HomeDERP\":1,"
	    "\"Hostinfo\":{\"OS\":\"linux\",\"Hostname\":\"host%d\"},"
	    "\"MachineAuthorized\":true%s}",
	    id, id, id, 10 + id % 3, K("nodekey:", id), K("mkey:", id),
	    K("discokey:", id), id >> 8, id & 255, id, id >> 8, id & 255, id,
	    id % 250, id, extra);
}

static const char *
SELF(const char *extra)
{
	return S("{\"ID\":1,\"Name\":\"self.tail.ts.net.\",\"Key\":\"%s\","
	    "\"Addresses\":[\"100.64.0.1/32\"],\"MachineAuthorized\":true%s}",
	    K("nodekey:", 1), extra);
}

/* ---------------------------------------------------------------------
 * Checked apply
 * ------------------------------------------------------------------ */

static void *
xunpack(const ProtobufCMessageDescriptor *d, const tk_buf *b)
{
	return protobuf_c_message_unpack(d, NULL, b->len, b->data);
}

/* Netmap without the snapshot-only fields, packed. */
static void
canon(const uint8_t *p, size_t n, tk_buf *out)
{
	Netmap *nm = tk__bus__v1__netmap__unpack(NULL, n, p);
	uint8_t *w;

	CU_ASSERT_FATAL(nm != NULL);
	nm->has_control_time_unix_ms = false;
	nm->has_collect_services = false;
	CU_ASSERT_FATAL(tk_buf_extend(out,
	    tk__bus__v1__netmap__get_packed_size(nm), &w) == 0);
	tk__bus__v1__netmap__pack(nm, w);
	tk__bus__v1__netmap__free_unpacked(nm, NULL);
}

static bool
buf_eq(const tk_buf *a, const tk_buf *b)
{
	return a->len == b->len &&
	    (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static void
check_invariants(ctrldi_map *m, const tk_buf *before, const tk_buf *delta,
    bool changed)
{
	tk_buf after, viasub, c1, c2, again;
	Netmap *nm;
	ctrldi_map *r;

	tk_buf_init(&after);
	tk_buf_init(&viasub);
	tk_buf_init(&c1);
	tk_buf_init(&c2);
	tk_buf_init(&again);
	CU_ASSERT_FATAL(ctrldi_map_snapshot(m, &after) == 0);
	/* the delta is exactly the change */
	if (changed) {
		CU_ASSERT_FATAL(ctrldi_netmap_apply_delta(before->data,
		    before->len, delta->data, delta->len, &viasub) == 0);
		canon(viasub.data, viasub.len, &c1);
	} else {
		CU_ASSERT(delta->len == 0);
		canon(before->data, before->len, &c1);
	}
	canon(after.data, after.len, &c2);
	CU_ASSERT(buf_eq(&c1, &c2));
	/* our encoding is protobuf-c's */
	nm = xunpack(&tk__bus__v1__netmap__descriptor, &after);
	CU_ASSERT_FATAL(nm != NULL);
	{
		tk_buf re;
		uint8_t *w;

		tk_buf_init(&re);
		CU_ASSERT_FATAL(tk_buf_extend(&re,
		    tk__bus__v1__netmap__get_packed_size(nm), &w) == 0);
		tk__bus__v1__netmap__pack(nm, w);
		CU_ASSERT(buf_eq(&re, &after));
		tk_buf_fini(&re);
	}
	/* peers sorted by id, unique */
	for (size_t i = 1; i < nm->n_peers; i++)
		CU_ASSERT(nm->peers[i - 1]->id < nm->peers[i]->id);
	tk__bus__v1__netmap__free_unpacked(nm, NULL);
	/* restore round trip */
	CU_ASSERT_FATAL(ctrldi_map_new(&r) == 0);
	CU_ASSERT(ctrldi_map_restore(r, after.data, after.len) == 0);
	CU_ASSERT(ctrldi_map_snapshot(r, &again) == 0);
	CU_ASSERT(buf_eq(&again, &after));
	ctrldi_map_free(r);
	tk_buf_fini(&after);
	tk_buf_fini(&viasub);
	tk_buf_fini(&c1);
	tk_buf_fini(&c2);
	tk_buf_fini(&again);
}

static char last_err[512];

/*
 * Applies json; *dout (may be NULL) gets the unpacked delta (NULL when
 * nothing changed; free with free_delta).
 */
static int
ap_info(ctrldi_map *m, const char *json, Delta **dout, bool *chg,
    ctrldi_map_info *info)
{
	tk_buf before, delta, after;
	bool changed = false;
	int rv;

	tk_buf_init(&before);
	tk_buf_init(&delta);
	tk_buf_init(&after);
	CU_ASSERT_FATAL(ctrldi_map_snapshot(m, &before) == 0);
	rv = ctrldi_map_apply(m, json, strlen(json), &delta, &changed, info,
	    last_err, sizeof(last_err));
	if (rv != 0) {
		CU_ASSERT(last_err[0] != '\0');
		CU_ASSERT(delta.len == 0);
		CU_ASSERT_FATAL(ctrldi_map_snapshot(m, &after) == 0);
		CU_ASSERT(buf_eq(&before, &after));
	} else {
		check_invariants(m, &before, &delta, changed);
		contract_check(m, &before, json, strlen(json));
	}
	if (chg != NULL)
		*chg = changed;
	if (dout != NULL) {
		*dout = NULL;
		if (rv == 0 && changed) {
			*dout = xunpack(&tk__bus__v1__netmap_delta__descriptor,
			    &delta);
			CU_ASSERT(*dout != NULL);
		}
	}
	tk_buf_fini(&before);
	tk_buf_fini(&delta);
	tk_buf_fini(&after);
	return rv;
}

static int
ap(ctrldi_map *m, const char *json, Delta **dout, bool *chg)
{
	ctrldi_map_info info;
	int rv = ap_info(m, json, dout, chg, &info);

	if (rv == 0)
		ctrldi_map_info_fini(&info);
	return rv;
}

static void
free_delta(Delta *d)
{
	if (d != NULL)
		tk__bus__v1__netmap_delta__free_unpacked(d, NULL);
}

static Netmap *
snap(const ctrldi_map *m)
{
	tk_buf b;
	Netmap *nm;

	tk_buf_init(&b);
	CU_ASSERT_FATAL(ctrldi_map_snapshot(m, &b) == 0);
	nm = xunpack(&tk__bus__v1__netmap__descriptor, &b);
	CU_ASSERT_FATAL(nm != NULL);
	tk_buf_fini(&b);
	return nm;
}

static void
free_nm(Netmap *nm)
{
	tk__bus__v1__netmap__free_unpacked(nm, NULL);
}

static const Node *
peer(const Netmap *nm, int64_t id)
{
	for (size_t i = 0; i < nm->n_peers; i++)
		if (nm->peers[i]->id == id)
			return nm->peers[i];
	return NULL;
}

static ctrldi_map *
new_map(void)
{
	ctrldi_map *m;

	CU_ASSERT_FATAL(ctrldi_map_new(&m) == 0);
	ctrldi_map_set_clock(m, &fclock.fc_clock);
	return m;
}

/* A map after a first message with self and peers 2..n+1. */
static ctrldi_map *
map_with_peers(int n)
{
	ctrldi_map *m = new_map();
	char *json = malloc(4096 + (size_t)n * 1024), *p = json;

	p += sprintf(p, "{\"Node\":%s,\"Peers\":[", SELF(""));
	for (int i = 0; i < n; i++)
		p += sprintf(p, "%s%s", i ? "," : "", NODE(2 + i, ""));
	strcpy(p, "]}");
	CU_ASSERT_FATAL(ap(m, json, NULL, NULL) == 0);
	free(json);
	return m;
}

static bool
prefix_is(const Tk__Bus__V1__Prefix *p, const char *text)
{
	tk_ipprefix x;
	size_t len;

	if (tk_ipprefix_parse(&x, text, strlen(text)) != 0)
		return false;
	len = x.ip.family == TK_AF_INET ? 4 : 16;
	return p->has_addr && p->addr.len == len &&
	    memcmp(p->addr.data, x.ip.addr, len) == 0 && p->bits == x.bits;
}

static int64_t
live_allocs(void)
{
	tk_alloc_stats s;

	tk_alloc_stats_get(&s);
	return (int64_t)(s.as_allocs - s.as_frees);
}

/* ---------------------------------------------------------------------
 * First message, normalisation
 * ------------------------------------------------------------------ */

static void
test_first_needs_node(void)
{
	ctrldi_map *m = new_map();
	bool chg;

	CU_ASSERT(ap(m, S("{\"Peers\":[%s]}", NODE(2, "")), NULL, NULL) ==
	    TK_EPROTO);
	CU_ASSERT(strstr(last_err, "no Node") != NULL);
	CU_ASSERT(!ctrldi_map_has_self(m));
	/* a keep-alive is fine before it */
	CU_ASSERT(ap(m, "{\"KeepAlive\":true}", NULL, &chg) == 0);
	CU_ASSERT(!chg);
	CU_ASSERT(ap(m, S("{\"Node\":%s}", SELF("")), NULL, &chg) == 0);
	CU_ASSERT(chg);
	CU_ASSERT(ctrldi_map_has_self(m));
	/* later messages need no Node */
	CU_ASSERT(ap(m, S("{\"PeersChanged\":[%s]}", NODE(2, "")), NULL,
	    &chg) == 0);
	CU_ASSERT(chg);
	ctrldi_map_free(m);
}

static void
test_full_netmap(void)
{
	ctrldi_map *m = new_map();
	Delta *d;
	Netmap *nm;
	const Node *p;

	/* peers out of order in the JSON: sorted on the bus */
	CU_ASSERT_FATAL(ap(m, S("{\"Node\":%s,\"Peers\":[%s,%s,%s],"
	    "\"Domain\":\"tail.ts.net\"}", SELF(""), NODE(7, ""), NODE(3, ""),
	    NODE(5, "")), &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL);
	CU_ASSERT(d->self != NULL && d->self->id == 1);
	CU_ASSERT_FATAL(d->n_peers_changed == 3);
	CU_ASSERT(d->peers_changed[0]->id == 3);
	CU_ASSERT(d->peers_changed[1]->id == 5);
	CU_ASSERT(d->peers_changed[2]->id == 7);
	CU_ASSERT(d->domain != NULL && strcmp(d->domain, "tail.ts.net") == 0);
	free_delta(d);
	nm = snap(m);
	CU_ASSERT_FATAL(nm->n_peers == 3);
	p = peer(nm, 5);
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT(strcmp(p->name, "host5.tail.ts.net.") == 0);
	CU_ASSERT(strcmp(p->computed_name, "host5") == 0);
	CU_ASSERT(p->has_key && p->key.len == 32 && p->key.data[0] == 5);
	CU_ASSERT(p->n_addresses == 2 && prefix_is(p->addresses[0],
	    "100.64.0.5/32"));
	CU_ASSERT(p->n_endpoints == 1 && p->endpoints[0]->port == 41641);
	CU_ASSERT(p->home_derp == 1);
	CU_ASSERT(p->machine_authorized);
	CU_ASSERT(strcmp(p->os, "linux") == 0);
	CU_ASSERT(!p->has_online);
	free_nm(nm);
	ctrldi_map_free(m);
}

static const tk_test_case first_cases[] = {
	TK_TEST(test_first_needs_node),
	TK_TEST(test_full_netmap),
	TK_TEST_END,
};

static void
test_legacy_derp(void)
{
	static const struct {
		const char *extra;
		int32_t want;
	} t[] = {
		{ ",\"DERP\":\"127.3.3.40:7\"", 7 },
		{ ",\"DERP\":\"127.3.3.40:7\",\"HomeDERP\":3", 3 }, /* HomeDERP wins */
		{ ",\"HomeDERP\":3,\"DERP\":\"127.3.3.40:7\"", 3 },
		{ ",\"DERP\":\"1.2.3.4:7\"", 0 },	      /* not the magic IP */
		{ ",\"DERP\":\"[127.3.3.40]:9\"", 9 },	      /* SplitHostPort */
		{ ",\"DERP\":\"127.3.3.40:x\"", 0 },	      /* Atoi fails */
		{ ",\"DERP\":\"127.3.3.40:+12\"", 12 },	      /* Atoi takes + */
		{ ",\"DERP\":\"127.3.3.40\"", 0 },
	};

	for (size_t i = 0; i < TK_ARRAY_LEN(t); i++) {
		ctrldi_map *m = new_map();
		Netmap *nm;

		CU_ASSERT_FATAL(ap(m, S("{\"Node\":%s}", SELF(t[i].extra)), NULL,
		    NULL) == 0);
		nm = snap(m);
		CU_ASSERT(nm->self->home_derp == t[i].want);
		if (nm->self->home_derp != t[i].want)
			fprintf(stderr, "case %zu: %d\n", i, nm->self->home_derp);
		free_nm(nm);
		ctrldi_map_free(m);
	}
}

static void
test_allowed_ips(void)
{
	ctrldi_map *m = new_map();
	Netmap *nm;
	const Node *p;
#define ADDRS(i) S("\"Addresses\":[\"100.64.0.%d/32\"]", i)

	CU_ASSERT_FATAL(ap(m, S("{\"Node\":%s,\"Peers\":["
	    "{\"ID\":2,%s},"				/* absent: = Addresses */
	    "{\"ID\":3,%s,\"AllowedIPs\":null},"	/* null: = Addresses */
	    "{\"ID\":4,%s,\"AllowedIPs\":[]},"		/* []: none */
	    "{\"ID\":5,%s,\"AllowedIPs\":[\"100.64.0.5/32\",\"10.0.0.0/8\"]},"
	    "{\"ID\":6,%s,\"AllowedIPs\":[\"100.64.0.6/32\",\"10.0.0.0/8\"],"
	    "\"UnsignedPeerAPIOnly\":true}]}",
	    SELF(""), ADDRS(2), ADDRS(3), ADDRS(4), ADDRS(5), ADDRS(6)), NULL,
	    NULL) == 0);
#undef ADDRS
	nm = snap(m);
	p = peer(nm, 2);
	CU_ASSERT(p->n_allowed_ips == 1 && prefix_is(p->allowed_ips[0],
	    "100.64.0.2/32"));
	p = peer(nm, 3);
	CU_ASSERT(p->n_allowed_ips == 1 && prefix_is(p->allowed_ips[0],
	    "100.64.0.3/32"));
	CU_ASSERT(peer(nm, 4)->n_allowed_ips == 0);
	p = peer(nm, 5);
	CU_ASSERT(p->n_allowed_ips == 2 && prefix_is(p->allowed_ips[1],
	    "10.0.0.0/8"));
	p = peer(nm, 6); /* clamped: unsigned peers get only their own */
	CU_ASSERT(p->n_allowed_ips == 1 && prefix_is(p->allowed_ips[0],
	    "100.64.0.6/32"));
	CU_ASSERT(p->unsigned_peer_api_only);
	free_nm(nm);
	ctrldi_map_free(m);
}

static void
test_capabilities(void)
{
	ctrldi_map *m = new_map();
	Netmap *nm;
	const Node *p;

	/* self: Capabilities folded into CapMap (map.go); a CapMap entry of
	 * the same name keeps its values */
	CU_ASSERT_FATAL(ap(m, S("{\"Node\":%s,\"Peers\":[{\"ID\":2,"
	    "\"Capabilities\":[\"z\"],\"CapMap\":{\"y\":null,\"x\":[1,2]}}]}",
	    SELF(",\"Capabilities\":[\"c\",\"a\",\"a\"],\"CapMap\":{\"c\":"
		 "[{\"k\": \"v\"}],\"b\":[true]}")), NULL, NULL) == 0);
	nm = snap(m);
	CU_ASSERT_FATAL(nm->self->n_cap_map == 3);
	CU_ASSERT(strcmp(nm->self->cap_map[0]->name, "a") == 0 &&
	    nm->self->cap_map[0]->n_json_values == 0);
	CU_ASSERT(strcmp(nm->self->cap_map[1]->name, "b") == 0 &&
	    nm->self->cap_map[1]->n_json_values == 1 &&
	    strcmp(nm->self->cap_map[1]->json_values[0], "true") == 0);
	/* raw values verbatim (Go's RawMessage) */
	CU_ASSERT(strcmp(nm->self->cap_map[2]->name, "c") == 0 &&
	    nm->self->cap_map[2]->n_json_values == 1 &&
	    strcmp(nm->self->cap_map[2]->json_values[0], "{\"k\": \"v\"}") == 0);
	CU_ASSERT_FATAL(nm->self->n_capabilities == 3);
	CU_ASSERT(strcmp(nm->self->capabilities[0], "a") == 0);
	CU_ASSERT(strcmp(nm->self->capabilities[2], "c") == 0);
	/* peers: no folding into CapMap, capabilities = union */
	p = peer(nm, 2);
	CU_ASSERT_FATAL(p->n_cap_map == 2);
	CU_ASSERT(strcmp(p->cap_map[0]->name, "x") == 0 &&
	    p->cap_map[0]->n_json_values == 2);
	CU_ASSERT(strcmp(p->cap_map[1]->name, "y") == 0);
	CU_ASSERT_FATAL(p->n_capabilities == 3);
	CU_ASSERT(strcmp(p->capabilities[0], "x") == 0 &&
	    strcmp(p->capabilities[1], "y") == 0 &&
	    strcmp(p->capabilities[2], "z") == 0);
	free_nm(nm);
	ctrldi_map_free(m);
}

static void
test_computed_names(void)
{
	ctrldi_map *m = new_map();
	Netmap *nm;

	CU_ASSERT_FATAL(ap(m, S("{\"Node\":%s,\"Peers\":["
	    "{\"ID\":2,\"Name\":\"web.tail.ts.net.\",\"ComputedName\":\"x\"},"
	    "{\"ID\":3,\"Name\":\"shared.other.ts.net.\"},"
	    "{\"ID\":4,\"Hostinfo\":{\"Hostname\":\"My_Big Laptop.local\"}},"
	    "{\"ID\":5,\"Key\":\"%s\"},"
	    "{\"ID\":6,\"Name\":\"db.tail.ts.net.\",\"Hostinfo\":"
	    "{\"Hostname\":\"DB\"}}]}", SELF(""), K("nodekey:", 0xab)),
	    NULL, NULL) == 0);
	nm = snap(m);
	CU_ASSERT(strcmp(nm->self->computed_name, "self") == 0);
	CU_ASSERT(strcmp(peer(nm, 2)->computed_name, "web") == 0);
	CU_ASSERT(strcmp(peer(nm, 3)->computed_name,
	    "shared.other.ts.net") == 0);
	CU_ASSERT(strcmp(peer(nm, 4)->computed_name, "my-big-laptop") == 0);
	CU_ASSERT(strcmp(peer(nm, 5)->computed_name, K("nodekey:", 0xab)) == 0);
	CU_ASSERT(strcmp(peer(nm, 6)->computed_name, "db") == 0);
	CU_ASSERT(strcmp(peer(nm, 6)->hostname, "DB") == 0);
	free_nm(nm);
	/* a later message without Node uses the last self's suffix */
	CU_ASSERT_FATAL(ap(m, "{\"PeersChanged\":[{\"ID\":7,"
	    "\"Name\":\"api.tail.ts.net.\"}]}", NULL, NULL) == 0);
	nm = snap(m);
	CU_ASSERT(strcmp(peer(nm, 7)->computed_name, "api") == 0);
	free_nm(nm);
	ctrldi_map_free(m);
}

static void
test_node_fields(void)
{
	ctrldi_map *m = new_map();
	Netmap *nm;
	const Node *p;

	CU_ASSERT_FATAL(ap(m, S("{\"Node\":%s,\"Peers\":[{\"ID\":2,"
	    "\"KeyExpiry\":\"2030-01-02T03:04:05.5Z\",\"Created\":\"0001-01-01T00:00:00Z\","
	    "\"LastSeen\":\"2025-01-01T00:00:10+01:00\",\"Online\":false,"
	    "\"KeySignature\":\"AQID\",\"Cap\":130,\"Tags\":[\"tag:a\",null],"
	    "\"PrimaryRoutes\":[\"10.1.0.0/16\"],\"Expired\":true,"
	    "\"IsWireGuardOnly\":true,\"IsJailed\":true,"
	    "\"SelfNodeV4MasqAddrForThisPeer\":\"10.9.9.9\","
	    "\"SelfNodeV6MasqAddrForThisPeer\":\"\","
	    "\"Hostinfo\":{\"Services\":[{\"Proto\":\"peerapi4\",\"Port\":1},"
	    "{\"Proto\":\"peerapi6\",\"Port\":2},{\"Proto\":\"peerapi4\",\"Port\":3},"
	    "null,{\"Proto\":\"tcp\",\"Port\":22}]},"
	    "\"Endpoints\":[\"[2001:db8::1]:41641\",\"192.0.2.9:1\"],"
	    "\"DataPlaneAuditLogID\":\"x\",\"ExitNodeDNSResolvers\":"
	    "[{\"Addr\":\"1.1.1.1\"}],\"UnknownField\":{\"a\":[1,{}]}}]}",
	    SELF("")), NULL, NULL) == 0);
	nm = snap(m);
	p = peer(nm, 2);
	CU_ASSERT_FATAL(p != NULL);
	CU_ASSERT(p->has_key_expiry_unix && p->key_expiry_unix == 1893553445);
	CU_ASSERT(!p->has_created_unix); /* zero time: absent */
	CU_ASSERT(p->has_last_seen_unix && p->last_seen_unix == 1735686010);
	CU_ASSERT(p->has_online && !p->online);
	CU_ASSERT(p->has_key_signature && p->key_signature.len == 3 &&
	    p->key_signature.data[2] == 3);
	CU_ASSERT(p->cap == 130);
	CU_ASSERT(p->n_tags == 2 && strcmp(p->tags[1], "") == 0);
	CU_ASSERT(p->n_primary_routes == 1);
	CU_ASSERT(p->expired && p->is_wireguard_only && p->is_jailed);
	CU_ASSERT(p->has_self_node_v4_masq_addr &&
	    p->self_node_v4_masq_addr.len == 4 &&
	    p->self_node_v4_masq_addr.data[0] == 10);
	CU_ASSERT(!p->has_self_node_v6_masq_addr); /* the zero Addr */
	CU_ASSERT(p->peerapi4_port == 3 && p->peerapi6_port == 2);
	CU_ASSERT(p->n_endpoints == 2 && p->endpoints[0]->addr.len == 16);
	CU_ASSERT(!p->has_key && !p->has_disco_key && !p->has_machine);
	free_nm(nm);
	ctrldi_map_free(m);
}

static void
test_strings_utf8(void)
{
	ctrldi_map *m = new_map();
	Netmap *nm;
	/* bytes: "a" 0xff "b" (invalid), "\u0000", a pair, a lone surrogate,
	 * escapes */
	const char json[] = "{\"Node\":{\"ID\":1,\"Name\":\"a\xff" "b\","
	    "\"StableID\":\"x\\u0000y\",\"Tags\":[\"\\ud83d\\ude00\","
	    "\"\\ud800z\",\"\\\"\\\\\\/\\n\",\"\xc3\xa9\"]}}";
	const Node *s;

	CU_ASSERT_FATAL(ap(m, json, NULL, NULL) == 0);
	nm = snap(m);
	s = nm->self;
	CU_ASSERT(strcmp(s->name, "a\xef\xbf\xbd" "b") == 0);
	CU_ASSERT(strcmp(s->stable_id, "x\xef\xbf\xbdy") == 0);
	CU_ASSERT_FATAL(s->n_tags == 4);
	CU_ASSERT(strcmp(s->tags[0], "\xf0\x9f\x98\x80") == 0);
	CU_ASSERT(strcmp(s->tags[1], "\xef\xbf\xbdz") == 0);
	CU_ASSERT(strcmp(s->tags[2], "\"\\/\n") == 0);
	CU_ASSERT(strcmp(s->tags[3], "\xc3\xa9") == 0);
	free_nm(nm);
	ctrldi_map_free(m);
}

static void
test_case_insensitive(void)
{
	ctrldi_map *m = new_map();
	Netmap *nm;

	/* Go matches field names case-insensitively */
	CU_ASSERT_FATAL(ap(m, S("{\"node\":{\"id\":1,\"KEY\":\"%s\"},"
	    "\"PEERS\":[{\"Id\":2}],\"domain\":\"d\"}", K("nodekey:", 1)),
	    NULL, NULL) == 0);
	nm = snap(m);
	CU_ASSERT(nm->self->id == 1 && nm->self->has_key);
	CU_ASSERT(nm->n_peers == 1 && nm->peers[0]->id == 2);
	CU_ASSERT(strcmp(nm->domain, "d") == 0);
	free_nm(nm);
	ctrldi_map_free(m);
}

static const tk_test_case node_cases[] = {
	TK_TEST(test_legacy_derp),
	TK_TEST(test_allowed_ips),
	TK_TEST(test_capabilities),
	TK_TEST(test_computed_names),
	TK_TEST(test_node_fields),
	TK_TEST(test_strings_utf8),
	TK_TEST(test_case_insensitive),
	TK_TEST_END,
};

/* ---------------------------------------------------------------------
 * Peers
 * ------------------------------------------------------------------ */

static bool
has_id(const int64_t *v, size_t n, int64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == id)
			return true;
	return false;
}

static void
test_peers_replace(void)
{
	ctrldi_map *m = map_with_peers(2); /* 2, 3 */
	Delta *d;
	Netmap *nm;

	/* Peers non-empty: the set; the other peer fields are ignored */
	CU_ASSERT_FATAL(ap(m, S("{\"Peers\":[%s,%s],\"PeersRemoved\":[3],"
	    "\"PeersChangedPatch\":[{\"NodeID\":3,\"Cap\":99}],"
	    "\"OnlineChange\":{\"3\":true}}", NODE(3, ""), NODE(4, "")), &d,
	    NULL) == 0);
	CU_ASSERT_FATAL(d != NULL);
	CU_ASSERT(d->n_peers_changed == 1 && d->peers_changed[0]->id == 4);
	CU_ASSERT(d->n_peers_removed == 1 && d->peers_removed[0] == 2);
	CU_ASSERT(d->self == NULL && d->derp_map == NULL &&
	    d->packet_filter == NULL);
	free_delta(d);
	nm = snap(m);
	CU_ASSERT(nm->n_peers == 2 && peer(nm, 3) != NULL &&
	    peer(nm, 3)->cap == 0 && !peer(nm, 3)->has_online);
	free_nm(nm);
	/* Peers [] is not "no peers" */
	CU_ASSERT(ap(m, "{\"Peers\":[]}", &d, NULL) == 0);
	CU_ASSERT(d == NULL);
	/* duplicates: the last wins */
	CU_ASSERT_FATAL(ap(m, S("{\"Peers\":[%s,%s]}", NODE(5, ""),
	    NODE(5, ",\"Cap\":7")), NULL, NULL) == 0);
	nm = snap(m);
	CU_ASSERT(nm->n_peers == 1 && nm->peers[0]->cap == 7);
	free_nm(nm);
	ctrldi_map_free(m);
}

static void
test_peers_order(void)
{
	ctrldi_map *m = map_with_peers(3); /* 2, 3, 4 */
	Delta *d;
	Netmap *nm;

	/* removed, then re-added with a new Name (not patchable): upsert */
	CU_ASSERT_FATAL(ap(m, S("{\"PeersRemoved\":[2],\"PeersChanged\":[%s]}",
	    S("{\"ID\":2,\"Name\":\"new.tail.ts.net.\"}")), &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL);
	CU_ASSERT(d->n_peers_changed == 1 && d->n_peers_removed == 0);
	free_delta(d);
	nm = snap(m);
	CU_ASSERT(strcmp(peer(nm, 2)->name, "new.tail.ts.net.") == 0);
	free_nm(nm);
	/* removed, and a PeersChanged that only moves endpoints: map.go
	 * turns it into a patch (against the old peers), applies the
	 * removal first, then ignores the patch: the peer is gone */
	CU_ASSERT_FATAL(ap(m, S("{\"PeersRemoved\":[3],\"PeersChanged\":[%s]}",
	    NODE(3, ",\"Endpoints\":[\"192.0.2.200:1\"]")), &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL);
	CU_ASSERT(d->n_peers_removed == 1 && d->peers_removed[0] == 3);
	CU_ASSERT(d->n_peers_changed == 0);
	free_delta(d);
	/* new peer + a patch for it in the same message: patch on top */
	CU_ASSERT_FATAL(ap(m, S("{\"PeersChanged\":[%s],\"PeersChangedPatch\":"
	    "[{\"NodeID\":9,\"Cap\":42}]}", NODE(9, "")), &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL && d->n_peers_changed == 1);
	CU_ASSERT(d->peers_changed[0]->id == 9 && d->peers_changed[0]->cap == 42);
	free_delta(d);
	/* OnlineChange, then a patch: the patch is applied last */
	CU_ASSERT_FATAL(ap(m, "{\"OnlineChange\":{\"9\":true},"
	    "\"PeersChangedPatch\":[{\"NodeID\":9,\"Online\":false}]}", &d,
	    NULL) == 0);
	CU_ASSERT_FATAL(d != NULL && d->n_peers_changed == 1);
	CU_ASSERT(d->peers_changed[0]->has_online && !d->peers_changed[0]->online);
	free_delta(d);
	/* unknown ids everywhere: nothing */
	CU_ASSERT(ap(m, "{\"PeersRemoved\":[77],\"OnlineChange\":{\"77\":true},"
	    "\"PeerSeenChange\":{\"77\":true},\"PeersChangedPatch\":"
	    "[{\"NodeID\":77,\"Cap\":1}]}", &d, NULL) == 0);
	CU_ASSERT(d == NULL);
	ctrldi_map_free(m);
}

static void
test_peer_seen_online(void)
{
	ctrldi_map *m = map_with_peers(2);
	Netmap *nm;

	tk_fake_clock_advance(&fclock, 5ull * 1000000000ull);
	CU_ASSERT_FATAL(ap(m, "{\"PeerSeenChange\":{\"2\":true,\"3\":false},"
	    "\"OnlineChange\":{\"2\":false,\"3\":true}}", NULL, NULL) == 0);
	nm = snap(m);
	CU_ASSERT(peer(nm, 2)->has_last_seen_unix &&
	    peer(nm, 2)->last_seen_unix ==
		(int64_t)(tk_clock_real_ns(&fclock.fc_clock) / 1000000000ull));
	CU_ASSERT(peer(nm, 2)->has_online && !peer(nm, 2)->online);
	CU_ASSERT(!peer(nm, 3)->has_last_seen_unix);
	CU_ASSERT(peer(nm, 3)->has_online && peer(nm, 3)->online);
	free_nm(nm);
	/* seen false clears it */
	CU_ASSERT_FATAL(ap(m, "{\"PeerSeenChange\":{\"2\":false}}", NULL, NULL) ==
	    0);
	nm = snap(m);
	CU_ASSERT(!peer(nm, 2)->has_last_seen_unix);
	free_nm(nm);
	ctrldi_map_free(m);
}

static void
test_patch_fields(void)
{
	ctrldi_map *m = map_with_peers(1); /* 2 */
	Delta *d;
	const Node *p;

	CU_ASSERT_FATAL(ap(m, S("{\"PeersChangedPatch\":[{\"NodeID\":2,"
	    "\"DERPRegion\":9,\"Cap\":131,\"Endpoints\":[\"198.51.100.1:7\","
	    "\"198.51.100.2:8\"],\"Key\":\"%s\",\"DiscoKey\":\"%s\","
	    "\"Online\":true,\"LastSeen\":\"2025-05-05T00:00:00Z\","
	    "\"KeyExpiry\":\"2026-01-01T00:00:00Z\",\"KeySignature\":\"AAAA\","
	    "\"CapMap\":{\"q\":[\"v\"]}}]}", K("nodekey:", 0x77),
	    K("discokey:", 0x78)), &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL && d->n_peers_changed == 1);
	CU_ASSERT(d->n_peers_patched == 0); /* whole records only */
	p = d->peers_changed[0];
	CU_ASSERT(p->home_derp == 9 && p->cap == 131);
	CU_ASSERT(p->n_endpoints == 2 && p->endpoints[1]->port == 8);
	CU_ASSERT(p->key.data[0] == 0x77 && p->disco_key.data[0] == 0x78);
	CU_ASSERT(p->online && p->last_seen_unix == 1746403200);
	CU_ASSERT(p->key_expiry_unix == 1767225600);
	CU_ASSERT(p->key_signature.len == 3);
	CU_ASSERT(p->n_cap_map == 1 && strcmp(p->cap_map[0]->name, "q") == 0);
	CU_ASSERT(p->n_capabilities == 1);
	/* unchanged fields survive */
	CU_ASSERT(strcmp(p->name, "host2.tail.ts.net.") == 0 &&
	    p->machine_authorized && p->n_addresses == 2);
	free_delta(d);
	/* zero DERPRegion/Cap mean "unchanged"; Endpoints [] clears;
	 * KeyExpiry zero time clears; CapMap {} clears */
	CU_ASSERT_FATAL(ap(m, "{\"PeersChangedPatch\":[{\"NodeID\":2,"
	    "\"DERPRegion\":0,\"Cap\":0,\"Endpoints\":[],\"KeyExpiry\":"
	    "\"0001-01-01T00:00:00Z\",\"CapMap\":{},\"KeySignature\":\"\"}]}",
	    &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL && d->n_peers_changed == 1);
	p = d->peers_changed[0];
	CU_ASSERT(p->home_derp == 9 && p->cap == 131);
	CU_ASSERT(p->n_endpoints == 0);
	CU_ASSERT(!p->has_key_expiry_unix);
	CU_ASSERT(p->n_cap_map == 0 && p->n_capabilities == 0);
	CU_ASSERT(!p->has_key_signature);
	free_delta(d);
	/* a patch that changes nothing: no delta */
	CU_ASSERT(ap(m, "{\"PeersChangedPatch\":[{\"NodeID\":2,\"Cap\":131}]}",
	    &d, NULL) == 0);
	CU_ASSERT(d == NULL);
	ctrldi_map_free(m);
}

static void
test_patchify_quirks(void)
{
	ctrldi_map *m = map_with_peers(1);
	Netmap *nm;

	CU_ASSERT_FATAL(ap(m, "{\"PeersChangedPatch\":[{\"NodeID\":2,"
	    "\"Online\":true,\"LastSeen\":\"2025-01-01T00:00:00Z\"}]}", NULL,
	    NULL) == 0);
	/* only patchable fields differ (Endpoints; Online/LastSeen left out,
	 * HomeDERP 0, Cap 0): map.go patchifies; Online/LastSeen stay,
	 * HomeDERP stays, the endpoints move */
	CU_ASSERT_FATAL(ap(m, S("{\"PeersChanged\":[%s]}",
	    S("{\"ID\":2,\"StableID\":\"n2CNTRL\",\"Name\":\"host2.tail.ts.net.\","
	    "\"User\":12,\"Key\":\"%s\",\"Machine\":\"%s\",\"DiscoKey\":\"%s\","
	    "\"Addresses\":[\"100.64.0.2/32\",\"fd7a:115c:a1e0::2/128\"],"
	    "\"Endpoints\":[\"192.0.2.77:1\"],"
	    "\"Hostinfo\":{\"OS\":\"linux\",\"Hostname\":\"host2\"},"
	    "\"MachineAuthorized\":true}", K("nodekey:", 2), K("mkey:", 2),
	    K("discokey:", 2))), NULL, NULL) == 0);
	nm = snap(m);
	CU_ASSERT(peer(nm, 2)->has_online && peer(nm, 2)->online);
	CU_ASSERT(peer(nm, 2)->has_last_seen_unix);
	CU_ASSERT(peer(nm, 2)->home_derp == 1);
	CU_ASSERT(peer(nm, 2)->n_endpoints == 1 &&
	    peer(nm, 2)->endpoints[0]->addr.data[3] == 77);
	free_nm(nm);
	/* Endpoints left out: not a patch of them (slices.Clone(nil)) */
	CU_ASSERT_FATAL(ap(m, S("{\"PeersChanged\":[{\"ID\":2,"
	    "\"StableID\":\"n2CNTRL\",\"Name\":\"host2.tail.ts.net.\","
	    "\"User\":12,\"Key\":\"%s\",\"Machine\":\"%s\",\"DiscoKey\":\"%s\","
	    "\"Addresses\":[\"100.64.0.2/32\",\"fd7a:115c:a1e0::2/128\"],"
	    "\"Hostinfo\":{\"OS\":\"linux\",\"Hostname\":\"host2\"},"
	    "\"MachineAuthorized\":true}]}", K("nodekey:", 2), K("mkey:", 2),
	    K("discokey:", 2)), NULL, NULL) == 0);
	nm = snap(m);
	CU_ASSERT(peer(nm, 2)->n_endpoints == 1);
	free_nm(nm);
	/* a field a patch cannot carry (Name): whole replacement, so the
	 * Online and LastSeen it leaves out are gone */
	CU_ASSERT_FATAL(ap(m, S("{\"PeersChanged\":[%s]}",
	    NODE(2, ",\"Name\":\"renamed.tail.ts.net.\"")), NULL, NULL) == 0);
	nm = snap(m);
	CU_ASSERT(!peer(nm, 2)->has_online && !peer(nm, 2)->has_last_seen_unix);
	CU_ASSERT(strcmp(peer(nm, 2)->name, "renamed.tail.ts.net.") == 0);
	free_nm(nm);
	/* Online known before, given now: patched */
	CU_ASSERT_FATAL(ap(m, "{\"OnlineChange\":{\"2\":true}}", NULL, NULL) == 0);
	CU_ASSERT_FATAL(ap(m, S("{\"PeersChanged\":[%s]}",
	    NODE(2, ",\"Name\":\"renamed.tail.ts.net.\",\"Online\":false")),
	    NULL, NULL) == 0);
	nm = snap(m);
	CU_ASSERT(peer(nm, 2)->has_online && !peer(nm, 2)->online);
	free_nm(nm);
	ctrldi_map_free(m);
}

/* "Hostinfo": null is a valid empty Hostinfo in Go (HostinfoView's
 * UnmarshalJSON runs on null); absent is an invalid view.  That decides
 * whether a PeersChanged can be a patch. */
static void
test_hostinfo_null(void)
{
	ctrldi_map *m = new_map();
	Netmap *nm;

	CU_ASSERT_FATAL(ap(m, S("{\"Node\":%s,\"Peers\":[{\"ID\":2,"
	    "\"Hostinfo\":{},\"Online\":true}]}", SELF("")), NULL, NULL) == 0);
	/* null == {}: a patch, Online stays */
	CU_ASSERT_FATAL(ap(m, "{\"PeersChanged\":[{\"ID\":2,\"Hostinfo\":null,"
	    "\"Endpoints\":[\"192.0.2.1:1\"]}]}", NULL, NULL) == 0);
	nm = snap(m);
	CU_ASSERT(peer(nm, 2)->has_online && peer(nm, 2)->n_endpoints == 1);
	free_nm(nm);
	/* absent: not the same, a whole replacement without Online */
	CU_ASSERT_FATAL(ap(m, "{\"PeersChanged\":[{\"ID\":2,"
	    "\"Endpoints\":[\"192.0.2.1:1\"]}]}", NULL, NULL) == 0);
	nm = snap(m);
	CU_ASSERT(!peer(nm, 2)->has_online);
	free_nm(nm);
	ctrldi_map_free(m);
}

static void
test_disco_filter(void)
{
	ctrldi_map *m = map_with_peers(1);
	Netmap *nm;
	bool chg;

	CU_ASSERT_FATAL(ap(m, "{\"PeersChangedPatch\":[{\"NodeID\":2,"
	    "\"Online\":false,\"LastSeen\":\"2025-01-01T00:00:10Z\"}]}", NULL,
	    NULL) == 0);
	/* offline, a disco key with an older LastSeen: dropped */
	CU_ASSERT(ap(m, S("{\"PeersChangedPatch\":[{\"NodeID\":2,"
	    "\"DiscoKey\":\"%s\",\"Online\":false,"
	    "\"LastSeen\":\"2025-01-01T00:00:09Z\"}]}", K("discokey:", 0x99)),
	    NULL, &chg) == 0);
	CU_ASSERT(!chg);
	/* the same LastSeen (not After): dropped */
	CU_ASSERT(ap(m, S("{\"PeersChangedPatch\":[{\"NodeID\":2,"
	    "\"DiscoKey\":\"%s\",\"Online\":false,"
	    "\"LastSeen\":\"2025-01-01T00:00:10Z\"}]}", K("discokey:", 0x99)),
	    NULL, &chg) == 0);
	CU_ASSERT(!chg);
	/* newer: applied */
	CU_ASSERT(ap(m, S("{\"PeersChangedPatch\":[{\"NodeID\":2,"
	    "\"DiscoKey\":\"%s\",\"Online\":false,"
	    "\"LastSeen\":\"2025-01-01T00:00:10.5Z\"}]}", K("discokey:", 0x99)),
	    NULL, &chg) == 0);
	CU_ASSERT(chg);
	/* online: applied whatever LastSeen says */
	CU_ASSERT(ap(m, S("{\"PeersChangedPatch\":[{\"NodeID\":2,"
	    "\"DiscoKey\":\"%s\",\"Online\":true,"
	    "\"LastSeen\":\"2020-01-01T00:00:00Z\"}]}", K("discokey:", 0x9a)),
	    NULL, &chg) == 0);
	CU_ASSERT(chg);
	nm = snap(m);
	CU_ASSERT(peer(nm, 2)->disco_key.data[0] == 0x9a);
	free_nm(nm);
	ctrldi_map_free(m);
}

static void
test_full_peers_disco_keep(void)
{
	ctrldi_map *m = map_with_peers(1);
	Netmap *nm;

	CU_ASSERT_FATAL(ap(m, "{\"PeersChangedPatch\":[{\"NodeID\":2,"
	    "\"LastSeen\":\"2025-01-01T00:00:10Z\"}]}", NULL, NULL) == 0);
	/* a full Peers list with an older view of peer 2's disco key: the
	 * known key and LastSeen are kept */
	CU_ASSERT_FATAL(ap(m, S("{\"Peers\":[%s]}", S("{\"ID\":2,"
	    "\"DiscoKey\":\"%s\",\"Online\":false,"
	    "\"LastSeen\":\"2025-01-01T00:00:05Z\"}", K("discokey:", 0x55))),
	    NULL, NULL) == 0);
	nm = snap(m);
	CU_ASSERT(peer(nm, 2)->disco_key.data[0] == 2);
	CU_ASSERT(peer(nm, 2)->last_seen_unix == 1735689610);
	free_nm(nm);
	/* a newer one wins */
	CU_ASSERT_FATAL(ap(m, S("{\"Peers\":[%s]}", S("{\"ID\":2,"
	    "\"DiscoKey\":\"%s\",\"Online\":false,"
	    "\"LastSeen\":\"2025-01-01T00:00:15Z\"}", K("discokey:", 0x55))),
	    NULL, NULL) == 0);
	nm = snap(m);
	CU_ASSERT(peer(nm, 2)->disco_key.data[0] == 0x55);
	free_nm(nm);
	ctrldi_map_free(m);
}

static void
test_single_patch_delta(void)
{
	ctrldi_map *m = map_with_peers(100);
	Delta *d;

	CU_ASSERT_FATAL(ap(m, "{\"PeersChangedPatch\":[{\"NodeID\":50,"
	    "\"Endpoints\":[\"203.0.113.5:41641\"]}]}", &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL);
	CU_ASSERT(d->n_peers_changed == 1 && d->peers_changed[0]->id == 50);
	CU_ASSERT(d->self == NULL && d->n_peers_removed == 0 &&
	    d->derp_map == NULL && d->packet_filter == NULL &&
	    d->dns_config == NULL && d->domain == NULL &&
	    d->n_user_profiles == 0 && d->health == NULL);
	free_delta(d);
	ctrldi_map_free(m);
}

static void
test_many_joins_leaves(void)
{
	ctrldi_map *m = map_with_peers(100); /* 2..101 */
	char *json = malloc(300 * 1024), *p = json;
	Netmap *nm;
	Delta *d;

	p += sprintf(p, "{\"PeersRemoved\":[");
	for (int i = 0; i < 70; i++)
		p += sprintf(p, "%s%d", i ? "," : "", 2 + i);
	p += sprintf(p, "],\"PeersChanged\":[");
	for (int i = 0; i < 150; i++)
		p += sprintf(p, "%s%s", i ? "," : "", NODE(1000 + i, ""));
	strcpy(p, "]}");
	CU_ASSERT_FATAL(ap(m, json, &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL);
	CU_ASSERT(d->n_peers_removed == 70 && d->n_peers_changed == 150);
	free_delta(d);
	nm = snap(m);
	CU_ASSERT(nm->n_peers == 100 - 70 + 150);
	CU_ASSERT(peer(nm, 71) == NULL && peer(nm, 72) != NULL &&
	    peer(nm, 1149) != NULL);
	free_nm(nm);
	free(json);
	ctrldi_map_free(m);
}

static void
test_identical_again(void)
{
	ctrldi_map *m = map_with_peers(5);
	bool chg;
	char *json = malloc(64 * 1024), *p = json;

	p += sprintf(p, "{\"Node\":%s,\"Peers\":[", SELF(""));
	for (int i = 0; i < 5; i++)
		p += sprintf(p, "%s%s", i ? "," : "", NODE(2 + i, ""));
	strcpy(p, "]}");
	CU_ASSERT(ap(m, json, NULL, &chg) == 0);
	CU_ASSERT(!chg);
	free(json);
	ctrldi_map_free(m);
}

/* RFC 3339 text of a Unix time. */
static const char *
T(int64_t unix_s)
{
	char b[40];
	time_t t = (time_t)unix_s;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return S("%s", b);
}

static int64_t
now_s(void)
{
	return (int64_t)(tk_clock_real_ns(&fclock.fc_clock) / 1000000000ull);
}

static Delta *
expire(ctrldi_map *m, bool want_change, int64_t *next)
{
	tk_buf b;
	bool chg = false;
	Delta *d = NULL;

	tk_buf_init(&b);
	CU_ASSERT_FATAL(ctrldi_map_expire(m, &b, &chg, next) == 0);
	CU_ASSERT_EQUAL(chg, want_change);
	if (chg)
		d = xunpack(&tk__bus__v1__netmap_delta__descriptor, &b);
	tk_buf_fini(&b);
	return d;
}

/* ipnlocal/expiry.go flagExpiredPeers: a peer past its KeyExpiry is
 * expired locally, as time passes and on every message; ControlTime
 * corrects the clock when it is more than a minute off. */
static void
test_local_key_expiry(void)
{
	ctrldi_map *m = map_with_peers(2); /* 2, 3 */
	int64_t t0 = now_s(), next = -1;
	Delta *d;
	Netmap *nm;
	ctrldi_self self;

	/* nothing expires yet; the next expiry is peer 2's */
	CU_ASSERT_FATAL(ap(m, S("{\"PeersChangedPatch\":[{\"NodeID\":2,"
	    "\"KeyExpiry\":\"%s\"}]}", T(t0 + 10)), NULL, NULL) == 0);
	d = expire(m, false, &next);
	CU_ASSERT_EQUAL(next, (t0 + 10) * 1000);
	CU_ASSERT(ctrldi_map_self(m, &self) && !self.key_expired &&
	    !self.expired && self.machine_authorized);
	/* ten seconds later: expired, endpoints and home DERP gone */
	tk_fake_clock_advance(&fclock, 10ull * 1000000000ull);
	d = expire(m, true, &next);
	CU_ASSERT_FATAL(d != NULL && d->n_peers_changed == 1);
	CU_ASSERT(d->peers_changed[0]->id == 2 && d->peers_changed[0]->expired &&
	    d->peers_changed[0]->n_endpoints == 0 &&
	    d->peers_changed[0]->home_derp == 0 &&
	    d->peers_changed[0]->n_addresses == 2);
	CU_ASSERT_EQUAL(next, 0);
	free_delta(d);
	d = expire(m, false, &next); /* once */
	/* control sends the peer again as it was: it stays expired */
	CU_ASSERT_FATAL(ap(m, S("{\"PeersChanged\":[%s]}", NODE(2,
	    S(",\"KeyExpiry\":\"%s\"", T(t0 + 10)))), &d, NULL) == 0);
	CU_ASSERT(d == NULL || d->n_peers_changed == 0);
	free_delta(d);
	nm = snap(m);
	CU_ASSERT(peer(nm, 2)->expired && !peer(nm, 3)->expired);
	free_nm(nm);
	/* a new key expiry in the future revives it (as Go's next netmap) */
	CU_ASSERT_FATAL(ap(m, S("{\"PeersChanged\":[%s]}", NODE(2,
	    S(",\"KeyExpiry\":\"%s\"", T(t0 + 3600)))), &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL && d->n_peers_changed == 1);
	CU_ASSERT(!d->peers_changed[0]->expired &&
	    d->peers_changed[0]->n_endpoints == 1);
	free_delta(d);

	/* control's clock 2 h ahead: peer 3 expiring in 1 h by ours is past
	 * by control's, and is expired with the message */
	CU_ASSERT_FATAL(ap(m, S("{\"ControlTime\":\"%s\",\"PeersChangedPatch\":"
	    "[{\"NodeID\":3,\"KeyExpiry\":\"%s\"}]}", T(now_s() + 7200),
	    T(now_s() + 3600)), &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL && d->n_peers_changed == 1);
	CU_ASSERT(d->peers_changed[0]->id == 3 && d->peers_changed[0]->expired);
	free_delta(d);
	/* peer 2's expiry (t0 + 3600, 1 h by ours) comes 2 h early by control */
	CU_ASSERT_FATAL(ap(m, S("{\"ControlTime\":\"%s\"}", T(now_s() + 7200)),
	    NULL, NULL) == 0);
	d = expire(m, true, &next); /* ctrld runs this after each message */
	CU_ASSERT_FATAL(d != NULL && d->n_peers_changed == 1);
	CU_ASSERT(d->peers_changed[0]->id == 2 && d->peers_changed[0]->expired);
	free_delta(d);
	/* within a minute, the skew is ignored (minClockDelta) */
	CU_ASSERT_FATAL(ap(m, S("{\"ControlTime\":\"%s\",\"PeersChanged\":[%s]}",
	    T(now_s() + 30), NODE(2, S(",\"KeyExpiry\":\"%s\"", T(now_s() + 20)))),
	    NULL, NULL) == 0);
	nm = snap(m);
	CU_ASSERT(!peer(nm, 2)->expired);
	free_nm(nm);
	d = expire(m, false, &next);
	CU_ASSERT_EQUAL(next, (now_s() + 20) * 1000);

	/* the self node: KeyExpiry past by the local clock; no Expired flag */
	CU_ASSERT_FATAL(ap(m, S("{\"Node\":%s}", SELF(S(",\"KeyExpiry\":\"%s\"",
	    T(now_s() - 1)))), NULL, NULL) == 0);
	CU_ASSERT(ctrldi_map_self(m, &self) && self.key_expired &&
	    !self.expired && self.key[0] == 1);
	CU_ASSERT_FATAL(ap(m, S("{\"Node\":%s}", SELF(",\"Expired\":true,"
	    "\"MachineAuthorized\":false")), NULL, NULL) == 0);
	/* (the later MachineAuthorized wins in Go's decoder, as here) */
	CU_ASSERT(ctrldi_map_self(m, &self) && self.expired &&
	    !self.key_expired && !self.machine_authorized);
	ctrldi_map_free(m);
}

/* Restored from the cache, records are opaque: nothing expires until the
 * stream confirms them; a clock before 2023 disables local expiry. */
static void
test_local_key_expiry_limits(void)
{
	ctrldi_map *m = map_with_peers(1), *r;
	tk_buf b;
	int64_t next = -1;
	ctrldi_self self;
	tk_fake_clock early;

	CU_ASSERT_FATAL(ap(m, S("{\"PeersChangedPatch\":[{\"NodeID\":2,"
	    "\"KeyExpiry\":\"%s\"}]}", T(now_s() - 5)), NULL, NULL) == 0);
	tk_buf_init(&b);
	CU_ASSERT_FATAL(ctrldi_map_snapshot(m, &b) == 0);
	CU_ASSERT_FATAL(ctrldi_map_new(&r) == 0);
	ctrldi_map_set_clock(r, &fclock.fc_clock);
	CU_ASSERT_FATAL(ctrldi_map_restore(r, b.data, b.len) == 0);
	free_delta(expire(r, false, &next));
	CU_ASSERT(!ctrldi_map_self(r, &self));
	ctrldi_map_free(r);
	tk_buf_fini(&b);
	ctrldi_map_free(m);

	tk_fake_clock_init(&early, 1, 1500000000ull * 1000000000ull);
	CU_ASSERT_FATAL(ctrldi_map_new(&m) == 0);
	ctrldi_map_set_clock(m, &early.fc_clock);
	CU_ASSERT_FATAL(ap(m, S("{\"Node\":%s,\"Peers\":[%s]}", SELF(""),
	    NODE(2, S(",\"KeyExpiry\":\"%s\"", T(1400000000)))), NULL, NULL) == 0);
	free_delta(expire(m, false, &next));
	ctrldi_map_free(m);
}

static const tk_test_case peer_cases[] = {
	TK_TEST(test_peers_replace),
	TK_TEST(test_peers_order),
	TK_TEST(test_peer_seen_online),
	TK_TEST(test_patch_fields),
	TK_TEST(test_patchify_quirks),
	TK_TEST(test_hostinfo_null),
	TK_TEST(test_disco_filter),
	TK_TEST(test_full_peers_disco_keep),
	TK_TEST(test_single_patch_delta),
	TK_TEST(test_many_joins_leaves),
	TK_TEST(test_identical_again),
	TK_TEST(test_local_key_expiry),
	TK_TEST(test_local_key_expiry_limits),
	TK_TEST_END,
};

/* ---------------------------------------------------------------------
 * DERP map
 * ------------------------------------------------------------------ */

#define REGION(id, code)                                                      \
	"{\"RegionID\":" #id ",\"RegionCode\":\"" code "\",\"RegionName\":\"R" #id \
	"\",\"Nodes\":[{\"Name\":\"" #id "a\",\"RegionID\":" #id ","          \
	"\"HostName\":\"derp" #id ".example.com\",\"IPv4\":\"192.0.2." #id     \
	"\",\"STUNPort\":-1,\"DERPPort\":8443,\"InsecureForTests\":true},null]}"

static void
test_derp_merge(void)
{
	ctrldi_map *m = map_with_peers(0);
	Delta *d;
	Netmap *nm;
	const Tk__Bus__V1__DERPMap *dm;

	CU_ASSERT_FATAL(ap(m, "{\"DERPMap\":{\"HomeParams\":{\"RegionScore\":"
	    "{\"2\":0.5,\"1\":1.5}},\"Regions\":{\"10\":" REGION(10, "ten") ","
	    "\"2\":" REGION(2, "two") ",\"1\":" REGION(1, "one") ",\"5\":null},"
	    "\"omitDefaultRegions\":true}}", &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL && d->derp_map != NULL);
	dm = d->derp_map;
	CU_ASSERT_FATAL(dm->n_regions == 3); /* null region dropped */
	CU_ASSERT(dm->regions[0]->region_id == 1 && dm->regions[1]->region_id == 2
	    && dm->regions[2]->region_id == 10);
	CU_ASSERT(strcmp(dm->regions[2]->region_code, "ten") == 0);
	CU_ASSERT_FATAL(dm->regions[2]->n_nodes == 1); /* null node dropped */
	CU_ASSERT(dm->regions[2]->nodes[0]->stun_port == -1 &&
	    dm->regions[2]->nodes[0]->derp_port == 8443 &&
	    dm->regions[2]->nodes[0]->insecure_for_tests &&
	    strcmp(dm->regions[2]->nodes[0]->ipv4, "192.0.2.10") == 0);
	CU_ASSERT(dm->n_region_scores == 2 &&
	    dm->region_scores[0]->region_id == 1 &&
	    dm->region_scores[0]->score == 1.5);
	CU_ASSERT(dm->omit_default_regions);
	free_delta(d);
	/* Regions null, HomeParams null: nothing changes */
	CU_ASSERT(ap(m, "{\"DERPMap\":{}}", &d, NULL) == 0);
	CU_ASSERT(d == NULL);
	CU_ASSERT(ap(m, "{\"DERPMap\":{\"Regions\":null,\"HomeParams\":{}}}", &d,
	    NULL) == 0);
	CU_ASSERT(d == NULL);
	/* RegionScore {}: the scores go */
	CU_ASSERT_FATAL(ap(m, "{\"DERPMap\":{\"HomeParams\":{\"RegionScore\":{}}}}",
	    &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL && d->derp_map != NULL);
	CU_ASSERT(d->derp_map->n_regions == 3 && d->derp_map->n_region_scores == 0
	    && d->derp_map->omit_default_regions);
	free_delta(d);
	/* new Regions: replace, omitDefaultRegions from this message */
	CU_ASSERT_FATAL(ap(m, "{\"DERPMap\":{\"Regions\":{\"900\":"
	    REGION(900, "x") "}}}", &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL && d->derp_map != NULL);
	CU_ASSERT(d->derp_map->n_regions == 1 &&
	    d->derp_map->regions[0]->region_id == 900 &&
	    !d->derp_map->omit_default_regions);
	free_delta(d);
	nm = snap(m);
	CU_ASSERT(nm->derp_map != NULL && nm->derp_map->n_regions == 1);
	free_nm(nm);
	ctrldi_map_free(m);
}

/* ---------------------------------------------------------------------
 * Packet filter
 * ------------------------------------------------------------------ */

#define RULE(src) \
	"{\"SrcIPs\":[\"" src "\"],\"DstPorts\":[{\"IP\":\"*\",\"Ports\":" \
	"{\"First\":22,\"Last\":22}}]}"

static const char *
src_of(const Tk__Bus__V1__PacketFilter *pf, size_t rule)
{
	static char b[64];
	const Tk__Bus__V1__IPMatch *x;

	if (rule >= pf->n_rules || pf->rules[rule]->n_src_ips == 0)
		return "";
	x = pf->rules[rule]->src_ips[0];
	if (x->match_case == TK__BUS__V1__IPMATCH__MATCH_PREFIX) {
		tk_ipprefix p;

		memset(&p, 0, sizeof(p));
		p.ip.family = x->prefix->addr.len == 4 ? TK_AF_INET : TK_AF_INET6;
		memcpy(p.ip.addr, x->prefix->addr.data, x->prefix->addr.len);
		p.bits = (uint8_t)x->prefix->bits;
		tk_ipprefix_format(&p, b);
		return b;
	}
	return x->match_case == TK__BUS__V1__IPMATCH__MATCH_ANY ? "*" : "?";
}

static void
test_filter_absent_empty(void)
{
	ctrldi_map *m = map_with_peers(0);
	Delta *d;
	Netmap *nm;

	nm = snap(m);
	CU_ASSERT(nm->packet_filter == NULL); /* never received */
	free_nm(nm);
	CU_ASSERT_FATAL(ap(m, "{\"PacketFilter\":[" RULE("*") "]}", &d, NULL) ==
	    0);
	CU_ASSERT_FATAL(d != NULL && d->packet_filter != NULL);
	CU_ASSERT(d->packet_filter->received && d->packet_filter->n_rules == 1);
	free_delta(d);
	/* absent/null: unchanged */
	CU_ASSERT(ap(m, "{\"PacketFilter\":null,\"Domain\":\"x\"}", &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL);
	CU_ASSERT(d->packet_filter == NULL);
	free_delta(d);
	/* []: deny all, present on the bus with no rules */
	CU_ASSERT_FATAL(ap(m, "{\"PacketFilter\":[]}", &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL && d->packet_filter != NULL);
	CU_ASSERT(d->packet_filter->has_received && d->packet_filter->received &&
	    d->packet_filter->n_rules == 0);
	free_delta(d);
	nm = snap(m);
	CU_ASSERT(nm->packet_filter != NULL && nm->packet_filter->received &&
	    nm->packet_filter->n_rules == 0);
	free_nm(nm);
	ctrldi_map_free(m);
}

static void
test_filter_chunks(void)
{
	ctrldi_map *m = map_with_peers(0);
	Delta *d;
	Netmap *nm;

	CU_ASSERT_FATAL(ap(m, "{\"PacketFilters\":{\"b\":[" RULE("10.0.0.2")
	    "],\"a\":[" RULE("10.0.0.1") "]}}", &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL && d->packet_filter != NULL);
	CU_ASSERT(d->packet_filter->n_rules == 2);
	CU_ASSERT(strcmp(src_of(d->packet_filter, 0), "10.0.0.1/32") == 0);
	CU_ASSERT(strcmp(src_of(d->packet_filter, 1), "10.0.0.2/32") == 0);
	free_delta(d);
	/* PacketFilter is chunk "base": "a" < "b" < "base" */
	CU_ASSERT_FATAL(ap(m, "{\"PacketFilter\":[" RULE("10.0.0.3") "],"
	    "\"PacketFilters\":{\"a\":null}}", &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL && d->packet_filter != NULL);
	CU_ASSERT(d->packet_filter->n_rules == 2);
	CU_ASSERT(strcmp(src_of(d->packet_filter, 0), "10.0.0.2/32") == 0);
	CU_ASSERT(strcmp(src_of(d->packet_filter, 1), "10.0.0.3/32") == 0);
	free_delta(d);
	/* "*": null clears every chunk, "base" included, then the rest */
	CU_ASSERT_FATAL(ap(m, "{\"PacketFilters\":{\"c\":[" RULE("10.0.0.4")
	    "],\"*\":null}}", &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL && d->packet_filter != NULL);
	CU_ASSERT(d->packet_filter->n_rules == 1);
	CU_ASSERT(strcmp(src_of(d->packet_filter, 0), "10.0.0.4/32") == 0);
	free_delta(d);
	/* "*" with a value is skipped; the same chunk again: no change */
	CU_ASSERT(ap(m, "{\"PacketFilters\":{\"*\":[],\"c\":[" RULE("10.0.0.4")
	    "]}}", &d, NULL) == 0);
	CU_ASSERT(d == NULL);
	/* a PacketFilters "base" in the same message wins over PacketFilter */
	CU_ASSERT_FATAL(ap(m, "{\"PacketFilter\":[" RULE("10.0.0.7") "],"
	    "\"PacketFilters\":{\"base\":[" RULE("10.0.0.8") "],\"a\":["
	    RULE("10.0.0.6") "]}}", &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL && d->packet_filter != NULL);
	CU_ASSERT(d->packet_filter->n_rules == 3);
	CU_ASSERT(strcmp(src_of(d->packet_filter, 0), "10.0.0.6/32") == 0);
	CU_ASSERT(strcmp(src_of(d->packet_filter, 1), "10.0.0.8/32") == 0);
	CU_ASSERT(strcmp(src_of(d->packet_filter, 2), "10.0.0.4/32") == 0);
	free_delta(d);
	/* base and the clear in one message: base goes too (map.go order) */
	CU_ASSERT_FATAL(ap(m, "{\"PacketFilter\":[" RULE("10.0.0.9") "],"
	    "\"PacketFilters\":{\"*\":null}}", &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL && d->packet_filter != NULL);
	CU_ASSERT(d->packet_filter->n_rules == 0 && d->packet_filter->received);
	free_delta(d);
	nm = snap(m);
	CU_ASSERT(nm->packet_filter->n_rules == 0);
	free_nm(nm);
	ctrldi_map_free(m);
}

static void
test_filter_rules(void)
{
	ctrldi_map *m = map_with_peers(0);
	Netmap *nm;
	const Tk__Bus__V1__FilterRule *r;

	CU_ASSERT_FATAL(ap(m, "{\"PacketFilter\":[{\"SrcIPs\":[\"*\","
	    "\"100.64.0.1\",\"10.0.0.0/8\",\"10.0.0.1-10.0.0.9\",\"cap:ssh\","
	    "\"bogus\",\"10.0.0.1/8\",\"fd7a::1\",null],\"DstPorts\":["
	    "{\"IP\":\"100.64.0.1\",\"Ports\":{\"First\":80,\"Last\":443}},"
	    "{\"IP\":\"cap:x\",\"Ports\":{\"First\":1,\"Last\":1}},"
	    "{\"IP\":\"nope\"},null,{\"IP\":\"::/0\"}],\"IPProto\":[6,300,-1,17]},"
	    "{\"SrcIPs\":[\"*\"],\"CapGrant\":[{\"Dsts\":[\"100.64.0.1/32\"],"
	    "\"Caps\":[\"old\"],\"CapMap\":{\"tailscale.com/cap/x\":[{\"a\":1}],"
	    "\"b\":null}}]},null]}", NULL, NULL) == 0);
	nm = snap(m);
	CU_ASSERT_FATAL(nm->packet_filter != NULL &&
	    nm->packet_filter->n_rules == 3);
	r = nm->packet_filter->rules[0];
	/* bad entries skipped, as parseIPSet errors are in Go */
	CU_ASSERT_FATAL(r->n_src_ips == 6);
	CU_ASSERT(r->src_ips[0]->match_case == TK__BUS__V1__IPMATCH__MATCH_ANY);
	CU_ASSERT(r->src_ips[1]->match_case == TK__BUS__V1__IPMATCH__MATCH_PREFIX
	    && r->src_ips[1]->prefix->bits == 32);
	CU_ASSERT(r->src_ips[2]->match_case == TK__BUS__V1__IPMATCH__MATCH_PREFIX
	    && r->src_ips[2]->prefix->bits == 8);
	CU_ASSERT(r->src_ips[3]->match_case == TK__BUS__V1__IPMATCH__MATCH_RANGE
	    && r->src_ips[3]->range->first.data[3] == 1 &&
	    r->src_ips[3]->range->last.data[3] == 9);
	CU_ASSERT(r->src_ips[4]->match_case == TK__BUS__V1__IPMATCH__MATCH_CAP &&
	    strcmp(r->src_ips[4]->cap, "ssh") == 0);
	CU_ASSERT(r->src_ips[5]->prefix->bits == 128);
	CU_ASSERT_FATAL(r->n_dst_ports == 2);
	CU_ASSERT(r->dst_ports[0]->first_port == 80 &&
	    r->dst_ports[0]->last_port == 443);
	CU_ASSERT(r->dst_ports[1]->ip->prefix->bits == 0 &&
	    r->dst_ports[1]->has_first_port && r->dst_ports[1]->first_port == 0);
	/* IPProto: >255 and negative become numbers the filter ignores */
	CU_ASSERT_FATAL(r->n_ip_proto == 4);
	CU_ASSERT(r->ip_proto[0] == 6 && r->ip_proto[1] == 300 &&
	    r->ip_proto[2] == UINT32_MAX && r->ip_proto[3] == 17);
	r = nm->packet_filter->rules[1];
	CU_ASSERT_FATAL(r->n_cap_grant == 1);
	CU_ASSERT(r->cap_grant[0]->n_dsts == 1);
	CU_ASSERT_FATAL(r->cap_grant[0]->n_cap_map == 3);
	CU_ASSERT(strcmp(r->cap_grant[0]->cap_map[0]->name, "old") == 0);
	CU_ASSERT(strcmp(r->cap_grant[0]->cap_map[1]->name, "b") == 0);
	CU_ASSERT(strcmp(r->cap_grant[0]->cap_map[2]->json_values[0],
	    "{\"a\":1}") == 0);
	/* a null rule is Go's zero FilterRule: kept, matches nothing */
	r = nm->packet_filter->rules[2];
	CU_ASSERT(r->n_src_ips == 0 && r->n_dst_ports == 0);
	free_nm(nm);
	ctrldi_map_free(m);
}

static void
test_filter_bits(void)
{
	ctrldi_map *m = map_with_peers(0);
	Netmap *nm;

	/* MatchesFromFilterRules fails on SrcBits/Bits: the whole filter is
	 * empty (deny all) */
	CU_ASSERT_FATAL(ap(m, "{\"PacketFilters\":{\"a\":[" RULE("*") "],"
	    "\"b\":[{\"SrcIPs\":[\"*\"],\"SrcBits\":[32]}]}}", NULL, NULL) == 0);
	nm = snap(m);
	CU_ASSERT(nm->packet_filter->received && nm->packet_filter->n_rules == 0);
	free_nm(nm);
	CU_ASSERT_FATAL(ap(m, "{\"PacketFilters\":{\"b\":null}}", NULL, NULL) ==
	    0);
	nm = snap(m);
	CU_ASSERT(nm->packet_filter->n_rules == 1);
	free_nm(nm);
	CU_ASSERT_FATAL(ap(m, "{\"PacketFilters\":{\"c\":[{\"SrcIPs\":[\"*\"],"
	    "\"DstPorts\":[{\"IP\":\"*\",\"Bits\":0}]}]}}", NULL, NULL) == 0);
	nm = snap(m);
	CU_ASSERT(nm->packet_filter->n_rules == 0);
	free_nm(nm);
	/* SrcBits [] and Bits null are fine */
	CU_ASSERT_FATAL(ap(m, "{\"PacketFilters\":{\"c\":[{\"SrcIPs\":[\"*\"],"
	    "\"SrcBits\":[],\"DstPorts\":[{\"IP\":\"*\",\"Bits\":null}]}]}}",
	    NULL, NULL) == 0);
	nm = snap(m);
	CU_ASSERT(nm->packet_filter->n_rules == 2);
	free_nm(nm);
	ctrldi_map_free(m);
}

/*
 * parseIPSet is tk_wg_ipmatch_parse_n (its cases are in test_wg_filter);
 * here: each kind's encoding, the entries Go skips, a cap refused in
 * DstPorts, and a NUL from a JSON escape.
 */
static void
test_filter_ipset(void)
{
	static const struct {
		const char *json; /* SrcIPs entry, JSON-escaped */
		int kind;	  /* IPMatch case; 0: skipped */
	} t[] = {
		{ "*", TK__BUS__V1__IPMATCH__MATCH_ANY },
		{ "cap:a/b-c", TK__BUS__V1__IPMATCH__MATCH_CAP },
		{ "10.1.2.0/24", TK__BUS__V1__IPMATCH__MATCH_PREFIX },
		{ "fd7a::1", TK__BUS__V1__IPMATCH__MATCH_PREFIX },
		{ "10.0.0.1-10.0.0.9", TK__BUS__V1__IPMATCH__MATCH_RANGE },
		{ "fd7a::1-fd7a::9", TK__BUS__V1__IPMATCH__MATCH_RANGE },
		{ "10.1.2.1/24", 0 },
		{ "fd7a::9-fd7a::1", 0 },
		{ "1.2.3.4-::1", 0 },
		{ "01.2.3.4", 0 },
		{ "fe80::1%eth0", 0 },
		{ "1.2.3.4\\u0000", 0 },
		{ "", 0 },
	};

	for (size_t i = 0; i < TK_ARRAY_LEN(t); i++) {
		ctrldi_map *m = map_with_peers(0);
		const Tk__Bus__V1__IPMatch *x;
		Netmap *nm;

		CU_ASSERT_FATAL(ap(m, S("{\"PacketFilter\":[{\"SrcIPs\":"
		    "[\"%s\"]}]}", t[i].json), NULL, NULL) == 0);
		nm = snap(m);
		if (t[i].kind == 0) {
			CU_ASSERT(nm->packet_filter->rules[0]->n_src_ips == 0);
			free_nm(nm);
			ctrldi_map_free(m);
			continue;
		}
		CU_ASSERT_FATAL(nm->packet_filter->rules[0]->n_src_ips == 1);
		x = nm->packet_filter->rules[0]->src_ips[0];
		CU_ASSERT((int)x->match_case == t[i].kind);
		if (i == 1)
			CU_ASSERT(strcmp(x->cap, "a/b-c") == 0);
		if (i == 2)
			CU_ASSERT(x->prefix->bits == 24 &&
			    x->prefix->addr.len == 4 &&
			    memcmp(x->prefix->addr.data, "\x0a\x01\x02\x00",
				4) == 0);
		if (i == 3)
			CU_ASSERT(x->prefix->bits == 128 &&
			    x->prefix->addr.len == 16 &&
			    x->prefix->addr.data[0] == 0xfd &&
			    x->prefix->addr.data[15] == 1);
		if (i == 4)
			CU_ASSERT(x->range->first.len == 4 &&
			    x->range->last.len == 4 &&
			    x->range->first.data[3] == 1 &&
			    x->range->last.data[3] == 9);
		if (i == 5)
			CU_ASSERT(x->range->first.len == 16 &&
			    x->range->last.data[15] == 9);
		free_nm(nm);
		ctrldi_map_free(m);
	}
	/* "unexpected capability in DstPorts": that entry is skipped */
	{
		ctrldi_map *m = map_with_peers(0);
		Netmap *nm;

		CU_ASSERT_FATAL(ap(m, "{\"PacketFilter\":[{\"SrcIPs\":[\"*\"],"
		    "\"DstPorts\":[{\"IP\":\"cap:x\",\"Ports\":{\"First\":1,"
		    "\"Last\":2}},{\"IP\":\"1.2.3.4\",\"Ports\":{\"First\":1,"
		    "\"Last\":2}}]}]}", NULL, NULL) == 0);
		nm = snap(m);
		CU_ASSERT(nm->packet_filter->rules[0]->n_dst_ports == 1);
		free_nm(nm);
		ctrldi_map_free(m);
	}
}

static const tk_test_case derp_filter_cases[] = {
	TK_TEST(test_derp_merge),
	TK_TEST(test_filter_absent_empty),
	TK_TEST(test_filter_chunks),
	TK_TEST(test_filter_rules),
	TK_TEST(test_filter_bits),
	TK_TEST(test_filter_ipset),
	TK_TEST_END,
};

/* ---------------------------------------------------------------------
 * DNS, domain, health, profiles, keep-alives, info
 * ------------------------------------------------------------------ */

static void
test_dns(void)
{
	ctrldi_map *m = map_with_peers(0);
	Delta *d;
	const Tk__Bus__V1__DNSConfig *c;

	CU_ASSERT_FATAL(ap(m, "{\"DNSConfig\":{\"Resolvers\":[{\"Addr\":"
	    "\"1.1.1.1\"},null,{\"Addr\":\"https://dns.example/q\","
	    "\"BootstrapResolution\":[\"192.0.2.53\",\"2001:db8::53\"],"
	    "\"UseWithExitNode\":true}],\"Routes\":{\"z.example.\":[{\"Addr\":"
	    "\"10.0.0.53:5353\"}],\"ts.net.\":null,\"a.example\":[]},"
	    "\"FallbackResolvers\":[{\"Addr\":\"8.8.8.8\"}],\"Domains\":"
	    "[\"tail.ts.net\"],\"Proxied\":true,\"Nameservers\":[\"100.100.100.100\"],"
	    "\"CertDomains\":[\"self.tail.ts.net\"],\"ExtraRecords\":[{\"Name\":"
	    "\"x.tail.ts.net.\",\"Value\":\"100.64.0.9\"},{\"Name\":\"y\","
	    "\"Type\":\"AAAA\",\"Value\":\"fd7a::9\"}],\"ExitNodeFilteredSet\":"
	    "[\".local\"],\"TempCorpIssue13969\":\"x\"}}", &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL && d->dns_config != NULL);
	c = d->dns_config;
	CU_ASSERT_FATAL(c->n_resolvers == 2);
	CU_ASSERT(strcmp(c->resolvers[0]->addr, "1.1.1.1") == 0);
	CU_ASSERT(c->resolvers[1]->n_bootstrap_resolution == 2 &&
	    strcmp(c->resolvers[1]->bootstrap_resolution[1], "2001:db8::53") == 0
	    && c->resolvers[1]->use_with_exit_node);
	CU_ASSERT_FATAL(c->n_routes == 3); /* sorted by suffix */
	CU_ASSERT(strcmp(c->routes[0]->suffix, "a.example") == 0 &&
	    c->routes[0]->n_resolvers == 0);
	CU_ASSERT(strcmp(c->routes[1]->suffix, "ts.net.") == 0 &&
	    c->routes[1]->n_resolvers == 0);
	CU_ASSERT(strcmp(c->routes[2]->suffix, "z.example.") == 0 &&
	    c->routes[2]->n_resolvers == 1);
	CU_ASSERT(c->n_fallback_resolvers == 1 && c->n_domains == 1 &&
	    c->proxied && c->n_cert_domains == 1 && c->n_exit_node_filtered_set == 1);
	CU_ASSERT_FATAL(c->n_extra_records == 2);
	CU_ASSERT(strcmp(c->extra_records[1]->type, "AAAA") == 0 &&
	    c->extra_records[0]->type == NULL);
	free_delta(d);
	/* absent: unchanged; present: replaced, even by {} */
	CU_ASSERT(ap(m, "{\"DNSConfig\":null}", &d, NULL) == 0);
	CU_ASSERT(d == NULL);
	CU_ASSERT_FATAL(ap(m, "{\"DNSConfig\":{}}", &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL && d->dns_config != NULL);
	CU_ASSERT(d->dns_config->n_resolvers == 0 && d->dns_config->n_routes == 0);
	free_delta(d);
	ctrldi_map_free(m);
}

static void
test_domain_health_profiles(void)
{
	ctrldi_map *m = map_with_peers(0);
	Delta *d;
	Netmap *nm;

	CU_ASSERT_FATAL(ap(m, "{\"Domain\":\"example.com\",\"Health\":"
	    "[\"bad\",null],\"UserProfiles\":[{\"ID\":2,\"LoginName\":\"b@x\","
	    "\"DisplayName\":\"B\",\"Groups\":[\"g\"]},{\"ID\":1,\"LoginName\":"
	    "\"a@x\",\"DisplayName\":\"A\",\"ProfilePicURL\":\"https://p\"}],"
	    "\"CollectServices\":true}", &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL);
	CU_ASSERT(strcmp(d->domain, "example.com") == 0);
	CU_ASSERT(d->health != NULL && d->health->n_items == 2 &&
	    strcmp(d->health->items[1], "") == 0);
	CU_ASSERT(d->n_user_profiles == 2 && d->user_profiles[0]->id == 1);
	free_delta(d);
	CU_ASSERT(ctrldi_map_collect_services(m) == 1);
	/* "" = unchanged, null = unchanged, same profile: nothing */
	CU_ASSERT(ap(m, "{\"Domain\":\"\",\"Health\":null,\"UserProfiles\":"
	    "[{\"ID\":1,\"LoginName\":\"a@x\",\"DisplayName\":\"A\","
	    "\"ProfilePicURL\":\"https://p\"}],\"CollectServices\":null}", &d,
	    NULL) == 0);
	CU_ASSERT(d == NULL);
	CU_ASSERT(ctrldi_map_collect_services(m) == 1);
	/* [] = healthy; a changed profile: only it; a new one */
	CU_ASSERT_FATAL(ap(m, "{\"Health\":[],\"UserProfiles\":[{\"ID\":2,"
	    "\"LoginName\":\"b@x\",\"DisplayName\":\"Bee\"},{\"ID\":1,"
	    "\"LoginName\":\"a@x\",\"DisplayName\":\"A\",\"ProfilePicURL\":"
	    "\"https://p\"},{\"ID\":3},{\"ID\":3,\"LoginName\":\"c@x\"}],"
	    "\"CollectServices\":false}", &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL);
	CU_ASSERT(d->health != NULL && d->health->n_items == 0);
	CU_ASSERT_FATAL(d->n_user_profiles == 2);
	CU_ASSERT(d->user_profiles[0]->id == 2 &&
	    strcmp(d->user_profiles[0]->display_name, "Bee") == 0);
	CU_ASSERT(d->user_profiles[1]->id == 3 &&
	    strcmp(d->user_profiles[1]->login_name, "c@x") == 0);
	free_delta(d);
	CU_ASSERT(ctrldi_map_collect_services(m) == 0);
	nm = snap(m);
	CU_ASSERT(nm->n_user_profiles == 3 && nm->n_health == 0 &&
	    nm->has_collect_services && !nm->collect_services);
	free_nm(nm);
	ctrldi_map_free(m);
}

static void
test_keepalive_info(void)
{
	ctrldi_map *m = map_with_peers(1);
	ctrldi_map_info info;
	Netmap *nm;
	bool chg;

	/* a keep-alive applies nothing but returns ping/time/URL */
	CU_ASSERT_FATAL(ap_info(m, S("{\"KeepAlive\":true,\"Node\":%s,"
	    "\"PeersRemoved\":[2],\"PingRequest\":{\"URL\":\"https://c/p1\","
	    "\"URLIsNoise\":true,\"Types\":\"c2n\",\"IP\":\"100.64.0.2\","
	    "\"Payload\":\"R0VUIC8=\"},\"ControlTime\":\"2025-02-03T04:05:06.789Z\","
	    "\"PopBrowserURL\":\"https://login\",\"Debug\":{\"SleepSeconds\":5},"
	    "\"Seq\":7}", SELF(",\"Name\":\"other.\"")), NULL, &chg, &info) == 0);
	CU_ASSERT(!chg);
	CU_ASSERT(info.keepalive);
	CU_ASSERT(info.has_ping && strcmp(info.ping.url, "https://c/p1") == 0 &&
	    info.ping.url_is_noise && strcmp(info.ping.types, "c2n") == 0 &&
	    info.ping.has_ip && info.ping.ip.addr[3] == 2 &&
	    info.ping.payload_len == 5 && memcmp(info.ping.payload, "GET /", 5) == 0);
	CU_ASSERT(info.has_control_time &&
	    info.control_time_unix_ms == 1738555506789LL);
	CU_ASSERT(info.pop_browser_url != NULL &&
	    strcmp(info.pop_browser_url, "https://login") == 0);
	CU_ASSERT(!info.has_debug); /* Go reads Debug on non-keep-alives */
	CU_ASSERT(info.has_seq && info.seq == 7);
	ctrldi_map_info_fini(&info);
	nm = snap(m);
	CU_ASSERT(nm->n_peers == 1 && strcmp(nm->self->name, "self.tail.ts.net.")
	    == 0);
	CU_ASSERT(nm->has_control_time_unix_ms &&
	    nm->control_time_unix_ms == 1738555506789LL);
	free_nm(nm);
	/* the same ping URL and browser URL: not again */
	CU_ASSERT_FATAL(ap_info(m, "{\"PingRequest\":{\"URL\":\"https://c/p1\"},"
	    "\"PopBrowserURL\":\"https://login\",\"Debug\":{\"SleepSeconds\":1e9,"
	    "\"Exit\":3,\"DisableLogTail\":true}}", NULL, &chg, &info) == 0);
	CU_ASSERT(!info.has_ping && info.pop_browser_url == NULL);
	CU_ASSERT(info.has_debug && info.sleep_seconds == 300.0 &&
	    info.has_exit && info.exit_code == 3 && info.disable_log_tail);
	ctrldi_map_info_fini(&info);
	/* a new stream: the browser URL again, the ping (per client) not */
	ctrldi_map_stream_reset(m);
	CU_ASSERT_FATAL(ap_info(m, "{\"KeepAlive\":true,\"PingRequest\":"
	    "{\"URL\":\"https://c/p1\"},\"PopBrowserURL\":\"https://login\","
	    "\"ControlTime\":\"0001-01-01T00:00:00Z\"}", NULL, &chg, &info) == 0);
	CU_ASSERT(!info.has_ping && info.pop_browser_url != NULL);
	CU_ASSERT(!info.has_control_time); /* zero time */
	ctrldi_map_info_fini(&info);
	/* an empty URL is no ping; negative sleep is none */
	CU_ASSERT_FATAL(ap_info(m, S("{\"Node\":%s,\"PingRequest\":{\"URL\":\"\"},"
	    "\"Debug\":{\"SleepSeconds\":-4}}", SELF("")), NULL, &chg, &info) ==
	    0);
	CU_ASSERT(!info.has_ping && info.has_debug && info.sleep_seconds == 0);
	ctrldi_map_info_fini(&info);
	ctrldi_map_free(m);
}

/* ControlDialPlan: candidates kept for the dialer (direct.go stores the
 * plan); null means unchanged, [] means "use DNS"; bad types refused. */
static void
test_dial_plan_info(void)
{
	ctrldi_map *m = map_with_peers(0);
	ctrldi_map_info info;

	CU_ASSERT_FATAL(ap_info(m, "{\"ControlDialPlan\":{\"Candidates\":["
	    "{\"IP\":\"192.0.2.7\",\"DialStartDelaySec\":0.25,\"DialTimeoutSec\":"
	    "2.5,\"Priority\":3},{\"ACEHost\":\"ace.example\",\"DialTimeoutSec\":"
	    "1e9},null,{\"IP\":\"2001:db8::1\",\"DialStartDelaySec\":-4}]}}",
	    NULL, NULL, &info) == 0);
	CU_ASSERT(info.has_dial_plan && info.dial_plan.n == 3);
	CU_ASSERT(info.dial_plan.c[0].ip.family == TK_AF_INET &&
	    info.dial_plan.c[0].ip.addr[3] == 7 &&
	    info.dial_plan.c[0].start_ms == 250 &&
	    info.dial_plan.c[0].timeout_ms == 2500 &&
	    info.dial_plan.c[0].priority == 3 && !info.dial_plan.c[0].ace);
	CU_ASSERT(info.dial_plan.c[1].ace && info.dial_plan.c[1].ip.family == 0 &&
	    info.dial_plan.c[1].timeout_ms == CTRLDI_DIAL_PLAN_MAXT);
	CU_ASSERT(info.dial_plan.c[2].ip.family == TK_AF_INET6 &&
	    info.dial_plan.c[2].start_ms == 0 && info.dial_plan.c[2].timeout_ms == 0);
	ctrldi_map_info_fini(&info);
	CU_ASSERT_FATAL(ap_info(m, "{\"ControlDialPlan\":null}", NULL, NULL,
	    &info) == 0);
	CU_ASSERT(!info.has_dial_plan);
	ctrldi_map_info_fini(&info);
	CU_ASSERT_FATAL(ap_info(m, "{\"ControlDialPlan\":{\"Candidates\":[]}}",
	    NULL, NULL, &info) == 0);
	CU_ASSERT(info.has_dial_plan && info.dial_plan.n == 0);
	ctrldi_map_info_fini(&info);
	CU_ASSERT(ap(m, "{\"ControlDialPlan\":{\"Candidates\":[{\"IP\":7}]}}",
	    NULL, NULL) == TK_EPROTO);
	CU_ASSERT(ap(m, "{\"ControlDialPlan\":{\"Candidates\":{}}}", NULL,
	    NULL) == TK_EPROTO);
	ctrldi_map_free(m);
}

static const tk_test_case misc_cases[] = {
	TK_TEST(test_dns),
	TK_TEST(test_domain_health_profiles),
	TK_TEST(test_keepalive_info),
	TK_TEST(test_dial_plan_info),
	TK_TEST_END,
};

/* ---------------------------------------------------------------------
 * Streams and restore
 * ------------------------------------------------------------------ */

static void
test_stream_reset(void)
{
	ctrldi_map *m = map_with_peers(3); /* 2, 3, 4 */
	Delta *d;
	Netmap *nm;

	CU_ASSERT_FATAL(ap(m, "{\"DERPMap\":{\"Regions\":{\"1\":" REGION(1, "a")
	    "}},\"PacketFilters\":{\"old\":[" RULE("10.0.0.1") "]},"
	    "\"DNSConfig\":{\"Domains\":[\"x\"]}}", NULL, NULL) == 0);
	ctrldi_map_stream_reset(m);
	/* the new stream starts with Node */
	CU_ASSERT(ap(m, "{\"PeersChangedPatch\":[{\"NodeID\":2,\"Cap\":1}]}",
	    NULL, NULL) == TK_EPROTO);
	/* its peers replace the old ones (PeersChanged, as the SaaS sends
	 * the first list); what it has not sent stays published */
	CU_ASSERT_FATAL(ap(m, S("{\"Node\":%s,\"PeersChanged\":[%s,%s]}",
	    SELF(""), NODE(3, ""), NODE(5, "")), &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL);
	CU_ASSERT(d->self == NULL);
	CU_ASSERT(d->n_peers_changed == 1 && d->peers_changed[0]->id == 5);
	CU_ASSERT(d->n_peers_removed == 2 && has_id(d->peers_removed, 2, 2) &&
	    has_id(d->peers_removed, 2, 4));
	CU_ASSERT(d->derp_map == NULL && d->packet_filter == NULL &&
	    d->dns_config == NULL);
	free_delta(d);
	/* the stream's filter chunks start empty: "old" is gone */
	CU_ASSERT_FATAL(ap(m, "{\"PacketFilters\":{\"new\":[" RULE("10.0.0.2")
	    "]}}", &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL && d->packet_filter != NULL);
	CU_ASSERT(d->packet_filter->n_rules == 1 &&
	    strcmp(src_of(d->packet_filter, 0), "10.0.0.2/32") == 0);
	free_delta(d);
	/* and the DERP merge base too: Regions null = no regions */
	ctrldi_map_stream_reset(m);
	CU_ASSERT_FATAL(ap(m, S("{\"Node\":%s,\"DERPMap\":{\"HomeParams\":"
	    "{\"RegionScore\":{\"1\":2}}}}", SELF("")), &d, NULL) == 0);
	CU_ASSERT_FATAL(d != NULL && d->derp_map != NULL);
	CU_ASSERT(d->derp_map->n_regions == 0 && d->derp_map->n_region_scores == 1);
	CU_ASSERT(d->n_peers_removed == 2); /* no peers in this stream */
	free_delta(d);
	nm = snap(m);
	CU_ASSERT(nm->n_peers == 0 && nm->dns_config != NULL);
	free_nm(nm);
	/* tk-feed reads its file as a new stream each time: the same message
	 * again changes nothing; one peer fewer removes just that one */
	{
		const char *full = S("{\"Node\":%s,\"Peers\":[%s,%s],"
		    "\"PacketFilter\":[]}", SELF(""), NODE(3, ""), NODE(5, ""));
		char *copy = strdup(full);
		bool chg = true;

		ctrldi_map_stream_reset(m);
		CU_ASSERT_FATAL(ap(m, copy, NULL, NULL) == 0);
		ctrldi_map_stream_reset(m);
		CU_ASSERT_FATAL(ap(m, copy, &d, &chg) == 0);
		CU_ASSERT(!chg && d == NULL);
		ctrldi_map_stream_reset(m);
		CU_ASSERT_FATAL(ap(m, S("{\"Node\":%s,\"Peers\":[%s]}", SELF(""),
		    NODE(5, "")), &d, &chg) == 0);
		CU_ASSERT_FATAL(chg && d != NULL);
		CU_ASSERT(d->n_peers_changed == 0 && d->n_peers_removed == 1 &&
		    d->peers_removed[0] == 3 && d->packet_filter == NULL);
		free_delta(d);
		free(copy);
	}
	ctrldi_map_free(m);
}

static void
test_restore(void)
{
	ctrldi_map *m = map_with_peers(4), *r = new_map();
	tk_buf b, b2;
	bool chg;
	char *json = malloc(64 * 1024), *p = json;

	CU_ASSERT_FATAL(ap(m, "{\"DERPMap\":{\"Regions\":{\"1\":" REGION(1, "a")
	    "},\"HomeParams\":{\"RegionScore\":{\"1\":0.25}}},\"PacketFilter\":"
	    "[" RULE("*") "],\"DNSConfig\":{\"Proxied\":true},\"Domain\":\"d\","
	    "\"Health\":[\"h\"],\"UserProfiles\":[{\"ID\":5}],"
	    "\"CollectServices\":false,\"ControlTime\":\"2025-01-01T00:00:00Z\"}",
	    NULL, NULL) == 0);
	tk_buf_init(&b);
	tk_buf_init(&b2);
	CU_ASSERT_FATAL(ctrldi_map_snapshot(m, &b) == 0);
	CU_ASSERT_FATAL(ctrldi_map_restore(r, b.data, b.len) == 0);
	CU_ASSERT_FATAL(ctrldi_map_snapshot(r, &b2) == 0);
	CU_ASSERT(buf_eq(&b, &b2));
	CU_ASSERT(ctrldi_map_has_self(r) && ctrldi_map_peer_count(r) == 4 &&
	    ctrldi_map_collect_services(r) == 0);
	/* a restored map is a new stream: Node first */
	CU_ASSERT(ap(r, "{\"Domain\":\"e\"}", NULL, NULL) == TK_EPROTO);
	/* the same netmap again: nothing changed */
	p += sprintf(p, "{\"Node\":%s,\"Peers\":[", SELF(""));
	for (int i = 0; i < 4; i++)
		p += sprintf(p, "%s%s", i ? "," : "", NODE(2 + i, ""));
	strcpy(p, "]}");
	CU_ASSERT(ap(r, json, NULL, &chg) == 0);
	CU_ASSERT(!chg);
	/* and deltas work on the restored state */
	CU_ASSERT(ap(r, "{\"PeersChangedPatch\":[{\"NodeID\":3,\"Cap\":5}]}",
	    NULL, &chg) == 0);
	CU_ASSERT(chg);
	free(json);
	tk_buf_fini(&b);
	tk_buf_fini(&b2);
	ctrldi_map_free(m);
	ctrldi_map_free(r);
}

static int
restore_msg(ctrldi_map *r, Netmap *nm)
{
	uint8_t buf[4096];
	size_t n = tk__bus__v1__netmap__get_packed_size(nm);

	CU_ASSERT_FATAL(n <= sizeof(buf));
	tk__bus__v1__netmap__pack(nm, buf);
	return ctrldi_map_restore(r, buf, n);
}

static void
test_restore_bad(void)
{
	ctrldi_map *m = map_with_peers(2), *r = new_map();
	tk_buf b, b2;
	Netmap *nm;
	static const uint8_t junk[] = { 0x0a, 0x05, 0x08 };
	uint8_t bad5[5] = { 1, 2, 3, 4, 5 };

	tk_buf_init(&b);
	tk_buf_init(&b2);
	CU_ASSERT_FATAL(ctrldi_map_restore(r, NULL, 0) == 0); /* empty netmap */
	CU_ASSERT(!ctrldi_map_has_self(r));
	CU_ASSERT_FATAL(ctrldi_map_snapshot(m, &b) == 0);
	CU_ASSERT_FATAL(ctrldi_map_restore(r, b.data, b.len) == 0);
	CU_ASSERT(ctrldi_map_restore(r, junk, sizeof(junk)) == TK_EPROTO);
	/* unsorted / duplicate / non-positive ids, bad keys and addresses */
	for (int k = 0; k < 6; k++) {
		uint8_t *saved;

		nm = snap(m);
		saved = nm->peers[1]->addresses[0]->addr.data;
		switch (k) {
		case 0: nm->peers[0]->id = 9; break;
		case 1: nm->peers[1]->id = nm->peers[0]->id; break;
		case 2: nm->peers[0]->id = 0; break;
		case 3: nm->peers[0]->key.len = 31; break;
		case 4:
			nm->peers[1]->addresses[0]->addr.data = bad5;
			nm->peers[1]->addresses[0]->addr.len = 5;
			break;
		default: nm->self->has_id = false; break;
		}
		CU_ASSERT(restore_msg(r, nm) == TK_EPROTO);
		nm->peers[1]->addresses[0]->addr.data = saved; /* to free */
		free_nm(nm);
	}
	/* the map is what the last good restore left */
	CU_ASSERT_FATAL(ctrldi_map_snapshot(r, &b2) == 0);
	CU_ASSERT(buf_eq(&b, &b2));
	tk_buf_fini(&b);
	tk_buf_fini(&b2);
	ctrldi_map_free(m);
	ctrldi_map_free(r);
}

static const tk_test_case stream_cases[] = {
	TK_TEST(test_stream_reset),
	TK_TEST(test_restore),
	TK_TEST(test_restore_bad),
	TK_TEST_END,
};

/* ---------------------------------------------------------------------
 * Refused input: TK_EPROTO, a message, nothing changed (ap checks)
 * ------------------------------------------------------------------ */

static void
test_bad_input(void)
{
	static const struct {
		const char *json, *why;
	} t[] = {
		{ "", "no JSON value" },
		{ "   ", "no JSON value" },
		{ "{", "unexpected end" },
		{ "{\"Domain\"", "expected ':'" },
		{ "{\"Domain\":\"x\"", "unexpected end" },
		{ "{\"Domain\":\"x", "unterminated string" },
		{ "[]", "must be an object" },
		{ "\"x\"", "must be an object" },
		{ "{}x", "data after" },
		{ "{} {}", "data after" },
		{ "\xef\xbb\xbf{}", "unexpected character" },
		{ "{\"Domain\":\"x\",}", "string key" },
		{ "{\"Peers\":[1,]}", "unexpected character" },
		{ "{\"Domain\":nul}", "bad literal" },
		{ "{\"Seq\":01}", "expected ','" },
		{ "{\"Seq\":1.}", "bad number" },
		{ "{\"Seq\":-}", "bad number" },
		{ "{\"Seq\":1e}", "bad number" },
		{ "{\"Domain\":\"a\tb\"}", "control character" },
		{ "{\"Domain\":\"\\x\"}", "bad escape" },
		{ "{\"Domain\":\"\\u12g4\"}", "bad \\u escape" },
		{ "{\"Seq\":\"1\"}", "Seq: integer expected, got string" },
		{ "{\"Seq\":1.5}", "Seq: integer expected" },
		{ "{\"Seq\":1e3}", "Seq: integer expected" },
		{ "{\"Seq\":9223372036854775808}", "out of range" },
		{ "{\"KeepAlive\":1}", "KeepAlive: bool expected" },
		{ "{\"Peers\":{}}", "Peers: array expected, got object" },
		{ "{\"Peers\":[null]}", "Peers[0]: null node" },
		{ "{\"PeersChanged\":[{\"ID\":2},{\"Key\":\"x\"}]}",
		    "PeersChanged[1]: ID missing" },
		{ "{\"PeersChanged\":[{\"ID\":\"2\"}]}", "PeersChanged[0].ID" },
		{ "{\"PeersChanged\":[{\"ID\":0}]}", "out of range" },
		{ "{\"PeersChanged\":[{\"ID\":-3}]}", "out of range" },
		{ "{\"PeersChanged\":[{\"ID\":2,\"Key\":\"nodekey:zz\"}]}",
		    "PeersChanged[0].Key: bad nodekey: key" },
		{ "{\"PeersChanged\":[{\"ID\":2,\"Key\":\"\"}]}", "bad nodekey:" },
		{ "{\"PeersChanged\":[{\"ID\":2,\"DiscoKey\":\"nodekey:"
		    "0000000000000000000000000000000000000000000000000000000000000000\"}]}",
		    "bad discokey:" },
		{ "{\"PeersChanged\":[{\"ID\":2,\"Addresses\":[\"100.64.0.1\"]}]}",
		    "Addresses[0]: bad IP prefix" },
		{ "{\"PeersChanged\":[{\"ID\":2,\"AllowedIPs\":[\"100.64.0.1/33\"]}]}",
		    "bad IP prefix" },
		{ "{\"PeersChanged\":[{\"ID\":2,\"AllowedIPs\":[null]}]}",
		    "prefix string expected" },
		{ "{\"PeersChanged\":[{\"ID\":2,\"Endpoints\":[\"1.2.3.4\"]}]}",
		    "Endpoints[0]: bad ip:port" },
		{ "{\"PeersChanged\":[{\"ID\":2,\"Endpoints\":[\"1.2.3.4:65536\"]}]}",
		    "bad ip:port" },
		{ "{\"PeersChanged\":[{\"ID\":2,\"HomeDERP\":2147483648}]}",
		    "HomeDERP: integer 2147483648 out of range" },
		{ "{\"PeersChanged\":[{\"ID\":2,\"KeyExpiry\":\"yesterday\"}]}",
		    "KeyExpiry: bad time" },
		{ "{\"PeersChanged\":[{\"ID\":2,\"Online\":\"yes\"}]}",
		    "Online: bool expected" },
		{ "{\"PeersChanged\":[{\"ID\":2,\"Tags\":\"tag:x\"}]}",
		    "Tags: array expected" },
		{ "{\"PeersChanged\":[{\"ID\":2,\"CapMap\":{\"a\":{}}}]}",
		    "CapMap[\"a\"]: array expected" },
		{ "{\"PeersChanged\":[{\"ID\":2,\"KeySignature\":\"###\"}]}",
		    "bad base64" },
		{ "{\"PeersChanged\":[{\"ID\":2,\"Hostinfo\":[]}]}",
		    "Hostinfo: object expected" },
		{ "{\"PeersChanged\":[{\"ID\":2,\"Hostinfo\":{\"Services\":"
		    "[{\"Port\":70000}]}}]}", "Services[0]" },
		{ "{\"PeersChanged\":[{\"ID\":2,\"SelfNodeV4MasqAddrForThisPeer\":"
		    "\"1.2.3\"}]}", "bad IP address" },
		{ "{\"PeersRemoved\":[-1]}", "PeersRemoved[0]" },
		{ "{\"PeersRemoved\":[\"1\"]}", "integer expected" },
		{ "{\"PeersChangedPatch\":[null]}", "null PeerChange" },
		{ "{\"PeersChangedPatch\":[{\"Cap\":1}]}", "NodeID missing" },
		{ "{\"PeersChangedPatch\":[{\"NodeID\":2,\"Endpoints\":{}}]}",
		    "PeersChangedPatch[0].Endpoints: array expected" },
		{ "{\"OnlineChange\":{\"abc\":true}}", "bad integer key" },
		{ "{\"OnlineChange\":{\"-1\":true}}", "out of range" },
		{ "{\"PeerSeenChange\":{\"2\":1}}", "bool expected" },
		{ "{\"PeerSeenChange\":[]}", "object expected" },
		{ "{\"DERPMap\":{\"Regions\":{\"1\":[]}}}", "object expected" },
		{ "{\"DERPMap\":{\"Regions\":{\"x\":{}}}}", "bad integer key" },
		{ "{\"DERPMap\":{\"Regions\":{\"4294967296\":{}}}}", "out of range" },
		{ "{\"DERPMap\":{\"Regions\":{\"1\":{\"Nodes\":[{\"STUNPort\":"
		    "\"x\"}]}}}}", "STUNPort" },
		{ "{\"DERPMap\":{\"HomeParams\":{\"RegionScore\":{\"1\":\"x\"}}}}",
		    "number expected" },
		{ "{\"DERPMap\":{\"Regions\":{\"1\":{\"Latitude\":1e999}}}}",
		    "out of range" },
		{ "{\"PacketFilter\":{}}", "PacketFilter: array expected" },
		{ "{\"PacketFilter\":[{\"SrcIPs\":\"*\"}]}", "SrcIPs" },
		{ "{\"PacketFilter\":[{\"DstPorts\":[{\"IP\":\"*\",\"Ports\":"
		    "{\"First\":70000}}]}]}", "DstPorts[0]" },
		{ "{\"PacketFilter\":[{\"IPProto\":[\"tcp\"]}]}", "IPProto[0]" },
		{ "{\"PacketFilter\":[{\"CapGrant\":[{\"Dsts\":[\"bogus\"]}]}]}",
		    "CapGrant[0].Dsts[0]: bad IP prefix" },
		{ "{\"PacketFilters\":{\"a\":{}}}", "PacketFilters[\"a\"]" },
		{ "{\"DNSConfig\":{\"Resolvers\":\"x\"}}", "DNSConfig.Resolvers" },
		{ "{\"DNSConfig\":{\"Nameservers\":[\"1.2.3\"]}}", "bad IP address" },
		{ "{\"DNSConfig\":{\"Resolvers\":[{\"BootstrapResolution\":"
		    "[\"x\"]}]}}", "BootstrapResolution[0]" },
		{ "{\"DNSConfig\":{\"Routes\":{\"a\":{}}}}", "Routes" },
		{ "{\"UserProfiles\":[{\"ID\":-1}]}", "UserProfiles[0]" },
		{ "{\"UserProfiles\":{}}", "array expected" },
		{ "{\"Health\":\"ok\"}", "Health: array expected" },
		{ "{\"PingRequest\":{\"IP\":\"bogus\"}}", "bad IP address" },
		{ "{\"PingRequest\":{\"Payload\":\"!!!\"}}", "bad base64" },
		{ "{\"CollectServices\":\"true\"}", "bool expected" },
		{ "{\"ControlTime\":\"2025-13-01T00:00:00Z\"}", "bad time" },
		{ "{\"SSHPolicy\":[]}", "SSHPolicy: object expected" },
		{ "{\"DisplayMessages\":{\"a\":1}}", "object expected" },
		{ "{\"Debug\":{\"Exit\":1.5}}", "Debug.Exit: integer expected" },
		{ "{\"Debug\":{\"SleepSeconds\":\"1\"}}",
		    "Debug.SleepSeconds: number expected" },
		{ "{\"PingRequest\":{\"URL\":1}}", "PingRequest.URL: string" },
		{ "{\"DefaultAutoUpdate\":\"x\"}", "bool expected" },
		{ "{\"Node\":{\"ID\":1,\"Addresses\":[1]}}", "Node.Addresses[0]" },
	};
	ctrldi_map *m = map_with_peers(2);

	for (size_t i = 0; i < TK_ARRAY_LEN(t); i++) {
		ctrldi_map_info info;
		bool chg = true;

		memset(&info, 0x5a, sizeof(info));
		last_err[0] = '\0';
		CU_ASSERT(ap_info(m, t[i].json, NULL, &chg, &info) == TK_EPROTO);
		if (strstr(last_err, t[i].why) == NULL) {
			CU_FAIL("error message");
			fprintf(stderr, "case %zu %s: got \"%s\", want \"%s\"\n", i,
			    t[i].json, last_err, t[i].why);
		}
		/* out-parameters untouched */
		CU_ASSERT(((uint8_t *)&info)[0] == 0x5a);
	}
	ctrldi_map_free(m);
}

static void
test_bad_sizes(void)
{
	ctrldi_map *m = map_with_peers(1);
	size_t n = 200;
	char *big;

	/* nesting deeper than the cap, inside an ignored field */
	big = malloc(n + 64);
	strcpy(big, "{\"Unknown\":");
	for (size_t i = 0; i < 70; i++)
		strcat(big, "[");
	for (size_t i = 0; i < 70; i++)
		strcat(big, "]");
	strcat(big, "}");
	CU_ASSERT(ap(m, big, NULL, NULL) == TK_EPROTO);
	CU_ASSERT(strstr(last_err, "nests deeper") != NULL);
	free(big);
	/* 63 levels are fine */
	big = malloc(n + 64);
	strcpy(big, "{\"Unknown\":");
	for (size_t i = 0; i < 62; i++)
		strcat(big, "[");
	for (size_t i = 0; i < 62; i++)
		strcat(big, "]");
	strcat(big, "}");
	CU_ASSERT(ap(m, big, NULL, NULL) == 0);
	free(big);
	/* more than the byte limit */
	n = CTRLDI_MAP_MAX_BYTES + 1;
	big = malloc(n + 1);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	big[n] = '\0';
	CU_ASSERT(ap(m, big, NULL, NULL) == TK_EPROTO);
	CU_ASSERT(strstr(last_err, "exceeds the limit") != NULL);
	free(big);
	/* more values than the limit */
	n = 2 * (size_t)CTRLDI_MAP_MAX_VALUES + 64;
	big = malloc(n);
	{
		char *p = big;

		p += sprintf(p, "{\"Unknown\":[");
		for (size_t i = 0; i < CTRLDI_MAP_MAX_VALUES; i++) {
			*p++ = '0';
			*p++ = ',';
		}
		strcpy(p, "0]}");
	}
	CU_ASSERT(ap(m, big, NULL, NULL) == TK_EPROTO);
	CU_ASSERT(strstr(last_err, "JSON values") != NULL);
	free(big);
	ctrldi_map_free(m);
}

/*
 * A 100,000-peer tailnet: Go's client takes its ~100 MB MapResponse, so
 * must the map state (the caps in mapstate.h are sized for it).  Peers as
 * the hosted service sends them, ~1 KB and ~80 JSON values each.
 */
static void
test_100k_peers(void)
{
	const int n = 100000;
	size_t cap = 4096 + (size_t)n * 1200;
	char *json = malloc(cap), *p = json, err[256] = "";
	ctrldi_map *m = NULL;
	tk_buf delta;
	bool chg = false;

	CU_ASSERT_PTR_NOT_NULL_FATAL(json);
	p += sprintf(p, "{\"Node\":%s,\"Peers\":[", SELF(""));
	for (int i = 0; i < n; i++) {
		int id = 2 + i, hi = id >> 8 & 0xff, lo = id & 0xff;
		p += sprintf(p, "%s{\"ID\":%d,\"StableID\":\"n%08xCNTRL\","
		    "\"Name\":\"host-%d.tail1234.ts.net.\",\"User\":%d,"
		    "\"Key\":\"nodekey:%064x\",\"KeyExpiry\":"
		    "\"2026-09-01T10:00:00Z\",\"Machine\":\"mkey:%064x\","
		    "\"DiscoKey\":\"discokey:%064x\",\"Addresses\":"
		    "[\"100.64.%d.%d/32\",\"fd7a:115c:a1e0::%x:%x/128\"],"
		    "\"AllowedIPs\":[\"100.64.%d.%d/32\","
		    "\"fd7a:115c:a1e0::%x:%x/128\"],\"Endpoints\":"
		    "[\"198.51.%d.%d:41641\",\"[2001:db8:%x::%x]:41641\","
		    "\"10.%d.%d.7:41641\"],\"HomeDERP\":%d,\"Hostinfo\":"
		    "{\"IPNVersion\":\"1.102.3-t1234\",\"OS\":\"linux\","
		    "\"Hostname\":\"host-%d\",\"Services\":[{\"Proto\":"
		    "\"peerapi4\",\"Port\":%d},{\"Proto\":\"peerapi6\","
		    "\"Port\":%d}]},\"Created\":\"2025-03-04T05:06:07Z\","
		    "\"Cap\":142,\"Tags\":[\"tag:server\"],\"LastSeen\":"
		    "\"2026-01-02T03:04:05Z\",\"Online\":true,"
		    "\"MachineAuthorized\":true,\"CapMap\":"
		    "{\"https://tailscale.com/cap/file-sharing\":null}}",
		    i ? "," : "", id, (unsigned)id * 2654435761u, id, 100 + id % 50,
		    id, id + 1, id + 2, hi, lo, hi, lo, hi, lo, hi, lo, hi, lo, hi,
		    lo, hi, lo, 1 + id % 20, id, 40000 + id % 20000,
		    40000 + id % 20000);
	}
	p += sprintf(p, "]}");
	CU_ASSERT_FATAL((size_t)(p - json) < cap);
	printf("[%.1f MB] ", (double)(p - json) / 1e6);
	CU_ASSERT((size_t)(p - json) > 90u * 1000 * 1000);
	CU_ASSERT_FATAL(ctrldi_map_new(&m) == 0);
	tk_buf_init(&delta);
	int rv = ctrldi_map_apply(m, json, (size_t)(p - json), &delta, &chg, NULL,
	    err, sizeof(err));
	if (rv != 0)
		fprintf(stderr, "\n  refused: %s", err);
	CU_ASSERT_EQUAL(rv, 0);
	CU_ASSERT(chg);
	CU_ASSERT_EQUAL(ctrldi_map_peer_count(m), (size_t)n);
	tk_buf_fini(&delta);
	ctrldi_map_free(m);
	free(json);
}

/* Large but legal shapes stay linear (no quadratic merge or sort). */
static void
test_big_shapes(void)
{
	ctrldi_map *m = map_with_peers(0);
	size_t cap = 4u << 20;
	char *json = malloc(cap), *p;
	struct timespec t0, t1;
	Netmap *nm;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int round = 0; round < 2; round++) {
		p = json;
		p += sprintf(p, "{\"PacketFilters\":{");
		for (int i = 0; i < 40000; i++)
			p += sprintf(p, "%s\"c%06d\":[]", i ? "," : "",
			    2 * i + round);
		strcpy(p, "}}");
		{
			tk_buf d;
			bool chg;

			tk_buf_init(&d);
			CU_ASSERT_FATAL(ctrldi_map_apply(m, json, strlen(json), &d,
			    &chg, NULL, NULL, 0) == 0);
			tk_buf_fini(&d);
		}
	}
	p = json;
	p += sprintf(p, "{\"Node\":{\"ID\":1,\"Capabilities\":[");
	for (int i = 0; i < 40000; i++)
		p += sprintf(p, "%s\"cap%d\"", i ? "," : "", (i * 7919) % 40000);
	strcpy(p, "]}}");
	{
		tk_buf d;
		bool chg;

		tk_buf_init(&d);
		CU_ASSERT_FATAL(ctrldi_map_apply(m, json, strlen(json), &d, &chg,
		    NULL, NULL, 0) == 0);
		tk_buf_fini(&d);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CU_ASSERT((t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000 < 5000);
	nm = snap(m);
	CU_ASSERT(nm->self->n_cap_map == 40000);
	for (size_t i = 1; i < nm->self->n_cap_map; i++)
		CU_ASSERT(strcmp(nm->self->cap_map[i - 1]->name,
		    nm->self->cap_map[i]->name) < 0);
	free_nm(nm);
	free(json);
	ctrldi_map_free(m);
}

static const tk_test_case bad_cases[] = {
	TK_TEST(test_bad_input),
	TK_TEST(test_bad_sizes),
	TK_TEST(test_big_shapes),
	TK_TEST(test_100k_peers),
	TK_TEST_END,
};

/* ---------------------------------------------------------------------
 * Allocation failures: every fault point of every step
 * ------------------------------------------------------------------ */

static bool
injecting(void)
{
	bool on;

	tk_fault_arm(1);
	on = tk_fault_hit("probe");
	tk_fault_disarm();
	return on;
}

/* A sequence touching every path: full map, deltas, joins, filters... */
static const char *fault_msgs[] = {
	NULL, /* built: Node + 3 peers + everything */
	"{\"PeersChangedPatch\":[{\"NodeID\":3,\"Endpoints\":[\"192.0.2.9:9\"],"
	"\"CapMap\":{\"x\":[1]},\"KeySignature\":\"AQID\"}],\"OnlineChange\":"
	"{\"2\":true},\"PeerSeenChange\":{\"4\":true},\"PeersRemoved\":[2]}",
	NULL, /* PeersChanged: a new one and a patchified one */
	"{\"DERPMap\":{\"HomeParams\":{\"RegionScore\":{\"1\":1}}},"
	"\"PacketFilters\":{\"x\":[{\"SrcIPs\":[\"*\"]}],\"base\":null},"
	"\"DNSConfig\":{\"Routes\":{\"a\":null,\"b\":[{\"Addr\":\"1.1.1.1\"}]}},"
	"\"Health\":[],\"UserProfiles\":[{\"ID\":1,\"LoginName\":\"z\"}]}",
	"{\"KeepAlive\":true,\"PingRequest\":{\"URL\":\"u\",\"Payload\":\"AA==\"},"
	"\"PopBrowserURL\":\"p\"}",
	NULL, /* 80 joins: the merge path */
	NULL, /* full Peers again */
};

static const char *
fault_msg(int i)
{
	static char *built[8];
	char *p;

	if (fault_msgs[i] != NULL)
		return fault_msgs[i];
	if (built[i] != NULL)
		return built[i];
	p = built[i] = malloc(256 * 1024);
	switch (i) {
	case 0:
	case 6:
		p += sprintf(p, "{\"Node\":%s,\"Peers\":[%s,%s,%s],\"DERPMap\":"
		    "{\"Regions\":{\"1\":" REGION(1, "a") "}},\"PacketFilter\":"
		    "[" RULE("*") "],\"DNSConfig\":{\"Domains\":[\"d\"]},"
		    "\"Domain\":\"d\",\"Health\":[\"h\"],\"UserProfiles\":"
		    "[{\"ID\":1}],\"CollectServices\":true,\"ControlTime\":"
		    "\"2025-01-01T00:00:00Z\",\"PingRequest\":{\"URL\":\"p%d\"}}",
		    SELF(",\"Capabilities\":[\"c\"]"), NODE(2, ""),
		    NODE(3, ",\"CapMap\":{\"a\":null}"), NODE(4, ""), i);
		break;
	case 2:
		p += sprintf(p, "{\"PeersChanged\":[%s,%s]}", NODE(9, ""),
		    NODE(3, ",\"Endpoints\":[]"));
		break;
	case 5:
		p += sprintf(p, "{\"PeersChanged\":[");
		for (int k = 0; k < 80; k++)
			p += sprintf(p, "%s%s", k ? "," : "", NODE(100 + k, ""));
		strcpy(p, "]}");
		break;
	}
	return built[i];
}

static void
test_fault_apply(void)
{
	int64_t live0;
	int fired_total = 0;

	if (!injecting()) {
		tk_test_skip("fault injection not compiled in");
		return;
	}
	live0 = live_allocs();
	for (size_t step = 0; step < TK_ARRAY_LEN(fault_msgs); step++) {
		for (unsigned long k = 1;; k++) {
			ctrldi_map *m = new_map();
			tk_buf before, after, delta;
			ctrldi_map_info info;
			const char *j = fault_msg((int)step);
			bool chg, fired;
			int rv;

			for (size_t s = 0; s < step; s++) {
				const char *js = fault_msg((int)s);

				tk_buf_init(&delta);
				CU_ASSERT_FATAL(ctrldi_map_apply(m, js, strlen(js),
				    &delta, &chg, NULL, NULL, 0) == 0);
				tk_buf_fini(&delta);
			}
			tk_buf_init(&before);
			tk_buf_init(&after);
			tk_buf_init(&delta);
			CU_ASSERT_FATAL(ctrldi_map_snapshot(m, &before) == 0);
			tk_fault_arm(k);
			rv = ctrldi_map_apply(m, j, strlen(j), &delta, &chg, &info,
			    NULL, 0);
			fired = tk_fault_fired();
			tk_fault_disarm();
			if (fired) {
				fired_total++;
				CU_ASSERT(rv == TK_ENOMEM);
				CU_ASSERT(delta.len == 0);
				CU_ASSERT_FATAL(ctrldi_map_snapshot(m, &after) == 0);
				CU_ASSERT(buf_eq(&before, &after));
				/* and the map still works */
				tk_buf_reset(&delta);
				CU_ASSERT(ctrldi_map_apply(m, j, strlen(j), &delta,
				    &chg, &info, NULL, 0) == 0);
			} else {
				CU_ASSERT(rv == 0);
			}
			ctrldi_map_info_fini(&info);
			tk_buf_fini(&before);
			tk_buf_fini(&after);
			tk_buf_fini(&delta);
			ctrldi_map_free(m);
			CU_ASSERT(live_allocs() == live0);
			if (live_allocs() != live0)
				fprintf(stderr, "step %zu fault %lu: %lld live\n",
				    step, k, (long long)(live_allocs() - live0));
			if (!fired)
				break;
		}
	}
	CU_ASSERT(fired_total > 100);
}

static void
test_fault_restore_snapshot(void)
{
	ctrldi_map *m;
	tk_buf s;
	int64_t live0;
	bool chg;

	if (!injecting()) {
		tk_test_skip("fault injection not compiled in");
		return;
	}
	m = new_map();
	tk_buf_init(&s);
	for (int i = 0; i < 4; i++) {
		tk_buf d;

		tk_buf_init(&d);
		CU_ASSERT_FATAL(ctrldi_map_apply(m, fault_msg(i),
		    strlen(fault_msg(i)), &d, &chg, NULL, NULL, 0) == 0);
		tk_buf_fini(&d);
	}
	CU_ASSERT_FATAL(ctrldi_map_snapshot(m, &s) == 0);
	live0 = live_allocs();
	for (unsigned long k = 1;; k++) {
		ctrldi_map *r = NULL;
		tk_buf a, b;
		bool fired;
		int rv;

		tk_buf_init(&a);
		tk_buf_init(&b);
		tk_fault_arm(k);
		rv = ctrldi_map_new(&r);
		if (rv == 0)
			rv = ctrldi_map_restore(r, s.data, s.len);
		if (rv == 0)
			rv = ctrldi_map_snapshot(r, &a);
		fired = tk_fault_fired();
		tk_fault_disarm();
		if (fired) {
			CU_ASSERT(rv == TK_ENOMEM);
			if (r != NULL) { /* the map is still the empty one */
				CU_ASSERT(ctrldi_map_snapshot(r, &b) == 0);
				CU_ASSERT(b.len == 0 || buf_eq(&b, &s));
			}
		} else {
			CU_ASSERT(rv == 0 && buf_eq(&a, &s));
		}
		ctrldi_map_free(r);
		tk_buf_fini(&a);
		tk_buf_fini(&b);
		CU_ASSERT(live_allocs() == live0);
		if (!fired)
			break;
	}
	tk_buf_fini(&s);
	ctrldi_map_free(m);
}

static const tk_test_case fault_cases[] = {
	TK_TEST(test_fault_apply),
	TK_TEST(test_fault_restore_snapshot),
	TK_TEST_END,
};

void register_mapstate(void);

void
register_mapstate(void)
{
	tk_fake_clock_init(&fclock, 1000000000ull, 1700000000ull * 1000000000ull);
	tk_test_suite("ctrld_map_first", first_cases);
	tk_test_suite("ctrld_map_nodes", node_cases);
	tk_test_suite("ctrld_map_peers", peer_cases);
	tk_test_suite("ctrld_map_derp_filter", derp_filter_cases);
	tk_test_suite("ctrld_map_misc", misc_cases);
	tk_test_suite("ctrld_map_stream", stream_cases);
	tk_test_suite("ctrld_map_bad", bad_cases);
	tk_test_suite("ctrld_map_fault", fault_cases);
}
