/*
 * bench_kvmem — the compressed KV memory against full f16 memory, measured
 * in the same run on the same machine:
 *   1. synthetic: per-head attention time at the context length, with the
 *      model's KV shape (no model compute in the way), and bytes/token;
 *   2. model: perplexity over a long file (one context of --ctx tokens,
 *      scored over its second half, where long context matters), KV
 *      bytes/token, and decode tokens/s for --decode tokens at that depth.
 * Prints each number for full and compressed and the ratios the issue's
 * bars are about (bytes <= 0.25, ppl within 1%, decode >= 1.5x).
 *
 * usage: bench_kvmem [-m MODEL] [-f TEXT] [--ctx N] [--decode N] [-t THREADS]
 *                    [--synthetic-only] [--top-k K] [--key-bits B] [--val-bits B] [--val-rot 0|1]
 *                    [--select bound|gauss] [--no-curve] [--skip-full] [--loops]
 */
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kvmem_eng.h"

/* Per-head attention time (us) at n tokens for each config in cfs (one
 * cache built per config, the same synthetic keys/values): the best of 5
 * batches of reps calls, so a stall of the machine does not count. level:
 * -1 detect, else a KVM_SIMD_ level (kvm_simd_force). */
static double attend_us_level(const kvm_config *cf, int n, int reps, int level) {
  kvm_cache *c;
  kv_err e;
  if (kvm_cache_open(&c, cf, &e)) return -1;
  int kvd = cf->n_kv_heads * cf->head_dim;
  float *k = malloc(sizeof(float) * kvd), *v = malloc(sizeof(float) * kvd), *q = malloc(sizeof(float) * cf->head_dim),
        *o = malloc(sizeof(float) * cf->head_dim);
  unsigned s = 7;
  for (int t = 0; t < n; t++) {
    for (int i = 0; i < kvd; i++) {
      s = s * 1103515245u + 12345u;
      k[i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f + (i % 7 == 0 ? 2.0f : 0.0f);
      v[i] = (float)((s >> 4) & 0xffff) / 32768.0f - 1.0f;
    }
    kvm_cache_append(c, 0, k, v, &e);
  }
  for (int i = 0; i < cf->head_dim; i++) q[i] = (float)((i * 37) % 11) / 5.0f - 1.0f;
  void *sc = malloc(kvm_attend_scratch_bytes(c));
  kvm_simd_force(level);
  double best = INFINITY;
  for (int b = 0; b < 5; b++) {
    double t0 = kv_now();
    for (int r = 0; r < reps; r++)
      for (int h = 0; h < cf->n_kv_heads; h++) kvm_cache_attend_head(c, 0, h, q, n - 1, 0, 0.125f, o, sc);
    double us = (kv_now() - t0) * 1e6 / (reps * cf->n_kv_heads);
    if (us < best) best = us;
  }
  kvm_simd_force(-1);
  free(sc); free(k); free(v); free(q); free(o);
  kvm_cache_free(c);
  return best;
}

static double attend_us(const kvm_config *cf, int n, int reps) { return attend_us_level(cf, n, reps, -1); }

/* The attention loops: portable vs each SIMD level the CPU has, on the
 * compressed config with no block read (sinks, window, pooled rows), the
 * default top-k, and every block, plus full memory. */
static void loops_table(const kvm_config *sc, const kvm_config *sf, int n) {
  const int best = kvm_simd_best();
  if (best == KVM_SIMD_PORTABLE) {
    printf("attention loops: no AVX2 or AVX-512 here, portable loops only\n");
    return;
  }
  printf("attention loops at %d tokens, us/head (best of 5 batches), speedup over portable:\n", n);
  printf("  %-28s %10s", "memory", "portable");
  for (int l = 1; l <= best; l++) printf(" %10s %8s", kvm_simd_name(l), "speedup");
  printf("\n");
  int tks[3] = {0, sc->top_k, 1 << 20};
  const char *names[3] = {"compressed, no block read", "compressed, top-k", "compressed, every block"};
  for (int i = 0; i < 4; i++) {
    kvm_config c = i < 3 ? *sc : *sf;
    if (i < 3) c.top_k = tks[i];
    char label[64];
    if (i == 1) snprintf(label, sizeof label, "compressed, top-%d", sc->top_k);
    double p = attend_us_level(&c, n, 10, KVM_SIMD_PORTABLE);
    printf("  %-28s %10.1f", i == 3 ? "full f16" : i == 1 ? label : names[i], p);
    for (int l = 1; l <= best; l++) {
      double a = attend_us_level(&c, n, 10, l);
      printf(" %10.1f %7.2fx", a, p / a);
    }
    printf("\n");
  }
}

/* Trade-off curve on synthetic data with the model's KV shape: for a
 * config, bytes/token at n tokens, the RMS error of the attention output
 * against full f16 memory for a random query (in units of the values' RMS), and retrieval of a
 * planted key (a key aligned with the query at a random depth, its value a
 * marker): hit when the output's cosine with the marker exceeds 0.5. */
static void curve_point(const kvm_config *base, int n, int kb, int vb, int top_k) {
  kvm_config cf = *base, ff = *base;
  cf.n_layers = ff.n_layers = 1;
  cf.layer_mode[0] = KVM_COMPRESSED;
  ff.layer_mode[0] = KVM_FULL;
  cf.key_bits = kb;
  cf.val_bits = vb;
  cf.top_k = top_k;
  int D = cf.head_dim, kvd = cf.n_kv_heads * D, trials = 20, hits = 0;
  double err_sum = 0;
  float *k = malloc(sizeof(float) * kvd), *v = malloc(sizeof(float) * kvd), *q = malloc(sizeof(float) * D),
        *qr = malloc(sizeof(float) * D), *o1 = malloc(sizeof(float) * D), *o2 = malloc(sizeof(float) * D);
  unsigned s = 11;
  size_t bytes = 0;
  for (int tr = 0; tr < trials; tr++) {
    kvm_cache *a, *b;
    kv_err e;
    if (kvm_cache_open(&a, &cf, &e) || kvm_cache_open(&b, &ff, &e)) return;
    for (int i = 0; i < D; i++) {
      s = s * 1103515245u + 12345u;
      q[i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
      qr[i] = (float)((s >> 3) & 0xffff) / 16384.0f - 2.0f; /* a random query, moderately peaked */
    }
    int plant = 4 + (int)((unsigned)(tr * 2654435761u) % (unsigned)(n - 300));
    for (int t = 0; t < n; t++) {
      for (int i = 0; i < kvd; i++) {
        s = s * 1103515245u + 12345u;
        float r = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f;
        k[i] = r * (i % 5 == 0 ? 2.0f : 0.7f) + (i % 7 == 0 ? 2.0f : 0.0f);
        v[i] = (float)((s >> 3) & 0xffff) / 32768.0f - 1.0f;
      }
      if (t == plant)
        for (int i = 0; i < D; i++) { k[i] = 1.6f * q[i]; v[i] = (i % 2) ? 1.0f : -1.0f; }
      kvm_cache_append(a, 0, k, v, &e);
      kvm_cache_append(b, 0, k, v, &e);
    }
    void *sc = malloc(kvm_attend_scratch_bytes(b));
    double num = 0, den = 0, dot = 0, nn = 0;
    kvm_cache_attend_head(a, 0, 0, qr, n - 1, 0, 0.35f, o1, sc);
    kvm_cache_attend_head(b, 0, 0, qr, n - 1, 0, 0.35f, o2, sc);
    for (int i = 0; i < D; i++) {
      num += (o1[i] - o2[i]) * (double)(o1[i] - o2[i]);
      den += (double)o2[i] * o2[i];
    }
    kvm_cache_attend_head(a, 0, 0, q, n - 1, 0, 0.35f, o1, sc);
    for (int i = 0; i < D; i++) {
      dot += o1[i] * ((i % 2) ? 1.0 : -1.0);
      nn += (double)o1[i] * o1[i];
    }
    err_sum += sqrt(num / D) / 0.57735; /* RMS error in units of the values' RMS (uniform [-1,1]) */
    (void)den;
    hits += nn > 0 && dot / sqrt(nn * D) > 0.5;
    bytes = kvm_cache_bytes(a);
    free(sc);
    kvm_cache_free(a);
    kvm_cache_free(b);
  }
  printf("  k%d/v%d top-%-3d %6.1f%% of f16   output RMS error %.4f   planted-key hits %d/%d\n", kb, vb, top_k,
         100.0 * (double)bytes / (double)kvm_f16_bytes(&cf, n), err_sum / trials, hits, trials);
  free(k); free(v); free(q); free(qr); free(o1); free(o2);
}

static char *default_text(size_t *len) {
  glob_t g;
  kv_buf buf = KV_BUF_INIT;
  *len = 0;
  if (glob(KVASIR_SOURCE_DIR "/*/*.[ch]", 0, NULL, &g)) return NULL;
  for (size_t i = 0; i < g.gl_pathc; i++) {
    char *t;
    size_t tl;
    kv_err e;
    if (kv_read_file(g.gl_pathv[i], 1 << 22, &t, &tl, &e)) continue;
    int rc = kv_buf_append(&buf, t, tl);
    free(t);
    if (rc) break; /* out of memory: the text read so far */
  }
  globfree(&g);
  *len = buf.len;
  return buf.len ? kv_buf_detach(&buf, NULL) : NULL;
}

int main(int argc, char **argv) {
  const char *model = NULL, *file = NULL;
  int ctx = 8192, decode = 16, threads = 0, synth_only = 0, skip_full = 0, no_curve = 0, top_k = -1, kb = 0, vb = 0, vrot = -1, sel = -1, loops = 0;
  for (int i = 1; i < argc; i++) {
    const char *v = i + 1 < argc ? argv[i + 1] : "";
    if (!strcmp(argv[i], "-m")) model = v, i++;
    else if (!strcmp(argv[i], "-f")) file = v, i++;
    else if (!strcmp(argv[i], "--ctx")) ctx = atoi(v), i++;
    else if (!strcmp(argv[i], "--decode")) decode = atoi(v), i++;
    else if (!strcmp(argv[i], "-t")) threads = atoi(v), i++;
    else if (!strcmp(argv[i], "--top-k")) top_k = atoi(v), i++;
    else if (!strcmp(argv[i], "--key-bits")) kb = atoi(v), i++;
    else if (!strcmp(argv[i], "--val-bits")) vb = atoi(v), i++;
    else if (!strcmp(argv[i], "--val-rot")) vrot = atoi(v), i++;
    else if (!strcmp(argv[i], "--select")) sel = !strcmp(v, "gauss") ? KVM_SELECT_GAUSS : KVM_SELECT_BOUND, i++;
    else if (!strcmp(argv[i], "--synthetic-only")) synth_only = 1;
    else if (!strcmp(argv[i], "--loops")) loops = 1; /* portable vs each SIMD level of the attention loops */
    else if (!strcmp(argv[i], "--skip-full")) skip_full = 1; /* compressed only (tuning runs) */
    else if (!strcmp(argv[i], "--no-curve")) no_curve = 1;   /* skip the synthetic trade-off curve */
    else {
      fprintf(stderr, "usage: bench_kvmem [-m MODEL] [-f TEXT] [--ctx N] [--decode N] [-t THREADS] [--synthetic-only]\n"
                      "                   [--top-k K] [--key-bits B] [--val-bits B] [--val-rot 0|1] [--select bound|gauss]\n"
                      "                   [--no-curve] [--skip-full] [--loops]\n");
      return 2;
    }
  }
  char mpath[4096];
  if (!model && eng_default_model_path(mpath, sizeof mpath) == 0) model = mpath;
  kv_err err;
  eng_model *m = NULL;
  if (eng_model_open(&m, model, &err)) {
    fprintf(stderr, "bench_kvmem: %s\n", err.msg);
    return 1;
  }
  const eng_model_info *I = eng_model_get_info(m);
  if (I->n_ctx_train > 0 && ctx + decode + 1 > I->n_ctx_train) ctx = I->n_ctx_train - decode - 1; /* room to decode */
  printf("bench_kvmem: model %s (%s, %d layers, %d KV heads of %d), context %d\n", I->name, I->arch, I->n_layer,
         I->n_head_kv, I->head_dim, ctx);
  kvm_config full, comp;
  kvm_eng_config(&full, m, ctx + decode + 1, KVM_FULL);
  kvm_eng_config(&comp, m, ctx + decode + 1, KVM_COMPRESSED);
  if (top_k >= 0) comp.top_k = top_k;
  if (kb) comp.key_bits = kb;
  if (vb) comp.val_bits = vb;
  if (vrot >= 0) comp.val_rot = vrot;
  if (sel >= 0) comp.select = sel;
  printf("compressed config: sinks %d, window %d, block %d, top-k %d, keys int%d, values int%d%s, pooled %d\n",
         comp.sinks, comp.window, comp.block, comp.top_k, comp.key_bits, comp.val_bits,
         comp.val_rot ? " (rotated, clipped)" : "", comp.pooled);
  printf("block choice: %s\n", comp.select == KVM_SELECT_GAUSS ? "gauss (estimated max)" : "bound (upper bound)");

  /* 1. synthetic attention, one global layer of the model's shape */
  kvm_config sf = full, sc = comp;
  sf.n_layers = sc.n_layers = 1;
  sf.layer_mode[0] = KVM_FULL;
  sc.layer_mode[0] = KVM_COMPRESSED;
  double uf = attend_us(&sf, ctx, 20), uc = attend_us(&sc, ctx, 20);
  printf("synthetic attention at %d tokens: full %.1f us/head, compressed %.1f us/head, speedup %.2fx\n", ctx, uf, uc,
         uf / uc);
  if (loops) loops_table(&sc, &sf, ctx);
  if (skip_full) no_curve = 1;
  if (!no_curve) printf("trade-off curve (synthetic, %d tokens, one global layer):\n", ctx);
  int curve[][3] = {{8, 8, 8}, {4, 4, 8}, {4, 2, 8}, {4, 2, 4}, {4, 2, 16}, {2, 2, 8}, {8, 4, 8}};
  for (size_t i = 0; i < sizeof curve / sizeof curve[0] && !no_curve; i++) curve_point(&comp, ctx, curve[i][0], curve[i][1], curve[i][2]);
  if (synth_only) {
    eng_model_free(m);
    return 0;
  }

  /* 2. the model on a long file */
  size_t len;
  char *text = NULL;
  if (file) {
    if (kv_read_file(file, 256u << 20, &text, &len, &err)) { fprintf(stderr, "bench_kvmem: %s\n", err.msg); return 1; }
  } else {
    text = default_text(&len);
  }
  if (!text) { fprintf(stderr, "bench_kvmem: no text\n"); return 1; }
  size_t cap = (size_t)ctx + 1024, n;
  int32_t *toks = malloc(sizeof(int32_t) * cap);
  int rc = eng_tokenize(m, text, len < (size_t)ctx * 8 ? len : (size_t)ctx * 8, 1, 0, toks, cap, &n, &err);
  if (rc == KV_ELIMIT) n = cap, rc = 0;
  if (rc || n < (size_t)ctx) {
    fprintf(stderr, "bench_kvmem: %s\n", rc ? err.msg : "text too short for the context");
    return 1;
  }
  kvm_eval_result rf, rcp;
  double t0 = kv_now();
  memset(&rf, 0, sizeof rf);
  if (!skip_full && kvm_eval_ppl(m, toks, (size_t)ctx, (size_t)ctx / 2, decode, threads, &full, &rf, &err)) {
    fprintf(stderr, "bench_kvmem: %s\n", err.msg);
    return 1;
  }
  double t1 = kv_now();
  if (kvm_eval_ppl(m, toks, (size_t)ctx, (size_t)ctx / 2, decode, threads, &comp, &rcp, &err)) {
    fprintf(stderr, "bench_kvmem: %s\n", err.msg);
    return 1;
  }
  double t2 = kv_now();
  /* the ceiling: decode with a near-empty cache, where attention costs
   * nothing; no KV memory can make decode at ctx faster than this */
  kvm_eval_result re;
  memset(&re, 0, sizeof re);
  if (!skip_full && decode > 0 &&
      kvm_eval_ppl(m, toks, 256, 128, decode, threads, &full, &re, &err)) {
    fprintf(stderr, "bench_kvmem: %s\n", err.msg);
    return 1;
  }
  printf("%-11s %10s %14s %12s %12s\n", "memory", "ppl", "KV bytes/tok", "of f16", "decode tok/s");
  printf("%-11s %10.4f %14.1f %11.1f%% %12.2f   (prefill+score %.0f s)\n", "full", rf.ppl, rf.kv_bytes_per_token,
         100 * rf.kv_bytes_per_token / rf.f16_bytes_per_token, rf.decode_tok_s, t1 - t0);
  printf("%-11s %10.4f %14.1f %11.1f%% %12.2f   (prefill+score %.0f s)\n", "compressed", rcp.ppl, rcp.kv_bytes_per_token,
         100 * rcp.kv_bytes_per_token / rcp.f16_bytes_per_token, rcp.decode_tok_s, t2 - t1);
  printf("ratio bytes/token compressed/full: %.3f  (bar <= 0.25)\n", rcp.kv_bytes_per_token / rf.kv_bytes_per_token);
  printf("ratio ppl compressed/full:         %.4f (bar <= 1.01)\n", rcp.ppl / rf.ppl);
  printf("ratio decode tok/s compressed/full: %.2f  (bar >= 1.5)\n", rcp.decode_tok_s / rf.decode_tok_s);
  if (re.decode_tok_s > 0)
    printf("ceiling: decode at 256 tokens %.2f tok/s, so no KV memory can exceed %.2fx full memory at %d tokens "
           "(the rest of the model's decode time)\n",
           re.decode_tok_s, re.decode_tok_s / rf.decode_tok_s, ctx);
  free(toks);
  free(text);
  eng_model_free(m);
  return 0;
}
