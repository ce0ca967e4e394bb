/*
 * bench_prefill — prompt processing (prefill) through the compressed KV
 * memory against the dense f16 cache, same model, same thread count, same
 * run: for each length N, one eng_ctx_eval of N random tokens from an empty
 * context (batches of the engine's B), on a dense context (eng_ctx_create)
 * and on a compressed one (kvm_eng_ctx_create, the daemon's), best of REPS.
 * Prints tokens/s for both and the ratio compressed/dense (the bar: >= 0.8),
 * by wall clock and per CPU-second of the process (the steadier of the two
 * on a shared machine).
 *
 * --attn: the compressed attention alone instead (one thread, no model
 * compute, synthetic K/V of the model's shape in one global layer): the
 * last batch of 64 positions of N, all query heads, per query
 * (kvm_cache_attend_head) against one call per KV head
 * (kvm_cache_attend_batch, what the engine's prefill calls), best of 15
 * (the two interleaved), in the thread's CPU time.
 *
 * --loops portable|avx2|avx512: pin the attention loops' level (both
 * memories; kvm_simd_force, capped at what the CPU and KVASIR_ISA allow)
 * while the matmul kernels keep theirs, to compare the loops alone.
 *
 * usage: bench_prefill [-m MODEL] [-t THREADS] [-r REPS] [--ctx N] [--only dense|kvm] [--attn]
 *                      [--loops LEVEL] [N ...]
 *   default N: 1024 2048 4096; --ctx: the contexts' n_ctx (default: the
 *   largest N, which also sets the compressed memory's key/value bits).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/kvmem_eng.h"
#include "kernels/kernels.h"

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Seconds for one prefill of toks[0..n) on a fresh context (kvm: on the
 * compressed memory), wall clock, and in *cpu the process's CPU seconds
 * (every thread: on a loaded machine the wall time counts waits for the
 * CPU, the CPU time does not); negative on error. */
static double prefill_s(eng_model *m, const int32_t *toks, int n, int n_ctx, int threads, int kvm, double *cpu) {
  eng_ctx_params p;
  eng_ctx_params_default(&p);
  p.n_ctx = n_ctx;
  p.n_threads = threads;
  eng_ctx *c;
  kv_err e;
  int rc = kvm ? kvm_eng_ctx_create(&c, m, &p, NULL, &e) : eng_ctx_create(&c, m, &p, &e);
  if (rc) {
    fprintf(stderr, "bench_prefill: %s\n", e.msg);
    return -1;
  }
  double t0 = kv_now(), c0 = cpu_now();
  rc = eng_ctx_eval(c, toks, (size_t)n, 0, &e);
  double t = kv_now() - t0;
  *cpu = cpu_now() - c0;
  if (rc) fprintf(stderr, "bench_prefill: %s\n", e.msg);
  eng_ctx_free(c);
  return rc ? -1 : t;
}

static double thread_cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* --attn for n tokens: prints us per query both ways and the speedup. */
static void attn_only(const kvm_config *model_cfg, int g, int n) {
  kvm_config cf = *model_cfg;
  cf.n_layers = 1;
  cf.layer_mode[0] = KVM_COMPRESSED;
  kvm_cache *c;
  kv_err e;
  if (kvm_cache_open(&c, &cf, &e)) {
    fprintf(stderr, "bench_prefill: %s\n", e.msg);
    return;
  }
  const int D = cf.head_dim, kvd = cf.n_kv_heads * D, nb = 64 < n ? 64 : n;
  const size_t qd = (size_t)kvd * g;
  float *k = malloc(sizeof(float) * kvd), *v = malloc(sizeof(float) * kvd), *q = malloc(sizeof(float) * qd * nb),
        *o = malloc(sizeof(float) * qd * nb);
  void *s1 = malloc(kvm_attend_scratch_bytes(c)), *sb = malloc(kvm_attend_batch_scratch_bytes(c, nb * g));
  unsigned s = 7;
  for (int t = 0; t < n; t++) {
    for (int i = 0; i < kvd; i++) {
      s = s * 1103515245u + 12345u;
      k[i] = (float)((s >> 8) & 0xffff) / 32768.0f - 1.0f + (i % 7 == 0 ? 2.0f : 0.0f);
      v[i] = (float)((s >> 4) & 0xffff) / 32768.0f - 1.0f;
    }
    kvm_cache_append(c, 0, k, v, &e);
  }
  for (size_t i = 0; i < qd * nb; i++) q[i] = (float)((i * 37) % 11) / 5.0f - 1.0f;
  const int pos0 = n - nb;
  double best[2] = {INFINITY, INFINITY};
  for (int rep = 0; rep < 15; rep++)
    for (int way = 0; way < 2; way++) {
      double t0 = thread_cpu_now();
      for (int h = 0; h < cf.n_kv_heads; h++) {
        const size_t off = (size_t)h * g * D;
        if (way)
          kvm_cache_attend_batch(c, 0, h, q + off, qd, g, pos0, nb, 0, 0.125f, o + off, sb);
        else
          for (int t = 0; t < nb; t++)
            for (int j = 0; j < g; j++)
              kvm_cache_attend_head(c, 0, h, q + t * qd + off + (size_t)j * D, pos0 + t, 0, 0.125f,
                                    o + t * qd + off + (size_t)j * D, s1);
      }
      double us = (thread_cpu_now() - t0) * 1e6 / ((double)nb * g * cf.n_kv_heads);
      if (us < best[way]) best[way] = us;
    }
  printf("%8d %16.2f %16.2f %8.2f\n", n, best[0], best[1], best[0] / best[1]);
  free(k); free(v); free(q); free(o); free(s1); free(sb);
  kvm_cache_free(c);
}

