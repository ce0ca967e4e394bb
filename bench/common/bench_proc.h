/*
 * bench_proc.h — running a reference tool from a bench program: its stdout
 * captured and its peak RSS (run_cmd), or the last line a shell command
 * prints (sh_line). Shared by bench_engine and bench_pro.
 */
#ifndef KVASIR_BENCH_PROC_H
#define KVASIR_BENCH_PROC_H
#include <stdio.h>
#include <sys/resource.h>
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
