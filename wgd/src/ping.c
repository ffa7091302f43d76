/*
 * rpc "ping" (TK_METHOD_PING): a TSMP ping or an ICMP echo request from
 * the node's own tailnet address to a peer, through the normal encrypted
 * path (tk_wg_device_send: the peer's session, its endpoint or DERP).  The
 * reply is deferred (tk_rpc_server_defer) until the answer comes in
 * (wgdi_ping_consume, from the inbound filter hook) or the timeout fires;
 * the loop never waits.  The answer's path is the peer's endpoint when it
 * arrives: a DERP region (127.3.3.40:<region>) or a UDP address.
 *
 * Answers that match a pending probe are consumed, never handed to the
 * netstack.  Others go on as before (the netstack's own ping may wait for
 * an echo reply; Go's wrap.go, too, lets a pong continue to the filter
 * after its callback): unmatched pongs are counted.  A pong too short to
 * be one is dropped and counted.
 *
 * A disco ping (PING_TYPE_DISCO) is a disco Ping sent by disco.c over
 * DERP to the peer's home region (direct paths are not done); its Pong
 * comes back through wgdi_ping_disco_pong, matched by txid and peer, and
 * the reply names the region it came by and the Pong's Src.
 */
#include <string.h>

#include "tk/bus_topics.h"
#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"
#include "tk/rng.h"
#include "tk/bus/v1/wg.pb-c.h"
#include "disco.h"
#include "netmap.h"
#include "ping.h"
#include "probe.h"

#define PINGS		 8	/* in flight at once */
#define TIMEOUT_MS_DEF	 5000
#define TIMEOUT_MS_MAX	 30000
#define KIND_DISCO	 100	/* next to WGDI_PROBE_TSMP/_ICMP */

/* what a disco Pong said */
typedef struct disco_ans {
	uint16_t region;
	tk_disco_ep src;
} disco_ans;

typedef struct ping {
	bool used;
	int kind, family;
	uint8_t ip[16];
	uint8_t data[8];
	uint8_t txid[TK_DISCO_TXID_LEN]; /* disco */
	uint32_t region;		  /* disco: where it was sent */
	uint8_t node_key[32];
	int64_t node_id;
	uint64_t sent_ns;
	tk_loop_timer *timer;
	tk_rpc_deferred *d;
	wgdi_ping *owner;
} ping;

struct wgdi_ping {
	wgd *w;
	const wgdi_netmap *nm;
	wgdi_disco *dc;
	tk_rpc_server *rpc;
	ping p[PINGS];
	uint64_t sent, answered, timeouts, bad, unmatched, busy;
};

/* The path: the disco Pong's region and Src, else the peer's endpoint
 * (roaming set it to where the answer came from). */
static void
set_path(wgdi_ping *pp, ping *pg, const disco_ans *da,
    Tk__Bus__V1__PingResponse *resp, Tk__Bus__V1__AddrPort *ap,
    Tk__Bus__V1__AddrPort *src, tk_wg_endpoint *ep)
{
	tk_wg_peer *peer;

	if (da != NULL) {
		static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };
		bool v4 = memcmp(da->src.ip, v4mapped, 12) == 0;
		resp->has_derp_region = true;
		resp->derp_region = da->region;
		src->has_addr = src->has_port = true;
		src->addr.data = (uint8_t *)da->src.ip + (v4 ? 12 : 0);
		src->addr.len = v4 ? 4 : 16;
		src->port = da->src.port;
		resp->pong_src = src;
		return;
	}
	if ((peer = tk_wg_peer_find(pp->w->dev, pg->node_key)) != NULL)
		tk_wg_peer_get_endpoint(peer, ep);
	if (tk_wg_endpoint_is_derp(ep)) {
		resp->has_derp_region = true;
		resp->derp_region = ep->ep_port;
	} else if (ep->ep_family != 0) {
		ap->has_addr = ap->has_port = true;
		ap->addr.data = ep->ep_addr;
		ap->addr.len = ep->ep_family == 4 ? 4 : 16;
		ap->port = ep->ep_port;
		resp->endpoint = ap;
	}
}

