/*
 * wgd's disco over DERP (wgd/src/disco.c) with crafted packets: who may
 * send disco (a current peer's disco key, from that peer's DERP node key),
 * forged and misaddressed boxes, garbage and truncated messages; Pings get
 * a Pong to the DERP source with Src 127.3.3.40:<region>; Pongs go to the
 * pinger; CallMeMaybe endpoints are kept; every drop is counted.
 */
#include <string.h>

#include "tk/aead.h"
#include "tk/disco.h"
#include "tk/err.h"
#include "tk/keys.h"
#include "tk/mem.h"
#include "tk/wg.h"
#include "tk_test.h"
#include "disco.h"
#include "netmap.h"

void register_disco(void);

/* Two peers (node keys 7..7 and 8..8) with disco keys; our disco key. */
typedef struct fix {
	tk_wg_device *dev;
	wgdi_netmap nm;
	wgdi_disco *dc;
	tk_disco_priv mine, pa, pb, stranger;
	tk_disco_pub mine_pub, pa_pub, pb_pub, stranger_pub;
	uint8_t ka[32], kb[32], kc[32];
	/* what io.send got */
	unsigned sent;
	uint8_t sent_key[32];
	uint16_t sent_region;
	uint8_t sent_pkt[512];
	size_t sent_len;
	/* what io.pong got */
	unsigned pongs;
	bool pong_match;
	tk_disco_msg pong;
} fix;

static void
io_send(void *arg, const uint8_t k[32], uint16_t region, const uint8_t *p,
    size_t n)
{
	fix *f = arg;

	f->sent++;
	memcpy(f->sent_key, k, 32);
	f->sent_region = region;
	CU_ASSERT_FATAL(n <= sizeof(f->sent_pkt));
	memcpy(f->sent_pkt, p, n);
	f->sent_len = n;
}

static bool
io_pong(void *arg, const uint8_t k[32], uint16_t region, const tk_disco_msg *m)
{
	fix *f = arg;

	(void)k, (void)region;
	f->pongs++;
	f->pong = *m;
	return f->pong_match;
}

static size_t
netmap_of(fix *f, uint8_t *out)
{
	Tk__Bus__V1__Netmap nm = TK__BUS__V1__NETMAP__INIT;
	Tk__Bus__V1__Node a = TK__BUS__V1__NODE__INIT, b = TK__BUS__V1__NODE__INIT;
	Tk__Bus__V1__Node *pp[2] = { &a, &b };

	a.has_id = b.has_id = true, a.id = 2, b.id = 3;
	a.has_key = b.has_key = true;
	a.key.data = f->ka, b.key.data = f->kb, a.key.len = b.key.len = 32;
	a.has_disco_key = b.has_disco_key = true;
	a.disco_key.data = f->pa_pub.b, b.disco_key.data = f->pb_pub.b;
	a.disco_key.len = b.disco_key.len = 32;
	a.has_home_derp = true, a.home_derp = 7;
	nm.peers = pp, nm.n_peers = 2;
	return tk__bus__v1__netmap__pack(&nm, out);
}

static fix *
fix_new(bool keyed)
{
	static const uint8_t node_priv[32] = { 9, 9, 9 };
	tk_wg_device_config dc = { 0 };
	fix *f = tk_calloc(1, sizeof(*f));
	uint8_t nmb[512];

	CU_ASSERT_FATAL(f != NULL);
	CU_ASSERT_EQUAL_FATAL(tk_wg_device_new(&f->dev, &dc), 0);
	CU_ASSERT_EQUAL_FATAL(tk_wg_device_set_private_key(f->dev, node_priv), 0);
	memset(f->ka, 7, 32), memset(f->kb, 8, 32), memset(f->kc, 6, 32);
	tk_disco_priv_generate(&f->mine, NULL);
	tk_disco_priv_generate(&f->pa, NULL);
	tk_disco_priv_generate(&f->pb, NULL);
	tk_disco_priv_generate(&f->stranger, NULL);
	tk_disco_priv_public(&f->mine, &f->mine_pub);
	tk_disco_priv_public(&f->pa, &f->pa_pub);
	tk_disco_priv_public(&f->pb, &f->pb_pub);
	tk_disco_priv_public(&f->stranger, &f->stranger_pub);
	f->nm.dev = f->dev;
	CU_ASSERT_EQUAL_FATAL(wgdi_netmap_snapshot(&f->nm, nmb, netmap_of(f, nmb)), 0);
	f->dc = tk_calloc(1, sizeof(*f->dc));
	CU_ASSERT_FATAL(f->dc != NULL);
	wgdi_disco_init(f->dc, f->dev, keyed ? &f->mine : NULL,
	    &(wgdi_disco_io){ .send = io_send, .pong = io_pong, .arg = f });
	return f;
}

