/*
 * A ts2021 connection to a control server, driven by one thread with
 * blocking calls and deadlines: the server key fetch (GET /key), the HTTP
 * upgrade (POST /ts2021) carrying the Noise initiation, the early payload,
 * and HTTP/2 (nghttp2, memory mode) inside the Noise stream, with plain
 * requests and the framed map stream (u32 LE length + zstd or JSON).
 * Facts: ../shared/reference/control-protocol.md §2, §4, §5.
 */
#ifndef CTRLD_CTLCONN_H
#define CTRLD_CTLCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tk/buf.h"
#include "dialplan.h"
#include "tk/keys.h"

/* The capability version tailkit claims (ctrld/README.md says what it
 * promises). */
#define CTRLD_CAPVER 113

/* Largest MapResponse frame accepted, compressed or not: the map state's
 * cap (CTRLDI_MAP_MAX_BYTES, sized for 100,000 peers); testcontrol refuses
 * to send more than 256 MiB. */
#define CTRLD_MAP_MSG_MAX (256u << 20)

typedef struct ctrldi_conn ctrldi_conn;

/* Resolves host into at most max addresses (ports not set): how many. */
typedef size_t (*ctrldi_resolve_fn)(const char *host,
    struct sockaddr_storage *out, size_t max);

typedef struct ctrldi_url {
	bool tls;
	char host[256];
	uint16_t port; /* the URL's (or its scheme's); /key and HEAD use it */
	/*
	 * The ts2021 dial's ports, as ts2021.NewClient sets them: plain HTTP
	 * first, then TLS (0: none).  https://host[:P]: 80, then P (443);
	 * http://host[:P]: P (80), then 443, except for a private or loopback
	 * address or localhost, where there is no TLS try.
	 */
	uint16_t http_port, https_port;
	/* PEM CA bundle trusted besides the system's (self-hosted control
	 * servers with a private CA); NULL: the system's only */
	const char *ca_file;
	/* name resolution; NULL: getaddrinfo (tests replace it) */
	ctrldi_resolve_fn resolve;
	/* the server's ControlDialPlan for the ts2021 dial (NULL or n 0:
	 * resolve the name); borrowed */
	const ctrldi_dial_plan *plan;
} ctrldi_url;

/* "http://host[:port]" or "https://host[:port]"; TK_EINVAL otherwise. */
int ctrldi_url_parse(ctrldi_url *u, const char *url, char *err, size_t errlen);

/*
 * The proxy for a connection to host, from the environment as Go's
 * httpproxy.FromEnvironment reads it: HTTPS_PROXY (https_proxy) for TLS,
 * HTTP_PROXY (http_proxy) otherwise; never for localhost or a loopback
 * address, nor for a host NO_PROXY (no_proxy) names ("*", a domain and
 * its subdomains, a leading "." or "*." alike, an IP address or CIDR,
 * each with an optional :port).  Only http:// proxies (the scheme may be
 * left out), with optional user:password.  0: px->host is the proxy, or
 * "" for none; TK_EINVAL with err for a proxy URL tailkit cannot use.
 */
typedef struct ctrldi_proxy {
	char host[256];
	uint16_t port;
	char auth[400]; /* base64 user:password, or "" */
} ctrldi_proxy;
int ctrldi_proxy_for(const char *host, uint16_t port, bool tls,
    ctrldi_proxy *px, char *err, size_t errlen);

/* GET /key?v=<capver>: the server's Noise key (JSON publicKey). */
int ctrldi_fetch_server_key(const ctrldi_url *u, int timeout_ms,
    tk_machine_pub *out, char *err, size_t errlen);

/* Dials, upgrades, runs the handshake, starts HTTP/2. */
int ctrldi_conn_dial(ctrldi_conn **out, const ctrldi_url *u,
    const tk_machine_priv *mk, const tk_machine_pub *server, int timeout_ms,
    char *err, size_t errlen);
void ctrldi_conn_free(ctrldi_conn *c);
/*
 * During ctrldi_conn_stream, a readable fd (an eventfd) calls fn on this
 * thread, which may ctrldi_conn_submit more requests (lite updates).
 */
void ctrldi_conn_set_wake(ctrldi_conn *c, int fd,
    void (*fn)(void *arg, ctrldi_conn *c), void *arg);
/* Starts a request whose answer is drained and ignored (body copied). */
int ctrldi_conn_submit(ctrldi_conn *c, const char *method, const char *path,
    const char *body, size_t n);
/* HEAD url over plain HTTP/HTTPS (PingRequest answers); *status on 0. */
int ctrldi_http_head(const char *url, int timeout_ms, int *status);
/* From another thread: makes every blocking call on c return now. */
void ctrldi_conn_abort(ctrldi_conn *c);

/* One request with a JSON body; the whole response body into resp. */
int ctrldi_conn_request(ctrldi_conn *c, const char *path, const char *body,
    size_t n, int timeout_ms, int *status, tk_buf *resp, char *err,
    size_t errlen);
/* The Retry-After header of the last ctrldi_conn_request answer ("" if
 * none); borrowed until the next request. */
const char *ctrldi_conn_retry_after(const ctrldi_conn *c);

/*
 * A map stream: each framed MapResponse (decompressed, NUL-terminated,
 * tk_malloc'd) goes to on_msg, which owns it (tk_free) whatever it
 * returns; a non-zero return from on_msg ends the stream with that value.  Returns
 * when the stream ends: TK_ETIMEDOUT after idle_ms without a message,
 * TK_ECLOSED when the server ends it, TK_EPROTO for a bad frame.
 */
typedef int (*ctrldi_msg_fn)(void *arg, char *json, size_t n);
int ctrldi_conn_stream(ctrldi_conn *c, const char *path, const char *body,
    size_t n, bool zstd, int idle_ms, ctrldi_msg_fn on_msg, void *arg,
    int *status, char *err, size_t errlen);

/*
 * HTTP/1.x response heads (RFC 9112), read as Go's net/http reads them:
 * lines end in LF or CR LF; header names compare case-insensitively; any
 * order; extra headers ignored.
 *   ctrldi_http_head_end: just past the empty line ending the head, or 0.
 *   ctrldi_http_head_parse: checks the status line and header lines of
 *     the head [p, p+n); *status on 0, TK_EPROTO if it is not HTTP.
 *   ctrldi_http_header: the first header called name, its value without
 *     surrounding white space (borrowed from p); false if absent.
 */
size_t ctrldi_http_head_end(const char *p, size_t n);
int ctrldi_http_head_parse(const char *p, size_t n, int *status);
bool ctrldi_http_header(const char *p, size_t n, const char *name,
    const char **v, size_t *vl);

/* The early payload's JSON, if the server sent one ("" otherwise). */
const char *ctrldi_conn_early(const ctrldi_conn *c);

#endif
