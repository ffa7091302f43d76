/*
 * Descriptors for the caller (tailkit.h "TCP", "UDP"): each listener and
 * each pending dial is a connection of its own to netstackd's local API
 * (netstackd/README.md "Local API"), so the caller polls exactly the
 * descriptor that will become readable, closing it ends the listener, and
 * no thread of ours sits in between.  Connections and UDP sockets are the
 * descriptors netstackd hands over (SCM_RIGHTS).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "embed_int.h"
#include "netstackd/ns_api.h"
#include "tk/endian.h"

#define REST_WAIT_MS 2000 /* the rest of a frame whose start arrived */

static int
api_connect(tailkit *tk)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, rv;

	if (tk == NULL)
		return tkx_fail(EINVAL, "NULL node");
	if ((rv = tkx_api_path(tk, sa.sun_path, sizeof(sa.sun_path))) != 0)
		return rv;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return tkx_fail(errno, "socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;
		close(fd);
		return tkx_fail(e, "the node's netstack (%s): %s", sa.sun_path,
		    strerror(e));
	}
	return fd;
}

static int
api_request(int fd, const ns_api_req *r)
{
	uint8_t b[NS_API_FRAME_MAX];
	size_t n = ns_api_req_encode(b, sizeof(b), r);

	if (n == 0)
		return tkx_fail(EINVAL, "bad request");
	if (send(fd, b, n, MSG_NOSIGNAL) != (ssize_t)n)
		return tkx_fail(errno ? errno : EIO, "the node's netstack: %s",
		    strerror(errno));
	return 0;
}

static int
read_rest(int fd, uint8_t *p, size_t n)
{
	for (size_t got = 0; got < n;) {
		ssize_t k = recv(fd, p + got, n - got, 0);
		if (k > 0) {
			got += (size_t)k;
			continue;
		}
		if (k == 0)
			return tkx_fail(ECONNRESET, "the node's netstack went away");
		if (errno == EINTR)
			continue;
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if ((errno != EAGAIN && errno != EWOULDBLOCK) ||
		    poll(&pf, 1, REST_WAIT_MS) <= 0)
			return tkx_fail(EPROTO, "a truncated frame from the "
			    "node's netstack");
	}
	return 0;
}

/*
 * One frame from netstackd into buf, and the descriptor it carries (or
 * -1).  -EAGAIN when nothing is there on a non-blocking fd; -ECONNRESET
 * when netstackd closed the connection (node stopped).
 */
static int
frame_read(int fd, uint8_t buf[NS_API_FRAME_MAX], ns_api_frame *f, int *rfd)
{
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cm;
	struct iovec iov = { .iov_base = buf, .iov_len = 2 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
		.msg_control = cm.b, .msg_controllen = sizeof(cm.b) };
	ssize_t k;
	size_t used, len;
	int rv;

	*rfd = -1;
	do
		k = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (k < 0 && errno == EINTR);
	if (k < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return tkx_fail(EAGAIN, "nothing yet (a non-blocking "
			    "descriptor: wait until it is readable)");
		if (errno == EBADF || errno == ENOTSOCK)
			return tkx_fail(EBADF, "not a tailkit descriptor");
		return tkx_fail(errno, "%s", strerror(errno));
	}
	if (k == 0)
		return tkx_fail(ECONNRESET, "closed: the node stopped");
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL;
	    c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len >= CMSG_LEN(sizeof(int)))
			memcpy(rfd, CMSG_DATA(c), sizeof(int));
	if ((rv = read_rest(fd, buf + k, 2 - (size_t)k)) != 0)
		goto fail;
	len = tk_be16_load(buf);
	if (len < NS_API_HDR_LEN || len > NS_API_FRAME_MAX) {
		rv = tkx_fail(EPROTO, "a frame of %zu bytes from the node's "
		    "netstack", len);
		goto fail;
	}
	if ((rv = read_rest(fd, buf + 2, len - 2)) != 0)
		goto fail;
	if (ns_api_frame_parse(buf, len, f, &used) != 0) {
		rv = tkx_fail(EPROTO, "a broken frame from the node's netstack");
		goto fail;
	}
	return 0;
fail:
	if (*rfd >= 0)
		close(*rfd);
	*rfd = -1;
	return rv;
}

static int
st_errno(int st)
{
	switch (st) {
	case NS_ST_EINVAL: return EINVAL;
	case NS_ST_EADDRINUSE: return EADDRINUSE;
	case NS_ST_ECONNREFUSED: return ECONNREFUSED;
	case NS_ST_ETIMEDOUT: return ETIMEDOUT;
	case NS_ST_ENETUNREACH: return ENETUNREACH;
	case NS_ST_ENOMEM: return ENOMEM;
	case NS_ST_ENOTSUP: return ENOTSUP;
	case NS_ST_ECLOSED: return ECONNABORTED;
	case NS_ST_ELIMIT: return ENOBUFS;
	case NS_ST_ENOTFOUND: return EHOSTUNREACH;
	default: return EIO;
	}
}

