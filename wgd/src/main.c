/*
 * wgd standalone mode: a userspace WireGuard interface driven by wg(8).
 *
 *   wgd [--uapi-dir DIR] [--mtu N] [--batch N] [-v] IFNAME
 *
 * Creates the Linux TUN device IFNAME, serves the wg(8) UAPI on
 * DIR/IFNAME.sock (default /var/run/wireguard, like wireguard-go), and
 * moves packets TUN <-> tk_wg device <-> one dual-stack UDP socket with
 * recvmmsg/sendmmsg.  Stays in the foreground; SIGINT/SIGTERM stop it and
 * remove the socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "tk/core.h"
#include "tk/err.h"
#include "tk/log.h"
#include "tk/loop.h"
#include "tk/mem.h"
#include "tk/wg.h"
#include "tk/wg_uapi.h"

#define SUBSYS	  "wgd"
#define MAX_BATCH 128
#define MAX_DGRAM 65535
#define MAX_CLIENTS 16

typedef struct client {
	int fd;
	char *buf;
	size_t len, cap;
	size_t scanned; /* bytes already searched for the end of a request */
} client;

typedef struct wgd {
	tk_loop *loop;
	tk_loop_timer *timer;
	uint64_t timer_at; /* deadline the timer is armed for; 0: none */
	tk_wg_device *dev;
	tk_wg_uapi_iface ifc;
	char ifname[IFNAMSIZ];
	char sock_path[108];
	int tun, udp, uapi, sig;
	int udp6; /* 1: the UDP socket is AF_INET6 dual-stack */
	int mtu, batch;
	client clients[MAX_CLIENTS];
	/* outbound datagram batch */
	struct mmsghdr tx_msg[MAX_BATCH];
	struct iovec tx_iov[MAX_BATCH];
	struct sockaddr_in6 tx_addr[MAX_BATCH];
	uint8_t *tx_buf[MAX_BATCH];
	unsigned ntx;
	/* inbound */
	struct mmsghdr rx_msg[MAX_BATCH];
	struct iovec rx_iov[MAX_BATCH];
	struct sockaddr_in6 rx_addr[MAX_BATCH];
	uint8_t *rx_buf[MAX_BATCH];
	uint64_t tx_errors, tun_errors;
} wgd;

static void
flush_tx(wgd *w)
{
	unsigned off = 0;

	while (off < w->ntx) {
		int k = sendmmsg(w->udp, w->tx_msg + off, w->ntx - off, 0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			w->tx_errors++; /* drop this one, go on */
			off++;
			continue;
		}
		off += (unsigned)k;
	}
	w->ntx = 0;
}

static void
cb_send(void *arg, tk_wg_peer *peer, const tk_wg_endpoint *ep,
    const uint8_t *p, size_t n)
{
	wgd *w = arg;
	struct sockaddr_in6 *sa;

	(void)peer;
	if (ep->ep_family == 0 || w->udp < 0 || n > MAX_DGRAM)
		return; /* no endpoint known yet: nothing to send to */
	if (w->ntx == (unsigned)w->batch)
		flush_tx(w);
	sa = &w->tx_addr[w->ntx];
	memset(sa, 0, sizeof(*sa));
	if (ep->ep_family == 4 && !w->udp6) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, ep->ep_addr, 4);
		s4->sin_port = htons(ep->ep_port);
		w->tx_msg[w->ntx].msg_hdr.msg_namelen = sizeof(*s4);
	} else {
		sa->sin6_family = AF_INET6;
		if (ep->ep_family == 4) {
			sa->sin6_addr.s6_addr[10] = 0xff;
			sa->sin6_addr.s6_addr[11] = 0xff;
			memcpy(&sa->sin6_addr.s6_addr[12], ep->ep_addr, 4);
		} else {
			if (!w->udp6)
				return;
			memcpy(&sa->sin6_addr, ep->ep_addr, 16);
		}
		sa->sin6_port = htons(ep->ep_port);
		w->tx_msg[w->ntx].msg_hdr.msg_namelen = sizeof(*sa);
	}
	memcpy(w->tx_buf[w->ntx], p, n);
	w->tx_iov[w->ntx].iov_len = n;
	w->ntx++;
}

static void
cb_deliver(void *arg, tk_wg_peer *peer, uint8_t *p, size_t n)
{
	wgd *w = arg;

	(void)peer;
	if (write(w->tun, p, n) < 0)
		w->tun_errors++;
}

