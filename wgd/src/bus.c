/*
 * wgd on the buses (ARCHITECTURE.md "Buses", "State"):
 *
 *   state       sqlite wgd.db in the state directory (0700/0600): the node
 *               private key, the disco private key, the listen port.  Keys
 *               are generated on first start and never leave this file
 *               except as public keys.
 *   publisher   topic "keys" (Keys: node and disco public keys); req/rep
 *               "status" (StatusResponse with per-peer state and every
 *               drop counter) and "tk.snapshot".
 *   subscriber  ctrld's topic "netmap" (Netmap snapshot, NetmapDelta
 *               deltas): peers become WireGuard peers (Node.key -> static
 *               key, allowed_ips -> allowed IPs, endpoints -> where to send),
 *               applied in place so live sessions survive; the packet
 *               filter and the node's own addresses feed the inbound filter.
 *   packet bus  pair1, wgd listens: batches of IP packets to and from
 *               netstackd or the tk-tun adapter.
 */
#include <stdio.h>
#include <string.h>

#include "tk/bus.h"
#include "tk/bus_batch.h"
#include "tk/bus_rpc.h"
#include "tk/bus_topic.h"
#include "tk/err.h"
#include "tk/keys.h"
#include "tk/log.h"
#include "tk/mem.h"
#include "tk/state.h"
#include "tk/wg_filter.h"
#include "tk/bus/v1/ctrl.pb-c.h"
#include "wgd_int.h"

#define VERSION "0.1"

/* What wgd remembers of a peer that came from the netmap. */
typedef struct np {
	int64_t id;
	unsigned gen;	   /* last snapshot that listed it */
	tk_wg_endpoint ep; /* the endpoint the netmap gave last */
} np;

struct wgdi_bus {
	wgd *w;
	tk_state *st;
	tk_node_priv node_priv;
	tk_disco_priv disco_priv;
	tk_node_pub node_pub;
	tk_disco_pub disco_pub;

	tk_rpc_server *rpc;
	tk_topic_pub *pub;
	tk_topic *t_keys;

	tk_topic_sub *sub;
	unsigned gen;
	bool synced_once;
	uint64_t nm_bad, nm_snapshots, nm_deltas, nm_peers_bad;

	tk_wg_filter *filter;
	bool filter_set; /* rules were set at least once */

	nng_socket pkt;
	bool pkt_open;
	tk_bus_reader *pkt_reader;
	tk_bus_batch_enc enc;
	bool enc_live;
	tk_bus_batch_stats pkt_stats;
	uint64_t pkt_rx, pkt_tx, pkt_tx_dropped, pkt_bad_rec;
};

/* --- protobuf helpers ---------------------------------------------------- */

static int
pack(const ProtobufCMessage *m, tk_buf *out)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *p;
	int rv;

	if (n == 0)
		return 0;
	if ((rv = tk_buf_extend(out, n, &p)) != 0)
		return rv;
	protobuf_c_message_pack(m, p);
	return 0;
}

/* --- state --------------------------------------------------------------- */

static int
load_key(wgdi_bus *b, const char *name, uint8_t k[TK_KEY_LEN], bool *created)
{
	int rv = tk_state_get_secret(b->st, name, k, TK_KEY_LEN);

	*created = false;
	if (rv == 0 && !tk_key_is_zero(k))
		return 0;
	if (rv != 0 && rv != TK_ENOENT)
		return rv;
	tk_key_generate(k, NULL);
	*created = true;
	return tk_state_put_secret(b->st, name, k, TK_KEY_LEN);
}

static int
open_state(wgdi_bus *b, uint16_t *port, char *err, size_t errlen)
{
	tk_state_config sc = { .dir = b->w->state_dir, .name = "wgd.db" };
	bool c1, c2;
	int rv;
	int64_t p;

	if ((rv = tk_state_open(&b->st, &sc, err, errlen)) != 0)
		return rv;
	if ((rv = tk_state_begin(b->st)) != 0 ||
	    (rv = load_key(b, "node_private_key", b->node_priv.b, &c1)) != 0 ||
	    (rv = load_key(b, "disco_private_key", b->disco_priv.b, &c2)) != 0 ||
	    (rv = tk_state_commit(b->st)) != 0) {
		tk_state_rollback(b->st);
		snprintf(err, errlen, "state %s/wgd.db: keys: %s", b->w->state_dir,
		    tk_strerror(rv));
		return rv;
	}
	if (*port == 0 && tk_state_get_int(b->st, "listen_port", &p) == 0 &&
	    p > 0 && p < 65536)
		*port = (uint16_t)p;
	char fp[TK_KEY_FP_MAX];
	tk_node_priv_public(&b->node_priv, &b->node_pub);
	tk_disco_priv_public(&b->disco_priv, &b->disco_pub);
	tk_key_fingerprint(fp, "nodekey:", b->node_pub.b);
	TK_INFO(WGD_SUBSYS, "node key %s (%s)", fp, c1 ? "new" : "from state");
	return 0;
}

