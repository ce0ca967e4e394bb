/*
 * quant.c — the number formats of the KV memory: IEEE half floats
 * (nearest-even and directed rounding), asymmetric low-bit group codes
 * (8, 4, 2 bits), the compressed block layout, and the 64-bit checksum used
 * by snapshots and prefix hashes.
 *
 * Invariants: kvm_quant_group stores lo rounded down and hi rounded up to
 * f16, so every input of the group lies in [lo, hi] (this is what makes the
 * block index an upper bound); codes are in [0, 2^bits-1]; the dequantized
 * value lo + s*code with s = (hi-lo)/(2^bits-1) is within s/2 of the input
 * (plus f32 rounding). tests/reference/kvmem/quant_ref.py is the independent
 * numpy implementation of the same formulas.
 */
#include <math.h>
#include <string.h>

#include "kvmem/internal.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KVM_X86 1
#endif

float kvm_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0) {
    if (man == 0) {
      bits = sign;
    } else { /* subnormal: normalize */
      int e = -1;
      do { man <<= 1; e++; } while (!(man & 0x400));
      bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (man << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

uint16_t kvm_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
  uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0); /* inf / nan */
  if (ax >= 0x477ff000u) return sign | 0x7c00;                                  /* overflow -> inf */
  if (ax < 0x38800000u) {                                                       /* subnormal or zero */
    if (ax < 0x33000000u) return sign;                                          /* < half the smallest */
    uint32_t e = ax >> 23, man = (ax & 0x7fffff) | 0x800000;
    int shift = (int)(126 - e);  /* bits dropped: value = q * 2^-24 */
    uint32_t q = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) q++;
    return sign | (uint16_t)q;
  }
  uint32_t e = (ax >> 23) - 127 + 15, man = ax & 0x7fffff;
  uint32_t q = (e << 10) | (man >> 13), rem = man & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) q++;
  return sign | (uint16_t)q;
}

static uint16_t f16_next(uint16_t h, int up) {
  if ((h & 0x7fff) == 0) return up ? 0x0001 : 0x8001;
  if (h & 0x8000) return up ? (uint16_t)(h - 1) : (uint16_t)(h + 1);
  return up ? (uint16_t)(h + 1) : (uint16_t)(h - 1);
}

uint16_t kvm_f32_to_f16_dir(float f, int up) {
  if (!(f == f)) return 0x7e00;
  if (f > 65504.0f) return 0x7bff;   /* clamp: keep ranges finite */
  if (f < -65504.0f) return 0xfbff;
  uint16_t h = kvm_f32_to_f16(f);
  float g = kvm_f16_to_f32(h);
  if (up && g < f) h = f16_next(h, 1);
  if (!up && g > f) h = f16_next(h, 0);
  return h;
}

int kvm_cpu_has_f16c(void) {
#ifdef KVM_X86
  __builtin_cpu_init();
  return __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
#else
  return 0;
#endif
}

#ifdef KVM_X86
__attribute__((target("avx,f16c"))) static void row_f16c(const uint16_t *s, float *d, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
    _mm256_storeu_ps(d + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; i++) d[i] = kvm_f16_to_f32(s[i]);
}
#endif

#ifdef KVM_X86
__attribute__((target("avx,f16c"))) static void row_to_f16c(const float *s, uint16_t *d, int n) {
  int i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128((__m128i *)(void *)(d + i), _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; i++) d[i] = kvm_f32_to_f16(s[i]);
}
#endif

void kvm_f32_row_to_f16(const float *src, uint16_t *dst, int n, int has_f16c) {
#ifdef KVM_X86
  if (has_f16c) {
    row_to_f16c(src, dst, n);
    return;
  }
#endif
  for (int i = 0; i < n; i++) dst[i] = kvm_f32_to_f16(src[i]);
}

void kvm_f16_row_to_f32(const uint16_t *src, float *dst, int n, int has_f16c) {
#ifdef KVM_X86
  if (has_f16c) {
    row_f16c(src, dst, n);
    return;
  }
#endif
  for (int i = 0; i < n; i++) dst[i] = kvm_f16_to_f32(src[i]);
}

size_t kvm_codes_bytes(int n, int bits) { return ((size_t)n * (size_t)bits + 7) / 8; }


void kvm_hadamard(float *x, int n) {
  int p = n & -n;
  float s = 1.0f / sqrtf((float)p);
  for (int o = 0; o < n; o += p) {
    float *y = x + o;
    for (int h = 1; h < p; h <<= 1)
      for (int i = 0; i < p; i += 2 * h)
        for (int j = i; j < i + h; j++) {
          float a = y[j], b = y[j + h];
          y[j] = a + b;
          y[j + h] = a - b;
        }
    for (int i = 0; i < p; i++) y[i] *= s;
  }
}

/* Codes of x[i*stride], i < n, for the range [lof, hif] (f16 values), into
 * codes (NULL: none); the squared error of their dequantized values. */
static double encode_range(const float *x, int n, int stride, int bits, float lof, float hif, uint8_t *codes) {
  int qmax = (1 << bits) - 1;
  float s = (hif - lof) / (float)qmax;
  double err = 0;
  if (codes) memset(codes, 0, kvm_codes_bytes(n, bits));
  for (int i = 0; i < n; i++) {
    float v = x[(size_t)i * stride];
    int q = 0;
    if (s > 0) {
      q = (int)rintf((v - lof) / s);
      if (q < 0) q = 0;
      if (q > qmax) q = qmax;
    }
    float d = v - (lof + s * (float)q);
    err += (double)d * d;
    if (!codes) continue;
    if (bits == 8) codes[i] = (uint8_t)q;
    else if (bits == 4) codes[i >> 1] |= (uint8_t)(q << ((i & 1) * 4));
    else codes[i >> 2] |= (uint8_t)(q << ((i & 3) * 2));
  }
  return err;
}

