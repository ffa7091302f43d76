/*
 * Allocation failure anywhere in derpd's connection path (server setup,
 * ClientInfo, registration, routing, queues, PeerGone bookkeeping, close)
 * is handled: sweep the n-th allocation to fail until none is left; no
 * crash, and every allocation is freed.  Sans sockets, as the fuzz target.
 */
#include <string.h>

#include "server_int.h"
#include "tk/keys.h"
#include "tk/mem.h"
#include "tk_test.h"

static int
feed(derpdi_conn *c, const uint8_t *p, size_t n)
{
	if (c->st == CS_CLOSED)
		return -1;
	if (c->icap - c->ilen < n) {
		uint8_t *nb = tk_realloc(c->ib, c->ilen + n);
		if (nb == NULL)
			return -1;
		c->ib = nb;
		c->icap = c->ilen + n;
	}
	memcpy(c->ib + c->ilen, p, n);
	c->ilen += n;
	if (c->st == CS_HTTP)
		derpdi_http_input(c);
	if (c->st == CS_INFO || c->st == CS_DERP)
		derpdi_derp_input(c);
	return c->st == CS_CLOSED ? -1 : 0;
}

static void
frame(derpdi_conn *c, uint8_t type, const void *p, size_t n)
{
	uint8_t f[5 + 256];
	tk_derp_frame_hdr(f, type, (uint32_t)n);
	memcpy(f + 5, p, n);
	feed(c, f, 5 + n);
}

static void
hello(derpdi_conn *c, const uint8_t priv[32])
{
	static const char req[] = "GET /derp HTTP/1.1\r\nUpgrade: DERP\r\n\r\n";
	uint8_t pub[32], f[32 + 200];
	char js[128];
	size_t jl, bl;
	tk_derp_client_info ci = { .version = 2, .can_ack_pings = true };

	if (feed(c, (const uint8_t *)req, sizeof(req) - 1) != 0)
		return;
	tk_key_public(pub, priv);
	tk_derp_client_info_json(&ci, js, sizeof(js), &jl);
	memcpy(f, pub, 32);
	if (tk_derp_box_seal(f + 32, sizeof(f) - 32, &bl, (const uint8_t *)js, jl,
	    c->s->pub, priv, c->s->rng) != 0)
		return;
	frame(c, TK_DERP_FRAME_CLIENT_INFO, f, 32 + bl);
}

/* Closed conns are freed by the next idle pass. */
static bool
alive(const derpd_server *s, const derpdi_conn *c)
{
	for (const derpdi_conn *x = s->conns; x; x = x->next)
		if (x == c)
			return true;
	return false;
}

static uint64_t sent, peer_gone;

static void
scenario(void)
{
	static tk_fake_rng rng;
	/* distinct after X25519 clamping (which clears the low 3 bits) */
	uint8_t pa[32] = { 0x10 }, pb[32] = { 0x20 }, kb[32], nobody[32];
	derpd_server *s;

	tk_fake_rng_init(&rng, 3);
	derpd_server_config cfg = { .stun_port = -1, .rng = &rng.fr_rng };
	if (derpd_server_new(&s, &cfg, NULL, 0) != 0)
		return;
	tk_key_public(kb, pb);
	memset(nobody, 9, 32);
	derpdi_conn *a = derpdi_conn_new(s, -1, DERPDI_TLS_NONE);
	derpdi_conn *b = derpdi_conn_new(s, -1, DERPDI_TLS_NONE);
	sent = peer_gone = 0;
	if (a && b) {
		hello(a, pa);
		hello(b, pb);
		uint8_t pkt[32 + 80] = { 0 };
		memcpy(pkt, kb, 32);
		memcpy(pkt + 32, TK_DISCO_MAGIC, TK_DISCO_MAGIC_LEN);
		for (int i = 0; i < 3; i++)
			frame(a, TK_DERP_FRAME_SEND_PACKET, pkt, sizeof(pkt));
		memcpy(pkt, nobody, 32);
		frame(a, TK_DERP_FRAME_SEND_PACKET, pkt, sizeof(pkt)); /* NotHere */
		frame(a, TK_DERP_FRAME_PING, "12345678", 8);
		frame(a, 0x55, "xyz", 3);
		derpdi_server_idle(s);	     /* b receives: b has heard from a */
		if (alive(s, b))
			frame(b, TK_DERP_FRAME_SEND_PACKET, pkt, 40);
		derpdi_server_idle(s);
		if (alive(s, a))
			derpdi_conn_close(a, CLOSE_EOF); /* b gets PeerGone(a) */
		derpdi_server_idle(s);
		if (alive(s, b))
			sent = s->st.packets_sent;
		peer_gone = s->st.peer_gone_disconnected_frames;
	}
	derpd_server_free(s);
}

static void
test_alloc_failures(void)
{
	tk_alloc_stats st0, st1;
	unsigned long n;

	tk_alloc_stats_get(&st0);
	scenario(); /* no fault: the baseline, which does relay */
	tk_alloc_stats_get(&st1);
	CU_ASSERT(sent == 3 && peer_gone == 1);
	CU_ASSERT(st1.as_allocs - st0.as_allocs == st1.as_frees - st0.as_frees);
	for (n = 1; n < 5000; n++) {
		tk_alloc_stats_get(&st0);
		tk_fault_arm(n);
		scenario();
		bool fired = tk_fault_fired();
		tk_fault_disarm();
		tk_alloc_stats_get(&st1);
		if (st1.as_allocs - st0.as_allocs != st1.as_frees - st0.as_frees) {
			fprintf(stderr, "leak with fault %lu\n", n);
			CU_FAIL("leak");
			break;
		}
		if (!fired)
			break;
	}
	fprintf(stderr, "derpd fault sweep: %lu allocation points\n", n - 1);
	CU_ASSERT(n > 10 && n < 5000); /* the sweep covered the path and ended */
}

void register_derpd_fault(void);

void
register_derpd_fault(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_alloc_failures),
		TK_TEST_END,
	};
	tk_test_suite("derpd_fault", cases);
}
