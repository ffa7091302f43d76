#include <assert.h>

#include "tk/buf.h"
#include "tk/bus_status.h"
#include "tk/err.h"
#include "tk/mem.h"

#include "bus_int.h"

static void *
pb_alloc(void *data, size_t n)
{
	(void)data;
	return tk_malloc(n ? n : 1);
}

static void
pb_free(void *data, void *p)
{
	(void)data;
	tk_free(p);
}

ProtobufCAllocator tki_pb_alloc = { pb_alloc, pb_free, NULL };

int
tki_pb_pack_msg(const ProtobufCMessage *m, nng_msg **out)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	nng_msg *msg;
	int rv;

	if ((rv = nng_msg_alloc(&msg, n)) != 0)
		return tk_err_nng(rv);
	if (protobuf_c_message_pack(m, nng_msg_body(msg)) != n) {
		nng_msg_free(msg);
		return TK_EINTERNAL;
	}
	*out = msg;
	return 0;
}

int
tki_pb_pack_buf(const ProtobufCMessage *m, tk_buf *b)
{
	size_t n = protobuf_c_message_get_packed_size(m);
	uint8_t *p;
	int rv;

	if ((rv = tk_buf_extend(b, n, &p)) != 0)
		return rv;
	if (protobuf_c_message_pack(m, p) != n)
		return TK_EINTERNAL;
	return 0;
}

int
tk_bus_pb_pack(const ProtobufCMessage *m, tk_buf *b)
{
	return tki_pb_pack_buf(m, b);
}

void
tk_status_counter(tk_status_counters *s, const char *name, uint64_t v)
{
	assert(s->n < TK_STATUS_COUNTERS_MAX);
	if (s->n >= TK_STATUS_COUNTERS_MAX)
		return;
	Tk__Bus__V1__Counter *c = &s->c[s->n];
	tk__bus__v1__counter__init(c);
	c->name = (char *)name;
	c->has_value = true;
	c->value = v;
	s->p[s->n++] = c;
}

void
tk_status_counters_set(Tk__Bus__V1__StatusResponse *r, tk_status_counters *s)
{
	r->counters = s->p;
	r->n_counters = s->n;
}
