/*
 * Two wgd instances in one process, as tailkitd will run them: inproc
 * buses, a netmap publisher standing in for ctrld, loopback UDP between
 * them, and the packet buses driven by the test.  Checks keys in state,
 * peers from the netmap, packets through, the packet filter, deltas,
 * removal, and a restart from state.  Runs under ASan in tools/check.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tk/bus.h"
#include "tk/bus_batch.h"
#include "tk/bus_rpc.h"
#include "tk/bus_topic.h"
#include "tk/bus_topics.h"
#include "tk/err.h"
#include "tk/log.h"
#include "tk/loop.h"
#include "tk/mem.h"
#include "tk/bus/v1/ctrl.pb-c.h"
#include "tk/bus/v1/wg.pb-c.h"
#include "tk_test.h"
#include "wgd/wgd.h"
#include "netmap.h"
#include "wgd_int.h" /* wgdi_send_datagram, WGD_MAX_DGRAM */

void register_wgd(void);

typedef struct side {
	char name[8];
	char pub[64], rpc[64], cpub[64], crpc[64], pkt[64];
	char state[512];
	wgd *w;
	uint16_t port;
	uint8_t key[32];
	nng_socket pkt_sock;
	/* the netmap this side's "ctrld" publishes */
	tk_rpc_server *srv;
	tk_topic_pub *tp;
	tk_topic *topic;
	uint8_t nm[4096];
	size_t nmlen;
} side;

static tk_loop *tloop; /* the test's loop: the two publishers */
static char *tmp;

static void
spin(int ms)
{
	uint64_t end = tk_test_now_ms() + (uint64_t)ms;
	while (tk_test_now_ms() < end)
		tk_loop_run_once(tloop, 10);
}

static int
snap(void *arg, tk_buf *out)
{
	side *s = arg;
	return tk_buf_append(out, s->nm, s->nmlen);
}

static Tk__Bus__V1__StatusResponse *
status(side *s)
{
	tk_buf r;
	Tk__Bus__V1__StatusResponse *st = NULL;

	tk_buf_init(&r);
	for (int i = 0; i < 50 && st == NULL; i++) {
		tk_buf_reset(&r);
		if (tk_rpc_call_sync(s->rpc, NULL, TK_METHOD_STATUS, NULL, 0, 1000, &r) == 0)
			st = tk__bus__v1__status_response__unpack(NULL, r.len, r.data);
		else
			spin(20);
	}
	tk_buf_fini(&r);
	return st;
}

static uint64_t
counter(side *s, const char *name)
{
	Tk__Bus__V1__StatusResponse *st = status(s);
	uint64_t v = UINT64_MAX;

	if (st == NULL)
		return v;
	for (size_t i = 0; i < st->n_counters; i++)
		if (strcmp(st->counters[i]->name, name) == 0)
			v = st->counters[i]->value;
	tk__bus__v1__status_response__free_unpacked(st, NULL);
	return v;
}

