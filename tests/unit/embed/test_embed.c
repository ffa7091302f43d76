/*
 * libtailkit through its public headers (linked against the .so): bad use
 * gets documented errors and never crashes; errmsg/ERANGE/EBADF as
 * libtailscale's header says; one node per process; a node stopped while
 * descriptors are open releases its descriptors and threads; the loopback
 * server wants its header and password.  No control server runs here (the
 * node keeps trying an unreachable one); tests/interop/test_embed.py joins
 * a real tailnet.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tailkit.h"
#include "tailscale.h"
#include "tk_test.h"

void register_embed(void);

#define NOBODY "http://127.0.0.1:9" /* no control server there */

static int
count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* Every thread but the caller's blocks SIGINT, SIGTERM, SIGPIPE, SIGUSR1,
 * SIGHUP and SIGCHLD (SigBlk in /proc/self/task/N/status). */
static bool
threads_block_signals(void)
{
	const unsigned long long want = 1ULL << (SIGINT - 1) |
	    1ULL << (SIGTERM - 1) | 1ULL << (SIGPIPE - 1) |
	    1ULL << (SIGUSR1 - 1) | 1ULL << (SIGHUP - 1) | 1ULL << (SIGCHLD - 1);
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	bool ok = true;

	while (d != NULL && (e = readdir(d)) != NULL) {
		char path[300], line[256];
		unsigned long long blk = 0;
		if (e->d_name[0] == '.' || atoi(e->d_name) == getpid())
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/status",
		    e->d_name);
		FILE *f = fopen(path, "r");
		while (f != NULL && fgets(line, sizeof(line), f) != NULL)
			if (strncmp(line, "SigBlk:", 7) == 0)
				blk = strtoull(line + 7, NULL, 16);
		if (f != NULL)
			fclose(f);
		if ((blk & want) != want) {
			fprintf(stderr, "thread %s: SigBlk %llx\n", e->d_name, blk);
			ok = false;
		}
	}
	if (d != NULL)
		closedir(d);
	return ok;
}

static bool
has_msg(tailscale sd, const char *want)
{
	char m[512];

	CU_ASSERT_EQUAL(tailscale_errmsg(sd, m, sizeof(m)), 0);
	if (strstr(m, want) == NULL)
		fprintf(stderr, "errmsg '%s' lacks '%s'\n", m, want);
	return strstr(m, want) != NULL;
}

static bool
native_msg(const char *want)
{
	char m[512];

	tailkit_errmsg(m, sizeof(m));
	if (strstr(m, want) == NULL)
		fprintf(stderr, "tailkit_errmsg '%s' lacks '%s'\n", m, want);
	return strstr(m, want) != NULL;
}

/* Every libtailscale function on a handle that was never made, or was
 * closed: EBADF, buffers emptied. */
