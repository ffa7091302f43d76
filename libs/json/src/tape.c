/*
 * The JSON tape (tk/json_tape.h): a one-pass strict parser into a flat
 * array of values, and Go's string unquoting.  RFC 8259; Go's
 * encoding/json (scanner.go, decode.go unquote) is the behaviour matched.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "tk/err.h"
#include "tk/json_tape.h"
#include "tk/mem.h"

void
tk_json_tape_init(tk_json_tape *d, uint32_t max_values, unsigned max_depth)
{
	memset(d, 0, sizeof(*d));
	if (max_values == 0 || max_values > UINT32_MAX / 2)
		max_values = UINT32_MAX / 2;
	if (max_depth == 0 || max_depth > TK_JSON_TAPE_DEPTH_MAX)
		max_depth = TK_JSON_TAPE_DEPTH_MAX;
	d->max_values = max_values;
	d->max_depth = max_depth;
}

void
tk_json_tape_fini(tk_json_tape *d)
{
	tk_free(d->t);
	d->t = NULL;
	d->nt = d->cap = 0;
}
uint32_t
tk_json_tape_container_end(const tk_json_tape *d, uint32_t i)
{
	uint32_t next = d->t[i].x, pos, brackets = 1;

	if (next == i + 1) {
		pos = tk_json_tape_off(d, i) + 1;
	} else {
		uint32_t last = next - 1; /* a scalar or an empty container */

		/* the ancestors of last below i close right after it */
		for (uint32_t k = i + 1; k < last; k++)
			if (tk_json_tape_container(d, k) && d->t[k].x == next)
				brackets++;
		pos = tk_json_tape_end(d, last);
		if (tk_json_tape_type(d, last) == TK_JSON_STR)
			pos++; /* its closing quote */
	}
	for (;;) { /* whitespace, then a closing bracket, brackets times */
		while (d->p[pos] == ' ' || d->p[pos] == '\n' ||
		    d->p[pos] == '\r' || d->p[pos] == '\t')
			pos++;
		pos++;
		if (--brackets == 0)
			return pos;
	}
}

void
tk_json_tape_release(tk_json_tape *d, uint32_t from, uint32_t to)
{
	if (from < to && to <= d->nt)
		tk_mem_discard(d->t + from, (size_t)(to - from) * sizeof(*d->t));
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
jpush(tk_json_tape *d, uint32_t type, uint32_t off)
{
	if (d->nt == d->cap) {
		/* first: room for one value per 8 bytes of input, more than
		 * JSON as servers write it has (~13 bytes a value in a
		 * MapResponse), so a large input is one allocation, advised
		 * for huge pages, not a series of doublings; pages past what
		 * is used are never touched */
		uint64_t guess = d->n / 8 + 16;
		uint32_t cap = d->cap ? d->cap * 2 :
		    guess < 256 ? 256 : guess > d->max_values ? d->max_values :
		    (uint32_t)guess;
		tk_json_tok *t;

		if (cap > d->max_values)
			cap = d->max_values;
		if (d->nt >= cap)
			return TK_EMSGSIZE;
		t = tk_realloc(d->t, (size_t)cap * sizeof(*t));
		if (t == NULL)
			return TK_ENOMEM;
		d->t = t;
		d->cap = cap;
		tk_mem_hint_huge(t, (size_t)cap * sizeof(*t));
	}
	d->t[d->nt].ot = type << TK_JSON_SHIFT | off;
	d->t[d->nt].x = 0; /* a scalar's length and flags, a container's
			    * successor, when known */
	d->nt++;
	return 0;
}

/* The last value pushed (a scalar) ends at end. */
static inline void
set_len(tk_json_tape *d, uint32_t end, uint32_t flags)
{
	tk_json_tok *t = &d->t[d->nt - 1];

	t->x = (end - (t->ot & TK_JSON_OFFMAX)) << TK_JSON_FLAGBITS | flags;
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
scan_string(tk_json_tape *d, size_t *ip, char *err, size_t errlen)
{
	const uint8_t *p = (const uint8_t *)d->p;
	size_t i = *ip, n = d->n;
	uint32_t flags = 0;
	int rv;

	if ((rv = jpush(d, TK_JSON_STR, (uint32_t)i)) != 0)
		return rv;
	for (;;) {
		while (i < n && sclass[p[i]] == 0)
			i++;
		if (i >= n)
			return jerr(err, errlen, i, "unterminated string");
		switch (sclass[p[i]]) {
		case 1:
			set_len(d, (uint32_t)i, flags);
			*ip = i + 1;
			return 0;
		case 2:
			flags |= TK_JSON_ESC;
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
			flags |= TK_JSON_HIGH;
			i++;
			break;
		}
	}
}

static int
scan_number(tk_json_tape *d, size_t *ip, char *err, size_t errlen)
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
		flags |= TK_JSON_FLOAT;
		i++;
		if (i >= n || p[i] < '0' || p[i] > '9')
			return jerr(err, errlen, i, "bad number");
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
	}
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		flags |= TK_JSON_FLOAT;
		i++;
		if (i < n && (p[i] == '+' || p[i] == '-'))
			i++;
		if (i >= n || p[i] < '0' || p[i] > '9')
			return jerr(err, errlen, i, "bad number");
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
	}
	if ((rv = jpush(d, TK_JSON_NUM, (uint32_t)start)) != 0)
		return rv;
	set_len(d, (uint32_t)i, flags);
	*ip = i;
	return 0;
}