static void
side_start(side *s)
{
	wgd_config c = { 0 };
	char err[256];

	c.state_dir = s->state;
	c.pub_url = s->pub;
	c.rpc_url = s->rpc;
	c.ctrld_pub_url = s->cpub;
	c.ctrld_rpc_url = s->crpc;
	c.pkt_url = s->pkt;
	c.listen_port = s->port;
	CU_ASSERT_EQUAL_FATAL(wgd_new(&s->w, &c, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(wgd_start(s->w), 0);
	s->port = wgd_listen_port(s->w);
	Tk__Bus__V1__StatusResponse *st = status(s);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_FATAL(st->self != NULL && st->self->key.len == 32);
	memcpy(s->key, st->self->key.data, 32);
	tk__bus__v1__status_response__free_unpacked(st, NULL);
}

static void
side_init(side *s, const char *name)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	snprintf(s->pub, sizeof(s->pub), "inproc://wgdt-%s/" TK_BUS_WGD_PUB,
	    name);
	snprintf(s->rpc, sizeof(s->rpc), "inproc://wgdt-%s/" TK_BUS_WGD_RPC,
	    name);
	snprintf(s->cpub, sizeof(s->cpub), "inproc://wgdt-%s/" TK_BUS_CTRLD_PUB,
	    name);
	snprintf(s->crpc, sizeof(s->crpc), "inproc://wgdt-%s/" TK_BUS_CTRLD_RPC,
	    name);
	snprintf(s->pkt, sizeof(s->pkt), "inproc://wgdt-%s/" TK_BUS_WGD_PKT,
	    name);
	snprintf(s->state, sizeof(s->state), "%s/%s", tmp, name);
	side_start(s);
	tk_rpc_server_cfg rc = { .loop = tloop, .url = s->crpc };
	tk_topic_pub_cfg pc = { .loop = tloop, .url = s->cpub };
	CU_ASSERT_EQUAL_FATAL(tk_rpc_server_new(&s->srv, &rc), 0);
	pc.rpc = s->srv;
	CU_ASSERT_EQUAL_FATAL(tk_topic_pub_new(&s->tp, &pc), 0);
	CU_ASSERT_EQUAL_FATAL(tk_topic_add(s->tp, TK_TOPIC_NETMAP, snap, s,
				  &s->topic), 0);
	CU_ASSERT_EQUAL_FATAL(tk_bus_open(&s->pkt_sock, TK_BUS_PAIR), 0);
	nng_socket_set_ms(s->pkt_sock, NNG_OPT_RECVTIMEO, 100);
	CU_ASSERT_EQUAL_FATAL(tk_bus_dial(s->pkt_sock, s->pkt, NULL, 0, NULL), 0);
}

static void
side_fini(side *s)
{
	wgd_free(s->w);
	tk_topic_pub_free(s->tp);
	tk_rpc_server_free(s->srv);
	nng_close(s->pkt_sock);
}

/*
 * What set_netmap puts into the peer record besides its address: Node
 * fields the data-plane tests turn on (all off by default).
 */
static struct {
	bool jailed, expired, unsigned_only;
	Tk__Bus__V1__Prefix **aips; /* extra allowed IPs after its address */
	size_t naips;
} knob;

/* The netmap for `s`: self address 10.77.0.<own>, one peer `o`. */
static void
set_netmap(side *s, const side *o, uint8_t own, uint8_t other, int filter,
    bool with_peer, bool delta)
{
	Tk__Bus__V1__Node self = TK__BUS__V1__NODE__INIT, peer = TK__BUS__V1__NODE__INIT;
	Tk__Bus__V1__Prefix sa = TK__BUS__V1__PREFIX__INIT, pa = TK__BUS__V1__PREFIX__INIT;
	Tk__Bus__V1__AddrPort ep = TK__BUS__V1__ADDR_PORT__INIT;
	Tk__Bus__V1__PacketFilter pf = TK__BUS__V1__PACKET_FILTER__INIT;
	Tk__Bus__V1__FilterRule rule = TK__BUS__V1__FILTER_RULE__INIT;
	Tk__Bus__V1__IPMatch any = TK__BUS__V1__IPMATCH__INIT;
	Tk__Bus__V1__NetPortRange dst = TK__BUS__V1__NET_PORT_RANGE__INIT;
	uint8_t a1[4] = { 10, 77, 0, own }, a2[4] = { 10, 77, 0, other };
	uint8_t lo[4] = { 127, 0, 0, 1 };
	Tk__Bus__V1__Prefix *sap = &sa, *pap = &pa;
	Tk__Bus__V1__AddrPort *epp = &ep;
	Tk__Bus__V1__FilterRule *rp = &rule;
	Tk__Bus__V1__IPMatch *anyp = &any;
	Tk__Bus__V1__NetPortRange *dstp = &dst;
	Tk__Bus__V1__Node *pp = &peer;

	sa.has_addr = sa.has_bits = true;
	sa.addr.data = a1, sa.addr.len = 4, sa.bits = 32;
	pa.has_addr = pa.has_bits = true;
	pa.addr.data = a2, pa.addr.len = 4, pa.bits = 32;
	self.has_id = true, self.id = own;
	self.has_key = true, self.key.data = s->key, self.key.len = 32;
	self.addresses = &sap, self.n_addresses = 1;
	peer.has_id = true, peer.id = other;
	peer.has_key = true, peer.key.data = (uint8_t *)o->key, peer.key.len = 32;
	Tk__Bus__V1__Prefix *aips[8] = { &pa };
	for (size_t i = 0; i < knob.naips && i < 7; i++)
		aips[i + 1] = knob.aips[i];
	peer.allowed_ips = aips, peer.n_allowed_ips = 1 + (knob.naips < 7 ?
	    knob.naips : 7);
	peer.addresses = &pap, peer.n_addresses = 1;
	peer.has_is_jailed = knob.jailed, peer.is_jailed = knob.jailed;
	peer.has_expired = knob.expired, peer.expired = knob.expired;
	peer.has_unsigned_peer_api_only = knob.unsigned_only;
	peer.unsigned_peer_api_only = knob.unsigned_only;
	char *caps[] = { "test-cap" };
	Tk__Bus__V1__CapMapEntry cme = TK__BUS__V1__CAP_MAP_ENTRY__INIT;
	Tk__Bus__V1__CapMapEntry *cmep = &cme;
	Tk__Bus__V1__IPMatch capm = TK__BUS__V1__IPMATCH__INIT;
	Tk__Bus__V1__IPMatch *capp = &capm;
	capm.match_case = TK__BUS__V1__IPMATCH__MATCH_CAP;
	capm.cap = "test-cap";
	cme.name = "test-cap";
	if (filter == 3) { /* the peer has the capability the rule names */
		peer.cap_map = &cmep;
		peer.n_cap_map = 1;
	}
	if (filter == 5) { /* ... only in the legacy Capabilities list */
		peer.capabilities = caps;
		peer.n_capabilities = 1;
	}
	ep.has_addr = ep.has_port = true;
	ep.addr.data = lo, ep.addr.len = 4, ep.port = o->port;
	peer.endpoints = &epp, peer.n_endpoints = 1;
	any.match_case = TK__BUS__V1__IPMATCH__MATCH_ANY, any.any = true;
	dst.ip = &any;
	dst.has_first_port = dst.has_last_port = true;
	dst.first_port = filter == 2 ? 9 : 0;
	dst.last_port = filter == 2 ? 9 : 65535;
	rule.src_ips = filter >= 3 ? &capp : &anyp, rule.n_src_ips = 1;
	rule.dst_ports = &dstp, rule.n_dst_ports = 1;
	pf.has_received = pf.received = true;
	if (filter) {
		pf.rules = &rp;
		pf.n_rules = 1;
	}
	Tk__Bus__V1__Netmap nm = TK__BUS__V1__NETMAP__INIT;
	nm.self = &self;
	nm.peers = with_peer ? &pp : NULL;
	nm.n_peers = with_peer ? 1 : 0;
	nm.packet_filter = &pf;
	s->nmlen = tk__bus__v1__netmap__pack(&nm, s->nm);
	if (delta) {
		Tk__Bus__V1__NetmapDelta d = TK__BUS__V1__NETMAP_DELTA__INIT;
		uint8_t buf[4096];
		int64_t gone = other;
		d.packet_filter = &pf;
		if (with_peer) {
			d.peers_changed = &pp;
			d.n_peers_changed = 1;
		} else {
			d.peers_removed = &gone;
			d.n_peers_removed = 1;
		}
		size_t n = tk__bus__v1__netmap_delta__pack(&d, buf);
		uint64_t before = counter(s, "netmap_deltas");
		CU_ASSERT_EQUAL(tk_topic_publish(s->topic, buf, n), 0);
		for (int i = 0; i < 200 && counter(s, "netmap_deltas") == before; i++)
			spin(10);
	}
}

/* A UDP/IPv4 packet src -> dst:port with a payload. */
static size_t
udp4(uint8_t *p, uint8_t src, uint8_t dst, uint16_t sport, uint16_t port,
    const char *payload)
{
	size_t pl = strlen(payload), n = 28 + pl;

	memset(p, 0, 28);
	p[0] = 0x45;
	p[2] = (uint8_t)(n >> 8), p[3] = (uint8_t)n;
	p[8] = 64, p[9] = 17;
	p[12] = 10, p[13] = 77, p[15] = src;
	p[16] = 10, p[17] = 77, p[19] = dst;
	uint32_t sum = 0;
	for (int i = 0; i < 20; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	p[10] = (uint8_t)(~sum >> 8), p[11] = (uint8_t)~sum;
	p[20] = (uint8_t)(sport >> 8), p[21] = (uint8_t)sport;
	p[22] = (uint8_t)(port >> 8), p[23] = (uint8_t)port;
	p[24] = (uint8_t)((8 + pl) >> 8), p[25] = (uint8_t)(8 + pl);
	memcpy(p + 28, payload, pl);
	return n;
}

static void
send_pkt(side *s, const uint8_t *p, size_t n)
{
	tk_bus_batch_enc e;
	tk_bus_batch_rec r = { .data = p, .len = n };
	nng_msg *m;

	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_enc_init(&e, TK_BATCH_IP, 0), 0);
	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_enc_add(&e, &r), 0);
	CU_ASSERT_EQUAL_FATAL(tk_bus_batch_enc_finish(&e, &m), 0);
	CU_ASSERT_EQUAL_FATAL(tk_bus_send(s->pkt_sock, m, true), 0);
}

/* Waits up to ms for a packet on s's packet bus carrying `payload`. */
static bool
recv_pkt(side *s, const char *payload, int ms)
{
	uint64_t end = tk_test_now_ms() + (uint64_t)ms;

	while (tk_test_now_ms() < end) {
		nng_msg *m;
		tk_bus_batch_view v;
		tk_bus_batch_rec r;
		bool found = false;

		spin(1);
		if (nng_recvmsg(s->pkt_sock, &m, 0) != 0)
			continue;
		if (tk_bus_batch_parse_msg(&v, m, NULL) == 0)
			while (tk_bus_batch_next(&v, &r))
				if (r.len >= 28 + strlen(payload) &&
				    memcmp(r.data + 28, payload, strlen(payload)) == 0)
					found = true;
		nng_msg_free(m);
		if (found)
			return true;
	}
	return false;
}

