/*
 * tk-ns-testsrv: netstackd's protocol modules behind ordinary kernel
 * sockets on loopback, so that real clients (dig, curl) can be pointed at
 * them before the userspace stack exists.  Test tool, not a product:
 *
 *   tk-ns-testsrv dns   [--port P] [--upstream IP:PORT [--upstream ...]]
 *       MagicDNS over UDP and TCP from the fixed netmap of
 *       tests/unit/ns_dns/nm_fixture.h; corp.example is forwarded (UDP)
 *       to the one or two --upstream resolvers through the sans-I/O
 *       forwarder (the second races the first after 1 s), all through
 *       ns_dns_server.  Only loopback upstreams are ever sent to: for
 *       others the client gets SERVFAIL at the forwarder's 3 s deadline.
 *   tk-ns-testsrv socks [--port P] [--user U --pass W] [--udp]
 *   tk-ns-testsrv http  [--port P] [--user U --pass W]
 *       SOCKS5 / HTTP CONNECT proxy; tailnet names of the fixed netmap
 *       are resolved through the MagicDNS table and then dialled on
 *       loopback (the tailnet addresses do not exist here), other names
 *       through getaddrinfo.
 *
 * Common: --bind ADDR (127.0.0.1 or ::1), --lifetime S (default 60: the
 * process always ends by itself).  Prints "ready PORT" once listening; on
 * SIGTERM or at the end of its lifetime prints its counters and exits 0.
 * One child process per proxy connection (each with its own alarm).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nm_fixture.h"
#include "ns_dns.h"
#include "ns_proxy.h"
#include "tk/sockaddr.h"
#include "tk/endian.h"
#include "tk/err.h"

static volatile sig_atomic_t stop;
static ns_dns_table *table;

static struct {
	const char *mode, *bind, *user, *pass;
	int port, lifetime;
	bool udp;
	char upstream[2][TK_NETADDR_TEXT_MAX];
	int n_upstream;
} opt = { .bind = "127.0.0.1", .lifetime = 60 };

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

__attribute__((noreturn)) static void
usage(void)
{
	fprintf(stderr,
	    "usage: tk-ns-testsrv dns|socks|http [--port P] [--bind ADDR] "
	    "[--upstream IP:PORT] [--user U --pass W] [--udp] [--lifetime S]\n");
	exit(2);
}

/* ---- sockets ---- */

static int
listen_on(int type, const char *addr, int port)
{
	tk_ipport ap;
	struct sockaddr_storage ss;
	int one = 1;

	if (tk_ipaddr_parse(&ap.ip, addr, strlen(addr)) != 0) {
		fprintf(stderr, "tk-ns-testsrv: --bind %s: not an address\n",
		    addr);
		exit(2);
	}
	ap.port = (uint16_t)port;
	socklen_t sl = tk_ipport_to_sockaddr(&ap, &ss);
	int fd = socket(ss.ss_family, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sl) != 0 ||
	    (type == SOCK_STREAM && listen(fd, 64) != 0)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
local_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	tk_ipport ap;

	getsockname(fd, (struct sockaddr *)&ss, &sl);
	tk_ipport_from_sockaddr(&ap, &ss);
	return ap.port;
}

static bool
write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n > 0) {
		ssize_t w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		b += w;
		n -= (size_t)w;
	}
	return true;
}

static bool
is_loopback(const tk_ipaddr *a)
{
	static const uint8_t v6lo[16] = { [15] = 1 };
	return (a->family == TK_AF_INET && a->addr[0] == 127) ||
	    (a->family == TK_AF_INET6 && memcmp(a->addr, v6lo, 16) == 0);
}

/* ---- DNS ---- */

static ns_dns_stats dstats;
static ns_proxy_stats pstats; /* per connection: one child each */
static ns_dns_server *dsrv;
static int dns_udp = -1, dns_up = -1;

