/*
 * Noise known answers: cacophony's IK and IKpsk2 vectors, the Tailscale
 * ts2021 control handshake (UNCONFIRMED digest vector), and a WireGuard-shaped
 * IKpsk2 handshake.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk/core.h"
#include "tk/noise.h"
#include "tk_test.h"

void register_noise_kat(void);

struct vec {
	char proto[64];
	uint8_t prologue[64];
	size_t prologue_len;
	uint8_t is[32], ie[32], irs[32], rs[32], re[32], hh[32], psk[32];
	int has_psk;
	int nmsg;
	uint8_t payload[8][64];
	size_t payload_len[8];
	uint8_t ct[8][160];
	size_t ct_len[8];
};

static int
load_vectors(struct vec *out, int max)
{
	char *text = tk_test_read_file(tk_test_vector_path("noise_cacophony_ik.txt"), NULL);
	int n = -1;
	char *save = NULL;

	if (text == NULL)
		return -1;
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		struct vec *v = n >= 0 ? &out[n] : NULL;
		char *eq = strchr(l, '=');

		if (l[0] == '#' || eq == NULL)
			continue;
		*eq = '\0';
		const char *val = eq + 1;
		if (strcmp(l, "protocol") == 0) {
			if (++n >= max)
				break;
			memset(&out[n], 0, sizeof(out[n]));
			snprintf(out[n].proto, sizeof(out[n].proto), "%s", val);
		} else if (v == NULL) {
			continue;
		} else if (strcmp(l, "init_prologue") == 0) {
			v->prologue_len = tk_test_unhex(v->prologue, sizeof(v->prologue), val);
		} else if (strcmp(l, "init_static") == 0) {
			tk_test_unhex(v->is, 32, val);
		} else if (strcmp(l, "init_ephemeral") == 0) {
			tk_test_unhex(v->ie, 32, val);
		} else if (strcmp(l, "init_remote_static") == 0) {
			tk_test_unhex(v->irs, 32, val);
		} else if (strcmp(l, "resp_static") == 0) {
			tk_test_unhex(v->rs, 32, val);
		} else if (strcmp(l, "resp_ephemeral") == 0) {
			tk_test_unhex(v->re, 32, val);
		} else if (strcmp(l, "handshake_hash") == 0) {
			tk_test_unhex(v->hh, 32, val);
		} else if (strcmp(l, "psk") == 0) {
			tk_test_unhex(v->psk, 32, val);
			v->has_psk = 1;
		} else if (strcmp(l, "msg") == 0 && v->nmsg < 8) {
			char buf[512];
			char *sp;

			snprintf(buf, sizeof(buf), "%s", val);
			sp = strchr(buf, ' ');
			if (sp == NULL)
				continue;
			*sp = '\0';
			v->payload_len[v->nmsg] = tk_test_unhex(v->payload[v->nmsg], 64, buf);
			v->ct_len[v->nmsg] = tk_test_unhex(v->ct[v->nmsg], 160, sp + 1);
			v->nmsg++;
		}
	}
	free(text);
	return n + 1;
}

static void
run_vector(const struct vec *v)
{
	tk_noise_hs ini, rsp;
	tk_noise_config ci = { 0 }, cr = { 0 };
	uint8_t buf[256], pt[256], pub[32];
	size_t len, plen;
	uint8_t ik_s[32], ik_r[32], rk_s[32], rk_r[32];
	tk_noise_cs i_send, i_recv, r_send, r_recv;

	/* the vector's remote static is the responder's public key */
	CU_ASSERT_EQUAL_FATAL(tk_key_public(pub, v->rs), 0);
	TK_ASSERT_MEM_EQ(pub, v->irs, 32);

	ci.protocol_name = v->proto;
	ci.prologue = v->prologue;
	ci.prologue_len = v->prologue_len;
	ci.role = TK_NOISE_INITIATOR;
	ci.local_static_priv = v->is;
	ci.remote_static_pub = v->irs;
	ci.psk = v->has_psk ? v->psk : NULL;
	cr = ci;
	cr.role = TK_NOISE_RESPONDER;
	cr.local_static_priv = v->rs;
	cr.remote_static_pub = NULL;
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_init(&ini, &ci), 0);
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_init(&rsp, &cr), 0);
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_set_ephemeral(&ini, v->ie), 0);
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_set_ephemeral(&rsp, v->re), 0);

	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_write_msg1(&ini, v->payload[0],
	    v->payload_len[0], buf, sizeof(buf), &len), 0);
	CU_ASSERT_EQUAL(len, v->ct_len[0]);
	TK_ASSERT_MEM_EQ(buf, v->ct[0], v->ct_len[0]);
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_read_msg1(&rsp, buf, len, pt,
	    sizeof(pt), &plen), 0);
	CU_ASSERT_EQUAL(plen, v->payload_len[0]);
	TK_ASSERT_MEM_EQ(pt, v->payload[0], plen);
	CU_ASSERT_EQUAL_FATAL(tk_key_public(pub, v->is), 0);
	TK_ASSERT_MEM_EQ(rsp.hs_rs, pub, 32); /* responder learned our static */

	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_write_msg2(&rsp, v->payload[1],
	    v->payload_len[1], buf, sizeof(buf), &len), 0);
	CU_ASSERT_EQUAL(len, v->ct_len[1]);
	TK_ASSERT_MEM_EQ(buf, v->ct[1], v->ct_len[1]);
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_read_msg2(&ini, buf, len, pt,
	    sizeof(pt), &plen), 0);
	TK_ASSERT_MEM_EQ(pt, v->payload[1], plen);

	TK_ASSERT_MEM_EQ(tk_noise_hs_hash(&ini), v->hh, 32);
	TK_ASSERT_MEM_EQ(tk_noise_hs_hash(&rsp), v->hh, 32);

	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_split(&ini, ik_s, ik_r), 0);
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_split(&rsp, rk_s, rk_r), 0);
	TK_ASSERT_MEM_EQ(ik_s, rk_r, 32);
	TK_ASSERT_MEM_EQ(ik_r, rk_s, 32);
	tk_noise_cs_init(&i_send, ik_s, TK_NONCE_LE);
	tk_noise_cs_init(&i_recv, ik_r, TK_NONCE_LE);
	tk_noise_cs_init(&r_send, rk_s, TK_NONCE_LE);
	tk_noise_cs_init(&r_recv, rk_r, TK_NONCE_LE);
	for (int m = 2; m < v->nmsg; m++) {
		int from_init = (m % 2) == 0;
		tk_noise_cs *tx = from_init ? &i_send : &r_send;
		tk_noise_cs *rx = from_init ? &r_recv : &i_recv;

		CU_ASSERT_EQUAL(tk_noise_cs_seal(tx, buf, NULL, 0, v->payload[m],
		    v->payload_len[m]), 0);
		CU_ASSERT_EQUAL(v->payload_len[m] + 16, v->ct_len[m]);
		TK_ASSERT_MEM_EQ(buf, v->ct[m], v->ct_len[m]);
		CU_ASSERT_EQUAL(tk_noise_cs_open(rx, pt, NULL, 0, buf,
		    v->ct_len[m]), 0);
		TK_ASSERT_MEM_EQ(pt, v->payload[m], v->payload_len[m]);
	}
	tk_noise_hs_wipe(&ini);
	tk_noise_hs_wipe(&rsp);
}

