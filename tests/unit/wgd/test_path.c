/*
 * wgd's path selection (wgd/src/path.c) and disco over UDP (disco.c),
 * driven with a fake clock and crafted packets: betterAddr's scoring and
 * hysteresis, the candidate lists, discovery (Pings to candidates and a
 * CallMeMaybe over DERP), a Pong adopting and trusting a direct address,
 * trust expiry (DERP again, with the best address), the fallback when
 * heartbeats go unanswered, Pings over UDP answered once per txid, and
 * the drops.
 */
#include <string.h>

#include "tk/aead.h"
#include "tk/clock.h"
#include "tk/disco.h"
#include "tk/mem.h"
#include "tk/wg.h"
#include "tk_test.h"
#include "disco.h"
#include "netmap.h"
#include "path.h"
#include "stun.h"
#include "tk/stun.h"

void register_path(void);

#define SEC 1000000000ull

static tk_wg_endpoint
ep4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
	tk_wg_endpoint e;

	memset(&e, 0, sizeof(e));
	e.ep_family = 4;
	e.ep_addr[0] = a, e.ep_addr[1] = b, e.ep_addr[2] = c, e.ep_addr[3] = d;
	e.ep_port = port;
	return e;
}

static void
test_path_better(void)
{
	tk_wg_endpoint none, lo = ep4(127, 0, 0, 1, 1), priv = ep4(10, 1, 2, 3, 1),
		pub = ep4(8, 8, 8, 8, 1), pub2 = ep4(9, 9, 9, 9, 1),
		ll = ep4(169, 254, 1, 1, 1);

	memset(&none, 0, sizeof(none));
	CU_ASSERT(wgdi_path_better(&pub, 50, &none, 0));	/* valid beats none */
	CU_ASSERT(!wgdi_path_better(&none, 0, &pub, 50));
	CU_ASSERT(!wgdi_path_better(&pub, 1, &pub, 100));	/* same address */
	/* private +20 beats public at equal latency; loopback beats both */
	CU_ASSERT(wgdi_path_better(&priv, 10, &pub, 10));
	CU_ASSERT(!wgdi_path_better(&pub, 10, &priv, 10));
	CU_ASSERT(wgdi_path_better(&lo, 10, &priv, 10));
	CU_ASSERT(wgdi_path_better(&ll, 10, &priv, 10));
	/* latency: 50% faster beats the private bonus (50 > 20), 10% not */
	CU_ASSERT(wgdi_path_better(&pub, 5, &priv, 10));
	CU_ASSERT(!wgdi_path_better(&pub, 9, &priv, 10));
	/* hysteresis: 1% faster does not replace an equal-kind address */
	CU_ASSERT(!wgdi_path_better(&pub2, 99, &pub, 100));
	CU_ASSERT(wgdi_path_better(&pub2, 90, &pub, 100));
}

static void
test_path_cands(void)
{
	wgdi_path pt;
	tk_wg_endpoint eps[4], ll6, derp;

	memset(&pt, 0, sizeof(pt));
	eps[0] = ep4(10, 0, 0, 1, 41641);
	eps[1] = ep4(10, 0, 0, 2, 41641);
	eps[2] = ep4(10, 0, 0, 3, 0); /* port 0: skipped */
	tk_wg_endpoint_derp(&derp, 1);
	eps[3] = derp;		      /* DERP: never a candidate */
	wgdi_path_set_cands(&pt, WGDI_CAND_NETMAP, eps, 4);
	CU_ASSERT_EQUAL(pt.ncand, 2);
	/* a CallMeMaybe: 10.0.0.2 again and an IPv6 link-local (skipped) */
	memset(&ll6, 0, sizeof(ll6));
	ll6.ep_family = 6, ll6.ep_addr[0] = 0xfe, ll6.ep_addr[1] = 0x80;
	ll6.ep_port = 5;
	tk_wg_endpoint cmm[2] = { eps[1], ll6 };
	wgdi_path_set_cands(&pt, WGDI_CAND_CMM, cmm, 2);
	CU_ASSERT_EQUAL(pt.ncand, 2);
	CU_ASSERT_EQUAL(pt.cand[1].from, WGDI_CAND_NETMAP | WGDI_CAND_CMM);
	/* the netmap drops both: the CallMeMaybe one stays */
	wgdi_path_set_cands(&pt, WGDI_CAND_NETMAP, NULL, 0);
	CU_ASSERT_EQUAL_FATAL(pt.ncand, 1);
	CU_ASSERT_EQUAL(pt.cand[0].ep.ep_addr[3], 2);
	CU_ASSERT_EQUAL(pt.cand[0].from, WGDI_CAND_CMM);
	/* bounded */
	for (int i = 0; i < 40; i++) {
		tk_wg_endpoint e = ep4(10, 1, 0, (uint8_t)i, 1);
		wgdi_path_set_cands(&pt, WGDI_CAND_PING, &e, 1);
		if (i == 0)
			CU_ASSERT_EQUAL(pt.ncand, 2);
	}
	CU_ASSERT(pt.ncand <= WGDI_PATH_MAX_CANDS);
}

