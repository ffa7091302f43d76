/*
 * The sealed JSON bodies of DERP (derp_client.go ClientInfo, derp.go
 * ServerInfo) and the NaCl box around them.
 *
 * Decoding is Go's encoding/json (v1) as it applies to these flat structs,
 * read member by member in order, as Go's decoder reads them (a generic
 * JSON tree would merge duplicate keys and refuse text Go accepts):
 *  - the text must be valid JSON (RFC 8259 as Go's scanner checks it,
 *    nesting <= 10000 levels), one value with only whitespace around it;
 *  - a top-level null is an empty struct, any other non-object an error;
 *  - keys are unquoted, then matched to field names case-insensitively
 *    with Go's folding (foldName: ASCII case, U+017F LONG S = 's', U+212A
 *    KELVIN SIGN = 'k'); unknown keys are skipped;
 *  - every occurrence of a key is decoded in order: null leaves the field
 *    as it is, a value of the wrong JSON type (or 2.0 for an int, or an
 *    int out of range) is an error;
 *  - strings keep NUL and get U+FFFD for invalid UTF-8 and lone
 *    surrogates (Go's unquote);
 *  - meshKey is key.DERPMesh, whose UnmarshalJSON is called for any value,
 *    null included: only a string of 64 hex digits is accepted.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "tk/derp.h"
#include "tk/enc.h"
#include "tk/err.h"

/* encoding/json scanner.go maxNestingDepth. */
#define JSON_MAX_DEPTH 10000

typedef struct jr {
	const uint8_t *p, *end;
	bool first; /* no member read yet */
} jr;

