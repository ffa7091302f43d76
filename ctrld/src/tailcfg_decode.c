/*
 * MapResponse JSON -> decoded nodes and packed tk.bus.v1 pieces, for the
 * map state (mapstate.c).
 *
 * The JSON parser is our own: jansson takes ~130-190 ms to parse a
 * 10,000-peer netmap and ~90 ms to free it, over the whole budget.  This
 * one makes a flat tape of values in one pass (strings and numbers stay in
 * the input and are decoded when read), checks the grammar strictly (RFC
 * 8259, as Go's encoding/json: no trailing commas, no leading zeros, no
 * control characters in strings, nothing after the value), and caps size,
 * depth and value count.  Decoding then follows Go's encoding/json v1 rules
 * for tailcfg's types: null = absent, field names matched exactly first,
 * then ASCII-case-insensitively, unknown fields ignored, integers only as
 * integer literals within the Go type's range, keys/prefixes/addresses/
 * times parsed strictly.
 *
 * Protobuf encodings are written by hand in field-number order with the
 * same presence rules protobuf-c's packer follows for our values, so that
 * protobuf-c re-packs them to the same bytes (tests check this, and that
 * every field carries the value of the JSON field it mirrors).  Field
 * numbers come from tk/bus/fields.h, generated from proto/ (F_STR() etc.
 * in mapstate.h check each against the type its writer encodes).
 */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tk/enc.h"
#include "tk/err.h"
#include "tk/json.h"
#include "tk/keys.h"
#include "tk/mem.h"
#include "tk/wg_filter.h"
#include "mapstate.h"

/* ---------------------------------------------------------------------
 * Arena
 * ------------------------------------------------------------------ */

struct ctrldi_arena_chunk {
	struct ctrldi_arena_chunk *next;
	size_t cap, used;
	max_align_t data[];
};

#define ARENA_MIN (64u << 10)
#define ARENA_MAX (4u << 20)

void
ctrldi_arena_init(ctrldi_arena *a)
{
	a->head = NULL;
	a->next_size = ARENA_MIN;
}

void
ctrldi_arena_fini(ctrldi_arena *a)
{
	struct ctrldi_arena_chunk *c = a->head, *next;

	for (; c != NULL; c = next) {
		next = c->next;
		tk_free(c);
	}
	a->head = NULL;
}

void *
ctrldi_arena_alloc(ctrldi_arena *a, size_t n)
{
	struct ctrldi_arena_chunk *c = a->head;
	size_t sz;
	void *p;

	n = (n + 7) & ~(size_t)7;
	if (n == 0)
		n = 8;
	if (c == NULL || c->cap - c->used < n) {
		sz = a->next_size;
		if (sz < n)
			sz = n;
		c = tk_malloc(sizeof(*c) + sz);
		if (c == NULL)
			return NULL;
		c->cap = sz;
		c->used = 0;
		c->next = a->head;
		a->head = c;
		if (a->next_size < ARENA_MAX)
			a->next_size *= 2;
	}
	p = (uint8_t *)c->data + c->used;
	c->used += n;
	return p;
}

/* ---------------------------------------------------------------------
 * Protobuf writer
 * ------------------------------------------------------------------ */

void
ctrldi_pbw_fini(ctrldi_pbw *w)
{
	tk_free(w->p);
	memset(w, 0, sizeof(*w));
}

static bool
pbw_grow(ctrldi_pbw *w, size_t extra)
{
	size_t cap;
	uint8_t *p;

	if (w->err)
		return false;
	if (extra > SIZE_MAX / 4 - w->len) {
		w->err = TK_ENOMEM;
		return false;
	}
	cap = w->cap ? w->cap : 4096;
	while (cap - w->len < extra)
		cap *= 2;
	p = tk_realloc(w->p, cap);
	if (p == NULL) {
		w->err = TK_ENOMEM;
		return false;
	}
	w->p = p;
	w->cap = cap;
	return true;
}

/* false once anything failed: later writes are dropped, err says why */
static inline bool
pbw_room(ctrldi_pbw *w, size_t extra)
{
	return !w->err && (w->cap - w->len >= extra || pbw_grow(w, extra));
}

static inline void
put_varint(ctrldi_pbw *w, uint64_t v)
{
	uint8_t *p = w->p + w->len;

	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	w->len = (size_t)(p - w->p);
}

static inline void
pb_varint_field(ctrldi_pbw *w, unsigned field, uint64_t v)
{
	if (!pbw_room(w, 20))
		return;
	put_varint(w, (uint64_t)field << 3);
	put_varint(w, v);
}

/* int32 and int64 are sign-extended to 64 bits (protobuf int32). */
static inline void
pb_int(ctrldi_pbw *w, unsigned field, int64_t v)
{
	pb_varint_field(w, field, (uint64_t)v);
}

static inline void
pb_bool(ctrldi_pbw *w, unsigned field)
{
	pb_varint_field(w, field, 1);
}

static inline void
pb_bytes(ctrldi_pbw *w, unsigned field, const void *p, size_t n)
{
	if (!pbw_room(w, 20 + n))
		return;
	put_varint(w, (uint64_t)field << 3 | 2);
	put_varint(w, n);
	if (n > 0)
		memcpy(w->p + w->len, p, n);
	w->len += n;
}

static inline void
pb_str(ctrldi_pbw *w, unsigned field, ctrldi_str s)
{
	pb_bytes(w, field, s.p, s.n);
}

static inline void
pb_double(ctrldi_pbw *w, unsigned field, double d)
{
	uint64_t u;

	if (!pbw_room(w, 20))
		return;
	memcpy(&u, &d, 8);
	put_varint(w, (uint64_t)field << 3 | 1);
	for (int i = 0; i < 8; i++)
		w->p[w->len++] = (uint8_t)(u >> (8 * i));
}

/* Starts a length-delimited field; one length byte is reserved. */
static inline size_t
pb_open(ctrldi_pbw *w, unsigned field)
{
	if (!pbw_room(w, 16))
		return 0;
	put_varint(w, (uint64_t)field << 3 | 2);
	w->p[w->len++] = 0;
	return w->len;
}

static void
pb_close(ctrldi_pbw *w, size_t mark)
{
	size_t len, extra = 0, v;

	if (w->err)
		return;
	len = w->len - mark;
	for (v = len; v >= 0x80; v >>= 7)
		extra++;
	if (extra > 0) {
		if (!pbw_room(w, extra))
			return;
		memmove(w->p + mark + extra, w->p + mark, len);
		w->len += extra;
	}
	{
		uint8_t *p = w->p + mark - 1;

		v = len;
		while (v >= 0x80) {
			*p++ = (uint8_t)(v | 0x80);
			v >>= 7;
		}
		*p = (uint8_t)v;
	}
}

static void
pb_prefix(ctrldi_pbw *w, unsigned field, const tk_ipprefix *x)
{
	size_t m = pb_open(w, field);

	pb_bytes(w, F_BYTES(PREFIX_ADDR), x->ip.addr,
	    x->ip.family == TK_AF_INET ? 4 : 16);
	pb_varint_field(w, F_UINT(PREFIX_BITS), x->bits);
	pb_close(w, m);
}

static void
pb_ipport(ctrldi_pbw *w, unsigned field, const tk_ipport *x)
{
	size_t m = pb_open(w, field);

	pb_bytes(w, F_BYTES(ADDR_PORT_ADDR), x->ip.addr,
	    x->ip.family == TK_AF_INET ? 4 : 16);
	pb_varint_field(w, F_UINT(ADDR_PORT_PORT), x->port);
	pb_close(w, m);
}

/* ---------------------------------------------------------------------
 * JSON tape
 * ------------------------------------------------------------------ */

enum { J_NULL = 1, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

#define J_ESC	 0x1 /* string: has backslash escapes */
#define J_HIGH	 0x2 /* string: has bytes >= 0x80 */
#define J_FLOAT	 0x4 /* number: fraction or exponent */
#define J_SHIFT	 28
#define J_AUXMAX ((1u << J_SHIFT) - 1)

/*
 * One value.  off/end: strings exclude the quotes; containers include the
 * brackets.  next: index of the value after this one and its children.
 * aux: type << 28 | (container: element or member count; else flags).
 * Object members are a key string followed by the value.
 */
typedef struct jtok {
	uint32_t off, end, next, aux;
} jtok;

typedef struct jdoc {
	const char *p;
	size_t n;
	jtok *t;
	uint32_t nt, cap;
} jdoc;

static inline unsigned
jtype(const jdoc *d, uint32_t i)
{
	return d->t[i].aux >> J_SHIFT;
}

static inline uint32_t
jaux(const jdoc *d, uint32_t i)
{
	return d->t[i].aux & J_AUXMAX;
}

/* Byte classes inside strings: 0 plain, 1 quote, 2 backslash, 3 control,
 * 4 high. */
static uint8_t sclass[256];
static uint8_t hexval[256]; /* 0xff: not hex */

static void
tables_init_once(void)
{
	for (int i = 0; i < 256; i++) {
		sclass[i] = i < 0x20 ? 3 : i >= 0x80 ? 4 : 0;
		hexval[i] = 0xff;
	}
	sclass['"'] = 1;
	sclass['\\'] = 2;
	for (int i = 0; i < 10; i++)
		hexval['0' + i] = (uint8_t)i;
	for (int i = 0; i < 6; i++) {
		hexval['a' + i] = (uint8_t)(10 + i);
		hexval['A' + i] = (uint8_t)(10 + i);
	}
}

static void
tables_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, tables_init_once);
}

static int
jerr(char *err, size_t errlen, size_t off, const char *what)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "JSON offset %zu: %s", off, what);
	return TK_EPROTO;
}

static int
jpush(jdoc *d, uint32_t type, uint32_t off)
{
	if (d->nt == d->cap) {
		uint32_t cap = d->cap ? d->cap * 2 : 256;
		jtok *t;

		if (cap > CTRLDI_MAP_MAX_VALUES)
			cap = CTRLDI_MAP_MAX_VALUES;
		if (d->nt >= cap)
			return TK_EMSGSIZE;
		t = tk_realloc(d->t, (size_t)cap * sizeof(*t));
		if (t == NULL)
			return TK_ENOMEM;
		d->t = t;
		d->cap = cap;
	}
	d->t[d->nt].off = off;
	d->t[d->nt].end = off;
	d->t[d->nt].next = d->nt + 1;
	d->t[d->nt].aux = type << J_SHIFT;
	d->nt++;
	return 0;
}

static inline size_t
skip_ws(const char *p, size_t n, size_t i)
{
	while (i < n && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' ||
			    p[i] == '\t'))
		i++;
	return i;
}

/* Scans the string starting after its opening quote at i. */
static int
scan_string(jdoc *d, size_t *ip, char *err, size_t errlen)
{
	const uint8_t *p = (const uint8_t *)d->p;
	size_t i = *ip, n = d->n;
	uint32_t flags = 0;
	int rv;

	if ((rv = jpush(d, J_STR, (uint32_t)i)) != 0)
		return rv;
	for (;;) {
		while (i < n && sclass[p[i]] == 0)
			i++;
		if (i >= n)
			return jerr(err, errlen, i, "unterminated string");
		switch (sclass[p[i]]) {
		case 1:
			d->t[d->nt - 1].end = (uint32_t)i;
			d->t[d->nt - 1].aux |= flags;
			*ip = i + 1;
			return 0;
		case 2:
			flags |= J_ESC;
			if (i + 1 >= n)
				return jerr(err, errlen, i, "unterminated string");
			switch (p[i + 1]) {
			case '"': case '\\': case '/': case 'b': case 'f':
			case 'n': case 'r': case 't':
				i += 2;
				break;
			case 'u':
				if (i + 5 >= n || hexval[p[i + 2]] == 0xff ||
				    hexval[p[i + 3]] == 0xff ||
				    hexval[p[i + 4]] == 0xff ||
				    hexval[p[i + 5]] == 0xff)
					return jerr(err, errlen, i,
					    "bad \\u escape in string");
				i += 6;
				break;
			default:
				return jerr(err, errlen, i,
				    "bad escape in string");
			}
			break;
		case 3:
			return jerr(err, errlen, i,
			    "control character in string");
		default:
			flags |= J_HIGH;
			i++;
			break;
		}
	}
}

