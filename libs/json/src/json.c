#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk/err.h"
#include "tk/json.h"
#include "tk/mem.h"

/*
 * jansson allocates through the tailkit funnel (tk/mem.h): its memory is
 * counted and fault injection reaches every JSON parse and build.  Set
 * before main() so no jansson object predates it; jansson's free gets no
 * size, and tk_free needs none.  Strings jansson returns (json_dumps) are
 * freed with tk_free.  Every target linking tk_json is linked with
 * -u tk_json_funnel (libs/json/CMakeLists.txt), so this object, and the
 * constructor, are in even when only jansson itself is called.
 *
 * jansson 2.14 does not always report a failed allocation: its lexer drops
 * the character it could not save (a parsed string comes out truncated)
 * and its encoder skips an object key it could not write.  So every
 * failure is also noted per thread (tk_json_oom), and the tk_json entry
 * points turn it into TK_ENOMEM.
 */
static _Thread_local bool json_oom;

static void *
json_alloc(size_t n)
{
	void *p = tk_malloc(n);

	if (p == NULL)
		json_oom = true;
	return p;
}

void tk_json_funnel(void) __attribute__((constructor));

void
tk_json_funnel(void)
{
	json_set_alloc_funcs(json_alloc, tk_free);
}

void
tk_json_oom_clear(void)
{
	json_oom = false;
}

bool
tk_json_oom(void)
{
	return json_oom;
}

int
tk_json_depth_check(const char *p, size_t n, unsigned max_depth)
{
	unsigned depth = 0;
	int in_str = 0, esc = 0;

	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		if (in_str) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				in_str = 0;
			continue;
		}
		switch (c) {
		case '"':
			in_str = 1;
			break;
		case '[':
		case '{':
			if (++depth > max_depth)
				return TK_EPROTO;
			break;
		case ']':
		case '}':
			if (depth > 0)
				depth--;
			break;
		default:
			break;
		}
	}
	return 0;
}

int
tk_json_parse(json_t **out, const char *p, size_t n,
    const tk_json_limits *lim, char *err, size_t errlen)
{
	size_t max_bytes = lim && lim->max_bytes ? lim->max_bytes :
	    TK_JSON_DEFAULT_MAX_BYTES;
	unsigned max_depth = lim && lim->max_depth ? lim->max_depth :
	    TK_JSON_DEFAULT_MAX_DEPTH;
	json_error_t je;
	json_t *v;

	if (p == NULL && n > 0)
		return TK_EINVAL;
	if (n > max_bytes) {
		if (err)
			snprintf(err, errlen, "JSON of %zu bytes exceeds the "
			    "limit of %zu", n, max_bytes);
		return TK_EMSGSIZE;
	}
	if (tk_json_depth_check(p, n, max_depth) != 0) {
		if (err)
			snprintf(err, errlen, "JSON nests deeper than %u levels",
			    max_depth);
		return TK_EPROTO;
	}
	if (tk_fault_hit("json_parse"))
		return TK_ENOMEM;
	/* JSON_ALLOW_NUL: Go strings may carry \u0000; lengths stay exact. */
	tk_json_oom_clear();
	v = json_loadb(p ? p : "", n, JSON_ALLOW_NUL, &je);
	if (tk_json_oom()) { /* maybe a value cut short: not this JSON */
		json_decref(v);
		if (err)
			snprintf(err, errlen, "out of memory");
		return TK_ENOMEM;
	}
	if (v == NULL) {
		if (err)
			snprintf(err, errlen, "line %d column %d: %s", je.line,
			    je.column, je.text);
		return TK_EPROTO;
	}
	*out = v;
	return 0;
}

static int
lookup(const json_t *obj, const char *key, json_t **v)
{
	json_t *x;

	if (!json_is_object(obj))
		return TK_EPROTO;
	x = json_object_get(obj, key);
	if (x == NULL || json_is_null(x))
		return TK_ENOENT;
	*v = x;
	return 0;
}

int
tk_json_get_int64(const json_t *obj, const char *key, int64_t *out)
{
	json_t *v;
	int rv = lookup(obj, key, &v);

	if (rv != 0)
		return rv;
	if (!json_is_integer(v))
		return TK_EPROTO;
	*out = (int64_t)json_integer_value(v);
	return 0;
}

int
tk_json_get_uint64(const json_t *obj, const char *key, uint64_t *out)
{
	int64_t v;
	int rv = tk_json_get_int64(obj, key, &v);

	if (rv != 0)
		return rv;
	if (v < 0)
		return TK_EPROTO;
	*out = (uint64_t)v;
	return 0;
}

int
tk_json_get_bool(const json_t *obj, const char *key, bool *out)
{
	json_t *v;
	int rv = lookup(obj, key, &v);

	if (rv != 0)
		return rv;
	if (!json_is_boolean(v))
		return TK_EPROTO;
	*out = json_is_true(v);
	return 0;
}

