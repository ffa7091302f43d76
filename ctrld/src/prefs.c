/*
 * ctrld's prefs and the netmap view they imply.  See prefs.h.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "prefs.h"
#include "tk/bus.h"
#include "tk/err.h"
#include "tk/mem.h"

void
ctrldi_prefs_init(ctrldi_prefs *p)
{
	memset(p, 0, sizeof(*p));
	p->want_running = true;
	p->corp_dns = true;
}

/* util/dnsname ValidHostname: dot-separated labels of 1-63 letters,
 * digits and hyphens, no hyphen first or last, 253 bytes at most */
static bool
valid_hostname(const char *s)
{
	size_t n = strlen(s), lab = 0;

	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i <= n; i++) {
		char ch = s[i];
		if (ch == '.' || ch == '\0') {
			if (lab == 0 || lab > 63 || s[i - 1] == '-')
				return false;
			lab = 0;
			continue;
		}
		if (!isalnum((unsigned char)ch) && ch != '-')
			return false;
		if (lab == 0 && ch == '-')
			return false;
		lab++;
	}
	return true;
}

/* tailcfg.CheckTag: "tag:" then a letter, then letters, digits, '-' */
static bool
valid_tag(const char *s)
{
	if (strncmp(s, "tag:", 4) != 0 || !isalpha((unsigned char)s[4]))
		return false;
	for (s += 5; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-')
			return false;
	return true;
}

static int
refuse(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "%s: not supported by tailkit (accepted prefs: "
	    "WantRunning, Hostname, CorpDNS, ShieldsUp, AdvertiseTags)", what);
	return TK_EINVAL;
}

/* The fields tailkit does not honour: accepted only at tailkit's value. */
static int
check_unsupported(const Tk__Bus__V1__MaskedPrefs *mp,
    const Tk__Bus__V1__Prefs *v, const char *control_url, char *err,
    size_t errlen)
{
	if (mp->control_url_set && v->control_url != NULL &&
	    *v->control_url != '\0' &&
	    (control_url == NULL || strcmp(v->control_url, control_url) != 0)) {
		snprintf(err, errlen, "ControlURL: tailkitd talks to %s; to use "
		    "another control server, restart tailkitd with --control-url "
		    "(or control_url in its config)", control_url ? control_url :
		    "its --control-url");
		return TK_EINVAL;
	}
	if (mp->route_all_set && v->has_route_all && v->route_all)
		return refuse(err, errlen, "RouteAll (--accept-routes)");
	if (mp->exit_node_id_set && v->exit_node_id && *v->exit_node_id)
		return refuse(err, errlen, "ExitNodeID (--exit-node)");
	if (mp->exit_node_ip_set && v->has_exit_node_ip && v->exit_node_ip.len)
		return refuse(err, errlen, "ExitNodeIP (--exit-node)");
	if (mp->advertise_routes_set && v->n_advertise_routes > 0)
		return refuse(err, errlen,
		    "AdvertiseRoutes (--advertise-routes, --advertise-exit-node)");
	if (mp->run_ssh_set && v->has_run_ssh && v->run_ssh)
		return refuse(err, errlen, "RunSSH (--ssh)");
	if (mp->no_snat_set && v->has_no_snat && v->no_snat)
		return refuse(err, errlen, "NoSNAT (--snat-subnet-routes)");
	return 0;
}

static int
join_tags(char *out, size_t cap, const Tk__Bus__V1__Prefs *v, char *err,
    size_t errlen)
{
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; i < v->n_advertise_tags; i++) {
		const char *t = v->advertise_tags[i];
		if (t == NULL || !valid_tag(t)) {
			snprintf(err, errlen, "AdvertiseTags: '%.64s' is not a tag "
			    "(tag:<letter><letters, digits, '-'>)", t ? t : "");
			return TK_EINVAL;
		}
		size_t n = strlen(t);
		if (o + n + 2 > cap) {
			snprintf(err, errlen, "AdvertiseTags: more than %zu bytes",
			    cap - 1);
			return TK_EINVAL;
		}
		if (o)
			out[o++] = ',';
		memcpy(out + o, t, n + 1);
		o += n;
	}
	return 0;
}

