/*
 * TCP: lwIP pcbs <-> AF_UNIX stream socketpairs handed to applications.
 *
 * Backpressure both ways: netstackd reads the application's end only while
 * lwIP has send buffer (tcp_sndbuf), and it calls tcp_recved() only for
 * bytes the application's socket accepted, so a slow reader closes the TCP
 * window.  Bytes lwIP delivered and the socket did not take yet wait in the
 * conn's pbuf queue, bounded by the receive window (TCP_WND).
 *
 * Closing: the application's EOF (shutdown(SHUT_WR) or close) becomes a FIN
 * (tcp_shutdown tx); the peer's FIN becomes shutdown(SHUT_WR) on our end
 * once everything before it was written.  When both directions are done,
 * or the application closed its end entirely (hang-up), the pcb is closed
 * (tcp_close: lwIP answers later data with RST); a write to a vanished
 * application or a reset on its end aborts (RST).  A reset from the peer
 * closes our end.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "ns_int.h"
#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"

#define OUT_BUDGET (1024 * 1024) /* bytes read from one app per wake-up */

static void conn_fd(tk_loop *loop, int fd, unsigned ev, void *arg);

/* --- conn lifecycle ------------------------------------------------------- */

static void
rx_free(nsi_conn *c)
{
	while (c->rx != NULL) {
		struct pbuf *p = c->rx;
		c->rx = p->next;
		p->next = NULL;
		pbuf_free(p);
	}
	c->rx_tail = NULL;
	c->rx_off = 0;
}

static void
pcb_detach(struct tcp_pcb *pcb)
{
	tcp_arg(pcb, NULL);
	tcp_recv(pcb, NULL);
	tcp_sent(pcb, NULL);
	tcp_err(pcb, NULL);
}

/* Frees c: closes or aborts its pcb (unless lwIP already freed it) and its
 * fd.  Returns true when the pcb was aborted (callbacks return ERR_ABRT). */
static bool
conn_free(nsi_conn *c, bool rst)
{
	netstackd *ns = c->ns;
	bool aborted = false;

	if (c->pcb != NULL) {
		pcb_detach(c->pcb);
		if (rst || tcp_close(c->pcb) != ERR_OK) {
			tcp_abort(c->pcb);
			aborted = true;
		}
		c->pcb = NULL;
	}
	if (c->fd >= 0) {
		if (c->interest != 0xffu)
			tk_loop_fd_del(ns->loop, c->fd);
		close(c->fd);
	}
	rx_free(c);
	if (c->dirty) {
		for (nsi_conn **pp = &ns->dirty; *pp; pp = &(*pp)->dnext)
			if (*pp == c) {
				*pp = c->dnext;
				break;
			}
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		ns->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ns->nconns--;
	ns->st.conns_open--;
	tk_free(c);
	return aborted;
}

static bool
out_blocked(const nsi_conn *c)
{
	return tcp_sndbuf(c->pcb) < TCP_MSS ||
	    tcp_sndqueuelen(c->pcb) + 64 >= TCP_SND_QUEUELEN;
}

/* Registers the fd for what the conn can make progress on now.  The fd
 * stays registered (events 0) so a hang-up is seen. */
static void
conn_update(nsi_conn *c)
{
	unsigned want = 0;

	if (c->hup || c->pcb == NULL)
		return;
	if (!c->app_eof && !out_blocked(c))
		want |= TK_LOOP_READ;
	if (c->rx != NULL)
		want |= TK_LOOP_WRITE;
	if (want != c->interest) {
		tk_loop_fd_mod(c->ns->loop, c->fd, want);
		c->interest = want;
	}
}

/* Both directions finished, or the application is gone and has nothing
 * more to send: close.  True if c was freed. */
static bool
maybe_done(nsi_conn *c, bool *aborted)
{
	if ((c->app_eof && c->fin_given) || (c->hup && c->app_eof)) {
		bool a = conn_free(c, false);
		if (aborted)
			*aborted = a;
		return true;
	}
	return false;
}

/* --- peer -> application -------------------------------------------------- */

/* Writes queued bytes to the application.  Returns true if c was freed
 * (*aborted: its pcb aborted). */
static bool
pump_in(nsi_conn *c, bool *aborted)
{
	struct iovec iov[64];
	size_t total = 0;

	while (c->rx != NULL) {
		int n = 0;
		struct pbuf *p = c->rx;
		ssize_t w;

		for (; p != NULL && n < 64; p = p->next) {
			size_t off = n == 0 ? c->rx_off : 0;
			if (p->len <= off)
				continue;
			iov[n].iov_base = (uint8_t *)p->payload + off;
			iov[n].iov_len = p->len - off;
			n++;
		}
		if (n == 0) {
			rx_free(c);
			break;
		}
		/* sendmsg with MSG_NOSIGNAL, not writev: an application
		 * that closed its end must not get SIGPIPE raised in the
		 * process netstackd runs in (an embedding program). */
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			/* the application is gone: reset the peer */
			*aborted = conn_free(c, true);
			return true;
		}
		total += (size_t)w;
		while (w > 0 && c->rx != NULL) {
			struct pbuf *q = c->rx;
			size_t left = q->len - c->rx_off;
			if ((size_t)w < left) {
				c->rx_off += (size_t)w;
				w = 0;
			} else {
				w -= (ssize_t)left;
				c->rx = q->next;
				q->next = NULL;
				pbuf_free(q);
				c->rx_off = 0;
			}
		}
		/* drop exhausted empty pbufs */
		while (c->rx != NULL && c->rx->len == c->rx_off) {
			struct pbuf *q = c->rx;
			c->rx = q->next;
			q->next = NULL;
			pbuf_free(q);
			c->rx_off = 0;
		}
	}
	if (c->rx == NULL)
		c->rx_tail = NULL;
	while (total > 0 && c->pcb != NULL) {
		u16_t chunk = total > 0xffff ? 0xffff : (u16_t)total;
		tcp_recved(c->pcb, chunk);
		total -= chunk;
	}
	if (c->rx == NULL && c->peer_fin && !c->fin_given) {
		shutdown(c->fd, SHUT_WR);
		c->fin_given = true;
	}
	return maybe_done(c, aborted);
}

