/* gen_fields.c's input: every message descriptor of tk_proto, NULL-ended
 * (written at build time by list_descriptors.cmake). */
#ifndef TK_GEN_FIELDS_H
#define TK_GEN_FIELDS_H

#include <protobuf-c/protobuf-c.h>

extern const ProtobufCMessageDescriptor *const tk_gen_descriptors[];

#endif
