/*
 * tailkit.h: a tailnet node inside your process, as a C library with
 * ordinary file descriptors (tools/embed/README.md).
 *
 * Every handle the caller waits on is a file descriptor for its own event
 * loop (poll, epoll, kqueue-like loops, asyncio, the BEAM): the node's
 * event fd, listeners, pending dials, connections and UDP sockets.  No
 * callbacks.  Plain C types only, so ctypes/cffi/NIF bindings are direct.
 *
 * Return convention: 0 or a non-negative value on success, a negative
 * errno (-EINVAL, -EBADF, ...) on failure; tailkit_errmsg() then has a
 * one-line message (per calling thread).  All calls are thread-safe on a
 * node between tailkit_new and tailkit_free.
 *
 * One node per process: the netstack (lwIP) keeps global state; a second
 * tailkit_start while one node runs fails with -EEXIST and says so.
 *
 *   tailkit *tk;
 *   tailkit_new(&tk);
 *   tailkit_set(tk, "control_url", "https://controlplane.tailscale.com");
 *   tailkit_set(tk, "state_dir", "/var/lib/myapp/tailkit");
 *   tailkit_set(tk, "authkey", key);
 *   tailkit_start(tk);
 *   tailkit_wait_running(tk, 30000);
 *   int lfd = tailkit_listen(tk, 8080);
 *   ... tailkit_accept(lfd, &peer) when lfd is readable ...
 *   tailkit_free(tk);
 */
#ifndef TAILKIT_H
#define TAILKIT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tailkit tailkit;

/* Node states (Go's ipn.State names). */
enum tailkit_state {
	TAILKIT_STATE_NOSTATE = 0,
	TAILKIT_STATE_NEEDS_LOGIN = 1,
	TAILKIT_STATE_NEEDS_MACHINE_AUTH = 2,
	TAILKIT_STATE_STARTING = 3,
	TAILKIT_STATE_RUNNING = 4,
	TAILKIT_STATE_STOPPED = 5, /* not started, or stopped */
};

/* Who is on the other end of a connection, from the netmap when the
 * connection was handed over (not a later lookup). */
typedef struct tailkit_peer {
	char remote_ip[48]; /* "100.64.0.2", "fd7a:115c:a1e0::2" */
	int remote_port;
	char local_ip[48];
	int local_port;
	long long node_id; /* 0: not a known tailnet node */
	long long user_id;
	char node_name[256];  /* MagicDNS FQDN, "" if unknown */
	char user_login[256]; /* "alice@example.com", "" if unknown */
} tailkit_peer;

enum tailkit_event_type {
	TAILKIT_EVENT_STATE = 1,     /* .state changed */
	TAILKIT_EVENT_LOGIN_URL = 2, /* .text: visit it to log in */
	TAILKIT_EVENT_PEERS = 3,     /* the set of peers or their addresses */
	TAILKIT_EVENT_IPS = 4,	     /* .text: the node's own addresses */
};

typedef struct tailkit_event {
	int type;
	int state; /* the state when the event was queued */
	char text[1024];
} tailkit_event;

/* ---- node ---------------------------------------------------------- */

int tailkit_new(tailkit **out);
/*
 * Settings, before tailkit_start (afterwards: -EBUSY).  value NULL resets.
 *   "control_url"     required: http://host:port or https://host
 *   "state_dir"       required: keys and registration (created 0700)
 *   "authkey"         NULL: interactive login (TAILKIT_EVENT_LOGIN_URL)
 *   "hostname"        NULL: the host's name
 *   "ephemeral"       "0" / "1"
 *   "advertise_tags"  "tag:a,tag:b"
 *   "ca_file"         extra CA (PEM) for the control and DERP servers
 *   "derp_plain_http" "0" / "1": DERP over plain HTTP (derper -dev, tests)
 *   "log_level"       "err" | "warn" | "info" | "debug" | "trace"
 * Unknown keys: -EINVAL naming the accepted ones.
 */
int tailkit_set(tailkit *tk, const char *key, const char *value);
/* Logs go to fd (not closed by tailkit); -1 discards them; default:
 * stderr.  Logging is process-wide: the last call wins. */
int tailkit_set_logfd(tailkit *tk, int fd);
/* Starts the node's threads (with every signal blocked: tailkit installs
 * no signal handler and takes no signal meant for the program). */
