/*
 * derpd server instance: config, key, listeners, the loop thread, and the
 * byte movement between sockets (plain or GnuTLS) and the per-connection
 * buffers that http.c and server_conn.c work on.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/x509.h>
#include <jansson.h>
#include <sodium.h>

#include "server_int.h"
#include "tk/enc.h"
#include "tk/err.h"
#include "tk/keys.h"
#include "tk/mem.h"
#include "tk/state.h"

#define TICK_NS (250 * TK_NSEC_PER_MSEC)
#define HTTP_TIMEOUT_NS (30 * TK_NSEC_PER_SEC) /* derper's HTTP read timeout */
#define IB_HTTP_MAX (16u << 10)
#define IB_DERP_MAX (TK_DERP_FRAME_HDR_LEN + TK_DERP_CLIENT_INFO_MAX + 4096)
/* Bytes read from one connection per wake-up.  Writes are flushed once per
 * loop iteration, so this bounds how long a packet waits for the other
 * connections' reads: 64 KiB keeps the relay latency at half load below
 * derper's (tools/bench/derp.sh), where 256 KiB let it grow to ms. */
#define READ_BUDGET (64u << 10)

uint64_t
derpdi_now(const derpd_server *s)
{
	return tk_clock_mono_ns(s->clock);
}

static void
errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void
errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* --- connections ------------------------------------------------------------- */

static void conn_io(tk_loop *loop, int fd, unsigned ev, void *arg);

int
derpdi_conn_watch(derpdi_conn *c, unsigned events)
{
	c->want_write = (events & TK_LOOP_WRITE) != 0;
	return tk_loop_fd_add(c->s->loop, c->fd, events, conn_io, c);
}

derpdi_conn *
derpdi_conn_new(derpd_server *s, int fd, int tls)
{
	derpdi_conn *c = tk_calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->s = s;
	c->fd = fd;
	c->id = ++s->next_id;
	c->st = CS_HTTP;
	c->deadline_ns = derpdi_now(s) + HTTP_TIMEOUT_NS;
	tk_ratelimit_init(&c->gone_rl, 3, 1);
	snprintf(c->ipstr, sizeof(c->ipstr), "conn%llu",
	    (unsigned long long)c->id);
	if (tls) {
		bool client = tls == DERPDI_TLS_CLIENT;
		int rc = gnutls_init(&c->tls, (client ? GNUTLS_CLIENT :
		    GNUTLS_SERVER) | GNUTLS_NONBLOCK);
		if (rc == 0)
			rc = client ? gnutls_set_default_priority(c->tls) :
			    gnutls_priority_set(c->tls, s->prio);
		if (rc == 0)
			rc = gnutls_credentials_set(c->tls,
			    GNUTLS_CRD_CERTIFICATE, client ? s->ccred : s->cred);
		if (rc != 0) {
			if (c->tls)
				gnutls_deinit(c->tls);
			tk_free(c);
			return NULL;
		}
		if (fd >= 0)
			gnutls_transport_set_int(c->tls, fd);
		gnutls_session_set_ptr(c->tls, s);
		c->st = CS_TLS;
	}
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->st.cur_conns++;
	return c;
}

static void
conn_free(derpdi_conn *c)
{
	derpdi_conn_drop_queues(c);
	if (c->tls)
		gnutls_deinit(c->tls);
	tk_free(c->ib);
	tk_free(c->ob);
	tk_free(c->wr);
	tk_free(c->wob);
	tk_free(c->gone);
	tk_free(c->pres);
	derpdi_map_fini(&c->saw_src);
	tk_free(c);
}

void
derpdi_conn_close(derpdi_conn *c, enum derpdi_close why)
{
	derpd_server *s = c->s;

	if (c->st == CS_CLOSED)
		return;
	bool was_derp = c->st == CS_DERP;
	c->st = CS_CLOSED;
	s->st.closes[why]++;
	if (why == CLOSE_WRITE_TIMEOUT)
		s->st.write_timeouts++;
	if (was_derp || c->set)
		derpdi_derp_unregister(c);
	if (c->mesh)
		derpdi_mesh_closed(c);
	if (c->verify)
		derpdi_verify_cancel(c);
	derpdi_conn_drop_queues(c);
	if (c->fd >= 0) {
		tk_loop_fd_del(s->loop, c->fd);
		close(c->fd);
		c->fd = -1;
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	s->st.cur_conns--;
	c->gnext = s->grave;
	s->grave = c;
}

void
derpdi_conn_mark_dirty(derpdi_conn *c)
{
	if (c->dirty || c->st == CS_CLOSED)
		return;
	c->dirty = true;
	c->dnext = c->s->dirty;
	c->s->dirty = c;
}

int
derpdi_out(derpdi_conn *c, const void *p, size_t n)
{
	if (c->ooff > 0 && c->ooff == c->olen)
		c->ooff = c->olen = 0;
	if (c->ocap - c->olen < n) {
		if (c->ooff > 0) {
			memmove(c->ob, c->ob + c->ooff, c->olen - c->ooff);
			c->olen -= c->ooff;
			c->ooff = 0;
		}
		if (c->ocap - c->olen < n) {
			size_t ncap = c->ocap ? c->ocap : 4096;
			while (ncap - c->olen < n)
				ncap *= 2;
			uint8_t *nb = tk_realloc(c->ob, ncap);
			if (nb == NULL)
				return TK_ENOMEM;
			c->ob = nb;
			c->ocap = ncap;
		}
	}
	memcpy(c->ob + c->olen, p, n);
	c->olen += n;
	return 0;
}

static void
set_events(derpdi_conn *c)
{
	unsigned ev = (c->rpaused ? 0 : TK_LOOP_READ) |
	    (c->want_write ? TK_LOOP_WRITE : 0);
	if (c->fd >= 0)
		tk_loop_fd_mod(c->s->loop, c->fd, ev);
}

void
derpdi_conn_flush(derpdi_conn *c)
{
	derpd_server *s = c->s;

	if (c->st == CS_CLOSED)
		return;
	if (c->fd < 0) { /* no socket: the bytes are gone */
		c->ooff = c->olen = 0;
		c->wooff = c->wolen = 0;
		if (c->close_after_write)
			derpdi_conn_close(c, CLOSE_HTTP_DONE);
		return;
	}
	bool progress = false, blocked = false;
	/* what goes on the wire: ob itself, or (WebSocket) ob framed into wob */
#define WB (c->ws ? c->wob : c->ob)
#define WOFF (*(c->ws ? &c->wooff : &c->ooff))
#define WLEN (*(c->ws ? &c->wolen : &c->olen))
	if (c->ws && derpdi_ws_wrap(c) != 0) {
		derpdi_conn_close(c, CLOSE_NOMEM);
		return;
	}
	while (WOFF < WLEN) {
		ssize_t n;
		if (c->tls) {
			if (c->tls_pending)
				n = gnutls_record_send(c->tls, NULL, 0);
			else {
				size_t want = WLEN - WOFF;
				n = gnutls_record_send(c->tls, WB + WOFF, want);
				if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
					c->tls_pending = want;
			}
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
				blocked = true;
				break;
			}
			c->tls_pending = 0;
			if (n < 0) {
				derpdi_conn_close(c, CLOSE_WRITE_ERROR);
				return;
			}
		} else {
			n = send(c->fd, WB + WOFF, WLEN - WOFF, MSG_NOSIGNAL);
			if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
				blocked = true;
				break;
			}
			if (n < 0) {
				derpdi_conn_close(c, CLOSE_WRITE_ERROR);
				return;
			}
		}
		WOFF += (size_t)n;
		progress = true;
		/* room again: pull more queued frames */
		if (WOFF == WLEN) {
			WOFF = WLEN = 0;
			derpdi_derp_fill(c);
			if (c->st == CS_CLOSED)
				return;
			if (c->ws && derpdi_ws_wrap(c) != 0) {
				derpdi_conn_close(c, CLOSE_NOMEM);
				return;
			}
		}
	}
