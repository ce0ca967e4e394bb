/*
 * fuzz_kernels_blocks.c — arbitrary bytes as GGUF weight blocks: byte 0
 * picks the type, byte 1 the thread count, the rest are the weight row(s)
 * (any bit patterns: NaN/inf/denormal scales, out-of-range codes) and the
 * activations. Dequantization and every ISA's matmul must neither crash nor
 * trip the sanitizers, and the SIMD outputs must equal the scalar
 * reference's wherever the latter is finite and moderate.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

static const int k_types[] = {KRN_F32,  KRN_F16,  KRN_BF16, KRN_Q4_0, KRN_Q4_1, KRN_Q5_0,
                              KRN_Q5_1, KRN_Q8_0, KRN_Q4_K, KRN_Q5_K, KRN_Q6_K};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  const int type = k_types[data[0] % (sizeof k_types / sizeof k_types[0])];
  const size_t be = krn_type_block_elems(type), bb = krn_type_block_bytes(type);
  const size_t k = be == 256 ? 256 : 64, rb = krn_row_bytes(type, k);
  size_t n_out = (size - 2) / rb;
  if (n_out == 0 || bb == 0) return 0;
  if (n_out > 8) n_out = 8;
  uint8_t *w = malloc(rb * n_out);
  float *deq = malloc(sizeof(float) * k), *x = malloc(sizeof(float) * k * 2);
  float *y0 = malloc(sizeof(float) * n_out * 2), *y1 = malloc(sizeof(float) * n_out * 2);
  if (!w || !deq || !x || !y0 || !y1) goto out;
  memcpy(w, data + 2, rb * n_out);
  for (size_t r = 0; r < n_out; r++) krn_dequant_row(type, w + r * rb, deq, k);
  for (size_t i = 0; i < 2 * k; i++) x[i] = (float)((int)data[(i * 7) % size] - 128) / 16.f;
  krn_matmul_ref(type, w, n_out, k, x, 2, y0);
  krn_pool *p = NULL;
  if (krn_pool_create(&p, 1 + data[1] % 3) != 0) goto out;
  static const char *isas[] = {"avx2", "avx512"};
  for (int ii = 0; ii < 2; ii++) {
    krn_matmul_isa(p, isas[ii], type, w, n_out, k, x, 2, y1);
    for (size_t i = 0; i < n_out * 2; i++)
      if (isfinite(y0[i]) && fabsf(y0[i]) < 1e4f && isfinite(y1[i]) && fabsf(y1[i] - y0[i]) > 1e-2f * (1 + fabsf(y0[i])))
        abort();
  }
  krn_pool_free(p);
out:
  free(w), free(deq), free(x), free(y0), free(y1);
  return 0;
}
