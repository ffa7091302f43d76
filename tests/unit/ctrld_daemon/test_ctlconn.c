/*
 * ctlconn (ctrld's ts2021 transport) against the scripted server
 * (fake_control.c): the HTTP upgrade response in the header orders and
 * spellings real servers and reverse proxies send.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ctlconn.h"
#include "fake_control.h"
#include "tk/err.h"
#include "tk/keys.h"
#include "tk_test.h"

void register_ctlconn(void);

/* Fetches the key and dials f with the upgrade answered by head. */
static int
dial_with(const char *head, char *err, size_t errlen)
{
	fake_control f;
	ctrldi_url u;
	char url[64];
	tk_machine_priv mk;
	tk_machine_pub server;
	ctrldi_conn *c = NULL;
	int rv;

	CU_ASSERT_FATAL(fake_control_start(&f, FAKE_GOOD) == 0);
	f.upgrade_head = head;
	snprintf(url, sizeof(url), "http://127.0.0.1:%u", f.port);
	CU_ASSERT_FATAL(ctrldi_url_parse(&u, url, err, errlen) == 0);
	tk_key_generate(mk.b, NULL);
	rv = ctrldi_fetch_server_key(&u, 3000, &server, err, errlen);
	CU_ASSERT_EQUAL(rv, 0);
	if (rv == 0)
		rv = ctrldi_conn_dial(&c, &u, &mk, &server, 3000, err, errlen);
	ctrldi_conn_free(c);
	fake_control_stop(&f);
	return rv;
}

/*
 * Go's client reads the 101 with net/http: any header order, names in any
 * case, extra headers, optional whitespace around values, bare LF line
 * ends (textproto).  controlhttp/client.go tryURLUpgrade then wants status
 * 101 and Header.Get("Upgrade") (the first one) equal to
 * "tailscale-control-protocol", case-sensitively.
 */
static void
test_upgrade_header_orders(void)
{
	static const char *const good[] = {
		/* Go's controlhttpserver */
		"HTTP/1.1 101 Switching Protocols\r\n"
		"Upgrade: tailscale-control-protocol\r\nConnection: upgrade\r\n\r\n",
		/* nginx in front of headscale: Upgrade last */
		"HTTP/1.1 101 Switching Protocols\r\nServer: nginx/1.24.0\r\n"
		"Date: Fri, 04 Dec 2026 23:00:00 GMT\r\nConnection: upgrade\r\n"
		"Upgrade: tailscale-control-protocol\r\n\r\n",
		/* lower-case names (HTTP/2-era proxies), tab and trailing
		 * space around the value */
		"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\n"
		"upgrade:\ttailscale-control-protocol \r\n"
		"x-request-id: 0123456789abcdef0123456789abcdef\r\n\r\n",
		/* upper case, no space, a long header, no reason phrase */
		"HTTP/1.1 101\r\nCONNECTION: UPGRADE\r\n"
		"X-Upgrade-Note: Upgrade: websocket\r\n"
		"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"
		"UPGRADE:tailscale-control-protocol\r\n\r\n",
		/* bare LF line ends */
		"HTTP/1.1 101 Switching Protocols\nConnection: upgrade\n"
		"Upgrade: tailscale-control-protocol\n\n",
	};
	static const char *const bad[] = {
		/* another protocol */
		"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
		"Upgrade: tailscale-control-protocol-v2\r\n\r\n",
		/* the value compares case-sensitively */
		"HTTP/1.1 101 Switching Protocols\r\n"
		"Upgrade: Tailscale-Control-Protocol\r\nConnection: upgrade\r\n\r\n",
		/* Header.Get takes the first */
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		"Upgrade: tailscale-control-protocol\r\nConnection: upgrade\r\n\r\n",
		/* no Upgrade header */
		"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n",
		/* not 101 */
		"HTTP/1.1 200 OK\r\nUpgrade: tailscale-control-protocol\r\n"
		"Connection: upgrade\r\n\r\n",
		/* not HTTP */
		"HTTX/1.1 101 Switching Protocols\r\n"
		"Upgrade: tailscale-control-protocol\r\n\r\n",
	};
	char err[300];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		err[0] = '\0';
		int rv = dial_with(good[i], err, sizeof(err));
		if (rv != 0)
			fprintf(stderr, "\n  good[%zu] refused: %s", i, err);
		CU_ASSERT_EQUAL(rv, 0);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		int rv = dial_with(bad[i], err, sizeof(err));
		if (rv == 0)
			fprintf(stderr, "\n  bad[%zu] accepted", i);
		CU_ASSERT_NOT_EQUAL(rv, 0);
		CU_ASSERT(strstr(err, "/ts2021") != NULL);
	}
}