static void
sockaddr_to_ep(const struct sockaddr_in6 *sa, tk_wg_endpoint *ep)
{
	memset(ep, 0, sizeof(*ep));
	if (sa->sin6_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		ep->ep_family = 4;
		memcpy(ep->ep_addr, &s4->sin_addr, 4);
		ep->ep_port = ntohs(s4->sin_port);
		return;
	}
	if (IN6_IS_ADDR_V4MAPPED(&sa->sin6_addr)) {
		ep->ep_family = 4;
		memcpy(ep->ep_addr, &sa->sin6_addr.s6_addr[12], 4);
	} else {
		ep->ep_family = 6;
		memcpy(ep->ep_addr, &sa->sin6_addr, 16);
	}
	ep->ep_port = ntohs(sa->sin6_port);
}

static void
on_udp(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	wgd *w = arg;

	(void)loop, (void)ev;
	for (int round = 0; round < 8; round++) {
		for (int i = 0; i < w->batch; i++) {
			w->rx_iov[i].iov_len = MAX_DGRAM;
			w->rx_msg[i].msg_hdr.msg_namelen = sizeof(w->rx_addr[i]);
		}
		int k = recvmmsg(fd, w->rx_msg, (unsigned)w->batch, MSG_DONTWAIT, NULL);
		if (k <= 0)
			break;
		for (int i = 0; i < k; i++) {
			tk_wg_endpoint src;
			sockaddr_to_ep(&w->rx_addr[i], &src);
			tk_wg_device_recv(w->dev, &src, w->rx_buf[i], w->rx_msg[i].msg_len);
		}
		flush_tx(w);
		if (k < w->batch)
			break;
	}
	flush_tx(w);
}

static void
on_tun(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	wgd *w = arg;
	uint8_t buf[MAX_DGRAM];

	(void)loop, (void)ev;
	for (int i = 0; i < 1024; i++) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n <= 0)
			break;
		tk_wg_device_send(w->dev, buf, (size_t)n);
	}
	flush_tx(w);
}

static int
open_udp(wgd *w, uint16_t port)
{
	struct sockaddr_in6 sa6 = { 0 };
	int fd, off = 0, on = 1;

	fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
		sa6.sin6_family = AF_INET6;
		sa6.sin6_port = htons(port);
		if (bind(fd, (struct sockaddr *)&sa6, sizeof(sa6)) != 0) {
			close(fd);
			fd = -1;
		} else {
			w->udp6 = 1;
		}
	}
	if (fd < 0) { /* no IPv6 here: IPv4 only */
		struct sockaddr_in sa = { 0 };
		fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return tk_err_sys(errno);
		sa.sin_family = AF_INET;
		sa.sin_port = htons(port);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			int e = errno;
			close(fd);
			return tk_err_sys(e);
		}
		w->udp6 = 0;
	}
	(void)on;
	int sz = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz));
	if (w->ifc.fwmark)
		setsockopt(fd, SOL_SOCKET, SO_MARK, &w->ifc.fwmark, sizeof(w->ifc.fwmark));
	struct sockaddr_in6 got;
	socklen_t gl = sizeof(got);
	getsockname(fd, (struct sockaddr *)&got, &gl);
	w->ifc.listen_port = ntohs(got.sin6_port); /* same offset in sockaddr_in */
	if (w->udp >= 0) {
		tk_loop_fd_del(w->loop, w->udp);
		close(w->udp);
	}
	w->udp = fd;
	return tk_loop_fd_add(w->loop, fd, TK_LOOP_READ, on_udp, w);
}

static int
open_tun(wgd *w)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return tk_err_sys(errno);
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", w->ifname);
	if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
		int e = errno;
		close(fd);
		return tk_err_sys(e);
	}
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s >= 0) {
		ifr.ifr_mtu = w->mtu;
		if (ioctl(s, SIOCSIFMTU, &ifr) != 0)
			TK_WARN(SUBSYS, "setting MTU %d on %s: %s", w->mtu, w->ifname,
			    strerror(errno));
		close(s);
	}
	w->tun = fd;
	return tk_loop_fd_add(w->loop, fd, TK_LOOP_READ, on_tun, w);
}

/* --- UAPI ---------------------------------------------------------------- */

static void
client_close(wgd *w, client *c)
{
	tk_loop_fd_del(w->loop, c->fd);
	close(c->fd);
	tk_free(c->buf);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static void
write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return;
		p += k, n -= (size_t)k;
	}
}

