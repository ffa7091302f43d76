/*
 * A subset of Go's LocalAPI (tk/localapi.h): HTTP/1.1 on a unix socket,
 * one request per connection, answers built from the node's buses.  JSON
 * shapes are Go's (ipnstate.Status, ipnstate.PeerStatus, apitype.
 * WhoIsResponse, tailcfg.Node, tailcfg.UserProfile), with the fields
 * tailkit knows.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "tk/bus_rpc.h"
#include "tk/bus_topics.h"
#include "tk/buf.h"
#include "tk/err.h"
#include "tk/keys.h"
#include "tk/localapi.h"
#include "tk/log.h"
#include "tk/mem.h"
#include "tk/netaddr.h"
#include "tk/bus/v1/common.pb-c.h"
#include "tk/bus/v1/ctrl.pb-c.h"
#include "localapi_int.h"

#define SUBSYS	   "localapi"
#define HEAD_MAX   16384
#define BODY_MAX   65536
#define IO_MS	   5000
#define IPN_VERSION "1.80.0-tailkit0.1" /* as ctrld's IPNVersion */

#define CONN_MAX   16 /* connections served at once, one thread each */

struct tk_localapi {
	const tk_node *node;
	int lfd, stopfd;
	pthread_t thr;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	/* connection threads: a ping or a stream does not hold up others */
	pthread_mutex_t mu;
	pthread_cond_t idle;
	unsigned nconn;
	atomic_bool stopping;
};

/* --- reading the node's state ------------------------------------------ */


Tk__Bus__V1__StatusResponse *
la_status_of(const tk_node *n, const char *bus)
{
	tk_buf b;
	Tk__Bus__V1__StatusResponse *r = NULL;

	tk_buf_init(&b);
	if (tk_rpc_call_sync(tk_node_bus_url(n, bus), NULL, TK_METHOD_STATUS,
		NULL, 0, LA_RPC_MS, &b) == 0)
		r = tk__bus__v1__status_response__unpack(NULL, b.len, b.data);
	tk_buf_fini(&b);
	return r;
}

Tk__Bus__V1__Envelope *
la_snapshot(const tk_node *n, const char *bus, const char *topic)
{
	Tk__Bus__V1__SnapshotRequest rq = TK__BUS__V1__SNAPSHOT_REQUEST__INIT;
	Tk__Bus__V1__Envelope *e = NULL;
	const char *url = tk_node_bus_url(n, bus);
	uint8_t body[64];
	tk_buf b;

	if (url == NULL)
		return NULL;
	rq.topic = (char *)topic;
	size_t bl = tk__bus__v1__snapshot_request__pack(&rq, body);
	tk_buf_init(&b);
	if (tk_rpc_call_sync(url, NULL, TK_METHOD_SNAPSHOT, body, bl, LA_RPC_MS,
		&b) == 0)
		e = tk__bus__v1__envelope__unpack(NULL, b.len, b.data);
	tk_buf_fini(&b);
	return e;
}

void
la_view_load(view *v, const tk_node *n)
{
	memset(v, 0, sizeof(*v));
	v->ctrld = la_status_of(n, TK_BUS_CTRLD_RPC);
	v->wgd = la_status_of(n, TK_BUS_WGD_RPC);
	if ((v->env = la_snapshot(n, TK_BUS_CTRLD_RPC, TK_TOPIC_NETMAP)) != NULL)
		v->nm = tk__bus__v1__netmap__unpack(NULL, v->env->body.len,
		    v->env->body.data);
}

void
la_view_fini(view *v)
{
	if (v->ctrld)
		tk__bus__v1__status_response__free_unpacked(v->ctrld, NULL);
	if (v->wgd)
		tk__bus__v1__status_response__free_unpacked(v->wgd, NULL);
	if (v->nm)
		tk__bus__v1__netmap__free_unpacked(v->nm, NULL);
	if (v->env)
		tk__bus__v1__envelope__free_unpacked(v->env, NULL);
}

/* --- JSON pieces ---------------------------------------------------------- */

json_t *
la_ip_json(const ProtobufCBinaryData *a)
{
	char t[TK_NETADDR_TEXT_MAX];
	tk_ipaddr x = { .family = a->len == 4 ? TK_AF_INET : TK_AF_INET6 };

	if (a->len != 4 && a->len != 16)
		return json_string("");
	memcpy(x.addr, a->data, a->len);
	tk_ipaddr_format(&x, t);
	return json_string(t);
}

json_t *
la_prefix_json(const Tk__Bus__V1__Prefix *p)
{
	json_t *ip = la_ip_json(&p->addr);
	char t[TK_NETADDR_TEXT_MAX + 8];

	snprintf(t, sizeof(t), "%s/%u", json_string_value(ip), p->bits);
	json_decref(ip);
	return json_string(t);
}

