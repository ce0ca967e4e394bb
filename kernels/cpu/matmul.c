/*
 * matmul.c — y = x · Wᵀ for a GGUF weight matrix W [n_out][k] and f32
 * activations x [m][k], split over the pool by output rows.
 *
 * Steps: (1) pick the kernels for (type, ISA): the pool's ISA, fixed when it
 * was created, or the process-wide level when there is no pool; (2) quantize
 * every activation row once into the pool's scratch in the type's activation
 * format (Q8_0 / Q8_1 / Q8_K, as llama.cpp does), or use x as is for float
 * weights; (3) each task takes a contiguous range of output rows; for m > 1
 * it walks the rows in small tiles and, where the ISA has one, uses a
 * multi-row kernel that loads each weight block once for up to 4 activation
 * rows, so prompt processing reads W from memory about m/4 times less.
 * Q4_K matrices with a multiple of 8 rows are summed in the orders of
 * llama.cpp's repacked kernels (single rows and the last m % 4 rows as its
 * gemv, complete groups of 4 rows as its gemm; dot_scalar.c q4_k_r8).
 * KRN_Q4_K_X8 (the same matrices repacked by krn_repack, repack.c) runs
 * those orders over 8 interleaved rows at a time (mm_task_x8).
 *
 * Contract violations (k not a multiple of the block size, a type with no
 * kernel, out of memory with no pool) fill y with NaN: loud, never UB.
 */
#include "kernels/cpu/krn_internal.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/krn_pool_internal.h"

int krn__kernels(int type, int isa, krn_kernels *k) {
  memset(k, 0, sizeof *k);
  k->act_type = krn__act_type(type);
  k->dot = krn__dot_scalar(type);
  if (k->act_type < 0 || !k->dot) return -1;
  k->quant = krn__quant_scalar(k->act_type);
  k->multi_nr = 4;
  if (isa >= KRN_ISA_AVX2) {
    krn_vec_dot_fn d = krn__dot_avx2(type);
    krn_quant_fn q = krn__quant_avx2(k->act_type);
    if (d) k->dot = d;
    if (q) k->quant = q;
    k->dot_multi = krn__dot_multi_avx2(type);
    k->multi_nr = krn__multi_rows_avx2(type);
    k->dot_wrows = krn__dot_wrows_avx2(type);
  }
  if (isa >= KRN_ISA_AVX512) {
    krn_vec_dot_fn d = krn__dot_avx512(type);
    krn_vec_dot_multi_fn dm = krn__dot_multi_avx512(type);
    if (d) k->dot = d;
    if (dm) k->dot_multi = dm, k->multi_nr = krn__multi_rows_avx512(type);
    krn_vec_dot_wrows_fn dw = krn__dot_wrows_avx512(type);
    if (dw || d) k->dot_wrows = dw; /* never mix levels: the dot and the rows kernel must agree */
  }
  return 0;
}

int krn_type_is_weight(int type) {
  return type >= 0 && type < KRN_TYPE_COUNT && krn__act_type(type) >= 0 && krn__dot_scalar(type) != NULL;
}

/* Kernels for a matmul of `type` with n_out rows: Q4_K matrices that
 * llama.cpp repacks (n_out a multiple of 8) get its repacked summation
 * orders, so the engine's results stay bit-identical to llama.cpp's. */
static int matmul_kernels(int type, int isa, size_t n_out, krn_kernels *k) {
  if (type == KRN_Q4_K && n_out % 8 == 0) {
    krn_kernels g;
    if (krn__kernels(KRN__Q4_K_R8, isa, k) || krn__kernels(KRN__Q4_K_R8_GEMM, isa, &g)) return -1;
    k->dot_g4 = g.dot;
    k->dot_multi_g4 = g.dot_multi;
    return 0;
  }
  return krn__kernels(type, isa, k);
}

/* The KRN_Q4_K_X8 group kernel of the best level up to isa (every level
 * gives the same bits, so a missing one falls back a level). */
static krn_x8_fn x8_kernel(int isa) {
  krn_x8_fn f = NULL;
  if (isa >= KRN_ISA_AVX512) f = krn__x8_avx512();
  if (!f && isa >= KRN_ISA_AVX2) f = krn__x8_avx2();
  return f ? f : krn__x8_scalar();
}