/* Sends until one arrives (the first packets wait for the handshake). */
static bool
through_ports(side *from, side *to, uint8_t src, uint8_t dst, uint16_t sport,
    uint16_t port, const char *payload)
{
	uint8_t p[256];
	size_t n = udp4(p, src, dst, sport, port, payload);

	for (int i = 0; i < 10; i++) {
		send_pkt(from, p, n);
		if (recv_pkt(to, payload, 300))
			return true;
	}
	return false;
}

static bool
through(side *from, side *to, uint8_t src, uint8_t dst, uint16_t port,
    const char *payload)
{
	return through_ports(from, to, src, dst, 12345, port, payload);
}

static void
test_wgd_two_instances(void)
{
	side a, b;
	uint8_t akey[32];

	tmp = tk_test_tmpdir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(tmp);
	CU_ASSERT_EQUAL_FATAL(tk_loop_new(&tloop, NULL), 0);
	side_init(&a, "a");
	side_init(&b, "b");
	/* netmaps: each lists the other, filter allows everything */
	set_netmap(&a, &b, 1, 2, 1, true, false);
	set_netmap(&b, &a, 2, 1, 1, true, false);
	for (int i = 0; i < 300 && (counter(&a, "netmap_snapshots") == 0 ||
	    counter(&b, "netmap_snapshots") == 0); i++)
		spin(10);
	CU_ASSERT(counter(&a, "netmap_snapshots") >= 1);
	CU_ASSERT(through(&a, &b, 1, 2, 7, "hello-b"));
	CU_ASSERT(through(&b, &a, 2, 1, 7, "hello-a"));
	CU_ASSERT(counter(&a, "handshakes_completed") >= 1);

	/* b allows only port 9: port 7 is dropped by b's filter, 9 passes */
	set_netmap(&b, &a, 2, 1, 2, true, true);
	CU_ASSERT(!through(&a, &b, 1, 2, 7, "blocked-7"));
	CU_ASSERT(counter(&b, "filter_in_no_rule") >= 1);
	CU_ASSERT(through(&a, &b, 1, 2, 9, "open-9"));
	/* a UDP reply to a flow b started passes even to a closed port */
	CU_ASSERT(through_ports(&b, &a, 2, 1, 4000, 7, "b-starts"));
	CU_ASSERT(through_ports(&a, &b, 1, 2, 7, 4000, "reply-to-b"));
	CU_ASSERT(!through_ports(&a, &b, 1, 2, 7, 4001, "not-a-reply"));

	/* "cap:test-cap" sources: a has it, then not */
	set_netmap(&b, &a, 2, 1, 3, true, true);
	CU_ASSERT(through(&a, &b, 1, 2, 9, "has-cap"));
	set_netmap(&b, &a, 2, 1, 4, true, true);
	CU_ASSERT(!through(&a, &b, 1, 2, 9, "lacks-cap"));

	/* deny all (present, empty) */
	set_netmap(&b, &a, 2, 1, 0, true, true);
	CU_ASSERT(!through(&a, &b, 1, 2, 9, "denied-9"));

	/* b drops a as a peer: nothing reaches b */
	set_netmap(&b, &a, 2, 1, 1, false, true);
	CU_ASSERT(!through(&a, &b, 1, 2, 9, "gone"));
	Tk__Bus__V1__StatusResponse *st = status(&b);
	CU_ASSERT(st != NULL && st->n_peers == 0);
	if (st)
		tk__bus__v1__status_response__free_unpacked(st, NULL);
	set_netmap(&b, &a, 2, 1, 1, true, true);
	/* b lost its session with a: b's first packet starts a new one (a
	 * alone would notice only after KEEPALIVE + REKEY_TIMEOUT, 15 s) */
	CU_ASSERT(through(&b, &a, 2, 1, 9, "back-b"));
	CU_ASSERT(through(&a, &b, 1, 2, 9, "back"));

	/* a restarts from its state: same key, same port, traffic resumes */
	memcpy(akey, a.key, 32);
	wgd_free(a.w);
	a.w = NULL;
	side_start(&a);
	CU_ASSERT(memcmp(akey, a.key, 32) == 0);
	CU_ASSERT(through(&a, &b, 1, 2, 9, "after-restart"));

	side_fini(&a);
	side_fini(&b);
	tk_loop_free(tloop);
	tk_test_rmtree(tmp);
	free(tmp);
}

/* --- data plane: jailed peers, allowed IPs, caps, TSMP (issue 17) --------- */

static void
pair_up(side *a, side *b, const char *an, const char *bn)
{
	tmp = tk_test_tmpdir();
	CU_ASSERT_PTR_NOT_NULL_FATAL(tmp);
	CU_ASSERT_EQUAL_FATAL(tk_loop_new(&tloop, NULL), 0);
	memset(&knob, 0, sizeof(knob));
	side_init(a, an);
	side_init(b, bn);
	set_netmap(a, b, 1, 2, 1, true, false);
	set_netmap(b, a, 2, 1, 1, true, false);
	for (int i = 0; i < 300 && (counter(a, "netmap_snapshots") == 0 ||
	    counter(b, "netmap_snapshots") == 0); i++)
		spin(10);
	CU_ASSERT_FATAL(through(a, b, 1, 2, 7, "pair-up"));
}

static void
pair_down(side *a, side *b)
{
	memset(&knob, 0, sizeof(knob));
	side_fini(a);
	side_fini(b);
	tk_loop_free(tloop);
	tk_test_rmtree(tmp);
	free(tmp);
}

