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
 */
#ifndef TK_TEST_H
#define TK_TEST_H

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
