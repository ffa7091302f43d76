/*
 * wg(8) userspace API: parse-all-then-apply, so a bad request changes
 * nothing.  Keys and values as documented at wireguard.com/xplatform.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk/buf.h"
#include "tk/enc.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk/netaddr.h"
#include "tk/wg_uapi.h"

/* "v4:port" or "[v6]:port", as wg(8) writes them: the one address:port
 * parser (tk/netaddr.h) does the work. */
int
tk_wg_endpoint_parse(tk_wg_endpoint *ep, const char *s)
{
	tk_ipport ip;

	if (tk_ipport_parse(&ip, s, strlen(s)) != 0)
		return TK_EINVAL;
	memset(ep, 0, sizeof(*ep));
	ep->ep_family = ip.ip.family == TK_AF_INET ? 4 : 6;
	memcpy(ep->ep_addr, ip.ip.addr, ep->ep_family == 4 ? 4 : 16);
	ep->ep_port = ip.port;
	return 0;
}

void
tk_wg_endpoint_format(const tk_wg_endpoint *ep, char *buf, size_t cap)
{
	char a[INET6_ADDRSTRLEN];

	if (ep->ep_family == 4) {
		inet_ntop(AF_INET, ep->ep_addr, a, sizeof(a));
		snprintf(buf, cap, "%s:%u", a, ep->ep_port);
	} else if (ep->ep_family == 6) {
		inet_ntop(AF_INET6, ep->ep_addr, a, sizeof(a));
		snprintf(buf, cap, "[%s]:%u", a, ep->ep_port);
	} else if (cap) {
		buf[0] = 0;
	}
}

/* --- get ---------------------------------------------------------------- */

struct aip_out {
	tk_buf *b;
	int rv;
};

static void
aip_line(void *arg, int family, const uint8_t *addr, unsigned bits)
{
	struct aip_out *o = arg;
	char a[INET6_ADDRSTRLEN];

	inet_ntop(family == 4 ? AF_INET : AF_INET6, addr, a, sizeof(a));
	if (o->rv == 0)
		o->rv = tk_buf_printf(o->b, "allowed_ip=%s/%u\n", a, bits);
}

static int
do_get(tk_wg_device *dev, const tk_wg_uapi_iface *ifc, tk_buf *b)
{
	uint8_t k[32];
	char hex[65];
	int rv = 0;

	if (tk_wg_device_private_key(dev, k)) {
		tk_hex_encode(hex, k, 32);
		rv |= tk_buf_printf(b, "private_key=%s\n", hex);
	}
	tk_secure_zero(k, sizeof(k));
	tk_secure_zero(hex, sizeof(hex));
	rv |= tk_buf_printf(b, "listen_port=%u\n", ifc->listen_port);
	if (ifc->fwmark)
		rv |= tk_buf_printf(b, "fwmark=%u\n", ifc->fwmark);
	for (tk_wg_peer *p = tk_wg_peer_first(dev); p && rv == 0;
	    p = tk_wg_peer_next(p)) {
		tk_wg_endpoint ep;
		tk_wg_peer_stats ps;
		char eps[80];

		tk_hex_encode(hex, tk_wg_peer_public_key(p), 32);
		rv |= tk_buf_printf(b, "public_key=%s\n", hex);
		if (tk_wg_peer_has_psk(p)) {
			tk_wg_peer_get_psk(p, k);
			tk_hex_encode(hex, k, 32);
			rv |= tk_buf_printf(b, "preshared_key=%s\n", hex);
			tk_secure_zero(k, sizeof(k));
		}
		tk_wg_peer_get_endpoint(p, &ep);
		if (ep.ep_family) {
			tk_wg_endpoint_format(&ep, eps, sizeof(eps));
			rv |= tk_buf_printf(b, "endpoint=%s\n", eps);
		}
		tk_wg_peer_get_stats(p, &ps);
		rv |= tk_buf_printf(b,
		    "last_handshake_time_sec=%llu\nlast_handshake_time_nsec=%llu\n"
		    "tx_bytes=%llu\nrx_bytes=%llu\n"
		    "persistent_keepalive_interval=%u\n",
		    (unsigned long long)(ps.last_handshake_real_ns / 1000000000ull),
		    (unsigned long long)(ps.last_handshake_real_ns % 1000000000ull),
		    (unsigned long long)ps.tx_bytes, (unsigned long long)ps.rx_bytes,
		    tk_wg_peer_keepalive(p));
		struct aip_out o = { b, 0 };
		tk_wg_peer_allowed_ips(p, aip_line, &o);
		rv |= o.rv;
		rv |= tk_buf_printf(b, "protocol_version=1\n");
	}
	return rv ? TK_ENOMEM : 0;
}

