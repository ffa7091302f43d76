#include <stdio.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "tk/core.h"
#include "tk/sockaddr.h"
#include "tk_test.h"

void register_misc(void);

static void
test_endian(void)
{
	uint8_t b[8];

	tk_be16_store(b, 0x1234);
	CU_ASSERT(b[0] == 0x12 && b[1] == 0x34);
	CU_ASSERT_EQUAL(tk_be16_load(b), 0x1234);
	tk_le32_store(b, 0x11223344);
	CU_ASSERT(b[0] == 0x44 && b[3] == 0x11);
	CU_ASSERT_EQUAL(tk_le32_load(b), 0x11223344);
	tk_be64_store(b, 0x0102030405060708ull);
	CU_ASSERT(b[0] == 1 && b[7] == 8);
	CU_ASSERT_EQUAL(tk_be64_load(b), 0x0102030405060708ull);
	tk_le64_store(b, 0x0102030405060708ull);
	CU_ASSERT(b[0] == 8 && b[7] == 1);
	CU_ASSERT_EQUAL(tk_le64_load(b), 0x0102030405060708ull);
	CU_ASSERT_EQUAL(tk_be32_load((const uint8_t *)"\x80\0\0\1"), 0x80000001u);
}

static const char *
fake_name(int code)
{
	static char b[32];
	snprintf(b, sizeof(b), "fake %d", code);
	return b;
}

