/*
 * derpd server internals, shared by server*.c, http*.c and stun*.c.
 * Everything here runs on the server's loop thread.
 */
#ifndef DERPD_SERVER_INT_H
#define DERPD_SERVER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/socket.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

#include "derpd/derpd.h"
#include "tk/derp.h"
#include "tk/log.h"
#include "tk/loop.h"

#define DERPD_LOG "derpd"

/* --- a hash map from 32-byte keys to pointers (server_map.c) ------------- */

typedef struct derpdi_map_ent {
	uint8_t key[TK_DERP_KEY_LEN];
	void *val; /* NULL: empty slot; (void*)1 is a legal value */
	bool tomb;
} derpdi_map_ent;

typedef struct derpdi_map {
	derpdi_map_ent *ents;
	size_t cap, len, used; /* used = len + tombstones */
	const uint8_t *hkey;   /* 16-byte SipHash key, the server's */
} derpdi_map;

void derpdi_map_init(derpdi_map *m, const uint8_t *hkey);
void derpdi_map_fini(derpdi_map *m);
void *derpdi_map_get(const derpdi_map *m, const uint8_t key[TK_DERP_KEY_LEN]);
/* Inserts or replaces; val != NULL.  TK_ENOMEM. */
int derpdi_map_put(derpdi_map *m, const uint8_t key[TK_DERP_KEY_LEN],
    void *val);
void derpdi_map_del(derpdi_map *m, const uint8_t key[TK_DERP_KEY_LEN]);
/* Iteration: i from 0; returns the next live entry or NULL. */
derpdi_map_ent *derpdi_map_next(const derpdi_map *m, size_t *i);

/* --- counters (exported by /metrics) -------------------------------------- */

enum derpdi_drop {
	DROP_UNKNOWN_DEST,
	DROP_UNKNOWN_DEST_ON_FWD,
	DROP_GONE_DISCONNECTED,
	DROP_QUEUE_HEAD,
	DROP_QUEUE_TAIL,
	DROP_WRITE_ERROR,
	DROP_DUP_CLIENT,
	DROP_N_
};

/* Why a connection was closed before or during DERP (counted). */
enum derpdi_close {
	CLOSE_EOF,		/* peer closed cleanly */
	CLOSE_READ_ERROR,	/* reset, TLS error */
	CLOSE_WRITE_TIMEOUT,
	CLOSE_WRITE_ERROR,
	CLOSE_HANDSHAKE_TIMEOUT, /* no ClientInfo / HTTP head in time */
	CLOSE_BAD_HTTP,
	CLOSE_BAD_FIRST_FRAME,	/* not ClientInfo, or its length */
	CLOSE_BAD_BOX,		/* ClientInfo does not open */
	CLOSE_BAD_CLIENT_INFO,	/* JSON */
	CLOSE_NOT_ADMITTED,
	CLOSE_BAD_FRAME,	/* a length rule broken */
	CLOSE_NO_PERMISSION,	/* mesh frame without the mesh key */
	CLOSE_CLOSE_PEER,	/* ClosePeer from a mesh peer */
	CLOSE_ACCEPT_LIMIT,
	CLOSE_NOMEM,
	CLOSE_SHUTDOWN,
	CLOSE_HTTP_DONE,	/* a plain HTTP exchange ended */
	CLOSE_N_
};

typedef struct derpdi_stats {
	uint64_t accepts;
	uint64_t accepts_limited;
	uint64_t http_requests;
	uint64_t http_bad;
	uint64_t derp_upgrades;
	uint64_t derp_fast_start;
	uint64_t tls_handshake_failures;
	uint64_t packets_recv, bytes_recv;
	uint64_t packets_recv_disco, packets_recv_other;
	uint64_t packets_sent, bytes_sent;
	uint64_t packets_forwarded_out, packets_forwarded_in;
	uint64_t packets_dropped[DROP_N_];
	uint64_t bytes_dropped[DROP_N_];
	uint64_t peer_gone_disconnected_frames, peer_gone_not_here_frames;
	uint64_t got_ping, sent_pong;
	uint64_t unknown_frames;
	uint64_t home_moves_in, home_moves_out;
	uint64_t write_timeouts;
	uint64_t closes[CLOSE_N_];
	uint64_t dup_client_conn_total;
	uint64_t stun_requests, stun_bad, stun_responses;
	uint64_t admission_denied, admission_fail_open;
	uint64_t mesh_connects;
	uint64_t rate_limit_waits;
	uint64_t websocket_accepts, websocket_bad;
	/* gauges */
	int64_t cur_conns, cur_clients, cur_home_clients;
	int64_t dup_client_keys, dup_client_conns, watchers;
} derpdi_stats;

