/*
 * derpd client mode (see derpd/derpd_client.h).
 *
 * One event-loop thread owns everything.  Per DERP region there is at most
 * one connection (dconn), as in Go's magicsock: the home region's is kept
 * for good, others are opened on demand when wgd sends through them and
 * closed after TK_DERP_INACTIVE_CLEANUP_MS without writes.
 *
 * A connection goes: TCP connect (non-blocking) -> TLS (unless plain HTTP)
 * -> "GET /derp" upgrade -> 101 -> ServerKey -> derp_seal at wgd ->
 * ClientInfo (+ NotePreferred for home) -> up; packets queued meanwhile
 * (32, drop-oldest as magicsock's derpWriteQueueDepth) follow the
 * ClientInfo.  The ServerInfo is opened at wgd (derp_open) and marks the
 * region connected, as magicsock does.  Failures reconnect with Go's
 * backoff (n^2 x 10 ms, capped at 5 s, times a random factor in [0.5,1.5)).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>

#include "derpd/derpd_client.h"
#include "tk/bus_batch.h"
#include "tk/bus_rpc.h"
#include "tk/bus_status.h"
#include "tk/bus_topic.h"
#include "tk/bus_topics.h"
#include "tk/derp.h"
#include "tk/enc.h"
#include "tk/err.h"
#include "tk/keys.h"
#include "tk/log.h"
#include "tk/loop.h"
#include "tk/mem.h"
#include "tk/rng.h"
#include "tk/tls_verify.h"
#include "tk/bus/v1/ctrl.pb-c.h"
#include "tk/bus/v1/derp.pb-c.h"
#include "tk/bus/v1/packet.pb-c.h"

#define SUBSYS	    "derpd"
#define VERSION	    "0.1"
#define MAX_REGIONS 256
#define MAX_NODES   8
#define PEND_MAX    32		 /* magicsock derpWriteQueueDepth */
#define TX_LIMIT    (4u << 20) /* bytes queued to one server at most */
#define MS	    (1000000ull)

typedef struct dnode {
	char name[64], host[256], ipv4[64], ipv6[64], cert_name[160];
	int port;
	bool insecure, stun_only;
} dnode;

typedef struct dregion {
	int32_t id;
	char code[32];
	bool no_home;
	dnode nodes[MAX_NODES];
	int nnodes;
} dregion;

enum dc_state { DC_IDLE, DC_CONNECTING, DC_TLS, DC_HTTP, DC_KEY, DC_SEALING, DC_UP };

typedef struct dconn dconn;
struct dconn {
	derpd_client *c;
	int32_t region;
	int node;
	int fd;
	enum dc_state st;
	bool want_write;
	gnutls_session_t tls;
	bool has_tls;
	bool verify;		/* not InsecureForTests: the chain is checked */
	char verify_name[256];	/* for this name (CertName, else the host) */
	tk_derp_rx rx;
	tk_buf tx;
	/* frames waiting for the handshake: up to PEND_MAX packets */
	tk_buf pend;
	size_t pend_len[PEND_MAX];
	unsigned npend;
	uint8_t server_pub[32];
	bool server_info; /* ServerInfo opened: "connected" */
	tk_rpc_client *rpc;
	tk_loop_timer *timer;
	uint64_t started_ns, last_write_ns, last_read_ns, up_since_ms;
	unsigned fails;
	bool closing;
	uint64_t rx_pkts, tx_pkts, drop_pend, drop_tx;
	char health[128];
};

struct derpd_client {
	char *pub_url, *rpc_url, *ctrld_pub_url, *ctrld_rpc_url;
	char *wgd_pub_url, *wgd_rpc_url, *pkt_url, *ca_file;
	bool plain_http;
	const tk_bus_tls *tls;

	tk_loop *loop;
	pthread_t thr;
	bool running;
	uint64_t started_ns;

	tk_rpc_server *rpc;
	tk_topic_pub *pub;
	tk_topic *t_derp;
	tk_topic_sub *nm_sub, *keys_sub;
	nng_socket pkt;
	bool pkt_open;
	tk_bus_reader *pkt_reader;
	tk_bus_batcher out; /* datagrams and side messages to wgd */
	tk_bus_batch_stats pkt_stats;
	tk_loop_timer *tick;
	gnutls_certificate_credentials_t cred;

	bool have_key;
	uint8_t node_pub[32];
	dregion regions[MAX_REGIONS];
	int nregions;
	int32_t home;
	uint32_t lat_us[MAX_REGIONS]; /* connect latency, by regions[] index */
	int probe_fd[MAX_REGIONS];    /* latency probes in flight */
	uint64_t probe_start[MAX_REGIONS];
	int probing;
	uint64_t probes;
	tk_loop_timer *probe_timer;
	unsigned ticks;
	int32_t pin_home; /* --home-region: 0 = by latency */
	dconn *conns[MAX_REGIONS];    /* by regions[] index */

	uint64_t pkt_rx, pkt_drop, no_region, rx_bad_frames;
	uint64_t connects, conn_fails, handshakes, disco_rx, peer_gone;
	uint64_t pings, netmaps;
};

static void dc_close(dconn *d, const char *why, bool retry);
static void dc_kick(dconn *d);
static void publish(derpd_client *c);

/* --- helpers ---------------------------------------------------------------- */

static int
region_index(const derpd_client *c, int32_t id)
{
	for (int i = 0; i < c->nregions; i++)
		if (c->regions[i].id == id)
			return i;
	return -1;
}

static uint64_t
now_ns(const derpd_client *c)
{
	return tk_loop_now(c->loop);
}

/* Go's util/backoff: n^2 x 10 ms, at most 5 s, times [0.5, 1.5). */
static uint64_t
backoff_ns(unsigned n)
{
	uint64_t ms = (uint64_t)n * n * 10;
	if (ms > 5000)
		ms = 5000;
	uint32_t r = tk_rng_uniform(tk_rng_system(), 1000);
	return ms * MS * (500 + r) / 1000;
}

/* --- packets to wgd --------------------------------------------------------- */

static void
wgd_flush(derpd_client *c)
{
	tk_bus_batcher_flush(&c->out); /* wgd absent or slow: counted */
}

static void
wgd_put(derpd_client *c, enum tk_batch_kind kind, const tk_bus_batch_rec *rec)
{
	tk_bus_batcher_add(&c->out, kind, rec); /* drops are counted */
}

static void
wgd_peer_gone(derpd_client *c, int32_t region, const uint8_t *key,
    uint8_t reason)
{
	Tk__Bus__V1__PacketControl pc = TK__BUS__V1__PACKET_CONTROL__INIT;
	Tk__Bus__V1__PeerGone pg = TK__BUS__V1__PEER_GONE__INIT;
	Tk__Bus__V1__PeerAddr pa = TK__BUS__V1__PEER_ADDR__INIT;
	uint8_t buf[128];

	pa.has_node_key = true;
	pa.node_key.data = (uint8_t *)key;
	pa.node_key.len = 32;
	pa.has_derp_region = true;
	pa.derp_region = region;
	pg.peer = &pa;
	pg.has_reason = true;
	pg.reason = reason == TK_DERP_PEER_GONE_NOT_HERE ?
	    TK__BUS__V1__PEER_GONE_REASON__PEER_GONE_NOT_HERE :
	    TK__BUS__V1__PEER_GONE_REASON__PEER_GONE_DISCONNECTED;
	pc.msg_case = TK__BUS__V1__PACKET_CONTROL__MSG_PEER_GONE;
	pc.peer_gone = &pg;
	size_t n = tk__bus__v1__packet_control__get_packed_size(&pc);
	if (n > sizeof(buf))
		return;
	tk__bus__v1__packet_control__pack(&pc, buf);
	tk_bus_batch_rec rec = { .data = buf, .len = n };
	wgd_put(c, TK_BATCH_CONTROL, &rec);
}

