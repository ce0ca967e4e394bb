/*
 * simd.c — which of the KV memory's SIMD attention loops run: a level
 * (portable, AVX2, AVX-512) fixed by the CPU and KVASIR_ISA (read once, as
 * the kernels read it), which tests and benches may lower or pin with
 * kvm_simd_force, and per config the widest loops at or below that level
 * whose shapes fit (kvm_simd_for). The loops themselves are written once in
 * simd_body.h and compiled at 16 lanes (simd_avx512.c) and 8 (simd_avx2.c);
 * cache.c and batch.c keep the portable ones and call these through the
 * table when kvm_simd_for gives one.
 */
#include <stdatomic.h>
#include <string.h>

#include "kvmem/internal.h"
#include "kernels/kernels.h"

static _Atomic int g_force = -1;

/* What this CPU and KVASIR_ISA allow, computed once (a write-once cache of
 * a constant of the process). */
int kvm_simd_best(void) {
#if defined(__x86_64__) && defined(__GNUC__)
  static _Atomic int cached = -1;
  int v = atomic_load_explicit(&cached, memory_order_relaxed);
  if (v < 0) {
    const krn_cpu *c = krn_cpu_features();
    const char *isa = krn_isa_name();
    const int base = c->avx2 && c->fma && c->f16c;
    v = base && c->avx512f && !strcmp(isa, "avx512") ? KVM_SIMD_AVX512
        : base && (!strcmp(isa, "avx2") || !strcmp(isa, "avx512")) ? KVM_SIMD_AVX2
                                                                   : KVM_SIMD_PORTABLE;
    atomic_store_explicit(&cached, v, memory_order_relaxed);
  }
  return v;
#else
  return KVM_SIMD_PORTABLE;
#endif
}

void kvm_simd_force(int level) { atomic_store(&g_force, level); }

int kvm_simd_level(void) {
  const int f = atomic_load_explicit(&g_force, memory_order_relaxed), best = kvm_simd_best();
  return f < 0 || f > best ? best : f;
}

const char *kvm_simd_name(int level) {
  return level == KVM_SIMD_AVX512 ? "avx512" : level == KVM_SIMD_AVX2 ? "avx2" : "portable";
}

int kvm_simd_fits(const kvm_config *k, int lanes) {
  return k->head_dim % lanes == 0 && k->block % lanes == 0 && (k->block * k->key_bits / 8) % lanes == 0 &&
         (k->head_dim * k->val_bits / 8) % lanes == 0;
}

const kvm_simd_ops *kvm_simd_for(const kvm_config *k) {
#if defined(__x86_64__) && defined(__GNUC__)
  const int level = kvm_simd_level();
  if (level >= KVM_SIMD_AVX512 && kvm_simd_fits(k, 16)) return &kvm__simd_avx512;
  if (level >= KVM_SIMD_AVX2 && kvm_simd_fits(k, 8)) return &kvm__simd_avx2;
#else
  (void)k;
#endif
  return NULL;
}
