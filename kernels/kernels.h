/*
 * kernels — CPU compute primitives, each with a scalar reference that every
 * SIMD path is tested against (tests/kernels). There is no krn_backend table
 * of function pointers: each public call dispatches itself at run time on
 * the ISA level (krn_isa_name; KVASIR_ISA caps it), and matmul picks its
 * block kernels per (type, ISA) from an internal table (cpu/matmul.c,
 * krn__kernels). The function table that the forward pass calls through is
 * the engine's eng_backend (engine/backend.c), which wraps krn_matmul,
 * krn_pool_run and krn_dequant_row. CPU features are detected at run time;
 * nothing here is chosen at compile time alone.
 */
#ifndef KVASIR_KERNELS_H
#define KVASIR_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CPU features found at run time (cpuid + xgetbv for OS support). */
typedef struct krn_cpu {
  int avx2, fma, f16c, avx512f, avx512bw, avx512vnni, avx512bf16, avxvnni;
} krn_cpu;
const krn_cpu *krn_cpu_features(void);
/* "scalar", "avx2" or "avx512": the best level present, unless the
 * environment variable KVASIR_ISA caps it (used by tests and benches). */
const char *krn_isa_name(void);

/* ---- Tensor element types: ids and block layouts are GGUF's (ggml_type). ---- */
typedef enum krn_type {
  KRN_F32 = 0, KRN_F16 = 1, KRN_Q4_0 = 2, KRN_Q4_1 = 3, KRN_Q5_0 = 6, KRN_Q5_1 = 7,
  KRN_Q8_0 = 8, KRN_Q8_1 = 9, KRN_Q2_K = 10, KRN_Q3_K = 11, KRN_Q4_K = 12, KRN_Q5_K = 13,
  KRN_Q6_K = 14, KRN_Q8_K = 15, KRN_BF16 = 30, KRN_TYPE_COUNT = 40
} krn_type;

/* Elements per block and bytes per block; 0 for types kvasir cannot compute. */
size_t krn_type_block_elems(int type);
size_t krn_type_block_bytes(int type);
const char *krn_type_name(int type);
/* Bytes of a row of n elements (n must be a multiple of the block size). */
size_t krn_row_bytes(int type, size_t n);

/* Dequantize n elements (multiple of the block size) of one row to f32. */
void krn_dequant_row(int type, const void *src, float *dst, size_t n);
/* 1 if `type` can be the weight of krn_matmul (Q8_1 and Q8_K are only
 * activation formats), else 0. */
int krn_type_is_weight(int type);

/* ---- Thread pool: fixed workers, fork/join over task indices. ---- */
typedef struct krn_pool krn_pool;
/* n_threads <= 0: one per online CPU. */
int krn_pool_create(krn_pool **out, int n_threads);
void krn_pool_free(krn_pool *p);
int krn_pool_threads(const krn_pool *p);
/* Run fn(ctx, i) for i in [0, n_tasks) across the pool (caller participates);
 * returns when all are done. p may be NULL (runs inline). A call made while
 * the pool is busy (from inside a task, or from another thread) runs its
 * tasks inline on the calling thread: correct, just not parallel. Workers
 * spin briefly between jobs (then sleep on a futex) so back-to-back jobs
 * start in about a microsecond. */
void krn_pool_run(krn_pool *p, void (*fn)(void *ctx, int i), void *ctx, int n_tasks);
/* The ISA level ("scalar", "avx2", "avx512") this pool's matmuls use: fixed
 * at krn_pool_create from krn_isa_name(). p NULL: the process-wide level. */
const char *krn_pool_isa(const krn_pool *p);

/* ---- Matrix products. W is row-major [n_out][k] of `type` (a GGUF tensor
 * with ne0 = k), x is f32 [m][k], y is f32 [m][n_out]:  y = x · Wᵀ.
 * Activations are quantized internally as llama.cpp does (Q8_0 for Q4_0 Q5_0
 * Q8_0, Q8_1 for Q4_1 Q5_1, Q8_K for K-quants; rounded to F16 / BF16 for F16 /
 * BF16 weights; F32 as is), so results match llama.cpp's to float rounding
 * (tests/kernels hold them to ggml's own vec_dot outputs). ---- */
