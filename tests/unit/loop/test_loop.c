#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tk/core.h"
#include "tk/loop.h"
#include "tk_test.h"

void register_loop(void);

static uint64_t
mono_ms(void)
{
	return tk_clock_mono_ns(NULL) / TK_NSEC_PER_MSEC;
}

/* ---- fds ---------------------------------------------------------------- */

struct fdrec {
	int calls;
	unsigned last;
	int del_fd; /* fd to delete from the callback, or -1 */
	int deleted_by_other;
};

static void
fd_cb(tk_loop *loop, int fd, unsigned ev, void *arg)
{
	struct fdrec *r = arg;

	(void)fd;
	r->calls++;
	r->last = ev;
	if (r->del_fd >= 0) {
		CU_ASSERT_EQUAL(tk_loop_fd_del(loop, r->del_fd), 0);
		r->del_fd = -1;
	}
}

static void
test_fd_level(void)
{
	tk_loop *loop;
	int p[2];
	struct fdrec r = { .del_fd = -1 };
	char c = 'x';

	CU_ASSERT_FATAL(tk_loop_new(&loop, NULL) == 0);
	CU_ASSERT_FATAL(pipe(p) == 0);
	CU_ASSERT_EQUAL(tk_loop_fd_add(loop, p[0], TK_LOOP_READ, fd_cb, &r), 0);
	CU_ASSERT_EQUAL(tk_loop_fd_add(loop, p[0], TK_LOOP_READ, fd_cb, &r),
	    TK_EEXIST);
	CU_ASSERT_EQUAL(tk_loop_fd_add(loop, -1, TK_LOOP_READ, fd_cb, &r),
	    TK_EINVAL);
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(r.calls, 0);
	CU_ASSERT_EQUAL(write(p[1], &c, 1), 1);
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 1000), 0);
	CU_ASSERT_EQUAL(r.calls, 1);
	CU_ASSERT(r.last & TK_LOOP_READ);
	/* Level-triggered: not drained, so it fires again. */
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(r.calls, 2);
	CU_ASSERT_EQUAL(read(p[0], &c, 1), 1);
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(r.calls, 2);
	/* Switch interest to write on the write end. */
	CU_ASSERT_EQUAL(tk_loop_fd_del(loop, p[0]), 0);
	CU_ASSERT_EQUAL(tk_loop_fd_del(loop, p[0]), TK_ENOENT);
	CU_ASSERT_EQUAL(tk_loop_fd_add(loop, p[1], TK_LOOP_READ, fd_cb, &r), 0);
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(r.calls, 2);
	CU_ASSERT_EQUAL(tk_loop_fd_mod(loop, p[1], TK_LOOP_WRITE), 0);
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 1000), 0);
	CU_ASSERT_EQUAL(r.calls, 3);
	CU_ASSERT(r.last & TK_LOOP_WRITE);
	CU_ASSERT_EQUAL(tk_loop_fd_mod(loop, 12345, TK_LOOP_WRITE), TK_ENOENT);
	/* Closing the read end: the write end reports an error. */
	close(p[0]);
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 1000), 0);
	CU_ASSERT(r.last & TK_LOOP_ERROR);
	/* The registration is left for tk_loop_free to discard. */
	tk_loop_free(loop);
	close(p[1]);
}

static void
test_fd_edge(void)
{
	tk_loop *loop;
	int p[2];
	struct fdrec r = { .del_fd = -1 };
	char c = 'x';

	CU_ASSERT_FATAL(tk_loop_new(&loop, NULL) == 0);
	CU_ASSERT_FATAL(pipe(p) == 0);
	CU_ASSERT_EQUAL(tk_loop_fd_add(loop, p[0], TK_LOOP_READ | TK_LOOP_EDGE,
			    fd_cb, &r),
	    0);
	CU_ASSERT_EQUAL(write(p[1], &c, 1), 1);
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 1000), 0);
	CU_ASSERT_EQUAL(r.calls, 1);
	/* Edge-triggered: no new data, no new call, though still readable. */
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(r.calls, 1);
	CU_ASSERT_EQUAL(write(p[1], &c, 1), 1);
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 1000), 0);
	CU_ASSERT_EQUAL(r.calls, 2);
	tk_loop_free(loop);
	close(p[0]);
	close(p[1]);
}

