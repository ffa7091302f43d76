/*
 * Nodes after decoding: their tk.bus.v1.Node encoding, frozen copies (one
 * allocation holding the node and its packed bytes), the patchable-field
 * diff and patches (Go's control/controlclient/map.go peerChangeDiff and
 * updatePeersStateFromResponse).
 */
#include <stdlib.h>
#include <string.h>

#include "tk/err.h"
#include "tk/mem.h"
#include "mapstate.h"
#include "pbwrite_int.h"
#include "tailcfg_int.h"

void
ctrldi_capent_encode(ctrldi_pbw *w, unsigned field, const ctrldi_capent *e)
{
	size_t m = ctrldi_pb_open(w, field);

	ctrldi_pb_str(w, F_STR(CAP_MAP_ENTRY_NAME), e->name);
	for (uint32_t j = 0; j < e->nvals; j++)
		ctrldi_pb_str(w, F_STR(CAP_MAP_ENTRY_JSON_VALUES), e->vals[j]);
	ctrldi_pb_close(w, m);
}

bool
ctrldi_time_after(const ctrldi_time *a, const ctrldi_time *b)
{
	return a->sec > b->sec || (a->sec == b->sec && a->nsec > b->nsec);
}

static bool
key_zero(const uint8_t k[32])
{
	static const uint8_t z[32];

	return memcmp(k, z, 32) == 0;
}

static int
pstr_cmp(const void *a, const void *b)
{
	return ctrldi_str_cmp(**(const ctrldi_str *const *)a,
	    **(const ctrldi_str *const *)b);
}

/* Node.capabilities: Capabilities plus the CapMap keys, sorted, unique. */
static void
caps_encode(ctrldi_pbw *w, const ctrldi_node *n)
{
	const ctrldi_str *stack[32], **v = stack, *last = NULL;
	uint32_t nv = n->ncaps, i = 0, j = 0;

	if (nv == 0) {
		for (uint32_t k = 0; k < n->ncapmap; k++)
			ctrldi_pb_str(w, F_STR(NODE_CAPABILITIES), n->capmap[k].name);
		return;
	}
	if (nv > TK_ARRAY_LEN(stack) &&
	    (v = tk_malloc(nv * sizeof(*v))) == NULL) {
		w->err = TK_ENOMEM;
		return;
	}
	for (uint32_t k = 0; k < nv; k++)
		v[k] = &n->caps[k];
	qsort(v, nv, sizeof(*v), pstr_cmp);
	while (i < nv || j < n->ncapmap) {
		const ctrldi_str *x;

		if (j >= n->ncapmap ||
		    (i < nv && ctrldi_str_cmp(*v[i], n->capmap[j].name) <= 0))
			x = v[i++];
		else
			x = &n->capmap[j++].name;
		if (last == NULL || !ctrldi_str_eq(*last, *x))
			ctrldi_pb_str(w, F_STR(NODE_CAPABILITIES), *x);
		last = x;
	}
	if (v != stack)
		tk_free(v);
}

static void
time_encode(ctrldi_pbw *w, unsigned field, const ctrldi_time *t)
{
	if (!t->zero)
		ctrldi_pb_int(w, field, t->sec);
}

