/*
 * tailkit_nif: the Elixir binding's NIF over libtailkit's native API
 * (tailkit.h).  Thin: every call maps to one tailkit_* call; waiting is the
 * BEAM's (enif_select on listener and pending-dial descriptors), never a
 * scheduler thread blocked in accept or dial.  Only tailkit_wait_running
 * (bounded by its timeout) and tailkit_free (joins the node's threads) run
 * on dirty I/O schedulers.  See ../README.md for why a NIF and not a port.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <erl_nif.h>
#include <jansson.h>

#include "tailkit.h"

/* The node: calls take the lock shared; close takes it exclusive, so no
 * call is inside tailkit_* when tailkit_free runs (tailkit.h's rule). */
typedef struct {
	tailkit *tk;
	ErlNifRWLock *lk;
} node_res;

/* A descriptor the BEAM waits on (listener, pending dial).  It is closed
 * only from the stop callback, once the BEAM's poller let go of it. */
typedef struct {
	int fd;
	int sel_fd; /* the descriptor given to enif_select (pending: a dup) */
} fd_res;

static ErlNifResourceType *node_rt, *fd_rt;
static ERL_NIF_TERM a_ok, a_error, a_wait, a_nil, a_true, a_false, a_undefined;

static const struct {
	int e;
	const char *name;
} errnames[] = {
	{ EINVAL, "einval" }, { EBADF, "ebadf" }, { EBUSY, "ebusy" },
	{ ENOTCONN, "enotconn" }, { EADDRINUSE, "eaddrinuse" },
	{ EMSGSIZE, "emsgsize" }, { ETIMEDOUT, "etimedout" },
	{ ECANCELED, "ecanceled" }, { EEXIST, "eexist" },
	{ EHOSTUNREACH, "ehostunreach" }, { ECONNREFUSED, "econnrefused" },
	{ ECONNRESET, "econnreset" }, { ENOENT, "enoent" }, { ERANGE, "erange" },
	{ EPROTO, "eproto" }, { ENOMEM, "enomem" }, { EAGAIN, "eagain" },
};

/* {:error, {:einval, "message"}} from a negative errno return */
static ERL_NIF_TERM
err(ErlNifEnv *env, int rv)
{
	char msg[1024];
	ERL_NIF_TERM code = enif_make_int(env, -rv), bin;
	size_t i, n;

	for (i = 0; i < sizeof(errnames) / sizeof(errnames[0]); i++)
		if (errnames[i].e == -rv)
			code = enif_make_atom(env, errnames[i].name);
	tailkit_errmsg(msg, sizeof(msg));
	if (msg[0] == '\0')
		snprintf(msg, sizeof(msg), "%s", strerror(-rv));
	n = strlen(msg);
	memcpy(enif_make_new_binary(env, n, &bin), msg, n);
	return enif_make_tuple2(env, a_error, enif_make_tuple2(env, code, bin));
}

static ERL_NIF_TERM
str(ErlNifEnv *env, const char *s)
{
	ERL_NIF_TERM t;
	size_t n = strlen(s);

	memcpy(enif_make_new_binary(env, n, &t), s, n);
	return t;
}

static ERL_NIF_TERM
ok(ErlNifEnv *env, ERL_NIF_TERM v)
{
	return enif_make_tuple2(env, a_ok, v);
}

/* A binary argument as a C string (into buf); 0 if not a binary or too long. */
static int
cstr(ErlNifEnv *env, ERL_NIF_TERM t, char *buf, size_t len)
{
	ErlNifBinary b;

	if (!enif_inspect_binary(env, t, &b) || b.size >= len ||
	    memchr(b.data, 0, b.size) != NULL)
		return 0;
	memcpy(buf, b.data, b.size);
	buf[b.size] = '\0';
	return 1;
}

/* ---- node resource ------------------------------------------------- */

static void
node_dtor(ErlNifEnv *env, void *obj)
{
	node_res *n = obj;

	(void)env;
	if (n->tk != NULL) /* garbage-collected without close/1 */
		tailkit_free(n->tk);
	if (n->lk != NULL)
		enif_rwlock_destroy(n->lk);
}

