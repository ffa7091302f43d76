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

#include "tk_test.h"
#include "tk/clock.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk/wg_filter.h"
#include "tk/bus/v1/ctrl.pb-c.h"
#include "mapstate.h"

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
	    "\"Addresses\":[\"100.64.0.%d/32\",\"fd7a:115c:a1e0::%x/128\"],"
	    "\"AllowedIPs\":[\"100.64.0.%d/32\",\"fd7a:115c:a1e0::%x/128\"],"
	    "\"Endpoints\":[\"192.0.2.%d:41641\"],\"HomeDERP\":1,"
	    "\"Hostinfo\":{\"OS\":\"linux\",\"Hostname\":\"host%d\"},"
	    "\"MachineAuthorized\":true%s}",
	    id, id, id, 10 + id % 3, K("nodekey:", id), K("mkey:", id),
	    K("discokey:", id), id, id, id, id, id, id, extra);
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
static __attribute__((unused)) ctrldi_map *
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

static __attribute__((unused)) int64_t
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

void register_mapstate(void);

void
register_mapstate(void)
{
	tk_fake_clock_init(&fclock, 1000000000ull, 1700000000ull * 1000000000ull);
	tk_test_suite("ctrld_map_first", first_cases);
}