static void
node_encode(ctrldi_pbw *w, const ctrldi_node *n)
{
	ctrldi_pb_int(w, F_I64(NODE_ID), n->id);
	if (n->stable_id.n)
		ctrldi_pb_str(w, F_STR(NODE_STABLE_ID), n->stable_id);
	if (n->name.n)
		ctrldi_pb_str(w, F_STR(NODE_NAME), n->name);
	if (n->user)
		ctrldi_pb_int(w, F_I64(NODE_USER), n->user);
	if (!key_zero(n->key))
		ctrldi_pb_bytes(w, F_BYTES(NODE_KEY), n->key, 32);
	time_encode(w, F_I64(NODE_KEY_EXPIRY_UNIX), &n->key_expiry);
	if (!key_zero(n->machine))
		ctrldi_pb_bytes(w, F_BYTES(NODE_MACHINE), n->machine, 32);
	if (!key_zero(n->disco))
		ctrldi_pb_bytes(w, F_BYTES(NODE_DISCO_KEY), n->disco, 32);
	for (uint32_t i = 0; i < n->naddrs; i++)
		ctrldi_pb_prefix(w, F_MSG(NODE_ADDRESSES), &n->addrs[i]);
	for (uint32_t i = 0; i < n->nallowed; i++)
		ctrldi_pb_prefix(w, F_MSG(NODE_ALLOWED_IPS), &n->allowed[i]);
	for (uint32_t i = 0; i < n->neps; i++)
		ctrldi_pb_ipport(w, F_MSG(NODE_ENDPOINTS), &n->eps[i]);
	if (n->home_derp)
		ctrldi_pb_int(w, F_I32(NODE_HOME_DERP), n->home_derp);
	if (n->flags & CTRLDI_N_ONLINE_KNOWN)
		ctrldi_pb_varint_field(w, F_BOOL(NODE_ONLINE),
		    (n->flags & CTRLDI_N_ONLINE) != 0);
	if (n->flags & CTRLDI_N_LAST_SEEN)
		time_encode(w, F_I64(NODE_LAST_SEEN_UNIX), &n->last_seen);
	if (n->flags & CTRLDI_N_MACHINE_AUTH)
		ctrldi_pb_bool(w, F_BOOL(NODE_MACHINE_AUTHORIZED));
	if (n->flags & CTRLDI_N_EXPIRED)
		ctrldi_pb_bool(w, F_BOOL(NODE_EXPIRED));
	for (uint32_t i = 0; i < n->ntags; i++)
		ctrldi_pb_str(w, F_STR(NODE_TAGS), n->tags[i]);
	for (uint32_t i = 0; i < n->nprimary; i++)
		ctrldi_pb_prefix(w, F_MSG(NODE_PRIMARY_ROUTES), &n->primary[i]);
	if (n->cap)
		ctrldi_pb_int(w, F_I32(NODE_CAP), n->cap);
	caps_encode(w, n);
	for (uint32_t i = 0; i < n->ncapmap; i++)
		ctrldi_capent_encode(w, F_MSG(NODE_CAP_MAP), &n->capmap[i]);
	if (n->flags & CTRLDI_N_WG_ONLY)
		ctrldi_pb_bool(w, F_BOOL(NODE_IS_WIREGUARD_ONLY));
	if (n->flags & CTRLDI_N_JAILED)
		ctrldi_pb_bool(w, F_BOOL(NODE_IS_JAILED));
	if (n->flags & CTRLDI_N_UNSIGNED)
		ctrldi_pb_bool(w, F_BOOL(NODE_UNSIGNED_PEER_API_ONLY));
	if (n->computed_name.n)
		ctrldi_pb_str(w, F_STR(NODE_COMPUTED_NAME), n->computed_name);
	if ((n->flags & CTRLDI_N_MASQ4) && n->masq4.family != 0)
		ctrldi_pb_bytes(w, F_BYTES(NODE_SELF_NODE_V4_MASQ_ADDR), n->masq4.addr,
		    n->masq4.family == TK_AF_INET ? 4 : 16);
	if ((n->flags & CTRLDI_N_MASQ6) && n->masq6.family != 0)
		ctrldi_pb_bytes(w, F_BYTES(NODE_SELF_NODE_V6_MASQ_ADDR), n->masq6.addr,
		    n->masq6.family == TK_AF_INET ? 4 : 16);
	if (n->hostname.n)
		ctrldi_pb_str(w, F_STR(NODE_HOSTNAME), n->hostname);
	if (n->os.n)
		ctrldi_pb_str(w, F_STR(NODE_OS), n->os);
	if (n->peerapi4)
		ctrldi_pb_varint_field(w, F_UINT(NODE_PEERAPI4_PORT), n->peerapi4);
	if (n->peerapi6)
		ctrldi_pb_varint_field(w, F_UINT(NODE_PEERAPI6_PORT), n->peerapi6);
	time_encode(w, F_I64(NODE_CREATED_UNIX), &n->created);
	if (n->keysig.n)
		ctrldi_pb_bytes(w, F_BYTES(NODE_KEY_SIGNATURE), n->keysig.p,
		    n->keysig.n);
}

/* Copies for ctrldi_node_freeze: a cursor in one block. */
typedef struct fcur {
	uint8_t *p;
} fcur;

static void *
fc_take(fcur *c, size_t n)
{
	void *p = c->p;

	c->p += n;
	return p;
}

static void *
fc_copy(fcur *c, const void *src, size_t n)
{
	void *p = fc_take(c, n);

	if (n > 0)
		memcpy(p, src, n);
	return p;
}

static ctrldi_str
fc_str(fcur *c, ctrldi_str s)
{
	char *p = fc_take(c, s.n);

	if (s.n)
		memcpy(p, s.p, s.n);
	return (ctrldi_str){ p, s.n };
}