#undef WB
#undef WOFF
#undef WLEN
	/* an idle connection keeps no output buffer (memory per idle client) */
	if (!blocked && !c->ws && !c->tls_pending && c->olen == 0 && c->ob) {
		tk_free(c->ob);
		c->ob = NULL;
		c->ocap = 0;
	}
	if (progress || !blocked)
		c->wblocked_ns = 0;
	if (!blocked && c->http_blocked && c->st == CS_HTTP) {
		/* answers written: parse the requests still buffered */
		c->http_blocked = false;
		derpdi_http_input(c);
		if (c->st == CS_INFO)
			derpdi_derp_input(c);
		if (c->st == CS_CLOSED)
			return;
		if (c->rpaused && !c->http_blocked && !c->close_after_write) {
			c->rpaused = false;
			set_events(c);
		}
		if (c->olen > c->ooff) {
			derpdi_conn_mark_dirty(c);
			return;
		}
	}
	if (blocked && c->wblocked_ns == 0)
		c->wblocked_ns = derpdi_now(s);
	if (blocked != c->want_write) {
		c->want_write = blocked;
		set_events(c);
	}
	if (!blocked && c->close_after_write && c->st != CS_LINGER) {
		/* Closing with unread input would reset the connection and
		 * could destroy the response in flight: shut the write side,
		 * then read until EOF (2 s at most). */
		shutdown(c->fd, SHUT_WR);
		c->st = CS_LINGER;
		c->deadline_ns = derpdi_now(s) + 2 * TK_NSEC_PER_SEC;
		c->ioff = c->ilen = 0;
		if (c->rpaused) {
			c->rpaused = false;
			set_events(c);
		}
	}
}

void
derpdi_conn_pause_for(derpdi_conn *c, uint64_t ns)
{
	c->rl_resume_ns = derpdi_now(c->s) + ns;
	if (!c->rpaused && c->fd >= 0) {
		c->rpaused = true;
		set_events(c);
	}
}

void
derpdi_conn_resume(derpdi_conn *c)
{
	if (c->rpaused && c->st != CS_CLOSED) {
		c->rpaused = false;
		set_events(c);
	}
}

/* Room in c->ib: 0, or TK_EMSGSIZE when the state's limit is reached. */
static int
ib_room(derpdi_conn *c, uint8_t **p, size_t *room)
{
	size_t limit = (c->st == CS_HTTP || c->st == CS_TLS) ? IB_HTTP_MAX :
							       IB_DERP_MAX;
	if (c->ioff > 0) {
		memmove(c->ib, c->ib + c->ioff, c->ilen - c->ioff);
		c->ilen -= c->ioff;
		c->ioff = 0;
	}
	if (c->icap - c->ilen < 16384 && c->icap < limit) {
		size_t ncap = c->icap ? 2 * c->icap : 16384;
		if (ncap > limit)
			ncap = limit;
		uint8_t *nb = tk_realloc(c->ib, ncap);
		if (nb == NULL)
			return TK_ENOMEM;
		c->ib = nb;
		c->icap = ncap;
	}
	if (c->icap == c->ilen)
		return TK_EMSGSIZE;
	*p = c->ib + c->ilen;
	*room = c->icap - c->ilen;
	return 0;
}

/* Nothing buffered after a read: give the input buffer back, so an idle
 * connection costs no buffer memory (the next read allocates again). */
static void
ib_release_if_empty(derpdi_conn *c)
{
	if (c->ib != NULL && c->ioff == c->ilen && !c->ws) {
		tk_free(c->ib);
		c->ib = NULL;
		c->icap = c->ilen = c->ioff = 0;
	}
}

static void
process(derpdi_conn *c)
{
	if (c->mesh) {
		derpdi_mesh_input(c);
		return;
	}
	if (c->st == CS_HTTP)
		derpdi_http_input(c);
	if (c->ws && c->st != CS_CLOSED) {
		derpdi_ws_decode(c);
		if (c->st == CS_CLOSED)
			return;
	}
	if (c->st == CS_INFO || c->st == CS_DERP)
		derpdi_derp_input(c);
}

static void
tls_handshake(derpdi_conn *c)
{
	int rc = gnutls_handshake(c->tls);
	if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED) {
		bool w = gnutls_record_get_direction(c->tls) == 1;
		if (w != c->want_write) {
			c->want_write = w;
			set_events(c);
		}
		return;
	}
	if (rc < 0) {
		c->s->st.tls_handshake_failures++;
		/* our own mesh links' failures matter; strangers' do not */
		TK_LOG_RL(&c->s->log_rl, c->s->clock,
		    c->mesh ? TK_LOG_WARN : TK_LOG_DEBUG, DERPD_LOG,
		    "%s: TLS handshake: %s", c->ipstr, gnutls_strerror(rc));
		derpdi_conn_close(c, CLOSE_READ_ERROR);
		return;
	}
	if (c->want_write) {
		c->want_write = false;
		set_events(c);
	}
	if (c->mesh) {
		derpdi_mesh_connected(c);
		return;
	}
	c->st = CS_HTTP;
}

