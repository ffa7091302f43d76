#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tk/err.h"
#include "tk/log.h"
#include "tk/mem.h"
#include "tk/keys.h"
#include "tk/state.h"

static const char *
sqlite_name(int code)
{
	return sqlite3_errstr(code);
}

__attribute__((constructor)) static void
register_sqlite(void)
{
	tk_err_register(TK_ESQLITE, sqlite_name);
}

enum { ST_PUT, ST_GET, ST_DEL, ST_ITER, ST_N };

struct tk_state {
	sqlite3 *st_db;
	sqlite3_stmt *st_stmt[ST_N];
};

static const char *const stmt_sql[ST_N] = {
	[ST_PUT] = "INSERT INTO tk_kv(key, value) VALUES(?1, ?2) "
		   "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
	[ST_GET] = "SELECT value FROM tk_kv WHERE key = ?1",
	[ST_DEL] = "DELETE FROM tk_kv WHERE key = ?1",
	/* prefix match without LIKE escapes: key >= p AND key < p || 0xFF.. */
	[ST_ITER] = "SELECT key, value FROM tk_kv WHERE substr(key, 1, "
		    "length(?1)) = ?1 ORDER BY key",
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Directory: create 0700, tighten ours, refuse someone else's. */
static int
prepare_dir(const char *dir, char *err, size_t errlen)
{
	struct stat sb;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		int e = errno;

		seterr(err, errlen, "cannot create state directory %s: %s", dir,
		    strerror(e));
		return tk_err_sys(e);
	}
	if (stat(dir, &sb) != 0) {
		int e = errno;

		seterr(err, errlen, "cannot stat state directory %s: %s", dir,
		    strerror(e));
		return tk_err_sys(e);
	}
	if (!S_ISDIR(sb.st_mode)) {
		seterr(err, errlen, "state path %s is not a directory", dir);
		return TK_EINVAL;
	}
	if (sb.st_uid != geteuid()) {
		seterr(err, errlen, "state directory %s is owned by another user;"
		    " use a directory owned by this user (mode 0700)", dir);
		return TK_EPERM;
	}
	if ((sb.st_mode & (S_ISVTX | S_IWOTH)) != 0) {
		/* a shared directory such as /tmp: never chmod it */
		seterr(err, errlen, "state directory %s is shared (mode %04o); use "
		    "a directory of its own, e.g. %s/tailkit (it is created 0700)",
		    dir, (unsigned)(sb.st_mode & 07777), dir);
		return TK_EPERM;
	}
	if ((sb.st_mode & 0777) != 0700) {
		TK_WARN("state", "tightening %s from %03o to 0700", dir,
		    (unsigned)(sb.st_mode & 0777));
		if (chmod(dir, 0700) != 0)
			return tk_err_sys(errno);
	}
	return 0;
}

static int
prepare_file(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	struct stat sb;

	if (fd < 0) {
		int e = errno;

		seterr(err, errlen, "cannot open state database %s: %s", path,
		    strerror(e));
		return tk_err_sys(e);
	}
	if (fstat(fd, &sb) == 0 && sb.st_uid != geteuid()) {
		close(fd);
		seterr(err, errlen, "state database %s is owned by another user",
		    path);
		return TK_EPERM;
	}
	if (fchmod(fd, 0600) != 0) {
		int e = errno;

		close(fd);
		return tk_err_sys(e);
	}
	close(fd);
	/* Tighten leftovers from an older run too. */
	for (int i = 0; i < 2; i++) {
		char side[4200];

		snprintf(side, sizeof(side), "%s%s", path, i ? "-shm" : "-wal");
		if (chmod(side, 0600) != 0 && errno != ENOENT)
			return tk_err_sys(errno);
	}
	return 0;
}

static int
exec_sql(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		seterr(err, errlen, "sqlite: %s (in: %.60s)", msg ? msg : "?", sql);
		sqlite3_free(msg);
		return tk_err_sqlite(sqlite3_extended_errcode(db));
	}
	return 0;
}

static int
user_version(sqlite3 *db, int *out)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL);

	if (rc != SQLITE_OK)
		return tk_err_sqlite(rc);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 0 : tk_err_sqlite(rc);
}