int
ctrldi_prefs_edit(ctrldi_prefs *p, unsigned *mask, unsigned *changed,
    const Tk__Bus__V1__MaskedPrefs *mp, const char *control_url, char *err,
    size_t errlen)
{
	static const Tk__Bus__V1__Prefs none = TK__BUS__V1__PREFS__INIT;
	const Tk__Bus__V1__Prefs *v = mp->prefs ? mp->prefs : &none;
	ctrldi_prefs n = *p;
	unsigned m = 0;
	int rv;

	if ((rv = check_unsupported(mp, v, control_url, err, errlen)) != 0)
		return rv;
	if (mp->want_running_set) {
		n.want_running = v->has_want_running && v->want_running;
		m |= CTRLDI_PREF_WANT_RUNNING;
	}
	if (mp->corp_dns_set) {
		n.corp_dns = v->has_corp_dns && v->corp_dns;
		m |= CTRLDI_PREF_CORP_DNS;
	}
	if (mp->shields_up_set) {
		n.shields_up = v->has_shields_up && v->shields_up;
		m |= CTRLDI_PREF_SHIELDS_UP;
	}
	if (mp->hostname_set) {
		const char *h = v->hostname ? v->hostname : "";
		if (*h != '\0' && !valid_hostname(h)) {
			snprintf(err, errlen, "Hostname: '%.64s' is not a valid host "
			    "name (labels of 1-63 letters, digits and '-', 253 bytes "
			    "at most; empty: the default)", h);
			return TK_EINVAL;
		}
		snprintf(n.hostname, sizeof(n.hostname), "%s", h);
		m |= CTRLDI_PREF_HOSTNAME;
	}
	if (mp->advertise_tags_set) {
		if ((rv = join_tags(n.tags, sizeof(n.tags), v, err, errlen)) != 0)
			return rv;
		m |= CTRLDI_PREF_TAGS;
	}
	if (changed != NULL) {
		*changed = 0;
		if (n.want_running != p->want_running)
			*changed |= CTRLDI_PREF_WANT_RUNNING;
		if (n.corp_dns != p->corp_dns)
			*changed |= CTRLDI_PREF_CORP_DNS;
		if (n.shields_up != p->shields_up)
			*changed |= CTRLDI_PREF_SHIELDS_UP;
		if (strcmp(n.hostname, p->hostname) != 0)
			*changed |= CTRLDI_PREF_HOSTNAME;
		if (strcmp(n.tags, p->tags) != 0)
			*changed |= CTRLDI_PREF_TAGS;
	}
	*p = n;
	*mask |= m;
	return 0;
}

void
ctrldi_prefs_overlay(ctrldi_prefs *eff, const ctrldi_prefs *defaults,
    const ctrldi_prefs *edited, unsigned mask)
{
	*eff = *defaults;
	if (mask & CTRLDI_PREF_WANT_RUNNING)
		eff->want_running = edited->want_running;
	if (mask & CTRLDI_PREF_CORP_DNS)
		eff->corp_dns = edited->corp_dns;
	if (mask & CTRLDI_PREF_SHIELDS_UP)
		eff->shields_up = edited->shields_up;
	/* an empty Hostname means "the default" (Go: the OS's name) */
	if ((mask & CTRLDI_PREF_HOSTNAME) && edited->hostname[0] != '\0')
		memcpy(eff->hostname, edited->hostname, sizeof(eff->hostname));
	if (mask & CTRLDI_PREF_TAGS)
		memcpy(eff->tags, edited->tags, sizeof(eff->tags));
}

/* Splits "a,b" into v (pointers into buf, a copy of s). */
static size_t
split_tags(const char *s, char *buf, size_t cap, char **v, size_t max)
{
	size_t n = 0;

	snprintf(buf, cap, "%s", s);
	for (char *t = buf; *t && n < max;) {
		v[n++] = t;
		char *c = strchr(t, ',');
		if (c == NULL)
			break;
		*c = '\0';
		t = c + 1;
	}
	return n;
}

#define TAGS_N (CTRLDI_TAGS_MAX / 6 + 1) /* "tag:x," is the shortest */

static void
fill_prefs(Tk__Bus__V1__Prefs *v, const ctrldi_prefs *p, char *tbuf,
    char **tags)
{
	v->has_want_running = v->has_corp_dns = v->has_shields_up = true;
	v->want_running = p->want_running;
	v->corp_dns = p->corp_dns;
	v->shields_up = p->shields_up;
	v->hostname = (char *)p->hostname;
	v->advertise_tags = tags;
	v->n_advertise_tags = split_tags(p->tags, tbuf, CTRLDI_TAGS_MAX, tags,
	    TAGS_N);
}

