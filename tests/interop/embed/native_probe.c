/*
 * For test_embed.py: tailkit.h against a Go tsnet node (GO_IP, with TCP
 * and UDP echo on port 7).  The peer's identity with a dialled connection;
 * UDP datagrams of 1..1200 bytes keep their boundaries and order; then a
 * node stopped while a connection, a listener and a UDP socket are open
 * gives back every descriptor and thread (counted in /proc/self).
 *
 *   native_probe CONTROL_URL STATE_DIR AUTHKEY GO_IP
 * Prints "ok ..." lines; exit 0 when everything held.
 */
#include <dirent.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tailkit.h"

static char **args;

static int
count(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	while (d != NULL && (e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	if (d != NULL)
		closedir(d);
	return n;
}

static int
bad(const char *what)
{
	char m[512];

	tailkit_errmsg(m, sizeof(m));
	printf("FAIL %s: %s\n", what, m);
	return 1;
}

static tailkit *
up(void)
{
	tailkit *tk;

	if (tailkit_new(&tk) != 0 ||
	    tailkit_set(tk, "control_url", args[1]) != 0 ||
	    tailkit_set(tk, "state_dir", args[2]) != 0 ||
	    tailkit_set(tk, "authkey", args[3]) != 0 ||
	    tailkit_set(tk, "hostname", "tkprobe") != 0 ||
	    tailkit_set(tk, "derp_plain_http", "1") != 0 ||
	    tailkit_start(tk) != 0 || tailkit_wait_running(tk, 60000) != 0) {
		bad("up");
		return NULL;
	}
	return tk;
}

/* One datagram of size n out and the same back: resent while lost. */
static int
udp_one(int u, const char *ip, size_t n, int *resends)
{
	char out[1200], in[1500], from[48];
	int port;

	for (size_t i = 0; i < n; i++)
		out[i] = (char)(n * 7 + i);
	for (int t = 0; t < 20; t++) {
		if (tailkit_udp_sendto(u, out, n, ip, 7) != (int)n)
			return -1;
		struct pollfd pf = { .fd = u, .events = POLLIN };
		while (poll(&pf, 1, 500) == 1) {
			int k = tailkit_udp_recvfrom(u, in, sizeof(in), from,
			    sizeof(from), &port);
			if (k == (int)n && memcmp(in, out, n) == 0 &&
			    strcmp(from, ip) == 0 && port == 7)
				return 0;
			/* a late echo of an earlier datagram: skip it */
		}
		(*resends)++;
	}
	return -1;
}

static int
first_cycle(const char *go)
{
	tailkit_peer p;
	char buf[32];
	int resends = 0;
	tailkit *tk = up();

	if (tk == NULL)
		return 1;
	int c = tailkit_dial(tk, go, 7, &p);
	if (c < 0)
		return bad("dial");
	printf("peer %s %d %s %s\n", p.remote_ip, p.remote_port, p.node_name,
	    p.user_login);
	if (strcmp(p.remote_ip, go) != 0 || p.remote_port != 7 ||
	    strncmp(p.node_name, "go1.", 4) != 0 || p.user_login[0] == '\0' ||
	    p.node_id == 0)
		return printf("FAIL identity\n"), 1;
	if (write(c, "ping-embed", 10) != 10 || read(c, buf, 10) != 10 ||
	    memcmp(buf, "ping-embed", 10) != 0)
		return printf("FAIL tcp echo\n"), 1;
	close(c);
	int u = tailkit_udp_bind(tk, 0, NULL);
	if (u < 0)
		return bad("udp bind");
	for (size_t n = 1; n <= 1200; n++)
		if (udp_one(u, go, n, &resends) != 0)
			return printf("FAIL udp size %zu\n", n), 1;
	printf("ok udp 1..1200 bytes, boundaries kept, %d resends\n", resends);
	close(u);
	tailkit_free(tk);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc < 5)
		return 2;
	args = argv;
	if (first_cycle(argv[4]) != 0)
		return 1;
	/* the first cycle started what lives for the process (nng's task
	 * threads); from here nothing may stay behind */
	usleep(200000);
	int fd0 = count("/proc/self/fd"), th0 = count("/proc/self/task");
	tailkit *tk = up();
	if (tk == NULL)
		return 1;
	int c = tailkit_dial(tk, argv[4], 7, NULL), u = tailkit_udp_bind(tk, 0,
	    NULL), l = tailkit_listen(tk, 7100);
	if (c < 0 || u < 0 || l < 0)
		return bad("open");
	printf("open: fds %d threads %d (before start: %d, %d)\n",
	    count("/proc/self/fd"), count("/proc/self/task"), fd0, th0);
	tailkit_free(tk); /* stops with all three open */
	char b[8];
	if (read(c, b, sizeof(b)) != 0)
		return printf("FAIL connection not closed by the stop\n"), 1;
	close(c);
	close(u);
	close(l);
	usleep(200000);
	int fd1 = count("/proc/self/fd"), th1 = count("/proc/self/task");
	printf("%s after free: fds %d threads %d (before start: %d, %d)\n",
	    fd1 == fd0 && th1 == th0 ? "ok" : "FAIL", fd1, th1, fd0, th0);
	return fd1 == fd0 && th1 == th0 ? 0 : 1;
}
