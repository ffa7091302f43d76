/*
 * tk-snapshot: asks a component for a topic's snapshot over the control
 * bus and prints it as JSON (field names from the proto schema; addresses
 * as IP text, keys and other bytes as hex).
 *
 *   tk-snapshot [--timeout MS] RPC_URL TOPIC
 *   e.g. tk-snapshot ipc:///run/tailkit/ctrld.rpc netmap
 */
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
#include "pb_json.h"

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
		json_object_set_new(o, "body", tk_pb_json(m));
		protobuf_c_message_free_unpacked(m, NULL);
	} else {
		json_object_set_new(o, "body_hex", tk_pb_bytes_json("", &e->body));
	}
	char *t = json_dumps(o, JSON_INDENT(1));
	puts(t);
	free(t);
	json_decref(o);
	tk__bus__v1__envelope__free_unpacked(e, NULL);
	tk_buf_fini(&r);
	return 0;
}
