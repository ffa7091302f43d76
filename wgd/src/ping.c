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
 */
#include <string.h>

#include "tk/bus_topics.h"
#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"
#include "tk/rng.h"
#include "tk/bus/v1/wg.pb-c.h"
#include "netmap.h"
#include "ping.h"
#include "probe.h"

#define PINGS		 8	/* in flight at once */
#define TIMEOUT_MS_DEF	 5000
#define TIMEOUT_MS_MAX	 30000

typedef struct ping {
	bool used;
	int kind, family;
	uint8_t ip[16];
	uint8_t data[8];
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
	tk_rpc_server *rpc;
	ping p[PINGS];
	uint64_t sent, answered, timeouts, bad, unmatched, busy;
};

static void
answer(ping *pg, const char *err, const wgdi_probe_reply *r)
{
	wgdi_ping *pp = pg->owner;
	Tk__Bus__V1__PingResponse resp = TK__BUS__V1__PING_RESPONSE__INIT;
	Tk__Bus__V1__AddrPort ap = TK__BUS__V1__ADDR_PORT__INIT;
	tk_wg_endpoint ep = { .ep_family = 0 };
	tk_wg_peer *peer;
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
		resp.has_peerapi_port = r->peerapi_port != 0;
		resp.peerapi_port = r->peerapi_port;
		/* the path the answer came by: roaming set the endpoint */
		if ((peer = tk_wg_peer_find(pp->w->dev, pg->node_key)) != NULL)
			tk_wg_peer_get_endpoint(peer, &ep);
		if (tk_wg_endpoint_is_derp(&ep)) {
			resp.has_derp_region = true;
			resp.derp_region = ep.ep_port;
		} else if (ep.ep_family != 0) {
			ap.has_addr = ap.has_port = true;
			ap.addr.data = ep.ep_addr;
			ap.addr.len = ep.ep_family == 4 ? 4 : 16;
			ap.port = ep.ep_port;
			resp.endpoint = &ap;
		}
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
	answer(pg, "timeout: no answer", NULL);
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

/* Checks the request; fills pg's target.  NULL or the refusal text. */
static const char *
ping_target(wgdi_ping *pp, const Tk__Bus__V1__PingRequest *rq, ping *pg,
    uint32_t *timeout_ms)
{
	tk_wg_peer *peer;

	if (!rq->has_ip || (rq->ip.len != 4 && rq->ip.len != 16))
		return "ping: ip must be 4 or 16 bytes";
	if (!rq->has_type || (rq->type != TK__BUS__V1__PING_TYPE__PING_TYPE_TSMP &&
	    rq->type != TK__BUS__V1__PING_TYPE__PING_TYPE_ICMP))
		return "ping: type must be TSMP or ICMP";
	*timeout_ms = rq->has_timeout_ms && rq->timeout_ms ? rq->timeout_ms :
	    TIMEOUT_MS_DEF;
	if (*timeout_ms > TIMEOUT_MS_MAX)
		return "ping: timeout_ms at most 30000";
	pg->family = rq->ip.len == 4 ? 4 : 6;
	pg->kind = rq->type == TK__BUS__V1__PING_TYPE__PING_TYPE_TSMP ?
	    WGDI_PROBE_TSMP : WGDI_PROBE_ICMP;
	memcpy(pg->ip, rq->ip.data, rq->ip.len);
	if ((peer = tk_wg_device_route(pp->w->dev, pg->family, pg->ip)) == NULL)
		return "no peer has this IP";
	memcpy(pg->node_key, tk_wg_peer_public_key(peer), 32);
	wgdi_peer_rec *rec = tk_wg_peer_user(peer);
	pg->node_id = rec != NULL ? rec->id : 0;
	return NULL;
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
	if (!self_addr(pp->nm, t.family, src)) {
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
	size_t n = wgdi_probe_build(pkt, pg->kind, pg->family, src, pg->ip,
	    pg->data);
	if ((rv = tk_loop_timer_new(pp->w->loop, &pg->timer, on_timeout,
	    pg)) != 0 || (rv = tk_loop_timer_arm(pg->timer,
	    (uint64_t)timeout_ms * TK_NSEC_PER_MSEC, 0)) != 0) {
		answer(pg, tk_strerror(rv), NULL);
		return 0;
	}
	pg->sent_ns = tk_loop_now(pp->w->loop);
	pp->sent++;
	/* like the pongs: past the outbound filter (Go's InjectOutbound) */
	if ((rv = tk_wg_device_send(pp->w->dev, pkt, n)) != 0) {
		answer(pg, tk_strerror(rv), NULL);
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
			answer(pg, NULL, &r);
			return true;
		}
	}
	if (r.kind == WGDI_PROBE_TSMP)
		pp->unmatched++; /* late (timed out) or never asked */
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
wgdi_ping_new(wgdi_ping **out, wgd *w, const wgdi_netmap *nm,
    tk_rpc_server *rpc)
{
	wgdi_ping *pp;
	int rv;

	if ((pp = tk_calloc(1, sizeof(*pp))) == NULL)
		return TK_ENOMEM;
	pp->w = w;
	pp->nm = nm;
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
			answer(&pp->p[i], "wgd is stopping", NULL);
	(void)tk_rpc_server_remove(pp->rpc, TK_METHOD_PING);
	tk_free(pp);
}