/* A name with an IPv6 and an IPv4 address, IPv6 first, as the hosted
 * control plane's (AAAA and A records). */
static size_t
resolve_both(const char *host, struct sockaddr_storage *out, size_t max)
{
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&out[0];
	struct sockaddr_in *a4 = (struct sockaddr_in *)&out[1];

	(void)host;
	if (max < 2)
		return 0;
	memset(out, 0, 2 * sizeof(*out));
	a6->sin6_family = AF_INET6;
	a6->sin6_addr = in6addr_loopback;
	a4->sin_family = AF_INET;
	a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return 2;
}

/*
 * A black hole at [::1]:port: a listener whose accept queue is full, so
 * new SYNs are dropped and connects hang, as on a host whose IPv6 route
 * is broken.  Returns the fds to close (listener, filler), or -1.
 */
static int
black_hole_v6(uint16_t port, int *filler)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6,
		.sin6_port = htons(port), .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int one = 1, l = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

	*filler = -1;
	if (l < 0 || setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &one,
	    sizeof(one)) != 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(l, 0) != 0) {
		if (l >= 0)
			close(l);
		return -1;
	}
	/* one connection fills the queue (backlog 0 holds one) */
	*filler = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (*filler >= 0)
		(void)connect(*filler, (struct sockaddr *)&sa, sizeof(sa));
	usleep(100000);
	return l;
}

/*
 * A host with broken IPv6 still reaches control over IPv4: addresses race
 * as Go's dialer races them (net/netx RaceDial: IPv6 first, the next
 * address 300 ms later or as soon as one fails, first to connect wins).
 * Before, the first address had the whole deadline.
 */
static void
test_happy_eyeballs(void)
{
	fake_control f;
	ctrldi_url u;
	char url[64], err[300] = "";
	tk_machine_priv mk;
	tk_machine_pub server;
	ctrldi_conn *c = NULL;
	int filler, hole;

	CU_ASSERT_FATAL(fake_control_start(&f, FAKE_GOOD) == 0);
	if ((hole = black_hole_v6(f.port, &filler)) < 0) {
		fake_control_stop(&f);
		tk_test_skip("no IPv6 loopback here");
		return;
	}
	snprintf(url, sizeof(url), "http://control.test:%u", f.port);
	CU_ASSERT_FATAL(ctrldi_url_parse(&u, url, err, sizeof(err)) == 0);
	u.resolve = resolve_both;
	tk_key_generate(mk.b, NULL);
	uint64_t t0 = tk_test_now_ms();
	int rv = ctrldi_fetch_server_key(&u, 3000, &server, err, sizeof(err));
	if (rv != 0)
		fprintf(stderr, "\n  /key: %s", err);
	CU_ASSERT_EQUAL(rv, 0);
	if (rv == 0) {
		rv = ctrldi_conn_dial(&c, &u, &mk, &server, 3000, err, sizeof(err));
		if (rv != 0)
			fprintf(stderr, "\n  dial: %s", err);
		CU_ASSERT_EQUAL(rv, 0);
	}
	/* two races of ~300 ms each, not two deadlines */
	CU_ASSERT(tk_test_now_ms() - t0 < 2000);
	ctrldi_conn_free(c);
	close(filler);
	close(hole);
	fake_control_stop(&f);
}

/* A name that resolves to 127.0.0.2 only, where nothing listens. */
static size_t
resolve_wrong(const char *host, struct sockaddr_storage *out, size_t max)
{
	struct sockaddr_in *a4 = (struct sockaddr_in *)&out[0];

	(void)host;
	if (max < 1)
		return 0;
	memset(out, 0, sizeof(*out));
	a4->sin_family = AF_INET;
	a4->sin_addr.s_addr = htonl(0x7f000002);
	return 1;
}

