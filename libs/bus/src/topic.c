/* Topics: sequence numbers, snapshots over req/rep, resync on gaps. */
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/sub.h>

#include "tk/bus_topic.h"
#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"

#include "tk/bus/fields.h"
#include "tk/bus/v1/common.pb-c.h"

#include "bus_int.h"

#define DEFAULT_HEARTBEAT_NS  TK_NSEC_PER_SEC
#define DEFAULT_SNAP_TIMEOUT  (2 * TK_NSEC_PER_SEC)
#define RETRY_MIN_NS	      (20 * TK_NSEC_PER_MSEC)
#define RETRY_MAX_NS	      TK_NSEC_PER_SEC

static bool
topic_name_ok(const char *s)
{
	size_t n;

	if (s == NULL)
		return false;
	n = strnlen(s, TK_TOPIC_NAME_MAX + 1);
	if (n == 0 || n > TK_TOPIC_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9') || c == '.' || c == '_' ||
			c == '-'))
			return false;
	}
	return true;
}

/* ---- envelope ----------------------------------------------------------- */

int
tk_envelope_pack(nng_msg **out, const char *topic, uint64_t epoch,
    uint64_t seq, int kind, const uint8_t *body, size_t len)
{
	Tk__Bus__V1__Envelope e = TK__BUS__V1__ENVELOPE__INIT;

	if (out == NULL || !topic_name_ok(topic) || (body == NULL && len != 0))
		return TK_EINVAL;
	e.topic = (char *)topic;
	e.has_epoch = true;
	e.epoch = epoch;
	e.has_seq = true;
	e.seq = seq;
	e.has_kind = true;
	e.kind = (Tk__Bus__V1__Kind)kind;
	if (len > 0) {
		e.has_body = true;
		e.body.data = (uint8_t *)body;
		e.body.len = len;
	}
	e.has_time_unix_ns = true;
	e.time_unix_ns = (int64_t)tk_clock_real_ns(NULL);
	return tki_pb_pack_msg(&e.base, out);
}

int
tk_envelope_unpack(tk_envelope *env, const uint8_t *p, size_t n)
{
	Tk__Bus__V1__Envelope *e;

	if (env == NULL || (p == NULL && n != 0))
		return TK_EINVAL;
	if (n > TK_BUS_CTRL_MAX)
		return TK_EPROTO;
	e = tk__bus__v1__envelope__unpack(&tki_pb_alloc, n, p);
	if (e == NULL)
		return TK_EPROTO;
	if (!topic_name_ok(e->topic) || !e->has_epoch || !e->has_seq ||
	    !e->has_kind ||
	    (e->kind != TK__BUS__V1__KIND__KIND_SNAPSHOT &&
		e->kind != TK__BUS__V1__KIND__KIND_DELTA &&
		e->kind != TK__BUS__V1__KIND__KIND_HEARTBEAT) ||
	    (e->kind == TK__BUS__V1__KIND__KIND_DELTA && e->seq == 0)) {
		tk__bus__v1__envelope__free_unpacked(e, &tki_pb_alloc);
		return TK_EPROTO;
	}
	env->topic = e->topic;
	env->epoch = e->epoch;
	env->seq = e->seq;
	env->kind = (int)e->kind;
	env->body = e->has_body ? e->body.data : NULL;
	env->len = e->has_body ? e->body.len : 0;
	env->priv = e;
	return 0;
}

void
tk_envelope_fini(tk_envelope *env)
{
	if (env == NULL || env->priv == NULL)
		return;
	tk__bus__v1__envelope__free_unpacked(env->priv, &tki_pb_alloc);
	memset(env, 0, sizeof(*env));
}

/* ---- publisher ---------------------------------------------------------- */

struct tk_topic {
	tk_topic *t_next;
	tk_topic_pub *t_pub;
	char *t_name;
	uint64_t t_seq;
	tk_topic_snapshot_fn t_fn;
	void *t_arg;
};

struct tk_topic_pub {
	tk_loop *p_loop;
	nng_socket p_sock;
	bool p_sock_open;
	uint64_t p_epoch;
	tk_topic *p_topics;
	tk_loop_timer *p_hb;
	tk_rpc_server *p_rpc;
	bool p_method;
	tk_buf p_snap;
	tk_ratelimit p_rl;
};