static void
on_client(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	wgd *w = arg;
	client *c = NULL;

	(void)loop, (void)ev;
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (w->clients[i].fd == fd)
			c = &w->clients[i];
	if (c == NULL)
		return;
	if (c->cap - c->len < 4096) {
		size_t nc = c->cap ? c->cap * 2 : 8192;
		if (nc > TK_WG_UAPI_MAX_REQUEST + 8192) {
			write_all(fd, "errno=90\n\n", 10); /* EMSGSIZE */
			client_close(w, c);
			return;
		}
		char *nb = tk_malloc(nc);
		if (nb == NULL) {
			client_close(w, c);
			return;
		}
		if (c->len)
			memcpy(nb, c->buf, c->len);
		tk_free(c->buf);
		c->buf = nb;
		c->cap = nc;
	}
	ssize_t k = read(fd, c->buf + c->len, c->cap - c->len);
	if (k <= 0) {
		if (k < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		client_close(w, c);
		return;
	}
	c->len += (size_t)k;
	for (;;) {
		char *end = NULL;
		/* a request ends with an empty line; resume where the last
		 * read's search stopped */
		for (size_t i = c->scanned; i + 1 < c->len; i++)
			if (c->buf[i] == '\n' && c->buf[i + 1] == '\n') {
				end = c->buf + i + 2;
				break;
			}
		if (c->len >= 1 && c->buf[0] == '\n')
			end = c->buf + 1; /* stray empty line */
		if (end == NULL) {
			c->scanned = c->len ? c->len - 1 : 0;
			return;
		}
		c->scanned = 0;
		size_t rn = (size_t)(end - c->buf), rl;
		char *resp, why[256];
		int e = tk_wg_uapi_handle(w->dev, &w->ifc, c->buf, rn, &resp, &rl,
		    why, sizeof(why));
		if (e < 0) {
			client_close(w, c);
			return;
		}
		if (e != 0)
			TK_WARN(SUBSYS, "uapi: errno=%d: %s", e, why);
		if (w->ifc.listen_port_changed) {
			w->ifc.listen_port_changed = 0;
			int rv = open_udp(w, w->ifc.listen_port);
			if (rv != 0)
				TK_ERR(SUBSYS, "listen port %u: %s", w->ifc.listen_port,
				    tk_strerror(rv));
		}
		if (w->ifc.fwmark_changed && w->udp >= 0) {
			w->ifc.fwmark_changed = 0;
			setsockopt(w->udp, SOL_SOCKET, SO_MARK, &w->ifc.fwmark,
			    sizeof(w->ifc.fwmark));
		}
		write_all(fd, resp, rl);
		tk_free(resp);
		memmove(c->buf, end, c->len - rn);
		c->len -= rn;
		flush_tx(w); /* a set may have started handshakes */
	}
}

static void
on_accept(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	wgd *w = arg;

	(void)ev;
	int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (c < 0)
		return;
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (w->clients[i].fd < 0) {
			w->clients[i].fd = c;
			tk_loop_fd_add(loop, c, TK_LOOP_READ, on_client, w);
			return;
		}
	}
	close(c); /* too many at once */
}

static int
open_uapi(wgd *w, const char *dir)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	mkdir(dir, 0755);
	if ((size_t)snprintf(w->sock_path, sizeof(w->sock_path), "%s/%s.sock", dir,
		w->ifname) >= sizeof(w->sock_path) ||
	    strlen(w->sock_path) >= sizeof(sa.sun_path))
		return TK_EINVAL;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", w->sock_path);
	/* a socket nobody answers on is stale: replace it */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		return TK_EEXIST;
	}
	if (fd >= 0)
		close(fd);
	unlink(w->sock_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return tk_err_sys(errno);
	mode_t old = umask(0077);
	int rv = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rv != 0 || listen(fd, 16) != 0) {
		int e = errno;
		close(fd);
		return tk_err_sys(e);
	}
	w->uapi = fd;
	return tk_loop_fd_add(w->loop, fd, TK_LOOP_READ, on_accept, w);
}

/* --- timers and signals -------------------------------------------------- */

static void
on_timer(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	wgd *w = arg;

	(void)loop, (void)t;
	w->timer_at = 0;
	tk_wg_device_tick(w->dev);
	flush_tx(w);
}

static void
before_sleep(tk_loop *loop, void *arg)
{
	wgd *w = arg;
	uint64_t next = tk_wg_device_next_deadline(w->dev);

	flush_tx(w);
	/* re-arm only when the deadline moved: this runs once per loop
	 * iteration, i.e. per packet batch */
	if (next == w->timer_at)
		return;
	w->timer_at = next == UINT64_MAX ? 0 : next;
	if (next == UINT64_MAX) {
		tk_loop_timer_cancel(w->timer);
		return;
	}
	uint64_t now = tk_loop_now(loop);
	tk_loop_timer_arm(w->timer, next > now ? next - now : 1, 0);
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
	fprintf(f,
	    "usage: wgd [--uapi-dir DIR] [--mtu N] [--batch N] [-v] IFNAME\n"
	    "  Runs a userspace WireGuard interface: creates TUN device IFNAME and\n"
	    "  serves the wg(8) API on DIR/IFNAME.sock (default /var/run/wireguard).\n"
	    "  Configure it with wg(8): wg set IFNAME private-key FILE peer ...\n"
	    "  --mtu N    TUN MTU, 576..65535 (default 1420)\n"
	    "  --batch N  datagrams per recvmmsg/sendmmsg, 1..%d (default 64)\n",
	    MAX_BATCH);
}

