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
	char *fqdn;	  /* canonical: "node.tailnet.ts.net." */
	size_t short_len; /* "node." = first short_len chars; 0: none */
	size_t n_addrs;
	tk_ipaddr addrs[HOST_ADDRS_MAX];
};

struct route {
	char *suffix;		/* "corp.example." or "." */
	bool local;		/* no resolvers: authoritative here */
	size_t n_conf;		/* resolvers configured */
	ns_dns_upstreams ups;	/* the forwardable ones */
};

struct ns_dns_table {
	struct host *hosts; /* nodes, self first when added first */
	size_t n_hosts, cap_hosts;
	struct host *extras; /* DNSConfig.ExtraRecords: no short names */
	size_t n_extras;
	struct route *routes;
	size_t n_routes;
	size_t n_default_conf;
	ns_dns_upstreams defaults;
	bool magicdns;	   /* DNSConfig.Proxied */
	char *self_domain; /* "tailnet.ts.net." from self's name */
};

/* "Foo.Example" / "foo.example." / ".foo.example" -> "foo.example."
 * (lower case, trailing dot); TK_EINVAL unless a plain DNS name. */
static int
canon(const char *in, char out[TEXT_NAME_MAX])
{
	uint8_t w[NS_DNS_NAME_MAX];
	size_t l, n;
	char text[NS_DNS_TEXT_MAX];

	if (in == NULL)
		return TK_EINVAL;
	while (*in == '.' && in[1] != '\0')
		in++;
	l = strlen(in);
	if (l == 0 || l >= TEXT_NAME_MAX)
		return TK_EINVAL;
	if (ns_dns_name_from_text(in, w, &n) != 0)
		return TK_EINVAL;
	if (ns_dns_name_to_text(w, n, text, sizeof(text)) != 0 ||
	    strchr(text, '\\') != NULL || strlen(text) >= TEXT_NAME_MAX)
		return TK_EINVAL;
	memcpy(out, text, strlen(text) + 1);
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

int
ns_dns_table_new(ns_dns_table **out)
{
	ns_dns_table *t = tk_calloc(1, sizeof(*t));

	if (t == NULL)
		return TK_ENOMEM;
	*out = t;
	return 0;
}

static void
config_clear(ns_dns_table *t)
{
	for (size_t i = 0; i < t->n_extras; i++)
		tk_free(t->extras[i].fqdn);
	for (size_t i = 0; i < t->n_routes; i++)
		tk_free(t->routes[i].suffix);
	tk_free(t->extras);
	tk_free(t->routes);
	t->extras = NULL;
	t->routes = NULL;
	t->n_extras = t->n_routes = t->n_default_conf = 0;
	memset(&t->defaults, 0, sizeof(t->defaults));
	t->magicdns = false;
}

void
ns_dns_table_free(ns_dns_table *t)
{
	if (t == NULL)
		return;
	config_clear(t);
	for (size_t i = 0; i < t->n_hosts; i++)
		tk_free(t->hosts[i].fqdn);
	tk_free(t->hosts);
	tk_free(t->self_domain);
	tk_free(t);
}

int
ns_dns_table_add_node(ns_dns_table *t, const char *name,
    const tk_ipaddr *addrs, size_t n, bool self)
{
	char c[TEXT_NAME_MAX];
	struct host h;

	if (canon(name, c) != 0 || strcmp(c, ".") == 0)
		return TK_EINVAL;
	if (t->n_hosts == t->cap_hosts) {
		size_t cap = t->cap_hosts ? 2 * t->cap_hosts : 16;
		struct host *nh = tk_realloc(t->hosts, cap * sizeof(*nh));
		if (nh == NULL)
			return TK_ENOMEM;
		t->hosts = nh;
		t->cap_hosts = cap;
	}
	memset(&h, 0, sizeof(h));
	for (size_t i = 0; i < n && h.n_addrs < HOST_ADDRS_MAX; i++)
		if (addrs[i].family == TK_AF_INET ||
		    addrs[i].family == TK_AF_INET6)
			h.addrs[h.n_addrs++] = addrs[i];
	const char *dot = strchr(c, '.');
	h.short_len = (size_t)(dot - c) + 1;
	if ((h.fqdn = tk_strdup(c)) == NULL)
		return TK_ENOMEM;
	if (self && dot[1] != '\0') {
		char *d = tk_strdup(dot + 1);
		if (d == NULL) {
			tk_free(h.fqdn);
			return TK_ENOMEM;
		}
		tk_free(t->self_domain);
		t->self_domain = d;
	}
	t->hosts[t->n_hosts++] = h;
	return 0;
}

/* ExtraRecords: Type "" (inferred from the value), "A" or "AAAA".  false
 * when the record is skipped (bad name, value or type). */
static bool
extra_parse(const Tk__Bus__V1__DNSRecord *r, char name[TEXT_NAME_MAX],
    tk_ipaddr *ip)
{
	if (r == NULL || r->value == NULL || canon(r->name, name) != 0 ||
	    tk_ipaddr_parse(ip, r->value, strlen(r->value)) != 0)
		return false;
	const char *ty = r->type ? r->type : "";
	if (ty[0] == '\0')
		return true;
	return (strcmp(ty, "A") == 0 && ip->family == TK_AF_INET) ||
	    (strcmp(ty, "AAAA") == 0 && ip->family == TK_AF_INET6);
}

int
ns_dns_table_set_config(ns_dns_table *t, const Tk__Bus__V1__DNSConfig *dc)
{
	config_clear(t);
	if (dc == NULL)
		return 0;
	t->extras = tk_calloc(dc->n_extra_records ? dc->n_extra_records : 1,
	    sizeof(*t->extras));
	t->routes = tk_calloc(dc->n_routes ? dc->n_routes : 1,
	    sizeof(*t->routes));
	if (t->extras == NULL || t->routes == NULL)
		goto nomem;
	for (size_t i = 0; i < dc->n_extra_records; i++) {
		char c[TEXT_NAME_MAX];
		struct host *h = &t->extras[t->n_extras];
		if (!extra_parse(dc->extra_records[i], c, &h->addrs[0]))
			continue;
		if ((h->fqdn = tk_strdup(c)) == NULL)
			goto nomem;
		h->n_addrs = 1;
		t->n_extras++;
	}
	for (size_t i = 0; i < dc->n_routes; i++) {
		const Tk__Bus__V1__DNSRoute *r = dc->routes[i];
		struct route *rt = &t->routes[t->n_routes];
		char c[TEXT_NAME_MAX];
		if (r == NULL || canon(r->suffix, c) != 0)
			continue;
		if ((rt->suffix = tk_strdup(c)) == NULL)
			goto nomem;
		rt->local = r->n_resolvers == 0;
		resolvers_add(&rt->ups, &rt->n_conf, r->resolvers,
		    r->n_resolvers);
		t->n_routes++;
	}
	resolvers_add(&t->defaults, &t->n_default_conf, dc->resolvers,
	    dc->n_resolvers);
	if (t->n_default_conf == 0)
		resolvers_add(&t->defaults, &t->n_default_conf,
		    dc->fallback_resolvers, dc->n_fallback_resolvers);
	t->magicdns = dc->has_proxied && dc->proxied;
	return 0;
nomem:
	config_clear(t);
	return TK_ENOMEM;
}

/* Node.addresses: host prefixes (/32, /128) only. */
static size_t
node_addrs(const Tk__Bus__V1__Node *nd, tk_ipaddr *out, size_t max)
{
	size_t k = 0;

	for (size_t i = 0; i < nd->n_addresses && k < max; i++) {
		const Tk__Bus__V1__Prefix *p = nd->addresses[i];
		if (p == NULL || !p->has_addr)
			continue;
		memset(&out[k], 0, sizeof(out[k]));
		if (p->addr.len == 4 && (!p->has_bits || p->bits == 32))
			out[k].family = TK_AF_INET;
		else if (p->addr.len == 16 && (!p->has_bits || p->bits == 128))
			out[k].family = TK_AF_INET6;
		else
			continue;
		memcpy(out[k].addr, p->addr.data, p->addr.len);
		k++;
	}
	return k;
}

static int
add_pb_node(ns_dns_table *t, const Tk__Bus__V1__Node *nd, bool self)
{
	tk_ipaddr a[HOST_ADDRS_MAX];

	if (nd == NULL || nd->name == NULL)
		return 0;
	int rv = ns_dns_table_add_node(t, nd->name, a,
	    node_addrs(nd, a, HOST_ADDRS_MAX), self);
	return rv == TK_EINVAL ? 0 : rv; /* a bad name: that node only */
}

int
ns_dns_table_new_from_netmap(const Tk__Bus__V1__Netmap *nm,
    ns_dns_table **out)
{
	ns_dns_table *t;
	int rv = ns_dns_table_new(&t);

	if (rv != 0)
		return rv;
	if (nm != NULL) {
		/* MagicDNS names are served whether or not the OS is told
		 * to use 100.100.100.100 (Tailscale does the same) */
		rv = add_pb_node(t, nm->self, true);
		for (size_t i = 0; i < nm->n_peers && rv == 0; i++)
			rv = add_pb_node(t, nm->peers[i], false);
		if (rv == 0)
			rv = ns_dns_table_set_config(t, nm->dns_config);
	}
	if (rv != 0) {
		ns_dns_table_free(t);
		return rv;
	}
	*out = t;
	return 0;
}

/* FQDN match, or short-name match for a one-label name. */
static bool
host_match(const struct host *h, const char *name, size_t nl)
{
	if (strcmp(h->fqdn, name) == 0)
		return true;
	return h->short_len != 0 && nl == h->short_len &&
	    strncmp(h->fqdn, name, nl) == 0;
}

/* The next host or extra record (index from, hosts then extras) matching
 * name; *idx gets its index.  NULL when none. */
static const struct host *
host_find(const ns_dns_table *t, const char *name, size_t from, size_t *idx)
{
	size_t nl = strlen(name);
	for (size_t i = from; i < t->n_hosts + t->n_extras; i++) {
		const struct host *h = i < t->n_hosts ? &t->hosts[i] :
							&t->extras[i - t->n_hosts];
		if (host_match(h, name, nl)) {
			*idx = i;
			return h;
		}
	}
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

/* The node (not extra record) holding address ip. */
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

/* Labels before `zone` in name (name ends in zone). */
static size_t
labels_before(const char *name, const char *zone)
{
	size_t k = 0, l = strlen(name) - strlen(zone);
	for (size_t i = 0; i < l; i++)
		k += name[i] == '.';
	return k;
}

/* name is a local zone's apex, or a proper ancestor of a name that may
 * exist in it (a node, an extra record, an address's reverse name). */
static bool
exists_below(const ns_dns_table *t, const char *name,
    const struct route *best)
{
	if (best != NULL && strcmp(best->suffix, name) == 0)
		return true;
	if (t->self_domain != NULL && strcmp(t->self_domain, name) == 0)
		return true;
	for (size_t i = 0; i < t->n_hosts + t->n_extras; i++) {
		const char *f = i < t->n_hosts ? t->hosts[i].fqdn :
						 t->extras[i - t->n_hosts].fqdn;
		if (strcmp(f, name) != 0 && has_suffix(f, name))
			return true;
	}
	/* in the reverse zones, anything shorter than a whole address */
	if (has_suffix(name, "in-addr.arpa."))
		return labels_before(name, "in-addr.arpa.") < 4;
	if (has_suffix(name, "ip6.arpa."))
		return labels_before(name, "ip6.arpa.") < 32;
	return false;
}

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
	size_t hi = 0;
	const struct host *h = t ? host_find(t, q.text, 0, &hi) : NULL;
	if (h != NULL) {
		rv = ns_dns_resp_begin(&b, out, cap,
		    ns_dns_size_limit(&q, transport), &q, NS_DNS_RCODE_NOERROR,
		    true, true);
		if (rv != 0)
			return rv;
		/* every matching record: a name may have several */
		for (; h != NULL; h = host_find(t, q.text, hi + 1, &hi)) {
			for (size_t k = 0; k < h->n_addrs; k++)
				if (want(q.qtype, h->addrs[k].family))
					(void)ns_dns_resp_add_addr(&b,
					    &h->addrs[k], NS_DNS_TTL);
		}
		goto finish;
	}

	/* PTR for tailnet addresses (other types: the name exists, no
	 * data) */
	tk_ipaddr ip;
	if (t != NULL && reverse_parse(q.text, &ip) == 0 &&
	    (h = host_by_addr(t, &ip)) != NULL) {
		rv = ns_dns_resp_begin(&b, out, cap,
		    ns_dns_size_limit(&q, transport), &q, NS_DNS_RCODE_NOERROR,
		    true, true);
		if (rv != 0)
			return rv;
		uint8_t w[NS_DNS_NAME_MAX];
		size_t wl;
		if ((q.qtype == NS_DNS_TYPE_PTR || q.qtype == NS_DNS_TYPE_ANY) &&
		    TK_ALWAYS(ns_dns_name_from_text(h->fqdn, w, &wl) == 0))
			(void)ns_dns_resp_add_ptr(&b, w, wl, NS_DNS_TTL);
		goto finish;
	}

	/* split DNS: the longest matching suffix wins; with MagicDNS on,
	 * the tailnet domain and the tailnet reverse zones are local routes
	 * (a configured route may still be longer) */
	const struct route *best = NULL;
	size_t best_len = 0;
	bool local = false;
	for (size_t i = 0; t != NULL && i < t->n_routes; i++) {
		const struct route *r = &t->routes[i];
		size_t l = strlen(r->suffix);
		if (has_suffix(q.text, r->suffix) && (best == NULL || l > best_len)) {
			best = r;
			best_len = l;
			local = r->local;
		}
	}
	if (t != NULL && t->magicdns && t->self_domain != NULL &&
	    has_suffix(q.text, t->self_domain) &&
	    strlen(t->self_domain) >= best_len)
		local = true;
	if (t != NULL && t->magicdns && local_reverse(q.text) &&
	    (best == NULL || !has_suffix(best->suffix, "arpa.")))
		local = true;
	if (local) {
		/* RFC 8020: NXDOMAIN says nothing exists below either, so a
		 * zone apex or a name with tailnet names under it ("empty
		 * non-terminal") gets NOERROR with no data instead */
		if (exists_below(t, q.text, best)) {
			BUMP(st, nodata);
			rcode = NS_DNS_RCODE_NOERROR;
		} else {
			BUMP(st, nxdomain);
			rcode = NS_DNS_RCODE_NXDOMAIN;
		}
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

	size_t hi = 0;

	if (t == NULL || canon(name, c) != 0)
		return TK_ENOENT;
	for (const struct host *h = host_find(t, c, 0, &hi); h != NULL;
	     h = host_find(t, c, hi + 1, &hi)) {
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
