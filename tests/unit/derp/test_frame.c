/*
 * libs/derp framing: tk_derp_frame_next, the payload parsers, the builders,
 * tk_derp_client_decode (a server frame as Go's client reads it), the
 * stream reader and the upgrade response head.
 *
 * Frame examples: dataplane-protocols.md A.5 ("Ready-made frame examples",
 * from derp/client_test.go TestClientRecv and derp_test.go
 * TestReadFrameHeader).  Length rules: derp_client.go recvTimeout,
 * recvServerKey; derpserver.go recvClientKey, recvPacket, handleFrame*.
 *
 * Every input is copied into a heap block of exactly its length, so an
 * over-read is an ASan error in build-asan.
 */
#include <stdlib.h>
#include <string.h>

#include "tk/core.h"
#include "tk/derp.h"
#include "tk/mem.h"
#include "tk_test.h"

void register_derp_frame(void);

/* A heap copy of exactly n bytes (ASan flags any read past it). */
static uint8_t *
exact(const void *p, size_t n)
{
	uint8_t *q = malloc(n); /* glibc: a unique block even for 0 */

	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	if (n)
		memcpy(q, p, n);
	return q;
}

/* A heap block of exactly n bytes filled with a pattern.  (noinline: gcc
 * -O3 warns about the loop on a constant 0 it peeled.) */
__attribute__((noinline)) static uint8_t *
pattern(size_t n)
{
	uint8_t *q = malloc(n);

	CU_ASSERT_PTR_NOT_NULL_FATAL(q);
	for (size_t i = 0; i < n; i++)
		q[i] = (uint8_t)(i * 7 + 1);
	return q;
}

static bool
inside(const uint8_t *x, size_t xn, const uint8_t *p, size_t n)
{
	return x >= p && x + xn <= p + n;
}

/* --- ready-made frames ------------------------------------------------------ */

static const struct example {
	const char *name;
	const char *hex;
	uint8_t type;
	uint32_t len;
} examples[] = {
	{ "KeepAlive", "0600000000", TK_DERP_FRAME_KEEP_ALIVE, 0 },
	{ "WatchConns", "1000000000", TK_DERP_FRAME_WATCH_CONNS, 0 },
	{ "NotePreferred", "070000000101", TK_DERP_FRAME_NOTE_PREFERRED, 1 },
	{ "Ping", "12000000080102030405060708", TK_DERP_FRAME_PING, 8 },
	{ "Pong", "13000000080102030405060708", TK_DERP_FRAME_PONG, 8 },
	{ "Restarting", "15000000080000000100000002",
	    TK_DERP_FRAME_RESTARTING, 8 },
	{ "Health", "1400000003424144", TK_DERP_FRAME_HEALTH, 3 },
	{ "Health empty", "1400000000", TK_DERP_FRAME_HEALTH, 0 },
};

static size_t
example_bytes(const struct example *e, uint8_t *buf, size_t cap)
{
	return tk_test_unhex(buf, cap, e->hex);
}

static void
test_examples_frame(void)
{
	for (size_t i = 0; i < TK_ARRAY_LEN(examples); i++) {
		const struct example *e = &examples[i];
		uint8_t buf[64];
		size_t n = example_bytes(e, buf, sizeof(buf));
		tk_derp_frame f;
		size_t used = 0;

		/* Exactly the frame, then the frame followed by another. */
		for (int extra = 0; extra < 2; extra++) {
			uint8_t *q = exact(buf, n + (size_t)extra);
			memset(&f, 0, sizeof(f));
			CU_ASSERT_EQUAL(tk_derp_frame_next(q, n + (size_t)extra,
					    TK_DERP_CLIENT_MAX_FRAME, &f, &used), 0);
			CU_ASSERT_EQUAL(f.type, e->type);
			CU_ASSERT_EQUAL(f.len, e->len);
			CU_ASSERT_PTR_EQUAL(f.payload, q + TK_DERP_FRAME_HDR_LEN);
			CU_ASSERT_EQUAL(used, n);
			free(q);
		}
	}
}

