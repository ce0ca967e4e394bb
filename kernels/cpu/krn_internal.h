/*
 * krn_internal.h — what the CPU kernel files share and nobody else sees:
 * the GGUF (ggml) block layouts as C structs, the activation quantizers and
 * the per-ISA table of fused dot products.
 *
 * Invariants: every struct below has exactly the size GGUF stores (checked
 * with static asserts), fields in file order, little-endian, no padding.
 * A dot product `vec_dot(n, w, a)` takes one weight row `w` of n elements
 * and one activation row `a` already quantized to the type's activation
 * format (krn_act_type), and returns the f32 dot product.
 */
#ifndef KVASIR_KRN_INTERNAL_H
#define KVASIR_KRN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels/kernels.h"

#define QK4_0 32
#define QK8_0 32
#define QK_K 256

typedef struct { uint16_t d; uint8_t qs[16]; } blk_q4_0;                 /* 18 */
typedef struct { uint16_t d, m; uint8_t qs[16]; } blk_q4_1;              /* 20 */
typedef struct { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; } blk_q5_0;  /* 22 */
typedef struct { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; } blk_q5_1; /* 24 */
typedef struct { uint16_t d; int8_t qs[32]; } blk_q8_0;                  /* 34 */
typedef struct { uint16_t d, s; int8_t qs[32]; } blk_q8_1;               /* 36: s = d*sum(qs) */
typedef struct { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; } blk_q2_k; /* 84 */
typedef struct { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; } blk_q3_k; /* 110 */
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; } blk_q4_k; /* 144 */
typedef struct { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; } blk_q5_k; /* 176 */
typedef struct { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; } blk_q6_k; /* 210 */
typedef struct { float d; int8_t qs[256]; int16_t bsums[16]; } blk_q8_k; /* 292 */

/* KRN_Q4_K_X8 (not a GGUF block): super-block i of 8 consecutive Q4_K rows
 * r = 0..7, 1152 bytes = 8 blk_q4_k, written by repack.c. For sub-block j
 * (0..7, 32 elements each) of row r, with its 6-bit scale sc and min mn:
 *   d[r], dmin[r]      the row's f16 super-block scales;
 *   scl[(j%4)*8 + r]   sc & 15 in nibble j/4 (low nibble: j < 4);
 *   mnl[(j%4)*8 + r]   mn & 15, the same way;
 *   hi[(j%4)*8 + r]    sc>>4 of j at bits 0-1, of j+4 at 2-3; mn>>4 of j at
 *                      4-5, of j+4 at 6-7 (three 32-byte loads and a few
 *                      masks give every scale and min of all 8 rows);
 *   qs[256p + 32g + 4r + b] = the row's qs[32p + 4g + b] (p = 0..3 the
 *                      64-element pair of sub-blocks, g = 0..7, b = 0..3):
 *                      32 bytes hold 4 quants of each of the 8 rows, low
 *                      nibbles elements 64p+4g+b, high nibbles 32 further,
 *                      so each 32-bit lane is one row against the same 4
 *                      activation bytes. The matrix is the groups of 8 rows
 *                      in order, each its k/256 super-blocks in order. */
typedef struct { uint16_t d[8], dmin[8]; uint8_t scl[32], mnl[32], hi[32]; uint8_t qs[1024]; } blk_q4_k_x8; /* 1152 */
_Static_assert(sizeof(blk_q4_k_x8) == 8 * 144, "q4_k_x8 layout");
_Static_assert(sizeof(blk_q4_0) == 18, "q4_0 layout");
_Static_assert(sizeof(blk_q4_1) == 20, "q4_1 layout");
_Static_assert(sizeof(blk_q5_0) == 22, "q5_0 layout");
_Static_assert(sizeof(blk_q5_1) == 24, "q5_1 layout");
_Static_assert(sizeof(blk_q8_0) == 34, "q8_0 layout");
_Static_assert(sizeof(blk_q8_1) == 36, "q8_1 layout");
_Static_assert(sizeof(blk_q2_k) == 84, "q2_k layout");
_Static_assert(sizeof(blk_q3_k) == 110, "q3_k layout");
_Static_assert(sizeof(blk_q4_k) == 144, "q4_k layout");
_Static_assert(sizeof(blk_q5_k) == 176, "q5_k layout");
_Static_assert(sizeof(blk_q6_k) == 210, "q6_k layout");
_Static_assert(sizeof(blk_q8_k) == 292, "q8_k layout");

