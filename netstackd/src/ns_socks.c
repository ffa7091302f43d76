/*
 * SOCKS5 server side, sans-I/O: method negotiation (RFC 1928 §3),
 * username/password (RFC 1929), requests and replies (RFC 1928 §4-§6),
 * and the UDP ASSOCIATE datagram header (§7).  See ns_proxy.h.
 */
#include <string.h>

#include "ns_proxy.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"

void
ns_socks_init(ns_socks *s, const ns_socks_cfg *cfg)
{
	memset(s, 0, sizeof(*s));
	if (cfg != NULL)
		s->cfg = *cfg;
	s->state = NS_SOCKS_S_GREETING;
}

static bool
auth_required(const ns_socks *s)
{
	return s->cfg.user != NULL && s->cfg.pass != NULL;
}

static void
set_reply2(ns_socks_result *r, uint8_t a, uint8_t b)
{
	r->reply[0] = a;
	r->reply[1] = b;
	r->reply_len = 2;
}

/* Writes VER REP RSV ATYP BND.ADDR BND.PORT. */
static size_t
reply_write(uint8_t *w, uint8_t rep, const tk_ipport *bnd)
{
	size_t o = 0;

	w[o++] = NS_SOCKS_VER;
	w[o++] = rep;
	w[o++] = 0;
	if (bnd != NULL && bnd->ip.family == TK_AF_INET6) {
		w[o++] = NS_SOCKS_ATYP_IPV6;
		memcpy(w + o, bnd->ip.addr, 16);
		o += 16;
	} else {
		w[o++] = NS_SOCKS_ATYP_IPV4;
		if (bnd != NULL && bnd->ip.family == TK_AF_INET)
			memcpy(w + o, bnd->ip.addr, 4);
		else
			memset(w + o, 0, 4);
		o += 4;
	}
	tk_be16_store(w + o, bnd ? bnd->port : 0);
	return o + 2;
}

#define BUMP(st, f) \
	do {                      \
		if ((st) != NULL) \
			(st)->f++; \
	} while (0)

static void
fail(ns_socks *s, ns_socks_result *r, uint8_t rep)
{
	BUMP(s->cfg.stats, socks_bad_request);
	r->event = NS_SOCKS_CLOSE;
	r->rep = rep;
	r->reply_len = reply_write(r->reply, rep, NULL);
	s->state = NS_SOCKS_S_DONE;
}

/* Constant time in the secret's length and contents. */
static bool
secret_eq(const uint8_t *got, size_t gl, const char *want)
{
	size_t wl = strlen(want);
	uint8_t a[255] = { 0 }, b[255] = { 0 };

	if (wl > sizeof(b))
		return false;
	memcpy(a, got, gl);
	memcpy(b, want, wl);
	bool eq = tk_ct_eq(a, b, sizeof(a));
	tk_secure_zero(a, sizeof(a));
	tk_secure_zero(b, sizeof(b));
	return eq && gl == wl;
}

/*
 * Reads ATYP ADDR PORT at p (n bytes).  0: *dst filled, *len bytes;
 * TK_EAGAIN: need more; TK_ENOTSUP: unknown ATYP; TK_EPROTO: bad name.
 */
static int
addr_read(const uint8_t *p, size_t n, ns_socks_addr *dst, size_t *len)
{
	size_t al;

	if (n < 1)
		return TK_EAGAIN;
	memset(dst, 0, sizeof(*dst));
	dst->atyp = p[0];
	switch (p[0]) {
	case NS_SOCKS_ATYP_IPV4:
		al = 4;
		break;
	case NS_SOCKS_ATYP_IPV6:
		al = 16;
		break;
	case NS_SOCKS_ATYP_DOMAIN:
		if (n < 2)
			return TK_EAGAIN;
		al = 1 + (size_t)p[1];
		break;
	default:
		return TK_ENOTSUP;
	}
	if (n < 1 + al + 2)
		return TK_EAGAIN;
	if (p[0] == NS_SOCKS_ATYP_DOMAIN) {
		size_t l = al - 1;
		if (l == 0 || memchr(p + 2, '\0', l) != NULL)
			return TK_EPROTO;
		memcpy(dst->name, p + 2, l);
		dst->name[l] = '\0';
		/* an address literal sent as a name is an address */
		if (tk_ipaddr_parse(&dst->ip, dst->name, l) == 0)
			dst->atyp = dst->ip.family == TK_AF_INET ?
			    NS_SOCKS_ATYP_IPV4 : NS_SOCKS_ATYP_IPV6;
	} else {
		dst->ip.family = al == 4 ? TK_AF_INET : TK_AF_INET6;
		memcpy(dst->ip.addr, p + 1, al);
	}
	dst->port = tk_be16_load(p + 1 + al);
	*len = 1 + al + 2;
	return 0;
}

