/*
 * The netmap applied to the WireGuard device and the packet filter: peers
 * from ctrld's "netmap" topic become WireGuard peers (Node.key -> static
 * key, allowed_ips -> allowed IPs, endpoints -> where to send), updated in
 * place so live sessions survive; the filter rules and the node's own
 * addresses feed the inbound filter.  Pure: no I/O, so fuzz_wgd_netmap can
 * drive it with any bytes.
 */
#include <stdio.h>
#include <string.h>

#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"
#include "netmap.h"

#define WGD_SUBSYS "wgd"


/* --- netmap -------------------------------------------------------------- */

static bool
to_ep(const Tk__Bus__V1__AddrPort *a, tk_wg_endpoint *ep)
{
	memset(ep, 0, sizeof(*ep));
	if (a == NULL || !a->has_addr || !a->has_port || a->port == 0 ||
	    a->port > 65535 || (a->addr.len != 4 && a->addr.len != 16))
		return false;
	ep->ep_family = a->addr.len == 4 ? 4 : 6;
	memcpy(ep->ep_addr, a->addr.data, a->addr.len);
	ep->ep_port = (uint16_t)a->port;
	return true;
}

static tk_wg_peer *
find_id(wgdi_netmap *b, int64_t id)
{
	for (tk_wg_peer *p = tk_wg_peer_first(b->dev); p; p = tk_wg_peer_next(p)) {
		wgdi_peer_rec *n = tk_wg_peer_user(p);
		if (n != NULL && n->id == id)
			return p;
	}
	return NULL;
}

static void
rec_free(wgdi_peer_rec *n)
{
	if (n != NULL)
		tk_free(n->caps);
	tk_free(n);
}

static void
drop_peer(wgdi_netmap *b, tk_wg_peer *p)
{
	wgdi_peer_rec *n = tk_wg_peer_user(p);

	tk_wg_peer_remove(b->dev, p);
	rec_free(n);
}

/*
 * The node's CapMap keys, for "cap:" sources.  Only CapMap counts, not the
 * legacy Capabilities list (Go: Node.HasCap is CapMap.Contains).  Fails
 * closed: the old set is dropped before the new one is built, so an
 * allocation failure leaves the peer with no capabilities, never stale
 * ones.
 */
static int
set_caps(wgdi_peer_rec *n, Tk__Bus__V1__CapMapEntry *const *e, size_t count)
{
	size_t bytes = 0, k = 0;
	char **caps, *str;

	tk_free(n->caps);
	n->caps = NULL;
	n->ncaps = 0;
	for (size_t i = 0; i < count; i++)
		if (e[i]->name != NULL && e[i]->name[0] != '\0')
			bytes += strlen(e[i]->name) + 1;
	if (bytes == 0)
		return 0;
	if ((caps = tk_malloc(count * sizeof(char *) + bytes)) == NULL)
		return TK_ENOMEM;
	str = (char *)(caps + count);
	for (size_t i = 0; i < count; i++) {
		if (e[i]->name == NULL || e[i]->name[0] == '\0')
			continue;
		size_t l = strlen(e[i]->name) + 1;
		memcpy(str, e[i]->name, l);
		caps[k++] = str;
		str += l;
	}
	n->caps = caps;
	n->ncaps = k;
	return 0;
}

/* The peer's disco key (a wrong length: none, so its disco is dropped);
 * a new key forgets what the old one said. */
static void
set_disco(wgdi_peer_rec *n, bool has, const uint8_t *k, size_t len)
{
	bool ok = has && len == 32;

	if (ok && n->has_disco && memcmp(n->disco, k, 32) == 0)
		return;
	n->has_disco = ok;
	if (ok)
		memcpy(n->disco, k, 32);
	n->ncmm = 0;
}