/* Peer A (node key 7..7, disco pa, home region 7, netmap endpoint
 * 10.0.0.2:41641); our disco key; captured sends. */
typedef struct pfix {
	tk_fake_clock clk;
	tk_wg_device *dev;
	wgdi_netmap nm;
	wgdi_disco *dc;
	wgdi_paths *ps;
	tk_disco_priv mine, pa, stranger;
	tk_disco_pub mine_pub, pa_pub, stranger_pub;
	uint8_t ka[32];
	unsigned udp_sent, derp_sent;
	tk_wg_endpoint udp_to;
	uint8_t udp_pkt[512];
	size_t udp_len;
	uint8_t derp_pkt[512];
	size_t derp_len;
	uint16_t derp_region;
} pfix;

static void
io_derp(void *arg, const uint8_t k[32], uint16_t region, const uint8_t *p,
    size_t n)
{
	pfix *f = arg;

	(void)k;
	f->derp_sent++;
	f->derp_region = region;
	CU_ASSERT_FATAL(n <= sizeof(f->derp_pkt));
	memcpy(f->derp_pkt, p, n);
	f->derp_len = n;
}

static void
io_udp(void *arg, const tk_wg_endpoint *ep, const uint8_t *p, size_t n)
{
	pfix *f = arg;

	f->udp_sent++;
	f->udp_to = *ep;
	CU_ASSERT_FATAL(n <= sizeof(f->udp_pkt));
	memcpy(f->udp_pkt, p, n);
	f->udp_len = n;
}

static size_t
io_eps(void *arg, tk_wg_endpoint *out, size_t cap)
{
	(void)arg;
	if (cap < 1)
		return 0;
	out[0] = ep4(10, 0, 0, 1, 41642);
	return 1;
}

static pfix *
pfix_new(void)
{
	static const uint8_t node_priv[32] = { 9, 9, 9 };
	Tk__Bus__V1__Netmap nm = TK__BUS__V1__NETMAP__INIT;
	Tk__Bus__V1__Node a = TK__BUS__V1__NODE__INIT, *pp[1] = { &a };
	Tk__Bus__V1__AddrPort ap = TK__BUS__V1__ADDR_PORT__INIT, *app[1] = { &ap };
	uint8_t addr[4] = { 10, 0, 0, 2 }, nmb[512];
	tk_wg_device_config dc = { 0 };
	pfix *f = tk_calloc(1, sizeof(*f));

	CU_ASSERT_FATAL(f != NULL);
	tk_fake_clock_init(&f->clk, 100 * SEC, 1700000000 * SEC);
	dc.clock = &f->clk.fc_clock;
	CU_ASSERT_EQUAL_FATAL(tk_wg_device_new(&f->dev, &dc), 0);
	CU_ASSERT_EQUAL_FATAL(tk_wg_device_set_private_key(f->dev, node_priv), 0);
	memset(f->ka, 7, 32);
	tk_disco_priv_generate(&f->mine, NULL);
	tk_disco_priv_generate(&f->pa, NULL);
	tk_disco_priv_generate(&f->stranger, NULL);
	tk_disco_priv_public(&f->mine, &f->mine_pub);
	tk_disco_priv_public(&f->pa, &f->pa_pub);
	tk_disco_priv_public(&f->stranger, &f->stranger_pub);
	a.has_id = true, a.id = 2;
	a.has_key = true, a.key.data = f->ka, a.key.len = 32;
	a.has_disco_key = true, a.disco_key.data = f->pa_pub.b, a.disco_key.len = 32;
	a.has_home_derp = true, a.home_derp = 7;
	ap.has_addr = ap.has_port = true;
	ap.addr.data = addr, ap.addr.len = 4, ap.port = 41641;
	a.endpoints = app, a.n_endpoints = 1;
	nm.peers = pp, nm.n_peers = 1;
	f->nm.dev = f->dev;
	f->nm.derp = true;
	CU_ASSERT_EQUAL_FATAL(wgdi_netmap_snapshot(&f->nm, nmb,
	    tk__bus__v1__netmap__pack(&nm, nmb)), 0);
	f->dc = tk_calloc(1, sizeof(*f->dc));
	CU_ASSERT_FATAL(f->dc != NULL);
	wgdi_disco_init(f->dc, f->dev, &f->mine, &(wgdi_disco_io){
	    .send = io_derp, .send_udp = io_udp, .arg = f });
	CU_ASSERT_EQUAL_FATAL(wgdi_paths_new(&f->ps, f->dev, f->dc,
	    &f->clk.fc_clock, &(wgdi_paths_io){ .send_udp = io_udp,
		.my_endpoints = io_eps, .arg = f }), 0);
	f->dc->paths = f->ps;
	return f;
}

