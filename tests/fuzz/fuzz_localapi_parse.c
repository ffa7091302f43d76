/*
 * Fuzz the LocalAPI's parsers of client input (tools/node/localapi_parse.c):
 * the chunked body decoder on the raw input (whatever it accepts fits the
 * buffer; half of it is incomplete or the same body), and the ipn.
 * MaskedPrefs / ipn.Prefs JSON readers on the input as JSON (whatever is
 * accepted packs as a bus MaskedPrefs).
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "localapi_int.h"
#include "tk/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char out[4096], out2[4096];
	size_t ol = 0, ol2 = 0;
	const char *in = (const char *)data;

	int rv = la_chunked_decode(in, size, out, sizeof(out), &ol);
	if (rv == 0) {
		if (ol > sizeof(out))
			abort();
		/* a prefix of a complete body is incomplete, or complete
		 * with a prefix of the body (bytes after the end) */
		int r2 = la_chunked_decode(in, size / 2, out2, sizeof(out2), &ol2);
		if (r2 != TK_EAGAIN && (r2 != 0 || ol2 > ol ||
		    memcmp(out, out2, ol2) != 0))
			abort();
	} else if (rv != TK_EAGAIN && rv != TK_EPROTO && rv != TK_EMSGSIZE) {
		abort();
	}

	json_error_t je;
	json_t *j = json_loadb(in, size, JSON_REJECT_DUPLICATES, &je);
	if (j == NULL)
		return 0;
	la_masked m;
	char err[400];
	if (la_masked_prefs_parse(&m, j, err, sizeof(err)) == 0) {
		size_t n = tk__bus__v1__masked_prefs__get_packed_size(&m.mp);
		uint8_t *buf = malloc(n ? n : 1);
		if (buf == NULL ||
		    tk__bus__v1__masked_prefs__pack(&m.mp, buf) != n)
			abort();
		Tk__Bus__V1__MaskedPrefs *back =
		    tk__bus__v1__masked_prefs__unpack(NULL, n, buf);
		if (back == NULL)
			abort();
		tk__bus__v1__masked_prefs__free_unpacked(back, NULL);
		free(buf);
	}
	json_t *cur = json_pack("{s:s,s:b,s:i}", "ControlURL", "http://c",
	    "RouteAll", 0, "NetfilterMode", 0);
	(void)la_prefs_check(j, cur, err, sizeof(err));
	json_decref(cur);
	json_decref(j);
	return 0;
}