/* --- set ---------------------------------------------------------------- */

typedef struct aip_op {
	int family;
	uint8_t addr[16];
	unsigned bits;
	bool remove;
} aip_op;

typedef struct peer_op {
	uint8_t pub[32];
	bool remove, update_only;
	bool has_psk;
	uint8_t psk[32];
	bool has_ep;
	tk_wg_endpoint ep;
	bool has_keepalive;
	uint16_t keepalive;
	bool replace_aips;
	aip_op *aips;
	size_t naips, capaips;
} peer_op;

typedef struct set_req {
	bool has_priv;
	uint8_t priv[32];
	bool has_port;
	uint16_t port;
	bool has_fwmark;
	uint32_t fwmark;
	bool replace_peers;
	peer_op *peers;
	size_t npeers, cappeers;
} set_req;

static void
req_free(set_req *r)
{
	for (size_t i = 0; i < r->npeers; i++)
		tk_free(r->peers[i].aips);
	if (r->peers)
		tk_secure_zero(r->peers, r->cappeers * sizeof(*r->peers));
	tk_free(r->peers);
	tk_secure_zero(r, sizeof(*r));
}

static int
key_hex(uint8_t out[32], const char *v)
{
	if (strlen(v) != 64 || tk_hex_decode(out, 32, v, 64) != 0)
		return TK_EINVAL;
	return 0;
}

static int
parse_u(const char *v, unsigned long max, unsigned long *out)
{
	char *end;

	if (*v < '0' || *v > '9')
		return TK_EINVAL;
	errno = 0;
	unsigned long x = strtoul(v, &end, 10);
	if (*end || errno || x > max)
		return TK_EINVAL;
	*out = x;
	return 0;
}

static int
parse_aip(aip_op *op, const char *v)
{
	char a[64];
	const char *slash = strchr(v, '/');
	unsigned long bits;
	size_t al;

	memset(op, 0, sizeof(*op));
	if (*v == '-') { /* newer wg(8): allowed_ip=-prefix removes one */
		op->remove = true;
		v++;
		slash = strchr(v, '/');
	}
	if (slash == NULL || (al = (size_t)(slash - v)) == 0 || al >= sizeof(a))
		return TK_EINVAL;
	memcpy(a, v, al);
	a[al] = 0;
	if (inet_pton(AF_INET, a, op->addr) == 1)
		op->family = 4;
	else if (inet_pton(AF_INET6, a, op->addr) == 1)
		op->family = 6;
	else
		return TK_EINVAL;
	if (parse_u(slash + 1, op->family == 4 ? 32 : 128, &bits) != 0)
		return TK_EINVAL;
	op->bits = (unsigned)bits;
	return 0;
}

/*
 * Makes room for one more element in a zero-filled array of n elements
 * (capacity *cap, doubling from `first`).  The array is moved, not
 * realloc'd, so a failure leaves it intact.
 */
static int
grow(void **arr, size_t *cap, size_t n, size_t elem, size_t first)
{
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : first;
	void *na = tk_calloc(nc, elem);
	if (na == NULL)
		return TK_ENOMEM;
	if (n)
		memcpy(na, *arr, n * elem);
	tk_free(*arr);
	*arr = na;
	*cap = nc;
	return 0;
}

