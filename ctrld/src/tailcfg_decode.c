/*
 * MapResponse JSON -> decoded nodes and packed tk.bus.v1 pieces, for the
 * map state (mapstate.c).
 *
 * The JSON is read from a tape (tk/json_tape.h: strict RFC 8259 as Go's
 * encoding/json, sizes and depth capped, strings and numbers decoded when
 * read).  Decoding follows Go's encoding/json v1 rules for tailcfg's
 * types: null = absent, field names matched exactly first, then
 * ASCII-case-insensitively, unknown fields ignored, integers only as
 * integer literals within the Go type's range, keys/prefixes/addresses/
 * times parsed strictly.
 *
 * Encodings are written with pbwrite_int.h; nodes are encoded, frozen and
 * diffed in node_diff.c.
 */
#include <math.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tk/enc.h"
#include "tk/err.h"
#include "tk/json.h"
#include "tk/json_tape.h"
#include "tk/keys.h"
#include "tk/mem.h"
#include "tk/wg_filter.h"
#include "mapstate.h"
#include "pbwrite_int.h"
#include "tailcfg_int.h"

static inline unsigned
jtype(const tk_json_tape *d, uint32_t i)
{
	return tk_json_tape_type(d, i);
}

static inline uint32_t
jaux(const tk_json_tape *d, uint32_t i)
{
	return tk_json_tape_aux(d, i);
}

/* Value i's offsets and (scalars) flags. */
typedef struct jview {
	uint32_t off, end, flags;
} jview;

static inline jview
jv(const tk_json_tape *d, uint32_t i)
{
	return (jview){ tk_json_tape_off(d, i), tk_json_tape_end(d, i),
		tk_json_tape_container(d, i) ? 0 : tk_json_tape_aux(d, i) };
}

static int
jerr(char *err, size_t errlen, size_t off, const char *what)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "JSON offset %zu: %s", off, what);
	return TK_EPROTO;
}

/* ---------------------------------------------------------------------
 * Decoding context, errors with a path
 * ------------------------------------------------------------------ */

typedef struct dctx {
	tk_json_tape d;
	bool copy; /* strings kept go into the arena: the text goes early */
	ctrldi_arena scratch; /* one peer's decode, until it is frozen */
	ctrldi_pbw fz;	      /* its encoding */
	/* release(): how far the array being decoded is released (text
	 * offset, tape index) */
	uint32_t rel_text, rel_tok;
	ctrldi_arena *a;
	ctrldi_pbw *pb;
	char msg[160];	/* what was wrong */
	char path[160]; /* where, built while unwinding */
	size_t pathlen;
} dctx;

static int
fail(dctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
fail(dctx *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
	va_end(ap);
	c->pathlen = 0;
	c->path[0] = '\0';
	return TK_EPROTO;
}

static int
oom(dctx *c)
{
	snprintf(c->msg, sizeof(c->msg), "out of memory");
	return TK_ENOMEM;
}

/* Prepends a path segment to the error being unwound; returns rv. */
static int
at(dctx *c, int rv, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
at(dctx *c, int rv, const char *fmt, ...)
{
	char seg[96];
	va_list ap;
	size_t l;

	if (rv != TK_EPROTO)
		return rv;
	va_start(ap, fmt);
	vsnprintf(seg, sizeof(seg), fmt, ap);
	va_end(ap);
	l = strlen(seg);
	if (c->pathlen + l + 1 > sizeof(c->path))
		return rv;
	memmove(c->path + l, c->path, c->pathlen + 1);
	memcpy(c->path, seg, l);
	c->pathlen += l;
	return rv;
}

static const char *
tname(unsigned t)
{
	switch (t) {
	case TK_JSON_NULL: return "null";
	case TK_JSON_FALSE: case TK_JSON_TRUE: return "bool";
	case TK_JSON_NUM: return "number";
	case TK_JSON_STR: return "string";
	case TK_JSON_ARR: return "array";
	default: return "object";
	}
}

static int
want(dctx *c, uint32_t ti, unsigned type, const char *what)
{
	unsigned t = jtype(&c->d, ti);

	if (t == type || (type == TK_JSON_TRUE && t == TK_JSON_FALSE))
		return 0;
	return fail(c, "%s expected, got %s", what, tname(t));
}

/* ---------------------------------------------------------------------
 * Strings
 * ------------------------------------------------------------------ */

/* Go's encoding/json unquote (tk_json_unquote) into the arena. */
static int
unquote(dctx *c, const uint8_t *s, size_t n, bool esc, ctrldi_str *out)
{
	uint8_t *start;
	size_t len;

	if (n > (SIZE_MAX - 1) / 3 ||
	    (start = ctrldi_arena_alloc(c->a, 3 * n + 1)) == NULL)
		return oom(c);
	len = tk_json_unquote(start, s, n, esc);
	out->p = (const char *)start;
	out->n = (uint32_t)len;
	return 0;
}
/* s[0..n) as it is: in the text, or an arena copy when c->copy and it
 * is kept past the decode. */
static int
verbatim(dctx *c, const uint8_t *s, size_t n, bool keep, ctrldi_str *out)
{
	if (keep && c->copy && n > 0) {
		char *p = ctrldi_arena_alloc(c->a, n);

		if (p == NULL)
			return oom(c);
		memcpy(p, s, n);
		s = (const uint8_t *)p;
	}
	out->p = (const char *)s;
	out->n = (uint32_t)n;
	return 0;
}

/* The string value of token ti (must be a string); keep: it outlives the
 * decode (see verbatim). */
static int
jstr_at(dctx *c, uint32_t ti, ctrldi_str *out, bool keep)
{
	const jview tv = jv(&c->d, ti), *t = &tv;
	const uint8_t *s = (const uint8_t *)c->d.p + t->off;
	size_t n = t->end - t->off;
	uint32_t f = t->flags & (TK_JSON_ESC | TK_JSON_HIGH);

	if (f == 0 || (f == TK_JSON_HIGH && tk_json_utf8_valid(s, n)))
		return verbatim(c, s, n, keep, out);
	return unquote(c, s, n, (f & TK_JSON_ESC) != 0, out);
}

static int
jstr(dctx *c, uint32_t ti, ctrldi_str *out)
{
	return jstr_at(c, ti, out, true);
}

/* A raw JSON value (tailcfg.RawMessage), invalid UTF-8 replaced. */
static int
jraw(dctx *c, uint32_t ti, ctrldi_str *out)
{
	const jview tv = jv(&c->d, ti), *t = &tv;
	uint32_t off = t->off, end = t->end;
	const uint8_t *s;

	if (jtype(&c->d, ti) == TK_JSON_STR) {
		off--;
		end++;
	}
	s = (const uint8_t *)c->d.p + off;
	if (tk_json_utf8_valid(s, end - off))
		return verbatim(c, s, end - off, true, out);
	return unquote(c, s, end - off, false, out);
}

static int
str_qcmp(const void *a, const void *b)
{
	return ctrldi_str_cmp(*(const ctrldi_str *)a, *(const ctrldi_str *)b);
}

/* ---------------------------------------------------------------------
 * Objects
 * ------------------------------------------------------------------ */

/*
 * How a field is read when its object is decoded by table
 * (fields_decode into a struct, fields_encode into protobuf); K_HAND
 * fields are read by the caller.
 */
typedef enum fkind {
	K_HAND,
	/* into the struct at off (lists: count at cnt) */
	K_ID,	      /* int64 1..INT64_MAX */
	K_I64,	      /* int64 */
	K_I32,	      /* int32 */
	K_BOOL,	      /* bool */
	K_FLAG,	      /* true sets `bit` in the flags word */
	K_STR,	      /* ctrldi_str */
	K_IGNORE_STR, /* a string, type-checked only */
	K_BASE64,     /* ctrldi_str of the decoded bytes */
	K_TIME,	      /* ctrldi_time */
	K_NODE_KEY,   /* uint8_t[32], "nodekey:" */
	K_MACHINE_KEY,
	K_DISCO_KEY,
	K_ADDR,	      /* tk_ipaddr */
	K_PREFIXES,   /* tk_ipprefix *, uint32_t */
	K_IPPORTS,    /* tk_ipport *, uint32_t */
	K_STRINGS,    /* ctrldi_str *, uint32_t */
	K_CAPMAP,     /* ctrldi_capent *, uint32_t */
	/* into protobuf field `field`, with protobuf-c's presence rules */
	K_PB_STR,     /* written when non-empty */
	K_PB_I32,     /* when non-zero */
	K_PB_BOOL,    /* when true */
	K_PB_DBL,     /* when non-zero */
	K_CHECK_I32   /* an int32, type-checked only */
} fkind;

/*
 * One field of a tailcfg object: its JSON name, and for table decoding its
 * kind and destination.  `bit` (struct kinds) is set in the flags word
 * when the field is present and not null (K_FLAG: when true).
 */
typedef struct fdesc {
	const char *name;
	uint8_t len;
	uint8_t kind;
	uint16_t off, cnt;
	uint32_t bit;
	unsigned field;
} fdesc;

/* decoded by hand */
#define F(s) { s, sizeof(s) - 1, K_HAND, 0, 0, 0, 0 }
/* into member m of struct T */
#define FS(s, k, T, m, b) \
	{ s, sizeof(s) - 1, k, offsetof(T, m), 0, b, 0 }
/* a list into members m (array) and c (count) of struct T */
#define FL(s, k, T, m, c, b) \
	{ s, sizeof(s) - 1, k, offsetof(T, m), offsetof(T, c), b, 0 }
/* a bool that sets bit b when true */
#define FF(s, b) { s, sizeof(s) - 1, K_FLAG, 0, 0, b, 0 }
/* a string, type-checked only */
#define FI(s) { s, sizeof(s) - 1, K_IGNORE_STR, 0, 0, 0, 0 }
/* into protobuf field f (F_STR(...) etc.) */
#define FP(s, k, f) { s, sizeof(s) - 1, k, 0, 0, 0, f }

/*
 * Sorts the members of object ti into slot[] by field (0: absent or
 * null; a later duplicate wins).  Go's encoder writes fields in struct
 * order, so the search starts after the last match.
 */
static int
jfields(dctx *c, uint32_t ti, const fdesc *fd, size_t nf, uint32_t *slot,
    const char *what)
{
	const tk_json_tape *d = &c->d;
	uint32_t count, k = ti + 1;
	size_t hint = 0;
	int rv;

	if ((rv = want(c, ti, TK_JSON_OBJ, what)) != 0)
		return rv;
	memset(slot, 0, nf * sizeof(*slot));
	count = jaux(d, ti);
	for (uint32_t m = 0; m < count; m++) {
		uint32_t v = k + 1;
		ctrldi_str key;
		size_t f, j;

		if (tk_json_tape_aux(d, k) & (TK_JSON_ESC | TK_JSON_HIGH)) {
			if ((rv = jstr(c, k, &key)) != 0)
				return rv;
		} else {
			key.p = d->p + tk_json_tape_off(d, k);
			key.n = tk_json_tape_end(d, k) - tk_json_tape_off(d, k);
		}
		for (j = 0; j < nf; j++) {
			f = hint + j < nf ? hint + j : hint + j - nf;
			if (fd[f].len == key.n &&
			    memcmp(fd[f].name, key.p, key.n) == 0)
				break;
		}
		if (j == nf) {
			for (f = 0; f < nf; f++)
				if (fd[f].len == key.n &&
				    strncasecmp(fd[f].name, key.p, key.n) == 0)
					break;
		}
		if (j < nf || f < nf) {
			slot[f] = jtype(d, v) == TK_JSON_NULL ? 0 : v;
			hint = f + 1 < nf ? f + 1 : 0;
		}
		k = tk_json_tape_next(d, v);
	}
	return 0;
}

/* Whether object ti has member `f` (matched as jfields does) = null. */
static bool
jnull_member(dctx *c, uint32_t ti, fdesc f)
{
	const tk_json_tape *d = &c->d;
	uint32_t count = jaux(d, ti), k = ti + 1;
	bool null = false;

	for (uint32_t m = 0; m < count; m++) {
		ctrldi_str key;

		if (jstr(c, k, &key) == 0 && key.n == f.len &&
		    strncasecmp(key.p, f.name, f.len) == 0)
			null = jtype(d, k + 1) == TK_JSON_NULL; /* the last one counts */
		k = tk_json_tape_next(d, k + 1);
	}
	return null;
}

/* ---------------------------------------------------------------------
 * Scalars
 * ------------------------------------------------------------------ */

/* An integer literal in [lo, hi] (Go: strconv.ParseInt + range check). */
static int
jint(dctx *c, uint32_t ti, int64_t lo, int64_t hi, int64_t *out)
{
	const jview tv = jv(&c->d, ti), *t = &tv;
	const char *s = c->d.p + t->off;
	size_t n = t->end - t->off, i = 0;
	uint64_t v = 0, lim;
	bool neg = false;
	int rv;

	if ((rv = want(c, ti, TK_JSON_NUM, "integer")) != 0)
		return rv;
	if (t->flags & TK_JSON_FLOAT)
		return fail(c, "integer expected, got %.*s", (int)TK_MIN(n, 32),
		    s);
	if (s[0] == '-') {
		neg = true;
		i = 1;
	}
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < n; i++) {
		unsigned dgt = (unsigned)(s[i] - '0');

		if (v > (lim - dgt) / 10)
			return fail(c, "integer %.*s out of range",
			    (int)TK_MIN(n, 32), s);
		v = v * 10 + dgt;
	}
	{
		int64_t r = neg ? (int64_t)(0 - v) : (int64_t)v;

		if (r < lo || r > hi)
			return fail(c, "integer %.*s out of range",
			    (int)TK_MIN(n, 32), s);
		*out = r;
	}
	return 0;
}

static int
jint32(dctx *c, uint32_t ti, int32_t *out)
{
	int64_t v;
	int rv = jint(c, ti, INT32_MIN, INT32_MAX, &v);

	if (rv == 0)
		*out = (int32_t)v;
	return rv;
}

static int
jfloat(dctx *c, uint32_t ti, double *out)
{
	const jview tv = jv(&c->d, ti), *t = &tv;
	size_t n = t->end - t->off;
	char buf[64], *end, *s = buf;
	int rv;

	if ((rv = want(c, ti, TK_JSON_NUM, "number")) != 0)
		return rv;
	if (n >= sizeof(buf)) {
		if ((s = ctrldi_arena_alloc(c->a, n + 1)) == NULL)
			return oom(c);
	}
	memcpy(s, c->d.p + t->off, n);
	s[n] = '\0';
	*out = strtod(s, &end);
	if (isinf(*out))
		return fail(c, "number %.32s out of range", s);
	return 0;
}

static int
jbool(dctx *c, uint32_t ti, bool *out)
{
	int rv = want(c, ti, TK_JSON_TRUE, "bool");

	if (rv == 0)
		*out = jtype(&c->d, ti) == TK_JSON_TRUE;
	return rv;
}

static int
jstring(dctx *c, uint32_t ti, ctrldi_str *out)
{
	int rv = want(c, ti, TK_JSON_STR, "string");

	return rv != 0 ? rv : jstr(c, ti, out);
}

/* The same for a string only looked at during the decode. */
static int
jstring_tmp(dctx *c, uint32_t ti, ctrldi_str *out)
{
	int rv = want(c, ti, TK_JSON_STR, "string");

	return rv != 0 ? rv : jstr_at(c, ti, out, false);
}

/* Raw text of a string token without escapes (keys, addresses, times). */
static int
jtext(dctx *c, uint32_t ti, const char *what, const char **s, size_t *n)
{
	ctrldi_str v;
	int rv;

	if ((rv = want(c, ti, TK_JSON_STR, what)) != 0)
		return rv;
	if ((rv = jstr_at(c, ti, &v, false)) != 0)
		return rv;
	*s = v.p;
	*n = v.n;
	return 0;
}

static int
jkey(dctx *c, uint32_t ti, const char *prefix, uint8_t out[32])
{
	const char *s;
	size_t n;
	int rv;

	if ((rv = jtext(c, ti, "key string", &s, &n)) != 0)
		return rv;
	if (tk_key_parse(out, prefix, s, n) != 0)
		return fail(c, "bad %s key \"%.*s\"", prefix,
		    (int)TK_MIN(n, 80), s);
	return 0;
}

static int
jprefix(dctx *c, uint32_t ti, tk_ipprefix *out)
{
	const char *s;
	size_t n;
	int rv;

	if ((rv = jtext(c, ti, "prefix string", &s, &n)) != 0)
		return rv;
	if (tk_ipprefix_parse(out, s, n) != 0)
		return fail(c, "bad IP prefix \"%.*s\"", (int)TK_MIN(n, 64), s);
	return 0;
}

static int
jipport(dctx *c, uint32_t ti, tk_ipport *out)
{
	const char *s;
	size_t n;
	int rv;

	if ((rv = jtext(c, ti, "ip:port string", &s, &n)) != 0)
		return rv;
	if (tk_ipport_parse(out, s, n) != 0)
		return fail(c, "bad ip:port \"%.*s\"", (int)TK_MIN(n, 64), s);
	return 0;
}

/* netip.Addr: "" is the zero Addr (family 0). */
static int
jaddr(dctx *c, uint32_t ti, tk_ipaddr *out)
{
	const char *s;
	size_t n;
	int rv;

	if ((rv = jtext(c, ti, "IP address string", &s, &n)) != 0)
		return rv;
	if (n == 0) {
		memset(out, 0, sizeof(*out));
		return 0;
	}
	if (tk_ipaddr_parse(out, s, n) != 0)
		return fail(c, "bad IP address \"%.*s\"", (int)TK_MIN(n, 64),
		    s);
	return 0;
}

static int
jtime(dctx *c, uint32_t ti, ctrldi_time *out)
{
	tk_json_time t;
	const char *s;
	size_t n;
	int rv;

	if ((rv = jtext(c, ti, "time string", &s, &n)) != 0)
		return rv;
	if (tk_json_time_parse(&t, s, n) != 0)
		return fail(c, "bad time \"%.*s\"", (int)TK_MIN(n, 64), s);
	out->sec = t.sec;
	out->nsec = t.nsec;
	out->zero = t.zero;
	return 0;
}

/* []byte: standard base64 with padding (Go's encoding/json). */
static int
jbase64(dctx *c, uint32_t ti, ctrldi_str *out)
{
	const char *s;
	size_t n, got;
	uint8_t *b;
	int rv;

	if ((rv = jtext(c, ti, "base64 string", &s, &n)) != 0)
		return rv;
	if ((b = ctrldi_arena_alloc(c->a, n / 4 * 3 + 3)) == NULL)
		return oom(c);
	if (n > 0 && tk_base64_decode(b, n / 4 * 3 + 3, &got, s, n) != 0)
		return fail(c, "bad base64");
	out->p = (const char *)b;
	out->n = n > 0 ? (uint32_t)got : 0;
	return 0;
}

/* An array; *count elements, first at ti + 1. */
static int
jarr(dctx *c, uint32_t ti, uint32_t *count)
{
	int rv = want(c, ti, TK_JSON_ARR, "array");

	if (rv == 0)
		*count = jaux(&c->d, ti);
	return rv;
}

/* A map key that is an int in Go (strconv.ParseInt base 10). */
static int
jintkey(dctx *c, uint32_t ki, int64_t lo, int64_t hi, int64_t *out)
{
	ctrldi_str k;
	uint64_t v = 0, lim;
	size_t i = 0;
	bool neg = false;
	int rv;

	if ((rv = jstr(c, ki, &k)) != 0)
		return rv;
	if (k.n > 0 && (k.p[0] == '-' || k.p[0] == '+')) {
		neg = k.p[0] == '-';
		i = 1;
	}
	if (i == k.n)
		return fail(c, "bad integer key \"%.*s\"", (int)TK_MIN(k.n, 32),
		    k.p);
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < k.n; i++) {
		unsigned dgt = (unsigned)(k.p[i] - '0');

		if (dgt > 9 || v > (lim - dgt) / 10)
			return fail(c, "bad integer key \"%.*s\"",
			    (int)TK_MIN(k.n, 32), k.p);
		v = v * 10 + dgt;
	}
	{
		int64_t r = neg ? (int64_t)(0 - v) : (int64_t)v;

		if (r < lo || r > hi)
			return fail(c, "key %.*s out of range",
			    (int)TK_MIN(k.n, 32), k.p);
		*out = r;
	}
	return 0;
}

