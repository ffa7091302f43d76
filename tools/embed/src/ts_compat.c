/*
 * libtailscale's C API (tailscale.h) on tailkit's native one: handles are
 * ints in a table, each a tailkit node with its last error message;
 * listeners and connections are tailkit's descriptors.  Where
 * libtailscale's header leaves a contract open we do what its Go source
 * does (defaults from $TS_AUTHKEY / $TS_AUTH_KEY / $TS_CONTROL_URL, the
 * program's name as host name, <config dir>/tsnet-<program> as state,
 * "[v6]" from getremoteaddr, handles from 42<<16 + 1); differences are in
 * tools/embed/README.md.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tailscale.h"
#include "ts_int.h"

#define DEFAULT_CONTROL "https://controlplane.tailscale.com"
#define MAX_CONNS_PER_LISTENER 4096

typedef struct ts_server {
	int sd;
	tailkit *tk;
	pthread_mutex_t mu; /* err, lb, start */
	char err[1024];
	ts_loopback *lb;
	int refs;
	bool closed;
} ts_server;

/* a connection accepted on a listener, for tailscale_getremoteaddr; the
 * inode tells a reused descriptor number from ours */
typedef struct ts_conn {
	int fd;
	dev_t dev;
	ino_t ino;
	char ip[64];
} ts_conn;

typedef struct ts_listener {
	int fd, sd;
	dev_t dev;
	ino_t ino;
	ts_conn *c;
	size_t nc;
} ts_listener;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static ts_server **servers;
static size_t nservers;
static int next_sd = (42 << 16) + 1;
static ts_listener *listeners;
static size_t nlisteners;

/* ---- handles --------------------------------------------------------------- */

static ts_server *
get(int sd)
{
	ts_server *s = NULL;

	pthread_mutex_lock(&mu);
	for (size_t i = 0; i < nservers; i++)
		if (servers[i]->sd == sd && !servers[i]->closed) {
			s = servers[i];
			s->refs++;
			break;
		}
	pthread_mutex_unlock(&mu);
	return s;
}

