/*
 * The wgd instance: one tk_wg device, its UDP socket (recvmmsg/sendmmsg),
 * its timers, and the glue to the decrypted side (TUN or packet bus), the
 * UAPI server and the buses.  All on one loop thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "tk/core.h"
#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"
#include "disco.h"
#include "stun.h"
#include "wgd_int.h"

/* --- UDP ----------------------------------------------------------------- */

/* Segments per UDP GSO message (the kernel's UDP_MAX_SEGMENTS is 64 or
 * more) and its payload limit. */
#define GSO_MAX_SEGS  64
#define GSO_MAX_BYTES 65000

static bool
same_dest(const wgd *w, unsigned a, unsigned b)
{
	return w->tx_msg[a].msg_hdr.msg_namelen == w->tx_msg[b].msg_hdr.msg_namelen &&
	    memcmp(&w->tx_addr[a], &w->tx_addr[b],
		w->tx_msg[a].msg_hdr.msg_namelen) == 0;
}

/*
 * Sends the batch as UDP GSO messages: each run of datagrams to one address
 * whose sizes are equal (the last may be shorter) goes as one message with
 * UDP_SEGMENT, so the stack is crossed once per run instead of once per
 * datagram.  Returns false if the kernel refused GSO (nothing was lost:
 * the caller sends the rest one by one).
 */
static bool
flush_gso(wgd *w, unsigned *from)
{
	unsigned g = 0, i = *from;
	unsigned first[WGD_MAX_BATCH];

	while (i < w->ntx) {
		size_t size = w->tx_iov[i].iov_len, total = size;
		unsigned j = i;
		while (j + 1 < w->ntx && j + 1 - i < GSO_MAX_SEGS &&
		    w->tx_iov[j].iov_len == size &&
		    w->tx_iov[j + 1].iov_len <= size &&
		    total + w->tx_iov[j + 1].iov_len <= GSO_MAX_BYTES &&
		    same_dest(w, i, j + 1)) {
			j++;
			total += w->tx_iov[j].iov_len;
		}
		struct msghdr *h = &w->gso_msg[g].msg_hdr;
		memset(h, 0, sizeof(*h));
		h->msg_name = &w->tx_addr[i];
		h->msg_namelen = w->tx_msg[i].msg_hdr.msg_namelen;
		h->msg_iov = &w->tx_iov[i];
		h->msg_iovlen = j - i + 1;
		if (j > i) {
			struct cmsghdr *c;
			h->msg_control = w->gso_ctl[g];
			h->msg_controllen = CMSG_SPACE(sizeof(uint16_t));
			c = CMSG_FIRSTHDR(h);
			c->cmsg_level = SOL_UDP;
			c->cmsg_type = UDP_SEGMENT;
			c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
			uint16_t seg = (uint16_t)size;
			memcpy(CMSG_DATA(c), &seg, sizeof(seg));
			w->tx_gso_msgs++;
		}
		first[g++] = i;
		i = j + 1;
	}
	unsigned off = 0;
	while (off < g) {
		int k = sendmmsg(w->udp, w->gso_msg + off, g - off, 0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP) {
				/* no GSO on this path: the rest one by one */
				*from = first[off];
				return false;
			}
			w->tx_errors++;
			off++;
			continue;
		}
		off += (unsigned)k;
	}
	*from = w->ntx;
	return true;
}

void
wgdi_flush_tx(wgd *w)
{
	unsigned off = 0;

	if (w->bus != NULL)
		wgdi_bus_paths_kick(w->bus); /* discovery pings, CallMeMaybe */
	wgdi_derp_flush(w->derp);
	if (w->ntx > 1 && w->gso && !flush_gso(w, &off)) {
		w->gso = false;
		TK_INFO(WGD_SUBSYS, "UDP GSO refused by the kernel: sending "
		    "datagrams one by one");
	}

	while (off < w->ntx) {
		int k = sendmmsg(w->udp, w->tx_msg + off, w->ntx - off, 0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			w->tx_errors++; /* drop this one, go on */
			off++;
			continue;
		}
		off += (unsigned)k;
	}
	w->ntx = 0;
}

/* ep as the socket's address: its length, 0 if the socket cannot send
 * there (counted). */