void
wgdi_bus_port_changed(wgdi_bus *b, uint16_t port)
{
	if (b->st != NULL)
		tk_state_put_int(b->st, "listen_port", port);
}

/* --- publisher ----------------------------------------------------------- */

static int
keys_snapshot(void *arg, tk_buf *out)
{
	wgdi_bus *b = arg;
	Tk__Bus__V1__Keys k = TK__BUS__V1__KEYS__INIT;
	uint8_t pub[32];

	if (tk_wg_device_public_key(b->w->dev, pub)) {
		k.has_node_key = true;
		k.node_key.data = pub;
		k.node_key.len = 32;
	}
	if (b->st != NULL) {
		k.has_disco_key = true;
		k.disco_key.data = b->disco_pub.b;
		k.disco_key.len = 32;
	}
	return pack(&k.base, out);
}

void
wgdi_bus_key_changed(wgdi_bus *b)
{
	uint8_t priv[32];

	if (b->st != NULL && tk_wg_device_private_key(b->w->dev, priv)) {
		memcpy(b->node_priv.b, priv, 32);
		tk_state_put_secret(b->st, "node_private_key", priv, 32);
		tk_secure_zero(priv, sizeof(priv));
	}
	if (b->t_keys != NULL) {
		tk_buf buf;
		tk_buf_init(&buf);
		if (keys_snapshot(b, &buf) == 0)
			tk_topic_publish(b->t_keys, buf.data, buf.len);
		tk_buf_fini(&buf);
	}
}

static void
counter(Tk__Bus__V1__Counter *c, Tk__Bus__V1__Counter **pp, size_t *n,
    const char *name, uint64_t v)
{
	tk__bus__v1__counter__init(c);
	c->name = (char *)name;
	c->has_value = true;
	c->value = v;
	pp[(*n)++] = c;
}

#define NCOUNTERS 48

