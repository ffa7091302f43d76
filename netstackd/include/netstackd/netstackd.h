/*
 * netstackd: the node's userspace TCP/IP (lwIP) on wgd's packet bus, and
 * file descriptors for applications through a local API
 * (netstackd/ns_api.h, netstackd/README.md).
 *
 *   netstackd *ns;
 *   ns_config cfg = { .pkt_url = ..., .api_path = ..., ... };
 *   ns_new(&ns, &cfg, err, sizeof(err));  ns_start(ns);
 *   ...  ns_stop(ns);  ns_free(ns);
 *
 * lwIP keeps global state, so one instance per process: a second ns_new
 * while one exists fails with TK_ESTATE.  Everything netstackd does runs on
 * its one loop thread (between ns_start and ns_stop).
 *
 * Errors: 0 or TK_E* (tk/err.h); out-params written only on 0.
 */
#ifndef NETSTACKD_H
#define NETSTACKD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netstackd/ns_api.h"
#include "tk/bus.h"
#include "tk/loop.h"
#include "tk/netaddr.h"

typedef struct netstackd netstackd;

#define NS_MAX_STATIC_ADDRS 4

typedef struct ns_config {
	const char *pkt_url;	   /* wgd's packet bus (netstackd dials) */
	const char *ctrld_pub_url; /* ctrld's publisher ("netmap"); NULL: none */
	const char *ctrld_rpc_url; /* ctrld's req/rep (snapshots) */
	const tk_bus_tls *tls;	   /* for tls+tcp:// bus URLs */
	const char *rpc_url;	   /* our req/rep ("status"); NULL: none */
	const char *api_path;	   /* the local API's unix socket (0600) */
	/* Own addresses to use until (or without) a netmap: at most one
	 * IPv4 and three IPv6. */
	tk_ipaddr addrs[NS_MAX_STATIC_ADDRS];
	unsigned naddrs;
	unsigned max_conns; /* 0: 4096 */
	unsigned dial_timeout_ms; /* 0: 15000 */
	/* Loopback proxies into the tailnet (NULL: off): "127.0.0.1:1080",
	 * "[::1]:8080"; an address off loopback is refused (TK_EINVAL). */
	const char *socks5_addr;
	const char *http_proxy_addr;
	/* Both or neither: SOCKS5 username/password (RFC 1929) and HTTP
	 * Proxy-Authorization Basic required on both proxies. */
	const char *proxy_user, *proxy_pass;
} ns_config;

/* err (may be NULL) receives a one-line reason on failure. */
int ns_new(netstackd **out, const ns_config *cfg, char *err, size_t errlen);
int ns_start(netstackd *ns);
void ns_stop(netstackd *ns);
void ns_free(netstackd *ns);

typedef struct ns_stats {
	uint64_t pkts_in, pkts_out, pkts_bad, batches_dropped;
	uint64_t out_dropped; /* packets the bus refused (wgd away) */
	uint64_t conns_open, conns_total, conns_refused;
	uint64_t udp_dropped;
	uint64_t api_clients, api_bad;
} ns_stats;
/* Thread-safe snapshot (relaxed counters). */
void ns_stats_get(const netstackd *ns, ns_stats *out);

/* ---- hooks for in-process services (MagicDNS, proxies) ------------------
 *
 * Called on the loop thread.  The MagicDNS resolver (netstackd/src/dns*.c
 * on the resolver's branch) registers itself with ns_set_resolver before
 * ns_start; without one, DNS datagrams to 100.100.100.100:53 are dropped
 * and TCP connections to it closed.
 */
typedef struct ns_resolver_ops {
	/*
	 * A UDP datagram to 100.100.100.100:53 (or fd7a:115c:a1e0::53) from
	 * `from`.  Write the answer to resp[0..cap) and set *resp_len: return
	 * 0 to send it back, non-zero to send nothing.  q is borrowed.
	 */
	int (*udp_query)(void *arg, const ns_api_addr *from, const uint8_t *q,
	    size_t n, uint8_t *resp, size_t cap, size_t *resp_len);
	/*
	 * A TCP connection to 100.100.100.100:53 (or the v6 one) was accepted: fd is a
	 * non-blocking SOCK_STREAM end that netstackd shuttles to the peer
	 * (RFC 7766 length-prefixed messages).  Hand-off: the resolver owns
	 * fd (close it when done; register it with ns_loop()).
	 */
	void (*tcp_conn)(void *arg, int fd, const ns_api_peer *peer);
	void *arg;
} ns_resolver_ops;

void ns_set_resolver(netstackd *ns, const ns_resolver_ops *ops);
/* The loop thread's loop (for services running inside netstackd). */
tk_loop *ns_loop(netstackd *ns);

/*
 * Dial from inside the process (SOCKS5/HTTP CONNECT proxies, dial by
 * name): done(arg, status, fd, peer) runs once on the loop thread with an
 * NS_ST_* status; on NS_ST_OK the callee hands over fd (a non-blocking
 * SOCK_STREAM end).  0, or TK_E* when the dial could not start (done is
 * then not called).
 */
typedef void (*ns_dial_done_fn)(void *arg, int status, int fd,
    const ns_api_peer *peer);
int ns_dial(netstackd *ns, const ns_api_addr *dst, ns_dial_done_fn done,
    void *arg);

/*
 * Hands a connected loopback stream socket to the SOCKS5 proxy service as
 * if its listener had accepted it (an embedding program's own loopback
 * listener that serves more than SOCKS5 on one port: tailkit's
 * tailscale_loopback).  The credentials are ns_config.proxy_user/pass.
 * Thread-safe; netstackd takes fd on 0 (closed if it cannot be served).
 */
int ns_proxy_adopt_socks5(netstackd *ns, int fd);

#endif
