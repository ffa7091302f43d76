/*
 * req/rep: a context-based server whose aio callbacks only post to the
 * loop, and a loop-driven client on the req socket's NNG_OPT_RECVFD.
 */
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "tk/bus_rpc.h"
#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"

#include "tk/bus/v1/common.pb-c.h"

#include "bus_int.h"

/* ---- server ------------------------------------------------------------- */

/* CTX_DEFER: a handler deferred the reply (tk_rpc_server_defer) */
enum ctx_state { CTX_IDLE, CTX_RECV, CTX_SEND, CTX_DEFER };

struct rpc_ctx {
	tk_rpc_server *c_srv;
	nng_ctx c_ctx;
	nng_aio *c_aio;
	tk_loop_item c_item;
	enum ctx_state c_state;
	bool c_open;
	bool c_deferred; /* set by tk_rpc_server_defer during the handler */
	/* answered by tk_rpc_deferred_reply before its handler returned */
	bool c_early;
	int c_early_status;
	size_t c_early_len; /* of s_reply: what the handler adds is dropped */
	/* the request and its pipe, to recognise resends of a deferred one */
	int c_pipe;
	uint8_t c_req[256];
	size_t c_req_len;
};

struct method {
	struct method *m_next;
	char *m_name;
	tk_rpc_fn m_fn;
	void *m_arg;
};

struct tk_rpc_server {
	tk_loop *s_loop;
	nng_socket s_sock;
	bool s_sock_open;
	struct rpc_ctx *s_ctxs;
	unsigned s_nctx;
	struct method *s_methods;
	tk_buf s_reply;
	tk_ratelimit s_rl;
	struct rpc_ctx *s_cur; /* the context whose handler runs, or NULL */
	unsigned s_ndeferred;
};

/* nng thread: nothing but a post (allocation-free, cannot fail). */
static void
ctx_aio_cb(void *arg)
{
	struct rpc_ctx *c = arg;

	tk_loop_post_item(c->c_srv->s_loop, &c->c_item);
}

static void
ctx_recv(struct rpc_ctx *c)
{
	c->c_state = CTX_RECV;
	nng_ctx_recv(c->c_ctx, c->c_aio);
}

int
tk_rpc_reply_pack(nng_msg **out, int status, const char *error,
    const uint8_t *body, size_t len)
{
	Tk__Bus__V1__Reply r = TK__BUS__V1__REPLY__INIT;

	if (status != 0) {
		r.has_status = true;
		r.status = (uint32_t)status;
		r.error = (char *)(error != NULL && error[0] != '\0'
			? error
			: tk_strerror(status));
	}
	if (len > 0) {
		r.has_body = true;
		r.body.data = (uint8_t *)body;
		r.body.len = len;
	}
	return tki_pb_pack_msg(&r.base, out);
}

static struct method *
method_find(tk_rpc_server *s, const char *name)
{
	for (struct method *m = s->s_methods; m != NULL; m = m->m_next)
		if (strcmp(m->m_name, name) == 0)
			return m;
	return NULL;
}

/* Builds the reply to one request; consumes req.  NULL on ENOMEM or when
 * the handler deferred its reply (c->c_deferred). */
