/*
 * ts2021 known answers: the handshake vector of control-protocol.md
 * Appendix A (computed by the digest's authors, not upstream; the live
 * tests against testcontrol and headscale are what confirm it), the
 * server side played with the same Noise engine, big-endian record nonces,
 * and bad input.
 */
#include <string.h>

#include "tk/endian.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk/noise.h"
#include "tk_test.h"
#include "ts2021.h"

void register_ts2021(void);

#define CTRL_PRIV "40ab1b58e9076c7a4d9d07291f5edf9d1aa017eb949624ba683317f48a640369"
#define CTRL_PUB  "50d20b455ecf12bc453f83c2cfdb2a24925d06cf2598dcaa54e91af82ce9f765"
#define MACH_PRIV "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1"
#define MACH_EPH  "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a"
#define CTRL_EPH  "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b"
#define INIT \
	"0091010060ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944" \
	"3db45fc06081743dcd258ac610c05df03befd18a22bf7c282687ba09c4dcbcd5c86dd0f7ae" \
	"86664e4dbfd0008f6c2f5e4097ab27f4819ff33e6645683a709020"
#define RESP \
	"02003095ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f14480884392de" \
	"cf39b073e2e64291c65029bdeeed"
#define REC_C0 "04001d8d4bf1718321c65a6f954a38d8cd7c2a4d7a0b8430ddd1634e27c8049a"
#define REC_C1 "0400163653ca4aaea4c2477e6213a4a03e889cf2a488be723d"
#define REC_S0 "04001dd9f0b3ad399129e87b3955f8f73914e06bf7104b38f7527e7785c27169"
#define REC_S1 "04001656015bb07c157ba78b221bd133eb7f5077f566ec37cc"

static void
client(ts2021 *c)
{
	uint8_t mp[32], sp[32], ep[32], init[TS2021_INIT_LEN], want[TS2021_INIT_LEN];

	tk_test_unhex(mp, 32, MACH_PRIV);
	tk_test_unhex(sp, 32, CTRL_PUB);
	tk_test_unhex(ep, 32, MACH_EPH);
	CU_ASSERT_EQUAL_FATAL(ts2021_client_init(c, 145, mp, sp, ep, NULL, init), 0);
	tk_test_unhex(want, sizeof(want), INIT);
	TK_ASSERT_MEM_EQ(init, want, sizeof(want));
}

static void
test_appendix_a(void)
{
	ts2021 c;
	uint8_t resp[TS2021_RESP_LEN], rec[64];
	size_t used, n;
	char err[128];
	tk_buf out, in;

	client(&c);
	tk_test_unhex(resp, sizeof(resp), RESP);
	/* byte by byte: needs more until the whole response is there */
	CU_ASSERT_EQUAL(ts2021_client_finish(&c, resp, 2, &used, err, sizeof(err)),
	    TK_EAGAIN);
	CU_ASSERT_EQUAL(ts2021_client_finish(&c, resp, 50, &used, err, sizeof(err)),
	    TK_EAGAIN);
	CU_ASSERT_EQUAL_FATAL(ts2021_client_finish(&c, resp, sizeof(resp), &used, err,
	    sizeof(err)), 0);
	CU_ASSERT_EQUAL(used, TS2021_RESP_LEN);
	uint8_t h[32];
	tk_test_unhex(h, 32, "8211b002cd848ca6bf8451589a4aacbe32e634e7623ed541788adf6ee154e019");
	TK_ASSERT_MEM_EQ(tk_noise_hs_hash(&c.hs), h, 32);
	tk_buf_init(&out);
	CU_ASSERT_EQUAL(ts2021_seal(&c, (const uint8_t *)"client>server", 13, &out), 0);
	n = tk_test_unhex(rec, sizeof(rec), REC_C0);
	CU_ASSERT(out.len == n && memcmp(out.data, rec, n) == 0);
	tk_buf_reset(&out);
	CU_ASSERT_EQUAL(ts2021_seal(&c, (const uint8_t *)"second", 6, &out), 0);
	n = tk_test_unhex(rec, sizeof(rec), REC_C1);
	CU_ASSERT(out.len == n && memcmp(out.data, rec, n) == 0);
	/* server records, split across calls at every byte */
	tk_buf_init(&in);
	n = tk_test_unhex(rec, sizeof(rec), REC_S0);
	for (size_t i = 0; i < n; i++)
		CU_ASSERT_EQUAL(ts2021_open(&c, rec + i, 1, &in), 0);
	n = tk_test_unhex(rec, sizeof(rec), REC_S1);
	CU_ASSERT_EQUAL(ts2021_open(&c, rec, n, &in), 0);
	CU_ASSERT(in.len == 19 && memcmp(in.data, "server>clientsecond", 19) == 0);
	tk_buf_fini(&out);
	tk_buf_fini(&in);
	ts2021_wipe(&c);
}

