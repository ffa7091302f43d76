/*
 * The loopback proxies: SOCKS5 (CONNECT, UDP ASSOCIATE; RFC 1928, 1929)
 * and HTTP CONNECT (RFC 9110 §9.3.6), on kernel TCP sockets bound to a
 * loopback address, for programs that know nothing of netstackd.  The
 * parsers are the sans-I/O ones of ns_proxy.h; names resolve through the
 * MagicDNS table (tailnet names, short or FQDN) or are IP literals; the
 * tailnet side is an ns_dial descriptor (or, for UDP, a netstackd UDP
 * binding).
 *
 * Relay: one 64 KiB buffer per direction; a side is read only when its
 * buffer is empty, so a slow reader on one end stops reading on the other
 * (and, through the core, closes the TCP window): nothing is buffered
 * without bound.  EOF on one side becomes shutdown(SHUT_WR) on the other
 * once its buffer drained (half-close); both directions finished closes
 * both; an error on either side (reset, broken pipe) closes both, the
 * client's with RST.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ns_svc.h"
#include "tk/sockaddr.h"
#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"

#define PX_MAX_CONNS 1024
#define PX_BUF (64 * 1024)
#define PX_HS_CAP (NS_HCONN_HEAD_MAX + 1024)
#define PX_UDP_HR 320 /* headroom for the headers of a relayed datagram */
#define PX_HS_NS (30 * TK_NSEC_PER_SEC) /* a request must arrive by then */

enum { PX_SOCKS = 0, PX_HTTP = 1 };
enum { ST_HS, ST_RESOLVE, ST_DIAL, ST_RELAY, ST_UDP };

typedef struct px_dir {
	uint8_t *buf;
	size_t off, len;
	bool eof;  /* read 0 from the source */
	bool shut; /* shutdown(SHUT_WR) done on the sink */
} px_dir;

typedef struct px_fd {
	int fd;
	bool reg, hup;
	unsigned interest;
} px_fd;

typedef struct px_conn {
	nsi_proxy_svc *svc;
	int kind, state;
	bool dead; /* the client left while its dial was under way */
	px_fd c, t; /* client (kernel TCP), tailnet (ns_dial descriptor) */
	tk_loop_timer *hs_timer; /* the handshake's deadline */
	tk_ipport peer; /* the client's address */
	ns_socks socks;
	uint8_t *hs;
	size_t hlen;
	uint16_t dport; /* where to dial, once the name resolved */
	px_dir up, down; /* client -> tailnet, tailnet -> client */
	/* UDP ASSOCIATE */
	px_fd uk, ut; /* kernel relay socket, netstackd UDP binding */
	tk_ipport uclient;
	bool have_uport;
	struct px_conn *next, *prev;
} px_conn;

typedef struct px_listener {
	nsi_proxy_svc *svc;
	int fd, kind;
	tk_ipport addr;
} px_listener;

typedef struct px_adopt {
	tk_loop_item it;
	struct nsi_proxy_svc *svc;
	int fd;
	struct px_adopt *next;
} px_adopt;

struct nsi_proxy_svc {
	netstackd *ns;
	/* handed over by ns_proxy_adopt_socks5, not yet taken by the loop
	 * (closed by nsi_proxy_svc_free if the loop stopped first) */
	pthread_mutex_t adopt_mu;
	px_adopt *adopts;
	px_listener l[2];
	char *user, *pass;
	ns_proxy_stats st;
	px_conn *conns;
	unsigned nconns;
	uint64_t socks_conns, http_conns, refused, hs_timeout, dial_ok, dial_failed,
	    name_unknown, bytes_up, bytes_down, udp_assoc, udp_to_tailnet,
	    udp_to_client, udp_dropped;
	uint8_t ubuf[PX_UDP_HR + NS_UDP_HDR_LEN + NS_UDP_PAYLOAD_MAX + 512];
};

static void px_io(tk_loop *loop, int fd, unsigned ev, void *arg);
static void px_udp_io(tk_loop *loop, int fd, unsigned ev, void *arg);

/* ---- addresses ---- */

static bool
ip_eq(const tk_ipaddr *a, const tk_ipaddr *b)
{
	return a->family == b->family &&
	    memcmp(a->addr, b->addr, a->family == TK_AF_INET ? 4 : 16) == 0;
}

