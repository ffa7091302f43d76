/*
 * fuzz_ctrld_wire: ctrld's readers of control-server bytes: the ts2021
 * record reader (garbage, and valid records of fuzzed plaintext cut at
 * fuzzed boundaries) and the map stream's frame reader (raw JSON and zstd)
 * behind it.  Invariants: no crash or leak; a dead connection stays dead;
 * every message handed up is NUL-terminated and as long as announced.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapframe.h"
#include "tk/core.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "ctlconn.h"
#include "ts2021.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ts2021 base;
static uint8_t srv_key[32]; /* the server's send key = our receive key */

static void
hex(uint8_t *out, const char *s)
{
	for (size_t i = 0; s[2 * i]; i++) {
		unsigned v;
		sscanf(s + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
}

static void
setup(void)
{
	uint8_t mp[32], sp[32], ep[32], init[TS2021_INIT_LEN], resp[TS2021_RESP_LEN];
	size_t used;
	char err[64];

	hex(mp, "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1");
	hex(sp, "50d20b455ecf12bc453f83c2cfdb2a24925d06cf2598dcaa54e91af82ce9f765");
	hex(ep, "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a");
	hex(resp, "02003095ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f14480884392de"
	    "cf39b073e2e64291c65029bdeeed");
	ts2021_client_init(&base, 145, mp, sp, ep, NULL, init);
	if (ts2021_client_finish(&base, resp, sizeof(resp), &used, err, sizeof(err)) != 0)
		abort();
	memcpy(srv_key, base.rx.cs_k, 32);
}

static int
on_msg(void *arg, char *json, size_t n)
{
	(void)arg;
	if (json[n] != '\0')
		abort();
	tk_free(json);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	ts2021 c;
	tk_buf plain, rec;
	char why[128];
	int cb = 0;

	if (!ready) {
		tk_init();
		setup();
		ready = true;
	}
	if (size < 2)
		return 0;
	c = base;
	tk_buf_init(&plain);
	tk_buf_init(&rec);
	uint8_t mode = data[0], cut = data[1] ? data[1] : 1;
	data += 2, size -= 2;
	/* the HTTP upgrade response head (ctlconn.c), on the raw bytes */
	const char *hp = (const char *)data, *hv;
	size_t he = ctrldi_http_head_end(hp, size), hvl;
	int st;
	if (he > size || (ctrldi_http_head_parse(hp, he ? he : size, &st) == 0 &&
	    (st < 100 || st > 999)))
		abort();
	if (ctrldi_http_header(hp, he ? he : size, "Upgrade", &hv, &hvl) &&
	    (hv < hp || hv + hvl > hp + size))
		abort();
	if (mode & 1) {
		/* valid records of this plaintext, as the server would send */
		tk_noise_cs srv;
		tk_noise_cs_init(&srv, srv_key, TK_NONCE_BE);
		for (size_t off = 0; off < size;) {
			size_t k = size - off > TS2021_MAX_PLAIN ? TS2021_MAX_PLAIN : size - off;
			uint8_t *f;
			if (tk_buf_extend(&rec, 3 + k + 16, &f) != 0)
				break;
			f[0] = TS2021_MSG_RECORD;
			tk_be16_store(f + 1, (uint16_t)(k + 16));
			tk_noise_cs_seal(&srv, f + 3, NULL, 0, data + off, k);
			off += k;
		}
		if (mode & 2 && rec.len > 4)
			rec.data[rec.len / 2] ^= 0x40; /* and a corrupted one */
	} else {
		tk_buf_append(&rec, data, size);
	}
	/* feed in pieces of `cut` bytes */
	int rv = 0;
	for (size_t off = 0; off < rec.len && rv == 0; off += cut) {
		size_t k = rec.len - off < cut ? rec.len - off : cut;
		rv = ts2021_open(&c, rec.data + off, k, &plain);
	}
	if (rv != 0 && ts2021_open(&c, rec.data, rec.len ? 1 : 0, &plain) != TK_ESTATE &&
	    rec.len)
		abort(); /* dead stays dead */
	if ((mode & 3) == 1 && (rv != 0 || plain.len != size ||
	    (size > 0 && memcmp(plain.data, data, size) != 0)))
		abort(); /* valid records come out as they went in */
	ctrldi_map_frames(&plain, mode & 4, on_msg, NULL, &cb, why, sizeof(why));
	tk_buf_fini(&plain);
	tk_buf_fini(&rec);
	return 0;
}