/* The node locked shared, or NULL (the caller returns badarg/ebadf). */
static node_res *
node_get(ErlNifEnv *env, ERL_NIF_TERM t)
{
	node_res *n;

	if (!enif_get_resource(env, t, node_rt, (void **)&n))
		return NULL;
	enif_rwlock_rlock(n->lk);
	if (n->tk == NULL) {
		enif_rwlock_runlock(n->lk);
		return NULL;
	}
	return n;
}

static ERL_NIF_TERM
closed(ErlNifEnv *env, ERL_NIF_TERM t)
{
	node_res *n;

	if (!enif_get_resource(env, t, node_rt, (void **)&n))
		return enif_make_badarg(env);
	return enif_make_tuple2(env, a_error, enif_make_tuple2(env,
	    enif_make_atom(env, "ebadf"), str(env, "the node is closed")));
}

#define NODE(n, argv)                                     \
	node_res *n = node_get(env, (argv)[0]);           \
	if (n == NULL)                                    \
		return closed(env, (argv)[0])
#define UNLOCK(n) enif_rwlock_runlock((n)->lk)

static ERL_NIF_TERM
nif_new(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	node_res *n;
	tailkit *tk;
	ERL_NIF_TERM t;
	int rv;

	(void)argc;
	(void)argv;
	if ((rv = tailkit_new(&tk)) < 0)
		return err(env, rv);
	n = enif_alloc_resource(node_rt, sizeof(*n));
	n->tk = tk;
	n->lk = enif_rwlock_create("tailkit_node");
	t = enif_make_resource(env, n);
	enif_release_resource(n);
	return ok(env, t);
}

static ERL_NIF_TERM
nif_set(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	char key[64], val[4096];
	int rv, isnil;

	(void)argc;
	isnil = enif_is_identical(argv[2], a_nil);
	if (!cstr(env, argv[1], key, sizeof(key)) ||
	    (!isnil && !cstr(env, argv[2], val, sizeof(val))))
		return enif_make_badarg(env);
	NODE(n, argv);
	rv = tailkit_set(n->tk, key, isnil ? NULL : val);
	UNLOCK(n);
	return rv < 0 ? err(env, rv) : a_ok;
}

/* :ok or the error of fn(tk) */
static ERL_NIF_TERM
node_do(ErlNifEnv *env, const ERL_NIF_TERM argv[], int (*fn)(tailkit *))
{
	int rv;

	NODE(n, argv);
	rv = fn(n->tk);
	UNLOCK(n);
	return rv < 0 ? err(env, rv) : a_ok;
}

static ERL_NIF_TERM
nif_start(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc;
	return node_do(env, argv, tailkit_start);
}

/* dirty I/O: blocks up to ms */
static ERL_NIF_TERM
nif_wait_running(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	int ms, rv;

	(void)argc;
	if (!enif_get_int(env, argv[1], &ms) || ms < 0)
		return enif_make_badarg(env);
	NODE(n, argv);
	rv = tailkit_wait_running(n->tk, ms);
	UNLOCK(n);
	return rv < 0 ? err(env, rv) : a_ok;
}

static ERL_NIF_TERM
nif_stop(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	(void)argc;
	return node_do(env, argv, tailkit_stop);
}

/* dirty I/O: stops the node (cancelling a wait_running elsewhere), waits
 * for every other call to return, frees it.  Idempotent. */
static ERL_NIF_TERM
nif_close(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	node_res *n;

	(void)argc;
	if (!enif_get_resource(env, argv[0], node_rt, (void **)&n))
		return enif_make_badarg(env);
	enif_rwlock_rlock(n->lk);
	if (n->tk != NULL)
		(void)tailkit_stop(n->tk); /* fails harmlessly if not started */
	enif_rwlock_runlock(n->lk);
	enif_rwlock_rwlock(n->lk);
	if (n->tk != NULL)
		tailkit_free(n->tk);
	n->tk = NULL;
	enif_rwlock_rwunlock(n->lk);
	return a_ok;
}

static ERL_NIF_TERM
nif_state(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	int s;

	(void)argc;
	NODE(n, argv);
	s = tailkit_state(n->tk);
	UNLOCK(n);
	return s < 0 ? err(env, s) : str(env, tailkit_state_name(s));
}

