#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tk/buf.h"
#include "tk/err.h"
#include "tk/mem.h"

void
tk_buf_init(tk_buf *b)
{
	memset(b, 0, sizeof(*b));
}

void
tk_buf_init_limit(tk_buf *b, size_t limit)
{
	memset(b, 0, sizeof(*b));
	b->limit = limit;
}

void
tk_buf_init_secret(tk_buf *b)
{
	memset(b, 0, sizeof(*b));
	b->secret = true;
}

void
tk_buf_fini(tk_buf *b)
{
	if (b->secret)
		tk_free_secret(b->data, b->cap);
	else
		tk_free(b->data);
	memset(b, 0, sizeof(*b));
}

void
tk_buf_fini_secret(tk_buf *b)
{
	tk_free_secret(b->data, b->cap);
	memset(b, 0, sizeof(*b));
}

int
tk_buf_reserve(tk_buf *b, size_t extra)
{
	size_t need, ncap;
	uint8_t *p;

	if (extra > SIZE_MAX - b->len - 1)
		return TK_EMSGSIZE;
	need = b->len + extra;
	if (b->limit != 0 && need > b->limit)
		return TK_EMSGSIZE;
	if (need + 1 <= b->cap) /* +1 keeps room for tk_buf_cstr */
		return 0;
	ncap = b->cap < 64 ? 64 : b->cap;
	while (ncap < need + 1)
		ncap = ncap > SIZE_MAX / 2 ? need + 1 : ncap * 2;
	if (b->limit != 0 && ncap > b->limit + 1)
		ncap = b->limit + 1;
	if (b->secret) {
		/* realloc would free the old block unzeroed */
		if ((p = tk_malloc(ncap)) == NULL)
			return TK_ENOMEM;
		if (b->data != NULL)
			memcpy(p, b->data, b->len);
		tk_free_secret(b->data, b->cap);
	} else if ((p = tk_realloc(b->data, ncap)) == NULL) {
		return TK_ENOMEM;
	}
	b->data = p;
	b->cap = ncap;
	return 0;
}

int
tk_buf_extend(tk_buf *b, size_t n, uint8_t **out)
{
	int rv = tk_buf_reserve(b, n);

	if (rv != 0)
		return rv;
	*out = b->data + b->len;
	b->len += n;
	return 0;
}

int
tk_buf_append(tk_buf *b, const void *p, size_t n)
{
	int rv;

	if (n == 0)
		return 0;
	if ((rv = tk_buf_reserve(b, n)) != 0)
		return rv;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int
tk_buf_append_u8(tk_buf *b, uint8_t v)
{
	return tk_buf_append(b, &v, 1);
}

int
tk_buf_append_str(tk_buf *b, const char *s)
{
	return tk_buf_append(b, s, strlen(s));
}

int
tk_buf_printf(tk_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, rv;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return TK_EINVAL;
	if ((rv = tk_buf_reserve(b, (size_t)n)) != 0)
		return rv;
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void
tk_buf_consume(tk_buf *b, size_t n)
{
	TK_ASSERT(n <= b->len);
	if (n >= b->len) {
		if (b->secret)
			tk_secure_zero(b->data, b->len);
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	if (b->secret)
		tk_secure_zero(b->data + b->len, n);
}

void
tk_buf_reset(tk_buf *b)
{
	b->len = 0;
}

int
tk_buf_cstr(tk_buf *b, const char **out)
{
	int rv = tk_buf_reserve(b, 0);

	if (rv != 0)
		return rv;
	b->data[b->len] = '\0';
	*out = (const char *)b->data;
	return 0;
}
