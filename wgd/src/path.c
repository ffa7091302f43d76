/* wgd's path selection: see path.h. */
#include <string.h>

#include "tk/err.h"
#include "tk/keys.h"
#include "tk/log.h"
#include "tk/mem.h"
#include "tk/netaddr.h"
#include "tk/rng.h"
#include "disco.h"
#include "netmap.h"
#include "path.h"

#define PATH_SUBSYS "wgd"

/* A Ping we sent over UDP, waiting for its Pong. */
typedef struct wgdi_ping_out {
	bool used;
	uint8_t txid[TK_DISCO_TXID_LEN];
	uint8_t node_key[32];
	tk_wg_endpoint to;
	uint64_t sent;
} wgdi_ping_out;

struct wgdi_paths {
	tk_wg_device *dev;
	wgdi_disco *dc;
	const tk_clock *clock;
	wgdi_paths_io io;
	bool kicked;
	bool derp_only; /* TS_DEBUG_ALWAYS_USE_DERP */
	wgdi_ping_out pings[WGDI_PATH_MAX_PINGS];
	uint64_t pings_sent, pongs, pongs_unmatched, ping_timeouts, adopted,
	    fell_back, cmm_sent, table_full, direct_tx, derp_tx;
};

static uint64_t
now_ns(const wgdi_paths *ps)
{
	return tk_clock_mono_ns(ps->clock);
}

static void
ep_str(const tk_wg_endpoint *e, char out[TK_NETADDR_TEXT_MAX])
{
	tk_ipport a;

	memset(&a, 0, sizeof(a));
	a.ip.family = e->ep_family == 4 ? TK_AF_INET : TK_AF_INET6;
	memcpy(a.ip.addr, e->ep_addr, e->ep_family == 4 ? 4 : 16);
	a.port = e->ep_port;
	tk_ipport_format(&a, out);
}

/* betterAddr's bonus points (endpoint.go): loopback 50, else link-local
 * 30, else private 20; IPv6 10. */
static int
addr_points(const tk_wg_endpoint *e)
{
	const uint8_t *a = e->ep_addr;
	int pts = 0;

	if (e->ep_family == 4) {
		if (a[0] == 127)
			pts = 50;
		else if (a[0] == 169 && a[1] == 254)
			pts = 30;
		else if (a[0] == 10 || (a[0] == 172 && (a[1] & 0xf0) == 16) ||
		    (a[0] == 192 && a[1] == 168))
			pts = 20;
	} else {
		static const uint8_t lo[16] = { [15] = 1 };
		if (memcmp(a, lo, 16) == 0)
			pts = 50;
		else if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
			pts = 30;
		else if ((a[0] & 0xfe) == 0xfc)
			pts = 20;
		pts += 10;
	}
	return pts;
}

bool
wgdi_path_better(const tk_wg_endpoint *a, uint64_t la, const tk_wg_endpoint *b,
    uint64_t lb)
{
	int sa = 0, sb = 0;

	if (a->ep_family == 0)
		return false;
	if (b->ep_family == 0)
		return true;
	if (wgdi_ep_eq(a, b))
		return false; /* MTU probing is not done: same address, same */
	/* the percentage by which the faster one beats the slower one, in
	 * Go's integer arithmetic */
	if (la > lb && la > 0)
		sb = (int)(100 - (lb * 100) / la);
	else if (lb > 0)
		sa = (int)(100 - (la * 100) / lb);
	sa += addr_points(a);
	sb += addr_points(b);
	if (sa <= 1 && sb == 0)
		return false; /* hysteresis: keep b */
	return sa > sb;
}

int
wgdi_paths_new(wgdi_paths **out, tk_wg_device *dev, wgdi_disco *dc,
    const tk_clock *clock, const wgdi_paths_io *io)
{
	wgdi_paths *ps = tk_calloc(1, sizeof(*ps));

	if (ps == NULL)
		return TK_ENOMEM;
	ps->dev = dev;
	ps->dc = dc;
	ps->clock = clock;
	ps->io = *io;
	*out = ps;
	return 0;
}