/* --- connections ------------------------------------------------------------ */

typedef struct derpdi_pkt {
	uint8_t src[TK_DERP_KEY_LEN];
	uint32_t len;
	uint8_t data[];
} derpdi_pkt;

#define DERPD_QDEPTH TK_DERP_SEND_QUEUE_DEPTH

typedef struct derpdi_pktq {
	derpdi_pkt *p[DERPD_QDEPTH];
	unsigned head, n;
} derpdi_pktq;

typedef struct derpdi_gone {
	uint8_t key[TK_DERP_KEY_LEN];
	uint8_t reason;
} derpdi_gone;

typedef struct derpdi_present {
	uint8_t key[TK_DERP_KEY_LEN];
	uint8_t ip[16];
	uint16_t port;
	uint8_t flags;
	bool present;
} derpdi_present;

enum derpdi_cstate {
	CS_TLS,	      /* TLS handshake */
	CS_HTTP,      /* reading a request head */
	CS_INFO,      /* DERP: waiting for ClientInfo */
	CS_VERIFY,    /* DERP: admission check in flight */
	CS_DERP,      /* DERP: registered */
	CS_LINGER,    /* HTTP answered, write side shut: drain, then close */
	/* our own mesh links (server_mesh.c), as a DERP client: */
	CS_MCONNECT,  /* TCP connect in progress */
	CS_MHTTP,     /* upgrade sent, waiting for 101 */
	CS_MKEY,      /* waiting for ServerKey */
	CS_MDERP,     /* ClientInfo and WatchConns sent */
	CS_CLOSED,
};

typedef struct derpdi_set derpdi_set;
typedef struct derpdi_mesh derpdi_mesh;
typedef struct derpdi_verify derpdi_verify;

typedef struct derpdi_conn {
	struct derpd_server *s;
	struct derpdi_conn *next, *prev;	 /* all conns */
	struct derpdi_conn *dnext;		 /* dirty list */
	bool dirty;
	int fd;		/* -1: no socket (fuzzing, tests) */
	bool plain_only; /* the --http-port listener: no /derp */
	gnutls_session_t tls;
	size_t tls_pending; /* bytes handed to a gnutls_record_send that said AGAIN */
	enum derpdi_cstate st;
	uint64_t id;
	uint64_t deadline_ns;	/* handshake deadline, 0: none */
	uint64_t wblocked_ns;	/* first write stall without progress, 0: none */
	uint64_t next_ka_ns, ka_period_ns;
	bool want_write;	/* EPOLLOUT registered */
	bool rpaused;		/* READ interest dropped (buffer full) */
	bool http_blocked;	/* HTTP answers pile up: parse no further */
	struct derpdi_conn *gnext; /* graveyard: freed in the before-sleep hook */
	bool close_after_write; /* HTTP response then close */

	/* input */
	uint8_t *ib;
	size_t ioff, ilen, icap;
	uint64_t skip; /* payload bytes of an ignored frame still to drop */

	/* output */
	uint8_t *ob;
	size_t ooff, olen, ocap;

	/* DERP over WebSocket (server_ws.c): raw bytes both ways; ib/ob
	 * then carry the DERP stream inside the binary messages */
	bool ws;
	uint8_t *wr;		/* raw input, frames not yet decoded */
	size_t wroff, wrlen, wrcap;
	uint8_t *wob;		/* raw output: frames */
	size_t wooff, wolen, wocap;
	uint64_t ws_left;	/* payload bytes of the current data frame */
	uint8_t ws_mask[4];
	unsigned ws_mpos;

	/* peer */
	struct sockaddr_storage peer;
	socklen_t peerlen;
	char ipstr[64];
	uint8_t ip16[16];
	uint16_t port;

	/* DERP client */
	uint8_t key[TK_DERP_KEY_LEN];
	tk_derp_client_info info;
	bool can_mesh, preferred, not_ideal, is_dup, watcher;
	derpdi_set *set;
	derpdi_pktq q, dq;
	derpdi_gone *gone;	 /* pending PeerGone frames */
	size_t ngone, capgone;
	derpdi_present *pres;	 /* pending mesh updates (watchers) */
	size_t npres, cappres;
	bool pong_pending;
	uint8_t pong[TK_DERP_PING_LEN];
	bool ka_pending;
	bool info_pending;	 /* ServerInfo to write */
	derpdi_map saw_src;	 /* keys this conn received packets from */
	tk_ratelimit gone_rl;	 /* NotHere: 1/s burst 3 */
	derpdi_verify *verify;
	/* --rate-config token bucket (bytes; not for mesh peers) */
	uint64_t rl_tokens, rl_last_ns, rl_resume_ns;
	derpdi_mesh *mesh;	 /* set: this is a mesh link we dialled */
} derpdi_conn;

