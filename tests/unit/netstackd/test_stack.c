/*
 * netstackd in-process: an inproc packet bus stands in for wgd, the test
 * writes IP packets by hand and reads what lwIP answers.  Checks ping,
 * RST for a port nobody listens on, the local API's listen, an accepted
 * connection arriving as a descriptor with the peer's address, bytes both
 * ways, and API errors.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "netstackd/ns_api.h"
#include "tk/endian.h"
#include "tk/err.h"
#include "tk_test.h"

void register_ns_stack(void);

#ifdef NS_TEST_NO_LWIP

static void
test_stack_skipped(void)
{
	tk_test_skip("netstackd not built: no lwIP source (tools/setup.sh)");
}

void
register_ns_stack(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_stack_skipped),
		TK_TEST_END,
	};
	tk_test_suite("ns_stack", cases);
}

#else

#include "lwip/pbuf.h"
#include "netstackd/netstackd.h"
#include "ns_lwip_hooks.h"
#include "tk/bus.h"
#include "tk/bus_batch.h"
#include "tk/bus_topics.h"
#include "tk/core.h"

static const uint8_t ME[4] = { 100, 64, 0, 1 }, PEER[4] = { 100, 64, 0, 2 };

typedef struct env {
	netstackd *ns;
	nng_socket pkt;
	char *dir;
	char api[100];
} env;

static uint16_t
csum(uint32_t acc, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		acc += (uint32_t)p[i] << 8 | p[i + 1];
	if (i < n)
		acc += (uint32_t)p[i] << 8;
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return (uint16_t)~acc;
}

static size_t
ip4(uint8_t *b, uint8_t proto, const uint8_t *payload, size_t n)
{
	memset(b, 0, 20);
	b[0] = 0x45;
	tk_be16_store(b + 2, (uint16_t)(20 + n));
	b[8] = 64;
	b[9] = proto;
	memcpy(b + 12, PEER, 4);
	memcpy(b + 16, ME, 4);
	tk_be16_store(b + 10, csum(0, b, 20));
	memcpy(b + 20, payload, n);
	return 20 + n;
}

/* a TCP segment from PEER:sport to ME:dport advertising window win */
static size_t
tcp4w(uint8_t *b, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
    uint8_t flags, uint16_t win, const void *data, size_t n)
{
	uint8_t t[20 + 1500], ph[12];
	uint32_t acc = 0;

	memset(t, 0, 20);
	tk_be16_store(t, sport);
	tk_be16_store(t + 2, dport);
	tk_be32_store(t + 4, seq);
	tk_be32_store(t + 8, ack);
	t[12] = 5 << 4;
	t[13] = flags;
	tk_be16_store(t + 14, win);
	if (n)
		memcpy(t + 20, data, n);
	memcpy(ph, PEER, 4);
	memcpy(ph + 4, ME, 4);
	ph[8] = 0;
	ph[9] = 6;
	tk_be16_store(ph + 10, (uint16_t)(20 + n));
	for (int i = 0; i < 12; i += 2)
		acc += (uint32_t)ph[i] << 8 | ph[i + 1];
	tk_be16_store(t + 16, csum(acc, t, 20 + n));
	return ip4(b, 6, t, 20 + n);
}

static size_t
tcp4(uint8_t *b, uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
    uint8_t flags, const void *data, size_t n)
{
	return tcp4w(b, sport, dport, seq, ack, flags, 65535, data, n);
}

static void
send_pkt(env *e, const uint8_t *p, size_t n)
{
	tk_bus_batch_enc enc;
	tk_bus_batch_rec rec = { .data = p, .len = n };
	nng_msg *m;

	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_enc_init(&enc, TK_BATCH_IP, 0), 0);
	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_enc_add(&enc, &rec), 0);
	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_enc_finish(&enc, &m), 0);
	CU_ASSERT_EQUAL_FATAL(tk_bus_send(e->pkt, m, true), 0);
}

/* The next IPv4 packet netstackd sends with protocol proto (bounded). */
static size_t
recv_pkt(env *e, uint8_t proto, uint8_t *out, size_t cap)
{
	uint64_t end = tk_test_now_ms() + 5000;

	while (tk_test_now_ms() < end) {
		nng_msg *m;
		tk_bus_batch_view v;
		tk_bus_batch_rec rec;
		size_t got = 0;

		if (nng_recvmsg(e->pkt, &m, 0) != 0)
			continue;
		if (tk_bus_batch_parse_msg(&v, m, NULL) == 0)
			while (tk_bus_batch_next(&v, &rec))
				if (got == 0 && rec.len >= 20 && rec.data[0] >> 4 == 4 &&
				    rec.data[9] == proto && rec.len <= cap) {
					memcpy(out, rec.data, rec.len);
					got = rec.len;
				}
		nng_msg_free(m);
		if (got)
			return got;
	}
	return 0;
}