static int
rpc_status(void *arg, const uint8_t *body, size_t len, tk_buf *reply)
{
	wgdi_bus *b = arg;
	wgd *w = b->w;
	Tk__Bus__V1__StatusRequest *req = NULL;
	Tk__Bus__V1__StatusResponse r = TK__BUS__V1__STATUS_RESPONSE__INIT;
	Tk__Bus__V1__Counter cs[NCOUNTERS], *cp[NCOUNTERS];
	Tk__Bus__V1__PeerStatus *ps = NULL, **pp = NULL;
	Tk__Bus__V1__AddrPort *aps = NULL;
	tk_wg_endpoint *eps = NULL;
	size_t npeers = tk_wg_peer_count(w->dev), nc = 0, i = 0;
	tk_wg_stats s;
	int rv = 0;
	bool peers = true;

	if (len > 0) {
		req = tk__bus__v1__status_request__unpack(NULL, len, body);
		if (req == NULL) {
			tk_buf_append_str(reply, "status: undecodable StatusRequest");
			return TK_EPROTO;
		}
		if (req->has_peers)
			peers = req->peers;
		tk__bus__v1__status_request__free_unpacked(req, NULL);
	}
	r.component = "wgd";
	r.version = VERSION;
	r.has_state = true;
	r.state = tk_wg_device_public_key(w->dev, (uint8_t[32]){ 0 }) ?
	    TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_RUNNING :
	    TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_NO_STATE;
	r.has_uptime_ms = true;
	r.uptime_ms = (int64_t)((tk_loop_now(w->loop) - w->started_ns) / 1000000);
	tk_wg_device_get_stats(w->dev, &s);
#define C(f) counter(&cs[nc], cp, &nc, #f, s.f)
	C(rx_datagrams); C(tx_datagrams); C(rx_data); C(tx_data);
	C(rx_keepalive); C(tx_keepalive); C(rx_handshake); C(tx_handshake);
	C(rx_cookie); C(tx_cookie); C(drop_short); C(drop_type); C(drop_mac1);
	C(drop_mac2); C(drop_ratelimit); C(drop_unknown_peer);
	C(drop_unknown_index); C(drop_decrypt); C(drop_replay);
	C(drop_timestamp); C(drop_expired); C(drop_bad_inner); C(drop_src_ip);
	C(drop_no_route); C(drop_no_key); C(drop_staged_overflow);
	C(rx_filtered); C(handshakes_completed);
#undef C
	counter(&cs[nc], cp, &nc, "tx_errors", w->tx_errors);
	counter(&cs[nc], cp, &nc, "tx_no_endpoint", w->tx_no_endpoint);
	counter(&cs[nc], cp, &nc, "tx_family", w->tx_family);
	counter(&cs[nc], cp, &nc, "netmap_bad", b->nm_bad);
	counter(&cs[nc], cp, &nc, "netmap_peers_bad", b->nm_peers_bad);
	counter(&cs[nc], cp, &nc, "netmap_snapshots", b->nm_snapshots);
	counter(&cs[nc], cp, &nc, "netmap_deltas", b->nm_deltas);
	counter(&cs[nc], cp, &nc, "pkt_rx", b->pkt_rx);
	counter(&cs[nc], cp, &nc, "pkt_tx", b->pkt_tx);
	counter(&cs[nc], cp, &nc, "pkt_tx_dropped", b->pkt_tx_dropped);
	counter(&cs[nc], cp, &nc, "pkt_bad_batches", b->pkt_stats.bs_dropped);
	tk_wg_filter_stats fs;
	char fnames[TK_WG_VERDICT_COUNT][40];
	if (b->filter != NULL) {
		tk_wg_filter_stats_get(b->filter, &fs);
		for (int v = 0; v < TK_WG_VERDICT_COUNT && nc < NCOUNTERS; v++) {
			snprintf(fnames[v], sizeof(fnames[v]), "filter_in_%s",
			    tk_wg_verdict_name((tk_wg_verdict)v));
			counter(&cs[nc], cp, &nc, fnames[v], fs.fs_in[v]);
		}
	}
	r.counters = cp;
	r.n_counters = nc;
	Tk__Bus__V1__Node self = TK__BUS__V1__NODE__INIT;
	uint8_t selfkey[32];
	if (tk_wg_device_public_key(w->dev, selfkey)) {
		self.has_key = true;
		self.key.data = selfkey;
		self.key.len = 32;
	}
	if (b->st != NULL) {
		self.has_disco_key = true;
		self.disco_key.data = b->disco_pub.b;
		self.disco_key.len = 32;
	}
	r.self = &self;
	if (peers && npeers > 0) {
		ps = tk_calloc(npeers, sizeof(*ps));
		pp = tk_calloc(npeers, sizeof(*pp));
		aps = tk_calloc(npeers, sizeof(*aps));
		eps = tk_calloc(npeers, sizeof(*eps));
		if (!ps || !pp || !aps || !eps) {
			rv = TK_ENOMEM;
			goto out;
		}
		for (tk_wg_peer *p = tk_wg_peer_first(w->dev); p && i < npeers;
		    p = tk_wg_peer_next(p), i++) {
			tk_wg_peer_stats pst;
			tk_wg_endpoint *ep = &eps[i];
			np *n = tk_wg_peer_user(p);

			tk__bus__v1__peer_status__init(&ps[i]);
			ps[i].has_node_key = true;
			ps[i].node_key.data = (uint8_t *)tk_wg_peer_public_key(p);
			ps[i].node_key.len = 32;
			if (n != NULL) {
				ps[i].has_id = true;
				ps[i].id = n->id;
			}
			tk_wg_peer_get_stats(p, &pst);
			ps[i].has_rx_bytes = ps[i].has_tx_bytes = true;
			ps[i].rx_bytes = pst.rx_bytes;
			ps[i].tx_bytes = pst.tx_bytes;
			if (pst.last_handshake_real_ns) {
				ps[i].has_last_handshake_unix = true;
				ps[i].last_handshake_unix =
				    (int64_t)(pst.last_handshake_real_ns / 1000000000);
			}
			tk_wg_peer_get_endpoint(p, ep);
			if (ep->ep_family) {
				tk__bus__v1__addr_port__init(&aps[i]);
				aps[i].has_addr = aps[i].has_port = true;
				aps[i].addr.data = ep->ep_addr;
				aps[i].addr.len = ep->ep_family == 4 ? 4 : 16;
				aps[i].port = ep->ep_port;
				ps[i].cur_addr = &aps[i];
			}
			ps[i].has_online = true;
			ps[i].online = tk_wg_peer_has_session(p);
			pp[i] = &ps[i];
		}
		r.peers = pp;
		r.n_peers = i;
	}
	rv = pack(&r.base, reply);
out:
	tk_free(ps);
	tk_free(pp);
	tk_free(aps);
	tk_free(eps);
	return rv;
}

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

