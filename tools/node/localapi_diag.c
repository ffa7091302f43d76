/*
 * LocalAPI diagnostics (tools/node/README.md "LocalAPI"):
 *
 *   POST /localapi/v0/ping?ip=IP&type=TSMP|ICMP|disco   Go's path and
 *        parameters; answers ipnstate.PingResult (wgd's rpc "ping"; disco
 *        goes over DERP only, so the answer names a DERP region).
 *        tailkit's own: &timeout=MS (default 5000).
 *   GET  /localapi/v0/tailkit/netcheck    derpd's measurements (topic
 *        "derp") with the DERP map's names.
 *   GET  /localapi/v0/tailkit/wg          wgd's UAPI "get" text, secret
 *        keys left out (rpc "uapi_get"), as {"uapi": "..."}.
 *   GET  /localapi/v0/tailkit/bus?topic=T[&count=N]   a live dump of a
 *        topic: one JSON line per message (its seq, kind, decoded body),
 *        streamed until the client goes (or N messages).
 *   GET  /localapi/v0/tailkit/bus?bus=wgd-pkt[&count=N]   the same for
 *        the packet bus: one line per IP packet (seq, direction, protocol,
 *        addresses and ports, length), from wgd's rpc "pkt_tap".
 *
 * The /tailkit/ paths are tailkit's: Go's tailscaled has none of them.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "tk/bus_rpc.h"
#include "tk/bus_topic.h"
#include "tk/bus_topics.h"
#include "tk/buf.h"
#include "tk/err.h"
#include "tk/loop.h"
#include "tk/netaddr.h"
#include "tk/bus/v1/common.pb-c.h"
#include "tk/bus/v1/derp.pb-c.h"
#include "tk/bus/v1/wg.pb-c.h"
#include "localapi_int.h"
#include "pb_json.h"

#define PING_MS_DEF 5000
#define PING_MS_MAX 30000

static const char *
region_code_of(const Tk__Bus__V1__Netmap *nm, int32_t id, const char **name)
{
	const Tk__Bus__V1__DERPMap *m = nm ? nm->derp_map : NULL;

	for (size_t i = 0; m && i < m->n_regions; i++)
		if (m->regions[i]->region_id == id) {
			if (name)
				*name = m->regions[i]->region_name ?
				    m->regions[i]->region_name : "";
			return m->regions[i]->region_code ?
			    m->regions[i]->region_code : "";
		}
	if (name)
		*name = "";
	return "";
}

/* The netmap node with this id (self included), or NULL. */
static const Tk__Bus__V1__Node *
node_by_id(const Tk__Bus__V1__Netmap *nm, int64_t id)
{
	for (size_t i = 0; nm && i < nm->n_peers; i++)
		if (nm->peers[i]->id == id)
			return nm->peers[i];
	return NULL;
}

static bool
is_self(const Tk__Bus__V1__Netmap *nm, const tk_ipaddr *ip)
{
	size_t al = ip->family == TK_AF_INET ? 4 : 16;

	for (size_t i = 0; nm && nm->self && i < nm->self->n_addresses; i++)
		if (nm->self->addresses[i]->addr.len == al &&
		    memcmp(nm->self->addresses[i]->addr.data, ip->addr, al) == 0)
			return true;
	return false;
}

/* Go's ComputedName: the MagicDNS name's first label, else the host name. */
static json_t *
node_name(const Tk__Bus__V1__Node *n)
{
	char b[256] = "";

	if (n != NULL && n->name != NULL && *n->name) {
		snprintf(b, sizeof(b), "%s", n->name);
		char *dot = strchr(b, '.');
		if (dot)
			*dot = '\0';
	} else if (n != NULL && n->hostname != NULL) {
		snprintf(b, sizeof(b), "%s", n->hostname);
	}
	return json_string(b);
}

/* The node's address of the family asked (Go: NodeIP), or "". */
static json_t *
node_ip(const Tk__Bus__V1__Node *n, const char *asked, size_t al)
{
	for (size_t i = 0; n && i < n->n_addresses; i++)
		if (n->addresses[i]->addr.len == al)
			return la_ip_json(&n->addresses[i]->addr);
	return json_string(asked);
}

