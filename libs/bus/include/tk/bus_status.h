/*
 * Building the counters of a tk.bus.v1.StatusResponse (every component's
 * "status" answer) in caller storage: no allocation on the request path.
 */
#ifndef TK_BUS_STATUS_H
#define TK_BUS_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "tk/bus/v1/ctrl.pb-c.h"

#define TK_STATUS_COUNTERS_MAX 128

typedef struct tk_status_counters {
	Tk__Bus__V1__Counter c[TK_STATUS_COUNTERS_MAX];
	Tk__Bus__V1__Counter *p[TK_STATUS_COUNTERS_MAX];
	size_t n;
} tk_status_counters;

/* Adds one counter (name borrowed until the reply is packed); past
 * TK_STATUS_COUNTERS_MAX it asserts. */
void tk_status_counter(tk_status_counters *s, const char *name, uint64_t v);
/* Points the response's counters at s. */
void tk_status_counters_set(Tk__Bus__V1__StatusResponse *r,
    tk_status_counters *s);

#endif
