/*
 * ctrld's map state: the netmap across a map stream.  Pure (no I/O, clock
 * injected): MapResponse JSON in (already de-framed and decompressed), the
 * control bus's tk.bus.v1.Netmap snapshot and tk.bus.v1.NetmapDelta out.
 *
 * Semantics are Go's (tailscale.com v1.102.3, control/controlclient/map.go
 * and direct.go; control-protocol.md §7-§11), applied here so that what is
 * on the bus is the resulting state, never raw patches:
 *   - KeepAlive messages change nothing in the netmap (info only).
 *   - The first non-keep-alive message of a stream must carry Node.
 *   - Node (self) and every peer are normalised (map.go upgradeNode):
 *     legacy DERP "127.3.3.40:N" -> home_derp when HomeDERP is 0,
 *     AllowedIPs null -> Addresses ([] stays empty), UnsignedPeerAPIOnly
 *     -> AllowedIPs = Addresses; self's legacy Capabilities are folded
 *     into its CapMap (peers' are not, as in Go); capabilities on the bus
 *     = Capabilities + CapMap keys, sorted; computed_name as
 *     Node.InitDisplayNames computes it (MagicDNS suffix of self's Name).
 *   - Peers non-empty replaces the peer set and nothing else in the message
 *     touches peers; otherwise PeersRemoved, PeersChanged, PeerSeenChange,
 *     OnlineChange, PeersChangedPatch, in that order.  PeersChanged entries
 *     for peers this stream already knows become patches when only
 *     patchable fields differ (map.go patchifyPeersChanged, with its
 *     quirks: Online/LastSeen kept when the new record leaves them out, a
 *     zero HomeDERP/Cap keeps the old one), and disco-key patches that
 *     would move an offline peer's LastSeen backwards are dropped
 *     (removeUnwantedDiscoUpdates*).  PeerSeenChange true sets LastSeen
 *     to the injected clock's now.
 *   - DERPMap: Regions null keeps the previous regions (and
 *     omitDefaultRegions), HomeParams/RegionScore null keep the previous
 *     scores, null regions are dropped.
 *   - PacketFilter = chunk "base"; PacketFilters: value replaces a chunk,
 *     null deletes it, "*": null clears all first; the filter is the chunks
 *     concatenated in name order.  Absent = unchanged, [] = deny all (bus:
 *     PacketFilter present, received, no rules).  A rule with SrcBits or
 *     DstPorts[].Bits makes Go's filter parse fail: deny all.  Filter IP
 *     strings Go's parseIPSet refuses are skipped, as Go skips them.
 *   - DNSConfig replaces; Domain "" = unchanged; Health null = unchanged,
 *     [] = healthy; UserProfiles upsert by ID; CollectServices null =
 *     unchanged.
 *
 * Streams: ctrldi_map_stream_reset() starts a new stream.  Its state starts
 * empty like Go's new mapSession (peers, DERP merge base, filter chunks),
 * but the published netmap stays until the new stream replaces it: the
 * first message's peers replace all peers (the delta removes the rest);
 * a DERP map / filter / DNS config / domain / health the new stream has
 * not sent yet stays published.  User profiles are kept across streams
 * (the delta can only upsert them).
 *
 * Deltas carry what changed, as whole values: self, peers_changed (whole
 * records after every rule, sorted by id), peers_removed, derp_map,
 * packet_filter, dns_config, domain, health present only when they
 * changed; user_profiles only those new or different.  peers_patched is
 * never used.  NetmapDelta has no field for collect_services or the
 * control time: those are snapshot-only (see ctrldi_map_collect_services).
 *
 * Go's decoder (encoding/json v1) is followed: null = absent (but
 * "Hostinfo": null is a valid empty Hostinfo, as HostinfoView's
 * UnmarshalJSON makes it), field names matched exactly, then
 * case-insensitively, unknown fields ignored, integers only as integer
 * literals in range, keys/prefixes/addresses/times strict, a wrong type
 * anywhere refuses the whole message.  Deviations, all on input no server
 * sends: duplicate object keys keep the last value whole (Go merges
 * objects/maps into the earlier one); only ASCII letters fold (Go also
 * folds U+017F and U+212A); Hostinfo is type-checked only in the fields
 * the bus carries; invalid UTF-8 becomes U+FFFD as in Go, and so does NUL
 * (Go keeps it; protobuf-c strings cannot); null elements in Peers,
 * PeersChanged, PeersChangedPatch (Go panics) and in address lists are
 * refused; node IDs must be positive, int32 bus fields (region IDs,
 * HomeDERP, Cap, ports) in range, IPProto numbers outside 0..2^32-1 become
 * 2^32-1 (ignored like Go's out-of-range ones); IPv6 zones are refused.
 * A filter string Go's parseIPSet refuses is dropped from its rule, as Go
 * drops it (not an error).
 *
 * Not thread-safe: one map belongs to ctrld's event loop.
 */
