#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "tk/log.h"
#include "tk/mem.h"

static atomic_int log_level = TK_LOG_INFO;
static pthread_mutex_t sink_mu = PTHREAD_MUTEX_INITIALIZER;
static tk_log_sink_fn sink_fn;
static void *sink_arg;

static const char *const level_names[] = { "err", "warn", "info", "debug",
	"trace" };

void tk_log_set_level(int level) { atomic_store(&log_level, level); }
int tk_log_get_level(void) { return atomic_load_explicit(&log_level, memory_order_relaxed); }

void
tk_log_set_sink(tk_log_sink_fn sink, void *arg)
{
	pthread_mutex_lock(&sink_mu);
	sink_fn = sink;
	sink_arg = arg;
	pthread_mutex_unlock(&sink_mu);
}

int
tk_log_level_parse(const char *s)
{
	for (size_t i = 0; i < TK_ARRAY_LEN(level_names); i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return (int)i;
	if (strcasecmp(s, "error") == 0)
		return TK_LOG_ERR;
	if (strcasecmp(s, "warning") == 0)
		return TK_LOG_WARN;
	return -1;
}

const char *
tk_log_level_name(int level)
{
	if (level < 0 || (size_t)level >= TK_ARRAY_LEN(level_names))
		return "?";
	return level_names[level];
}

static void
default_sink(int level, const char *subsys, const char *msg)
{
	uint64_t now = tk_clock_mono_ns(NULL);

	fprintf(stderr, "%llu.%03llu %-5s %s: %s\n",
	    (unsigned long long)(now / TK_NSEC_PER_SEC),
	    (unsigned long long)(now % TK_NSEC_PER_SEC / TK_NSEC_PER_MSEC),
	    tk_log_level_name(level), subsys, msg);
}

void
tk_log_emitv(int level, const char *subsys, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	pthread_mutex_lock(&sink_mu);
	if (sink_fn != NULL)
		sink_fn(sink_arg, level, subsys, msg);
	else
		default_sink(level, subsys, msg);
	pthread_mutex_unlock(&sink_mu);
}

void
tk_log_emit(int level, const char *subsys, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tk_log_emitv(level, subsys, fmt, ap);
	va_end(ap);
}

void
tk_ratelimit_init(tk_ratelimit *rl, uint32_t burst, uint32_t per_sec)
{
	memset(rl, 0, sizeof(*rl));
	rl->rl_burst = burst;
	rl->rl_per_sec = per_sec;
}

int
tk_ratelimit_take(tk_ratelimit *rl, uint64_t now_ns)
{
	uint64_t cap = (uint64_t)rl->rl_burst * 1000;

	if (!rl->rl_primed) {
		rl->rl_primed = 1;
		rl->rl_tokens_milli = cap;
		rl->rl_last_ns = now_ns;
	} else if (now_ns > rl->rl_last_ns) {
		uint64_t dt_ms = (now_ns - rl->rl_last_ns) / TK_NSEC_PER_MSEC;
		uint64_t add = dt_ms * rl->rl_per_sec; /* milli-tokens */

		if (dt_ms > 0) {
			rl->rl_tokens_milli = TK_MIN(cap,
			    rl->rl_tokens_milli + add);
			rl->rl_last_ns += dt_ms * TK_NSEC_PER_MSEC;
		}
	}
	if (rl->rl_tokens_milli >= 1000) {
		rl->rl_tokens_milli -= 1000;
		return 1;
	}
	rl->rl_suppressed++;
	return 0;
}

void
tk_log_rl_emit(tk_ratelimit *rl, const tk_clock *clk, int level,
    const char *subsys, const char *fmt, ...)
{
	va_list ap;
	char msg[1024];
	uint64_t supp;

	if (!tk_ratelimit_take(rl, tk_clock_mono_ns(clk)))
		return;
	supp = rl->rl_suppressed;
	rl->rl_suppressed = 0;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (supp > 0)
		tk_log_emit(level, subsys, "%s (%llu similar suppressed)", msg,
		    (unsigned long long)supp);
	else
		tk_log_emit(level, subsys, "%s", msg);
}