const char *krn_pool_isa(const krn_pool *p) {
  int l = p ? p->isa : krn__isa_level();
  return l == KRN_ISA_AVX512 ? "avx512" : l == KRN_ISA_AVX2 ? "avx2" : "scalar";
}

typedef struct {
  krn_kernels kk;
  const uint8_t *W;
  size_t w_stride, n_out, k, m;
  const uint8_t *act;
  size_t a_stride;
  float *y;
  size_t rows_per_task;
  const float *x; /* f32 activations (quantized into act before the tasks run) */
  krn_x8_fn x8;   /* KRN_Q4_K_X8 weights: the group kernel (rows_per_task % 8 == 0) */
} mm_job;

#define ROW_TILE 16

/* Rows r0..r1 (multiples of 8) of a KRN_Q4_K_X8 matrix: groups of 8 rows,
 * complete groups of 4 activation rows through the gemm kernel, the rest
 * (and a matvec) one by one through the gemv. W is read in order, one
 * stream, and ROW_TILE rows of it stay in cache while all m rows meet them. */
static void mm_task_x8(const mm_job *j, size_t r0, size_t r1) {
  const size_t gs = 8 * j->w_stride;
  float out[32];
  for (size_t rt = r0; rt < r1; rt += ROW_TILE) {
    const size_t re = rt + ROW_TILE < r1 ? rt + ROW_TILE : r1;
    for (size_t c = 0; c < j->m;) {
      const int nr = j->m - c >= 4 ? 4 : 1;
      const uint8_t *a = j->act + c * j->a_stride;
      for (size_t r = rt; r < re; r += 8) {
        j->x8(j->k, j->W + r / 8 * gs, a, j->a_stride, nr, out);
        for (int i = 0; i < nr; i++) memcpy(j->y + (c + (size_t)i) * j->n_out + r, out + 8 * i, 8 * sizeof(float));
      }
      c += (size_t)nr;
    }
  }
}

static void mm_task(void *ctx, int t) {
  const mm_job *j = ctx;
  const size_t r0 = (size_t)t * j->rows_per_task;
  size_t r1 = r0 + j->rows_per_task;
  if (r1 > j->n_out) r1 = j->n_out;
  if (j->x8) {
    mm_task_x8(j, r0, r1);
    return;
  }
  if (j->m == 1) {
    /* A matvec streams W once from memory: prefetch (into L1) the row about
     * 4 KiB ahead. On the machines measured this cut decode CPU time by
     * ~30% for SmolLM2 and Gemma 3; the hardware prefetcher alone did not
     * keep up with one stream of short rows. */
    const size_t ahead = j->w_stride >= 2048 ? 2 : (4096 + j->w_stride - 1) / j->w_stride;
    size_t r = r0;
    if (j->kk.dot_wrows) /* 4 rows per call: their FMA chains overlap (same bits as dot) */
      for (; r + 4 <= r1; r += 4) {
        if (r + ahead + 4 <= r1) {
          const uint8_t *q = j->W + (r + ahead) * j->w_stride;
          for (size_t o = 0; o < 4 * j->w_stride; o += 64) __builtin_prefetch(q + o, 0, 3);
        }
        j->kk.dot_wrows(j->k, j->W + r * j->w_stride, j->w_stride, j->act, 4, j->y + r);
      }
    for (; r < r1; r++) {
      if (r + ahead < r1) {
        const uint8_t *q = j->W + (r + ahead) * j->w_stride;
        for (size_t o = 0; o < j->w_stride; o += 64) __builtin_prefetch(q + o, 0, 3);
      }
      j->y[r] = j->kk.dot(j->k, j->W + r * j->w_stride, j->act);
    }
    return;
  }
  float out[8];
  /* activation rows per group: the multi kernel's width, 4 where the
   * llama.cpp order depends on groups of 4 (dot_g4) */
  const size_t step = j->kk.dot_g4 || !j->kk.dot_multi || j->kk.multi_nr < 4 || j->kk.multi_nr > 8 ? 4 : (size_t)j->kk.multi_nr;
  for (size_t rt = r0; rt < r1; rt += ROW_TILE) {
    const size_t re = rt + ROW_TILE < r1 ? rt + ROW_TILE : r1;
    for (size_t c = 0; c < j->m; c += step) {
      const int nr = j->m - c < step ? (int)(j->m - c) : (int)step;
      const uint8_t *a = j->act + c * j->a_stride;
      float tile[8][ROW_TILE]; /* outputs of this group, written to y row by row below */
      for (size_t r = rt; r < re; r++) {
        const uint8_t *w = j->W + r * j->w_stride;
        if (nr == 4 && j->kk.dot_g4) {
          if (j->kk.dot_multi_g4) j->kk.dot_multi_g4(j->k, w, a, j->a_stride, 4, out);
          else
            for (int i = 0; i < 4; i++) out[i] = j->kk.dot_g4(j->k, w, a + i * j->a_stride);
        } else if (j->kk.dot_multi && nr > 1) {
          j->kk.dot_multi(j->k, w, a, j->a_stride, nr, out);
        } else {
          for (int i = 0; i < nr; i++) out[i] = j->kk.dot(j->k, w, a + i * j->a_stride);
        }
        for (int i = 0; i < nr; i++) tile[i][r - rt] = out[i];
      }
      for (int i = 0; i < nr; i++) memcpy(j->y + (c + i) * j->n_out + rt, tile[i], (re - rt) * sizeof(float));
    }
  }
}

