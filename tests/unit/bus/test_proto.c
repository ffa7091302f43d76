/*
 * What tailkit itself encodes and decodes on the bus: the Envelope (its
 * topic is the sub0 subscription prefix, so `topic` must stay field 1),
 * the StatusResponse counters builder (tk/bus_status.h), and the schema rule
 * that no field is `required`.  The packet batch codec has its own file
 * (test_batch.c); the map codec is tested in ctrld_map.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk/bus/v1/common.pb-c.h"
#include "tk/bus/v1/ctrl.pb-c.h"
#include "tk/bus/v1/derp.pb-c.h"
#include "tk/bus/v1/packet.pb-c.h"
#include "tk/bus/v1/wg.pb-c.h"
#include "tk/bus_status.h"
#include "tk/bus_topic.h"
#include "tk/bus_topics.h"
#include "tk/bus/fields.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk_test.h"

void register_proto(void);

static const ProtobufCMessageDescriptor *const all_descs[] = {
	&tk__bus__v1__envelope__descriptor,
	&tk__bus__v1__request__descriptor,
	&tk__bus__v1__reply__descriptor,
	&tk__bus__v1__snapshot_request__descriptor,
	&tk__bus__v1__prefix__descriptor,
	&tk__bus__v1__addr_port__descriptor,
	&tk__bus__v1__addr_port_list__descriptor,
	&tk__bus__v1__string_list__descriptor,
	&tk__bus__v1__node__descriptor,
	&tk__bus__v1__cap_map_entry__descriptor,
	&tk__bus__v1__cap_map__descriptor,
	&tk__bus__v1__peer_change__descriptor,
	&tk__bus__v1__derpnode__descriptor,
	&tk__bus__v1__derpregion__descriptor,
	&tk__bus__v1__region_score__descriptor,
	&tk__bus__v1__derpmap__descriptor,
	&tk__bus__v1__ipmatch__descriptor,
	&tk__bus__v1__iprange__descriptor,
	&tk__bus__v1__net_port_range__descriptor,
	&tk__bus__v1__cap_grant__descriptor,
	&tk__bus__v1__filter_rule__descriptor,
	&tk__bus__v1__packet_filter__descriptor,
	&tk__bus__v1__resolver__descriptor,
	&tk__bus__v1__dnsroute__descriptor,
	&tk__bus__v1__dnsrecord__descriptor,
	&tk__bus__v1__dnsconfig__descriptor,
	&tk__bus__v1__user_profile__descriptor,
	&tk__bus__v1__netmap__descriptor,
	&tk__bus__v1__netmap_delta__descriptor,
	&tk__bus__v1__prefs__descriptor,
	&tk__bus__v1__keys__descriptor,
	&tk__bus__v1__endpoint__descriptor,
	&tk__bus__v1__endpoints__descriptor,
	&tk__bus__v1__status_request__descriptor,
	&tk__bus__v1__topic_status__descriptor,
	&tk__bus__v1__peer_status__descriptor,
	&tk__bus__v1__status_response__descriptor,
	&tk__bus__v1__region_latency__descriptor,
	&tk__bus__v1__derp_conn__descriptor,
	&tk__bus__v1__derp_state__descriptor,
	&tk__bus__v1__peer_addr__descriptor,
	&tk__bus__v1__packet_control__descriptor,
	&tk__bus__v1__peer_gone__descriptor,
	&tk__bus__v1__peer_path__descriptor,
	&tk__bus__v1__peer_paths__descriptor,
};

/* Every type packs and unpacks empty, and no field is `required` (proto2
 * rule: an old reader must accept a message without a new field). */
static void
test_all_types_empty_and_optional(void)
{
	for (size_t i = 0; i < TK_ARRAY_LEN(all_descs); i++) {
		const ProtobufCMessageDescriptor *d = all_descs[i];
		ProtobufCMessage *m = calloc(1, d->sizeof_message), *u;
		uint8_t buf[16];

		CU_ASSERT_FATAL(m != NULL);
		protobuf_c_message_init(d, m);
		CU_ASSERT_FATAL(protobuf_c_message_get_packed_size(m) <= sizeof(buf));
		size_t n = protobuf_c_message_pack(m, buf);
		u = protobuf_c_message_unpack(d, NULL, n, buf);
		CU_ASSERT_PTR_NOT_NULL(u);
		protobuf_c_message_free_unpacked(u, NULL);
		free(m);
		CU_ASSERT_STRING_EQUAL(d->package_name, "tk.bus.v1");
		for (unsigned f = 0; f < d->n_fields; f++)
			CU_ASSERT(d->fields[f].label !=
			    PROTOBUF_C_LABEL_REQUIRED);
	}
}

