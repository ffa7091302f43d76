/*
 * tailkit status --web [--listen ADDR:PORT]: a live HTML status page on
 * loopback, like `tailscale status --web` (default 127.0.0.1:8384).  Each
 * request reads the LocalAPI's status afresh; the page reloads itself every
 * few seconds.  Peer names, OS strings and the rest come from the tailnet,
 * so everything is HTML-escaped; requests whose Host is not a loopback name
 * are refused (a web page elsewhere could otherwise read the status through
 * DNS rebinding).  Runs until SIGINT or SIGTERM.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli_int.h"

#define WEB_DEFAULT_LISTEN "127.0.0.1:8384"
#define WEB_REFRESH_S	   3
#define WEB_HEAD_MAX	   8192

static volatile sig_atomic_t web_stop;

static void
on_signal(int sig)
{
	(void)sig;
	web_stop = 1;
}

static void
esc(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: fputc(*s, f);
		}
	}
}

static void
esc_ips(FILE *f, const json_t *ps)
{
	size_t i;
	json_t *ip;

	json_array_foreach(json_object_get(ps, "TailscaleIPs"), i, ip) {
		if (i)
			fputs("<br>", f);
		esc(f, json_string_value(ip));
	}
}

static void
bytes(FILE *f, json_int_t n)
{
	if (n >= 10 * 1024 * 1024)
		fprintf(f, "%.1f MiB", (double)n / (1024.0 * 1024.0));
	else if (n >= 10 * 1024)
		fprintf(f, "%.1f KiB", (double)n / 1024.0);
	else
		fprintf(f, "%lld B", (long long)n);
}

static void
peer_row(FILE *f, const json_t *st, const json_t *ps, bool self)
{
	const char *dn = jstr(ps, "DNSName"), *suffix = jstr(st, "MagicDNSSuffix");
	size_t dl = strlen(dn), sl = strlen(suffix);
	bool online = self || json_is_true(json_object_get(ps, "Online"));

	if (dl && dn[dl - 1] == '.')
		dl--;
	if (sl && dl > sl + 1 && strncmp(dn + dl - sl, suffix, sl) == 0)
		dl -= sl + 1;
	fprintf(f, "<tr class=\"%s\"><td>", self ? "self" : online ? "on" : "off");
	if (dl) {
		char *name = strndup(dn, dl);
		esc(f, name);
		free(name);
	} else {
		esc(f, jstr(ps, "HostName"));
	}
	fputs(self ? " <em>(this node)</em>" : "", f);
	fputs("</td><td>", f);
	esc_ips(f, ps);
	fputs("</td><td>", f);
	esc(f, jstr(ps, "OS"));
	fprintf(f, "</td><td>%s</td><td>", online ? "online" : "offline");
	if (self)
		fputs("-", f);
	else if (*jstr(ps, "CurAddr")) {
		fputs("direct ", f);
		esc(f, jstr(ps, "CurAddr"));
	} else if (*jstr(ps, "Relay")) {
		fputs("DERP ", f);
		esc(f, jstr(ps, "Relay"));
	} else {
		fputs("-", f);
	}
	fputs("</td><td>", f);
	bytes(f, json_integer_value(json_object_get(ps, "RxBytes")));
	fputs("</td><td>", f);
	bytes(f, json_integer_value(json_object_get(ps, "TxBytes")));
	fputs("</td></tr>\n", f);
}

/* The page for one status (NULL: the daemon did not answer; err says why). */
static char *
page(const json_t *st, const char *err, size_t *len)
{
	char *out = NULL;
	FILE *f = open_memstream(&out, len);

	if (f == NULL)
		return NULL;
	fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
	    "<meta http-equiv=\"refresh\" content=\"%d\">"
	    "<title>tailkit status</title><style>"
	    "body{font-family:sans-serif;margin:2em;color:#222}"
	    "table{border-collapse:collapse}"
	    "td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left;"
	    "vertical-align:top}"
	    "tr.self{background:#eef5ff}tr.off{color:#999}"
	    ".state{font-size:1.3em;font-weight:bold}"
	    ".health{color:#a40}</style></head><body>\n"
	    "<h1>tailkit status</h1>\n", WEB_REFRESH_S);
	if (st == NULL) {
		fputs("<p class=\"state\">tailkitd is not answering</p><p>", f);
		esc(f, err);
		fputs("</p>\n", f);
	} else {
		fputs("<p>State: <span class=\"state\" id=\"state\">", f);
		esc(f, jstr(st, "BackendState"));
		fputs("</span> &middot; tailkitd ", f);
		esc(f, jstr(st, "Version"));
		if (*jstr(st, "AuthURL")) {
			fputs(" &middot; log in at <a href=\"", f);
			esc(f, jstr(st, "AuthURL"));
			fputs("\">", f);
			esc(f, jstr(st, "AuthURL"));
			fputs("</a>", f);
		}
		fputs("</p>\n<table><tr><th>Machine</th><th>Addresses</th>"
		    "<th>OS</th><th>Online</th><th>Path</th><th>Rx</th>"
		    "<th>Tx</th></tr>\n", f);
		if (json_is_object(json_object_get(st, "Self")))
			peer_row(f, st, json_object_get(st, "Self"), true);
		const char *k;
		json_t *ps;
		json_object_foreach(json_object_get(st, "Peer"), k, ps)
			peer_row(f, st, ps, false);
		fputs("</table>\n", f);
		size_t i;
		json_t *h;
		json_array_foreach(json_object_get(st, "Health"), i, h) {
			fputs("<p class=\"health\">Health: ", f);
			esc(f, json_string_value(h));
			fputs("</p>\n", f);
		}
	}
	fprintf(f, "<p><small>Reloads every %d s.</small></p></body></html>\n",
	    WEB_REFRESH_S);
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

