/*
 * echo_epoll: a TCP and UDP echo server on tailkit's native API (tailkit.h),
 * driven entirely by the program's own epoll loop: the node's event fd, the
 * listener, the UDP socket and every connection are descriptors in one
 * epoll set, all non-blocking.  Each accepted connection is logged with the
 * peer's identity (tailnet IP, node name, user login).
 *
 *   cc echo_epoll.c $(pkg-config --cflags --libs tailkit)
 *   ./a.out CONTROL_URL STATE_DIR HOSTNAME PORT [AUTHKEY]
 *
 * Environment: TAILKIT_DERP_PLAIN_HTTP=1 for a plain-HTTP DERP server (tests).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "tailkit.h"

static volatile sig_atomic_t quit;

static void
on_term(int sig)
{
	(void)sig;
	quit = 1;
}

static int
fail(const char *what)
{
	char msg[512];

	tailkit_errmsg(msg, sizeof(msg));
	fprintf(stderr, "echo_epoll: %s: %s\n", what, msg);
	return 1;
}

static void
nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static void
on_events(tailkit *tk)
{
	tailkit_event ev;
	char ips[256];

	while (tailkit_next_event(tk, &ev) == 1) {
		if (ev.type == TAILKIT_EVENT_STATE)
			printf("state %s\n", ev.text);
		else if (ev.type == TAILKIT_EVENT_LOGIN_URL)
			printf("login at %s\n", ev.text);
		else if (ev.type == TAILKIT_EVENT_IPS && tailkit_ips(tk, ips,
		    sizeof(ips)) >= 0)
			printf("ips %s\n", ips);
		else if (ev.type == TAILKIT_EVENT_PEERS)
			printf("peers changed\n");
	}
	fflush(stdout);
}

static void
on_accept(int ep, int lfd)
{
	tailkit_peer p;
	int c;

	while ((c = tailkit_accept(lfd, &p)) >= 0) {
		printf("accept %s port %d node %s user %s\n", p.remote_ip,
		    p.remote_port, p.node_name, p.user_login);
		fflush(stdout);
		nonblock(c);
		struct epoll_event e = { .events = EPOLLIN, .data.fd = c };
		epoll_ctl(ep, EPOLL_CTL_ADD, c, &e);
	}
}

/* Echo what is there; close on EOF or error.  (A real server would keep
 * what the peer is not ready to take; an echo of small messages fits.) */
static void
on_conn(int ep, int c)
{
	char buf[16384];
	ssize_t k;

	while ((k = read(c, buf, sizeof(buf))) > 0)
		if (write(c, buf, (size_t)k) != k)
			break;
	if (k == 0 || (k < 0 && errno != EAGAIN)) {
		epoll_ctl(ep, EPOLL_CTL_DEL, c, NULL);
		close(c);
	}
}

static void
on_udp(int u)
{
	char buf[2048], ip[48];
	int port, n;

	while ((n = tailkit_udp_recvfrom(u, buf, sizeof(buf), ip, sizeof(ip),
	    &port)) >= 0)
		tailkit_udp_sendto(u, buf, (size_t)n, ip, port);
}

int
main(int argc, char **argv)
{
	tailkit *tk;
	int ep, lfd, u, efd;

	if (argc < 5) {
		fprintf(stderr, "usage: echo_epoll CONTROL_URL STATE_DIR HOSTNAME "
		    "PORT [AUTHKEY]\n");
		return 2;
	}
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	const char *plain = getenv("TAILKIT_DERP_PLAIN_HTTP");
	if (tailkit_new(&tk) != 0 ||
	    tailkit_set(tk, "control_url", argv[1]) != 0 ||
	    tailkit_set(tk, "state_dir", argv[2]) != 0 ||
	    tailkit_set(tk, "hostname", argv[3]) != 0 ||
	    (argc > 5 && tailkit_set(tk, "authkey", argv[5]) != 0) ||
	    (plain && tailkit_set(tk, "derp_plain_http", plain) != 0) ||
	    tailkit_start(tk) != 0)
		return fail("start");
	if ((lfd = tailkit_listen(tk, atoi(argv[4]))) < 0)
		return fail("listen");
	if ((u = tailkit_udp_bind(tk, atoi(argv[4]), NULL)) < 0)
		return fail("udp");
	nonblock(lfd);
	nonblock(u);
	efd = tailkit_event_fd(tk);
	ep = epoll_create1(EPOLL_CLOEXEC);
	int fds[] = { efd, lfd, u };
	for (int i = 0; i < 3; i++) {
		struct epoll_event e = { .events = EPOLLIN, .data.fd = fds[i] };
		epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &e);
	}
	printf("listening on port %s\n", argv[4]);
	fflush(stdout);
	while (!quit) {
		struct epoll_event evs[32];
		int n = epoll_wait(ep, evs, 32, -1);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			if (fd == efd)
				on_events(tk);
			else if (fd == lfd)
				on_accept(ep, lfd);
			else if (fd == u)
				on_udp(u);
			else
				on_conn(ep, fd);
		}
	}
	close(ep);
	close(lfd);
	close(u);
	tailkit_free(tk);
	printf("bye\n");
	return 0;
}
