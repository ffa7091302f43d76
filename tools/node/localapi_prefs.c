/*
 * LocalAPI prefs: GET and PATCH /localapi/v0/prefs (ipn.Prefs, ipn.
 * MaskedPrefs JSON, client/local GetPrefs and EditPrefs), POST
 * /localapi/v0/check-prefs (client/local CheckPrefs, which Go's `tailscale
 * set` calls before editing) and ipn.Options.UpdatePrefs of /start.  The
 * prefs are ctrld's (rpc get_prefs/edit_prefs); ctrld checks and applies
 * them, this file only translates JSON.
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "tk/buf.h"
#include "tk/bus_rpc.h"
#include "tk/bus_topics.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk/netaddr.h"
#include "localapi_int.h"

#define TAGS_MAX   64 /* AdvertiseTags entries */
#define ROUTES_MAX 64 /* AdvertiseRoutes entries (all refused by ctrld) */

/* The ipn.Prefs fields ctrld takes edits of (prefs.h). */
static const char *const editable[] = { "WantRunning", "Hostname", "CorpDNS",
	"ShieldsUp", "AdvertiseTags" };

static bool
is_editable(const char *k)
{
	for (size_t i = 0; i < sizeof(editable) / sizeof(editable[0]); i++)
		if (strcmp(k, editable[i]) == 0)
			return true;
	return false;
}

/* Go's zero value in JSON: null, false, "", 0, [], {} or an object of
 * zeros (a struct left alone). */
static bool
is_zero(const json_t *v, int depth)
{
	const char *k;
	json_t *x;

	if (v == NULL || json_is_null(v) || json_is_false(v))
		return true;
	if (json_is_string(v))
		return json_string_length(v) == 0;
	if (json_is_integer(v))
		return json_integer_value(v) == 0;
	if (json_is_real(v))
		return json_real_value(v) == 0;
	if (json_is_array(v))
		return json_array_size(v) == 0;
	if (json_is_object(v) && depth < 8) {
		json_object_foreach((json_t *)v, k, x)
			if (!is_zero(x, depth + 1))
				return false;
		return true;
	}
	return false;
}

/* --- ipn.MaskedPrefs JSON -> tk.bus.v1.MaskedPrefs --------------------- */

static int
want_bool(const json_t *j, const char *k, protobuf_c_boolean *has,
    protobuf_c_boolean *v, char *err, size_t errlen)
{
	const json_t *x = json_object_get(j, k);

	if (x != NULL && !json_is_boolean(x) && !json_is_null(x)) {
		snprintf(err, errlen, "%s: want true or false", k);
		return TK_EINVAL;
	}
	*has = true;
	*v = json_is_true(x);
	return 0;
}

static int
want_string(const json_t *j, const char *k, char **v, char *err,
    size_t errlen)
{
	const json_t *x = json_object_get(j, k);

	if (x != NULL && !json_is_string(x) && !json_is_null(x)) {
		snprintf(err, errlen, "%s: want a string", k);
		return TK_EINVAL;
	}
	*v = (char *)(json_is_string(x) ? json_string_value(x) : "");
	return 0;
}

/* AdvertiseTags: strings; ctrld checks each is a tag */
static int
want_tags(la_masked *m, const json_t *j, char *err, size_t errlen)
{
	const json_t *x = json_object_get(j, "AdvertiseTags");
	size_t i;
	json_t *t;

	if (x == NULL || json_is_null(x))
		return 0;
	if (!json_is_array(x) || json_array_size(x) > TAGS_MAX) {
		snprintf(err, errlen, "AdvertiseTags: want an array of at most %d "
		    "tags", TAGS_MAX);
		return TK_EINVAL;
	}
	json_array_foreach(x, i, t) {
		if (!json_is_string(t)) {
			snprintf(err, errlen, "AdvertiseTags: want strings");
			return TK_EINVAL;
		}
		m->tags[i] = (char *)json_string_value(t);
	}
	m->p.advertise_tags = m->tags;
	m->p.n_advertise_tags = json_array_size(x);
	return 0;
}

/* AdvertiseRoutes: prefixes (ctrld refuses any; they are parsed so the
 * refusal names the field, not a parse error) */