/* An error reply: its status as -errno, its text as the message. */
static int
reply_error(const char *what, const ns_api_frame *f)
{
	int n = (int)(f->len < 300 ? f->len : 300);

	return tkx_fail(st_errno(f->status), "%s: %.*s", what, n,
	    (const char *)f->body);
}

static void
addr_text(const ns_api_addr *a, char out[48], int *port)
{
	out[0] = '\0';
	if (a->family == 4 || a->family == 6)
		inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->addr, out, 48);
	if (port != NULL)
		*port = a->port;
}

static int
peer_out(const ns_api_frame *f, tailkit_peer *out)
{
	ns_api_peer p;

	if (ns_api_peer_decode(f->body, f->len, &p) != 0)
		return tkx_fail(EPROTO, "a broken peer record from the node's "
		    "netstack");
	if (out == NULL)
		return 0;
	memset(out, 0, sizeof(*out));
	addr_text(&p.remote, out->remote_ip, &out->remote_port);
	addr_text(&p.local, out->local_ip, &out->local_port);
	out->node_id = p.node_id;
	out->user_id = p.user_id;
	snprintf(out->node_name, sizeof(out->node_name), "%s", p.name);
	snprintf(out->user_login, sizeof(out->user_login), "%s", p.login);
	return 0;
}

static int
check_port(int port, int lo, const char *what)
{
	if (port < lo || port > 65535)
		return tkx_fail(EINVAL, "%s: port %d: expected %d..65535", what,
		    port, lo);
	return 0;
}

/* Sends r on a new API connection and reads the reply: the connection,
 * and *rfd / *f from the reply. */
static int
call(tailkit *tk, const ns_api_req *r, const char *what, uint8_t *buf,
    ns_api_frame *f, int *rfd)
{
	int fd, rv;

	*rfd = -1; /* the fail path reads it, also when the request fails */
	if ((fd = api_connect(tk)) < 0)
		return fd;
	if ((rv = api_request(fd, r)) != 0 ||
	    (rv = frame_read(fd, buf, f, rfd)) != 0)
		goto fail;
	if (f->op != NS_MSG_REPLY || f->status != NS_ST_OK) {
		rv = reply_error(what, f);
		goto fail;
	}
	return fd;
fail:
	if (*rfd >= 0)
		close(*rfd);
	*rfd = -1;
	close(fd);
	return rv;
}

TKX_API int
tailkit_listen(tailkit *tk, int port)
{
	ns_api_req r = { .op = NS_OP_LISTEN_TCP, .id = 1 };
	uint8_t buf[NS_API_FRAME_MAX];
	ns_api_frame f;
	int rv, fd, rfd;

	if ((rv = check_port(port, 1, "tailkit_listen")) != 0)
		return rv;
	r.addr.port = (uint16_t)port;
	if ((fd = call(tk, &r, "listen", buf, &f, &rfd)) < 0)
		return fd;
	if (rfd >= 0)
		close(rfd);
	return fd;
}

TKX_API int
tailkit_accept(int listener, tailkit_peer *peer)
{
	uint8_t buf[NS_API_FRAME_MAX];
	ns_api_frame f;
	int rv, fd;

	for (;;) {
		if ((rv = frame_read(listener, buf, &f, &fd)) != 0)
			return rv;
		if (f.op == NS_MSG_ACCEPT && f.status == NS_ST_OK && fd >= 0)
			break;
		if (fd >= 0) /* not ours to keep */
			close(fd);
	}
	if ((rv = peer_out(&f, peer)) != 0) {
		close(fd);
		return rv;
	}
	return fd;
}

TKX_API int
tailkit_dial_start(tailkit *tk, const char *host, int port)
{
	ns_api_req r = { .op = NS_OP_DIAL_TCP_NAME, .id = 1 };
	int fd, rv;

	if (host == NULL || host[0] == '\0' || strlen(host) > NS_API_NAME_MAX)
		return tkx_fail(EINVAL, "tailkit_dial: host: a tailnet name or "
		    "IP address of 1..%d bytes", NS_API_NAME_MAX);
	if ((rv = check_port(port, 1, "tailkit_dial")) != 0)
		return rv;
	snprintf(r.name, sizeof(r.name), "%s", host);
	r.addr.port = (uint16_t)port;
	if ((fd = api_connect(tk)) < 0)
		return fd;
	if ((rv = api_request(fd, &r)) != 0) {
		close(fd);
		return rv;
	}
	return fd;
}

