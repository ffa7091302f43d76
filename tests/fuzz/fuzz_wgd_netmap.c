/*
 * fuzz_wgd_netmap: wgd's netmap application (wgd/src/netmap.c) with any
 * bytes.  The input is a sequence of messages, each
 *
 *	u8 kind (bit 0: 1 = Netmap snapshot, 0 = NetmapDelta) | u16 len (BE) | len bytes
 *
 * applied in order to one device and filter, with a few packets through the
 * filter after each.  Undecodable messages must change nothing; nothing
 * may crash or leak; every peer on the device has its record.
 */
#include <stdint.h>
#include <string.h>

#include "tk/core.h"
#include "tk/wg.h"
#include "tk/wg_filter.h"
#include "netmap.h"

static void
no_send(void *arg, tk_wg_peer *peer, const tk_wg_endpoint *ep, const uint8_t *p,
    size_t n)
{
	(void)arg, (void)peer, (void)ep, (void)p, (void)n;
}

static void
no_deliver(void *arg, tk_wg_peer *peer, uint8_t *p, size_t n)
{
	(void)arg, (void)peer, (void)p, (void)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t priv[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
	/* 10.1.2.3 -> 10.0.0.1, UDP 1000 -> 53 */
	static const uint8_t udp[28] = { 0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0,
		10, 1, 2, 3, 10, 0, 0, 1, 0x03, 0xe8, 0, 53, 0, 8, 0, 0 };
	tk_wg_device_config cfg = { 0 };
	tk_wg_device *dev;
	tk_wg_filter *f;
	wgdi_netmap nm = { 0 };
	size_t off = 0;

	cfg.cb.send_datagram = no_send;
	cfg.cb.deliver = no_deliver;
	if (tk_wg_device_new(&dev, &cfg) != 0)
		return 0;
	tk_wg_device_set_private_key(dev, priv);
	if (tk_wg_filter_new(&f, NULL) != 0) {
		tk_wg_device_free(dev);
		return 0;
	}
	nm.dev = dev;
	nm.filter = f;
	tk_wg_filter_set_cap_cb(f, wgdi_netmap_has_cap, &nm);
	while (off + 3 <= size) {
		uint8_t kind = data[off];
		size_t len = (size_t)data[off + 1] << 8 | data[off + 2];
		off += 3;
		if (len > size - off)
			len = size - off;
		if (kind & 1)
			wgdi_netmap_snapshot(&nm, data + off, len);
		else
			wgdi_netmap_delta(&nm, data + off, len);
		off += len;
		tk_wg_filter_in(f, udp, sizeof(udp));
		tk_wg_device_send(dev, udp, sizeof(udp));
		for (tk_wg_peer *p = tk_wg_peer_first(dev); p; p = tk_wg_peer_next(p))
			if (tk_wg_peer_user(p) == NULL)
				__builtin_trap(); /* every peer came with a record */
	}
	wgdi_netmap_forget(&nm);
	tk_wg_filter_free(f);
	tk_wg_device_free(dev);
	return 0;
}
