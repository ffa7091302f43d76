/* tailkit core: one include for the whole bottom-floor utility library. */
#ifndef TK_CORE_H
#define TK_CORE_H

#include "tk/buf.h"
#include "tk/clock.h"
#include "tk/endian.h"
#include "tk/enc.h"
#include "tk/err.h"
#include "tk/keys.h"
#include "tk/log.h"
#include "tk/mem.h"
#include "tk/pkt.h"
#include "tk/rng.h"

/* Process-wide initialisation (libsodium); idempotent and thread-safe. */
int tk_init(void);

#endif
