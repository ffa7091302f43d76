/*
 * MagicDNS as a service: the table answers, the forwarder forwards, and
 * the caller's callbacks carry the bytes.  Still sans-I/O: the netstackd
 * core owns the sockets (lwIP UDP/TCP at 100.100.100.100:53, UDP to the
 * upstreams) and the timer.  See ns_dns.h.
 */
#include <string.h>

#include "ns_dns.h"
#include "tk/err.h"
#include "tk/mem.h"

struct ns_dns_server {
	ns_dns_server_ops ops;
	ns_dns_table *table;
	ns_dns_fwd *fwd;
	ns_dns_stats st;
	uint8_t buf[NS_DNS_TCP_MAX]; /* one response or query at a time */
};

int
ns_dns_server_new(const ns_dns_fwd_cfg *cfg, const ns_dns_server_ops *ops,
    ns_dns_server **out)
{
	ns_dns_server *s;
	int rv;

	if (ops == NULL || ops->send_client == NULL ||
	    ops->send_upstream == NULL)
		return TK_EINVAL;
	if ((s = tk_calloc(1, sizeof(*s))) == NULL)
		return TK_ENOMEM;
	s->ops = *ops;
	if ((rv = ns_dns_fwd_new(cfg, &s->fwd)) != 0) {
		tk_free(s);
		return rv;
	}
	*out = s;
	return 0;
}

void
ns_dns_server_free(ns_dns_server *s)
{
	if (s == NULL)
		return;
	ns_dns_table_free(s->table);
	ns_dns_fwd_free(s->fwd);
	tk_free(s);
}

void
ns_dns_server_set_table(ns_dns_server *s, ns_dns_table *t)
{
	ns_dns_table_free(s->table);
	s->table = t;
}

/* SERVFAIL for a query the forwarder could not take. */
static void
servfail(ns_dns_server *s, const ns_dns_client *c, const uint8_t *p,
    size_t n)
{
	ns_dns_query q;
	size_t ol;

	if (ns_dns_query_parse(&q, p, n) == 0 &&
	    ns_dns_resp_error(&q, c->transport, NS_DNS_RCODE_SERVFAIL, false,
		s->buf, sizeof(s->buf), &ol) == 0)
		s->ops.send_client(s->ops.arg, c, s->buf, ol);
}

void
ns_dns_server_query(ns_dns_server *s, const ns_dns_client *c,
    const uint8_t *p, size_t n)
{
	ns_dns_upstreams ups;
	tk_ipport up;
	size_t ol;
	int action;

	if (ns_dns_answer(s->table, p, n, c->transport, s->buf, sizeof(s->buf),
		&ol, &ups, &action, &s->st) != 0)
		return;
	switch (action) {
	case NS_DNS_REPLY:
		s->ops.send_client(s->ops.arg, c, s->buf, ol);
		break;
	case NS_DNS_FORWARD:
		if (ns_dns_fwd_query(s->fwd, p, n, c, &ups, s->buf,
			sizeof(s->buf), &ol, &up, &s->st) == 0)
			s->ops.send_upstream(s->ops.arg, &up, s->buf, ol);
		else
			servfail(s, c, p, n);
		break;
	default:
		break;
	}
}

void
ns_dns_server_upstream(ns_dns_server *s, const tk_ipport *from,
    const uint8_t *p, size_t n)
{
	ns_dns_client c;
	size_t ol;

	if (ns_dns_fwd_reply(s->fwd, p, n, from, s->buf, sizeof(s->buf), &ol,
		&c, &s->st) == 0)
		s->ops.send_client(s->ops.arg, &c, s->buf, ol);
}

void
ns_dns_server_tick(ns_dns_server *s)
{
	ns_dns_client c;
	tk_ipport up;
	size_t ol;
	int send;

	/* bounded: each call retires or advances one pending query */
	for (int i = 0; i < 4096; i++) {
		if (ns_dns_fwd_poll(s->fwd, s->buf, sizeof(s->buf), &ol, &send,
			&c, &up, &s->st) != 0)
			return;
		if (send == NS_DNS_FWD_TO_UPSTREAM)
			s->ops.send_upstream(s->ops.arg, &up, s->buf, ol);
		else
			s->ops.send_client(s->ops.arg, &c, s->buf, ol);
	}
}

uint64_t
ns_dns_server_next_deadline(const ns_dns_server *s)
{
	return ns_dns_fwd_next_deadline(s->fwd);
}

void
ns_dns_server_stats(const ns_dns_server *s, ns_dns_stats *out)
{
	*out = s->st;
}
