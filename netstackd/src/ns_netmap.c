/*
 * ctrld's "netmap" topic as netstackd needs it: the node's own addresses
 * (Netmap.self.addresses: lwIP serves them) and, for every peer, its id,
 * MagicDNS name, user and addresses, so a connection arrives with the
 * identity of the node behind its address (node id, name, user login).
 */
#include <stdio.h>
#include <string.h>

#include "ns_int.h"
#include "ns_svc.h"
#include "tk/bus/v1/ctrl.pb-c.h"
#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"

static void
peer_clear(nsi_peer *p)
{
	tk_free(p->name);
	memset(p, 0, sizeof(*p));
}

void
nsi_netmap_fini(nsi_netmap *nm)
{
	for (size_t i = 0; i < nm->npeers; i++)
		peer_clear(&nm->peers[i]);
	for (size_t i = 0; i < nm->nusers; i++)
		tk_free(nm->users[i].login);
	tk_free(nm->peers);
	tk_free(nm->users);
	memset(nm, 0, sizeof(*nm));
}

static unsigned
node_addrs(const Tk__Bus__V1__Node *n, tk_ipaddr *out, unsigned max)
{
	unsigned k = 0;

	for (size_t i = 0; i < n->n_addresses && k < max; i++) {
		const Tk__Bus__V1__Prefix *x = n->addresses[i];
		if (!x->has_addr || (x->addr.len != 4 && x->addr.len != 16))
			continue;
		memset(&out[k], 0, sizeof(out[k]));
		out[k].family = x->addr.len == 4 ? TK_AF_INET : TK_AF_INET6;
		memcpy(out[k].addr, x->addr.data, x->addr.len);
		k++;
	}
	return k;
}

static nsi_peer *
peer_find(nsi_netmap *nm, int64_t id)
{
	for (size_t i = 0; i < nm->npeers; i++)
		if (nm->peers[i].id == id)
			return &nm->peers[i];
	return NULL;
}

static int
peer_upsert(nsi_netmap *nm, const Tk__Bus__V1__Node *n)
{
	nsi_peer *p = peer_find(nm, n->id), np = { 0 };

	np.id = n->id;
	np.user = n->has_user ? n->user : 0;
	if (n->name != NULL && (np.name = tk_strdup(n->name)) == NULL)
		return TK_ENOMEM;
	np.naddrs = node_addrs(n, np.addrs, 4);
	if (p == NULL) {
		nsi_peer *v = tk_realloc(nm->peers, (nm->npeers + 1) * sizeof(*v));
		if (v == NULL) {
			tk_free(np.name);
			return TK_ENOMEM;
		}
		nm->peers = v;
		p = &nm->peers[nm->npeers++];
	} else
		peer_clear(p);
	*p = np;
	return 0;
}

static void
peer_remove(nsi_netmap *nm, int64_t id)
{
	nsi_peer *p = peer_find(nm, id);

	if (p == NULL)
		return;
	peer_clear(p);
	*p = nm->peers[--nm->npeers];
}

static int
user_upsert(nsi_netmap *nm, const Tk__Bus__V1__UserProfile *u)
{
	char *login = tk_strdup(u->login_name ? u->login_name : "");

	if (login == NULL)
		return TK_ENOMEM;
	for (size_t i = 0; i < nm->nusers; i++)
		if (nm->users[i].id == u->id) {
			tk_free(nm->users[i].login);
			nm->users[i].login = login;
			return 0;
		}
	nsi_user *v = tk_realloc(nm->users, (nm->nusers + 1) * sizeof(*v));
	if (v == NULL) {
		tk_free(login);
		return TK_ENOMEM;
	}
	nm->users = v;
	nm->users[nm->nusers].id = u->id;
	nm->users[nm->nusers++].login = login;
	return 0;
}

static void
self_apply(netstackd *ns, const Tk__Bus__V1__Node *self)
{
	tk_ipaddr a[4];
	unsigned n = node_addrs(self, a, 4);

	if (n == 0)
		return;
	ns->nm.nself = n;
	memcpy(ns->nm.self, a, sizeof(a));
	ns->nm.have_self = true;
	nsi_addrs_apply(ns, a, n);
}

int
nsi_netmap_snapshot(netstackd *ns, const uint8_t *p, size_t n)
{
	Tk__Bus__V1__Netmap *m = tk__bus__v1__netmap__unpack(NULL, n, p);
	nsi_netmap *nm = &ns->nm;
	int rv = 0;

	if (m == NULL) {
		nm->bad++;
		TK_WARN(NS_SUBSYS, "netmap snapshot undecodable (%zu bytes)", n);
		return TK_EPROTO;
	}
	for (size_t i = 0; i < nm->npeers; i++)
		peer_clear(&nm->peers[i]);
	nm->npeers = 0;
	for (size_t i = 0; i < m->n_peers && rv == 0; i++)
		rv = peer_upsert(nm, m->peers[i]);
	for (size_t i = 0; i < m->n_user_profiles && rv == 0; i++)
		rv = user_upsert(nm, m->user_profiles[i]);
	if (m->self != NULL)
		self_apply(ns, m->self);
	if (rv == 0) {
		nm->snapshots++;
		TK_INFO(NS_SUBSYS, "netmap: %zu peers", nm->npeers);
	}
	nsi_dns_svc_netmap(ns, m->self, m->dns_config, true);
	tk__bus__v1__netmap__free_unpacked(m, NULL);
	return rv;
}

int
nsi_netmap_delta(netstackd *ns, const uint8_t *p, size_t n)
{
	Tk__Bus__V1__NetmapDelta *d = tk__bus__v1__netmap_delta__unpack(NULL, n, p);
	nsi_netmap *nm = &ns->nm;
	int rv = 0;

	if (d == NULL) {
		nm->bad++;
		TK_WARN(NS_SUBSYS, "netmap delta undecodable (%zu bytes)", n);
		return TK_EPROTO;
	}
	for (size_t i = 0; i < d->n_peers_removed; i++)
		peer_remove(nm, d->peers_removed[i]);
	for (size_t i = 0; i < d->n_peers_changed && rv == 0; i++)
		rv = peer_upsert(nm, d->peers_changed[i]);
	for (size_t i = 0; i < d->n_user_profiles && rv == 0; i++)
		rv = user_upsert(nm, d->user_profiles[i]);
	if (rv == 0 && d->self != NULL)
		self_apply(ns, d->self);
	if (rv == 0)
		nm->deltas++;
	nsi_dns_svc_netmap(ns, d->self, d->dns_config, false);
	tk__bus__v1__netmap_delta__free_unpacked(d, NULL);
	return rv;
}

void
nsi_identity(netstackd *ns, const ns_api_addr *remote, ns_api_peer *out)
{
	nsi_netmap *nm = &ns->nm;
	size_t len = remote->family == 4 ? 4 : 16;
	uint8_t fam = remote->family == 4 ? TK_AF_INET : TK_AF_INET6;

	for (size_t i = 0; i < nm->npeers; i++) {
		nsi_peer *p = &nm->peers[i];
		for (unsigned k = 0; k < p->naddrs; k++) {
			if (p->addrs[k].family != fam ||
			    memcmp(p->addrs[k].addr, remote->addr, len) != 0)
				continue;
			out->node_id = p->id;
			out->user_id = p->user;
			if (p->name)
				snprintf(out->name, sizeof(out->name), "%s", p->name);
			for (size_t u = 0; u < nm->nusers; u++)
				if (nm->users[u].id == p->user)
					snprintf(out->login, sizeof(out->login), "%s",
					    nm->users[u].login);
			return;
		}
	}
}