void
wgdi_paths_free(wgdi_paths *ps)
{
	tk_free(ps);
}

/* Path selection applies to this peer now: its record, else NULL. */
static wgdi_peer_rec *
managed(const wgdi_paths *ps, tk_wg_peer *peer, bool have_derp)
{
	wgdi_peer_rec *n = peer != NULL ? tk_wg_peer_user(peer) : NULL;

	if (n == NULL || !n->has_disco || !have_derp || n->home_derp <= 0 ||
	    n->home_derp > 65535 || ps->dc == NULL || !ps->dc->keyed)
		return NULL;
	return n;
}

static bool
trusted(const wgdi_path *pt, uint64_t now)
{
	return pt->best.ep_family != 0 && now < pt->trust_until;
}

bool
wgdi_paths_route(wgdi_paths *ps, tk_wg_peer *peer, bool have_derp,
    tk_wg_endpoint *udp, uint16_t *derp_region)
{
	wgdi_peer_rec *n = managed(ps, peer, have_derp);
	uint64_t now;

	if (n == NULL)
		return false;
	memset(udp, 0, sizeof(*udp));
	*derp_region = 0;
	if (ps->derp_only) {
		/* Go's knob closes the UDP socket: everything to a disco peer
		 * goes through its home region, even when the peer itself
		 * sends to us over UDP (no roaming answer), and no discovery */
		*derp_region = (uint16_t)n->home_derp;
		ps->derp_tx++;
		return true;
	}
	now = now_ns(ps);
	n->path.last_send = now;
	if (trusted(&n->path, now)) {
		*udp = n->path.best;
		ps->direct_tx++;
		return true;
	}
	if (n->path.best.ep_family != 0)
		*udp = n->path.best;
	*derp_region = (uint16_t)n->home_derp;
	ps->derp_tx++;
	/* no trusted direct path: discovery (the next tick, at once) if a
	 * candidate is due */
	for (size_t i = 0; i < n->path.ncand && !ps->kicked; i++)
		if (n->path.cand[i].last_ping == 0 ||
		    now - n->path.cand[i].last_ping >= WGDI_PATH_PING_GAP_NS)
			ps->kicked = true;
	return true;
}

void
wgdi_paths_set_derp_only(wgdi_paths *ps, bool on)
{
	ps->derp_only = on;
}

bool
wgdi_paths_kicked(const wgdi_paths *ps)
{
	return ps->kicked;
}

static wgdi_ping_out *
ping_slot(wgdi_paths *ps, uint64_t now)
{
	wgdi_ping_out *oldest = NULL;

	for (size_t i = 0; i < WGDI_PATH_MAX_PINGS; i++) {
		wgdi_ping_out *o = &ps->pings[i];
		if (!o->used)
			return o;
		if (oldest == NULL || o->sent < oldest->sent)
			oldest = o;
	}
	ps->table_full++; /* the oldest is forgotten (it times out anyway) */
	(void)now;
	return oldest;
}

static void
send_ping(wgdi_paths *ps, tk_wg_peer *peer, const tk_wg_endpoint *ep,
    uint64_t now)
{
	wgdi_ping_out *o = ping_slot(ps, now);

	tk_rng_fill(NULL, o->txid, sizeof(o->txid));
	if (wgdi_disco_ping_udp(ps->dc, peer, ep, o->txid) != 0)
		return;
	o->used = true;
	memcpy(o->node_key, tk_wg_peer_public_key(peer), 32);
	o->to = *ep;
	o->sent = now;
	ps->pings_sent++;
}

/* sendDiscoPingsLocked: every candidate not pinged for 5 s; a CallMeMaybe
 * over DERP with our endpoints if one went out. */
