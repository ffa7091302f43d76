/*
 * The local API server: a unix SOCK_STREAM socket (mode 0600) speaking the
 * frames of ns_api.h.  Requests are parsed by ns_api_req_parse (sans-I/O,
 * fuzzed); descriptors go back as SCM_RIGHTS.  A client whose framing is
 * broken, or who does not read its replies (more than OUTQ_MAX queued), is
 * dropped; its listeners go with it, its connections stay.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ns_int.h"
#include "ns_svc.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"

#define OUTQ_MAX 4096

typedef struct outq {
	struct outq *next;
	int fd;
	size_t len, off;
	uint8_t buf[];
} outq;

struct nsi_client {
	netstackd *ns;
	int fd;
	bool dead;
	uint8_t rbuf[2 * NS_API_FRAME_MAX];
	size_t rlen;
	outq *oq, *oq_tail;
	unsigned noq;
	nsi_client *next, *prev;
};

static const char *
st_text(int st)
{
	switch (st) {
	case NS_ST_EINVAL: return "invalid request";
	case NS_ST_EADDRINUSE: return "port already in use";
	case NS_ST_ECONNREFUSED: return "connection refused";
	case NS_ST_ETIMEDOUT: return "timed out";
	case NS_ST_ENETUNREACH: return "no own address of that family yet";
	case NS_ST_ENOMEM: return "out of memory";
	case NS_ST_ENOTSUP: return "not supported";
	case NS_ST_ECLOSED: return "netstackd is stopping";
	case NS_ST_ELIMIT: return "too many connections";
	case NS_ST_ENOTFOUND: return "no tailnet node by that name";
	default: return "error";
	}
}

static void
client_reap(void *arg)
{
	nsi_client *c = arg;
	netstackd *ns = c->ns;

	nsi_listeners_drop_client(ns, c);
	nsi_dials_drop_client(ns, c);
	nsi_dial_name_drop_client(ns, c);
	while (c->oq != NULL) {
		outq *q = c->oq;
		c->oq = q->next;
		if (q->fd >= 0)
			close(q->fd);
		tk_free(q);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		ns->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	tk_free(c);
}

static void
client_drop(nsi_client *c, const char *why)
{
	if (c->dead)
		return;
	TK_DEBUG(NS_SUBSYS, "API client dropped: %s", why);
	c->dead = true;
	tk_loop_fd_del(c->ns->loop, c->fd);
	close(c->fd);
	c->fd = -1;
	c->ns->st.api_clients--;
	if (tk_loop_post(c->ns->loop, client_reap, c) != 0)
		client_reap(c); /* no memory for the post: reap now */
}

/* Sends what can go now.  0, TK_EAGAIN (some left), or an error. */
static int
flush(nsi_client *c)
{
	while (c->oq != NULL) {
		outq *q = c->oq;
		struct iovec iov = { q->buf + q->off, q->len - q->off };
		union {
			struct cmsghdr h;
			uint8_t b[CMSG_SPACE(sizeof(int))];
		} cm;
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t w;

		if (q->fd >= 0) {
			memset(&cm, 0, sizeof(cm));
			mh.msg_control = cm.b;
			mh.msg_controllen = sizeof(cm.b);
			struct cmsghdr *h = CMSG_FIRSTHDR(&mh);
			h->cmsg_level = SOL_SOCKET;
			h->cmsg_type = SCM_RIGHTS;
			h->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(h), &q->fd, sizeof(int));
		}
		w = sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return TK_EAGAIN;
			return tk_err_sys(errno);
		}
		if (q->fd >= 0) {
			close(q->fd); /* the client has its copy now */
			q->fd = -1;
		}
		q->off += (size_t)w;
		if (q->off < q->len)
			continue;
		c->oq = q->next;
		if (c->oq == NULL)
			c->oq_tail = NULL;
		c->noq--;
		tk_free(q);
	}
	return 0;
}

static void client_io(tk_loop *loop, int fd, unsigned ev, void *arg);

int
nsi_client_send(nsi_client *c, uint8_t op, uint8_t status, uint32_t id,
    const uint8_t *body, size_t len, int fd)
{
	outq *q;
	int rv;

	if (c->dead || c->noq >= OUTQ_MAX ||
	    (q = tk_malloc(sizeof(*q) + NS_API_FRAME_MAX)) == NULL) {
		if (fd >= 0)
			close(fd);
		if (!c->dead)
			client_drop(c, "replies not read");
		return TK_ECLOSED;
	}
	q->next = NULL;
	q->fd = fd;
	q->off = 0;
	q->len = ns_api_frame_encode(q->buf, NS_API_FRAME_MAX, op, status, id,
	    body, len);
	if (q->len == 0) {
		if (fd >= 0)
			close(fd);
		tk_free(q);
		return TK_EINTERNAL;
	}
	if (c->oq_tail)
		c->oq_tail->next = q;
	else
		c->oq = q;
	c->oq_tail = q;
	c->noq++;
	rv = flush(c);
	if (rv == TK_EAGAIN)
		tk_loop_fd_mod(c->ns->loop, c->fd, TK_LOOP_READ | TK_LOOP_WRITE);
	else if (rv != 0) {
		client_drop(c, tk_strerror(rv));
		return rv;
	}
	return 0;
}

void
nsi_client_send_peer(nsi_client *c, uint8_t op, uint32_t id, int fd,
    const ns_api_peer *peer)
{
	uint8_t b[NS_API_FRAME_MAX];
	size_t n = ns_api_peer_encode(b, sizeof(b), peer);

	nsi_client_send(c, op, NS_ST_OK, id, b, n, fd);
}

