/* Ping probes: building them, recognising their answers (probe.h). */
#include <string.h>

#include "tk/endian.h"
#include "probe.h"

#define ICMP4_PROTO	  1
#define ICMP6_PROTO	  58
#define ICMP4_ECHO	  8
#define ICMP4_ECHO_REPLY  0
#define ICMP6_ECHO	  128
#define ICMP6_ECHO_REPLY  129
#define TSMP_PING	  'p'
#define TSMP_PONG	  'o'
#define TSMP_PONG_MIN	  9  /* 'o' and the 8 bytes */
#define TSMP_PONG_PORT	  11 /* ... and PeerAPIPort */
#define ECHO_LEN	  16 /* type, code, csum, id, seq, 8 payload bytes */

uint32_t
wgdi_csum_add(uint32_t sum, const uint8_t *b, size_t n)
{
	for (; n >= 2; b += 2, n -= 2)
		sum += tk_be16_load(b);
	if (n)
		sum += (uint32_t)b[0] << 8;
	return sum;
}

uint16_t
wgdi_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* The IP header for a probe of plen payload bytes; returns its size. */
static size_t
ip_header(uint8_t *o, int family, uint8_t proto, const uint8_t *src,
    const uint8_t *dst, size_t plen, const uint8_t data[8])
{
	if (family == 4) {
		memset(o, 0, 20);
		o[0] = 0x45;
		tk_be16_store(o + 2, (uint16_t)(20 + plen));
		memcpy(o + 4, data + 4, 2); /* IP ID: any value; not zero-only */
		o[8] = 64;
		o[9] = proto;
		memcpy(o + 12, src, 4);
		memcpy(o + 16, dst, 4);
		tk_be16_store(o + 10, wgdi_csum_fold(wgdi_csum_add(0, o, 20)));
		return 20;
	}
	memset(o, 0, 40);
	o[0] = 0x60;
	tk_be16_store(o + 4, (uint16_t)plen);
	o[6] = proto;
	o[7] = 64;
	memcpy(o + 8, src, 16);
	memcpy(o + 24, dst, 16);
	return 40;
}

size_t
wgdi_probe_build(uint8_t *out, int kind, int family, const uint8_t *src,
    const uint8_t *dst, const uint8_t data[8])
{
	size_t h, alen = family == 4 ? 4 : 16;
	uint8_t *b;

	if (family != 4 && family != 6)
		return 0;
	if (kind == WGDI_PROBE_TSMP) {
		h = ip_header(out, family, WGDI_TSMP_PROTO, src, dst, 9, data);
		out[h] = TSMP_PING;
		memcpy(out + h + 1, data, 8);
		return h + 9;
	}
	if (kind != WGDI_PROBE_ICMP)
		return 0;
	h = ip_header(out, family, family == 4 ? ICMP4_PROTO : ICMP6_PROTO, src,
	    dst, ECHO_LEN, data);
	b = out + h;
	b[0] = family == 4 ? ICMP4_ECHO : ICMP6_ECHO;
	b[1] = 0;
	b[2] = b[3] = 0;
	memcpy(b + 4, data, 4); /* id, seq */
	memcpy(b + 8, data, 8);
	uint32_t sum = 0;
	if (family == 6) { /* RFC 8200 8.1 pseudo-header */
		uint8_t ph[8] = { 0, 0, 0, ECHO_LEN, 0, 0, 0, ICMP6_PROTO };
		sum = wgdi_csum_add(wgdi_csum_add(wgdi_csum_add(0, src, alen),
		    dst, alen), ph, 8);
	}
	tk_be16_store(b + 2, wgdi_csum_fold(wgdi_csum_add(sum, b, ECHO_LEN)));
	return h + ECHO_LEN;
}

/* The transport payload of an unfragmented IPv4 or IPv6 packet (no
 * extension headers: probes and their answers carry none).  NULL: no. */
static const uint8_t *
ip_payload(const uint8_t *p, size_t n, int *family, uint8_t *proto,
    size_t *len)
{
	if (n >= 20 && p[0] >> 4 == 4) {
		size_t ihl = (size_t)(p[0] & 15) * 4, tot = tk_be16_load(p + 2);
		if (ihl < 20 || tot < ihl || tot > n ||
		    (tk_be16_load(p + 6) & 0x3fff) != 0)
			return NULL;
		*family = 4;
		*proto = p[9];
		*len = tot - ihl;
		return p + ihl;
	}
	if (n >= 40 && p[0] >> 4 == 6) {
		size_t pl = tk_be16_load(p + 4);
		if (40 + pl > n)
			return NULL;
		*family = 6;
		*proto = p[6];
		*len = pl;
		return p + 40;
	}
	return NULL;
}

int
wgdi_probe_parse(const uint8_t *p, size_t n, wgdi_probe_reply *r)
{
	int family;
	uint8_t proto;
	size_t len;
	const uint8_t *b = ip_payload(p, n, &family, &proto, &len);

	/* on every inbound packet: the common case leaves at once */
	if (b == NULL || (proto != WGDI_TSMP_PROTO && proto != ICMP4_PROTO &&
	    proto != ICMP6_PROTO))
		return WGDI_PROBE_NONE;
	memset(r, 0, sizeof(*r));
	r->family = family;
	memcpy(r->src, family == 4 ? p + 12 : p + 8, family == 4 ? 4 : 16);
	if (proto == WGDI_TSMP_PROTO) {
		if (len < 1 || b[0] != TSMP_PONG)
			return WGDI_PROBE_NONE; /* pings, adverts: bus.c */
		if (len < TSMP_PONG_MIN)
			return WGDI_PROBE_BAD;
		r->kind = WGDI_PROBE_TSMP;
		memcpy(r->data, b + 1, 8);
		if (len >= TSMP_PONG_PORT)
			r->peerapi_port = tk_be16_load(b + 9);
		return WGDI_PROBE_REPLY;
	}
	if (!((family == 4 && proto == ICMP4_PROTO && len >= ECHO_LEN &&
		  b[0] == ICMP4_ECHO_REPLY) ||
		(family == 6 && proto == ICMP6_PROTO && len >= ECHO_LEN &&
		    b[0] == ICMP6_ECHO_REPLY)) ||
	    b[1] != 0 || memcmp(b + 4, b + 8, 4) != 0)
		return WGDI_PROBE_NONE;
	r->kind = WGDI_PROBE_ICMP;
	memcpy(r->data, b + 8, 8);
	return WGDI_PROBE_REPLY;
}

void
wgdi_pkt_summarize(const uint8_t *p, size_t n, wgdi_pkt_sum *s)
{
	int family;
	uint8_t proto;
	size_t len;
	const uint8_t *b;

	memset(s, 0, sizeof(*s));
	if (n >= 20 && p[0] >> 4 == 4) {
		s->family = 4, s->proto = p[9];
		memcpy(s->src, p + 12, 4);
		memcpy(s->dst, p + 16, 4);
	} else if (n >= 40 && p[0] >> 4 == 6) {
		s->family = 6, s->proto = p[6];
		memcpy(s->src, p + 8, 16);
		memcpy(s->dst, p + 24, 16);
	} else {
		return;
	}
	/* ports only from a whole, unfragmented first header */
	if ((b = ip_payload(p, n, &family, &proto, &len)) == NULL)
		return;
	if ((proto == 6 || proto == 17 || proto == 132) && len >= 4) {
		s->sport = tk_be16_load(b);
		s->dport = tk_be16_load(b + 2);
	} else if ((proto == ICMP4_PROTO || proto == ICMP6_PROTO) && len >= 2) {
		s->sport = b[0];
		s->dport = b[1];
	}
}