static void
pfix_free(pfix *f)
{
	wgdi_paths_free(f->ps);
	wgdi_disco_fini(f->dc);
	tk_free(f->dc);
	wgdi_netmap_forget(&f->nm);
	tk_wg_device_free(f->dev);
	tk_free(f);
}

/* What wgd sent (UDP or DERP), opened as peer A: the message. */
static bool
open_as_a(pfix *f, const uint8_t *pkt, size_t len, tk_disco_msg *m,
    uint8_t *buf)
{
	uint8_t shared[32];
	size_t n;

	CU_ASSERT_EQUAL_FATAL(tk_box_precompute(shared, f->mine_pub.b, f->pa.b), 0);
	return tk_disco_open(pkt, len, shared, buf, 512, &n) == 0 &&
	    tk_disco_parse(buf, n, m) == 0;
}

/* msg sealed by `from` to our disco key */
static size_t
seal_from(pfix *f, const tk_disco_priv *from, const tk_disco_pub *from_pub,
    const uint8_t *msg, size_t n, uint8_t *out)
{
	uint8_t shared[32];
	size_t len = 0;

	CU_ASSERT_EQUAL_FATAL(tk_box_precompute(shared, f->mine_pub.b, from->b), 0);
	CU_ASSERT_EQUAL_FATAL(tk_disco_seal(out, 512, &len, shared, from_pub->b,
	    msg, n), 0);
	return len;
}

