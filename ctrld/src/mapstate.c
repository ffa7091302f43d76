/*
 * ctrld's map state (mapstate.h): applies decoded MapResponses with Go's
 * rules (control/controlclient/map.go: handleNonKeepAliveMapResponse,
 * patchifyPeersChanged, removeUnwantedDiscoUpdates*,
 * updatePeersStateFromResponse, updateStateFromResponse; direct.go:
 * the keep-alive, PopBrowserURL, PingRequest and Debug handling).
 *
 * Validate, then commit: ctrldi_map_apply decodes the message and builds
 * every new value (frozen peer records, blobs, arrays, the packed delta,
 * the info strings) without touching the map; only then does an
 * infallible commit swap them in and free what they replace.  Any error
 * before that frees what was built, so the map is unchanged.
 *
 * Peers are an array of frozen records sorted by id (binary search): a
 * patch or a PeersChanged of a known peer replaces one pointer, a join or
 * leave moves the tail.  Each record keeps its packed tk.bus.v1.Node, so a
 * delta packs one record and a snapshot copies bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk/err.h"
#include "tk/mem.h"
#include "tk/bus/v1/ctrl.pb-c.h"
#include "mapstate.h"

typedef struct blob {
	uint8_t *p;
	size_t n;
} blob;

typedef struct mchunk {
	blob name;
	blob rules; /* packed PacketFilter.rules entries */
	bool bits;
} mchunk;

typedef struct mprof {
	int64_t id;
	size_t n;
	uint8_t pb[]; /* packed UserProfile */
} mprof;

struct ctrldi_map {
	const tk_clock *clock;

	/* published netmap */
	ctrldi_node *self;
	ctrldi_node **peers;
	size_t npeers, peers_cap;
	bool has_derp, derp_omit;
	/* packed DERPMap.regions / .region_scores entries */
	blob derp_regions, derp_scores;
	bool has_pf, pf_received;
	blob pf_rules;
	bool has_dns;
	blob dns;
	bool has_domain;
	blob domain;
	bool has_health;
	blob health; /* packed StringList */
	mprof **profiles;
	size_t nprofiles;
	int collect_services;
	bool has_control_time;
	int64_t control_time_ms;
	/* ControlTime minus the local clock when it came, or 0 when within a
	 * minute (ipnlocal/expiry.go onControlTime) */
	int64_t clock_delta_ms;

	/* this stream */
	bool stream_fresh;   /* no message with Node yet: peers start empty */
	bool derp_in_stream; /* DERPMap merge base is the published one */
	bool pf_in_stream;   /* chunks valid */
	mchunk *chunks;	     /* sorted by name */
	size_t nchunks;
	char *last_pop_url;  /* per stream */
	char *last_ping_url; /* across streams */
};

/* ---------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------ */