static void
test_cacophony(void)
{
	struct vec *v = calloc(4, sizeof(*v));
	int n = load_vectors(v, 4);
	int ik = 0, psk = 0;

	CU_ASSERT_EQUAL_FATAL(n, 2);
	for (int i = 0; i < n; i++) {
		CU_ASSERT_EQUAL(v[i].nmsg, 6);
		if (strcmp(v[i].proto, TK_NOISE_IK_NAME) == 0)
			ik++;
		if (strcmp(v[i].proto, TK_NOISE_IKPSK2_NAME) == 0)
			psk++;
		run_vector(&v[i]);
	}
	CU_ASSERT_EQUAL(ik, 1);
	CU_ASSERT_EQUAL(psk, 1);
	free(v);
}

/*
 * Tailscale ts2021 (control/controlbase), shared/reference/control-protocol.md
 * Appendix A.  UNCONFIRMED: computed for the digest, not captured from a real
 * server; ctrld's interop tests against testcontrol/headscale confirm it.
 */
static void
test_ts2021_appendix_a_unconfirmed(void)
{
	static const char prologue[] = "Tailscale Control Protocol v145";
	uint8_t srv_priv[32], cli_priv[32], cli_e[32], srv_e[32], srv_pub[32];
	uint8_t want[128], frame[128], msg[128], pt[64];
	size_t len, plen, wn;
	tk_noise_hs cli, srv;
	tk_noise_config cc = { 0 }, sc = { 0 };
	uint8_t cs_k[32], cr_k[32], ss_k[32], sr_k[32];
	tk_noise_cs c_tx, s_tx, s_rx;

	tk_test_unhex(srv_priv, 32, "40ab1b58e9076c7a4d9d07291f5edf9d1aa017eb949624ba683317f48a640369");
	tk_test_unhex(cli_priv, 32, "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1");
	tk_test_unhex(cli_e, 32, "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a");
	tk_test_unhex(srv_e, 32, "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b");
	CU_ASSERT_EQUAL_FATAL(tk_key_public(srv_pub, srv_priv), 0);

	cc.protocol_name = TK_NOISE_IK_NAME;
	cc.prologue = (const uint8_t *)prologue;
	cc.prologue_len = strlen(prologue);
	cc.role = TK_NOISE_INITIATOR;
	cc.local_static_priv = cli_priv;
	cc.remote_static_pub = srv_pub;
	sc = cc;
	sc.role = TK_NOISE_RESPONDER;
	sc.local_static_priv = srv_priv;
	sc.remote_static_pub = NULL;
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_init(&cli, &cc), 0);
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_init(&srv, &sc), 0);
	tk_noise_hs_set_ephemeral(&cli, cli_e);
	tk_noise_hs_set_ephemeral(&srv, srv_e);

	/* initiation: u16 BE version 145, type 1, u16 BE length 96, msg1 */
	frame[0] = 0x00;
	frame[1] = 0x91;
	frame[2] = 0x01;
	frame[3] = 0x00;
	frame[4] = 0x60;
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_write_msg1(&cli, NULL, 0, frame + 5,
	    sizeof(frame) - 5, &len), 0);
	CU_ASSERT_EQUAL(len, 96);
	wn = tk_test_unhex(want, sizeof(want),
	    "0091010060ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c7944"
	    "3db45fc06081743dcd258ac610c05df03befd18a22bf7c282687ba09c4dcbcd5c86dd0f7ae"
	    "86664e4dbfd0008f6c2f5e4097ab27f4819ff33e6645683a709020");
	CU_ASSERT_EQUAL(wn, 101);
	TK_ASSERT_MEM_EQ(frame, want, 101);
	{
		char b64[TK_BASE64_LEN(101) + 1];

		tk_base64_encode(b64, frame, 101);
		CU_ASSERT_STRING_EQUAL(b64,
		    "AJEBAGDKNd71rlbOwz3CA2cxqxSJa8THXbsHph+Hn446+kx5RD20X8BggXQ9zSWKxhDAXfA779GKIr98KCaHugnE3LzVyG3Q966GZk5Nv9AAj2wvXkCXqyf0gZ/zPmZFaDpwkCA=");
	}
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_read_msg1(&srv, frame + 5, 96, pt,
	    sizeof(pt), &plen), 0);
	CU_ASSERT_EQUAL(plen, 0);

	/* response: type 2, u16 BE length 48, msg2 */
	frame[0] = 0x02;
	frame[1] = 0x00;
	frame[2] = 0x30;
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_write_msg2(&srv, NULL, 0, frame + 3,
	    sizeof(frame) - 3, &len), 0);
	CU_ASSERT_EQUAL(len, 48);
	tk_test_unhex(want, sizeof(want),
	    "02003095ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f14480884392decf39b073e2e64291c65029bdeeed");
	TK_ASSERT_MEM_EQ(frame, want, 51);
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_read_msg2(&cli, frame + 3, 48, pt,
	    sizeof(pt), &plen), 0);
	tk_test_unhex(want, 32, "8211b002cd848ca6bf8451589a4aacbe32e634e7623ed541788adf6ee154e019");
	TK_ASSERT_MEM_EQ(tk_noise_hs_hash(&cli), want, 32);

	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_split(&cli, cs_k, cr_k), 0);
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_split(&srv, ss_k, sr_k), 0);
	tk_test_unhex(want, 32, "f4bd0d859f6f568bb054f0d66ae852b1d5f3ae70f45aadb59c8bde1a9694f646");
	TK_ASSERT_MEM_EQ(cs_k, want, 32);
	tk_test_unhex(want, 32, "8d7078c410e71fc677d637891fe3a80f55851f58f8c330992979cb9e2d2ab311");
	TK_ASSERT_MEM_EQ(cr_k, want, 32);

	/* transport records: type 4, u16 BE length, ChaCha20-Poly1305 with a
	 * BIG-endian counter nonce, empty AD */
	static const struct {
		int from_client;
		const char *text, *hex;
	} recs[] = {
		{ 1, "client>server", "04001d8d4bf1718321c65a6f954a38d8cd7c2a4d7a0b8430ddd1634e27c8049a" },
		{ 1, "second", "0400163653ca4aaea4c2477e6213a4a03e889cf2a488be723d" },
		{ 0, "server>client", "04001dd9f0b3ad399129e87b3955f8f73914e06bf7104b38f7527e7785c27169" },
		{ 0, "second", "04001656015bb07c157ba78b221bd133eb7f5077f566ec37cc" },
	};
	tk_noise_cs_init(&c_tx, cs_k, TK_NONCE_BE);
	tk_noise_cs_init(&s_tx, ss_k, TK_NONCE_BE);
	tk_noise_cs_init(&s_rx, sr_k, TK_NONCE_BE);
	for (size_t i = 0; i < TK_ARRAY_LEN(recs); i++) {
		size_t n = strlen(recs[i].text);
		tk_noise_cs *tx = recs[i].from_client ? &c_tx : &s_tx;

		msg[0] = 0x04;
		tk_be16_store(msg + 1, (uint16_t)(n + 16));
		CU_ASSERT_EQUAL(tk_noise_cs_seal(tx, msg + 3, NULL, 0,
		    (const uint8_t *)recs[i].text, n), 0);
		wn = tk_test_unhex(want, sizeof(want), recs[i].hex);
		CU_ASSERT_EQUAL(wn, n + 19);
		TK_ASSERT_MEM_EQ(msg, want, wn);
		if (recs[i].from_client) {
			CU_ASSERT_EQUAL(tk_noise_cs_open(&s_rx, pt, NULL, 0,
			    msg + 3, n + 16), 0);
			TK_ASSERT_MEM_EQ(pt, recs[i].text, n);
		}
	}
	/* negative control: a little-endian nonce at n=1 gives other bytes */
	{
		tk_noise_cs le;

		tk_noise_cs_init(&le, cs_k, TK_NONCE_LE);
		le.cs_n = 1;
		tk_noise_cs_seal(&le, msg, NULL, 0, (const uint8_t *)"second", 6);
		tk_test_unhex(want, sizeof(want), "3ceaf472794aad9de6c16055802ff32df230a362e7da");
		TK_ASSERT_MEM_EQ(msg, want, 22);
	}
	tk_noise_hs_wipe(&cli);
	tk_noise_hs_wipe(&srv);
}

