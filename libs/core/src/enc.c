#include <string.h>

#include "tk/enc.h"
#include "tk/err.h"
#include "tk/mem.h"

void
tk_hex_encode(char *out, const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* All-ones when lo <= c <= hi, else zero; no branches on c. */
#define IN_RANGE(c, lo, hi) \
	(0u - (unsigned)(((unsigned)(c) - (unsigned)(lo)) <= (unsigned)((hi) - (lo))))

/* Branch-free nibble decode: 0..15, or 0x100 for a bad character. */
static unsigned
hex_nibble(unsigned char c)
{
	unsigned r = 0x100u;

	r ^= (0x100u ^ ((unsigned)c - '0')) & IN_RANGE(c, '0', '9');
	r ^= (0x100u ^ ((unsigned)c - 'a' + 10)) & IN_RANGE(c, 'a', 'f');
	r ^= (0x100u ^ ((unsigned)c - 'A' + 10)) & IN_RANGE(c, 'A', 'F');
	return r;
}

int
tk_hex_decode(uint8_t *out, size_t outlen, const char *s, size_t slen)
{
	unsigned bad = 0;
	uint8_t tmp[256];
	uint8_t *dst = outlen <= sizeof(tmp) ? tmp : NULL;

	if (slen != 2 * outlen)
		return TK_EINVAL;
	if (dst == NULL && (dst = tk_malloc(outlen)) == NULL)
		return TK_ENOMEM;
	for (size_t i = 0; i < outlen; i++) {
		unsigned hi = hex_nibble((unsigned char)s[2 * i]);
		unsigned lo = hex_nibble((unsigned char)s[2 * i + 1]);

		bad |= (hi | lo) & 0x100u;
		dst[i] = (uint8_t)((hi << 4) | (lo & 15u));
	}
	if (bad == 0)
		memcpy(out, dst, outlen);
	tk_secure_zero(dst, outlen);
	if (dst != tmp)
		tk_free(dst);
	return bad ? TK_EINVAL : 0;
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void
tk_base64_encode(char *out, const uint8_t *p, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 |
		    p[i + 2];

		out[o++] = b64_alphabet[(v >> 18) & 63];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = b64_alphabet[(v >> 6) & 63];
		out[o++] = b64_alphabet[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;

		out[o++] = b64_alphabet[(v >> 18) & 63];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = '=';
		out[o++] = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;

		out[o++] = b64_alphabet[(v >> 18) & 63];
		out[o++] = b64_alphabet[(v >> 12) & 63];
		out[o++] = b64_alphabet[(v >> 6) & 63];
		out[o++] = '=';
	}
	out[o] = '\0';
}

/* Branch-free sextet decode: 0..63, or 0x100 for a bad character. */
static unsigned
b64_sextet(unsigned char c)
{
	unsigned r = 0x100u;

	r ^= (0x100u ^ ((unsigned)c - 'A')) & IN_RANGE(c, 'A', 'Z');
	r ^= (0x100u ^ ((unsigned)c - 'a' + 26)) & IN_RANGE(c, 'a', 'z');
	r ^= (0x100u ^ ((unsigned)c - '0' + 52)) & IN_RANGE(c, '0', '9');
	r ^= (0x100u ^ 62u) & IN_RANGE(c, '+', '+');
	r ^= (0x100u ^ 63u) & IN_RANGE(c, '/', '/');
	return r;
}

int
tk_base64_decode(uint8_t *out, size_t outcap, size_t *outlen, const char *s,
    size_t slen)
{
	size_t pad = 0, n, o = 0;
	unsigned bad = 0;
	uint8_t tmp[192], *dst;

	if (slen % 4 != 0)
		return TK_EINVAL;
	if (slen >= 1 && s[slen - 1] == '=')
		pad++;
	if (slen >= 2 && s[slen - 2] == '=')
		pad++;
	n = slen / 4 * 3 - pad;
	if (n > outcap)
		return TK_EMSGSIZE;
	dst = n <= sizeof(tmp) ? tmp : tk_malloc(n);
	if (dst == NULL)
		return TK_ENOMEM;
	for (size_t i = 0; i < slen; i += 4) {
		unsigned a = b64_sextet((unsigned char)s[i]);
		unsigned b = b64_sextet((unsigned char)s[i + 1]);
		unsigned c, d;
		int last = i + 4 == slen;

		c = (last && pad >= 2) ? 0 : b64_sextet((unsigned char)s[i + 2]);
		d = (last && pad >= 1) ? 0 : b64_sextet((unsigned char)s[i + 3]);
		bad |= (a | b | c | d) & 0x100u;
		uint32_t v = (a & 63) << 18 | (b & 63) << 12 | (c & 63) << 6 |
		    (d & 63);
		if (last && pad == 2) {
			bad |= v & 0xffffu; /* non-canonical trailing bits */
			dst[o++] = (uint8_t)(v >> 16);
		} else if (last && pad == 1) {
			bad |= v & 0xffu;
			dst[o++] = (uint8_t)(v >> 16);
			dst[o++] = (uint8_t)(v >> 8);
		} else {
			dst[o++] = (uint8_t)(v >> 16);
			dst[o++] = (uint8_t)(v >> 8);
			dst[o++] = (uint8_t)v;
		}
	}
	if (bad == 0) {
		memcpy(out, dst, n);
		*outlen = n;
	}
	tk_secure_zero(dst, o);
	if (dst != tmp)
		tk_free(dst);
	return bad ? TK_EINVAL : 0;
}
