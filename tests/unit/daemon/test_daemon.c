/* The daemon scaffold: flag parsing and --bus DIR URLs. */
#include <stdio.h>
#include <string.h>

#include "tk/daemon.h"
#include "tk/err.h"
#include "tk_test.h"

void register_daemon(void);

static const char *s_state, *s_bus, *s_ifname;
static bool s_eph;
static long s_port;
static const tk_opt opts[] = {
	{ "--state", TK_OPT_STR, &s_state, .metavar = "DIR", .help = "state" },
	{ "--bus", TK_OPT_STR, &s_bus, .metavar = "DIR", .help = "bus" },
	{ "--ephemeral", TK_OPT_FLAG, &s_eph, .help = "flag" },
	{ "--port", TK_OPT_INT, &s_port, .min = 1, .max = 65535 },
	{ "IFNAME", TK_OPT_ARG, &s_ifname, .help = "a positional argument" },
	{ .name = NULL },
};

static int
parse(int argc, const char **argv)
{
	s_state = s_bus = s_ifname = NULL;
	s_eph = false;
	s_port = 0;
	/* stderr/stdout get the usage; keep the test output readable */
	FILE *o = freopen("/dev/null", "w", stderr);
	(void)o;
	int rc = tk_opts_parse("t", NULL, opts, argc, (char **)argv, 1);
	return rc;
}

static void
test_opts(void)
{
	const char *ok[] = { "t", "--state", "/s", "--ephemeral", "--port", "41641",
		"--bus", "/b" };
	CU_ASSERT_EQUAL(parse(8, ok), -1);
	CU_ASSERT_STRING_EQUAL(s_state, "/s");
	CU_ASSERT_STRING_EQUAL(s_bus, "/b");
	CU_ASSERT(s_eph);
	CU_ASSERT_EQUAL(s_port, 41641);

	const char *unknown[] = { "t", "--stat", "/s" };
	CU_ASSERT_EQUAL(parse(3, unknown), 2);
	const char *missing[] = { "t", "--state" };
	CU_ASSERT_EQUAL(parse(2, missing), 2);
	CU_ASSERT_PTR_NULL(s_state);
	const char *range[] = { "t", "--port", "0" };
	CU_ASSERT_EQUAL(parse(3, range), 2);
	const char *junk[] = { "t", "--port", "12ab" };
	CU_ASSERT_EQUAL(parse(3, junk), 2);
	const char *empty[] = { "t", "--port", "" };
	CU_ASSERT_EQUAL(parse(3, empty), 2);
	const char *big[] = { "t", "--port", "65536" };
	CU_ASSERT_EQUAL(parse(3, big), 2);
	const char *none[] = { "t" };
	CU_ASSERT_EQUAL(parse(1, none), -1);
	CU_ASSERT_PTR_NULL(s_ifname);
	const char *pos[] = { "t", "wg0", "--port", "5" };
	CU_ASSERT_EQUAL(parse(4, pos), -1);
	CU_ASSERT_STRING_EQUAL(s_ifname, "wg0");
	const char *two[] = { "t", "wg0", "wg1" };
	CU_ASSERT_EQUAL(parse(3, two), 2); /* one positional only */
	const char *optname[] = { "t", "IFNAME", "x" }; /* not an option name */
	CU_ASSERT_EQUAL(parse(3, optname), 2);
}

static void
test_bus_urls(void)
{
	const char *u = NULL, *set = "inproc://x/y";
	CU_ASSERT_EQUAL(tk_bus_url_default(&u, "/run/tk", "wgd.rpc"), 0);
	CU_ASSERT_STRING_EQUAL(u, "ipc:///run/tk/wgd.rpc");
	CU_ASSERT_EQUAL(tk_bus_url_default(&set, "/run/tk", "wgd.rpc"), 0);
	CU_ASSERT_STRING_EQUAL(set, "inproc://x/y"); /* explicit URL wins */
	const char *n = NULL;
	CU_ASSERT_EQUAL(tk_bus_url_default(&n, NULL, "wgd.rpc"), 0);
	CU_ASSERT_PTR_NULL(n); /* no --bus: nothing */
	char longdir[700];
	memset(longdir, 'a', sizeof(longdir) - 1);
	longdir[sizeof(longdir) - 1] = 0;
	const char *l = NULL;
	CU_ASSERT_EQUAL(tk_bus_url_default(&l, longdir, "x"), TK_EINVAL);
	CU_ASSERT_PTR_NULL(l);
}

void
register_daemon(void)
{
	static const tk_test_case cases[] = {
		TK_TEST(test_opts),
		TK_TEST(test_bus_urls),
		TK_TEST_END,
	};
	tk_test_suite("daemon", cases);
}