#ifndef CTRLD_MAPSTATE_H
#define CTRLD_MAPSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tk/buf.h"
#include "tk/bus/fields.h"
#include "tk/clock.h"
#include "tk/netaddr.h"
#include "dialplan.h"

/*
 * Limits on one MapResponse (TK_EPROTO beyond).  Sized for a 100,000-peer
 * tailnet, which Go's client handles: ~1 KB and ~80 JSON values per peer
 * as the hosted service sends them, so ~100 MB and ~8 M values; the caps
 * leave 2.5x on bytes and 3x on values.  They bound what a server can make
 * ctrld hold while parsing one message: the text plus 8 bytes per value
 * (the JSON tape), at most 256 MiB + 192 MiB; a Peers array's text and
 * tape are released as its peers are frozen (ctrldi_map_apply_owned).
 */
#define CTRLDI_MAP_MAX_BYTES  (256u << 20)
#define CTRLDI_MAP_MAX_DEPTH  64	  /* tailcfg nests < 10 deep */
#define CTRLDI_MAP_MAX_VALUES (24u << 20) /* JSON values */
/* direct.go sleepAsRequested: maxSleep */
#define CTRLDI_MAP_MAX_SLEEP_SECONDS 300.0

typedef struct ctrldi_map ctrldi_map;

/* tailcfg.PingRequest (control-protocol.md §7.4). */
typedef struct ctrldi_ping {
	char *url;	     /* URL, never empty */
	bool url_is_noise;   /* URLIsNoise */
	bool log;	     /* Log */
	char *types;	     /* Types: "", "c2n" or "disco,TSMP,..." */
	bool has_ip;	     /* IP given */
	tk_ipaddr ip;	     /* IP */
	uint8_t *payload;    /* Payload (base64-decoded), may be NULL */
	size_t payload_len;
} ctrldi_ping;

/*
 * The parts of a MapResponse that are not netmap state but that ctrld must
 * act on.  Owned strings: release with ctrldi_map_info_fini().
 */
typedef struct ctrldi_map_info {
	bool keepalive;		/* KeepAlive: nothing else was applied */
	/* PopBrowserURL, only when it differs from the last one of this
	 * stream (direct.go dedups per session); else NULL. */
	char *pop_browser_url;
	/* PingRequest, only when its URL is non-empty and differs from the
	 * last one answered (direct.go isUniquePingRequest, across streams). */
	bool has_ping;
	ctrldi_ping ping;
	bool has_control_time;	/* ControlTime present and non-zero */
	int64_t control_time_unix_ms;
	/* Debug, on non-keep-alive messages only (Go reads it there). */
	bool has_debug;
	double sleep_seconds;	/* SleepSeconds, capped at 300 s, >= 0 */
	bool disable_log_tail;	/* DisableLogTail */
	bool has_exit;		/* Exit given */
	int exit_code;		/* Exit */
	bool has_seq;		/* Seq given (session resume bookkeeping) */
	int64_t seq;
	/* ControlDialPlan given (direct.go stores it; n 0: back to DNS) */
	bool has_dial_plan;
	ctrldi_dial_plan dial_plan;
} ctrldi_map_info;

