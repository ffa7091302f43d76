/* Topics: snapshot then deltas, gaps, lost tails, restarts, garbage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk/bus/v1/common.pb-c.h"
#include "tk/bus_topic.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"
#include "tk_test.h"

#include "bus_test.h"

void register_topic(void);

#define MAXV 8192

/* The published state: a list of numbers; a delta appends one. */
struct pubstate {
	uint32_t v[MAXV];
	unsigned n;
	tk_topic *t;
};

struct substate {
	uint32_t v[MAXV];
	unsigned n;
	int fail_deltas; /* refuse this many deltas */
	int snapshots;
};

static int
snap_fn(void *arg, tk_buf *out)
{
	struct pubstate *ps = arg;
	uint8_t *p;
	int rv;

	if (ps->n == 0)
		return 0;
	if ((rv = tk_buf_extend(out, ps->n * 4u, &p)) != 0)
		return rv;
	for (unsigned i = 0; i < ps->n; i++)
		tk_be32_store(p + 4 * i, ps->v[i]);
	return 0;
}

static int
publish(struct pubstate *ps, uint32_t val)
{
	uint8_t b[4];

	ps->v[ps->n++] = val;
	tk_be32_store(b, val);
	return tk_topic_publish(ps->t, b, 4);
}

static int
apply_snap(void *arg, uint64_t seq, const uint8_t *body, size_t len)
{
	struct substate *ss = arg;

	(void)seq;
	if (len % 4 != 0 || len / 4 > MAXV)
		return TK_EPROTO;
	ss->n = (unsigned)(len / 4);
	for (unsigned i = 0; i < ss->n; i++)
		ss->v[i] = tk_be32_load(body + 4 * i);
	ss->snapshots++;
	return 0;
}

static int
apply_delta(void *arg, uint64_t seq, const uint8_t *body, size_t len)
{
	struct substate *ss = arg;

	(void)seq;
	if (ss->fail_deltas > 0) {
		ss->fail_deltas--;
		return TK_EINVAL;
	}
	if (len != 4 || ss->n >= MAXV)
		return TK_EPROTO;
	ss->v[ss->n++] = tk_be32_load(body);
	return 0;
}

/* One publisher (with its rpc server) and one subscriber on one loop. */
struct rig {
	tk_loop *loop;
	char url[512], rpc_url[512];
	tk_rpc_server *rpc;
	tk_topic_pub *pub;
	tk_topic_sub *sub;
	struct pubstate ps;
	struct substate ss;
	char *dir;
};

static void
rig_pub(struct rig *r)
{
	tk_topic_pub_cfg pc;

	memset(&pc, 0, sizeof(pc));
	pc.loop = r->loop;
	pc.url = r->url;
	pc.rpc = r->rpc;
	pc.heartbeat_ns = 50 * TK_NSEC_PER_MSEC;
	CU_ASSERT_EQUAL_FATAL(tk_topic_pub_new(&r->pub, &pc), 0);
	CU_ASSERT_EQUAL_FATAL(tk_topic_add(r->pub, "numbers", snap_fn, &r->ps,
				  &r->ps.t),
	    0);
}

static void
rig_sub(struct rig *r)
{
	tk_topic_sub_cfg sc;

	memset(&sc, 0, sizeof(sc));
	sc.loop = r->loop;
	sc.url = r->url;
	sc.rpc_url = r->rpc_url;
	sc.topic = "numbers";
	sc.apply_snapshot = apply_snap;
	sc.apply_delta = apply_delta;
	sc.arg = &r->ss;
	sc.snapshot_timeout_ns = TK_NSEC_PER_SEC;
	sc.name = "test";
	memset(&r->ss, 0, sizeof(r->ss));
	CU_ASSERT_EQUAL_FATAL(tk_topic_sub_new(&r->sub, &sc), 0);
}