static socklen_t
ep_sockaddr(wgd *w, const tk_wg_endpoint *ep, struct sockaddr_in6 *sa)
{
	memset(sa, 0, sizeof(*sa));
	if (ep->ep_family == 4 && !w->udp6) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, ep->ep_addr, 4);
		s4->sin_port = htons(ep->ep_port);
		return sizeof(*s4);
	}
	sa->sin6_family = AF_INET6;
	if (ep->ep_family == 4) {
		sa->sin6_addr.s6_addr[10] = 0xff;
		sa->sin6_addr.s6_addr[11] = 0xff;
		memcpy(&sa->sin6_addr.s6_addr[12], ep->ep_addr, 4);
	} else {
		if (!w->udp6) {
			w->tx_family++; /* v6 endpoint, v4-only host */
			return 0;
		}
		memcpy(&sa->sin6_addr, ep->ep_addr, 16);
	}
	sa->sin6_port = htons(ep->ep_port);
	return sizeof(*sa);
}

void
wgdi_udp_send_now(wgd *w, const tk_wg_endpoint *ep, const uint8_t *p, size_t n)
{
	struct sockaddr_in6 sa;
	socklen_t sl;

	if (w->udp < 0 || ep->ep_family == 0 || tk_wg_endpoint_is_derp(ep)) {
		w->tx_no_endpoint++;
		return;
	}
	if ((sl = ep_sockaddr(w, ep, &sa)) == 0)
		return;
	if (sendto(w->udp, p, n, 0, (struct sockaddr *)&sa, sl) < 0)
		w->tx_errors++;
}

void
wgdi_send_datagram(void *arg, tk_wg_peer *peer, const tk_wg_endpoint *ep,
    const uint8_t *p, size_t n)
{
	wgd *w = arg;
	struct sockaddr_in6 *sa;
	tk_wg_endpoint direct;
	uint16_t region;

	/* a peer under path selection (path.c): the trusted direct address,
	 * or DERP and the best direct address if there is one (with
	 * TS_DEBUG_ALWAYS_USE_DERP: DERP alone, whatever the peer's endpoint) */
	if (peer != NULL && w->bus != NULL &&
	    wgdi_bus_route(w->bus, peer, &direct, &region)) {
		if (region != 0 && w->derp != NULL)
			wgdi_derp_send(w->derp, peer, region, p, n);
		if (direct.ep_family == 0)
			return;
		ep = &direct;
	}
	/* DERP regions are the fake endpoint 127.3.3.40:<region>, as in
	 * Go's magicsock (tailcfg.DerpMagicIPAddr). */
	if (tk_wg_endpoint_is_derp(ep)) {
		if (w->derp != NULL && peer != NULL)
			wgdi_derp_send(w->derp, peer, ep->ep_port, p, n);
		else
			w->tx_no_endpoint++;
		return;
	}
	if (ep->ep_family == 0 || w->udp < 0) {
		w->tx_no_endpoint++; /* no endpoint known yet */
		return;
	}
	if (n > WGD_MAX_DGRAM) {
		w->tx_oversize++; /* larger than a UDP datagram: cannot go */
		return;
	}
	if (w->ntx == (unsigned)w->batch)
		wgdi_flush_tx(w);
	/* a datagram sealed in place in slot ntx is sent from there */
	tk_pkt *slot = w->tx_pkt[w->ntx];
	uintptr_t at = (uintptr_t)p, lo = (uintptr_t)slot->pk_buf;
	bool in_slot = at >= lo && at + n <= lo + slot->pk_size;
	sa = &w->tx_addr[w->ntx];
	socklen_t sl = ep_sockaddr(w, ep, sa);
	if (sl == 0)
		return;
	w->tx_msg[w->ntx].msg_hdr.msg_namelen = sl;
	if (!in_slot)
		memcpy(slot->pk_buf, p, n);
	w->tx_iov[w->ntx].iov_base = in_slot ? (void *)at : slot->pk_buf;
	w->tx_iov[w->ntx].iov_len = n;
	w->ntx++;
}