static void
test_path_discovery_adopt_trust_fallback(void)
{
	pfix *f = pfix_new();
	tk_wg_peer *a = tk_wg_peer_find(f->dev, f->ka);
	tk_wg_endpoint udp, want = ep4(10, 0, 0, 2, 41641);
	uint16_t region;
	tk_disco_msg m;
	uint8_t buf[512], pkt[512], msg[64];

	CU_ASSERT_FATAL(a != NULL);
	/* nothing confirmed: DERP (home region 7), discovery wanted */
	CU_ASSERT(wgdi_paths_route(f->ps, a, true, &udp, &region));
	CU_ASSERT_EQUAL(udp.ep_family, 0);
	CU_ASSERT_EQUAL(region, 7);
	CU_ASSERT(wgdi_paths_kicked(f->ps));
	/* not under path selection without a DERP path */
	CU_ASSERT(!wgdi_paths_route(f->ps, a, false, &udp, &region));
	wgdi_paths_tick(f->ps, true);
	/* a Ping to the netmap endpoint, a CallMeMaybe with ours over DERP */
	CU_ASSERT_EQUAL_FATAL(f->udp_sent, 1);
	CU_ASSERT(memcmp(&f->udp_to, &want, sizeof(want)) == 0);
	CU_ASSERT_FATAL(open_as_a(f, f->udp_pkt, f->udp_len, &m, buf));
	CU_ASSERT_EQUAL(m.type, TK_DISCO_PING);
	CU_ASSERT(m.has_node_key);
	uint8_t txid[TK_DISCO_TXID_LEN];
	memcpy(txid, m.txid, sizeof(txid));
	CU_ASSERT_EQUAL_FATAL(f->derp_sent, 1);
	CU_ASSERT_EQUAL(f->derp_region, 7);
	CU_ASSERT_FATAL(open_as_a(f, f->derp_pkt, f->derp_len, &m, buf));
	CU_ASSERT_EQUAL(m.type, TK_DISCO_CALL_ME_MAYBE);
	CU_ASSERT_EQUAL(m.neps, 1);
	/* within 5 s the candidate is not pinged again */
	tk_fake_clock_advance(&f->clk, SEC);
	wgdi_paths_tick(f->ps, true);
	CU_ASSERT_EQUAL(f->udp_sent, 1);

	/* its Pong, from another source address: the path is where the Ping
	 * went (Go: the pong's source is only recorded) */
	tk_disco_ep src;
	tk_disco_ep_set(&src, want.ep_addr, 4, 9);
	size_t k = tk_disco_write_pong(msg, sizeof(msg), txid, &src);
	size_t len = seal_from(f, &f->pa, &f->pa_pub, msg, k, pkt);
	tk_wg_endpoint other = ep4(10, 0, 0, 99, 5);
	wgdi_disco_rx_udp(f->dc, &other, pkt, len);
	CU_ASSERT(wgdi_paths_route(f->ps, a, true, &udp, &region));
	CU_ASSERT(memcmp(&udp, &want, sizeof(want)) == 0);
	CU_ASSERT_EQUAL(region, 0); /* trusted: UDP alone */
	tk_wg_endpoint cur;
	uint16_t relay = 1;
	CU_ASSERT(wgdi_paths_status(f->ps, a, true, &cur, &relay));
	CU_ASSERT(memcmp(&cur, &want, sizeof(want)) == 0 && relay == 0);
	/* the same Pong again: unmatched */
	wgdi_disco_rx_udp(f->dc, &want, pkt, len);

	/* 7 s later, trust has expired: the best address and DERP */
	tk_fake_clock_advance(&f->clk, 7 * SEC);
	CU_ASSERT(wgdi_paths_route(f->ps, a, true, &udp, &region));
	CU_ASSERT(memcmp(&udp, &want, sizeof(want)) == 0);
	CU_ASSERT_EQUAL(region, 7);
	/* heartbeat pings to it go unanswered: 5 s later it is dropped */
	unsigned before = f->udp_sent;
	wgdi_paths_tick(f->ps, true);
	CU_ASSERT(f->udp_sent > before);
	tk_fake_clock_advance(&f->clk, 5 * SEC + 1);
	wgdi_paths_route(f->ps, a, true, &udp, &region); /* still sending */
	wgdi_paths_tick(f->ps, true);
	CU_ASSERT(wgdi_paths_route(f->ps, a, true, &udp, &region));
	CU_ASSERT_EQUAL(udp.ep_family, 0);
	CU_ASSERT_EQUAL(region, 7);
	CU_ASSERT(wgdi_paths_status(f->ps, a, true, &cur, &relay));
	CU_ASSERT(tk_wg_endpoint_is_derp(&cur) && relay == 7);
	pfix_free(f);
}

/* TS_DEBUG_ALWAYS_USE_DERP: the home region alone, even with a peer's
 * endpoint known; no discovery, nothing over UDP (a Go peer that roamed
 * to us over UDP is still answered through DERP) */
static void
test_path_derp_only(void)
{
	pfix *f = pfix_new();
	tk_wg_peer *a = tk_wg_peer_find(f->dev, f->ka);
	tk_wg_endpoint udp, roamed = ep4(10, 0, 0, 77, 4242);
	uint16_t region = 0;

	CU_ASSERT_FATAL(a != NULL);
	wgdi_paths_set_derp_only(f->ps, true);
	tk_wg_peer_set_endpoint(a, &roamed);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT(wgdi_paths_route(f->ps, a, true, &udp, &region));
		CU_ASSERT_EQUAL(udp.ep_family, 0);
		CU_ASSERT_EQUAL(region, 7);
		CU_ASSERT(!wgdi_paths_kicked(f->ps));
		wgdi_paths_tick(f->ps, true);
		tk_fake_clock_advance(&f->clk, 3 * SEC);
	}
	CU_ASSERT_EQUAL(f->udp_sent, 0);
	CU_ASSERT_EQUAL(f->derp_sent, 0); /* no CallMeMaybe either */
	/* off again: discovery as usual */
	wgdi_paths_set_derp_only(f->ps, false);
	CU_ASSERT(wgdi_paths_route(f->ps, a, true, &udp, &region));
	CU_ASSERT(wgdi_paths_kicked(f->ps));
	pfix_free(f);
}

