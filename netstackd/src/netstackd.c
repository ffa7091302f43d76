/*
 * netstackd's instance: lwIP on two IP-only netifs (the node's tailnet
 * addresses; 100.100.100.100 and fd7a:115c:a1e0::53 for MagicDNS), wgd's
 * packet bus (dialled, kept reconnecting, so wgd may restart under live
 * TCP connections), lwIP's timers on the loop, and the netmap for the
 * node's addresses and its peers' identities.
 *
 * One loop iteration: packet batches from wgd go through ip_input (lwIP
 * calls back into ns_tcp.c/ns_udp.c), application sockets are shuttled,
 * and before the loop sleeps lwIP's timers run and every packet lwIP sent
 * during the iteration leaves in as few bus messages as fit.
 */
#include <errno.h>
#include <stdio.h>
#include <sys/un.h>
#include <string.h>
#include <unistd.h>

#include "ns_int.h"
#include "ns_svc.h"
#include "lwip/init.h"
#include "lwip/ip.h"
#include "lwip/ip4_frag.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/timeouts.h"
#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"

#define NS_MTU 1280
#define NS_BATCH_SMALL (16u * 1024)
#define NS_SMALL_RUN   64 /* quiet iterations before small batches */

static _Atomic bool ns_exists;
static bool lwip_ready;

/* --- addresses ------------------------------------------------------------ */

void
nsi_addr_from_ip(ns_api_addr *out, const ip_addr_t *ip, uint16_t port)
{
	memset(out, 0, sizeof(*out));
	out->port = port;
	if (IP_IS_V4(ip)) {
		out->family = 4;
		memcpy(out->addr, &ip_2_ip4(ip)->addr, 4);
	} else {
		out->family = 6;
		memcpy(out->addr, ip_2_ip6(ip)->addr, 16);
	}
}

void
nsi_ip_from_addr(ip_addr_t *out, const ns_api_addr *a)
{
	memset(out, 0, sizeof(*out));
	if (a->family == 4) {
		IP_SET_TYPE(out, IPADDR_TYPE_V4);
		memcpy(&ip_2_ip4(out)->addr, a->addr, 4);
	} else {
		IP_SET_TYPE(out, IPADDR_TYPE_V6);
		memcpy(ip_2_ip6(out)->addr, a->addr, 16);
	}
}

bool
nsi_own_addr(netstackd *ns, int family, ip_addr_t *out)
{
	if (family == 4) {
		if (ip4_addr_isany_val(*netif_ip4_addr(&ns->nif)))
			return false;
		ip_addr_copy_from_ip4(*out, *netif_ip4_addr(&ns->nif));
		return true;
	}
	for (int i = 0; i < LWIP_IPV6_NUM_ADDRESSES; i++)
		if (ip6_addr_isvalid(netif_ip6_addr_state(&ns->nif, i))) {
			ip_addr_copy(*out, ns->nif.ip6_addr[i]);
			return true;
		}
	return false;
}

/*
 * The node's own addresses: one IPv4, up to LWIP_IPV6_NUM_ADDRESSES IPv6.
 * Unchanged addresses are left alone (lwIP drops the connections bound to
 * an address it replaces).
 */
