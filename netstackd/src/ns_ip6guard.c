/*
 * An IPv6 extension-header guard in front of lwIP 2.1.3's ip6_input
 * (LWIP_HOOK_IP6_INPUT, called before lwIP's own checks).  ip6_input reads
 * an extension header's length byte before it checks that the header is
 * there: a packet whose payload ends right after the fixed header, or
 * after one extension header, with a next-header value that names another
 * (Hop-by-Hop 0, Routing 43, Fragment 44, Destination Options 60), makes
 * it read past the packet (found by fuzz_ns_input under ASan).  The guard
 * walks the chain within the payload length the header states and drops
 * (counts) a packet whose chain does not fit; anything else is lwIP's to
 * judge.  Packets come from peers through WireGuard: network input.
 */
#include <stdint.h>

#include "ns_lwip_hooks.h"
#include "lwip/pbuf.h"

static unsigned long long ip6_ext_dropped;

int
ns_ip6_input_hook(struct pbuf *p, struct netif *inp)
{
	const uint8_t *d;
	size_t n, off = 40;
	uint8_t nexth;

	(void)inp;
	if (p == NULL || p->len < 40)
		return 0; /* lwIP drops short packets itself */
	d = p->payload;
	n = 40 + ((size_t)d[4] << 8 | d[5]); /* the payload length stated */
	if (n > p->len)
		return 0; /* longer than the packet, or not in the first pbuf:
			   * lwIP drops or reads it with its own checks */
	nexth = d[6];
	while (nexth == 0 || nexth == 43 || nexth == 44 || nexth == 60) {
		size_t hlen;
		if (n - off < 8)
			goto drop;
		hlen = nexth == 44 ? 8 : 8 * (1 + (size_t)d[off + 1]);
		if (hlen > n - off)
			goto drop;
		nexth = d[off];
		off += hlen;
	}
	return 0;
drop:
	ip6_ext_dropped++;
	pbuf_free(p);
	return 1; /* eaten */
}

unsigned long long
nsi_ip6_ext_dropped(void)
{
	return ip6_ext_dropped;
}