static nng_msg *
handle(struct rpc_ctx *c, nng_msg *req)
{
	tk_rpc_server *s = c->c_srv;
	Tk__Bus__V1__Request *r;
	struct method *m;
	nng_msg *out = NULL;
	const char *text;
	int rv;

	r = tk__bus__v1__request__unpack(&tki_pb_alloc, nng_msg_len(req),
	    nng_msg_body(req));
	nng_msg_free(req);
	tk_buf_reset(&s->s_reply);
	if (r == NULL || r->method == NULL) {
		TK_LOG_RL(&s->s_rl, NULL, TK_LOG_WARN, TKI_BUS_LOG,
		    "rpc: malformed request dropped");
		rv = TK_EPROTO;
		text = "malformed request";
	} else if ((m = method_find(s, r->method)) == NULL) {
		rv = TK_ENOENT;
		if (tk_buf_printf(&s->s_reply, "unknown method \"%.64s\"",
			r->method) == 0)
			(void)tk_buf_cstr(&s->s_reply, &text);
		else
			text = "unknown method";
	} else {
		s->s_cur = c;
		rv = m->m_fn(m->m_arg, r->has_body ? r->body.data : NULL,
		    r->has_body ? r->body.len : 0, &s->s_reply);
		s->s_cur = NULL;
		text = NULL;
		if (c->c_early) { /* deferred and answered at once */
			c->c_early = false;
			rv = c->c_early_status;
			s->s_reply.len = c->c_early_len;
		}
		if (c->c_deferred) {
			tk__bus__v1__request__free_unpacked(r, &tki_pb_alloc);
			return NULL;
		}
		if (rv != 0 && s->s_reply.len > 0)
			(void)tk_buf_cstr(&s->s_reply, &text);
	}
	if (rv == 0)
		rv = tk_rpc_reply_pack(&out, 0, NULL, s->s_reply.data,
		    s->s_reply.len);
	else
		rv = tk_rpc_reply_pack(&out, rv, text, NULL, 0);
	if (r != NULL)
		tk__bus__v1__request__free_unpacked(r, &tki_pb_alloc);
	return rv == 0 ? out : NULL;
}

/*
 * Is msg a resend (the req side resends after NNG_OPT_REQ_RESENDTIME) of a
 * request whose reply is deferred: the same bytes from the same pipe (a
 * req socket has one request in flight)?  Then the deferred context
 * answers it.  Otherwise remembers msg in c for later comparisons.
 */
static bool
deferred_resend(struct rpc_ctx *c, nng_msg *msg)
{
	tk_rpc_server *s = c->c_srv;
	size_t n = nng_msg_len(msg);

	c->c_pipe = nng_pipe_id(nng_msg_get_pipe(msg));
	c->c_req_len = 0;
	if (n > sizeof(c->c_req))
		return false; /* not deferrable-sized: never compared */
	for (unsigned i = 0; i < s->s_nctx; i++) {
		struct rpc_ctx *o = &s->s_ctxs[i];
		if (o != c && o->c_state == CTX_DEFER && o->c_pipe == c->c_pipe &&
		    o->c_req_len == n && memcmp(o->c_req, nng_msg_body(msg), n) == 0)
			return true;
	}
	memcpy(c->c_req, nng_msg_body(msg), n);
	c->c_req_len = n;
	return false;
}

/* Loop thread: one step of a context's recv -> handle -> send cycle. */
static void
ctx_run(void *arg)
{
	struct rpc_ctx *c = arg;
	int rv = nng_aio_result(c->c_aio);

	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED) {
		nng_msg *m = nng_aio_get_msg(c->c_aio);

		if (c->c_state == CTX_SEND && m != NULL) {
			nng_aio_set_msg(c->c_aio, NULL);
			nng_msg_free(m);
		}
		c->c_state = CTX_IDLE;
		return;
	}
	switch (c->c_state) {
	case CTX_RECV: {
		nng_msg *reply;

		if (rv != 0) {
			TK_LOG_RL(&c->c_srv->s_rl, NULL, TK_LOG_WARN,
			    TKI_BUS_LOG, "rpc receive: %s", nng_strerror(rv));
			ctx_recv(c);
			return;
		}
		if (deferred_resend(c, nng_aio_get_msg(c->c_aio))) {
			nng_msg_free(nng_aio_get_msg(c->c_aio));
			nng_aio_set_msg(c->c_aio, NULL);
			ctx_recv(c);
			return;
		}
		reply = handle(c, nng_aio_get_msg(c->c_aio));
		nng_aio_set_msg(c->c_aio, reply);
		if (reply == NULL && c->c_deferred) {
			c->c_state = CTX_DEFER;
			return;
		}
		if (reply == NULL) { /* out of memory: the client times out */
			ctx_recv(c);
			return;
		}
		c->c_state = CTX_SEND;
		nng_ctx_send(c->c_ctx, c->c_aio);
		return;
	}
	case CTX_SEND:
		if (rv != 0) {
			nng_msg *m = nng_aio_get_msg(c->c_aio);

			nng_aio_set_msg(c->c_aio, NULL);
			nng_msg_free(m);
		}
		ctx_recv(c);
		return;
	case CTX_IDLE:
	case CTX_DEFER:
		return;
	}
}