static const char *env_socks5; /* --socks5 for the next env_up */

static int
env_up_with(env *e, const ns_resolver_ops *res)
{
	static int n;
	char url[100];
	char err[256];
	ns_config cfg = { 0 };

	memset(e, 0, sizeof(*e));
	if (tk_init() != 0 || (e->dir = tk_test_tmpdir()) == NULL)
		return -1;
	snprintf(url, sizeof(url), "inproc://nsunit%d/" TK_BUS_WGD_PKT, n++);
	snprintf(e->api, sizeof(e->api), "%s/api.sock", e->dir);
	if (tk_bus_open(&e->pkt, TK_BUS_PAIR) != 0 ||
	    tk_bus_listen(e->pkt, url, NULL, NULL) != 0)
		return -1;
	nng_socket_set_ms(e->pkt, NNG_OPT_RECVTIMEO, 500);
	cfg.pkt_url = url;
	cfg.api_path = e->api;
	cfg.addrs[0].family = TK_AF_INET;
	memcpy(cfg.addrs[0].addr, ME, 4);
	cfg.naddrs = 1;
	cfg.socks5_addr = env_socks5;
	if (ns_new(&e->ns, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "ns_new: %s\n", err);
		return -1;
	}
	if (res != NULL)
		ns_set_resolver(e->ns, res);
	return ns_start(e->ns);
}

static int
env_up(env *e)
{
	return env_up_with(e, NULL);
}

static void
env_down(env *e)
{
	ns_free(e->ns);
	nng_close(e->pkt);
	tk_test_rmtree(e->dir);
	free(e->dir);
}