static int
feed_greeting(ns_socks *s, const uint8_t *p, size_t n, ns_socks_result *r)
{
	uint8_t want = auth_required(s) ? NS_SOCKS_M_USERPASS : NS_SOCKS_M_NOAUTH;
	uint8_t pick = NS_SOCKS_M_NONE;

	if (n < 2)
		return 0;
	if (p[0] != NS_SOCKS_VER) {
		/* not SOCKS5 (SOCKS4, TLS, HTTP...): nothing to say */
		BUMP(s->cfg.stats, socks_not_socks5);
		r->event = NS_SOCKS_CLOSE;
		s->state = NS_SOCKS_S_DONE;
		return 0;
	}
	size_t nm = p[1];
	if (n < 2 + nm)
		return 0;
	r->consumed = 2 + nm;
	for (size_t i = 0; i < nm; i++) {
		if (p[2 + i] == want)
			pick = want;
		/* no auth configured, client only offers user/pass: take
		 * it, and any credentials */
		else if (!auth_required(s) && p[2 + i] == NS_SOCKS_M_USERPASS &&
		    pick == NS_SOCKS_M_NONE)
			pick = NS_SOCKS_M_USERPASS;
	}
	set_reply2(r, NS_SOCKS_VER, pick);
	if (pick == NS_SOCKS_M_NONE) {
		BUMP(s->cfg.stats, socks_no_method);
		r->event = NS_SOCKS_CLOSE;
		s->state = NS_SOCKS_S_DONE;
		return 0;
	}
	r->event = NS_SOCKS_REPLY;
	s->state = pick == NS_SOCKS_M_USERPASS ? NS_SOCKS_S_AUTH :
						   NS_SOCKS_S_REQUEST;
	return 0;
}

static int
feed_auth(ns_socks *s, const uint8_t *p, size_t n, ns_socks_result *r)
{
	if (n < 2)
		return 0;
	if (p[0] != NS_SOCKS_AUTH_VER) {
		BUMP(s->cfg.stats, socks_auth_failed);
		set_reply2(r, NS_SOCKS_AUTH_VER, 1);
		r->event = NS_SOCKS_CLOSE;
		s->state = NS_SOCKS_S_DONE;
		return 0;
	}
	size_t ul = p[1];
	if (n < 2 + ul + 1)
		return 0;
	size_t pl = p[2 + ul];
	if (n < 3 + ul + pl)
		return 0;
	r->consumed = 3 + ul + pl;
	/* RFC 1929 §2: status 0 = success, anything else = close */
	bool ok = true;
	if (auth_required(s)) {
		/* both compared, whatever the first gives */
		bool u = secret_eq(p + 2, ul, s->cfg.user);
		bool w = secret_eq(p + 3 + ul, pl, s->cfg.pass);
		ok = u && w;
	}
	if (!ok)
		BUMP(s->cfg.stats, socks_auth_failed);
	set_reply2(r, NS_SOCKS_AUTH_VER, ok ? 0 : 1);
	r->event = ok ? NS_SOCKS_REPLY : NS_SOCKS_CLOSE;
	s->state = ok ? NS_SOCKS_S_REQUEST : NS_SOCKS_S_DONE;
	return 0;
}

