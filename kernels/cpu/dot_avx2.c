/*
 * dot_avx2.c — AVX2/FMA fused dot products and activation quantizers.
 */
#include "kernels/cpu/krn_internal.h"

krn_vec_dot_fn krn__dot_avx2(int type) { (void)type; return NULL; }
krn_vec_dot_multi_fn krn__dot_multi_avx2(int type) { (void)type; return NULL; }
krn_quant_fn krn__quant_avx2(int act_type) { (void)act_type; return NULL; }
