#include <string.h>

#include <sodium.h>

#include "tk/endian.h"
#include "tk/rng.h"

static void
sys_fill(void *arg, void *buf, size_t n)
{
	(void)arg;
	randombytes_buf(buf, n);
}

static const tk_rng system_rng = { sys_fill, NULL };

const tk_rng *
tk_rng_system(void)
{
	return &system_rng;
}

void
tk_rng_fill(const tk_rng *r, void *buf, size_t n)
{
	if (r == NULL)
		r = &system_rng;
	r->fill(r->arg, buf, n);
}

uint32_t
tk_rng_u32(const tk_rng *r)
{
	uint8_t b[4];

	tk_rng_fill(r, b, sizeof(b));
	return tk_le32_load(b);
}

uint32_t
tk_rng_uniform(const tk_rng *r, uint32_t bound)
{
	/* Rejection sampling: no modulo bias. */
	uint32_t min, x;

	if (bound < 2)
		return 0;
	min = -bound % bound;
	do
		x = tk_rng_u32(r);
	while (x < min);
	return x % bound;
}

static void
fake_fill(void *arg, void *buf, size_t n)
{
	tk_fake_rng *fr = arg;
	uint8_t nonce[crypto_stream_chacha20_NONCEBYTES];

	tk_le64_store(nonce, fr->fr_counter++);
	memset(buf, 0, n);
	crypto_stream_chacha20_xor(buf, buf, n, nonce, fr->fr_seed);
}

void
tk_fake_rng_init(tk_fake_rng *fr, uint64_t seed)
{
	memset(fr, 0, sizeof(*fr));
	tk_le64_store(fr->fr_seed, seed);
	fr->fr_rng.fill = fake_fill;
	fr->fr_rng.arg = fr;
}
