/*
 * tk_wg: a sans-I/O WireGuard device (protocol v1, as wireguard-go and the
 * Linux kernel speak it).
 *
 * Bytes in, bytes out.  The device never touches a socket, a TUN device or
 * the system clock: the caller feeds received datagrams (tk_wg_device_recv)
 * and outbound IP packets (tk_wg_device_send), calls tk_wg_device_tick()
 * when tk_wg_device_next_deadline() passes, and gets its output through
 * callbacks: datagrams to send to a peer's endpoint, and decrypted IP
 * packets to deliver.  Clock and RNG are injected, so every timer is
 * testable.
 *
 * "Where to send" is the peer's endpoint (set by config or learned by
 * roaming), handed to send_datagram together with the peer; a path
 * selector (disco/DERP) plugs in there and may ignore the endpoint.
 *
 * Single-threaded: one device is driven by one thread.
 */
#ifndef TK_WG_H
#define TK_WG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tk/clock.h"
#include "tk/pkt.h"
#include "tk/rng.h"

#include "tk/wg_wire.h"

typedef struct tk_wg_device tk_wg_device;
typedef struct tk_wg_peer tk_wg_peer;

/* A UDP endpoint.  family 0 = none. */
typedef struct tk_wg_endpoint {
	uint8_t ep_family; /* 4, 6 or 0 */
	uint8_t ep_addr[16];
	uint16_t ep_port;  /* host order */
} tk_wg_endpoint;

/*
 * A DERP region as an endpoint: 127.3.3.40:<region id>, the address Go's
 * magicsock uses for "through DERP region N" (tailcfg.DerpMagicIP).  The
 * device treats it as any endpoint (roaming included); the embedder's
 * send_datagram routes it to the relay.
 */
#define TK_WG_DERP_MAGIC_IP4 0x7f030328u /* 127.3.3.40 */
static inline void
tk_wg_endpoint_derp(tk_wg_endpoint *ep, uint16_t region)
{
	ep->ep_family = 4;
	ep->ep_addr[0] = 127, ep->ep_addr[1] = 3, ep->ep_addr[2] = 3;
	ep->ep_addr[3] = 40;
	for (int i = 4; i < 16; i++)
		ep->ep_addr[i] = 0;
	ep->ep_port = region;
}
static inline bool
tk_wg_endpoint_is_derp(const tk_wg_endpoint *ep)
{
	return ep->ep_family == 4 && ep->ep_addr[0] == 127 &&
	    ep->ep_addr[1] == 3 && ep->ep_addr[2] == 3 && ep->ep_addr[3] == 40;
}

typedef struct tk_wg_callbacks {
	void *arg;
	/*
	 * Send one WireGuard datagram for `peer` (NULL for a cookie reply to
	 * an unknown sender) to `ep`.  The bytes are valid during the call only.
	 */
	void (*send_datagram)(void *arg, tk_wg_peer *peer,
	    const tk_wg_endpoint *ep, const uint8_t *p, size_t n);
	/*
	 * A decrypted, source-checked IP packet from `peer`.  `p` may be
	 * modified by the callee (it is the device's receive buffer).
	 */
	void (*deliver)(void *arg, tk_wg_peer *peer, uint8_t *p, size_t n);
	/*
	 * Optional inbound packet filter, called before deliver: return false
	 * to drop (counted as rx_filtered).
	 */
	bool (*filter_in)(void *arg, tk_wg_peer *peer, const uint8_t *p,
	    size_t n);
	/* Optional: a handshake completed / a session ended (for status). */
	void (*peer_event)(void *arg, tk_wg_peer *peer, int event);
} tk_wg_callbacks;

enum tk_wg_peer_event {
	TK_WG_EV_HANDSHAKE = 1, /* a new session is established */
	TK_WG_EV_KEYS_ZEROED,	/* all sessions expired and were wiped */
	TK_WG_EV_ENDPOINT,	/* the peer roamed to a new endpoint */
};

