/*
 * The packet filter wgd enforces on decrypted packets: tailcfg FilterRule
 * semantics, decided the way Tailscale's wgengine/filter decides them
 * (filter.go RunIn/RunOut/pre, match.go, tailcfg.go MatchesFromFilterRules,
 * net/packet/packet.go Decode, net/flowtrack; tailscale v1.102.3).
 *
 * Sans-I/O: packets in, verdicts out.  No allocation per packet; rules and
 * local addresses are compiled into per-family arrays when set.  Not
 * thread-safe: one filter belongs to one thread (wgd's event loop); even
 * tk_wg_filter_in writes (the flow table's LRU order, the counters).
 *
 * Inbound (tk_wg_filter_in), in this order:
 *   - 0 bytes: accepted (a WireGuard keepalive; filter.go pre).
 *   - 1..19 bytes: TK_WG_DROP_TOO_SHORT.
 *   - not IPv4/IPv6, truncated (IP length > bytes given), bad header, a
 *     transport header that does not fit, IP protocol 0 or 255, a later
 *     fragment at an offset < 80 bytes: TK_WG_DROP_MALFORMED.  Bytes past
 *     the IP total length (WireGuard's zero padding) are ignored.
 *   - destination multicast (224/4, ff00::/8): TK_WG_DROP_MULTICAST;
 *     link-local unicast (169.254/16 except 169.254.169.254, fe80::/10):
 *     TK_WG_DROP_LINK_LOCAL.  IPv4-mapped IPv6 destinations count as IPv4.
 *   - a later fragment (offset != 0): accepted.
 *   - rules never set: TK_WG_DROP_NO_FILTER (Go starts with
 *     filter.NewAllowNone, which drops here because its local set is empty).
 *   - destination not in the local set: TK_WG_DROP_NOT_LOCAL.
 *   - ICMP (1 in IPv4, 58 in IPv6): echo replies and errors are accepted;
 *     other ICMP is accepted if any rule of the family has the source and
 *     the destination IP (any protocol, any port), or if the source has
 *     any capability a rule names.
 *   - TCP without SYN, or with SYN+ACK: accepted (return traffic).  A SYN
 *     must match a rule (protocol, source, destination IP and port).
 *   - UDP and SCTP: accepted if an outbound packet recorded the reversed
 *     5-tuple (the last TK_WG_FILTER_FLOWS flows, LRU), else must match a
 *     rule.
 *   - TSMP (99): accepted.
 *   - any other protocol: accepted if a rule lists it, contains the source
 *     (capabilities do not count) and has a destination with ports 0-65535
 *     containing the destination IP.
 *   Otherwise TK_WG_DROP_NO_RULE.
 *
 * Outbound (tk_wg_filter_out): the same first five checks (Go's RunOut runs
 * pre() too, so outbound multicast, link-local and malformed packets are
 * dropped), then every UDP/SCTP packet records its flow; everything else is
 * accepted.
 */
#ifndef TK_WG_FILTER_H
#define TK_WG_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tk/rng.h"

/* filter.go: lruMax */
#define TK_WG_FILTER_FLOWS 512

/* IP protocol numbers the filter treats specially (IANA; TSMP: Tailscale). */
#define TK_WG_PROTO_ICMP4 1
#define TK_WG_PROTO_TCP	  6
#define TK_WG_PROTO_UDP	  17
#define TK_WG_PROTO_ICMP6 58
#define TK_WG_PROTO_TSMP  99
#define TK_WG_PROTO_SCTP  132

typedef struct tk_wg_filter tk_wg_filter;

/* An IPv4 or IPv6 prefix; address in network order, 4 or 16 bytes used. */
typedef struct tk_wg_prefix {
	uint8_t pf_family; /* 4 or 6 */
	uint8_t pf_addr[16];
	uint8_t pf_bits;   /* 0..32 or 0..128 */
} tk_wg_prefix;

/* An inclusive address range, first <= last, one family. */
typedef struct tk_wg_range {
	uint8_t rg_family; /* 4 or 6 */
	uint8_t rg_first[16];
	uint8_t rg_last[16];
} tk_wg_range;

typedef enum tk_wg_ipmatch_kind {
	TK_WG_IPM_ANY,	  /* "*": 0.0.0.0/0 and ::/0 */
	TK_WG_IPM_PREFIX, /* "10.0.0.0/8", "100.64.0.1" (= /32) */
	TK_WG_IPM_RANGE,  /* "10.0.0.1-10.0.0.9" */
	TK_WG_IPM_CAP	  /* "cap:<name>": sources only */
} tk_wg_ipmatch_kind;