static bool
is_loopback(const tk_ipaddr *a)
{
	static const uint8_t v6lo[16] = { [15] = 1 };
	return (a->family == TK_AF_INET && a->addr[0] == 127) ||
	    (a->family == TK_AF_INET6 && memcmp(a->addr, v6lo, 16) == 0);
}

/* ---- fds ---- */

/* Registers f for want; a hung-up fd with nothing to do is taken off the
 * loop (epoll would report the hang-up forever). */
static void
fd_want(px_conn *c, px_fd *f, unsigned want, tk_loop_fd_fn fn)
{
	tk_loop *loop = c->svc->ns->loop;

	if (f->fd < 0)
		return;
	if (f->hup && want == 0) {
		if (f->reg)
			tk_loop_fd_del(loop, f->fd);
		f->reg = false;
		return;
	}
	if (!f->reg) {
		if (tk_loop_fd_add(loop, f->fd, want, fn, c) == 0) {
			f->reg = true;
			f->interest = want;
		}
		return;
	}
	if (want != f->interest) {
		tk_loop_fd_mod(loop, f->fd, want);
		f->interest = want;
	}
}

static void
fd_close(px_conn *c, px_fd *f, bool rst)
{
	if (f->fd < 0)
		return;
	if (f->reg)
		tk_loop_fd_del(c->svc->ns->loop, f->fd);
	if (rst) {
		struct linger lg = { 1, 0 };
		setsockopt(f->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	close(f->fd);
	f->fd = -1;
	f->reg = false;
}

static void
px_free(px_conn *c, bool rst)
{
	nsi_proxy_svc *s = c->svc;

	fd_close(c, &c->c, rst);
	fd_close(c, &c->t, false);
	fd_close(c, &c->uk, false);
	fd_close(c, &c->ut, false);
	tk_loop_timer_free(c->hs_timer);
	tk_free(c->hs);
	tk_free(c->up.buf); /* down.buf is the same allocation */
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	tk_free(c);
}

/* A short message to the client (replies, response heads): a new socket
 * takes it whole, or the client is not worth waiting for. */
static bool
send_small(px_conn *c, const void *p, size_t n)
{
	return send(c->c.fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)n;
}

/* ---- failures ---- */

static uint8_t
socks_rep(int st)
{
	switch (st) {
	case NS_ST_ECONNREFUSED: return NS_SOCKS_REP_REFUSED;
	case NS_ST_ETIMEDOUT: return NS_SOCKS_REP_HOSTUNREACH;
	case NS_ST_ENOTFOUND: return NS_SOCKS_REP_HOSTUNREACH;
	case NS_ST_ENETUNREACH: return NS_SOCKS_REP_NETUNREACH;
	default: return NS_SOCKS_REP_FAIL;
	}
}

/* Tells the client why (SOCKS REP or HTTP 502/504) and closes. */
static void
px_fail(px_conn *c, int st)
{
	if (c->kind == PX_SOCKS) {
		uint8_t out[NS_SOCKS_REPLY_MAX];
		size_t ol;
		if (ns_socks_reply(&c->socks, socks_rep(st), NULL, out, &ol) == 0)
			send_small(c, out, ol);
	} else {
		size_t len;
		const char *r = ns_hconn_response(st == NS_ST_ETIMEDOUT ? 504 : 502,
		    &len);
		send_small(c, r, len);
	}
	px_free(c, false);
}

/* ---- relay ---- */

static bool
dir_read(int fd, px_dir *d, uint64_t *count)
{
	ssize_t r;

	if (d->eof || d->len > 0)
		return true;
	r = recv(fd, d->buf, PX_BUF, MSG_DONTWAIT);
	if (r > 0) {
		d->off = 0;
		d->len = (size_t)r;
		*count += (uint64_t)r;
		return true;
	}
	if (r == 0) {
		d->eof = true;
		return true;
	}
	return errno == EAGAIN || errno == EINTR;
}

static bool
dir_write(int fd, px_dir *d)
{
	while (d->len > 0) {
		ssize_t w = send(fd, d->buf + d->off, d->len,
		    MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			return false;
		}
		d->off += (size_t)w;
		d->len -= (size_t)w;
	}
	if (d->len == 0 && d->eof && !d->shut) {
		shutdown(fd, SHUT_WR);
		d->shut = true;
	}
	return true;
}

static void
relay_update(px_conn *c)
{
	unsigned cw = 0, tw = 0;

	if (!c->up.eof && c->up.len == 0)
		cw |= TK_LOOP_READ;
	if (c->down.len > 0)
		cw |= TK_LOOP_WRITE;
	if (!c->down.eof && c->down.len == 0)
		tw |= TK_LOOP_READ;
	if (c->up.len > 0)
		tw |= TK_LOOP_WRITE;
	fd_want(c, &c->c, cw, px_io);
	fd_want(c, &c->t, tw, px_io);
}

/* One step of the relay for events ev on fd (-1: none, just pump). */
static void
relay_step(px_conn *c, int fd, unsigned ev)
{
	nsi_proxy_svc *s = c->svc;
	bool isc = fd == c->c.fd, ok = true;

	if (fd >= 0 && (ev & TK_LOOP_ERROR))
		(isc ? &c->c : &c->t)->hup = true;
	if (fd >= 0 && (ev & (TK_LOOP_READ | TK_LOOP_ERROR)))
		ok = isc ? dir_read(fd, &c->up, &s->bytes_up) :
		    dir_read(fd, &c->down, &s->bytes_down);
	/* write what is there, to both sides (also right after a read) */
	ok = ok && dir_write(c->t.fd, &c->up) && dir_write(c->c.fd, &c->down);
	if (!ok) {
		px_free(c, true);
		return;
	}
	if (c->up.shut && c->down.shut) {
		px_free(c, false);
		return;
	}
	relay_update(c);
}

/* ---- dialling ---- */

static void
dial_done(void *arg, int status, int fd, const ns_api_peer *peer)
{
	px_conn *c = arg;
	nsi_proxy_svc *s = c->svc;

	if (c->dead) {
		if (fd >= 0)
			close(fd);
		px_free(c, false);
		return;
	}
	if (status != NS_ST_OK) {
		s->dial_failed++;
		px_fail(c, status);
		return;
	}
	s->dial_ok++;
	c->t.fd = fd;
	if ((c->up.buf = tk_malloc(2 * PX_BUF)) == NULL) {
		px_free(c, true);
		return;
	}
	c->down.buf = c->up.buf + PX_BUF;
	if (c->kind == PX_SOCKS) {
		uint8_t out[NS_SOCKS_REPLY_MAX];
		size_t ol;
		tk_ipport bnd = { .port = peer->local.port };
		bnd.ip.family = peer->local.family == 4 ? TK_AF_INET : TK_AF_INET6;
		memcpy(bnd.ip.addr, peer->local.addr, sizeof(bnd.ip.addr));
		if (ns_socks_reply(&c->socks, NS_SOCKS_REP_OK, &bnd, out, &ol) != 0 ||
		    !send_small(c, out, ol)) {
			px_free(c, true);
			return;
		}
	} else {
		size_t len;
		const char *r = ns_hconn_response(200, &len);
		if (!send_small(c, r, len)) {
			px_free(c, true);
			return;
		}
	}
	/* bytes the client sent after its request: the tunnel's first */
	memcpy(c->up.buf, c->hs, c->hlen);
	c->up.len = c->hlen;
	tk_free(c->hs);
	c->hs = NULL;
	c->hlen = 0;
	c->state = ST_RELAY;
	relay_step(c, -1, 0);
}

static void
dial_addr(px_conn *c, const ns_api_addr *a)
{
	nsi_proxy_svc *s = c->svc;
	ns_api_addr dst = *a;
	int st;

	dst.port = c->dport;
	if ((st = ns_dial(s->ns, &dst, dial_done, c)) != 0) {
		s->dial_failed++;
		px_fail(c, st);
		return;
	}
	c->state = ST_DIAL;
	fd_want(c, &c->c, 0, px_io);
}

static void
resolved(void *arg, int st, const ns_api_addr *a)
{
	px_conn *c = arg;

	if (c->dead) {
		px_free(c, false);
		return;
	}
	if (st != NS_ST_OK) {
		c->svc->name_unknown++;
		px_fail(c, NS_ST_ENOTFOUND);
		return;
	}
	dial_addr(c, a);
}

/* Dials ip, or name once MagicDNS resolved it (tailnet names at once,
 * others through split DNS / the resolvers).  c may be freed on return. */
static void
px_dial(px_conn *c, const char *name, const tk_ipaddr *ip, uint16_t port)
{
	ns_api_addr dst = { 0 };

	c->dport = port;
	/* the dial (15 s) and the forwarder (5 s) have their own deadlines */
	tk_loop_timer_cancel(c->hs_timer);
	if (ip != NULL) {
		dst.family = ip->family == TK_AF_INET ? 4 : 6;
		memcpy(dst.addr, ip->addr, sizeof(dst.addr));
		dial_addr(c, &dst);
		return;
	}
	c->state = ST_RESOLVE;
	fd_want(c, &c->c, 0, px_io);
	if (nsi_resolve_async(c->svc->ns, name, resolved, c) != NS_ST_OK) {
		c->svc->name_unknown++;
		px_fail(c, NS_ST_ENOTFOUND);
	}
}

/* ---- UDP ASSOCIATE ---- */

/* client -> tailnet */
static void
udp_from_client(px_conn *c)
{
	nsi_proxy_svc *s = c->svc;
	uint8_t *b = s->ubuf + PX_UDP_HR;

	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		tk_ipport from;
		ns_socks_addr dst;
		ns_api_addr to = { 0 };
		size_t hl;
		ssize_t n = recvfrom(c->uk.fd, b, NS_UDP_PAYLOAD_MAX + 512,
		    MSG_DONTWAIT, (struct sockaddr *)&ss, &sl);

		if (n < 0)
			return;
		tk_ipport_from_sockaddr(&from, &ss);
		/* only the client of the control connection (RFC 1928 §7) */
		if (!ip_eq(&from.ip, &c->uclient.ip) ||
		    (c->have_uport && from.port != c->uclient.port)) {
			s->udp_dropped++;
			continue;
		}
		if (!c->have_uport) {
			c->uclient.port = from.port;
			c->have_uport = true;
		}
		if (ns_socks_udp_decode(b, (size_t)n, &dst, &hl, &s->st) != 0) {
			s->udp_dropped++;
			continue;
		}
		if (dst.atyp == NS_SOCKS_ATYP_DOMAIN) {
			if (nsi_resolve(s->ns, dst.name, &to) != NS_ST_OK) {
				s->name_unknown++;
				s->udp_dropped++;
				continue;
			}
		} else {
			to.family = dst.ip.family == TK_AF_INET ? 4 : 6;
			memcpy(to.addr, dst.ip.addr, sizeof(to.addr));
		}
		to.port = dst.port;
		if ((size_t)n - hl > NS_UDP_PAYLOAD_MAX) {
			s->udp_dropped++;
			continue;
		}
		uint8_t *h = b + hl - NS_UDP_HDR_LEN;
		ns_udp_hdr_encode(h, &to);
		if (send(c->ut.fd, h, NS_UDP_HDR_LEN + (size_t)n - hl,
		    MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			s->udp_dropped++;
		else
			s->udp_to_tailnet++;
	}
}

/* tailnet -> client */
static bool
udp_from_tailnet(px_conn *c)
{
	nsi_proxy_svc *s = c->svc;
	uint8_t *b = s->ubuf + PX_UDP_HR;

	for (int i = 0; i < 64; i++) {
		ns_api_addr from;
		ns_socks_addr src = { 0 };
		uint8_t hdr[NS_SOCKS_REPLY_MAX + 8];
		size_t hl;
		struct sockaddr_storage ss;
		ssize_t n = recv(c->ut.fd, b, NS_UDP_HDR_LEN + NS_UDP_PAYLOAD_MAX,
		    MSG_DONTWAIT);

		if (n == 0)
			return false;
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		if (ns_udp_hdr_decode(b, (size_t)n, &from) != 0 ||
		    !c->have_uport) {
			s->udp_dropped++; /* nobody to give it to yet */
			continue;
		}
		src.atyp = from.family == 4 ? NS_SOCKS_ATYP_IPV4 : NS_SOCKS_ATYP_IPV6;
		src.ip.family = from.family == 4 ? TK_AF_INET : TK_AF_INET6;
		memcpy(src.ip.addr, from.addr, sizeof(src.ip.addr));
		src.port = from.port;
		if (ns_socks_udp_encode(&src, hdr, sizeof(hdr), &hl) != 0 ||
		    hl > PX_UDP_HR + NS_UDP_HDR_LEN) {
			s->udp_dropped++;
			continue;
		}
		uint8_t *h = b + NS_UDP_HDR_LEN - hl;
		memcpy(h, hdr, hl);
		socklen_t sl = tk_ipport_to_sockaddr(&c->uclient, &ss);
		if (sendto(c->uk.fd, h, hl + (size_t)n - NS_UDP_HDR_LEN, MSG_DONTWAIT,
		    (struct sockaddr *)&ss, sl) < 0)
			s->udp_dropped++;
		else
			s->udp_to_client++;
	}
	return true;
}

static void
px_udp_io(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	px_conn *c = arg;

	(void)loop, (void)ev;
	if (fd == c->uk.fd)
		udp_from_client(c);
	else if (!udp_from_tailnet(c))
		px_free(c, false); /* netstackd's side went away */
}

static void
px_udp_start(px_conn *c, const ns_socks_addr *declared)
{
	nsi_proxy_svc *s = c->svc;
	tk_ipport bnd = { .ip = s->l[PX_SOCKS].addr.ip };
	struct sockaddr_storage ss;
	socklen_t sl = tk_ipport_to_sockaddr(&bnd, &ss);
	uint8_t out[NS_SOCKS_REPLY_MAX];
	size_t ol;
	uint16_t bound;
	int fd, st;

	fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl) != 0) {
		if (fd >= 0)
			close(fd);
		px_fail(c, NS_ST_ENOMEM);
		return;
	}
	c->uk.fd = fd;
	sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	tk_ipport_from_sockaddr(&bnd, &ss);
	if ((st = nsi_udp_bind(s->ns, 0, &c->ut.fd, &bound)) != NS_ST_OK) {
		c->ut.fd = -1;
		px_fail(c, st);
		return;
	}
	fcntl(c->ut.fd, F_SETFL, fcntl(c->ut.fd, F_GETFL) | O_NONBLOCK);
	/* datagrams come from the control connection's host; from the
	 * declared port when the client named one */
	c->uclient.ip = c->peer.ip;
	if (declared->atyp != NS_SOCKS_ATYP_DOMAIN && declared->port != 0) {
		c->uclient.port = declared->port;
		c->have_uport = true;
	}
	if (ns_socks_reply(&c->socks, NS_SOCKS_REP_OK, &bnd, out, &ol) != 0 ||
	    !send_small(c, out, ol)) {
		px_free(c, true);
		return;
	}
	s->udp_assoc++;
	c->state = ST_UDP;
	tk_loop_timer_cancel(c->hs_timer);
	fd_want(c, &c->uk, TK_LOOP_READ, px_udp_io);
	fd_want(c, &c->ut, TK_LOOP_READ, px_udp_io);
	fd_want(c, &c->c, TK_LOOP_READ, px_io);
}

/* ---- handshakes ---- */

static void
consume(px_conn *c, size_t n)
{
	memmove(c->hs, c->hs + n, c->hlen - n);
	c->hlen -= n;
}

static void
socks_step(px_conn *c)
{
	ns_socks_result r;

	for (int i = 0; i < 8; i++) {
		if (ns_socks_feed(&c->socks, c->hs, c->hlen, &r) != 0) {
			px_free(c, false);
			return;
		}
		switch (r.event) {
		case NS_SOCKS_NEED_MORE:
			if (c->hlen == PX_HS_CAP)
				px_free(c, false);
			return;
		case NS_SOCKS_REPLY:
			consume(c, r.consumed);
			if (!send_small(c, r.reply, r.reply_len)) {
				px_free(c, false);
				return;
			}
			continue;
		case NS_SOCKS_CONNECT:
			consume(c, r.consumed);
			px_dial(c, r.dst.name,
			    r.dst.atyp == NS_SOCKS_ATYP_DOMAIN ? NULL : &r.dst.ip,
			    r.dst.port);
			return;
		case NS_SOCKS_UDP_ASSOCIATE:
			consume(c, r.consumed);
			px_udp_start(c, &r.dst);
			return;
		default: /* NS_SOCKS_CLOSE */
			if (r.reply_len)
				send_small(c, r.reply, r.reply_len);
			px_free(c, false);
			return;
		}
	}
	px_free(c, false);
}

static void
http_step(px_conn *c)
{
	nsi_proxy_svc *s = c->svc;
	ns_hconn_cfg cfg = { .user = s->user, .pass = s->pass, .stats = &s->st };
	ns_hconn_req req;
	const char *resp;
	size_t len;

	ns_hconn_parse(&cfg, c->hs, c->hlen, &req);
	if (req.status == 0) {
		if (c->hlen == PX_HS_CAP)
			px_free(c, false);
		return;
	}
	if (req.status != 200) {
		resp = ns_hconn_response(req.status, &len);
		if (resp != NULL)
			send_small(c, resp, len);
		px_free(c, false);
		return;
	}
	consume(c, req.consumed);
	px_dial(c, req.host, req.is_ip ? &req.ip : NULL, req.port);
}

static void
px_io(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	px_conn *c = arg;

	(void)loop;
	switch (c->state) {
	case ST_RELAY:
		relay_step(c, fd, ev);
		return;
	case ST_RESOLVE:
	case ST_DIAL:
		/* the client left: the lookup's or dial's outcome frees c */
		if (ev & TK_LOOP_ERROR) {
			c->c.hup = true;
			fd_want(c, &c->c, 0, px_io);
			c->dead = true;
		}
		return;
	case ST_UDP: {
		/* the control connection: its end ends the association */
		uint8_t junk[256];
		ssize_t r = recv(fd, junk, sizeof(junk), MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			px_free(c, false);
		return;
	}
	default:
		break;
	}
	ssize_t r = recv(fd, c->hs + c->hlen, PX_HS_CAP - c->hlen, MSG_DONTWAIT);
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
		px_free(c, false);
		return;
	}
	if (r < 0)
		return;
	c->hlen += (size_t)r;
	if (c->kind == PX_SOCKS)
		socks_step(c);
	else
		http_step(c);
}

/* ---- listeners ---- */

static void
hs_expired(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	px_conn *c = arg;

	(void)loop, (void)t;
	c->svc->hs_timeout++;
	px_free(c, false);
}

/* One client connection to serve: from a listener, or handed over by
 * ns_proxy_adopt_socks5.  Takes cfd (closed on failure). */
static void
px_conn_new(nsi_proxy_svc *s, tk_loop *loop, int kind, int cfd,
    const struct sockaddr_storage *ss)
{
	px_conn *c = NULL;

	if (s->nconns >= PX_MAX_CONNS ||
	    (c = tk_calloc(1, sizeof(*c))) == NULL ||
	    (c->hs = tk_malloc(PX_HS_CAP)) == NULL) {
		tk_free(c);
		s->refused++;
		close(cfd);
		return;
	}
	c->svc = s;
	c->kind = kind;
	c->state = ST_HS;
	c->c.fd = cfd;
	c->t.fd = c->uk.fd = c->ut.fd = -1;
	tk_ipport_from_sockaddr(&c->peer, ss);
	if (kind == PX_SOCKS) {
		ns_socks_cfg cfg = { .user = s->user, .pass = s->pass,
			.allow_udp = true, .stats = &s->st };
		ns_socks_init(&c->socks, &cfg);
		s->socks_conns++;
	} else
		s->http_conns++;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	fd_want(c, &c->c, TK_LOOP_READ, px_io);
	if (!c->c.reg || tk_loop_timer_new(loop, &c->hs_timer, hs_expired,
	    c) != 0) {
		px_free(c, false);
		return;
	}
	tk_loop_timer_arm(c->hs_timer, PX_HS_NS, 0);
}

static void
px_accept(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	px_listener *l = arg;

	(void)ev;
	for (int i = 0; i < 16; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int cfd = accept4(fd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd < 0)
			return;
		px_conn_new(l->svc, loop, l->kind, cfd, &ss);
	}
}

static void
adopt_run(void *arg)
{
	px_adopt *a = arg, **pp;
	nsi_proxy_svc *s = a->svc;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	pthread_mutex_lock(&s->adopt_mu);
	for (pp = &s->adopts; *pp != NULL && *pp != a; pp = &(*pp)->next)
		;
	if (*pp != NULL)
		*pp = a->next;
	pthread_mutex_unlock(&s->adopt_mu);
	memset(&ss, 0, sizeof(ss));
	if (getpeername(a->fd, (struct sockaddr *)&ss, &sl) != 0 ||
	    fcntl(a->fd, F_SETFL, fcntl(a->fd, F_GETFL) | O_NONBLOCK) != 0)
		close(a->fd);
	else
		px_conn_new(s, s->ns->loop, PX_SOCKS, a->fd, &ss);
	tk_free(a);
}

int
ns_proxy_adopt_socks5(netstackd *ns, int fd)
{
	nsi_proxy_svc *s;
	px_adopt *a;

	if (ns == NULL || fd < 0 || (s = ns->proxy_svc) == NULL)
		return TK_EINVAL;
	if ((a = tk_calloc(1, sizeof(*a))) == NULL)
		return TK_ENOMEM;
	a->svc = s;
	a->fd = fd;
	tk_loop_item_init(&a->it, adopt_run, a);
	pthread_mutex_lock(&s->adopt_mu);
	a->next = s->adopts;
	s->adopts = a;
	tk_loop_post_item(ns->loop, &a->it);
	pthread_mutex_unlock(&s->adopt_mu);
	return 0;
}

static int
addr_check(const char *flag, const char *spec, tk_ipport *out, char *err,
    size_t errlen)
{
	if (tk_ipport_parse(out, spec, strlen(spec)) != 0) {
		snprintf(err, errlen, "%s %s: expected ADDR:PORT on loopback "
		    "(127.0.0.1:1080 or [::1]:1080)", flag, spec);
		return TK_EINVAL;
	}
	if (!is_loopback(&out->ip)) {
		snprintf(err, errlen, "%s %s: not a loopback address; the proxy "
		    "listens on 127.0.0.0/8 or [::1] only (whoever reaches it "
		    "speaks as this node)", flag, spec);
		return TK_EINVAL;
	}
	return 0;
}

int
nsi_proxy_cfg_check(const ns_config *cfg, char *err, size_t errlen)
{
	tk_ipport a;
	int rv;

	if ((cfg->proxy_user == NULL) != (cfg->proxy_pass == NULL)) {
		snprintf(err, errlen, "--proxy-user and --proxy-pass go together");
		return TK_EINVAL;
	}
	if (cfg->proxy_user != NULL && (strlen(cfg->proxy_user) == 0 ||
	    strlen(cfg->proxy_user) > 255 || strlen(cfg->proxy_pass) == 0 ||
	    strlen(cfg->proxy_pass) > 255)) {
		snprintf(err, errlen, "--proxy-user/--proxy-pass: 1..255 bytes each "
		    "(RFC 1929)");
		return TK_EINVAL;
	}
	if (cfg->socks5_addr != NULL &&
	    (rv = addr_check("--socks5", cfg->socks5_addr, &a, err, errlen)) != 0)
		return rv;
	if (cfg->http_proxy_addr != NULL && (rv = addr_check("--http-proxy",
	    cfg->http_proxy_addr, &a, err, errlen)) != 0)
		return rv;
	return 0;
}

static int
listen_on(nsi_proxy_svc *s, int kind, const char *flag, const char *spec,
    char *err, size_t errlen)
{
	px_listener *l = &s->l[kind];
	struct sockaddr_storage ss;
	socklen_t sl;
	char txt[TK_NETADDR_TEXT_MAX];
	int one = 1, rv;

	if ((rv = addr_check(flag, spec, &l->addr, err, errlen)) != 0)
		return rv;
	sl = tk_ipport_to_sockaddr(&l->addr, &ss);
	if ((l->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) < 0)
		return tk_err_sys(errno);
	setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l->fd, (struct sockaddr *)&ss, sl) != 0 ||
	    listen(l->fd, 128) != 0) {
		rv = tk_err_sys(errno);
		snprintf(err, errlen, "%s %s: %s", flag, spec, strerror(errno));
		close(l->fd);
		l->fd = -1;
		return rv;
	}
	sl = sizeof(ss);
	getsockname(l->fd, (struct sockaddr *)&ss, &sl);
	tk_ipport_from_sockaddr(&l->addr, &ss);
	l->svc = s;
	l->kind = kind;
	if ((rv = tk_loop_fd_add(s->ns->loop, l->fd, TK_LOOP_READ, px_accept,
	    l)) != 0) {
		close(l->fd);
		l->fd = -1;
		return rv;
	}
	tk_ipport_format(&l->addr, txt);
	TK_INFO(NS_SUBSYS, "%s proxy on %s", kind == PX_SOCKS ? "SOCKS5" :
	    "HTTP CONNECT", txt);
	return 0;
}

