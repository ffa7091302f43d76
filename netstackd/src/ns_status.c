/*
 * netstackd's req/rep server: "status" (tk.bus.v1.StatusResponse), what
 * tk-status prints: own addresses and counters.
 */
#include <string.h>

#include "ns_int.h"
#include "ns_lwip_hooks.h"
#include "ns_svc.h"
#include "tk/bus_rpc.h"
#include "tk/bus_status.h"
#include "tk/bus_topics.h"
#include "tk/err.h"

#define NS_VERSION "0.1"

static int
rpc_status(void *arg, const uint8_t *body, size_t len, tk_buf *reply)
{
	netstackd *ns = arg;
	Tk__Bus__V1__StatusResponse r = TK__BUS__V1__STATUS_RESPONSE__INIT;
	Tk__Bus__V1__Node self = TK__BUS__V1__NODE__INIT;
	Tk__Bus__V1__Prefix pfx[1 + LWIP_IPV6_NUM_ADDRESSES], *pp[1 + LWIP_IPV6_NUM_ADDRESSES];
	uint8_t addrs[1 + LWIP_IPV6_NUM_ADDRESSES][16];
	tk_status_counters cs = { .n = 0 };
	size_t na = 0;
	unsigned nl = 0;

	(void)body, (void)len; /* a StatusRequest's options do not apply */
	r.component = "netstackd";
	r.version = NS_VERSION;
	r.has_state = true;
	r.state = TK__BUS__V1__BACKEND_STATE__BACKEND_STATE_RUNNING;
	r.has_uptime_ms = true;
	r.uptime_ms = (int64_t)((tk_loop_now(ns->loop) - ns->started_ns) / 1000000);
	if (!ip4_addr_isany_val(*netif_ip4_addr(&ns->nif))) {
		memcpy(addrs[na], &netif_ip4_addr(&ns->nif)->addr, 4);
		tk__bus__v1__prefix__init(&pfx[na]);
		pfx[na].has_addr = pfx[na].has_bits = true;
		pfx[na].addr.data = addrs[na];
		pfx[na].addr.len = 4;
		pfx[na].bits = 32;
		na++;
	}
	for (int i = 0; i < LWIP_IPV6_NUM_ADDRESSES; i++) {
		if (!ip6_addr_isvalid(netif_ip6_addr_state(&ns->nif, i)))
			continue;
		memcpy(addrs[na], netif_ip6_addr(&ns->nif, i)->addr, 16);
		tk__bus__v1__prefix__init(&pfx[na]);
		pfx[na].has_addr = pfx[na].has_bits = true;
		pfx[na].addr.data = addrs[na];
		pfx[na].addr.len = 16;
		pfx[na].bits = 128;
		na++;
	}
	for (size_t i = 0; i < na; i++)
		pp[i] = &pfx[i];
	self.n_addresses = na;
	self.addresses = pp;
	r.self = &self;
	for (nsi_listener *l = ns->listeners; l; l = l->next)
		nl++;
#define C(f) tk_status_counter(&cs, #f, ns->st.f)
	C(pkts_in); C(pkts_out); C(pkts_bad); C(batches_dropped); C(out_dropped);
	C(conns_open); C(conns_total); C(conns_refused); C(udp_dropped);
	C(api_clients); C(api_bad);
#undef C
	tk_status_counter(&cs, "listeners", nl);
	tk_status_counter(&cs, "tcp_zwp_acks_fixed", nsi_zwp_acks_fixed());
	tk_status_counter(&cs, "ip6_ext_dropped", nsi_ip6_ext_dropped());
	tk_status_counter(&cs, "netmap_snapshots", ns->nm.snapshots);
	tk_status_counter(&cs, "netmap_deltas", ns->nm.deltas);
	tk_status_counter(&cs, "netmap_bad", ns->nm.bad);
	tk_status_counter(&cs, "netmap_peers", ns->nm.npeers);
	tk_status_counter(&cs, "pkt_tx_batched", ns->out.recs);
	tk_status_counter(&cs, "pkt_tx_dropped", ns->out.dropped);
	tk_status_counter(&cs, "pkt_bad_batches", ns->bstats.bs_dropped);
	nsi_dns_svc_counters(ns->dns_svc, &cs);
	nsi_proxy_svc_counters(ns->proxy_svc, &cs);
	tk_status_counters_set(&r, &cs);
	return tk_bus_pb_pack((const ProtobufCMessage *)&r, reply);
}

int
nsi_status_start(netstackd *ns)
{
	tk_rpc_server_cfg rc = { .loop = ns->loop, .url = ns->rpc_url,
		.tls = ns->tls };
	int rv;

	if ((rv = tk_rpc_server_new(&ns->rpc, &rc)) != 0)
		return rv;
	return tk_rpc_server_add(ns->rpc, TK_METHOD_STATUS, rpc_status, ns);
}
