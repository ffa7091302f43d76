/*
 * tk_wg device tests: two in-memory devices wired back to back, one fake
 * clock, a deterministic RNG.  Every timer is driven by advancing the clock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk/blake2s.h"
#include "tk/clock.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk/pkt.h"
#include "tk/rng.h"
#include "tk/wg.h"
#include "tk_test.h"

void register_wg_device(void);

#define MAXQ 512

typedef struct dgram {
	tk_wg_endpoint to;
	size_t n;
	uint8_t b[1600];
} dgram;

typedef struct side {
	tk_wg_device *dev;
	tk_wg_peer *peer; /* the other side */
	tk_wg_endpoint ep; /* our address */
	dgram out[MAXQ];
	size_t nout;
	uint8_t got[MAXQ][1600];
	size_t gotlen[MAXQ];
	size_t ngot;
	int handshakes, zeroed;
	bool deny;
} side;

static tk_fake_clock clk;
static tk_fake_rng rng;
static side A, B;

static void
cb_send(void *arg, tk_wg_peer *peer, const tk_wg_endpoint *ep,
    const uint8_t *p, size_t n)
{
	side *s = arg;

	(void)peer;
	if (s->nout < MAXQ && n <= sizeof(s->out[0].b)) {
		s->out[s->nout].to = *ep;
		s->out[s->nout].n = n;
		memcpy(s->out[s->nout].b, p, n);
		s->nout++;
	}
}

static void
cb_deliver(void *arg, tk_wg_peer *peer, uint8_t *p, size_t n)
{
	side *s = arg;

	(void)peer;
	if (s->ngot < MAXQ && n <= 1600) {
		memcpy(s->got[s->ngot], p, n);
		s->gotlen[s->ngot++] = n;
	}
}

static bool
cb_filter(void *arg, tk_wg_peer *peer, const uint8_t *p, size_t n)
{
	(void)peer, (void)p, (void)n;
	return !((side *)arg)->deny;
}

static void
cb_event(void *arg, tk_wg_peer *peer, int ev)
{
	side *s = arg;

	(void)peer;
	if (ev == TK_WG_EV_HANDSHAKE)
		s->handshakes++;
	if (ev == TK_WG_EV_KEYS_ZEROED)
		s->zeroed++;
}

static void
ep4(tk_wg_endpoint *ep, uint8_t last, uint16_t port)
{
	memset(ep, 0, sizeof(*ep));
	ep->ep_family = 4;
	ep->ep_addr[0] = 192, ep->ep_addr[1] = 0, ep->ep_addr[2] = 2;
	ep->ep_addr[3] = last;
	ep->ep_port = port;
}

static void
make_side(side *s, const uint8_t priv[32], uint8_t last)
{
	tk_wg_device_config c = { 0 };

	memset(s, 0, sizeof(*s));
	c.clock = &clk.fc_clock;
	c.rng = &rng.fr_rng;
	c.cb = (tk_wg_callbacks) { s, cb_send, cb_deliver, cb_filter, cb_event };
	c.under_load_per_sec = 50;
	CU_ASSERT_FATAL(tk_wg_device_new(&s->dev, &c) == 0);
	CU_ASSERT_FATAL(tk_wg_device_set_private_key(s->dev, priv) == 0);
	ep4(&s->ep, last, 51820);
}

