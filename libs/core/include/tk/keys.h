/*
 * Curve25519 key types and their text forms.
 *
 * Each kind of key is its own struct type so a node key cannot be passed where
 * a disco key is expected.  Text forms (tailscale types/key): a prefix plus 64
 * hex chars; encoders emit lowercase, parsers accept either case and reject a
 * wrong prefix or length.  Public prefixes: "nodekey:", "mkey:", "discokey:",
 * "chalpub:".  Node and machine private keys share "privkey:".  WireGuard's
 * own text form is 44 chars of padded base64.
 */
#ifndef TK_KEYS_H
#define TK_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tk/rng.h"

#define TK_KEY_LEN	   32
#define TK_KEY_HEX_LEN	   64
#define TK_KEY_TEXT_MAX	   80 /* longest prefix + 64 hex + NUL */
#define TK_KEY_BASE64_LEN  44
#define TK_KEY_FP_MAX	   24 /* fingerprint text incl. NUL */

#define TK_PREFIX_NODE_PUB    "nodekey:"
#define TK_PREFIX_MACHINE_PUB "mkey:"
#define TK_PREFIX_DISCO_PUB   "discokey:"
#define TK_PREFIX_CHAL_PUB    "chalpub:"
#define TK_PREFIX_PRIVATE     "privkey:"

typedef struct tk_node_pub { uint8_t b[TK_KEY_LEN]; } tk_node_pub;
typedef struct tk_node_priv { uint8_t b[TK_KEY_LEN]; } tk_node_priv;
typedef struct tk_machine_pub { uint8_t b[TK_KEY_LEN]; } tk_machine_pub;
typedef struct tk_machine_priv { uint8_t b[TK_KEY_LEN]; } tk_machine_priv;
typedef struct tk_disco_pub { uint8_t b[TK_KEY_LEN]; } tk_disco_pub;
typedef struct tk_disco_priv { uint8_t b[TK_KEY_LEN]; } tk_disco_priv;
typedef struct tk_chal_pub { uint8_t b[TK_KEY_LEN]; } tk_chal_pub;

/* Generic forms on raw bytes. */
int tk_key_parse(uint8_t out[TK_KEY_LEN], const char *prefix, const char *s,
    size_t n);
void tk_key_format(char out[TK_KEY_TEXT_MAX], const char *prefix,
    const uint8_t k[TK_KEY_LEN]);
int tk_key_from_base64(uint8_t out[TK_KEY_LEN], const char *s, size_t n);
void tk_key_to_base64(char out[TK_KEY_BASE64_LEN + 1],
    const uint8_t k[TK_KEY_LEN]);
/* A short public fingerprint for logs: "<prefix><first 8 hex>". */
void tk_key_fingerprint(char out[TK_KEY_FP_MAX], const char *prefix,
    const uint8_t pub[TK_KEY_LEN]);
/* Random clamped Curve25519 private key (NULL rng: system). */
void tk_key_generate(uint8_t priv[TK_KEY_LEN], const tk_rng *rng);
/* X25519 public key of priv.  TK_ECRYPTO if the result is all zero. */
int tk_key_public(uint8_t pub[TK_KEY_LEN], const uint8_t priv[TK_KEY_LEN]);
bool tk_key_is_zero(const uint8_t k[TK_KEY_LEN]);

/* Typed text forms (s is NUL-terminated). */
int tk_node_pub_parse(tk_node_pub *out, const char *s);
void tk_node_pub_format(const tk_node_pub *k, char out[TK_KEY_TEXT_MAX]);
int tk_machine_pub_parse(tk_machine_pub *out, const char *s);
void tk_machine_pub_format(const tk_machine_pub *k, char out[TK_KEY_TEXT_MAX]);
int tk_disco_pub_parse(tk_disco_pub *out, const char *s);
void tk_disco_pub_format(const tk_disco_pub *k, char out[TK_KEY_TEXT_MAX]);
int tk_chal_pub_parse(tk_chal_pub *out, const char *s);
int tk_node_priv_parse(tk_node_priv *out, const char *s);
void tk_node_priv_format(const tk_node_priv *k, char out[TK_KEY_TEXT_MAX]);
int tk_machine_priv_parse(tk_machine_priv *out, const char *s);
void tk_machine_priv_format(const tk_machine_priv *k,
    char out[TK_KEY_TEXT_MAX]);

/* Typed generation and derivation. */
void tk_node_priv_generate(tk_node_priv *out, const tk_rng *rng);
int tk_node_priv_public(const tk_node_priv *priv, tk_node_pub *out);
void tk_machine_priv_generate(tk_machine_priv *out, const tk_rng *rng);
int tk_machine_priv_public(const tk_machine_priv *priv, tk_machine_pub *out);
void tk_disco_priv_generate(tk_disco_priv *out, const tk_rng *rng);
int tk_disco_priv_public(const tk_disco_priv *priv, tk_disco_pub *out);

#endif