/* Addresses and capabilities of the node, for cap: sources. */
static int
rec_identity(wgdi_peer_rec *n, const Tk__Bus__V1__Node *node)
{
	n->naddrs = 0;
	for (size_t i = 0; i < node->n_addresses && n->naddrs < WGDI_MAX_ADDRS; i++) {
		const Tk__Bus__V1__Prefix *x = node->addresses[i];
		if (!x->has_addr || (x->addr.len != 4 && x->addr.len != 16))
			continue;
		n->addr_len[n->naddrs] = (uint8_t)x->addr.len;
		memcpy(n->addr[n->naddrs++], x->addr.data, x->addr.len);
	}
	n->unsigned_only = node->has_unsigned_peer_api_only &&
	    node->unsigned_peer_api_only;
	return set_caps(n, node->cap_map, node->n_cap_map);
}

bool
wgdi_netmap_has_cap(void *arg, int family, const uint8_t *src, const char *cap)
{
	wgdi_netmap *b = arg;
	size_t len = family == 4 ? 4 : 16;
	tk_wg_peer *p = tk_wg_device_route(b->dev, family, src);
	wgdi_peer_rec *n = p ? tk_wg_peer_user(p) : NULL;
	bool own = false;

	/* srcIPHasCapForFilter: a peer outside tailnet lock
	 * (UnsignedPeerAPIOnly) has no capabilities for the filter */
	if (n == NULL || n->unsigned_only || cap == NULL || cap[0] == '\0')
		return false;
	/* a node's capabilities go with its own addresses, not the subnets
	 * it routes (Go looks the node up by address: NodeByAddr) */
	for (unsigned i = 0; i < n->naddrs && !own; i++)
		own = n->addr_len[i] == len && memcmp(n->addr[i], src, len) == 0;
	if (!own)
		return false;
	for (size_t i = 0; i < n->ncaps; i++)
		if (strcmp(n->caps[i], cap) == 0)
			return true;
	return false;
}

/*
 * Where to send: the endpoint wgd uses now stays while the netmap still
 * lists it (or while a session shows the peer roamed there); otherwise the
 * first listed endpoint.  Path selection (disco) replaces this choice.
 */
static void
apply_endpoints(const wgdi_netmap *nm, tk_wg_peer *p, wgdi_peer_rec *n,
    Tk__Bus__V1__AddrPort **eps, size_t neps, bool listed)
{
	tk_wg_endpoint cur, first, e;
	bool have_first = false;

	tk_wg_peer_get_endpoint(p, &cur);
	if (listed) {
		/* the netmap's endpoints: direct-path candidates (path.c) */
		tk_wg_endpoint list[WGDI_PATH_MAX_CANDS];
		size_t k = 0;
		for (size_t i = 0; i < neps && k < WGDI_PATH_MAX_CANDS; i++)
			if (to_ep(eps[i], &list[k]))
				k++;
		wgdi_path_set_cands(&n->path, WGDI_CAND_NETMAP, list, k);
	}
	if (nm->derp && n->home_derp > 0 && n->home_derp <= 65535) {
		/* No direct path is confirmed without disco: Go's magicsock
		 * sends to the peer's home DERP region then (endpoint.send
		 * with no bestAddr).  A session that roamed to another region
		 * keeps it until the home region changes. */
		if (tk_wg_endpoint_is_derp(&cur) &&
		    (cur.ep_port == n->home_derp ||
			(tk_wg_endpoint_is_derp(&n->ep) &&
			    n->ep.ep_port == n->home_derp &&
			    tk_wg_peer_has_session(p))))
			return;
		tk_wg_endpoint_derp(&e, (uint16_t)n->home_derp);
		tk_wg_peer_set_endpoint(p, &e);
		n->ep = e;
		return;
	}
	for (size_t i = 0; i < neps; i++) {
		if (!to_ep(eps[i], &e))
			continue;
		if (cur.ep_family && wgdi_ep_eq(&cur, &e)) {
			n->ep = e;
			return; /* still listed: keep it */
		}
		if (!have_first) {
			first = e;
			have_first = true;
		}
	}
	if (!have_first)
		return; /* nothing usable: keep what we have */
	if (n->ep.ep_family && wgdi_ep_eq(&n->ep, &first) && cur.ep_family &&
	    tk_wg_peer_has_session(p))
		return; /* same list as before, the peer roamed: keep its address */
	tk_wg_peer_set_endpoint(p, &first);
	n->ep = first;
}

/* tsaddr.IsTailscaleIP: 100.64.0.0/10 except ChromeOS's 100.115.92.0/23,
 * and fd7a:115c:a1e0::/48. */