static int
want_routes(la_masked *m, const json_t *j, char *err, size_t errlen)
{
	const json_t *x = json_object_get(j, "AdvertiseRoutes");
	size_t i;
	json_t *r;

	if (x == NULL || json_is_null(x))
		return 0;
	if (!json_is_array(x) || json_array_size(x) > ROUTES_MAX) {
		snprintf(err, errlen, "AdvertiseRoutes: want an array of prefixes");
		return TK_EINVAL;
	}
	json_array_foreach(x, i, r) {
		tk_ipprefix pf;
		const char *s = json_string_value(r);
		if (s == NULL || tk_ipprefix_parse(&pf, s, strlen(s)) != 0) {
			snprintf(err, errlen, "AdvertiseRoutes: '%.60s' is not a "
			    "prefix", s ? s : "");
			return TK_EINVAL;
		}
		size_t al = pf.ip.family == TK_AF_INET ? 4 : 16;
		memcpy(m->route_addr[i], pf.ip.addr, al);
		tk__bus__v1__prefix__init(&m->routes[i]);
		m->routes[i].addr.data = m->route_addr[i];
		m->routes[i].addr.len = al;
		m->routes[i].bits = pf.bits;
		m->routep[i] = &m->routes[i];
	}
	m->p.advertise_routes = m->routep;
	m->p.n_advertise_routes = json_array_size(x);
	return 0;
}

static int
want_ip(la_masked *m, const json_t *j, char *err, size_t errlen)
{
	const char *s = json_string_value(json_object_get(j, "ExitNodeIP"));
	tk_ipaddr ip;

	m->p.has_exit_node_ip = true;
	if (s == NULL || *s == '\0')
		return 0;
	if (tk_ipaddr_parse(&ip, s, strlen(s)) != 0) {
		snprintf(err, errlen, "ExitNodeIP: '%.60s' is not an IP address", s);
		return TK_EINVAL;
	}
	size_t al = ip.family == TK_AF_INET ? 4 : 16;
	memcpy(m->exit_ip, ip.addr, al);
	m->p.exit_node_ip.data = m->exit_ip;
	m->p.exit_node_ip.len = al;
	return 0;
}

/* One "<Field>Set": true of the fields the bus carries. */
static int
set_field(la_masked *m, const json_t *j, const char *f, bool *known,
    char *err, size_t errlen)
{
	Tk__Bus__V1__MaskedPrefs *mp = &m->mp;
	Tk__Bus__V1__Prefs *p = &m->p;

	*known = true;
	if (strcmp(f, "WantRunning") == 0)
		return mp->has_want_running_set = mp->want_running_set = true,
		    want_bool(j, f, &p->has_want_running, &p->want_running, err,
			errlen);
	if (strcmp(f, "CorpDNS") == 0)
		return mp->has_corp_dns_set = mp->corp_dns_set = true,
		    want_bool(j, f, &p->has_corp_dns, &p->corp_dns, err, errlen);
	if (strcmp(f, "ShieldsUp") == 0)
		return mp->has_shields_up_set = mp->shields_up_set = true,
		    want_bool(j, f, &p->has_shields_up, &p->shields_up, err,
			errlen);
	if (strcmp(f, "RouteAll") == 0)
		return mp->has_route_all_set = mp->route_all_set = true,
		    want_bool(j, f, &p->has_route_all, &p->route_all, err, errlen);
	if (strcmp(f, "RunSSH") == 0)
		return mp->has_run_ssh_set = mp->run_ssh_set = true,
		    want_bool(j, f, &p->has_run_ssh, &p->run_ssh, err, errlen);
	if (strcmp(f, "NoSNAT") == 0)
		return mp->has_no_snat_set = mp->no_snat_set = true,
		    want_bool(j, f, &p->has_no_snat, &p->no_snat, err, errlen);
	if (strcmp(f, "Hostname") == 0)
		return mp->has_hostname_set = mp->hostname_set = true,
		    want_string(j, f, &p->hostname, err, errlen);
	if (strcmp(f, "ControlURL") == 0)
		return mp->has_control_url_set = mp->control_url_set = true,
		    want_string(j, f, &p->control_url, err, errlen);
	if (strcmp(f, "ExitNodeID") == 0)
		return mp->has_exit_node_id_set = mp->exit_node_id_set = true,
		    want_string(j, f, &p->exit_node_id, err, errlen);
	if (strcmp(f, "ExitNodeIP") == 0)
		return mp->has_exit_node_ip_set = mp->exit_node_ip_set = true,
		    want_ip(m, j, err, errlen);
	if (strcmp(f, "AdvertiseTags") == 0)
		return mp->has_advertise_tags_set = mp->advertise_tags_set = true,
		    want_tags(m, j, err, errlen);
	if (strcmp(f, "AdvertiseRoutes") == 0)
		return mp->has_advertise_routes_set = mp->advertise_routes_set =
		    true, want_routes(m, j, err, errlen);
	*known = false;
	return 0;
}

