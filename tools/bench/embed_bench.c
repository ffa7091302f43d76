/*
 * embed_bench: the C side of tools/bench/embed.py (issue 14's benchmark),
 * written only against libtailscale's C API (tailscale.h), so the same
 * source builds with libtailscale or with tailkit.  Step for step what
 * tests/interop/peer/cmd/tsnetbench does with Go's tsnet:
 *
 *   1. tailscale_start, tailscale_up, then tailscale_dial PEER:7 (a TCP
 *      echo) until one byte comes back: "up MS" when tailscale_up
 *      returned, "connected MS" when that reply came (both from
 *      tailscale_start);
 *   2. that connection closed, SETTLE seconds idle, then "idle RSS_KIB
 *      ANON_KIB THREADS" from /proc/self/status;
 *   3. ROUNDS round trips of 64 bytes (write, read them all back) on one
 *      connection: "echo ROUNDS MS";
 *   4. "done", tailscale_close.
 *
 *   cc embed_bench.c $(pkg-config --cflags --libs tailkit)
 *   TS_AUTHKEY=... TS_CONTROL_URL=... ./a.out STATE_DIR HOSTNAME PEER_IP [ROUNDS [SETTLE_S]]
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tailscale.h"

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int
die(tailscale ts, const char *what)
{
	char msg[256];

	tailscale_errmsg(ts, msg, sizeof(msg));
	fprintf(stderr, "embed_bench: %s: %s\n", what, msg);
	return 1;
}

/* Read exactly len bytes, each wait bounded by ms. */
static int
read_full(int fd, char *buf, size_t len, int ms)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, ms) != 1)
			return -1;
		ssize_t k = read(fd, buf + got, len - got);
		if (k <= 0)
			return -1;
		got += (size_t)k;
	}
	return 0;
}

/* One dial, one byte out, the same byte back within 2 s. */
static int
first_echo(tailscale ts, const char *addr)
{
	tailscale_conn c;
	char b = 'x';
	int ok;

	if (tailscale_dial(ts, "tcp", addr, &c) != 0)
		return 0;
	ok = write(c, &b, 1) == 1 && read_full(c, &b, 1, 2000) == 0 &&
	    b == 'x';
	close(c);
	return ok;
}

/* "VmRSS RssAnon Threads" (KiB, KiB, count). */
static void
print_status(void)
{
	char line[256];
	long rss = 0, anon = 0, thr = 0;
	FILE *f = fopen("/proc/self/status", "r");

	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		sscanf(line, "VmRSS: %ld", &rss);
		sscanf(line, "RssAnon: %ld", &anon);
		sscanf(line, "Threads: %ld", &thr);
	}
	if (f != NULL)
		fclose(f);
	printf("idle %ld %ld %ld\n", rss, anon, thr);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	char addr[80], msg[64], buf[64];
	tailscale_conn c;
	double t0;

	if (argc < 4) {
		fprintf(stderr, "usage: embed_bench STATE_DIR HOSTNAME PEER_IP "
		    "[ROUNDS [SETTLE_S]]\n");
		return 2;
	}
	int rounds = argc > 4 ? atoi(argv[4]) : 2000;
	int settle = argc > 5 ? atoi(argv[5]) : 5;
	snprintf(addr, sizeof(addr), strchr(argv[3], ':') ? "[%s]:7" : "%s:7",
	    argv[3]);
	tailscale ts = tailscale_new();
	if (tailscale_set_dir(ts, argv[1]) != 0 ||
	    tailscale_set_hostname(ts, argv[2]) != 0 ||
	    tailscale_set_ephemeral(ts, 1) != 0)
		return die(ts, "settings");

	t0 = now_ms();
	if (tailscale_start(ts) != 0)
		return die(ts, "start");
	if (tailscale_up(ts) != 0)
		return die(ts, "up");
	printf("up %.1f\n", now_ms() - t0);
	for (int i = 0; !first_echo(ts, addr); i++) {
		if (now_ms() - t0 > 90000)
			return die(ts, "no echo reply within 90 s");
		usleep(20000);
	}
	printf("connected %.1f\n", now_ms() - t0);
	fflush(stdout);

	sleep((unsigned)settle);
	print_status();

	if (tailscale_dial(ts, "tcp", addr, &c) != 0)
		return die(ts, "dial");
	memset(msg, 'e', sizeof(msg));
	t0 = now_ms();
	for (int i = 0; i < rounds; i++)
		if (write(c, msg, sizeof(msg)) != (ssize_t)sizeof(msg) ||
		    read_full(c, buf, sizeof(buf), 10000) != 0) {
			fprintf(stderr, "embed_bench: echo round %d failed\n", i);
			return 1;
		}
	printf("echo %d %.1f\n", rounds, now_ms() - t0);
	close(c);
	printf("done\n");
	fflush(stdout);
	tailscale_close(ts);
	return 0;
}
