/*
 * The Linux TUN device as wgd's decrypted side (standalone WireGuard): what
 * the kernel routes into the device is encrypted to the peer its
 * destination routes to; what peers send is written back to the kernel.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"
#include "wgd_int.h"

struct wgdi_tun {
	wgd *w;
	int fd;
	uint64_t rx_pkts, tx_pkts, errors;
	uint8_t buf[WGD_MAX_DGRAM];
};

static void
on_tun(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	wgdi_tun *t = arg;

	(void)loop, (void)ev;
	for (int i = 0; i < 1024; i++) {
		ssize_t n = read(fd, t->buf, sizeof(t->buf));
		if (n <= 0)
			break;
		t->rx_pkts++;
		wgdi_outbound(t->w, t->buf, (size_t)n);
	}
	wgdi_flush_tx(t->w);
}

void
wgdi_tun_deliver(wgdi_tun *t, const uint8_t *p, size_t n)
{
	if (write(t->fd, p, n) < 0)
		t->errors++;
	else
		t->tx_pkts++;
}

void
wgdi_tun_flush(wgdi_tun *t)
{
	(void)t; /* every packet is written as it comes */
}

void
wgdi_tun_counters(const wgdi_tun *t, uint64_t *rx_pkts, uint64_t *tx_pkts,
    uint64_t *errors)
{
	*rx_pkts = t->rx_pkts;
	*tx_pkts = t->tx_pkts;
	*errors = t->errors;
}

int
wgdi_tun_open(wgd *w, const char *name, int mtu, wgdi_tun **out)
{
	struct ifreq ifr;
	wgdi_tun *t;
	int fd, rv;

	if (strlen(name) == 0 || strlen(name) >= IFNAMSIZ || strchr(name, '/'))
		return TK_EINVAL;
	if ((t = tk_calloc(1, sizeof(*t))) == NULL)
		return TK_ENOMEM;
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		rv = tk_err_sys(errno);
		tk_free(t);
		return rv;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr) != 0) {
		rv = tk_err_sys(errno);
		close(fd);
		tk_free(t);
		return rv;
	}
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s >= 0) {
		ifr.ifr_mtu = mtu;
		if (ioctl(s, SIOCSIFMTU, &ifr) != 0)
			TK_WARN(WGD_SUBSYS, "setting MTU %d on %s: %s", mtu, name,
			    strerror(errno));
		close(s);
	}
	t->w = w;
	t->fd = fd;
	if ((rv = tk_loop_fd_add(w->loop, fd, TK_LOOP_READ, on_tun, t)) != 0) {
		close(fd);
		tk_free(t);
		return rv;
	}
	*out = t;
	return 0;
}

void
wgdi_tun_free(wgd *w, wgdi_tun *t)
{
	if (t == NULL)
		return;
	tk_loop_fd_del(w->loop, t->fd);
	close(t->fd);
	tk_free(t);
}
