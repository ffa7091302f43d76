#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tk_test.h"

static unsigned n_skipped;
static CU_pTest last_skipped;

void
tk_test_skip(const char *reason)
{
	CU_pTest t = CU_get_current_test();

	if (t != NULL && t == last_skipped)
		return; /* counted once per test */
	last_skipped = t;
	n_skipped++;
	fprintf(stdout, "\nSKIPPED: %s (%s)\n",
	    t != NULL && t->pName != NULL ? t->pName : "?", reason);
	fflush(stdout);
}

void
tk_test_suite(const char *name, const tk_test_case *cases)
{
	CU_pSuite s = CU_add_suite(name, NULL, NULL);

	if (s == NULL) {
		fprintf(stderr, "CU_add_suite(%s) failed\n", name);
		exit(2);
	}
	for (; cases->name != NULL; cases++)
		if (CU_add_test(s, cases->name, cases->fn) == NULL) {
			fprintf(stderr, "CU_add_test(%s) failed\n", cases->name);
			exit(2);
		}
}

int
tk_test_main(int argc, char **argv, ...)
{
	va_list ap;
	tk_test_register_fn fn;
	unsigned failures, run;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	va_start(ap, argv);
	while ((fn = va_arg(ap, tk_test_register_fn)) != NULL)
		fn();
	va_end(ap);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (argc > 1) {
		CU_pSuite s = CU_get_suite(argv[1]);

		if (s == NULL) {
			fprintf(stderr, "no suite named %s\n", argv[1]);
			CU_cleanup_registry();
			return 2;
		}
		CU_basic_run_suite(s);
	} else {
		CU_basic_run_tests();
	}
	/* Read before cleanup; CU_basic_run_tests returns success regardless. */
	failures = CU_get_number_of_failures() +
	    CU_get_number_of_suites_failed();
	run = CU_get_number_of_tests_run();
	CU_cleanup_registry();
	if (failures != 0)
		return 1;
	if (n_skipped > 0)
		printf("%u of %u tests SKIPPED\n", n_skipped, run);
	/* Nothing ran for real: say so to ctest instead of passing. */
	if (run > 0 && n_skipped >= run)
		return TK_TEST_SKIP_STATUS;
	return 0;
}

const char *
tk_test_vector_path(const char *name)
{
	static char path[4096];
	const char *dir = getenv("TK_VECTORS");

	snprintf(path, sizeof(path), "%s/%s", dir ? dir : "tests/vectors",
	    name);
	return path;
}

char *
tk_test_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0, r;

	if (f == NULL)
		return NULL;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			char *nb;

			cap = cap ? cap * 2 : 65536;
			nb = realloc(buf, cap);
			if (nb == NULL) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		r = fread(buf + n, 1, 4096, f);
		n += r;
		if (r == 0)
			break;
	}
	fclose(f);
	buf[n] = '\0';
	if (len != NULL)
		*len = n;
	return buf;
}

char *
tk_test_tmpdir(void)
{
	char tmpl[] = "/tmp/tktest.XXXXXX";
	char *d = mkdtemp(tmpl);

	return d ? strdup(d) : NULL;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
tk_test_rmtree(const char *path)
{
	if (path != NULL)
		nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t
tk_test_unhex(unsigned char *out, size_t cap, const char *hex)
{
	size_t n = 0;

	while (hex[0] != '\0') {
		int hi, lo;

		if (hex[0] == ' ' || hex[0] == '\n') {
			hex++;
			continue;
		}
		hi = hexval(hex[0]);
		lo = hexval(hex[1]);
		if (hi < 0 || lo < 0 || n >= cap) {
			fprintf(stderr, "tk_test_unhex: bad hex or overflow\n");
			abort();
		}
		out[n++] = (unsigned char)(hi << 4 | lo);
		hex += 2;
	}
	return n;
}

uint64_t
tk_test_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