static void
answer(ping *pg, const char *err, const wgdi_probe_reply *r,
    const disco_ans *da)
{
	wgdi_ping *pp = pg->owner;
	Tk__Bus__V1__PingResponse resp = TK__BUS__V1__PING_RESPONSE__INIT;
	Tk__Bus__V1__AddrPort ap = TK__BUS__V1__ADDR_PORT__INIT;
	Tk__Bus__V1__AddrPort src = TK__BUS__V1__ADDR_PORT__INIT;
	tk_wg_endpoint ep = { .ep_family = 0 };
	uint8_t buf[256];

	resp.has_ip = true;
	resp.ip.data = pg->ip;
	resp.ip.len = pg->family == 4 ? 4 : 16;
	resp.has_node_id = pg->node_id != 0;
	resp.node_id = pg->node_id;
	resp.has_node_key = true;
	resp.node_key.data = pg->node_key;
	resp.node_key.len = 32;
	if (err != NULL) {
		resp.err = (char *)err;
	} else {
		resp.has_latency_us = true;
		resp.latency_us = (tk_loop_now(pp->w->loop) - pg->sent_ns) / 1000;
		resp.has_peerapi_port = r != NULL && r->peerapi_port != 0;
		resp.peerapi_port = r != NULL ? r->peerapi_port : 0;
		set_path(pp, pg, da, &resp, &ap, &src, &ep);
	}
	size_t n = tk__bus__v1__ping_response__pack(&resp, buf);
	tk_rpc_deferred_reply(pg->d, 0, NULL, buf, n);
	tk_loop_timer_free(pg->timer);
	memset(pg, 0, sizeof(*pg));
}

static void
on_timeout(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	ping *pg = arg;

	(void)loop, (void)t;
	pg->owner->timeouts++;
	answer(pg, "timeout: no answer", NULL, NULL);
}

/* The node's own address of family (4/6) into src; false: none. */
static bool
self_addr(const wgdi_netmap *nm, int family, uint8_t *src)
{
	for (unsigned i = 0; i < nm->nself; i++)
		if (nm->self_len[i] == (family == 4 ? 4 : 16)) {
			memcpy(src, nm->self_addr[i], nm->self_len[i]);
			return true;
		}
	return false;
}

/* A disco ping goes over DERP to the peer's home region (or the region
 * WireGuard uses for it now): Go's magicsock pings derpAddr too while it
 * has no direct path. */
static const char *
disco_target(wgdi_ping *pp, tk_wg_peer *peer, const wgdi_peer_rec *rec,
    ping *pg)
{
	tk_wg_endpoint ep = { .ep_family = 0 };

	if (pp->w->derp == NULL)
		return "ping: disco pings go over DERP, and wgd has no DERP "
		    "path (no derpd)";
	if (pp->dc == NULL || !pp->dc->keyed)
		return "ping: wgd has no disco key (no state)";
	if (rec == NULL || !rec->has_disco)
		return "ping: the peer has no disco key in the netmap (try "
		    "type TSMP)";
	tk_wg_peer_get_endpoint(peer, &ep);
	pg->region = rec->home_derp > 0 && rec->home_derp <= 65535 ?
	    (uint32_t)rec->home_derp : tk_wg_endpoint_is_derp(&ep) ?
	    ep.ep_port : 0;
	if (pg->region == 0)
		return "ping: the peer has no home DERP region (direct disco "
		    "pings are not done yet)";
	return NULL;
}

