/*
 * tailkitd: the whole node in one process (tk/node.h): ctrld, wgd, derpd
 * (client) and netstackd on inproc:// buses, or ipc:// buses in --bus DIR
 * so the debugging tools can attach.  Applications use netstackd's local
 * API socket (netstackd/README.md).
 *
 *   tailkitd --control-url URL --state DIR [--authkey KEY | --authkey-file F]
 *            [--hostname NAME] [--bus DIR] [--api PATH] [--socket PATH] [options]
 *
 * --socket serves a subset of Go's LocalAPI (tk/localapi.h): Go's
 * `tailscale --socket=PATH status` works against it.
 */
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "tk/daemon.h"
#include "tk/err.h"
#include "tk/mem.h"
#include "tk/localapi.h"
#include "tk/node.h"
#include "tk/node_config.h"

#define SYNOPSIS "--control-url URL --state DIR [options]\n" \
	"  A tailnet node in one process: control client, WireGuard, DERP and a\n" \
	"  userspace TCP/IP stack; applications connect through --api."

int
main(int argc, char **argv)
{
	tk_node_config cfg = { 0 };
	const char *keyfile = NULL, *sock = NULL, *config = NULL;
	tk_node_file file = { 0 };
	char sockbuf[600];
	tk_localapi *la = NULL;
	static char key[512];
	bool ephemeral = false, derp_http = false, no_netstack = false;
	long port = 0, home = 0;
	char err[600];
	tk_node *n;
	int rv;
	const tk_opt opts[] = {
		{ "--config", TK_OPT_STR, &config, .metavar = "FILE",
		    .help = "tailscaled's config file (ipn.ConfigVAlpha JSON): "
		    "ServerURL, AuthKey (or file:PATH), Hostname" },
		{ "--control-url", TK_OPT_STR, &cfg.control_url, .metavar = "URL",
		    .help = "http://host:port or https://host[:port]" },
		{ "--state", TK_OPT_STR, &cfg.state_dir, .metavar = "DIR",
		    .help = "state: DIR/ctrld, DIR/wgd (sqlite, 0700)" },
		TK_OPTS_LOGIN(&cfg.auth_key, &keyfile, &cfg.hostname,
		    &cfg.advertise_tags, &ephemeral),
		{ "--ca-file", TK_OPT_STR, &cfg.ca_file, .metavar = "PEM",
		    .help = "a CA trusted besides the system's (control, DERP)" },
		{ "--bus", TK_OPT_STR, &cfg.bus_dir, .metavar = "DIR",
		    .help = "ipc buses in DIR (default: in-process only)" },
		{ "--api", TK_OPT_STR, &cfg.api_path, .metavar = "PATH",
		    .help = "netstackd's local API socket (default: "
		    "<bus or state dir>/netstackd.sock)" },
		{ "--socket", TK_OPT_STR, &sock, .metavar = "PATH",
		    .help = "LocalAPI socket, Go's tailscale CLI speaks it (default "
		    "<state>/tailkitd.sock)" },
		{ "--no-netstack", TK_OPT_FLAG, &no_netstack,
		    .help = "no netstackd: tk-tun or another adapter dials wgd-pkt "
		    "(needs --bus)" },
		{ "--port", TK_OPT_INT, &port, 1, 65535,
		    .help = "WireGuard UDP port (default: the stored one, else random)" },
		{ "--derp-http", TK_OPT_FLAG, &derp_http,
		    .help = "plain HTTP to DERP servers (tests)" },
		{ "--home-region", TK_OPT_INT, &home, 1, 1000000,
		    .help = "pin the DERP home region" },
		{ NULL },
	};

	if ((rv = tk_opts_parse("tailkitd", SYNOPSIS, opts, argc, argv, 1)) >= 0)
		return rv;
	if (config != NULL) {
		if (cfg.control_url || cfg.auth_key || keyfile || cfg.hostname) {
			fprintf(stderr, "tailkitd: --config sets the control URL, auth "
			    "key and hostname: leave out --control-url, --authkey, "
			    "--authkey-file and --hostname\n");
			return 2;
		}
		if ((rv = tk_node_config_load(&file, config, err, sizeof(err))) != 0) {
			fprintf(stderr, "tailkitd: %s\n", err);
			return 2;
		}
		cfg.control_url = file.server_url;
		cfg.auth_key = file.auth_key;
		cfg.hostname = file.hostname;
		/* ipn/conf.go: Enabled and AcceptDNS default to true, Locked
		 * too (ipnlocal isConfigLocked_Locked) */
		cfg.start_down = file.enabled == 0;
		cfg.no_accept_dns = file.accept_dns == 0;
		cfg.prefs_locked = file.locked != 0;
	}
	if (!cfg.control_url || !cfg.state_dir) {
		fprintf(stderr, "tailkitd: need --control-url and --state\n");
		tk_opts_usage(stderr, "tailkitd", SYNOPSIS, opts);
		return 2;
	}
	if (no_netstack && !cfg.bus_dir) {
		fprintf(stderr, "tailkitd: --no-netstack needs --bus DIR (the adapter "
		    "dials DIR/wgd-pkt)\n");
		return 2;
	}
	if (keyfile != NULL) {
		if (tk_read_secret_line("tailkitd", keyfile, key, sizeof(key)) != 0)
			return 2;
		cfg.auth_key = key[0] ? key : NULL; /* empty: interactive */
	}
	cfg.ephemeral = ephemeral;
	cfg.derp_plain_http = derp_http;
	cfg.no_netstack = no_netstack;
	cfg.listen_port = (uint16_t)port;
	cfg.home_region = (int)home;
	/* Each component thread would get a glibc malloc arena of its own
	 * (up to 8 per core), each keeping its own free pages: two arenas
	 * take ~0.8 MiB off an idle node's RSS (111 peers: 17.3 -> 16.4 MiB,
	 * tools/bench/node.py); small allocations stay thread-local in
	 * glibc's tcache.  Before any thread starts. */
	mallopt(M_ARENA_MAX, 2);
	if (tk_daemon_init("tailkitd") != 0)
		return 1;
	rv = tk_node_new(&n, &cfg, err, sizeof(err));
	tk_secure_zero(key, sizeof(key)); /* ctrld keeps its own copy */
	tk_node_config_fini(&file);
	if (rv != 0) {
		fprintf(stderr, "tailkitd: %s\n", err);
		return rv == TK_EINVAL ? 2 : 1;
	}
	if ((rv = tk_node_start(n, err, sizeof(err))) != 0) {
		fprintf(stderr, "tailkitd: start: %s\n", err);
		tk_node_free(n);
		return 1;
	}
	if (sock == NULL) {
		snprintf(sockbuf, sizeof(sockbuf), "%s/tailkitd.sock", cfg.state_dir);
		sock = sockbuf;
	}
	if ((rv = tk_localapi_new(&la, n, sock, err, sizeof(err))) != 0) {
		fprintf(stderr, "tailkitd: %s\n", err);
		tk_node_free(n);
		return 1;
	}
	tk_daemon_wait("tailkitd");
	tk_localapi_free(la);
	tk_node_free(n);
	return 0;
}
