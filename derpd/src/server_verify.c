/*
 * --verify-client-url: the admission controller (derpserver.go
 * verifyClient).  For each client that passed the ClientInfo check, POST
 * {"NodePublic":"nodekey:<hex>","Source":"<ip>"} and admit only on HTTP
 * 200 with {"Allow":true} (body read limit 4 KiB, 5 s for everything).
 * --verify-client-url-fail-open admits when the controller cannot be
 * reached (connect error, or no complete response head in time); a
 * non-200 status, bad JSON or Allow:false always refuses.
 *
 * --verify-clients comes first when set (derpserver.go verifyClient): ask
 * the local tailscaled over its LocalAPI socket whether the node key is a
 * known peer (GET /localapi/v0/whois?addr=nodekey:<hex>); 404 refuses, so
 * does any other failure (no fail-open for this one).
 *
 * One non-blocking HTTP/1.1 request per step on the server loop, with
 * "Connection: close".  http:// only; the host is resolved once at start.
 */
#include <sys/un.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "server_int.h"
#include "tk/err.h"
#include "tk/keys.h"
#include "tk/mem.h"

#define VERIFY_TIMEOUT_NS (5 * TK_NSEC_PER_SEC)
#define BODY_MAX	  (4u << 10)
#define RESP_MAX	  (16u << 10)
#define STAGE_TAILSCALED 0
#define STAGE_URL	 1
#define DEFAULT_TAILSCALED_SOCKET "/var/run/tailscale/tailscaled.sock"

static int start_stage(derpdi_verify *v);

struct derpdi_verify {
	derpdi_conn *c;
	int stage; /* STAGE_TAILSCALED, then STAGE_URL */
	int fd;
	tk_loop_timer *timer;
	char req[1024];
	size_t reqlen, reqoff;
	char resp[RESP_MAX + 1];
	size_t resplen;
};

int
derpdi_verify_setup(derpd_server *s, char *err, size_t errlen)
{
	const char *u = s->cfg.verify_client_url + 7; /* after http:// */
	const char *slash = strchr(u, '/');
	size_t hl = slash ? (size_t)(slash - u) : strlen(u);
	char hostport[256], port[8] = "80";

	if (hl == 0 || hl >= sizeof(hostport)) {
		snprintf(err, errlen, "--verify-client-url: no host in '%s'",
		    s->cfg.verify_client_url);
		return TK_EINVAL;
	}
	memcpy(hostport, u, hl);
	hostport[hl] = '\0';
	snprintf(s->vhost, sizeof(s->vhost), "%s", hostport);
	snprintf(s->vpath, sizeof(s->vpath), "%s", slash ? slash : "/");
	char *h = hostport, *colon;
	if (*h == '[') {
		char *e = strchr(h, ']');
		if (!e) {
			snprintf(err, errlen, "--verify-client-url: bad host");
			return TK_EINVAL;
		}
		*e = '\0';
		colon = e[1] == ':' ? e + 1 : NULL;
		h++;
	} else {
		colon = strrchr(h, ':');
		if (colon)
			*colon = '\0';
	}
	if (colon)
		snprintf(port, sizeof(port), "%s", colon + 1);
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	int rc = getaddrinfo(h, port, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "--verify-client-url: cannot resolve '%s': %s",
		    h, gai_strerror(rc));
		return TK_EINVAL;
	}
	memcpy(&s->vaddr, ai->ai_addr, ai->ai_addrlen);
	s->vaddrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static void
