/*
 * For test_embed.py: a program on libtailscale's API only (tailscale.h):
 * up, then tailscale_loopback; prints "loopback ADDR PROXY_CRED
 * LOCALAPI_CRED" and "ips IPS", serves until stdin closes.  Settings from
 * the environment as libtailscale's (TS_AUTHKEY, TS_CONTROL_URL).
 */
#include <stdio.h>
#include <unistd.h>

#include "tailscale.h"

int
main(int argc, char **argv)
{
	char addr[64], pc[33], lc[33], ips[256], msg[256], b[64];
	tailscale ts = tailscale_new();

	if (argc < 3 || tailscale_set_dir(ts, argv[1]) != 0 ||
	    tailscale_set_hostname(ts, argv[2]) != 0 || tailscale_up(ts) != 0 ||
	    tailscale_loopback(ts, addr, sizeof(addr), pc, lc) != 0 ||
	    tailscale_getips(ts, ips, sizeof(ips)) != 0) {
		tailscale_errmsg(ts, msg, sizeof(msg));
		fprintf(stderr, "loopback_probe: %s\n", msg);
		return 1;
	}
	printf("loopback %s %s %s\nips %s\n", addr, pc, lc, ips);
	fflush(stdout);
	while (read(0, b, sizeof(b)) > 0)
		;
	return tailscale_close(ts) == 0 ? 0 : 1;
}
