/*
 * The bus contract of ctrld's hand encoders (tailcfg_decode.c, mapstate.c):
 * every tk.bus.v1 field they write carries the value of the tailcfg JSON
 * field it mirrors.
 *
 * The other map state tests cannot see a hand encoder that writes a value
 * under the wrong field number of the same type (peerapi4_port's value as
 * peerapi6_port, LastSeen as created_unix): the bytes still unpack,
 * protobuf-c re-packs them to the same bytes, and snapshot, delta and
 * restore agree with each other.  So here the JSON is read a second,
 * independent way (jansson, tk_json, tk_wg's parseIPSet) and compared with
 * protobuf-c's unpacking of the snapshot, field by field, by NAME (the
 * members protoc-c generated from the .proto), never by number.
 *
 * contract_check() runs after every successful apply of the map state
 * tests (ap_info) and over the fuzz corpus of fuzz_ctrld_map.  It checks
 * what one message determines on its own: Node (self), Peers, PeersChanged
 * peers no later section of the message touches (less the fields
 * patchify keeps from the old record), DERPMap.Regions and RegionScore,
 * the base PacketFilter when it is the whole filter, DNSConfig,
 * UserProfiles, Health, Domain and CollectServices.
 */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tk_test.h"
#include "tk/clock.h"
#include "tk/enc.h"
#include "tk/json.h"
#include "tk/keys.h"
#include "tk/mem.h"
#include "tk/wg_filter.h"
#include "tk/bus/v1/ctrl.pb-c.h"
#include "mapstate.h"
#include "test_contract.h"

typedef Tk__Bus__V1__Node Node;
typedef Tk__Bus__V1__Prefix Prefix;

static char where[512];		/* "Peers[3].Hostinfo" while comparing */
static const Tk__Bus__V1__Netmap *prev; /* the snapshot before the apply */
static unsigned long checked;	/* fields compared, for the corpus test */

static void
fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
fail(const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "contract: %s: %s\n", where, msg);
	CU_FAIL("hand-encoded field differs from its JSON source");
}

#define EXPECT(cond, ...)                 \
	do {                              \
		checked++;                \
		if (!(cond))              \
			fail(__VA_ARGS__); \
	} while (0)

/* ---------------------------------------------------------------------
 * JSON, read the way Go's encoding/json v1 fills a struct
 * ------------------------------------------------------------------ */

/* Member k: the last key equal to k ignoring ASCII case; null = absent. */
static json_t *
jget(const json_t *o, const char *k)
{
	const char *key;
	json_t *v, *found = NULL;

	if (!json_is_object(o))
		return NULL;
	json_object_foreach ((json_t *)o, key, v)
		if (strcasecmp(key, k) == 0)
			found = v;
	return found != NULL && !json_is_null(found) ? found : NULL;
}

static const char *
jstr(const json_t *o, const char *k)
{
	const json_t *v = jget(o, k);

	return json_is_string(v) ? json_string_value(v) : "";
}