/* A: 10.0.0.1, B: 10.0.0.2; each allows the other's /32. */
static void
setup_pair(void)
{
	uint8_t pa[32], pb[32], puba[32], pubb[32];
	const uint8_t a4[4] = { 10, 0, 0, 1 }, b4[4] = { 10, 0, 0, 2 };

	tk_fake_clock_init(&clk, 1000 * TK_NSEC_PER_SEC,
	    1700000000ull * TK_NSEC_PER_SEC);
	tk_fake_rng_init(&rng, 42);
	memset(pa, 0x11, 32);
	memset(pb, 0x22, 32);
	make_side(&A, pa, 1);
	make_side(&B, pb, 2);
	tk_wg_device_public_key(A.dev, puba);
	tk_wg_device_public_key(B.dev, pubb);
	CU_ASSERT_FATAL(tk_wg_peer_add(A.dev, pubb, &A.peer) == 0);
	CU_ASSERT_FATAL(tk_wg_peer_add(B.dev, puba, &B.peer) == 0);
	CU_ASSERT(tk_wg_peer_add(A.dev, pubb, NULL) == TK_EEXIST);
	CU_ASSERT(tk_wg_peer_add(A.dev, puba, NULL) == TK_EINVAL);
	CU_ASSERT(tk_wg_peer_add_allowed_ip(A.peer, 4, b4, 32) == 0);
	CU_ASSERT(tk_wg_peer_add_allowed_ip(B.peer, 4, a4, 32) == 0);
	tk_wg_peer_set_endpoint(A.peer, &B.ep);
}

static void
teardown_pair(void)
{
	tk_wg_device_free(A.dev);
	tk_wg_device_free(B.dev);
	A.dev = B.dev = NULL;
}

/* Delivers everything queued on both sides until quiet; returns count. */
static size_t
pump(void)
{
	size_t moved = 0;

	for (int round = 0; round < 64; round++) {
		size_t na = A.nout, nb = B.nout;
		dgram qa[MAXQ], qb[MAXQ];
		if (na == 0 && nb == 0)
			break;
		memcpy(qa, A.out, na * sizeof(dgram));
		memcpy(qb, B.out, nb * sizeof(dgram));
		A.nout = B.nout = 0;
		for (size_t i = 0; i < na; i++)
			tk_wg_device_recv(B.dev, &A.ep, qa[i].b, qa[i].n);
		for (size_t i = 0; i < nb; i++)
			tk_wg_device_recv(A.dev, &B.ep, qb[i].b, qb[i].n);
		moved += na + nb;
	}
	return moved;
}

/* A minimal IPv4/UDP packet from src to dst with a payload byte pattern. */
static size_t
ip4(uint8_t *b, uint8_t src, uint8_t dst, size_t payload)
{
	size_t n = 28 + payload;

	memset(b, 0, n);
	b[0] = 0x45;
	tk_be16_store(b + 2, (uint16_t)n);
	b[8] = 64;
	b[9] = 17;
	b[12] = 10, b[15] = src;
	b[16] = 10, b[19] = dst;
	for (size_t i = 0; i < payload; i++)
		b[28 + i] = (uint8_t)(i * 7 + src);
	return n;
}

static void
advance(uint64_t ns)
{
	/* step in 100 ms slices so timers fire in order */
	while (ns) {
		uint64_t step = ns > 100 * TK_NSEC_PER_MSEC ? 100 * TK_NSEC_PER_MSEC : ns;
		tk_fake_clock_advance(&clk, step);
		ns -= step;
		tk_wg_device_tick(A.dev);
		tk_wg_device_tick(B.dev);
	}
}

static void
test_handshake_and_data(void)
{
	uint8_t pkt[1600];
	size_t n = ip4(pkt, 1, 2, 100);
	tk_wg_stats st;

	setup_pair();
	CU_ASSERT(tk_wg_device_send(A.dev, pkt, n) == 0); /* staged + initiation */
	CU_ASSERT(A.nout == 1 && A.out[0].n == TK_WG_INITIATION_LEN);
	CU_ASSERT(tk_wg_message_type(A.out[0].b, A.out[0].n) == TK_WG_MSG_INITIATION);
	pump();
	CU_ASSERT(B.ngot == 1 && B.gotlen[0] == n);
	CU_ASSERT(memcmp(B.got[0], pkt, n) == 0);
	CU_ASSERT(A.handshakes == 1 && B.handshakes == 1);
	CU_ASSERT(tk_wg_peer_has_session(A.peer) && tk_wg_peer_has_session(B.peer));
	/* B learned A's endpoint from the handshake and can answer */
	n = ip4(pkt, 2, 1, 1000);
	CU_ASSERT(tk_wg_device_send(B.dev, pkt, n) == 0);
	pump();
	CU_ASSERT(A.ngot == 1 && A.gotlen[0] == n && memcmp(A.got[0], pkt, n) == 0);
	/* padding: outer sizes are 32 + multiple of 16 */
	n = ip4(pkt, 1, 2, 5);
	tk_wg_device_send(A.dev, pkt, n);
	CU_ASSERT(A.nout == 1 && (A.out[0].n - 32) % 16 == 0 && A.out[0].n - 32 >= n);
	pump();
	CU_ASSERT(B.ngot == 2 && B.gotlen[1] == n);
	tk_wg_device_get_stats(B.dev, &st);
	CU_ASSERT(st.rx_data == 2 && st.handshakes_completed == 1);
	/* no route */
	n = ip4(pkt, 1, 99, 5);
	CU_ASSERT(tk_wg_device_send(A.dev, pkt, n) == TK_ENOENT);
	CU_ASSERT(tk_wg_device_send(A.dev, (const uint8_t *)"junk", 4) == TK_EPROTO);
	teardown_pair();
}

