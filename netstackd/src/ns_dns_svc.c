/*
 * MagicDNS inside netstackd: ns_dns_server (ns_dns.h) behind the core's
 * resolver hook at 100.100.100.100:53 and [fd7a:115c:a1e0::53]:53.
 *
 * - The table is rebuilt from the netmap the core follows (self's name and
 *   addresses, every peer's, the DNS config) on every snapshot and delta.
 * - UDP clients: every answer, local or forwarded, leaves through the
 *   MagicDNS pcbs as a datagram from 100.100.100.100:53 (or the v6
 *   address), so the synchronous hook returns nothing itself.
 * - TCP clients (RFC 7766): length-prefixed messages on the stream
 *   descriptor the core hands over; answers queue per connection, bounded
 *   (a client that stops reading stops being read, then is dropped).
 * - Upstreams: plain kernel UDP sockets of the host (one per family,
 *   non-blocking, on the loop); the forwarder's retries and timeouts run
 *   on one loop timer at ns_dns_server_next_deadline.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ns_svc.h"
#include "tk/sockaddr.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"

#define TCP_MAX_CONNS 256
#define TCP_OUT_SOFT (64 * 1024)  /* stop reading the client above this */
#define TCP_OUT_HARD (512 * 1024) /* drop a client that lets this pile up */
#define TCP_IDLE_NS (30 * TK_NSEC_PER_SEC)

typedef struct dns_tcp {
	nsi_dns_svc *svc;
	int fd;
	uint64_t id;
	unsigned interest;
	bool eof;
	unsigned pending; /* queries without an answer yet */
	uint8_t *in;	  /* 2 + NS_DNS_TCP_MAX */
	size_t have;
	uint8_t *out;
	size_t olen, ocap;
	tk_loop_timer *idle;
	struct dns_tcp *next, *prev;
} dns_tcp;

/* A name the proxies asked MagicDNS for (nsi_resolve_async). */
typedef struct dns_lookup {
	uint64_t id;
	nsi_resolve_fn cb;
	void *arg;
	struct dns_lookup *next;
} dns_lookup;

/* An API client's DIAL_TCP_NAME waiting for its name. */
typedef struct name_dial {
	netstackd *ns;
	nsi_client *c; /* NULL: the client left */
	uint32_t id;
	uint16_t port;
	struct name_dial *next;
} name_dial;

struct nsi_dns_svc {
	netstackd *ns;
	ns_dns_server *srv;
	const ns_dns_table *table; /* owned by srv */
	tk_loop_timer *timer;
	int up4, up6;
	char *self_name;
	Tk__Bus__V1__DNSConfig *dc; /* our own copy (packed/unpacked) */
	dns_tcp *tcp;
	unsigned ntcp;
	dns_lookup *lookups;
	name_dial *name_dials;
	uint64_t lookups_started, lookups_ok, lookups_failed;
	uint64_t next_id;
	/* counters of the service itself (the server counts the DNS side) */
	uint64_t tables, udp_out, udp_out_err, up_err, up_in, tcp_conns,
	    tcp_refused, tcp_dropped, tcp_lost;
	uint8_t buf[NS_DNS_TCP_MAX + 2];
};

/* ---- addresses ---- */

static void
ipport_from_api(tk_ipport *o, const ns_api_addr *a)
{
	memset(o, 0, sizeof(*o));
	o->ip.family = a->family == 4 ? TK_AF_INET : TK_AF_INET6;
	memcpy(o->ip.addr, a->addr, a->family == 4 ? 4 : 16);
	o->port = a->port;
}

/* ---- timer ---- */

static void
rearm(nsi_dns_svc *d)
{
	uint64_t dl = ns_dns_server_next_deadline(d->srv), now;

	if (dl == 0) {
		tk_loop_timer_cancel(d->timer);
		return;
	}
	now = tk_clock_mono_ns(NULL);
	tk_loop_timer_arm(d->timer, dl > now ? dl - now : 0, 0);
}

static void
on_timer(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	nsi_dns_svc *d = arg;

	(void)loop, (void)t;
	ns_dns_server_tick(d->srv);
	rearm(d);
}

/* ---- TCP clients ---- */

static void tcp_io(tk_loop *loop, int fd, unsigned ev, void *arg);