static int
parse_set(set_req *r, char *text, char *why, size_t whylen)
{
	peer_op *cur = NULL;
	char *save = NULL;

	for (char *line = strtok_r(text, "\n", &save); line;
	    line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');
		unsigned long u = 0;
		int bad = 0;

		if (eq == NULL) {
			snprintf(why, whylen, "line without '=': accepted is key=value");
			return TK_EINVAL;
		}
		*eq = 0;
		const char *k = line, *v = eq + 1;
		if (strcmp(k, "public_key") == 0) {
			if (grow((void **)&r->peers, &r->cappeers, r->npeers,
				sizeof(*r->peers), 8) != 0)
				return TK_ENOMEM;
			cur = &r->peers[r->npeers++];
			memset(cur, 0, sizeof(*cur));
			bad = key_hex(cur->pub, v);
		} else if (cur == NULL) {
			if (strcmp(k, "private_key") == 0) {
				static const uint8_t zero[32];
				bad = key_hex(r->priv, v);
				if (!bad && tk_ct_eq(r->priv, zero, 32)) {
					/* wireguard-go would clear the key; the engine
					 * owns the node key and has no keyless state */
					snprintf(why, whylen, "clearing the private key "
					    "is not supported (accepted: a nonzero key)");
					return TK_EINVAL;
				}
				r->has_priv = true;
			} else if (strcmp(k, "listen_port") == 0) {
				bad = parse_u(v, 65535, &u);
				r->port = (uint16_t)u;
				r->has_port = true;
			} else if (strcmp(k, "fwmark") == 0) {
				bad = parse_u(v, UINT32_MAX, &u);
				r->fwmark = (uint32_t)u;
				r->has_fwmark = true;
			} else if (strcmp(k, "replace_peers") == 0) {
				bad = strcmp(v, "true") != 0;
				r->replace_peers = true;
			} else {
				snprintf(why, whylen,
				    "unknown interface key '%s' (accepted: private_key, "
				    "listen_port, fwmark, replace_peers, public_key)", k);
				return TK_EINVAL;
			}
		} else if (strcmp(k, "remove") == 0) {
			bad = strcmp(v, "true") != 0;
			cur->remove = true;
		} else if (strcmp(k, "update_only") == 0) {
			bad = strcmp(v, "true") != 0;
			cur->update_only = true;
		} else if (strcmp(k, "preshared_key") == 0) {
			bad = key_hex(cur->psk, v);
			cur->has_psk = true;
		} else if (strcmp(k, "endpoint") == 0) {
			bad = tk_wg_endpoint_parse(&cur->ep, v);
			cur->has_ep = true;
		} else if (strcmp(k, "persistent_keepalive_interval") == 0) {
			bad = parse_u(v, 65535, &u);
			cur->keepalive = (uint16_t)u;
			cur->has_keepalive = true;
		} else if (strcmp(k, "replace_allowed_ips") == 0) {
			bad = strcmp(v, "true") != 0;
			cur->replace_aips = true;
		} else if (strcmp(k, "allowed_ip") == 0) {
			if (grow((void **)&cur->aips, &cur->capaips, cur->naips,
				sizeof(*cur->aips), 4) != 0)
				return TK_ENOMEM;
			bad = parse_aip(&cur->aips[cur->naips++], v);
		} else if (strcmp(k, "protocol_version") == 0) {
			bad = strcmp(v, "1") != 0;
		} else {
			snprintf(why, whylen,
			    "unknown peer key '%s' (accepted: remove, update_only, "
			    "preshared_key, endpoint, persistent_keepalive_interval, "
			    "replace_allowed_ips, allowed_ip, protocol_version)", k);
			return TK_EINVAL;
		}
		if (bad) {
			snprintf(why, whylen, "bad value for '%s'", k);
			return TK_EINVAL;
		}
	}
	return 0;
}

