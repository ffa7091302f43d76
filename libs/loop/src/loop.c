/*
 * tk_loop: epoll + one timerfd + one eventfd.
 *
 * Iteration: (hook) -> epoll_wait -> fd callbacks -> expired timers -> posts.
 * Deleted fd records are parked on a zombie list until the iteration ends,
 * so an event already returned by epoll for a deleted fd finds a dead record
 * instead of freed memory.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"

#include "loop_int.h"

#define MAX_EVENTS 64

enum io_kind { IO_USER, IO_TIMERFD, IO_EVENTFD };

struct io {
	enum io_kind io_kind;
	int io_fd;
	unsigned io_events;
	bool io_dead;
	tk_loop_fd_fn io_fn;
	void *io_arg;
	struct io *io_next_zombie;
};

struct tk_loop {
	int l_epfd;
	const tk_clock *l_clock;

	/* fds, indexed by fd number */
	struct io **l_fds;
	size_t l_fds_cap;
	struct io *l_zombies;
	bool l_dispatching;
	struct io l_tfd_io;
	struct io l_efd_io;

	/* timers */
	tki_theap l_heap;
	uint64_t l_seq;
	uint64_t l_tfd_deadline; /* what the timerfd is armed for */
	tk_loop_timer *l_timers; /* all timers (for tk_loop_free) */

	/* posts: circular list with sentinel, under l_post_mtx */
	pthread_mutex_t l_post_mtx;
	tk_loop_item l_posts;
	size_t l_post_len;

	atomic_bool l_stop;
	tk_loop_hook_fn l_hook;
	void *l_hook_arg;
	tk_loop_stats l_stats;
};

#define NO_DEADLINE UINT64_MAX

static void
wake(tk_loop *loop)
{
	uint64_t one = 1;
	ssize_t n;

	/* EAGAIN means the counter is already non-zero: still a wake-up. */
	do
		n = write(loop->l_efd_io.io_fd, &one, sizeof(one));
	while (n < 0 && errno == EINTR);
}

static void
drain_fd(int fd)
{
	uint64_t v;
	ssize_t n;

	do
		n = read(fd, &v, sizeof(v));
	while (n < 0 && errno == EINTR);
}

static uint32_t
to_epoll(unsigned events)
{
	uint32_t e = 0;

	if (events & TK_LOOP_READ)
		e |= EPOLLIN;
	if (events & TK_LOOP_WRITE)
		e |= EPOLLOUT;
	if (events & TK_LOOP_EDGE)
		e |= EPOLLET;
	return e;
}

static unsigned
from_epoll(uint32_t e, unsigned interest)
{
	unsigned r = 0;

	if (e & EPOLLIN)
		r |= TK_LOOP_READ;
	if (e & EPOLLOUT)
		r |= TK_LOOP_WRITE;
	if (e & (EPOLLERR | EPOLLHUP))
		r |= TK_LOOP_ERROR | (interest & (TK_LOOP_READ | TK_LOOP_WRITE));
	return r;
}

static int
epoll_add_internal(tk_loop *loop, struct io *io)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = io };

	if (epoll_ctl(loop->l_epfd, EPOLL_CTL_ADD, io->io_fd, &ev) != 0)
		return tk_err_sys(errno);
	return 0;
}