int
main(int argc, char **argv)
{
	static wgd w;
	const char *dir = "/var/run/wireguard";
	int rv, i;

	w.tun = w.udp = w.uapi = w.sig = -1;
	w.mtu = 1420;
	w.batch = 64;
	for (i = 0; i < MAX_CLIENTS; i++)
		w.clients[i].fd = -1;
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (strcmp(argv[i], "--uapi-dir") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "--mtu") == 0 && i + 1 < argc)
			w.mtu = atoi(argv[++i]);
		else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
			w.batch = atoi(argv[++i]);
		else if (strcmp(argv[i], "-v") == 0)
			tk_log_set_level(TK_LOG_DEBUG);
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "wgd: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i + 1 != argc || strlen(argv[i]) == 0 || strlen(argv[i]) >= IFNAMSIZ ||
	    strchr(argv[i], '/') || w.mtu < 576 || w.mtu > 65535 || w.batch < 1 ||
	    w.batch > MAX_BATCH) {
		fprintf(stderr, "wgd: need one interface name (1..%d characters, no '/'), "
		    "MTU 576..65535, batch 1..%d\n", IFNAMSIZ - 1, MAX_BATCH);
		usage(stderr);
		return 2;
	}
	snprintf(w.ifname, sizeof(w.ifname), "%s", argv[i]);
	if ((rv = tk_init()) != 0) {
		fprintf(stderr, "wgd: init: %s\n", tk_strerror(rv));
		return 1;
	}
	for (i = 0; i < w.batch; i++) {
		w.tx_buf[i] = tk_malloc(MAX_DGRAM);
		w.rx_buf[i] = tk_malloc(MAX_DGRAM);
		if (!w.tx_buf[i] || !w.rx_buf[i]) {
			fprintf(stderr, "wgd: out of memory\n");
			return 1;
		}
		w.tx_iov[i].iov_base = w.tx_buf[i];
		w.tx_msg[i].msg_hdr.msg_iov = &w.tx_iov[i];
		w.tx_msg[i].msg_hdr.msg_iovlen = 1;
		w.tx_msg[i].msg_hdr.msg_name = &w.tx_addr[i];
		w.rx_iov[i].iov_base = w.rx_buf[i];
		w.rx_msg[i].msg_hdr.msg_iov = &w.rx_iov[i];
		w.rx_msg[i].msg_hdr.msg_iovlen = 1;
		w.rx_msg[i].msg_hdr.msg_name = &w.rx_addr[i];
	}
	tk_wg_device_config cfg = { 0 };
	cfg.cb.arg = &w;
	cfg.cb.send_datagram = cb_send;
	cfg.cb.deliver = cb_deliver;
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((rv = tk_loop_new(&w.loop, NULL)) != 0 ||
	    (rv = tk_loop_timer_new(w.loop, &w.timer, on_timer, &w)) != 0 ||
	    (rv = tk_wg_device_new(&w.dev, &cfg)) != 0) {
		fprintf(stderr, "wgd: %s\n", tk_strerror(rv));
		return 1;
	}
	w.sig = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
	tk_loop_fd_add(w.loop, w.sig, TK_LOOP_READ, on_signal, &w);
	if ((rv = open_tun(&w)) != 0) {
		fprintf(stderr, "wgd: creating TUN device %s: %s\n", w.ifname,
		    tk_strerror(rv));
		return 1;
	}
	if ((rv = open_udp(&w, 0)) != 0) {
		fprintf(stderr, "wgd: UDP socket: %s\n", tk_strerror(rv));
		return 1;
	}
	if ((rv = open_uapi(&w, dir)) != 0) {
		fprintf(stderr, "wgd: UAPI socket %s: %s\n", w.sock_path,
		    rv == TK_EEXIST ? "another process serves it" : tk_strerror(rv));
		return 1;
	}
	tk_loop_set_before_sleep(w.loop, before_sleep, &w);
	TK_INFO(SUBSYS, "%s up: UAPI %s, UDP port %u", w.ifname, w.sock_path,
	    w.ifc.listen_port);
	rv = tk_loop_run(w.loop);
	unlink(w.sock_path);
	for (i = 0; i < MAX_CLIENTS; i++)
		if (w.clients[i].fd >= 0)
			client_close(&w, &w.clients[i]);
	tk_wg_device_free(w.dev);
	tk_loop_timer_free(w.timer);
	tk_loop_free(w.loop);
	close(w.tun);
	close(w.udp);
	close(w.uapi);
	close(w.sig);
	for (i = 0; i < w.batch; i++) {
		tk_free(w.tx_buf[i]);
		tk_free(w.rx_buf[i]);
	}
	return rv == 0 ? 0 : 1;
}
