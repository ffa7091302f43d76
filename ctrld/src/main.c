/*
 * ctrld daemon: flags, signals, then ctrld_new/_start/_stop/_free (the
 * scaffold is libs/daemon).
 *
 *   ctrld --control-url URL --state DIR (--bus DIR | --pub URL --rpc URL
 *         [--wgd-pub URL --wgd-rpc URL]) [--authkey KEY | --authkey-file F]
 *         [--hostname NAME] [--ephemeral] [--standalone] [-v]
 */
#include <stdio.h>
#include <string.h>

#include "ctrld/ctrld.h"
#include "tk/bus_topics.h"
#include "tk/daemon.h"
#include "tk/err.h"
#include "tk/mem.h"

#define SYNOPSIS "--control-url URL --state DIR (--bus DIR | --pub URL --rpc URL) " \
	"[options]\n  Registers this node with a control server (ts2021) and publishes " \
	"the\n  netmap on the control bus."

int
main(int argc, char **argv)
{
	ctrld_config cfg = { 0 };
	const char *bus = NULL, *keyfile = NULL;
	static char key[512];
	bool standalone = false, ephemeral = false;
	char err[512];
	ctrld *c;
	int rv;
	static tk_bus_tls btls;
	const tk_opt opts[] = {
		{ "--control-url", TK_OPT_STR, &cfg.control_url, .metavar = "URL",
		    .help = "http://host:port or https://host[:port]" },
		{ "--ca-file", TK_OPT_STR, &cfg.ca_file, .metavar = "PEM",
		    .help = "https: a CA trusted besides the system's" },
		{ "--state", TK_OPT_STR, &cfg.state_dir, .metavar = "DIR",
		    .help = "sqlite state: machine key, registration, last netmap" },
		{ "--bus", TK_OPT_STR, &bus, .metavar = "DIR", .help = "ipc buses in "
		    "DIR: ctrld.pub/ctrld.rpc; follows wgd's and derpd's" },
		{ "--pub", TK_OPT_STR, &cfg.pub_url, .metavar = "URL",
		    .help = "our publisher (topic \"netmap\")" },
		{ "--rpc", TK_OPT_STR, &cfg.rpc_url, .metavar = "URL",
		    .help = "our req/rep (status, logout)" },
		{ "--wgd-pub", TK_OPT_STR, &cfg.wgd_pub_url, .metavar = "URL",
		    .help = "wgd's publisher (node and disco public keys)" },
		{ "--wgd-rpc", TK_OPT_STR, &cfg.wgd_rpc_url, .metavar = "URL",
		    .help = "wgd's req/rep (rotate_node_key)" },
		{ "--derpd-pub", TK_OPT_STR, &cfg.derpd_pub_url, .metavar = "URL",
		    .help = "derpd's publisher (home region -> Hostinfo.NetInfo)" },
		{ "--derpd-rpc", TK_OPT_STR, &cfg.derpd_rpc_url, .metavar = "URL",
		    .help = "derpd's req/rep" },
		{ "--standalone", TK_OPT_FLAG, &standalone,
		    .help = "no wgd: keep a node key of our own (debugging)" },
		TK_OPTS_LOGIN(&cfg.auth_key, &keyfile, &cfg.hostname,
		    &cfg.advertise_tags, &ephemeral),
		TK_OPTS_BUS_TLS(btls),
		{ NULL },
	};

	if ((rv = tk_opts_parse("ctrld", SYNOPSIS, opts, argc, argv, 1)) >= 0)
		return rv;
	cfg.ephemeral = ephemeral;
	if (keyfile != NULL) {
		if (tk_read_secret_line("ctrld", keyfile, key, sizeof(key)) != 0)
			return 2;
		cfg.auth_key = key[0] ? key : NULL; /* empty: interactive */
	}
	if ((rv = tk_bus_url_default(&cfg.pub_url, bus, TK_BUS_CTRLD_PUB)) != 0 ||
	    (rv = tk_bus_url_default(&cfg.rpc_url, bus, TK_BUS_CTRLD_RPC)) != 0 ||
	    (!standalone &&
		((rv = tk_bus_url_default(&cfg.wgd_pub_url, bus, TK_BUS_WGD_PUB)) != 0 ||
		    (rv = tk_bus_url_default(&cfg.wgd_rpc_url, bus, TK_BUS_WGD_RPC)) != 0 ||
		    (rv = tk_bus_url_default(&cfg.derpd_pub_url, bus,
			TK_BUS_DERPD_PUB)) != 0 ||
		    (rv = tk_bus_url_default(&cfg.derpd_rpc_url, bus,
			TK_BUS_DERPD_RPC)) != 0))) {
		fprintf(stderr, "ctrld: --bus %s: %s\n", bus, tk_strerror(rv));
		return 2;
	}
	if (standalone)
		cfg.wgd_pub_url = cfg.wgd_rpc_url = NULL;
	if (!cfg.control_url || !cfg.state_dir || !cfg.pub_url || !cfg.rpc_url) {
		fprintf(stderr, "ctrld: need --control-url, --state and --bus (or --pub "
		    "and --rpc)\n");
		tk_opts_usage(stderr, "ctrld", SYNOPSIS, opts);
		return 2;
	}
	if (!cfg.wgd_pub_url && !standalone) {
		fprintf(stderr, "ctrld: need wgd's URLs (--bus or --wgd-pub/--wgd-rpc), "
		    "or --standalone\n");
		return 2;
	}
	const char *urls[] = { cfg.pub_url, cfg.rpc_url, cfg.wgd_pub_url,
		cfg.wgd_rpc_url, cfg.derpd_pub_url, cfg.derpd_rpc_url };
	if ((rv = tk_bus_tls_ready("ctrld", &btls, urls, 6, &cfg.tls)) != 0)
		return rv;
	if (tk_daemon_init("ctrld") != 0)
		return 1;
	rv = ctrld_new(&c, &cfg, err, sizeof(err));
	tk_secure_zero(key, sizeof(key)); /* ctrld keeps its own copy */
	if (rv != 0) {
		fprintf(stderr, "ctrld: %s\n", err[0] ? err : tk_strerror(rv));
		return rv == TK_EINVAL ? 2 : 1;
	}
	if ((rv = ctrld_start(c)) != 0) {
		fprintf(stderr, "ctrld: start: %s\n", tk_strerror(rv));
		ctrld_free(c);
		return 1;
	}
	tk_daemon_wait("ctrld");
	ctrld_free(c);
	return 0;
}