static tk_topic *
topic_find(tk_topic_pub *p, const char *name)
{
	for (tk_topic *t = p->p_topics; t != NULL; t = t->t_next)
		if (strcmp(t->t_name, name) == 0)
			return t;
	return NULL;
}

static int
pub_send(tk_topic *t, int kind, const uint8_t *body, size_t len)
{
	nng_msg *m;
	int rv;

	if ((rv = tk_envelope_pack(&m, t->t_name, t->t_pub->p_epoch, t->t_seq,
		 kind, body, len)) != 0)
		return rv;
	/* pub0 never blocks: a full subscriber queue drops (seq tells). */
	if ((rv = tk_bus_send(t->t_pub->p_sock, m, true)) != 0)
		nng_msg_free(m);
	return rv;
}

int
tk_topic_publish(tk_topic *t, const uint8_t *body, size_t len)
{
	int rv;

	if (t == NULL || (body == NULL && len != 0))
		return TK_EINVAL;
	t->t_seq++; /* even on failure below: subscribers then see a gap */
	if (tk_fault_hit("topic.publish"))
		rv = TK_ENOMEM;
	else
		rv = pub_send(t, TK__BUS__V1__KIND__KIND_DELTA, body, len);
	if (rv != 0)
		TK_LOG_RL(&t->t_pub->p_rl, NULL, TK_LOG_WARN, TKI_BUS_LOG,
		    "topic %s: delta %llu not sent (%s); subscribers will "
		    "resync",
		    t->t_name, (unsigned long long)t->t_seq, tk_strerror(rv));
	return rv;
}

uint64_t
tk_topic_seq(const tk_topic *t)
{
	return t->t_seq;
}

uint64_t
tk_topic_pub_epoch(const tk_topic_pub *p)
{
	return p->p_epoch;
}

static void
heartbeat_cb(tk_loop *loop, tk_loop_timer *timer, void *arg)
{
	tk_topic_pub *p = arg;

	(void)loop;
	(void)timer;
	for (tk_topic *t = p->p_topics; t != NULL; t = t->t_next)
		(void)pub_send(t, TK__BUS__V1__KIND__KIND_HEARTBEAT, NULL, 0);
}

/* rpc "tk.snapshot": reply body = Envelope{kind SNAPSHOT}. */
static int
snapshot_method(void *arg, const uint8_t *body, size_t len, tk_buf *reply)
{
	tk_topic_pub *p = arg;
	Tk__Bus__V1__SnapshotRequest *req;
	Tk__Bus__V1__Envelope e = TK__BUS__V1__ENVELOPE__INIT;
	tk_topic *t;
	int rv;

	req = tk__bus__v1__snapshot_request__unpack(&tki_pb_alloc, len, body);
	if (req == NULL || req->topic == NULL) {
		if (req != NULL)
			tk__bus__v1__snapshot_request__free_unpacked(req,
			    &tki_pb_alloc);
		return TK_EPROTO;
	}
	t = topic_find(p, req->topic);
	if (t == NULL)
		(void)tk_buf_printf(reply, "no topic \"%.64s\"", req->topic);
	tk__bus__v1__snapshot_request__free_unpacked(req, &tki_pb_alloc);
	if (t == NULL)
		return TK_ENOENT;
	tk_buf_reset(&p->p_snap);
	if ((rv = t->t_fn(t->t_arg, &p->p_snap)) != 0)
		return rv;
	e.topic = t->t_name;
	e.has_epoch = e.has_seq = e.has_kind = e.has_body = true;
	e.epoch = p->p_epoch;
	e.seq = t->t_seq;
	e.kind = TK__BUS__V1__KIND__KIND_SNAPSHOT;
	e.body.data = p->p_snap.data;
	e.body.len = p->p_snap.len;
	e.has_time_unix_ns = true;
	e.time_unix_ns = (int64_t)tk_clock_real_ns(NULL);
	return tki_pb_pack_buf(&e.base, reply);
}