int
nsi_proxy_svc_new(netstackd *ns, const ns_config *cfg, nsi_proxy_svc **out,
    char *err, size_t errlen)
{
	nsi_proxy_svc *s;
	int rv;

	if ((rv = nsi_proxy_cfg_check(cfg, err, errlen)) != 0)
		return rv;
	if ((s = tk_calloc(1, sizeof(*s))) == NULL)
		return TK_ENOMEM;
	s->ns = ns;
	pthread_mutex_init(&s->adopt_mu, NULL);
	s->l[0].fd = s->l[1].fd = -1;
	if (cfg->proxy_user != NULL &&
	    ((s->user = tk_strdup(cfg->proxy_user)) == NULL ||
		(s->pass = tk_strdup(cfg->proxy_pass)) == NULL))
		rv = TK_ENOMEM;
	if (rv == 0 && cfg->socks5_addr != NULL)
		rv = listen_on(s, PX_SOCKS, "--socks5", cfg->socks5_addr, err,
		    errlen);
	if (rv == 0 && cfg->http_proxy_addr != NULL)
		rv = listen_on(s, PX_HTTP, "--http-proxy", cfg->http_proxy_addr,
		    err, errlen);
	if (rv != 0) {
		nsi_proxy_svc_free(s);
		return rv;
	}
	*out = s;
	return 0;
}