static void
test_examples_decode(void)
{
	uint8_t buf[64];
	tk_derp_frame f;
	tk_derp_event ev;
	size_t used, n;
	bool pref = false;
	uint8_t data[8];
	uint32_t a = 0, b = 0;
	static const uint8_t one_to_eight[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

	/* KeepAlive */
	n = example_bytes(&examples[0], buf, sizeof(buf));
	CU_ASSERT_EQUAL_FATAL(tk_derp_frame_next(buf, n, 1 << 20, &f, &used), 0);
	CU_ASSERT_EQUAL(tk_derp_client_decode(&f, &ev), 0);
	CU_ASSERT_EQUAL(ev.type, TK_DERP_EV_KEEPALIVE);
	/* WatchConns: a client frame, skipped by a client */
	n = example_bytes(&examples[1], buf, sizeof(buf));
	CU_ASSERT_EQUAL_FATAL(tk_derp_frame_next(buf, n, 1 << 20, &f, &used), 0);
	CU_ASSERT_EQUAL(tk_derp_client_decode(&f, &ev), 0);
	CU_ASSERT_EQUAL(ev.type, TK_DERP_EV_UNKNOWN);
	/* NotePreferred(home) */
	n = example_bytes(&examples[2], buf, sizeof(buf));
	CU_ASSERT_EQUAL_FATAL(tk_derp_frame_next(buf, n, 1 << 20, &f, &used), 0);
	CU_ASSERT_EQUAL(tk_derp_parse_note_preferred(f.payload, f.len, &pref), 0);
	CU_ASSERT_TRUE(pref);
	/* Ping 01..08: the server echoes it, the client answers it */
	n = example_bytes(&examples[3], buf, sizeof(buf));
	CU_ASSERT_EQUAL_FATAL(tk_derp_frame_next(buf, n, 1 << 20, &f, &used), 0);
	CU_ASSERT_EQUAL(tk_derp_parse_ping(f.payload, f.len, data), 0);
	TK_ASSERT_MEM_EQ(data, one_to_eight, 8);
	CU_ASSERT_EQUAL(tk_derp_client_decode(&f, &ev), 0);
	CU_ASSERT_EQUAL(ev.type, TK_DERP_EV_PING);
	CU_ASSERT_EQUAL(ev.len, 8);
	CU_ASSERT_PTR_EQUAL(ev.data, f.payload);
	/* Pong */
	n = example_bytes(&examples[4], buf, sizeof(buf));
	CU_ASSERT_EQUAL_FATAL(tk_derp_frame_next(buf, n, 1 << 20, &f, &used), 0);
	CU_ASSERT_EQUAL(tk_derp_client_decode(&f, &ev), 0);
	CU_ASSERT_EQUAL(ev.type, TK_DERP_EV_PONG);
	TK_ASSERT_MEM_EQ(ev.data, one_to_eight, 8);
	/* Restarting(1 ms, 2 ms) */
	n = example_bytes(&examples[5], buf, sizeof(buf));
	CU_ASSERT_EQUAL_FATAL(tk_derp_frame_next(buf, n, 1 << 20, &f, &used), 0);
	CU_ASSERT_EQUAL(tk_derp_parse_restarting(f.payload, f.len, &a, &b), 0);
	CU_ASSERT_EQUAL(a, 1);
	CU_ASSERT_EQUAL(b, 2);
	CU_ASSERT_EQUAL(tk_derp_client_decode(&f, &ev), 0);
	CU_ASSERT_EQUAL(ev.type, TK_DERP_EV_RESTARTING);
	CU_ASSERT_EQUAL(ev.reconnect_in_ms, 1);
	CU_ASSERT_EQUAL(ev.try_for_ms, 2);
	/* Health "BAD", then healthy again */
	n = example_bytes(&examples[6], buf, sizeof(buf));
	CU_ASSERT_EQUAL_FATAL(tk_derp_frame_next(buf, n, 1 << 20, &f, &used), 0);
	CU_ASSERT_EQUAL(tk_derp_client_decode(&f, &ev), 0);
	CU_ASSERT_EQUAL(ev.type, TK_DERP_EV_HEALTH);
	CU_ASSERT_EQUAL_FATAL(ev.len, 3);
	TK_ASSERT_MEM_EQ(ev.data, "BAD", 3);
	n = example_bytes(&examples[7], buf, sizeof(buf));
	CU_ASSERT_EQUAL_FATAL(tk_derp_frame_next(buf, n, 1 << 20, &f, &used), 0);
	CU_ASSERT_EQUAL(tk_derp_client_decode(&f, &ev), 0);
	CU_ASSERT_EQUAL(ev.type, TK_DERP_EV_HEALTH);
	CU_ASSERT_EQUAL(ev.len, 0);
}

/* Every proper prefix of every frame: TK_EAGAIN, and once the header is
 * there the total the frame needs; the payload decoders on every proper
 * prefix of the payload: 0 or TK_EPROTO, never a read past it. */
static void
test_examples_truncated(void)
{
	for (size_t i = 0; i < TK_ARRAY_LEN(examples); i++) {
		const struct example *e = &examples[i];
		uint8_t buf[64];
		size_t n = example_bytes(e, buf, sizeof(buf));

		for (size_t k = 0; k < n; k++) {
			uint8_t *q = exact(buf, k);
			tk_derp_frame f;
			size_t used = 777;

			CU_ASSERT_EQUAL(tk_derp_frame_next(q, k, 1 << 20, &f, &used),
			    TK_EAGAIN);
			CU_ASSERT_EQUAL(used, k >= TK_DERP_FRAME_HDR_LEN ? n : 777);
			/* NULL used is allowed for a partial frame */
			CU_ASSERT_EQUAL(tk_derp_frame_next(q, k, 1 << 20, &f, NULL),
			    TK_EAGAIN);
			free(q);
		}
		for (uint32_t k = 0; k < e->len; k++) {
			uint8_t *q = exact(buf + TK_DERP_FRAME_HDR_LEN, k);
			tk_derp_frame f = { e->type, k, q };
			tk_derp_event ev;
			int rc = tk_derp_client_decode(&f, &ev);

			switch (e->type) {
			case TK_DERP_FRAME_PING:
			case TK_DERP_FRAME_PONG:
			case TK_DERP_FRAME_RESTARTING:
				/* derp_client.go: "dropping short ... frame" */
				CU_ASSERT_EQUAL(rc, TK_EPROTO);
				break;
			case TK_DERP_FRAME_HEALTH:
				CU_ASSERT_EQUAL(rc, 0);
				CU_ASSERT_EQUAL(ev.len, k);
				break;
			default:
				CU_ASSERT(rc == 0 || rc == TK_EPROTO);
			}
			free(q);
		}
	}
	/* NotePreferred must be exactly one byte (derpserver.go). */
	bool pref = true;
	uint8_t two[2] = { 1, 1 };
	uint8_t *q = exact(two, 0);
	CU_ASSERT_EQUAL(tk_derp_parse_note_preferred(q, 0, &pref), TK_EPROTO);
	free(q);
	CU_ASSERT_EQUAL(tk_derp_parse_note_preferred(two, 2, &pref), TK_EPROTO);
	CU_ASSERT_TRUE(pref); /* untouched */
	two[0] = 0;
	CU_ASSERT_EQUAL(tk_derp_parse_note_preferred(two, 1, &pref), 0);
	CU_ASSERT_FALSE(pref);
}

static void
test_frame_limits(void)
{
	uint8_t h[TK_DERP_FRAME_HDR_LEN];
	tk_derp_frame f;
	size_t used;
	static const uint32_t maxes[] = { 0, 1, TK_DERP_MAX_PACKET_SIZE + 32,
		TK_DERP_CLIENT_MAX_FRAME, UINT32_MAX - 1 };

	for (size_t i = 0; i < TK_ARRAY_LEN(maxes); i++) {
		uint32_t max = maxes[i];

		/* One past the limit: TK_EMSGSIZE from the header alone. */
		tk_derp_frame_hdr(h, TK_DERP_FRAME_RECV_PACKET, max + 1);
		used = 5;
		CU_ASSERT_EQUAL(tk_derp_frame_next(h, sizeof(h), max, &f, &used),
		    TK_EMSGSIZE);
		/* At the limit: incomplete, and it says how much it needs. */
		tk_derp_frame_hdr(h, TK_DERP_FRAME_RECV_PACKET, max);
		if (max == 0) {
			CU_ASSERT_EQUAL(tk_derp_frame_next(h, sizeof(h), max, &f,
					    &used), 0);
			CU_ASSERT_EQUAL(used, TK_DERP_FRAME_HDR_LEN);
#if SIZE_MAX <= UINT32_MAX
		} else if (max > SIZE_MAX - TK_DERP_FRAME_HDR_LEN) {
			/* 32-bit targets: not representable, refused (it used
			 * to wrap to a 4-byte total and hand out a 4 GiB frame) */
			CU_ASSERT_EQUAL(tk_derp_frame_next(h, sizeof(h), max, &f,
					    &used), TK_EMSGSIZE);
#endif
		} else {
			CU_ASSERT_EQUAL(tk_derp_frame_next(h, sizeof(h), max, &f,
					    &used), TK_EAGAIN);
			CU_ASSERT_EQUAL(used, TK_DERP_FRAME_HDR_LEN + (size_t)max);
		}
	}
	/* The largest length on the wire. */
	tk_derp_frame_hdr(h, 0xff, UINT32_MAX);
	CU_ASSERT_EQUAL(tk_derp_frame_next(h, 5, TK_DERP_CLIENT_MAX_FRAME, &f,
			    &used), TK_EMSGSIZE);
#if SIZE_MAX > UINT32_MAX
	CU_ASSERT_EQUAL(tk_derp_frame_next(h, 5, UINT32_MAX, &f, &used),
	    TK_EAGAIN);
	CU_ASSERT_EQUAL(used, (size_t)UINT32_MAX + TK_DERP_FRAME_HDR_LEN);
#else
	CU_ASSERT_EQUAL(tk_derp_frame_next(h, 5, UINT32_MAX, &f, &used),
	    TK_EMSGSIZE);
#endif
	/* derp_test.go TestWriteFrameHeader: SendPacket of 1024 bytes. */
	uint8_t want[5] = { 0x04, 0x00, 0x00, 0x04, 0x00 };
	tk_derp_frame_hdr(h, TK_DERP_FRAME_SEND_PACKET, 1024);
	TK_ASSERT_MEM_EQ(h, want, 5);
}

/* Random bytes: the framer never claims more than it was given. */
static void
test_frame_garbage(void)
{
	tk_fake_rng fr;
	tk_fake_rng_init(&fr, 42);

	for (int it = 0; it < 20000; it++) {
		size_t n = tk_rng_uniform(&fr.fr_rng, 48);
		uint8_t tmp[48];
		tk_rng_fill(&fr.fr_rng, tmp, n);
		if (n >= 5 && (it & 1)) {
			tmp[1] = tmp[2] = 0; /* small lengths too */
			tmp[3] &= 0x00;
			tmp[4] &= 0x3f;
		}
		uint8_t *q = exact(tmp, n);
		tk_derp_frame f;
		size_t used = 0;
		int rc = tk_derp_frame_next(q, n, 1 << 20, &f, &used);

		CU_ASSERT(rc == 0 || rc == TK_EAGAIN || rc == TK_EMSGSIZE);
		if (rc == 0) {
			CU_ASSERT(used <= n);
			CU_ASSERT(inside(f.payload, f.len, q, n));
			tk_derp_event ev;
			rc = tk_derp_client_decode(&f, &ev);
			CU_ASSERT(rc == 0 || rc == TK_EPROTO);
			if (rc == 0) {
				CU_ASSERT(!ev.key || inside(ev.key, 32, f.payload, f.len));
				CU_ASSERT(!ev.data ||
				    inside(ev.data, ev.len, f.payload, f.len));
			}
		}
		free(q);
	}
}

/* --- payload parsers: lengths as Go reads them ----------------------------- */

#define SENTINEL 0xa5

static bool
all_sentinel(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i] != SENTINEL)
			return false;
	return true;
}

