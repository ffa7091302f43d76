/*
 * wgd internals shared by the daemon's files: the instance (wgd.c), the
 * UAPI server (uapi_srv.c), the TUN side (tunio.c) and the buses and state
 * (bus.c).  Everything runs on the instance's loop thread.
 */
#ifndef WGD_INT_H
#define WGD_INT_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "tk/bus_rpc.h"
#include "tk/bus_status.h"
#include "tk/loop.h"
#include "tk/pkt.h"
#include "tk/wg.h"
#include "tk/wg_uapi.h"
#include "wgd/wgd.h"

#define WGD_SUBSYS	"wgd"
#define WGD_MAX_BATCH	128
#define WGD_MAX_DGRAM	65535

typedef struct wgdi_uapi wgdi_uapi;
typedef struct wgdi_tun wgdi_tun;
typedef struct wgdi_bus wgdi_bus;
typedef struct wgdi_derp wgdi_derp;

struct wgd {
	/* configuration (strings owned) */
	char *tun_name, *uapi_dir, *uapi_name, *state_dir;
	char *pub_url, *rpc_url, *ctrld_pub_url, *ctrld_rpc_url, *pkt_url,
	    *derp_url;
	const tk_bus_tls *tls;
	int mtu, batch;

	tk_loop *loop;
	pthread_t thread;
	bool running;
	tk_loop_timer *timer;
	uint64_t timer_at; /* deadline the timer is armed for; 0: none */
	uint64_t started_ns;

	tk_wg_device *dev;
	tk_wg_uapi_iface ifc;
	int udp, udp6; /* udp6: the socket is AF_INET6 dual-stack */

	wgdi_uapi *uapi;
	wgdi_tun *tun;
	wgdi_bus *bus;
	wgdi_derp *derp;

	/*
	 * Outbound datagram batch.  Slot ntx is where the next outbound IP
	 * packet is put (TUN segments are built there by tk_tun_read_into,
	 * bus packets copied there) and encrypted in place
	 * (tk_wg_device_send_pkt); its datagram is then sent from there.
	 * Other datagrams (handshakes, staged packets) are copied into it.
	 */
	struct mmsghdr tx_msg[WGD_MAX_BATCH];
	struct iovec tx_iov[WGD_MAX_BATCH];
	struct sockaddr_in6 tx_addr[WGD_MAX_BATCH];
	tk_pkt *tx_pkt[WGD_MAX_BATCH];
	unsigned ntx;
	/* inbound */
	struct mmsghdr rx_msg[WGD_MAX_BATCH];
	struct iovec rx_iov[WGD_MAX_BATCH];
	struct sockaddr_in6 rx_addr[WGD_MAX_BATCH];
	uint8_t *rx_buf[WGD_MAX_BATCH];

	char rx_ctl[WGD_MAX_BATCH][64]; /* UDP_GRO cmsg */
	/* UDP GSO (UDP_SEGMENT): runs of same-size datagrams to one address
	 * leave in one message; cleared if the kernel refuses it */
	bool gso;
	struct mmsghdr gso_msg[WGD_MAX_BATCH];
	char gso_ctl[WGD_MAX_BATCH][64];

	bool always_derp; /* TS_DEBUG_ALWAYS_USE_DERP: no direct paths */
	uint64_t tx_errors, tx_no_endpoint, tx_family, tx_oversize;
	char udp_why[192]; /* why wgdi_open_udp last failed, or "" */
	uint64_t tx_gso_msgs, rx_gro_msgs;
};

/* wgd.c */
void wgdi_flush_tx(wgd *w);
/* One datagram (disco) from wgd's UDP socket now, not batched. */
void wgdi_udp_send_now(wgd *w, const tk_wg_endpoint *ep, const uint8_t *p,
    size_t n);
/* The device's send_datagram callback: queues one datagram for sendmmsg. */
void wgdi_send_datagram(void *arg, tk_wg_peer *peer, const tk_wg_endpoint *ep,
    const uint8_t *p, size_t n);
/* (Re)binds the UDP socket to port (0: random).  On error the old socket
 * stays and w->udp_why may say why. */
int wgdi_open_udp(wgd *w, uint16_t port);
/* SO_MARK on fd; on error logs and fills w->udp_why. */
int wgdi_set_fwmark(wgd *w, int fd, uint32_t mark);
/*
 * An IP packet from the decrypted side (TUN or packet bus) to encrypt.  If
 * p is the packet of wgdi_tx_slot() it is encrypted where it lies,
 * otherwise copied there first.
 */