/* The datagram an in-place send handed to send_datagram: where did it lie? */
static const uint8_t *last_sent_at;

static void
cb_send_where(void *arg, tk_wg_peer *peer, const tk_wg_endpoint *ep,
    const uint8_t *p, size_t n)
{
	last_sent_at = p;
	cb_send(arg, peer, ep, p, n);
}

/*
 * tk_wg_device_send_pkt seals the packet where it lies: the datagram handed
 * to send_datagram is the tk_pkt's own bytes (header in its headroom,
 * padding and tag behind), it decrypts to the packet, and the counters and
 * staging behave as tk_wg_device_send.  Without the room it copies.
 */
static void
test_send_pkt_in_place(void)
{
	uint8_t ref[1600];
	tk_pkt *pk;
	size_t n;
	tk_wg_stats st;

	setup_pair();
	tk_wg_device_free(A.dev);
	{
		tk_wg_device_config c = { 0 };
		uint8_t pa[32], pubb[32];
		const uint8_t b4[4] = { 10, 0, 0, 2 };

		memset(pa, 0x11, 32);
		c.clock = &clk.fc_clock;
		c.rng = &rng.fr_rng;
		c.cb = (tk_wg_callbacks) { &A, cb_send_where, cb_deliver, cb_filter,
			cb_event };
		CU_ASSERT_FATAL(tk_wg_device_new(&A.dev, &c) == 0);
		CU_ASSERT_FATAL(tk_wg_device_set_private_key(A.dev, pa) == 0);
		tk_wg_device_public_key(B.dev, pubb);
		CU_ASSERT_FATAL(tk_wg_peer_add(A.dev, pubb, &A.peer) == 0);
		CU_ASSERT(tk_wg_peer_add_allowed_ip(A.peer, 4, b4, 32) == 0);
		tk_wg_peer_set_endpoint(A.peer, &B.ep);
	}
	CU_ASSERT_FATAL(tk_pkt_new(&pk, 1600) == 0);
	/* no session yet: staged (a copy), the initiation goes out */
	n = ip4(ref, 1, 2, 100);
	CU_ASSERT(tk_pkt_set(pk, ref, n) == 0);
	CU_ASSERT(tk_wg_device_send_pkt(A.dev, pk) == 0);
	CU_ASSERT(A.nout == 1 && A.out[0].n == TK_WG_INITIATION_LEN);
	memset(pk->pk_data, 0xee, pk->pk_len); /* the staged copy is not this */
	pump();
	CU_ASSERT(B.ngot == 1 && B.gotlen[0] == n && memcmp(B.got[0], ref, n) == 0);
	/* a session: every padding case, in place */
	for (size_t pay = 0; pay < 40; pay++) {
		n = ip4(ref, 1, 2, pay);
		CU_ASSERT_FATAL(tk_pkt_set(pk, ref, n) == 0);
		uint8_t *pkt_at = pk->pk_data;
		CU_ASSERT(tk_wg_device_send_pkt(A.dev, pk) == 0);
		CU_ASSERT(A.nout == 1);
		CU_ASSERT(last_sent_at == pkt_at - TK_WG_DATA_HDR_LEN);
		CU_ASSERT(pk->pk_data == pkt_at - TK_WG_DATA_HDR_LEN);
		CU_ASSERT(pk->pk_len == TK_WG_DATA_LEN(n) && A.out[0].n == pk->pk_len);
		size_t got = B.ngot;
		pump();
		CU_ASSERT(B.ngot == got + 1 && B.gotlen[got] == n &&
		    memcmp(B.got[got], ref, n) == 0);
	}
	/* no headroom: sealed in the device's own buffer instead */
	n = ip4(ref, 1, 2, 64);
	pk->pk_data = pk->pk_buf + 8; /* 8 bytes of headroom */
	memcpy(pk->pk_data, ref, n);
	pk->pk_len = n;
	CU_ASSERT(tk_wg_device_send_pkt(A.dev, pk) == 0);
	CU_ASSERT(last_sent_at != pk->pk_data - TK_WG_DATA_HDR_LEN &&
	    pk->pk_data == pk->pk_buf + 8 && pk->pk_len == n);
	size_t got = B.ngot;
	pump();
	CU_ASSERT(B.ngot == got + 1 && memcmp(B.got[got], ref, n) == 0);
	/* drops are the same as tk_wg_device_send's */
	n = ip4(ref, 1, 99, 5);
	CU_ASSERT(tk_pkt_set(pk, ref, n) == 0);
	CU_ASSERT(tk_wg_device_send_pkt(A.dev, pk) == TK_ENOENT);
	tk_wg_device_get_stats(A.dev, &st);
	CU_ASSERT(st.drop_no_route == 1 && st.tx_data == 1 + 40 + 1);
	tk_pkt_free(pk);
	teardown_pair();
}

