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
	size_t n_sent;	/* upstreams asked so far: ups.up[0..n_sent) */
	uint16_t ids[NS_DNS_FWD_MAX_UPSTREAMS]; /* ID sent to each */
	ns_dns_upstreams ups;
	uint64_t deadline_ns;  /* then SERVFAIL */
	uint64_t next_send_ns; /* then ask the next upstream too; 0: none */
	ns_dns_client client;
	ns_dns_query q; /* the client's query: ID, question, OPT */
	uint8_t *msg;	/* the client's query bytes, to send again */
	size_t msg_len;
};

struct ns_dns_fwd {
	const tk_clock *clock;
	const tk_rng *rng;
	uint64_t timeout_ns, retry_ns;
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
	f->retry_ns = (uint64_t)(cfg && cfg->retry_ms ? cfg->retry_ms : 1000) *
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

static void
pending_clear(ns_dns_fwd *f, struct pending *s)
{
	tk_free(s->msg);
	s->msg = NULL;
	s->used = false;
	f->n_used--;
}

void
ns_dns_fwd_free(ns_dns_fwd *f)
{
	if (f == NULL)
		return;
	for (size_t i = 0; i < f->max; i++)
		if (f->p[i].used)
			pending_clear(f, &f->p[i]);
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

/* The pending query that sent `id` to `up`. */
static struct pending *
find(ns_dns_fwd *f, uint16_t id, const tk_ipport *up)
{
	for (size_t i = 0; i < f->max; i++) {
		struct pending *s = &f->p[i];
		if (!s->used)
			continue;
		for (size_t k = 0; k < s->n_sent; k++)
			if (s->ids[k] == id && ipport_eq(&s->ups.up[k], up))
				return s;
	}
	return NULL;
}

/* A random ID no pending query uses towards `up`. */
static bool
fresh_id(ns_dns_fwd *f, const tk_ipport *up, uint16_t *id)
{
	for (int k = 0; k < ID_TRIES; k++) {
		tk_rng_fill(f->rng, id, sizeof(*id));
		if (find(f, *id, up) == NULL)
			return true;
	}
	return false;
}

#define BUMP(st, f) \
	do {                      \
		if ((st) != NULL) \
			(st)->f++; \
	} while (0)

/* The query for upstream k of s, under a fresh ID, into out. */
static int
send_to(ns_dns_fwd *f, struct pending *s, size_t k, uint8_t *out, size_t cap,
    size_t *outlen, tk_ipport *upstream)
{
	uint16_t id;

	if (cap < s->msg_len)
		return TK_EINVAL;
	if (!fresh_id(f, &s->ups.up[k], &id))
		return TK_EAGAIN;
	s->ids[k] = id;
	s->n_sent = k + 1;
	memcpy(out, s->msg, s->msg_len);
	tk_be16_store(out, id);
	*outlen = s->msg_len;
	*upstream = s->ups.up[k];
	return 0;
}

int
ns_dns_fwd_query(ns_dns_fwd *f, const uint8_t *p, size_t n,
    const ns_dns_client *client, const ns_dns_upstreams *ups, uint8_t *out,
    size_t cap, size_t *outlen, tk_ipport *upstream, ns_dns_stats *st)
{
	struct pending *slot = NULL;

	if (ups == NULL || ups->n == 0 || ups->n > NS_DNS_FWD_MAX_UPSTREAMS ||
	    cap < n)
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
	if ((slot->msg = tk_malloc(n)) == NULL)
		return TK_ENOMEM;
	memcpy(slot->msg, p, n);
	slot->msg_len = n;
	slot->ups = *ups;
	slot->client = *client;
	slot->n_sent = 0;
	slot->used = true;
	f->n_used++;
	int rv = send_to(f, slot, 0, out, cap, outlen, upstream);
	if (rv != 0) {
		pending_clear(f, slot);
		if (rv == TK_EAGAIN)
			BUMP(st, fwd_full);
		return rv;
	}
	uint64_t now = tk_clock_mono_ns(f->clock);
	slot->deadline_ns = now + f->timeout_ns;
	slot->next_send_ns = ups->n > 1 ? now + f->retry_ns : 0;
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
	pending_clear(f, s);
	BUMP(st, fwd_replied);
	return 0;
}

int
ns_dns_fwd_poll(ns_dns_fwd *f, uint8_t *out, size_t cap, size_t *outlen,
    int *send, ns_dns_client *client, tk_ipport *upstream, ns_dns_stats *st)
{
	uint64_t now = tk_clock_mono_ns(f->clock);

	for (size_t i = 0; i < f->max; i++) {
		struct pending *s = &f->p[i];
		if (!s->used)
			continue;
		if (s->deadline_ns <= now) {
			int rv = ns_dns_resp_error(&s->q, s->client.transport,
			    NS_DNS_RCODE_SERVFAIL, false, out, cap, outlen);
			if (rv != 0)
				return rv;
			*client = s->client;
			*send = NS_DNS_FWD_TO_CLIENT;
			pending_clear(f, s);
			BUMP(st, fwd_timeout);
			return 0;
		}
		if (s->next_send_ns != 0 && s->next_send_ns <= now &&
		    s->n_sent < s->ups.n) {
			/* no reply yet: the next upstream races the others */
			int rv = send_to(f, s, s->n_sent, out, cap, outlen,
			    upstream);
			s->next_send_ns = s->n_sent < s->ups.n ?
			    now + f->retry_ns : 0;
			if (rv == TK_EAGAIN)
				continue; /* no free ID: wait for the deadline */
			if (rv != 0)
				return rv;
			*client = s->client;
			*send = NS_DNS_FWD_TO_UPSTREAM;
			BUMP(st, fwd_retried);
			return 0;
		}
	}
	return TK_ENOENT;
}

uint64_t
ns_dns_fwd_next_deadline(const ns_dns_fwd *f)
{
	uint64_t d = 0;
	for (size_t i = 0; i < f->max; i++) {
		const struct pending *s = &f->p[i];
		if (!s->used)
			continue;
		if (d == 0 || s->deadline_ns < d)
			d = s->deadline_ns;
		if (s->next_send_ns != 0 && s->next_send_ns < d)
			d = s->next_send_ns;
	}
	return d;
}

size_t
ns_dns_fwd_outstanding(const ns_dns_fwd *f)
{
	return f->n_used;
}
