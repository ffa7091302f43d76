/*
 * ctrld daemon: flags, signals, then ctrld_new/_start/_stop/_free.
 *
 *   ctrld --control-url URL --state DIR (--bus DIR | --pub URL --rpc URL
 *         [--wgd-pub URL --wgd-rpc URL]) [--authkey KEY | --authkey-file F]
 *         [--hostname NAME] [--ephemeral] [--standalone] [-v]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctrld/ctrld.h"
#include "tk/bus_topics.h"
#include "tk/core.h"
#include "tk/err.h"
#include "tk/log.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: ctrld --control-url URL --state DIR [options]\n"
	    "  Registers this node with a control server (ts2021) and publishes the\n"
	    "  netmap on the control bus.\n"
	    "  --control-url URL   http://host:port or https://host[:port]\n"
	    "  --ca-file PEM       https: a CA trusted besides the system's\n"
	    "  --state DIR         sqlite state: machine key, registration, last netmap\n"
	    "  --bus DIR           ipc buses in DIR: publishes ctrld.pub/ctrld.rpc,\n"
	    "                      follows wgd.pub/wgd.rpc for the node key\n"
	    "  --pub URL --rpc URL           ctrld's publisher and rpc server\n"
	    "  --wgd-pub URL --wgd-rpc URL   wgd's (node and disco public keys)\n"
	    "  --derpd-pub URL --derpd-rpc URL  derpd's (home DERP region, reported\n"
	    "                     to control as Hostinfo.NetInfo)\n"
	    "  --standalone        no wgd: keep a node key of our own (debugging)\n"
	    "  --authkey KEY | --authkey-file FILE   pre-auth key (else interactive\n"
	    "                      login: the URL is in the status)\n"
	    "  --hostname NAME     Hostinfo.Hostname (default: the host name)\n"
	    "  --advertise-tags T  Hostinfo.RequestTags, comma-separated (tag:a,tag:b)\n"
	    "  --ephemeral         register an ephemeral node\n"
	    "  -v                  debug logging\n");
}

static const char *
join(const char *dir, const char *name)
{
	static char urls[6][512];
	static int next;
	char *s = urls[next++ % 6];

	snprintf(s, sizeof(urls[0]), "ipc://%s/%s", dir, name);
	return s;
}

int
main(int argc, char **argv)
{
	ctrld_config cfg = { 0 };
	const char *bus = NULL, *keyfile = NULL;
	static char key[512];
	bool standalone = false;
	char err[512];
	ctrld *c;
	int i, rv;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name, field)                                                     \
	if (strcmp(a, name) == 0 && v) {                                     \
		field = v;                                                   \
		i++;                                                         \
		continue;                                                    \
	}
		OPT("--control-url", cfg.control_url);
		OPT("--state", cfg.state_dir);
		OPT("--bus", bus);
		OPT("--pub", cfg.pub_url);
		OPT("--rpc", cfg.rpc_url);
		OPT("--wgd-pub", cfg.wgd_pub_url);
		OPT("--wgd-rpc", cfg.wgd_rpc_url);
		OPT("--derpd-pub", cfg.derpd_pub_url);
		OPT("--derpd-rpc", cfg.derpd_rpc_url);
		OPT("--authkey", cfg.auth_key);
		OPT("--authkey-file", keyfile);
		OPT("--hostname", cfg.hostname);
		OPT("--advertise-tags", cfg.advertise_tags);
		OPT("--ca-file", cfg.ca_file);
#undef OPT
		if (strcmp(a, "--ephemeral") == 0)
			cfg.ephemeral = true;
		else if (strcmp(a, "--standalone") == 0)
			standalone = true;
		else if (strcmp(a, "-v") == 0)
			tk_log_set_level(TK_LOG_DEBUG);
		else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "ctrld: unknown option '%s' (or missing value)\n", a);
			usage(stderr);
			return 2;
		}
	}
	if (keyfile != NULL) {
		FILE *f = fopen(keyfile, "r");
		if (f != NULL) /* no stdio buffer left holding the key */
			setvbuf(f, NULL, _IONBF, 0);
		if (f == NULL || fgets(key, sizeof(key), f) == NULL) {
			fprintf(stderr, "ctrld: cannot read the auth key from %s\n", keyfile);
			return 2;
		}
		fclose(f);
		key[strcspn(key, "\r\n")] = '\0';
		cfg.auth_key = key;
	}
	if (bus != NULL) {
		if (!cfg.pub_url)
			cfg.pub_url = join(bus, TK_BUS_CTRLD_PUB);
		if (!cfg.rpc_url)
			cfg.rpc_url = join(bus, TK_BUS_CTRLD_RPC);
		if (!standalone && !cfg.wgd_pub_url) {
			cfg.wgd_pub_url = join(bus, TK_BUS_WGD_PUB);
			cfg.wgd_rpc_url = join(bus, TK_BUS_WGD_RPC);
		}
		if (!standalone && !cfg.derpd_pub_url) {
			cfg.derpd_pub_url = join(bus, TK_BUS_DERPD_PUB);
			cfg.derpd_rpc_url = join(bus, TK_BUS_DERPD_RPC);
		}
	}
	if (standalone)
		cfg.wgd_pub_url = cfg.wgd_rpc_url = NULL;
	if (!cfg.control_url || !cfg.state_dir || !cfg.pub_url || !cfg.rpc_url) {
		fprintf(stderr, "ctrld: need --control-url, --state and --bus (or --pub "
		    "and --rpc)\n");
		usage(stderr);
		return 2;
	}
	if (!cfg.wgd_pub_url && !standalone) {
		fprintf(stderr, "ctrld: need wgd's URLs (--bus or --wgd-pub/--wgd-rpc), "
		    "or --standalone\n");
		return 2;
	}
	if ((rv = tk_init()) != 0)
		return 1;
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);
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
	int sig = 0;
	sigwait(&ss, &sig);
	TK_INFO("ctrld", "signal %d: stopping", sig);
	ctrld_free(c);
	return 0;
}