/* Two fds ready in the same iteration; whichever runs first deletes the other. */
static void
test_fd_delete_in_callback(void)
{
	tk_loop *loop;
	int a[2], b[2];
	struct fdrec ra = { .del_fd = -1 }, rb = { .del_fd = -1 };
	char c = 'x';

	CU_ASSERT_FATAL(tk_loop_new(&loop, NULL) == 0);
	CU_ASSERT_FATAL(pipe(a) == 0 && pipe(b) == 0);
	ra.del_fd = b[0];
	rb.del_fd = a[0];
	CU_ASSERT_EQUAL(tk_loop_fd_add(loop, a[0], TK_LOOP_READ, fd_cb, &ra), 0);
	CU_ASSERT_EQUAL(tk_loop_fd_add(loop, b[0], TK_LOOP_READ, fd_cb, &rb), 0);
	CU_ASSERT_EQUAL(write(a[1], &c, 1), 1);
	CU_ASSERT_EQUAL(write(b[1], &c, 1), 1);
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 1000), 0);
	CU_ASSERT_EQUAL(ra.calls + rb.calls, 1);
	/* The survivor keeps firing (level), the deleted one never does. */
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(ra.calls + rb.calls, 2);
	CU_ASSERT(ra.calls == 2 || rb.calls == 2);
	tk_loop_free(loop);
	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
}

/* ---- timers (fake clock) ---------------------------------------------- */

struct order {
	int seen[32];
	int n;
	tk_loop_timer *cancel; /* cancel this from the callback */
	tk_loop_timer *rearm0; /* re-arm this with delay 0 */
	bool free_self;
};

struct tctx {
	struct order *o;
	int id;
};

static void
order_cb(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	struct tctx *c = arg;

	(void)loop;
	if (c->o->n < 32)
		c->o->seen[c->o->n++] = c->id;
	if (c->o->cancel != NULL) {
		tk_loop_timer_cancel(c->o->cancel);
		c->o->cancel = NULL;
	}
	if (c->o->rearm0 == t)
		CU_ASSERT_EQUAL(tk_loop_timer_arm(t, 0, 0), 0);
	if (c->o->free_self) {
		c->o->free_self = false;
		tk_loop_timer_free(t);
	}
}

static void
test_timer_order(void)
{
	tk_fake_clock fc;
	tk_loop_cfg cfg;
	tk_loop *loop;
	tk_loop_timer *t[5];
	struct order o;
	struct tctx c[5];
	static const uint64_t delay[5] = { 30, 10, 20, 10, 40 };

	memset(&o, 0, sizeof(o));
	tk_fake_clock_init(&fc, 1000 * TK_NSEC_PER_SEC, 0);
	cfg.clock = &fc.fc_clock;
	CU_ASSERT_FATAL(tk_loop_new(&loop, &cfg) == 0);
	for (int i = 0; i < 5; i++) {
		c[i].o = &o;
		c[i].id = i;
		CU_ASSERT_FATAL(tk_loop_timer_new(loop, &t[i], order_cb, &c[i]) ==
		    0);
		CU_ASSERT_FALSE(tk_loop_timer_armed(t[i]));
		CU_ASSERT_EQUAL(tk_loop_timer_arm(t[i],
				    delay[i] * TK_NSEC_PER_MSEC, 0),
		    0);
		CU_ASSERT_TRUE(tk_loop_timer_armed(t[i]));
	}
	/* Nothing due yet. */
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(o.n, 0);
	/* Cancel #2 (20 ms) before it fires. */
	tk_loop_timer_cancel(t[2]);
	CU_ASSERT_FALSE(tk_loop_timer_armed(t[2]));
	tk_fake_clock_advance(&fc, 10 * TK_NSEC_PER_MSEC);
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	/* Ties fire in arming order. */
	CU_ASSERT_EQUAL(o.n, 2);
	CU_ASSERT_EQUAL(o.seen[0], 1);
	CU_ASSERT_EQUAL(o.seen[1], 3);
	/* Both remaining due at once: deadline order; #0's callback cancels #4. */
	o.cancel = t[4];
	tk_fake_clock_advance(&fc, 100 * TK_NSEC_PER_MSEC);
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(o.n, 3);
	CU_ASSERT_EQUAL(o.seen[2], 0);
	CU_ASSERT_FALSE(tk_loop_timer_armed(t[4]));
	/* Re-arming a fired one-shot works; re-arming an armed one moves it. */
	CU_ASSERT_EQUAL(tk_loop_timer_arm(t[1], 5 * TK_NSEC_PER_MSEC, 0), 0);
	CU_ASSERT_EQUAL(tk_loop_timer_arm(t[1], 50 * TK_NSEC_PER_MSEC, 0), 0);
	tk_fake_clock_advance(&fc, 10 * TK_NSEC_PER_MSEC);
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(o.n, 3);
	tk_fake_clock_advance(&fc, 40 * TK_NSEC_PER_MSEC);
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(o.n, 4);
	CU_ASSERT_EQUAL(o.seen[3], 1);
	/* A timer may free itself from its callback. */
	o.free_self = true;
	CU_ASSERT_EQUAL(tk_loop_timer_arm(t[3], 0, 0), 0);
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(o.n, 5);
	CU_ASSERT_EQUAL(o.seen[4], 3);
	/* A zero-delay re-arm fires once per iteration, not in a spin. */
	o.rearm0 = t[0];
	CU_ASSERT_EQUAL(tk_loop_timer_arm(t[0], 0, 0), 0);
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(o.n, 6);
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(o.n, 7);
	o.rearm0 = NULL;
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(o.n, 8);
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(o.n, 8);
	tk_loop_timer_free(t[0]);
	tk_loop_timer_free(NULL);
	/* t[1], t[2], t[4] are left for tk_loop_free. */
	tk_loop_free(loop);
}