/* Checks the request; fills pg's target.  NULL or the refusal text. */
static const char *
ping_target(wgdi_ping *pp, const Tk__Bus__V1__PingRequest *rq, ping *pg,
    uint32_t *timeout_ms)
{
	tk_wg_peer *peer;

	if (!rq->has_ip || (rq->ip.len != 4 && rq->ip.len != 16))
		return "ping: ip must be 4 or 16 bytes";
	if (!rq->has_type || (rq->type != TK__BUS__V1__PING_TYPE__PING_TYPE_TSMP &&
	    rq->type != TK__BUS__V1__PING_TYPE__PING_TYPE_ICMP &&
	    rq->type != TK__BUS__V1__PING_TYPE__PING_TYPE_DISCO))
		return "ping: type must be TSMP, ICMP or DISCO";
	*timeout_ms = rq->has_timeout_ms && rq->timeout_ms ? rq->timeout_ms :
	    TIMEOUT_MS_DEF;
	if (*timeout_ms > TIMEOUT_MS_MAX)
		return "ping: timeout_ms at most 30000";
	pg->family = rq->ip.len == 4 ? 4 : 6;
	pg->kind = rq->type == TK__BUS__V1__PING_TYPE__PING_TYPE_TSMP ?
	    WGDI_PROBE_TSMP : rq->type == TK__BUS__V1__PING_TYPE__PING_TYPE_ICMP ?
	    WGDI_PROBE_ICMP : KIND_DISCO;
	memcpy(pg->ip, rq->ip.data, rq->ip.len);
	if ((peer = tk_wg_device_route(pp->w->dev, pg->family, pg->ip)) == NULL)
		return "no peer has this IP";
	memcpy(pg->node_key, tk_wg_peer_public_key(peer), 32);
	wgdi_peer_rec *rec = tk_wg_peer_user(peer);
	pg->node_id = rec != NULL ? rec->id : 0;
	return pg->kind == KIND_DISCO ? disco_target(pp, peer, rec, pg) : NULL;
}

static int
rpc_ping(void *arg, const uint8_t *body, size_t len, tk_buf *reply)
{
	wgdi_ping *pp = arg;
	Tk__Bus__V1__PingRequest *rq;
	ping t = { .used = true }, *pg = NULL;
	uint8_t pkt[WGDI_PROBE_MAX], src[16];
	uint32_t timeout_ms = 0;
	const char *why;
	int rv;

	if ((rq = tk__bus__v1__ping_request__unpack(NULL, len, body)) == NULL) {
		tk_buf_append_str(reply, "ping: undecodable PingRequest");
		return TK_EPROTO;
	}
	why = ping_target(pp, rq, &t, &timeout_ms);
	tk__bus__v1__ping_request__free_unpacked(rq, NULL);
	if (why != NULL) {
		tk_buf_append_str(reply, why);
		return TK_EINVAL;
	}
	if (t.kind != KIND_DISCO && !self_addr(pp->nm, t.family, src)) {
		tk_buf_append_str(reply, t.family == 4 ? "the node has no IPv4 "
		    "tailnet address" : "the node has no IPv6 tailnet address");
		return TK_ESTATE;
	}
	for (int i = 0; i < PINGS && pg == NULL; i++)
		if (!pp->p[i].used)
			pg = &pp->p[i];
	if (pg == NULL || (t.d = tk_rpc_server_defer(pp->rpc)) == NULL) {
		pp->busy++;
		tk_buf_append_str(reply, "ping: too many pings in flight");
		return TK_EAGAIN;
	}
	tk_rng_fill(NULL, t.data, sizeof(t.data));
	t.owner = pp;
	*pg = t;
	if ((rv = tk_loop_timer_new(pp->w->loop, &pg->timer, on_timeout,
	    pg)) != 0 || (rv = tk_loop_timer_arm(pg->timer,
	    (uint64_t)timeout_ms * TK_NSEC_PER_MSEC, 0)) != 0) {
		answer(pg, tk_strerror(rv), NULL, NULL);
		return 0;
	}
	pg->sent_ns = tk_loop_now(pp->w->loop);
	pp->sent++;
	if (pg->kind == KIND_DISCO) {
		tk_wg_peer *peer = tk_wg_peer_find(pp->w->dev, pg->node_key);
		rv = peer != NULL ? wgdi_disco_ping(pp->dc, peer, pg->region,
		    pg->txid) : TK_ESTATE;
		if (rv != 0)
			answer(pg, tk_strerror(rv), NULL, NULL);
		wgdi_flush_tx(pp->w);
		return 0;
	}
	size_t n = wgdi_probe_build(pkt, pg->kind, pg->family, src, pg->ip,
	    pg->data);
	/* like the pongs: past the outbound filter (Go's InjectOutbound) */
	if ((rv = tk_wg_device_send(pp->w->dev, pkt, n)) != 0) {
		answer(pg, tk_strerror(rv), NULL, NULL);
		return 0;
	}
	wgdi_flush_tx(pp->w);
	return 0;
}

