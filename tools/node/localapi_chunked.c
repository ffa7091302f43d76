/*
 * HTTP/1.1 chunked request bodies (RFC 9112 §7.1) for the LocalAPI: Go's
 * client/local sends its JSON bodies (EditPrefs, CheckPrefs, Start) as a
 * jsonReader of unknown length, so net/http frames them chunked.  Sans-I/O
 * so it is table-tested and fuzzed (tests/fuzz/fuzz_localapi_prefs.c).
 */
#include <stdbool.h>
#include <string.h>

#include "tk/err.h"
#include "localapi_int.h"

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
