/*
 * tailscale_loopback's server: one listener on 127.0.0.1, SOCKS5 and the
 * LocalAPI on the same port, as libtailscale's (tsnet's Loopback).  The
 * first byte tells them apart: 0x05 is a SOCKS5 greeting, handed to the
 * node's own SOCKS5 proxy (netstackd's, user "tsnet" and the node's proxy
 * password); anything else is an HTTP request for the LocalAPI, which
 * needs both "Sec-Tailscale: localapi" (403 without: a browser cannot be
 * made to send it) and the LocalAPI password as Basic auth (401 without,
 * 403 wrong), then is answered in-process (tk_localapi_handle).
 *
 * One thread; HTTP requests are served one after another with a 5 s limit
 * per request, SOCKS5 connections leave the thread at once.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "embed_int.h"
#include "ts_int.h"
#include "ts_lbreq.h"

#define IO_MS 5000
#define HEAD_MAX TS_LB_HEAD_MAX

struct ts_loopback {
	tailkit *tk;
	int lfd, stopfd;
	pthread_t thr;
	char cred[TKX_CRED_LEN + 1];
	char addr[64];
};

static void
respond(int fd, int code, const char *reason, const char *extra,
    const char *body)
{
	char b[1024];
	int n = snprintf(b, sizeof(b), "HTTP/1.1 %d %s\r\nContent-Type: "
	    "text/plain; charset=utf-8\r\nContent-Length: %zu\r\n%s"
	    "Connection: close\r\n\r\n%s", code, reason, strlen(body), extra,
	    body);

	if (n > 0 && n < (int)sizeof(b))
		(void)!send(fd, b, (size_t)n, MSG_NOSIGNAL);
}

/* Reads the head and a Content-Length body (bounded) into *req. */
static ssize_t
read_request(int fd, char **req)
{
	size_t cap = HEAD_MAX + 1, n = 0, hl;
	char *b = malloc(cap), *he = NULL;
	long want;

	if (b == NULL)
		return -1;
	while (he == NULL && n < HEAD_MAX) {
		ssize_t k = recv(fd, b + n, HEAD_MAX - n, 0);
		if (k <= 0)
			goto fail;
		n += (size_t)k;
		b[n] = '\0';
		he = strstr(b, "\r\n\r\n");
	}
	if (he == NULL)
		goto fail;
	hl = (size_t)(he + 4 - b);
	he[2] = '\0'; /* the head alone for the lookup */
	want = ts_lb_body_len(b);
	he[2] = '\r';
	if (want < 0)
		goto fail;
	if (hl + (size_t)want + 1 > cap) {
		char *nb = realloc(b, hl + (size_t)want + 1);
		if (nb == NULL)
			goto fail;
		b = nb;
	}
	while (n < hl + (size_t)want) {
		ssize_t k = recv(fd, b + n, hl + (size_t)want - n, 0);
		if (k <= 0)
			goto fail;
		n += (size_t)k;
	}
	if (n > hl + (size_t)want)
		n = hl + (size_t)want;
	b[n] = '\0';
	*req = b;
	return (ssize_t)n;
fail:
	free(b);
	return -1;
}

static void
serve_http(ts_loopback *lb, int fd)
{
	char *req = NULL, *resp;
	const char *why;
	size_t rl;
	ssize_t n = read_request(fd, &req);
	int code;

	if (n < 0) {
		respond(fd, 400, "Bad Request", "", "bad or oversized request\n");
		return;
	}
	if ((code = ts_lb_check(req, lb->cred, &why)) != 0)
		respond(fd, code, code == 401 ? "Unauthorized" : code == 403 ?
		    "Forbidden" : code == 404 ? "Not Found" : "Bad Request",
		    code == 401 ? "WWW-Authenticate: Basic realm=\"tailkit\"\r\n" :
		    "", why);
	else if (tkx_localapi(lb->tk, req, (size_t)n, &resp, &rl) != 0)
		respond(fd, 503, "Service Unavailable", "",
		    "the node is not running\n");
	else {
		for (size_t off = 0; off < rl;) {
			ssize_t k = send(fd, resp + off, rl - off, MSG_NOSIGNAL);
			if (k <= 0)
				break;
			off += (size_t)k;
		}
		free(resp);
	}
	sodium_memzero(req, (size_t)n); /* may hold an auth key (/start) */
	free(req);
}

static void
serve_one(ts_loopback *lb, int fd)
{
	struct timeval tv = { .tv_sec = IO_MS / 1000 };
	uint8_t first;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (recv(fd, &first, 1, MSG_PEEK) != 1) {
		close(fd);
		return;
	}
	if (first == 0x05) { /* SOCKS5 greeting */
		tv.tv_sec = 0;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (tkx_proxy_adopt(lb->tk, fd) != 0)
			close(fd);
		return;
	}
	serve_http(lb, fd);
	close(fd);
}

static void *
run(void *arg)
{
	ts_loopback *lb = arg;

	for (;;) {
		struct pollfd pf[2] = { { .fd = lb->lfd, .events = POLLIN },
			{ .fd = lb->stopfd, .events = POLLIN } };
		if (poll(pf, 2, -1) < 0 && errno != EINTR)
			break;
		if (pf[1].revents)
			break;
		if (!(pf[0].revents & POLLIN))
			continue;
		int fd = accept4(lb->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd >= 0)
			serve_one(lb, fd);
	}
	return NULL;
}

int
ts_loopback_new(ts_loopback **out, tailkit *tk)
{
	ts_loopback *lb;
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	sigset_t all, old;
	int e;

	if (sodium_init() < 0)
		return tkx_fail(EIO, "libsodium did not initialise");
	if ((lb = calloc(1, sizeof(*lb))) == NULL)
		return tkx_fail(ENOMEM, "out of memory");
	lb->tk = tk;
	lb->stopfd = -1;
	tkx_cred(lb->cred);
	if ((lb->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(lb->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(lb->lfd, 64) != 0 ||
	    getsockname(lb->lfd, (struct sockaddr *)&sa, &sl) != 0 ||
	    (lb->stopfd = eventfd(0, EFD_CLOEXEC)) < 0) {
		e = errno;
		goto fail;
	}
	snprintf(lb->addr, sizeof(lb->addr), "127.0.0.1:%u",
	    ntohs(sa.sin_port));
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&lb->thr, NULL, run, lb);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0)
		goto fail;
	*out = lb;
	return 0;
fail:
	if (lb->lfd >= 0)
		close(lb->lfd);
	if (lb->stopfd >= 0)
		close(lb->stopfd);
	free(lb);
	return tkx_fail(e, "loopback listener: %s", strerror(e));
}

const char *
ts_loopback_addr(const ts_loopback *lb)
{
	return lb->addr;
}

const char *
ts_loopback_cred(const ts_loopback *lb)
{
	return lb->cred;
}

void
ts_loopback_free(ts_loopback *lb)
{
	uint64_t one = 1;

	if (lb == NULL)
		return;
	(void)!write(lb->stopfd, &one, sizeof(one));
	pthread_join(lb->thr, NULL);
	close(lb->lfd);
	close(lb->stopfd);
	sodium_memzero(lb->cred, sizeof(lb->cred));
	free(lb);
}
