/*
 * WireGuard CPU benchmarks on one core:
 *   crypto     ChaCha20-Poly1305 seal at SIZE bytes through libsodium (the
 *              ceiling any userspace engine on this machine can reach)
 *   handshake  complete tk_wg handshakes per second (initiation, response,
 *              confirming keepalive), both sides on this core
 * Prints one "name value unit" line per figure (median of --runs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tk/aead.h"
#include "tk/core.h"
#include "tk/wg.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
bench_crypto(size_t size, double secs)
{
	static uint8_t in[65536], out[65536 + 16];
	uint8_t key[32] = { 1 };
	uint64_t n = 0;
	double t0 = now_s(), t;

	do {
		for (int i = 0; i < 256; i++)
			tk_chacha_seal(out, key, n++, TK_NONCE_LE, NULL, 0, in, size);
		t = now_s() - t0;
	} while (t < secs);
	return (double)n * (double)size * 8 / t / 1e9;
}

static uint8_t q[256];
static size_t qn;

static void
on_send(void *arg, tk_wg_peer *p, const tk_wg_endpoint *ep, const uint8_t *b,
    size_t n)
{
	(void)arg, (void)p, (void)ep;
	if (n <= sizeof(q)) {
		memcpy(q, b, n);
		qn = n;
	}
}

static double
bench_handshake(double secs)
{
	tk_wg_device_config c = { 0 };
	tk_wg_device *a, *b;
	tk_wg_peer *pa;
	uint8_t k[32], pub[32], m[256];
	tk_wg_endpoint ea = { 4, { 10, 0, 0, 1 }, 1 }, eb = { 4, { 10, 0, 0, 2 }, 2 };
	uint64_t n = 0;
	double t0, t;

	c.cb.send_datagram = on_send;
	c.under_load_per_sec = 1u << 30;
	if (tk_wg_device_new(&a, &c) || tk_wg_device_new(&b, &c))
		exit(1);
	memset(k, 3, 32);
	tk_wg_device_set_private_key(a, k);
	memset(k, 4, 32);
	tk_wg_device_set_private_key(b, k);
	tk_wg_device_public_key(b, pub);
	tk_wg_peer_add(a, pub, &pa);
	tk_wg_peer_set_endpoint(pa, &eb);
	tk_wg_device_public_key(a, pub);
	tk_wg_peer_add(b, pub, NULL);
	t0 = now_s();
	do {
		/* A full handshake each round.  The protocol allows one
		 * initiation per peer per 5 s (initiator) and per 20 ms
		 * (responder), so both sides get a fresh peer entry each round;
		 * that bookkeeping is included in the figure. */
		qn = 0;
		tk_wg_peer_initiate(pa);
		if (qn == 0) {
			tk_wg_peer_remove(a, pa);
			tk_wg_device_public_key(b, pub);
			tk_wg_peer_add(a, pub, &pa);
			tk_wg_peer_set_endpoint(pa, &eb);
			tk_wg_peer_initiate(pa);
		}
		memcpy(m, q, qn);
		size_t mn = qn;
		qn = 0;
		/* the responder's per-peer replay/flood state: a fresh peer */
		tk_wg_device_public_key(a, pub);
		tk_wg_peer_remove(b, tk_wg_peer_find(b, pub));
		tk_wg_peer_add(b, pub, NULL);
		if (tk_wg_device_recv(b, &ea, m, mn) != 0)
			exit(2);
		memcpy(m, q, qn);
		mn = qn;
		qn = 0;
		if (tk_wg_device_recv(a, &eb, m, mn) != 0)
			exit(3);
		n++;
		t = now_s() - t0;
	} while (t < secs);
	tk_wg_device_free(a);
	tk_wg_device_free(b);
	return (double)n / t;
}

int
main(int argc, char **argv)
{
	int runs = 5;
	double secs = 1.0, v[32];
	size_t size = 1420;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (strcmp(argv[i], "--secs") == 0 && i + 1 < argc)
			secs = atof(argv[++i]);
		else if (strcmp(argv[i], "--size") == 0 && i + 1 < argc)
			size = (size_t)atoi(argv[++i]);
		else {
			fprintf(stderr, "usage: tk_bench_wg [--runs N(1..31)] [--secs S] [--size B(1..65536)]\n");
			return 2;
		}
	}
	if (runs < 1 || runs > 31 || size < 1 || size > 65536 || secs <= 0) {
		fprintf(stderr, "tk_bench_wg: runs 1..31, size 1..65536, secs > 0\n");
		return 2;
	}
	tk_init();
	for (int i = 0; i < runs; i++)
		v[i] = bench_crypto(size, secs);
	qsort(v, (size_t)runs, sizeof(v[0]), cmp);
	printf("crypto_ceiling %.3f Gbit/s\n", v[runs / 2]);
	for (int i = 0; i < runs; i++)
		v[i] = bench_handshake(secs);
	qsort(v, (size_t)runs, sizeof(v[0]), cmp);
	printf("handshakes %.0f /s\n", v[runs / 2]);
	return 0;
}
