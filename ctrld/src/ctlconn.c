/*
 * ts2021 client connection: TCP (or TLS via GnuTLS), the HTTP/1.1 upgrade,
 * the Noise handshake, the early payload, and HTTP/2 through nghttp2's
 * memory interface, all on the caller's thread with poll() deadlines.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <jansson.h>
#include <nghttp2/nghttp2.h>
#include <sodium.h>

#include "ctlconn.h"
#include "mapframe.h"
#include "tk/sockaddr.h"
#include "tk/enc.h"
#include "tk/clock.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/json.h"
#include "tk/log.h"
#include "tk/mem.h"
#include "tk/tls_verify.h"
#include "ts2021.h"

/* GnuTLS and nghttp2 codes are folded negated (tk_err_tls, tk_err_h2). */
static const char *
tls_name(int code)
{
	return gnutls_strerror(-code);
}

static const char *
h2_name(int code)
{
	return nghttp2_strerror(-code);
}

__attribute__((constructor)) static void
register_names(void)
{
	tk_err_register(TK_ETLS, tls_name);
	tk_err_register(TK_EH2, h2_name);
}

#define SUBSYS "ctrld"
#define MAX_STREAMS 8

typedef struct io {
	int fd;
	int abort_fd; /* readable: every wait ends (a lost dial race); -1 none */
	gnutls_session_t tls;
	gnutls_certificate_credentials_t cred;
} io;

typedef struct h2stream {
	int32_t id;
	int status;
	bool closed;
	uint32_t error_code;
	tk_buf body;	     /* plain requests */
	bool map;	     /* framed map stream */
	bool zstd;
	ctrldi_msg_fn on_msg;
	void *arg;
	int cb_rv;
	const uint8_t *req;  /* request body being sent */
	size_t req_len, req_off;
	bool discard;	     /* answer ignored, freed on close */
	char *owned;	     /* request body owned by the stream */
	char retry_after[64]; /* the response's Retry-After, or "" */
} h2stream;

struct ctrldi_conn {
	io io;
	char retry_after[64]; /* of the last ctrldi_conn_request answer */
	ts2021 noise;
	nghttp2_session *h2;
	char host[256];
	/* early payload detection on the first 9 plaintext bytes */
	uint8_t early_hdr[9];
	size_t early_got;
	uint32_t early_len, early_skip;
	bool early_done;
	tk_buf early;
	h2stream streams[MAX_STREAMS];
	bool failed;
	char why[200];
	uint64_t last_msg_ms;
	/* woken during a map stream to send more (lite updates) */
	int wake_fd;
	void (*wake_fn)(void *arg, ctrldi_conn *c);
	void *wake_arg;
};

static uint64_t
now_ms(void)
{
	return tk_clock_mono_ns(NULL) / 1000000;
}

/* --- URL, TCP, TLS -------------------------------------------------------- */

/* netip.Addr IsPrivate (RFC 1918, RFC 4193) or IsLoopback, or
 * "localhost": hosts Go's client never tries TLS on 443 for. */
static bool
host_is_private(const char *host)
{
	static const uint8_t lo[16] = { [15] = 1 };
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };
	uint8_t a[16];
	const uint8_t *v4 = NULL;

	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, a) == 1)
		v4 = a;
	else if (inet_pton(AF_INET6, host, a) != 1)
		return false; /* a name */
	else if (memcmp(a, mapped, 12) == 0)
		v4 = a + 12; /* netip unmaps an IPv4-mapped address first */
	else
		return memcmp(a, lo, 16) == 0 || (a[0] & 0xfe) == 0xfc;
	return v4[0] == 10 || v4[0] == 127 || (v4[0] == 172 && (v4[1] & 0xf0) == 16) ||
	    (v4[0] == 192 && v4[1] == 168);
}

int
ctrldi_url_parse(ctrldi_url *u, const char *url, char *err, size_t errlen)
{
	const char *h;
	size_t hl;

	memset(u, 0, sizeof(*u));
	if (strncmp(url, "http://", 7) == 0) {
		h = url + 7;
		u->port = 80;
	} else if (strncmp(url, "https://", 8) == 0) {
		h = url + 8;
		u->tls = true;
		u->port = 443;
	} else {
		snprintf(err, errlen, "control URL '%s': need http://host[:port] or "
		    "https://host[:port]", url);
		return TK_EINVAL;
	}
	hl = strcspn(h, "/");
	const char *colon = memchr(h, ':', hl);
	if (h[0] == '[') { /* [v6]:port */
		const char *rb = memchr(h, ']', hl);
		if (rb == NULL)
			goto bad;
		colon = rb[1] == ':' ? rb + 1 : NULL;
		if ((size_t)(rb - h - 1) >= sizeof(u->host))
			goto bad;
		memcpy(u->host, h + 1, (size_t)(rb - h - 1));
	} else {
		size_t n = colon ? (size_t)(colon - h) : hl;
		if (n == 0 || n >= sizeof(u->host))
			goto bad;
		memcpy(u->host, h, n);
	}
	if (colon != NULL) {
		char *end;
		long p = strtol(colon + 1, &end, 10);
		if (p < 1 || p > 65535 || (end != h + hl))
			goto bad;
		u->port = (uint16_t)p;
	}
	/* ts2021/client.go NewClient */
	bool private = host_is_private(u->host);
	if (colon != NULL && u->tls) {
		u->http_port = 80;
		u->https_port = u->port;
	} else if (colon != NULL) {
		u->http_port = u->port;
		u->https_port = private ? 0 : 443;
	} else {
		u->http_port = 80;
		u->https_port = !u->tls && private ? 0 : 443;
	}
	return 0;
bad:
	snprintf(err, errlen, "control URL '%s': bad host or port", url);
	return TK_EINVAL;
}

/* Waits for ev on fd until deadline; TK_ECLOSED if abort_fd (>= 0)
 * becomes readable first. */
static int
wait_fd(int fd, short ev, uint64_t deadline, int abort_fd)
{
	for (;;) {
		uint64_t now = now_ms();
		if (now >= deadline)
			return TK_ETIMEDOUT;
		struct pollfd p[2] = { { .fd = fd, .events = ev },
			{ .fd = abort_fd, .events = POLLIN } };
		int k = poll(p, abort_fd >= 0 ? 2 : 1, (int)(deadline - now));
		if (k > 0 && abort_fd >= 0 && p[1].revents)
			return TK_ECLOSED;
		if (k > 0)
			return 0;
		if (k < 0 && errno != EINTR)
			return tk_err_sys(errno);
	}
}

#define MAX_ADDRS 16

static size_t
resolve_system(const char *host, struct sockaddr_storage *out, size_t max)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai, *a;
	size_t n = 0;

	if (getaddrinfo(host, NULL, &hints, &ai) != 0)
		return 0;
	for (a = ai; a && n < max; a = a->ai_next) {
		if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
		    a->ai_addrlen > sizeof(*out))
			continue;
		memset(&out[n], 0, sizeof(*out));
		memcpy(&out[n], a->ai_addr, a->ai_addrlen);
		n++;
	}
	freeaddrinfo(ai);
	return n;
}

static socklen_t
sa_len(const struct sockaddr_storage *a)
{
	return a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
}

static void
sa_set_port(struct sockaddr_storage *a, uint16_t port)
{
	if (a->ss_family == AF_INET6)
		((struct sockaddr_in6 *)a)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)a)->sin_port = htons(port);
}

/*
 * Happy Eyeballs as Go's dialer does it (net/netx RaceDial, called by
 * net/dnscache with 300 ms): IPv6 and IPv4 addresses interleaved, IPv6
 * first; the next connect starts 300 ms after the last, or at once when
 * one fails; the first to connect wins and the others are closed.  All
 * failing: the first error.
 *
 * With a schedule (a ControlDialPlan, controlhttp's dial): address i
 * starts start_ms[i] after the race began, in the given order, and gives
 * up timeout_ms[i] after its start (0: at the deadline); no boost.
 */