void
nsi_client_reply_err(nsi_client *c, uint32_t id, int st, const char *why)
{
	const char *t = why ? why : st_text(st);

	nsi_client_send(c, NS_MSG_REPLY, (uint8_t)st, id, (const uint8_t *)t,
	    strlen(t), -1);
}

static void
handle(nsi_client *c, const ns_api_req *r)
{
	netstackd *ns = c->ns;
	uint8_t port[2];
	int st, fd;
	uint16_t bound;

	switch (r->op) {
	case NS_OP_LISTEN_TCP:
		if ((st = nsi_listen(ns, c, r->addr.port, r->id)) != NS_ST_OK) {
			nsi_client_reply_err(c, r->id, st, NULL);
			return;
		}
		tk_be16_store(port, r->addr.port);
		nsi_client_send(c, NS_MSG_REPLY, NS_ST_OK, r->id, port, 2, -1);
		return;
	case NS_OP_UNLISTEN_TCP:
		if ((st = nsi_unlisten(ns, c, r->addr.port)) != NS_ST_OK) {
			nsi_client_reply_err(c, r->id, st, "not listening on that port");
			return;
		}
		nsi_client_send(c, NS_MSG_REPLY, NS_ST_OK, r->id, NULL, 0, -1);
		return;
	case NS_OP_DIAL_TCP:
		if ((st = nsi_dial_start(ns, c, r->id, &r->addr, NULL, NULL)) != NS_ST_OK)
			nsi_client_reply_err(c, r->id, st, NULL);
		return;
	case NS_OP_BIND_UDP:
		if ((st = nsi_udp_bind(ns, r->addr.port, &fd, &bound)) != NS_ST_OK) {
			nsi_client_reply_err(c, r->id, st, NULL);
			return;
		}
		tk_be16_store(port, bound);
		nsi_client_send(c, NS_MSG_REPLY, NS_ST_OK, r->id, port, 2, fd);
		return;
	case NS_OP_DIAL_TCP_NAME:
		/* through MagicDNS (tailnet names, then split DNS and the
		 * resolvers), or a literal; the reply comes when dialled */
		if ((st = nsi_dial_name(ns, c, r->id, r->name, r->addr.port)) !=
		    NS_ST_OK)
			nsi_client_reply_err(c, r->id, st, NULL);
		return;
	default:
		nsi_client_reply_err(c, r->id, NS_ST_EINVAL, NULL);
	}
}

static void
client_io(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	nsi_client *c = arg;
	ssize_t r;

	(void)loop;
	if (ev & TK_LOOP_WRITE) {
		int rv = flush(c);
		if (rv == 0)
			tk_loop_fd_mod(c->ns->loop, c->fd, TK_LOOP_READ);
		else if (rv != TK_EAGAIN) {
			client_drop(c, tk_strerror(rv));
			return;
		}
	}
	if (!(ev & (TK_LOOP_READ | TK_LOOP_ERROR)))
		return;
	r = read(fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen);
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
		client_drop(c, r == 0 ? "closed" : strerror(errno));
		return;
	}
	if (r < 0)
		return;
	c->rlen += (size_t)r;
	while (!c->dead) {
		ns_api_req req;
		size_t used = 0;
		int rv = ns_api_req_parse(c->rbuf, c->rlen, &req, &used);

		if (rv == TK_EAGAIN)
			break;
		if (rv == TK_EPROTO) {
			c->ns->st.api_bad++;
			client_drop(c, "broken framing");
			return;
		}
		if (rv == TK_EINVAL) {
			c->ns->st.api_bad++;
			nsi_client_reply_err(c, req.id, NS_ST_EINVAL, req.why);
		} else
			handle(c, &req);
		if (c->dead)
			return;
		memmove(c->rbuf, c->rbuf + used, c->rlen - used);
		c->rlen -= used;
	}
}

static void
api_accept(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	netstackd *ns = arg;

	(void)ev;
	for (int i = 0; i < 16; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		nsi_client *c;

		if (cfd < 0)
			return;
		if ((c = tk_calloc(1, sizeof(*c))) == NULL) {
			close(cfd);
			continue;
		}
		c->ns = ns;
		c->fd = cfd;
		if (tk_loop_fd_add(loop, cfd, TK_LOOP_READ, client_io, c) != 0) {
			close(cfd);
			tk_free(c);
			continue;
		}
		c->next = ns->clients;
		if (ns->clients)
			ns->clients->prev = c;
		ns->clients = c;
		ns->st.api_clients++;
	}
}

int
nsi_api_start(netstackd *ns)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, rv;
	mode_t old;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", ns->api_path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
		return tk_err_sys(errno);
	unlink(ns->api_path); /* a previous run's socket */
	old = umask(0177);    /* 0600 from the start, no window */
	rv = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rv != 0 || chmod(ns->api_path, 0600) != 0 || listen(fd, 64) != 0) {
		rv = tk_err_sys(errno);
		close(fd);
		return rv;
	}
	if ((rv = tk_loop_fd_add(ns->loop, fd, TK_LOOP_READ, api_accept, ns)) != 0) {
		close(fd);
		unlink(ns->api_path);
		return rv;
	}
	ns->api_fd = fd;
	return 0;
}

void
nsi_api_stop(netstackd *ns)
{
	if (ns->api_fd >= 0) {
		tk_loop_fd_del(ns->loop, ns->api_fd);
		close(ns->api_fd);
		unlink(ns->api_path);
		ns->api_fd = -1;
	}
	for (nsi_client *c = ns->clients; c; c = c->next)
		if (!c->dead) {
			tk_loop_fd_del(ns->loop, c->fd);
			close(c->fd);
			c->fd = -1;
			c->dead = true;
		}
	while (ns->clients != NULL)
		client_reap(ns->clients);
}