static void
cb_deliver(void *arg, tk_wg_peer *peer, uint8_t *p, size_t n)
{
	wgd *w = arg;

	(void)peer;
	if (w->tun != NULL)
		wgdi_tun_deliver(w->tun, p, n);
	else if (w->bus != NULL && wgdi_bus_has_pkt(w->bus))
		wgdi_bus_deliver(w->bus, p, n);
}

static bool
cb_filter_in(void *arg, tk_wg_peer *peer, const uint8_t *p, size_t n)
{
	wgd *w = arg;

	(void)peer;
	return wgdi_bus_filter_in(w->bus, p, n);
}

uint8_t *
wgdi_tx_slot(wgd *w)
{
	if (w->ntx == (unsigned)w->batch)
		wgdi_flush_tx(w);
	return w->tx_pkt[w->ntx]->pk_buf;
}

void
wgdi_outbound(wgd *w, const uint8_t *p, size_t n)
{
	tk_pkt *slot;

	if (w->bus != NULL && wgdi_bus_has_filter(w->bus))
		wgdi_bus_filter_out(w->bus, p, n);
	/* never for a packet built in the slot: wgdi_tx_slot made room */
	if (w->ntx == (unsigned)w->batch)
		wgdi_flush_tx(w);
	slot = w->tx_pkt[w->ntx];
	if (p == slot->pk_buf + TK_PKT_HEADROOM) {
		slot->pk_data = slot->pk_buf + TK_PKT_HEADROOM;
		slot->pk_len = n;
	} else if (tk_pkt_set(slot, p, n) != 0) { /* one copy, into the slot */
		tk_wg_device_send(w->dev, p, n);
		return;
	}
	tk_wg_device_send_pkt(w->dev, slot);
}

void
wgdi_key_changed(wgd *w)
{
	if (w->bus != NULL)
		wgdi_bus_key_changed(w->bus);
}

static void
sockaddr_to_ep(const struct sockaddr_in6 *sa, tk_wg_endpoint *ep)
{
	memset(ep, 0, sizeof(*ep));
	if (sa->sin6_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		ep->ep_family = 4;
		memcpy(ep->ep_addr, &s4->sin_addr, 4);
		ep->ep_port = ntohs(s4->sin_port);
		return;
	}
	if (IN6_IS_ADDR_V4MAPPED(&sa->sin6_addr)) {
		ep->ep_family = 4;
		memcpy(ep->ep_addr, &sa->sin6_addr.s6_addr[12], 4);
	} else {
		ep->ep_family = 6;
		memcpy(ep->ep_addr, &sa->sin6_addr, 16);
	}
	ep->ep_port = ntohs(sa->sin6_port);
}

static void
flush_decrypted(wgd *w)
{
	if (w->tun != NULL)
		wgdi_tun_flush(w->tun);
	if (w->bus != NULL)
		wgdi_bus_flush(w->bus);
}

static void
on_udp(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	wgd *w = arg;

	(void)loop, (void)ev;
	for (int round = 0; round < 8; round++) {
		for (int i = 0; i < w->batch; i++) {
			w->rx_iov[i].iov_len = WGD_MAX_DGRAM;
			w->rx_msg[i].msg_hdr.msg_namelen = sizeof(w->rx_addr[i]);
			w->rx_msg[i].msg_hdr.msg_control = w->rx_ctl[i];
			w->rx_msg[i].msg_hdr.msg_controllen = sizeof(w->rx_ctl[i]);
		}
		int k = recvmmsg(fd, w->rx_msg, (unsigned)w->batch, MSG_DONTWAIT,
		    NULL);
		if (k <= 0)
			break;
		for (int i = 0; i < k; i++) {
			tk_wg_endpoint src;
			size_t len = w->rx_msg[i].msg_len, seg = len;
			struct msghdr *h = &w->rx_msg[i].msg_hdr;

			/* UDP GRO: equal-size datagrams coalesced by the kernel */
			for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c;
			    c = CMSG_NXTHDR(h, c)) {
				int gs;
				if (c->cmsg_level == SOL_UDP &&
				    c->cmsg_type == UDP_GRO &&
				    c->cmsg_len >= CMSG_LEN(sizeof(gs))) {
					memcpy(&gs, CMSG_DATA(c), sizeof(gs));
					if (gs > 0 && (size_t)gs < len) {
						seg = (size_t)gs;
						w->rx_gro_msgs++;
					}
				}
			}
			sockaddr_to_ep(&w->rx_addr[i], &src);
			/* disco on the same socket (magicsock packetLooksLike:
			 * WireGuard starts 01..04, disco with its magic) */
			if (seg == len && w->bus != NULL && !w->always_derp &&
			    wgdi_stun_looks_like(w->rx_buf[i], len)) {
				wgdi_bus_stun_rx(w->bus, &src, w->rx_buf[i], len);
				continue;
			}
			if (seg == len && w->bus != NULL && !w->always_derp &&
			    tk_disco_looks_like(w->rx_buf[i], len)) {
				wgdi_disco_rx_udp(wgdi_bus_disco(w->bus), &src,
				    w->rx_buf[i], len);
				continue;
			}
			for (size_t off = 0; off < len; off += seg)
				tk_wg_device_recv(w->dev, &src, w->rx_buf[i] + off,
				    len - off < seg ? len - off : seg);
		}
		wgdi_flush_tx(w);
		flush_decrypted(w);
		if (k < w->batch)
			break;
	}
	wgdi_flush_tx(w);
	flush_decrypted(w);
}

