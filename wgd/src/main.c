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

#include "tk/bus_topics.h"
#include "tk/daemon.h"
#include "tk/err.h"
#include "tk/log.h"
#include "wgd/wgd.h"

#define SYNOPSIS "[options] [IFNAME]\n  Userspace WireGuard engine: standalone " \
	"(IFNAME: a TUN device and wg(8)) or a tailkit component (--bus DIR --state DIR)."

int
main(int argc, char **argv)
{
	wgd_config cfg = { 0 };
	wgd *w;
	const char *bus = NULL;
	char err[512];
	int rv;
	bool no_uapi = false;
	long port = 0, mtu = 0, batch = 0;
	static tk_bus_tls btls;
	const tk_opt opts[] = {
		{ "IFNAME", TK_OPT_ARG, &cfg.tun_name,
		    .help = "create TUN device IFNAME (standalone WireGuard)" },
		{ "--uapi-dir", TK_OPT_STR, &cfg.uapi_dir, .metavar = "DIR",
		    .help = "serve wg(8)'s API in DIR (default /var/run/wireguard "
		    "with IFNAME)" },
		{ "--uapi-name", TK_OPT_STR, &cfg.uapi_name, .metavar = "NAME",
		    .help = "socket DIR/NAME.sock (default IFNAME or wgd)" },
		{ "--no-uapi", TK_OPT_FLAG, &no_uapi, .help = "no wg(8) API" },
		{ "--mtu", TK_OPT_INT, &mtu, 576, 65535, .help = "default 1420" },
		{ "--batch", TK_OPT_INT, &batch, 1, 128,
		    .help = "datagrams per recvmmsg/sendmmsg (default 64)" },
		{ "--port", TK_OPT_INT, &port, 1, 65535,
		    .help = "UDP listen port (default: the stored one, else random)" },
		{ "--state", TK_OPT_STR, &cfg.state_dir, .metavar = "DIR",
		    .help = "sqlite state: node and disco keys, listen port" },
		{ "--bus", TK_OPT_STR, &bus, .metavar = "DIR", .help = "ipc buses in "
		    "DIR: wgd.pub/wgd.rpc, wgd-pkt, wgd-derp; follows ctrld's" },
		{ "--pub", TK_OPT_STR, &cfg.pub_url, .metavar = "URL",
		    .help = "our publisher (keys, endpoints)" },
		{ "--rpc", TK_OPT_STR, &cfg.rpc_url, .metavar = "URL",
		    .help = "our req/rep (status, rotate_node_key, derp_seal/open)" },
		{ "--ctrld-pub", TK_OPT_STR, &cfg.ctrld_pub_url, .metavar = "URL",
		    .help = "ctrld's publisher (netmap, packet filter)" },
		{ "--ctrld-rpc", TK_OPT_STR, &cfg.ctrld_rpc_url, .metavar = "URL",
		    .help = "ctrld's req/rep (snapshots)" },
		{ "--pkt", TK_OPT_STR, &cfg.pkt_url, .metavar = "URL",
		    .help = "packet bus to netstackd or tk-tun (wgd listens)" },
		{ "--derp", TK_OPT_STR, &cfg.derp_url, .metavar = "URL",
		    .help = "packet bus to derpd (wgd listens)" },
		TK_OPTS_BUS_TLS(btls),
		{ NULL },
	};

	if ((rv = tk_opts_parse("wgd", SYNOPSIS, opts, argc, argv, 1)) >= 0)
		return rv;
	cfg.listen_port = (uint16_t)port;
	cfg.mtu = (int)mtu;
	cfg.batch = (int)batch;
	if ((rv = tk_bus_url_default(&cfg.pub_url, bus, TK_BUS_WGD_PUB)) != 0 ||
	    (rv = tk_bus_url_default(&cfg.rpc_url, bus, TK_BUS_WGD_RPC)) != 0 ||
	    (rv = tk_bus_url_default(&cfg.ctrld_pub_url, bus, TK_BUS_CTRLD_PUB)) != 0 ||
	    (rv = tk_bus_url_default(&cfg.ctrld_rpc_url, bus, TK_BUS_CTRLD_RPC)) != 0 ||
	    (!cfg.tun_name &&
		(rv = tk_bus_url_default(&cfg.pkt_url, bus, TK_BUS_WGD_PKT)) != 0) ||
	    (rv = tk_bus_url_default(&cfg.derp_url, bus, TK_BUS_WGD_DERP)) != 0) {
		fprintf(stderr, "wgd: --bus %s: %s\n", bus, tk_strerror(rv));
		return 2;
	}
	const char *urls[] = { cfg.pub_url, cfg.rpc_url, cfg.ctrld_pub_url,
		cfg.ctrld_rpc_url, cfg.pkt_url, cfg.derp_url };
	if ((rv = tk_bus_tls_ready("wgd", &btls, urls, 6, &cfg.tls)) != 0)
		return rv;
	if (cfg.tun_name == NULL && cfg.pkt_url == NULL) {
		fprintf(stderr, "wgd: need a place for decrypted packets: an IFNAME "
		    "(TUN), --pkt URL or --bus DIR\n");
		tk_opts_usage(stderr, "wgd", SYNOPSIS, opts);
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
	if (tk_daemon_init("wgd") != 0)
		return 1;
	if ((rv = wgd_new(&w, &cfg, err, sizeof(err))) != 0) {
		fprintf(stderr, "wgd: %s\n", err[0] ? err : tk_strerror(rv));
		return rv == TK_EINVAL ? 2 : 1;
	}
	if ((rv = wgd_start(w)) != 0) {
		fprintf(stderr, "wgd: start: %s\n", tk_strerror(rv));
		wgd_free(w);
		return 1;
	}
	tk_daemon_wait("wgd");
	wgd_free(w);
	return 0;
}