static void
reply(int fd, int code, const char *reason, const char *type, const char *body,
    size_t bl)
{
	char head[256];
	int hl = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\nContent-Type: "
	    "%s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
	    "Connection: close\r\n\r\n", code, reason, type, bl);

	if (send(fd, head, (size_t)hl, MSG_NOSIGNAL) != hl)
		return;
	for (size_t off = 0; off < bl;) {
		ssize_t k = send(fd, body + off, bl - off, MSG_NOSIGNAL);
		if (k <= 0)
			return;
		off += (size_t)k;
	}
}

/* Host header value is localhost, 127.x.y.z or [::1], with any port. */
static bool
host_is_loopback(const char *h, size_t n)
{
	char host[256];

	if (n == 0 || n >= sizeof(host))
		return false;
	memcpy(host, h, n);
	host[n] = '\0';
	if (host[0] == '[') {
		char *rb = strchr(host, ']');
		if (rb == NULL)
			return false;
		*rb = '\0';
		return strcmp(host + 1, "::1") == 0;
	}
	char *colon = strchr(host, ':');
	if (colon)
		*colon = '\0';
	struct in_addr a;
	if (strcasecmp(host, "localhost") == 0)
		return true;
	return inet_pton(AF_INET, host, &a) == 1 &&
	    (ntohl(a.s_addr) >> 24) == 127;
}

