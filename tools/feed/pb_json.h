/*
 * protobuf-c messages as JSON, by their descriptors: field names from the
 * proto schema, addresses (4/16-byte fields named *addr*, first, last,
 * masq*, exit_node_ip) as IP text, other bytes as hex, enums by name.
 * tk-snapshot and the LocalAPI's bus dump (tailkit debug bus) share it.
 */
#ifndef TK_PB_JSON_H
#define TK_PB_JSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

json_t *tk_pb_json(const ProtobufCMessage *m);
/* One bytes field (its name decides IP text or hex). */
json_t *tk_pb_bytes_json(const char *field, const ProtobufCBinaryData *b);

#endif
