/*
 * Leveled, rate-limited logging with a pluggable sink.
 *
 * TK_LOG checks the level before evaluating its arguments.  The default sink
 * writes "<monotonic s> <LEVEL> <subsys>: <msg>" to stderr.  Per-packet paths
 * use TK_LOG_RL with a token bucket kept in the caller's struct, so a flood of
 * bad input costs a counter, not a log line each.  Never log secrets: log a
 * public-key fingerprint (tk_key_fingerprint) instead.
 */
#ifndef TK_LOG_H
#define TK_LOG_H

#include <stdarg.h>
#include <stdint.h>

#include "tk/clock.h"

enum tk_log_level {
	TK_LOG_ERR = 0,
	TK_LOG_WARN,
	TK_LOG_INFO,
	TK_LOG_DEBUG,
	TK_LOG_TRACE,
};

typedef void (*tk_log_sink_fn)(void *arg, int level, const char *subsys,
    const char *msg);

/* Process-wide settings (thread-safe).  Default level: INFO. */
void tk_log_set_level(int level);
int tk_log_get_level(void);
void tk_log_set_sink(tk_log_sink_fn sink, void *arg); /* NULL: stderr */
/* Parse "err|warn|info|debug|trace"; -1 if unknown. */
int tk_log_level_parse(const char *s);
const char *tk_log_level_name(int level);

void tk_log_emit(int level, const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void tk_log_emitv(int level, const char *subsys, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

#define TK_LOG(level, subsys, ...)                                           \
	do {                                                                 \
		if ((level) <= tk_log_get_level())                           \
			tk_log_emit((level), (subsys), __VA_ARGS__);         \
	} while (0)

#define TK_ERR(subsys, ...)   TK_LOG(TK_LOG_ERR, subsys, __VA_ARGS__)
#define TK_WARN(subsys, ...)  TK_LOG(TK_LOG_WARN, subsys, __VA_ARGS__)
#define TK_INFO(subsys, ...)  TK_LOG(TK_LOG_INFO, subsys, __VA_ARGS__)
#define TK_DEBUG(subsys, ...) TK_LOG(TK_LOG_DEBUG, subsys, __VA_ARGS__)

/*
 * Token bucket: at most `burst` lines, refilled at `per_sec` lines/s.
 * Suppressed lines are counted and reported on the next line let through.
 */
typedef struct tk_ratelimit {
	uint32_t rl_burst;
	uint32_t rl_per_sec;
	uint64_t rl_tokens_milli; /* tokens x 1000 */
	uint64_t rl_last_ns;
	uint64_t rl_suppressed;
	int rl_primed;
} tk_ratelimit;

void tk_ratelimit_init(tk_ratelimit *rl, uint32_t burst, uint32_t per_sec);
/* Take a token at time now_ns; returns 1 if allowed. */
int tk_ratelimit_take(tk_ratelimit *rl, uint64_t now_ns);

void tk_log_rl_emit(tk_ratelimit *rl, const tk_clock *clk, int level,
    const char *subsys, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define TK_LOG_RL(rl, clk, level, subsys, ...)                               \
	do {                                                                 \
		if ((level) <= tk_log_get_level())                           \
			tk_log_rl_emit((rl), (clk), (level), (subsys),       \
			    __VA_ARGS__);                                    \
	} while (0)

#endif
