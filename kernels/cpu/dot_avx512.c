/*
 * dot_avx512.c — AVX-512 (F/BW/VNNI) fused dot products.
 */
#include "kernels/cpu/krn_internal.h"

krn_vec_dot_fn krn__dot_avx512(int type) { (void)type; return NULL; }
krn_vec_dot_multi_fn krn__dot_multi_avx512(int type) { (void)type; return NULL; }
