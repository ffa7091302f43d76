/*
 * fuzz_wgd_disco: wgd's disco receive path over DERP (wgd/src/disco.c)
 * with any bytes, against a fixed two-peer netmap.  Input:
 *
 *	u8 mode | u8 source | u16 region (BE) | rest
 *
 * mode bit 0 clear: rest is the packet as DERP delivered it (the sender,
 * box and size rules); set: rest is a message sealed by peer A's disco
 * key (bit 1: sealed to the wrong key), so the message handlers (Ping,
 * Pong, CallMeMaybe, the relay types) see arbitrary plaintext.  Bit 2:
 * the packet arrives over UDP instead, from an endpoint made of source and
 * region (path selection, path.c, sees it: candidates, duplicate pings,
 * pongs), and a path tick follows.  source picks the DERP source node key:
 * peer A, peer B, or a stranger.  Nothing may crash or leak; a Pong answer
 * goes only to a peer's node key, UDP disco only to the source endpoint
 * or a candidate.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tk/aead.h"
#include "tk/core.h"
#include "tk/disco.h"
#include "tk/wg.h"
#include "disco.h"
#include "netmap.h"
#include "path.h"
#include "stun.h"

static uint8_t ka[32], kb[32], kc[32];

static void
io_send(void *arg, const uint8_t k[32], uint16_t region, const uint8_t *p,
    size_t n)
{
	(void)arg, (void)region, (void)p;
	if ((memcmp(k, ka, 32) != 0 && memcmp(k, kb, 32) != 0) ||
	    n < TK_DISCO_OVERHEAD)
		__builtin_trap();
}

static void
io_udp(void *arg, const tk_wg_endpoint *ep, const uint8_t *p, size_t n)
{
	(void)arg, (void)p;
	if (ep->ep_family != 4 && ep->ep_family != 6)
		__builtin_trap();
	if (n < TK_DISCO_OVERHEAD)
		__builtin_trap();
}

static void
io_stun(void *arg, const tk_wg_endpoint *ep, const uint8_t *p, size_t n)
{
	(void)arg, (void)p;
	if (ep->ep_family != 4 || n != 40) /* a binding request */
		__builtin_trap();
}

static size_t
io_eps(void *arg, tk_wg_endpoint *out, size_t cap)
{
	(void)arg;
	if (cap < 1)
		return 0;
	memset(out, 0, sizeof(*out));
	out->ep_family = 4;
	out->ep_addr[0] = 10, out->ep_addr[3] = 1;
	out->ep_port = 41641;
	return 1;
}

static bool
io_pong(void *arg, const uint8_t k[32], uint16_t region, const tk_disco_msg *m)
{
	(void)arg, (void)k, (void)region;
	return m->txid[0] & 1;
}

