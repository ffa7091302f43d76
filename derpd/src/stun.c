/*
 * The STUN server: one UDP socket on the server's loop (cmd/derper
 * serveSTUN).  Parsing and building are pure (stun_int.h).
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "server_int.h"
#include "stun_int.h"
#include "tk/endian.h"
#include "tk/err.h"

uint32_t
derpdi_crc32(const uint8_t *p, size_t n)
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
derpdi_stun_parse_request(const uint8_t *p, size_t n,
    uint8_t txid[DERPD_STUN_TXID_LEN])
{
	bool software_ok = false;
	uint16_t last = 0;
	uint32_t fp = 0;

	/* stun.Is: header, top two bits zero, magic cookie */
	if (n < DERPD_STUN_HDR_LEN || (p[0] & 0xc0) != 0 ||
	    tk_be32_load(p + 4) != DERPD_STUN_COOKIE)
		return TK_EPROTO;
	/* bindingRequest = type 0x0001 followed by the cookie, whatever the
	 * length field says (Go compares those bytes only) */
	if (tk_be16_load(p) != DERPD_STUN_BINDING_REQUEST)
		return TK_EPROTO;
	const uint8_t *a = p + DERPD_STUN_HDR_LEN;
	size_t left = n - DERPD_STUN_HDR_LEN;
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
		if (t == DERPD_STUN_ATTR_SOFTWARE && l == 8 &&
		    memcmp(a, DERPD_STUN_SOFTWARE, 8) == 0)
			software_ok = true;
		if (t == DERPD_STUN_ATTR_FINGERPRINT && l == 4)
			fp = tk_be32_load(a);
		a += padded;
		left -= padded;
	}
	if (!software_ok || last != DERPD_STUN_ATTR_FINGERPRINT)
		return TK_EPROTO;
	/* the fingerprint covers everything before its 8-byte attribute */
	if (n < DERPD_STUN_HDR_LEN + 8 ||
	    fp != (derpdi_crc32(p, n - 8) ^ DERPD_STUN_FINGERPRINT_XOR))
		return TK_EPROTO;
	memcpy(txid, p + 8, DERPD_STUN_TXID_LEN);
	return 0;
}

size_t
derpdi_stun_response(uint8_t out[DERPD_STUN_RESPONSE_MAX],
    const uint8_t txid[DERPD_STUN_TXID_LEN], const uint8_t *ip, size_t iplen,
    uint16_t port)
{
	uint8_t cookie[4];
	size_t alen = 8 + iplen;

	tk_be32_store(cookie, DERPD_STUN_COOKIE);
	tk_be16_store(out, DERPD_STUN_BINDING_SUCCESS);
	tk_be16_store(out + 2, (uint16_t)alen);
	memcpy(out + 4, cookie, 4);
	memcpy(out + 8, txid, DERPD_STUN_TXID_LEN);
	uint8_t *a = out + DERPD_STUN_HDR_LEN;
	tk_be16_store(a, DERPD_STUN_ATTR_XOR_MAPPED);
	tk_be16_store(a + 2, (uint16_t)(4 + iplen));
	a[4] = 0;
	a[5] = iplen == 4 ? 1 : 2;
	tk_be16_store(a + 6, port ^ (uint16_t)(DERPD_STUN_COOKIE >> 16));
	for (size_t i = 0; i < iplen; i++)
		a[8 + i] = ip[i] ^ (i < 4 ? cookie[i] : txid[i - 4]);
	return DERPD_STUN_HDR_LEN + alen;
}

void
derpdi_stun_readable(derpd_server *s)
{
	uint8_t buf[2048], resp[DERPD_STUN_RESPONSE_MAX], txid[DERPD_STUN_TXID_LEN];

	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		ssize_t n = recvfrom(s->ufd, buf, sizeof(buf), 0,
		    (struct sockaddr *)&ss, &sl);
		if (n < 0)
			return; /* EAGAIN, or an ICMP error reported: next time */
		if (derpdi_stun_parse_request(buf, (size_t)n, txid) != 0) {
			s->st.stun_bad++;
			continue;
		}
		s->st.stun_requests++;
		size_t rl;
		if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *a = (const void *)&ss;
			rl = derpdi_stun_response(resp, txid,
			    (const uint8_t *)&a->sin_addr, 4, ntohs(a->sin_port));
		} else if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const void *)&ss;
			const uint8_t *ip = a->sin6_addr.s6_addr;
			bool mapped = IN6_IS_ADDR_V4MAPPED(&a->sin6_addr);
			rl = derpdi_stun_response(resp, txid, mapped ? ip + 12 : ip,
			    mapped ? 4 : 16, ntohs(a->sin6_port));
		} else {
			continue;
		}
		if (sendto(s->ufd, resp, rl, 0, (struct sockaddr *)&ss, sl) ==
		    (ssize_t)rl)
			s->st.stun_responses++;
	}
}