static err_t
on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	nsi_conn *c = arg;
	bool aborted = false;

	(void)pcb;
	if (c == NULL) {
		if (p)
			pbuf_free(p);
		return ERR_OK;
	}
	if (p == NULL) {
		c->peer_fin = true;
	} else if (err != ERR_OK) {
		pbuf_free(p);
		return ERR_OK;
	} else {
		struct pbuf *t = p;
		while (t->next != NULL)
			t = t->next;
		if (c->rx == NULL) {
			c->rx = p;
			c->rx_off = 0;
		} else
			c->rx_tail->next = p; /* takes over p's reference */
		c->rx_tail = t;
	}
	if (c->hup) {
		/* nobody to give it to */
		aborted = conn_free(c, true);
		return aborted ? ERR_ABRT : ERR_OK;
	}
	/* written out once per loop iteration (nsi_tcp_flush): a batch
	 * from wgd carries many segments of the same connection */
	if (!c->dirty) {
		c->dirty = true;
		c->dnext = c->ns->dirty;
		c->ns->dirty = c;
	}
	return ERR_OK;
}

void
nsi_tcp_flush(netstackd *ns)
{
	while (ns->dirty != NULL) {
		nsi_conn *c = ns->dirty;
		bool a;

		ns->dirty = c->dnext;
		c->dirty = false;
		c->dnext = NULL;
		if (!pump_in(c, &a))
			conn_update(c);
	}
}

/* --- application -> peer -------------------------------------------------- */

static bool
pump_out(nsi_conn *c, bool *aborted)
{
	netstackd *ns = c->ns;
	size_t budget = OUT_BUDGET;
	bool wrote = false;

	while (!c->app_eof && budget > 0 && c->pcb != NULL && !out_blocked(c)) {
		size_t room = tcp_sndbuf(c->pcb);
		size_t segs = TCP_SND_QUEUELEN - tcp_sndqueuelen(c->pcb) - 32;
		size_t n = sizeof(ns->io) - 64;
		ssize_t r;

		if (n > room)
			n = room;
		if (n > segs * TCP_MSS / 2)
			n = segs * TCP_MSS / 2;
		if (n > budget)
			n = budget;
		r = read(c->fd, ns->io, n);
		if (r > 0) {
			size_t off = 0;
			while (off < (size_t)r) {
				u16_t chunk = (size_t)r - off > 0xffff ? 0xffff :
				    (u16_t)((size_t)r - off);
				if (tcp_write(c->pcb, ns->io + off, chunk,
					TCP_WRITE_FLAG_COPY) != ERR_OK) {
					TK_WARN(NS_SUBSYS, "tcp_write failed: resetting");
					*aborted = conn_free(c, true);
					return true;
				}
				off += chunk;
			}
			budget -= (size_t)r;
			wrote = true;
			continue;
		}
		if (r == 0) {
			c->app_eof = true;
			tcp_shutdown(c->pcb, 0, 1);
			wrote = true;
			break;
		}
		if (errno == EAGAIN || errno == EINTR)
			break;
		*aborted = conn_free(c, true); /* ECONNRESET and such */
		return true;
	}
	if (wrote && c->pcb != NULL)
		tcp_output(c->pcb);
	return maybe_done(c, aborted);
}