/*
 * ControlDialPlan (controlhttp's dial): the candidates' addresses instead
 * of the name, each at its start delay and with its timeout; ACE and
 * timeout-less candidates are skipped; when no candidate connects, the
 * name is resolved as without a plan.  The plan is not used for GET /key.
 */
static void
test_dial_plan(void)
{
	fake_control f;
	ctrldi_url u;
	char url[64], err[300] = "";
	tk_machine_priv mk;
	tk_machine_pub server;
	ctrldi_conn *c = NULL;
	ctrldi_dial_plan plan;
	int filler, hole, rv;

	CU_ASSERT_FATAL(fake_control_start(&f, FAKE_GOOD) == 0);
	snprintf(url, sizeof(url), "http://control.test:%u", f.port);
	CU_ASSERT_FATAL(ctrldi_url_parse(&u, url, err, sizeof(err)) == 0);
	tk_key_generate(mk.b, NULL);
	u.resolve = resolve_both;
	CU_ASSERT_FATAL(ctrldi_fetch_server_key(&u, 3000, &server, err,
	    sizeof(err)) == 0);

	/* the name leads nowhere; the plan's 127.0.0.1 does */
	u.resolve = resolve_wrong;
	memset(&plan, 0, sizeof(plan));
	plan.c[0] = (ctrldi_dial_cand){ .ace = true, .timeout_ms = 1000,
		.ip = { .family = TK_AF_INET, .addr = { 127, 0, 0, 1 } } };
	plan.c[1] = (ctrldi_dial_cand){ .start_ms = 200, .timeout_ms = 0,
		.ip = { .family = TK_AF_INET, .addr = { 127, 0, 0, 1 } } };
	plan.c[2] = (ctrldi_dial_cand){ .start_ms = 300, .timeout_ms = 2000,
		.ip = { .family = TK_AF_INET, .addr = { 127, 0, 0, 1 } } };
	plan.n = 3;
	u.plan = &plan;
	uint64_t t0 = tk_test_now_ms();
	rv = ctrldi_conn_dial(&c, &u, &mk, &server, 3000, err, sizeof(err));
	if (rv != 0)
		fprintf(stderr, "\n  plan dial: %s", err);
	CU_ASSERT_EQUAL(rv, 0);
	CU_ASSERT(tk_test_now_ms() - t0 >= 290); /* the start delay held */
	ctrldi_conn_free(c);
	c = NULL;
	/* without the plan the name is all there is: refused */
	u.plan = NULL;
	CU_ASSERT_NOT_EQUAL(ctrldi_conn_dial(&c, &u, &mk, &server, 2000, err,
	    sizeof(err)), 0);

	/* a candidate that hangs ([::1] black hole) times out after its own
	 * DialTimeoutSec; then the name is resolved (IPv4 works) */
	if ((hole = black_hole_v6(f.port, &filler)) >= 0) {
		u.resolve = resolve_both;
		memset(&plan, 0, sizeof(plan));
		plan.c[0] = (ctrldi_dial_cand){ .timeout_ms = 400,
			.ip = { .family = TK_AF_INET6, .addr = { [15] = 1 } } };
		plan.n = 1;
		u.plan = &plan;
		t0 = tk_test_now_ms();
		rv = ctrldi_conn_dial(&c, &u, &mk, &server, 5000, err,
		    sizeof(err));
		if (rv != 0)
			fprintf(stderr, "\n  plan fallback: %s", err);
		CU_ASSERT_EQUAL(rv, 0);
		uint64_t took = tk_test_now_ms() - t0;
		CU_ASSERT(took >= 390 && took < 2500);
		ctrldi_conn_free(c);
		close(filler);
		close(hole);
	}
	fake_control_stop(&f);
}

/*
 * The ts2021 dial's ports, as control/ts2021/client.go NewClient chooses
 * them for controlhttp (plain HTTP first, then TLS; 0: no TLS try).
 */