/*
 * A JSON array decoded element by element: fn(c, tape index, element)
 * fills each of n elements of `size` bytes in one arena array (size 0:
 * checked only, *out untouched).  An element's error is reported at
 * "[i]".
 */
typedef int (*jelem_fn)(dctx *c, uint32_t ti, void *out);

static int
jlist(dctx *c, uint32_t ti, size_t size, jelem_fn fn, void **out,
    uint32_t *nout)
{
	uint32_t n, k = ti + 1;
	uint8_t *v = NULL;
	_Alignas(16) uint8_t scratch[32]; /* size 0: an element checked */
	int rv;

	if ((rv = jarr(c, ti, &n)) != 0)
		return rv;
	if (size > 0 &&
	    (v = ctrldi_arena_alloc(c->a, (size_t)n * size)) == NULL)
		return oom(c);
	for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(&c->d, k))
		if ((rv = fn(c, k, size ? v + (size_t)i * size : scratch)) != 0)
			return at(c, rv, "[%u]", i);
	if (size > 0) {
		*out = v;
		*nout = n;
	}
	return 0;
}

/* []string: null elements are "" (Go). */
static int
e_string(dctx *c, uint32_t ti, void *out)
{
	ctrldi_str *s = out;

	s->p = "";
	s->n = 0;
	return jtype(&c->d, ti) == TK_JSON_NULL ? 0 : jstring(c, ti, s);
}

/* []netip.Prefix, []netip.AddrPort: null elements refused */
static int
e_prefix(dctx *c, uint32_t ti, void *out)
{
	return jprefix(c, ti, out);
}

static int
e_ipport(dctx *c, uint32_t ti, void *out)
{
	return jipport(c, ti, out);
}

/* []netip.Addr checked only: null elements pass (Go's zero Addr) */
static int
e_addr(dctx *c, uint32_t ti, void *out)
{
	_Static_assert(sizeof(tk_ipaddr) <= 32, "jlist scratch");
	return jtype(&c->d, ti) == TK_JSON_NULL ? 0 : jaddr(c, ti, out);
}

static int
jstrings(dctx *c, uint32_t ti, ctrldi_str **out, uint32_t *nout)
{
	void *v = NULL;
	int rv = jlist(c, ti, sizeof(**out), e_string, &v, nout);

	if (rv == 0)
		*out = v;
	return rv;
}

static int
jprefixes(dctx *c, uint32_t ti, tk_ipprefix **out, uint32_t *nout)
{
	void *v = NULL;
	int rv = jlist(c, ti, sizeof(**out), e_prefix, &v, nout);

	if (rv == 0)
		*out = v;
	return rv;
}

static int
jipports(dctx *c, uint32_t ti, tk_ipport **out, uint32_t *nout)
{
	void *v = NULL;
	int rv = jlist(c, ti, sizeof(**out), e_ipport, &v, nout);

	if (rv == 0)
		*out = v;
	return rv;
}

static int
jaddrs_check(dctx *c, uint32_t ti)
{
	return jlist(c, ti, 0, e_addr, NULL, NULL);
}

static int
cap_cmp(const void *a, const void *b)
{
	const ctrldi_capent *x = a, *y = b;
	int r = ctrldi_str_cmp(x->name, y->name);

	/* equal names: later first, so the first of a run is the winner */
	if (r == 0)
		r = x < y ? 1 : x > y ? -1 : 0;
	return r;
}

/* A map[string][]RawMessage (NodeCapMap, PeerCapMap): sorted, last wins. */
static int
jcapmap(dctx *c, uint32_t ti, ctrldi_capent **out, uint32_t *nout)
{
	const tk_json_tape *d = &c->d;
	uint32_t n, k = ti + 1, w = 0;
	ctrldi_capent *v;
	int rv;

	if ((rv = want(c, ti, TK_JSON_OBJ, "object")) != 0)
		return rv;
	n = jaux(d, ti);
	if ((v = ctrldi_arena_alloc(c->a, (size_t)n * sizeof(*v))) == NULL)
		return oom(c);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t val = k + 1, nv = 0, e = val + 1;

		if ((rv = jstr(c, k, &v[i].name)) != 0)
			return rv;
		v[i].vals = NULL;
		v[i].nvals = 0;
		if (jtype(d, val) != TK_JSON_NULL) {
			if ((rv = jarr(c, val, &nv)) != 0)
				return at(c, rv, "[\"%.*s\"]",
				    (int)TK_MIN(v[i].name.n, 40), v[i].name.p);
			v[i].vals = ctrldi_arena_alloc(c->a,
			    (size_t)nv * sizeof(ctrldi_str));
			if (v[i].vals == NULL)
				return oom(c);
			for (uint32_t j = 0; j < nv; j++, e = tk_json_tape_next(d, e))
				if ((rv = jraw(c, e, &v[i].vals[j])) != 0)
					return rv;
			v[i].nvals = nv;
		}
		k = tk_json_tape_next(d, val);
	}
	if (n > 1) {
		qsort(v, n, sizeof(*v), cap_cmp);
		for (uint32_t i = 0; i < n; i++)
			if (w == 0 || !ctrldi_str_eq(v[w - 1].name, v[i].name))
				v[w++] = v[i];
		n = w;
	}
	*out = v;
	*nout = n;
	return 0;
}

