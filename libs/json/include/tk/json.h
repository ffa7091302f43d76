/*
 * JSON helpers over jansson for tailcfg types (control-protocol.md §6–§11).
 *
 * - tk_json_parse() is the one entry point for untrusted JSON: a size cap, a
 *   nesting-depth cap checked by a cheap pre-scan (jansson has none), and
 *   line/column errors.  Duplicate object keys are accepted, last one wins,
 *   as Go's encoding/json does for control-server JSON.
 * - Getters never crash on wrong types: TK_ENOENT when the key is absent or
 *   JSON null (Go's omitempty/nil), TK_EPROTO for a wrong type or a bad
 *   value, 0 and the out-parameter written otherwise.
 * - Integers are int64 end to end (jansson's json_int_t is long long), so
 *   64-bit node IDs survive; floats are never accepted where Go has ints.
 */
#ifndef TK_JSON_H
#define TK_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "tk/keys.h"
#include "tk/netaddr.h"

typedef struct tk_json_limits {
	size_t max_bytes;   /* 0: TK_JSON_DEFAULT_MAX_BYTES */
	unsigned max_depth; /* 0: TK_JSON_DEFAULT_MAX_DEPTH */
} tk_json_limits;

/* a 100,000-peer MapResponse is ~100 MB (ctrld's map caps, mapstate.h) */
#define TK_JSON_DEFAULT_MAX_BYTES (256u << 20)
#define TK_JSON_DEFAULT_MAX_DEPTH 64	      /* tailcfg nests < 10 deep */

/*
 * Whether a jansson allocation failed on this thread since the last clear.
 * jansson 2.14 sometimes carries on after one (a truncated string, a
 * missing key); code building JSON with jansson directly clears this first
 * and checks it before trusting the result.  tk_json_parse and
 * tk_json_dump do so themselves.
 */
void tk_json_oom_clear(void);
bool tk_json_oom(void);

/* err (may be NULL) gets e.g. "line 3 column 7: ...".  *out is a new ref.
 * TK_ENOMEM when out of memory, TK_EPROTO for bad JSON. */
int tk_json_parse(json_t **out, const char *p, size_t n,
    const tk_json_limits *lim, char *err, size_t errlen);
/* Depth pre-scan alone: TK_EPROTO if any point nests deeper than max. */
int tk_json_depth_check(const char *p, size_t n, unsigned max_depth);

int tk_json_get_int64(const json_t *obj, const char *key, int64_t *out);
int tk_json_get_uint64(const json_t *obj, const char *key, uint64_t *out);
int tk_json_get_bool(const json_t *obj, const char *key, bool *out);
/* Borrowed: valid while obj lives.  *len excludes the NUL. */
int tk_json_get_str(const json_t *obj, const char *key, const char **out,
    size_t *len);
int tk_json_get_object(const json_t *obj, const char *key, json_t **out);
/* Array with at most max elements (TK_EMSGSIZE beyond). */
int tk_json_get_array(const json_t *obj, const char *key, size_t max,
    json_t **out);

int tk_json_get_node_pub(const json_t *obj, const char *key, tk_node_pub *out);
int tk_json_get_machine_pub(const json_t *obj, const char *key,
    tk_machine_pub *out);
int tk_json_get_disco_pub(const json_t *obj, const char *key,
    tk_disco_pub *out);
int tk_json_get_prefix(const json_t *obj, const char *key, tk_ipprefix *out);
int tk_json_get_ipport(const json_t *obj, const char *key, tk_ipport *out);

/* Go time.Time in JSON (RFC 3339 with up to 9 fraction digits). */
typedef struct tk_json_time {
	int64_t sec; /* Unix seconds */
	int32_t nsec;
	bool zero;   /* Go's zero time, "0001-01-01T00:00:00Z" */
} tk_json_time;

int tk_json_time_parse(tk_json_time *out, const char *s, size_t n);
/* RFC 3339 in UTC with trailing fraction zeros trimmed (Go RFC3339Nano). */
void tk_json_time_format(const tk_json_time *t, char out[48]);
int tk_json_get_time(const json_t *obj, const char *key, tk_json_time *out);

/* Builders: 0 or TK_ENOMEM. */
int tk_json_set_int64(json_t *obj, const char *key, int64_t v);
int tk_json_set_bool(json_t *obj, const char *key, bool v);
int tk_json_set_str(json_t *obj, const char *key, const char *v);
/* key text form: prefix + 64 hex (e.g. TK_PREFIX_NODE_PUB). */
int tk_json_set_key(json_t *obj, const char *key, const char *prefix,
    const uint8_t k[TK_KEY_LEN]);
int tk_json_set_prefix(json_t *obj, const char *key, const tk_ipprefix *p);
/* Compact encoding into a NUL-terminated string (tk_free()); TK_ENOMEM,
 * never a partial encoding.  Use this, not json_dumps (see json.c).
 * jansson allocates through tk_malloc (set up by this library), so any
 * string it returns is freed with tk_free. */
int tk_json_dump(const json_t *v, char **out, size_t *len);

#endif
