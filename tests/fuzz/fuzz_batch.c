/*
 * Fuzz the two decoders that take bytes from other processes on a bus:
 * the packet batch parser (tk_bus_batch_parse) and the topic envelope
 * (tk_envelope_unpack).  Invariants: no crash, over-read or leak; a batch
 * that parses iterates exactly `count` records inside the input and
 * re-encodes to the identical bytes (the format is canonical); an envelope
 * that unpacks re-packs to one that unpacks to the same fields.
 */
#include <stdlib.h>
#include <string.h>

#include "tk/bus_batch.h"
#include "tk/bus_topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_batch(const uint8_t *data, size_t size)
{
	tk_bus_batch_view v;
	tk_bus_batch_stats st;
	tk_bus_batch_enc e;
	tk_bus_batch_rec r;
	nng_msg *m;
	unsigned n = 0;

	memset(&st, 0, sizeof(st));
	if (tk_bus_batch_parse(&v, data, size, &st) != 0) {
		if (st.bs_dropped != 1)
			abort();
		return;
	}
	if (tk_bus_batch_enc_init(&e, tk_bus_batch_kind(&v), TK_BATCH_MAX) !=
	    0)
		return;
	while (tk_bus_batch_next(&v, &r)) {
		if (r.data < data || r.data + r.len > data + size || r.len == 0)
			abort();
		if (tk_bus_batch_enc_add(&e, &r) != 0)
			abort(); /* it fitted once, it fits again */
		n++;
	}
	if (n != v.bv_count || st.bs_records != n)
		abort();
	if (tk_bus_batch_enc_finish(&e, &m) != 0)
		abort();
	if (nng_msg_len(m) != size || memcmp(nng_msg_body(m), data, size) != 0)
		abort();
	nng_msg_free(m);
}

static void
check_envelope(const uint8_t *data, size_t size)
{
	tk_envelope a, b;
	nng_msg *m;

	if (tk_envelope_unpack(&a, data, size) != 0)
		return;
	if (tk_envelope_pack(&m, a.topic, a.epoch, a.seq, a.kind, a.body,
		a.len) != 0)
		abort();
	if (tk_envelope_unpack(&b, nng_msg_body(m), nng_msg_len(m)) != 0)
		abort();
	if (strcmp(a.topic, b.topic) != 0 || a.epoch != b.epoch ||
	    a.seq != b.seq || a.kind != b.kind || a.len != b.len ||
	    (a.len != 0 && memcmp(a.body, b.body, a.len) != 0))
		abort();
	tk_envelope_fini(&b);
	tk_envelope_fini(&a);
	nng_msg_free(m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_batch(data, size);
	check_envelope(data, size);
	return 0;
}