/* Rewrites the IPv4 source of a packet udp4() built (and its checksum). */
static void
set_src4(uint8_t *p, const uint8_t src[4])
{
	uint32_t sum = 0;

	memcpy(p + 12, src, 4);
	p[10] = p[11] = 0;
	for (int i = 0; i < 20; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	p[10] = (uint8_t)(~sum >> 8), p[11] = (uint8_t)~sum;
}

/* Sends a UDP packet from `src` (any address) until it arrives, 5 tries. */
static bool
through_from(side *from, side *to, const uint8_t src[4], const char *payload)
{
	uint8_t p[256];
	size_t n = udp4(p, 1, 2, 12345, 7, payload);

	set_src4(p, src);
	for (int i = 0; i < 5; i++) {
		send_pkt(from, p, n);
		if (recv_pkt(to, payload, 300))
			return true;
	}
	return false;
}

/*
 * A jailed peer gets shields-up (Go: net/tstun runs jailedFilter, a
 * NewShieldsUpFilter, for packets from jailed peers): it cannot open
 * connections to this node, while replies to connections this node opened
 * still come back.
 */
static void
test_wgd_jailed_peer(void)
{
	side a, b;

	pair_up(&a, &b, "ja", "jb");
	knob.jailed = true;
	set_netmap(&b, &a, 2, 1, 1, true, true);
	CU_ASSERT(!through(&a, &b, 1, 2, 7, "jailed-opens"));
	CU_ASSERT(counter(&b, "filter_in_no_rule") >= 1);
	/* b opens a UDP flow to the jailed a: a's replies pass */
	CU_ASSERT(through_ports(&b, &a, 2, 1, 4000, 7, "b-opens"));
	CU_ASSERT(through_ports(&a, &b, 1, 2, 7, 4000, "jailed-replies"));
	CU_ASSERT(!through_ports(&a, &b, 1, 2, 7, 4001, "jailed-not-reply"));
	/* released: a may open connections again */
	knob.jailed = false;
	set_netmap(&b, &a, 2, 1, 1, true, true);
	CU_ASSERT(through(&a, &b, 1, 2, 7, "released"));
	pair_down(&a, &b);
}

/*
 * Which of a peer's AllowedIPs reach WireGuard (Go: routemanager
 * peerViewOf/eligible): its own addresses and single Tailscale IPs always;
 * exit routes only for the selected exit node (no prefs reach wgd: never);
 * subnet routes only with RouteAll (default off on Linux, no prefs: never);
 * nothing for an expired peer, which leaves the device.
 */
static void
test_wgd_allowed_ips_eligible(void)
{
	side a, b;
	uint8_t any4[4] = { 0 }, any6[16] = { 0 }, net[4] = { 192, 168, 77, 0 };
	uint8_t vip[4] = { 100, 100, 1, 2 };
	Tk__Bus__V1__Prefix x[4] = { TK__BUS__V1__PREFIX__INIT,
		TK__BUS__V1__PREFIX__INIT, TK__BUS__V1__PREFIX__INIT,
		TK__BUS__V1__PREFIX__INIT };
	Tk__Bus__V1__Prefix *xp[4] = { &x[0], &x[1], &x[2], &x[3] };
	uint8_t subnet_src[4] = { 192, 168, 77, 5 }, inet_src[4] = { 8, 8, 8, 8 };
	uint8_t own_src[4] = { 10, 77, 0, 1 };

	pair_up(&a, &b, "ra", "rb");
	for (int i = 0; i < 4; i++)
		x[i].has_addr = x[i].has_bits = true;
	x[0].addr.data = any4, x[0].addr.len = 4, x[0].bits = 0;
	x[1].addr.data = any6, x[1].addr.len = 16, x[1].bits = 0;
	x[2].addr.data = net, x[2].addr.len = 4, x[2].bits = 24;
	x[3].addr.data = vip, x[3].addr.len = 4, x[3].bits = 32;
	knob.aips = xp;
	knob.naips = 4;
	set_netmap(&b, &a, 2, 1, 1, true, true);
	uint64_t before = counter(&b, "drop_src_ip");
	CU_ASSERT(through_from(&a, &b, own_src, "own-address"));
	CU_ASSERT(through_from(&a, &b, vip, "tailscale-ip"));
	CU_ASSERT(!through_from(&a, &b, subnet_src, "subnet-route"));
	CU_ASSERT(!through_from(&a, &b, inet_src, "exit-route"));
	CU_ASSERT(counter(&b, "drop_src_ip") >= before + 2);

	/* expired: the peer leaves WireGuard, nothing passes */
	knob.expired = true;
	set_netmap(&b, &a, 2, 1, 1, true, true);
	CU_ASSERT(!through_from(&a, &b, own_src, "expired"));
	Tk__Bus__V1__StatusResponse *st = status(&b);
	CU_ASSERT(st != NULL && st->n_peers == 0);
	if (st)
		tk__bus__v1__status_response__free_unpacked(st, NULL);
	knob.expired = false;
	set_netmap(&b, &a, 2, 1, 1, true, true);
	CU_ASSERT(through(&b, &a, 2, 1, 9, "renewed-b"));
	CU_ASSERT(through_from(&a, &b, own_src, "renewed"));
	pair_down(&a, &b);
}

/*
 * "cap:" sources match CapMap only, and never a peer with
 * UnsignedPeerAPIOnly (Go: LocalBackend.srcIPHasCapForFilter).
 */
static void
test_wgd_cap_capmap_only(void)
{
	side a, b;

	pair_up(&a, &b, "ca", "cb");
	set_netmap(&b, &a, 2, 1, 3, true, true);
	CU_ASSERT(through(&a, &b, 1, 2, 9, "capmap"));
	set_netmap(&b, &a, 2, 1, 5, true, true);
	CU_ASSERT(!through(&a, &b, 1, 2, 9, "legacy-caps"));
	knob.unsigned_only = true;
	set_netmap(&b, &a, 2, 1, 3, true, true);
	CU_ASSERT(!through(&a, &b, 1, 2, 9, "unsigned"));
	knob.unsigned_only = false;
	set_netmap(&b, &a, 2, 1, 3, true, true);
	CU_ASSERT(through(&a, &b, 1, 2, 9, "capmap-again"));
	pair_down(&a, &b);
}

/* A one-peer Netmap (id 2, key 7...7, 10.77.0.1) with one CapMap name. */
static size_t
cap_netmap(uint8_t *out, const char *cap, bool jailed)
{
	static uint8_t key[32], a[4] = { 10, 77, 0, 1 };
	Tk__Bus__V1__Netmap nm = TK__BUS__V1__NETMAP__INIT;
	Tk__Bus__V1__Node peer = TK__BUS__V1__NODE__INIT, *pp = &peer;
	Tk__Bus__V1__Prefix pa = TK__BUS__V1__PREFIX__INIT, *pap = &pa;
	Tk__Bus__V1__CapMapEntry e = TK__BUS__V1__CAP_MAP_ENTRY__INIT, *ep = &e;

	memset(key, 7, sizeof(key));
	pa.has_addr = pa.has_bits = true;
	pa.addr.data = a, pa.addr.len = 4, pa.bits = 32;
	peer.has_id = true, peer.id = 2;
	peer.has_key = true, peer.key.data = key, peer.key.len = 32;
	peer.addresses = &pap, peer.n_addresses = 1;
	peer.allowed_ips = &pap, peer.n_allowed_ips = 1;
	peer.has_is_jailed = true, peer.is_jailed = jailed;
	e.name = (char *)cap;
	peer.cap_map = &ep, peer.n_cap_map = 1;
	nm.peers = &pp, nm.n_peers = 1;
	return tk__bus__v1__netmap__pack(&nm, out);
}

/*
 * Never fail open: whichever allocation fails while a netmap revokes a
 * peer's capability and jails it, the old capability is gone and the jail
 * holds afterwards.
 */
static void
test_wgd_netmap_fails_closed(void)
{
	tk_wg_device_config dc = { 0 };
	tk_wg_device *dev;
	uint8_t base[512], next[512], a[4] = { 10, 77, 0, 1 };
	size_t bn = cap_netmap(base, "x", false), nn = cap_netmap(next, "y", true);
	unsigned long n;

	TK_TEST_NEED_FAULT_INJECTION();
	CU_ASSERT_EQUAL_FATAL(tk_wg_device_new(&dev, &dc), 0);
	wgdi_netmap nm = { .dev = dev };
	for (n = 1; n < 1000; n++) {
		CU_ASSERT_EQUAL_FATAL(wgdi_netmap_snapshot(&nm, base, bn), 0);
		CU_ASSERT_FATAL(wgdi_netmap_has_cap(&nm, 4, a, "x"));
		CU_ASSERT_FATAL(!wgdi_netmap_src_jailed(&nm, 4, a));
		tk_fault_arm(n);
		int rv = wgdi_netmap_snapshot(&nm, next, nn);
		bool fired = tk_fault_fired();
		tk_fault_disarm();
		CU_ASSERT(!wgdi_netmap_has_cap(&nm, 4, a, "x"));
		CU_ASSERT(wgdi_netmap_src_jailed(&nm, 4, a) ||
		    tk_wg_device_route(dev, 4, a) == NULL);
		if (rv == 0)
			CU_ASSERT(wgdi_netmap_has_cap(&nm, 4, a, "y"));
		if (!fired) {
			CU_ASSERT_EQUAL(rv, 0);
			break;
		}
	}
	CU_ASSERT(n > 1 && n < 1000);
	wgdi_netmap_forget(&nm);
	tk_wg_device_free(dev);
}

/* A TSMP message 10.77.0.src -> 10.77.0.dst (net/packet/tsmp.go). */
static size_t
tsmp4(uint8_t *p, uint8_t src, uint8_t dst, const uint8_t *body, size_t bn)
{
	size_t n = 20 + bn;
	uint32_t sum = 0;

	memset(p, 0, 20);
	p[0] = 0x45;
	p[2] = (uint8_t)(n >> 8), p[3] = (uint8_t)n;
	p[4] = 0x12, p[5] = 0x34; /* IP ID: the pong carries ^ID */
	p[8] = 64, p[9] = 99;
	p[12] = 10, p[13] = 77, p[15] = src;
	p[16] = 10, p[17] = 77, p[19] = dst;
	for (int i = 0; i < 20; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	p[10] = (uint8_t)(~sum >> 8), p[11] = (uint8_t)~sum;
	memcpy(p + 20, body, bn);
	return n;
}

/* Waits up to ms for an IPv4 packet of protocol 99 whose TSMP body starts
 * with the n bytes at `want`; copies it out. */
static size_t
recv_tsmp(side *s, const uint8_t *want, size_t n, uint8_t *out, size_t cap,
    int ms)
{
	uint64_t end = tk_test_now_ms() + (uint64_t)ms;

	while (tk_test_now_ms() < end) {
		nng_msg *m;
		tk_bus_batch_view v;
		tk_bus_batch_rec r;
		size_t got = 0;

		spin(1);
		if (nng_recvmsg(s->pkt_sock, &m, 0) != 0)
			continue;
		if (tk_bus_batch_parse_msg(&v, m, NULL) == 0)
			while (tk_bus_batch_next(&v, &r))
				if (r.len >= 20 + n && r.len <= cap &&
				    r.data[9] == 99 &&
				    memcmp(r.data + 20, want, n) == 0) {
					memcpy(out, r.data, r.len);
					got = r.len;
				}
		nng_msg_free(m);
		if (got)
			return got;
	}
	return 0;
}

/*
 * TSMP (net/tstun/wrap.go filterPacketInboundFromWireGuard): a ping is
 * answered with a pong by wgd and never handed up the stack; a disco key
 * advertisement is consumed and counted.
 */
static void
test_wgd_tsmp(void)
{
	side a, b;
	uint8_t ping[9] = { 'p', 1, 2, 3, 4, 5, 6, 7, 8 }, pong[9] = { 'o' };
	uint8_t adv[33] = { 'a' }, pkt[128], got[128];
	size_t n, gn = 0;

	memcpy(pong + 1, ping + 1, 8);
	memset(adv + 1, 0x5a, 32);
	pair_up(&a, &b, "ta", "tb");
	n = tsmp4(pkt, 1, 2, ping, sizeof(ping));
	for (int i = 0; i < 5 && gn == 0; i++) {
		send_pkt(&a, pkt, n);
		gn = recv_tsmp(&a, pong, sizeof(pong), got, sizeof(got), 300);
	}
	/* tsmp.go TSMPPongReply: 'o', the 8 ping bytes, PeerAPIPort (0) */
	CU_ASSERT_EQUAL(gn, 20 + 11);
	if (gn == 31) {
		CU_ASSERT(got[12] == 10 && got[15] == 2); /* from b */
		CU_ASSERT(got[16] == 10 && got[19] == 1); /* to a */
		CU_ASSERT(got[4] == (uint8_t)~0x12 && got[5] == (uint8_t)~0x34);
		CU_ASSERT(got[29] == 0 && got[30] == 0);
	}
	CU_ASSERT(recv_tsmp(&b, ping, sizeof(ping), got, sizeof(got), 300) == 0);
	CU_ASSERT(counter(&b, "tsmp_pings") >= 1);

	n = tsmp4(pkt, 1, 2, adv, sizeof(adv));
	for (int i = 0; i < 3; i++)
		send_pkt(&a, pkt, n);
	CU_ASSERT(recv_tsmp(&b, adv, sizeof(adv), got, sizeof(got), 500) == 0);
	CU_ASSERT(counter(&b, "tsmp_disco_adverts") >= 1);
	pair_down(&a, &b);
}

/* rpc "ping" on a: PingRequest -> status and the decoded PingResponse. */
static int
ping_rpc(side *a, const uint8_t ip[4], int type, uint32_t timeout_ms,
    Tk__Bus__V1__PingResponse **out, char *err, size_t errlen)
{
	Tk__Bus__V1__PingRequest rq = TK__BUS__V1__PING_REQUEST__INIT;
	uint8_t body[64];
	tk_buf b;

	rq.has_ip = rq.has_type = rq.has_timeout_ms = true;
	rq.ip.data = (uint8_t *)ip, rq.ip.len = 4;
	rq.type = type;
	rq.timeout_ms = timeout_ms;
	size_t n = tk__bus__v1__ping_request__pack(&rq, body);
	tk_buf_init(&b);
	int rv = tk_rpc_call_sync(a->rpc, NULL, TK_METHOD_PING, body, n, 5000, &b);
	*out = rv == 0 ? tk__bus__v1__ping_response__unpack(NULL, b.len, b.data) :
	    NULL;
	snprintf(err, errlen, "%.*s", rv == 0 ? 0 : (int)b.len, (char *)b.data);
	tk_buf_fini(&b);
	return rv;
}

/*
 * rpc "ping": a TSMP ping from a's address to b, answered by b's wgd (the
 * reply is deferred until the pong arrives), with the latency and the
 * path (b's UDP endpoint); an ICMP echo nobody answers times out; bad
 * requests are refused with a reason.
 */
static void
test_wgd_ping(void)
{
	side a, b;
	static const uint8_t ip_b[4] = { 10, 77, 0, 2 }, ip_x[4] = { 10, 9, 9, 9 };
	Tk__Bus__V1__PingResponse *r = NULL;
	char err[200];

	pair_up(&a, &b, "pa", "pb");
	CU_ASSERT_EQUAL(ping_rpc(&a, ip_b, TK__BUS__V1__PING_TYPE__PING_TYPE_TSMP,
	    2000, &r, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_PTR_NULL(r->err);
	CU_ASSERT(r->has_latency_us && r->latency_us < 2000000);
	CU_ASSERT_EQUAL(r->node_id, 2);
	CU_ASSERT_FALSE(r->has_derp_region);
	CU_ASSERT(r->endpoint != NULL && r->endpoint->port == b.port);
	tk__bus__v1__ping_response__free_unpacked(r, NULL);
	CU_ASSERT(counter(&a, "ping_answered") == 1);
	CU_ASSERT(counter(&b, "tsmp_pings") >= 1);

	/* the echo request reaches b's stack; nobody answers it here */
	CU_ASSERT_EQUAL(ping_rpc(&a, ip_b, TK__BUS__V1__PING_TYPE__PING_TYPE_ICMP,
	    300, &r, err, sizeof(err)), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT(r->err != NULL && strstr(r->err, "timeout") != NULL);
	tk__bus__v1__ping_response__free_unpacked(r, NULL);
	CU_ASSERT(counter(&a, "ping_timeouts") == 1);

	CU_ASSERT_EQUAL(ping_rpc(&a, ip_x, TK__BUS__V1__PING_TYPE__PING_TYPE_TSMP,
	    300, &r, err, sizeof(err)), TK_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "no peer"));
	CU_ASSERT_EQUAL(ping_rpc(&a, ip_b, 7, 300, &r, err, sizeof(err)),
	    TK_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "TSMP, ICMP or DISCO"));
	/* disco pings go over DERP: without derpd they are refused */
	CU_ASSERT_EQUAL(ping_rpc(&a, ip_b, TK__BUS__V1__PING_TYPE__PING_TYPE_DISCO,
	    300, &r, err, sizeof(err)), TK_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "no DERP path"));
	CU_ASSERT_EQUAL(ping_rpc(&a, ip_b, TK__BUS__V1__PING_TYPE__PING_TYPE_TSMP,
	    60000, &r, err, sizeof(err)), TK_EINVAL);
	/* an undecodable PingRequest, and one without an address */
	tk_buf g;
	tk_buf_init(&g);
	CU_ASSERT_EQUAL(tk_rpc_call_sync(a.rpc, NULL, TK_METHOD_PING,
	    (const uint8_t *)"\xff\xff\xff", 3, 3000, &g), TK_EPROTO);
	CU_ASSERT_EQUAL(tk_rpc_call_sync(a.rpc, NULL, TK_METHOD_PING, NULL, 0,
	    3000, &g), TK_EINVAL);
	tk_buf_fini(&g);
	CU_ASSERT(counter(&a, "ping_sent") == 2);
	pair_down(&a, &b);
}

/* rpc "pkt_tap": off until asked, then a summary per packet on the bus. */
static void
test_wgd_pkt_tap(void)
{
	side a, b;
	Tk__Bus__V1__PktTapRequest rq = TK__BUS__V1__PKT_TAP_REQUEST__INIT;
	Tk__Bus__V1__PktTapReply *rp;
	uint8_t body[16];
	tk_buf out;

	pair_up(&a, &b, "ka", "kb");
	tk_buf_init(&out);
	rq.has_after_seq = true;
	size_t bl = tk__bus__v1__pkt_tap_request__pack(&rq, body);
	CU_ASSERT_EQUAL_FATAL(tk_rpc_call_sync(b.rpc, NULL, TK_METHOD_PKT_TAP, body,
	    bl, 3000, &out), 0);
	rp = tk__bus__v1__pkt_tap_reply__unpack(NULL, out.len, out.data);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rp);
	CU_ASSERT_EQUAL(rp->n_pkts, 0); /* pair_up's packets: the tap was off */
	tk__bus__v1__pkt_tap_reply__free_unpacked(rp, NULL);
	CU_ASSERT(through(&a, &b, 1, 2, 9, "tapped"));
	CU_ASSERT_EQUAL_FATAL(tk_rpc_call_sync(b.rpc, NULL, TK_METHOD_PKT_TAP, body,
	    bl, 3000, &out), 0);
	rp = tk__bus__v1__pkt_tap_reply__unpack(NULL, out.len, out.data);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rp);
	CU_ASSERT(rp->n_pkts >= 1);
	if (rp->n_pkts >= 1) {
		const Tk__Bus__V1__PktSummary *p = rp->pkts[0];
		CU_ASSERT(p->seq == 1 && p->inbound && p->proto == 17);
		CU_ASSERT(p->src.len == 4 && p->src.data[3] == 1);
	}
	tk__bus__v1__pkt_tap_reply__free_unpacked(rp, NULL);
	CU_ASSERT_EQUAL(tk_rpc_call_sync(b.rpc, NULL, TK_METHOD_PKT_TAP,
	    (const uint8_t *)"\xff", 1, 3000, &out), TK_EPROTO);
	tk_buf_fini(&out);
	pair_down(&a, &b);
}

