/*
 * The Linux TUN device as wgd's decrypted side (standalone WireGuard): what
 * the kernel routes into the device is encrypted to the peer its
 * destination routes to; what peers send is written back to the kernel.
 * libs/tun does the device with virtio-net offloads: TCP super-packets are
 * split on read and received TCP segments coalesced on write, so the
 * kernel and wgd trade far fewer syscalls per byte.
 */
#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"
#include "tk/tun.h"
#include "wgd_int.h"

struct wgdi_tun {
	wgd *w;
	tk_tun *tun;
};

static void
on_packet(void *arg, uint8_t *p, size_t n)
{
	wgdi_tun *t = arg;

	wgdi_outbound(t->w, p, n);
}

/* Segments of TCP super-packets are built in wgd's next transmit slot, so
 * they are encrypted and sent from where they were split to. */
static uint8_t *
tx_slot(void *arg)
{
	wgdi_tun *t = arg;

	return wgdi_tx_slot(t->w);
}

_Static_assert(TK_TUN_HEADROOM == TK_PKT_HEADROOM,
    "a TUN segment starts where a tk_pkt's payload does");

static void
on_tun(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	wgdi_tun *t = arg;
	unsigned n;

	(void)loop, (void)fd, (void)ev;
	tk_tun_read_into(t->tun, 64, tx_slot, on_packet, t, &n);
	wgdi_flush_tx(t->w);
}

void
wgdi_tun_deliver(wgdi_tun *t, const uint8_t *p, size_t n)
{
	tk_tun_write(t->tun, p, n);
}

void
wgdi_tun_flush(wgdi_tun *t)
{
	tk_tun_flush(t->tun);
}

void
wgdi_tun_counters(const wgdi_tun *t, uint64_t *rx_pkts, uint64_t *tx_pkts,
    uint64_t *errors)
{
	tk_tun_stats st;

	tk_tun_stats_get(t->tun, &st);
	*rx_pkts = st.ts_rx_packets;
	*tx_pkts = st.ts_tx_packets;
	*errors = st.ts_rx_errors + st.ts_tx_errors + st.ts_rx_bad;
}

int
wgdi_tun_open(wgd *w, const char *name, int mtu, wgdi_tun **out)
{
	wgdi_tun *t;
	int rv;

	if ((t = tk_calloc(1, sizeof(*t))) == NULL)
		return TK_ENOMEM;
	t->w = w;
	if ((rv = tk_tun_open(&t->tun, name, mtu, TK_TUN_OFFLOAD)) != 0) {
		tk_free(t);
		return rv;
	}
	if ((rv = tk_loop_fd_add(w->loop, tk_tun_fd(t->tun), TK_LOOP_READ, on_tun,
		 t)) != 0) {
		tk_tun_free(t->tun);
		tk_free(t);
		return rv;
	}
	TK_INFO(WGD_SUBSYS, "TUN %s: offloads %s", name,
	    tk_tun_offloading(t->tun) ? "on (TSO read, GRO write)" : "refused");
	*out = t;
	return 0;
}

void
wgdi_tun_free(wgd *w, wgdi_tun *t)
{
	if (t == NULL)
		return;
	tk_loop_fd_del(w->loop, tk_tun_fd(t->tun));
	tk_tun_flush(t->tun);
	tk_tun_free(t->tun);
	tk_free(t);
}