bool
wgdi_ping_consume(wgdi_ping *pp, const uint8_t *p, size_t n)
{
	wgdi_probe_reply r;
	int k;

	if (pp == NULL)
		return false;
	if ((k = wgdi_probe_parse(p, n, &r)) == WGDI_PROBE_BAD) {
		pp->bad++;
		return true;
	}
	if (k != WGDI_PROBE_REPLY)
		return false;
	for (int i = 0; i < PINGS; i++) {
		ping *pg = &pp->p[i];
		if (pg->used && pg->kind == r.kind && pg->family == r.family &&
		    memcmp(pg->data, r.data, 8) == 0 &&
		    memcmp(pg->ip, r.src, r.family == 4 ? 4 : 16) == 0) {
			pp->answered++;
			answer(pg, NULL, &r, NULL);
			return true;
		}
	}
	if (r.kind == WGDI_PROBE_TSMP)
		pp->unmatched++; /* late (timed out) or never asked */
	return false;
}

bool
wgdi_ping_disco_pong(wgdi_ping *pp, const uint8_t node_key[32],
    uint16_t region, const tk_disco_msg *m)
{
	if (pp == NULL)
		return false;
	for (int i = 0; i < PINGS; i++) {
		ping *pg = &pp->p[i];
		if (pg->used && pg->kind == KIND_DISCO &&
		    memcmp(pg->txid, m->txid, TK_DISCO_TXID_LEN) == 0 &&
		    memcmp(pg->node_key, node_key, 32) == 0) {
			disco_ans da = { .region = region, .src = m->src };
			pp->answered++;
			answer(pg, NULL, NULL, &da);
			return true;
		}
	}
	return false;
}

void
wgdi_ping_counters(const wgdi_ping *pp, tk_status_counters *cs)
{
	if (pp == NULL)
		return;
	tk_status_counter(cs, "ping_sent", pp->sent);
	tk_status_counter(cs, "ping_answered", pp->answered);
	tk_status_counter(cs, "ping_timeouts", pp->timeouts);
	tk_status_counter(cs, "ping_busy", pp->busy);
	tk_status_counter(cs, "ping_replies_bad", pp->bad);
	tk_status_counter(cs, "ping_pongs_unmatched", pp->unmatched);
}

int
wgdi_ping_new(wgdi_ping **out, wgd *w, const wgdi_netmap *nm, wgdi_disco *dc,
    tk_rpc_server *rpc)
{
	wgdi_ping *pp;
	int rv;

	if ((pp = tk_calloc(1, sizeof(*pp))) == NULL)
		return TK_ENOMEM;
	pp->w = w;
	pp->nm = nm;
	pp->dc = dc;
	pp->rpc = rpc;
	if ((rv = tk_rpc_server_add(rpc, TK_METHOD_PING, rpc_ping, pp)) != 0) {
		tk_free(pp);
		return rv;
	}
	*out = pp;
	return 0;
}

void
wgdi_ping_free(wgdi_ping *pp)
{
	if (pp == NULL)
		return;
	for (int i = 0; i < PINGS; i++)
		if (pp->p[i].used)
			answer(&pp->p[i], "wgd is stopping", NULL, NULL);
	(void)tk_rpc_server_remove(pp->rpc, TK_METHOD_PING);
	tk_free(pp);
}