static void fill_nan(float *y, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] = NAN;
}

/* Several matrices over the same activations as one pool job: part i's
 * tasks are indices first[i] .. first[i+1]-1. Activations are quantized
 * once per activation format (owner[f] is the first part using format f). */
typedef struct {
  mm_job j[KRN_MM_MAX_PARTS];
  int n, first[KRN_MM_MAX_PARTS + 1];
  int owner[KRN_MM_MAX_PARTS], n_fmt;
  size_t m;
} mm_group;

static void group_task(void *ctx, int t) {
  const mm_group *g = ctx;
  int i = 0;
  while (t >= g->first[i + 1]) i++;
  mm_task((void *)&g->j[i], t - g->first[i]);
}

static void group_quant_task(void *ctx, int t) {
  const mm_group *g = ctx;
  const mm_job *j = &g->j[g->owner[(size_t)t / g->m]];
  const size_t i = (size_t)t % g->m;
  krn__act_quant_row(j->kk.act_type, j->kk.quant, j->x + i * j->k, (uint8_t *)j->act + i * j->a_stride, j->k);
}

static void matmul_parts(krn_pool *p, int isa, const krn_mm_part *parts, int n_parts, size_t k, const float *x,
                         size_t m) {
  if (!m || n_parts <= 0) return;
  if (n_parts > KRN_MM_MAX_PARTS) { /* in chunks: each part's results do not depend on its companions */
    for (int i = 0; i < n_parts; i += KRN_MM_MAX_PARTS)
      matmul_parts(p, isa, parts + i, n_parts - i < KRN_MM_MAX_PARTS ? n_parts - i : KRN_MM_MAX_PARTS, k, x, m);
    return;
  }
  mm_group g = {.m = m};
  size_t fmt_bytes[KRN_MM_MAX_PARTS] = {0}, total = 0;
  int fmt_of[KRN_MM_MAX_PARTS];
  for (int i = 0; i < n_parts; i++) {
    const krn_mm_part *pt = &parts[i];
    if (!pt->n_out) continue;
    if (m > (size_t)INT_MAX || pt->n_out > (size_t)INT_MAX || m > SIZE_MAX / pt->n_out) continue; /* cannot even fill y */
    mm_job *j = &g.j[g.n];
    *j = (mm_job){.W = pt->W, .n_out = pt->n_out, .k = k, .m = m, .y = pt->y, .x = x};
    if (pt->type == KRN_Q4_K_X8) {
      j->w_stride = pt->n_out % 8 ? 0 : krn_row_bytes(KRN_Q4_K, k);
      j->x8 = x8_kernel(isa);
      if (!j->w_stride || krn__kernels(KRN_Q4_K, isa, &j->kk) != 0) { fill_nan(pt->y, m * pt->n_out); continue; }
    } else {
      j->w_stride = krn_row_bytes(pt->type, k);
      if (!j->w_stride || matmul_kernels(pt->type, isa, pt->n_out, &j->kk) != 0) { fill_nan(pt->y, m * pt->n_out); continue; }
    }
    int f = -1;
    if (j->kk.act_type == KRN_F32) {
      j->act = (const uint8_t *)x;
      j->a_stride = k * sizeof(float);
    } else {
      j->a_stride = krn__act_row_bytes(j->kk.act_type, k);
      if (!j->a_stride || m > SIZE_MAX / j->a_stride / KRN_MM_MAX_PARTS) { fill_nan(pt->y, m * pt->n_out); continue; }
      for (int q = 0; q < g.n_fmt; q++)
        if (g.j[g.owner[q]].kk.act_type == j->kk.act_type) f = q;
      if (f < 0) {
        f = g.n_fmt++;
        g.owner[f] = g.n;
        fmt_bytes[f] = j->a_stride * m;
        total += fmt_bytes[f];
      }
    }
    fmt_of[g.n++] = f;
  }
  if (!g.n) return;
  void *owned = NULL;
  int held = 0;
  if (g.n_fmt) {
    /* The pool's scratch, unless a matmul on another thread (or an outer
     * one, from inside a task) holds it: then a private buffer. */
    const int own = p && krn__pool_scratch_acquire(p);
    uint8_t *buf = own ? krn__pool_scratch(p, total) : (owned = malloc(total));
    if (!buf) {
      if (own) krn__pool_scratch_release(p);
      for (int i = 0; i < g.n; i++) fill_nan(g.j[i].y, m * g.j[i].n_out);
      return;
    }
    held = own;
    size_t off[KRN_MM_MAX_PARTS];
    for (int q = 0; q < g.n_fmt; q++) off[q] = q ? off[q - 1] + fmt_bytes[q - 1] : 0;
    for (int i = 0; i < g.n; i++)
      if (fmt_of[i] >= 0) g.j[i].act = buf + off[fmt_of[i]];
    if (m > 1 || g.n_fmt > 1) krn_pool_run(p, group_quant_task, &g, (int)(m * (size_t)g.n_fmt));
    else group_quant_task(&g, 0);
  }
  /* 8 tasks per thread and matrix: claimed dynamically, so a thread that
   * gets preempted (a shared machine) delays at most 1/8 of its share. */
  const int nt = krn_pool_threads(p);
  g.first[0] = 0;
  for (int i = 0; i < g.n; i++) {
    mm_job *j = &g.j[i];
    size_t tasks = nt > 1 ? (size_t)nt * 8 : 1;
    const size_t unit = j->x8 ? 8 : 1, units = j->n_out / unit; /* x8: whole groups of 8 rows */
    if (tasks > units) tasks = units;
    j->rows_per_task = (units + tasks - 1) / tasks * unit;
    tasks = (j->n_out + j->rows_per_task - 1) / j->rows_per_task;
    g.first[i + 1] = g.first[i] + (int)tasks;
  }
  if (g.n == 1) krn_pool_run(p, mm_task, &g.j[0], g.first[1]);
  else krn_pool_run(p, group_task, &g, g.first[g.n]);
  if (held) krn__pool_scratch_release(p);
  free(owned);
}

