/*
 * Fuzz libs/derp as a DERP client reads a server: the input is the byte
 * stream after the upgrade request, an HTTP response head and then frames.
 * The frames go through tk_derp_rx in chunks (sizes drawn from the input's
 * length, alternating rx_put and rx_space/commit) and through
 * tk_derp_frame_next directly over the input; both must yield the same
 * frames.  Each frame goes through tk_derp_client_decode and every payload
 * parser.
 * Invariants: no crash, over-read or leak; every pointer a decoder returns
 * lies inside the frame it was given, which lies inside the input (or the
 * reader's buffer); lengths and return codes are the documented ones.
 */
#include <stdlib.h>
#include <string.h>

#include "tk/derp.h"
#include "tk/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                  \
	do {                      \
		if (!(x))         \
			abort();  \
	} while (0)

static int
inside(const uint8_t *x, size_t xn, const uint8_t *p, size_t n)
{
	return x >= p && xn <= n && x <= p + (n - xn);
}

/* Decodes f, whose payload lies in base[0..n), and checks every pointer. */
static void
decode(const tk_derp_frame *f, const uint8_t *base, size_t n)
{
	const uint8_t *p = f->payload;
	size_t len = f->len;
	tk_derp_event ev;
	int rc;

	CHECK(inside(p, len, base, n));
	rc = tk_derp_client_decode(f, &ev);
	CHECK(rc == 0 || rc == TK_EPROTO);
	if (rc == 0) {
		CHECK(ev.type >= TK_DERP_EV_SERVER_KEY &&
		    ev.type <= TK_DERP_EV_UNKNOWN);
		if (ev.key)
			CHECK(inside(ev.key, TK_DERP_KEY_LEN, p, len));
		if (ev.data)
			CHECK(inside(ev.data, ev.len, p, len));
		if (ev.type == TK_DERP_EV_PING || ev.type == TK_DERP_EV_PONG)
			CHECK(ev.len == TK_DERP_PING_LEN);
		if (ev.type == TK_DERP_EV_PEER_PRESENT)
			CHECK(ev.present.has_addr == (len >= 50) &&
			    ev.present.has_flags == (len >= 51));
	}

	/* every payload parser, whatever the type */
	uint8_t key[32], d8[8], reason;
	const uint8_t *k, *k2, *pkt;
	size_t pl;
	bool pref;
	uint32_t a, b;
	tk_derp_peer_present pp;

	if (tk_derp_parse_server_key(p, len, key) == 0)
		CHECK(len >= 40 && len <= 1024 &&
		    memcmp(key, p + 8, 32) == 0);
	if (tk_derp_parse_client_info(p, len, key, &k, &pl) == 0)
		CHECK(inside(k, pl, p, len) && pl + 32 == len);
	if (tk_derp_parse_packet(p, len, &k, &pkt, &pl) == 0)
		CHECK(k == p && inside(pkt, pl, p, len) && pl <= 65536);
	if (tk_derp_parse_forward(p, len, &k, &k2, &pkt, &pl) == 0)
		CHECK(k == p && k2 == p + 32 && inside(pkt, pl, p, len) &&
		    pl <= 65536);
	if (tk_derp_parse_peer_gone(p, len, key, &reason) == 0)
		CHECK(len >= 32);
	if (tk_derp_parse_peer_present(p, len, &pp) == 0)
		CHECK(len >= 32 && memcmp(pp.key, p, 32) == 0);
	if (tk_derp_parse_ping(p, len, d8) == 0)
		CHECK(len >= 8 && len <= 1000);
	if (tk_derp_parse_note_preferred(p, len, &pref) == 0)
		CHECK(len == 1);
	if (tk_derp_parse_close_peer(p, len, key) == 0)
		CHECK(len == 32);
	if (tk_derp_parse_restarting(p, len, &a, &b) == 0)
		CHECK(len >= 8);
	(void)tk_derp_looks_like_disco(p, len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int status = -1;
	size_t head = 0;
	int rc = tk_derp_http_response(data, size, &status, &head);

	CHECK(rc == 0 || rc == TK_EAGAIN || rc == TK_EPROTO);
	if (rc != 0)
		return 0;
	CHECK(head >= 4 && head <= size && head <= TK_DERP_HTTP_HEAD_MAX);
	CHECK(memcmp(data + head - 4, "\r\n\r\n", 4) == 0);
	CHECK(status >= 0 && status <= 999);

	const uint8_t *s = data + head;
	size_t n = size - head, off = 0, nwalk = 0;
	tk_derp_frame f;
	size_t used;
	int wrc;

	/* the direct walk over the input */
	while ((wrc = tk_derp_frame_next(s + off, n - off,
		    TK_DERP_CLIENT_MAX_FRAME, &f, &used)) == 0) {
		CHECK(used == TK_DERP_FRAME_HDR_LEN + (size_t)f.len &&
		    used <= n - off);
		decode(&f, data, size);
		off += used;
		nwalk++;
	}
	CHECK(wrc == TK_EAGAIN || wrc == TK_EMSGSIZE);

	/* the same through the stream reader, in chunks */
	tk_derp_rx r;
	size_t i = 0, woff = 0, nrx = 0;
	uint32_t lcg = (uint32_t)size * 2654435761u + 1;
	int rrc = TK_EAGAIN;

	tk_derp_rx_init(&r, TK_DERP_CLIENT_MAX_FRAME);
	while (i < n && rrc == TK_EAGAIN) {
		lcg = lcg * 1103515245u + 12345u;
		size_t k = 1 + (lcg >> 16) % ((lcg & 1) ? 7 : 4096);
		if (k > n - i)
			k = n - i;
		if (lcg & 2) {
			CHECK(tk_derp_rx_put(&r, s + i, k) == 0);
		} else {
			uint8_t *q;
			size_t avail;
			CHECK(tk_derp_rx_space(&r, k, &q, &avail) == 0);
			CHECK(avail > 0);
			if (k > avail)
				k = avail;
			memcpy(q, s + i, k);
			tk_derp_rx_commit(&r, k);
		}
		i += k;
		tk_derp_frame g;
		while ((rrc = tk_derp_rx_next(&r, &f)) == 0) {
			size_t u;
			CHECK(tk_derp_frame_next(s + woff, n - woff,
				  TK_DERP_CLIENT_MAX_FRAME, &g, &u) == 0);
			CHECK(f.type == g.type && f.len == g.len &&
			    memcmp(f.payload, g.payload, f.len) == 0);
			CHECK(inside(f.payload, f.len, r.buf, r.cap));
			decode(&f, r.buf, r.cap);
			woff += u;
			nrx++;
		}
		CHECK(rrc == TK_EAGAIN || rrc == TK_EMSGSIZE);
	}
	CHECK(nrx == nwalk);
	CHECK(rrc == TK_EAGAIN || rrc == wrc);
	CHECK(r.cap <= TK_DERP_FRAME_HDR_LEN + TK_DERP_CLIENT_MAX_FRAME);
	tk_derp_rx_fini(&r);
	return 0;
}