/* setsockopt of an int, with a named fault site so tests can make it fail. */
static int
sockopt(int fd, int level, int name, int val, const char *site)
{
	if (tk_fault_hit(site)) {
		errno = EPERM;
		return -1;
	}
	return setsockopt(fd, level, name, &val, sizeof(val));
}

/*
 * SO_MARK on the UDP socket.  A mark that does not apply is an error, never
 * a warning: without it, traffic to peers may be routed into the tunnel
 * itself (the mark is what the policy routing rule excludes).
 */
int
wgdi_set_fwmark(wgd *w, int fd, uint32_t mark)
{
	if (sockopt(fd, SOL_SOCKET, SO_MARK, (int)mark, "wgd.udp.mark") != 0) {
		int e = errno;
		snprintf(w->udp_why, sizeof(w->udp_why), "fwmark 0x%x: SO_MARK "
		    "refused (%s; needs CAP_NET_ADMIN): without the mark tunnel "
		    "traffic could loop back into the tunnel", mark, strerror(e));
		TK_ERR(WGD_SUBSYS, "%s", w->udp_why);
		return tk_err_sys(e);
	}
	return 0;
}

/* Socket buffers: forced past rmem_max/wmem_max with CAP_NET_ADMIN, else
 * as large as the host allows. */
static void
set_bufsize(int fd, int size)
{
	static const struct {
		int force, plain;
		const char *fsite, *what;
	} b[] = {
		{ SO_RCVBUFFORCE, SO_RCVBUF, "wgd.udp.rcvbufforce", "receive" },
		{ SO_SNDBUFFORCE, SO_SNDBUF, "wgd.udp.sndbufforce", "send" },
	};

	for (size_t i = 0; i < TK_ARRAY_LEN(b); i++) {
		if (sockopt(fd, SOL_SOCKET, b[i].force, size, b[i].fsite) == 0)
			continue;
		int e = errno;
		if (setsockopt(fd, SOL_SOCKET, b[i].plain, &size, sizeof(size)) != 0)
			TK_WARN(WGD_SUBSYS, "UDP %s buffer: neither forced (%s) nor "
			    "set (%s): the kernel default stays", b[i].what,
			    strerror(e), strerror(errno));
		else
			TK_INFO(WGD_SUBSYS, "UDP %s buffer not forced (%s): "
			    "capped by net.core.%cmem_max", b[i].what, strerror(e),
			    i == 0 ? 'r' : 'w');
	}
}