static void
test_path_udp_ping_pong_and_drops(void)
{
	pfix *f = pfix_new();
	tk_wg_endpoint from = ep4(10, 0, 0, 77, 4242);
	uint8_t msg[64], pkt[512], buf[512];
	static const uint8_t txid[12] = { 5, 4, 3, 2, 1 };
	tk_disco_msg m;
	size_t k = tk_disco_write_ping(msg, sizeof(msg), txid, f->ka, 0);
	size_t len = seal_from(f, &f->pa, &f->pa_pub, msg, k, pkt);

	wgdi_disco_rx_udp(f->dc, &from, pkt, len);
	CU_ASSERT_EQUAL_FATAL(f->udp_sent, 1);
	CU_ASSERT(memcmp(&f->udp_to, &from, sizeof(from)) == 0);
	CU_ASSERT_FATAL(open_as_a(f, f->udp_pkt, f->udp_len, &m, buf));
	CU_ASSERT_EQUAL(m.type, TK_DISCO_PONG);
	CU_ASSERT(memcmp(m.txid, txid, 12) == 0);
	CU_ASSERT_EQUAL(m.src.port, 4242); /* Src: where the Ping came from */
	CU_ASSERT_EQUAL(m.src.ip[15], 77);
	/* the source became a candidate */
	wgdi_peer_rec *n = tk_wg_peer_user(tk_wg_peer_find(f->dev, f->ka));
	CU_ASSERT_EQUAL(n->path.ncand, 2);
	/* the same txid from the same endpoint: no second Pong */
	wgdi_disco_rx_udp(f->dc, &from, pkt, len);
	CU_ASSERT_EQUAL(f->udp_sent, 1);
	CU_ASSERT_EQUAL(f->dc->udp_dup_ping, 1);
	/* a stranger's disco key, a forged box, garbage, a CallMeMaybe over
	 * UDP: dropped and counted, nothing sent */
	size_t sl = seal_from(f, &f->stranger, &f->stranger_pub, msg, k, buf);
	wgdi_disco_rx_udp(f->dc, &from, buf, sl);
	CU_ASSERT_EQUAL(f->dc->udp_drop_unknown_sender, 1);
	pkt[len - 1] ^= 1;
	wgdi_disco_rx_udp(f->dc, &from, pkt, len);
	CU_ASSERT_EQUAL(f->dc->udp_drop_bad_box, 1);
	wgdi_disco_rx_udp(f->dc, &from, pkt, 20);
	CU_ASSERT_EQUAL(f->dc->drop_short, 1);
	tk_disco_ep e;
	tk_disco_ep_set(&e, from.ep_addr, 4, 1);
	k = tk_disco_write_call_me_maybe(msg, sizeof(msg), &e, 1);
	len = seal_from(f, &f->pa, &f->pa_pub, msg, k, pkt);
	wgdi_disco_rx_udp(f->dc, &from, pkt, len);
	CU_ASSERT_EQUAL(f->dc->udp_drop_cmm, 1);
	CU_ASSERT_EQUAL(f->udp_sent, 1);
	/* a CallMeMaybe over DERP: its endpoints are pinged at once */
	wgdi_disco_rx_derp(f->dc, f->ka, 7, pkt, len);
	CU_ASSERT(f->udp_sent >= 2);
	pfix_free(f);
}

/* what a STUN round sent */
typedef struct sent_log {
	unsigned n;
	tk_wg_endpoint to[8];
	uint8_t req[8][TK_STUN_REQUEST_LEN];
} sent_log;

static void
stun_send(void *arg, const tk_wg_endpoint *ep, const uint8_t *p, size_t n)
{
	sent_log *l = arg;

	CU_ASSERT_EQUAL_FATAL(n, TK_STUN_REQUEST_LEN);
	if (l->n < 8) {
		l->to[l->n] = *ep;
		memcpy(l->req[l->n], p, n);
	}
	l->n++;
}