/* Envelope: the packed topic is the sub0 prefix; unpack validates. */
static void
test_envelope_codec(void)
{
	nng_msg *m;
	tk_envelope env;
	static const uint8_t body[] = { 1, 2, 3 };
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff };

	CU_ASSERT_EQUAL_FATAL(tk_envelope_pack(&m, "netmap", 77, 5,
				  TK__BUS__V1__KIND__KIND_DELTA, body, 3),
	    0);
	{
		const uint8_t *p = nng_msg_body(m);

		CU_ASSERT_EQUAL(p[0], 0x0a);
		CU_ASSERT_EQUAL(p[1], 6);
		TK_ASSERT_MEM_EQ(p + 2, "netmap", 6);
	}
	CU_ASSERT_EQUAL_FATAL(tk_envelope_unpack(&env, nng_msg_body(m),
				  nng_msg_len(m)),
	    0);
	CU_ASSERT_STRING_EQUAL(env.topic, "netmap");
	CU_ASSERT_EQUAL(env.epoch, 77);
	CU_ASSERT_EQUAL(env.seq, 5);
	CU_ASSERT_EQUAL(env.kind, TK__BUS__V1__KIND__KIND_DELTA);
	CU_ASSERT_EQUAL(env.len, 3);
	TK_ASSERT_MEM_EQ(env.body, body, 3);
	tk_envelope_fini(&env);
	nng_msg_free(m);

	CU_ASSERT_EQUAL(tk_envelope_pack(&m, "bad topic", 1, 1, 2, NULL, 0),
	    TK_EINVAL);
	CU_ASSERT_EQUAL(tk_envelope_unpack(&env, junk, sizeof(junk)),
	    TK_EPROTO);
	/* Valid protobuf, invalid envelope: delta with seq 0; unknown kind. */
	CU_ASSERT_EQUAL_FATAL(tk_envelope_pack(&m, "x", 1, 0, 2, NULL, 0), 0);
	CU_ASSERT_EQUAL(tk_envelope_unpack(&env, nng_msg_body(m),
			    nng_msg_len(m)),
	    TK_EPROTO);
	nng_msg_free(m);
	CU_ASSERT_EQUAL_FATAL(tk_envelope_pack(&m, "x", 1, 1, 9, NULL, 0), 0);
	CU_ASSERT_EQUAL(tk_envelope_unpack(&env, nng_msg_body(m),
			    nng_msg_len(m)),
	    TK_EPROTO);
	nng_msg_free(m);
	CU_ASSERT_EQUAL(tk_envelope_unpack(&env, NULL, 0), TK_EPROTO);
}

/*
 * common.proto: "`topic` MUST stay field 1".  Subscribers filter on the
 * packed envelope's first bytes, 0x0a <len> <topic>; that holds only while
 * topic is field 1 (protobuf-c packs in field-number order) and while a
 * topic name's length fits one varint byte (TK_TOPIC_NAME_MAX < 128).
 */
static void
test_envelope_topic_prefix(void)
{
	const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
	    &tk__bus__v1__envelope__descriptor, 1);
	static const uint8_t body[] = { 9, 8, 7 };
	char topic[TK_TOPIC_NAME_MAX + 2];
	static const size_t lens[] = { 1, 6, 63, TK_TOPIC_NAME_MAX };

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_STRING_EQUAL(f->name, "topic");
	CU_ASSERT_EQUAL(f->type, PROTOBUF_C_TYPE_STRING);
	CU_ASSERT(TK_TOPIC_NAME_MAX < 128);
	for (size_t i = 0; i < TK_ARRAY_LEN(lens); i++) {
		nng_msg *m;

		memset(topic, 'a' + (int)i, lens[i]);
		topic[lens[i]] = '\0';
		/* every other field set: none may come before the topic */
		CU_ASSERT_EQUAL_FATAL(tk_envelope_pack(&m, topic, UINT64_MAX,
		    UINT64_MAX, TK__BUS__V1__KIND__KIND_SNAPSHOT, body,
		    sizeof(body)), 0);
		const uint8_t *p = nng_msg_body(m);
		CU_ASSERT_FATAL(nng_msg_len(m) > 2 + lens[i]);
		CU_ASSERT_EQUAL(p[0], 0x0a); /* field 1, length-delimited */
		CU_ASSERT_EQUAL(p[1], lens[i]);
		TK_ASSERT_MEM_EQ(p + 2, topic, lens[i]);
		nng_msg_free(m);
	}
	/* the length byte makes the match exact: "net" is no prefix of "netmap" */
	nng_msg *a, *b;
	CU_ASSERT_EQUAL_FATAL(tk_envelope_pack(&a, "net", 1, 1,
	    TK__BUS__V1__KIND__KIND_SNAPSHOT, NULL, 0), 0);
	CU_ASSERT_EQUAL_FATAL(tk_envelope_pack(&b, "netmap", 1, 1,
	    TK__BUS__V1__KIND__KIND_SNAPSHOT, NULL, 0), 0);
	CU_ASSERT(memcmp(nng_msg_body(a), nng_msg_body(b), 2 + 3) != 0);
	nng_msg_free(a);
	nng_msg_free(b);
	/* a name that would need a two-byte length is refused */
	memset(topic, 'x', TK_TOPIC_NAME_MAX + 1);
	topic[TK_TOPIC_NAME_MAX + 1] = '\0';
	CU_ASSERT_EQUAL(tk_envelope_pack(&a, topic, 1, 1,
	    TK__BUS__V1__KIND__KIND_SNAPSHOT, NULL, 0), TK_EINVAL);
}