static int
api_open(env *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct timeval tv = { 5, 0 };

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", e->api);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* One frame from netstackd (+fd); the body is copied to body. */
static int
api_read(int fd, ns_api_frame *f, uint8_t *body, int *rfd)
{
	uint8_t b[NS_API_FRAME_MAX];
	union {
		struct cmsghdr h;
		uint8_t b[CMSG_SPACE(sizeof(int))];
	} cm;
	struct iovec iov = { b, 2 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.b,
		.msg_controllen = sizeof(cm.b) };
	size_t used;

	*rfd = -1;
	if (recvmsg(fd, &mh, MSG_WAITALL) != 2)
		return -1;
	for (struct cmsghdr *h = CMSG_FIRSTHDR(&mh); h; h = CMSG_NXTHDR(&mh, h))
		if (h->cmsg_type == SCM_RIGHTS)
			memcpy(rfd, CMSG_DATA(h), sizeof(int));
	size_t len = tk_be16_load(b);
	if (len < NS_API_HDR_LEN || len > sizeof(b) ||
	    recv(fd, b + 2, len - 2, MSG_WAITALL) != (ssize_t)(len - 2) ||
	    ns_api_frame_parse(b, len, f, &used) != 0)
		return -1;
	memcpy(body, f->body, f->len);
	f->body = body;
	return 0;
}

static void
test_stack_ping_rst_accept(void)
{
	env e;
	uint8_t p[2000], r[2000], icmp[16] = { 8, 0, 0, 0, 0x12, 0x34, 0, 1 };
	size_t n;

	if (env_up(&e) != 0) {
		CU_FAIL("netstackd did not start");
		return;
	}
	/* ping */
	memcpy(icmp + 8, "pingpong", 8);
	tk_be16_store(icmp + 2, csum(0, icmp, sizeof(icmp)));
	send_pkt(&e, p, ip4(p, 1, icmp, sizeof(icmp)));
	n = recv_pkt(&e, 1, r, sizeof(r));
	CU_ASSERT_EQUAL(n, 20 + sizeof(icmp));
	CU_ASSERT(n > 28 && r[20] == 0 && memcmp(r + 12, ME, 4) == 0 &&
	    memcmp(r + 16, PEER, 4) == 0 && memcmp(r + 28, "pingpong", 8) == 0);

	/* a SYN to a port nobody listens on: RST */
	send_pkt(&e, p, tcp4(p, 40000, 81, 1000, 0, 0x02, NULL, 0));
	n = recv_pkt(&e, 6, r, sizeof(r));
	CU_ASSERT(n >= 40 && (r[33] & 0x04) && tk_be32_load(r + 28) == 1001);

	/* listen through the API, then a three-way handshake by hand */
	int api = api_open(&e), fd;
	ns_api_frame f;
	uint8_t body[NS_API_FRAME_MAX], req[16];
	CU_ASSERT_FATAL(api >= 0);
	n = tk_test_unhex(req, sizeof(req), "000a0100000000090050"); /* listen 80 */
	CU_ASSERT_EQUAL(write(api, req, n), (ssize_t)n);
	CU_ASSERT_EQUAL_FATAL(api_read(api, &f, body, &fd), 0);
	CU_ASSERT(f.op == NS_MSG_REPLY && f.status == NS_ST_OK && f.id == 9);
	/* the same port again: in use */
	CU_ASSERT_EQUAL(write(api, req, n), (ssize_t)n);
	CU_ASSERT_EQUAL_FATAL(api_read(api, &f, body, &fd), 0);
	CU_ASSERT_EQUAL(f.status, NS_ST_EADDRINUSE);
	/* dial over IPv6 without an IPv6 address: unreachable, said so */
	uint8_t dial6[27];
	n = tk_test_unhex(dial6, sizeof(dial6),
	    "001b02000000000a" "06fd7a115ca1e000000000000000000002" "0016");
	CU_ASSERT_EQUAL(write(api, dial6, n), (ssize_t)n);
	CU_ASSERT_EQUAL_FATAL(api_read(api, &f, body, &fd), 0);
	CU_ASSERT(f.status == NS_ST_ENETUNREACH && f.len > 0);

	send_pkt(&e, p, tcp4(p, 40001, 80, 5000, 0, 0x02, NULL, 0));
	n = recv_pkt(&e, 6, r, sizeof(r));
	CU_ASSERT_FATAL(n >= 40 && (r[33] & 0x12) == 0x12);
	uint32_t iss = tk_be32_load(r + 24);
	CU_ASSERT_EQUAL(tk_be32_load(r + 28), 5001);
	send_pkt(&e, p, tcp4(p, 40001, 80, 5001, iss + 1, 0x10, "hello", 5));
	CU_ASSERT_EQUAL_FATAL(api_read(api, &f, body, &fd), 0);
	CU_ASSERT(f.op == NS_MSG_ACCEPT && f.id == 9 && fd >= 0);
	ns_api_peer peer;
	CU_ASSERT_EQUAL(ns_api_peer_decode(f.body, f.len, &peer), 0);
	CU_ASSERT(peer.remote.family == 4 && memcmp(peer.remote.addr, PEER, 4) == 0 &&
	    peer.remote.port == 40001 && peer.local.port == 80);
	char got[8] = { 0 };
	struct pollfd pf = { fd, POLLIN, 0 };
	CU_ASSERT_EQUAL(poll(&pf, 1, 5000), 1);
	CU_ASSERT_EQUAL(read(fd, got, sizeof(got)), 5);
	CU_ASSERT_STRING_EQUAL(got, "hello");
	/* and back: the application's bytes leave as a segment */
	CU_ASSERT_EQUAL(write(fd, "world", 5), 5);
	for (int i = 0; i < 5; i++) {
		n = recv_pkt(&e, 6, r, sizeof(r));
		if (n == 45)
			break;
	}
	CU_ASSERT(n == 45 && memcmp(r + 40, "world", 5) == 0);
	close(fd);
	close(api);
	env_down(&e);
}

/* The next TCP segment from netstackd with `len` bytes of payload
 * (bounded: a few seconds); its length, 0 if none came. */
static size_t
recv_tcp_len(env *e, size_t len, uint8_t *r, size_t cap)
{
	for (int i = 0; i < 40; i++) {
		size_t n = recv_pkt(e, 6, r, cap);
		if (n >= 40 && n - 20 - (size_t)(r[32] >> 4) * 4 == len)
			return n;
	}
	return 0;
}

/* While the peer's window is zero and lwIP's one-byte probe is
 * unacknowledged, an ACK netstackd sends carries SEG.SEQ = SND.UNA, the
 * peer's RCV.NXT: gVisor (Go nodes' netstack) drops an ACK one beyond it,
 * and the connection deadlocked (ns_zwp.c). */
static void
test_stack_zero_window_ack_seq(void)
{
	env e;
	uint8_t p[2000], r[2000], body[NS_API_FRAME_MAX], req[16], msg[100];
	ns_api_frame f;
	int api, fd;
	size_t n;

	if (env_up(&e) != 0) {
		CU_FAIL("netstackd did not start");
		return;
	}
	CU_ASSERT_FATAL((api = api_open(&e)) >= 0);
	n = tk_test_unhex(req, sizeof(req), "000a0100000000090051"); /* listen 81 */
	CU_ASSERT_EQUAL(write(api, req, n), (ssize_t)n);
	CU_ASSERT_EQUAL_FATAL(api_read(api, &f, body, &fd), 0);
	send_pkt(&e, p, tcp4(p, 40002, 81, 7000, 0, 0x02, NULL, 0));
	n = recv_pkt(&e, 6, r, sizeof(r));
	CU_ASSERT_FATAL(n >= 40 && (r[33] & 0x12) == 0x12);
	uint32_t iss = tk_be32_load(r + 24);
	send_pkt(&e, p, tcp4(p, 40002, 81, 7001, iss + 1, 0x10, "hi", 2));
	CU_ASSERT_EQUAL_FATAL(api_read(api, &f, body, &fd), 0);
	CU_ASSERT_FATAL(f.op == NS_MSG_ACCEPT && fd >= 0);
	/* 100 bytes out, acknowledged with a zero window */
	memset(msg, 'a', sizeof(msg));
	CU_ASSERT_EQUAL(write(fd, msg, 100), 100);
	CU_ASSERT_FATAL(recv_tcp_len(&e, 100, r, sizeof(r)) > 0);
	CU_ASSERT_EQUAL(tk_be32_load(r + 24), iss + 1);
	send_pkt(&e, p, tcp4w(p, 40002, 81, 7003, iss + 101, 0x10, 0, NULL, 0));
	/* a ping behind it on the bus: once answered, netstackd has the
	 * zero window (the bytes below come on another channel, the fd) */
	uint8_t icmp[8] = { 8, 0, 0, 0, 0x77, 0x77, 0, 1 };
	tk_be16_store(icmp + 2, csum(0, icmp, sizeof(icmp)));
	send_pkt(&e, p, ip4(p, 1, icmp, sizeof(icmp)));
	CU_ASSERT_FATAL(recv_pkt(&e, 1, r, sizeof(r)) > 0);
	/* more to send: the persist timer probes with one byte */
	CU_ASSERT_EQUAL(write(fd, msg, 10), 10);
	CU_ASSERT_FATAL(recv_tcp_len(&e, 1, r, sizeof(r)) > 0);
	CU_ASSERT_EQUAL(tk_be32_load(r + 24), iss + 101);
	/* the peer, its window still zero, sends data; our ACK for it must
	 * start at the peer's RCV.NXT (iss + 101), not past the probe byte */
	send_pkt(&e, p, tcp4w(p, 40002, 81, 7003, iss + 101, 0x18, 0, "xyz", 3));
	for (int i = 0; i < 40; i++) {
		CU_ASSERT_FATAL(recv_tcp_len(&e, 0, r, sizeof(r)) > 0);
		if (tk_be32_load(r + 28) == 7006)
			break;
	}
	CU_ASSERT_EQUAL(tk_be32_load(r + 28), 7006);
	CU_ASSERT_EQUAL(tk_be32_load(r + 24), iss + 101);
	/* the window opens: the rest leaves from SND.UNA */
	send_pkt(&e, p, tcp4w(p, 40002, 81, 7006, iss + 101, 0x10, 65535, NULL, 0));
	CU_ASSERT_FATAL(recv_tcp_len(&e, 10, r, sizeof(r)) > 0);
	CU_ASSERT_EQUAL(tk_be32_load(r + 24), iss + 101);
	close(fd);
	close(api);
	env_down(&e);
}

/* The IPv6 extension-header guard (ns_ip6guard.c): a table of chains
 * that fit and that do not; a packet that does not fit is eaten (freed,
 * counted), the rest go on to lwIP untouched. */
static void
test_stack_ip6_ext_guard(void)
{
	static const struct {
		const char *what;
		uint16_t plen;	    /* the header's payload length */
		uint8_t nexth;
		uint8_t body[24];   /* the payload's first bytes */
		size_t have;	    /* payload bytes present */
		int eaten;
	} cases[] = {
		{ "no extension header (TCP)", 20, 6, { 0 }, 20, 0 },
		{ "hop-by-hop, nothing after the header", 0, 0, { 0 }, 0, 1 },
		{ "hop-by-hop, 1 byte", 1, 0, { 59 }, 1, 1 },
		{ "hop-by-hop, 7 bytes", 7, 0, { 59 }, 7, 1 },
		{ "hop-by-hop of 8 then none", 8, 0, { 59, 0 }, 8, 0 },
		{ "hop-by-hop of 8 then routing with nothing", 8, 0, { 43, 0 }, 8, 1 },
		{ "hop-by-hop claiming 16 in 8", 8, 0, { 59, 1 }, 8, 1 },
		{ "fragment (always 8) then none", 8, 44, { 59, 0, 0, 1 }, 8, 0 },
		{ "destination options then 7 bytes", 15, 60, { 0, 0 }, 15, 1 },
		{ "payload length beyond the packet: lwIP's", 200, 0, { 59 }, 8, 0 },
		{ "two headers that fit", 16, 0, { 60, 0, 0, 0, 0, 0, 0, 0, 59, 0 }, 16, 0 },
	};
	unsigned long long before = nsi_ip6_ext_dropped();
	int eaten = 0;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = 40 + cases[i].have;
		struct pbuf *q = pbuf_alloc(PBUF_RAW, (u16_t)n, PBUF_RAM);
		uint8_t *d;

		CU_ASSERT_FATAL(q != NULL);
		d = q->payload;
		memset(d, 0, n);
		d[0] = 0x60;
		tk_be16_store(d + 4, cases[i].plen);
		d[6] = cases[i].nexth;
		d[7] = 64;
		memcpy(d + 40, cases[i].body,
		    cases[i].have < sizeof(cases[i].body) ? cases[i].have :
		    sizeof(cases[i].body));
		int r = ns_ip6_input_hook(q, NULL);
		if (r != cases[i].eaten)
			fprintf(stderr, "ip6 guard: %s: %d\n", cases[i].what, r);
		CU_ASSERT_EQUAL(r, cases[i].eaten);
		if (r == 0)
			pbuf_free(q);
		eaten += r;
	}
	CU_ASSERT_EQUAL(nsi_ip6_ext_dropped() - before, (unsigned long long)eaten);
	/* short of a header, and NULL: lwIP's to judge */
	CU_ASSERT_EQUAL(ns_ip6_input_hook(NULL, NULL), 0);
}

