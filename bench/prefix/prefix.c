/*
 * bench_prefix — a repository prefix (source files as segments, ~4k tokens)
 * reused through kvm_store. Time to first token (the question's logits):
 *   cold: evaluate prefix + question in a fresh context;
 *   RAM:  store lookup + copy-on-write fork + evaluate the question;
 *   disk: a new store (as after a restart) finds the snapshot, mmaps and
 *         verifies it, forks, evaluates the question.
 * Prints both ratios against cold (bars: RAM <= 5%, disk <= 15%), and the
 * load alone (store open + lookup + fork, no question) against the cold
 * build of the prefix alone. It goes through the calls the daemon uses
 * (kvm_eng_prefix_save / kvm_eng_prefix_load, engine/kvmem_eng.h). The disk
 * case runs twice: with the snapshot in the page cache (it was just
 * written) and with its pages evicted first (fdatasync + POSIX_FADV_DONTNEED
 * on every file of the snapshot directory), so it is read from the device
 * as after a reboot.
 *
 * usage: bench_prefix [-m MODEL] [--tokens N] [--dir REPO] [--mode full|compressed] [-t THREADS] [--reps N]
 */
#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/kvmem_eng.h"

static const char *QUESTION = "\n\nQuestion: which file writes the KV snapshot header?\nAnswer:";

/* Drops the page-cache pages of every file in dir (best effort). */
static void evict_dir(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *de;
  while (d && (de = readdir(d))) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) continue;
    fdatasync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
  }
  if (d) closedir(d);
}

