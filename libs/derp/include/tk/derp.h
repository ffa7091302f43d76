/*
 * tk_derp: the DERP frame codec, sans-I/O (constants in tk/derp_wire.h).
 *
 * Bytes in, decoded frames out; frames built into caller buffers.  Nothing
 * here owns a socket or a clock, so the server (derpd), the node's client,
 * the debug tool and the load generator share it, and it is fuzzed alone.
 *
 * Every decoder applies the length rules Go's client or server applies to
 * that frame (derp_client.go recvTimeout, derpserver.go handleFrame*) and
 * returns TK_EPROTO when one is broken; what a caller does then (close the
 * connection, as Go does, or drop and count) is the caller's policy.
 * Borrowed inputs are not kept; output pointers point into the input.
 */
#ifndef TK_DERP_H
#define TK_DERP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tk/derp_wire.h"
#include "tk/rng.h"

/* --- framing --------------------------------------------------------------- */

typedef struct tk_derp_frame {
	uint8_t type;
	uint32_t len;		/* payload length */
	const uint8_t *payload; /* into the input */
} tk_derp_frame;

/*
 * One frame at the head of p[0..n).  0: *f is the frame and *used the bytes
 * it spans (header + payload).  TK_EAGAIN: incomplete (*used, if the header
 * is there, gets the total bytes the frame needs).  TK_EMSGSIZE: the
 * declared payload length exceeds max (the stream cannot be resynchronised:
 * close it).
 */
int tk_derp_frame_next(const uint8_t *p, size_t n, uint32_t max,
    tk_derp_frame *f, size_t *used);
/* Writes a 5-byte frame header. */
void tk_derp_frame_hdr(uint8_t out[TK_DERP_FRAME_HDR_LEN], uint8_t type,
    uint32_t len);

/* --- payload decoders ---------------------------------------------------- */

/* ServerKey: magic + key, extra bytes ignored (40..1024 bytes). */
int tk_derp_parse_server_key(const uint8_t *p, size_t n,
    uint8_t server_pub[TK_DERP_KEY_LEN]);
/* ClientInfo: key + nonce + box, 56..256 KiB.  nonce_box spans nonce+box. */
int tk_derp_parse_client_info(const uint8_t *p, size_t n,
    uint8_t client_pub[TK_DERP_KEY_LEN], const uint8_t **nonce_box,
    size_t *nonce_box_len);
/* SendPacket (dst) or RecvPacket (src): key + packet <= 64 KiB.  A
 * zero-length packet is allowed (Go relays it). */
int tk_derp_parse_packet(const uint8_t *p, size_t n,
    const uint8_t **key, const uint8_t **pkt, size_t *pktlen);
/* ForwardPacket: src + dst + packet <= 64 KiB. */
int tk_derp_parse_forward(const uint8_t *p, size_t n, const uint8_t **src,
    const uint8_t **dst, const uint8_t **pkt, size_t *pktlen);
/* PeerGone: key (32, old servers: reason 0) or key + reason (>= 33). */
int tk_derp_parse_peer_gone(const uint8_t *p, size_t n,
    uint8_t key[TK_DERP_KEY_LEN], uint8_t *reason);

typedef struct tk_derp_peer_present {
	uint8_t key[TK_DERP_KEY_LEN];
	bool has_addr;	/* 50 bytes or more */
	uint8_t ip[16]; /* IPv4 as v4-mapped */
	uint16_t port;
	bool has_flags; /* 51 bytes or more */
	uint8_t flags;
} tk_derp_peer_present;
/* PeerPresent as derp_client.go reads it: >= 32 bytes; the address when
 * 50 or more, the flags when 51 or more (33..49: a key only). */
int tk_derp_parse_peer_present(const uint8_t *p, size_t n,
    tk_derp_peer_present *out);
/* Ping as the server reads it: 8..1000 bytes, the first 8 count. */
int tk_derp_parse_ping(const uint8_t *p, size_t n,
    uint8_t data[TK_DERP_PING_LEN]);
/* NotePreferred: exactly 1 byte. */
int tk_derp_parse_note_preferred(const uint8_t *p, size_t n, bool *preferred);
/* ClosePeer: exactly 32 bytes. */
int tk_derp_parse_close_peer(const uint8_t *p, size_t n,
    uint8_t key[TK_DERP_KEY_LEN]);
/* Restarting: >= 8 bytes. */
int tk_derp_parse_restarting(const uint8_t *p, size_t n,
    uint32_t *reconnect_in_ms, uint32_t *try_for_ms);

/* --- frame builders -------------------------------------------------------- */

/* Bytes a builder writes. */
#define TK_DERP_SERVER_KEY_FRAME_LEN \
	(TK_DERP_FRAME_HDR_LEN + TK_DERP_MAGIC_LEN + TK_DERP_KEY_LEN)