static void
test_bad_input(void)
{
	ts2021 c;
	uint8_t resp[TS2021_RESP_LEN], rec[64];
	size_t used, n;
	char err[128];
	tk_buf in;

	/* an error frame: its text is reported */
	client(&c);
	const uint8_t e[] = { 3, 0, 5, 'n', 'o', 'p', 'e', '!' };
	CU_ASSERT_EQUAL(ts2021_client_finish(&c, e, sizeof(e), &used, err, sizeof(err)),
	    TK_EPROTO);
	CU_ASSERT(strstr(err, "nope!") != NULL);
	ts2021_wipe(&c);
	/* a wrong length or type */
	client(&c);
	tk_test_unhex(resp, sizeof(resp), RESP);
	resp[2] = 47;
	CU_ASSERT_EQUAL(ts2021_client_finish(&c, resp, sizeof(resp), &used, err,
	    sizeof(err)), TK_EPROTO);
	ts2021_wipe(&c);
	/* a flipped tag bit */
	client(&c);
	tk_test_unhex(resp, sizeof(resp), RESP);
	resp[50] ^= 1;
	CU_ASSERT_EQUAL(ts2021_client_finish(&c, resp, sizeof(resp), &used, err,
	    sizeof(err)), TK_ECRYPTO);
	ts2021_wipe(&c);
	/* records: garbage type, oversized, corrupted, and dead afterwards */
	tk_buf_init(&in);
	for (int k = 0; k < 3; k++) {
		client(&c);
		tk_test_unhex(resp, sizeof(resp), RESP);
		CU_ASSERT_EQUAL_FATAL(ts2021_client_finish(&c, resp, sizeof(resp), &used,
		    err, sizeof(err)), 0);
		n = tk_test_unhex(rec, sizeof(rec), REC_S0);
		if (k == 0)
			rec[0] = 0x03;
		else if (k == 1)
			tk_be16_store(rec + 1, 4094);
		else
			rec[10] ^= 0x80;
		CU_ASSERT_NOT_EQUAL(ts2021_open(&c, rec, n, &in), 0);
		CU_ASSERT(c.dead);
		CU_ASSERT_EQUAL(ts2021_open(&c, rec, n, &in), TK_ESTATE);
		CU_ASSERT_EQUAL(in.len, 0);
		ts2021_wipe(&c);
	}
	tk_buf_fini(&in);
}

