/* Functions lwipopts.h's hooks call; defined in netstackd/src/ns_isn.c. */
#ifndef NS_LWIP_HOOKS_H
#define NS_LWIP_HOOKS_H

#include "lwip/arch.h"
#include "lwip/ip_addr.h"

u32_t ns_isn_hook(const ip_addr_t *local_ip, u16_t local_port,
    const ip_addr_t *remote_ip, u16_t remote_port);

#endif
