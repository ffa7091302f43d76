/*
 * tk_bench_bus: packets/s and Gbit/s of 1420-byte packets over the packet-bus
 * transports, one sender thread and one receiver thread:
 *
 *   inproc:// and ipc:// pair1, one packet per nng message vs ~64 KiB batches
 *   (tk/bus_batch.h), and the raw AF_UNIX SOCK_SEQPACKET socketpair as the
 *   ceiling (one packet per send, and the same batches per send).
 *
 * Each case runs --runs times for --secs seconds; the table shows medians and
 * the ratios come last.  Sender: builds each message (alloc + copy of the
 * packet) and sends.  Receiver: receives, validates the batch and walks every
 * record (zero-copy), frees.  A 1-byte message ends a run.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tk/bus.h"
#include "tk/bus_batch.h"
#include "tk/core.h"

enum transport { T_INPROC, T_IPC, T_SEQPACKET };

struct bcase {
	const char *name;
	enum transport tr;
	bool batched;
	double pps[32];
	double median;
};

static size_t pkt_len = 1420;
static double run_secs = 0.5;
static int runs = 5;
static char ipc_dir[64];

static double
now_s(void)
{
	return (double)tk_clock_mono_ns(NULL) / 1e9;
}

struct run {
	const struct bcase *c;
	nng_socket tx, rx;
	int fds[2];
	uint64_t pkts_rx;
	uint64_t bad;
	double t_end;
	pthread_barrier_t go;
};

/* ---- receiver ---------------------------------------------------------- */

/* Returns packets in the message, or 0 for the end marker. */
static uint64_t
count_msg(struct run *r, const uint8_t *p, size_t n, bool *end)
{
	tk_bus_batch_view v;
	tk_bus_batch_rec rec;
	uint64_t k = 0;

	*end = n == 1;
	if (*end)
		return 0;
	if (!r->c->batched)
		return n == pkt_len ? 1 : (r->bad++, 0);
	if (tk_bus_batch_parse(&v, p, n, NULL) != 0) {
		r->bad++;
		return 0;
	}
	while (tk_bus_batch_next(&v, &rec))
		k++;
	return k;
}

static void *
receiver(void *arg)
{
	struct run *r = arg;
	uint8_t *buf = NULL;
	bool end = false;

	if (r->c->tr == T_SEQPACKET)
		buf = malloc(TK_BATCH_MAX);
	pthread_barrier_wait(&r->go);
	while (!end) {
		if (r->c->tr == T_SEQPACKET) {
			ssize_t n = recv(r->fds[1], buf, TK_BATCH_MAX, 0);

			if (n < 0) {
				if (errno == EINTR)
					continue;
				break;
			}
			r->pkts_rx += count_msg(r, buf, (size_t)n, &end);
		} else {
			nng_msg *m;

			if (nng_recvmsg(r->rx, &m, 0) != 0)
				break;
			r->pkts_rx += count_msg(r, nng_msg_body(m),
			    nng_msg_len(m), &end);
			nng_msg_free(m);
		}
	}
	r->t_end = now_s();
	free(buf);
	return NULL;
}

/* ---- sender ------------------------------------------------------------ */

static int
send_raw(struct run *r, const void *p, size_t n)
{
	if (r->c->tr == T_SEQPACKET) {
		while (send(r->fds[0], p, n, 0) < 0)
			if (errno != EINTR)
				return -1;
		return 0;
	} else {
		nng_msg *m;

		if (nng_msg_alloc(&m, n) != 0)
			return -1;
		memcpy(nng_msg_body(m), p, n);
		if (nng_sendmsg(r->tx, m, 0) != 0) {
			nng_msg_free(m);
			return -1;
		}
		return 0;
	}
}

static int
send_batch(struct run *r, const uint8_t *pkt, unsigned *sent)
{
	tk_bus_batch_enc e;
	tk_bus_batch_rec rec;
	nng_msg *m;

	memset(&rec, 0, sizeof(rec));
	rec.data = pkt;
	rec.len = pkt_len;
	if (tk_bus_batch_enc_init(&e, TK_BATCH_IP, TK_BATCH_TARGET) != 0)
		return -1;
	while (tk_bus_batch_enc_add(&e, &rec) == 0)
		(*sent)++;
	if (tk_bus_batch_enc_finish(&e, &m) != 0) {
		tk_bus_batch_enc_fini(&e);
		return -1;
	}
	if (r->c->tr == T_SEQPACKET) {
		int rv = 0;

		while (send(r->fds[0], nng_msg_body(m), nng_msg_len(m), 0) < 0)
			if (errno != EINTR) {
				rv = -1;
				break;
			}
		nng_msg_free(m);
		return rv;
	}
	if (nng_sendmsg(r->tx, m, 0) != 0) {
		nng_msg_free(m);
		return -1;
	}
	return 0;
}

