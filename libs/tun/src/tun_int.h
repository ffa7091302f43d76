/* tk_tun internals shared between csum.c, gso.c, gro.c and tun.c. */
#ifndef TK_TUN_INT_H
#define TK_TUN_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <linux/virtio_net.h>

#include "tk/tun.h"

_Static_assert(sizeof(struct virtio_net_hdr) == TK_TUN_VNET_HDR_LEN,
    "virtio_net_hdr layout");

/* Offsets, as RFC 791 / RFC 8200 / RFC 9293 name the fields. */
#define TKI_IP4_HLEN	 20 /* without options */
#define TKI_IP6_HLEN	 40
#define TKI_TCP_HLEN	 20 /* without options */
#define TKI_TCP_CSUM_OFF 16
#define TKI_TCP_FLAGS_OFF 13
#define TKI_TCP_FIN	 0x01
#define TKI_TCP_SYN	 0x02
#define TKI_TCP_RST	 0x04
#define TKI_TCP_PSH	 0x08
#define TKI_TCP_ACK	 0x10
#define TKI_TCP_URG	 0x20
#define TKI_TCP_ECE	 0x40
#define TKI_TCP_CWR	 0x80
#define TKI_IPPROTO_TCP	 6

/*
 * virtio_net_hdr fields, host byte order (see tun.h).  Loaded with memcpy:
 * the header sits at any alignment in our buffers.
 */
typedef struct tki_vnet {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
} tki_vnet;

static inline uint16_t
tki_h16_load(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return v;
}

static inline void
tki_h16_store(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static inline void
tki_vnet_load(tki_vnet *h, const uint8_t *p)
{
	h->flags = p[0];
	h->gso_type = p[1];
	h->hdr_len = tki_h16_load(p + 2);
	h->gso_size = tki_h16_load(p + 4);
	h->csum_start = tki_h16_load(p + 6);
	h->csum_offset = tki_h16_load(p + 8);
}

static inline void
tki_vnet_store(uint8_t *p, const tki_vnet *h)
{
	p[0] = h->flags;
	p[1] = h->gso_type;
	tki_h16_store(p + 2, h->hdr_len);
	tki_h16_store(p + 4, h->gso_size);
	tki_h16_store(p + 6, h->csum_start);
	tki_h16_store(p + 8, h->csum_offset);
}

/*
 * Internet checksum (RFC 1071).  The accumulator is an unfolded sum in the
 * host's byte order; chunks must start at even offsets of the summed region
 * (only the last may have odd length).  tki_csum_fold returns the folded
 * 16-bit sum as a number (store it with tk_be16_store); the checksum field
 * gets its complement.
 */
uint64_t tki_csum_add(uint64_t acc, const uint8_t *p, size_t n);
uint64_t tki_csum_add16(uint64_t acc, uint16_t v); /* v: a big-endian word's value */
uint16_t tki_csum_fold(uint64_t acc);
/* Sum of the TCP/UDP pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1). */
uint64_t tki_csum_pseudo(const uint8_t *ip, bool v6, uint8_t proto,
    uint32_t l4len);
/* True if the checksum over the L4 part [l4off, n) of an IP packet verifies. */
bool tki_l4_csum_ok(const uint8_t *pkt, size_t n, size_t l4off, bool v6,
    uint8_t proto);

/*
 * tk_tun_gso_split, optionally in place: when `mframe` is not NULL it is the
 * same buffer as `frame`, writable, and a GSO_NONE packet is completed and
 * delivered where it is (the frame then has TK_TUN_HEADROOM -
 * TK_TUN_VNET_HDR_LEN writable bytes before it and TK_TUN_TAILROOM after
 * it) instead of being copied to scratch.  *gso (may be NULL) is set to
 * whether the frame was a super-packet.  `buf` (may be NULL) gives the
 * buffer each segment of a super-packet is built in, as tk_tun_read_into.
 */
int tki_gso_split(const uint8_t *frame, uint8_t *mframe, size_t n,
    uint8_t *scratch, tk_tun_buf_fn buf, tk_tun_pkt_fn cb, void *arg,
    unsigned *npkts, bool *gso);

#endif