/* rpc "uapi_get": wg(8)'s view without the private key. */
static void
test_wgd_uapi_get(void)
{
	side a, b;
	tk_buf out;

	pair_up(&a, &b, "ua", "ub");
	tk_buf_init(&out);
	CU_ASSERT_EQUAL(tk_rpc_call_sync(a.rpc, NULL, TK_METHOD_UAPI_GET, NULL, 0,
	    3000, &out), 0);
	CU_ASSERT_EQUAL_FATAL(tk_buf_append(&out, "", 1), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr((char *)out.data, "listen_port="));
	CU_ASSERT_PTR_NOT_NULL(strstr((char *)out.data, "public_key="));
	CU_ASSERT_PTR_NULL(strstr((char *)out.data, "private_key="));
	tk_buf_fini(&out);
	pair_down(&a, &b);
}

static void
test_wgd_bad_config(void)
{
	wgd *w;
	wgd_config c = { 0 };
	char err[256];

	c.tun_name = "x";
	c.pkt_url = "inproc://x/y";
	CU_ASSERT_EQUAL(wgd_new(&w, &c, err, sizeof(err)), TK_EINVAL);
	CU_ASSERT(strstr(err, "exclude") != NULL);
	memset(&c, 0, sizeof(c));
	c.pkt_url = "inproc://x/y";
	c.mtu = 100;
	CU_ASSERT_EQUAL(wgd_new(&w, &c, err, sizeof(err)), TK_EINVAL);
	CU_ASSERT(strstr(err, "576") != NULL);
	c.mtu = 0;
	c.ctrld_pub_url = "inproc://x/p";
	CU_ASSERT_EQUAL(wgd_new(&w, &c, err, sizeof(err)), TK_EINVAL);
	c.ctrld_pub_url = NULL;
	c.pkt_url = "tcp://127.0.0.1:1";
	CU_ASSERT_NOT_EQUAL(wgd_new(&w, &c, err, sizeof(err)), 0);
	CU_ASSERT(strstr(err, "tls+tcp") != NULL);
}

