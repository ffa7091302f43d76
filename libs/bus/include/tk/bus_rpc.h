/*
 * Commands and status over req/rep.
 *
 * Wire: a packed tk.bus.v1.Request {method, body, client} answered by a
 * packed tk.bus.v1.Reply {status, error, body} (proto/tk/bus/v1/common.proto).
 *
 * Server: a rep socket with several nng contexts so requests from many
 * clients are in flight at once.  nng completes them on its own threads; the
 * aio callbacks only post to the loop, and method handlers run on the loop
 * thread, next to the state they read.
 *
 * Client: a req socket dialled in the background; one call in flight at a
 * time; the reply arrives through NNG_OPT_RECVFD on the loop.  A blocking
 * tk_rpc_call_sync serves CLIs and tests.
 */
#ifndef TK_BUS_RPC_H
#define TK_BUS_RPC_H

#include <stddef.h>
#include <stdint.h>

#include "tk/buf.h"
#include "tk/bus.h"
#include "tk/loop.h"

/* ---- server ------------------------------------------------------------- */

typedef struct tk_rpc_server tk_rpc_server;

/*
 * Method handler, on the loop thread.  body[0..len) is the request body
 * (borrowed).  Return 0 with the reply body in `reply`, or a TK_E* code:
 * the client then gets that status with the text left in `reply` (or
 * tk_strerror(code) if empty).
 */
typedef int (*tk_rpc_fn)(void *arg, const uint8_t *body, size_t len,
    tk_buf *reply);

typedef struct tk_rpc_server_cfg {
	tk_loop *loop;
	const char *url;
	const tk_bus_tls *tls; /* for tls+tcp:// */
	unsigned nctx;	       /* concurrent requests; 0: 4 */
} tk_rpc_server_cfg;

int tk_rpc_server_new(tk_rpc_server **out, const tk_rpc_server_cfg *cfg);
/*
 * Registers `method` (copied).  TK_EEXIST if taken.  Unknown methods are
 * answered with TK_ENOENT.
 */
int tk_rpc_server_add(tk_rpc_server *s, const char *method, tk_rpc_fn fn,
    void *arg);
/*
 * Deferred replies: a handler whose answer comes later (wgd's ping waits
 * for the pong) calls tk_rpc_server_defer from inside the handler and
 * returns; the request's context then waits, without blocking the loop,
 * until tk_rpc_deferred_reply answers it (exactly once, on the loop
 * thread).  The handler's return value and reply buffer are ignored once
 * it deferred.  A deferred request holds one of the server's nctx contexts:
 * NULL (the handler should answer TK_EAGAIN) when deferring would leave
 * fewer than two free for other requests, or when called outside a
 * handler.  Handles still unanswered when the server is freed are gone
 * with it: free them from the owner's state first.  A client's resend of
 * a deferred request (nng's req resend: the same bytes on the same pipe,
 * requests up to 256 bytes) is absorbed: the deferred context answers it.
 */
typedef struct tk_rpc_deferred tk_rpc_deferred;
tk_rpc_deferred *tk_rpc_server_defer(tk_rpc_server *s);
void tk_rpc_deferred_reply(tk_rpc_deferred *d, int status, const char *error,
    const uint8_t *body, size_t len);
/* Unregisters `method`; TK_ENOENT if unknown. */
int tk_rpc_server_remove(tk_rpc_server *s, const char *method);
/* On the loop thread (or with the loop not running).  NULL is a no-op. */
void tk_rpc_server_free(tk_rpc_server *s);

/* ---- client ------------------------------------------------------------- */

typedef struct tk_rpc_client tk_rpc_client;

/*
 * Completion, on the loop thread: status 0 and the reply body, or a TK_E*
 * code with a text (TK_ETIMEDOUT when no reply came in time; the server's
 * status and error text otherwise).  body/error are borrowed for the call.
 */
typedef void (*tk_rpc_done_fn)(void *arg, int status, const char *error,
    const uint8_t *body, size_t len);

typedef struct tk_rpc_client_cfg {
	tk_loop *loop;
	const char *url;
	const tk_bus_tls *tls;
	const char *name; /* Request.client, for the server's logs */
} tk_rpc_client_cfg;

int tk_rpc_client_new(tk_rpc_client **out, const tk_rpc_client_cfg *cfg);
/*
 * Starts a call; `done` runs exactly once (unless the client is freed
 * first).  If the server is not connected yet the request waits for it
 * within the timeout.  TK_ESTATE if a call is already in flight.
 */
int tk_rpc_call(tk_rpc_client *c, const char *method, const uint8_t *body,
    size_t len, uint64_t timeout_ns, tk_rpc_done_fn done, void *arg);
/* Abandons the call in flight, if any; its `done` will not run. */
void tk_rpc_cancel(tk_rpc_client *c);
/* On the loop thread.  A pending call's `done` is not run.  NULL: no-op. */
void tk_rpc_client_free(tk_rpc_client *c);

/*
 * Blocking call without a loop (CLI, tests).  On 0, `reply` holds the reply
 * body.  A non-zero server status is returned as is, with its text in
 * `reply`.
 */
int tk_rpc_call_sync(const char *url, const tk_bus_tls *tls,
    const char *method, const uint8_t *body, size_t len, int timeout_ms,
    tk_buf *reply);

/* Request/Reply codec, exposed for tools and fuzzing. */
int tk_rpc_reply_pack(nng_msg **out, int status, const char *error,
    const uint8_t *body, size_t len);

#endif