int
wgdi_open_udp(wgd *w, uint16_t port)
{
	struct sockaddr_in6 sa6 = { 0 };
	int fd, rv;

	w->udp_why[0] = '\0';
	fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd >= 0) {
		/* One socket for both families, IPv4 peers as v4-mapped
		 * addresses, whatever net.ipv6.bindv6only says.  If that is
		 * refused, an IPv6-only socket would leave every IPv4 peer
		 * silently unreachable: refuse instead. */
		if (sockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0,
		    "wgd.udp.v6only") != 0) {
			int e = errno;
			close(fd);
			snprintf(w->udp_why, sizeof(w->udp_why), "UDP socket: "
			    "IPV6_V6ONLY=0 refused (%s): IPv4 peers would be "
			    "unreachable", strerror(e));
			TK_ERR(WGD_SUBSYS, "%s", w->udp_why);
			return tk_err_sys(e);
		}
		sa6.sin6_family = AF_INET6;
		sa6.sin6_port = htons(port);
		if (bind(fd, (struct sockaddr *)&sa6, sizeof(sa6)) != 0) {
			close(fd);
			fd = -1;
		} else {
			w->udp6 = 1;
		}
	}
	if (fd < 0) { /* no IPv6 here: IPv4 only */
		struct sockaddr_in sa = { 0 };
		fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return tk_err_sys(errno);
		sa.sin_family = AF_INET;
		sa.sin_port = htons(port);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			int e = errno;
			close(fd);
			return tk_err_sys(e);
		}
		w->udp6 = 0;
	}
	int one = 1;
	/* receive coalesced datagrams (split again in on_udp); send with
	 * UDP_SEGMENT (flush_gso) */
	setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one));
	w->gso = !getenv("TK_WGD_NO_GSO");
	set_bufsize(fd, 4 << 20);
	if (w->ifc.fwmark && (rv = wgdi_set_fwmark(w, fd, w->ifc.fwmark)) != 0) {
		close(fd);
		return rv;
	}
	struct sockaddr_in6 got;
	socklen_t gl = sizeof(got);
	getsockname(fd, (struct sockaddr *)&got, &gl);
	w->ifc.listen_port = ntohs(got.sin6_port); /* same offset in sockaddr_in */
	if (w->udp >= 0) {
		tk_loop_fd_del(w->loop, w->udp);
		close(w->udp);
	}
	w->udp = fd;
	if (w->bus != NULL)
		wgdi_bus_port_changed(w->bus, w->ifc.listen_port);
	return tk_loop_fd_add(w->loop, fd, TK_LOOP_READ, on_udp, w);
}

/* --- timers -------------------------------------------------------------- */

static void
on_timer(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	wgd *w = arg;

	(void)loop, (void)t;
	w->timer_at = 0;
	tk_wg_device_tick(w->dev);
	wgdi_flush_tx(w);
}

static void
before_sleep(tk_loop *loop, void *arg)
{
	wgd *w = arg;
	uint64_t next = tk_wg_device_next_deadline(w->dev);

	wgdi_flush_tx(w);
	flush_decrypted(w);
	/* re-arm only when the deadline moved: this runs once per loop
	 * iteration, i.e. per packet batch */
	if (next == w->timer_at)
		return;
	w->timer_at = next == UINT64_MAX ? 0 : next;
	if (next == UINT64_MAX) {
		tk_loop_timer_cancel(w->timer);
		return;
	}
	uint64_t now = tk_loop_now(loop);
	tk_loop_timer_arm(w->timer, next > now ? next - now : 1, 0);
}

/* --- lifecycle ----------------------------------------------------------- */

static int
dup_str(char **dst, const char *s)
{
	*dst = NULL;
	if (s == NULL || *s == '\0')
		return 0;
	if ((*dst = tk_strdup(s)) == NULL)
		return TK_ENOMEM;
	return 0;
}

static int
fail(char *err, size_t errlen, int rv, const char *what, const char *arg)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s%s%s: %s", what, arg ? " " : "",
		    arg ? arg : "", tk_strerror(rv));
	return rv;
}