static void
tcp_free(dns_tcp *c)
{
	nsi_dns_svc *d = c->svc;

	tk_loop_fd_del(d->ns->loop, c->fd);
	close(c->fd);
	tk_loop_timer_free(c->idle);
	if (c->prev)
		c->prev->next = c->next;
	else
		d->tcp = c->next;
	if (c->next)
		c->next->prev = c->prev;
	d->ntcp--;
	tk_free(c->in);
	tk_free(c->out);
	tk_free(c);
}

static void
tcp_update(dns_tcp *c)
{
	unsigned want = 0;

	if (!c->eof && c->olen < TCP_OUT_SOFT)
		want |= TK_LOOP_READ;
	if (c->olen > 0)
		want |= TK_LOOP_WRITE;
	if (want != c->interest) {
		tk_loop_fd_mod(c->svc->ns->loop, c->fd, want);
		c->interest = want;
	}
}

/* Writes what the socket takes.  False when c was freed. */
static bool
tcp_flush(dns_tcp *c)
{
	while (c->olen > 0) {
		ssize_t w = send(c->fd, c->out, c->olen, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			tcp_free(c);
			return false;
		}
		memmove(c->out, c->out + w, c->olen - (size_t)w);
		c->olen -= (size_t)w;
	}
	if (c->eof && c->olen == 0 && c->pending == 0) {
		tcp_free(c);
		return false;
	}
	return true;
}

/* Queues one answer (length prefix added).  False when c was dropped. */
static bool
tcp_queue(dns_tcp *c, const uint8_t *p, size_t n)
{
	if (c->olen + 2 + n > TCP_OUT_HARD) {
		c->svc->tcp_dropped++;
		tcp_free(c);
		return false;
	}
	if (c->olen + 2 + n > c->ocap) {
		size_t cap = c->ocap ? c->ocap : 4096;
		while (cap < c->olen + 2 + n)
			cap *= 2;
		uint8_t *o = tk_realloc(c->out, cap);
		if (o == NULL) {
			tcp_free(c);
			return false;
		}
		c->out = o;
		c->ocap = cap;
	}
	tk_be16_store(c->out + c->olen, (uint16_t)n);
	memcpy(c->out + c->olen + 2, p, n);
	c->olen += 2 + n;
	if (c->pending > 0)
		c->pending--;
	return true;
}

