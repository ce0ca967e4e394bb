/*
 * bench_engine.c — kvasir's engine against llama-bench (llama.cpp built by
 * scripts/build-llama-ref) on the same GGUF files, same thread count, same
 * machine, same run. Prints prompt-processing (pp) and generation (tg)
 * tokens/s for both with the ratio kvasir/llama.cpp (goals: tg >= 1.0x,
 * pp >= 0.8x), and each side's peak RSS against the model file size.
 * Each measurement runs in its own child process so peak RSS is per model.
 *
 * usage: bench_engine [-t THREADS] [--pp N] [--tg N] [-r REPS] [--json] [MODEL.gguf ...]
 *   default models: smollm2 and gemma3 from scripts/fetch-model --path.
 * Method (as llama-bench): pp = one batch of N random tokens from an empty
 * cache; tg = N single-token evaluations from an empty cache; mean of REPS
 * runs after one warm-up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>


#include "bench/common/bench_proc.h"
#include "engine/engine.h"

typedef struct res {
  double pp, tg;
  size_t rss, file;
  int ok;
} res;

static void kvasir_child(const char *path, int threads, int pp, int tg, int reps, int wfd) {
  res r = {0};
  eng_model *m;
  kv_err err = {0};
  if (eng_model_open(&m, path, &err)) { fprintf(stderr, "bench_engine: %s\n", err.msg); _exit(1); }
  eng_ctx_params cp = {pp + tg + 8, threads, NULL, NULL};
  eng_ctx *c;
  if (eng_ctx_create(&c, m, &cp, &err)) { fprintf(stderr, "bench_engine: %s\n", err.msg); _exit(1); }
  int32_t *toks = malloc((size_t)pp * sizeof *toks);
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < pp; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    toks[i] = (int32_t)(x % (uint64_t)eng_n_vocab(m));
  }
  eng_ctx_eval(c, toks, (size_t)(pp < 16 ? pp : 16), 0, &err); /* warm-up */
  for (int rep = 0; rep < reps; rep++) {
    eng_ctx_truncate(c, 0);
    double t0 = kv_now();
    if (eng_ctx_eval(c, toks, (size_t)pp, 0, &err)) _exit(1);
    r.pp += pp / (kv_now() - t0) / reps;
    eng_ctx_truncate(c, 0);
    t0 = kv_now();
    for (int i = 0; i < tg; i++)
      if (eng_ctx_eval(c, &toks[i % pp], 1, 0, &err)) _exit(1);
    r.tg += tg / (kv_now() - t0) / reps;
  }
  r.file = eng_model_get_info(m)->file_size;
  r.ok = 1;
  if (write(wfd, &r, sizeof r) != (ssize_t)sizeof r) _exit(1);
  _exit(0);
}

static res bench_kvasir(const char *path, int threads, int pp, int tg, int reps) {
  res r = {0};
  int fd[2];
  if (pipe(fd)) return r;
  pid_t pid = fork();
  if (pid == 0) {
    close(fd[0]);
    kvasir_child(path, threads, pp, tg, reps, fd[1]);
  }
  close(fd[1]);
  if (read(fd[0], &r, sizeof r) != (ssize_t)sizeof r) r.ok = 0;
  close(fd[0]);
  int st;
  struct rusage ru;
  wait4(pid, &st, 0, &ru);
  r.rss = (size_t)ru.ru_maxrss * 1024;
  return r;
}

static res bench_llama(const char *bin, const char *path, int threads, int pp, int tg, int reps) {
  res r = {0};
  r.ok = llama_bench("bench_engine", bin, path, threads, pp, tg, reps, &r.pp, &r.tg, &r.rss) == 0;
  return r;
}


int main(int argc, char **argv) {
  int threads = 2, pp = 128, tg = 32, reps = 3, json = 0, nm = 0;
  const char *models[8];
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--pp") && i + 1 < argc) pp = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--tg") && i + 1 < argc) tg = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--json")) json = 1;
    else if (!strcmp(argv[i], "--help")) { printf("usage: bench_engine [-t N] [--pp N] [--tg N] [-r N] [--json] [MODEL...]\n"); return 0; }
    else if (nm < 8) models[nm++] = argv[i];
  }
  char src[4096], cmd[8192], bin[4096];
  snprintf(src, sizeof src, "%s", getenv("KVASIR_SOURCE_DIR") ? getenv("KVASIR_SOURCE_DIR") : KVASIR_SOURCE_DIR);
  static char paths[2][4096];
  if (!nm) {
    const char *names[2] = {"smollm2", "gemma3"};
    for (int i = 0; i < 2; i++) {
      snprintf(cmd, sizeof cmd, "'%s/scripts/fetch-model' --path %s", src, names[i]);
      if (sh_line(cmd, paths[i], sizeof paths[i])) { fprintf(stderr, "bench_engine: no path for %s\n", names[i]); return 1; }
      models[nm++] = paths[i];
    }
  }
  snprintf(cmd, sizeof cmd, "'%s/scripts/build-llama-ref'", src);
  fprintf(stderr, "bench_engine: building/finding llama.cpp tools (scripts/build-llama-ref)...\n");
  if (sh_line(cmd, bin, sizeof bin)) { fprintf(stderr, "bench_engine: scripts/build-llama-ref failed\n"); return 1; }
  if (json) printf("[");
  else printf("%-34s %9s %9s %6s | %8s %8s %6s | %-22s %-22s\n", "model (threads)", "pp kvasir", "pp llama", "ratio",
              "tg kvasir", "tg llama", "ratio", "RSS/file kvasir", "RSS/file llama");
  int rc = 0;
  for (int i = 0; i < nm; i++) {
    res k = bench_kvasir(models[i], threads, pp, tg, reps), l = bench_llama(bin, models[i], threads, pp, tg, reps);
    if (!k.ok || !l.ok) { fprintf(stderr, "bench_engine: %s: a run failed\n", models[i]); rc = 1; continue; }
    const char *base = strrchr(models[i], '/') ? strrchr(models[i], '/') + 1 : models[i];
    if (json)
      printf("%s{\"model\":\"%s\",\"threads\":%d,\"pp\":%d,\"tg\":%d,\"kvasir_pp\":%.3f,\"llama_pp\":%.3f,\"pp_ratio\":%.3f,"
             "\"kvasir_tg\":%.3f,\"llama_tg\":%.3f,\"tg_ratio\":%.3f,\"kvasir_rss\":%zu,\"llama_rss\":%zu,\"file\":%zu}",
             i ? "," : "", base, threads, pp, tg, k.pp, l.pp, k.pp / l.pp, k.tg, l.tg, k.tg / l.tg, k.rss, l.rss, k.file);
    else {
      char a[64], b[64], name[64];
      snprintf(name, sizeof name, "%.28s (%d)", base, threads);
      snprintf(a, sizeof a, "%.0f/%.0f MiB %.2fx", k.rss / 1048576.0, k.file / 1048576.0, (double)k.rss / k.file);
      snprintf(b, sizeof b, "%.0f/%.0f MiB %.2fx", l.rss / 1048576.0, k.file / 1048576.0, (double)l.rss / k.file);
      printf("%-34s %9.1f %9.1f %5.2fx | %8.1f %8.1f %5.2fx | %-22s %-22s\n", name, k.pp, l.pp, k.pp / l.pp, k.tg,
             l.tg, k.tg / l.tg, a, b);
    }
    fflush(stdout);
  }
  if (json) printf("]\n");
  return rc;
}
