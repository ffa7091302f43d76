/* Packet batch codec (layout: tk/bus_batch.h, proto/tk/bus/v1/packet.proto). */
#include <string.h>

#include "tk/bus.h"
#include "tk/bus_batch.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"

static size_t
rec_hdr_len(uint8_t kind)
{
	return TK_BATCH_REC_HDR_LEN +
	    (kind == TK_BATCH_PEER ? TK_BATCH_PEER_EXTRA : 0);
}

static bool
kind_ok(unsigned kind)
{
	return kind == TK_BATCH_IP || kind == TK_BATCH_PEER ||
	    kind == TK_BATCH_CONTROL;
}

/* ---- encoder ------------------------------------------------------------ */

int
tk_bus_batch_enc_init(tk_bus_batch_enc *e, enum tk_batch_kind kind,
    size_t target)
{
	nng_msg *m;
	int rv;

	if (e == NULL || !kind_ok(kind) || target > TK_BATCH_MAX ||
	    (target != 0 && target < TK_BATCH_HDR_LEN + TK_BATCH_REC_HDR_LEN +
		    TK_BATCH_PEER_EXTRA + 1))
		return TK_EINVAL;
	if (target == 0)
		target = TK_BATCH_TARGET;
	/*
	 * The whole target is allocated now and the message is trimmed at
	 * finish: records are written in place, nothing is ever inserted.
	 */
	if ((rv = nng_msg_alloc(&m, target)) != 0)
		return tk_err_nng(rv);
	memset(e, 0, sizeof(*e));
	e->be_msg = m;
	e->be_base = nng_msg_body(m);
	e->be_cap = target;
	e->be_target = target;
	e->be_len = TK_BATCH_HDR_LEN;
	e->be_kind = (uint8_t)kind;
	return 0;
}

int
tk_bus_batch_enc_reserve(tk_bus_batch_enc *e, const tk_bus_batch_rec *rec,
    size_t len, uint8_t **data)
{
	size_t need, hl;
	uint8_t *p;

	if (e == NULL || e->be_msg == NULL || rec == NULL || data == NULL ||
	    len == 0 || len > TK_BATCH_REC_MAX)
		return TK_EINVAL;
	if (e->be_count == UINT16_MAX)
		return TK_EMSGSIZE;
	hl = rec_hdr_len(e->be_kind);
	need = e->be_len + hl + len;
	if (need > e->be_target) {
		int rv;

		if (e->be_count > 0)
			return TK_EMSGSIZE; /* finish this one first */
		/* A lone record larger than the target: grow once. */
		if ((rv = nng_msg_realloc(e->be_msg, need)) != 0)
			return tk_err_nng(rv);
		e->be_base = nng_msg_body(e->be_msg);
		e->be_cap = need;
	}
	p = e->be_base + e->be_len;
	tk_be16_store(p, (uint16_t)len);
	p[2] = rec->type;
	p[3] = 0;
	if (e->be_kind == TK_BATCH_PEER) {
		tk_be32_store(p + 4, rec->derp_region);
		memcpy(p + 8, rec->key.b, TK_KEY_LEN);
	}
	e->be_len = need;
	e->be_count++;
	*data = p + hl;
	return 0;
}

int
tk_bus_batch_enc_add(tk_bus_batch_enc *e, const tk_bus_batch_rec *rec)
{
	uint8_t *d;
	int rv;

	if (rec == NULL || (rec->data == NULL && rec->len != 0))
		return TK_EINVAL;
	if ((rv = tk_bus_batch_enc_reserve(e, rec, rec->len, &d)) != 0)
		return rv;
	memcpy(d, rec->data, rec->len);
	return 0;
}

int
tk_bus_batch_enc_finish(tk_bus_batch_enc *e, nng_msg **out)
{
	uint8_t *h;

	if (e == NULL || out == NULL || e->be_msg == NULL)
		return TK_EINVAL;
	if (e->be_count == 0)
		return TK_ESTATE;
	h = e->be_base;
	h[0] = TK_BATCH_VERSION;
	h[1] = e->be_kind;
	tk_be16_store(h + 2, e->be_count);
	tk_be32_store(h + 4, 0);
	/* Shrinking only moves nng's length mark: no copy, no realloc. */
	if (e->be_len < e->be_cap)
		nng_msg_chop(e->be_msg, e->be_cap - e->be_len);
	*out = e->be_msg;
	memset(e, 0, sizeof(*e));
	return 0;
}

void
tk_bus_batch_enc_fini(tk_bus_batch_enc *e)
{
	if (e == NULL)
		return;
	if (e->be_msg != NULL)
		nng_msg_free(e->be_msg);
	memset(e, 0, sizeof(*e));
}

/* ---- decoder ------------------------------------------------------------ */

static int
drop(tk_bus_batch_stats *st, enum tk_batch_why why)
{
	if (st != NULL) {
		st->bs_dropped++;
		st->bs_why[why]++;
	}
	return TK_EPROTO;
}