int
wgd_new(wgd **out, const wgd_config *cfg, char *err, size_t errlen)
{
	wgd *w;
	int rv;
	uint16_t port = cfg->listen_port;

	if (err && errlen)
		err[0] = '\0';
	if (cfg->tun_name && cfg->pkt_url) {
		snprintf(err, errlen, "a TUN device and a packet bus exclude each "
		    "other: decrypted packets go to one place");
		return TK_EINVAL;
	}
	if ((cfg->mtu != 0 && (cfg->mtu < 576 || cfg->mtu > 65535)) ||
	    (cfg->batch != 0 && (cfg->batch < 1 || cfg->batch > WGD_MAX_BATCH))) {
		snprintf(err, errlen, "MTU must be 576..65535 and batch 1..%d",
		    WGD_MAX_BATCH);
		return TK_EINVAL;
	}
	if ((cfg->ctrld_pub_url == NULL) != (cfg->ctrld_rpc_url == NULL) ||
	    (cfg->pub_url == NULL) != (cfg->rpc_url == NULL)) {
		snprintf(err, errlen, "a publisher needs both its pub and rpc URLs");
		return TK_EINVAL;
	}
	if ((w = tk_calloc(1, sizeof(*w))) == NULL)
		return fail(err, errlen, TK_ENOMEM, "wgd", NULL);
	w->udp = -1;
	w->mtu = cfg->mtu ? cfg->mtu : 1420;
	w->batch = cfg->batch ? cfg->batch : 64;
	/* Go's magicsock knob: never a direct path, DERP only (no disco
	 * over UDP either; path.h) */
	const char *ad = getenv("TS_DEBUG_ALWAYS_USE_DERP");
	w->always_derp = ad != NULL && (strcmp(ad, "1") == 0 ||
	    strcasecmp(ad, "true") == 0 || strcasecmp(ad, "t") == 0);
	w->tls = cfg->tls;
	if ((rv = dup_str(&w->tun_name, cfg->tun_name)) != 0 ||
	    (rv = dup_str(&w->uapi_dir, cfg->uapi_dir)) != 0 ||
	    (rv = dup_str(&w->uapi_name, cfg->uapi_name ? cfg->uapi_name :
		cfg->tun_name ? cfg->tun_name : "wgd")) != 0 ||
	    (rv = dup_str(&w->state_dir, cfg->state_dir)) != 0 ||
	    (rv = dup_str(&w->pub_url, cfg->pub_url)) != 0 ||
	    (rv = dup_str(&w->rpc_url, cfg->rpc_url)) != 0 ||
	    (rv = dup_str(&w->ctrld_pub_url, cfg->ctrld_pub_url)) != 0 ||
	    (rv = dup_str(&w->ctrld_rpc_url, cfg->ctrld_rpc_url)) != 0 ||
	    (rv = dup_str(&w->pkt_url, cfg->pkt_url)) != 0 ||
	    (rv = dup_str(&w->derp_url, cfg->derp_url)) != 0) {
		wgd_free(w);
		return fail(err, errlen, rv, "configuration", NULL);
	}
	for (int i = 0; i < w->batch; i++) {
		if (tk_pkt_new(&w->tx_pkt[i], TK_PKT_MAX) != 0 ||
		    (w->rx_buf[i] = tk_malloc(WGD_MAX_DGRAM)) == NULL) {
			wgd_free(w);
			return fail(err, errlen, TK_ENOMEM, "buffers", NULL);
		}
		w->tx_msg[i].msg_hdr.msg_iov = &w->tx_iov[i];
		w->tx_msg[i].msg_hdr.msg_iovlen = 1;
		w->tx_msg[i].msg_hdr.msg_name = &w->tx_addr[i];
		w->rx_iov[i].iov_base = w->rx_buf[i];
		w->rx_msg[i].msg_hdr.msg_iov = &w->rx_iov[i];
		w->rx_msg[i].msg_hdr.msg_iovlen = 1;
		w->rx_msg[i].msg_hdr.msg_name = &w->rx_addr[i];
	}
	tk_wg_device_config dc = { 0 };
	dc.cb.arg = w;
	dc.cb.send_datagram = wgdi_send_datagram;
	dc.cb.deliver = cb_deliver;
	if (w->ctrld_pub_url != NULL)
		dc.cb.filter_in = cb_filter_in;
	if ((rv = tk_loop_new(&w->loop, NULL)) != 0 ||
	    (rv = tk_loop_timer_new(w->loop, &w->timer, on_timer, w)) != 0 ||
	    (rv = tk_wg_device_new(&w->dev, &dc)) != 0) {
		wgd_free(w);
		return fail(err, errlen, rv, "event loop or device", NULL);
	}
	w->started_ns = tk_loop_now(w->loop);
	if (w->state_dir || w->pub_url || w->ctrld_pub_url || w->pkt_url ||
	    w->derp_url) {
		if ((rv = wgdi_bus_open(w, &w->bus, &port, err, errlen)) != 0 ||
		    (rv = wgdi_derp_open(w, err, errlen)) != 0) {
			wgd_free(w);
			return rv;
		}
	}
	if (w->tun_name != NULL &&
	    (rv = wgdi_tun_open(w, w->tun_name, w->mtu, &w->tun)) != 0) {
		wgd_free(w);
		return fail(err, errlen, rv, "creating TUN device", cfg->tun_name);
	}
	rv = wgdi_open_udp(w, port);
	if (rv != 0 && cfg->listen_port == 0 && port != 0) {
		/* The port came from the state, not from the user: another
		 * process may have bound it while wgd was down (kill -9, then a
		 * restart).  Take any port, as Go's magicsock falls back to 0
		 * after the previous port (bindSocket); the new endpoint reaches
		 * peers through ctrld, and DERP never depended on it.  An
		 * explicit --port stays an error. */
		TK_WARN(WGD_SUBSYS, "UDP port %u is taken (%s): taking any "
		    "port", port, tk_strerror(rv));
		w->udp_why[0] = '\0';
		port = 0;
		rv = wgdi_open_udp(w, port);
	}
	if (rv != 0) {
		char what[16];
		snprintf(what, sizeof(what), "%u", port);
		if (w->udp_why[0] != '\0' && err != NULL && errlen > 0)
			snprintf(err, errlen, "%s", w->udp_why);
		else
			fail(err, errlen, rv, "UDP socket on port", what);
		wgd_free(w);
		return rv;
	}
	if (w->uapi_dir != NULL &&
	    (rv = wgdi_uapi_open(w, w->uapi_dir, w->uapi_name, &w->uapi, err,
		errlen)) != 0) {
		wgd_free(w);
		return rv;
	}
	tk_loop_set_before_sleep(w->loop, before_sleep, w);
	TK_INFO(WGD_SUBSYS, "up: UDP port %u%s%s%s%s", w->ifc.listen_port,
	    w->tun_name ? ", TUN " : "", w->tun_name ? w->tun_name : "",
	    w->pkt_url ? ", packet bus " : "", w->pkt_url ? w->pkt_url : "");
	*out = w;
	return 0;
}