#define RACE_FALLBACK_MS 300

typedef struct race_sched {
	const uint32_t *start_ms, *timeout_ms;
} race_sched;

static int
tcp_race(struct sockaddr_storage *addrs, size_t n, const race_sched *sc,
    uint64_t deadline, int abort_fd, int *out)
{
	size_t ord[MAX_ADDRS], v6[MAX_ADDRS], v4[MAX_ADDRS], n6 = 0, n4 = 0, k = 0;
	size_t started = 0, failed = 0;
	int fds[MAX_ADDRS], first_err = 0, rv;
	uint64_t ends[MAX_ADDRS], t0 = now_ms();
	bool boost = false;
	uint64_t next = 0;

	for (size_t i = 0; i < n; i++) {
		if (addrs[i].ss_family == AF_INET6)
			v6[n6++] = i;
		else
			v4[n4++] = i;
		fds[i] = -1;
	}
	if (sc != NULL) {
		for (size_t i = 0; i < n; i++)
			ord[i] = i;
		next = t0 + sc->start_ms[0];
	} else {
		for (size_t i = 0; i < n6 || i < n4; i++) {
			if (i < n6)
				ord[k++] = v6[i];
			if (i < n4)
				ord[k++] = v4[i];
		}
	}
	for (;;) {
		uint64_t now = now_ms();
		if (started < n && (now >= next || boost)) {
			size_t i = ord[started];
			struct sockaddr_storage *a = &addrs[i];
			int fd = socket(a->ss_family, SOCK_STREAM | SOCK_NONBLOCK |
			    SOCK_CLOEXEC, 0), e = fd < 0 ? errno : 0;
			if (fd >= 0 && connect(fd, (struct sockaddr *)a, sa_len(a)) != 0 &&
			    errno != EINPROGRESS) {
				e = errno;
				close(fd);
				fd = -1;
			}
			fds[started++] = fd;
			ends[started - 1] = sc != NULL && sc->timeout_ms[i] ?
			    now + sc->timeout_ms[i] : deadline;
			boost = false;
			if (fd < 0) {
				if (first_err == 0)
					first_err = tk_err_sys(e);
				failed++;
				boost = sc == NULL;
			}
			next = sc == NULL ? now + RACE_FALLBACK_MS :
			    started < n ? t0 + sc->start_ms[ord[started]] : deadline;
			continue;
		}
		/* attempts past their own timeout */
		for (size_t i = 0; i < started; i++)
			if (fds[i] >= 0 && now >= ends[i]) {
				close(fds[i]);
				fds[i] = -1;
				if (first_err == 0)
					first_err = TK_ETIMEDOUT;
				failed++;
			}
		if (failed == n) {
			rv = first_err;
			break;
		}
		if (now >= deadline) {
			rv = TK_ETIMEDOUT;
			break;
		}
		struct pollfd pf[MAX_ADDRS + 1];
		size_t idx[MAX_ADDRS], np = 0;
		uint64_t until = started < n && next < deadline ? next : deadline;
		for (size_t i = 0; i < started; i++)
			if (fds[i] >= 0) {
				pf[np] = (struct pollfd){ .fd = fds[i], .events = POLLOUT };
				idx[np++] = i;
				if (ends[i] < until)
					until = ends[i];
			}
		if (abort_fd >= 0)
			pf[np] = (struct pollfd){ .fd = abort_fd, .events = POLLIN };
		int r = poll(pf, np + (abort_fd >= 0), until > now ? (int)(until - now) : 0);
		if (r < 0 && errno != EINTR) {
			rv = tk_err_sys(errno);
			break;
		}
		if (r > 0 && abort_fd >= 0 && pf[np].revents) {
			rv = TK_ECLOSED;
			break;
		}
		for (size_t j = 0; r > 0 && j < np; j++) {
			if (pf[j].revents == 0)
				continue;
			size_t i = idx[j];
			int e = 0;
			socklen_t el = sizeof(e);
			if (getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &e, &el) != 0)
				e = errno;
			if (e == 0) {
				*out = fds[i];
				fds[i] = -1;
				rv = 0;
				goto done;
			}
			close(fds[i]);
			fds[i] = -1;
			if (first_err == 0)
				first_err = tk_err_sys(e);
			failed++;
			boost = sc == NULL;
		}
	}
done:
	for (size_t i = 0; i < started; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return rv;
}

/*
 * controlhttp's dial with a ControlDialPlan: its candidates' addresses,
 * each at its start delay with its timeout, instead of the server's name.
 * ACEHost candidates (a CONNECT proxy) and candidates without an address
 * or a timeout (Go's dial of those fails at once) are left out.
 */
static int
plan_dial(const ctrldi_url *u, uint64_t deadline, int abort_fd, int *out)
{
	struct sockaddr_storage addrs[MAX_ADDRS];
	uint32_t start[MAX_ADDRS], tmo[MAX_ADDRS];
	race_sched sc = { start, tmo };
	size_t n = 0;

	for (uint32_t i = 0; i < u->plan->n && n < MAX_ADDRS; i++) {
		const ctrldi_dial_cand *cd = &u->plan->c[i];
		size_t j;

		if (cd->ace || cd->ip.family == 0 || cd->timeout_ms == 0)
			continue;
		/* by start time, stable */
		for (j = n; j > 0 && start[j - 1] > cd->start_ms; j--) {
			addrs[j] = addrs[j - 1];
			start[j] = start[j - 1];
			tmo[j] = tmo[j - 1];
		}
		tk_ipport ap = { .ip = cd->ip, .port = u->port };
		tk_ipport_to_sockaddr(&ap, &addrs[j]);
		start[j] = cd->start_ms;
		tmo[j] = cd->timeout_ms;
		n++;
	}
	if (n == 0)
		return TK_ENOENT;
	return tcp_race(addrs, n, &sc, deadline, abort_fd, out);
}

static int
tcp_dial(const ctrldi_url *u, uint64_t deadline, int abort_fd, int *out)
{
	struct sockaddr_storage addrs[MAX_ADDRS];
	size_t n;
	int rv;

	if (u->plan != NULL && u->plan->n > 0) {
		if ((rv = plan_dial(u, deadline, abort_fd, out)) == 0 ||
		    rv == TK_ECLOSED)
			return rv;
		/* controlhttp: "failed dialing using DialPlan, falling back
		 * to DNS" */
		TK_INFO("ctrld", "control dial plan for %s port %u: no candidate "
		    "connected (%s); resolving the name", u->host, u->port,
		    tk_strerror(rv));
	}
	n = (u->resolve ? u->resolve : resolve_system)(u->host, addrs, MAX_ADDRS);
	if (n == 0)
		return TK_ENOENT;
	for (size_t i = 0; i < n; i++)
		sa_set_port(&addrs[i], u->port);
	return tcp_race(addrs, n, NULL, deadline, abort_fd, out);
}

/* --- proxies ---------------------------------------------------------------- */

static const char *
env2(const char *upper, const char *lower)
{
	const char *v = getenv(upper);

	if (v == NULL || *v == '\0')
		v = getenv(lower);
	return v != NULL && *v != '\0' ? v : NULL;
}

