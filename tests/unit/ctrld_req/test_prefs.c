/*
 * ctrld's prefs (src/prefs.h): edits checked and refused with the field's
 * name, the stored edits over the command line, their ctrld.db form
 * (round trip, garbage refused), and the netmap view they imply.
 */
#include <string.h>

#include "prefs.h"
#include "tk/bus.h"
#include "tk/err.h"
#include "tk_test.h"

void register_prefs(void);

static int
edit(ctrldi_prefs *p, unsigned *mask, Tk__Bus__V1__MaskedPrefs *mp, char *err,
    size_t errlen)
{
	return ctrldi_prefs_edit(p, mask, NULL, mp, "http://ctl", err, errlen);
}

static void
test_prefs_edit(void)
{
	Tk__Bus__V1__MaskedPrefs mp = TK__BUS__V1__MASKED_PREFS__INIT;
	Tk__Bus__V1__Prefs v = TK__BUS__V1__PREFS__INIT;
	ctrldi_prefs p;
	unsigned mask = 0, changed = 0;
	char err[300], *tags[] = { "tag:a", "tag:b-2" };

	ctrldi_prefs_init(&p);
	CU_ASSERT(p.want_running && p.corp_dns && !p.shields_up);
	mp.prefs = &v;
	mp.want_running_set = mp.hostname_set = mp.advertise_tags_set = true;
	v.has_want_running = true; /* false */
	v.hostname = "web-1.lab";
	v.advertise_tags = tags;
	v.n_advertise_tags = 2;
	CU_ASSERT_FATAL(ctrldi_prefs_edit(&p, &mask, &changed, &mp, "http://ctl",
	    err, sizeof(err)) == 0);
	CU_ASSERT(!p.want_running && strcmp(p.hostname, "web-1.lab") == 0);
	CU_ASSERT_STRING_EQUAL(p.tags, "tag:a,tag:b-2");
	CU_ASSERT_EQUAL(mask, CTRLDI_PREF_WANT_RUNNING | CTRLDI_PREF_HOSTNAME |
	    CTRLDI_PREF_TAGS);
	CU_ASSERT_EQUAL(changed, mask);

	/* refused, naming the field; nothing changes */
	static const struct {
		int field;
		const char *why;
	} bad[] = {
		{ 1, "RouteAll" }, { 2, "ExitNodeID" }, { 3, "RunSSH" },
		{ 4, "NoSNAT" }, { 5, "--control-url" }, { 6, "Hostname" },
		{ 7, "Hostname" }, { 8, "AdvertiseTags" }, { 9, "ExitNodeIP" },
		{ 10, "Hostname" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		Tk__Bus__V1__MaskedPrefs b = TK__BUS__V1__MASKED_PREFS__INIT;
		Tk__Bus__V1__Prefs w = TK__BUS__V1__PREFS__INIT;
		char *bt[] = { "nottag" };
		uint8_t ip[4] = { 100, 64, 0, 1 };
		char longname[300];
		memset(longname, 'a', sizeof(longname) - 1);
		longname[sizeof(longname) - 1] = '\0';
		b.prefs = &w;
		switch (bad[i].field) {
		case 1: b.route_all_set = w.has_route_all = w.route_all = true; break;
		case 2: b.exit_node_id_set = true; w.exit_node_id = "n1"; break;
		case 3: b.run_ssh_set = w.has_run_ssh = w.run_ssh = true; break;
		case 4: b.no_snat_set = w.has_no_snat = w.no_snat = true; break;
		case 5: b.control_url_set = true; w.control_url = "http://x"; break;
		case 6: b.hostname_set = true; w.hostname = "-bad"; break;
		case 7: b.hostname_set = true; w.hostname = "a b"; break;
		case 8: b.advertise_tags_set = true; w.advertise_tags = bt;
			w.n_advertise_tags = 1; break;
		case 9: b.exit_node_ip_set = w.has_exit_node_ip = true;
			w.exit_node_ip.data = ip; w.exit_node_ip.len = 4; break;
		case 10: b.hostname_set = true; w.hostname = longname; break;
		}
		ctrldi_prefs before = p;
		unsigned m = mask;
		err[0] = '\0';
		CU_ASSERT_EQUAL(edit(&p, &m, &b, err, sizeof(err)), TK_EINVAL);
		CU_ASSERT(strstr(err, bad[i].why) != NULL);
		CU_ASSERT(memcmp(&before, &p, sizeof(p)) == 0 && m == mask);
	}
	/* tailkit's own values of unsupported fields are fine */
	Tk__Bus__V1__MaskedPrefs ok = TK__BUS__V1__MASKED_PREFS__INIT;
	Tk__Bus__V1__Prefs z = TK__BUS__V1__PREFS__INIT;
	ok.prefs = &z;
	ok.route_all_set = ok.run_ssh_set = ok.control_url_set = true;
	z.control_url = "http://ctl";
	CU_ASSERT(edit(&p, &mask, &ok, err, sizeof(err)) == 0);
}

static void
test_prefs_overlay_and_store(void)
{
	ctrldi_prefs def, ed, eff, back;
	unsigned mask = CTRLDI_PREF_WANT_RUNNING | CTRLDI_PREF_HOSTNAME, m2 = 0;
	tk_buf b;

	ctrldi_prefs_init(&def);
	snprintf(def.hostname, sizeof(def.hostname), "cmdline");
	snprintf(def.tags, sizeof(def.tags), "tag:x");
	ctrldi_prefs_init(&ed);
	ed.want_running = false;
	snprintf(ed.hostname, sizeof(ed.hostname), "edited");
	ed.shields_up = true; /* not in the mask: ignored */
	ctrldi_prefs_overlay(&eff, &def, &ed, mask);
	CU_ASSERT(!eff.want_running && !eff.shields_up && eff.corp_dns);
	CU_ASSERT_STRING_EQUAL(eff.hostname, "edited");
	CU_ASSERT_STRING_EQUAL(eff.tags, "tag:x");
	/* an edited empty host name: the command line's again */
	ed.hostname[0] = '\0';
	ctrldi_prefs_overlay(&eff, &def, &ed, mask);
	CU_ASSERT_STRING_EQUAL(eff.hostname, "cmdline");
	snprintf(ed.hostname, sizeof(ed.hostname), "edited");

	tk_buf_init(&b);
	CU_ASSERT_FATAL(ctrldi_prefs_pack_edits(&ed, mask, &b) == 0);
	CU_ASSERT(ctrldi_prefs_unpack_edits(&back, &m2, b.data, b.len) == 0);
	CU_ASSERT_EQUAL(m2, mask);
	CU_ASSERT(!back.want_running && strcmp(back.hostname, "edited") == 0);
	/* garbage and truncation: refused, outputs untouched */
	ctrldi_prefs keep = back;
	for (size_t cut = 1; cut < b.len; cut++) {
		unsigned m3 = 77;
		int rv = ctrldi_prefs_unpack_edits(&back, &m3, b.data, cut);
		if (rv != 0)
			CU_ASSERT(m3 == 77 && memcmp(&keep, &back, sizeof(keep)) == 0);
		back = keep;
	}
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0x0a, 0x80 };
	unsigned m4 = 5;
	CU_ASSERT_EQUAL(ctrldi_prefs_unpack_edits(&back, &m4, junk, sizeof(junk)),
	    TK_EPROTO);
	CU_ASSERT_EQUAL(m4, 5);
	tk_buf_fini(&b);
}

