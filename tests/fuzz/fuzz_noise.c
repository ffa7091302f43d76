/*
 * Fuzz the Noise handshake readers: a responder reading a hostile message 1
 * and an initiator reading a hostile message 2, for both IK and IKpsk2.
 * The first input byte picks the case.  Invariants: no crash or leak; a
 * rejected message leaves the state byte-for-byte unchanged.
 */
#include <stdlib.h>
#include <string.h>

#include "tk/core.h"
#include "tk/noise.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t ipriv[32] = { 1, 2, 3 }, rpriv[32] = { 4, 5, 6 };
	static const uint8_t psk[32] = { 7 };
	uint8_t rpub[32], m1[256], out[4096];
	tk_noise_config ci = { 0 }, cr = { 0 };
	tk_noise_hs i, r, before;
	tk_fake_rng rng;
	size_t l1, on;
	int rv;

	if (size < 1 || size > 4096)
		return 0;
	tk_init();
	tk_fake_rng_init(&rng, 1);
	tk_key_public(rpub, rpriv);
	ci.protocol_name = (data[0] & 1) ? TK_NOISE_IKPSK2_NAME : TK_NOISE_IK_NAME;
	ci.role = TK_NOISE_INITIATOR;
	ci.local_static_priv = ipriv;
	ci.remote_static_pub = rpub;
	ci.psk = psk;
	ci.rng = &rng.fr_rng;
	cr = ci;
	cr.role = TK_NOISE_RESPONDER;
	cr.local_static_priv = rpriv;
	cr.remote_static_pub = NULL;
	tk_noise_hs_init(&i, &ci);
	tk_noise_hs_init(&r, &cr);
	if (data[0] & 2) {
		/* initiator receives a hostile response */
		tk_noise_hs_write_msg1(&i, NULL, 0, m1, sizeof(m1), &l1);
		before = i;
		rv = tk_noise_hs_read_msg2(&i, data + 1, size - 1, out,
		    sizeof(out), &on);
		if (rv != 0 && memcmp(&before, &i, sizeof(i)) != 0)
			abort();
	} else {
		before = r;
		rv = tk_noise_hs_read_msg1(&r, data + 1, size - 1, out,
		    sizeof(out), &on);
		if (rv != 0 && memcmp(&before, &r, sizeof(r)) != 0)
			abort();
	}
	tk_noise_hs_wipe(&i);
	tk_noise_hs_wipe(&r);
	tk_noise_hs_wipe(&before);
	return 0;
}
