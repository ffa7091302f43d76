/*
 * tailkit error codes.
 *
 * Every function that can fail returns int: 0 on success or a positive TK_E*
 * code.  Results go through out-parameters that are written only on success.
 * Codes from foreign libraries are folded in by range (the high byte names the
 * source, the low 24 bits carry its code, made positive) and decoded by the one
 * tk_strerror().
 */
#ifndef TK_ERR_H
#define TK_ERR_H

#include <stdbool.h>

enum tk_err {
	TK_OK = 0,
	TK_ENOMEM = 1,	 /* allocation failed */
	TK_EINVAL,	 /* bad argument from a caller/user */
	TK_EPROTO,	 /* malformed input from the network */
	TK_ECRYPTO,	 /* authentication failed (never says why) */
	TK_EAGAIN,	 /* try again later / would block */
	TK_ECLOSED,	 /* object closed or shut down */
	TK_ETIMEDOUT,	 /* deadline passed */
	TK_ENOENT,	 /* not found */
	TK_EEXIST,	 /* already exists */
	TK_EMSGSIZE,	 /* does not fit */
	TK_ESTATE,	 /* wrong state for this call */
	TK_EIO,		 /* I/O failed */
	TK_EPERM,	 /* not permitted */
	TK_ENOTSUP,	 /* not supported */
	TK_EINTERNAL,	 /* invariant broken: a bug */
	TK_ERR_MAX_
};

/* Ranges for foreign codes: TK_ESYS | errno, TK_ENNG | nng_err, ... */
#define TK_ERANGE_MASK 0x7f000000
#define TK_ECODE_MASK  0x00ffffff
#define TK_ESYS	       0x01000000 /* | errno */
#define TK_ENNG	       0x02000000 /* | nng error */
#define TK_ESQLITE     0x03000000 /* | sqlite extended result code */
#define TK_ETLS	       0x04000000 /* | -gnutls return code */
#define TK_EH2	       0x05000000 /* | -nghttp2 return code */
#define TK_EZSTD       0x06000000 /* | ZSTD_ErrorCode */

/* Folding helpers: map a foreign failure to a tailkit code (0 stays 0). */
int tk_err_sys(int errno_value);
int tk_err_nng(int nng_rv);
int tk_err_sqlite(int sqlite_rc);
int tk_err_tls(int gnutls_rc);
int tk_err_h2(int nghttp2_rc);
int tk_err_zstd(int zstd_error_code);

/*
 * Naming foreign codes: the library that folds a range registers how to
 * name it (nng: libs/bus, sqlite: libs/state, GnuTLS/nghttp2/zstd: their
 * users), so libs/core links none of them.  fn gets the folded code's
 * magnitude (as stored: positive).  Idempotent; any thread, before use.
 * An unregistered range prints its name and number only.
 */
typedef const char *(*tk_err_name_fn)(int code);
void tk_err_register(int range, tk_err_name_fn fn);

/*
 * Human text for any code, ours or folded.  The returned string is static or
 * thread-local; it stays valid until the next call on the same thread.
 */
const char *tk_strerror(int err);

#endif