int
tk_topic_pub_new(tk_topic_pub **out, const tk_topic_pub_cfg *cfg)
{
	tk_topic_pub *p;
	uint64_t hb;
	int rv;

	if (out == NULL || cfg == NULL || cfg->loop == NULL ||
	    cfg->url == NULL || cfg->rpc == NULL)
		return TK_EINVAL;
	if ((p = tk_calloc(1, sizeof(*p))) == NULL)
		return TK_ENOMEM;
	p->p_loop = cfg->loop;
	p->p_rpc = cfg->rpc;
	tk_buf_init_limit(&p->p_snap, TK_BUS_CTRL_MAX);
	tk_ratelimit_init(&p->p_rl, 5, 1);
	do
		tk_rng_fill(cfg->rng, &p->p_epoch, sizeof(p->p_epoch));
	while (p->p_epoch == 0);
	hb = cfg->heartbeat_ns ? cfg->heartbeat_ns : DEFAULT_HEARTBEAT_NS;
	if ((rv = tk_bus_open(&p->p_sock, TK_BUS_PUB)) != 0)
		goto fail;
	p->p_sock_open = true;
	if ((rv = tk_loop_timer_new(p->p_loop, &p->p_hb, heartbeat_cb, p)) !=
		0 ||
	    (rv = tk_rpc_server_add(p->p_rpc, TK_TOPIC_SNAPSHOT_METHOD,
		 snapshot_method, p)) != 0)
		goto fail;
	p->p_method = true;
	if ((rv = tk_bus_listen(p->p_sock, cfg->url, cfg->tls, NULL)) != 0 ||
	    (rv = tk_loop_timer_arm(p->p_hb, hb, hb)) != 0)
		goto fail;
	*out = p;
	return 0;
fail:
	tk_topic_pub_free(p);
	return rv;
}

void
tk_topic_pub_free(tk_topic_pub *p)
{
	if (p == NULL)
		return;
	if (p->p_method)
		tk_rpc_server_remove(p->p_rpc, TK_TOPIC_SNAPSHOT_METHOD);
	tk_loop_timer_free(p->p_hb);
	if (p->p_sock_open)
		nng_close(p->p_sock);
	while (p->p_topics != NULL) {
		tk_topic *t = p->p_topics;

		p->p_topics = t->t_next;
		tk_free(t->t_name);
		tk_free(t);
	}
	tk_buf_fini(&p->p_snap);
	tk_free(p);
}

int
tk_topic_add(tk_topic_pub *p, const char *name, tk_topic_snapshot_fn fn,
    void *arg, tk_topic **out)
{
	tk_topic *t;

	if (p == NULL || fn == NULL || out == NULL)
		return TK_EINVAL;
	if (!topic_name_ok(name)) {
		TK_ERR(TKI_BUS_LOG,
		    "topic name \"%.80s\" refused: 1..%d chars of "
		    "[A-Za-z0-9._-]",
		    name ? name : "(null)", TK_TOPIC_NAME_MAX);
		return TK_EINVAL;
	}
	if (topic_find(p, name) != NULL)
		return TK_EEXIST;
	if ((t = tk_calloc(1, sizeof(*t))) == NULL)
		return TK_ENOMEM;
	if ((t->t_name = tk_strdup(name)) == NULL) {
		tk_free(t);
		return TK_ENOMEM;
	}
	t->t_pub = p;
	t->t_fn = fn;
	t->t_arg = arg;
	t->t_next = p->p_topics;
	p->p_topics = t;
	*out = t;
	return 0;
}

/* ---- subscriber --------------------------------------------------------- */

enum sub_state {
	SUB_WAIT,   /* retry timer pending before the next snapshot request */
	SUB_AWAIT,  /* snapshot request in flight */
	SUB_SYNCED, /* applying deltas */
};

struct tk_topic_sub {
	tk_topic_sub_cfg s_cfg;
	char *s_topic;
	nng_socket s_sock;
	bool s_sock_open;
	tk_bus_reader *s_reader;
	tk_rpc_client *s_rpc;
	tk_loop_timer *s_retry;
	enum sub_state s_state;
	bool s_ever_synced;
	uint64_t s_epoch;
	uint64_t s_seq;
	uint64_t s_backoff;
	/* deltas received while a snapshot is awaited, in arrival order */
	tk_envelope *s_buf;
	tk_envelope *s_spare; /* same size: swapped in while replaying */
	unsigned s_nbuf;
	tk_topic_sub_stats s_st;
	tk_ratelimit s_rl;
};