/* One NO_PROXY entry [e, e+n) against host:port (x/net httpproxy). */
static bool
no_proxy_match(const char *e, size_t n, const char *host, uint16_t port)
{
	char ent[300], ip[64];
	const char *colon, *slash;
	uint8_t h[16], a[16];
	int fam = 0;

	if (n == 0 || n >= sizeof(ent))
		return false;
	memcpy(ent, e, n);
	ent[n] = '\0';
	if (strcmp(ent, "*") == 0)
		return true;
	/* an optional :port ("[v6]:port", "host:port"; a bare v6 has two) */
	colon = strrchr(ent, ':');
	if (colon != NULL && (ent[0] == '[' ? colon > strchr(ent, ']') :
	    strchr(ent, ':') == colon)) {
		if ((uint16_t)atoi(colon + 1) != port)
			return false;
		ent[colon - ent] = '\0';
	}
	if (ent[0] == '[') { /* [v6] */
		size_t l = strlen(ent);
		if (l < 2 || ent[l - 1] != ']')
			return false;
		memmove(ent, ent + 1, l - 2);
		ent[l - 2] = '\0';
	}
	if (inet_pton(AF_INET, host, h) == 1)
		fam = AF_INET;
	else if (inet_pton(AF_INET6, host, h) == 1)
		fam = AF_INET6;
	slash = strchr(ent, '/');
	snprintf(ip, sizeof(ip), "%.*s", slash ? (int)(slash - ent) : (int)strlen(ent),
	    ent);
	int efam = inet_pton(AF_INET, ip, a) == 1 ? AF_INET :
	    inet_pton(AF_INET6, ip, a) == 1 ? AF_INET6 : 0;
	if (efam != 0) { /* an address or CIDR: addresses only */
		int bits = slash ? atoi(slash + 1) : (efam == AF_INET ? 32 : 128);
		int max = efam == AF_INET ? 32 : 128;
		if (fam != efam || bits < 0 || bits > max)
			return false;
		for (int i = 0; i < bits; i++)
			if (((h[i / 8] ^ a[i / 8]) >> (7 - i % 8)) & 1)
				return false;
		return true;
	}
	/* a domain: itself and its subdomains */
	const char *d = ent;
	if (strncmp(d, "*.", 2) == 0)
		d += 2;
	else if (d[0] == '.')
		d++;
	size_t dl = strlen(d), hl = strlen(host);
	if (dl == 0 || fam != 0)
		return false;
	return (hl == dl && strcasecmp(host, d) == 0) ||
	    (hl > dl && host[hl - dl - 1] == '.' && strcasecmp(host + hl - dl, d) == 0);
}

