#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <nghttp2/nghttp2.h>
#include <nng/nng.h>
#include <sqlite3.h>
#include <zstd.h>
#include <zstd_errors.h>

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
		snprintf(buf, sizeof(buf), "nng: %s (%d)", nng_strerror(code),
		    code);
		return buf;
	case TK_ESQLITE:
		snprintf(buf, sizeof(buf), "sqlite: %s (%d)",
		    sqlite3_errstr(code), code);
		return buf;
	case TK_ETLS:
		snprintf(buf, sizeof(buf), "tls: %s (%d)",
		    gnutls_strerror(-code), -code);
		return buf;
	case TK_EH2:
		snprintf(buf, sizeof(buf), "http2: %s (%d)",
		    nghttp2_strerror(-code), -code);
		return buf;
	case TK_EZSTD:
		snprintf(buf, sizeof(buf), "zstd: %s (%d)",
		    ZSTD_getErrorString((ZSTD_ErrorCode)code), code);
		return buf;
	default:
		snprintf(buf, sizeof(buf), "unknown error 0x%x", err);
		return buf;
	}
}
