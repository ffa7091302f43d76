/*
 * tk-ns: a small client of netstackd's local API (tests, benchmarks,
 * debugging), like nc(1) for the tailnet side of netstackd.
 *
 *   tk-ns --api PATH listen PORT MODE [COUNT]
 *       MODE echo  echo every connection's bytes back (half-close kept)
 *            http  answer one HTTP/1.0 request with who the peer is
 *            sink  read and discard; print "sink BYTES" per connection
 *            cat   one connection: stdin -> it, it -> stdout
 *       prints "listening PORT" when ready (cat: on stderr) and "accept ADDR PORT node=ID
 *       name=NAME login=LOGIN" (stderr) per connection; exits after COUNT
 *       connections ended (default: never)
 *   tk-ns --api PATH dial HOST PORT   stdin -> connection -> stdout; HOST
 *       is an IP, or a tailnet name netstackd resolves (MagicDNS)
 *   tk-ns --api PATH udp PORT echo    echo datagrams back to their sender
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "netstackd/ns_api.h"
#include "tk/err.h"

#define MAXC 4096

static int api = -1;
static uint8_t rbuf[4 * NS_API_FRAME_MAX];
static size_t rlen;

static void
die(const char *m)
{
	fprintf(stderr, "tk-ns: %s\n", m);
	exit(1);
}

static void
api_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if ((api = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
	    connect(api, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "tk-ns: %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

static void
api_send(const ns_api_req *r)
{
	uint8_t b[NS_API_FRAME_MAX];
	size_t n = ns_api_req_encode(b, sizeof(b), r);

	if (n == 0 || write(api, b, n) != (ssize_t)n)
		die("cannot send the request");
}

/* Reads one frame (and its fd, if any).  0 on EOF. */
static int
api_recv(ns_api_frame *f, int *fd, uint8_t *body)
{
	size_t used;

	*fd = -1;
	for (;;) {
		if (ns_api_frame_parse(rbuf, rlen, f, &used) == 0) {
			memcpy(body, f->body, f->len);
			f->body = body;
			memmove(rbuf, rbuf + used, rlen - used);
			rlen -= used;
			return 1;
		}
		union {
			struct cmsghdr h;
			uint8_t b[CMSG_SPACE(sizeof(int))];
		} cm;
		struct iovec iov = { rbuf + rlen, sizeof(rbuf) - rlen };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			.msg_control = cm.b, .msg_controllen = sizeof(cm.b) };
		ssize_t r = recvmsg(api, &mh, MSG_CMSG_CLOEXEC);
		if (r <= 0)
			return 0;
		for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h))
			if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS)
				memcpy(fd, CMSG_DATA(h), sizeof(int));
		rlen += (size_t)r;
	}
}

static void
fmt_addr(const ns_api_addr *a, char *out, size_t n)
{
	inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->addr, out, (socklen_t)n);
}

static void
print_peer(const char *what, const uint8_t *b, size_t n)
{
	ns_api_peer p;
	char ip[64];

	if (ns_api_peer_decode(b, n, &p) != 0) {
		fprintf(stderr, "%s (undecodable peer)\n", what);
		return;
	}
	fmt_addr(&p.remote, ip, sizeof(ip));
	fprintf(stderr, "%s %s %u node=%lld name=%s login=%s\n", what, ip,
	    p.remote.port, (long long)p.node_id, p.name[0] ? p.name : "-",
	    p.login[0] ? p.login : "-");
}

/* stdin -> fd, fd -> stdout, with half-close; returns when both ended. */
static void
cat_loop(int fd)
{
	static uint8_t b[65536];
	bool in_open = true, out_open = true;

	while (out_open) {
		struct pollfd p[2] = { { fd, POLLIN, 0 }, { 0, in_open ? POLLIN : 0, 0 } };
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents) {
			ssize_t r = read(0, b, sizeof(b));
			if (r <= 0) {
				shutdown(fd, SHUT_WR);
				in_open = false;
			} else
				for (ssize_t o = 0; o < r;) {
					ssize_t w = write(fd, b + o, (size_t)(r - o));
					if (w <= 0)
						exit(1);
					o += w;
				}
		}
		if (p[0].revents) {
			ssize_t r = read(fd, b, sizeof(b));
			if (r <= 0)
				out_open = false;
			else
				for (ssize_t o = 0; o < r;) {
					ssize_t w = write(1, b + o, (size_t)(r - o));
					if (w <= 0)
						exit(1);
					o += w;
				}
		}
	}
	close(fd);
}

