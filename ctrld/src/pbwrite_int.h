/*
 * ctrld's protobuf writer: tk.bus.v1 encodings written by hand in
 * field-number order, with the presence rules protobuf-c's packer follows
 * for our values, so protobuf-c re-packs them to the same bytes
 * (test_ctrld_map's contract suite).  Field numbers come from F_*() in
 * mapstate.h.  Failure is sticky: after one, writes are dropped and
 * w->err says why.
 */
#ifndef CTRLD_PBWRITE_INT_H
#define CTRLD_PBWRITE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "tk/netaddr.h"
#include "mapstate.h"

/* Makes room for extra more bytes; false (w->err set) if it cannot. */
bool ctrldi_pbw_grow(ctrldi_pbw *w, size_t extra);

/* false once anything failed: later writes are dropped, err says why */
static inline bool
ctrldi_pbw_room(ctrldi_pbw *w, size_t extra)
{
	return !w->err && (w->cap - w->len >= extra || ctrldi_pbw_grow(w, extra));
}

static inline void
ctrldi_pb_put_varint(ctrldi_pbw *w, uint64_t v)
{
	uint8_t *p = w->p + w->len;

	while (v >= 0x80) {
		*p++ = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	*p++ = (uint8_t)v;
	w->len = (size_t)(p - w->p);
}

static inline void
ctrldi_pb_varint_field(ctrldi_pbw *w, unsigned field, uint64_t v)
{
	if (!ctrldi_pbw_room(w, 20))
		return;
	ctrldi_pb_put_varint(w, (uint64_t)field << 3);
	ctrldi_pb_put_varint(w, v);
}

/* int32 and int64 are sign-extended to 64 bits (protobuf int32). */
static inline void
ctrldi_pb_int(ctrldi_pbw *w, unsigned field, int64_t v)
{
	ctrldi_pb_varint_field(w, field, (uint64_t)v);
}

static inline void
ctrldi_pb_bool(ctrldi_pbw *w, unsigned field)
{
	ctrldi_pb_varint_field(w, field, 1);
}

static inline void
ctrldi_pb_bytes(ctrldi_pbw *w, unsigned field, const void *p, size_t n)
{
	if (!ctrldi_pbw_room(w, 20 + n))
		return;
	ctrldi_pb_put_varint(w, (uint64_t)field << 3 | 2);
	ctrldi_pb_put_varint(w, n);
	if (n > 0)
		memcpy(w->p + w->len, p, n);
	w->len += n;
}

static inline void
ctrldi_pb_str(ctrldi_pbw *w, unsigned field, ctrldi_str s)
{
	ctrldi_pb_bytes(w, field, s.p, s.n);
}

static inline void
ctrldi_pb_double(ctrldi_pbw *w, unsigned field, double d)
{
	uint64_t u;

	if (!ctrldi_pbw_room(w, 20))
		return;
	memcpy(&u, &d, 8);
	ctrldi_pb_put_varint(w, (uint64_t)field << 3 | 1);
	for (int i = 0; i < 8; i++)
		w->p[w->len++] = (uint8_t)(u >> (8 * i));
}

/* Starts a length-delimited field; one length byte is reserved. */
static inline size_t
ctrldi_pb_open(ctrldi_pbw *w, unsigned field)
{
	if (!ctrldi_pbw_room(w, 16))
		return 0;
	ctrldi_pb_put_varint(w, (uint64_t)field << 3 | 2);
	w->p[w->len++] = 0;
	return w->len;
}

/* Ends the field ctrldi_pb_open started at mark, writing its length. */
static inline void
ctrldi_pb_close(ctrldi_pbw *w, size_t mark)
{
	size_t len, extra = 0, v;

	if (w->err)
		return;
	len = w->len - mark;
	for (v = len; v >= 0x80; v >>= 7)
		extra++;
	if (extra > 0) {
		if (!ctrldi_pbw_room(w, extra))
			return;
		memmove(w->p + mark + extra, w->p + mark, len);
		w->len += extra;
	}
	{
		uint8_t *p = w->p + mark - 1;

		v = len;
		while (v >= 0x80) {
			*p++ = (uint8_t)(v | 0x80);
			v >>= 7;
		}
		*p = (uint8_t)v;
	}
}

/* tk.bus.v1.Prefix and AddrPort messages as field `field`. */
static inline void
ctrldi_pb_prefix(ctrldi_pbw *w, unsigned field, const tk_ipprefix *x)
{
	size_t m = ctrldi_pb_open(w, field);

	ctrldi_pb_bytes(w, F_BYTES(PREFIX_ADDR), x->ip.addr,
	    x->ip.family == TK_AF_INET ? 4 : 16);
	ctrldi_pb_varint_field(w, F_UINT(PREFIX_BITS), x->bits);
	ctrldi_pb_close(w, m);
}

static inline void
ctrldi_pb_ipport(ctrldi_pbw *w, unsigned field, const tk_ipport *x)
{
	size_t m = ctrldi_pb_open(w, field);

	ctrldi_pb_bytes(w, F_BYTES(ADDR_PORT_ADDR), x->ip.addr,
	    x->ip.family == TK_AF_INET ? 4 : 16);
	ctrldi_pb_varint_field(w, F_UINT(ADDR_PORT_PORT), x->port);
	ctrldi_pb_close(w, m);
}


#endif
