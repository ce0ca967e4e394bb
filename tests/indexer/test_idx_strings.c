/*
 * test_idx_strings.c — the literal matcher behind `logs triage --repo`
 * (indexer/strings.c): for each language a template links to the line its
 * literal starts on, and does not link to a longer similar string, to the
 * same words in another order, to a literal whose slots do not line up, or
 * from a template made only of variables. Then idx_log_sites on a small
 * git repository: the link is path:line, a log file holding the rendered
 * messages is never a site, and a template of one common word links to
 * nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "indexer/indexer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct mcase {
  const char *lang, *src, *tmpl;
  int line; /* expected line; 0: no match */
} mcase;

static const mcase CASES[] = {
    /* C: printf specifiers, adjacent literals across lines */
    {"c", "int f(void) {\n  dmn_log(s, DMN_INFO, \"conn.accept\", \"conn=%llu pid=%d\", id, pid);\n}\n",
     "conn=<*> pid=<*>", 2},
    {"c", "x();\n  dmn_log(s, DMN_WARN, \"conn.drop\",\n      \"%llu connection(s) dropped at the cap of %d \"\n"
          "      \"(%llu in all): a client is slow\", a, b, c);\n",
     "<*> connection(s) dropped at the cap of <*> (<*> in all): a client is slow", 3},
    {"c", "fprintf(stderr, \"loaded %zu blocks in %.2f s (%5.1f%%)\\n\", n, t, p);\n",
     "loaded <*> blocks in <*> s (<*>%)", 1},
    /* a format slot absorbs a value that was constant in the log */
    {"c", "dmn_log(s, DMN_INFO, \"daemon.stop\", \"%s: draining (no new requests)\", why);\n",
     "stop requested: draining (no new requests)", 1},
    /* negatives in C: a longer similar string; another order; all variables */
    {"c", "log(\"connection closed by peer after %d s\", n);\n", "connection closed after <*> s", 0},
    {"c", "log(\"closed connection %s after timeout\", n);\n", "connection <*> closed after timeout", 0},
    {"c", "log(\"%s: %s\", a, b);\n", "<*>: <*>", 0},
    {"c", "/* log(\"cache miss for key %s\") */\nint x;\n", "cache miss for key <*>", 0},
    /* Python: %-format, {}-format, f-string, %(name)s, implicit concatenation */
    {"python", "def f():\n    log.debug(\"Starting new HTTP connection (%d): %s:%s\", n, host, port)\n",
     "Starting new HTTP connection (<*>): <*>:<*>", 2},
    {"python", "x = 1\nlogger.info(f\"loaded {len(rows)} rows from {path!r}\")\n", "loaded <*> rows from <*>", 2},
    {"python", "msg = 'retrying {} of {} for {name}'.format(a, b, name=c)\n", "retrying <*> of <*> for <*>", 1},
    {"python", "log.warning('%(user)s logged in from %(ip)s', d)\n", "<*> logged in from <*>", 1},
    {"python", "# don't\nlog.info(\"Resetting dropped connection: \"\n         \"%s\", host)\n",
     "Resetting dropped connection: <*>", 2},
    {"python", "log.info(\"pool is full, discarding connection: %s\", h)\n", "pool is full", 0},
    /* JavaScript / TypeScript: template literals, + concatenation */
    {"javascript", "function g() {\n  console.log(`listening on ${host}:${port} as ${user}`);\n}\n",
     "listening on <*>:<*> as <*>", 2},
    {"typescript", "logger.warn(\"request \" + id + \" took \" + ms + \"ms\");\n", "request <*> took <*>ms", 1},
    /* Go: %v %q %w, raw strings */
    {"go", "func h() {\n\tlog.Printf(\"dial %q failed: %v\", addr, err)\n}\n", "dial <*> failed: <*>", 2},
    {"go", "var s = `watching %d files under %s`\n", "watching <*> files under <*>", 1},
    /* Java: SLF4J {} and String.format */
    {"java", "class A { void f() {\n  log.info(\"Session {} expired after {} ms\", id, t);\n  char c = '\"';\n}}\n",
     "Session <*> expired after <*> ms", 2},
    /* Ruby: #{} interpolation */
    {"ruby", "def f\n  logger.info \"processed #{n} jobs in #{t}s\"\nend\n", "processed <*> jobs in <*>s", 2},
    /* Rust: {} {:?} {name}, raw strings, lifetimes do not open a literal */
    {"rust", "fn f<'a>(x: &'a str) {\n    info!(\"compacted {} segments in {:?}\", n, d);\n}\n",
     "compacted <*> segments in <*>", 2},
    {"rust", "let s = r#\"bad header \"{}\" at {}\"#;\n", "bad header \"<*>\" at <*>", 1},
    /* shell: "$var" and "${var}" */
    {"bash", "#!/bin/sh\n# it's a comment\necho \"copying $src to ${dst} (mode $mode)\"\n",
     "copying <*> to <*> (mode <*>)", 3},
    {"bash", "echo 'copying $src to $dst'\n", "copying <*> to <*>", 0},
};

