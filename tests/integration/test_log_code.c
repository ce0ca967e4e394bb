/*
 * test_log_code.c — kvasird's own log, linked back to kvasird's code.
 *
 * A daemon in temporary XDG dirs (verbose) is made to log: status, repo
 * add (with its sync), an ask with the stub generator, bad requests (an
 * unknown method, a repo.add of a missing path), SIGHUP, shutdown. Its log
 * is copied into a temporary git repository that holds a copy of daemon/
 * ipc/ base/; a second daemon indexes that repository, ingests the log
 * (logs.ingest) and triages it with `repo` (logs.triage): every template
 * with constant text must link, first, to the dmn_log call that wrote it,
 * and `kvasir logs triage --repo --json` must give the same links.
 *
 * The truth does not come from the matcher: each dmn_log call of the copy
 * is read here (event literal, format literal(s), the line the format
 * starts on), and a log line's site is the call of its event whose format,
 * as a glob (each printf specifier any text, '"' written as '\'' as
 * dmn_log does), matches its whole message. A template's sites are those
 * of its records (logs.query by template). Prints linked / correct / wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "itest.h"

static char root[64], repo[128];

static cJSON *call(const char *method, cJSON *params, kv_err *e) { return itest_call(method, params, 60000, e); }

static char *slurp(const char *path) {
  char *t;
  size_t n;
  kv_err e;
  return kv_read_file(path, 1 << 24, &t, &n, &e) ? NULL : t;
}

/* ---- the truth: dmn_log calls of the sources ---------------------------- */

typedef struct site {
  char file[64], event[48], pat[1024]; /* pat: the format, each specifier as '\1' */
  int line;
} site;
static site sites[256];
static int nsites;

/* Reads a C string literal at *p (after the quote) into out (escapes
 * decoded, '"' as '\'', specifiers as '\1'); returns after the closing quote. */
static const char *lit(const char *p, char *out, size_t *ol, size_t cap) {
  while (*p && *p != '"') {
    char c = *p++;
    if (c == '\\' && *p) {
      char d = *p++;
      c = d == 'n' ? ' ' : d == 't' ? '\t' : d;
    } else if (c == '%' && *p == '%') {
      p++;
    } else if (c == '%') {
      while (*p && strchr("-+ #0123456789.*hlLzjt", *p)) p++;
      if (*p) p++;
      c = '\1';
    }
    if (c == '"') c = '\'';
    if (*ol + 1 < cap) out[(*ol)++] = c;
  }
  out[*ol] = 0;
  return *p ? p + 1 : p;
}

static void read_sites(const char *rel) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", repo, rel);
  char *t = slurp(path);
  assert_non_null(t);
  for (const char *p = t; (p = strstr(p, "dmn_log(")); p += 8) {
    const char *q = strchr(p, '"');
    const char *stop = strpbrk(p, ";{");
    if (!q || (stop && stop < q)) continue; /* a declaration or the definition */
    site *s = &sites[nsites];
    memset(s, 0, sizeof *s);
    snprintf(s->file, sizeof s->file, "%s", rel);
    size_t el = 0;
    q = lit(q + 1, s->event, &el, sizeof s->event);
    while (*q == ' ' || *q == ',' || *q == '\n') q++;
    if (*q != '"') continue; /* the format is not a literal */
    s->line = 1;
    for (const char *r = t; r < q; r++) s->line += *r == '\n';
    size_t pl = 0;
    while (*q == '"') { /* adjacent literals */
      q = lit(q + 1, s->pat, &pl, sizeof s->pat);
      while (*q == ' ' || *q == '\n') q++;
    }
    if (nsites < 255) nsites++;
  }
  free(t);
}

/* Whole-string glob match, '\1' = any run. */
static int glob(const char *p, const char *s) {
  const char *star = NULL, *ss = NULL;
  while (*s) {
    if (*p == '\1') star = p++, ss = s;
    else if (*p == *s) p++, s++;
    else if (star) p = star + 1, s = ++ss;
    else return 0;
  }
  while (*p == '\1') p++;
  return *p == 0;
}

/* The sites of one log line ("ts=... level=... event=E msg=\"M\""): indexes
 * into sites[], -1 ended; passthrough set when only a bare "%s" matches. */
static int line_sites(const char *line, int *out, int max) {
  const char *ev = strstr(line, " event="), *msg = strstr(line, " msg=\"");
  int n = 0;
  if (!ev || !msg) return 0;
  char e[64], m[1100];
  snprintf(e, sizeof e, "%.*s", (int)(strcspn(ev + 7, " ")), ev + 7);
  snprintf(m, sizeof m, "%s", msg + 6);
  size_t ml = strlen(m);
  if (ml && m[ml - 1] == '"') m[--ml] = 0;
  for (int i = 0; i < nsites && n < max; i++)
    if (!strcmp(sites[i].event, e) && glob(sites[i].pat, m)) out[n++] = i;
  return n;
}