static void
discover(wgdi_paths *ps, tk_wg_peer *peer, wgdi_peer_rec *n, uint64_t now,
    bool have_derp)
{
	bool sent = false;

	n->path.last_full = now;
	for (size_t i = 0; i < n->path.ncand; i++) {
		wgdi_cand *c = &n->path.cand[i];
		if (c->last_ping != 0 && now - c->last_ping < WGDI_PATH_PING_GAP_NS)
			continue;
		c->last_ping = now;
		send_ping(ps, peer, &c->ep, now);
		sent = true;
	}
	if (sent && have_derp && ps->io.my_endpoints != NULL) {
		tk_wg_endpoint mine[16];
		size_t k = ps->io.my_endpoints(ps->io.arg, mine, 16);
		if (k > 0 && wgdi_disco_call_me_maybe(ps->dc, peer,
				 (uint16_t)n->home_derp, mine, k) == 0)
			ps->cmm_sent++;
	}
}

static void
fall_back(wgdi_paths *ps, tk_wg_peer *peer, wgdi_peer_rec *n, const char *why)
{
	char fp[TK_KEY_FP_MAX], a[TK_NETADDR_TEXT_MAX];

	tk_key_fingerprint(fp, "nodekey:", tk_wg_peer_public_key(peer));
	ep_str(&n->path.best, a);
	TK_INFO(PATH_SUBSYS, "path to %s: %s stopped answering (%s): DERP region %d",
	    fp, a, why, n->home_derp);
	memset(&n->path.best, 0, sizeof(n->path.best));
	n->path.best_lat = 0;
	n->path.trust_until = 0;
	ps->fell_back++;
	tk_wg_endpoint d;
	tk_wg_endpoint_derp(&d, (uint16_t)n->home_derp);
	tk_wg_peer_set_endpoint(peer, &d);
	if (ps->io.changed != NULL)
		ps->io.changed(ps->io.arg, peer);
}

uint64_t
wgdi_paths_tick(wgdi_paths *ps, bool have_derp)
{
	uint64_t now = now_ns(ps), next = 0;

	ps->kicked = false;
	/* pings unanswered for 5 s (discoPingTimeout) */
	for (size_t i = 0; i < WGDI_PATH_MAX_PINGS; i++) {
		wgdi_ping_out *o = &ps->pings[i];
		if (!o->used)
			continue;
		if (now - o->sent < WGDI_PATH_PING_TIMEOUT_NS) {
			uint64_t due = o->sent + WGDI_PATH_PING_TIMEOUT_NS;
			if (next == 0 || due < next)
				next = due;
			continue;
		}
		o->used = false;
		ps->ping_timeouts++;
		tk_wg_peer *peer = tk_wg_peer_find(ps->dev, o->node_key);
		wgdi_peer_rec *n = managed(ps, peer, have_derp);
		if (n != NULL && wgdi_ep_eq(&o->to, &n->path.best) &&
		    !trusted(&n->path, now))
			fall_back(ps, peer, n, "ping timed out");
	}
	for (tk_wg_peer *p = tk_wg_peer_first(ps->dev); p; p = tk_wg_peer_next(p)) {
		wgdi_peer_rec *n = managed(ps, p, have_derp);
		wgdi_path *pt;
		if (n == NULL)
			continue;
		pt = &n->path;
		/* ping-learned candidates: 45 s after the last ping */
		for (size_t i = 0; i < pt->ncand; i++)
			if ((pt->cand[i].from & WGDI_CAND_PING) &&
			    now - pt->cand[i].heard >= WGDI_PATH_ACTIVE_NS)
				pt->cand[i].from &= (uint8_t)~WGDI_CAND_PING;
		wgdi_path_cands_compact(pt);
		if (pt->last_send == 0 || now - pt->last_send >= WGDI_PATH_ACTIVE_NS)
			continue; /* idle: no heartbeats */
		if (pt->last_heartbeat == 0 ||
		    now - pt->last_heartbeat >= WGDI_PATH_HEARTBEAT_NS) {
			pt->last_heartbeat = now;
			if (pt->best.ep_family != 0)
				send_ping(ps, p, &pt->best, now);
			if (!trusted(pt, now) ||
			    (pt->best_lat > WGDI_PATH_GOOD_LAT_NS &&
				now - pt->last_full >= WGDI_PATH_UPGRADE_NS))
				discover(ps, p, n, now, have_derp);
		} else if (!trusted(pt, now)) {
			discover(ps, p, n, now, have_derp); /* due ones only */
		}
		uint64_t due = pt->last_heartbeat + WGDI_PATH_HEARTBEAT_NS;
		if (next == 0 || due < next)
			next = due;
	}
	return next;
}