void
nsi_proxy_svc_free(nsi_proxy_svc *s)
{
	if (s == NULL)
		return;
	/* the loop has stopped: hand-overs it never took */
	while (s->adopts != NULL) {
		px_adopt *a = s->adopts;
		s->adopts = a->next;
		tk_loop_post_cancel(s->ns->loop, &a->it);
		close(a->fd);
		tk_free(a);
	}
	pthread_mutex_destroy(&s->adopt_mu);
	while (s->conns != NULL)
		px_free(s->conns, true);
	for (int i = 0; i < 2; i++)
		if (s->l[i].fd >= 0) {
			tk_loop_fd_del(s->ns->loop, s->l[i].fd);
			close(s->l[i].fd);
		}
	if (s->pass != NULL)
		memset(s->pass, 0, strlen(s->pass));
	tk_free(s->user);
	tk_free(s->pass);
	tk_free(s);
}

void
nsi_proxy_svc_counters(nsi_proxy_svc *s, tk_status_counters *cs)
{
	if (s == NULL)
		return;
#define C(f) tk_status_counter(cs, "proxy_" #f, s->f)
	C(socks_conns); C(http_conns); C(refused); C(hs_timeout); C(dial_ok);
	C(dial_failed);
	C(name_unknown); C(bytes_up); C(bytes_down); C(udp_assoc);
	C(udp_to_tailnet); C(udp_to_client); C(udp_dropped);
#undef C
#define C(f) tk_status_counter(cs, "proxy_" #f, s->st.f)
	C(socks_not_socks5); C(socks_no_method); C(socks_auth_failed);
	C(socks_bad_request); C(socks_connect); C(socks_udp); C(socks_udp_frag);
	C(socks_udp_bad); C(http_ok); C(http_bad); C(http_method); C(http_auth);
#undef C
	tk_status_counter(cs, "proxy_open", s->nconns);
}