static void
test_stack_one_per_process(void)
{
	env e;
	netstackd *two;
	ns_config cfg = { .pkt_url = "inproc://x/y", .api_path = "/tmp/x" };
	char err[200];

	if (env_up(&e) != 0) {
		CU_FAIL("netstackd did not start");
		return;
	}
	CU_ASSERT_EQUAL(ns_new(&two, &cfg, err, sizeof(err)), TK_ESTATE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "one netstackd"));
	env_down(&e);
	cfg.api_path = NULL;
	CU_ASSERT_EQUAL(ns_new(&two, &cfg, err, sizeof(err)), TK_EINVAL);
}

/* A resolver that answers "re:" + the query, and remembers who asked. */
static ns_api_addr dns_from;

static int
fake_query(void *arg, const ns_api_addr *from, const uint8_t *q, size_t n,
    uint8_t *resp, size_t cap, size_t *resp_len)
{
	(void)arg;
	dns_from = *from;
	if (n + 3 > cap)
		return -1;
	memcpy(resp, "re:", 3);
	memcpy(resp + 3, q, n);
	*resp_len = n + 3;
	return 0;
}

/* The MagicDNS hook: a datagram to 100.100.100.100:53 reaches the
 * registered resolver, and its answer goes back from 100.100.100.100:53. */
