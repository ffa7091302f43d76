/*
 * The daemon scaffold: what every tailkit main.c does before it calls its
 * component's _new/_start and after _stop.
 *
 *   static const char *state, *bus;
 *   static bool eph;
 *   const tk_opt opts[] = {
 *           { "--state", TK_OPT_STR, &state, .metavar = "DIR", .help = "..." },
 *           { "--ephemeral", TK_OPT_FLAG, &eph, .help = "..." },
 *           { NULL },
 *   };
 *   if ((rc = tk_opts_parse("ctrld", "--state DIR ...", opts, argc, argv, 1)) >= 0)
 *           return rc;
 *
 * -v (debug log), -vv (trace) and -h/--help are built in.  A mistake is
 * answered with one line saying what was wrong, then the usage, exit 2.
 */
#ifndef TK_DAEMON_H
#define TK_DAEMON_H

#include <stdbool.h>
#include <stdio.h>

enum tk_opt_kind {
	TK_OPT_STR = 1, /* dst: const char ** */
	TK_OPT_FLAG,	/* dst: bool * */
	TK_OPT_INT,	/* dst: long *; checked against min..max */
	TK_OPT_ARG,	/* a positional argument (name: for the usage);
			   dst: const char **, filled in table order */
};

typedef struct tk_opt {
	const char *name; /* "--state"; NULL ends the table */
	enum tk_opt_kind kind;
	void *dst;
	long min, max;	     /* TK_OPT_INT */
	const char *metavar; /* "DIR" in the usage */
	const char *help;    /* one line */
} tk_opt;

/*
 * Parses argv[first..argc).  Returns -1 when the daemon should go on, or
 * the exit code to return from main: 0 after --help, 2 after a mistake
 * (unknown option, missing value, an integer out of range).
 */
int tk_opts_parse(const char *prog, const char *synopsis, const tk_opt *opts,
    int argc, char **argv, int first);
void tk_opts_usage(FILE *f, const char *prog, const char *synopsis,
    const tk_opt *opts);

/*
 * `--bus DIR` conventions: *url, if still NULL, becomes ipc://DIR/<name>
 * (name from tk/bus_topics.h), from a static pool of 16.  Returns 0,
 * TK_ENOMEM (pool used up) or TK_EINVAL (DIR longer than 500 bytes).
 */
int tk_bus_url_default(const char **url, const char *dir, const char *name);

/*
 * A secret's first line from a file (an auth key), without its line end,
 * read unbuffered so no stdio buffer keeps it.  0, or 2 after telling
 * stderr what could not be read (a daemon's exit status for bad usage).
 */
int tk_read_secret_line(const char *prog, const char *path, char *buf,
    size_t cap);

/* tk_init, SIGINT/SIGTERM blocked (before any thread starts, so
 * tk_daemon_wait receives them), SIGPIPE ignored. */
int tk_daemon_init(const char *prog);
/* Waits for SIGINT or SIGTERM; logs it and returns the signal number. */
int tk_daemon_wait(const char *prog);

#endif