void kvm_quant_group(const float *x, int n, int stride, int bits, uint16_t *lo16, uint16_t *hi16,
                     uint8_t *codes) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; i++) {
    float v = x[(size_t)i * stride];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  *lo16 = kvm_f32_to_f16_dir(lo, 0);
  *hi16 = kvm_f32_to_f16_dir(hi, 1);
  encode_range(x, n, stride, bits, kvm_f16_to_f32(*lo16), kvm_f16_to_f32(*hi16), codes);
}

double kvm_quant_group_mse(const float *x, int n, int bits, uint16_t *lo16, uint16_t *hi16, uint8_t *codes) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; i++) {
    if (x[i] < lo) lo = x[i];
    if (x[i] > hi) hi = x[i];
  }
  float c = 0.5f * (lo + hi), w = 0.5f * (hi - lo);
  double best = INFINITY;
  uint16_t bl = kvm_f32_to_f16_dir(lo, 0), bh = kvm_f32_to_f16_dir(hi, 1);
  for (int k = 0; k <= 10; k++) {
    float r = 1.0f - 0.05f * (float)k;
    uint16_t l16 = k ? kvm_f32_to_f16(c - r * w) : kvm_f32_to_f16_dir(lo, 0);
    uint16_t h16 = k ? kvm_f32_to_f16(c + r * w) : kvm_f32_to_f16_dir(hi, 1);
    double e = encode_range(x, n, 1, bits, kvm_f16_to_f32(l16), kvm_f16_to_f32(h16), NULL);
    if (e < best) {
      best = e;
      bl = l16;
      bh = h16;
    }
  }
  *lo16 = bl;
  *hi16 = bh;
  return encode_range(x, n, 1, bits, kvm_f16_to_f32(bl), kvm_f16_to_f32(bh), codes);
}

void kvm_unpack_codes(const uint8_t *codes, int n, int bits, uint8_t *out) {
  if (bits == 8) {
    memcpy(out, codes, (size_t)n);
  } else if (bits == 4) {
    for (int i = 0; i < n; i += 2) {
      out[i] = codes[i >> 1] & 15;
      if (i + 1 < n) out[i + 1] = codes[i >> 1] >> 4;
    }
  } else {
    for (int i = 0; i < n; i++) out[i] = (codes[i >> 2] >> ((i & 3) * 2)) & 3;
  }
}

void kvm_dequant_group(const uint8_t *codes, int n, int bits, uint16_t lo16, uint16_t hi16, float *x) {
  float lof = kvm_f16_to_f32(lo16), hif = kvm_f16_to_f32(hi16);
  float s = (hif - lof) / (float)((1 << bits) - 1);
  for (int i = 0; i < n; i++) {
    int q;
    if (bits == 8) q = codes[i];
    else if (bits == 4) q = (codes[i >> 1] >> ((i & 1) * 4)) & 15;
    else q = (codes[i >> 2] >> ((i & 3) * 2)) & 3;
    x[i] = lof + s * (float)q;
  }
}

static size_t up8(size_t x) { return (x + 7) & ~(size_t)7; }

void kvm_blk_layout_init(kvm_blk_layout *L, const kvm_config *c) {
  size_t D = (size_t)c->head_dim, B = (size_t)c->block, o = 0;
  L->krow = kvm_codes_bytes((int)B, c->key_bits);
  L->vrow = kvm_codes_bytes((int)D, c->val_bits);
  L->kmin = o; o += 2 * D;
  L->kmax = o; o += 2 * D;
  L->vlo = o; o += 2 * B;
  L->vhi = o; o += 2 * B;
  L->kcodes = o; o += D * L->krow;
  L->vcodes = o; o += B * L->vrow;
  o = (o + 1) & ~(size_t)1;
  L->kmean = o; o += kvm_codes_bytes((int)D, 4); /* 4-bit, within [kmin, kmax] */
  L->vmean = o; o += kvm_codes_bytes((int)D, 4); /* 4-bit symmetric, stored + 8 */
  L->vmean_s = o; o += 2;
  L->head_bytes = up8(o);
  L->block_bytes = L->head_bytes * (size_t)c->n_kv_heads;
}

/* ---- checksum ---- */
#define KH_P1 0x9E3779B185EBCA87ULL
#define KH_P2 0xC2B2AE3D27D4EB4FULL
#define KH_P3 0x165667B19E3779F9ULL

static uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

uint64_t kvm_hash64(const void *data, size_t n, uint64_t seed) {
  const uint8_t *p = data;
  uint64_t v[4];
  for (int i = 0; i < 4; i++) v[i] = seed + KH_P1 * (uint64_t)(i + 1) + KH_P3;
  size_t nw = n / 8;
  for (size_t i = 0; i < nw; i++) {
    uint64_t w;
    memcpy(&w, p + 8 * i, 8);
    uint64_t *l = &v[i & 3];
    *l = rotl64(*l + w * KH_P2, 31) * KH_P1;   /* bijective in *l and in w */
  }
  if (n & 7) {
    uint64_t w = 0;
    memcpy(&w, p + 8 * nw, n & 7);
    uint64_t *l = &v[nw & 3];
    *l = rotl64(*l + w * KH_P2, 31) * KH_P1;
  }
  uint64_t h = seed ^ ((uint64_t)n * KH_P3);
  for (int i = 0; i < 4; i++) h = (rotl64(h, 27) ^ v[i]) * KH_P1;
  h ^= h >> 33;
  h *= KH_P2;
  h ^= h >> 29;
  h *= KH_P3;
  h ^= h >> 32;
  return h;
}