static int
scan_number(jdoc *d, size_t *ip, char *err, size_t errlen)
{
	const char *p = d->p;
	size_t i = *ip, n = d->n, start = i;
	uint32_t flags = 0;
	int rv;

	if (p[i] == '-')
		i++;
	if (i < n && p[i] == '0') {
		i++;
	} else if (i < n && p[i] >= '1' && p[i] <= '9') {
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
	} else {
		return jerr(err, errlen, i, "bad number");
	}
	if (i < n && p[i] == '.') {
		flags |= J_FLOAT;
		i++;
		if (i >= n || p[i] < '0' || p[i] > '9')
			return jerr(err, errlen, i, "bad number");
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		flags |= J_FLOAT;
		i++;
		if (i < n && (p[i] == '+' || p[i] == '-'))
			i++;
		if (i >= n || p[i] < '0' || p[i] > '9')
			return jerr(err, errlen, i, "bad number");
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
	}
	if ((rv = jpush(d, J_NUM, (uint32_t)start)) != 0)
		return rv;
	d->t[d->nt - 1].end = (uint32_t)i;
	d->t[d->nt - 1].aux |= flags;
	*ip = i;
	return 0;
}

static int
jparse(jdoc *d, const char *p, size_t n, char *err, size_t errlen)
{
	uint32_t stack[CTRLDI_MAP_MAX_DEPTH];
	unsigned depth = 0;
	size_t i;
	int rv;

	tables_init();
	d->p = p;
	d->n = n;
	d->nt = 0;
	if (n > CTRLDI_MAP_MAX_BYTES) {
		if (err != NULL)
			snprintf(err, errlen, "MapResponse of %zu bytes exceeds "
			    "the limit of %u", n, CTRLDI_MAP_MAX_BYTES);
		return TK_EPROTO;
	}
	i = skip_ws(p, n, 0);
	if (i >= n)
		return jerr(err, errlen, i, "no JSON value");

value:
	if (i >= n)
		return jerr(err, errlen, i, "unexpected end of JSON");
	if (depth > 0) {
		jtok *top = &d->t[stack[depth - 1]];

		if ((top->aux & J_AUXMAX) == J_AUXMAX)
			return jerr(err, errlen, i, "container too large");
		if (top->aux >> J_SHIFT == J_ARR)
			top->aux++;
	}
	switch (p[i]) {
	case '{':
	case '[':
		if (depth == CTRLDI_MAP_MAX_DEPTH) {
			if (err != NULL)
				snprintf(err, errlen, "JSON nests deeper than "
				    "%u levels", CTRLDI_MAP_MAX_DEPTH);
			return TK_EPROTO;
		}
		if ((rv = jpush(d, p[i] == '{' ? J_OBJ : J_ARR,
			 (uint32_t)i)) != 0)
			goto fail;
		stack[depth++] = d->nt - 1;
		i = skip_ws(p, n, i + 1);
		if (i < n && (p[i] == '}' || p[i] == ']'))
			goto close;
		if (d->t[d->nt - 1].aux >> J_SHIFT == J_OBJ)
			goto key;
		goto value;
	case '"':
		i++;
		if ((rv = scan_string(d, &i, err, errlen)) != 0)
			goto fail;
		break;
	case 't':
		if (n - i < 4 || memcmp(p + i, "true", 4) != 0)
			return jerr(err, errlen, i, "bad literal");
		if ((rv = jpush(d, J_TRUE, (uint32_t)i)) != 0)
			goto fail;
		i += 4;
		d->t[d->nt - 1].end = (uint32_t)i;
		break;
	case 'f':
		if (n - i < 5 || memcmp(p + i, "false", 5) != 0)
			return jerr(err, errlen, i, "bad literal");
		if ((rv = jpush(d, J_FALSE, (uint32_t)i)) != 0)
			goto fail;
		i += 5;
		d->t[d->nt - 1].end = (uint32_t)i;
		break;
	case 'n':
		if (n - i < 4 || memcmp(p + i, "null", 4) != 0)
			return jerr(err, errlen, i, "bad literal");
		if ((rv = jpush(d, J_NULL, (uint32_t)i)) != 0)
			goto fail;
		i += 4;
		d->t[d->nt - 1].end = (uint32_t)i;
		break;
	default:
		if (p[i] == '-' || (p[i] >= '0' && p[i] <= '9')) {
			if ((rv = scan_number(d, &i, err, errlen)) != 0)
				goto fail;
			break;
		}
		return jerr(err, errlen, i, "unexpected character");
	}

after:
	if (depth == 0) {
		i = skip_ws(p, n, i);
		if (i != n)
			return jerr(err, errlen, i,
			    "data after the top-level value");
		return 0;
	}
	i = skip_ws(p, n, i);
	if (i >= n)
		return jerr(err, errlen, i, "unexpected end of JSON");
	if (p[i] == ',') {
		i = skip_ws(p, n, i + 1);
		if (d->t[stack[depth - 1]].aux >> J_SHIFT == J_OBJ)
			goto key;
		goto value;
	}
close:
	{
		jtok *top = &d->t[stack[depth - 1]];
		char want = top->aux >> J_SHIFT == J_OBJ ? '}' : ']';

		if (p[i] != want)
			return jerr(err, errlen, i, "expected ',' or a closing "
			    "bracket");
		top->end = (uint32_t)(i + 1);
		top->next = d->nt;
		depth--;
		i++;
		goto after;
	}

key:
	if (i >= n)
		return jerr(err, errlen, i, "unexpected end of JSON");
	if (p[i] != '"')
		return jerr(err, errlen, i, "expected a string key");
	{
		jtok *top = &d->t[stack[depth - 1]];

		if ((top->aux & J_AUXMAX) == J_AUXMAX)
			return jerr(err, errlen, i, "container too large");
		top->aux++;
	}
	i++;
	if ((rv = scan_string(d, &i, err, errlen)) != 0)
		goto fail;
	i = skip_ws(p, n, i);
	if (i >= n || p[i] != ':')
		return jerr(err, errlen, i, "expected ':'");
	i = skip_ws(p, n, i + 1);
	goto value; /* counted with its key, not again */

fail:
	if (rv == TK_EMSGSIZE) {
		if (err != NULL)
			snprintf(err, errlen, "MapResponse has more than %u "
			    "JSON values", CTRLDI_MAP_MAX_VALUES);
		return TK_EPROTO;
	}
	if (rv == TK_ENOMEM && err != NULL)
		snprintf(err, errlen, "out of memory parsing JSON");
	return rv;
}

/* ---------------------------------------------------------------------
 * Decoding context, errors with a path
 * ------------------------------------------------------------------ */

typedef struct dctx {
	jdoc d;
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
	case J_NULL: return "null";
	case J_FALSE: case J_TRUE: return "bool";
	case J_NUM: return "number";
	case J_STR: return "string";
	case J_ARR: return "array";
	default: return "object";
	}
}

static int
want(dctx *c, uint32_t ti, unsigned type, const char *what)
{
	unsigned t = jtype(&c->d, ti);

	if (t == type || (type == J_TRUE && t == J_FALSE))
		return 0;
	return fail(c, "%s expected, got %s", what, tname(t));
}

/* ---------------------------------------------------------------------
 * Strings
 * ------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at p (Go's utf8.DecodeRune rules:
 * no overlong forms, no surrogates, <= U+10FFFF), 0 if invalid. */
static size_t
utf8_len(const uint8_t *p, size_t n)
{
	uint8_t c = p[0];

	if (c < 0x80)
		return 1;
	if (c < 0xc2)
		return 0;
	if (c < 0xe0)
		return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c < 0xf0) {
		if (n < 3 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && p[1] < 0xa0)
			return 0;
		if (c == 0xed && p[1] >= 0xa0)
			return 0;
		return 3;
	}
	if (c < 0xf5) {
		if (n < 4 || (p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 ||
		    (p[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && p[1] < 0x90)
			return 0;
		if (c == 0xf4 && p[1] >= 0x90)
			return 0;
		return 4;
	}
	return 0;
}

static bool
utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0, l;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((l = utf8_len(p + i, n - i)) == 0)
			return false;
		i += l;
	}
	return true;
}

static uint8_t *
put_rune(uint8_t *o, uint32_t r)
{
	if (r == 0 || (r >= 0xd800 && r <= 0xdfff) || r > 0x10ffff)
		r = 0xfffd; /* NUL too: see mapstate.h */
	if (r < 0x80) {
		*o++ = (uint8_t)r;
	} else if (r < 0x800) {
		*o++ = (uint8_t)(0xc0 | r >> 6);
		*o++ = (uint8_t)(0x80 | (r & 0x3f));
	} else if (r < 0x10000) {
		*o++ = (uint8_t)(0xe0 | r >> 12);
		*o++ = (uint8_t)(0x80 | ((r >> 6) & 0x3f));
		*o++ = (uint8_t)(0x80 | (r & 0x3f));
	} else {
		*o++ = (uint8_t)(0xf0 | r >> 18);
		*o++ = (uint8_t)(0x80 | ((r >> 12) & 0x3f));
		*o++ = (uint8_t)(0x80 | ((r >> 6) & 0x3f));
		*o++ = (uint8_t)(0x80 | (r & 0x3f));
	}
	return o;
}

static uint32_t
hex4(const uint8_t *p)
{
	return (uint32_t)hexval[p[0]] << 12 | (uint32_t)hexval[p[1]] << 8 |
	    (uint32_t)hexval[p[2]] << 4 | hexval[p[3]];
}

/*
 * Go's encoding/json unquote: escapes decoded, a surrogate pair combined,
 * a lone surrogate and every byte of invalid UTF-8 become U+FFFD.
 */
static int
unquote(dctx *c, const uint8_t *s, size_t n, bool esc, ctrldi_str *out)
{
	uint8_t *o, *start;
	size_t i = 0, l;

	if (n > (SIZE_MAX - 1) / 3 ||
	    (start = ctrldi_arena_alloc(c->a, 3 * n + 1)) == NULL)
		return oom(c);
	o = start;
	while (i < n) {
		uint8_t ch = s[i];

		if (esc && ch == '\\') {
			uint32_t r;

			switch (s[i + 1]) {
			case 'b': *o++ = '\b'; i += 2; continue;
			case 'f': *o++ = '\f'; i += 2; continue;
			case 'n': *o++ = '\n'; i += 2; continue;
			case 'r': *o++ = '\r'; i += 2; continue;
			case 't': *o++ = '\t'; i += 2; continue;
			case 'u': break;
			default: *o++ = s[i + 1]; i += 2; continue;
			}
			r = hex4(s + i + 2);
			i += 6;
			if (r >= 0xd800 && r < 0xdc00 && i + 6 <= n &&
			    s[i] == '\\' && s[i + 1] == 'u') {
				uint32_t r2 = hex4(s + i + 2);

				if (r2 >= 0xdc00 && r2 < 0xe000) {
					r = 0x10000 + ((r - 0xd800) << 10) +
					    (r2 - 0xdc00);
					i += 6;
				}
			}
			o = put_rune(o, r);
			continue;
		}
		if (ch < 0x80) {
			*o++ = ch;
			i++;
			continue;
		}
		if ((l = utf8_len(s + i, n - i)) == 0) {
			o = put_rune(o, 0xfffd);
			i++;
			continue;
		}
		memcpy(o, s + i, l);
		o += l;
		i += l;
	}
	*o = '\0';
	out->p = (const char *)start;
	out->n = (uint32_t)(o - start);
	return 0;
}

/* The string value of token ti (must be a string). */
static int
jstr(dctx *c, uint32_t ti, ctrldi_str *out)
{
	const jtok *t = &c->d.t[ti];
	const uint8_t *s = (const uint8_t *)c->d.p + t->off;
	size_t n = t->end - t->off;
	uint32_t f = t->aux & (J_ESC | J_HIGH);

	if (f == 0 || (f == J_HIGH && utf8_valid(s, n))) {
		out->p = (const char *)s;
		out->n = (uint32_t)n;
		return 0;
	}
	return unquote(c, s, n, (f & J_ESC) != 0, out);
}

