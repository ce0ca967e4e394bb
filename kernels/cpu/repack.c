/*
 * repack.c — Q4_K matrices repacked into KRN_Q4_K_X8 (8 rows interleaved,
 * layout in krn_internal.h, blk_q4_k_x8), and the scalar kernel that
 * defines what the layout computes.
 *
 * Why: a Q4_K row dot decodes each super-block's packed 6-bit scales and
 * applies a scale per 32 elements in every row, and one row's lanes share
 * nothing with the next row's. With 8 rows side by side, one 32-bit lane per
 * row, one broadcast of 4 activation bytes serves 8 rows in one u8×s8
 * instruction, the sub-block sum stays in 16 bits (AVX2) and its scale is
 * applied once per sub-block for all 8 rows, and the scales of all 8 rows
 * unpack with a handful of vector masks. The idea is llama.cpp's CPU repack
 * (ggml-cpu/repack.cpp, block_q4_Kx8, ggml_gemv / ggml_gemm_q4_K_8x8_q8_K);
 * this layout is our own (4 bytes per row and lane instead of 8, scales as
 * nibbles plus 2-bit tops), chosen so that no kernel needs a lane shuffle
 * of the weights.
 *
 * Invariants: the repacked matrix has the Q4_K matrix's byte size; every
 * kernel over it (this scalar one, q4k_x8_body.h at each ISA) gives the bits
 * that krn_matmul gives for the Q4_K original (dot_scalar.c q4_k_r8: the
 * same exact integer sums per super-block or per 64 elements, then the same
 * f32 fma chain per row), so repacking never changes a result.
 */
#include "kernels/cpu/krn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int krn_repack_type(int type, size_t n_out, size_t k) {
  return type == KRN_Q4_K && n_out && n_out % 8 == 0 && k && k % QK_K == 0 ? KRN_Q4_K_X8 : -1;
}

/* Super-block i of the 8 rows at src (nb blocks each) into one x8 block. */
static void pack_block(const blk_q4_k *src, size_t nb, size_t i, blk_q4_k_x8 *o) {
  memset(o->scl, 0, sizeof o->scl);
  memset(o->mnl, 0, sizeof o->mnl);
  memset(o->hi, 0, sizeof o->hi);
  for (int r = 0; r < 8; r++) {
    const blk_q4_k *b = src + (size_t)r * nb + i;
    o->d[r] = b->d;
    o->dmin[r] = b->dmin;
    for (int j = 0; j < 8; j++) {
      uint8_t sc, mn;
      krn__scale_min_k4(j, b->scales, &sc, &mn);
      const int at = (j % 4) * 8 + r, up = j / 4;
      o->scl[at] |= (uint8_t)((sc & 15) << (4 * up));
      o->mnl[at] |= (uint8_t)((mn & 15) << (4 * up));
      o->hi[at] |= (uint8_t)(((sc >> 4) << (2 * up)) | ((mn >> 4) << (4 + 2 * up)));
    }
    for (int p = 0; p < 4; p++)
      for (int g = 0; g < 8; g++) memcpy(o->qs + 256 * p + 32 * g + 4 * r, b->qs + 32 * p + 4 * g, 4);
  }
}

int krn_repack(int type, const void *W, size_t n_out, size_t k, void *dst) {
  if (krn_repack_type(type, n_out, k) != KRN_Q4_K_X8) return -1;
  const size_t nb = k / QK_K, group = 8 * nb * sizeof(blk_q4_k);
  /* In place, each group's rows are read whole before its blocks are written. */
  blk_q4_k *tmp = dst == W ? malloc(group) : NULL;
  if (dst == W && !tmp) return -1;
  for (size_t g = 0; g < n_out / 8; g++) {
    const blk_q4_k *src = (const blk_q4_k *)((const uint8_t *)W + g * group);
    if (tmp) {
      memcpy(tmp, src, group);
      src = tmp;
    }
    blk_q4_k_x8 *o = (blk_q4_k_x8 *)((uint8_t *)dst + g * group);
    for (size_t i = 0; i < nb; i++) pack_block(src, nb, i, &o[i]);
  }
  free(tmp);
  return 0;
}

/* Row r's scale and min of sub-block j, read back from the x8 layout. */
static void x8_scale_min(const blk_q4_k_x8 *x, int r, int j, int *sc, int *mn) {
  const int at = (j % 4) * 8 + r, up = j / 4, h = x->hi[at];
  *sc = ((x->scl[at] >> (4 * up)) & 15) | (((h >> (2 * up)) & 3) << 4);
  *mn = ((x->mnl[at] >> (4 * up)) & 15) | (((h >> (4 + 2 * up)) & 3) << 4);
}


/* q4_k_r8 (dot_scalar.c) for each row of the group, reading the x8 layout. */
static void x8_row(int per64, size_t nb, const blk_q4_k_x8 *x, const blk_q8_k *y, int r, float *out) {
  float acc = 0.f, accm = 0.f;
  for (size_t i = 0; i < nb; i++) {
    const float dd = krn__h2f(x[i].d[r]) * y[i].d, dm = krn__h2f(x[i].dmin[r]) * y[i].d;
    int32_t tot = 0, totm = 0;
    for (int p = 0; p < 4; p++) {
      int sc0, m0, sc1, m1;
      x8_scale_min(&x[i], r, 2 * p, &sc0, &m0);
      x8_scale_min(&x[i], r, 2 * p + 1, &sc1, &m1);
      /* elements 64p + 4g + b (low nibbles) and 32 further (high) */
      int32_t s0 = 0, s1 = 0;
      const int8_t *q8 = y[i].qs + 64 * p;
      for (int g = 0; g < 8; g++) {
        const uint8_t *q = x[i].qs + 256 * p + 32 * g + 4 * r;
        for (int b = 0; b < 4; b++) {
          s0 += (q[b] & 15) * q8[4 * g + b];
          s1 += (q[b] >> 4) * q8[32 + 4 * g + b];
        }
      }
      const int32_t is = sc0 * s0 + sc1 * s1;
      const int32_t im = m0 * (y[i].bsums[4 * p] + y[i].bsums[4 * p + 1]) + m1 * (y[i].bsums[4 * p + 2] + y[i].bsums[4 * p + 3]);
      if (per64) {
        acc = fmaf((float)is, dd, acc);
        accm = fmaf((float)im, dm, accm);
      } else {
        tot += is;
        totm += im;
      }
    }
    if (!per64) {
      acc = fmaf((float)tot, dd, acc);
      accm = fmaf((float)totm, dm, accm);
    }
  }
  *out = acc - accm;
}

static void x8_scalar(size_t k, const void *w, const void *a, size_t a_stride, int nr, float *out) {
  const size_t nb = k / QK_K;
  for (int i = 0; i < nr; i++) {
    const blk_q8_k *y = (const blk_q8_k *)((const uint8_t *)a + (size_t)i * a_stride);
    for (int r = 0; r < 8; r++) x8_row(nr == 4, nb, w, y, r, &out[8 * i + r]);
  }
}

krn_x8_fn krn__x8_scalar(void) { return x8_scalar; }