static bool
blob_eq(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

/* Never leaves out->p NULL on success (memcmp/memcpy need a pointer). */
static int
blob_dup(blob *out, const void *p, size_t n)
{
	out->n = n;
	if ((out->p = tk_malloc(n)) == NULL)
		return TK_ENOMEM;
	if (n > 0)
		memcpy(out->p, p, n);
	return 0;
}

static void
blob_free(blob *b)
{
	tk_free(b->p);
	b->p = NULL;
	b->n = 0;
}

static char *
str_dup(ctrldi_str s)
{
	char *p = tk_malloc((size_t)s.n + 1);

	if (p != NULL) {
		if (s.n > 0)
			memcpy(p, s.p, s.n);
		p[s.n] = '\0';
	}
	return p;
}

static bool
cstr_eq(const char *c, ctrldi_str s)
{
	return c != NULL && strlen(c) == s.n &&
	    (s.n == 0 || memcmp(c, s.p, s.n) == 0);
}

/* --- emitting protobuf: sizing pass (p == NULL) then writing pass ---- */

typedef struct emit {
	uint8_t *p;
	size_t len;
} emit;

static size_t
vlen(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

static void
e_raw(emit *e, const void *b, size_t n)
{
	if (e->p != NULL && n > 0)
		memcpy(e->p + e->len, b, n);
	e->len += n;
}

static void
e_varint(emit *e, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;

	while (v >= 0x80) {
		tmp[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	tmp[n++] = (uint8_t)v;
	e_raw(e, tmp, n);
}

static void
e_bytes(emit *e, unsigned field, const void *b, size_t n)
{
	e_varint(e, (uint64_t)field << 3 | 2);
	e_varint(e, n);
	e_raw(e, b, n);
}

static void
e_head(emit *e, unsigned field, size_t n)
{
	e_varint(e, (uint64_t)field << 3 | 2);
	e_varint(e, n);
}

/* A varint field (wire type 0). */
static void
e_vfield(emit *e, unsigned field, uint64_t v)
{
	e_varint(e, (uint64_t)field << 3);
	e_varint(e, v);
}

/* Reads one length-delimited entry of our own encodings. */
static bool
next_entry(const uint8_t **pp, const uint8_t *end, const uint8_t **v,
    size_t *vn)
{
	const uint8_t *p = *pp;
	uint64_t len = 0;
	unsigned shift = 0;

	if (p >= end)
		return false;
	/* tag: one byte, the encodings read here are StringList items */
	_Static_assert(TK_TAG(STRING_LIST_ITEMS) < 0x80, "one-byte tag");
	p++;
	while (p < end && shift < 64) {
		len |= (uint64_t)(*p & 0x7f) << shift;
		shift += 7;
		if (!(*p++ & 0x80))
			break;
	}
	if (len > (uint64_t)(end - p))
		return false;
	*v = p;
	*vn = (size_t)len;
	*pp = p + len;
	return true;
}

/* ---------------------------------------------------------------------
 * Lifetime
 * ------------------------------------------------------------------ */

static void
chunks_free(mchunk *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		blob_free(&c[i].name);
		blob_free(&c[i].rules);
	}
	tk_free(c);
}

static void
map_clear(ctrldi_map *m)
{
	ctrldi_node_free(m->self);
	for (size_t i = 0; i < m->npeers; i++)
		ctrldi_node_free(m->peers[i]);
	tk_free(m->peers);
	blob_free(&m->derp_regions);
	blob_free(&m->derp_scores);
	blob_free(&m->pf_rules);
	blob_free(&m->dns);
	blob_free(&m->domain);
	blob_free(&m->health);
	for (size_t i = 0; i < m->nprofiles; i++)
		tk_free(m->profiles[i]);
	tk_free(m->profiles);
	chunks_free(m->chunks, m->nchunks);
	tk_free(m->last_pop_url);
	tk_free(m->last_ping_url);
}

static void
map_init(ctrldi_map *m, const tk_clock *clock)
{
	memset(m, 0, sizeof(*m));
	m->clock = clock;
	m->collect_services = -1;
	m->stream_fresh = true;
}

int
ctrldi_map_new(ctrldi_map **out)
{
	ctrldi_map *m = tk_malloc(sizeof(*m));

	if (m == NULL)
		return TK_ENOMEM;
	map_init(m, NULL);
	*out = m;
	return 0;
}

void
ctrldi_map_free(ctrldi_map *m)
{
	if (m == NULL)
		return;
	map_clear(m);
	tk_free(m);
}

void
ctrldi_map_set_clock(ctrldi_map *m, const tk_clock *clock)
{
	m->clock = clock;
}

void
ctrldi_map_stream_reset(ctrldi_map *m)
{
	m->stream_fresh = true;
	m->derp_in_stream = false;
	m->pf_in_stream = false;
	chunks_free(m->chunks, m->nchunks);
	m->chunks = NULL;
	m->nchunks = 0;
	tk_free(m->last_pop_url);
	m->last_pop_url = NULL;
}

bool
ctrldi_map_has_self(const ctrldi_map *m)
{
	return m->self != NULL;
}

int
ctrldi_map_collect_services(const ctrldi_map *m)
{
	return m->collect_services;
}

size_t
ctrldi_map_peer_count(const ctrldi_map *m)
{
	return m->npeers;
}

void
ctrldi_map_info_fini(ctrldi_map_info *info)
{
	if (info == NULL)
		return;
	tk_free(info->pop_browser_url);
	tk_free(info->ping.url);
	tk_free(info->ping.types);
	tk_free(info->ping.payload);
	memset(info, 0, sizeof(*info));
}

static ctrldi_node *
find_peer(const ctrldi_map *m, int64_t id, size_t *idx)
{
	size_t lo = 0, hi = m->npeers;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (m->peers[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (idx != NULL)
		*idx = lo;
	return lo < m->npeers && m->peers[lo]->id == id ? m->peers[lo] : NULL;
}

static mprof *
find_profile(mprof *const *v, size_t n, int64_t id, size_t *idx)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (v[mid]->id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (idx != NULL)
		*idx = lo;
	return lo < n && v[lo]->id == id ? v[lo] : NULL;
}

/* ---------------------------------------------------------------------
 * Bodies of the composite values
 * ------------------------------------------------------------------ */

static void
derp_body(emit *e, const blob *regions, const blob *scores, bool omit)
{
	e_raw(e, regions->p, regions->n);
	e_raw(e, scores->p, scores->n);
	if (omit)
		e_vfield(e, F_BOOL(DERP_MAP_OMIT_DEFAULT_REGIONS), 1);
}

static size_t
derp_len(const blob *regions, const blob *scores, bool omit)
{
	emit e = { NULL, 0 };

	derp_body(&e, regions, scores, omit);
	return e.len;
}

static void
pf_body(emit *e, bool received, const blob *rules)
{
	if (received)
		e_vfield(e, F_BOOL(PACKET_FILTER_RECEIVED), 1);
	e_raw(e, rules->p, rules->n);
}

static size_t
pf_len(bool received, const blob *rules)
{
	emit e = { NULL, 0 };

	pf_body(&e, received, rules);
	return e.len;
}

static void
netmap_emit(const ctrldi_map *m, emit *e)
{
	if (m->self != NULL)
		e_bytes(e, F_MSG(NETMAP_SELF), m->self->pb, m->self->pblen);
	for (size_t i = 0; i < m->npeers; i++)
		e_bytes(e, F_MSG(NETMAP_PEERS), m->peers[i]->pb,
		    m->peers[i]->pblen);
	if (m->has_derp) {
		e_head(e, F_MSG(NETMAP_DERP_MAP), derp_len(&m->derp_regions,
		    &m->derp_scores, m->derp_omit));
		derp_body(e, &m->derp_regions, &m->derp_scores, m->derp_omit);
	}
	if (m->has_pf) {
		e_head(e, F_MSG(NETMAP_PACKET_FILTER),
		    pf_len(m->pf_received, &m->pf_rules));
		pf_body(e, m->pf_received, &m->pf_rules);
	}
	if (m->has_dns)
		e_bytes(e, F_MSG(NETMAP_DNS_CONFIG), m->dns.p, m->dns.n);
	if (m->has_domain)
		e_bytes(e, F_STR(NETMAP_DOMAIN), m->domain.p, m->domain.n);
	for (size_t i = 0; i < m->nprofiles; i++)
		e_bytes(e, F_MSG(NETMAP_USER_PROFILES), m->profiles[i]->pb,
		    m->profiles[i]->n);
	if (m->collect_services >= 0)
		e_vfield(e, F_BOOL(NETMAP_COLLECT_SERVICES),
		    (uint64_t)m->collect_services);
	if (m->has_control_time)
		e_vfield(e, F_I64(NETMAP_CONTROL_TIME_UNIX_MS),
		    (uint64_t)m->control_time_ms);
	if (m->has_health) {
		const uint8_t *p = m->health.p, *end = p + m->health.n, *v;
		size_t vn;

		while (next_entry(&p, end, &v, &vn))
			e_bytes(e, F_STR(NETMAP_HEALTH), v, vn);
	}
}

int
ctrldi_map_snapshot(const ctrldi_map *m, tk_buf *out)
{
	emit e = { NULL, 0 };
	uint8_t *p;
	int rv;

	netmap_emit(m, &e);
	if ((rv = tk_buf_extend(out, e.len, &p)) != 0)
		return rv;
	e.p = p;
	e.len = 0;
	netmap_emit(m, &e);
	return 0;
}

/* ---------------------------------------------------------------------
 * Apply: the pending state
 * ------------------------------------------------------------------ */

/* Overlay of this message's peer changes: id -> record or removed. */
typedef struct ovent {
	int64_t id;
	ctrldi_node *val; /* NULL: removed */
	bool used;
} ovent;

typedef struct overlay {
	ovent *t;
	size_t mask, n;
	ovent **order; /* entries in first-touch order */
} overlay;

typedef struct pent {
	int64_t id;
	ctrldi_node *rec; /* new frozen record; NULL: remove */
} pent;

enum { KEEP = 0, NEW = 1 };

typedef struct pend {
	/* temporaries of the apply (copies of decoded nodes before they are
	 * frozen, the arrays below): ctrldi_map_apply's own arena, not the
	 * message's, so the decoded message can go before the delta is
	 * packed */
	ctrldi_arena *a;
	ctrldi_pbw scratch;

	ctrldi_node *self; /* new frozen self, NULL: keep */
	bool self_changed;

	int pmode; /* 0: peers untouched, 1: new array, 2: in place */
	ctrldi_node **arr; /* pmode 1 */
	size_t narr;
	bool *arr_new;	   /* arr[i] allocated here */
	pent *ents;	   /* pmode 2, sorted by id */
	size_t nents, inserts;
	ctrldi_node **chg; /* delta: changed records, by id */
	size_t nchg;
	int64_t *rem;	   /* delta: removed ids, sorted */
	size_t nrem;

	bool derp_set, derp_changed, derp_omit;
	int regions_how, scores_how;
	blob regions, scores;

	bool pf_set, pf_changed;
	mchunk *chunks;	  /* the new chunk set (owned entries: chunk_new) */
	bool *chunk_new;
	size_t nchunks;
	bool *old_kept;	  /* m->chunks[i] moved into chunks */
	blob pf_rules;

	bool dns_set;
	blob dns;
	bool domain_set;
	blob domain;
	bool health_set;
	blob health;

	mprof **profs;	  /* new profile array (NULL: keep) */
	size_t nprofs;
	mprof **upserts;  /* delta + ownership, sorted by id */
	size_t nupserts;

	char *last_pop, *last_ping; /* new values to keep */
	bool pop_set, ping_set;
	ctrldi_map_info info;

	int64_t clock_delta_ms; /* to commit */
	int64_t control_now_ms; /* the local clock + that delta */

	tk_buf delta;
} pend;

static void
pend_free(pend *pd)
{
	ctrldi_node_free(pd->self);
	for (size_t i = 0; i < pd->narr; i++)
		if (pd->arr_new[i])
			ctrldi_node_free(pd->arr[i]);
	tk_free(pd->arr);
	for (size_t i = 0; i < pd->nents; i++)
		ctrldi_node_free(pd->ents[i].rec);
	tk_free(pd->ents);
	if (pd->regions_how == NEW)
		blob_free(&pd->regions);
	if (pd->scores_how == NEW)
		blob_free(&pd->scores);
	for (size_t i = 0; i < pd->nchunks; i++)
		if (pd->chunk_new[i]) {
			blob_free(&pd->chunks[i].name);
			blob_free(&pd->chunks[i].rules);
		}
	tk_free(pd->chunks);
	blob_free(&pd->pf_rules);
	blob_free(&pd->dns);
	blob_free(&pd->domain);
	blob_free(&pd->health);
	for (size_t i = 0; i < pd->nupserts; i++)
		tk_free(pd->upserts[i]);
	tk_free(pd->upserts);
	tk_free(pd->profs);
	tk_free(pd->last_pop);
	tk_free(pd->last_ping);
	ctrldi_map_info_fini(&pd->info);
	tk_buf_fini(&pd->delta);
	ctrldi_pbw_fini(&pd->scratch);
}

static const uint8_t *
piece(const ctrldi_mapmsg *msg, ctrldi_piece pc)
{
	return msg->pb.p != NULL ? msg->pb.p + pc.off : (const uint8_t *)"";
}

/* --- local key expiry (ipnlocal/expiry.go) ---------------------------- */

/* flagExpiredPeersEpoch: a delta-adjusted clock before it is broken */
#define EXPIRY_EPOCH_MS	   (1673373066 * INT64_C(1000))
#define MIN_CLOCK_DELTA_MS 60000 /* minClockDelta */

static int64_t
real_ms(const ctrldi_map *m)
{
	return (int64_t)(tk_clock_real_ns(m->clock) / 1000000u);
}

static int64_t
time_ms(const ctrldi_time *t)
{
	return t->sec * 1000 + t->nsec / 1000000;
}

/* KeyExpiry set, passed at control_now (Go: !KeyExpiry.After(now)) and
 * not flagged yet.  Restored (opaque) records wait for the stream. */
static bool
key_passed(const ctrldi_node *n, int64_t control_now)
{
	return !(n->flags & (CTRLDI_N_EXPIRED | CTRLDI_N_OPAQUE)) &&
	    !n->key_expiry.zero && control_now >= EXPIRY_EPOCH_MS &&
	    time_ms(&n->key_expiry) <= control_now;
}

/*
 * flagExpiredPeers for one record: Expired set, Endpoints nil, HomeDERP 0
 * (Go also mangles Key; consumers skip expired peers instead).  Returns n
 * itself, an arena copy, or NULL (out of memory).
 */
static ctrldi_node *
expire_local(ctrldi_arena *a, ctrldi_node *n, int64_t control_now)
{
	ctrldi_node *y;

	if (!key_passed(n, control_now))
		return n;
	if ((y = ctrldi_node_copy(a, n)) == NULL)
		return NULL;
	y->flags |= CTRLDI_N_EXPIRED;
	y->flags &= ~CTRLDI_N_EP_NONNIL;
	y->eps = NULL;
	y->neps = 0;
	y->home_derp = 0;
	return y;
}

/* --- peers ------------------------------------------------------------ */

static ovent *
ov_get(overlay *ov, int64_t id, bool add)
{
	size_t h = (size_t)(((uint64_t)id * 0x9e3779b97f4a7c15ull) >> 20);

	for (;; h++) {
		ovent *e = &ov->t[h & ov->mask];

		if (!e->used) {
			if (!add)
				return NULL;
			e->used = true;
			e->id = id;
			e->val = NULL;
			ov->order[ov->n++] = e;
			return e;
		}
		if (e->id == id)
			return e;
	}
}

/* The record id has now in this message (base: the stream's peers). */
static ctrldi_node *
cur(const ctrldi_map *m, overlay *ov, int64_t id)
{
	ovent *e = ov_get(ov, id, false);

	if (e != NULL)
		return e->val;
	return m->stream_fresh ? NULL : find_peer(m, id, NULL);
}

static const ctrldi_node *
base(const ctrldi_map *m, int64_t id)
{
	return m->stream_fresh ? NULL : find_peer(m, id, NULL);
}

static int
node_ptr_cmp(const void *a, const void *b)
{
	const ctrldi_node *x = *(ctrldi_node *const *)a;
	const ctrldi_node *y = *(ctrldi_node *const *)b;

	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return 0;
}

static int
node_idx_cmp(const void *a, const void *b)
{
	/* sorted by id, the later (higher address in a message array) first */
	const ctrldi_node *const *x = a, *const *y = b;
	int r = node_ptr_cmp(a, b);

	if (r == 0)
		r = x < y ? 1 : x > y ? -1 : 0;
	return r;
}

static int
i64_cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static int
ovent_cmp(const void *a, const void *b)
{
	const ovent *x = *(ovent *const *)a, *y = *(ovent *const *)b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/*
 * New sorted peer array from the final records v[0..n) (sorted, unique):
 * unchanged records keep the published ones; the delta lists the rest
 * and every published id that is gone.
 */
static int
peers_rebuild(const ctrldi_map *m, ctrldi_mapmsg *msg, pend *pd,
    ctrldi_node **v, size_t n)
{
	size_t j = 0, nrem = 0;
	int rv;

	pd->pmode = 1;
	if ((pd->arr = tk_malloc(n * sizeof(*pd->arr))) == NULL ||
	    (pd->arr_new = ctrldi_arena_alloc(pd->a, n)) == NULL ||
	    (pd->chg = ctrldi_arena_alloc(pd->a, n * sizeof(*pd->chg))) ==
		NULL ||
	    (pd->rem = ctrldi_arena_alloc(pd->a, m->npeers * 8)) == NULL)
		return TK_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		ctrldi_node *same = NULL, *f;
		bool ident;

		while (j < m->npeers && m->peers[j]->id < v[i]->id)
			pd->rem[nrem++] = m->peers[j++]->id;
		if (j < m->npeers && m->peers[j]->id == v[i]->id)
			same = m->peers[j++];
		ctrldi_node *x = expire_local(pd->a, v[i], pd->control_now_ms);
		if (x == NULL)
			return TK_ENOMEM;
		if (ctrldi_mapmsg_owns(msg, x)) {
			/* frozen as decoded: what ctrldi_node_freeze would
			 * make of it, taken from the message, not copied */
			ident = same != NULL && same->pblen == x->pblen &&
			    memcmp(same->pb, x->pb, x->pblen) == 0;
			f = NULL;
			if (!ident || (same->flags & CTRLDI_N_OPAQUE)) {
				msg->pre[x->pre - 1] = NULL;
				x->pre = 0;
				f = x;
			}
		} else if ((rv = ctrldi_node_freeze(x, &pd->scratch, same, &f,
			 &ident)) != 0) {
			return rv;
		}
		pd->arr_new[i] = f != NULL;
		pd->arr[i] = f != NULL ? f : same;
		pd->narr = i + 1;
		if (!ident)
			pd->chg[pd->nchg++] = pd->arr[i];
	}
	while (j < m->npeers)
		pd->rem[nrem++] = m->peers[j++]->id;
	pd->nrem = nrem;
	return 0;
}

static int
peers_prepare(const ctrldi_map *m, ctrldi_mapmsg *msg, pend *pd)
{
	ctrldi_arena *a = pd->a;
	ctrldi_patch *pl;
	ctrldi_node **kept;
	size_t npl = 0, nkept = 0, w = 0, cap;
	overlay ov;
	ctrldi_time now;
	int rv;

	/* map.go patchifyPeersChanged: against the stream's peers */
	pl = ctrldi_arena_alloc(a, ((size_t)msg->npatches + msg->nchanged) *
	    sizeof(*pl));
	kept = ctrldi_arena_alloc(a, (size_t)msg->nchanged * sizeof(*kept));
	if (pl == NULL || kept == NULL)
		return TK_ENOMEM;
	if (msg->npatches > 0)
		memcpy(pl, msg->patches, msg->npatches * sizeof(*pl));
	npl = msg->npatches;
	for (uint32_t i = 0; i < msg->nchanged; i++) {
		ctrldi_node *n = msg->changed[i];
		const ctrldi_node *was = base(m, n->id);
		bool any;

		if (was != NULL && ctrldi_node_diff(was, n, &pl[npl], &any)) {
			if (any)
				npl++;
			continue;
		}
		kept[nkept++] = n;
	}
	/* removeUnwantedDiscoUpdates: no disco key moving an offline peer's
	 * LastSeen backwards */
	for (size_t i = 0; i < npl; i++) {
		const ctrldi_patch *pc = &pl[i];
		const uint32_t all = CTRLDI_P_DISCO | CTRLDI_P_ONLINE |
		    CTRLDI_P_LAST_SEEN;
		const ctrldi_node *ex;

		if ((pc->set & all) == all && !pc->online &&
		    (ex = base(m, pc->id)) != NULL &&
		    (ex->flags & CTRLDI_N_LAST_SEEN) &&
		    !ctrldi_time_after(&pc->last_seen, &ex->last_seen))
			continue;
		pl[w++] = *pc;
	}
	npl = w;
	/* removeUnwantedDiscoUpdatesFromFullNetmapUpdate */
	for (uint32_t i = 0; i < msg->npeers; i++) {
		ctrldi_node *n = msg->peers[i];
		const ctrldi_node *ex;
		static const uint8_t zero[32];

		if (memcmp(n->disco, zero, 32) == 0 ||
		    (ex = base(m, n->id)) == NULL ||
		    memcmp(ex->disco, n->disco, 32) == 0 ||
		    ((n->flags & CTRLDI_N_ONLINE_KNOWN) &&
			(n->flags & CTRLDI_N_ONLINE)) ||
		    !(ex->flags & CTRLDI_N_LAST_SEEN) ||
		    ((n->flags & CTRLDI_N_LAST_SEEN) &&
			ctrldi_time_after(&n->last_seen, &ex->last_seen)))
			continue;
		/* a record frozen as decoded changes: a copy, frozen later */
		if (n->pb != NULL &&
		    (n = msg->peers[i] = ctrldi_node_copy(a, n)) == NULL)
			return TK_ENOMEM;
		memcpy(n->disco, ex->disco, 32);
		n->flags |= CTRLDI_N_LAST_SEEN;
		n->last_seen = ex->last_seen;
	}

	/* Peers non-empty: the whole set, nothing else touches peers */
	if (msg->npeers > 0) {
		ctrldi_node **v = ctrldi_arena_alloc(a, msg->npeers * sizeof(*v));
		size_t n = 0;

		if (v == NULL)
			return TK_ENOMEM;
		memcpy(v, msg->peers, msg->npeers * sizeof(*v));
		qsort(v, msg->npeers, sizeof(*v), node_idx_cmp);
		for (uint32_t i = 0; i < msg->npeers; i++)
			if (n == 0 || v[n - 1]->id != v[i]->id)
				v[n++] = v[i];
		return peers_rebuild(m, msg, pd, v, n);
	}
	if (!m->stream_fresh && msg->nremoved == 0 && nkept == 0 &&
	    msg->nseen == 0 && msg->nonline == 0 && npl == 0)
		return 0;

	/* map.go updatePeersStateFromResponse, delta part, over an overlay */
	cap = 16;
	while (cap < 2 * ((size_t)msg->nremoved + nkept + msg->nseen +
			      msg->nonline + npl) + 1)
		cap *= 2;
	ov.mask = cap - 1;
	ov.n = 0;
	ov.t = ctrldi_arena_alloc(a, cap * sizeof(*ov.t));
	ov.order = ctrldi_arena_alloc(a, cap * sizeof(*ov.order));
	if (ov.t == NULL || ov.order == NULL)
		return TK_ENOMEM;
	memset(ov.t, 0, cap * sizeof(*ov.t));
	{
		uint64_t ns = tk_clock_real_ns(m->clock);

		now.sec = (int64_t)(ns / 1000000000u);
		now.nsec = (int32_t)(ns % 1000000000u);
		now.zero = false;
	}
	for (uint32_t i = 0; i < msg->nremoved; i++)
		if (cur(m, &ov, msg->removed[i]) != NULL)
			ov_get(&ov, msg->removed[i], true)->val = NULL;
	for (size_t i = 0; i < nkept; i++)
		ov_get(&ov, kept[i]->id, true)->val = kept[i];
	for (uint32_t i = 0; i < msg->nseen; i++) {
		ctrldi_node *x = cur(m, &ov, msg->seen[i].id), *y;

		if (x == NULL)
			continue;
		if ((y = ctrldi_node_copy(a, x)) == NULL)
			return TK_ENOMEM;
		if (msg->seen[i].v) {
			y->flags |= CTRLDI_N_LAST_SEEN;
			y->last_seen = now;
		} else {
			y->flags &= ~CTRLDI_N_LAST_SEEN;
		}
		ov_get(&ov, y->id, true)->val = y;
	}
	for (uint32_t i = 0; i < msg->nonline; i++) {
		ctrldi_node *x = cur(m, &ov, msg->online[i].id), *y;

		if (x == NULL)
			continue;
		if ((y = ctrldi_node_copy(a, x)) == NULL)
			return TK_ENOMEM;
		y->flags |= CTRLDI_N_ONLINE_KNOWN;
		y->flags &= ~CTRLDI_N_ONLINE;
		if (msg->online[i].v)
			y->flags |= CTRLDI_N_ONLINE;
		ov_get(&ov, y->id, true)->val = y;
	}
	for (size_t i = 0; i < npl; i++) {
		ctrldi_node *x = cur(m, &ov, pl[i].id), *y;

		if (x == NULL)
			continue;
		if ((y = ctrldi_node_patch(a, x, &pl[i])) == NULL)
			return TK_ENOMEM;
		ov_get(&ov, y->id, true)->val = y;
	}
	qsort(ov.order, ov.n, sizeof(*ov.order), ovent_cmp);

	if (m->stream_fresh) {
		ctrldi_node **v = ctrldi_arena_alloc(a, ov.n * sizeof(*v));
		size_t n = 0;

		if (v == NULL)
			return TK_ENOMEM;
		for (size_t i = 0; i < ov.n; i++)
			if (ov.order[i]->val != NULL)
				v[n++] = ov.order[i]->val;
		return peers_rebuild(m, msg, pd, v, n);
	}

	/* in place: each entry against the published record */
	pd->pmode = 2;
	if ((pd->ents = tk_malloc(ov.n * sizeof(*pd->ents))) == NULL ||
	    (pd->chg = ctrldi_arena_alloc(a, ov.n * sizeof(*pd->chg))) == NULL ||
	    (pd->rem = ctrldi_arena_alloc(a, ov.n * 8)) == NULL)
		return TK_ENOMEM;
	for (size_t i = 0; i < ov.n; i++) {
		const ovent *e = ov.order[i];
		ctrldi_node *was = find_peer(m, e->id, NULL), *f;
		bool ident;

		if (e->val == NULL) {
			if (was != NULL) {
				pd->ents[pd->nents++] = (pent){ e->id, NULL };
				pd->rem[pd->nrem++] = e->id;
			}
			continue;
		}
		ctrldi_node *x = expire_local(a, e->val, pd->control_now_ms);
		if (x == NULL)
			return TK_ENOMEM;
		if ((rv = ctrldi_node_freeze(x, &pd->scratch, was, &f,
			 &ident)) != 0)
			return rv;
		if (f == NULL)
			continue; /* the same bytes: nothing to do */
		pd->ents[pd->nents++] = (pent){ e->id, f };
		if (!ident)
			pd->chg[pd->nchg++] = f;
		if (was == NULL)
			pd->inserts++;
	}
	/* many joins/leaves: one merge instead of moving the tail each time */
	if (pd->inserts + pd->nrem > 64) {
		size_t i = 0, k = 0, j;

		pd->narr = m->npeers + pd->inserts - pd->nrem;
		if ((pd->arr = tk_malloc(pd->narr * sizeof(*pd->arr))) == NULL ||
		    (pd->arr_new = ctrldi_arena_alloc(a, pd->narr)) == NULL) {
			pd->narr = 0;
			return TK_ENOMEM;
		}
		for (j = 0; j < pd->nents; j++) {
			pent *e = &pd->ents[j];

			while (i < m->npeers && m->peers[i]->id < e->id) {
				pd->arr_new[k] = false;
				pd->arr[k++] = m->peers[i++];
			}
			if (i < m->npeers && m->peers[i]->id == e->id)
				i++; /* replaced or removed */
			if (e->rec != NULL) {
				pd->arr_new[k] = true;
				pd->arr[k++] = e->rec;
				e->rec = NULL;
			}
		}
		while (i < m->npeers) {
			pd->arr_new[k] = false;
			pd->arr[k++] = m->peers[i++];
		}
		TK_ASSERT(k == pd->narr);
		pd->nents = 0;
		pd->pmode = 1;
		return 0;
	}
	/* room for the joins now, so the commit cannot fail */
	if (m->npeers + pd->inserts > m->peers_cap) {
		ctrldi_map *mm = (ctrldi_map *)m;
		size_t ncap = mm->peers_cap ? mm->peers_cap : 16;
		ctrldi_node **p;

		while (ncap < m->npeers + pd->inserts)
			ncap *= 2;
		if ((p = tk_realloc(mm->peers, ncap * sizeof(*p))) == NULL)
			return TK_ENOMEM;
		mm->peers = p;
		mm->peers_cap = ncap;
	}
	return 0;
}

/* --- DERP map (map.go updateStateFromResponse) ------------------------- */

static int
concat_keyed(const ctrldi_mapmsg *msg, const ctrldi_keyed *v, uint32_t n,
    blob *out)
{
	size_t total = 0;
	uint8_t *p;

	for (uint32_t i = 0; i < n; i++)
		total += v[i].pb.len;
	out->p = NULL;
	out->n = total;
	if (total == 0)
		return 0;
	if ((p = tk_malloc(total)) == NULL)
		return TK_ENOMEM;
	out->p = p;
	for (uint32_t i = 0; i < n; i++) {
		memcpy(p, piece(msg, v[i].pb), v[i].pb.len);
		p += v[i].pb.len;
	}
	return 0;
}

static int
derp_prepare(const ctrldi_map *m, const ctrldi_mapmsg *msg, pend *pd)
{
	const blob *reg, *sc;
	int rv;

	if (!msg->has_derp)
		return 0;
	pd->derp_set = true;
	if (msg->derp_has_regions) {
		pd->regions_how = NEW;
		if ((rv = concat_keyed(msg, msg->regions, msg->nregions,
			 &pd->regions)) != 0)
			return rv;
		pd->derp_omit = msg->derp_omit;
	} else if (m->derp_in_stream) {
		pd->regions_how = KEEP; /* Regions nil: the previous ones */
		pd->derp_omit = m->derp_omit;
	} else {
		pd->regions_how = NEW;	/* first of the stream: nothing */
		pd->derp_omit = msg->derp_omit;
	}
	if (msg->derp_has_scores) {
		pd->scores_how = NEW;
		if ((rv = concat_keyed(msg, msg->scores, msg->nscores,
			 &pd->scores)) != 0)
			return rv;
	} else {
		pd->scores_how = m->derp_in_stream ? KEEP : NEW;
	}
	reg = pd->regions_how == NEW ? &pd->regions : &m->derp_regions;
	sc = pd->scores_how == NEW ? &pd->scores : &m->derp_scores;
	pd->derp_changed = !m->has_derp || pd->derp_omit != m->derp_omit ||
	    !blob_eq(reg->p, reg->n, m->derp_regions.p, m->derp_regions.n) ||
	    !blob_eq(sc->p, sc->n, m->derp_scores.p, m->derp_scores.n);
	return 0;
}

/* --- packet filter ----------------------------------------------------- */

static int
str_blob_cmp(ctrldi_str s, const blob *b)
{
	int r = memcmp(s.p, b->p, s.n < b->n ? s.n : b->n);

	if (r != 0)
		return r;
	return s.n < b->n ? -1 : s.n > b->n;
}

static int
pf_prepare(const ctrldi_map *m, const ctrldi_mapmsg *msg, pend *pd)
{
	const ctrldi_chunk **ops;
	size_t nold, nops = 0, cap, total = 0, i, j;
	bool base_op, bits = false;
	uint8_t *p;

	if (!msg->has_pf && !msg->has_pfs)
		return 0;
	pd->pf_set = true;
	/* a new stream starts with no chunks (Go's new mapSession) */
	nold = m->pf_in_stream ? m->nchunks : 0;
	cap = nold + 1 + msg->nchunks;
	if ((pd->chunks = tk_malloc(cap * sizeof(mchunk))) == NULL ||
	    (pd->chunk_new = ctrldi_arena_alloc(pd->a, cap)) == NULL ||
	    (pd->old_kept = ctrldi_arena_alloc(pd->a, m->nchunks + 1)) == NULL ||
	    (ops = ctrldi_arena_alloc(pd->a, (msg->nchunks + 1) *
		sizeof(*ops))) == NULL)
		return TK_ENOMEM;
	memset(pd->old_kept, 0, m->nchunks + 1);
	/*
	 * map.go: PacketFilter is set as chunk "base" first; then
	 * PacketFilters, where "*": null clears everything (that "base"
	 * too) before the other entries apply.  As one sorted list of
	 * operations merged with the current chunks: linear.
	 */
	base_op = msg->has_pf;
	if (msg->has_pfs && msg->pfs_clear) {
		base_op = false;
		nold = 0;
	}
	for (i = 0; i < msg->nchunks; i++) {
		const ctrldi_chunk *ch = &msg->chunks[i];

		if (base_op) {
			int c = memcmp(ch->name.p, "base",
			    ch->name.n < 4 ? ch->name.n : 4);

			if (c == 0)
				c = ch->name.n < 4 ? -1 : ch->name.n > 4;
			if (c > 0) {
				ops[nops++] = &msg->base;
				base_op = false;
			} else if (c == 0) {
				base_op = false; /* PacketFilters' "base" wins */
			}
		}
		ops[nops++] = ch;
	}
	if (base_op)
		ops[nops++] = &msg->base;
	for (i = j = 0; i < nold || j < nops;) {
		int c = i >= nold ? 1 : j >= nops ? -1 :
		    -str_blob_cmp(ops[j]->name, &m->chunks[i].name);
		mchunk nc;

		if (c < 0) {
			pd->chunk_new[pd->nchunks] = false;
			pd->chunks[pd->nchunks++] = m->chunks[i];
			pd->old_kept[i++] = true;
			continue;
		}
		if (c == 0)
			i++; /* replaced or deleted */
		if (ops[j]->present) {
			memset(&nc, 0, sizeof(nc));
			nc.bits = ops[j]->bits;
			if (blob_dup(&nc.name, ops[j]->name.p,
				ops[j]->name.n) != 0 ||
			    blob_dup(&nc.rules, piece(msg, ops[j]->pb),
				ops[j]->pb.len) != 0) {
				blob_free(&nc.name);
				return TK_ENOMEM;
			}
			pd->chunk_new[pd->nchunks] = true;
			pd->chunks[pd->nchunks++] = nc;
		}
		j++;
	}
	/* wgengine/filter MatchesFromFilterRules: SrcBits/Bits fail it all */
	for (i = 0; i < pd->nchunks; i++) {
		bits |= pd->chunks[i].bits;
		total += pd->chunks[i].rules.n;
	}
	if (bits)
		total = 0;
	pd->pf_rules.n = total;
	if (total > 0) {
		if ((pd->pf_rules.p = p = tk_malloc(total)) == NULL)
			return TK_ENOMEM;
		for (i = 0; i < pd->nchunks; i++) {
			if (pd->chunks[i].rules.n == 0)
				continue;
			memcpy(p, pd->chunks[i].rules.p, pd->chunks[i].rules.n);
			p += pd->chunks[i].rules.n;
		}
	}
	pd->pf_changed = !m->has_pf || !m->pf_received ||
	    !blob_eq(pd->pf_rules.p, pd->pf_rules.n, m->pf_rules.p,
		m->pf_rules.n);
	return 0;
}

/* --- the rest ------------------------------------------------------- */

static int
prof_cmp(const void *a, const void *b)
{
	const ctrldi_keyed *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x < y ? 1 : x > y ? -1 : 0;
}

static int
profiles_prepare(const ctrldi_map *m, ctrldi_mapmsg *msg, pend *pd)
{
	ctrldi_keyed *v = msg->profiles;
	size_t n = 0, i, j, k;

	if (msg->nprofiles == 0)
		return 0;
	qsort(v, msg->nprofiles, sizeof(*v), prof_cmp);
	for (i = 0; i < msg->nprofiles; i++)
		if (n == 0 || v[n - 1].key != v[i].key)
			v[n++] = v[i];
	if ((pd->upserts = tk_malloc(n * sizeof(*pd->upserts))) == NULL)
		return TK_ENOMEM;
	for (i = 0; i < n; i++) {
		const mprof *old = find_profile(m->profiles, m->nprofiles,
		    v[i].key, NULL);
		mprof *p;

		if (old != NULL && blob_eq(old->pb, old->n, piece(msg, v[i].pb),
				       v[i].pb.len))
			continue;
		if ((p = tk_malloc(sizeof(*p) + v[i].pb.len)) == NULL)
			return TK_ENOMEM;
		p->id = v[i].key;
		p->n = v[i].pb.len;
		memcpy(p->pb, piece(msg, v[i].pb), p->n);
		pd->upserts[pd->nupserts++] = p;
	}
	if (pd->nupserts == 0)
		return 0;
	/* merge into a new array */
	pd->profs = tk_malloc((m->nprofiles + pd->nupserts) *
	    sizeof(*pd->profs));
	if (pd->profs == NULL)
		return TK_ENOMEM;
	for (i = j = k = 0; i < m->nprofiles || j < pd->nupserts;) {
		if (j >= pd->nupserts ||
		    (i < m->nprofiles && m->profiles[i]->id < pd->upserts[j]->id))
			pd->profs[k++] = m->profiles[i++];
		else if (i < m->nprofiles &&
		    m->profiles[i]->id == pd->upserts[j]->id) {
			pd->profs[k++] = pd->upserts[j++];
			i++;
		} else {
			pd->profs[k++] = pd->upserts[j++];
		}
	}
	pd->nprofs = k;
	return 0;
}

static int
info_prepare(const ctrldi_map *m, const ctrldi_mapmsg *msg, pend *pd)
{
	ctrldi_map_info *in = &pd->info;

	in->keepalive = msg->keepalive;
	if (msg->pop_url.n > 0 && !cstr_eq(m->last_pop_url, msg->pop_url)) {
		if ((in->pop_browser_url = str_dup(msg->pop_url)) == NULL ||
		    (pd->last_pop = str_dup(msg->pop_url)) == NULL)
			return TK_ENOMEM;
		pd->pop_set = true;
	}
	if (msg->has_ping && msg->ping_url.n > 0 &&
	    !cstr_eq(m->last_ping_url, msg->ping_url)) {
		in->has_ping = true;
		in->ping.url_is_noise = msg->ping_noise;
		in->ping.log = msg->ping_log;
		in->ping.has_ip = msg->ping_has_ip;
		in->ping.ip = msg->ping_ip;
		if ((in->ping.url = str_dup(msg->ping_url)) == NULL ||
		    (in->ping.types = str_dup(msg->ping_types)) == NULL ||
		    (pd->last_ping = str_dup(msg->ping_url)) == NULL)
			return TK_ENOMEM;
		if (msg->ping_payload_len > 0) {
			in->ping.payload = tk_malloc(msg->ping_payload_len);
			if (in->ping.payload == NULL)
				return TK_ENOMEM;
			memcpy(in->ping.payload, msg->ping_payload,
			    msg->ping_payload_len);
			in->ping.payload_len = msg->ping_payload_len;
		}
		pd->ping_set = true;
	}
	in->has_control_time = msg->has_control_time;
	in->control_time_unix_ms = msg->control_time_ms;
	if (msg->has_debug && !msg->keepalive) {
		in->has_debug = true;
		in->sleep_seconds = msg->debug_sleep;
		in->disable_log_tail = msg->debug_disable_log_tail;
		in->has_exit = msg->debug_has_exit;
		in->exit_code = msg->debug_exit;
	}
	in->has_seq = msg->has_seq;
	in->seq = msg->seq;
	in->has_dial_plan = msg->has_dial_plan;
	in->dial_plan = msg->dial_plan;
	return 0;
}

static void
delta_emit(const ctrldi_map *m, const pend *pd, emit *e)
{
	if (pd->self_changed)
		e_bytes(e, F_MSG(NETMAP_DELTA_SELF), pd->self->pb,
		    pd->self->pblen);
	for (size_t i = 0; i < pd->nchg; i++)
		e_bytes(e, F_MSG(NETMAP_DELTA_PEERS_CHANGED), pd->chg[i]->pb,
		    pd->chg[i]->pblen);
	for (size_t i = 0; i < pd->nrem; i++)
		e_vfield(e, F_I64(NETMAP_DELTA_PEERS_REMOVED),
		    (uint64_t)pd->rem[i]);
	if (pd->derp_changed) {
		const blob *reg = pd->regions_how == NEW ? &pd->regions :
							   &m->derp_regions;
		const blob *sc = pd->scores_how == NEW ? &pd->scores :
							 &m->derp_scores;

		e_head(e, F_MSG(NETMAP_DELTA_DERP_MAP),
		    derp_len(reg, sc, pd->derp_omit));
		derp_body(e, reg, sc, pd->derp_omit);
	}
	if (pd->pf_changed) {
		e_head(e, F_MSG(NETMAP_DELTA_PACKET_FILTER),
		    pf_len(true, &pd->pf_rules));
		pf_body(e, true, &pd->pf_rules);
	}
	if (pd->dns_set)
		e_bytes(e, F_MSG(NETMAP_DELTA_DNS_CONFIG), pd->dns.p,
		    pd->dns.n);
	if (pd->domain_set)
		e_bytes(e, F_STR(NETMAP_DELTA_DOMAIN), pd->domain.p,
		    pd->domain.n);
	for (size_t i = 0; i < pd->nupserts; i++)
		e_bytes(e, F_MSG(NETMAP_DELTA_USER_PROFILES),
		    pd->upserts[i]->pb, pd->upserts[i]->n);
	if (pd->health_set)
		e_bytes(e, F_MSG(NETMAP_DELTA_HEALTH), pd->health.p,
		    pd->health.n);
}

/* ---------------------------------------------------------------------
 * Apply: commit (cannot fail)
 * ------------------------------------------------------------------ */

static void
commit_peers(ctrldi_map *m, pend *pd)
{
	if (pd->pmode == 1) {
		size_t j = 0;

		/* free the published records the new array does not keep */
		for (size_t i = 0; i < m->npeers; i++) {
			ctrldi_node *old = m->peers[i];

			while (j < pd->narr && pd->arr[j]->id < old->id)
				j++;
			if (!(j < pd->narr && pd->arr[j] == old))
				ctrldi_node_free(old);
		}
		tk_free(m->peers);
		m->peers = pd->arr;
		m->npeers = m->peers_cap = pd->narr;
		pd->arr = NULL;
		pd->narr = 0;
	} else if (pd->pmode == 2) {
		for (size_t i = 0; i < pd->nents; i++) {
			pent *e = &pd->ents[i];
			size_t idx;
			ctrldi_node *old = find_peer(m, e->id, &idx);

			if (e->rec == NULL) {
				TK_ASSERT(old != NULL);
				ctrldi_node_free(old);
				memmove(&m->peers[idx], &m->peers[idx + 1],
				    (m->npeers - idx - 1) * sizeof(*m->peers));
				m->npeers--;
			} else if (old != NULL) {
				ctrldi_node_free(old);
				m->peers[idx] = e->rec;
			} else {
				TK_ASSERT(m->npeers < m->peers_cap);
				memmove(&m->peers[idx + 1], &m->peers[idx],
				    (m->npeers - idx) * sizeof(*m->peers));
				m->peers[idx] = e->rec;
				m->npeers++;
			}
			e->rec = NULL;
		}
		pd->nents = 0;
	}
}

static void
commit(ctrldi_map *m, const ctrldi_mapmsg *msg, pend *pd)
{
	if (!msg->keepalive) {
		if (pd->self != NULL) {
			ctrldi_node_free(m->self);
			m->self = pd->self;
			pd->self = NULL;
		}
		commit_peers(m, pd);
		if (pd->derp_set) {
			m->has_derp = true;
			m->derp_omit = pd->derp_omit;
			if (pd->regions_how == NEW) {
				blob_free(&m->derp_regions);
				m->derp_regions = pd->regions;
				pd->regions = (blob){ NULL, 0 };
			}
			if (pd->scores_how == NEW) {
				blob_free(&m->derp_scores);
				m->derp_scores = pd->scores;
				pd->scores = (blob){ NULL, 0 };
			}
			m->derp_in_stream = true;
		}
		if (pd->pf_set) {
			for (size_t j = 0; j < m->nchunks; j++)
				if (!(m->pf_in_stream && pd->old_kept[j])) {
					blob_free(&m->chunks[j].name);
					blob_free(&m->chunks[j].rules);
				}
			tk_free(m->chunks);
			m->chunks = pd->chunks;
			m->nchunks = pd->nchunks;
			pd->chunks = NULL;
			pd->nchunks = 0;
			blob_free(&m->pf_rules);
			m->pf_rules = pd->pf_rules;
			pd->pf_rules = (blob){ NULL, 0 };
			m->has_pf = m->pf_received = true;
			m->pf_in_stream = true;
		}
		if (pd->dns_set) {
			blob_free(&m->dns);
			m->dns = pd->dns;
			pd->dns = (blob){ NULL, 0 };
			m->has_dns = true;
		}
		if (pd->domain_set) {
			blob_free(&m->domain);
			m->domain = pd->domain;
			pd->domain = (blob){ NULL, 0 };
			m->has_domain = true;
		}
		if (pd->health_set) {
			blob_free(&m->health);
			m->health = pd->health;
			pd->health = (blob){ NULL, 0 };
			m->has_health = true;
		}
		if (pd->profs != NULL) {
			/* free the old profiles the new array replaced */
			for (size_t i = 0, j = 0; i < m->nprofiles; i++) {
				while (pd->profs[j]->id < m->profiles[i]->id)
					j++;
				if (pd->profs[j] != m->profiles[i])
					tk_free(m->profiles[i]);
			}
			tk_free(m->profiles);
			m->profiles = pd->profs;
			m->nprofiles = pd->nprofs;
			pd->profs = NULL;
			pd->nupserts = 0;
		}
		if (msg->collect_services >= 0)
			m->collect_services = msg->collect_services;
		m->stream_fresh = false;
	}
	if (msg->has_control_time) {
		m->has_control_time = true;
		m->control_time_ms = msg->control_time_ms;
	}
	m->clock_delta_ms = pd->clock_delta_ms;
	if (pd->pop_set) {
		tk_free(m->last_pop_url);
		m->last_pop_url = pd->last_pop;
		pd->last_pop = NULL;
	}
	if (pd->ping_set) {
		tk_free(m->last_ping_url);
		m->last_ping_url = pd->last_ping;
		pd->last_ping = NULL;
	}
}

static int
apply(ctrldi_map *m, const char *p, size_t n, char *owned, tk_buf *delta_out,
    bool *changed, ctrldi_map_info *info, char *err, size_t errlen)
{
	ctrldi_str last_name = { "", 0 };
	ctrldi_mapmsg msg;
	ctrldi_arena pa;
	pend pd;
	emit e = { NULL, 0 };
	bool any = false;
	int rv;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	memset(&pd, 0, sizeof(pd));
	tk_buf_init(&pd.delta);
	if (m->self != NULL && !(m->self->flags & CTRLDI_N_OPAQUE))
		last_name = m->self->name;
	ctrldi_arena_init(&pa);
	pd.a = &pa;
	rv = ctrldi_mapmsg_decode(&msg, p, n, owned, last_name, err, errlen);
	if (rv != 0)
		goto out;
	{
		int64_t now = real_ms(m), d = m->clock_delta_ms;

		if (msg.has_control_time) {
			d = msg.control_time_ms - now;
			if (d >= -MIN_CLOCK_DELTA_MS && d <= MIN_CLOCK_DELTA_MS)
				d = 0;
		}
		pd.clock_delta_ms = d;
		pd.control_now_ms = now + d;
	}
	if ((rv = info_prepare(m, &msg, &pd)) != 0)
		goto oom;
	if (!msg.keepalive) {
		if (m->stream_fresh && msg.self == NULL) {
			/* direct.go: "initial MapResponse lacked node" */
			if (err != NULL)
				snprintf(err, errlen, "the first MapResponse of "
				    "a stream has no Node");
			rv = TK_EPROTO;
			goto out;
		}
		if (msg.self != NULL) {
			bool ident;

			if ((rv = ctrldi_node_freeze(msg.self, &pd.scratch,
				 m->self, &pd.self, &ident)) != 0)
				goto oom;
			pd.self_changed = !ident;
		}
		if ((rv = peers_prepare(m, &msg, &pd)) != 0 ||
		    (rv = derp_prepare(m, &msg, &pd)) != 0 ||
		    (rv = pf_prepare(m, &msg, &pd)) != 0 ||
		    (rv = profiles_prepare(m, &msg, &pd)) != 0)
			goto oom;
		if (msg.has_dns && (!m->has_dns ||
		    !blob_eq(m->dns.p, m->dns.n, piece(&msg, msg.dns),
			msg.dns.len))) {
			pd.dns_set = true;
			if ((rv = blob_dup(&pd.dns, piece(&msg, msg.dns),
				 msg.dns.len)) != 0)
				goto oom;
		}
		if (msg.domain.n > 0 && (!m->has_domain ||
		    !blob_eq(m->domain.p, m->domain.n,
			(const uint8_t *)msg.domain.p, msg.domain.n))) {
			pd.domain_set = true;
			if ((rv = blob_dup(&pd.domain, msg.domain.p,
				 msg.domain.n)) != 0)
				goto oom;
		}
		if (msg.has_health && (!m->has_health ||
		    !blob_eq(m->health.p, m->health.n,
			piece(&msg, msg.health), msg.health.len))) {
			pd.health_set = true;
			if ((rv = blob_dup(&pd.health, piece(&msg, msg.health),
				 msg.health.len)) != 0)
				goto oom;
		}
		/*
		 * Everything the commit and the delta need is frozen or copied
		 * by now: the decoded message goes before the delta is packed
		 * (its arena, and the Peers records the apply did not take:
		 * all of them when an unchanged netmap comes again), so they
		 * and the delta (~0.5 KB a peer) are never alive together.
		 * Its scalars stay readable for commit().
		 */
		ctrldi_mapmsg_fini(&msg);
		delta_emit(m, &pd, &e);
		any = e.len > 0;
		if (any) {
			/* room now: the commit's append cannot fail */
			if ((rv = tk_buf_reserve(delta_out, e.len)) != 0)
				goto oom;
			tk_mem_hint_huge(delta_out->data + delta_out->len, e.len);
		}
	}

	/* commit */
	if (any) {
		uint8_t *dp;

		rv = tk_buf_extend(delta_out, e.len, &dp);
		TK_ASSERT(rv == 0);
		e.p = dp;
		e.len = 0;
		delta_emit(m, &pd, &e);
	}
	commit(m, &msg, &pd);
	*changed = any;
	if (info != NULL) {
		*info = pd.info;
		memset(&pd.info, 0, sizeof(pd.info));
	}
	rv = 0;
	goto out;

oom:
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", rv == TK_ENOMEM ? "out of memory" :
		    tk_strerror(rv)); /* e.g. delta_out's limit */
out:
	pend_free(&pd);
	ctrldi_arena_fini(&pa);
	ctrldi_mapmsg_fini(&msg); /* again after the early one: a no-op */
	return rv;
}

int
ctrldi_map_apply(ctrldi_map *m, const char *p, size_t n, tk_buf *delta_out,
    bool *changed, ctrldi_map_info *info, char *err, size_t errlen)
{
	return apply(m, p, n, NULL, delta_out, changed, info, err, errlen);
}

int
ctrldi_map_apply_owned(ctrldi_map *m, char *p, size_t n, tk_buf *delta_out,
    bool *changed, ctrldi_map_info *info, char *err, size_t errlen)
{
	return apply(m, p, n, p, delta_out, changed, info, err, errlen);
}

int
ctrldi_map_expire(ctrldi_map *m, tk_buf *delta_out, bool *changed,
    int64_t *next_ms)
{
	int64_t local = real_ms(m), now = local + m->clock_delta_ms;
	int64_t next = 0;
	ctrldi_arena a;
	pend pd;
	emit e = { NULL, 0 };
	size_t cnt = 0;
	int rv = 0;

	*changed = false;
	for (size_t i = 0; i < m->npeers; i++) {
		const ctrldi_node *n = m->peers[i];

		if (key_passed(n, now))
			cnt++;
		else if (!(n->flags & (CTRLDI_N_EXPIRED | CTRLDI_N_OPAQUE)) &&
		    !n->key_expiry.zero && time_ms(&n->key_expiry) > now &&
		    (next == 0 || time_ms(&n->key_expiry) - m->clock_delta_ms <
			next))
			next = time_ms(&n->key_expiry) - m->clock_delta_ms;
	}
	if (m->self != NULL && !(m->self->flags & CTRLDI_N_OPAQUE) &&
	    !m->self->key_expiry.zero &&
	    time_ms(&m->self->key_expiry) > local &&
	    (next == 0 || time_ms(&m->self->key_expiry) < next))
		next = time_ms(&m->self->key_expiry);
	*next_ms = next;
	if (cnt == 0)
		return 0;

	memset(&pd, 0, sizeof(pd));
	tk_buf_init(&pd.delta);
	ctrldi_arena_init(&a);
	pd.a = &a;
	pd.pmode = 2;
	if ((pd.ents = tk_malloc(cnt * sizeof(*pd.ents))) == NULL ||
	    (pd.chg = ctrldi_arena_alloc(&a, cnt * sizeof(*pd.chg))) == NULL) {
		rv = TK_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < m->npeers; i++) {
		ctrldi_node *was = m->peers[i], *x, *f;
		bool ident;

		if (!key_passed(was, now))
			continue;
		if ((x = expire_local(&a, was, now)) == NULL) {
			rv = TK_ENOMEM;
			goto out;
		}
		if ((rv = ctrldi_node_freeze(x, &pd.scratch, was, &f,
			 &ident)) != 0)
			goto out;
		if (f == NULL)
			continue;
		pd.ents[pd.nents++] = (pent){ was->id, f };
		if (!ident)
			pd.chg[pd.nchg++] = f;
	}
	delta_emit(m, &pd, &e);
	if (e.len > 0) {
		uint8_t *dp;

		if ((rv = tk_buf_extend(delta_out, e.len, &dp)) != 0)
			goto out;
		e.p = dp;
		e.len = 0;
		delta_emit(m, &pd, &e);
		*changed = true;
	}
	commit_peers(m, &pd);
out:
	pend_free(&pd);
	ctrldi_arena_fini(&a);
	return rv;
}

int64_t
ctrldi_map_control_now_ms(const ctrldi_map *m)
{
	return real_ms(m) + m->clock_delta_ms;
}

bool
ctrldi_map_self(const ctrldi_map *m, ctrldi_self *out)
{
	const ctrldi_node *n = m->self;

	memset(out, 0, sizeof(*out));
	if (n == NULL || (n->flags & CTRLDI_N_OPAQUE))
		return false;
	memcpy(out->key, n->key, 32);
	out->expired = (n->flags & CTRLDI_N_EXPIRED) != 0;
	/* direct.go doLogin: c.expiry.Before(c.clock.Now()), local clock */
	out->key_expired = !n->key_expiry.zero &&
	    time_ms(&n->key_expiry) < real_ms(m);
	out->machine_authorized = (n->flags & CTRLDI_N_MACHINE_AUTH) != 0;
	return true;
}

/* ---------------------------------------------------------------------
 * Restore and the delta reference
 * ------------------------------------------------------------------ */

typedef struct pballoc {
	ProtobufCAllocator a;
	bool failed;
} pballoc;

static void *
pb_alloc(void *arg, size_t n)
{
	pballoc *pa = arg;
	void *p = tk_malloc(n);

	if (p == NULL)
		pa->failed = true;
	return p;
}

static void
pb_free(void *arg, void *p)
{
	(void)arg;
	tk_free(p);
}

static void
pballoc_init(pballoc *pa)
{
	pa->a.alloc = pb_alloc;
	pa->a.free = pb_free;
	pa->a.allocator_data = pa;
	pa->failed = false;
}

/* Appends `field` + the packed message to b (b->p grows). */
static int
blob_add_msg(blob *b, unsigned field, const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	size_t head = vlen((uint64_t)field << 3 | 2) + vlen(len);
	uint8_t *p;
	emit e;

	if ((p = tk_realloc(b->p, b->n + head + len + 1)) == NULL)
		return TK_ENOMEM;
	b->p = p;
	e.p = p;
	e.len = b->n;
	e_head(&e, field, len);
	protobuf_c_message_pack(msg, p + e.len);
	b->n = e.len + len;
	return 0;
}

static bool
addr_ok(const ProtobufCBinaryData *a)
{
	return a->len == 4 || a->len == 16;
}

static bool
prefixes_ok(Tk__Bus__V1__Prefix **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!v[i]->has_addr || !addr_ok(&v[i]->addr) ||
		    v[i]->bits > (v[i]->addr.len == 4 ? 32u : 128u))
			return false;
	return true;
}

/* The bus's domain for a node: what consumers may rely on. */
static bool
node_ok(const Tk__Bus__V1__Node *n)
{
	if (!n->has_id || n->id <= 0)
		return false;
	if ((n->has_key && n->key.len != 32) ||
	    (n->has_machine && n->machine.len != 32) ||
	    (n->has_disco_key && n->disco_key.len != 32) ||
	    (n->has_self_node_v4_masq_addr &&
		!addr_ok(&n->self_node_v4_masq_addr)) ||
	    (n->has_self_node_v6_masq_addr &&
		!addr_ok(&n->self_node_v6_masq_addr)))
		return false;
	if (!prefixes_ok(n->addresses, n->n_addresses) ||
	    !prefixes_ok(n->allowed_ips, n->n_allowed_ips) ||
	    !prefixes_ok(n->primary_routes, n->n_primary_routes))
		return false;
	for (size_t i = 0; i < n->n_endpoints; i++)
		if (!n->endpoints[i]->has_addr ||
		    !addr_ok(&n->endpoints[i]->addr) ||
		    n->endpoints[i]->port > 65535)
			return false;
	return true;
}

static int
opaque_node(const Tk__Bus__V1__Node *n, ctrldi_node **out)
{
	size_t len = tk__bus__v1__node__get_packed_size(n);
	uint8_t *p;
	int rv;

	if ((p = tk_malloc(len)) == NULL)
		return TK_ENOMEM;
	tk__bus__v1__node__pack(n, p);
	rv = ctrldi_node_opaque(n->id, p, len, out);
	tk_free(p);
	return rv;
}

static int
restore_into(ctrldi_map *t, const Tk__Bus__V1__Netmap *nm)
{
	int rv;

	if (nm->self != NULL) {
		if (!node_ok(nm->self))
			return TK_EPROTO;
		if ((rv = opaque_node(nm->self, &t->self)) != 0)
			return rv;
	}
	if ((t->peers = tk_malloc(nm->n_peers * sizeof(*t->peers))) == NULL)
		return TK_ENOMEM;
	t->peers_cap = nm->n_peers;
	for (size_t i = 0; i < nm->n_peers; i++) {
		if (!node_ok(nm->peers[i]) ||
		    (i > 0 && nm->peers[i]->id <= nm->peers[i - 1]->id))
			return TK_EPROTO;
		if ((rv = opaque_node(nm->peers[i], &t->peers[i])) != 0)
			return rv;
		t->npeers = i + 1;
	}
	if (nm->derp_map != NULL) {
		const Tk__Bus__V1__DERPMap *d = nm->derp_map;

		t->has_derp = true;
		t->derp_omit = d->has_omit_default_regions &&
		    d->omit_default_regions;
		for (size_t i = 0; i < d->n_regions; i++)
			if ((rv = blob_add_msg(&t->derp_regions,
				 F_MSG(DERP_MAP_REGIONS),
				 &d->regions[i]->base)) != 0)
				return rv;
		for (size_t i = 0; i < d->n_region_scores; i++)
			if ((rv = blob_add_msg(&t->derp_scores,
				 F_MSG(DERP_MAP_REGION_SCORES),
				 &d->region_scores[i]->base)) != 0)
				return rv;
	}
	if (nm->packet_filter != NULL) {
		const Tk__Bus__V1__PacketFilter *f = nm->packet_filter;

		t->has_pf = true;
		t->pf_received = f->has_received && f->received;
		for (size_t i = 0; i < f->n_rules; i++)
			if ((rv = blob_add_msg(&t->pf_rules,
				 F_MSG(PACKET_FILTER_RULES),
				 &f->rules[i]->base)) != 0)
				return rv;
	}
	if (nm->dns_config != NULL) {
		size_t len = tk__bus__v1__dnsconfig__get_packed_size(
		    nm->dns_config);

		t->has_dns = true;
		if ((t->dns.p = tk_malloc(len)) == NULL)
			return TK_ENOMEM;
		t->dns.n = len;
		tk__bus__v1__dnsconfig__pack(nm->dns_config, t->dns.p);
	}
	if (nm->domain != NULL && nm->domain[0] != '\0') {
		t->has_domain = true;
		if ((rv = blob_dup(&t->domain, nm->domain,
			 strlen(nm->domain))) != 0)
			return rv;
	}
	if ((t->profiles = tk_malloc(nm->n_user_profiles *
		 sizeof(*t->profiles))) == NULL)
		return TK_ENOMEM;
	for (size_t i = 0; i < nm->n_user_profiles; i++) {
		const Tk__Bus__V1__UserProfile *u = nm->user_profiles[i];
		size_t len = tk__bus__v1__user_profile__get_packed_size(u);
		mprof *p;

		if (!u->has_id ||
		    (i > 0 && u->id <= nm->user_profiles[i - 1]->id))
			return TK_EPROTO;
		if ((p = tk_malloc(sizeof(*p) + len)) == NULL)
			return TK_ENOMEM;
		p->id = u->id;
		p->n = len;
		tk__bus__v1__user_profile__pack(u, p->pb);
		t->profiles[t->nprofiles++] = p;
	}
	if (nm->has_collect_services)
		t->collect_services = nm->collect_services;
	if (nm->has_control_time_unix_ms) {
		t->has_control_time = true;
		t->control_time_ms = nm->control_time_unix_ms;
	}
	if (nm->n_health > 0) {
		emit e = { NULL, 0 };

		for (int pass = 0; pass < 2; pass++) {
			for (size_t i = 0; i < nm->n_health; i++)
				e_bytes(&e, F_STR(STRING_LIST_ITEMS),
				    nm->health[i],
				    strlen(nm->health[i]));
			if (pass == 0) {
				if ((t->health.p = tk_malloc(e.len)) == NULL)
					return TK_ENOMEM;
				t->health.n = e.len;
				e.p = t->health.p;
				e.len = 0;
			}
		}
		t->has_health = true;
	}
	return 0;
}

int
ctrldi_map_restore(ctrldi_map *m, const uint8_t *p, size_t n)
{
	Tk__Bus__V1__Netmap *nm;
	ctrldi_map t;
	pballoc pa;
	int rv;

	pballoc_init(&pa);
	nm = tk__bus__v1__netmap__unpack(&pa.a, n, p);
	if (nm == NULL)
		return pa.failed ? TK_ENOMEM : TK_EPROTO;
	map_init(&t, m->clock);
	rv = restore_into(&t, nm);
	tk__bus__v1__netmap__free_unpacked(nm, &pa.a);
	if (rv != 0) {
		map_clear(&t);
		return rv;
	}
	/* the ping dedup is per control client, across streams */
	t.last_ping_url = m->last_ping_url;
	m->last_ping_url = NULL;
	map_clear(m);
	*m = t;
	return 0;
}

static int
pnode_cmp(const void *a, const void *b)
{
	const Tk__Bus__V1__Node *x = *(Tk__Bus__V1__Node *const *)a;
	const Tk__Bus__V1__Node *y = *(Tk__Bus__V1__Node *const *)b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static int
pprof_cmp(const void *a, const void *b)
{
	const Tk__Bus__V1__UserProfile *x = *(Tk__Bus__V1__UserProfile *const *)a;
	const Tk__Bus__V1__UserProfile *y = *(Tk__Bus__V1__UserProfile *const *)b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static bool
id_in(const int64_t *v, size_t n, int64_t id)
{
	return bsearch(&id, v, n, sizeof(*v), i64_cmp) != NULL;
}

int
ctrldi_netmap_apply_delta(const uint8_t *snap, size_t snap_len,
    const uint8_t *delta, size_t delta_len, tk_buf *out)
{
	Tk__Bus__V1__Netmap *s = NULL, r;
	Tk__Bus__V1__NetmapDelta *d = NULL;
	Tk__Bus__V1__Node **peers = NULL;
	Tk__Bus__V1__UserProfile **profs = NULL;
	int64_t *gone = NULL;
	size_t np = 0, nu = 0, ng = 0;
	pballoc pa;
	uint8_t *p;
	int rv = TK_EPROTO;

	pballoc_init(&pa);
	if ((s = tk__bus__v1__netmap__unpack(&pa.a, snap_len, snap)) == NULL ||
	    (d = tk__bus__v1__netmap_delta__unpack(&pa.a, delta_len, delta)) ==
		NULL) {
		rv = pa.failed ? TK_ENOMEM : TK_EPROTO;
		goto out;
	}
	r = *s;
	peers = tk_malloc((s->n_peers + d->n_peers_changed) * sizeof(*peers));
	gone = tk_malloc((d->n_peers_removed + d->n_peers_changed +
	    d->n_user_profiles) * sizeof(*gone));
	profs = tk_malloc((s->n_user_profiles + d->n_user_profiles) *
	    sizeof(*profs));
	if (peers == NULL || gone == NULL || profs == NULL) {
		rv = TK_ENOMEM;
		goto out;
	}
	/* peers: drop removed and changed ids, add the changed records */
	if (d->n_peers_removed > 0)
		memcpy(gone, d->peers_removed, d->n_peers_removed * sizeof(*gone));
	ng = d->n_peers_removed;
	for (size_t i = 0; i < d->n_peers_changed; i++)
		gone[ng++] = d->peers_changed[i]->id;
	qsort(gone, ng, sizeof(*gone), i64_cmp);
	for (size_t i = 0; i < s->n_peers; i++)
		if (!id_in(gone, ng, s->peers[i]->id))
			peers[np++] = s->peers[i];
	for (size_t i = 0; i < d->n_peers_changed; i++)
		peers[np++] = d->peers_changed[i];
	qsort(peers, np, sizeof(*peers), pnode_cmp);
	r.peers = peers;
	r.n_peers = np;
	/* user profiles: upsert by id */
	ng = 0;
	for (size_t j = 0; j < d->n_user_profiles; j++)
		gone[ng++] = d->user_profiles[j]->id;
	qsort(gone, ng, sizeof(*gone), i64_cmp);
	for (size_t i = 0; i < s->n_user_profiles; i++)
		if (!id_in(gone, ng, s->user_profiles[i]->id))
			profs[nu++] = s->user_profiles[i];
	for (size_t j = 0; j < d->n_user_profiles; j++)
		profs[nu++] = d->user_profiles[j];
	qsort(profs, nu, sizeof(*profs), pprof_cmp);
	r.user_profiles = profs;
	r.n_user_profiles = nu;
	if (d->self != NULL)
		r.self = d->self;
	if (d->derp_map != NULL)
		r.derp_map = d->derp_map;
	if (d->packet_filter != NULL)
		r.packet_filter = d->packet_filter;
	if (d->dns_config != NULL)
		r.dns_config = d->dns_config;
	if (d->domain != NULL)
		r.domain = d->domain;
	if (d->health != NULL) {
		r.health = d->health->items;
		r.n_health = d->health->n_items;
	}
	if ((rv = tk_buf_extend(out, tk__bus__v1__netmap__get_packed_size(&r),
		 &p)) != 0)
		goto out;
	tk__bus__v1__netmap__pack(&r, p);
	rv = 0;
out:
	tk_free(peers);
	tk_free(gone);
	tk_free(profs);
	if (s != NULL)
		tk__bus__v1__netmap__free_unpacked(s, &pa.a);
	if (d != NULL)
		tk__bus__v1__netmap_delta__free_unpacked(d, &pa.a);
	return rv;
}
