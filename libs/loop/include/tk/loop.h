/*
 * The per-component event loop.
 *
 * One thread owns a loop and, through it, the component's state (Redis ae,
 * nng's own pollers).  The loop multiplexes:
 *
 *   - file descriptors, through epoll.  Registrations are LEVEL-triggered by
 *     default: the callback runs on every iteration while the fd is ready, so
 *     a callback may stop early (fairness) without losing the wake-up.
 *     TK_LOOP_EDGE asks for edge triggering; the callback must then drain the
 *     fd until EAGAIN.  nng's NNG_OPT_RECVFD is a level-style notification
 *     pipe and wants the default.
 *   - timers, one-shot or periodic, kept in a min-heap and woken through one
 *     timerfd.  Their deadlines are read from the loop's tk_clock, so a test
 *     can inject a tk_fake_clock, advance it, and call tk_loop_run_once(loop,
 *     0): every timer whose deadline has passed fires, in deadline order (ties
 *     in arming order).
 *   - posts: closures queued from any thread (tk_loop_post) and run on the
 *     loop thread in FIFO order; an eventfd wakes the loop.
 *   - a before-sleep hook, run before every wait that may block (flush
 *     batched output there).
 *
 * Threading: tk_loop_post, tk_loop_post_item, tk_loop_post_cancel and
 * tk_loop_stop are safe from any thread.  Everything else is called on the
 * loop thread (or before the loop runs / after it returned).
 *
 * Errors: 0 or a TK_E* code (tk/err.h); out-params are written only on 0.
 */
#ifndef TK_LOOP_H
#define TK_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "tk/clock.h"

typedef struct tk_loop tk_loop;
typedef struct tk_loop_timer tk_loop_timer;

/* Interest / readiness bits for fds. */
#define TK_LOOP_READ  0x01u
#define TK_LOOP_WRITE 0x02u
#define TK_LOOP_EDGE  0x04u /* interest only: edge-triggered */
#define TK_LOOP_ERROR 0x08u /* readiness only: EPOLLERR or EPOLLHUP */

typedef void (*tk_loop_fd_fn)(tk_loop *loop, int fd, unsigned events,
    void *arg);
typedef void (*tk_loop_timer_fn)(tk_loop *loop, tk_loop_timer *t, void *arg);
typedef void (*tk_loop_post_fn)(void *arg);
typedef void (*tk_loop_hook_fn)(tk_loop *loop, void *arg);

typedef struct tk_loop_cfg {
	const tk_clock *clock; /* NULL: system clock */
} tk_loop_cfg;

/* cfg may be NULL (all defaults). */
int tk_loop_new(tk_loop **out, const tk_loop_cfg *cfg);
/*
 * Frees the loop.  Registered fds are not closed (the caller owns them);
 * timers still allocated are freed; posts still queued are discarded without
 * running.  Not while tk_loop_run is executing.  NULL is a no-op.
 */
void tk_loop_free(tk_loop *loop);

/* The loop's clock reading (monotonic ns). */
uint64_t tk_loop_now(const tk_loop *loop);

/*
 * fds.  One registration per fd; `events` is TK_LOOP_READ and/or
 * TK_LOOP_WRITE, optionally | TK_LOOP_EDGE.  The callback gets the ready
 * bits (TK_LOOP_ERROR on error/hang-up, together with whatever interest bits
 * apply).  A callback may add, modify or delete any fd, including its own;
 * once tk_loop_fd_del returns, the callback for that fd is not called again,
 * even for events already collected in the same iteration.
 */
int tk_loop_fd_add(tk_loop *loop, int fd, unsigned events, tk_loop_fd_fn fn,
    void *arg);
int tk_loop_fd_mod(tk_loop *loop, int fd, unsigned events);
int tk_loop_fd_del(tk_loop *loop, int fd);

/*
 * Timers.  tk_loop_timer_arm (re)arms: first expiry `delay_ns` from now; if
 * `period_ns` is non-zero it then repeats every period, measured from the
 * previous deadline (no drift).  A periodic timer that fell behind by more
 * than one period skips the missed expiries (it fires once, then keeps the
 * phase).  Arming an armed timer re-arms it.  A callback may arm, cancel or
 * free any timer, including its own.
 */
int tk_loop_timer_new(tk_loop *loop, tk_loop_timer **out,
    tk_loop_timer_fn fn, void *arg);
int tk_loop_timer_arm(tk_loop_timer *t, uint64_t delay_ns,
    uint64_t period_ns);
void tk_loop_timer_cancel(tk_loop_timer *t);
bool tk_loop_timer_armed(const tk_loop_timer *t);
/* Cancels and frees.  NULL is a no-op. */
void tk_loop_timer_free(tk_loop_timer *t);

/*
 * Posts.  tk_loop_post queues fn(arg) to run on the loop thread; safe from any
 * thread.  TK_ENOMEM if the queue node cannot be allocated.
 *
 * tk_loop_post_item is the allocation-free form for code that must not fail
 * (nng aio callbacks): the caller owns `it` and must not post it again until
 * it has run or been cancelled.  tk_loop_post_cancel removes a queued item
 * (true if it was queued); after it returns the item will not run.
 */
typedef struct tk_loop_item {
	struct tk_loop_item *li_next, *li_prev; /* loop-private */
	tk_loop_post_fn li_fn;
	void *li_arg;
	bool li_queued; /* loop-private, under the loop's post lock */
	bool li_heap;	/* loop-private: allocated by tk_loop_post */
} tk_loop_item;

int tk_loop_post(tk_loop *loop, tk_loop_post_fn fn, void *arg);
void tk_loop_item_init(tk_loop_item *it, tk_loop_post_fn fn, void *arg);
/* Returns false if `it` was already queued (it then runs once). */
bool tk_loop_post_item(tk_loop *loop, tk_loop_item *it);
bool tk_loop_post_cancel(tk_loop *loop, tk_loop_item *it);

/* Hook run before each wait that may block; NULL clears. */
void tk_loop_set_before_sleep(tk_loop *loop, tk_loop_hook_fn fn, void *arg);

/*
 * Runs until tk_loop_stop.  A stop requested before tk_loop_run (or while it
 * runs) makes it return after the current iteration; the request is consumed.
 */
int tk_loop_run(tk_loop *loop);
/*
 * One iteration: wait up to timeout_ms (-1: until something happens, 0: do
 * not block), then run ready fds, expired timers and queued posts.
 */
int tk_loop_run_once(tk_loop *loop, int timeout_ms);
/* Safe from any thread and from callbacks. */
void tk_loop_stop(tk_loop *loop);

/* Counters, for tests and status. */
typedef struct tk_loop_stats {
	uint64_t ls_iterations;
	uint64_t ls_fd_events;
	uint64_t ls_timers_fired;
	uint64_t ls_posts_run;
} tk_loop_stats;
void tk_loop_stats_get(const tk_loop *loop, tk_loop_stats *out);

#endif
