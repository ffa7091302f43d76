/*
 * tk_bench_tun: a userspace forwarder between two TUN devices, one in each
 * of two named network namespaces, for tools/bench/tun.sh.
 *
 *   tk_bench_tun [--plain] [--crypto] [--mtu N] NS_A NS_B
 *
 * Creates tkbenchA in /var/run/netns/NS_A and tkbenchB in NS_B (addresses
 * and routes are the script's business), then forwards every packet read
 * from one to the other with tk_tun_read / tk_tun_write / tk_tun_flush, as
 * wgd's loop would.  --plain opens the devices without offloads; --crypto
 * seals and opens each packet in place with ChaCha20-Poly1305 (the per-packet
 * work of a WireGuard sender and receiver).  Runs until SIGINT/SIGTERM, then
 * prints the tk_tun counters of both devices.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <sodium.h>

#include "tk/err.h"
#include "tk/tun.h"

static volatile sig_atomic_t stop;

typedef struct side {
	tk_tun *t;
	struct side *peer;
	bool crypto;
	uint64_t nonce;
	uint8_t key[32];
} side;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void
on_pkt(void *arg, uint8_t *p, size_t n)
{
	side *s = arg;

	if (s->crypto) {
		uint8_t nonce[12] = { 0 };
		unsigned long long clen, mlen;

		memcpy(nonce + 4, &s->nonce, 8);
		s->nonce++;
		/* The tag goes into the tailroom the callback may write. */
		crypto_aead_chacha20poly1305_ietf_encrypt(p, &clen, p, n, NULL, 0,
		    NULL, nonce, s->key);
		if (crypto_aead_chacha20poly1305_ietf_decrypt(p, &mlen, NULL, p,
			clen, NULL, 0, nonce, s->key) != 0)
			abort();
	}
	tk_tun_write(s->peer->t, p, n);
}

static int
enter_ns(const char *name)
{
	char path[256];
	int fd, rv;

	snprintf(path, sizeof(path), "/var/run/netns/%s", name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		fprintf(stderr, "tk_bench_tun: %s: %s\n", path, strerror(errno));
		return -1;
	}
	rv = setns(fd, CLONE_NEWNET);
	if (rv != 0)
		fprintf(stderr, "tk_bench_tun: setns %s: %s\n", name, strerror(errno));
	close(fd);
	return rv;
}

static void
print_stats(const char *name, const tk_tun *t)
{
	tk_tun_stats st;

	tk_tun_stats_get(t, &st);
	printf("%s offload=%d rx_frames=%llu rx_gso=%llu rx_packets=%llu "
	       "rx_bad=%llu tx_packets=%llu tx_frames=%llu tx_coalesced=%llu "
	       "tx_bad=%llu tx_errors=%llu\n",
	    name, tk_tun_offloading(t), (unsigned long long)st.ts_rx_frames,
	    (unsigned long long)st.ts_rx_gso, (unsigned long long)st.ts_rx_packets,
	    (unsigned long long)st.ts_rx_bad, (unsigned long long)st.ts_tx_packets,
	    (unsigned long long)st.ts_tx_frames,
	    (unsigned long long)st.ts_tx_coalesced, (unsigned long long)st.ts_tx_bad,
	    (unsigned long long)st.ts_tx_errors);
}

int
main(int argc, char **argv)
{
	unsigned flags = TK_TUN_OFFLOAD;
	bool crypto = false;
	int mtu = 1420, ep, i, rv, errors = 0;
	side a = { 0 }, b = { 0 };
	struct epoll_event ev;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--plain") == 0) {
			flags = 0;
		} else if (strcmp(argv[i], "--crypto") == 0) {
			crypto = true;
		} else if (strcmp(argv[i], "--mtu") == 0 && i + 1 < argc) {
			mtu = atoi(argv[++i]);
		} else {
			fprintf(stderr, "tk_bench_tun: unknown option '%s' "
			    "(accepted: --plain --crypto --mtu N)\n", argv[i]);
			return 2;
		}
	}
	if (argc - i != 2) {
		fprintf(stderr, "usage: tk_bench_tun [--plain] [--crypto] [--mtu N] NS_A NS_B\n");
		return 2;
	}
	if (sodium_init() < 0)
		return 1;
	if (enter_ns(argv[i]) != 0)
		return 1;
	if ((rv = tk_tun_open(&a.t, "tkbenchA", mtu, flags)) != 0) {
		fprintf(stderr, "tk_bench_tun: tkbenchA: %s\n", tk_strerror(rv));
		return 1;
	}
	if (enter_ns(argv[i + 1]) != 0)
		return 1;
	if ((rv = tk_tun_open(&b.t, "tkbenchB", mtu, flags)) != 0) {
		fprintf(stderr, "tk_bench_tun: tkbenchB: %s\n", tk_strerror(rv));
		return 1;
	}
	a.peer = &b;
	b.peer = &a;
	a.crypto = b.crypto = crypto;
	randombytes_buf(a.key, sizeof(a.key));
	randombytes_buf(b.key, sizeof(b.key));
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return 1;
	ev.events = EPOLLIN;
	ev.data.ptr = &a;
	epoll_ctl(ep, EPOLL_CTL_ADD, tk_tun_fd(a.t), &ev);
	ev.data.ptr = &b;
	epoll_ctl(ep, EPOLL_CTL_ADD, tk_tun_fd(b.t), &ev);
	printf("ready\n");
	fflush(stdout);
	while (!stop) {
		struct epoll_event evs[2];
		int n = epoll_wait(ep, evs, 2, 200);

		for (int k = 0; k < n; k++) {
			side *s = evs[k].data.ptr;
			unsigned np;

			/* One receive batch, then one flush, as wgd does per batch. */
			if ((rv = tk_tun_read(s->t, 64, on_pkt, s, &np)) != 0) {
				fprintf(stderr, "tk_bench_tun: read %s: %s\n",
				    s == &a ? "A" : "B", tk_strerror(rv));
				if (++errors > 100)
					stop = 1;
			}
			if ((rv = tk_tun_flush(s->peer->t)) != 0) {
				fprintf(stderr, "tk_bench_tun: flush: %s\n", tk_strerror(rv));
				stop = 1;
			}
		}
	}
	print_stats("A", a.t);
	print_stats("B", b.t);
	tk_tun_free(a.t);
	tk_tun_free(b.t);
	close(ep);
	return 0;
}
