/*
 * DERP framing and fixed-layout payloads (derp.go, derp_client.go,
 * derpserver.go).  Length rules follow the Go code that reads each frame.
 */
#include <stdint.h>
#include <string.h>

#include "tk/derp.h"
#include "tk/endian.h"
#include "tk/err.h"

int
tk_derp_frame_next(const uint8_t *p, size_t n, uint32_t max, tk_derp_frame *f,
    size_t *used)
{
	if (n < TK_DERP_FRAME_HDR_LEN)
		return TK_EAGAIN;
	uint32_t len = tk_be32_load(p + 1);
	if (len > max)
		return TK_EMSGSIZE;
#if SIZE_MAX <= UINT32_MAX
	/* a 32-bit size_t cannot hold 5 + 4 GiB: too big there, whatever max */
	if (len > SIZE_MAX - TK_DERP_FRAME_HDR_LEN)
		return TK_EMSGSIZE;
#endif
	size_t total = TK_DERP_FRAME_HDR_LEN + (size_t)len;
	if (n < total) {
		if (used)
			*used = total;
		return TK_EAGAIN;
	}
	f->type = p[0];
	f->len = len;
	f->payload = p + TK_DERP_FRAME_HDR_LEN;
	*used = total;
	return 0;
}

void
tk_derp_frame_hdr(uint8_t out[TK_DERP_FRAME_HDR_LEN], uint8_t type,
    uint32_t len)
{
	out[0] = type;
	tk_be32_store(out + 1, len);
}

int
tk_derp_parse_server_key(const uint8_t *p, size_t n,
    uint8_t server_pub[TK_DERP_KEY_LEN])
{
	if (n < TK_DERP_SERVER_KEY_MIN || n > TK_DERP_SERVER_KEY_MAX)
		return TK_EPROTO;
	if (memcmp(p, TK_DERP_MAGIC, TK_DERP_MAGIC_LEN) != 0)
		return TK_EPROTO;
	memcpy(server_pub, p + TK_DERP_MAGIC_LEN, TK_DERP_KEY_LEN);
	return 0;
}

int
tk_derp_parse_client_info(const uint8_t *p, size_t n,
    uint8_t client_pub[TK_DERP_KEY_LEN], const uint8_t **nonce_box,
    size_t *nonce_box_len)
{
	/* derpserver.go recvClientKey: minLen = keyLen + nonceLen, and at
	 * most 256 KiB. */
	if (n < TK_DERP_CLIENT_INFO_MIN || n > TK_DERP_CLIENT_INFO_MAX)
		return TK_EPROTO;
	memcpy(client_pub, p, TK_DERP_KEY_LEN);
	*nonce_box = p + TK_DERP_KEY_LEN;
	*nonce_box_len = n - TK_DERP_KEY_LEN;
	return 0;
}

int
tk_derp_parse_packet(const uint8_t *p, size_t n, const uint8_t **key,
    const uint8_t **pkt, size_t *pktlen)
{
	if (n < TK_DERP_KEY_LEN || n - TK_DERP_KEY_LEN > TK_DERP_MAX_PACKET_SIZE)
		return TK_EPROTO;
	*key = p;
	*pkt = p + TK_DERP_KEY_LEN;
	*pktlen = n - TK_DERP_KEY_LEN;
	return 0;
}

int
tk_derp_parse_forward(const uint8_t *p, size_t n, const uint8_t **src,
    const uint8_t **dst, const uint8_t **pkt, size_t *pktlen)
{
	if (n < 2 * TK_DERP_KEY_LEN ||
	    n - 2 * TK_DERP_KEY_LEN > TK_DERP_MAX_PACKET_SIZE)
		return TK_EPROTO;
	*src = p;
	*dst = p + TK_DERP_KEY_LEN;
	*pkt = p + 2 * TK_DERP_KEY_LEN;
	*pktlen = n - 2 * TK_DERP_KEY_LEN;
	return 0;
}

int
tk_derp_parse_peer_gone(const uint8_t *p, size_t n,
    uint8_t key[TK_DERP_KEY_LEN], uint8_t *reason)
{
	if (n < TK_DERP_KEY_LEN)
		return TK_EPROTO;
	memcpy(key, p, TK_DERP_KEY_LEN);
	*reason = n > TK_DERP_KEY_LEN ? p[TK_DERP_KEY_LEN]
				      : TK_DERP_PEER_GONE_DISCONNECTED;
	return 0;
}

int
tk_derp_parse_peer_present(const uint8_t *p, size_t n,
    tk_derp_peer_present *out)
{
	/* derp_client.go recvTimeout: the key (>= 32), then ip + port when
	 * all 18 bytes are there ("Older server which didn't send the IP":
	 * 33..49 bytes are a key only, not malformed), then flags when one
	 * more byte is. */
	if (n < TK_DERP_KEY_LEN)
		return TK_EPROTO;
	memset(out, 0, sizeof(*out));
	memcpy(out->key, p, TK_DERP_KEY_LEN);
	if (n >= 50) {
		out->has_addr = true;
		memcpy(out->ip, p + 32, 16);
		out->port = tk_be16_load(p + 48);
	}
	if (n >= TK_DERP_PEER_PRESENT_LEN) {
		out->has_flags = true;
		out->flags = p[50];
	}
	return 0;
}