#define TK_DERP_PACKET_HDR_LEN (TK_DERP_FRAME_HDR_LEN + TK_DERP_KEY_LEN)
#define TK_DERP_FORWARD_HDR_LEN (TK_DERP_FRAME_HDR_LEN + 2 * TK_DERP_KEY_LEN)
#define TK_DERP_PEER_GONE_FRAME_LEN (TK_DERP_FRAME_HDR_LEN + TK_DERP_KEY_LEN + 1)
#define TK_DERP_PEER_PRESENT_FRAME_LEN \
	(TK_DERP_FRAME_HDR_LEN + TK_DERP_PEER_PRESENT_LEN)
#define TK_DERP_PING_FRAME_LEN (TK_DERP_FRAME_HDR_LEN + TK_DERP_PING_LEN)

void tk_derp_build_server_key(uint8_t out[TK_DERP_SERVER_KEY_FRAME_LEN],
    const uint8_t server_pub[TK_DERP_KEY_LEN]);
/* Header of a SendPacket/RecvPacket (type) for a packet of pktlen bytes:
 * frame header + key; the packet follows. */
void tk_derp_build_packet_hdr(uint8_t out[TK_DERP_PACKET_HDR_LEN],
    uint8_t type, const uint8_t key[TK_DERP_KEY_LEN], size_t pktlen);
void tk_derp_build_forward_hdr(uint8_t out[TK_DERP_FORWARD_HDR_LEN],
    const uint8_t src[TK_DERP_KEY_LEN], const uint8_t dst[TK_DERP_KEY_LEN],
    size_t pktlen);
void tk_derp_build_peer_gone(uint8_t out[TK_DERP_PEER_GONE_FRAME_LEN],
    const uint8_t key[TK_DERP_KEY_LEN], uint8_t reason);
/* ip: 16 bytes (v4-mapped for IPv4) or NULL for zeros. */
void tk_derp_build_peer_present(uint8_t out[TK_DERP_PEER_PRESENT_FRAME_LEN],
    const uint8_t key[TK_DERP_KEY_LEN], const uint8_t *ip, uint16_t port,
    uint8_t flags);
/* Ping or Pong (type) carrying 8 bytes. */
void tk_derp_build_ping(uint8_t out[TK_DERP_PING_FRAME_LEN], uint8_t type,
    const uint8_t data[TK_DERP_PING_LEN]);

/* --- sealed JSON bodies ------------------------------------------------------ */

/* derp_client.go ClientInfo.  JSON keys are matched case-insensitively, as
 * Go's encoding/json does; a meshKey must be 64 hex digits. */
typedef struct tk_derp_client_info {
	int64_t version;
	bool can_ack_pings;
	bool is_prober;
	bool has_mesh_key;
	uint8_t mesh_key[TK_DERP_KEY_LEN];
	char app_name[64]; /* longer names are cut (stats only) */
} tk_derp_client_info;

/* JSON as Go's client writes it ({"version":2,"CanAckPings":true}).
 * TK_EMSGSIZE if cap is too small.  *len excludes the NUL. */
int tk_derp_client_info_json(const tk_derp_client_info *ci, char *out,
    size_t cap, size_t *len);
int tk_derp_client_info_parse(const uint8_t *p, size_t n,
    tk_derp_client_info *out);

/* derp.go ServerInfo. */
typedef struct tk_derp_server_info {
	int64_t version;
	int64_t token_bucket_bytes_per_second;
	int64_t token_bucket_bytes_burst;
} tk_derp_server_info;

int tk_derp_server_info_json(const tk_derp_server_info *si, char *out,
    size_t cap, size_t *len);
int tk_derp_server_info_parse(const uint8_t *p, size_t n,
    tk_derp_server_info *out);

/*
 * NaCl box as DERP uses it: out = nonce[24] || crypto_box(msg) sealed from
 * priv to peer_pub.  cap >= 24 + n + 16.  rng NULL: system.
 */
#define TK_DERP_SEALED_LEN(n) (TK_DERP_NONCE_LEN + TK_DERP_BOX_OVERHEAD + (n))
int tk_derp_box_seal(uint8_t *out, size_t cap, size_t *len,
    const uint8_t *msg, size_t n, const uint8_t peer_pub[TK_DERP_KEY_LEN],
    const uint8_t priv[TK_DERP_KEY_LEN], const tk_rng *rng);
/* Opens nonce||box.  TK_ECRYPTO if it does not authenticate. */
int tk_derp_box_open(uint8_t *out, size_t cap, size_t *len,
    const uint8_t *nonce_box, size_t n,
    const uint8_t peer_pub[TK_DERP_KEY_LEN],
    const uint8_t priv[TK_DERP_KEY_LEN]);