void wgdi_outbound(wgd *w, const uint8_t *p, size_t n);
/*
 * The next free transmit slot (the batch is flushed first when full): a
 * buffer of TK_PKT_HEADROOM + 65535 + TK_PKT_TAILROOM bytes whose packet
 * starts at TK_PKT_HEADROOM; hand such a packet to wgdi_outbound.
 */
uint8_t *wgdi_tx_slot(wgd *w);
/* After the UAPI changed the private key: persist and publish. */
void wgdi_key_changed(wgd *w);

/* uapi_srv.c */
int wgdi_uapi_open(wgd *w, const char *dir, const char *name, wgdi_uapi **out,
    char *err, size_t errlen);
void wgdi_uapi_free(wgd *w, wgdi_uapi *u);
/* rpc "uapi_get" (arg: the wgd): the get=1 text without secret keys. */
int wgdi_uapi_get_rpc(void *arg, const uint8_t *body, size_t len,
    tk_buf *reply);

/* tunio.c: the kernel TUN device as the decrypted side. */
int wgdi_tun_open(wgd *w, const char *name, int mtu, wgdi_tun **out);
/* Queues one decrypted packet for the kernel. */
void wgdi_tun_deliver(wgdi_tun *t, const uint8_t *p, size_t n);
/* Writes what is queued (end of a receive batch). */
void wgdi_tun_flush(wgdi_tun *t);
void wgdi_tun_counters(const wgdi_tun *t, uint64_t *rx_pkts, uint64_t *tx_pkts,
    uint64_t *errors);
void wgdi_tun_free(wgd *w, wgdi_tun *t);

/* bus.c: state, control bus, packet bus, netmap, filter. */
int wgdi_bus_open(wgd *w, wgdi_bus **out, uint16_t *port, char *err,
    size_t errlen);
/* The listen port to store (after it changed). */
void wgdi_bus_port_changed(wgdi_bus *b, uint16_t port);
void wgdi_bus_key_changed(wgdi_bus *b);
/* Filter hooks; true: pass. */
bool wgdi_bus_filter_in(wgdi_bus *b, const uint8_t *p, size_t n);
void wgdi_bus_filter_out(wgdi_bus *b, const uint8_t *p, size_t n);
bool wgdi_bus_has_filter(const wgdi_bus *b);
/* Queues one decrypted packet for the packet bus. */
void wgdi_bus_deliver(wgdi_bus *b, const uint8_t *p, size_t n);
bool wgdi_bus_has_pkt(const wgdi_bus *b);
void wgdi_bus_flush(wgdi_bus *b);
void wgdi_bus_free(wgdi_bus *b);
/* The control-bus rpc server (NULL without --rpc), to add methods to. */
tk_rpc_server *wgdi_bus_rpc(wgdi_bus *b);
/* The disco state (disco.h); NULL if b is. */
struct wgdi_disco *wgdi_bus_disco(wgdi_bus *b);
/* Path selection (path.h) for a datagram to peer: false to use the
 * WireGuard endpoint, else *udp and/or *derp_region. */
bool wgdi_bus_route(wgdi_bus *b, tk_wg_peer *peer, tk_wg_endpoint *udp,
    uint16_t *derp_region);
/* A STUN datagram that arrived on wgd's socket (stun.h). */
void wgdi_bus_stun_rx(wgdi_bus *b, const tk_wg_endpoint *src, const uint8_t *p,
    size_t n);
/* Discovery a send asked for (runs after the batch). */
void wgdi_bus_paths_kick(wgdi_bus *b);
bool wgdi_bus_path_status(wgdi_bus *b, tk_wg_peer *peer, tk_wg_endpoint *cur,
    uint16_t *relay_region);
/* Marks the netmap as having a DERP path (peers go to their home region). */
void wgdi_bus_set_derp(wgdi_bus *b, bool on);

/* derp.c: the packet bus to derpd (BATCH_KIND_PEER) and the rpc methods
 * "derp_seal"/"derp_open" that let derpd authenticate with the node key
 * without holding it. */
int wgdi_derp_open(wgd *w, char *err, size_t errlen);
/* A WireGuard datagram for peer through DERP region (0: its home). */
void wgdi_derp_send(wgdi_derp *d, tk_wg_peer *peer, uint32_t region,
    const uint8_t *p, size_t n);
/* A datagram (disco) for the node key through DERP region. */
void wgdi_derp_send_key(wgdi_derp *d, const uint8_t node_key[32],
    uint32_t region, const uint8_t *p, size_t n);
void wgdi_derp_flush(wgdi_derp *d);
void wgdi_derp_counters(const wgdi_derp *d, tk_status_counters *cs);
void wgdi_derp_free(wgdi_derp *d);

#endif
