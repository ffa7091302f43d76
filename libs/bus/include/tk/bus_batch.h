/*
 * Packet batches: many packets in one nng message (packet buses).
 *
 * nng 1.5.2 costs ~15-25 us per message, so the packet path never sends one
 * packet per message.  Layout (normative text: proto/tk/bus/v1/packet.proto):
 *
 *   header  u8 version=1 | u8 kind | be16 count | be32 reserved=0
 *   record  be16 len | u8 type | u8 flags=0 [| be32 derp_region | key[32]]
 *           | len bytes              (the bracket part only for PEER kind)
 *
 * Encoding writes straight into one nng message allocated at its full size
 * (never nng_msg_insert: Debian's 1.5.2 overflows the heap there), so a
 * producer can even build a packet in place (tk_bus_batch_enc_reserve).
 * Decoding validates the whole batch first (every length, the count, no
 * trailing bytes) and then hands out records pointing into the message:
 * zero-copy, and a bad batch is dropped whole and counted, never partly
 * delivered.
 */
#ifndef TK_BUS_BATCH_H
#define TK_BUS_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "tk/keys.h"

#define TK_BATCH_VERSION     1
#define TK_BATCH_HDR_LEN     8
#define TK_BATCH_REC_HDR_LEN 4
#define TK_BATCH_PEER_EXTRA  (4 + TK_KEY_LEN) /* derp_region + node key */
#define TK_BATCH_REC_MAX     65535	     /* largest record payload */
#define TK_BATCH_TARGET	     (64u * 1024)    /* what senders aim at */
#define TK_BATCH_MAX	     (128u * 1024)   /* largest accepted message */
/* What bulk IP senders (wgd, tk-tun) aim at: half the messages of
 * TK_BATCH_TARGET, with room below TK_BATCH_MAX (the packet bus's nng
 * receive limit, which counts the protocol's own header too). */
#define TK_BATCH_TARGET_BULK (TK_BATCH_MAX - 4096)

/* packet.proto BatchKind */
enum tk_batch_kind {
	TK_BATCH_IP = 1,
	TK_BATCH_PEER = 2,
	TK_BATCH_CONTROL = 3,
};

/* One record.  For PEER batches `key` and `derp_region` address the peer. */
typedef struct tk_bus_batch_rec {
	uint8_t type; /* packet.proto RecordType */
	uint32_t derp_region;
	tk_node_pub key;
	const uint8_t *data;
	size_t len;
} tk_bus_batch_rec;

/* ---- encoder ------------------------------------------------------------ */

typedef struct tk_bus_batch_enc {
	nng_msg *be_msg;
	uint8_t *be_base;
	size_t be_len;	  /* bytes written, header included */
	size_t be_cap;	  /* current message size */
	size_t be_target; /* flush threshold */
	uint16_t be_count;
	uint8_t be_kind;
} tk_bus_batch_enc;

/*
 * Starts a batch of `kind` aiming at `target` bytes (0: TK_BATCH_TARGET; at
 * most TK_BATCH_MAX).  Allocates the message.
 */
int tk_bus_batch_enc_init(tk_bus_batch_enc *e, enum tk_batch_kind kind,
    size_t target);
/*
 * Appends a record of `len` bytes (1..TK_BATCH_REC_MAX) with rec's type,
 * key and region (rec->data is ignored) and points *data at its payload,
 * for the caller to fill before the next call.  TK_EMSGSIZE when the batch
 * would pass its target (finish it and start another; a record larger than
 * the target is accepted alone in an empty batch), TK_EINVAL on bad len.
 */
int tk_bus_batch_enc_reserve(tk_bus_batch_enc *e, const tk_bus_batch_rec *rec,
    size_t len, uint8_t **data);
/* reserve + copy of rec->data[0..rec->len). */
int tk_bus_batch_enc_add(tk_bus_batch_enc *e, const tk_bus_batch_rec *rec);
static inline unsigned
tk_bus_batch_enc_count(const tk_bus_batch_enc *e)
{
	return e->be_count;
}
/*
 * Writes the header and hands the message out (trimmed to its length).
 * Hand-off: on 0 the caller owns *out and the encoder is empty (init it
 * again to reuse); TK_ESTATE if no record was added (the encoder keeps its
 * message).
 */