TKX_API int
tailkit_dial_finish(int pending, tailkit_peer *peer)
{
	uint8_t buf[NS_API_FRAME_MAX];
	ns_api_frame f;
	int rv, fd;

	if ((rv = frame_read(pending, buf, &f, &fd)) == -EAGAIN)
		return rv;
	if (rv == -EBADF)
		return rv;
	if (rv == 0 && (f.op != NS_MSG_REPLY || f.status != NS_ST_OK))
		rv = reply_error("dial", &f);
	else if (rv == 0 && fd < 0)
		rv = tkx_fail(EPROTO, "dial: no descriptor in the reply");
	else if (rv == 0)
		rv = peer_out(&f, peer);
	close(pending);
	if (rv != 0) {
		if (fd >= 0)
			close(fd);
		return rv;
	}
	return fd;
}

TKX_API int
tailkit_dial(tailkit *tk, const char *host, int port, tailkit_peer *peer)
{
	int p = tailkit_dial_start(tk, host, port);

	if (p < 0)
		return p;
	for (;;) {
		struct pollfd pf = { .fd = p, .events = POLLIN };
		if (poll(&pf, 1, -1) < 0 && errno != EINTR) {
			close(p);
			return tkx_fail(errno, "poll: %s", strerror(errno));
		}
		int rv = tailkit_dial_finish(p, peer);
		if (rv != -EAGAIN)
			return rv;
	}
}

TKX_API int
tailkit_udp_bind(tailkit *tk, int port, int *bound_port)
{
	ns_api_req r = { .op = NS_OP_BIND_UDP, .id = 1 };
	uint8_t buf[NS_API_FRAME_MAX];
	ns_api_frame f;
	int rv, fd, ufd;

	if ((rv = check_port(port, 0, "tailkit_udp_bind")) != 0)
		return rv;
	r.addr.port = (uint16_t)port;
	if ((fd = call(tk, &r, "udp bind", buf, &f, &ufd)) < 0)
		return fd;
	close(fd); /* the binding lives with its descriptor */
	if (ufd < 0 || f.len < 2) {
		if (ufd >= 0)
			close(ufd);
		return tkx_fail(EPROTO, "udp bind: no descriptor in the reply");
	}
	if (bound_port != NULL)
		*bound_port = tk_be16_load(f.body);
	return ufd;
}

TKX_API int
tailkit_udp_sendto(int fd, const void *buf, size_t len, const char *ip,
    int port)
{
	ns_api_addr a = { 0 };
	uint8_t h[NS_UDP_HDR_LEN];
	int rv;

	if (buf == NULL && len > 0)
		return tkx_fail(EINVAL, "tailkit_udp_sendto: NULL buffer");
	if (len > NS_UDP_PAYLOAD_MAX)
		return tkx_fail(EMSGSIZE, "tailkit_udp_sendto: %zu bytes; at "
		    "most 1252 (IPv4) or 1232 (IPv6) cross the tailnet", len);
	if ((rv = check_port(port, 1, "tailkit_udp_sendto")) != 0)
		return rv;
	if (ip != NULL && inet_pton(AF_INET, ip, a.addr) == 1)
		a.family = 4;
	else if (ip != NULL && inet_pton(AF_INET6, ip, a.addr) == 1)
		a.family = 6;
	else
		return tkx_fail(EINVAL, "tailkit_udp_sendto: \"%s\": expected an "
		    "IPv4 or IPv6 address", ip ? ip : "(null)");
	a.port = (uint16_t)port;
	ns_udp_hdr_encode(h, &a);
	struct iovec iov[2] = { { h, sizeof(h) }, { (void *)buf, len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	ssize_t k = sendmsg(fd, &mh, MSG_NOSIGNAL);
	if (k < 0)
		return errno == EAGAIN ? -EAGAIN :
		    tkx_fail(errno, "tailkit_udp_sendto: %s", strerror(errno));
	return (int)len;
}

TKX_API int
tailkit_udp_recvfrom(int fd, void *buf, size_t len, char *ip, size_t iplen,
    int *port)
{
	uint8_t h[NS_UDP_HDR_LEN];
	ns_api_addr a;
	char txt[48];

	if (buf == NULL && len > 0)
		return tkx_fail(EINVAL, "tailkit_udp_recvfrom: NULL buffer");
	for (;;) {
		struct iovec iov[2] = { { h, sizeof(h) }, { buf, len } };
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
		ssize_t k = recvmsg(fd, &mh, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return errno == EAGAIN ? -EAGAIN :
			    tkx_fail(errno, "tailkit_udp_recvfrom: %s",
				strerror(errno));
		if (k == 0)
			return tkx_fail(ECONNRESET, "tailkit_udp_recvfrom: "
			    "closed: the node stopped");
		if (k < NS_UDP_HDR_LEN || ns_udp_hdr_decode(h, sizeof(h), &a))
			continue; /* not a datagram of netstackd's: skip */
		addr_text(&a, txt, port);
		if (ip != NULL && iplen > 0)
			snprintf(ip, iplen, "%s", txt);
		return (int)(k - NS_UDP_HDR_LEN);
	}
}
