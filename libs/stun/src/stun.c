/*
 * STUN binding requests and responses (RFC 5389 as Tailscale's net/stun
 * uses it).  Pure functions: tk/stun.h.
 */
#include <stdbool.h>
#include <string.h>

#include "tk/endian.h"
#include "tk/err.h"
#include "tk/stun.h"

uint32_t
tk_stun_crc32(const uint8_t *p, size_t n)
{
	uint32_t c = 0xffffffffu;
	for (size_t i = 0; i < n; i++) {
		c ^= p[i];
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
	}
	return ~c;
}

int
tk_stun_parse_request(const uint8_t *p, size_t n,
    uint8_t txid[TK_STUN_TXID_LEN])
{
	bool software_ok = false;
	uint16_t last = 0;
	uint32_t fp = 0;

	/* stun.Is: header, top two bits zero, magic cookie */
	if (n < TK_STUN_HDR_LEN || (p[0] & 0xc0) != 0 ||
	    tk_be32_load(p + 4) != TK_STUN_COOKIE)
		return TK_EPROTO;
	/* bindingRequest = type 0x0001 followed by the cookie, whatever the
	 * length field says (Go compares those bytes only) */
	if (tk_be16_load(p) != TK_STUN_BINDING_REQUEST)
		return TK_EPROTO;
	const uint8_t *a = p + TK_STUN_HDR_LEN;
	size_t left = n - TK_STUN_HDR_LEN;
	while (left > 0) {
		if (left < 4)
			return TK_EPROTO;
		uint16_t t = tk_be16_load(a), l = tk_be16_load(a + 2);
		size_t padded = ((size_t)l + 3) & ~(size_t)3;
		a += 4;
		left -= 4;
		if (padded > left)
			return TK_EPROTO;
		last = t;
		if (t == TK_STUN_ATTR_SOFTWARE && l == 8 &&
		    memcmp(a, TK_STUN_SOFTWARE, 8) == 0)
			software_ok = true;
		if (t == TK_STUN_ATTR_FINGERPRINT && l == 4)
			fp = tk_be32_load(a);
		a += padded;
		left -= padded;
	}
	if (!software_ok || last != TK_STUN_ATTR_FINGERPRINT)
		return TK_EPROTO;
	/* the fingerprint covers everything before its 8-byte attribute */
	if (n < TK_STUN_HDR_LEN + 8 ||
	    fp != (tk_stun_crc32(p, n - 8) ^ TK_STUN_FINGERPRINT_XOR))
		return TK_EPROTO;
	memcpy(txid, p + 8, TK_STUN_TXID_LEN);
	return 0;
}

size_t
tk_stun_response(uint8_t out[TK_STUN_RESPONSE_MAX],
    const uint8_t txid[TK_STUN_TXID_LEN], const uint8_t *ip, size_t iplen,
    uint16_t port)
{
	uint8_t cookie[4];
	size_t alen = 8 + iplen;

	tk_be32_store(cookie, TK_STUN_COOKIE);
	tk_be16_store(out, TK_STUN_BINDING_SUCCESS);
	tk_be16_store(out + 2, (uint16_t)alen);
	memcpy(out + 4, cookie, 4);
	memcpy(out + 8, txid, TK_STUN_TXID_LEN);
	uint8_t *a = out + TK_STUN_HDR_LEN;
	tk_be16_store(a, TK_STUN_ATTR_XOR_MAPPED);
	tk_be16_store(a + 2, (uint16_t)(4 + iplen));
	a[4] = 0;
	a[5] = iplen == 4 ? 1 : 2;
	tk_be16_store(a + 6, port ^ (uint16_t)(TK_STUN_COOKIE >> 16));
	for (size_t i = 0; i < iplen; i++)
		a[8 + i] = ip[i] ^ (i < 4 ? cookie[i] : txid[i - 4]);
	return TK_STUN_HDR_LEN + alen;
}

void
tk_stun_request(uint8_t out[TK_STUN_REQUEST_LEN],
    const uint8_t txid[TK_STUN_TXID_LEN])
{
	tk_be16_store(out, TK_STUN_BINDING_REQUEST);
	tk_be16_store(out + 2, 12 + 8); /* SOFTWARE + FINGERPRINT */
	tk_be32_store(out + 4, TK_STUN_COOKIE);
	memcpy(out + 8, txid, TK_STUN_TXID_LEN);
	tk_be16_store(out + 20, TK_STUN_ATTR_SOFTWARE);
	tk_be16_store(out + 22, 8);
	memcpy(out + 24, TK_STUN_SOFTWARE, 8);
	tk_be16_store(out + 32, TK_STUN_ATTR_FINGERPRINT);
	tk_be16_store(out + 34, 4);
	tk_be32_store(out + 36, tk_stun_crc32(out, 32) ^ TK_STUN_FINGERPRINT_XOR);
}

/* One (XOR-)MAPPED-ADDRESS value: family, port, address. */
static int
mapped(const uint8_t *v, size_t l, bool xor, const uint8_t *hdr, uint8_t ip[16],
    size_t *iplen, uint16_t *port)
{
	if (l < 4)
		return TK_EPROTO;
	size_t n = v[1] == 1 ? 4 : v[1] == 2 ? 16 : 0;
	if (n == 0 || l < 4 + n)
		return TK_EPROTO;
	uint16_t pt = tk_be16_load(v + 2);
	if (xor)
		pt ^= (uint16_t)(TK_STUN_COOKIE >> 16);
	for (size_t i = 0; i < n; i++)
		ip[i] = v[4 + i] ^ (xor ? hdr[4 + i] : 0); /* cookie, then txid */
	*iplen = n;
	*port = pt;
	return 0;
}

int
tk_stun_parse_response(const uint8_t *p, size_t n,
    const uint8_t txid[TK_STUN_TXID_LEN], uint8_t ip[16], size_t *iplen,
    uint16_t *port)
{
	uint8_t a1[16], a2[16];
	size_t l1 = 0, l2 = 0;
	uint16_t p1 = 0, p2 = 0;
	bool have_x = false, have_m = false;

	if (n < TK_STUN_HDR_LEN || tk_be16_load(p) != TK_STUN_BINDING_SUCCESS ||
	    tk_be32_load(p + 4) != TK_STUN_COOKIE ||
	    memcmp(p + 8, txid, TK_STUN_TXID_LEN) != 0)
		return TK_EPROTO;
	size_t len = tk_be16_load(p + 2);
	if (len > n - TK_STUN_HDR_LEN)
		return TK_EPROTO;
	const uint8_t *a = p + TK_STUN_HDR_LEN;
	size_t left = len;
	while (left >= 4) {
		uint16_t t = tk_be16_load(a), l = tk_be16_load(a + 2);
		size_t padded = ((size_t)l + 3) & ~(size_t)3;
		if (padded > left - 4)
			return TK_EPROTO;
		if (t == TK_STUN_ATTR_XOR_MAPPED && !have_x &&
		    mapped(a + 4, l, true, p, a1, &l1, &p1) == 0)
			have_x = true;
		else if (t == TK_STUN_ATTR_MAPPED && !have_m &&
		    mapped(a + 4, l, false, p, a2, &l2, &p2) == 0)
			have_m = true;
		a += 4 + padded;
		left -= 4 + padded;
	}
	if (!have_x && !have_m)
		return TK_EPROTO;
	memcpy(ip, have_x ? a1 : a2, have_x ? l1 : l2);
	*iplen = have_x ? l1 : l2;
	*port = have_x ? p1 : p2;
	return 0;
}