/* All connections of one key (derpserver.go clientSet + dupClientSet). */
struct derpdi_set {
	uint8_t key[TK_DERP_KEY_LEN];
	derpdi_conn **conns;
	size_t n, cap;
	derpdi_conn *active; /* receives packets; NULL: none (dup, undecided) */
	derpdi_conn *last;
};

/* Conns that received packets from a key (peerGoneWatchers). */
typedef struct derpdi_watchers {
	derpdi_conn **c;
	size_t n, cap;
} derpdi_watchers;

/* --- the server --------------------------------------------------------------- */

struct derpd_server {
	derpd_server_config cfg;
	char *addr_host;
	uint16_t addr_port;
	tk_loop *loop;
	const tk_clock *clock;
	const tk_rng *rng;
	pthread_t thread;
	bool running;

	uint8_t priv[TK_DERP_KEY_LEN], pub[TK_DERP_KEY_LEN];
	char pubhex[2 * TK_DERP_KEY_LEN + 1];
	uint8_t hkey[16];
	bool has_mesh_key;
	uint8_t mesh_key[TK_DERP_KEY_LEN];

	int lfd, hfd, ufd;
	uint16_t lport, hport, uport;
	bool tls;
	gnutls_certificate_credentials_t cred;
	gnutls_certificate_credentials_t ccred; /* mesh links (client side) */
	gnutls_pcert_st *pcerts; /* our chain + the meta certificate */
	unsigned npcerts;
	gnutls_privkey_t pkey;
	gnutls_priority_t prio;

	derpdi_conn *conns; /* list head */
	derpdi_conn *dirty;
	derpdi_conn *grave;
	uint64_t next_id;
	derpdi_map clients;	/* key -> derpdi_set */
	derpdi_map gone_watch;	/* key -> derpdi_watchers */
	derpdi_map allow;	/* allowlist, (void*)1 */
	bool has_allow;
	derpdi_conn **watchers;
	size_t nwatchers, capwatchers;
	derpdi_map mesh_fwd;	/* key -> derpdi_mesh (first claimer) */
	derpdi_mesh *meshes;

	/* --verify-client-url, resolved once at start */
	struct sockaddr_storage vaddr;
	socklen_t vaddrlen;
	char vhost[256], vpath[512];

	uint64_t rate_bps, rate_burst; /* 0: no per-client limit */

	tk_loop_timer *tick;
	tk_ratelimit accept_rl;
	bool accept_paused; /* out of fds: listeners unwatched until the tick */
	tk_ratelimit log_rl;
	uint64_t write_timeout_ns;
	derpdi_stats st;
	uint64_t started_ns;
};