static void
test_timer_periodic(void)
{
	tk_fake_clock fc;
	tk_loop_cfg cfg;
	tk_loop *loop;
	tk_loop_timer *t;
	struct order o;
	struct tctx c = { &o, 7 };

	memset(&o, 0, sizeof(o));
	tk_fake_clock_init(&fc, TK_NSEC_PER_SEC, 0);
	cfg.clock = &fc.fc_clock;
	CU_ASSERT_FATAL(tk_loop_new(&loop, &cfg) == 0);
	CU_ASSERT_FATAL(tk_loop_timer_new(loop, &t, order_cb, &c) == 0);
	/* First expiry after 5, then every 10: 5, 15, 25, ... */
	CU_ASSERT_EQUAL(tk_loop_timer_arm(t, 5, 10), 0);
	tk_fake_clock_advance(&fc, 5);
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(o.n, 1);
	CU_ASSERT_TRUE(tk_loop_timer_armed(t));
	tk_fake_clock_advance(&fc, 9); /* t = 14 */
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(o.n, 1);
	tk_fake_clock_advance(&fc, 1); /* t = 15 */
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(o.n, 2);
	/* Fall behind by 3.5 periods: one expiry, phase kept (next at 55). */
	tk_fake_clock_advance(&fc, 35); /* t = 50 */
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(o.n, 3);
	tk_fake_clock_advance(&fc, 4); /* t = 54 */
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(o.n, 3);
	tk_fake_clock_advance(&fc, 1); /* t = 55 */
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(o.n, 4);
	tk_loop_timer_cancel(t);
	tk_fake_clock_advance(&fc, 100);
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(o.n, 4);
	tk_loop_timer_free(t);
	tk_loop_free(loop);
}

/* Many timers with pseudo-random deadlines fire in sorted order. */
static int fired_prev_ok;
static uint64_t fired_prev;
static int fired_n;

static void
sorted_cb(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	uint64_t d = (uint64_t)(uintptr_t)arg;

	(void)loop;
	(void)t;
	if (d < fired_prev)
		fired_prev_ok = 0;
	fired_prev = d;
	fired_n++;
}