/* WireGuard's handshake is IKpsk2 with its identifier as prologue and a
 * 12-byte TAI64N payload in message 1, empty in message 2 (whitepaper §5.4). */
static void
test_wireguard_shape(void)
{
	static const char ident[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";
	tk_fake_rng rng;
	uint8_t ipriv[32], rpriv[32], rpub[32], psk[32] = { 0 };
	uint8_t m1[256], m2[256], pt[64], tai[12];
	size_t l1, l2, pl;
	tk_noise_hs i, r;
	tk_noise_config ci = { 0 }, cr = { 0 };
	uint8_t is[32], ir[32], rs[32], rr[32];

	tk_fake_rng_init(&rng, 99);
	tk_key_generate(ipriv, &rng.fr_rng);
	tk_key_generate(rpriv, &rng.fr_rng);
	tk_key_public(rpub, rpriv);
	memset(tai, 0x11, sizeof(tai));
	ci.protocol_name = TK_NOISE_IKPSK2_NAME;
	ci.prologue = (const uint8_t *)ident;
	ci.prologue_len = strlen(ident);
	ci.role = TK_NOISE_INITIATOR;
	ci.local_static_priv = ipriv;
	ci.remote_static_pub = rpub;
	ci.psk = psk;
	ci.rng = &rng.fr_rng;
	cr = ci;
	cr.role = TK_NOISE_RESPONDER;
	cr.local_static_priv = rpriv;
	cr.remote_static_pub = NULL;
	cr.psk = NULL; /* learned after msg1 names the peer */
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_init(&i, &ci), 0);
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_init(&r, &cr), 0);
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_write_msg1(&i, tai, 12, m1, sizeof(m1), &l1), 0);
	/* initiation body: ephemeral 32 + static 48 + timestamp 28 = 108
	 * (148 on the wire with type, sender index, mac1, mac2) */
	CU_ASSERT_EQUAL(l1, 108);
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_read_msg1(&r, m1, l1, pt, sizeof(pt), &pl), 0);
	CU_ASSERT_EQUAL(pl, 12);
	TK_ASSERT_MEM_EQ(pt, tai, 12);
	/* responder cannot answer before it knows the psk */
	CU_ASSERT_EQUAL(tk_noise_hs_write_msg2(&r, NULL, 0, m2, sizeof(m2), &l2), TK_ESTATE);
	tk_noise_hs_set_psk(&r, psk);
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_write_msg2(&r, NULL, 0, m2, sizeof(m2), &l2), 0);
	/* response body: ephemeral 32 + empty 16 = 48 (92 on the wire) */
	CU_ASSERT_EQUAL(l2, 48);
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_read_msg2(&i, m2, l2, pt, sizeof(pt), &pl), 0);
	tk_noise_hs_split(&i, is, ir);
	tk_noise_hs_split(&r, rs, rr);
	TK_ASSERT_MEM_EQ(is, rr, 32);
	TK_ASSERT_MEM_EQ(ir, rs, 32);

	/* a different psk on the responder side breaks message 2 */
	uint8_t psk2[32];
	memset(psk2, 1, sizeof(psk2));
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_init(&i, &ci), 0);
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_init(&r, &cr), 0);
	tk_noise_hs_write_msg1(&i, tai, 12, m1, sizeof(m1), &l1);
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_read_msg1(&r, m1, l1, pt, sizeof(pt), &pl), 0);
	tk_noise_hs_set_psk(&r, psk2);
	CU_ASSERT_EQUAL_FATAL(tk_noise_hs_write_msg2(&r, NULL, 0, m2, sizeof(m2), &l2), 0);
	CU_ASSERT_EQUAL(tk_noise_hs_read_msg2(&i, m2, l2, pt, sizeof(pt), &pl), TK_ECRYPTO);
	CU_ASSERT_EQUAL(i.hs_state, TK_NOISE_S_SENT1); /* unchanged by the forgery */
	tk_noise_hs_wipe(&i);
	tk_noise_hs_wipe(&r);
}

void
register_noise_kat(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_cacophony),
		TK_TEST(test_ts2021_appendix_a_unconfirmed),
		TK_TEST(test_wireguard_shape),
		TK_TEST_END,
	};
	tk_test_suite("noise_kat", cases);
}
