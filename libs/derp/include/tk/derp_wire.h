/*
 * DERP wire constants: every frame type, size and limit in one place, named
 * as Go's derp package names them (tailscale.com v1.102.3, derp/derp.go,
 * derp/derpserver, derp/derphttp; digest: dataplane-protocols.md part A).
 */
#ifndef TK_DERP_WIRE_H
#define TK_DERP_WIRE_H

#include "tk/disco.h"

/* derp.go: magic = "DERP🔑" (8 bytes). */
#define TK_DERP_MAGIC	  "DERP\xf0\x9f\x94\x91"
#define TK_DERP_MAGIC_LEN 8

/* derp.go: ProtocolVersion; v2 = RecvPacket carries the source key. */
#define TK_DERP_PROTOCOL_VERSION 2

/* derp.go: FrameHeaderLen = 1 type byte + 4-byte big-endian length. */
#define TK_DERP_FRAME_HDR_LEN 5

#define TK_DERP_KEY_LEN	  32
#define TK_DERP_NONCE_LEN 24 /* NaCl box nonce */
#define TK_DERP_BOX_OVERHEAD 16 /* crypto_box MAC */

/* derp.go frame types. */
#define TK_DERP_FRAME_SERVER_KEY     0x01 /* magic[8] serverPub[32] (...) */
#define TK_DERP_FRAME_CLIENT_INFO    0x02 /* clientPub[32] nonce[24] box */
#define TK_DERP_FRAME_SERVER_INFO    0x03 /* nonce[24] box */
#define TK_DERP_FRAME_SEND_PACKET    0x04 /* dstPub[32] packet */
#define TK_DERP_FRAME_RECV_PACKET    0x05 /* srcPub[32] packet (v2) */
#define TK_DERP_FRAME_KEEP_ALIVE     0x06 /* empty */
#define TK_DERP_FRAME_NOTE_PREFERRED 0x07 /* 1 byte: 0x01 home */
#define TK_DERP_FRAME_PEER_GONE	     0x08 /* peerPub[32] reason[1] */
#define TK_DERP_FRAME_PEER_PRESENT   0x09 /* peerPub ip[16] port[2] flags */
#define TK_DERP_FRAME_FORWARD_PACKET 0x0a /* srcPub dstPub packet (mesh) */
#define TK_DERP_FRAME_WATCH_CONNS    0x10 /* empty (mesh) */
#define TK_DERP_FRAME_CLOSE_PEER     0x11 /* targetPub[32] (mesh) */
#define TK_DERP_FRAME_PING	     0x12 /* 8 bytes */
#define TK_DERP_FRAME_PONG	     0x13 /* the ping's 8 bytes */
#define TK_DERP_FRAME_HEALTH	     0x14 /* UTF-8 text, empty = healthy */
#define TK_DERP_FRAME_RESTARTING     0x15 /* reconnectIn_ms[4] tryFor_ms[4] */

/* derp.go PeerGoneReasonType. */
#define TK_DERP_PEER_GONE_DISCONNECTED 0x00
#define TK_DERP_PEER_GONE_NOT_HERE     0x01
/* Synthesised by Go's mesh watcher, never on the wire. */
#define TK_DERP_PEER_GONE_MESH_CONN_BROKE 0xf0

/* derp.go PeerPresentFlags. */
#define TK_DERP_PEER_PRESENT_IS_REGULAR	 0x01
#define TK_DERP_PEER_PRESENT_IS_MESH_PEER 0x02
#define TK_DERP_PEER_PRESENT_IS_PROBER	 0x04
#define TK_DERP_PEER_PRESENT_NOT_IDEAL	 0x08
/* The current Go server always writes 51 bytes: key, v4-mapped IP, port,
 * flags.  Go's client reads any >= 32: the key, then ip + port if 18 more
 * bytes are there, then flags if one more is. */
#define TK_DERP_PEER_PRESENT_LEN 51