void ctrldi_map_info_fini(ctrldi_map_info *info);

int ctrldi_map_new(ctrldi_map **out);
void ctrldi_map_free(ctrldi_map *m);
/* Wall clock for PeerSeenChange (LastSeen = now).  NULL: the system's. */
void ctrldi_map_set_clock(ctrldi_map *m, const tk_clock *clock);

/*
 * Applies one MapResponse (JSON text p[0..n)).  On 0: *changed tells
 * whether the netmap changed; if it did, a packed tk.bus.v1.NetmapDelta
 * with exactly the changes was appended to delta_out; info (may be NULL)
 * is overwritten with the non-netmap parts.  On error the map, delta_out
 * and info are unchanged: TK_EPROTO for malformed or hostile input (bad
 * JSON, wrong types, bad keys/prefixes/addresses, absurd sizes or IDs, a
 * first message without Node), TK_ENOMEM; err (may be NULL) says what and
 * where ("Peers[3].Addresses[1]: ...").
 */
int ctrldi_map_apply(ctrldi_map *m, const char *p, size_t n,
    tk_buf *delta_out, bool *changed, ctrldi_map_info *info, char *err,
    size_t errlen);
/*
 * The same, taking p (tk_malloc'd): it is freed as soon as the message is
 * decoded, before the netmap is built from it, whatever the outcome.  A
 * 100,000-peer netmap's ~100 MB of text is then never alive together with
 * its frozen records and packed delta.  Same results, byte for byte.
 */
int ctrldi_map_apply_owned(ctrldi_map *m, char *p, size_t n,
    tk_buf *delta_out, bool *changed, ctrldi_map_info *info, char *err,
    size_t errlen);

/* The whole current netmap, packed tk.bus.v1.Netmap, appended to out. */
int ctrldi_map_snapshot(const ctrldi_map *m, tk_buf *out);

/*
 * Replaces the state with a packed Netmap (ctrld's cache at start-up) and
 * starts a new stream.  TK_EPROTO if p does not unpack, or peers are not
 * sorted by positive unique ids, or a value is out of the bus's domain; the
 * map is then unchanged.  A snapshot restored from ctrldi_map_snapshot()
 * snapshots to the same bytes.
 */
int ctrldi_map_restore(ctrldi_map *m, const uint8_t *p, size_t n);

/*
 * Peers whose KeyExpiry has passed are expired locally, as Go's
 * ipnlocal/expiry.go flagExpiredPeers does: Expired set, endpoints and
 * HomeDERP cleared.  "Now" is the local clock corrected by the last
 * ControlTime when the two differ by more than a minute (onControlTime).
 * ctrldi_map_apply does this to every record it publishes; this does it
 * as time passes.  On 0: *changed and, if so, the NetmapDelta appended to
 * delta_out; *next_ms = local wall time (Unix ms) of the next peer or self
 * KeyExpiry still ahead, 0 for none.  TK_ENOMEM leaves the map unchanged.
 */
int ctrldi_map_expire(ctrldi_map *m, tk_buf *delta_out, bool *changed,
    int64_t *next_ms);
/* The clock ctrldi_map_expire uses (Unix ms). */
int64_t ctrldi_map_control_now_ms(const ctrldi_map *m);
/* What ctrld's state derives from the self node. */
typedef struct ctrldi_self {
	uint8_t key[32];	 /* Key */
	bool expired;		 /* Expired (the server says so) */
	bool key_expired;	 /* KeyExpiry passed by the local clock
				  * (direct.go: "Old key expired") */
	bool machine_authorized; /* MachineAuthorized */
} ctrldi_self;
/* false while there is no decoded self node (none, or restored from the
 * cache and not yet confirmed by a stream). */
bool ctrldi_map_self(const ctrldi_map *m, ctrldi_self *out);

/* A new map stream starts (see above). */
void ctrldi_map_stream_reset(ctrldi_map *m);

bool ctrldi_map_has_self(const ctrldi_map *m);
/* MapResponse.CollectServices as last set: -1 never, 0 false, 1 true. */
int ctrldi_map_collect_services(const ctrldi_map *m);
size_t ctrldi_map_peer_count(const ctrldi_map *m);

