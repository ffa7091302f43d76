/*
 * derpd: flags, signals, then the instance API.
 *
 *   derpd server [flags]   a DERP relay (cmd/derper's flags, -a -certmode
 *                          -certdir -hostname -stun-port -mesh-psk-file ...)
 *   derpd [flags]          the same (derper-style command lines)
 *
 *   derpd client [flags]   the node's DERP connections (derpd_client.h)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "derpd/derpd.h"
#include "derpd/derpd_client.h"
#include "tk/core.h"
#include "tk/err.h"
#include "tk/log.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: derpd client [flags]   the node's DERP path (derpd client --help)\n"
	    "       derpd server [flags]\n"
	    "  A DERP relay server (flags as cmd/derper's; -flag or --flag).\n"
	    "  -a ADDR                 listen address (default :443); HTTPS with\n"
	    "                          --certmode manual, else plain HTTP\n"
	    "  --certmode manual       use DIR/HOST.crt and DIR/HOST.key\n"
	    "  --certdir DIR           certificate directory\n"
	    "  --hostname HOST         TLS host name (certificate file names)\n"
	    "  --http-port N           plain HTTP port for /generate_204 and\n"
	    "                          redirects (default 80 with TLS; -1: off)\n"
	    "  --stun-port N           STUN UDP port (default 3478; -1 or --stun=false: off)\n"
	    "  --state DIR             keep the server key in DIR/derpd.db (0600)\n"
	    "  -c FILE                 or in derper's JSON config FILE (created)\n"
	    "  --mesh-psk-file FILE    mesh key (64 hex digits)\n"
	    "  --mesh-with H1,H2       mesh peers: host[:port][/dialhost] (https),\n"
	    "                          or http://host:port\n"
	    "  --verify-client-url URL POST {NodePublic,Source}, want {\"Allow\":true}\n"
	    "  --verify-client-url-fail-open[=BOOL]  admit when URL unreachable (default true)\n"
	    "  --verify-clients[=BOOL] admit only peers of the local tailscaled's tailnet\n"
	    "  --socket PATH           tailscaled's LocalAPI socket (default\n"
	    "                          /var/run/tailscale/tailscaled.sock)\n"
	    "  --allowlist FILE        only these nodekey:<hex> lines may connect\n"
	    "  --accept-connection-limit R   new connections per second (default unlimited)\n"
	    "  --accept-connection-burst N\n"
	    "  --tcp-write-timeout MS  per-write timeout, 0: none (default 2000)\n"
	    "  --rate-config FILE      per-client receive limit, JSON {\"PerClientRateLimitBytesPerSec\":N,\n"
	    "                          \"PerClientRateBurstBytes\":M}; reloaded on SIGHUP\n"
	    "  -v                      debug logging\n");
}

static bool
parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "t")) {
		*out = true;
		return true;
	}
	if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "f")) {
		*out = false;
		return true;
	}
	return false;
}

static int
parse_int(const char *flag, const char *v, long lo, long hi, long *out)
{
	char *end;
	long x = strtol(v, &end, 10);
	if (*v == '\0' || *end || x < lo || x > hi) {
		fprintf(stderr, "derpd: %s takes %ld..%ld, not '%s'\n", flag, lo,
		    hi, v);
		return -1;
	}
	*out = x;
	return 0;
}

static int
server_main(int argc, char **argv)
{
	derpd_server_config cfg = { .addr = ":443", .stun_port = 3478,
		.verify_client_url_fail_open = true };
	const char *certmode = NULL;
	long http_port = -2, n;
	bool stun = true;
	char err[512];
	int rv;

	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		char name[64];
		const char *v = NULL;
		if (a[0] != '-') {
			fprintf(stderr, "derpd: unexpected argument '%s'\n", a);
			return 2;
		}
		a += a[1] == '-' ? 2 : 1;
		const char *eq = strchr(a, '=');
		size_t nl = eq ? (size_t)(eq - a) : strlen(a);
		if (nl >= sizeof(name)) {
			fprintf(stderr, "derpd: unknown flag '%s'\n", argv[i]);
			return 2;
		}
		memcpy(name, a, nl);
		name[nl] = '\0';
		if (eq)
			v = eq + 1;
		/* boolean flags */
		if (!strcmp(name, "v")) {
			tk_log_set_level(TK_LOG_DEBUG);
			continue;
		}
		if (!strcmp(name, "h") || !strcmp(name, "help")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(name, "stun") || !strcmp(name, "verify-client-url-fail-open") ||
		    !strcmp(name, "verify-clients")) {
			bool b = true;
			if (v && !parse_bool(v, &b)) {
				fprintf(stderr, "derpd: -%s takes true or false\n", name);
				return 2;
			}
			if (!strcmp(name, "stun"))
				stun = b;
			else if (!strcmp(name, "verify-clients"))
				cfg.verify_clients = b;
			else
				cfg.verify_client_url_fail_open = b;
			continue;
		}
		if (v == NULL) {
			if (i + 1 >= argc) {
				fprintf(stderr, "derpd: -%s needs a value\n", name);
				usage(stderr);
				return 2;
			}
			v = argv[++i];
		}
		if (!strcmp(name, "a"))
			cfg.addr = v;
		else if (!strcmp(name, "certmode"))
			certmode = v;
		else if (!strcmp(name, "certdir"))
			cfg.cert_dir = v;
		else if (!strcmp(name, "hostname"))
			cfg.hostname = v;
		else if (!strcmp(name, "state"))
			cfg.state_dir = v;
		else if (!strcmp(name, "c"))
			cfg.key_file = v;
		else if (!strcmp(name, "mesh-psk-file"))
			cfg.mesh_psk_file = v;
		else if (!strcmp(name, "mesh-with"))
			cfg.mesh_with = v;
		else if (!strcmp(name, "verify-client-url"))
			cfg.verify_client_url = v[0] ? v : NULL;
		else if (!strcmp(name, "allowlist"))
			cfg.allowlist_file = v;
		else if (!strcmp(name, "socket"))
			cfg.tailscaled_socket = v;
		else if (!strcmp(name, "rate-config"))
			cfg.rate_config_file = v[0] ? v : NULL;
		else if (!strcmp(name, "http-port")) {
			if (parse_int("-http-port", v, -1, 65535, &http_port))
				return 2;
		} else if (!strcmp(name, "stun-port")) {
			if (parse_int("-stun-port", v, -1, 65535, &n))
				return 2;
			cfg.stun_port = (int)n;
		} else if (!strcmp(name, "accept-connection-limit")) {
			char *end;
			cfg.accept_limit = strtod(v, &end);
			if (*end || cfg.accept_limit < 0) {
				fprintf(stderr, "derpd: -accept-connection-limit "
				    "takes connections per second, not '%s'\n", v);
				return 2;
			}
		} else if (!strcmp(name, "accept-connection-burst")) {
			if (parse_int("-accept-connection-burst", v, 1, 1 << 20, &n))
				return 2;
			cfg.accept_burst = (int)n;
		} else if (!strcmp(name, "tcp-write-timeout")) {
			if (parse_int("-tcp-write-timeout", v, 0, 3600000, &n))
				return 2;
			cfg.write_timeout_ms = n ? (int)n : -1;
		} else {
			fprintf(stderr, "derpd: unknown flag '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (certmode && strcmp(certmode, "manual") != 0) {
		fprintf(stderr, "derpd: only --certmode manual is supported "
		    "(certificates from --certdir), not '%s'\n", certmode);
		return 2;
	}
	if (certmode && !cfg.cert_dir) {
		fprintf(stderr, "derpd: --certmode manual needs --certdir DIR\n");
		return 2;
	}
	if (!certmode)
		cfg.cert_dir = NULL;
	if (!stun)
		cfg.stun_port = -1;
	/* derper: port 80 alongside TLS by default */
	cfg.http_port = http_port == -2 ? (cfg.cert_dir ? 80 : 0) :
	    (http_port < 0 ? 0 : (int)http_port);
	if ((rv = tk_init()) != 0) {
		fprintf(stderr, "derpd: init: %s\n", tk_strerror(rv));
		return 1;
	}
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGHUP);
	sigprocmask(SIG_BLOCK, &ss, NULL); /* before any thread starts */
	signal(SIGPIPE, SIG_IGN);
	derpd_server *s;
	if ((rv = derpd_server_new(&s, &cfg, err, sizeof(err))) != 0) {
		fprintf(stderr, "derpd: %s\n", err[0] ? err : tk_strerror(rv));
		return rv == TK_EINVAL || rv == TK_ENOTSUP ? 2 : 1;
	}
	if ((rv = derpd_server_start(s)) != 0) {
		fprintf(stderr, "derpd: start: %s\n", tk_strerror(rv));
		derpd_server_free(s);
		return 1;
	}
	int sig = 0;
	for (;;) {
		sigwait(&ss, &sig);
		if (sig != SIGHUP)
			break;
		TK_INFO("derpd", "SIGHUP: reloading");
		derpd_server_reload(s);
	}
	TK_INFO("derpd", "signal %d: stopping", sig);
	derpd_server_free(s);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "client") == 0)
		return derpd_client_main(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "server") == 0)
		return server_main(argc - 2, argv + 2);
	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help"))) {
		usage(stdout);
		return 0;
	}
	if (argc >= 2 && argv[1][0] != '-') {
		fprintf(stderr, "derpd: unknown mode '%s'\n", argv[1]);
		usage(stderr);
		return 2;
	}
	return server_main(argc - 1, argv + 1); /* derper-style flags */
}