static json_t *
time_json(bool has, int64_t unix_s)
{
	char b[40] = "0001-01-01T00:00:00Z"; /* Go's zero time */
	struct tm tm;
	time_t t = (time_t)unix_s;

	if (has && unix_s > 0 && gmtime_r(&t, &tm) != NULL)
		strftime(b, sizeof(b), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return json_string(b);
}

static json_t *
key_json(const ProtobufCBinaryData *k, const char *prefix)
{
	char t[TK_KEY_TEXT_MAX];

	if (k->len != 32)
		return json_string("");
	tk_key_format(t, prefix, k->data);
	return json_string(t);
}

const char *
la_state_name(int s)
{
	switch (s) {
	case TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_NEEDS_LOGIN:
		return "NeedsLogin";
	case TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_NEEDS_MACHINE_AUTH:
		return "NeedsMachineAuth";
	case TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_STOPPED:
		return "Stopped";
	case TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_STARTING:
		return "Starting";
	case TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_RUNNING:
		return "Running";
	default:
		return "NoState";
	}
}

/* MagicDNS suffix: self's name without its first label or trailing dot */
static void
dns_suffix(const view *v, char *out, size_t cap)
{
	const char *name = v->nm && v->nm->self && v->nm->self->name ?
	    v->nm->self->name : "", *dot = strchr(name, '.');

	snprintf(out, cap, "%s", dot ? dot + 1 : "");
	size_t n = strlen(out);
	if (n > 0 && out[n - 1] == '.')
		out[n - 1] = '\0';
}

static const Tk__Bus__V1__PeerStatus *
wg_peer(const view *v, const ProtobufCBinaryData *key)
{
	for (size_t i = 0; v->wgd && i < v->wgd->n_peers; i++) {
		const Tk__Bus__V1__PeerStatus *p = v->wgd->peers[i];
		if (key->len == 32 && p->node_key.len == 32 &&
		    memcmp(p->node_key.data, key->data, 32) == 0)
			return p;
	}
	return NULL;
}

static const char *
region_code(const view *v, int32_t id)
{
	const Tk__Bus__V1__DERPMap *m = v->nm ? v->nm->derp_map : NULL;

	for (size_t i = 0; m && i < m->n_regions; i++)
		if (m->regions[i]->region_id == id)
			return m->regions[i]->region_code ?
			    m->regions[i]->region_code : "";
	return "";
}

/* ipnstate.PeerStatus */
static json_t *
peer_status(const view *v, const Tk__Bus__V1__Node *n, bool self)
{
	json_t *o = json_object(), *ips = json_array(), *allowed = json_array(),
	       *tags = json_array();
	const Tk__Bus__V1__PeerStatus *w = self ? NULL : wg_peer(v, &n->key);
	time_t now = time(NULL);

	for (size_t i = 0; i < n->n_addresses; i++)
		json_array_append_new(ips, la_ip_json(&n->addresses[i]->addr));
	for (size_t i = 0; i < n->n_allowed_ips; i++)
		json_array_append_new(allowed, la_prefix_json(n->allowed_ips[i]));
	for (size_t i = 0; i < n->n_tags; i++)
		json_array_append_new(tags, json_string(n->tags[i]));
	json_object_set_new(o, "ID", json_string(n->stable_id ? n->stable_id : ""));
	json_object_set_new(o, "NodeID", json_integer(n->id));
	json_object_set_new(o, "PublicKey", key_json(&n->key, "nodekey:"));
	json_object_set_new(o, "HostName", json_string(n->hostname ? n->hostname : ""));
	json_object_set_new(o, "DNSName", json_string(n->name ? n->name : ""));
	json_object_set_new(o, "OS", json_string(n->os ? n->os : ""));
	json_object_set_new(o, "UserID", json_integer(n->user));
	json_object_set_new(o, "TailscaleIPs", ips);
	json_object_set_new(o, "AllowedIPs", allowed);
	json_object_set_new(o, "Tags", tags);
	char cur[TK_NETADDR_TEXT_MAX + 10] = "";
	int32_t relay = n->home_derp;
	static const uint8_t derp_magic[4] = { 127, 3, 3, 40 };
	if (w != NULL && w->cur_addr != NULL && w->cur_addr->addr.len == 4 &&
	    memcmp(w->cur_addr->addr.data, derp_magic, 4) == 0) {
		/* magicsock's DERP address 127.3.3.40:<region>: relayed */
		relay = (int32_t)w->cur_addr->port;
	} else if (w != NULL && w->cur_addr != NULL && w->cur_addr->addr.len) {
		json_t *ip = la_ip_json(&w->cur_addr->addr);
		snprintf(cur, sizeof(cur), w->cur_addr->addr.len == 16 ?
		    "[%s]:%u" : "%s:%u", json_string_value(ip), w->cur_addr->port);
		json_decref(ip);
	}
	json_object_set_new(o, "CurAddr", json_string(cur));
	json_object_set_new(o, "Relay", json_string(region_code(v, relay)));
	json_object_set_new(o, "RxBytes", json_integer(w ? (json_int_t)w->rx_bytes : 0));
	json_object_set_new(o, "TxBytes", json_integer(w ? (json_int_t)w->tx_bytes : 0));
	json_object_set_new(o, "Created", time_json(n->has_created_unix,
	    n->created_unix));
	json_object_set_new(o, "LastSeen", time_json(n->has_last_seen_unix,
	    n->last_seen_unix));
	json_object_set_new(o, "LastHandshake", time_json(w &&
	    w->last_handshake_unix > 0, w ? w->last_handshake_unix : 0));
	/* self is online when running; peers as control says */
	json_object_set_new(o, "Online", json_boolean(self ? true : n->online));
	json_object_set_new(o, "ExitNode", json_false());
	json_object_set_new(o, "ExitNodeOption", json_false());
	/* Go: traffic in the last two minutes; here: a recent handshake */
	json_object_set_new(o, "Active", json_boolean(w && w->last_handshake_unix > 0 &&
	    now - w->last_handshake_unix < 120));
	json_object_set_new(o, "InNetworkMap", json_true());
	json_object_set_new(o, "InMagicSock", json_boolean(!self));
	json_object_set_new(o, "InEngine", json_boolean(w != NULL));
	if (n->has_key_expiry_unix)
		json_object_set_new(o, "KeyExpiry", time_json(true,
		    n->key_expiry_unix));
	if (n->expired)
		json_object_set_new(o, "Expired", json_true());
	return o;
}

static json_t *
user_json(const Tk__Bus__V1__UserProfile *u)
{
	return json_pack("{s:I,s:s,s:s,s:s}", "ID", (json_int_t)u->id,
	    "LoginName", u->login_name ? u->login_name : "", "DisplayName",
	    u->display_name ? u->display_name : "", "ProfilePicURL",
	    u->profile_pic_url ? u->profile_pic_url : "");
}

/* ipnstate.Status */
static json_t *
status_json(const view *v, bool peers)
{
	json_t *o = json_object(), *ips = json_array(), *health = json_array(),
	       *pm = json_object(), *users = json_object();
	const Tk__Bus__V1__Netmap *nm = v->nm;
	char suffix[256];

	dns_suffix(v, suffix, sizeof(suffix));
	json_object_set_new(o, "Version", json_string(IPN_VERSION));
	json_object_set_new(o, "TUN", json_false());
	json_object_set_new(o, "BackendState", json_string(la_state_name(v->ctrld ?
	    (int)v->ctrld->state : 0)));
	json_object_set_new(o, "HaveNodeKey", json_boolean(nm && nm->self &&
	    nm->self->key.len == 32));
	json_object_set_new(o, "AuthURL", json_string(v->ctrld &&
	    v->ctrld->auth_url ? v->ctrld->auth_url : ""));
	if (nm && nm->self) {
		for (size_t i = 0; i < nm->self->n_addresses; i++)
			json_array_append_new(ips,
			    la_ip_json(&nm->self->addresses[i]->addr));
		json_object_set_new(o, "Self", peer_status(v, nm->self, true));
	} else {
		json_object_set_new(o, "Self", json_null());
	}
	json_object_set_new(o, "TailscaleIPs", ips);
	for (size_t i = 0; v->ctrld && i < v->ctrld->n_health; i++)
		json_array_append_new(health, json_string(v->ctrld->health[i]));
	if (v->ctrld == NULL)
		json_array_append_new(health, json_string("ctrld does not answer "
		    "on the bus"));
	json_object_set_new(o, "Health", health);
	json_object_set_new(o, "MagicDNSSuffix", json_string(suffix));
	json_object_set_new(o, "CurrentTailnet", nm ? json_pack("{s:s,s:s,s:b}",
	    "Name", nm->domain ? nm->domain : "", "MagicDNSSuffix", suffix,
	    "MagicDNSEnabled", nm->dns_config && nm->dns_config->proxied) :
						     json_null());
	for (size_t i = 0; peers && nm && i < nm->n_peers; i++) {
		char k[TK_KEY_TEXT_MAX];
		if (nm->peers[i]->key.len != 32)
			continue;
		tk_key_format(k, "nodekey:", nm->peers[i]->key.data);
		json_object_set_new(pm, k, peer_status(v, nm->peers[i], false));
	}
	json_object_set_new(o, "Peer", pm);
	for (size_t i = 0; nm && i < nm->n_user_profiles; i++) {
		char id[32];
		snprintf(id, sizeof(id), "%lld", (long long)nm->user_profiles[i]->id);
		json_object_set_new(users, id, user_json(nm->user_profiles[i]));
	}
	json_object_set_new(o, "User", users);
	json_object_set_new(o, "ClientVersion", json_null());
	return o;
}

/* tailcfg.Node, the fields WhoIs callers read */
static json_t *
node_json(const Tk__Bus__V1__Node *n)
{
	json_t *o = json_object(), *addrs = json_array(), *allowed = json_array(),
	       *tags = json_array();

	for (size_t i = 0; i < n->n_addresses; i++)
		json_array_append_new(addrs, la_prefix_json(n->addresses[i]));
	for (size_t i = 0; i < n->n_allowed_ips; i++)
		json_array_append_new(allowed, la_prefix_json(n->allowed_ips[i]));
	for (size_t i = 0; i < n->n_tags; i++)
		json_array_append_new(tags, json_string(n->tags[i]));
	json_object_set_new(o, "ID", json_integer(n->id));
	json_object_set_new(o, "StableID", json_string(n->stable_id ? n->stable_id : ""));
	json_object_set_new(o, "Name", json_string(n->name ? n->name : ""));
	json_object_set_new(o, "User", json_integer(n->user));
	json_object_set_new(o, "Key", key_json(&n->key, "nodekey:"));
	json_object_set_new(o, "Addresses", addrs);
	json_object_set_new(o, "AllowedIPs", allowed);
	json_object_set_new(o, "Tags", tags);
	json_object_set_new(o, "Hostinfo", json_pack("{s:s,s:s}", "Hostname",
	    n->hostname ? n->hostname : "", "OS", n->os ? n->os : ""));
	json_object_set_new(o, "MachineAuthorized", json_boolean(n->machine_authorized));
	if (n->has_online)
		json_object_set_new(o, "Online", json_boolean(n->online));
	return o;
}

/* --- HTTP --------------------------------------------------------------- */

void
la_respond(char **resp, size_t *len, int code, const char *reason, json_t *body)
{
	char *js = json_dumps(body, JSON_COMPACT);
	size_t bl = js ? strlen(js) : 2;
	size_t cap = bl + 256;
	char *r = malloc(cap);

	json_decref(body);
	if (r == NULL) {
		free(js);
		*resp = NULL;
		*len = 0;
		return;
	}
	int h = snprintf(r, cap, "HTTP/1.1 %d %s\r\nContent-Type: application/json"
	    "\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", code, reason,
	    bl + 1);
	memcpy(r + h, js ? js : "{}", bl);
	r[h + bl] = '\n';
	*resp = r;
	*len = (size_t)h + bl + 1;
	free(js);
}

void
la_respond_no_content(char **resp, size_t *len)
{
	static const char r[] = "HTTP/1.1 204 No Content\r\nConnection: "
	    "close\r\n\r\n";

	*len = 0;
	if ((*resp = malloc(sizeof(r))) != NULL) {
		memcpy(*resp, r, sizeof(r));
		*len = sizeof(r) - 1;
	}
}

void
la_respond_error(char **resp, size_t *len, int code, const char *reason,
    const char *msg)
{
	la_respond(resp, len, code, reason, json_pack("{s:s}", "error", msg));
}

/* The value of query parameter k (percent-decoded) into out, or false. */
bool
la_query_get(const char *q, const char *k, char *out, size_t cap)
{
	size_t kl = strlen(k);

	while (q && *q) {
		const char *amp = strchr(q, '&'), *end = amp ? amp : q + strlen(q);
		if ((size_t)(end - q) > kl && strncmp(q, k, kl) == 0 && q[kl] == '=') {
			size_t o = 0;
			for (const char *p = q + kl + 1; p < end && o + 1 < cap; p++) {
				unsigned v;
				if (*p == '%' && end - p >= 3 &&
				    sscanf(p + 1, "%2x", &v) == 1) {
					out[o++] = (char)v;
					p += 2;
				} else {
					out[o++] = *p == '+' ? ' ' : *p;
				}
			}
			out[o] = '\0';
			return true;
		}
		q = amp ? amp + 1 : NULL;
	}
	return false;
}

static void
whois(const tk_node *node, const char *addr, char **resp, size_t *len)
{
	view v;
	const Tk__Bus__V1__Node *hit = NULL;
	uint8_t key[32];
	tk_ipaddr ip;
	bool by_key = strncmp(addr, "nodekey:", 8) == 0;
	char host[256];

	if (by_key) {
		if (tk_key_parse(key, "nodekey:", addr, strlen(addr)) != 0) {
			la_respond_error(resp, len, 400, "Bad Request",
			    "addr: nodekey:<64 hex digits>, IP or IP:port");
			return;
		}
	} else {
		/* IP, IP:port or [IPv6]:port */
		snprintf(host, sizeof(host), "%s", addr);
		char *h = host;
		if (*h == '[') {
			char *rb = strchr(h, ']');
			if (rb)
				*rb = '\0';
			h++;
		} else if (strchr(h, ':') == strrchr(h, ':') && strchr(h, ':')) {
			*strchr(h, ':') = '\0';
		}
		if (tk_ipaddr_parse(&ip, h, strlen(h)) != 0) {
			la_respond_error(resp, len, 400, "Bad Request",
			    "addr: nodekey:<64 hex digits>, IP or IP:port");
			return;
		}
	}
	la_view_load(&v, node);
	for (size_t i = 0; v.nm && hit == NULL && i <= v.nm->n_peers; i++) {
		const Tk__Bus__V1__Node *n = i < v.nm->n_peers ? v.nm->peers[i] :
		    v.nm->self;
		if (n == NULL)
			continue;
		if (by_key) {
			if (n->key.len == 32 && memcmp(n->key.data, key, 32) == 0)
				hit = n;
			continue;
		}
		size_t al = ip.family == TK_AF_INET ? 4 : 16;
		for (size_t j = 0; j < n->n_addresses; j++)
			if (n->addresses[j]->addr.len == al &&
			    memcmp(n->addresses[j]->addr.data, ip.addr, al) == 0)
				hit = n;
	}
	if (hit == NULL) {
		la_view_fini(&v);
		la_respond_error(resp, len, 404, "Not Found", "no match for IP:port");
		return;
	}
	json_t *o = json_object(), *up = json_null();
	for (size_t i = 0; i < v.nm->n_user_profiles; i++)
		if (v.nm->user_profiles[i]->id == hit->user) {
			json_decref(up);
			up = user_json(v.nm->user_profiles[i]);
		}
	json_object_set_new(o, "Node", node_json(hit));
	json_object_set_new(o, "UserProfile", up);
	json_object_set_new(o, "CapMap", json_object());
	la_view_fini(&v);
	la_respond(resp, len, 200, "OK", o);
}

/*
 * POST /localapi/v0/start (ipn.Options: "AuthKey", "UpdatePrefs"; tailkit's
 * own "ForceReauth") and /localapi/v0/login-interactive (no body): the
 * prefs first (localapi_prefs.c; a different ControlURL is refused), then
 * ctrld's rpc "login".  204 as Go's client/local wants.
 */
static void
login(const tk_node *node, const la_req *r, char **resp, size_t *resp_len)
{
	Tk__Bus__V1__LoginRequest lr = TK__BUS__V1__LOGIN_REQUEST__INIT;
	bool start = strcmp(r->path, "/localapi/v0/start") == 0;
	json_t *j = NULL;
	uint8_t pb[1024];
	tk_buf b;

	if (start && r->body != NULL && r->body_len > 0) {
		json_error_t je;
		j = json_loadb(r->body, r->body_len, 0, &je);
		if (!json_is_object(j)) {
			json_decref(j);
			la_respond_error(resp, resp_len, 400, "Bad Request",
			    "body: ipn.Options JSON ({\"AuthKey\": \"tskey-...\"})");
			return;
		}
		const char *ak = json_string_value(json_object_get(j, "AuthKey"));
		if (ak != NULL && *ak)
			lr.auth_key = (char *)ak;
		if (json_is_true(json_object_get(j, "ForceReauth"))) {
			lr.has_force_reauth = true;
			lr.force_reauth = true;
		}
		if (json_is_true(json_object_get(j, "Ephemeral"))) {
			lr.has_ephemeral = true; /* tailkit's own, as ForceReauth */
			lr.ephemeral = true;
		}
		char err[400];
		int code = la_start_prefs(node, json_object_get(j, "UpdatePrefs"),
		    err, sizeof(err));
		if (code != 0) {
			json_decref(j);
			la_respond_error(resp, resp_len, code, code == 400 ?
			    "Bad Request" : code == 403 ? "Forbidden" :
			    "Internal Server Error", err);
			return;
		}
	}
	if (tk__bus__v1__login_request__get_packed_size(&lr) > sizeof(pb)) {
		json_decref(j);
		la_respond_error(resp, resp_len, 400, "Bad Request", "auth key too long");
		return;
	}
	size_t pl = tk__bus__v1__login_request__pack(&lr, pb);
	json_decref(j);
	tk_buf_init(&b);
	int rv = tk_rpc_call_sync(tk_node_bus_url(node, TK_BUS_CTRLD_RPC), NULL,
	    TK_METHOD_LOGIN, pb, pl, LA_RPC_MS, &b);
	tk_buf_fini(&b);
	sodium_memzero(pb, sizeof(pb));
	if (rv == TK_EINVAL)
		la_respond_error(resp, resp_len, 400, "Bad Request", "auth key refused: "
		    "OAuth client secrets (tskey-client-) are not supported; use an "
		    "auth key");
	else if (rv != 0)
		la_respond_error(resp, resp_len, 500, "Internal Server Error",
		    tk_strerror(rv));
	else
		la_respond_no_content(resp, resp_len);
}

static void
h_status(const tk_node *node, const la_req *r, char **resp, size_t *resp_len)
{
	char pv[16];
	bool peers = !(la_query_get(r->query, "peers", pv, sizeof(pv)) &&
	    strcmp(pv, "false") == 0);
	view v;

	la_view_load(&v, node);
	json_t *st = status_json(&v, peers);
	la_view_fini(&v);
	la_respond(resp, resp_len, 200, "OK", st);
}

static void
h_whois(const tk_node *node, const la_req *r, char **resp, size_t *resp_len)
{
	char addr[256];

	if (!la_query_get(r->query, "addr", addr, sizeof(addr)))
		la_respond_error(resp, resp_len, 400, "Bad Request",
		    "missing 'addr' parameter");
	else
		whois(node, addr, resp, resp_len);
}

static void
h_serve_config(const tk_node *node, const la_req *r, char **resp,
    size_t *resp_len)
{
	(void)node;
	(void)r;
	/* ipn.ServeConfig: tailkit serves nothing (no Serve, no Funnel) */
	la_respond(resp, resp_len, 200, "OK", json_object());
}

static void
h_logout(const tk_node *node, const la_req *r, char **resp, size_t *resp_len)
{
	tk_buf b;

	(void)r;
	tk_buf_init(&b);
	int rv = tk_rpc_call_sync(tk_node_bus_url(node, TK_BUS_CTRLD_RPC),
	    NULL, TK_METHOD_LOGOUT, NULL, 0, LA_RPC_MS, &b);
	tk_buf_fini(&b);
	if (rv != 0)
		la_respond_error(resp, resp_len, 500, "Internal Server Error",
		    tk_strerror(rv));
	else
		la_respond_no_content(resp, resp_len);
}

/* The routes: a path, the method it takes (NULL: any), its handler. */
static const struct la_route {
	const char *path, *method;
	la_handler *fn;
} routes[] = {
	{ "/localapi/v0/status", NULL, h_status },
	{ "/localapi/v0/whois", NULL, h_whois },
	{ "/localapi/v0/prefs", NULL, la_h_prefs },
	{ "/localapi/v0/check-prefs", "POST", la_h_check_prefs },
	{ "/localapi/v0/start", "POST", login },
	{ "/localapi/v0/login-interactive", "POST", login },
	{ "/localapi/v0/serve-config", "GET", h_serve_config },
	{ "/localapi/v0/logout", "POST", h_logout },
	{ "/localapi/v0/ping", "POST", la_diag_ping },
	{ "/localapi/v0/tailkit/netcheck", "GET", la_diag_netcheck },
	{ "/localapi/v0/tailkit/wg", "GET", la_diag_wg },
	{ "/localapi/v0/tailkit/bus", "GET", la_diag_bus },
};

void
tk_localapi_handle(const tk_node *node, const char *req, size_t n, char **resp,
    size_t *resp_len)
{
	la_handle_fd(node, req, n, -1, NULL, resp, resp_len);
}

void
la_handle_fd(const tk_node *node, const char *req, size_t n, int fd,
    const atomic_bool *stop, char **resp, size_t *resp_len)
{
	char method[16], target[1024];
	const char *sp1 = memchr(req, ' ', n), *sp2;

	*resp = NULL;
	*resp_len = 0;
	if (sp1 == NULL || (size_t)(sp1 - req) >= sizeof(method) ||
	    (sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - req))) == NULL ||
	    (size_t)(sp2 - sp1 - 1) >= sizeof(target) ||
	    n - (size_t)(sp2 + 1 - req) < 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0) {
		la_respond_error(resp, resp_len, 400, "Bad Request",
		    "not an HTTP/1.x request");
		return;
	}
	memcpy(method, req, (size_t)(sp1 - req));
	method[sp1 - req] = '\0';
	memcpy(target, sp1 + 1, (size_t)(sp2 - sp1 - 1));
	target[sp2 - sp1 - 1] = '\0';
	la_req r = { .method = method, .path = target, .fd = fd, .stop = stop };
	char *q = strchr(target, '?');
	if (q != NULL) {
		*q++ = '\0';
		r.query = q;
	}
	for (const char *p = sp2; p + 4 <= req + n; p++)
		if (memcmp(p, "\r\n\r\n", 4) == 0) {
			r.body = p + 4;
			r.body_len = (size_t)(req + n - r.body);
			break;
		}

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		if (strcmp(routes[i].path, r.path) != 0)
			continue;
		if (routes[i].method != NULL &&
		    strcmp(routes[i].method, method) != 0) {
			char m[64];
			snprintf(m, sizeof(m), "want %s", routes[i].method);
			la_respond_error(resp, resp_len, 405,
			    "Method Not Allowed", m);
			return;
		}
		routes[i].fn(node, &r, resp, resp_len);
		return;
	}
	char served[1024] = "tailkit serves";
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		snprintf(served + strlen(served), sizeof(served) - strlen(served),
		    " %s", routes[i].path);
	la_respond_error(resp, resp_len, 404, "Not Found", served);
}

