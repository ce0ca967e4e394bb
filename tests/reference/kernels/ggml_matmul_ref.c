/*
 * ggml_matmul_ref.c — golden matmul outputs from llama.cpp's own CPU kernels
 * (ggml-cpu), for tests/kernels/test_kernels_ggml.c. For each weight type:
 * random f32 weights quantized by ggml_quantize_chunk (ggml's quantizers,
 * K-quants included), random activations, and y[r] = ggml's vec_dot of row
 * r with the activations converted by ggml's from_float for that type's
 * vec_dot_type — exactly what ggml's mul_mat does per row on one thread.
 *
 * Built and run by make_ggml_fixtures.sh against scripts/build-llama-ref's
 * build (llama.cpp pinned there). Output, little-endian, one file per type:
 *   "KRNM" u32 version=1 u32 type u32 n_out u32 k u32 m
 *          n_out*row_bytes weight bytes, m*k f32 x, m*n_out f32 y
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-cpu.h"
#include "ggml.h"

static uint32_t rng = 2463534242u;
static float frand(void) {
  rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;
  return (float)(rng % 200001) / 100000.f - 1.f;
}

static int write_case(const char *dir, enum ggml_type type, int n_out, int k, int m) {
  const size_t rb = ggml_row_size(type, k);
  float *wf = malloc(sizeof(float) * n_out * k), *x = malloc(sizeof(float) * m * k), *y = malloc(sizeof(float) * m * n_out);
  uint8_t *w = malloc(rb * n_out);
  for (int i = 0; i < n_out * k; i++) wf[i] = frand() * (i % 97 == 0 ? 4.f : 1.f);
  for (int i = 0; i < m * k; i++) x[i] = frand() * (i % 13 == 0 ? 6.f : 1.f);
  ggml_quantize_chunk(type, wf, w, 0, n_out, k, NULL);
  const struct ggml_type_traits_cpu *tr = ggml_get_type_traits_cpu(type);
  const enum ggml_type vt = tr->vec_dot_type;
  void *xq = malloc(ggml_row_size(vt, k));
  for (int c = 0; c < m; c++) {
    const void *xv = x + (size_t)c * k;
    if (vt != GGML_TYPE_F32) {
      ggml_get_type_traits_cpu(vt)->from_float(x + (size_t)c * k, xq, k);
      xv = xq;
    }
    for (int r = 0; r < n_out; r++) tr->vec_dot(k, &y[(size_t)c * n_out + r], 0, w + (size_t)r * rb, 0, xv, 0, 1);
  }
  char path[1024];
  snprintf(path, sizeof path, "%s/mm_%s.bin", dir, ggml_type_name(type));
  FILE *f = fopen(path, "wb");
  if (!f) return -1;
  uint32_t h[5] = {1, (uint32_t)type, (uint32_t)n_out, (uint32_t)k, (uint32_t)m};
  fwrite("KRNM", 1, 4, f);
  fwrite(h, 4, 5, f);
  fwrite(w, 1, rb * n_out, f);
  fwrite(x, 4, (size_t)m * k, f);
  fwrite(y, 4, (size_t)m * n_out, f);
  fclose(f);
  free(wf), free(x), free(y), free(w), free(xq);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: ggml_matmul_ref OUTDIR\n");
    return 2;
  }
  ggml_cpu_init();
  const enum ggml_type types[] = {GGML_TYPE_F32,  GGML_TYPE_F16,  GGML_TYPE_BF16, GGML_TYPE_Q4_0,
                                  GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1, GGML_TYPE_Q8_0,
                                  GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K};
  for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
    if (write_case(argv[1], types[i], 7, 768, 3)) return 1;
  return 0;
}