static void
test_dial_ports(void)
{
	static const struct {
		const char *url;
		uint16_t port, http, https;
	} cases[] = {
		{ "https://controlplane.tailscale.com", 443, 80, 443 },
		{ "https://hs.example.com:8443", 8443, 80, 8443 },
		{ "http://hs.example.com", 80, 80, 443 },
		{ "http://hs.example.com:8080", 8080, 8080, 443 },
		{ "http://127.0.0.1:8080", 8080, 8080, 0 },
		{ "http://localhost", 80, 80, 0 },
		{ "http://10.1.2.3", 80, 80, 0 },
		{ "http://172.20.0.1:9000", 9000, 9000, 0 },
		{ "http://172.32.0.1:9000", 9000, 9000, 443 },
		{ "http://192.168.1.1", 80, 80, 0 },
		{ "http://100.64.0.1:8080", 8080, 8080, 443 }, /* CGNAT: not private */
		{ "http://[::1]:8080", 8080, 8080, 0 },
		{ "http://[fd00::1]", 80, 80, 0 },
		{ "http://[2001:db8::1]:8080", 8080, 8080, 443 },
		{ "http://[::ffff:10.0.0.1]", 80, 80, 0 },
		{ "https://10.0.0.1", 443, 80, 443 },
		{ "https://127.0.0.1:8443", 8443, 80, 8443 },
	};
	char err[200];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ctrldi_url u;
		CU_ASSERT_FATAL(ctrldi_url_parse(&u, cases[i].url, err, sizeof(err)) == 0);
		if (u.port != cases[i].port || u.http_port != cases[i].http ||
		    u.https_port != cases[i].https)
			fprintf(stderr, "\n  %s: %u %u %u", cases[i].url, u.port,
			    u.http_port, u.https_port);
		CU_ASSERT(u.port == cases[i].port && u.http_port == cases[i].http &&
		    u.https_port == cases[i].https);
	}
}

/*
 * With a TLS port to fall back on, a plain HTTP port that refuses starts
 * the TLS try at once (not after 500 ms), and when both fail the error
 * names both, as dialHostOpt reports them.
 */
static void
test_dial_fallback_both_fail(void)
{
	int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);
	char url[80], err[400] = "";
	tk_machine_priv mk;
	tk_machine_pub server;
	ctrldi_conn *c = NULL;
	ctrldi_url u;
	uint8_t sk[32];

	/* a port that is closed: bind, learn it, close */
	CU_ASSERT_FATAL(l >= 0 && bind(l, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(l, (struct sockaddr *)&sa, &sl) == 0);
	close(l);
	snprintf(url, sizeof(url), "http://control.test:%u", ntohs(sa.sin_port));
	CU_ASSERT_FATAL(ctrldi_url_parse(&u, url, err, sizeof(err)) == 0);
	u.resolve = resolve_both;
	u.https_port = ntohs(sa.sin_port); /* closed too */
	tk_key_generate(mk.b, NULL);
	tk_key_generate(sk, NULL);
	tk_key_public(server.b, sk);
	uint64_t t0 = tk_test_now_ms();
	int rv = ctrldi_conn_dial(&c, &u, &mk, &server, 3000, err, sizeof(err));
	CU_ASSERT_NOT_EQUAL(rv, 0);
	CU_ASSERT(c == NULL);
	CU_ASSERT(tk_test_now_ms() - t0 < 400);
	CU_ASSERT(strstr(err, "HTTP port") != NULL && strstr(err, "HTTPS port") != NULL);
	printf("[%s] ", err);
}

/* A CONNECT proxy that takes every host to 127.0.0.1 and records what it
 * was asked for. */
typedef struct fake_proxy {
	int lfd;
	uint16_t port;
	pthread_t thr;
	volatile bool stop;
	int connects;
	char target[128], auth[128];
} fake_proxy;

static void
pipe_both(int a, int b)
{
	uint8_t buf[16384];

	for (;;) {
		struct pollfd p[2] = { { .fd = a, .events = POLLIN },
			{ .fd = b, .events = POLLIN } };
		if (poll(p, 2, 5000) <= 0)
			return;
		for (int i = 0; i < 2; i++) {
			if (!p[i].revents)
				continue;
			ssize_t k = recv(p[i].fd, buf, sizeof(buf), 0);
			if (k <= 0 || send(p[1 - i].fd, buf, (size_t)k, MSG_NOSIGNAL) != k)
				return;
		}
	}
}

