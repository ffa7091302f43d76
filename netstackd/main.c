/*
 * netstackd daemon: flags, signals, then ns_new/_start/_stop/_free.
 *
 *   netstackd --bus DIR [--api PATH] [--addr IP]... [--socks5 ADDR:PORT]
 *             [--http-proxy ADDR:PORT] [--proxy-user U --proxy-pass P]
 *
 * Userspace TCP/IP for the node's tailnet addresses on wgd's packet bus;
 * applications get file descriptors through the local API (README.md).
 */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "netstackd/netstackd.h"
#include "tk/bus_topics.h"
#include "tk/daemon.h"
#include "tk/err.h"
#include "tk/log.h"

#define SYNOPSIS "--bus DIR [options]\n  Userspace TCP/IP (lwIP) for the node's " \
	"tailnet addresses on wgd's packet bus; file descriptors for\n" \
	"  applications through a local API socket."

/* TK_OPT_STR keeps the last --addr only: collect them all first. */
static int
collect_addrs(int argc, char **argv, ns_config *cfg)
{
	for (int i = 1; i + 1 < argc; i++) {
		if (strcmp(argv[i], "--addr") != 0)
			continue;
		const char *s = argv[++i];
		if (cfg->naddrs == NS_MAX_STATIC_ADDRS) {
			fprintf(stderr, "netstackd: at most %d --addr\n",
			    NS_MAX_STATIC_ADDRS);
			return 2;
		}
		if (tk_ipaddr_parse(&cfg->addrs[cfg->naddrs], s, strlen(s)) != 0) {
			fprintf(stderr, "netstackd: --addr %s: not an IPv4 or IPv6 "
			    "address (e.g. 100.64.0.1, fd7a:115c:a1e0::1)\n", s);
			return 2;
		}
		cfg->naddrs++;
	}
	return -1;
}

int
main(int argc, char **argv)
{
	ns_config cfg = { 0 };
	netstackd *ns;
	const char *bus = NULL, *addr = NULL;
	static char api[600];
	char err[512];
	long max_conns = 0;
	bool no_ctrld = false;
	int rv;
	static tk_bus_tls btls;
	const tk_opt opts[] = {
		{ "--bus", TK_OPT_STR, &bus, .metavar = "DIR", .help = "ipc buses in "
		    "DIR: dials wgd-pkt, follows ctrld's netmap, serves "
		    "netstackd.rpc; API socket DIR/netstackd.sock" },
		{ "--api", TK_OPT_STR, &cfg.api_path, .metavar = "PATH",
		    .help = "the local API's unix socket (mode 0600)" },
		{ "--rpc", TK_OPT_STR, &cfg.rpc_url, .metavar = "URL",
		    .help = "our req/rep (status)" },
		{ "--pkt", TK_OPT_STR, &cfg.pkt_url, .metavar = "URL",
		    .help = "wgd's packet bus (netstackd dials it)" },
		{ "--ctrld-pub", TK_OPT_STR, &cfg.ctrld_pub_url, .metavar = "URL",
		    .help = "ctrld's publisher (netmap)" },
		{ "--ctrld-rpc", TK_OPT_STR, &cfg.ctrld_rpc_url, .metavar = "URL",
		    .help = "ctrld's req/rep (snapshots)" },
		{ "--no-ctrld", TK_OPT_FLAG, &no_ctrld, .help = "do not follow ctrld "
		    "(addresses from --addr only)" },
		{ "--addr", TK_OPT_STR, &addr, .metavar = "IP", .help = "an own "
		    "address until the netmap has one (repeatable: one IPv4, "
		    "three IPv6)" },
		{ "--max-conns", TK_OPT_INT, &max_conns, 1, 1000000,
		    .help = "TCP connections at most (default 4096)" },
		{ "--socks5", TK_OPT_STR, &cfg.socks5_addr, .metavar = "ADDR:PORT",
		    .help = "SOCKS5 proxy into the tailnet on a loopback address "
		    "(127.0.0.1:1080, [::1]:1080)" },
		{ "--http-proxy", TK_OPT_STR, &cfg.http_proxy_addr,
		    .metavar = "ADDR:PORT", .help = "HTTP CONNECT proxy into the "
		    "tailnet on a loopback address" },
		{ "--proxy-user", TK_OPT_STR, &cfg.proxy_user, .metavar = "USER",
		    .help = "both proxies require this user (with --proxy-pass)" },
		{ "--proxy-pass", TK_OPT_STR, &cfg.proxy_pass, .metavar = "PASS",
		    .help = "and this password" },
		TK_OPTS_BUS_TLS(btls),
		{ NULL },
	};
	if ((rv = tk_opts_parse("netstackd", SYNOPSIS, opts, argc, argv, 1)) >= 0)
		return rv;
	(void)addr;
	if ((rv = collect_addrs(argc, argv, &cfg)) >= 0)
		return rv;
	cfg.max_conns = (unsigned)max_conns;
	if ((rv = tk_bus_url_default(&cfg.pkt_url, bus, TK_BUS_WGD_PKT)) != 0 ||
	    (rv = tk_bus_url_default(&cfg.rpc_url, bus, TK_BUS_NETSTACKD_RPC)) != 0 ||
	    (!no_ctrld &&
		((rv = tk_bus_url_default(&cfg.ctrld_pub_url, bus,
		      TK_BUS_CTRLD_PUB)) != 0 ||
		    (rv = tk_bus_url_default(&cfg.ctrld_rpc_url, bus,
			TK_BUS_CTRLD_RPC)) != 0))) {
		fprintf(stderr, "netstackd: --bus %s: %s\n", bus, tk_strerror(rv));
		return 2;
	}
	if (no_ctrld)
		cfg.ctrld_pub_url = cfg.ctrld_rpc_url = NULL;
	if (cfg.api_path == NULL && bus != NULL) {
		if ((size_t)snprintf(api, sizeof(api), "%s/netstackd.sock", bus) >=
		    sizeof(api)) {
			fprintf(stderr, "netstackd: --bus DIR too long\n");
			return 2;
		}
		cfg.api_path = api;
	}
	const char *urls[] = { cfg.pkt_url, cfg.rpc_url, cfg.ctrld_pub_url,
		cfg.ctrld_rpc_url };
	if ((rv = tk_bus_tls_ready("netstackd", &btls, urls, 4, &cfg.tls)) != 0)
		return rv;
	if (cfg.pkt_url == NULL || cfg.api_path == NULL) {
		fprintf(stderr, "netstackd: need --bus DIR (or --pkt URL and --api PATH)\n");
		tk_opts_usage(stderr, "netstackd", SYNOPSIS, opts);
		return 2;
	}
	/* batches are allocated here and freed on nng's threads: keep freed
	 * memory rather than trimming it back and faulting it in again */
	mallopt(M_TRIM_THRESHOLD, 8 << 20);
	if (tk_daemon_init("netstackd") != 0)
		return 1;
	if ((rv = ns_new(&ns, &cfg, err, sizeof(err))) != 0) {
		fprintf(stderr, "netstackd: %s\n", err[0] ? err : tk_strerror(rv));
		return rv == TK_EINVAL ? 2 : 1;
	}
	if ((rv = ns_start(ns)) != 0) {
		fprintf(stderr, "netstackd: start: %s\n", tk_strerror(rv));
		ns_free(ns);
		return 1;
	}
	TK_INFO("netstackd", "packet bus %s, API %s", cfg.pkt_url, cfg.api_path);
	tk_daemon_wait("netstackd");
	ns_stop(ns);
	ns_free(ns);
	return 0;
}
