/*
 * tk_disco: Tailscale's disco messages (disco/disco.go at v1.102.3), sans-I/O.
 *
 * The outer packet, the same over UDP and inside DERP:
 *   magic "TS\xf0\x9f\x92\xac" (6) | sender disco public key (32) |
 *   nonce (24) | Poly1305 tag (16) | XSalsa20 ciphertext of the message
 * sealed with NaCl box under the precomputed key of (my disco private,
 * peer disco public).  The message inside: type (1) | version (1) | body.
 *
 * Parsing follows Go's rules (shared/reference/dataplane-protocols.md B.2):
 * Ping, Pong and the Bind* types ignore the version and trailing bytes;
 * CallMeMaybe, CallMeMaybeVia and Allocate* with a non-zero version are an
 * empty message; a CallMeMaybe endpoint list that is not a multiple of 18
 * bytes is empty; a relay endpoint list must be (else TK_EPROTO).  Unknown
 * types and short bodies are TK_EPROTO, which callers count and drop.
 * Endpoint lists point into the caller's plaintext (no copies).
 */
#ifndef TK_DISCO_H
#define TK_DISCO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TK_DISCO_MAGIC	    "TS\xf0\x9f\x92\xac"
#define TK_DISCO_MAGIC_LEN  6
#define TK_DISCO_KEY_LEN    32
#define TK_DISCO_NONCE_LEN  24
#define TK_DISCO_TAG_LEN    16
/* magic | sender key | nonce: what precedes the box */
#define TK_DISCO_HDR_LEN    (TK_DISCO_MAGIC_LEN + TK_DISCO_KEY_LEN + TK_DISCO_NONCE_LEN)
/* header and tag: a sealed packet is TK_DISCO_OVERHEAD + the message */
#define TK_DISCO_OVERHEAD   (TK_DISCO_HDR_LEN + TK_DISCO_TAG_LEN)
#define TK_DISCO_TXID_LEN   12
#define TK_DISCO_EP_LEN	    18 /* IPv6 or IPv4-mapped address (16) | port (2) */
/* an unpadded Ping with the node key: 2 + 12 + 32 bytes (Go's discoPingSize
 * is that sealed: 124 bytes on the wire) */
#define TK_DISCO_PING_LEN   46
#define TK_DISCO_PONG_LEN   32
#define TK_DISCO_RELAY_COMMON_LEN 72

enum tk_disco_type {
	TK_DISCO_PING = 0x01,
	TK_DISCO_PONG = 0x02,
	TK_DISCO_CALL_ME_MAYBE = 0x03,
	TK_DISCO_BIND_UDP_RELAY_ENDPOINT = 0x04,
	TK_DISCO_BIND_UDP_RELAY_ENDPOINT_CHALLENGE = 0x05,
	TK_DISCO_BIND_UDP_RELAY_ENDPOINT_ANSWER = 0x06,
	TK_DISCO_CALL_ME_MAYBE_VIA = 0x07,
	TK_DISCO_ALLOCATE_UDP_RELAY_ENDPOINT_REQUEST = 0x08,
	TK_DISCO_ALLOCATE_UDP_RELAY_ENDPOINT_RESPONSE = 0x09,
};

/* An endpoint: 16 address bytes (IPv4 as ::ffff:a.b.c.d) and a port. */
typedef struct tk_disco_ep {
	uint8_t ip[16];
	uint16_t port;
} tk_disco_ep;

/* A UDP relay server's endpoint (CallMeMaybeVia, Allocate response). */
typedef struct tk_disco_relay_ep {
	uint8_t server_disco[TK_DISCO_KEY_LEN];
	uint8_t client_disco[2][TK_DISCO_KEY_LEN];
	uint64_t lamport_id;
	uint32_t vni;
	uint64_t bind_lifetime_ns, steady_state_lifetime_ns; /* Go Durations */
	const uint8_t *eps; /* neps (>= 1) records of TK_DISCO_EP_LEN */
	size_t neps;
} tk_disco_relay_ep;

typedef struct tk_disco_msg {
	uint8_t type, version;
	/* Ping and Pong */
	uint8_t txid[TK_DISCO_TXID_LEN];
	/* Ping: the sender's node key (absent from clients <= 1.16) and the
	 * number of padding bytes after it (path MTU probes) */
	bool has_node_key;
	uint8_t node_key[TK_DISCO_KEY_LEN];
	size_t padding;
	/* Pong: where the ping came from */
	tk_disco_ep src;
	/* CallMeMaybe: neps records of TK_DISCO_EP_LEN (tk_disco_ep_at) */
	const uint8_t *eps;
	size_t neps;
	/* Bind*: VNI, generation, the other client's disco key, challenge */
	uint32_t vni, generation;
	uint8_t remote_disco[TK_DISCO_KEY_LEN], challenge[32];
	/* Allocate request: the two clients (and generation above) */
	uint8_t client_disco[2][TK_DISCO_KEY_LEN];
	/* CallMeMaybeVia, Allocate response */
	tk_disco_relay_ep relay;
} tk_disco_msg;

/* UDP rule (magicsock): >= 38 bytes starting with the magic. */
bool tk_disco_looks_like(const uint8_t *p, size_t n);
/* The sender's disco key of a packet that looks like disco. */
static inline const uint8_t *
tk_disco_sender(const uint8_t *pkt)
{
	return pkt + TK_DISCO_MAGIC_LEN;
}

/* 0 and *m, or TK_EPROTO (unknown type, short body, bad relay list). */
int tk_disco_parse(const uint8_t *msg, size_t n, tk_disco_msg *m);
/* Record i of an endpoint list (eps from tk_disco_parse). */
void tk_disco_ep_at(const uint8_t *eps, size_t i, tk_disco_ep *out);
/* From a 4- or 16-byte address and port. */
void tk_disco_ep_set(tk_disco_ep *ep, const uint8_t *ip, size_t iplen,
    uint16_t port);

/* Message writers: the length written, or 0 if cap is too small. */
size_t tk_disco_write_ping(uint8_t *out, size_t cap,
    const uint8_t txid[TK_DISCO_TXID_LEN],
    const uint8_t node_key[TK_DISCO_KEY_LEN] /* NULL: none */, size_t padding);
size_t tk_disco_write_pong(uint8_t *out, size_t cap,
    const uint8_t txid[TK_DISCO_TXID_LEN], const tk_disco_ep *src);
size_t tk_disco_write_call_me_maybe(uint8_t *out, size_t cap,
    const tk_disco_ep *eps, size_t n);

/*
 * Seal msg for the peer whose precomputed box key is shared: out gets
 * TK_DISCO_OVERHEAD + n bytes (a fresh random nonce).  0, TK_EMSGSIZE.
 */
int tk_disco_seal(uint8_t *out, size_t cap, size_t *out_len,
    const uint8_t shared[32], const uint8_t sender_pub[TK_DISCO_KEY_LEN],
    const uint8_t *msg, size_t n);
/* Open a sealed packet (the sender's key already used to pick shared):
 * the message into msg (n - TK_DISCO_OVERHEAD bytes).  0, TK_EPROTO (not
 * disco, short), TK_EMSGSIZE (cap), TK_ECRYPTO (forged or not for us). */
int tk_disco_open(const uint8_t *pkt, size_t n, const uint8_t shared[32],
    uint8_t *msg, size_t cap, size_t *msg_len);

#endif