int
ctrldi_proxy_for(const char *host, uint16_t port, bool tls, ctrldi_proxy *px,
    char *err, size_t errlen)
{
	const char *pu = tls ? env2("HTTPS_PROXY", "https_proxy") :
	    env2("HTTP_PROXY", "http_proxy");
	const char *np = env2("NO_PROXY", "no_proxy");
	uint8_t a[16];

	px->host[0] = '\0';
	if (pu == NULL || strcasecmp(host, "localhost") == 0)
		return 0;
	if ((inet_pton(AF_INET, host, a) == 1 && a[0] == 127) ||
	    (inet_pton(AF_INET6, host, a) == 1 && memcmp(a,
		"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16) == 0))
		return 0;
	for (const char *e = np; e != NULL && *e;) {
		size_t n = strcspn(e, ",");
		const char *b = e, *end = e + n;
		while (b < end && (*b == ' ' || *b == '\t'))
			b++;
		while (end > b && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		if (no_proxy_match(b, (size_t)(end - b), host, port))
			return 0;
		e += n + (e[n] == ',');
	}
	/* the proxy URL: [http://][user:pass@]host[:port][/] */
	memset(px, 0, sizeof(*px));
	const char *h = pu;
	if (strstr(pu, "://") != NULL) {
		if (strncasecmp(pu, "http://", 7) != 0) {
			snprintf(err, errlen, "proxy '%.*s...': only http:// proxies are "
			    "supported", (int)strcspn(pu, ":"), pu);
			return TK_EINVAL;
		}
		h = pu + 7;
	}
	size_t hl = strcspn(h, "/");
	const char *at = memrchr(h, '@', hl);
	if (at != NULL) {
		char up[300];
		size_t ul = (size_t)(at - h);
		if (ul >= sizeof(up) || (ul + 2) / 3 * 4 >= sizeof(px->auth))
			goto bad;
		memcpy(up, h, ul);
		tk_base64_encode(px->auth, (const uint8_t *)up, ul);
		sodium_memzero(up, sizeof(up));
		hl -= ul + 1;
		h = at + 1;
	}
	const char *colon = NULL;
	if (h[0] == '[') {
		const char *rb = memchr(h, ']', hl);
		if (rb == NULL || (size_t)(rb - h - 1) >= sizeof(px->host))
			goto bad;
		memcpy(px->host, h + 1, (size_t)(rb - h - 1));
		colon = (size_t)(rb + 1 - h) < hl && rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = memchr(h, ':', hl);
		size_t n = colon ? (size_t)(colon - h) : hl;
		if (n == 0 || n >= sizeof(px->host))
			goto bad;
		memcpy(px->host, h, n);
	}
	px->port = 80;
	if (colon != NULL) {
		char *end;
		long p = strtol(colon + 1, &end, 10);
		if (p < 1 || p > 65535 || end != h + hl)
			goto bad;
		px->port = (uint16_t)p;
	}
	return 0;
bad:
	px->host[0] = '\0';
	snprintf(err, errlen, "proxy URL in %s: bad host or port", tls ?
	    "HTTPS_PROXY" : "HTTP_PROXY");
	return TK_EINVAL;
}

static int read_head(io *o, uint64_t deadline, tk_buf *all, size_t *head_len);
static int io_write(io *o, const uint8_t *p, size_t n, uint64_t deadline);

/* CONNECT host:port through the proxy o is connected to; 200 wanted. */
static int
proxy_connect(io *o, const ctrldi_url *u, const ctrldi_proxy *px,
    uint64_t deadline, char *err, size_t errlen)
{
	char req[1200], hp[300];
	tk_buf b;
	size_t hl;
	int rv, code = 0;

	snprintf(hp, sizeof(hp), strchr(u->host, ':') ? "[%s]:%u" : "%s:%u",
	    u->host, u->port);
	snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n"
	    "User-Agent: tailkit\r\n%s%s%s\r\n", hp, hp, px->auth[0] ?
	    "Proxy-Authorization: Basic " : "", px->auth, px->auth[0] ? "\r\n" : "");
	tk_buf_init(&b);
	if ((rv = io_write(o, (const uint8_t *)req, strlen(req), deadline)) != 0 ||
	    (rv = read_head(o, deadline, &b, &hl)) != 0) {
		snprintf(err, errlen, "CONNECT %s through proxy %s:%u: %s", hp,
		    px->host, px->port, tk_strerror(rv));
	} else if (ctrldi_http_head_parse((const char *)b.data, hl, &code) != 0 ||
	    code != 200 || b.len != hl) {
		snprintf(err, errlen, "CONNECT %s through proxy %s:%u: %s %d", hp,
		    px->host, px->port, code ? "HTTP status" : "not HTTP", code);
		rv = TK_EPROTO;
	}
	sodium_memzero(req, sizeof(req));
	tk_buf_fini(&b);
	return rv;
}

static void
io_close(io *o)
{
	if (o->tls) {
		gnutls_deinit(o->tls);
		o->tls = NULL;
	}
	if (o->cred) {
		gnutls_certificate_free_credentials(o->cred);
		o->cred = NULL;
	}
	if (o->fd >= 0)
		close(o->fd);
	o->fd = -1;
}

/*
 * TLS for https:// control URLs.  The certificate is verified for the
 * server key fetch (the trust anchor); for the ts2021 upgrade a failure is
 * only logged, as the Go client does: the Noise handshake authenticates
 * the server (§4.2).
 */
static int
io_open(io *o, const ctrldi_url *u, uint64_t deadline, bool must_verify,
    int abort_fd, char *err, size_t errlen)
{
	int rv;

	memset(o, 0, sizeof(*o));
	o->fd = -1;
	o->abort_fd = abort_fd;
	ctrldi_proxy px;
	if ((rv = ctrldi_proxy_for(u->host, u->port, u->tls, &px, err,
	    errlen)) != 0)
		return rv;
	if (px.host[0] != '\0') { /* a tunnel through the proxy, plain HTTP too */
		ctrldi_url pu = *u;
		snprintf(pu.host, sizeof(pu.host), "%s", px.host);
		pu.port = px.port;
		pu.resolve = NULL; /* the hook resolves the server's name */
		pu.plan = NULL;
		if ((rv = tcp_dial(&pu, deadline, abort_fd, &o->fd)) != 0) {
			snprintf(err, errlen, "connecting to proxy %s:%u: %s", px.host,
			    px.port, tk_strerror(rv));
			sodium_memzero(&px, sizeof(px));
			return rv;
		}
		rv = proxy_connect(o, u, &px, deadline, err, errlen);
		sodium_memzero(&px, sizeof(px));
		if (rv != 0) {
			io_close(o);
			return rv;
		}
	} else if ((rv = tcp_dial(u, deadline, abort_fd, &o->fd)) != 0) {
		snprintf(err, errlen, "connecting to %s:%u: %s", u->host, u->port,
		    tk_strerror(rv));
		return rv;
	}
	if (!u->tls)
		return 0;
	/* no CAs in the credentials: the chain is verified after the
	 * handshake with the bundle loaded for that alone (tk/tls_verify.h) */
	if (gnutls_certificate_allocate_credentials(&o->cred) < 0 ||
	    gnutls_init(&o->tls, GNUTLS_CLIENT | GNUTLS_NONBLOCK) < 0 ||
	    gnutls_set_default_priority(o->tls) < 0 ||
	    gnutls_credentials_set(o->tls, GNUTLS_CRD_CERTIFICATE, o->cred) < 0 ||
	    gnutls_server_name_set(o->tls, GNUTLS_NAME_DNS, u->host,
		strlen(u->host)) < 0) {
		snprintf(err, errlen, "TLS setup failed");
		io_close(o);
		return TK_EPROTO;
	}
	gnutls_transport_set_int(o->tls, o->fd);
	for (;;) {
		int r = gnutls_handshake(o->tls);
		if (r == 0)
			break;
		if (r == GNUTLS_E_AGAIN || r == GNUTLS_E_INTERRUPTED) {
			short ev = gnutls_record_get_direction(o->tls) ? POLLOUT : POLLIN;
			if ((rv = wait_fd(o->fd, ev, deadline, o->abort_fd)) != 0) {
				io_close(o);
				return rv;
			}
			continue;
		}
		snprintf(err, errlen, "TLS handshake with %s: %s", u->host,
		    gnutls_strerror(r));
		io_close(o);
		return TK_ETLS | -r;
	}
	/* before a byte of ours goes out */
	tk_tls_trust tr = { .system = true, .ca_file = u->ca_file };
	char why[256];
	if (tk_tls_check_session(o->tls, u->host, &tr, why, sizeof(why)) != 0) {
		if (!must_verify) {
			TK_WARN(SUBSYS, "TLS certificate of %s does not verify "
			    "(%s); the Noise handshake authenticates the server",
			    u->host, why);
			return 0;
		}
		snprintf(err, errlen, "TLS certificate of %s does not verify: "
		    "%s%s%s%s", u->host, why, u->ca_file ? " (the system's CAs "
		    "and " : "", u->ca_file ? u->ca_file : "", u->ca_file ? ")" : "");
		io_close(o);
		return TK_ETLS | (unsigned)-GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
	}
	return 0;
}

static int
io_write(io *o, const uint8_t *p, size_t n, uint64_t deadline)
{
	while (n > 0) {
		ssize_t k;
		if (o->tls) {
			k = gnutls_record_send(o->tls, p, n);
			if (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED) {
				int rv = wait_fd(o->fd, POLLOUT, deadline, o->abort_fd);
				if (rv != 0)
					return rv;
				continue;
			}
			if (k < 0)
				return TK_ETLS | (int)-k;
		} else {
			k = send(o->fd, p, n, MSG_NOSIGNAL);
			if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
				int rv = wait_fd(o->fd, POLLOUT, deadline, o->abort_fd);
				if (rv != 0)
					return rv;
				continue;
			}
			if (k < 0)
				return tk_err_sys(errno);
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Reads what is there (waiting until deadline for the first byte). */
static int
io_read(io *o, uint8_t *p, size_t cap, uint64_t deadline, size_t *got)
{
	for (;;) {
		ssize_t k;
		if (o->tls) {
			if (gnutls_record_check_pending(o->tls) == 0) {
				int rv = wait_fd(o->fd, POLLIN, deadline, o->abort_fd);
				if (rv != 0)
					return rv;
			}
			k = gnutls_record_recv(o->tls, p, cap);
			if (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED)
				continue;
			if (k < 0)
				return TK_ETLS | (int)-k;
		} else {
			int rv = wait_fd(o->fd, POLLIN, deadline, o->abort_fd);
			if (rv != 0)
				return rv;
			k = recv(o->fd, p, cap, 0);
			if (k < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (k < 0)
				return tk_err_sys(errno);
		}
		if (k == 0)
			return TK_ECLOSED;
		*got = (size_t)k;
		return 0;
	}
}

/* --- HTTP/1.x response heads ---------------------------------------------- */

/*
 * Where the head ends: just past the first empty line, or 0 if there is
 * none yet.  Lines end in LF with an optional CR before it, as Go's
 * net/textproto reads them (a server or proxy sending bare LF works).
 */
size_t
ctrldi_http_head_end(const char *p, size_t n)
{
	size_t line = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\n')
			continue;
		if (i == line || (i == line + 1 && p[line] == '\r'))
			return i + 1;
		line = i + 1;
	}
	return 0;
}

/* One line of [p, p+n) starting at *off: its text without CR LF. */
static bool
next_line(const char *p, size_t n, size_t *off, const char **l, size_t *ll)
{
	const char *nl;

	if (*off >= n)
		return false;
	nl = memchr(p + *off, '\n', n - *off);
	*l = p + *off;
	*ll = nl ? (size_t)(nl - *l) : n - *off;
	*off += *ll + (nl != NULL);
	if (*ll > 0 && (*l)[*ll - 1] == '\r')
		(*ll)--;
	return true;
}

static bool
is_tchar(char ch)
{
	/* RFC 9110 §5.6.2 token characters */
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch));
}

int
ctrldi_http_head_parse(const char *p, size_t n, int *status)
{
	const char *l;
	size_t ll, off = 0;

	/* status line: HTTP/x.y SP 3DIGIT [SP reason] (Go's ReadResponse) */
	if (!next_line(p, n, &off, &l, &ll) || ll < 12 ||
	    memcmp(l, "HTTP/", 5) != 0 || l[5] < '0' || l[5] > '9' ||
	    l[6] != '.' || l[7] < '0' || l[7] > '9' || l[8] != ' ' ||
	    l[9] < '1' || l[9] > '9' || l[10] < '0' || l[10] > '9' ||
	    l[11] < '0' || l[11] > '9' || (ll > 12 && l[12] != ' '))
		return TK_EPROTO;
	/* each header line is a token, a colon, a value; a line starting
	 * with white space continues the one before (obs-fold) */
	while (next_line(p, n, &off, &l, &ll) && ll > 0) {
		size_t k = 0;
		if (l[0] == ' ' || l[0] == '\t')
			continue;
		while (k < ll && is_tchar(l[k]))
			k++;
		if (k == 0 || k == ll || l[k] != ':')
			return TK_EPROTO;
	}
	*status = (l = p + 9, (l[0] - '0') * 100 + (l[1] - '0') * 10 + (l[2] - '0'));
	return 0;
}

bool
ctrldi_http_header(const char *p, size_t n, const char *name, const char **v,
    size_t *vl)
{
	size_t nl = strlen(name), off = 0, ll;
	const char *l;

	if (!next_line(p, n, &off, &l, &ll))
		return false; /* the status line */
	while (next_line(p, n, &off, &l, &ll) && ll > 0) {
		if (ll <= nl || l[nl] != ':' || strncasecmp(l, name, nl) != 0)
			continue;
		/* the first one, without the white space around it (Go's
		 * Header.Get after textproto) */
		const char *b = l + nl + 1, *e = l + ll;
		while (b < e && (*b == ' ' || *b == '\t'))
			b++;
		while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		*v = b;
		*vl = (size_t)(e - b);
		return true;
	}
	return false;
}

/* Reads until an HTTP/1.x head is complete: all = head + any bytes after it;
 * *head_len = where the head ends. */
static int
read_head(io *o, uint64_t deadline, tk_buf *all, size_t *head_len)
{
	for (;;) {
		uint8_t *p;
		size_t got = 0, end;
		int rv;
		if (all->len > 16384)
			return TK_EMSGSIZE;
		if ((rv = tk_buf_reserve(all, 4096)) != 0)
			return rv;
		p = all->data + all->len;
		if ((rv = io_read(o, p, 4096, deadline, &got)) != 0)
			return rv;
		all->len += got;
		if ((end = ctrldi_http_head_end((const char *)all->data,
		    all->len)) != 0) {
			*head_len = end;
			return 0;
		}
	}
}

/* The status of a head read_head found; 0 if it is not HTTP. */
static int
status_code(const tk_buf *b, size_t hl)
{
	int code = 0;

	if (ctrldi_http_head_parse((const char *)b->data, hl, &code) != 0)
		code = 0;
	return code;
}

/* --- GET /key -------------------------------------------------------------- */

int
ctrldi_fetch_server_key(const ctrldi_url *u, int timeout_ms,
    tk_machine_pub *out, char *err, size_t errlen)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	char req[512];
	io o;
	tk_buf b;
	size_t hl;
	int rv;

	ctrldi_url ku = *u;
	ku.plan = NULL; /* the plan is for the ts2021 dial (controlhttp) */
	if ((rv = io_open(&o, &ku, deadline, true, -1, err, errlen)) != 0)
		return rv;
	/* HTTP/1.0: no chunked encoding, the body ends at EOF */
	snprintf(req, sizeof(req), "GET /key?v=%d HTTP/1.0\r\nHost: %s\r\n"
	    "User-Agent: tailkit\r\n\r\n", CTRLD_CAPVER, u->host);
	tk_buf_init(&b);
	if ((rv = io_write(&o, (const uint8_t *)req, strlen(req), deadline)) != 0 ||
	    (rv = read_head(&o, deadline, &b, &hl)) != 0) {
		snprintf(err, errlen, "GET /key from %s: %s", u->host, tk_strerror(rv));
		goto out;
	}
	for (;;) {
		size_t got;
		if (b.len > hl + 65536) {
			rv = TK_EMSGSIZE;
			snprintf(err, errlen, "GET /key: response over 64 KiB");
			goto out;
		}
		if ((rv = tk_buf_reserve(&b, 4096)) != 0)
			goto out;
		rv = io_read(&o, b.data + b.len, 4096, deadline, &got);
		if (rv == TK_ECLOSED)
			break;
		if (rv != 0) {
			snprintf(err, errlen, "GET /key: %s", tk_strerror(rv));
			goto out;
		}
		b.len += got;
	}
	int code = status_code(&b, hl);
	if (code != 200) {
		snprintf(err, errlen, "GET /key?v=%d: HTTP status %d", CTRLD_CAPVER, code);
		rv = TK_EPROTO;
		goto out;
	}
	json_t *j;
	char jerr[128];
	if ((rv = tk_json_parse(&j, (const char *)b.data + hl, b.len - hl, NULL, jerr,
		 sizeof(jerr))) != 0) {
		snprintf(err, errlen, "GET /key: not JSON (%s): a legacy server "
		    "without ts2021 is not supported", jerr);
		goto out;
	}
	rv = tk_json_get_machine_pub(j, "publicKey", out);
	json_decref(j);
	if (rv != 0 || tk_key_is_zero(out->b)) {
		snprintf(err, errlen, "GET /key: no usable publicKey");
		rv = TK_EPROTO;
	}
out:
	tk_buf_fini(&b);
	io_close(&o);
	return rv;
}

/* --- HTTP/2 over Noise ----------------------------------------------------- */

static h2stream *
stream_find(ctrldi_conn *c, int32_t id)
{
	for (int i = 0; i < MAX_STREAMS; i++)
		if (c->streams[i].id == id)
			return &c->streams[i];
	return NULL;
}

static void
conn_fail(ctrldi_conn *c, const char *why)
{
	if (!c->failed)
		snprintf(c->why, sizeof(c->why), "%s", why);
	c->failed = true;
}

/* Seals and writes what nghttp2 wants to send. */
static int
h2_flush(ctrldi_conn *c, uint64_t deadline)
{
	tk_buf out;
	int rv = 0;

	tk_buf_init(&out);
	for (;;) {
		const uint8_t *p;
		ssize_t n = nghttp2_session_mem_send(c->h2, &p);
		if (n < 0) {
			rv = TK_EPROTO;
			conn_fail(c, nghttp2_strerror((int)n));
			break;
		}
		if (n == 0)
			break;
		if ((rv = ts2021_seal(&c->noise, p, (size_t)n, &out)) != 0)
			break;
		if (out.len >= 65536) {
			if ((rv = io_write(&c->io, out.data, out.len, deadline)) != 0)
				break;
			tk_buf_reset(&out);
		}
	}
	if (rv == 0 && out.len)
		rv = io_write(&c->io, out.data, out.len, deadline);
	tk_buf_fini(&out);
	if (rv != 0)
		conn_fail(c, "write to the control server failed");
	return rv;
}

/* Plaintext from the Noise stream: early payload first, then HTTP/2. */
static int
feed_plain(ctrldi_conn *c, const uint8_t *p, size_t n)
{
	while (n > 0 && !c->early_done) {
		if (c->early_got < 9) {
			size_t k = 9 - c->early_got < n ? 9 - c->early_got : n;
			memcpy(c->early_hdr + c->early_got, p, k);
			c->early_got += k;
			p += k;
			n -= k;
			if (c->early_got < 9)
				return 0;
			if (memcmp(c->early_hdr, TS2021_EARLY_MAGIC, 5) != 0) {
				/* no early payload: these 9 bytes are HTTP/2 */
				c->early_done = true;
				ssize_t r = nghttp2_session_mem_recv(c->h2,
				    c->early_hdr, 9);
				if (r < 0)
					return TK_EPROTO;
				break;
			}
			c->early_len = tk_be32_load(c->early_hdr + 5);
			if (c->early_len > TS2021_EARLY_MAX)
				return TK_EPROTO;
			c->early_skip = c->early_len;
		}
		size_t k = c->early_skip < n ? c->early_skip : n;
		if (tk_buf_append(&c->early, p, k) != 0)
			return TK_ENOMEM;
		c->early_skip -= (uint32_t)k;
		p += k;
		n -= k;
		if (c->early_skip == 0) {
			c->early_done = true;
			if (tk_buf_append_u8(&c->early, 0) != 0) /* for %s */
				return TK_ENOMEM;
		}
	}
	if (n == 0)
		return 0;
	ssize_t r = nghttp2_session_mem_recv(c->h2, p, n);
	return r < 0 ? TK_EPROTO : 0;
}

/* One read from the socket, through Noise into HTTP/2. */
static int
pump_in(ctrldi_conn *c, uint64_t deadline)
{
	uint8_t buf[65536];
	size_t got = 0;
	tk_buf plain;
	int rv;

	if ((rv = io_read(&c->io, buf, sizeof(buf), deadline, &got)) != 0) {
		if (rv == TK_ECLOSED)
			conn_fail(c, "control server closed the connection");
		return rv;
	}
	tk_buf_init(&plain);
	rv = ts2021_open(&c->noise, buf, got, &plain);
	if (rv != 0) {
		conn_fail(c, rv == TK_ECRYPTO ? "a Noise record did not authenticate" :
		    rv == TK_ENOMEM ? "out of memory reading a Noise record" :
		    "bad Noise frame");
	} else if (plain.len && (rv = feed_plain(c, plain.data, plain.len)) != 0) {
		conn_fail(c, "bad HTTP/2 or early payload from the server");
	}
	tk_buf_fini(&plain);
	return rv;
}

/* Map stream framing (mapframe.c) on a stream's buffered body. */
static int
map_frames(ctrldi_conn *c, h2stream *s)
{
	char why[120];
	int rv = ctrldi_map_frames(&s->body, s->zstd, s->on_msg, s->arg, &s->cb_rv,
	    why, sizeof(why));

	if (rv != 0)
		conn_fail(c, why);
	c->last_msg_ms = now_ms();
	return rv;
}

static int
on_data_chunk(nghttp2_session *h2, uint8_t flags, int32_t id, const uint8_t *data,
    size_t len, void *user)
{
	ctrldi_conn *c = user;
	h2stream *s = stream_find(c, id);

	(void)h2, (void)flags;
	if (s == NULL)
		return 0;
	if (!s->map && s->body.len + len > (4u << 20))
		return NGHTTP2_ERR_CALLBACK_FAILURE; /* plain replies are small */
	if (tk_buf_append(&s->body, data, len) != 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	if (s->map && s->status == 200 && map_frames(c, s) != 0)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return 0;
}

static int
on_header(nghttp2_session *h2, const nghttp2_frame *f, const uint8_t *name,
    size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
    void *user)
{
	ctrldi_conn *c = user;
	h2stream *s = stream_find(c, f->hd.stream_id);

	(void)h2, (void)flags;
	if (s != NULL && namelen == 7 && memcmp(name, ":status", 7) == 0 &&
	    valuelen == 3)
		s->status = atoi((const char *)value);
	/* HTTP/2 header names are lower case (RFC 9113 §8.2.1) */
	if (s != NULL && namelen == 11 && memcmp(name, "retry-after", 11) == 0 &&
	    valuelen < sizeof(s->retry_after)) {
		memcpy(s->retry_after, value, valuelen);
		s->retry_after[valuelen] = '\0';
	}
	return 0;
}

static int
on_stream_close(nghttp2_session *h2, int32_t id, uint32_t code, void *user)
{
	ctrldi_conn *c = user;
	h2stream *s = stream_find(c, id);

	(void)h2;
	if (s != NULL) {
		s->closed = true;
		s->error_code = code;
		if (s->discard) { /* a lite update: nobody waits for it */
			tk_buf_fini(&s->body);
			tk_free(s->owned);
			memset(s, 0, sizeof(*s));
		}
	}
	return 0;
}

static ssize_t
read_body(nghttp2_session *h2, int32_t id, uint8_t *buf, size_t len,
    uint32_t *flags, nghttp2_data_source *src, void *user)
{
	h2stream *s = src->ptr;
	size_t k = s->req_len - s->req_off;

	(void)h2, (void)id, (void)user;
	if (k > len)
		k = len;
	memcpy(buf, s->req + s->req_off, k);
	s->req_off += k;
	if (s->req_off == s->req_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)k;
}

/* One attempt at u's port and scheme: TCP (and TLS), the upgrade, the
 * Noise handshake, HTTP/2.  abort_fd (>= 0) readable ends it. */
static int
dial_one(ctrldi_conn **out, const ctrldi_url *u, const tk_machine_priv *mk,
    const tk_machine_pub *server, uint64_t deadline, int abort_fd, char *err,
    size_t errlen)
{
	uint8_t init[TS2021_INIT_LEN];
	char b64[200], req[800];
	ctrldi_conn *c;
	tk_buf b;
	size_t hl, used;
	int rv;

	if ((c = tk_calloc(1, sizeof(*c))) == NULL)
		return TK_ENOMEM;
	c->io.fd = -1;
	c->wake_fd = -1;
	tk_buf_init(&c->early);
	snprintf(c->host, sizeof(c->host), "%s", u->host);
	tk_buf_init(&b);
	if ((rv = ts2021_client_init(&c->noise, CTRLD_CAPVER, mk->b, server->b, NULL,
		 NULL, init)) != 0) {
		snprintf(err, errlen, "Noise initiation: %s", tk_strerror(rv));
		goto fail;
	}
	if ((rv = io_open(&c->io, u, deadline, false, abort_fd, err, errlen)) != 0)
		goto fail;
	tk_base64_encode(b64, init, sizeof(init));
	snprintf(req, sizeof(req),
	    "POST /ts2021 HTTP/1.1\r\nHost: %s\r\nUser-Agent: tailkit\r\n"
	    "Upgrade: " TS2021_UPGRADE "\r\nConnection: upgrade\r\n"
	    "X-Tailscale-Handshake: %s\r\nContent-Length: 0\r\n\r\n", u->host, b64);
	if ((rv = io_write(&c->io, (const uint8_t *)req, strlen(req), deadline)) != 0 ||
	    (rv = read_head(&c->io, deadline, &b, &hl)) != 0) {
		snprintf(err, errlen, "POST /ts2021 to %s: %s", u->host, tk_strerror(rv));
		goto fail;
	}
	/* controlhttp/client.go tryURLUpgrade: status 101 and the first
	 * Upgrade header exactly "tailscale-control-protocol" */
	int code = status_code(&b, hl);
	const char *uv = NULL;
	size_t uvl = 0;
	bool upgrade = ctrldi_http_header((const char *)b.data, hl, "Upgrade",
	    &uv, &uvl) && uvl == strlen(TS2021_UPGRADE) &&
	    memcmp(uv, TS2021_UPGRADE, uvl) == 0;
	if (code != 101 || !upgrade) {
		snprintf(err, errlen, "POST /ts2021: %s %d%s%.*s%s (want 101 and "
		    "Upgrade: " TS2021_UPGRADE ")", code ? "HTTP status" :
		    "not an HTTP response, status", code, uv ? ", Upgrade: '" :
		    " without the upgrade", uv ? (int)(uvl > 64 ? 64 : uvl) : 0,
		    uv ? uv : "", uv ? "'" : "");
		rv = TK_EPROTO;
		goto fail;
	}
	tk_buf_consume(&b, hl);
	/* the Noise response, maybe already in what was read */
	for (;;) {
		rv = ts2021_client_finish(&c->noise, b.data, b.len, &used, err, errlen);
		if (rv == 0)
			break;
		if (rv != TK_EAGAIN)
			goto fail;
		size_t got;
		if ((rv = tk_buf_reserve(&b, 4096)) != 0)
			goto fail;
		rv = io_read(&c->io, b.data + b.len, 4096, deadline, &got);
		if (rv != 0) {
			snprintf(err, errlen, "%s after the upgrade: the server rejected "
			    "the handshake or capability version %d",
			    rv == TK_ECLOSED ? "EOF" : tk_strerror(rv), CTRLD_CAPVER);
			goto fail;
		}
		b.len += got;
	}
	tk_buf_consume(&b, used);

	nghttp2_session_callbacks *cbs;
	if (nghttp2_session_callbacks_new(&cbs) != 0) {
		rv = TK_ENOMEM;
		goto fail;
	}
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
	rv = nghttp2_session_client_new(&c->h2, cbs, c);
	nghttp2_session_callbacks_del(cbs);
	if (rv != 0) {
		rv = TK_ENOMEM;
		goto fail;
	}
	nghttp2_settings_entry st[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100 },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 4 << 20 },
	};
	nghttp2_submit_settings(c->h2, NGHTTP2_FLAG_NONE, st, 2);
	nghttp2_session_set_local_window_size(c->h2, NGHTTP2_FLAG_NONE, 0, 16 << 20);
	if ((rv = h2_flush(c, deadline)) != 0) {
		snprintf(err, errlen, "HTTP/2 preface: %s", c->why);
		goto fail;
	}
	if (b.len) { /* records that came with the response */
		tk_buf plain;
		tk_buf_init(&plain);
		rv = ts2021_open(&c->noise, b.data, b.len, &plain);
		if (rv == 0 && plain.len)
			rv = feed_plain(c, plain.data, plain.len);
		tk_buf_fini(&plain);
		if (rv != 0) {
			snprintf(err, errlen, "bad data after the handshake");
			goto fail;
		}
	}
	tk_buf_fini(&b);
	*out = c;
	return 0;
fail:
	tk_buf_fini(&b);
	ctrldi_conn_free(c);
	return rv ? rv : TK_EPROTO;
}

/*
 * The ts2021 dial as controlhttp/client.go dialHostOpt does it: plain HTTP
 * to the HTTP port first; TLS to the HTTPS port (if any) 500 ms later, or
 * at once when plain HTTP fails; the first to finish the whole upgrade
 * wins, the other is aborted.  Each attempt runs on a thread of its own
 * (the I/O is blocking with deadlines).
 */
#define HTTPS_FALLBACK_MS 500

typedef struct attempt {
	ctrldi_url u;
	const tk_machine_priv *mk;
	const tk_machine_pub *server;
	uint64_t deadline;
	int abort_fd;
	ctrldi_conn *c;
	int rv;
	char err[256];
	bool started, done;
	pthread_t thr;
	pthread_mutex_t *mu;
	pthread_cond_t *cv;
} attempt;

static void *
attempt_run(void *arg)
{
	attempt *a = arg;
	ctrldi_conn *c = NULL;
	int rv = dial_one(&c, &a->u, a->mk, a->server, a->deadline, a->abort_fd,
	    a->err, sizeof(a->err));

	pthread_mutex_lock(a->mu);
	a->rv = rv;
	a->c = rv == 0 ? c : NULL;
	a->done = true;
	pthread_cond_signal(a->cv);
	pthread_mutex_unlock(a->mu);
	return NULL;
}

static int
attempt_start(attempt *a)
{
	if (pthread_create(&a->thr, NULL, attempt_run, a) != 0) {
		snprintf(a->err, sizeof(a->err), "no thread for the dial");
		a->rv = TK_ENOMEM;
		a->done = true;
		return TK_ENOMEM;
	}
	a->started = true;
	return 0;
}

int
ctrldi_conn_dial(ctrldi_conn **out, const ctrldi_url *u,
    const tk_machine_priv *mk, const tk_machine_pub *server, int timeout_ms,
    char *err, size_t errlen)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	ctrldi_url plain = *u, tls = *u;
	int rv;

	plain.tls = false;
	plain.port = u->http_port ? u->http_port : u->port;
	tls.tls = true;
	tls.port = u->https_port;
	if (u->https_port == 0) /* http:// to a private address: one try */
		return dial_one(out, &plain, mk, server, deadline, -1, err, errlen);

	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv;
	pthread_condattr_t ca;
	attempt a[2] = { { .u = plain }, { .u = tls } };
	int abort_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	if (abort_fd < 0) {
		snprintf(err, errlen, "dial: %s", strerror(errno));
		return tk_err_sys(errno);
	}
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cv, &ca);
	pthread_condattr_destroy(&ca);
	for (int i = 0; i < 2; i++) {
		a[i].mk = mk;
		a[i].server = server;
		a[i].deadline = deadline;
		a[i].abort_fd = abort_fd;
		a[i].mu = &mu;
		a[i].cv = &cv;
	}
	uint64_t tls_at = now_ms() + HTTPS_FALLBACK_MS;
	int win = -1;
	pthread_mutex_lock(&mu);
	attempt_start(&a[0]);
	for (;;) {
		if (a[0].done && a[0].rv == 0) {
			win = 0;
			break;
		}
		if (a[1].done && a[1].rv == 0) {
			win = 1;
			break;
		}
		if (!a[1].started && !a[1].done && (a[0].done || now_ms() >= tls_at)) {
			attempt_start(&a[1]);
			continue;
		}
		if (a[0].done && a[1].done)
			break; /* both failed */
		/* wake at the fallback time, else when an attempt ends */
		uint64_t until = a[1].started || a[1].done ? deadline + 1000 : tls_at;
		struct timespec ts = { .tv_sec = (time_t)(until / 1000),
			.tv_nsec = (long)(until % 1000) * 1000000 };
		pthread_cond_timedwait(&cv, &mu, &ts);
	}
	pthread_mutex_unlock(&mu);
	/* the loser stops at its next wait */
	uint64_t one = 1;
	if (write(abort_fd, &one, sizeof(one)) < 0)
		(void)0;
	for (int i = 0; i < 2; i++)
		if (a[i].started)
			pthread_join(a[i].thr, NULL);
	for (int i = 0; i < 2; i++)
		if (i != win)
			ctrldi_conn_free(a[i].c);
	if (win >= 0) {
		a[win].c->io.abort_fd = -1;
		*out = a[win].c;
		rv = 0;
	} else {
		snprintf(err, errlen, "all connection attempts failed (HTTP port %u: "
		    "%s; HTTPS port %u: %s)", plain.port, a[0].err, tls.port,
		    a[1].err);
		rv = a[0].rv == TK_ECLOSED ? a[1].rv : a[0].rv;
	}
	close(abort_fd);
	pthread_cond_destroy(&cv);
	return rv;
}