static uint64_t
fnv1a(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

/* Hash of a value's raw text, 0 for an empty array (patchify equality). */
static uint64_t
jhash(const dctx *c, uint32_t ti)
{
	const jview tv = jv(&c->d, ti), *t = &tv;

	if (jtype(&c->d, ti) == TK_JSON_ARR && jaux(&c->d, ti) == 0)
		return 0;
	return fnv1a(c->d.p + t->off, t->end - t->off) | 1;
}

/* ---------------------------------------------------------------------
 * Table decoding: the fields of one object, read by their fdesc
 * ------------------------------------------------------------------ */

/* Field f (token v, not null) into the struct at base. */
static int
field_decode(dctx *c, const fdesc *f, uint32_t v, void *base,
    uint32_t *flags)
{
	uint8_t *p = (uint8_t *)base + f->off;
	uint32_t *cnt = (uint32_t *)(void *)((uint8_t *)base + f->cnt);
	ctrldi_str ign;
	bool b = false;
	int rv;

	switch ((fkind)f->kind) {
	case K_ID:
		rv = jint(c, v, 1, INT64_MAX, (int64_t *)(void *)p);
		break;
	case K_I64:
		rv = jint(c, v, INT64_MIN, INT64_MAX, (int64_t *)(void *)p);
		break;
	case K_I32:
		rv = jint32(c, v, (int32_t *)(void *)p);
		break;
	case K_BOOL:
		rv = jbool(c, v, (bool *)(void *)p);
		break;
	case K_FLAG:
		if ((rv = jbool(c, v, &b)) == 0 && b)
			*flags |= f->bit;
		return rv;
	case K_STR:
		rv = jstring(c, v, (ctrldi_str *)(void *)p);
		break;
	case K_IGNORE_STR:
		rv = jstring_tmp(c, v, &ign);
		break;
	case K_BASE64:
		rv = jbase64(c, v, (ctrldi_str *)(void *)p);
		break;
	case K_TIME:
		rv = jtime(c, v, (ctrldi_time *)(void *)p);
		break;
	case K_NODE_KEY:
		rv = jkey(c, v, TK_PREFIX_NODE_PUB, p);
		break;
	case K_MACHINE_KEY:
		rv = jkey(c, v, TK_PREFIX_MACHINE_PUB, p);
		break;
	case K_DISCO_KEY:
		rv = jkey(c, v, TK_PREFIX_DISCO_PUB, p);
		break;
	case K_ADDR:
		rv = jaddr(c, v, (tk_ipaddr *)(void *)p);
		break;
	case K_PREFIXES:
		rv = jprefixes(c, v, (tk_ipprefix **)(void *)p, cnt);
		break;
	case K_IPPORTS:
		rv = jipports(c, v, (tk_ipport **)(void *)p, cnt);
		break;
	case K_STRINGS:
		rv = jstrings(c, v, (ctrldi_str **)(void *)p, cnt);
		break;
	case K_CAPMAP:
		rv = jcapmap(c, v, (ctrldi_capent **)(void *)p, cnt);
		break;
	default:
		return 0; /* K_HAND and the protobuf kinds: not here */
	}
	if (rv == 0)
		*flags |= f->bit;
	return rv;
}

/*
 * The table fields of an object whose members jfields put in slot[], in
 * table order, into the struct at base; flags: its flags word.
 */
static int
fields_decode(dctx *c, const fdesc *fd, size_t nf, const uint32_t *slot,
    void *base, uint32_t *flags)
{
	int rv;

	for (size_t i = 0; i < nf; i++)
		if (slot[i] &&
		    (rv = field_decode(c, &fd[i], slot[i], base, flags)) != 0)
			return at(c, rv, ".%s", fd[i].name);
	return 0;
}

/*
 * The protobuf fields of an object (jfields' slot[]) into w in table
 * order, which is field-number order; w NULL: only checked.
 */
static int
fields_encode(dctx *c, const fdesc *fd, size_t nf, const uint32_t *slot,
    ctrldi_pbw *w)
{
	for (size_t i = 0; i < nf; i++) {
		ctrldi_str str = { "", 0 };
		int32_t i32 = 0;
		double dbl = 0;
		bool b = false;
		uint32_t v = slot[i];
		int rv = 0;

		switch ((fkind)fd[i].kind) {
		case K_PB_STR:
			if (v && (rv = jstring(c, v, &str)) == 0 && w != NULL &&
			    str.n > 0)
				ctrldi_pb_str(w, fd[i].field, str);
			break;
		case K_PB_I32:
		case K_CHECK_I32:
			if (v && (rv = jint32(c, v, &i32)) == 0 && w != NULL &&
			    i32 != 0 && fd[i].kind == K_PB_I32)
				ctrldi_pb_int(w, fd[i].field, i32);
			break;
		case K_PB_BOOL:
			if (v && (rv = jbool(c, v, &b)) == 0 && w != NULL && b)
				ctrldi_pb_bool(w, fd[i].field);
			break;
		case K_PB_DBL:
			if (v && (rv = jfloat(c, v, &dbl)) == 0 && w != NULL &&
			    dbl != 0)
				ctrldi_pb_double(w, fd[i].field, dbl);
			break;
		default:
			break; /* K_HAND: the caller's */
		}
		if (rv != 0)
			return at(c, rv, ".%s", fd[i].name);
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * tailcfg.Node
 * ------------------------------------------------------------------ */

enum {
	NF_ID, NF_STABLE_ID, NF_NAME, NF_USER, NF_SHARER, NF_KEY,
	NF_KEY_EXPIRY, NF_KEY_SIG, NF_MACHINE, NF_DISCO, NF_ADDRESSES,
	NF_ALLOWED, NF_ENDPOINTS, NF_DERP, NF_HOME_DERP, NF_HOSTINFO,
	NF_CREATED, NF_CAP, NF_TAGS, NF_PRIMARY, NF_LAST_SEEN, NF_ONLINE,
	NF_MACHINE_AUTH, NF_CAPABILITIES, NF_CAPMAP, NF_UNSIGNED,
	NF_COMPUTED_NAME, NF_COMPUTED_NAME_HOST, NF_AUDIT_ID, NF_EXPIRED,
	NF_MASQ4, NF_MASQ6, NF_WG_ONLY, NF_JAILED, NF_EXIT_DNS, NF_COUNT
};

#define NS(s, k, m, b)    FS(s, k, ctrldi_node, m, b)
#define NL(s, k, m, c, b) FL(s, k, ctrldi_node, m, c, b)

/*
 * tailcfg.go Node, in struct order (Go's encoder writes them so).
 * ComputedName, ComputedNameWithHost: set by the client
 * (InitDisplayNames), whatever control sends.
 */
static const fdesc node_fd[NF_COUNT] = {
	NS("ID", K_ID, id, 0),
	NS("StableID", K_STR, stable_id, 0),
	NS("Name", K_STR, name, 0),
	NS("User", K_I64, user, 0),
	NS("Sharer", K_I64, sharer, 0),
	NS("Key", K_NODE_KEY, key, 0),
	NS("KeyExpiry", K_TIME, key_expiry, 0),
	NS("KeySignature", K_BASE64, keysig, CTRLDI_N_KEYSIG_NONNIL),
	NS("Machine", K_MACHINE_KEY, machine, 0),
	NS("DiscoKey", K_DISCO_KEY, disco, 0),
	NL("Addresses", K_PREFIXES, addrs, naddrs, 0),
	NL("AllowedIPs", K_PREFIXES, allowed, nallowed, 0),
	NL("Endpoints", K_IPPORTS, eps, neps, CTRLDI_N_EP_NONNIL),
	F("DERP"),
	NS("HomeDERP", K_I32, home_derp, 0),
	F("Hostinfo"),
	NS("Created", K_TIME, created, 0),
	NS("Cap", K_I32, cap, 0),
	NL("Tags", K_STRINGS, tags, ntags, 0),
	NL("PrimaryRoutes", K_PREFIXES, primary, nprimary, 0),
	NS("LastSeen", K_TIME, last_seen, CTRLDI_N_LAST_SEEN),
	F("Online"),
	FF("MachineAuthorized", CTRLDI_N_MACHINE_AUTH),
	NL("Capabilities", K_STRINGS, caps, ncaps, 0),
	NL("CapMap", K_CAPMAP, capmap, ncapmap, 0),
	FF("UnsignedPeerAPIOnly", CTRLDI_N_UNSIGNED),
	FI("ComputedName"),
	FI("ComputedNameWithHost"),
	FI("DataPlaneAuditLogID"),
	FF("Expired", CTRLDI_N_EXPIRED),
	NS("SelfNodeV4MasqAddrForThisPeer", K_ADDR, masq4, CTRLDI_N_MASQ4),
	NS("SelfNodeV6MasqAddrForThisPeer", K_ADDR, masq6, CTRLDI_N_MASQ6),
	FF("IsWireGuardOnly", CTRLDI_N_WG_ONLY),
	FF("IsJailed", CTRLDI_N_JAILED),
	F("ExitNodeDNSResolvers"),
};

enum { HF_OS, HF_HOSTNAME, HF_SERVICES, HF_COUNT };
static const fdesc hostinfo_fd[HF_COUNT] = {
	NS("OS", K_STR, os, 0),
	NS("Hostname", K_STR, hostname, 0),
	F("Services"),
};

enum { SF_PROTO, SF_PORT, SF_DESC, SF_COUNT };
static const fdesc service_fd[SF_COUNT] = {
	F("Proto"), F("Port"), F("Description"),
};

enum { RF_ADDR, RF_BOOTSTRAP, RF_EXIT, RF_COUNT };
static const fdesc resolver_fd[RF_COUNT] = {
	FP("Addr", K_PB_STR, F_STR(RESOLVER_ADDR)),
	F("BootstrapResolution"),
	FP("UseWithExitNode", K_PB_BOOL, F_BOOL(RESOLVER_USE_WITH_EXIT_NODE)),
};

static int
hostinfo_decode(dctx *c, uint32_t ti, ctrldi_node *n)
{
	uint32_t s[HF_COUNT], ns, k;
	int rv;

	if ((rv = jfields(c, ti, hostinfo_fd, HF_COUNT, s, "object")) != 0)
		return rv;
	n->flags |= CTRLDI_N_HOSTINFO;
	n->hostinfo_hash = jhash(c, ti);
	if ((rv = fields_decode(c, hostinfo_fd, HF_COUNT, s, n,
		 &n->flags)) != 0)
		return rv;
	if (!s[HF_SERVICES])
		return 0;
	if ((rv = jarr(c, s[HF_SERVICES], &ns)) != 0)
		return at(c, rv, ".Services");
	k = s[HF_SERVICES] + 1;
	for (uint32_t i = 0; i < ns; i++, k = tk_json_tape_next(&c->d, k)) {
		uint32_t f[SF_COUNT];
		ctrldi_str proto = { "", 0 }, desc;
		int64_t port = 0;

		if (jtype(&c->d, k) == TK_JSON_NULL)
			continue;
		if ((rv = jfields(c, k, service_fd, SF_COUNT, f, "object")) != 0 ||
		    (f[SF_PROTO] &&
			(rv = jstring_tmp(c, f[SF_PROTO], &proto)) != 0) ||
		    (f[SF_PORT] && (rv = jint(c, f[SF_PORT], 0, 65535,
					&port)) != 0) ||
		    (f[SF_DESC] &&
			(rv = jstring_tmp(c, f[SF_DESC], &desc)) != 0))
			return at(c, rv, ".Services[%u]", i);
		/* ipnlocal extractPeerAPIPorts: the last one wins */
		if (proto.n == 8 && memcmp(proto.p, "peerapi4", 8) == 0)
			n->peerapi4 = (uint16_t)port;
		else if (proto.n == 8 && memcmp(proto.p, "peerapi6", 8) == 0)
			n->peerapi6 = (uint16_t)port;
	}
	return 0;
}

/* dnstype.Resolver: checked, and encoded as tk.bus.v1.Resolver when w. */
static int
resolver_decode(dctx *c, uint32_t ti, ctrldi_pbw *w, unsigned field)
{
	uint32_t f[RF_COUNT], n, k;
	size_t m = 0;
	int rv;

	if ((rv = jfields(c, ti, resolver_fd, RF_COUNT, f, "object")) != 0)
		return rv;
	if (w != NULL)
		m = ctrldi_pb_open(w, field);
	/* Addr; BootstrapResolution (by hand, field 2) after it */
	if ((rv = fields_encode(c, resolver_fd, RF_BOOTSTRAP, f, w)) != 0)
		return rv;
	if (f[RF_BOOTSTRAP]) {
		if ((rv = jarr(c, f[RF_BOOTSTRAP], &n)) != 0)
			return at(c, rv, ".BootstrapResolution");
		k = f[RF_BOOTSTRAP] + 1;
		for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(&c->d, k)) {
			char text[TK_NETADDR_TEXT_MAX];
			tk_ipaddr a = { 0 };

			if (jtype(&c->d, k) != TK_JSON_NULL &&
			    (rv = jaddr(c, k, &a)) != 0)
				return at(c, rv, ".BootstrapResolution[%u]", i);
			if (w == NULL)
				continue;
			/* netip.Addr text; the zero Addr is "" in Go */
			if (a.family == 0)
				text[0] = '\0';
			else
				tk_ipaddr_format(&a, text);
			ctrldi_pb_bytes(w, F_STR(RESOLVER_BOOTSTRAP_RESOLUTION), text,
			    strlen(text));
		}
	}
	if ((rv = fields_encode(c, resolver_fd + RF_EXIT, RF_COUNT - RF_EXIT,
		 f + RF_EXIT, w)) != 0)
		return rv;
	if (w != NULL)
		ctrldi_pb_close(w, m);
	return 0;
}

/* Go strconv.Atoi into an int32 (false: not a number or out of range). */
static bool
atoi32(const char *s, size_t n, int32_t *out)
{
	size_t i = 0;
	int64_t v = 0;
	bool neg = false;

	if (n > 0 && (s[0] == '+' || s[0] == '-')) {
		neg = s[0] == '-';
		i = 1;
	}
	if (i == n)
		return false;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
		if (v > (int64_t)INT32_MAX + 1)
			return false;
	}
	if (neg)
		v = -v;
	if (v < INT32_MIN || v > INT32_MAX)
		return false;
	*out = (int32_t)v;
	return true;
}

/* map.go upgradeNode, legacy DERP: net.SplitHostPort, DerpMagicIP, Atoi. */
static void
legacy_derp(ctrldi_node *n, ctrldi_str d)
{
	static const char magic[] = "127.3.3.40";
	const char *host, *port;
	size_t hl, pl;

	if (d.n == 0 || n->home_derp != 0)
		return;
	if (d.p[0] == '[') {
		const char *close = memchr(d.p, ']', d.n);

		if (close == NULL || (size_t)(close - d.p) + 1 >= d.n ||
		    close[1] != ':')
			return;
		host = d.p + 1;
		hl = (size_t)(close - host);
		port = close + 2;
	} else {
		const char *colon = memchr(d.p, ':', d.n);

		if (colon == NULL ||
		    memchr(colon + 1, ':', d.n - (size_t)(colon - d.p) - 1))
			return;
		host = d.p;
		hl = (size_t)(colon - d.p);
		port = colon + 1;
	}
	pl = d.n - (size_t)(port - d.p);
	if (hl != sizeof(magic) - 1 || memcmp(host, magic, hl) != 0)
		return;
	(void)atoi32(port, pl, &n->home_derp);
}

static int
node_decode(dctx *c, uint32_t ti, bool is_self, ctrldi_node **out)
{
	uint32_t s[NF_COUNT];
	ctrldi_node *n;
	ctrldi_str derp = { "", 0 };
	bool b, allowed_nil = true;
	int rv;

	if ((rv = jfields(c, ti, node_fd, NF_COUNT, s, "Node object")) != 0)
		return rv;
	if ((n = ctrldi_arena_alloc(c->a, sizeof(*n))) == NULL)
		return oom(c);
	memset(n, 0, sizeof(*n));
	n->stable_id = n->name = n->computed_name = n->hostname = n->os =
	    n->keysig = (ctrldi_str){ "", 0 };
	n->key_expiry.zero = n->created.zero = n->last_seen.zero = true;

	if (!s[NF_ID])
		return fail(c, "ID missing");
	if ((rv = fields_decode(c, node_fd, NF_COUNT, s, n, &n->flags)) != 0)
		return rv;
	if (s[NF_ALLOWED])
		allowed_nil = false;
	if (s[NF_DERP] && (rv = jstring_tmp(c, s[NF_DERP], &derp)) != 0)
		return at(c, rv, ".DERP");
	if (s[NF_HOSTINFO] &&
	    (rv = hostinfo_decode(c, s[NF_HOSTINFO], n)) != 0)
		return at(c, rv, ".Hostinfo");
	if (!s[NF_HOSTINFO] && jnull_member(c, ti, node_fd[NF_HOSTINFO])) {
		/* HostinfoView.UnmarshalJSON gets "null" too and makes a
		 * valid, empty Hostinfo: equal to what {} gives */
		n->flags |= CTRLDI_N_HOSTINFO;
		n->hostinfo_hash = fnv1a("{}", 2) | 1;
	}
	if (s[NF_ONLINE]) {
		if ((rv = jbool(c, s[NF_ONLINE], &b)) != 0)
			return at(c, rv, ".Online");
		n->flags |= CTRLDI_N_ONLINE_KNOWN | (b ? CTRLDI_N_ONLINE : 0);
	}
	if (s[NF_EXIT_DNS]) {
		uint32_t cnt = 0, k = s[NF_EXIT_DNS] + 1;

		if ((rv = jarr(c, s[NF_EXIT_DNS], &cnt)) != 0)
			return at(c, rv, ".ExitNodeDNSResolvers");
		for (uint32_t i = 0; i < cnt; i++, k = tk_json_tape_next(&c->d, k))
			if (jtype(&c->d, k) != TK_JSON_NULL &&
			    (rv = resolver_decode(c, k, NULL, 0)) != 0)
				return at(c, rv, ".ExitNodeDNSResolvers[%u]", i);
		n->exit_dns_hash = jhash(c, s[NF_EXIT_DNS]);
	}

	/* map.go upgradeNode */
	legacy_derp(n, derp);
	if (allowed_nil) {
		n->allowed = n->addrs;
		n->nallowed = n->naddrs;
	}
	if ((n->flags & CTRLDI_N_UNSIGNED) &&
	    !ctrldi_prefixes_eq(n->allowed, n->nallowed, n->addrs, n->naddrs)) {
		n->allowed = n->addrs;
		n->nallowed = n->naddrs;
	}
	/* map.go handleNonKeepAliveMapResponse: self Capabilities -> CapMap
	 * entries without values, for names CapMap does not have */
	if (is_self && n->ncaps > 0) {
		ctrldi_capent *m = ctrldi_arena_alloc(c->a,
		    ((size_t)n->ncapmap + n->ncaps) * sizeof(*m));
		ctrldi_str *cv = ctrldi_arena_alloc(c->a,
		    (size_t)n->ncaps * sizeof(*cv));
		uint32_t i = 0, j = 0, k = 0;

		if (m == NULL || cv == NULL)
			return oom(c);
		memcpy(cv, n->caps, n->ncaps * sizeof(*cv));
		qsort(cv, n->ncaps, sizeof(*cv), str_qcmp);
		while (i < n->ncapmap || j < n->ncaps) {
			int r = i >= n->ncapmap ? 1 : j >= n->ncaps ? -1 :
			    ctrldi_str_cmp(n->capmap[i].name, cv[j]);

			if (r <= 0) {
				m[k++] = n->capmap[i++];
				if (r == 0)
					j++;
			} else {
				if (k == 0 || !ctrldi_str_eq(m[k - 1].name, cv[j]))
					m[k++] = (ctrldi_capent){ cv[j], NULL, 0 };
				j++;
			}
		}
		n->capmap = m;
		n->ncapmap = k;
	}
	*out = n;
	return 0;
}

/* --- computed names (tailcfg.go InitDisplayNames, util/dnsname) ------- */

static ctrldi_str
trim_suffix(ctrldi_str s, const char *suf, size_t sl)
{
	if (s.n >= sl && memcmp(s.p + s.n - sl, suf, sl) == 0)
		s.n -= (uint32_t)sl;
	return s;
}

/* netmap.MagicDNSSuffixOfNodeName */
static ctrldi_str
magic_suffix(ctrldi_str name)
{
	const char *dot;

	while (name.n > 0 && name.p[0] == '.') {
		name.p++;
		name.n--;
	}
	while (name.n > 0 && name.p[name.n - 1] == '.')
		name.n--;
	dot = memchr(name.p, '.', name.n);
	if (dot != NULL) {
		uint32_t skip = (uint32_t)(dot - name.p) + 1;

		name.p += skip;
		name.n -= skip;
	}
	return name;
}

/* dnsname.HasSuffix */
static bool
dns_has_suffix(ctrldi_str name, ctrldi_str suffix)
{
	ctrldi_str base;

	name = trim_suffix(name, ".", 1);
	suffix = trim_suffix(suffix, ".", 1);
	if (suffix.n > 0 && suffix.p[0] == '.') {
		suffix.p++;
		suffix.n--;
	}
	base = trim_suffix(name, suffix.p, suffix.n);
	return base.n < name.n && base.n > 0 && base.p[base.n - 1] == '.';
}

/* dnsname.TrimSuffix */
static ctrldi_str
dns_trim_suffix(ctrldi_str name, ctrldi_str suffix)
{
	if (dns_has_suffix(name, suffix)) {
		name = trim_suffix(name, ".", 1);
		while (suffix.n > 0 && suffix.p[0] == '.') {
			suffix.p++;
			suffix.n--;
		}
		while (suffix.n > 0 && suffix.p[suffix.n - 1] == '.')
			suffix.n--;
		name = trim_suffix(name, suffix.p, suffix.n);
	}
	return trim_suffix(name, ".", 1);
}

static bool
is_alnum(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9');
}

/* dnsname.SanitizeHostname into out (>= 63 bytes); returns the length. */
static uint32_t
sanitize_hostname(ctrldi_str h, char *out)
{
	size_t start = 0, end;
	uint32_t o = 0;

	h = trim_suffix(h, ".local", 6);
	h = trim_suffix(h, ".localdomain", 12);
	h = trim_suffix(h, ".lan", 4);
	end = h.n > 63 ? 63 : h.n;
	while (start < end && !is_alnum(h.p[start]))
		start++;
	while (start < end && !is_alnum(h.p[end - 1]))
		end--;
	for (size_t i = start; i < end; i++) {
		char ch = h.p[i];
		bool boundary = i == start || i == end - 1;

		if (!boundary &&
		    (ch == ' ' || ch == '.' || ch == '@' || ch == '_'))
			out[o++] = '-';
		else if (is_alnum(ch) || ch == '-')
			out[o++] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
	}
	return o;
}

static int
node_names(dctx *c, ctrldi_node *n, ctrldi_str suffix)
{
	ctrldi_str name = dns_trim_suffix(n->name, suffix);
	char host[64];
	uint32_t hl = 0;

	if (n->flags & CTRLDI_N_HOSTINFO)
		hl = sanitize_hostname(n->hostname, host);
	if (hl == name.n && hl > 0 && strncasecmp(host, name.p, hl) == 0)
		hl = 0;
	if (name.n == 0) {
		char *p;

		if (hl > 0) {
			if ((p = ctrldi_arena_alloc(c->a, hl)) == NULL)
				return oom(c);
			memcpy(p, host, hl);
			name = (ctrldi_str){ p, hl };
		} else {
			if ((p = ctrldi_arena_alloc(c->a, TK_KEY_TEXT_MAX)) ==
			    NULL)
				return oom(c);
			tk_key_format(p, TK_PREFIX_NODE_PUB, n->key);
			name = (ctrldi_str){ p, (uint32_t)strlen(p) };
		}
	}
	n->computed_name = name;
	return 0;
}

/* ---------------------------------------------------------------------
 * tailcfg.PeerChange
 * ------------------------------------------------------------------ */

enum {
	PF_NODE_ID, PF_DERP_REGION, PF_CAP, PF_CAPMAP, PF_ENDPOINTS, PF_KEY,
	PF_KEY_SIG, PF_DISCO, PF_ONLINE, PF_LAST_SEEN, PF_KEY_EXPIRY,
	PF_COUNT
};

#define PS(s, k, m, b)	  FS(s, k, ctrldi_patch, m, b)
#define PL(s, k, m, c, b) FL(s, k, ctrldi_patch, m, c, b)

/* ctrldi_patch.set bits say which fields were non-nil */
static const fdesc patch_fd[PF_COUNT] = {
	PS("NodeID", K_ID, id, 0),
	PS("DERPRegion", K_I32, derp_region, 0),
	PS("Cap", K_I32, cap, 0),
	PL("CapMap", K_CAPMAP, capmap, ncapmap, CTRLDI_P_CAPMAP),
	PL("Endpoints", K_IPPORTS, eps, neps, CTRLDI_P_EPS),
	PS("Key", K_NODE_KEY, key, CTRLDI_P_KEY),
	PS("KeySignature", K_BASE64, keysig, CTRLDI_P_KEYSIG),
	PS("DiscoKey", K_DISCO_KEY, disco, CTRLDI_P_DISCO),
	PS("Online", K_BOOL, online, CTRLDI_P_ONLINE),
	PS("LastSeen", K_TIME, last_seen, CTRLDI_P_LAST_SEEN),
	PS("KeyExpiry", K_TIME, key_expiry, CTRLDI_P_KEY_EXPIRY),
};

static int
patch_decode(dctx *c, uint32_t ti, ctrldi_patch *pc)
{
	uint32_t s[PF_COUNT];
	int rv;

	if ((rv = jfields(c, ti, patch_fd, PF_COUNT, s, "PeerChange object")) !=
	    0)
		return rv;
	memset(pc, 0, sizeof(*pc));
	if (!s[PF_NODE_ID])
		return fail(c, "NodeID missing");
	return fields_decode(c, patch_fd, PF_COUNT, s, pc, &pc->set);
}

/* ---------------------------------------------------------------------
 * DERPMap (tailcfg/derpmap.go)
 * ------------------------------------------------------------------ */

enum { DMF_HOME, DMF_REGIONS, DMF_OMIT, DMF_COUNT };
static const fdesc derpmap_fd[DMF_COUNT] = {
	F("HomeParams"), F("Regions"), F("omitDefaultRegions"),
};
enum { HPF_SCORE, HPF_COUNT };
static const fdesc home_fd[HPF_COUNT] = { F("RegionScore") };

enum {
	DRF_ID, DRF_CODE, DRF_NAME, DRF_LAT, DRF_LON, DRF_AVOID, DRF_NMNH,
	DRF_NODES, DRF_COUNT
};
/* RegionID: checked; the map key is the region's ID (derpmap.go) */
static const fdesc region_fd[DRF_COUNT] = {
	FP("RegionID", K_CHECK_I32, 0),
	FP("RegionCode", K_PB_STR, F_STR(DERP_REGION_REGION_CODE)),
	FP("RegionName", K_PB_STR, F_STR(DERP_REGION_REGION_NAME)),
	FP("Latitude", K_PB_DBL, F_DBL(DERP_REGION_LATITUDE)),
	FP("Longitude", K_PB_DBL, F_DBL(DERP_REGION_LONGITUDE)),
	FP("Avoid", K_PB_BOOL, F_BOOL(DERP_REGION_AVOID)),
	FP("NoMeasureNoHome", K_PB_BOOL,
	    F_BOOL(DERP_REGION_NO_MEASURE_NO_HOME)),
	F("Nodes"),
};

enum {
	DNF_NAME, DNF_REGION, DNF_HOST, DNF_CERT, DNF_IPV4, DNF_IPV6,
	DNF_STUN_PORT, DNF_STUN_ONLY, DNF_DERP_PORT, DNF_INSECURE,
	DNF_STUN_TEST, DNF_PORT80, DNF_COUNT
};
static const fdesc derpnode_fd[DNF_COUNT] = {
	FP("Name", K_PB_STR, F_STR(DERP_NODE_NAME)),
	FP("RegionID", K_PB_I32, F_I32(DERP_NODE_REGION_ID)),
	FP("HostName", K_PB_STR, F_STR(DERP_NODE_HOST_NAME)),
	FP("CertName", K_PB_STR, F_STR(DERP_NODE_CERT_NAME)),
	FP("IPv4", K_PB_STR, F_STR(DERP_NODE_IPV4)),
	FP("IPv6", K_PB_STR, F_STR(DERP_NODE_IPV6)),
	FP("STUNPort", K_PB_I32, F_I32(DERP_NODE_STUN_PORT)),
	FP("STUNOnly", K_PB_BOOL, F_BOOL(DERP_NODE_STUN_ONLY)),
	FP("DERPPort", K_PB_I32, F_I32(DERP_NODE_DERP_PORT)),
	FP("InsecureForTests", K_PB_BOOL,
	    F_BOOL(DERP_NODE_INSECURE_FOR_TESTS)),
	FP("STUNTestIP", K_PB_STR, F_STR(DERP_NODE_STUN_TEST_IP)),
	FP("CanPort80", K_PB_BOOL, F_BOOL(DERP_NODE_CAN_PORT80)),
};

static int
derpnode_encode(dctx *c, uint32_t ti, ctrldi_pbw *w)
{
	uint32_t s[DNF_COUNT];
	size_t m;
	int rv;

	if ((rv = jfields(c, ti, derpnode_fd, DNF_COUNT, s, "object")) != 0)
		return rv;
	m = ctrldi_pb_open(w, F_MSG(DERP_REGION_NODES));
	if ((rv = fields_encode(c, derpnode_fd, DNF_COUNT, s, w)) != 0)
		return rv;
	ctrldi_pb_close(w, m);
	return 0;
}

/* One region as a DERPMap.regions entry; id = its map key. */
static int
region_encode(dctx *c, uint32_t ti, int32_t id, ctrldi_pbw *w)
{
	uint32_t s[DRF_COUNT], n, k;
	size_t m;
	int rv;

	if ((rv = jfields(c, ti, region_fd, DRF_COUNT, s, "object")) != 0)
		return rv;
	m = ctrldi_pb_open(w, F_MSG(DERP_MAP_REGIONS));
	ctrldi_pb_int(w, F_I32(DERP_REGION_REGION_ID), id);
	if ((rv = fields_encode(c, region_fd, DRF_COUNT, s, w)) != 0)
		return rv;
	if (s[DRF_NODES]) {
		if ((rv = jarr(c, s[DRF_NODES], &n)) != 0)
			return at(c, rv, ".Nodes");
		k = s[DRF_NODES] + 1;
		for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(&c->d, k)) {
			if (jtype(&c->d, k) == TK_JSON_NULL)
				continue; /* a nil *DERPNode: nothing to use */
			if ((rv = derpnode_encode(c, k, w)) != 0)
				return at(c, rv, ".Nodes[%u]", i);
		}
	}
	ctrldi_pb_close(w, m);
	return 0;
}

