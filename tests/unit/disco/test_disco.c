/*
 * libs/disco: the message encodings against Go's known answers
 * (disco/disco_test.go TestMarshalAndParse, tailscale.com v1.102.3), Go's
 * parse rules (version, list lengths), truncated, oversized and garbage
 * input, and sealing against libsodium's box directly.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "tk/disco.h"
#include "tk/err.h"
#include "tk/aead.h"
#include "tk_test.h"

void register_disco(void);

/* Go's vectors, as printed there (spaces kept). */
static const char *const go_ping =
    "01 00 01 02 03 04 05 06 07 08 09 0a 0b 0c";
static const char *const go_ping_key =
    "01 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 00 01 02 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 1e 1f";
static const char *const go_ping_pad =
    "01 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 00 00 00";
static const char *const go_ping_key_pad =
    "01 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 00 01 02 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 1e 1f 00 00 "
    "00";
static const char *const go_pong =
    "02 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 00 00 00 00 00 00 00 00 00 00 "
    "ff ff 02 03 04 05 04 d2";
static const char *const go_pong6 =
    "02 00 01 02 03 04 05 06 07 08 09 0a 0b 0c fe d0 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 12 1a 0a";
static const char *const go_cmm =
    "03 00";
static const char *const go_cmm_eps =
    "03 00 00 00 00 00 00 00 00 00 00 00 ff ff 01 02 03 04 02 37 20 01 00 00 "
    "00 00 00 00 00 00 00 00 00 00 34 56 03 15";
static const char *const go_bind =
    "04 00 00 00 00 01 00 00 00 02 00 01 02 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 1e 1f 00 01 02 03 04 05 "
    "06 07 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d "
    "1e 1f";
static const char *const go_bind_chal =
    "05 00 00 00 00 01 00 00 00 02 00 01 02 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 1e 1f 00 01 02 03 04 05 "
    "06 07 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d "
    "1e 1f";
static const char *const go_bind_ans =
    "06 00 00 00 00 01 00 00 00 02 00 01 02 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 1e 1f 00 01 02 03 04 05 "
    "06 07 08 09 0a 0b 0c 0d 0e 0f 10 11 12 13 14 15 16 17 18 19 1a 1b 1c 1d "
    "1e 1f";
static const char *const go_cmm_via =
    "07 00 00 01 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 1e 1f 00 01 02 03 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 1e 1f 00 01 02 00 04 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
    "1e 1f 00 00 00 00 00 00 00 7b 00 00 01 c8 00 00 00 00 3b 9a ca 00 00 00 "
    "00 0d f8 47 58 00 00 00 00 00 00 00 00 00 00 00 ff ff 01 02 03 04 02 37 "
    "20 01 00 00 00 00 00 00 00 00 00 00 00 00 34 56 03 15";
static const char *const go_alloc_req =
    "08 00 00 01 02 03 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 1e 1f 00 01 02 00 04 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 1e 1f 00 00 00 01";
static const char *const go_alloc_resp =
    "09 00 00 00 00 01 00 01 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 1e 1f 00 01 02 03 00 00 00 00 00 00 "
    "00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 1e 1f 00 01 "
    "02 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 "
    "00 00 00 00 1e 1f 00 00 00 00 00 00 00 7b 00 00 01 c8 00 00 00 00 3b 9a "
    "ca 00 00 00 00 0d f8 47 58 00 00 00 00 00 00 00 00 00 00 00 ff ff 01 02 "
    "03 04 02 37 20 01 00 00 00 00 00 00 00 00 00 00 00 00 34 56 03 15";

static size_t
unhex(uint8_t *out, size_t cap, const char *spaced)
{
	char compact[2048];
	size_t n = 0;

	for (const char *s = spaced; *s && n + 1 < sizeof(compact); s++)
		if (*s != ' ')
			compact[n++] = *s;
	compact[n] = '\0';
	return tk_test_unhex(out, cap, compact);
}