int
ctrldi_prefs_pack_edits(const ctrldi_prefs *edited, unsigned mask,
    tk_buf *out)
{
	Tk__Bus__V1__MaskedPrefs mp = TK__BUS__V1__MASKED_PREFS__INIT;
	Tk__Bus__V1__Prefs v = TK__BUS__V1__PREFS__INIT;
	char tbuf[CTRLDI_TAGS_MAX], *tags[TAGS_N];

	fill_prefs(&v, edited, tbuf, tags);
	mp.prefs = &v;
	mp.has_want_running_set = mp.has_corp_dns_set = mp.has_shields_up_set =
	    mp.has_hostname_set = mp.has_advertise_tags_set = true;
	mp.want_running_set = (mask & CTRLDI_PREF_WANT_RUNNING) != 0;
	mp.corp_dns_set = (mask & CTRLDI_PREF_CORP_DNS) != 0;
	mp.shields_up_set = (mask & CTRLDI_PREF_SHIELDS_UP) != 0;
	mp.hostname_set = (mask & CTRLDI_PREF_HOSTNAME) != 0;
	mp.advertise_tags_set = (mask & CTRLDI_PREF_TAGS) != 0;
	return tk_bus_pb_pack(&mp.base, out);
}

int
ctrldi_prefs_unpack_edits(ctrldi_prefs *edited, unsigned *mask,
    const uint8_t *p, size_t n)
{
	Tk__Bus__V1__MaskedPrefs *mp = tk__bus__v1__masked_prefs__unpack(NULL,
	    n, p);
	ctrldi_prefs e;
	unsigned m = 0;
	char err[200];

	if (mp == NULL)
		return TK_EPROTO;
	ctrldi_prefs_init(&e);
	/* the same checks as a user's edit: a stored value that no longer
	 * passes them is refused as a whole */
	int rv = ctrldi_prefs_edit(&e, &m, NULL, mp, NULL, err, sizeof(err));
	tk__bus__v1__masked_prefs__free_unpacked(mp, NULL);
	if (rv != 0)
		return TK_EPROTO;
	*edited = e;
	*mask = m;
	return 0;
}

int
ctrldi_prefs_pack(const ctrldi_prefs *p, const char *control_url,
    tk_buf *out)
{
	Tk__Bus__V1__Prefs v = TK__BUS__V1__PREFS__INIT;
	char tbuf[CTRLDI_TAGS_MAX], *tags[TAGS_N];

	fill_prefs(&v, p, tbuf, tags);
	v.control_url = (char *)control_url;
	return tk_bus_pb_pack(&v.base, out);
}

bool
ctrldi_prefs_filtering(const ctrldi_prefs *p)
{
	return !p->want_running || p->shields_up || !p->corp_dns;
}

/* --- the view --------------------------------------------------------------- */

/*
 * The DNS config under the prefs, built over (borrowing from) in:
 * Stopped: none at all; CorpDNS off: only what ipnlocal's
 * dnsConfigForNetmap keeps before its `if !prefs.CorpDNS() { return }`:
 * the names (the nodes' records, which netstackd takes from the netmap,
 * and ExtraRecords).  No resolvers, fallback resolvers, routes, search
 * domains or MagicDNS routing (Proxied); CertDomains stay (names, not
 * resolution).
 */
static void
view_dns(const ctrldi_prefs *p, const Tk__Bus__V1__DNSConfig *in,
    Tk__Bus__V1__DNSConfig *out)
{
	tk__bus__v1__dnsconfig__init(out);
	if (!p->want_running || in == NULL)
		return;
	if (p->corp_dns) {
		*out = *in;
		return;
	}
	out->extra_records = in->extra_records;
	out->n_extra_records = in->n_extra_records;
	out->cert_domains = in->cert_domains;
	out->n_cert_domains = in->n_cert_domains;
	out->has_proxied = true;
	out->proxied = false;
}

/* deny all: a filter control "sent" with no rules */
static void
deny_all(Tk__Bus__V1__PacketFilter *f)
{
	tk__bus__v1__packet_filter__init(f);
	f->has_received = true;
	f->received = true;
}

