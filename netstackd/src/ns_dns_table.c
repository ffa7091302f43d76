/*
 * MagicDNS: the answers 100.100.100.100 gives from the netmap, and the
 * forwarding decision for everything else.  What is answered locally, what
 * is authoritative and what is forwarded follows Tailscale's documented
 * MagicDNS and split-DNS behaviour (tailcfg.DNSConfig: Routes with no
 * resolvers are answered locally; the tailnet domain and the reverse zones
 * of the tailnet ranges are local when MagicDNS is on).
 */
#include <stdio.h>
#include <string.h>

#include "ns_dns.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk/bus/v1/ctrl.pb-c.h"

#define HOST_ADDRS_MAX 8
#define TEXT_NAME_MAX  256 /* canonical names: no escapes, <= 254 chars */

struct host {
	char fqdn[TEXT_NAME_MAX];  /* "node.tailnet.ts.net." */
	char shortn[TEXT_NAME_MAX]; /* "node." */
	uint8_t wire[NS_DNS_NAME_MAX]; /* fqdn as sent in PTR answers */
	size_t wire_len;
	size_t n_addrs;
	tk_ipaddr addrs[HOST_ADDRS_MAX];
};

struct route {
	char suffix[TEXT_NAME_MAX]; /* "corp.example." or "." */
	bool local;		    /* no resolvers: authoritative here */
	size_t n_conf;		    /* resolvers configured */
	ns_dns_upstreams ups;	    /* the forwardable ones */
};

struct ns_dns_table {
	struct host *hosts; /* extra records are hosts without a short name */
	size_t n_hosts;
	struct route *routes;
	size_t n_routes;
	size_t n_default_conf;
	ns_dns_upstreams defaults;
	bool magicdns; /* DNSConfig.Proxied */
};

/* "Foo.Example" / "foo.example." / ".foo.example" -> "foo.example.";
 * wire form too when wire != NULL. */
static int
canon(const char *in, char out[TEXT_NAME_MAX], uint8_t *wire, size_t *wl)
{
	char tmp[TEXT_NAME_MAX];
	uint8_t w[NS_DNS_NAME_MAX];
	size_t l, n;
	char text[NS_DNS_TEXT_MAX];

	if (in == NULL)
		return TK_EINVAL;
	while (*in == '.' && in[1] != '\0')
		in++;
	l = strlen(in);
	if (l == 0 || l >= sizeof(tmp))
		return TK_EINVAL;
	memcpy(tmp, in, l + 1);
	if (ns_dns_name_from_text(tmp, w, &n) != 0)
		return TK_EINVAL;
	if (ns_dns_name_to_text(w, n, text, sizeof(text)) != 0 ||
	    strchr(text, '\\') != NULL || strlen(text) >= TEXT_NAME_MAX)
		return TK_EINVAL;
	memcpy(out, text, strlen(text) + 1);
	if (wire != NULL) {
		memcpy(wire, w, n);
		*wl = n;
	}
	return 0;
}

/* name is equal to suffix or ends in ".suffix" ("." matches all). */
static bool
has_suffix(const char *name, const char *suffix)
{
	size_t nl = strlen(name), sl = strlen(suffix);

	if (strcmp(suffix, ".") == 0)
		return true;
	if (nl == sl)
		return strcmp(name, suffix) == 0;
	return nl > sl && name[nl - sl - 1] == '.' &&
	    strcmp(name + nl - sl, suffix) == 0;
}

/* Resolver.Addr: "IP" (port 53), "IP:port", "[v6]:port".  DoH
 * ("https://...") and peerapi ("http://...") are not forwardable here. */
static bool
resolver_parse(const char *s, tk_ipport *out)
{
	tk_ipport ap;

	if (s == NULL)
		return false;
	size_t n = strlen(s);
	if (tk_ipaddr_parse(&ap.ip, s, n) == 0) {
		ap.port = 53;
		*out = ap;
		return true;
	}
	if (tk_ipport_parse(&ap, s, n) == 0 && ap.port != 0) {
		*out = ap;
		return true;
	}
	return false;
}