static void
test_parse_server_key(void)
{
	static const size_t lens[] = { 0, 8, 39, 40, 41, 100, 1024, 1025, 4096 };

	for (size_t i = 0; i < TK_ARRAY_LEN(lens); i++) {
		size_t n = lens[i];
		uint8_t *p = pattern(n);
		uint8_t key[32];
		int want = n >= 40 && n <= 1024 ? 0 : TK_EPROTO;

		if (n >= 8)
			memcpy(p, TK_DERP_MAGIC, 8);
		memset(key, SENTINEL, sizeof(key));
		CU_ASSERT_EQUAL(tk_derp_parse_server_key(p, n, key), want);
		CU_ASSERT(want == 0 ? memcmp(key, p + 8, 32) == 0
				    : all_sentinel(key, 32));
		/* Without the magic: never a key. */
		if (n >= 8) {
			p[7] ^= 1;
			memset(key, SENTINEL, sizeof(key));
			CU_ASSERT_EQUAL(tk_derp_parse_server_key(p, n, key),
			    TK_EPROTO);
			CU_ASSERT(all_sentinel(key, 32));
		}
		free(p);
	}
}

static void
test_parse_client_info(void)
{
	static const size_t lens[] = { 0, 31, 32, 55, 56, 57, 200,
		TK_DERP_CLIENT_INFO_MAX, TK_DERP_CLIENT_INFO_MAX + 1 };

	for (size_t i = 0; i < TK_ARRAY_LEN(lens); i++) {
		size_t n = lens[i];
		uint8_t *p = pattern(n);
		uint8_t key[32];
		const uint8_t *nb = NULL;
		size_t nbl = 12345;
		int want = n >= 56 && n <= (256u << 10) ? 0 : TK_EPROTO;

		memset(key, SENTINEL, sizeof(key));
		CU_ASSERT_EQUAL(tk_derp_parse_client_info(p, n, key, &nb, &nbl),
		    want);
		if (want == 0) {
			TK_ASSERT_MEM_EQ(key, p, 32);
			CU_ASSERT_PTR_EQUAL(nb, p + 32);
			CU_ASSERT_EQUAL(nbl, n - 32);
		} else {
			CU_ASSERT(all_sentinel(key, 32));
			CU_ASSERT_PTR_NULL(nb);
			CU_ASSERT_EQUAL(nbl, 12345);
		}
		free(p);
	}
}

static void
test_parse_packet(void)
{
	static const size_t lens[] = { 0, 1, 31, 32, 33, 1500,
		32 + TK_DERP_MAX_PACKET_SIZE, 33 + TK_DERP_MAX_PACKET_SIZE,
		32 + 100000 };

	for (size_t i = 0; i < TK_ARRAY_LEN(lens); i++) {
		size_t n = lens[i];
		uint8_t *p = pattern(n);
		const uint8_t *key = NULL, *pkt = NULL, *src = NULL;
		size_t pl = 999;
		/* derpserver.go recvPacket: packet <= MaxPacketSize */
		int want = n >= 32 && n - 32 <= 65536 ? 0 : TK_EPROTO;

		CU_ASSERT_EQUAL(tk_derp_parse_packet(p, n, &key, &pkt, &pl), want);
		if (want == 0) {
			CU_ASSERT_PTR_EQUAL(key, p);
			CU_ASSERT_PTR_EQUAL(pkt, p + 32);
			CU_ASSERT_EQUAL(pl, n - 32);
		} else {
			CU_ASSERT_PTR_NULL(key);
			CU_ASSERT_EQUAL(pl, 999);
		}
		/* ForwardPacket: two keys. */
		key = pkt = NULL;
		pl = 999;
		want = n >= 64 && n - 64 <= 65536 ? 0 : TK_EPROTO;
		CU_ASSERT_EQUAL(tk_derp_parse_forward(p, n, &src, &key, &pkt, &pl),
		    want);
		if (want == 0) {
			CU_ASSERT_PTR_EQUAL(src, p);
			CU_ASSERT_PTR_EQUAL(key, p + 32);
			CU_ASSERT_PTR_EQUAL(pkt, p + 64);
			CU_ASSERT_EQUAL(pl, n - 64);
		} else {
			CU_ASSERT_EQUAL(pl, 999);
		}
		free(p);
	}
	/* The exact ForwardPacket boundaries. */
	static const size_t fl[] = { 63, 64, 64 + 65536, 65 + 65536 };
	for (size_t i = 0; i < TK_ARRAY_LEN(fl); i++) {
		uint8_t *p = pattern(fl[i]);
		const uint8_t *s, *d, *k;
		size_t pl;
		int want = (i == 1 || i == 2) ? 0 : TK_EPROTO;
		CU_ASSERT_EQUAL(tk_derp_parse_forward(p, fl[i], &s, &d, &k, &pl),
		    want);
		free(p);
	}
}

static void
test_parse_peer_gone(void)
{
	for (size_t n = 0; n <= 40; n++) {
		uint8_t *p = pattern(n);
		uint8_t key[32], reason = SENTINEL;

		memset(key, SENTINEL, sizeof(key));
		if (n < 32) {
			CU_ASSERT_EQUAL(tk_derp_parse_peer_gone(p, n, key, &reason),
			    TK_EPROTO);
			CU_ASSERT(all_sentinel(key, 32));
			CU_ASSERT_EQUAL(reason, SENTINEL);
		} else {
			if (n > 32)
				p[32] = TK_DERP_PEER_GONE_NOT_HERE;
			CU_ASSERT_EQUAL(tk_derp_parse_peer_gone(p, n, key, &reason), 0);
			TK_ASSERT_MEM_EQ(key, p, 32);
			/* 32 bytes: an old server, reason Disconnected */
			CU_ASSERT_EQUAL(reason, n == 32
				? TK_DERP_PEER_GONE_DISCONNECTED
				: TK_DERP_PEER_GONE_NOT_HERE);
		}
		free(p);
	}
}

/* derp_client.go: key (>= 32), then ip+port if 18 more bytes are there,
 * then flags if one more is: 33..49 bytes are a key only ("Older server
 * which didn't send the IP"), not malformed. */
static void
test_parse_peer_present(void)
{
	for (size_t n = 0; n <= 60; n++) {
		uint8_t *p = pattern(n);
		tk_derp_peer_present pp;
		int rc;

		memset(&pp, SENTINEL, sizeof(pp));
		rc = tk_derp_parse_peer_present(p, n, &pp);
		if (n < 32) {
			CU_ASSERT_EQUAL(rc, TK_EPROTO);
			CU_ASSERT(all_sentinel(&pp, sizeof(pp)));
			free(p);
			continue;
		}
		CU_ASSERT_EQUAL(rc, 0);
		if (rc != 0) {
			free(p);
			continue;
		}
		TK_ASSERT_MEM_EQ(pp.key, p, 32);
		CU_ASSERT_EQUAL(pp.has_addr, n >= 50);
		CU_ASSERT_EQUAL(pp.has_flags, n >= 51);
		if (n >= 50) {
			TK_ASSERT_MEM_EQ(pp.ip, p + 32, 16);
			CU_ASSERT_EQUAL(pp.port, (uint16_t)(p[48] << 8 | p[49]));
		} else {
			CU_ASSERT_EQUAL(pp.port, 0);
			CU_ASSERT(tk_ct_is_zero(pp.ip, 16));
		}
		CU_ASSERT_EQUAL(pp.flags, n >= 51 ? p[50] : 0);
		free(p);
	}
}