static void
ws(jr *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' ||
				    *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

static int
peek(jr *r)
{
	return r->p < r->end ? *r->p : -1;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* \uXXXX at p (p[0] == '\\'), or -1. */
static long
u4(const uint8_t *p, const uint8_t *end)
{
	long v = 0;

	if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
		return -1;
	for (int i = 2; i < 6; i++) {
		int h = hexval(p[i]);
		if (h < 0)
			return -1;
		v = v << 4 | h;
	}
	return v;
}

/* Length of the valid UTF-8 sequence at p, or 0 (Go's utf8.DecodeRune:
 * no overlongs, no surrogates, <= U+10FFFF). */
static size_t
utf8_len(const uint8_t *p, const uint8_t *end)
{
	size_t n = (size_t)(end - p);
	uint8_t c = p[0];

	if (c >= 0xc2 && c <= 0xdf)
		return n >= 2 && (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		uint8_t lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
		return n >= 3 && p[1] >= lo && p[1] <= hi &&
		    (p[2] & 0xc0) == 0x80 ? 3 : 0;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		uint8_t lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
		return n >= 4 && p[1] >= lo && p[1] <= hi &&
		    (p[2] & 0xc0) == 0x80 && (p[3] & 0xc0) == 0x80 ? 4 : 0;
	}
	return 0;
}

/* Decoded-string sink: keeps the first cap bytes, counts them all. */
typedef struct sink {
	uint8_t *b;
	size_t cap, len;
} sink;

static void
emit(sink *s, const uint8_t *p, size_t n)
{
	if (s) {
		for (size_t i = 0; i < n; i++, s->len++)
			if (s->len < s->cap)
				s->b[s->len] = p[i];
	}
}

static void
emit_rune(sink *s, long cp)
{
	uint8_t u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (uint8_t)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (uint8_t)(0xc0 | cp >> 6);
		u[1] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (uint8_t)(0xe0 | cp >> 12);
		u[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
		u[2] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		u[0] = (uint8_t)(0xf0 | cp >> 18);
		u[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
		u[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
		u[3] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 4;
	}
	emit(s, u, n);
}

/* A string at r->p (the opening quote), decoded into s (may be NULL) as
 * Go's unquote does. */
static int
jstr(jr *r, sink *s)
{
	const uint8_t *p = r->p + 1, *end = r->end;

	while (p < end) {
		uint8_t c = *p;
		if (c == '"') {
			r->p = p + 1;
			return 0;
		}
		if (c < 0x20)
			return TK_EPROTO;
		if (c == '\\') {
			if (end - p < 2)
				return TK_EPROTO;
			uint8_t e = p[1];
			const char *esc = strchr("\"\\/bfnrt", e);
			if (e && esc) {
				static const char val[] = "\"\\/\b\f\n\r\t";
				uint8_t v = (uint8_t)val[esc - "\"\\/bfnrt"];
				emit(s, &v, 1);
				p += 2;
				continue;
			}
			if (e != 'u')
				return TK_EPROTO;
			long cp = u4(p, end);
			if (cp < 0)
				return TK_EPROTO;
			p += 6;
			if (cp >= 0xd800 && cp <= 0xdfff) {
				/* a pair, or U+FFFD (utf16.DecodeRune) */
				long lo = cp <= 0xdbff ? u4(p, end) : -1;
				if (lo >= 0xdc00 && lo <= 0xdfff) {
					cp = 0x10000 + ((cp - 0xd800) << 10) +
					    (lo - 0xdc00);
					p += 6;
				} else {
					cp = 0xfffd;
				}
			}
			emit_rune(s, cp);
			continue;
		}
		if (c < 0x80) {
			emit(s, p, 1);
			p++;
			continue;
		}
		size_t n = utf8_len(p, end);
		if (n == 0) {
			emit_rune(s, 0xfffd);
			p++;
		} else {
			emit(s, p, n);
			p += n;
		}
	}
	return TK_EPROTO;
}

/* A number; *is_int if it has no fraction or exponent. */
static int
number(jr *r, bool *is_int)
{
	const uint8_t *p = r->p, *end = r->end;

	*is_int = true;
	if (p < end && *p == '-')
		p++;
	if (p >= end)
		return TK_EPROTO;
	if (*p == '0') {
		p++;
	} else if (*p >= '1' && *p <= '9') {
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	} else {
		return TK_EPROTO;
	}
	if (p < end && *p == '.') {
		*is_int = false;
		p++;
		if (p >= end || *p < '0' || *p > '9')
			return TK_EPROTO;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		*is_int = false;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			return TK_EPROTO;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	r->p = p;
	return 0;
}

static int
literal(jr *r, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
		return TK_EPROTO;
	r->p += n;
	return 0;
}

/* One scalar at r->p. */
static int
scalar(jr *r)
{
	bool is_int;

	switch (peek(r)) {
	case '"':
		return jstr(r, NULL);
	case 't':
		return literal(r, "true");
	case 'f':
		return literal(r, "false");
	case 'n':
		return literal(r, "null");
	default:
		return number(r, &is_int);
	}
}

/* Skips any value inside the top-level object (depth 1), validating it,
 * without recursion: a bit per open container says array or object. */
static int
skip(jr *r)
{
	uint8_t is_obj[(JSON_MAX_DEPTH + 7) / 8];
	int d = 0, rc;

	for (;;) {
		/* a value */
		ws(r);
		int c = peek(r);
		if (c == '[' || c == '{') {
			if (1 + d + 1 > JSON_MAX_DEPTH)
				return TK_EPROTO;
			if (c == '{')
				is_obj[d / 8] |= (uint8_t)(1u << (d % 8));
			else
				is_obj[d / 8] &= (uint8_t)~(1u << (d % 8));
			d++;
			r->p++;
			ws(r);
			if (peek(r) == (c == '[' ? ']' : '}')) {
				r->p++;
				d--;
			} else if (c == '{') {
				if (peek(r) != '"' || (rc = jstr(r, NULL)) != 0)
					return TK_EPROTO;
				ws(r);
				if (peek(r) != ':')
					return TK_EPROTO;
				r->p++;
				continue;
			} else {
				continue;
			}
		} else if ((rc = scalar(r)) != 0) {
			return rc;
		}
		/* after a value: close containers or go to the next */
		for (;;) {
			if (d == 0)
				return 0;
			bool obj = is_obj[(d - 1) / 8] >> ((d - 1) % 8) & 1;
			ws(r);
			c = peek(r);
			if (c == (obj ? '}' : ']')) {
				r->p++;
				d--;
				continue;
			}
			if (c != ',')
				return TK_EPROTO;
			r->p++;
			if (obj) {
				ws(r);
				if (peek(r) != '"' || (rc = jstr(r, NULL)) != 0)
					return TK_EPROTO;
				ws(r);
				if (peek(r) != ':')
					return TK_EPROTO;
				r->p++;
			}
			break;
		}
	}
}

/* Opens the top-level value: 0 with *is_null for null, 0 for an object,
 * TK_EPROTO for anything else. */
static int
obj_begin(jr *r, const uint8_t *p, size_t n, bool *is_null)
{
	r->p = p;
	r->end = p + n;
	r->first = true;
	ws(r);
	*is_null = false;
	if (peek(r) == 'n') {
		if (literal(r, "null") != 0)
			return TK_EPROTO;
		*is_null = true;
		ws(r);
		return r->p == r->end ? 0 : TK_EPROTO;
	}
	if (peek(r) != '{')
		return TK_EPROTO;
	r->p++;
	return 0;
}

/* Folds a decoded key as encoding/json foldName does, for ASCII field
 * names: ASCII to upper case, U+017F to 'S', U+212A to 'K', any other
 * non-ASCII byte to 0x80 (matches no field). */
static size_t
fold(const uint8_t *k, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o < cap;) {
		uint8_t c = k[i];
		if (c < 0x80) {
			out[o++] = (char)(c >= 'a' && c <= 'z' ? c - 32 : c);
			i++;
		} else if (n - i >= 2 && c == 0xc5 && k[i + 1] == 0xbf) {
			out[o++] = 'S';
			i += 2;
		} else if (n - i >= 3 && c == 0xe2 && k[i + 1] == 0x84 &&
		    k[i + 2] == 0xaa) {
			out[o++] = 'K';
			i += 3;
		} else {
			out[o++] = (char)0x80;
			i++;
		}
	}
	return o;
}

/*
 * The next member of the top-level object: *idx is the index of the field
 * (names: upper case) its key matches, or -1; r is left at the value.
 * *done at the closing brace (then only whitespace may follow).
 */
static int
obj_next(jr *r, const char *const *names, int nnames, int *idx, bool *done)
{
	uint8_t kb[128];
	sink ks = { kb, sizeof(kb), 0 };
	char folded[sizeof(kb)];

	*done = false;
	ws(r);
	if (peek(r) == '}') {
		r->p++;
		ws(r);
		if (r->p != r->end)
			return TK_EPROTO;
		*done = true;
		return 0;
	}
	if (!r->first) {
		if (peek(r) != ',')
			return TK_EPROTO;
		r->p++;
		ws(r);
	}
	r->first = false;
	if (peek(r) != '"' || jstr(r, &ks) != 0)
		return TK_EPROTO;
	ws(r);
	if (peek(r) != ':')
		return TK_EPROTO;
	r->p++;
	ws(r);
	*idx = -1;
	if (ks.len > ks.cap)
		return 0; /* longer than any field name, even folded */
	size_t fl = fold(kb, ks.len, folded, sizeof(folded));
	for (int i = 0; i < nnames; i++)
		if (strlen(names[i]) == fl && memcmp(names[i], folded, fl) == 0)
			*idx = i;
	return 0;
}

/* An int field: ParseInt(text, 10, 64) of a number, null: unchanged. */
static int
get_int(jr *r, int64_t *out)
{
	const uint8_t *p = r->p;
	bool is_int, neg;
	uint64_t v = 0;

	if (peek(r) == 'n')
		return literal(r, "null");
	if (peek(r) != '-' && (peek(r) < '0' || peek(r) > '9'))
		return TK_EPROTO; /* string, bool, array, object */
	if (number(r, &is_int) != 0 || !is_int)
		return TK_EPROTO;
	neg = *p == '-';
	for (p += neg; p < r->p; p++) {
		uint64_t d = (uint64_t)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return TK_EPROTO;
		v = v * 10 + d;
	}
	if (v > (uint64_t)INT64_MAX + (neg ? 1 : 0))
		return TK_EPROTO;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

static int
get_bool(jr *r, bool *out)
{
	switch (peek(r)) {
	case 'n':
		return literal(r, "null");
	case 't':
		*out = true;
		return literal(r, "true");
	case 'f':
		*out = false;
		return literal(r, "false");
	default:
		return TK_EPROTO;
	}
}

/* A string field cut to cap - 1 bytes (and at a NUL); null: unchanged. */
static int
get_str(jr *r, char *out, size_t cap)
{
	uint8_t tmp[256];
	sink s = { tmp, cap - 1 < sizeof(tmp) ? cap - 1 : sizeof(tmp), 0 };
	int rc;

	if (peek(r) == 'n')
		return literal(r, "null");
	if (peek(r) != '"')
		return TK_EPROTO;
	if ((rc = jstr(r, &s)) != 0)
		return rc;
	size_t n = s.len < s.cap ? s.len : s.cap;
	memcpy(out, tmp, n);
	out[n] = '\0';
	return 0;
}

/* types/key/derp.go DERPMesh.UnmarshalJSON: the value unmarshalled into a
 * string ("" for anything else, null included), then exactly 32 bytes of
 * hex. */
static int
get_mesh(jr *r, tk_derp_client_info *ci)
{
	uint8_t hex[2 * TK_DERP_KEY_LEN];
	sink s = { hex, sizeof(hex), 0 };

	if (peek(r) != '"' || jstr(r, &s) != 0 || s.len != sizeof(hex) ||
	    tk_hex_decode(ci->mesh_key, TK_DERP_KEY_LEN, (const char *)hex,
		sizeof(hex)) != 0)
		return TK_EPROTO;
	ci->has_mesh_key = true;
	return 0;
}

int
tk_derp_client_info_parse(const uint8_t *p, size_t n, tk_derp_client_info *out)
{
	static const char *const names[] = { "MESHKEY", "VERSION",
		"CANACKPINGS", "ISPROBER", "APPNAME" };
	tk_derp_client_info ci;
	jr r;
	bool done, is_null;
	int idx, rc;

	memset(&ci, 0, sizeof(ci));
	if ((rc = obj_begin(&r, p, n, &is_null)) != 0)
		return rc;
	while (!is_null) {
		if ((rc = obj_next(&r, names, 5, &idx, &done)) != 0)
			return rc;
		if (done)
			break;
		switch (idx) {
		case 0:
			rc = get_mesh(&r, &ci);
			break;
		case 1:
			rc = get_int(&r, &ci.version);
			break;
		case 2:
			rc = get_bool(&r, &ci.can_ack_pings);
			break;
		case 3:
			rc = get_bool(&r, &ci.is_prober);
			break;
		case 4:
			rc = get_str(&r, ci.app_name, sizeof(ci.app_name));
			break;
		default:
			rc = skip(&r);
		}
		if (rc != 0)
			return TK_EPROTO;
	}
	*out = ci;
	return 0;
}

/* Appends to out[*len..cap); TK_EMSGSIZE when it does not fit. */
static int
put(char *out, size_t cap, size_t *len, const char *s)
{
	size_t n = strlen(s);
	if (*len + n + 1 > cap)
		return TK_EMSGSIZE;
	memcpy(out + *len, s, n + 1);
	*len += n;
	return 0;
}

static bool
app_name_plain(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s == '"' || *s == '\\' || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

int
tk_derp_client_info_json(const tk_derp_client_info *ci, char *out, size_t cap,
    size_t *len)
{
	char tmp[160];
	size_t n = 0;
	int rc;
	bool first = true;

	if (cap == 0)
		return TK_EMSGSIZE;
	out[0] = 0;
	/* Field order and omission as Go's client writes them. */
	if ((rc = put(out, cap, &n, "{")) != 0)
		return rc;
	if (ci->has_mesh_key) {
		char hex[2 * TK_DERP_KEY_LEN + 1];
		tk_hex_encode(hex, ci->mesh_key, TK_DERP_KEY_LEN);
		snprintf(tmp, sizeof(tmp), "\"meshKey\":\"%s\"", hex);
		if ((rc = put(out, cap, &n, tmp)) != 0)
			return rc;
		first = false;
	}
	if (ci->version) {
		snprintf(tmp, sizeof(tmp), "%s\"version\":%lld", first ? "" : ",",
		    (long long)ci->version);
		if ((rc = put(out, cap, &n, tmp)) != 0)
			return rc;
		first = false;
	}
	snprintf(tmp, sizeof(tmp), "%s\"CanAckPings\":%s", first ? "" : ",",
	    ci->can_ack_pings ? "true" : "false");
	if ((rc = put(out, cap, &n, tmp)) != 0)
		return rc;
	if (ci->is_prober && (rc = put(out, cap, &n, ",\"IsProber\":true")) != 0)
		return rc;
	if (ci->app_name[0]) {
		if (!app_name_plain(ci->app_name))
			return TK_EINVAL;
		snprintf(tmp, sizeof(tmp), ",\"AppName\":\"%s\"", ci->app_name);
		if ((rc = put(out, cap, &n, tmp)) != 0)
			return rc;
	}
	if ((rc = put(out, cap, &n, "}")) != 0)
		return rc;
	*len = n;
	return 0;
}

int
tk_derp_server_info_parse(const uint8_t *p, size_t n, tk_derp_server_info *out)
{
	static const char *const names[] = { "VERSION",
		"TOKENBUCKETBYTESPERSECOND", "TOKENBUCKETBYTESBURST" };
	tk_derp_server_info si;
	jr r;
	bool done, is_null;
	int idx, rc;

	memset(&si, 0, sizeof(si));
	if ((rc = obj_begin(&r, p, n, &is_null)) != 0)
		return rc;
	while (!is_null) {
		if ((rc = obj_next(&r, names, 3, &idx, &done)) != 0)
			return rc;
		if (done)
			break;
		switch (idx) {
		case 0:
			rc = get_int(&r, &si.version);
			break;
		case 1:
			rc = get_int(&r, &si.token_bucket_bytes_per_second);
			break;
		case 2:
			rc = get_int(&r, &si.token_bucket_bytes_burst);
			break;
		default:
			rc = skip(&r);
		}
		if (rc != 0)
			return TK_EPROTO;
	}
	*out = si;
	return 0;
}

int
tk_derp_server_info_json(const tk_derp_server_info *si, char *out, size_t cap,
    size_t *len)
{
	char tmp[96];
	size_t n = 0;
	int rc;
	const char *sep = "";

	if (cap == 0)
		return TK_EMSGSIZE;
	out[0] = 0;
	if ((rc = put(out, cap, &n, "{")) != 0)
		return rc;
	/* derp.go ServerInfo: every field omitempty. */
	if (si->version) {
		snprintf(tmp, sizeof(tmp), "\"version\":%lld",
		    (long long)si->version);
		if ((rc = put(out, cap, &n, tmp)) != 0)
			return rc;
		sep = ",";
	}
	if (si->token_bucket_bytes_per_second) {
		snprintf(tmp, sizeof(tmp), "%s\"TokenBucketBytesPerSecond\":%lld",
		    sep, (long long)si->token_bucket_bytes_per_second);
		if ((rc = put(out, cap, &n, tmp)) != 0)
			return rc;
		sep = ",";
	}
	if (si->token_bucket_bytes_burst) {
		snprintf(tmp, sizeof(tmp), "%s\"TokenBucketBytesBurst\":%lld",
		    sep, (long long)si->token_bucket_bytes_burst);
		if ((rc = put(out, cap, &n, tmp)) != 0)
			return rc;
	}
	if ((rc = put(out, cap, &n, "}")) != 0)
		return rc;
	*len = n;
	return 0;
}

int
tk_derp_box_seal(uint8_t *out, size_t cap, size_t *len, const uint8_t *msg,
    size_t n, const uint8_t peer_pub[TK_DERP_KEY_LEN],
    const uint8_t priv[TK_DERP_KEY_LEN], const tk_rng *rng)
{
	if (cap < TK_DERP_SEALED_LEN(n))
		return TK_EMSGSIZE;
	tk_rng_fill(rng ? rng : tk_rng_system(), out, TK_DERP_NONCE_LEN);
	if (crypto_box_easy(out + TK_DERP_NONCE_LEN, msg, n, out, peer_pub,
		priv) != 0)
		return TK_ECRYPTO; /* a low-order peer key */
	*len = TK_DERP_SEALED_LEN(n);
	return 0;
}

int
tk_derp_box_open(uint8_t *out, size_t cap, size_t *len,
    const uint8_t *nonce_box, size_t n, const uint8_t peer_pub[TK_DERP_KEY_LEN],
    const uint8_t priv[TK_DERP_KEY_LEN])
{
	if (n < TK_DERP_NONCE_LEN + TK_DERP_BOX_OVERHEAD)
		return TK_ECRYPTO;
	size_t m = n - TK_DERP_NONCE_LEN - TK_DERP_BOX_OVERHEAD;
	if (cap < m)
		return TK_EMSGSIZE;
	if (crypto_box_open_easy(out, nonce_box + TK_DERP_NONCE_LEN,
		n - TK_DERP_NONCE_LEN, nonce_box, peer_pub, priv) != 0)
		return TK_ECRYPTO;
	*len = m;
	return 0;
}