static err_t
on_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
	nsi_conn *c = arg;
	bool aborted = false;

	(void)pcb, (void)len;
	if (c == NULL)
		return ERR_OK;
	if (c->hup) {
		if (pump_out(c, &aborted))
			return aborted ? ERR_ABRT : ERR_OK;
		return ERR_OK;
	}
	conn_update(c);
	return ERR_OK;
}

static void
on_err(void *arg, err_t err)
{
	nsi_conn *c = arg;
	bool a;

	(void)err;
	if (c == NULL)
		return;
	c->pcb = NULL; /* lwIP freed it */
	/* give the application what arrived before the reset */
	if (!c->hup && c->rx != NULL) {
		bool freed = pump_in(c, &a);
		if (freed)
			return;
	}
	conn_free(c, false);
}

static void
conn_fd(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	nsi_conn *c = arg;
	bool a;

	(void)loop, (void)fd;
	if ((ev & TK_LOOP_WRITE) && c->rx != NULL) {
		if (pump_in(c, &a))
			return;
	}
	if (ev & (TK_LOOP_READ | TK_LOOP_ERROR)) {
		if (pump_out(c, &a))
			return;
	}
	if (ev & TK_LOOP_ERROR) {
		/* hung up: the application closed its end */
		tk_loop_fd_del(c->ns->loop, c->fd);
		c->interest = 0xffu;
		c->hup = true;
		rx_free(c);
		if (c->app_eof) {
			conn_free(c, false);
			return;
		}
		/* still bytes to send: on_sent keeps reading */
		return;
	}
	conn_update(c);
}

int
nsi_conn_new(netstackd *ns, struct tcp_pcb *pcb, int *app_fd)
{
	int sv[2], rv;
	nsi_conn *c;

	if ((c = tk_calloc(1, sizeof(*c))) == NULL)
		return TK_ENOMEM;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		rv = tk_err_sys(errno);
		tk_free(c);
		return rv;
	}
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	c->ns = ns;
	c->pcb = pcb;
	c->fd = sv[0];
	c->interest = TK_LOOP_READ;
	if ((rv = tk_loop_fd_add(ns->loop, c->fd, TK_LOOP_READ, conn_fd, c)) != 0) {
		close(sv[0]);
		close(sv[1]);
		tk_free(c);
		return rv;
	}
	tcp_nagle_disable(pcb);
	tcp_arg(pcb, c);
	tcp_recv(pcb, on_recv);
	tcp_sent(pcb, on_sent);
	tcp_err(pcb, on_err);
	c->next = ns->conns;
	if (ns->conns)
		ns->conns->prev = c;
	ns->conns = c;
	ns->nconns++;
	ns->st.conns_open++;
	ns->st.conns_total++;
	*app_fd = sv[1];
	return 0;
}

void
nsi_conn_free_all(netstackd *ns)
{
	while (ns->conns != NULL)
		conn_free(ns->conns, true);
}

void
nsi_peer_info(netstackd *ns, struct tcp_pcb *pcb, ns_api_peer *out)
{
	memset(out, 0, sizeof(*out));
	nsi_addr_from_ip(&out->remote, &pcb->remote_ip, pcb->remote_port);
	nsi_addr_from_ip(&out->local, &pcb->local_ip, pcb->local_port);
	nsi_identity(ns, &out->remote, out);
}

/* --- listeners ------------------------------------------------------------ */