static void
resolvers_add(ns_dns_upstreams *u, size_t *n_conf,
    Tk__Bus__V1__Resolver *const *rs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		tk_ipport ap;
		(*n_conf)++;
		if (rs[i] == NULL || !resolver_parse(rs[i]->addr, &ap))
			continue;
		if (u->n < NS_DNS_FWD_MAX_UPSTREAMS)
			u->up[u->n++] = ap;
	}
}

static void
host_add_node(ns_dns_table *t, const Tk__Bus__V1__Node *nd)
{
	struct host *h = &t->hosts[t->n_hosts];

	if (nd == NULL || canon(nd->name, h->fqdn, h->wire, &h->wire_len) != 0)
		return;
	if (strcmp(h->fqdn, ".") == 0)
		return;
	const char *dot = strchr(h->fqdn, '.');
	size_t sl = (size_t)(dot - h->fqdn) + 1;
	memcpy(h->shortn, h->fqdn, sl);
	h->shortn[sl] = '\0';
	h->n_addrs = 0;
	for (size_t i = 0; i < nd->n_addresses; i++) {
		const Tk__Bus__V1__Prefix *p = nd->addresses[i];
		if (p == NULL || !p->has_addr || h->n_addrs == HOST_ADDRS_MAX)
			continue;
		tk_ipaddr *a = &h->addrs[h->n_addrs];
		memset(a, 0, sizeof(*a));
		/* node addresses are host prefixes (/32, /128) */
		if (p->addr.len == 4 && (!p->has_bits || p->bits == 32))
			a->family = TK_AF_INET;
		else if (p->addr.len == 16 && (!p->has_bits || p->bits == 128))
			a->family = TK_AF_INET6;
		else
			continue;
		memcpy(a->addr, p->addr.data, p->addr.len);
		h->n_addrs++;
	}
	t->n_hosts++;
}

/* ExtraRecords: Type "" (inferred from the value), "A" or "AAAA". */
static void
host_add_extra(ns_dns_table *t, const Tk__Bus__V1__DNSRecord *r)
{
	struct host *h = &t->hosts[t->n_hosts];
	tk_ipaddr ip;

	if (r == NULL || r->value == NULL ||
	    canon(r->name, h->fqdn, h->wire, &h->wire_len) != 0)
		return;
	if (tk_ipaddr_parse(&ip, r->value, strlen(r->value)) != 0)
		return;
	const char *ty = r->type ? r->type : "";
	if ((strcmp(ty, "A") == 0 && ip.family != TK_AF_INET) ||
	    (strcmp(ty, "AAAA") == 0 && ip.family != TK_AF_INET6) ||
	    (ty[0] != '\0' && strcmp(ty, "A") != 0 && strcmp(ty, "AAAA") != 0))
		return;
	h->shortn[0] = '\0';
	h->addrs[0] = ip;
	h->n_addrs = 1;
	t->n_hosts++;
}

static int
route_add(ns_dns_table *t, const char *suffix, bool local,
    Tk__Bus__V1__Resolver *const *rs, size_t n)
{
	struct route *r = &t->routes[t->n_routes];

	memset(r, 0, sizeof(*r));
	if (canon(suffix, r->suffix, NULL, NULL) != 0)
		return TK_EINVAL;
	r->local = local;
	resolvers_add(&r->ups, &r->n_conf, rs, n);
	t->n_routes++;
	return 0;
}