/* server.c */
uint64_t derpdi_now(const struct derpd_server *s);
void derpdi_conn_close(derpdi_conn *c, enum derpdi_close why);
void derpdi_conn_mark_dirty(derpdi_conn *c);
/* Flushes the output buffer to the socket (no-op without one). */
void derpdi_conn_flush(derpdi_conn *c);
/* A connection on fd (-1: none, for tests and fuzzing). */
#define DERPDI_TLS_NONE	  0
#define DERPDI_TLS_SERVER 1
#define DERPDI_TLS_CLIENT 2
derpdi_conn *derpdi_conn_new(struct derpd_server *s, int fd, int tls);
/* Re-enables reading after a pause (the admission verdict came). */
void derpdi_conn_resume(derpdi_conn *c);
/* Stops reading until now + ns (the rate limit); the tick resumes. */
void derpdi_conn_pause_for(derpdi_conn *c, uint64_t ns);
/*
 * The next DERP frame header in c's input, after dropping what is left of
 * a frame being skipped (c->skip): false when more input is needed; else
 * *h (the 5-byte header, not consumed), *len and whether the whole frame
 * is buffered.
 */
bool derpdi_conn_frame_head(derpdi_conn *c, const uint8_t **h, uint32_t *len,
    bool *whole);
/* The before-sleep work: write dirty conns, free closed ones.  Tests and
 * the fuzz target call it directly. */
void derpdi_server_idle(struct derpd_server *s);
/* Appends bytes to the output buffer.  TK_ENOMEM. */
int derpdi_out(derpdi_conn *c, const void *p, size_t n);

/* server_conn.c: the DERP state machine, sans-I/O: bytes in (already
 * read from the socket), frames out into c->ob. */
void derpdi_derp_begin(derpdi_conn *c);	/* sends ServerKey */
/* Consumes c->ib; may close c (then returns TK_ECLOSED). */
int derpdi_derp_input(derpdi_conn *c);
/* Moves queued frames into c->ob while it is short. */
void derpdi_derp_fill(derpdi_conn *c);
void derpdi_derp_unregister(derpdi_conn *c);
/* Everyone who received packets from key learns it is gone. */
void derpdi_peer_gone_from_region(struct derpd_server *s, const uint8_t *key);
void derpdi_derp_tick(derpdi_conn *c, uint64_t now);
/* The admission verdict for a conn in CS_VERIFY. */
void derpdi_derp_admit(derpdi_conn *c, bool allow);
void derpdi_conn_drop_queues(derpdi_conn *c);

/* server_ws.c */
/* Answers a WebSocket upgrade (key = Sec-WebSocket-Key) and switches c to
 * WebSocket framing; DERP starts (ServerKey, no fast start). */
int derpdi_ws_accept(derpdi_conn *c, const char *key, size_t keylen);
/* Raw input in c->wr -> DERP bytes in c->ib.  May close c. */
void derpdi_ws_decode(derpdi_conn *c);
/* Pending DERP output in c->ob -> one binary message in c->wob. */
int derpdi_ws_wrap(derpdi_conn *c);
int derpdi_wob_put(derpdi_conn *c, const void *p, size_t n);

/* http.c */
int derpdi_http_input(derpdi_conn *c);
size_t derpdi_metrics(struct derpd_server *s, char *out, size_t cap);

/* server_verify.c */
int derpdi_verify_setup(struct derpd_server *s, char *err, size_t errlen);
int derpdi_verify_start(derpdi_conn *c);
void derpdi_verify_cancel(derpdi_conn *c);

/* server_mesh.c: links to the other servers of the region */
int derpdi_mesh_start(struct derpd_server *s, char *err, size_t errlen);
void derpdi_mesh_stop(struct derpd_server *s);
int derpdi_mesh_forward(derpdi_mesh *m, const uint8_t *src,
    const uint8_t *dst, const uint8_t *pkt, size_t n);
/* A mesh link's connection: connected (TLS done), bytes in, closed. */
void derpdi_mesh_connected(derpdi_conn *c);
void derpdi_mesh_input(derpdi_conn *c);
void derpdi_mesh_closed(derpdi_conn *c);
/* server.c, for server_mesh.c */
int derpdi_conn_watch(derpdi_conn *c, unsigned events);

/* stun.c */
void derpdi_stun_readable(struct derpd_server *s);

#endif
