/*
 * Request bodies for the control server: see requests.h.  jansson reports
 * allocation failure by NULL or -1 at every step; each is checked, so a
 * request goes out whole or not at all.
 */
#include <string.h>

#include "ctlconn.h" /* CTRLD_CAPVER */
#include "requests.h"
#include "tk/err.h"
#include "tk/json.h"
#include "tk/mem.h"

/*
 * Hostinfo.IPNVersion in version.Long syntax ("x.y.z-..."), which the
 * control server parses (version.AtLeast): the Tailscale release whose
 * capability version tailkit claims (v1.80.0 is capver 113), and tailkit's
 * own version in the trailer, which AtLeast ignores.  tailkit itself is
 * named in Hostinfo.App, the field tsnet apps name themselves in
 * (hostinfo.SetApp).
 */
#define TAILKIT_VERSION "0.1"
#define IPN_VERSION	"1.80.0-tailkit" TAILKIT_VERSION
#define APP		"tailkit"

/* obj[key] = v, stealing v (also on failure). */
static int
set(json_t *obj, const char *key, json_t *v)
{
	return v != NULL && json_object_set_new(obj, key, v) == 0 ? 0 : TK_ENOMEM;
}

/* Encodes and releases v; any jansson allocation that failed since the
 * builder began (tk_json_oom) fails it, even one jansson did not report. */
static int
finish(json_t *v, int rv, char **out)
{
	if (rv == 0 && tk_json_oom())
		rv = TK_ENOMEM;
	if (rv == 0)
		rv = tk_json_dump(v, out, NULL);
	json_decref(v);
	return rv;
}

int
ctrldi_hostinfo(const ctrldi_who *w, json_t **out)
{
	json_t *h = json_pack("{s:s, s:s, s:s, s:s}", "Hostname", w->hostname, "OS",
	    "linux", "IPNVersion", IPN_VERSION, "App", APP);

	if (h == NULL)
		return TK_ENOMEM;
	/* direct.go doLogin/sendMapRequest refuse to send without one */
	if (w->backend_log_id != NULL && *w->backend_log_id &&
	    set(h, "BackendLogID", json_string(w->backend_log_id)) != 0) {
		json_decref(h);
		return TK_ENOMEM;
	}
	if (w->tags != NULL && *w->tags) {
		json_t *t = json_array();
		const char *p = w->tags;
		int rv = t != NULL ? 0 : TK_ENOMEM;
		while (rv == 0 && *p) {
			size_t n = strcspn(p, ",");
			if (n) {
				json_t *tag = json_stringn(p, n);
				if (tag == NULL || json_array_append_new(t, tag) != 0)
					rv = TK_ENOMEM;
			}
			p += n + (p[n] == ',');
		}
		if (rv == 0)
			rv = set(h, "RequestTags", t);
		else
			json_decref(t);
		if (rv != 0) {
			json_decref(h);
			return rv;
		}
	}
	if (w->netinfo != NULL || w->working_udp) {
		json_t *ni = NULL;
		int rv = w->netinfo != NULL ? tk_json_parse(&ni, w->netinfo,
		    strlen(w->netinfo), NULL, NULL, 0) :
		    ((ni = json_object()) != NULL ? 0 : TK_ENOMEM);
		if (rv == 0 && !json_is_object(ni)) {
			json_decref(ni);
			rv = TK_EPROTO;
		}
		if (rv == 0 && w->working_udp &&
		    json_object_set_new(ni, "WorkingUDP", json_true()) != 0) {
			json_decref(ni);
			rv = TK_ENOMEM;
		}
		if (rv == 0)
			rv = set(h, "NetInfo", ni);
		if (rv != 0) {
			json_decref(h);
			return rv;
		}
	}
	*out = h;
	return 0;
}

/* json_pack with Hostinfo taken by "O" (a new reference): ours is dropped
 * here whatever happens. */
static json_t *
with_hostinfo(json_t *hi, json_t *v)
{
	json_decref(hi);
	return v;
}

