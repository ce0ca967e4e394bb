/*
 * bench_indexer — is kv_indexer fast and small enough on a real tree?
 *
 *   bench_indexer [TREE]    (TREE: a git repository; default: a fresh copy of
 *                            the Django sdist from bench/indexer/prepare-tree)
 *
 * In one run, on the same tree: universal-ctags -R (the reference), then a
 * full index (tree-sitter symbols + chunks + FTS5 + trigram) into a fresh
 * database, then a re-index with nothing changed, then a re-index after a
 * one-file commit. Prints wall and CPU seconds, MB/s, files/s, the ratios
 * against ctags, peak RSS, and each goal of the indexer issue with PASS/MISS:
 *   full index <= 1.5x ctags' time; peak RSS <= 1 GB; no-change re-index
 *   <= 2% of the full index; one-file commit -> exactly one blob parsed, < 1 s.
 * Also prints, as a diagnostic, the CPU time of parsing alone (no SQLite).
 * The tree is modified (one commit); use a scratch copy.
 */
#include "indexer/indexer.h"
#include "indexer/parse_internal.h" /* private: for the parse-only diagnostic */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static double cpu_self(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
}

/* Run ctags -R on tree; wall and CPU seconds of the child. */
static int run_ctags(const char *tree, const char *tagfile, double *wall, double *cpu) {
  double t0 = kv_now();
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    if (chdir(tree) != 0) _exit(127);
    if (!freopen("/dev/null", "w", stderr)) _exit(127); /* ctags warns per odd tag */
    execlp("ctags", "ctags", "-R", "--exclude=.git", "-f", tagfile, ".", (char *)NULL);
    _exit(127);
  }
  int st;
  struct rusage ru;
  if (wait4(pid, &st, 0, &ru) < 0) return -1;
  *wall = kv_now() - t0;
  *cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
         ru.ru_stime.tv_usec / 1e6;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static const char *verdict(int ok) { return ok ? "PASS" : "MISS"; }

