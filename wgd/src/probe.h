/*
 * Ping probes, sans I/O: the packets wgd sends for rpc "ping" (a TSMP ping
 * or an ICMP/ICMPv6 echo request from the node's own address) and the
 * recognition of their answers among inbound decrypted packets.  ping.c
 * does the sending, matching and timing.
 *
 * Wire facts (Go's net/packet tsmp.go, icmp4.go, icmp6.go): TSMP is IP
 * protocol 99; a ping is 'p' and 8 opaque bytes, a pong 'o', the same 8
 * bytes and, when present, the 2-byte big-endian PeerAPIPort.  An echo
 * request carries id, seq and a payload the reply returns unchanged; wgd
 * puts its 8 bytes there (id and seq are the first four of them).
 */
#ifndef WGDI_PROBE_H
#define WGDI_PROBE_H

#include <stddef.h>
#include <stdint.h>

#define WGDI_PROBE_TSMP	 1
#define WGDI_PROBE_ICMP	 2
#define WGDI_PROBE_MAX	 64 /* largest probe packet built */
#define WGDI_TSMP_PROTO	 99

/*
 * Builds a probe of kind (WGDI_PROBE_*) from src to dst (family 4 or 6,
 * 4 or 16 bytes each) carrying data into out (>= WGDI_PROBE_MAX bytes).
 * Returns its length (0: bad kind or family).
 */
size_t wgdi_probe_build(uint8_t *out, int kind, int family, const uint8_t *src,
    const uint8_t *dst, const uint8_t data[8]);

/* An answer to a probe, as parsed from an inbound packet. */
typedef struct wgdi_probe_reply {
	int kind;	/* WGDI_PROBE_* */
	int family;	/* 4 or 6 */
	uint8_t src[16];/* who answered (the pinged address) */
	uint8_t data[8];
	uint16_t peerapi_port; /* TSMP pongs that carry it; else 0 */
} wgdi_probe_reply;

#define WGDI_PROBE_NONE	 0  /* not an answer to a probe: pass it on */
#define WGDI_PROBE_REPLY 1  /* *r filled */
#define WGDI_PROBE_BAD	 -1 /* a TSMP pong too short to be one: drop, count */

/*
 * Classifies an inbound IP packet.  Echo replies too short to carry 8
 * payload bytes, or whose id/seq are not the payload's first bytes, are
 * not wgd's (the netstack may ping too): NONE.
 */
int wgdi_probe_parse(const uint8_t *p, size_t n, wgdi_probe_reply *r);

/* What `tailkit debug bus --pkt` shows of a packet. */
typedef struct wgdi_pkt_sum {
	uint8_t family;	  /* 4, 6; 0: not an IP packet wgd can read */
	uint8_t proto;
	uint8_t src[16], dst[16];
	uint16_t sport, dport; /* TCP/UDP/SCTP ports; ICMP type and code */
} wgdi_pkt_sum;

/* Summarises p[0..n) (never reads past n; short headers leave ports 0). */
void wgdi_pkt_summarize(const uint8_t *p, size_t n, wgdi_pkt_sum *s);

/* The Internet checksum of b[0..n) added to sum, not yet folded. */
uint32_t wgdi_csum_add(uint32_t sum, const uint8_t *b, size_t n);
/* Folds and complements a wgdi_csum_add sum. */
uint16_t wgdi_csum_fold(uint32_t sum);

#endif
