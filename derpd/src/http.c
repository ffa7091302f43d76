/*
 * The HTTP/1.1 side of derpd: a bounded request-head parser of our own
 * (nothing from the network is trusted: lines, header count and head size
 * are capped, anything malformed gets 400 and a close) and the handlers
 * cmd/derper and derpserver/handler.go serve.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "server_int.h"
#include "tk/err.h"
#include "tk/mem.h"

#define HEAD_MAX (16u << 10)
#define HDRS_MAX 64
#define HTTP_OUT_MAX (64u << 10)

typedef struct hreq {
	const char *method;
	size_t mlen;
	const char *path; /* without the query */
	size_t plen;
	int minor; /* HTTP/1.minor */
	const char *upgrade, *connection, *fast_start, *ideal, *challenge;
	const char *clen, *te, *host, *wsproto, *wskey;
	size_t upgrade_l, connection_l, fast_start_l, ideal_l, challenge_l;
	size_t clen_l, te_l, host_l, wsproto_l, wskey_l;
} hreq;

static bool
tchar(int c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool
ieq(const char *a, size_t al, const char *b)
{
	return al == strlen(b) && strncasecmp(a, b, al) == 0;
}

/* Does a comma list (Connection, Sec-WebSocket-Protocol) hold tok? */
static bool
list_has(const char *v, size_t n, const char *tok)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		size_t st = i;
		while (i < n && v[i] != ',')
			i++;
		size_t e = i;
		while (e > st && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e > st && ieq(v + st, e - st, tok))
			return true;
	}
	return false;
}

/*
 * Parses the head in p[0..n) (it ends with the blank line).  0 or
 * TK_EPROTO.  Pointers point into p.
 */
static int
parse_head(const char *p, size_t n, hreq *r)
{
	const char *end = p + n, *line = p, *nl;
	int nh = 0;

	memset(r, 0, sizeof(*r));
	/* request line */
	nl = memchr(line, '\n', (size_t)(end - line));
	if (nl == NULL)
		return TK_EPROTO;
	const char *le = nl > line && nl[-1] == '\r' ? nl - 1 : nl;
	const char *sp1 = memchr(line, ' ', (size_t)(le - line));
	if (sp1 == NULL || sp1 == line)
		return TK_EPROTO;
	for (const char *q = line; q < sp1; q++)
		if (!tchar((unsigned char)*q))
			return TK_EPROTO;
	r->method = line;
	r->mlen = (size_t)(sp1 - line);
	const char *tgt = sp1 + 1;
	const char *sp2 = memchr(tgt, ' ', (size_t)(le - tgt));
	if (sp2 == NULL || sp2 == tgt)
		return TK_EPROTO;
	if ((size_t)(le - sp2 - 1) != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
	    (sp2[8] != '0' && sp2[8] != '1'))
		return TK_EPROTO;
	r->minor = sp2[8] - '0';
	for (const char *q = tgt; q < sp2; q++)
		if ((unsigned char)*q <= ' ' || *q == 0x7f)
			return TK_EPROTO;
	/* absolute form: skip scheme://authority */
	if ((size_t)(sp2 - tgt) > 7 && (strncasecmp(tgt, "http://", 7) == 0 ||
	    strncasecmp(tgt, "https://", 8) == 0)) {
		const char *a = memchr(tgt, '/', (size_t)(sp2 - tgt));
		a = memchr(a + 2, '/', (size_t)(sp2 - a - 2));
		tgt = a ? a : "/";
		if (a == NULL)
			sp2 = tgt + 1;
	}
	if (*tgt != '/' && !(sp2 - tgt == 1 && *tgt == '*'))
		return TK_EPROTO;
	const char *qm = memchr(tgt, '?', (size_t)(sp2 - tgt));
	r->path = tgt;
	r->plen = (size_t)((qm ? qm : sp2) - tgt);

	/* header lines */
	for (line = nl + 1; line < end; line = nl + 1) {
		nl = memchr(line, '\n', (size_t)(end - line));
		if (nl == NULL)
			return TK_EPROTO;
		le = nl > line && nl[-1] == '\r' ? nl - 1 : nl;
		if (le == line)
			return 0; /* the blank line */
		if (++nh > HDRS_MAX)
			return TK_EPROTO;
		const char *colon = memchr(line, ':', (size_t)(le - line));
		if (colon == NULL || colon == line)
			return TK_EPROTO;
		for (const char *q = line; q < colon; q++)
			if (!tchar((unsigned char)*q))
				return TK_EPROTO;
		const char *v = colon + 1, *ve = le;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		for (const char *q = v; q < ve; q++)
			if ((unsigned char)*q < 0x20 && *q != '\t')
				return TK_EPROTO;
		size_t nlen = (size_t)(colon - line), vl = (size_t)(ve - v);
#define H(name, f)                                                           \
	if (ieq(line, nlen, name) && r->f == NULL) {                         \
		r->f = v;                                                    \
		r->f##_l = vl;                                               \
		continue;                                                    \
	}
		H("Upgrade", upgrade);
		H("Connection", connection);
		H("Derp-Fast-Start", fast_start);
		H("Ideal-Node", ideal);
		H("X-Tailscale-Challenge", challenge);
		H("Content-Length", clen);
		H("Transfer-Encoding", te);
		H("Host", host);
		H("Sec-WebSocket-Protocol", wsproto);
		H("Sec-WebSocket-Key", wskey);
#undef H
	}
	return TK_EPROTO;
}

