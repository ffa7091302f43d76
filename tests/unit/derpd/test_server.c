/*
 * derpd server over loopback sockets: a blocking test client (tc.c)
 * against a running instance.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "derpd/derpd.h"
#include "server_int.h"
#include "tc.h"
#include "tk/derp.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk/keys.h"
#include "tk_test.h"

static derpd_server *
start(const derpd_server_config *extra)
{
	derpd_server_config cfg = { .addr = "127.0.0.1:0", .stun_port = -1 };
	derpd_server *s = NULL;
	char err[256];

	if (extra)
		cfg = *extra;
	int rc = derpd_server_new(&s, &cfg, err, sizeof(err));
	if (rc != 0)
		fprintf(stderr, "derpd_server_new: %s\n", err);
	CU_ASSERT_FATAL(rc == 0);
	CU_ASSERT_FATAL(derpd_server_start(s) == 0);
	return s;
}

/* The metric line's value ("derp_x 3"), or -1. */
static long long
metric(derpd_server *s, const char *name)
{
	char req[128], resp[20000];
	snprintf(req, sizeof(req), "GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
	if (tc_http(derpd_server_port(s), req, resp, sizeof(resp)) != 0)
		return -1;
	char pat[160];
	snprintf(pat, sizeof(pat), "\n%s ", name);
	const char *p = strstr(resp, pat);
	return p ? atoll(p + strlen(pat)) : -1;
}

static void
wait_metric_ms(derpd_server *s, const char *name, long long want, int ms)
{
	uint64_t end = tk_test_now_ms() + (uint64_t)ms;
	long long v;
	while ((v = metric(s, name)) != want && tk_test_now_ms() < end)
		usleep(20000);
	if (v != want)
		fprintf(stderr, "%s = %lld, want %lld\n", name, v, want);
	CU_ASSERT(v == want);
}

static void
wait_metric(derpd_server *s, const char *name, long long want)
{
	wait_metric_ms(s, name, want, 3000);
}

static void
test_relay_two_clients(void)
{
	derpd_server *s = start(NULL);
	tc a, b;
	uint8_t t, p[2048], spub[32];
	size_t l;

	CU_ASSERT_FATAL(tc_connect(&a, derpd_server_port(s), NULL) == 0);
	CU_ASSERT_FATAL(tc_connect(&b, derpd_server_port(s), NULL) == 0);
	derpd_server_public_key(s, spub);
	TK_ASSERT_MEM_EQ(a.server_pub, spub, 32);
	for (int i = 0; i < 10; i++) {
		char m[32];
		int n = snprintf(m, sizeof(m), "hello %d", i);
		CU_ASSERT(tc_send(&a, b.pub, m, (size_t)n) == 0);
		t = 0;
		CU_ASSERT_FATAL(tc_recv(&b, 3000, &t, p, sizeof(p), &l) == 0);
		CU_ASSERT(t == TK_DERP_FRAME_RECV_PACKET);
		CU_ASSERT(l == 32 + (size_t)n);
		TK_ASSERT_MEM_EQ(p, a.pub, 32);
		TK_ASSERT_MEM_EQ(p + 32, m, (size_t)n);
	}
	/* empty and maximum-size packets are relayed too */
	static uint8_t big[TK_DERP_MAX_PACKET_SIZE];
	memset(big, 0xab, sizeof(big));
	CU_ASSERT(tc_send(&b, a.pub, big, 0) == 0);
	t = 0;
	CU_ASSERT(tc_recv(&a, 3000, &t, NULL, 0, &l) == 0 && l == 32);
	CU_ASSERT(tc_send(&b, a.pub, big, sizeof(big)) == 0);
	static uint8_t rb[32 + TK_DERP_MAX_PACKET_SIZE];
	t = 0;
	CU_ASSERT(tc_recv(&a, 3000, &t, rb, sizeof(rb), &l) == 0 &&
	    l == 32 + sizeof(big) && rb[32 + 1000] == 0xab);
	/* Ping -> Pong with the same bytes */
	CU_ASSERT(tc_frame(&a, TK_DERP_FRAME_PING, "12345678", 8) == 0);
	t = 0;
	CU_ASSERT(tc_recv(&a, 3000, &t, p, sizeof(p), &l) == 0);
	CU_ASSERT(t == TK_DERP_FRAME_PONG && l == 8 && memcmp(p, "12345678", 8) == 0);
	/* NotePreferred counts a home client */
	CU_ASSERT(tc_frame(&a, TK_DERP_FRAME_NOTE_PREFERRED, "\x01", 1) == 0);
	wait_metric(s, "derp_current_home_connections", 1);
	wait_metric(s, "derp_current_clients", 2);
	CU_ASSERT(metric(s, "derp_packets_sent_total") == 12);
	tc_close(&a);
	tc_close(&b);
	wait_metric(s, "derp_current_clients", 0);
	derpd_server_free(s);
}

static void
test_fast_start(void)
{
	derpd_server *s = start(NULL);
	tc a;
	tc_opts o = { .fast_start = true };
	/* fast start: no 101, the ServerKey frame comes first */
	CU_ASSERT(tc_connect(&a, derpd_server_port(s), &o) == 0);
	CU_ASSERT(metric(s, "derp_fast_start_total") == 1);
	tc_close(&a);
	derpd_server_free(s);
}

static void
test_peer_gone(void)
{
	derpd_server *s = start(NULL);
	tc a, b;
	uint8_t t, p[256];
	size_t l;

	CU_ASSERT_FATAL(tc_connect(&a, derpd_server_port(s), NULL) == 0);
	CU_ASSERT_FATAL(tc_connect(&b, derpd_server_port(s), NULL) == 0);
	CU_ASSERT(tc_send(&a, b.pub, "x", 1) == 0);
	t = 0;
	CU_ASSERT_FATAL(tc_recv(&b, 3000, &t, p, sizeof(p), &l) == 0);
	/* a leaves: b heard from it, so b learns it is gone */
	tc_close(&a);
	t = 0;
	CU_ASSERT_FATAL(tc_recv(&b, 3000, &t, p, sizeof(p), &l) == 0);
	CU_ASSERT(t == TK_DERP_FRAME_PEER_GONE && l == 33);
	TK_ASSERT_MEM_EQ(p, a.pub, 32);
	CU_ASSERT(p[32] == TK_DERP_PEER_GONE_DISCONNECTED);

	/* disco to an unknown key: NotHere, at most 3 in a burst */
	uint8_t disco[80] = TK_DISCO_MAGIC, nobody[32];
	memset(nobody, 7, 32);
	for (int i = 0; i < 5; i++)
		CU_ASSERT(tc_send(&b, nobody, disco, sizeof(disco)) == 0);
	/* and a WireGuard-looking one gets nothing */
	CU_ASSERT(tc_send(&b, nobody, "wg", 2) == 0);
	int gone = 0;
	for (;;) {
		t = 0;
		if (tc_recv(&b, 400, &t, p, sizeof(p), &l) != 0)
			break;
		if (t == TK_DERP_FRAME_PEER_GONE && p[32] == TK_DERP_PEER_GONE_NOT_HERE &&
		    memcmp(p, nobody, 32) == 0)
			gone++;
	}
	CU_ASSERT(gone == 3);
	wait_metric(s, "derp_peer_gone_not_here_frames_total", 3);
	char pat[64];
	snprintf(pat, sizeof(pat), "derp_packets_dropped_total{reason=\"unknown_dest\"}");
	CU_ASSERT(metric(s, pat) == 6);
	tc_close(&b);
	derpd_server_free(s);
}

static void
test_duplicate_keys(void)
{
	derpd_server *s = start(NULL);
	tc a1, a2, b;
	tc_opts same;
	uint8_t t, p[256];
	size_t l;

	CU_ASSERT_FATAL(tc_connect(&a1, derpd_server_port(s), NULL) == 0);
	same = (tc_opts){ .priv = a1.priv };
	CU_ASSERT_FATAL(tc_connect(&a2, derpd_server_port(s), &same) == 0);
	CU_ASSERT_FATAL(tc_connect(&b, derpd_server_port(s), NULL) == 0);
	wait_metric(s, "derp_current_dup_client_keys", 1);
	/* the newest connection is active */
	CU_ASSERT(tc_send(&b, a1.pub, "to-a2", 5) == 0);
	t = 0;
	CU_ASSERT(tc_recv(&a2, 2000, &t, p, sizeof(p), &l) == 0 && l == 37);
	t = 0;
	CU_ASSERT(tc_recv(&a1, 300, &t, p, sizeof(p), &l) != 0);
	/* the last writer becomes active */
	CU_ASSERT(tc_frame(&a1, 0x7f, "zz", 2) == 0); /* any frame counts */
	usleep(100000);
	CU_ASSERT(tc_send(&b, a1.pub, "to-a1", 5) == 0);
	t = 0;
	CU_ASSERT(tc_recv(&a1, 2000, &t, p, sizeof(p), &l) == 0 &&
	    memcmp(p + 32, "to-a1", 5) == 0);
	/* the active one leaves while another remains: no PeerGone to b,
	 * and the survivor becomes a normal client */
	tc_close(&a1);
	wait_metric(s, "derp_current_dup_client_keys", 0);
	CU_ASSERT(tc_send(&b, a2.pub, "again", 5) == 0);
	t = 0;
	CU_ASSERT(tc_recv(&a2, 2000, &t, p, sizeof(p), &l) == 0 &&
	    memcmp(p + 32, "again", 5) == 0);
	t = 0;
	CU_ASSERT(tc_recv(&b, 300, &t, p, sizeof(p), &l) != 0);
	tc_close(&a2);
	tc_close(&b);
	derpd_server_free(s);
}

static void
test_bad_clients(void)
{
	derpd_server *s = start(NULL);
	uint16_t port = derpd_server_port(s);
	tc c;
	tc_opts raw = { .skip_info = true };
	uint8_t junk[64];

	/* a frame other than ClientInfo first */
	CU_ASSERT_FATAL(tc_connect(&c, port, &raw) == 0);
	CU_ASSERT(tc_frame(&c, TK_DERP_FRAME_SEND_PACKET, junk, sizeof(junk)) == 0);
	CU_ASSERT(tc_closed(&c, 2000));
	tc_close(&c);
	/* a ClientInfo whose box does not open */
	CU_ASSERT_FATAL(tc_connect(&c, port, &raw) == 0);
	memset(junk, 3, sizeof(junk));
	CU_ASSERT(tc_frame(&c, TK_DERP_FRAME_CLIENT_INFO, junk, sizeof(junk)) == 0);
	CU_ASSERT(tc_closed(&c, 2000));
	tc_close(&c);
	/* ClientInfo shorter than key + nonce, and one over 256 KiB */
	CU_ASSERT_FATAL(tc_connect(&c, port, &raw) == 0);
	CU_ASSERT(tc_frame(&c, TK_DERP_FRAME_CLIENT_INFO, junk, 40) == 0);
	CU_ASSERT(tc_closed(&c, 2000));
	tc_close(&c);
	CU_ASSERT_FATAL(tc_connect(&c, port, &raw) == 0);
	uint8_t h[5];
	tk_derp_frame_hdr(h, TK_DERP_FRAME_CLIENT_INFO, (256u << 10) + 1);
	CU_ASSERT(tc_write(&c, h, 5) == 0);
	CU_ASSERT(tc_closed(&c, 2000));
	tc_close(&c);
	/* registered, then an oversized SendPacket */
	CU_ASSERT_FATAL(tc_connect(&c, port, NULL) == 0);
	tk_derp_frame_hdr(h, TK_DERP_FRAME_SEND_PACKET,
	    32 + TK_DERP_MAX_PACKET_SIZE + 1);
	CU_ASSERT(tc_write(&c, h, 5) == 0);
	CU_ASSERT(tc_closed(&c, 2000));
	tc_close(&c);
	/* NotePreferred of the wrong length; short ping */
	CU_ASSERT_FATAL(tc_connect(&c, port, NULL) == 0);
	CU_ASSERT(tc_frame(&c, TK_DERP_FRAME_NOTE_PREFERRED, "ab", 2) == 0);
	CU_ASSERT(tc_closed(&c, 2000));
	tc_close(&c);
	CU_ASSERT_FATAL(tc_connect(&c, port, NULL) == 0);
	CU_ASSERT(tc_frame(&c, TK_DERP_FRAME_PING, "1234", 4) == 0);
	CU_ASSERT(tc_closed(&c, 2000));
	tc_close(&c);
	/* mesh-only frames without the mesh key */
	CU_ASSERT_FATAL(tc_connect(&c, port, NULL) == 0);
	CU_ASSERT(tc_frame(&c, TK_DERP_FRAME_WATCH_CONNS, NULL, 0) == 0);
	CU_ASSERT(tc_closed(&c, 2000));
	tc_close(&c);
	CU_ASSERT_FATAL(tc_connect(&c, port, NULL) == 0);
	CU_ASSERT(tc_frame(&c, TK_DERP_FRAME_FORWARD_PACKET, junk, 64) == 0);
	CU_ASSERT(tc_closed(&c, 2000));
	tc_close(&c);
	/* an unknown frame of 300 KiB is skipped, then Ping still works */
	CU_ASSERT_FATAL(tc_connect(&c, port, NULL) == 0);
	static uint8_t big[300 << 10];
	CU_ASSERT(tc_frame(&c, 0x42, big, sizeof(big)) == 0);
	CU_ASSERT(tc_frame(&c, TK_DERP_FRAME_PONG, "ignored!", 8) == 0);
	CU_ASSERT(tc_frame(&c, TK_DERP_FRAME_PING, "abcdefgh", 8) == 0);
	uint8_t t = 0, p[64];
	size_t l;
	CU_ASSERT(tc_recv(&c, 3000, &t, p, sizeof(p), &l) == 0 &&
	    t == TK_DERP_FRAME_PONG && memcmp(p, "abcdefgh", 8) == 0);
	tc_close(&c);
	wait_metric(s, "derp_conn_closes_total{reason=\"bad_first_frame\"}", 3);
	CU_ASSERT(metric(s, "derp_conn_closes_total{reason=\"bad_box\"}") == 1);
	CU_ASSERT(metric(s, "derp_conn_closes_total{reason=\"bad_frame\"}") == 3);
	CU_ASSERT(metric(s, "derp_conn_closes_total{reason=\"no_permission\"}") == 2);
	CU_ASSERT(metric(s, "derp_unknown_frames_total") == 2);
	derpd_server_free(s);
}

static void
test_mesh_watch(void)
{
	char dir[] = "/tmp/derpd-test-XXXXXX";
	CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
	char psk[300];
	snprintf(psk, sizeof(psk), "%s/mesh.key", dir);
	FILE *f = fopen(psk, "w");
	fputs("abababababababababababababababababababababababababababababababab\n", f);
	fclose(f);
	uint8_t mk[32];
	memset(mk, 0xab, 32);
	derpd_server_config cfg = { .addr = "127.0.0.1:0", .stun_port = -1,
		.mesh_psk_file = psk };
	derpd_server *s = start(&cfg);
	uint16_t port = derpd_server_port(s);
	tc a, m, b, z;
	uint8_t t, p[512];
	size_t l;

	CU_ASSERT_FATAL(tc_connect(&a, port, NULL) == 0);
	tc_opts mo = { .mesh_key = mk };
	CU_ASSERT_FATAL(tc_connect(&m, port, &mo) == 0);
	CU_ASSERT(tc_frame(&m, TK_DERP_FRAME_WATCH_CONNS, NULL, 0) == 0);
	/* present: a and the watcher itself */
	int seen_a = 0, seen_m = 0;
	for (int i = 0; i < 2; i++) {
		t = 0;
		CU_ASSERT_FATAL(tc_recv(&m, 3000, &t, p, sizeof(p), &l) == 0);
		CU_ASSERT(t == TK_DERP_FRAME_PEER_PRESENT && l == 51);
		if (memcmp(p, a.pub, 32) == 0) {
			seen_a++;
			CU_ASSERT(p[50] == TK_DERP_PEER_PRESENT_IS_REGULAR);
			CU_ASSERT(p[42] == 0xff && p[43] == 0xff && p[44] == 127);
		}
		if (memcmp(p, m.pub, 32) == 0) {
			seen_m++;
			CU_ASSERT(p[50] == TK_DERP_PEER_PRESENT_IS_MESH_PEER);
		}
	}
	CU_ASSERT(seen_a == 1 && seen_m == 1);
	/* a new client is announced, its departure too */
	CU_ASSERT_FATAL(tc_connect(&b, port, NULL) == 0);
	t = 0;
	CU_ASSERT(tc_recv(&m, 3000, &t, p, sizeof(p), &l) == 0 &&
	    t == TK_DERP_FRAME_PEER_PRESENT && memcmp(p, b.pub, 32) == 0);
	/* ForwardPacket from the mesh peer reaches a, with the given source */
	uint8_t fwd[64 + 4], src[32];
	memset(src, 9, 32);
	memcpy(fwd, src, 32);
	memcpy(fwd + 32, a.pub, 32);
	memcpy(fwd + 64, "mesh", 4);
	CU_ASSERT(tc_frame(&m, TK_DERP_FRAME_FORWARD_PACKET, fwd, sizeof(fwd)) == 0);
	t = 0;
	CU_ASSERT(tc_recv(&a, 3000, &t, p, sizeof(p), &l) == 0 &&
	    t == TK_DERP_FRAME_RECV_PACKET && memcmp(p, src, 32) == 0 &&
	    memcmp(p + 32, "mesh", 4) == 0);
	/* ClosePeer closes b */
	CU_ASSERT(tc_frame(&m, TK_DERP_FRAME_CLOSE_PEER, b.pub, 32) == 0);
	CU_ASSERT(tc_closed(&b, 2000));
	t = 0;
	CU_ASSERT(tc_recv(&m, 3000, &t, p, sizeof(p), &l) == 0 &&
	    t == TK_DERP_FRAME_PEER_GONE && memcmp(p, b.pub, 32) == 0);
	/* a wrong mesh key is an ordinary client */
	uint8_t bad[32];
	memset(bad, 0xac, 32);
	tc_opts zo = { .mesh_key = bad };
	CU_ASSERT_FATAL(tc_connect(&z, port, &zo) == 0);
	CU_ASSERT(tc_frame(&z, TK_DERP_FRAME_WATCH_CONNS, NULL, 0) == 0);
	CU_ASSERT(tc_closed(&z, 2000));
	tc_close(&z);
	tc_close(&a);
	tc_close(&b);
	tc_close(&m);
	derpd_server_free(s);
	unlink(psk);
	rmdir(dir);
}

static void
test_key_persisted_and_allowlist(void)
{
	char *dir = tk_test_tmpdir();
	derpd_server_config cfg = { .addr = "127.0.0.1:0", .stun_port = -1,
		.state_dir = dir };
	uint8_t k1[32], k2[32];
	derpd_server *s = start(&cfg);
	derpd_server_public_key(s, k1);
	derpd_server_free(s);
	s = start(&cfg);
	derpd_server_public_key(s, k2);
	derpd_server_free(s);
	TK_ASSERT_MEM_EQ(k1, k2, 32);
	char db[512];
	snprintf(db, sizeof(db), "%s/derpd.db", dir);
	struct stat stt;
	CU_ASSERT(stat(db, &stt) == 0 && (stt.st_mode & 0777) == 0600);

	/* allowlist: a listed key gets in, another is closed */
	uint8_t priv[32], pub[32];
	tk_key_generate(priv, NULL);
	tk_key_public(pub, priv);
	char al[512], kt[TK_KEY_TEXT_MAX];
	snprintf(al, sizeof(al), "%s/allow.txt", dir);
	tk_key_format(kt, TK_PREFIX_NODE_PUB, pub);
	FILE *f = fopen(al, "w");
	fprintf(f, "# allowed\n%s\n", kt);
	fclose(f);
	cfg.allowlist_file = al;
	s = start(&cfg);
	tc a, b;
	tc_opts o = { .priv = priv };
	CU_ASSERT(tc_connect(&a, derpd_server_port(s), &o) == 0);
	CU_ASSERT(tc_connect(&b, derpd_server_port(s), NULL) != 0);
	tc_close(&a);
	tc_close(&b);
	wait_metric(s, "derp_conn_closes_total{reason=\"not_admitted\"}", 1);
	derpd_server_free(s);
	tk_test_rmtree(dir);
	free(dir);
}

static void
test_connect_and_vanish(void)
{
	derpd_server *s = start(NULL);
	uint16_t port = derpd_server_port(s);
	for (int i = 0; i < 300; i++) {
		int fd = tc_dial(port);
		CU_ASSERT_FATAL(fd >= 0);
		if (i % 3 == 1)
			send(fd, "GET /derp HTTP/1.1\r\nUpgrade: DERP\r\n\r\n", 37,
			    MSG_NOSIGNAL);
		if (i % 3 == 2)
			send(fd, "\x16\x03\x01garbage\r\n\r\n", 13, MSG_NOSIGNAL);
		close(fd);
	}
	wait_metric(s, "derp_current_connections", 1); /* the /metrics one */
	tc a, b;
	CU_ASSERT(tc_connect(&a, port, NULL) == 0);
	CU_ASSERT(tc_connect(&b, port, NULL) == 0);
	tc_close(&a);
	tc_close(&b);
	derpd_server_free(s);
}

static uint16_t
free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t l = sizeof(a);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &l);
	close(fd);
	return ntohs(a.sin_port);
}

