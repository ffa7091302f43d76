/*
 * The LocalAPI's parsers of client input, sans-I/O (table-tested in
 * tests/unit/node, fuzzed by tests/fuzz/fuzz_localapi_parse.c):
 *  - HTTP/1.1 chunked request bodies (RFC 9112 §7.1): Go's client/local
 *    sends its JSON bodies (EditPrefs, CheckPrefs, Start) as a jsonReader
 *    of unknown length, so net/http frames them chunked;
 *  - Go's ipn.MaskedPrefs JSON (PATCH /localapi/v0/prefs) into the bus's
 *    MaskedPrefs, and a whole ipn.Prefs checked against the current one.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "tk/err.h"
#include "tk/netaddr.h"
#include "localapi_int.h"

#define TAGS_MAX   64 /* AdvertiseTags entries (la_masked's arrays) */
#define ROUTES_MAX 64 /* AdvertiseRoutes entries (all refused by ctrld) */

#define SIZE_LINE_MAX 64 /* hex size plus extensions */

static int
hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* The end of the line starting at in[pos] ("\r\n"), or NULL. */
static const char *
eol(const char *in, size_t n, size_t pos)
{
	for (size_t i = pos; i + 1 < n; i++)
		if (in[i] == '\r' && in[i + 1] == '\n')
			return in + i;
	return NULL;
}

int
la_chunked_decode(const char *in, size_t n, char *out, size_t cap,
    size_t *outlen)
{
	size_t pos = 0, o = 0;

	for (;;) {
		const char *e = eol(in, n, pos);
		if (e == NULL)
			return n - pos > SIZE_LINE_MAX ? TK_EPROTO : TK_EAGAIN;
		if ((size_t)(e - in) - pos > SIZE_LINE_MAX)
			return TK_EPROTO;
		size_t size = 0, digits = 0;
		for (const char *p = in + pos; p < e && hexval(*p) >= 0; p++) {
			size = size * 16 + (size_t)hexval(*p);
			if (++digits > 8 || size > cap)
				return digits > 8 ? TK_EPROTO : TK_EMSGSIZE;
		}
		const char *after = in + pos + digits;
		if (digits == 0 || (after != e && *after != ';'))
			return TK_EPROTO; /* only extensions may follow */
		pos = (size_t)(e - in) + 2;
		if (size == 0) {
			/* trailer fields, then an empty line */
			for (;;) {
				if ((e = eol(in, n, pos)) == NULL)
					return n - pos > 4 * SIZE_LINE_MAX ?
					    TK_EPROTO : TK_EAGAIN;
				if (e == in + pos)
					break;
				if ((size_t)(e - in) - pos > 4 * SIZE_LINE_MAX)
					return TK_EPROTO;
				pos = (size_t)(e - in) + 2;
			}
			*outlen = o;
			return 0;
		}
		if (o + size > cap)
			return TK_EMSGSIZE;
		if (n - pos < size + 2)
			return TK_EAGAIN;
		if (in[pos + size] != '\r' || in[pos + size + 1] != '\n')
			return TK_EPROTO;
		memcpy(out + o, in + pos, size);
		o += size;
		pos += size + 2;
	}
}

/* --- ipn.Prefs JSON ------------------------------------------------------ */

const char *const la_prefs_editable[LA_PREFS_EDITABLE] = { "WantRunning",
	"Hostname", "CorpDNS", "ShieldsUp", "AdvertiseTags" };

static bool
is_editable(const char *k)
{
	for (size_t i = 0; i < LA_PREFS_EDITABLE; i++)
		if (strcmp(k, la_prefs_editable[i]) == 0)
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