static void
test_timer_heap_many(void)
{
	tk_fake_clock fc;
	tk_loop_cfg cfg;
	tk_loop *loop;
	tk_loop_timer *t[500];
	tk_fake_rng fr;

	tk_fake_rng_init(&fr, 42);
	tk_fake_clock_init(&fc, 0, 0);
	cfg.clock = &fc.fc_clock;
	CU_ASSERT_FATAL(tk_loop_new(&loop, &cfg) == 0);
	for (int i = 0; i < 500; i++) {
		uint64_t d = tk_rng_uniform(&fr.fr_rng, 1000) + 1;

		CU_ASSERT_FATAL(tk_loop_timer_new(loop, &t[i], sorted_cb,
				    (void *)(uintptr_t)d) == 0);
		CU_ASSERT_EQUAL(tk_loop_timer_arm(t[i], d, 0), 0);
	}
	/* Cancel every third one, from the middle of the heap too. */
	for (int i = 0; i < 500; i += 3)
		tk_loop_timer_cancel(t[i]);
	fired_prev_ok = 1;
	fired_prev = 0;
	fired_n = 0;
	tk_fake_clock_advance(&fc, 2000);
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(fired_n, 500 - 167);
	CU_ASSERT_TRUE(fired_prev_ok);
	tk_loop_free(loop);
}

/* ---- real clock: timers and stop --------------------------------------- */

static void
stop_cb(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	int *n = arg;

	(void)t;
	if (++*n == 3)
		tk_loop_stop(loop);
}

static void
test_timer_real_clock(void)
{
	tk_loop *loop;
	tk_loop_timer *t, *watchdog;
	int n = 0, wd = 0;
	uint64_t t0;

	CU_ASSERT_FATAL(tk_loop_new(&loop, NULL) == 0);
	CU_ASSERT_FATAL(tk_loop_timer_new(loop, &t, stop_cb, &n) == 0);
	CU_ASSERT_FATAL(tk_loop_timer_new(loop, &watchdog, stop_cb, &wd) == 0);
	CU_ASSERT_EQUAL(tk_loop_timer_arm(watchdog, 5 * TK_NSEC_PER_SEC,
			    TK_NSEC_PER_SEC),
	    0);
	t0 = mono_ms();
	CU_ASSERT_EQUAL(tk_loop_timer_arm(t, 20 * TK_NSEC_PER_MSEC,
			    20 * TK_NSEC_PER_MSEC),
	    0);
	CU_ASSERT_EQUAL(tk_loop_run(loop), 0);
	CU_ASSERT_EQUAL(n, 3);
	CU_ASSERT_EQUAL(wd, 0);
	CU_ASSERT(mono_ms() - t0 >= 60);
	CU_ASSERT(mono_ms() - t0 < 2000);
	tk_loop_free(loop);
}

struct stopper {
	tk_loop *loop;
	int delay_ms;
};

static void *
stop_thread(void *arg)
{
	struct stopper *s = arg;

	usleep((useconds_t)s->delay_ms * 1000);
	tk_loop_stop(s->loop);
	return NULL;
}

static void
test_stop_other_thread(void)
{
	tk_loop *loop;
	pthread_t th;
	struct stopper s;
	uint64_t t0;

	CU_ASSERT_FATAL(tk_loop_new(&loop, NULL) == 0);
	/* A stop before run is consumed by the next run. */
	tk_loop_stop(loop);
	t0 = mono_ms();
	CU_ASSERT_EQUAL(tk_loop_run(loop), 0);
	CU_ASSERT(mono_ms() - t0 < 500);
	/* A blocked run (no fds, no timers) wakes up on a foreign stop. */
	s.loop = loop;
	s.delay_ms = 50;
	CU_ASSERT_FATAL(pthread_create(&th, NULL, stop_thread, &s) == 0);
	t0 = mono_ms();
	CU_ASSERT_EQUAL(tk_loop_run(loop), 0);
	CU_ASSERT(mono_ms() - t0 >= 40);
	CU_ASSERT(mono_ms() - t0 < 3000);
	pthread_join(th, NULL);
	tk_loop_free(loop);
}

/* ---- posts -------------------------------------------------------------- */

#define POST_THREADS 8
#define POSTS_EACH   20000

struct poststate {
	tk_loop *loop;
	uint64_t count;	/* loop thread only */
	uint32_t next[POST_THREADS];
	int out_of_order;
	atomic_int post_fail;
};

struct postarg {
	struct poststate *st;
	int thread;
	uint32_t seq;
};

