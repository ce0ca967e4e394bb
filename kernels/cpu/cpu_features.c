/*
 * cpu_features.c — run-time x86 feature detection. A kernel level is usable
 * only if the CPU reports it AND the OS saves the wider register state
 * (XCR0), so a laptop with AVX-512 disabled by the OS falls back cleanly.
 * The ISA level every kernel file dispatches on (krn__isa_level) lives here
 * too, at the bottom of the library: the files that dispatch (matmul, pool,
 * ops, convert) call down into this one and never into each other for it.
 */
#include "kernels/cpu/krn_internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static krn_cpu g_cpu; /* written once by detect(); constant afterwards */
static int g_done;

static void detect(void) {
  memset(&g_cpu, 0, sizeof g_cpu);
#if defined(__x86_64__) || defined(__i386__)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return;
  int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
  g_cpu.fma = (c >> 12) & 1;
  g_cpu.f16c = (c >> 29) & 1;
  unsigned long long xcr0 = 0;
  if (osxsave) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = ((unsigned long long)hi << 32) | lo;
  }
  int os_avx = (xcr0 & 6) == 6, os_avx512 = (xcr0 & 0xe6) == 0xe6;
  if (!(avx && os_avx)) { g_cpu.fma = g_cpu.f16c = 0; return; }
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
    g_cpu.avx2 = (b >> 5) & 1;
    if (os_avx512) {
      g_cpu.avx512f = (b >> 16) & 1;
      g_cpu.avx512bw = (b >> 30) & 1;
      g_cpu.avx512vnni = (c >> 11) & 1;
    }
  }
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
    g_cpu.avxvnni = (a >> 4) & 1;
    if (os_avx512) g_cpu.avx512bf16 = (a >> 5) & 1;
  }
#endif
}

const krn_cpu *krn_cpu_features(void) {
  if (!g_done) { detect(); g_done = 1; }
  return &g_cpu;
}

const char *krn_isa_name(void) {
  const krn_cpu *c = krn_cpu_features();
  const char *cap = getenv("KVASIR_ISA");
  int lvl = (c->avx512f && c->avx512bw) ? 2 : (c->avx2 && c->fma) ? 1 : 0;
  if (cap && !strcmp(cap, "scalar")) lvl = 0;
  else if (cap && !strcmp(cap, "avx2") && lvl > 1) lvl = 1;
  return lvl == 2 ? "avx512" : lvl == 1 ? "avx2" : "scalar";
}

int krn__isa_level_now(void) {
  const char *n = krn_isa_name();
  return !strcmp(n, "avx512") ? KRN_ISA_AVX512 : !strcmp(n, "avx2") ? KRN_ISA_AVX2 : KRN_ISA_SCALAR;
}

/* Read once per process: a write-once cache of a constant, like the CPU
 * feature record (a race only computes the same value twice). */
int krn__isa_level(void) {
  static _Atomic int cached = -1;
  int v = atomic_load_explicit(&cached, memory_order_relaxed);
  if (v < 0) {
    v = krn__isa_level_now();
    atomic_store_explicit(&cached, v, memory_order_relaxed);
  }
  return v;
}