static size_t
netmap_of(uint8_t *out, const tk_disco_pub *da, const tk_disco_pub *db)
{
	Tk__Bus__V1__Netmap nm = TK__BUS__V1__NETMAP__INIT;
	Tk__Bus__V1__Node a = TK__BUS__V1__NODE__INIT, b = TK__BUS__V1__NODE__INIT;
	Tk__Bus__V1__Node *pp[2] = { &a, &b };

	a.has_id = b.has_id = true, a.id = 2, b.id = 3;
	a.has_key = b.has_key = true;
	a.key.data = ka, b.key.data = kb, a.key.len = b.key.len = 32;
	a.has_disco_key = b.has_disco_key = true;
	a.disco_key.data = (uint8_t *)da->b, b.disco_key.data = (uint8_t *)db->b;
	a.disco_key.len = b.disco_key.len = 32;
	a.has_home_derp = true, a.home_derp = 1; /* under path selection */
	nm.peers = pp, nm.n_peers = 2;
	return tk__bus__v1__netmap__pack(&nm, out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t node_priv[32] = { 9, 9, 9 };
	static const tk_disco_priv mine = { { 1, 2, 3 } }, pa = { { 4, 5, 6 } },
		pb = { { 7, 8, 9 } };
	static uint8_t pkt[TK_DISCO_OVERHEAD + 4096];
	static wgdi_disco dc;
	tk_disco_pub mine_pub, pa_pub, pb_pub;
	tk_wg_device_config cfg = { 0 };
	tk_wg_device *dev;
	wgdi_netmap nm = { 0 };
	uint8_t nmb[512], shared[32];
	const uint8_t *src;
	size_t len;

	if (size < 4)
		return 0;
	memset(ka, 0xaa, 32), memset(kb, 0xbb, 32), memset(kc, 0xcc, 32);
	tk_disco_priv_public(&mine, &mine_pub);
	tk_disco_priv_public(&pa, &pa_pub);
	tk_disco_priv_public(&pb, &pb_pub);
	if (tk_wg_device_new(&dev, &cfg) != 0)
		return 0;
	tk_wg_device_set_private_key(dev, node_priv);
	nm.dev = dev;
	if (wgdi_netmap_snapshot(&nm, nmb, netmap_of(nmb, &pa_pub, &pb_pub)) != 0)
		goto out;
	nm.derp = true;
	wgdi_disco_init(&dc, dev, &mine, &(wgdi_disco_io){ .send = io_send,
	    .pong = io_pong, .send_udp = io_udp });
	wgdi_paths *ps = NULL;
	if (wgdi_paths_new(&ps, dev, &dc, NULL, &(wgdi_paths_io){
		.send_udp = io_udp, .my_endpoints = io_eps }) != 0)
		goto out;
	dc.paths = ps;
	src = data[1] % 3 == 0 ? ka : data[1] % 3 == 1 ? kb : kc;
	uint32_t region = (uint32_t)data[2] << 8 | data[3];
	bool udp = data[0] & 4;
	tk_wg_endpoint from = { .ep_family = (data[1] & 0x80) ? 6 : 4,
		.ep_addr = { 10, 0, data[1], data[2] }, .ep_port = (uint16_t)region };
	data += 4, size -= 4;
	const uint8_t *pk = data;
	size_t pn = size;
	if ((data[-4] & 1) != 0) {
		if (size > 4096)
			goto done;
		tk_box_precompute(shared, (data[-4] & 2) ? pb_pub.b : mine_pub.b,
		    pa.b);
		if (tk_disco_seal(pkt, sizeof(pkt), &len, shared, pa_pub.b, data,
		    size) != 0)
			goto done;
		pk = pkt, pn = len;
	}
	if (udp) {
		/* the STUN client sees the same bytes from a server of its map */
		wgdi_stun *st = NULL;
		if (wgdi_stun_new(&st, NULL) == 0) {
			Tk__Bus__V1__DERPMap dm = TK__BUS__V1__DERPMAP__INIT;
			Tk__Bus__V1__DERPRegion rg = TK__BUS__V1__DERPREGION__INIT, *rgp = &rg;
			Tk__Bus__V1__DERPNode nd = TK__BUS__V1__DERPNODE__INIT, *ndp = &nd;
			char ip4[20];
			bool ch;
			snprintf(ip4, sizeof(ip4), "10.0.%u.%u", from.ep_addr[2],
			    from.ep_addr[3]);
			nd.ipv4 = ip4, nd.has_stun_port = true, nd.stun_port = from.ep_port;
			rg.nodes = &ndp, rg.n_nodes = 1;
			dm.regions = &rgp, dm.n_regions = 1;
			wgdi_stun_set_map(st, &dm);
			wgdi_stun_tick(st, io_stun, NULL);
			if (wgdi_stun_looks_like(data, size))
				wgdi_stun_rx(st, &from, data, size, &ch);
			tk_wg_endpoint eps[4];
			wgdi_stun_endpoints(st, eps, 4);
			wgdi_stun_free(st);
		}
		wgdi_disco_rx_udp(&dc, &from, pk, pn);
		wgdi_disco_rx_udp(&dc, &from, pk, pn); /* the duplicate rule */
		tk_wg_endpoint to;
		uint16_t r;
		wgdi_paths_route(ps, tk_wg_peer_find(dev, ka), true, &to, &r);
		wgdi_paths_tick(ps, true);
	} else {
		wgdi_disco_rx_derp(&dc, src, region, pk, pn);
	}
done:
	wgdi_paths_free(ps);
	wgdi_disco_fini(&dc);
out:
	wgdi_netmap_forget(&nm);
	tk_wg_device_free(dev);
	return 0;
}