static void
fix_free(fix *f)
{
	wgdi_disco_fini(f->dc);
	tk_free(f->dc);
	wgdi_netmap_forget(&f->nm);
	tk_wg_device_free(f->dev);
	tk_free(f);
}

/* msg sealed by sender (priv/pub) to recipient's public key */
static size_t
seal(uint8_t *out, const tk_disco_priv *from, const tk_disco_pub *from_pub,
    const tk_disco_pub *to, const uint8_t *msg, size_t n)
{
	uint8_t shared[32];
	size_t len = 0;

	CU_ASSERT_EQUAL_FATAL(tk_box_precompute(shared, to->b, from->b), 0);
	CU_ASSERT_EQUAL_FATAL(tk_disco_seal(out, 512, &len, shared, from_pub->b,
	    msg, n), 0);
	return len;
}

/* Opens what wgd sent, as the peer (priv) would. */
static size_t
open_sent(fix *f, const tk_disco_priv *peer, uint8_t *msg)
{
	uint8_t shared[32];
	size_t len = 0;

	CU_ASSERT_EQUAL_FATAL(tk_box_precompute(shared, f->mine_pub.b, peer->b), 0);
	CU_ASSERT_EQUAL_FATAL(tk_disco_open(f->sent_pkt, f->sent_len, shared, msg,
	    512, &len), 0);
	return len;
}