bool
wgdi_is_tailscale_ip(int family, const uint8_t *a)
{
	static const uint8_t ula[6] = { 0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0 };

	if (family == 4)
		return a[0] == 100 && (a[1] & 0xc0) == 64 &&
		    !(a[1] == 115 && (a[2] & 0xfe) == 92);
	return memcmp(a, ula, sizeof(ula)) == 0;
}

static bool
prefix_eq(const Tk__Bus__V1__Prefix *x, const Tk__Bus__V1__Prefix *y)
{
	unsigned xb = x->has_bits ? x->bits : (unsigned)x->addr.len * 8;
	unsigned yb = y->has_bits ? y->bits : (unsigned)y->addr.len * 8;

	return y->has_addr && x->addr.len == y->addr.len && xb == yb &&
	    memcmp(x->addr.data, y->addr.data, x->addr.len) == 0;
}

/*
 * Which of a peer's AllowedIPs go into WireGuard, as Go's routemanager
 * decides (peerViewOf, RouteManager.eligible):
 *   - its own addresses (Node.addresses) and any single Tailscale IP
 *     (a VIP service it hosts): always;
 *   - exit routes (0.0.0.0/0, ::/0): only for the selected exit node.
 *     Prefs (ExitNodeID) reach no component yet, so none is selected and
 *     no peer gets them: an exit node cannot inject packets with any
 *     source, and two exit nodes no longer fight over 0.0.0.0/0;
 *   - every other prefix is a subnet route: only with Prefs.RouteAll
 *     (--accept-routes, off by default on Linux: ipn DefaultRouteAll).
 *     Without Prefs on the bus it stays off.
 * An expired peer contributes nothing; apply_node keeps it out of the
 * device altogether.
 */
static bool
aip_eligible(const Tk__Bus__V1__Node *node, const Tk__Bus__V1__Prefix *x,
    unsigned bits)
{
	int fam = x->addr.len == 4 ? 4 : 6;

	if (bits == x->addr.len * 8u && wgdi_is_tailscale_ip(fam, x->addr.data))
		return true;
	for (size_t i = 0; i < node->n_addresses; i++)
		if (prefix_eq(x, node->addresses[i]))
			return true;
	return false; /* an exit or subnet route: not selected, not accepted */
}

static int
apply_aips(wgdi_netmap *b, tk_wg_peer *p, const Tk__Bus__V1__Node *node)
{
	int rv = 0;
	size_t skipped = 0;

	tk_wg_peer_clear_allowed_ips(p);
	for (size_t i = 0; i < node->n_allowed_ips; i++) {
		const Tk__Bus__V1__Prefix *x = node->allowed_ips[i];
		if (!x->has_addr || (x->addr.len != 4 && x->addr.len != 16) ||
		    (x->has_bits && x->bits > x->addr.len * 8))
			continue;
		unsigned bits = x->has_bits ? x->bits : (unsigned)x->addr.len * 8;
		if (!aip_eligible(node, x, bits)) {
			skipped++;
			continue;
		}
		int r = tk_wg_peer_add_allowed_ip(p, x->addr.len == 4 ? 4 : 6,
		    x->addr.data, bits);
		if (r != 0)
			rv = r;
	}
	b->routes_skipped += skipped;
	return rv;
}

