/*
 * CUnit runner helpers.  Each runner's main() is:
 *
 *	int main(int argc, char **argv) {
 *		return tk_test_main(argc, argv, register_a, register_b, NULL);
 *	}
 *
 * and each test file provides `void register_<module>(void)` that adds its
 * suite with tk_test_suite().  The exit status comes from
 * CU_get_number_of_failures(), read before cleanup: CU_basic_run_tests
 * returns success even when tests fail.
 *
 * A test that cannot run here calls tk_test_skip(reason) and returns: the
 * runner prints "SKIPPED: name (reason)" and counts it, and when every test
 * it ran was skipped it exits TK_TEST_SKIP_STATUS, which ctest reports as
 * "Skipped" (SKIP_RETURN_CODE, set by tk_unit_test), never as passed.
 */
#ifndef TK_TEST_H
#define TK_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

typedef void (*tk_test_register_fn)(void);

typedef struct tk_test_case {
	const char *name;
	void (*fn)(void);
} tk_test_case;

#define TK_TEST(fn) { #fn, fn }
#define TK_TEST_END { NULL, NULL }

/* Adds a suite with the given NULL-terminated test list. */
void tk_test_suite(const char *name, const tk_test_case *cases);

/* Runs all registered suites (optionally only suite argv[1]). */
int tk_test_main(int argc, char **argv, ...);

/* Exit status of a runner whose every test was skipped (automake's 77). */
#define TK_TEST_SKIP_STATUS 77

/* Marks the running test as skipped; the caller returns right after. */
void tk_test_skip(const char *reason);

/*
 * Skips the running test unless the allocation funnel's fault injection is
 * compiled in (a fault armed for the next point must fire).  Needs
 * <tk/mem.h>.
 */
#define TK_TEST_NEED_FAULT_INJECTION()                                   \
	do {                                                             \
		bool tk_test_fi_;                                        \
		tk_fault_arm(1);                                         \
		tk_test_fi_ = tk_fault_hit("tk_test_probe");             \
		tk_fault_disarm();                                       \
		if (!tk_test_fi_) {                                      \
			tk_test_skip("fault injection not compiled in"); \
			return;                                          \
		}                                                        \
	} while (0)

/* Path of a vector file under tests/vectors ($TK_VECTORS). */
const char *tk_test_vector_path(const char *name);
/* Reads a whole file; caller frees with free(). NULL on failure. */
char *tk_test_read_file(const char *path, size_t *len);
/* Monotonic milliseconds, for bounded waits in tests. */
uint64_t tk_test_now_ms(void);
/* Fresh private temp directory (0700), removed recursively by tk_test_rmtree. */
char *tk_test_tmpdir(void);
void tk_test_rmtree(const char *path);

/* Hex string -> bytes; aborts the test on malformed hex.  Returns length. */
size_t tk_test_unhex(unsigned char *out, size_t cap, const char *hex);

#define TK_ASSERT_MEM_EQ(a, b, n) CU_ASSERT(memcmp((a), (b), (n)) == 0)

#endif