/* ipnstate.PingResult with every field Go's CLI reads. */
static json_t *
ping_result(const char *ip)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:f,s:s,s:s,s:i,s:s}", "IP", ip,
	    "NodeIP", "", "NodeName", "", "Err", "", "LatencySeconds", 0.0,
	    "Endpoint", "", "PeerRelay", "", "DERPRegionID", 0,
	    "DERPRegionCode", "");
}

static void
ping_fill(json_t *o, const Tk__Bus__V1__PingResponse *pr, const view *v,
    const char *ip, size_t al)
{
	const Tk__Bus__V1__Node *n = node_by_id(v->nm, pr->node_id);

	json_object_set_new(o, "NodeName", node_name(n));
	json_object_set_new(o, "NodeIP", node_ip(n, ip, al));
	if (pr->err != NULL && *pr->err) {
		json_object_set_new(o, "Err", json_string(pr->err));
		return;
	}
	json_object_set_new(o, "LatencySeconds",
	    json_real((double)pr->latency_us / 1e6));
	if (pr->has_derp_region && pr->derp_region != 0) {
		json_object_set_new(o, "DERPRegionID",
		    json_integer(pr->derp_region));
		json_object_set_new(o, "DERPRegionCode",
		    json_string(region_code_of(v->nm, pr->derp_region, NULL)));
	} else if (pr->endpoint != NULL && (pr->endpoint->addr.len == 4 ||
	    pr->endpoint->addr.len == 16)) {
		char ep[TK_NETADDR_TEXT_MAX + 10];
		json_t *a = la_ip_json(&pr->endpoint->addr);
		snprintf(ep, sizeof(ep), pr->endpoint->addr.len == 16 ?
		    "[%s]:%u" : "%s:%u", json_string_value(a),
		    pr->endpoint->port);
		json_decref(a);
		json_object_set_new(o, "Endpoint", json_string(ep));
	}
	if (pr->has_peerapi_port && pr->peerapi_port != 0)
		json_object_set_new(o, "PeerAPIPort",
		    json_integer(pr->peerapi_port));
}

/* wgd's rpc "ping" for ip; fills o or answers an error.  true: o is it. */
static bool
ping_wgd(const tk_node *node, const tk_ipaddr *ip, int type, unsigned ms,
    json_t *o, char **resp, size_t *resp_len)
{
	Tk__Bus__V1__PingRequest rq = TK__BUS__V1__PING_REQUEST__INIT;
	Tk__Bus__V1__PingResponse *pr;
	size_t al = ip->family == TK_AF_INET ? 4 : 16;
	uint8_t body[64];
	tk_buf b;
	view v;

	rq.has_ip = rq.has_type = rq.has_timeout_ms = true;
	rq.ip.data = (uint8_t *)ip->addr;
	rq.ip.len = al;
	rq.type = type;
	rq.timeout_ms = ms;
	size_t bl = tk__bus__v1__ping_request__pack(&rq, body);
	tk_buf_init(&b);
	int rv = tk_rpc_call_sync(tk_node_bus_url(node, TK_BUS_WGD_RPC), NULL,
	    TK_METHOD_PING, body, bl, (int)ms + LA_RPC_MS, &b);
	if (rv == TK_EINVAL && b.len > 6 && memmem(b.data, b.len, "no peer", 7)) {
		/* Go's engine: a PingResult with "no matching peer" */
		json_object_set_new(o, "Err", json_string("no matching peer"));
		tk_buf_fini(&b);
		return true;
	}
	if ((rv == TK_EINVAL || rv == TK_ESTATE) && b.len > 6 &&
	    memmem(b.data, b.len, "disco", 5) != NULL) {
		/* no disco path to this peer (no key, no DERP): a PingResult
		 * Err, which `tailkit ping` falls back to TSMP on */
		size_t off = b.len > 6 && memcmp(b.data, "ping: ", 6) == 0 ? 6 : 0;
		json_object_set_new(o, "Err", json_stringn((const char *)b.data +
		    off, b.len - off));
		tk_buf_fini(&b);
		return true;
	}
	if (rv != 0) {
		char m[300];
		snprintf(m, sizeof(m), "wgd: %s: %.*s", tk_strerror(rv),
		    (int)(b.len < 200 ? b.len : 200), (const char *)b.data);
		tk_buf_fini(&b);
		la_respond_error(resp, resp_len, rv == TK_EAGAIN ? 503 : 500,
		    rv == TK_EAGAIN ? "Service Unavailable" :
		    "Internal Server Error", m);
		return false;
	}
	pr = tk__bus__v1__ping_response__unpack(NULL, b.len, b.data);
	tk_buf_fini(&b);
	if (pr == NULL) {
		la_respond_error(resp, resp_len, 500, "Internal Server Error",
		    "wgd: undecodable PingResponse");
		return false;
	}
	la_view_load(&v, node);
	char ipt[TK_NETADDR_TEXT_MAX];
	tk_ipaddr_format(ip, ipt);
	ping_fill(o, pr, &v, ipt, al);
	la_view_fini(&v);
	tk__bus__v1__ping_response__free_unpacked(pr, NULL);
	return true;
}

