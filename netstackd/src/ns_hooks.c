/*
 * Where in-process services attach: MagicDNS at 100.100.100.100:53 and
 * fd7a:115c:a1e0::53 (UDP and TCP, handed to the resolver registered with
 * ns_set_resolver), and, later, the loopback proxy listeners (SOCKS5, HTTP
 * CONNECT), which dial the tailnet through ns_dial.
 */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "ns_int.h"
#include "tk/err.h"

static void
dns_udp_in(void *arg, struct udp_pcb *pcb, struct pbuf *p,
    const ip_addr_t *addr, u16_t port)
{
	netstackd *ns = arg;
	ns_api_addr from;
	size_t rlen = 0;
	struct pbuf *r;
	static uint8_t q[65535], resp[65535];

	if (!ns->have_resolver || ns->resolver.udp_query == NULL) {
		pbuf_free(p);
		return;
	}
	nsi_addr_from_ip(&from, addr, port);
	pbuf_copy_partial(p, q, p->tot_len, 0);
	if (ns->resolver.udp_query(ns->resolver.arg, &from, q, p->tot_len, resp,
		sizeof(resp), &rlen) == 0 && rlen > 0 && rlen <= sizeof(resp) &&
	    (r = pbuf_alloc(PBUF_TRANSPORT, (u16_t)rlen, PBUF_RAM)) != NULL) {
		memcpy(r->payload, resp, rlen);
		/* from the MagicDNS netif: lwIP refuses a source address that
		 * the routed (default) netif does not hold */
		udp_sendto_if(pcb, r, addr, port, &ns->nif100);
		pbuf_free(r);
	}
	pbuf_free(p);
}

static err_t
dns_tcp_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
	netstackd *ns = arg;
	ns_api_peer peer;
	int fd;

	if (err != ERR_OK || pcb == NULL)
		return ERR_VAL;
	if (!ns->have_resolver || ns->resolver.tcp_conn == NULL ||
	    ns->nconns >= ns->max_conns || nsi_conn_new(ns, pcb, &fd) != 0) {
		tcp_abort(pcb);
		return ERR_ABRT;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	nsi_peer_info(ns, pcb, &peer);
	ns->resolver.tcp_conn(ns->resolver.arg, fd, &peer);
	return ERR_OK;
}

/* UDP and TCP pcbs for one MagicDNS service address. */
static int
dns_bind(netstackd *ns, const ip_addr_t *a, struct udp_pcb **u,
    struct tcp_pcb **t)
{
	struct tcp_pcb *pcb;

	if ((*u = udp_new_ip_type(IP_GET_TYPE(a))) == NULL ||
	    udp_bind(*u, a, 53) != ERR_OK)
		return TK_ENOMEM;
	udp_recv(*u, dns_udp_in, ns);
	if ((pcb = tcp_new_ip_type(IP_GET_TYPE(a))) == NULL)
		return TK_ENOMEM;
	if (tcp_bind(pcb, a, 53) != ERR_OK || (*t = tcp_listen(pcb)) == NULL) {
		tcp_abort(pcb);
		return TK_ENOMEM;
	}
	tcp_arg(*t, ns);
	tcp_accept(*t, dns_tcp_accept);
	return 0;
}

/*
 * 100.100.100.100:53 and [fd7a:115c:a1e0::53]:53, bound to the exact
 * addresses, so the node's own addresses keep port 53 for applications.
 */
int
nsi_dns_start(netstackd *ns)
{
	ip_addr_t a;
	int rv;

	ip_addr_copy_from_ip4(a, *netif_ip4_addr(&ns->nif100));
	if ((rv = dns_bind(ns, &a, &ns->dns_udp[0], &ns->dns_tcp[0])) != 0)
		return rv;
	ip_addr_copy_from_ip6(a, *netif_ip6_addr(&ns->nif100, 0));
	return dns_bind(ns, &a, &ns->dns_udp[1], &ns->dns_tcp[1]);
}

void
nsi_dns_stop(netstackd *ns)
{
	for (int i = 0; i < 2; i++) {
		if (ns->dns_udp[i] != NULL)
			udp_remove(ns->dns_udp[i]);
		if (ns->dns_tcp[i] != NULL)
			tcp_close(ns->dns_tcp[i]);
		ns->dns_udp[i] = NULL;
		ns->dns_tcp[i] = NULL;
	}
}
