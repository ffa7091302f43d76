/*
 * wgd daemon: flags, signals, then wgd_new/_start/_stop/_free.
 *
 *   wgd [options] [IFNAME]
 *
 * Standalone WireGuard (like wireguard-go): `wgd IFNAME` creates TUN device
 * IFNAME and serves the wg(8) UAPI on /var/run/wireguard/IFNAME.sock.
 * As a tailkit component: `wgd --bus DIR --state DIR` (see usage).
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk/core.h"
#include "tk/err.h"
#include "tk/log.h"
#include "wgd/wgd.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: wgd [options] [IFNAME]\n"
	    "  Userspace WireGuard engine.\n"
	    "  IFNAME             create TUN device IFNAME (standalone WireGuard)\n"
	    "  --uapi-dir DIR     serve the wg(8) API in DIR (default\n"
	    "                     /var/run/wireguard when IFNAME is given)\n"
	    "  --uapi-name NAME   socket DIR/NAME.sock (default IFNAME or wgd)\n"
	    "  --no-uapi          do not serve the wg(8) API\n"
	    "  --mtu N            576..65535 (default 1420)\n"
	    "  --batch N          datagrams per recvmmsg/sendmmsg, 1..128 (default 64)\n"
	    "  --port N           UDP listen port (default: the stored one, else random)\n"
	    "  --state DIR        sqlite state: node and disco keys, listen port\n"
	    "  --bus DIR          tailkit buses as ipc sockets in DIR: wgd listens on\n"
	    "                     wgd.pub/wgd.rpc (control), wgd-pkt and wgd-derp,\n"
	    "                     follows ctrld.pub/ctrld.rpc (netmap)\n"
	    "  --pub URL --rpc URL             wgd's control bus endpoints\n"
	    "  --ctrld-pub URL --ctrld-rpc URL  ctrld's (netmap, packet filter)\n"
	    "  --pkt URL          packet bus to netstackd or tk-tun (wgd listens)\n"
	    "  --derp URL         packet bus to derpd (wgd listens; with --bus:\n"
	    "                     DIR/wgd-derp): tailnet peers with a home DERP\n"
	    "                     region are reached through it\n"
	    "  -v                 debug logging\n"
	    "  URLs: " TK_BUS_URL_ACCEPTED "\n");
}

/* ipc://DIR/NAME in one of six static slots (one per bus URL). */
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
	wgd_config cfg = { 0 };
	wgd *w;
	const char *bus = NULL;
	char err[512];
	int rv, i, no_uapi = 0;
	long port = 0;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name, field)                                                     \
	if (strcmp(a, name) == 0 && v) {                                     \
		field = v;                                                   \
		i++;                                                         \
		continue;                                                    \
	}
		OPT("--uapi-dir", cfg.uapi_dir);
		OPT("--uapi-name", cfg.uapi_name);
		OPT("--state", cfg.state_dir);
		OPT("--bus", bus);
		OPT("--pub", cfg.pub_url);
		OPT("--rpc", cfg.rpc_url);
		OPT("--ctrld-pub", cfg.ctrld_pub_url);
		OPT("--ctrld-rpc", cfg.ctrld_rpc_url);
		OPT("--pkt", cfg.pkt_url);
		OPT("--derp", cfg.derp_url);
#undef OPT
		if (strcmp(a, "--mtu") == 0 && v) {
			cfg.mtu = atoi(argv[++i]);
		} else if (strcmp(a, "--batch") == 0 && v) {
			cfg.batch = atoi(argv[++i]);
		} else if (strcmp(a, "--port") == 0 && v) {
			char *end;
			port = strtol(argv[++i], &end, 10);
			if (*end || port < 1 || port > 65535) {
				fprintf(stderr, "wgd: --port takes 1..65535, not '%s'\n",
				    argv[i]);
				return 2;
			}
		} else if (strcmp(a, "--no-uapi") == 0) {
			no_uapi = 1;
		} else if (strcmp(a, "-v") == 0) {
			tk_log_set_level(TK_LOG_DEBUG);
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else {
			fprintf(stderr, "wgd: unknown option '%s' (or missing value)\n",
			    a);
			usage(stderr);
			return 2;
		}
	}
	if (i + 1 == argc)
		cfg.tun_name = argv[i];
	else if (i != argc) {
		fprintf(stderr, "wgd: at most one interface name\n");
		usage(stderr);
		return 2;
	}
	cfg.listen_port = (uint16_t)port;
	if (bus != NULL) {
		if (!cfg.pub_url)
			cfg.pub_url = join(bus, "wgd.pub");
		if (!cfg.rpc_url)
			cfg.rpc_url = join(bus, "wgd.rpc");
		if (!cfg.ctrld_pub_url)
			cfg.ctrld_pub_url = join(bus, "ctrld.pub");
		if (!cfg.ctrld_rpc_url)
			cfg.ctrld_rpc_url = join(bus, "ctrld.rpc");
		if (!cfg.pkt_url && !cfg.tun_name)
			cfg.pkt_url = join(bus, "wgd-pkt");
		if (!cfg.derp_url)
			cfg.derp_url = join(bus, "wgd-derp");
	}
	if (cfg.tun_name == NULL && cfg.pkt_url == NULL) {
		fprintf(stderr, "wgd: need a place for decrypted packets: an IFNAME "
		    "(TUN), --pkt URL or --bus DIR\n");
		usage(stderr);
		return 2;
	}
	if (!no_uapi && cfg.uapi_dir == NULL && cfg.tun_name != NULL)
		cfg.uapi_dir = "/var/run/wireguard";
	if (no_uapi)
		cfg.uapi_dir = NULL;
	/* Packet-bus batches are 64 KiB nng messages, allocated on one thread
	 * and freed on another (nng's): keep freed memory rather than trimming
	 * it back to the kernel and faulting it in again for the next batch. */
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	if ((rv = tk_init()) != 0) {
		fprintf(stderr, "wgd: init: %s\n", tk_strerror(rv));
		return 1;
	}
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigprocmask(SIG_BLOCK, &ss, NULL); /* before any thread starts */
	signal(SIGPIPE, SIG_IGN);
	if ((rv = wgd_new(&w, &cfg, err, sizeof(err))) != 0) {
		fprintf(stderr, "wgd: %s\n", err[0] ? err : tk_strerror(rv));
		return rv == TK_EINVAL ? 2 : 1;
	}
	if ((rv = wgd_start(w)) != 0) {
		fprintf(stderr, "wgd: start: %s\n", tk_strerror(rv));
		wgd_free(w);
		return 1;
	}
	int sig = 0;
	sigwait(&ss, &sig);
	TK_INFO("wgd", "signal %d: stopping", sig);
	wgd_free(w);
	return 0;
}
