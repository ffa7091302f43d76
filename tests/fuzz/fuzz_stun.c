/* STUN (libs/stun): the binding request parser (derpd's server) and the
 * response builder on whatever it accepts; the response parser (tk-derp's
 * probe, netcheck): whatever it accepts lies inside the input and a
 * response built from its result parses back to the same address. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tk/stun.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t txid[TK_STUN_TXID_LEN], out[TK_STUN_RESPONSE_MAX];

	if (tk_stun_parse_request(data, size, txid) == 0) {
		uint8_t ip[16] = { 0 };
		memcpy(ip, txid, 12);
		(void)tk_stun_response(out, txid, ip, size & 1 ? 4 : 16,
		    (uint16_t)size);
	}
	if (size >= 20) {
		uint8_t ip[16], ip2[16];
		size_t iplen, iplen2;
		uint16_t port, port2;
		if (tk_stun_parse_response(data, size, data + 8, ip, &iplen,
			&port) == 0) {
			if (iplen != 4 && iplen != 16)
				__builtin_trap();
			size_t rl = tk_stun_response(out, data + 8, ip, iplen, port);
			if (tk_stun_parse_response(out, rl, data + 8, ip2, &iplen2,
				&port2) != 0 || iplen2 != iplen || port2 != port ||
			    memcmp(ip, ip2, iplen) != 0)
				__builtin_trap();
		}
	}
	return 0;
}