int
tk_json_get_str(const json_t *obj, const char *key, const char **out,
    size_t *len)
{
	json_t *v;
	int rv = lookup(obj, key, &v);

	if (rv != 0)
		return rv;
	if (!json_is_string(v))
		return TK_EPROTO;
	*out = json_string_value(v);
	if (len != NULL)
		*len = json_string_length(v);
	return 0;
}

int
tk_json_get_object(const json_t *obj, const char *key, json_t **out)
{
	json_t *v;
	int rv = lookup(obj, key, &v);

	if (rv != 0)
		return rv;
	if (!json_is_object(v))
		return TK_EPROTO;
	*out = v;
	return 0;
}

int
tk_json_get_array(const json_t *obj, const char *key, size_t max,
    json_t **out)
{
	json_t *v;
	int rv = lookup(obj, key, &v);

	if (rv != 0)
		return rv;
	if (!json_is_array(v))
		return TK_EPROTO;
	if (json_array_size(v) > max)
		return TK_EMSGSIZE;
	*out = v;
	return 0;
}

static int
get_key(const json_t *obj, const char *key, const char *prefix, uint8_t *out)
{
	const char *s;
	size_t n;
	int rv = tk_json_get_str(obj, key, &s, &n);

	if (rv != 0)
		return rv;
	return tk_key_parse(out, prefix, s, n) == 0 ? 0 : TK_EPROTO;
}

int
tk_json_get_node_pub(const json_t *obj, const char *key, tk_node_pub *out)
{
	return get_key(obj, key, TK_PREFIX_NODE_PUB, out->b);
}

int
tk_json_get_machine_pub(const json_t *obj, const char *key,
    tk_machine_pub *out)
{
	return get_key(obj, key, TK_PREFIX_MACHINE_PUB, out->b);
}

int
tk_json_get_disco_pub(const json_t *obj, const char *key, tk_disco_pub *out)
{
	return get_key(obj, key, TK_PREFIX_DISCO_PUB, out->b);
}

int
tk_json_get_prefix(const json_t *obj, const char *key, tk_ipprefix *out)
{
	const char *s;
	size_t n;
	int rv = tk_json_get_str(obj, key, &s, &n);

	if (rv != 0)
		return rv;
	return tk_ipprefix_parse(out, s, n) == 0 ? 0 : TK_EPROTO;
}

int
tk_json_get_ipport(const json_t *obj, const char *key, tk_ipport *out)
{
	const char *s;
	size_t n;
	int rv = tk_json_get_str(obj, key, &s, &n);

	if (rv != 0)
		return rv;
	return tk_ipport_parse(out, s, n) == 0 ? 0 : TK_EPROTO;
}

int
tk_json_get_time(const json_t *obj, const char *key, tk_json_time *out)
{
	const char *s;
	size_t n;
	int rv = tk_json_get_str(obj, key, &s, &n);

	if (rv != 0)
		return rv;
	return tk_json_time_parse(out, s, n);
}

static int
set_new(json_t *obj, const char *key, json_t *v)
{
	if (v == NULL)
		return TK_ENOMEM;
	return json_object_set_new(obj, key, v) == 0 ? 0 : TK_ENOMEM;
}

int
tk_json_set_int64(json_t *obj, const char *key, int64_t v)
{
	return set_new(obj, key, json_integer((json_int_t)v));
}

int
tk_json_set_bool(json_t *obj, const char *key, bool v)
{
	return set_new(obj, key, json_boolean(v));
}

int
tk_json_set_str(json_t *obj, const char *key, const char *v)
{
	return set_new(obj, key, json_string(v));
}

int
tk_json_set_key(json_t *obj, const char *key, const char *prefix,
    const uint8_t k[TK_KEY_LEN])
{
	char text[TK_KEY_TEXT_MAX];

	tk_key_format(text, prefix, k);
	return set_new(obj, key, json_string(text));
}

int
tk_json_set_prefix(json_t *obj, const char *key, const tk_ipprefix *p)
{
	char text[TK_NETADDR_TEXT_MAX];

	tk_ipprefix_format(p, text);
	return set_new(obj, key, json_string(text));
}

/*
 * Not json_dumps: when growing its buffer fails while writing an object
 * key, jansson 2.14 goes on without the key and returns malformed JSON
 * (seen under fault injection: {"Version":113,:"nodekey:..."}).  Writing
 * into a buffer of the measured size cannot fail part way; what can fail
 * (the cycle check's table) fails the whole dump.
 */
int
tk_json_dump(const json_t *v, char **out, size_t *len)
{
	const size_t flags = JSON_COMPACT | JSON_ENCODE_ANY;
	size_t n;
	char *s;

	tk_json_oom_clear();
	n = json_dumpb(v, NULL, 0, flags);

	if (n == 0) /* no JSON is 0 bytes long: an error */
		return v == NULL ? TK_EINVAL : TK_ENOMEM;
	if ((s = tk_malloc(n + 1)) == NULL)
		return TK_ENOMEM;
	if (json_dumpb(v, s, n, flags) != n || tk_json_oom()) {
		tk_free(s);
		return TK_ENOMEM;
	}
	s[n] = '\0';
	*out = s;
	if (len != NULL)
		*len = n;
	return 0;
}
