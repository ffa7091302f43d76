/*
 * The address in a DNS response, for a client of MagicDNS inside netstackd
 * (dial by name, the proxies): the first A or AAAA record of the answer
 * section of a NOERROR response (RFC 1035 §4.1; AAAA RFC 3596).  Any owner
 * name: a recursive answer puts the CNAMEs that lead to the address first.
 */
#include <string.h>

#include "ns_dns.h"
#include "tk/endian.h"
#include "tk/err.h"

int
ns_dns_response_addr(const uint8_t *p, size_t n, tk_ipaddr *out)
{
	uint8_t name[NS_DNS_NAME_MAX];
	size_t nl, off = NS_DNS_HDR_LEN;
	unsigned qd, an;

	if (n < NS_DNS_HDR_LEN || !(tk_be16_load(p + 2) & NS_DNS_F_QR))
		return TK_EPROTO;
	if ((tk_be16_load(p + 2) & NS_DNS_F_RCODE) != NS_DNS_RCODE_NOERROR)
		return TK_ENOENT;
	qd = tk_be16_load(p + 4);
	an = tk_be16_load(p + 6);
	for (unsigned i = 0; i < qd; i++) {
		if (ns_dns_name_read(p, n, off, name, &nl, &off) != 0 || off + 4 > n)
			return TK_EPROTO;
		off += 4;
	}
	for (unsigned i = 0; i < an; i++) {
		if (ns_dns_name_read(p, n, off, name, &nl, &off) != 0 || off + 10 > n)
			return TK_EPROTO;
		uint16_t type = tk_be16_load(p + off);
		uint16_t class = tk_be16_load(p + off + 2);
		size_t rdlen = tk_be16_load(p + off + 8);
		off += 10;
		if (off + rdlen > n)
			return TK_EPROTO;
		if (class == NS_DNS_CLASS_IN &&
		    ((type == NS_DNS_TYPE_A && rdlen == 4) ||
			(type == NS_DNS_TYPE_AAAA && rdlen == 16))) {
			memset(out, 0, sizeof(*out));
			out->family = rdlen == 4 ? TK_AF_INET : TK_AF_INET6;
			memcpy(out->addr, p + off, rdlen);
			return 0;
		}
		off += rdlen;
	}
	return TK_ENOENT;
}