static void
test_ts_bad_handles(void)
{
	char buf[64] = "x", p[33] = "x", l[33] = "x";
	int fds[2], c = 7;
	tailscale_conn conn = -1;

	CU_ASSERT_EQUAL(tailscale_start(12345), EBADF);
	CU_ASSERT_EQUAL(tailscale_up(12345), EBADF);
	CU_ASSERT_EQUAL(tailscale_close(12345), EBADF);
	CU_ASSERT_EQUAL(tailscale_set_dir(12345, "/tmp"), EBADF);
	CU_ASSERT_EQUAL(tailscale_set_hostname(12345, "h"), EBADF);
	CU_ASSERT_EQUAL(tailscale_set_authkey(12345, "k"), EBADF);
	CU_ASSERT_EQUAL(tailscale_set_control_url(12345, NOBODY), EBADF);
	CU_ASSERT_EQUAL(tailscale_set_ephemeral(12345, 1), EBADF);
	CU_ASSERT_EQUAL(tailscale_set_logfd(12345, -1), EBADF);
	CU_ASSERT_EQUAL(tailscale_getips(12345, buf, sizeof(buf)), EBADF);
	CU_ASSERT_EQUAL(buf[0], '\0');
	CU_ASSERT_EQUAL(tailscale_dial(12345, "tcp", "a:1", &conn), EBADF);
	CU_ASSERT_EQUAL(tailscale_listen(12345, "tcp", ":1", &c), EBADF);
	CU_ASSERT_EQUAL(tailscale_accept(-1, &conn), EBADF);
	CU_ASSERT_EQUAL(tailscale_loopback(12345, buf, sizeof(buf), p, l), EBADF);
	CU_ASSERT(buf[0] == '\0' && p[0] == '\0' && l[0] == '\0');
	CU_ASSERT_EQUAL(tailscale_enable_funnel_to_localhost_plaintext_http1(12345,
	    8080), EBADF);
	strcpy(buf, "x");
	CU_ASSERT_EQUAL(tailscale_errmsg(12345, buf, sizeof(buf)), EBADF);
	CU_ASSERT_EQUAL(buf[0], '\0');
	CU_ASSERT_EQUAL(tailscale_errmsg(12345, NULL, 0), EBADF);
	/* a descriptor that is not a listener of ours */
	CU_ASSERT_FATAL(pipe(fds) == 0);
	CU_ASSERT_EQUAL(tailscale_accept(fds[0], &conn), EBADF);
	CU_ASSERT_EQUAL(tailscale_getremoteaddr(fds[0], fds[1], buf,
	    sizeof(buf)), EBADF);
	CU_ASSERT_EQUAL(conn, -1);
	close(fds[0]);
	close(fds[1]);
	/* closed handles are gone */
	tailscale sd = tailscale_new();
	CU_ASSERT(sd > 0);
	CU_ASSERT_EQUAL(tailscale_close(sd), 0);
	CU_ASSERT_EQUAL(tailscale_close(sd), EBADF);
	CU_ASSERT_EQUAL(tailscale_set_dir(sd, "/tmp"), EBADF);
}

/* Mistakes that fail before anything starts: -1 and a message saying
 * what is accepted; small and NULL buffers. */
