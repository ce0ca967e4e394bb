/*
 * bench_proc.h — running a reference tool from a bench program: its stdout
 * captured and its peak RSS (run_cmd), llama.cpp's llama-bench on a model
 * (llama_bench), or the last line a shell command prints (sh_line). Shared
 * by bench_engine and bench_pro.
 */
#ifndef KVASIR_BENCH_PROC_H
#define KVASIR_BENCH_PROC_H
#include <stdio.h>
#include <sys/resource.h>

#include <cjson/cJSON.h>
#include <sys/wait.h>
#include <unistd.h>

/* argv[0] run with stdout into out (NUL-terminated, at most cap-1 bytes),
 * stderr discarded; *rss its peak resident set. 0 when it exited 0. */
static inline int run_cmd(char *const argv[], char *out, size_t cap, size_t *rss) {
  int fd[2];
  if (pipe(fd)) return -1;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(fd[1], 1);
    close(fd[0]);
    close(fd[1]);
    if (!freopen("/dev/null", "w", stderr)) _exit(127);
    execv(argv[0], argv);
    _exit(127);
  }
  close(fd[1]);
  size_t n = 0;
  ssize_t k;
  while (n + 1 < cap && (k = read(fd[0], out + n, cap - 1 - n)) > 0) n += (size_t)k;
  out[n] = 0;
  close(fd[0]);
  int st;
  struct rusage ru;
  wait4(pid, &st, 0, &ru);
  *rss = (size_t)ru.ru_maxrss * 1024;
  return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* bin/llama-bench -m path -t threads -p pp -n tg -r reps -o json: its
 * prompt and generation tokens/s and peak RSS. 0 when it ran and reported
 * both; else a message naming the program on stderr (who: the bench). */
static inline int llama_bench(const char *who, const char *bin, const char *path, int threads, int pp, int tg, int reps,
                              double *pp_ts, double *tg_ts, size_t *rss) {
  char exe[4200], t[16], p[16], n[16], rr[16];
  snprintf(exe, sizeof exe, "%s/llama-bench", bin);
  snprintf(t, sizeof t, "%d", threads);
  snprintf(p, sizeof p, "%d", pp);
  snprintf(n, sizeof n, "%d", tg);
  snprintf(rr, sizeof rr, "%d", reps);
  char *argv[] = {exe, "-m", (char *)path, "-t", t, "-p", p, "-n", n, "-r", rr, "-o", "json", NULL};
  static char out[1 << 20];
  *pp_ts = *tg_ts = 0;
  if (run_cmd(argv, out, sizeof out, rss)) {
    fprintf(stderr, "%s: %s failed\n", who, exe);
    return -1;
  }
  cJSON *j = cJSON_Parse(out), *e;
  cJSON_ArrayForEach(e, j) {
    double ts = cJSON_GetNumberValue(cJSON_GetObjectItem(e, "avg_ts"));
    if (cJSON_GetNumberValue(cJSON_GetObjectItem(e, "n_prompt")) > 0) *pp_ts = ts;
    else *tg_ts = ts;
  }
  cJSON_Delete(j);
  return *pp_ts > 0 && *tg_ts > 0 ? 0 : -1;
}

/* The last line cmd prints (without '\n') into buf; 0 when it exited 0 and printed one. */
static inline int sh_line(const char *cmd, char *buf, size_t n) {
  FILE *f = popen(cmd, "r");
  if (!f) return -1;
  buf[0] = 0;
  char line[4096];
  while (fgets(line, sizeof line, f)) snprintf(buf, n, "%s", line); /* keep the last line */
  int rc = pclose(f);
  buf[strcspn(buf, "\n")] = 0;
  return rc == 0 && buf[0] ? 0 : -1;
}
#endif