#define WR_MAX (IB_DERP_MAX + 16)

/* A WebSocket connection: raw frames into c->wr, decoded into c->ib. */
static void
conn_read_ws(derpdi_conn *c)
{
	size_t budget = READ_BUDGET;

	for (;;) {
		derpdi_ws_decode(c);
		if (c->st == CS_CLOSED)
			return;
		if (c->st == CS_INFO || c->st == CS_DERP)
			derpdi_derp_input(c);
		if (c->st == CS_CLOSED || c->rl_resume_ns || budget == 0)
			return;
		if (c->wroff > 0) {
			memmove(c->wr, c->wr + c->wroff, c->wrlen - c->wroff);
			c->wrlen -= c->wroff;
			c->wroff = 0;
		}
		if (c->wrcap - c->wrlen < 16384 && c->wrcap < WR_MAX) {
			size_t ncap = TK_MIN(WR_MAX, c->wrcap ? 2 * c->wrcap : 16384);
			uint8_t *nb = tk_realloc(c->wr, ncap);
			if (nb == NULL) {
				derpdi_conn_close(c, CLOSE_NOMEM);
				return;
			}
			c->wr = nb;
			c->wrcap = ncap;
		}
		if (c->wrcap == c->wrlen) { /* DERP side full (admission) */
			c->rpaused = true;
			set_events(c);
			return;
		}
		ssize_t n;
		size_t room = c->wrcap - c->wrlen;
		if (c->tls) {
			n = gnutls_record_recv(c->tls, c->wr + c->wrlen, room);
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
				return;
			if (n == GNUTLS_E_PREMATURE_TERMINATION)
				n = 0;
			if (n < 0 && !gnutls_error_is_fatal((int)n))
				continue;
		} else {
			n = recv(c->fd, c->wr + c->wrlen, room, 0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				return;
		}
		if (n <= 0) {
			derpdi_conn_close(c, n == 0 ? CLOSE_EOF : CLOSE_READ_ERROR);
			return;
		}
		c->wrlen += (size_t)n;
		budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
	}
}

static void
conn_read(derpdi_conn *c)
{
	size_t budget = READ_BUDGET;

	if (c->ws) {
		conn_read_ws(c);
		return;
	}

	while (c->st != CS_CLOSED && c->st != CS_TLS && !c->rl_resume_ns &&
	    (budget > 0 || (c->tls && gnutls_record_check_pending(c->tls)))) {
		uint8_t *p;
		size_t room;
		if (c->st == CS_LINGER)
			c->ioff = c->ilen = 0; /* discard */
		else if (c->close_after_write || c->http_blocked) {
			c->rpaused = true; /* the answer first, then CS_LINGER */
			set_events(c);
			return;
		}
		int rc = ib_room(c, &p, &room);
		if (rc == TK_EMSGSIZE && c->st == CS_VERIFY) {
			c->rpaused = true; /* until the verdict */
			set_events(c);
			return;
		}
		if (rc != 0) {
			derpdi_conn_close(c, rc == TK_ENOMEM ? CLOSE_NOMEM :
			    CLOSE_BAD_HTTP);
			return;
		}
		ssize_t n;
		if (c->tls) {
			n = gnutls_record_recv(c->tls, p, room);
			if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
				ib_release_if_empty(c);
				return;
			}
			if (n == GNUTLS_E_PREMATURE_TERMINATION)
				n = 0;
			if (n < 0 && !gnutls_error_is_fatal((int)n))
				continue; /* a warning alert, a session ticket */
			if (n < 0) {
				derpdi_conn_close(c, CLOSE_READ_ERROR);
				return;
			}
		} else {
			n = recv(c->fd, p, room, 0);
			if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
				ib_release_if_empty(c);
				return;
			}
			if (n < 0) {
				derpdi_conn_close(c, CLOSE_READ_ERROR);
				return;
			}
		}
		if (n == 0) {
			derpdi_conn_close(c, c->st == CS_LINGER ? CLOSE_HTTP_DONE :
			    CLOSE_EOF);
			return;
		}
		c->ilen += (size_t)n;
		budget = (size_t)n >= budget ? 0 : budget - (size_t)n;
		process(c);
	}
}

static void
conn_io(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	derpdi_conn *c = arg;
	(void)loop;
	(void)fd;

	if (c->st == CS_MCONNECT) {
		int e = 0;
		socklen_t el = sizeof(e);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &el);
		if (e != 0) {
			TK_LOG_RL(&c->s->log_rl, c->s->clock, TK_LOG_INFO, DERPD_LOG,
			    "%s: connect: %s", c->ipstr, strerror(e));
			derpdi_conn_close(c, CLOSE_WRITE_ERROR);
			return;
		}
		if (c->want_write) {
			c->want_write = false;
			set_events(c);
		}
		if (c->tls) {
			c->st = CS_TLS;
		} else {
			derpdi_mesh_connected(c);
			return;
		}
	}
	if (c->st == CS_TLS) {
		tls_handshake(c);
		if (c->st == CS_TLS || c->st == CS_CLOSED)
			return;
	}
	if (ev & TK_LOOP_WRITE) {
		derpdi_conn_flush(c);
		if (c->st == CS_CLOSED)
			return;
	}
	if (ev & (TK_LOOP_READ | TK_LOOP_ERROR))
		conn_read(c);
	if (c->st != CS_CLOSED && c->olen > c->ooff)
		derpdi_conn_mark_dirty(c);
}

void
derpdi_server_idle(derpd_server *s)
{
	while (s->dirty) {
		derpdi_conn *c = s->dirty;
		s->dirty = c->dnext;
		c->dnext = NULL;
		c->dirty = false;
		if (c->st == CS_CLOSED)
			continue;
		derpdi_derp_fill(c);
		derpdi_conn_flush(c);
	}
	while (s->grave) {
		derpdi_conn *c = s->grave;
		s->grave = c->gnext;
		if (c->dirty) { /* still linked in a dirty list: cannot happen */
			TK_ASSERT(0);
		}
		conn_free(c);
	}
}