int
la_masked_prefs_parse(la_masked *m, const json_t *j, char *err, size_t errlen)
{
	const char *k;
	json_t *v;
	int rv;

	memset(m, 0, sizeof(*m));
	tk__bus__v1__masked_prefs__init(&m->mp);
	tk__bus__v1__prefs__init(&m->p);
	m->mp.prefs = &m->p;
	if (!json_is_object(j)) {
		snprintf(err, errlen, "body: ipn.MaskedPrefs JSON, e.g. "
		    "{\"WantRunningSet\":true,\"WantRunning\":false}");
		return TK_EINVAL;
	}
	json_object_foreach((json_t *)j, k, v) {
		size_t kl = strlen(k);
		char f[64];
		bool known;
		if (kl <= 3 || strcmp(k + kl - 3, "Set") != 0 || !json_is_true(v))
			continue; /* a value, or a mask left false */
		snprintf(f, sizeof(f), "%.*s", (int)(kl - 3), k);
		if ((rv = set_field(m, j, f, &known, err, errlen)) != 0)
			return rv;
		/* a pref the bus does not carry: tailkit already behaves as
		 * its zero value says, anything else is refused */
		if (!known && !is_zero(json_object_get(j, f), 0)) {
			snprintf(err, errlen, "%s: not supported by tailkit "
			    "(accepted prefs: WantRunning, Hostname, CorpDNS, "
			    "ShieldsUp, AdvertiseTags)", f);
			return TK_EINVAL;
		}
	}
	return 0;
}

/*
 * A whole ipn.Prefs (check-prefs, Start's UpdatePrefs) against the current
 * one: the editable fields may differ; every other field must be what
 * tailkit has (cur) or, if tailkit does not show it, zero.
 */
int
la_prefs_check(const json_t *want, const json_t *cur, char *err,
    size_t errlen)
{
	const char *k;
	json_t *v;

	if (!json_is_object(want)) {
		snprintf(err, errlen, "body: ipn.Prefs JSON");
		return TK_EINVAL;
	}
	json_object_foreach((json_t *)want, k, v) {
		const json_t *c = json_object_get(cur, k);
		if (is_editable(k) || strcmp(k, "LoggedOut") == 0)
			continue; /* LoggedOut: ctrld's, set by logout/login */
		if (strcmp(k, "ControlURL") == 0 && is_zero(v, 0))
			continue; /* Go leaves it empty for "the default" */
		if (c != NULL ? json_equal(v, c) : is_zero(v, 0))
			continue;
		if (strcmp(k, "ControlURL") == 0)
			snprintf(err, errlen, "ControlURL: tailkitd talks to %s; to "
			    "use another control server, restart tailkitd with "
			    "--control-url (or control_url in its config)",
			    json_string_value(c) ? json_string_value(c) : "its "
			    "--control-url");
		else
			snprintf(err, errlen, "%s: not supported by tailkit "
			    "(accepted prefs: WantRunning, Hostname, CorpDNS, "
			    "ShieldsUp, AdvertiseTags)", k);
		return TK_EINVAL;
	}
	return 0;
}

/* --- answers ------------------------------------------------------------- */

/* ipn.Prefs JSON of ctrld's Prefs, with Go's values for what tailkit
 * does not do (no routes, exit nodes, SSH, web client, netfilter). */
