/* lwIP's platform header for netstackd: Linux, glibc, one thread. */
#ifndef NS_ARCH_CC_H
#define NS_ARCH_CC_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define LWIP_TIMEVAL_PRIVATE 0
#define LWIP_ERRNO_INCLUDE <errno.h>
#define LWIP_ERRNO_STDINCLUDE 1

uint32_t ns_lwip_rand(void);
void ns_lwip_assert(const char *msg, const char *file, int line);

#define LWIP_PLATFORM_DIAG(x) do { printf x; } while (0)
#define LWIP_PLATFORM_ASSERT(x) ns_lwip_assert(x, __FILE__, __LINE__)

#endif