/* Packets/s of one run, or a negative value on failure. */
static double
run_once(const struct bcase *c, int idx)
{
	struct run r;
	pthread_t th;
	uint8_t *pkt = malloc(pkt_len);
	double t0, dt;
	unsigned sent = 0;
	int fail = 0;
	char url[128];

	memset(&r, 0, sizeof(r));
	r.c = c;
	for (size_t i = 0; i < pkt_len; i++)
		pkt[i] = (uint8_t)i;
	pkt[0] = 0x45;
	if (c->tr == T_SEQPACKET) {
		int sz = 4 << 20;

		if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, r.fds) != 0)
			return -1;
		setsockopt(r.fds[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		setsockopt(r.fds[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	} else {
		if (c->tr == T_INPROC)
			snprintf(url, sizeof(url), "inproc://bench/%s%d",
			    c->batched ? "b" : "p", idx);
		else
			snprintf(url, sizeof(url), "ipc://%s/%s%d.ipc",
			    ipc_dir, c->batched ? "b" : "p", idx);
		if (tk_bus_open(&r.tx, TK_BUS_PAIR) != 0 ||
		    tk_bus_open(&r.rx, TK_BUS_PAIR) != 0 ||
		    tk_bus_listen(r.rx, url, NULL, NULL) != 0 ||
		    tk_bus_dial(r.tx, url, NULL, TK_BUS_DIAL_WAIT, NULL) != 0) {
			fprintf(stderr, "bench: cannot set up %s\n", url);
			return -1;
		}
	}
	pthread_barrier_init(&r.go, NULL, 2);
	pthread_create(&th, NULL, receiver, &r);
	pthread_barrier_wait(&r.go);
	t0 = now_s();
	while (!fail && now_s() - t0 < run_secs) {
		for (int i = 0; i < 16 && !fail; i++) {
			if (c->batched) {
				fail = send_batch(&r, pkt, &sent);
			} else {
				fail = send_raw(&r, pkt, pkt_len);
				sent++;
			}
		}
	}
	fail |= send_raw(&r, "", 1); /* end marker */
	pthread_join(th, NULL);
	dt = r.t_end - t0;
	if (c->tr == T_SEQPACKET) {
		close(r.fds[0]);
		close(r.fds[1]);
	} else {
		nng_close(r.tx);
		nng_close(r.rx);
	}
	pthread_barrier_destroy(&r.go);
	free(pkt);
	if (fail || r.bad || r.pkts_rx != sent) {
		fprintf(stderr, "bench: %s: sent %u received %llu bad %llu\n",
		    c->name, sent, (unsigned long long)r.pkts_rx,
		    (unsigned long long)r.bad);
		return -1;
	}
	return (double)r.pkts_rx / dt;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
gbps(double pps)
{
	return pps * (double)pkt_len * 8 / 1e9;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: tk_bench_bus [--runs N (1..31)] [--secs S] [--size B]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct bcase cases[] = {
		{ "inproc pair1, 1 pkt/msg", T_INPROC, false, { 0 }, 0 },
		{ "inproc pair1, 64K batch", T_INPROC, true, { 0 }, 0 },
		{ "ipc pair1, 1 pkt/msg", T_IPC, false, { 0 }, 0 },
		{ "ipc pair1, 64K batch", T_IPC, true, { 0 }, 0 },
		{ "seqpacket, 1 pkt/send", T_SEQPACKET, false, { 0 }, 0 },
		{ "seqpacket, 64K batch", T_SEQPACKET, true, { 0 }, 0 },
	};
	const size_t nc = sizeof(cases) / sizeof(cases[0]);
	double t_start = now_s();
	int failed = 0;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (strcmp(argv[i], "--secs") == 0 && i + 1 < argc)
			run_secs = atof(argv[++i]);
		else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc)
			pkt_len = (size_t)atol(argv[++i]);
		else
			usage();
	}
	if (runs < 1 || runs > 31 || run_secs <= 0 || pkt_len < 20 ||
	    pkt_len > 9000)
		usage();
	if (tk_init() != 0)
		return 1;
	snprintf(ipc_dir, sizeof(ipc_dir), "/tmp/tk-bench-%d", (int)getpid());
	if (mkdir(ipc_dir, 0700) != 0) {
		perror(ipc_dir);
		return 1;
	}
	printf("tk_bench_bus: %zu-byte packets, %d runs x %.2f s per case, "
	       "1 sender + 1 receiver thread, nng %s\n",
	    pkt_len, runs, run_secs, nng_version());
	/* Interleave the cases run by run, so drift hits all of them alike. */
	for (int k = 0; k < runs; k++)
		for (size_t i = 0; i < nc; i++) {
			cases[i].pps[k] = run_once(&cases[i], k);
			if (cases[i].pps[k] < 0)
				failed = 1;
		}
	for (size_t i = 0; i < nc; i++) {
		qsort(cases[i].pps, (size_t)runs, sizeof(double), cmp_d);
		cases[i].median = cases[i].pps[runs / 2];
	}
	printf("\n%-28s %14s %9s %14s %14s\n", "case", "packets/s", "Gbit/s",
	    "min pkt/s", "max pkt/s");
	for (size_t i = 0; i < nc; i++)
		printf("%-28s %14.0f %9.2f %14.0f %14.0f\n", cases[i].name,
		    cases[i].median, gbps(cases[i].median), cases[i].pps[0],
		    cases[i].pps[runs - 1]);
	{
		double inp = cases[0].median, inb = cases[1].median;
		double ipp = cases[2].median, ipb = cases[3].median;
		double sqp = cases[4].median, sqb = cases[5].median;
		double r_ipc = ipp > 0 ? ipb / ipp : 0;

		printf("\nratios (medians):\n");
		printf("  inproc batched / inproc per-packet   %6.2fx\n",
		    inp > 0 ? inb / inp : 0);
		printf("  ipc batched / ipc per-packet         %6.2fx  "
		       "(target >= 5x: %s)\n",
		    r_ipc, r_ipc >= 5 ? "met" : "MISSED");
		printf("  ipc batched / seqpacket per-packet   %6.2fx\n",
		    sqp > 0 ? ipb / sqp : 0);
		printf("  ipc batched / seqpacket batched      %6.2fx  "
		       "(share of the AF_UNIX ceiling)\n",
		    sqb > 0 ? ipb / sqb : 0);
		printf("total %.1f s%s\n", now_s() - t_start,
		    failed ? "  (SOME RUNS FAILED: see stderr)" : "");
	}
	rmdir(ipc_dir);
	return failed ? 1 : 0;
}