static json_t *
prefs_json(const Tk__Bus__V1__Prefs *p, bool logged_out)
{
	json_t *tags = json_null(), *o;

	if (p->n_advertise_tags > 0) {
		tags = json_array();
		for (size_t i = 0; i < p->n_advertise_tags; i++)
			json_array_append_new(tags, json_string(p->advertise_tags[i]));
	}
	o = json_pack("{s:s,s:b,s:s,s:s,s:b,s:b,s:b,s:b,s:b,s:b,s:b,s:o,s:s,"
	    "s:b,s:b,s:n,s:b,s:i,s:s,s:s}",
	    "ControlURL", p->control_url ? p->control_url : "",
	    "RouteAll", false, "ExitNodeID", "", "ExitNodeIP", "",
	    "ExitNodeAllowLANAccess", false, "CorpDNS", p->corp_dns,
	    "RunSSH", false, "RunWebClient", false,
	    "WantRunning", p->want_running, "LoggedOut", logged_out,
	    "ShieldsUp", p->shields_up, "AdvertiseTags", tags,
	    "Hostname", p->hostname ? p->hostname : "",
	    "NotepadURLs", false, "ForceDaemon", false, "AdvertiseRoutes",
	    "NoSNAT", false, "NetfilterMode", 0, "OperatorUser", "",
	    "ProfileName", "");
	return o;
}

static bool
logged_out_of(const tk_node *node)
{
	Tk__Bus__V1__StatusResponse *st = la_status_of(node, TK_BUS_CTRLD_RPC);
	bool lo = st != NULL && st->state ==
	    TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_NEEDS_LOGIN;

	if (st != NULL)
		tk__bus__v1__status_response__free_unpacked(st, NULL);
	return lo;
}

/* ctrld's answer (a Prefs) as JSON, or NULL with err. */
static json_t *
prefs_reply_json(const tk_node *node, const tk_buf *b, char *err,
    size_t errlen)
{
	Tk__Bus__V1__Prefs *p = tk__bus__v1__prefs__unpack(NULL, b->len, b->data);

	if (p == NULL) {
		snprintf(err, errlen, "ctrld's prefs: unreadable reply");
		return NULL;
	}
	json_t *j = prefs_json(p, logged_out_of(node));
	tk__bus__v1__prefs__free_unpacked(p, NULL);
	return j;
}

json_t *
la_prefs_get(const tk_node *node, char *err, size_t errlen)
{
	tk_buf b;
	json_t *j = NULL;

	tk_buf_init(&b);
	int rv = tk_rpc_call_sync(tk_node_bus_url(node, TK_BUS_CTRLD_RPC), NULL,
	    TK_METHOD_GET_PREFS, NULL, 0, LA_RPC_MS, &b);
	if (rv != 0)
		snprintf(err, errlen, "ctrld: %s", tk_strerror(rv));
	else
		j = prefs_reply_json(node, &b, err, errlen);
	tk_buf_fini(&b);
	return j;
}

/* ctrld's rpc edit_prefs; *code and err on failure (ctrld's text). */
json_t *
la_prefs_edit(const tk_node *node, const la_masked *m, int *code, char *err,
    size_t errlen)
{
	tk_buf req, b;
	json_t *j = NULL;

	tk_buf_init(&req);
	tk_buf_init(&b);
	int rv = tk_bus_pb_pack(&m->mp.base, &req);
	if (rv == 0)
		rv = tk_rpc_call_sync(tk_node_bus_url(node, TK_BUS_CTRLD_RPC),
		    NULL, TK_METHOD_EDIT_PREFS, req.data, req.len, LA_RPC_MS, &b);
	if (rv != 0) {
		const char *t = NULL;
		*code = rv == TK_EINVAL ? 400 : 500;
		if (b.len > 0 && tk_buf_cstr(&b, &t) == 0 && *t)
			snprintf(err, errlen, "%s", t);
		else
			snprintf(err, errlen, "ctrld: %s", tk_strerror(rv));
	} else if ((j = prefs_reply_json(node, &b, err, errlen)) == NULL) {
		*code = 500;
	}
	tk_buf_fini(&req);
	tk_buf_fini(&b);
	return j;
}

