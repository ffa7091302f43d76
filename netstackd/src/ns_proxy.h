/*
 * netstackd's loopback proxies, sans-I/O: the SOCKS5 server side (RFC 1928,
 * username/password RFC 1929) and the HTTP CONNECT request parser
 * (RFC 9110 §9.3.6, Basic proxy auth RFC 7617).
 *
 * The caller owns the socket and an input buffer.  It hands the bytes it
 * has accumulated to the parser, which consumes whole messages only: on
 * "need more" nothing is consumed and the caller reads more (up to the
 * bound given below; beyond it the parser answers an error itself).  Bytes
 * after the last consumed message belong to the tunnel: the caller relays
 * them once its connection is up.
 */
#ifndef NS_PROXY_H
#define NS_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tk/netaddr.h"

/* ---- SOCKS5 wire constants (RFC 1928 §3-§7, RFC 1929 §2) ---- */

#define NS_SOCKS_VER		5
#define NS_SOCKS_AUTH_VER	1 /* RFC 1929 sub-negotiation version */
#define NS_SOCKS_M_NOAUTH	0x00
#define NS_SOCKS_M_USERPASS	0x02
#define NS_SOCKS_M_NONE		0xff /* NO ACCEPTABLE METHODS */
#define NS_SOCKS_CMD_CONNECT	1
#define NS_SOCKS_CMD_BIND	2
#define NS_SOCKS_CMD_UDP	3
#define NS_SOCKS_ATYP_IPV4	1
#define NS_SOCKS_ATYP_DOMAIN	3
#define NS_SOCKS_ATYP_IPV6	4
#define NS_SOCKS_REP_OK		0x00
#define NS_SOCKS_REP_FAIL	0x01 /* general SOCKS server failure */
#define NS_SOCKS_REP_NOTALLOWED 0x02 /* connection not allowed by ruleset */
#define NS_SOCKS_REP_NETUNREACH 0x03
#define NS_SOCKS_REP_HOSTUNREACH 0x04
#define NS_SOCKS_REP_REFUSED	0x05
#define NS_SOCKS_REP_TTL	0x06
#define NS_SOCKS_REP_CMD	0x07 /* command not supported */
#define NS_SOCKS_REP_ATYP	0x08 /* address type not supported */

/* Longest message a client sends before the tunnel: the RFC 1929 request
 * (1 + 1 + 255 + 1 + 255).  The caller's input buffer must hold this. */
#define NS_SOCKS_MSG_MAX 513
/* Longest reply the parser writes (header + IPv6 address + port). */
#define NS_SOCKS_REPLY_MAX 22
#define NS_SOCKS_NAME_MAX  255

/* Counters for both proxies; owned by the caller, NULL = not counted.
 * Bad input from clients never returns an error: it is answered as the
 * RFCs say, counted here, and the connection closed. */
typedef struct ns_proxy_stats {
	uint64_t socks_not_socks5;  /* first byte not 5: closed, no reply */
	uint64_t socks_no_method;   /* no acceptable method: 0xFF */
	uint64_t socks_auth_failed; /* RFC 1929 status 1 */
	uint64_t socks_bad_request; /* REP 01/07/08, or wrong version */
	uint64_t socks_connect;	    /* CONNECT requests taken */
	uint64_t socks_udp;	    /* UDP ASSOCIATE requests taken */
	uint64_t socks_udp_frag;    /* datagrams with FRAG != 0 dropped */
	uint64_t socks_udp_bad;	    /* malformed datagrams dropped */
	uint64_t http_ok;	    /* CONNECT heads taken (200) */
	uint64_t http_bad;	    /* 400 */
	uint64_t http_method;	    /* 405 */
	uint64_t http_auth;	    /* 407 */
} ns_proxy_stats;

/* A SOCKS destination: an IP, or a domain name to resolve (tailnet names
 * included) -- resolution is the caller's. */
typedef struct ns_socks_addr {
	uint8_t atyp; /* NS_SOCKS_ATYP_* */
	tk_ipaddr ip; /* IPV4/IPV6 */
	char name[NS_SOCKS_NAME_MAX + 1]; /* DOMAIN, NUL-terminated */
	uint16_t port;
} ns_socks_addr;

typedef struct ns_socks_cfg {
	/* Both set: RFC 1929 username/password required (compared in
	 * constant time).  Both NULL: no authentication. */
	const char *user;
	const char *pass;
	bool allow_udp; /* UDP ASSOCIATE allowed (else REP 07) */
	ns_proxy_stats *stats; /* NULL: not counted */
} ns_socks_cfg;

enum ns_socks_state {
	NS_SOCKS_S_GREETING = 0,
	NS_SOCKS_S_AUTH,
	NS_SOCKS_S_REQUEST,
	NS_SOCKS_S_WAIT, /* CONNECT/UDP reported; waiting for the caller */
	NS_SOCKS_S_DONE, /* tunnel up, or failed */
};