static void
before_sleep(tk_loop *loop, void *arg)
{
	(void)loop;
	derpdi_server_idle(arg);
}

static void
tick(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	derpd_server *s = arg;
	uint64_t now = derpdi_now(s);
	(void)loop;
	(void)t;

	if (s->accept_paused) {
		s->accept_paused = false;
		if (s->lfd >= 0)
			tk_loop_fd_mod(s->loop, s->lfd, TK_LOOP_READ);
		if (s->hfd >= 0)
			tk_loop_fd_mod(s->loop, s->hfd, TK_LOOP_READ);
	}
	for (derpdi_conn *c = s->conns, *n; c != NULL; c = n) {
		n = c->next;
		if (c->deadline_ns && now > c->deadline_ns) {
			derpdi_conn_close(c, c->st == CS_LINGER ? CLOSE_HTTP_DONE :
			    CLOSE_HANDSHAKE_TIMEOUT);
			continue;
		}
		uint64_t wt = c->can_mesh ?
		    (uint64_t)TK_DERP_MESH_WRITE_TIMEOUT_MS * TK_NSEC_PER_MSEC :
		    (c->st == CS_DERP ? s->write_timeout_ns : HTTP_TIMEOUT_NS);
		if (c->wblocked_ns && wt && now - c->wblocked_ns > wt) {
			derpdi_conn_close(c, CLOSE_WRITE_TIMEOUT);
			continue;
		}
		if (c->rl_resume_ns && now >= c->rl_resume_ns) {
			c->rl_resume_ns = 0;
			derpdi_conn_resume(c);
			derpdi_derp_input(c); /* what is already buffered */
			if (c->st == CS_CLOSED)
				continue;
			/* TLS may hold decrypted bytes epoll cannot see */
			if (c->tls && !c->rl_resume_ns &&
			    gnutls_record_check_pending(c->tls))
				conn_read(c);
			if (c->st == CS_CLOSED)
				continue;
		}
		derpdi_derp_tick(c, now);
	}
}

/* --- listeners --------------------------------------------------------------- */

static void
peer_addr(derpdi_conn *c)
{
	char host[INET6_ADDRSTRLEN] = "?";

	memset(c->ip16, 0, 16);
	if (c->peer.ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)&c->peer;
		c->ip16[10] = c->ip16[11] = 0xff;
		memcpy(c->ip16 + 12, &a->sin_addr, 4);
		c->port = ntohs(a->sin_port);
		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(c->ipstr, sizeof(c->ipstr), "%s:%u", host, c->port);
	} else if (c->peer.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)&c->peer;
		memcpy(c->ip16, &a->sin6_addr, 16);
		c->port = ntohs(a->sin6_port);
		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(c->ipstr, sizeof(c->ipstr), "[%s]:%u", host, c->port);
	}
}

static void
accept_on(derpd_server *s, int lfd, bool tls, bool plain_only)
{
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			TK_LOG_RL(&s->log_rl, s->clock, TK_LOG_WARN, DERPD_LOG,
			    "accept: %s", strerror(errno));
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* the connection stays queued and the listener
				 * readable: stop watching it until the next tick
				 * instead of spinning */
				tk_loop_fd_mod(s->loop, lfd, 0);
				s->accept_paused = true;
			}
			return;
		}
		s->st.accepts++;
		/* derper --accept-connection-limit: accept, then close */
		if (s->cfg.accept_limit > 0 &&
		    !tk_ratelimit_take(&s->accept_rl, derpdi_now(s))) {
			s->st.accepts_limited++;
			s->st.closes[CLOSE_ACCEPT_LIMIT]++;
			close(fd);
			continue;
		}
		int one = 1, idle = 600, uto = 15000;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		/* cmd/derper: TCP keepalive every 10 min, and unacknowledged
		 * data gives up after 15 s (TCP_USER_TIMEOUT), so a vanished
		 * peer does not hold its slot for the kernel's ~15 min */
		setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
		setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &idle, sizeof(idle));
		setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto));
		derpdi_conn *c = derpdi_conn_new(s, fd,
		    tls ? DERPDI_TLS_SERVER : DERPDI_TLS_NONE);
		if (c == NULL) {
			s->st.closes[CLOSE_NOMEM]++;
			close(fd);
			continue;
		}
		c->plain_only = plain_only;
		c->peer = ss;
		c->peerlen = sl;
		peer_addr(c);
		if (tk_loop_fd_add(s->loop, fd, TK_LOOP_READ, conn_io, c) != 0) {
			derpdi_conn_close(c, CLOSE_NOMEM);
			continue;
		}
	}
}

static void
on_accept(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	derpd_server *s = arg;
	(void)loop;
	(void)ev;
	if (fd == s->lfd)
		accept_on(s, fd, s->tls, false);
	else
		accept_on(s, fd, false, s->tls);
}

static void
on_stun(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	(void)loop;
	(void)fd;
	(void)ev;
	derpdi_stun_readable(arg);
}

/* "host:port", "[v6]:port", ":port" (host "" = any). */
static int
split_hostport(const char *s, char **host, uint16_t *port)
{
	const char *colon;
	const char *h = s;
	size_t hl;

	if (s[0] == '[') {
		const char *e = strchr(s, ']');
		if (e == NULL || e[1] != ':')
			return TK_EINVAL;
		h = s + 1;
		hl = (size_t)(e - h);
		colon = e + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return TK_EINVAL;
		hl = (size_t)(colon - s);
	}
	char *end;
	long p = strtol(colon + 1, &end, 10);
	if (*end || colon[1] == '\0' || p < 0 || p > 65535)
		return TK_EINVAL;
	*host = tk_strndup(h, hl);
	if (*host == NULL)
		return TK_ENOMEM;
	*port = (uint16_t)p;
	return 0;
}