static int
keyed_cmp(const void *a, const void *b)
{
	const ctrldi_keyed *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x < y ? 1 : x > y ? -1 : 0; /* later duplicate first */
}

/* Sorts by key; of duplicates the later one (Go map: last wins) stays. */
static uint32_t
keyed_sort(ctrldi_keyed *v, uint32_t n)
{
	uint32_t w = 0;

	if (n < 2)
		return n;
	qsort(v, n, sizeof(*v), keyed_cmp);
	for (uint32_t i = 0; i < n; i++)
		if (w == 0 || v[w - 1].key != v[i].key)
			v[w++] = v[i];
	return w;
}

static int
derpmap_decode(dctx *c, uint32_t ti, ctrldi_mapmsg *msg)
{
	uint32_t s[DMF_COUNT], k, n;
	const tk_json_tape *d = &c->d;
	int rv;

	if ((rv = jfields(c, ti, derpmap_fd, DMF_COUNT, s, "object")) != 0)
		return rv;
	msg->has_derp = true;
	if (s[DMF_OMIT] && (rv = jbool(c, s[DMF_OMIT], &msg->derp_omit)) != 0)
		return at(c, rv, ".omitDefaultRegions");
	if (s[DMF_REGIONS]) {
		if ((rv = want(c, s[DMF_REGIONS], TK_JSON_OBJ, "object")) != 0)
			return at(c, rv, ".Regions");
		msg->derp_has_regions = true;
		n = jaux(d, s[DMF_REGIONS]);
		msg->regions = ctrldi_arena_alloc(c->a,
		    (size_t)n * sizeof(*msg->regions));
		if (msg->regions == NULL)
			return oom(c);
		k = s[DMF_REGIONS] + 1;
		for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(d, k + 1)) {
			int64_t id;
			size_t start = c->pb->len;

			if ((rv = jintkey(c, k, INT32_MIN, INT32_MAX, &id)) != 0)
				return at(c, rv, ".Regions");
			if (jtype(d, k + 1) == TK_JSON_NULL)
				continue; /* map.go: nil regions dropped */
			if ((rv = region_encode(c, k + 1, (int32_t)id, c->pb)) != 0)
				return at(c, rv, ".Regions[\"%lld\"]", (long long)id);
			msg->regions[msg->nregions++] = (ctrldi_keyed){ id,
				{ (uint32_t)start, (uint32_t)(c->pb->len - start) } };
		}
		msg->nregions = keyed_sort(msg->regions, msg->nregions);
	}
	if (s[DMF_HOME]) {
		uint32_t h[HPF_COUNT];

		if ((rv = jfields(c, s[DMF_HOME], home_fd, HPF_COUNT, h,
			 "object")) != 0)
			return at(c, rv, ".HomeParams");
		if (h[HPF_SCORE]) {
			uint32_t sc = h[HPF_SCORE];

			if ((rv = want(c, sc, TK_JSON_OBJ, "object")) != 0)
				return at(c, rv, ".HomeParams.RegionScore");
			msg->derp_has_scores = true;
			n = jaux(d, sc);
			msg->scores = ctrldi_arena_alloc(c->a,
			    (size_t)n * sizeof(*msg->scores));
			if (msg->scores == NULL)
				return oom(c);
			k = sc + 1;
			for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(d, k + 1)) {
				int64_t id;
				double score = 0;
				size_t start, m;

				if ((rv = jintkey(c, k, INT32_MIN, INT32_MAX,
					 &id)) != 0 ||
				    (jtype(d, k + 1) != TK_JSON_NULL &&
					(rv = jfloat(c, k + 1, &score)) != 0))
					return at(c, rv,
					    ".HomeParams.RegionScore");
				start = c->pb->len;
				m = ctrldi_pb_open(c->pb,
				    F_MSG(DERP_MAP_REGION_SCORES));
				ctrldi_pb_int(c->pb, F_I32(REGION_SCORE_REGION_ID),
				    id);
				ctrldi_pb_double(c->pb, F_DBL(REGION_SCORE_SCORE),
				    score);
				ctrldi_pb_close(c->pb, m);
				msg->scores[msg->nscores++] = (ctrldi_keyed){ id,
					{ (uint32_t)start,
					    (uint32_t)(c->pb->len - start) } };
			}
			msg->nscores = keyed_sort(msg->scores, msg->nscores);
		}
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * Packet filter (tailcfg.FilterRule; wgengine/filter/tailcfg.go)
 * ------------------------------------------------------------------ */