/* --- the socket ------------------------------------------------------------ */

/*
 * A chunked body (Go's client/local sends its JSON so) after the head
 * (head[0..hl)), bytes head[hl..n) already read: a request of the head and
 * the decoded body in *req (malloc'd), or NULL when the body was bad, too
 * big or cut short.
 */
static char *
read_chunked(int fd, const char *head, size_t n, size_t hl, size_t *have)
{
	size_t cap = BODY_MAX + BODY_MAX / 2, got = n - hl, bl = 0;
	char *raw = malloc(cap), *req = malloc(hl + BODY_MAX + 1);
	int rv = TK_EAGAIN;

	if (raw == NULL || req == NULL)
		goto fail;
	memcpy(raw, head + hl, got);
	while ((rv = la_chunked_decode(raw, got, req + hl, BODY_MAX, &bl)) ==
	    TK_EAGAIN && got < cap) {
		ssize_t k = read(fd, raw + got, cap - got);
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	if (rv != 0)
		goto fail;
	memcpy(req, head, hl);
	req[hl + bl] = '\0';
	*have = hl + bl;
	sodium_memzero(raw, cap); /* may hold an auth key */
	free(raw);
	return req;
fail:
	if (raw != NULL)
		sodium_memzero(raw, cap);
	free(raw);
	free(req);
	return NULL;
}

static void
serve_one(tk_localapi *la, int fd)
{
	char head[HEAD_MAX + 1];
	size_t n = 0;
	struct timeval tv = { .tv_sec = IO_MS / 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	char *he = NULL;
	while (n < HEAD_MAX) {
		ssize_t k = read(fd, head + n, HEAD_MAX - n);
		if (k <= 0)
			return; /* gone, or silent for IO_MS */
		n += (size_t)k;
		head[n] = '\0';
		if ((he = strstr(head, "\r\n\r\n")) != NULL)
			break;
	}
	/* a body of Content-Length bytes (POST /start), at most BODY_MAX */
	size_t want = 0;
	bool chunked = false;
	for (char *l = head; he != NULL && l < he;) {
		char *eol = strstr(l, "\r\n");
		if (eol == NULL)
			break;
		if (eol - l > 15 && strncasecmp(l, "content-length:", 15) == 0)
			want = strtoul(l + 15, NULL, 10);
		if (eol - l > 18 && strncasecmp(l, "transfer-encoding:", 18) == 0 &&
		    strcasestr(l, "chunked") != NULL && strcasestr(l, "chunked") < eol)
			chunked = true;
		l = eol + 2;
	}
	char *req = head;
	size_t have = n;
	if (he != NULL && chunked) {
		size_t hl = (size_t)(he + 4 - head);
		if ((req = read_chunked(fd, head, n, hl, &have)) == NULL) {
			req = head; /* the head alone: the handler says 400 */
			have = hl;
		}
	} else if (he != NULL && want > 0 && want <= BODY_MAX) {
		size_t hl = (size_t)(he + 4 - head);
		if ((req = malloc(hl + want + 1)) == NULL)
			return;
		memcpy(req, head, n < hl + want ? n : hl + want);
		have = n < hl + want ? n : hl + want;
		while (have < hl + want) {
			ssize_t k = read(fd, req + have, hl + want - have);
			if (k <= 0)
				break;
			have += (size_t)k;
		}
		req[have] = '\0';
	}
	char *resp;
	size_t rl;
	la_handle_fd(la->node, req, have, fd, &la->stopping, &resp, &rl);
	if (req != head) {
		sodium_memzero(req, have); /* may hold an auth key */
		free(req);
	}
	for (size_t off = 0; resp && off < rl;) {
		ssize_t k = send(fd, resp + off, rl - off, MSG_NOSIGNAL);
		if (k <= 0)
			break;
		off += (size_t)k;
	}
	free(resp);
}

struct conn {
	tk_localapi *la;
	int fd;
};

static void *
conn_thread(void *arg)
{
	struct conn *c = arg;
	tk_localapi *la = c->la;

	serve_one(la, c->fd);
	close(c->fd);
	free(c);
	pthread_mutex_lock(&la->mu);
	if (--la->nconn == 0)
		pthread_cond_broadcast(&la->idle);
	pthread_mutex_unlock(&la->mu);
	return NULL;
}

/* Serves fd on a thread of its own, or here when CONN_MAX are busy. */
static void
serve_conn(tk_localapi *la, int fd)
{
	struct conn *c = NULL;
	pthread_t t;
	pthread_attr_t at;

	pthread_mutex_lock(&la->mu);
	bool room = la->nconn < CONN_MAX;
	if (room)
		la->nconn++;
	pthread_mutex_unlock(&la->mu);
	if (room && (c = malloc(sizeof(*c))) != NULL) {
		c->la = la;
		c->fd = fd;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		int e = pthread_create(&t, &at, conn_thread, c);
		pthread_attr_destroy(&at);
		if (e == 0)
			return;
		free(c);
	}
	if (room) {
		pthread_mutex_lock(&la->mu);
		la->nconn--;
		pthread_mutex_unlock(&la->mu);
	}
	serve_one(la, fd);
	close(fd);
}

static void *
serve(void *arg)
{
	tk_localapi *la = arg;

	for (;;) {
		struct pollfd pf[2] = { { .fd = la->lfd, .events = POLLIN },
			{ .fd = la->stopfd, .events = POLLIN } };
		if (poll(pf, 2, -1) < 0 && errno != EINTR)
			break;
		if (pf[1].revents)
			break;
		if (!(pf[0].revents & POLLIN))
			continue;
		int fd = accept4(la->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		serve_conn(la, fd);
	}
	return NULL;
}

int
tk_localapi_new(tk_localapi **out, const tk_node *node, const char *path,
    char *err, size_t errlen)
{
	tk_localapi *la;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int e;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "LocalAPI socket '%.200s...': longer than %zu "
		    "bytes", path, sizeof(sa.sun_path) - 1);
		return TK_EINVAL;
	}
	if ((la = tk_calloc(1, sizeof(*la))) == NULL)
		return TK_ENOMEM;
	la->node = node;
	la->lfd = la->stopfd = -1;
	pthread_mutex_init(&la->mu, NULL);
	pthread_cond_init(&la->idle, NULL);
	snprintf(la->path, sizeof(la->path), "%s", path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	(void)unlink(path); /* a stale socket of a previous run */
	mode_t old = umask(0177);
	if ((la->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(la->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(la->lfd, 16) != 0 ||
	    (la->stopfd = eventfd(0, EFD_CLOEXEC)) < 0) {
		e = errno;
		umask(old);
		snprintf(err, errlen, "LocalAPI socket '%s': %s", path, strerror(e));
		tk_localapi_free(la);
		return tk_err_sys(e);
	}
	umask(old);
	chmod(path, 0600);
	if ((e = pthread_create(&la->thr, NULL, serve, la)) != 0) {
		snprintf(err, errlen, "LocalAPI thread: %s", strerror(e));
		close(la->stopfd);
		la->stopfd = -1;
		tk_localapi_free(la);
		return tk_err_sys(e);
	}
	*out = la;
	return 0;
}

void
tk_localapi_free(tk_localapi *la)
{
	uint64_t one = 1;

	if (la == NULL)
		return;
	/* first: a stream served on the accept thread (all CONN_MAX busy)
	 * must end for the join below */
	atomic_store(&la->stopping, true);
	if (la->stopfd >= 0) {
		if (write(la->stopfd, &one, sizeof(one)) == sizeof(one))
			pthread_join(la->thr, NULL);
		close(la->stopfd);
	}
	/* connection threads end within their I/O timeouts; streams see
	 * `stopping` */
	pthread_mutex_lock(&la->mu);
	while (la->nconn > 0)
		pthread_cond_wait(&la->idle, &la->mu);
	pthread_mutex_unlock(&la->mu);
	pthread_mutex_destroy(&la->mu);
	pthread_cond_destroy(&la->idle);
	if (la->lfd >= 0) {
		close(la->lfd);
		(void)unlink(la->path);
	}
	tk_free(la);
}
