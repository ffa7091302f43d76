/*
 * HTTP CONNECT proxy requests (RFC 9110 §9.3.6, message syntax RFC 9112
 * §3 and §5, Basic credentials RFC 7617), sans-I/O.  See ns_proxy.h.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ns_proxy.h"
#include "tk/enc.h"
#include "tk/err.h"
#include "tk/mem.h"

#define AUTH_MAX 1024 /* decoded "user:pass" we are willing to compare */

/* RFC 9110 §5.6.2 tchar */
static bool
tchar(uint8_t c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Host names in the authority: letters, digits, '-', '.', '_'. */
static bool
hostchar(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

/* End of the head: offset just past the empty line, 0 if not there. */
static size_t
head_end(const uint8_t *p, size_t n)
{
	size_t line = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\n')
			continue;
		size_t l = i - line;
		if (l == 0 || (l == 1 && p[line] == '\r'))
			return i + 1;
		line = i + 1;
	}
	return 0;
}

/* Next line at *off (before `end`), without its CR LF (or bare LF). */
static bool
next_line(const uint8_t *p, size_t end, size_t *off, const uint8_t **line,
    size_t *len)
{
	const uint8_t *nl = memchr(p + *off, '\n', end - *off);

	if (nl == NULL)
		return false;
	*line = p + *off;
	*len = (size_t)(nl - *line);
	if (*len > 0 && (*line)[*len - 1] == '\r')
		(*len)--;
	*off = (size_t)(nl - p) + 1;
	return true;
}

static int
port_parse(const uint8_t *s, size_t l, uint16_t *port)
{
	unsigned v = 0;

	if (l == 0 || l > 5)
		return TK_EINVAL;
	for (size_t i = 0; i < l; i++) {
		if (s[i] < '0' || s[i] > '9')
			return TK_EINVAL;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return TK_EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* authority-form: host ":" port, or "[" v6 "]" ":" port (RFC 9112 §3.2.3) */
static int
target_parse(const uint8_t *t, size_t l, ns_hconn_req *req)
{
	const uint8_t *colon;
	size_t hl;

	if (l > 0 && t[0] == '[') {
		const uint8_t *rb = memchr(t, ']', l);
		if (rb == NULL || (size_t)(rb - t) + 1 >= l || rb[1] != ':')
			return TK_EINVAL;
		hl = (size_t)(rb - t) - 1;
		if (hl == 0 || hl > NS_HCONN_HOST_MAX ||
		    tk_ipaddr_parse(&req->ip, (const char *)t + 1, hl) != 0 ||
		    req->ip.family != TK_AF_INET6)
			return TK_EINVAL;
		memcpy(req->host, t + 1, hl);
		req->host[hl] = '\0';
		req->is_ip = true;
		colon = rb + 1;
	} else {
		colon = NULL;
		for (size_t i = 0; i < l; i++)
			if (t[i] == ':')
				colon = t + i;
		if (colon == NULL)
			return TK_EINVAL;
		hl = (size_t)(colon - t);
		if (hl == 0 || hl > NS_HCONN_HOST_MAX)
			return TK_EINVAL;
		for (size_t i = 0; i < hl; i++)
			if (!hostchar(t[i]))
				return TK_EINVAL;
		memcpy(req->host, t, hl);
		req->host[hl] = '\0';
		req->is_ip = tk_ipaddr_parse(&req->ip, req->host, hl) == 0;
		if (req->is_ip && req->ip.family != TK_AF_INET)
			return TK_EINVAL;
	}
	return port_parse(colon + 1, (size_t)(t + l - (colon + 1)), &req->port);
}

/* "Basic <token68>" against user:pass, in constant time over the bytes. */
static bool
auth_ok(const ns_hconn_cfg *cfg, const uint8_t *v, size_t l)
{
	uint8_t got[AUTH_MAX] = { 0 }, want[AUTH_MAX] = { 0 };
	size_t gl = 0, ul = strlen(cfg->user), pl = strlen(cfg->pass);
	bool ok = false;

	if (l < 6 || strncasecmp((const char *)v, "basic ", 6) != 0)
		return false;
	v += 6;
	l -= 6;
	while (l > 0 && *v == ' ') {
		v++;
		l--;
	}
	if (ul + 1 + pl > sizeof(want))
		return false;
	if (tk_base64_decode(got, sizeof(got), &gl, (const char *)v, l) != 0)
		goto out;
	memcpy(want, cfg->user, ul);
	want[ul] = ':';
	memcpy(want + ul + 1, cfg->pass, pl);
	ok = tk_ct_eq(got, want, sizeof(got)) && gl == ul + 1 + pl;
out:
	tk_secure_zero(got, sizeof(got));
	tk_secure_zero(want, sizeof(want));
	return ok;
}

static int
done(const ns_hconn_cfg *cfg, ns_hconn_req *req, int status,
    size_t consumed)
{
	ns_proxy_stats *st = cfg ? cfg->stats : NULL;

	req->status = status;
	req->consumed = consumed;
	if (st != NULL) {
		if (status == 200)
			st->http_ok++;
		else if (status == 400)
			st->http_bad++;
		else if (status == 405)
			st->http_method++;
		else if (status == 407)
			st->http_auth++;
	}
	return 0;
}


int
ns_hconn_parse(const ns_hconn_cfg *cfg, const uint8_t *p, size_t n,
    ns_hconn_req *req)
{
	const uint8_t *line, *auth = NULL;
	size_t len, off = 0, auth_len = 0;
	int n_auth = 0;

	memset(req, 0, sizeof(*req));
	size_t end = head_end(p, TK_MIN(n, (size_t)NS_HCONN_HEAD_MAX));
	if (end == 0)
		return n >= NS_HCONN_HEAD_MAX ?
		    done(cfg, req, 400, NS_HCONN_HEAD_MAX) : done(cfg, req, 0, 0);

	/* request-line = method SP request-target SP HTTP-version */
	if (!next_line(p, end, &off, &line, &len) || len == 0)
		return done(cfg, req, 400, end);
	const uint8_t *sp1 = memchr(line, ' ', len);
	if (sp1 == NULL || sp1 == line)
		return done(cfg, req, 400, end);
	for (const uint8_t *c = line; c < sp1; c++)
		if (!tchar(*c))
			return done(cfg, req, 400, end);
	const uint8_t *tgt = sp1 + 1, *lend = line + len;
	const uint8_t *sp2 = memchr(tgt, ' ', (size_t)(lend - tgt));
	if (sp2 == NULL || sp2 == tgt)
		return done(cfg, req, 400, end);
	const uint8_t *ver = sp2 + 1;
	if (lend - ver != 8 || memcmp(ver, "HTTP/1.", 7) != 0 ||
	    (ver[7] != '0' && ver[7] != '1'))
		return done(cfg, req, 400, end);
	req->http_minor = ver[7] - '0';
	/* method names are case-sensitive (RFC 9110 §9.1) */
	if ((size_t)(sp1 - line) != 7 || memcmp(line, "CONNECT", 7) != 0)
		return done(cfg, req, 405, end);
	if (target_parse(tgt, (size_t)(sp2 - tgt), req) != 0)
		return done(cfg, req, 400, end);

	/* header fields up to the empty line */
	while (next_line(p, end, &off, &line, &len) && len > 0) {
		if (line[0] == ' ' || line[0] == '\t')
			return done(cfg, req, 400, end); /* obs-fold: §5.2 */
		const uint8_t *colon = memchr(line, ':', len);
		if (colon == NULL || colon == line)
			return done(cfg, req, 400, end);
		for (const uint8_t *c = line; c < colon; c++)
			if (!tchar(*c))
				return done(cfg, req, 400, end); /* incl. "Name :" */
		const uint8_t *v = colon + 1, *ve = line + len;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		for (const uint8_t *c = v; c < ve; c++)
			if (*c == 0 || *c == '\r')
				return done(cfg, req, 400, end);
		if ((size_t)(colon - line) == 19 &&
		    strncasecmp((const char *)line, "Proxy-Authorization",
			19) == 0) {
			auth = v;
			auth_len = (size_t)(ve - v);
			n_auth++;
		}
	}
	if (n_auth > 1)
		return done(cfg, req, 400, end);
	if (cfg != NULL && cfg->user != NULL && cfg->pass != NULL &&
	    (auth == NULL || !auth_ok(cfg, auth, auth_len)))
		return done(cfg, req, 407, end);
	return done(cfg, req, 200, end);
}

const char *
ns_hconn_response(int status, size_t *len)
{
	const char *s;

	switch (status) {
	case 200:
		s = "HTTP/1.1 200 Connection Established\r\n\r\n";
		break;
	case 400:
		s = "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n"
		    "Content-Length: 0\r\n\r\n";
		break;
	case 405:
		s = "HTTP/1.1 405 Method Not Allowed\r\nAllow: CONNECT\r\n"
		    "Connection: close\r\nContent-Length: 0\r\n\r\n";
		break;
	case 407:
		s = "HTTP/1.1 407 Proxy Authentication Required\r\n"
		    "Proxy-Authenticate: Basic realm=\"tailkit\"\r\n"
		    "Connection: close\r\nContent-Length: 0\r\n\r\n";
		break;
	case 502:
		s = "HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n"
		    "Content-Length: 0\r\n\r\n";
		break;
	case 504:
		s = "HTTP/1.1 504 Gateway Timeout\r\nConnection: close\r\n"
		    "Content-Length: 0\r\n\r\n";
		break;
	default:
		return NULL;
	}
	*len = strlen(s);
	return s;
}