tk_rpc_deferred *
tk_rpc_server_defer(tk_rpc_server *s)
{
	struct rpc_ctx *c = s != NULL ? s->s_cur : NULL;

	/* two contexts stay free for requests that answer at once */
	if (c == NULL || c->c_deferred || s->s_ndeferred + 3 > s->s_nctx)
		return NULL;
	c->c_deferred = true;
	s->s_ndeferred++;
	return (tk_rpc_deferred *)c;
}

void
tk_rpc_deferred_reply(tk_rpc_deferred *d, int status, const char *error,
    const uint8_t *body, size_t len)
{
	struct rpc_ctx *c = (struct rpc_ctx *)d;
	nng_msg *out = NULL;

	if (c == NULL || !c->c_deferred)
		return;
	c->c_deferred = false;
	c->c_srv->s_ndeferred--;
	if (c->c_srv->s_cur == c) {
		/* still inside the handler: its reply, as if returned */
		tk_buf *b = &c->c_srv->s_reply;
		tk_buf_reset(b);
		c->c_early = true;
		c->c_early_status = status;
		if (status != 0 && error != NULL)
			(void)tk_buf_append_str(b, error);
		else if (status == 0 && len > 0)
			(void)tk_buf_append(b, body, len);
		c->c_early_len = b->len;
		return;
	}
	if (c->c_state != CTX_DEFER) /* the server is closing */
		return;
	if (tk_rpc_reply_pack(&out, status, error, status == 0 ? body : NULL,
		status == 0 ? len : 0) != 0) {
		ctx_recv(c); /* out of memory: the client times out */
		return;
	}
	nng_aio_set_msg(c->c_aio, out);
	c->c_state = CTX_SEND;
	nng_ctx_send(c->c_ctx, c->c_aio);
}

int
tk_rpc_server_new(tk_rpc_server **out, const tk_rpc_server_cfg *cfg)
{
	tk_rpc_server *s;
	int rv;

	if (out == NULL || cfg == NULL || cfg->loop == NULL || cfg->url == NULL)
		return TK_EINVAL;
	if ((s = tk_calloc(1, sizeof(*s))) == NULL)
		return TK_ENOMEM;
	s->s_loop = cfg->loop;
	s->s_nctx = cfg->nctx ? cfg->nctx : 4;
	tk_buf_init_limit(&s->s_reply, TK_BUS_CTRL_MAX);
	tk_ratelimit_init(&s->s_rl, 5, 1);
	if ((s->s_ctxs = tk_calloc(s->s_nctx, sizeof(*s->s_ctxs))) == NULL) {
		rv = TK_ENOMEM;
		goto fail;
	}
	if ((rv = tk_bus_open(&s->s_sock, TK_BUS_REP)) != 0)
		goto fail;
	s->s_sock_open = true;
	for (unsigned i = 0; i < s->s_nctx; i++) {
		struct rpc_ctx *c = &s->s_ctxs[i];

		c->c_srv = s;
		tk_loop_item_init(&c->c_item, ctx_run, c);
		if ((rv = tk_err_nng(nng_aio_alloc(&c->c_aio, ctx_aio_cb, c))) !=
		    0)
			goto fail;
		if ((rv = tk_err_nng(nng_ctx_open(&c->c_ctx, s->s_sock))) != 0)
			goto fail;
		c->c_open = true;
	}
	if ((rv = tk_bus_listen(s->s_sock, cfg->url, cfg->tls, NULL)) != 0)
		goto fail;
	for (unsigned i = 0; i < s->s_nctx; i++)
		ctx_recv(&s->s_ctxs[i]);
	*out = s;
	return 0;
fail:
	tk_rpc_server_free(s);
	return rv;
}