static void
test_stack_dns_hook(void)
{
	env e;
	ns_resolver_ops ops = { .udp_query = fake_query };
	uint8_t p[200], r[2000], u[8 + 5], *ip;
	size_t n;

	if (env_up_with(&e, &ops) != 0) {
		CU_FAIL("netstackd did not start");
		return;
	}
	tk_be16_store(u, 5353);
	tk_be16_store(u + 2, 53);
	tk_be16_store(u + 4, sizeof(u));
	tk_be16_store(u + 6, 0); /* no checksum (IPv4 allows it) */
	memcpy(u + 8, "query", 5);
	n = ip4(p, 17, u, sizeof(u));
	ip = p;
	ip[16] = ip[17] = ip[18] = ip[19] = 100; /* to 100.100.100.100 */
	tk_be16_store(ip + 10, 0);
	tk_be16_store(ip + 10, csum(0, ip, 20));
	send_pkt(&e, p, n);
	n = recv_pkt(&e, 17, r, sizeof(r));
	CU_ASSERT_EQUAL(n, 20 + 8 + 8);
	CU_ASSERT(n == 36 && r[12] == 100 && r[13] == 100 && r[14] == 100 &&
	    r[15] == 100 && memcmp(r + 16, PEER, 4) == 0 &&
	    tk_be16_load(r + 20) == 53 && tk_be16_load(r + 22) == 5353 &&
	    memcmp(r + 28, "re:query", 8) == 0);
	CU_ASSERT(dns_from.family == 4 && memcmp(dns_from.addr, PEER, 4) == 0 &&
	    dns_from.port == 5353);
	env_down(&e);
}

