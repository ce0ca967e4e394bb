/*
 * backend.c — the CPU compute backend: eng_backend's function table over
 * kernels/ (krn_matmul, krn_pool, krn_dequant_row). A CUDA backend fills the
 * same table; the forward pass only ever calls through it.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "kernels/kernels.h"

/* llama.cpp's CPU backend computes the 32-element block types (Q4_0 Q4_1
 * Q5_0 Q5_1 Q8_0) with 256-bit code even on AVX-512 machines: one 8-lane
 * accumulator over the blocks. kvasir's AVX2 level sums in that order, its
 * AVX-512 level (two blocks per step) does not, and in these small models
 * the last-bit difference grows into different greedy text, so the engine
 * caps these types at AVX2 to be bit-identical to its reference. */
static void cpu_matmul(void *st, int type, const void *W, size_t n_out, size_t k, const float *x, size_t m,
                       float *y) {
  const int blk32 = type == KRN_Q4_0 || type == KRN_Q4_1 || type == KRN_Q5_0 || type == KRN_Q5_1 || type == KRN_Q8_0;
  if (blk32 && !strcmp(krn_pool_isa(st), "avx512")) krn_matmul_isa(st, "avx2", type, W, n_out, k, x, m, y);
  else krn_matmul(st, type, W, n_out, k, x, m, y);
}
static void cpu_parallel(void *st, void (*fn)(void *, int), void *ctx, int n) { krn_pool_run(st, fn, ctx, n); }
static void cpu_dequant(void *st, int type, const void *src, float *dst, size_t n) {
  (void)st;
  krn_dequant_row(type, src, dst, n);
}

int eng_backend_cpu(eng_backend **out, int n_threads, kv_err *err) {
  *out = NULL;
  eng_backend *b = calloc(1, sizeof *b);
  if (!b) return kv_err_set(err, KV_ENOMEM, "out of memory");
  krn_pool *p;
  if (krn_pool_create(&p, n_threads)) {
    free(b);
    return kv_err_set(err, KV_ENOMEM, "cannot create a thread pool of %d threads", n_threads);
  }
  b->name = "cpu";
  b->state = p;
  b->matmul = cpu_matmul;
  b->parallel = cpu_parallel;
  b->dequant_row = cpu_dequant;
  b->n_threads = krn_pool_threads(p);
  *out = b;
  return 0;
}

void eng_backend_free(eng_backend *b) {
  if (!b) return;
  krn_pool_free(b->state);
  free(b);
}