/* Two derpd instances meshed both ways (plain HTTP links): clients on
 * different servers reach each other through ForwardPacket. */
static void
test_mesh_two_servers(void)
{
	char dir[] = "/tmp/derpd-mesh-XXXXXX";
	CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
	char psk[300];
	snprintf(psk, sizeof(psk), "%s/mesh.key", dir);
	FILE *f = fopen(psk, "w");
	fputs("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", f);
	fclose(f);
	uint16_t pa = free_port(), pb = free_port();
	char aa[64], ab[64], wa[64], wb[64];
	snprintf(aa, sizeof(aa), "127.0.0.1:%u", pa);
	snprintf(ab, sizeof(ab), "127.0.0.1:%u", pb);
	/* each lists both, as a region's servers do: the self link stops */
	snprintf(wa, sizeof(wa), "http://127.0.0.1:%u,http://127.0.0.1:%u", pb, pa);
	snprintf(wb, sizeof(wb), "http://127.0.0.1:%u", pa);
	derpd_server_config ca = { .addr = aa, .stun_port = -1,
		.mesh_psk_file = psk, .mesh_with = wa };
	derpd_server_config cb = { .addr = ab, .stun_port = -1,
		.mesh_psk_file = psk, .mesh_with = wb };
	/* both listen (derpd_server_new binds) before either dials */
	derpd_server *A = NULL, *B = NULL;
	CU_ASSERT_FATAL(derpd_server_new(&A, &ca, NULL, 0) == 0);
	CU_ASSERT_FATAL(derpd_server_new(&B, &cb, NULL, 0) == 0);
	CU_ASSERT_FATAL(derpd_server_start(A) == 0 && derpd_server_start(B) == 0);
	/* a link dialled before its peer listened retries after 5 s */
	wait_metric_ms(A, "derp_mesh_connects_total", 1, 12000);
	wait_metric_ms(B, "derp_mesh_connects_total", 1, 12000);
	wait_metric(A, "derp_current_watchers", 1);
	wait_metric(B, "derp_current_watchers", 1);
	tc a, b;
	uint8_t t, p[256];
	size_t l;
	CU_ASSERT_FATAL(tc_connect(&a, pa, NULL) == 0);
	CU_ASSERT_FATAL(tc_connect(&b, pb, NULL) == 0);
	/* the PeerPresent of b must reach A before a's packet does */
	uint64_t end = tk_test_now_ms() + 3000;
	bool ok = false;
	while (!ok && tk_test_now_ms() < end) {
		CU_ASSERT(tc_send(&a, b.pub, "a->b", 4) == 0);
		t = 0;
		ok = tc_recv(&b, 200, &t, p, sizeof(p), &l) == 0 &&
		    t == TK_DERP_FRAME_RECV_PACKET && memcmp(p, a.pub, 32) == 0 &&
		    memcmp(p + 32, "a->b", 4) == 0;
	}
	CU_ASSERT(ok);
	end = tk_test_now_ms() + 3000;
	ok = false;
	while (!ok && tk_test_now_ms() < end) {
		CU_ASSERT(tc_send(&b, a.pub, "b->a", 4) == 0);
		for (;;) {
			t = 0;
			if (tc_recv(&a, 200, &t, p, sizeof(p), &l) != 0)
				break;
			if (t == TK_DERP_FRAME_RECV_PACKET &&
			    memcmp(p, b.pub, 32) == 0) {
				ok = true;
				break;
			}
		}
	}
	CU_ASSERT(ok);
	CU_ASSERT(metric(A, "derp_packets_forwarded_out_total") >= 1);
	CU_ASSERT(metric(B, "derp_packets_forwarded_in_total") >= 1);
	/* b leaves B: A's forwarder goes, and a (which heard from b) is told */
	tc_close(&b);
	ok = false;
	end = tk_test_now_ms() + 3000;
	while (!ok && tk_test_now_ms() < end) {
		t = 0;
		if (tc_recv(&a, 500, &t, p, sizeof(p), &l) == 0 &&
		    t == TK_DERP_FRAME_PEER_GONE && memcmp(p, b.pub, 32) == 0)
			ok = true;
	}
	CU_ASSERT(ok);
	tc_close(&a);
	derpd_server_free(A);
	derpd_server_free(B);
	unlink(psk);
	rmdir(dir);
}

