/*
 * The allocation funnel, fault injection, secrets and invariants.
 *
 * All tailkit allocations go through tk_malloc/tk_calloc/tk_realloc/tk_free.
 * With TK_FAULT_INJECTION compiled in, a test can arm a countdown so that the
 * Nth fault point from now fails (allocation returns NULL, tk_fault_hit()
 * returns true), then sweep N over every fault point of an operation.
 */
#ifndef TK_MEM_H
#define TK_MEM_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *tk_malloc(size_t n);
void *tk_calloc(size_t nmemb, size_t size);
void *tk_realloc(void *p, size_t n);
void tk_free(void *p);
char *tk_strdup(const char *s);
char *tk_strndup(const char *s, size_t n);

/* Counters for leak checks in tests (allocations minus frees). */
typedef struct tk_alloc_stats {
	uint64_t as_allocs;
	uint64_t as_frees;
	uint64_t as_failed;
} tk_alloc_stats;
void tk_alloc_stats_get(tk_alloc_stats *out);

/*
 * Fault injection.  tk_fault_arm(n): the n-th fault point from now (n >= 1)
 * fails, once.  tk_fault_disarm() cancels.  tk_fault_fired() tells whether
 * the armed fault has fired.  Named sites (tk_fault_hit) share the countdown
 * with allocations.  Without TK_FAULT_INJECTION these are no-ops.
 */
void tk_fault_arm(unsigned long n);
void tk_fault_disarm(void);
bool tk_fault_fired(void);
bool tk_fault_hit(const char *site);

/*
 * A hint for a large buffer about to be filled whole (a decompressed
 * message, a parse tape): back it with transparent huge pages where the
 * kernel allows them on request (transparent_hugepage "madvise" or
 * "always"), so filling it takes one page fault per 2 MiB instead of one
 * per 4 KiB.  Only the 2 MiB-aligned part of p[0..n) is advised; below
 * 4 MiB, or where the kernel says no, nothing happens.
 */
void tk_mem_hint_huge(void *p, size_t n);

/*
 * p[0..n), inside a live allocation, will not be read again before it is
 * freed: the 2 MiB-aligned part of it goes back to the kernel (whole huge
 * pages, see above) and reads as zeros.  Debug builds fill all of p[0..n)
 * with 0xa5 instead, so that a reader that should not be there reads
 * nonsense.
 */
void tk_mem_discard(void *p, size_t n);

/* Constant-time equality of two buffers of equal length. */
bool tk_ct_eq(const void *a, const void *b, size_t n);
/* Constant-time test for all-zero. */
bool tk_ct_is_zero(const void *p, size_t n);
/* Zeroing the compiler may not elide (sodium_memzero). */
void tk_secure_zero(void *p, size_t n);
/* tk_free of a block that held a secret: its first n bytes are zeroed
 * (tk_secure_zero) first.  NULL is a no-op. */
void tk_free_secret(void *p, size_t n);
/*
 * Tests only: fn(p, n, arg) is called by tk_free_secret after zeroing and
 * before freeing, from whichever thread frees, so a test can check that a
 * secret went this way and that it was zeroed.  NULL removes it.
 */
typedef void (*tk_secret_free_fn)(const void *p, size_t n, void *arg);
void tk_mem_set_secret_free_hook(tk_secret_free_fn fn, void *arg);

/*
 * Invariants (SQLite style).  TK_ASSERT aborts in debug builds.  ALWAYS(x)
 * and NEVER(x) mark conditions believed true/false that are still handled in
 * release builds.
 */
#define TK_ASSERT(x) assert(x)
#ifdef NDEBUG
#define TK_ALWAYS(x) (x)
#define TK_NEVER(x)  (x)
#else
#define TK_ALWAYS(x) ((x) ? 1 : (assert(0 && #x), 0))
#define TK_NEVER(x)  ((x) ? (assert(0 && #x), 1) : 0)
#endif

#define TK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define TK_MIN(a, b)	((a) < (b) ? (a) : (b))
#define TK_MAX(a, b)	((a) > (b) ? (a) : (b))

#endif
