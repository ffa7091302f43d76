/*
 * tailcfg.ControlDialPlan as ctrld keeps it: the addresses control asks
 * its clients to dial instead of resolving the server's name (capver 44).
 * Decoded from MapResponse.ControlDialPlan (tailcfg_decode.c), used by the
 * ts2021 dial (ctlconn.c).
 */
#ifndef CTRLD_DIALPLAN_H
#define CTRLD_DIALPLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "tk/netaddr.h"

#define CTRLDI_DIAL_PLAN_MAX  16	  /* candidates kept; more are ignored */
#define CTRLDI_DIAL_PLAN_MAXT (60 * 1000) /* ms: delays and timeouts capped */

/* tailcfg.ControlIPCandidate */
typedef struct ctrldi_dial_cand {
	tk_ipaddr ip;	   /* IP; family 0: none */
	bool ace;	   /* ACEHost set: a CONNECT proxy tailkit does not use */
	uint32_t start_ms; /* DialStartDelaySec */
	uint32_t timeout_ms; /* DialTimeoutSec (0: Go's dial fails at once) */
	int32_t priority;  /* Priority (carried; Go's dialer ignores it) */
} ctrldi_dial_cand;

typedef struct ctrldi_dial_plan {
	uint32_t n; /* 0: "use DNS" */
	ctrldi_dial_cand c[CTRLDI_DIAL_PLAN_MAX];
} ctrldi_dial_plan;

#endif
