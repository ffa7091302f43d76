#include <errno.h>
#include <stdio.h>
#include <string.h>


#include "tk/err.h"

static const char *const tk_msgs[TK_ERR_MAX_] = {
	[TK_OK] = "success",
	[TK_ENOMEM] = "out of memory",
	[TK_EINVAL] = "invalid argument",
	[TK_EPROTO] = "protocol error (malformed input)",
	[TK_ECRYPTO] = "authentication failed",
	[TK_EAGAIN] = "try again",
	[TK_ECLOSED] = "object closed",
	[TK_ETIMEDOUT] = "timed out",
	[TK_ENOENT] = "not found",
	[TK_EEXIST] = "already exists",
	[TK_EMSGSIZE] = "message too large",
	[TK_ESTATE] = "invalid state",
	[TK_EIO] = "I/O error",
	[TK_EPERM] = "permission denied",
	[TK_ENOTSUP] = "not supported",
	[TK_EINTERNAL] = "internal error",
};

static int
fold(int range, int code)
{
	if (code == 0)
		return 0;
	if (code < 0)
		code = -code;
	return range | (code & TK_ECODE_MASK);
}

int tk_err_sys(int e) { return fold(TK_ESYS, e); }
int tk_err_nng(int rv) { return fold(TK_ENNG, rv); }
int tk_err_sqlite(int rc) { return fold(TK_ESQLITE, rc); }
int tk_err_tls(int rc) { return fold(TK_ETLS, rc); }
int tk_err_h2(int rc) { return fold(TK_EH2, rc); }
int tk_err_zstd(int code) { return fold(TK_EZSTD, code); }

/* by range >> 24: TK_ENNG (2) .. TK_EZSTD (6) */
static tk_err_name_fn names[8];

void
tk_err_register(int range, tk_err_name_fn fn)
{
	int idx = (range & TK_ERANGE_MASK) >> 24;

	if (idx >= 2 && idx <= 6)
		__atomic_store_n(&names[idx], fn, __ATOMIC_RELEASE);
}

const char *
tk_strerror(int err)
{
	static _Thread_local char buf[160];
	int range = err & TK_ERANGE_MASK;
	int code = err & TK_ECODE_MASK;
	char tmp[96];

	if (err < 0)
		return "invalid error code (negative)";
	switch (range) {
	case 0:
		if (err < TK_ERR_MAX_ && tk_msgs[err] != NULL)
			return tk_msgs[err];
		snprintf(buf, sizeof(buf), "unknown tailkit error %d", err);
		return buf;
	case TK_ESYS:
		snprintf(buf, sizeof(buf), "system: %s (errno %d)",
		    strerror_r(code, tmp, sizeof(tmp)), code);
		return buf;
	case TK_ENNG:
	case TK_ESQLITE:
	case TK_ETLS:
	case TK_EH2:
	case TK_EZSTD: {
		static const char *const what[] = { "", "", "nng", "sqlite", "tls",
			"http2", "zstd" };
		int idx = range >> 24;
		tk_err_name_fn fn = __atomic_load_n(&names[idx], __ATOMIC_ACQUIRE);
		if (fn != NULL)
			snprintf(buf, sizeof(buf), "%s: %s (%d)", what[idx], fn(code),
			    code);
		else
			snprintf(buf, sizeof(buf), "%s: error %d (not named: its library "
			    "is not linked)", what[idx], code);
		return buf;
	}
	default:
		snprintf(buf, sizeof(buf), "unknown error 0x%x", err);
		return buf;
	}
}
