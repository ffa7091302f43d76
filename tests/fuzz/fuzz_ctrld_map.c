/*
 * fuzz_ctrld_map: ctrld's map state (ctrld/src/mapstate.c,
 * tailcfg_decode.c) with sequences of messages.  The input is segments:
 *
 *	JSON bytes '\0'		a MapResponse, applied
 *	'!'			ctrldi_map_stream_reset
 *	'#' u16 len (LE) bytes	ctrldi_map_restore of those bytes on a
 *				second map (any bytes)
 *
 * After every step: a refused message left the snapshot byte-identical;
 * an applied one's delta, applied to the old snapshot the way a
 * subscriber does, gives the new snapshot (less the snapshot-only control
 * time and CollectServices); snapshot -> restore -> snapshot is
 * byte-identical.  A restore that succeeds on any bytes snapshots to bytes
 * that restore to themselves.  Nothing may crash or leak.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tk/clock.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk/bus/v1/ctrl.pb-c.h"
#include "mapstate.h"

#define MAX_STEPS 24

static void
check(bool ok)
{
	if (!ok)
		abort();
}

static bool
same(const tk_buf *a, const tk_buf *b)
{
	return a->len == b->len &&
	    (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

/* A packed Netmap without control time and CollectServices. */
static void
canon(const tk_buf *in, tk_buf *out)
{
	Tk__Bus__V1__Netmap *nm = tk__bus__v1__netmap__unpack(NULL, in->len,
	    in->data);
	uint8_t *p;

	check(nm != NULL);
	nm->has_control_time_unix_ms = false;
	nm->has_collect_services = false;
	check(tk_buf_extend(out, tk__bus__v1__netmap__get_packed_size(nm),
	    &p) == 0);
	tk__bus__v1__netmap__pack(nm, p);
	tk__bus__v1__netmap__free_unpacked(nm, NULL);
}

/* snapshot -> restore -> snapshot gives the same bytes */
static void
roundtrip(const tk_buf *s, const tk_clock *clk)
{
	ctrldi_map *r;
	tk_buf again;

	if (ctrldi_map_new(&r) != 0)
		return;
	ctrldi_map_set_clock(r, clk);
	tk_buf_init(&again);
	check(ctrldi_map_restore(r, s->data, s->len) == 0);
	check(ctrldi_map_snapshot(r, &again) == 0);
	check(same(&again, s));
	tk_buf_fini(&again);
	ctrldi_map_free(r);
}

/* The twin map mo takes the same message handed over
 * (ctrldi_map_apply_owned, which releases text and tape as it decodes):
 * the same outcome, delta and state, byte for byte. */
static void
apply_twin(ctrldi_map *mo, const char *p, size_t n, int rv,
    const tk_buf *delta, const tk_buf *after)
{
	tk_buf d, s;
	ctrldi_map_info info;
	bool changed;
	char err[256];
	char *own = tk_malloc(n + 1);
	int rv_o;

	if (own == NULL)
		abort();
	memcpy(own, p, n);
	own[n] = '\0';
	tk_buf_init(&d);
	tk_buf_init(&s);
	rv_o = ctrldi_map_apply_owned(mo, own, n, &d, &changed, &info, err,
	    sizeof(err));
	check(rv_o == rv);
	if (rv_o == 0)
		ctrldi_map_info_fini(&info);
	check(same(&d, delta));
	check(ctrldi_map_snapshot(mo, &s) == 0);
	check(same(&s, after));
	tk_buf_fini(&d);
	tk_buf_fini(&s);
}

static void
apply_one(ctrldi_map *m, ctrldi_map *mo, const char *p, size_t n,
    const tk_clock *clk)
{
	tk_buf before, after, delta, via, c1, c2;
	ctrldi_map_info info;
	bool changed;
	char err[256];
	int rv;

	tk_buf_init(&before);
	tk_buf_init(&after);
	tk_buf_init(&delta);
	tk_buf_init(&via);
	tk_buf_init(&c1);
	tk_buf_init(&c2);
	check(ctrldi_map_snapshot(m, &before) == 0);
	rv = ctrldi_map_apply(m, p, n, &delta, &changed, &info, err,
	    sizeof(err));
	check(ctrldi_map_snapshot(m, &after) == 0);
	apply_twin(mo, p, n, rv, &delta, &after);
	if (rv != 0) {
		check(rv == TK_EPROTO && err[0] != '\0');
		check(delta.len == 0);
		check(same(&before, &after));
	} else {
		ctrldi_map_info_fini(&info);
		if (changed) {
			check(delta.len > 0);
			check(ctrldi_netmap_apply_delta(before.data, before.len,
			    delta.data, delta.len, &via) == 0);
			canon(&via, &c1);
		} else {
			check(delta.len == 0);
			canon(&before, &c1);
		}
		canon(&after, &c2);
		check(same(&c1, &c2));
		roundtrip(&after, clk);
	}
	tk_buf_fini(&before);
	tk_buf_fini(&after);
	tk_buf_fini(&delta);
	tk_buf_fini(&via);
	tk_buf_fini(&c1);
	tk_buf_fini(&c2);
}

static void
restore_any(const uint8_t *p, size_t n, const tk_clock *clk)
{
	ctrldi_map *r;
	tk_buf s;

	if (ctrldi_map_new(&r) != 0)
		return;
	tk_buf_init(&s);
	if (ctrldi_map_restore(r, p, n) == 0) {
		check(ctrldi_map_snapshot(r, &s) == 0);
		roundtrip(&s, clk);
	}
	tk_buf_fini(&s);
	ctrldi_map_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static tk_fake_clock fc;
	ctrldi_map *m, *mo;
	size_t off = 0;
	int steps = 0;

	tk_fake_clock_init(&fc, 1, 1700000000ull * 1000000000ull);
	if (ctrldi_map_new(&m) != 0)
		return 0;
	if (ctrldi_map_new(&mo) != 0) {
		ctrldi_map_free(m);
		return 0;
	}
	ctrldi_map_set_clock(m, &fc.fc_clock);
	ctrldi_map_set_clock(mo, &fc.fc_clock);
	while (off < size && steps++ < MAX_STEPS) {
		if (data[off] == '!') {
			ctrldi_map_stream_reset(m);
			ctrldi_map_stream_reset(mo);
			off++;
		} else if (data[off] == '#') {
			size_t len;

			if (size - off < 3)
				break;
			len = data[off + 1] | (size_t)data[off + 2] << 8;
			off += 3;
			if (len > size - off)
				len = size - off;
			restore_any(data + off, len, &fc.fc_clock);
			off += len;
		} else {
			const uint8_t *end = memchr(data + off, '\0', size - off);
			size_t len = end ? (size_t)(end - (data + off)) :
					   size - off;

			apply_one(m, mo, (const char *)data + off, len,
			    &fc.fc_clock);
			off += len + (end != NULL);
			tk_fake_clock_advance(&fc, 1000000000ull);
		}
	}
	ctrldi_map_free(m);
	ctrldi_map_free(mo);
	return 0;
}