/*
 * Applies a packed NetmapDelta to a packed Netmap the way a subscriber
 * must (peers upserted/removed and kept sorted by id, whole values
 * replaced, user profiles upserted by id) and appends the packed result to
 * out.  The reference semantics of a delta; tests compare it with
 * ctrldi_map_snapshot().  TK_EPROTO if either does not unpack.
 */
int ctrldi_netmap_apply_delta(const uint8_t *snap, size_t snap_len,
    const uint8_t *delta, size_t delta_len, tk_buf *out);

/* ---------------------------------------------------------------------
 * Internal to mapstate.c, tailcfg_decode.c, node_diff.c, pbwrite.c and
 * arena.c.
 * ------------------------------------------------------------------ */

/* Bump allocator for one apply; everything goes at once. */
typedef struct ctrldi_arena {
	struct ctrldi_arena_chunk *head;
	size_t next_size;
} ctrldi_arena;

void ctrldi_arena_init(ctrldi_arena *a);
void ctrldi_arena_fini(ctrldi_arena *a);
/* Everything goes, the newest chunk stays for reuse. */
void ctrldi_arena_reset(ctrldi_arena *a);
void *ctrldi_arena_alloc(ctrldi_arena *a, size_t n); /* 8-aligned; NULL */

/*
 * Field numbers for the hand-written protobuf encodings, by name from the
 * generated tk/bus/fields.h (MESSAGE_FIELD: F_STR(NODE_HOSTNAME) is
 * tk.bus.v1.Node.hostname).  Each checks at compile time that the field
 * has the type its writer encodes; no field number is written by hand.
 */
#define F_I32(F)  TK_FIELD_T(F, INT32)
#define F_I64(F)  TK_FIELD_T(F, INT64)
#define F_UINT(F) TK_FIELD_IF(F, TK_T_##F == TK_PBT_UINT32 || \
				 TK_T_##F == TK_PBT_UINT64)
#define F_BOOL(F)  TK_FIELD_T(F, BOOL)
#define F_DBL(F)   TK_FIELD_T(F, DOUBLE)
#define F_STR(F)   TK_FIELD_T(F, STRING)
#define F_BYTES(F) TK_FIELD_T(F, BYTES)
#define F_MSG(F)   TK_FIELD_T(F, MESSAGE)

/* Growable output for protobuf encodings (sticky failure). */
typedef struct ctrldi_pbw {
	uint8_t *p;
	size_t len, cap;
	int err;
} ctrldi_pbw;

void ctrldi_pbw_fini(ctrldi_pbw *w);

/* A byte string, not NUL-terminated; UTF-8 without NUL when text. */
typedef struct ctrldi_str {
	const char *p;
	uint32_t n;
} ctrldi_str;

typedef struct ctrldi_capent {
	ctrldi_str name;
	ctrldi_str *vals; /* raw JSON values */
	uint32_t nvals;
} ctrldi_capent;

typedef struct ctrldi_time {
	int64_t sec; /* Unix seconds (floor) */
	int32_t nsec;
	bool zero;   /* Go's zero time */
} ctrldi_time;

/* ctrldi_node.flags */
#define CTRLDI_N_ONLINE_KNOWN	0x0001u
#define CTRLDI_N_ONLINE		0x0002u
#define CTRLDI_N_LAST_SEEN	0x0004u /* LastSeen non-nil */
#define CTRLDI_N_MACHINE_AUTH	0x0008u
#define CTRLDI_N_EXPIRED	0x0010u
#define CTRLDI_N_UNSIGNED	0x0020u
#define CTRLDI_N_WG_ONLY	0x0040u
#define CTRLDI_N_JAILED		0x0080u
#define CTRLDI_N_HOSTINFO	0x0100u /* Hostinfo non-nil */
#define CTRLDI_N_EP_NONNIL	0x0200u /* Endpoints non-nil (even []) */
#define CTRLDI_N_KEYSIG_NONNIL	0x0400u
#define CTRLDI_N_MASQ4		0x0800u /* SelfNodeV4Masq... non-nil */
#define CTRLDI_N_MASQ6		0x1000u
#define CTRLDI_N_OPAQUE		0x2000u /* restored: only id and pb valid */