static void
post_fn(void *arg)
{
	struct postarg *p = arg;
	struct poststate *st = p->st;

	if (p->seq != st->next[p->thread])
		st->out_of_order++;
	st->next[p->thread] = p->seq + 1;
	if (++st->count == (uint64_t)POST_THREADS * POSTS_EACH)
		tk_loop_stop(st->loop);
}

struct poster {
	struct poststate *st;
	int id;
	struct postarg *args;
};

static void *
post_thread(void *arg)
{
	struct poster *p = arg;

	for (uint32_t i = 0; i < POSTS_EACH; i++) {
		p->args[i].st = p->st;
		p->args[i].thread = p->id;
		p->args[i].seq = i;
		if (tk_loop_post(p->st->loop, post_fn, &p->args[i]) != 0)
			atomic_fetch_add(&p->st->post_fail, 1);
	}
	return NULL;
}

static void
watchdog_cb(tk_loop *loop, tk_loop_timer *t, void *arg)
{
	int *fired = arg;

	(void)t;
	*fired = 1;
	tk_loop_stop(loop);
}

static void
test_posts_many_threads(void)
{
	static struct poststate st;
	static struct postarg args[POST_THREADS][POSTS_EACH];
	struct poster ps[POST_THREADS];
	pthread_t th[POST_THREADS];
	tk_loop_timer *wd;
	int wd_fired = 0;
	tk_loop_stats stats;

	memset(&st, 0, sizeof(st));
	CU_ASSERT_FATAL(tk_loop_new(&st.loop, NULL) == 0);
	CU_ASSERT_FATAL(tk_loop_timer_new(st.loop, &wd, watchdog_cb,
			    &wd_fired) == 0);
	CU_ASSERT_EQUAL(tk_loop_timer_arm(wd, 30 * TK_NSEC_PER_SEC, 0), 0);
	for (int i = 0; i < POST_THREADS; i++) {
		ps[i].st = &st;
		ps[i].id = i;
		ps[i].args = args[i];
		CU_ASSERT_FATAL(pthread_create(&th[i], NULL, post_thread,
				    &ps[i]) == 0);
	}
	CU_ASSERT_EQUAL(tk_loop_run(st.loop), 0);
	for (int i = 0; i < POST_THREADS; i++)
		pthread_join(th[i], NULL);
	CU_ASSERT_EQUAL(wd_fired, 0);
	CU_ASSERT_EQUAL(atomic_load(&st.post_fail), 0);
	CU_ASSERT_EQUAL(st.count, (uint64_t)POST_THREADS * POSTS_EACH);
	CU_ASSERT_EQUAL(st.out_of_order, 0);
	tk_loop_stats_get(st.loop, &stats);
	CU_ASSERT_EQUAL(stats.ls_posts_run, (uint64_t)POST_THREADS * POSTS_EACH);
	tk_loop_free(st.loop);
}

static int item_runs;

static void
item_fn(void *arg)
{
	(void)arg;
	item_runs++;
}

static void
test_post_item_cancel(void)
{
	tk_loop *loop;
	tk_loop_item a, b;

	CU_ASSERT_FATAL(tk_loop_new(&loop, NULL) == 0);
	item_runs = 0;
	tk_loop_item_init(&a, item_fn, NULL);
	tk_loop_item_init(&b, item_fn, NULL);
	CU_ASSERT_TRUE(tk_loop_post_item(loop, &a));
	CU_ASSERT_FALSE(tk_loop_post_item(loop, &a)); /* already queued */
	CU_ASSERT_TRUE(tk_loop_post_item(loop, &b));
	CU_ASSERT_TRUE(tk_loop_post_cancel(loop, &b));
	CU_ASSERT_FALSE(tk_loop_post_cancel(loop, &b));
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(item_runs, 1);
	CU_ASSERT_FALSE(tk_loop_post_cancel(loop, &a)); /* already ran */
	CU_ASSERT_TRUE(tk_loop_post_item(loop, &a));	/* and can go again */
	CU_ASSERT_EQUAL(tk_loop_post(loop, item_fn, NULL), 0);
	CU_ASSERT_EQUAL(tk_loop_post(loop, NULL, NULL), TK_EINVAL);
	/* Pending posts at free: discarded (heap node freed: ASan checks). */
	tk_loop_free(loop);
	CU_ASSERT_EQUAL(item_runs, 1);
}