static void request_snapshot(tk_topic_sub *s);

static void
buf_clear(tk_topic_sub *s)
{
	for (unsigned i = 0; i < s->s_nbuf; i++)
		tk_envelope_fini(&s->s_buf[i]);
	s->s_nbuf = 0;
}

static void
resync(tk_topic_sub *s, const char *why)
{
	TK_DEBUG(TKI_BUS_LOG, "topic %s: resync (%s) at seq %llu", s->s_topic,
	    why, (unsigned long long)s->s_seq);
	s->s_st.ts_resyncs++;
	buf_clear(s);
	request_snapshot(s);
}

/* A live message while synced.  Consumes env. */
static void
handle_live(tk_topic_sub *s, tk_envelope *env)
{
	if (env->epoch != s->s_epoch) {
		s->s_st.ts_epochs++;
		tk_envelope_fini(env);
		resync(s, "publisher restarted");
		return;
	}
	if (env->kind == TK__BUS__V1__KIND__KIND_HEARTBEAT) {
		s->s_st.ts_heartbeats++;
		if (env->seq > s->s_seq) { /* the tail was lost */
			s->s_st.ts_gaps++;
			tk_envelope_fini(env);
			resync(s, "heartbeat ahead");
			return;
		}
	} else if (env->seq <= s->s_seq) {
		s->s_st.ts_stale++;
	} else if (env->seq == s->s_seq + 1) {
		int rv = s->s_cfg.apply_delta(s->s_cfg.arg, env->seq,
		    env->body, env->len);

		if (rv != 0) {
			tk_envelope_fini(env);
			resync(s, "delta not applied");
			return;
		}
		s->s_seq = env->seq;
		s->s_st.ts_deltas++;
	} else {
		s->s_st.ts_gaps++;
		tk_envelope_fini(env);
		resync(s, "sequence gap");
		return;
	}
	tk_envelope_fini(env);
}

static void
sub_msg(void *arg, nng_msg *msg)
{
	tk_topic_sub *s = arg;
	tk_envelope env;

	if (tk_envelope_unpack(&env, nng_msg_body(msg), nng_msg_len(msg)) !=
	    0) {
		nng_msg_free(msg);
		s->s_st.ts_bad++;
		TK_LOG_RL(&s->s_rl, NULL, TK_LOG_WARN, TKI_BUS_LOG,
		    "topic %s: undecodable message dropped", s->s_topic);
		return;
	}
	nng_msg_free(msg); /* protobuf-c copied the body */
	if (strcmp(env.topic, s->s_topic) != 0 ||
	    env.kind == TK__BUS__V1__KIND__KIND_SNAPSHOT) {
		s->s_st.ts_bad++;
		tk_envelope_fini(&env);
		return;
	}
	if (s->s_state == SUB_SYNCED) {
		handle_live(s, &env);
		return;
	}
	if (env.kind != TK__BUS__V1__KIND__KIND_DELTA) {
		tk_envelope_fini(&env);
		return;
	}
	if (s->s_nbuf == s->s_cfg.max_buffered) {
		/* Oldest goes; a resulting hole is caught as a gap later. */
		tk_envelope_fini(&s->s_buf[0]);
		memmove(&s->s_buf[0], &s->s_buf[1],
		    (s->s_nbuf - 1) * sizeof(s->s_buf[0]));
		s->s_nbuf--;
	}
	s->s_buf[s->s_nbuf++] = env;
}

static void
snapshot_failed(tk_topic_sub *s, int status, const char *why)
{
	s->s_st.ts_snapshot_failures++;
	TK_LOG_RL(&s->s_rl, NULL, TK_LOG_INFO, TKI_BUS_LOG,
	    "topic %s: snapshot failed: %s (%s); retrying", s->s_topic,
	    why ? why : "", tk_strerror(status));
	s->s_state = SUB_WAIT;
	tk_loop_timer_arm(s->s_retry, s->s_backoff, 0);
	s->s_backoff = TK_MIN(s->s_backoff * 2, RETRY_MAX_NS);
}