/*
 * A node (self or peer) after normalisation.  Decoded nodes live in the
 * apply's arena; frozen nodes (ctrldi_node_freeze) are one allocation with
 * every array and string inside and pb = the packed tk.bus.v1.Node.
 */
typedef struct ctrldi_node {
	int64_t id, user, sharer;
	ctrldi_time key_expiry, created, last_seen;
	int32_t home_derp, cap;
	uint16_t peerapi4, peerapi6;
	uint32_t flags;
	uint8_t key[32], machine[32], disco[32];
	tk_ipaddr masq4, masq6; /* family 0: Go's zero netip.Addr */
	uint64_t hostinfo_hash, exit_dns_hash; /* patchify equality */
	ctrldi_str stable_id, name, computed_name, hostname, os, keysig;
	tk_ipprefix *addrs, *allowed, *primary;
	uint32_t naddrs, nallowed, nprimary;
	tk_ipport *eps;
	uint32_t neps;
	ctrldi_str *tags, *caps; /* caps: legacy Capabilities */
	uint32_t ntags, ncaps;
	ctrldi_capent *capmap;	 /* sorted by name, unique */
	uint32_t ncapmap;
	const uint8_t *pb;
	uint32_t pblen;
	/* frozen while decoding a message's Peers: index + 1 in its
	 * ctrldi_mapmsg.pre (the message owns it until taken); else 0 */
	uint32_t pre;
} ctrldi_node;

/* ctrldi_patch.set: which tailcfg.PeerChange fields are non-nil. */
#define CTRLDI_P_CAPMAP	    0x01u
#define CTRLDI_P_EPS	    0x02u
#define CTRLDI_P_KEY	    0x04u
#define CTRLDI_P_KEYSIG	    0x08u
#define CTRLDI_P_DISCO	    0x10u
#define CTRLDI_P_ONLINE	    0x20u
#define CTRLDI_P_LAST_SEEN  0x40u
#define CTRLDI_P_KEY_EXPIRY 0x80u

typedef struct ctrldi_patch {
	int64_t id;
	uint32_t set;
	int32_t derp_region, cap; /* applied when non-zero */
	ctrldi_capent *capmap;
	uint32_t ncapmap;
	tk_ipport *eps;
	uint32_t neps;
	uint8_t key[32], disco[32];
	ctrldi_str keysig;
	bool online;
	ctrldi_time last_seen, key_expiry;
} ctrldi_patch;

/* A piece of ctrldi_mapmsg.pb (offsets: the buffer may move). */
typedef struct ctrldi_piece {
	uint32_t off, len;
} ctrldi_piece;

typedef struct ctrldi_keyed {
	int64_t key;
	ctrldi_piece pb;
} ctrldi_keyed;

typedef struct ctrldi_idbool {
	int64_t id;
	bool v;
} ctrldi_idbool;

/* One packet filter chunk: packed PacketFilter.rules entries. */
typedef struct ctrldi_chunk {
	ctrldi_str name;
	bool present; /* false: null (delete) */
	bool bits;    /* a rule has SrcBits/Bits: Go refuses the filter */
	ctrldi_piece pb;
} ctrldi_chunk;

