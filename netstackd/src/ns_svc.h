/*
 * netstackd's in-process services on top of the core: MagicDNS at
 * 100.100.100.100:53 (ns_dns_svc.c: the ns_dns_server of ns_dns.h behind
 * the core's resolver hook, upstreams over kernel UDP), dial by name, and
 * the loopback proxies (ns_proxy_svc.c: SOCKS5 and HTTP CONNECT on kernel
 * sockets, dialling the tailnet through ns_dial).  Everything runs on the
 * core's loop thread.
 */
#ifndef NS_SVC_H
#define NS_SVC_H

#include "ns_dns.h"
#include "ns_int.h"
#include "ns_proxy.h"
#include "tk/bus/v1/ctrl.pb-c.h"
#include "tk/bus_status.h"

typedef struct nsi_dns_svc nsi_dns_svc;
typedef struct nsi_proxy_svc nsi_proxy_svc;

/* ns_dns_svc.c */
int nsi_dns_svc_new(netstackd *ns, nsi_dns_svc **out);
void nsi_dns_svc_free(nsi_dns_svc *d);
/* After the core applied a netmap snapshot (snapshot true: dc NULL means
 * no DNS config) or delta (dc NULL: unchanged; self NULL: unchanged):
 * keeps self's name and the DNS config, rebuilds the table. */
void nsi_dns_svc_netmap(netstackd *ns, const Tk__Bus__V1__Node *self,
    const Tk__Bus__V1__DNSConfig *dc, bool snapshot);
/* The current MagicDNS table (NULL before the first netmap); valid until
 * the next netmap change. */
const ns_dns_table *nsi_dns_svc_table(netstackd *ns);
void nsi_dns_svc_counters(nsi_dns_svc *d, tk_status_counters *cs);

/*
 * Dial by name: an IP literal, or a tailnet name (FQDN or short name)
 * through the MagicDNS table, IPv4 first when the node has an IPv4
 * address.  NS_ST_OK (out->port left 0), or NS_ST_ENOTFOUND.
 */
int nsi_resolve(netstackd *ns, const char *name, ns_api_addr *out);

/*
 * The same, and for other names a query through MagicDNS (split-DNS
 * routes, then the resolvers: forwarded upstream): cb(arg, NS_ST_OK, addr)
 * or cb(arg, NS_ST_ENOTFOUND, NULL) once, on the loop thread -- possibly
 * before the call returns (IP literals, tailnet names, local answers).
 * NS_ST_OK when started; otherwise cb is not called.  A lookup pending when
 * netstackd stops is dropped without calling cb.
 */
typedef void (*nsi_resolve_fn)(void *arg, int st, const ns_api_addr *addr);
int nsi_resolve_async(netstackd *ns, const char *name, nsi_resolve_fn cb,
    void *arg);

/*
 * DIAL_TCP_NAME for API client c: resolves like the proxies do
 * (nsi_resolve_async), then dials; the reply (descriptor or error) goes
 * to c under id.  NS_ST_OK when under way, else the status to reply now.
 */
int nsi_dial_name(netstackd *ns, nsi_client *c, uint32_t id, const char *name,
    uint16_t port);
/* c is going away: its lookups finish without a reply. */
void nsi_dial_name_drop_client(netstackd *ns, nsi_client *c);

/* ns_proxy_svc.c */
/* The proxy part of cfg (addresses on loopback, credentials): 0, or
 * TK_EINVAL with what was wrong in err. */
int nsi_proxy_cfg_check(const ns_config *cfg, char *err, size_t errlen);
int nsi_proxy_svc_new(netstackd *ns, const ns_config *cfg,
    nsi_proxy_svc **out, char *err, size_t errlen);
void nsi_proxy_svc_free(nsi_proxy_svc *p);
void nsi_proxy_svc_counters(nsi_proxy_svc *p, tk_status_counters *cs);

#endif