/* A raw JSON value (tailcfg.RawMessage), invalid UTF-8 replaced. */
static int
jraw(dctx *c, uint32_t ti, ctrldi_str *out)
{
	const jtok *t = &c->d.t[ti];
	uint32_t off = t->off, end = t->end;
	const uint8_t *s;

	if (jtype(&c->d, ti) == J_STR) {
		off--;
		end++;
	}
	s = (const uint8_t *)c->d.p + off;
	if (utf8_valid(s, end - off)) {
		out->p = (const char *)s;
		out->n = end - off;
		return 0;
	}
	return unquote(c, s, end - off, false, out);
}

static bool
str_eq(ctrldi_str a, ctrldi_str b)
{
	return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static int
str_cmp(ctrldi_str a, ctrldi_str b)
{
	int r = memcmp(a.p, b.p, a.n < b.n ? a.n : b.n);

	if (r != 0)
		return r;
	return a.n < b.n ? -1 : a.n > b.n;
}

static int
str_qcmp(const void *a, const void *b)
{
	return str_cmp(*(const ctrldi_str *)a, *(const ctrldi_str *)b);
}

/* ---------------------------------------------------------------------
 * Objects
 * ------------------------------------------------------------------ */

typedef struct fdesc {
	const char *name;
	uint8_t len;
} fdesc;

#define F(s) { s, sizeof(s) - 1 }

/*
 * Sorts the members of object ti into slot[] by field (0: absent or
 * null; a later duplicate wins).  Go's encoder writes fields in struct
 * order, so the search starts after the last match.
 */
static int
jfields(dctx *c, uint32_t ti, const fdesc *fd, size_t nf, uint32_t *slot,
    const char *what)
{
	const jdoc *d = &c->d;
	uint32_t count, k = ti + 1;
	size_t hint = 0;
	int rv;

	if ((rv = want(c, ti, J_OBJ, what)) != 0)
		return rv;
	memset(slot, 0, nf * sizeof(*slot));
	count = jaux(d, ti);
	for (uint32_t m = 0; m < count; m++) {
		uint32_t v = k + 1;
		ctrldi_str key;
		size_t f, j;

		if (d->t[k].aux & (J_ESC | J_HIGH)) {
			if ((rv = jstr(c, k, &key)) != 0)
				return rv;
		} else {
			key.p = d->p + d->t[k].off;
			key.n = d->t[k].end - d->t[k].off;
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
			slot[f] = jtype(d, v) == J_NULL ? 0 : v;
			hint = f + 1 < nf ? f + 1 : 0;
		}
		k = d->t[v].next;
	}
	return 0;
}

/* Whether object ti has member `f` (matched as jfields does) = null. */
static bool
jnull_member(dctx *c, uint32_t ti, fdesc f)
{
	const jdoc *d = &c->d;
	uint32_t count = jaux(d, ti), k = ti + 1;
	bool null = false;

	for (uint32_t m = 0; m < count; m++) {
		ctrldi_str key;

		if (jstr(c, k, &key) == 0 && key.n == f.len &&
		    strncasecmp(key.p, f.name, f.len) == 0)
			null = jtype(d, k + 1) == J_NULL; /* the last one counts */
		k = d->t[k + 1].next;
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
	const jtok *t = &c->d.t[ti];
	const char *s = c->d.p + t->off;
	size_t n = t->end - t->off, i = 0;
	uint64_t v = 0, lim;
	bool neg = false;
	int rv;

	if ((rv = want(c, ti, J_NUM, "integer")) != 0)
		return rv;
	if (t->aux & J_FLOAT)
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
	const jtok *t = &c->d.t[ti];
	size_t n = t->end - t->off;
	char buf[64], *end, *s = buf;
	int rv;

	if ((rv = want(c, ti, J_NUM, "number")) != 0)
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
	int rv = want(c, ti, J_TRUE, "bool");

	if (rv == 0)
		*out = jtype(&c->d, ti) == J_TRUE;
	return rv;
}

static int
jstring(dctx *c, uint32_t ti, ctrldi_str *out)
{
	int rv = want(c, ti, J_STR, "string");

	return rv != 0 ? rv : jstr(c, ti, out);
}

/* Raw text of a string token without escapes (keys, addresses, times). */
static int
jtext(dctx *c, uint32_t ti, const char *what, const char **s, size_t *n)
{
	ctrldi_str v;
	int rv;

	if ((rv = want(c, ti, J_STR, what)) != 0)
		return rv;
	if ((rv = jstr(c, ti, &v)) != 0)
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
	int rv = want(c, ti, J_ARR, "array");

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

/* A []string; null elements are "" (Go). */
static int
jstrings(dctx *c, uint32_t ti, ctrldi_str **out, uint32_t *nout)
{
	uint32_t n, k = ti + 1;
	ctrldi_str *v;
	int rv;

	if ((rv = jarr(c, ti, &n)) != 0)
		return rv;
	if ((v = ctrldi_arena_alloc(c->a, (size_t)n * sizeof(*v))) == NULL)
		return oom(c);
	for (uint32_t i = 0; i < n; i++, k = c->d.t[k].next) {
		v[i].p = "";
		v[i].n = 0;
		if (jtype(&c->d, k) == J_NULL)
			continue;
		if ((rv = jstring(c, k, &v[i])) != 0)
			return at(c, rv, "[%u]", i);
	}
	*out = v;
	*nout = n;
	return 0;
}

/* A []netip.Prefix (null elements refused). */
static int
jprefixes(dctx *c, uint32_t ti, tk_ipprefix **out, uint32_t *nout)
{
	uint32_t n, k = ti + 1;
	tk_ipprefix *v;
	int rv;

	if ((rv = jarr(c, ti, &n)) != 0)
		return rv;
	if ((v = ctrldi_arena_alloc(c->a, (size_t)n * sizeof(*v))) == NULL)
		return oom(c);
	for (uint32_t i = 0; i < n; i++, k = c->d.t[k].next)
		if ((rv = jprefix(c, k, &v[i])) != 0)
			return at(c, rv, "[%u]", i);
	*out = v;
	*nout = n;
	return 0;
}

static int
jipports(dctx *c, uint32_t ti, tk_ipport **out, uint32_t *nout)
{
	uint32_t n, k = ti + 1;
	tk_ipport *v;
	int rv;

	if ((rv = jarr(c, ti, &n)) != 0)
		return rv;
	if ((v = ctrldi_arena_alloc(c->a, (size_t)n * sizeof(*v))) == NULL)
		return oom(c);
	for (uint32_t i = 0; i < n; i++, k = c->d.t[k].next)
		if ((rv = jipport(c, k, &v[i])) != 0)
			return at(c, rv, "[%u]", i);
	*out = v;
	*nout = n;
	return 0;
}

/* A []netip.Addr, checked (values unused). */
static int
jaddrs_check(dctx *c, uint32_t ti)
{
	uint32_t n, k = ti + 1;
	tk_ipaddr a;
	int rv;

	if ((rv = jarr(c, ti, &n)) != 0)
		return rv;
	for (uint32_t i = 0; i < n; i++, k = c->d.t[k].next)
		if (jtype(&c->d, k) != J_NULL && (rv = jaddr(c, k, &a)) != 0)
			return at(c, rv, "[%u]", i);
	return 0;
}

static int
cap_cmp(const void *a, const void *b)
{
	const ctrldi_capent *x = a, *y = b;
	int r = str_cmp(x->name, y->name);

	/* equal names: later first, so the first of a run is the winner */
	if (r == 0)
		r = x < y ? 1 : x > y ? -1 : 0;
	return r;
}

/* A map[string][]RawMessage (NodeCapMap, PeerCapMap): sorted, last wins. */
static int
jcapmap(dctx *c, uint32_t ti, ctrldi_capent **out, uint32_t *nout)
{
	const jdoc *d = &c->d;
	uint32_t n, k = ti + 1, w = 0;
	ctrldi_capent *v;
	int rv;

	if ((rv = want(c, ti, J_OBJ, "object")) != 0)
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
		if (jtype(d, val) != J_NULL) {
			if ((rv = jarr(c, val, &nv)) != 0)
				return at(c, rv, "[\"%.*s\"]",
				    (int)TK_MIN(v[i].name.n, 40), v[i].name.p);
			v[i].vals = ctrldi_arena_alloc(c->a,
			    (size_t)nv * sizeof(ctrldi_str));
			if (v[i].vals == NULL)
				return oom(c);
			for (uint32_t j = 0; j < nv; j++, e = d->t[e].next)
				if ((rv = jraw(c, e, &v[i].vals[j])) != 0)
					return rv;
			v[i].nvals = nv;
		}
		k = d->t[val].next;
	}
	if (n > 1) {
		qsort(v, n, sizeof(*v), cap_cmp);
		for (uint32_t i = 0; i < n; i++)
			if (w == 0 || !str_eq(v[w - 1].name, v[i].name))
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
	const jtok *t = &c->d.t[ti];

	if (jtype(&c->d, ti) == J_ARR && jaux(&c->d, ti) == 0)
		return 0;
	return fnv1a(c->d.p + t->off, t->end - t->off) | 1;
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

/* tailcfg.go Node, in struct order (Go's encoder writes them so). */
static const fdesc node_fd[NF_COUNT] = {
	F("ID"), F("StableID"), F("Name"), F("User"), F("Sharer"), F("Key"),
	F("KeyExpiry"), F("KeySignature"), F("Machine"), F("DiscoKey"),
	F("Addresses"), F("AllowedIPs"), F("Endpoints"), F("DERP"),
	F("HomeDERP"), F("Hostinfo"), F("Created"), F("Cap"), F("Tags"),
	F("PrimaryRoutes"), F("LastSeen"), F("Online"), F("MachineAuthorized"),
	F("Capabilities"), F("CapMap"), F("UnsignedPeerAPIOnly"),
	F("ComputedName"), F("ComputedNameWithHost"),
	F("DataPlaneAuditLogID"), F("Expired"),
	F("SelfNodeV4MasqAddrForThisPeer"), F("SelfNodeV6MasqAddrForThisPeer"),
	F("IsWireGuardOnly"), F("IsJailed"), F("ExitNodeDNSResolvers"),
};

enum { HF_OS, HF_HOSTNAME, HF_SERVICES, HF_COUNT };
static const fdesc hostinfo_fd[HF_COUNT] = {
	F("OS"), F("Hostname"), F("Services"),
};

enum { SF_PROTO, SF_PORT, SF_DESC, SF_COUNT };
static const fdesc service_fd[SF_COUNT] = {
	F("Proto"), F("Port"), F("Description"),
};

enum { RF_ADDR, RF_BOOTSTRAP, RF_EXIT, RF_COUNT };
static const fdesc resolver_fd[RF_COUNT] = {
	F("Addr"), F("BootstrapResolution"), F("UseWithExitNode"),
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
	if (s[HF_OS] && (rv = jstring(c, s[HF_OS], &n->os)) != 0)
		return at(c, rv, ".OS");
	if (s[HF_HOSTNAME] &&
	    (rv = jstring(c, s[HF_HOSTNAME], &n->hostname)) != 0)
		return at(c, rv, ".Hostname");
	if (!s[HF_SERVICES])
		return 0;
	if ((rv = jarr(c, s[HF_SERVICES], &ns)) != 0)
		return at(c, rv, ".Services");
	k = s[HF_SERVICES] + 1;
	for (uint32_t i = 0; i < ns; i++, k = c->d.t[k].next) {
		uint32_t f[SF_COUNT];
		ctrldi_str proto = { "", 0 }, desc;
		int64_t port = 0;

		if (jtype(&c->d, k) == J_NULL)
			continue;
		if ((rv = jfields(c, k, service_fd, SF_COUNT, f, "object")) != 0 ||
		    (f[SF_PROTO] && (rv = jstring(c, f[SF_PROTO], &proto)) != 0) ||
		    (f[SF_PORT] && (rv = jint(c, f[SF_PORT], 0, 65535,
					&port)) != 0) ||
		    (f[SF_DESC] && (rv = jstring(c, f[SF_DESC], &desc)) != 0))
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
	ctrldi_str addr = { "", 0 };
	bool exit_node = false;
	size_t m = 0;
	int rv;

	if ((rv = jfields(c, ti, resolver_fd, RF_COUNT, f, "object")) != 0)
		return rv;
	if (f[RF_ADDR] && (rv = jstring(c, f[RF_ADDR], &addr)) != 0)
		return at(c, rv, ".Addr");
	if (f[RF_EXIT] && (rv = jbool(c, f[RF_EXIT], &exit_node)) != 0)
		return at(c, rv, ".UseWithExitNode");
	if (w != NULL) {
		m = pb_open(w, field);
		if (addr.n > 0)
			pb_str(w, F_STR(RESOLVER_ADDR), addr);
	}
	if (f[RF_BOOTSTRAP]) {
		if ((rv = jarr(c, f[RF_BOOTSTRAP], &n)) != 0)
			return at(c, rv, ".BootstrapResolution");
		k = f[RF_BOOTSTRAP] + 1;
		for (uint32_t i = 0; i < n; i++, k = c->d.t[k].next) {
			char text[TK_NETADDR_TEXT_MAX];
			tk_ipaddr a = { 0 };

			if (jtype(&c->d, k) != J_NULL &&
			    (rv = jaddr(c, k, &a)) != 0)
				return at(c, rv, ".BootstrapResolution[%u]", i);
			if (w == NULL)
				continue;
			/* netip.Addr text; the zero Addr is "" in Go */
			if (a.family == 0)
				text[0] = '\0';
			else
				tk_ipaddr_format(&a, text);
			pb_bytes(w, F_STR(RESOLVER_BOOTSTRAP_RESOLUTION), text,
			    strlen(text));
		}
	}
	if (w != NULL) {
		if (exit_node)
			pb_bool(w, F_BOOL(RESOLVER_USE_WITH_EXIT_NODE));
		pb_close(w, m);
	}
	return 0;
}

static bool
prefixes_eq(const tk_ipprefix *a, uint32_t na, const tk_ipprefix *b,
    uint32_t nb)
{
	if (na != nb)
		return false;
	for (uint32_t i = 0; i < na; i++)
		if (a[i].ip.family != b[i].ip.family || a[i].bits != b[i].bits ||
		    memcmp(a[i].ip.addr, b[i].ip.addr, 16) != 0)
			return false;
	return true;
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
	ctrldi_str derp = { "", 0 }, ign;
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

#define NODE_GET(f, expr)                                                     \
	do {                                                                  \
		if (s[f] && (rv = (expr)) != 0)                               \
			return at(c, rv, ".%s", node_fd[f].name);             \
	} while (0)

	if (!s[NF_ID])
		return fail(c, "ID missing");
	NODE_GET(NF_ID, jint(c, s[NF_ID], 1, INT64_MAX, &n->id));
	NODE_GET(NF_STABLE_ID, jstring(c, s[NF_STABLE_ID], &n->stable_id));
	NODE_GET(NF_NAME, jstring(c, s[NF_NAME], &n->name));
	NODE_GET(NF_USER, jint(c, s[NF_USER], INT64_MIN, INT64_MAX, &n->user));
	NODE_GET(NF_SHARER,
	    jint(c, s[NF_SHARER], INT64_MIN, INT64_MAX, &n->sharer));
	NODE_GET(NF_KEY, jkey(c, s[NF_KEY], TK_PREFIX_NODE_PUB, n->key));
	NODE_GET(NF_KEY_EXPIRY, jtime(c, s[NF_KEY_EXPIRY], &n->key_expiry));
	NODE_GET(NF_KEY_SIG, jbase64(c, s[NF_KEY_SIG], &n->keysig));
	if (s[NF_KEY_SIG])
		n->flags |= CTRLDI_N_KEYSIG_NONNIL;
	NODE_GET(NF_MACHINE,
	    jkey(c, s[NF_MACHINE], TK_PREFIX_MACHINE_PUB, n->machine));
	NODE_GET(NF_DISCO, jkey(c, s[NF_DISCO], TK_PREFIX_DISCO_PUB, n->disco));
	NODE_GET(NF_ADDRESSES,
	    jprefixes(c, s[NF_ADDRESSES], &n->addrs, &n->naddrs));
	NODE_GET(NF_ALLOWED,
	    jprefixes(c, s[NF_ALLOWED], &n->allowed, &n->nallowed));
	if (s[NF_ALLOWED])
		allowed_nil = false;
	NODE_GET(NF_ENDPOINTS, jipports(c, s[NF_ENDPOINTS], &n->eps, &n->neps));
	if (s[NF_ENDPOINTS])
		n->flags |= CTRLDI_N_EP_NONNIL;
	NODE_GET(NF_DERP, jstring(c, s[NF_DERP], &derp));
	NODE_GET(NF_HOME_DERP, jint32(c, s[NF_HOME_DERP], &n->home_derp));
	NODE_GET(NF_HOSTINFO, hostinfo_decode(c, s[NF_HOSTINFO], n));
	if (!s[NF_HOSTINFO] && jnull_member(c, ti, node_fd[NF_HOSTINFO])) {
		/* HostinfoView.UnmarshalJSON gets "null" too and makes a
		 * valid, empty Hostinfo: equal to what {} gives */
		n->flags |= CTRLDI_N_HOSTINFO;
		n->hostinfo_hash = fnv1a("{}", 2) | 1;
	}
	NODE_GET(NF_CREATED, jtime(c, s[NF_CREATED], &n->created));
	NODE_GET(NF_CAP, jint32(c, s[NF_CAP], &n->cap));
	NODE_GET(NF_TAGS, jstrings(c, s[NF_TAGS], &n->tags, &n->ntags));
	NODE_GET(NF_PRIMARY,
	    jprefixes(c, s[NF_PRIMARY], &n->primary, &n->nprimary));
	NODE_GET(NF_LAST_SEEN, jtime(c, s[NF_LAST_SEEN], &n->last_seen));
	if (s[NF_LAST_SEEN])
		n->flags |= CTRLDI_N_LAST_SEEN;
	NODE_GET(NF_ONLINE, jbool(c, s[NF_ONLINE], &b));
	if (s[NF_ONLINE])
		n->flags |= CTRLDI_N_ONLINE_KNOWN | (b ? CTRLDI_N_ONLINE : 0);

#define NODE_FLAG(f, bit)                                                     \
	do {                                                                  \
		NODE_GET(f, jbool(c, s[f], &b));                              \
		if (s[f] && b)                                                \
			n->flags |= (bit);                                    \
	} while (0)

	NODE_FLAG(NF_MACHINE_AUTH, CTRLDI_N_MACHINE_AUTH);
	NODE_FLAG(NF_UNSIGNED, CTRLDI_N_UNSIGNED);
	NODE_FLAG(NF_EXPIRED, CTRLDI_N_EXPIRED);
	NODE_FLAG(NF_WG_ONLY, CTRLDI_N_WG_ONLY);
	NODE_FLAG(NF_JAILED, CTRLDI_N_JAILED);
	NODE_GET(NF_CAPABILITIES,
	    jstrings(c, s[NF_CAPABILITIES], &n->caps, &n->ncaps));
	NODE_GET(NF_CAPMAP, jcapmap(c, s[NF_CAPMAP], &n->capmap, &n->ncapmap));
	/* set by the client (InitDisplayNames), whatever control sends */
	NODE_GET(NF_COMPUTED_NAME, jstring(c, s[NF_COMPUTED_NAME], &ign));
	NODE_GET(NF_COMPUTED_NAME_HOST,
	    jstring(c, s[NF_COMPUTED_NAME_HOST], &ign));
	NODE_GET(NF_AUDIT_ID, jstring(c, s[NF_AUDIT_ID], &ign));
	NODE_GET(NF_MASQ4, jaddr(c, s[NF_MASQ4], &n->masq4));
	if (s[NF_MASQ4])
		n->flags |= CTRLDI_N_MASQ4;
	NODE_GET(NF_MASQ6, jaddr(c, s[NF_MASQ6], &n->masq6));
	if (s[NF_MASQ6])
		n->flags |= CTRLDI_N_MASQ6;
	if (s[NF_EXIT_DNS]) {
		uint32_t cnt = 0, k = s[NF_EXIT_DNS] + 1;

		NODE_GET(NF_EXIT_DNS, jarr(c, s[NF_EXIT_DNS], &cnt));
		for (uint32_t i = 0; i < cnt; i++, k = c->d.t[k].next)
			if (jtype(&c->d, k) != J_NULL &&
			    (rv = resolver_decode(c, k, NULL, 0)) != 0)
				return at(c, rv, ".ExitNodeDNSResolvers[%u]", i);
		n->exit_dns_hash = jhash(c, s[NF_EXIT_DNS]);
	}
#undef NODE_FLAG
#undef NODE_GET

	/* map.go upgradeNode */
	legacy_derp(n, derp);
	if (allowed_nil) {
		n->allowed = n->addrs;
		n->nallowed = n->naddrs;
	}
	if ((n->flags & CTRLDI_N_UNSIGNED) &&
	    !prefixes_eq(n->allowed, n->nallowed, n->addrs, n->naddrs)) {
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
			    str_cmp(n->capmap[i].name, cv[j]);

			if (r <= 0) {
				m[k++] = n->capmap[i++];
				if (r == 0)
					j++;
			} else {
				if (k == 0 || !str_eq(m[k - 1].name, cv[j]))
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

static const fdesc patch_fd[PF_COUNT] = {
	F("NodeID"), F("DERPRegion"), F("Cap"), F("CapMap"), F("Endpoints"),
	F("Key"), F("KeySignature"), F("DiscoKey"), F("Online"),
	F("LastSeen"), F("KeyExpiry"),
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

#define PATCH_GET(f, bit, expr)                                               \
	do {                                                                  \
		if (s[f]) {                                                   \
			if ((rv = (expr)) != 0)                               \
				return at(c, rv, ".%s", patch_fd[f].name);    \
			pc->set |= (bit);                                     \
		}                                                             \
	} while (0)

	if (!s[PF_NODE_ID])
		return fail(c, "NodeID missing");
	PATCH_GET(PF_NODE_ID, 0, jint(c, s[PF_NODE_ID], 1, INT64_MAX, &pc->id));
	PATCH_GET(PF_DERP_REGION, 0,
	    jint32(c, s[PF_DERP_REGION], &pc->derp_region));
	PATCH_GET(PF_CAP, 0, jint32(c, s[PF_CAP], &pc->cap));
	PATCH_GET(PF_CAPMAP, CTRLDI_P_CAPMAP,
	    jcapmap(c, s[PF_CAPMAP], &pc->capmap, &pc->ncapmap));
	PATCH_GET(PF_ENDPOINTS, CTRLDI_P_EPS,
	    jipports(c, s[PF_ENDPOINTS], &pc->eps, &pc->neps));
	PATCH_GET(PF_KEY, CTRLDI_P_KEY,
	    jkey(c, s[PF_KEY], TK_PREFIX_NODE_PUB, pc->key));
	PATCH_GET(PF_KEY_SIG, CTRLDI_P_KEYSIG,
	    jbase64(c, s[PF_KEY_SIG], &pc->keysig));
	PATCH_GET(PF_DISCO, CTRLDI_P_DISCO,
	    jkey(c, s[PF_DISCO], TK_PREFIX_DISCO_PUB, pc->disco));
	PATCH_GET(PF_ONLINE, CTRLDI_P_ONLINE, jbool(c, s[PF_ONLINE],
						  &pc->online));
	PATCH_GET(PF_LAST_SEEN, CTRLDI_P_LAST_SEEN,
	    jtime(c, s[PF_LAST_SEEN], &pc->last_seen));
	PATCH_GET(PF_KEY_EXPIRY, CTRLDI_P_KEY_EXPIRY,
	    jtime(c, s[PF_KEY_EXPIRY], &pc->key_expiry));
#undef PATCH_GET
	return 0;
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
static const fdesc region_fd[DRF_COUNT] = {
	F("RegionID"), F("RegionCode"), F("RegionName"), F("Latitude"),
	F("Longitude"), F("Avoid"), F("NoMeasureNoHome"), F("Nodes"),
};

enum {
	DNF_NAME, DNF_REGION, DNF_HOST, DNF_CERT, DNF_IPV4, DNF_IPV6,
	DNF_STUN_PORT, DNF_STUN_ONLY, DNF_DERP_PORT, DNF_INSECURE,
	DNF_STUN_TEST, DNF_PORT80, DNF_COUNT
};
static const fdesc derpnode_fd[DNF_COUNT] = {
	F("Name"), F("RegionID"), F("HostName"), F("CertName"), F("IPv4"),
	F("IPv6"), F("STUNPort"), F("STUNOnly"), F("DERPPort"),
	F("InsecureForTests"), F("STUNTestIP"), F("CanPort80"),
};

/* Encodes a string field of an object if present and non-empty. */
static int
str_field(dctx *c, ctrldi_pbw *w, uint32_t ti, unsigned field,
    const char *name)
{
	ctrldi_str v;
	int rv;

	if (!ti)
		return 0;
	if ((rv = jstring(c, ti, &v)) != 0)
		return at(c, rv, ".%s", name);
	if (v.n > 0)
		pb_str(w, field, v);
	return 0;
}

static int
bool_field(dctx *c, ctrldi_pbw *w, uint32_t ti, unsigned field,
    const char *name)
{
	bool b = false;
	int rv;

	if (ti && (rv = jbool(c, ti, &b)) != 0)
		return at(c, rv, ".%s", name);
	if (b)
		pb_bool(w, field);
	return 0;
}

static int
int32_field(dctx *c, ctrldi_pbw *w, uint32_t ti, unsigned field,
    const char *name)
{
	int32_t v = 0;
	int rv;

	if (ti && (rv = jint32(c, ti, &v)) != 0)
		return at(c, rv, ".%s", name);
	if (v != 0)
		pb_int(w, field, v);
	return 0;
}

static int
derpnode_encode(dctx *c, uint32_t ti, ctrldi_pbw *w)
{
	uint32_t s[DNF_COUNT];
	size_t m;
	int rv;

	if ((rv = jfields(c, ti, derpnode_fd, DNF_COUNT, s, "object")) != 0)
		return rv;
	m = pb_open(w, F_MSG(DERP_REGION_NODES));
	if ((rv = str_field(c, w, s[DNF_NAME], F_STR(DERP_NODE_NAME),
		 "Name")) != 0 ||
	    (rv = int32_field(c, w, s[DNF_REGION], F_I32(DERP_NODE_REGION_ID),
		 "RegionID")) != 0 ||
	    (rv = str_field(c, w, s[DNF_HOST], F_STR(DERP_NODE_HOST_NAME),
		 "HostName")) != 0 ||
	    (rv = str_field(c, w, s[DNF_CERT], F_STR(DERP_NODE_CERT_NAME),
		 "CertName")) != 0 ||
	    (rv = str_field(c, w, s[DNF_IPV4], F_STR(DERP_NODE_IPV4),
		 "IPv4")) != 0 ||
	    (rv = str_field(c, w, s[DNF_IPV6], F_STR(DERP_NODE_IPV6),
		 "IPv6")) != 0 ||
	    (rv = int32_field(c, w, s[DNF_STUN_PORT],
		 F_I32(DERP_NODE_STUN_PORT), "STUNPort")) != 0 ||
	    (rv = bool_field(c, w, s[DNF_STUN_ONLY],
		 F_BOOL(DERP_NODE_STUN_ONLY), "STUNOnly")) != 0 ||
	    (rv = int32_field(c, w, s[DNF_DERP_PORT],
		 F_I32(DERP_NODE_DERP_PORT), "DERPPort")) != 0 ||
	    (rv = bool_field(c, w, s[DNF_INSECURE],
		 F_BOOL(DERP_NODE_INSECURE_FOR_TESTS), "InsecureForTests")) !=
		0 ||
	    (rv = str_field(c, w, s[DNF_STUN_TEST],
		 F_STR(DERP_NODE_STUN_TEST_IP), "STUNTestIP")) != 0 ||
	    (rv = bool_field(c, w, s[DNF_PORT80], F_BOOL(DERP_NODE_CAN_PORT80),
		 "CanPort80")) != 0)
		return rv;
	pb_close(w, m);
	return 0;
}

/* One region as a DERPMap.regions entry; id = its map key. */
static int
region_encode(dctx *c, uint32_t ti, int32_t id, ctrldi_pbw *w)
{
	uint32_t s[DRF_COUNT], n, k;
	int32_t ign;
	double lat = 0, lon = 0;
	size_t m;
	int rv;

	if ((rv = jfields(c, ti, region_fd, DRF_COUNT, s, "object")) != 0)
		return rv;
	if (s[DRF_ID] && (rv = jint32(c, s[DRF_ID], &ign)) != 0)
		return at(c, rv, ".RegionID");
	if (s[DRF_LAT] && (rv = jfloat(c, s[DRF_LAT], &lat)) != 0)
		return at(c, rv, ".Latitude");
	if (s[DRF_LON] && (rv = jfloat(c, s[DRF_LON], &lon)) != 0)
		return at(c, rv, ".Longitude");
	m = pb_open(w, F_MSG(DERP_MAP_REGIONS));
	pb_int(w, F_I32(DERP_REGION_REGION_ID), id);
	if ((rv = str_field(c, w, s[DRF_CODE], F_STR(DERP_REGION_REGION_CODE),
		 "RegionCode")) != 0 ||
	    (rv = str_field(c, w, s[DRF_NAME], F_STR(DERP_REGION_REGION_NAME),
		 "RegionName")) != 0)
		return rv;
	if (lat != 0)
		pb_double(w, F_DBL(DERP_REGION_LATITUDE), lat);
	if (lon != 0)
		pb_double(w, F_DBL(DERP_REGION_LONGITUDE), lon);
	if ((rv = bool_field(c, w, s[DRF_AVOID], F_BOOL(DERP_REGION_AVOID),
		 "Avoid")) != 0 ||
	    (rv = bool_field(c, w, s[DRF_NMNH],
		 F_BOOL(DERP_REGION_NO_MEASURE_NO_HOME),
		 "NoMeasureNoHome")) != 0)
		return rv;
	if (s[DRF_NODES]) {
		if ((rv = jarr(c, s[DRF_NODES], &n)) != 0)
			return at(c, rv, ".Nodes");
		k = s[DRF_NODES] + 1;
		for (uint32_t i = 0; i < n; i++, k = c->d.t[k].next) {
			if (jtype(&c->d, k) == J_NULL)
				continue; /* a nil *DERPNode: nothing to use */
			if ((rv = derpnode_encode(c, k, w)) != 0)
				return at(c, rv, ".Nodes[%u]", i);
		}
	}
	pb_close(w, m);
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
	const jdoc *d = &c->d;
	int rv;

	if ((rv = jfields(c, ti, derpmap_fd, DMF_COUNT, s, "object")) != 0)
		return rv;
	msg->has_derp = true;
	if (s[DMF_OMIT] && (rv = jbool(c, s[DMF_OMIT], &msg->derp_omit)) != 0)
		return at(c, rv, ".omitDefaultRegions");
	if (s[DMF_REGIONS]) {
		if ((rv = want(c, s[DMF_REGIONS], J_OBJ, "object")) != 0)
			return at(c, rv, ".Regions");
		msg->derp_has_regions = true;
		n = jaux(d, s[DMF_REGIONS]);
		msg->regions = ctrldi_arena_alloc(c->a,
		    (size_t)n * sizeof(*msg->regions));
		if (msg->regions == NULL)
			return oom(c);
		k = s[DMF_REGIONS] + 1;
		for (uint32_t i = 0; i < n; i++, k = d->t[k + 1].next) {
			int64_t id;
			size_t start = c->pb->len;

			if ((rv = jintkey(c, k, INT32_MIN, INT32_MAX, &id)) != 0)
				return at(c, rv, ".Regions");
			if (jtype(d, k + 1) == J_NULL)
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

			if ((rv = want(c, sc, J_OBJ, "object")) != 0)
				return at(c, rv, ".HomeParams.RegionScore");
			msg->derp_has_scores = true;
			n = jaux(d, sc);
			msg->scores = ctrldi_arena_alloc(c->a,
			    (size_t)n * sizeof(*msg->scores));
			if (msg->scores == NULL)
				return oom(c);
			k = sc + 1;
			for (uint32_t i = 0; i < n; i++, k = d->t[k + 1].next) {
				int64_t id;
				double score = 0;
				size_t start, m;

				if ((rv = jintkey(c, k, INT32_MIN, INT32_MAX,
					 &id)) != 0 ||
				    (jtype(d, k + 1) != J_NULL &&
					(rv = jfloat(c, k + 1, &score)) != 0))
					return at(c, rv,
					    ".HomeParams.RegionScore");
				start = c->pb->len;
				m = pb_open(c->pb,
				    F_MSG(DERP_MAP_REGION_SCORES));
				pb_int(c->pb, F_I32(REGION_SCORE_REGION_ID),
				    id);
				pb_double(c->pb, F_DBL(REGION_SCORE_SCORE),
				    score);
				pb_close(c->pb, m);
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
	m = pb_open(w, field);
	switch (im.im_kind) {
	case TK_WG_IPM_ANY:
		pb_bool(w, F_BOOL(IP_MATCH_ANY));
		break;
	case TK_WG_IPM_CAP:
		pb_bytes(w, F_STR(IP_MATCH_CAP), s.p + 4, s.n - 4);
		break;
	case TK_WG_IPM_PREFIX:
		memset(&x, 0, sizeof(x));
		x.ip.family = im.im_prefix.pf_family == 4 ? TK_AF_INET :
		    TK_AF_INET6;
		memcpy(x.ip.addr, im.im_prefix.pf_addr, sizeof(x.ip.addr));
		x.bits = im.im_prefix.pf_bits;
		pb_prefix(w, F_MSG(IP_MATCH_PREFIX), &x);
		break;
	case TK_WG_IPM_RANGE:
		len = im.im_range.rg_family == 4 ? 4 : 16;
		r = pb_open(w, F_MSG(IP_MATCH_RANGE));
		pb_bytes(w, F_BYTES(IP_RANGE_FIRST), im.im_range.rg_first, len);
		pb_bytes(w, F_BYTES(IP_RANGE_LAST), im.im_range.rg_last, len);
		pb_close(w, r);
		break;
	}
	pb_close(w, m);
	return true;
}

static void
capent_encode(ctrldi_pbw *w, unsigned field, const ctrldi_capent *e)
{
	size_t m = pb_open(w, field);

	pb_str(w, F_STR(CAP_MAP_ENTRY_NAME), e->name);
	for (uint32_t j = 0; j < e->nvals; j++)
		pb_str(w, F_STR(CAP_MAP_ENTRY_JSON_VALUES), e->vals[j]);
	pb_close(w, m);
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
	m = pb_open(w, F_MSG(FILTER_RULE_CAP_GRANT));
	if (s[CGF_DSTS]) {
		if ((rv = jarr(c, s[CGF_DSTS], &n)) != 0)
			return at(c, rv, ".Dsts");
		k = s[CGF_DSTS] + 1;
		for (uint32_t i = 0; i < n; i++, k = c->d.t[k].next) {
			tk_ipprefix x;

			if (jtype(&c->d, k) == J_NULL)
				continue;
			if ((rv = jprefix(c, k, &x)) != 0)
				return at(c, rv, ".Dsts[%u]", i);
			pb_prefix(w, F_MSG(CAP_GRANT_DSTS), &x);
		}
	}
	for (uint32_t i = 0; i < ncaps; i++) {
		ctrldi_capent e = { caps[i], NULL, 0 };

		capent_encode(w, F_MSG(CAP_GRANT_CAP_MAP), &e);
	}
	for (uint32_t i = 0; i < ncm; i++)
		capent_encode(w, F_MSG(CAP_GRANT_CAP_MAP), &cm[i]);
	pb_close(w, m);
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
	m = pb_open(w, F_MSG(PACKET_FILTER_RULES));
	if (s[FRF_SRC]) {
		if ((rv = jarr(c, s[FRF_SRC], &n)) != 0)
			return at(c, rv, ".SrcIPs");
		k = s[FRF_SRC] + 1;
		for (uint32_t i = 0; i < n; i++, k = c->d.t[k].next) {
			ctrldi_str v = { "", 0 };

			if (jtype(&c->d, k) != J_NULL &&
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
		for (uint32_t i = 0; i < n; i++, k = c->d.t[k].next) {
			int64_t v;

			if (jtype(&c->d, k) != J_NULL &&
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
		for (uint32_t i = 0; i < n; i++, k = c->d.t[k].next) {
			uint32_t f[NPF_COUNT], pf[PRF_COUNT] = { 0, 0 };
			ctrldi_str ip = { "", 0 };
			int64_t first = 0, last = 0, bv;
			size_t mark, save;

			if (jtype(&c->d, k) == J_NULL)
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
			mark = pb_open(w, F_MSG(FILTER_RULE_DST_PORTS));
			if (!ipmatch_encode(w, F_MSG(NET_PORT_RANGE_IP), ip,
				true)) {
				if (!w->err)
					w->len = save; /* Go skips it */
				continue;
			}
			pb_varint_field(w, F_UINT(NET_PORT_RANGE_FIRST_PORT),
			    (uint64_t)first);
			pb_varint_field(w, F_UINT(NET_PORT_RANGE_LAST_PORT),
			    (uint64_t)last);
			pb_close(w, mark);
		}
	}
	if (s[FRF_PROTO]) {
		if ((rv = jarr(c, s[FRF_PROTO], &n)) != 0)
			return at(c, rv, ".IPProto");
		k = s[FRF_PROTO] + 1;
		for (uint32_t i = 0; i < n; i++, k = c->d.t[k].next) {
			int64_t v = 0;

			if (jtype(&c->d, k) != J_NULL &&
			    (rv = jint(c, k, INT64_MIN, INT64_MAX, &v)) != 0)
				return at(c, rv, ".IPProto[%u]", i);
			/* Go ignores numbers outside 0..255; the bus is
			 * uint32, so anything unrepresentable becomes a
			 * number the filter ignores too. */
			pb_varint_field(w, F_UINT(FILTER_RULE_IP_PROTO),
			    v >= 0 && v <= UINT32_MAX ? (uint64_t)v : UINT32_MAX);
		}
	}
	if (s[FRF_CAPGRANT]) {
		if ((rv = jarr(c, s[FRF_CAPGRANT], &n)) != 0)
			return at(c, rv, ".CapGrant");
		k = s[FRF_CAPGRANT] + 1;
		for (uint32_t i = 0; i < n; i++, k = c->d.t[k].next) {
			if (jtype(&c->d, k) == J_NULL)
				continue;
			if ((rv = capgrant_encode(c, k, w)) != 0)
				return at(c, rv, ".CapGrant[%u]", i);
		}
	}
	pb_close(w, m);
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
	for (uint32_t i = 0; i < n; i++, k = c->d.t[k].next) {
		if (jtype(&c->d, k) == J_NULL) {
			/* a zero FilterRule: matches nothing, kept */
			size_t m = pb_open(c->pb, F_MSG(PACKET_FILTER_RULES));

			pb_close(c->pb, m);
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
	int r = str_cmp(x->name, y->name);

	if (r == 0)
		r = x < y ? 1 : x > y ? -1 : 0;
	return r;
}

static int
pfs_decode(dctx *c, uint32_t ti, ctrldi_mapmsg *msg)
{
	const jdoc *d = &c->d;
	uint32_t n, k, w = 0;
	int rv;

	if ((rv = want(c, ti, J_OBJ, "object")) != 0)
		return rv;
	msg->has_pfs = true;
	n = jaux(d, ti);
	msg->chunks = ctrldi_arena_alloc(c->a, (size_t)n * sizeof(ctrldi_chunk));
	if (msg->chunks == NULL)
		return oom(c);
	k = ti + 1;
	for (uint32_t i = 0; i < n; i++, k = d->t[k + 1].next) {
		ctrldi_chunk *ch = &msg->chunks[i];

		memset(ch, 0, sizeof(*ch));
		if ((rv = jstr(c, k, &ch->name)) != 0)
			return rv;
		if (jtype(d, k + 1) != J_NULL &&
		    (rv = rules_decode(c, k + 1, ch)) != 0)
			return at(c, rv, "[\"%.*s\"]", (int)TK_MIN(ch->name.n, 40),
			    ch->name.p);
	}
	if (n > 1)
		qsort(msg->chunks, n, sizeof(ctrldi_chunk), chunk_cmp);
	for (uint32_t i = 0; i < n; i++) {
		ctrldi_chunk *ch = &msg->chunks[i];

		if (w > 0 && str_eq(msg->chunks[w - 1].name, ch->name))
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
	F("Name"), F("Type"), F("Value"),
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
	for (uint32_t i = 0; i < n; i++, k = c->d.t[k].next) {
		if (jtype(&c->d, k) == J_NULL)
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
	uint32_t n;
	int rv;

	if ((rv = jstrings(c, ti, &v, &n)) != 0)
		return rv;
	for (uint32_t i = 0; i < n; i++)
		pb_str(w, field, v[i]);
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
	int r = str_cmp(x->suffix, y->suffix);

	if (r == 0)
		r = x < y ? 1 : x > y ? -1 : 0;
	return r;
}

/* Copies a piece of w into w's end (the source may move on growth). */
static void
pb_copy_piece(ctrldi_pbw *w, ctrldi_piece pc)
{
	if (!pbw_room(w, pc.len))
		return;
	memcpy(w->p + w->len, w->p + pc.off, pc.len);
	w->len += pc.len;
}

static int
dns_decode(dctx *c, uint32_t ti, ctrldi_mapmsg *msg)
{
	uint32_t s[DCF_COUNT], n = 0, k, w = 0;
	const jdoc *d = &c->d;
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
		if ((rv = want(c, s[DCF_ROUTES], J_OBJ, "object")) != 0)
			return at(c, rv, ".Routes");
		n = jaux(d, s[DCF_ROUTES]);
		if ((routes = ctrldi_arena_alloc(c->a, (size_t)n *
			 sizeof(*routes))) == NULL)
			return oom(c);
		k = s[DCF_ROUTES] + 1;
		for (uint32_t i = 0; i < n; i++, k = d->t[k + 1].next) {
			size_t m, r0 = pb->len;

			if ((rv = jstr(c, k, &routes[i].suffix)) != 0)
				return rv;
			m = pb_open(pb, F_MSG(DNS_CONFIG_ROUTES));
			pb_str(pb, F_STR(DNS_ROUTE_SUFFIX), routes[i].suffix);
			if (jtype(d, k + 1) != J_NULL &&
			    (rv = resolvers_encode(c, k + 1, pb,
				 F_MSG(DNS_ROUTE_RESOLVERS))) != 0)
				return at(c, rv, ".Routes[\"%.*s\"]",
				    (int)TK_MIN(routes[i].suffix.n, 40),
				    routes[i].suffix.p);
			pb_close(pb, m);
			routes[i].pb = (ctrldi_piece){ (uint32_t)r0,
				(uint32_t)(pb->len - r0) };
		}
		if (n > 1)
			qsort(routes, n, sizeof(*routes), route_cmp);
		for (uint32_t i = 0; i < n; i++)
			if (w == 0 || !str_eq(routes[w - 1].suffix,
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
		pb_bool(pb, F_BOOL(DNS_CONFIG_PROXIED));
	if (s[DCF_CERT_DOMAINS] &&
	    (rv = strings_encode(c, s[DCF_CERT_DOMAINS], pb,
		 F_STR(DNS_CONFIG_CERT_DOMAINS))) != 0)
		return at(c, rv, ".CertDomains");
	if (s[DCF_EXTRA]) {
		if ((rv = jarr(c, s[DCF_EXTRA], &n)) != 0)
			return at(c, rv, ".ExtraRecords");
		k = s[DCF_EXTRA] + 1;
		for (uint32_t i = 0; i < n; i++, k = d->t[k].next) {
			uint32_t f[ERF_COUNT] = { 0, 0, 0 };
			size_t m;

			if (jtype(d, k) != J_NULL &&
			    (rv = jfields(c, k, record_fd, ERF_COUNT, f,
				 "object")) != 0)
				return at(c, rv, ".ExtraRecords[%u]", i);
			m = pb_open(pb, F_MSG(DNS_CONFIG_EXTRA_RECORDS));
			if ((rv = str_field(c, pb, f[ERF_NAME],
				 F_STR(DNS_RECORD_NAME), "Name")) != 0 ||
			    (rv = str_field(c, pb, f[ERF_TYPE],
				 F_STR(DNS_RECORD_TYPE), "Type")) != 0 ||
			    (rv = str_field(c, pb, f[ERF_VALUE],
				 F_STR(DNS_RECORD_VALUE), "Value")) != 0)
				return at(c, rv, ".ExtraRecords[%u]", i);
			pb_close(pb, m);
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
static const fdesc profile_fd[UPF_COUNT] = {
	F("ID"), F("LoginName"), F("DisplayName"), F("ProfilePicURL"),
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
	for (uint32_t i = 0; i < n; i++, k = c->d.t[k].next) {
		uint32_t s[UPF_COUNT];
		ctrldi_str *groups;
		uint32_t ngroups;
		int64_t id = 0;
		size_t start = c->pb->len;

		if (jtype(&c->d, k) == J_NULL)
			continue;
		if ((rv = jfields(c, k, profile_fd, UPF_COUNT, s,
			 "UserProfile object")) != 0 ||
		    (s[UPF_ID] && (rv = jint(c, s[UPF_ID], 0, INT64_MAX,
				       &id)) != 0) ||
		    (s[UPF_GROUPS] && (rv = jstrings(c, s[UPF_GROUPS], &groups,
					   &ngroups)) != 0))
			return at(c, rv, "[%u]", i);
		pb_int(c->pb, F_I64(USER_PROFILE_ID), id);
		if ((rv = str_field(c, c->pb, s[UPF_LOGIN],
			 F_STR(USER_PROFILE_LOGIN_NAME), "LoginName")) != 0 ||
		    (rv = str_field(c, c->pb, s[UPF_DISPLAY],
			 F_STR(USER_PROFILE_DISPLAY_NAME),
			 "DisplayName")) != 0 ||
		    (rv = str_field(c, c->pb, s[UPF_PIC],
			 F_STR(USER_PROFILE_PROFILE_PIC_URL),
			 "ProfilePicURL")) != 0)
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

/* An array of Node objects (null elements refused: Go dereferences them). */
static int
nodes_decode(dctx *c, uint32_t ti, ctrldi_node ***out, uint32_t *nout)
{
	uint32_t n, k;
	ctrldi_node **v;
	int rv;

	if ((rv = jarr(c, ti, &n)) != 0)
		return rv;
	if ((v = ctrldi_arena_alloc(c->a, (size_t)n * sizeof(*v))) == NULL)
		return oom(c);
	k = ti + 1;
	for (uint32_t i = 0; i < n; i++, k = c->d.t[k].next) {
		if (jtype(&c->d, k) == J_NULL)
			return at(c, fail(c, "null node"), "[%u]", i);
		if ((rv = node_decode(c, k, false, &v[i])) != 0)
			return at(c, rv, "[%u]", i);
	}
	*out = v;
	*nout = n;
	return 0;
}

/* A map[NodeID]bool (null values are false). */
static int
idbool_decode(dctx *c, uint32_t ti, ctrldi_idbool **out, uint32_t *nout)
{
	const jdoc *d = &c->d;
	uint32_t n, k;
	ctrldi_idbool *v;
	int rv;

	if ((rv = want(c, ti, J_OBJ, "object")) != 0)
		return rv;
	n = jaux(d, ti);
	if ((v = ctrldi_arena_alloc(c->a, (size_t)n * sizeof(*v))) == NULL)
		return oom(c);
	k = ti + 1;
	for (uint32_t i = 0; i < n; i++, k = d->t[k + 1].next) {
		v[i].v = false;
		if ((rv = jintkey(c, k, 1, INT64_MAX, &v[i].id)) != 0)
			return rv;
		if (jtype(d, k + 1) != J_NULL &&
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

	if ((rv = want(c, ti, J_OBJ, "object")) != 0)
		return rv;
	n = jaux(&c->d, ti);
	k = ti + 1;
	for (uint32_t i = 0; i < n; i++, k = c->d.t[k + 1].next)
		if (jtype(&c->d, k + 1) != J_NULL &&
		    (rv = want(c, k + 1, J_OBJ, "object")) != 0)
			return rv;
	return 0;
}

static int
map_decode(dctx *c, ctrldi_mapmsg *msg, ctrldi_str last_self_name)
{
	uint32_t s[MF_COUNT], n = 0, k;
	const jdoc *d = &c->d;
	ctrldi_str str, suffix;
	int64_t i64;
	bool b;
	int rv;

	if (jtype(d, 0) == J_NULL) /* Go: null leaves the struct zero */
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
	MAP_DO(MF_PEERS, nodes_decode(c, s[MF_PEERS], &msg->peers,
			     &msg->npeers));
	MAP_DO(MF_CHANGED, nodes_decode(c, s[MF_CHANGED], &msg->changed,
			       &msg->nchanged));
	if (s[MF_REMOVED]) {
		MAP_DO(MF_REMOVED, jarr(c, s[MF_REMOVED], &n));
		msg->removed = ctrldi_arena_alloc(c->a, (size_t)n * 8);
		if (msg->removed == NULL)
			return oom(c);
		k = s[MF_REMOVED] + 1;
		for (uint32_t i = 0; i < n; i++, k = d->t[k].next) {
			if (jtype(d, k) == J_NULL)
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
		for (uint32_t i = 0; i < n; i++, k = d->t[k].next) {
			if (jtype(d, k) == J_NULL)
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
	MAP_DO(MF_SSH, want(c, s[MF_SSH], J_OBJ, "object"));
	if (s[MF_CONTROL_TIME]) {
		ctrldi_time t;

		MAP_DO(MF_CONTROL_TIME, jtime(c, s[MF_CONTROL_TIME], &t));
		if (!t.zero) { /* direct.go: ControlTime != nil && !IsZero */
			msg->has_control_time = true;
			msg->control_time_ms = t.sec * 1000 + t.nsec / 1000000;
		}
	}
	MAP_DO(MF_TKA, want(c, s[MF_TKA], J_OBJ, "object"));
	MAP_DO(MF_AUDIT_ID, jstring(c, s[MF_AUDIT_ID], &str));
	MAP_DO(MF_DEBUG, debug_decode(c, s[MF_DEBUG], msg));
	MAP_DO(MF_DIAL_PLAN, want(c, s[MF_DIAL_PLAN], J_OBJ, "object"));
	MAP_DO(MF_CLIENT_VERSION, want(c, s[MF_CLIENT_VERSION], J_OBJ, "object"));
	MAP_DO(MF_AUTO_UPDATE, jbool(c, s[MF_AUTO_UPDATE], &b));
#undef MAP_DO

	/* direct.go initDisplayNames: the suffix of this or the last self */
	suffix = magic_suffix(msg->self != NULL ? msg->self->name :
						  last_self_name);
	if (msg->self != NULL && (rv = node_names(c, msg->self, suffix)) != 0)
		return rv;
	for (uint32_t i = 0; i < msg->npeers; i++)
		if ((rv = node_names(c, msg->peers[i], suffix)) != 0)
			return rv;
	for (uint32_t i = 0; i < msg->nchanged; i++)
		if ((rv = node_names(c, msg->changed[i], suffix)) != 0)
			return rv;
	return 0;
}

int
ctrldi_mapmsg_decode(ctrldi_mapmsg *msg, const char *p, size_t n,
    ctrldi_str last_self_name, char *err, size_t errlen)
{
	dctx c;
	int rv;

	memset(msg, 0, sizeof(*msg));
	ctrldi_arena_init(&msg->arena);
	msg->collect_services = -1;
	memset(&c, 0, sizeof(c));
	c.a = &msg->arena;
	c.pb = &msg->pb;
	if (p == NULL)
		p = "";
	rv = jparse(&c.d, p, n, err, errlen);
	if (rv == 0 && jtype(&c.d, 0) != J_OBJ && jtype(&c.d, 0) != J_NULL)
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
	tk_free(c.d.t);
	return rv;
}

void
ctrldi_mapmsg_fini(ctrldi_mapmsg *msg)
{
	ctrldi_arena_fini(&msg->arena);
	ctrldi_pbw_fini(&msg->pb);
}

/* ---------------------------------------------------------------------
 * Nodes: encoding (tk.bus.v1.Node), freezing, patches
 * ------------------------------------------------------------------ */

bool
ctrldi_time_after(const ctrldi_time *a, const ctrldi_time *b)
{
	return a->sec > b->sec || (a->sec == b->sec && a->nsec > b->nsec);
}

static bool
key_zero(const uint8_t k[32])
{
	static const uint8_t z[32];

	return memcmp(k, z, 32) == 0;
}

static int
pstr_cmp(const void *a, const void *b)
{
	return str_cmp(**(const ctrldi_str *const *)a,
	    **(const ctrldi_str *const *)b);
}

/* Node.capabilities: Capabilities plus the CapMap keys, sorted, unique. */
static void
caps_encode(ctrldi_pbw *w, const ctrldi_node *n)
{
	const ctrldi_str *stack[32], **v = stack, *last = NULL;
	uint32_t nv = n->ncaps, i = 0, j = 0;

	if (nv == 0) {
		for (uint32_t k = 0; k < n->ncapmap; k++)
			pb_str(w, F_STR(NODE_CAPABILITIES), n->capmap[k].name);
		return;
	}
	if (nv > TK_ARRAY_LEN(stack) &&
	    (v = tk_malloc(nv * sizeof(*v))) == NULL) {
		w->err = TK_ENOMEM;
		return;
	}
	for (uint32_t k = 0; k < nv; k++)
		v[k] = &n->caps[k];
	qsort(v, nv, sizeof(*v), pstr_cmp);
	while (i < nv || j < n->ncapmap) {
		const ctrldi_str *x;

		if (j >= n->ncapmap ||
		    (i < nv && str_cmp(*v[i], n->capmap[j].name) <= 0))
			x = v[i++];
		else
			x = &n->capmap[j++].name;
		if (last == NULL || !str_eq(*last, *x))
			pb_str(w, F_STR(NODE_CAPABILITIES), *x);
		last = x;
	}
	if (v != stack)
		tk_free(v);
}

static void
time_encode(ctrldi_pbw *w, unsigned field, const ctrldi_time *t)
{
	if (!t->zero)
		pb_int(w, field, t->sec);
}

static void
node_encode(ctrldi_pbw *w, const ctrldi_node *n)
{
	pb_int(w, F_I64(NODE_ID), n->id);
	if (n->stable_id.n)
		pb_str(w, F_STR(NODE_STABLE_ID), n->stable_id);
	if (n->name.n)
		pb_str(w, F_STR(NODE_NAME), n->name);
	if (n->user)
		pb_int(w, F_I64(NODE_USER), n->user);
	if (!key_zero(n->key))
		pb_bytes(w, F_BYTES(NODE_KEY), n->key, 32);
	time_encode(w, F_I64(NODE_KEY_EXPIRY_UNIX), &n->key_expiry);
	if (!key_zero(n->machine))
		pb_bytes(w, F_BYTES(NODE_MACHINE), n->machine, 32);
	if (!key_zero(n->disco))
		pb_bytes(w, F_BYTES(NODE_DISCO_KEY), n->disco, 32);
	for (uint32_t i = 0; i < n->naddrs; i++)
		pb_prefix(w, F_MSG(NODE_ADDRESSES), &n->addrs[i]);
	for (uint32_t i = 0; i < n->nallowed; i++)
		pb_prefix(w, F_MSG(NODE_ALLOWED_IPS), &n->allowed[i]);
	for (uint32_t i = 0; i < n->neps; i++)
		pb_ipport(w, F_MSG(NODE_ENDPOINTS), &n->eps[i]);
	if (n->home_derp)
		pb_int(w, F_I32(NODE_HOME_DERP), n->home_derp);
	if (n->flags & CTRLDI_N_ONLINE_KNOWN)
		pb_varint_field(w, F_BOOL(NODE_ONLINE),
		    (n->flags & CTRLDI_N_ONLINE) != 0);
	if (n->flags & CTRLDI_N_LAST_SEEN)
		time_encode(w, F_I64(NODE_LAST_SEEN_UNIX), &n->last_seen);
	if (n->flags & CTRLDI_N_MACHINE_AUTH)
		pb_bool(w, F_BOOL(NODE_MACHINE_AUTHORIZED));
	if (n->flags & CTRLDI_N_EXPIRED)
		pb_bool(w, F_BOOL(NODE_EXPIRED));
	for (uint32_t i = 0; i < n->ntags; i++)
		pb_str(w, F_STR(NODE_TAGS), n->tags[i]);
	for (uint32_t i = 0; i < n->nprimary; i++)
		pb_prefix(w, F_MSG(NODE_PRIMARY_ROUTES), &n->primary[i]);
	if (n->cap)
		pb_int(w, F_I32(NODE_CAP), n->cap);
	caps_encode(w, n);
	for (uint32_t i = 0; i < n->ncapmap; i++)
		capent_encode(w, F_MSG(NODE_CAP_MAP), &n->capmap[i]);
	if (n->flags & CTRLDI_N_WG_ONLY)
		pb_bool(w, F_BOOL(NODE_IS_WIREGUARD_ONLY));
	if (n->flags & CTRLDI_N_JAILED)
		pb_bool(w, F_BOOL(NODE_IS_JAILED));
	if (n->flags & CTRLDI_N_UNSIGNED)
		pb_bool(w, F_BOOL(NODE_UNSIGNED_PEER_API_ONLY));
	if (n->computed_name.n)
		pb_str(w, F_STR(NODE_COMPUTED_NAME), n->computed_name);
	if ((n->flags & CTRLDI_N_MASQ4) && n->masq4.family != 0)
		pb_bytes(w, F_BYTES(NODE_SELF_NODE_V4_MASQ_ADDR), n->masq4.addr,
		    n->masq4.family == TK_AF_INET ? 4 : 16);
	if ((n->flags & CTRLDI_N_MASQ6) && n->masq6.family != 0)
		pb_bytes(w, F_BYTES(NODE_SELF_NODE_V6_MASQ_ADDR), n->masq6.addr,
		    n->masq6.family == TK_AF_INET ? 4 : 16);
	if (n->hostname.n)
		pb_str(w, F_STR(NODE_HOSTNAME), n->hostname);
	if (n->os.n)
		pb_str(w, F_STR(NODE_OS), n->os);
	if (n->peerapi4)
		pb_varint_field(w, F_UINT(NODE_PEERAPI4_PORT), n->peerapi4);
	if (n->peerapi6)
		pb_varint_field(w, F_UINT(NODE_PEERAPI6_PORT), n->peerapi6);
	time_encode(w, F_I64(NODE_CREATED_UNIX), &n->created);
	if (n->keysig.n)
		pb_bytes(w, F_BYTES(NODE_KEY_SIGNATURE), n->keysig.p,
		    n->keysig.n);
}

/* Copies for ctrldi_node_freeze: a cursor in one block. */
typedef struct fcur {
	uint8_t *p;
} fcur;

static void *
fc_take(fcur *c, size_t n)
{
	void *p = c->p;

	c->p += n;
	return p;
}

static void *
fc_copy(fcur *c, const void *src, size_t n)
{
	void *p = fc_take(c, n);

	if (n > 0)
		memcpy(p, src, n);
	return p;
}

static ctrldi_str
fc_str(fcur *c, ctrldi_str s)
{
	char *p = fc_take(c, s.n);

	if (s.n)
		memcpy(p, s.p, s.n);
	return (ctrldi_str){ p, s.n };
}

static size_t
strs_bytes(const ctrldi_str *v, uint32_t n)
{
	size_t b = 0;

	for (uint32_t i = 0; i < n; i++)
		b += v[i].n;
	return b;
}

int
ctrldi_node_freeze(const ctrldi_node *n, ctrldi_pbw *scratch,
    const ctrldi_node *same, ctrldi_node **out, bool *identical)
{
	ctrldi_pbw w;
	size_t ptrs, flat, bytes;
	ctrldi_node *f;
	fcur c;

	scratch->len = 0;
	node_encode(scratch, n);
	if (scratch->err) {
		scratch->err = 0;
		return TK_ENOMEM;
	}
	w = *scratch;
	*identical = same != NULL && same->pblen == w.len &&
	    memcmp(same->pb, w.p, w.len) == 0;
	if (*identical && !(same->flags & CTRLDI_N_OPAQUE)) {
		*out = NULL;
		return 0;
	}
	ptrs = n->ncapmap * sizeof(ctrldi_capent) +
	    ((size_t)n->ntags + n->ncaps) * sizeof(ctrldi_str);
	for (uint32_t i = 0; i < n->ncapmap; i++)
		ptrs += n->capmap[i].nvals * sizeof(ctrldi_str);
	flat = ((size_t)n->naddrs + n->nallowed + n->nprimary) *
	    sizeof(tk_ipprefix) + n->neps * sizeof(tk_ipport);
	bytes = (size_t)n->stable_id.n + n->name.n + n->computed_name.n +
	    n->hostname.n + n->os.n + n->keysig.n +
	    strs_bytes(n->tags, n->ntags) + strs_bytes(n->caps, n->ncaps) +
	    w.len;
	for (uint32_t i = 0; i < n->ncapmap; i++)
		bytes += n->capmap[i].name.n +
		    strs_bytes(n->capmap[i].vals, n->capmap[i].nvals);
	if ((f = tk_malloc(sizeof(*f) + ptrs + flat + bytes)) == NULL)
		return TK_ENOMEM;
	*f = *n;
	c.p = (uint8_t *)(f + 1);
	f->capmap = fc_take(&c, n->ncapmap * sizeof(ctrldi_capent));
	f->tags = fc_take(&c, n->ntags * sizeof(ctrldi_str));
	f->caps = fc_take(&c, n->ncaps * sizeof(ctrldi_str));
	for (uint32_t i = 0; i < n->ncapmap; i++) {
		f->capmap[i].nvals = n->capmap[i].nvals;
		f->capmap[i].vals = fc_take(&c,
		    n->capmap[i].nvals * sizeof(ctrldi_str));
	}
	f->addrs = fc_copy(&c, n->addrs, n->naddrs * sizeof(tk_ipprefix));
	f->allowed = fc_copy(&c, n->allowed, n->nallowed * sizeof(tk_ipprefix));
	f->primary = fc_copy(&c, n->primary, n->nprimary * sizeof(tk_ipprefix));
	f->eps = fc_copy(&c, n->eps, n->neps * sizeof(tk_ipport));
	f->stable_id = fc_str(&c, n->stable_id);
	f->name = fc_str(&c, n->name);
	f->computed_name = fc_str(&c, n->computed_name);
	f->hostname = fc_str(&c, n->hostname);
	f->os = fc_str(&c, n->os);
	f->keysig = fc_str(&c, n->keysig);
	for (uint32_t i = 0; i < n->ntags; i++)
		f->tags[i] = fc_str(&c, n->tags[i]);
	for (uint32_t i = 0; i < n->ncaps; i++)
		f->caps[i] = fc_str(&c, n->caps[i]);
	for (uint32_t i = 0; i < n->ncapmap; i++) {
		f->capmap[i].name = fc_str(&c, n->capmap[i].name);
		for (uint32_t j = 0; j < n->capmap[i].nvals; j++)
			f->capmap[i].vals[j] = fc_str(&c, n->capmap[i].vals[j]);
	}
	f->pb = fc_take(&c, w.len);
	memcpy((uint8_t *)f->pb, w.p, w.len);
	f->pblen = (uint32_t)w.len;
	f->flags &= ~CTRLDI_N_OPAQUE;
	TK_ASSERT(c.p == (uint8_t *)(f + 1) + ptrs + flat + bytes);
	*out = f;
	return 0;
}

int
ctrldi_node_opaque(int64_t id, const uint8_t *pb, size_t n,
    ctrldi_node **out)
{
	ctrldi_node *f;

	if (n > UINT32_MAX)
		return TK_EPROTO;
	if ((f = tk_malloc(sizeof(*f) + n)) == NULL)
		return TK_ENOMEM;
	memset(f, 0, sizeof(*f));
	f->id = id;
	f->flags = CTRLDI_N_OPAQUE;
	f->pb = (const uint8_t *)(f + 1);
	memcpy(f + 1, pb, n);
	f->pblen = (uint32_t)n;
	*out = f;
	return 0;
}

void
ctrldi_node_free(ctrldi_node *n)
{
	tk_free(n);
}

static bool
strs_eq(const ctrldi_str *a, uint32_t na, const ctrldi_str *b, uint32_t nb)
{
	if (na != nb)
		return false;
	for (uint32_t i = 0; i < na; i++)
		if (!str_eq(a[i], b[i]))
			return false;
	return true;
}

static bool
ports_eq(const tk_ipport *a, uint32_t na, const tk_ipport *b, uint32_t nb)
{
	if (na != nb)
		return false;
	for (uint32_t i = 0; i < na; i++)
		if (a[i].ip.family != b[i].ip.family || a[i].port != b[i].port ||
		    memcmp(a[i].ip.addr, b[i].ip.addr, 16) != 0)
			return false;
	return true;
}

static bool
time_eq(const ctrldi_time *a, const ctrldi_time *b)
{
	return a->sec == b->sec && a->nsec == b->nsec;
}

static bool
capmap_eq(const ctrldi_capent *a, uint32_t na, const ctrldi_capent *b,
    uint32_t nb)
{
	if (na != nb)
		return false;
	for (uint32_t i = 0; i < na; i++)
		if (!str_eq(a[i].name, b[i].name) ||
		    !strs_eq(a[i].vals, a[i].nvals, b[i].vals, b[i].nvals))
			return false;
	return true;
}

static bool
masq_eq(const ctrldi_node *a, const ctrldi_node *b, uint32_t bit,
    const tk_ipaddr *x, const tk_ipaddr *y)
{
	if (!(a->flags & bit) && !(b->flags & bit))
		return true;
	if (!(a->flags & bit) || !(b->flags & bit))
		return false;
	return x->family == y->family && memcmp(x->addr, y->addr, 16) == 0;
}

bool
ctrldi_node_diff(const ctrldi_node *was, const ctrldi_node *n,
    ctrldi_patch *pc, bool *any)
{
	const uint32_t fixed = CTRLDI_N_MACHINE_AUTH | CTRLDI_N_UNSIGNED |
	    CTRLDI_N_WG_ONLY | CTRLDI_N_JAILED | CTRLDI_N_EXPIRED;

	TK_ASSERT(!(was->flags & CTRLDI_N_OPAQUE));
	/* fields a PeerChange cannot carry: no patch */
	if (was->id != n->id || !str_eq(was->stable_id, n->stable_id) ||
	    !str_eq(was->name, n->name) || was->user != n->user ||
	    was->sharer != n->sharer ||
	    memcmp(was->machine, n->machine, 32) != 0 ||
	    !prefixes_eq(was->addrs, was->naddrs, n->addrs, n->naddrs) ||
	    !prefixes_eq(was->allowed, was->nallowed, n->allowed, n->nallowed) ||
	    (was->flags & CTRLDI_N_HOSTINFO) != (n->flags & CTRLDI_N_HOSTINFO) ||
	    ((n->flags & CTRLDI_N_HOSTINFO) &&
		was->hostinfo_hash != n->hostinfo_hash) ||
	    !time_eq(&was->created, &n->created) ||
	    !strs_eq(was->tags, was->ntags, n->tags, n->ntags) ||
	    !prefixes_eq(was->primary, was->nprimary, n->primary, n->nprimary) ||
	    (was->flags & fixed) != (n->flags & fixed) ||
	    !masq_eq(was, n, CTRLDI_N_MASQ4, &was->masq4, &n->masq4) ||
	    !masq_eq(was, n, CTRLDI_N_MASQ6, &was->masq6, &n->masq6) ||
	    was->exit_dns_hash != n->exit_dns_hash)
		return false;

	memset(pc, 0, sizeof(*pc));
	pc->id = n->id;
	*any = false;
	if (memcmp(was->key, n->key, 32) != 0) {
		pc->set |= CTRLDI_P_KEY;
		memcpy(pc->key, n->key, 32);
		*any = true;
	}
	if (!time_eq(&was->key_expiry, &n->key_expiry)) {
		pc->set |= CTRLDI_P_KEY_EXPIRY;
		pc->key_expiry = n->key_expiry;
		*any = true;
	}
	if (!str_eq(was->keysig, n->keysig)) {
		/* slices.Clone(nil) is nil: only a non-nil one applies */
		if (n->flags & CTRLDI_N_KEYSIG_NONNIL) {
			pc->set |= CTRLDI_P_KEYSIG;
			pc->keysig = n->keysig;
		}
		*any = true;
	}
	if (memcmp(was->disco, n->disco, 32) != 0) {
		pc->set |= CTRLDI_P_DISCO;
		memcpy(pc->disco, n->disco, 32);
		*any = true;
	}
	if (!ports_eq(was->eps, was->neps, n->eps, n->neps)) {
		if (n->flags & CTRLDI_N_EP_NONNIL) {
			pc->set |= CTRLDI_P_EPS;
			pc->eps = n->eps;
			pc->neps = n->neps;
		}
		*any = true;
	}
	if (was->home_derp != n->home_derp) {
		pc->derp_region = n->home_derp; /* applied only if non-zero */
		*any = true;
	}
	if (was->cap != n->cap) {
		pc->cap = n->cap;
		*any = true;
	}
	if (!capmap_eq(was->capmap, was->ncapmap, n->capmap, n->ncapmap)) {
		pc->set |= CTRLDI_P_CAPMAP;
		pc->capmap = n->capmap;
		pc->ncapmap = n->ncapmap;
		*any = true;
	}
	if ((was->flags & CTRLDI_N_ONLINE_KNOWN) &&
	    (n->flags & CTRLDI_N_ONLINE_KNOWN) &&
	    (was->flags & CTRLDI_N_ONLINE) != (n->flags & CTRLDI_N_ONLINE)) {
		pc->set |= CTRLDI_P_ONLINE;
		pc->online = (n->flags & CTRLDI_N_ONLINE) != 0;
		*any = true;
	}
	if ((was->flags & CTRLDI_N_LAST_SEEN) &&
	    (n->flags & CTRLDI_N_LAST_SEEN) &&
	    !time_eq(&was->last_seen, &n->last_seen)) {
		pc->set |= CTRLDI_P_LAST_SEEN;
		pc->last_seen = n->last_seen;
		*any = true;
	}
	return true;
}

ctrldi_node *
ctrldi_node_copy(ctrldi_arena *a, const ctrldi_node *was)
{
	ctrldi_node *n = ctrldi_arena_alloc(a, sizeof(*n));

	TK_ASSERT(!(was->flags & CTRLDI_N_OPAQUE));
	if (n != NULL) {
		*n = *was;
		n->pb = NULL;
		n->pblen = 0;
	}
	return n;
}

ctrldi_node *
ctrldi_node_patch(ctrldi_arena *a, const ctrldi_node *was,
    const ctrldi_patch *pc)
{
	ctrldi_node *n = ctrldi_node_copy(a, was);

	if (n == NULL)
		return NULL;
	if (pc->derp_region != 0)
		n->home_derp = pc->derp_region;
	if (pc->cap != 0)
		n->cap = pc->cap;
	if (pc->set & CTRLDI_P_EPS) {
		n->eps = pc->eps;
		n->neps = pc->neps;
		n->flags |= CTRLDI_N_EP_NONNIL;
	}
	if (pc->set & CTRLDI_P_KEY)
		memcpy(n->key, pc->key, 32);
	if (pc->set & CTRLDI_P_DISCO)
		memcpy(n->disco, pc->disco, 32);
	if (pc->set & CTRLDI_P_ONLINE) {
		n->flags |= CTRLDI_N_ONLINE_KNOWN;
		n->flags &= ~CTRLDI_N_ONLINE;
		if (pc->online)
			n->flags |= CTRLDI_N_ONLINE;
	}
	if (pc->set & CTRLDI_P_LAST_SEEN) {
		n->flags |= CTRLDI_N_LAST_SEEN;
		n->last_seen = pc->last_seen;
	}
	if (pc->set & CTRLDI_P_KEY_EXPIRY)
		n->key_expiry = pc->key_expiry;
	if (pc->set & CTRLDI_P_KEYSIG) {
		n->keysig = pc->keysig;
		n->flags |= CTRLDI_N_KEYSIG_NONNIL;
	}
	if (pc->set & CTRLDI_P_CAPMAP) {
		n->capmap = pc->capmap;
		n->ncapmap = pc->ncapmap;
	}
	return n;
}
