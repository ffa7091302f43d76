/* req/rep: server contexts on the loop, async client, sync client. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk/bus_rpc.h"
#include "tk/err.h"
#include "tk/log.h"
#include "tk_test.h"

#include "bus_test.h"

void register_rpc(void);

static atomic_int echo_calls;

static int
echo_fn(void *arg, const uint8_t *body, size_t len, tk_buf *reply)
{
	(void)arg;
	atomic_fetch_add(&echo_calls, 1);
	return tk_buf_append(reply, body, len);
}

static int
fail_text_fn(void *arg, const uint8_t *body, size_t len, tk_buf *reply)
{
	(void)arg;
	(void)body;
	(void)len;
	tk_buf_append_str(reply, "peer table is locked");
	return TK_ESTATE;
}

static int
fail_plain_fn(void *arg, const uint8_t *body, size_t len, tk_buf *reply)
{
	(void)arg;
	(void)body;
	(void)len;
	(void)reply;
	return TK_EPERM;
}

struct result {
	bool done;
	int status;
	char error[128];
	uint8_t body[256];
	size_t len;
	unsigned long at_ms;
};

static void
done_fn(void *arg, int status, const char *error, const uint8_t *body,
    size_t len)
{
	struct result *r = arg;

	r->done = true;
	r->status = status;
	r->at_ms = bt_ms();
	snprintf(r->error, sizeof(r->error), "%s", error ? error : "");
	r->len = len < sizeof(r->body) ? len : sizeof(r->body);
	if (r->len)
		memcpy(r->body, body, r->len);
}

static bool
is_done(void *arg)
{
	return ((struct result *)arg)->done;
}

static void
call(tk_loop *loop, tk_rpc_client *c, const char *method, const char *body,
    struct result *r)
{
	memset(r, 0, sizeof(*r));
	CU_ASSERT_EQUAL_FATAL(tk_rpc_call(c, method, (const uint8_t *)body,
				  strlen(body), 3 * TK_NSEC_PER_SEC, done_fn, r),
	    0);
	CU_ASSERT_TRUE(bt_run_until(loop, is_done, r, 5000));
}

static void
test_rpc_basic(void)
{
	tk_loop *loop;
	tk_rpc_server *srv;
	tk_rpc_client *cli;
	char url[128];
	struct result r;

	bt_inproc("rpc", url, sizeof(url));
	CU_ASSERT_EQUAL_FATAL(tk_loop_new(&loop, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(tk_rpc_server_new(&srv,
				  &(tk_rpc_server_cfg){ loop, url, NULL, 0 }),
	    0);
	CU_ASSERT_EQUAL(tk_rpc_server_add(srv, "echo", echo_fn, NULL), 0);
	CU_ASSERT_EQUAL(tk_rpc_server_add(srv, "echo", echo_fn, NULL),
	    TK_EEXIST);
	CU_ASSERT_EQUAL(tk_rpc_server_add(srv, "fail", fail_text_fn, NULL), 0);
	CU_ASSERT_EQUAL(tk_rpc_server_add(srv, "perm", fail_plain_fn, NULL),
	    0);
	CU_ASSERT_EQUAL_FATAL(tk_rpc_client_new(&cli,
				  &(tk_rpc_client_cfg){ loop, url, NULL, "t" }),
	    0);
	call(loop, cli, "echo", "hello", &r);
	CU_ASSERT_EQUAL(r.status, 0);
	CU_ASSERT_EQUAL(r.len, 5);
	TK_ASSERT_MEM_EQ(r.body, "hello", 5);
	/* Empty body. */
	call(loop, cli, "echo", "", &r);
	CU_ASSERT_EQUAL(r.status, 0);
	CU_ASSERT_EQUAL(r.len, 0);
	call(loop, cli, "nosuch", "x", &r);
	CU_ASSERT_EQUAL(r.status, TK_ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(r.error, "nosuch"));
	call(loop, cli, "fail", "x", &r);
	CU_ASSERT_EQUAL(r.status, TK_ESTATE);
	CU_ASSERT_STRING_EQUAL(r.error, "peer table is locked");
	call(loop, cli, "perm", "x", &r);
	CU_ASSERT_EQUAL(r.status, TK_EPERM);
	CU_ASSERT_STRING_EQUAL(r.error, tk_strerror(TK_EPERM));
	/* One call at a time. */
	memset(&r, 0, sizeof(r));
	CU_ASSERT_EQUAL(tk_rpc_call(cli, "echo", NULL, 0, TK_NSEC_PER_SEC,
			    done_fn, &r),
	    0);
	CU_ASSERT_EQUAL(tk_rpc_call(cli, "echo", NULL, 0, TK_NSEC_PER_SEC,
			    done_fn, &r),
	    TK_ESTATE);
	CU_ASSERT_TRUE(bt_run_until(loop, is_done, &r, 5000));
	/* Removing a method. */
	CU_ASSERT_EQUAL(tk_rpc_server_remove(srv, "perm"), 0);
	CU_ASSERT_EQUAL(tk_rpc_server_remove(srv, "perm"), TK_ENOENT);
	call(loop, cli, "perm", "x", &r);
	CU_ASSERT_EQUAL(r.status, TK_ENOENT);
	tk_rpc_client_free(cli);
	tk_rpc_server_free(srv);
	tk_loop_free(loop);
}