static int
feed_request(ns_socks *s, const uint8_t *p, size_t n, ns_socks_result *r)
{
	size_t al;

	if (n < 4)
		return 0;
	if (p[0] != NS_SOCKS_VER) {
		BUMP(s->cfg.stats, socks_bad_request);
		r->event = NS_SOCKS_CLOSE;
		s->state = NS_SOCKS_S_DONE;
		return 0;
	}
	int rv = addr_read(p + 3, n - 3, &r->dst, &al);
	if (rv == TK_EAGAIN)
		return 0;
	if (rv == TK_ENOTSUP) {
		/* the address length is unknown: nothing can follow */
		r->consumed = n;
		fail(s, r, NS_SOCKS_REP_ATYP);
		return 0;
	}
	if (rv != 0) {
		r->consumed = n;
		fail(s, r, NS_SOCKS_REP_FAIL);
		return 0;
	}
	r->consumed = 3 + al;
	s->cmd = p[1];
	if (p[1] == NS_SOCKS_CMD_CONNECT) {
		BUMP(s->cfg.stats, socks_connect);
		r->event = NS_SOCKS_CONNECT;
	} else if (p[1] == NS_SOCKS_CMD_UDP && s->cfg.allow_udp) {
		BUMP(s->cfg.stats, socks_udp);
		r->event = NS_SOCKS_UDP_ASSOCIATE;
	} else {
		fail(s, r, NS_SOCKS_REP_CMD);
		return 0;
	}
	s->state = NS_SOCKS_S_WAIT;
	return 0;
}

int
ns_socks_feed(ns_socks *s, const uint8_t *p, size_t n, ns_socks_result *r)
{
	memset(r, 0, sizeof(*r));
	r->event = NS_SOCKS_NEED_MORE;
	switch (s->state) {
	case NS_SOCKS_S_GREETING:
		return feed_greeting(s, p, n, r);
	case NS_SOCKS_S_AUTH:
		return feed_auth(s, p, n, r);
	case NS_SOCKS_S_REQUEST:
		return feed_request(s, p, n, r);
	default:
		return TK_ESTATE;
	}
}

int
ns_socks_reply(ns_socks *s, uint8_t rep, const tk_ipport *bnd,
    uint8_t out[NS_SOCKS_REPLY_MAX], size_t *outlen)
{
	if (s->state != NS_SOCKS_S_WAIT)
		return TK_ESTATE;
	*outlen = reply_write(out, rep, bnd);
	s->state = NS_SOCKS_S_DONE;
	return 0;
}

int
ns_socks_udp_decode(const uint8_t *p, size_t n, ns_socks_addr *dst,
    size_t *hdrlen, ns_proxy_stats *st)
{
	size_t al;

	if (n >= 4 && p[2] != 0) {
		BUMP(st, socks_udp_frag);
		return TK_ENOTSUP; /* §7: fragments may be dropped */
	}
	if (n < 4 || addr_read(p + 3, n - 3, dst, &al) != 0) {
		BUMP(st, socks_udp_bad);
		return TK_EPROTO;
	}
	*hdrlen = 3 + al;
	return 0;
}

int
ns_socks_udp_encode(const ns_socks_addr *src, uint8_t *out, size_t cap,
    size_t *hdrlen)
{
	size_t o = 3, need;

	switch (src->atyp) {
	case NS_SOCKS_ATYP_IPV4:
		need = 3 + 1 + 4 + 2;
		break;
	case NS_SOCKS_ATYP_IPV6:
		need = 3 + 1 + 16 + 2;
		break;
	case NS_SOCKS_ATYP_DOMAIN: {
		size_t l = strnlen(src->name, sizeof(src->name));
		if (l == 0 || l > NS_SOCKS_NAME_MAX)
			return TK_EINVAL;
		need = 3 + 2 + l + 2;
		break;
	}
	default:
		return TK_EINVAL;
	}
	if (cap < need)
		return TK_EMSGSIZE;
	out[0] = out[1] = out[2] = 0;
	out[o++] = src->atyp;
	if (src->atyp == NS_SOCKS_ATYP_IPV4) {
		memcpy(out + o, src->ip.addr, 4);
		o += 4;
	} else if (src->atyp == NS_SOCKS_ATYP_IPV6) {
		memcpy(out + o, src->ip.addr, 16);
		o += 16;
	} else {
		size_t l = strlen(src->name);
		out[o++] = (uint8_t)l;
		memcpy(out + o, src->name, l);
		o += l;
	}
	tk_be16_store(out + o, src->port);
	*hdrlen = o + 2;
	return 0;
}