int
tk_bus_batch_parse(tk_bus_batch_view *v, const uint8_t *p, size_t n,
    tk_bus_batch_stats *st)
{
	size_t off, hl;
	unsigned count, kind;

	if (v == NULL || (p == NULL && n != 0))
		return TK_EINVAL;
	if (n < TK_BATCH_HDR_LEN)
		return drop(st, TK_BATCH_WHY_SHORT);
	if (n > TK_BATCH_MAX)
		return drop(st, TK_BATCH_WHY_OVERSIZE);
	if (p[0] != TK_BATCH_VERSION)
		return drop(st, TK_BATCH_WHY_VERSION);
	kind = p[1];
	if (!kind_ok(kind))
		return drop(st, TK_BATCH_WHY_KIND);
	if (tk_be32_load(p + 4) != 0)
		return drop(st, TK_BATCH_WHY_RESERVED);
	count = tk_be16_load(p + 2);
	if (count == 0)
		return drop(st, TK_BATCH_WHY_EMPTY);
	hl = rec_hdr_len((uint8_t)kind);
	off = TK_BATCH_HDR_LEN;
	/* Walk every record header once; all arithmetic stays below n. */
	for (unsigned i = 0; i < count; i++) {
		size_t len;

		if (n - off < hl)
			return drop(st, TK_BATCH_WHY_TRUNCATED);
		len = tk_be16_load(p + off);
		if (p[off + 3] != 0)
			return drop(st, TK_BATCH_WHY_RESERVED);
		if (len == 0)
			return drop(st, TK_BATCH_WHY_ZERO_LEN);
		if (n - off - hl < len)
			return drop(st, TK_BATCH_WHY_TRUNCATED);
		off += hl + len;
	}
	if (off != n)
		return drop(st, TK_BATCH_WHY_TRAILING);
	v->bv_p = p;
	v->bv_n = n;
	v->bv_off = TK_BATCH_HDR_LEN;
	v->bv_count = (uint16_t)count;
	v->bv_next = 0;
	v->bv_kind = (uint8_t)kind;
	if (st != NULL) {
		st->bs_batches++;
		st->bs_records += count;
	}
	return 0;
}

int
tk_bus_batch_parse_msg(tk_bus_batch_view *v, nng_msg *msg,
    tk_bus_batch_stats *st)
{
	if (msg == NULL)
		return TK_EINVAL;
	return tk_bus_batch_parse(v, nng_msg_body(msg), nng_msg_len(msg), st);
}

bool
tk_bus_batch_next(tk_bus_batch_view *v, tk_bus_batch_rec *rec)
{
	const uint8_t *p;
	size_t hl;

	if (v->bv_next >= v->bv_count)
		return false;
	p = v->bv_p + v->bv_off;
	hl = rec_hdr_len(v->bv_kind);
	rec->len = tk_be16_load(p);
	rec->type = p[2];
	if (v->bv_kind == TK_BATCH_PEER) {
		rec->derp_region = tk_be32_load(p + 4);
		memcpy(rec->key.b, p + 8, TK_KEY_LEN);
	} else {
		rec->derp_region = 0;
		memset(rec->key.b, 0, TK_KEY_LEN);
	}
	rec->data = p + hl;
	v->bv_off += hl + rec->len;
	v->bv_next++;
	TK_ASSERT(v->bv_off <= v->bv_n);
	return true;
}

const char *
tk_bus_batch_why_name(enum tk_batch_why why)
{
	static const char *const names[TK_BATCH_WHY_MAX_] = {
		[TK_BATCH_WHY_SHORT] = "short",
		[TK_BATCH_WHY_OVERSIZE] = "oversize",
		[TK_BATCH_WHY_VERSION] = "version",
		[TK_BATCH_WHY_KIND] = "kind",
		[TK_BATCH_WHY_RESERVED] = "reserved",
		[TK_BATCH_WHY_EMPTY] = "empty",
		[TK_BATCH_WHY_TRUNCATED] = "truncated",
		[TK_BATCH_WHY_ZERO_LEN] = "zero-length",
		[TK_BATCH_WHY_TRAILING] = "trailing",
	};

	return (unsigned)why < TK_BATCH_WHY_MAX_ ? names[why] : "unknown";
}

/* ---- batcher -------------------------------------------------------------- */

void
tk_bus_batcher_init(tk_bus_batcher *b, nng_socket sock, size_t target)
{
	memset(b, 0, sizeof(*b));
	b->sock = sock;
	b->target = target;
}

void
tk_bus_batcher_flush(tk_bus_batcher *b)
{
	nng_msg *m;

	if (!b->live)
		return;
	uint16_t n = tk_bus_batch_enc_count(&b->enc);
	if (tk_bus_batch_enc_finish(&b->enc, &m) != 0)
		return; /* empty: keep the message for the next record */
	b->live = false;
	if (tk_bus_send(b->sock, m, false) != 0) {
		nng_msg_free(m); /* the peer is absent or slow */
		b->dropped += n;
	}
}

int
tk_bus_batcher_add(tk_bus_batcher *b, enum tk_batch_kind kind,
    const tk_bus_batch_rec *rec)
{
	if (b->live && b->enc.be_kind != kind)
		tk_bus_batcher_flush(b);
	for (int tries = 0; tries < 2; tries++) {
		if (!b->live) {
			if (tk_bus_batch_enc_init(&b->enc, kind, b->target) != 0) {
				b->dropped++;
				return TK_ENOMEM;
			}
			b->live = true;
		}
		int rv = tk_bus_batch_enc_add(&b->enc, rec);
		if (rv == 0) {
			b->recs++;
			return 0;
		}
		if (rv != TK_EMSGSIZE || tk_bus_batch_enc_count(&b->enc) == 0) {
			b->dropped++; /* a record no batch can carry */
			return rv;
		}
		tk_bus_batcher_flush(b);
	}
	b->dropped++;
	return TK_EMSGSIZE;
}

void
tk_bus_batcher_fini(tk_bus_batcher *b)
{
	if (b->live)
		tk_bus_batch_enc_fini(&b->enc);
	b->live = false;
}
