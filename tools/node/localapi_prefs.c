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
#include "localapi_int.h"

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
		*code = rv == TK_EINVAL ? 400 : rv == TK_EPERM ? 403 : 500;
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
		la_respond_error(resp, resp_len, code, code == 400 ? "Bad Request" :
		    code == 403 ? "Forbidden" : "Internal Server Error", err);
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
	for (size_t i = 0; mj && i < LA_PREFS_EDITABLE; i++) {
		char k[40];
		snprintf(k, sizeof(k), "%sSet", la_prefs_editable[i]);
		if (json_object_get(up, la_prefs_editable[i]) != NULL)
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