int main(int argc, char **argv) {
  const char *model = NULL;
  int threads = 2, reps = 1, n_ctx = 0, only = -1, lens[16], n_lens = 0, attn = 0;
  for (int i = 1; i < argc; i++) {
    const char *v = i + 1 < argc ? argv[i + 1] : "";
    if (!strcmp(argv[i], "-m")) model = v, i++;
    else if (!strcmp(argv[i], "-t")) threads = atoi(v), i++;
    else if (!strcmp(argv[i], "-r")) reps = atoi(v), i++;
    else if (!strcmp(argv[i], "--ctx")) n_ctx = atoi(v), i++;
    else if (!strcmp(argv[i], "--only")) only = !strcmp(v, "kvm"), i++;
    else if (!strcmp(argv[i], "--attn")) attn = 1;
    else if (!strcmp(argv[i], "--loops")) {
      int l = !strcmp(v, "portable") ? KVM_SIMD_PORTABLE : !strcmp(v, "avx2") ? KVM_SIMD_AVX2
              : !strcmp(v, "avx512") ? KVM_SIMD_AVX512 : -2;
      if (l == -2) {
        fprintf(stderr, "bench_prefill: --loops portable|avx2|avx512\n");
        return 2;
      }
      kvm_simd_force(l);
      i++;
    }
    else if (argv[i][0] != '-' && atoi(argv[i]) > 0 && n_lens < 16) lens[n_lens++] = atoi(argv[i]);
    else {
      fprintf(stderr, "usage: bench_prefill [-m MODEL] [-t THREADS] [-r REPS] [--ctx N] [--only dense|kvm] [--attn] "
                      "[--loops portable|avx2|avx512] [N ...]\n");
      return 2;
    }
  }
  if (!n_lens) lens[n_lens++] = 1024, lens[n_lens++] = 2048, lens[n_lens++] = 4096;
  if (reps < 1) reps = 1;
  for (int i = 0; i < n_lens; i++)
    if (lens[i] > n_ctx) n_ctx = lens[i];
  char mpath[4096];
  if (!model && eng_default_model_path(mpath, sizeof mpath) == 0) model = mpath;
  kv_err err;
  eng_model *m = NULL;
  if (eng_model_open(&m, model, &err)) {
    fprintf(stderr, "bench_prefill: %s\n", err.msg);
    return 1;
  }
  const eng_model_info *I = eng_model_get_info(m);
  if (I->n_ctx_train > 0 && n_ctx > I->n_ctx_train) {
    fprintf(stderr, "bench_prefill: %d tokens exceed the model's context %d\n", n_ctx, I->n_ctx_train);
    return 1;
  }
  kvm_config cfg;
  kvm_eng_config(&cfg, m, n_ctx, KVM_COMPRESSED);
  printf("bench_prefill: model %s (%s, %d layers, %d heads / %d KV heads of %d), n_ctx %d, %d threads, best of %d, "
         "kernels %s, attention loops %s\n",
         I->name, I->arch, I->n_layer, I->n_head, I->n_head_kv, I->head_dim, n_ctx, threads, reps, krn_isa_name(),
         kvm_simd_name(kvm_simd_level()));
  printf("compressed: sinks %d, window %d, block %d, top-k %d, keys int%d, values int%d\n", cfg.sinks, cfg.window,
         cfg.block, cfg.top_k, cfg.key_bits, cfg.val_bits);
  if (attn) {
    printf("compressed attention alone, last 64 positions, one thread, CPU us/query:\n");
    printf("%8s %16s %16s %8s\n", "tokens", "per query", "batched", "speedup");
    for (int i = 0; i < n_lens; i++) attn_only(&cfg, I->n_head / I->n_head_kv, lens[i]);
    eng_model_free(m);
    return 0;
  }
  int32_t *toks = malloc(sizeof *toks * (size_t)n_ctx);
  if (!toks) return 1;
  unsigned s = 12345;
  for (int i = 0; i < n_ctx; i++) {
    s = s * 1103515245u + 12345u;
    toks[i] = (int32_t)((s >> 8) % (unsigned)I->n_vocab);
  }
  printf("%8s %14s %14s %8s   %18s %18s %8s\n", "tokens", "dense tok/s", "kvmem tok/s", "ratio", "dense tok/cpu-s",
         "kvmem tok/cpu-s", "ratio");
  int bad = 0;
  for (int i = 0; i < n_lens; i++) {
    double best[2] = {0, 0}, bcpu[2] = {0, 0};
    for (int kvm = 0; kvm < 2; kvm++) {
      if (only >= 0 && only != kvm) continue;
      for (int r = 0; r < reps; r++) {
        double cpu = 0, t = prefill_s(m, toks, lens[i], n_ctx, threads, kvm, &cpu);
        if (t <= 0) {
          bad = 1;
          break;
        }
        if (lens[i] / t > best[kvm]) best[kvm] = lens[i] / t;
        if (cpu > 0 && lens[i] / cpu > bcpu[kvm]) bcpu[kvm] = lens[i] / cpu;
      }
    }
    printf("%8d %14.1f %14.1f %8.2f   %18.1f %18.1f %8.2f\n", lens[i], best[0], best[1],
           best[0] > 0 ? best[1] / best[0] : 0.0, bcpu[0], bcpu[1], bcpu[0] > 0 ? bcpu[1] / bcpu[0] : 0.0);
    fflush(stdout);
  }
  free(toks);
  eng_model_free(m);
  return bad;
}