int
tk_loop_new(tk_loop **out, const tk_loop_cfg *cfg)
{
	tk_loop *loop;
	int rv;

	if (out == NULL)
		return TK_EINVAL;
	if ((loop = tk_calloc(1, sizeof(*loop))) == NULL)
		return TK_ENOMEM;
	loop->l_clock = cfg != NULL && cfg->clock != NULL ? cfg->clock
							  : tk_clock_system();
	loop->l_epfd = loop->l_tfd_io.io_fd = loop->l_efd_io.io_fd = -1;
	loop->l_tfd_deadline = NO_DEADLINE;
	tki_theap_init(&loop->l_heap);
	loop->l_posts.li_next = loop->l_posts.li_prev = &loop->l_posts;
	atomic_init(&loop->l_stop, false);
	if ((rv = pthread_mutex_init(&loop->l_post_mtx, NULL)) != 0) {
		tk_free(loop);
		return tk_err_sys(rv);
	}
	loop->l_tfd_io.io_kind = IO_TIMERFD;
	loop->l_efd_io.io_kind = IO_EVENTFD;
	if ((loop->l_epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
	    (loop->l_tfd_io.io_fd = timerfd_create(CLOCK_MONOTONIC,
		 TFD_NONBLOCK | TFD_CLOEXEC)) < 0 ||
	    (loop->l_efd_io.io_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) <
		0) {
		rv = tk_err_sys(errno);
		goto fail;
	}
	if ((rv = epoll_add_internal(loop, &loop->l_tfd_io)) != 0 ||
	    (rv = epoll_add_internal(loop, &loop->l_efd_io)) != 0)
		goto fail;
	*out = loop;
	return 0;
fail:
	if (rv == 0)
		rv = TK_EINTERNAL;
	tk_loop_free(loop);
	return rv;
}

static void
free_zombies(tk_loop *loop)
{
	struct io *z;

	while ((z = loop->l_zombies) != NULL) {
		loop->l_zombies = z->io_next_zombie;
		tk_free(z);
	}
}

void
tk_loop_free(tk_loop *loop)
{
	tk_loop_item *it;

	if (loop == NULL)
		return;
	for (size_t i = 0; i < loop->l_fds_cap; i++)
		tk_free(loop->l_fds[i]);
	tk_free(loop->l_fds);
	free_zombies(loop);
	while (loop->l_timers != NULL)
		tk_loop_timer_free(loop->l_timers);
	tki_theap_fini(&loop->l_heap);
	while ((it = loop->l_posts.li_next) != &loop->l_posts) {
		it->li_prev->li_next = it->li_next;
		it->li_next->li_prev = it->li_prev;
		it->li_queued = false;
		if (it->li_heap)
			tk_free(it);
	}
	pthread_mutex_destroy(&loop->l_post_mtx);
	if (loop->l_efd_io.io_fd >= 0)
		close(loop->l_efd_io.io_fd);
	if (loop->l_tfd_io.io_fd >= 0)
		close(loop->l_tfd_io.io_fd);
	if (loop->l_epfd >= 0)
		close(loop->l_epfd);
	tk_free(loop);
}

uint64_t
tk_loop_now(const tk_loop *loop)
{
	return tk_clock_mono_ns(loop->l_clock);
}

/* ---- fds ---------------------------------------------------------------- */

static struct io *
io_get(tk_loop *loop, int fd)
{
	if (fd < 0 || (size_t)fd >= loop->l_fds_cap)
		return NULL;
	return loop->l_fds[fd];
}

int
tk_loop_fd_add(tk_loop *loop, int fd, unsigned events, tk_loop_fd_fn fn,
    void *arg)
{
	struct epoll_event ev;
	struct io *io;

	if (loop == NULL || fd < 0 || fn == NULL ||
	    (events & ~(TK_LOOP_READ | TK_LOOP_WRITE | TK_LOOP_EDGE)) != 0)
		return TK_EINVAL;
	if (io_get(loop, fd) != NULL)
		return TK_EEXIST;
	if ((size_t)fd >= loop->l_fds_cap) {
		size_t ncap = loop->l_fds_cap ? loop->l_fds_cap : 64;
		struct io **nv;

		while (ncap <= (size_t)fd)
			ncap *= 2;
		if ((nv = tk_realloc(loop->l_fds, ncap * sizeof(*nv))) == NULL)
			return TK_ENOMEM;
		memset(nv + loop->l_fds_cap, 0,
		    (ncap - loop->l_fds_cap) * sizeof(*nv));
		loop->l_fds = nv;
		loop->l_fds_cap = ncap;
	}
	if ((io = tk_calloc(1, sizeof(*io))) == NULL)
		return TK_ENOMEM;
	io->io_kind = IO_USER;
	io->io_fd = fd;
	io->io_events = events;
	io->io_fn = fn;
	io->io_arg = arg;
	ev.events = to_epoll(events);
	ev.data.ptr = io;
	if (epoll_ctl(loop->l_epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
		int rv = tk_err_sys(errno);

		tk_free(io);
		return rv;
	}
	loop->l_fds[fd] = io;
	return 0;
}

int
tk_loop_fd_mod(tk_loop *loop, int fd, unsigned events)
{
	struct epoll_event ev;
	struct io *io;

	if (loop == NULL ||
	    (events & ~(TK_LOOP_READ | TK_LOOP_WRITE | TK_LOOP_EDGE)) != 0)
		return TK_EINVAL;
	if ((io = io_get(loop, fd)) == NULL)
		return TK_ENOENT;
	ev.events = to_epoll(events);
	ev.data.ptr = io;
	if (epoll_ctl(loop->l_epfd, EPOLL_CTL_MOD, fd, &ev) != 0)
		return tk_err_sys(errno);
	io->io_events = events;
	return 0;
}

int
tk_loop_fd_del(tk_loop *loop, int fd)
{
	struct io *io;

	if (loop == NULL)
		return TK_EINVAL;
	if ((io = io_get(loop, fd)) == NULL)
		return TK_ENOENT;
	/*
	 * If the caller already closed the fd, the kernel dropped it from the
	 * epoll set (EBADF/ENOENT here); our record still has to go.
	 */
	(void)epoll_ctl(loop->l_epfd, EPOLL_CTL_DEL, fd, NULL);
	loop->l_fds[fd] = NULL;
	io->io_dead = true;
	if (loop->l_dispatching) {
		io->io_next_zombie = loop->l_zombies;
		loop->l_zombies = io;
	} else {
		tk_free(io);
	}
	return 0;
}

/* ---- timers ------------------------------------------------------------- */

int
tk_loop_timer_new(tk_loop *loop, tk_loop_timer **out, tk_loop_timer_fn fn,
    void *arg)
{
	tk_loop_timer *t;

	if (loop == NULL || out == NULL || fn == NULL)
		return TK_EINVAL;
	if ((t = tk_calloc(1, sizeof(*t))) == NULL)
		return TK_ENOMEM;
	t->t_loop = loop;
	t->t_fn = fn;
	t->t_arg = arg;
	t->t_idx = TKI_HEAP_NONE;
	t->t_next = loop->l_timers;
	if (t->t_next != NULL)
		t->t_next->t_prev = t;
	loop->l_timers = t;
	*out = t;
	return 0;
}

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
	return a > NO_DEADLINE - 1 - b ? NO_DEADLINE - 1 : a + b;
}

int
tk_loop_timer_arm(tk_loop_timer *t, uint64_t delay_ns, uint64_t period_ns)
{
	tk_loop *loop;

	if (t == NULL)
		return TK_EINVAL;
	loop = t->t_loop;
	tki_theap_remove(&loop->l_heap, t);
	t->t_deadline = sat_add(tk_loop_now(loop), delay_ns);
	t->t_period = period_ns;
	t->t_seq = loop->l_seq++;
	return tki_theap_push(&loop->l_heap, t);
}

void
tk_loop_timer_cancel(tk_loop_timer *t)
{
	if (t != NULL)
		tki_theap_remove(&t->t_loop->l_heap, t);
}

bool
tk_loop_timer_armed(const tk_loop_timer *t)
{
	return t != NULL && t->t_idx != TKI_HEAP_NONE;
}

void
tk_loop_timer_free(tk_loop_timer *t)
{
	tk_loop *loop;

	if (t == NULL)
		return;
	loop = t->t_loop;
	tki_theap_remove(&loop->l_heap, t);
	if (t->t_prev != NULL)
		t->t_prev->t_next = t->t_next;
	else
		loop->l_timers = t->t_next;
	if (t->t_next != NULL)
		t->t_next->t_prev = t->t_prev;
	tk_free(t);
}

/* Keeps the timerfd armed for the earliest deadline (relative to the clock). */
static void
timerfd_sync(tk_loop *loop, uint64_t now)
{
	tk_loop_timer *t = tki_theap_peek(&loop->l_heap);
	uint64_t want = t ? t->t_deadline : NO_DEADLINE;
	struct itimerspec its;

	if (want == loop->l_tfd_deadline)
		return;
	memset(&its, 0, sizeof(its));
	if (want != NO_DEADLINE) {
		uint64_t d = want > now ? want - now : 1;

		its.it_value.tv_sec = (time_t)(d / TK_NSEC_PER_SEC);
		its.it_value.tv_nsec = (long)(d % TK_NSEC_PER_SEC);
	}
	if (timerfd_settime(loop->l_tfd_io.io_fd, 0, &its, NULL) == 0)
		loop->l_tfd_deadline = want;
	else
		loop->l_tfd_deadline = NO_DEADLINE; /* retried next time */
}

static void
run_timers(tk_loop *loop)
{
	uint64_t now = tk_loop_now(loop);
	uint64_t pass_seq = loop->l_seq;
	tk_loop_timer *t;

	/*
	 * Timers armed by callbacks in this pass get seq >= pass_seq and wait
	 * for the next pass, so a zero-delay re-arm cannot spin here.
	 */
	while ((t = tki_theap_peek(&loop->l_heap)) != NULL &&
	    t->t_deadline <= now && t->t_seq < pass_seq) {
		tki_theap_remove(&loop->l_heap, t);
		if (t->t_period != 0) {
			uint64_t next = sat_add(t->t_deadline, t->t_period);

			if (next <= now) { /* fell behind: skip, keep phase */
				uint64_t k = (now - t->t_deadline) / t->t_period;

				next = sat_add(t->t_deadline,
				    (k + 1) * t->t_period);
			}
			t->t_deadline = next;
			t->t_seq = loop->l_seq++;
			if (tki_theap_push(&loop->l_heap, t) != 0)
				TK_WARN("loop", "periodic timer dropped: ENOMEM");
		}
		loop->l_stats.ls_timers_fired++;
		t->t_fn(loop, t, t->t_arg); /* may free t */
	}
}

/* ---- posts -------------------------------------------------------------- */

void
tk_loop_item_init(tk_loop_item *it, tk_loop_post_fn fn, void *arg)
{
	memset(it, 0, sizeof(*it));
	it->li_fn = fn;
	it->li_arg = arg;
}

static bool
enqueue(tk_loop *loop, tk_loop_item *it)
{
	bool was_empty;

	pthread_mutex_lock(&loop->l_post_mtx);
	if (it->li_queued) {
		pthread_mutex_unlock(&loop->l_post_mtx);
		return false;
	}
	was_empty = loop->l_post_len == 0;
	it->li_next = &loop->l_posts;
	it->li_prev = loop->l_posts.li_prev;
	it->li_prev->li_next = it;
	loop->l_posts.li_prev = it;
	it->li_queued = true;
	loop->l_post_len++;
	pthread_mutex_unlock(&loop->l_post_mtx);
	/*
	 * Only the empty -> non-empty transition needs a wake-up: the loop
	 * checks the queue under the lock before it blocks.
	 */
	if (was_empty)
		wake(loop);
	return true;
}

int
tk_loop_post(tk_loop *loop, tk_loop_post_fn fn, void *arg)
{
	tk_loop_item *it;

	if (loop == NULL || fn == NULL)
		return TK_EINVAL;
	if ((it = tk_malloc(sizeof(*it))) == NULL)
		return TK_ENOMEM;
	tk_loop_item_init(it, fn, arg);
	it->li_heap = true;
	enqueue(loop, it);
	return 0;
}

bool
tk_loop_post_item(tk_loop *loop, tk_loop_item *it)
{
	return enqueue(loop, it);
}

static void
unlink_item(tk_loop *loop, tk_loop_item *it)
{
	it->li_prev->li_next = it->li_next;
	it->li_next->li_prev = it->li_prev;
	it->li_next = it->li_prev = NULL;
	it->li_queued = false;
	loop->l_post_len--;
}

bool
tk_loop_post_cancel(tk_loop *loop, tk_loop_item *it)
{
	bool was;

	pthread_mutex_lock(&loop->l_post_mtx);
	was = it->li_queued;
	if (was)
		unlink_item(loop, it);
	pthread_mutex_unlock(&loop->l_post_mtx);
	return was;
}

static void
run_posts(tk_loop *loop)
{
	size_t n;

	pthread_mutex_lock(&loop->l_post_mtx);
	n = loop->l_post_len; /* posts queued by these run next iteration */
	pthread_mutex_unlock(&loop->l_post_mtx);
	while (n-- > 0) {
		tk_loop_item *it;
		tk_loop_post_fn fn;
		void *arg;

		pthread_mutex_lock(&loop->l_post_mtx);
		it = loop->l_posts.li_next;
		if (it == &loop->l_posts) { /* cancelled meanwhile */
			pthread_mutex_unlock(&loop->l_post_mtx);
			break;
		}
		unlink_item(loop, it);
		pthread_mutex_unlock(&loop->l_post_mtx);
		fn = it->li_fn;
		arg = it->li_arg;
		if (it->li_heap)
			tk_free(it);
		loop->l_stats.ls_posts_run++;
		fn(arg);
	}
}

static bool
posts_pending(tk_loop *loop)
{
	bool p;

	pthread_mutex_lock(&loop->l_post_mtx);
	p = loop->l_post_len > 0;
	pthread_mutex_unlock(&loop->l_post_mtx);
	return p;
}

/* ---- running ------------------------------------------------------------ */

void
tk_loop_set_before_sleep(tk_loop *loop, tk_loop_hook_fn fn, void *arg)
{
	loop->l_hook = fn;
	loop->l_hook_arg = arg;
}

/* Wait budget: 0 when work is already due, else the caller's timeout. */
static int
wait_ms(tk_loop *loop, int timeout_ms, uint64_t now)
{
	tk_loop_timer *t;

	if (timeout_ms == 0 || atomic_load(&loop->l_stop) ||
	    posts_pending(loop))
		return 0;
	t = tki_theap_peek(&loop->l_heap);
	if (t != NULL && t->t_deadline <= now)
		return 0;
	return timeout_ms;
}

int
tk_loop_run_once(tk_loop *loop, int timeout_ms)
{
	struct epoll_event evs[MAX_EVENTS];
	uint64_t now;
	int n, wait;

	if (loop == NULL)
		return TK_EINVAL;
	loop->l_stats.ls_iterations++;
	now = tk_loop_now(loop);
	wait = wait_ms(loop, timeout_ms, now);
	if (wait != 0 && loop->l_hook != NULL) {
		loop->l_hook(loop, loop->l_hook_arg);
		now = tk_loop_now(loop);
		wait = wait_ms(loop, timeout_ms, now); /* the hook may add work */
	}
	timerfd_sync(loop, now);
	n = epoll_wait(loop->l_epfd, evs, MAX_EVENTS, wait);
	if (n < 0) {
		if (errno != EINTR)
			return tk_err_sys(errno);
		n = 0;
	}
	loop->l_dispatching = true;
	for (int i = 0; i < n; i++) {
		struct io *io = evs[i].data.ptr;

		switch (io->io_kind) {
		case IO_TIMERFD:
			drain_fd(io->io_fd);
			loop->l_tfd_deadline = NO_DEADLINE; /* fired: re-arm */
			break;
		case IO_EVENTFD:
			drain_fd(io->io_fd);
			break;
		case IO_USER:
			if (io->io_dead)
				break;
			loop->l_stats.ls_fd_events++;
			io->io_fn(loop, io->io_fd,
			    from_epoll(evs[i].events, io->io_events),
			    io->io_arg);
			break;
		}
	}
	run_timers(loop);
	run_posts(loop);
	loop->l_dispatching = false;
	free_zombies(loop);
	return 0;
}

int
tk_loop_run(tk_loop *loop)
{
	int rv = 0;

	if (loop == NULL)
		return TK_EINVAL;
	while (!atomic_exchange(&loop->l_stop, false)) {
		if ((rv = tk_loop_run_once(loop, -1)) != 0)
			break;
	}
	return rv;
}

void
tk_loop_stop(tk_loop *loop)
{
	atomic_store(&loop->l_stop, true);
	wake(loop);
}

void
tk_loop_stats_get(const tk_loop *loop, tk_loop_stats *out)
{
	*out = loop->l_stats;
}