static int
migrate(sqlite3 *db, const tk_state_config *cfg, char *err, size_t errlen)
{
	int v = 0, rv;

	if ((rv = user_version(db, &v)) != 0)
		return rv;
	if (v < 0 || (size_t)v > cfg->n_migrations) {
		char have[32], know[32];

		snprintf(have, sizeof(have), "%d", v);
		snprintf(know, sizeof(know), "%zu", cfg->n_migrations);
		seterr(err, errlen, "state database schema version %s is newer "
		    "than this program knows (%s); refusing to touch it", have,
		    know);
		return TK_ESTATE;
	}
	for (size_t i = (size_t)v; i < cfg->n_migrations; i++) {
		char bump[64];

		if ((rv = exec_sql(db, "BEGIN IMMEDIATE", err, errlen)) != 0)
			return rv;
		snprintf(bump, sizeof(bump), "PRAGMA user_version = %zu", i + 1);
		if ((rv = exec_sql(db, cfg->migrations[i], err, errlen)) != 0 ||
		    (rv = exec_sql(db, bump, err, errlen)) != 0 ||
		    (rv = exec_sql(db, "COMMIT", err, errlen)) != 0) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return rv;
		}
	}
	return 0;
}

int
tk_state_open(tk_state **out, const tk_state_config *cfg, char *err,
    size_t errlen)
{
	char path[4096];
	tk_state *st;
	int rv, rc;

	if (cfg == NULL || cfg->dir == NULL || cfg->name == NULL ||
	    cfg->name[0] == '\0' || strchr(cfg->name, '/') != NULL ||
	    (cfg->n_migrations > 0 && cfg->migrations == NULL)) {
		seterr(err, errlen, "state: need a directory and a plain file "
		    "name (no '/')%s%s", "", "");
		return TK_EINVAL;
	}
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", cfg->dir, cfg->name) >=
	    sizeof(path))
		return TK_EINVAL;
	if ((rv = prepare_dir(cfg->dir, err, errlen)) != 0 ||
	    (rv = prepare_file(path, err, errlen)) != 0)
		return rv;
	if ((st = tk_calloc(1, sizeof(*st))) == NULL)
		return TK_ENOMEM;
	rc = sqlite3_open_v2(path, &st->st_db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		seterr(err, errlen, "cannot open %s: %s", path,
		    st->st_db ? sqlite3_errmsg(st->st_db) : sqlite3_errstr(rc));
		rv = tk_err_sqlite(rc);
		goto fail;
	}
	sqlite3_extended_result_codes(st->st_db, 1);
	sqlite3_busy_timeout(st->st_db, 5000);
	/* cache_size: at most 128 KiB of page cache per database (sqlite's
	 * default allows 2 MiB each; a component's state is a few pages, and
	 * a small device should not find that bound by surprise) */
	if ((rv = exec_sql(st->st_db, "PRAGMA journal_mode=WAL;"
	    "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
	    "PRAGMA cache_size=-128;"
	    "CREATE TABLE IF NOT EXISTS tk_kv(key TEXT PRIMARY KEY NOT NULL,"
	    " value BLOB NOT NULL) WITHOUT ROWID;", err, errlen)) != 0)
		goto fail;
	if ((rv = migrate(st->st_db, cfg, err, errlen)) != 0)
		goto fail;
	for (int i = 0; i < ST_N; i++) {
		rc = sqlite3_prepare_v3(st->st_db, stmt_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &st->st_stmt[i], NULL);
		if (rc != SQLITE_OK) {
			rv = tk_err_sqlite(rc);
			goto fail;
		}
	}
	*out = st;
	return 0;
fail:
	tk_state_close(st);
	return rv;
}

void
tk_state_close(tk_state *st)
{
	if (st == NULL)
		return;
	for (int i = 0; i < ST_N; i++)
		sqlite3_finalize(st->st_stmt[i]);
	sqlite3_close(st->st_db);
	tk_free(st);
}

int
tk_state_schema_version(tk_state *st, int *out)
{
	return user_version(st->st_db, out);
}

sqlite3 *
tk_state_db(tk_state *st)
{
	return st->st_db;
}

static int
finish(tk_state *st, sqlite3_stmt *s, int rc)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW || rc == SQLITE_OK)
		return 0;
	return tk_err_sqlite(sqlite3_extended_errcode(st->st_db));
}

int
tk_state_put_blob(tk_state *st, const char *key, const void *p, size_t n)
{
	sqlite3_stmt *s = st->st_stmt[ST_PUT];

	if (key == NULL || (p == NULL && n > 0) || n > INT32_MAX)
		return TK_EINVAL;
	if (tk_fault_hit("state_put"))
		return TK_EIO;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	/* zeroblob-free: a zero-length value is stored as an empty blob */
	sqlite3_bind_blob(s, 2, n ? p : "", (int)n, SQLITE_STATIC);
	return finish(st, s, sqlite3_step(s));
}