/* in-process servers over poll: one state per connection */
typedef struct sconn {
	int fd;
	size_t len, off; /* echo: pending bytes; http: request bytes */
	uint64_t total;
	bool eof, done;
	uint8_t buf[16384];
} sconn;

static sconn *conns[MAXC];
static int nconns;

static bool
serve(sconn *c, const char *mode, const char *who)
{
	ssize_t r;

	if (strcmp(mode, "echo") == 0) {
		if (c->len > c->off) {
			r = write(c->fd, c->buf + c->off, c->len - c->off);
			if (r < 0 && errno != EAGAIN)
				return false;
			if (r > 0)
				c->off += (size_t)r;
			if (c->off < c->len)
				return true;
			c->off = c->len = 0;
		}
		if (c->eof) {
			shutdown(c->fd, SHUT_WR);
			return false;
		}
		r = read(c->fd, c->buf, sizeof(c->buf));
		if (r == 0)
			c->eof = true;
		else if (r < 0)
			return errno == EAGAIN;
		else
			c->len = (size_t)r;
		return serve(c, mode, who);
	}
	if (strcmp(mode, "sink") == 0) {
		for (;;) {
			r = read(c->fd, c->buf, sizeof(c->buf));
			if (r > 0) {
				c->total += (uint64_t)r;
				continue;
			}
			if (r < 0 && errno == EAGAIN)
				return true;
			printf("sink %llu\n", (unsigned long long)c->total);
			fflush(stdout);
			return false;
		}
	}
	/* http */
	r = read(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);
	if (r < 0 && errno == EAGAIN)
		return true;
	if (r > 0)
		c->len += (size_t)r;
	c->buf[c->len] = 0;
	if (r > 0 && strstr((char *)c->buf, "\r\n\r\n") == NULL &&
	    c->len < sizeof(c->buf) - 1)
		return true;
	char body[1024], resp[1200];
	int bl = snprintf(body, sizeof(body), "hello from netstackd: you are %s\n", who);
	int n = snprintf(resp, sizeof(resp), "HTTP/1.0 200 OK\r\nContent-Type: "
	    "text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", bl, body);
	if (write(c->fd, resp, (size_t)n) != n)
		return false;
	shutdown(c->fd, SHUT_WR);
	return false;
}

static int
cmd_listen(uint16_t port, const char *mode, long count)
{
	ns_api_req r = { .op = NS_OP_LISTEN_TCP, .id = 1, .addr.port = port };
	ns_api_frame f;
	uint8_t body[NS_API_FRAME_MAX];
	static char who[MAXC][700];
	long ended = 0;
	int fd;

	if (strcmp(mode, "echo") && strcmp(mode, "http") && strcmp(mode, "sink") &&
	    strcmp(mode, "cat"))
		die("MODE must be echo, http, sink or cat");
	api_send(&r);
	if (!api_recv(&f, &fd, body) || f.op != NS_MSG_REPLY)
		die("no reply from netstackd");
	if (f.status != NS_ST_OK) {
		fprintf(stderr, "tk-ns: listen %u: %.*s\n", port, (int)f.len, f.body);
		return 1;
	}
	/* cat: stdout carries the connection's bytes */
	fprintf(strcmp(mode, "cat") == 0 ? stderr : stdout, "listening %u\n", port);
	fflush(stdout);
	while (count <= 0 || ended < count) {
		struct pollfd p[MAXC + 1];
		p[0] = (struct pollfd){ api, POLLIN, 0 };
		for (int i = 0; i < nconns; i++)
			p[i + 1] = (struct pollfd){ conns[i]->fd,
				POLLIN | (conns[i]->len > conns[i]->off ? POLLOUT : 0), 0 };
		if (poll(p, (nfds_t)nconns + 1, -1) < 0 && errno != EINTR)
			return 1;
		for (int i = nconns - 1; i >= 0; i--) {
			if (!p[i + 1].revents)
				continue;
			if (!serve(conns[i], mode, who[i])) {
				close(conns[i]->fd);
				free(conns[i]);
				conns[i] = conns[--nconns];
				memcpy(who[i], who[nconns], sizeof(who[i]));
				ended++;
			}
		}
		if (!p[0].revents)
			continue;
		if (!api_recv(&f, &fd, body))
			die("netstackd closed the API connection");
		if (f.op != NS_MSG_ACCEPT || fd < 0)
			continue;
		print_peer("accept", f.body, f.len);
		if (strcmp(mode, "cat") == 0) {
			cat_loop(fd);
			return 0;
		}
		if (nconns == MAXC) {
			close(fd);
			continue;
		}
		ns_api_peer pi;
		char ip[64] = "?";
		if (ns_api_peer_decode(f.body, f.len, &pi) == 0)
			fmt_addr(&pi.remote, ip, sizeof(ip));
		snprintf(who[nconns], sizeof(who[nconns]), "%s port %u node %lld "
		    "name %s login %s", ip, pi.remote.port, (long long)pi.node_id,
		    pi.name[0] ? pi.name : "-", pi.login[0] ? pi.login : "-");
		sconn *c = calloc(1, sizeof(*c));
		if (c == NULL)
			die("out of memory");
		c->fd = fd;
		conns[nconns++] = c;
	}
	return 0;
}

