#include <stdio.h>
#include <string.h>

#include "tk/core.h"
#include "tk_test.h"

void register_buf(void);

static void
test_buf_basic(void)
{
	tk_buf b;
	const char *s;

	tk_buf_init(&b);
	CU_ASSERT_EQUAL(tk_buf_append_str(&b, "hello"), 0);
	CU_ASSERT_EQUAL(tk_buf_printf(&b, " %d %s", 42, "world"), 0);
	CU_ASSERT_EQUAL(tk_buf_cstr(&b, &s), 0);
	CU_ASSERT_STRING_EQUAL(s, "hello 42 world");
	tk_buf_consume(&b, 6);
	CU_ASSERT_EQUAL(tk_buf_cstr(&b, &s), 0);
	CU_ASSERT_STRING_EQUAL(s, "42 world");
	for (int i = 0; i < 10000; i++)
		CU_ASSERT_EQUAL_FATAL(tk_buf_append_u8(&b, (uint8_t)i), 0);
	CU_ASSERT_EQUAL(b.len, 8 + 10000);
	tk_buf_fini(&b);
	CU_ASSERT_PTR_NULL(b.data);
	tk_buf_fini(&b); /* idempotent */
}

static void
test_buf_limit(void)
{
	tk_buf b;
	uint8_t *p;

	tk_buf_init_limit(&b, 100);
	CU_ASSERT_EQUAL(tk_buf_extend(&b, 100, &p), 0);
	CU_ASSERT_EQUAL(tk_buf_append_u8(&b, 1), TK_EMSGSIZE);
	CU_ASSERT_EQUAL(b.len, 100);
	CU_ASSERT_EQUAL(tk_buf_reserve(&b, SIZE_MAX), TK_EMSGSIZE);
	tk_buf_fini_secret(&b);
}

static void
test_buf_fault_injection(void)
{
	/* Every allocation point of a growing append fails cleanly. */
	for (unsigned long n = 1; n < 20; n++) {
		tk_buf b;
		int rv = 0;

		tk_buf_init(&b);
		tk_fault_arm(n);
		for (int i = 0; i < 1000 && rv == 0; i++)
			rv = tk_buf_append(&b, "0123456789", 10);
		if (tk_fault_fired()) {
			CU_ASSERT_EQUAL(rv, TK_ENOMEM);
		} else {
			CU_ASSERT_EQUAL(rv, 0);
		}
		tk_fault_disarm();
		/* the buffer is still consistent */
		CU_ASSERT(b.len <= b.cap);
		CU_ASSERT_EQUAL(b.len % 10, 0);
		tk_buf_fini(&b);
	}
}

static void
test_pkt(void)
{
	tk_pkt *p;
	uint8_t *h, *t;

	CU_ASSERT_EQUAL(tk_pkt_new(&p, TK_PKT_MAX + 1), TK_EMSGSIZE);
	CU_ASSERT_EQUAL_FATAL(tk_pkt_new(&p, 1420), 0);
	CU_ASSERT_EQUAL(tk_pkt_headroom(p), TK_PKT_HEADROOM);
	CU_ASSERT_EQUAL(tk_pkt_tailroom(p), 1420 + TK_PKT_TAILROOM);
	CU_ASSERT_EQUAL(tk_pkt_set(p, "abcdef", 6), 0);
	CU_ASSERT_EQUAL(tk_pkt_push(p, 16, &h), 0);
	memset(h, 0xee, 16);
	CU_ASSERT_EQUAL(p->pk_len, 22);
	CU_ASSERT(memcmp(p->pk_data + 16, "abcdef", 6) == 0);
	CU_ASSERT_EQUAL(tk_pkt_push(p, TK_PKT_HEADROOM, &h), TK_EMSGSIZE);
	CU_ASSERT_EQUAL(tk_pkt_put(p, 16, &t), 0);
	CU_ASSERT(t == p->pk_data + 22);
	CU_ASSERT_EQUAL(tk_pkt_pull(p, 16), 0);
	CU_ASSERT(memcmp(p->pk_data, "abcdef", 6) == 0);
	CU_ASSERT_EQUAL(tk_pkt_pull(p, 1000), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_pkt_trim(p, 3), 0);
	CU_ASSERT_EQUAL(p->pk_len, 3);
	CU_ASSERT_EQUAL(tk_pkt_trim(p, 4), TK_EINVAL);
	CU_ASSERT_EQUAL(tk_pkt_put(p, 100000, &t), TK_EMSGSIZE);
	tk_pkt_free(p);
	tk_pkt_free(NULL);
}

static int secret_frees, secret_dirty;

static void
count_secret(const void *p, size_t n, void *arg)
{
	(void)arg;
	secret_frees++;
	if (!tk_ct_is_zero(p, n))
		secret_dirty++;
}

/* A secret buffer never lets a block go unzeroed: not when it grows (no
 * realloc), not when consumed, not at fini. */
static void
test_buf_secret(void)
{
	tk_buf b;
	char line[80];

	secret_frees = secret_dirty = 0;
	tk_mem_set_secret_free_hook(count_secret, NULL);
	tk_buf_init_secret(&b);
	CU_ASSERT_EQUAL(tk_buf_append_str(&b, "private_key=0123456789abcdef\n"), 0);
	for (int i = 0; i < 200; i++) { /* 64 -> 128 -> ... -> 8192 bytes */
		snprintf(line, sizeof(line), "public_key=%040d\n", i);
		CU_ASSERT_EQUAL_FATAL(tk_buf_append_str(&b, line), 0);
	}
	CU_ASSERT(secret_frees >= 7); /* every outgrown block */
	tk_buf_consume(&b, 10);
	CU_ASSERT(tk_ct_is_zero(b.data + b.len, 10)); /* the vacated tail */
	tk_buf_fini(&b);
	CU_ASSERT(secret_frees >= 8);
	CU_ASSERT_EQUAL(secret_dirty, 0);
	/* tk_free_secret on its own */
	char *k = tk_strdup("tskey-abc");
	int before = secret_frees;
	tk_free_secret(k, 10);
	tk_free_secret(NULL, 5);
	CU_ASSERT_EQUAL(secret_frees, before + 1);
	tk_mem_set_secret_free_hook(NULL, NULL);
	CU_ASSERT_EQUAL(secret_dirty, 0);
}

void
register_buf(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_buf_basic),
		TK_TEST(test_buf_limit),
		TK_TEST(test_buf_fault_injection),
		TK_TEST(test_buf_secret),
		TK_TEST(test_pkt),
		TK_TEST_END,
	};
	tk_test_suite("buf", cases);
}