const char *
ctrldi_conn_early(const ctrldi_conn *c)
{
	return c->early.len ? (const char *)c->early.data : "";
}

/*
 * The Ts-Lb header values for a request body (tailcfg.LBHeader): a hint
 * for the server's load balancer, taken from the body so they always
 * match it, as ts2021.AddLBHeader adds them in direct.go: OldNodeKey, then
 * NodeKey, each only when not the zero key.  lb[1] is used only for two.
 */
static size_t
lb_keys(const char *body, size_t n, char lb[2][TK_KEY_TEXT_MAX])
{
	static const char *const names[] = { "OldNodeKey", "NodeKey" };
	json_t *j = NULL;
	size_t k = 0;

	lb[0][0] = lb[1][0] = '\0';
	if (n == 0 || body[0] != '{' || tk_json_parse(&j, body, n, NULL, NULL, 0) != 0)
		return 0;
	for (int i = 0; i < 2; i++) {
		const char *v;
		size_t vl;
		if (tk_json_get_str(j, names[i], &v, &vl) != 0 || vl <= 8 ||
		    vl >= TK_KEY_TEXT_MAX || strncmp(v, "nodekey:", 8) != 0 ||
		    strspn(v + 8, "0") == vl - 8)
			continue;
		memcpy(lb[k], v, vl + 1);
		k++;
	}
	json_decref(j);
	return k;
}