static dns_tcp *
tcp_find(nsi_dns_svc *d, uint64_t id)
{
	for (dns_tcp *c = d->tcp; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

static void
tcp_idle(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	(void)loop, (void)t;
	tcp_free(arg);
}

static void
tcp_io(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	dns_tcp *c = arg;
	nsi_dns_svc *d = c->svc;
	uint64_t id = c->id;

	(void)loop;
	if ((ev & TK_LOOP_WRITE) && !tcp_flush(c))
		return;
	if ((ev & (TK_LOOP_READ | TK_LOOP_ERROR)) && !c->eof &&
	    c->olen < TCP_OUT_SOFT) {
		ssize_t r = read(fd, c->in + c->have, 2 + NS_DNS_TCP_MAX - c->have);
		if (r == 0)
			c->eof = true;
		else if (r < 0 && errno != EAGAIN && errno != EINTR) {
			tcp_free(c);
			return;
		} else if (r > 0) {
			c->have += (size_t)r;
			tk_loop_timer_arm(c->idle, TCP_IDLE_NS, 0);
		}
		/* every whole message; answers may free c (dropped client) */
		for (;;) {
			const uint8_t *m;
			size_t n, used;
			int rv = ns_dns_tcp_next(c->in, c->have, &m, &n, &used);
			if (rv == TK_EPROTO) {
				tcp_free(c);
				return;
			}
			if (rv != 0)
				break;
			ns_dns_client cl = { .transport = NS_DNS_TCP, .tag = id };
			c->pending++;
			ns_dns_server_query(d->srv, &cl, m, n);
			if ((c = tcp_find(d, id)) == NULL) {
				rearm(d);
				return;
			}
			memmove(c->in, c->in + used, c->have - used);
			c->have -= used;
		}
		rearm(d);
	}
	if ((ev & TK_LOOP_ERROR) && c->eof) {
		/* hung up: nothing more can be written either */
		tcp_free(c);
		return;
	}
	if (!tcp_flush(c))
		return;
	tcp_update(c);
}

static void
dns_tcp_conn(void *arg, int fd, const ns_api_peer *peer)
{
	nsi_dns_svc *d = arg;
	dns_tcp *c;

	(void)peer;
	if (d->ntcp >= TCP_MAX_CONNS || (c = tk_calloc(1, sizeof(*c))) == NULL) {
		d->tcp_refused++;
		close(fd);
		return;
	}
	c->svc = d;
	c->fd = fd;
	c->id = ++d->next_id;
	c->interest = TK_LOOP_READ;
	if ((c->in = tk_malloc(2 + NS_DNS_TCP_MAX)) == NULL ||
	    tk_loop_timer_new(d->ns->loop, &c->idle, tcp_idle, c) != 0 ||
	    tk_loop_fd_add(d->ns->loop, fd, TK_LOOP_READ, tcp_io, c) != 0) {
		d->tcp_refused++;
		tk_loop_timer_free(c->idle);
		tk_free(c->in);
		tk_free(c);
		close(fd);
		return;
	}
	tk_loop_timer_arm(c->idle, TCP_IDLE_NS, 0);
	c->next = d->tcp;
	if (d->tcp)
		d->tcp->prev = c;
	d->tcp = c;
	d->ntcp++;
	d->tcp_conns++;
}

/* ---- ns_dns_server's callbacks ---- */

/* A datagram from 100.100.100.100:53 (or [fd7a:115c:a1e0::53]:53) to a
 * tailnet client, whenever the answer is ready. */
static void
udp_reply(nsi_dns_svc *d, const tk_ipport *to, const uint8_t *p, size_t n)
{
	netstackd *ns = d->ns;
	int i = to->ip.family == TK_AF_INET ? 0 : 1;
	ns_api_addr a = { .family = to->ip.family == TK_AF_INET ? 4 : 6,
		.port = to->port };
	ip_addr_t ip;
	struct pbuf *r;

	memcpy(a.addr, to->ip.addr, sizeof(a.addr));
	if (ns->dns_udp[i] == NULL || n > 0xffff ||
	    (r = pbuf_alloc(PBUF_TRANSPORT, (u16_t)n, PBUF_RAM)) == NULL) {
		d->udp_out_err++;
		return;
	}
	memcpy(r->payload, p, n);
	nsi_ip_from_addr(&ip, &a);
	/* from the MagicDNS netif: lwIP refuses a source address the routed
	 * netif does not hold */
	if (udp_sendto_if(ns->dns_udp[i], r, &ip, to->port, &ns->nif100) == ERR_OK)
		d->udp_out++;
	else
		d->udp_out_err++;
	pbuf_free(r);
}

static void
lookup_done(nsi_dns_svc *d, uint64_t id, const uint8_t *p, size_t n)
{
	ns_api_addr a = { 0 };
	tk_ipaddr ip;

	for (dns_lookup **pp = &d->lookups; *pp; pp = &(*pp)->next) {
		dns_lookup *l = *pp;
		if (l->id != id)
			continue;
		*pp = l->next;
		if (ns_dns_response_addr(p, n, &ip) == 0) {
			a.family = ip.family == TK_AF_INET ? 4 : 6;
			memcpy(a.addr, ip.addr, sizeof(a.addr));
			d->lookups_ok++;
			l->cb(l->arg, NS_ST_OK, &a);
		} else {
			d->lookups_failed++;
			l->cb(l->arg, NS_ST_ENOTFOUND, NULL);
		}
		tk_free(l);
		return;
	}
}

static void
send_client(void *arg, const ns_dns_client *c, const uint8_t *p, size_t n)
{
	nsi_dns_svc *d = arg;
	dns_tcp *t;

	/* one of our own lookups: UDP from no address (TCP clients are
	 * known by their tag alone) */
	if (c->transport == NS_DNS_UDP && c->addr.ip.family == 0) {
		lookup_done(d, c->tag, p, n);
		return;
	}
	if (c->transport == NS_DNS_UDP) {
		udp_reply(d, &c->addr, p, n);
		return;
	}
	if ((t = tcp_find(d, c->tag)) == NULL) {
		d->tcp_lost++; /* the client left before its answer came */
		return;
	}
	if (tcp_queue(t, p, n) && tcp_flush(t))
		tcp_update(t);
}

static void
send_upstream(void *arg, const tk_ipport *up, const uint8_t *p, size_t n)
{
	nsi_dns_svc *d = arg;
	struct sockaddr_storage ss;
	socklen_t sl = tk_ipport_to_sockaddr(up, &ss);
	int fd = up->ip.family == TK_AF_INET ? d->up4 : d->up6;

	if (fd < 0 || sendto(fd, p, n, MSG_DONTWAIT, (struct sockaddr *)&ss,
	    sl) < 0)
		d->up_err++; /* the forwarder retries, then SERVFAIL */
}

static void
upstream_in(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	nsi_dns_svc *d = arg;

	(void)loop, (void)ev;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		tk_ipport from;
		ssize_t r = recvfrom(fd, d->buf, sizeof(d->buf), MSG_DONTWAIT,
		    (struct sockaddr *)&ss, &sl);
		if (r < 0)
			break; /* EAGAIN, or an ICMP error queued: next time */
		d->up_in++;
		tk_ipport_from_sockaddr(&from, &ss);
		tk_ipaddr_unmap(&from.ip);
		ns_dns_server_upstream(d->srv, &from, d->buf, (size_t)r);
	}
	rearm(d);
}

static int
udp_query(void *arg, const ns_api_addr *from, const uint8_t *q, size_t n,
    uint8_t *resp, size_t cap, size_t *resp_len)
{
	nsi_dns_svc *d = arg;
	ns_dns_client c = { .transport = NS_DNS_UDP };

	(void)resp, (void)cap, (void)resp_len;
	ipport_from_api(&c.addr, from);
	ns_dns_server_query(d->srv, &c, q, n);
	rearm(d);
	return -1; /* answered (or not) through udp_reply */
}

/* ---- the table ---- */

/* 100.100.100.100 or fd7a:115c:a1e0::53: the service's own addresses,
 * never a node's (a netmap may list them among self's addresses so that
 * wgd lets peers reach them: its filter passes only self's addresses). */
static bool
is_quad100(const tk_ipaddr *a)
{
	static const uint8_t v6[16] = { 0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0,
		[15] = 0x53 };
	static const uint8_t v4[4] = { 100, 100, 100, 100 };
	return a->family == TK_AF_INET ? memcmp(a->addr, v4, 4) == 0 :
	    memcmp(a->addr, v6, 16) == 0;
}

static void
rebuild(nsi_dns_svc *d)
{
	netstackd *ns = d->ns;
	ns_dns_table *t;
	tk_ipaddr self[4];
	size_t nself = 0;

	if (ns_dns_table_new(&t) != 0) {
		TK_WARN(NS_SUBSYS, "MagicDNS: no memory for the table; keeping the old one");
		return;
	}
	for (unsigned i = 0; i < ns->nm.nself && i < 4; i++)
		if (!is_quad100(&ns->nm.self[i]))
			self[nself++] = ns->nm.self[i];
	if (d->self_name != NULL && d->self_name[0] != '\0')
		ns_dns_table_add_node(t, d->self_name, self, nself, true);
	for (size_t i = 0; i < ns->nm.npeers; i++) {
		nsi_peer *p = &ns->nm.peers[i];
		if (p->name != NULL && p->name[0] != '\0')
			ns_dns_table_add_node(t, p->name, p->addrs, p->naddrs, false);
	}
	if (ns_dns_table_set_config(t, d->dc) != 0) {
		ns_dns_table_free(t);
		TK_WARN(NS_SUBSYS, "MagicDNS: DNS config not applied; keeping the old table");
		return;
	}
	ns_dns_server_set_table(d->srv, t);
	d->table = t;
	d->tables++;
}

void
nsi_dns_svc_netmap(netstackd *ns, const Tk__Bus__V1__Node *self,
    const Tk__Bus__V1__DNSConfig *dc, bool snapshot)
{
	nsi_dns_svc *d = ns->dns_svc;

	if (d == NULL)
		return;
	if (self != NULL) {
		char *nm = tk_strdup(self->name ? self->name : "");
		if (nm != NULL) {
			tk_free(d->self_name);
			d->self_name = nm;
		}
	}
	if (dc != NULL || snapshot) {
		Tk__Bus__V1__DNSConfig *copy = NULL;
		if (dc != NULL) {
			/* a copy of our own: the caller frees its message */
			size_t n = protobuf_c_message_get_packed_size(
			    (const ProtobufCMessage *)dc);
			uint8_t *b = tk_malloc(n ? n : 1);
			if (b == NULL)
				return;
			protobuf_c_message_pack((const ProtobufCMessage *)dc, b);
			copy = tk__bus__v1__dnsconfig__unpack(NULL, n, b);
			tk_free(b);
			if (copy == NULL)
				return;
		}
		if (d->dc != NULL)
			tk__bus__v1__dnsconfig__free_unpacked(d->dc, NULL);
		d->dc = copy;
	}
	rebuild(d);
}

const ns_dns_table *
nsi_dns_svc_table(netstackd *ns)
{
	return ns->dns_svc != NULL ? ns->dns_svc->table : NULL;
}

int
nsi_resolve(netstackd *ns, const char *name, ns_api_addr *out)
{
	const ns_dns_table *t = nsi_dns_svc_table(ns);
	tk_ipaddr ip;
	ip_addr_t own;
	size_t n = strlen(name);

	memset(out, 0, sizeof(*out));
	/* an IP literal, also as "[v6]" */
	if (n > 2 && name[0] == '[' && name[n - 1] == ']' &&
	    tk_ipaddr_parse(&ip, name + 1, n - 2) == 0)
		;
	else if (tk_ipaddr_parse(&ip, name, n) != 0) {
		int fam = nsi_own_addr(ns, 4, &own) ? TK_AF_INET : TK_AF_INET6;
		if (t == NULL || (ns_dns_table_lookup(t, name, fam, &ip) != 0 &&
		    ns_dns_table_lookup(t, name, 0, &ip) != 0))
			return NS_ST_ENOTFOUND;
	}
	out->family = ip.family == TK_AF_INET ? 4 : 6;
	memcpy(out->addr, ip.addr, ip.family == TK_AF_INET ? 4 : 16);
	return NS_ST_OK;
}

int
nsi_resolve_async(netstackd *ns, const char *name, nsi_resolve_fn cb,
    void *arg)
{
	nsi_dns_svc *d = ns->dns_svc;
	ns_api_addr a;
	ip_addr_t own;
	uint8_t q[NS_DNS_HDR_LEN + NS_DNS_NAME_MAX + 4];
	size_t wl;
	dns_lookup *l;

	if (nsi_resolve(ns, name, &a) == NS_ST_OK) {
		cb(arg, NS_ST_OK, &a);
		return NS_ST_OK;
	}
	if (d == NULL ||
	    ns_dns_name_from_text(name, q + NS_DNS_HDR_LEN, &wl) != 0 ||
	    (l = tk_calloc(1, sizeof(*l))) == NULL)
		return NS_ST_ENOTFOUND;
	l->id = ++d->next_id;
	l->cb = cb;
	l->arg = arg;
	l->next = d->lookups;
	d->lookups = l;
	d->lookups_started++;
	/* a standard query, RD, for the family the node can dial */
	memset(q, 0, NS_DNS_HDR_LEN);
	tk_be16_store(q, (uint16_t)l->id);
	tk_be16_store(q + 2, NS_DNS_F_RD);
	tk_be16_store(q + 4, 1);
	tk_be16_store(q + NS_DNS_HDR_LEN + wl, nsi_own_addr(ns, 4, &own) ?
	    NS_DNS_TYPE_A : NS_DNS_TYPE_AAAA);
	tk_be16_store(q + NS_DNS_HDR_LEN + wl + 2, NS_DNS_CLASS_IN);
	ns_dns_client cl = { .transport = NS_DNS_UDP, .tag = l->id };
	ns_dns_server_query(d->srv, &cl, q, NS_DNS_HDR_LEN + wl + 4);
	rearm(d);
	return NS_ST_OK;
}

static void
name_dial_unlink(nsi_dns_svc *d, name_dial *nd)
{
	for (name_dial **pp = &d->name_dials; *pp; pp = &(*pp)->next)
		if (*pp == nd) {
			*pp = nd->next;
			return;
		}
}

static void
name_resolved(void *arg, int st, const ns_api_addr *a)
{
	name_dial *nd = arg;
	netstackd *ns = nd->ns;
	ns_api_addr dst;

	name_dial_unlink(ns->dns_svc, nd);
	if (nd->c != NULL) {
		if (st == NS_ST_OK) {
			dst = *a;
			dst.port = nd->port;
			st = nsi_dial_start(ns, nd->c, nd->id, &dst, NULL, NULL);
		}
		if (st != NS_ST_OK)
			nsi_client_reply_err(nd->c, nd->id, st, NULL);
	}
	tk_free(nd);
}

int
nsi_dial_name(netstackd *ns, nsi_client *c, uint32_t id, const char *name,
    uint16_t port)
{
	nsi_dns_svc *d = ns->dns_svc;
	name_dial *nd;

	if (d == NULL || (nd = tk_calloc(1, sizeof(*nd))) == NULL)
		return NS_ST_ENOMEM;
	nd->ns = ns;
	nd->c = c;
	nd->id = id;
	nd->port = port;
	nd->next = d->name_dials;
	d->name_dials = nd;
	/* may answer before returning: nd is linked first, and freed there */
	if (nsi_resolve_async(ns, name, name_resolved, nd) != NS_ST_OK) {
		name_dial_unlink(d, nd);
		tk_free(nd);
		return NS_ST_ENOTFOUND;
	}
	return NS_ST_OK;
}

void
nsi_dial_name_drop_client(netstackd *ns, nsi_client *c)
{
	if (ns->dns_svc == NULL)
		return;
	for (name_dial *nd = ns->dns_svc->name_dials; nd; nd = nd->next)
		if (nd->c == c)
			nd->c = NULL;
}

/* ---- lifecycle ---- */

static int
upstream_socket(netstackd *ns, nsi_dns_svc *d, int af)
{
	int fd = socket(af, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1; /* no such family on this host: those upstreams fail */
	if (tk_loop_fd_add(ns->loop, fd, TK_LOOP_READ, upstream_in, d) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

int
nsi_dns_svc_new(netstackd *ns, nsi_dns_svc **out)
{
	ns_dns_fwd_cfg fcfg = { .timeout_ms = 5000, .retry_ms = 1000,
		.max_outstanding = 256 };
	ns_dns_server_ops ops = { send_client, send_upstream, NULL };
	ns_resolver_ops ro = { udp_query, dns_tcp_conn, NULL };
	nsi_dns_svc *d;
	int rv;

	if ((d = tk_calloc(1, sizeof(*d))) == NULL)
		return TK_ENOMEM;
	d->ns = ns;
	d->up4 = d->up6 = -1;
	ops.arg = d;
	if ((rv = ns_dns_server_new(&fcfg, &ops, &d->srv)) != 0 ||
	    (rv = tk_loop_timer_new(ns->loop, &d->timer, on_timer, d)) != 0) {
		nsi_dns_svc_free(d);
		return rv;
	}
	d->up4 = upstream_socket(ns, d, AF_INET);
	d->up6 = upstream_socket(ns, d, AF_INET6);
	ro.arg = d;
	/* an application's own resolver (ns_set_resolver) replaces this one */
	if (!ns->have_resolver)
		ns_set_resolver(ns, &ro);
	*out = d;
	return 0;
}

void
nsi_dns_svc_free(nsi_dns_svc *d)
{
	if (d == NULL)
		return;
	while (d->tcp != NULL)
		tcp_free(d->tcp);
	while (d->lookups != NULL) { /* their callers are gone too */
		dns_lookup *l = d->lookups;
		d->lookups = l->next;
		tk_free(l);
	}
	while (d->name_dials != NULL) {
		name_dial *nd = d->name_dials;
		d->name_dials = nd->next;
		tk_free(nd);
	}
	for (int i = 0; i < 2; i++) {
		int fd = i ? d->up6 : d->up4;
		if (fd >= 0) {
			tk_loop_fd_del(d->ns->loop, fd);
			close(fd);
		}
	}
	tk_loop_timer_free(d->timer);
	ns_dns_server_free(d->srv);
	if (d->dc != NULL)
		tk__bus__v1__dnsconfig__free_unpacked(d->dc, NULL);
	tk_free(d->self_name);
	tk_free(d);
}

void
nsi_dns_svc_counters(nsi_dns_svc *d, tk_status_counters *cs)
{
	ns_dns_stats s;

	if (d == NULL)
		return;
	ns_dns_server_stats(d->srv, &s);
#define C(f) tk_status_counter(cs, "dns_" #f, s.f)
	C(queries); C(drop_short); C(drop_response); C(formerr); C(notimp);
	C(refused); C(badvers); C(answered); C(nodata); C(nxdomain);
	C(forwarded); C(servfail_no_upstream); C(servfail_unforwardable);
	C(truncated); C(fwd_sent); C(fwd_full); C(fwd_replied);
	C(fwd_drop_unmatched); C(fwd_drop_garbage); C(fwd_timeout);
	C(fwd_retried);
#undef C
#define C(f) tk_status_counter(cs, "dns_" #f, d->f)
	C(tables); C(udp_out); C(udp_out_err); C(up_err); C(up_in);
	C(tcp_conns); C(tcp_refused); C(tcp_dropped); C(tcp_lost);
	C(lookups_started); C(lookups_ok); C(lookups_failed);
#undef C
	tk_status_counter(cs, "dns_tcp_open", d->ntcp);
}
