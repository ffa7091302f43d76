/*
 * Linux TUN device with virtio-net offloads.
 *
 * With TK_TUN_OFFLOAD the device is opened with IFF_VNET_HDR and
 * TUNSETOFFLOAD(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6), so:
 *
 *   read:  the kernel hands up TCP "super-packets" of up to 64 KiB (one
 *          read() instead of ~45) with a partial checksum; tk_tun_read
 *          splits them into MTU-sized IP packets with complete checksums
 *          (GSO in userspace);
 *   write: consecutive TCP segments of one flow handed to tk_tun_write are
 *          merged into one super-packet (GRO in userspace) and written with
 *          a virtio_net_hdr (gso_type TCPV4/TCPV6, NEEDS_CSUM), so the
 *          kernel's TCP receive path sees one big skb.
 *
 * This is what wireguard-go's tun offload does (tun/offload_linux.go); the
 * merge conditions follow the kernel's tcp_gro_receive (same 4-tuple, ack,
 * window, options, TOS/TTL/DF or traffic class/flow label/hop limit, IPv4 ID
 * +1 and seq continuous, equal sizes except a shorter last one, only ACK or
 * a final ACK|PSH; no IPv4 options or fragments, no IPv6 extension headers).
 *
 * When the kernel refuses IFF_VNET_HDR or the offloads, the device falls
 * back to plain TUN (one packet per read()/write()) and tk_tun_offloading()
 * says false; the API behaves the same.
 *
 * The virtio_net_hdr is used in the host's byte order, as TUN does unless
 * TUNSETVNETLE/TUNSETVNETBE is set (virtio "legacy" layout; little-endian on
 * x86 and arm64).  We never set those.
 *
 * Threading: a tk_tun is used by one thread (the component's loop).
 */
#ifndef TK_TUN_H
#define TK_TUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/uio.h>

typedef struct tk_tun tk_tun;

#define TK_TUN_OFFLOAD	1u /* try vnet_hdr TSO/GRO */
#define TK_TUN_HEADROOM 64 /* bytes writable before each packet handed to the read callback */
#define TK_TUN_TAILROOM 16 /* bytes writable after it */

#define TK_TUN_VNET_HDR_LEN 10	  /* sizeof(struct virtio_net_hdr) */
#define TK_TUN_MAX_PKT	    65535 /* largest IP packet (and super-packet) */

/*
 * Called once per IP packet.  `pkt` has TK_TUN_HEADROOM writable bytes
 * before it and TK_TUN_TAILROOM after it (so it can be encrypted in place);
 * it is valid only during the call.
 */
typedef void (*tk_tun_pkt_fn)(void *arg, uint8_t *pkt, size_t n);

typedef struct tk_tun_stats {
	uint64_t ts_rx_frames;	  /* frames read from the device */
	uint64_t ts_rx_packets;	  /* IP packets handed to the read callback */
	uint64_t ts_rx_gso;	  /* frames that were GSO super-packets (split) */
	uint64_t ts_rx_bad;	  /* frames dropped as malformed */
	uint64_t ts_rx_errors;	  /* read() failures other than EAGAIN/EINTR */
	uint64_t ts_tx_packets;	  /* packets accepted by tk_tun_write */
	uint64_t ts_tx_frames;	  /* frames written to the device */
	uint64_t ts_tx_coalesced; /* packets merged into an earlier packet's frame */
	uint64_t ts_tx_bad;	  /* malformed packets, passed through unmerged */
	uint64_t ts_tx_dropped;	  /* packets dropped: empty or over 65535 bytes */
	uint64_t ts_tx_errors;	  /* write()/writev() failures (frame lost) */
} tk_tun_stats;

/*
 * Creates (or attaches to) TUN device `name` ("" or NULL: the kernel picks
 * tunN) in the caller's network namespace, non-blocking, and sets its MTU
 * (68..65535; 0 leaves it alone).  flags: 0 or TK_TUN_OFFLOAD.  Needs
 * CAP_NET_ADMIN.  0 or TK_EINVAL (bad name/mtu/flags), TK_ENOMEM, folded
 * errno (TK_ESYS | errno) from open/ioctl.
 */
int tk_tun_open(tk_tun **out, const char *name, int mtu, unsigned flags);
/* Closes the device fd (a non-persistent device disappears).  NULL: no-op. */
void tk_tun_free(tk_tun *t);

int tk_tun_fd(const tk_tun *t);		   /* for epoll (EPOLLIN) */
const char *tk_tun_name(const tk_tun *t);  /* the interface name */
bool tk_tun_offloading(const tk_tun *t);   /* vnet_hdr offload in effect */

/*
 * Reads what is ready: up to `max_frames` read()s, stopping at EAGAIN.
 * Every IP packet (after GSO split: each one MSS-sized, checksums complete)
 * goes to cb.  *npkts gets the number of packets delivered.  Malformed
 * frames are dropped and counted (ts_rx_bad), never reported.  Returns 0, or
 * a folded errno when read() fails before anything was delivered.
 */
int tk_tun_read(tk_tun *t, unsigned max_frames, tk_tun_pkt_fn cb, void *arg,
    unsigned *npkts);

/*
 * Where the next segment of a split super-packet is built: a buffer of
 * TK_TUN_SPLIT_SCRATCH bytes (the packet starts at TK_TUN_HEADROOM), or
 * NULL for the device's own scratch.
 */
typedef uint8_t *(*tk_tun_buf_fn)(void *arg);

