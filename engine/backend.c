/*
 * backend.c — the CPU compute backend: eng_backend's function table over
 * kernels/ (krn_matmul, krn_pool, krn_dequant_row). A CUDA backend fills the
 * same table; the forward pass only ever calls through it.
 */
#include <stdlib.h>

#include "engine/engine.h"
#include "kernels/kernels.h"

/* Every kernel level sums as llama.cpp's CPU backend does (ggml's vec_dot
 * order, its repacked Q4_K orders), so the engine runs at the pool's best
 * ISA and stays bit-identical to its reference. */
static void cpu_matmul(void *st, int type, const void *W, size_t n_out, size_t k, const float *x, size_t m,
                       float *y) {
  krn_matmul(st, type, W, n_out, k, x, m, y);
}
/* x is quantized once and the parts' rows share one pool job (one barrier). */
static void cpu_matmul_n(void *st, const eng_mm_part *parts, int n, size_t k, const float *x, size_t m) {
  krn_mm_part kp[KRN_MM_MAX_PARTS];
  for (int i = 0; i < n; i += KRN_MM_MAX_PARTS) {
    const int c = n - i < KRN_MM_MAX_PARTS ? n - i : KRN_MM_MAX_PARTS;
    for (int q = 0; q < c; q++) kp[q] = (krn_mm_part){parts[i + q].type, parts[i + q].W, parts[i + q].n_out, parts[i + q].y};
    krn_matmul_n(st, kp, c, k, x, m);
  }
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
  b->matmul_n = cpu_matmul_n;
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
