/* netstackd's private cross-file declarations (nsi_ prefix). */
#ifndef NS_INT_H
#define NS_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "lwip/ip_addr.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/tcp.h"
#include "lwip/udp.h"
#include "netstackd/netstackd.h"
#include "tk/bus_batch.h"
#include "tk/bus_topic.h"

#define NS_SUBSYS "netstackd"

typedef struct nsi_conn nsi_conn;
typedef struct nsi_client nsi_client;
typedef struct nsi_listener nsi_listener;
typedef struct nsi_dial nsi_dial;
typedef struct nsi_udp nsi_udp;

/* One tailnet peer, from the netmap (identity for accepted/dialled
 * connections). */
typedef struct nsi_peer {
	int64_t id, user;
	char *name;
	unsigned naddrs;
	tk_ipaddr addrs[4];
} nsi_peer;

typedef struct nsi_user {
	int64_t id;
	char *login;
} nsi_user;

typedef struct nsi_netmap {
	nsi_peer *peers;
	size_t npeers;
	nsi_user *users;
	size_t nusers;
	tk_ipaddr self[4];
	unsigned nself;
	bool have_self;
	uint64_t snapshots, deltas, bad;
} nsi_netmap;

/* A TCP connection: lwIP pcb <-> netstackd's end of a socketpair. */
struct nsi_conn {
	netstackd *ns;
	struct tcp_pcb *pcb;
	int fd;
	unsigned interest; /* registered TK_LOOP_* bits; 0 = not registered */
	struct pbuf *rx;   /* received, not yet written to fd */
	struct pbuf *rx_tail; /* last pbuf of rx (appending is O(1)) */
	size_t rx_off;	   /* bytes of rx->payload already written */
	bool app_eof;	   /* read 0 from fd: FIN sent */
	bool peer_fin;	   /* FIN from the peer */
	bool fin_given;	   /* shutdown(fd, SHUT_WR) done */
	bool hup;	   /* fd hung up (app closed its end) */
	bool dirty;	   /* on ns->dirty: received data to write out */
	nsi_conn *next, *prev, *dnext;
};

struct nsi_listener {
	netstackd *ns;
	nsi_client *client;
	struct tcp_pcb *pcb;
	uint16_t port;
	uint32_t id;
	nsi_listener *next;
};

struct nsi_dial {
	netstackd *ns;
	struct tcp_pcb *pcb;
	nsi_client *client; /* NULL: an in-process dial (done/arg) */
	uint32_t id;
	ns_dial_done_fn done;
	void *arg;
	tk_loop_timer *timer;
	nsi_dial *next, *prev;
};

struct nsi_udp {
	netstackd *ns;
	struct udp_pcb *pcb;
	int fd;
	nsi_udp *next, *prev;
};

typedef struct nsi_counters {
	_Atomic uint64_t pkts_in, pkts_out, pkts_bad, batches_dropped,
	    out_dropped, conns_open, conns_total, conns_refused, udp_dropped,
	    api_clients, api_bad;
} nsi_counters;

struct netstackd {
	tk_loop *loop;
	pthread_t thread;
	bool running;
	char *pkt_url, *ctrld_pub_url, *ctrld_rpc_url, *api_path, *rpc_url;
	tk_rpc_server *rpc;
	uint64_t started_ns;
	const tk_bus_tls *tls;
	unsigned max_conns, dial_timeout_ms;

	nng_socket pkt;
	bool pkt_open;
	tk_bus_reader *pkt_reader;
	tk_bus_batcher out;
	size_t out_bytes; /* sent this loop iteration (sizes the next batch) */
	unsigned small_iters; /* iterations in a row that sent little */
	tk_bus_batch_stats bstats;
	tk_topic_sub *sub;
	tk_loop_timer *lwip_timer;

	struct netif nif, nif100;
	bool nif_added, nif100_added;
	struct udp_pcb *dns_udp[2]; /* MagicDNS: v4, v6 */
	struct tcp_pcb *dns_tcp[2];
	ns_resolver_ops resolver;
	bool have_resolver;

