/*
 * Userspace GSO: split a TUN super-packet into MSS-sized segments.
 *
 * The kernel hands TSO frames up as one IP/TCP header followed by up to 64 KiB
 * of payload, with a virtio_net_hdr saying gso_type/gso_size and (always, for
 * TSO) NEEDS_CSUM: the TCP checksum field holds only the pseudo-header sum.
 * Each segment gets what the kernel's tcp_gso_segment/inet_gso_segment would
 * give it: its own IPv4 total length, ID (first + i) and header checksum or
 * IPv6 payload length, seq advanced by gso_size per segment, FIN and PSH
 * only on the last segment, CWR only on the first, and a full TCP checksum.
 *
 * hdr_len from the kernel is not trusted (on the forwarding path it can
 * cover the whole first segment; wireguard-go tun_linux.go notes the same):
 * the header length comes from parsing IP and TCP.  Everything is validated
 * before the first segment is delivered.
 */
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"

#include "tun_int.h"

/* A validated super-packet. */
typedef struct split {
	const uint8_t *pkt; /* IP packet (after the vnet header) */
	size_t plen;	    /* its length */
	size_t l4off;	    /* TCP header offset (IP header length) */
	size_t hlen;	    /* IP + TCP header length */
	size_t gso;	    /* payload bytes per segment */
	bool v6;
} split;

