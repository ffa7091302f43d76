/* The fixed netmap of nm_fixture.h, built with malloc so that protobuf-c's
 * free_unpacked releases it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nm_fixture.h"
#include "tk/netaddr.h"

static void *
xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz);
	if (p == NULL)
		abort();
	return p;
}

static char *
xstrdup(const char *s)
{
	char *d = strdup(s);
	if (d == NULL)
		abort();
	return d;
}

/* node(name, n, "ip", ...) */
static Tk__Bus__V1__Node *
node(int64_t id, const char *name, size_t n, ...)
{
	Tk__Bus__V1__Node *nd = xcalloc(1, sizeof(*nd));
	va_list ap;

	tk__bus__v1__node__init(nd);
	nd->has_id = 1;
	nd->id = id;
	nd->name = xstrdup(name);
	nd->n_addresses = n;
	nd->addresses = xcalloc(n, sizeof(*nd->addresses));
	va_start(ap, n);
	for (size_t i = 0; i < n; i++) {
		const char *s = va_arg(ap, const char *);
		tk_ipaddr ip;
		Tk__Bus__V1__Prefix *p = xcalloc(1, sizeof(*p));
		tk__bus__v1__prefix__init(p);
		if (tk_ipaddr_parse(&ip, s, strlen(s)) != 0)
			abort();
		p->has_addr = p->has_bits = 1;
		p->addr.len = ip.family == TK_AF_INET ? 4 : 16;
		p->addr.data = xcalloc(1, p->addr.len);
		memcpy(p->addr.data, ip.addr, p->addr.len);
		p->bits = (uint32_t)p->addr.len * 8;
		nd->addresses[i] = p;
	}
	va_end(ap);
	return nd;
}

static Tk__Bus__V1__Resolver *
resolver(const char *addr)
{
	Tk__Bus__V1__Resolver *r = xcalloc(1, sizeof(*r));
	tk__bus__v1__resolver__init(r);
	r->addr = xstrdup(addr);
	return r;
}

static Tk__Bus__V1__DNSRoute *
route(const char *suffix, size_t n, ...)
{
	Tk__Bus__V1__DNSRoute *r = xcalloc(1, sizeof(*r));
	va_list ap;

	tk__bus__v1__dnsroute__init(r);
	r->suffix = xstrdup(suffix);
	r->n_resolvers = n;
	r->resolvers = n ? xcalloc(n, sizeof(*r->resolvers)) : NULL;
	va_start(ap, n);
	for (size_t i = 0; i < n; i++)
		r->resolvers[i] = resolver(va_arg(ap, const char *));
	va_end(ap);
	return r;
}

static Tk__Bus__V1__DNSRecord *
record(const char *name, const char *type, const char *value)
{
	Tk__Bus__V1__DNSRecord *r = xcalloc(1, sizeof(*r));
	tk__bus__v1__dnsrecord__init(r);
	r->name = xstrdup(name);
	r->type = xstrdup(type);
	r->value = xstrdup(value);
	return r;
}

Tk__Bus__V1__Netmap *
nm_fixture_new(const char *corp_up1, const char *corp_up2)
{
	Tk__Bus__V1__Netmap *nm = xcalloc(1, sizeof(*nm));
	Tk__Bus__V1__DNSConfig *dc = xcalloc(1, sizeof(*dc));

	tk__bus__v1__netmap__init(nm);
	tk__bus__v1__dnsconfig__init(dc);
	nm->self = node(1, "self.tail-test.ts.net.", 2, "100.64.0.1",
	    "fd7a:115c:a1e0::1");
	nm->n_peers = 2;
	nm->peers = xcalloc(2, sizeof(*nm->peers));
	nm->peers[0] = node(2, "peer1.tail-test.ts.net.", 2, "100.64.0.2",
	    "fd7a:115c:a1e0::2");
	nm->peers[1] = node(3, "Peer2.Tail-Test.ts.net.", 1, "100.64.0.3");
	nm->domain = xstrdup("tail-test.ts.net");
	nm->dns_config = dc;
	dc->has_proxied = dc->proxied = 1;
	dc->n_resolvers = 2;
	dc->resolvers = xcalloc(2, sizeof(*dc->resolvers));
	dc->resolvers[0] = resolver("1.1.1.1");
	dc->resolvers[1] = resolver("[2606:4700:4700::1111]:53");
	dc->n_routes = 4;
	dc->routes = xcalloc(4, sizeof(*dc->routes));
	dc->routes[0] = route("b.corp.example.", 1, "10.2.2.2");
	if (corp_up1 == NULL)
		dc->routes[1] = route("corp.example.", 2, "10.1.1.1",
		    "10.1.1.2:5353");
	else if (corp_up2 == NULL)
		dc->routes[1] = route("corp.example.", 1, corp_up1);
	else
		dc->routes[1] = route("corp.example.", 2, corp_up1, corp_up2);
	dc->routes[2] = route("doh.example.", 1,
	    "https://dns.example/dns-query");
	dc->routes[3] = route("local.example.", 0);
	dc->n_extra_records = 2 + NM_FIXTURE_MANY;
	dc->extra_records = xcalloc(dc->n_extra_records,
	    sizeof(*dc->extra_records));
	dc->extra_records[0] = record("db.internal.", "", "10.0.0.5");
	dc->extra_records[1] = record("DB.internal", "AAAA", "fd00::5");
	for (int i = 0; i < NM_FIXTURE_MANY; i++) {
		char ip[32];
		snprintf(ip, sizeof(ip), "10.0.1.%d", i + 1);
		dc->extra_records[2 + i] = record("many.internal", "A", ip);
	}
	return nm;
}

void
nm_fixture_free(Tk__Bus__V1__Netmap *nm)
{
	if (nm != NULL)
		tk__bus__v1__netmap__free_unpacked(nm, NULL);
}
