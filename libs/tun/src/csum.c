/*
 * Internet checksum (RFC 1071).  Summed as host-order 32-bit words into a
 * 64-bit accumulator: one's-complement addition is byte-order independent
 * (RFC 1071 §2(B)) and 2^16 = 1 mod 0xffff, so the folded result only needs
 * a byte swap on little-endian hosts.  Four accumulators so the loop runs
 * at load speed; this is on every split segment and merged packet.
 */
#include "tk/endian.h"

#include "tun_int.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST16(v) ((uint16_t)__builtin_bswap16(v))
#else
#define HOST16(v) ((uint16_t)(v))
#endif

static inline uint32_t
ld32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

uint64_t
tki_csum_add(uint64_t acc, const uint8_t *p, size_t n)
{
	uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
	uint8_t tail[4] = { 0, 0, 0, 0 };

	/* Each accumulator adds at most 2^32 per 16 bytes: no overflow below 2^34 bytes. */
	while (n >= 16) {
		a0 += ld32(p);
		a1 += ld32(p + 4);
		a2 += ld32(p + 8);
		a3 += ld32(p + 12);
		p += 16;
		n -= 16;
	}
	while (n >= 4) {
		a0 += ld32(p);
		p += 4;
		n -= 4;
	}
	if (n > 0) { /* zero padding at the end: RFC 1071's odd byte rule */
		memcpy(tail, p, n);
		a0 += ld32(tail);
	}
	/* acc may be large; fold it first so the sum cannot wrap. */
	acc = (acc & 0xffffffffu) + (acc >> 32);
	return acc + (a0 & 0xffffffffu) + (a0 >> 32) + (a1 & 0xffffffffu) +
	    (a1 >> 32) + (a2 & 0xffffffffu) + (a2 >> 32) + (a3 & 0xffffffffu) +
	    (a3 >> 32);
}

uint64_t
tki_csum_add16(uint64_t acc, uint16_t v)
{
	return acc + HOST16(v);
}

uint16_t
tki_csum_fold(uint64_t acc)
{
	acc = (acc & 0xffffffffu) + (acc >> 32);
	acc = (acc & 0xffffffffu) + (acc >> 32);
	acc = (acc & 0xffff) + (acc >> 16);
	acc = (acc & 0xffff) + (acc >> 16);
	acc = (acc & 0xffff) + (acc >> 16);
	return HOST16((uint16_t)acc);
}

uint64_t
tki_csum_pseudo(const uint8_t *ip, bool v6, uint8_t proto, uint32_t l4len)
{
	uint64_t acc;

	/* Source and destination are adjacent in both headers. */
	if (v6)
		acc = tki_csum_add(0, ip + 8, 32);
	else
		acc = tki_csum_add(0, ip + 12, 8);
	acc = tki_csum_add16(acc, proto);
	acc = tki_csum_add16(acc, (uint16_t)(l4len >> 16));
	return tki_csum_add16(acc, (uint16_t)l4len);
}

bool
tki_l4_csum_ok(const uint8_t *pkt, size_t n, size_t l4off, bool v6,
    uint8_t proto)
{
	uint64_t acc;

	if (l4off > n)
		return false;
	acc = tki_csum_pseudo(pkt, v6, proto, (uint32_t)(n - l4off));
	acc = tki_csum_add(acc, pkt + l4off, n - l4off);
	return tki_csum_fold(acc) == 0xffff;
}
