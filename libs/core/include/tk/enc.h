/*
 * Text encodings: hex and base64 (RFC 4648 standard alphabet, padded).
 * Decoders are strict: they reject wrong lengths, stray characters and
 * non-canonical padding bits, and write their output only on success.
 * Decoding runs in time independent of the character values (keys pass
 * through here).
 */
#ifndef TK_ENC_H
#define TK_ENC_H

#include <stddef.h>
#include <stdint.h>

/* out must hold 2*n+1 chars; lowercase, NUL-terminated. */
void tk_hex_encode(char *out, const uint8_t *p, size_t n);
/* Decodes exactly 2*outlen hex chars (either case) from s[0..slen). */
int tk_hex_decode(uint8_t *out, size_t outlen, const char *s, size_t slen);

#define TK_BASE64_LEN(n) ((((n) + 2) / 3) * 4)
/* out must hold TK_BASE64_LEN(n)+1 chars; NUL-terminated. */
void tk_base64_encode(char *out, const uint8_t *p, size_t n);
/*
 * Decodes padded base64 s[0..slen) into out (capacity outcap); *outlen gets
 * the decoded size.  TK_EINVAL on bad input, TK_EMSGSIZE if out is short.
 */
int tk_base64_decode(uint8_t *out, size_t outcap, size_t *outlen,
    const char *s, size_t slen);

#endif