static int
bind_sock(const char *host, uint16_t port, int type, int *fdout,
    uint16_t *bound, char *err, size_t errlen)
{
	struct addrinfo hints = { 0 }, *ai = NULL;
	char ps[8];
	int fd = -1, rc;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = type;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(ps, sizeof(ps), "%u", port);
	if ((rc = getaddrinfo(host[0] ? host : NULL, ps, &hints, &ai)) != 0) {
		errf(err, errlen, "cannot resolve '%s': %s", host,
		    gai_strerror(rc));
		return TK_EINVAL;
	}
	/* prefer IPv6 any (dual stack) when no host is given */
	struct addrinfo *use = ai;
	for (struct addrinfo *a = ai; a && !host[0]; a = a->ai_next)
		if (a->ai_family == AF_INET6)
			use = a;
	fd = socket(use->ai_family, use->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = tk_err_sys(errno);
		goto fail;
	}
	int one = 1, zero = 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (use->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, use->ai_addr, use->ai_addrlen) != 0 ||
	    (type == SOCK_STREAM && listen(fd, 1024) != 0)) {
		rc = tk_err_sys(errno);
		errf(err, errlen, "cannot listen on %s:%u (%s): %s",
		    host[0] ? host : "*", port,
		    type == SOCK_STREAM ? "tcp" : "udp", strerror(errno));
		goto fail;
	}
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	*bound = ntohs(ss.ss_family == AF_INET ?
		((struct sockaddr_in *)&ss)->sin_port :
		((struct sockaddr_in6 *)&ss)->sin6_port);
	*fdout = fd;
	freeaddrinfo(ai);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return rc ? rc : TK_EIO;
}

/* --- keys and files ----------------------------------------------------------- */

static char *
read_small_file(const char *path, size_t max, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	char *b = tk_malloc(max + 1);
	if (b == NULL) {
		fclose(f);
		return NULL;
	}
	size_t n = fread(b, 1, max, f);
	fclose(f);
	b[n] = '\0';
	*len = n;
	return b;
}

/* First "privkey:<64 hex>" anywhere in the text (derper's JSON config
 * {"PrivateKey":"privkey:..."} or a bare key). */
static int
find_privkey(const char *t, uint8_t out[32])
{
	const char *p = strstr(t, TK_PREFIX_PRIVATE);
	if (p == NULL || strlen(p) < 8 + 64)
		return TK_EPROTO;
	return tk_key_parse(out, TK_PREFIX_PRIVATE, p, 8 + 64);
}

static int
load_key(derpd_server *s, char *err, size_t errlen)
{
	int rc;

	if (s->cfg.state_dir != NULL) {
		static const char *const mig[] = {
			"CREATE TABLE IF NOT EXISTS derpd_meta(k TEXT PRIMARY KEY, v TEXT)",
		};
		tk_state_config sc = { .dir = s->cfg.state_dir,
			.name = "derpd.db",
			.migrations = mig,
			.n_migrations = 1 };
		tk_state *st;
		bool created = false;
		if ((rc = tk_state_open(&st, &sc, err, errlen)) != 0)
			return rc;
		rc = tk_state_key(st, "derp_server_key", s->priv, &created);
		tk_state_close(st);
		if (rc != 0) {
			errf(err, errlen, "server key in %s: %s",
			    s->cfg.state_dir, tk_strerror(rc));
			return rc;
		}
		if (created)
			TK_INFO(DERPD_LOG, "generated a new server key in %s/derpd.db",
			    s->cfg.state_dir);
	} else if (s->cfg.key_file != NULL) {
		size_t n;
		char *t = read_small_file(s->cfg.key_file, 4096, &n);
		if (t != NULL) {
			rc = find_privkey(t, s->priv);
			tk_secure_zero(t, n);
			tk_free(t);
			if (rc != 0) {
				errf(err, errlen, "%s: no privkey:<64 hex> in it",
				    s->cfg.key_file);
				return TK_EINVAL;
			}
		} else if (errno == ENOENT) {
			/* derper -c: create it once, 0600 */
			char kt[TK_KEY_TEXT_MAX], js[128];
			tk_key_generate(s->priv, s->rng);
			tk_key_format(kt, TK_PREFIX_PRIVATE, s->priv);
			int jl = snprintf(js, sizeof(js),
			    "{\"PrivateKey\":\"%s\"}\n", kt);
			int fd = open(s->cfg.key_file,
			    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			bool ok = fd >= 0 && write(fd, js, (size_t)jl) == jl;
			if (fd >= 0)
				close(fd);
			tk_secure_zero(kt, sizeof(kt));
			tk_secure_zero(js, sizeof(js));
			if (!ok) {
				errf(err, errlen, "cannot create %s: %s",
				    s->cfg.key_file, strerror(errno));
				return TK_EINVAL;
			}
			TK_INFO(DERPD_LOG, "generated a new server key in %s",
			    s->cfg.key_file);
		} else {
			errf(err, errlen, "cannot read %s: %s", s->cfg.key_file,
			    strerror(errno));
			return TK_EINVAL;
		}
	} else {
		tk_key_generate(s->priv, s->rng);
		TK_WARN(DERPD_LOG, "no --state or -c: the server key lives only "
				   "as long as this process");
	}
	if ((rc = tk_key_public(s->pub, s->priv)) != 0) {
		errf(err, errlen, "bad server private key");
		return rc;
	}
	tk_hex_encode(s->pubhex, s->pub, TK_DERP_KEY_LEN);
	return 0;
}

/* derper --rate-config (derpserver.go LoadRateConfig/UpdateRateLimits):
 * keys matched case-insensitively; rate 0 disables; the burst is raised
 * to 64 KiB + 32 at least. */
static int
load_rate_config(derpd_server *s, char *err, size_t errlen)
{
	json_error_t je;
	json_t *j = json_load_file(s->cfg.rate_config_file, 0, &je);
	uint64_t rate = 0, burst = 0;
	const char *k;
	json_t *v;

	if (j == NULL || !json_is_object(j)) {
		errf(err, errlen, "--rate-config %s: %s", s->cfg.rate_config_file,
		    j ? "not a JSON object" : je.text);
		json_decref(j);
		return TK_EINVAL;
	}
	json_object_foreach(j, k, v) {
		uint64_t *dst = strcasecmp(k, "PerClientRateLimitBytesPerSec") == 0 ?
		    &rate : strcasecmp(k, "PerClientRateBurstBytes") == 0 ? &burst :
									       NULL;
		if (dst == NULL)
			continue;
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			errf(err, errlen, "--rate-config %s: %s must be a "
			    "non-negative integer", s->cfg.rate_config_file, k);
			json_decref(j);
			return TK_EINVAL;
		}
		*dst = (uint64_t)json_integer_value(v);
	}
	json_decref(j);
	s->rate_bps = rate;
	s->rate_burst = rate ? TK_MAX(burst, (uint64_t)TK_DERP_MAX_PACKET_SIZE +
	    TK_DERP_KEY_LEN) : 0;
	TK_INFO(DERPD_LOG, "rate config applied: client-rate=%llu bytes/sec, "
	    "client-burst=%llu bytes", (unsigned long long)s->rate_bps,
	    (unsigned long long)s->rate_burst);
	return 0;
}