static void
snapshot_done(void *arg, int status, const char *error, const uint8_t *body,
    size_t len)
{
	tk_topic_sub *s = arg;
	tk_envelope env;
	tk_envelope *pending;
	unsigned npending;
	int rv;

	if (status != 0) {
		snapshot_failed(s, status, error);
		return;
	}
	if (tk_envelope_unpack(&env, body, len) != 0) {
		snapshot_failed(s, TK_EPROTO, "malformed snapshot");
		return;
	}
	if (env.kind != TK__BUS__V1__KIND__KIND_SNAPSHOT ||
	    strcmp(env.topic, s->s_topic) != 0) {
		tk_envelope_fini(&env);
		snapshot_failed(s, TK_EPROTO, "not a snapshot of this topic");
		return;
	}
	rv = s->s_cfg.apply_snapshot(s->s_cfg.arg, env.seq, env.body, env.len);
	if (rv != 0) {
		tk_envelope_fini(&env);
		snapshot_failed(s, rv, "snapshot not applied");
		return;
	}
	s->s_epoch = env.epoch;
	s->s_seq = env.seq;
	s->s_state = SUB_SYNCED;
	s->s_ever_synced = true;
	s->s_backoff = RETRY_MIN_NS;
	s->s_st.ts_snapshots++;
	tk_envelope_fini(&env);
	/*
	 * Replay what arrived meanwhile: same epoch only (older ones predate
	 * the snapshot's publisher), seq > snapshot seq, gaps resync.
	 */
	pending = s->s_buf;
	npending = s->s_nbuf;
	s->s_buf = s->s_spare; /* a resync during the replay clears this one */
	s->s_spare = pending;
	s->s_nbuf = 0;
	for (unsigned i = 0; i < npending; i++) {
		if (s->s_state != SUB_SYNCED ||
		    pending[i].epoch != s->s_epoch) {
			tk_envelope_fini(&pending[i]);
			continue;
		}
		handle_live(s, &pending[i]);
	}
}

static void
request_snapshot(tk_topic_sub *s)
{
	Tk__Bus__V1__SnapshotRequest r = TK__BUS__V1__SNAPSHOT_REQUEST__INIT;
	uint8_t buf[8 + TK_TOPIC_NAME_MAX];
	size_t n;
	int rv;

	r.topic = s->s_topic;
	n = tk__bus__v1__snapshot_request__pack(&r, buf);
	tk_rpc_cancel(s->s_rpc);
	s->s_state = SUB_AWAIT;
	rv = tk_rpc_call(s->s_rpc, TK_TOPIC_SNAPSHOT_METHOD, buf, n,
	    s->s_cfg.snapshot_timeout_ns, snapshot_done, s);
	if (rv != 0)
		snapshot_failed(s, rv, "request not started");
}

static void
retry_cb(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	tk_topic_sub *s = arg;

	(void)loop;
	(void)t;
	if (s->s_state == SUB_WAIT) {
		if (s->s_ever_synced)
			s->s_st.ts_resyncs++;
		request_snapshot(s);
	}
}

/* sub0 prefix: the packed Envelope's first bytes, tag <varint len> topic
 * (protobuf-c writes fields in number order; topic is the first). */
static size_t
topic_prefix(const char *topic, uint8_t *out)
{
	size_t n = strlen(topic), k = 0;

	_Static_assert(TK_T_ENVELOPE_TOPIC == TK_PBT_STRING &&
		TK_F_ENVELOPE_TOPIC < TK_F_ENVELOPE_EPOCH &&
		TK_F_ENVELOPE_TOPIC < TK_F_ENVELOPE_SEQ &&
		TK_F_ENVELOPE_TOPIC < TK_F_ENVELOPE_KIND &&
		TK_F_ENVELOPE_TOPIC < TK_F_ENVELOPE_BODY &&
		TK_F_ENVELOPE_TOPIC < TK_F_ENVELOPE_TIME_UNIX_NS &&
		TK_TAG(ENVELOPE_TOPIC) < 0x80,
	    "Envelope.topic must stay the first field, a string");
	out[k++] = TK_TAG(ENVELOPE_TOPIC);
	out[k++] = (uint8_t)n; /* n <= 64 < 128: one varint byte */
	memcpy(out + k, topic, n);
	return k + n;
}

