/*
 * The wg(8) UAPI socket: <dir>/<name>.sock, mode 0600, like wireguard-go's.
 * Requests end with an empty line; each is handled by tk_wg_uapi_handle
 * (parsed whole, then applied) and answered with errno=N.
 *
 * Client sockets are non-blocking and a `get` with thousands of peers is
 * larger than the socket buffer: the unsent rest of a response is kept and
 * sent as the socket becomes writable (the loop watches for writability
 * instead of readability meanwhile, so requests are answered in order and
 * one client buffers at most one response).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"
#include "wgd_int.h"

#define MAX_CLIENTS 16

typedef struct client {
	int fd;
	char *buf;
	size_t len, cap;
	size_t scanned; /* bytes already searched for the end of a request */
	char *out;	/* the response being sent, or NULL */
	size_t out_len, out_off;
} client;

struct wgdi_uapi {
	wgd *w;
	int fd;
	char path[108];
	client clients[MAX_CLIENTS];
};

static void
client_close(wgdi_uapi *u, client *c)
{
	tk_loop_fd_del(u->w->loop, c->fd);
	close(c->fd);
	/* requests may carry private and preshared keys, get responses do */
	tk_free_secret(c->buf, c->cap);
	tk_free_secret(c->out, c->out_len);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* A short reply before closing: best effort, never blocks. */
static void
send_last(int fd, const char *p, size_t n)
{
	(void)!send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/*
 * Sends as much of c->out as the socket takes.  0: all sent (c->out freed,
 * the client is read from again); 1: the rest waits for writability;
 * -1: the client is gone.
 */
static int
client_flush(wgdi_uapi *u, client *c)
{
	while (c->out_off < c->out_len) {
		ssize_t k = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
		    MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return tk_loop_fd_mod(u->w->loop, c->fd, TK_LOOP_WRITE) == 0 ?
			    1 : -1;
		if (k <= 0)
			return -1;
		c->out_off += (size_t)k;
	}
	tk_free_secret(c->out, c->out_len); /* a get holds the private key */
	c->out = NULL;
	c->out_len = c->out_off = 0;
	return tk_loop_fd_mod(u->w->loop, c->fd, TK_LOOP_READ) == 0 ? 0 : -1;
}

static void
handle(wgdi_uapi *u, client *c, char *end)
{
	wgd *w = u->w;
	size_t rn = (size_t)(end - c->buf), rl;
	char *resp, why[256];
	uint8_t before[32], after[32];
	bool had = tk_wg_device_public_key(w->dev, before);
	uint32_t fwmark_before = w->ifc.fwmark;

	int e = tk_wg_uapi_handle(w->dev, &w->ifc, c->buf, rn, &resp, &rl, why,
	    sizeof(why));
	if (e < 0) {
		client_close(u, c);
		return;
	}
	if (e != 0)
		TK_WARN(WGD_SUBSYS, "uapi: errno=%d: %s", e, why);
	if (w->ifc.listen_port_changed) {
		w->ifc.listen_port_changed = 0;
		int rv = wgdi_open_udp(w, w->ifc.listen_port);
		if (rv != 0)
			TK_ERR(WGD_SUBSYS, "listen port %u: %s", w->ifc.listen_port,
			    tk_strerror(rv));
	}
	if (w->ifc.fwmark_changed && w->udp >= 0) {
		w->ifc.fwmark_changed = 0;
		int rv = wgdi_set_fwmark(w, w->udp, w->ifc.fwmark);
		if (rv != 0) {
			/* refused, not pretended: the socket keeps its mark */
			char *er = tk_malloc(32);
			w->ifc.fwmark = fwmark_before;
			if (er == NULL) {
				tk_free_secret(resp, rl);
				client_close(u, c);
				return;
			}
			tk_free_secret(resp, rl);
			resp = er;
			rl = (size_t)snprintf(er, 32, "errno=%d\n\n",
			    (rv & TK_ERANGE_MASK) == TK_ESYS ?
			    rv & TK_ECODE_MASK : EPERM);
		}
	}
	bool has = tk_wg_device_public_key(w->dev, after);
	if (has != had || (has && memcmp(before, after, 32) != 0))
		wgdi_key_changed(w);
	memmove(c->buf, end, c->len - rn);
	c->len -= rn;
	tk_secure_zero(c->buf + c->len, rn); /* the request handled: keys */
	c->out = resp;
	c->out_len = rl;
	c->out_off = 0;
	if (client_flush(u, c) < 0)
		client_close(u, c);
	wgdi_flush_tx(w); /* a set may have started handshakes */
}

/* Handles the complete requests in c->buf while no response is pending. */
static void
process(wgdi_uapi *u, client *c)
{
	while (c->fd >= 0 && c->out == NULL) {
		char *end = NULL;
		/* a request ends with an empty line; resume where the last
		 * read's search stopped */
		for (size_t i = c->scanned; i + 1 < c->len; i++)
			if (c->buf[i] == '\n' && c->buf[i + 1] == '\n') {
				end = c->buf + i + 2;
				break;
			}
		if (c->len >= 1 && c->buf[0] == '\n')
			end = c->buf + 1; /* stray empty line */
		if (end == NULL) {
			c->scanned = c->len ? c->len - 1 : 0;
			return;
		}
		c->scanned = 0;
		handle(u, c, end);
	}
}

static void
on_client(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	wgdi_uapi *u = arg;
	client *c = NULL;

	(void)loop, (void)ev;
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (u->clients[i].fd == fd)
			c = &u->clients[i];
	if (c == NULL)
		return;
	if (c->out != NULL) { /* writable again: send the rest */
		int r = client_flush(u, c);
		if (r < 0)
			client_close(u, c);
		else if (r == 0)
			process(u, c); /* requests that came with the last read */
		return;
	}
	if (c->cap - c->len < 4096) {
		size_t nc = c->cap ? c->cap * 2 : 8192;
		if (nc > TK_WG_UAPI_MAX_REQUEST + 8192) {
			send_last(fd, "errno=90\n\n", 10); /* EMSGSIZE */
			client_close(u, c);
			return;
		}
		char *nb = tk_malloc(nc);
		if (nb == NULL) {
			client_close(u, c);
			return;
		}
		if (c->len)
			memcpy(nb, c->buf, c->len);
		tk_free_secret(c->buf, c->cap);
		c->buf = nb;
		c->cap = nc;
	}
	ssize_t k = read(fd, c->buf + c->len, c->cap - c->len);
	if (k <= 0) {
		if (k < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		client_close(u, c);
		return;
	}
	c->len += (size_t)k;
	process(u, c);
}

static void
on_accept(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	wgdi_uapi *u = arg;

	(void)ev;
	int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (c < 0)
		return;
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (u->clients[i].fd < 0) {
			u->clients[i].fd = c;
			tk_loop_fd_add(loop, c, TK_LOOP_READ, on_client, u);
			return;
		}
	}
	close(c); /* too many at once */
}

int
wgdi_uapi_open(wgd *w, const char *dir, const char *name, wgdi_uapi **out,
    char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	wgdi_uapi *u;
	int fd, rv;

	if (strchr(name, '/') != NULL || *name == '\0') {
		snprintf(err, errlen, "UAPI name '%s': need 1 or more characters, "
		    "no '/'", name);
		return TK_EINVAL;
	}
	if ((u = tk_calloc(1, sizeof(*u))) == NULL)
		return TK_ENOMEM;
	u->w = w;
	u->fd = -1;
	for (int i = 0; i < MAX_CLIENTS; i++)
		u->clients[i].fd = -1;
	mkdir(dir, 0755);
	if ((size_t)snprintf(u->path, sizeof(u->path), "%s/%s.sock", dir, name) >=
		sizeof(u->path) ||
	    strlen(u->path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "UAPI socket path %s/%s.sock: longer than %zu "
		    "bytes", dir, name, sizeof(sa.sun_path) - 1);
		tk_free(u);
		return TK_EINVAL;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", u->path);
	/* a socket nobody answers on is stale: replace it */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		snprintf(err, errlen, "UAPI socket %s: another process serves it",
		    u->path);
		tk_free(u);
		return TK_EEXIST;
	}
	if (fd >= 0)
		close(fd);
	unlink(u->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rv = tk_err_sys(errno);
		tk_free(u);
		return rv;
	}
	mode_t old = umask(0077);
	rv = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rv != 0 || listen(fd, 16) != 0) {
		rv = tk_err_sys(errno);
		snprintf(err, errlen, "UAPI socket %s: %s", u->path, tk_strerror(rv));
		close(fd);
		tk_free(u);
		return rv;
	}
	u->fd = fd;
	if ((rv = tk_loop_fd_add(w->loop, fd, TK_LOOP_READ, on_accept, u)) != 0) {
		wgdi_uapi_free(w, u);
		return rv;
	}
	*out = u;
	return 0;
}

void
wgdi_uapi_free(wgd *w, wgdi_uapi *u)
{
	(void)w;
	if (u == NULL)
		return;
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (u->clients[i].fd >= 0)
			client_close(u, &u->clients[i]);
	if (u->fd >= 0) {
		tk_loop_fd_del(u->w->loop, u->fd);
		close(u->fd);
		unlink(u->path);
	}
	tk_free(u);
}

/*
 * rpc "uapi_get" (TK_METHOD_UAPI_GET): what wg(8) reads with "get=1", for
 * `tailkit debug wg` inside tailkitd, where there is no UAPI socket.  The
 * private and preshared keys stay in wgd: their lines are left out.
 */
int
wgdi_uapi_get_rpc(void *arg, const uint8_t *body, size_t len, tk_buf *reply)
{
	wgd *w = arg;
	static const char req[] = "get=1\n\n";
	char *resp = NULL, why[128];
	size_t rl = 0;
	int rv = 0;

	(void)body, (void)len;
	int e = tk_wg_uapi_handle(w->dev, &w->ifc, req, sizeof(req) - 1, &resp,
	    &rl, why, sizeof(why));
	if (e < 0)
		return TK_ENOMEM;
	for (char *l = resp, *end = resp + rl; rv == 0 && l < end;) {
		char *nl = memchr(l, '\n', (size_t)(end - l));
		size_t ll = nl ? (size_t)(nl - l) + 1 : (size_t)(end - l);
		if (strncmp(l, "private_key=", 12) != 0 &&
		    strncmp(l, "preshared_key=", 14) != 0)
			rv = tk_buf_append(reply, l, ll);
		l += ll;
	}
	tk_free_secret(resp, rl);
	return rv;
}