static void
test_replay_and_garbage(void)
{
	uint8_t pkt[1600], saved[1600], init[TK_WG_INITIATION_LEN];
	size_t n = ip4(pkt, 1, 2, 64), sn;
	tk_wg_stats st;

	setup_pair();
	tk_wg_device_send(A.dev, pkt, n);
	memcpy(init, A.out[0].b, sizeof(init));
	pump();
	tk_wg_device_send(A.dev, pkt, n);
	sn = A.out[0].n;
	memcpy(saved, A.out[0].b, sn);
	pump();
	CU_ASSERT(B.ngot == 2);
	/* the same transport packet again: replay */
	CU_ASSERT(tk_wg_device_recv(B.dev, &A.ep, saved, sn) != 0);
	/* the same initiation again: old timestamp */
	CU_ASSERT(tk_wg_device_recv(B.dev, &A.ep, init, sizeof(init)) == TK_ESTATE);
	tk_wg_device_get_stats(B.dev, &st);
	CU_ASSERT(st.drop_timestamp == 1);
	CU_ASSERT(B.ngot == 2);
	/* truncated / oversized / garbage, of every type */
	uint8_t junk[2048];
	for (size_t len = 0; len < sizeof(junk); len += 7) {
		for (int t = 0; t < 6; t++) {
			memset(junk, 0xa5, sizeof(junk));
			if (len >= 4) {
				junk[0] = (uint8_t)t;
				junk[1] = junk[2] = junk[3] = 0;
			}
			tk_wg_device_recv(B.dev, &A.ep, junk, len);
		}
	}
	/* exact sizes with bad MACs / indices */
	memset(junk, 0, sizeof(junk));
	junk[0] = 1;
	CU_ASSERT(tk_wg_device_recv(B.dev, &A.ep, junk, TK_WG_INITIATION_LEN) == TK_ECRYPTO);
	junk[0] = 2;
	CU_ASSERT(tk_wg_device_recv(B.dev, &A.ep, junk, TK_WG_RESPONSE_LEN) == TK_ECRYPTO);
	junk[0] = 3;
	CU_ASSERT(tk_wg_device_recv(B.dev, &A.ep, junk, TK_WG_COOKIE_LEN) == TK_ENOENT);
	junk[0] = 4;
	CU_ASSERT(tk_wg_device_recv(B.dev, &A.ep, junk, 64) == TK_ENOENT);
	/* a flipped bit in a valid transport packet */
	tk_wg_device_send(A.dev, pkt, n);
	A.out[0].b[40] ^= 1;
	CU_ASSERT(tk_wg_device_recv(B.dev, &A.ep, A.out[0].b, A.out[0].n) == TK_ECRYPTO);
	A.nout = 0;
	tk_wg_device_get_stats(B.dev, &st);
	CU_ASSERT(st.drop_mac1 >= 2 && st.drop_decrypt >= 1 && st.drop_type > 0);
	CU_ASSERT(B.ngot == 2);
	/* the session still works */
	tk_wg_device_send(A.dev, pkt, n);
	pump();
	CU_ASSERT(B.ngot == 3);
	teardown_pair();
}

