#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "tk/err.h"
#include "tk/netaddr.h"
#include "tk/sockaddr.h"

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

socklen_t
tk_ipport_to_sockaddr(const tk_ipport *p, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (p->ip.family == TK_AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(p->port);
		memcpy(&s4->sin_addr, p->ip.addr, 4);
		return sizeof(*s4);
	}
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
	s6->sin6_family = AF_INET6;
	s6->sin6_port = htons(p->port);
	memcpy(&s6->sin6_addr, p->ip.addr, 16);
	return sizeof(*s6);
}

void
tk_ipport_from_sockaddr(tk_ipport *p, const struct sockaddr_storage *ss)
{
	memset(p, 0, sizeof(*p));
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
		p->ip.family = TK_AF_INET;
		memcpy(p->ip.addr, &s4->sin_addr, 4);
		p->port = ntohs(s4->sin_port);
	} else {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
		p->ip.family = TK_AF_INET6;
		memcpy(p->ip.addr, &s6->sin6_addr, 16);
		p->port = ntohs(s6->sin6_port);
	}
}

void
tk_ipaddr_unmap(tk_ipaddr *a)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

	if (a->family == TK_AF_INET6 && memcmp(a->addr, mapped, 12) == 0) {
		memmove(a->addr, a->addr + 12, 4);
		memset(a->addr + 4, 0, 12);
		a->family = TK_AF_INET;
	}
}