/* A netmap with two peers, a filter and a DNS config with resolvers. */
static void
sample_netmap(tk_buf *out)
{
	Tk__Bus__V1__Netmap nm = TK__BUS__V1__NETMAP__INIT;
	Tk__Bus__V1__Node self = TK__BUS__V1__NODE__INIT, p1 =
	    TK__BUS__V1__NODE__INIT, p2 = TK__BUS__V1__NODE__INIT;
	Tk__Bus__V1__Node *peers[] = { &p1, &p2 };
	Tk__Bus__V1__FilterRule r = TK__BUS__V1__FILTER_RULE__INIT, *rules[] = { &r };
	Tk__Bus__V1__PacketFilter pf = TK__BUS__V1__PACKET_FILTER__INIT;
	Tk__Bus__V1__DNSConfig dns = TK__BUS__V1__DNSCONFIG__INIT;
	Tk__Bus__V1__Resolver res = TK__BUS__V1__RESOLVER__INIT, *rs[] = { &res };
	Tk__Bus__V1__DNSRoute rt = TK__BUS__V1__DNSROUTE__INIT, *rts[] = { &rt };
	Tk__Bus__V1__DNSRecord rec = TK__BUS__V1__DNSRECORD__INIT, *recs[] = { &rec };
	char *doms[] = { "corp.test" };

	self.has_id = p1.has_id = p2.has_id = true;
	self.id = 1, p1.id = 2, p2.id = 3;
	nm.self = &self;
	nm.peers = peers;
	nm.n_peers = 2;
	pf.has_received = pf.received = true;
	pf.rules = rules;
	pf.n_rules = 1;
	nm.packet_filter = &pf;
	res.addr = "192.0.2.53";
	rt.suffix = "corp.test.";
	rt.resolvers = rs;
	rt.n_resolvers = 1;
	rec.name = "db.corp.test.";
	rec.value = "100.64.9.9";
	dns.resolvers = rs;
	dns.n_resolvers = 1;
	dns.routes = rts;
	dns.n_routes = 1;
	dns.domains = doms;
	dns.n_domains = 1;
	dns.has_proxied = dns.proxied = true;
	dns.extra_records = recs;
	dns.n_extra_records = 1;
	nm.dns_config = &dns;
	CU_ASSERT_FATAL(tk_bus_pb_pack(&nm.base, out) == 0);
}