/* --- responses -------------------------------------------------------------- */

static const char *
reason(int code)
{
	switch (code) {
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 204: return "No Content";
	case 302: return "Found";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 426: return "Upgrade Required";
	case 431: return "Request Header Fields Too Large";
	default: return "Unknown";
	}
}

static void
respond(derpdi_conn *c, int code, const char *extra, const char *ctype,
    const char *body, size_t blen, bool head_only, bool close)
{
	char h[1024], cl[48] = "";
	if (code != 204) /* RFC 9110 8.6: never on a 204 */
		snprintf(cl, sizeof(cl), "Content-Length: %zu\r\n", blen);
	int n = snprintf(h, sizeof(h), "HTTP/1.1 %d %s\r\n%s%s%s%s%s%s\r\n",
	    code, reason(code), extra ? extra : "", ctype ? "Content-Type: " : "",
	    ctype ? ctype : "", ctype ? "\r\n" : "", cl,
	    close ? "Connection: close\r\n" : "");
	if (n < 0 || (size_t)n >= sizeof(h) || derpdi_out(c, h, (size_t)n) != 0 ||
	    (!head_only && code != 204 && blen &&
		derpdi_out(c, body, blen) != 0)) {
		derpdi_conn_close(c, CLOSE_NOMEM);
		return;
	}
	if (close)
		c->close_after_write = true;
	derpdi_conn_mark_dirty(c);
}

static void
error_text(derpdi_conn *c, int code, const char *msg, bool head, bool close)
{
	char b[256];
	int n = snprintf(b, sizeof(b), "%s\n", msg);
	respond(c, code, "X-Content-Type-Options: nosniff\r\n",
	    "text/plain; charset=utf-8", b, (size_t)n, head, close);
}

static bool
is_challenge_char(char ch)
{
	return isalnum((unsigned char)ch) || ch == '.' || ch == '-' ||
	    ch == '_' || ch == ':';
}

/* derpserver/handler.go ServeNoContent */
static void
no_content(derpdi_conn *c, const hreq *r, bool close)
{
	char extra[256];
	size_t n = 0;

	extra[0] = '\0';
	if (r->challenge && r->challenge_l > 0 &&
	    r->challenge_l <= TK_DERP_CHALLENGE_MAX) {
		bool ok = true;
		for (size_t i = 0; i < r->challenge_l; i++)
			ok = ok && is_challenge_char(r->challenge[i]);
		if (ok)
			n = (size_t)snprintf(extra, sizeof(extra),
			    TK_DERP_HDR_RESPONSE ": response %.*s\r\n",
			    (int)r->challenge_l, r->challenge);
	}
	snprintf(extra + n, sizeof(extra) - n,
	    "Cache-Control: no-cache, no-store, must-revalidate, no-transform, max-age=0\r\n");
	respond(c, 204, extra, NULL, NULL, 0, true, close);
}