static size_t
strs_bytes(const ctrldi_str *v, uint32_t n)
{
	size_t b = 0;

	for (uint32_t i = 0; i < n; i++)
		b += v[i].n;
	return b;
}

int
ctrldi_node_freeze(const ctrldi_node *n, ctrldi_pbw *scratch,
    const ctrldi_node *same, ctrldi_node **out, bool *identical)
{
	ctrldi_pbw w;
	size_t ptrs, flat, bytes;
	ctrldi_node *f;
	fcur c;

	scratch->len = 0;
	node_encode(scratch, n);
	if (scratch->err) {
		scratch->err = 0;
		return TK_ENOMEM;
	}
	w = *scratch;
	*identical = same != NULL && same->pblen == w.len &&
	    memcmp(same->pb, w.p, w.len) == 0;
	if (*identical && !(same->flags & CTRLDI_N_OPAQUE)) {
		*out = NULL;
		return 0;
	}
	ptrs = n->ncapmap * sizeof(ctrldi_capent) +
	    ((size_t)n->ntags + n->ncaps) * sizeof(ctrldi_str);
	for (uint32_t i = 0; i < n->ncapmap; i++)
		ptrs += n->capmap[i].nvals * sizeof(ctrldi_str);
	flat = ((size_t)n->naddrs + n->nallowed + n->nprimary) *
	    sizeof(tk_ipprefix) + n->neps * sizeof(tk_ipport);
	bytes = (size_t)n->stable_id.n + n->name.n + n->computed_name.n +
	    n->hostname.n + n->os.n + n->keysig.n +
	    strs_bytes(n->tags, n->ntags) + strs_bytes(n->caps, n->ncaps) +
	    w.len;
	for (uint32_t i = 0; i < n->ncapmap; i++)
		bytes += n->capmap[i].name.n +
		    strs_bytes(n->capmap[i].vals, n->capmap[i].nvals);
	if ((f = tk_malloc(sizeof(*f) + ptrs + flat + bytes)) == NULL)
		return TK_ENOMEM;
	*f = *n;
	c.p = (uint8_t *)(f + 1);
	f->capmap = fc_take(&c, n->ncapmap * sizeof(ctrldi_capent));
	f->tags = fc_take(&c, n->ntags * sizeof(ctrldi_str));
	f->caps = fc_take(&c, n->ncaps * sizeof(ctrldi_str));
	for (uint32_t i = 0; i < n->ncapmap; i++) {
		f->capmap[i].nvals = n->capmap[i].nvals;
		f->capmap[i].vals = fc_take(&c,
		    n->capmap[i].nvals * sizeof(ctrldi_str));
	}
	f->addrs = fc_copy(&c, n->addrs, n->naddrs * sizeof(tk_ipprefix));
	f->allowed = fc_copy(&c, n->allowed, n->nallowed * sizeof(tk_ipprefix));
	f->primary = fc_copy(&c, n->primary, n->nprimary * sizeof(tk_ipprefix));
	f->eps = fc_copy(&c, n->eps, n->neps * sizeof(tk_ipport));
	f->stable_id = fc_str(&c, n->stable_id);
	f->name = fc_str(&c, n->name);
	f->computed_name = fc_str(&c, n->computed_name);
	f->hostname = fc_str(&c, n->hostname);
	f->os = fc_str(&c, n->os);
	f->keysig = fc_str(&c, n->keysig);
	for (uint32_t i = 0; i < n->ntags; i++)
		f->tags[i] = fc_str(&c, n->tags[i]);
	for (uint32_t i = 0; i < n->ncaps; i++)
		f->caps[i] = fc_str(&c, n->caps[i]);
	for (uint32_t i = 0; i < n->ncapmap; i++) {
		f->capmap[i].name = fc_str(&c, n->capmap[i].name);
		for (uint32_t j = 0; j < n->capmap[i].nvals; j++)
			f->capmap[i].vals[j] = fc_str(&c, n->capmap[i].vals[j]);
	}
	f->pb = fc_take(&c, w.len);
	memcpy((uint8_t *)f->pb, w.p, w.len);
	f->pblen = (uint32_t)w.len;
	f->pre = 0;
	f->flags &= ~CTRLDI_N_OPAQUE;
	TK_ASSERT(c.p == (uint8_t *)(f + 1) + ptrs + flat + bytes);
	*out = f;
	return 0;
}

