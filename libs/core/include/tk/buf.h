/*
 * Growable byte buffer (sds discipline: calls that may reallocate return a
 * status and update the struct, so no stale pointer survives).  A buffer may
 * carry a hard size limit: growth beyond it fails with TK_EMSGSIZE, which is
 * how network readers bound what a peer can make us allocate.
 */
#ifndef TK_BUF_H
#define TK_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct tk_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t limit; /* 0 = unlimited */
} tk_buf;

void tk_buf_init(tk_buf *b);
void tk_buf_init_limit(tk_buf *b, size_t limit);
/* Frees storage; zeroes it first if `secret` is nonzero. */
void tk_buf_fini(tk_buf *b);
void tk_buf_fini_secret(tk_buf *b);

int tk_buf_reserve(tk_buf *b, size_t extra);
int tk_buf_append(tk_buf *b, const void *p, size_t n);
int tk_buf_append_u8(tk_buf *b, uint8_t v);
int tk_buf_append_str(tk_buf *b, const char *s);
int tk_buf_printf(tk_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Appends n uninitialised bytes; *out points at them. */
int tk_buf_extend(tk_buf *b, size_t n, uint8_t **out);
/* Drops the first n bytes (n <= len). */
void tk_buf_consume(tk_buf *b, size_t n);
void tk_buf_reset(tk_buf *b);
/* Makes data NUL-terminated without counting the NUL in len. */
int tk_buf_cstr(tk_buf *b, const char **out);

#endif