enum { FRF_SRC, FRF_SRC_BITS, FRF_DST, FRF_PROTO, FRF_CAPGRANT, FRF_COUNT };
static const fdesc rule_fd[FRF_COUNT] = {
	F("SrcIPs"), F("SrcBits"), F("DstPorts"), F("IPProto"), F("CapGrant"),
};
enum { NPF_IP, NPF_BITS, NPF_PORTS, NPF_COUNT };
static const fdesc npr_fd[NPF_COUNT] = { F("IP"), F("Bits"), F("Ports") };
enum { PRF_FIRST, PRF_LAST, PRF_COUNT };
static const fdesc ports_fd[PRF_COUNT] = { F("First"), F("Last") };
enum { CGF_DSTS, CGF_CAPS, CGF_CAPMAP, CGF_COUNT };
static const fdesc grant_fd[CGF_COUNT] = {
	F("Dsts"), F("Caps"), F("CapMap"),
};

/*
 * Go's parseIPSet (tk_wg_ipmatch_parse_n, tailkit's one copy), encoded as
 * a tk.bus.v1.IPMatch field; false (nothing written) where Go returns an
 * error, and Go then skips the entry.
 */
static bool
ipmatch_encode(ctrldi_pbw *w, unsigned field, ctrldi_str s, bool dst)
{
	tk_wg_ipmatch im;
	tk_ipprefix x;
	unsigned len;
	size_t m, r;

	if (tk_wg_ipmatch_parse_n(&im, s.p, s.n) != 0)
		return false;
	if (im.im_kind == TK_WG_IPM_CAP && dst)
		return false; /* "unexpected capability in DstPorts" */
	m = ctrldi_pb_open(w, field);
	switch (im.im_kind) {
	case TK_WG_IPM_ANY:
		ctrldi_pb_bool(w, F_BOOL(IP_MATCH_ANY));
		break;
	case TK_WG_IPM_CAP:
		ctrldi_pb_bytes(w, F_STR(IP_MATCH_CAP), s.p + 4, s.n - 4);
		break;
	case TK_WG_IPM_PREFIX:
		memset(&x, 0, sizeof(x));
		x.ip.family = im.im_prefix.pf_family == 4 ? TK_AF_INET :
		    TK_AF_INET6;
		memcpy(x.ip.addr, im.im_prefix.pf_addr, sizeof(x.ip.addr));
		x.bits = im.im_prefix.pf_bits;
		ctrldi_pb_prefix(w, F_MSG(IP_MATCH_PREFIX), &x);
		break;
	case TK_WG_IPM_RANGE:
		len = im.im_range.rg_family == 4 ? 4 : 16;
		r = ctrldi_pb_open(w, F_MSG(IP_MATCH_RANGE));
		ctrldi_pb_bytes(w, F_BYTES(IP_RANGE_FIRST), im.im_range.rg_first, len);
		ctrldi_pb_bytes(w, F_BYTES(IP_RANGE_LAST), im.im_range.rg_last, len);
		ctrldi_pb_close(w, r);
		break;
	}
	ctrldi_pb_close(w, m);
	return true;
}

static int
capgrant_encode(dctx *c, uint32_t ti, ctrldi_pbw *w)
{
	uint32_t s[CGF_COUNT], n, k;
	ctrldi_str *caps = NULL;
	ctrldi_capent *cm = NULL;
	uint32_t ncaps = 0, ncm = 0;
	size_t m;
	int rv;

	if ((rv = jfields(c, ti, grant_fd, CGF_COUNT, s, "object")) != 0)
		return rv;
	if (s[CGF_CAPS] && (rv = jstrings(c, s[CGF_CAPS], &caps, &ncaps)) != 0)
		return at(c, rv, ".Caps");
	if (s[CGF_CAPMAP] && (rv = jcapmap(c, s[CGF_CAPMAP], &cm, &ncm)) != 0)
		return at(c, rv, ".CapMap");
	m = ctrldi_pb_open(w, F_MSG(FILTER_RULE_CAP_GRANT));
	if (s[CGF_DSTS]) {
		if ((rv = jarr(c, s[CGF_DSTS], &n)) != 0)
			return at(c, rv, ".Dsts");
		k = s[CGF_DSTS] + 1;
		for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(&c->d, k)) {
			tk_ipprefix x;

			if (jtype(&c->d, k) == TK_JSON_NULL)
				continue;
			if ((rv = jprefix(c, k, &x)) != 0)
				return at(c, rv, ".Dsts[%u]", i);
			ctrldi_pb_prefix(w, F_MSG(CAP_GRANT_DSTS), &x);
		}
	}
	for (uint32_t i = 0; i < ncaps; i++) {
		ctrldi_capent e = { caps[i], NULL, 0 };

		ctrldi_capent_encode(w, F_MSG(CAP_GRANT_CAP_MAP), &e);
	}
	for (uint32_t i = 0; i < ncm; i++)
		ctrldi_capent_encode(w, F_MSG(CAP_GRANT_CAP_MAP), &cm[i]);
	ctrldi_pb_close(w, m);
	return 0;
}