static int
apply_node(wgdi_netmap *b, const Tk__Bus__V1__Node *node)
{
	tk_wg_peer *p;
	wgdi_peer_rec *n;
	uint8_t self[32];

	if (!node->has_id || !node->has_key || node->key.len != 32) {
		b->peers_bad++;
		return 0; /* unusable record: skip it, keep the rest */
	}
	if (tk_wg_device_public_key(b->dev, self) &&
	    memcmp(self, node->key.data, 32) == 0)
		return 0; /* ourselves */
	p = find_id(b, node->id);
	if (node->has_expired && node->expired) {
		/* routemanager: an expired peer contributes no prefixes and
		 * "should not exist in the WireGuard device at all"; a later
		 * record that is not expired adds it again */
		if (p != NULL)
			drop_peer(b, p);
		b->peers_expired++;
		return 0;
	}
	if (p != NULL && memcmp(tk_wg_peer_public_key(p), node->key.data, 32) != 0) {
		drop_peer(b, p); /* the node rotated its key */
		p = NULL;
	}
	if (p == NULL) {
		int rv;
		if ((p = tk_wg_peer_find(b->dev, node->key.data)) == NULL &&
		    (rv = tk_wg_peer_add(b->dev, node->key.data, &p)) != 0) {
			if (rv == TK_ENOMEM)
				return rv;
			b->peers_bad++;
			return 0;
		}
		n = tk_wg_peer_user(p);
		if (n == NULL) {
			if ((n = tk_calloc(1, sizeof(*n))) == NULL) {
				tk_wg_peer_remove(b->dev, p);
				return TK_ENOMEM;
			}
			tk_wg_peer_set_user(p, n);
		}
		n->id = node->id;
	}
	n = tk_wg_peer_user(p);
	n->gen = b->gen;
	/* restrictions first, so a failure below never leaves them stale:
	 * the jail, then the identity (on failure: no caps) */
	n->jailed = node->has_is_jailed && node->is_jailed;
	int rv = rec_identity(n, node);
	if (rv != 0 || (rv = apply_aips(b, p, node)) == TK_ENOMEM)
		return rv;
	n->home_derp = node->has_home_derp ? node->home_derp : 0;
	set_disco(n, node->has_disco_key, node->disco_key.data,
	    node->disco_key.len);
	apply_endpoints(b, p, n, node->endpoints, node->n_endpoints, true);
	return 0;
}

typedef struct aip_list {
	struct {
		int family;
		uint8_t addr[16];
		unsigned bits;
	} *v;
	size_t n, cap;
	bool failed;
} aip_list;

static void
collect_aip(void *arg, int family, const uint8_t *addr, unsigned bits)
{
	aip_list *l = arg;

	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 8;
		void *nv = tk_realloc(l->v, nc * sizeof(*l->v));
		if (nv == NULL) {
			l->failed = true;
			return;
		}
		l->v = nv;
		l->cap = nc;
	}
	l->v[l->n].family = family;
	memcpy(l->v[l->n].addr, addr, family == 4 ? 4 : 16);
	l->v[l->n].bits = bits;
	l->n++;
}

static void
apply_patch(wgdi_netmap *b, const Tk__Bus__V1__PeerChange *pc)
{
	tk_wg_peer *p;

	if (!pc->has_node_id || (p = find_id(b, pc->node_id)) == NULL)
		return; /* unknown ids are ignored (ctrl.proto) */
	if (pc->has_key && pc->key.len == 32 &&
	    memcmp(pc->key.data, tk_wg_peer_public_key(p), 32) != 0) {
		/* a new key is a new WireGuard peer with the same allowed IPs
		 * and endpoint */
		aip_list al = { 0 };
		tk_wg_peer *q;
		tk_wg_endpoint ep;
		wgdi_peer_rec *n = tk_wg_peer_user(p);

		tk_wg_peer_allowed_ips(p, collect_aip, &al);
		if (al.failed || tk_wg_peer_find(b->dev, pc->key.data) != NULL ||
		    tk_wg_peer_add(b->dev, pc->key.data, &q) != 0) {
			tk_free(al.v);
			b->peers_bad++;
			return;
		}
		tk_wg_peer_get_endpoint(p, &ep);
		tk_wg_peer_set_user(p, NULL);
		tk_wg_peer_remove(b->dev, p);
		for (size_t i = 0; i < al.n; i++)
			tk_wg_peer_add_allowed_ip(q, al.v[i].family, al.v[i].addr,
			    al.v[i].bits);
		tk_free(al.v);
		if (ep.ep_family)
			tk_wg_peer_set_endpoint(q, &ep);
		tk_wg_peer_set_user(q, n);
		p = q;
	}
	wgdi_peer_rec *r = tk_wg_peer_user(p);
	if (pc->cap_map != NULL &&
	    set_caps(r, pc->cap_map->entries, pc->cap_map->n_entries) != 0)
		b->bad++; /* left with no capabilities: fails closed */
	if (pc->has_derp_region)
		r->home_derp = pc->derp_region;
	if (pc->has_disco_key)
		set_disco(r, true, pc->disco_key.data, pc->disco_key.len);
	if (pc->endpoints != NULL)
		apply_endpoints(b, p, r, pc->endpoints->items,
		    pc->endpoints->n_items, true);
	else if (pc->has_derp_region)
		apply_endpoints(b, p, r, NULL, 0, false);
}

