/* tk_bus internals. */
#ifndef TK_BUS_INT_H
#define TK_BUS_INT_H

#include <protobuf-c/protobuf-c.h>

#include "tk/bus.h"

/* protobuf-c allocations go through tk_malloc (fault injection, stats). */
extern ProtobufCAllocator tki_pb_alloc;

/*
 * Packs a protobuf-c message into a new nng message of exactly its size
 * (written in place: no nng_msg_insert).  Hand-off: on 0 the caller owns
 * *out.
 */
int tki_pb_pack_msg(const ProtobufCMessage *m, nng_msg **out);
/* Appends the packed message to b. */
struct tk_buf;
int tki_pb_pack_buf(const ProtobufCMessage *m, struct tk_buf *b);

#define TKI_BUS_LOG "bus"

#endif
