/*
 * Fuzz the text parsers of libs/core: base64, hex, key text forms and
 * WireGuard base64 keys.  Invariants: no crash or leak; whatever decodes
 * re-encodes to the canonical input.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tk/core.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const prefixes[] = { TK_PREFIX_NODE_PUB,
		TK_PREFIX_MACHINE_PUB, TK_PREFIX_DISCO_PUB, TK_PREFIX_CHAL_PUB,
		TK_PREFIX_PRIVATE };
	const char *s = (const char *)data;
	uint8_t out[4096];
	size_t n;

	if (size > 4096)
		return 0;
	if (tk_base64_decode(out, sizeof(out), &n, s, size) == 0) {
		char *re = malloc(TK_BASE64_LEN(n) + 1);

		tk_base64_encode(re, out, n);
		if (strlen(re) != size || memcmp(re, s, size) != 0)
			abort(); /* decoder accepted a non-canonical form */
		free(re);
	}
	if (size % 2 == 0 && tk_hex_decode(out, size / 2, s, size) == 0) {
		char *re = malloc(size + 1);

		tk_hex_encode(re, out, size / 2);
		if (strncasecmp(re, s, size) != 0)
			abort();
		free(re);
	}
	for (size_t i = 0; i < TK_ARRAY_LEN(prefixes); i++) {
		uint8_t k[TK_KEY_LEN];
		char text[TK_KEY_TEXT_MAX];

		if (tk_key_parse(k, prefixes[i], s, size) == 0) {
			tk_key_format(text, prefixes[i], k);
			if (strlen(text) != size || strncasecmp(text, s, size) != 0)
				abort();
		}
	}
	{
		uint8_t k[TK_KEY_LEN];
		char b64[TK_KEY_BASE64_LEN + 1];

		if (tk_key_from_base64(k, s, size) == 0) {
			tk_key_to_base64(b64, k);
			if (size != TK_KEY_BASE64_LEN || memcmp(b64, s, size) != 0)
				abort();
		}
	}
	return 0;
}
