/*
 * HTTP to tailkitd's LocalAPI over its unix socket, shared by the CLI's
 * command files (cmd_*.c).  Errors reaching the daemon end the program
 * with a message saying what to check.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "cli_int.h"

#define RESP_MAX (64u << 20)

/* method path -> HTTP status and the parsed JSON body (NULL: none). */
int
call(const char *method, const char *path, json_t **out)
{
	return call_body(method, path, NULL, out);
}

/* A connected socket to tailkitd, or -1 with err saying what to check. */
static int
dial_try(char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(sock_path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path too long (at most %zu bytes): "
		    "%.200s...", sizeof(sa.sun_path) - 1, sock_path);
		return -1;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		snprintf(err, errlen, "cannot reach tailkitd at %s: %s\n"
		    "  is tailkitd running?  (--socket PATH or $TAILKIT_SOCKET name "
		    "another socket)", sock_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int
cli_dial(void)
{
	char err[512];
	int fd = dial_try(err, sizeof(err));

	if (fd < 0) {
		fprintf(stderr, "tailkit: %s\n", err);
		exit(1);
	}
	return fd;
}

int
call_try(const char *method, const char *path, const char *body, json_t **out,
    char *err, size_t errlen)
{
	struct timeval tv = { .tv_sec = 30 };
	char req[1200], *buf;
	size_t n = 0, cap = 65536;
	int fd;

	*out = NULL;
	if ((fd = dial_try(err, errlen)) < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	size_t bl = body ? strlen(body) : 0;
	int rl = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: "
	    "local-tailscaled.sock\r\nContent-Length: %zu\r\nConnection: close"
	    "\r\n\r\n", method, path, bl);
	if (rl < 0 || (size_t)rl >= sizeof(req) ||
	    write(fd, req, (size_t)rl) != rl ||
	    (bl && write(fd, body, bl) != (ssize_t)bl)) {
		snprintf(err, errlen, "writing to %s: %s", sock_path,
		    rl < 0 || (size_t)rl >= sizeof(req) ? "request too long" :
		    strerror(errno));
		close(fd);
		return -1;
	}
	if ((buf = malloc(cap + 1)) == NULL) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (;;) {
		if (n == cap) {
			if (cap >= RESP_MAX)
				break;
			cap *= 2;
			char *nb = realloc(buf, cap + 1);
			if (nb == NULL)
				break;
			buf = nb;
		}
		ssize_t k = read(fd, buf + n, cap - n);
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	close(fd);
	buf[n] = '\0';
	int status = 0;
	char *rbody = strstr(buf, "\r\n\r\n");
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1 || rbody == NULL) {
		free(buf);
		snprintf(err, errlen, "no HTTP answer from %s", sock_path);
		return -1;
	}
	*out = json_loads(rbody + 4, 0, NULL);
	free(buf);
	return status;
}

int
call_body(const char *method, const char *path, const char *body, json_t **out)
{
	char err[512];
	int st = call_try(method, path, body, out, err, sizeof(err));

	if (st < 0) {
		fprintf(stderr, "tailkit: %s\n", err);
		exit(1);
	}
	return st;
}

const char *
jstr(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

json_t *
get_ok(const char *path)
{
	json_t *j;
	int st = call("GET", path, &j);

	if (st != 200) {
		fprintf(stderr, "tailkit: %s: HTTP %d: %s\n", path, st,
		    jstr(j, "error"));
		exit(1);
	}
	return j;
}

