/*
 * ggml_math_internal.h — scalar renditions of the float operations llama.cpp's CPU
 * backend (ggml, built with -march=native on an AVX-512 machine) performs
 * in attention and SiLU, op for op, so kvasir's results are bit-identical
 * to its reference rather than merely close: these small models amplify a
 * one-ulp difference into a different greedy continuation.
 *  - eng_ggml_expf: ggml_v_expf (the ARM optimized-routines polynomial,
 *    max error ~1.5 ulp; not libm's expf);
 *  - eng_reduce16: _mm512_reduce_add_ps's pairing of 16 lanes (GCC);
 *  - the dot-product orders of ggml_vec_dot_f16 (decode, one token) and of
 *    llamafile's tinyBLAS (a batch of two or more tokens) live in
 *    kv_dense.c, which uses these.
 * Engine-private; included by forward.c and kv_dense.c only. Their callers
 * are compiled twice (target_clones: FMA and baseline) so fmaf is one
 * instruction where the CPU has it; the results are the same either way.
 */
#ifndef KVASIR_ENGINE_GGML_MATH_H
#define KVASIR_ENGINE_GGML_MATH_H
#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float eng_ggml_expf(float x) {
  const float r = 0x1.8p23f;
  const float z = fmaf(x, 0x1.715476p+0f, r);
  const float n = z - r;
  const float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
  if (fabsf(n) > 192.f) return n <= 0.f ? 0.f : INFINITY;
  const float u = b * b;
  const float j = fmaf(fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
                       fmaf(0x1.ffffecp-1f, b, 1.0f));
  if (n > -126.f && n < 127.f) { /* j * 2^n is exact when normal: build 2^n */
    const uint32_t bits = (uint32_t)((int)n + 127) << 23;
    float p2;
    memcpy(&p2, &bits, 4);
    return j * p2;
  }
  return ldexpf(j, (int)n);
}

/* ggml_v_silu: x / (1 + v_expf(-x)). */
static inline float eng_ggml_silu(float x) { return x / (1.0f + eng_ggml_expf(0.0f - x)); }

/* _mm512_reduce_add_ps as GCC expands it: halves of 8, of 4, then pairs. */
static inline float eng_reduce16(const float *a) {
  float t3[8], t6[4];
  for (int i = 0; i < 8; i++) t3[i] = a[8 + i] + a[i];
  for (int i = 0; i < 4; i++) t6[i] = t3[4 + i] + t3[i];
  return (t6[0] + t6[2]) + (t6[1] + t6[3]);
}
/* callers that loop over these: an FMA build and a baseline build */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ENG_FMA_CLONES __attribute__((target_clones("fma", "default")))
#else
#define ENG_FMA_CLONES
#endif
#endif
