/*
 * tk_tls_verify_*: see tk/tls_verify.h.
 */
#include "tk/tls_verify.h"

#include <gnutls/x509.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "tk/err.h"

int
tk_tls_verify_chain(const gnutls_datum_t *chain, unsigned n,
    const char *host, const tk_tls_trust *trust, unsigned *status)
{
	gnutls_x509_crt_t crt[TK_TLS_MAX_CHAIN];
	gnutls_x509_trust_list_t tl = NULL;
	unsigned ncrt = 0, ncas = 0;
	int rv = 0, g;

	*status = GNUTLS_CERT_INVALID;
	if (chain == NULL || n == 0 || n > TK_TLS_MAX_CHAIN || host == NULL ||
	    trust == NULL || (!trust->system && trust->ca_file == NULL))
		return TK_EINVAL;
	for (; ncrt < n; ncrt++) {
		if ((g = gnutls_x509_crt_init(&crt[ncrt])) < 0) {
			rv = TK_ENOMEM;
			goto out;
		}
		if ((g = gnutls_x509_crt_import(crt[ncrt], &chain[ncrt],
			 GNUTLS_X509_FMT_DER)) < 0) {
			ncrt++;
			rv = TK_ETLS | (unsigned)-g;
			goto out;
		}
	}
	if (gnutls_x509_trust_list_init(&tl, 0) < 0) {
		rv = TK_ENOMEM;
		goto out;
	}
	if (trust->system && (g = gnutls_x509_trust_list_add_system_trust(tl,
	    0, 0)) > 0)
		ncas += (unsigned)g;
	if (trust->ca_file != NULL) {
		g = gnutls_x509_trust_list_add_trust_file(tl, trust->ca_file,
		    NULL, GNUTLS_X509_FMT_PEM, 0, 0);
		if (g <= 0) {
			rv = TK_ETLS | (unsigned)(g < 0 ? -g :
			    -GNUTLS_E_NO_CERTIFICATE_FOUND);
			goto out;
		}
		ncas += (unsigned)g;
	}
	if (ncas == 0) {
		rv = TK_EINVAL; /* nothing to verify against */
		goto out;
	}
	gnutls_typed_vdata_st vd[2] = {
		{ .type = GNUTLS_DT_DNS_HOSTNAME, .data = (void *)host },
		{ .type = GNUTLS_DT_KEY_PURPOSE_OID,
		    .data = (void *)GNUTLS_KP_TLS_WWW_SERVER },
	};
	if ((g = gnutls_x509_trust_list_verify_crt2(tl, crt, n, vd, 2, 0,
	    status, NULL)) < 0)
		rv = TK_ETLS | (unsigned)-g;
out:
	for (unsigned i = 0; i < ncrt; i++)
		gnutls_x509_crt_deinit(crt[i]);
	if (tl != NULL)
		gnutls_x509_trust_list_deinit(tl, 1);
	malloc_trim(0); /* the bundle's heap back to the system */
	if (rv != 0)
		*status = GNUTLS_CERT_INVALID;
	return rv;
}

int
tk_tls_verify_session(gnutls_session_t s, const char *host,
    const tk_tls_trust *trust, unsigned *status)
{
	unsigned n = 0;
	const gnutls_datum_t *chain = gnutls_certificate_get_peers(s, &n);

	*status = GNUTLS_CERT_INVALID;
	if (chain == NULL || n == 0)
		return TK_EINVAL; /* no certificate sent */
	return tk_tls_verify_chain(chain, n > TK_TLS_MAX_CHAIN ?
	    TK_TLS_MAX_CHAIN : n, host, trust, status);
}

int
tk_tls_check_session(gnutls_session_t s, const char *host,
    const tk_tls_trust *trust, char *why, size_t whylen)
{
	unsigned status = 0;
	int rv = tk_tls_verify_session(s, host, trust, &status);
	gnutls_datum_t txt = { 0 };

	if (rv == 0 && status == 0)
		return 0;
	if (rv == 0) {
		gnutls_certificate_verification_status_print(status,
		    GNUTLS_CRT_X509, &txt, 0);
		rv = TK_ETLS | (unsigned)-GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
	}
	snprintf(why, whylen, "%s", txt.data != NULL ? (const char *)txt.data :
	    tk_strerror(rv));
	gnutls_free(txt.data);
	return rv;
}