static void
put(ts_server *s)
{
	bool last;

	pthread_mutex_lock(&mu);
	last = --s->refs == 0 && s->closed;
	pthread_mutex_unlock(&mu);
	if (!last)
		return;
	ts_loopback_free(s->lb);
	tailkit_free(s->tk);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* Records the calling thread's tailkit error as sd's last error: -1. */
static int
fail(ts_server *s)
{
	pthread_mutex_lock(&s->mu);
	snprintf(s->err, sizeof(s->err), "%s", tkx_lasterr());
	pthread_mutex_unlock(&s->mu);
	return -1;
}

static int
ok(ts_server *s)
{
	pthread_mutex_lock(&s->mu);
	s->err[0] = '\0';
	pthread_mutex_unlock(&s->mu);
	return 0;
}

TKX_API tailscale
tailscale_new(void)
{
	ts_server *s = calloc(1, sizeof(*s)), **ns;

	if (s == NULL || tailkit_new(&s->tk) != 0) {
		free(s);
		return -1;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_lock(&mu);
	if ((ns = realloc(servers, (nservers + 1) * sizeof(*ns))) == NULL) {
		pthread_mutex_unlock(&mu);
		tailkit_free(s->tk);
		free(s);
		return -1;
	}
	servers = ns;
	s->sd = next_sd++;
	s->refs = 1; /* the table's */
	servers[nservers++] = s;
	pthread_mutex_unlock(&mu);
	return s->sd;
}

TKX_API int
tailscale_close(tailscale sd)
{
	ts_server *s = get(sd);
	ts_loopback *lb;

	if (s == NULL)
		return EBADF;
	pthread_mutex_lock(&mu);
	s->closed = true;
	for (size_t i = 0; i < nservers; i++)
		if (servers[i] == s) {
			servers[i] = servers[--nservers];
			break;
		}
	s->refs--; /* the table's */
	pthread_mutex_unlock(&mu);
	pthread_mutex_lock(&s->mu);
	lb = s->lb;
	s->lb = NULL;
	pthread_mutex_unlock(&s->mu);
	ts_loopback_free(lb);
	/* wakes a tailscale_up of another thread; listeners see EOF */
	int rv = tailkit_stop(s->tk) == 0 ? 0 : -1;
	put(s);
	return rv;
}

/* ---- settings ---------------------------------------------------------------- */

static int
set(tailscale sd, const char *key, const char *v)
{
	ts_server *s = get(sd);
	int rv;

	if (s == NULL)
		return EBADF;
	rv = tailkit_set(s->tk, key, v) == 0 ? ok(s) : fail(s);
	put(s);
	return rv;
}

TKX_API int
tailscale_set_dir(tailscale sd, const char *dir)
{
	return set(sd, "state_dir", dir && *dir ? dir : NULL);
}

TKX_API int
tailscale_set_hostname(tailscale sd, const char *hostname)
{
	return set(sd, "hostname", hostname && *hostname ? hostname : NULL);
}

TKX_API int
tailscale_set_authkey(tailscale sd, const char *authkey)
{
	return set(sd, "authkey", authkey && *authkey ? authkey : NULL);
}

TKX_API int
tailscale_set_control_url(tailscale sd, const char *control_url)
{
	return set(sd, "control_url", control_url && *control_url ?
	    control_url : NULL);
}

TKX_API int
tailscale_set_ephemeral(tailscale sd, int ephemeral)
{
	return set(sd, "ephemeral", ephemeral ? "1" : "0");
}

TKX_API int
tailscale_set_logfd(tailscale sd, int fd)
{
	ts_server *s = get(sd);
	int rv;

	if (s == NULL)
		return EBADF;
	rv = tailkit_set_logfd(s->tk, fd) == 0 ? ok(s) : fail(s);
	put(s);
	return rv;
}

/* ---- start ------------------------------------------------------------------ */

/* The program's name, lower case (tsnet's default host name and state
 * directory suffix). */
static void
prog_name(char *out, size_t cap)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	snprintf(out, cap, "tsnet");
	if (n <= 0)
		return;
	exe[n] = '\0';
	snprintf(out, cap, "%s", basename(exe));
	for (char *p = out; *p; p++)
		*p = (char)tolower((unsigned char)*p);
}

/* tsnet's defaults for what the program did not set. */
static int
defaults(tailkit *tk)
{
	char prog[256], dir[PATH_MAX + 300];
	const char *v;
	int rv = 0;

	prog_name(prog, sizeof(prog));
	if (tk->hostname == NULL)
		rv |= tailkit_set(tk, "hostname", prog);
	if (tk->authkey == NULL &&
	    ((v = getenv("TS_AUTHKEY")) != NULL && *v ? 1 :
		(v = getenv("TS_AUTH_KEY")) != NULL && *v))
		rv |= tailkit_set(tk, "authkey", v);
	if (tk->control_url == NULL)
		rv |= tailkit_set(tk, "control_url",
		    (v = getenv("TS_CONTROL_URL")) != NULL && *v ? v :
		    DEFAULT_CONTROL);
	/* tailkit's own knobs for programs that cannot call tailkit_set */
	if ((v = getenv("TAILKIT_DERP_PLAIN_HTTP")) != NULL && *v)
		rv |= tailkit_set(tk, "derp_plain_http", v);
	if ((v = getenv("TAILKIT_CA_FILE")) != NULL && *v)
		rv |= tailkit_set(tk, "ca_file", v);
	if ((v = getenv("TAILKIT_LOG_LEVEL")) != NULL && *v)
		rv |= tailkit_set(tk, "log_level", v);
	if (tk->state_dir == NULL) {
		const char *x = getenv("XDG_CONFIG_HOME"), *h = getenv("HOME");
		if (x != NULL && *x == '/')
			snprintf(dir, sizeof(dir), "%s/tsnet-%s", x, prog);
		else if (h != NULL && *h == '/') {
			snprintf(dir, sizeof(dir), "%s/.config", h);
			mkdir(dir, 0700);
			snprintf(dir, sizeof(dir), "%s/.config/tsnet-%s", h, prog);
		} else
			return tkx_fail(EINVAL, "no state directory: call "
			    "tailscale_set_dir (neither $XDG_CONFIG_HOME nor "
			    "$HOME is set)");
		rv |= tailkit_set(tk, "state_dir", dir);
	}
	return rv;
}

/* Starts s's node unless it runs: 0 or -1 (s->err). */
static int
ensure_started(ts_server *s)
{
	int rv = 0;

	pthread_mutex_lock(&s->mu);
	pthread_mutex_lock(&s->tk->mu);
	bool started = s->tk->started;
	pthread_mutex_unlock(&s->tk->mu);
	if (!started && (defaults(s->tk) != 0 || tailkit_start(s->tk) != 0)) {
		snprintf(s->err, sizeof(s->err), "%s", tkx_lasterr());
		rv = -1;
	}
	pthread_mutex_unlock(&s->mu);
	return rv;
}

TKX_API int
tailscale_start(tailscale sd)
{
	ts_server *s = get(sd);
	int rv;

	if (s == NULL)
		return EBADF;
	rv = ensure_started(s) == 0 ? ok(s) : -1;
	put(s);
	return rv;
}

TKX_API int
tailscale_up(tailscale sd)
{
	ts_server *s = get(sd);
	int rv;

	if (s == NULL)
		return EBADF;
	if ((rv = ensure_started(s)) == 0)
		rv = tailkit_wait_running(s->tk, -1) == 0 ? ok(s) : fail(s);
	put(s);
	return rv;
}

/* ---- buffers ------------------------------------------------------------------ */

/* libtailscale's copy: always NUL-terminated, ERANGE when truncated.  A
 * NULL or empty buffer has no room: ERANGE (libtailscale panics). */
static int
copy_out(char *buf, size_t len, const char *s)
{
	if (buf == NULL || len == 0)
		return ERANGE;
	snprintf(buf, len, "%s", s);
	return strlen(s) >= len ? ERANGE : 0;
}

TKX_API int
tailscale_errmsg(tailscale sd, char *buf, size_t buflen)
{
	ts_server *s = get(sd);
	int rv;

	if (s == NULL) {
		if (buf != NULL && buflen > 0)
			buf[0] = '\0';
		return EBADF;
	}
	pthread_mutex_lock(&s->mu);
	rv = copy_out(buf, buflen, s->err);
	pthread_mutex_unlock(&s->mu);
	put(s);
	return rv;
}

TKX_API int
tailscale_getips(tailscale sd, char *buf, size_t buflen)
{
	ts_server *s = get(sd);
	char ips[256];

	if (s == NULL) {
		if (buf != NULL && buflen > 0)
			buf[0] = '\0';
		return EBADF;
	}
	if (tailkit_ips(s->tk, ips, sizeof(ips)) < 0)
		ips[0] = '\0';
	put(s);
	return copy_out(buf, buflen, ips);
}

/* ---- listen, accept, dial ---------------------------------------------------- */

static int
check_network(const char *fn, const char *network)
{
	if (network != NULL && (strcmp(network, "tcp") == 0 ||
	    strcmp(network, "tcp4") == 0 || strcmp(network, "tcp6") == 0))
		return 0;
	return tkx_fail(EINVAL, "%s: network \"%s\": tailkit's tailscale.h "
	    "serves \"tcp\", \"tcp4\" and \"tcp6\" (UDP with message boundaries "
	    "is tailkit_udp_bind in tailkit.h)", fn, network ? network : "(null)");
}

/* "host:port", "[v6]:port", ":port" into host and port. */
static int
split_hostport(const char *fn, const char *addr, char *host, size_t cap,
    int *port)
{
	const char *colon = addr ? strrchr(addr, ':') : NULL, *h = addr;
	size_t hl;
	char *end;

	if (colon == NULL)
		return tkx_fail(EINVAL, "%s: address \"%s\": expected host:port, "
		    "[v6]:port or :port", fn, addr ? addr : "(null)");
	hl = (size_t)(colon - addr);
	if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	long p = strtol(colon + 1, &end, 10);
	if (hl >= cap || *end != '\0' || colon[1] == '\0' || p < 1 || p > 65535)
		return tkx_fail(EINVAL, "%s: address \"%s\": expected host:port "
		    "with a port of 1..65535", fn, addr);
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (int)p;
	return 0;
}

static bool
fd_ident(int fd, dev_t *dev, ino_t *ino)
{
	struct stat st;

	if (fstat(fd, &st) != 0)
		return false;
	*dev = st.st_dev;
	*ino = st.st_ino;
	return true;
}

/* The listener entry of fd if it is still ours (mu held). */
static ts_listener *
listener_find(int fd)
{
	dev_t dev;
	ino_t ino;

	for (size_t i = 0; i < nlisteners; i++) {
		ts_listener *l = &listeners[i];
		if (l->fd != fd)
			continue;
		if (fd_ident(fd, &dev, &ino) && dev == l->dev && ino == l->ino)
			return l;
		/* closed, the number reused: forget it */
		free(l->c);
		listeners[i] = listeners[--nlisteners];
		return NULL;
	}
	return NULL;
}

/* Forgets listeners the program closed (mu held). */
static void
listeners_prune(void)
{
	dev_t dev;
	ino_t ino;

	for (size_t i = 0; i < nlisteners;) {
		ts_listener *l = &listeners[i];
		if (fd_ident(l->fd, &dev, &ino) && dev == l->dev &&
		    ino == l->ino) {
			i++;
			continue;
		}
		free(l->c);
		listeners[i] = listeners[--nlisteners];
	}
}

TKX_API int
tailscale_listen(tailscale sd, const char *network, const char *addr,
    tailscale_listener *listener_out)
{
	ts_server *s = get(sd);
	char host[256];
	unsigned char ip[16];
	int port, fd, rv = -1;

	if (s == NULL)
		return EBADF;
	if (listener_out == NULL)
		tkx_fail(EINVAL, "tailscale_listen: listener_out is NULL");
	else if (check_network("tailscale_listen", network) == 0 &&
	    split_hostport("tailscale_listen", addr, host, sizeof(host),
		&port) == 0) {
		if (host[0] != '\0' && inet_pton(AF_INET, host, ip) != 1 &&
		    inet_pton(AF_INET6, host, ip) != 1)
			tkx_fail(EINVAL, "tailscale_listen: \"%s\": listen on "
			    ":port or on one of the node's addresses", host);
		else if (ensure_started(s) != 0) {
			put(s);
			return -1;
		} else if ((fd = tailkit_listen(s->tk, port)) >= 0) {
			ts_listener l = { .fd = fd, .sd = sd };
			pthread_mutex_lock(&mu);
			ts_listener *nl = realloc(listeners,
			    (nlisteners + 1) * sizeof(*nl));
			if (nl != NULL && fd_ident(fd, &l.dev, &l.ino)) {
				listeners = nl;
				listeners_prune();
				listeners[nlisteners++] = l;
				*listener_out = fd;
				rv = 0;
			} else {
				if (nl != NULL)
					listeners = nl;
				close(fd);
				tkx_fail(ENOMEM, "out of memory");
			}
			pthread_mutex_unlock(&mu);
		}
	}
	rv = rv == 0 ? ok(s) : fail(s);
	put(s);
	return rv;
}

static void
conn_record(ts_listener *l, int fd, const tailkit_peer *p)
{
	ts_conn c = { .fd = fd };
	dev_t dev;
	ino_t ino;

	if (!fd_ident(fd, &c.dev, &c.ino))
		return;
	if (strchr(p->remote_ip, ':') != NULL)
		snprintf(c.ip, sizeof(c.ip), "[%s]", p->remote_ip);
	else
		snprintf(c.ip, sizeof(c.ip), "%s", p->remote_ip);
	/* forget connections closed since (or whose number is c's now) */
	for (size_t i = 0; i < l->nc;) {
		if (l->c[i].fd != fd && fd_ident(l->c[i].fd, &dev, &ino) &&
		    dev == l->c[i].dev && ino == l->c[i].ino)
			i++;
		else
			l->c[i] = l->c[--l->nc];
	}
	if (l->nc == MAX_CONNS_PER_LISTENER)
		l->c[0] = l->c[--l->nc];
	ts_conn *nc = realloc(l->c, (l->nc + 1) * sizeof(*nc));
	if (nc == NULL)
		return;
	l->c = nc;
	l->c[l->nc++] = c;
}

TKX_API int
tailscale_accept(tailscale_listener listener, tailscale_conn *conn_out)
{
	tailkit_peer p;
	ts_server *s;
	int sd, fd;

	pthread_mutex_lock(&mu);
	ts_listener *l = listener_find(listener);
	sd = l ? l->sd : 0;
	pthread_mutex_unlock(&mu);
	if (l == NULL)
		return EBADF;
	if (conn_out == NULL)
		fd = tkx_fail(EINVAL, "tailscale_accept: conn_out is NULL");
	else if ((fd = tailkit_accept(listener, &p)) >= 0) {
		pthread_mutex_lock(&mu);
		if ((l = listener_find(listener)) != NULL)
			conn_record(l, fd, &p);
		pthread_mutex_unlock(&mu);
		*conn_out = fd;
		return 0;
	}
	if ((s = get(sd)) != NULL) {
		fail(s);
		put(s);
	}
	return -1;
}

TKX_API int
tailscale_getremoteaddr(tailscale_listener l, tailscale_conn conn, char *buf,
    size_t buflen)
{
	char ip[64] = "";
	dev_t dev;
	ino_t ino;
	int rv = EBADF;

	pthread_mutex_lock(&mu);
	ts_listener *li = listener_find(l);
	for (size_t i = 0; li != NULL && i < li->nc; i++)
		if (li->c[i].fd == conn && fd_ident(conn, &dev, &ino) &&
		    dev == li->c[i].dev && ino == li->c[i].ino) {
			snprintf(ip, sizeof(ip), "%s", li->c[i].ip);
			rv = 0;
			break;
		}
	pthread_mutex_unlock(&mu);
	if (rv != 0) {
		if (buf != NULL && buflen > 0)
			buf[0] = '\0';
		return rv;
	}
	return copy_out(buf, buflen, ip);
}

TKX_API int
tailscale_dial(tailscale sd, const char *network, const char *addr,
    tailscale_conn *conn_out)
{
	ts_server *s = get(sd);
	char host[256];
	int port, fd = -1;

	if (s == NULL)
		return EBADF;
	if (conn_out == NULL)
		tkx_fail(EINVAL, "tailscale_dial: conn_out is NULL");
	else if (check_network("tailscale_dial", network) == 0 &&
	    split_hostport("tailscale_dial", addr, host, sizeof(host),
		&port) == 0) {
		if (host[0] == '\0')
			tkx_fail(EINVAL, "tailscale_dial: \"%s\": no host", addr);
		else if (ensure_started(s) != 0) {
			put(s);
			return -1;
		} else
			fd = tailkit_dial(s->tk, host, port, NULL);
	}
	int rv = fd >= 0 ? ok(s) : fail(s);
	if (fd >= 0)
		*conn_out = fd;
	put(s);
	return rv;
}

/* ---- loopback, funnel ----------------------------------------------------------- */

TKX_API int
tailscale_loopback(tailscale sd, char *addr_out, size_t addrlen,
    char *proxy_cred_out, char *local_api_cred_out)
{
	ts_server *s;
	int rv = 0;

	if (addr_out != NULL && addrlen > 0)
		addr_out[0] = '\0';
	if (proxy_cred_out != NULL)
		proxy_cred_out[0] = '\0';
	if (local_api_cred_out != NULL)
		local_api_cred_out[0] = '\0';
	if ((s = get(sd)) == NULL)
		return EBADF;
	if (addr_out == NULL || addrlen == 0 || proxy_cred_out == NULL ||
	    local_api_cred_out == NULL) {
		tkx_fail(EINVAL, "tailscale_loopback: addr_out (with addrlen > 0) "
		    "and both 33-byte credential buffers are required");
		rv = fail(s);
	} else if (ensure_started(s) != 0)
		rv = -1;
	if (rv != 0) {
		put(s);
		return rv;
	}
	pthread_mutex_lock(&s->mu);
	if (s->lb == NULL && ts_loopback_new(&s->lb, s->tk) != 0) {
		snprintf(s->err, sizeof(s->err), "%s", tkx_lasterr());
		rv = -1;
	} else {
		rv = copy_out(addr_out, addrlen, ts_loopback_addr(s->lb));
		if (rv == 0) {
			memcpy(proxy_cred_out, s->tk->proxy_pass, TKX_CRED_LEN + 1);
			memcpy(local_api_cred_out, ts_loopback_cred(s->lb),
			    TKX_CRED_LEN + 1);
			s->err[0] = '\0';
		}
	}
	pthread_mutex_unlock(&s->mu);
	put(s);
	return rv;
}

TKX_API int
tailscale_enable_funnel_to_localhost_plaintext_http1(tailscale sd,
    int localhostPort)
{
	ts_server *s = get(sd);

	(void)localhostPort;
	if (s == NULL)
		return EBADF;
	tkx_fail(ENOTSUP, "tailscale_enable_funnel_to_localhost_plaintext_http1: "
	    "unsupported: tailkit has no Funnel (no Serve config, no public "
	    "TLS certificates); serve on the tailnet with tailscale_listen");
	int rv = fail(s);
	put(s);
	return rv;
}