/* A client that stops reading: its queue drops the oldest packets, then
 * the 2 s write timeout closes it; the sender is unaffected. */
static void
test_slow_reader(void)
{
	derpd_server *s = start(NULL);
	tc a, b;
	static uint8_t big[60000];
	CU_ASSERT_FATAL(tc_connect(&a, derpd_server_port(s), NULL) == 0);
	CU_ASSERT_FATAL(tc_connect(&b, derpd_server_port(s), NULL) == 0);
	int small = 1 << 16;
	setsockopt(b.fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	for (int i = 0; i < 400; i++)
		CU_ASSERT_FATAL(tc_send(&a, b.pub, big, sizeof(big)) == 0);
	CU_ASSERT(metric(s, "derp_packets_dropped_total{reason=\"queue_head\"}") > 0);
	wait_metric(s, "derp_write_timeouts_total", 1);
	wait_metric(s, "derp_current_clients", 1);
	/* a still works */
	CU_ASSERT(tc_frame(&a, TK_DERP_FRAME_PING, "stillup!", 8) == 0);
	uint8_t t = 0, p[16];
	size_t l;
	CU_ASSERT(tc_recv(&a, 3000, &t, p, sizeof(p), &l) == 0 &&
	    t == TK_DERP_FRAME_PONG);
	tc_close(&a);
	tc_close(&b);
	derpd_server_free(s);
}

/* --rate-config: a sender over its rate is slowed down (reads pause),
 * nothing is dropped. */
static void
test_rate_config(void)
{
	char *dir = tk_test_tmpdir();
	char rc[512];
	snprintf(rc, sizeof(rc), "%s/rate.json", dir);
	FILE *f = fopen(rc, "w");
	fputs("{\"perclientratelimitbytespersec\": 100000}\n", f); /* any case */
	fclose(f);
	derpd_server_config cfg = { .addr = "127.0.0.1:0", .stun_port = -1,
		.rate_config_file = rc };
	derpd_server *s = start(&cfg);
	tc a, b;
	CU_ASSERT_FATAL(tc_connect(&a, derpd_server_port(s), NULL) == 0);
	CU_ASSERT_FATAL(tc_connect(&b, derpd_server_port(s), NULL) == 0);
	static uint8_t pkt[30000];
	uint64_t t0 = tk_test_now_ms();
	for (int i = 0; i < 10; i++)
		CU_ASSERT(tc_send(&a, b.pub, pkt, sizeof(pkt)) == 0);
	int got = 0;
	uint8_t t;
	size_t l;
	while (got < 10) {
		t = 0;
		if (tc_recv(&b, 5000, &t, NULL, 0, &l) != 0)
			break;
		if (t == TK_DERP_FRAME_RECV_PACKET)
			got++;
	}
	uint64_t ms = tk_test_now_ms() - t0;
	/* 300 KB at 100 KB/s with a 64 KiB burst: about 2.3 s */
	CU_ASSERT(got == 10);
	CU_ASSERT(ms >= 1800);
	CU_ASSERT(s->st.rate_limit_waits > 0);
	CU_ASSERT(s->st.packets_dropped[DROP_QUEUE_HEAD] == 0);
	tc_close(&a);
	tc_close(&b);
	derpd_server_free(s);
	/* a bad file is refused with a message */
	f = fopen(rc, "w");
	fputs("{\"PerClientRateLimitBytesPerSec\": -1}", f);
	fclose(f);
	char err[256];
	CU_ASSERT(derpd_server_new(&s, &cfg, err, sizeof(err)) == TK_EINVAL);
	CU_ASSERT(strstr(err, "non-negative") != NULL);
	tk_test_rmtree(dir);
	free(dir);
}

/* DERP over WebSocket (the browser client's way): relays to and from an
 * ordinary client; bad frames close. */
static void
test_websocket(void)
{
	derpd_server *s = start(NULL);
	uint16_t port = derpd_server_port(s);
	tc w, b;
	tc_opts wo = { .ws = true };
	uint8_t t, p[70000];
	size_t l;
	static uint8_t big[40000];

	CU_ASSERT_FATAL(tc_connect(&w, port, &wo) == 0);
	CU_ASSERT_FATAL(tc_connect(&b, port, NULL) == 0);
	CU_ASSERT(tc_send(&w, b.pub, "from-ws", 7) == 0);
	t = 0;
	CU_ASSERT(tc_recv(&b, 3000, &t, p, sizeof(p), &l) == 0 &&
	    t == TK_DERP_FRAME_RECV_PACKET && memcmp(p, w.pub, 32) == 0 &&
	    memcmp(p + 32, "from-ws", 7) == 0);
	memset(big, 7, sizeof(big));
	CU_ASSERT(tc_send(&b, w.pub, big, sizeof(big)) == 0);
	t = 0;
	CU_ASSERT(tc_recv(&w, 3000, &t, p, sizeof(p), &l) == 0 &&
	    t == TK_DERP_FRAME_RECV_PACKET && l == 32 + sizeof(big) &&
	    p[32 + 39999] == 7);
	/* a WebSocket ping between frames is answered and changes nothing */
	CU_ASSERT(tc_ws_frame(&w, 0x9, "hi", 2, false) == 0);
	CU_ASSERT(tc_frame(&w, TK_DERP_FRAME_PING, "wsping!!", 8) == 0);
	t = 0;
	CU_ASSERT(tc_recv(&w, 3000, &t, p, sizeof(p), &l) == 0 &&
	    t == TK_DERP_FRAME_PONG && memcmp(p, "wsping!!", 8) == 0);
	CU_ASSERT(metric(s, "derp_websocket_accepts_total") == 1);
	/* a text message is an error (wsconn) */
	CU_ASSERT(tc_ws_frame(&w, 0x1, "text", 4, false) == 0);
	CU_ASSERT(tc_closed(&w, 2000));
	tc_close(&w);
	/* client frames must be masked */
	CU_ASSERT_FATAL(tc_connect(&w, port, &wo) == 0);
	CU_ASSERT(tc_ws_frame(&w, 0x2, "abcdefgh", 8, true) == 0);
	CU_ASSERT(tc_closed(&w, 2000));
	tc_close(&w);
	CU_ASSERT(metric(s, "derp_websocket_bad_total") == 2);
	/* "Upgrade: websocket" without the derp subprotocol is plain DERP
	 * (old clients said so), as in Go */
	int fd = tc_dial(port);
	const char req[] = "GET /derp HTTP/1.1\r\nUpgrade: WebSocket\r\n\r\n";
	CU_ASSERT(send(fd, req, sizeof(req) - 1, 0) > 0);
	char r[512] = "";
	CU_ASSERT(recv(fd, r, sizeof(r) - 1, 0) > 0);
	CU_ASSERT(strstr(r, "Derp-Version: 2") != NULL);
	close(fd);
	/* a probe pipelined before the upgrade is answered first, unframed */
	fd = tc_dial(port);
	const char req2[] = "GET /derp/probe HTTP/1.1\r\n\r\n"
			    "GET /derp HTTP/1.1\r\nUpgrade: websocket\r\n"
			    "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
			    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			    "Sec-WebSocket-Protocol: derp\r\n\r\n";
	CU_ASSERT(send(fd, req2, sizeof(req2) - 1, 0) > 0);
	usleep(200000);
	char r2[2048];
	ssize_t k = recv(fd, r2, sizeof(r2) - 1, 0);
	CU_ASSERT_FATAL(k > 0);
	r2[k] = '\0';
	char *a1 = strstr(r2, "HTTP/1.1 200"), *a2 = strstr(r2, "HTTP/1.1 101");
	CU_ASSERT(a1 != NULL && a2 != NULL && a1 < a2);
	char *e = a2 ? strstr(a2, "\r\n\r\n") : NULL;
	CU_ASSERT(e != NULL && (uint8_t)e[4] == 0x82); /* FIN + binary */
	close(fd);
	tc_close(&b);
	derpd_server_free(s);
}

static void
test_accept_limit(void)
{
	derpd_server_config cfg = { .addr = "127.0.0.1:0", .stun_port = -1,
		.accept_limit = 1, .accept_burst = 3 };
	derpd_server *s = start(&cfg);
	int fds[10];
	for (int i = 0; i < 10; i++)
		fds[i] = tc_dial(derpd_server_port(s));
	int closed = 0;
	for (int i = 0; i < 10; i++) {
		tc x = { .fd = fds[i] };
		if (tc_closed(&x, 500))
			closed++;
		close(fds[i]);
	}
	CU_ASSERT(closed >= 6);
	CU_ASSERT(s->st.accepts_limited >= 6);
	derpd_server_free(s);
}

/* Timers with a fake clock: the loop is driven from this thread. */
static void
test_deadlines_fake_clock(void)
{
	tk_fake_clock fc;
	tk_fake_clock_init(&fc, 1000 * TK_NSEC_PER_SEC, 0);
	derpd_server_config cfg = { .addr = "127.0.0.1:0", .stun_port = -1,
		.clock = &fc.fc_clock };
	derpd_server *s = NULL;
	CU_ASSERT_FATAL(derpd_server_new(&s, &cfg, NULL, 0) == 0);
	uint16_t port = derpd_server_port(s);
	int silent = tc_dial(port); /* never says anything */
	CU_ASSERT_FATAL(silent >= 0);
	int upg = tc_dial(port);	/* upgrades, never sends ClientInfo */
	send(upg, "GET /derp HTTP/1.1\r\nUpgrade: DERP\r\n\r\n", 37, 0);
	for (int i = 0; i < 20; i++)
		tk_loop_run_once(s->loop, 10);
	CU_ASSERT(s->st.cur_conns == 2);
	tk_fake_clock_advance(&fc, 11 * TK_NSEC_PER_SEC);
	for (int i = 0; i < 5; i++)
		tk_loop_run_once(s->loop, 10);
	/* the upgraded one had 10 s for ClientInfo; HTTP heads get 30 s */
	CU_ASSERT(s->st.closes[CLOSE_HANDSHAKE_TIMEOUT] == 1);
	tk_fake_clock_advance(&fc, 20 * TK_NSEC_PER_SEC);
	for (int i = 0; i < 5; i++)
		tk_loop_run_once(s->loop, 10);
	CU_ASSERT(s->st.closes[CLOSE_HANDSHAKE_TIMEOUT] == 2);
	CU_ASSERT(s->st.cur_conns == 0);
	close(silent);
	close(upg);
	derpd_server_free(s);
}

/* KeepAlive after 60 s + jitter (< 5 s), on a fake clock the running
 * loop reads. */
static void
test_keepalive(void)
{
	static tk_fake_clock fc;
	tk_fake_clock_init(&fc, 1000 * TK_NSEC_PER_SEC, 0);
	derpd_server_config cfg = { .addr = "127.0.0.1:0", .stun_port = -1,
		.clock = &fc.fc_clock };
	derpd_server *s = start(&cfg);
	tc a;
	uint8_t t;
	size_t l;
	CU_ASSERT_FATAL(tc_connect(&a, derpd_server_port(s), NULL) == 0);
	t = TK_DERP_FRAME_KEEP_ALIVE;
	CU_ASSERT(tc_recv(&a, 600, &t, NULL, 0, &l) != 0); /* not yet */
	__atomic_add_fetch(&fc.fc_mono_ns, 59 * TK_NSEC_PER_SEC, __ATOMIC_SEQ_CST);
	CU_ASSERT(tc_recv(&a, 600, &t, NULL, 0, &l) != 0); /* 59 s: not yet */
	__atomic_add_fetch(&fc.fc_mono_ns, 6 * TK_NSEC_PER_SEC, __ATOMIC_SEQ_CST);
	t = TK_DERP_FRAME_KEEP_ALIVE;
	CU_ASSERT(tc_recv(&a, 3000, &t, NULL, 0, &l) == 0 &&
	    t == TK_DERP_FRAME_KEEP_ALIVE && l == 0);
	tc_close(&a);
	derpd_server_free(s);
}

void register_derpd_server(void);

void
register_derpd_server(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_relay_two_clients),
		TK_TEST(test_fast_start),
		TK_TEST(test_peer_gone),
		TK_TEST(test_duplicate_keys),
		TK_TEST(test_bad_clients),
		TK_TEST(test_mesh_watch),
		TK_TEST(test_mesh_two_servers),
		TK_TEST(test_key_persisted_and_allowlist),
		TK_TEST(test_connect_and_vanish),
		TK_TEST(test_deadlines_fake_clock),
		TK_TEST(test_keepalive),
		TK_TEST(test_slow_reader),
		TK_TEST(test_accept_limit),
		TK_TEST(test_websocket),
		TK_TEST(test_rate_config),
		TK_TEST_END,
	};
	tk_test_suite("derpd_server", cases);
}