/* The counters every component's "status" answer carries, as built by
 * tk_status_counter: in order, names and values exact, zero included. */
static void
test_status_counters_builder(void)
{
	Tk__Bus__V1__StatusResponse r = TK__BUS__V1__STATUS_RESPONSE__INIT;
	tk_status_counters cs = { .n = 0 };
	char names[TK_STATUS_COUNTERS_MAX][16];
	Tk__Bus__V1__StatusResponse *u;
	uint8_t *buf;
	size_t n;

	for (int i = 0; i < TK_STATUS_COUNTERS_MAX; i++) {
		snprintf(names[i], sizeof(names[i]), "c%02d", i);
		tk_status_counter(&cs, names[i], i == 0 ? 0 :
		    i == 1 ? UINT64_MAX : (uint64_t)i * 1000003);
	}
	r.component = "test";
	tk_status_counters_set(&r, &cs);
	n = tk__bus__v1__status_response__get_packed_size(&r);
	buf = malloc(n);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	CU_ASSERT_EQUAL(tk__bus__v1__status_response__pack(&r, buf), n);
	u = tk__bus__v1__status_response__unpack(NULL, n, buf);
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	CU_ASSERT_STRING_EQUAL(u->component, "test");
	CU_ASSERT_EQUAL_FATAL(u->n_counters, TK_STATUS_COUNTERS_MAX);
	for (size_t i = 0; i < u->n_counters; i++) {
		CU_ASSERT_STRING_EQUAL(u->counters[i]->name, names[i]);
		CU_ASSERT(u->counters[i]->has_value); /* 0 is sent, not omitted */
		CU_ASSERT_EQUAL(u->counters[i]->value, i == 0 ? 0 :
		    i == 1 ? UINT64_MAX : (uint64_t)i * 1000003);
	}
	tk__bus__v1__status_response__free_unpacked(u, NULL);
	free(buf);
}

/* tk/bus_topics.h: every topic is a valid, unique Envelope topic with
 * both body types, and can be found by name. */
static void
test_topic_table(void)
{
	size_t n = 0;

	for (const tk_bus_topic_info *t = tk_bus_topics; t->name; t++, n++) {
		nng_msg *m;

		CU_ASSERT_PTR_EQUAL(tk_bus_topic_find(t->name), t);
		CU_ASSERT(t->publisher != NULL && t->snapshot != NULL &&
		    t->delta != NULL);
		CU_ASSERT_EQUAL(tk_envelope_pack(&m, t->name, 1, 1,
				    TK__BUS__V1__KIND__KIND_DELTA, NULL, 0),
		    0);
		nng_msg_free(m);
	}
	CU_ASSERT_EQUAL(n, 5);
	CU_ASSERT_PTR_NULL(tk_bus_topic_find("self"));
	CU_ASSERT_PTR_NULL(tk_bus_topic_find(NULL));
	CU_ASSERT(!tk_bus_topic_find(TK_TOPIC_NETMAP)->planned);
	CU_ASSERT(!tk_bus_topic_find(TK_TOPIC_DERP)->planned);
	CU_ASSERT(!tk_bus_topic_find(TK_TOPIC_PATHS)->planned);
	CU_ASSERT_PTR_EQUAL(tk_bus_topic_find(TK_TOPIC_NETMAP)->delta,
	    &tk__bus__v1__netmap_delta__descriptor);
}

/* tk/bus/fields.h (generated by proto/gen_fields.c) names fields as the
 * descriptors do: message in upper snake case, acronyms whole. */