static err_t
on_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
	nsi_listener *l = arg;
	netstackd *ns;
	ns_api_peer peer;
	int fd;

	if (err != ERR_OK || pcb == NULL)
		return ERR_VAL;
	ns = l->ns;
	if (l->client == NULL || ns->nconns >= ns->max_conns ||
	    nsi_conn_new(ns, pcb, &fd) != 0) {
		ns->st.conns_refused++;
		tcp_abort(pcb);
		return ERR_ABRT;
	}
	nsi_peer_info(ns, pcb, &peer);
	/* on failure the client is dropped and our end sees the hang-up */
	nsi_client_send_peer(l->client, NS_MSG_ACCEPT, l->id, fd, &peer);
	return ERR_OK;
}

/* NS_ST_* */
int
nsi_listen(netstackd *ns, nsi_client *c, uint16_t port, uint32_t id)
{
	struct tcp_pcb *pcb, *lpcb;
	nsi_listener *l;

	for (l = ns->listeners; l; l = l->next)
		if (l->port == port)
			return NS_ST_EADDRINUSE;
	if ((l = tk_calloc(1, sizeof(*l))) == NULL)
		return NS_ST_ENOMEM;
	if ((pcb = tcp_new_ip_type(IPADDR_TYPE_ANY)) == NULL) {
		tk_free(l);
		return NS_ST_ENOMEM;
	}
	if (tcp_bind(pcb, IP_ANY_TYPE, port) != ERR_OK) {
		tcp_abort(pcb);
		tk_free(l);
		return NS_ST_EADDRINUSE;
	}
	if ((lpcb = tcp_listen_with_backlog(pcb, TCP_DEFAULT_LISTEN_BACKLOG)) == NULL) {
		tcp_abort(pcb);
		tk_free(l);
		return NS_ST_ENOMEM;
	}
	l->ns = ns;
	l->client = c;
	l->pcb = lpcb;
	l->port = port;
	l->id = id;
	tcp_arg(lpcb, l);
	tcp_accept(lpcb, on_accept);
	l->next = ns->listeners;
	ns->listeners = l;
	TK_DEBUG(NS_SUBSYS, "listening on TCP port %u", port);
	return NS_ST_OK;
}

static void
listener_free(nsi_listener *l)
{
	tcp_arg(l->pcb, NULL);
	tcp_accept(l->pcb, NULL);
	tcp_close(l->pcb);
	tk_free(l);
}

int
nsi_unlisten(netstackd *ns, nsi_client *c, uint16_t port)
{
	for (nsi_listener **pp = &ns->listeners; *pp; pp = &(*pp)->next) {
		nsi_listener *l = *pp;
		if (l->port == port && l->client == c) {
			*pp = l->next;
			listener_free(l);
			return NS_ST_OK;
		}
	}
	return NS_ST_EINVAL;
}

void
nsi_listeners_drop_client(netstackd *ns, nsi_client *c)
{
	for (nsi_listener **pp = &ns->listeners; *pp;) {
		nsi_listener *l = *pp;
		if (l->client == c) {
			*pp = l->next;
			listener_free(l);
		} else
			pp = &l->next;
	}
}

void
nsi_listeners_free_all(netstackd *ns)
{
	while (ns->listeners != NULL) {
		nsi_listener *l = ns->listeners;
		ns->listeners = l->next;
		listener_free(l);
	}
}

/* --- dials ---------------------------------------------------------------- */

static void
dial_unlink(nsi_dial *d)
{
	netstackd *ns = d->ns;

	if (d->prev)
		d->prev->next = d->next;
	else
		ns->dials = d->next;
	if (d->next)
		d->next->prev = d->prev;
	tk_loop_timer_free(d->timer);
}

static void
dial_finish(nsi_dial *d, int status, int fd, const ns_api_peer *peer)
{
	dial_unlink(d);
	if (d->done != NULL) {
		/* in-process callers run on the loop: never block it */
		if (fd >= 0)
			fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		d->done(d->arg, status, fd, peer);
	}
	else if (d->client != NULL) {
		if (status == NS_ST_OK)
			nsi_client_send_peer(d->client, NS_MSG_REPLY, d->id, fd, peer);
		else
			nsi_client_reply_err(d->client, d->id, status, NULL);
	} else if (fd >= 0)
		close(fd);
	tk_free(d);
}

