/*
 * The TUN device: open with IFF_VNET_HDR and TUNSETOFFLOAD (falling back to
 * plain TUN), read frames and split them (gso.c), queue writes in the
 * coalescer (gro.c) and write its frames with writev().
 *
 * Read buffer layout: [headroom][packet up to 65535 + 1][tailroom], the frame
 * read so that the packet starts at TK_TUN_HEADROOM (the vnet header sits in
 * the headroom), so plain packets go to the callback in place with their
 * slack; split segments are built in a separate scratch buffer.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <linux/if_tun.h>

#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"

#include "tun_int.h"

#define SUBSYS "tun"

/* One byte more than a packet may be, so an oversized frame shows. */
#define RBUF_DATA (TK_TUN_MAX_PKT + 1)
#define RBUF_SIZE (TK_TUN_HEADROOM + RBUF_DATA + TK_TUN_TAILROOM)

/* wireguard-go tun_linux.go asks for the same set (no TSO_ECN, no USO). */
#define OFFLOADS (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)

struct tk_tun {
	int t_fd;
	bool t_vnet; /* frames carry a virtio_net_hdr, offloads on */
	char t_name[IFNAMSIZ];
	uint8_t *t_rbuf;
	uint8_t *t_scratch; /* TK_TUN_SPLIT_SCRATCH */
	tk_tun_gro *t_gro;  /* NULL without offload */
	tk_tun_stats t_st;
	tk_ratelimit t_rl; /* bad-frame log lines */
};

/* Opens /dev/net/tun and attaches `name`; with vnet also the offloads. */
static int
attach(tk_tun *t, const char *name, bool vnet)
{
	struct ifreq ifr;
	int fd, e;

	if ((fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC)) < 0)
		return tk_err_sys(errno);
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = (short)(IFF_TUN | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0));
	if (name != NULL)
		memcpy(ifr.ifr_name, name, strlen(name));
	if (ioctl(fd, TUNSETIFF, &ifr) != 0)
		goto fail;
	if (vnet) {
		int sz = TK_TUN_VNET_HDR_LEN;

		/* A persistent device may have been left with another size. */
		if (ioctl(fd, TUNSETVNETHDRSZ, &sz) != 0 ||
		    ioctl(fd, TUNSETOFFLOAD, (unsigned long)OFFLOADS) != 0)
			goto fail;
	}
	memcpy(t->t_name, ifr.ifr_name, IFNAMSIZ);
	t->t_name[IFNAMSIZ - 1] = '\0';
	t->t_fd = fd;
	t->t_vnet = vnet;
	return 0;
fail:
	e = errno;
	close(fd);
	return tk_err_sys(e);
}

