/*
 * Injectable random number source.  The system source is libsodium's
 * randombytes_buf; tests inject a deterministic, seeded source.
 */
#ifndef TK_RNG_H
#define TK_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct tk_rng {
	void (*fill)(void *arg, void *buf, size_t n);
	void *arg;
} tk_rng;

const tk_rng *tk_rng_system(void);

/* NULL selects the system source. */
void tk_rng_fill(const tk_rng *r, void *buf, size_t n);
uint32_t tk_rng_u32(const tk_rng *r);
/* Uniform in [0, bound); bound > 0. */
uint32_t tk_rng_uniform(const tk_rng *r, uint32_t bound);

/* Deterministic source for tests: ChaCha20 keystream of a 32-byte seed. */
typedef struct tk_fake_rng {
	tk_rng fr_rng;
	uint8_t fr_seed[32];
	uint64_t fr_counter;
} tk_fake_rng;

void tk_fake_rng_init(tk_fake_rng *fr, uint64_t seed);

#endif