static err_t
dial_connected(void *arg, struct tcp_pcb *pcb, err_t err)
{
	nsi_dial *d = arg;
	netstackd *ns = d->ns;
	ns_api_peer peer;
	int fd;

	(void)err;
	pcb_detach(pcb);
	if ((d->done == NULL && d->client == NULL) || ns->nconns >= ns->max_conns ||
	    nsi_conn_new(ns, pcb, &fd) != 0) {
		tcp_abort(pcb);
		dial_finish(d, ns->nconns >= ns->max_conns ? NS_ST_ELIMIT :
		    NS_ST_ENOMEM, -1, NULL);
		return ERR_ABRT;
	}
	nsi_peer_info(ns, pcb, &peer);
	dial_finish(d, NS_ST_OK, fd, &peer);
	return ERR_OK;
}

static void
dial_err(void *arg, err_t err)
{
	nsi_dial *d = arg;

	dial_finish(d, err == ERR_RST ? NS_ST_ECONNREFUSED : NS_ST_ETIMEDOUT, -1,
	    NULL);
}

static void
dial_timeout(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	nsi_dial *d = arg;

	(void)loop, (void)t;
	pcb_detach(d->pcb);
	tcp_abort(d->pcb);
	dial_finish(d, NS_ST_ETIMEDOUT, -1, NULL);
}

/* NS_ST_OK when started (the outcome comes later), else why not. */
int
nsi_dial_start(netstackd *ns, nsi_client *c, uint32_t id,
    const ns_api_addr *dst, ns_dial_done_fn done, void *arg)
{
	ip_addr_t own, to;
	nsi_dial *d;

	if (dst->family != 4 && dst->family != 6)
		return NS_ST_EINVAL;
	if (!nsi_own_addr(ns, dst->family, &own))
		return NS_ST_ENETUNREACH;
	if (ns->nconns >= ns->max_conns)
		return NS_ST_ELIMIT;
	nsi_ip_from_addr(&to, dst);
	if ((d = tk_calloc(1, sizeof(*d))) == NULL)
		return NS_ST_ENOMEM;
	d->ns = ns;
	d->client = c;
	d->id = id;
	d->done = done;
	d->arg = arg;
	if (tk_loop_timer_new(ns->loop, &d->timer, dial_timeout, d) != 0 ||
	    (d->pcb = tcp_new_ip_type(dst->family == 4 ? IPADDR_TYPE_V4 :
		IPADDR_TYPE_V6)) == NULL) {
		tk_loop_timer_free(d->timer);
		tk_free(d);
		return NS_ST_ENOMEM;
	}
	if (tcp_bind(d->pcb, &own, 0) != ERR_OK) {
		tcp_abort(d->pcb);
		tk_loop_timer_free(d->timer);
		tk_free(d);
		return NS_ST_EADDRINUSE;
	}
	/* RFC 6298's initial RTO of 1 s, not lwIP's 3 s: a first SYN lost while
	 * the path comes up (wgd not yet holding the peer, DERP connecting)
	 * costs a second, not three.  lwIP resends SYNs at this RTO without
	 * backing off; TCP_SYNMAXRTX (lwipopts.h) keeps trying for about
	 * netstackd's own dial timeout. */
	d->pcb->rto = 1000 / (2 * TCP_TMR_INTERVAL); /* in slow-timer ticks */
	tcp_arg(d->pcb, d);
	tcp_err(d->pcb, dial_err);
	if (tcp_connect(d->pcb, &to, dst->port, dial_connected) != ERR_OK) {
		pcb_detach(d->pcb);
		tcp_abort(d->pcb);
		tk_loop_timer_free(d->timer);
		tk_free(d);
		return NS_ST_ENOMEM;
	}
	tk_loop_timer_arm(d->timer, (uint64_t)ns->dial_timeout_ms * 1000000u, 0);
	d->next = ns->dials;
	if (ns->dials)
		ns->dials->prev = d;
	ns->dials = d;
	return NS_ST_OK;
}

void
nsi_dials_drop_client(netstackd *ns, nsi_client *c)
{
	for (nsi_dial *d = ns->dials; d; d = d->next)
		if (d->client == c)
			d->client = NULL;
}

void
nsi_dials_free_all(netstackd *ns)
{
	while (ns->dials != NULL) {
		nsi_dial *d = ns->dials;
		pcb_detach(d->pcb);
		tcp_abort(d->pcb);
		d->done = NULL;
		d->client = NULL;
		dial_finish(d, NS_ST_ECLOSED, -1, NULL);
	}
}
