#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "tk/err.h"
#include "tk/netaddr.h"

int
tk_ipaddr_parse(tk_ipaddr *out, const char *s, size_t n)
{
	char buf[INET6_ADDRSTRLEN + 1];
	tk_ipaddr a = { 0 };

	if (n == 0 || n >= sizeof(buf) || memchr(s, '\0', n) != NULL)
		return TK_EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	/* inet_pton(AF_INET) rejects leading zeros/short forms, like netip. */
	if (inet_pton(AF_INET, buf, a.addr) == 1) {
		a.family = TK_AF_INET;
	} else if (strchr(buf, '%') == NULL &&
	    inet_pton(AF_INET6, buf, a.addr) == 1) {
		a.family = TK_AF_INET6;
	} else {
		return TK_EINVAL;
	}
	*out = a;
	return 0;
}

static int
parse_uint(const char *s, size_t n, unsigned max, unsigned *out)
{
	unsigned v = 0;

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return TK_EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return TK_EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return TK_EINVAL;
	*out = v;
	return 0;
}

int
tk_ipprefix_parse(tk_ipprefix *out, const char *s, size_t n)
{
	const char *slash = memchr(s, '/', n);
	tk_ipprefix p;
	unsigned bits;

	memset(&p, 0, sizeof(p)); /* padding too: results compare with memcmp */

	if (slash == NULL)
		return TK_EINVAL;
	if (tk_ipaddr_parse(&p.ip, s, (size_t)(slash - s)) != 0)
		return TK_EINVAL;
	if (parse_uint(slash + 1, n - (size_t)(slash - s) - 1,
		p.ip.family == TK_AF_INET ? 32 : 128, &bits) != 0)
		return TK_EINVAL;
	p.bits = (uint8_t)bits;
	*out = p;
	return 0;
}

int
tk_ipport_parse(tk_ipport *out, const char *s, size_t n)
{
	tk_ipport p;
	const char *colon;
	unsigned port;

	memset(&p, 0, sizeof(p));

	if (n == 0)
		return TK_EINVAL;
	if (s[0] == '[') {
		const char *close = memchr(s, ']', n);

		if (close == NULL || (size_t)(close - s) + 1 >= n ||
		    close[1] != ':')
			return TK_EINVAL;
		if (tk_ipaddr_parse(&p.ip, s + 1, (size_t)(close - s - 1)) != 0 ||
		    p.ip.family != TK_AF_INET6)
			return TK_EINVAL;
		colon = close + 1;
	} else {
		colon = memrchr(s, ':', n);
		if (colon == NULL ||
		    tk_ipaddr_parse(&p.ip, s, (size_t)(colon - s)) != 0 ||
		    p.ip.family != TK_AF_INET)
			return TK_EINVAL;
	}
	if (parse_uint(colon + 1, n - (size_t)(colon - s) - 1, 65535, &port) != 0)
		return TK_EINVAL;
	p.port = (uint16_t)port;
	*out = p;
	return 0;
}

void
tk_ipaddr_format(const tk_ipaddr *a, char out[TK_NETADDR_TEXT_MAX])
{
	if (inet_ntop(a->family == TK_AF_INET ? AF_INET : AF_INET6, a->addr,
		out, TK_NETADDR_TEXT_MAX) == NULL)
		snprintf(out, TK_NETADDR_TEXT_MAX, "invalid");
}

void
tk_ipprefix_format(const tk_ipprefix *p, char out[TK_NETADDR_TEXT_MAX])
{
	char a[TK_NETADDR_TEXT_MAX];

	tk_ipaddr_format(&p->ip, a);
	snprintf(out, TK_NETADDR_TEXT_MAX, "%.50s/%u", a, p->bits);
}

void
tk_ipport_format(const tk_ipport *p, char out[TK_NETADDR_TEXT_MAX])
{
	char a[TK_NETADDR_TEXT_MAX];

	tk_ipaddr_format(&p->ip, a);
	if (p->ip.family == TK_AF_INET6)
		snprintf(out, TK_NETADDR_TEXT_MAX, "[%.50s]:%u", a, p->port);
	else
		snprintf(out, TK_NETADDR_TEXT_MAX, "%.50s:%u", a, p->port);
}