int
ctrldi_node_opaque(int64_t id, const uint8_t *pb, size_t n,
    ctrldi_node **out)
{
	ctrldi_node *f;

	if (n > UINT32_MAX)
		return TK_EPROTO;
	if ((f = tk_malloc(sizeof(*f) + n)) == NULL)
		return TK_ENOMEM;
	memset(f, 0, sizeof(*f));
	f->id = id;
	f->flags = CTRLDI_N_OPAQUE;
	f->pb = (const uint8_t *)(f + 1);
	memcpy(f + 1, pb, n);
	f->pblen = (uint32_t)n;
	*out = f;
	return 0;
}

void
ctrldi_node_free(ctrldi_node *n)
{
	tk_free(n);
}

static bool
strs_eq(const ctrldi_str *a, uint32_t na, const ctrldi_str *b, uint32_t nb)
{
	if (na != nb)
		return false;
	for (uint32_t i = 0; i < na; i++)
		if (!ctrldi_str_eq(a[i], b[i]))
			return false;
	return true;
}

static bool
ports_eq(const tk_ipport *a, uint32_t na, const tk_ipport *b, uint32_t nb)
{
	if (na != nb)
		return false;
	for (uint32_t i = 0; i < na; i++)
		if (a[i].ip.family != b[i].ip.family || a[i].port != b[i].port ||
		    memcmp(a[i].ip.addr, b[i].ip.addr, 16) != 0)
			return false;
	return true;
}

static bool
time_eq(const ctrldi_time *a, const ctrldi_time *b)
{
	return a->sec == b->sec && a->nsec == b->nsec;
}

static bool
capmap_eq(const ctrldi_capent *a, uint32_t na, const ctrldi_capent *b,
    uint32_t nb)
{
	if (na != nb)
		return false;
	for (uint32_t i = 0; i < na; i++)
		if (!ctrldi_str_eq(a[i].name, b[i].name) ||
		    !strs_eq(a[i].vals, a[i].nvals, b[i].vals, b[i].nvals))
			return false;
	return true;
}

static bool
masq_eq(const ctrldi_node *a, const ctrldi_node *b, uint32_t bit,
    const tk_ipaddr *x, const tk_ipaddr *y)
{
	if (!(a->flags & bit) && !(b->flags & bit))
		return true;
	if (!(a->flags & bit) || !(b->flags & bit))
		return false;
	return x->family == y->family && memcmp(x->addr, y->addr, 16) == 0;
}