static int64_t
jint(const json_t *o, const char *k)
{
	const json_t *v = jget(o, k);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static double
jdbl(const json_t *o, const char *k)
{
	const json_t *v = jget(o, k);

	return json_is_number(v) ? json_number_value(v) : 0;
}

static bool
jbool(const json_t *o, const char *k)
{
	return json_is_true(jget(o, k));
}

static size_t
jlen(const json_t *a)
{
	return json_is_array(a) ? json_array_size(a) : 0;
}

/* An array element's string; null (or not a string) = "". */
static const char *
jstr_at(const json_t *a, size_t i)
{
	const json_t *v = json_array_get(a, i);

	return json_is_string(v) ? json_string_value(v) : "";
}

/* Time as the bus carries it: absent when null or Go's zero time. */
static bool
jtime(const json_t *o, const char *k, int64_t *sec)
{
	const char *s;
	tk_json_time t;

	if (!json_is_string(jget(o, k)))
		return false;
	s = jstr(o, k);
	if (tk_json_time_parse(&t, s, strlen(s)) != 0 || t.zero)
		return false;
	*sec = t.sec;
	return true;
}

static void
path(size_t keep, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* where = where[0..keep) + fmt */
static void
path(size_t keep, const char *fmt, ...)
{
	va_list ap;

	where[keep] = '\0';
	va_start(ap, fmt);
	vsnprintf(where + keep, sizeof(where) - keep, fmt, ap);
	va_end(ap);
}

/* ---------------------------------------------------------------------
 * Values
 * ------------------------------------------------------------------ */

static bool
opt_str_eq(bool has, const char *pb, const char *json)
{
	/* presence follows the value: "" is absent on the bus */
	return json[0] == '\0' ? (!has || pb == NULL || pb[0] == '\0') :
	    pb != NULL && strcmp(pb, json) == 0;
}

#define STR(pbmsg, field, json, key)                                      \
	EXPECT(opt_str_eq(true, (pbmsg)->field, jstr(json, key)),         \
	    #field " \"%s\", JSON " key " \"%s\"",                        \
	    (pbmsg)->field ? (pbmsg)->field : "(absent)", jstr(json, key))

#define INT(pbmsg, field, json, key)                                       \
	EXPECT((pbmsg)->field == jint(json, key), #field " %lld, JSON " key \
	    " %lld", (long long)(pbmsg)->field, (long long)jint(json, key))

#define BOOL(pbmsg, field, json, key)                                \
	EXPECT((pbmsg)->field == jbool(json, key), #field " %d, JSON " \
	    key " %d", (int)(pbmsg)->field, (int)jbool(json, key))

static bool
addr_eq(const ProtobufCBinaryData *b, const tk_ipaddr *a)
{
	size_t n = a->family == TK_AF_INET ? 4 : 16;

	return b->len == n && memcmp(b->data, a->addr, n) == 0;
}

static void
prefixes(Prefix *const *v, size_t n, const json_t *a, const char *what)
{
	size_t keep = strlen(where);

	EXPECT(n == jlen(a), "%s: %zu prefixes, JSON %zu", what, n, jlen(a));
	for (size_t i = 0; i < n && i < jlen(a); i++) {
		const char *s = jstr_at(a, i);
		tk_ipprefix x;

		path(keep, ".%s[%zu]", what, i);
		if (tk_ipprefix_parse(&x, s, strlen(s)) != 0)
			continue; /* (not reached: the apply refuses it) */
		EXPECT(addr_eq(&v[i]->addr, &x.ip) && v[i]->bits == x.bits,
		    "prefix differs from \"%s\"", s);
	}
	where[keep] = '\0';
}

static void
key_field(bool has, const ProtobufCBinaryData *b, const json_t *o,
    const char *k, const char *prefix)
{
	const char *s = jstr(o, k);
	uint8_t key[TK_KEY_LEN];
	bool want = s[0] != '\0' &&
	    tk_key_parse(key, prefix, s, strlen(s)) == 0 && !tk_key_is_zero(key);

	EXPECT(has == want && (!want || (b->len == TK_KEY_LEN &&
	    memcmp(b->data, key, TK_KEY_LEN) == 0)), "%s differs from JSON",
	    k);
}

static void
time_field(bool has, int64_t v, const json_t *o, const char *k)
{
	int64_t sec = 0;
	bool want = jtime(o, k, &sec);

	EXPECT(has == want && (!want || v == sec),
	    "%s: bus %d/%lld, JSON %d/%lld", k, has, (long long)v, want,
	    (long long)sec);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ---------------------------------------------------------------------
 * Node
 * ------------------------------------------------------------------ */

/* map.go upgradeNode: a legacy DERP "127.3.3.40:N" when HomeDERP is 0. */
static int64_t
home_derp(const json_t *o)
{
	const char *s = jstr(o, "DERP"), *colon = strrchr(s, ':');
	char host[64], *end;
	long v;

	if (jint(o, "HomeDERP") != 0)
		return jint(o, "HomeDERP");
	if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
		return 0;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	if (strcmp(host, "127.3.3.40") != 0 &&
	    strcmp(host, "[127.3.3.40]") != 0)
		return 0;
	/* strconv.Atoi: optional sign, then only digits */
	if (colon[1] == '\0' || strspn(colon + 1 + (colon[1] == '+' ||
	    colon[1] == '-'), "0123456789") !=
	    strlen(colon + 1 + (colon[1] == '+' || colon[1] == '-')))
		return 0;
	v = strtol(colon + 1, &end, 10);
	return v;
}

/* CapMap names and values; self's legacy Capabilities were folded in. */
static void
cap_map(const Node *n, const json_t *o, bool self)
{
	const json_t *cm = jget(o, "CapMap"), *caps = jget(o, "Capabilities");
	size_t keep = strlen(where), njson = json_is_object(cm) ?
	    json_object_size(cm) : 0, found = 0;

	for (size_t i = 0; i < n->n_cap_map; i++) {
		const Tk__Bus__V1__CapMapEntry *e = n->cap_map[i];
		const json_t *vals = json_is_object(cm) ?
		    json_object_get(cm, e->name) : NULL;
		bool legacy = false;

		path(keep, ".CapMap[\"%s\"]", e->name);
		for (size_t j = 0; self && j < jlen(caps); j++)
			legacy |= strcmp(jstr_at(caps, j), e->name) == 0;
		if (vals == NULL) {
			EXPECT(legacy && e->n_json_values == 0,
			    "cap_map entry not in the JSON");
			continue;
		}
		found++;
		EXPECT(e->n_json_values == jlen(vals), "%zu values, JSON %zu",
		    e->n_json_values, jlen(vals));
		for (size_t j = 0; j < e->n_json_values && j < jlen(vals); j++) {
			json_t *v = json_loads(e->json_values[j],
			    JSON_DECODE_ANY, NULL);

			EXPECT(v != NULL && json_equal(v,
			    json_array_get(vals, j)), "value %zu differs", j);
			json_decref(v);
		}
	}
	where[keep] = '\0';
	EXPECT(found == njson, "%zu CapMap entries, JSON %zu", found, njson);
}

/* Node.capabilities: Capabilities plus CapMap keys, sorted, unique. */
static void
capabilities(const Node *n, const json_t *o)
{
	const json_t *cm = jget(o, "CapMap"), *caps = jget(o, "Capabilities");
	size_t nv = 0, w = 0;
	const char **v = calloc(jlen(caps) + (json_is_object(cm) ?
	    json_object_size(cm) : 0) + 1, sizeof(*v));
	const char *key;
	json_t *val;

	CU_ASSERT_FATAL(v != NULL);
	for (size_t i = 0; i < jlen(caps); i++)
		v[nv++] = jstr_at(caps, i);
	if (json_is_object(cm))
		json_object_foreach ((json_t *)cm, key, val)
			v[nv++] = key;
	qsort(v, nv, sizeof(*v), cmp_str);
	for (size_t i = 0; i < nv; i++)
		if (w == 0 || strcmp(v[w - 1], v[i]) != 0)
			v[w++] = v[i];
	EXPECT(n->n_capabilities == w, "%zu capabilities, JSON %zu",
	    n->n_capabilities, w);
	for (size_t i = 0; i < w && i < n->n_capabilities; i++)
		EXPECT(strcmp(n->capabilities[i], v[i]) == 0,
		    "capabilities[%zu] \"%s\", JSON \"%s\"", i,
		    n->capabilities[i], v[i]);
	free(v);
}

/* peerapi4/6: Hostinfo.Services, the last of each proto wins. */
static uint32_t
peerapi(const json_t *hi, const char *proto)
{
	const json_t *sv = jget(hi, "Services");
	uint32_t port = 0;

	for (size_t i = 0; i < jlen(sv); i++) {
		const json_t *s = json_array_get(sv, i);

		if (json_is_object(s) && strcmp(jstr(s, "Proto"), proto) == 0)
			port = (uint32_t)jint(s, "Port");
	}
	return port;
}

static void
masq(bool has, const ProtobufCBinaryData *b, const json_t *o, const char *k)
{
	const char *s = jstr(o, k);
	tk_ipaddr a;
	bool want = s[0] != '\0' && tk_ipaddr_parse(&a, s, strlen(s)) == 0;

	EXPECT(has == want && (!want || addr_eq(b, &a)), "%s differs", k);
}

static const Node *peer_by_id(const Tk__Bus__V1__Netmap *nm, int64_t id);

/* map.go removeUnwantedDiscoUpdatesFromFullNetmapUpdate: an offline peer
 * whose LastSeen does not move forward keeps its old disco key and
 * LastSeen.  True if n did, so both come from the old record. */
static bool
disco_kept(const Node *n, const json_t *o)
{
	const Node *old = prev != NULL ? peer_by_id(prev, n->id) : NULL;

	return old != NULL && old->has_disco_key && n->has_disco_key &&
	    n->disco_key.len == old->disco_key.len &&
	    memcmp(n->disco_key.data, old->disco_key.data,
		n->disco_key.len) == 0 &&
	    n->has_last_seen_unix == old->has_last_seen_unix &&
	    n->last_seen_unix == old->last_seen_unix && !jbool(o, "Online");
}

/* patch: a PeersChanged entry that may have become a patch of a known
 * peer (map.go patchifyPeersChanged); fields a patch keeps from the old
 * record are not compared: DiscoKey, Online, LastSeen, a zero HomeDERP or
 * Cap, and Endpoints, KeySignature, CapMap when the entry leaves them out
 * (peerChangeDiff clones nil into "no change"). */
/* The map's clock corrected by ControlTime, for local key expiry. */
static int64_t control_now_ms;

static void
node_check(const Node *n, const json_t *o, bool self, bool patch)
{
	const json_t *hi = jget(o, "Hostinfo"), *allowed = jget(o, "AllowedIPs");
	const json_t *eps = jget(o, "Endpoints");
	size_t keep = strlen(where);
	int64_t kexp = 0;
	/* a peer past its KeyExpiry is expired locally (flagExpiredPeers):
	 * Expired, no endpoints, no home DERP */
	bool lexp = !self && !jbool(o, "Expired") &&
	    jtime(o, "KeyExpiry", &kexp) && kexp * 1000 <= control_now_ms &&
	    control_now_ms >= 1673373066 * INT64_C(1000);

	if (lexp)
		eps = NULL;
	const char *ks;

	INT(n, id, o, "ID");
	STR(n, stable_id, o, "StableID");
	STR(n, name, o, "Name");
	INT(n, user, o, "User");
	key_field(n->has_key, &n->key, o, "Key", TK_PREFIX_NODE_PUB);
	time_field(n->has_key_expiry_unix, n->key_expiry_unix, o, "KeyExpiry");
	key_field(n->has_machine, &n->machine, o, "Machine",
	    TK_PREFIX_MACHINE_PUB);
	bool kept = !patch && !self && disco_kept(n, o);
	if (!patch && !kept)
		key_field(n->has_disco_key, &n->disco_key, o, "DiscoKey",
		    TK_PREFIX_DISCO_PUB);
	prefixes(n->addresses, n->n_addresses, jget(o, "Addresses"),
	    "addresses");
	/* upgradeNode: null AllowedIPs and UnsignedPeerAPIOnly -> Addresses */
	if (allowed == NULL || jbool(o, "UnsignedPeerAPIOnly"))
		allowed = jget(o, "Addresses");
	prefixes(n->allowed_ips, n->n_allowed_ips, allowed, "allowed_ips");
	if (patch && eps == NULL && !lexp)
		eps = NULL; /* possibly the old ones: not compared */
	else
		EXPECT(n->n_endpoints == jlen(eps), "%zu endpoints, JSON %zu",
		    n->n_endpoints, jlen(eps));
	for (size_t i = 0; i < n->n_endpoints && i < jlen(eps); i++) {
		const char *s = jstr_at(eps, i);
		tk_ipport x;

		if (tk_ipport_parse(&x, s, strlen(s)) != 0)
			continue;
		path(keep, ".Endpoints[%zu]", i);
		EXPECT(addr_eq(&n->endpoints[i]->addr, &x.ip) &&
		    n->endpoints[i]->port == x.port, "differs from \"%s\"", s);
	}
	where[keep] = '\0';
	if (!patch) {
		EXPECT(n->home_derp == (lexp ? 0 : home_derp(o)),
		    "home_derp %d, JSON %lld", n->home_derp,
		    (long long)home_derp(o));
		EXPECT(n->has_online == (jget(o, "Online") != NULL) &&
		    n->online == jbool(o, "Online"), "online differs");
		if (!kept)
			time_field(n->has_last_seen_unix, n->last_seen_unix, o,
			    "LastSeen");
		INT(n, cap, o, "Cap");
	}
	BOOL(n, machine_authorized, o, "MachineAuthorized");
	EXPECT(n->expired == (jbool(o, "Expired") || lexp),
	    "expired %d, JSON Expired %d", (int)n->expired,
	    (int)jbool(o, "Expired"));
	EXPECT(n->n_tags == jlen(jget(o, "Tags")), "tag count differs");
	for (size_t i = 0; i < n->n_tags && i < jlen(jget(o, "Tags")); i++)
		EXPECT(strcmp(n->tags[i], jstr_at(jget(o, "Tags"), i)) == 0,
		    "tags[%zu] \"%s\"", i, n->tags[i]);
	prefixes(n->primary_routes, n->n_primary_routes,
	    jget(o, "PrimaryRoutes"), "primary_routes");
	if (!patch || jget(o, "CapMap") != NULL) {
		capabilities(n, o);
		cap_map(n, o, self);
	}
	BOOL(n, is_wireguard_only, o, "IsWireGuardOnly");
	BOOL(n, is_jailed, o, "IsJailed");
	BOOL(n, unsigned_peer_api_only, o, "UnsignedPeerAPIOnly");
	masq(n->has_self_node_v4_masq_addr, &n->self_node_v4_masq_addr, o,
	    "SelfNodeV4MasqAddrForThisPeer");
	masq(n->has_self_node_v6_masq_addr, &n->self_node_v6_masq_addr, o,
	    "SelfNodeV6MasqAddrForThisPeer");
	STR(n, hostname, hi, "Hostname");
	STR(n, os, hi, "OS");
	EXPECT(n->peerapi4_port == peerapi(hi, "peerapi4"),
	    "peerapi4_port %u, JSON %u", n->peerapi4_port,
	    peerapi(hi, "peerapi4"));
	EXPECT(n->peerapi6_port == peerapi(hi, "peerapi6"),
	    "peerapi6_port %u, JSON %u", n->peerapi6_port,
	    peerapi(hi, "peerapi6"));
	time_field(n->has_created_unix, n->created_unix, o, "Created");
	ks = jstr(o, "KeySignature");
	if (!patch || jget(o, "KeySignature") != NULL) {
		uint8_t sig[4096];
		size_t sl = 0;
		bool want = ks[0] != '\0' && tk_base64_decode(sig, sizeof(sig),
		    &sl, ks, strlen(ks)) == 0;

		EXPECT(n->has_key_signature == want && (!want ||
		    (n->key_signature.len == sl &&
			memcmp(n->key_signature.data, sig, sl) == 0)),
		    "key_signature differs");
	}
}

static const Node *
peer_by_id(const Tk__Bus__V1__Netmap *nm, int64_t id)
{
	size_t lo = 0, hi = nm->n_peers;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (nm->peers[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < nm->n_peers && nm->peers[lo]->id == id ? nm->peers[lo] :
							     NULL;
}

/* How often id appears in a: objects' `key` members, or bare ids. */
static size_t
id_count(const json_t *a, int64_t id, const char *key)
{
	size_t c = 0;

	for (size_t i = 0; i < jlen(a); i++) {
		const json_t *v = json_array_get(a, i);

		if (key != NULL)
			c += json_is_object(v) && jint(v, key) == id;
		else
			c += json_is_integer(v) &&
			    (int64_t)json_integer_value(v) == id;
	}
	return c;
}

/* map key -> int64 ids of OnlineChange / PeerSeenChange */
static bool
in_idmap(const json_t *o, int64_t id)
{
	char k[32];

	snprintf(k, sizeof(k), "%lld", (long long)id);
	return json_is_object(o) && json_object_get(o, k) != NULL;
}

static void
peers_check(const Tk__Bus__V1__Netmap *nm, const json_t *msg)
{
	const json_t *peers = jget(msg, "Peers");
	const json_t *chg = jget(msg, "PeersChanged");
	bool full = jlen(peers) > 0;
	const json_t *a = full ? peers : chg;

	for (size_t i = 0; i < jlen(a); i++) {
		const json_t *o = json_array_get(a, i);
		int64_t id = jint(o, "ID");
		const Node *n;

		/* one record per id, and (PeersChanged) nothing later in
		 * the message changes it */
		if (!json_is_object(o) || id_count(a, id, "ID") != 1)
			continue;
		if (!full &&
		    (id_count(jget(msg, "PeersRemoved"), id, NULL) ||
			id_count(jget(msg, "PeersChangedPatch"), id, "NodeID") ||
			in_idmap(jget(msg, "OnlineChange"), id) ||
			in_idmap(jget(msg, "PeerSeenChange"), id)))
			continue;
		path(0, "%s[%zu] (ID %lld)", full ? "Peers" : "PeersChanged", i,
		    (long long)id);
		n = peer_by_id(nm, id);
		EXPECT(n != NULL, "peer missing from the netmap");
		if (n != NULL)
			node_check(n, o, false, !full);
	}
}

/* ---------------------------------------------------------------------
 * DERPMap
 * ------------------------------------------------------------------ */

static void
derp_node_check(const Tk__Bus__V1__DERPNode *d, const json_t *o)
{
	STR(d, name, o, "Name");
	INT(d, region_id, o, "RegionID");
	STR(d, host_name, o, "HostName");
	STR(d, cert_name, o, "CertName");
	STR(d, ipv4, o, "IPv4");
	STR(d, ipv6, o, "IPv6");
	INT(d, stun_port, o, "STUNPort");
	BOOL(d, stun_only, o, "STUNOnly");
	INT(d, derp_port, o, "DERPPort");
	BOOL(d, insecure_for_tests, o, "InsecureForTests");
	STR(d, stun_test_ip, o, "STUNTestIP");
	BOOL(d, can_port80, o, "CanPort80");
}

static void
region_check(const Tk__Bus__V1__DERPRegion *r, int64_t id, const json_t *o)
{
	const json_t *nodes = jget(o, "Nodes");
	size_t keep = strlen(where), k = 0;

	EXPECT(r->region_id == id, "region_id %d, map key %lld", r->region_id,
	    (long long)id);
	STR(r, region_code, o, "RegionCode");
	STR(r, region_name, o, "RegionName");
	EXPECT(r->latitude == jdbl(o, "Latitude"), "latitude differs");
	EXPECT(r->longitude == jdbl(o, "Longitude"), "longitude differs");
	BOOL(r, avoid, o, "Avoid");
	BOOL(r, no_measure_no_home, o, "NoMeasureNoHome");
	for (size_t i = 0; i < jlen(nodes); i++) {
		const json_t *n = json_array_get(nodes, i);

		if (!json_is_object(n))
			continue; /* nil *DERPNode: dropped */
		path(keep, ".Nodes[%zu]", i);
		EXPECT(k < r->n_nodes, "node missing");
		if (k < r->n_nodes)
			derp_node_check(r->nodes[k], n);
		k++;
	}
	where[keep] = '\0';
	EXPECT(k == r->n_nodes, "%zu nodes, JSON %zu", r->n_nodes, k);
}

typedef struct keyed {
	int64_t id;
	const json_t *v;
	size_t order;
} keyed;

static int
keyed_cmp(const void *a, const void *b)
{
	const keyed *x = a, *y = b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* A JSON object keyed by decimal ids, sorted by id (last duplicate wins:
 * Go's map), values null dropped when drop_null; NULL if a key is odd. */
static keyed *
by_id(const json_t *o, size_t *n, bool drop_null)
{
	keyed *v = calloc(json_object_size(o) + 1, sizeof(*v));
	const char *key;
	json_t *val;
	size_t k = 0, w = 0;

	CU_ASSERT_FATAL(v != NULL);
	json_object_foreach ((json_t *)o, key, val) {
		char *end;
		long long id = strtoll(key, &end, 10);

		if (*key == '\0' || *end != '\0') {
			free(v);
			return NULL;
		}
		v[k] = (keyed){ id, val, k };
		k++;
	}
	qsort(v, k, sizeof(*v), keyed_cmp);
	for (size_t i = 0; i < k; i++) {
		if (i + 1 < k && v[i + 1].id == v[i].id)
			continue; /* a later duplicate wins */
		if (drop_null && json_is_null(v[i].v))
			continue;
		v[w++] = v[i];
	}
	*n = w;
	return v;
}

static void
derp_check(const Tk__Bus__V1__Netmap *nm, const json_t *msg)
{
	const json_t *dm = jget(msg, "DERPMap"), *regions = jget(dm, "Regions");
	const json_t *scores = jget(jget(dm, "HomeParams"), "RegionScore");
	const Tk__Bus__V1__DERPMap *d = nm->derp_map;
	keyed *v;
	size_t n;

	if (dm == NULL)
		return;
	path(0, "DERPMap");
	EXPECT(d != NULL, "no derp_map");
	if (d == NULL)
		return;
	if (json_is_object(regions) && (v = by_id(regions, &n, true)) != NULL) {
		EXPECT(d->n_regions == n, "%zu regions, JSON %zu", d->n_regions,
		    n);
		for (size_t i = 0; i < n && i < d->n_regions; i++) {
			path(0, "DERPMap.Regions[\"%lld\"]", (long long)v[i].id);
			region_check(d->regions[i], v[i].id, v[i].v);
		}
		path(0, "DERPMap");
		EXPECT(d->omit_default_regions ==
		    jbool(dm, "omitDefaultRegions"), "omit_default_regions");
		free(v);
	}
	if (json_is_object(scores) && (v = by_id(scores, &n, false)) != NULL) {
		EXPECT(d->n_region_scores == n, "%zu scores, JSON %zu",
		    d->n_region_scores, n);
		for (size_t i = 0; i < n && i < d->n_region_scores; i++) {
			path(0, "DERPMap.HomeParams.RegionScore[\"%lld\"]",
			    (long long)v[i].id);
			EXPECT(d->region_scores[i]->region_id == v[i].id,
			    "region_id %d", d->region_scores[i]->region_id);
			EXPECT(d->region_scores[i]->score ==
			    (json_is_number(v[i].v) ?
				json_number_value(v[i].v) : 0),
			    "score differs");
		}
		free(v);
	}
}

/* ---------------------------------------------------------------------
 * Packet filter
 * ------------------------------------------------------------------ */

static void
ipmatch_check(const Tk__Bus__V1__IPMatch *m, const tk_wg_ipmatch *w)
{
	size_t n = 16;

	switch (w->im_kind) {
	case TK_WG_IPM_ANY:
		EXPECT(m->match_case == TK__BUS__V1__IPMATCH__MATCH_ANY &&
		    m->any, "not \"*\"");
		break;
	case TK_WG_IPM_PREFIX:
		n = w->im_prefix.pf_family == 4 ? 4 : 16;
		EXPECT(m->match_case == TK__BUS__V1__IPMATCH__MATCH_PREFIX &&
		    m->prefix->addr.len == n &&
		    memcmp(m->prefix->addr.data, w->im_prefix.pf_addr, n) == 0 &&
		    m->prefix->bits == w->im_prefix.pf_bits, "prefix differs");
		break;
	case TK_WG_IPM_RANGE:
		n = w->im_range.rg_family == 4 ? 4 : 16;
		EXPECT(m->match_case == TK__BUS__V1__IPMATCH__MATCH_RANGE &&
		    m->range->first.len == n && m->range->last.len == n &&
		    memcmp(m->range->first.data, w->im_range.rg_first, n) == 0 &&
		    memcmp(m->range->last.data, w->im_range.rg_last, n) == 0,
		    "range differs");
		break;
	case TK_WG_IPM_CAP:
		EXPECT(m->match_case == TK__BUS__V1__IPMATCH__MATCH_CAP &&
		    strcmp(m->cap, w->im_cap) == 0, "cap differs");
		break;
	}
}

static void
grant_check(const Tk__Bus__V1__CapGrant *g, const json_t *o)
{
	const json_t *dsts = jget(o, "Dsts"), *caps = jget(o, "Caps");
	const json_t *cm = jget(o, "CapMap");
	size_t keep = strlen(where), k = 0, nd = 0;

	for (size_t i = 0; i < jlen(dsts); i++) {
		const char *s = jstr_at(dsts, i);
		tk_ipprefix x;

		if (json_is_null(json_array_get(dsts, i)))
			continue;
		path(keep, ".Dsts[%zu]", i);
		if (tk_ipprefix_parse(&x, s, strlen(s)) == 0 && nd < g->n_dsts)
			EXPECT(addr_eq(&g->dsts[nd]->addr, &x.ip) &&
			    g->dsts[nd]->bits == x.bits, "differs from \"%s\"",
			    s);
		nd++;
	}
	where[keep] = '\0';
	EXPECT(nd == g->n_dsts, "%zu dsts, JSON %zu", g->n_dsts, nd);
	/* Caps first (no values), then CapMap entries */
	for (size_t i = 0; i < jlen(caps); i++, k++)
		EXPECT(k < g->n_cap_map && strcmp(g->cap_map[k]->name,
		    jstr_at(caps, i)) == 0 && g->cap_map[k]->n_json_values == 0,
		    "cap_map[%zu] is not Caps[%zu]", k, i);
	for (size_t i = k; i < g->n_cap_map; i++) {
		const json_t *vals = json_is_object(cm) ?
		    json_object_get(cm, g->cap_map[i]->name) : NULL;

		EXPECT(vals != NULL && jlen(vals) == g->cap_map[i]->n_json_values,
		    "cap_map[%zu] \"%s\" not in CapMap", i,
		    g->cap_map[i]->name);
	}
	EXPECT(g->n_cap_map == k + (json_is_object(cm) ?
	    json_object_size(cm) : 0), "cap_map count differs");
}

/* parseIPSet on a JSON string's bytes (a \u0000 escape included) */
static int
ipm_parse(tk_wg_ipmatch *w, const json_t *v)
{
	if (!json_is_string(v))
		return -1;
	return tk_wg_ipmatch_parse_n(w, json_string_value(v),
	    json_string_length(v));
}

static void
rule_check(const Tk__Bus__V1__FilterRule *r, const json_t *o)
{
	const json_t *src = jget(o, "SrcIPs"), *dst = jget(o, "DstPorts");
	const json_t *proto = jget(o, "IPProto"), *grants = jget(o, "CapGrant");
	size_t keep = strlen(where), k = 0;
	tk_wg_ipmatch w;

	for (size_t i = 0; i < jlen(src); i++) {
		if (ipm_parse(&w, json_array_get(src, i)) != 0)
			continue; /* Go skips it */
		path(keep, ".SrcIPs[%zu]", i);
		EXPECT(k < r->n_src_ips, "src_ips entry missing");
		if (k < r->n_src_ips)
			ipmatch_check(r->src_ips[k], &w);
		k++;
	}
	where[keep] = '\0';
	EXPECT(k == r->n_src_ips, "%zu src_ips, JSON %zu", r->n_src_ips, k);
	k = 0;
	for (size_t i = 0; i < jlen(dst); i++) {
		const json_t *d = json_array_get(dst, i);
		const json_t *ports = jget(d, "Ports");
		const Tk__Bus__V1__NetPortRange *p;

		if (!json_is_object(d) ||
		    ipm_parse(&w, jget(d, "IP")) != 0 ||
		    w.im_kind == TK_WG_IPM_CAP)
			continue;
		path(keep, ".DstPorts[%zu]", i);
		EXPECT(k < r->n_dst_ports, "dst_ports entry missing");
		if (k < r->n_dst_ports) {
			p = r->dst_ports[k];
			ipmatch_check(p->ip, &w);
			EXPECT(p->first_port == (uint32_t)jint(ports, "First") &&
			    p->last_port == (uint32_t)jint(ports, "Last"),
			    "ports %u-%u, JSON %lld-%lld", p->first_port,
			    p->last_port, (long long)jint(ports, "First"),
			    (long long)jint(ports, "Last"));
		}
		k++;
	}
	where[keep] = '\0';
	EXPECT(k == r->n_dst_ports, "%zu dst_ports, JSON %zu", r->n_dst_ports,
	    k);
	EXPECT(r->n_ip_proto == jlen(proto), "%zu ip_proto, JSON %zu",
	    r->n_ip_proto, jlen(proto));
	for (size_t i = 0; i < r->n_ip_proto && i < jlen(proto); i++) {
		const json_t *v = json_array_get(proto, i);
		json_int_t x = json_is_integer(v) ? json_integer_value(v) : 0;

		EXPECT(r->ip_proto[i] == (x >= 0 && x <= (json_int_t)UINT32_MAX ?
		    (uint32_t)x : UINT32_MAX), "ip_proto[%zu] differs", i);
	}
	k = 0;
	for (size_t i = 0; i < jlen(grants); i++) {
		const json_t *g = json_array_get(grants, i);

		if (!json_is_object(g))
			continue;
		path(keep, ".CapGrant[%zu]", i);
		EXPECT(k < r->n_cap_grant, "cap_grant entry missing");
		if (k < r->n_cap_grant)
			grant_check(r->cap_grant[k], g);
		k++;
	}
	where[keep] = '\0';
	EXPECT(k == r->n_cap_grant, "%zu cap_grant, JSON %zu", r->n_cap_grant,
	    k);
}

/* Bits anywhere makes Go's filter parse fail (deny all). */
static bool
has_bits(const json_t *rules)
{
	for (size_t i = 0; i < jlen(rules); i++) {
		const json_t *r = json_array_get(rules, i), *dst;

		if (jlen(jget(r, "SrcBits")) > 0)
			return true;
		dst = jget(r, "DstPorts");
		for (size_t j = 0; j < jlen(dst); j++)
			if (jget(json_array_get(dst, j), "Bits") != NULL)
				return true;
	}
	return false;
}

static void
filter_check(const Tk__Bus__V1__Netmap *nm, const json_t *msg)
{
	const json_t *pf = jget(msg, "PacketFilter");
	const Tk__Bus__V1__PacketFilter *f = nm->packet_filter;

	/* only when the base chunk is the whole filter: no PacketFilters in
	 * this message, and no other chunk's rules (equal counts) */
	if (!json_is_array(pf) || json_object_get(msg, "PacketFilters") ||
	    jget(msg, "packetfilters") || has_bits(pf) || f == NULL ||
	    f->n_rules != jlen(pf))
		return;
	for (size_t i = 0; i < jlen(pf); i++) {
		path(0, "PacketFilter[%zu]", i);
		if (json_is_object(json_array_get(pf, i)))
			rule_check(f->rules[i], json_array_get(pf, i));
	}
}

/* ---------------------------------------------------------------------
 * DNSConfig, UserProfiles, Health, Domain
 * ------------------------------------------------------------------ */

static void
resolvers_check(Tk__Bus__V1__Resolver *const *v, size_t n, const json_t *a,
    const char *what)
{
	size_t keep = strlen(where), k = 0;

	for (size_t i = 0; i < jlen(a); i++) {
		const json_t *o = json_array_get(a, i), *bs;

		if (!json_is_object(o))
			continue;
		path(keep, ".%s[%zu]", what, i);
		if (k >= n) {
			EXPECT(false, "resolver missing");
			break;
		}
		STR(v[k], addr, o, "Addr");
		BOOL(v[k], use_with_exit_node, o, "UseWithExitNode");
		bs = jget(o, "BootstrapResolution");
		EXPECT(v[k]->n_bootstrap_resolution == jlen(bs),
		    "bootstrap count differs");
		for (size_t j = 0; j < jlen(bs) &&
		     j < v[k]->n_bootstrap_resolution; j++) {
			const char *s = jstr_at(bs, j);
			char text[TK_NETADDR_TEXT_MAX] = "";
			tk_ipaddr x;

			if (s[0] != '\0' && tk_ipaddr_parse(&x, s, strlen(s)) == 0)
				tk_ipaddr_format(&x, text);
			EXPECT(strcmp(v[k]->bootstrap_resolution[j], text) == 0,
			    "bootstrap_resolution[%zu] \"%s\", JSON \"%s\"", j,
			    v[k]->bootstrap_resolution[j], s);
		}
		k++;
	}
	where[keep] = '\0';
	EXPECT(k == n, "%zu %s, JSON %zu", n, what, k);
}

static void
strings_check(char *const *v, size_t n, const json_t *a, const char *what)
{
	EXPECT(n == jlen(a), "%zu %s, JSON %zu", n, what, jlen(a));
	for (size_t i = 0; i < n && i < jlen(a); i++)
		EXPECT(strcmp(v[i], jstr_at(a, i)) == 0, "%s[%zu] \"%s\"", what,
		    i, v[i]);
}

static int
route_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void
dns_check(const Tk__Bus__V1__Netmap *nm, const json_t *msg)
{
	const json_t *dc = jget(msg, "DNSConfig"), *routes, *recs;
	const Tk__Bus__V1__DNSConfig *d = nm->dns_config;
	const char **keys, *key;
	json_t *val;
	size_t nk = 0;

	if (!json_is_object(dc))
		return;
	path(0, "DNSConfig");
	EXPECT(d != NULL, "no dns_config");
	if (d == NULL)
		return;
	resolvers_check(d->resolvers, d->n_resolvers, jget(dc, "Resolvers"),
	    "Resolvers");
	resolvers_check(d->fallback_resolvers, d->n_fallback_resolvers,
	    jget(dc, "FallbackResolvers"), "FallbackResolvers");
	routes = jget(dc, "Routes");
	keys = calloc((json_is_object(routes) ? json_object_size(routes) : 0) +
	    1, sizeof(*keys));
	CU_ASSERT_FATAL(keys != NULL);
	if (json_is_object(routes))
		json_object_foreach ((json_t *)routes, key, val)
			keys[nk++] = key;
	qsort(keys, nk, sizeof(*keys), route_cmp);
	EXPECT(d->n_routes == nk, "%zu routes, JSON %zu", d->n_routes, nk);
	for (size_t i = 0; i < nk && i < d->n_routes; i++) {
		path(0, "DNSConfig.Routes[\"%s\"]", keys[i]);
		EXPECT(strcmp(d->routes[i]->suffix, keys[i]) == 0,
		    "suffix \"%s\"", d->routes[i]->suffix);
		resolvers_check(d->routes[i]->resolvers,
		    d->routes[i]->n_resolvers,
		    json_object_get(routes, keys[i]), "resolvers");
	}
	free(keys);
	path(0, "DNSConfig");
	strings_check(d->domains, d->n_domains, jget(dc, "Domains"), "domains");
	BOOL(d, proxied, dc, "Proxied");
	strings_check(d->cert_domains, d->n_cert_domains,
	    jget(dc, "CertDomains"), "cert_domains");
	strings_check(d->exit_node_filtered_set, d->n_exit_node_filtered_set,
	    jget(dc, "ExitNodeFilteredSet"), "exit_node_filtered_set");
	recs = jget(dc, "ExtraRecords");
	EXPECT(d->n_extra_records == jlen(recs), "%zu records, JSON %zu",
	    d->n_extra_records, jlen(recs));
	for (size_t i = 0; i < jlen(recs) && i < d->n_extra_records; i++) {
		const json_t *r = json_array_get(recs, i);

		path(0, "DNSConfig.ExtraRecords[%zu]", i);
		STR(d->extra_records[i], name, r, "Name");
		STR(d->extra_records[i], type, r, "Type");
		STR(d->extra_records[i], value, r, "Value");
	}
}

static void
misc_check(const Tk__Bus__V1__Netmap *nm, const json_t *msg)
{
	const json_t *ups = jget(msg, "UserProfiles"), *h = jget(msg, "Health");

	for (size_t i = 0; i < jlen(ups); i++) {
		const json_t *u = json_array_get(ups, i);
		int64_t id = jint(u, "ID");
		const Tk__Bus__V1__UserProfile *p = NULL;
		size_t same = 0;

		for (size_t j = 0; j < jlen(ups); j++)
			same += json_is_object(json_array_get(ups, j)) &&
			    jint(json_array_get(ups, j), "ID") == id;
		if (!json_is_object(u) || same != 1)
			continue;
		for (size_t j = 0; j < nm->n_user_profiles; j++)
			if (nm->user_profiles[j]->id == id)
				p = nm->user_profiles[j];
		path(0, "UserProfiles[%zu] (ID %lld)", i, (long long)id);
		EXPECT(p != NULL, "profile missing");
		if (p == NULL)
			continue;
		STR(p, login_name, u, "LoginName");
		STR(p, display_name, u, "DisplayName");
		STR(p, profile_pic_url, u, "ProfilePicURL");
	}
	if (json_is_array(h)) {
		path(0, "Health");
		strings_check(nm->health, nm->n_health, h, "health");
	}
	if (jstr(msg, "Domain")[0] != '\0') {
		path(0, "Domain");
		EXPECT(nm->domain != NULL &&
		    strcmp(nm->domain, jstr(msg, "Domain")) == 0, "differs");
	}
	if (json_is_boolean(jget(msg, "CollectServices"))) {
		path(0, "CollectServices");
		EXPECT(nm->has_collect_services && nm->collect_services ==
		    jbool(msg, "CollectServices"), "differs");
	}
}

/* ---------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------ */

void
contract_check(const ctrldi_map *m, const tk_buf *before, const char *p,
    size_t n)
{
	Tk__Bus__V1__Netmap *nm, *old;
	json_t *msg = NULL;
	tk_buf b;

	control_now_ms = ctrldi_map_control_now_ms(m);

	/* jansson refuses what ctrld repairs (invalid UTF-8, NUL): skip */
	if (tk_json_parse(&msg, p, n, NULL, NULL, 0) != 0)
		return;
	if (jget(msg, "KeepAlive") != NULL && jbool(msg, "KeepAlive")) {
		json_decref(msg);
		return;
	}
	tk_buf_init(&b);
	CU_ASSERT_FATAL(ctrldi_map_snapshot(m, &b) == 0);
	nm = tk__bus__v1__netmap__unpack(NULL, b.len, b.data);
	CU_ASSERT_FATAL(nm != NULL);
	old = tk__bus__v1__netmap__unpack(NULL, before->len, before->data);
	CU_ASSERT_FATAL(old != NULL);
	prev = old;
	if (json_is_object(jget(msg, "Node")) && nm->self != NULL) {
		path(0, "Node");
		node_check(nm->self, jget(msg, "Node"), true, false);
	}
	peers_check(nm, msg);
	derp_check(nm, msg);
	filter_check(nm, msg);
	dns_check(nm, msg);
	misc_check(nm, msg);
	prev = NULL;
	tk__bus__v1__netmap__free_unpacked(old, NULL);
	tk__bus__v1__netmap__free_unpacked(nm, NULL);
	tk_buf_fini(&b);
	json_decref(msg);
}

/* One corpus file, segmented as fuzz_ctrld_map reads it. */
static void
corpus_file(const char *file)
{
	FILE *f = fopen(file, "rb");
	static tk_fake_clock fc;
	uint8_t *data;
	size_t size, off = 0;
	ctrldi_map *m, *mo;
	long len;

	CU_ASSERT_FATAL(f != NULL);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	data = malloc((size_t)len + 1);
	CU_ASSERT_FATAL(data != NULL);
	size = fread(data, 1, (size_t)len, f);
	fclose(f);
	tk_fake_clock_init(&fc, 1, 1700000000ull * 1000000000ull);
	CU_ASSERT_FATAL(ctrldi_map_new(&m) == 0);
	ctrldi_map_set_clock(m, &fc.fc_clock);
	/* mo takes the same messages handed over (ctrldi_map_apply_owned,
	 * which releases the text and tape as it decodes): same results,
	 * byte for byte */
	CU_ASSERT_FATAL(ctrldi_map_new(&mo) == 0);
	ctrldi_map_set_clock(mo, &fc.fc_clock);
	while (off < size) {
		if (data[off] == '!') {
			ctrldi_map_stream_reset(m);
			ctrldi_map_stream_reset(mo);
			off++;
		} else if (data[off] == '#') {
			size_t rl;

			if (size - off < 3)
				break;
			rl = data[off + 1] | (size_t)data[off + 2] << 8;
			off += 3 + (rl > size - off - 3 ? size - off - 3 : rl);
		} else {
			const uint8_t *end = memchr(data + off, '\0', size - off);
			size_t n = end ? (size_t)(end - (data + off)) : size - off;
			ctrldi_map_info info, info_o;
			tk_buf delta, before, delta_o, s1, s2;
			bool chg, chg_o;
			char e1[256], e2[256];
			char *own = tk_malloc(n + 1);
			int rv, rv_o;

			CU_ASSERT_FATAL(own != NULL);
			memcpy(own, data + off, n);
			own[n] = '\0';
			tk_buf_init(&delta);
			tk_buf_init(&delta_o);
			tk_buf_init(&before);
			tk_buf_init(&s1);
			tk_buf_init(&s2);
			CU_ASSERT_FATAL(ctrldi_map_snapshot(m, &before) == 0);
			rv = ctrldi_map_apply(m, (const char *)data + off, n,
			    &delta, &chg, &info, e1, sizeof(e1));
			rv_o = ctrldi_map_apply_owned(mo, own, n, &delta_o,
			    &chg_o, &info_o, e2, sizeof(e2));
			CU_ASSERT_EQUAL(rv, rv_o);
			CU_ASSERT_STRING_EQUAL(e1, e2);
			if (rv == 0 && rv_o == 0) {
				CU_ASSERT_EQUAL(chg, chg_o);
				CU_ASSERT(delta.len == delta_o.len &&
				    (delta.len == 0 || memcmp(delta.data,
					delta_o.data, delta.len) == 0));
				CU_ASSERT_EQUAL(info.keepalive, info_o.keepalive);
				CU_ASSERT_EQUAL(info.has_ping, info_o.has_ping);
				ctrldi_map_info_fini(&info_o);
			}
			CU_ASSERT_FATAL(ctrldi_map_snapshot(m, &s1) == 0);
			CU_ASSERT_FATAL(ctrldi_map_snapshot(mo, &s2) == 0);
			CU_ASSERT(s1.len == s2.len && (s1.len == 0 ||
			    memcmp(s1.data, s2.data, s1.len) == 0));
			if (rv == 0) {
				ctrldi_map_info_fini(&info);
				contract_check(m, &before,
				    (const char *)data + off, n);
			}
			tk_buf_fini(&delta);
			tk_buf_fini(&delta_o);
			tk_buf_fini(&before);
			tk_buf_fini(&s1);
			tk_buf_fini(&s2);
			off += n + (end != NULL);
			tk_fake_clock_advance(&fc, 1000000000ull);
		}
	}
	ctrldi_map_free(m);
	ctrldi_map_free(mo);
	free(data);
}

static void
test_contract_corpus(void)
{
	const char *dir = TK_CTRLD_MAP_CORPUS;
	char file[2048];
	struct dirent *e;
	unsigned files = 0;
	DIR *d;

	d = opendir(dir);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	checked = 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(file, sizeof(file), "%s/%s", dir, e->d_name);
		corpus_file(file);
		files++;
	}
	closedir(d);
	CU_ASSERT(files >= 10);
	/* the corpus carries real netmaps: thousands of fields compared */
	CU_ASSERT(checked > 2000);
	fprintf(stderr, "contract: %u corpus files, %lu fields compared\n",
	    files, checked);
}

static const tk_test_case contract_cases[] = {
	TK_TEST(test_contract_corpus),
	TK_TEST_END,
};

void
register_contract(void)
{
	tk_test_suite("contract", contract_cases);
}