void
la_diag_ping(const tk_node *node, const la_req *r, char **resp, size_t *resp_len)
{
	char ips[80], type[16], size[16], tmo[16];
	tk_ipaddr ip;
	unsigned ms = PING_MS_DEF;
	int t;

	if (!la_query_get(r->query, "ip", ips, sizeof(ips)) || !*ips) {
		la_respond_error(resp, resp_len, 400, "Bad Request",
		    "missing 'ip' parameter");
		return;
	}
	if (tk_ipaddr_parse(&ip, ips, strlen(ips)) != 0) {
		la_respond_error(resp, resp_len, 400, "Bad Request", "invalid IP");
		return;
	}
	if (!la_query_get(r->query, "type", type, sizeof(type)) || !*type) {
		la_respond_error(resp, resp_len, 400, "Bad Request",
		    "missing 'type' parameter");
		return;
	}
	if (la_query_get(r->query, "size", size, sizeof(size)) &&
	    strcmp(size, "0") != 0 && strcmp(size, "") != 0) {
		la_respond_error(resp, resp_len, 400, "Bad Request",
		    strcmp(type, "disco") == 0 ? "'size' (padded disco pings, "
		    "path MTU probes) is not supported by tailkit yet" :
		    "'size' parameter is only supported with disco pings");
		return;
	}
	if (la_query_get(r->query, "timeout", tmo, sizeof(tmo))) {
		char *e;
		unsigned long v = strtoul(tmo, &e, 10);
		if (*tmo == '\0' || *e != '\0' || v == 0 || v > PING_MS_MAX) {
			la_respond_error(resp, resp_len, 400, "Bad Request",
			    "'timeout': milliseconds, 1 to 30000");
			return;
		}
		ms = (unsigned)v;
	}
	if (strcmp(type, "TSMP") == 0)
		t = TK__BUS__V1__PING_TYPE__PING_TYPE_TSMP;
	else if (strcmp(type, "ICMP") == 0)
		t = TK__BUS__V1__PING_TYPE__PING_TYPE_ICMP;
	else if (strcmp(type, "disco") == 0)
		t = TK__BUS__V1__PING_TYPE__PING_TYPE_DISCO;
	else {
		la_respond_error(resp, resp_len, 400, "Bad Request",
		    "'type': TSMP, ICMP or disco");
		return;
	}
	json_t *o = ping_result(ips);
	view v;
	la_view_load(&v, node);
	bool self = is_self(v.nm, &ip);
	la_view_fini(&v);
	if (self) {
		/* Go: the CLI prints Err and stops */
		char m[120];
		snprintf(m, sizeof(m), "%s is local Tailscale IP", ips);
		json_object_set_new(o, "Err", json_string(m));
		json_object_set_new(o, "IsLocalIP", json_true());
	} else if (!ping_wgd(node, &ip, t, ms, o, resp, resp_len)) {
		json_decref(o);
		return;
	}
	la_respond(resp, resp_len, 200, "OK", o);
}