static bool
ep_eq(const tk_wg_endpoint *a, const tk_wg_endpoint *b)
{
	return a->ep_family == b->ep_family && a->ep_port == b->ep_port &&
	    memcmp(a->ep_addr, b->ep_addr, a->ep_family == 4 ? 4 : 16) == 0;
}

static tk_wg_peer *
find_id(wgdi_bus *b, int64_t id)
{
	for (tk_wg_peer *p = tk_wg_peer_first(b->w->dev); p; p = tk_wg_peer_next(p)) {
		np *n = tk_wg_peer_user(p);
		if (n != NULL && n->id == id)
			return p;
	}
	return NULL;
}

static void
drop_peer(wgdi_bus *b, tk_wg_peer *p)
{
	np *n = tk_wg_peer_user(p);

	tk_wg_peer_remove(b->w->dev, p);
	tk_free(n);
}

/*
 * Where to send: the endpoint wgd uses now stays while the netmap still
 * lists it (or while a session shows the peer roamed there); otherwise the
 * first listed endpoint.  Path selection (disco) replaces this choice.
 */
static void
apply_endpoints(tk_wg_peer *p, np *n, Tk__Bus__V1__AddrPort **eps, size_t neps)
{
	tk_wg_endpoint cur, first, e;
	bool have_first = false;

	tk_wg_peer_get_endpoint(p, &cur);
	for (size_t i = 0; i < neps; i++) {
		if (!to_ep(eps[i], &e))
			continue;
		if (cur.ep_family && ep_eq(&cur, &e)) {
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
	if (n->ep.ep_family && ep_eq(&n->ep, &first) && cur.ep_family &&
	    tk_wg_peer_has_session(p))
		return; /* same list as before, the peer roamed: keep its address */
	tk_wg_peer_set_endpoint(p, &first);
	n->ep = first;
}

static int
apply_aips(tk_wg_peer *p, Tk__Bus__V1__Prefix **pfx, size_t n)
{
	int rv = 0;

	tk_wg_peer_clear_allowed_ips(p);
	for (size_t i = 0; i < n; i++) {
		const Tk__Bus__V1__Prefix *x = pfx[i];
		if (!x->has_addr || (x->addr.len != 4 && x->addr.len != 16) ||
		    (x->has_bits && x->bits > x->addr.len * 8))
			continue;
		unsigned bits = x->has_bits ? x->bits : (unsigned)x->addr.len * 8;
		int r = tk_wg_peer_add_allowed_ip(p, x->addr.len == 4 ? 4 : 6,
		    x->addr.data, bits);
		if (r != 0)
			rv = r;
	}
	return rv;
}

static int
apply_node(wgdi_bus *b, const Tk__Bus__V1__Node *node)
{
	wgd *w = b->w;
	tk_wg_peer *p;
	np *n;
	uint8_t self[32];

	if (!node->has_id || !node->has_key || node->key.len != 32) {
		b->nm_peers_bad++;
		return 0; /* unusable record: skip it, keep the rest */
	}
	if (tk_wg_device_public_key(w->dev, self) &&
	    memcmp(self, node->key.data, 32) == 0)
		return 0; /* ourselves */
	p = find_id(b, node->id);
	if (p != NULL && memcmp(tk_wg_peer_public_key(p), node->key.data, 32) != 0) {
		drop_peer(b, p); /* the node rotated its key */
		p = NULL;
	}
	if (p == NULL) {
		int rv;
		if ((p = tk_wg_peer_find(w->dev, node->key.data)) == NULL &&
		    (rv = tk_wg_peer_add(w->dev, node->key.data, &p)) != 0) {
			if (rv == TK_ENOMEM)
				return rv;
			b->nm_peers_bad++;
			return 0;
		}
		n = tk_wg_peer_user(p);
		if (n == NULL) {
			if ((n = tk_calloc(1, sizeof(*n))) == NULL) {
				tk_wg_peer_remove(w->dev, p);
				return TK_ENOMEM;
			}
			tk_wg_peer_set_user(p, n);
		}
		n->id = node->id;
	}
	n = tk_wg_peer_user(p);
	n->gen = b->gen;
	int rv = apply_aips(p, node->allowed_ips, node->n_allowed_ips);
	if (rv == TK_ENOMEM)
		return rv;
	apply_endpoints(p, n, node->endpoints, node->n_endpoints);
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
apply_patch(wgdi_bus *b, const Tk__Bus__V1__PeerChange *pc)
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
		np *n = tk_wg_peer_user(p);

		tk_wg_peer_allowed_ips(p, collect_aip, &al);
		if (al.failed || tk_wg_peer_find(b->w->dev, pc->key.data) != NULL ||
		    tk_wg_peer_add(b->w->dev, pc->key.data, &q) != 0) {
			tk_free(al.v);
			b->nm_peers_bad++;
			return;
		}
		tk_wg_peer_get_endpoint(p, &ep);
		tk_wg_peer_set_user(p, NULL);
		tk_wg_peer_remove(b->w->dev, p);
		for (size_t i = 0; i < al.n; i++)
			tk_wg_peer_add_allowed_ip(q, al.v[i].family, al.v[i].addr,
			    al.v[i].bits);
		tk_free(al.v);
		if (ep.ep_family)
			tk_wg_peer_set_endpoint(q, &ep);
		tk_wg_peer_set_user(q, n);
		p = q;
	}
	if (pc->endpoints != NULL)
		apply_endpoints(p, tk_wg_peer_user(p), pc->endpoints->items,
		    pc->endpoints->n_items);
}

/* The node's own addresses: the filter's "local" set. */
static void
apply_self(wgdi_bus *b, const Tk__Bus__V1__Node *self)
{
	tk_wg_prefix loc[16];
	size_t n = 0;

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
apply_filter(wgdi_bus *b, const Tk__Bus__V1__PacketFilter *pf)
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
		b->nm_bad += skipped;
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

static int
nm_snapshot(void *arg, uint64_t seq, const uint8_t *body, size_t len)
{
	wgdi_bus *b = arg;
	Tk__Bus__V1__Netmap *nm = tk__bus__v1__netmap__unpack(NULL, len, body);
	int rv = 0;

	(void)seq;
	if (nm == NULL) {
		b->nm_bad++;
		TK_WARN(WGD_SUBSYS, "netmap snapshot undecodable (%zu bytes)", len);
		return TK_EPROTO;
	}
	b->gen++;
	for (size_t i = 0; i < nm->n_peers && rv == 0; i++)
		rv = apply_node(b, nm->peers[i]);
	if (rv == 0) {
		/* peers the snapshot no longer lists */
		tk_wg_peer *p = tk_wg_peer_first(b->w->dev), *next;
		for (; p != NULL; p = next) {
			np *n = tk_wg_peer_user(p);
			next = tk_wg_peer_next(p);
			if (n != NULL && n->gen != b->gen)
				drop_peer(b, p);
		}
		if (nm->self != NULL)
			apply_self(b, nm->self);
		/* no filter received yet: the filter stays (or becomes)
		 * deny-all; a filter once set can only be narrowed to an
		 * empty rule set */
		if (nm->packet_filter != NULL && nm->packet_filter->received)
			rv = apply_filter(b, nm->packet_filter);
		else if (b->filter_set)
			rv = apply_filter(b, &(Tk__Bus__V1__PacketFilter)
			    TK__BUS__V1__PACKET_FILTER__INIT);
	}
	if (rv == 0) {
		b->nm_snapshots++;
		TK_INFO(WGD_SUBSYS, "netmap: %zu peers, filter %s", nm->n_peers,
		    nm->packet_filter && nm->packet_filter->n_rules ? "set" :
		    "deny-all");
	}
	tk__bus__v1__netmap__free_unpacked(nm, NULL);
	wgdi_flush_tx(b->w);
	return rv;
}

static int
nm_delta(void *arg, uint64_t seq, const uint8_t *body, size_t len)
{
	wgdi_bus *b = arg;
	Tk__Bus__V1__NetmapDelta *d =
	    tk__bus__v1__netmap_delta__unpack(NULL, len, body);
	int rv = 0;

	(void)seq;
	if (d == NULL) {
		b->nm_bad++;
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
			((np *)tk_wg_peer_user(p))->gen = b->gen;
		rv = apply_node(b, d->peers_changed[i]);
	}
	for (size_t i = 0; i < d->n_peers_patched; i++)
		apply_patch(b, d->peers_patched[i]);
	if (rv == 0 && d->self != NULL)
		apply_self(b, d->self);
	if (rv == 0 && d->packet_filter != NULL)
		rv = apply_filter(b, d->packet_filter);
	if (rv == 0)
		b->nm_deltas++;
	tk__bus__v1__netmap_delta__free_unpacked(d, NULL);
	wgdi_flush_tx(b->w);
	return rv;
}

/* --- filter hooks -------------------------------------------------------- */

bool
wgdi_bus_has_filter(const wgdi_bus *b)
{
	return b != NULL && b->filter != NULL;
}

bool
wgdi_bus_filter_in(wgdi_bus *b, const uint8_t *p, size_t n)
{
	if (b == NULL || b->filter == NULL)
		return true;
	return tk_wg_filter_in(b->filter, p, n) == TK_WG_ACCEPT;
}

void
wgdi_bus_filter_out(wgdi_bus *b, const uint8_t *p, size_t n)
{
	if (b->filter != NULL)
		(void)tk_wg_filter_out(b->filter, p, n);
}

/* --- packet bus ---------------------------------------------------------- */

bool
wgdi_bus_has_pkt(const wgdi_bus *b)
{
	return b->pkt_open;
}

void
wgdi_bus_flush(wgdi_bus *b)
{
	nng_msg *m;

	if (!b->enc_live)
		return;
	if (tk_bus_batch_enc_finish(&b->enc, &m) == 0) {
		b->enc_live = false;
		if (tk_bus_send(b->pkt, m, false) != 0) {
			nng_msg_free(m);
			b->pkt_tx_dropped++;
		}
	}
}

void
wgdi_bus_deliver(wgdi_bus *b, const uint8_t *p, size_t n)
{
	tk_bus_batch_rec rec = { .type = 0, .data = p, .len = n };

	for (int tries = 0; tries < 2; tries++) {
		if (!b->enc_live) {
			if (tk_bus_batch_enc_init(&b->enc, TK_BATCH_IP, 0) != 0) {
				b->pkt_tx_dropped++;
				return;
			}
			b->enc_live = true;
		}
		int rv = tk_bus_batch_enc_add(&b->enc, &rec);
		if (rv == 0) {
			b->pkt_tx++;
			return;
		}
		if (rv != TK_EMSGSIZE) {
			b->pkt_tx_dropped++;
			return;
		}
		wgdi_bus_flush(b);
	}
}

static void
on_pkt(void *arg, nng_msg *msg)
{
	wgdi_bus *b = arg;
	tk_bus_batch_view v;
	tk_bus_batch_rec rec;

	if (tk_bus_batch_parse_msg(&v, msg, &b->pkt_stats) == 0) {
		if (tk_bus_batch_kind(&v) != TK_BATCH_IP) {
			b->pkt_bad_rec++;
		} else {
			while (tk_bus_batch_next(&v, &rec)) {
				b->pkt_rx++;
				wgdi_outbound(b->w, rec.data, rec.len);
			}
		}
	}
	nng_msg_free(msg);
	wgdi_flush_tx(b->w);
}

/* --- lifecycle ----------------------------------------------------------- */

int
wgdi_bus_open(wgd *w, wgdi_bus **out, uint16_t *port, char *err, size_t errlen)
{
	wgdi_bus *b;
	int rv;

	const char *urls[] = { w->pub_url, w->rpc_url, w->ctrld_pub_url,
		w->ctrld_rpc_url, w->pkt_url };
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		enum tk_bus_scheme sch;
		char why[300];
		if (urls[i] != NULL &&
		    (rv = tk_bus_url_check(urls[i], &sch, why, sizeof(why))) != 0) {
			snprintf(err, errlen, "%s", why);
			return rv;
		}
	}
	if ((b = tk_calloc(1, sizeof(*b))) == NULL)
		return TK_ENOMEM;
	b->w = w;
	w->bus = b;
	if (w->state_dir != NULL) {
		if ((rv = open_state(b, port, err, errlen)) != 0)
			goto fail;
		if ((rv = tk_wg_device_set_private_key(w->dev, b->node_priv.b)) != 0)
			goto fail;
	}
	if (w->ctrld_pub_url != NULL) {
		if ((rv = tk_wg_filter_new(&b->filter, NULL)) != 0)
			goto fail;
	}
	if (w->rpc_url != NULL) {
		tk_rpc_server_cfg rc = { .loop = w->loop, .url = w->rpc_url,
			.tls = w->tls };
		tk_topic_pub_cfg pc = { .loop = w->loop, .url = w->pub_url,
			.tls = w->tls };
		if ((rv = tk_rpc_server_new(&b->rpc, &rc)) != 0) {
			snprintf(err, errlen, "rpc %s: %s", w->rpc_url, tk_strerror(rv));
			goto fail;
		}
		pc.rpc = b->rpc;
		if ((rv = tk_rpc_server_add(b->rpc, "status", rpc_status, b)) != 0 ||
		    (rv = tk_topic_pub_new(&b->pub, &pc)) != 0 ||
		    (rv = tk_topic_add(b->pub, "keys", keys_snapshot, b,
			&b->t_keys)) != 0) {
			snprintf(err, errlen, "publisher %s: %s", w->pub_url,
			    tk_strerror(rv));
			goto fail;
		}
	}
	if (w->ctrld_pub_url != NULL) {
		tk_topic_sub_cfg sc = { .loop = w->loop, .url = w->ctrld_pub_url,
			.rpc_url = w->ctrld_rpc_url, .tls = w->tls, .topic = "netmap",
			.apply_snapshot = nm_snapshot, .apply_delta = nm_delta,
			.arg = b, .name = "wgd" };
		if ((rv = tk_topic_sub_new(&b->sub, &sc)) != 0) {
			snprintf(err, errlen, "netmap subscription %s: %s",
			    w->ctrld_pub_url, tk_strerror(rv));
			goto fail;
		}
	}
	if (w->pkt_url != NULL) {
		if ((rv = tk_bus_open(&b->pkt, TK_BUS_PAIR)) != 0)
			goto fail;
		b->pkt_open = true;
		if ((rv = tk_bus_listen(b->pkt, w->pkt_url, w->tls, NULL)) != 0 ||
		    (rv = tk_bus_reader_new(&b->pkt_reader, w->loop, b->pkt, on_pkt,
			b)) != 0) {
			snprintf(err, errlen, "packet bus %s: %s", w->pkt_url,
			    tk_strerror(rv));
			goto fail;
		}
	}
	*out = b;
	return 0;
fail:
	if (err && errlen && err[0] == '\0')
		snprintf(err, errlen, "wgd buses/state: %s", tk_strerror(rv));
	w->bus = NULL;
	wgdi_bus_free(b);
	return rv;
}

void
wgdi_bus_free(wgdi_bus *b)
{
	if (b == NULL)
		return;
	tk_topic_sub_free(b->sub);
	tk_topic_pub_free(b->pub);
	tk_rpc_server_free(b->rpc);
	tk_bus_reader_free(b->pkt_reader);
	if (b->enc_live)
		tk_bus_batch_enc_fini(&b->enc);
	if (b->pkt_open)
		nng_close(b->pkt);
	/* peers' records */
	if (b->w->dev != NULL)
		for (tk_wg_peer *p = tk_wg_peer_first(b->w->dev); p;
		    p = tk_wg_peer_next(p)) {
			tk_free(tk_wg_peer_user(p));
			tk_wg_peer_set_user(p, NULL);
		}
	tk_wg_filter_free(b->filter);
	tk_state_close(b->st);
	tk_secure_zero(&b->node_priv, sizeof(b->node_priv));
	tk_secure_zero(&b->disco_priv, sizeof(b->disco_priv));
	tk_free(b);
}