int main(int argc, char **argv) {
  char tree[4096];
  int made_tree = argc <= 1; /* ours to delete at the end */
  if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    printf("usage: bench_indexer [TREE]   (a git repository; default: prepare-tree django)\n");
    return 0;
  }
  if (argc > 1) {
    snprintf(tree, sizeof tree, "%s", argv[1]);
  } else {
    FILE *p = popen(KVASIR_SOURCE_DIR "/bench/indexer/prepare-tree django", "r");
    if (!p || !fgets(tree, sizeof tree, p)) {
      fprintf(stderr, "bench_indexer: prepare-tree django failed (needs pip and PyPI, or a cached sdist)\n");
      if (p) pclose(p);
      return 1;
    }
    pclose(p);
    tree[strcspn(tree, "\n")] = 0;
  }
  char tmp[] = "/tmp/kvasir-bench-idx.XXXXXX";
  if (!mkdtemp(tmp)) return 1;
  char db[4200], tags[4200];
  snprintf(db, sizeof db, "%s/index.db", tmp);
  snprintf(tags, sizeof tags, "%s/tags", tmp);

  /* 1. kvasir full index (first, so peak RSS is ours alone) */
  idx_options o = {0};
  o.db_path = db;
  idx_index *ix;
  kv_err err;
  if (idx_open(&ix, tree, &o, &err) != 0) {
    fprintf(stderr, "bench_indexer: %s\n", err.msg);
    return 1;
  }
  idx_sync_stats full, noop, one;
  double c0 = cpu_self(), t0 = kv_now();
  if (idx_sync(ix, 0, NULL, NULL, NULL, &full, &err) != 0) {
    fprintf(stderr, "bench_indexer: %s\n", err.msg);
    return 1;
  }
  double kv_wall = kv_now() - t0, kv_cpu = cpu_self() - c0;
  size_t rss = kv_peak_rss();

  /* 2. nothing changed */
  t0 = kv_now();
  if (idx_sync(ix, 0, NULL, NULL, NULL, &noop, &err) != 0) {
    fprintf(stderr, "bench_indexer: %s\n", err.msg);
    return 1;
  }
  double noop_wall = kv_now() - t0;

  /* 3. one-file commit: append a line to the first indexed source file */
  idx_file_list fl;
  const char *victim = NULL;
  if (idx_files(ix, IDX_FILES_INDEXED, &fl, &err) == 0)
    for (size_t i = 0; i < fl.n && !victim; i++)
      if (fl.v[i].lang[0]) victim = fl.v[i].path;
  if (!victim) {
    fprintf(stderr, "bench_indexer: no source file to edit in %s\n", tree);
    return 1;
  }
  char cmd[9000];
  snprintf(cmd, sizeof cmd,
           "cd '%s' && printf '\\n' >> '%s' && git -c user.name=bench -c user.email=b@kvasir.invalid commit -qam edit",
           tree, victim);
  if (system(cmd) != 0) {
    fprintf(stderr, "bench_indexer: cannot commit in %s\n", tree);
    return 1;
  }
  t0 = kv_now();
  if (idx_sync(ix, 0, NULL, NULL, NULL, &one, &err) != 0) {
    fprintf(stderr, "bench_indexer: %s\n", err.msg);
    return 1;
  }
  double one_wall = kv_now() - t0;
  idx_close(ix);

  /* 3b. diagnostic: parsing alone (tree-sitter, tags query, chunks), one
   * thread, no SQLite — the floor under the full index on this tree */
  double parse_cpu = 0, ts_cpu = 0;
  {
    idx_langset *ls;
    idx_parser *ps;
    if (idx_langset_new(&ls, &err) == 0 && idx_parser_new(&ps, ls) == 0) {
      double p0 = cpu_self();
      for (size_t i = 0; i < fl.n; i++) {
        char full[8192], *buf;
        size_t len;
        snprintf(full, sizeof full, "%s/%s", tree, fl.v[i].path);
        if (kv_read_file(full, 1u << 20, &buf, &len, &err) != 0) continue;
        idx_parsed r;
        if (idx_parse(ps, fl.v[i].lang[0] ? fl.v[i].lang : NULL, buf, len, &r) == 0) idx_parsed_free(&r);
        free(buf);
      }
      parse_cpu = cpu_self() - p0;
      /* the grammar alone: what any tree-sitter indexer pays */
      p0 = cpu_self();
      for (size_t i = 0; i < fl.n; i++) {
        char full[8192], *buf;
        size_t len;
        if (!fl.v[i].lang[0]) continue;
        snprintf(full, sizeof full, "%s/%s", tree, fl.v[i].path);
        if (kv_read_file(full, 1u << 20, &buf, &len, &err) != 0) continue;
        idx_parse_syntax_only(ps, fl.v[i].lang, buf, len);
        free(buf);
      }
      ts_cpu = cpu_self() - p0;
      idx_parser_free(ps);
      idx_langset_free(ls);
    }
  }

  /* 4. the reference */
  double ct_wall = 0, ct_cpu = 0;
  int have_ctags = run_ctags(tree, tags, &ct_wall, &ct_cpu) == 0;

  double mb = (double)full.bytes_indexed / 1e6;
  printf("tree: %s\n", tree);
  printf("files: %llu in HEAD, %llu indexed (%.1f MB); %llu symbols, %llu refs, %llu chunks\n",
         (unsigned long long)full.files, (unsigned long long)full.files_indexed, mb,
         (unsigned long long)full.symbols, (unsigned long long)full.refs, (unsigned long long)full.chunks);
  printf("%-26s %8s %8s %8s %9s\n", "", "wall s", "cpu s", "MB/s", "files/s");
  if (have_ctags)
    printf("%-26s %8.2f %8.2f %8.1f %9.0f\n", "universal-ctags -R", ct_wall, ct_cpu, mb / ct_wall,
           (double)full.files_indexed / ct_wall);
  else
    printf("%-26s (ctags not found: apt-get install universal-ctags)\n", "universal-ctags -R");
  printf("%-26s %8.2f %8.2f %8.1f %9.0f\n", "kvasir index (full)", kv_wall, kv_cpu, mb / kv_wall,
         (double)full.files_indexed / kv_wall);
  if (have_ctags)
    printf("ratio kvasir/ctags: wall %.2fx, cpu %.2fx   goal <= 1.5x wall: %s\n", kv_wall / ct_wall,
           kv_cpu / ct_cpu, verdict(kv_wall <= 1.5 * ct_wall));
  printf("time split of the full index (thread CPU s): plan+classify %.2f, parse threads %.2f,"
         " writer (SQLite + FTS) %.2f, recency+meta %.2f\n",
         full.cpu_plan, full.cpu_parse, full.cpu_write, full.cpu_finish);
  printf("diagnostic: parsing alone (1 thread, no SQLite) %.2f s cpu = %.2fx ctags' cpu;"
         " of which tree-sitter's parse alone (no tags query, no chunks) %.2f s = %.2fx\n",
         parse_cpu, have_ctags ? parse_cpu / ct_cpu : 0.0, ts_cpu, have_ctags ? ts_cpu / ct_cpu : 0.0);
  printf("peak RSS: %.0f MB   goal <= 1024 MB: %s\n", (double)rss / 1048576.0, verdict(rss <= (1u << 30)));
  printf("re-index, nothing changed: %.3f s = %.2f%% of full   goal <= 2%%: %s\n", noop_wall,
         100.0 * noop_wall / kv_wall, verdict(noop_wall <= 0.02 * kv_wall));
  printf("re-index after a one-file commit (%s): %llu blob parsed, %llu paths examined, %.3f s"
         "   goal 1 blob, < 1 s: %s\n",
         victim, (unsigned long long)one.blobs_parsed, (unsigned long long)one.paths_changed, one_wall,
         verdict(one.blobs_parsed == 1 && one_wall < 1.0));
  idx_file_list_free(&fl);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
  if (system(cmd) != 0) return 1;
  if (made_tree) {
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tree);
    if (system(cmd) != 0) return 1;
  }
  return 0;
}