/* --- netcheck ------------------------------------------------------------- */

static Tk__Bus__V1__DerpState *
derp_state(const tk_node *node)
{
	Tk__Bus__V1__Envelope *e = la_snapshot(node, TK_BUS_DERPD_RPC,
	    TK_TOPIC_DERP);
	Tk__Bus__V1__DerpState *s = NULL;

	if (e != NULL) {
		s = tk__bus__v1__derp_state__unpack(NULL, e->body.len, e->body.data);
		tk__bus__v1__envelope__free_unpacked(e, NULL);
	}
	return s;
}

/* A measured fact, or null: "not measured" (never guessed). */
static json_t *
fact(protobuf_c_boolean has, protobuf_c_boolean v)
{
	return has ? json_boolean(v) : json_null();
}

/* The region's nodes, for `tailkit debug derp` to probe. */
static json_t *
derp_nodes(const Tk__Bus__V1__DERPRegion *rg)
{
	json_t *a = json_array();

	for (size_t i = 0; i < rg->n_nodes; i++) {
		const Tk__Bus__V1__DERPNode *d = rg->nodes[i];
		json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:s,s:i,s:b,s:b}",
		    "Name", d->name ? d->name : "", "HostName", d->host_name ?
		    d->host_name : "", "IPv4", d->ipv4 ? d->ipv4 : "", "IPv6",
		    d->ipv6 ? d->ipv6 : "", "DERPPort", d->derp_port,
		    "InsecureForTests", d->insecure_for_tests, "STUNOnly",
		    d->stun_only));
	}
	return a;
}

static bool
counter_of(const Tk__Bus__V1__StatusResponse *st, const char *name,
    uint64_t *v)
{
	for (size_t i = 0; st != NULL && i < st->n_counters; i++)
		if (st->counters[i]->name != NULL &&
		    strcmp(st->counters[i]->name, name) == 0) {
			*v = st->counters[i]->value;
			return true;
		}
	return false;
}

/*
 * What wgd's STUN client measured (wgd/src/stun.c, from the WireGuard
 * socket itself): its STUN-typed endpoints on the "endpoints" topic are
 * the mappings answered in the last minute.  Sets GlobalV4 (the first),
 * UDP (true with a mapping; false once STUN rounds timed out with no
 * answer ever), MappingVariesByDestIP (true: several mappings; false: one
 * mapping from two or more servers with no timeouts) and STUNServers.
 * Nothing is set that was not measured; derpd's facts stay otherwise.
 */
