/*
 * tailkitd --config FILE: tailscaled's declarative config file
 * (ipn.ConfigVAlpha, "Version": "alpha0"), the fields tailkit has.  See
 * tk/node_config.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "tk/err.h"
#include "tk/json.h"
#include "tk/mem.h"
#include "tk/node_config.h"

/* ipn.ConfigVAlpha fields tailkit reads, and those it refuses when set */
static const char *const known[] = { "Version", "ServerURL", "AuthKey",
	"Hostname", "Enabled", "Locked", "AcceptDNS", NULL };
static const char *const refused[] = { "OperatorUser", "AcceptRoutes",
	"ExitNode", "AllowLANWhileUsingExitNode", "AdvertiseRoutes",
	"AdvertiseExitNode", "DisableSNAT", "AdvertiseServices", "AppConnector",
	"NetfilterMode", "NoStatefulFiltering", "PostureChecking",
	"RunSSHServer", "RunWebClient", "ShieldsUp", "RemoteConfig",
	"AutoUpdate", "ServeConfigTemp", "StaticEndpoints", "RelayServerPort",
	"RelayServerStaticEndpoints", NULL };

static bool
in(const char *const *v, const char *k)
{
	for (; *v; v++)
		if (strcasecmp(*v, k) == 0) /* Go's decoder folds case */
			return true;
	return false;
}

/* obj's member k, ASCII case folded as encoding/json matches it */
static json_t *
get(json_t *o, const char *k)
{
	const char *name;
	json_t *v, *hit = NULL;

	json_object_foreach(o, name, v)
		if (strcasecmp(name, k) == 0)
			hit = v;
	return json_is_null(hit) ? NULL : hit;
}

/* opt.Bool: true/false, or the strings "true"/"false"/"" */
static int
opt_bool(json_t *v, int *out)
{
	const char *s = json_string_value(v);

	if (v == NULL || (s != NULL && *s == '\0'))
		*out = -1;
	else if (json_is_true(v) || (s && strcmp(s, "true") == 0))
		*out = 1;
	else if (json_is_false(v) || (s && strcmp(s, "false") == 0))
		*out = 0;
	else
		return TK_EINVAL;
	return 0;
}

static char *
dup_trim(const char *s, size_t n)
{
	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
		n--;
	char *d = tk_malloc(n + 1);
	if (d != NULL) {
		memcpy(d, s, n);
		d[n] = '\0';
	}
	return d;
}

int
tk_node_config_load(tk_node_file *f, const char *path, char *err, size_t errlen)
{
	size_t n = 0;
	char *text = NULL;
	json_t *o = NULL;
	int rv = TK_EINVAL, en;
	FILE *fp = fopen(path, "r");

	memset(f, 0, sizeof(*f));
	if (fp == NULL) {
		snprintf(err, errlen, "config %s: cannot open it", path);
		return TK_ENOENT;
	}
	text = tk_malloc(1 << 20);
	if (text == NULL) {
		fclose(fp);
		return TK_ENOMEM;
	}
	n = fread(text, 1, 1 << 20, fp);
	fclose(fp);
	if (n == 1 << 20) {
		snprintf(err, errlen, "config %s: larger than 1 MiB", path);
		goto out;
	}
	if (tk_json_parse(&o, text, n, NULL, err, errlen) != 0 || !json_is_object(o)) {
		size_t k = strlen(err);
		snprintf(err + k, errlen - k, "%sconfig %s: want a JSON object "
		    "(tailscaled's ipn.ConfigVAlpha)", k ? "; " : "", path);
		goto out;
	}
	const char *name;
	json_t *v;
	json_object_foreach(o, name, v) {
		if (in(refused, name) && !json_is_null(v)) {
			snprintf(err, errlen, "config %s: %s is not supported by "
			    "tailkit (it reads Version, ServerURL, AuthKey, Hostname, "
			    "Enabled, Locked, AcceptDNS)", path, name);
			goto out;
		}
		if (!in(known, name) && !in(refused, name)) {
			snprintf(err, errlen, "config %s: unknown field %s", path, name);
			goto out;
		}
	}
	const char *ver = json_string_value(get(o, "Version"));
	if (ver == NULL || strcmp(ver, "alpha0") != 0) {
		snprintf(err, errlen, "config %s: \"Version\" must be \"alpha0\"", path);
		goto out;
	}
	json_t *su = get(o, "ServerURL"), *ak = get(o, "AuthKey"),
	       *hn = get(o, "Hostname");
	if ((su && !json_is_string(su)) || (ak && !json_is_string(ak)) ||
	    (hn && !json_is_string(hn))) {
		snprintf(err, errlen, "config %s: ServerURL, AuthKey and Hostname "
		    "are strings", path);
		goto out;
	}
	if (opt_bool(get(o, "Enabled"), &f->enabled) != 0 ||
	    opt_bool(get(o, "AcceptDNS"), &f->accept_dns) != 0 ||
	    opt_bool(get(o, "Locked"), &f->locked) != 0) {
		snprintf(err, errlen, "config %s: Enabled, AcceptDNS and Locked are "
		    "true, "
		    "false, \"true\", \"false\" or \"\"", path);
		goto out;
	}
	/* ipn/conf.go: ServerURL defaults to Tailscale's control plane */
	const char *url = su ? json_string_value(su) :
			       "https://controlplane.tailscale.com";
	if ((f->server_url = tk_strdup(url)) == NULL)
		goto oom;
	if (hn && (f->hostname = tk_strdup(json_string_value(hn))) == NULL)
		goto oom;
	if (ak != NULL) {
		const char *s = json_string_value(ak);
		if (strncmp(s, "file:", 5) == 0) {
			FILE *kf = fopen(s + 5, "r");
			char kb[512];
			if (kf == NULL) {
				snprintf(err, errlen, "config %s: AuthKey file %s: cannot "
				    "open it", path, s + 5);
				rv = TK_ENOENT;
				goto out;
			}
			setvbuf(kf, NULL, _IONBF, 0);
			size_t kn = fread(kb, 1, sizeof(kb) - 1, kf);
			fclose(kf);
			f->auth_key = dup_trim(kb, kn);
			tk_secure_zero(kb, sizeof(kb));
		} else {
			f->auth_key = tk_strdup(s);
		}
		if (f->auth_key == NULL)
			goto oom;
	}
	rv = 0;
	goto out;
oom:
	rv = TK_ENOMEM;
	snprintf(err, errlen, "config %s: out of memory", path);
out:
	en = rv;
	if (text != NULL) {
		tk_secure_zero(text, n);
		tk_free(text);
	}
	json_decref(o);
	if (en != 0)
		tk_node_config_fini(f);
	return en;
}

void
tk_node_config_fini(tk_node_file *f)
{
	if (f->auth_key != NULL)
		tk_free_secret(f->auth_key, strlen(f->auth_key) + 1);
	tk_free(f->server_url);
	tk_free(f->hostname);
	memset(f, 0, sizeof(*f));
}
