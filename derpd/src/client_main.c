/*
 * `derpd client`: flags, signals, then derpd_client_new/_start/_stop/_free.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "derpd/derpd_client.h"
#include "tk/bus_topics.h"
#include "tk/core.h"
#include "tk/err.h"
#include "tk/log.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: derpd client (--bus DIR | URL options) [options]\n"
	    "  The node's DERP connections: carries wgd's datagrams to and from\n"
	    "  DERP regions (ctrld's DERP map), publishes topic \"derp\".\n"
	    "  --bus DIR          ipc buses in DIR: listens on derpd.pub/derpd.rpc,\n"
	    "                     follows ctrld.pub/ctrld.rpc and wgd.pub/wgd.rpc,\n"
	    "                     dials wgd-derp\n"
	    "  --pub URL --rpc URL              derpd's own endpoints\n"
	    "  --ctrld-pub URL --ctrld-rpc URL  ctrld's (netmap: DERP map)\n"
	    "  --wgd-pub URL --wgd-rpc URL      wgd's (keys; derp_seal/derp_open)\n"
	    "  --pkt URL          wgd's DERP packet bus\n"
	    "  --derp-http        plain HTTP to DERP servers (tests; Go's\n"
	    "                     TS_DEBUG_USE_DERP_HTTP)\n"
	    "  --ca-file FILE     also trust this CA for DERP servers\n"
	    "  --home-region N    pin the home region (default: the lowest\n"
	    "                     connect latency, kept while healthy)\n"
	    "  -v                 debug logging\n"
	    "  URLs: " TK_BUS_URL_ACCEPTED "\n");
}

static const char *
join(char buf[512], const char *dir, const char *name)
{
	snprintf(buf, 512, "ipc://%s/%s", dir, name);
	return buf;
}

int
derpd_client_main(int argc, char **argv)
{
	derpd_client_config cfg = { 0 };
	derpd_client *c;
	const char *bus = NULL;
	char err[512], u[7][512];
	int rv, i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		const char **slot = NULL;
		if (strcmp(a, "--bus") == 0)
			slot = &bus;
		else if (strcmp(a, "--pub") == 0)
			slot = &cfg.pub_url;
		else if (strcmp(a, "--rpc") == 0)
			slot = &cfg.rpc_url;
		else if (strcmp(a, "--ctrld-pub") == 0)
			slot = &cfg.ctrld_pub_url;
		else if (strcmp(a, "--ctrld-rpc") == 0)
			slot = &cfg.ctrld_rpc_url;
		else if (strcmp(a, "--wgd-pub") == 0)
			slot = &cfg.wgd_pub_url;
		else if (strcmp(a, "--wgd-rpc") == 0)
			slot = &cfg.wgd_rpc_url;
		else if (strcmp(a, "--pkt") == 0)
			slot = &cfg.pkt_url;
		else if (strcmp(a, "--ca-file") == 0)
			slot = &cfg.ca_file;
		if (slot) {
			if (!v) {
				fprintf(stderr, "derpd client: %s needs a value\n", a);
				return 2;
			}
			*slot = v;
			i++;
		} else if (strcmp(a, "--home-region") == 0) {
			char *end;
			long r = v ? strtol(v, &end, 10) : 0;
			if (!v || *end || r < 1 || r > 65535) {
				fprintf(stderr, "derpd client: --home-region takes a "
				    "region id 1..65535\n");
				return 2;
			}
			cfg.home_region = (int)r;
			i++;
		} else if (strcmp(a, "--derp-http") == 0) {
			cfg.plain_http = true;
		} else if (strcmp(a, "-v") == 0) {
			tk_log_set_level(TK_LOG_DEBUG);
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "derpd client: unknown option '%s'\n", a);
			usage(stderr);
			return 2;
		}
	}
	if (bus) {
		if (!cfg.pub_url)
			cfg.pub_url = join(u[0], bus, TK_BUS_DERPD_PUB);
		if (!cfg.rpc_url)
			cfg.rpc_url = join(u[1], bus, TK_BUS_DERPD_RPC);
		if (!cfg.ctrld_pub_url)
			cfg.ctrld_pub_url = join(u[2], bus, TK_BUS_CTRLD_PUB);
		if (!cfg.ctrld_rpc_url)
			cfg.ctrld_rpc_url = join(u[3], bus, TK_BUS_CTRLD_RPC);
		if (!cfg.wgd_pub_url)
			cfg.wgd_pub_url = join(u[4], bus, TK_BUS_WGD_PUB);
		if (!cfg.wgd_rpc_url)
			cfg.wgd_rpc_url = join(u[5], bus, TK_BUS_WGD_RPC);
		if (!cfg.pkt_url)
			cfg.pkt_url = join(u[6], bus, TK_BUS_WGD_DERP);
	}
	if ((rv = tk_init()) != 0) {
		fprintf(stderr, "derpd: init: %s\n", tk_strerror(rv));
		return 1;
	}
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);
	if ((rv = derpd_client_new(&c, &cfg, err, sizeof(err))) != 0) {
		fprintf(stderr, "derpd client: %s\n", err[0] ? err : tk_strerror(rv));
		return rv == TK_EINVAL ? 2 : 1;
	}
	if ((rv = derpd_client_start(c)) != 0) {
		fprintf(stderr, "derpd client: start: %s\n", tk_strerror(rv));
		derpd_client_free(c);
		return 1;
	}
	int sig = 0;
	sigwait(&ss, &sig);
	TK_INFO("derpd", "signal %d: stopping", sig);
	derpd_client_free(c);
	return 0;
}