static int
set_mtu(const char *name, int mtu)
{
	struct ifreq ifr;
	int s, rv = 0;

	if ((s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return tk_err_sys(errno);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_mtu = mtu;
	if (ioctl(s, SIOCSIFMTU, &ifr) != 0)
		rv = tk_err_sys(errno);
	close(s);
	return rv;
}

int
tk_tun_open(tk_tun **out, const char *name, int mtu, unsigned flags)
{
	tk_tun *t;
	int rv;

	if (out == NULL) {
		TK_ERR(SUBSYS, "tk_tun_open: out is NULL");
		return TK_EINVAL;
	}
	if (name != NULL && strlen(name) >= IFNAMSIZ) {
		TK_ERR(SUBSYS, "interface name '%s' is too long (at most %d bytes)",
		    name, IFNAMSIZ - 1);
		return TK_EINVAL;
	}
	if (mtu != 0 && (mtu < 68 || mtu > TK_TUN_MAX_PKT)) {
		TK_ERR(SUBSYS, "MTU %d out of range (68..65535, or 0 to keep)", mtu);
		return TK_EINVAL;
	}
	if ((flags & ~TK_TUN_OFFLOAD) != 0) {
		TK_ERR(SUBSYS, "unknown flags 0x%x (accepted: TK_TUN_OFFLOAD)", flags);
		return TK_EINVAL;
	}
	if ((t = tk_calloc(1, sizeof(*t))) == NULL)
		return TK_ENOMEM;
	t->t_fd = -1;
	tk_ratelimit_init(&t->t_rl, 5, 1);
	if ((t->t_rbuf = tk_malloc(RBUF_SIZE)) == NULL ||
	    (t->t_scratch = tk_malloc(TK_TUN_SPLIT_SCRATCH)) == NULL) {
		rv = TK_ENOMEM;
		goto fail;
	}
	rv = TK_ENOTSUP;
	if (flags & TK_TUN_OFFLOAD) {
		if ((rv = tk_tun_gro_new(&t->t_gro)) != 0)
			goto fail;
		if ((rv = attach(t, name, true)) != 0) {
			TK_INFO(SUBSYS, "%s: no virtio-net offloads (%s); plain TUN",
			    name != NULL && *name ? name : "tun", tk_strerror(rv));
			tk_tun_gro_free(t->t_gro);
			t->t_gro = NULL;
		}
	}
	if (rv != 0 && (rv = attach(t, name, false)) != 0)
		goto fail;
	if (mtu != 0 && (rv = set_mtu(t->t_name, mtu)) != 0) {
		TK_ERR(SUBSYS, "%s: setting MTU %d: %s", t->t_name, mtu,
		    tk_strerror(rv));
		goto fail;
	}
	*out = t;
	return 0;
fail:
	tk_tun_free(t);
	return rv;
}

void
tk_tun_free(tk_tun *t)
{
	if (t == NULL)
		return;
	if (t->t_fd >= 0)
		close(t->t_fd);
	tk_tun_gro_free(t->t_gro);
	tk_free(t->t_scratch);
	tk_free(t->t_rbuf);
	tk_free(t);
}

int
tk_tun_fd(const tk_tun *t)
{
	return t->t_fd;
}

const char *
tk_tun_name(const tk_tun *t)
{
	return t->t_name;
}

bool
tk_tun_offloading(const tk_tun *t)
{
	return t->t_vnet;
}

int
tk_tun_read(tk_tun *t, unsigned max_frames, tk_tun_pkt_fn cb, void *arg,
    unsigned *npkts)
{
	return tk_tun_read_into(t, max_frames, NULL, cb, arg, npkts);
}

int
tk_tun_read_into(tk_tun *t, unsigned max_frames, tk_tun_buf_fn buf,
    tk_tun_pkt_fn cb, void *arg, unsigned *npkts)
{
	size_t vlen = t->t_vnet ? TK_TUN_VNET_HDR_LEN : 0;
	uint8_t *frame = t->t_rbuf + TK_TUN_HEADROOM - vlen;
	unsigned total = 0, i = 0;

	if (cb == NULL || npkts == NULL)
		return TK_EINVAL;
	while (i < max_frames) {
		ssize_t r = read(t->t_fd, frame, vlen + RBUF_DATA);
		unsigned k;
		bool gso;

		if (r < 0) {
			int e = errno;

			if (e == EINTR)
				continue;
			if (e == EAGAIN || e == EWOULDBLOCK)
				break;
			t->t_st.ts_rx_errors++;
			if (total == 0)
				return tk_err_sys(e);
			break;
		}
		i++;
		t->t_st.ts_rx_frames++;
		if ((size_t)r <= vlen || (size_t)r - vlen > TK_TUN_MAX_PKT) {
			t->t_st.ts_rx_bad++;
			TK_LOG_RL(&t->t_rl, NULL, TK_LOG_WARN, SUBSYS,
			    "%s: dropped a frame of %zd bytes", t->t_name, r);
			continue;
		}
		if (!t->t_vnet) {
			cb(arg, frame, (size_t)r);
			total++;
			continue;
		}
		if (tki_gso_split(frame, frame, (size_t)r, t->t_scratch, buf, cb,
			arg, &k, &gso) != 0) {
			t->t_st.ts_rx_bad++;
			TK_LOG_RL(&t->t_rl, NULL, TK_LOG_WARN, SUBSYS,
			    "%s: dropped a malformed frame (%zd bytes, gso_type %u)",
			    t->t_name, r, frame[1]);
			continue;
		}
		if (gso)
			t->t_st.ts_rx_gso++;
		total += k;
	}
	t->t_st.ts_rx_packets += total;
	*npkts = total;
	return 0;
}

static int
writev_frame(tk_tun *t, const struct iovec *iov, int niov)
{
	for (;;) {
		if (writev(t->t_fd, iov, niov) >= 0) {
			t->t_st.ts_tx_frames++;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno == EBADF || errno == EBADFD)
			return errno == EBADF ? TK_ECLOSED : tk_err_sys(errno);
		/* EIO while the link is down, EINVAL for a frame refused. */
		t->t_st.ts_tx_errors++;
		return 0;
	}
}

int
tk_tun_flush(tk_tun *t)
{
	struct iovec iov[TK_TUN_GRO_MAX_IOV];
	unsigned nf, niov;
	int rv = 0;

	if (t == NULL)
		return TK_EINVAL;
	if (t->t_gro == NULL)
		return 0;
	nf = tk_tun_gro_frames(t->t_gro);
	for (unsigned i = 0; i < nf && rv == 0; i++) {
		if (TK_NEVER(tk_tun_gro_frame_iov(t->t_gro, i, iov,
			TK_TUN_GRO_MAX_IOV, &niov) != 0))
			continue;
		rv = writev_frame(t, iov, (int)niov);
	}
	tk_tun_gro_reset(t->t_gro);
	return rv;
}

int
tk_tun_write(tk_tun *t, const uint8_t *pkt, size_t n)
{
	int rv;

	if (t == NULL || (pkt == NULL && n != 0))
		return TK_EINVAL;
	if (n == 0 || n > TK_TUN_MAX_PKT) {
		t->t_st.ts_tx_dropped++;
		return 0;
	}
	t->t_st.ts_tx_packets++;
	if (t->t_gro == NULL) {
		struct iovec iov = { (void *)(uintptr_t)pkt, n };

		return writev_frame(t, &iov, 1);
	}
	rv = tk_tun_gro_add(t->t_gro, pkt, n);
	if (rv == TK_EMSGSIZE) { /* batch full: write it out first */
		if ((rv = tk_tun_flush(t)) != 0)
			return rv;
		rv = tk_tun_gro_add(t->t_gro, pkt, n);
	}
	if (TK_NEVER(rv != 0)) {
		t->t_st.ts_tx_packets--;
		t->t_st.ts_tx_dropped++;
	}
	return 0;
}

void
tk_tun_stats_get(const tk_tun *t, tk_tun_stats *st)
{
	*st = t->t_st;
	if (t->t_gro != NULL) {
		tk_tun_gro_stats gs;

		tk_tun_gro_stats_get(t->t_gro, &gs);
		st->ts_tx_coalesced = gs.gs_merged;
		st->ts_tx_bad = gs.gs_bad;
	}
}
