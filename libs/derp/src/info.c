/*
 * The sealed JSON bodies of DERP (derp_client.go ClientInfo, derp.go
 * ServerInfo) and the NaCl box around them.
 *
 * Decoding follows Go's encoding/json as it applies to these structs:
 * object keys match field names case-insensitively (the last occurrence
 * wins), unknown keys are ignored, null leaves a field at zero, a value of
 * the wrong JSON type is an error, and a top-level null is an empty struct.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <sodium.h>

#include "tk/derp.h"
#include "tk/enc.h"
#include "tk/err.h"

/* Go rejects ints given as 2.0 or out of int64 range; jansson parses a
 * number with a fraction or exponent as a real, so reals are errors. */
static int
get_int(json_t *v, int64_t *out)
{
	if (json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return TK_EPROTO;
	*out = (int64_t)json_integer_value(v);
	return 0;
}

static int
get_bool(json_t *v, bool *out)
{
	if (json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return TK_EPROTO;
	*out = json_is_true(v);
	return 0;
}

static int
parse_obj(const uint8_t *p, size_t n, json_t **out)
{
	json_error_t e;
	/* Bodies are small (ClientInfo <= 256 KiB); nesting is not needed by
	 * any field, so jansson's own depth limit suffices. */
	json_t *root = json_loadb((const char *)p, n,
	    JSON_DECODE_ANY, &e);
	if (!root)
		return TK_EPROTO;
	if (json_is_null(root)) {
		json_decref(root);
		*out = NULL;
		return 0;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		return TK_EPROTO;
	}
	*out = root;
	return 0;
}

int
tk_derp_client_info_parse(const uint8_t *p, size_t n, tk_derp_client_info *out)
{
	tk_derp_client_info ci;
	json_t *root, *v;
	const char *k;
	int rc;

	memset(&ci, 0, sizeof(ci));
	if ((rc = parse_obj(p, n, &root)) != 0)
		return rc;
	if (!root) {
		*out = ci;
		return 0;
	}
	json_object_foreach(root, k, v) {
		rc = 0;
		if (strcasecmp(k, "meshKey") == 0) {
			if (json_is_null(v)) {
				ci.has_mesh_key = false;
				continue;
			}
			/* types/key DERPMesh.UnmarshalText: 64 hex digits. */
			const char *s = json_string_value(v);
			if (!s || json_string_length(v) != 2 * TK_DERP_KEY_LEN ||
			    tk_hex_decode(ci.mesh_key, TK_DERP_KEY_LEN, s,
				2 * TK_DERP_KEY_LEN) != 0)
				rc = TK_EPROTO;
			else
				ci.has_mesh_key = true;
		} else if (strcasecmp(k, "version") == 0) {
			rc = get_int(v, &ci.version);
		} else if (strcasecmp(k, "CanAckPings") == 0) {
			rc = get_bool(v, &ci.can_ack_pings);
		} else if (strcasecmp(k, "IsProber") == 0) {
			rc = get_bool(v, &ci.is_prober);
		} else if (strcasecmp(k, "AppName") == 0) {
			if (json_is_null(v))
				continue;
			const char *s = json_string_value(v);
			if (!s)
				rc = TK_EPROTO;
			else
				snprintf(ci.app_name, sizeof(ci.app_name), "%s",
				    s);
		}
		if (rc != 0) {
			json_decref(root);
			return rc;
		}
	}
	json_decref(root);
	*out = ci;
	return 0;
}

/* Appends to out[*len..cap); TK_EMSGSIZE when it does not fit. */
static int
put(char *out, size_t cap, size_t *len, const char *s)
{
	size_t n = strlen(s);
	if (*len + n + 1 > cap)
		return TK_EMSGSIZE;
	memcpy(out + *len, s, n + 1);
	*len += n;
	return 0;
}

static bool
app_name_plain(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s == '"' || *s == '\\' || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

int
tk_derp_client_info_json(const tk_derp_client_info *ci, char *out, size_t cap,
    size_t *len)
{
	char tmp[160];
	size_t n = 0;
	int rc;
	bool first = true;

	if (cap == 0)
		return TK_EMSGSIZE;
	out[0] = 0;
	/* Field order and omission as Go's client writes them. */
	if ((rc = put(out, cap, &n, "{")) != 0)
		return rc;
	if (ci->has_mesh_key) {
		char hex[2 * TK_DERP_KEY_LEN + 1];
		tk_hex_encode(hex, ci->mesh_key, TK_DERP_KEY_LEN);
		snprintf(tmp, sizeof(tmp), "\"meshKey\":\"%s\"", hex);
		if ((rc = put(out, cap, &n, tmp)) != 0)
			return rc;
		first = false;
	}
	if (ci->version) {
		snprintf(tmp, sizeof(tmp), "%s\"version\":%lld", first ? "" : ",",
		    (long long)ci->version);
		if ((rc = put(out, cap, &n, tmp)) != 0)
			return rc;
		first = false;
	}
	snprintf(tmp, sizeof(tmp), "%s\"CanAckPings\":%s", first ? "" : ",",
	    ci->can_ack_pings ? "true" : "false");
	if ((rc = put(out, cap, &n, tmp)) != 0)
		return rc;
	if (ci->is_prober && (rc = put(out, cap, &n, ",\"IsProber\":true")) != 0)
		return rc;
	if (ci->app_name[0]) {
		if (!app_name_plain(ci->app_name))
			return TK_EINVAL;
		snprintf(tmp, sizeof(tmp), ",\"AppName\":\"%s\"", ci->app_name);
		if ((rc = put(out, cap, &n, tmp)) != 0)
			return rc;
	}
	if ((rc = put(out, cap, &n, "}")) != 0)
		return rc;
	*len = n;
	return 0;
}

int
tk_derp_server_info_parse(const uint8_t *p, size_t n, tk_derp_server_info *out)
{
	tk_derp_server_info si;
	json_t *root, *v;
	const char *k;
	int rc;

	memset(&si, 0, sizeof(si));
	if ((rc = parse_obj(p, n, &root)) != 0)
		return rc;
	if (!root) {
		*out = si;
		return 0;
	}
	json_object_foreach(root, k, v) {
		rc = 0;
		if (strcasecmp(k, "version") == 0)
			rc = get_int(v, &si.version);
		else if (strcasecmp(k, "TokenBucketBytesPerSecond") == 0)
			rc = get_int(v, &si.token_bucket_bytes_per_second);
		else if (strcasecmp(k, "TokenBucketBytesBurst") == 0)
			rc = get_int(v, &si.token_bucket_bytes_burst);
		if (rc != 0) {
			json_decref(root);
			return rc;
		}
	}
	json_decref(root);
	*out = si;
	return 0;
}

int
tk_derp_server_info_json(const tk_derp_server_info *si, char *out, size_t cap,
    size_t *len)
{
	char tmp[96];
	size_t n = 0;
	int rc;
	const char *sep = "";

	if (cap == 0)
		return TK_EMSGSIZE;
	out[0] = 0;
	if ((rc = put(out, cap, &n, "{")) != 0)
		return rc;
	/* derp.go ServerInfo: every field omitempty. */
	if (si->version) {
		snprintf(tmp, sizeof(tmp), "\"version\":%lld",
		    (long long)si->version);
		if ((rc = put(out, cap, &n, tmp)) != 0)
			return rc;
		sep = ",";
	}
	if (si->token_bucket_bytes_per_second) {
		snprintf(tmp, sizeof(tmp), "%s\"TokenBucketBytesPerSecond\":%lld",
		    sep, (long long)si->token_bucket_bytes_per_second);
		if ((rc = put(out, cap, &n, tmp)) != 0)
			return rc;
		sep = ",";
	}
	if (si->token_bucket_bytes_burst) {
		snprintf(tmp, sizeof(tmp), "%s\"TokenBucketBytesBurst\":%lld",
		    sep, (long long)si->token_bucket_bytes_burst);
		if ((rc = put(out, cap, &n, tmp)) != 0)
			return rc;
	}
	if ((rc = put(out, cap, &n, "}")) != 0)
		return rc;
	*len = n;
	return 0;
}

int
tk_derp_box_seal(uint8_t *out, size_t cap, size_t *len, const uint8_t *msg,
    size_t n, const uint8_t peer_pub[TK_DERP_KEY_LEN],
    const uint8_t priv[TK_DERP_KEY_LEN], const tk_rng *rng)
{
	if (cap < TK_DERP_SEALED_LEN(n))
		return TK_EMSGSIZE;
	tk_rng_fill(rng ? rng : tk_rng_system(), out, TK_DERP_NONCE_LEN);
	if (crypto_box_easy(out + TK_DERP_NONCE_LEN, msg, n, out, peer_pub,
		priv) != 0)
		return TK_ECRYPTO; /* a low-order peer key */
	*len = TK_DERP_SEALED_LEN(n);
	return 0;
}

int
tk_derp_box_open(uint8_t *out, size_t cap, size_t *len,
    const uint8_t *nonce_box, size_t n, const uint8_t peer_pub[TK_DERP_KEY_LEN],
    const uint8_t priv[TK_DERP_KEY_LEN])
{
	if (n < TK_DERP_NONCE_LEN + TK_DERP_BOX_OVERHEAD)
		return TK_ECRYPTO;
	size_t m = n - TK_DERP_NONCE_LEN - TK_DERP_BOX_OVERHEAD;
	if (cap < m)
		return TK_EMSGSIZE;
	if (crypto_box_open_easy(out, nonce_box + TK_DERP_NONCE_LEN,
		n - TK_DERP_NONCE_LEN, nonce_box, peer_pub, priv) != 0)
		return TK_ECRYPTO;
	*len = m;
	return 0;
}