/* IEEE half <-> float without lookup tables (exact, round-to-nearest-even). */
static inline float krn__bits_f32(uint32_t w) { float f; memcpy(&f, &w, 4); return f; }
static inline uint32_t krn__f32_bits(float f) { uint32_t w; memcpy(&w, &f, 4); return w; }

static inline float krn__h2f(uint16_t h) {
  const uint32_t w = (uint32_t)h << 16, sign = w & 0x80000000u, two_w = w + w;
  const float normalized = krn__bits_f32((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
  const float denormalized = krn__bits_f32((two_w >> 17) | (126u << 23)) - 0.5f;
  const uint32_t r = sign | (two_w < (1u << 27) ? krn__f32_bits(denormalized) : krn__f32_bits(normalized));
  return krn__bits_f32(r);
}

static inline uint16_t krn__f2h(float f) {
  float base = (__builtin_fabsf(f) * 0x1.0p+112f) * 0x1.0p-110f;
  const uint32_t w = krn__f32_bits(f), shl1_w = w + w, sign = w & 0x80000000u;
  uint32_t bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  base = krn__bits_f32((bias >> 1) + 0x07800000u) + base;
  const uint32_t bits = krn__f32_bits(base);
  const uint32_t nonsign = ((bits >> 13) & 0x00007C00u) + (bits & 0x00000FFFu);
  return (uint16_t)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}

/* Q4_K / Q5_K: 8 six-bit (scale, min) pairs packed in 12 bytes. */
static inline void krn__scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
  if (j < 4) {
    *d = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

/* ---- ISA levels and dispatch ---- */
enum { KRN_ISA_SCALAR = 0, KRN_ISA_AVX2 = 1, KRN_ISA_AVX512 = 2 };

/* Kernel ids beyond GGUF's types, for the kernel tables only (never valid
 * in the public API): Q4_K summed in llama.cpp's repacked (block_q4_Kx8)
 * orders, gemv (one FMA per super-block) and gemm (one per 64 elements).
 * matmul.c uses them for Q4_K matrices whose row count is a multiple of 8,
 * the ones llama.cpp repacks on x86 (see dot_scalar.c). */
enum { KRN__Q4_K_R8 = 64, KRN__Q4_K_R8_GEMM = 65 };
/* cpu_features.c: the KRN_ISA_* level of krn_isa_name() (KVASIR_ISA
 * honoured), read once per process (krn__isa_level) or afresh. */
int krn__isa_level(void);
int krn__isa_level_now(void);

typedef float (*krn_vec_dot_fn)(size_t n, const void *w, const void *a);
/* Dot of one weight row with `nr` activation rows (stride a_stride bytes),
 * reusing each weight block across the rows; writes out[0..nr). nr <= the
 * kernel's multi_nr (krn_kernels). */
typedef void (*krn_vec_dot_multi_fn)(size_t n, const void *w, const void *a, size_t a_stride, int nr,
                                     float *out);
/* Dots of nw (<= 4) weight rows, w_stride bytes apart, with one activation
 * row: out[r] has the bits of dot(n, w + r*w_stride, a). */
typedef void (*krn_vec_dot_wrows_fn)(size_t n, const void *w, size_t w_stride, const void *a, int nw, float *out);
typedef void (*krn_quant_fn)(const float *x, void *dst, size_t n);

/* Activation format that `type`'s dot product consumes (KRN_F32 for plain). */
int krn__act_type(int type);

/* Scalar references (dequant_scalar.c, quant_act.c, dot_scalar.c). */
void krn__quant_q8_0_ref(const float *x, void *dst, size_t n);
void krn__quant_q8_1_ref(const float *x, void *dst, size_t n);
void krn__quant_q8_k_ref(const float *x, void *dst, size_t n);
krn_vec_dot_fn krn__dot_scalar(int type);
krn_quant_fn krn__quant_scalar(int act_type);

/* SIMD tables: NULL when that type has no fast path at that level. */
krn_vec_dot_fn krn__dot_avx2(int type);
krn_vec_dot_multi_fn krn__dot_multi_avx2(int type);
krn_quant_fn krn__quant_avx2(int act_type);
krn_vec_dot_fn krn__dot_avx512(int type);
krn_vec_dot_multi_fn krn__dot_multi_avx512(int type);
/* Most activation rows (4..8) one call of that level's multi kernel takes. */
int krn__multi_rows_avx2(int type);
int krn__multi_rows_avx512(int type);
krn_vec_dot_wrows_fn krn__dot_wrows_avx2(int type);
krn_vec_dot_wrows_fn krn__dot_wrows_avx512(int type);

/* Activation rows as matmul lays them out in its scratch. Q8_0 / Q8_1 rows
 * are the GGUF blocks, then (at krn__act_ds_offset) f32 pairs (d, s) per
 * block, then (at krn__act_qs_offset) all the int8 quants contiguously.
 * s is fp16(d * Σq) for Q8_1 (as GGUF stores it) and the exact Σq for Q8_0.
 * SIMD kernels convert no f16 per row and the 512-bit ones load two blocks'
 * quants at once; the scalar kernels read only the blocks. Q8_K rows are the
 * blocks alone. Rows are 64-byte multiples. */
static inline size_t krn__act_ds_offset(size_t nb) { return (nb * sizeof(blk_q8_1) + 63) & ~(size_t)63; }
static inline size_t krn__act_qs_offset(size_t nb) {
  return krn__act_ds_offset(nb) + ((nb * 2 * sizeof(float) + 63) & ~(size_t)63);
}
size_t krn__act_row_bytes(int act_type, size_t k);
/* Quantize one row of k floats into that layout. */
void krn__act_quant_row(int act_type, krn_quant_fn q, const float *x, void *dst, size_t k);

/* KRN_Q4_K_X8: one group of 8 rows (w: its k/256 blk_q4_k_x8) against nr
 * Q8_K activation rows a_stride bytes apart; out[8*i + r] = row r · act i.
 * nr == 1 sums in llama.cpp's repacked gemv order (q4_k_r8, per64 = 0),
 * nr == 4 in its gemm order (per64 = 1); no other nr. repack.c has the
 * scalar one, dot_avx2.c / dot_avx512.c the SIMD ones (q4k_x8_body.h);
 * NULL where that level has none. */
typedef void (*krn_x8_fn)(size_t k, const void *w, const void *a, size_t a_stride, int nr, float *out);
krn_x8_fn krn__x8_scalar(void);
krn_x8_fn krn__x8_avx2(void);
krn_x8_fn krn__x8_avx512(void);

/* Resolved kernels for one (type, ISA). */
typedef struct krn_kernels {
  krn_vec_dot_fn dot;
  krn_vec_dot_multi_fn dot_multi; /* may be NULL: fall back to dot per row */
  int multi_nr;                   /* most rows per dot_multi call (4 or 8) */
  krn_quant_fn quant;             /* NULL for f32 activations */
  int act_type;
  /* Batch rows in complete groups of 4 (m >= 4) where llama.cpp sums them
   * in another order than single rows (its repacked gemm); NULL: as dot. */
  krn_vec_dot_fn dot_g4;
  krn_vec_dot_multi_fn dot_multi_g4;
  /* Decode (one activation row): 4 weight rows per call; may be NULL. */
  krn_vec_dot_wrows_fn dot_wrows;
} krn_kernels;
int krn__kernels(int type, int isa, krn_kernels *k);

#endif
