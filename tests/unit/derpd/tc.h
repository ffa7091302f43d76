/*
 * A small blocking DERP client for the derpd tests (loopback only): HTTP
 * upgrade, ServerKey, ClientInfo, ServerInfo, then frames.
 */
#ifndef DERPD_TEST_TC_H
#define DERPD_TEST_TC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gnutls/gnutls.h>

typedef struct tc {
	int fd;
	gnutls_session_t tls; /* NULL: plain TCP */
	uint8_t priv[32], pub[32];
	uint8_t server_pub[32];
	uint8_t buf[70000]; /* one frame of up to 64 KiB + key + header */
	size_t len;
	/* DERP over WebSocket: raw frames from the server, not yet decoded */
	bool ws;
	uint8_t wsr[70016];
	size_t wsr_len;
	uint64_t ws_left;
} tc;

typedef struct tc_opts {
	bool tls;	     /* HTTPS; trust from $SSL_CERT_FILE */
	bool fast_start;     /* needs server_pub set in advance */
	const uint8_t *mesh_key;
	const uint8_t *priv; /* NULL: a fresh key */
	bool skip_info;	     /* stop after the HTTP upgrade and ServerKey */
	bool ws;	     /* Upgrade: websocket, subprotocol derp */
} tc_opts;

/* Plain TCP to 127.0.0.1:port, 5 s receive timeout. */
int tc_dial(uint16_t port);
/* 0 on success; the whole handshake. */
int tc_connect(tc *c, uint16_t port, const tc_opts *o);
void tc_close(tc *c);
int tc_write(tc *c, const void *p, size_t n);
/* One raw WebSocket frame (masked as a client must, unless unmasked). */
int tc_ws_frame(tc *c, uint8_t op, const void *p, size_t n, bool unmasked);
int tc_frame(tc *c, uint8_t type, const void *p, size_t n);
int tc_send(tc *c, const uint8_t dst[32], const void *p, size_t n);
/* Next frame, skipping KeepAlive unless want_ka.  0, or -1 on EOF/timeout
 * (timeout_ms). */
int tc_recv(tc *c, int timeout_ms, uint8_t *type, uint8_t *payload,
    size_t cap, size_t *len);
/* true if the server closed the connection within timeout_ms. */
bool tc_closed(tc *c, int timeout_ms);
/* An HTTP exchange: sends req, returns the response (NUL-terminated) read
 * until close or the timeout. */
int tc_http(uint16_t port, const char *req, char *resp, size_t cap);

#endif