/* Large writes split at 4077 plaintext bytes; a peer engine reads them. */
static void
test_split_and_roundtrip(void)
{
	ts2021 c;
	uint8_t sp[32], spub[32], cpriv[32], init[TS2021_INIT_LEN], m2[64];
	static uint8_t big[10000];
	char prologue[] = "Tailscale Control Protocol v145";
	tk_noise_hs srv;
	tk_noise_config sc = { 0 };
	size_t n, used;
	char err[64];

	tk_test_unhex(sp, 32, CTRL_PRIV);
	tk_test_unhex(spub, 32, CTRL_PUB);
	tk_test_unhex(cpriv, 32, MACH_PRIV);
	CU_ASSERT_EQUAL_FATAL(ts2021_client_init(&c, 145, cpriv, spub, NULL, NULL, init), 0);
	sc.protocol_name = TK_NOISE_IK_NAME;
	sc.prologue = (const uint8_t *)prologue;
	sc.prologue_len = strlen(prologue);
	sc.role = TK_NOISE_RESPONDER;
	sc.local_static_priv = sp;
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_init(&srv, &sc), 0);
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_read_msg1(&srv, init + 5, 96, NULL, 0, &n), 0);
	m2[0] = 2;
	tk_be16_store(m2 + 1, 48);
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_write_msg2(&srv, NULL, 0, m2 + 3, 48, &n), 0);
	CU_ASSERT_EQUAL_FATAL(ts2021_client_finish(&c, m2, 51, &used, err, sizeof(err)), 0);
	uint8_t stx[32], srx[32];
	tk_noise_hs_split(&srv, stx, srx);
	tk_noise_cs rx;
	tk_noise_cs_init(&rx, srx, TK_NONCE_BE);
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	tk_buf out;
	tk_buf_init(&out);
	CU_ASSERT_EQUAL(ts2021_seal(&c, big, sizeof(big), &out), 0);
	/* 4077 + 4077 + 1846 */
	CU_ASSERT_EQUAL(out.len, 3 * (3 + 16) + sizeof(big));
	size_t off = 0, got = 0;
	static uint8_t pt[10000];
	while (off < out.len) {
		size_t cl = tk_be16_load(out.data + off + 1);
		CU_ASSERT(cl <= TS2021_MAX_CIPHER);
		CU_ASSERT_EQUAL(tk_noise_cs_open(&rx, pt + got, NULL, 0,
		    out.data + off + 3, cl), 0);
		got += cl - 16;
		off += 3 + cl;
	}
	CU_ASSERT(got == sizeof(big) && memcmp(pt, big, got) == 0);
	tk_buf_fini(&out);
	tk_noise_hs_wipe(&srv);
	ts2021_wipe(&c);
}

/*
 * Out of memory while two records arrive in one call (the first already
 * decrypted, its nonce used): a clean TK_ENOMEM, the connection dead, and
 * a later call says so (TK_ESTATE) instead of decrypting the first record
 * again and reporting a false authentication failure.
 */
static void
test_open_alloc_failure(void)
{
	uint8_t resp[TS2021_RESP_LEN], rec[128];
	size_t used, n, k;
	char err[128];
	int fired_total = 0;

	TK_TEST_NEED_FAULT_INJECTION();
	for (unsigned long f = 1; f < 100; f++) {
		ts2021 c;
		tk_buf in;
		bool fired;
		int rv;

		client(&c);
		tk_test_unhex(resp, sizeof(resp), RESP);
		CU_ASSERT_EQUAL_FATAL(ts2021_client_finish(&c, resp, sizeof(resp),
		    &used, err, sizeof(err)), 0);
		n = tk_test_unhex(rec, sizeof(rec), REC_S0);
		n += tk_test_unhex(rec + n, sizeof(rec) - n, REC_S1);
		/* 50 bytes already there: the first record fits the 64-byte
		 * buffer, the second makes it grow */
		tk_buf_init(&in);
		CU_ASSERT_FATAL(tk_buf_append(&in, rec, 50) == 0);
		tk_fault_arm(f);
		rv = ts2021_open(&c, rec, n, &in);
		fired = tk_fault_fired();
		tk_fault_disarm();
		if (!fired) {
			CU_ASSERT_EQUAL(rv, 0);
			CU_ASSERT(in.len == 50 + 19 &&
			    memcmp(in.data + 50, "server>clientsecond", 19) == 0);
			tk_buf_fini(&in);
			ts2021_wipe(&c);
			break;
		}
		fired_total++;
		CU_ASSERT_EQUAL(rv, TK_ENOMEM);
		CU_ASSERT(c.dead);
		/* the next bytes from the socket */
		k = tk_test_unhex(rec, sizeof(rec), REC_S1);
		rv = ts2021_open(&c, rec, k, &in);
		CU_ASSERT_EQUAL(rv, TK_ESTATE);
		if (rv == TK_ECRYPTO)
			fprintf(stderr, "\n  fault %lu: retry says ECRYPTO\n", f);
		tk_buf_fini(&in);
		ts2021_wipe(&c);
	}
	CU_ASSERT(fired_total > 0);
}

static const tk_test_case tests[] = {
	TK_TEST(test_appendix_a),
	TK_TEST(test_bad_input),
	TK_TEST(test_split_and_roundtrip),
	TK_TEST(test_open_alloc_failure),
	TK_TEST_END,
};

void
register_ts2021(void)
{
	tk_test_suite("ts2021", tests);
}