int
tk_topic_sub_new(tk_topic_sub **out, const tk_topic_sub_cfg *cfg)
{
	tk_topic_sub *s;
	tk_rpc_client_cfg rc;
	uint8_t prefix[2 + TK_TOPIC_NAME_MAX];
	int rv;

	if (out == NULL || cfg == NULL || cfg->loop == NULL ||
	    cfg->url == NULL || cfg->rpc_url == NULL ||
	    cfg->apply_snapshot == NULL || cfg->apply_delta == NULL)
		return TK_EINVAL;
	if (!topic_name_ok(cfg->topic)) {
		TK_ERR(TKI_BUS_LOG,
		    "topic name \"%.80s\" refused: 1..%d chars of "
		    "[A-Za-z0-9._-]",
		    cfg->topic ? cfg->topic : "(null)", TK_TOPIC_NAME_MAX);
		return TK_EINVAL;
	}
	if ((s = tk_calloc(1, sizeof(*s))) == NULL)
		return TK_ENOMEM;
	s->s_cfg = *cfg;
	if (s->s_cfg.snapshot_timeout_ns == 0)
		s->s_cfg.snapshot_timeout_ns = DEFAULT_SNAP_TIMEOUT;
	if (s->s_cfg.max_buffered == 0)
		s->s_cfg.max_buffered = 256;
	s->s_backoff = RETRY_MIN_NS;
	s->s_state = SUB_WAIT;
	tk_ratelimit_init(&s->s_rl, 5, 1);
	if ((s->s_topic = tk_strdup(cfg->topic)) == NULL ||
	    (s->s_buf = tk_calloc(s->s_cfg.max_buffered,
		 sizeof(*s->s_buf))) == NULL ||
	    (s->s_spare = tk_calloc(s->s_cfg.max_buffered,
		 sizeof(*s->s_spare))) == NULL) {
		rv = TK_ENOMEM;
		goto fail;
	}
	s->s_cfg.topic = s->s_topic;
	s->s_cfg.url = s->s_cfg.rpc_url = s->s_cfg.name = NULL; /* not kept */
	if ((rv = tk_bus_open(&s->s_sock, TK_BUS_SUB)) != 0)
		goto fail;
	s->s_sock_open = true;
	if ((rv = tk_err_nng(nng_socket_set(s->s_sock, NNG_OPT_SUB_SUBSCRIBE,
		 prefix, topic_prefix(s->s_topic, prefix)))) != 0)
		goto fail;
	rc.loop = cfg->loop;
	rc.url = cfg->rpc_url;
	rc.tls = cfg->tls;
	rc.name = cfg->name;
	if ((rv = tk_loop_timer_new(cfg->loop, &s->s_retry, retry_cb, s)) !=
		0 ||
	    (rv = tk_rpc_client_new(&s->s_rpc, &rc)) != 0 ||
	    (rv = tk_bus_reader_new(&s->s_reader, cfg->loop, s->s_sock, sub_msg,
		 s)) != 0 ||
	    (rv = tk_bus_dial(s->s_sock, cfg->url, cfg->tls, 0, NULL)) != 0)
		goto fail;
	/* Subscribed first, then ask: deltas from now on are buffered. */
	request_snapshot(s);
	*out = s;
	return 0;
fail:
	tk_topic_sub_free(s);
	return rv;
}

void
tk_topic_sub_free(tk_topic_sub *s)
{
	if (s == NULL)
		return;
	tk_bus_reader_free(s->s_reader);
	tk_rpc_client_free(s->s_rpc);
	tk_loop_timer_free(s->s_retry);
	if (s->s_sock_open)
		nng_close(s->s_sock);
	if (s->s_buf != NULL)
		buf_clear(s);
	tk_free(s->s_buf);
	tk_free(s->s_spare);
	tk_free(s->s_topic);
	tk_free(s);
}

void
tk_topic_sub_stats_get(const tk_topic_sub *s, tk_topic_sub_stats *out)
{
	*out = s->s_st;
}

bool
tk_topic_sub_synced(const tk_topic_sub *s)
{
	return s->s_state == SUB_SYNCED;
}

uint64_t
tk_topic_sub_seq(const tk_topic_sub *s)
{
	return s->s_seq;
}