void
nsi_addrs_apply(netstackd *ns, const tk_ipaddr *a, unsigned n)
{
	ip4_addr_t v4;
	ip6_addr_t v6[LWIP_IPV6_NUM_ADDRESSES];
	unsigned n6 = 0;
	bool have4 = false;
	char txt[TK_NETADDR_TEXT_MAX];

	ip4_addr_set_zero(&v4);
	for (unsigned i = 0; i < n; i++) {
		if (a[i].family == TK_AF_INET && !have4) {
			memcpy(&v4.addr, a[i].addr, 4);
			have4 = true;
		} else if (a[i].family == TK_AF_INET6 && n6 < LWIP_IPV6_NUM_ADDRESSES) {
			memset(&v6[n6], 0, sizeof(v6[n6]));
			memcpy(v6[n6].addr, a[i].addr, 16);
			n6++;
		} else
			continue;
		tk_ipaddr_format(&a[i], txt);
		TK_DEBUG(NS_SUBSYS, "own address %s", txt);
	}
	if (!ip4_addr_cmp(&v4, netif_ip4_addr(&ns->nif))) {
		ip4_addr_t mask;
		IP4_ADDR(&mask, 255, 255, 255, 255);
		netif_set_addr(&ns->nif, &v4, &mask, IP4_ADDR_ANY4);
	}
	for (int i = 0; i < LWIP_IPV6_NUM_ADDRESSES; i++) {
		bool want = (unsigned)i < n6;
		bool have = ip6_addr_isvalid(netif_ip6_addr_state(&ns->nif, i));
		if (want && have &&
		    memcmp(netif_ip6_addr(&ns->nif, i)->addr, v6[i].addr, 16) == 0)
			continue;
		if (have)
			netif_ip6_addr_set_state(&ns->nif, i, IP6_ADDR_INVALID);
		if (want) {
			netif_ip6_addr_set(&ns->nif, i, &v6[i]);
			netif_ip6_addr_set_state(&ns->nif, i, IP6_ADDR_PREFERRED);
		}
	}
}

/* --- packets out ---------------------------------------------------------- */

static void
emit(netstackd *ns, struct pbuf *p)
{
	tk_bus_batch_rec rec = { 0 };
	const uint8_t *data;

	if (p->tot_len == 0)
		return;
	if (p->next == NULL)
		data = p->payload;
	else {
		pbuf_copy_partial(p, ns->io, p->tot_len, 0);
		data = ns->io;
	}
	rec.data = data;
	rec.len = p->tot_len;
	ns->out_bytes += p->tot_len;
	if (tk_bus_batcher_add(&ns->out, TK_BATCH_IP, &rec) == 0)
		ns->st.pkts_out++;
	else
		ns->st.out_dropped++;
}

static err_t
out4(struct netif *nif, struct pbuf *p, const ip4_addr_t *dst)
{
	(void)dst;
	emit(nif->state, p);
	return ERR_OK;
}

static err_t
out6(struct netif *nif, struct pbuf *p, const ip6_addr_t *dst)
{
	(void)dst;
	emit(nif->state, p);
	return ERR_OK;
}

static err_t
nif_init(struct netif *nif)
{
	nif->mtu = NS_MTU;
	nif->output = out4;
	nif->output_ip6 = out6;
	nif->flags = 0;
	nif->name[0] = 't';
	nif->name[1] = 'k';
	return ERR_OK;
}

/* --- packets in ----------------------------------------------------------- */

static void
on_pkt(void *arg, nng_msg *msg)
{
	netstackd *ns = arg;
	tk_bus_batch_view v;
	tk_bus_batch_rec rec;

	if (tk_bus_batch_parse_msg(&v, msg, &ns->bstats) != 0 ||
	    tk_bus_batch_kind(&v) != TK_BATCH_IP) {
		ns->st.batches_dropped++;
		nng_msg_free(msg);
		return;
	}
	while (tk_bus_batch_next(&v, &rec)) {
		struct pbuf *p;
		uint8_t ver = rec.len ? rec.data[0] >> 4 : 0;

		if ((ver != 4 && ver != 6) || rec.len > 0xffff) {
			ns->st.pkts_bad++;
			continue;
		}
		if ((p = pbuf_alloc(PBUF_RAW, (u16_t)rec.len, PBUF_RAM)) == NULL) {
			ns->st.pkts_bad++;
			continue;
		}
		memcpy(p->payload, rec.data, rec.len);
		ns->st.pkts_in++;
		/* ip_input frees p in every case */
		if (ver == 4)
			ip4_input(p, &ns->nif);
		else
			ip6_input(p, &ns->nif);
	}
	nng_msg_free(msg);
}

/* --- the loop ------------------------------------------------------------- */

static void
on_lwip_timer(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	(void)loop, (void)t, (void)arg;
	/* the wake-up is what matters: before_sleep runs lwIP's timers */
}