static void
test_wrong_key_and_source(void)
{
	uint8_t pkt[1600], pc[32], pubc[32];
	size_t n = ip4(pkt, 1, 2, 64);
	tk_wg_device *C;
	tk_wg_peer *cp;
	tk_wg_stats st;
	side Cs;

	setup_pair();
	/* C knows B's key but B does not know C: never gets a packet in */
	memset(pc, 0x33, 32);
	make_side(&Cs, pc, 3);
	C = Cs.dev;
	tk_wg_device_public_key(C, pubc);
	uint8_t pubb[32];
	tk_wg_device_public_key(B.dev, pubb);
	tk_wg_peer_add(C, pubb, &cp);
	const uint8_t b4[4] = { 10, 0, 0, 2 };
	tk_wg_peer_add_allowed_ip(cp, 4, b4, 32);
	tk_wg_peer_set_endpoint(cp, &B.ep);
	tk_wg_device_send(C, pkt, n);
	CU_ASSERT(Cs.nout == 1);
	CU_ASSERT(tk_wg_device_recv(B.dev, &Cs.ep, Cs.out[0].b, Cs.out[0].n) == TK_ENOENT);
	CU_ASSERT(B.nout == 0 && B.ngot == 0);
	tk_wg_device_free(C);
	/* A sends a packet whose inner source is not in A's allowed IPs at B */
	tk_wg_device_send(A.dev, pkt, n);
	pump();
	CU_ASSERT(B.ngot == 1);
	n = ip4(pkt, 7, 2, 64);
	tk_wg_peer_send(A.peer, pkt, n);
	pump();
	CU_ASSERT(B.ngot == 1);
	/* the inbound filter drops and counts */
	B.deny = true;
	n = ip4(pkt, 1, 2, 64);
	tk_wg_device_send(A.dev, pkt, n);
	pump();
	CU_ASSERT(B.ngot == 1);
	tk_wg_device_get_stats(B.dev, &st);
	CU_ASSERT(st.drop_src_ip == 1 && st.rx_filtered == 1 && st.drop_unknown_peer == 1);
	teardown_pair();
}