/* --- connection I/O ------------------------------------------------------------- */

/* A GnuTLS record result as send/recv would give it: EAGAIN to wait for
 * the socket, EIO for any failure. */
static ssize_t
tls_result(ssize_t k)
{
	if (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED) {
		errno = EAGAIN;
		return -1;
	}
	if (k < 0) {
		errno = EIO;
		return -1;
	}
	return k;
}

static ssize_t
io_write(dconn *d, const uint8_t *p, size_t n)
{
	if (d->has_tls)
		return tls_result(gnutls_record_send(d->tls, p, n));
	return send(d->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

static ssize_t
io_read(dconn *d, uint8_t *p, size_t n)
{
	if (d->has_tls)
		return tls_result(gnutls_record_recv(d->tls, p, n));
	return recv(d->fd, p, n, MSG_DONTWAIT);
}

static void
set_interest(dconn *d)
{
	bool want = d->want_write || d->tx.len > 0;
	tk_loop_fd_mod(d->c->loop, d->fd,
	    TK_LOOP_READ | (want ? TK_LOOP_WRITE : 0));
}

/* Writes what is queued; false if the connection was closed. */
static bool
dc_flush(dconn *d)
{
	while (d->tx.len > 0) {
		ssize_t k = io_write(d, d->tx.data, d->tx.len);
		if (k < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				break;
			dc_close(d, "write failed", true);
			return false;
		}
		tk_buf_consume(&d->tx, (size_t)k);
		d->last_write_ns = now_ns(d->c);
	}
	set_interest(d);
	return true;
}

static int
dc_frame(dconn *d, uint8_t type, const uint8_t *p, size_t n)
{
	uint8_t hdr[TK_DERP_FRAME_HDR_LEN];
	tk_derp_frame_hdr(hdr, type, (uint32_t)n);
	int rv = tk_buf_append(&d->tx, hdr, sizeof(hdr));
	if (rv == 0 && n)
		rv = tk_buf_append(&d->tx, p, n);
	return rv;
}

/* --- handshake ------------------------------------------------------------------ */

static void
on_open_done(void *arg, int status, const char *error, const uint8_t *body,
    size_t len)
{
	dconn *d = arg;

	(void)body, (void)len;
	if (status != 0) {
		/* Go's client drops a connection whose ServerInfo does not
		 * open (derp_client.go parseServerInfo). */
		TK_WARN(SUBSYS, "region %d: ServerInfo refused: %s", d->region,
		    error ? error : tk_strerror(status));
		dc_close(d, "bad ServerInfo", true);
		return;
	}
	d->server_info = true;
	d->fails = 0;
	d->up_since_ms = (uint64_t)tk_clock_real_ns(tk_clock_system()) / MS;
	d->c->handshakes++;
	TK_INFO(SUBSYS, "region %d: connected", d->region);
	publish(d->c);
}

static void
on_seal_done(void *arg, int status, const char *error, const uint8_t *body,
    size_t len)
{
	dconn *d = arg;
	derpd_client *c = d->c;
	Tk__Bus__V1__DerpBoxReply *r = NULL;

	if (status != 0 ||
	    (r = tk__bus__v1__derp_box_reply__unpack(NULL, len, body)) == NULL ||
	    !r->has_data || !r->has_node_key || r->node_key.len != 32) {
		TK_WARN(SUBSYS, "region %d: wgd did not seal the ClientInfo: %s",
		    d->region, status ? (error ? error : tk_strerror(status)) :
		    "bad reply");
		if (r)
			tk__bus__v1__derp_box_reply__free_unpacked(r, NULL);
		dc_close(d, "no ClientInfo", true);
		return;
	}
	uint8_t hdr[TK_DERP_FRAME_HDR_LEN];
	tk_derp_frame_hdr(hdr, TK_DERP_FRAME_CLIENT_INFO,
	    (uint32_t)(32 + r->data.len));
	int rv = tk_buf_append(&d->tx, hdr, sizeof(hdr));
	if (rv == 0)
		rv = tk_buf_append(&d->tx, r->node_key.data, 32);
	if (rv == 0)
		rv = tk_buf_append(&d->tx, r->data.data, r->data.len);
	tk__bus__v1__derp_box_reply__free_unpacked(r, NULL);
	/* home: NotePreferred(true), as magicsock does for its home region */
	if (rv == 0 && d->region == c->home) {
		uint8_t one = 1;
		rv = dc_frame(d, TK_DERP_FRAME_NOTE_PREFERRED, &one, 1);
	}
	if (rv == 0 && d->pend.len)
		rv = tk_buf_append(&d->tx, d->pend.data, d->pend.len);
	tk_buf_reset(&d->pend);
	d->npend = 0;
	if (rv != 0) {
		dc_close(d, "out of memory", true);
		return;
	}
	d->st = DC_UP;
	dc_flush(d);
}

static void
start_seal(dconn *d)
{
	derpd_client *c = d->c;
	tk_derp_client_info ci = { .version = TK_DERP_PROTOCOL_VERSION,
		.can_ack_pings = true };
	Tk__Bus__V1__DerpBoxRequest rq = TK__BUS__V1__DERP_BOX_REQUEST__INIT;
	char json[256];
	size_t jl;
	tk_buf b;

	if (!c->have_key) {
		dc_close(d, "no node key from wgd yet", true);
		return;
	}
	tk_derp_client_info_json(&ci, json, sizeof(json), &jl);
	rq.has_server_key = true;
	rq.server_key.data = d->server_pub;
	rq.server_key.len = 32;
	rq.has_data = true;
	rq.data.data = (uint8_t *)json;
	rq.data.len = jl;
	tk_buf_init(&b);
	if (tk_bus_pb_pack((const ProtobufCMessage *)&rq, &b) != 0 ||
	    tk_rpc_call(d->rpc, TK_METHOD_DERP_SEAL, b.data, b.len, 5000 * MS,
		on_seal_done, d) != 0) {
		tk_buf_fini(&b);
		dc_close(d, "cannot ask wgd to seal", true);
		return;
	}
	tk_buf_fini(&b);
	d->st = DC_SEALING;
}

static void
open_server_info(dconn *d, const uint8_t *p, size_t n)
{
	Tk__Bus__V1__DerpBoxRequest rq = TK__BUS__V1__DERP_BOX_REQUEST__INIT;
	tk_buf b;

	if (n > 1024) {
		dc_close(d, "oversized ServerInfo", true);
		return;
	}
	rq.has_server_key = true;
	rq.server_key.data = d->server_pub;
	rq.server_key.len = 32;
	rq.has_data = true;
	rq.data.data = (uint8_t *)p;
	rq.data.len = n;
	tk_buf_init(&b);
	/* the seal call is done by now (ClientInfo went before) */
	if (tk_bus_pb_pack((const ProtobufCMessage *)&rq, &b) != 0 ||
	    tk_rpc_call(d->rpc, TK_METHOD_DERP_OPEN, b.data, b.len, 5000 * MS,
		on_open_done, d) != 0)
		dc_close(d, "cannot ask wgd to open the ServerInfo", true);
	tk_buf_fini(&b);
}

/* --- frames from the server --------------------------------------------------------- */

/* false if the connection was closed */
static bool
on_frame(dconn *d, const tk_derp_frame *f)
{
	derpd_client *c = d->c;
	tk_derp_event ev;

	if (tk_derp_client_decode(f, &ev) != 0) {
		c->rx_bad_frames++; /* Go's client drops these too */
		if (f->type == TK_DERP_FRAME_SERVER_KEY ||
		    f->type == TK_DERP_FRAME_SERVER_INFO) {
			dc_close(d, "malformed handshake frame", true);
			return false;
		}
		return true;
	}
	if (d->st == DC_KEY) {
		if (ev.type != TK_DERP_EV_SERVER_KEY) {
			dc_close(d, "first frame is not ServerKey", true);
			return false;
		}
		memcpy(d->server_pub, ev.key, 32);
		start_seal(d);
		return d->fd >= 0;
	}
	switch (ev.type) {
	case TK_DERP_EV_SERVER_KEY:
		break; /* a fast-start server repeats it; ignored as in Go */
	case TK_DERP_EV_SERVER_INFO:
		open_server_info(d, ev.data, ev.len);
		return d->fd >= 0;
	case TK_DERP_EV_RECV_PACKET: {
		tk_bus_batch_rec rec = { .derp_region = (uint32_t)d->region,
			.data = ev.data, .len = ev.len };
		if (ev.len == 0) {
			c->rx_bad_frames++;
			break;
		}
		memcpy(rec.key.b, ev.key, 32);
		d->rx_pkts++;
		c->pkt_rx++;
		if (tk_derp_looks_like_disco(ev.data, ev.len))
			c->disco_rx++;
		wgd_put(c, TK_BATCH_PEER, &rec);
		break;
	}
	case TK_DERP_EV_PEER_GONE:
		c->peer_gone++;
		wgd_peer_gone(c, d->region, ev.key, ev.reason);
		break;
	case TK_DERP_EV_PING:
		/* answer at once (magicsock runDerpReader) */
		c->pings++;
		if (dc_frame(d, TK_DERP_FRAME_PONG, ev.data, TK_DERP_PING_LEN) != 0) {
			dc_close(d, "out of memory", true);
			return false;
		}
		break;
	case TK_DERP_EV_HEALTH:
		snprintf(d->health, sizeof(d->health), "%.*s",
		    (int)(ev.len < 127 ? ev.len : 127), (const char *)ev.data);
		break;
	case TK_DERP_EV_RESTARTING:
		TK_INFO(SUBSYS, "region %d: server restarting (reconnect in %u ms)",
		    d->region, ev.reconnect_in_ms);
		break;
	default:
		break; /* KeepAlive, Pong, PeerPresent, unknown: nothing to do */
	}
	return true;
}

static void
dc_read(dconn *d)
{
	derpd_client *c = d->c;

	for (int round = 0; round < 64; round++) {
		uint8_t *p;
		size_t avail;
		if (tk_derp_rx_space(&d->rx, 65536, &p, &avail) != 0) {
			dc_close(d, "out of memory", true);
			return;
		}
		ssize_t k = io_read(d, p, avail);
		if (k == 0) {
			dc_close(d, "server closed the connection", true);
			return;
		}
		if (k < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
				break;
			dc_close(d, "read failed", true);
			return;
		}
		tk_derp_rx_commit(&d->rx, (size_t)k);
		d->last_read_ns = now_ns(c);
		if (d->st == DC_HTTP) {
			int status;
			size_t head;
			int rv = tk_derp_http_response(d->rx.buf + d->rx.off,
			    d->rx.len - d->rx.off, &status, &head);
			if (rv == TK_EAGAIN)
				continue;
			if (rv != 0 || status != 101) {
				char why[64];
				snprintf(why, sizeof(why), "upgrade refused (HTTP %d)",
				    rv ? 0 : status);
				dc_close(d, why, true);
				return;
			}
			d->rx.off += head;
			d->st = DC_KEY;
		}
		tk_derp_frame f;
		int rv;
		while ((rv = tk_derp_rx_next(&d->rx, &f)) == 0) {
			if (!on_frame(d, &f))
				return;
		}
		if (rv == TK_EMSGSIZE) {
			dc_close(d, "frame over 1 MiB", true);
			return;
		}
	}
	wgd_flush(c);
	dc_flush(d);
}

static bool
tls_step(dconn *d)
{
	int rv = gnutls_handshake(d->tls);
	if (rv == GNUTLS_E_AGAIN || rv == GNUTLS_E_INTERRUPTED) {
		d->want_write = gnutls_record_get_direction(d->tls) == 1;
		set_interest(d);
		return true;
	}
	if (rv < 0) {
		TK_WARN(SUBSYS, "region %d: TLS: %s", d->region,
		    gnutls_strerror(rv));
		dc_close(d, "TLS handshake failed", true);
		return false;
	}
	if (d->verify) { /* before a byte of ours goes out */
		tk_tls_trust tr = { .system = true, .ca_file = d->c->ca_file };
		char why[256];
		if (tk_tls_check_session(d->tls, d->verify_name, &tr, why,
			sizeof(why)) != 0) {
			TK_WARN(SUBSYS, "region %d: TLS certificate for %s does "
			    "not verify: %s", d->region, d->verify_name, why);
			dc_close(d, "TLS certificate does not verify", true);
			return false;
		}
	}
	d->want_write = false;
	d->st = DC_HTTP;
	return dc_flush(d);
}

static void
on_fd(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	dconn *d = arg;

	(void)loop, (void)fd;
	if (d->st == DC_CONNECTING) {
		int err = 0;
		socklen_t el = sizeof(err);
		getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err != 0 || (ev & TK_LOOP_ERROR)) {
			dc_close(d, "connect failed", true);
			return;
		}
		derpd_client *c = d->c;
		int idx = region_index(c, d->region);
		if (idx >= 0)
			c->lat_us[idx] = (uint32_t)((now_ns(c) - d->started_ns) / 1000);
		d->want_write = false;
		d->st = d->has_tls ? DC_TLS : DC_HTTP;
		if (d->st == DC_TLS) {
			tls_step(d);
			return;
		}
		dc_flush(d);
		return;
	}
	if (d->st == DC_TLS) {
		tls_step(d);
		return;
	}
	if (ev & (TK_LOOP_READ | TK_LOOP_ERROR)) {
		dc_read(d);
		if (d->fd < 0)
			return;
	}
	if (ev & TK_LOOP_WRITE)
		dc_flush(d);
}

/* --- connection lifecycle ------------------------------------------------------------- */

static void
on_dc_timer(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	dconn *d = arg;

	(void)loop, (void)t;
	if (d->fd < 0) {
		dc_kick(d); /* backoff over: reconnect */
		return;
	}
	if (d->st != DC_UP || !d->server_info)
		dc_close(d, "handshake timed out", true);
}

static int
tls_setup(dconn *d, const dnode *n)
{
	derpd_client *c = d->c;
	int rv;

	if ((rv = gnutls_init(&d->tls, GNUTLS_CLIENT | GNUTLS_NONBLOCK)) < 0)
		return TK_ETLS | (unsigned)(-rv);
	d->has_tls = true;
	const char *sni = n->host[0] ? n->host : NULL;
	if (sni && inet_addr(sni) == INADDR_NONE)
		gnutls_server_name_set(d->tls, GNUTLS_NAME_DNS, sni, strlen(sni));
	gnutls_set_default_priority(d->tls);
	/* the credentials hold no CAs: tls_step verifies the chain after the
	 * handshake with the bundle loaded for that alone (tk/tls_verify.h),
	 * so a long-lived DERP connection does not carry ~3.7 MiB of CAs */
	gnutls_credentials_set(d->tls, GNUTLS_CRD_CERTIFICATE, c->cred);
	d->verify = !n->insecure;
	/* CertName names the certificate when set (tailcfg.DERPNode);
	 * "sha256-raw:" pins are not supported yet: they do not verify. */
	snprintf(d->verify_name, sizeof(d->verify_name), "%s",
	    n->cert_name[0] ? n->cert_name : n->host);
	gnutls_transport_set_int(d->tls, d->fd);
	return 0;
}

/* The node's address: IPv4 field, else IPv6, else its name (getaddrinfo
 * blocks the loop briefly; DERP maps normally carry the addresses). */
static int
node_addr(const derpd_client *c, const dnode *n, struct sockaddr_storage *ss,
    socklen_t *sl)
{
	int port = n->port > 0 ? n->port : (c->plain_http ? 3340 : 443);
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (n->ipv4[0] && strcmp(n->ipv4, "none") != 0 &&
	    inet_pton(AF_INET, n->ipv4, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		*sl = sizeof(*s4);
		return 0;
	}
	if (n->ipv6[0] && strcmp(n->ipv6, "none") != 0 &&
	    inet_pton(AF_INET6, n->ipv6, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		*sl = sizeof(*s6);
		return 0;
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	if (getaddrinfo(n->host, ps, &hints, &ai) != 0 || ai == NULL ||
	    ai->ai_addrlen > sizeof(*ss)) {
		if (ai)
			freeaddrinfo(ai);
		return TK_ENOENT;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*sl = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/* First node of a region that carries DERP (not STUN-only), or -1. */
static int
first_derp_node(const dregion *r)
{
	for (int i = 0; i < r->nnodes; i++)
		if (!r->nodes[i].stun_only)
			return i;
	return -1;
}

/* --- latency probes ------------------------------------------------------------------------ */

/*
 * Before choosing a home, every region that may be home is measured by a
 * TCP connect to its first DERP node (Go's netcheck measures by STUN, or
 * by HTTPS when UDP is blocked; STUN belongs to the NAT traversal work).
 * Probes end after PROBE_MS; unanswered regions get no latency.
 */
#define PROBE_MS 2000

static void choose_home(derpd_client *c);

static void
probe_end(derpd_client *c, int i)
{
	if (c->probe_fd[i] >= 0) {
		tk_loop_fd_del(c->loop, c->probe_fd[i]);
		close(c->probe_fd[i]);
		c->probe_fd[i] = -1;
		c->probing--;
	}
}

static void
probes_done(derpd_client *c)
{
	for (int i = 0; i < MAX_REGIONS; i++)
		probe_end(c, i);
	c->probing = 0;
	tk_loop_timer_cancel(c->probe_timer);
	choose_home(c);
	publish(c);
}

static void
on_probe(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	derpd_client *c = arg;
	int err = 0;
	socklen_t el = sizeof(err);

	(void)loop;
	for (int i = 0; i < c->nregions; i++) {
		if (c->probe_fd[i] != fd)
			continue;
		getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
		if (err == 0 && !(ev & TK_LOOP_ERROR)) {
			uint64_t us = (now_ns(c) - c->probe_start[i]) / 1000;
			c->lat_us[i] = us ? (uint32_t)us : 1;
		}
		probe_end(c, i);
		break;
	}
	if (c->probing == 0)
		probes_done(c);
}

static void
on_probe_timer(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	(void)loop, (void)t;
	probes_done(arg);
}

static void
probe_regions(derpd_client *c)
{
	for (int i = 0; i < MAX_REGIONS; i++)
		probe_end(c, i);
	c->probing = 0;
	for (int i = 0; i < c->nregions; i++) {
		const dregion *r = &c->regions[i];
		struct sockaddr_storage ss;
		socklen_t sl;
		int k = first_derp_node(r);
		if (r->no_home || k < 0 || node_addr(c, &r->nodes[k], &ss, &sl) != 0)
			continue;
		int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		c->probe_start[i] = now_ns(c);
		if ((connect(fd, (struct sockaddr *)&ss, sl) != 0 && errno != EINPROGRESS) ||
		    tk_loop_fd_add(c->loop, fd, TK_LOOP_WRITE, on_probe, c) != 0) {
			close(fd);
			continue;
		}
		c->probe_fd[i] = fd;
		c->probing++;
	}
	c->probes++;
	if (c->probing)
		tk_loop_timer_arm(c->probe_timer, PROBE_MS * MS, 0);
	else
		choose_home(c);
}

static void
dc_connect(dconn *d)
{
	derpd_client *c = d->c;
	int idx = region_index(c, d->region);
	const dnode *n = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = 0;

	if (idx < 0) {
		dc_close(d, "region not in the DERP map", false);
		return;
	}
	const dregion *r = &c->regions[idx];
	/* nodes in order, skipping STUN-only ones; the attempt count picks
	 * the next node after a failure */
	int usable[MAX_NODES], nu = 0;
	for (int i = 0; i < r->nnodes; i++)
		if (!r->nodes[i].stun_only)
			usable[nu++] = i;
	if (nu == 0) {
		dc_close(d, "region has no DERP node", false);
		return;
	}
	d->node = usable[d->fails % (unsigned)nu];
	n = &r->nodes[d->node];
	if (!c->plain_http && !n->insecure && strncmp(n->cert_name,
	    "sha256-raw:", 11) == 0) {
		dc_close(d, "certificate pins (sha256-raw:) are not supported", true);
		return;
	}
	if (node_addr(c, n, &ss, &sl) != 0) {
		dc_close(d, "cannot resolve the DERP node", true);
		return;
	}
	d->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (d->fd < 0) {
		dc_close(d, "socket failed", true);
		return;
	}
	int one = 1;
	setsockopt(d->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	d->started_ns = now_ns(c);
	c->connects++;
	if (connect(d->fd, (struct sockaddr *)&ss, sl) != 0 &&
	    errno != EINPROGRESS) {
		close(d->fd);
		d->fd = -1;
		dc_close(d, "connect failed", true);
		return;
	}
	if (tk_loop_fd_add(c->loop, d->fd, TK_LOOP_READ | TK_LOOP_WRITE, on_fd,
		d) != 0) {
		close(d->fd);
		d->fd = -1;
		dc_close(d, "event loop", true);
		return;
	}
	d->st = DC_CONNECTING;
	d->want_write = true;
	if (!c->plain_http && tls_setup(d, n) != 0) {
		dc_close(d, "TLS setup failed", true);
		return;
	}
	char req[512];
	int rl = snprintf(req, sizeof(req),
	    "GET " TK_DERP_HTTP_PATH " HTTP/1.1\r\n"
	    "Host: %s\r\n"
	    "Connection: Upgrade\r\n"
	    "Upgrade: " TK_DERP_UPGRADE_TOKEN "\r\n"
	    "User-Agent: tailkit-derpd/" VERSION "\r\n"
	    "%s%s%s"
	    "\r\n",
	    n->host[0] ? n->host : "derp",
	    d->node != 0 ? TK_DERP_HDR_IDEAL_NODE ": " : "",
	    d->node != 0 ? r->nodes[0].name : "", d->node != 0 ? "\r\n" : "");
	tk_derp_rx_fini(&d->rx);
	tk_derp_rx_init(&d->rx, TK_DERP_CLIENT_MAX_FRAME);
	tk_buf_reset(&d->tx);
	if (tk_buf_append(&d->tx, req, (size_t)rl) != 0) {
		dc_close(d, "out of memory", true);
		return;
	}
	tk_loop_timer_arm(d->timer, TK_DERP_HANDSHAKE_TIMEOUT_MS * MS, 0);
}

static void
dc_kick(dconn *d)
{
	if (d->fd >= 0 || d->closing)
		return;
	dc_connect(d);
}

/* Closes the socket; with retry, reconnects after Go's backoff. */
static void
dc_close(dconn *d, const char *why, bool retry)
{
	derpd_client *c = d->c;
	bool was_up = d->server_info;

	if (d->fd >= 0) {
		tk_loop_fd_del(c->loop, d->fd);
		close(d->fd);
		d->fd = -1;
	}
	if (d->has_tls) {
		gnutls_deinit(d->tls);
		d->has_tls = false;
	}
	tk_rpc_cancel(d->rpc);
	d->st = DC_IDLE;
	d->server_info = false;
	d->want_write = false;
	tk_buf_reset(&d->tx);
	if (why)
		TK_INFO(SUBSYS, "region %d: %s", d->region, why);
	c->conn_fails++;
	if (retry && !d->closing) {
		d->fails++;
		tk_loop_timer_arm(d->timer, backoff_ns(d->fails), 0);
	} else {
		tk_loop_timer_cancel(d->timer);
	}
	if (was_up && !d->closing) /* dc_free's caller publishes */
		publish(c);
}

static void
dc_free(dconn *d)
{
	if (d == NULL)
		return;
	d->closing = true;
	if (d->fd >= 0 || d->has_tls)
		dc_close(d, NULL, false);
	tk_loop_timer_free(d->timer);
	tk_rpc_client_free(d->rpc);
	tk_derp_rx_fini(&d->rx);
	tk_buf_fini(&d->tx);
	tk_buf_fini(&d->pend);
	tk_free(d);
}

static dconn *
dc_get(derpd_client *c, int32_t region)
{
	int idx = region_index(c, region);

	if (idx < 0)
		return NULL;
	if (c->conns[idx] != NULL)
		return c->conns[idx];
	dconn *d = tk_calloc(1, sizeof(*d));
	if (d == NULL)
		return NULL;
	d->c = c;
	d->region = region;
	d->fd = -1;
	tk_buf_init(&d->tx);
	tk_buf_init(&d->pend);
	tk_derp_rx_init(&d->rx, TK_DERP_CLIENT_MAX_FRAME);
	tk_rpc_client_cfg rc = { .loop = c->loop, .url = c->wgd_rpc_url,
		.tls = c->tls, .name = "derpd" };
	if (tk_loop_timer_new(c->loop, &d->timer, on_dc_timer, d) != 0 ||
	    tk_rpc_client_new(&d->rpc, &rc) != 0) {
		tk_loop_timer_free(d->timer);
		tk_free(d);
		return NULL;
	}
	d->last_write_ns = now_ns(c);
	c->conns[idx] = d;
	dc_kick(d);
	return d;
}

/* One WireGuard/disco datagram to `key` through this connection. */
static void
dc_send(dconn *d, const uint8_t *key, const uint8_t *p, size_t n)
{
	uint8_t hdr[TK_DERP_PACKET_HDR_LEN];

	tk_derp_build_packet_hdr(hdr, TK_DERP_FRAME_SEND_PACKET, key, n);
	d->last_write_ns = now_ns(d->c);
	if (d->st == DC_UP) {
		if (d->tx.len > TX_LIMIT) {
			d->drop_tx++; /* the server is not reading */
			return;
		}
		if (tk_buf_append(&d->tx, hdr, sizeof(hdr)) != 0 ||
		    tk_buf_append(&d->tx, p, n) != 0) {
			d->drop_tx++;
			return;
		}
		d->tx_pkts++;
		return;
	}
	/* handshake in progress: keep the newest PEND_MAX (drop-oldest) */
	if (d->npend == PEND_MAX) {
		tk_buf_consume(&d->pend, d->pend_len[0]);
		memmove(d->pend_len, d->pend_len + 1,
		    (PEND_MAX - 1) * sizeof(d->pend_len[0]));
		d->npend--;
		d->drop_pend++;
	}
	if (tk_buf_append(&d->pend, hdr, sizeof(hdr)) != 0 ||
	    tk_buf_append(&d->pend, p, n) != 0) {
		d->drop_pend++;
		return;
	}
	d->pend_len[d->npend++] = sizeof(hdr) + n;
	d->tx_pkts++;
	/* not while a reconnect waits out its backoff: traffic must not turn
	 * Go's backoff into a connect per packet */
	if (!tk_loop_timer_armed(d->timer))
		dc_kick(d);
}

/* --- from wgd ----------------------------------------------------------------------------- */

static void
on_pkt(void *arg, nng_msg *msg)
{
	derpd_client *c = arg;
	tk_bus_batch_view v;
	tk_bus_batch_rec rec;
	dconn *touched[8];
	int nt = 0;

	if (tk_bus_batch_parse_msg(&v, msg, &c->pkt_stats) == 0 &&
	    tk_bus_batch_kind(&v) == TK_BATCH_PEER) {
		while (tk_bus_batch_next(&v, &rec)) {
			int32_t region = rec.derp_region ? (int32_t)rec.derp_region
							 : c->home;
			dconn *d = region > 0 ? dc_get(c, region) : NULL;
			if (d == NULL) {
				c->no_region++;
				continue;
			}
			dc_send(d, rec.key.b, rec.data, rec.len);
			bool seen = false;
			for (int i = 0; i < nt; i++)
				seen |= touched[i] == d;
			if (!seen && nt < 8)
				touched[nt++] = d;
			else if (!seen)
				dc_flush(d);
		}
	} else {
		c->pkt_drop++;
	}
	nng_msg_free(msg);
	for (int i = 0; i < nt; i++)
		if (touched[i]->fd >= 0 && touched[i]->st == DC_UP)
			dc_flush(touched[i]);
}

/* --- home region and the "derp" topic --------------------------------------------------------- */

static int
derp_snapshot(void *arg, tk_buf *out)
{
	derpd_client *c = arg;
	Tk__Bus__V1__DerpState s = TK__BUS__V1__DERP_STATE__INIT;
	Tk__Bus__V1__RegionLatency lat[MAX_REGIONS], *latp[MAX_REGIONS];
	Tk__Bus__V1__DerpConn dc[MAX_REGIONS], *dcp[MAX_REGIONS];
	size_t nl = 0, nc = 0;

	if (c->home > 0) {
		s.has_home_region = true;
		s.home_region = c->home;
	}
	for (int i = 0; i < c->nregions; i++) {
		if (c->lat_us[i]) {
			Tk__Bus__V1__RegionLatency l = TK__BUS__V1__REGION_LATENCY__INIT;
			l.has_region_id = true;
			l.region_id = c->regions[i].id;
			l.has_latency_v4_us = true;
			l.latency_v4_us = c->lat_us[i];
			lat[nl] = l;
			latp[nl] = &lat[nl];
			nl++;
		}
		dconn *d = c->conns[i];
		if (d != NULL) {
			Tk__Bus__V1__DerpConn x = TK__BUS__V1__DERP_CONN__INIT;
			x.has_region_id = true;
			x.region_id = d->region;
			x.has_connected = true;
			x.connected = d->server_info;
			x.node_name = c->regions[i].nodes[d->node].name;
			if (d->server_info) {
				x.has_since_unix_ms = true;
				x.since_unix_ms = (int64_t)d->up_since_ms;
			}
			dc[nc] = x;
			dcp[nc] = &dc[nc];
			nc++;
		}
	}
	s.n_latencies = nl;
	s.latencies = latp;
	s.n_conns = nc;
	s.conns = dcp;
	s.has_report_unix_ms = true;
	s.report_unix_ms = (int64_t)(tk_clock_real_ns(tk_clock_system()) / MS);
	return tk_bus_pb_pack((const ProtobufCMessage *)&s, out);
}

static void
publish(derpd_client *c)
{
	tk_buf b;

	if (c->t_derp == NULL)
		return;
	tk_buf_init(&b);
	if (derp_snapshot(c, &b) == 0)
		tk_topic_publish(c->t_derp, b.data, b.len);
	tk_buf_fini(&b);
}

/*
 * Home region: the measured region with the lowest connect latency.  A
 * healthy home moves only to a region at least 10 ms and a third faster
 * (Go's netcheck rule, tk_derp_home_should_move), measured again every 5
 * minutes; an unhealthy one moves at once.  Until measured: the lowest
 * region id allowed as home, so the node is reachable at once.
 */
static void
choose_home(derpd_client *c)
{
	int best = -1;

	if (c->pin_home > 0) {
		/* --home-region: the operator's choice, if the map has it */
		best = region_index(c, c->pin_home);
		goto chosen;
	}
	if (c->probing)
		return; /* measurements first (at most PROBE_MS) */
	for (int i = 0; i < c->nregions; i++) {
		const dregion *r = &c->regions[i];
		if (r->no_home || r->nnodes == 0)
			continue;
		if (best < 0 ||
		    (c->lat_us[i] && (!c->lat_us[best] || c->lat_us[i] < c->lat_us[best])) ||
		    (!c->lat_us[i] && !c->lat_us[best] && r->id < c->regions[best].id))
			best = i;
	}
	int hi = c->home > 0 ? region_index(c, c->home) : -1;
	if (hi >= 0) {
		dconn *d = c->conns[hi];
		/* healthy or still trying: kept unless the best region is
		 * clearly faster (Go's netcheck stickiness, tk/derp.h) */
		if (d != NULL && (d->server_info || d->fails < 5) &&
		    (best < 0 || best == hi ||
			!tk_derp_home_should_move(c->lat_us[hi], c->lat_us[best])))
			return;
	}
chosen:;
	int32_t home = best >= 0 ? c->regions[best].id : 0;
	if (home == c->home)
		return;
	TK_INFO(SUBSYS, "home region %d (was %d)", home, c->home);
	c->home = home;
	if (home > 0) {
		dconn *d = dc_get(c, home);
		/* tell the server it is home now (stats only, as in Go) */
		if (d != NULL && d->st == DC_UP) {
			uint8_t one = 1;
			dc_frame(d, TK_DERP_FRAME_NOTE_PREFERRED, &one, 1);
			dc_flush(d);
		}
	}
	publish(c);
}

static void
on_tick(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	derpd_client *c = arg;
	uint64_t now = now_ns(c);

	(void)loop, (void)t;
	/* latencies again every 5 minutes (a healthy home moves only to a
	 * clearly faster region) */
	if (++c->ticks % (300000 / TK_DERP_CLEAN_STALE_MS) == 0 && !c->probing)
		probe_regions(c);
	for (int i = 0; i < c->nregions; i++) {
		dconn *d = c->conns[i];
		if (d == NULL)
			continue;
		/* idle non-home regions close after 60 s without writes */
		if (d->region != c->home &&
		    now - d->last_write_ns > TK_DERP_INACTIVE_CLEANUP_MS * MS) {
			dc_free(d);
			c->conns[i] = NULL;
			publish(c);
			continue;
		}
		/* the Go client gives up on a server silent for 120 s */
		if (d->fd >= 0 && d->st == DC_UP &&
		    now - d->last_read_ns > TK_DERP_CLIENT_READ_TIMEOUT_MS * MS)
			dc_close(d, "no frame in 120 s", true);
	}
	choose_home(c);
}

/* --- control bus ---------------------------------------------------------------------------------- */

static void
copy_str(char *dst, size_t cap, const char *s)
{
	snprintf(dst, cap, "%s", s ? s : "");
}

static void
apply_derp_map(derpd_client *c, const Tk__Bus__V1__DERPMap *m)
{
	dregion nr[MAX_REGIONS];
	int n = 0;

	for (size_t i = 0; i < m->n_regions && n < MAX_REGIONS; i++) {
		const Tk__Bus__V1__DERPRegion *r = m->regions[i];
		if (!r->has_region_id || r->region_id <= 0)
			continue;
		dregion *x = &nr[n++];
		memset(x, 0, sizeof(*x));
		x->id = r->region_id;
		copy_str(x->code, sizeof(x->code), r->region_code);
		x->no_home = r->has_no_measure_no_home && r->no_measure_no_home;
		for (size_t j = 0; j < r->n_nodes && x->nnodes < MAX_NODES; j++) {
			const Tk__Bus__V1__DERPNode *nd = r->nodes[j];
			dnode *y = &x->nodes[x->nnodes++];
			copy_str(y->name, sizeof(y->name), nd->name);
			copy_str(y->host, sizeof(y->host), nd->host_name);
			copy_str(y->ipv4, sizeof(y->ipv4), nd->ipv4);
			copy_str(y->ipv6, sizeof(y->ipv6), nd->ipv6);
			copy_str(y->cert_name, sizeof(y->cert_name), nd->cert_name);
			y->port = nd->has_derp_port ? nd->derp_port : 0;
			y->insecure = nd->has_insecure_for_tests &&
			    nd->insecure_for_tests;
			y->stun_only = nd->has_stun_only && nd->stun_only;
		}
	}
	for (int i = 0; i < MAX_REGIONS; i++)
		probe_end(c, i); /* indices change below */
	c->probing = 0;
	/* carry connections over to the new table by region id; close the
	 * ones whose region left the map */
	dconn *nc[MAX_REGIONS] = { 0 };
	uint32_t nl[MAX_REGIONS] = { 0 };
	for (int i = 0; i < c->nregions; i++) {
		int j;
		for (j = 0; j < n; j++)
			if (nr[j].id == c->regions[i].id)
				break;
		if (j < n) {
			nc[j] = c->conns[i];
			nl[j] = c->lat_us[i];
			/* a changed node list: reconnect to the new one */
			if (nc[j] && memcmp(&nr[j], &c->regions[i], sizeof(nr[j])) != 0 &&
			    nc[j]->fd >= 0) {
				nc[j]->fails = 0;
				dc_close(nc[j], "DERP map changed", true);
			}
		} else {
			dc_free(c->conns[i]);
		}
	}
	memcpy(c->regions, nr, sizeof(nr[0]) * (size_t)n);
	memcpy(c->conns, nc, sizeof(nc));
	memcpy(c->lat_us, nl, sizeof(nl));
	c->nregions = n;
	if (c->home > 0 && region_index(c, c->home) < 0)
		c->home = 0;
	probe_regions(c); /* then choose_home */
	publish(c);
}

/* The DERP map from ctrld's netmap: a snapshot's Netmap.derp_map or a
 * delta's NetmapDelta.derp_map (absent: unchanged). */
static int
nm_apply(derpd_client *c, const ProtobufCMessageDescriptor *desc,
    const uint8_t *body, size_t len)
{
	ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, body);

	if (m == NULL)
		return TK_EPROTO;
	c->netmaps++;
	const Tk__Bus__V1__DERPMap *dm =
	    desc == &tk__bus__v1__netmap__descriptor ?
	    ((Tk__Bus__V1__Netmap *)m)->derp_map :
	    ((Tk__Bus__V1__NetmapDelta *)m)->derp_map;
	if (dm != NULL)
		apply_derp_map(c, dm);
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

static int
nm_snapshot(void *arg, uint64_t seq, const uint8_t *body, size_t len)
{
	(void)seq;
	return nm_apply(arg, &tk__bus__v1__netmap__descriptor, body, len);
}

static int
nm_delta(void *arg, uint64_t seq, const uint8_t *body, size_t len)
{
	(void)seq;
	return nm_apply(arg, &tk__bus__v1__netmap_delta__descriptor, body, len);
}

static int
keys_apply(void *arg, uint64_t seq, const uint8_t *body, size_t len)
{
	derpd_client *c = arg;
	Tk__Bus__V1__Keys *k = tk__bus__v1__keys__unpack(NULL, len, body);

	(void)seq;
	if (k == NULL)
		return TK_EPROTO;
	if (k->has_node_key && k->node_key.len == 32 &&
	    (!c->have_key || memcmp(c->node_pub, k->node_key.data, 32) != 0)) {
		bool had = c->have_key;
		memcpy(c->node_pub, k->node_key.data, 32);
		c->have_key = true;
		/* a new node key is a new DERP identity: reconnect */
		for (int i = 0; had && i < c->nregions; i++)
			if (c->conns[i] && c->conns[i]->fd >= 0) {
				c->conns[i]->fails = 0;
				dc_close(c->conns[i], "node key changed", true);
			}
		for (int i = 0; i < c->nregions; i++)
			if (c->conns[i] && c->conns[i]->fd < 0)
				dc_kick(c->conns[i]);
	}
	tk__bus__v1__keys__free_unpacked(k, NULL);
	return 0;
}

static int
rpc_status(void *arg, const uint8_t *body, size_t len, tk_buf *reply)
{
	derpd_client *c = arg;
	Tk__Bus__V1__StatusResponse r = TK__BUS__V1__STATUS_RESPONSE__INIT;
	tk_status_counters cs = { .n = 0 };
	uint64_t up = 0, tx = 0, rx = 0, dp = 0, dt = 0;

	(void)body, (void)len;
	for (int i = 0; i < c->nregions; i++) {
		dconn *d = c->conns[i];
		if (d == NULL)
			continue;
		up += d->server_info;
		tx += d->tx_pkts;
		rx += d->rx_pkts;
		dp += d->drop_pend;
		dt += d->drop_tx;
	}
	r.component = "derpd";
	r.version = VERSION;
	r.has_state = true;
	r.state = c->home > 0 && up ?
	    TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_RUNNING :
	    TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_STARTING;
	r.has_uptime_ms = true;
	r.uptime_ms = (int64_t)((now_ns(c) - c->started_ns) / MS);
#define C(name, v) tk_status_counter(&cs, name, v)
	C("home_region", (uint64_t)(c->home > 0 ? c->home : 0));
	C("regions_known", (uint64_t)c->nregions);
	C("regions_connected", up);
	C("derp_tx_packets", tx);
	C("derp_rx_packets", rx);
	C("drop_handshake_queue", dp);
	C("drop_server_slow", dt);
	C("drop_no_region", c->no_region);
	C("bus_rx_records", c->pkt_rx);
	C("bus_tx_records", c->out.recs);
	C("bus_drops", c->out.dropped + c->pkt_drop);
	C("bus_bad_batches", c->pkt_stats.bs_dropped);
	C("bad_frames", c->rx_bad_frames);
	C("connects", c->connects);
	C("connection_failures", c->conn_fails);
	C("handshakes", c->handshakes);
	C("disco_rx", c->disco_rx);
	C("peer_gone", c->peer_gone);
	C("pings_answered", c->pings);
	C("netmaps", c->netmaps);
	C("latency_probes", c->probes);
#undef C
	tk_status_counters_set(&r, &cs);
	return tk_bus_pb_pack((const ProtobufCMessage *)&r, reply);
}

/* --- lifecycle -------------------------------------------------------------------------------------------- */

static int
dup_str(char **dst, const char *s)
{
	*dst = NULL;
	if (s == NULL)
		return 0;
	return (*dst = tk_strdup(s)) != NULL ? 0 : TK_ENOMEM;
}

int
derpd_client_new(derpd_client **out, const derpd_client_config *cfg,
    char *err, size_t errlen)
{
	derpd_client *c;
	int rv;

	if (err && errlen)
		err[0] = 0;
	if (!cfg->pub_url || !cfg->rpc_url || !cfg->ctrld_pub_url ||
	    !cfg->ctrld_rpc_url || !cfg->wgd_pub_url || !cfg->wgd_rpc_url ||
	    !cfg->pkt_url) {
		snprintf(err, errlen, "client mode needs its own pub/rpc URLs, "
		    "ctrld's and wgd's pub/rpc URLs and wgd's DERP packet bus "
		    "(or --bus DIR for all of them)");
		return TK_EINVAL;
	}
	const char *urls[] = { cfg->pub_url, cfg->rpc_url, cfg->ctrld_pub_url,
		cfg->ctrld_rpc_url, cfg->wgd_pub_url, cfg->wgd_rpc_url, cfg->pkt_url };
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		enum tk_bus_scheme sch;
		if ((rv = tk_bus_url_check(urls[i], &sch, err, errlen)) != 0)
			return rv;
	}
	if ((c = tk_calloc(1, sizeof(*c))) == NULL)
		return TK_ENOMEM;
	c->plain_http = cfg->plain_http;
	c->pin_home = cfg->home_region;
	for (int i = 0; i < MAX_REGIONS; i++)
		c->probe_fd[i] = -1;
	c->tls = cfg->tls;
	if ((rv = dup_str(&c->pub_url, cfg->pub_url)) != 0 ||
	    (rv = dup_str(&c->rpc_url, cfg->rpc_url)) != 0 ||
	    (rv = dup_str(&c->ctrld_pub_url, cfg->ctrld_pub_url)) != 0 ||
	    (rv = dup_str(&c->ctrld_rpc_url, cfg->ctrld_rpc_url)) != 0 ||
	    (rv = dup_str(&c->wgd_pub_url, cfg->wgd_pub_url)) != 0 ||
	    (rv = dup_str(&c->wgd_rpc_url, cfg->wgd_rpc_url)) != 0 ||
	    (rv = dup_str(&c->pkt_url, cfg->pkt_url)) != 0 ||
	    (rv = dup_str(&c->ca_file, cfg->ca_file)) != 0)
		goto fail;
	if (gnutls_certificate_allocate_credentials(&c->cred) < 0) {
		rv = TK_ENOMEM;
		goto fail;
	}
	/* CAs are read only to verify a chain, after each handshake
	 * (tls_step): here the CA file is checked once, so a mistake is an
	 * error at start rather than a relay that never verifies */
	if (c->ca_file) {
		gnutls_x509_trust_list_t tl;
		int g = -1;
		if (gnutls_x509_trust_list_init(&tl, 0) == 0) {
			g = gnutls_x509_trust_list_add_trust_file(tl, c->ca_file,
			    NULL, GNUTLS_X509_FMT_PEM, 0, 0);
			gnutls_x509_trust_list_deinit(tl, 1);
		}
		if (g <= 0) {
			snprintf(err, errlen, "--ca-file %s: no PEM certificate "
			    "in it (accepted: a PEM file of CA certificates)",
			    c->ca_file);
			rv = TK_EINVAL;
			goto fail;
		}
	}
	if ((rv = tk_loop_new(&c->loop, NULL)) != 0 ||
	    (rv = tk_loop_timer_new(c->loop, &c->tick, on_tick, c)) != 0 ||
	    (rv = tk_loop_timer_new(c->loop, &c->probe_timer, on_probe_timer,
		c)) != 0)
		goto fail;
	c->started_ns = now_ns(c);
	tk_rpc_server_cfg rc = { .loop = c->loop, .url = c->rpc_url, .tls = c->tls };
	tk_topic_pub_cfg pc = { .loop = c->loop, .url = c->pub_url, .tls = c->tls };
	if ((rv = tk_rpc_server_new(&c->rpc, &rc)) != 0 ||
	    (rv = tk_rpc_server_add(c->rpc, TK_METHOD_STATUS, rpc_status, c)) != 0 ||
	    (pc.rpc = c->rpc, (rv = tk_topic_pub_new(&c->pub, &pc))) != 0 ||
	    (rv = tk_topic_add(c->pub, TK_TOPIC_DERP, derp_snapshot, c, &c->t_derp)) != 0) {
		snprintf(err, errlen, "bus %s / %s: %s", c->pub_url, c->rpc_url,
		    tk_strerror(rv));
		goto fail;
	}
	tk_topic_sub_cfg nc = { .loop = c->loop, .url = c->ctrld_pub_url,
		.rpc_url = c->ctrld_rpc_url, .tls = c->tls, .topic = TK_TOPIC_NETMAP,
		.apply_snapshot = nm_snapshot, .apply_delta = nm_delta, .arg = c,
		.name = "derpd" };
	tk_topic_sub_cfg kc = { .loop = c->loop, .url = c->wgd_pub_url,
		.rpc_url = c->wgd_rpc_url, .tls = c->tls, .topic = TK_TOPIC_KEYS,
		.apply_snapshot = keys_apply, .apply_delta = keys_apply, .arg = c,
		.name = "derpd" };
	if ((rv = tk_topic_sub_new(&c->nm_sub, &nc)) != 0 ||
	    (rv = tk_topic_sub_new(&c->keys_sub, &kc)) != 0) {
		snprintf(err, errlen, "subscriptions: %s", tk_strerror(rv));
		goto fail;
	}
	if ((rv = tk_bus_open(&c->pkt, TK_BUS_PAIR)) != 0)
		goto fail;
	c->pkt_open = true;
	tk_bus_batcher_init(&c->out, c->pkt, 0);
	if ((rv = tk_bus_dial(c->pkt, c->pkt_url, c->tls, 0, NULL)) != 0 ||
	    (rv = tk_bus_reader_new(&c->pkt_reader, c->loop, c->pkt, on_pkt,
		c)) != 0) {
		snprintf(err, errlen, "packet bus %s: %s", c->pkt_url,
		    tk_strerror(rv));
		goto fail;
	}
	if ((rv = tk_loop_timer_arm(c->tick, TK_DERP_CLEAN_STALE_MS * MS,
	    TK_DERP_CLEAN_STALE_MS * MS)) != 0)
		goto fail;
	*out = c;
	return 0;
fail:
	if (err && errlen && !err[0])
		snprintf(err, errlen, "%s", tk_strerror(rv));
	derpd_client_free(c);
	return rv;
}

static void *
run(void *arg)
{
	derpd_client *c = arg;
	tk_loop_run(c->loop);
	return NULL;
}

int
derpd_client_start(derpd_client *c)
{
	int e = pthread_create(&c->thr, NULL, run, c);
	if (e != 0)
		return TK_ESYS | (unsigned)e;
	c->running = true;
	return 0;
}

void
derpd_client_stop(derpd_client *c)
{
	if (c == NULL || !c->running)
		return;
	tk_loop_stop(c->loop);
	pthread_join(c->thr, NULL);
	c->running = false;
}

void
derpd_client_free(derpd_client *c)
{
	if (c == NULL)
		return;
	derpd_client_stop(c);
	c->t_derp = NULL; /* no publishing while connections go away */
	for (int i = 0; i < MAX_REGIONS; i++) {
		dc_free(c->conns[i]);
		c->conns[i] = NULL;
	}
	if (c->loop != NULL)
		for (int i = 0; i < MAX_REGIONS; i++)
			probe_end(c, i);
	tk_loop_timer_free(c->probe_timer);
	tk_topic_sub_free(c->nm_sub);
	tk_topic_sub_free(c->keys_sub);
	tk_bus_reader_free(c->pkt_reader);
	tk_bus_batcher_fini(&c->out);
	if (c->pkt_open)
		tk_bus_close_bounded(c->pkt, 2000); /* nng 1.5.2 (tk/bus.h) */
	tk_topic_pub_free(c->pub);
	tk_rpc_server_free(c->rpc);
	tk_loop_timer_free(c->tick);
	tk_loop_free(c->loop);
	if (c->cred)
		gnutls_certificate_free_credentials(c->cred);
	tk_free(c->pub_url);
	tk_free(c->rpc_url);
	tk_free(c->ctrld_pub_url);
	tk_free(c->ctrld_rpc_url);
	tk_free(c->wgd_pub_url);
	tk_free(c->wgd_rpc_url);
	tk_free(c->pkt_url);
	tk_free(c->ca_file);
	tk_free(c);
}
