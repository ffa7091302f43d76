/*
 * tk-snapshot: asks a component for a topic's snapshot over the control
 * bus and prints it as JSON (field names from the proto schema; addresses
 * as IP text, keys and other bytes as hex).
 *
 *   tk-snapshot [--timeout MS] RPC_URL TOPIC
 *   e.g. tk-snapshot ipc:///run/tailkit/ctrld.rpc netmap
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tk/bus_rpc.h"
#include "tk/bus_topic.h"
#include "tk/bus_topics.h"
#include "tk/core.h"
#include "tk/err.h"
#include "tk/bus/v1/common.pb-c.h"
#include "tk/bus/v1/ctrl.pb-c.h"

static json_t *message_json(const ProtobufCMessage *m);

static json_t *
bytes_json(const char *field, const ProtobufCBinaryData *b)
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
		return bytes_json(fd->name, p);
	case PROTOBUF_C_TYPE_MESSAGE:
		return *(ProtobufCMessage *const *)p ?
		    message_json(*(ProtobufCMessage *const *)p) : json_null();
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

static json_t *
message_json(const ProtobufCMessage *m)
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

int
main(int argc, char **argv)
{
	int timeout = 3000, i = 1;

	if (argc > 2 && strcmp(argv[1], "--timeout") == 0) {
		timeout = atoi(argv[2]);
		i = 3;
	}
	if (argc - i != 2) {
		fprintf(stderr, "usage: tk-snapshot [--timeout MS] RPC_URL TOPIC\n"
		    "  topics:");
		for (const tk_bus_topic_info *t = tk_bus_topics; t->name; t++)
			fprintf(stderr, " %s (%s%s)", t->name, t->publisher,
			    t->planned ? ", planned" : "");
		fprintf(stderr, "\n");
		return 2;
	}
	if (tk_init() != 0)
		return 1;
	Tk__Bus__V1__SnapshotRequest rq = TK__BUS__V1__SNAPSHOT_REQUEST__INIT;
	uint8_t body[128];
	rq.topic = argv[i + 1];
	size_t bl = tk__bus__v1__snapshot_request__pack(&rq, body);
	tk_buf r;
	tk_buf_init(&r);
	int rv = tk_rpc_call_sync(argv[i], NULL, TK_TOPIC_SNAPSHOT_METHOD, body, bl,
	    timeout, &r);
	if (rv != 0) {
		fprintf(stderr, "tk-snapshot: %s: %s %.*s\n", argv[i], tk_strerror(rv),
		    (int)r.len, (const char *)r.data);
		return 1;
	}
	Tk__Bus__V1__Envelope *e = tk__bus__v1__envelope__unpack(NULL, r.len, r.data);
	if (e == NULL) {
		fprintf(stderr, "tk-snapshot: undecodable envelope\n");
		return 1;
	}
	const tk_bus_topic_info *ti = tk_bus_topic_find(argv[i + 1]);
	const ProtobufCMessageDescriptor *d = ti ? ti->snapshot : NULL;
	json_t *o = json_object();
	json_object_set_new(o, "topic", json_string(e->topic ? e->topic : ""));
	json_object_set_new(o, "seq", json_integer((json_int_t)e->seq));
	json_object_set_new(o, "epoch", json_integer((json_int_t)e->epoch));
	ProtobufCMessage *m = d ? protobuf_c_message_unpack(d, NULL, e->body.len,
	    e->body.data) : NULL;
	if (m != NULL) {
		json_object_set_new(o, "body", message_json(m));
		protobuf_c_message_free_unpacked(m, NULL);
	} else {
		json_object_set_new(o, "body_hex", bytes_json("", &e->body));
	}
	char *t = json_dumps(o, JSON_INDENT(1));
	puts(t);
	free(t);
	json_decref(o);
	tk__bus__v1__envelope__free_unpacked(e, NULL);
	tk_buf_fini(&r);
	return 0;
}
