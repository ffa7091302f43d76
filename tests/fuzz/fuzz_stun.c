/* STUN binding request parser (derpd stun.c), and the response builder
 * on whatever it accepts. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "stun_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t txid[DERPD_STUN_TXID_LEN], out[DERPD_STUN_RESPONSE_MAX];

	if (derpdi_stun_parse_request(data, size, txid) == 0) {
		uint8_t ip[16] = { 0 };
		memcpy(ip, txid, 12);
		(void)derpdi_stun_response(out, txid, ip, size & 1 ? 4 : 16,
		    (uint16_t)size);
	}
	return 0;
}