static void test_literal_cases(void **st) {
  (void)st;
  int bad = 0;
  for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
    const mcase *c = &CASES[i];
    int line = -1;
    double q = idx_literal_match(c->lang, c->src, strlen(c->src), c->tmpl, "<*>", &line);
    int got = q > 0 ? line : 0;
    if (got != c->line) {
      fprintf(stderr, "case %zu (%s) '%s': line %d (q %.2f), expected %d\n", i, c->lang, c->tmpl, got, q, c->line);
      bad++;
    }
    if (q > 0) assert_true(q >= 0.8 && q <= 1.0);
  }
  assert_int_equal(bad, 0);
}

/* Every slot lined up, every char matched: quality 1. */
static void test_literal_exact_quality(void **st) {
  (void)st;
  const char *src = "log(\"conn=%llu handshake done\", id);\n";
  int line = 0;
  double q = idx_literal_match("c", src, strlen(src), "conn=<*> handshake done", "<*>", &line);
  assert_true(q > 0.999);
  assert_int_equal(line, 1);
  /* a template slot where the code has a constant, twice: no match */
  q = idx_literal_match("c", src, strlen(src), "<*>=<*> handshake <*>", "<*>", &line);
  assert_true(q == 0);
}

static void sh(const char *cmd) {
  if (system(cmd) != 0) fail_msg("command failed: %s", cmd);
}

static void test_log_sites_repo(void **st) {
  (void)st;
  char root[] = "/tmp/kvasir-strings-XXXXXX";
  assert_non_null(mkdtemp(root));
  char cmd[4096];
  snprintf(cmd, sizeof cmd,
           "cd %s && git init -q . && mkdir -p src && "
           "printf 'static void f(int s) {\\n  if (s) {\\n    warn(\"cache miss for key %%%%s in shard %%%%d\", k, s);\\n"
           "  }\\n  err(\"error\");\\n}\\n' > src/cache.c && "
           "printf 'def g():\\n    log.info(\"evicted %%%%d entries from %%%%s\", n, name)\\n"
           "    log.info(\"done\")\\n' > src/evict.py && "
           "printf 'def a():\\n    log.debug(\"pruned %%%%d shards of %%%%s\", n, t)\\n' > src/a.py && "
           "printf 'def b():\\n    log.warning(\"pruned %%%%d shards of %%%%s\", n, t)\\n' > src/b.py && "
           "printf 'ts=1 msg=\"cache miss for key abc in shard 3\"\\n' > run.log && "
           "git add -A && git -c user.name=t -c user.email=t@example.com commit -qm init",
           root);
  sh(cmd);
  char db[256];
  snprintf(db, sizeof db, "%s/index.db", root);
  idx_options o = {0};
  o.db_path = db;
  idx_index *ix;
  kv_err e = {0};
  assert_int_equal(idx_open(&ix, root, &o, &e), 0);
  idx_sync_stats ss;
  assert_int_equal(idx_sync(ix, 0, NULL, NULL, NULL, &ss, &e), 0);
  idx_sites s;
  assert_int_equal(idx_log_sites(ix, "cache miss for key <*> in shard <*>", "<*>", "info", 3, &s, &e), 0);
  assert_int_equal(s.n, 1);
  assert_string_equal(s.v[0].path, "src/cache.c");
  assert_int_equal(s.v[0].line, 3);
  assert_true(s.v[0].score > 0 && s.v[0].score <= 1);
  idx_sites_free(&s);
  assert_int_equal(idx_log_sites(ix, "evicted <*> entries from <*>", "<*>", "info", 3, &s, &e), 0);
  assert_int_equal(s.n, 1);
  assert_string_equal(s.v[0].path, "src/evict.py");
  assert_int_equal(s.v[0].line, 2);
  idx_sites_free(&s);
  /* two equal literals: the call at the record's level first */
  assert_int_equal(idx_log_sites(ix, "pruned <*> shards of <*>", "<*>", "warn", 3, &s, &e), 0);
  assert_int_equal(s.n, 2);
  assert_string_equal(s.v[0].path, "src/b.py");
  assert_true(s.v[0].score > s.v[1].score);
  idx_sites_free(&s);
  assert_int_equal(idx_log_sites(ix, "pruned <*> shards of <*>", "<*>", "debug", 3, &s, &e), 0);
  assert_int_equal(s.n, 2);
  assert_string_equal(s.v[0].path, "src/a.py");
  idx_sites_free(&s);
  /* a message with its values (the miner kept them) links to the code,
   * never to the log file holding the rendered message */
  assert_int_equal(idx_log_sites(ix, "cache miss for key abc in shard 3", "<*>", "info", 3, &s, &e), 0);
  assert_int_equal(s.n, 1);
  assert_string_equal(s.v[0].path, "src/cache.c");
  idx_sites_free(&s);
  /* one common word, or variables only, link to nothing */
  const char *none[] = {"error", "done", "<*> <*>", "<*>", "<*> error <*>"};
  for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
    assert_int_equal(idx_log_sites(ix, none[i], "<*>", NULL, 3, &s, &e), 0);
    if (s.n) fail_msg("'%s' linked to %s:%d", none[i], s.v[0].path, s.v[0].line);
    idx_sites_free(&s);
  }
  idx_close(ix);
  snprintf(cmd, sizeof cmd, "rm -rf %s", root);
  sh(cmd);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_literal_cases),
      cmocka_unit_test(test_literal_exact_quality),
      cmocka_unit_test(test_log_sites_repo),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
