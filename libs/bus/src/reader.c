/* NNG_OPT_RECVFD -> tk_loop: drain with NNG_FLAG_NONBLOCK until NNG_EAGAIN. */
#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"

#include "bus_int.h"

struct tk_bus_reader {
	tk_loop *r_loop;
	nng_socket r_sock;
	int r_fd;
	bool r_watching;
	tk_bus_msg_fn r_fn;
	void *r_arg;
	unsigned r_budget;
	bool r_busy;  /* inside r_fn */
	bool r_freed; /* freed from inside r_fn: free on the way out */
	tk_ratelimit r_rl;
};

static void
unwatch(tk_bus_reader *r)
{
	if (r->r_watching) {
		tk_loop_fd_del(r->r_loop, r->r_fd);
		r->r_watching = false;
	}
}

static void
readable(tk_loop *loop, int fd, unsigned events, void *arg)
{
	tk_bus_reader *r = arg;

	(void)loop;
	(void)fd;
	(void)events;
	for (unsigned i = 0; i < r->r_budget; i++) {
		nng_msg *msg;
		int rv = nng_recvmsg(r->r_sock, &msg, NNG_FLAG_NONBLOCK);

		/*
		 * Nothing (more) to receive.  A req socket says NNG_ESTATE
		 * instead of NNG_EAGAIN once its reply has been taken.
		 */
		if (rv == NNG_EAGAIN || rv == NNG_ETIMEDOUT || rv == NNG_ESTATE)
			return;
		if (rv == NNG_ECLOSED) {
			unwatch(r);
			return;
		}
		if (rv != 0) {
			TK_LOG_RL(&r->r_rl, NULL, TK_LOG_WARN, TKI_BUS_LOG,
			    "receive failed: %s", nng_strerror(rv));
			return;
		}
		r->r_busy = true;
		r->r_fn(r->r_arg, msg);
		r->r_busy = false;
		if (r->r_freed) {
			tk_free(r);
			return;
		}
		if (!r->r_watching)
			return;
	}
	/* Budget spent: the fd is still readable (level), we come back. */
}

int
tk_bus_reader_new(tk_bus_reader **out, tk_loop *loop, nng_socket s,
    tk_bus_msg_fn fn, void *arg)
{
	tk_bus_reader *r;
	int fd, rv;

	if (out == NULL || loop == NULL || fn == NULL)
		return TK_EINVAL;
	if ((rv = tk_err_nng(nng_socket_get_int(s, NNG_OPT_RECVFD, &fd))) != 0)
		return rv;
	if ((r = tk_calloc(1, sizeof(*r))) == NULL)
		return TK_ENOMEM;
	r->r_loop = loop;
	r->r_sock = s;
	r->r_fd = fd;
	r->r_fn = fn;
	r->r_arg = arg;
	r->r_budget = 64;
	tk_ratelimit_init(&r->r_rl, 5, 1);
	if ((rv = tk_loop_fd_add(loop, fd, TK_LOOP_READ, readable, r)) != 0) {
		tk_free(r);
		return rv;
	}
	r->r_watching = true;
	*out = r;
	return 0;
}

void
tk_bus_reader_set_budget(tk_bus_reader *r, unsigned budget)
{
	r->r_budget = budget ? budget : 1;
}

void
tk_bus_reader_free(tk_bus_reader *r)
{
	if (r == NULL)
		return;
	unwatch(r);
	if (r->r_busy)
		r->r_freed = true;
	else
		tk_free(r);
}