int
tk_rpc_server_add(tk_rpc_server *s, const char *method, tk_rpc_fn fn,
    void *arg)
{
	struct method *m;

	if (s == NULL || method == NULL || method[0] == '\0' || fn == NULL)
		return TK_EINVAL;
	if (method_find(s, method) != NULL)
		return TK_EEXIST;
	if ((m = tk_calloc(1, sizeof(*m))) == NULL)
		return TK_ENOMEM;
	if ((m->m_name = tk_strdup(method)) == NULL) {
		tk_free(m);
		return TK_ENOMEM;
	}
	m->m_fn = fn;
	m->m_arg = arg;
	m->m_next = s->s_methods;
	s->s_methods = m;
	return 0;
}

int
tk_rpc_server_remove(tk_rpc_server *s, const char *method)
{
	for (struct method **pp = &s->s_methods; *pp != NULL;
	     pp = &(*pp)->m_next) {
		struct method *m = *pp;

		if (strcmp(m->m_name, method) == 0) {
			*pp = m->m_next;
			tk_free(m->m_name);
			tk_free(m);
			return 0;
		}
	}
	return TK_ENOENT;
}

void
tk_rpc_server_free(tk_rpc_server *s)
{
	if (s == NULL)
		return;
	for (unsigned i = 0; s->s_ctxs != NULL && i < s->s_nctx; i++) {
		struct rpc_ctx *c = &s->s_ctxs[i];

		if (c->c_aio == NULL)
			continue;
		/*
		 * After nng_aio_stop no callback runs any more; what the last
		 * one posted is withdrawn from the loop.
		 */
		nng_aio_stop(c->c_aio);
		tk_loop_post_cancel(s->s_loop, &c->c_item);
		if (nng_aio_get_msg(c->c_aio) != NULL) {
			nng_msg_free(nng_aio_get_msg(c->c_aio));
			nng_aio_set_msg(c->c_aio, NULL);
		}
		if (c->c_open)
			nng_ctx_close(c->c_ctx);
		nng_aio_free(c->c_aio);
	}
	if (s->s_sock_open)
		nng_close(s->s_sock);
	while (s->s_methods != NULL)
		tk_rpc_server_remove(s, s->s_methods->m_name);
	tk_free(s->s_ctxs);
	tk_buf_fini(&s->s_reply);
	tk_free(s);
}

/* ---- client ------------------------------------------------------------- */

struct tk_rpc_client {
	tk_loop *c_loop;
	nng_socket c_sock;
	bool c_sock_open;
	tk_bus_reader *c_reader;
	tk_loop_timer *c_deadline;
	tk_loop_timer *c_retry;
	nng_msg *c_pending; /* request waiting for a connected server */
	bool c_busy;
	tk_rpc_done_fn c_done;
	void *c_arg;
	char *c_name;
};

static void
client_reset(tk_rpc_client *c)
{
	c->c_busy = false;
	tk_loop_timer_cancel(c->c_deadline);
	tk_loop_timer_cancel(c->c_retry);
	if (c->c_pending != NULL) {
		nng_msg_free(c->c_pending);
		c->c_pending = NULL;
	}
}

static void
complete(tk_rpc_client *c, int status, const char *error,
    const uint8_t *body, size_t len)
{
	tk_rpc_done_fn done = c->c_done;
	void *arg = c->c_arg;

	client_reset(c);
	done(arg, status, error, body, len); /* may start the next call */
}

