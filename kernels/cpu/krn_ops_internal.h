/*
 * krn_ops_internal.h — the scalar references and SIMD versions of the small
 * f32 ops (ops.c), exposed so tests can hold each path against the reference.
 */
#ifndef KVASIR_KRN_OPS_INTERNAL_H
#define KVASIR_KRN_OPS_INTERNAL_H

#include <stddef.h>

float krn__dot_f32_ref(const float *a, const float *b, size_t n);
void krn__axpy_f32_ref(float *y, float a, const float *x, size_t n);
void krn__softmax_ref(float *x, size_t n);
#if defined(__x86_64__)
void krn__softmax_avx2(float *x, size_t n);
void krn__exp_avx2(float *y, const float *x, size_t n); /* y = e^x, ~2 ulp */
float krn__dot_f32_avx2(const float *a, const float *b, size_t n);
void krn__axpy_f32_avx2(float *y, float a, const float *x, size_t n);
#endif

#endif