int
ns_dns_table_new_from_netmap(const Tk__Bus__V1__Netmap *nm,
    ns_dns_table **out)
{
	ns_dns_table *t = tk_calloc(1, sizeof(*t));
	const Tk__Bus__V1__DNSConfig *dc = nm ? nm->dns_config : NULL;
	size_t nh = 0, nr = 0;

	if (t == NULL)
		return TK_ENOMEM;
	if (nm != NULL)
		nh = 1 + nm->n_peers;
	if (dc != NULL) {
		nh += dc->n_extra_records;
		nr = dc->n_routes + 1; /* + the tailnet domain */
	}
	t->hosts = tk_calloc(nh ? nh : 1, sizeof(*t->hosts));
	t->routes = tk_calloc(nr ? nr : 1, sizeof(*t->routes));
	if (t->hosts == NULL || t->routes == NULL) {
		ns_dns_table_free(t);
		return TK_ENOMEM;
	}
	if (nm != NULL) {
		/* MagicDNS names are served whether or not the OS is told
		 * to use 100.100.100.100 (Tailscale does the same) */
		host_add_node(t, nm->self);
		for (size_t i = 0; i < nm->n_peers; i++)
			host_add_node(t, nm->peers[i]);
	}
	if (dc != NULL) {
		t->magicdns = dc->has_proxied && dc->proxied;
		for (size_t i = 0; i < dc->n_extra_records; i++)
			host_add_extra(t, dc->extra_records[i]);
		for (size_t i = 0; i < dc->n_routes; i++) {
			const Tk__Bus__V1__DNSRoute *r = dc->routes[i];
			if (r != NULL)
				(void)route_add(t, r->suffix, r->n_resolvers == 0,
				    r->resolvers, r->n_resolvers);
		}
		if (t->magicdns && nm->self != NULL && t->n_hosts > 0 &&
		    nm->self->name != NULL) {
			/* the tailnet domain: self's name minus its label */
			const char *d = strchr(t->hosts[0].fqdn, '.');
			if (d != NULL && d[1] != '\0')
				(void)route_add(t, d + 1, true, NULL, 0);
		}
		resolvers_add(&t->defaults, &t->n_default_conf, dc->resolvers,
		    dc->n_resolvers);
		if (t->n_default_conf == 0)
			resolvers_add(&t->defaults, &t->n_default_conf,
			    dc->fallback_resolvers, dc->n_fallback_resolvers);
	}
	*out = t;
	return 0;
}

void
ns_dns_table_free(ns_dns_table *t)
{
	if (t == NULL)
		return;
	tk_free(t->hosts);
	tk_free(t->routes);
	tk_free(t);
}

/* Hosts whose name is `name` (FQDN, or short name for one label). */
static bool
host_match(const struct host *h, const char *name, bool single_label)
{
	if (strcmp(h->fqdn, name) == 0)
		return true;
	return single_label && h->shortn[0] != '\0' &&
	    strcmp(h->shortn, name) == 0;
}

static bool
single_label(const char *name)
{
	const char *d = strchr(name, '.');
	return d != NULL && d[1] == '\0' && d != name;
}

/* The first host matching, preferring FQDN matches over short names. */
static const struct host *
host_find(const ns_dns_table *t, const char *name, size_t from)
{
	bool one = single_label(name);
	for (size_t i = from; i < t->n_hosts; i++)
		if (host_match(&t->hosts[i], name, one))
			return &t->hosts[i];
	return NULL;
}

static int
label_num(const char *s, size_t l, unsigned base, unsigned max, unsigned *v)
{
	unsigned x = 0;

	if (l == 0 || l > 3)
		return TK_EINVAL;
	for (size_t i = 0; i < l; i++) {
		unsigned d;
		char c = s[i];
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return TK_EINVAL;
		x = x * base + d;
	}
	if (x > max)
		return TK_EINVAL;
	*v = x;
	return 0;
}

/* "4.3.2.1.in-addr.arpa." / 32 nibbles + "ip6.arpa." -> address. */
static int
reverse_parse(const char *name, tk_ipaddr *ip)
{
	static const char v4s[] = "in-addr.arpa.", v6s[] = "ip6.arpa.";
	size_t nl = strlen(name);
	const char *p = name;
	unsigned v;

	memset(ip, 0, sizeof(*ip));
	if (has_suffix(name, v4s) && nl > sizeof(v4s) - 1) {
		const char *end = name + nl - (sizeof(v4s) - 1);
		for (int i = 3; i >= 0; i--) {
			const char *d = memchr(p, '.', (size_t)(end - p));
			if (d == NULL ||
			    label_num(p, (size_t)(d - p), 10, 255, &v) != 0)
				return TK_EINVAL;
			ip->addr[i] = (uint8_t)v;
			p = d + 1;
		}
		if (p != end)
			return TK_EINVAL;
		ip->family = TK_AF_INET;
		return 0;
	}
	if (has_suffix(name, v6s) && nl == 64 + sizeof(v6s) - 1) {
		for (int i = 31; i >= 0; i--, p += 2) {
			if (p[1] != '.' || label_num(p, 1, 16, 15, &v) != 0)
				return TK_EINVAL;
			ip->addr[i / 2] |= (uint8_t)(i % 2 ? v : v << 4);
		}
		ip->family = TK_AF_INET6;
		return 0;
	}
	return TK_EINVAL;
}

