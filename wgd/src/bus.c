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
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "tk/bus.h"
#include "tk/bus_batch.h"
#include "tk/bus_rpc.h"
#include "tk/bus_status.h"
#include "tk/bus_topic.h"
#include "tk/bus_topics.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/keys.h"
#include "tk/log.h"
#include "tk/mem.h"
#include "tk/state.h"
#include "tk/wg_filter.h"
#include "tk/bus/v1/ctrl.pb-c.h"
#include "tk/bus/v1/wg.pb-c.h"
#include "netmap.h"
#include "disco.h"
#include "ping.h"
#include "path.h"
#include "probe.h"
#include "stun.h"
#include "tap.h"
#include "wgd_int.h"

#define VERSION "0.1"

/* net/packet/tsmp.go: type bytes and sizes after the IP header */
#define TSMP_PROTO	  WGDI_TSMP_PROTO
#define TSMP_PING	  'p' /* TSMPTypePing: 8 opaque bytes follow */
#define TSMP_PONG	  'o' /* TSMPTypePong: the 8 bytes, PeerAPIPort */
#define TSMP_DISCO_ADVERT 'a' /* TSMPTypeDiscoAdvertisement: 32-byte key */
#define TSMP_PING_LEN	  9
#define TSMP_PONG_LEN	  11
#define TSMP_ADVERT_LEN	  33
#define WGDI_PONGS	  32
#define WGDI_PONG_MAX	  (40 + TSMP_PONG_LEN)

struct wgdi_bus {
	wgd *w;
	tk_state *st;
	tk_node_priv node_priv;
	tk_disco_priv disco_priv;
	tk_node_pub node_pub;
	tk_disco_pub disco_pub;
	uint8_t old_node_pub[32];
	bool has_old;

	tk_rpc_server *rpc;
	tk_topic_pub *pub;
	tk_topic *t_keys;
	tk_topic *t_eps;
	tk_loop_timer *eps_timer;
	/* the local endpoints last published: packed Endpoints */
	uint8_t eps[2048];
	size_t neps;

	tk_topic_sub *sub;
	wgdi_netmap nm;

	tk_wg_filter *filter;
	wgdi_ping *ping; /* rpc "ping" */
	wgdi_disco disco; /* over DERP and UDP (disco.c) */
	wgdi_paths *paths; /* direct paths (path.c) */
	tk_loop_timer *path_timer;
	tk_topic *t_paths; /* "paths": PeerPaths */
	wgdi_stun *stun;   /* STUN-learned endpoints (stun.c) */
	tk_buf path_keys;  /* node keys of the last published peer set */
	wgdi_tap *tap;	 /* rpc "pkt_tap" */

	nng_socket pkt;
	bool pkt_open;
	tk_bus_reader *pkt_reader;
	tk_bus_batcher out; /* decrypted packets to netstackd / tk-tun */
	tk_bus_batch_stats pkt_stats;
	uint64_t pkt_rx, pkt_bad_rec;

	/* TSMP pongs to send at the end of the receive batch (the filter
	 * hook runs inside the device's receive path) */
	uint8_t pong[WGDI_PONGS][WGDI_PONG_MAX];
	uint8_t pong_len[WGDI_PONGS];
	unsigned npong;
	uint64_t tsmp_pings, tsmp_pongs_dropped, tsmp_disco_adverts;
};

/* --- state --------------------------------------------------------------- */

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
	    (rv = tk_state_key(b->st, "node_private_key", b->node_priv.b,
		&c1)) != 0 ||
	    (rv = tk_state_key(b->st, "disco_private_key", b->disco_priv.b,
		&c2)) != 0 ||
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

/* Is this interface one of the node's own tunnels?  Go's netmon skips the
 * Tailscale interface (isTailscaleInterface: "tailscale*" on Linux); wgd
 * also knows its own TUN (standalone) and, from the netmap, the node's
 * addresses, which only its tunnel (tk-tun's device) carries. */
static bool
own_tunnel_name(const wgdi_bus *b, const char *name)
{
	return strncmp(name, "tailscale", 9) == 0 ||
	    (b->w->tun_name != NULL && strcmp(name, b->w->tun_name) == 0);
}

static bool
is_self_addr(const wgdi_bus *b, const uint8_t *a, size_t len)
{
	for (unsigned i = 0; i < b->nm.nself; i++)
		if (b->nm.self_len[i] == len &&
		    memcmp(b->nm.self_addr[i], a, len) == 0)
			return true;
	return false;
}

