/*
 * http_server: a small HTTP server on the tailnet, written only against
 * libtailscale's C API (tailscale.h): no tailkit-specific call, so the same
 * source builds with libtailscale or with tailkit:
 *
 *   cc http_server.c $(pkg-config --cflags --libs tailkit)
 *   TS_AUTHKEY=tskey-... ./a.out STATE_DIR HOSTNAME PORT [FETCH_HOST:PORT]
 *
 * It answers every request with who asked (tailscale_getremoteaddr).  With
 * FETCH_HOST:PORT it first fetches "/" from that tailnet address
 * (tailscale_dial) and prints the answer's first line and body.  Settings
 * libtailscale takes from the environment (TS_AUTHKEY, TS_CONTROL_URL) work
 * the same.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tailscale.h"

static int
die(tailscale ts, const char *what)
{
	char msg[256];

	tailscale_errmsg(ts, msg, sizeof(msg));
	fprintf(stderr, "http_server: %s: %s\n", what, msg);
	return 1;
}

static void
fetch(tailscale ts, const char *addr)
{
	static const char req[] = "GET / HTTP/1.0\r\n\r\n";
	char buf[4096];
	size_t n = 0;
	ssize_t k;
	tailscale_conn c;

	/* the first packets may wait for the path to the peer: try a few
	 * times */
	for (int i = 0; tailscale_dial(ts, "tcp", addr, &c) != 0; i++) {
		if (i == 5) {
			die(ts, "dial");
			return;
		}
		sleep(1);
	}
	if (write(c, req, sizeof(req) - 1) != (ssize_t)sizeof(req) - 1) {
		close(c);
		return;
	}
	while (n < sizeof(buf) - 1 && (k = read(c, buf + n,
	    sizeof(buf) - 1 - n)) > 0)
		n += (size_t)k;
	buf[n] = '\0';
	close(c);
	char *eol = strstr(buf, "\r\n"), *body = strstr(buf, "\r\n\r\n");
	if (eol != NULL)
		*eol = '\0';
	printf("fetched %s: %s | %s\n", addr, buf, body ? body + 4 : "");
	fflush(stdout);
}

static void
serve(tailscale_listener ln, tailscale_conn c)
{
	char req[2048], who[64], resp[512];
	ssize_t k = read(c, req, sizeof(req) - 1);

	if (k <= 0)
		return;
	if (tailscale_getremoteaddr(ln, c, who, sizeof(who)) != 0)
		snprintf(who, sizeof(who), "?");
	char body[128];
	int bl = snprintf(body, sizeof(body), "hello %s from tailkit\n", who);
	int n = snprintf(resp, sizeof(resp), "HTTP/1.0 200 OK\r\nContent-Type: "
	    "text/plain\r\nContent-Length: %d\r\n\r\n%s", bl, body);
	(void)!write(c, resp, (size_t)n);
	printf("served %s\n", who);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	char ips[256], addr[32];
	tailscale_listener ln;

	if (argc < 4) {
		fprintf(stderr, "usage: http_server STATE_DIR HOSTNAME PORT "
		    "[FETCH_HOST:PORT]\n");
		return 2;
	}
	tailscale ts = tailscale_new();
	if (tailscale_set_dir(ts, argv[1]) != 0 ||
	    tailscale_set_hostname(ts, argv[2]) != 0 ||
	    tailscale_set_ephemeral(ts, 1) != 0)
		return die(ts, "settings");
	if (tailscale_up(ts) != 0)
		return die(ts, "up");
	if (tailscale_getips(ts, ips, sizeof(ips)) != 0)
		return die(ts, "getips");
	snprintf(addr, sizeof(addr), ":%s", argv[3]);
	if (tailscale_listen(ts, "tcp", addr, &ln) != 0)
		return die(ts, "listen");
	printf("listening on %s port %s\n", ips, argv[3]);
	fflush(stdout);
	if (argc > 4)
		fetch(ts, argv[4]);
	for (;;) {
		tailscale_conn c;
		if (tailscale_accept(ln, &c) != 0)
			break;
		serve(ln, c);
		close(c);
	}
	close(ln);
	tailscale_close(ts);
	return 0;
}