finish(derpdi_verify *v, int verdict) /* 1 allow, 0 deny, -1 transport failure */
{
	derpdi_conn *c = v->c;
	derpd_server *s = c->s;

	if (v->stage == STAGE_TAILSCALED) {
		if (verdict < 0)
			TK_LOG_RL(&s->log_rl, s->clock, TK_LOG_WARN, DERPD_LOG,
			    "--verify-clients: local tailscaled did not answer; "
			    "refusing %s", c->ipstr);
		if (verdict == 1 && s->cfg.verify_client_url != NULL) {
			/* next step: the admission controller */
			if (v->fd >= 0) {
				tk_loop_fd_del(s->loop, v->fd);
				close(v->fd);
				v->fd = -1;
			}
			v->stage = STAGE_URL;
			v->reqoff = v->resplen = 0;
			v->resp[0] = '\0';
			if (start_stage(v) == 0)
				return;
			verdict = 0;
		}
		derpdi_verify_cancel(c);
		derpdi_derp_admit(c, verdict == 1);
		if (verdict == 1)
			derpdi_conn_resume(c);
		return;
	}
	derpdi_verify_cancel(c);
	if (verdict < 0) {
		if (s->cfg.verify_client_url_fail_open) {
			s->st.admission_fail_open++;
			TK_LOG_RL(&s->log_rl, s->clock, TK_LOG_WARN, DERPD_LOG,
			    "admission controller unreachable; allowing %s",
			    c->ipstr);
			verdict = 1;
		} else {
			verdict = 0;
		}
	}
	derpdi_derp_admit(c, verdict == 1);
	if (verdict == 1)
		derpdi_conn_resume(c);
}

/* Decodes the response in v->resp: 1 allow, 0 deny, -1 incomplete head. */
static int
judge(derpdi_verify *v)
{
	char *r = v->resp;
	r[v->resplen] = '\0';
	char *end = strstr(r, "\r\n\r\n");
	if (end == NULL)
		return -1;
	if (strncmp(r, "HTTP/1.", 7) != 0 || strncmp(r + 8, " 200", 4) != 0)
		return 0; /* tailscaled: 404 = not a peer; anything else fails too */
	if (v->stage == STAGE_TAILSCALED)
		return 1;
	char *body = end + 4;
	size_t blen = v->resplen - (size_t)(body - r);
	/* Transfer-Encoding: chunked: join the chunks in place */
	bool chunked = false;
	for (char *l = strstr(r, "\r\n"); l && l < end; l = strstr(l + 2, "\r\n")) {
		if (strncasecmp(l + 2, "Transfer-Encoding:", 18) == 0 &&
		    strstr(l + 2, "chunked") && strstr(l + 2, "chunked") < end)
			chunked = true;
	}
	if (chunked) {
		char *in = body, *out = body, *lim = body + blen;
		for (;;) {
			char *e;
			unsigned long n = strtoul(in, &e, 16);
			char *crlf = strstr(in, "\r\n");
			if (crlf == NULL || e == in)
				return 0;
			in = crlf + 2;
			if (n == 0)
				break;
			if (n > (unsigned long)(lim - in))
				return 0;
			memmove(out, in, n);
			out += n;
			in += n + 2;
			if (in > lim)
				return 0;
		}
		blen = (size_t)(out - body);
	}
	if (blen > BODY_MAX)
		blen = BODY_MAX; /* io.LimitReader(4 KiB): what is cut is bad JSON */
	json_error_t je;
	json_t *j = json_loadb(body, blen, JSON_DISABLE_EOF_CHECK, &je);
	if (j == NULL || !json_is_object(j)) {
		json_decref(j);
		return 0;
	}
	/* encoding/json matches keys case-insensitively */
	int allow = 0;
	const char *k;
	json_t *val;
	json_object_foreach(j, k, val) {
		if (strcasecmp(k, "Allow") == 0)
			allow = json_is_true(val) ? 1 : 0;
	}
	json_decref(j);
	return allow;
}

static void
on_io(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	derpdi_verify *v = arg;
	(void)loop;

	if (v->reqoff < v->reqlen) {
		if (ev & TK_LOOP_ERROR) {
			finish(v, -1);
			return;
		}
		ssize_t n = send(fd, v->req + v->reqoff, v->reqlen - v->reqoff,
		    MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			finish(v, -1);
			return;
		}
		if (n > 0)
			v->reqoff += (size_t)n;
		if (v->reqoff == v->reqlen)
			tk_loop_fd_mod(v->c->s->loop, fd, TK_LOOP_READ);
		return;
	}
	ssize_t n = recv(fd, v->resp + v->resplen, RESP_MAX - v->resplen, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0)
		v->resplen += (size_t)n;
	if (n <= 0 || v->resplen == RESP_MAX) {
		int verdict = judge(v);
		/* a reset before the head is a transport failure */
		finish(v, verdict);
	}
}