/* One FilterRule.SrcIPs entry, or the IP of one DstPorts entry. */
typedef struct tk_wg_ipmatch {
	tk_wg_ipmatch_kind im_kind;
	tk_wg_prefix im_prefix; /* TK_WG_IPM_PREFIX; host bits must be zero */
	tk_wg_range im_range;	/* TK_WG_IPM_RANGE */
	const char *im_cap;	/* TK_WG_IPM_CAP; "" matches nothing */
} tk_wg_ipmatch;

/* One FilterRule.DstPorts entry: IP match + inclusive port range. */
typedef struct tk_wg_portrange {
	tk_wg_ipmatch pr_ip; /* not TK_WG_IPM_CAP */
	uint16_t pr_first;   /* "*" is 0..65535 */
	uint16_t pr_last;    /* first > last matches no port */
} tk_wg_portrange;

/*
 * One FilterRule.  r_protos is FilterRule.IPProto as the bus carries it
 * (repeated uint32): empty means TCP, UDP, ICMPv4 and ICMPv6 (tailcfg.go
 * defaultProtos); numbers above 255 are ignored, so a list of only those
 * matches no protocol (the rule then still admits ICMP by its addresses,
 * as matchIPsOnly does).  CapGrant is not a packet filter concern and has
 * no field here.
 */
typedef struct tk_wg_rule {
	const tk_wg_ipmatch *r_src;
	size_t r_nsrc;
	const tk_wg_portrange *r_dst;
	size_t r_ndst;
	const uint32_t *r_protos;
	size_t r_nprotos;
} tk_wg_rule;

typedef enum tk_wg_verdict {
	TK_WG_ACCEPT = 0,
	TK_WG_DROP_TOO_SHORT,  /* 1..19 bytes */
	TK_WG_DROP_MALFORMED,  /* Go: "unknown proto" (a Decode failure) */
	TK_WG_DROP_MULTICAST,
	TK_WG_DROP_LINK_LOCAL,
	TK_WG_DROP_NO_FILTER,  /* rules never set */
	TK_WG_DROP_NOT_LOCAL,  /* Go: "destination not allowed" */
	TK_WG_DROP_NO_RULE,    /* Go: "no rules matched", "unknown-protocol-N" */
	TK_WG_VERDICT_COUNT
} tk_wg_verdict;

/* Why an inbound packet was accepted (Go's "why" strings in brackets). */
typedef enum tk_wg_accept_why {
	TK_WG_WHY_KEEPALIVE,	 /* empty packet */
	TK_WG_WHY_FRAGMENT,	 /* "fragment" */
	TK_WG_WHY_ICMP_RESPONSE, /* "icmp response ok" */
	TK_WG_WHY_ICMP_RULE,	 /* "icmp ok" */
	TK_WG_WHY_TCP_NON_SYN,	 /* "tcp non-syn" */
	TK_WG_WHY_TCP_RULE,	 /* "tcp ok" */
	TK_WG_WHY_FLOW,		 /* "cached": reply to an outbound UDP/SCTP flow */
	TK_WG_WHY_UDP_RULE,	 /* "ok": UDP or SCTP matched a rule */
	TK_WG_WHY_TSMP,		 /* "tsmp ok" */
	TK_WG_WHY_OTHER_PROTO,	 /* "other-portless ok" */
	TK_WG_WHY_COUNT
} tk_wg_accept_why;

typedef struct tk_wg_filter_stats {
	uint64_t fs_in[TK_WG_VERDICT_COUNT];	  /* tk_wg_filter_in verdicts */
	uint64_t fs_out[TK_WG_VERDICT_COUNT];	  /* tk_wg_filter_out verdicts */
	uint64_t fs_accept_why[TK_WG_WHY_COUNT]; /* fs_in[TK_WG_ACCEPT] split */
	uint64_t fs_flow_evictions;		  /* oldest flow pushed out */
	uint32_t fs_flows;			  /* flows tracked now */
	uint32_t fs_rules4, fs_rules6;		  /* compiled rules per family */
} tk_wg_filter_stats;

/*
 * rng seeds the flow table's hash (NULL: the system source), so a peer
 * cannot aim its tuples at one bucket.  The filter starts with no rules
 * (everything but keepalives and later fragments dropped) and no local
 * addresses.
 */
