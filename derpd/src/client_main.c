/*
 * `derpd client`: flags, signals, then derpd_client_new/_start/_stop/_free
 * (the scaffold is libs/daemon).
 */
#include <stdio.h>

#include "derpd/derpd_client.h"
#include "tk/bus_topics.h"
#include "tk/daemon.h"
#include "tk/err.h"

#define SYNOPSIS "client (--bus DIR | URL options) [options]"

int
derpd_client_main(int argc, char **argv)
{
	derpd_client_config cfg = { 0 };
	derpd_client *c;
	const char *bus = NULL;
	bool derp_http = false;
	long home = 0;
	char err[512];
	int rv;
	static tk_bus_tls btls;
	const tk_opt opts[] = {
		{ "--bus", TK_OPT_STR, &bus, .metavar = "DIR", .help = "ipc buses "
		    "in DIR: derpd.pub/derpd.rpc (ours), ctrld's, wgd's, wgd-derp" },
		{ "--pub", TK_OPT_STR, &cfg.pub_url, .metavar = "URL",
		    .help = "our publisher (topic \"derp\")" },
		{ "--rpc", TK_OPT_STR, &cfg.rpc_url, .metavar = "URL",
		    .help = "our req/rep (status)" },
		{ "--ctrld-pub", TK_OPT_STR, &cfg.ctrld_pub_url, .metavar = "URL",
		    .help = "ctrld's publisher (netmap: the DERP map)" },
		{ "--ctrld-rpc", TK_OPT_STR, &cfg.ctrld_rpc_url, .metavar = "URL",
		    .help = "ctrld's req/rep (netmap snapshots)" },
		{ "--wgd-pub", TK_OPT_STR, &cfg.wgd_pub_url, .metavar = "URL",
		    .help = "wgd's publisher (keys)" },
		{ "--wgd-rpc", TK_OPT_STR, &cfg.wgd_rpc_url, .metavar = "URL",
		    .help = "wgd's req/rep (derp_seal, derp_open)" },
		{ "--pkt", TK_OPT_STR, &cfg.pkt_url, .metavar = "URL",
		    .help = "wgd's DERP packet bus" },
		{ "--derp-http", TK_OPT_FLAG, &derp_http, .help = "plain HTTP to "
		    "DERP servers (tests; Go's TS_DEBUG_USE_DERP_HTTP)" },
		{ "--ca-file", TK_OPT_STR, &cfg.ca_file, .metavar = "PEM",
		    .help = "also trust this CA for DERP servers" },
		{ "--home-region", TK_OPT_INT, &home, 1, 65535, .metavar = "N",
		    .help = "pin the home region (default: lowest latency, kept "
		    "while healthy)" },
		TK_OPTS_BUS_TLS(btls),
		{ NULL },
	};

	if ((rv = tk_opts_parse("derpd", SYNOPSIS, opts, argc, argv, 1)) >= 0)
		return rv;
	cfg.plain_http = derp_http;
	cfg.home_region = (int)home;
	if ((rv = tk_bus_url_default(&cfg.pub_url, bus, TK_BUS_DERPD_PUB)) != 0 ||
	    (rv = tk_bus_url_default(&cfg.rpc_url, bus, TK_BUS_DERPD_RPC)) != 0 ||
	    (rv = tk_bus_url_default(&cfg.ctrld_pub_url, bus, TK_BUS_CTRLD_PUB)) != 0 ||
	    (rv = tk_bus_url_default(&cfg.ctrld_rpc_url, bus, TK_BUS_CTRLD_RPC)) != 0 ||
	    (rv = tk_bus_url_default(&cfg.wgd_pub_url, bus, TK_BUS_WGD_PUB)) != 0 ||
	    (rv = tk_bus_url_default(&cfg.wgd_rpc_url, bus, TK_BUS_WGD_RPC)) != 0 ||
	    (rv = tk_bus_url_default(&cfg.pkt_url, bus, TK_BUS_WGD_DERP)) != 0) {
		fprintf(stderr, "derpd client: --bus %s: %s\n", bus, tk_strerror(rv));
		return 2;
	}
	const char *urls[] = { cfg.pub_url, cfg.rpc_url, cfg.ctrld_pub_url,
		cfg.ctrld_rpc_url, cfg.wgd_pub_url, cfg.wgd_rpc_url, cfg.pkt_url };
	if ((rv = tk_bus_tls_ready("derpd", &btls, urls, 7, &cfg.tls)) != 0)
		return rv;
	if ((rv = tk_daemon_init("derpd")) != 0)
		return 1;
	if ((rv = derpd_client_new(&c, &cfg, err, sizeof(err))) != 0) {
		fprintf(stderr, "derpd client: %s\n", err[0] ? err : tk_strerror(rv));
		return rv == TK_EINVAL ? 2 : 1;
	}
	if ((rv = derpd_client_start(c)) != 0) {
		fprintf(stderr, "derpd client: start: %s\n", tk_strerror(rv));
		derpd_client_free(c);
		return 1;
	}
	tk_daemon_wait("derpd");
	derpd_client_free(c);
	return 0;
}