/* The node's own addresses: the filter's "local" set. */
static void
apply_self(wgdi_netmap *b, const Tk__Bus__V1__Node *self)
{
	tk_wg_prefix loc[16];
	size_t n = 0;
	uint8_t ns = 0, len[WGDI_MAX_ADDRS], addr[WGDI_MAX_ADDRS][16];

	memset(addr, 0, sizeof(addr));
	for (size_t i = 0; i < self->n_addresses && ns < WGDI_MAX_ADDRS; i++) {
		const Tk__Bus__V1__Prefix *x = self->addresses[i];
		if (!x->has_addr || (x->addr.len != 4 && x->addr.len != 16))
			continue;
		len[ns] = (uint8_t)x->addr.len;
		memcpy(addr[ns++], x->addr.data, x->addr.len);
	}
	if (ns != b->nself || memcmp(len, b->self_len, ns) != 0 ||
	    memcmp(addr, b->self_addr, sizeof(addr)) != 0) {
		b->nself = ns;
		memcpy(b->self_len, len, ns);
		memcpy(b->self_addr, addr, sizeof(addr));
		b->self_changed = true;
	}
	if (b->filter == NULL)
		return;
	for (size_t i = 0; i < self->n_addresses && n < 16; i++) {
		const Tk__Bus__V1__Prefix *x = self->addresses[i];
		if (!x->has_addr || (x->addr.len != 4 && x->addr.len != 16))
			continue;
		memset(&loc[n], 0, sizeof(loc[n]));
		loc[n].pf_family = x->addr.len == 4 ? 4 : 6;
		memcpy(loc[n].pf_addr, x->addr.data, x->addr.len);
		/* the node owns the address itself, not the prefix it is in */
		loc[n].pf_bits = (uint8_t)(x->addr.len * 8);
		n++;
	}
	tk_wg_filter_set_local(b->filter, loc, n);
}

static bool
to_ipmatch(const Tk__Bus__V1__IPMatch *m, tk_wg_ipmatch *o)
{
	memset(o, 0, sizeof(*o));
	switch (m->match_case) {
	case TK__BUS__V1__IPMATCH__MATCH_ANY:
		o->im_kind = TK_WG_IPM_ANY;
		return true;
	case TK__BUS__V1__IPMATCH__MATCH_PREFIX: {
		const Tk__Bus__V1__Prefix *x = m->prefix;
		if (x == NULL || !x->has_addr ||
		    (x->addr.len != 4 && x->addr.len != 16))
			return false;
		unsigned bits = x->has_bits ? x->bits : (unsigned)x->addr.len * 8;
		if (bits > x->addr.len * 8)
			return false;
		o->im_kind = TK_WG_IPM_PREFIX;
		o->im_prefix.pf_family = x->addr.len == 4 ? 4 : 6;
		memcpy(o->im_prefix.pf_addr, x->addr.data, x->addr.len);
		o->im_prefix.pf_bits = (uint8_t)bits;
		return true;
	}
	case TK__BUS__V1__IPMATCH__MATCH_RANGE: {
		const Tk__Bus__V1__IPRange *r = m->range;
		if (r == NULL || !r->has_first || !r->has_last ||
		    r->first.len != r->last.len ||
		    (r->first.len != 4 && r->first.len != 16))
			return false;
		o->im_kind = TK_WG_IPM_RANGE;
		o->im_range.rg_family = r->first.len == 4 ? 4 : 6;
		memcpy(o->im_range.rg_first, r->first.data, r->first.len);
		memcpy(o->im_range.rg_last, r->last.data, r->last.len);
		return memcmp(r->first.data, r->last.data, r->first.len) <= 0;
	}
	case TK__BUS__V1__IPMATCH__MATCH_CAP:
		if (m->cap == NULL)
			return false;
		o->im_kind = TK_WG_IPM_CAP;
		o->im_cap = m->cap;
		return true;
	default:
		return false;
	}
}