static void *
proxy_run(void *arg)
{
	fake_proxy *x = arg;

	while (!x->stop) {
		struct pollfd p = { .fd = x->lfd, .events = POLLIN };
		if (poll(&p, 1, 100) <= 0)
			continue;
		int fd = accept(x->lfd, NULL, NULL);
		char head[2048];
		size_t hl = 0;
		if (fd < 0)
			continue;
		while (hl < sizeof(head) - 1 && !memmem(head, hl, "\r\n\r\n", 4)) {
			ssize_t k = recv(fd, head + hl, sizeof(head) - 1 - hl, 0);
			if (k <= 0)
				break;
			hl += (size_t)k;
		}
		head[hl] = '\0';
		char host[64];
		unsigned port = 0;
		const char *au = strstr(head, "Proxy-Authorization: Basic ");
		if (sscanf(head, "CONNECT %63[^:]:%u HTTP/1.1", host, &port) == 2 &&
		    port < 65536) {
			x->connects++;
			snprintf(x->target, sizeof(x->target), "%s:%u", host, port);
			snprintf(x->auth, sizeof(x->auth), "%.*s", au ?
			    (int)strcspn(au + 27, "\r") : 0, au ? au + 27 : "");
			struct sockaddr_in sa = { .sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
			int up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (up >= 0 && connect(up, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
				static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
				if (send(fd, ok, sizeof(ok) - 1, MSG_NOSIGNAL) > 0)
					pipe_both(fd, up);
			}
			if (up >= 0)
				close(up);
		} else {
			static const char no[] = "HTTP/1.1 405 Method Not Allowed\r\n\r\n";
			(void)!send(fd, no, sizeof(no) - 1, MSG_NOSIGNAL);
		}
		close(fd);
	}
	return NULL;
}

static int
fake_proxy_start(fake_proxy *x)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof(sa);

	memset(x, 0, sizeof(*x));
	x->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (x->lfd < 0 || bind(x->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(x->lfd, 8) != 0 ||
	    getsockname(x->lfd, (struct sockaddr *)&sa, &sl) != 0)
		return -1;
	x->port = ntohs(sa.sin_port);
	return pthread_create(&x->thr, NULL, proxy_run, x) == 0 ? 0 : -1;
}

static void
fake_proxy_stop(fake_proxy *x)
{
	x->stop = true;
	pthread_join(x->thr, NULL);
	close(x->lfd);
}

/*
 * HTTP_PROXY: the key fetch and the ts2021 dial go through the proxy as
 * CONNECT tunnels, with the proxy's credentials; the server's name is
 * left to the proxy to resolve.
 */
static void
test_proxy_connect(void)
{
	fake_control f;
	fake_proxy x;
	ctrldi_url u;
	char url[64], env[80], want[64], err[300] = "";
	tk_machine_priv mk;
	tk_machine_pub server;
	ctrldi_conn *c = NULL;

	CU_ASSERT_FATAL(fake_control_start(&f, FAKE_GOOD) == 0);
	CU_ASSERT_FATAL(fake_proxy_start(&x) == 0);
	snprintf(env, sizeof(env), "http://user:pw@127.0.0.1:%u/", x.port);
	setenv("HTTP_PROXY", env, 1);
	/* a name nobody can resolve here but the proxy */
	snprintf(url, sizeof(url), "http://control.invalid:%u", f.port);
	snprintf(want, sizeof(want), "control.invalid:%u", f.port);
	CU_ASSERT_FATAL(ctrldi_url_parse(&u, url, err, sizeof(err)) == 0);
	u.https_port = 0; /* no TLS try: the plain one must work */
	tk_key_generate(mk.b, NULL);
	int rv = ctrldi_fetch_server_key(&u, 3000, &server, err, sizeof(err));
	if (rv != 0)
		fprintf(stderr, "\n  /key: %s", err);
	CU_ASSERT_EQUAL(rv, 0);
	if (rv == 0) {
		rv = ctrldi_conn_dial(&c, &u, &mk, &server, 3000, err, sizeof(err));
		if (rv != 0)
			fprintf(stderr, "\n  dial: %s", err);
		CU_ASSERT_EQUAL(rv, 0);
	}
	ctrldi_conn_free(c);
	CU_ASSERT_EQUAL(x.connects, 2);
	CU_ASSERT_STRING_EQUAL(x.target, want);
	CU_ASSERT_STRING_EQUAL(x.auth, "dXNlcjpwdw=="); /* user:pw */
	/* NO_PROXY names it: no proxy (the name does not resolve) */
	setenv("NO_PROXY", "example.com, .invalid", 1);
	CU_ASSERT_NOT_EQUAL(ctrldi_fetch_server_key(&u, 3000, &server, err,
	    sizeof(err)), 0);
	CU_ASSERT_EQUAL(x.connects, 2);
	unsetenv("NO_PROXY");
	/* an https:// proxy is refused with a message */
	setenv("HTTP_PROXY", "https://127.0.0.1:1", 1);
	CU_ASSERT_EQUAL(ctrldi_fetch_server_key(&u, 3000, &server, err,
	    sizeof(err)), TK_EINVAL);
	CU_ASSERT(strstr(err, "only http:// proxies") != NULL);
	unsetenv("HTTP_PROXY");
	fake_proxy_stop(&x);
	fake_control_stop(&f);
}

/* Which hosts go through the proxy (x/net/http/httpproxy's rules). */
static void
test_proxy_selection(void)
{
	static const struct {
		const char *no_proxy, *host;
		uint16_t port;
		bool tls, proxied;
	} cases[] = {
		{ NULL, "controlplane.tailscale.com", 443, true, true },
		{ NULL, "controlplane.tailscale.com", 80, false, true },
		{ NULL, "localhost", 80, false, false },
		{ NULL, "127.0.0.1", 80, false, false },
		{ NULL, "::1", 80, false, false },
		{ "*", "hs.example.com", 443, true, false },
		{ "example.com", "hs.example.com", 443, true, false },
		{ "example.com", "example.com", 443, true, false },
		{ ".example.com", "example.com", 443, true, false },
		{ "*.example.com", "hs.example.com", 443, true, false },
		{ "example.com", "notexample.com", 443, true, true },
		{ "example.com:8443", "hs.example.com", 443, true, true },
		{ "example.com:443", "hs.example.com", 443, true, false },
		{ "10.0.0.0/8", "10.1.2.3", 443, true, false },
		{ "10.0.0.0/8", "11.1.2.3", 443, true, true },
		{ "192.0.2.7", "192.0.2.7", 80, false, false },
		{ "2001:db8::/32", "2001:db8::1", 443, true, false },
		{ "[2001:db8::1]:443", "2001:db8::1", 443, true, false },
		{ "a.com, b.com ,c.com", "x.c.com", 443, true, false },
	};
	ctrldi_proxy px;
	char err[200];

	setenv("HTTPS_PROXY", "proxy.example:3128", 1);
	setenv("HTTP_PROXY", "http://proxy.example:3129", 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (cases[i].no_proxy)
			setenv("NO_PROXY", cases[i].no_proxy, 1);
		else
			unsetenv("NO_PROXY");
		CU_ASSERT_FATAL(ctrldi_proxy_for(cases[i].host, cases[i].port,
		    cases[i].tls, &px, err, sizeof(err)) == 0);
		bool got = px.host[0] != '\0';
		if (got != cases[i].proxied)
			fprintf(stderr, "\n  NO_PROXY=%s %s:%u: %s", cases[i].no_proxy,
			    cases[i].host, cases[i].port, got ? "proxied" : "direct");
		CU_ASSERT(got == cases[i].proxied);
		if (got)
			CU_ASSERT(strcmp(px.host, "proxy.example") == 0 &&
			    px.port == (cases[i].tls ? 3128 : 3129));
	}
	unsetenv("NO_PROXY");
	unsetenv("HTTPS_PROXY");
	unsetenv("HTTP_PROXY");
}

static const tk_test_case tests[] = {
	TK_TEST(test_proxy_selection),
	TK_TEST(test_proxy_connect),
	TK_TEST(test_dial_ports),
	TK_TEST(test_dial_fallback_both_fail),
	TK_TEST(test_upgrade_header_orders),
	TK_TEST(test_happy_eyeballs),
	TK_TEST(test_dial_plan),
	TK_TEST_END,
};

void
register_ctlconn(void)
{
	tk_test_suite("ctlconn", tests);
}