void krn_matmul(krn_pool *p, int type, const void *W, size_t n_out, size_t k, const float *x, size_t m,
                float *y);
/* Several matrices over the same x (Q, K, V; gate, up) as one pool job:
 * x is quantized once per activation format, and the rows of all parts are
 * split over the threads together (one barrier instead of one per matrix).
 * Each part's y has the bits krn_matmul gives for that matrix alone. */
#define KRN_MM_MAX_PARTS 4
typedef struct krn_mm_part {
  int type;
  const void *W;
  size_t n_out;
  float *y; /* [m][n_out] */
} krn_mm_part;
void krn_matmul_n(krn_pool *p, const krn_mm_part *parts, int n_parts, size_t k, const float *x, size_t m);
/* (krn_matmul: k must be a multiple of the type's block size and the type a
 * weight type, else y is filled with NaN. Safe to call from several threads
 * on one pool; only one of them runs in parallel at a time.) */
/* Same, forced to the scalar reference path (tests compare SIMD against it). */
void krn_matmul_ref(int type, const void *W, size_t n_out, size_t k, const float *x, size_t m, float *y);
/* Same, with the ISA capped at `isa` ("scalar", "avx2", "avx512"); for tests
 * and benches that compare paths within one process. */
void krn_matmul_isa(krn_pool *p, const char *isa, int type, const void *W, size_t n_out, size_t k, const float *x,
                    size_t m, float *y);

/* ---- Repacked weights. KRN_Q4_K_X8 is no GGUF type: a Q4_K matrix whose
 * rows are interleaved eight at a time (8 rows' super-block j side by side,
 * scales pre-arranged; layout in cpu/krn_internal.h, blk_q4_k_x8), so one
 * activation block meets 8 rows in each SIMD instruction. It has the same
 * byte size as the Q4_K matrix, is made by krn_repack, and is taken only by
 * krn_matmul, krn_matmul_n, krn_matmul_ref and krn_matmul_isa (W: the
 * repacked bytes, n_out a multiple of 8), which give the bits they give for
 * the Q4_K original at every ISA level. Nothing else reads it (it has no
 * row layout: krn_type_block_bytes says 0). ---- */
enum { KRN_Q4_K_X8 = 48 };
/* The repacked type for a weight matrix of `type` with n_out rows of k
 * elements (KRN_Q4_K_X8 for Q4_K with n_out % 8 == 0), or -1: use it as is. */
int krn_repack_type(int type, size_t n_out, size_t k);
/* Write the krn_repack_type layout of W (n_out rows of k, krn_row_bytes(type,
 * k) bytes each) to dst, which has the same size; dst == W repacks in place
 * (8 rows at a time through a small buffer). 0, or -1 when there is no
 * repacked type or no memory (dst untouched). */
int krn_repack(int type, const void *W, size_t n_out, size_t k, void *dst);

/* ---- Elementwise / small ops used by every architecture (f32). ---- */
void krn_rmsnorm(float *out, const float *x, const float *w, size_t n, float eps, float w_offset);
void krn_softmax(float *x, size_t n);
float krn_dot_f32(const float *a, const float *b, size_t n);
void krn_axpy_f32(float *y, float a, const float *x, size_t n);   /* y += a*x */
/* f16 <-> f32 conversions (IEEE half). */
float krn_f16_to_f32(uint16_t h);
uint16_t krn_f32_to_f16(float f);
float krn_bf16_to_f32(uint16_t h);
uint16_t krn_f32_to_bf16(float f); /* round to nearest even; NaN stays NaN */
/* Whole rows (F16C/AVX2 where present; bit-identical to the scalar calls). */
void krn_f16_to_f32_row(const uint16_t *h, float *x, size_t n);
void krn_f32_to_f16_row(const float *x, uint16_t *h, size_t n);
void krn_bf16_to_f32_row(const uint16_t *h, float *x, size_t n);

#ifdef __cplusplus
}
#endif
#endif