static void
reload(void *arg)
{
	derpd_server *s = arg;
	char err[256];
	if (s->cfg.rate_config_file && load_rate_config(s, err, sizeof(err)) != 0)
		TK_WARN(DERPD_LOG, "reload: %s (keeping the old rate config)", err);
}

void
derpd_server_reload(derpd_server *s)
{
	if (s && tk_loop_post(s->loop, reload, s) != 0)
		TK_WARN(DERPD_LOG, "reload: out of memory");
}

static int
load_mesh_key(derpd_server *s, char *err, size_t errlen)
{
	size_t n;
	char *t = read_small_file(s->cfg.mesh_psk_file, 256, &n);
	if (t == NULL) {
		errf(err, errlen, "cannot read --mesh-psk-file %s: %s",
		    s->cfg.mesh_psk_file, strerror(errno));
		return TK_EINVAL;
	}
	while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == '\r' ||
	    t[n - 1] == ' ' || t[n - 1] == '\t'))
		n--;
	int rc = n == 64 ? tk_hex_decode(s->mesh_key, 32, t, n) : TK_EINVAL;
	tk_secure_zero(t, n);
	tk_free(t);
	if (rc != 0) {
		errf(err, errlen, "--mesh-psk-file %s: want 64 hex digits",
		    s->cfg.mesh_psk_file);
		return TK_EINVAL;
	}
	s->has_mesh_key = true;
	return 0;
}

static int
load_allowlist(derpd_server *s, char *err, size_t errlen)
{
	FILE *f = fopen(s->cfg.allowlist_file, "r");
	char line[256];
	int lineno = 0;

	if (f == NULL) {
		errf(err, errlen, "cannot read --allowlist %s: %s",
		    s->cfg.allowlist_file, strerror(errno));
		return TK_EINVAL;
	}
	derpdi_map_init(&s->allow, s->hkey);
	s->has_allow = true;
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		char *p = line, *e;
		while (*p == ' ' || *p == '\t')
			p++;
		for (e = p; *e && *e != '\n' && *e != '\r' && *e != ' ' &&
		     *e != '#'; e++)
			;
		if (e == p)
			continue;
		uint8_t k[32];
		if (tk_key_parse(k, TK_PREFIX_NODE_PUB, p, (size_t)(e - p)) != 0) {
			errf(err, errlen, "--allowlist %s:%d: want nodekey:<64 hex>",
			    s->cfg.allowlist_file, lineno);
			fclose(f);
			return TK_EINVAL;
		}
		if (derpdi_map_put(&s->allow, k, (void *)1) != 0) {
			fclose(f);
			return TK_ENOMEM;
		}
	}
	fclose(f);
	return 0;
}

/*
 * derpserver.go initMetacert: a self-signed Ed25519 certificate whose CN is
 * "derpkey" + the server key in hex and whose serial number is the DERP
 * protocol version, sent after the real chain.  Over TLS 1.3 (where
 * certificates are encrypted) a Go client that finds it knows the server
 * key in advance and uses fast start: ClientInfo right behind the request,
 * no 101 round trip.
 */
static int
make_metacert(derpd_server *s, gnutls_x509_crt_t *out)
{
	gnutls_x509_privkey_t mk = NULL;
	gnutls_x509_crt_t mc = NULL;
	char cn[8 + 2 * TK_DERP_KEY_LEN + 1];
	unsigned char serial = TK_DERP_PROTOCOL_VERSION;
	time_t now = (time_t)(tk_clock_real_ns(s->clock) / TK_NSEC_PER_SEC);
	int rc;

	snprintf(cn, sizeof(cn), "%s%s", TK_DERP_METACERT_CN_PREFIX, s->pubhex);
	if ((rc = gnutls_x509_privkey_init(&mk)) < 0 ||
	    (rc = gnutls_x509_privkey_generate(mk, GNUTLS_PK_EDDSA_ED25519, 0,
		0)) < 0 ||
	    (rc = gnutls_x509_crt_init(&mc)) < 0 ||
	    (rc = gnutls_x509_crt_set_version(mc, 3)) < 0 ||
	    (rc = gnutls_x509_crt_set_serial(mc, &serial, 1)) < 0 ||
	    (rc = gnutls_x509_crt_set_dn_by_oid(mc, GNUTLS_OID_X520_COMMON_NAME,
		0, cn, (unsigned)strlen(cn))) < 0 ||
	    (rc = gnutls_x509_crt_set_issuer_dn_by_oid(mc,
		GNUTLS_OID_X520_COMMON_NAME, 0, cn, (unsigned)strlen(cn))) < 0 ||
	    (rc = gnutls_x509_crt_set_activation_time(mc, now - 30 * 86400)) < 0 ||
	    (rc = gnutls_x509_crt_set_expiration_time(mc, now + 30 * 86400)) < 0 ||
	    (rc = gnutls_x509_crt_set_basic_constraints(mc, 0, -1)) < 0 ||
	    (rc = gnutls_x509_crt_set_key(mc, mk)) < 0 ||
	    (rc = gnutls_x509_crt_sign2(mc, mc, mk, GNUTLS_DIG_UNKNOWN, 0)) < 0) {
		gnutls_x509_crt_deinit(mc);
		gnutls_x509_privkey_deinit(mk);
		return rc;
	}
	gnutls_x509_privkey_deinit(mk);
	*out = mc;
	return 0;
}

static int
retrieve_cert(gnutls_session_t ses, const gnutls_datum_t *req_ca_rdn,
    int nreqs, const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
    gnutls_pcert_st **pcert, unsigned int *pcert_length,
    gnutls_privkey_t *privkey)
{
	derpd_server *s = gnutls_session_get_ptr(ses);
	(void)req_ca_rdn;
	(void)nreqs;
	(void)pk_algos;
	(void)pk_algos_length;
	if (s == NULL || s->npcerts == 0)
		return -1;
	*pcert = s->pcerts;
	*pcert_length = s->npcerts;
	*privkey = s->pkey;
	return 0;
}