/* One FilterRule as a PacketFilter.rules entry. */
static int
rule_encode(dctx *c, uint32_t ti, ctrldi_pbw *w, bool *bits)
{
	uint32_t s[FRF_COUNT], n, k;
	size_t m;
	int rv;

	if ((rv = jfields(c, ti, rule_fd, FRF_COUNT, s, "object")) != 0)
		return rv;
	m = ctrldi_pb_open(w, F_MSG(PACKET_FILTER_RULES));
	if (s[FRF_SRC]) {
		if ((rv = jarr(c, s[FRF_SRC], &n)) != 0)
			return at(c, rv, ".SrcIPs");
		k = s[FRF_SRC] + 1;
		for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(&c->d, k)) {
			ctrldi_str v = { "", 0 };

			if (jtype(&c->d, k) != TK_JSON_NULL &&
			    (rv = jstring(c, k, &v)) != 0)
				return at(c, rv, ".SrcIPs[%u]", i);
			(void)ipmatch_encode(w, F_MSG(FILTER_RULE_SRC_IPS), v,
			    false);
		}
	}
	if (s[FRF_SRC_BITS]) {
		if ((rv = jarr(c, s[FRF_SRC_BITS], &n)) != 0)
			return at(c, rv, ".SrcBits");
		k = s[FRF_SRC_BITS] + 1;
		for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(&c->d, k)) {
			int64_t v;

			if (jtype(&c->d, k) != TK_JSON_NULL &&
			    (rv = jint(c, k, INT64_MIN, INT64_MAX, &v)) != 0)
				return at(c, rv, ".SrcBits[%u]", i);
		}
		if (n > 0)
			*bits = true;
	}
	if (s[FRF_DST]) {
		if ((rv = jarr(c, s[FRF_DST], &n)) != 0)
			return at(c, rv, ".DstPorts");
		k = s[FRF_DST] + 1;
		for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(&c->d, k)) {
			uint32_t f[NPF_COUNT], pf[PRF_COUNT] = { 0, 0 };
			ctrldi_str ip = { "", 0 };
			int64_t first = 0, last = 0, bv;
			size_t mark, save;

			if (jtype(&c->d, k) == TK_JSON_NULL)
				continue; /* zero NetPortRange: IP "" fails */
			if ((rv = jfields(c, k, npr_fd, NPF_COUNT, f,
				 "object")) != 0 ||
			    (f[NPF_IP] && (rv = jstring(c, f[NPF_IP], &ip)) != 0) ||
			    (f[NPF_BITS] && (rv = jint(c, f[NPF_BITS], INT64_MIN,
						 INT64_MAX, &bv)) != 0) ||
			    (f[NPF_PORTS] && (rv = jfields(c, f[NPF_PORTS],
						  ports_fd, PRF_COUNT, pf,
						  "object")) != 0) ||
			    (pf[PRF_FIRST] && (rv = jint(c, pf[PRF_FIRST], 0,
						   65535, &first)) != 0) ||
			    (pf[PRF_LAST] && (rv = jint(c, pf[PRF_LAST], 0,
						  65535, &last)) != 0))
				return at(c, rv, ".DstPorts[%u]", i);
			if (f[NPF_BITS])
				*bits = true;
			save = w->len;
			mark = ctrldi_pb_open(w, F_MSG(FILTER_RULE_DST_PORTS));
			if (!ipmatch_encode(w, F_MSG(NET_PORT_RANGE_IP), ip,
				true)) {
				if (!w->err)
					w->len = save; /* Go skips it */
				continue;
			}
			ctrldi_pb_varint_field(w, F_UINT(NET_PORT_RANGE_FIRST_PORT),
			    (uint64_t)first);
			ctrldi_pb_varint_field(w, F_UINT(NET_PORT_RANGE_LAST_PORT),
			    (uint64_t)last);
			ctrldi_pb_close(w, mark);
		}
	}
	if (s[FRF_PROTO]) {
		if ((rv = jarr(c, s[FRF_PROTO], &n)) != 0)
			return at(c, rv, ".IPProto");
		k = s[FRF_PROTO] + 1;
		for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(&c->d, k)) {
			int64_t v = 0;

			if (jtype(&c->d, k) != TK_JSON_NULL &&
			    (rv = jint(c, k, INT64_MIN, INT64_MAX, &v)) != 0)
				return at(c, rv, ".IPProto[%u]", i);
			/* Go ignores numbers outside 0..255; the bus is
			 * uint32, so anything unrepresentable becomes a
			 * number the filter ignores too. */
			ctrldi_pb_varint_field(w, F_UINT(FILTER_RULE_IP_PROTO),
			    v >= 0 && v <= UINT32_MAX ? (uint64_t)v : UINT32_MAX);
		}
	}
	if (s[FRF_CAPGRANT]) {
		if ((rv = jarr(c, s[FRF_CAPGRANT], &n)) != 0)
			return at(c, rv, ".CapGrant");
		k = s[FRF_CAPGRANT] + 1;
		for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(&c->d, k)) {
			if (jtype(&c->d, k) == TK_JSON_NULL)
				continue;
			if ((rv = capgrant_encode(c, k, w)) != 0)
				return at(c, rv, ".CapGrant[%u]", i);
		}
	}
	ctrldi_pb_close(w, m);
	return 0;
}

/* A []FilterRule as one chunk. */
static int
rules_decode(dctx *c, uint32_t ti, ctrldi_chunk *ch)
{
	uint32_t n, k;
	size_t start = c->pb->len;
	int rv;

	if ((rv = jarr(c, ti, &n)) != 0)
		return rv;
	ch->present = true;
	k = ti + 1;
	for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(&c->d, k)) {
		if (jtype(&c->d, k) == TK_JSON_NULL) {
			/* a zero FilterRule: matches nothing, kept */
			size_t m = ctrldi_pb_open(c->pb, F_MSG(PACKET_FILTER_RULES));

			ctrldi_pb_close(c->pb, m);
			continue;
		}
		if ((rv = rule_encode(c, k, c->pb, &ch->bits)) != 0)
			return at(c, rv, "[%u]", i);
	}
	ch->pb.off = (uint32_t)start;
	ch->pb.len = (uint32_t)(c->pb->len - start);
	return 0;
}

static int
chunk_cmp(const void *a, const void *b)
{
	const ctrldi_chunk *x = a, *y = b;
	int r = ctrldi_str_cmp(x->name, y->name);

	if (r == 0)
		r = x < y ? 1 : x > y ? -1 : 0;
	return r;
}

static int
pfs_decode(dctx *c, uint32_t ti, ctrldi_mapmsg *msg)
{
	const tk_json_tape *d = &c->d;
	uint32_t n, k, w = 0;
	int rv;

	if ((rv = want(c, ti, TK_JSON_OBJ, "object")) != 0)
		return rv;
	msg->has_pfs = true;
	n = jaux(d, ti);
	msg->chunks = ctrldi_arena_alloc(c->a, (size_t)n * sizeof(ctrldi_chunk));
	if (msg->chunks == NULL)
		return oom(c);
	k = ti + 1;
	for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(d, k + 1)) {
		ctrldi_chunk *ch = &msg->chunks[i];

		memset(ch, 0, sizeof(*ch));
		if ((rv = jstr(c, k, &ch->name)) != 0)
			return rv;
		if (jtype(d, k + 1) != TK_JSON_NULL &&
		    (rv = rules_decode(c, k + 1, ch)) != 0)
			return at(c, rv, "[\"%.*s\"]", (int)TK_MIN(ch->name.n, 40),
			    ch->name.p);
	}
	if (n > 1)
		qsort(msg->chunks, n, sizeof(ctrldi_chunk), chunk_cmp);
	for (uint32_t i = 0; i < n; i++) {
		ctrldi_chunk *ch = &msg->chunks[i];

		if (w > 0 && ctrldi_str_eq(msg->chunks[w - 1].name, ch->name))
			continue;
		if (ch->name.n == 1 && ch->name.p[0] == '*') {
			/* map.go: "*" with a nil value clears; else skipped */
			if (!ch->present)
				msg->pfs_clear = true;
			/* keep it in the run so a duplicate "*" is skipped */
		}
		msg->chunks[w++] = *ch;
	}
	/* drop "*" itself */
	n = w;
	w = 0;
	for (uint32_t i = 0; i < n; i++)
		if (!(msg->chunks[i].name.n == 1 && msg->chunks[i].name.p[0] == '*'))
			msg->chunks[w++] = msg->chunks[i];
	msg->nchunks = w;
	return 0;
}

/* ---------------------------------------------------------------------
 * DNSConfig, UserProfile, Health
 * ------------------------------------------------------------------ */

enum {
	DCF_RESOLVERS, DCF_ROUTES, DCF_FALLBACK, DCF_DOMAINS, DCF_PROXIED,
	DCF_NAMESERVERS, DCF_CERT_DOMAINS, DCF_EXTRA, DCF_EXIT_FILTERED,
	DCF_TEMP, DCF_COUNT
};
static const fdesc dns_fd[DCF_COUNT] = {
	F("Resolvers"), F("Routes"), F("FallbackResolvers"), F("Domains"),
	F("Proxied"), F("Nameservers"), F("CertDomains"), F("ExtraRecords"),
	F("ExitNodeFilteredSet"), F("TempCorpIssue13969"),
};
enum { ERF_NAME, ERF_TYPE, ERF_VALUE, ERF_COUNT };
static const fdesc record_fd[ERF_COUNT] = {
	FP("Name", K_PB_STR, F_STR(DNS_RECORD_NAME)),
	FP("Type", K_PB_STR, F_STR(DNS_RECORD_TYPE)),
	FP("Value", K_PB_STR, F_STR(DNS_RECORD_VALUE)),
};

/* A []*dnstype.Resolver as repeated `field` (nil elements dropped). */
static int
resolvers_encode(dctx *c, uint32_t ti, ctrldi_pbw *w, unsigned field)
{
	uint32_t n, k;
	int rv;

	if ((rv = jarr(c, ti, &n)) != 0)
		return rv;
	k = ti + 1;
	for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(&c->d, k)) {
		if (jtype(&c->d, k) == TK_JSON_NULL)
			continue;
		if ((rv = resolver_decode(c, k, w, field)) != 0)
			return at(c, rv, "[%u]", i);
	}
	return 0;
}

static int
strings_encode(dctx *c, uint32_t ti, ctrldi_pbw *w, unsigned field)
{
	ctrldi_str *v;
	uint32_t n = 0;
	int rv;

	if ((rv = jstrings(c, ti, &v, &n)) != 0)
		return rv;
	for (uint32_t i = 0; i < n; i++)
		ctrldi_pb_str(w, field, v[i]);
	return 0;
}

typedef struct route {
	ctrldi_str suffix;
	ctrldi_piece pb;
} route;

static int
route_cmp(const void *a, const void *b)
{
	const route *x = a, *y = b;
	int r = ctrldi_str_cmp(x->suffix, y->suffix);

	if (r == 0)
		r = x < y ? 1 : x > y ? -1 : 0;
	return r;
}

/* Copies a piece of w into w's end (the source may move on growth). */
static void
pb_copy_piece(ctrldi_pbw *w, ctrldi_piece pc)
{
	if (!ctrldi_pbw_room(w, pc.len))
		return;
	memcpy(w->p + w->len, w->p + pc.off, pc.len);
	w->len += pc.len;
}

static int
dns_decode(dctx *c, uint32_t ti, ctrldi_mapmsg *msg)
{
	uint32_t s[DCF_COUNT], n = 0, k, w = 0;
	const tk_json_tape *d = &c->d;
	ctrldi_pbw *pb = c->pb;
	route *routes = NULL;
	ctrldi_str ign;
	bool proxied = false;
	size_t start;
	int rv;

	if ((rv = jfields(c, ti, dns_fd, DCF_COUNT, s, "object")) != 0)
		return rv;
	if (s[DCF_PROXIED] && (rv = jbool(c, s[DCF_PROXIED], &proxied)) != 0)
		return at(c, rv, ".Proxied");
	if (s[DCF_NAMESERVERS] && (rv = jaddrs_check(c, s[DCF_NAMESERVERS])) != 0)
		return at(c, rv, ".Nameservers");
	if (s[DCF_TEMP] && (rv = jstring(c, s[DCF_TEMP], &ign)) != 0)
		return at(c, rv, ".TempCorpIssue13969");
	/* routes first, as pieces to sort (Go map: last duplicate wins) */
	if (s[DCF_ROUTES]) {
		if ((rv = want(c, s[DCF_ROUTES], TK_JSON_OBJ, "object")) != 0)
			return at(c, rv, ".Routes");
		n = jaux(d, s[DCF_ROUTES]);
		if ((routes = ctrldi_arena_alloc(c->a, (size_t)n *
			 sizeof(*routes))) == NULL)
			return oom(c);
		k = s[DCF_ROUTES] + 1;
		for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(d, k + 1)) {
			size_t m, r0 = pb->len;

			if ((rv = jstr(c, k, &routes[i].suffix)) != 0)
				return rv;
			m = ctrldi_pb_open(pb, F_MSG(DNS_CONFIG_ROUTES));
			ctrldi_pb_str(pb, F_STR(DNS_ROUTE_SUFFIX), routes[i].suffix);
			if (jtype(d, k + 1) != TK_JSON_NULL &&
			    (rv = resolvers_encode(c, k + 1, pb,
				 F_MSG(DNS_ROUTE_RESOLVERS))) != 0)
				return at(c, rv, ".Routes[\"%.*s\"]",
				    (int)TK_MIN(routes[i].suffix.n, 40),
				    routes[i].suffix.p);
			ctrldi_pb_close(pb, m);
			routes[i].pb = (ctrldi_piece){ (uint32_t)r0,
				(uint32_t)(pb->len - r0) };
		}
		if (n > 1)
			qsort(routes, n, sizeof(*routes), route_cmp);
		for (uint32_t i = 0; i < n; i++)
			if (w == 0 || !ctrldi_str_eq(routes[w - 1].suffix,
					  routes[i].suffix))
				routes[w++] = routes[i];
		n = w;
	}
	start = pb->len;
	if (s[DCF_RESOLVERS] &&
	    (rv = resolvers_encode(c, s[DCF_RESOLVERS], pb,
		 F_MSG(DNS_CONFIG_RESOLVERS))) != 0)
		return at(c, rv, ".Resolvers");
	for (uint32_t i = 0; i < n; i++)
		pb_copy_piece(pb, routes[i].pb);
	if (s[DCF_FALLBACK] &&
	    (rv = resolvers_encode(c, s[DCF_FALLBACK], pb,
		 F_MSG(DNS_CONFIG_FALLBACK_RESOLVERS))) != 0)
		return at(c, rv, ".FallbackResolvers");
	if (s[DCF_DOMAINS] && (rv = strings_encode(c, s[DCF_DOMAINS], pb,
				   F_STR(DNS_CONFIG_DOMAINS))) != 0)
		return at(c, rv, ".Domains");
	if (proxied)
		ctrldi_pb_bool(pb, F_BOOL(DNS_CONFIG_PROXIED));
	if (s[DCF_CERT_DOMAINS] &&
	    (rv = strings_encode(c, s[DCF_CERT_DOMAINS], pb,
		 F_STR(DNS_CONFIG_CERT_DOMAINS))) != 0)
		return at(c, rv, ".CertDomains");
	if (s[DCF_EXTRA]) {
		if ((rv = jarr(c, s[DCF_EXTRA], &n)) != 0)
			return at(c, rv, ".ExtraRecords");
		k = s[DCF_EXTRA] + 1;
		for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(d, k)) {
			uint32_t f[ERF_COUNT] = { 0, 0, 0 };
			size_t m;

			if (jtype(d, k) != TK_JSON_NULL &&
			    (rv = jfields(c, k, record_fd, ERF_COUNT, f,
				 "object")) != 0)
				return at(c, rv, ".ExtraRecords[%u]", i);
			m = ctrldi_pb_open(pb, F_MSG(DNS_CONFIG_EXTRA_RECORDS));
			if ((rv = fields_encode(c, record_fd, ERF_COUNT, f,
				 pb)) != 0)
				return at(c, rv, ".ExtraRecords[%u]", i);
			ctrldi_pb_close(pb, m);
		}
	}
	if (s[DCF_EXIT_FILTERED] &&
	    (rv = strings_encode(c, s[DCF_EXIT_FILTERED], pb,
		 F_STR(DNS_CONFIG_EXIT_NODE_FILTERED_SET))) != 0)
		return at(c, rv, ".ExitNodeFilteredSet");
	msg->has_dns = true;
	msg->dns = (ctrldi_piece){ (uint32_t)start, (uint32_t)(pb->len - start) };
	return 0;
}