static const char homepage[] =
    "<html><body>\n<h1>DERP</h1>\n<p>\n"
    "  This is a <a href=\"https://tailscale.com/\">Tailscale</a> DERP server,\n"
    "  served by tailkit's derpd.\n</p>\n"
    "<p>\n  It provides STUN, interactive connectivity establishment, and "
    "relaying of end-to-end encrypted traffic\n  for Tailscale clients.\n</p>\n"
    "<ul>\n<li><a href=\"/derp/probe\">/derp/probe</a></li>\n"
    "<li><a href=\"/generate_204\">/generate_204</a></li>\n"
    "<li><a href=\"/metrics\">/metrics</a></li>\n</ul>\n</body></html>\n";

static void
upgrade(derpdi_conn *c, const hreq *r)
{
	derpd_server *s = c->s;
	bool fast = r->fast_start && r->fast_start_l == 1 && r->fast_start[0] == '1';

	if (!fast) {
		char h[512];
		int n = snprintf(h, sizeof(h),
		    "HTTP/1.1 101 Switching Protocols\r\n"
		    "Upgrade: DERP\r\n"
		    "Connection: Upgrade\r\n"
		    TK_DERP_HDR_VERSION ": %d\r\n"
		    TK_DERP_HDR_PUBLIC_KEY ": %s\r\n\r\n",
		    TK_DERP_PROTOCOL_VERSION, s->pubhex);
		if (derpdi_out(c, h, (size_t)n) != 0) {
			derpdi_conn_close(c, CLOSE_NOMEM);
			return;
		}
	} else {
		s->st.derp_fast_start++;
	}
	s->st.derp_upgrades++;
	c->not_ideal = r->ideal && r->ideal_l > 0;
	derpdi_derp_begin(c);
}

static void
route(derpdi_conn *c, const hreq *r, bool close)
{
	derpd_server *s = c->s;
	bool get = ieq(r->method, r->mlen, "GET");
	bool head = ieq(r->method, r->mlen, "HEAD");

#define PATH(x) ieq(r->path, r->plen, x)
	if (PATH(TK_DERP_GENERATE_204_PATH)) {
		no_content(c, r, close);
		return;
	}
	if (PATH(TK_DERP_PROBE_PATH) || PATH(TK_DERP_LATENCY_PATH)) {
		if (get || head)
			respond(c, 200, "Access-Control-Allow-Origin: *\r\n", NULL,
			    NULL, 0, head, close);
		else
			error_text(c, 405, "bogus probe method", false, close);
		return;
	}
	if (c->plain_only) {
		/* derper's port 80 with TLS on: everything else goes to https */
		if (get || head) {
			char loc[600];
			const char *h = s->cfg.hostname ? s->cfg.hostname : "localhost";
			snprintf(loc, sizeof(loc), "Location: https://%s%.*s\r\n", h,
			    (int)TK_MIN(r->plen, 400), r->path);
			respond(c, 302, loc, NULL, NULL, 0, head, close);
		} else {
			error_text(c, 400, "Use HTTPS", false, close);
		}
		return;
	}
	if (PATH(TK_DERP_HTTP_PATH)) {
		bool derp = r->upgrade && ieq(r->upgrade, r->upgrade_l, "derp");
		bool ws = r->upgrade && ieq(r->upgrade, r->upgrade_l, "websocket");
		/* derpserver/websocket.go: "derp" anywhere in the subprotocol
		 * header means DERP over WebSocket */
		if (ws && r->wsproto && memmem(r->wsproto, r->wsproto_l, "derp", 4)) {
			if (!r->wskey || derpdi_ws_accept(c, r->wskey, r->wskey_l) != 0) {
				error_text(c, 400, "Bad WebSocket upgrade", head, true);
				return;
			}
			s->st.derp_upgrades++;
			c->not_ideal = r->ideal && r->ideal_l > 0;
			derpdi_derp_begin(c);
			return;
		}
		if (derp || ws) { /* old clients said websocket without the
				   * subprotocol and meant plain DERP */
			upgrade(c, r);
			return;
		}
		error_text(c, 426, "DERP requires connection upgrade", head, close);
		return;
	}
	if (PATH("/")) {
		respond(c, 200, NULL, "text/html; charset=utf-8", homepage,
		    sizeof(homepage) - 1, head, close);
		return;
	}
	if (PATH("/robots.txt")) {
		static const char rb[] = "User-agent: *\nDisallow: /\n";
		respond(c, 200, NULL, "text/plain; charset=utf-8", rb,
		    sizeof(rb) - 1, head, close);
		return;
	}
	if (PATH("/metrics")) {
		static char mb[16384]; /* loop thread only */
		size_t n = derpdi_metrics(s, mb, sizeof(mb));
		respond(c, 200, NULL, "text/plain; version=0.0.4", mb, n, head,
		    close);
		return;
	}
#undef PATH
	error_text(c, 404, "404 page not found", head, close);
}

