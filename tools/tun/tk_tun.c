/*
 * tk-tun: the packet bus <-> a Linux TUN device.
 *
 *   tk-tun [--mtu N] (--pkt URL | --bus DIR) IFNAME
 *
 * Takes netstackd's place on wgd's packet bus (ARCHITECTURE.md "Data
 * path"): what the kernel routes into IFNAME goes to wgd in batches, and
 * what wgd decrypts comes out of IFNAME, so plain WireGuard tests can use
 * the kernel's own TCP, UDP and ping.  It dials the bus and keeps
 * reconnecting, so wgd and tk-tun may start and restart in any order.
 * Addresses and routes on IFNAME are the caller's business (ip(8)).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tk/bus.h"
#include "tk/bus_batch.h"
#include "tk/bus_topics.h"
#include "tk/core.h"
#include "tk/err.h"
#include "tk/log.h"
#include "tk/loop.h"
#include "tk/tun.h"

#define SUBSYS "tk-tun"

typedef struct tun {
	tk_loop *loop;
	tk_tun *dev;
	int fd, sig;
	tk_bus_batch_enc enc;
	bool live;
	nng_socket pkt;
	tk_bus_reader *reader;
	tk_bus_batch_stats bstats;
	uint64_t from_kernel, to_kernel, send_dropped;
	uint8_t buf[65536];
} tun;

static void
on_batch(void *arg, nng_msg *msg)
{
	tun *t = arg;
	tk_bus_batch_view v;
	tk_bus_batch_rec rec;

	if (tk_bus_batch_parse_msg(&v, msg, &t->bstats) == 0 &&
	    tk_bus_batch_kind(&v) == TK_BATCH_IP) {
		while (tk_bus_batch_next(&v, &rec)) {
			tk_tun_write(t->dev, rec.data, rec.len);
			t->to_kernel++;
		}
	}
	nng_msg_free(msg);
	tk_tun_flush(t->dev);
}

static void
send_batch(tun *t, tk_bus_batch_enc *e)
{
	nng_msg *m;

	if (tk_bus_batch_enc_finish(e, &m) != 0)
		return;
	if (tk_bus_send(t->pkt, m, false) != 0) {
		nng_msg_free(m);
		t->send_dropped++;
	}
}

static void
on_packet(void *arg, uint8_t *p, size_t n)
{
	tun *t = arg;
	tk_bus_batch_rec rec = { .data = p, .len = n };

	t->from_kernel++;
	for (int tries = 0; tries < 2; tries++) {
		if (!t->live) {
			if (tk_bus_batch_enc_init(&t->enc, TK_BATCH_IP,
				TK_BATCH_TARGET_BULK) != 0)
				return;
			t->live = true;
		}
		if (tk_bus_batch_enc_add(&t->enc, &rec) != TK_EMSGSIZE)
			return;
		send_batch(t, &t->enc);
		t->live = false;
	}
}

static void
on_tun(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	tun *t = arg;
	unsigned n;

	(void)loop, (void)fd, (void)ev;
	tk_tun_read(t->dev, 64, on_packet, t, &n);
	if (t->live) {
		send_batch(t, &t->enc);
		t->live = false;
	}
}

static void
on_signal(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	struct signalfd_siginfo si;

	(void)ev, (void)arg;
	if (read(fd, &si, sizeof(si)) > 0)
		tk_loop_stop(loop);
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: tk-tun [--mtu N] (--pkt URL | --bus DIR) IFNAME\n"
	    "  Moves packets between wgd's packet bus and TUN device IFNAME.\n"
	    "  --pkt URL  the packet bus (" TK_BUS_URL_ACCEPTED ")\n"
	    "  --bus DIR  the same as --pkt ipc://DIR/wgd-pkt\n"
	    "  --mtu N    576..65535 (default 1420)\n");
}

int
main(int argc, char **argv)
{
	static tun t;
	const char *url = NULL;
	char busurl[600];
	int mtu = 1420, i, rv;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--pkt") == 0 && i + 1 < argc)
			url = argv[++i];
		else if (strcmp(argv[i], "--bus") == 0 && i + 1 < argc) {
			snprintf(busurl, sizeof(busurl), "ipc://%s/" TK_BUS_WGD_PKT,
			    argv[++i]);
			url = busurl;
		} else if (strcmp(argv[i], "--mtu") == 0 && i + 1 < argc)
			mtu = atoi(argv[++i]);
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "tk-tun: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i + 1 != argc || url == NULL || mtu < 576 || mtu > 65535 ||
	    strlen(argv[i]) == 0 || strlen(argv[i]) >= IFNAMSIZ ||
	    strchr(argv[i], '/')) {
		fprintf(stderr, "tk-tun: need --pkt URL (or --bus DIR), one interface "
		    "name of 1..%d characters without '/', MTU 576..65535\n",
		    IFNAMSIZ - 1);
		usage(stderr);
		return 2;
	}
	/* Packet-bus batches are 64 KiB nng messages, allocated on one thread
	 * and freed on another (nng's): keep freed memory rather than trimming
	 * it back to the kernel and faulting it in again for the next batch. */
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	if ((rv = tk_init()) != 0) {
		fprintf(stderr, "tk-tun: init: %s\n", tk_strerror(rv));
		return 1;
	}
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	if ((rv = tk_tun_open(&t.dev, argv[i], mtu, TK_TUN_OFFLOAD)) != 0) {
		fprintf(stderr, "tk-tun: TUN device %s: %s\n", argv[i], tk_strerror(rv));
		return 1;
	}
	t.fd = tk_tun_fd(t.dev);
	if ((rv = tk_loop_new(&t.loop, NULL)) != 0 ||
	    (rv = tk_bus_open(&t.pkt, TK_BUS_PAIR)) != 0 ||
	    (rv = tk_bus_dial(t.pkt, url, NULL, 0, NULL)) != 0 ||
	    (rv = tk_bus_reader_new(&t.reader, t.loop, t.pkt, on_batch, &t)) != 0 ||
	    (rv = tk_loop_fd_add(t.loop, t.fd, TK_LOOP_READ, on_tun, &t)) != 0) {
		fprintf(stderr, "tk-tun: packet bus %s: %s\n", url, tk_strerror(rv));
		return 1;
	}
	t.sig = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	tk_loop_fd_add(t.loop, t.sig, TK_LOOP_READ, on_signal, &t);
	TK_INFO(SUBSYS, "%s <-> %s", argv[i], url);
	tk_loop_run(t.loop);
	tk_tun_stats ts;
	tk_tun_stats_get(t.dev, &ts);
	TK_INFO(SUBSYS, "stopping: %llu packets from the kernel, %llu to it, "
	    "%llu write errors, %llu batches dropped, %llu bad batches",
	    (unsigned long long)t.from_kernel, (unsigned long long)t.to_kernel,
	    (unsigned long long)ts.ts_tx_errors, (unsigned long long)t.send_dropped,
	    (unsigned long long)t.bstats.bs_dropped);
	tk_bus_reader_free(t.reader);
	nng_close(t.pkt);
	tk_loop_free(t.loop);
	tk_tun_free(t.dev);
	close(t.sig);
	return 0;
}