int tk_bus_batch_enc_finish(tk_bus_batch_enc *e, nng_msg **out);
/* Frees an unfinished message. */
void tk_bus_batch_enc_fini(tk_bus_batch_enc *e);

/* ---- decoder ------------------------------------------------------------ */

/* Why a batch was dropped (index into tk_bus_batch_stats.bs_why). */
enum tk_batch_why {
	TK_BATCH_WHY_SHORT = 0, /* shorter than the header */
	TK_BATCH_WHY_OVERSIZE,	/* larger than TK_BATCH_MAX */
	TK_BATCH_WHY_VERSION,
	TK_BATCH_WHY_KIND,
	TK_BATCH_WHY_RESERVED, /* reserved bits/flags not zero */
	TK_BATCH_WHY_EMPTY,    /* count 0 */
	TK_BATCH_WHY_TRUNCATED, /* a record runs past the end */
	TK_BATCH_WHY_ZERO_LEN, /* a record of length 0 */
	TK_BATCH_WHY_TRAILING, /* bytes after the last counted record */
	TK_BATCH_WHY_MAX_
};

typedef struct tk_bus_batch_stats {
	uint64_t bs_batches; /* accepted */
	uint64_t bs_records; /* in accepted batches */
	uint64_t bs_dropped; /* rejected batches */
	uint64_t bs_why[TK_BATCH_WHY_MAX_];
} tk_bus_batch_stats;

typedef struct tk_bus_batch_view {
	const uint8_t *bv_p;
	size_t bv_n;
	size_t bv_off;
	uint16_t bv_count;
	uint16_t bv_next;
	uint8_t bv_kind;
} tk_bus_batch_view;

/*
 * Validates the batch p[0..n) whole.  0: *v is ready for
 * tk_bus_batch_next, records point into p (keep p alive).  TK_EPROTO: the
 * batch is garbage; st (may be NULL) counts it and why.  Never reads
 * outside p[0..n).
 */
int tk_bus_batch_parse(tk_bus_batch_view *v, const uint8_t *p, size_t n,
    tk_bus_batch_stats *st);
int tk_bus_batch_parse_msg(tk_bus_batch_view *v, nng_msg *msg,
    tk_bus_batch_stats *st);
/* Next record of a parsed batch; false at the end. */
bool tk_bus_batch_next(tk_bus_batch_view *v, tk_bus_batch_rec *rec);
static inline enum tk_batch_kind
tk_bus_batch_kind(const tk_bus_batch_view *v)
{
	return (enum tk_batch_kind)v->bv_kind;
}

const char *tk_bus_batch_why_name(enum tk_batch_why why);

/* ---- batcher: an encoder bound to one packet-bus socket ------------------- */

/*
 * What every packet-bus sender does: records are appended to the batch
 * being filled; a full batch is sent (without blocking) and a new one
 * started; the owner flushes at the end of its own batch of work.  `recs`
 * counts records taken, `dropped` records lost (no memory, a record no
 * batch can carry, or a batch the socket refused: all its records).
 */
typedef struct tk_bus_batcher {
	nng_socket sock;
	size_t target; /* 0: TK_BATCH_TARGET */
	tk_bus_batch_enc enc;
	bool live;
	uint64_t recs, dropped;
} tk_bus_batcher;

void tk_bus_batcher_init(tk_bus_batcher *b, nng_socket sock, size_t target);
/* Appends one record of `kind` (a batch of another kind is sent first).
 * 0, or why it was dropped (counted): TK_ENOMEM, TK_EMSGSIZE. */
int tk_bus_batcher_add(tk_bus_batcher *b, enum tk_batch_kind kind,
    const tk_bus_batch_rec *rec);
/* Sends the batch being filled, if any. */
void tk_bus_batcher_flush(tk_bus_batcher *b);
/* Frees an unsent batch (its records are lost, not counted). */
void tk_bus_batcher_fini(tk_bus_batcher *b);

#endif