static void
test_ts_bad_arguments(void)
{
	tailscale sd = tailscale_new();
	tailscale_listener ln = -1;
	tailscale_conn c = -1;
	char small[4] = "xyz", buf[64], p[33], l[33];

	CU_ASSERT_FATAL(sd > 0);
	CU_ASSERT_EQUAL(tailscale_listen(sd, "udp", ":53", &ln), -1);
	CU_ASSERT(has_msg(sd, "\"tcp\", \"tcp4\" and \"tcp6\""));
	CU_ASSERT_EQUAL(tailscale_listen(sd, NULL, ":53", &ln), -1);
	CU_ASSERT_EQUAL(tailscale_listen(sd, "tcp", "8080", &ln), -1);
	CU_ASSERT(has_msg(sd, "host:port"));
	CU_ASSERT_EQUAL(tailscale_listen(sd, "tcp", ":0", &ln), -1);
	CU_ASSERT(has_msg(sd, "1..65535"));
	CU_ASSERT_EQUAL(tailscale_listen(sd, "tcp", "myhost:80", &ln), -1);
	CU_ASSERT(has_msg(sd, "node's addresses"));
	CU_ASSERT_EQUAL(tailscale_listen(sd, "tcp", ":80", NULL), -1);
	CU_ASSERT_EQUAL(tailscale_listen(sd, "tcp", NULL, &ln), -1);
	CU_ASSERT_EQUAL(ln, -1);
	CU_ASSERT_EQUAL(tailscale_dial(sd, "tcp", ":80", &c), -1);
	CU_ASSERT(has_msg(sd, "no host"));
	CU_ASSERT_EQUAL(tailscale_dial(sd, "udp", "a:80", &c), -1);
	CU_ASSERT_EQUAL(tailscale_dial(sd, "tcp", "a:80", NULL), -1);
	CU_ASSERT_EQUAL(tailscale_dial(sd, "tcp", "a:99999", &c), -1);
	CU_ASSERT_EQUAL(c, -1);
	CU_ASSERT_EQUAL(tailscale_enable_funnel_to_localhost_plaintext_http1(sd,
	    8080), -1);
	CU_ASSERT(has_msg(sd, "unsupported"));
	CU_ASSERT_EQUAL(tailscale_set_logfd(sd, 987654), -1);
	CU_ASSERT(has_msg(sd, "not an open descriptor"));
	CU_ASSERT_EQUAL(tailscale_loopback(sd, buf, sizeof(buf), NULL, l), -1);
	CU_ASSERT_EQUAL(tailscale_loopback(sd, NULL, 0, p, l), -1);
	CU_ASSERT(has_msg(sd, "33-byte"));
	/* errmsg: truncated and NUL-terminated, ERANGE; no buffer: ERANGE */
	CU_ASSERT_EQUAL(tailscale_errmsg(sd, small, sizeof(small)), ERANGE);
	CU_ASSERT_EQUAL(strlen(small), 3);
	CU_ASSERT_EQUAL(tailscale_errmsg(sd, NULL, 10), ERANGE);
	CU_ASSERT_EQUAL(tailscale_errmsg(sd, buf, 0), ERANGE);
	/* success clears the message */
	CU_ASSERT_EQUAL(tailscale_set_hostname(sd, "unit"), 0);
	CU_ASSERT_EQUAL(tailscale_errmsg(sd, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "");
	/* not started: no addresses yet; a NULL buffer: ERANGE */
	CU_ASSERT_EQUAL(tailscale_getips(sd, buf, sizeof(buf)), 0);
	CU_ASSERT_STRING_EQUAL(buf, "");
	CU_ASSERT_EQUAL(tailscale_getips(sd, NULL, 0), ERANGE);
	CU_ASSERT_EQUAL(tailscale_close(sd), 0);
}

static void
test_native_bad_arguments(void)
{
	tailkit *tk;
	tailkit_event ev;
	char buf[8];

	CU_ASSERT_EQUAL(tailkit_new(NULL), -EINVAL);
	CU_ASSERT_FATAL(tailkit_new(&tk) == 0);
	CU_ASSERT_EQUAL(tailkit_set(tk, "colour", "blue"), -EINVAL);
	CU_ASSERT(native_msg("accepted: control_url"));
	CU_ASSERT_EQUAL(tailkit_set(tk, "ephemeral", "maybe"), -EINVAL);
	CU_ASSERT(native_msg("expected \"0\" or \"1\""));
	CU_ASSERT_EQUAL(tailkit_set(tk, "log_level", "loud"), -EINVAL);
	CU_ASSERT_EQUAL(tailkit_set(NULL, "hostname", "x"), -EINVAL);
	CU_ASSERT_EQUAL(tailkit_set_logfd(tk, 987654), -EBADF);
	/* no control URL: the node says what it needs */
	CU_ASSERT_EQUAL(tailkit_start(tk), -EINVAL);
	CU_ASSERT(native_msg("control URL"));
	/* not started: no netstack to ask */
	CU_ASSERT_EQUAL(tailkit_listen(tk, 80), -ENOTCONN);
	CU_ASSERT_EQUAL(tailkit_dial(tk, "a", 80, NULL), -ENOTCONN);
	CU_ASSERT_EQUAL(tailkit_udp_bind(tk, 0, NULL), -ENOTCONN);
	CU_ASSERT_EQUAL(tailkit_wait_running(tk, 10), -ECANCELED);
	CU_ASSERT_EQUAL(tailkit_state(tk), TAILKIT_STATE_STOPPED);
	CU_ASSERT_EQUAL(tailkit_ips(tk, NULL, 0), -ERANGE);
	CU_ASSERT_EQUAL(tailkit_ips(tk, buf, sizeof(buf)), 0);
	CU_ASSERT_EQUAL(tailkit_next_event(tk, NULL), -EINVAL);
	CU_ASSERT_EQUAL(tailkit_next_event(tk, &ev), 0);
	CU_ASSERT_STRING_EQUAL(tailkit_state_name(99), "unknown");
	/* descriptors that are not tailkit's */
	CU_ASSERT_EQUAL(tailkit_accept(-1, NULL), -EBADF);
	CU_ASSERT_EQUAL(tailkit_dial_finish(-1, NULL), -EBADF);
	CU_ASSERT_EQUAL(tailkit_udp_sendto(-1, "x", 1, "100.64.0.1", 7), -EBADF);
	CU_ASSERT_EQUAL(tailkit_udp_sendto(-1, NULL, 1, "100.64.0.1", 7),
	    -EINVAL);
	CU_ASSERT_EQUAL(tailkit_udp_recvfrom(-1, NULL, 5, NULL, 0, NULL),
	    -EINVAL);
	CU_ASSERT_EQUAL(tailkit_errmsg(NULL, 0) > 0, 1);
	tailkit_free(tk);
	tailkit_free(NULL);
}

/* Start, use, stop with descriptors open: everything comes back. */
static int
one_node_cycle(const char *dir, bool checks)
{
	tailkit *tk, *other;
	tailkit_event ev;
	char st[16384], buf[64];
	int lfd, u, port = 0, rv;

	CU_ASSERT_FATAL(tailkit_new(&tk) == 0);
	CU_ASSERT(tailkit_set(tk, "control_url", NOBODY) == 0);
	CU_ASSERT(tailkit_set(tk, "state_dir", dir) == 0);
	CU_ASSERT(tailkit_set(tk, "hostname", "unit") == 0);
	CU_ASSERT(tailkit_set_logfd(tk, -1) == 0);
	struct sigaction before[32];
	for (int sig = 1; sig < 32; sig++)
		sigaction(sig, NULL, &before[sig]);
	if ((rv = tailkit_start(tk)) != 0) {
		tailkit_errmsg(st, sizeof(st));
		fprintf(stderr, "start: %s\n", st);
		tailkit_free(tk);
		return rv;
	}
	CU_ASSERT_EQUAL(tailkit_start(tk), -EALREADY);
	/* no signal handler installed, no signal taken from the program */
	for (int sig = 1; sig < 32; sig++) {
		struct sigaction sa;
		sigaction(sig, NULL, &sa);
		CU_ASSERT(sa.sa_handler == before[sig].sa_handler);
	}
	CU_ASSERT(threads_block_signals());
	CU_ASSERT_EQUAL(tailkit_set(tk, "hostname", "late"), -EBUSY);
	/* a second node in this process: a clear error */
	CU_ASSERT_FATAL(tailkit_new(&other) == 0);
	tailkit_set(other, "control_url", NOBODY);
	tailkit_set(other, "state_dir", dir);
	CU_ASSERT_EQUAL(tailkit_start(other), -EEXIST);
	CU_ASSERT(native_msg("one tailkit node per process"));
	tailkit_free(other);

	CU_ASSERT_EQUAL(tailkit_wait_running(tk, 300), -ETIMEDOUT);
	CU_ASSERT(native_msg("not running after 300 ms"));
	/* a state event is queued from the start; the event fd is readable */
	struct pollfd pf = { .fd = tailkit_event_fd(tk), .events = POLLIN };
	CU_ASSERT(poll(&pf, 1, 2000) == 1);
	CU_ASSERT_EQUAL(tailkit_next_event(tk, &ev), 1);
	CU_ASSERT_EQUAL(ev.type, TAILKIT_EVENT_STATE);
	while (tailkit_next_event(tk, &ev) == 1)
		;
	CU_ASSERT(poll(&pf, 1, 0) == 0);
	rv = tailkit_status_json(tk, st, sizeof(st));
	CU_ASSERT(rv > 0 && strstr(st, "\"BackendState\"") != NULL);
	CU_ASSERT_EQUAL(tailkit_status_json(tk, buf, 10), -ERANGE);
	CU_ASSERT_EQUAL(strlen(buf), 9);

	CU_ASSERT_EQUAL(tailkit_listen(tk, 0), -EINVAL);
	CU_ASSERT_EQUAL(tailkit_listen(tk, 70000), -EINVAL);
	lfd = tailkit_listen(tk, 8080);
	CU_ASSERT_FATAL(lfd >= 0);
	CU_ASSERT_EQUAL(tailkit_listen(tk, 8080), -EADDRINUSE);
	fcntl(lfd, F_SETFL, O_NONBLOCK);
	CU_ASSERT_EQUAL(tailkit_accept(lfd, NULL), -EAGAIN);
	u = tailkit_udp_bind(tk, 0, &port);
	CU_ASSERT(u >= 0 && port > 0);
	CU_ASSERT_EQUAL(tailkit_udp_sendto(u, "x", 1, "nowhere", 7), -EINVAL);
	CU_ASSERT_EQUAL(tailkit_udp_sendto(u, "x", 1, "100.64.0.9", 0), -EINVAL);
	CU_ASSERT_EQUAL(tailkit_udp_sendto(u, st, 70000, "100.64.0.9", 7),
	    -EMSGSIZE);
	fcntl(u, F_SETFL, O_NONBLOCK);
	CU_ASSERT_EQUAL(tailkit_udp_recvfrom(u, buf, sizeof(buf), NULL, 0, NULL),
	    -EAGAIN);
	CU_ASSERT_EQUAL(tailkit_dial_start(tk, "", 80), -EINVAL);
	CU_ASSERT_EQUAL(tailkit_dial_start(tk, "a", 0), -EINVAL);
	/* no netmap, no own address: the netstack says so */
	CU_ASSERT_EQUAL(tailkit_dial(tk, "100.64.0.9", 80, NULL), -ENETUNREACH);
	if (checks)
		CU_ASSERT(native_msg("dial:"));

	/* stopped while the listener and UDP socket are open: the listener
	 * reads end-of-file, waiters are cancelled */
	CU_ASSERT_EQUAL(tailkit_stop(tk), 0);
	CU_ASSERT_EQUAL(tailkit_state(tk), TAILKIT_STATE_STOPPED);
	fcntl(lfd, F_SETFL, 0);
	CU_ASSERT_EQUAL(tailkit_accept(lfd, NULL), -ECONNRESET);
	CU_ASSERT_EQUAL(tailkit_wait_running(tk, 1000), -ECANCELED);
	CU_ASSERT_EQUAL(tailkit_stop(tk), 0); /* twice: fine */
	close(lfd);
	close(u);
	tailkit_free(tk);
	return 0;
}

static void
test_native_node_lifecycle(void)
{
	char *dir = tk_test_tmpdir();
	int fds0, thr0;

	/* the first cycle warms up what lives for the process (nng's task
	 * threads and pollers); the second must leave nothing behind */
	CU_ASSERT_FATAL(one_node_cycle(dir, true) == 0);
	usleep(100000);
	fds0 = count_dir("/proc/self/fd");
	thr0 = count_dir("/proc/self/task");
	CU_ASSERT_FATAL(one_node_cycle(dir, false) == 0);
	usleep(100000);
	CU_ASSERT_EQUAL(count_dir("/proc/self/fd"), fds0);
	CU_ASSERT_EQUAL(count_dir("/proc/self/task"), thr0);
	tk_test_rmtree(dir);
	free(dir);
}

static int
tcp_connect(const char *addr)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	const char *colon = strrchr(addr, ':');
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One HTTP exchange with the loopback server: the status code. */
static int
http_code(const char *addr, const char *req, char *body, size_t cap)
{
	char resp[65536];
	size_t n = 0;
	ssize_t k;
	int fd = tcp_connect(addr), code = -1;

	if (fd < 0)
		return -1;
	(void)!write(fd, req, strlen(req));
	while (n < sizeof(resp) - 1 &&
	    (k = read(fd, resp + n, sizeof(resp) - 1 - n)) > 0)
		n += (size_t)k;
	resp[n] = '\0';
	close(fd);
	sscanf(resp, "HTTP/1.%*d %d", &code);
	if (body != NULL) {
		char *b = strstr(resp, "\r\n\r\n");
		snprintf(body, cap, "%s", b ? b + 4 : "");
	}
	return code;
}

static int
socks_auth(const char *addr, const char *user, const char *pass)
{
	uint8_t b[600], r[2];
	size_t ul = strlen(user), pl = strlen(pass), n = 0;
	int fd = tcp_connect(addr), st = -1;

	if (fd < 0)
		return -1;
	struct timeval tv = { .tv_sec = 5 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)!write(fd, "\x05\x01\x02", 3); /* username/password only */
	if (read(fd, r, 2) == 2 && r[0] == 5 && r[1] == 2) {
		b[n++] = 1;
		b[n++] = (uint8_t)ul;
		memcpy(b + n, user, ul);
		n += ul;
		b[n++] = (uint8_t)pl;
		memcpy(b + n, pass, pl);
		n += pl;
		(void)!write(fd, b, n);
		if (read(fd, r, 2) == 2)
			st = r[1];
	}
	close(fd);
	return st;
}

static void *
up_thread(void *arg)
{
	int *rv = arg;

	*rv = tailscale_up(rv[1]);
	return NULL;
}

/* tailscale_up blocks (no control server answers) until another thread's
 * tailscale_close cancels it. */
static void
test_ts_up_cancelled_by_close(void)
{
	char *dir = tk_test_tmpdir();
	int st[2] = { 99, tailscale_new() };
	pthread_t t;

	CU_ASSERT(tailscale_set_dir(st[1], dir) == 0);
	CU_ASSERT(tailscale_set_control_url(st[1], NOBODY) == 0);
	CU_ASSERT(tailscale_set_logfd(st[1], -1) == 0);
	CU_ASSERT_FATAL(pthread_create(&t, NULL, up_thread, st) == 0);
	usleep(500000);
	CU_ASSERT_EQUAL(st[0], 99); /* still waiting */
	CU_ASSERT_EQUAL(tailscale_close(st[1]), 0);
	pthread_join(t, NULL);
	CU_ASSERT_EQUAL(st[0], -1);
	tk_test_rmtree(dir);
	free(dir);
}

static void
test_ts_loopback(void)
{
	char *dir = tk_test_tmpdir(), addr[64], pc[33], lc[33], req[512],
	    body[8192], addr2[64], pc2[33], lc2[33], tiny[4];
	tailscale sd = tailscale_new();

	CU_ASSERT_FATAL(sd > 0);
	CU_ASSERT(tailscale_set_dir(sd, dir) == 0);
	CU_ASSERT(tailscale_set_control_url(sd, NOBODY) == 0);
	CU_ASSERT(tailscale_set_hostname(sd, "unit") == 0);
	CU_ASSERT(tailscale_set_logfd(sd, -1) == 0);
	if (tailscale_loopback(sd, addr, sizeof(addr), pc, lc) != 0) {
		has_msg(sd, "?");
		CU_FAIL("tailscale_loopback");
		goto out;
	}
	/* settings after the start: refused with a reason */
	CU_ASSERT_EQUAL(tailscale_set_hostname(sd, "late"), -1);
	CU_ASSERT(has_msg(sd, "before tailkit_start"));
	CU_ASSERT(strncmp(addr, "127.0.0.1:", 10) == 0);
	CU_ASSERT(strlen(pc) == 32 && strlen(lc) == 32 && strcmp(pc, lc) != 0);
	/* the same server the second time; a small address buffer: ERANGE */
	CU_ASSERT_EQUAL(tailscale_loopback(sd, addr2, sizeof(addr2), pc2, lc2), 0);
	CU_ASSERT(strcmp(addr, addr2) == 0 && strcmp(pc, pc2) == 0 &&
	    strcmp(lc, lc2) == 0);
	CU_ASSERT_EQUAL(tailscale_loopback(sd, tiny, sizeof(tiny), pc2, lc2),
	    ERANGE);

	/* LocalAPI: both the header and the password */
	CU_ASSERT_EQUAL(http_code(addr, "GET /localapi/v0/status HTTP/1.1\r\n"
	    "Host: x\r\n\r\n", NULL, 0), 403);
	CU_ASSERT_EQUAL(http_code(addr, "GET /localapi/v0/status HTTP/1.1\r\n"
	    "Sec-Tailscale: localapi\r\n\r\n", NULL, 0), 401);
	/* ":wrongpassword..." */
	CU_ASSERT_EQUAL(http_code(addr, "GET /localapi/v0/status HTTP/1.1\r\n"
	    "Sec-Tailscale: localapi\r\nAuthorization: Basic "
	    "OjAxMjM0NTY3ODlhYmNkZWYwMTIzNDU2Nzg5YWJjZGVm\r\n\r\n", NULL, 0),
	    403);
	char cred[64], b64[128];
	snprintf(cred, sizeof(cred), ":%s", lc);
	/* base64 of ":" + 32 hex characters */
	static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789+/";
	size_t cl = strlen(cred), o = 0;
	for (size_t i = 0; i < cl; i += 3) {
		unsigned v = (unsigned)(uint8_t)cred[i] << 16 |
		    (i + 1 < cl ? (unsigned)(uint8_t)cred[i + 1] << 8 : 0) |
		    (i + 2 < cl ? (uint8_t)cred[i + 2] : 0);
		b64[o++] = t[v >> 18 & 63];
		b64[o++] = t[v >> 12 & 63];
		b64[o++] = i + 1 < cl ? t[v >> 6 & 63] : '=';
		b64[o++] = i + 2 < cl ? t[v & 63] : '=';
	}
	b64[o] = '\0';
	snprintf(req, sizeof(req), "GET /localapi/v0/status HTTP/1.1\r\n"
	    "Sec-Tailscale: localapi\r\nAuthorization: Basic %s\r\n\r\n", b64);
	CU_ASSERT_EQUAL(http_code(addr, req, body, sizeof(body)), 200);
	CU_ASSERT(strstr(body, "\"BackendState\"") != NULL);
	CU_ASSERT_EQUAL(http_code(addr, "GET / HTTP/1.1\r\n\r\n", NULL, 0), 404);
	/* SOCKS5: user "tsnet" and the proxy password (a -DTK_PROXIES=OFF
	 * build serves the LocalAPI half only: every SOCKS5 attempt fails) */
#ifdef TK_TEST_NO_PROXIES
	CU_ASSERT_NOT_EQUAL(socks_auth(addr, "tsnet", pc), 0);
#else
	CU_ASSERT_EQUAL(socks_auth(addr, "tsnet", pc), 0);
#endif
	CU_ASSERT_NOT_EQUAL(socks_auth(addr, "tsnet", lc), 0);
	CU_ASSERT_NOT_EQUAL(socks_auth(addr, "admin", pc), 0);
out:
	CU_ASSERT_EQUAL(tailscale_close(sd), 0);
	tk_test_rmtree(dir);
	free(dir);
}

void
register_embed(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_ts_bad_handles),
		TK_TEST(test_ts_bad_arguments),
		TK_TEST(test_native_bad_arguments),
		TK_TEST(test_native_node_lifecycle),
		TK_TEST(test_ts_up_cancelled_by_close),
		TK_TEST(test_ts_loopback),
		TK_TEST_END,
	};
	tk_test_suite("embed", cases);
}
