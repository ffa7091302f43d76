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

#include "tk/bus.h"

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

/* The login flags ctrld and tailkitd share (pointers into their configs). */
#define TK_OPTS_LOGIN(authkey, keyfile, hostname, tags, ephemeral)            \
	{ "--authkey", TK_OPT_STR, (authkey), .metavar = "KEY",               \
	    .help = "pre-auth key (else interactive login: URL in status)" }, \
	{ "--authkey-file", TK_OPT_STR, (keyfile), .metavar = "FILE",         \
	    .help = "the pre-auth key from a file" },                         \
	{ "--hostname", TK_OPT_STR, (hostname), .metavar = "NAME",            \
	    .help = "Hostinfo.Hostname (default: the host name)" },           \
	{ "--advertise-tags", TK_OPT_STR, (tags), .metavar = "TAGS",          \
	    .help = "Hostinfo.RequestTags (tag:a,tag:b)" },                   \
	{ "--ephemeral", TK_OPT_FLAG, (ephemeral),                            \
	    .help = "register an ephemeral node" }

/*
 * tls+tcp:// buses (across hosts): every daemon takes the same four flags
 * into a tk_bus_tls; put TK_OPTS_BUS_TLS(tls) in its option table, then
 * call tk_bus_tls_ready.
 */
#define TK_OPTS_BUS_TLS(t)                                                    \
	{ "--bus-cert", TK_OPT_STR, &(t).cert_file, .metavar = "PEM",         \
	    .help = "tls+tcp:// buses: our certificate (chain)" },            \
	{ "--bus-key", TK_OPT_STR, &(t).key_file, .metavar = "PEM",           \
	    .help = "tls+tcp:// buses: our private key" },                    \
	{ "--bus-ca", TK_OPT_STR, &(t).ca_file, .metavar = "PEM",             \
	    .help = "tls+tcp:// buses: the CA every peer must chain to" },    \
	{ "--bus-server-name", TK_OPT_STR, &(t).server_name,                  \
	    .metavar = "NAME", .help = "tls+tcp:// buses: the DNS name the "  \
	    "peers' certificates carry (needed when dialling an IP)" }

/*
 * *out = t when any of urls[0..n) (NULL entries skipped) is tls+tcp://
 * (every bus across hosts is mutually authenticated: cert, key and CA are
 * then required), else NULL.  0, or 2 after telling stderr what is
 * missing (a daemon's exit status for bad usage).
 */
int tk_bus_tls_ready(const char *prog, tk_bus_tls *t, const char *const *urls,
    size_t n, const tk_bus_tls **out);

/*
 * A secret's first line from a file (an auth key), without its line end,
 * read unbuffered so no stdio buffer keeps it; an empty file gives "" (no
 * key: log in interactively).  0, or 2 after telling
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
