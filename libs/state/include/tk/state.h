/*
 * Per-daemon persistent state: one sqlite database in the daemon's state
 * directory.
 *
 * Policy (ARCHITECTURE.md "State"):
 *   - the directory is created 0700; an existing directory of ours with a
 *     looser mode is tightened to 0700 (and logged); one owned by another
 *     user is refused (TK_EPERM), since its files could be read or swapped;
 *   - the database is created 0600 before sqlite opens it; sqlite gives its
 *     -wal and -shm files the database file's mode; existing files are
 *     tightened to 0600;
 *   - WAL mode with synchronous=NORMAL: a power loss may drop the last
 *     committed transaction but never corrupts the file; a process crash
 *     (kill -9) loses nothing committed;
 *   - PRAGMA user_version counts the caller's migrations; each runs in its
 *     own transaction, so a crash mid-migration leaves the previous version;
 *     a database from newer code is refused (TK_ESTATE) rather than guessed at.
 *
 * The library keeps a key/value table (tk_kv) of its own besides whatever
 * the migrations create; tk_state_db() exposes the connection for a
 * component's own tables.  One tk_state per thread (the loop thread).
 */
#ifndef TK_STATE_H
#define TK_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "tk/buf.h"

typedef struct tk_state tk_state;

typedef struct tk_state_config {
	const char *dir;		/* state directory (created 0700) */
	const char *name;		/* database file name, e.g. "wgd.db" */
	const char *const *migrations;	/* SQL, applied in order */
	size_t n_migrations;
} tk_state_config;

/* err (may be NULL) receives a one-line human explanation on failure. */
int tk_state_open(tk_state **out, const tk_state_config *cfg, char *err,
    size_t errlen);
void tk_state_close(tk_state *st);

int tk_state_schema_version(tk_state *st, int *out);
sqlite3 *tk_state_db(tk_state *st);

/* Key/value.  Missing keys give TK_ENOENT. */
int tk_state_put_blob(tk_state *st, const char *key, const void *p, size_t n);
int tk_state_get_blob(tk_state *st, const char *key, tk_buf *out);
int tk_state_put_text(tk_state *st, const char *key, const char *s);
/* out is NUL-terminated (tk_buf_cstr); out->len excludes the NUL. */
int tk_state_get_text(tk_state *st, const char *key, tk_buf *out);
int tk_state_put_int(tk_state *st, const char *key, int64_t v);
int tk_state_get_int(tk_state *st, const char *key, int64_t *out);
/*
 * Secrets: same storage, but the read copies into a fixed caller buffer of
 * exactly n bytes (TK_EPROTO if the stored size differs) and sqlite's own
 * copies are released at once; the caller zeroes its buffer when done.
 * Debian's sqlite is built with SECURE_DELETE, so overwritten pages are
 * zeroed on disk.
 */
int tk_state_put_secret(tk_state *st, const char *key, const void *p,
    size_t n);
int tk_state_get_secret(tk_state *st, const char *key, void *out, size_t n);
int tk_state_delete(tk_state *st, const char *key);
/*
 * A 32-byte private key kept under `key`: read it, or (missing or all
 * zeros) generate one with the system RNG and store it.  *created (may be
 * NULL) tells which.  The caller zeroes k when done.
 */
int tk_state_key(tk_state *st, const char *key, uint8_t k[32], bool *created);

/* Calls fn for each key starting with prefix, in key order; stops early
 * and returns fn's value if fn returns nonzero. */
typedef int (*tk_state_iter_fn)(void *arg, const char *key, const void *p,
    size_t n);
int tk_state_iter_prefix(tk_state *st, const char *prefix,
    tk_state_iter_fn fn, void *arg);

/* Transactions for crash-safe multi-key writes (BEGIN IMMEDIATE). */
int tk_state_begin(tk_state *st);
int tk_state_commit(tk_state *st);
int tk_state_rollback(tk_state *st);

#endif
