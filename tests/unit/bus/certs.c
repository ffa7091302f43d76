#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "certs.h"

struct test_ca {
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	unsigned serial;
};

static int
write_pem(const char *path, const gnutls_datum_t *d)
{
	FILE *f = fopen(path, "wb");
	int ok;

	if (f == NULL)
		return -1;
	ok = fwrite(d->data, 1, d->size, f) == d->size;
	ok &= fclose(f) == 0;
	return ok ? 0 : -1;
}

static int
new_key(gnutls_x509_privkey_t *out)
{
	gnutls_x509_privkey_t k;

	if (gnutls_x509_privkey_init(&k) < 0)
		return -1;
	if (gnutls_x509_privkey_generate(k, GNUTLS_PK_ECDSA,
		GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0) < 0) {
		gnutls_x509_privkey_deinit(k);
		return -1;
	}
	*out = k;
	return 0;
}

/* Common fields: version 3, serial, a validity window around now. */
static int
crt_base(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key, const char *cn,
    unsigned serial)
{
	unsigned char sn[4] = { 0, (unsigned char)(serial >> 16),
		(unsigned char)(serial >> 8), (unsigned char)serial };
	time_t now = time(NULL);

	if (gnutls_x509_crt_set_version(crt, 3) < 0 ||
	    gnutls_x509_crt_set_serial(crt, sn, sizeof(sn)) < 0 ||
	    gnutls_x509_crt_set_activation_time(crt, now - 3600) < 0 ||
	    gnutls_x509_crt_set_expiration_time(crt, now + 86400) < 0 ||
	    gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
		cn, (unsigned)strlen(cn)) < 0 ||
	    gnutls_x509_crt_set_key(crt, key) < 0)
		return -1;
	return 0;
}

static int
export_crt(gnutls_x509_crt_t crt, const char *path)
{
	gnutls_datum_t d;
	int rv;

	if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d) < 0)
		return -1;
	rv = write_pem(path, &d);
	gnutls_free(d.data);
	return rv;
}

int
test_ca_new(test_ca **out, const char *cn, const char *ca_path)
{
	test_ca *ca = calloc(1, sizeof(*ca));

	if (ca == NULL)
		return -1;
	ca->serial = 1;
	if (new_key(&ca->key) != 0) {
		free(ca);
		return -1;
	}
	if (gnutls_x509_crt_init(&ca->crt) < 0) {
		gnutls_x509_privkey_deinit(ca->key);
		free(ca);
		return -1;
	}
	if (crt_base(ca->crt, ca->key, cn, ca->serial++) != 0 ||
	    gnutls_x509_crt_set_basic_constraints(ca->crt, 1, -1) < 0 ||
	    gnutls_x509_crt_set_key_usage(ca->crt,
		GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN) < 0 ||
	    gnutls_x509_crt_sign2(ca->crt, ca->crt, ca->key, GNUTLS_DIG_SHA256,
		0) < 0 ||
	    export_crt(ca->crt, ca_path) != 0) {
		test_ca_free(ca);
		return -1;
	}
	*out = ca;
	return 0;
}

void
test_ca_free(test_ca *ca)
{
	if (ca == NULL)
		return;
	gnutls_x509_crt_deinit(ca->crt);
	gnutls_x509_privkey_deinit(ca->key);
	free(ca);
}

int
test_ca_issue(test_ca *ca, const char *cn, const char *cert_path,
    const char *key_path)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t d = { NULL, 0 };
	static const unsigned char lo[4] = { 127, 0, 0, 1 };
	int rv = -1;

	if (new_key(&key) != 0)
		return -1;
	if (gnutls_x509_crt_init(&crt) < 0)
		goto out;
	if (crt_base(crt, key, cn, ca->serial++) != 0 ||
	    gnutls_x509_crt_set_basic_constraints(crt, 0, -1) < 0 ||
	    gnutls_x509_crt_set_key_usage(crt,
		GNUTLS_KEY_DIGITAL_SIGNATURE | GNUTLS_KEY_KEY_AGREEMENT) < 0 ||
	    gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER,
		0) < 0 ||
	    gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT,
		0) < 0 ||
	    gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME,
		"localhost", 9, GNUTLS_FSAN_APPEND) < 0 ||
	    gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS,
		lo, sizeof(lo), GNUTLS_FSAN_APPEND) < 0 ||
	    gnutls_x509_crt_sign2(crt, ca->crt, ca->key, GNUTLS_DIG_SHA256,
		0) < 0 ||
	    export_crt(crt, cert_path) != 0)
		goto out;
	if (gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &d) < 0)
		goto out;
	rv = write_pem(key_path, &d);
out:
	gnutls_free(d.data);
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	return rv;
}