enum { UPF_ID, UPF_LOGIN, UPF_DISPLAY, UPF_PIC, UPF_GROUPS, UPF_COUNT };
/* ID and Groups by hand: ID is written first, whatever its value */
static const fdesc profile_fd[UPF_COUNT] = {
	F("ID"),
	FP("LoginName", K_PB_STR, F_STR(USER_PROFILE_LOGIN_NAME)),
	FP("DisplayName", K_PB_STR, F_STR(USER_PROFILE_DISPLAY_NAME)),
	FP("ProfilePicURL", K_PB_STR, F_STR(USER_PROFILE_PROFILE_PIC_URL)),
	F("Groups"),
};

static int
profiles_decode(dctx *c, uint32_t ti, ctrldi_mapmsg *msg)
{
	uint32_t n, k;
	int rv;

	if ((rv = jarr(c, ti, &n)) != 0)
		return rv;
	msg->profiles = ctrldi_arena_alloc(c->a, (size_t)n *
	    sizeof(*msg->profiles));
	if (msg->profiles == NULL)
		return oom(c);
	k = ti + 1;
	for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(&c->d, k)) {
		uint32_t s[UPF_COUNT];
		ctrldi_str *groups;
		uint32_t ngroups;
		int64_t id = 0;
		size_t start = c->pb->len;

		if (jtype(&c->d, k) == TK_JSON_NULL)
			continue;
		if ((rv = jfields(c, k, profile_fd, UPF_COUNT, s,
			 "UserProfile object")) != 0 ||
		    (s[UPF_ID] && (rv = jint(c, s[UPF_ID], 0, INT64_MAX,
				       &id)) != 0) ||
		    (s[UPF_GROUPS] && (rv = jstrings(c, s[UPF_GROUPS], &groups,
					   &ngroups)) != 0))
			return at(c, rv, "[%u]", i);
		ctrldi_pb_int(c->pb, F_I64(USER_PROFILE_ID), id);
		if ((rv = fields_encode(c, profile_fd, UPF_COUNT, s,
			 c->pb)) != 0)
			return at(c, rv, "[%u]", i);
		msg->profiles[msg->nprofiles++] = (ctrldi_keyed){ id,
			{ (uint32_t)start, (uint32_t)(c->pb->len - start) } };
	}
	return 0;
}

/* ---------------------------------------------------------------------
 * MapResponse
 * ------------------------------------------------------------------ */

enum {
	MF_HANDLE, MF_SEQ, MF_KEEPALIVE, MF_PING, MF_POP, MF_NODE, MF_DERPMAP,
	MF_PEERS, MF_CHANGED, MF_REMOVED, MF_PATCH, MF_SEEN, MF_ONLINE,
	MF_DNS, MF_DOMAIN, MF_COLLECT, MF_PF, MF_PFS, MF_PROFILES, MF_HEALTH,
	MF_DISPLAY, MF_SSH, MF_CONTROL_TIME, MF_TKA, MF_AUDIT_ID, MF_DEBUG,
	MF_DIAL_PLAN, MF_CLIENT_VERSION, MF_AUTO_UPDATE, MF_COUNT
};

/* tailcfg.go MapResponse, in struct order. */
static const fdesc map_fd[MF_COUNT] = {
	F("MapSessionHandle"), F("Seq"), F("KeepAlive"), F("PingRequest"),
	F("PopBrowserURL"), F("Node"), F("DERPMap"), F("Peers"),
	F("PeersChanged"), F("PeersRemoved"), F("PeersChangedPatch"),
	F("PeerSeenChange"), F("OnlineChange"), F("DNSConfig"), F("Domain"),
	F("CollectServices"), F("PacketFilter"), F("PacketFilters"),
	F("UserProfiles"), F("Health"), F("DisplayMessages"), F("SSHPolicy"),
	F("ControlTime"), F("TKAInfo"), F("DomainDataPlaneAuditLogID"),
	F("Debug"), F("ControlDialPlan"), F("ClientVersion"),
	F("DefaultAutoUpdate"),
};

enum { PRF_URL, PRF_NOISE, PRF_LOG, PRF_TYPES, PRF_IP, PRF_PAYLOAD,
	PRQ_COUNT };
static const fdesc ping_fd[PRQ_COUNT] = {
	F("URL"), F("URLIsNoise"), F("Log"), F("Types"), F("IP"), F("Payload"),
};
enum { DBF_SLEEP, DBF_LOGTAIL, DBF_EXIT, DBF_COUNT };
static const fdesc debug_fd[DBF_COUNT] = {
	F("SleepSeconds"), F("DisableLogTail"), F("Exit"),
};

static int
ping_decode(dctx *c, uint32_t ti, ctrldi_mapmsg *msg)
{
	uint32_t s[PRQ_COUNT];
	ctrldi_str payload = { "", 0 };
	int rv;

	if ((rv = jfields(c, ti, ping_fd, PRQ_COUNT, s, "object")) != 0)
		return rv;
#define PING_GET(f, expr)                                                     \
	do {                                                                  \
		if (s[f] && (rv = (expr)) != 0)                               \
			return at(c, rv, ".%s", ping_fd[f].name);             \
	} while (0)
	PING_GET(PRF_URL, jstring(c, s[PRF_URL], &msg->ping_url));
	PING_GET(PRF_NOISE, jbool(c, s[PRF_NOISE], &msg->ping_noise));
	PING_GET(PRF_LOG, jbool(c, s[PRF_LOG], &msg->ping_log));
	PING_GET(PRF_TYPES, jstring(c, s[PRF_TYPES], &msg->ping_types));
	PING_GET(PRF_IP, jaddr(c, s[PRF_IP], &msg->ping_ip));
	PING_GET(PRF_PAYLOAD, jbase64(c, s[PRF_PAYLOAD], &payload));
#undef PING_GET
	msg->has_ping = true;
	msg->ping_has_ip = msg->ping_ip.family != 0;
	msg->ping_payload = (uint8_t *)payload.p;
	msg->ping_payload_len = payload.n;
	return 0;
}

enum { CAF_IP, CAF_ACE, CAF_START, CAF_TIMEOUT, CAF_PRIO, CAF_COUNT };
static const fdesc cand_fd[CAF_COUNT] = {
	F("IP"), F("ACEHost"), F("DialStartDelaySec"), F("DialTimeoutSec"),
	F("Priority"),
};
static const fdesc dialplan_fd[1] = { F("Candidates") };

static uint32_t
secs_ms(double v)
{
	if (!(v > 0))
		return 0;
	return v * 1000 >= CTRLDI_DIAL_PLAN_MAXT ? CTRLDI_DIAL_PLAN_MAXT :
						   (uint32_t)(v * 1000);
}

/* tailcfg.ControlDialPlan: candidates past CTRLDI_DIAL_PLAN_MAX dropped */
static int
dialplan_decode(dctx *c, uint32_t ti, ctrldi_mapmsg *msg)
{
	ctrldi_dial_plan *pl = &msg->dial_plan;
	uint32_t s[1], n, k;
	int rv;

	if ((rv = jfields(c, ti, dialplan_fd, 1, s, "object")) != 0)
		return rv;
	msg->has_dial_plan = true;
	pl->n = 0;
	if (s[0] == 0)
		return 0;
	if ((rv = jarr(c, s[0], &n)) != 0)
		return at(c, rv, ".Candidates");
	k = s[0] + 1;
	for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(&c->d, k)) {
		uint32_t f[CAF_COUNT];
		ctrldi_dial_cand cd;
		ctrldi_str ace = { "", 0 };
		double start = 0, tmo = 0;

		memset(&cd, 0, sizeof(cd));
		if (jtype(&c->d, k) == TK_JSON_NULL) /* the zero candidate */
			continue;
		if ((rv = jfields(c, k, cand_fd, CAF_COUNT, f, "object")) != 0 ||
		    (f[CAF_IP] && (rv = jaddr(c, f[CAF_IP], &cd.ip)) != 0) ||
		    (f[CAF_ACE] && (rv = jstring(c, f[CAF_ACE], &ace)) != 0) ||
		    (f[CAF_START] && (rv = jfloat(c, f[CAF_START], &start)) != 0) ||
		    (f[CAF_TIMEOUT] && (rv = jfloat(c, f[CAF_TIMEOUT], &tmo)) != 0) ||
		    (f[CAF_PRIO] && (rv = jint32(c, f[CAF_PRIO], &cd.priority)) != 0))
			return at(c, rv, ".Candidates[%u]", i);
		cd.ace = ace.n > 0;
		cd.start_ms = secs_ms(start);
		cd.timeout_ms = secs_ms(tmo);
		if (pl->n < CTRLDI_DIAL_PLAN_MAX)
			pl->c[pl->n++] = cd;
	}
	return 0;
}

static int
debug_decode(dctx *c, uint32_t ti, ctrldi_mapmsg *msg)
{
	uint32_t s[DBF_COUNT];
	double sleep = 0;
	int32_t code = 0;
	int rv;

	if ((rv = jfields(c, ti, debug_fd, DBF_COUNT, s, "object")) != 0)
		return rv;
	if (s[DBF_SLEEP] && (rv = jfloat(c, s[DBF_SLEEP], &sleep)) != 0)
		return at(c, rv, ".SleepSeconds");
	if (s[DBF_LOGTAIL] && (rv = jbool(c, s[DBF_LOGTAIL],
				   &msg->debug_disable_log_tail)) != 0)
		return at(c, rv, ".DisableLogTail");
	if (s[DBF_EXIT] && (rv = jint32(c, s[DBF_EXIT], &code)) != 0)
		return at(c, rv, ".Exit");
	msg->has_debug = true;
	if (!(sleep > 0))
		sleep = 0;
	if (sleep > CTRLDI_MAP_MAX_SLEEP_SECONDS)
		sleep = CTRLDI_MAP_MAX_SLEEP_SECONDS;
	msg->debug_sleep = sleep;
	msg->debug_has_exit = s[DBF_EXIT] != 0;
	msg->debug_exit = code;
	return 0;
}

/*
 * The values decoded so far of the array at ti (its elements up to, not
 * including, value k) are not read again: with the text owned (c->copy,
 * every string kept is in the arena) their tape and text go back to the
 * kernel as the decode goes, every 1 MiB of text or at the end (all).
 * A 100,000-peer netmap's text and tape then shrink while its decoded
 * nodes grow, instead of all three peaking together.
 */
#define RELEASE_STEP (1u << 20)
#define HUGE_PAGE    ((uintptr_t)2 << 20)

/* From the last release point, back to a huge page boundary (what
 * tk_mem_discard left of a partly covered one), not before first. */
static uintptr_t
back_to_page(uintptr_t first, uintptr_t last)
{
	uintptr_t b = last & ~(HUGE_PAGE - 1);

	return b < first ? first : b;
}

static void
release(dctx *c, uint32_t ti, uint32_t k, bool all)
{
	uint32_t from = ti + 1, end;
	uintptr_t p0, pe, t0, tl;

	if (!c->copy || k <= from)
		return;
	end = tk_json_tape_end(&c->d, k - 1);
	if (!all && end < c->rel_text + RELEASE_STEP)
		return;
	p0 = back_to_page((uintptr_t)c->d.p + tk_json_tape_off(&c->d, ti) + 1,
	    (uintptr_t)c->d.p + c->rel_text);
	pe = (uintptr_t)c->d.p + end;
	if (pe > p0)
		tk_mem_discard((void *)p0, pe - p0);
	t0 = back_to_page((uintptr_t)(c->d.t + from),
	    (uintptr_t)(c->d.t + c->rel_tok));
	tl = (t0 - (uintptr_t)c->d.t) / sizeof(*c->d.t);
	tk_json_tape_release(&c->d, (uint32_t)tl, k);
	c->rel_text = end;
	c->rel_tok = k;
}