/* Runs the GET statement; on success the row is current in *sp. */
static int
get_row(tk_state *st, const char *key, sqlite3_stmt **sp)
{
	sqlite3_stmt *s = st->st_stmt[ST_GET];
	int rc;

	if (key == NULL)
		return TK_EINVAL;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*sp = s;
		return 0;
	}
	finish(st, s, rc);
	return rc == SQLITE_DONE ? TK_ENOENT :
	    tk_err_sqlite(sqlite3_extended_errcode(st->st_db));
}

int
tk_state_get_blob(tk_state *st, const char *key, tk_buf *out)
{
	sqlite3_stmt *s = NULL;
	int rv = get_row(st, key, &s);

	if (rv != 0)
		return rv;
	{
		const void *p = sqlite3_column_blob(s, 0);
		size_t n = (size_t)sqlite3_column_bytes(s, 0);

		tk_buf_reset(out);
		rv = tk_buf_append(out, p, n);
	}
	finish(st, s, SQLITE_DONE);
	return rv;
}

int
tk_state_put_text(tk_state *st, const char *key, const char *v)
{
	if (v == NULL)
		return TK_EINVAL;
	return tk_state_put_blob(st, key, v, strlen(v));
}

int
tk_state_get_text(tk_state *st, const char *key, tk_buf *out)
{
	const char *s;
	int rv = tk_state_get_blob(st, key, out);

	if (rv == 0)
		rv = tk_buf_cstr(out, &s);
	return rv;
}

int
tk_state_put_int(tk_state *st, const char *key, int64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
	return tk_state_put_blob(st, key, b, 8);
}

int
tk_state_get_int(tk_state *st, const char *key, int64_t *out)
{
	uint8_t b[8];
	int rv = tk_state_get_secret(st, key, b, 8);
	uint64_t v = 0;

	if (rv != 0)
		return rv;
	for (int i = 0; i < 8; i++)
		v = v << 8 | b[i];
	*out = (int64_t)v;
	return 0;
}

int
tk_state_put_secret(tk_state *st, const char *key, const void *p, size_t n)
{
	return tk_state_put_blob(st, key, p, n);
}

int
tk_state_get_secret(tk_state *st, const char *key, void *out, size_t n)
{
	sqlite3_stmt *s = NULL;
	int rv = get_row(st, key, &s);

	if (rv != 0)
		return rv;
	if ((size_t)sqlite3_column_bytes(s, 0) != n)
		rv = TK_EPROTO;
	else
		memcpy(out, sqlite3_column_blob(s, 0), n);
	finish(st, s, SQLITE_DONE); /* releases sqlite's copy of the value */
	return rv;
}

int
tk_state_delete(tk_state *st, const char *key)
{
	sqlite3_stmt *s = st->st_stmt[ST_DEL];
	int rv;

	if (key == NULL)
		return TK_EINVAL;
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	rv = finish(st, s, sqlite3_step(s));
	if (rv == 0 && sqlite3_changes(st->st_db) == 0)
		rv = TK_ENOENT;
	return rv;
}

int
tk_state_iter_prefix(tk_state *st, const char *prefix, tk_state_iter_fn fn,
    void *arg)
{
	sqlite3_stmt *s = st->st_stmt[ST_ITER];
	int rc, stop = 0;

	if (prefix == NULL || fn == NULL)
		return TK_EINVAL;
	sqlite3_bind_text(s, 1, prefix, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		stop = fn(arg, (const char *)sqlite3_column_text(s, 0),
		    sqlite3_column_blob(s, 1),
		    (size_t)sqlite3_column_bytes(s, 1));
		if (stop != 0)
			break;
	}
	if (stop != 0) {
		finish(st, s, SQLITE_DONE);
		return stop;
	}
	return finish(st, s, rc);
}

int
tk_state_begin(tk_state *st)
{
	return exec_sql(st->st_db, "BEGIN IMMEDIATE", NULL, 0);
}

int
tk_state_commit(tk_state *st)
{
	return exec_sql(st->st_db, "COMMIT", NULL, 0);
}

int
tk_state_rollback(tk_state *st)
{
	return exec_sql(st->st_db, "ROLLBACK", NULL, 0);
}

int
tk_state_key(tk_state *st, const char *key, uint8_t k[32], bool *created)
{
	int rv = tk_state_get_secret(st, key, k, 32);

	if (created)
		*created = false;
	if (rv == 0 && !tk_key_is_zero(k))
		return 0;
	if (rv != 0 && rv != TK_ENOENT)
		return rv;
	tk_key_generate(k, NULL);
	if (created)
		*created = true;
	return tk_state_put_secret(st, key, k, 32);
}