static void
test_generated_fields(void)
{
	static const struct {
		const ProtobufCMessageDescriptor *d;
		const char *field;
		unsigned id, wire, type;
	} t[] = {
		{ &tk__bus__v1__envelope__descriptor, "topic",
		    TK_F_ENVELOPE_TOPIC, TK_W_ENVELOPE_TOPIC, TK_T_ENVELOPE_TOPIC },
		{ &tk__bus__v1__node__descriptor, "key", TK_F_NODE_KEY,
		    TK_W_NODE_KEY, TK_T_NODE_KEY },
		{ &tk__bus__v1__node__descriptor, "peerapi6_port",
		    TK_F_NODE_PEERAPI6_PORT, TK_W_NODE_PEERAPI6_PORT,
		    TK_T_NODE_PEERAPI6_PORT },
		{ &tk__bus__v1__derpnode__descriptor, "stun_port",
		    TK_F_DERP_NODE_STUN_PORT, TK_W_DERP_NODE_STUN_PORT,
		    TK_T_DERP_NODE_STUN_PORT },
		{ &tk__bus__v1__derpregion__descriptor, "latitude",
		    TK_F_DERP_REGION_LATITUDE, TK_W_DERP_REGION_LATITUDE,
		    TK_T_DERP_REGION_LATITUDE },
		{ &tk__bus__v1__ipmatch__descriptor, "cap", TK_F_IP_MATCH_CAP,
		    TK_W_IP_MATCH_CAP, TK_T_IP_MATCH_CAP },
		{ &tk__bus__v1__netmap_delta__descriptor, "health",
		    TK_F_NETMAP_DELTA_HEALTH, TK_W_NETMAP_DELTA_HEALTH,
		    TK_T_NETMAP_DELTA_HEALTH },
		{ &tk__bus__v1__derp_state__descriptor, "home_region",
		    TK_F_DERP_STATE_HOME_REGION, TK_W_DERP_STATE_HOME_REGION,
		    TK_T_DERP_STATE_HOME_REGION },
	};
	/* wire type of each TK_PBT_* here, as the protobuf encoding has it */
	static const struct {
		ProtobufCType pbc;
		unsigned pbt, wire;
	} types[] = {
		{ PROTOBUF_C_TYPE_STRING, TK_PBT_STRING, TK_WIRE_LEN },
		{ PROTOBUF_C_TYPE_BYTES, TK_PBT_BYTES, TK_WIRE_LEN },
		{ PROTOBUF_C_TYPE_UINT32, TK_PBT_UINT32, TK_WIRE_VARINT },
		{ PROTOBUF_C_TYPE_INT32, TK_PBT_INT32, TK_WIRE_VARINT },
		{ PROTOBUF_C_TYPE_DOUBLE, TK_PBT_DOUBLE, TK_WIRE_I64 },
		{ PROTOBUF_C_TYPE_MESSAGE, TK_PBT_MESSAGE, TK_WIRE_LEN },
	};

	for (size_t i = 0; i < TK_ARRAY_LEN(t); i++) {
		const ProtobufCFieldDescriptor *f =
		    protobuf_c_message_descriptor_get_field_by_name(t[i].d,
			t[i].field);
		bool typed = false;

		CU_ASSERT_PTR_NOT_NULL_FATAL(f);
		CU_ASSERT_EQUAL(f->id, t[i].id);
		for (size_t k = 0; k < TK_ARRAY_LEN(types); k++)
			if (types[k].pbc == f->type)
				typed = types[k].pbt == t[i].type &&
				    types[k].wire == t[i].wire;
		CU_ASSERT(typed);
	}
	CU_ASSERT_EQUAL(TK_TAG(NODE_KEY),
	    TK_F_NODE_KEY << 3 | TK_WIRE_LEN);
	CU_ASSERT_EQUAL(TK_FIELD_T(NODE_PEERAPI4_PORT, UINT32),
	    TK_F_NODE_PEERAPI4_PORT);
}

/* libs/bus names nng's codes for tk_strerror (libs/core links no nng). */
static void
test_err_names(void)
{
	const char *t = tk_strerror(tk_err_nng(NNG_ECLOSED));
	CU_ASSERT_PTR_NOT_NULL(strstr(t, "nng: "));
	CU_ASSERT_PTR_NULL(strstr(t, "not named"));
}

void
register_proto(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_all_types_empty_and_optional),
		TK_TEST(test_envelope_codec),
		TK_TEST(test_envelope_topic_prefix),
		TK_TEST(test_status_counters_builder),
		TK_TEST(test_topic_table),
		TK_TEST(test_generated_fields),
		TK_TEST(test_err_names),
		TK_TEST_END,
	};

	tk_test_suite("proto", cases);
}
