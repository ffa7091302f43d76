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
	const tk_json_tok *t = &d->t[i];
	unsigned type = tk_json_tape_type(d, i);
	uint32_t k = i + 1;

	if (i >= d->nt || depth > DEPTH || t->off > t->end || t->end > d->n)
		abort();
	if (type < TK_JSON_NULL || type > TK_JSON_OBJ)
		abort();
	if (type == TK_JSON_ARR || type == TK_JSON_OBJ) {
		uint32_t count = tk_json_tape_aux(d, i);

		if (d->p[t->off] != (type == TK_JSON_ARR ? '[' : '{') ||
		    d->p[t->end - 1] != (type == TK_JSON_ARR ? ']' : '}'))
			abort();
		for (uint32_t m = 0; m < count; m++) {
			if (type == TK_JSON_OBJ) {
				if (tk_json_tape_type(d, k) != TK_JSON_STR ||
				    d->t[k].next != k + 1)
					abort();
				k++;
			}
			k = walk(d, k, depth + 1);
		}
		if (t->next != k)
			abort();
		return k;
	}
	if (t->next != k)
		abort();
	if (type == TK_JSON_STR) {
		size_t n = t->end - t->off, len;
		uint8_t *out = malloc(3 * n + 1);

		if (out == NULL)
			abort();
		if (d->p[t->off - 1] != '"' || d->p[t->end] != '"')
			abort();
		len = tk_json_unquote(out, (const uint8_t *)d->p + t->off, n,
		    (t->aux & TK_JSON_ESC) != 0);
		if (len > 3 * n || out[len] != '\0' ||
		    memchr(out, '\0', len) != NULL ||
		    !tk_json_utf8_valid(out, len))
			abort();
		if ((t->aux & (TK_JSON_ESC | TK_JSON_HIGH)) == 0 &&
		    (len != n || memcmp(out, d->p + t->off, n) != 0))
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