static void
prefs_get(const tk_node *node, char **resp, size_t *resp_len)
{
	char err[300];
	json_t *j = la_prefs_get(node, err, sizeof(err));

	if (j == NULL)
		la_respond_error(resp, resp_len, 500, "Internal Server Error", err);
	else
		la_respond(resp, resp_len, 200, "OK", j);
}

static json_t *
body_json(const la_req *r)
{
	json_error_t je;

	if (r->body == NULL || r->body_len == 0)
		return NULL;
	return json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &je);
}

static void
prefs_patch(const tk_node *node, const la_req *r, char **resp,
    size_t *resp_len)
{
	json_t *j = body_json(r), *out;
	la_masked m;
	char err[400];
	int code = 400;

	if (la_masked_prefs_parse(&m, j, err, sizeof(err)) != 0) {
		json_decref(j);
		la_respond_error(resp, resp_len, 400, "Bad Request", err);
		return;
	}
	out = la_prefs_edit(node, &m, &code, err, sizeof(err));
	json_decref(j); /* m borrowed its strings */
	if (out == NULL)
		la_respond_error(resp, resp_len, code, code == 400 ?
		    "Bad Request" : "Internal Server Error", err);
	else
		la_respond(resp, resp_len, 200, "OK", out);
}

void
la_h_prefs(const tk_node *node, const la_req *r, char **resp,
    size_t *resp_len)
{
	if (strcmp(r->method, "GET") == 0)
		prefs_get(node, resp, resp_len);
	else if (strcmp(r->method, "PATCH") == 0)
		prefs_patch(node, r, resp, resp_len);
	else
		la_respond_error(resp, resp_len, 405, "Method Not Allowed",
		    "want GET or PATCH");
}

/* POST /localapi/v0/check-prefs: an ipn.Prefs tailkit could run with */
void
la_h_check_prefs(const tk_node *node, const la_req *r, char **resp,
    size_t *resp_len)
{
	json_t *j = body_json(r), *cur;
	char err[400];

	if (!json_is_object(j)) {
		json_decref(j);
		la_respond_error(resp, resp_len, 400, "Bad Request",
		    "body: ipn.Prefs JSON");
		return;
	}
	if ((cur = la_prefs_get(node, err, sizeof(err))) == NULL) {
		json_decref(j);
		la_respond_error(resp, resp_len, 500, "Internal Server Error", err);
		return;
	}
	int rv = la_prefs_check(j, cur, err, sizeof(err));
	json_decref(j);
	json_decref(cur);
	if (rv != 0)
		la_respond_error(resp, resp_len, 400, "Bad Request", err);
	else
		la_respond(resp, resp_len, 200, "OK", json_object());
}

/*
 * ipn.Options.UpdatePrefs of /start: a whole ipn.Prefs; the editable
 * fields it has are applied (as a MaskedPrefs), the others must be what
 * tailkit has.  0, or the HTTP code with err.
 */
int
la_start_prefs(const tk_node *node, const json_t *up, char *err,
    size_t errlen)
{
	json_t *cur, *mj, *out;
	la_masked m;
	int code = 0;

	if (up == NULL || json_is_null(up))
		return 0;
	if ((cur = la_prefs_get(node, err, errlen)) == NULL)
		return 500;
	if (la_prefs_check(up, cur, err, errlen) != 0) {
		json_decref(cur);
		return 400;
	}
	json_decref(cur);
	mj = json_deep_copy(up);
	for (size_t i = 0; mj && i < sizeof(editable) / sizeof(editable[0]); i++) {
		char k[40];
		snprintf(k, sizeof(k), "%sSet", editable[i]);
		if (json_object_get(up, editable[i]) != NULL)
			json_object_set_new(mj, k, json_true());
	}
	if (mj == NULL || la_masked_prefs_parse(&m, mj, err, errlen) != 0) {
		json_decref(mj);
		return 400;
	}
	out = la_prefs_edit(node, &m, &code, err, errlen);
	json_decref(mj);
	if (out == NULL)
		return code;
	json_decref(out);
	return 0;
}