static h2stream *
start_method(ctrldi_conn *c, const char *method, const char *path,
    const char *body, size_t n, char *err, size_t errlen)
{
	/* streams whose answer nobody reads are freed when they close */
	h2stream *s = NULL;

	for (int i = 0; i < MAX_STREAMS; i++)
		if (c->streams[i].id == 0) {
			s = &c->streams[i];
			break;
		}
	if (s == NULL || c->failed) {
		snprintf(err, errlen, "%s", c->failed ? c->why : "too many requests");
		return NULL;
	}
	memset(s, 0, sizeof(*s));
	tk_buf_init(&s->body);
	s->req = (const uint8_t *)body;
	s->req_len = n;
	char clen[24], lb[2][TK_KEY_TEXT_MAX];
	size_t nlb = lb_keys(body, n, lb);
	snprintf(clen, sizeof(clen), "%zu", n);
#define HDR(k, v) { (uint8_t *)(k), (uint8_t *)(v), sizeof(k) - 1, strlen(v), \
	NGHTTP2_NV_FLAG_NONE }
	nghttp2_nv hdrs[] = {
		HDR(":method", method),
		HDR(":scheme", "https"),
		HDR(":authority", c->host),
		HDR(":path", path),
		HDR("content-type", "application/json"),
		HDR("content-length", clen),
		HDR("ts-lb", lb[0]),
		HDR("ts-lb", lb[1]),
	};