int
tk_json_tape_parse(tk_json_tape *d, const char *p, size_t n, char *err,
    size_t errlen)
{
	uint32_t stack[TK_JSON_TAPE_DEPTH_MAX];
	unsigned depth = 0;
	size_t i;
	int rv;

	tables_init();
	d->p = p;
	d->n = n;
	d->nt = 0;
	if (n > TK_JSON_OFFMAX) {
		if (err != NULL)
			snprintf(err, errlen, "JSON of %zu bytes is too large", n);
		return TK_EPROTO;
	}
	i = skip_ws(p, n, 0);
	if (i >= n)
		return jerr(err, errlen, i, "no JSON value");

value:
	if (i >= n)
		return jerr(err, errlen, i, "unexpected end of JSON");
	switch (p[i]) {
	case '{':
	case '[':
		if (depth == d->max_depth) {
			if (err != NULL)
				snprintf(err, errlen, "JSON nests deeper than "
				    "%u levels", d->max_depth);
			return TK_EPROTO;
		}
		if ((rv = jpush(d, p[i] == '{' ? TK_JSON_OBJ : TK_JSON_ARR,
			 (uint32_t)i)) != 0)
			goto fail;
		stack[depth++] = d->nt - 1;
		i = skip_ws(p, n, i + 1);
		if (i < n && (p[i] == '}' || p[i] == ']'))
			goto close;
		if (tk_json_tape_type(d, d->nt - 1) == TK_JSON_OBJ)
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
		if ((rv = jpush(d, TK_JSON_TRUE, (uint32_t)i)) != 0)
			goto fail;
		i += 4;
		set_len(d, (uint32_t)i, 0);
		break;
	case 'f':
		if (n - i < 5 || memcmp(p + i, "false", 5) != 0)
			return jerr(err, errlen, i, "bad literal");
		if ((rv = jpush(d, TK_JSON_FALSE, (uint32_t)i)) != 0)
			goto fail;
		i += 5;
		set_len(d, (uint32_t)i, 0);
		break;
	case 'n':
		if (n - i < 4 || memcmp(p + i, "null", 4) != 0)
			return jerr(err, errlen, i, "bad literal");
		if ((rv = jpush(d, TK_JSON_NULL, (uint32_t)i)) != 0)
			goto fail;
		i += 4;
		set_len(d, (uint32_t)i, 0);
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
		if (tk_json_tape_type(d, stack[depth - 1]) == TK_JSON_OBJ)
			goto key;
		goto value;
	}
close:
	{
		tk_json_tok *top = &d->t[stack[depth - 1]];
		char want = tk_json_tape_type(d, stack[depth - 1]) ==
		    TK_JSON_OBJ ? '}' : ']';

		if (p[i] != want)
			return jerr(err, errlen, i, "expected ',' or a closing "
			    "bracket");
		top->x = d->nt;
		depth--;
		i++;
		goto after;
	}

key:
	if (i >= n)
		return jerr(err, errlen, i, "unexpected end of JSON");
	if (p[i] != '"')
		return jerr(err, errlen, i, "expected a string key");
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
			snprintf(err, errlen, "more than %u JSON values",
			    d->max_values);
		return TK_EPROTO;
	}
	if (rv == TK_ENOMEM && err != NULL)
		snprintf(err, errlen, "out of memory parsing JSON");
	return rv;
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

bool
tk_json_utf8_valid(const uint8_t *p, size_t n)
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
		r = 0xfffd; /* NUL too: the result is text */
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

size_t
tk_json_unquote(uint8_t *out, const uint8_t *s, size_t n, bool esc)
{
	uint8_t *o = out;
	size_t i = 0, l;

	tables_init();
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
	return (size_t)(o - out);
}
