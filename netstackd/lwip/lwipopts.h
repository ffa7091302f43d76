/*
 * tailkit's lwIP configuration for netstackd (lwIP 2.1.3, Debian's source;
 * facts: ../shared/reference/netstack-lwip.md).  Raw API driven by
 * netstackd's own event loop (NO_SYS), IP-only netifs (no ARP, no
 * Ethernet, no neighbour discovery traffic), windows for >= 1 Gbit/s at
 * 10 ms RTT, malloc-backed pools (netstackd counts its connections),
 * initial sequence numbers from a keyed hash (RFC 6528).
 */
#ifndef NS_LWIPOPTS_H
#define NS_LWIPOPTS_H

#define NO_SYS			1
#define LWIP_SOCKET		0
#define LWIP_NETCONN		0
#define SYS_LIGHTWEIGHT_PROT	0
#define LWIP_TIMERS		1

/* memory: the C allocator for the heap and every pool */
#define MEM_LIBC_MALLOC		1
#define MEMP_MEM_MALLOC		1
#define MEM_ALIGNMENT		8
#define MEMP_NUM_TCP_PCB	1024 /* not enforced with MEMP_MEM_MALLOC */
#define MEMP_NUM_TCP_PCB_LISTEN	256
#define MEMP_NUM_UDP_PCB	256
#define MEMP_NUM_TCP_SEG	16384
#define PBUF_POOL_SIZE		64

/* IP-only interfaces */
#define LWIP_ARP		0
#define LWIP_ETHERNET		0
#define LWIP_IPV4		1
#define LWIP_IPV6		1
#define LWIP_IPV6_MLD		0
#define LWIP_IPV6_AUTOCONFIG	0
#define LWIP_IPV6_SEND_ROUTER_SOLICIT 0
#define LWIP_IPV6_DUP_DETECT_ATTEMPTS 0
#define LWIP_ND6_ALLOW_RA_UPDATES 0
#define LWIP_IPV6_FRAG		0
#define LWIP_IPV6_REASS		0
#define LWIP_IPV6_NUM_ADDRESSES	3
#define IP_REASSEMBLY		0
#define IP_FRAG			0
#define LWIP_ICMP		1
#define LWIP_ICMP6		1
#define LWIP_RAW		0
#define LWIP_UDP		1
#define LWIP_TCP		1
#define LWIP_DHCP		0
#define LWIP_AUTOIP		0
#define LWIP_IGMP		0
#define LWIP_DNS		0
#define LWIP_SINGLE_NETIF	0
/* Packets to the node's own addresses, 100.100.100.100 included, loop back
 * inside lwIP (netstackd polls the queues before each sleep): an
 * application on the node asks its MagicDNS through the API's UDP. */
#define LWIP_NETIF_LOOPBACK	1
#define LWIP_LOOPBACK_MAX_PBUFS	256
#define LWIP_HAVE_LOOPIF	0
#define LWIP_NETIF_HOSTNAME	0
#define LWIP_STATS		0
#define LWIP_PROVIDE_ERRNO	0

/* TCP: tailnet MTU 1280 -> MSS 1240 (v4; lwIP lowers it for v6 from the
 * netif MTU); 4 MiB windows with scale 7 (the BDP of 1 Gbit/s x 30 ms) */
#define TCP_MSS			1240
#define LWIP_WND_SCALE		1
#define TCP_RCV_SCALE		7
#define TCP_WND			(4 * 1024 * 1024)
#define TCP_SND_BUF		(4 * 1024 * 1024)
#define TCP_SND_QUEUELEN	((4 * TCP_SND_BUF) / TCP_MSS)
#define TCP_SNDLOWAT		(32 * 1024)
#define TCP_OVERSIZE		TCP_MSS
#define TCP_QUEUE_OOSEQ		1
#define LWIP_TCP_SACK_OUT	1
#define LWIP_TCP_MAX_SACK_NUM	4
#define LWIP_TCP_TIMESTAMPS	1
#define LWIP_TCP_KEEPALIVE	1
/* lwIP counts retransmission timeouts in slow-timer ticks (2 x this):
 * the default 250 ms makes every RTO at least 0.5-1 s, which is what a
 * path that drops bursts (a DERP server's 32-packet client queues) pays
 * on every loss NewReno cannot repair.  25 ms: RTOs in 50 ms steps,
 * delayed ACKs after 25 ms. */
#define TCP_TMR_INTERVAL	25
/* Dials start at a 1 s RTO (ns_tcp.c) and lwIP resends a SYN at that RTO
 * without backing off: 12 resends (lwIP's most, its backoff table) give a
 * dial 13 s, about netstackd's 15 s dial timeout (the default 6: 7 s).  A
 * SYN that goes unanswered that long ends as ETIMEDOUT either way. */
#define TCP_SYNMAXRTX		12
#define TCP_LISTEN_BACKLOG	1
#define TCP_DEFAULT_LISTEN_BACKLOG 255
#define LWIP_CALLBACK_API	1
#define LWIP_EVENT_API		0

/* checksums: packets arrive decrypted from wgd, whole */
#define CHECKSUM_GEN_IP		1
#define CHECKSUM_GEN_TCP	1
#define CHECKSUM_GEN_UDP	1
#define CHECKSUM_GEN_ICMP	1
#define CHECKSUM_GEN_ICMP6	1
#define CHECKSUM_CHECK_IP	1
#define CHECKSUM_CHECK_TCP	1
#define CHECKSUM_CHECK_UDP	1
#define CHECKSUM_CHECK_ICMP	1
#define CHECKSUM_CHECK_ICMP6	1

/* RFC 6528 initial sequence numbers: netstackd/src/ns_isn.c */
#define LWIP_HOOK_FILENAME	"ns_lwip_hooks.h"
#define LWIP_HOOK_TCP_ISN(lip, lport, rip, rport) ns_isn_hook(lip, lport, rip, rport)
/* empty ACKs while a zero-window probe is outstanding (src/ns_zwp.c) */
#define LWIP_HOOK_TCP_OUT_ADD_TCPOPTS(p, hdr, pcb, opts) ns_tcp_opts_hook(p, hdr, pcb, opts)
/* IPv6 extension headers that do not fit are dropped first (src/ns_ip6guard.c) */
#define LWIP_HOOK_IP6_INPUT(p, inp) ns_ip6_input_hook(p, inp)

#define LWIP_RAND()		ns_lwip_rand()

#endif