static int
parse_gso(split *s, const tki_vnet *h, const uint8_t *pkt, size_t plen)
{
	uint8_t type = (uint8_t)(h->gso_type & ~VIRTIO_NET_HDR_GSO_ECN);
	size_t thl;

	s->pkt = pkt;
	s->plen = plen;
	if (plen < TKI_IP4_HLEN)
		return TK_EPROTO;
	if (type == VIRTIO_NET_HDR_GSO_TCPV4) {
		if (pkt[0] >> 4 != 4)
			return TK_EPROTO;
		s->v6 = false;
		s->l4off = (size_t)(pkt[0] & 0x0f) * 4;
		if (s->l4off < TKI_IP4_HLEN || s->l4off > plen)
			return TK_EPROTO;
		if (pkt[9] != TKI_IPPROTO_TCP)
			return TK_EPROTO;
		if (tk_be16_load(pkt + 2) != plen)
			return TK_EPROTO;
		/* MF or a fragment offset: not something TSO produces. */
		if ((tk_be16_load(pkt + 6) & 0x3fff) != 0)
			return TK_EPROTO;
	} else if (type == VIRTIO_NET_HDR_GSO_TCPV6) {
		if (plen < TKI_IP6_HLEN || pkt[0] >> 4 != 6)
			return TK_EPROTO;
		s->v6 = true;
		s->l4off = TKI_IP6_HLEN;
		/* Extension headers are not split here (nor produced by TSO). */
		if (pkt[6] != TKI_IPPROTO_TCP)
			return TK_EPROTO;
		if ((size_t)tk_be16_load(pkt + 4) + TKI_IP6_HLEN != plen)
			return TK_EPROTO;
	} else {
		return TK_EPROTO; /* UDP (UFO/USO) was not enabled */
	}
	if (s->l4off + TKI_TCP_HLEN > plen)
		return TK_EPROTO;
	thl = (size_t)(pkt[s->l4off + 12] >> 4) * 4;
	if (thl < TKI_TCP_HLEN)
		return TK_EPROTO;
	s->hlen = s->l4off + thl;
	if (s->hlen > plen)
		return TK_EPROTO;
	if ((h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
	    (h->csum_start != s->l4off || h->csum_offset != TKI_TCP_CSUM_OFF))
		return TK_EPROTO;
	s->gso = h->gso_size;
	if (s->gso == 0 || s->hlen + s->gso > TK_TUN_MAX_PKT)
		return TK_EPROTO;
	return 0;
}

/* Builds segment i (payload [off, off+len) of the super-packet) at out. */
static void
build_seg(const split *s, uint8_t *out, unsigned i, size_t off, size_t len,
    bool last)
{
	const uint8_t *in = s->pkt;
	size_t tot = s->hlen + len;
	uint8_t *th = out + s->l4off;
	uint8_t fl;
	uint64_t acc;

	memcpy(out, in, s->hlen);
	memcpy(out + s->hlen, in + s->hlen + off, len);
	if (s->v6) {
		tk_be16_store(out + 4, (uint16_t)(tot - TKI_IP6_HLEN));
	} else {
		tk_be16_store(out + 2, (uint16_t)tot);
		tk_be16_store(out + 4, (uint16_t)(tk_be16_load(in + 4) + i));
		tk_be16_store(out + 10, 0);
		tk_be16_store(out + 10,
		    (uint16_t)~tki_csum_fold(tki_csum_add(0, out, s->l4off)));
	}
	tk_be32_store(th + 4, tk_be32_load(in + s->l4off + 4) + (uint32_t)off);
	fl = th[TKI_TCP_FLAGS_OFF];
	if (!last)
		fl &= (uint8_t)~(TKI_TCP_FIN | TKI_TCP_PSH);
	if (i > 0)
		fl &= (uint8_t)~TKI_TCP_CWR;
	th[TKI_TCP_FLAGS_OFF] = fl;
	tk_be16_store(th + TKI_TCP_CSUM_OFF, 0);
	acc = tki_csum_pseudo(out, s->v6, TKI_IPPROTO_TCP,
	    (uint32_t)(tot - s->l4off));
	acc = tki_csum_add(acc, th, tot - s->l4off);
	tk_be16_store(th + TKI_TCP_CSUM_OFF, (uint16_t)~tki_csum_fold(acc));
}

/*
 * NEEDS_CSUM on a single packet: the field at csum_start + csum_offset holds
 * the pseudo-header sum; sum from csum_start to the end over it (the
 * kernel's skb_checksum_help, which also turns 0 into 0xffff for UDP).
 */
static void
finish_csum(uint8_t *pkt, size_t plen, const tki_vnet *h)
{
	size_t at = (size_t)h->csum_start + h->csum_offset;
	uint64_t acc;
	uint16_t c;

	acc = tki_csum_add16(0, tk_be16_load(pkt + at));
	tk_be16_store(pkt + at, 0);
	acc = tki_csum_add(acc, pkt + h->csum_start, plen - h->csum_start);
	c = (uint16_t)~tki_csum_fold(acc);
	tk_be16_store(pkt + at, c == 0 ? 0xffff : c);
}

int
tki_gso_split(const uint8_t *frame, uint8_t *mframe, size_t n,
    uint8_t *scratch, tk_tun_buf_fn buf, tk_tun_pkt_fn cb, void *arg,
    unsigned *npkts, bool *gso)
{
	tki_vnet h;
	split s;
	const uint8_t *pkt;
	uint8_t *out = scratch + TK_TUN_HEADROOM;
	size_t plen, paylen, off;
	unsigned i, nseg;
	int rv;

	if (n <= TK_TUN_VNET_HDR_LEN || n - TK_TUN_VNET_HDR_LEN > TK_TUN_MAX_PKT)
		return TK_EPROTO;
	tki_vnet_load(&h, frame);
	pkt = frame + TK_TUN_VNET_HDR_LEN;
	plen = n - TK_TUN_VNET_HDR_LEN;
	if (h.gso_type == VIRTIO_NET_HDR_GSO_NONE) {
		uint8_t *p = out;

		if ((h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
		    ((size_t)h.csum_start + h.csum_offset + 2 > plen))
			return TK_EPROTO;
		if (mframe != NULL)
			p = mframe + TK_TUN_VNET_HDR_LEN;
		else
			memcpy(p, pkt, plen);
		if (h.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM)
			finish_csum(p, plen, &h);
		if (gso != NULL)
			*gso = false;
		cb(arg, p, plen);
		*npkts = 1;
		return 0;
	}
	if ((rv = parse_gso(&s, &h, pkt, plen)) != 0)
		return rv;
	paylen = plen - s.hlen;
	nseg = paylen == 0 ? 1 : (unsigned)((paylen + s.gso - 1) / s.gso);
	for (i = 0, off = 0; i < nseg; i++, off += s.gso) {
		size_t len = TK_MIN(s.gso, paylen - off);
		uint8_t *b;

		/* each segment where the caller wants it (where it will be
		 * encrypted and sent from), else in scratch */
		if (buf != NULL && (b = buf(arg)) != NULL)
			out = b + TK_TUN_HEADROOM;
		else
			out = scratch + TK_TUN_HEADROOM;
		build_seg(&s, out, i, off, len, i + 1 == nseg);
		cb(arg, out, s.hlen + len);
	}
	if (gso != NULL)
		*gso = true;
	*npkts = nseg;
	return 0;
}

int
tk_tun_gso_split(const uint8_t *frame, size_t n, uint8_t *scratch,
    tk_tun_pkt_fn cb, void *arg, unsigned *npkts)
{
	if (frame == NULL || scratch == NULL || cb == NULL || npkts == NULL)
		return TK_EINVAL;
	return tki_gso_split(frame, NULL, n, scratch, NULL, cb, arg, npkts,
	    NULL);
}
