#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tk/core.h"
#include "tk/state.h"
#include "tk_test.h"

void register_state(void);

static const char *const mig_v2[] = {
	"CREATE TABLE peers(id INTEGER PRIMARY KEY, name TEXT NOT NULL)",
	"ALTER TABLE peers ADD COLUMN key BLOB",
};

static tk_state *
open_db(const char *dir, size_t nmig, int *rv_out)
{
	tk_state_config c = { dir, "t.db", mig_v2, nmig };
	tk_state *st = NULL;
	char err[256] = "";
	int rv = tk_state_open(&st, &c, err, sizeof(err));

	if (rv_out)
		*rv_out = rv;
	if (rv != 0 && rv_out == NULL)
		fprintf(stderr, "open: %s\n", err);
	return st;
}

static mode_t
mode_of(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? sb.st_mode & 0777 : 0;
}

static void
test_roundtrip_and_persistence(void)
{
	char *dir = tk_test_tmpdir();
	char sub[512];
	tk_state *st;
	tk_buf b;
	int64_t v;
	uint8_t sec[32], sec2[32];

	snprintf(sub, sizeof(sub), "%s/state", dir);
	st = open_db(sub, 2, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	tk_buf_init(&b);
	CU_ASSERT_EQUAL(tk_state_put_text(st, "prefs/hostname", "box"), 0);
	CU_ASSERT_EQUAL(tk_state_put_int(st, "map/seq", INT64_MIN + 5), 0);
	CU_ASSERT_EQUAL(tk_state_put_blob(st, "empty", NULL, 0), 0);
	memset(sec, 0xAB, sizeof(sec));
	CU_ASSERT_EQUAL(tk_state_put_secret(st, "key/node", sec, 32), 0);
	CU_ASSERT_EQUAL(tk_state_get_text(st, "missing", &b), TK_ENOENT);
	CU_ASSERT_EQUAL(tk_state_get_int(st, "prefs/hostname", &v), TK_EPROTO);
	CU_ASSERT_EQUAL(tk_state_delete(st, "missing"), TK_ENOENT);
	tk_state_close(st);

	/* everything survives a reopen */
	st = open_db(sub, 2, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_EQUAL(tk_state_get_text(st, "prefs/hostname", &b), 0);
	CU_ASSERT_STRING_EQUAL((const char *)b.data, "box");
	CU_ASSERT_EQUAL(tk_state_get_int(st, "map/seq", &v), 0);
	CU_ASSERT_EQUAL(v, INT64_MIN + 5);
	CU_ASSERT_EQUAL(tk_state_get_blob(st, "empty", &b), 0);
	CU_ASSERT_EQUAL(b.len, 0);
	CU_ASSERT_EQUAL(tk_state_get_secret(st, "key/node", sec2, 32), 0);
	TK_ASSERT_MEM_EQ(sec, sec2, 32);
	CU_ASSERT_EQUAL(tk_state_get_secret(st, "key/node", sec2, 16), TK_EPROTO);
	CU_ASSERT_EQUAL(tk_state_put_text(st, "prefs/hostname", "box2"), 0);
	CU_ASSERT_EQUAL(tk_state_get_text(st, "prefs/hostname", &b), 0);
	CU_ASSERT_STRING_EQUAL((const char *)b.data, "box2");
	CU_ASSERT_EQUAL(tk_state_delete(st, "prefs/hostname"), 0);
	CU_ASSERT_EQUAL(tk_state_get_text(st, "prefs/hostname", &b), TK_ENOENT);
	tk_state_close(st);
	tk_buf_fini(&b);
	tk_test_rmtree(dir);
	free(dir);
}

static void
test_permissions(void)
{
	char *dir = tk_test_tmpdir();
	char sub[512], db[600], wal[600];
	tk_state *st;
	int rv;

	snprintf(sub, sizeof(sub), "%s/s", dir);
	snprintf(db, sizeof(db), "%s/t.db", sub);
	snprintf(wal, sizeof(wal), "%s/t.db-wal", sub);
	umask(022);
	st = open_db(sub, 0, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	tk_state_put_text(st, "a", "b");
	CU_ASSERT_EQUAL(mode_of(sub), 0700);
	CU_ASSERT_EQUAL(mode_of(db), 0600);
	CU_ASSERT_EQUAL(mode_of(wal), 0600);
	tk_state_close(st);
	/* a loosened directory and file are tightened on open */
	chmod(sub, 0755);
	chmod(db, 0644);
	st = open_db(sub, 0, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_EQUAL(mode_of(sub), 0700);
	CU_ASSERT_EQUAL(mode_of(db), 0600);
	tk_state_close(st);
	/* a shared directory (sticky or world-writable, like /tmp) is
	 * refused, never chmod-ed */
	{
		char shared[512];
		snprintf(shared, sizeof(shared), "%s/shared", dir);
		mkdir(shared, 0700);
		chmod(shared, 01777);
		st = open_db(shared, 0, &rv);
		CU_ASSERT_PTR_NULL(st);
		CU_ASSERT_EQUAL(rv, TK_EPERM);
		CU_ASSERT_EQUAL(mode_of(shared), 0777); /* untouched */
		chmod(shared, 0777);
		st = open_db(shared, 0, &rv);
		CU_ASSERT_PTR_NULL(st);
		CU_ASSERT_EQUAL(rv, TK_EPERM);
	}
	/* someone else's directory is refused */
	if (geteuid() == 0) {
		char other[512];

		snprintf(other, sizeof(other), "%s/other", dir);
		mkdir(other, 0700);
		CU_ASSERT_EQUAL(chown(other, 12345, 12345), 0);
		st = open_db(other, 0, &rv);
		CU_ASSERT_PTR_NULL(st);
		CU_ASSERT_EQUAL(rv, TK_EPERM);
	}
	/* user mistakes: bad name, path is a file */
	tk_state_config c = { sub, "a/b.db", NULL, 0 };
	char err[256];
	CU_ASSERT_EQUAL(tk_state_open(&st, &c, err, sizeof(err)), TK_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "no '/'"));
	c.dir = db;
	c.name = "x.db";
	CU_ASSERT_EQUAL(tk_state_open(&st, &c, err, sizeof(err)), TK_EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a directory"));
	tk_test_rmtree(dir);
	free(dir);
}

static void
test_migrations(void)
{
	char *dir = tk_test_tmpdir();
	tk_state *st;
	int v, rv;
	char err[256];

	st = open_db(dir, 1, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_EQUAL(tk_state_schema_version(st, &v), 0);
	CU_ASSERT_EQUAL(v, 1);
	tk_state_close(st);
	st = open_db(dir, 2, NULL); /* incremental */
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	tk_state_schema_version(st, &v);
	CU_ASSERT_EQUAL(v, 2);
	CU_ASSERT_EQUAL(sqlite3_exec(tk_state_db(st),
	    "INSERT INTO peers(name, key) VALUES('a', x'00')", NULL, NULL, NULL), SQLITE_OK);
	tk_state_close(st);
	/* older code refuses a newer database, with a clear reason */
	tk_state_config c = { dir, "t.db", mig_v2, 1 };
	st = NULL;
	rv = tk_state_open(&st, &c, err, sizeof(err));
	CU_ASSERT_EQUAL(rv, TK_ESTATE);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "newer"));
	/* a failing migration rolls back and leaves version 2 */
	const char *const bad[] = { mig_v2[0], mig_v2[1],
		"CREATE TABLE extra(x); INSERT INTO nosuchtable VALUES(1)" };
	c.migrations = bad;
	c.n_migrations = 3;
	rv = tk_state_open(&st, &c, err, sizeof(err));
	CU_ASSERT_NOT_EQUAL(rv, 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "nosuchtable"));
	st = open_db(dir, 2, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	tk_state_schema_version(st, &v);
	CU_ASSERT_EQUAL(v, 2);
	CU_ASSERT_NOT_EQUAL(sqlite3_exec(tk_state_db(st), "SELECT * FROM extra",
	    NULL, NULL, NULL), SQLITE_OK); /* the partial step is gone */
	tk_state_close(st);
	tk_test_rmtree(dir);
	free(dir);
}

/* Child writes two keys in a transaction and is killed with SIGKILL
 * before (commit=0) or after (commit=1) COMMIT. */
static void
crash_child(const char *dir, int commit)
{
	pid_t pid = fork();

	if (pid == 0) {
		tk_state *st = open_db(dir, 0, NULL);

		if (st == NULL)
			_exit(3);
		tk_state_begin(st);
		tk_state_put_text(st, "tx/a", "1");
		tk_state_put_text(st, "tx/b", "2");
		if (commit)
			tk_state_commit(st);
		kill(getpid(), SIGKILL);
		_exit(4);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static int
count_cb(void *arg, const char *key, const void *p, size_t n)
{
	(void)key;
	(void)p;
	(void)n;
	(*(int *)arg)++;
	return 0;
}

static void
test_crash_safety(void)
{
	char *dir = tk_test_tmpdir();
	tk_state *st;
	int n = 0;

	crash_child(dir, 0);
	st = open_db(dir, 0, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	CU_ASSERT_EQUAL(tk_state_iter_prefix(st, "tx/", count_cb, &n), 0);
	CU_ASSERT_EQUAL(n, 0); /* nothing of the uncommitted transaction */
	tk_state_close(st);
	crash_child(dir, 1);
	st = open_db(dir, 0, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	n = 0;
	CU_ASSERT_EQUAL(tk_state_iter_prefix(st, "tx/", count_cb, &n), 0);
	CU_ASSERT_EQUAL(n, 2); /* all of the committed one */
	tk_state_close(st);
	tk_test_rmtree(dir);
	free(dir);
}

struct collect {
	char keys[8][32];
	int n;
	int stop_at;
};

static int
collect_cb(void *arg, const char *key, const void *p, size_t n)
{
	struct collect *c = arg;

	(void)p;
	(void)n;
	if (c->n < 8)
		snprintf(c->keys[c->n], 32, "%s", key);
	c->n++;
	return c->stop_at && c->n == c->stop_at ? 42 : 0;
}

static void
test_iter_and_reader(void)
{
	char *dir = tk_test_tmpdir();
	tk_state *st = open_db(dir, 0, NULL), *rd;
	struct collect c = { .n = 0 };
	tk_buf b;

	CU_ASSERT_PTR_NOT_NULL_FATAL(st);
	tk_state_put_text(st, "peer/b", "2");
	tk_state_put_text(st, "peer/a", "1");
	tk_state_put_text(st, "peer%", "not a prefix match");
	tk_state_put_text(st, "pe", "short");
	tk_state_put_text(st, "zzz", "other");
	CU_ASSERT_EQUAL(tk_state_iter_prefix(st, "peer/", collect_cb, &c), 0);
	CU_ASSERT_EQUAL(c.n, 2);
	CU_ASSERT_STRING_EQUAL(c.keys[0], "peer/a");
	CU_ASSERT_STRING_EQUAL(c.keys[1], "peer/b");
	memset(&c, 0, sizeof(c));
	c.stop_at = 1;
	CU_ASSERT_EQUAL(tk_state_iter_prefix(st, "peer/", collect_cb, &c), 42);
	/* a second connection reads committed data while a write is open */
	rd = open_db(dir, 0, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(rd);
	tk_buf_init(&b);
	CU_ASSERT_EQUAL(tk_state_begin(st), 0);
	tk_state_put_text(st, "peer/a", "changed");
	CU_ASSERT_EQUAL(tk_state_get_text(rd, "peer/a", &b), 0);
	CU_ASSERT_STRING_EQUAL((const char *)b.data, "1");
	CU_ASSERT_EQUAL(tk_state_rollback(st), 0);
	CU_ASSERT_EQUAL(tk_state_get_text(st, "peer/a", &b), 0);
	CU_ASSERT_STRING_EQUAL((const char *)b.data, "1");
	tk_buf_fini(&b);
	tk_state_close(rd);
	tk_state_close(st);
	tk_state_close(NULL);
	tk_test_rmtree(dir);
	free(dir);
}

static void
test_fault_injection(void)
{
	char *dir = tk_test_tmpdir();

	for (unsigned long f = 1; f < 6; f++) {
		tk_state *st = NULL;
		tk_state_config c = { dir, "t.db", mig_v2, 2 };
		int rv;

		tk_fault_arm(f);
		rv = tk_state_open(&st, &c, NULL, 0);
		if (rv == 0) {
			rv = tk_state_put_text(st, "k", "v");
			if (tk_fault_fired())
				CU_ASSERT_NOT_EQUAL(rv, 0);
			tk_state_close(st);
		} else {
			CU_ASSERT(tk_fault_fired());
			CU_ASSERT_PTR_NULL(st);
		}
		tk_fault_disarm();
	}
	tk_test_rmtree(dir);
	free(dir);
}

void
register_state(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_roundtrip_and_persistence),
		TK_TEST(test_permissions),
		TK_TEST(test_migrations),
		TK_TEST(test_crash_safety),
		TK_TEST(test_iter_and_reader),
		TK_TEST(test_fault_injection),
		TK_TEST_END,
	};
	tk_test_suite("state", cases);
}