static void
test_parse_ping_close_restarting(void)
{
	static const size_t pl[] = { 0, 7, 8, 9, 999, 1000, 1001, 5000 };

	for (size_t i = 0; i < TK_ARRAY_LEN(pl); i++) {
		uint8_t *p = pattern(pl[i]);
		uint8_t d[8];
		int want = pl[i] >= 8 && pl[i] <= 1000 ? 0 : TK_EPROTO;

		memset(d, SENTINEL, 8);
		CU_ASSERT_EQUAL(tk_derp_parse_ping(p, pl[i], d), want);
		CU_ASSERT(want == 0 ? memcmp(d, p, 8) == 0 : all_sentinel(d, 8));
		free(p);
	}
	for (size_t n = 0; n <= 64; n++) {
		uint8_t *p = pattern(n);
		uint8_t key[32];
		memset(key, SENTINEL, 32);
		CU_ASSERT_EQUAL(tk_derp_parse_close_peer(p, n, key),
		    n == 32 ? 0 : TK_EPROTO);
		CU_ASSERT(n == 32 ? memcmp(key, p, 32) == 0 : all_sentinel(key, 32));
		free(p);
	}
	for (size_t n = 0; n <= 12; n++) {
		uint8_t *p = pattern(n);
		uint32_t a = 7, b = 7;
		int rc = tk_derp_parse_restarting(p, n, &a, &b);
		CU_ASSERT_EQUAL(rc, n >= 8 ? 0 : TK_EPROTO);
		if (n >= 8) {
			CU_ASSERT_EQUAL(a, tk_be32_load(p));
			CU_ASSERT_EQUAL(b, tk_be32_load(p + 4));
		} else {
			CU_ASSERT(a == 7 && b == 7);
		}
		free(p);
	}
}

static void
test_looks_like_disco(void)
{
	uint8_t b[100];

	memset(b, 0, sizeof(b));
	memcpy(b, TK_DISCO_MAGIC, TK_DISCO_MAGIC_LEN);
	for (size_t n = 0; n <= 70; n++) {
		uint8_t *q = exact(b, n);
		CU_ASSERT_EQUAL(tk_derp_looks_like_disco(q, n), n >= 62);
		free(q);
	}
	b[5] ^= 1;
	CU_ASSERT_FALSE(tk_derp_looks_like_disco(b, 100));
}

/* --- builders ---------------------------------------------------------------- */