static void
stun_facts(const tk_node *node, const Tk__Bus__V1__StatusResponse *wgd,
    json_t *o)
{
	Tk__Bus__V1__Envelope *e;
	Tk__Bus__V1__Endpoints *eps = NULL;
	uint64_t servers = 0, sent = 0, answers = 0, timeouts = 0;
	size_t nmap = 0;

	if (wgd == NULL || !counter_of(wgd, "stun_servers", &servers) ||
	    !counter_of(wgd, "stun_sent", &sent) || sent == 0)
		return; /* no wgd, no STUN in it, or none sent (the DERP-only
			 * knob, no STUN server in the map) */
	counter_of(wgd, "stun_answers", &answers);
	counter_of(wgd, "stun_timeouts", &timeouts);
	json_object_set_new(o, "STUNServers", json_integer((json_int_t)servers));
	if ((e = la_snapshot(node, TK_BUS_WGD_RPC, TK_TOPIC_ENDPOINTS)) != NULL) {
		eps = tk__bus__v1__endpoints__unpack(NULL, e->body.len,
		    e->body.data);
		tk__bus__v1__envelope__free_unpacked(e, NULL);
	}
	for (size_t i = 0; eps != NULL && i < eps->n_endpoints; i++) {
		const Tk__Bus__V1__Endpoint *ep = eps->endpoints[i];
		if (!ep->has_type || ep->type !=
		    TK__BUS__V1__ENDPOINT_TYPE__ENDPOINT_TYPE_STUN ||
		    ep->addr == NULL || ep->addr->addr.len != 4)
			continue;
		if (nmap++ == 0) {
			json_t *ip = la_ip_json(&ep->addr->addr);
			char t[TK_NETADDR_TEXT_MAX + 8];
			snprintf(t, sizeof(t), "%s:%u", json_string_value(ip),
			    ep->addr->port);
			json_decref(ip);
			json_object_set_new(o, "GlobalV4", json_string(t));
		}
	}
	if (eps != NULL)
		tk__bus__v1__endpoints__free_unpacked(eps, NULL);
	if (nmap > 0)
		json_object_set_new(o, "UDP", json_true());
	else if (sent > 0 && answers == 0 && timeouts > 0)
		json_object_set_new(o, "UDP", json_false());
	if (nmap > 1)
		json_object_set_new(o, "MappingVariesByDestIP", json_true());
	else if (nmap == 1 && servers >= 2 && timeouts == 0)
		json_object_set_new(o, "MappingVariesByDestIP", json_false());
}

void
la_diag_netcheck(const tk_node *node, const la_req *r, char **resp,
    size_t *resp_len)
{
	Tk__Bus__V1__DerpState *s = derp_state(node);
	json_t *o, *regions = json_array();
	view v;

	(void)r;
	if (s == NULL) {
		json_decref(regions);
		la_respond_error(resp, resp_len, 503, "Service Unavailable",
		    "derpd does not answer (no DERP measurements yet)");
		return;
	}
	la_view_load(&v, node);
	const Tk__Bus__V1__DERPMap *m = v.nm ? v.nm->derp_map : NULL;
	for (size_t i = 0; m && i < m->n_regions; i++) {
		const Tk__Bus__V1__DERPRegion *rg = m->regions[i];
		json_t *x = json_pack("{s:i,s:s,s:s}", "RegionID", rg->region_id,
		    "RegionCode", rg->region_code ? rg->region_code : "",
		    "RegionName", rg->region_name ? rg->region_name : "");
		for (size_t k = 0; k < s->n_latencies; k++) {
			const Tk__Bus__V1__RegionLatency *l = s->latencies[k];
			if (l->region_id != rg->region_id)
				continue;
			if (l->has_latency_v4_us)
				json_object_set_new(x, "LatencySecondsV4",
				    json_real(l->latency_v4_us / 1e6));
			if (l->has_latency_v6_us)
				json_object_set_new(x, "LatencySecondsV6",
				    json_real(l->latency_v6_us / 1e6));
		}
		json_object_set_new(x, "Nodes", derp_nodes(rg));
		for (size_t k = 0; k < s->n_conns; k++)
			if (s->conns[k]->region_id == rg->region_id)
				json_object_set_new(x, "Connected",
				    json_boolean(s->conns[k]->connected));
		json_array_append_new(regions, x);
	}
	o = json_pack("{s:i,s:s,s:o,s:o,s:o,s:o,s:s,s:o}", "PreferredDERP",
	    s->home_region, "PreferredDERPCode",
	    region_code_of(v.nm, s->home_region, NULL), "UDP",
	    fact(s->has_udp_works, s->udp_works), "IPv4",
	    fact(s->has_ipv4_works, s->ipv4_works), "IPv6",
	    fact(s->has_ipv6_works, s->ipv6_works), "MappingVariesByDestIP",
	    fact(s->has_mapping_varies_by_dest_ip, s->mapping_varies_by_dest_ip),
	    "LatencyMethod", "tcp-connect", "Regions", regions);
	if (s->has_report_unix_ms)
		json_object_set_new(o, "ReportUnixMs",
		    json_integer(s->report_unix_ms));
	stun_facts(node, v.wgd, o);
	la_view_fini(&v);
	tk__bus__v1__derp_state__free_unpacked(s, NULL);
	la_respond(resp, resp_len, 200, "OK", o);
}