int
tk_derp_parse_ping(const uint8_t *p, size_t n, uint8_t data[TK_DERP_PING_LEN])
{
	if (n < TK_DERP_PING_LEN || n > TK_DERP_PING_MAX_LEN)
		return TK_EPROTO;
	memcpy(data, p, TK_DERP_PING_LEN);
	return 0;
}

int
tk_derp_parse_note_preferred(const uint8_t *p, size_t n, bool *preferred)
{
	if (n != 1)
		return TK_EPROTO;
	*preferred = p[0] != 0;
	return 0;
}

int
tk_derp_parse_close_peer(const uint8_t *p, size_t n,
    uint8_t key[TK_DERP_KEY_LEN])
{
	if (n != TK_DERP_KEY_LEN)
		return TK_EPROTO;
	memcpy(key, p, TK_DERP_KEY_LEN);
	return 0;
}

int
tk_derp_parse_restarting(const uint8_t *p, size_t n, uint32_t *reconnect_in_ms,
    uint32_t *try_for_ms)
{
	if (n < TK_DERP_RESTARTING_LEN)
		return TK_EPROTO;
	*reconnect_in_ms = tk_be32_load(p);
	*try_for_ms = tk_be32_load(p + 4);
	return 0;
}

void
tk_derp_build_server_key(uint8_t out[TK_DERP_SERVER_KEY_FRAME_LEN],
    const uint8_t server_pub[TK_DERP_KEY_LEN])
{
	tk_derp_frame_hdr(out, TK_DERP_FRAME_SERVER_KEY,
	    TK_DERP_MAGIC_LEN + TK_DERP_KEY_LEN);
	memcpy(out + TK_DERP_FRAME_HDR_LEN, TK_DERP_MAGIC, TK_DERP_MAGIC_LEN);
	memcpy(out + TK_DERP_FRAME_HDR_LEN + TK_DERP_MAGIC_LEN, server_pub,
	    TK_DERP_KEY_LEN);
}

void
tk_derp_build_packet_hdr(uint8_t out[TK_DERP_PACKET_HDR_LEN], uint8_t type,
    const uint8_t key[TK_DERP_KEY_LEN], size_t pktlen)
{
	tk_derp_frame_hdr(out, type, (uint32_t)(TK_DERP_KEY_LEN + pktlen));
	memcpy(out + TK_DERP_FRAME_HDR_LEN, key, TK_DERP_KEY_LEN);
}

void
tk_derp_build_forward_hdr(uint8_t out[TK_DERP_FORWARD_HDR_LEN],
    const uint8_t src[TK_DERP_KEY_LEN], const uint8_t dst[TK_DERP_KEY_LEN],
    size_t pktlen)
{
	tk_derp_frame_hdr(out, TK_DERP_FRAME_FORWARD_PACKET,
	    (uint32_t)(2 * TK_DERP_KEY_LEN + pktlen));
	memcpy(out + TK_DERP_FRAME_HDR_LEN, src, TK_DERP_KEY_LEN);
	memcpy(out + TK_DERP_FRAME_HDR_LEN + TK_DERP_KEY_LEN, dst,
	    TK_DERP_KEY_LEN);
}

void
tk_derp_build_peer_gone(uint8_t out[TK_DERP_PEER_GONE_FRAME_LEN],
    const uint8_t key[TK_DERP_KEY_LEN], uint8_t reason)
{
	tk_derp_frame_hdr(out, TK_DERP_FRAME_PEER_GONE, TK_DERP_KEY_LEN + 1);
	memcpy(out + TK_DERP_FRAME_HDR_LEN, key, TK_DERP_KEY_LEN);
	out[TK_DERP_FRAME_HDR_LEN + TK_DERP_KEY_LEN] = reason;
}

void
tk_derp_build_peer_present(uint8_t out[TK_DERP_PEER_PRESENT_FRAME_LEN],
    const uint8_t key[TK_DERP_KEY_LEN], const uint8_t *ip, uint16_t port,
    uint8_t flags)
{
	uint8_t *q = out + TK_DERP_FRAME_HDR_LEN;

	tk_derp_frame_hdr(out, TK_DERP_FRAME_PEER_PRESENT,
	    TK_DERP_PEER_PRESENT_LEN);
	memcpy(q, key, TK_DERP_KEY_LEN);
	if (ip)
		memcpy(q + 32, ip, 16);
	else
		memset(q + 32, 0, 16);
	tk_be16_store(q + 48, port);
	q[50] = flags;
}

void
tk_derp_build_ping(uint8_t out[TK_DERP_PING_FRAME_LEN], uint8_t type,
    const uint8_t data[TK_DERP_PING_LEN])
{
	tk_derp_frame_hdr(out, type, TK_DERP_PING_LEN);
	memcpy(out + TK_DERP_FRAME_HDR_LEN, data, TK_DERP_PING_LEN);
}

bool
tk_derp_looks_like_disco(const uint8_t *p, size_t n)
{
	return n >= TK_DISCO_MIN_WRAPPER &&
	    memcmp(p, TK_DISCO_MAGIC, TK_DISCO_MAGIC_LEN) == 0;
}

bool
tk_derp_home_should_move(uint32_t home_us, uint32_t best_us)
{
	if (best_us == 0 || home_us == 0)
		return false; /* nothing to compare: an accessible home stays */
	if (best_us >= home_us)
		return false;
	return home_us - best_us >= TK_DERP_HOME_ABS_DIFF_US &&
	    best_us <= home_us / 3 * 2;
}
