/*
 * Bus transport: URLs, endpoints, sockets, and the event-loop reader.
 *
 * Every inter-component message is an nng message (ARCHITECTURE.md "Buses").
 * The URL decides the transport and is configuration; the code is the same:
 *
 *   inproc://<instance>/<bus>   in one process
 *   ipc://<path>                one host: the socket file is made 0600
 *                               (NNG_OPT_IPC_PERMISSIONS) and missing parent
 *                               directories are created 0700
 *   tls+tcp://<host>:<port>     across hosts, TLS with MUTUAL certificate
 *                               authentication (both sides present a
 *                               certificate chaining to the configured CA)
 *
 * Everything else is refused with TK_EINVAL and a message naming what is
 * accepted; in particular plain tcp:// (a cross-host bus is never plaintext
 * or unauthenticated).
 *
 * Related headers: tk/bus_batch.h (packet batches), tk/bus_rpc.h (req/rep),
 * tk/bus_topic.h (pub/sub topics with snapshots).
 *
 * Errors: 0 or TK_E*; nng failures are folded with tk_err_nng().  Out-params
 * are written only on 0.
 */
#ifndef TK_BUS_H
#define TK_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "tk/buf.h"
#include "tk/loop.h"

#define TK_BUS_URL_ACCEPTED                                                  \
	"inproc://<instance>/<bus>, ipc://<path>, tls+tcp://<host>:<port>"

/* Largest control-bus message (netmaps of big tailnets). */
#define TK_BUS_CTRL_MAX (16u * 1024 * 1024)

enum tk_bus_scheme {
	TK_BUS_INPROC = 1,
	TK_BUS_IPC,
	TK_BUS_TLS_TCP,
};

/*
 * Checks a bus URL against the policy above.  On TK_EINVAL, `why` (if not
 * NULL) receives a one-line explanation including the accepted forms, and
 * the same line is logged at ERR level.
 */
int tk_bus_url_check(const char *url, enum tk_bus_scheme *scheme, char *why,
    size_t whylen);

/*
 * TLS material for tls+tcp:// (ignored for other schemes).  PEM files; the
 * key must not be encrypted.  Both listener and dialer require the peer's
 * certificate (NNG_TLS_AUTH_MODE_REQUIRED) to chain to ca_file.
 */
typedef struct tk_bus_tls {
	const char *cert_file;	 /* own certificate (chain) */
	const char *key_file;	 /* own private key */
	const char *ca_file;	 /* CA(s) the peer must chain to */
	const char *server_name; /* dialer: DNS name the listener's
				    certificate must carry (a dNSName SAN:
				    Debian's mbedTLS 2.28 ignores IP SANs, so
				    set this when dialling an IP); NULL = the
				    URL's host */
} tk_bus_tls;

/* Socket kinds, with tailkit defaults applied by tk_bus_open. */
enum tk_bus_proto {
	TK_BUS_PAIR = 1, /* pair1: packet buses (recv max TK_BATCH_MAX) */
	TK_BUS_PUB,
	TK_BUS_SUB,
	TK_BUS_REQ,
	TK_BUS_REP,
};

/*
 * Opens a socket: protocol, NNG_OPT_RECVMAXSZ (TK_BUS_CTRL_MAX, or
 * TK_BATCH_MAX for pair), reconnect back-off 10 ms .. 1 s.  Close it with
 * nng_close() once, at shutdown, from the owning thread.
 */
int tk_bus_open(nng_socket *out, enum tk_bus_proto proto);

/*
 * Listens on `url` (checked by the policy).  tls is required for tls+tcp.
 * For ipc the socket file gets mode 0600 and missing parent directories are
 * created 0700.  *out (may be NULL) receives the started listener.
 */
int tk_bus_listen(nng_socket s, const char *url, const tk_bus_tls *tls,
    nng_listener *out);

/*
 * Dials `url`.  By default the dial runs in the background and keeps
 * reconnecting (a peer may start later or restart); TK_BUS_DIAL_WAIT
 * connects now and fails if the peer is absent or (tls+tcp) rejects us.
 */
#define TK_BUS_DIAL_WAIT 0x1u
int tk_bus_dial(nng_socket s, const char *url, const tk_bus_tls *tls,
    unsigned flags, nng_dialer *out);

/*
 * nng_close(s), waiting at most ms milliseconds.  0, or TK_ETIMEDOUT: the
 * close is left to finish (or not) on a thread of its own.  Debian 12's
 * nng 1.5.2 can hang in nng_close of a pair socket whose peer is closing
 * its pipe at the same moment (seen in wgd and derpd at shutdown, both on
 * the wgd-derp bus; nng made endpoint close synchronous after 1.5.2), and
 * a daemon that is exiting must not hang on it.
 */
int tk_bus_close_bounded(nng_socket s, unsigned ms);

/*
 * Sends msg.  Hand-off: on 0 nng owns msg; on error the caller still does.
 * With `block` false, TK_EAGAIN when the socket cannot take it now.
 */
int tk_bus_send(nng_socket s, nng_msg *msg, bool block);

/*
 * Loop integration through NNG_OPT_RECVFD: when the fd is readable the
 * reader receives with NNG_FLAG_NONBLOCK until NNG_EAGAIN (at most `budget`
 * messages per wake-up, the rest on the next iteration) and calls fn for
 * each message, on the loop thread.  Hand-off: fn owns msg.
 */
typedef void (*tk_bus_msg_fn)(void *arg, nng_msg *msg);
typedef struct tk_bus_reader tk_bus_reader;

int tk_bus_reader_new(tk_bus_reader **out, tk_loop *loop, nng_socket s,
    tk_bus_msg_fn fn, void *arg);
/* Stops watching; does not close the socket.  NULL is a no-op. */
void tk_bus_reader_free(tk_bus_reader *r);
/* Messages per wake-up (default 64). */
void tk_bus_reader_set_budget(tk_bus_reader *r, unsigned budget);

/*
 * Appends the packed protobuf-c message m to b (bodies of topics, replies
 * and requests).  0, TK_ENOMEM.
 */
struct ProtobufCMessage;
int tk_bus_pb_pack(const struct ProtobufCMessage *m, tk_buf *b);

#endif