/* --- the UAPI socket ------------------------------------------------------ */

static bool
send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k <= 0)
			return false;
		p += k, n -= (size_t)k;
	}
	return true;
}

/* Reads one response (up to the empty line); NUL-terminated, free(). */
static char *
read_response(int fd, size_t *len)
{
	size_t cap = 1 << 16, n = 0;
	char *b = malloc(cap);

	while (b != NULL) {
		if (n + 4096 + 1 > cap) {
			char *nb = realloc(b, cap *= 2);
			if (nb == NULL)
				break;
			b = nb;
		}
		/* small reads: a slow reader, so wgd's writes meet EAGAIN */
		ssize_t k = read(fd, b + n, 4096);
		if (k <= 0)
			break; /* EOF, or the SO_RCVTIMEO below: cut short */
		n += (size_t)k;
		b[n] = '\0';
		if (n >= 2 && b[n - 1] == '\n' && b[n - 2] == '\n')
			break;
	}
	if (b != NULL)
		b[n] = '\0';
	*len = n;
	return b;
}

static size_t
count_lines(const char *s, const char *prefix)
{
	size_t n = 0, pl = strlen(prefix);

	for (const char *p = s; p != NULL && *p; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, prefix, pl) == 0)
			n++;
	}
	return n;
}

static void
hex32(char *out, const uint8_t k[32])
{
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", k[i]);
}

