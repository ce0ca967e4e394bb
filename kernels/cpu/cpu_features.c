/*
 * cpu_features.c — run-time x86 feature detection. A kernel level is usable
 * only if the CPU reports it AND the OS saves the wider register state
 * (XCR0), so a laptop with AVX-512 disabled by the OS falls back cleanly.
 */
#include "kernels/kernels.h"

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
