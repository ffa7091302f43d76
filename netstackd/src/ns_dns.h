/*
 * netstackd's DNS: the message codec (RFC 1035, AAAA RFC 3596, EDNS0 OPT
 * RFC 6891), the MagicDNS table built from a netmap (100.100.100.100), and a
 * sans-I/O forwarder for the names MagicDNS does not own.
 *
 * Everything here is sans-I/O: bytes in, bytes and decisions out, clock and
 * RNG injected.  The netstackd core owns the sockets (UDP and TCP on
 * 100.100.100.100:53 inside lwIP, UDP to the upstream resolvers).
 *
 * Bad input from the network never reaches the caller as an error: the
 * answer is NS_DNS_DROP or an error response, and a counter in
 * ns_dns_stats says why.
 */
#ifndef NS_DNS_H
#define NS_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tk/clock.h"
#include "tk/netaddr.h"
#include "tk/rng.h"

/* ---- wire constants (RFC 1035 §4.1, RFC 3596, RFC 6891) ---- */

#define NS_DNS_HDR_LEN	     12
#define NS_DNS_LABEL_MAX     63	 /* RFC 1035 §2.3.4 */
#define NS_DNS_NAME_MAX	     255 /* wire form, root label included */
#define NS_DNS_TEXT_MAX	     1024 /* dotted text, \DDD escapes included */
#define NS_DNS_UDP_MAX	     512 /* RFC 1035 §4.2.1, without EDNS0 */
#define NS_DNS_TCP_MAX	     65535
#define NS_DNS_EDNS_PAYLOAD  1232 /* what we advertise (DNS flag day 2020) */
#define NS_DNS_PTR_HOPS_MAX  32 /* compression pointers followed per name */
#define NS_DNS_OPT_RR_LEN    11 /* root name + type + class + ttl + rdlen */

/* header flags (RFC 1035 §4.1.1, RFC 4035 §3.2 for AD/CD) */
#define NS_DNS_F_QR	0x8000
#define NS_DNS_F_OPCODE 0x7800
#define NS_DNS_F_AA	0x0400
#define NS_DNS_F_TC	0x0200
#define NS_DNS_F_RD	0x0100
#define NS_DNS_F_RA	0x0080
#define NS_DNS_F_AD	0x0020
#define NS_DNS_F_CD	0x0010
#define NS_DNS_F_RCODE	0x000f

#define NS_DNS_OPCODE_QUERY 0

#define NS_DNS_RCODE_NOERROR  0
#define NS_DNS_RCODE_FORMERR  1
#define NS_DNS_RCODE_SERVFAIL 2
#define NS_DNS_RCODE_NXDOMAIN 3
#define NS_DNS_RCODE_NOTIMP   4
#define NS_DNS_RCODE_REFUSED  5
#define NS_DNS_RCODE_BADVERS  16 /* RFC 6891 §9: extended, needs OPT */

#define NS_DNS_TYPE_A	  1
#define NS_DNS_TYPE_NS	  2
#define NS_DNS_TYPE_CNAME 5
#define NS_DNS_TYPE_SOA	  6
#define NS_DNS_TYPE_PTR	  12
#define NS_DNS_TYPE_MX	  15
#define NS_DNS_TYPE_TXT	  16
#define NS_DNS_TYPE_AAAA  28
#define NS_DNS_TYPE_OPT	  41
#define NS_DNS_TYPE_ANY	  255

#define NS_DNS_CLASS_IN	 1
#define NS_DNS_CLASS_ANY 255

#define NS_DNS_OPT_DO 0x8000 /* RFC 3225: DNSSEC OK, in the OPT TTL */

/* TTL of MagicDNS answers (Tailscale's resolver uses 600 s). */
#define NS_DNS_TTL 600

enum ns_dns_transport {
	NS_DNS_UDP = 0,
	NS_DNS_TCP = 1, /* messages without the 2-byte length prefix */
};

/* ---- counters: owned by the caller, so they outlive table swaps ---- */

