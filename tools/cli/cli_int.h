/*
 * The tailkit CLI's shared pieces: the LocalAPI client (cli_http.c) and
 * the command table (tailkit.c).  A command file defines
 * `int cmd_NAME(int argc, char **argv)` (argv[0] is the first argument
 * after the command's name) returning the exit status: 0 done, 1 failed,
 * 2 usage error (with a message saying what is accepted).
 */
#ifndef TK_CLI_INT_H
#define TK_CLI_INT_H

#include <stddef.h>

#include <jansson.h>

#define CLI_VERSION "0.1"

extern const char *sock_path; /* the LocalAPI socket */

/* method path [body] -> HTTP status and the parsed JSON body (NULL: none). */
int call(const char *method, const char *path, json_t **out);
int call_body(const char *method, const char *path, const char *body,
    json_t **out);
/* The same without exiting: -1 (err says why) when the daemon cannot be
 * reached or does not answer HTTP. */
int call_try(const char *method, const char *path, const char *body,
    json_t **out, char *err, size_t errlen);
/* GET path, exiting with its error unless 200. */
json_t *get_ok(const char *path);
/* A connected socket to tailkitd, or exit with what to check. */
int cli_dial(void);
/* "go1" of "go1.tail.ts.net." under suffix "tail.ts.net" (tailkit.c) */
void short_name(const json_t *ps, const char *suffix, char *out, size_t cap);
/* o[k] as a string, "" when absent. */
const char *jstr(const json_t *o, const char *k);

/* The systemd units and sysusers file, embedded at build time (units.c);
 * name NULL ends the table. */
struct cli_unit {
	const char *name, *text;
};
extern const struct cli_unit tk_cli_units[];

int cmd_install(int argc, char **argv);
int cmd_uninstall(int argc, char **argv);

/* tailkit status --web (cmd_web.c): argv holds status's flags. */
int status_web(int argc, char **argv);

/* cmd_prefs.c */
int cmd_up(int argc, char **argv);
int cmd_down(int argc, char **argv);
int cmd_set(int argc, char **argv);

/* cmd_diag.c */
int cmd_ping(int argc, char **argv);
int cmd_netcheck(int argc, char **argv);
int cmd_debug(int argc, char **argv);

#endif