static void
test_timers_keepalive_rekey_expiry(void)
{
	uint8_t pkt[1600];
	size_t n = ip4(pkt, 1, 2, 64);
	tk_wg_stats st;

	setup_pair();
	tk_wg_device_send(A.dev, pkt, n);
	pump();
	CU_ASSERT(B.ngot == 1);
	/* B received data and stays silent: a passive keepalive after 10 s */
	tk_wg_device_get_stats(B.dev, &st);
	uint64_t ka0 = st.tx_keepalive;
	advance(9 * TK_NSEC_PER_SEC);
	CU_ASSERT(B.nout == 0);
	advance(1200 * TK_NSEC_PER_MSEC);
	tk_wg_device_get_stats(B.dev, &st);
	CU_ASSERT(st.tx_keepalive == ka0 + 1 && B.nout == 1);
	pump();
	/* A sends data and hears nothing for 15 s: new handshake */
	A.nout = 0;
	tk_wg_device_send(A.dev, pkt, n);
	A.nout = 0; /* lost */
	advance(14 * TK_NSEC_PER_SEC);
	CU_ASSERT(A.nout == 0);
	advance(2 * TK_NSEC_PER_SEC);
	CU_ASSERT(A.nout == 1 && A.out[0].n == TK_WG_INITIATION_LEN);
	pump();
	CU_ASSERT(A.handshakes == 2);
	/* rekey after time: the initiator's first send after 120 s starts one */
	advance(121 * TK_NSEC_PER_SEC);
	pump();
	A.nout = 0;
	tk_wg_device_send(A.dev, pkt, n);
	CU_ASSERT(A.nout == 2 && A.out[1].n == TK_WG_INITIATION_LEN);
	pump();
	CU_ASSERT(A.handshakes == 3);
	/* reject after time: with no traffic, keys are zeroed after 540 s */
	advance(541 * TK_NSEC_PER_SEC);
	pump();
	CU_ASSERT(A.zeroed == 1 && B.zeroed == 1);
	CU_ASSERT(!tk_wg_peer_has_session(A.peer));
	/* and a new packet re-establishes */
	int before = B.handshakes;
	tk_wg_device_send(A.dev, pkt, n);
	pump();
	CU_ASSERT(B.handshakes == before + 1);
	teardown_pair();
}

static void
test_retransmit_gives_up(void)
{
	uint8_t pkt[1600];
	size_t n = ip4(pkt, 1, 2, 64);
	tk_wg_peer_stats ps;

	setup_pair();
	tk_wg_device_send(A.dev, pkt, n);
	size_t inits = A.nout;
	A.nout = 0;
	for (int i = 0; i < 200; i++) { /* 100 s, everything lost */
		advance(500 * TK_NSEC_PER_MSEC);
		inits += A.nout;
		A.nout = 0;
	}
	/* first + 18 retries, spaced by 5 s + jitter */
	CU_ASSERT_EQUAL(inits, 1 + TK_WG_MAX_TIMER_HANDSHAKES);
	tk_wg_peer_get_stats(A.peer, &ps);
	CU_ASSERT(ps.handshake_attempts == TK_WG_MAX_TIMER_HANDSHAKES);
	/* staged data was dropped: a late handshake delivers nothing old */
	tk_wg_peer_initiate(A.peer);
	pump();
	CU_ASSERT(B.ngot == 0);
	teardown_pair();
}

static void
test_persistent_keepalive_and_roaming(void)
{
	uint8_t pkt[1600];
	size_t n = ip4(pkt, 1, 2, 64);
	tk_wg_endpoint ep;

	setup_pair();
	tk_wg_device_send(A.dev, pkt, n);
	pump();
	tk_wg_peer_set_keepalive(A.peer, 25);
	advance(TK_NSEC_PER_SEC);
	CU_ASSERT(A.nout == 1 && A.out[0].n == 32);
	pump();
	/* idle for 100 s: a keepalive at least every 25 s keeps the path */
	tk_wg_stats st;
	tk_wg_device_get_stats(A.dev, &st);
	uint64_t k0 = st.tx_keepalive;
	for (int i = 0; i < 100; i++) {
		advance(TK_NSEC_PER_SEC);
		pump();
	}
	tk_wg_device_get_stats(A.dev, &st);
	CU_ASSERT(st.tx_keepalive >= k0 + 3 && st.tx_keepalive <= k0 + 5);
	CU_ASSERT(tk_wg_peer_has_session(A.peer));
	/* A moves to a new address: B follows after an authenticated packet */
	ep4(&A.ep, 77, 40000);
	tk_wg_device_send(A.dev, pkt, n);
	pump();
	tk_wg_peer_get_endpoint(B.peer, &ep);
	CU_ASSERT(ep.ep_addr[3] == 77 && ep.ep_port == 40000);
	/* a forged packet from elsewhere does not move it */
	tk_wg_endpoint evil;
	ep4(&evil, 66, 1);
	uint8_t junk[64] = { 4 };
	tk_wg_device_recv(B.dev, &evil, junk, sizeof(junk));
	tk_wg_peer_get_endpoint(B.peer, &ep);
	CU_ASSERT(ep.ep_addr[3] == 77);
	teardown_pair();
}