typedef struct tk_wg_device_config {
	const tk_clock *clock; /* NULL: system */
	const tk_rng *rng;     /* NULL: system */
	tk_wg_callbacks cb;
	/*
	 * Handshake messages per second above which the device is "under
	 * load" and demands cookies (mac2) before doing any DH.  0: default
	 * (1000/s).
	 */
	uint32_t under_load_per_sec;
} tk_wg_device_config;

/* Counters: every dropped packet is counted by reason. */
typedef struct tk_wg_stats {
	uint64_t rx_datagrams, tx_datagrams;
	uint64_t rx_data, tx_data;	 /* transport messages with payload */
	uint64_t rx_keepalive, tx_keepalive;
	uint64_t rx_handshake, tx_handshake; /* initiations + responses */
	uint64_t rx_cookie, tx_cookie;
	uint64_t drop_short, drop_type, drop_mac1, drop_mac2;
	uint64_t drop_ratelimit, drop_unknown_peer, drop_unknown_index;
	uint64_t drop_decrypt, drop_replay, drop_timestamp, drop_expired;
	uint64_t drop_bad_inner, drop_src_ip, drop_no_route;
	uint64_t drop_no_key, drop_staged_overflow, rx_filtered;
	uint64_t handshakes_completed;
} tk_wg_stats;

typedef struct tk_wg_peer_stats {
	uint64_t rx_bytes, tx_bytes;	/* outer datagram bytes, like wg(8) */
	uint64_t last_handshake_real_ns; /* wall clock; 0 never */
	uint32_t handshake_attempts;
} tk_wg_peer_stats;

int tk_wg_device_new(tk_wg_device **out, const tk_wg_device_config *cfg);
void tk_wg_device_free(tk_wg_device *dev);

/* Setting a new key drops every session (peers stay). */
int tk_wg_device_set_private_key(tk_wg_device *dev, const uint8_t priv[32]);
/* false if no key is set; pub gets the public key. */
bool tk_wg_device_public_key(const tk_wg_device *dev, uint8_t pub[32]);
bool tk_wg_device_private_key(const tk_wg_device *dev, uint8_t priv[32]);
void tk_wg_device_get_stats(const tk_wg_device *dev, tk_wg_stats *st);
bool tk_wg_device_under_load(tk_wg_device *dev);

/* --- peers --------------------------------------------------------------- */

/* TK_EEXIST if a peer has this key; TK_EINVAL if it is our own key. */
int tk_wg_peer_add(tk_wg_device *dev, const uint8_t pub[32],
    tk_wg_peer **out);
void tk_wg_peer_remove(tk_wg_device *dev, tk_wg_peer *peer);
tk_wg_peer *tk_wg_peer_find(const tk_wg_device *dev, const uint8_t pub[32]);
size_t tk_wg_peer_count(const tk_wg_device *dev);
/* The peer whose allowed IPs route addr (longest prefix), or NULL. */
tk_wg_peer *tk_wg_device_route(const tk_wg_device *dev, int family,
    const uint8_t *addr);
/* Iteration in insertion order: first, then next until NULL. */
tk_wg_peer *tk_wg_peer_first(const tk_wg_device *dev);
tk_wg_peer *tk_wg_peer_next(const tk_wg_peer *peer);

const uint8_t *tk_wg_peer_public_key(const tk_wg_peer *peer);
/* NULL psk clears it (all zeros, as WireGuard defines "no psk"). */
void tk_wg_peer_set_psk(tk_wg_peer *peer, const uint8_t *psk);
bool tk_wg_peer_has_psk(const tk_wg_peer *peer);
void tk_wg_peer_get_psk(const tk_wg_peer *peer, uint8_t psk[32]);
void tk_wg_peer_set_endpoint(tk_wg_peer *peer, const tk_wg_endpoint *ep);
void tk_wg_peer_get_endpoint(const tk_wg_peer *peer, tk_wg_endpoint *ep);
/* 0 disables; seconds otherwise (1..65535). */
void tk_wg_peer_set_keepalive(tk_wg_peer *peer, uint16_t seconds);
uint16_t tk_wg_peer_keepalive(const tk_wg_peer *peer);
/* Allowed IPs live in the device's table (longest prefix wins). */
int tk_wg_peer_add_allowed_ip(tk_wg_peer *peer, int family,
    const uint8_t *addr, unsigned bits);