static ERL_NIF_TERM
nif_ips(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	char buf[1024];
	int rv;

	(void)argc;
	NODE(n, argv);
	rv = tailkit_ips(n->tk, buf, sizeof(buf));
	UNLOCK(n);
	return rv < 0 ? err(env, rv) : ok(env, str(env, buf));
}

/* JSON as Erlang terms: objects -> maps with binary keys, arrays -> lists,
 * null -> nil, true/false -> atoms. */
static ERL_NIF_TERM
json_term(ErlNifEnv *env, json_t *j, int depth)
{
	if (depth > 64)
		return a_nil;
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		ERL_NIF_TERM m = enif_make_new_map(env);
		const char *k;
		json_t *v;
		json_object_foreach(j, k, v)
			enif_make_map_put(env, m, str(env, k),
			    json_term(env, v, depth + 1), &m);
		return m;
	}
	case JSON_ARRAY: {
		ERL_NIF_TERM l = enif_make_list(env, 0);
		size_t i = json_array_size(j);
		while (i-- > 0)
			l = enif_make_list_cell(env,
			    json_term(env, json_array_get(j, i), depth + 1), l);
		return l;
	}
	case JSON_STRING: {
		ERL_NIF_TERM t;
		size_t n = json_string_length(j);
		memcpy(enif_make_new_binary(env, n, &t), json_string_value(j), n);
		return t;
	}
	case JSON_INTEGER:
		return enif_make_int64(env, json_integer_value(j));
	case JSON_REAL:
		return enif_make_double(env, json_real_value(j));
	case JSON_TRUE:
		return a_true;
	case JSON_FALSE:
		return a_false;
	default:
		return a_nil;
	}
}

static ERL_NIF_TERM
nif_status(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	size_t len = 64 << 10;
	char *buf = NULL;
	json_t *j;
	ERL_NIF_TERM t;
	int rv;

	(void)argc;
	NODE(n, argv);
	for (;;) {
		if ((buf = enif_alloc(len)) == NULL) {
			rv = -ENOMEM;
			break;
		}
		rv = tailkit_status_json(n->tk, buf, len);
		if (rv != -ERANGE || len >= (64u << 20))
			break;
		enif_free(buf);
		buf = NULL;
		len *= 4;
	}
	UNLOCK(n);
	if (rv < 0) {
		if (buf != NULL)
			enif_free(buf);
		return err(env, rv);
	}
	j = json_loads(buf, 0, NULL);
	enif_free(buf);
	if (j == NULL)
		return enif_make_tuple2(env, a_error, enif_make_tuple2(env,
		    enif_make_atom(env, "eproto"), str(env, "status: not JSON")));
	t = json_term(env, j, 0);
	json_decref(j);
	return ok(env, t);
}

/* ---- descriptors ------------------------------------------------- */

static void
fd_stop(ErlNifEnv *env, void *obj, ErlNifEvent ev, int direct)
{
	fd_res *r = obj;

	(void)env;
	(void)direct;
	close((int)ev);
	if (r->fd == (int)ev)
		r->fd = -1;
	if (r->sel_fd == (int)ev)
		r->sel_fd = -1;
}

static void
fd_dtor(ErlNifEnv *env, void *obj)
{
	fd_res *r = obj;

	(void)env;
	/* a selected descriptor keeps its resource alive until stopped, so
	 * whatever is left here was never handed to the poller */
	if (r->sel_fd >= 0 && r->sel_fd != r->fd)
		close(r->sel_fd);
	if (r->fd >= 0)
		close(r->fd);
}

static ERL_NIF_TERM
fd_new(ErlNifEnv *env, int fd, int sel_fd)
{
	fd_res *r = enif_alloc_resource(fd_rt, sizeof(*r));
	ERL_NIF_TERM t;

	r->fd = fd;
	r->sel_fd = sel_fd;
	t = enif_make_resource(env, r);
	enif_release_resource(r);
	return t;
}