int tailkit_start(tailkit *tk);
/* Waits until the state is RUNNING: 0, -ETIMEDOUT (the message names
 * the state and any login URL), -ECANCELED (not started, or stopped
 * meanwhile by another thread).  timeout_ms < 0: no limit. */
int tailkit_wait_running(tailkit *tk, int timeout_ms);
/* Stops the node: listeners see end-of-file, connections are closed
 * from the node's side (the caller still closes its descriptors). */
int tailkit_stop(tailkit *tk);
/* Stops and frees the node.  Every call on tk must have returned (stop it
 * from another thread first to cancel a tailkit_wait_running). */
void tailkit_free(tailkit *tk);

/* The calling thread's last error message ("" if none); buf always NUL-
 * terminated; returns the message length (like snprintf). */
int tailkit_errmsg(char *buf, size_t len);

int tailkit_state(tailkit *tk);
const char *tailkit_state_name(int state);
/* "100.64.0.1,fd7a:115c:a1e0::1" ("" before the first netmap).  Returns
 * the length; -ERANGE if it does not fit (buf then holds a prefix). */
int tailkit_ips(tailkit *tk, char *buf, size_t len);
/* ipnstate.Status as JSON (Go's /localapi/v0/status).  Returns the
 * length; -ERANGE if it does not fit. */
int tailkit_status_json(tailkit *tk, char *buf, size_t len);

/* Readable while events are queued (an eventfd; do not read it
 * yourself).  Valid from tailkit_new until tailkit_free. */
int tailkit_event_fd(tailkit *tk);
/* 1 and *ev filled, or 0 when none is queued (never blocks).  At most
 * 256 events are kept; older ones are dropped first. */
int tailkit_next_event(tailkit *tk, tailkit_event *ev);

/* ---- TCP -------------------------------------------------------------
 *
 * A listener is a descriptor: readable when a connection waits.  It is
 * blocking; set O_NONBLOCK for your loop (tailkit_accept then returns
 * -EAGAIN when nothing waits).  close() it to stop listening.
 * Connections are AF_UNIX stream descriptors (blocking, CLOEXEC):
 * read/write/shutdown(SHUT_WR)/close as a TCP socket.
 */
int tailkit_listen(tailkit *tk, int port);
/* The connection's descriptor, peer (may be NULL) filled. */
int tailkit_accept(int listener, tailkit_peer *peer);

/* host: a tailnet name (short or FQDN, MagicDNS) or an IP literal.
 * tailkit_dial_start returns a pending descriptor, readable when the dial
 * finished; tailkit_dial_finish then returns the connection (and closes
 * the pending descriptor) or the error; -EAGAIN if not finished yet.
 * tailkit_dial does both, blocking (15 s at most, the netstack's limit). */
int tailkit_dial_start(tailkit *tk, const char *host, int port);
int tailkit_dial_finish(int pending, tailkit_peer *peer);
int tailkit_dial(tailkit *tk, const char *host, int port, tailkit_peer *peer);

/* ---- UDP -------------------------------------------------------------
 *
 * An AF_UNIX SOCK_SEQPACKET descriptor: one message is one datagram,
 * boundaries kept.  Each message carries a 20-byte header (family, flags,
 * be16 port, 16-byte address; netstackd/README.md "UDP descriptors"); the
 * helpers below add and strip it.  Payloads up to 1252 bytes over IPv4,
 * 1232 over IPv6 (the tailnet MTU; no fragmentation).  close() unbinds.
 */
#define TAILKIT_UDP_HDR_LEN 20
/* port 0: an ephemeral port; *bound_port (may be NULL) says which. */
int tailkit_udp_bind(tailkit *tk, int port, int *bound_port);
/* Returns len, or -errno (-EAGAIN on a non-blocking descriptor). */
int tailkit_udp_sendto(int fd, const void *buf, size_t len, const char *ip,
    int port);
/* Returns the datagram's length (longer ones are truncated to len, as
 * recvfrom does); ip (48 bytes is enough) and port receive the sender. */
int tailkit_udp_recvfrom(int fd, void *buf, size_t len, char *ip,
    size_t iplen, int *port);

#ifdef __cplusplus
}
#endif

#endif