static void
try_send(tk_rpc_client *c)
{
	int rv = tk_bus_send(c->c_sock, c->c_pending, false);

	if (rv == 0) {
		c->c_pending = NULL;
		return;
	}
	if (rv == TK_EAGAIN) { /* no server connected yet */
		tk_loop_timer_arm(c->c_retry, 10 * TK_NSEC_PER_MSEC, 0);
		return;
	}
	complete(c, rv, "request could not be sent", NULL, 0);
}

static void
retry_cb(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	tk_rpc_client *c = arg;

	(void)loop;
	(void)t;
	if (c->c_busy && c->c_pending != NULL)
		try_send(c);
}

static void
deadline_cb(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	tk_rpc_client *c = arg;

	(void)loop;
	(void)t;
	if (c->c_busy)
		complete(c, TK_ETIMEDOUT, "no reply in time", NULL, 0);
}

static void
reply_cb(void *arg, nng_msg *msg)
{
	tk_rpc_client *c = arg;
	Tk__Bus__V1__Reply *r;

	if (!c->c_busy) { /* reply to an abandoned call */
		nng_msg_free(msg);
		return;
	}
	r = tk__bus__v1__reply__unpack(&tki_pb_alloc, nng_msg_len(msg),
	    nng_msg_body(msg));
	nng_msg_free(msg);
	if (r == NULL) {
		complete(c, TK_EPROTO, "malformed reply", NULL, 0);
		return;
	}
	if (r->has_status && r->status != 0)
		complete(c, (int)r->status, r->error ? r->error : "", NULL, 0);
	else
		complete(c, 0, NULL, r->has_body ? r->body.data : NULL,
		    r->has_body ? r->body.len : 0);
	tk__bus__v1__reply__free_unpacked(r, &tki_pb_alloc);
}

int
tk_rpc_client_new(tk_rpc_client **out, const tk_rpc_client_cfg *cfg)
{
	tk_rpc_client *c;
	int rv;

	if (out == NULL || cfg == NULL || cfg->loop == NULL || cfg->url == NULL)
		return TK_EINVAL;
	if ((c = tk_calloc(1, sizeof(*c))) == NULL)
		return TK_ENOMEM;
	c->c_loop = cfg->loop;
	if (cfg->name != NULL && (c->c_name = tk_strdup(cfg->name)) == NULL) {
		rv = TK_ENOMEM;
		goto fail;
	}
	if ((rv = tk_bus_open(&c->c_sock, TK_BUS_REQ)) != 0)
		goto fail;
	c->c_sock_open = true;
	/* Our own deadline decides; nng's resend covers a restarted server. */
	if ((rv = tk_err_nng(nng_socket_set_ms(c->c_sock,
		 NNG_OPT_REQ_RESENDTIME, 1000))) != 0 ||
	    (rv = tk_loop_timer_new(c->c_loop, &c->c_deadline, deadline_cb,
		 c)) != 0 ||
	    (rv = tk_loop_timer_new(c->c_loop, &c->c_retry, retry_cb, c)) !=
		0 ||
	    (rv = tk_bus_reader_new(&c->c_reader, c->c_loop, c->c_sock,
		 reply_cb, c)) != 0 ||
	    (rv = tk_bus_dial(c->c_sock, cfg->url, cfg->tls, 0, NULL)) != 0)
		goto fail;
	*out = c;
	return 0;
fail:
	tk_rpc_client_free(c);
	return rv;
}

static int
request_pack(nng_msg **out, const char *method, const char *client,
    const uint8_t *body, size_t len)
{
	Tk__Bus__V1__Request r = TK__BUS__V1__REQUEST__INIT;

	r.method = (char *)method;
	r.client = (char *)client;
	if (len > 0) {
		r.has_body = true;
		r.body.data = (uint8_t *)body;
		r.body.len = len;
	}
	return tki_pb_pack_msg(&r.base, out);
}