int
derpdi_http_input(derpdi_conn *c)
{
	derpd_server *s = c->s;

	while (c->st == CS_HTTP && !c->close_after_write) {
		/* pipelined requests from a client that does not read its
		 * answers: stop parsing (and reading) until they are written */
		if (c->olen - c->ooff > HTTP_OUT_MAX) {
			c->http_blocked = true;
			return 0;
		}
		const char *p = (const char *)c->ib + c->ioff;
		size_t n = c->ilen - c->ioff, hl = 0;
		/* end of head: "\n\r\n" or "\n\n" */
		for (size_t i = 0; i + 1 < n; i++) {
			if (p[i] != '\n')
				continue;
			if (p[i + 1] == '\n') {
				hl = i + 2;
				break;
			}
			if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n') {
				hl = i + 3;
				break;
			}
		}
		if (hl == 0) {
			if (n >= HEAD_MAX - 1) {
				s->st.http_bad++;
				error_text(c, 431, "431 Request Header Fields Too Large",
				    false, true);
			}
			return 0;
		}
		hreq r;
		s->st.http_requests++;
		if (parse_head(p, hl, &r) != 0) {
			s->st.http_bad++;
			c->ioff += hl;
			error_text(c, 400, "400 Bad Request", false, true);
			return 0;
		}
		c->ioff += hl;
		/* A body we do not read: answer, then close.  Keep-alive
		 * otherwise, as HTTP/1.1 says. */
		bool body = (r.clen && !(r.clen_l == 1 && r.clen[0] == '0')) ||
		    r.te != NULL;
		bool close = body || (r.connection &&
		    list_has(r.connection, r.connection_l, "close")) ||
		    (r.minor == 0 && !(r.connection &&
			list_has(r.connection, r.connection_l, "keep-alive")));
		c->deadline_ns = derpdi_now(s) + 30 * TK_NSEC_PER_SEC;
		route(c, &r, close);
	}
	return 0;
}

/* --- /metrics ----------------------------------------------------------------- */

static const char *const drop_names[DROP_N_] = {
	"unknown_dest", "unknown_dest_on_fwd", "gone_disconnected",
	"queue_head", "queue_tail", "write_error", "dup_client",
};
static const char *const close_names[CLOSE_N_] = {
	"eof", "read_error", "write_timeout", "write_error",
	"handshake_timeout", "bad_http", "bad_first_frame", "bad_box",
	"bad_client_info", "not_admitted", "bad_frame", "no_permission",
	"close_peer", "accept_limit", "nomem", "shutdown", "http_done",
};

/* A counter labelled by reason, appended at out[n..cap): the new n. */
static size_t
by_reason(char *out, size_t n, size_t cap, const char *name, const char *help,
    const char *const *reasons, const uint64_t *v, int count)
{
	int k = snprintf(out + n, cap - n, "# HELP derp_%s %s, by reason\n"
	    "# TYPE derp_%s counter\n", name, help, name);

	for (int i = 0; i <= count; i++) {
		if (k > 0 && (size_t)k < cap - n)
			n += (size_t)k;
		if (i < count)
			k = snprintf(out + n, cap - n,
			    "derp_%s{reason=\"%s\"} %llu\n", name, reasons[i],
			    (unsigned long long)v[i]);
	}
	return n;
}