/* --- wg --------------------------------------------------------------------- */

void
la_diag_wg(const tk_node *node, const la_req *r, char **resp, size_t *resp_len)
{
	tk_buf b;

	(void)r;
	tk_buf_init(&b);
	int rv = tk_rpc_call_sync(tk_node_bus_url(node, TK_BUS_WGD_RPC), NULL,
	    TK_METHOD_UAPI_GET, NULL, 0, LA_RPC_MS, &b);
	if (rv != 0) {
		tk_buf_fini(&b);
		la_respond_error(resp, resp_len, 503, "Service Unavailable",
		    "wgd does not answer on the bus");
		return;
	}
	json_t *o = json_object();
	json_object_set_new(o, "uapi", json_stringn((const char *)b.data, b.len));
	tk_buf_fini(&b);
	la_respond(resp, resp_len, 200, "OK", o);
}

/* --- bus dump ----------------------------------------------------------- */

typedef struct dump {
	int fd;
	const char *topic;
	const ProtobufCMessageDescriptor *snap, *delta;
	unsigned long left; /* messages still to write; 0: no limit */
	bool done;	    /* the client went, or the count is reached */
} dump;

/* One line: {"topic", "seq", "kind", "body"}; marks d done on failure. */
/* One NDJSON line of o (consumed) to the stream; done when the client is
 * gone or the requested count is reached. */
static void
dump_send(dump *d, json_t *o)
{
	char *t = json_dumps(o, JSON_COMPACT);
	size_t n = t ? strlen(t) : 0;

	json_decref(o);
	if (t == NULL || send(d->fd, t, n, MSG_NOSIGNAL) != (ssize_t)n ||
	    send(d->fd, "\n", 1, MSG_NOSIGNAL) != 1)
		d->done = true;
	free(t);
	if (d->left > 0 && --d->left == 0)
		d->done = true;
}

static void
dump_line(dump *d, uint64_t seq, bool snapshot, const uint8_t *body,
    size_t len)
{
	const ProtobufCMessageDescriptor *md = snapshot ? d->snap : d->delta;
	ProtobufCMessage *m = md ? protobuf_c_message_unpack(md, NULL, len,
	    body) : NULL;
	ProtobufCBinaryData raw = { .len = len, .data = (uint8_t *)body };
	json_t *o = json_pack("{s:s,s:I,s:s}", "topic", d->topic, "seq",
	    (json_int_t)seq, "kind", snapshot ? "snapshot" : "delta");

	json_object_set_new(o, "body", m ? tk_pb_json(m) :
	    tk_pb_bytes_json("", &raw));
	if (m)
		protobuf_c_message_free_unpacked(m, NULL);
	dump_send(d, o);
}

static int
dump_snapshot(void *arg, uint64_t seq, const uint8_t *body, size_t len)
{
	dump_line(arg, seq, true, body, len);
	return 0;
}

static int
dump_delta(void *arg, uint64_t seq, const uint8_t *body, size_t len)
{
	dump_line(arg, seq, false, body, len);
	return 0;
}

/* The pub and rpc bus names of the component publishing topic. */
static bool
publisher_buses(const tk_bus_topic_info *t, const char **pub, const char **rpc)
{
	if (strcmp(t->publisher, "ctrld") == 0)
		*pub = TK_BUS_CTRLD_PUB, *rpc = TK_BUS_CTRLD_RPC;
	else if (strcmp(t->publisher, "wgd") == 0)
		*pub = TK_BUS_WGD_PUB, *rpc = TK_BUS_WGD_RPC;
	else if (strcmp(t->publisher, "derpd") == 0)
		*pub = TK_BUS_DERPD_PUB, *rpc = TK_BUS_DERPD_RPC;
	else
		return false;
	return true;
}