/* An initiation-sized message with a valid mac1 for `to` and junk inside. */
static void
junk_initiation(uint8_t m[TK_WG_INITIATION_LEN], tk_wg_device *to, uint32_t i)
{
	uint8_t pub[32], key[32];
	tk_blake2s_ctx c;

	memset(m, (int)(i & 0xff), TK_WG_INITIATION_LEN);
	m[0] = 1, m[1] = m[2] = m[3] = 0;
	tk_le32_store(m + 4, i);
	tk_wg_device_public_key(to, pub);
	tk_blake2s_init(&c, 32, NULL, 0);
	tk_blake2s_update(&c, (const uint8_t *)"mac1----", 8);
	tk_blake2s_update(&c, pub, 32);
	tk_blake2s_final(&c, key);
	tk_blake2s(m + 116, 16, key, 32, m, 116);
	memset(m + 132, 0, 16);
}

static void
flood(tk_wg_device *to, int count)
{
	uint8_t m[TK_WG_INITIATION_LEN];
	tk_wg_endpoint src;

	ep4(&src, 200, 9999);
	for (int i = 0; i < count; i++) {
		junk_initiation(m, to, (uint32_t)i + 1);
		tk_wg_device_recv(to, &src, m, sizeof(m));
	}
}

static void
test_under_load_cookie(void)
{
	uint8_t pkt[1600];
	size_t n = ip4(pkt, 1, 2, 64);
	tk_wg_stats st;

	setup_pair();
	CU_ASSERT(!tk_wg_device_under_load(B.dev));
	flood(B.dev, 60); /* threshold 50/s in these tests */
	CU_ASSERT(tk_wg_device_under_load(B.dev));
	tk_wg_device_get_stats(B.dev, &st);
	uint64_t cookies0 = st.tx_cookie;
	/* A's initiation has no mac2: B answers with a cookie, no DH */
	tk_wg_device_send(A.dev, pkt, n);
	pump();
	tk_wg_device_get_stats(B.dev, &st);
	CU_ASSERT(st.tx_cookie == cookies0 + 1 && st.drop_mac2 > 0);
	CU_ASSERT(A.handshakes == 0 && B.ngot == 0);
	tk_wg_device_get_stats(A.dev, &st);
	CU_ASSERT(st.rx_cookie == 1);
	/* the retry carries mac2 and gets through while B is still loaded */
	tk_fake_clock_advance(&clk, TK_WG_REKEY_TIMEOUT + TK_WG_REKEY_JITTER_MAX);
	flood(B.dev, 60);
	CU_ASSERT(tk_wg_device_under_load(B.dev));
	tk_wg_device_tick(A.dev);
	CU_ASSERT(A.nout == 1);
	pump();
	CU_ASSERT(A.handshakes == 1 && B.ngot == 1);
	/* the load clears a second after the flood stops */
	tk_fake_clock_advance(&clk, 2 * TK_NSEC_PER_SEC);
	CU_ASSERT(!tk_wg_device_under_load(B.dev));
	teardown_pair();
}

/* --- many peers: the timer queue ---------------------------------------- */

#define NP 300
static unsigned sent_by[NP];

static void
count_send(void *arg, tk_wg_peer *peer, const tk_wg_endpoint *ep,
    const uint8_t *p, size_t n)
{
	(void)arg, (void)ep, (void)p, (void)n;
	if (peer != NULL) {
		uintptr_t i = (uintptr_t)tk_wg_peer_user(peer);
		if (i >= 1 && i <= NP)
			sent_by[i - 1]++;
	}
}

/*
 * NP peers with persistent keepalives of 1..7 s: every one of them fires,
 * half are removed midway (their queued timers must never be touched
 * again: ASan), the rest keep firing.  With `scan`, the queue's first
 * growth fails and the device falls back to scanning every peer.
 */
