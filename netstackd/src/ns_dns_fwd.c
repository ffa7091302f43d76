/*
 * Sans-I/O DNS forwarder: a client's query goes upstream under a fresh
 * random ID (so off-path spoofing has to guess 16 bits plus the source
 * port the caller picks), the upstream's reply comes back under the
 * client's ID once ID, upstream address and question all match, and a
 * query with no reply by its deadline becomes a SERVFAIL.  A fixed table
 * bounds how many are in flight.
 */
#include <string.h>

#include "ns_dns.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"

#define ID_TRIES 16 /* fresh IDs tried before giving up on a busy table */

struct pending {
	bool used;
	uint16_t up_id;	     /* ID sent upstream */
	tk_ipport upstream;
	uint64_t deadline_ns;
	ns_dns_client client;
	ns_dns_query q; /* the client's query: ID, question, OPT */
};

struct ns_dns_fwd {
	const tk_clock *clock;
	const tk_rng *rng;
	uint64_t timeout_ns;
	size_t max;
	size_t n_used;
	struct pending *p;
};

int
ns_dns_fwd_new(const ns_dns_fwd_cfg *cfg, ns_dns_fwd **out)
{
	ns_dns_fwd *f = tk_calloc(1, sizeof(*f));

	if (f == NULL)
		return TK_ENOMEM;
	f->clock = cfg ? cfg->clock : NULL;
	f->rng = cfg ? cfg->rng : NULL;
	f->timeout_ns = (uint64_t)(cfg && cfg->timeout_ms ? cfg->timeout_ms :
							    5000) *
	    TK_NSEC_PER_MSEC;
	f->max = cfg && cfg->max_outstanding ? cfg->max_outstanding : 256;
	f->p = tk_calloc(f->max, sizeof(*f->p));
	if (f->p == NULL) {
		tk_free(f);
		return TK_ENOMEM;
	}
	*out = f;
	return 0;
}

void
ns_dns_fwd_free(ns_dns_fwd *f)
{
	if (f == NULL)
		return;
	tk_free(f->p);
	tk_free(f);
}

static bool
ipport_eq(const tk_ipport *a, const tk_ipport *b)
{
	size_t l = a->ip.family == TK_AF_INET ? 4 : 16;
	return a->port == b->port && a->ip.family == b->ip.family &&
	    memcmp(a->ip.addr, b->ip.addr, l) == 0;
}

static struct pending *
find(ns_dns_fwd *f, uint16_t id, const tk_ipport *up)
{
	for (size_t i = 0; i < f->max; i++)
		if (f->p[i].used && f->p[i].up_id == id &&
		    ipport_eq(&f->p[i].upstream, up))
			return &f->p[i];
	return NULL;
}

#define BUMP(st, f) \
	do {                      \
		if ((st) != NULL) \
			(st)->f++; \
	} while (0)

int
ns_dns_fwd_query(ns_dns_fwd *f, const uint8_t *p, size_t n,
    const ns_dns_client *client, const ns_dns_upstreams *ups, uint8_t *out,
    size_t cap, size_t *outlen, tk_ipport *upstream, ns_dns_stats *st)
{
	struct pending *slot = NULL;
	uint16_t id = 0;
	bool have_id = false;

	if (ups == NULL || ups->n == 0 || cap < n)
		return TK_EINVAL;
	if (f->n_used >= f->max) {
		BUMP(st, fwd_full);
		return TK_EAGAIN;
	}
	for (size_t i = 0; i < f->max; i++)
		if (!f->p[i].used) {
			slot = &f->p[i];
			break;
		}
	if (TK_NEVER(slot == NULL))
		return TK_EINTERNAL;
	if (ns_dns_query_parse(&slot->q, p, n) != 0)
		return TK_EPROTO;
	for (int k = 0; k < ID_TRIES && !have_id; k++) {
		tk_rng_fill(f->rng, &id, sizeof(id));
		have_id = find(f, id, &ups->up[0]) == NULL;
	}
	if (!have_id) {
		BUMP(st, fwd_full);
		return TK_EAGAIN;
	}
	slot->used = true;
	slot->up_id = id;
	slot->upstream = ups->up[0];
	slot->client = *client;
	slot->deadline_ns = tk_clock_mono_ns(f->clock) + f->timeout_ns;
	f->n_used++;
	memcpy(out, p, n);
	tk_be16_store(out, id);
	*outlen = n;
	*upstream = ups->up[0];
	BUMP(st, fwd_sent);
	return 0;
}

int
ns_dns_fwd_reply(ns_dns_fwd *f, const uint8_t *p, size_t n,
    const tk_ipport *from, uint8_t *out, size_t cap, size_t *outlen,
    ns_dns_client *client, ns_dns_stats *st)
{
	uint8_t qname[NS_DNS_NAME_MAX];
	size_t ql;
	uint16_t id, qtype, qclass;

	if (ns_dns_response_check(p, n, &id, qname, &ql, &qtype, &qclass) !=
	    0) {
		BUMP(st, fwd_drop_garbage);
		return TK_ENOENT;
	}
	struct pending *s = find(f, id, from);
	if (s == NULL || qtype != s->q.qtype || qclass != s->q.qclass ||
	    !ns_dns_name_eq(qname, ql, s->q.qname, s->q.qname_len)) {
		/* a late or spoofed reply: the pending query stays */
		BUMP(st, fwd_drop_unmatched);
		return TK_ENOENT;
	}
	if (cap < n)
		return TK_EINVAL;
	memcpy(out, p, n);
	tk_be16_store(out, s->q.id);
	*outlen = n;
	*client = s->client;
	s->used = false;
	f->n_used--;
	BUMP(st, fwd_replied);
	return 0;
}

int
ns_dns_fwd_expire(ns_dns_fwd *f, uint8_t *out, size_t cap, size_t *outlen,
    ns_dns_client *client, ns_dns_stats *st)
{
	uint64_t now = tk_clock_mono_ns(f->clock);

	for (size_t i = 0; i < f->max; i++) {
		struct pending *s = &f->p[i];
		if (!s->used || s->deadline_ns > now)
			continue;
		int rv = ns_dns_resp_error(&s->q, s->client.transport,
		    NS_DNS_RCODE_SERVFAIL, false, out, cap, outlen);
		if (rv != 0)
			return rv;
		*client = s->client;
		s->used = false;
		f->n_used--;
		BUMP(st, fwd_timeout);
		return 0;
	}
	return TK_ENOENT;
}

uint64_t
ns_dns_fwd_next_deadline(const ns_dns_fwd *f)
{
	uint64_t d = 0;
	for (size_t i = 0; i < f->max; i++)
		if (f->p[i].used && (d == 0 || f->p[i].deadline_ns < d))
			d = f->p[i].deadline_ns;
	return d;
}

size_t
ns_dns_fwd_outstanding(const ns_dns_fwd *f)
{
	return f->n_used;
}
