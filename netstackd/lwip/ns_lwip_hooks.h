/* Functions lwipopts.h's hooks call; defined in netstackd/src/ns_isn.c,
 * ns_zwp.c and ns_ip6guard.c. */
#ifndef NS_LWIP_HOOKS_H
#define NS_LWIP_HOOKS_H

#include "lwip/arch.h"
#include "lwip/ip_addr.h"

u32_t ns_isn_hook(const ip_addr_t *local_ip, u16_t local_port,
    const ip_addr_t *remote_ip, u16_t remote_port);

struct pbuf;
struct tcp_hdr;
struct tcp_pcb;
u32_t *ns_tcp_opts_hook(struct pbuf *p, struct tcp_hdr *h,
    const struct tcp_pcb *pcb, u32_t *opts);
/* empty ACKs sent with SEG.SEQ = SND.UNA during a zero-window probe */
unsigned long long nsi_zwp_acks_fixed(void);

struct netif;
/* ns_ip6guard.c: IPv6 packets whose extension headers do not fit are
 * dropped before ip6_input reads past them; 1 if p was eaten. */
int ns_ip6_input_hook(struct pbuf *p, struct netif *inp);
unsigned long long nsi_ip6_ext_dropped(void);

#endif
