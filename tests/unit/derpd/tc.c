#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <unistd.h>

#include "tc.h"
#include "tk/derp.h"
#include "tk/endian.h"
#include "tk/enc.h"
#include "tk/keys.h"

int
tc_dial(uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { .tv_sec = 5 };

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	int one = 1; /* as Go's net package sets on every TCP connection */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static ssize_t
io_send(tc *c, const void *p, size_t n)
{
	if (c->tls) {
		ssize_t k;
		do
			k = gnutls_record_send(c->tls, p, n);
		while (k == GNUTLS_E_AGAIN || k == GNUTLS_E_INTERRUPTED);
		return k < 0 ? -1 : k;
	}
	return send(c->fd, p, n, MSG_NOSIGNAL);
}

static bool io_pending(tc *c);
static ssize_t ws_recv(tc *c, uint8_t *p, size_t n);

static ssize_t
io_recv_raw(tc *c, void *p, size_t n)
{
	if (c->tls) {
		ssize_t k;
		/* AGAIN also follows a TLS 1.3 session ticket (Go sends them) */
		for (int i = 0; i < 100; i++) {
			k = gnutls_record_recv(c->tls, p, n);
			if (k >= 0 || gnutls_error_is_fatal((int)k))
				break;
			if (!io_pending(c)) {
				struct pollfd pf = { .fd = c->fd, .events = POLLIN };
				if (poll(&pf, 1, 5000) <= 0)
					return -1;
			}
		}
		return k < 0 ? -1 : k;
	}
	return recv(c->fd, p, n, 0);
}

static ssize_t
io_recv(tc *c, void *p, size_t n)
{
	return c->ws ? ws_recv(c, p, n) : io_recv_raw(c, p, n);
}

/* The DERP bytes inside the server's WebSocket frames. */
static ssize_t
ws_recv(tc *c, uint8_t *p, size_t n)
{
	for (;;) {
		if (c->ws_left && c->wsr_len) {
			size_t k = c->wsr_len < n ? c->wsr_len : n;
			if (k > c->ws_left)
				k = (size_t)c->ws_left;
			memcpy(p, c->wsr, k);
			memmove(c->wsr, c->wsr + k, c->wsr_len - k);
			c->wsr_len -= k;
			c->ws_left -= k;
			return (ssize_t)k;
		}
		if (!c->ws_left && c->wsr_len >= 2) {
			uint64_t len = c->wsr[1] & 0x7f;
			size_t hl = 2;
			if (len == 126 && c->wsr_len >= 4) {
				len = tk_be16_load(c->wsr + 2);
				hl = 4;
			} else if (len == 127 && c->wsr_len >= 10) {
				len = tk_be64_load(c->wsr + 2);
				hl = 10;
			} else if (len >= 126) {
				hl = 0;
			}
			uint8_t op = c->wsr[0] & 0x0f;
			if (hl && op >= 0x8) { /* control: skip whole */
				if (c->wsr_len >= hl + len) {
					if (op == 0x8)
						return 0; /* close */
					memmove(c->wsr, c->wsr + hl + len,
					    c->wsr_len - hl - (size_t)len);
					c->wsr_len -= hl + (size_t)len;
					continue;
				}
			} else if (hl) {
				memmove(c->wsr, c->wsr + hl, c->wsr_len - hl);
				c->wsr_len -= hl;
				c->ws_left = len;
				continue;
			}
		}
		ssize_t k = io_recv_raw(c, c->wsr + c->wsr_len,
		    sizeof(c->wsr) - c->wsr_len);
		if (k <= 0)
			return k;
		c->wsr_len += (size_t)k;
	}
}

static bool
io_pending(tc *c)
{
	return (c->tls && gnutls_record_check_pending(c->tls) > 0) ||
	    (c->ws && c->wsr_len > 0);
}

static int
raw_write(tc *c, const void *p, size_t n)
{
	const uint8_t *b = p;
	while (n) {
		ssize_t k = io_send(c, b, n);
		if (k <= 0)
			return -1;
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

int
tc_ws_frame(tc *c, uint8_t op, const void *p, size_t n, bool unmasked)
{
	static uint8_t f[14 + 70000];
	const uint8_t mask[4] = { 0x12, 0x34, 0x56, 0x78 };
	size_t hl = 2;
	if (n > 70000)
		return -1;
	f[0] = 0x80 | op;
	if (n < 126) {
		f[1] = (uint8_t)n;
	} else if (n <= 0xffff) {
		f[1] = 126;
		tk_be16_store(f + 2, (uint16_t)n);
		hl = 4;
	} else {
		f[1] = 127;
		tk_be64_store(f + 2, n);
		hl = 10;
	}
	if (!unmasked) {
		f[1] |= 0x80;
		memcpy(f + hl, mask, 4);
		hl += 4;
	}
	for (size_t i = 0; i < n; i++)
		f[hl + i] = ((const uint8_t *)p)[i] ^ (unmasked ? 0 : mask[i & 3]);
	return raw_write(c, f, hl + n);
}

int
tc_write(tc *c, const void *p, size_t n)
{
	const uint8_t *b = p;
	if (c->ws) { /* in messages of up to 16 KiB: boundaries mean nothing */
		while (n) {
			size_t k = n < 16384 ? n : 16384;
			if (tc_ws_frame(c, 0x2, b, k, false) != 0)
				return -1;
			b += k;
			n -= k;
		}
		return 0;
	}
	while (n) {
		ssize_t k = io_send(c, b, n);
		if (k <= 0)
			return -1;
		b += k;
		n -= (size_t)k;
	}
	return 0;
}

int
tc_frame(tc *c, uint8_t type, const void *p, size_t n)
{
	uint8_t h[5];
	tk_derp_frame_hdr(h, type, (uint32_t)n);
	if (tc_write(c, h, 5) != 0)
		return -1;
	return n ? tc_write(c, p, n) : 0;
}

int
tc_send(tc *c, const uint8_t dst[32], const void *p, size_t n)
{
	uint8_t h[TK_DERP_PACKET_HDR_LEN];
	tk_derp_build_packet_hdr(h, TK_DERP_FRAME_SEND_PACKET, dst, n);
	if (tc_write(c, h, sizeof(h)) != 0)
		return -1;
	return tc_write(c, p, n);
}

static int
fill(tc *c, size_t want, int timeout_ms)
{
	while (c->len < want) {
		struct pollfd pf = { .fd = c->fd, .events = POLLIN };
		if (!io_pending(c) && poll(&pf, 1, timeout_ms) <= 0)
			return -1;
		ssize_t k = io_recv(c, c->buf + c->len, sizeof(c->buf) - c->len);
		if (k <= 0)
			return -1;
		c->len += (size_t)k;
	}
	return 0;
}

static void
consume(tc *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

int
tc_recv(tc *c, int timeout_ms, uint8_t *type, uint8_t *payload, size_t cap,
    size_t *len)
{
	for (;;) {
		if (fill(c, 5, timeout_ms) != 0)
			return -1;
		uint32_t fl = tk_be32_load(c->buf + 1);
		if (fl > sizeof(c->buf) - 5 || fill(c, 5 + fl, timeout_ms) != 0)
			return -1;
		uint8_t t = c->buf[0];
		if (t == TK_DERP_FRAME_KEEP_ALIVE && type && *type != t) {
			consume(c, 5 + fl);
			continue;
		}
		if (type)
			*type = t;
		if (payload)
			memcpy(payload, c->buf + 5, fl < cap ? fl : cap);
		if (len)
			*len = fl;
		consume(c, 5 + fl);
		return 0;
	}
}

bool
tc_closed(tc *c, int timeout_ms)
{
	for (;;) {
		struct pollfd pf = { .fd = c->fd, .events = POLLIN };
		if (poll(&pf, 1, timeout_ms) <= 0)
			return false;
		uint8_t b[4096];
		ssize_t k = recv(c->fd, b, sizeof(b), 0);
		if (k == 0 || (k < 0 && errno == ECONNRESET))
			return true;
		if (k < 0)
			return false;
	}
}

int
tc_connect(tc *c, uint16_t port, const tc_opts *o)
{
	static const tc_opts none;
	char req[512];
	int n;

	if (o == NULL)
		o = &none;
	memset(c, 0, offsetof(tc, buf));
	c->len = 0;
	c->ws = false;
	c->wsr_len = 0;
	c->ws_left = 0;
	if (o->priv)
		memcpy(c->priv, o->priv, 32);
	else
		tk_key_generate(c->priv, NULL);
	tk_key_public(c->pub, c->priv);
	if ((c->fd = tc_dial(port)) < 0)
		return -1;
	c->tls = NULL;
	if (o->tls) {
		static gnutls_certificate_credentials_t cred;
		if (cred == NULL) {
			gnutls_certificate_allocate_credentials(&cred);
			const char *f = getenv("SSL_CERT_FILE");
			if (f)
				gnutls_certificate_set_x509_trust_file(cred, f,
				    GNUTLS_X509_FMT_PEM);
		}
		if (gnutls_init(&c->tls, GNUTLS_CLIENT) != 0)
			return -1;
		gnutls_set_default_priority(c->tls);
		gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, cred);
		gnutls_session_set_verify_cert(c->tls, "127.0.0.1", 0);
		gnutls_transport_set_int(c->tls, c->fd);
		int rc;
		do
			rc = gnutls_handshake(c->tls);
		while (rc < 0 && !gnutls_error_is_fatal(rc));
		if (rc < 0) {
			fprintf(stderr, "tc: TLS: %s\n", gnutls_strerror(rc));
			return -1;
		}
	}
	if (o->ws)
		n = snprintf(req, sizeof(req),
		    "GET /derp HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
		    "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
		    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		    "Sec-WebSocket-Protocol: derp\r\n\r\n");
	else
		n = snprintf(req, sizeof(req),
		    "GET /derp HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: DERP\r\n"
		    "Connection: Upgrade\r\n%s\r\n",
		    o->fast_start ? "Derp-Fast-Start: 1\r\n" : "");
	if (tc_write(c, req, (size_t)n) != 0)
		return -1;
	if (!o->fast_start) {
		if (fill(c, 12, 5000) != 0)
			return -1;
		/* head up to the blank line */
		for (;;) {
			uint8_t *e = memmem(c->buf, c->len, "\r\n\r\n", 4);
			if (e) {
				if (memcmp(c->buf, "HTTP/1.1 101 ", 13) != 0)
					return -1;
				/* RFC 6455 1.3's example key and answer */
				if (o->ws && !memmem(c->buf, (size_t)(e - c->buf),
				    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 50))
					return -1;
				size_t hl = (size_t)(e + 4 - c->buf);
				if (o->ws) { /* the rest is WebSocket frames */
					memcpy(c->wsr, c->buf + hl, c->len - hl);
					c->wsr_len = c->len - hl;
					c->len = 0;
					c->ws = true;
				} else {
					consume(c, hl);
				}
				break;
			}
			if (fill(c, c->len + 1, 5000) != 0)
				return -1;
		}
	}
	uint8_t t = 0, p[1024];
	size_t l;
	if (tc_recv(c, 5000, &t, p, sizeof(p), &l) != 0 ||
	    t != TK_DERP_FRAME_SERVER_KEY ||
	    tk_derp_parse_server_key(p, l, c->server_pub) != 0)
		return -1;
	if (o->skip_info)
		return 0;
	tk_derp_client_info ci = { .version = 2, .can_ack_pings = true };
	if (o->mesh_key) {
		ci.has_mesh_key = true;
		memcpy(ci.mesh_key, o->mesh_key, 32);
	}
	char js[256];
	size_t jl, bl;
	uint8_t f[32 + 512];
	tk_derp_client_info_json(&ci, js, sizeof(js), &jl);
	memcpy(f, c->pub, 32);
	tk_derp_box_seal(f + 32, sizeof(f) - 32, &bl, (const uint8_t *)js, jl,
	    c->server_pub, c->priv, NULL);
	if (tc_frame(c, TK_DERP_FRAME_CLIENT_INFO, f, 32 + bl) != 0)
		return -1;
	t = 0;
	if (tc_recv(c, 5000, &t, p, sizeof(p), &l) != 0 ||
	    t != TK_DERP_FRAME_SERVER_INFO)
		return -1;
	uint8_t msg[256];
	size_t ml;
	tk_derp_server_info si;
	if (tk_derp_box_open(msg, sizeof(msg), &ml, p, l, c->server_pub,
	    c->priv) != 0 || tk_derp_server_info_parse(msg, ml, &si) != 0 ||
	    si.version != 2)
		return -1;
	return 0;
}

void
tc_close(tc *c)
{
	if (c->tls) {
		gnutls_deinit(c->tls);
		c->tls = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

int
tc_http(uint16_t port, const char *req, char *resp, size_t cap)
{
	int fd = tc_dial(port);
	size_t n = 0;

	if (fd < 0)
		return -1;
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
		close(fd);
		return -1;
	}
	for (;;) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		if (poll(&pf, 1, 1500) <= 0)
			break;
		ssize_t k = recv(fd, resp + n, cap - 1 - n, 0);
		if (k <= 0)
			break;
		n += (size_t)k;
		if (n == cap - 1)
			break;
	}
	resp[n] = '\0';
	close(fd);
	return 0;
}