/*
 * One peer of Peers, decoded in the scratch arena, named, and frozen:
 * the message owns the record (msg->pre[i]).
 */
static int
peer_decode_frozen(dctx *c, uint32_t ti, ctrldi_str suffix,
    ctrldi_mapmsg *msg, uint32_t i, ctrldi_node **out)
{
	ctrldi_arena *keep = c->a;
	ctrldi_node *n = NULL, *f = NULL;
	bool ident;
	int rv;

	c->a = &c->scratch;
	rv = node_decode(c, ti, false, &n);
	if (rv == 0)
		rv = node_names(c, n, suffix);
	if (rv == 0 && ctrldi_node_freeze(n, &c->fz, NULL, &f, &ident) != 0)
		rv = oom(c);
	c->a = keep;
	ctrldi_arena_reset(&c->scratch);
	if (rv != 0)
		return rv;
	f->pre = i + 1;
	msg->pre[i] = f;
	*out = f;
	return 0;
}

/*
 * An array of Node objects (null elements refused: Go dereferences them).
 * msg: Peers, frozen as decoded (peer_decode_frozen); NULL: PeersChanged,
 * decoded into the arena.
 */
static int
nodes_decode(dctx *c, uint32_t ti, ctrldi_mapmsg *msg, ctrldi_str suffix,
    ctrldi_node ***out, uint32_t *nout)
{
	uint32_t n, k;
	ctrldi_node **v;
	int rv;

	if ((rv = jarr(c, ti, &n)) != 0)
		return rv;
	if ((v = ctrldi_arena_alloc(c->a, (size_t)n * sizeof(*v))) == NULL)
		return oom(c);
	if (msg != NULL) {
		msg->pre = ctrldi_arena_alloc(c->a, (size_t)n * sizeof(*v));
		if (msg->pre == NULL)
			return oom(c);
		memset(msg->pre, 0, (size_t)n * sizeof(*v));
		msg->npre = n;
	}
	c->rel_text = tk_json_tape_off(&c->d, ti) + 1;
	c->rel_tok = ti + 1;
	k = ti + 1;
	for (uint32_t i = 0; i < n; i++) {
		uint32_t next = tk_json_tape_next(&c->d, k);

		if (jtype(&c->d, k) == TK_JSON_NULL)
			return at(c, fail(c, "null node"), "[%u]", i);
		if (msg != NULL)
			rv = peer_decode_frozen(c, k, suffix, msg, i, &v[i]);
		else
			rv = node_decode(c, k, false, &v[i]);
		if (rv != 0)
			return at(c, rv, "[%u]", i);
		release(c, ti, next, false);
		k = next;
	}
	release(c, ti, k, true);
	*out = v;
	*nout = n;
	return 0;
}

/* A map[NodeID]bool (null values are false). */
static int
idbool_decode(dctx *c, uint32_t ti, ctrldi_idbool **out, uint32_t *nout)
{
	const tk_json_tape *d = &c->d;
	uint32_t n, k;
	ctrldi_idbool *v;
	int rv;

	if ((rv = want(c, ti, TK_JSON_OBJ, "object")) != 0)
		return rv;
	n = jaux(d, ti);
	if ((v = ctrldi_arena_alloc(c->a, (size_t)n * sizeof(*v))) == NULL)
		return oom(c);
	k = ti + 1;
	for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(d, k + 1)) {
		v[i].v = false;
		if ((rv = jintkey(c, k, 1, INT64_MAX, &v[i].id)) != 0)
			return rv;
		if (jtype(d, k + 1) != TK_JSON_NULL &&
		    (rv = jbool(c, k + 1, &v[i].v)) != 0)
			return at(c, rv, "[\"%lld\"]", (long long)v[i].id);
	}
	*out = v;
	*nout = n;
	return 0;
}

/* Shallow checks of fields we do not use: Go would refuse a wrong type. */
static int
check_obj_map(dctx *c, uint32_t ti)
{
	uint32_t n, k;
	int rv;

	if ((rv = want(c, ti, TK_JSON_OBJ, "object")) != 0)
		return rv;
	n = jaux(&c->d, ti);
	k = ti + 1;
	for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(&c->d, k + 1))
		if (jtype(&c->d, k + 1) != TK_JSON_NULL &&
		    (rv = want(c, k + 1, TK_JSON_OBJ, "object")) != 0)
			return rv;
	return 0;
}

static int
map_decode(dctx *c, ctrldi_mapmsg *msg, ctrldi_str last_self_name)
{
	uint32_t s[MF_COUNT], n = 0, k;
	const tk_json_tape *d = &c->d;
	ctrldi_str str, suffix;
	int64_t i64;
	bool b;
	int rv;

	if (jtype(d, 0) == TK_JSON_NULL) /* Go: null leaves the struct zero */
		return 0;
	if ((rv = jfields(c, 0, map_fd, MF_COUNT, s, "MapResponse object")) != 0)
		return rv;

#define MAP_DO(f, expr)                                                       \
	do {                                                                  \
		if (s[f] && (rv = (expr)) != 0)                               \
			return at(c, rv, "%s", map_fd[f].name);               \
	} while (0)

	MAP_DO(MF_HANDLE, jstring(c, s[MF_HANDLE], &str));
	MAP_DO(MF_SEQ, jint(c, s[MF_SEQ], INT64_MIN, INT64_MAX, &msg->seq));
	msg->has_seq = s[MF_SEQ] != 0;
	MAP_DO(MF_KEEPALIVE, jbool(c, s[MF_KEEPALIVE], &msg->keepalive));
	MAP_DO(MF_PING, ping_decode(c, s[MF_PING], msg));
	MAP_DO(MF_POP, jstring(c, s[MF_POP], &msg->pop_url));
	MAP_DO(MF_NODE, node_decode(c, s[MF_NODE], true, &msg->self));
	MAP_DO(MF_DERPMAP, derpmap_decode(c, s[MF_DERPMAP], msg));
	/* direct.go initDisplayNames: the suffix of this or the last self */
	suffix = magic_suffix(msg->self != NULL ? msg->self->name :
						  last_self_name);
	MAP_DO(MF_PEERS, nodes_decode(c, s[MF_PEERS], msg, suffix, &msg->peers,
			     &msg->npeers));
	MAP_DO(MF_CHANGED, nodes_decode(c, s[MF_CHANGED], NULL, suffix,
			       &msg->changed, &msg->nchanged));
	if (s[MF_REMOVED]) {
		MAP_DO(MF_REMOVED, jarr(c, s[MF_REMOVED], &n));
		msg->removed = ctrldi_arena_alloc(c->a, (size_t)n * 8);
		if (msg->removed == NULL)
			return oom(c);
		k = s[MF_REMOVED] + 1;
		for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(d, k)) {
			if (jtype(d, k) == TK_JSON_NULL)
				continue;
			if ((rv = jint(c, k, 1, INT64_MAX, &i64)) != 0)
				return at(c, rv, "PeersRemoved[%u]", i);
			msg->removed[msg->nremoved++] = i64;
		}
	}
	if (s[MF_PATCH]) {
		MAP_DO(MF_PATCH, jarr(c, s[MF_PATCH], &n));
		msg->patches = ctrldi_arena_alloc(c->a, (size_t)n *
		    sizeof(ctrldi_patch));
		if (msg->patches == NULL)
			return oom(c);
		k = s[MF_PATCH] + 1;
		for (uint32_t i = 0; i < n; i++, k = tk_json_tape_next(d, k)) {
			if (jtype(d, k) == TK_JSON_NULL)
				return at(c, fail(c, "null PeerChange"),
				    "PeersChangedPatch[%u]", i);
			if ((rv = patch_decode(c, k, &msg->patches[i])) != 0)
				return at(c, rv, "PeersChangedPatch[%u]", i);
		}
		msg->npatches = n;
	}
	MAP_DO(MF_SEEN, idbool_decode(c, s[MF_SEEN], &msg->seen, &msg->nseen));
	MAP_DO(MF_ONLINE, idbool_decode(c, s[MF_ONLINE], &msg->online,
			      &msg->nonline));
	MAP_DO(MF_DNS, dns_decode(c, s[MF_DNS], msg));
	MAP_DO(MF_DOMAIN, jstring(c, s[MF_DOMAIN], &msg->domain));
	MAP_DO(MF_COLLECT, jbool(c, s[MF_COLLECT], &b));
	msg->collect_services = s[MF_COLLECT] ? b : -1;
	if (s[MF_PF]) {
		MAP_DO(MF_PF, rules_decode(c, s[MF_PF], &msg->base));
		msg->has_pf = true;
		msg->base.name = (ctrldi_str){ "base", 4 };
	}
	MAP_DO(MF_PFS, pfs_decode(c, s[MF_PFS], msg));
	MAP_DO(MF_PROFILES, profiles_decode(c, s[MF_PROFILES], msg));
	if (s[MF_HEALTH]) {
		size_t start = c->pb->len;

		MAP_DO(MF_HEALTH, strings_encode(c, s[MF_HEALTH], c->pb,
				      F_STR(STRING_LIST_ITEMS)));
		msg->has_health = true;
		msg->health = (ctrldi_piece){ (uint32_t)start,
			(uint32_t)(c->pb->len - start) };
	}
	MAP_DO(MF_DISPLAY, check_obj_map(c, s[MF_DISPLAY]));
	MAP_DO(MF_SSH, want(c, s[MF_SSH], TK_JSON_OBJ, "object"));
	if (s[MF_CONTROL_TIME]) {
		ctrldi_time t;

		MAP_DO(MF_CONTROL_TIME, jtime(c, s[MF_CONTROL_TIME], &t));
		if (!t.zero) { /* direct.go: ControlTime != nil && !IsZero */
			msg->has_control_time = true;
			msg->control_time_ms = t.sec * 1000 + t.nsec / 1000000;
		}
	}
	MAP_DO(MF_TKA, want(c, s[MF_TKA], TK_JSON_OBJ, "object"));
	MAP_DO(MF_AUDIT_ID, jstring(c, s[MF_AUDIT_ID], &str));
	MAP_DO(MF_DEBUG, debug_decode(c, s[MF_DEBUG], msg));
	MAP_DO(MF_DIAL_PLAN, dialplan_decode(c, s[MF_DIAL_PLAN], msg));
	MAP_DO(MF_CLIENT_VERSION, want(c, s[MF_CLIENT_VERSION], TK_JSON_OBJ, "object"));
	MAP_DO(MF_AUTO_UPDATE, jbool(c, s[MF_AUTO_UPDATE], &b));
#undef MAP_DO

	if (msg->self != NULL && (rv = node_names(c, msg->self, suffix)) != 0)
		return rv;
	/* Peers were named as they were frozen */
	for (uint32_t i = 0; i < msg->nchanged; i++)
		if ((rv = node_names(c, msg->changed[i], suffix)) != 0)
			return rv;
	return 0;
}

int
ctrldi_mapmsg_decode(ctrldi_mapmsg *msg, const char *p, size_t n,
    char *owned, ctrldi_str last_self_name, char *err, size_t errlen)
{
	dctx c;
	int rv;

	memset(msg, 0, sizeof(*msg));
	ctrldi_arena_init(&msg->arena);
	msg->collect_services = -1;
	memset(&c, 0, sizeof(c));
	c.copy = owned != NULL;
	c.a = &msg->arena;
	ctrldi_arena_init(&c.scratch);
	c.pb = &msg->pb;
	if (p == NULL)
		p = "";
	tk_json_tape_init(&c.d, CTRLDI_MAP_MAX_VALUES, CTRLDI_MAP_MAX_DEPTH);
	if (n > CTRLDI_MAP_MAX_BYTES) {
		if (err != NULL)
			snprintf(err, errlen, "MapResponse of %zu bytes exceeds "
			    "the limit of %u", n, CTRLDI_MAP_MAX_BYTES);
		rv = TK_EPROTO;
	} else {
		rv = tk_json_tape_parse(&c.d, p, n, err, errlen);
	}
	if (rv == 0 && jtype(&c.d, 0) != TK_JSON_OBJ && jtype(&c.d, 0) != TK_JSON_NULL)
		rv = jerr(err, errlen, 0, "MapResponse must be an object");
	if (rv == 0) {
		rv = map_decode(&c, msg, last_self_name);
		if (rv == 0 && msg->pb.err)
			rv = oom(&c);
		if (rv != 0 && err != NULL && errlen > 0) {
			if (c.pathlen > 0)
				snprintf(err, errlen, "%s: %s", c.path, c.msg);
			else
				snprintf(err, errlen, "%s", c.msg);
		}
	}
	tk_json_tape_fini(&c.d);
	tk_free(owned);
	ctrldi_arena_fini(&c.scratch);
	ctrldi_pbw_fini(&c.fz);
	return rv;
}

void
ctrldi_mapmsg_fini(ctrldi_mapmsg *msg)
{
	for (uint32_t i = 0; i < msg->npre; i++)
		ctrldi_node_free(msg->pre[i]);
	msg->npre = 0;
	ctrldi_arena_fini(&msg->arena);
	ctrldi_pbw_fini(&msg->pb);
}