size_t
derpdi_metrics(derpd_server *s, char *out, size_t cap)
{
	size_t n = 0;
	const derpdi_stats *st = &s->st;
#define P(...)                                                               \
	do {                                                                 \
		int k_ = snprintf(out + n, cap - n, __VA_ARGS__);            \
		if (k_ > 0 && (size_t)k_ < cap - n)                          \
			n += (size_t)k_;                                     \
	} while (0)
#define C(name, help, v)                                                     \
	P("# HELP derp_" name " " help "\n# TYPE derp_" name " counter\n"     \
	  "derp_" name " %llu\n", (unsigned long long)(v))
#define G(name, help, v)                                                     \
	P("# HELP derp_" name " " help "\n# TYPE derp_" name " gauge\n"       \
	  "derp_" name " %lld\n", (long long)(v))
	C("accepts_total", "TCP connections accepted", st->accepts);
	C("accepts_limited_total", "connections closed by the accept rate limit",
	    st->accepts_limited);
	C("http_requests_total", "HTTP request heads parsed", st->http_requests);
	C("http_bad_requests_total", "malformed HTTP request heads", st->http_bad);
	C("upgrades_total", "DERP upgrades", st->derp_upgrades);
	C("fast_start_total", "DERP upgrades with Derp-Fast-Start", st->derp_fast_start);
	C("tls_handshake_failures_total", "failed TLS handshakes",
	    st->tls_handshake_failures);
	G("current_connections", "open TCP connections", st->cur_conns);
	G("current_clients", "registered DERP connections", st->cur_clients);
	G("current_home_connections", "clients that said this is home",
	    st->cur_home_clients);
	G("current_dup_client_keys", "keys with 2+ connections", st->dup_client_keys);
	G("current_dup_client_conns", "connections sharing a key",
	    st->dup_client_conns);
	C("dup_client_conns_total", "connections accepted while their key was connected",
	    st->dup_client_conn_total);
	G("current_watchers", "mesh watchers", st->watchers);
	C("packets_received_total", "packets received", st->packets_recv);
	C("bytes_received_total", "packet bytes received", st->bytes_recv);
	C("packets_received_disco_total", "disco packets received",
	    st->packets_recv_disco);
	C("packets_received_other_total", "non-disco packets received",
	    st->packets_recv_other);
	C("packets_sent_total", "packets written to clients", st->packets_sent);
	C("bytes_sent_total", "packet bytes written to clients", st->bytes_sent);
	C("packets_forwarded_out_total", "packets sent to mesh peers",
	    st->packets_forwarded_out);
	C("packets_forwarded_in_total", "packets received from mesh peers",
	    st->packets_forwarded_in);
	n = by_reason(out, n, cap, "packets_dropped_total", "packets dropped",
	    drop_names, st->packets_dropped, DROP_N_);
	n = by_reason(out, n, cap, "bytes_dropped_total", "bytes dropped",
	    drop_names, st->bytes_dropped, DROP_N_);
	n = by_reason(out, n, cap, "conn_closes_total", "connections closed",
	    close_names, st->closes, CLOSE_N_);
	C("peer_gone_disconnected_frames_total", "PeerGone(Disconnected) frames sent",
	    st->peer_gone_disconnected_frames);
	C("peer_gone_not_here_frames_total", "PeerGone(NotHere) frames sent",
	    st->peer_gone_not_here_frames);
	C("got_ping_total", "Ping frames received", st->got_ping);
	C("sent_pong_total", "Pong frames sent", st->sent_pong);
	C("unknown_frames_total", "frames of unknown type skipped",
	    st->unknown_frames);
	C("home_moves_in_total", "clients that made this server home",
	    st->home_moves_in);
	C("home_moves_out_total", "clients that moved home away", st->home_moves_out);
	C("write_timeouts_total", "connections closed by the write timeout",
	    st->write_timeouts);
	C("stun_requests_total", "STUN binding requests answered", st->stun_requests);
	C("stun_bad_total", "UDP datagrams that were not STUN binding requests",
	    st->stun_bad);
	C("admission_denied_total", "clients refused admission",
	    st->admission_denied);
	C("admission_fail_open_total", "clients admitted because the admission URL failed",
	    st->admission_fail_open);
	C("mesh_connects_total", "mesh links established", st->mesh_connects);
	C("websocket_accepts_total", "DERP-over-WebSocket upgrades",
	    st->websocket_accepts);
	C("websocket_bad_total", "WebSocket connections closed for a bad frame",
	    st->websocket_bad);
	C("rate_limit_waits_total", "times a client's reads paused for --rate-config",
	    st->rate_limit_waits);
	G("uptime_seconds", "seconds since start",
	    (derpdi_now(s) - s->started_ns) / TK_NSEC_PER_SEC);
#undef C
#undef G
#undef P
	return n;
}
