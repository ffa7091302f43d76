/*
 * Throwaway X.509 material for the tls+tcp bus tests, made with GnuTLS's C
 * API at test time (certtool from gnutls-bin is not required): a CA, and
 * leaf certificates signed by it, as PEM files in a test directory.
 */
#ifndef TK_TEST_CERTS_H
#define TK_TEST_CERTS_H

#include <stddef.h>

typedef struct test_ca test_ca;

/* Creates a self-signed CA named cn; writes its certificate to ca_path. */
int test_ca_new(test_ca **out, const char *cn, const char *ca_path);
void test_ca_free(test_ca *ca);
/*
 * Issues a leaf (ECDSA P-256) for cn with dNSName/IP SAN "127.0.0.1" and
 * "localhost", usable as TLS client and server; writes cert and key PEM.
 */
int test_ca_issue(test_ca *ca, const char *cn, const char *cert_path,
    const char *key_path);

#endif