static void
test_build_parse_round_trip(void)
{
	uint8_t k1[32], k2[32], ip[16];
	tk_derp_frame f;
	size_t used;

	for (int i = 0; i < 32; i++) {
		k1[i] = (uint8_t)(0x10 + i);
		k2[i] = (uint8_t)(0x80 + i);
	}
	for (int i = 0; i < 16; i++)
		ip[i] = (uint8_t)(200 + i);

	/* ServerKey */
	uint8_t sk[TK_DERP_SERVER_KEY_FRAME_LEN], got[32];
	tk_derp_build_server_key(sk, k1);
	CU_ASSERT_EQUAL_FATAL(tk_derp_frame_next(sk, sizeof(sk), 1024, &f, &used), 0);
	CU_ASSERT_EQUAL(used, sizeof(sk));
	CU_ASSERT_EQUAL(f.type, TK_DERP_FRAME_SERVER_KEY);
	CU_ASSERT_EQUAL(tk_derp_parse_server_key(f.payload, f.len, got), 0);
	TK_ASSERT_MEM_EQ(got, k1, 32);
	tk_derp_event ev;
	CU_ASSERT_EQUAL(tk_derp_client_decode(&f, &ev), 0);
	CU_ASSERT_EQUAL(ev.type, TK_DERP_EV_SERVER_KEY);
	TK_ASSERT_MEM_EQ(ev.key, k1, 32);

	/* SendPacket / RecvPacket with a packet */
	uint8_t pk[TK_DERP_PACKET_HDR_LEN + 5];
	tk_derp_build_packet_hdr(pk, TK_DERP_FRAME_RECV_PACKET, k2, 5);
	memcpy(pk + TK_DERP_PACKET_HDR_LEN, "hello", 5);
	CU_ASSERT_EQUAL_FATAL(tk_derp_frame_next(pk, sizeof(pk), 1 << 20, &f, &used), 0);
	CU_ASSERT_EQUAL(f.len, 37);
	const uint8_t *key, *pkt, *src;
	size_t pl;
	CU_ASSERT_EQUAL(tk_derp_parse_packet(f.payload, f.len, &key, &pkt, &pl), 0);
	TK_ASSERT_MEM_EQ(key, k2, 32);
	CU_ASSERT_EQUAL(pl, 5);
	TK_ASSERT_MEM_EQ(pkt, "hello", 5);
	CU_ASSERT_EQUAL(tk_derp_client_decode(&f, &ev), 0);
	CU_ASSERT_EQUAL(ev.type, TK_DERP_EV_RECV_PACKET);
	CU_ASSERT_PTR_EQUAL(ev.key, f.payload);
	CU_ASSERT_PTR_EQUAL(ev.data, f.payload + 32);
	CU_ASSERT_EQUAL(ev.len, 5);

	/* ForwardPacket */
	uint8_t fw[TK_DERP_FORWARD_HDR_LEN + 3];
	tk_derp_build_forward_hdr(fw, k1, k2, 3);
	memcpy(fw + TK_DERP_FORWARD_HDR_LEN, "abc", 3);
	CU_ASSERT_EQUAL_FATAL(tk_derp_frame_next(fw, sizeof(fw), 1 << 20, &f, &used), 0);
	CU_ASSERT_EQUAL(f.type, TK_DERP_FRAME_FORWARD_PACKET);
	CU_ASSERT_EQUAL(tk_derp_parse_forward(f.payload, f.len, &src, &key, &pkt, &pl), 0);
	TK_ASSERT_MEM_EQ(src, k1, 32);
	TK_ASSERT_MEM_EQ(key, k2, 32);
	CU_ASSERT_EQUAL(pl, 3);
	TK_ASSERT_MEM_EQ(pkt, "abc", 3);

	/* PeerGone with each reason */
	static const uint8_t reasons[] = { 0x00, 0x01, 0xf0 };
	for (size_t i = 0; i < TK_ARRAY_LEN(reasons); i++) {
		uint8_t pg[TK_DERP_PEER_GONE_FRAME_LEN], r;
		tk_derp_build_peer_gone(pg, k1, reasons[i]);
		CU_ASSERT_EQUAL_FATAL(tk_derp_frame_next(pg, sizeof(pg), 1 << 20, &f, &used), 0);
		CU_ASSERT_EQUAL(f.len, 33);
		CU_ASSERT_EQUAL(tk_derp_parse_peer_gone(f.payload, f.len, got, &r), 0);
		TK_ASSERT_MEM_EQ(got, k1, 32);
		CU_ASSERT_EQUAL(r, reasons[i]);
		CU_ASSERT_EQUAL(tk_derp_client_decode(&f, &ev), 0);
		CU_ASSERT_EQUAL(ev.type, TK_DERP_EV_PEER_GONE);
		CU_ASSERT_EQUAL(ev.reason, reasons[i]);
	}

	/* PeerPresent: 51 bytes, with and without an address */
	uint8_t pp[TK_DERP_PEER_PRESENT_FRAME_LEN];
	tk_derp_peer_present p;
	tk_derp_build_peer_present(pp, k2, ip, 41641,
	    TK_DERP_PEER_PRESENT_IS_REGULAR | TK_DERP_PEER_PRESENT_NOT_IDEAL);
	CU_ASSERT_EQUAL_FATAL(tk_derp_frame_next(pp, sizeof(pp), 1 << 20, &f, &used), 0);
	CU_ASSERT_EQUAL(f.len, 51);
	CU_ASSERT_EQUAL(tk_derp_parse_peer_present(f.payload, f.len, &p), 0);
	TK_ASSERT_MEM_EQ(p.key, k2, 32);
	CU_ASSERT_TRUE(p.has_addr);
	TK_ASSERT_MEM_EQ(p.ip, ip, 16);
	CU_ASSERT_EQUAL(p.port, 41641);
	CU_ASSERT_TRUE(p.has_flags);
	CU_ASSERT_EQUAL(p.flags, 0x09);
	tk_derp_build_peer_present(pp, k2, NULL, 0, 0);
	CU_ASSERT_EQUAL(tk_derp_parse_peer_present(pp + 5, 51, &p), 0);
	CU_ASSERT(tk_ct_is_zero(p.ip, 16));
	CU_ASSERT_EQUAL(tk_derp_client_decode(&f, &ev), 0);
	CU_ASSERT_EQUAL(ev.type, TK_DERP_EV_PEER_PRESENT);
	CU_ASSERT_PTR_EQUAL(ev.key, f.payload);
	CU_ASSERT_TRUE(ev.present.has_flags);

	/* Ping and Pong; the example bytes exactly */
	uint8_t pi[TK_DERP_PING_FRAME_LEN], ex[13];
	static const uint8_t d[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	tk_derp_build_ping(pi, TK_DERP_FRAME_PING, d);
	tk_test_unhex(ex, sizeof(ex), examples[3].hex);
	TK_ASSERT_MEM_EQ(pi, ex, 13);
	tk_derp_build_ping(pi, TK_DERP_FRAME_PONG, d);
	tk_test_unhex(ex, sizeof(ex), examples[4].hex);
	TK_ASSERT_MEM_EQ(pi, ex, 13);
}

/* --- a server frame as Go's client reads it --------------------------------- */

static const struct decode_case {
	uint8_t type;
	size_t len;
	int rc;
	enum tk_derp_ev ev;
} decode_cases[] = {
	{ TK_DERP_FRAME_SERVER_KEY, 39, TK_EPROTO, 0 },
	{ TK_DERP_FRAME_SERVER_KEY, 40, 0, TK_DERP_EV_SERVER_KEY },
	{ TK_DERP_FRAME_SERVER_KEY, 1024, 0, TK_DERP_EV_SERVER_KEY },
	/* recvServerKey: readFrame(br, 1<<10, ...) */
	{ TK_DERP_FRAME_SERVER_KEY, 1025, TK_EPROTO, 0 },
	{ TK_DERP_FRAME_SERVER_INFO, 0, TK_EPROTO, 0 },
	{ TK_DERP_FRAME_SERVER_INFO, 23, TK_EPROTO, 0 },
	{ TK_DERP_FRAME_SERVER_INFO, 24, 0, TK_DERP_EV_SERVER_INFO },
	{ TK_DERP_FRAME_SERVER_INFO, 100, 0, TK_DERP_EV_SERVER_INFO },
	{ TK_DERP_FRAME_RECV_PACKET, 0, TK_EPROTO, 0 },
	{ TK_DERP_FRAME_RECV_PACKET, 31, TK_EPROTO, 0 },
	{ TK_DERP_FRAME_RECV_PACKET, 32, 0, TK_DERP_EV_RECV_PACKET },
	{ TK_DERP_FRAME_RECV_PACKET, 32 + 65536, 0, TK_DERP_EV_RECV_PACKET },
	/* derp_client.go recvTimeout only needs the key: the 1 MiB frame cap
	 * is the only bound on what a server relays to it. */
	{ TK_DERP_FRAME_RECV_PACKET, 32 + 65537, 0, TK_DERP_EV_RECV_PACKET },
	{ TK_DERP_FRAME_RECV_PACKET, 1 << 20, 0, TK_DERP_EV_RECV_PACKET },
	{ TK_DERP_FRAME_KEEP_ALIVE, 0, 0, TK_DERP_EV_KEEPALIVE },
	{ TK_DERP_FRAME_KEEP_ALIVE, 3, 0, TK_DERP_EV_KEEPALIVE },
	{ TK_DERP_FRAME_PEER_GONE, 31, TK_EPROTO, 0 },
	{ TK_DERP_FRAME_PEER_GONE, 32, 0, TK_DERP_EV_PEER_GONE },
	{ TK_DERP_FRAME_PEER_GONE, 33, 0, TK_DERP_EV_PEER_GONE },
	{ TK_DERP_FRAME_PEER_PRESENT, 31, TK_EPROTO, 0 },
	{ TK_DERP_FRAME_PEER_PRESENT, 32, 0, TK_DERP_EV_PEER_PRESENT },
	{ TK_DERP_FRAME_PEER_PRESENT, 33, 0, TK_DERP_EV_PEER_PRESENT },
	{ TK_DERP_FRAME_PEER_PRESENT, 49, 0, TK_DERP_EV_PEER_PRESENT },
	{ TK_DERP_FRAME_PEER_PRESENT, 50, 0, TK_DERP_EV_PEER_PRESENT },
	{ TK_DERP_FRAME_PEER_PRESENT, 51, 0, TK_DERP_EV_PEER_PRESENT },
	{ TK_DERP_FRAME_PING, 7, TK_EPROTO, 0 },
	{ TK_DERP_FRAME_PING, 8, 0, TK_DERP_EV_PING },
	{ TK_DERP_FRAME_PING, 2000, 0, TK_DERP_EV_PING },
	{ TK_DERP_FRAME_PONG, 7, TK_EPROTO, 0 },
	{ TK_DERP_FRAME_PONG, 9, 0, TK_DERP_EV_PONG },
	{ TK_DERP_FRAME_HEALTH, 0, 0, TK_DERP_EV_HEALTH },
	{ TK_DERP_FRAME_HEALTH, 300, 0, TK_DERP_EV_HEALTH },
	{ TK_DERP_FRAME_RESTARTING, 7, TK_EPROTO, 0 },
	{ TK_DERP_FRAME_RESTARTING, 8, 0, TK_DERP_EV_RESTARTING },
	{ TK_DERP_FRAME_RESTARTING, 12, 0, TK_DERP_EV_RESTARTING },
	{ TK_DERP_FRAME_CLIENT_INFO, 60, 0, TK_DERP_EV_UNKNOWN },
	{ TK_DERP_FRAME_SEND_PACKET, 40, 0, TK_DERP_EV_UNKNOWN },
	{ TK_DERP_FRAME_NOTE_PREFERRED, 1, 0, TK_DERP_EV_UNKNOWN },
	{ TK_DERP_FRAME_FORWARD_PACKET, 64, 0, TK_DERP_EV_UNKNOWN },
	{ TK_DERP_FRAME_WATCH_CONNS, 0, 0, TK_DERP_EV_UNKNOWN },
	{ TK_DERP_FRAME_CLOSE_PEER, 32, 0, TK_DERP_EV_UNKNOWN },
	{ 0x00, 0, 0, TK_DERP_EV_UNKNOWN },
	{ 0x16, 5, 0, TK_DERP_EV_UNKNOWN },
	{ 0xff, 10, 0, TK_DERP_EV_UNKNOWN },
};

static void
test_client_decode(void)
{
	for (size_t i = 0; i < TK_ARRAY_LEN(decode_cases); i++) {
		const struct decode_case *c = &decode_cases[i];
		uint8_t *p = pattern(c->len);
		tk_derp_frame f = { c->type, (uint32_t)c->len, p };
		tk_derp_event ev;
		int rc;

		if (c->type == TK_DERP_FRAME_SERVER_KEY && c->len >= 8)
			memcpy(p, TK_DERP_MAGIC, 8);
		rc = tk_derp_client_decode(&f, &ev);
		CU_ASSERT_EQUAL(rc, c->rc);
		if (rc != c->rc)
			fprintf(stderr, "\n  decode type 0x%02x len %zu: rc %d want %d\n",
			    c->type, c->len, rc, c->rc);
		if (rc == 0) {
			CU_ASSERT_EQUAL(ev.type, c->ev);
			CU_ASSERT(!ev.key || inside(ev.key, 32, p, c->len));
			CU_ASSERT(!ev.data || inside(ev.data, ev.len, p, c->len));
		}
		switch (rc == 0 ? c->ev : 0) {
		case TK_DERP_EV_SERVER_KEY:
			CU_ASSERT_PTR_EQUAL(ev.key, p + 8);
			break;
		case TK_DERP_EV_SERVER_INFO:
		case TK_DERP_EV_HEALTH:
		case TK_DERP_EV_UNKNOWN:
			CU_ASSERT_PTR_EQUAL(ev.data, p);
			CU_ASSERT_EQUAL(ev.len, c->len);
			break;
		case TK_DERP_EV_RECV_PACKET:
			CU_ASSERT_PTR_EQUAL(ev.key, p);
			CU_ASSERT_PTR_EQUAL(ev.data, p + 32);
			CU_ASSERT_EQUAL(ev.len, c->len - 32);
			break;
		case TK_DERP_EV_PEER_GONE:
			CU_ASSERT_PTR_EQUAL(ev.key, p);
			CU_ASSERT_EQUAL(ev.reason, c->len > 32 ? p[32] : 0);
			break;
		case TK_DERP_EV_PEER_PRESENT:
			CU_ASSERT_PTR_EQUAL(ev.key, p);
			CU_ASSERT_EQUAL(ev.present.has_addr, c->len >= 50);
			CU_ASSERT_EQUAL(ev.present.has_flags, c->len >= 51);
			break;
		case TK_DERP_EV_PING:
		case TK_DERP_EV_PONG:
			CU_ASSERT_PTR_EQUAL(ev.data, p);
			CU_ASSERT_EQUAL(ev.len, 8);
			break;
		case TK_DERP_EV_RESTARTING:
			CU_ASSERT_EQUAL(ev.reconnect_in_ms, tk_be32_load(p));
			CU_ASSERT_EQUAL(ev.try_for_ms, tk_be32_load(p + 4));
			break;
		default:
			break;
		}
		free(p);
	}
	/* A ServerKey without the magic is not a key (recvServerKey). */
	uint8_t *p = pattern(40);
	tk_derp_frame f = { TK_DERP_FRAME_SERVER_KEY, 40, p };
	tk_derp_event ev;
	CU_ASSERT_EQUAL(tk_derp_client_decode(&f, &ev), TK_EPROTO);
	memcpy(p, TK_DERP_MAGIC, 8);
	p[0] = 'd';
	CU_ASSERT_EQUAL(tk_derp_client_decode(&f, &ev), TK_EPROTO);
	free(p);
}

/* --- stream reader ------------------------------------------------------------ */

/* A server stream: the examples, a big RecvPacket, a ServerKey, an empty
 * RecvPacket and an unknown type. */
static uint8_t *
make_stream(size_t *len, size_t *nframes)
{
	size_t cap = 200000, n = 0, k = 0;
	uint8_t *s = malloc(cap);
	uint8_t key[32];

	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	for (size_t i = 0; i < TK_ARRAY_LEN(examples); i++, k++)
		n += example_bytes(&examples[i], s + n, cap - n);
	tk_derp_build_packet_hdr(s + n, TK_DERP_FRAME_RECV_PACKET, key, 70000);
	n += TK_DERP_PACKET_HDR_LEN;
	for (size_t i = 0; i < 70000; i++)
		s[n++] = (uint8_t)(i * 13);
	k++;
	tk_derp_build_server_key(s + n, key);
	n += TK_DERP_SERVER_KEY_FRAME_LEN;
	k++;
	tk_derp_build_packet_hdr(s + n, TK_DERP_FRAME_RECV_PACKET, key, 0);
	n += TK_DERP_PACKET_HDR_LEN;
	k++;
	tk_derp_frame_hdr(s + n, 0x7f, 3);
	memcpy(s + n + 5, "xyz", 3);
	n += 8;
	k++;
	*len = n;
	*nframes = k;
	return s;
}

/* Checks the frames rx yields against a direct walk of the stream. */
struct walker {
	const uint8_t *s;
	size_t len, off, count;
	bool bad;
};

static void
drain(tk_derp_rx *r, struct walker *w)
{
	tk_derp_frame f, g;
	size_t used;
	int rc;

	while ((rc = tk_derp_rx_next(r, &f)) == 0) {
		if (tk_derp_frame_next(w->s + w->off, w->len - w->off, 1 << 20, &g,
			&used) != 0 || f.type != g.type || f.len != g.len ||
		    memcmp(f.payload, g.payload, f.len) != 0) {
			w->bad = true;
			return;
		}
		w->off += used;
		w->count++;
	}
	if (rc != TK_EAGAIN)
		w->bad = true;
}

static void
test_rx_byte_by_byte(void)
{
	size_t n, nf;
	uint8_t *s = make_stream(&n, &nf);
	tk_derp_rx r;
	struct walker w = { s, n, 0, 0, false };

	tk_derp_rx_init(&r, TK_DERP_CLIENT_MAX_FRAME);
	for (size_t i = 0; i < n && !w.bad; i++) {
		CU_ASSERT_EQUAL_FATAL(tk_derp_rx_put(&r, s + i, 1), 0);
		drain(&r, &w);
	}
	CU_ASSERT_FALSE(w.bad);
	CU_ASSERT_EQUAL(w.count, nf);
	CU_ASSERT_EQUAL(w.off, n);
	CU_ASSERT(r.cap <= TK_DERP_FRAME_HDR_LEN + TK_DERP_CLIENT_MAX_FRAME);
	tk_derp_rx_fini(&r);
	tk_derp_rx_fini(&r); /* idempotent */
	free(s);
}

static void
test_rx_random_chunks(void)
{
	size_t n, nf;
	uint8_t *s = make_stream(&n, &nf);
	tk_fake_rng fr;

	tk_fake_rng_init(&fr, 7);
	for (int round = 0; round < 60; round++) {
		tk_derp_rx r;
		struct walker w = { s, n, 0, 0, false };
		size_t i = 0;
		uint32_t bound = round % 3 == 0 ? 16 : round % 3 == 1 ? 3000 : 90000;

		tk_derp_rx_init(&r, TK_DERP_CLIENT_MAX_FRAME);
		while (i < n && !w.bad) {
			size_t k = 1 + tk_rng_uniform(&fr.fr_rng, bound);
			if (k > n - i)
				k = n - i;
			if (round & 1) {
				CU_ASSERT_EQUAL_FATAL(tk_derp_rx_put(&r, s + i, k), 0);
				i += k;
			} else {
				/* the read(2) path: space, copy, commit */
				uint8_t *q;
				size_t avail;
				CU_ASSERT_EQUAL_FATAL(tk_derp_rx_space(&r, k, &q, &avail), 0);
				CU_ASSERT_FATAL(avail > 0);
				if (k > avail)
					k = avail;
				memcpy(q, s + i, k);
				tk_derp_rx_commit(&r, k);
				i += k;
			}
			drain(&r, &w);
		}
		CU_ASSERT_FALSE(w.bad);
		CU_ASSERT_EQUAL(w.count, nf);
		tk_derp_rx_fini(&r);
	}
	free(s);
}

/* The server's reader: 64 KiB + keys.  An oversized frame is TK_EMSGSIZE
 * (close the stream) and the frames before it still come out. */
static void
test_rx_oversized(void)
{
	tk_derp_rx r;
	tk_derp_frame f;
	uint8_t b[10];
	uint32_t max = TK_DERP_MAX_PACKET_SIZE + 2 * TK_DERP_KEY_LEN;

	tk_derp_rx_init(&r, max);
	tk_test_unhex(b, sizeof(b), "0600000000");
	tk_derp_frame_hdr(b + 5, TK_DERP_FRAME_SEND_PACKET, max + 1);
	CU_ASSERT_EQUAL(tk_derp_rx_put(&r, b, 10), 0);
	CU_ASSERT_EQUAL(tk_derp_rx_next(&r, &f), 0);
	CU_ASSERT_EQUAL(f.type, TK_DERP_FRAME_KEEP_ALIVE);
	CU_ASSERT_EQUAL(tk_derp_rx_next(&r, &f), TK_EMSGSIZE);
	CU_ASSERT_EQUAL(tk_derp_rx_next(&r, &f), TK_EMSGSIZE);
	tk_derp_rx_fini(&r);

	/* A frame of exactly max passes. */
	size_t n = TK_DERP_FRAME_HDR_LEN + max;
	uint8_t *big = pattern(n);
	tk_derp_frame_hdr(big, TK_DERP_FRAME_SEND_PACKET, max);
	tk_derp_rx_init(&r, max);
	for (size_t i = 0; i < n; i += 1000)
		CU_ASSERT_EQUAL_FATAL(tk_derp_rx_put(&r, big + i,
					  n - i < 1000 ? n - i : 1000), 0);
	CU_ASSERT_EQUAL(tk_derp_rx_next(&r, &f), 0);
	CU_ASSERT_EQUAL(f.len, max);
	CU_ASSERT(memcmp(f.payload, big + 5, max) == 0);
	CU_ASSERT_EQUAL(tk_derp_rx_next(&r, &f), TK_EAGAIN);
	CU_ASSERT(r.cap <= n);
	tk_derp_rx_fini(&r);
	free(big);
}

/* rx_put of more than one max-size frame's worth at once (several whole
 * frames, e.g. what followed the HTTP head): all of it is kept and every
 * frame comes out; nothing is appended when it fails. */
static void
test_rx_put_many_frames(void)
{
	static const uint32_t maxes[] = { 8, 16, 1000 };

	for (size_t m = 0; m < TK_ARRAY_LEN(maxes); m++) {
		uint32_t max = maxes[m];
		size_t fl = TK_DERP_FRAME_HDR_LEN + max, nf = 50;
		uint8_t *s = malloc(fl * nf + 5);
		tk_derp_rx r;
		tk_derp_frame f;
		size_t got = 0;
		int rc;

		CU_ASSERT_PTR_NOT_NULL_FATAL(s);
		for (size_t i = 0; i < nf; i++) {
			tk_derp_frame_hdr(s + i * fl, (uint8_t)(0x20 + i), max);
			memset(s + i * fl + 5, (int)i, max);
		}
		tk_derp_frame_hdr(s + nf * fl, 0x06, 0); /* 3 bytes of a header */
		tk_derp_rx_init(&r, max);
		CU_ASSERT_EQUAL(tk_derp_rx_put(&r, s, fl * nf + 3), 0);
		while ((rc = tk_derp_rx_next(&r, &f)) == 0) {
			CU_ASSERT_EQUAL(f.type, 0x20 + got);
			CU_ASSERT_EQUAL(f.len, max);
			CU_ASSERT_EQUAL(f.payload[max - 1], (uint8_t)got);
			got++;
		}
		CU_ASSERT_EQUAL(rc, TK_EAGAIN);
		CU_ASSERT_EQUAL(got, nf);
		/* the rest of the last header, then the read(2) path again */
		CU_ASSERT_EQUAL(tk_derp_rx_put(&r, s + nf * fl + 3, 2), 0);
		CU_ASSERT_EQUAL(tk_derp_rx_next(&r, &f), 0);
		CU_ASSERT_EQUAL(f.type, 0x06);
		uint8_t *q;
		size_t avail;
		CU_ASSERT_EQUAL(tk_derp_rx_space(&r, 1, &q, &avail), 0);
		CU_ASSERT(avail >= fl);

		tk_derp_rx_fini(&r);

		/* allocation failure: TK_ENOMEM and nothing appended */
		tk_derp_rx_init(&r, max);
		CU_ASSERT_EQUAL(tk_derp_rx_put(&r, s, 3), 0);
		tk_fault_arm(1);
		rc = tk_derp_rx_put(&r, s + 3, fl * nf - 3);
		CU_ASSERT_TRUE(tk_fault_fired());
		tk_fault_disarm();
		CU_ASSERT_EQUAL(rc, TK_ENOMEM);
		CU_ASSERT_EQUAL(r.len - r.off, 3);
		CU_ASSERT_EQUAL(tk_derp_rx_put(&r, s + 3, fl * nf - 3), 0);
		for (got = 0; tk_derp_rx_next(&r, &f) == 0; got++)
			CU_ASSERT_EQUAL(f.type, 0x20 + got);
		CU_ASSERT_EQUAL(got, nf);
		tk_derp_rx_fini(&r);
		free(s);
	}
}

/* Allocation failure in rx_space/rx_put: TK_ENOMEM, the reader unchanged,
 * the same bytes accepted once memory is back, nothing leaked. */
static void
test_rx_alloc_failure(void)
{
	size_t n, nf;
	uint8_t *s = make_stream(&n, &nf);
	tk_alloc_stats before, after;
	unsigned long k;
	bool fired_any = false;

	tk_alloc_stats_get(&before);
	for (k = 1; k < 100; k++) {
		tk_derp_rx r;
		struct walker w = { s, n, 0, 0, false };
		size_t i = 0, step = 0;
		bool fired = false;

		tk_derp_rx_init(&r, TK_DERP_CLIENT_MAX_FRAME);
		tk_fault_arm(k);
		while (i < n && !w.bad) {
			/* growing chunks so the buffer reallocates */
			size_t c = (size_t)1 << (step++ % 18);
			if (c > n - i)
				c = n - i;
			size_t len0 = r.len, off0 = r.off, cap0 = r.cap;
			uint8_t *buf0 = r.buf;
			int rc;
			if (step & 1) {
				rc = tk_derp_rx_put(&r, s + i, c);
			} else {
				uint8_t *q;
				size_t avail;
				rc = tk_derp_rx_space(&r, c, &q, &avail);
				if (rc == 0) {
					if (c > avail)
						c = avail;
					memcpy(q, s + i, c);
					tk_derp_rx_commit(&r, c);
				}
			}
			if (rc == TK_ENOMEM) {
				fired = true;
				CU_ASSERT_TRUE(tk_fault_fired());
				/* nothing appended, old buffer kept */
				CU_ASSERT_EQUAL(r.len - r.off, len0 - off0);
				CU_ASSERT_EQUAL(r.cap, cap0);
				CU_ASSERT_PTR_EQUAL(r.buf, buf0);
				step--;
				continue; /* retry: the fault fires once */
			}
			CU_ASSERT_EQUAL_FATAL(rc, 0);
			i += c;
			drain(&r, &w);
		}
		CU_ASSERT_FALSE(w.bad);
		CU_ASSERT_EQUAL(w.count, nf);
		tk_derp_rx_fini(&r);
		if (!tk_fault_fired()) {
			tk_fault_disarm();
			break;
		}
		tk_fault_disarm();
		fired_any |= fired;
	}
	CU_ASSERT_TRUE(fired_any);
	CU_ASSERT(k > 1 && k < 100); /* the sweep ended by itself */
	tk_alloc_stats_get(&after);
	CU_ASSERT_EQUAL(after.as_allocs - before.as_allocs,
	    after.as_frees - before.as_frees);
	free(s);
}

/* --- upgrade response head ------------------------------------------------- */

static void
test_http_response(void)
{
	static const char ok[] = "HTTP/1.1 101 Switching Protocols\r\n"
				 "Upgrade: DERP\r\nConnection: Upgrade\r\n"
				 "Derp-Version: 2\r\n"
				 "Derp-Public-Key: 00112233\r\n\r\n";
	size_t hl = strlen(ok);
	uint8_t buf[256];
	int status;
	size_t head;

	/* The head, then DERP bytes in the same read. */
	memcpy(buf, ok, hl);
	tk_test_unhex(buf + hl, 5, "0600000000");
	uint8_t *q = exact(buf, hl + 5);
	CU_ASSERT_EQUAL(tk_derp_http_response(q, hl + 5, &status, &head), 0);
	CU_ASSERT_EQUAL(status, 101);
	CU_ASSERT_EQUAL(head, hl);
	free(q);
	/* Every truncation: need more. */
	for (size_t k = 0; k < hl; k++) {
		q = exact(ok, k);
		status = -1;
		CU_ASSERT_EQUAL(tk_derp_http_response(q, k, &status, &head),
		    TK_EAGAIN);
		CU_ASSERT_EQUAL(status, -1);
		free(q);
	}

	static const struct {
		const char *s;
		int rc, status;
	} cases[] = {
		{ "HTTP/1.1 426 Upgrade Required\r\n\r\n", 0, 426 },
		{ "HTTP/1.0 101\r\n\r\n", 0, 101 },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, 200 },
		{ "HTTP/1.1 10 x\r\n\r\n", TK_EPROTO, 0 },
		{ "HTTP/1.1 1010 x\r\n\r\n", TK_EPROTO, 0 },
		{ "HTTP/1.1 1x1 x\r\n\r\n", TK_EPROTO, 0 },
		{ "HTTP/1.1 101", TK_EAGAIN, 0 },
		{ "HTTP/1.1\r\n\r\n", TK_EPROTO, 0 },
		{ "\r\n\r\n", TK_EPROTO, 0 },
		{ "SSH-2.0-OpenSSH_9.6\r\n\r\n", TK_EPROTO, 0 },
		{ "HTTP/2 101 x\r\n\r\n", TK_EPROTO, 0 },
		/* Go's ParseHTTPVersion: the minor version is a digit */
		{ "HTTP/1.x 101 x\r\n\r\n", TK_EPROTO, 0 },
		{ "HTTP/1.  101 x\r\n\r\n", TK_EPROTO, 0 },
		{ "http/1.1 101 x\r\n\r\n", TK_EPROTO, 0 },
	};
	for (size_t i = 0; i < TK_ARRAY_LEN(cases); i++) {
		size_t n = strlen(cases[i].s);
		q = exact(cases[i].s, n);
		status = -1;
		int rc = tk_derp_http_response(q, n, &status, &head);
		CU_ASSERT_EQUAL(rc, cases[i].rc);
		if (rc != cases[i].rc)
			fprintf(stderr, "\n  http %zu: rc %d want %d\n", i, rc,
			    cases[i].rc);
		if (rc == 0) {
			CU_ASSERT_EQUAL(status, cases[i].status);
			CU_ASSERT_EQUAL(head, n);
		} else {
			CU_ASSERT_EQUAL(status, -1);
		}
		free(q);
	}

	/* No blank line: need more up to 16 KiB, then not HTTP. */
	size_t big = TK_DERP_HTTP_HEAD_MAX + 1;
	uint8_t *h = malloc(big + 4);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	memcpy(h, "HTTP/1.1 101 ", 13);
	memset(h + 13, 'a', big + 4 - 13);
	CU_ASSERT_EQUAL(tk_derp_http_response(h, TK_DERP_HTTP_HEAD_MAX, &status,
			    &head), TK_EAGAIN);
	CU_ASSERT_EQUAL(tk_derp_http_response(h, big, &status, &head), TK_EPROTO);
	/* A head that ends past 16 KiB. */
	memcpy(h + big, "\r\n\r\n", 4);
	CU_ASSERT_EQUAL(tk_derp_http_response(h, big + 4, &status, &head),
	    TK_EPROTO);
	/* One that ends exactly at 16 KiB is fine. */
	memcpy(h + TK_DERP_HTTP_HEAD_MAX - 4, "\r\n\r\n", 4);
	CU_ASSERT_EQUAL(tk_derp_http_response(h, big + 4, &status, &head), 0);
	CU_ASSERT_EQUAL(head, TK_DERP_HTTP_HEAD_MAX);
	free(h);
}