bool
wgdi_paths_udp_ping(wgdi_paths *ps, tk_wg_peer *peer, const tk_wg_endpoint *src,
    const tk_disco_msg *m)
{
	wgdi_peer_rec *n = tk_wg_peer_user(peer);
	wgdi_path *pt;
	int j;

	if (n == NULL || src->ep_family == 0)
		return true;
	pt = &n->path;
	for (j = 0; j < pt->ncand; j++)
		if (wgdi_ep_eq(&pt->cand[j].ep, src))
			break;
	if (j < pt->ncand && pt->cand[j].has_txid &&
	    memcmp(pt->cand[j].last_txid, m->txid, TK_DISCO_TXID_LEN) == 0)
		return false; /* a duplicate: no Pong */
	if ((j = wgdi_path_cand_add(pt, src)) < 0)
		return true; /* full: answered, not remembered */
	pt->cand[j].from |= WGDI_CAND_PING;
	pt->cand[j].heard = now_ns(ps);
	pt->cand[j].has_txid = true;
	memcpy(pt->cand[j].last_txid, m->txid, TK_DISCO_TXID_LEN);
	return true;
}

void
wgdi_paths_udp_pong(wgdi_paths *ps, tk_wg_peer *peer, const tk_wg_endpoint *src,
    const tk_disco_msg *m)
{
	wgdi_peer_rec *n = tk_wg_peer_user(peer);
	wgdi_ping_out *o = NULL;
	uint64_t now = now_ns(ps), lat;

	(void)src; /* the path is where the Ping went; Src is only recorded */
	for (size_t i = 0; i < WGDI_PATH_MAX_PINGS; i++)
		if (ps->pings[i].used &&
		    memcmp(ps->pings[i].txid, m->txid, TK_DISCO_TXID_LEN) == 0 &&
		    memcmp(ps->pings[i].node_key, tk_wg_peer_public_key(peer),
			32) == 0) {
			o = &ps->pings[i];
			break;
		}
	if (o == NULL || n == NULL) {
		ps->pongs_unmatched++;
		return;
	}
	o->used = false;
	ps->pongs++;
	lat = now - o->sent;
	/* handlePongConnLocked: a better address, or any answering one while
	 * the best is not trusted */
	if (wgdi_path_better(&o->to, lat, &n->path.best, n->path.best_lat) ||
	    (!trusted(&n->path, now) && !wgdi_ep_eq(&o->to, &n->path.best))) {
		char fp[TK_KEY_FP_MAX], a[TK_NETADDR_TEXT_MAX];
		tk_key_fingerprint(fp, "nodekey:", tk_wg_peer_public_key(peer));
		ep_str(&o->to, a);
		TK_INFO(PATH_SUBSYS, "path to %s: direct via %s (%.1f ms)", fp, a,
		    (double)lat / 1e6);
		n->path.best = o->to;
		ps->adopted++;
		/* status and WireGuard's roaming see the direct address */
		tk_wg_peer_set_endpoint(peer, &o->to);
		n->path.trust_until = now + WGDI_PATH_TRUST_NS;
		n->path.best_lat = lat;
		if (ps->io.changed != NULL)
			ps->io.changed(ps->io.arg, peer);
	}
	if (wgdi_ep_eq(&n->path.best, &o->to)) {
		n->path.best_lat = lat;
		n->path.trust_until = now + WGDI_PATH_TRUST_NS;
	}
}