typedef struct ns_dns_stats {
	uint64_t queries;	  /* messages handed to ns_dns_answer */
	uint64_t drop_short;	  /* shorter than a header: dropped */
	uint64_t drop_response;	  /* QR set (not a query): dropped */
	uint64_t formerr;	  /* malformed question/records: FORMERR */
	uint64_t notimp;	  /* opcode other than QUERY: NOTIMP */
	uint64_t refused;	  /* class other than IN: REFUSED */
	uint64_t badvers;	  /* EDNS version > 0: BADVERS */
	uint64_t answered;	  /* NOERROR with answers, from the table */
	uint64_t nodata;	  /* NOERROR, no answer of that type */
	uint64_t nxdomain;	  /* unknown name in a local domain */
	uint64_t forwarded;	  /* decision: forward upstream */
	uint64_t servfail_no_upstream; /* nothing to forward to */
	uint64_t servfail_unforwardable; /* only DoH/peerapi resolvers */
	uint64_t truncated;	  /* answers did not fit: TC set */
	/* forwarder */
	uint64_t fwd_sent;	  /* queries sent upstream */
	uint64_t fwd_full;	  /* refused: too many outstanding */
	uint64_t fwd_replied;	  /* upstream replies relayed to clients */
	uint64_t fwd_drop_unmatched; /* reply with no matching query: dropped */
	uint64_t fwd_drop_garbage; /* reply that does not parse: dropped */
	uint64_t fwd_timeout;	  /* no reply in time: SERVFAIL to client */
	uint64_t fwd_retried;	  /* also sent to the next upstream */
} ns_dns_stats;

/* ---- codec ---- */

/* A parsed query: header, its one question, and its OPT record. */
typedef struct ns_dns_query {
	uint16_t id;
	uint16_t flags;
	uint16_t qtype;
	uint16_t qclass;
	uint8_t qname[NS_DNS_NAME_MAX]; /* wire form, uncompressed, as sent */
	size_t qname_len;
	/* lower-case dotted text with a trailing dot ("host.example.");
	 * bytes other than [!-~] except '.' and '\\' are written \DDD */
	char text[NS_DNS_TEXT_MAX];
	bool has_opt;
	uint16_t udp_size;	/* OPT CLASS: requestor's payload size */
	uint8_t edns_version;
	bool edns_do;
} ns_dns_query;

/*
 * Reads the (possibly compressed) name at msg[off] of the n-byte message.
 * Writes its uncompressed wire form to out (at most NS_DNS_NAME_MAX bytes),
 * its length to *outlen and, in *next, the offset just past the name where
 * it starts (past the first pointer when compressed).  Pointers must point
 * strictly backwards and at most NS_DNS_PTR_HOPS_MAX are followed, so loops
 * end; labels over 63 bytes, extended label types (0x40, 0x80) and names
 * over 255 bytes are TK_EPROTO.
 */
int ns_dns_name_read(const uint8_t *msg, size_t n, size_t off,
    uint8_t out[NS_DNS_NAME_MAX], size_t *outlen, size_t *next);

/* Wire-form name -> lower-case dotted text with trailing dot ("." for the
 * root).  cap >= NS_DNS_TEXT_MAX always suffices. */
int ns_dns_name_to_text(const uint8_t *name, size_t len, char *out,
    size_t cap);

/* Dotted text ("a.b" or "a.b.") -> wire form.  Empty labels, labels over
 * 63 bytes and names over 255 bytes are TK_EINVAL.  No escapes. */
int ns_dns_name_from_text(const char *text, uint8_t out[NS_DNS_NAME_MAX],
    size_t *outlen);

/*
 * Parses a query.  Results:
 *   0           *q filled: QR clear, opcode QUERY, exactly one question,
 *               no answer/authority records, at most one OPT
 *   TK_EAGAIN   shorter than a header: nothing to answer (drop)
 *   TK_EEXIST   QR set: a response, not a query (drop)
 *   TK_ENOTSUP  opcode not QUERY (answer NOTIMP); q->id/flags valid
 *   TK_EPROTO   malformed after the header (answer FORMERR); q->id/flags
 *               valid
 * q is scratch on failure, except as said.
 */
int ns_dns_query_parse(ns_dns_query *q, const uint8_t *p, size_t n);

/*
 * Response builder.  The answer section holds RRs for the question's name
 * (written as a compression pointer to offset 12); an OPT record is echoed
 * when the query had one.  limit is the largest message the transport may
 * carry (ns_dns_size_limit); when the answers do not fit, they are all
 * dropped and TC is set (RFC 2181 §9: no partial RRsets).
 */