#undef HDR
	/* bodiless requests stop before content-type; then the Ts-Lb ones */
	size_t nh = n ? 6 : 4;
	if (n)
		nh += nlb;
	nghttp2_data_provider dp = { .source.ptr = s, .read_callback = read_body };
	int32_t id = nghttp2_submit_request(c->h2, NULL, hdrs, nh, n ? &dp : NULL,
	    NULL);
	if (id < 0) {
		snprintf(err, errlen, "HTTP/2 request: %s", nghttp2_strerror(id));
		return NULL;
	}
	s->id = id;
	return s;
}

static h2stream *
start(ctrldi_conn *c, const char *path, const char *body, size_t n, char *err,
    size_t errlen)
{
	return start_method(c, "POST", path, body, n, err, errlen);
}

static void
finish(h2stream *s)
{
	tk_buf_fini(&s->body);
	memset(s, 0, sizeof(*s));
}

int
ctrldi_conn_request(ctrldi_conn *c, const char *path, const char *body,
    size_t n, int timeout_ms, int *status, tk_buf *resp, char *err,
    size_t errlen)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	h2stream *s = start(c, path, body, n, err, errlen);
	int rv = 0;

	if (s == NULL)
		return TK_ESTATE;
	while (!s->closed) {
		if ((rv = h2_flush(c, deadline)) != 0 || (rv = pump_in(c, deadline)) != 0)
			break;
	}
	if (rv == 0) {
		*status = s->status;
		snprintf(c->retry_after, sizeof(c->retry_after), "%s",
		    s->retry_after);
		rv = tk_buf_append(resp, s->body.data, s->body.len);
	} else {
		snprintf(err, errlen, "%s: %s", path, c->failed ? c->why : tk_strerror(rv));
		if (rv == TK_ETIMEDOUT)
			nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->id,
			    NGHTTP2_CANCEL);
	}
	finish(s);
	return rv;
}