/*
 * Compiles a PacketFilter into the inbound filter.  An entry this version
 * cannot read is skipped and the rest of its rule kept, as Go's
 * MatchesFromFilterRules skips an unparseable IP: a rule only narrows.
 */
static int
apply_filter(wgdi_netmap *b, const Tk__Bus__V1__PacketFilter *pf)
{
	size_t nsrc = 0, ndst = 0, skipped = 0;
	int rv;

	if (b->filter == NULL)
		return 0;
	for (size_t i = 0; i < pf->n_rules; i++) {
		nsrc += pf->rules[i]->n_src_ips;
		ndst += pf->rules[i]->n_dst_ports;
	}
	tk_wg_rule *rules = tk_calloc(pf->n_rules + 1, sizeof(*rules));
	tk_wg_ipmatch *src = tk_calloc(nsrc + 1, sizeof(*src));
	tk_wg_portrange *dst = tk_calloc(ndst + 1, sizeof(*dst));
	if (!rules || !src || !dst) {
		rv = TK_ENOMEM;
		goto out;
	}
	nsrc = ndst = 0;
	for (size_t i = 0; i < pf->n_rules; i++) {
		const Tk__Bus__V1__FilterRule *fr = pf->rules[i];
		tk_wg_rule *r = &rules[i];

		r->r_src = &src[nsrc];
		r->r_dst = &dst[ndst];
		for (size_t j = 0; j < fr->n_src_ips; j++) {
			if (to_ipmatch(fr->src_ips[j], &src[nsrc + r->r_nsrc]))
				r->r_nsrc++;
			else
				skipped++;
		}
		for (size_t j = 0; j < fr->n_dst_ports; j++) {
			const Tk__Bus__V1__NetPortRange *d = fr->dst_ports[j];
			tk_wg_portrange *o = &dst[ndst + r->r_ndst];
			if (d->ip == NULL || !to_ipmatch(d->ip, &o->pr_ip) ||
			    o->pr_ip.im_kind == TK_WG_IPM_CAP ||
			    (d->has_first_port && d->first_port > 65535) ||
			    (d->has_last_port && d->last_port > 65535)) {
				skipped++;
				continue;
			}
			o->pr_first = d->has_first_port ? (uint16_t)d->first_port : 0;
			o->pr_last = d->has_last_port ? (uint16_t)d->last_port : 65535;
			r->r_ndst++;
		}
		/* numbers above 255 are ignored by the filter, as tailcfg.go
		 * does; a list of only those matches no protocol */
		r->r_protos = fr->ip_proto;
		r->r_nprotos = fr->n_ip_proto;
		nsrc += r->r_nsrc;
		ndst += r->r_ndst;
	}
	if (skipped) {
		b->bad += skipped;
		TK_WARN(WGD_SUBSYS, "packet filter: %zu entries this version cannot "
		    "read were skipped", skipped);
	}
	rv = tk_wg_filter_set_rules(b->filter, rules, pf->n_rules);
	if (rv == 0)
		b->filter_set = true;
	if (rv != 0)
		TK_WARN(WGD_SUBSYS, "packet filter refused: %s",
		    tk_wg_filter_error(b->filter));
out:
	tk_free(rules);
	tk_free(src);
	tk_free(dst);
	return rv;
}

/* After every apply: how many peers are jailed (0 spares the lookup). */
static void
count_jailed(wgdi_netmap *b)
{
	b->njailed = 0;
	for (tk_wg_peer *p = tk_wg_peer_first(b->dev); p; p = tk_wg_peer_next(p)) {
		wgdi_peer_rec *n = tk_wg_peer_user(p);
		if (n != NULL && n->jailed)
			b->njailed++;
	}
}

bool
wgdi_netmap_src_jailed(const wgdi_netmap *b, int family, const uint8_t *src)
{
	tk_wg_peer *p;
	wgdi_peer_rec *n;

	if (b->njailed == 0)
		return false;
	/* wrap.go inboundPacketIsJailed: the peer that owns the source */
	p = tk_wg_device_route(b->dev, family, src);
	n = p ? tk_wg_peer_user(p) : NULL;
	return n != NULL && n->jailed;
}