	nsi_netmap nm;
	tk_ipaddr static_addrs[NS_MAX_STATIC_ADDRS];
	unsigned nstatic;

	int api_fd;
	nsi_client *clients;
	nsi_listener *listeners;
	nsi_dial *dials;
	nsi_conn *conns;
	nsi_conn *dirty; /* conns with new received data (this iteration) */
	nsi_udp *udps;
	unsigned nconns;

	nsi_counters st;
	/* in-process services (ns_svc.h): MagicDNS, loopback proxies */
	struct nsi_dns_svc *dns_svc;
	struct nsi_proxy_svc *proxy_svc;
	uint8_t io[65536 + 64];
};

/* netstackd.c */
void nsi_addrs_apply(netstackd *ns, const tk_ipaddr *a, unsigned n);
void nsi_addr_from_ip(ns_api_addr *out, const ip_addr_t *ip, uint16_t port);
void nsi_ip_from_addr(ip_addr_t *out, const ns_api_addr *a);
bool nsi_own_addr(netstackd *ns, int family, ip_addr_t *out);

/* ns_tcp.c */
/* Wraps an lwIP pcb (established) into a conn with a socketpair; *app_fd
 * receives the application's end.  0 or TK_E*. */
int nsi_conn_new(netstackd *ns, struct tcp_pcb *pcb, int *app_fd);
void nsi_conn_free_all(netstackd *ns);
/* Writes what lwIP delivered during this loop iteration to the
 * applications: one writev per connection per iteration. */
void nsi_tcp_flush(netstackd *ns);
void nsi_peer_info(netstackd *ns, struct tcp_pcb *pcb, ns_api_peer *out);
int nsi_listen(netstackd *ns, nsi_client *c, uint16_t port, uint32_t id);
int nsi_unlisten(netstackd *ns, nsi_client *c, uint16_t port);
void nsi_listeners_drop_client(netstackd *ns, nsi_client *c);
void nsi_listeners_free_all(netstackd *ns);
int nsi_dial_start(netstackd *ns, nsi_client *c, uint32_t id,
    const ns_api_addr *dst, ns_dial_done_fn done, void *arg);
void nsi_dials_drop_client(netstackd *ns, nsi_client *c);
void nsi_dials_free_all(netstackd *ns);

/* ns_hooks.c */
int nsi_dns_start(netstackd *ns);
void nsi_dns_stop(netstackd *ns);

/* ns_udp.c */
int nsi_udp_bind(netstackd *ns, uint16_t port, int *app_fd, uint16_t *bound);
void nsi_udp_free_all(netstackd *ns);

/* ns_apisrv.c */
int nsi_api_start(netstackd *ns);
void nsi_api_stop(netstackd *ns);
/* Sends a frame (+ fd, which the call closes on our side either way) to
 * client c.  0, or TK_E* (the client was dropped). */
int nsi_client_send(nsi_client *c, uint8_t op, uint8_t status, uint32_t id,
    const uint8_t *body, size_t len, int fd);
/* An error reply: status st, text why (NULL: the status's own text). */
void nsi_client_reply_err(nsi_client *c, uint32_t id, int st, const char *why);
void nsi_client_send_peer(nsi_client *c, uint8_t op, uint32_t id, int fd,
    const ns_api_peer *peer);

/* ns_netmap.c */
int nsi_netmap_snapshot(netstackd *ns, const uint8_t *p, size_t n);
int nsi_netmap_delta(netstackd *ns, const uint8_t *p, size_t n);
void nsi_netmap_fini(nsi_netmap *nm);
void nsi_identity(netstackd *ns, const ns_api_addr *remote, ns_api_peer *out);

/* ns_status.c */
int nsi_status_start(netstackd *ns);

/* ns_isn.c */
void nsi_isn_init(void);

#endif