static Tk__Bus__V1__Netmap *
view(const ctrldi_prefs *p, const tk_buf *nm)
{
	tk_buf o;
	Tk__Bus__V1__Netmap *m = NULL;

	tk_buf_init(&o);
	if (ctrldi_view_netmap(p, nm->data, nm->len, &o) == 0)
		m = tk__bus__v1__netmap__unpack(NULL, o.len, o.data);
	tk_buf_fini(&o);
	return m;
}

static void
test_prefs_view(void)
{
	ctrldi_prefs p, up;
	tk_buf nm, d;
	Tk__Bus__V1__Netmap *m;

	tk_buf_init(&nm);
	sample_netmap(&nm);
	ctrldi_prefs_init(&p);
	up = p;
	CU_ASSERT(!ctrldi_prefs_filtering(&p));
	m = view(&p, &nm); /* nothing filtered */
	CU_ASSERT_FATAL(m != NULL);
	CU_ASSERT(m->n_peers == 2 && m->packet_filter->n_rules == 1 &&
	    m->dns_config->n_resolvers == 1);
	tk__bus__v1__netmap__free_unpacked(m, NULL);

	/* CorpDNS off: names only */
	p.corp_dns = false;
	m = view(&p, &nm);
	CU_ASSERT_FATAL(m != NULL && m->dns_config != NULL);
	CU_ASSERT(m->n_peers == 2 && m->packet_filter->n_rules == 1);
	CU_ASSERT(m->dns_config->n_resolvers == 0 && m->dns_config->n_routes == 0 &&
	    m->dns_config->n_domains == 0 && !m->dns_config->proxied);
	CU_ASSERT(m->dns_config->n_extra_records == 1);
	tk__bus__v1__netmap__free_unpacked(m, NULL);

	/* ShieldsUp: deny all, peers stay */
	p.corp_dns = true;
	p.shields_up = true;
	m = view(&p, &nm);
	CU_ASSERT_FATAL(m != NULL && m->packet_filter != NULL);
	CU_ASSERT(m->n_peers == 2 && m->packet_filter->received &&
	    m->packet_filter->n_rules == 0);
	tk__bus__v1__netmap__free_unpacked(m, NULL);

	/* down: no peers, no DNS, deny all; self stays */
	p.shields_up = false;
	p.want_running = false;
	m = view(&p, &nm);
	CU_ASSERT_FATAL(m != NULL);
	CU_ASSERT(m->n_peers == 0 && m->self != NULL && m->self->id == 1);
	CU_ASSERT(m->packet_filter->n_rules == 0 && m->dns_config->n_resolvers == 0 &&
	    m->dns_config->n_extra_records == 0);
	tk__bus__v1__netmap__free_unpacked(m, NULL);

	/* the switch deltas: down removes both peers, up brings them back */
	tk_buf_init(&d);
	CU_ASSERT_FATAL(ctrldi_view_switch(&up, &p, nm.data, nm.len, &d) == 0);
	Tk__Bus__V1__NetmapDelta *nd = tk__bus__v1__netmap_delta__unpack(NULL,
	    d.len, d.data);
	CU_ASSERT_FATAL(nd != NULL);
	CU_ASSERT(nd->n_peers_removed == 2 && nd->peers_removed[1] == 3);
	CU_ASSERT(nd->packet_filter && nd->packet_filter->n_rules == 0);
	CU_ASSERT(nd->dns_config && nd->dns_config->n_resolvers == 0);
	tk__bus__v1__netmap_delta__free_unpacked(nd, NULL);
	tk_buf_reset(&d);
	CU_ASSERT_FATAL(ctrldi_view_switch(&p, &up, nm.data, nm.len, &d) == 0);
	nd = tk__bus__v1__netmap_delta__unpack(NULL, d.len, d.data);
	CU_ASSERT_FATAL(nd != NULL);
	CU_ASSERT(nd->n_peers_changed == 2 && nd->n_peers_removed == 0);
	CU_ASSERT(nd->packet_filter && nd->packet_filter->n_rules == 1);
	CU_ASSERT(nd->dns_config && nd->dns_config->n_resolvers == 1);
	tk__bus__v1__netmap_delta__free_unpacked(nd, NULL);

	/* a map delta while down: peers held back, the filter denied */
	Tk__Bus__V1__NetmapDelta in = TK__BUS__V1__NETMAP_DELTA__INIT;
	Tk__Bus__V1__Node n4 = TK__BUS__V1__NODE__INIT, *ch[] = { &n4 };
	int64_t gone[] = { 2 };
	in.peers_changed = ch;
	in.n_peers_changed = 1;
	in.peers_removed = gone;
	in.n_peers_removed = 1;
	tk_buf din, dout;
	bool empty = false;
	tk_buf_init(&din);
	tk_buf_init(&dout);
	CU_ASSERT_FATAL(tk_bus_pb_pack(&in.base, &din) == 0);
	CU_ASSERT(ctrldi_view_delta(&p, din.data, din.len, &dout, &empty) == 0);
	CU_ASSERT(empty); /* nothing left for subscribers */
	CU_ASSERT(ctrldi_view_delta(&up, din.data, din.len, &dout, &empty) == 0);
	CU_ASSERT(!empty && dout.len == din.len);
	/* garbage */
	static const uint8_t junk[] = { 0x12, 0xff, 0xff, 0xff };
	tk_buf_reset(&dout);
	CU_ASSERT_EQUAL(ctrldi_view_delta(&p, junk, sizeof(junk), &dout, &empty),
	    TK_EPROTO);
	CU_ASSERT_EQUAL(ctrldi_view_netmap(&p, junk, sizeof(junk), &dout),
	    TK_EPROTO);
	tk_buf_fini(&din);
	tk_buf_fini(&dout);
	tk_buf_fini(&d);
	tk_buf_fini(&nm);
}

void
register_prefs(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_prefs_edit),
		TK_TEST(test_prefs_overlay_and_store),
		TK_TEST(test_prefs_view),
		TK_TEST_END,
	};
	tk_test_suite("ctrld_prefs", cases);
}
