/*
 * STUN binding requests and responses as Tailscale's net/stun reads and
 * writes them (RFC 5389 header and XOR-MAPPED-ADDRESS; a request is
 * accepted only with SOFTWARE "tailnode" and a correct FINGERPRINT as its
 * last attribute, as stun.ParseBindingRequest demands).  Pure functions,
 * fuzzed by fuzz_stun.
 */
#ifndef DERPD_STUN_INT_H
#define DERPD_STUN_INT_H

#include <stddef.h>
#include <stdint.h>

#define DERPD_STUN_HDR_LEN   20
#define DERPD_STUN_TXID_LEN  12
#define DERPD_STUN_COOKIE    0x2112a442u
#define DERPD_STUN_BINDING_REQUEST  0x0001
#define DERPD_STUN_BINDING_SUCCESS  0x0101
#define DERPD_STUN_ATTR_XOR_MAPPED  0x0020
#define DERPD_STUN_ATTR_SOFTWARE    0x8022
#define DERPD_STUN_ATTR_FINGERPRINT 0x8028
#define DERPD_STUN_FINGERPRINT_XOR  0x5354554eu
#define DERPD_STUN_SOFTWARE	    "tailnode"
#define DERPD_STUN_RESPONSE_MAX	    (DERPD_STUN_HDR_LEN + 4 + 4 + 16)

/* 0 and the transaction ID, or TK_EPROTO (not STUN, not a binding
 * request, malformed attributes, wrong software, no/bad fingerprint). */
int derpdi_stun_parse_request(const uint8_t *p, size_t n,
    uint8_t txid[DERPD_STUN_TXID_LEN]);
/* A binding success with XOR-MAPPED-ADDRESS of ip (4 or 16 bytes) and
 * port; returns its length (32 or 44). */
size_t derpdi_stun_response(uint8_t out[DERPD_STUN_RESPONSE_MAX],
    const uint8_t txid[DERPD_STUN_TXID_LEN], const uint8_t *ip, size_t iplen,
    uint16_t port);
uint32_t derpdi_crc32(const uint8_t *p, size_t n);

#endif