/* Reverse zones of 100.64.0.0/10 and fd7a:115c:a1e0::/48, local when
 * MagicDNS is on. */
static bool
local_reverse(const char *name)
{
	static const char v6z[] = "0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa.";
	static const char v4z[] = ".100.in-addr.arpa.";
	size_t nl = strlen(name), zl = sizeof(v4z) - 1;

	if (has_suffix(name, v6z))
		return true;
	if (nl <= zl || strcmp(name + nl - zl, v4z) != 0)
		return false;
	/* the label before "100": 64..127 */
	const char *end = name + nl - zl, *start = end;
	while (start > name && start[-1] != '.')
		start--;
	unsigned v;
	return label_num(start, (size_t)(end - start), 10, 255, &v) == 0 &&
	    v >= 64 && v <= 127;
}

static const struct host *
host_by_addr(const ns_dns_table *t, const tk_ipaddr *ip)
{
	size_t len = ip->family == TK_AF_INET ? 4 : 16;
	for (size_t i = 0; i < t->n_hosts; i++)
		for (size_t k = 0; k < t->hosts[i].n_addrs; k++) {
			const tk_ipaddr *a = &t->hosts[i].addrs[k];
			if (a->family == ip->family &&
			    memcmp(a->addr, ip->addr, len) == 0)
				return &t->hosts[i];
		}
	return NULL;
}

#define BUMP(st, f) \
	do {                      \
		if ((st) != NULL) \
			(st)->f++; \
	} while (0)

static bool
want(uint16_t qtype, uint8_t family)
{
	if (qtype == NS_DNS_TYPE_ANY)
		return true;
	return (qtype == NS_DNS_TYPE_A && family == TK_AF_INET) ||
	    (qtype == NS_DNS_TYPE_AAAA && family == TK_AF_INET6);
}