/*
 * tk_tun_read, with each segment of a super-packet built in a buffer from
 * buf(arg), so the caller can encrypt and send it from where it lies
 * instead of copying it out of the device's scratch (frames that are one
 * packet are still handed over in the device's read buffer).  cb gets the
 * same arg.
 */
int tk_tun_read_into(tk_tun *t, unsigned max_frames, tk_tun_buf_fn buf,
    tk_tun_pkt_fn cb, void *arg, unsigned *npkts);

/*
 * Queues one IP packet for the kernel (copied; `pkt` is not kept).  With
 * offload on, TCP segments that continue a queued segment of the same flow
 * are merged into its frame.  Packets that cannot be packets (empty, over
 * 65535 bytes) are dropped and counted; malformed ones are passed through
 * unmerged and counted.  Without offload the packet is written at once.
 * May write queued frames when the queue is full.  0; TK_EINVAL for a NULL
 * argument; as tk_tun_flush when the fd is no longer usable.
 */
int tk_tun_write(tk_tun *t, const uint8_t *pkt, size_t n);
/*
 * Writes everything queued, in order (one writev() per frame); call it at
 * the end of each receive batch.  Failed writes are counted (ts_tx_errors)
 * and the frame dropped; returns 0, or TK_ECLOSED/folded errno when the fd
 * is no longer usable (EBADF/EBADFD).
 */
int tk_tun_flush(tk_tun *t);

void tk_tun_stats_get(const tk_tun *t, tk_tun_stats *st);

/* --- Pure functions, testable without a device ---------------------------- */

/* Bytes of scratch tk_tun_gso_split needs: one packet with its slack. */
#define TK_TUN_SPLIT_SCRATCH (TK_TUN_HEADROOM + TK_TUN_MAX_PKT + TK_TUN_TAILROOM)

/*
 * Splits one frame read from a vnet_hdr TUN (virtio_net_hdr + packet,
 * `n` bytes in all) into IP packets, calling cb for each.  GSO_NONE frames
 * are passed through (their checksum completed when NEEDS_CSUM is set);
 * TCPV4/TCPV6 frames become segments of gso_size payload bytes with full
 * IPv4 header and TCP checksums, IPv4 ID +1 and seq advancing per segment,
 * FIN/PSH only on the last and CWR only on the first.  Each packet is built
 * in `scratch` (TK_TUN_SPLIT_SCRATCH bytes), after TK_TUN_HEADROOM.
 *
 * The frame is validated completely before anything is delivered: on
 * TK_EPROTO (malformed: short, bogus gso_size or csum_start/offset, wrong
 * IP version/IHL/length, non-TCP, IPv6 extension headers, UDP GSO) cb was
 * not called.  On 0, *npkts gets the number of packets delivered.
 */
int tk_tun_gso_split(const uint8_t *frame, size_t n, uint8_t *scratch,
    tk_tun_pkt_fn cb, void *arg, unsigned *npkts);

/*
 * The coalescer (userspace GRO): add IP packets, then read out frames
 * (virtio_net_hdr + packet) in the order of each frame's first packet,
 * then reset.  Per flow (4-tuple) only the newest frame can grow, so packet
 * order within a flow is kept.  A frame holds at most TK_TUN_GRO_MAX_SEGS
 * packets and TK_TUN_MAX_PKT bytes of IP packet.  The TCP and IPv4 header
 * checksums of packets are verified before they are merged.
 */
typedef struct tk_tun_gro tk_tun_gro;

#define TK_TUN_GRO_MAX_SEGS 64			    /* packets per frame */
#define TK_TUN_GRO_MAX_IOV  (TK_TUN_GRO_MAX_SEGS + 1) /* iovecs per frame */

typedef struct tk_tun_gro_stats {
	uint64_t gs_packets; /* packets added */
	uint64_t gs_merged;  /* packets merged into an earlier packet's frame */
	uint64_t gs_bad;     /* malformed packets (kept as their own frame) */
} tk_tun_gro_stats;

int tk_tun_gro_new(tk_tun_gro **out);
void tk_tun_gro_free(tk_tun_gro *g);
/*
 * Adds one IP packet (copied).  0; TK_EMSGSIZE when this batch has no room
 * left (read the frames out, reset, add again); TK_EINVAL when n is 0 or
 * over TK_TUN_MAX_PKT; TK_ESTATE after frames were read and before reset.
 */
int tk_tun_gro_add(tk_tun_gro *g, const uint8_t *pkt, size_t n);
/*
 * Number of frames.  The first call after adding seals the batch: merged
 * frames get their virtio_net_hdr and fixed-up IP/TCP headers, and adding
 * is refused until tk_tun_gro_reset.
 */
unsigned tk_tun_gro_frames(tk_tun_gro *g);
/* Frame i as iovecs (at most TK_TUN_GRO_MAX_IOV); TK_EINVAL if i is out of range. */
int tk_tun_gro_frame_iov(tk_tun_gro *g, unsigned i, struct iovec *iov,
    unsigned cap, unsigned *niov);
/* Frame i copied into buf; TK_EMSGSIZE if cap is short. */
int tk_tun_gro_frame_copy(tk_tun_gro *g, unsigned i, uint8_t *buf,
    size_t cap, size_t *n);
/* Empties the batch (statistics are kept). */
void tk_tun_gro_reset(tk_tun_gro *g);
void tk_tun_gro_stats_get(const tk_tun_gro *g, tk_tun_gro_stats *st);

#endif
