/* tailscale_loopback's request checks (tools/embed/src/ts_lbreq.c) on any
 * input, as the server hands them over (NUL-terminated, at most the head
 * bound).  Invariants: the answer is one the server can send (0, 400, 401,
 * 403, 404) with a text; 0 only with the header and the right password;
 * Content-Length is -1 or within the body bound. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ts_lbreq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CRED "0123456789abcdef0123456789abcdef"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *why = NULL;
	char v[64];

	if (size > TS_LB_HEAD_MAX)
		size = TS_LB_HEAD_MAX;
	char *s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	int c = ts_lb_check(s, CRED, &why);
	if (why == NULL || (c != 0 && c != 400 && c != 401 && c != 403 &&
	    c != 404))
		__builtin_trap();
	if (c == 0 && (!ts_lb_header(s, "Sec-Tailscale", v, sizeof(v)) ||
	    strcmp(v, "localapi") != 0))
		__builtin_trap();
	long n = ts_lb_body_len(s);
	if (n < -1 || n > TS_LB_BODY_MAX)
		__builtin_trap();
	if (ts_lb_header(s, "Authorization", v, sizeof(v)) &&
	    strlen(v) >= sizeof(v))
		__builtin_trap();
	free(s);
	return 0;
}