/* The server appears after the call was made; the call still succeeds. */
static void
test_rpc_server_late_and_timeout(void)
{
	tk_loop *loop;
	tk_rpc_server *srv;
	tk_rpc_client *cli;
	char url[128];
	struct result r;
	unsigned long t0;

	bt_inproc("late", url, sizeof(url));
	CU_ASSERT_EQUAL_FATAL(tk_loop_new(&loop, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(tk_rpc_client_new(&cli,
				  &(tk_rpc_client_cfg){ loop, url, NULL, NULL }),
	    0);
	/* No server at all: a bounded timeout. */
	memset(&r, 0, sizeof(r));
	t0 = bt_ms();
	CU_ASSERT_EQUAL_FATAL(tk_rpc_call(cli, "echo", NULL, 0,
				  200 * TK_NSEC_PER_MSEC, done_fn, &r),
	    0);
	CU_ASSERT_TRUE(bt_run_until(loop, is_done, &r, 3000));
	CU_ASSERT_EQUAL(r.status, TK_ETIMEDOUT);
	CU_ASSERT(r.at_ms - t0 >= 190 && r.at_ms - t0 < 2000);
	/* Now the call first, the server 100 ms later. */
	memset(&r, 0, sizeof(r));
	CU_ASSERT_EQUAL_FATAL(tk_rpc_call(cli, "echo", (const uint8_t *)"hi",
				  2, 3 * TK_NSEC_PER_SEC, done_fn, &r),
	    0);
	bt_run_for(loop, 100);
	CU_ASSERT_FALSE(r.done);
	CU_ASSERT_EQUAL_FATAL(tk_rpc_server_new(&srv,
				  &(tk_rpc_server_cfg){ loop, url, NULL, 2 }),
	    0);
	CU_ASSERT_EQUAL(tk_rpc_server_add(srv, "echo", echo_fn, NULL), 0);
	CU_ASSERT_TRUE(bt_run_until(loop, is_done, &r, 5000));
	CU_ASSERT_EQUAL(r.status, 0);
	CU_ASSERT_EQUAL(r.len, 2);
	/* A call abandoned by cancel never completes. */
	memset(&r, 0, sizeof(r));
	CU_ASSERT_EQUAL(tk_rpc_call(cli, "echo", NULL, 0, TK_NSEC_PER_SEC,
			    done_fn, &r),
	    0);
	tk_rpc_cancel(cli);
	bt_run_for(loop, 100);
	CU_ASSERT_FALSE(r.done);
	tk_rpc_client_free(cli);
	tk_rpc_server_free(srv);
	tk_loop_free(loop);
}

/* Many blocking clients from many threads against one server loop. */
#define RPC_THREADS 6
#define RPC_CALLS   40

struct caller {
	const char *url;
	int ok;
	int id;
};

static void *
caller_thread(void *arg)
{
	struct caller *c = arg;
	tk_buf reply;

	tk_buf_init(&reply);
	for (int i = 0; i < RPC_CALLS; i++) {
		char body[32];
		int n = snprintf(body, sizeof(body), "%d/%d", c->id, i);

		if (tk_rpc_call_sync(c->url, NULL, "echo", (uint8_t *)body,
			(size_t)n, 5000, &reply) == 0 &&
		    reply.len == (size_t)n &&
		    memcmp(reply.data, body, (size_t)n) == 0)
			c->ok++;
	}
	tk_buf_fini(&reply);
	return NULL;
}

static void *
loop_thread(void *arg)
{
	tk_loop_run(arg);
	return NULL;
}

static void
test_rpc_concurrent_ipc(void)
{
	char *dir = tk_test_tmpdir();
	char url[512];
	tk_loop *loop;
	tk_rpc_server *srv;
	pthread_t lt, th[RPC_THREADS];
	struct caller cs[RPC_THREADS];
	tk_buf reply;
	int total = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	snprintf(url, sizeof(url), "ipc://%s/rpc.ipc", dir);
	atomic_store(&echo_calls, 0);
	CU_ASSERT_EQUAL_FATAL(tk_loop_new(&loop, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(tk_rpc_server_new(&srv,
				  &(tk_rpc_server_cfg){ loop, url, NULL, 4 }),
	    0);
	CU_ASSERT_EQUAL(tk_rpc_server_add(srv, "echo", echo_fn, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(pthread_create(&lt, NULL, loop_thread, loop), 0);
	for (int i = 0; i < RPC_THREADS; i++) {
		cs[i] = (struct caller){ url, 0, i };
		CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL,
					  caller_thread, &cs[i]),
		    0);
	}
	for (int i = 0; i < RPC_THREADS; i++) {
		pthread_join(th[i], NULL);
		total += cs[i].ok;
	}
	/* Unknown method through the sync path: status and text. */
	tk_buf_init(&reply);
	CU_ASSERT_EQUAL(tk_rpc_call_sync(url, NULL, "nosuch", NULL, 0, 2000,
			    &reply),
	    TK_ENOENT);
	CU_ASSERT(reply.len > 0);
	tk_buf_fini(&reply);
	tk_loop_stop(loop);
	pthread_join(lt, NULL);
	CU_ASSERT_EQUAL(total, RPC_THREADS * RPC_CALLS);
	CU_ASSERT_EQUAL(atomic_load(&echo_calls), RPC_THREADS * RPC_CALLS);
	tk_rpc_server_free(srv);
	tk_loop_free(loop);
	/* Nobody listening: a bounded failure. */
	tk_buf_init(&reply);
	CU_ASSERT_EQUAL(tk_rpc_call_sync(url, NULL, "echo", NULL, 0, 200,
			    &reply),
	    TK_ETIMEDOUT);
	tk_buf_fini(&reply);
	tk_test_rmtree(dir);
	free(dir);
}

/* Freeing the server with requests in flight leaks and crashes nothing. */
static void
test_rpc_free_in_flight(void)
{
	tk_loop *loop;
	tk_rpc_server *srv;
	tk_rpc_client *cli[3];
	struct result r[3];
	char url[128];

	bt_inproc("inflight", url, sizeof(url));
	CU_ASSERT_EQUAL_FATAL(tk_loop_new(&loop, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(tk_rpc_server_new(&srv,
				  &(tk_rpc_server_cfg){ loop, url, NULL, 2 }),
	    0);
	CU_ASSERT_EQUAL(tk_rpc_server_add(srv, "echo", echo_fn, NULL), 0);
	for (int i = 0; i < 3; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		CU_ASSERT_EQUAL_FATAL(tk_rpc_client_new(&cli[i],
					  &(tk_rpc_client_cfg){ loop, url, NULL,
					      NULL }),
		    0);
		CU_ASSERT_EQUAL(tk_rpc_call(cli[i], "echo", NULL, 0,
				    300 * TK_NSEC_PER_MSEC, done_fn, &r[i]),
		    0);
	}
	/* A few iterations: some requests reach the server's contexts. */
	tk_loop_run_once(loop, 1);
	tk_rpc_server_free(srv);
	bt_run_for(loop, 500);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_TRUE(r[i].done); /* answered or timed out */
		tk_rpc_client_free(cli[i]);
	}
	tk_loop_free(loop);
}

/* Deferred replies: the handler answers later, the loop keeps serving. */
struct defer_state {
	tk_rpc_server *srv;
	tk_rpc_deferred *held[4];
	int nheld, refused;
};

static int
defer_fn(void *arg, const uint8_t *body, size_t len, tk_buf *reply)
{
	struct defer_state *d = arg;
	tk_rpc_deferred *h = tk_rpc_server_defer(d->srv);

	(void)body, (void)len;
	if (h == NULL) {
		d->refused++;
		tk_buf_append_str(reply, "busy");
		return TK_EAGAIN;
	}
	d->held[d->nheld++] = h;
	tk_buf_append_str(reply, "ignored once deferred");
	return 0;
}

static int
defer_now_fn(void *arg, const uint8_t *body, size_t len, tk_buf *reply)
{
	struct defer_state *d = arg;
	tk_rpc_deferred *h = tk_rpc_server_defer(d->srv);

	(void)body, (void)len;
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	tk_rpc_deferred_reply(h, TK_ENOENT, "answered inside", NULL, 0);
	tk_buf_append_str(reply, "ignored");
	return 0;
}

static void
test_rpc_deferred(void)
{
	tk_loop *loop;
	struct defer_state d = { 0 };
	tk_rpc_client *cli[3], *echo;
	struct result r[3], e, x;
	char url[128];

	bt_inproc("defer", url, sizeof(url));
	CU_ASSERT_EQUAL_FATAL(tk_loop_new(&loop, NULL), 0);
	/* 4 contexts: one may defer while two stay free */
	CU_ASSERT_EQUAL_FATAL(tk_rpc_server_new(&d.srv,
				  &(tk_rpc_server_cfg){ loop, url, NULL, 4 }),
	    0);
	CU_ASSERT_PTR_NULL(tk_rpc_server_defer(d.srv)); /* not in a handler */
	CU_ASSERT_EQUAL(tk_rpc_server_add(d.srv, "defer", defer_fn, &d), 0);
	CU_ASSERT_EQUAL(tk_rpc_server_add(d.srv, "echo", echo_fn, NULL), 0);
	CU_ASSERT_EQUAL(tk_rpc_server_add(d.srv, "now", defer_now_fn, &d), 0);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL_FATAL(tk_rpc_client_new(&cli[i],
					  &(tk_rpc_client_cfg){ loop, url, NULL,
					      NULL }),
		    0);
		memset(&r[i], 0, sizeof(r[i]));
	}
	CU_ASSERT_EQUAL_FATAL(tk_rpc_client_new(&echo,
				  &(tk_rpc_client_cfg){ loop, url, NULL, NULL }),
	    0);
	/* deferred and answered inside the handler */
	call(loop, echo, "now", "", &e);
	CU_ASSERT_EQUAL(e.status, TK_ENOENT);
	CU_ASSERT_STRING_EQUAL(e.error, "answered inside");
	CU_ASSERT_EQUAL(tk_rpc_call(cli[0], "defer", NULL, 0,
			    3 * TK_NSEC_PER_SEC, done_fn, &r[0]),
	    0);
	bt_run_for(loop, 100);
	CU_ASSERT_EQUAL(d.nheld, 1);
	CU_ASSERT_FALSE(r[0].done);
	/* a second deferral leaves two contexts free: taken */
	CU_ASSERT_EQUAL(tk_rpc_call(cli[1], "defer", NULL, 0,
			    3 * TK_NSEC_PER_SEC, done_fn, &r[1]),
	    0);
	bt_run_for(loop, 100);
	CU_ASSERT_EQUAL(d.nheld, 2);
	/* a third would leave one: refused */
	call(loop, cli[2], "defer", "", &x);
	CU_ASSERT_EQUAL(x.status, TK_EAGAIN);
	CU_ASSERT_EQUAL(d.refused, 1);
	/* the client resends after a second: absorbed, no new deferral */
	bt_run_for(loop, 1300);
	CU_ASSERT_EQUAL(d.nheld, 2);
	CU_ASSERT_FALSE(r[0].done);
	/* other requests are answered meanwhile */
	call(loop, echo, "echo", "still here", &e);
	CU_ASSERT_EQUAL(e.status, 0);
	CU_ASSERT_EQUAL(e.len, 10);
	CU_ASSERT_FALSE(r[0].done);
	tk_rpc_deferred_reply(d.held[0], 0, NULL, (const uint8_t *)"pong", 4);
	CU_ASSERT_TRUE(bt_run_until(loop, is_done, &r[0], 3000));
	CU_ASSERT_EQUAL(r[0].status, 0);
	CU_ASSERT_EQUAL(r[0].len, 4);
	TK_ASSERT_MEM_EQ(r[0].body, "pong", 4);
	/* the context is free again: defer, then answer with an error */
	tk_rpc_deferred_reply(d.held[1], 0, NULL, NULL, 0);
	CU_ASSERT_TRUE(bt_run_until(loop, is_done, &r[1], 3000));
	CU_ASSERT_EQUAL(r[1].status, 0);
	d.nheld = 0;
	CU_ASSERT_EQUAL(tk_rpc_call(cli[2], "defer", NULL, 0,
			    3 * TK_NSEC_PER_SEC, done_fn, &r[2]),
	    0);
	bt_run_for(loop, 100);
	CU_ASSERT_EQUAL_FATAL(d.nheld, 1);
	tk_rpc_deferred_reply(d.held[0], TK_ETIMEDOUT, "no pong", NULL, 0);
	CU_ASSERT_TRUE(bt_run_until(loop, is_done, &r[2], 3000));
	CU_ASSERT_EQUAL(r[2].status, TK_ETIMEDOUT);
	CU_ASSERT_STRING_EQUAL(r[2].error, "no pong");
	/* a request left deferred when the server goes leaks nothing */
	d.nheld = 0;
	memset(&r[0], 0, sizeof(r[0]));
	CU_ASSERT_EQUAL(tk_rpc_call(cli[0], "defer", NULL, 0,
			    300 * TK_NSEC_PER_MSEC, done_fn, &r[0]),
	    0);
	bt_run_for(loop, 100);
	CU_ASSERT_EQUAL(d.nheld, 1);
	tk_rpc_server_free(d.srv);
	CU_ASSERT_TRUE(bt_run_until(loop, is_done, &r[0], 3000));
	CU_ASSERT_EQUAL(r[0].status, TK_ETIMEDOUT);
	for (int i = 0; i < 3; i++)
		tk_rpc_client_free(cli[i]);
	tk_rpc_client_free(echo);
	tk_loop_free(loop);
}

void
register_rpc(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_rpc_basic),
		TK_TEST(test_rpc_server_late_and_timeout),
		TK_TEST(test_rpc_concurrent_ipc),
		TK_TEST(test_rpc_free_in_flight),
		TK_TEST(test_rpc_deferred),
		TK_TEST_END,
	};

	tk_test_suite("rpc", cases);
}
