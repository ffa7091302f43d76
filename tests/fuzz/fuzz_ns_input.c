/*
 * Fuzz lwIP's input path with netstackd's configuration: IPv4 and IPv6
 * packets as they arrive from wgd's packet bus go to ip4_input/ip6_input of
 * a netif holding 100.64.0.1 and fd7a:115c:a1e0::1, where a TCP listener
 * (port 80, echoing what it receives and half-closing on FIN) and a UDP
 * echo (port 53) run.  Initial sequence numbers are fixed here (the hook),
 * so the fuzzer can complete handshakes and reach established-state code:
 * out-of-order queues (tailkit's #56397 fix), options (tailkit's bounds
 * check), window scaling, SACK, FIN/RST handling.
 *
 * Input: records of  u8 op | be16 len | len bytes
 *   op & 3 == 0: an IP packet;  1: advance the clock by len ms and run the
 *   timers;  2: the application reads (tcp_recved) what it holds;  3: the
 *   application writes len bytes to every connection.
 * Everything is torn down after each input.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/init.h"
#include "lwip/ip.h"
#include "lwip/netif.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"
#include "lwip/sys.h"
#include "lwip/timeouts.h"
#include "lwip/udp.h"
#include "ns_lwip_hooks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static u32_t now_ms = 1000;
static struct netif nif;
static struct tcp_pcb *lpcb;
static struct udp_pcb *upcb;
static u32_t held;

u32_t
sys_now(void)
{
	return now_ms;
}

u32_t
ns_isn_hook(const ip_addr_t *lip, u16_t lport, const ip_addr_t *rip,
    u16_t rport)
{
	(void)lip, (void)lport, (void)rip, (void)rport;
	return 0x01000000u;
}

uint32_t
ns_lwip_rand(void)
{
	return 4;
}

void
ns_lwip_assert(const char *msg, const char *file, int line)
{
	(void)msg, (void)file, (void)line;
	abort();
}

static err_t
out4(struct netif *n, struct pbuf *p, const ip4_addr_t *a)
{
	(void)n, (void)p, (void)a;
	return ERR_OK;
}

static err_t
out6(struct netif *n, struct pbuf *p, const ip6_addr_t *a)
{
	(void)n, (void)p, (void)a;
	return ERR_OK;
}

static err_t
nif_init(struct netif *n)
{
	n->mtu = 1280;
	n->output = out4;
	n->output_ip6 = out6;
	return ERR_OK;
}

static err_t
on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
	(void)arg, (void)err;
	if (p == NULL) {
		tcp_shutdown(pcb, 0, 1);
		return ERR_OK;
	}
	/* hold the bytes (window closes) until an op-2 record reads them */
	held += p->tot_len;
	pbuf_free(p);
	return ERR_OK;
}

static err_t
on_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
	(void)arg;
	if (err != ERR_OK || pcb == NULL)
		return ERR_VAL;
	tcp_nagle_disable(pcb);
	tcp_recv(pcb, on_recv);
	return ERR_OK;
}

static void
on_udp(void *arg, struct udp_pcb *pcb, struct pbuf *p, const ip_addr_t *addr,
    u16_t port)
{
	(void)arg;
	udp_sendto(pcb, p, addr, port);
	pbuf_free(p);
}

static void
setup(void)
{
	ip4_addr_t a, m;
	ip6_addr_t a6;

	lwip_init();
	IP4_ADDR(&a, 100, 64, 0, 1);
	IP4_ADDR(&m, 255, 255, 255, 255);
	netif_add(&nif, &a, &m, IP4_ADDR_ANY4, NULL, nif_init, ip_input);
	IP6_ADDR(&a6, PP_HTONL(0xfd7a115cUL), PP_HTONL(0xa1e00000UL), 0, PP_HTONL(1));
	netif_ip6_addr_set(&nif, 0, &a6);
	netif_ip6_addr_set_state(&nif, 0, IP6_ADDR_PREFERRED);
	netif_set_default(&nif);
	netif_set_up(&nif);
	netif_set_link_up(&nif);
	struct tcp_pcb *pcb = tcp_new_ip_type(IPADDR_TYPE_ANY);
	tcp_bind(pcb, IP_ANY_TYPE, 80);
	lpcb = tcp_listen(pcb);
	tcp_accept(lpcb, on_accept);
	upcb = udp_new_ip_type(IPADDR_TYPE_ANY);
	udp_bind(upcb, IP_ANY_TYPE, 53);
	udp_recv(upcb, on_udp, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	static uint8_t junk[4096];
	size_t off = 0;

	if (!ready) {
		setup();
		ready = true;
	}
	held = 0;
	while (off + 3 <= size) {
		uint8_t op = data[off] & 3;
		size_t len = (size_t)data[off + 1] << 8 | data[off + 2];
		off += 3;
		if (op == 0) {
			struct pbuf *p;
			if (len > size - off)
				len = size - off;
			if (len == 0 || (p = pbuf_alloc(PBUF_RAW, (u16_t)len,
			    PBUF_RAM)) == NULL)
				break;
			memcpy(p->payload, data + off, len);
			off += len;
			if ((data[off - len] >> 4) == 6)
				ip6_input(p, &nif);
			else
				ip4_input(p, &nif);
		} else if (op == 1) {
			now_ms += (u32_t)len;
			sys_check_timeouts();
		} else if (op == 2) {
			for (struct tcp_pcb *pcb = tcp_active_pcbs; pcb; pcb = pcb->next)
				if (pcb->recv == on_recv && held > 0) {
					u16_t n = held > 0xffff ? 0xffff : (u16_t)held;
					tcp_recved(pcb, n);
					held -= n;
				}
		} else {
			if (len > sizeof(junk))
				len = sizeof(junk);
			for (struct tcp_pcb *pcb = tcp_active_pcbs; pcb; pcb = pcb->next)
				if (pcb->recv == on_recv && tcp_sndbuf(pcb) >= len && len)
					if (tcp_write(pcb, junk, (u16_t)len,
					    TCP_WRITE_FLAG_COPY) == ERR_OK)
						tcp_output(pcb);
		}
	}
	while (tcp_active_pcbs != NULL)
		tcp_abort(tcp_active_pcbs);
	while (tcp_tw_pcbs != NULL)
		tcp_abort(tcp_tw_pcbs);
	return 0;
}
