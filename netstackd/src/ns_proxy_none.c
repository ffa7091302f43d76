/*
 * The loopback proxies left out (cmake -DTK_PROXIES=OFF): what netstackd
 * links instead of ns_proxy_svc.c in a build for a device that needs no
 * SOCKS5 or HTTP CONNECT proxy.  The choice is made by the link
 * (netstackd/CMakeLists.txt), not by conditionals in the code: asking for
 * a proxy in such a build is a clear configuration error, and nothing of
 * the proxies (ns_proxy_svc.c, the SOCKS5 and HTTP CONNECT parsers) ends
 * up in the binary.
 */
#include <stdio.h>

#include "ns_int.h"
#include "ns_svc.h"
#include "tk/err.h"

int
nsi_proxy_cfg_check(const ns_config *cfg, char *err, size_t errlen)
{
	/* credentials alone serve only adopted connections, refused below */
	if (cfg->socks5_addr == NULL && cfg->http_proxy_addr == NULL)
		return 0;
	snprintf(err, errlen, "%s: this build has no loopback proxies (built "
	    "with -DTK_PROXIES=OFF); accepted: no --socks5 or --http-proxy",
	    cfg->socks5_addr ? "--socks5" : "--http-proxy");
	return TK_ENOTSUP;
}

int
nsi_proxy_svc_new(netstackd *ns, const ns_config *cfg, nsi_proxy_svc **out,
    char *err, size_t errlen)
{
	(void)ns;
	*out = NULL;
	return nsi_proxy_cfg_check(cfg, err, errlen);
}

void
nsi_proxy_svc_free(nsi_proxy_svc *p)
{
	(void)p; /* never made */
}

void
nsi_proxy_svc_counters(nsi_proxy_svc *p, tk_status_counters *cs)
{
	(void)p, (void)cs; /* no proxy counters in this build */
}

int
ns_proxy_adopt_socks5(netstackd *ns, int fd)
{
	(void)ns, (void)fd; /* fd stays the caller's */
	return TK_ENOTSUP;
}
