/*
 * lwIP's platform functions: the clock (sys_now), randomness, assertions,
 * and initial sequence numbers per RFC 6528:
 *
 *   ISN = M + F(localip, localport, remoteip, remoteport, secretkey)
 *
 * with M a 4-microsecond timer and F the first 32 bits of keyed BLAKE2s
 * (tk_blake2s) over the 4-tuple, keyed with 32 random bytes drawn once per
 * process.  lwIP 2.1.3's default is a constant plus tcp_ticks.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ns_int.h"
#include "ns_lwip_hooks.h"
#include "lwip/sys.h"
#include "tk/blake2s.h"
#include "tk/endian.h"
#include "tk/log.h"
#include "tk/rng.h"

static uint8_t isn_key[32];
static bool isn_ready;

void
nsi_isn_init(void)
{
	if (!isn_ready) {
		tk_rng_fill(tk_rng_system(), isn_key, sizeof(isn_key));
		isn_ready = true;
	}
}

static uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t
put_ip(uint8_t *w, const ip_addr_t *ip)
{
	if (IP_IS_V4(ip)) {
		memcpy(w, &ip_2_ip4(ip)->addr, 4);
		return 4;
	}
	memcpy(w, ip_2_ip6(ip)->addr, 16);
	return 16;
}

u32_t
ns_isn_hook(const ip_addr_t *local_ip, u16_t local_port,
    const ip_addr_t *remote_ip, u16_t remote_port)
{
	uint8_t in[2 * 16 + 4], h[4];
	size_t n = 0;

	nsi_isn_init();
	n += put_ip(in + n, local_ip);
	tk_be16_store(in + n, local_port);
	n += 2;
	n += put_ip(in + n, remote_ip);
	tk_be16_store(in + n, remote_port);
	n += 2;
	tk_blake2s(h, sizeof(h), isn_key, sizeof(isn_key), in, n);
	return tk_be32_load(h) + (uint32_t)(mono_ns() / 4000u);
}

u32_t
sys_now(void)
{
	return (u32_t)(mono_ns() / 1000000u);
}

uint32_t
ns_lwip_rand(void)
{
	return tk_rng_u32(tk_rng_system());
}

void
ns_lwip_assert(const char *msg, const char *file, int line)
{
	TK_ERR(NS_SUBSYS, "lwIP assertion failed: %s (%s:%d)", msg, file, line);
	abort();
}
