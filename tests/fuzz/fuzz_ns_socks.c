/* netstackd's SOCKS5 server parser (netstackd/src/ns_socks.c): the input
 * is a client's byte stream, delivered in chunks whose sizes come from the
 * input, against a server with or without credentials; and the UDP
 * ASSOCIATE header decoder, whose result must encode back to the same
 * header.  Invariants: never consumes more than it was given, never
 * consumes on "need more", replies fit their buffer. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "ns_proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
stream(const uint8_t *data, size_t size, const ns_socks_cfg *cfg)
{
	uint8_t buf[NS_SOCKS_MSG_MAX * 2];
	size_t have = 0, pos = 0;
	ns_socks s;
	ns_socks_result r;

	ns_socks_init(&s, cfg);
	for (int steps = 0; steps < 64 && pos <= size; steps++) {
		/* deliver 1..16 more bytes (or all that is left) */
		size_t chunk = pos < size ? (size_t)(data[pos] & 15) + 1 : 0;
		chunk = chunk > size - pos ? size - pos : chunk;
		if (have + chunk > sizeof(buf))
			chunk = sizeof(buf) - have;
		memcpy(buf + have, data + pos, chunk);
		have += chunk;
		pos += chunk;
		if (ns_socks_feed(&s, buf, have, &r) != 0)
			return;
		if (r.consumed > have || r.reply_len > sizeof(r.reply))
			__builtin_trap();
		if (r.event == NS_SOCKS_NEED_MORE) {
			if (r.consumed != 0)
				__builtin_trap();
			if (chunk == 0 || have == sizeof(buf))
				return;
			continue;
		}
		memmove(buf, buf + r.consumed, have - r.consumed);
		have -= r.consumed;
		if (r.event == NS_SOCKS_CLOSE)
			return;
		if (r.event == NS_SOCKS_CONNECT ||
		    r.event == NS_SOCKS_UDP_ASSOCIATE) {
			uint8_t out[NS_SOCKS_REPLY_MAX];
			size_t ol;
			if (ns_socks_reply(&s, 0, NULL, out, &ol) != 0 ||
			    ol > sizeof(out))
				__builtin_trap();
			return;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ns_socks_cfg open = { .allow_udp = true };
	ns_socks_cfg auth = { .user = "alice", .pass = "s3cret" };

	stream(data, size, &open);
	stream(data, size, &auth);

	ns_socks_addr a, b;
	size_t hl, hl2;
	uint8_t enc[300];
	if (ns_socks_udp_decode(data, size, &a, &hl, NULL) == 0) {
		if (hl > size)
			__builtin_trap();
		/* a name that is an address literal decodes as that address;
		 * anything else encodes back to the same bytes after RSV */
		if (ns_socks_udp_encode(&a, enc, sizeof(enc), &hl2) != 0 ||
		    ns_socks_udp_decode(enc, hl2, &b, &hl, NULL) != 0 ||
		    b.atyp != a.atyp || b.port != a.port)
			__builtin_trap();
	}
	return 0;
}