/* disco.go LooksLikeDiscoWrapper: >= 62 bytes starting with the magic. */
bool tk_derp_looks_like_disco(const uint8_t *p, size_t n);

/* --- stream reader ------------------------------------------------------------ */

/*
 * Accumulates bytes from a stream and yields whole frames.  Read through
 * rx_space/rx_commit, the buffer grows to at most one frame of max_frame
 * payload (1 MiB for a client, as Go's; 64 KiB + keys for a server) and is
 * compacted as frames are taken; rx_put holds whatever it is given.
 */
typedef struct tk_derp_rx {
	uint8_t *buf;
	size_t off, len, cap;
	uint32_t max_frame;
} tk_derp_rx;

void tk_derp_rx_init(tk_derp_rx *r, uint32_t max_frame);
void tk_derp_rx_fini(tk_derp_rx *r);
/* Room to read into (at least min(want, what a frame may still need)).
 * TK_ENOMEM on allocation failure. */
int tk_derp_rx_space(tk_derp_rx *r, size_t want, uint8_t **p, size_t *avail);
void tk_derp_rx_commit(tk_derp_rx *r, size_t n);
/* Appends bytes (e.g. what followed an HTTP header block), however many
 * frames they hold.  TK_ENOMEM: nothing appended. */
int tk_derp_rx_put(tk_derp_rx *r, const uint8_t *p, size_t n);
/* Next whole frame: 0, TK_EAGAIN (need more) or TK_EMSGSIZE (oversized:
 * close the stream).  f->payload stays valid until the next rx call. */
int tk_derp_rx_next(tk_derp_rx *r, tk_derp_frame *f);

/* --- client-side view of server frames ---------------------------------------- */

enum tk_derp_ev {
	TK_DERP_EV_SERVER_KEY = 1, /* key */
	TK_DERP_EV_SERVER_INFO,	   /* data = nonce||box to open */
	TK_DERP_EV_RECV_PACKET,	   /* key = source, data = packet */
	TK_DERP_EV_KEEPALIVE,
	TK_DERP_EV_PEER_GONE,	   /* key, reason */
	TK_DERP_EV_PEER_PRESENT,   /* present */
	TK_DERP_EV_PING,	   /* data = 8 bytes: answer with a Pong */
	TK_DERP_EV_PONG,	   /* data = 8 bytes */
	TK_DERP_EV_HEALTH,	   /* data = text (len 0: healthy) */
	TK_DERP_EV_RESTARTING,	   /* reconnect_in_ms, try_for_ms */
	TK_DERP_EV_UNKNOWN,	   /* a frame type a client skips */
};

typedef struct tk_derp_event {
	enum tk_derp_ev type;
	const uint8_t *key;
	const uint8_t *data;
	size_t len;
	uint8_t reason;
	tk_derp_peer_present present;
	uint32_t reconnect_in_ms, try_for_ms;
} tk_derp_event;

/*
 * A server frame as Go's client (derp_client.go recvTimeout) reads it.
 * TK_EPROTO: a frame Go's client drops as malformed (short RecvPacket,
 * PeerGone, PeerPresent, Ping, Restarting; a ServerKey without the magic
 * or over 1 KiB; a ServerInfo under 24 bytes): drop it and count it.  A
 * RecvPacket's packet may exceed 64 KiB: Go's client bounds it only by
 * its 1 MiB frame limit.
 */
int tk_derp_client_decode(const tk_derp_frame *f, tk_derp_event *ev);

/*
 * HTTP/1.1 response head of the upgrade: "HTTP/1.x <status> ..." and
 * header lines up to the blank line.  0: *status and *head_len (bytes of
 * the head, CRLFCRLF included; what follows is DERP).  TK_EAGAIN: no blank
 * line yet (and the head is under 16 KiB); TK_EPROTO: not HTTP, or too long.
 */
#define TK_DERP_HTTP_HEAD_MAX (16u << 10)
int tk_derp_http_response(const uint8_t *p, size_t n, int *status,
    size_t *head_len);

/*
 * Home-region stickiness (Go's netcheck addReportHistoryAndSetPreferredDERP):
 * with the current home reachable at home_us and the fastest region at
 * best_us (microseconds, 0: not measured), true when the home should move:
 * the best is at least TK_DERP_HOME_ABS_DIFF_US faster and at most 2/3 of
 * the home's latency (Go computes old/3*2 in integers, as here).  An
 * unmeasured home (or best) stays where it is, as Go keeps an accessible
 * home it has no latency for.  The caller asks only while the home is
 * healthy; an unhealthy home is left at once.
 */
bool tk_derp_home_should_move(uint32_t home_us, uint32_t best_us);

#endif