int
ctrldi_view_netmap(const ctrldi_prefs *p, const uint8_t *nm, size_t n,
    tk_buf *out)
{
	Tk__Bus__V1__Netmap *m;
	Tk__Bus__V1__DNSConfig dns, *dns0;
	Tk__Bus__V1__PacketFilter deny, *pf0;
	size_t np0;

	if (!ctrldi_prefs_filtering(p))
		return tk_buf_append(out, nm, n);
	if ((m = tk__bus__v1__netmap__unpack(NULL, n, nm)) == NULL)
		return TK_EPROTO;
	dns0 = m->dns_config;
	pf0 = m->packet_filter;
	np0 = m->n_peers;
	deny_all(&deny);
	if (!p->want_running)
		m->n_peers = 0;
	if (!p->want_running || p->shields_up)
		m->packet_filter = &deny;
	if (dns0 != NULL || !p->want_running) {
		view_dns(p, dns0, &dns);
		m->dns_config = &dns;
	}
	int rv = tk_bus_pb_pack(&m->base, out);
	m->dns_config = dns0;
	m->packet_filter = pf0;
	m->n_peers = np0;
	tk__bus__v1__netmap__free_unpacked(m, NULL);
	return rv;
}

int
ctrldi_view_delta(const ctrldi_prefs *p, const uint8_t *d, size_t n,
    tk_buf *out, bool *empty)
{
	Tk__Bus__V1__NetmapDelta *m;
	Tk__Bus__V1__DNSConfig dns, *dns0;
	Tk__Bus__V1__PacketFilter deny, *pf0;
	size_t nc0, np0, nr0;

	*empty = false;
	if (!ctrldi_prefs_filtering(p))
		return tk_buf_append(out, d, n);
	if ((m = tk__bus__v1__netmap_delta__unpack(NULL, n, d)) == NULL)
		return TK_EPROTO;
	dns0 = m->dns_config;
	pf0 = m->packet_filter;
	nc0 = m->n_peers_changed;
	np0 = m->n_peers_patched;
	nr0 = m->n_peers_removed;
	deny_all(&deny);
	if (!p->want_running) /* Stopped: subscribers have no peers */
		m->n_peers_changed = m->n_peers_patched = m->n_peers_removed = 0;
	if (pf0 != NULL && (!p->want_running || p->shields_up))
		m->packet_filter = &deny;
	if (dns0 != NULL) {
		view_dns(p, dns0, &dns);
		m->dns_config = &dns;
	}
	int rv = tk_bus_pb_pack(&m->base, out);
	*empty = rv == 0 && out->len == 0;
	m->dns_config = dns0;
	m->packet_filter = pf0;
	m->n_peers_changed = nc0;
	m->n_peers_patched = np0;
	m->n_peers_removed = nr0;
	tk__bus__v1__netmap_delta__free_unpacked(m, NULL);
	return rv;
}

int
ctrldi_view_switch(const ctrldi_prefs *old, const ctrldi_prefs *new_,
    const uint8_t *nm, size_t n, tk_buf *out)
{
	Tk__Bus__V1__NetmapDelta d = TK__BUS__V1__NETMAP_DELTA__INIT;
	Tk__Bus__V1__Netmap *m = NULL;
	Tk__Bus__V1__DNSConfig dns;
	Tk__Bus__V1__PacketFilter deny, none;
	int64_t *ids = NULL;
	int rv;

	if (n > 0 && (m = tk__bus__v1__netmap__unpack(NULL, n, nm)) == NULL)
		return TK_EPROTO;
	if (m != NULL && old->want_running && !new_->want_running &&
	    m->n_peers > 0) {
		if ((ids = tk_calloc(m->n_peers, sizeof(*ids))) == NULL) {
			tk__bus__v1__netmap__free_unpacked(m, NULL);
			return TK_ENOMEM;
		}
		for (size_t i = 0; i < m->n_peers; i++)
			ids[i] = m->peers[i]->id;
		d.peers_removed = ids;
		d.n_peers_removed = m->n_peers;
	}
	if (m != NULL && !old->want_running && new_->want_running) {
		d.peers_changed = m->peers;
		d.n_peers_changed = m->n_peers;
	}
	/* the filter and DNS config of the new view, whole (present-empty
	 * filter: deny all, as control's "never sent" is) */
	deny_all(&deny);
	tk__bus__v1__packet_filter__init(&none);
	if (!new_->want_running || new_->shields_up)
		d.packet_filter = &deny;
	else
		d.packet_filter = m && m->packet_filter ? m->packet_filter : &none;
	view_dns(new_, m ? m->dns_config : NULL, &dns);
	d.dns_config = &dns;
	rv = tk_bus_pb_pack(&d.base, out);
	tk_free(ids);
	if (m != NULL)
		tk__bus__v1__netmap__free_unpacked(m, NULL);
	return rv;
}