static void
before_sleep(tk_loop *loop, void *arg)
{
	netstackd *ns = arg;
	u32_t ms;

	(void)loop;
	nsi_tcp_flush(ns);
	sys_check_timeouts();
	/* looped-back packets (to our own addresses, quad-100): each pass may
	 * queue answers; a bounded number of passes, the rest next time */
	for (int i = 0; i < 8; i++) {
		bool more = false;
		struct netif *nif;
		netif_poll_all();
		NETIF_FOREACH(nif)
			more |= nif->loop_first != NULL;
		if (!more)
			break;
	}
	tk_bus_batcher_flush(&ns->out);
	/* Each batch message is allocated (and zeroed by nng) at its full
	 * target size: while bulk data leaves, big batches; after a run of
	 * iterations that sent little (ACKs of a download), small ones.  The
	 * run keeps a sender that pauses for a few iterations (waiting for
	 * ACKs) on big batches. */
	if (ns->out_bytes > NS_BATCH_SMALL) {
		ns->small_iters = 0;
		ns->out.target = TK_BATCH_TARGET_BULK;
	} else if (++ns->small_iters >= NS_SMALL_RUN)
		ns->out.target = NS_BATCH_SMALL;
	ns->out_bytes = 0;
	ms = sys_timeouts_sleeptime();
	if (ms == SYS_TIMEOUTS_SLEEPTIME_INFINITE)
		tk_loop_timer_cancel(ns->lwip_timer);
	else
		tk_loop_timer_arm(ns->lwip_timer, (uint64_t)ms * 1000000u, 0);
}

static int
nm_snapshot(void *arg, uint64_t seq, const uint8_t *body, size_t len)
{
	(void)seq;
	return nsi_netmap_snapshot(arg, body, len);
}

static int
nm_delta(void *arg, uint64_t seq, const uint8_t *body, size_t len)
{
	(void)seq;
	return nsi_netmap_delta(arg, body, len);
}

static int
dup_str(char **out, const char *s)
{
	if (s == NULL) {
		*out = NULL;
		return 0;
	}
	return (*out = tk_strdup(s)) == NULL ? TK_ENOMEM : 0;
}