static void
many_peers(bool scan)
{
	tk_wg_device_config c = { 0 };
	tk_wg_device *d;
	tk_wg_peer *peers[NP];
	uint8_t priv[32], pub[32];
	tk_wg_endpoint ep;

	tk_fake_clock_init(&clk, 1000 * TK_NSEC_PER_SEC,
	    1700000000ull * TK_NSEC_PER_SEC);
	tk_fake_rng_init(&rng, 7);
	c.clock = &clk.fc_clock;
	c.rng = &rng.fr_rng;
	c.cb.send_datagram = count_send;
	c.cb.deliver = cb_deliver;
	c.cb.arg = &A;
	CU_ASSERT_FATAL(tk_wg_device_new(&d, &c) == 0);
	memset(priv, 0x33, 32);
	CU_ASSERT_FATAL(tk_wg_device_set_private_key(d, priv) == 0);
	memset(sent_by, 0, sizeof(sent_by));
	ep4(&ep, 9, 51820);
	for (uintptr_t i = 0; i < NP; i++) {
		memset(pub, 0, 32);
		pub[0] = 9; /* any point works as a peer key here */
		pub[1] = (uint8_t)i, pub[2] = (uint8_t)(i >> 8);
		CU_ASSERT_FATAL(tk_wg_peer_add(d, pub, &peers[i]) == 0);
		tk_wg_peer_set_user(peers[i], (void *)(i + 1));
		tk_wg_peer_set_endpoint(peers[i], &ep);
	}
	if (scan)
		tk_fault_arm(1); /* the queue's first growth fails */
	for (size_t i = 0; i < NP; i++)
		tk_wg_peer_set_keepalive(peers[i], (uint16_t)(1 + i % 7));
	if (scan) {
		CU_ASSERT(tk_fault_fired());
		tk_fault_disarm();
	}
	CU_ASSERT(tk_wg_device_next_deadline(d) != UINT64_MAX);
	for (int t = 0; t < 10; t++) {
		tk_fake_clock_advance(&clk, TK_NSEC_PER_SEC);
		tk_wg_device_tick(d);
	}
	for (size_t i = 0; i < NP; i++)
		if (sent_by[i] == 0) {
			CU_FAIL("a peer's timer never fired");
			break;
		}
	for (size_t i = 0; i < NP; i += 2)
		tk_wg_peer_remove(d, peers[i]);
	unsigned before[NP];
	memcpy(before, sent_by, sizeof(before));
	for (int t = 0; t < 30; t++) {
		tk_fake_clock_advance(&clk, TK_NSEC_PER_SEC);
		tk_wg_device_tick(d);
		CU_ASSERT(tk_wg_device_next_deadline(d) > tk_clock_mono_ns(&clk.fc_clock) ||
		    tk_wg_device_next_deadline(d) == UINT64_MAX);
	}
	for (size_t i = 1; i < NP; i += 2)
		if (sent_by[i] == before[i]) {
			CU_FAIL("a remaining peer stopped firing");
			break;
		}
	for (size_t i = 0; i < NP; i += 2)
		CU_ASSERT(sent_by[i] == before[i]);
	tk_wg_device_free(d);
}

static void
test_timer_queue_many_peers(void)
{
	many_peers(false);
}

static void
test_timer_queue_fallback_scan(void)
{
	many_peers(true);
}

static const tk_test_case device_tests[] = {
	TK_TEST(test_timer_queue_many_peers),
	TK_TEST(test_timer_queue_fallback_scan),
	TK_TEST(test_handshake_and_data),
	TK_TEST(test_replay_and_garbage),
	TK_TEST(test_wrong_key_and_source),
	TK_TEST(test_timers_keepalive_rekey_expiry),
	TK_TEST(test_retransmit_gives_up),
	TK_TEST(test_persistent_keepalive_and_roaming),
	TK_TEST(test_under_load_cookie),
	TK_TEST(test_send_pkt_in_place),
	TK_TEST_END,
};

void
register_wg_device(void)
{
	tk_test_suite("wg_device", device_tests);
}
