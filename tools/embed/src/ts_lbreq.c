/*
 * The loopback server's request checks (ts_lbreq.h): header lookup,
 * Content-Length, and the LocalAPI's two locks (the Sec-Tailscale header a
 * browser cannot be made to send, and the password).
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ts_lbreq.h"

bool
ts_lb_header(const char *head, const char *name, char *out, size_t cap)
{
	size_t nl = strlen(name);
	const char *l = strstr(head, "\r\n");

	while (l != NULL) {
		l += 2;
		const char *eol = strstr(l, "\r\n");
		if (eol == NULL || eol == l) /* the blank line ends the head */
			break;
		if ((size_t)(eol - l) > nl && strncasecmp(l, name, nl) == 0 &&
		    l[nl] == ':') {
			const char *v = l + nl + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			size_t vl = (size_t)(eol - v);
			while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				vl--;
			if (vl >= cap)
				return false;
			memcpy(out, v, vl);
			out[vl] = '\0';
			return true;
		}
		l = eol;
	}
	return false;
}

long
ts_lb_body_len(const char *head)
{
	char v[32], *end;

	if (!ts_lb_header(head, "Content-Length", v, sizeof(v)))
		return 0;
	if (v[0] < '0' || v[0] > '9')
		return -1;
	unsigned long n = strtoul(v, &end, 10);
	if (*end != '\0' || n > TS_LB_BODY_MAX)
		return -1;
	return (long)n;
}

/* -1 no Basic credentials, 0 wrong, 1 right. */
static int
auth(const char *head, const char *cred)
{
	char v[512], dec[400];
	size_t dl;

	if (!ts_lb_header(head, "Authorization", v, sizeof(v)) ||
	    strncasecmp(v, "Basic ", 6) != 0)
		return -1;
	if (sodium_base642bin((unsigned char *)dec, sizeof(dec) - 1, v + 6,
	    strlen(v + 6), NULL, &dl, NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
		return 0;
	dec[dl] = '\0';
	char *colon = memchr(dec, ':', dl);
	if (colon == NULL || (size_t)(dec + dl - colon - 1) != TS_LB_CRED_LEN)
		return 0;
	return sodium_memcmp(colon + 1, cred, TS_LB_CRED_LEN) == 0;
}

int
ts_lb_check(const char *head, const char *cred, const char **why)
{
	const char *sp = strchr(head, ' '), *eol = strstr(head, "\r\n");
	char v[64];

	if (sp == NULL || eol == NULL || sp > eol || strstr(head, "\r\n\r\n") ==
	    NULL) {
		*why = "not an HTTP/1.x request\n";
		return 400;
	}
	if (strncmp(sp + 1, "/localapi/", 10) != 0) {
		*why = "this loopback server has the LocalAPI under /localapi/ "
		    "(and SOCKS5)\n";
		return 404;
	}
	if (!ts_lb_header(head, "Sec-Tailscale", v, sizeof(v)) ||
	    strcmp(v, "localapi") != 0) {
		*why = "missing 'Sec-Tailscale: localapi' header";
		return 403;
	}
	switch (auth(head, cred)) {
	case -1:
		*why = "auth required\n";
		return 401;
	case 0:
		*why = "bad password\n";
		return 403;
	}
	*why = "";
	return 0;
}