/*
 * A `get` with thousands of peers is far larger than a socket buffer: the
 * whole answer must arrive even when the client reads slowly.
 */
static void
test_wgd_uapi_big_get(void)
{
	enum { PEERS = 5000 };
	char *dir = tk_test_tmpdir(), err[256], hex[65], line[256];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	wgd_config c = { 0 };
	wgd *w = NULL;
	uint8_t key[32];
	size_t cap = (size_t)PEERS * 128 + 256, n = 0, rl;
	char *req = malloc(cap), *resp;
	int fd;

	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	CU_ASSERT_PTR_NOT_NULL_FATAL(req);
	c.uapi_dir = dir;
	c.uapi_name = "big";
	CU_ASSERT_EQUAL_FATAL(wgd_new(&w, &c, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(wgd_start(w), 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/big.sock", dir);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

	memset(key, 0x11, sizeof(key));
	hex32(hex, key);
	n += (size_t)snprintf(req + n, cap - n, "set=1\nprivate_key=%s\n", hex);
	for (int i = 0; i < PEERS; i++) {
		memset(key, 0x5a, sizeof(key));
		key[0] = (uint8_t)(i >> 8), key[1] = (uint8_t)i;
		hex32(hex, key);
		snprintf(line, sizeof(line), "public_key=%s\nallowed_ip=10.%d.%d.0/24\n",
		    hex, 1 + i / 250, i % 250);
		n += (size_t)snprintf(req + n, cap - n, "%s", line);
	}
	n += (size_t)snprintf(req + n, cap - n, "\n");
	CU_ASSERT_FATAL(send_all(fd, req, n));
	resp = read_response(fd, &rl);
	CU_ASSERT(resp != NULL && strcmp(resp, "errno=0\n\n") == 0);
	free(resp);

	CU_ASSERT_FATAL(send_all(fd, "get=1\n\n", 7));
	usleep(300 * 1000); /* wgd meets a full socket buffer meanwhile */
	resp = read_response(fd, &rl);
	CU_ASSERT_PTR_NOT_NULL_FATAL(resp);
	fprintf(stderr, "\n  get: %zu bytes\n", rl);
	CU_ASSERT_EQUAL(count_lines(resp, "public_key="), PEERS);
	CU_ASSERT_EQUAL(count_lines(resp, "allowed_ip="), PEERS);
	CU_ASSERT(rl >= 10 && strcmp(resp + rl - 10, "\nerrno=0\n\n") == 0);
	free(resp);

	/* the connection still serves the next request */
	CU_ASSERT_FATAL(send_all(fd, "get=1\n\n", 7));
	resp = read_response(fd, &rl);
	CU_ASSERT(resp != NULL && count_lines(resp, "public_key=") == PEERS);
	free(resp);

	close(fd);
	wgd_stop(w);
	wgd_free(w);
	free(req);
	tk_test_rmtree(dir);
	free(dir);
}

/*
 * A datagram over WGD_MAX_DGRAM cannot be sent; it is dropped and counted
 * (status counter "tx_oversize"), never lost silently.
 */
static void
test_wgd_oversize_counted(void)
{
	side s;
	wgd_config c = { 0 };
	char err[256];
	tk_wg_endpoint ep = { .ep_family = 4, .ep_addr = { 127, 0, 0, 1 },
		.ep_port = 9 };
	uint8_t *big = calloc(1, WGD_MAX_DGRAM + 1);

	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	memset(&s, 0, sizeof(s));
	snprintf(s.pub, sizeof(s.pub), "inproc://wgdt-big/wgd.pub");
	snprintf(s.rpc, sizeof(s.rpc), "inproc://wgdt-big/wgd.rpc");
	c.pub_url = s.pub;
	c.rpc_url = s.rpc;
	CU_ASSERT_EQUAL_FATAL(wgd_new(&s.w, &c, err, sizeof(err)), 0);
	/* before the loop thread runs: this thread may use the instance */
	wgdi_send_datagram(s.w, NULL, &ep, big, WGD_MAX_DGRAM + 1);
	wgdi_send_datagram(s.w, NULL, &ep, big, 100);
	CU_ASSERT_EQUAL_FATAL(wgd_start(s.w), 0);
	CU_ASSERT_EQUAL(counter(&s, "tx_oversize"), 1);
	wgd_stop(s.w);
	wgd_free(s.w);
	free(big);
}

/* --- secrets ------------------------------------------------------------------- */

static struct {
	uint64_t calls, bytes, largest, not_zero; /* atomics */
} sec;

static void
secret_hook(const void *p, size_t n, void *arg)
{
	const uint8_t *b = p;
	uint64_t cur;

	(void)arg;
	for (size_t i = 0; i < n; i++)
		if (b[i] != 0) {
			__atomic_add_fetch(&sec.not_zero, 1, __ATOMIC_SEQ_CST);
			break;
		}
	__atomic_add_fetch(&sec.calls, 1, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&sec.bytes, n, __ATOMIC_SEQ_CST);
	cur = __atomic_load_n(&sec.largest, __ATOMIC_SEQ_CST);
	while (n > cur && !__atomic_compare_exchange_n(&sec.largest, &cur, n,
	    false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		;
}

/*
 * The UAPI buffers that held a private key -- the set request and the get
 * response -- are zeroed before they are freed (tk_free_secret).
 */
static void
test_wgd_uapi_secrets_zeroed(void)
{
	char *dir = tk_test_tmpdir(), err[256], hex[65], req[256], *resp;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	wgd_config c = { 0 };
	wgd *w = NULL;
	uint8_t key[32];
	size_t rl, get_len, set_len;
	int fd;

	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	c.uapi_dir = dir;
	c.uapi_name = "sec";
	CU_ASSERT_EQUAL_FATAL(wgd_new(&w, &c, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(wgd_start(w), 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sec.sock", dir);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	memset(&sec, 0, sizeof(sec));
	tk_mem_set_secret_free_hook(secret_hook, NULL);

	memset(key, 0x33, sizeof(key));
	key[0] &= 248, key[31] = (key[31] & 127) | 64; /* as stored: clamped */
	hex32(hex, key);
	set_len = (size_t)snprintf(req, sizeof(req), "set=1\nprivate_key=%s\n\n",
	    hex);
	CU_ASSERT_FATAL(send_all(fd, req, set_len));
	resp = read_response(fd, &rl);
	CU_ASSERT(resp != NULL && strcmp(resp, "errno=0\n\n") == 0);
	free(resp);
	CU_ASSERT_FATAL(send_all(fd, "get=1\n\n", 7));
	resp = read_response(fd, &rl);
	CU_ASSERT(resp != NULL && strstr(resp, hex) != NULL);
	get_len = rl;
	free(resp);
	close(fd);
	/* wgd notices the close on its loop thread */
	uint64_t end = tk_test_now_ms() + 5000;
	while (tk_test_now_ms() < end &&
	    __atomic_load_n(&sec.bytes, __ATOMIC_SEQ_CST) < get_len + set_len)
		usleep(10000);
	wgd_stop(w);
	wgd_free(w);
	tk_mem_set_secret_free_hook(NULL, NULL);
	fprintf(stderr, "\n  secret frees: %lu, %lu bytes (get %zu, set %zu)\n",
	    (unsigned long)sec.calls, (unsigned long)sec.bytes, get_len, set_len);
	CU_ASSERT(sec.largest >= get_len);  /* the get response */
	CU_ASSERT(sec.bytes >= get_len + set_len); /* and the request buffer */
	CU_ASSERT_EQUAL(sec.not_zero, 0);
	tk_test_rmtree(dir);
	free(dir);
}

/* --- UDP socket options ---------------------------------------------------- */

static long
sysctl_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f != NULL) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/*
 * Without CAP_NET_ADMIN (as nobody) SO_MARK and SO_*BUFFORCE fail for real:
 * the buffers still grow through SO_RCVBUF/SO_SNDBUF (up to the host's
 * rmem_max/wmem_max), and a fwmark that cannot be applied is refused, not
 * reported as set.  Runs in a child; exit status = the failed check.
 */
static int
unprivileged_child(const char *dir)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 10 };
	wgd_config c = { 0 };
	char err[256], *resp;
	wgd *w;
	int fd, v;
	socklen_t vl = sizeof(v);
	size_t rl;
	long rmax = sysctl_long("/proc/sys/net/core/rmem_max");

	if (getuid() == 0 && (setgroups(0, NULL) != 0 || setgid(65534) != 0 ||
	    setuid(65534) != 0))
		return 77;
	c.uapi_dir = dir;
	c.uapi_name = "mark";
	if (wgd_new(&w, &c, err, sizeof(err)) != 0) {
		fprintf(stderr, "wgd_new as nobody: %s\n", err);
		return 10;
	}
	/* 4 MiB asked; the kernel reports twice what it granted */
	if (rmax > 0 && getsockopt(w->udp, SOL_SOCKET, SO_RCVBUF, &v, &vl) == 0 &&
	    (long)v < 2 * TK_MIN(rmax, 4L << 20)) {
		fprintf(stderr, "SO_RCVBUF %d, want %ld\n", v, 2 * TK_MIN(rmax, 4L << 20));
		return 11;
	}
	if (wgd_start(w) != 0)
		return 12;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/mark.sock", dir);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		return 13;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (!send_all(fd, "set=1\nfwmark=51820\n\n", 20))
		return 14;
	resp = read_response(fd, &rl);
	if (resp == NULL || strcmp(resp, "errno=0\n\n") == 0 ||
	    strncmp(resp, "errno=", 6) != 0) {
		fprintf(stderr, "fwmark set as nobody: %s\n", resp ? resp : "(none)");
		return 15;
	}
	free(resp);
	if (!send_all(fd, "get=1\n\n", 7))
		return 16;
	resp = read_response(fd, &rl);
	if (resp == NULL || strstr(resp, "fwmark=51820") != NULL) {
		fprintf(stderr, "get after a refused fwmark: %s\n", resp ? resp : "");
		return 17;
	}
	free(resp);
	close(fd);
	wgd_stop(w);
	wgd_free(w);
	return 0;
}

static void
test_wgd_unprivileged_sockopts(void)
{
	char *dir = tk_test_tmpdir();
	int status = 0;
	pid_t pid;

	const char *emu = getenv("TK_EMULATOR");
	if (emu != NULL && *emu) {
		/* qemu-user 7.2 aborts a child forked from a threaded process
		 * (accel/tcg/cpu-exec.c: cpu == current_cpu) */
		tk_test_skip("fork from a threaded process under qemu-user");
		free(dir);
		return;
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
	CU_ASSERT_FATAL(chown(dir, 65534, 65534) == 0 || getuid() != 0);
	fflush(NULL);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0)
		_exit(unprivileged_child(dir));
	CU_ASSERT_FATAL(waitpid(pid, &status, 0) == pid);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
		tk_test_skip("cannot drop privileges here");
	} else {
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fprintf(stderr, "\n  child: status %d\n", status);
		CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	tk_test_rmtree(dir);
	free(dir);
}

/*
 * Every fault point while opening an instance: a clean error or (for the
 * buffer size, which has a fallback) success.  A socket that cannot take
 * IPv4 peers (IPV6_V6ONLY=0 refused) is an error that says so.
 */
static void
test_wgd_new_fault_sweep(void)
{
	int level = tk_log_get_level();
	bool saw_v6only = false;
	int tolerated = 0;
	unsigned long n;

	TK_TEST_NEED_FAULT_INJECTION();
	tk_log_set_level(-1);
	for (n = 1; n < 10000; n++) {
		wgd_config c = { 0 };
		char err[256] = "";
		wgd *w = NULL;
		int rv;
		bool fired;

		tk_fault_arm(n);
		rv = wgd_new(&w, &c, err, sizeof(err));
		fired = tk_fault_fired();
		tk_fault_disarm();
		if (!fired) {
			CU_ASSERT_EQUAL(rv, 0);
			wgd_free(w);
			break;
		}
		if (rv == 0) {
			tolerated++;
			wgd_free(w);
			continue;
		}
		CU_ASSERT(err[0] != '\0');
		if (strstr(err, "IPV6_V6ONLY") != NULL)
			saw_v6only = true;
	}
	tk_log_set_level(level);
	CU_ASSERT(n < 10000);
	CU_ASSERT(saw_v6only);
	CU_ASSERT(tolerated >= 2); /* SO_RCVBUFFORCE, SO_SNDBUFFORCE */
}

void
register_wgd(void)
{
	CU_pSuite s = CU_add_suite("wgd", NULL, NULL);
	CU_add_test(s, "test_wgd_two_instances", test_wgd_two_instances);
	CU_add_test(s, "test_wgd_jailed_peer", test_wgd_jailed_peer);
	CU_add_test(s, "test_wgd_allowed_ips_eligible",
	    test_wgd_allowed_ips_eligible);
	CU_add_test(s, "test_wgd_cap_capmap_only", test_wgd_cap_capmap_only);
	CU_add_test(s, "test_wgd_netmap_fails_closed",
	    test_wgd_netmap_fails_closed);
	CU_add_test(s, "test_wgd_tsmp", test_wgd_tsmp);
	CU_add_test(s, "test_wgd_ping", test_wgd_ping);
	CU_add_test(s, "test_wgd_uapi_get", test_wgd_uapi_get);
	CU_add_test(s, "test_wgd_pkt_tap", test_wgd_pkt_tap);
	CU_add_test(s, "test_wgd_bad_config", test_wgd_bad_config);
	CU_add_test(s, "test_wgd_uapi_big_get", test_wgd_uapi_big_get);
	CU_add_test(s, "test_wgd_oversize_counted", test_wgd_oversize_counted);
	CU_add_test(s, "test_wgd_unprivileged_sockopts",
	    test_wgd_unprivileged_sockopts);
	CU_add_test(s, "test_wgd_new_fault_sweep", test_wgd_new_fault_sweep);
	CU_add_test(s, "test_wgd_uapi_secrets_zeroed",
	    test_wgd_uapi_secrets_zeroed);
}