bool
ctrldi_node_diff(const ctrldi_node *was, const ctrldi_node *n,
    ctrldi_patch *pc, bool *any)
{
	const uint32_t fixed = CTRLDI_N_MACHINE_AUTH | CTRLDI_N_UNSIGNED |
	    CTRLDI_N_WG_ONLY | CTRLDI_N_JAILED | CTRLDI_N_EXPIRED;

	TK_ASSERT(!(was->flags & CTRLDI_N_OPAQUE));
	/* fields a PeerChange cannot carry: no patch */
	if (was->id != n->id || !ctrldi_str_eq(was->stable_id, n->stable_id) ||
	    !ctrldi_str_eq(was->name, n->name) || was->user != n->user ||
	    was->sharer != n->sharer ||
	    memcmp(was->machine, n->machine, 32) != 0 ||
	    !ctrldi_prefixes_eq(was->addrs, was->naddrs, n->addrs, n->naddrs) ||
	    !ctrldi_prefixes_eq(was->allowed, was->nallowed, n->allowed, n->nallowed) ||
	    (was->flags & CTRLDI_N_HOSTINFO) != (n->flags & CTRLDI_N_HOSTINFO) ||
	    ((n->flags & CTRLDI_N_HOSTINFO) &&
		was->hostinfo_hash != n->hostinfo_hash) ||
	    !time_eq(&was->created, &n->created) ||
	    !strs_eq(was->tags, was->ntags, n->tags, n->ntags) ||
	    !ctrldi_prefixes_eq(was->primary, was->nprimary, n->primary, n->nprimary) ||
	    (was->flags & fixed) != (n->flags & fixed) ||
	    !masq_eq(was, n, CTRLDI_N_MASQ4, &was->masq4, &n->masq4) ||
	    !masq_eq(was, n, CTRLDI_N_MASQ6, &was->masq6, &n->masq6) ||
	    was->exit_dns_hash != n->exit_dns_hash)
		return false;

	memset(pc, 0, sizeof(*pc));
	pc->id = n->id;
	*any = false;
	if (memcmp(was->key, n->key, 32) != 0) {
		pc->set |= CTRLDI_P_KEY;
		memcpy(pc->key, n->key, 32);
		*any = true;
	}
	if (!time_eq(&was->key_expiry, &n->key_expiry)) {
		pc->set |= CTRLDI_P_KEY_EXPIRY;
		pc->key_expiry = n->key_expiry;
		*any = true;
	}
	if (!ctrldi_str_eq(was->keysig, n->keysig)) {
		/* slices.Clone(nil) is nil: only a non-nil one applies */
		if (n->flags & CTRLDI_N_KEYSIG_NONNIL) {
			pc->set |= CTRLDI_P_KEYSIG;
			pc->keysig = n->keysig;
		}
		*any = true;
	}
	if (memcmp(was->disco, n->disco, 32) != 0) {
		pc->set |= CTRLDI_P_DISCO;
		memcpy(pc->disco, n->disco, 32);
		*any = true;
	}
	if (!ports_eq(was->eps, was->neps, n->eps, n->neps)) {
		if (n->flags & CTRLDI_N_EP_NONNIL) {
			pc->set |= CTRLDI_P_EPS;
			pc->eps = n->eps;
			pc->neps = n->neps;
		}
		*any = true;
	}
	if (was->home_derp != n->home_derp) {
		pc->derp_region = n->home_derp; /* applied only if non-zero */
		*any = true;
	}
	if (was->cap != n->cap) {
		pc->cap = n->cap;
		*any = true;
	}
	if (!capmap_eq(was->capmap, was->ncapmap, n->capmap, n->ncapmap)) {
		pc->set |= CTRLDI_P_CAPMAP;
		pc->capmap = n->capmap;
		pc->ncapmap = n->ncapmap;
		*any = true;
	}
	if ((was->flags & CTRLDI_N_ONLINE_KNOWN) &&
	    (n->flags & CTRLDI_N_ONLINE_KNOWN) &&
	    (was->flags & CTRLDI_N_ONLINE) != (n->flags & CTRLDI_N_ONLINE)) {
		pc->set |= CTRLDI_P_ONLINE;
		pc->online = (n->flags & CTRLDI_N_ONLINE) != 0;
		*any = true;
	}
	if ((was->flags & CTRLDI_N_LAST_SEEN) &&
	    (n->flags & CTRLDI_N_LAST_SEEN) &&
	    !time_eq(&was->last_seen, &n->last_seen)) {
		pc->set |= CTRLDI_P_LAST_SEEN;
		pc->last_seen = n->last_seen;
		*any = true;
	}
	return true;
}

ctrldi_node *
ctrldi_node_copy(ctrldi_arena *a, const ctrldi_node *was)
{
	ctrldi_node *n = ctrldi_arena_alloc(a, sizeof(*n));

	TK_ASSERT(!(was->flags & CTRLDI_N_OPAQUE));
	if (n != NULL) {
		*n = *was;
		n->pb = NULL;
		n->pblen = 0;
	}
	return n;
}

ctrldi_node *
ctrldi_node_patch(ctrldi_arena *a, const ctrldi_node *was,
    const ctrldi_patch *pc)
{
	ctrldi_node *n = ctrldi_node_copy(a, was);

	if (n == NULL)
		return NULL;
	if (pc->derp_region != 0)
		n->home_derp = pc->derp_region;
	if (pc->cap != 0)
		n->cap = pc->cap;
	if (pc->set & CTRLDI_P_EPS) {
		n->eps = pc->eps;
		n->neps = pc->neps;
		n->flags |= CTRLDI_N_EP_NONNIL;
	}
	if (pc->set & CTRLDI_P_KEY)
		memcpy(n->key, pc->key, 32);
	if (pc->set & CTRLDI_P_DISCO)
		memcpy(n->disco, pc->disco, 32);
	if (pc->set & CTRLDI_P_ONLINE) {
		n->flags |= CTRLDI_N_ONLINE_KNOWN;
		n->flags &= ~CTRLDI_N_ONLINE;
		if (pc->online)
			n->flags |= CTRLDI_N_ONLINE;
	}
	if (pc->set & CTRLDI_P_LAST_SEEN) {
		n->flags |= CTRLDI_N_LAST_SEEN;
		n->last_seen = pc->last_seen;
	}
	if (pc->set & CTRLDI_P_KEY_EXPIRY)
		n->key_expiry = pc->key_expiry;
	if (pc->set & CTRLDI_P_KEYSIG) {
		n->keysig = pc->keysig;
		n->flags |= CTRLDI_N_KEYSIG_NONNIL;
	}
	if (pc->set & CTRLDI_P_CAPMAP) {
		n->capmap = pc->capmap;
		n->ncapmap = pc->ncapmap;
	}
	return n;
}

