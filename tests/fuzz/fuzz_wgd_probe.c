/*
 * fuzz_wgd_probe: wgd's recognition of ping answers and its packet
 * summaries for the tap (wgd/src/probe.c) on any packet.  Nothing may read past the input; a reply's fields
 * must come from inside it; a probe wgd builds is never taken for an
 * answer.
 */
#include <stdint.h>
#include <string.h>

#include "probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	wgdi_probe_reply r;
	uint8_t p[WGDI_PROBE_MAX], src[16] = { 0 }, dst[16] = { 0 }, d8[8] = { 0 };
	int v = wgdi_probe_parse(data, size, &r);
	wgdi_pkt_sum ps;

	wgdi_pkt_summarize(data, size, &ps);
	if (ps.family != 0 && ps.family != 4 && ps.family != 6)
		__builtin_trap();

	if (v == WGDI_PROBE_REPLY) {
		if (r.family != 4 && r.family != 6)
			__builtin_trap();
		if (r.kind != WGDI_PROBE_TSMP && r.kind != WGDI_PROBE_ICMP)
			__builtin_trap();
	} else if (v != WGDI_PROBE_NONE && v != WGDI_PROBE_BAD) {
		__builtin_trap();
	}
	/* the input's first bytes as a probe's addresses and data */
	memcpy(src, data, size < 16 ? size : 16);
	if (size > 16)
		memcpy(dst, data + 16, size - 16 < 16 ? size - 16 : 16);
	if (size > 32)
		memcpy(d8, data + 32, size - 32 < 8 ? size - 32 : 8);
	for (int kind = WGDI_PROBE_TSMP; kind <= WGDI_PROBE_ICMP; kind++)
		for (int fam = 4; fam <= 6; fam += 2) {
			size_t n = wgdi_probe_build(p, kind, fam, src, dst, d8);
			if (n == 0 || n > sizeof(p) ||
			    wgdi_probe_parse(p, n, &r) != WGDI_PROBE_NONE)
				__builtin_trap();
		}
	return 0;
}
