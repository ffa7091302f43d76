/* Helpers shared by the ns_dns test files (defined in test_msg.c). */
#ifndef NS_DNS_QBUILD_H
#define NS_DNS_QBUILD_H

#include <stddef.h>
#include <stdint.h>

/* Real queries captured from dig (see test_msg.c). */
extern const char *const dig_a_edns;
extern const char *const dig_aaaa_noedns;
extern const char *const dig_ptr;

/* A heap copy of exactly n bytes (ASan flags any read past it). */
uint8_t *exact(const void *p, size_t n);
/* Hex -> heap block of exactly its length; returns the length. */
size_t unhex_exact(uint8_t **out, const char *hex);
/* A query for name/qtype/qclass; edns_size < 0: no OPT record. */
size_t qbuild(uint8_t *b, uint16_t id, uint16_t flags, const char *name,
    uint16_t qtype, uint16_t qclass, int edns_size);

#endif