static int
load_chain_with_metacert(derpd_server *s, const char *crt, const char *key)
{
	gnutls_datum_t cd = { 0 }, kd = { 0 };
	gnutls_x509_crt_t *chain = NULL, *all = NULL;
	unsigned n = 0;
	gnutls_x509_privkey_t pk = NULL;
	int rc;

	if ((rc = gnutls_load_file(crt, &cd)) < 0 ||
	    (rc = gnutls_load_file(key, &kd)) < 0)
		goto out;
	if ((rc = gnutls_x509_crt_list_import2(&chain, &n, &cd,
	    GNUTLS_X509_FMT_PEM, 0)) < 0)
		goto out;
	if ((rc = gnutls_x509_privkey_init(&pk)) < 0 ||
	    (rc = gnutls_x509_privkey_import2(pk, &kd, GNUTLS_X509_FMT_PEM,
		NULL, 0)) < 0)
		goto out;
	if ((all = calloc(n + 1, sizeof(*all))) == NULL) {
		rc = GNUTLS_E_MEMORY_ERROR;
		goto out;
	}
	memcpy(all, chain, n * sizeof(*all));
	unsigned total = n;
	if ((rc = make_metacert(s, &all[n])) < 0)
		/* no meta certificate: clients take the 101 round trip */
		TK_WARN(DERPD_LOG, "meta certificate: %s", gnutls_strerror(rc));
	else
		total = n + 1;
	/* GnuTLS sorts a key's chain and drops certificates that are not
	 * part of it, the meta certificate included, so the chain is handed
	 * out by a retrieve callback instead. */
	if ((s->pcerts = calloc(total, sizeof(*s->pcerts))) == NULL) {
		rc = GNUTLS_E_MEMORY_ERROR;
		goto out_meta;
	}
	for (unsigned i = 0; i < total; i++) {
		if ((rc = gnutls_pcert_import_x509(&s->pcerts[i], all[i], 0)) < 0)
			goto out_meta;
		s->npcerts++;
	}
	if ((rc = gnutls_privkey_init(&s->pkey)) < 0 ||
	    (rc = gnutls_privkey_import_x509(s->pkey, pk,
		GNUTLS_PRIVKEY_IMPORT_COPY)) < 0)
		goto out_meta;
	gnutls_certificate_set_retrieve_function2(s->cred, retrieve_cert);
	rc = 0;
out_meta:
	if (total > n)
		gnutls_x509_crt_deinit(all[n]);
out:
	for (unsigned i = 0; i < n; i++)
		gnutls_x509_crt_deinit(chain[i]);
	gnutls_free(chain);
	free(all);
	if (pk)
		gnutls_x509_privkey_deinit(pk);
	gnutls_free(cd.data);
	if (kd.data) {
		tk_secure_zero(kd.data, kd.size);
		gnutls_free(kd.data);
	}
	return rc < 0 ? rc : 0;
}

static int
setup_tls(derpd_server *s, char *err, size_t errlen)
{
	char crt[1024], key[1024];
	int rc;

	if (s->cfg.hostname == NULL) {
		errf(err, errlen, "--certdir needs --hostname (files DIR/HOST.crt, DIR/HOST.key)");
		return TK_EINVAL;
	}
	snprintf(crt, sizeof(crt), "%s/%s.crt", s->cfg.cert_dir, s->cfg.hostname);
	snprintf(key, sizeof(key), "%s/%s.key", s->cfg.cert_dir, s->cfg.hostname);
	if ((rc = gnutls_certificate_allocate_credentials(&s->cred)) != 0)
		return tk_err_tls(rc);
	if ((rc = load_chain_with_metacert(s, crt, key)) != 0) {
		errf(err, errlen, "certificate %s / key %s: %s", crt, key,
		    gnutls_strerror(rc));
		return TK_EINVAL;
	}
	/* derper: TLS 1.2 minimum */
	rc = gnutls_priority_init(&s->prio,
	    "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1:-VERS-DTLS-ALL", NULL);
	if (rc != 0)
		return tk_err_tls(rc);
	s->tls = true;
	return 0;
}

/* --- instance API --------------------------------------------------------------- */