static void
serve_one(int fd)
{
	char head[WEB_HEAD_MAX + 1];
	size_t n = 0;
	struct timeval tv = { .tv_sec = 5 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (n < WEB_HEAD_MAX) {
		ssize_t k = read(fd, head + n, WEB_HEAD_MAX - n);
		if (k <= 0)
			return;
		n += (size_t)k;
		head[n] = '\0';
		if (strstr(head, "\r\n\r\n") != NULL)
			break;
	}
	head[n] = '\0';
	const char *host = strcasestr(head, "\r\nHost:");
	size_t hl = 0;
	if (host != NULL) {
		host += 7;
		while (*host == ' ' || *host == '\t')
			host++;
		hl = strcspn(host, "\r\n");
		while (hl && (host[hl - 1] == ' ' || host[hl - 1] == '\t'))
			hl--;
	}
	static const char text[] = "text/plain; charset=utf-8";
	if (host == NULL || !host_is_loopback(host, hl)) {
		static const char m[] = "refused: the status page answers requests "
		    "for localhost, 127.0.0.0/8 or [::1] only\n";
		reply(fd, 403, "Forbidden", text, m, sizeof(m) - 1);
		return;
	}
	if (strncmp(head, "GET ", 4) != 0) {
		static const char m[] = "GET only\n";
		reply(fd, 405, "Method Not Allowed", text, m, sizeof(m) - 1);
		return;
	}
	const char *path = head + 4;
	if (strncmp(path, "/ ", 2) != 0 && strncmp(path, "/?", 2) != 0) {
		static const char m[] = "not found: the status page is /\n";
		reply(fd, 404, "Not Found", text, m, sizeof(m) - 1);
		return;
	}
	json_t *st = NULL;
	char err[512] = "";
	int code = call_try("GET", "/localapi/v0/status", NULL, &st, err,
	    sizeof(err));
	if (code >= 0 && code != 200) {
		snprintf(err, sizeof(err), "LocalAPI status: HTTP %d: %s", code,
		    jstr(st, "error"));
		json_decref(st);
		st = NULL;
	}
	size_t pl = 0;
	char *p = page(st, err, &pl);
	json_decref(st);
	if (p == NULL) {
		static const char m[] = "out of memory\n";
		reply(fd, 500, "Internal Server Error", text, m, sizeof(m) - 1);
		return;
	}
	reply(fd, 200, "OK", "text/html; charset=utf-8", p, pl);
	free(p);
}

/* "127.0.0.1:8384", "[::1]:8384" or "localhost:8384" -> a loopback
 * socket address; false when not loopback or not parseable. */
static bool
parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *sl)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	char *end;

	if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
		return false;
	long port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || colon[1] == '\0' || port < 0 || port > 65535)
		return false;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (strcmp(host, "[::1]") == 0) {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
		a6->sin6_family = AF_INET6;
		a6->sin6_addr = in6addr_loopback;
		a6->sin6_port = htons((uint16_t)port);
		*sl = sizeof(*a6);
		return true;
	}
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	a4->sin_family = AF_INET;
	a4->sin_port = htons((uint16_t)port);
	*sl = sizeof(*a4);
	if (strcmp(host, "localhost") == 0) {
		a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return true;
	}
	return inet_pton(AF_INET, host, &a4->sin_addr) == 1 &&
	    (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
}

int
status_web(int argc, char **argv)
{
	const char *listen_at = WEB_DEFAULT_LISTEN;
	struct sockaddr_storage ss;
	socklen_t sl;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--web") == 0 ||
		    strcmp(argv[i], "--browser=false") == 0)
			continue;
		if (strncmp(argv[i], "--listen=", 9) == 0)
			listen_at = argv[i] + 9;
		else if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
			listen_at = argv[++i];
		else {
			fprintf(stderr, "tailkit status --web: unknown flag %s "
			    "(accepted: --listen ADDR:PORT, --browser=false; tailkit "
			    "never opens a browser itself)\n", argv[i]);
			return 2;
		}
	}
	if (!parse_listen(listen_at, &ss, &sl)) {
		fprintf(stderr, "tailkit status --web: --listen %s: want a loopback "
		    "address and port: 127.0.0.1:8384, [::1]:8384 or "
		    "localhost:8384 (the page shows the tailnet's status, so it "
		    "is served on loopback only)\n", listen_at);
		return 2;
	}
	int one = 1, lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 ||
	    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(lfd, (struct sockaddr *)&ss, sl) != 0 || listen(lfd, 16) != 0) {
		fprintf(stderr, "tailkit status --web: listening on %s: %s\n",
		    listen_at, strerror(errno));
		if (lfd >= 0)
			close(lfd);
		return 1;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	printf("tailkit status page at http://%s/ (Ctrl-C stops it)\n", listen_at);
	fflush(stdout);
	while (!web_stop) {
		struct pollfd pf = { .fd = lfd, .events = POLLIN };
		int r = poll(&pf, 1, 500);
		if (r <= 0)
			continue;
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		serve_one(fd);
		close(fd);
	}
	close(lfd);
	return 0;
}
