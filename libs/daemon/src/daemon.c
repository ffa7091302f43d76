#include <errno.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk/core.h"
#include "tk/daemon.h"
#include "tk/err.h"
#include "tk/log.h"

void
tk_opts_usage(FILE *f, const char *prog, const char *synopsis,
    const tk_opt *opts)
{
	fprintf(f, "usage: %s %s\n", prog, synopsis ? synopsis : "[options]");
	for (const tk_opt *o = opts; o && o->name; o++) {
		char left[64];
		snprintf(left, sizeof(left), "%s%s%s", o->name,
		    o->kind == TK_OPT_FLAG || o->kind == TK_OPT_ARG ? "" : " ",
		    o->kind == TK_OPT_FLAG || o->kind == TK_OPT_ARG ? "" :
		    o->metavar ? o->metavar : o->kind == TK_OPT_INT ? "N" : "VALUE");
		fprintf(f, "  %-22s %s\n", left, o->help ? o->help : "");
	}
	fprintf(f, "  %-22s %s\n", "-v, -vv", "debug, trace logging");
	fprintf(f, "  %-22s %s\n", "-h, --help", "this text");
}

static int
bad(const char *prog, const char *synopsis, const tk_opt *opts, const char *what,
    const char *arg)
{
	fprintf(stderr, "%s: %s '%s'\n", prog, what, arg);
	tk_opts_usage(stderr, prog, synopsis, opts);
	return 2;
}

int
tk_opts_parse(const char *prog, const char *synopsis, const tk_opt *opts,
    int argc, char **argv, int first)
{
	for (int i = first; i < argc; i++) {
		const char *a = argv[i];
		const tk_opt *o;

		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			tk_opts_usage(stdout, prog, synopsis, opts);
			return 0;
		}
		if (strcmp(a, "-v") == 0 || strcmp(a, "-vv") == 0) {
			tk_log_set_level(a[2] ? TK_LOG_TRACE : TK_LOG_DEBUG);
			continue;
		}
		if (a[0] != '-') {
			/* a positional argument fills the next empty TK_OPT_ARG */
			for (o = opts; o && o->name; o++)
				if (o->kind == TK_OPT_ARG && *(const char **)o->dst == NULL)
					break;
			if (o == NULL || o->name == NULL)
				return bad(prog, synopsis, opts, "unexpected argument", a);
			*(const char **)o->dst = a;
			continue;
		}
		for (o = opts; o && o->name; o++)
			if (o->kind != TK_OPT_ARG && strcmp(a, o->name) == 0)
				break;
		if (o == NULL || o->name == NULL)
			return bad(prog, synopsis, opts, "unknown option", a);
		if (o->kind == TK_OPT_FLAG) {
			*(bool *)o->dst = true;
			continue;
		}
		if (i + 1 >= argc)
			return bad(prog, synopsis, opts, "a value is needed after", a);
		const char *v = argv[++i];
		if (o->kind == TK_OPT_STR) {
			*(const char **)o->dst = v;
			continue;
		}
		char *end;
		long n = strtol(v, &end, 10);
		if (*v == 0 || *end != 0 || n < o->min || n > o->max) {
			fprintf(stderr, "%s: %s takes an integer %ld..%ld, not '%s'\n",
			    prog, a, o->min, o->max, v);
			return 2;
		}
		*(long *)o->dst = n;
	}
	return -1;
}

/* Bus URLs of one process: a fixed pool (a daemon has fewer than 16
 * buses), so nothing is left allocated at exit. */
static char url_pool[16][600];
static unsigned url_next;

int
tk_bus_url_default(const char **url, const char *dir, const char *name)
{
	if (*url != NULL || dir == NULL)
		return 0;
	unsigned k = __atomic_fetch_add(&url_next, 1, __ATOMIC_RELAXED);
	if (k >= sizeof(url_pool) / sizeof(url_pool[0]))
		return TK_ENOMEM;
	int n = snprintf(url_pool[k], sizeof(url_pool[k]), "ipc://%s/%s", dir, name);
	if (n < 0 || (size_t)n >= sizeof(url_pool[k]))
		return TK_EINVAL; /* a directory path over 500 bytes */
	*url = url_pool[k];
	return 0;
}

int
tk_bus_tls_ready(const char *prog, tk_bus_tls *t, const char *const *urls,
    size_t n, const tk_bus_tls **out)
{
	bool any = false;

	for (size_t i = 0; i < n; i++)
		if (urls[i] != NULL && strncmp(urls[i], "tls+tcp://", 10) == 0)
			any = true;
	*out = NULL;
	if (!any) {
		if (t->cert_file || t->key_file || t->ca_file) {
			fprintf(stderr, "%s: --bus-cert/--bus-key/--bus-ca are for "
			    "tls+tcp:// bus URLs; none is given\n", prog);
			return 2;
		}
		return 0;
	}
	if (t->cert_file == NULL || t->key_file == NULL || t->ca_file == NULL) {
		fprintf(stderr, "%s: a tls+tcp:// bus needs --bus-cert, --bus-key and "
		    "--bus-ca (both ends authenticate each other)\n", prog);
		return 2;
	}
	*out = t;
	return 0;
}

int
tk_read_secret_line(const char *prog, const char *path, char *buf, size_t cap)
{
	FILE *f = fopen(path, "r");

	if (f != NULL)
		setvbuf(f, NULL, _IONBF, 0);
	if (f != NULL && cap > 0 && fgets(buf, (int)cap, f) == NULL &&
	    !ferror(f)) {
		/* empty: no key (systemd's SetCredential= default in the units) */
		fclose(f);
		buf[0] = '\0';
		return 0;
	}
	if (f == NULL || ferror(f)) {
		fprintf(stderr, "%s: cannot read the auth key from %s%s%s\n", prog,
		    path, f == NULL ? ": " : "", f == NULL ? strerror(errno) : "");
		if (f != NULL)
			fclose(f);
		return 2;
	}
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

int
tk_daemon_init(const char *prog)
{
	sigset_t ss;
	int rv;

	if ((rv = tk_init()) != 0) {
		fprintf(stderr, "%s: init: %s\n", prog, tk_strerror(rv));
		return rv;
	}
	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

int
tk_daemon_wait(const char *prog)
{
	sigset_t ss;
	int sig = 0;

	sigemptyset(&ss);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGTERM);
	while (sigwait(&ss, &sig) != 0)
		;
	TK_INFO(prog, "signal %d: stopping", sig);
	return sig;
}
