/* tailscale_loopback's server (ts_loopback.c), for ts_compat.c. */
#ifndef TS_INT_H
#define TS_INT_H

#include "embed_int.h"

typedef struct ts_loopback ts_loopback;

/* Listens on 127.0.0.1 (a port of the kernel's choice) and serves on a
 * thread of its own until ts_loopback_free.  0 or -errno (tkx_fail). */
int ts_loopback_new(ts_loopback **out, tailkit *tk);
const char *ts_loopback_addr(const ts_loopback *lb); /* "127.0.0.1:port" */
const char *ts_loopback_cred(const ts_loopback *lb); /* the LocalAPI's */
void ts_loopback_free(ts_loopback *lb);

#endif
