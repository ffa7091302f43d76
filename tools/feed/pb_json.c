/*
 * protobuf-c messages as JSON, by their descriptors: field names from the
 * proto schema, addresses (4/16-byte fields named *addr*, first, last,
 * masq*, exit_node_ip) as IP text, other bytes as hex, enums by name.
 * tk-snapshot and the LocalAPI's bus dump (tailkit debug bus) share it.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pb_json.h"

json_t *
tk_pb_bytes_json(const char *field, const ProtobufCBinaryData *b)
{
	char txt[INET6_ADDRSTRLEN], *hex;

	if ((b->len == 4 || b->len == 16) &&
	    (strstr(field, "addr") || !strcmp(field, "first") || !strcmp(field, "last") ||
	     strstr(field, "masq") || !strcmp(field, "exit_node_ip"))) {
		inet_ntop(b->len == 4 ? AF_INET : AF_INET6, b->data, txt, sizeof(txt));
		return json_string(txt);
	}
	hex = malloc(b->len * 2 + 1);
	for (size_t i = 0; i < b->len; i++)
		sprintf(hex + 2 * i, "%02x", b->data[i]);
	hex[b->len * 2] = '\0';
	json_t *j = json_string(hex);
	free(hex);
	return j;
}

static json_t *
value_json(const ProtobufCFieldDescriptor *fd, const void *p)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		return json_integer(*(const int32_t *)p);
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		return json_integer(*(const uint32_t *)p);
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		return json_integer(*(const int64_t *)p);
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		return json_integer((json_int_t) * (const uint64_t *)p);
	case PROTOBUF_C_TYPE_FLOAT:
		return json_real(*(const float *)p);
	case PROTOBUF_C_TYPE_DOUBLE:
		return json_real(*(const double *)p);
	case PROTOBUF_C_TYPE_BOOL:
		return json_boolean(*(const protobuf_c_boolean *)p);
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
		    fd->descriptor, *(const int *)p);
		return v ? json_string(v->name) : json_integer(*(const int *)p);
	}
	case PROTOBUF_C_TYPE_STRING:
		return *(char *const *)p ? json_string(*(char *const *)p) : json_null();
	case PROTOBUF_C_TYPE_BYTES:
		return tk_pb_bytes_json(fd->name, p);
	case PROTOBUF_C_TYPE_MESSAGE:
		return *(ProtobufCMessage *const *)p ?
		    tk_pb_json(*(ProtobufCMessage *const *)p) : json_null();
	}
	return json_null();
}

static size_t
type_size(const ProtobufCFieldDescriptor *fd)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64: case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING: case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	default:
		return 4;
	}
}

json_t *
tk_pb_json(const ProtobufCMessage *m)
{
	json_t *o = json_object();
	const ProtobufCMessageDescriptor *d = m->descriptor;

	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		const char *base = (const char *)m;
		const void *member = base + fd->offset;
		if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + fd->quantifier_offset);
			if (n == 0)
				continue;
			json_t *a = json_array();
			const char *arr = *(const char *const *)member;
			for (size_t k = 0; k < n; k++)
				json_array_append_new(a, value_json(fd, arr + k * type_size(fd)));
			json_object_set_new(o, fd->name, a);
			continue;
		}
		if (fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
			if (*(const uint32_t *)(base + fd->quantifier_offset) != fd->id)
				continue;
		} else if (fd->quantifier_offset != 0 &&
		    fd->type != PROTOBUF_C_TYPE_MESSAGE &&
		    fd->type != PROTOBUF_C_TYPE_STRING) {
			if (!*(const protobuf_c_boolean *)(base + fd->quantifier_offset))
				continue;
		} else if ((fd->type == PROTOBUF_C_TYPE_MESSAGE ||
			       fd->type == PROTOBUF_C_TYPE_STRING) &&
		    *(const void *const *)member == NULL) {
			continue;
		}
		json_object_set_new(o, fd->name, value_json(fd, member));
	}
	return o;
}