int
ctrldi_req_register(char **out, const ctrldi_who *w, bool ephemeral,
    const char *auth_key, const char *followup)
{
	json_t *hi, *reg;
	int rv;

	tk_json_oom_clear();
	if ((rv = ctrldi_hostinfo(w, &hi)) != 0)
		return rv;
	reg = with_hostinfo(hi, json_pack("{s:i, s:s, s:s, s:O, s:b}", "Version",
	    CTRLD_CAPVER, "NodeKey", w->node_key, "OldNodeKey", w->old_node_key,
	    "Hostinfo", hi, "Ephemeral", ephemeral));
	if (reg == NULL)
		return TK_ENOMEM;
	if (auth_key != NULL)
		rv = set(reg, "Auth", json_pack("{s:s}", "AuthKey", auth_key));
	if (rv == 0 && followup != NULL)
		rv = set(reg, "Followup", json_string(followup));
	return finish(reg, rv, out);
}

int
ctrldi_req_logout(char **out, const ctrldi_who *w)
{
	json_t *hi, *lo;
	int rv;

	tk_json_oom_clear();
	/* doLogin sends the same RegisterRequest, Hostinfo included, with
	 * the expiry in the past */
	if ((rv = ctrldi_hostinfo(w, &hi)) != 0)
		return rv;
	lo = with_hostinfo(hi, json_pack("{s:i, s:s, s:s, s:s, s:O}", "Version",
	    CTRLD_CAPVER, "NodeKey", w->node_key, "OldNodeKey", w->old_node_key,
	    "Expiry", "1970-01-01T00:02:03Z", "Hostinfo", hi));
	if (lo == NULL)
		return TK_ENOMEM;
	return finish(lo, 0, out);
}

int
ctrldi_req_map(char **out, const ctrldi_who *w, bool zstd)
{
	json_t *hi, *mr;
	int rv;

	tk_json_oom_clear();
	if ((rv = ctrldi_hostinfo(w, &hi)) != 0)
		return rv;
	mr = with_hostinfo(hi, json_pack("{s:i, s:s, s:O, s:b, s:b}",
	    "Version", CTRLD_CAPVER, "NodeKey", w->node_key, "Hostinfo", hi,
	    "Stream", 1, "KeepAlive", 1));
	if (mr == NULL)
		return TK_ENOMEM;
	if (zstd)
		rv = set(mr, "Compress", json_string("zstd"));
	if (rv == 0 && w->disco_key != NULL)
		rv = set(mr, "DiscoKey", json_string(w->disco_key));
	return finish(mr, rv, out);
}

/* A JSON array from our own text: TK_EPROTO if it is not one. */
static int
set_array(json_t *obj, const char *key, const char *text)
{
	json_t *a;
	int rv = tk_json_parse(&a, text, strlen(text), NULL, NULL, 0);

	if (rv != 0)
		return rv == TK_ENOMEM ? TK_ENOMEM : TK_EPROTO;
	if (!json_is_array(a)) {
		json_decref(a);
		return TK_EPROTO;
	}
	return set(obj, key, a);
}

int
ctrldi_req_lite(char **out, const ctrldi_who *w, const char *eps,
    const char *types)
{
	json_t *hi, *r;
	int rv;

	tk_json_oom_clear();
	if ((rv = ctrldi_hostinfo(w, &hi)) != 0)
		return rv;
	r = with_hostinfo(hi, json_pack("{s:i, s:s, s:O, s:b, s:b}", "Version",
	    CTRLD_CAPVER, "NodeKey", w->node_key, "Hostinfo", hi, "Stream", 0,
	    "OmitPeers", 1));
	if (r == NULL)
		return TK_ENOMEM;
	if (w->disco_key != NULL)
		rv = set(r, "DiscoKey", json_string(w->disco_key));
	if (rv == 0 && tk_json_oom()) /* tk_json_parse clears it */
		rv = TK_ENOMEM;
	if (rv == 0)
		rv = set_array(r, "Endpoints", eps);
	if (rv == 0)
		rv = set_array(r, "EndpointTypes", types);
	return finish(r, rv, out);
}
