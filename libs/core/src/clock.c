#include <time.h>

#include "tk/clock.h"

static uint64_t
read_clock(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * TK_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static uint64_t sys_mono(void *arg) { (void)arg; return read_clock(CLOCK_MONOTONIC); }
static uint64_t sys_real(void *arg) { (void)arg; return read_clock(CLOCK_REALTIME); }

static const tk_clock system_clock = { sys_mono, sys_real, NULL };

const tk_clock *
tk_clock_system(void)
{
	return &system_clock;
}

uint64_t
tk_clock_mono_ns(const tk_clock *c)
{
	if (c == NULL)
		c = &system_clock;
	return c->mono_ns(c->arg);
}

uint64_t
tk_clock_real_ns(const tk_clock *c)
{
	if (c == NULL)
		c = &system_clock;
	return c->real_ns(c->arg);
}

static uint64_t fake_mono(void *arg) { return ((tk_fake_clock *)arg)->fc_mono_ns; }
static uint64_t fake_real(void *arg) { return ((tk_fake_clock *)arg)->fc_real_ns; }

void
tk_fake_clock_init(tk_fake_clock *fc, uint64_t mono_ns, uint64_t real_ns)
{
	fc->fc_clock.mono_ns = fake_mono;
	fc->fc_clock.real_ns = fake_real;
	fc->fc_clock.arg = fc;
	fc->fc_mono_ns = mono_ns;
	fc->fc_real_ns = real_ns;
}

void
tk_fake_clock_advance(tk_fake_clock *fc, uint64_t ns)
{
	fc->fc_mono_ns += ns;
	fc->fc_real_ns += ns;
}
