/*
 * Server certificate verification for tailkit's TLS clients (ctrld's
 * control connection, derpd's DERP client), with the system's CA bundle
 * held only while a chain is verified.
 *
 * GnuTLS keeps a credentials' trust list for as long as the credentials
 * live; Debian's bundle (about 140 CAs) costs about 3.7 MiB of heap that a
 * long-lived DERP or control connection would otherwise hold for nothing
 * after its handshake.  Here the chain the server sent is verified after
 * the handshake, before any byte of ours goes out, against a trust list
 * built for that one verification and freed right after it (and the heap
 * trimmed): the cost is paid at connect time, ~10 ms of parsing, and not
 * carried.  The credentials given to the session hold no CAs.
 */
#ifndef TK_TLS_VERIFY_H
#define TK_TLS_VERIFY_H

#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stddef.h>

/* At most this many certificates in a server's chain are looked at. */
#define TK_TLS_MAX_CHAIN 16

typedef struct tk_tls_trust {
	bool system;	     /* the system's CA bundle */
	const char *ca_file; /* NULL, or a PEM file of extra CAs */
} tk_tls_trust;

/*
 * Verifies a DER chain (leaf first) for host (a DNS name or an IP
 * literal; TLS server purpose) against trust.  0 with *status == 0: valid;
 * 0 with *status != 0: GnuTLS's reasons (gnutls_certificate_verification_
 * status_print names them); else TK_EINVAL (no chain, over
 * TK_TLS_MAX_CHAIN, no CA at all), TK_ETLS | -gnutls_error (a certificate
 * that does not parse, an unreadable or empty ca_file), TK_ENOMEM.
 */
int tk_tls_verify_chain(const gnutls_datum_t *chain, unsigned n,
    const char *host, const tk_tls_trust *trust, unsigned *status);
/* The same for the chain a client session received in its handshake. */
int tk_tls_verify_session(gnutls_session_t s, const char *host,
    const tk_tls_trust *trust, unsigned *status);
/*
 * tk_tls_verify_session for a caller that only needs the verdict and the
 * words for a log line or an error: 0 when the chain is valid; otherwise
 * nonzero (the error, or TK_ETLS | -GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR
 * for a chain that does not verify) with why set to GnuTLS's reasons or
 * the error's name.
 */
int tk_tls_check_session(gnutls_session_t s, const char *host,
    const tk_tls_trust *trust, char *why, size_t whylen);

#endif