int
tk_rpc_call(tk_rpc_client *c, const char *method, const uint8_t *body,
    size_t len, uint64_t timeout_ns, tk_rpc_done_fn done, void *arg)
{
	int rv;

	if (c == NULL || method == NULL || done == NULL ||
	    (body == NULL && len != 0))
		return TK_EINVAL;
	if (c->c_busy)
		return TK_ESTATE;
	if ((rv = request_pack(&c->c_pending, method, c->c_name, body, len)) !=
	    0)
		return rv;
	if ((rv = tk_loop_timer_arm(c->c_deadline, timeout_ns, 0)) != 0) {
		client_reset(c);
		return rv;
	}
	c->c_busy = true;
	c->c_done = done;
	c->c_arg = arg;
	rv = tk_bus_send(c->c_sock, c->c_pending, false);
	if (rv == 0) {
		c->c_pending = NULL;
	} else if (rv == TK_EAGAIN) {
		tk_loop_timer_arm(c->c_retry, 10 * TK_NSEC_PER_MSEC, 0);
	} else {
		client_reset(c);
		return rv;
	}
	return 0;
}

void
tk_rpc_cancel(tk_rpc_client *c)
{
	if (c != NULL)
		client_reset(c);
}

void
tk_rpc_client_free(tk_rpc_client *c)
{
	if (c == NULL)
		return;
	if (c->c_pending != NULL)
		nng_msg_free(c->c_pending);
	tk_bus_reader_free(c->c_reader); /* before the socket goes */
	if (c->c_sock_open)
		nng_close(c->c_sock);
	tk_loop_timer_free(c->c_deadline);
	tk_loop_timer_free(c->c_retry);
	tk_free(c->c_name);
	tk_free(c);
}

int
tk_rpc_call_sync(const char *url, const tk_bus_tls *tls, const char *method,
    const uint8_t *body, size_t len, int timeout_ms, tk_buf *reply)
{
	nng_socket s;
	nng_msg *m = NULL;
	Tk__Bus__V1__Reply *r = NULL;
	uint64_t t0 = tk_clock_mono_ns(NULL), spent_ms;
	int rv;

	if (url == NULL || method == NULL || reply == NULL || timeout_ms <= 0)
		return TK_EINVAL;
	if ((rv = tk_bus_open(&s, TK_BUS_REQ)) != 0)
		return rv;
	if ((rv = tk_err_nng(nng_socket_set_ms(s, NNG_OPT_SENDTIMEO,
		 timeout_ms))) != 0 ||
	    (rv = tk_bus_dial(s, url, tls, 0, NULL)) != 0 ||
	    (rv = request_pack(&m, method, "sync", body, len)) != 0)
		goto out;
	if ((rv = tk_bus_send(s, m, true)) != 0)
		goto out;
	m = NULL;
	spent_ms = (tk_clock_mono_ns(NULL) - t0) / TK_NSEC_PER_MSEC;
	if (spent_ms >= (uint64_t)timeout_ms) {
		rv = TK_ETIMEDOUT;
		goto out;
	}
	if ((rv = tk_err_nng(nng_socket_set_ms(s, NNG_OPT_RECVTIMEO,
		 (nng_duration)(timeout_ms - (int)spent_ms)))) != 0 ||
	    (rv = tk_err_nng(nng_recvmsg(s, &m, 0))) != 0)
		goto out;
	r = tk__bus__v1__reply__unpack(&tki_pb_alloc, nng_msg_len(m),
	    nng_msg_body(m));
	if (r == NULL) {
		rv = TK_EPROTO;
		goto out;
	}
	tk_buf_reset(reply);
	if (r->has_status && r->status != 0) {
		rv = (int)r->status;
		if (r->error != NULL)
			(void)tk_buf_append_str(reply, r->error);
	} else if (r->has_body) {
		rv = tk_buf_append(reply, r->body.data, r->body.len);
	}
out:
	if (rv == tk_err_nng(NNG_ETIMEDOUT))
		rv = TK_ETIMEDOUT;
	if (r != NULL)
		tk__bus__v1__reply__free_unpacked(r, &tki_pb_alloc);
	if (m != NULL)
		nng_msg_free(m);
	nng_close(s);
	return rv;
}