typedef struct ns_dns_builder {
	uint8_t *buf;
	size_t cap;	/* min(buffer size, limit) */
	size_t len;
	uint16_t ancount;
	bool truncated;
	bool question; /* the question section was written */
	uint8_t ext_rcode; /* rcode >> 4, written into OPT */
	const ns_dns_query *q;
	size_t answers_at; /* offset of the answer section */
} ns_dns_builder;

/* Largest response for q over transport (512 without EDNS0 on UDP, the
 * requestor's payload size capped to ours with it, 65535 on TCP). */
size_t ns_dns_size_limit(const ns_dns_query *q, int transport);

/*
 * Starts a response to q in buf (cap bytes, at least NS_DNS_UDP_MAX):
 * ID, opcode, RD and CD copied, QR and RA set, AA when aa, rcode (values
 * over 15 need the OPT record: BADVERS).  with_question=false writes an
 * empty question section (FORMERR/NOTIMP to queries we could not read).
 */
int ns_dns_resp_begin(ns_dns_builder *b, uint8_t *buf, size_t cap,
    size_t limit, const ns_dns_query *q, unsigned rcode, bool aa,
    bool with_question);
/* One A (v4) or AAAA (v6) record for the question's name. */
int ns_dns_resp_add_addr(ns_dns_builder *b, const tk_ipaddr *ip,
    uint32_t ttl);
/* One PTR record for the question's name; target in wire form. */
int ns_dns_resp_add_ptr(ns_dns_builder *b, const uint8_t *target,
    size_t target_len, uint32_t ttl);
/* Writes the counts and the OPT record; *outlen = message length. */
int ns_dns_resp_finish(ns_dns_builder *b, size_t *outlen);

/*
 * A response carrying only the header and the question, with rcode (used
 * for SERVFAIL/REFUSED/NXDOMAIN and by the forwarder on timeout).
 */
int ns_dns_resp_error(const ns_dns_query *q, int transport, unsigned rcode,
    bool aa, uint8_t *out, size_t cap, size_t *outlen);

/*
 * Parses an upstream response enough to match it: header with QR set,
 * exactly one question, equal (names case-insensitively) to q's.  *id gets
 * the response ID.  TK_EPROTO when it is not such a response.
 */
int ns_dns_response_check(const uint8_t *p, size_t n, uint16_t *id,
    uint8_t qname[NS_DNS_NAME_MAX], size_t *qname_len, uint16_t *qtype,
    uint16_t *qclass);

/*
 * DNS over TCP (RFC 1035 §4.2.2, RFC 7766 §8): each message follows its
 * 2-byte length.  Finds the first whole message in the stream bytes
 * (p, n): *msg and *len (inside p) and *consumed (length prefix included).
 * TK_EAGAIN: not whole yet (read more; a message needs at most 2 + 65535
 * bytes); TK_EPROTO: a zero length (close the connection).
 */
int ns_dns_tcp_next(const uint8_t *p, size_t n, const uint8_t **msg,
    size_t *len, size_t *consumed);

/*
 * The first A or AAAA record (class IN, any owner name) in the answer
 * section of a response: 0 and *out; TK_ENOENT for an rcode other than
 * NOERROR or no such record; TK_EPROTO when it is not a well-formed
 * response.  Never reads outside (p, n).  (ns_dns_resp.c)
 */
int ns_dns_response_addr(const uint8_t *p, size_t n, tk_ipaddr *out);

/* Case-insensitive equality of two wire-form names (ASCII letters only). */
bool ns_dns_name_eq(const uint8_t *a, size_t alen, const uint8_t *b,
    size_t blen);

/* ---- MagicDNS table ---- */

typedef struct ns_dns_table ns_dns_table;
struct Tk__Bus__V1__Netmap; /* tk/bus/v1/ctrl.pb-c.h */

#define NS_DNS_FWD_MAX_UPSTREAMS 8

/* Where to forward a query the table does not answer: plain IP:port
 * resolvers only (DoH and peerapi resolvers are not forwardable yet). */
typedef struct ns_dns_upstreams {
	size_t n;
	tk_ipport up[NS_DNS_FWD_MAX_UPSTREAMS];
} ns_dns_upstreams;

enum ns_dns_action {
	NS_DNS_DROP = 0,    /* nothing to send (garbage; counted) */
	NS_DNS_REPLY = 1,   /* send out[0..outlen) back to the client */
	NS_DNS_FORWARD = 2, /* hand the query to the forwarder, to *fwd */
};