static void
rig_init(struct rig *r, bool ipc)
{
	memset(r, 0, sizeof(*r));
	if (ipc) {
		r->dir = tk_test_tmpdir();
		CU_ASSERT_PTR_NOT_NULL_FATAL(r->dir);
		snprintf(r->url, sizeof(r->url), "ipc://%s/ctrl/pub.ipc",
		    r->dir);
		snprintf(r->rpc_url, sizeof(r->rpc_url),
		    "ipc://%s/ctrl/rep.ipc", r->dir);
	} else {
		bt_inproc("pub", r->url, sizeof(r->url));
		bt_inproc("rep", r->rpc_url, sizeof(r->rpc_url));
	}
	CU_ASSERT_EQUAL_FATAL(tk_loop_new(&r->loop, NULL), 0);
	CU_ASSERT_EQUAL_FATAL(tk_rpc_server_new(&r->rpc,
				  &(tk_rpc_server_cfg){ r->loop, r->rpc_url,
				      NULL, 0 }),
	    0);
	rig_pub(r);
}

static void
rig_fini(struct rig *r)
{
	tk_topic_sub_free(r->sub);
	tk_topic_pub_free(r->pub);
	tk_rpc_server_free(r->rpc);
	tk_loop_free(r->loop);
	if (r->dir != NULL) {
		tk_test_rmtree(r->dir);
		free(r->dir);
	}
}

static bool
converged(void *arg)
{
	struct rig *r = arg;

	return tk_topic_sub_synced(r->sub) &&
	    tk_topic_sub_seq(r->sub) == tk_topic_seq(r->ps.t) &&
	    r->ss.n == r->ps.n &&
	    memcmp(r->ss.v, r->ps.v, r->ps.n * sizeof(uint32_t)) == 0;
}

static void
stats(struct rig *r, tk_topic_sub_stats *st)
{
	tk_topic_sub_stats_get(r->sub, st);
}