int tk_wg_peer_remove_allowed_ip(tk_wg_peer *peer, int family,
    const uint8_t *addr, unsigned bits);
void tk_wg_peer_clear_allowed_ips(tk_wg_peer *peer);
typedef void (*tk_wg_prefix_fn)(void *arg, int family, const uint8_t *addr,
    unsigned bits);
void tk_wg_peer_allowed_ips(const tk_wg_peer *peer, tk_wg_prefix_fn fn,
    void *arg);
void tk_wg_peer_get_stats(const tk_wg_peer *peer, tk_wg_peer_stats *st);
/* Opaque pointer for the embedder. */
void tk_wg_peer_set_user(tk_wg_peer *peer, void *user);
void *tk_wg_peer_user(const tk_wg_peer *peer);
/* True while a session can carry data. */
bool tk_wg_peer_has_session(tk_wg_peer *peer);
/* Starts a handshake now (rate limited to one per REKEY_TIMEOUT). */
void tk_wg_peer_initiate(tk_wg_peer *peer);

/* --- data path ----------------------------------------------------------- */

/*
 * Encrypts an IP packet to the peer its destination routes to (allowed
 * IPs), or stages it and starts a handshake.  TK_ENOENT: no peer routes the
 * destination (counted drop_no_route); TK_EPROTO: not an IP packet.
 */
int tk_wg_device_send(tk_wg_device *dev, const uint8_t *ip, size_t n);
/*
 * Same, encrypting in place: the packet is pkt's payload, and when pkt has
 * TK_WG_DATA_HDR_LEN bytes of headroom and room behind it for the padding
 * and the tag (TK_WG_DATA_LEN(len) - TK_WG_DATA_HDR_LEN - len, at most 31
 * bytes), the datagram is built where the packet lies: the header pushed in
 * front, padding and tag put behind, and send_datagram gets pkt's bytes
 * (pkt->pk_data, pkt->pk_len then describe the datagram).  Otherwise, or
 * when the packet must wait for a handshake, it is copied as by
 * tk_wg_device_send.  pkt stays the caller's either way.
 */
int tk_wg_device_send_pkt(tk_wg_device *dev, tk_pkt *pkt);
/* Same as tk_wg_device_send, to a given peer (no route lookup). */
int tk_wg_peer_send(tk_wg_peer *peer, const uint8_t *ip, size_t n);

/*
 * One received datagram from `src`.  Decrypted packets go to deliver; any
 * reply (handshake response, cookie, keepalive) to send_datagram.  The
 * buffer may be decrypted in place.  Returns 0 when the datagram was
 * accepted, or the reason it was dropped (and counted): TK_EPROTO malformed,
 * TK_ECRYPTO failed authentication, TK_ENOENT unknown peer or index,
 * TK_EAGAIN rate-limited or answered with a cookie, TK_ESTATE replayed or
 * expired.
 */
int tk_wg_device_recv(tk_wg_device *dev, const tk_wg_endpoint *src,
    uint8_t *p, size_t n);

/* Timers: run everything due at the clock's now. */
void tk_wg_device_tick(tk_wg_device *dev);
/* Monotonic ns of the next timer, or UINT64_MAX if none. */
uint64_t tk_wg_device_next_deadline(tk_wg_device *dev);

/* --- helpers exposed for tests and tools --------------------------------- */

/* TAI64N of a wall-clock time in ns (whitened: low 24 bits of ns zeroed). */
void tk_wg_tai64n(uint8_t out[12], uint64_t real_ns);
/* Classifies a datagram by its header only: a TK_WG_MSG_* type or 0. */
int tk_wg_message_type(const uint8_t *p, size_t n);

#endif
