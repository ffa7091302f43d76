/*
 * tk_bench_derp: a DERP load generator.  P pairs of clients on one server;
 * in each pair one client sends SendPacket frames of S bytes to the other
 * as fast as the socket takes them, the other counts what arrives.  One
 * epoll thread drives all of them (the handshake is the blocking test
 * client of tests/unit/derpd).  Prints one JSON line: packets/s and
 * Gbit/s received over the measured seconds (after a 1 s warm-up).
 *
 *   tk_bench_derp PORT [--pairs P] [--size S] [--secs T] [--window W]
 *   tk_bench_derp PORT --idle N [--hold S]   N idle clients held S seconds
 *   tk_bench_derp PORT --rate R [--pairs P] [--size S] [--secs T]
 *                              R packets/s offered, paced: delivered fraction
 *                              and relay latency p50/p99
 *
 * (127.0.0.1, plain HTTP.)  --window W: a sender keeps at most W packets
 * in flight (sent, not yet received by its partner): a closed loop that a
 * server can sustain without dropping.  0 (default): open loop, as fast
 * as the sockets take them; the server's drop policy then shows.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tc.h"
#include "tk/core.h"
#include "tk/derp.h"
#include "tk/endian.h"

typedef struct peer {
	tc c;
	bool sender;
	struct peer *to;
	/* sender */
	uint8_t *frames;
	size_t flen, off, one;
	uint64_t sent_bytes;
	bool paused;
	/* receiver */
	uint8_t hdr[5];
	size_t hlen;
	uint64_t left;
	uint64_t pkts, bytes;
	uint8_t type;
} peer;

static double
now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
consume(peer *p, const uint8_t *b, size_t n)
{
	while (n) {
		if (p->left == 0) {
			size_t k = 5 - p->hlen < n ? 5 - p->hlen : n;
			memcpy(p->hdr + p->hlen, b, k);
			p->hlen += k;
			b += k;
			n -= k;
			if (p->hlen == 5) {
				p->hlen = 0;
				p->type = p->hdr[0];
				p->left = tk_be32_load(p->hdr + 1);
				if (p->type == TK_DERP_FRAME_RECV_PACKET) {
					p->pkts++;
					p->bytes += p->left - 32;
				}
			}
			continue;
		}
		size_t k = p->left < n ? (size_t)p->left : n;
		p->left -= k;
		b += k;
		n -= k;
	}
}

/* --- paced mode: offered load, delivered fraction, relay latency ----------- */

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t
now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * --rate R: every sender offers R/P packets per second, evenly paced; each
 * packet carries its send time.  Counted over the measured seconds (after
 * a 1 s warm-up; receivers drain 1 s more): packets sent, packets
 * delivered, and the relay latency (send to receive, both on this host)
 * as p50/p99.
 */