int
derpd_server_new(derpd_server **out, const derpd_server_config *cfg,
    char *err, size_t errlen)
{
	derpd_server *s;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (out == NULL || cfg == NULL)
		return TK_EINVAL;
	if ((s = tk_calloc(1, sizeof(*s))) == NULL)
		return TK_ENOMEM;
	s->cfg = *cfg;
	s->lfd = s->hfd = s->ufd = -1;
	s->clock = cfg->clock ? cfg->clock : tk_clock_system();
	s->rng = cfg->rng ? cfg->rng : tk_rng_system();
	tk_rng_fill(s->rng, s->hkey, sizeof(s->hkey));
	derpdi_map_init(&s->clients, s->hkey);
	derpdi_map_init(&s->gone_watch, s->hkey);
	derpdi_map_init(&s->mesh_fwd, s->hkey);
	derpdi_map_init(&s->allow, s->hkey);
	tk_ratelimit_init(&s->log_rl, 20, 2);
	if (cfg->accept_limit > 0)
		tk_ratelimit_init(&s->accept_rl,
		    cfg->accept_burst > 0 ? (uint32_t)cfg->accept_burst :
					    (uint32_t)cfg->accept_limit + 1,
		    cfg->accept_limit < 1 ? 1 : (uint32_t)cfg->accept_limit);
	s->write_timeout_ns = cfg->write_timeout_ms < 0 ? 0 :
	    (uint64_t)(cfg->write_timeout_ms ? cfg->write_timeout_ms :
					       TK_DERP_WRITE_TIMEOUT_MS) *
		TK_NSEC_PER_MSEC;
	if (cfg->verify_client_url != NULL &&
	    strncmp(cfg->verify_client_url, "http://", 7) != 0) {
		errf(err, errlen, "--verify-client-url: only http:// URLs are "
				  "supported, not '%s'", cfg->verify_client_url);
		rc = TK_EINVAL;
		goto fail;
	}
	if ((rc = load_key(s, err, errlen)) != 0)
		goto fail;
	if (cfg->verify_client_url &&
	    (rc = derpdi_verify_setup(s, err, errlen)) != 0)
		goto fail;
	if (cfg->mesh_psk_file && (rc = load_mesh_key(s, err, errlen)) != 0)
		goto fail;
	if (cfg->mesh_with && !s->has_mesh_key) {
		errf(err, errlen, "--mesh-with needs --mesh-psk-file");
		rc = TK_EINVAL;
		goto fail;
	}
	if (cfg->allowlist_file && (rc = load_allowlist(s, err, errlen)) != 0)
		goto fail;
	if (cfg->rate_config_file &&
	    (rc = load_rate_config(s, err, errlen)) != 0)
		goto fail;
	if (cfg->cert_dir && (rc = setup_tls(s, err, errlen)) != 0)
		goto fail;
	if ((rc = tk_loop_new(&s->loop, &(tk_loop_cfg){ .clock = s->clock })) != 0)
		goto fail;
	if (cfg->addr != NULL) {
		if (split_hostport(cfg->addr, &s->addr_host, &s->addr_port) != 0) {
			errf(err, errlen, "-a '%s': want HOST:PORT, [V6]:PORT or :PORT",
			    cfg->addr);
			rc = TK_EINVAL;
			goto fail;
		}
		if ((rc = bind_sock(s->addr_host, s->addr_port, SOCK_STREAM,
		    &s->lfd, &s->lport, err, errlen)) != 0)
			goto fail;
		if ((rc = tk_loop_fd_add(s->loop, s->lfd, TK_LOOP_READ, on_accept,
		    s)) != 0)
			goto fail;
	}
	const char *host = s->addr_host ? s->addr_host : "";
	if (cfg->http_port > 0) {
		if ((rc = bind_sock(host, (uint16_t)cfg->http_port, SOCK_STREAM,
		    &s->hfd, &s->hport, err, errlen)) != 0)
			goto fail;
		if ((rc = tk_loop_fd_add(s->loop, s->hfd, TK_LOOP_READ, on_accept,
		    s)) != 0)
			goto fail;
	}
	if (cfg->stun_port >= 0 && cfg->stun_port <= 65535) {
		if ((rc = bind_sock(cfg->stun_host ? cfg->stun_host : host,
		    (uint16_t)cfg->stun_port, SOCK_DGRAM, &s->ufd, &s->uport, err,
		    errlen)) != 0)
			goto fail;
		if ((rc = tk_loop_fd_add(s->loop, s->ufd, TK_LOOP_READ, on_stun,
		    s)) != 0)
			goto fail;
	}
	if ((rc = tk_loop_timer_new(s->loop, &s->tick, tick, s)) != 0 ||
	    (rc = tk_loop_timer_arm(s->tick, TICK_NS, TICK_NS)) != 0)
		goto fail;
	tk_loop_set_before_sleep(s->loop, before_sleep, s);
	if (cfg->mesh_with && (rc = derpdi_mesh_start(s, err, errlen)) != 0)
		goto fail;
	if (s->lfd >= 0 && !s->tls && s->lport == 443)
		TK_WARN(DERPD_LOG, "port 443 without TLS: clients expect HTTPS "
				   "there (add --certmode manual --certdir DIR "
				   "--hostname HOST)");
	s->started_ns = derpdi_now(s);
	char fp[TK_KEY_FP_MAX];
	tk_key_fingerprint(fp, TK_PREFIX_NODE_PUB, s->pub);
	TK_INFO(DERPD_LOG, "server key %s; %s%s port %u, STUN %u", fp,
	    s->lfd >= 0 ? "DERP over " : "no DERP listener",
	    s->lfd >= 0 ? (s->tls ? "HTTPS" : "HTTP") : "", s->lport, s->uport);
	*out = s;
	return 0;
fail:
	if (rc != 0 && err && errlen && !err[0])
		errf(err, errlen, "%s", tk_strerror(rc));
	derpd_server_free(s);
	return rc;
}

static void *
run(void *arg)
{
	derpd_server *s = arg;
	tk_loop_run(s->loop);
	return NULL;
}

int
derpd_server_start(derpd_server *s)
{
	int e;
	if (s == NULL || s->running)
		return TK_EINVAL;
	if ((e = pthread_create(&s->thread, NULL, run, s)) != 0)
		return tk_err_sys(e);
	s->running = true;
	return 0;
}

void
derpd_server_stop(derpd_server *s)
{
	if (s == NULL || !s->running)
		return;
	tk_loop_stop(s->loop);
	pthread_join(s->thread, NULL);
	s->running = false;
}

void
derpd_server_free(derpd_server *s)
{
	if (s == NULL)
		return;
	derpd_server_stop(s);
	derpdi_mesh_stop(s);
	while (s->conns)
		derpdi_conn_close(s->conns, CLOSE_SHUTDOWN);
	s->dirty = NULL;
	for (derpdi_conn *c = s->grave; c; c = c->gnext)
		c->dirty = false;
	derpdi_server_idle(s);
	tk_loop_timer_free(s->tick);
	if (s->loop) {
		if (s->lfd >= 0)
			tk_loop_fd_del(s->loop, s->lfd);
		if (s->hfd >= 0)
			tk_loop_fd_del(s->loop, s->hfd);
		if (s->ufd >= 0)
			tk_loop_fd_del(s->loop, s->ufd);
	}
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->hfd >= 0)
		close(s->hfd);
	if (s->ufd >= 0)
		close(s->ufd);
	tk_loop_free(s->loop);
	if (s->prio)
		gnutls_priority_deinit(s->prio);
	if (s->cred)
		gnutls_certificate_free_credentials(s->cred);
	for (unsigned i = 0; i < s->npcerts; i++)
		gnutls_pcert_deinit(&s->pcerts[i]);
	free(s->pcerts);
	if (s->pkey)
		gnutls_privkey_deinit(s->pkey);
	if (s->ccred)
		gnutls_certificate_free_credentials(s->ccred);
	/* sets and watcher lists are gone with their conns */
	derpdi_map_fini(&s->clients);
	derpdi_map_fini(&s->gone_watch);
	derpdi_map_fini(&s->mesh_fwd);
	derpdi_map_fini(&s->allow);
	tk_free(s->watchers);
	tk_free(s->addr_host);
	tk_secure_zero(s->priv, sizeof(s->priv));
	tk_secure_zero(s->mesh_key, sizeof(s->mesh_key));
	tk_free(s);
}

uint16_t
derpd_server_port(const derpd_server *s)
{
	return s->lport;
}

uint16_t
derpd_server_http_port(const derpd_server *s)
{
	return s->hport;
}

uint16_t
derpd_server_stun_port(const derpd_server *s)
{
	return s->uport;
}

void
derpd_server_public_key(const derpd_server *s, uint8_t out[32])
{
	memcpy(out, s->pub, 32);
}