static void
print_dns_stats(void)
{
	printf("stats queries=%llu answered=%llu nodata=%llu nxdomain=%llu "
	       "forwarded=%llu servfail_no_upstream=%llu "
	       "servfail_unforwardable=%llu formerr=%llu drop_short=%llu "
	       "fwd_sent=%llu fwd_replied=%llu fwd_timeout=%llu "
	       "fwd_drop_unmatched=%llu fwd_retried=%llu truncated=%llu\n",
	    (unsigned long long)dstats.queries,
	    (unsigned long long)dstats.answered,
	    (unsigned long long)dstats.nodata,
	    (unsigned long long)dstats.nxdomain,
	    (unsigned long long)dstats.forwarded,
	    (unsigned long long)dstats.servfail_no_upstream,
	    (unsigned long long)dstats.servfail_unforwardable,
	    (unsigned long long)dstats.formerr,
	    (unsigned long long)dstats.drop_short,
	    (unsigned long long)dstats.fwd_sent,
	    (unsigned long long)dstats.fwd_replied,
	    (unsigned long long)dstats.fwd_timeout,
	    (unsigned long long)dstats.fwd_drop_unmatched,
	    (unsigned long long)dstats.fwd_retried,
	    (unsigned long long)dstats.truncated);
	fflush(stdout);
}

/* ns_dns_server's callbacks: UDP clients by address, TCP clients by fd
 * (the tag), upstreams over one UDP socket, loopback only. */
static void
dns_to_client(void *arg, const ns_dns_client *c, const uint8_t *p, size_t n)
{
	struct sockaddr_storage ss;
	(void)arg;
	if (c->transport == NS_DNS_TCP) {
		uint8_t lp[2];
		tk_be16_store(lp, (uint16_t)n);
		if (write_all((int)c->tag, lp, 2))
			write_all((int)c->tag, p, n);
		return;
	}
	socklen_t sl = tk_ipport_to_sockaddr(&c->addr, &ss);
	sendto(dns_udp, p, n, 0, (struct sockaddr *)&ss, sl);
}

static void
dns_to_upstream(void *arg, const tk_ipport *up, const uint8_t *p, size_t n)
{
	struct sockaddr_storage ss;
	char txt[TK_NETADDR_TEXT_MAX];
	(void)arg;
	if (!is_loopback(&up->ip)) {
		/* a test tool sends nothing off the host: the client gets
		 * the forwarder's SERVFAIL at the deadline */
		tk_ipport_format(up, txt);
		fprintf(stderr, "tk-ns-testsrv: not sending to %s (off "
				"loopback)\n",
		    txt);
		return;
	}
	socklen_t sl = tk_ipport_to_sockaddr(up, &ss);
	sendto(dns_up, p, n, 0, (struct sockaddr *)&ss, sl);
}

/* One DNS-over-TCP connection (RFC 7766), served in turn: every message
 * it sends until it closes or stays quiet for 2 s.  Forwarded queries are
 * answered on this connection only while it lasts. */
static void
dns_tcp_conn(int fd)
{
	static uint8_t in[2 * (NS_DNS_TCP_MAX + 2)];
	struct timeval tv = { .tv_sec = 2 };
	size_t have = 0;
	ns_dns_client c = { .transport = NS_DNS_TCP, .tag = (uint64_t)fd };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (int msgs = 0; msgs < 64 && !stop;) {
		const uint8_t *m;
		size_t n, used;
		int rv = ns_dns_tcp_next(in, have, &m, &n, &used);
		if (rv == TK_EPROTO)
			return;
		if (rv == TK_EAGAIN) {
			ssize_t r = read(fd, in + have, sizeof(in) - have);
			if (r <= 0)
				return;
			have += (size_t)r;
			continue;
		}
		msgs++;
		ns_dns_server_query(dsrv, &c, m, n);
		memmove(in, in + used, have - used);
		have -= used;
	}
}

