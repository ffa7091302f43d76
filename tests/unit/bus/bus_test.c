#include <stdio.h>
#include <unistd.h>

#include "tk/clock.h"

#include "bus_test.h"

unsigned long
bt_ms(void)
{
	return (unsigned long)(tk_clock_mono_ns(NULL) / TK_NSEC_PER_MSEC);
}

bool
bt_run_until(tk_loop *loop, bool (*cond)(void *), void *arg, int timeout_ms)
{
	unsigned long end = bt_ms() + (unsigned long)timeout_ms;

	while (!cond(arg)) {
		if (bt_ms() >= end)
			return false;
		tk_loop_run_once(loop, 10);
	}
	return true;
}

void
bt_run_for(tk_loop *loop, int ms)
{
	unsigned long end = bt_ms() + (unsigned long)ms;

	while (bt_ms() < end)
		tk_loop_run_once(loop, 5);
}

const char *
bt_inproc(const char *name, char *buf, size_t len)
{
	static unsigned n;

	snprintf(buf, len, "inproc://test%d-%u/%s", (int)getpid(), n++, name);
	return buf;
}
