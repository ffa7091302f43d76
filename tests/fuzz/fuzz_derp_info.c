/*
 * Fuzz libs/derp's sealed bodies: the input as ClientInfo and ServerInfo
 * JSON, and as a sealed box.
 * Invariants: no crash, over-read or leak; a parsed ClientInfo re-encoded
 * with tk_derp_client_info_json parses back to the same struct (unless
 * its AppName holds a byte the builder refuses: then TK_EINVAL); the same
 * for ServerInfo; the box never opens (the input cannot know the key).
 */
#include <stdlib.h>
#include <string.h>

#include "tk/derp.h"
#include "tk/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                  \
	do {                      \
		if (!(x))         \
			abort();  \
	} while (0)

static bool
plain(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c < 0x20 || c == '"' || c == '\\' || c >= 0x7f)
			return false;
	}
	return true;
}

static bool
same_ci(const tk_derp_client_info *a, const tk_derp_client_info *b)
{
	return a->version == b->version &&
	    a->can_ack_pings == b->can_ack_pings &&
	    a->is_prober == b->is_prober && a->has_mesh_key == b->has_mesh_key &&
	    memcmp(a->mesh_key, b->mesh_key, sizeof(a->mesh_key)) == 0 &&
	    strcmp(a->app_name, b->app_name) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	tk_derp_client_info ci, ci2;
	tk_derp_server_info si, si2;
	char out[512];
	size_t len;
	int rc;

	rc = tk_derp_client_info_parse(data, size, &ci);
	CHECK(rc == 0 || rc == TK_EPROTO);
	if (rc == 0) {
		CHECK(memchr(ci.app_name, 0, sizeof(ci.app_name)) != NULL);
		if (!ci.has_mesh_key)
			for (size_t i = 0; i < sizeof(ci.mesh_key); i++)
				CHECK(ci.mesh_key[i] == 0);
		rc = tk_derp_client_info_json(&ci, out, sizeof(out), &len);
		if (rc == TK_EINVAL) {
			CHECK(!plain(ci.app_name));
		} else {
			CHECK(rc == 0 && len == strlen(out));
			CHECK(plain(ci.app_name));
			CHECK(tk_derp_client_info_parse((const uint8_t *)out, len,
				  &ci2) == 0);
			CHECK(same_ci(&ci, &ci2));
		}
	}

	rc = tk_derp_server_info_parse(data, size, &si);
	CHECK(rc == 0 || rc == TK_EPROTO);
	if (rc == 0) {
		CHECK(tk_derp_server_info_json(&si, out, sizeof(out), &len) == 0);
		CHECK(tk_derp_server_info_parse((const uint8_t *)out, len, &si2) ==
		    0);
		CHECK(si.version == si2.version &&
		    si.token_bucket_bytes_per_second ==
			si2.token_bucket_bytes_per_second &&
		    si.token_bucket_bytes_burst == si2.token_bucket_bytes_burst);
	}

	/* fixed keys (X25519 clamps any 32 bytes): the input never opens */
	static const uint8_t pub[32] = { 9 }, priv[32] = { 1, 2, 3 };
	uint8_t m[4096];
	if (size <= sizeof(m) + 40)
		CHECK(tk_derp_box_open(m, sizeof(m), &len, data, size, pub,
			  priv) != 0);
	return 0;
}