int tk_wg_filter_new(tk_wg_filter **out, const tk_rng *rng);
void tk_wg_filter_free(tk_wg_filter *f);

/*
 * Replaces the rules (copied; the caller's arrays and cap strings are not
 * kept).  n == 0 installs an empty rule set: every new inbound flow is then
 * dropped, while TCP non-SYN, UDP replies, ICMP responses and TSMP still
 * pass.  Flow state survives (Go builds the new filter with shareStateWith).
 * TK_EINVAL for a bad entry (unknown kind or family, bits too long, host
 * bits set in a rule prefix, range first > last or of mixed family, a NULL
 * cap, a cap as destination, a NULL array with a non-zero count), TK_ENOMEM;
 * on error the previous rules stay and tk_wg_filter_error says what was
 * wrong.
 */
int tk_wg_filter_set_rules(tk_wg_filter *f, const tk_wg_rule *rules,
    size_t n);

/*
 * Replaces the set of local prefixes (the node's own addresses and the
 * routes it serves); inbound packets to anything else are dropped.  Host
 * bits are ignored (netipx.IPSetBuilder.AddPrefix).  TK_EINVAL for a bad
 * family or length, TK_ENOMEM; on error the previous set stays.
 */
int tk_wg_filter_set_local(tk_wg_filter *f, const tk_wg_prefix *local,
    size_t n);

/*
 * Answers "cap:<name>" sources: does the node whose address is src (4 or
 * 16 bytes) have node capability cap?  Without a callback caps match
 * nothing.  Called on the packet path: keep it fast.
 */
typedef bool (*tk_wg_filter_cap_fn)(void *arg, int family, const uint8_t *src,
    const char *cap);
void tk_wg_filter_set_cap_cb(tk_wg_filter *f, tk_wg_filter_cap_fn has_cap,
    void *arg);

/* A decrypted packet from a peer: TK_WG_ACCEPT or why it must be dropped. */
tk_wg_verdict tk_wg_filter_in(tk_wg_filter *f, const uint8_t *pkt, size_t n);
/*
 * The same for a packet from a jailed peer (tailcfg.Node.IsJailed): the
 * filter as if its rule set were empty, i.e. shields up for that peer
 * (net/tstun wrap.go jailedFilter, a filter.NewShieldsUpFilter with the
 * same local set).  The flow table is shared, so replies to this node's
 * own UDP flows, TCP non-SYN, ICMP responses and TSMP still pass; a new
 * connection never does.  Rules never set: TK_WG_DROP_NO_FILTER.
 */
tk_wg_verdict tk_wg_filter_in_shields_up(tk_wg_filter *f, const uint8_t *pkt,
    size_t n);
/* A packet about to be sent to a peer; records UDP/SCTP flows. */
tk_wg_verdict tk_wg_filter_out(tk_wg_filter *f, const uint8_t *pkt, size_t n);

/* Forgets every recorded flow. */
void tk_wg_filter_flush_flows(tk_wg_filter *f);

void tk_wg_filter_stats_get(const tk_wg_filter *f, tk_wg_filter_stats *out);
/* Why the last set_rules/set_local call failed ("" if it did not). */
const char *tk_wg_filter_error(const tk_wg_filter *f);

/* Short stable names for status output: "accept", "too_short", ... */
const char *tk_wg_verdict_name(tk_wg_verdict v);
const char *tk_wg_accept_why_name(tk_wg_accept_why w);

/*
 * Parses one FilterRule.SrcIPs string or DstPorts IP (tailcfg.go
 * parseIPSet): "*", an address, a CIDR prefix without host bits, an
 * inclusive range "a-b" of one family, or "cap:<name>".  For a cap,
 * out->im_cap points into s.  TK_EINVAL if s is none of these; Go then
 * skips that entry and keeps the rest of the rule.
 */
int tk_wg_ipmatch_parse(tk_wg_ipmatch *out, const char *s);
/*
 * The same for s[0..n), which need not be NUL-terminated (a JSON string
 * as ctrld's decoder holds it).  A NUL byte in an address form is refused;
 * a cap's name is s[4..n) and may hold any bytes, so out->im_cap is
 * NUL-terminated only if s is.  This is tailkit's one parseIPSet: ctrld
 * encodes its result onto the bus, wgd's tools and tests build rules with
 * it.
 */
int tk_wg_ipmatch_parse_n(tk_wg_ipmatch *out, const char *s, size_t n);

#endif