static void
topics_accepted(char *out, size_t cap)
{
	snprintf(out, cap, "'topic': one of");
	for (const tk_bus_topic_info *t = tk_bus_topics; t->name; t++)
		if (!t->planned)
			snprintf(out + strlen(out), cap - strlen(out), " %s",
			    t->name);
}

static const char stream_head[] = "HTTP/1.1 200 OK\r\nContent-Type: "
    "application/x-ndjson\r\nConnection: close\r\n\r\n";

/* Has the client gone (EOF or error on its socket)? */
static bool
client_gone(int fd)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	char x;

	return poll(&pf, 1, 0) == 1 && (pf.revents & (POLLIN | POLLHUP |
	    POLLERR)) && recv(fd, &x, 1, MSG_DONTWAIT) <= 0;
}

static const char *
proto_name(uint32_t p, char *buf, size_t cap)
{
	switch (p) {
	case 1: return "icmp";
	case 6: return "tcp";
	case 17: return "udp";
	case 58: return "icmpv6";
	case 99: return "tsmp";
	case 132: return "sctp";
	}
	snprintf(buf, cap, "%u", p);
	return buf;
}

static json_t *
addr_port(const ProtobufCBinaryData *a, uint32_t port, bool ports)
{
	json_t *ip = la_ip_json(a);
	char t[TK_NETADDR_TEXT_MAX + 10];

	if (!ports)
		return ip;
	snprintf(t, sizeof(t), a->len == 16 ? "[%s]:%u" : "%s:%u",
	    json_string_value(ip), port);
	json_decref(ip);
	return json_string(t);
}

static void
pkt_line(dump *d, const Tk__Bus__V1__PktSummary *p)
{
	char pb[8];
	bool ports = p->proto == 6 || p->proto == 17 || p->proto == 132;
	json_t *o = json_pack("{s:s,s:I,s:s,s:s,s:i,s:I}", "bus", TK_BUS_WGD_PKT,
	    "seq", (json_int_t)p->seq, "dir", p->inbound ? "in" : "out", "proto",
	    proto_name(p->proto, pb, sizeof(pb)), "len", (int)p->len, "unix_us",
	    (json_int_t)p->unix_us);

	if (p->has_src) {
		json_object_set_new(o, "src", addr_port(&p->src, p->src_port, ports));
		json_object_set_new(o, "dst", addr_port(&p->dst, p->dst_port, ports));
		if (p->proto == 1 || p->proto == 58)
			json_object_set_new(o, "icmp", json_pack("{s:i,s:i}", "type",
			    (int)p->src_port, "code", (int)p->dst_port));
	}
	dump_send(d, o);
}

/* Streams wgd's packet tap: asks every 200 ms for what came since. */
static void
dump_pkts(const tk_node *node, const la_req *r, dump *d)
{
	uint64_t after = 0;
	bool first = true;

	if (send(d->fd, stream_head, sizeof(stream_head) - 1, MSG_NOSIGNAL) !=
	    (ssize_t)sizeof(stream_head) - 1)
		return;
	while (!d->done && !(r->stop && atomic_load(r->stop))) {
		Tk__Bus__V1__PktTapRequest rq = TK__BUS__V1__PKT_TAP_REQUEST__INIT;
		Tk__Bus__V1__PktTapReply *rp;
		uint8_t body[32];
		tk_buf b;

		rq.has_after_seq = true;
		rq.after_seq = after;
		size_t bl = tk__bus__v1__pkt_tap_request__pack(&rq, body);
		tk_buf_init(&b);
		int rv = tk_rpc_call_sync(tk_node_bus_url(node, TK_BUS_WGD_RPC),
		    NULL, TK_METHOD_PKT_TAP, body, bl, LA_RPC_MS, &b);
		rp = rv == 0 ? tk__bus__v1__pkt_tap_reply__unpack(NULL, b.len,
		    b.data) : NULL;
		tk_buf_fini(&b);
		for (size_t i = 0; rp && i < rp->n_pkts && !d->done; i++) {
			after = rp->pkts[i]->seq;
			/* the first answer: only what comes from now on */
			if (!first)
				pkt_line(d, rp->pkts[i]);
		}
		if (rp != NULL && rp->has_lost && rp->lost > 0 && !first) {
			char t[64];
			int n = snprintf(t, sizeof(t), "{\"lost\":%llu}\n",
			    (unsigned long long)rp->lost);
			if (send(d->fd, t, (size_t)n, MSG_NOSIGNAL) != n)
				d->done = true;
		}
		bool full = rp != NULL && rp->n_pkts >= 256; /* more waiting */
		if (rp != NULL)
			tk__bus__v1__pkt_tap_reply__free_unpacked(rp, NULL);
		if (!full) {
			struct pollfd pf = { .fd = d->fd, .events = POLLIN };
			(void)poll(&pf, 1, 200);
		}
		first = false;
		if (client_gone(d->fd))
			d->done = true;
	}
}