const char *
ctrldi_conn_retry_after(const ctrldi_conn *c)
{
	return c->retry_after;
}

int
ctrldi_conn_stream(ctrldi_conn *c, const char *path, const char *body,
    size_t n, bool zstd, int idle_ms, ctrldi_msg_fn on_msg, void *arg,
    int *status, char *err, size_t errlen)
{
	h2stream *s = start(c, path, body, n, err, errlen);
	int rv = 0;

	if (s == NULL)
		return TK_ESTATE;
	s->map = true;
	s->zstd = zstd;
	s->on_msg = on_msg;
	s->arg = arg;
	c->last_msg_ms = now_ms();
	while (!s->closed && s->cb_rv == 0) {
		uint64_t deadline = c->last_msg_ms + (uint64_t)idle_ms;
		if ((rv = h2_flush(c, deadline)) != 0)
			break;
		if (c->wake_fd >= 0 && !(c->io.tls &&
		    gnutls_record_check_pending(c->io.tls) > 0)) {
			struct pollfd pf[2] = { { .fd = c->io.fd, .events = POLLIN },
				{ .fd = c->wake_fd, .events = POLLIN } };
			uint64_t now = now_ms();
			if (now >= deadline) {
				rv = TK_ETIMEDOUT;
				break;
			}
			if (poll(pf, 2, (int)(deadline - now)) < 0 && errno != EINTR) {
				rv = tk_err_sys(errno);
				break;
			}
			if (pf[1].revents & POLLIN) {
				uint64_t v;
				if (read(c->wake_fd, &v, sizeof(v)) < 0)
					(void)0;
				c->wake_fn(c->wake_arg, c);
				continue;
			}
			if (!(pf[0].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
		}
		if ((rv = pump_in(c, deadline)) != 0)
			break;
		/* a non-200 answer is read whole, then reported */
	}
	*status = s->status;
	if (s->cb_rv != 0)
		rv = s->cb_rv;
	else if (rv == 0)
		rv = TK_ECLOSED;
	if (rv == TK_ETIMEDOUT)
		snprintf(err, errlen, "map stream: nothing for %d ms", idle_ms);
	else if (s->status != 200 && s->status != 0)
		snprintf(err, errlen, "map request: HTTP status %d: %.*s", s->status,
		    (int)(s->body.len > 200 ? 200 : s->body.len),
		    (const char *)s->body.data);
	else if (c->failed)
		snprintf(err, errlen, "%s", c->why);
	else if (rv == TK_ECLOSED)
		snprintf(err, errlen, "map stream ended by the server");
	if (!s->closed)
		nghttp2_submit_rst_stream(c->h2, NGHTTP2_FLAG_NONE, s->id, NGHTTP2_CANCEL);
	finish(s);
	return rv;
}

void
ctrldi_conn_set_wake(ctrldi_conn *c, int fd,
    void (*fn)(void *arg, ctrldi_conn *c), void *arg)
{
	c->wake_fd = fd;
	c->wake_fn = fn;
	c->wake_arg = arg;
}

int
ctrldi_conn_submit(ctrldi_conn *c, const char *method, const char *path,
    const char *body, size_t n)
{
	char err[128];
	char *copy = tk_malloc(n + 1);
	h2stream *s;

	if (copy == NULL)
		return TK_ENOMEM;
	if (n)
		memcpy(copy, body, n);
	if ((s = start_method(c, method, path, copy, n, err, sizeof(err))) == NULL) {
		tk_free(copy);
		return TK_ESTATE;
	}
	s->discard = true;
	s->owned = copy;
	return 0;
}

void
ctrldi_conn_abort(ctrldi_conn *c)
{
	if (c->io.fd >= 0)
		shutdown(c->io.fd, SHUT_RDWR);
}

void
ctrldi_conn_free(ctrldi_conn *c)
{
	if (c == NULL)
		return;
	for (int i = 0; i < MAX_STREAMS; i++) {
		tk_buf_fini(&c->streams[i].body);
		tk_free(c->streams[i].owned);
	}
	if (c->h2)
		nghttp2_session_del(c->h2);
	io_close(&c->io);
	ts2021_wipe(&c->noise);
	tk_buf_fini(&c->early);
	tk_free(c);
}

int
ctrldi_http_head(const char *url, int timeout_ms, int *status)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	char err[200], req[2300];
	ctrldi_url u;
	const char *path;
	io o;
	tk_buf b;
	size_t hl;
	int rv;

	if (strlen(url) > 2000 || ctrldi_url_parse(&u, url, err, sizeof(err)) != 0)
		return TK_EINVAL;
	path = strchr(url + (u.tls ? 8 : 7), '/');
	if ((rv = io_open(&o, &u, deadline, true, -1, err, sizeof(err))) != 0)
		return rv;
	snprintf(req, sizeof(req), "HEAD %s HTTP/1.0\r\nHost: %s\r\n"
	    "User-Agent: tailkit\r\n\r\n", path ? path : "/", u.host);
	tk_buf_init(&b);
	if ((rv = io_write(&o, (const uint8_t *)req, strlen(req), deadline)) == 0 &&
	    (rv = read_head(&o, deadline, &b, &hl)) == 0)
		*status = status_code(&b, hl);
	tk_buf_fini(&b);
	io_close(&o);
	return rv;
}