static void matmul_isa(krn_pool *p, int isa, int type, const void *W, size_t n_out, size_t k, const float *x,
                       size_t m, float *y) {
  const krn_mm_part part = {type, W, n_out, y};
  matmul_parts(p, isa, &part, 1, k, x, m);
}

void krn_matmul_n(krn_pool *p, const krn_mm_part *parts, int n_parts, size_t k, const float *x, size_t m) {
  matmul_parts(p, p ? p->isa : krn__isa_level(), parts, n_parts, k, x, m);
}

void krn_matmul(krn_pool *p, int type, const void *W, size_t n_out, size_t k, const float *x, size_t m, float *y) {
  matmul_isa(p, p ? p->isa : krn__isa_level(), type, W, n_out, k, x, m, y);
}

void krn_matmul_ref(int type, const void *W, size_t n_out, size_t k, const float *x, size_t m, float *y) {
  matmul_isa(NULL, KRN_ISA_SCALAR, type, W, n_out, k, x, m, y);
}

void krn_matmul_isa(krn_pool *p, const char *isa, int type, const void *W, size_t n_out, size_t k, const float *x,
                    size_t m, float *y) {
  int l = krn__isa_level_now();
  if (isa && !strcmp(isa, "scalar")) l = KRN_ISA_SCALAR;
  else if (isa && !strcmp(isa, "avx2") && l > KRN_ISA_AVX2) l = KRN_ISA_AVX2;
  matmul_isa(p, l, type, W, n_out, k, x, m, y);
}