/* An interface address as 4 or 16 bytes (0: neither family). */
static size_t
ifa_bytes(const struct ifaddrs *i, uint8_t out[16])
{
	if (i->ifa_addr == NULL)
		return 0;
	if (i->ifa_addr->sa_family == AF_INET) {
		memcpy(out, &((const struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
		return 4;
	}
	if (i->ifa_addr->sa_family == AF_INET6) {
		memcpy(out, &((const struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, 16);
		return 16;
	}
	return 0;
}

/*
 * The node's local UDP endpoints: every address on an interface that is up
 * (not loopback, not IPv6 link-local) with the listen port, type LOCAL.
 * Never a Tailscale address (100.64.0.0/10, fd7a:115c:a1e0::/48: Go's
 * net/netmon LocalAddresses skips tsaddr.IsTailscaleIP) and nothing on the
 * node's own tunnel: such an endpoint would loop packets into the tunnel.
 * STUN-learned endpoints come with NAT traversal.
 */
static size_t
local_endpoints(wgdi_bus *b, uint8_t *out, size_t cap)
{
	Tk__Bus__V1__Endpoints e = TK__BUS__V1__ENDPOINTS__INIT;
	Tk__Bus__V1__Endpoint ep[32], *epp[32];
	Tk__Bus__V1__AddrPort ap[32];
	uint8_t addr[32][16], a[16];
	char tunnels[8][IFNAMSIZ];
	size_t ntun = 0;
	struct ifaddrs *ifa, *i;
	size_t n = 0;

	/* STUN-learned first (Go's order: port-mapped, STUN, ..., local) */
	tk_wg_endpoint st[8];
	size_t nst = b->stun != NULL && !b->w->always_derp ?
	    wgdi_stun_endpoints(b->stun, st, 8) : 0;
	for (size_t k = 0; k < nst; k++) {
		tk__bus__v1__endpoint__init(&ep[n]);
		tk__bus__v1__addr_port__init(&ap[n]);
		memcpy(addr[n], st[k].ep_addr, 16);
		ap[n].has_addr = ap[n].has_port = true;
		ap[n].addr.data = addr[n];
		ap[n].addr.len = st[k].ep_family == 4 ? 4 : 16;
		ap[n].port = st[k].ep_port;
		ep[n].addr = &ap[n];
		ep[n].has_type = true;
		ep[n].type = TK__BUS__V1__ENDPOINT_TYPE__ENDPOINT_TYPE_STUN;
		epp[n] = &ep[n];
		n++;
	}
	if (getifaddrs(&ifa) != 0)
		goto pack;
	/* interfaces that hold one of the node's own addresses */
	for (i = ifa; i; i = i->ifa_next) {
		size_t len = ifa_bytes(i, a);
		if (len && ntun < 8 && i->ifa_name != NULL &&
		    is_self_addr(b, a, len))
			snprintf(tunnels[ntun++], IFNAMSIZ, "%s", i->ifa_name);
	}
	for (i = ifa; i && n < 32; i = i->ifa_next) {
		if (i->ifa_addr == NULL || !(i->ifa_flags & IFF_UP) ||
		    (i->ifa_flags & IFF_LOOPBACK) || i->ifa_name == NULL ||
		    own_tunnel_name(b, i->ifa_name))
			continue;
		bool tunnel = false;
		for (size_t t = 0; t < ntun && !tunnel; t++)
			tunnel = strcmp(tunnels[t], i->ifa_name) == 0;
		if (tunnel)
			continue;
		size_t len = ifa_bytes(i, addr[n]);
		if (len == 0 || (len == 16 && !b->w->udp6) ||
		    (len == 16 &&
			IN6_IS_ADDR_LINKLOCAL((const struct in6_addr *)addr[n])) ||
		    wgdi_is_tailscale_ip(len == 4 ? 4 : 6, addr[n]))
			continue;
		tk__bus__v1__endpoint__init(&ep[n]);
		tk__bus__v1__addr_port__init(&ap[n]);
		ap[n].has_addr = ap[n].has_port = true;
		ap[n].addr.data = addr[n];
		ap[n].addr.len = len;
		ap[n].port = b->w->ifc.listen_port;
		ep[n].addr = &ap[n];
		ep[n].has_type = true;
		ep[n].type = TK__BUS__V1__ENDPOINT_TYPE__ENDPOINT_TYPE_LOCAL;
		epp[n] = &ep[n];
		n++;
	}
	freeifaddrs(ifa);
pack:
	e.endpoints = epp;
	e.n_endpoints = n;
	size_t sz = tk__bus__v1__endpoints__get_packed_size(&e);
	if (sz > cap)
		return 0;
	return tk__bus__v1__endpoints__pack(&e, out);
}

static int
eps_snapshot(void *arg, tk_buf *out)
{
	wgdi_bus *b = arg;

	return tk_buf_append(out, b->eps, b->neps);
}

/* Publishes the endpoints when they changed; every 30 s and on port change. */
static void
eps_refresh(wgdi_bus *b)
{
	uint8_t now[sizeof(b->eps)];
	size_t n;

	if (b->t_eps == NULL)
		return;
	n = local_endpoints(b, now, sizeof(now));
	if (n == b->neps && memcmp(now, b->eps, n) == 0)
		return;
	memcpy(b->eps, now, n);
	b->neps = n;
	tk_topic_publish(b->t_eps, b->eps, b->neps);
}

static void
on_eps_timer(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	(void)loop, (void)t;
	eps_refresh(arg);
}

void
wgdi_bus_port_changed(wgdi_bus *b, uint16_t port)
{
	if (b->st != NULL)
		tk_state_put_int(b->st, "listen_port", port);
	eps_refresh(b);
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
	if (b->has_old) {
		k.has_old_node_key = true;
		k.old_node_key.data = b->old_node_pub;
		k.old_node_key.len = 32;
	}
	return tk_bus_pb_pack(&k.base, out);
}

static void
publish_keys(wgdi_bus *b)
{
	tk_buf buf;

	if (b->t_keys == NULL)
		return;
	tk_buf_init(&buf);
	if (keys_snapshot(b, &buf) == 0)
		tk_topic_publish(b->t_keys, buf.data, buf.len);
	tk_buf_fini(&buf);
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
	publish_keys(b);
}

/*
 * rpc "rotate_node_key": a new node key (ctrld asks when control says the
 * key expired).  Sessions end; peers stay; the keys topic carries the new
 * key with the old one as old_node_key, for RegisterRequest.OldNodeKey.
 */
static int
rpc_rotate(void *arg, const uint8_t *body, size_t len, tk_buf *reply)
{
	wgdi_bus *b = arg;
	tk_node_priv priv;
	int rv;

	(void)body, (void)len;
	if (b->st == NULL) {
		tk_buf_append_str(reply, "no state directory: keys come from wg(8)");
		return TK_ESTATE;
	}
	/* stored first: a key the device uses is never one a restart loses */
	tk_key_generate(priv.b, NULL);
	if ((rv = tk_state_put_secret(b->st, "node_private_key", priv.b, 32)) != 0 ||
	    (rv = tk_wg_device_set_private_key(b->w->dev, priv.b)) != 0) {
		tk_secure_zero(&priv, sizeof(priv));
		return rv;
	}
	memcpy(b->old_node_pub, b->node_pub.b, 32);
	b->has_old = true;
	b->node_priv = priv;
	tk_secure_zero(&priv, sizeof(priv));
	tk_node_priv_public(&b->node_priv, &b->node_pub);
	char fp[TK_KEY_FP_MAX];
	tk_key_fingerprint(fp, "nodekey:", b->node_pub.b);
	TK_INFO(WGD_SUBSYS, "node key rotated: now %s", fp);
	publish_keys(b);
	return 0;
}

/* The peer's last CallMeMaybe endpoints (disco.c keeps them), pointing
 * into its record: ap and app have WGDI_MAX_ADDRS slots. */
static void
status_cmm(Tk__Bus__V1__PeerStatus *ps, wgdi_peer_rec *n,
    Tk__Bus__V1__AddrPort *ap, Tk__Bus__V1__AddrPort **app)
{
	static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };

	for (unsigned k = 0; k < n->ncmm; k++) {
		bool v4 = memcmp(n->cmm[k], v4mapped, 12) == 0;
		tk__bus__v1__addr_port__init(&ap[k]);
		ap[k].has_addr = ap[k].has_port = true;
		ap[k].addr.data = n->cmm[k] + (v4 ? 12 : 0);
		ap[k].addr.len = v4 ? 4 : 16;
		ap[k].port = (uint32_t)n->cmm[k][16] << 8 | n->cmm[k][17];
		app[k] = &ap[k];
	}
	ps->call_me_maybe = app;
	ps->n_call_me_maybe = n->ncmm;
}

static int
rpc_status(void *arg, const uint8_t *body, size_t len, tk_buf *reply)
{
	wgdi_bus *b = arg;
	wgd *w = b->w;
	Tk__Bus__V1__StatusRequest *req = NULL;
	Tk__Bus__V1__StatusResponse r = TK__BUS__V1__STATUS_RESPONSE__INIT;
	tk_status_counters cs = { .n = 0 };
	Tk__Bus__V1__PeerStatus *ps = NULL, **pp = NULL;
	Tk__Bus__V1__AddrPort *aps = NULL;
	tk_wg_endpoint *eps = NULL;
	Tk__Bus__V1__AddrPort *cmm = NULL, **cmmp = NULL;
	size_t npeers = tk_wg_peer_count(w->dev), i = 0;
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
#define C(f) tk_status_counter(&cs, #f, s.f)
	C(rx_datagrams); C(tx_datagrams); C(rx_data); C(tx_data);
	C(rx_keepalive); C(tx_keepalive); C(rx_handshake); C(tx_handshake);
	C(rx_cookie); C(tx_cookie); C(drop_short); C(drop_type); C(drop_mac1);
	C(drop_mac2); C(drop_ratelimit); C(drop_unknown_peer);
	C(drop_unknown_index); C(drop_decrypt); C(drop_replay);
	C(drop_timestamp); C(drop_expired); C(drop_bad_inner); C(drop_src_ip);
	C(drop_no_route); C(drop_no_key); C(drop_staged_overflow);
	C(rx_filtered); C(handshakes_completed);
#undef C
	tk_status_counter(&cs, "tx_errors", w->tx_errors);
	tk_status_counter(&cs, "tx_no_endpoint", w->tx_no_endpoint);
	tk_status_counter(&cs, "tx_family", w->tx_family);
	tk_status_counter(&cs, "tx_oversize", w->tx_oversize);
	tk_status_counter(&cs, "tx_gso_msgs", w->tx_gso_msgs);
	tk_status_counter(&cs, "rx_gro_msgs", w->rx_gro_msgs);
	tk_status_counter(&cs, "netmap_bad", b->nm.bad);
	tk_status_counter(&cs, "netmap_peers_bad", b->nm.peers_bad);
	tk_status_counter(&cs, "netmap_snapshots", b->nm.snapshots);
	tk_status_counter(&cs, "netmap_deltas", b->nm.deltas);
	tk_status_counter(&cs, "netmap_routes_skipped", b->nm.routes_skipped);
	tk_status_counter(&cs, "netmap_peers_expired", b->nm.peers_expired);
	tk_status_counter(&cs, "tsmp_pings", b->tsmp_pings);
	tk_status_counter(&cs, "tsmp_pongs_dropped", b->tsmp_pongs_dropped);
	tk_status_counter(&cs, "tsmp_disco_adverts", b->tsmp_disco_adverts);
	wgdi_ping_counters(b->ping, &cs);
	wgdi_disco_counters(&b->disco, &cs);
	if (b->paths != NULL)
		wgdi_paths_counters(b->paths, &cs);
	if (b->stun != NULL)
		wgdi_stun_counters(b->stun, &cs);
	tk_status_counter(&cs, "pkt_rx", b->pkt_rx);
	tk_status_counter(&cs, "pkt_tx", b->out.recs);
	tk_status_counter(&cs, "pkt_tx_dropped", b->out.dropped);
	tk_status_counter(&cs, "pkt_bad_batches", b->pkt_stats.bs_dropped);
	wgdi_derp_counters(w->derp, &cs);
	tk_wg_filter_stats fs;
	char fnames[TK_WG_VERDICT_COUNT][40];
	if (b->filter != NULL) {
		tk_wg_filter_stats_get(b->filter, &fs);
		for (int v = 0; v < TK_WG_VERDICT_COUNT; v++) {
			snprintf(fnames[v], sizeof(fnames[v]), "filter_in_%s",
			    tk_wg_verdict_name((tk_wg_verdict)v));
			tk_status_counter(&cs, fnames[v], fs.fs_in[v]);
		}
	}
	tk_status_counters_set(&r, &cs);
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
		cmm = tk_calloc(npeers * WGDI_MAX_ADDRS, sizeof(*cmm));
		cmmp = tk_calloc(npeers * WGDI_MAX_ADDRS, sizeof(*cmmp));
		if (!ps || !pp || !aps || !eps || !cmm || !cmmp) {
			rv = TK_ENOMEM;
			goto out;
		}
		for (tk_wg_peer *p = tk_wg_peer_first(w->dev); p && i < npeers;
		    p = tk_wg_peer_next(p), i++) {
			tk_wg_peer_stats pst;
			tk_wg_endpoint *ep = &eps[i];
			wgdi_peer_rec *n = tk_wg_peer_user(p);

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
			uint16_t relay = 0;
			if (wgdi_bus_path_status(b, p, ep, &relay) && relay) {
				ps[i].has_relay_region = true;
				ps[i].relay_region = relay;
			}
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
			if (n != NULL)
				status_cmm(&ps[i], n, &cmm[i * WGDI_MAX_ADDRS],
				    &cmmp[i * WGDI_MAX_ADDRS]);
			pp[i] = &ps[i];
		}
		r.peers = pp;
		r.n_peers = i;
	}
	rv = tk_bus_pb_pack(&r.base, reply);
out:
	tk_free(ps);
	tk_free(pp);
	tk_free(aps);
	tk_free(eps);
	tk_free(cmm);
	tk_free(cmmp);
	return rv;
}

/* --- netmap subscription ------------------------------------------------ */

/* The node's addresses changed: its tunnel may be known now. */
static void
self_refresh(wgdi_bus *b)
{
	if (!b->nm.self_changed)
		return;
	b->nm.self_changed = false;
	eps_refresh(b);
}

static void paths_netmap_changed(wgdi_bus *b);

static int
nm_snapshot(void *arg, uint64_t seq, const uint8_t *body, size_t len)
{
	wgdi_bus *b = arg;
	int rv = wgdi_netmap_snapshot(&b->nm, body, len);

	(void)seq;
	wgdi_flush_tx(b->w);
	self_refresh(b);
	paths_netmap_changed(b);
	return rv;
}

static int
nm_delta(void *arg, uint64_t seq, const uint8_t *body, size_t len)
{
	wgdi_bus *b = arg;
	int rv = wgdi_netmap_delta(&b->nm, body, len);

	(void)seq;
	wgdi_flush_tx(b->w);
	self_refresh(b);
	paths_netmap_changed(b);
	return rv;
}

/* --- filter hooks -------------------------------------------------------- */

bool
wgdi_bus_has_filter(const wgdi_bus *b)
{
	return b != NULL && b->filter != NULL;
}

/* The inbound packet's IP version and source address (NULL: neither). */
static const uint8_t *
pkt_src(const uint8_t *p, size_t n, int *family)
{
	if (n >= 20 && p[0] >> 4 == 4) {
		*family = 4;
		return p + 12;
	}
	if (n >= 40 && p[0] >> 4 == 6) {
		*family = 6;
		return p + 8;
	}
	return NULL;
}

/*
 * TSMP messages tailscaled handles itself, before any filter (net/tstun
 * wrap.go filterPacketInboundFromWireGuard): a ping is answered with a pong
 * (injectOutboundPong: the IP header reversed, ID bits flipped, 'o', the
 * ping's 8 bytes, PeerAPIPort 0: wgd serves no peerapi) and a disco key
 * advertisement is consumed (disco is the NAT traversal issue: counted).
 * Neither goes up the stack.  true: consumed.
 */
static bool
tsmp_consume(wgdi_bus *b, const uint8_t *p, size_t n)
{
	const uint8_t *body;
	size_t blen;
	uint8_t *o;

	if (n >= 20 && p[0] >> 4 == 4) {
		size_t ihl = (size_t)(p[0] & 15) * 4, tot = tk_be16_load(p + 2);
		/* packet.go: TSMP is never fragmented */
		if (p[9] != TSMP_PROTO || ihl < 20 || tot < ihl || tot > n ||
		    (tk_be16_load(p + 6) & 0x3fff) != 0)
			return false;
		body = p + ihl;
		blen = tot - ihl;
	} else if (n >= 40 && p[0] >> 4 == 6) {
		blen = tk_be16_load(p + 4);
		if (p[6] != TSMP_PROTO || 40 + blen > n)
			return false;
		body = p + 40;
	} else {
		return false;
	}
	if (blen >= TSMP_ADVERT_LEN && body[0] == TSMP_DISCO_ADVERT) {
		b->tsmp_disco_adverts++;
		return true;
	}
	if (blen < TSMP_PING_LEN || body[0] != TSMP_PING)
		return false;
	b->tsmp_pings++;
	if (b->npong == WGDI_PONGS) {
		b->tsmp_pongs_dropped++;
		return true;
	}
	o = b->pong[b->npong];
	if (p[0] >> 4 == 4) { /* ip4.go IP4Header.Marshal after ToResponse */
		memset(o, 0, 20);
		o[0] = 0x45;
		tk_be16_store(o + 2, 20 + TSMP_PONG_LEN);
		tk_be16_store(o + 4, (uint16_t)~tk_be16_load(p + 4));
		o[8] = 64;
		o[9] = TSMP_PROTO;
		memcpy(o + 12, p + 16, 4);
		memcpy(o + 16, p + 12, 4);
		tk_be16_store(o + 10, wgdi_csum_fold(wgdi_csum_add(0, o, 20)));
		o += 20;
	} else { /* ip6.go: the flow label is the IPID */
		uint32_t flow = ~(((uint32_t)(p[1] & 15) << 16) |
		    tk_be16_load(p + 2)) & 0xfffff;
		memset(o, 0, 40);
		o[0] = 0x60;
		o[1] = (uint8_t)(flow >> 16);
		tk_be16_store(o + 2, (uint16_t)flow);
		tk_be16_store(o + 4, TSMP_PONG_LEN);
		o[6] = TSMP_PROTO;
		o[7] = 64;
		memcpy(o + 8, p + 24, 16);
		memcpy(o + 24, p + 8, 16);
		o += 40;
	}
	o[0] = TSMP_PONG;
	memcpy(o + 1, body + 1, 8);
	tk_be16_store(o + 9, 0); /* PeerAPIPort */
	b->pong_len[b->npong] = (uint8_t)(o + TSMP_PONG_LEN - b->pong[b->npong]);
	b->npong++;
	return true;
}

/* The pongs queued by tsmp_consume, encrypted like any outbound packet
 * (Go's InjectOutbound skips the outbound filter). */
static void
send_pongs(wgdi_bus *b)
{
	if (b->npong == 0)
		return;
	for (unsigned i = 0; i < b->npong; i++)
		tk_wg_device_send(b->w->dev, b->pong[i], b->pong_len[i]);
	b->npong = 0;
	wgdi_flush_tx(b->w);
}

bool
wgdi_bus_filter_in(wgdi_bus *b, const uint8_t *p, size_t n)
{
	const uint8_t *src;
	int fam;

	if (b == NULL || b->filter == NULL)
		return true;
	if (wgdi_ping_consume(b->ping, p, n) || tsmp_consume(b, p, n))
		return false;
	/* wrap.go: a jailed peer's packets go through the shields-up
	 * jailedFilter instead of the netmap's rules */
	if ((src = pkt_src(p, n, &fam)) != NULL &&
	    wgdi_netmap_src_jailed(&b->nm, fam, src))
		return tk_wg_filter_in_shields_up(b->filter, p, n) ==
		    TK_WG_ACCEPT;
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

/* End of a batch: not on the device's receive path, so pongs may go out. */
void
wgdi_bus_flush(wgdi_bus *b)
{
	send_pongs(b);
	if (b->pkt_open)
		tk_bus_batcher_flush(&b->out);
}

void
wgdi_bus_deliver(wgdi_bus *b, const uint8_t *p, size_t n)
{
	tk_bus_batch_rec rec = { .type = 0, .data = p, .len = n };

	wgdi_tap_note(b->tap, true, p, n);
	tk_bus_batcher_add(&b->out, TK_BATCH_IP, &rec); /* drops are counted */
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
				wgdi_tap_note(b->tap, false, rec.data, rec.len);
				wgdi_outbound(b->w, rec.data, rec.len);
			}
		}
	}
	nng_msg_free(msg);
	wgdi_flush_tx(b->w);
}

/* --- lifecycle ----------------------------------------------------------- */

/* disco.c's I/O: DERP out (if derpd is there), pongs to the pinger */
static void
disco_send(void *arg, const uint8_t node_key[32], uint16_t region,
    const uint8_t *p, size_t n)
{
	wgdi_bus *b = arg;

	if (b->w->derp != NULL)
		wgdi_derp_send_key(b->w->derp, node_key, region, p, n);
}

static bool
disco_pong(void *arg, const uint8_t node_key[32], uint16_t region,
    const tk_disco_msg *m)
{
	wgdi_bus *b = arg;

	return wgdi_ping_disco_pong(b->ping, node_key, region, m);
}

static void
disco_send_udp(void *arg, const tk_wg_endpoint *ep, const uint8_t *p, size_t n)
{
	wgdi_bus *b = arg;

	wgdi_udp_send_now(b->w, ep, p, n);
}

/* Our endpoints for a CallMeMaybe: the ones last published. */
static size_t
my_endpoints(void *arg, tk_wg_endpoint *out, size_t cap)
{
	wgdi_bus *b = arg;
	Tk__Bus__V1__Endpoints *e;
	size_t k = 0;

	if (b->neps == 0 ||
	    (e = tk__bus__v1__endpoints__unpack(NULL, b->neps, b->eps)) == NULL)
		return 0;
	for (size_t i = 0; i < e->n_endpoints && k < cap; i++) {
		const Tk__Bus__V1__AddrPort *a = e->endpoints[i]->addr;
		if (a == NULL || !a->has_addr || !a->has_port ||
		    (a->addr.len != 4 && a->addr.len != 16))
			continue;
		memset(&out[k], 0, sizeof(out[k]));
		out[k].ep_family = a->addr.len == 4 ? 4 : 6;
		memcpy(out[k].ep_addr, a->addr.data, a->addr.len);
		out[k].ep_port = (uint16_t)a->port;
		k++;
	}
	tk__bus__v1__endpoints__free_unpacked(e, NULL);
	return k;
}

static bool
have_derp(const wgdi_bus *b)
{
	return b->nm.derp && b->w->derp != NULL;
}

static void
on_derp_map(void *arg, const Tk__Bus__V1__DERPMap *m)
{
	wgdi_bus *b = arg;

	if (b->stun != NULL && wgdi_stun_set_map(b->stun, m))
		TK_INFO(WGD_SUBSYS, "STUN: servers from the DERP map changed");
}

static void
on_path_timer(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	wgdi_bus *b = arg;

	(void)loop, (void)t;
	if (b->stun != NULL && !b->w->always_derp && b->w->udp >= 0)
		wgdi_stun_tick(b->stun, disco_send_udp, b);
	wgdi_paths_tick(b->paths, have_derp(b));
	wgdi_flush_tx(b->w);
}

void
wgdi_bus_stun_rx(wgdi_bus *b, const tk_wg_endpoint *src, const uint8_t *p,
    size_t n)
{
	bool changed;

	if (b->stun != NULL && wgdi_stun_rx(b->stun, src, p, n, &changed) &&
	    changed)
		eps_refresh(b); /* the new endpoints to control and peers */
}

/* --- the "paths" topic (PeerPaths, proto/tk/bus/v1/wg.proto) ----------- */

static void
addr_port(Tk__Bus__V1__AddrPort *ap, tk_wg_endpoint *e)
{
	tk__bus__v1__addr_port__init(ap);
	ap->has_addr = ap->has_port = true;
	ap->addr.data = e->ep_addr;
	ap->addr.len = e->ep_family == 4 ? 4 : 16;
	ap->port = e->ep_port;
}

/* One peer's PeerPath; e and ap are its storage. */
static void
path_of(wgdi_bus *b, tk_wg_peer *p, Tk__Bus__V1__PeerPath *pp,
    tk_wg_endpoint *e, Tk__Bus__V1__AddrPort *ap)
{
	wgdi_peer_rec *n = tk_wg_peer_user(p);
	wgdi_path_info in;
	tk_wg_peer_stats st;

	tk__bus__v1__peer_path__init(pp);
	pp->has_node_key = true;
	pp->node_key.data = (uint8_t *)tk_wg_peer_public_key(p);
	pp->node_key.len = 32;
	if (n != NULL) {
		pp->has_node_id = true;
		pp->node_id = n->id;
	}
	pp->has_kind = true;
	wgdi_paths_info(b->paths, p, have_derp(b), &in);
	if (!in.managed) { /* WireGuard's endpoint */
		tk_wg_peer_get_endpoint(p, e);
		if (tk_wg_endpoint_is_derp(e)) {
			pp->kind = TK__BUS__V1__PATH_KIND__PATH_KIND_DERP;
			pp->has_derp_region = true;
			pp->derp_region = e->ep_port;
		} else if (e->ep_family != 0) {
			pp->kind = TK__BUS__V1__PATH_KIND__PATH_KIND_DIRECT;
			addr_port(ap, e);
			pp->best_addr = ap;
		} else {
			pp->kind = TK__BUS__V1__PATH_KIND__PATH_KIND_NONE;
		}
	} else {
		pp->kind = in.direct ? TK__BUS__V1__PATH_KIND__PATH_KIND_DIRECT :
		    TK__BUS__V1__PATH_KIND__PATH_KIND_DERP;
		if (in.best.ep_family != 0) {
			*e = in.best;
			addr_port(ap, e);
			pp->best_addr = ap;
			pp->has_latency_us = true;
			pp->latency_us = (uint32_t)(in.lat_ns / 1000);
		}
		if (in.direct) {
			pp->has_trust_until_unix_ms = true;
			pp->trust_until_unix_ms = (int64_t)((tk_clock_real_ns(NULL) +
			    in.trust_left_ns) / 1000000);
		} else {
			pp->has_derp_region = true;
			pp->derp_region = in.region;
		}
	}
	tk_wg_peer_get_stats(p, &st);
	pp->has_rx_bytes = pp->has_tx_bytes = true;
	pp->rx_bytes = st.rx_bytes;
	pp->tx_bytes = st.tx_bytes;
	if (st.last_handshake_real_ns) {
		pp->has_last_handshake_unix_ms = true;
		pp->last_handshake_unix_ms = (int64_t)(st.last_handshake_real_ns / 1000000);
	}
}

/* PeerPaths with one peer (only) or every peer, and the keys in
 * removed[0..nremoved) */
static int
paths_pack(wgdi_bus *b, tk_wg_peer *only, const uint8_t *removed,
    size_t nremoved, tk_buf *out)
{
	Tk__Bus__V1__PeerPaths m = TK__BUS__V1__PEER_PATHS__INIT;
	size_t np = only != NULL ? 1 : tk_wg_peer_count(b->w->dev), i = 0;
	Tk__Bus__V1__PeerPath *pp = tk_calloc(np + 1, sizeof(*pp));
	Tk__Bus__V1__PeerPath **ptr = tk_calloc(np + 1, sizeof(*ptr));
	tk_wg_endpoint *e = tk_calloc(np + 1, sizeof(*e));
	Tk__Bus__V1__AddrPort *ap = tk_calloc(np + 1, sizeof(*ap));
	ProtobufCBinaryData *rm = tk_calloc(nremoved + 1, sizeof(*rm));
	int rv = TK_ENOMEM;

	if (pp != NULL && ptr != NULL && e != NULL && ap != NULL && rm != NULL) {
		if (only != NULL)
			path_of(b, only, &pp[i], &e[i], &ap[i]), ptr[i] = &pp[i], i++;
		else
			for (tk_wg_peer *p = tk_wg_peer_first(b->w->dev); p && i < np;
			    p = tk_wg_peer_next(p), i++) {
				path_of(b, p, &pp[i], &e[i], &ap[i]);
				ptr[i] = &pp[i];
			}
		for (size_t k = 0; k < nremoved; k++) {
			rm[k].data = (uint8_t *)removed + k * 32;
			rm[k].len = 32;
		}
		m.peers = ptr;
		m.n_peers = i;
		m.removed = rm;
		m.n_removed = nremoved;
		rv = tk_bus_pb_pack(&m.base, out);
	}
	tk_free(pp), tk_free(ptr), tk_free(e), tk_free(ap), tk_free(rm);
	return rv;
}

static int
paths_snapshot(void *arg, tk_buf *out)
{
	return paths_pack(arg, NULL, NULL, 0, out);
}

static void
paths_publish(wgdi_bus *b, tk_wg_peer *only, const uint8_t *removed,
    size_t nremoved)
{
	tk_buf buf;

	if (b->t_paths == NULL)
		return;
	tk_buf_init(&buf);
	if (paths_pack(b, only, removed, nremoved, &buf) == 0)
		tk_topic_publish(b->t_paths, buf.data, buf.len);
	tk_buf_fini(&buf);
}

static void
path_changed(void *arg, tk_wg_peer *peer)
{
	paths_publish(arg, peer, NULL, 0);
}

/* After a netmap change: every peer, and the keys gone since last time. */
static void
paths_netmap_changed(wgdi_bus *b)
{
	tk_buf now, gone;

	if (b->t_paths == NULL)
		return;
	tk_buf_init(&now);
	tk_buf_init(&gone);
	for (tk_wg_peer *p = tk_wg_peer_first(b->w->dev); p; p = tk_wg_peer_next(p))
		if (tk_buf_append(&now, tk_wg_peer_public_key(p), 32) != 0)
			goto out;
	for (size_t i = 0; i + 32 <= b->path_keys.len; i += 32)
		if (tk_wg_peer_find(b->w->dev, b->path_keys.data + i) == NULL &&
		    tk_buf_append(&gone, b->path_keys.data + i, 32) != 0)
			goto out;
	paths_publish(b, NULL, gone.data, gone.len / 32);
	tk_buf_reset(&b->path_keys);
	tk_buf_append(&b->path_keys, now.data, now.len);
out:
	tk_buf_fini(&now);
	tk_buf_fini(&gone);
}

bool
wgdi_bus_route(wgdi_bus *b, tk_wg_peer *peer, tk_wg_endpoint *udp,
    uint16_t *derp_region)
{
	return b->paths != NULL &&
	    wgdi_paths_route(b->paths, peer, have_derp(b), udp, derp_region);
}

void
wgdi_bus_paths_kick(wgdi_bus *b)
{
	if (b->paths != NULL && wgdi_paths_kicked(b->paths))
		wgdi_paths_tick(b->paths, have_derp(b));
}

bool
wgdi_bus_path_status(wgdi_bus *b, tk_wg_peer *peer, tk_wg_endpoint *cur,
    uint16_t *relay_region)
{
	return b->paths != NULL &&
	    wgdi_paths_status(b->paths, peer, have_derp(b), cur, relay_region);
}

struct wgdi_disco *
wgdi_bus_disco(wgdi_bus *b)
{
	return b != NULL ? &b->disco : NULL;
}

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
	b->nm.dev = w->dev;
	tk_buf_init(&b->path_keys);
	w->bus = b;
	if (w->state_dir != NULL) {
		if ((rv = open_state(b, port, err, errlen)) != 0)
			goto fail;
		if ((rv = tk_wg_device_set_private_key(w->dev, b->node_priv.b)) != 0)
			goto fail;
	}
	wgdi_disco_init(&b->disco, w->dev, b->st != NULL ? &b->disco_priv : NULL,
	    &(wgdi_disco_io){ .send = disco_send, .pong = disco_pong,
		.send_udp = disco_send_udp, .arg = b });
	if ((rv = wgdi_stun_new(&b->stun, NULL)) != 0)
		goto fail;
	b->nm.derp_map_cb = on_derp_map;
	b->nm.derp_map_arg = b;
	if ((rv = wgdi_paths_new(&b->paths, w->dev, &b->disco, NULL,
		 &(wgdi_paths_io){ .send_udp = disco_send_udp,
		     .my_endpoints = my_endpoints, .changed = path_changed,
		     .arg = b })) != 0 ||
	    (rv = tk_loop_timer_new(w->loop, &b->path_timer, on_path_timer,
		 b)) != 0 ||
	    (rv = tk_loop_timer_arm(b->path_timer, TK_NSEC_PER_SEC / 2,
		 TK_NSEC_PER_SEC / 2)) != 0)
		goto fail;
	/* TS_DEBUG_ALWAYS_USE_DERP: disco stays on DERP, no path selection */
	b->disco.paths = w->always_derp ? NULL : b->paths;
	wgdi_paths_set_derp_only(b->paths, w->always_derp);
	if (w->ctrld_pub_url != NULL) {
		if ((rv = tk_wg_filter_new(&b->filter, NULL)) != 0)
			goto fail;
		b->nm.filter = b->filter;
		tk_wg_filter_set_cap_cb(b->filter, wgdi_netmap_has_cap, &b->nm);
	}
	if (w->rpc_url != NULL) {
		/* more contexts than the default: pings defer their replies */
		tk_rpc_server_cfg rc = { .loop = w->loop, .url = w->rpc_url,
			.tls = w->tls, .nctx = 12 };
		tk_topic_pub_cfg pc = { .loop = w->loop, .url = w->pub_url,
			.tls = w->tls };
		if ((rv = tk_rpc_server_new(&b->rpc, &rc)) != 0) {
			snprintf(err, errlen, "rpc %s: %s", w->rpc_url, tk_strerror(rv));
			goto fail;
		}
		pc.rpc = b->rpc;
		if ((rv = tk_rpc_server_add(b->rpc, TK_METHOD_STATUS, rpc_status, b)) != 0 ||
		    (rv = tk_rpc_server_add(b->rpc, TK_METHOD_ROTATE_NODE_KEY,
			rpc_rotate,
			b)) != 0 ||
		    (rv = tk_rpc_server_add(b->rpc, TK_METHOD_UAPI_GET,
			wgdi_uapi_get_rpc, w)) != 0 ||
		    (rv = wgdi_ping_new(&b->ping, w, &b->nm, &b->disco,
			b->rpc)) != 0 ||
		    (rv = wgdi_tap_new(&b->tap, w, b->rpc)) != 0 ||
		    (rv = tk_topic_pub_new(&b->pub, &pc)) != 0 ||
		    (rv = tk_topic_add(b->pub, TK_TOPIC_KEYS, keys_snapshot, b,
			&b->t_keys)) != 0 ||
		    (rv = tk_topic_add(b->pub, TK_TOPIC_ENDPOINTS, eps_snapshot, b,
			&b->t_eps)) != 0 ||
		    (rv = tk_topic_add(b->pub, TK_TOPIC_PATHS, paths_snapshot, b,
			&b->t_paths)) != 0 ||
		    (rv = tk_loop_timer_new(w->loop, &b->eps_timer, on_eps_timer,
			b)) != 0 ||
		    (rv = tk_loop_timer_arm(b->eps_timer, 30 * TK_NSEC_PER_SEC,
			30 * TK_NSEC_PER_SEC)) != 0) {
			snprintf(err, errlen, "publisher %s: %s", w->pub_url,
			    tk_strerror(rv));
			goto fail;
		}
	}
	if (w->ctrld_pub_url != NULL) {
		tk_topic_sub_cfg sc = { .loop = w->loop, .url = w->ctrld_pub_url,
			.rpc_url = w->ctrld_rpc_url, .tls = w->tls,
			.topic = TK_TOPIC_NETMAP,
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
		tk_bus_batcher_init(&b->out, b->pkt, TK_BATCH_TARGET_BULK);
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

tk_rpc_server *
wgdi_bus_rpc(wgdi_bus *b)
{
	return b ? b->rpc : NULL;
}

void
wgdi_bus_set_derp(wgdi_bus *b, bool on)
{
	if (b != NULL)
		b->nm.derp = on;
}

void
wgdi_bus_free(wgdi_bus *b)
{
	if (b == NULL)
		return;
	tk_topic_sub_free(b->sub);
	tk_loop_timer_free(b->eps_timer);
	tk_loop_timer_free(b->path_timer);
	wgdi_paths_free(b->paths);
	wgdi_stun_free(b->stun);
	tk_buf_fini(&b->path_keys);
	b->disco.paths = NULL;
	tk_topic_pub_free(b->pub);
	wgdi_ping_free(b->ping);
	wgdi_tap_free(b->tap);
	tk_rpc_server_free(b->rpc);
	tk_bus_reader_free(b->pkt_reader);
	tk_bus_batcher_fini(&b->out);
	if (b->pkt_open)
		tk_bus_close_bounded(b->pkt, 2000); /* nng 1.5.2 (tk/bus.h) */
	wgdi_disco_fini(&b->disco);
	wgdi_netmap_forget(&b->nm);
	tk_wg_filter_free(b->filter);
	tk_state_close(b->st);
	tk_secure_zero(&b->node_priv, sizeof(b->node_priv));
	tk_secure_zero(&b->disco_priv, sizeof(b->disco_priv));
	tk_free(b);
}