static const uint8_t txid[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

static void
test_disco_ping_answered(void)
{
	fix *f = fix_new(true);
	uint8_t m[64], pkt[512], out[512];
	size_t n = tk_disco_write_ping(m, sizeof(m), txid, f->ka, 0);
	size_t len = seal(pkt, &f->pa, &f->pa_pub, &f->mine_pub, m, n);
	tk_disco_msg pong;

	wgdi_disco_rx_derp(f->dc, f->ka, 5, pkt, len);
	CU_ASSERT_EQUAL(f->dc->rx_ping, 1);
	CU_ASSERT_EQUAL(f->dc->tx_pong, 1);
	CU_ASSERT_EQUAL_FATAL(f->sent, 1);
	TK_ASSERT_MEM_EQ(f->sent_key, f->ka, 32);
	CU_ASSERT_EQUAL(f->sent_region, 5); /* back the way it came */
	TK_ASSERT_MEM_EQ(f->sent_pkt + TK_DISCO_MAGIC_LEN, f->mine_pub.b, 32);
	n = open_sent(f, &f->pa, out);
	CU_ASSERT_EQUAL_FATAL(tk_disco_parse(out, n, &pong), 0);
	CU_ASSERT_EQUAL(pong.type, TK_DISCO_PONG);
	TK_ASSERT_MEM_EQ(pong.txid, txid, 12);
	static const uint8_t derp_ip[16] = { [10] = 0xff, [11] = 0xff, 127, 3, 3, 40 };
	TK_ASSERT_MEM_EQ(pong.src.ip, derp_ip, 16);
	CU_ASSERT_EQUAL(pong.src.port, 5);
	/* the same txid again: answered again (Go suppresses duplicates only
	 * from UDP sources), and a ping without a node key (<= 1.16) too */
	wgdi_disco_rx_derp(f->dc, f->ka, 5, pkt, len);
	n = tk_disco_write_ping(m, sizeof(m), txid, NULL, 0);
	len = seal(pkt, &f->pa, &f->pa_pub, &f->mine_pub, m, n);
	wgdi_disco_rx_derp(f->dc, f->ka, 9, pkt, len);
	CU_ASSERT_EQUAL(f->dc->tx_pong, 3);
	CU_ASSERT_EQUAL(f->sent_region, 9);
	fix_free(f);
}

static void
test_disco_drops(void)
{
	fix *f = fix_new(true);
	uint8_t m[64], pkt[512], bad[512];
	size_t n = tk_disco_write_ping(m, sizeof(m), txid, f->ka, 0);
	size_t len = seal(pkt, &f->pa, &f->pa_pub, &f->mine_pub, m, n);

	/* a disco key no peer has */
	len = seal(bad, &f->stranger, &f->stranger_pub, &f->mine_pub, m, n);
	wgdi_disco_rx_derp(f->dc, f->ka, 1, bad, len);
	CU_ASSERT_EQUAL(f->dc->drop_unknown_sender, 1);
	/* peer A's disco key from peer B's node key, or from a non-peer */
	len = seal(pkt, &f->pa, &f->pa_pub, &f->mine_pub, m, n);
	wgdi_disco_rx_derp(f->dc, f->kb, 1, pkt, len);
	wgdi_disco_rx_derp(f->dc, f->kc, 1, pkt, len);
	CU_ASSERT_EQUAL(f->dc->drop_bad_src, 2);
	/* forged: a flipped ciphertext byte, a flipped tag, a forged sender
	 * key (A's key on a box the stranger sealed) */
	memcpy(bad, pkt, len);
	bad[len - 1] ^= 1;
	wgdi_disco_rx_derp(f->dc, f->ka, 1, bad, len);
	memcpy(bad, pkt, len);
	bad[TK_DISCO_HDR_LEN] ^= 0x80;
	wgdi_disco_rx_derp(f->dc, f->ka, 1, bad, len);
	len = seal(bad, &f->stranger, &f->pa_pub, &f->mine_pub, m, n);
	wgdi_disco_rx_derp(f->dc, f->ka, 1, bad, len);
	/* sealed to someone else's disco key (e.g. our previous one) */
	len = seal(bad, &f->pa, &f->pa_pub, &f->pb_pub, m, n);
	wgdi_disco_rx_derp(f->dc, f->ka, 1, bad, len);
	CU_ASSERT_EQUAL(f->dc->drop_bad_box, 4);
	/* opens, but no message: unknown type, short ping */
	static const uint8_t junk[] = { 0x7f, 0, 1, 2, 3 }, shortping[] = { 1, 0, 1 };
	len = seal(bad, &f->pa, &f->pa_pub, &f->mine_pub, junk, sizeof(junk));
	wgdi_disco_rx_derp(f->dc, f->ka, 1, bad, len);
	len = seal(bad, &f->pa, &f->pa_pub, &f->mine_pub, shortping,
	    sizeof(shortping));
	wgdi_disco_rx_derp(f->dc, f->ka, 1, bad, len);
	CU_ASSERT_EQUAL(f->dc->drop_bad_parse, 2);
	/* truncated at every length below a whole box, garbage, region 0 */
	len = seal(pkt, &f->pa, &f->pa_pub, &f->mine_pub, m, n);
	for (size_t k = 0; k < TK_DISCO_OVERHEAD + 2; k++)
		wgdi_disco_rx_derp(f->dc, f->ka, 1, pkt, k);
	CU_ASSERT_EQUAL(f->dc->drop_short, TK_DISCO_OVERHEAD + 2);
	memset(bad, 0x54, sizeof(bad));
	wgdi_disco_rx_derp(f->dc, f->ka, 1, bad, sizeof(bad));
	CU_ASSERT_EQUAL(f->dc->drop_short, TK_DISCO_OVERHEAD + 3);
	wgdi_disco_rx_derp(f->dc, f->ka, 0, pkt, len);
	wgdi_disco_rx_derp(f->dc, f->ka, 65536, pkt, len);
	CU_ASSERT_EQUAL(f->dc->drop_bad_region, 2);
	/* nothing was answered, nothing accepted */
	CU_ASSERT_EQUAL(f->sent, 0);
	CU_ASSERT_EQUAL(f->dc->rx, 0);
	fix_free(f);

	/* no disco key of our own (no state): everything dropped */
	f = fix_new(false);
	len = seal(pkt, &f->pa, &f->pa_pub, &f->mine_pub, m, n);
	wgdi_disco_rx_derp(f->dc, f->ka, 1, pkt, len);
	CU_ASSERT_EQUAL(f->dc->drop_no_key, 1);
	CU_ASSERT_EQUAL(f->sent, 0);
	uint8_t t[12];
	CU_ASSERT_EQUAL(wgdi_disco_ping(f->dc, tk_wg_peer_find(f->dev, f->ka), 1,
	    t), TK_ESTATE);
	fix_free(f);
}

static void
test_disco_pong_cmm_other(void)
{
	fix *f = fix_new(true);
	uint8_t m[128], pkt[512];
	tk_disco_ep eps[2], src;
	size_t n, len;

	tk_disco_ep_set(&src, (const uint8_t[]){ 192, 0, 2, 1 }, 4, 41641);
	n = tk_disco_write_pong(m, sizeof(m), txid, &src);
	len = seal(pkt, &f->pb, &f->pb_pub, &f->mine_pub, m, n);
	wgdi_disco_rx_derp(f->dc, f->kb, 2, pkt, len);
	CU_ASSERT_EQUAL(f->pongs, 1);
	CU_ASSERT_EQUAL(f->dc->rx_pong_unmatched, 1);
	f->pong_match = true;
	wgdi_disco_rx_derp(f->dc, f->kb, 2, pkt, len);
	CU_ASSERT_EQUAL(f->dc->rx_pong_unmatched, 1);
	TK_ASSERT_MEM_EQ(f->pong.txid, txid, 12);
	CU_ASSERT_EQUAL(f->pong.src.port, 41641);

	tk_disco_ep_set(&eps[0], (const uint8_t[]){ 192, 0, 2, 7 }, 4, 1000);
	tk_disco_ep_set(&eps[1], (const uint8_t[]){ 198, 51, 100, 1 }, 4, 2000);
	n = tk_disco_write_call_me_maybe(m, sizeof(m), eps, 2);
	len = seal(pkt, &f->pa, &f->pa_pub, &f->mine_pub, m, n);
	wgdi_disco_rx_derp(f->dc, f->ka, 2, pkt, len);
	CU_ASSERT_EQUAL(f->dc->rx_cmm, 1);
	wgdi_peer_rec *r = tk_wg_peer_user(tk_wg_peer_find(f->dev, f->ka));
	CU_ASSERT_EQUAL_FATAL(r->ncmm, 2);
	tk_disco_ep e;
	tk_disco_ep_at(r->cmm[0], 1, &e);
	CU_ASSERT_EQUAL(e.port, 2000);

	/* a relay allocation request: parsed, counted, ignored */
	memset(m, 0, sizeof(m));
	m[0] = TK_DISCO_ALLOCATE_UDP_RELAY_ENDPOINT_REQUEST;
	len = seal(pkt, &f->pa, &f->pa_pub, &f->mine_pub, m, 2 + 64 + 4);
	wgdi_disco_rx_derp(f->dc, f->ka, 2, pkt, len);
	CU_ASSERT_EQUAL(f->dc->rx_other, 1);
	CU_ASSERT_EQUAL(f->dc->rx, 4);
	CU_ASSERT_EQUAL(f->sent, 0);
	fix_free(f);
}

static void
test_disco_ping_sent(void)
{
	fix *f = fix_new(true);
	uint8_t t[12], out[512], self[32];
	tk_disco_msg m;

	CU_ASSERT_EQUAL_FATAL(wgdi_disco_ping(f->dc, tk_wg_peer_find(f->dev, f->kb),
	    3, t), 0);
	CU_ASSERT_EQUAL_FATAL(f->sent, 1);
	TK_ASSERT_MEM_EQ(f->sent_key, f->kb, 32);
	CU_ASSERT_EQUAL(f->sent_region, 3);
	CU_ASSERT_EQUAL(f->sent_len, 124); /* Go's discoPingSize */
	size_t n = open_sent(f, &f->pb, out);
	CU_ASSERT_EQUAL_FATAL(tk_disco_parse(out, n, &m), 0);
	CU_ASSERT_EQUAL(m.type, TK_DISCO_PING);
	TK_ASSERT_MEM_EQ(m.txid, t, 12);
	CU_ASSERT_FATAL(m.has_node_key);
	tk_wg_device_public_key(f->dev, self);
	TK_ASSERT_MEM_EQ(m.node_key, self, 32);
	CU_ASSERT_EQUAL(wgdi_disco_ping(f->dc, tk_wg_peer_find(f->dev, f->kb),
	    0, t), TK_EINVAL);
	fix_free(f);
}

/* A netmap delta with a new disco key: the old key's packets are
 * dropped, the CallMeMaybe endpoints forgotten. */
static void
test_disco_key_change(void)
{
	fix *f = fix_new(true);
	Tk__Bus__V1__NetmapDelta d = TK__BUS__V1__NETMAP_DELTA__INIT;
	Tk__Bus__V1__PeerChange pc = TK__BUS__V1__PEER_CHANGE__INIT, *pcp = &pc;
	uint8_t m[64], pkt[512], db[256];
	size_t n = tk_disco_write_ping(m, sizeof(m), txid, f->ka, 0), len;

	wgdi_peer_rec *r = tk_wg_peer_user(tk_wg_peer_find(f->dev, f->ka));
	r->ncmm = 1;
	pc.has_node_id = true, pc.node_id = 2;
	pc.has_disco_key = true;
	pc.disco_key.data = f->stranger_pub.b, pc.disco_key.len = 32;
	d.peers_patched = &pcp, d.n_peers_patched = 1;
	CU_ASSERT_EQUAL_FATAL(wgdi_netmap_delta(&f->nm, db,
	    tk__bus__v1__netmap_delta__pack(&d, db)), 0);
	CU_ASSERT_EQUAL(r->ncmm, 0);
	len = seal(pkt, &f->pa, &f->pa_pub, &f->mine_pub, m, n);
	wgdi_disco_rx_derp(f->dc, f->ka, 1, pkt, len);
	CU_ASSERT_EQUAL(f->dc->drop_unknown_sender, 1);
	len = seal(pkt, &f->stranger, &f->stranger_pub, &f->mine_pub, m, n);
	wgdi_disco_rx_derp(f->dc, f->ka, 1, pkt, len);
	CU_ASSERT_EQUAL(f->dc->tx_pong, 1);
	fix_free(f);
}

void
register_disco(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_disco_ping_answered),
		TK_TEST(test_disco_drops),
		TK_TEST(test_disco_pong_cmm_other),
		TK_TEST(test_disco_ping_sent),
		TK_TEST(test_disco_key_change),
		TK_TEST_END,
	};

	tk_test_suite("wgd_disco", cases);
}