/*
 * Builds the table from a netmap (tk.bus.v1.Netmap).  Keeps no pointer into
 * nm.  Names: every node's Name (self and peers; FQDN with trailing dot)
 * and its first label as a short name, case-insensitive, with the node's
 * host addresses; DNSConfig.ExtraRecords; PTR for node addresses.  Local
 * (authoritative: unknown names get NXDOMAIN) are the routes without
 * resolvers and, when DNSConfig.Proxied (MagicDNS on), the domain of
 * self's name plus the reverse zones of 100.64.0.0/10 and
 * fd7a:115c:a1e0::/48.  Routes with resolvers are split DNS (longest
 * suffix wins); other names go to DNSConfig.Resolvers, or when there are
 * none to FallbackResolvers.  A NULL netmap gives an empty table.
 */
int ns_dns_table_new_from_netmap(const struct Tk__Bus__V1__Netmap *nm,
    ns_dns_table **out);
void ns_dns_table_free(ns_dns_table *t);

/*
 * The same table built piece by piece, for a caller that keeps the netmap
 * in its own form (applying NetmapDelta itself): an empty table, the nodes
 * (self flags the node whose domain is the tailnet's), then the DNS
 * config (NULL: none).  Tables are immutable once answering: build a new
 * one on every netmap change and swap it in.
 * add_node: TK_EINVAL when name is not a DNS name (the node is skipped);
 * addresses other than v4/v6 are ignored, at most 8 kept.
 * set_config: replaces routes, resolvers, extra records and Proxied.
 */
struct Tk__Bus__V1__DNSConfig; /* tk/bus/v1/ctrl.pb-c.h */
int ns_dns_table_new(ns_dns_table **out);
int ns_dns_table_add_node(ns_dns_table *t, const char *name,
    const tk_ipaddr *addrs, size_t n, bool self);
int ns_dns_table_set_config(ns_dns_table *t,
    const struct Tk__Bus__V1__DNSConfig *dc);

/*
 * Answers one query (p, n) received over transport, from the table.
 *   NS_DNS_REPLY:   out[0..*outlen) is the response
 *   NS_DNS_FORWARD: *fwd lists the upstreams; hand (p, n) to
 *                   ns_dns_fwd_query
 *   NS_DNS_DROP:    nothing to send
 * out must hold at least NS_DNS_UDP_MAX bytes (TK_EINVAL otherwise; the
 * only error).  st may be NULL.
 */
int ns_dns_answer(const ns_dns_table *t, const uint8_t *p, size_t n,
    int transport, uint8_t *out, size_t cap, size_t *outlen,
    ns_dns_upstreams *fwd, int *action, ns_dns_stats *st);

/* Looks a name up the way dial-by-name needs it: FQDN or short name, first
 * address of the family (TK_AF_INET/TK_AF_INET6, 0 = any, v4 first).
 * TK_ENOENT when not a tailnet name. */
int ns_dns_table_lookup(const ns_dns_table *t, const char *name, int family,
    tk_ipaddr *out);

/* ---- forwarder (sans-I/O) ---- */

/* Who asked: the caller's own handle for the client, returned with the
 * reply; the forwarder only copies it. */
typedef struct ns_dns_client {
	tk_ipport addr;
	int transport;
	uint64_t tag;
} ns_dns_client;

typedef struct ns_dns_fwd_cfg {
	const tk_clock *clock; /* NULL: system */
	const tk_rng *rng;     /* NULL: system */
	uint32_t timeout_ms;   /* 0: 5000: then SERVFAIL to the client */
	uint32_t retry_ms;     /* 0: 1000: then also ask the next upstream */
	size_t max_outstanding; /* 0: 256 */
} ns_dns_fwd_cfg;

typedef struct ns_dns_fwd ns_dns_fwd;

int ns_dns_fwd_new(const ns_dns_fwd_cfg *cfg, ns_dns_fwd **out);
void ns_dns_fwd_free(ns_dns_fwd *f);

/*
 * Forwards client query (p, n) to the first of ups: out[0..*outlen) is the
 * same query under a fresh random ID, to be sent to *upstream.  When it
 * stays unanswered for retry_ms, ns_dns_fwd_poll sends it to the next
 * upstream too (they race; the first matching reply wins).  The query is
 * copied: (p, n) is not kept.
 * TK_EAGAIN when max_outstanding queries are in flight (answer the client
 * with SERVFAIL: ns_dns_resp_error); TK_EPROTO when (p, n) is not a query;
 * TK_EINVAL when ups is empty or out too small.
 */