static int
paced(uint16_t port, int pairs, int size, int secs, double rate)
{
	typedef struct pr {
		tc c;
		struct pr *to;
		uint8_t out[1 << 20];
		size_t olen;
		uint64_t next_ns, sent, seq;
		tk_derp_rx rx;
	} pr;
	pr *ps = calloc((size_t)pairs * 2, sizeof(*ps));
	size_t cap = (size_t)(rate * (secs + 2)) + 1024, nlat = 0;
	uint64_t *lat = malloc(cap * sizeof(*lat));
	uint64_t delivered = 0, sent = 0;
	if (!ps || !lat || size < 16)
		return 2;
	for (int i = 0; i < pairs * 2; i++)
		if (tc_connect(&ps[i].c, port, NULL) != 0) {
			fprintf(stderr, "tk_bench_derp: connect %d failed\n", i);
			return 1;
		}
	int ep = epoll_create1(0);
	for (int i = 0; i < pairs * 2; i++) {
		pr *p = &ps[i];
		tk_derp_rx_init(&p->rx, 1 << 20);
		tk_derp_rx_put(&p->rx, p->c.buf, p->c.len);
		fcntl(p->c.fd, F_SETFL, O_NONBLOCK);
		if (i % 2 == 0)
			p->to = &ps[i + 1];
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = p };
		epoll_ctl(ep, EPOLL_CTL_ADD, p->c.fd, &ev);
	}
	uint64_t gap = (uint64_t)(1e9 * pairs / rate), t0 = now_ns();
	uint64_t tstart = t0 + 1000000000ull, tend = tstart + (uint64_t)secs * 1000000000ull;
	for (int i = 0; i < pairs; i++)
		ps[2 * i].next_ns = t0 + gap * (uint64_t)i / (uint64_t)pairs;
	size_t one = TK_DERP_PACKET_HDR_LEN + (size_t)size;
	for (;;) {
		uint64_t t = now_ns();
		if (t >= tend + 1000000000ull)
			break;
		for (int i = 0; i < pairs && t < tend; i++) {
			pr *s = &ps[2 * i];
			/* due packets into the sender's buffer, then one send() */
			while (s->next_ns <= t && s->olen + one <= sizeof(s->out)) {
				uint8_t *f = s->out + s->olen;
				tk_derp_build_packet_hdr(f, TK_DERP_FRAME_SEND_PACKET,
				    s->to->c.pub, (size_t)size);
				uint8_t *pl = f + TK_DERP_PACKET_HDR_LEN;
				memcpy(pl, &s->next_ns, 8); /* the scheduled send time */
				memset(pl + 8, 0x5a, (size_t)size - 8);
				s->olen += one;
				if (s->next_ns >= tstart && s->next_ns < tend)
					s->sent++;
				s->next_ns += gap;
			}
			if (s->olen) {
				ssize_t w = send(s->c.fd, s->out, s->olen, MSG_NOSIGNAL);
				if (w > 0) {
					memmove(s->out, s->out + w, s->olen - (size_t)w);
					s->olen -= (size_t)w;
				}
			}
		}
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, 0);
		if (n == 0) {
			struct timespec ts = { 0, 100000 }; /* 0.1 ms */
			nanosleep(&ts, NULL);
		}
		for (int i = 0; i < n; i++) {
			pr *p = evs[i].data.ptr;
			for (int k = 0; k < 8; k++) {
				uint8_t *q;
				size_t room;
				if (tk_derp_rx_space(&p->rx, 65536, &q, &room) != 0)
					break;
				ssize_t r = recv(p->c.fd, q, room, 0);
				if (r <= 0)
					break;
				tk_derp_rx_commit(&p->rx, (size_t)r);
				tk_derp_frame f;
				uint64_t tr = now_ns();
				while (tk_derp_rx_next(&p->rx, &f) == 0) {
					if (f.type != TK_DERP_FRAME_RECV_PACKET ||
					    f.len < TK_DERP_KEY_LEN + 8)
						continue;
					uint64_t ts;
					memcpy(&ts, f.payload + TK_DERP_KEY_LEN, 8);
					if (ts >= tstart && ts < tend) {
						delivered++;
						if (nlat < cap)
							lat[nlat++] = tr > ts ? tr - ts : 0;
					}
				}
			}
		}
	}
	for (int i = 0; i < pairs; i++)
		sent += ps[2 * i].sent;
	qsort(lat, nlat, sizeof(*lat), cmp_u64);
	double p50 = nlat ? lat[nlat / 2] / 1e3 : 0, p99 = nlat ? lat[nlat * 99 / 100] / 1e3 : 0;
	printf("{\"pairs\":%d,\"size\":%d,\"secs\":%d,\"rate\":%.0f,\"sent\":%llu,"
	    "\"delivered\":%llu,\"fraction\":%.4f,\"p50_us\":%.1f,\"p99_us\":%.1f}\n",
	    pairs, size, secs, rate, (unsigned long long)sent,
	    (unsigned long long)delivered, sent ? (double)delivered / (double)sent : 0,
	    p50, p99);
	for (int i = 0; i < pairs * 2; i++) {
		tk_derp_rx_fini(&ps[i].rx);
		tc_close(&ps[i].c);
	}
	free(ps);
	free(lat);
	return 0;
}

