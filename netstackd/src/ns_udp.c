/*
 * UDP: an lwIP udp_pcb <-> a SOCK_SEQPACKET socketpair, one message per
 * datagram, each prefixed with the NS_UDP_HDR_LEN header (ns_api.h) naming
 * the peer.  Datagrams the application does not read in time are dropped
 * and counted, as UDP would; the socket lives until the application closes
 * its end.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ns_int.h"
#include "tk/err.h"
#include "tk/mem.h"

static void
udp_free(nsi_udp *u)
{
	netstackd *ns = u->ns;

	udp_remove(u->pcb);
	tk_loop_fd_del(ns->loop, u->fd);
	close(u->fd);
	if (u->prev)
		u->prev->next = u->next;
	else
		ns->udps = u->next;
	if (u->next)
		u->next->prev = u->prev;
	tk_free(u);
}

static void
on_udp(void *arg, struct udp_pcb *pcb, struct pbuf *p, const ip_addr_t *addr,
    u16_t port)
{
	nsi_udp *u = arg;
	netstackd *ns = u->ns;
	ns_api_addr from;

	(void)pcb;
	if (p->tot_len > NS_UDP_PAYLOAD_MAX) {
		pbuf_free(p);
		return;
	}
	nsi_addr_from_ip(&from, addr, port);
	ns_udp_hdr_encode(ns->io, &from);
	pbuf_copy_partial(p, ns->io + NS_UDP_HDR_LEN, p->tot_len, 0);
	if (send(u->fd, ns->io, NS_UDP_HDR_LEN + p->tot_len,
		MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		ns->st.udp_dropped++;
	pbuf_free(p);
}

static void
udp_fd(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	nsi_udp *u = arg;
	netstackd *ns = u->ns;

	(void)loop;
	for (int i = 0; i < 64; i++) {
		ssize_t r = recv(fd, ns->io, NS_UDP_HDR_LEN + NS_UDP_PAYLOAD_MAX,
		    MSG_DONTWAIT);
		ns_api_addr to;
		ip_addr_t ip;
		struct pbuf *p;

		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
			udp_free(u);
			return;
		}
		if (r < 0)
			break;
		if (ns_udp_hdr_decode(ns->io, (size_t)r, &to) != 0) {
			ns->st.udp_dropped++;
			continue;
		}
		nsi_ip_from_addr(&ip, &to);
		p = pbuf_alloc(PBUF_TRANSPORT, (u16_t)(r - NS_UDP_HDR_LEN), PBUF_RAM);
		if (p == NULL) {
			ns->st.udp_dropped++;
			continue;
		}
		memcpy(p->payload, ns->io + NS_UDP_HDR_LEN, (size_t)r - NS_UDP_HDR_LEN);
		if (udp_sendto(u->pcb, p, &ip, to.port) != ERR_OK)
			ns->st.udp_dropped++;
		pbuf_free(p);
	}
	if (ev & TK_LOOP_ERROR)
		udp_free(u);
}

/* NS_ST_* */
int
nsi_udp_bind(netstackd *ns, uint16_t port, int *app_fd, uint16_t *bound)
{
	nsi_udp *u;
	int sv[2];

	if ((u = tk_calloc(1, sizeof(*u))) == NULL)
		return NS_ST_ENOMEM;
	if ((u->pcb = udp_new_ip_type(IPADDR_TYPE_ANY)) == NULL) {
		tk_free(u);
		return NS_ST_ENOMEM;
	}
	if (udp_bind(u->pcb, IP_ANY_TYPE, port) != ERR_OK) {
		udp_remove(u->pcb);
		tk_free(u);
		return NS_ST_EADDRINUSE;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		udp_remove(u->pcb);
		tk_free(u);
		return NS_ST_ENOMEM;
	}
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
	u->ns = ns;
	u->fd = sv[0];
	if (tk_loop_fd_add(ns->loop, u->fd, TK_LOOP_READ, udp_fd, u) != 0) {
		close(sv[0]);
		close(sv[1]);
		udp_remove(u->pcb);
		tk_free(u);
		return NS_ST_ENOMEM;
	}
	udp_recv(u->pcb, on_udp, u);
	u->next = ns->udps;
	if (ns->udps)
		ns->udps->prev = u;
	ns->udps = u;
	*app_fd = sv[1];
	*bound = u->pcb->local_port;
	return NS_ST_OK;
}

void
nsi_udp_free_all(netstackd *ns)
{
	while (ns->udps != NULL)
		udp_free(ns->udps);
}