int ns_dns_fwd_query(ns_dns_fwd *f, const uint8_t *p, size_t n,
    const ns_dns_client *client, const ns_dns_upstreams *ups, uint8_t *out,
    size_t cap, size_t *outlen, tk_ipport *upstream, ns_dns_stats *st);

/*
 * An upstream's reply (p, n) from `from`: when it matches an outstanding
 * query (ID, upstream address, question), out[0..*outlen) is the reply
 * under the client's ID and *client says where it goes.  TK_ENOENT when it
 * matches nothing (drop; counted).
 */
int ns_dns_fwd_reply(ns_dns_fwd *f, const uint8_t *p, size_t n,
    const tk_ipport *from, uint8_t *out, size_t cap, size_t *outlen,
    ns_dns_client *client, ns_dns_stats *st);

enum ns_dns_fwd_send {
	NS_DNS_FWD_TO_CLIENT = 1,   /* out is for *client */
	NS_DNS_FWD_TO_UPSTREAM = 2, /* out is for *upstream */
};

/*
 * Timer work that is due, one message per call; call until TK_ENOENT.
 * *send says where out[0..*outlen) goes: NS_DNS_FWD_TO_UPSTREAM, the query
 * again under a fresh ID for the next upstream (*client says whose);
 * NS_DNS_FWD_TO_CLIENT, a SERVFAIL for *client whose query reached its
 * deadline (the query is forgotten).
 */
int ns_dns_fwd_poll(ns_dns_fwd *f, uint8_t *out, size_t cap, size_t *outlen,
    int *send, ns_dns_client *client, tk_ipport *upstream, ns_dns_stats *st);

/* Monotonic ns when ns_dns_fwd_poll next has work; 0 when nothing is in
 * flight. */
uint64_t ns_dns_fwd_next_deadline(const ns_dns_fwd *f);
size_t ns_dns_fwd_outstanding(const ns_dns_fwd *f);

/* ---- the pieces together: what 100.100.100.100:53 runs ---- */

/*
 * ns_dns_server: a table, a forwarder and the counters, with the sending
 * done through the caller's callbacks (still no sockets here).  The
 * netstackd core feeds it client queries (UDP datagrams; TCP messages cut
 * with ns_dns_tcp_next), upstream datagrams and timer ticks; it calls
 * send_client / send_upstream, from inside those calls only, and the
 * callbacks must not call back into the server (one thread: the loop's).
 */
typedef struct ns_dns_server_ops {
	/* A response for client c (over c->transport: add the 2-byte
	 * length on TCP).  p is borrowed for the call. */
	void (*send_client)(void *arg, const ns_dns_client *c, const uint8_t *p,
	    size_t n);
	/* A query for upstream resolver `up` over UDP. */
	void (*send_upstream)(void *arg, const tk_ipport *up, const uint8_t *p,
	    size_t n);
	void *arg;
} ns_dns_server_ops;

typedef struct ns_dns_server ns_dns_server;

int ns_dns_server_new(const ns_dns_fwd_cfg *cfg, const ns_dns_server_ops *ops,
    ns_dns_server **out);
void ns_dns_server_free(ns_dns_server *s);
/* Swaps in t (the server owns it from now, frees the previous one).
 * NULL: no table (every query SERVFAIL: no upstream). */
void ns_dns_server_set_table(ns_dns_server *s, ns_dns_table *t);
/* A client's query: answered, forwarded or dropped (all counted). */
void ns_dns_server_query(ns_dns_server *s, const ns_dns_client *c,
    const uint8_t *p, size_t n);
/* A datagram from an upstream resolver. */
void ns_dns_server_upstream(ns_dns_server *s, const tk_ipport *from,
    const uint8_t *p, size_t n);
/* Timer: call at ns_dns_server_next_deadline (monotonic ns, 0 = none). */
void ns_dns_server_tick(ns_dns_server *s);
uint64_t ns_dns_server_next_deadline(const ns_dns_server *s);
void ns_dns_server_stats(const ns_dns_server *s, ns_dns_stats *out);

#endif
