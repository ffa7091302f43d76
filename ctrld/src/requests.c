/*
 * Request bodies for the control server: see requests.h.
 */
#include <string.h>

#include "ctlconn.h" /* CTRLD_CAPVER */
#include "requests.h"
#include "tk/mem.h"

#define VERSION "0.1"

json_t *
ctrldi_hostinfo(const ctrldi_who *w)
{
	json_t *h = json_pack("{s:s, s:s, s:s}", "Hostname", w->hostname, "OS",
	    "linux", "IPNVersion", "tailkit-" VERSION);

	if (w->tags != NULL && *w->tags) {
		json_t *t = json_array();
		const char *p = w->tags;
		while (*p) {
			size_t n = strcspn(p, ",");
			if (n)
				json_array_append_new(t, json_stringn(p, n));
			p += n + (p[n] == ',');
		}
		json_object_set_new(h, "RequestTags", t);
	}
	return h;
}

char *
ctrldi_req_register(const ctrldi_who *w, bool ephemeral, const char *auth_key,
    const char *followup)
{
	json_t *hi = ctrldi_hostinfo(w);
	json_t *reg = json_pack("{s:i, s:s, s:s, s:o, s:b}", "Version",
	    CTRLD_CAPVER, "NodeKey", w->node_key, "OldNodeKey", w->old_node_key,
	    "Hostinfo", hi, "Ephemeral", ephemeral);
	if (auth_key != NULL)
		json_object_set_new(reg, "Auth", json_pack("{s:s}", "AuthKey",
		    auth_key));
	if (followup != NULL)
		json_object_set_new(reg, "Followup", json_string(followup));
	char *body = json_dumps(reg, JSON_COMPACT);
	json_decref(reg);
	return body;
}

char *
ctrldi_req_logout(const ctrldi_who *w)
{
	json_t *lo = json_pack("{s:i, s:s, s:s, s:s}", "Version", CTRLD_CAPVER,
	    "NodeKey", w->node_key, "OldNodeKey", w->old_node_key, "Expiry",
	    "1970-01-01T00:02:03Z");
	char *b = json_dumps(lo, JSON_COMPACT);
	json_decref(lo);
	return b;
}

char *
ctrldi_req_map(const ctrldi_who *w)
{
	json_t *mr = json_pack("{s:i, s:s, s:o, s:b, s:b, s:s}", "Version",
	    CTRLD_CAPVER, "NodeKey", w->node_key, "Hostinfo", ctrldi_hostinfo(w),
	    "Stream", 1, "KeepAlive", 1, "Compress", "zstd");
	if (w->disco_key != NULL)
		json_object_set_new(mr, "DiscoKey", json_string(w->disco_key));
	char *body = json_dumps(mr, JSON_COMPACT);
	json_decref(mr);
	return body;
}

char *
ctrldi_req_lite(const ctrldi_who *w, const char *eps, const char *types)
{
	json_t *r = json_pack("{s:i, s:s, s:o, s:b, s:b}", "Version", CTRLD_CAPVER,
	    "NodeKey", w->node_key, "Hostinfo", ctrldi_hostinfo(w), "Stream", 0,
	    "OmitPeers", 1);
	if (w->disco_key != NULL)
		json_object_set_new(r, "DiscoKey", json_string(w->disco_key));
	json_object_set_new(r, "Endpoints", json_loads(eps, 0, NULL));
	json_object_set_new(r, "EndpointTypes", json_loads(types, 0, NULL));
	char *body = json_dumps(r, JSON_COMPACT);
	json_decref(r);
	return body;
}
