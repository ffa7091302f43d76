/*
 * IP prefixes and address:port pairs in the text forms Tailscale's JSON uses
 * (Go netip: "100.64.0.1/32", "fd7a:115c:a1e0::1/128", "1.2.3.4:41641",
 * "[::1]:41641").  Parsers are strict and write their output only on success.
 */
#ifndef TK_NETADDR_H
#define TK_NETADDR_H

#include <stddef.h>
#include <stdint.h>

#define TK_AF_INET  4
#define TK_AF_INET6 6
#define TK_NETADDR_TEXT_MAX 64

typedef struct tk_ipaddr {
	uint8_t family; /* TK_AF_INET or TK_AF_INET6 */
	uint8_t addr[16]; /* v4 in the first 4 bytes */
} tk_ipaddr;

typedef struct tk_ipprefix {
	tk_ipaddr ip;
	uint8_t bits;
} tk_ipprefix;

typedef struct tk_ipport {
	tk_ipaddr ip;
	uint16_t port;
} tk_ipport;

int tk_ipaddr_parse(tk_ipaddr *out, const char *s, size_t n);
/* "addr/bits"; a bare address is NOT accepted (Go's netip.ParsePrefix). */
int tk_ipprefix_parse(tk_ipprefix *out, const char *s, size_t n);
/* "v4:port" or "[v6]:port"; port 0..65535. */
int tk_ipport_parse(tk_ipport *out, const char *s, size_t n);

void tk_ipaddr_format(const tk_ipaddr *a, char out[TK_NETADDR_TEXT_MAX]);
void tk_ipprefix_format(const tk_ipprefix *p, char out[TK_NETADDR_TEXT_MAX]);
void tk_ipport_format(const tk_ipport *p, char out[TK_NETADDR_TEXT_MAX]);

/* ::ffff:a.b.c.d becomes a.b.c.d; other addresses stay. */
void tk_ipaddr_unmap(tk_ipaddr *a);

#endif
