/*
 * Injectable clock.  Components take a `const tk_clock *` in their config
 * (NULL means the system clock), so timers can be driven by a fake clock in
 * tests.
 */
#ifndef TK_CLOCK_H
#define TK_CLOCK_H

#include <stdint.h>

#define TK_NSEC_PER_USEC 1000ull
#define TK_NSEC_PER_MSEC 1000000ull
#define TK_NSEC_PER_SEC	 1000000000ull

typedef struct tk_clock {
	uint64_t (*mono_ns)(void *arg); /* monotonic, for timers */
	uint64_t (*real_ns)(void *arg); /* wall clock, ns since the Unix epoch */
	void *arg;
} tk_clock;

/* The system clock (CLOCK_MONOTONIC / CLOCK_REALTIME). */
const tk_clock *tk_clock_system(void);

/* NULL selects the system clock. */
uint64_t tk_clock_mono_ns(const tk_clock *c);
uint64_t tk_clock_real_ns(const tk_clock *c);

/* A fake clock for tests: time moves only when told. */
typedef struct tk_fake_clock {
	tk_clock fc_clock;
	uint64_t fc_mono_ns;
	uint64_t fc_real_ns;
} tk_fake_clock;

void tk_fake_clock_init(tk_fake_clock *fc, uint64_t mono_ns, uint64_t real_ns);
void tk_fake_clock_advance(tk_fake_clock *fc, uint64_t ns);

#endif
