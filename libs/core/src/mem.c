#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <sodium.h>

#include "tk/mem.h"

static atomic_uint_fast64_t n_allocs, n_frees, n_failed;
static atomic_ulong fault_countdown; /* 0 = disarmed */
static atomic_bool fault_fired;

bool
tk_fault_hit(const char *site)
{
	(void)site;
#ifdef TK_FAULT_INJECTION
	unsigned long c = atomic_load_explicit(&fault_countdown,
	    memory_order_relaxed);

	while (c != 0) {
		if (atomic_compare_exchange_weak(&fault_countdown, &c, c - 1)) {
			if (c == 1) {
				atomic_store(&fault_fired, true);
				return true;
			}
			return false;
		}
	}
#endif
	return false;
}

void
tk_fault_arm(unsigned long n)
{
	atomic_store(&fault_fired, false);
	atomic_store(&fault_countdown, n);
}

void
tk_fault_disarm(void)
{
	atomic_store(&fault_countdown, 0);
}

bool
tk_fault_fired(void)
{
	return atomic_load(&fault_fired);
}

static void *
counted(void *p)
{
	if (p == NULL)
		atomic_fetch_add(&n_failed, 1);
	else
		atomic_fetch_add(&n_allocs, 1);
	return p;
}

void *
tk_malloc(size_t n)
{
	if (tk_fault_hit("malloc"))
		return counted(NULL);
	return counted(malloc(n == 0 ? 1 : n));
}

void
tk_mem_hint_huge(void *p, size_t n)
{
	const uintptr_t huge = (uintptr_t)2 << 20;
	uintptr_t lo = ((uintptr_t)p + huge - 1) & ~(huge - 1);
	uintptr_t hi = ((uintptr_t)p + n) & ~(huge - 1);

	if (p == NULL || n < 2 * huge || hi <= lo)
		return;
	(void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
}

void
tk_mem_discard(void *p, size_t n)
{
#ifdef NDEBUG
	const uintptr_t huge = (uintptr_t)2 << 20;
	uintptr_t lo = ((uintptr_t)p + huge - 1) & ~(huge - 1);
	uintptr_t hi = ((uintptr_t)p + n) & ~(huge - 1);

	if (p == NULL || hi <= lo)
		return;
	(void)madvise((void *)lo, hi - lo, MADV_DONTNEED);
#else
	if (p != NULL && n > 0)
		memset(p, 0xa5, n);
#endif
}

void *
tk_calloc(size_t nmemb, size_t size)
{
	if (tk_fault_hit("calloc"))
		return counted(NULL);
	if (nmemb == 0 || size == 0)
		nmemb = size = 1;
	return counted(calloc(nmemb, size));
}

void *
tk_realloc(void *p, size_t n)
{
	void *q;

	if (p == NULL)
		return tk_malloc(n);
	if (tk_fault_hit("realloc")) {
		atomic_fetch_add(&n_failed, 1);
		return NULL;
	}
	q = realloc(p, n == 0 ? 1 : n);
	if (q == NULL)
		atomic_fetch_add(&n_failed, 1);
	return q;
}

void
tk_free(void *p)
{
	if (p == NULL)
		return;
	atomic_fetch_add(&n_frees, 1);
	free(p);
}

char *
tk_strndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *d = tk_malloc(len + 1);

	if (d == NULL)
		return NULL;
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

char *
tk_strdup(const char *s)
{
	return tk_strndup(s, strlen(s));
}

void
tk_alloc_stats_get(tk_alloc_stats *out)
{
	out->as_allocs = atomic_load(&n_allocs);
	out->as_frees = atomic_load(&n_frees);
	out->as_failed = atomic_load(&n_failed);
}

bool
tk_ct_eq(const void *a, const void *b, size_t n)
{
	return sodium_memcmp(a, b, n) == 0;
}

bool
tk_ct_is_zero(const void *p, size_t n)
{
	return sodium_is_zero(p, n) == 1;
}

void
tk_secure_zero(void *p, size_t n)
{
	sodium_memzero(p, n);
}

static _Atomic(tk_secret_free_fn) secret_hook;
static void *_Atomic secret_hook_arg;

void
tk_mem_set_secret_free_hook(tk_secret_free_fn fn, void *arg)
{
	atomic_store(&secret_hook_arg, arg);
	atomic_store(&secret_hook, fn);
}

void
tk_free_secret(void *p, size_t n)
{
	tk_secret_free_fn fn;

	if (p == NULL)
		return;
	sodium_memzero(p, n);
	if ((fn = atomic_load(&secret_hook)) != NULL)
		fn(p, n, atomic_load(&secret_hook_arg));
	tk_free(p);
}
