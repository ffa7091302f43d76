/*
 * Fuzz netstackd's local API codec the way the server uses it: the input
 * is a client's byte stream, parsed request after request
 * (ns_api_req_parse) until it needs more bytes or the framing breaks; the
 * same bytes also go to the client-side decoders (frames, peer records,
 * UDP headers).
 *
 * Invariants: a parsed or rejected frame consumes exactly its length
 * (8..NS_API_FRAME_MAX) and never more than the input; a rejection names
 * why; an accepted request re-encodes to the very bytes it came from.
 */
#include <stdlib.h>
#include <string.h>

#include "netstackd/ns_api.h"
#include "tk/endian.h"
#include "tk/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                             \
	do {                                                                 \
		if (!(x))                                                    \
			abort();                                             \
	} while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data;
	size_t n = size;

	for (int guard = 0; guard < 10000; guard++) {
		ns_api_req r;
		size_t used = 0;
		int rv = ns_api_req_parse(p, n, &r, &used);

		if (rv == TK_EAGAIN || rv == TK_EPROTO)
			break;
		CHECK(rv == 0 || rv == TK_EINVAL);
		CHECK(used >= NS_API_HDR_LEN && used <= NS_API_FRAME_MAX && used <= n);
		CHECK(used == tk_be16_load(p));
		if (rv == TK_EINVAL) {
			CHECK(r.why != NULL && r.why[0] != '\0');
		} else {
			uint8_t again[NS_API_FRAME_MAX];
			size_t m = ns_api_req_encode(again, sizeof(again), &r);
			CHECK(m == used && memcmp(again, p, m) == 0);
		}
		p += used;
		n -= used;
	}

	ns_api_frame f;
	size_t used;
	if (ns_api_frame_parse(data, size, &f, &used) == 0)
		CHECK(used <= size && f.body + f.len == data + used);

	ns_api_peer pi;
	if (ns_api_peer_decode(data, size, &pi) == 0) {
		uint8_t again[NS_API_FRAME_MAX];
		size_t m = ns_api_peer_encode(again, sizeof(again), &pi);
		CHECK(m > 0 && m <= size);
		CHECK(strlen(pi.name) <= NS_API_NAME_MAX && strlen(pi.login) <= NS_API_NAME_MAX);
	}

	ns_api_addr a;
	if (ns_udp_hdr_decode(data, size, &a) == 0) {
		uint8_t h[NS_UDP_HDR_LEN];
		ns_udp_hdr_encode(h, &a);
		CHECK(memcmp(h, data, NS_UDP_HDR_LEN) == 0);
	}
	return 0;
}