/* Go's netcheck stickiness (addReportHistoryAndSetPreferredDERP): move
 * only for >= 10 ms and <= 2/3 of the home's latency; unmeasured stays. */
static void
test_home_should_move(void)
{
	static const struct {
		uint32_t home, best;
		bool move;
	} t[] = {
		{ 30000, 15000, true },	 /* 15 ms and half: move */
		{ 30000, 20000, true },	 /* exactly 2/3 and 10 ms */
		{ 30000, 20001, false }, /* just over 2/3 */
		{ 12000, 1000, true },	 /* 11 ms faster, far under 2/3 */
		{ 9000, 1000, false },	 /* under 10 ms faster, however fast */
		{ 100000, 70000, false }, /* 30 ms faster but 70%: about the same */
		{ 100000, 66000, true },
		{ 5000, 5000, false },
		{ 5000, 9000, false },	 /* slower */
		{ 0, 1000, false },	 /* home not measured: stays */
		{ 30000, 0, false },	 /* best not measured */
		{ 0, 0, false },
		{ UINT32_MAX, 1, true },
		{ 1, UINT32_MAX, false },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		CU_ASSERT_EQUAL(tk_derp_home_should_move(t[i].home, t[i].best),
		    t[i].move);
}

void
register_derp_frame(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_examples_frame),
		TK_TEST(test_examples_decode),
		TK_TEST(test_examples_truncated),
		TK_TEST(test_frame_limits),
		TK_TEST(test_frame_garbage),
		TK_TEST(test_parse_server_key),
		TK_TEST(test_parse_client_info),
		TK_TEST(test_parse_packet),
		TK_TEST(test_parse_peer_gone),
		TK_TEST(test_parse_peer_present),
		TK_TEST(test_parse_ping_close_restarting),
		TK_TEST(test_looks_like_disco),
		TK_TEST(test_build_parse_round_trip),
		TK_TEST(test_client_decode),
		TK_TEST(test_rx_byte_by_byte),
		TK_TEST(test_rx_random_chunks),
		TK_TEST(test_rx_oversized),
		TK_TEST(test_rx_put_many_frames),
		TK_TEST(test_rx_alloc_failure),
		TK_TEST(test_http_response),
		TK_TEST(test_home_should_move),
		TK_TEST_END,
	};
	tk_test_suite("derp_frame", cases);
}
