/*
 * tk_stun: STUN binding requests and responses as Tailscale's net/stun reads
 * and writes them (RFC 5389 header and XOR-MAPPED-ADDRESS; a request is
 * accepted only with SOFTWARE "tailnode" and a correct FINGERPRINT as its
 * last attribute, as stun.ParseBindingRequest demands).  Pure functions,
 * fuzzed by fuzz_stun; used by derpd's STUN server and tk-derp's probe
 * (and, next, netcheck).
 */
#ifndef TK_STUN_H
#define TK_STUN_H

#include <stddef.h>
#include <stdint.h>

#define TK_STUN_HDR_LEN   20
#define TK_STUN_TXID_LEN  12
#define TK_STUN_COOKIE    0x2112a442u
#define TK_STUN_BINDING_REQUEST  0x0001
#define TK_STUN_BINDING_SUCCESS  0x0101
#define TK_STUN_ATTR_MAPPED	    0x0001
#define TK_STUN_ATTR_XOR_MAPPED  0x0020
#define TK_STUN_ATTR_SOFTWARE    0x8022
#define TK_STUN_ATTR_FINGERPRINT 0x8028
#define TK_STUN_FINGERPRINT_XOR  0x5354554eu
#define TK_STUN_SOFTWARE	    "tailnode"
#define TK_STUN_RESPONSE_MAX	    (TK_STUN_HDR_LEN + 4 + 4 + 16)

/* 0 and the transaction ID, or TK_EPROTO (not STUN, not a binding
 * request, malformed attributes, wrong software, no/bad fingerprint). */
int tk_stun_parse_request(const uint8_t *p, size_t n,
    uint8_t txid[TK_STUN_TXID_LEN]);
/* A binding success with XOR-MAPPED-ADDRESS of ip (4 or 16 bytes) and
 * port; returns its length (32 or 44). */
size_t tk_stun_response(uint8_t out[TK_STUN_RESPONSE_MAX],
    const uint8_t txid[TK_STUN_TXID_LEN], const uint8_t *ip, size_t iplen,
    uint16_t port);
uint32_t tk_stun_crc32(const uint8_t *p, size_t n);

/* A binding request as Go's stun.Request writes it: header, SOFTWARE
 * "tailnode", FINGERPRINT (40 bytes). */
#define TK_STUN_REQUEST_LEN 40
void tk_stun_request(uint8_t out[TK_STUN_REQUEST_LEN],
    const uint8_t txid[TK_STUN_TXID_LEN]);
/*
 * A binding success for txid (stun.ParseResponse): 0 with the mapped
 * address from XOR-MAPPED-ADDRESS (or the older MAPPED-ADDRESS if that is
 * all there is): *iplen 4 or 16.  TK_EPROTO for anything else.
 */
int tk_stun_parse_response(const uint8_t *p, size_t n,
    const uint8_t txid[TK_STUN_TXID_LEN], uint8_t ip[16], size_t *iplen,
    uint16_t *port);

#endif
