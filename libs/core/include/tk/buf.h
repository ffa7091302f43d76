/*
 * Growable byte buffer (sds discipline: calls that may reallocate return a
 * status and update the struct, so no stale pointer survives).  A buffer may
 * carry a hard size limit: growth beyond it fails with TK_EMSGSIZE, which is
 * how network readers bound what a peer can make us allocate.
 */
#ifndef TK_BUF_H
#define TK_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tk_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t limit; /* 0 = unlimited */
	bool secret;  /* zeroed whenever storage is released */
} tk_buf;

void tk_buf_init(tk_buf *b);
void tk_buf_init_limit(tk_buf *b, size_t limit);
/* A buffer for secrets: growth copies and zeroes the old block (never
 * realloc, which would free it unzeroed), consume zeroes the tail, and
 * fini zeroes; all through tk_free_secret. */
void tk_buf_init_secret(tk_buf *b);
/* Frees storage (zeroed first for a secret buffer). */
void tk_buf_fini(tk_buf *b);
/* Frees storage, zeroing it first whatever the buffer's kind. */
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
