/*
 * fuzz_wgd_disco: wgd's disco receive path over DERP (wgd/src/disco.c)
 * with any bytes, against a fixed two-peer netmap.  Input:
 *
 *	u8 mode | u8 source | u16 region (BE) | rest
 *
 * mode bit 0 clear: rest is the packet as DERP delivered it (the sender,
 * box and size rules); set: rest is a message sealed by peer A's disco
 * key (bit 1: sealed to the wrong key), so the message handlers (Ping,
 * Pong, CallMeMaybe, the relay types) see arbitrary plaintext.  source
 * picks the DERP source node key: peer A, peer B, or a stranger.  Nothing
 * may crash or leak; a Pong answer goes only to a peer's node key.
 */
#include <stdint.h>
#include <string.h>

#include "tk/aead.h"
#include "tk/core.h"
#include "tk/disco.h"
#include "tk/wg.h"
#include "disco.h"
#include "netmap.h"

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
	wgdi_disco_init(&dc, dev, &mine, &(wgdi_disco_io){ .send = io_send,
	    .pong = io_pong });
	src = data[1] % 3 == 0 ? ka : data[1] % 3 == 1 ? kb : kc;
	uint32_t region = (uint32_t)data[2] << 8 | data[3];
	data += 4, size -= 4;
	if ((data[-4] & 1) == 0) {
		wgdi_disco_rx_derp(&dc, src, region, data, size);
	} else if (size <= 4096) {
		tk_box_precompute(shared, (data[-4] & 2) ? pb_pub.b : mine_pub.b,
		    pa.b);
		if (tk_disco_seal(pkt, sizeof(pkt), &len, shared, pa_pub.b, data,
		    size) == 0)
			wgdi_disco_rx_derp(&dc, src, region, pkt, len);
	}
	wgdi_disco_fini(&dc);
out:
	wgdi_netmap_forget(&nm);
	tk_wg_device_free(dev);
	return 0;
}