int
ns_new(netstackd **out, const ns_config *cfg, char *err, size_t errlen)
{
	netstackd *ns;
	int rv;
	bool no = false;
	ip4_addr_t a100, m32;
	ip6_addr_t a100v6;

	if (err && errlen)
		err[0] = '\0';
	if (cfg == NULL || cfg->pkt_url == NULL || cfg->api_path == NULL ||
	    (cfg->ctrld_pub_url == NULL) != (cfg->ctrld_rpc_url == NULL) ||
	    cfg->naddrs > NS_MAX_STATIC_ADDRS) {
		if (err)
			snprintf(err, errlen, "need a packet bus URL and an API socket "
			    "path; ctrld's pub and rpc URLs go together");
		return TK_EINVAL;
	}
	if (strlen(cfg->api_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		if (err)
			snprintf(err, errlen, "API socket path longer than %zu bytes",
			    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
		return TK_EINVAL;
	}
	if ((rv = nsi_proxy_cfg_check(cfg, err, err ? errlen : 0)) != 0)
		return rv;
	if (!atomic_compare_exchange_strong(&ns_exists, &no, true)) {
		if (err)
			snprintf(err, errlen, "one netstackd per process (lwIP is global)");
		return TK_ESTATE;
	}
	if ((ns = tk_calloc(1, sizeof(*ns))) == NULL) {
		ns_exists = false;
		return TK_ENOMEM;
	}
	ns->api_fd = -1;
	ns->tls = cfg->tls;
	ns->max_conns = cfg->max_conns ? cfg->max_conns : 4096;
	ns->dial_timeout_ms = cfg->dial_timeout_ms ? cfg->dial_timeout_ms : 15000;
	memcpy(ns->static_addrs, cfg->addrs, sizeof(ns->static_addrs));
	ns->nstatic = cfg->naddrs;
	if ((rv = dup_str(&ns->pkt_url, cfg->pkt_url)) != 0 ||
	    (rv = dup_str(&ns->ctrld_pub_url, cfg->ctrld_pub_url)) != 0 ||
	    (rv = dup_str(&ns->ctrld_rpc_url, cfg->ctrld_rpc_url)) != 0 ||
	    (rv = dup_str(&ns->api_path, cfg->api_path)) != 0 ||
	    (rv = dup_str(&ns->rpc_url, cfg->rpc_url)) != 0 ||
	    (rv = tk_loop_new(&ns->loop, NULL)) != 0 ||
	    (rv = tk_loop_timer_new(ns->loop, &ns->lwip_timer, on_lwip_timer,
		ns)) != 0)
		goto fail;

	if (!lwip_ready) {
		lwip_init();
		lwip_ready = true;
	}
	nsi_isn_init();
	/* the MagicDNS netif first: lwIP's netif list is LIFO, and the node's
	 * own netif should be the first one lwIP looks at */
	IP4_ADDR(&a100, 100, 100, 100, 100);
	IP4_ADDR(&m32, 255, 255, 255, 255);
	if (netif_add(&ns->nif100, &a100, &m32, IP4_ADDR_ANY4, ns, nif_init,
		ip_input) == NULL) {
		rv = TK_EINTERNAL;
		goto fail;
	}
	ns->nif100_added = true;
	IP6_ADDR(&a100v6, PP_HTONL(0xfd7a115cUL), PP_HTONL(0xa1e00000UL), 0,
	    PP_HTONL(0x53UL));
	netif_ip6_addr_set(&ns->nif100, 0, &a100v6);
	netif_ip6_addr_set_state(&ns->nif100, 0, IP6_ADDR_PREFERRED);
	netif_set_up(&ns->nif100);
	netif_set_link_up(&ns->nif100);
	if (netif_add(&ns->nif, IP4_ADDR_ANY4, &m32, IP4_ADDR_ANY4, ns, nif_init,
		ip_input) == NULL) {
		rv = TK_EINTERNAL;
		goto fail;
	}
	ns->nif_added = true;
	netif_set_default(&ns->nif);
	netif_set_up(&ns->nif);
	netif_set_link_up(&ns->nif);
	nsi_addrs_apply(ns, ns->static_addrs, ns->nstatic);

	if ((rv = tk_bus_open(&ns->pkt, TK_BUS_PAIR)) != 0)
		goto fail;
	ns->pkt_open = true;
	tk_bus_batcher_init(&ns->out, ns->pkt, TK_BATCH_TARGET_BULK);
	if ((rv = tk_bus_dial(ns->pkt, ns->pkt_url, ns->tls, 0, NULL)) != 0 ||
	    (rv = tk_bus_reader_new(&ns->pkt_reader, ns->loop, ns->pkt, on_pkt,
		ns)) != 0) {
		if (err)
			snprintf(err, errlen, "packet bus %s: %s", ns->pkt_url,
			    tk_strerror(rv));
		goto fail;
	}
	if (ns->ctrld_pub_url != NULL) {
		tk_topic_sub_cfg sc = { .loop = ns->loop, .url = ns->ctrld_pub_url,
			.rpc_url = ns->ctrld_rpc_url, .tls = ns->tls,
			.topic = TK_TOPIC_NETMAP, .apply_snapshot = nm_snapshot,
			.apply_delta = nm_delta, .arg = ns, .name = "netstackd" };
		if ((rv = tk_topic_sub_new(&ns->sub, &sc)) != 0) {
			if (err)
				snprintf(err, errlen, "netmap subscription %s: %s",
				    ns->ctrld_pub_url, tk_strerror(rv));
			goto fail;
		}
	}
	if ((rv = nsi_dns_start(ns)) != 0 ||
	    (rv = nsi_dns_svc_new(ns, &ns->dns_svc)) != 0 ||
	    (rv = nsi_proxy_svc_new(ns, cfg, &ns->proxy_svc, err, errlen)) != 0)
		goto fail;
	ns->started_ns = tk_loop_now(ns->loop);
	if (ns->rpc_url != NULL && (rv = nsi_status_start(ns)) != 0) {
		if (err)
			snprintf(err, errlen, "rpc %s: %s", ns->rpc_url, tk_strerror(rv));
		goto fail;
	}
	if ((rv = nsi_api_start(ns)) != 0) {
		if (err)
			snprintf(err, errlen, "local API socket %s: %s", ns->api_path,
			    tk_strerror(rv));
		goto fail;
	}
	tk_loop_set_before_sleep(ns->loop, before_sleep, ns);
	*out = ns;
	return 0;
fail:
	if (err && errlen && err[0] == '\0')
		snprintf(err, errlen, "netstackd: %s", tk_strerror(rv));
	ns_free(ns);
	return rv;
}

static void *
run(void *arg)
{
	netstackd *ns = arg;

	tk_loop_run(ns->loop);
	return NULL;
}

int
ns_start(netstackd *ns)
{
	int e;

	if (ns->running)
		return TK_ESTATE;
	if ((e = pthread_create(&ns->thread, NULL, run, ns)) != 0)
		return tk_err_sys(e);
	ns->running = true;
	return 0;
}

void
ns_stop(netstackd *ns)
{
	if (ns == NULL || !ns->running)
		return;
	tk_loop_stop(ns->loop);
	pthread_join(ns->thread, NULL);
	ns->running = false;
}

void
ns_free(netstackd *ns)
{
	if (ns == NULL)
		return;
	ns_stop(ns);
	nsi_proxy_svc_free(ns->proxy_svc);
	nsi_dns_svc_free(ns->dns_svc);
	ns->proxy_svc = NULL;
	ns->dns_svc = NULL; /* the API's clients ask it as they go */
	nsi_api_stop(ns);
	nsi_dials_free_all(ns);
	nsi_listeners_free_all(ns);
	ns->dirty = NULL;
	nsi_conn_free_all(ns);
	nsi_udp_free_all(ns);
	nsi_dns_stop(ns);
	/* lwIP's state is global and outlives us: the pcbs it still owns
	 * (closing, TIME_WAIT) go now, so the next instance starts clean */
	while (tcp_active_pcbs != NULL)
		tcp_abort(tcp_active_pcbs);
	while (tcp_tw_pcbs != NULL)
		tcp_abort(tcp_tw_pcbs);
	if (ns->nif_added)
		netif_remove(&ns->nif);
	if (ns->nif100_added)
		netif_remove(&ns->nif100);
	tk_topic_sub_free(ns->sub);
	tk_rpc_server_free(ns->rpc);
	tk_bus_reader_free(ns->pkt_reader);
	if (ns->pkt_open) {
		tk_bus_batcher_flush(&ns->out);
		tk_bus_batcher_fini(&ns->out);
		tk_bus_close_bounded(ns->pkt, 2000); /* nng 1.5.2 (tk/bus.h) */
	}
	tk_loop_timer_free(ns->lwip_timer);
	tk_loop_free(ns->loop);
	nsi_netmap_fini(&ns->nm);
	tk_free(ns->pkt_url);
	tk_free(ns->ctrld_pub_url);
	tk_free(ns->ctrld_rpc_url);
	tk_free(ns->api_path);
	tk_free(ns->rpc_url);
	tk_free(ns);
	ns_exists = false;
}

void
ns_stats_get(const netstackd *ns, ns_stats *o)
{
	o->pkts_in = ns->st.pkts_in;
	o->pkts_out = ns->st.pkts_out;
	o->pkts_bad = ns->st.pkts_bad;
	o->batches_dropped = ns->st.batches_dropped;
	o->out_dropped = ns->st.out_dropped;
	o->conns_open = ns->st.conns_open;
	o->conns_total = ns->st.conns_total;
	o->conns_refused = ns->st.conns_refused;
	o->udp_dropped = ns->st.udp_dropped;
	o->api_clients = ns->st.api_clients;
	o->api_bad = ns->st.api_bad;
}

tk_loop *
ns_loop(netstackd *ns)
{
	return ns->loop;
}

void
ns_set_resolver(netstackd *ns, const ns_resolver_ops *ops)
{
	if (ops == NULL) {
		ns->have_resolver = false;
		return;
	}
	ns->resolver = *ops;
	ns->have_resolver = true;
}

int
ns_dial(netstackd *ns, const ns_api_addr *dst, ns_dial_done_fn done, void *arg)
{
	if (done == NULL || dst == NULL)
		return TK_EINVAL;
	return nsi_dial_start(ns, NULL, 0, dst, done, arg);
}