static int has_constant(const char *tmpl) {
  for (const char *p = tmpl; *p; p++) {
    if (!strncmp(p, "<*>", 3)) {
      p += 2;
      continue;
    }
    if (isalnum((unsigned char)*p)) return 1;
  }
  return 0;
}

static void test_daemon_log_links_to_its_code(void **st) {
  (void)st;
  assert_int_equal(itest_xdg_root(root, sizeof root, "/tmp/kvasir-logcode-XXXXXX"), 0);
  snprintf(repo, sizeof repo, "%s/repo", root);
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "mkdir -p %s && cd %s && git init -q . && cp -r %s/daemon %s/ipc %s/base . && git add -A && "
           "git -c user.name=t -c user.email=t@example.com commit -qm init",
           repo, repo, KVASIR_SOURCE_DIR, KVASIR_SOURCE_DIR, KVASIR_SOURCE_DIR);
  itest_sh(cmd);
  /* run 1: make kvasird log */
  snprintf(cmd, sizeof cmd, "%s/cli/kvasir daemon --no-watch --verbose --stub-generator 1", KVASIR_BINARY_DIR);
  itest_sh(cmd);
  kv_err e;
  cJSON *s0 = call("status", NULL, &e);
  assert_non_null(s0);
  pid_t pid = (pid_t)cJSON_GetObjectItem(s0, "pid")->valuedouble;
  cJSON_Delete(s0);
  snprintf(cmd, sizeof cmd, "%s/cli/kvasir repo add %s > /dev/null", KVASIR_BINARY_DIR, repo);
  itest_sh(cmd);
  snprintf(cmd, sizeof cmd, "%s/cli/kvasir ask --repo %s 'what does dmn_log write' > /dev/null", KVASIR_BINARY_DIR, repo);
  itest_sh(cmd);
  cJSON *r = call("no.such.method", NULL, &e);
  assert_null(r);
  cJSON *p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "path", "/nonexistent/kvasir-logcode");
  r = call("repo.add", p, &e);
  cJSON_Delete(p);
  cJSON_Delete(r);
  char logp[256];
  snprintf(logp, sizeof logp, "%s/run/kvasir/kvasird.log", root);
  assert_int_equal(kill(pid, SIGHUP), 0);
  for (int i = 0; i < 100; i++) {
    char *t = slurp(logp);
    int got = t && strstr(t, "event=daemon.reload");
    free(t);
    if (got) break;
    itest_nap(20);
  }
  snprintf(cmd, sizeof cmd, "%s/cli/kvasir shutdown > /dev/null", KVASIR_BINARY_DIR);
  itest_sh(cmd);
  for (int i = 0; i < 300 && kill(pid, 0) == 0; i++) itest_nap(20);
  assert_int_not_equal(kill(pid, 0), 0);
  /* the log goes into the repository, next to the code */
  snprintf(cmd, sizeof cmd,
           "cp %s %s/kvasird-run1.log && cd %s && git add -A && git -c user.name=t -c user.email=t@example.com "
           "commit -qm log",
           logp, repo, repo);
  itest_sh(cmd);
  /* the truth */
  const char *files[] = {"daemon/app.c", "daemon/ask.c", "daemon/index_jobs.c", "daemon/methods.c", "daemon/model.c",
                         "daemon/policy.c", "daemon/repos.c", "daemon/server.c", "daemon/log_jobs.c",
                         "daemon/jobs.c", "daemon/fim.c", "daemon/answer.c", "daemon/verify.c", "daemon/main.c"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    char pth[512];
    snprintf(pth, sizeof pth, "%s/%s", repo, files[i]);
    if (access(pth, R_OK) == 0) read_sites(files[i]);
  }
  assert_true(nsites > 20);
  char logcopy[256];
  snprintf(logcopy, sizeof logcopy, "%s/kvasird-run1.log", repo);
  /* run 2: index, ingest, triage with repo through the daemon */
  snprintf(cmd, sizeof cmd, "%s/cli/kvasir daemon --no-watch", KVASIR_BINARY_DIR);
  itest_sh(cmd);
  snprintf(cmd, sizeof cmd, "%s/cli/kvasir repo sync %s > /dev/null", KVASIR_BINARY_DIR, repo);
  itest_sh(cmd);
  p = cJSON_CreateObject();
  cJSON *paths = cJSON_AddArrayToObject(p, "paths");
  cJSON_AddItemToArray(paths, cJSON_CreateString(logcopy));
  cJSON_AddStringToObject(p, "name", "kvasird");
  r = call("logs.ingest", p, &e);
  if (!r) fail_msg("logs.ingest: %s", e.msg);
  cJSON_Delete(r);
  cJSON_DeleteItemFromObject(p, "paths");
  cJSON_AddStringToObject(p, "repo", repo);
  cJSON_AddNumberToObject(p, "limit", 1000);
  cJSON *tri = call("logs.triage", p, &e);
  if (!tri) fail_msg("logs.triage: %s", e.msg);
  /* a repo that is not registered: a params error */
  cJSON_ReplaceItemInObject(p, "repo", cJSON_CreateString("/nonexistent"));
  r = call("logs.triage", p, &e);
  assert_null(r);
  assert_non_null(strstr(e.msg, "repo"));
  cJSON_Delete(p);
  char *logtext = slurp(logcopy);
  assert_non_null(logtext);
  /* log lines by number */
  char *lines[4096];
  int nl = 0;
  for (char *q = logtext; *q && nl < 4096;) {
    lines[nl++] = q;
    char *nlp = strchr(q, '\n');
    if (!nlp) break;
    *nlp = 0;
    q = nlp + 1;
  }
  int templates = 0, linkable = 0, linked = 0, correct = 0, wrong = 0, unlinked_ok = 0, no_truth = 0;
  cJSON *items = cJSON_GetObjectItem(tri, "items"), *it;
  cJSON_ArrayForEach(it, items) {
    templates++;
    const char *tmpl = cJSON_GetObjectItem(it, "template")->valuestring;
    cJSON *code = cJSON_GetObjectItem(it, "code");
    assert_true(cJSON_IsArray(code));
    int can = has_constant(tmpl);
    linkable += can;
    /* the template's records and their sites */
    cJSON *q = cJSON_CreateObject();
    cJSON_AddStringToObject(q, "name", "kvasird");
    cJSON_AddNumberToObject(q, "template_id", cJSON_GetObjectItem(it, "template_id")->valuedouble);
    cJSON_AddNumberToObject(q, "limit", 1000);
    cJSON *rows = call("logs.query", q, &e);
    cJSON_Delete(q);
    assert_non_null(rows);
    int truth[64], nt = 0;
    cJSON *row;
    cJSON_ArrayForEach(row, cJSON_GetObjectItem(rows, "rows")) {
      int ln = (int)cJSON_GetObjectItem(row, "line")->valuedouble;
      int got[8];
      int k = ln >= 1 && ln <= nl ? line_sites(lines[ln - 1], got, 8) : 0;
      for (int i = 0; i < k && nt < 64; i++) truth[nt++] = got[i];
    }
    cJSON_Delete(rows);
    if (nt == 0) no_truth++;
    int n = cJSON_GetArraySize(code);
    if (n == 0) {
      if (!can) unlinked_ok++;
      else fprintf(stderr, "not linked: %s\n", tmpl);
      continue;
    }
    linked++;
    cJSON *c0 = cJSON_GetArrayItem(code, 0);
    const char *path = cJSON_GetObjectItem(c0, "path")->valuestring;
    int line = (int)cJSON_GetObjectItem(c0, "line")->valuedouble;
    int ok = 0;
    for (int i = 0; i < nt; i++) ok |= !strcmp(sites[truth[i]].file, path) && sites[truth[i]].line == line;
    printf("  %-70.70s -> %s:%d%s\n", tmpl, path, line, ok ? "" : "  WRONG");
    if (ok) correct++;
    else {
      wrong++;
      fprintf(stderr, "wrong link: %s -> %s:%d (truth: %s:%d)\n", tmpl, path, line, nt ? sites[truth[0]].file : "?",
              nt ? sites[truth[0]].line : 0);
    }
  }
  printf("kvasird log: %d templates, %d with constant text; linked %d, correct %d, wrong %d; variables only "
         "(not linked, as they must not be) %d; without a dmn_log site %d\n",
         templates, linkable, linked, correct, wrong, unlinked_ok, no_truth);
  assert_true(templates >= 10);
  assert_int_equal(wrong, 0);
  assert_int_equal(linked, linkable);
  assert_int_equal(correct, linkable);
  /* the CLI, offline, on the same store and index, gives the same links */
  char out[256];
  snprintf(out, sizeof out, "%s/cli.json", root);
  snprintf(cmd, sizeof cmd, "%s/cli/kvasir logs triage --db kvasird --repo %s --limit 1000 --json > %s",
           KVASIR_BINARY_DIR, repo, out);
  itest_sh(cmd);
  char *cj = slurp(out);
  cJSON *cli = cj ? cJSON_Parse(cj) : NULL;
  free(cj);
  assert_non_null(cli);
  cJSON *ci = cJSON_GetObjectItem(cli, "items");
  assert_int_equal(cJSON_GetArraySize(ci), cJSON_GetArraySize(items));
  for (int i = 0; i < cJSON_GetArraySize(items); i++) {
    char *a = cJSON_PrintUnformatted(cJSON_GetObjectItem(cJSON_GetArrayItem(items, i), "code"));
    char *b = cJSON_PrintUnformatted(cJSON_GetObjectItem(cJSON_GetArrayItem(ci, i), "code"));
    assert_string_equal(a, b);
    free(a), free(b);
  }
  cJSON_Delete(cli);
  cJSON_Delete(tri);
  free(logtext);
  snprintf(cmd, sizeof cmd, "%s/cli/kvasir shutdown > /dev/null; %s %s", KVASIR_BINARY_DIR, getenv("KV_KEEP") ? "echo kept" : "rm -rf", root);
  itest_sh(cmd);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_daemon_log_links_to_its_code)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
