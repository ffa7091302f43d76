/*
 * A strict JSON "tape": one pass over the input makes a flat array of
 * values; strings and numbers stay in the input and are decoded when read.
 * Made for ctrld's MapResponses: jansson takes ~130-190 ms to parse a
 * 10,000-peer netmap and ~90 ms to free it, over ctrld's whole budget.
 *
 * The grammar is RFC 8259 as Go's encoding/json reads it: no trailing
 * commas, no leading zeros, no control characters in strings, valid
 * escapes only, nothing after the top-level value.  Size, depth and value
 * count are capped.  Invalid UTF-8 in strings is not a grammar error (Go
 * replaces it when decoding); tk_json_unquote does the same.
 *
 * Reading the tape: value i has type tk_json_tape_type(); a container's
 * first child is i + 1 and each value's successor (past its children) is
 * tk_json_tape_next().  Object members are a key string followed by its
 * value; an object's aux counts members, an array's elements.
 *
 * A value takes 8 bytes (a 100 MB MapResponse has ~8 M values): no
 * successor is stored for scalars (it is i + 1), no count and no end for
 * containers (counted from the successors, found from the last leaf,
 * when asked).
 */
#ifndef TK_JSON_TAPE_H
#define TK_JSON_TAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
	TK_JSON_NULL = 1,
	TK_JSON_FALSE,
	TK_JSON_TRUE,
	TK_JSON_NUM,
	TK_JSON_STR,
	TK_JSON_ARR,
	TK_JSON_OBJ
};

#define TK_JSON_ESC	 0x1 /* string: has backslash escapes */
#define TK_JSON_HIGH	 0x2 /* string: has bytes >= 0x80 */
#define TK_JSON_FLOAT	 0x4 /* number: fraction or exponent */
#define TK_JSON_SHIFT	 29  /* tk_json_tok.ot: type << 29 | offset */
#define TK_JSON_FLAGBITS 3   /* tk_json_tok.x of a scalar: len << 3 | flags */
#define TK_JSON_OFFMAX	 ((1u << TK_JSON_SHIFT) - 1)

/* The deepest nesting a tape can record (its parse stack). */
#define TK_JSON_TAPE_DEPTH_MAX 256

/*
 * One value; read it with the accessors below.  ot: type << TK_JSON_SHIFT
 * | start offset; x: a container's successor (index of the value after
 * it and its children), a scalar's length << TK_JSON_FLAGBITS | its flags
 * (above).  Offsets: strings exclude the quotes, containers include the
 * brackets.
 */
typedef struct tk_json_tok {
	uint32_t ot, x;
} tk_json_tok;

typedef struct tk_json_tape {
	const char *p; /* the input, borrowed */
	size_t n;
	tk_json_tok *t;
	uint32_t nt, cap;
	uint32_t max_values; /* limits, set by tk_json_tape_init */
	unsigned max_depth;
} tk_json_tape;

/*
 * max_values: at most this many values (1..UINT32_MAX / 2); max_depth:
 * nesting (1..TK_JSON_TAPE_DEPTH_MAX).  Inputs are at most TK_JSON_OFFMAX
 * (512 MiB - 1) bytes.
 */
void tk_json_tape_init(tk_json_tape *d, uint32_t max_values,
    unsigned max_depth);
/* Frees the tape's array; the tape may be parsed into again after init. */
void tk_json_tape_fini(tk_json_tape *d);

/*
 * Parses p[0..n) (borrowed, read again by every accessor until the next
 * parse) into d, replacing what it held.  0; TK_EPROTO with a message in
 * err ("JSON offset N: what", "JSON nests deeper than N levels", "more
 * than N JSON values"); TK_ENOMEM.
 */
int tk_json_tape_parse(tk_json_tape *d, const char *p, size_t n, char *err,
    size_t errlen);

static inline unsigned
tk_json_tape_type(const tk_json_tape *d, uint32_t i)
{
	return d->t[i].ot >> TK_JSON_SHIFT;
}

static inline bool
tk_json_tape_container(const tk_json_tape *d, uint32_t i)
{
	return tk_json_tape_type(d, i) >= TK_JSON_ARR;
}

/* Start and end offsets of value i in the input (see tk_json_tok). */
static inline uint32_t
tk_json_tape_off(const tk_json_tape *d, uint32_t i)
{
	return d->t[i].ot & TK_JSON_OFFMAX;
}

/* A container's end: past the last leaf's end and the closing brackets
 * of it and its ancestors up to i (O(its values)). */
uint32_t tk_json_tape_container_end(const tk_json_tape *d, uint32_t i);

static inline uint32_t
tk_json_tape_end(const tk_json_tape *d, uint32_t i)
{
	if (tk_json_tape_container(d, i))
		return tk_json_tape_container_end(d, i);
	return tk_json_tape_off(d, i) + (d->t[i].x >> TK_JSON_FLAGBITS);
}

/* The index of the value after i and its children. */
static inline uint32_t
tk_json_tape_next(const tk_json_tape *d, uint32_t i)
{
	return tk_json_tape_container(d, i) ? d->t[i].x : i + 1;
}

/* A container's element or member count (a walk over its children); a
 * scalar's flags. */
static inline uint32_t
tk_json_tape_aux(const tk_json_tape *d, uint32_t i)
{
	uint32_t n = 0, k = i + 1, end;

	if (!tk_json_tape_container(d, i))
		return d->t[i].x & ((1u << TK_JSON_FLAGBITS) - 1);
	end = d->t[i].x;
	if (tk_json_tape_type(d, i) == TK_JSON_OBJ)
		for (; k < end; k = tk_json_tape_next(d, k + 1))
			n++;
	else
		for (; k < end; k = tk_json_tape_next(d, k))
			n++;
	return n;
}

/*
 * Values [from, to) will not be read again (a large array decoded element
 * by element): their memory may go back to the kernel (tk_mem_discard).
 */
void tk_json_tape_release(tk_json_tape *d, uint32_t from, uint32_t to);

/* Whether p[0..n) is UTF-8 as Go's utf8.Valid takes it. */
bool tk_json_utf8_valid(const uint8_t *p, size_t n);

/*
 * Go's encoding/json unquote of a string's bytes s[0..n) (between the
 * quotes; esc: whether it has escapes, TK_JSON_ESC): escapes decoded, a
 * surrogate pair combined, a lone surrogate and each byte of invalid UTF-8
 * become U+FFFD.  Unlike Go, U+0000 (escaped) also becomes U+FFFD, so the
 * result is text without NUL.  s must have passed tk_json_tape_parse.
 * out has room for 3 * n + 1 bytes; it is NUL-terminated; returns the
 * length without the NUL.
 */
size_t tk_json_unquote(uint8_t *out, const uint8_t *s, size_t n, bool esc);

#endif