void
la_diag_bus(const tk_node *node, const la_req *r, char **resp, size_t *resp_len)
{
	char topic[64], cnt[16], why[200];
	const tk_bus_topic_info *t = NULL;
	const char *pub = NULL, *rpc = NULL;
	dump d = { .fd = r->fd };
	tk_loop *loop = NULL;
	tk_topic_sub *sub = NULL;

	char bus[32];
	bool pkt = la_query_get(r->query, "bus", bus, sizeof(bus));
	if (pkt && strcmp(bus, TK_BUS_WGD_PKT) != 0) {
		la_respond_error(resp, resp_len, 400, "Bad Request", "'bus': "
		    TK_BUS_WGD_PKT " (the packets between wgd and the netstack); "
		    "the DERP bus cannot be dumped yet");
		return;
	}
	if (!pkt && (!la_query_get(r->query, "topic", topic, sizeof(topic)) ||
	    (t = tk_bus_topic_find(topic)) == NULL || t->planned ||
	    !publisher_buses(t, &pub, &rpc))) {
		topics_accepted(why, sizeof(why));
		la_respond_error(resp, resp_len, 400, "Bad Request", why);
		return;
	}
	if (la_query_get(r->query, "count", cnt, sizeof(cnt))) {
		char *e;
		d.left = strtoul(cnt, &e, 10);
		if (*cnt == '\0' || *e != '\0' || d.left == 0) {
			la_respond_error(resp, resp_len, 400, "Bad Request",
			    "'count': a number of messages, at least 1");
			return;
		}
	}
	if (r->fd < 0 || tk_node_bus_url(node, pkt ? TK_BUS_WGD_RPC : pub) ==
	    NULL) {
		la_respond_error(resp, resp_len, 400, "Bad Request",
		    "a stream needs the LocalAPI socket, and the node this bus");
		return;
	}
	if (pkt) {
		dump_pkts(node, r, &d);
		return;
	}
	d.topic = t->name;
	d.snap = t->snapshot;
	d.delta = t->delta;
	tk_topic_sub_cfg sc = { .url = tk_node_bus_url(node, pub),
		.rpc_url = tk_node_bus_url(node, rpc), .topic = t->name,
		.apply_snapshot = dump_snapshot, .apply_delta = dump_delta,
		.arg = &d, .name = "localapi-bus-dump" };
	if (tk_loop_new(&loop, NULL) != 0 || (sc.loop = loop,
	    tk_topic_sub_new(&sub, &sc)) != 0) {
		tk_loop_free(loop);
		la_respond_error(resp, resp_len, 500, "Internal Server Error",
		    "cannot subscribe");
		return;
	}
	if (send(r->fd, stream_head, sizeof(stream_head) - 1, MSG_NOSIGNAL) !=
	    (ssize_t)sizeof(stream_head) - 1)
		d.done = true;
	/* until the client goes, the count is reached, or tailkitd stops */
	while (!d.done && !(r->stop && atomic_load(r->stop))) {
		tk_loop_run_once(loop, 200);
		if (client_gone(r->fd))
			d.done = true;
	}
	tk_topic_sub_free(sub);
	tk_loop_free(loop);
}