/* Releases the poller's hold on sel_fd: the stop callback closes it. */
static void
fd_release(ErlNifEnv *env, fd_res *r)
{
	int fd = r->sel_fd;

	if (fd < 0)
		return;
	if (enif_select(env, fd, ERL_NIF_SELECT_STOP, r, NULL, a_undefined) < 0) {
		close(fd); /* never known to the poller */
		if (r->fd == fd)
			r->fd = -1;
		r->sel_fd = -1;
	}
}

static ERL_NIF_TERM
peer_term(ErlNifEnv *env, const tailkit_peer *p)
{
	ERL_NIF_TERM m = enif_make_new_map(env);

#define PUT(k, v) enif_make_map_put(env, m, enif_make_atom(env, k), v, &m)
	PUT("remote_ip", str(env, p->remote_ip));
	PUT("remote_port", enif_make_int(env, p->remote_port));
	PUT("local_ip", str(env, p->local_ip));
	PUT("local_port", enif_make_int(env, p->local_port));
	PUT("node_id", enif_make_int64(env, p->node_id));
	PUT("user_id", enif_make_int64(env, p->user_id));
	PUT("node_name", str(env, p->node_name));
	PUT("user_login", str(env, p->user_login));
#undef PUT
	return m;
}

static ERL_NIF_TERM
nif_listen(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	int port, fd;

	(void)argc;
	if (!enif_get_int(env, argv[1], &port))
		return enif_make_badarg(env);
	NODE(n, argv);
	fd = tailkit_listen(n->tk, port);
	UNLOCK(n);
	if (fd < 0)
		return err(env, fd);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return ok(env, fd_new(env, fd, fd));
}

static fd_res *
fd_get(ErlNifEnv *env, ERL_NIF_TERM t)
{
	fd_res *r;

	if (!enif_get_resource(env, t, fd_rt, (void **)&r))
		return NULL;
	return r;
}

static ERL_NIF_TERM
ebadf(ErlNifEnv *env, const char *what)
{
	return enif_make_tuple2(env, a_error, enif_make_tuple2(env,
	    enif_make_atom(env, "ebadf"), str(env, what)));
}

/* Waits (the BEAM's poller) for sel_fd: {:select, res, ref, :ready_input}
 * comes to the caller. */
static ERL_NIF_TERM
wait_for(ErlNifEnv *env, fd_res *r, ERL_NIF_TERM ref)
{
	if (enif_select(env, r->sel_fd, ERL_NIF_SELECT_READ, r, NULL, ref) < 0)
		return ebadf(env, "select failed");
	return a_wait;
}

/* {:ok, fd, peer} or the error of an accept/dial */
static ERL_NIF_TERM
conn_term(ErlNifEnv *env, int c, const tailkit_peer *p)
{
	if (c < 0)
		return err(env, c);
	return enif_make_tuple3(env, a_ok, enif_make_int(env, c),
	    peer_term(env, p));
}

/* {:ok, fd, peer} | :wait (a select message follows) | {:error, ...} */
static ERL_NIF_TERM
nif_accept(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	tailkit_peer p;
	fd_res *r = fd_get(env, argv[0]);
	int c;

	(void)argc;
	if (r == NULL || !enif_is_ref(env, argv[1]))
		return enif_make_badarg(env);
	if (r->fd < 0)
		return ebadf(env, "the listener is closed");
	c = tailkit_accept(r->fd, &p);
	if (c == -EAGAIN)
		return wait_for(env, r, argv[1]);
	return conn_term(env, c, &p);
}

