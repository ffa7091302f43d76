/*
 * Fuzz libs/json's tape (tk/json_tape.h).  Whatever it accepts must make a
 * consistent tape: offsets inside the input, every container's children
 * counted and skipped correctly by next, keys strings; every string must
 * unquote to valid UTF-8 without NUL inside 3n + 1 bytes.  Oracle: input
 * jansson accepts (valid UTF-8, within the depth limit, no NUL byte:
 * jansson's lexer takes one as the end, "5\0" passes) the tape accepts.
 */
#include <stdlib.h>
#include <string.h>

#include "tk/json.h"
#include "tk/json_tape.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DEPTH 64

/* Checks value i and its children; returns the index after them. */
static uint32_t
walk(const tk_json_tape *d, uint32_t i, unsigned depth)
{
	unsigned type;
	uint32_t k = i + 1, off, end;

	if (i >= d->nt || depth > DEPTH)
		abort();
	type = tk_json_tape_type(d, i);
	off = tk_json_tape_off(d, i);
	end = tk_json_tape_end(d, i);
	if (off > end || end > d->n)
		abort();
	if (type < TK_JSON_NULL || type > TK_JSON_OBJ)
		abort();
	if (type == TK_JSON_ARR || type == TK_JSON_OBJ) {
		uint32_t count = tk_json_tape_aux(d, i);

		if (d->p[off] != (type == TK_JSON_ARR ? '[' : '{') ||
		    d->p[end - 1] != (type == TK_JSON_ARR ? ']' : '}'))
			abort();
		for (uint32_t m = 0; m < count; m++) {
			if (type == TK_JSON_OBJ) {
				if (tk_json_tape_type(d, k) != TK_JSON_STR ||
				    tk_json_tape_next(d, k) != k + 1)
					abort();
				k++;
			}
			k = walk(d, k, depth + 1);
		}
		if (tk_json_tape_next(d, i) != k)
			abort();
		return k;
	}
	if (tk_json_tape_next(d, i) != k)
		abort();
	if (type == TK_JSON_STR) {
		size_t n = end - off, len;
		uint8_t *out = malloc(3 * n + 1);

		if (out == NULL)
			abort();
		if (d->p[off - 1] != '"' || d->p[end] != '"')
			abort();
		len = tk_json_unquote(out, (const uint8_t *)d->p + off, n,
		    (tk_json_tape_aux(d, i) & TK_JSON_ESC) != 0);
		if (len > 3 * n || out[len] != '\0' ||
		    memchr(out, '\0', len) != NULL ||
		    !tk_json_utf8_valid(out, len))
			abort();
		if ((tk_json_tape_aux(d, i) & (TK_JSON_ESC | TK_JSON_HIGH)) == 0 &&
		    (len != n || memcmp(out, d->p + off, n) != 0))
			abort();
		free(out);
	}
	return k;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tk_json_tape d;
	char err[128];
	json_error_t jerr;
	json_t *j;
	int rv;

	tk_json_tape_init(&d, 1u << 20, DEPTH);
	rv = tk_json_tape_parse(&d, (const char *)data, size, err, sizeof(err));
	if (rv == 0) {
		if (d.nt == 0 || walk(&d, 0, 0) != d.nt)
			abort();
	} else if (strstr(err, "nests deeper") == NULL &&
	    tk_json_utf8_valid(data, size) && memchr(data, 0, size) == NULL) {
		j = json_loadb((const char *)data, size,
		    JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
		if (j != NULL)
			abort(); /* jansson took what the tape refused */
	}
	tk_json_tape_fini(&d);
	return 0;
}