static void
on_timeout(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	derpdi_verify *v = arg;
	(void)loop;
	(void)t;
	/* Go: the 5 s context covers the request and the body read; a
	 * complete head with a late body is a decode error (refuse). */
	finish(v, strstr(v->resp, "\r\n\r\n") ? 0 : -1);
}

/* Builds the request of v's stage, connects, registers the fd. */
static int
start_stage(derpdi_verify *v)
{
	derpdi_conn *c = v->c;
	derpd_server *s = c->s;
	char kt[TK_KEY_TEXT_MAX], ip[64], body[256];
	struct sockaddr_storage ss;
	socklen_t sl;

	tk_key_format(kt, TK_PREFIX_NODE_PUB, c->key);
	if (v->stage == STAGE_TAILSCALED) {
		/* client/local WhoIsNodeKey; the Host must be this name */
		const char *hex = kt + strlen(TK_PREFIX_NODE_PUB);
		v->reqlen = (size_t)snprintf(v->req, sizeof(v->req),
		    "GET /localapi/v0/whois?addr=nodekey%%3A%s HTTP/1.1\r\n"
		    "Host: local-tailscaled.sock\r\nUser-Agent: tailkit-derpd\r\n"
		    "Connection: close\r\n\r\n", hex);
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;
		const char *path = s->cfg.tailscaled_socket ?
		    s->cfg.tailscaled_socket : DEFAULT_TAILSCALED_SOCKET;
		memset(un, 0, sizeof(*un));
		un->sun_family = AF_UNIX;
		snprintf(un->sun_path, sizeof(un->sun_path), "%s", path);
		sl = sizeof(*un);
	} else {
		/* Source: the client's address without the port (netip.Addr) */
		snprintf(ip, sizeof(ip), "%s", c->ipstr);
		char *colon = strrchr(ip, ':');
		if (colon)
			*colon = '\0';
		char *ipp = ip;
		if (ipp[0] == '[') {
			ipp++;
			ipp[strlen(ipp) - 1] = '\0';
		}
		int bl = snprintf(body, sizeof(body),
		    "{\"NodePublic\":\"%s\",\"Source\":\"%s\"}", kt, ipp);
		v->reqlen = (size_t)snprintf(v->req, sizeof(v->req),
		    "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tailkit-derpd\r\n"
		    "Content-Length: %d\r\nConnection: close\r\n\r\n%s",
		    s->vpath, s->vhost, bl, body);
		memcpy(&ss, &s->vaddr, s->vaddrlen);
		sl = s->vaddrlen;
	}
	if (!tk_loop_timer_armed(v->timer) &&
	    tk_loop_timer_arm(v->timer, VERIFY_TIMEOUT_NS, 0) != 0)
		return TK_ENOMEM;
	v->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (v->fd < 0)
		return tk_err_sys(errno);
	if (connect(v->fd, (struct sockaddr *)&ss, sl) != 0 &&
	    errno != EINPROGRESS) {
		/* refused at once: a transport failure, decided now */
		finish(v, -1);
		return 0;
	}
	if (tk_loop_fd_add(s->loop, v->fd, TK_LOOP_WRITE, on_io, v) != 0)
		return TK_ENOMEM;
	return 0;
}

int
derpdi_verify_start(derpdi_conn *c)
{
	derpd_server *s = c->s;
	derpdi_verify *v = tk_calloc(1, sizeof(*v));

	if (v == NULL)
		return TK_ENOMEM;
	v->c = c;
	v->fd = -1;
	v->stage = s->cfg.verify_clients ? STAGE_TAILSCALED : STAGE_URL;
	c->verify = v;
	/* one 5 s budget for every step, as Go's context */
	if (tk_loop_timer_new(s->loop, &v->timer, on_timeout, v) != 0 ||
	    start_stage(v) != 0) {
		derpdi_verify_cancel(c);
		return TK_ENOMEM;
	}
	return 0;
}

void
derpdi_verify_cancel(derpdi_conn *c)
{
	derpdi_verify *v = c->verify;
	if (v == NULL)
		return;
	c->verify = NULL;
	if (v->fd >= 0) {
		tk_loop_fd_del(c->s->loop, v->fd);
		close(v->fd);
	}
	tk_loop_timer_free(v->timer);
	tk_free(v);
}