static const uint8_t txid[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

static void
test_write_go_vectors(void)
{
	uint8_t want[512], got[512], key[32] = { 0 };
	size_t wl, gl;
	tk_disco_ep ep;

	key[1] = 1, key[2] = 2, key[30] = 30, key[31] = 31;
	wl = unhex(want, sizeof(want), go_ping);
	gl = tk_disco_write_ping(got, sizeof(got), txid, NULL, 0);
	CU_ASSERT(gl == wl && memcmp(got, want, wl) == 0);
	wl = unhex(want, sizeof(want), go_ping_key);
	gl = tk_disco_write_ping(got, sizeof(got), txid, key, 0);
	CU_ASSERT(gl == wl && gl == TK_DISCO_PING_LEN && memcmp(got, want, wl) == 0);
	wl = unhex(want, sizeof(want), go_ping_pad);
	gl = tk_disco_write_ping(got, sizeof(got), txid, NULL, 3);
	CU_ASSERT(gl == wl && memcmp(got, want, wl) == 0);
	wl = unhex(want, sizeof(want), go_ping_key_pad);
	gl = tk_disco_write_ping(got, sizeof(got), txid, key, 3);
	CU_ASSERT(gl == wl && memcmp(got, want, wl) == 0);

	wl = unhex(want, sizeof(want), go_pong);
	tk_disco_ep_set(&ep, (const uint8_t[]){ 2, 3, 4, 5 }, 4, 1234);
	gl = tk_disco_write_pong(got, sizeof(got), txid, &ep);
	CU_ASSERT(gl == wl && memcmp(got, want, wl) == 0);
	wl = unhex(want, sizeof(want), go_pong6);
	uint8_t v6[16] = { 0xfe, 0xd0 };
	v6[15] = 0x12;
	tk_disco_ep_set(&ep, v6, 16, 6666);
	gl = tk_disco_write_pong(got, sizeof(got), txid, &ep);
	CU_ASSERT(gl == wl && memcmp(got, want, wl) == 0);

	wl = unhex(want, sizeof(want), go_cmm);
	gl = tk_disco_write_call_me_maybe(got, sizeof(got), NULL, 0);
	CU_ASSERT(gl == wl && memcmp(got, want, wl) == 0);
	tk_disco_ep eps[2];
	tk_disco_ep_set(&eps[0], (const uint8_t[]){ 1, 2, 3, 4 }, 4, 567);
	uint8_t v6b[16] = { 0x20, 0x01 }; /* 2001::3456 */
	v6b[14] = 0x34;
	v6b[15] = 0x56;
	tk_disco_ep_set(&eps[1], v6b, 16, 789);
	wl = unhex(want, sizeof(want), go_cmm_eps);
	gl = tk_disco_write_call_me_maybe(got, sizeof(got), eps, 2);
	CU_ASSERT(gl == wl && memcmp(got, want, wl) == 0);

	/* too small: 0, nothing promised about out */
	CU_ASSERT(tk_disco_write_ping(got, 13, txid, NULL, 0) == 0);
	CU_ASSERT(tk_disco_write_ping(got, 20, txid, NULL, (size_t)-1) == 0);
	CU_ASSERT(tk_disco_write_pong(got, 31, txid, &ep) == 0);
	CU_ASSERT(tk_disco_write_call_me_maybe(got, 19, eps, 2) == 0);
}

static void
test_parse_go_vectors(void)
{
	uint8_t b[512];
	size_t n;
	tk_disco_msg m;
	tk_disco_ep ep;

	n = unhex(b, sizeof(b), go_ping);
	CU_ASSERT(tk_disco_parse(b, n, &m) == 0 && m.type == TK_DISCO_PING &&
	    !m.has_node_key && m.padding == 0 && memcmp(m.txid, txid, 12) == 0);
	n = unhex(b, sizeof(b), go_ping_key_pad);
	CU_ASSERT(tk_disco_parse(b, n, &m) == 0 && m.has_node_key &&
	    m.node_key[30] == 30 && m.padding == 3);
	n = unhex(b, sizeof(b), go_ping_pad);
	CU_ASSERT(tk_disco_parse(b, n, &m) == 0 && !m.has_node_key && m.padding == 3);
	n = unhex(b, sizeof(b), go_pong);
	CU_ASSERT(tk_disco_parse(b, n, &m) == 0 && m.type == TK_DISCO_PONG &&
	    m.src.port == 1234 && m.src.ip[10] == 0xff && m.src.ip[12] == 2);
	n = unhex(b, sizeof(b), go_cmm);
	CU_ASSERT(tk_disco_parse(b, n, &m) == 0 && m.neps == 0);
	n = unhex(b, sizeof(b), go_cmm_eps);
	CU_ASSERT(tk_disco_parse(b, n, &m) == 0 && m.neps == 2);
	tk_disco_ep_at(m.eps, 1, &ep);
	CU_ASSERT(ep.port == 789 && ep.ip[0] == 0x20 && ep.ip[15] == 0x56);
	const char *const binds[] = { go_bind, go_bind_chal, go_bind_ans };
	for (int i = 0; i < 3; i++) {
		n = unhex(b, sizeof(b), binds[i]);
		CU_ASSERT(tk_disco_parse(b, n, &m) == 0 && m.type == 4 + i &&
		    m.vni == 1 && m.generation == 2 && m.remote_disco[31] == 0x1f &&
		    m.challenge[31] == 0x1f);
	}
	n = unhex(b, sizeof(b), go_cmm_via);
	CU_ASSERT(tk_disco_parse(b, n, &m) == 0 && m.relay.lamport_id == 123 &&
	    m.relay.vni == 456 && m.relay.bind_lifetime_ns == 1000000000ull &&
	    m.relay.steady_state_lifetime_ns == 60000000000ull && m.relay.neps == 2 &&
	    m.relay.client_disco[0][3] == 3 && m.relay.client_disco[1][4] == 4);
	n = unhex(b, sizeof(b), go_alloc_req);
	CU_ASSERT(tk_disco_parse(b, n, &m) == 0 && m.generation == 1 &&
	    m.client_disco[0][3] == 3 && m.client_disco[1][4] == 4);
	n = unhex(b, sizeof(b), go_alloc_resp);
	CU_ASSERT(tk_disco_parse(b, n, &m) == 0 && m.generation == 1 &&
	    m.relay.vni == 456 && m.relay.neps == 2);
}

/* Go's rules that are not plain "short is an error". */
static void
test_parse_rules(void)
{
	uint8_t b[512];
	size_t n;
	tk_disco_msg m;

	/* CallMeMaybe: a non-zero version, or a ragged list: an empty list */
	n = unhex(b, sizeof(b), go_cmm_eps);
	b[1] = 1;
	CU_ASSERT(tk_disco_parse(b, n, &m) == 0 && m.neps == 0);
	b[1] = 0;
	CU_ASSERT(tk_disco_parse(b, n - 1, &m) == 0 && m.neps == 0);
	/* Ping and Pong ignore the version and trailing bytes */
	n = unhex(b, sizeof(b), go_pong);
	b[1] = 7;
	b[n] = 0xee;
	CU_ASSERT(tk_disco_parse(b, n + 1, &m) == 0 && m.src.port == 1234);
	/* relay endpoint list: must be whole records, at least one */
	n = unhex(b, sizeof(b), go_cmm_via);
	CU_ASSERT(tk_disco_parse(b, n - 1, &m) == TK_EPROTO);
	CU_ASSERT(tk_disco_parse(b, n - 2 * TK_DISCO_EP_LEN, &m) == TK_EPROTO);
	CU_ASSERT(tk_disco_parse(b, n - TK_DISCO_EP_LEN, &m) == 0 && m.relay.neps == 1);
	b[1] = 1; /* non-zero version: an empty message, not an error */
	CU_ASSERT(tk_disco_parse(b, 2, &m) == 0);
	/* unknown types, and the empty message */
	const uint8_t unk[] = { 0x0a, 0 }, zero[] = { 0, 0 };
	CU_ASSERT(tk_disco_parse(unk, 2, &m) == TK_EPROTO);
	CU_ASSERT(tk_disco_parse(zero, 2, &m) == TK_EPROTO);
	CU_ASSERT(tk_disco_parse(b, 1, &m) == TK_EPROTO);
	CU_ASSERT(tk_disco_parse(b, 0, &m) == TK_EPROTO);
}

/* Every truncation of every vector: an error or a sane parse, never a
 * read past the end (ASan watches: each prefix is copied to its own
 * exact-size buffer). */
static void
test_truncated(void)
{
	const char *const all[] = { go_ping, go_ping_key, go_ping_pad,
		go_ping_key_pad, go_pong, go_pong6, go_cmm, go_cmm_eps, go_bind,
		go_bind_chal, go_bind_ans, go_cmm_via, go_alloc_req, go_alloc_resp };
	uint8_t b[512];
	unsigned errors = 0;

	for (size_t v = 0; v < sizeof(all) / sizeof(all[0]); v++) {
		size_t n = unhex(b, sizeof(b), all[v]);
		for (size_t k = 0; k < n; k++) {
			uint8_t *copy = malloc(k ? k : 1);
			tk_disco_msg m;
			memcpy(copy, b, k);
			int rv = tk_disco_parse(copy, k, &m);
			CU_ASSERT(rv == 0 || rv == TK_EPROTO);
			if (rv == 0 && m.neps)
				CU_ASSERT(m.eps >= copy &&
				    m.eps + m.neps * TK_DISCO_EP_LEN <= copy + k);
			if (rv == 0 && m.relay.neps)
				CU_ASSERT(m.relay.eps + m.relay.neps * TK_DISCO_EP_LEN <=
				    copy + k);
			errors += rv != 0;
			free(copy);
		}
	}
	CU_ASSERT(errors > 50);
}

static void
test_seal_open(void)
{
	uint8_t apub[32], apriv[32], bpub[32], bpriv[32], ab[32], ba[32];
	uint8_t msg[TK_DISCO_PING_LEN], pkt[256], out[256];
	size_t pl, ol;

	crypto_box_keypair(apub, apriv);
	crypto_box_keypair(bpub, bpriv);
	CU_ASSERT(tk_box_precompute(ab, bpub, apriv) == 0);
	CU_ASSERT(tk_box_precompute(ba, apub, bpriv) == 0);
	size_t ml = tk_disco_write_ping(msg, sizeof(msg), txid, apub, 0);
	CU_ASSERT(tk_disco_seal(pkt, sizeof(pkt), &pl, ab, apub, msg, ml) == 0);
	CU_ASSERT(pl == 124); /* Go's discoPingSize */
	CU_ASSERT(tk_disco_looks_like(pkt, pl));
	CU_ASSERT(memcmp(tk_disco_sender(pkt), apub, 32) == 0);
	CU_ASSERT(tk_disco_open(pkt, pl, ba, out, sizeof(out), &ol) == 0);
	CU_ASSERT(ol == ml && memcmp(out, msg, ml) == 0);
	/* it is libsodium's box with the nonce in front (Go's nacl/box) */
	CU_ASSERT(crypto_box_open_easy(out, pkt + TK_DISCO_HDR_LEN,
	    pl - TK_DISCO_HDR_LEN, pkt + 38, apub, bpriv) == 0);
	/* two seals: two nonces */
	uint8_t pkt2[256];
	size_t pl2;
	CU_ASSERT(tk_disco_seal(pkt2, sizeof(pkt2), &pl2, ab, apub, msg, ml) == 0);
	CU_ASSERT(memcmp(pkt + 38, pkt2 + 38, 24) != 0);

	/* every single-bit flip in the box is refused */
	unsigned refused = 0;
	for (size_t i = TK_DISCO_HDR_LEN - TK_DISCO_NONCE_LEN; i < pl; i++) {
		pkt[i] ^= 0x10;
		refused += tk_disco_open(pkt, pl, ba, out, sizeof(out), &ol) ==
		    TK_ECRYPTO;
		pkt[i] ^= 0x10;
	}
	CU_ASSERT(refused == pl - 38);
	/* a stranger's key, short, not disco, no room */
	uint8_t cpub[32], cpriv[32], cb[32];
	crypto_box_keypair(cpub, cpriv);
	CU_ASSERT(tk_box_precompute(cb, apub, cpriv) == 0);
	CU_ASSERT(tk_disco_open(pkt, pl, cb, out, sizeof(out), &ol) == TK_ECRYPTO);
	CU_ASSERT(tk_disco_open(pkt, TK_DISCO_OVERHEAD - 1, ba, out, sizeof(out),
	    &ol) == TK_EPROTO);
	CU_ASSERT(tk_disco_open(pkt, TK_DISCO_OVERHEAD, ba, out, sizeof(out),
	    &ol) == TK_ECRYPTO);
	CU_ASSERT(tk_disco_open(pkt, pl, ba, out, ml - 1, &ol) == TK_EMSGSIZE);
	pkt[0] = 'X';
	CU_ASSERT(tk_disco_open(pkt, pl, ba, out, sizeof(out), &ol) == TK_EPROTO);
	CU_ASSERT(!tk_disco_looks_like(pkt, pl));
	CU_ASSERT(tk_disco_seal(pkt, TK_DISCO_OVERHEAD + ml - 1, &pl, ab, apub, msg,
	    ml) == TK_EMSGSIZE);
	/* the UDP rule: magic and a whole key */
	memcpy(pkt, TK_DISCO_MAGIC, 6);
	CU_ASSERT(tk_disco_looks_like(pkt, 38) && !tk_disco_looks_like(pkt, 37));
}

void
register_disco(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_write_go_vectors),
		TK_TEST(test_parse_go_vectors),
		TK_TEST(test_parse_rules),
		TK_TEST(test_truncated),
		TK_TEST(test_seal_open),
		TK_TEST_END,
	};
	tk_test_suite("disco", cases);
}