int
main(int argc, char **argv)
{
	int pairs = 4, size = 1200, secs = 5, window = 0, idle = 0, hold = 3;
	double rate = 0;
	if (argc < 2) {
		fprintf(stderr, "usage: tk_bench_derp PORT [--pairs P] [--size S] [--secs T]\n");
		return 2;
	}
	uint16_t port = (uint16_t)atoi(argv[1]);
	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--pairs"))
			pairs = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--size"))
			size = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--secs"))
			secs = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--window"))
			window = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--idle"))
			idle = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--hold"))
			hold = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "--rate"))
			rate = atof(argv[i + 1]);
	}
	if (rate > 0) {
		if (pairs < 1 || pairs > 512 || size < 16 || size > 65536 || secs < 1 ||
		    rate > 5e6) {
			fprintf(stderr, "tk_bench_derp: --rate needs --pairs 1..512 --size "
			    "16..65536 --secs >= 1 and a rate up to 5e6 packets/s\n");
			return 2;
		}
		tk_init();
		return paced(port, pairs, size, secs, rate);
	}
	if (idle > 0) {
		/* --idle N: N connected, handshaken, silent clients held for
		 * --hold seconds (the server's memory per idle client); one JSON
		 * line once they are all up */
		tk_init();
		if (idle > 100000 || hold < 1) {
			fprintf(stderr, "tk_bench_derp: --idle 1..100000 --hold >= 1\n");
			return 2;
		}
		tc *cs = calloc((size_t)idle, sizeof(*cs));
		for (int i = 0; i < idle; i++)
			if (tc_connect(&cs[i], port, NULL) != 0) {
				fprintf(stderr, "tk_bench_derp: idle client %d failed\n", i);
				return 1;
			}
		printf("{\"idle\": %d}\n", idle);
		fflush(stdout);
		sleep((unsigned)hold);
		for (int i = 0; i < idle; i++)
			close(cs[i].fd);
		free(cs);
		return 0;
	}
	if (pairs < 1 || pairs > 512 || size < 1 || size > 65536 || secs < 1) {
		fprintf(stderr, "tk_bench_derp: --pairs 1..512 --size 1..65536 --secs >= 1\n");
		return 2;
	}
	tk_init();
	peer *ps = calloc((size_t)pairs * 2, sizeof(*ps));
	int ep = epoll_create1(0);
	for (int i = 0; i < pairs * 2; i++) {
		if (tc_connect(&ps[i].c, port, NULL) != 0) {
			fprintf(stderr, "tk_bench_derp: connect %d failed\n", i);
			return 1;
		}
	}
	for (int i = 0; i < pairs; i++) {
		peer *s = &ps[2 * i], *r = &ps[2 * i + 1];
		s->sender = true;
		s->to = r;
		/* 64 frames back to back in one buffer */
		size_t one = TK_DERP_PACKET_HDR_LEN + (size_t)size;
		s->one = one;
		s->flen = 64 * one;
		s->frames = malloc(s->flen);
		for (int k = 0; k < 64; k++) {
			uint8_t *f = s->frames + (size_t)k * one;
			tk_derp_build_packet_hdr(f, TK_DERP_FRAME_SEND_PACKET, r->c.pub,
			    (size_t)size);
			memset(f + TK_DERP_PACKET_HDR_LEN, 0x5a, (size_t)size);
		}
	}
	for (int i = 0; i < pairs * 2; i++) {
		peer *p = &ps[i];
		/* bytes the handshake read past ServerInfo */
		consume(p, p->c.buf, p->c.len);
		fcntl(p->c.fd, F_SETFL, O_NONBLOCK);
		struct epoll_event ev = { .events = p->sender ? EPOLLOUT : EPOLLIN,
			.data.ptr = p };
		if (p->sender)
			ev.events |= EPOLLIN; /* drain keepalives */
		epoll_ctl(ep, EPOLL_CTL_ADD, p->c.fd, &ev);
	}
	static uint8_t rb[1 << 18];
	peer **partner = calloc((size_t)pairs * 2, sizeof(*partner));
	for (int i = 0; i < pairs; i++)
		partner[2 * i + 1] = &ps[2 * i];
	double t0 = now_s(), tstart = t0 + 1.0, tend = tstart + secs;
	uint64_t p0 = 0, b0 = 0;
	bool started = false;
	for (;;) {
		double t = now_s();
		if (!started && t >= tstart) {
			for (int i = 0; i < pairs * 2; i++) {
				p0 += ps[i].pkts;
				b0 += ps[i].bytes;
			}
			started = true;
		}
		if (t >= tend)
			break;
		struct epoll_event evs[64];
		int n = epoll_wait(ep, evs, 64, 100);
		for (int i = 0; i < n; i++) {
			peer *p = evs[i].data.ptr;
			if (evs[i].events & EPOLLIN) {
				for (int k = 0; k < 8; k++) {
					ssize_t r = recv(p->c.fd, rb, sizeof(rb), 0);
					if (r <= 0)
						break;
					if (!p->sender)
						consume(p, rb, (size_t)r);
				}
				peer *sd = p->sender ? NULL : partner[p - ps];
				if (sd && sd->paused && window > 0 &&
				    sd->sent_bytes / sd->one - p->pkts < (uint64_t)window) {
					struct epoll_event e2 = { .events = EPOLLIN | EPOLLOUT,
						.data.ptr = sd };
					epoll_ctl(ep, EPOLL_CTL_MOD, sd->c.fd, &e2);
					sd->paused = false;
				}
			}
			if ((evs[i].events & EPOLLOUT) && p->sender) {
				for (int k = 0; k < 8; k++) {
					size_t want = p->flen - p->off;
					if (window > 0) {
						uint64_t inflight = p->sent_bytes / p->one -
						    p->to->pkts;
						if (inflight >= (uint64_t)window) {
							struct epoll_event e2 = { .events = EPOLLIN,
								.data.ptr = p };
							epoll_ctl(ep, EPOLL_CTL_MOD, p->c.fd, &e2);
							p->paused = true;
							break;
						}
						/* up to the end of the window's frames */
						size_t room = (size_t)((uint64_t)window -
						    inflight) * p->one -
						    (size_t)(p->sent_bytes % p->one);
						if (room < want)
							want = room;
					}
					ssize_t w = send(p->c.fd, p->frames + p->off,
					    want, MSG_NOSIGNAL);
					if (w <= 0)
						break;
					p->off = (p->off + (size_t)w) % p->flen;
					p->sent_bytes += (uint64_t)w;
				}
			}
		}
	}
	uint64_t pk = 0, by = 0;
	for (int i = 0; i < pairs * 2; i++) {
		pk += ps[i].pkts;
		by += ps[i].bytes;
	}
	pk -= p0;
	by -= b0;
	printf("{\"pairs\":%d,\"size\":%d,\"secs\":%d,\"window\":%d,\"pps\":%.0f,"
	    "\"gbps\":%.3f}\n", pairs, size, secs, window, (double)pk / secs,
	    (double)by * 8 / secs / 1e9);
	for (int i = 0; i < pairs * 2; i++)
		tc_close(&ps[i].c);
	return 0;
}
