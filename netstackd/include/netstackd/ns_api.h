/*
 * netstackd's local API: the wire format between netstackd and an
 * application on its unix socket (SOCK_STREAM, mode 0600), and a sans-I/O
 * codec for both ends.  Normative description: netstackd/README.md "Local
 * API".
 *
 * Every frame, both directions:
 *
 *   be16 len | u8 op | u8 status | be32 id | body[len - 8]
 *
 * len counts the whole frame (NS_API_HDR_LEN..NS_API_FRAME_MAX).  Requests
 * carry status 0 and an id of the client's choosing; the reply echoes the
 * id.  A reply or event that hands over a descriptor carries it as
 * SCM_RIGHTS ancillary data on the frame's first byte.
 */
#ifndef NS_API_H
#define NS_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NS_API_HDR_LEN	  8
#define NS_API_FRAME_MAX  1024
#define NS_API_NAME_MAX	  255

/* requests (client -> netstackd) */
enum ns_api_op {
	NS_OP_LISTEN_TCP = 1,	/* be16 port (1..65535) */
	NS_OP_DIAL_TCP = 2,	/* u8 family (4|6) | addr[4|16] | be16 port */
	NS_OP_BIND_UDP = 3,	/* be16 port (0: an ephemeral port) */
	NS_OP_UNLISTEN_TCP = 4, /* be16 port */
	NS_OP_DIAL_TCP_NAME = 5, /* u8 n | name[n] | be16 port (MagicDNS) */
};

/* replies and events (netstackd -> client) */
enum ns_api_msg {
	NS_MSG_REPLY = 0x81,  /* to request `id`; status; body per op */
	NS_MSG_ACCEPT = 0x82, /* a connection on listen request `id`: fd + peer */
};

/* status of a reply */
enum ns_api_status {
	NS_ST_OK = 0,
	NS_ST_EINVAL = 1,	/* malformed request (the text says what) */
	NS_ST_EADDRINUSE = 2,	/* port already listened on / bound */
	NS_ST_ECONNREFUSED = 3, /* the peer answered with RST */
	NS_ST_ETIMEDOUT = 4,	/* no answer */
	NS_ST_ENETUNREACH = 5,	/* no own address of that family yet */
	NS_ST_ENOMEM = 6,
	NS_ST_ENOTSUP = 7,	/* an operation this netstackd does not do */
	NS_ST_ECLOSED = 8,	/* netstackd is stopping */
	NS_ST_ELIMIT = 9,	/* too many connections */
	NS_ST_ENOTFOUND = 10,	/* DIAL_TCP_NAME: no tailnet node by that name */
};

typedef struct ns_api_addr {
	uint8_t family; /* 4 or 6 */
	uint8_t addr[16];
	uint16_t port;
} ns_api_addr;

/* A parsed request. */
typedef struct ns_api_req {
	uint8_t op;
	uint32_t id;
	ns_api_addr addr; /* DIAL_TCP: destination; LISTEN/BIND/UNLISTEN: port */
	char name[NS_API_NAME_MAX + 1]; /* DIAL_TCP_NAME */
	const char *why; /* TK_EINVAL: what was wrong (static text) */
} ns_api_req;

/*
 * Parses one request from the start of p[0..n).  Returns
 *   0           *out holds it, *used = its length;
 *   TK_EAGAIN   not a whole frame yet (nothing written);
 *   TK_EINVAL   a whole frame with bad contents: *used, out->id, out->op and
 *               out->why are written so the caller can answer and go on;
 *   TK_EPROTO   the framing itself is broken (length out of range, a reply
 *               type from a client): the stream cannot be resynchronised.
 * Never reads outside p[0..n).
 */
int ns_api_req_parse(const uint8_t *p, size_t n, ns_api_req *out,
    size_t *used);

/* Encoders: write into out[0..cap), return the frame length or 0 when it
 * does not fit / an argument is bad. */
size_t ns_api_req_encode(uint8_t *out, size_t cap, const ns_api_req *r);
size_t ns_api_frame_encode(uint8_t *out, size_t cap, uint8_t op,
    uint8_t status, uint32_t id, const uint8_t *body, size_t len);

/* Who is on the other end of a connection (body of DIAL replies and
 * ACCEPT events). */
typedef struct ns_api_peer {
	ns_api_addr remote, local;
	int64_t node_id; /* 0: not a known tailnet node */
	int64_t user_id;
	char name[NS_API_NAME_MAX + 1];	 /* MagicDNS FQDN, "" if unknown */
	char login[NS_API_NAME_MAX + 1]; /* user login, "" if unknown */
} ns_api_peer;

#define NS_API_PEER_MIN (2 * 19 + 16 + 2)
size_t ns_api_peer_encode(uint8_t *out, size_t cap, const ns_api_peer *pi);
/* 0 or TK_EPROTO. */
int ns_api_peer_decode(const uint8_t *p, size_t n, ns_api_peer *out);

/* One frame from netstackd, for clients.  0, TK_EAGAIN (incomplete),
 * TK_EPROTO.  body points into p. */
typedef struct ns_api_frame {
	uint8_t op, status;
	uint32_t id;
	const uint8_t *body;
	size_t len;
} ns_api_frame;
int ns_api_frame_parse(const uint8_t *p, size_t n, ns_api_frame *out,
    size_t *used);

/*
 * UDP sockets (SOCK_SEQPACKET: one message = one datagram).  Each message
 * starts with this header: the peer it came from, or the destination of
 * one the application sends.
 *
 *   u8 family (4|6) | u8 flags=0 | be16 port | addr[16] | payload
 */
#define NS_UDP_HDR_LEN 20
#define NS_UDP_PAYLOAD_MAX 65507
void ns_udp_hdr_encode(uint8_t out[NS_UDP_HDR_LEN], const ns_api_addr *a);
/* 0 or TK_EPROTO (family, flags, port 0). */
int ns_udp_hdr_decode(const uint8_t *p, size_t n, ns_api_addr *out);

#endif