static int
apply_set(tk_wg_device *dev, tk_wg_uapi_iface *ifc, const set_req *r)
{
	int rv = 0;

	if (r->has_priv && (rv = tk_wg_device_set_private_key(dev, r->priv)) != 0)
		return rv;
	if (r->has_port && r->port != ifc->listen_port) {
		ifc->listen_port = r->port;
		ifc->listen_port_changed = 1;
	}
	if (r->has_fwmark && r->fwmark != ifc->fwmark) {
		ifc->fwmark = r->fwmark;
		ifc->fwmark_changed = 1;
	}
	if (r->replace_peers)
		while (tk_wg_peer_first(dev))
			tk_wg_peer_remove(dev, tk_wg_peer_first(dev));
	for (size_t i = 0; i < r->npeers; i++) {
		const peer_op *op = &r->peers[i];
		tk_wg_peer *p = tk_wg_peer_find(dev, op->pub);
		uint8_t me[32];

		if (op->remove) {
			if (p)
				tk_wg_peer_remove(dev, p);
			continue;
		}
		if (p == NULL) {
			if (op->update_only)
				continue;
			if (tk_wg_device_public_key(dev, me) &&
			    memcmp(me, op->pub, 32) == 0)
				continue; /* wireguard-go ignores our own key */
			if ((rv = tk_wg_peer_add(dev, op->pub, &p)) != 0)
				return rv;
		}
		if (op->has_psk)
			tk_wg_peer_set_psk(p, op->psk);
		if (op->has_ep)
			tk_wg_peer_set_endpoint(p, &op->ep);
		if (op->replace_aips)
			tk_wg_peer_clear_allowed_ips(p);
		for (size_t j = 0; j < op->naips; j++) {
			const aip_op *a = &op->aips[j];
			if (a->remove)
				tk_wg_peer_remove_allowed_ip(p, a->family, a->addr, a->bits);
			else if ((rv = tk_wg_peer_add_allowed_ip(p, a->family, a->addr,
				a->bits)) != 0)
				return rv;
		}
		if (op->has_keepalive)
			tk_wg_peer_set_keepalive(p, op->keepalive);
	}
	return 0;
}

int
tk_wg_uapi_handle(tk_wg_device *dev, tk_wg_uapi_iface *ifc, const char *req,
    size_t n, char **resp, size_t *resplen, char *why, size_t whylen)
{
	char dummy[8];
	tk_buf b;
	int err = 0;

	if (why == NULL) {
		why = dummy;
		whylen = sizeof(dummy);
	}
	why[0] = 0;
	tk_buf_init_secret(&b); /* a get writes the private key into it */
	if (n >= 6 && memcmp(req, "get=1\n", 6) == 0) {
		if (do_get(dev, ifc, &b) != 0)
			err = ENOMEM;
	} else if (n >= 6 && memcmp(req, "set=1\n", 6) == 0) {
		char *text;
		set_req r;

		memset(&r, 0, sizeof(r));
		if (n > TK_WG_UAPI_MAX_REQUEST) {
			snprintf(why, whylen, "request over %u bytes", TK_WG_UAPI_MAX_REQUEST);
			err = EMSGSIZE;
		} else if ((text = tk_malloc(n - 6 + 1)) == NULL) {
			err = ENOMEM;
		} else {
			memcpy(text, req + 6, n - 6);
			text[n - 6] = 0;
			if (memchr(text, 0, n - 6) != NULL) {
				snprintf(why, whylen, "NUL byte in request");
				err = EINVAL;
			} else {
				int rv = parse_set(&r, text, why, whylen);
				if (rv == TK_ENOMEM)
					err = ENOMEM;
				else if (rv != 0)
					err = EINVAL;
				else if ((rv = apply_set(dev, ifc, &r)) != 0) {
					snprintf(why, whylen, "applying: %s", tk_strerror(rv));
					err = rv == TK_ENOMEM ? ENOMEM : EINVAL;
				}
			}
			tk_free_secret(text, n - 6 + 1);
		}
		req_free(&r);
	} else {
		snprintf(why, whylen, "unknown operation (accepted: get=1, set=1)");
		err = EINVAL;
	}
	if (tk_buf_printf(&b, "errno=%d\n\n", err) != 0) {
		tk_buf_fini_secret(&b);
		return -TK_ENOMEM;
	}
	*resp = (char *)b.data;
	*resplen = b.len;
	return err;
}