/* A UDP datagram PEER:5353 -> 100.100.100.100:53 (no checksum). */
static size_t
dns_query_pkt(uint8_t *p, const uint8_t *q, size_t qn)
{
	uint8_t u[8 + 512];

	tk_be16_store(u, 5353);
	tk_be16_store(u + 2, 53);
	tk_be16_store(u + 4, (uint16_t)(8 + qn));
	tk_be16_store(u + 6, 0);
	memcpy(u + 8, q, qn);
	size_t n = ip4(p, 17, u, 8 + qn);
	p[16] = p[17] = p[18] = p[19] = 100;
	tk_be16_store(p + 10, 0);
	tk_be16_store(p + 10, csum(0, p, 20));
	return n;
}

/* The built-in MagicDNS (no resolver of the test's own): without a netmap
 * there is no table, and a query gets SERVFAIL from 100.100.100.100:53,
 * its ID and question kept; a datagram shorter than a header gets nothing
 * and is counted. */
static void
test_stack_magicdns_builtin(void)
{
	env e;
	uint8_t p[600], r[2000];
	/* dig's query for "peer." A, ID 0x1234, RD */
	static const uint8_t q[] = { 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0,
		0, 0, 4, 'p', 'e', 'e', 'r', 0, 0, 1, 0, 1 };
	size_t n;

	if (env_up(&e) != 0) {
		CU_FAIL("netstackd did not start");
		return;
	}
	send_pkt(&e, p, dns_query_pkt(p, q, 3));
	send_pkt(&e, p, dns_query_pkt(p, q, sizeof(q)));
	n = recv_pkt(&e, 17, r, sizeof(r));
	CU_ASSERT_EQUAL_FATAL(n, 20 + 8 + sizeof(q));
	CU_ASSERT(r[12] == 100 && r[15] == 100 && memcmp(r + 16, PEER, 4) == 0 &&
	    tk_be16_load(r + 20) == 53 && tk_be16_load(r + 22) == 5353);
	CU_ASSERT(r[28] == 0x12 && r[29] == 0x34);  /* ID */
	CU_ASSERT((r[30] & 0x80) && (r[31] & 0x0f) == 2); /* QR, SERVFAIL */
	CU_ASSERT_EQUAL(memcmp(r + 28 + 12, q + 12, sizeof(q) - 12), 0);
	env_down(&e);
}

/* DIAL_TCP_NAME: an unknown name is ENOTFOUND with a text; an IP literal
 * as the name dials (the SYN leaves on the packet bus). */
