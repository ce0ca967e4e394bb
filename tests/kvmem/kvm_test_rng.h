/* kvm_test_rng.h — the KV memory tests' deterministic random numbers
 * (xorshift64). Define KVM_TEST_SEED before including it: each test file
 * has its own stream, so its expectations do not depend on another's. */
#ifndef KVASIR_KVM_TEST_RNG_H
#define KVASIR_KVM_TEST_RNG_H
#include <stdint.h>

static uint64_t rng_s = KVM_TEST_SEED;
static float frand(void) { /* uniform [-1,1) */
  rng_s ^= rng_s << 13;
  rng_s ^= rng_s >> 7;
  rng_s ^= rng_s << 17;
  return (float)((rng_s >> 11) * (1.0 / 9007199254740992.0)) * 2 - 1;
}
/* roughly normal, unit variance (sum of 4 uniforms) */
static float gauss(void) { return (frand() + frand() + frand() + frand()) * 0.866f; }
#endif
