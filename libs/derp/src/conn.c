/*
 * Stream reader, the client's reading of server frames (derp_client.go
 * recvTimeout) and the upgrade response head (derphttp_client.go connect).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tk/derp.h"
#include "tk/err.h"
#include "tk/mem.h"

void
tk_derp_rx_init(tk_derp_rx *r, uint32_t max_frame)
{
	memset(r, 0, sizeof(*r));
	r->max_frame = max_frame;
}

void
tk_derp_rx_fini(tk_derp_rx *r)
{
	tk_free(r->buf);
	memset(r, 0, sizeof(*r));
}

static void
compact(tk_derp_rx *r)
{
	if (r->off == 0)
		return;
	if (r->len > r->off)
		memmove(r->buf, r->buf + r->off, r->len - r->off);
	r->len -= r->off;
	r->off = 0;
}

int
tk_derp_rx_space(tk_derp_rx *r, size_t want, uint8_t **p, size_t *avail)
{
	size_t limit = TK_DERP_FRAME_HDR_LEN + (size_t)r->max_frame;

	compact(r);
	if (want < 4096)
		want = 4096;
	if (r->cap - r->len < want && r->cap < limit) {
		size_t ncap = r->cap ? r->cap : 16384;
		while (ncap - r->len < want && ncap < limit)
			ncap *= 2;
		if (ncap > limit)
			ncap = limit;
		if (ncap < r->len + 1)
			ncap = r->len + 1;
		uint8_t *nb = tk_realloc(r->buf, ncap);
		if (!nb)
			return TK_ENOMEM;
		r->buf = nb;
		r->cap = ncap;
	}
	if (r->cap == r->len)
		return TK_EMSGSIZE; /* cannot happen with frames <= limit */
	*p = r->buf + r->len;
	*avail = r->cap - r->len;
	return 0;
}

void
tk_derp_rx_commit(tk_derp_rx *r, size_t n)
{
	r->len += n;
}

int
tk_derp_rx_put(tk_derp_rx *r, const uint8_t *p, size_t n)
{
	uint8_t *q;
	size_t avail;
	int rc;

	if (n == 0)
		return 0;
	rc = tk_derp_rx_space(r, n, &q, &avail);
	if (rc != 0 && rc != TK_EMSGSIZE)
		return rc;
	if (rc != 0 || avail < n) {
		/* More than a frame's worth at once (several whole frames not
		 * taken yet): keep it all, in one step, so that a failure
		 * appends nothing.  rx_space compacted: off is 0. */
		if (n > SIZE_MAX - r->len)
			return TK_ENOMEM;
		uint8_t *nb = tk_realloc(r->buf, r->len + n);
		if (!nb)
			return TK_ENOMEM;
		r->buf = nb;
		r->cap = r->len + n;
		q = r->buf + r->len;
	}
	memcpy(q, p, n);
	r->len += n;
	return 0;
}

int
tk_derp_rx_next(tk_derp_rx *r, tk_derp_frame *f)
{
	size_t used = 0;
	int rc = tk_derp_frame_next(r->buf + r->off, r->len - r->off,
	    r->max_frame, f, &used);
	if (rc != 0)
		return rc;
	r->off += used;
	if (r->off == r->len)
		r->off = r->len = 0; /* payload stays readable until next call */
	return 0;
}