/* derp.go MaxPacketSize: largest relayed packet. */
#define TK_DERP_MAX_PACKET_SIZE (64u << 10)
/* derpserver.go recvClientKey: ClientInfo 56..256 KiB. */
#define TK_DERP_CLIENT_INFO_MIN (TK_DERP_KEY_LEN + TK_DERP_NONCE_LEN)
#define TK_DERP_CLIENT_INFO_MAX (256u << 10)
/* derp_client.go: the client reads at most 1 MiB frames. */
#define TK_DERP_CLIENT_MAX_FRAME (1u << 20)
/* derp_client.go recvServerKey reads <= 1 KiB and needs >= 40. */
#define TK_DERP_SERVER_KEY_MIN (TK_DERP_MAGIC_LEN + TK_DERP_KEY_LEN)
#define TK_DERP_SERVER_KEY_MAX 1024
/* derpserver.go handleFramePing: 8..1000 bytes, echoes the first 8. */
#define TK_DERP_PING_LEN     8
#define TK_DERP_PING_MAX_LEN 1000
#define TK_DERP_RESTARTING_LEN 8

/* Timers (derp.go KeepAlive, derp_client.go Recv, derpserver.go accept). */
#define TK_DERP_KEEPALIVE_MS	     60000
#define TK_DERP_KEEPALIVE_JITTER_MS  5000
#define TK_DERP_CLIENT_READ_TIMEOUT_MS 120000
#define TK_DERP_HANDSHAKE_TIMEOUT_MS 10000
#define TK_DERP_WRITE_TIMEOUT_MS     2000
#define TK_DERP_MESH_WRITE_TIMEOUT_MS 30000
#define TK_DERP_MESH_RETRY_MS	     5000
/* derpserver.go defaultPerClientSendQueueDepth, and the disco queue. */
#define TK_DERP_SEND_QUEUE_DEPTH 32
/* magicsock derp.go: idle non-home regions close after 60 s, checked 15 s. */
#define TK_DERP_INACTIVE_CLEANUP_MS 60000
#define TK_DERP_CLEAN_STALE_MS	    15000
/* netcheck.go: a healthy home region is left only for one at least this
 * much faster (preferredDERPAbsoluteDiff) and faster than 2/3 of it. */
#define TK_DERP_HOME_ABS_DIFF_US    10000

/* HTTP upgrade (derphttp). */
#define TK_DERP_HTTP_PATH	    "/derp"
#define TK_DERP_UPGRADE_TOKEN	    "DERP"
#define TK_DERP_HDR_VERSION	    "Derp-Version"
#define TK_DERP_HDR_PUBLIC_KEY	    "Derp-Public-Key"
#define TK_DERP_HDR_FAST_START	    "Derp-Fast-Start"
#define TK_DERP_HDR_IDEAL_NODE	    "Ideal-Node"
#define TK_DERP_PROBE_PATH	    "/derp/probe"
#define TK_DERP_LATENCY_PATH	    "/derp/latency-check"
#define TK_DERP_GENERATE_204_PATH   "/generate_204"
#define TK_DERP_HDR_CHALLENGE	    "X-Tailscale-Challenge"
#define TK_DERP_HDR_RESPONSE	    "X-Tailscale-Response"
#define TK_DERP_CHALLENGE_MAX	    64
/* Meta certificate CN prefix for fast start (derpconst.go). */
#define TK_DERP_METACERT_CN_PREFIX "derpkey"

/* tailcfg.go DerpMagicIP: regions as the fake endpoint 127.3.3.40:<id>. */
#define TK_DERP_MAGIC_IPV4 {127, 3, 3, 40}

/* disco.go LooksLikeDiscoWrapper needs >= 62 bytes (magic, sender disco
 * key, nonce); the magic and the disco sizes live in tk/disco.h. */
#define TK_DISCO_MIN_WRAPPER TK_DISCO_HDR_LEN

#endif