/* A decoded MapResponse. */
typedef struct ctrldi_mapmsg {
	ctrldi_arena arena;
	ctrldi_pbw pb; /* encodings the pieces point into */

	bool keepalive;
	ctrldi_str pop_url;		/* n == 0: none */
	bool has_ping;
	ctrldi_str ping_url, ping_types;
	bool ping_noise, ping_log, ping_has_ip;
	tk_ipaddr ping_ip;
	uint8_t *ping_payload;
	size_t ping_payload_len;
	bool has_control_time;
	int64_t control_time_ms;
	bool has_debug, debug_disable_log_tail, debug_has_exit;
	double debug_sleep;
	int debug_exit;
	bool has_seq;
	int64_t seq;
	bool has_dial_plan;
	ctrldi_dial_plan dial_plan;

	ctrldi_node *self;
	/* Peers are frozen as they are decoded (no decoded copy of a full
	 * netmap is kept): pre[i] owns peers[i]'s frozen record until the
	 * apply takes it (NULL); ctrldi_mapmsg_fini frees the rest */
	ctrldi_node **peers, **changed, **pre;
	uint32_t npeers, nchanged, npre;
	int64_t *removed;
	uint32_t nremoved;
	ctrldi_patch *patches;
	uint32_t npatches;
	ctrldi_idbool *seen, *online;
	uint32_t nseen, nonline;

	bool has_derp, derp_has_regions, derp_omit, derp_has_scores;
	ctrldi_keyed *regions, *scores; /* sorted by key, unique */
	uint32_t nregions, nscores;

	bool has_pf;	       /* PacketFilter non-nil: chunk "base" */
	ctrldi_chunk base;
	bool has_pfs, pfs_clear; /* PacketFilters; "*": null */
	ctrldi_chunk *chunks;	 /* sorted by name, unique, no "*" */
	uint32_t nchunks;

	bool has_dns;
	ctrldi_piece dns;
	ctrldi_str domain;	/* n == 0: unchanged */
	int collect_services;	/* -1 null/absent */
	bool has_health;
	ctrldi_piece health;	/* packed StringList */
	ctrldi_keyed *profiles; /* in message order */
	uint32_t nprofiles;
} ctrldi_mapmsg;

/*
 * Decodes p[0..n) into msg (initialised here; ctrldi_mapmsg_fini always).
 * owned: NULL, or the tk_malloc'd block p is in, which is freed here once
 * decoded, whatever the outcome (msg then points into its own arena
 * only).  last_self_name: the previous self Name, for computed names when
 * the message has no Node.  TK_EPROTO with err, or TK_ENOMEM.
 */
int ctrldi_mapmsg_decode(ctrldi_mapmsg *msg, const char *p, size_t n,
    char *owned, ctrldi_str last_self_name, char *err, size_t errlen);
void ctrldi_mapmsg_fini(ctrldi_mapmsg *msg);

/*
 * Encodes n (scratch: reused output buffer) and compares the encoding with
 * same's (may be NULL): *identical tells.  When identical and same is a
 * full record, *out = NULL (keep same); otherwise *out is a new frozen
 * node (free with ctrldi_node_free).
 */
int ctrldi_node_freeze(const ctrldi_node *n, ctrldi_pbw *scratch,
    const ctrldi_node *same, ctrldi_node **out, bool *identical);
/* A frozen node that carries only its id and packed bytes. */
int ctrldi_node_opaque(int64_t id, const uint8_t *pb, size_t n,
    ctrldi_node **out);
void ctrldi_node_free(ctrldi_node *n);
/* Patchable-field diff (map.go peerChangeDiff): false if a field that
 * cannot be patched differs; else true and *pc filled, *any whether any
 * field differed at all. */
bool ctrldi_node_diff(const ctrldi_node *was, const ctrldi_node *n,
    ctrldi_patch *pc, bool *any);
/* Arena copy of was with pc applied (map.go updatePeersStateFromResponse). */
ctrldi_node *ctrldi_node_patch(ctrldi_arena *a, const ctrldi_node *was,
    const ctrldi_patch *pc);
/* Whether n is a record msg froze while decoding and still owns. */
static inline bool
ctrldi_mapmsg_owns(const struct ctrldi_mapmsg *msg, const ctrldi_node *n)
{
	return n->pre != 0 && n->pre <= msg->npre && msg->pre[n->pre - 1] == n;
}
/* Arena shallow copy, to be modified and frozen. */
ctrldi_node *ctrldi_node_copy(ctrldi_arena *a, const ctrldi_node *was);
/* Go's time.Time.After. */
bool ctrldi_time_after(const ctrldi_time *a, const ctrldi_time *b);

#endif