static void
basic(bool ipc)
{
	struct rig r;
	tk_topic_sub_stats st;

	rig_init(&r, ipc);
	for (uint32_t i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(publish(&r.ps, 100 + i), 0);
	CU_ASSERT_EQUAL(tk_topic_seq(r.ps.t), 5);
	rig_sub(&r);
	CU_ASSERT_TRUE_FATAL(bt_run_until(r.loop, converged, &r, 5000));
	CU_ASSERT_EQUAL(r.ss.n, 5);
	/* Let the sub pipe connect, then deltas flow one by one. */
	bt_run_for(r.loop, 150);
	stats(&r, &st);
	CU_ASSERT_EQUAL(st.ts_snapshots, 1);
	CU_ASSERT(st.ts_heartbeats >= 1);
	for (uint32_t i = 0; i < 20; i++) {
		CU_ASSERT_EQUAL(publish(&r.ps, 200 + i), 0);
		tk_loop_run_once(r.loop, 0);
	}
	CU_ASSERT_TRUE(bt_run_until(r.loop, converged, &r, 5000));
	stats(&r, &st);
	CU_ASSERT_EQUAL(st.ts_deltas, 20);
	CU_ASSERT_EQUAL(st.ts_resyncs, 0);
	CU_ASSERT_EQUAL(st.ts_gaps, 0);
	CU_ASSERT_EQUAL(st.ts_bad, 0);
	CU_ASSERT_EQUAL(r.ss.snapshots, 1);
	CU_ASSERT_EQUAL(tk_topic_sub_seq(r.sub), 25);
	rig_fini(&r);
}

static void
test_topic_basic_inproc(void)
{
	basic(false);
}

static void
test_topic_basic_ipc(void)
{
	basic(true);
}

/* A delta that never went out: the next one reveals the gap -> resync. */
static void
test_topic_forced_gap(void)
{
#ifdef TK_FAULT_INJECTION
	struct rig r;
	tk_topic_sub_stats st;
	int level = tk_log_get_level();

	rig_init(&r, false);
	rig_sub(&r);
	CU_ASSERT_TRUE_FATAL(bt_run_until(r.loop, converged, &r, 5000));
	bt_run_for(r.loop, 150);
	CU_ASSERT_EQUAL(publish(&r.ps, 1), 0);
	CU_ASSERT_TRUE(bt_run_until(r.loop, converged, &r, 5000));
	tk_log_set_level(-1);
	tk_fault_arm(1); /* the next fault point is the publish's send */
	CU_ASSERT_EQUAL(publish(&r.ps, 2), TK_ENOMEM);
	tk_fault_disarm();
	tk_log_set_level(level);
	CU_ASSERT_EQUAL(tk_topic_seq(r.ps.t), 2); /* seq moved anyway */
	CU_ASSERT_EQUAL(publish(&r.ps, 3), 0);
	CU_ASSERT_TRUE(bt_run_until(r.loop, converged, &r, 5000));
	stats(&r, &st);
	CU_ASSERT(st.ts_gaps >= 1);
	CU_ASSERT(st.ts_resyncs >= 1);
	CU_ASSERT_EQUAL(st.ts_snapshots, 2);
	CU_ASSERT_EQUAL(r.ss.n, 3);
	CU_ASSERT_EQUAL(r.ss.v[1], 2); /* the lost value came by snapshot */
	rig_fini(&r);
#else
	tk_test_skip("fault injection not compiled in");
#endif
}

/* The LAST delta is lost: only the heartbeat can tell. */
static void
test_topic_lost_tail(void)
{
#ifdef TK_FAULT_INJECTION
	struct rig r;
	tk_topic_sub_stats st;
	int level = tk_log_get_level();

	rig_init(&r, false);
	rig_sub(&r);
	CU_ASSERT_TRUE_FATAL(bt_run_until(r.loop, converged, &r, 5000));
	bt_run_for(r.loop, 150);
	tk_log_set_level(-1);
	tk_fault_arm(1);
	CU_ASSERT_EQUAL(publish(&r.ps, 9), TK_ENOMEM);
	tk_fault_disarm();
	tk_log_set_level(level);
	CU_ASSERT_TRUE(bt_run_until(r.loop, converged, &r, 5000));
	stats(&r, &st);
	CU_ASSERT(st.ts_gaps >= 1);
	CU_ASSERT_EQUAL(st.ts_snapshots, 2);
	CU_ASSERT_EQUAL(r.ss.n, 1);
	rig_fini(&r);
#else
	tk_test_skip("fault injection not compiled in");
#endif
}

/* The subscriber restarts; the new one starts from a snapshot. */
static void
test_topic_sub_restart(void)
{
	struct rig r;
	tk_topic_sub_stats st;

	rig_init(&r, false);
	rig_sub(&r);
	for (uint32_t i = 0; i < 10; i++)
		CU_ASSERT_EQUAL(publish(&r.ps, i), 0);
	CU_ASSERT_TRUE_FATAL(bt_run_until(r.loop, converged, &r, 5000));
	tk_topic_sub_free(r.sub);
	r.sub = NULL;
	for (uint32_t i = 10; i < 30; i++)
		CU_ASSERT_EQUAL(publish(&r.ps, i), 0);
	rig_sub(&r);
	CU_ASSERT_FALSE(tk_topic_sub_synced(r.sub));
	CU_ASSERT_TRUE(bt_run_until(r.loop, converged, &r, 5000));
	stats(&r, &st);
	CU_ASSERT_EQUAL(st.ts_snapshots, 1);
	CU_ASSERT_EQUAL(r.ss.n, 30);
	CU_ASSERT_EQUAL(tk_topic_sub_seq(r.sub), 30);
	rig_fini(&r);
}

/* The publisher restarts (new epoch, seq from 0): subscribers resync. */
static void
test_topic_pub_restart(void)
{
	struct rig r;
	tk_topic_sub_stats st;
	uint64_t epoch1;

	rig_init(&r, false);
	rig_sub(&r);
	for (uint32_t i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(publish(&r.ps, i), 0);
	CU_ASSERT_TRUE_FATAL(bt_run_until(r.loop, converged, &r, 5000));
	epoch1 = tk_topic_pub_epoch(r.pub);
	tk_topic_pub_free(r.pub);
	/* The restarted owner recovered 3 of its 5 values from its state. */
	r.ps.n = 3;
	rig_pub(&r);
	CU_ASSERT_NOT_EQUAL(tk_topic_pub_epoch(r.pub), epoch1);
	CU_ASSERT_EQUAL(tk_topic_seq(r.ps.t), 0);
	CU_ASSERT_EQUAL(publish(&r.ps, 77), 0);
	CU_ASSERT_TRUE(bt_run_until(r.loop, converged, &r, 5000));
	stats(&r, &st);
	CU_ASSERT(st.ts_epochs >= 1);
	CU_ASSERT(st.ts_snapshots >= 2);
	CU_ASSERT_EQUAL(r.ss.n, 4);
	CU_ASSERT_EQUAL(r.ss.v[3], 77);
	rig_fini(&r);
}

/* A delta the subscriber cannot apply makes it resync. */
static void
test_topic_apply_failure(void)
{
	struct rig r;
	tk_topic_sub_stats st;

	rig_init(&r, false);
	rig_sub(&r);
	CU_ASSERT_TRUE_FATAL(bt_run_until(r.loop, converged, &r, 5000));
	bt_run_for(r.loop, 150);
	r.ss.fail_deltas = 1;
	CU_ASSERT_EQUAL(publish(&r.ps, 5), 0);
	CU_ASSERT_EQUAL(publish(&r.ps, 6), 0);
	CU_ASSERT_TRUE(bt_run_until(r.loop, converged, &r, 5000));
	stats(&r, &st);
	CU_ASSERT(st.ts_resyncs >= 1);
	CU_ASSERT(st.ts_snapshots >= 2);
	rig_fini(&r);
}

/* A burst far beyond nng's queues: pub drops, the pattern recovers. */
static void
test_topic_burst(void)
{
	struct rig r;

	rig_init(&r, false);
	rig_sub(&r);
	CU_ASSERT_TRUE_FATAL(bt_run_until(r.loop, converged, &r, 5000));
	for (uint32_t i = 0; i < 5000; i++)
		CU_ASSERT_EQUAL(publish(&r.ps, i), 0);
	CU_ASSERT_TRUE(bt_run_until(r.loop, converged, &r, 10000));
	CU_ASSERT_EQUAL(r.ss.n, 5000);
	rig_fini(&r);
}

/* Garbage on the topic, and a snapshot for a topic that is not there yet. */
static bool
two_bad(void *arg)
{
	struct rig *r = arg;
	tk_topic_sub_stats st;

	stats(r, &st);
	return st.ts_bad >= 2;
}

static void
test_topic_garbage_and_unknown(void)
{
	struct rig r;
	nng_socket raw;
	tk_topic_sub_cfg sc;
	unsigned long end;
	int level = tk_log_get_level();
	static const uint8_t junk[] = { 0x0a, 0x07, 'n', 'u', 'm', 'b', 'e',
		'r', 's', 0xff, 0xff, 0xff };

	rig_init(&r, false);
	/* A raw publisher on another URL sends garbage with our prefix. */
	CU_ASSERT_EQUAL_FATAL(tk_bus_open(&raw, TK_BUS_PUB), 0);
	bt_inproc("raw", r.url, sizeof(r.url));
	CU_ASSERT_EQUAL_FATAL(tk_bus_listen(raw, r.url, NULL, NULL), 0);
	memset(&sc, 0, sizeof(sc));
	sc.loop = r.loop;
	sc.url = r.url;
	sc.rpc_url = r.rpc_url;
	sc.topic = "numbers";
	sc.apply_snapshot = apply_snap;
	sc.apply_delta = apply_delta;
	sc.arg = &r.ss;
	sc.snapshot_timeout_ns = TK_NSEC_PER_SEC;
	CU_ASSERT_EQUAL(tk_topic_sub_new(&r.sub, &sc), 0);
	/* Another topic name: the rpc server answers TK_ENOENT. */
	sc.topic = "absent";
	{
		tk_topic_sub *other;
		tk_topic_sub_stats st;

		tk_log_set_level(-1);
		CU_ASSERT_EQUAL_FATAL(tk_topic_sub_new(&other, &sc), 0);
		end = bt_ms() + 5000;
		while (bt_ms() < end) {
			nng_msg *m;

			CU_ASSERT_EQUAL_FATAL(nng_msg_alloc(&m, 0), 0);
			nng_msg_append(m, junk, sizeof(junk));
			if (tk_bus_send(raw, m, true) != 0)
				nng_msg_free(m);
			/* Valid envelope, but a SNAPSHOT has no place on pub. */
			if (tk_envelope_pack(&m, "numbers", 1, 1,
				TK__BUS__V1__KIND__KIND_SNAPSHOT, NULL, 0) == 0 &&
			    tk_bus_send(raw, m, true) != 0)
				nng_msg_free(m);
			bt_run_for(r.loop, 20);
			tk_topic_sub_stats_get(other, &st);
			if (two_bad(&r) && st.ts_snapshot_failures >= 1)
				break;
		}
		tk_log_set_level(level);
		tk_topic_sub_stats_get(other, &st);
		CU_ASSERT(st.ts_snapshot_failures >= 1);
		CU_ASSERT_FALSE(tk_topic_sub_synced(other));
		tk_topic_sub_free(other);
	}
	CU_ASSERT_TRUE(two_bad(&r));
	/* Still syncs from the real rpc server. */
	CU_ASSERT_TRUE(bt_run_until(r.loop, converged, &r, 5000));
	nng_close(raw);
	/* Bad names are refused with a message. */
	tk_log_set_level(-1);
	{
		tk_topic *t;
		tk_topic_sub *s;

		CU_ASSERT_EQUAL(tk_topic_add(r.pub, "has space", snap_fn, NULL,
				    &t),
		    TK_EINVAL);
		CU_ASSERT_EQUAL(tk_topic_add(r.pub, "numbers", snap_fn, NULL,
				    &t),
		    TK_EEXIST);
		sc.topic = "";
		CU_ASSERT_EQUAL(tk_topic_sub_new(&s, &sc), TK_EINVAL);
	}
	tk_log_set_level(level);
	rig_fini(&r);
}


/* Every allocation failure while building the objects is a clean error. */
static void
test_alloc_failure_sweep(void)
{
#ifdef TK_FAULT_INJECTION
	int level = tk_log_get_level();
	unsigned long n;
	int kinds_done = 0;

	tk_log_set_level(-1);
	for (int kind = 0; kind < 4; kind++) {
		for (n = 1; n < 400; n++) {
			struct rig r;
			bool fired;
			int rv;

			memset(&r, 0, sizeof(r));
			bt_inproc("fpub", r.url, sizeof(r.url));
			bt_inproc("frep", r.rpc_url, sizeof(r.rpc_url));
			if (tk_loop_new(&r.loop, NULL) != 0)
				break;
			if (kind >= 1 &&
			    tk_rpc_server_new(&r.rpc, &(tk_rpc_server_cfg){
				r.loop, r.rpc_url, NULL, 0 }) != 0)
				break;
			tk_fault_arm(n);
			switch (kind) {
			case 0:
				rv = tk_rpc_server_new(&r.rpc,
				    &(tk_rpc_server_cfg){ r.loop, r.rpc_url,
					NULL, 0 });
				break;
			case 1: {
				tk_topic_pub_cfg pc;

				memset(&pc, 0, sizeof(pc));
				pc.loop = r.loop;
				pc.url = r.url;
				pc.rpc = r.rpc;
				rv = tk_topic_pub_new(&r.pub, &pc);
				if (rv == 0)
					rv = tk_topic_add(r.pub, "numbers",
					    snap_fn, &r.ps, &r.ps.t);
				break;
			}
			case 2: {
				tk_rpc_client *c = NULL;

				rv = tk_rpc_client_new(&c,
				    &(tk_rpc_client_cfg){ r.loop, r.rpc_url,
					NULL, "x" });
				tk_rpc_client_free(c);
				break;
			}
			default: {
				tk_topic_sub_cfg sc;

				memset(&sc, 0, sizeof(sc));
				sc.loop = r.loop;
				sc.url = r.url;
				sc.rpc_url = r.rpc_url;
				sc.topic = "numbers";
				sc.apply_snapshot = apply_snap;
				sc.apply_delta = apply_delta;
				sc.arg = &r.ss;
				rv = tk_topic_sub_new(&r.sub, &sc);
				break;
			}
			}
			fired = tk_fault_fired();
			tk_fault_disarm();
			CU_ASSERT(rv == 0 || (fired && rv == TK_ENOMEM));
			if (rv != 0 && kind == 3)
				r.sub = NULL;
			rig_fini(&r);
			if (!fired) {
				kinds_done++;
				break;
			}
		}
	}
	tk_log_set_level(level);
	CU_ASSERT_EQUAL(kinds_done, 4);
#else
	tk_test_skip("fault injection not compiled in");
#endif
}

void
register_topic(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_topic_basic_inproc),
		TK_TEST(test_topic_basic_ipc),
		TK_TEST(test_topic_forced_gap),
		TK_TEST(test_topic_lost_tail),
		TK_TEST(test_topic_sub_restart),
		TK_TEST(test_topic_pub_restart),
		TK_TEST(test_topic_apply_failure),
		TK_TEST(test_topic_burst),
		TK_TEST(test_topic_garbage_and_unknown),
		TK_TEST(test_alloc_failure_sweep),
		TK_TEST_END,
	};

	tk_test_suite("topic", cases);
}
