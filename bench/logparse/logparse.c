/*
 * bench_logparse DIR — parser accuracy and speed on any directory in LogHub
 * layout (<System>/<System>_2k.log + <System>_2k.log_structured.csv). Prints
 * one row per system: grouping accuracy (GA), parsing accuracy (PA), groups
 * found vs. true groups, parse time; then the average and the minimum. No
 * per-system configuration is given to the parser. Exit 1 if no system found.
 */
#include "logs/logs.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help")) {
    printf("usage: bench_logparse DIR   (LogHub layout: DIR/<Sys>/<Sys>_2k.log + _structured.csv)\n");
    return argc < 2 ? 2 : 0;
  }
  DIR *d = opendir(argv[1]);
  if (!d) {
    fprintf(stderr, "bench_logparse: cannot open %s\n", argv[1]);
    return 1;
  }
  char *names[256];
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < 256)
    if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
  closedir(d);
  qsort(names, n, sizeof *names, cmp);
  printf("%-12s %6s %6s %7s %7s %8s\n", "system", "GA", "PA", "groups", "truth", "ms");
  double sga = 0, spa = 0, min = 1;
  int k = 0;
  for (int i = 0; i < n; i++) {
    char lp[4096], cp[4096];
    snprintf(lp, sizeof lp, "%s/%s/%s_2k.log", argv[1], names[i], names[i]);
    snprintf(cp, sizeof cp, "%s/%s/%s_2k.log_structured.csv", argv[1], names[i], names[i]);
    FILE *t = fopen(lp, "r");
    if (!t) continue;
    fclose(t);
    log_eval ev;
    kv_err err = {0};
    if (log_eval_loghub(lp, cp, &ev, &err)) {
      fprintf(stderr, "%s: %s\n", names[i], err.msg);
      continue;
    }
    printf("%-12s %6.3f %6.3f %7zu %7zu %8.1f\n", names[i], ev.ga, ev.pa, ev.groups, ev.truth_groups,
           ev.seconds * 1e3);
    sga += ev.ga, spa += ev.pa, k++;
    if (ev.ga < min) min = ev.ga;
  }
  for (int i = 0; i < n; i++) free(names[i]);
  if (!k) {
    fprintf(stderr, "bench_logparse: no <Sys>/<Sys>_2k.log under %s\n", argv[1]);
    return 1;
  }
  printf("%-12s %6.3f %6.3f   (min GA %.3f over %d systems)\n", "average", sga / k, spa / k, min, k);
  return 0;
}