static int
parse_ip(const char *s, ns_api_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, s, a->addr) == 1)
		a->family = 4;
	else if (inet_pton(AF_INET6, s, a->addr) == 1)
		a->family = 6;
	else
		return -1;
	return 0;
}

static int
cmd_dial(const char *ip, uint16_t port)
{
	ns_api_req r = { .op = NS_OP_DIAL_TCP, .id = 7 };
	ns_api_frame f;
	uint8_t body[NS_API_FRAME_MAX];
	int fd;

	if (parse_ip(ip, &r.addr) != 0) {
		/* a name: netstackd resolves it through MagicDNS */
		if (strlen(ip) == 0 || strlen(ip) > NS_API_NAME_MAX)
			die("dial: HOST must be an IP or a name of 1..255 bytes");
		r.op = NS_OP_DIAL_TCP_NAME;
		snprintf(r.name, sizeof(r.name), "%s", ip);
	}
	r.addr.port = port;
	api_send(&r);
	if (!api_recv(&f, &fd, body) || f.op != NS_MSG_REPLY)
		die("no reply from netstackd");
	if (f.status != NS_ST_OK || fd < 0) {
		fprintf(stderr, "tk-ns: dial %s %u: %.*s\n", ip, port, (int)f.len,
		    f.body);
		return 1;
	}
	print_peer("connected", f.body, f.len);
	close(api);
	cat_loop(fd);
	return 0;
}

static int
cmd_udp(uint16_t port)
{
	ns_api_req r = { .op = NS_OP_BIND_UDP, .id = 3, .addr.port = port };
	ns_api_frame f;
	uint8_t body[NS_API_FRAME_MAX];
	static uint8_t d[NS_UDP_HDR_LEN + NS_UDP_PAYLOAD_MAX];
	int fd;

	api_send(&r);
	if (!api_recv(&f, &fd, body) || f.op != NS_MSG_REPLY || f.status != 0 ||
	    fd < 0)
		die("udp bind failed");
	printf("udp %u\n", f.len == 2 ? (unsigned)(body[0] << 8 | body[1]) : port);
	fflush(stdout);
	for (;;) {
		ssize_t n = recv(fd, d, sizeof(d), 0);
		if (n <= 0)
			return 0;
		/* the header names the sender: send it straight back */
		if (send(fd, d, (size_t)n, 0) < 0)
			return 1;
	}
}

int
main(int argc, char **argv)
{
	const char *path = getenv("TK_NS_API");
	int i = 1;

	if (argc > 2 && strcmp(argv[1], "--api") == 0) {
		path = argv[2];
		i = 3;
	}
	if (path == NULL || i >= argc) {
		fprintf(stderr, "usage: tk-ns --api PATH (listen PORT echo|http|sink|cat "
		    "[COUNT] | dial HOST PORT | udp PORT echo)\n");
		return 2;
	}
	api_connect(path);
	if (strcmp(argv[i], "listen") == 0 && argc >= i + 3)
		return cmd_listen((uint16_t)atoi(argv[i + 1]), argv[i + 2],
		    argc > i + 3 ? atol(argv[i + 3]) : 0);
	if (strcmp(argv[i], "dial") == 0 && argc == i + 3)
		return cmd_dial(argv[i + 1], (uint16_t)atoi(argv[i + 2]));
	if (strcmp(argv[i], "udp") == 0 && argc >= i + 2)
		return cmd_udp((uint16_t)atoi(argv[i + 1]));
	fprintf(stderr, "tk-ns: unknown command\n");
	return 2;
}