int
ns_dns_answer(const ns_dns_table *t, const uint8_t *p, size_t n,
    int transport, uint8_t *out, size_t cap, size_t *outlen,
    ns_dns_upstreams *fwd, int *action, ns_dns_stats *st)
{
	ns_dns_query q;
	ns_dns_builder b;
	unsigned rcode;
	int rv;

	if (cap < NS_DNS_UDP_MAX)
		return TK_EINVAL;
	BUMP(st, queries);
	rv = ns_dns_query_parse(&q, p, n);
	switch (rv) {
	case 0:
		break;
	case TK_EAGAIN:
		BUMP(st, drop_short);
		*action = NS_DNS_DROP;
		return 0;
	case TK_EEXIST:
		BUMP(st, drop_response);
		*action = NS_DNS_DROP;
		return 0;
	default:
		/* header readable, the rest not: answer without a question
		 * (RFC 1035 §4.1.1 FORMERR, NOTIMP) */
		if (rv == TK_ENOTSUP)
			BUMP(st, notimp);
		else
			BUMP(st, formerr);
		q.qname_len = 0;
		q.has_opt = false;
		rcode = rv == TK_ENOTSUP ? NS_DNS_RCODE_NOTIMP :
					   NS_DNS_RCODE_FORMERR;
		goto error;
	}
	if (q.edns_version > 0) {
		/* RFC 6891 §6.1.3 */
		BUMP(st, badvers);
		rcode = NS_DNS_RCODE_BADVERS;
		goto error;
	}
	if (q.qclass != NS_DNS_CLASS_IN && q.qclass != NS_DNS_CLASS_ANY) {
		BUMP(st, refused);
		rcode = NS_DNS_RCODE_REFUSED;
		goto error;
	}

	/* tailnet names and extra records */
	const struct host *h = t ? host_find(t, q.text, 0) : NULL;
	if (h != NULL) {
		rv = ns_dns_resp_begin(&b, out, cap,
		    ns_dns_size_limit(&q, transport), &q, NS_DNS_RCODE_NOERROR,
		    true, true);
		if (rv != 0)
			return rv;
		/* every matching record: a name may have several */
		for (; h != NULL; h = host_find(t, q.text,
			       (size_t)(h - t->hosts) + 1)) {
			for (size_t k = 0; k < h->n_addrs; k++)
				if (want(q.qtype, h->addrs[k].family))
					(void)ns_dns_resp_add_addr(&b,
					    &h->addrs[k], NS_DNS_TTL);
		}
		goto finish;
	}

	/* PTR for tailnet addresses */
	tk_ipaddr ip;
	if (t != NULL && (q.qtype == NS_DNS_TYPE_PTR ||
			     q.qtype == NS_DNS_TYPE_ANY) &&
	    reverse_parse(q.text, &ip) == 0 &&
	    (h = host_by_addr(t, &ip)) != NULL) {
		rv = ns_dns_resp_begin(&b, out, cap,
		    ns_dns_size_limit(&q, transport), &q, NS_DNS_RCODE_NOERROR,
		    true, true);
		if (rv != 0)
			return rv;
		(void)ns_dns_resp_add_ptr(&b, h->wire, h->wire_len, NS_DNS_TTL);
		goto finish;
	}

	/* split DNS: the longest matching suffix wins */
	const struct route *best = NULL;
	for (size_t i = 0; t != NULL && i < t->n_routes; i++) {
		const struct route *r = &t->routes[i];
		if (has_suffix(q.text, r->suffix) &&
		    (best == NULL || strlen(r->suffix) > strlen(best->suffix)))
			best = r;
	}
	if ((best == NULL || best->local == false) && t != NULL &&
	    t->magicdns && local_reverse(q.text)) {
		BUMP(st, nxdomain);
		rcode = NS_DNS_RCODE_NXDOMAIN;
		goto error_aa;
	}
	if (best != NULL && best->local) {
		BUMP(st, nxdomain);
		rcode = NS_DNS_RCODE_NXDOMAIN;
		goto error_aa;
	}
	const ns_dns_upstreams *ups = best ? &best->ups :
	    t		       ? &t->defaults :
				 NULL;
	size_t conf = best ? best->n_conf : t ? t->n_default_conf : 0;
	if (ups == NULL || ups->n == 0) {
		/* nothing forwardable: SERVFAIL, and say why */
		if (conf == 0)
			BUMP(st, servfail_no_upstream);
		else
			BUMP(st, servfail_unforwardable);
		rcode = NS_DNS_RCODE_SERVFAIL;
		goto error;
	}
	BUMP(st, forwarded);
	*fwd = *ups;
	*action = NS_DNS_FORWARD;
	return 0;

finish:
	rv = ns_dns_resp_finish(&b, outlen);
	if (rv != 0)
		return rv;
	if (b.truncated)
		BUMP(st, truncated);
	else if (b.ancount > 0)
		BUMP(st, answered);
	else
		BUMP(st, nodata);
	*action = NS_DNS_REPLY;
	return 0;

error:
	rv = ns_dns_resp_error(&q, transport, rcode, false, out, cap, outlen);
	if (rv != 0)
		return rv;
	*action = NS_DNS_REPLY;
	return 0;
error_aa:
	rv = ns_dns_resp_error(&q, transport, rcode, true, out, cap, outlen);
	if (rv != 0)
		return rv;
	*action = NS_DNS_REPLY;
	return 0;
}

int
ns_dns_table_lookup(const ns_dns_table *t, const char *name, int family,
    tk_ipaddr *out)
{
	char c[TEXT_NAME_MAX];
	const tk_ipaddr *v6 = NULL;

	if (t == NULL || canon(name, c, NULL, NULL) != 0)
		return TK_ENOENT;
	for (const struct host *h = host_find(t, c, 0); h != NULL;
	     h = host_find(t, c, (size_t)(h - t->hosts) + 1)) {
		for (size_t k = 0; k < h->n_addrs; k++) {
			const tk_ipaddr *a = &h->addrs[k];
			if (a->family == TK_AF_INET &&
			    (family == 0 || family == TK_AF_INET)) {
				*out = *a;
				return 0;
			}
			if (a->family == TK_AF_INET6 && v6 == NULL &&
			    (family == 0 || family == TK_AF_INET6))
				v6 = a;
		}
	}
	if (v6 == NULL)
		return TK_ENOENT;
	*out = *v6;
	return 0;
}