uint16_t
wgd_listen_port(const wgd *w)
{
	return w->ifc.listen_port;
}

static void *
run(void *arg)
{
	wgd *w = arg;

	tk_loop_run(w->loop);
	return NULL;
}

int
wgd_start(wgd *w)
{
	int e;

	if (w->running)
		return TK_ESTATE;
	if ((e = pthread_create(&w->thread, NULL, run, w)) != 0)
		return tk_err_sys(e);
	w->running = true;
	return 0;
}

void
wgd_stop(wgd *w)
{
	if (w == NULL || !w->running)
		return;
	tk_loop_stop(w->loop);
	pthread_join(w->thread, NULL);
	w->running = false;
}

void
wgd_free(wgd *w)
{
	if (w == NULL)
		return;
	wgd_stop(w);
	if (w->uapi)
		wgdi_uapi_free(w, w->uapi);
	if (w->tun)
		wgdi_tun_free(w, w->tun);
	wgdi_derp_free(w->derp);
	w->derp = NULL;
	wgdi_bus_free(w->bus);
	w->bus = NULL;
	tk_wg_device_free(w->dev);
	tk_loop_timer_free(w->timer);
	if (w->udp >= 0) {
		tk_loop_fd_del(w->loop, w->udp);
		close(w->udp);
	}
	tk_loop_free(w->loop);
	for (int i = 0; i < WGD_MAX_BATCH; i++) {
		tk_pkt_free(w->tx_pkt[i]);
		tk_free(w->rx_buf[i]);
	}
	tk_free(w->tun_name);
	tk_free(w->uapi_dir);
	tk_free(w->uapi_name);
	tk_free(w->state_dir);
	tk_free(w->pub_url);
	tk_free(w->rpc_url);
	tk_free(w->ctrld_pub_url);
	tk_free(w->ctrld_rpc_url);
	tk_free(w->pkt_url);
	tk_free(w->derp_url);
	tk_free(w);
}