static void
test_stun_client(void)
{
	tk_fake_clock clk;
	wgdi_stun *s;
	sent_log log;
	Tk__Bus__V1__DERPMap m = TK__BUS__V1__DERPMAP__INIT;
	Tk__Bus__V1__DERPRegion r = TK__BUS__V1__DERPREGION__INIT, *rp[1] = { &r };
	Tk__Bus__V1__DERPNode a = TK__BUS__V1__DERPNODE__INIT,
		b = TK__BUS__V1__DERPNODE__INIT, c = TK__BUS__V1__DERPNODE__INIT,
		d = TK__BUS__V1__DERPNODE__INIT, e = TK__BUS__V1__DERPNODE__INIT;
	Tk__Bus__V1__DERPNode *np[5] = { &a, &b, &c, &d, &e };

	tk_fake_clock_init(&clk, 50 * SEC, 1700000000 * SEC);
	CU_ASSERT_EQUAL_FATAL(wgdi_stun_new(&s, &clk.fc_clock), 0);
	a.ipv4 = "10.0.0.1";			  /* port 0: 3478 */
	b.ipv4 = "10.0.0.2", b.has_stun_port = true, b.stun_port = 3479;
	c.ipv4 = "", d.ipv4 = "none";		  /* DNS, disabled: skipped */
	e.ipv4 = "10.0.0.3", e.has_stun_port = true, e.stun_port = -1; /* no STUN */
	r.nodes = np, r.n_nodes = 5;
	m.regions = rp, m.n_regions = 1;
	CU_ASSERT(wgdi_stun_set_map(s, &m));
	CU_ASSERT(!wgdi_stun_set_map(s, &m)); /* the same servers */
	memset(&log, 0, sizeof(log));
	wgdi_stun_tick(s, stun_send, &log);
	CU_ASSERT_EQUAL_FATAL(log.n, 2);
	CU_ASSERT_EQUAL(log.to[0].ep_port, 3478);
	CU_ASSERT_EQUAL(log.to[1].ep_port, 3479);
	/* nothing more until the next round (20-26 s) */
	wgdi_stun_tick(s, stun_send, &log);
	CU_ASSERT_EQUAL(log.n, 2);

	/* answers: both map us to 192.0.2.7:41641 */
	uint8_t resp[TK_STUN_RESPONSE_MAX], ip[4] = { 192, 0, 2, 7 };
	bool changed;
	tk_wg_endpoint out[4];
	size_t k = tk_stun_response(resp, log.req[0] + 8, ip, 4, 41641);
	CU_ASSERT(wgdi_stun_looks_like(resp, k));
	CU_ASSERT(!wgdi_stun_looks_like(resp, 19));
	/* from the wrong address: not taken */
	CU_ASSERT(!wgdi_stun_rx(s, &log.to[1], resp, k, &changed));
	CU_ASSERT(wgdi_stun_rx(s, &log.to[0], resp, k, &changed));
	CU_ASSERT(changed);
	CU_ASSERT(!wgdi_stun_rx(s, &log.to[0], resp, k, &changed)); /* a replay */
	k = tk_stun_response(resp, log.req[1] + 8, ip, 4, 41641);
	CU_ASSERT(wgdi_stun_rx(s, &log.to[1], resp, k, &changed));
	CU_ASSERT(!changed); /* the same mapping */
	CU_ASSERT_EQUAL_FATAL(wgdi_stun_endpoints(s, out, 4), 1);
	CU_ASSERT(out[0].ep_family == 4 && out[0].ep_port == 41641 &&
	    memcmp(out[0].ep_addr, ip, 4) == 0);

	/* next round: server 2 sees another port (mapping varies by
	 * destination): two endpoints, each seen once */
	tk_fake_clock_advance(&clk, 27 * SEC);
	log.n = 0;
	wgdi_stun_tick(s, stun_send, &log);
	CU_ASSERT_EQUAL_FATAL(log.n, 2);
	k = tk_stun_response(resp, log.req[1] + 8, ip, 4, 50000);
	CU_ASSERT(wgdi_stun_rx(s, &log.to[1], resp, k, &changed));
	CU_ASSERT(changed);
	CU_ASSERT_EQUAL(wgdi_stun_endpoints(s, out, 4), 2);
	/* garbage: counted, nothing else */
	uint8_t junk[32] = { 0x01, 0x01, 0, 8, 0x21, 0x12, 0xa4, 0x42 };
	CU_ASSERT(!wgdi_stun_rx(s, &log.to[0], junk, sizeof(junk), &changed));
	/* a minute without answers: the mappings are stale, gone */
	tk_fake_clock_advance(&clk, 61 * SEC);
	CU_ASSERT_EQUAL(wgdi_stun_endpoints(s, out, 4), 0);
	/* a map without STUN servers: no rounds */
	m.n_regions = 0;
	CU_ASSERT(wgdi_stun_set_map(s, &m));
	log.n = 0;
	wgdi_stun_tick(s, stun_send, &log);
	CU_ASSERT_EQUAL(log.n, 0);
	wgdi_stun_free(s);
}

void
register_path(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_path_better),
		TK_TEST(test_path_cands),
		TK_TEST(test_path_discovery_adopt_trust_fallback),
		TK_TEST(test_path_derp_only),
		TK_TEST(test_path_udp_ping_pong_and_drops),
		TK_TEST(test_stun_client),
		TK_TEST_END,
	};
	tk_test_suite("path", cases);
}