static ERL_NIF_TERM
nif_dial_start(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	char host[512];
	int port, fd, sel;

	(void)argc;
	if (!cstr(env, argv[1], host, sizeof(host)) ||
	    !enif_get_int(env, argv[2], &port))
		return enif_make_badarg(env);
	NODE(n, argv);
	fd = tailkit_dial_start(n->tk, host, port);
	UNLOCK(n);
	if (fd < 0)
		return err(env, fd);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	/* tailkit_dial_finish closes the pending descriptor itself: the
	 * poller gets a duplicate, released through the stop callback */
	if ((sel = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0) {
		close(fd);
		return err(env, -errno);
	}
	return ok(env, fd_new(env, fd, sel));
}

static ERL_NIF_TERM
nif_dial_finish(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	tailkit_peer p;
	fd_res *r = fd_get(env, argv[0]);
	int c;

	(void)argc;
	if (r == NULL || !enif_is_ref(env, argv[1]))
		return enif_make_badarg(env);
	if (r->fd < 0)
		return ebadf(env, "the dial is finished or closed");
	c = tailkit_dial_finish(r->fd, &p);
	if (c == -EAGAIN)
		return wait_for(env, r, argv[1]);
	r->fd = -1; /* consumed by tailkit_dial_finish */
	fd_release(env, r);
	return conn_term(env, c, &p);
}

/* Closes a listener or abandons a pending dial. */
static ERL_NIF_TERM
nif_fd_close(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	fd_res *r = fd_get(env, argv[0]);

	(void)argc;
	if (r == NULL)
		return enif_make_badarg(env);
	if (r->fd >= 0 && r->fd != r->sel_fd)
		close(r->fd); /* a pending dial: the poller has only the dup */
	r->fd = -1; /* a listener's closes with sel_fd, in fd_stop */
	fd_release(env, r);
	return a_ok;
}

static ERL_NIF_TERM
nif_udp_bind(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	int port, bound = 0, fd;

	(void)argc;
	if (!enif_get_int(env, argv[1], &port))
		return enif_make_badarg(env);
	NODE(n, argv);
	fd = tailkit_udp_bind(n->tk, port, &bound);
	UNLOCK(n);
	if (fd < 0)
		return err(env, fd);
	return enif_make_tuple3(env, a_ok, enif_make_int(env, fd),
	    enif_make_int(env, bound));
}

/* A descriptor handed over but not adopted (:socket.open failed). */
static ERL_NIF_TERM
nif_close_raw(ErlNifEnv *env, int argc, const ERL_NIF_TERM argv[])
{
	int fd;

	(void)argc;
	if (!enif_get_int(env, argv[0], &fd) || fd < 0)
		return enif_make_badarg(env);
	close(fd);
	return a_ok;
}

static int
load(ErlNifEnv *env, void **priv, ERL_NIF_TERM info)
{
	ErlNifResourceTypeInit fdi = { .dtor = fd_dtor, .stop = fd_stop };

	(void)priv;
	(void)info;
	node_rt = enif_open_resource_type(env, NULL, "tailkit_node", node_dtor,
	    ERL_NIF_RT_CREATE, NULL);
	fd_rt = enif_open_resource_type_x(env, "tailkit_fd", &fdi,
	    ERL_NIF_RT_CREATE, NULL);
	a_ok = enif_make_atom(env, "ok");
	a_error = enif_make_atom(env, "error");
	a_wait = enif_make_atom(env, "wait");
	a_nil = enif_make_atom(env, "nil");
	a_true = enif_make_atom(env, "true");
	a_false = enif_make_atom(env, "false");
	a_undefined = enif_make_atom(env, "undefined");
	return node_rt == NULL || fd_rt == NULL;
}

static ErlNifFunc funcs[] = {
	{ "new", 0, nif_new, 0 },
	{ "set", 3, nif_set, 0 },
	{ "start", 1, nif_start, 0 },
	{ "wait_running", 2, nif_wait_running, ERL_NIF_DIRTY_JOB_IO_BOUND },
	{ "stop", 1, nif_stop, 0 },
	{ "close", 1, nif_close, ERL_NIF_DIRTY_JOB_IO_BOUND },
	{ "state", 1, nif_state, 0 },
	{ "ips", 1, nif_ips, 0 },
	{ "status", 1, nif_status, 0 },
	{ "listen", 2, nif_listen, 0 },
	{ "accept", 2, nif_accept, 0 },
	{ "dial_start", 3, nif_dial_start, 0 },
	{ "dial_finish", 2, nif_dial_finish, 0 },
	{ "fd_close", 1, nif_fd_close, 0 },
	{ "udp_bind", 2, nif_udp_bind, 0 },
	{ "close_raw", 1, nif_close_raw, 0 },
};

ERL_NIF_INIT(Elixir.Tailkit.Nif, funcs, load, NULL, NULL, NULL)