/* One connection's parser state; caller storage (_init, no _fini). */
typedef struct ns_socks {
	ns_socks_cfg cfg;
	int state;
	uint8_t cmd;
} ns_socks;

enum ns_socks_event {
	NS_SOCKS_NEED_MORE = 0,	  /* read more, call again with all bytes */
	NS_SOCKS_REPLY,		  /* send reply; then call again */
	NS_SOCKS_CONNECT,	  /* dial ev.dst; then ns_socks_reply() */
	NS_SOCKS_UDP_ASSOCIATE,	  /* open a relay; then ns_socks_reply() */
	NS_SOCKS_CLOSE,		  /* send reply (may be empty), then close */
};

typedef struct ns_socks_result {
	int event;		   /* enum ns_socks_event */
	size_t consumed;	   /* bytes of the input used */
	uint8_t reply[NS_SOCKS_REPLY_MAX];
	size_t reply_len;
	/* CONNECT: where to; UDP ASSOCIATE: where the client says it will
	 * send from (often 0.0.0.0:0, RFC 1928 §7) */
	ns_socks_addr dst;
	uint8_t rep;		   /* CLOSE after a request: REP code sent */
} ns_socks_result;

void ns_socks_init(ns_socks *s, const ns_socks_cfg *cfg);

/*
 * Consumes at most one message from (p, n) and says what to do.  Bad input
 * never returns an error: it ends in NS_SOCKS_CLOSE with the reply the RFC
 * asks for (method 0xFF, auth status 1, REP 01/07/08) or none (wrong
 * version).  Returns TK_ESTATE when called while waiting for the caller's
 * reply or after the end.
 */
int ns_socks_feed(ns_socks *s, const uint8_t *p, size_t n,
    ns_socks_result *r);

/*
 * The caller's answer to CONNECT/UDP ASSOCIATE: rep (NS_SOCKS_REP_*) and
 * the bound address (BND.ADDR/BND.PORT: the local end of the dialled
 * connection, or the UDP relay's address; NULL = 0.0.0.0:0).  Writes the
 * reply to out (NS_SOCKS_REPLY_MAX bytes); after a rep other than OK the
 * caller closes.
 */
int ns_socks_reply(ns_socks *s, uint8_t rep, const tk_ipport *bnd,
    uint8_t out[NS_SOCKS_REPLY_MAX], size_t *outlen);

/*
 * UDP ASSOCIATE datagrams (RFC 1928 §7): RSV(2) FRAG(1) ATYP ADDR PORT
 * DATA.  Decode gives the destination and the header length (the payload
 * follows).  TK_ENOTSUP for FRAG != 0 (fragments are not reassembled: drop
 * and count), TK_EPROTO for anything malformed (drop and count).
 */
int ns_socks_udp_decode(const uint8_t *p, size_t n, ns_socks_addr *dst,
    size_t *hdrlen, ns_proxy_stats *st);
/* Writes the header for a datagram from src; *hdrlen bytes. */
int ns_socks_udp_encode(const ns_socks_addr *src, uint8_t *out, size_t cap,
    size_t *hdrlen);

/* ---- HTTP CONNECT ---- */

/* Request head bound: request line and headers up to the empty line. */
#define NS_HCONN_HEAD_MAX 8192
#define NS_HCONN_HOST_MAX 255

typedef struct ns_hconn_cfg {
	/* Both set: "Proxy-Authorization: Basic base64(user:pass)" required
	 * (407 otherwise).  Both NULL: no authentication. */
	const char *user;
	const char *pass;
	ns_proxy_stats *stats; /* NULL: not counted */
} ns_hconn_cfg;

typedef struct ns_hconn_req {
	int status; /* 0: need more; 200: dial; else send that error, close */
	size_t consumed; /* head length, empty line included */
	/* status 200: the target.  is_ip: literal (v4 or [v6]); else a
	 * name to resolve (tailnet names included). */
	char host[NS_HCONN_HOST_MAX + 1];
	bool is_ip;
	tk_ipaddr ip;
	uint16_t port;
	int http_minor; /* HTTP/1.x of the request */
} ns_hconn_req;

/*
 * Parses the request head in (p, n).  status 0 (need more) while no empty
 * line is in sight and n < NS_HCONN_HEAD_MAX; 400 beyond that bound or for
 * anything malformed (request line, header syntax, authority, port,
 * obsolete line folding); 405 for a method other than CONNECT; 407 for a
 * missing or wrong Proxy-Authorization when cfg asks for one; 200 when the
 * caller should dial.  Header names are case-insensitive, in any order.
 * Each call that ends in a status other than 0 counts it in cfg->stats.
 */
int ns_hconn_parse(const ns_hconn_cfg *cfg, const uint8_t *p, size_t n,
    ns_hconn_req *req);

/*
 * The response head for status 200 ("Connection Established"), 400, 405,
 * 407 (with Proxy-Authenticate: Basic), 502 (dial failed) or 504 (dial
 * timed out): a static string and its length; NULL for other statuses.
 */
const char *ns_hconn_response(int status, size_t *len);

#endif