int main(int argc, char **argv) {
  const char *model = NULL, *dir = KVASIR_SOURCE_DIR, *mode = "compressed";
  int want = 4096, threads = 0, reps = 3;
  for (int i = 1; i < argc; i++) {
    const char *v = i + 1 < argc ? argv[i + 1] : "";
    if (!strcmp(argv[i], "-m")) model = v, i++;
    else if (!strcmp(argv[i], "--tokens")) want = atoi(v), i++;
    else if (!strcmp(argv[i], "--dir")) dir = v, i++;
    else if (!strcmp(argv[i], "--mode")) mode = v, i++;
    else if (!strcmp(argv[i], "-t")) threads = atoi(v), i++;
    else if (!strcmp(argv[i], "--reps")) reps = atoi(v), i++;
    else {
      fprintf(stderr, "usage: bench_prefix [-m MODEL] [--tokens N] [--dir REPO] [--mode full|compressed] [-t N] [--reps N]\n");
      return 2;
    }
  }
  char mpath[4096], pat[4200], snapdir[] = "/tmp/kvm-prefix-XXXXXX";
  if (!model && eng_default_model_path(mpath, sizeof mpath) == 0) model = mpath;
  kv_err err;
  eng_model *m;
  if (eng_model_open(&m, model, &err)) { fprintf(stderr, "bench_prefix: %s\n", err.msg); return 1; }
  /* segments: the repo's engine/ and base/ sources, one per file, until ~want tokens */
  int32_t *toks = malloc(sizeof(int32_t) * ((size_t)want + 8192));
  kvm_segment segs[256];
  int ns = 0;
  size_t nt = 0;
  int32_t bos = eng_token_bos(m);
  glob_t g;
  snprintf(pat, sizeof pat, "%s/*/*.[ch]", dir);
  if (glob(pat, 0, NULL, &g) || !toks) { fprintf(stderr, "bench_prefix: no sources under %s\n", dir); return 1; }
  if (bos >= 0) {
    toks[nt] = bos;
    segs[ns++] = (kvm_segment){toks, 1};
    nt = 1;
  }
  for (size_t i = 0; i < g.gl_pathc && nt < (size_t)want && ns < 256; i++) {
    char *t;
    size_t tl, n;
    if (kv_read_file(g.gl_pathv[i], 1 << 22, &t, &tl, &err)) continue;
    int rc = eng_tokenize(m, t, tl, 0, 0, toks + nt, (size_t)want - nt, &n, &err);
    free(t);
    if (rc == KV_ELIMIT) n = (size_t)want - nt;
    else if (rc) continue;
    segs[ns++] = (kvm_segment){toks + nt, n};
    nt += n;
  }
  globfree(&g);
  int32_t q[256];
  size_t nq;
  if (eng_tokenize(m, QUESTION, strlen(QUESTION), 0, 0, q, 256, &nq, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
  const eng_model_info *I = eng_model_get_info(m);
  int n_ctx = (int)(nt + nq + 16);
  kvm_config cfg;
  kvm_eng_config(&cfg, m, n_ctx, strcmp(mode, "full") ? KVM_COMPRESSED : KVM_FULL);
  eng_ctx_params p;
  eng_ctx_params_default(&p);
  p.n_ctx = n_ctx;
  p.n_threads = threads;
  printf("bench_prefix: model %s, prefix %zu tokens in %d segments (files), question %zu tokens, %s memory\n", I->name,
         nt, ns, nq, mode);
  if (!mkdtemp(snapdir)) { perror("mkdtemp"); return 1; }
  double cold = 1e30, ram = 1e30, disk = 1e30, disk_cold = 1e30;
  int32_t *all = malloc(sizeof(int32_t) * (nt + nq));
  memcpy(all, toks, nt * sizeof *all);
  memcpy(all + nt, q, nq * sizeof *all);
  eng_ctx *c;
  /* cold (best of reps would take too long at 4k: one run): the prefix,
   * then the question */
  if (kvm_eng_ctx_create(&c, m, &p, &cfg, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
  double t0 = kv_now();
  if (eng_ctx_eval(c, all, nt, 0, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
  double build = kv_now() - t0;
  if (eng_ctx_eval(c, all + nt, nq, 0, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
  cold = kv_now() - t0;
  /* keep the prefix (the context holds exactly it after the truncation) */
  eng_ctx_truncate(c, (int)nt);
  kvm_store *st;
  double load = 1e30, load_cold = 1e30;
  if (kvm_eng_store_open(&st, c, (size_t)1 << 31, snapdir, &err) || kvm_eng_prefix_save(c, st, segs, ns, &err)) {
    fprintf(stderr, "bench_prefix: %s\n", err.msg);
    return 1;
  }
  size_t resident = kvm_store_bytes(st);
  for (int r = 0; r < reps; r++) { /* RAM */
    eng_ctx_truncate(c, 0);
    t0 = kv_now();
    size_t ntok;
    if (kvm_eng_prefix_load(c, st, segs, ns, &ntok, NULL, &err) || eng_ctx_eval(c, q, nq, 0, &err)) {
      fprintf(stderr, "bench_prefix: %s\n", err.msg);
      return 1;
    }
    double dt = kv_now() - t0;
    if (dt < ram) ram = dt;
  }
  kvm_store_free(st);
  for (int r = 0; r < 2 * reps; r++) { /* disk, a fresh store each time; evicted first in odd runs */
    int evicted = r & 1, disk_hit = 0;
    if (evicted) evict_dir(snapdir);
    eng_ctx_truncate(c, 0);
    t0 = kv_now();
    size_t ntok;
    if (kvm_eng_store_open(&st, c, (size_t)1 << 31, snapdir, &err) ||
        kvm_eng_prefix_load(c, st, segs, ns, &ntok, &disk_hit, &err)) {
      fprintf(stderr, "bench_prefix: %s\n", err.msg);
      return 1;
    }
    double tl = kv_now() - t0;
    if (eng_ctx_eval(c, q, nq, 0, &err)) {
      fprintf(stderr, "bench_prefix: %s\n", err.msg);
      return 1;
    }
    double dt = kv_now() - t0;
    if (evicted && dt < disk_cold) disk_cold = dt, load_cold = tl;
    if (!evicted && dt < disk) disk = dt, load = tl;
    if (!disk_hit || ntok != nt) fprintf(stderr, "bench_prefix: expected the whole prefix from a disk snapshot\n");
    kvm_store_free(st);
  }
  printf("resident prefix: %.1f MiB (%.0f bytes/token)\n", resident / 1048576.0, (double)resident / nt);
  printf("time to first token: cold %.3f s, from RAM %.4f s, from disk snapshot %.4f s (page cache warm), %.4f s "
         "(evicted)\n",
         cold, ram, disk, disk_cold);
  printf("ratio RAM/cold:  %.4f (bar <= 0.05)\n", ram / cold);
  printf("ratio disk/cold: %.4f (bar <= 0.15; page cache warm), %.4f (evicted)\n", disk / cold, disk_cold / cold);
  printf("prefix alone: cold build %.3f s, load from snapshot %.4f s (page cache warm), %.4f s (evicted); "
         "ratio %.4f, %.4f\n", build, load, load_cold, load / build, load_cold / build);
  eng_ctx_free(c);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", snapdir);
  if (system(cmd)) fprintf(stderr, "bench_prefix: could not remove %s\n", snapdir);
  free(all);
  free(toks);
  eng_model_free(m);
  return 0;
}
