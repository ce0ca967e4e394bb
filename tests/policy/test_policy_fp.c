/*
 * test_policy_fp.c — false positives of redaction on real text: this
 * repository's own sources (*.c, *.h, *.ts, *.mjs, *.lua, *.md, *.yaml,
 * *.sh, *.py, CMakeLists.txt and scripts/) are redacted file by file with
 * pol_redact_file, and the lines that changed are counted. At most 1% may;
 * the figure and the files with the most changed lines are printed (for
 * docs/policy.md). Planted secrets are left out by folder: the golden and
 * canary files (tests/reference/), fuzz corpora, build trees. Test sources
 * that plant secrets on purpose stay in (they count against the budget).
 * Skipped when the source tree is not where the build says.
 * KVASIR_FP_SHOW=1 prints every changed line.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "policy/policy.h"

typedef struct tally {
  size_t files, lines, changed;
  struct { char path[1024]; size_t changed; } worst[8];
} tally;

static int wanted(const char *name, const char *rel) {
  static const char *const EXT[] = {".c", ".h", ".ts", ".mjs", ".lua", ".md", ".yaml", ".yml", ".sh", ".py"};
  if (!strcmp(name, "CMakeLists.txt") || !strcmp(name, "Makefile") || !strncmp(rel, "scripts/", 8)) return 1;
  const char *dot = strrchr(name, '.');
  for (size_t i = 0; dot && i < sizeof EXT / sizeof *EXT; i++)
    if (!strcmp(dot, EXT[i])) return 1;
  return 0;
}

static int skipped_dir(const char *name, const char *rel) {
  return name[0] == '.' || !strncmp(name, "build", 5) || !strcmp(name, "node_modules") ||
         !strcmp(rel, "tests/reference") || !strcmp(rel, "tests/fuzz/corpus") || !strcmp(name, "out");
}

static void count_file(tally *t, const char *abs, const char *rel) {
  char *buf, *out;
  size_t len, olen;
  kv_err err;
  if (kv_read_file(abs, 8u << 20, &buf, &len, &err)) return;
  if (memchr(buf, 0, len)) { free(buf); return; } /* binary */
  assert_int_equal(pol_redact_file(rel, buf, len, &out, &olen, NULL, &err), 0);
  size_t changed = 0, lines = 0;
  const char *a = buf, *ae = buf + len, *b = out, *be = out + olen;
  while (a < ae || b < be) {
    const char *an = memchr(a, '\n', (size_t)(ae - a)), *bn = memchr(b, '\n', (size_t)(be - b));
    size_t al = an ? (size_t)(an - a) : (size_t)(ae - a), bl = bn ? (size_t)(bn - b) : (size_t)(be - b);
    assert_true((an == NULL) == (bn == NULL)); /* same line count */
    lines++;
    if (al != bl || memcmp(a, b, al)) {
      changed++;
      if (getenv("KVASIR_FP_SHOW")) fprintf(stderr, "%s:%zu: %.*s\n", rel, lines, (int)(al > 160 ? 160 : al), a);
    }
    a += al + (an ? 1 : 0), b += bl + (bn ? 1 : 0);
    if (!an && !bn) break;
  }
  t->files++, t->lines += lines, t->changed += changed;
  for (size_t i = 0; changed && i < 8; i++)
    if (changed > t->worst[i].changed) {
      memmove(&t->worst[i + 1], &t->worst[i], (7 - i) * sizeof t->worst[0]);
      snprintf(t->worst[i].path, sizeof t->worst[i].path, "%s", rel);
      t->worst[i].changed = changed;
      break;
    }
  free(buf), free(out);
}

static void walk(tally *t, const char *root, const char *rel, int depth) {
  char dirpath[2048];
  snprintf(dirpath, sizeof dirpath, "%s%s%s", root, rel[0] ? "/" : "", rel);
  DIR *d = opendir(dirpath);
  if (!d || depth > 12) {
    if (d) closedir(d);
    return;
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    char r[1024], abs[3072];
    snprintf(r, sizeof r, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
    snprintf(abs, sizeof abs, "%s/%s", root, r);
    struct stat st;
    if (lstat(abs, &st)) continue;
    if (S_ISDIR(st.st_mode)) {
      if (!skipped_dir(e->d_name, r)) walk(t, root, r, depth + 1);
    } else if (S_ISREG(st.st_mode) && wanted(e->d_name, r)) {
      count_file(t, abs, r);
    }
  }
  closedir(d);
}

static void own_sources(void **state) {
  (void)state;
  struct stat st;
  if (stat(KVASIR_SOURCE_DIR "/policy/policy.h", &st)) {
    fprintf(stderr, "sources not found at %s: skipped\n", KVASIR_SOURCE_DIR);
    skip();
  }
  tally t;
  memset(&t, 0, sizeof t);
  walk(&t, KVASIR_SOURCE_DIR, "", 0);
  double pct = t.lines ? 100.0 * (double)t.changed / (double)t.lines : 0;
  fprintf(stderr, "false positives: %zu of %zu lines changed (%.3f%%) in %zu files\n", t.changed, t.lines, pct, t.files);
  for (size_t i = 0; i < 8 && t.worst[i].changed; i++) fprintf(stderr, "  %5zu  %s\n", t.worst[i].changed, t.worst[i].path);
  assert_true(t.files >= 100); /* the walk really saw the tree */
  assert_true(t.changed * 100 <= t.lines);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(own_sources)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