/* A post that re-posts itself runs once per iteration, never in a spin. */
static tk_loop *repost_loop;
static int repost_runs;

static void
repost_fn(void *arg)
{
	(void)arg;
	if (++repost_runs < 100)
		CU_ASSERT_EQUAL(tk_loop_post(repost_loop, repost_fn, NULL), 0);
}

static void
test_post_repost_fair(void)
{
	CU_ASSERT_FATAL(tk_loop_new(&repost_loop, NULL) == 0);
	repost_runs = 0;
	CU_ASSERT_EQUAL(tk_loop_post(repost_loop, repost_fn, NULL), 0);
	CU_ASSERT_EQUAL(tk_loop_run_once(repost_loop, 0), 0);
	CU_ASSERT_EQUAL(repost_runs, 1);
	/* The queued re-post makes the next wait non-blocking. */
	CU_ASSERT_EQUAL(tk_loop_run_once(repost_loop, 5000), 0);
	CU_ASSERT_EQUAL(repost_runs, 2);
	tk_loop_free(repost_loop);
}

/* ---- before-sleep hook -------------------------------------------------- */

struct hookst {
	int calls;
	tk_loop *loop;
};

static void
hook_post_fn(void *arg)
{
	struct hookst *h = arg;

	tk_loop_stop(h->loop);
}

static void
hook_fn(tk_loop *loop, void *arg)
{
	struct hookst *h = arg;

	h->calls++;
	/* Work added by the hook must not be slept on. */
	CU_ASSERT_EQUAL(tk_loop_post(loop, hook_post_fn, h), 0);
}

static void
test_before_sleep(void)
{
	tk_loop *loop;
	struct hookst h = { 0, NULL };
	uint64_t t0;

	CU_ASSERT_FATAL(tk_loop_new(&loop, NULL) == 0);
	h.loop = loop;
	tk_loop_set_before_sleep(loop, hook_fn, &h);
	/* A non-blocking iteration does not call the hook. */
	CU_ASSERT_EQUAL(tk_loop_run_once(loop, 0), 0);
	CU_ASSERT_EQUAL(h.calls, 0);
	t0 = mono_ms();
	CU_ASSERT_EQUAL(tk_loop_run(loop), 0);
	CU_ASSERT(mono_ms() - t0 < 2000);
	CU_ASSERT_EQUAL(h.calls, 1);
	tk_loop_set_before_sleep(loop, NULL, NULL);
	tk_loop_free(loop);
}

/* ---- allocation failure ------------------------------------------------ */

static void
test_alloc_failure(void)
{
	tk_loop *loop = NULL;
	tk_loop_timer *t;
	int rv = TK_ENOMEM;
	unsigned long n;

	for (n = 1; n < 50; n++) {
		tk_fault_arm(n);
		rv = tk_loop_new(&loop, NULL);
		if (!tk_fault_fired()) {
			tk_fault_disarm();
			break;
		}
		CU_ASSERT_EQUAL(rv, TK_ENOMEM);
	}
	tk_fault_disarm();
	CU_ASSERT_EQUAL_FATAL(rv, 0);
	tk_fault_arm(1);
	CU_ASSERT_EQUAL(tk_loop_post(loop, item_fn, NULL), TK_ENOMEM);
	tk_fault_arm(1);
	CU_ASSERT_EQUAL(tk_loop_timer_new(loop, &t, watchdog_cb, NULL),
	    TK_ENOMEM);
	tk_fault_disarm();
	tk_loop_free(loop);
	tk_loop_free(NULL);
}

void
register_loop(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_fd_level),
		TK_TEST(test_fd_edge),
		TK_TEST(test_fd_delete_in_callback),
		TK_TEST(test_timer_order),
		TK_TEST(test_timer_periodic),
		TK_TEST(test_timer_heap_many),
		TK_TEST(test_timer_real_clock),
		TK_TEST(test_stop_other_thread),
		TK_TEST(test_posts_many_threads),
		TK_TEST(test_post_item_cancel),
		TK_TEST(test_post_repost_fair),
		TK_TEST(test_before_sleep),
		TK_TEST(test_alloc_failure),
		TK_TEST_END,
	};

	tk_test_suite("loop", cases);
}