static void
test_strerror(void)
{
	CU_ASSERT_STRING_EQUAL(tk_strerror(0), "success");
	CU_ASSERT_STRING_EQUAL(tk_strerror(TK_ENOMEM), "out of memory");
	CU_ASSERT_PTR_NOT_NULL(strstr(tk_strerror(tk_err_sys(ENOENT)), "errno 2"));
	CU_ASSERT_PTR_NOT_NULL(strstr(tk_strerror(tk_err_nng(8)), "nng:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(tk_strerror(tk_err_sqlite(14)), "sqlite:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(tk_strerror(tk_err_tls(-9)), "tls:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(tk_strerror(tk_err_h2(-501)), "http2:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(tk_strerror(tk_err_zstd(10)), "zstd:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(tk_strerror(9999), "unknown"));
	CU_ASSERT_EQUAL(tk_err_sys(0), 0);
	CU_ASSERT_EQUAL(tk_err_sys(ENOENT) & TK_ERANGE_MASK, TK_ESYS);
	/* libs/core links no foreign library: unregistered ranges say so, a
	 * registered one is named by its library's function */
	CU_ASSERT_PTR_NOT_NULL(strstr(tk_strerror(tk_err_nng(8)), "not named"));
	tk_err_register(TK_ENNG, fake_name);
	CU_ASSERT_STRING_EQUAL(tk_strerror(tk_err_nng(8)), "nng: fake 8 (8)");
	tk_err_register(TK_ENNG, NULL);
	CU_ASSERT_PTR_NOT_NULL(strstr(tk_strerror(tk_err_nng(8)), "not named"));
}

struct captured {
	int n;
	int level;
	char last[256];
};

static void
capture_sink(void *arg, int level, const char *subsys, const char *msg)
{
	struct captured *c = arg;

	(void)subsys;
	c->n++;
	c->level = level;
	snprintf(c->last, sizeof(c->last), "%s", msg);
}

static int evaluated;
static int
side_effect(void)
{
	return ++evaluated;
}

static void
test_log(void)
{
	struct captured c = { 0 };
	int old = tk_log_get_level();

	tk_log_set_sink(capture_sink, &c);
	tk_log_set_level(TK_LOG_WARN);
	TK_INFO("test", "not shown %d", side_effect());
	CU_ASSERT_EQUAL(c.n, 0);
	CU_ASSERT_EQUAL(evaluated, 0); /* arguments not evaluated */
	TK_WARN("test", "shown %d", 5);
	CU_ASSERT_EQUAL(c.n, 1);
	CU_ASSERT_STRING_EQUAL(c.last, "shown 5");
	CU_ASSERT_EQUAL(tk_log_level_parse("debug"), TK_LOG_DEBUG);
	CU_ASSERT_EQUAL(tk_log_level_parse("bogus"), -1);

	/* rate limiting: burst 3, 1/s; then one line after 1 s reports drops */
	tk_fake_clock fc;
	tk_ratelimit rl;

	tk_fake_clock_init(&fc, 1000 * TK_NSEC_PER_SEC, 0);
	tk_ratelimit_init(&rl, 3, 1);
	c.n = 0;
	for (int i = 0; i < 100; i++)
		TK_LOG_RL(&rl, &fc.fc_clock, TK_LOG_WARN, "test", "bad packet %d", i);
	CU_ASSERT_EQUAL(c.n, 3);
	tk_fake_clock_advance(&fc, TK_NSEC_PER_SEC);
	TK_LOG_RL(&rl, &fc.fc_clock, TK_LOG_WARN, "test", "bad packet");
	CU_ASSERT_EQUAL(c.n, 4);
	CU_ASSERT_PTR_NOT_NULL(strstr(c.last, "97 similar suppressed"));
	tk_log_set_sink(NULL, NULL);
	tk_log_set_level(old);
}

static void
test_rng_uniform(void)
{
	tk_fake_rng r;
	int hist[10] = { 0 };

	tk_fake_rng_init(&r, 3);
	for (int i = 0; i < 10000; i++)
		hist[tk_rng_uniform(&r.fr_rng, 10)]++;
	for (int i = 0; i < 10; i++)
		CU_ASSERT(hist[i] > 800 && hist[i] < 1200);
	CU_ASSERT_EQUAL(tk_rng_uniform(&r.fr_rng, 1), 0);
	CU_ASSERT_EQUAL(tk_rng_uniform(NULL, 0), 0);
}

static void
test_ct_and_fault(void)
{
	uint8_t a[32] = { 0 }, b[32] = { 0 };

	CU_ASSERT_TRUE(tk_ct_eq(a, b, 32));
	CU_ASSERT_TRUE(tk_ct_is_zero(a, 32));
	b[31] = 1;
	CU_ASSERT_FALSE(tk_ct_eq(a, b, 32));
	CU_ASSERT_FALSE(tk_ct_is_zero(b, 32));
	tk_secure_zero(b, 32);
	CU_ASSERT_TRUE(tk_ct_is_zero(b, 32));

	tk_fault_arm(2);
	void *p1 = tk_malloc(10);
	void *p2 = tk_malloc(10);
	CU_ASSERT_PTR_NOT_NULL(p1);
	CU_ASSERT_PTR_NULL(p2);
	CU_ASSERT_TRUE(tk_fault_fired());
	void *p3 = tk_malloc(10);
	CU_ASSERT_PTR_NOT_NULL(p3); /* fires once */
	tk_free(p1);
	tk_free(p3);
	tk_fault_disarm();
}

/* tk_ipport <-> sockaddr, both families, and unmapping ::ffff:a.b.c.d */
static void
test_sockaddr(void)
{
	static const char *const eps[] = { "100.64.0.1:41641", "[fd7a:115c:a1e0::1]:443",
		"0.0.0.0:0", "[::ffff:192.0.2.7]:53" };
	struct sockaddr_storage ss;
	tk_ipport a, b;

	for (size_t i = 0; i < sizeof(eps) / sizeof(eps[0]); i++) {
		CU_ASSERT_FATAL(tk_ipport_parse(&a, eps[i], strlen(eps[i])) == 0);
		socklen_t sl = tk_ipport_to_sockaddr(&a, &ss);
		CU_ASSERT_EQUAL(sl, a.ip.family == TK_AF_INET ?
		    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
		CU_ASSERT_EQUAL(ss.ss_family, a.ip.family == TK_AF_INET ? AF_INET :
		    AF_INET6);
		tk_ipport_from_sockaddr(&b, &ss);
		CU_ASSERT(b.ip.family == a.ip.family && b.port == a.port &&
		    memcmp(b.ip.addr, a.ip.addr, 16) == 0);
	}
	CU_ASSERT_FATAL(tk_ipport_parse(&a, eps[3], strlen(eps[3])) == 0);
	tk_ipaddr_unmap(&a.ip);
	CU_ASSERT(a.ip.family == TK_AF_INET && a.ip.addr[0] == 192 &&
	    a.ip.addr[3] == 7 && a.ip.addr[4] == 0);
	CU_ASSERT_FATAL(tk_ipport_parse(&a, eps[1], strlen(eps[1])) == 0);
	tk_ipaddr_unmap(&a.ip);
	CU_ASSERT(a.ip.family == TK_AF_INET6);
}

void
register_misc(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_endian),
		TK_TEST(test_strerror),
		TK_TEST(test_log),
		TK_TEST(test_rng_uniform),
		TK_TEST(test_ct_and_fault),
		TK_TEST(test_sockaddr),
		TK_TEST_END,
	};
	tk_test_suite("misc", cases);
}
