/*
 * tk/bus_topics.h: the names on tailkit's buses, in one place.  Every
 * publisher, subscriber, rpc server, caller and tool uses these names;
 * nobody writes a topic, method or bus name as a string literal.  Message
 * types are in proto/tk/bus/v1 (ctrl.proto, derp.proto, wg.proto,
 * packet.proto); "planned" means that the name is reserved and nothing
 * sends it yet.
 */
#ifndef TK_BUS_TOPICS_H
#define TK_BUS_TOPICS_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>

/* ---- topics (Envelope.topic; pub/sub, snapshots by TK_METHOD_SNAPSHOT) */

/* ctrld: snapshot Netmap, delta NetmapDelta.  Published. */
#define TK_TOPIC_NETMAP "netmap"
/* wgd: snapshot and delta a whole Keys.  Published. */
#define TK_TOPIC_KEYS "keys"
/* wgd: snapshot and delta a whole Endpoints.  Published. */
#define TK_TOPIC_ENDPOINTS "endpoints"
/* derpd (client mode): snapshot and delta a whole DerpState (home region,
 * latencies, connections).  Published; ctrld follows it (NetInfo). */
#define TK_TOPIC_DERP "derp"
/* wgd: snapshot PeerPaths with every peer, delta PeerPaths with the
 * changed peers (a direct path adopted or given up) or, after a netmap
 * change, every peer and `removed`.  Published. */
#define TK_TOPIC_PATHS "paths"

/* ---- rpc methods (Request.method on a component's req/rep socket) -------
 *
 * Every component with a publisher answers TK_METHOD_SNAPSHOT, and every
 * component answers TK_METHOD_STATUS.
 */
/* any publisher: body SnapshotRequest -> reply Envelope (KIND_SNAPSHOT) */
#define TK_METHOD_SNAPSHOT "tk.snapshot"
/* any component: body StatusRequest (optional) -> reply StatusResponse */
#define TK_METHOD_STATUS "status"
/* wgd: no body -> no body; a new node key (the "keys" topic then carries
 * it, with the previous one as old_node_key).  ctrld calls it when control
 * says the key expired. */
#define TK_METHOD_ROTATE_NODE_KEY "rotate_node_key"
/* ctrld: no body -> no body; log out (Go's TryLogout) and stay out. */
#define TK_METHOD_LOGOUT "logout"
/* ctrld: LoginRequest -> no body; log in again: with the auth key given
 * (or the one ctrld has), else interactively (the URL appears in status).
 * Clears a log-out; the next session registers. */
#define TK_METHOD_LOGIN "login"
/* ctrld: no body -> Prefs (ipn.Prefs subset: the command-line values
 * overlaid with what users edited, kept in ctrld.db). */
#define TK_METHOD_GET_PREFS "get_prefs"
/* ctrld: MaskedPrefs -> Prefs (the new prefs); applied at once (see
 * ctrl.proto Prefs).  TK_EINVAL for a field ctrld cannot honour; the
 * error text names it. */
#define TK_METHOD_EDIT_PREFS "edit_prefs"
/* wgd: derpd asks wgd to seal a DERP ClientInfo box with the node
 * private key (derp.go: frameClientInfo, NaCl box to the server key). */
#define TK_METHOD_DERP_SEAL "derp_seal"
/* wgd: derpd asks wgd to open a DERP ServerInfo box with the node
 * private key (derp.go: frameServerInfo). */
#define TK_METHOD_DERP_OPEN "derp_open"

/* wgd: PingRequest -> PingResponse (wg.proto), answered when the pong or
 * echo reply arrives, or the timeout passes (a deferred reply). */
#define TK_METHOD_PING "ping"
/* wgd: no body -> the UAPI "get" text (wg(8)'s view), private and
 * preshared keys removed. */
#define TK_METHOD_UAPI_GET "uapi_get"
/* wgd: PktTapRequest -> PktTapReply (wg.proto): summaries of the packets
 * on wgd-pkt; a call keeps the tap on for 5 s. */
#define TK_METHOD_PKT_TAP "pkt_tap"

/* ---- bus names (the last element of a bus URL: ipc://DIR/<name>,
 * inproc://<instance>/<name>) -------------------------------------------- */
#define TK_BUS_CTRLD_PUB "ctrld.pub" /* pub: ctrld's topics */
#define TK_BUS_CTRLD_RPC "ctrld.rpc" /* rep: ctrld's methods */
#define TK_BUS_WGD_PUB	 "wgd.pub"   /* pub: wgd's topics */
#define TK_BUS_WGD_RPC	 "wgd.rpc"   /* rep: wgd's methods */
#define TK_BUS_DERPD_PUB "derpd.pub" /* pub: derpd's topics (client mode) */
#define TK_BUS_DERPD_RPC "derpd.rpc" /* rep: derpd's methods */
#define TK_BUS_NETSTACKD_RPC "netstackd.rpc" /* rep: netstackd's methods */
/* pair1, wgd listens: IP packet batches (BATCH_KIND_IP) to and from
 * netstackd or the tk-tun adapter.  Published. */
#define TK_BUS_WGD_PKT "wgd-pkt"
/* pair1: WireGuard/disco datagram batches by peer node key
 * (BATCH_KIND_PEER, PacketControl) between wgd and derpd; wgd listens,
 * derpd (client mode) dials. */
#define TK_BUS_WGD_DERP "wgd-derp"

/* ---- the topic table ---------------------------------------------------- */

typedef struct tk_bus_topic_info {
	const char *name;      /* TK_TOPIC_* */
	const char *publisher; /* "ctrld", "wgd", "derpd" */
	const ProtobufCMessageDescriptor *snapshot; /* body of a snapshot */
	const ProtobufCMessageDescriptor *delta;    /* body of a delta */
	bool planned;	       /* nothing publishes it yet */
} tk_bus_topic_info;

/* Every topic above, NULL-name terminated. */
extern const tk_bus_topic_info tk_bus_topics[];

/* The topic called name, or NULL. */
const tk_bus_topic_info *tk_bus_topic_find(const char *name);

#endif