static int
run_dns(void)
{
	static uint8_t in[NS_DNS_TCP_MAX];
	ns_dns_fwd_cfg fcfg = { .timeout_ms = 3000, .retry_ms = 1000,
		.max_outstanding = 64 };
	ns_dns_server_ops ops = { dns_to_client, dns_to_upstream, NULL };

	/* UDP and TCP on one port: with --port 0, the kernel's pick for UDP
	 * may be taken for TCP; try a few */
	int t = -1, port = 0;
	for (int tries = 0; tries < 32 && t < 0; tries++) {
		if (dns_udp >= 0)
			close(dns_udp);
		dns_udp = listen_on(SOCK_DGRAM, opt.bind, opt.port);
		if (dns_udp < 0) {
			perror("tk-ns-testsrv: udp");
			return 1;
		}
		port = local_port(dns_udp);
		t = listen_on(SOCK_STREAM, opt.bind, port);
		if (opt.port != 0)
			break;
	}
	dns_up = listen_on(SOCK_DGRAM, "127.0.0.1", 0);
	if (t < 0 || dns_up < 0 || ns_dns_server_new(&fcfg, &ops, &dsrv) != 0) {
		perror("tk-ns-testsrv: tcp");
		return 1;
	}
	ns_dns_server_set_table(dsrv, table);
	table = NULL; /* the server owns it */
	printf("ready %d\n", port);
	fflush(stdout);
	while (!stop) {
		struct pollfd pf[3] = { { dns_udp, POLLIN, 0 }, { t, POLLIN, 0 },
			{ dns_up, POLLIN, 0 } };
		uint64_t dl = ns_dns_server_next_deadline(dsrv);
		int to = 500;
		if (dl != 0) {
			uint64_t now = tk_clock_mono_ns(NULL);
			to = dl <= now ? 0 : (int)((dl - now) / TK_NSEC_PER_MSEC) + 1;
			if (to > 500)
				to = 500;
		}
		if (poll(pf, 3, to) < 0 && errno != EINTR)
			break;
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		if (pf[0].revents & POLLIN) {
			ssize_t n = recvfrom(dns_udp, in, sizeof(in), 0,
			    (struct sockaddr *)&ss, &sl);
			ns_dns_client c = { .transport = NS_DNS_UDP };
			tk_ipport_from_sockaddr(&c.addr, &ss);
			if (n >= 0)
				ns_dns_server_query(dsrv, &c, in, (size_t)n);
		}
		if (pf[2].revents & POLLIN) {
			sl = sizeof(ss);
			ssize_t n = recvfrom(dns_up, in, sizeof(in), 0,
			    (struct sockaddr *)&ss, &sl);
			tk_ipport from;
			tk_ipport_from_sockaddr(&from, &ss);
			if (n >= 0)
				ns_dns_server_upstream(dsrv, &from, in, (size_t)n);
		}
		ns_dns_server_tick(dsrv);
		if (pf[1].revents & POLLIN) {
			int c = accept4(t, NULL, NULL, SOCK_CLOEXEC);
			if (c >= 0) {
				dns_tcp_conn(c);
				close(c);
			}
		}
	}
	ns_dns_server_stats(dsrv, &dstats);
	print_dns_stats();
	ns_dns_server_free(dsrv);
	close(dns_udp);
	close(t);
	close(dns_up);
	return 0;
}

/* ---- proxies ---- */

/* Dials name-or-ip:port.  Tailnet names go through the MagicDNS table and
 * are then dialled on loopback.  *err: errno of the failure. */
