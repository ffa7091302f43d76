/*
 * The loopback server's checks on one HTTP request (ts_loopback.c),
 * without I/O, so they are table-tested (tests/unit/embed) and fuzzed
 * (tests/fuzz/fuzz_embed_lbreq.c).  Input is untrusted (any local
 * process can connect); strings are NUL-terminated by the caller.
 */
#ifndef TS_LBREQ_H
#define TS_LBREQ_H

#include <stdbool.h>
#include <stddef.h>

#define TS_LB_HEAD_MAX 16384
#define TS_LB_BODY_MAX 65536
#define TS_LB_CRED_LEN 32

/* The value of header `name` (case-insensitive) in the head (from the
 * request line to the blank line), trimmed, into out[0..cap); false if
 * absent or too long. */
bool ts_lb_header(const char *head, const char *name, char *out, size_t cap);

/* Content-Length: 0 when absent, -1 when malformed or over
 * TS_LB_BODY_MAX. */
long ts_lb_body_len(const char *head);

/*
 * What to do with a request head: 0 to hand it to the LocalAPI, else the
 * HTTP status to answer (400 not a request, 404 not under /localapi/, 403
 * without "Sec-Tailscale: localapi", 401 without Basic auth, 403 with a
 * wrong password) and *why a static text for the body.  cred is the
 * 32-character LocalAPI credential; any user name is accepted with it, as
 * Go's LocalAPI checks only the password.
 */
int ts_lb_check(const char *head, const char *cred, const char **why);

#endif