static void
test_stack_dial_by_name(void)
{
	env e;
	int api, fd;
	ns_api_frame f;
	ns_api_req rq = { .op = NS_OP_DIAL_TCP_NAME, .id = 5 };
	uint8_t b[NS_API_FRAME_MAX], body[NS_API_FRAME_MAX], r[2000];
	size_t n;

	if (env_up(&e) != 0) {
		CU_FAIL("netstackd did not start");
		return;
	}
	CU_ASSERT_FATAL((api = api_open(&e)) >= 0);
	strcpy(rq.name, "nosuch");
	rq.addr.port = 22;
	n = ns_api_req_encode(b, sizeof(b), &rq);
	CU_ASSERT_EQUAL(write(api, b, n), (ssize_t)n);
	CU_ASSERT_EQUAL_FATAL(api_read(api, &f, body, &fd), 0);
	CU_ASSERT(f.id == 5 && f.status == NS_ST_ENOTFOUND && fd < 0);
	CU_ASSERT(f.len > 0 && memmem(f.body, f.len, "name", 4) != NULL);
	strcpy(rq.name, "100.64.0.2");
	rq.id = 6;
	n = ns_api_req_encode(b, sizeof(b), &rq);
	CU_ASSERT_EQUAL(write(api, b, n), (ssize_t)n);
	n = recv_pkt(&e, 6, r, sizeof(r));
	CU_ASSERT(n >= 40 && memcmp(r + 12, ME, 4) == 0 &&
	    memcmp(r + 16, PEER, 4) == 0 && tk_be16_load(r + 22) == 22 &&
	    r[33] == 0x02); /* SYN to 100.64.0.2:22 */
	close(api);
	env_down(&e);
}

/* The SOCKS5 proxy: CONNECT to 100.64.0.2:80 leaves as a SYN from our
 * address; the peer's RST comes back to the client as REP 05.  A proxy
 * address off loopback is refused with a reason. */
static void
test_stack_socks5_connect(void)
{
#ifdef NS_TEST_NO_PROXIES
	tk_test_skip("netstackd built with -DTK_PROXIES=OFF: no SOCKS5 proxy");
	return;
#endif
	env e;
	uint8_t p[2000], r[2000], rep[10];
	static const uint8_t req[] = { 5, 1, 0, 1, 100, 64, 0, 2, 0, 80 };
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	char spec[32], err[256];
	int s = socket(AF_INET, SOCK_STREAM, 0), c;
	size_t n;
	ns_config bad = { .pkt_url = "inproc://x/y", .api_path = "/tmp/x",
		.socks5_addr = "10.0.0.1:1080" };
	netstackd *ns;

	/* a free loopback port for the proxy */
	sa.sin_addr.s_addr = htonl(0x7f000001);
	CU_ASSERT_FATAL(s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	getsockname(s, (struct sockaddr *)&sa, &sl);
	snprintf(spec, sizeof(spec), "127.0.0.1:%u", ntohs(sa.sin_port));
	close(s);
	env_socks5 = spec;
	int up = env_up(&e);
	env_socks5 = NULL;
	if (up != 0) {
		CU_FAIL("netstackd did not start");
		return;
	}
	CU_ASSERT_FATAL((c = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	struct timeval tv = { 5, 0 };
	setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	CU_ASSERT_FATAL(connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CU_ASSERT_EQUAL(write(c, "\x05\x01\x00", 3), 3);
	CU_ASSERT_EQUAL(recv(c, rep, 2, MSG_WAITALL), 2);
	CU_ASSERT(rep[0] == 5 && rep[1] == 0);
	CU_ASSERT_EQUAL(write(c, req, sizeof(req)), (ssize_t)sizeof(req));
	n = recv_pkt(&e, 6, r, sizeof(r));
	CU_ASSERT_FATAL(n >= 40 && r[33] == 0x02 && memcmp(r + 12, ME, 4) == 0 &&
	    memcmp(r + 16, PEER, 4) == 0 && tk_be16_load(r + 22) == 80);
	/* RST+ACK from the peer */
	send_pkt(&e, p, tcp4(p, 80, tk_be16_load(r + 20), 0,
	    tk_be32_load(r + 24) + 1, 0x14, NULL, 0));
	CU_ASSERT_EQUAL(recv(c, rep, 10, MSG_WAITALL), 10);
	CU_ASSERT(rep[0] == 5 && rep[1] == 5); /* REP 05: refused */
	close(c);
	env_down(&e);

	CU_ASSERT_EQUAL(ns_new(&ns, &bad, err, sizeof(err)), TK_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a loopback address"));
}

void
register_ns_stack(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_stack_ping_rst_accept),
		TK_TEST(test_stack_dns_hook),
		TK_TEST(test_stack_magicdns_builtin),
		TK_TEST(test_stack_dial_by_name),
		TK_TEST(test_stack_socks5_connect),
		TK_TEST(test_stack_zero_window_ack_seq),
		TK_TEST(test_stack_ip6_ext_guard),
		TK_TEST(test_stack_one_per_process),
		TK_TEST_END,
	};
	tk_test_suite("ns_stack", cases);
}

#endif
