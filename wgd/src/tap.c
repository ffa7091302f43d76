/* wgd's packet tap: a ring of packet summaries, on while asked (tap.h). */
#include <string.h>

#include "tk/bus_topics.h"
#include "tk/clock.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk/bus/v1/wg.pb-c.h"
#include "probe.h"
#include "tap.h"

#define RING	  1024
#define ON_NS	  (5 * TK_NSEC_PER_SEC)
#define REPLY_MAX 256 /* summaries per reply: the caller asks again */

typedef struct rec {
	uint64_t seq;
	int64_t unix_us;
	uint32_t len;
	bool inbound;
	wgdi_pkt_sum s;
} rec;

struct wgdi_tap {
	wgd *w;
	tk_rpc_server *rpc;
	uint64_t on_until; /* loop time; 0: off */
	uint64_t next_seq; /* of the next packet noted (from 1) */
	rec ring[RING];
};

void
wgdi_tap_note(wgdi_tap *t, bool inbound, const uint8_t *p, size_t n)
{
	if (t == NULL || t->on_until == 0)
		return;
	if (tk_loop_now(t->w->loop) > t->on_until) {
		t->on_until = 0;
		return;
	}
	rec *r = &t->ring[t->next_seq % RING];
	r->seq = t->next_seq++;
	r->unix_us = (int64_t)(tk_clock_real_ns(tk_clock_system()) / 1000);
	r->len = (uint32_t)n;
	r->inbound = inbound;
	wgdi_pkt_summarize(p, n, &r->s);
}

static int
rpc_tap(void *arg, const uint8_t *body, size_t len, tk_buf *reply)
{
	wgdi_tap *t = arg;
	Tk__Bus__V1__PktTapRequest *rq;
	Tk__Bus__V1__PktTapReply rp = TK__BUS__V1__PKT_TAP_REPLY__INIT;
	Tk__Bus__V1__PktSummary sum[REPLY_MAX], *sp[REPLY_MAX];
	uint64_t after = 0, first;
	size_t n = 0;

	if ((rq = tk__bus__v1__pkt_tap_request__unpack(NULL, len, body)) == NULL) {
		tk_buf_append_str(reply, "pkt_tap: undecodable PktTapRequest");
		return TK_EPROTO;
	}
	after = rq->has_after_seq ? rq->after_seq : 0;
	tk__bus__v1__pkt_tap_request__free_unpacked(rq, NULL);
	if (t->next_seq == 0)
		t->next_seq = 1;
	t->on_until = tk_loop_now(t->w->loop) + ON_NS;
	/* the oldest kept is next_seq - RING (seq 0 is never used) */
	first = t->next_seq > RING ? t->next_seq - RING : 1;
	if (after + 1 < first) {
		rp.has_lost = true;
		rp.lost = first - after - 1;
		after = first - 1;
	}
	for (uint64_t q = after + 1; q < t->next_seq && n < REPLY_MAX; q++, n++) {
		const rec *r = &t->ring[q % RING];
		Tk__Bus__V1__PktSummary *s = &sum[n];
		tk__bus__v1__pkt_summary__init(s);
		s->has_seq = s->has_inbound = s->has_proto = s->has_len = true;
		s->has_unix_us = true;
		s->seq = r->seq, s->inbound = r->inbound, s->len = r->len;
		s->unix_us = r->unix_us;
		s->proto = r->s.proto;
		if (r->s.family != 0) {
			size_t al = r->s.family == 4 ? 4 : 16;
			s->has_src = s->has_dst = s->has_src_port =
			    s->has_dst_port = true;
			s->src.data = (uint8_t *)r->s.src, s->src.len = al;
			s->dst.data = (uint8_t *)r->s.dst, s->dst.len = al;
			s->src_port = r->s.sport, s->dst_port = r->s.dport;
		}
		sp[n] = s;
	}
	rp.pkts = sp;
	rp.n_pkts = n;
	return tk_bus_pb_pack(&rp.base, reply);
}

int
wgdi_tap_new(wgdi_tap **out, wgd *w, tk_rpc_server *rpc)
{
	wgdi_tap *t;
	int rv;

	if ((t = tk_calloc(1, sizeof(*t))) == NULL)
		return TK_ENOMEM;
	t->w = w;
	t->rpc = rpc;
	t->next_seq = 1;
	if ((rv = tk_rpc_server_add(rpc, TK_METHOD_PKT_TAP, rpc_tap, t)) != 0) {
		tk_free(t);
		return rv;
	}
	*out = t;
	return 0;
}

void
wgdi_tap_free(wgdi_tap *t)
{
	if (t == NULL)
		return;
	(void)tk_rpc_server_remove(t->rpc, TK_METHOD_PKT_TAP);
	tk_free(t);
}
