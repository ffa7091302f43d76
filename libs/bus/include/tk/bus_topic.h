/*
 * Topics: pub/sub with sequence numbers, snapshots and resync.
 *
 * pub/sub in nng retains nothing and drops when a subscriber is slow, so
 * state travels as:
 *
 *   publisher   keeps a sequence counter per topic.  Each change is a DELTA
 *               with seq = previous + 1.  A snapshot request ("tk.snapshot"
 *               on the publisher's req/rep server) is answered with the
 *               whole state and the seq of the last delta it includes.  A
 *               HEARTBEAT with the current seq goes out periodically.  Every
 *               publisher start draws a random epoch.
 *   subscriber  (re)starts by subscribing, then asking for a snapshot;
 *               deltas that arrive meanwhile are buffered.  It applies the
 *               snapshot, then deltas with seq > snapshot seq, in order.  A
 *               gap (seq > last + 1), a heartbeat ahead of it (the last delta
 *               was lost) or a new epoch (publisher restarted) means: ask for
 *               a snapshot again.
 *
 * Envelope: tk.bus.v1.Envelope (proto/tk/bus/v1/common.proto).  The topic is
 * its field 1, so the packed bytes start with the topic and double as the
 * sub0 prefix filter.
 *
 * Everything here runs on the loop thread.
 */
#ifndef TK_BUS_TOPIC_H
#define TK_BUS_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tk/buf.h"
#include "tk/bus.h"
#include "tk/bus_rpc.h"
#include "tk/bus_topics.h"
#include "tk/loop.h"
#include "tk/rng.h"

#define TK_TOPIC_NAME_MAX   64 /* [A-Za-z0-9._-], 1..64 chars */
#define TK_TOPIC_SNAPSHOT_METHOD TK_METHOD_SNAPSHOT

/* ---- publisher ---------------------------------------------------------- */

typedef struct tk_topic_pub tk_topic_pub;
typedef struct tk_topic tk_topic;

/*
 * Writes the topic's whole current state into `out` (packed body), as of
 * the last tk_topic_publish.  On the loop thread.
 */
typedef int (*tk_topic_snapshot_fn)(void *arg, tk_buf *out);

typedef struct tk_topic_pub_cfg {
	tk_loop *loop;
	const char *url;       /* the pub socket listens here */
	const tk_bus_tls *tls; /* for tls+tcp:// */
	tk_rpc_server *rpc;    /* answers tk.snapshot for these topics; one
				  publisher per rpc server (it may also
				  serve "status" and commands) */
	uint64_t heartbeat_ns; /* 0: 1 s */
	const tk_rng *rng;     /* epoch source; NULL: system */
} tk_topic_pub_cfg;

int tk_topic_pub_new(tk_topic_pub **out, const tk_topic_pub_cfg *cfg);
/* Frees its topics too.  Before the rpc server.  NULL is a no-op. */
void tk_topic_pub_free(tk_topic_pub *p);
uint64_t tk_topic_pub_epoch(const tk_topic_pub *p);

/* Adds a topic (name copied).  TK_EEXIST if taken, TK_EINVAL bad name. */
int tk_topic_add(tk_topic_pub *p, const char *name, tk_topic_snapshot_fn fn,
    void *arg, tk_topic **out);
/*
 * Publishes one change (body copied).  The topic's seq advances even when
 * this fails, so a failure shows up at subscribers as a gap and a resync,
 * never as a silently lost change.
 */
int tk_topic_publish(tk_topic *t, const uint8_t *body, size_t len);
uint64_t tk_topic_seq(const tk_topic *t);

/* ---- subscriber --------------------------------------------------------- */

typedef struct tk_topic_sub tk_topic_sub;

/*
 * Callbacks on the loop thread; body borrowed.  A non-zero return from
 * apply_delta means "could not apply": the subscriber resyncs.  A non-zero
 * return from apply_snapshot retries the snapshot later.
 */
typedef int (*tk_topic_apply_fn)(void *arg, uint64_t seq, const uint8_t *body,
    size_t len);

typedef struct tk_topic_sub_cfg {
	tk_loop *loop;
	const char *url;     /* the publisher's pub URL */
	const char *rpc_url; /* the publisher's req/rep URL */
	const tk_bus_tls *tls;
	const char *topic;
	tk_topic_apply_fn apply_snapshot;
	tk_topic_apply_fn apply_delta;
	void *arg;
	uint64_t snapshot_timeout_ns; /* per attempt; 0: 2 s */
	unsigned max_buffered;	      /* deltas held while syncing; 0: 256 */
	const char *name;	      /* for the publisher's logs */
} tk_topic_sub_cfg;

int tk_topic_sub_new(tk_topic_sub **out, const tk_topic_sub_cfg *cfg);
void tk_topic_sub_free(tk_topic_sub *s);

typedef struct tk_topic_sub_stats {
	uint64_t ts_snapshots;	 /* applied */
	uint64_t ts_deltas;	 /* applied */
	uint64_t ts_gaps;	 /* seq jumps seen */
	uint64_t ts_resyncs;	 /* snapshot requests after the first */
	uint64_t ts_stale;	 /* deltas at or below the applied seq */
	uint64_t ts_heartbeats;
	uint64_t ts_epochs;	 /* publisher restarts seen */
	uint64_t ts_bad;	 /* undecodable messages dropped */
	uint64_t ts_snapshot_failures;
} tk_topic_sub_stats;

void tk_topic_sub_stats_get(const tk_topic_sub *s, tk_topic_sub_stats *out);
/* True once a snapshot is applied and no resync is pending. */
bool tk_topic_sub_synced(const tk_topic_sub *s);
/* Seq of the state applied so far. */
uint64_t tk_topic_sub_seq(const tk_topic_sub *s);

/* ---- envelope codec (exposed for tools and fuzzing) --------------------- */

typedef struct tk_envelope {
	const char *topic; /* points into the unpacked message */
	uint64_t epoch;
	uint64_t seq;
	int kind; /* tk.bus.v1.Kind */
	const uint8_t *body;
	size_t len;
	void *priv; /* the unpacked protobuf-c message */
} tk_envelope;

/*
 * Unpacks and checks an envelope (valid topic name, known kind, seq >= 1
 * for deltas).  TK_EPROTO on garbage.  Release with tk_envelope_fini.
 */
int tk_envelope_unpack(tk_envelope *env, const uint8_t *p, size_t n);
void tk_envelope_fini(tk_envelope *env);
/* Packs into a new nng message.  Hand-off: on 0 the caller owns *out. */
int tk_envelope_pack(nng_msg **out, const char *topic, uint64_t epoch,
    uint64_t seq, int kind, const uint8_t *body, size_t len);

#endif
