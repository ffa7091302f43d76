/*
 * tailscale.h: libtailscale's C API, implemented by tailkit (no Go
 * runtime).  The same declarations, types and return conventions as
 * libtailscale's header, so a program written for libtailscale builds
 * against tailkit unchanged: `cc prog.c $(pkg-config --cflags --libs
 * tailkit)`.  tailkit's own API, with more (events, UDP, peer identity),
 * is tailkit.h.  Differences: tools/embed/README.md.
 *
 * Conventions (as libtailscale): most calls return 0, or -1 with a message
 * for tailscale_errmsg; a handle that is not valid gives EBADF, a buffer
 * that is too small ERANGE (positive values).
 */
#ifndef TAILSCALE_H
#define TAILSCALE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A node (libtailscale: a tsnet.Server). */
typedef int tailscale;
/* A connection: a socket descriptor for read(2), write(2), close(2). */
typedef int tailscale_conn;
/* A listener: a descriptor, readable (poll/epoll) when a connection
 * waits; close(2) it to stop listening. */
typedef int tailscale_listener;

/* A new node, not started.  Never fails in practice; -1 if out of
 * memory. */
extern tailscale tailscale_new(void);

/* Starts the node (optional: tailscale_listen and tailscale_dial start
 * it).  0, or -1 (tailscale_errmsg). */
extern int tailscale_start(tailscale sd);

/* Starts the node and waits until it runs on the tailnet; another thread's
 * tailscale_close cancels the wait.  0, or -1 (tailscale_errmsg). */
extern int tailscale_up(tailscale sd);

/* Stops and frees the node.  0; EBADF for an unknown handle; -1 on other
 * errors. */
extern int tailscale_close(tailscale sd);

/* Settings, before the node starts: the state directory, host name, auth
 * key (default: $TS_AUTHKEY, then $TS_AUTH_KEY), control server (default:
 * $TS_CONTROL_URL, then Tailscale's), ephemeral registration.  0, or -1
 * (tailscale_errmsg). */
extern int tailscale_set_dir(tailscale sd, const char *dir);
extern int tailscale_set_hostname(tailscale sd, const char *hostname);
extern int tailscale_set_authkey(tailscale sd, const char *authkey);
extern int tailscale_set_control_url(tailscale sd, const char *control_url);
extern int tailscale_set_ephemeral(tailscale sd, int ephemeral);

/* Logs to fd; -1 discards them.  0, or -1 (tailscale_errmsg). */
extern int tailscale_set_logfd(tailscale sd, int fd);

/* The node's addresses, comma-separated ("<ipv4>,<ipv6>"; may be empty).
 * 0, EBADF, or ERANGE when buf is too small (it then holds a prefix). */
extern int tailscale_getips(tailscale sd, char *buf, size_t buflen);

/* Connects to addr ("host:port"; host a tailnet name or IP) over network
 * "tcp", "tcp4" or "tcp6"; starts the node if needed.  0 and *conn_out,
 * or -1 (tailscale_errmsg). */
extern int tailscale_dial(tailscale sd, const char *network, const char *addr,
    tailscale_conn *conn_out);

/* Listens on addr (":port" or "ip:port" of the node) over network "tcp",
 * "tcp4" or "tcp6"; starts the node if needed.  0 and *listener_out, or
 * -1 (tailscale_errmsg). */
extern int tailscale_listen(tailscale sd, const char *network,
    const char *addr, tailscale_listener *listener_out);

/* The remote IP of conn, accepted on l ("100.64.0.2", or "[fd7a::2]" for
 * IPv6, as libtailscale writes it).  0, EBADF (unknown listener or
 * connection), ERANGE. */
extern int tailscale_getremoteaddr(tailscale_listener l, tailscale_conn conn,
    char *buf, size_t buflen);

/* Waits for the next connection on listener.  0 and *conn_out; EBADF for
 * an unknown listener; -1 (tailscale_errmsg of the listener's node). */
extern int tailscale_accept(tailscale_listener listener,
    tailscale_conn *conn_out);

/* Serves a SOCKS5 proxy into the tailnet (user "tsnet", password
 * *proxy_cred_out) and the LocalAPI under /localapi/ (header
 * "Sec-Tailscale: localapi" and Basic auth password *local_api_cred_out)
 * on one loopback address, written to addr_out ("127.0.0.1:port").  Both
 * credential buffers hold 33 bytes (32 characters and a NUL).  0, or -1
 * (tailscale_errmsg); ERANGE if addr_out is too small. */
extern int tailscale_loopback(tailscale sd, char *addr_out, size_t addrlen,
    char *proxy_cred_out, char *local_api_cred_out);

/* Tailscale Funnel: not available in tailkit; always -1 with a message
 * saying so (EBADF for an unknown handle). */
extern int tailscale_enable_funnel_to_localhost_plaintext_http1(tailscale sd,
    int localhostPort);

/* The last error's message of sd's calls; buf is always NUL-terminated.
 * 0, EBADF, or ERANGE (truncated). */
extern int tailscale_errmsg(tailscale sd, char *buf, size_t buflen);

#ifdef __cplusplus
}
#endif

#endif
