/*
 * kernels — compute primitives behind a backend table (krn_backend), with a
 * scalar reference that every SIMD/CUDA path is tested against. CPU features
 * are detected at run time; nothing here is chosen at compile time alone.
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

#ifdef __cplusplus
}
#endif
#endif
