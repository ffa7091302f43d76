/* Shared helpers for the bus tests: bounded loop runs, unique URLs. */
#ifndef BUS_TEST_H
#define BUS_TEST_H

#include <stdbool.h>
#include <stddef.h>

#include "tk/loop.h"

/* Runs the loop until cond(arg) holds or timeout_ms passes; returns cond. */
bool bt_run_until(tk_loop *loop, bool (*cond)(void *), void *arg,
    int timeout_ms);
/* Runs the loop for ms milliseconds. */
void bt_run_for(tk_loop *loop, int ms);
/* "inproc://test<pid>-<n>/<name>": unique per call. */
const char *bt_inproc(const char *name, char *buf, size_t len);
unsigned long bt_ms(void);

#endif