int
wgdi_netmap_snapshot(wgdi_netmap *b, const uint8_t *body, size_t len)
{
	Tk__Bus__V1__Netmap *nm = tk__bus__v1__netmap__unpack(NULL, len, body);
	int rv = 0;

	if (nm == NULL) {
		b->bad++;
		TK_WARN(WGD_SUBSYS, "netmap snapshot undecodable (%zu bytes)", len);
		return TK_EPROTO;
	}
	b->gen++;
	for (size_t i = 0; i < nm->n_peers && rv == 0; i++)
		rv = apply_node(b, nm->peers[i]);
	if (rv == 0) {
		/* peers the snapshot no longer lists */
		tk_wg_peer *p = tk_wg_peer_first(b->dev), *next;
		for (; p != NULL; p = next) {
			wgdi_peer_rec *n = tk_wg_peer_user(p);
			next = tk_wg_peer_next(p);
			if (n != NULL && n->gen != b->gen)
				drop_peer(b, p);
		}
		if (nm->self != NULL)
			apply_self(b, nm->self);
		if (b->derp_map_cb != NULL)
			b->derp_map_cb(b->derp_map_arg, nm->derp_map);
		/* no filter received yet: the filter stays (or becomes)
		 * deny-all; a filter once set can only be narrowed to an
		 * empty rule set */
		if (nm->packet_filter != NULL && nm->packet_filter->received)
			rv = apply_filter(b, nm->packet_filter);
		else if (b->filter_set)
			rv = apply_filter(b, &(Tk__Bus__V1__PacketFilter)
			    TK__BUS__V1__PACKET_FILTER__INIT);
	}
	count_jailed(b);
	if (rv == 0) {
		b->snapshots++;
		TK_INFO(WGD_SUBSYS, "netmap: %zu peers, filter %s", nm->n_peers,
		    nm->packet_filter && nm->packet_filter->n_rules ? "set" :
		    "deny-all");
	}
	tk__bus__v1__netmap__free_unpacked(nm, NULL);
	return rv;
}

int
wgdi_netmap_delta(wgdi_netmap *b, const uint8_t *body, size_t len)
{
	Tk__Bus__V1__NetmapDelta *d =
	    tk__bus__v1__netmap_delta__unpack(NULL, len, body);
	int rv = 0;

	if (d == NULL) {
		b->bad++;
		TK_WARN(WGD_SUBSYS, "netmap delta undecodable (%zu bytes)", len);
		return TK_EPROTO; /* resync */
	}
	for (size_t i = 0; i < d->n_peers_removed; i++) {
		tk_wg_peer *p = find_id(b, d->peers_removed[i]);
		if (p != NULL)
			drop_peer(b, p);
	}
	for (size_t i = 0; i < d->n_peers_changed && rv == 0; i++) {
		tk_wg_peer *p = find_id(b, d->peers_changed[i]->id);
		if (p != NULL)
			((wgdi_peer_rec *)tk_wg_peer_user(p))->gen = b->gen;
		rv = apply_node(b, d->peers_changed[i]);
	}
	for (size_t i = 0; i < d->n_peers_patched; i++)
		apply_patch(b, d->peers_patched[i]);
	if (rv == 0 && d->self != NULL)
		apply_self(b, d->self);
	if (rv == 0 && d->derp_map != NULL && b->derp_map_cb != NULL)
		b->derp_map_cb(b->derp_map_arg, d->derp_map);
	if (rv == 0 && d->packet_filter != NULL)
		rv = apply_filter(b, d->packet_filter);
	count_jailed(b);
	if (rv == 0)
		b->deltas++;
	tk__bus__v1__netmap_delta__free_unpacked(d, NULL);
	return rv;
}


void
wgdi_netmap_forget(wgdi_netmap *b)
{
	if (b->dev == NULL)
		return;
	for (tk_wg_peer *p = tk_wg_peer_first(b->dev); p; p = tk_wg_peer_next(p)) {
		rec_free(tk_wg_peer_user(p));
		tk_wg_peer_set_user(p, NULL);
	}
}