void
wgdi_paths_cmm(wgdi_paths *ps, tk_wg_peer *peer, const tk_disco_msg *m,
    bool have_derp)
{
	wgdi_peer_rec *n = managed(ps, peer, have_derp);
	tk_wg_endpoint eps[WGDI_PATH_MAX_CANDS];
	size_t k = 0;

	if (n == NULL)
		return;
	for (size_t i = 0; i < m->neps && k < WGDI_PATH_MAX_CANDS; i++) {
		tk_disco_ep d;
		static const uint8_t v4m[12] = { [10] = 0xff, [11] = 0xff };
		tk_disco_ep_at(m->eps, i, &d);
		memset(&eps[k], 0, sizeof(eps[k]));
		if (memcmp(d.ip, v4m, 12) == 0) {
			eps[k].ep_family = 4;
			memcpy(eps[k].ep_addr, d.ip + 12, 4);
		} else {
			eps[k].ep_family = 6;
			memcpy(eps[k].ep_addr, d.ip, 16);
		}
		eps[k].ep_port = d.port;
		k++;
	}
	wgdi_path_set_cands(&n->path, WGDI_CAND_CMM, eps, k);
	/* handleCallMeMaybe: every candidate is pinged now */
	for (size_t i = 0; i < n->path.ncand; i++)
		n->path.cand[i].last_ping = 0;
	uint64_t now = now_ns(ps);
	for (size_t i = 0; i < n->path.ncand; i++) {
		n->path.cand[i].last_ping = now;
		send_ping(ps, peer, &n->path.cand[i].ep, now);
	}
}

bool
wgdi_paths_status(wgdi_paths *ps, tk_wg_peer *peer, bool have_derp,
    tk_wg_endpoint *cur, uint16_t *relay_region)
{
	wgdi_peer_rec *n = managed(ps, peer, have_derp);

	if (n == NULL)
		return false;
	*relay_region = 0;
	if (trusted(&n->path, now_ns(ps))) {
		*cur = n->path.best;
	} else {
		tk_wg_endpoint_derp(cur, (uint16_t)n->home_derp);
		*relay_region = (uint16_t)n->home_derp;
	}
	return true;
}

void
wgdi_paths_info(wgdi_paths *ps, tk_wg_peer *peer, bool have_derp,
    wgdi_path_info *out)
{
	wgdi_peer_rec *n = managed(ps, peer, have_derp);
	uint64_t now = now_ns(ps);

	memset(out, 0, sizeof(*out));
	if (n == NULL)
		return;
	out->managed = true;
	out->best = n->path.best;
	out->lat_ns = n->path.best_lat;
	if (trusted(&n->path, now)) {
		out->direct = true;
		out->trust_left_ns = n->path.trust_until - now;
	} else {
		out->region = (uint16_t)n->home_derp;
	}
}

void
wgdi_paths_counters(const wgdi_paths *ps, tk_status_counters *cs)
{
	tk_status_counter(cs, "path_pings_sent", ps->pings_sent);
	tk_status_counter(cs, "path_pongs", ps->pongs);
	tk_status_counter(cs, "path_pongs_unmatched", ps->pongs_unmatched);
	tk_status_counter(cs, "path_ping_timeouts", ps->ping_timeouts);
	tk_status_counter(cs, "path_direct_adopted", ps->adopted);
	tk_status_counter(cs, "path_fell_back_to_derp", ps->fell_back);
	tk_status_counter(cs, "path_call_me_maybe_sent", ps->cmm_sent);
	tk_status_counter(cs, "path_ping_table_full", ps->table_full);
	tk_status_counter(cs, "path_tx_direct", ps->direct_tx);
	tk_status_counter(cs, "path_tx_derp", ps->derp_tx);
}