static int
dial(const char *name, const tk_ipaddr *ip, uint16_t port, int *err)
{
	tk_ipport ap = { .port = port };
	struct sockaddr_storage ss;

	if (ip != NULL) {
		ap.ip = *ip;
	} else if (ns_dns_table_lookup(table, name, 0, &ap.ip) == 0) {
		char txt[TK_NETADDR_TEXT_MAX];
		tk_ipaddr_format(&ap.ip, txt);
		fprintf(stderr, "tk-ns-testsrv: %s is %s (dialled on loopback)\n",
		    name, txt);
		bool v4 = ap.ip.family == TK_AF_INET;
		tk_ipaddr_parse(&ap.ip, v4 ? "127.0.0.1" : "::1", v4 ? 9 : 3);
	} else {
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
		if (getaddrinfo(name, NULL, &hints, &res) != 0) {
			*err = EHOSTUNREACH;
			return -1;
		}
		memcpy(&ss, res->ai_addr, res->ai_addrlen);
		freeaddrinfo(res);
		tk_ipport_from_sockaddr(&ap, &ss);
		ap.port = port;
	}
	if (!is_loopback(&ap.ip)) {
		/* a test tool dials nothing off the host */
		*err = ENETUNREACH;
		return -1;
	}
	socklen_t sl = tk_ipport_to_sockaddr(&ap, &ss);
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0);
	if (fd < 0) {
		*err = errno;
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&ss, sl) != 0 &&
	    errno != EINPROGRESS) {
		*err = errno;
		close(fd);
		return -1;
	}
	struct pollfd pf = { fd, POLLOUT, 0 };
	int e = 0;
	socklen_t el = sizeof(e);
	if (poll(&pf, 1, 3000) != 1) {
		*err = ETIMEDOUT;
		close(fd);
		return -1;
	}
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el);
	if (e != 0) {
		*err = e;
		close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

static uint8_t
socks_rep(int err)
{
	switch (err) {
	case ECONNREFUSED:
		return NS_SOCKS_REP_REFUSED;
	case ENETUNREACH:
		return NS_SOCKS_REP_NETUNREACH;
	case EHOSTUNREACH:
	case ETIMEDOUT:
		return NS_SOCKS_REP_HOSTUNREACH;
	default:
		return NS_SOCKS_REP_FAIL;
	}
}

/* Copies both ways until both directions are closed (half-close kept). */
static void
relay(int a, int b)
{
	uint8_t buf[16384];
	bool a_open = true, b_open = true;

	while (a_open || b_open) {
		struct pollfd pf[2] = { { a, a_open ? POLLIN : 0, 0 },
			{ b, b_open ? POLLIN : 0, 0 } };
		if (poll(pf, 2, 10000) <= 0)
			return;
		for (int i = 0; i < 2; i++) {
			if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			int from = i ? b : a, to = i ? a : b;
			ssize_t n = read(from, buf, sizeof(buf));
			if (n <= 0) {
				shutdown(to, SHUT_WR);
				if (i)
					b_open = false;
				else
					a_open = false;
			} else if (!write_all(to, buf, (size_t)n)) {
				return;
			}
		}
	}
}

/* UDP ASSOCIATE: a relay socket next to the control connection. */
static void
socks_udp(int c, ns_socks *s)
{
	uint8_t buf[65536 + 300], out[NS_SOCKS_REPLY_MAX];
	size_t ol;
	int u = listen_on(SOCK_DGRAM, opt.bind, 0);
	tk_ipport bnd, client;
	bool have_client = false;

	if (u < 0) {
		ns_socks_reply(s, NS_SOCKS_REP_FAIL, NULL, out, &ol);
		write_all(c, out, ol);
		return;
	}
	tk_ipaddr_parse(&bnd.ip, opt.bind, strlen(opt.bind));
	bnd.port = (uint16_t)local_port(u);
	ns_socks_reply(s, NS_SOCKS_REP_OK, &bnd, out, &ol);
	if (!write_all(c, out, ol))
		return;
	for (;;) {
		struct pollfd pf[2] = { { c, POLLIN, 0 }, { u, POLLIN, 0 } };
		if (poll(pf, 2, 10000) <= 0)
			break;
		if (pf[0].revents) /* control connection: EOF ends it */
			break;
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		ssize_t n = recvfrom(u, buf + 300, sizeof(buf) - 300, 0,
		    (struct sockaddr *)&ss, &sl);
		if (n < 0)
			continue;
		tk_ipport from;
		tk_ipport_from_sockaddr(&from, &ss);
		if (!have_client) {
			client = from; /* the first sender is the client */
			have_client = true;
		}
		if (from.port == client.port &&
		    memcmp(from.ip.addr, client.ip.addr, 16) == 0) {
			ns_socks_addr dst;
			size_t hl;
			if (ns_socks_udp_decode(buf + 300, (size_t)n, &dst, &hl,
				&pstats) != 0)
				continue;
			tk_ipport dap = { .ip = dst.ip, .port = dst.port };
			if (dst.atyp == NS_SOCKS_ATYP_DOMAIN &&
			    ns_dns_table_lookup(table, dst.name, TK_AF_INET,
				&dap.ip) == 0)
				tk_ipaddr_parse(&dap.ip, "127.0.0.1", 9);
			else if (dst.atyp == NS_SOCKS_ATYP_DOMAIN)
				continue;
			if (!is_loopback(&dap.ip))
				continue; /* nothing off the host */
			struct sockaddr_storage ds;
			socklen_t dsl = tk_ipport_to_sockaddr(&dap, &ds);
			sendto(u, buf + 300 + hl, (size_t)n - hl, 0,
			    (struct sockaddr *)&ds, dsl);
		} else if (have_client) {
			ns_socks_addr src = { .ip = from.ip, .port = from.port };
			src.atyp = from.ip.family == TK_AF_INET ?
			    NS_SOCKS_ATYP_IPV4 : NS_SOCKS_ATYP_IPV6;
			uint8_t hdr[300];
			size_t hl;
			if (ns_socks_udp_encode(&src, hdr, sizeof(hdr), &hl) != 0)
				continue;
			memcpy(buf + 300 - hl, hdr, hl);
			struct sockaddr_storage cs;
			socklen_t csl = tk_ipport_to_sockaddr(&client, &cs);
			sendto(u, buf + 300 - hl, hl + (size_t)n, 0,
			    (struct sockaddr *)&cs, csl);
		}
	}
	fprintf(stderr, "tk-ns-testsrv: udp relay done: frag=%llu bad=%llu\n",
	    (unsigned long long)pstats.socks_udp_frag,
	    (unsigned long long)pstats.socks_udp_bad);
	close(u);
}

static void
socks_conn(int c)
{
	ns_socks_cfg cfg = { .user = opt.user, .pass = opt.pass,
		.allow_udp = opt.udp, .stats = &pstats };
	ns_socks s;
	ns_socks_result r;
	uint8_t buf[NS_SOCKS_MSG_MAX * 2];
	size_t have = 0;

	ns_socks_init(&s, &cfg);
	for (;;) {
		if (ns_socks_feed(&s, buf, have, &r) != 0)
			return;
		if (r.event == NS_SOCKS_NEED_MORE) {
			if (have == sizeof(buf))
				return;
			ssize_t n = read(c, buf + have, sizeof(buf) - have);
			if (n <= 0)
				return;
			have += (size_t)n;
			continue;
		}
		memmove(buf, buf + r.consumed, have - r.consumed);
		have -= r.consumed;
		if (r.reply_len && !write_all(c, r.reply, r.reply_len))
			return;
		if (r.event == NS_SOCKS_CLOSE)
			return;
		if (r.event == NS_SOCKS_UDP_ASSOCIATE) {
			socks_udp(c, &s);
			return;
		}
		if (r.event == NS_SOCKS_CONNECT) {
			int err = 0;
			bool is_name = r.dst.atyp == NS_SOCKS_ATYP_DOMAIN;
			int t = dial(r.dst.name, is_name ? NULL : &r.dst.ip,
			    r.dst.port, &err);
			uint8_t out[NS_SOCKS_REPLY_MAX];
			size_t ol;
			tk_ipport bnd;
			if (t >= 0) {
				struct sockaddr_storage ss;
				socklen_t sl = sizeof(ss);
				getsockname(t, (struct sockaddr *)&ss, &sl);
				tk_ipport_from_sockaddr(&bnd, &ss);
			}
			ns_socks_reply(&s, t >= 0 ? NS_SOCKS_REP_OK : socks_rep(err),
			    t >= 0 ? &bnd : NULL, out, &ol);
			if (!write_all(c, out, ol) || t < 0) {
				if (t >= 0)
					close(t);
				return;
			}
			if (have > 0 && !write_all(t, buf, have)) {
				close(t);
				return;
			}
			relay(c, t);
			close(t);
			return;
		}
	}
}

static void
http_conn(int c)
{
	ns_hconn_cfg cfg = { .user = opt.user, .pass = opt.pass,
		.stats = &pstats };
	ns_hconn_req req;
	static uint8_t buf[NS_HCONN_HEAD_MAX + 4096];
	size_t have = 0, len;
	const char *resp;

	for (;;) {
		ns_hconn_parse(&cfg, buf, have, &req);
		if (req.status != 0)
			break;
		ssize_t n = read(c, buf + have, sizeof(buf) - have);
		if (n <= 0)
			return;
		have += (size_t)n;
	}
	if (req.status != 200) {
		resp = ns_hconn_response(req.status, &len);
		write_all(c, resp, len);
		return;
	}
	int err = 0;
	int t = dial(req.host, req.is_ip ? &req.ip : NULL, req.port, &err);
	if (t < 0) {
		resp = ns_hconn_response(err == ETIMEDOUT ? 504 : 502, &len);
		write_all(c, resp, len);
		return;
	}
	resp = ns_hconn_response(200, &len);
	if (!write_all(c, resp, len) ||
	    (have > req.consumed &&
		!write_all(t, buf + req.consumed, have - req.consumed))) {
		close(t);
		return;
	}
	relay(c, t);
	close(t);
}

static int
run_proxy(bool socks)
{
	int l = listen_on(SOCK_STREAM, opt.bind, opt.port);
	unsigned long conns = 0;

	if (l < 0) {
		perror("tk-ns-testsrv: listen");
		return 1;
	}
	printf("ready %d\n", local_port(l));
	fflush(stdout);
	while (!stop) {
		struct pollfd pf = { l, POLLIN, 0 };
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (poll(&pf, 1, 500) <= 0)
			continue;
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		conns++;
		pid_t pid = fork();
		if (pid == 0) {
			close(l);
			signal(SIGTERM, SIG_DFL);
			signal(SIGALRM, SIG_DFL); /* a stuck child dies */
			alarm(30);
			if (socks)
				socks_conn(c);
			else
				http_conn(c);
			close(c);
			_exit(0);
		}
		close(c);
	}
	printf("stats connections=%lu\n", conns);
	fflush(stdout);
	close(l);
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	opt.mode = argv[1];
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--udp") == 0) {
			opt.udp = true;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--port") == 0)
			opt.port = atoi(v);
		else if (strcmp(a, "--bind") == 0)
			opt.bind = v;
		else if (strcmp(a, "--user") == 0)
			opt.user = v;
		else if (strcmp(a, "--pass") == 0)
			opt.pass = v;
		else if (strcmp(a, "--lifetime") == 0)
			opt.lifetime = atoi(v);
		else if (strcmp(a, "--upstream") == 0) {
			tk_ipport ap;
			if (tk_ipport_parse(&ap, v, strlen(v)) != 0 ||
			    opt.n_upstream == 2) {
				fprintf(stderr, "tk-ns-testsrv: --upstream %s: "
						"expected IP:PORT, at most twice\n",
				    v);
				return 2;
			}
			tk_ipport_format(&ap, opt.upstream[opt.n_upstream++]);
		} else
			usage();
	}
	if ((opt.user == NULL) != (opt.pass == NULL)) {
		fprintf(stderr, "tk-ns-testsrv: --user and --pass go together\n");
		return 2;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned)(opt.lifetime > 0 ? opt.lifetime : 60));

	Tk__Bus__V1__Netmap *nm = nm_fixture_new(
	    opt.n_upstream > 0 ? opt.upstream[0] : NULL,
	    opt.n_upstream > 1 ? opt.upstream[1] : NULL);
	if (ns_dns_table_new_from_netmap(nm, &table) != 0)
		return 1;
	nm_fixture_free(nm);
	int rv;
	if (strcmp(opt.mode, "dns") == 0)
		rv = run_dns();
	else if (strcmp(opt.mode, "socks") == 0)
		rv = run_proxy(true);
	else if (strcmp(opt.mode, "http") == 0)
		rv = run_proxy(false);
	else
		usage();
	ns_dns_table_free(table);
	return rv;
}
