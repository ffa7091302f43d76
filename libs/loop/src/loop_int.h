/* tk_loop internals shared between loop.c and timer_heap.c. */
#ifndef TK_LOOP_INT_H
#define TK_LOOP_INT_H

#include <stddef.h>
#include <stdint.h>

#include "tk/loop.h"

#define TKI_HEAP_NONE SIZE_MAX

struct tk_loop_timer {
	tk_loop *t_loop;
	tk_loop_timer_fn t_fn;
	void *t_arg;
	uint64_t t_deadline; /* loop clock, ns */
	uint64_t t_period;   /* 0: one-shot */
	uint64_t t_seq;	     /* arming order: ties fire first-armed first */
	size_t t_idx;	     /* heap slot, TKI_HEAP_NONE when not armed */
	tk_loop_timer *t_next, *t_prev; /* all timers of the loop */
};

/* Binary min-heap of armed timers ordered by (deadline, seq). */
typedef struct tki_theap {
	tk_loop_timer **h_v;
	size_t h_len;
	size_t h_cap;
} tki_theap;

void tki_theap_init(tki_theap *h);
void tki_theap_fini(tki_theap *h);
/* TK_ENOMEM if the array cannot grow. */
int tki_theap_push(tki_theap *h, tk_loop_timer *t);
void tki_theap_remove(tki_theap *h, tk_loop_timer *t);
/* Smallest element or NULL. */
tk_loop_timer *tki_theap_peek(const tki_theap *h);

#endif
