/* Bus URL policy: inproc, ipc, tls+tcp; nothing plaintext across hosts. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "tk/err.h"
#include "tk/log.h"

#include "bus_int.h"

static int
refuse(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
refuse(char *why, size_t whylen, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	TK_ERR(TKI_BUS_LOG, "%s (accepted: " TK_BUS_URL_ACCEPTED ")", line);
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "%s (accepted: " TK_BUS_URL_ACCEPTED ")",
		    line);
	return TK_EINVAL;
}

static bool
has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* host:port, host may be [v6]; port 0..65535 (0: listen on any port). */
static bool
host_port_ok(const char *hp)
{
	const char *colon;
	const char *p;
	unsigned long port = 0;

	if (hp[0] == '[') {
		const char *rb = strchr(hp, ']');

		if (rb == NULL || rb == hp + 1 || rb[1] != ':')
			return false;
		colon = rb + 1;
	} else {
		colon = strrchr(hp, ':');
		if (colon == NULL || colon == hp)
			return false;
		for (p = hp; p < colon; p++)
			if (*p == '/' || *p == ':' || *p == '@')
				return false;
	}
	p = colon + 1;
	if (*p == '\0')
		return false;
	for (; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return false;
		port = port * 10 + (unsigned long)(*p - '0');
		if (port > 65535)
			return false;
	}
	return true;
}

int
tk_bus_url_check(const char *url, enum tk_bus_scheme *scheme, char *why,
    size_t whylen)
{
	enum tk_bus_scheme s;

	if (url == NULL || url[0] == '\0')
		return refuse(why, whylen, "bus URL is empty");
	if (strlen(url) > 1024)
		return refuse(why, whylen, "bus URL is longer than 1024 bytes");
	if (has_prefix(url, "inproc://")) {
		const char *rest = url + strlen("inproc://");
		const char *slash = strchr(rest, '/');

		if (slash == NULL || slash == rest || slash[1] == '\0')
			return refuse(why, whylen,
			    "bus URL \"%s\" refused: inproc needs "
			    "<instance>/<bus>",
			    url);
		s = TK_BUS_INPROC;
	} else if (has_prefix(url, "ipc://")) {
		const char *path = url + strlen("ipc://");

		if (path[0] == '\0')
			return refuse(why, whylen,
			    "bus URL \"%s\" refused: ipc needs a path", url);
		if (strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return refuse(why, whylen,
			    "bus URL \"%s\" refused: ipc path longer than %zu "
			    "bytes (AF_UNIX limit)",
			    url,
			    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		s = TK_BUS_IPC;
	} else if (has_prefix(url, "tls+tcp://")) {
		if (!host_port_ok(url + strlen("tls+tcp://")))
			return refuse(why, whylen,
			    "bus URL \"%s\" refused: tls+tcp needs "
			    "<host>:<port>",
			    url);
		s = TK_BUS_TLS_TCP;
	} else if (has_prefix(url, "tcp://") || has_prefix(url, "tcp4://") ||
	    has_prefix(url, "tcp6://") || has_prefix(url, "ws://")) {
		return refuse(why, whylen,
		    "bus URL \"%s\" refused: a cross-host bus is never "
		    "plaintext or unauthenticated; use "
		    "tls+tcp://<host>:<port> with cert, key and CA",
		    url);
	} else {
		return refuse(why, whylen,
		    "bus URL \"%s\" refused: unsupported scheme", url);
	}
	if (scheme != NULL)
		*scheme = s;
	return 0;
}