int
tk_derp_client_decode(const tk_derp_frame *f, tk_derp_event *ev)
{
	const uint8_t *p = f->payload;
	size_t n = f->len;
	int rc = 0;

	memset(ev, 0, sizeof(*ev));
	switch (f->type) {
	case TK_DERP_FRAME_SERVER_KEY:
		/* derp_client.go recvServerKey: readFrame limit 1 KiB, >= 40
		 * bytes, the magic first. */
		if (n < TK_DERP_SERVER_KEY_MIN || n > TK_DERP_SERVER_KEY_MAX ||
		    memcmp(p, TK_DERP_MAGIC, TK_DERP_MAGIC_LEN) != 0)
			return TK_EPROTO;
		ev->type = TK_DERP_EV_SERVER_KEY;
		ev->key = p + TK_DERP_MAGIC_LEN;
		return 0;
	case TK_DERP_FRAME_SERVER_INFO:
		ev->type = TK_DERP_EV_SERVER_INFO;
		ev->data = p;
		ev->len = n;
		return n < TK_DERP_NONCE_LEN ? TK_EPROTO : 0;
	case TK_DERP_FRAME_RECV_PACKET:
		/* derp_client.go recvTimeout needs only the source key: unlike
		 * the server's SendPacket (tk_derp_parse_packet), a relayed
		 * packet is bounded by the 1 MiB frame cap alone. */
		if (n < TK_DERP_KEY_LEN)
			return TK_EPROTO;
		ev->type = TK_DERP_EV_RECV_PACKET;
		ev->key = p;
		ev->data = p + TK_DERP_KEY_LEN;
		ev->len = n - TK_DERP_KEY_LEN;
		return 0;
	case TK_DERP_FRAME_KEEP_ALIVE:
		ev->type = TK_DERP_EV_KEEPALIVE;
		return 0;
	case TK_DERP_FRAME_PEER_GONE:
		if (n < TK_DERP_KEY_LEN)
			return TK_EPROTO;
		ev->type = TK_DERP_EV_PEER_GONE;
		ev->key = p;
		ev->reason = n > TK_DERP_KEY_LEN ? p[TK_DERP_KEY_LEN]
						 : TK_DERP_PEER_GONE_DISCONNECTED;
		return 0;
	case TK_DERP_FRAME_PEER_PRESENT:
		if ((rc = tk_derp_parse_peer_present(p, n, &ev->present)) != 0)
			return rc;
		ev->type = TK_DERP_EV_PEER_PRESENT;
		ev->key = p;
		return 0;
	case TK_DERP_FRAME_PING:
	case TK_DERP_FRAME_PONG:
		/* The client needs 8 bytes and ignores the rest. */
		if (n < TK_DERP_PING_LEN)
			return TK_EPROTO;
		ev->type = f->type == TK_DERP_FRAME_PING ? TK_DERP_EV_PING
							 : TK_DERP_EV_PONG;
		ev->data = p;
		ev->len = TK_DERP_PING_LEN;
		return 0;
	case TK_DERP_FRAME_HEALTH:
		ev->type = TK_DERP_EV_HEALTH;
		ev->data = p;
		ev->len = n;
		return 0;
	case TK_DERP_FRAME_RESTARTING:
		if ((rc = tk_derp_parse_restarting(p, n, &ev->reconnect_in_ms,
			 &ev->try_for_ms)) != 0)
			return rc;
		ev->type = TK_DERP_EV_RESTARTING;
		return 0;
	default:
		ev->type = TK_DERP_EV_UNKNOWN;
		ev->data = p;
		ev->len = n;
		return 0;
	}
}

int
tk_derp_http_response(const uint8_t *p, size_t n, int *status, size_t *head_len)
{
	size_t i, end = 0;

	for (i = 3; i < n; i++) {
		if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' &&
		    p[i - 3] == '\r') {
			end = i + 1;
			break;
		}
	}
	if (!end)
		return n > TK_DERP_HTTP_HEAD_MAX ? TK_EPROTO : TK_EAGAIN;
	if (end > TK_DERP_HTTP_HEAD_MAX)
		return TK_EPROTO;
	/* "HTTP/1.x SSS"; x is a digit (Go's http.ParseHTTPVersion). */
	if (end < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[7] < '0' ||
	    p[7] > '9' || p[8] != ' ')
		return TK_EPROTO;
	int s = 0;
	for (i = 9; i < 12; i++) {
		if (p[i] < '0' || p[i] > '9')
			return TK_EPROTO;
		s = s * 10 + (p[i] - '0');
	}
	if (end > 12 && p[12] != ' ' && p[12] != '\r')
		return TK_EPROTO;
	*status = s;
	*head_len = end;
	return 0;
}
