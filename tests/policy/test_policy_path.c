/*
 * test_policy_path.c — the path a rule sees is the file, not the string
 * (issue 16): in a real temporary repository with a forbidden deploy/ and a
 * .env, every spelling that used to slip past never_send, `paths:` and
 * label_paths ("..", "./", "//", an absolute path through the repo, a
 * symlink to a forbidden file) is resolved to the forbidden file's
 * repo-relative path and caught; everything leading out of the repository
 * (an absolute path, "../", a symlink to a file or a directory outside, a
 * not-yet-existing file under such a directory, a dangling symlink) is
 * refused with KV_EDENIED naming the path. Also pol_path_resolve itself:
 * several roots (the deepest wins), a symlinked root, a file not on disk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy/policy.h"

static char top[256], repo[512], outside[512];

static void put(const char *rel, const char *text) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", top, rel);
  FILE *f = fopen(p, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void dir(const char *rel) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", top, rel);
  assert_int_equal(mkdir(p, 0700), 0);
}

static void link_(const char *target, const char *rel) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", top, rel);
  assert_int_equal(symlink(target, p), 0);
}

static int setup(void **state) {
  (void)state;
  snprintf(top, sizeof top, "/tmp/kvasir-path-XXXXXX");
  if (!mkdtemp(top)) return -1;
  char real[4096];
  if (!realpath(top, real)) return -1;
  snprintf(top, sizeof top, "%.200s", real);
  snprintf(repo, sizeof repo, "%s/repo", top);
  snprintf(outside, sizeof outside, "%s/outside", top);
  dir("repo"), dir("repo/src"), dir("repo/deploy"), dir("repo/sub"), dir("outside");
  put("repo/deploy/key.txt", "CANARY-DEPLOY-1");
  put("repo/.env", "CANARY-ENV-2");
  put("repo/src/main.c", "int main(void) { return 0; }\n");
  put("outside/secret.txt", "CANARY-OUTSIDE-3");
  link_("../.env", "repo/src/link.txt");
  link_("../../outside/secret.txt", "repo/src/out.txt");
  link_("../../outside", "repo/src/outdir");
  link_("../nowhere/at/all", "repo/src/dangling");
  link_("repo", "repolink");
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
  return system(cmd);
}

static void expect_rel(const char *const *roots, size_t n, const char *path, const char *rel, size_t root, int exists) {
  pol_resolved r;
  kv_err err;
  kv_err_clear(&err);
  int rc = pol_path_resolve(roots, n, path, &r, &err);
  if (rc || strcmp(r.rel, rel)) fprintf(stderr, "%s: rc=%d rel='%s' want '%s' (%s)\n", path, rc, r.rel, rel, err.msg);
  assert_int_equal(rc, 0);
  assert_string_equal(r.rel, rel);
  assert_int_equal(r.root, root);
  assert_int_equal(r.exists, exists);
  assert_int_equal(strncmp(r.abs, top, strlen(top)), 0);
}

static void expect_denied(const char *const *roots, size_t n, const char *path) {
  pol_resolved r;
  kv_err err;
  kv_err_clear(&err);
  int rc = pol_path_resolve(roots, n, path, &r, &err);
  if (rc != KV_EDENIED) fprintf(stderr, "%s: rc=%d rel='%s' (%s)\n", path, rc, r.rel, err.msg);
  assert_int_equal(rc, KV_EDENIED);
  assert_non_null(strstr(err.msg, path)); /* the message names what was asked for */
  assert_string_equal(r.rel, "");
  assert_string_equal(r.abs, "");
}

static void resolve(void **state) {
  (void)state;
  const char *roots[] = {repo};
  char p[1024];
  expect_rel(roots, 1, "src/../deploy/key.txt", "deploy/key.txt", 0, 1);
  expect_rel(roots, 1, "./deploy/key.txt", "deploy/key.txt", 0, 1);
  expect_rel(roots, 1, "deploy//key.txt", "deploy/key.txt", 0, 1);
  expect_rel(roots, 1, ".//deploy/./key.txt", "deploy/key.txt", 0, 1);
  snprintf(p, sizeof p, "%s/src/../deploy/key.txt", repo);
  expect_rel(roots, 1, p, "deploy/key.txt", 0, 1);
  snprintf(p, sizeof p, "%s//./deploy/key.txt", repo);
  expect_rel(roots, 1, p, "deploy/key.txt", 0, 1);
  expect_rel(roots, 1, "src/link.txt", ".env", 0, 1); /* a symlink is judged by its target */
  expect_rel(roots, 1, "deploy/new/not-yet.txt", "deploy/new/not-yet.txt", 0, 0);
  expect_rel(roots, 1, "src/missing/../../deploy/x.txt", "deploy/x.txt", 0, 0);
  expect_rel(roots, 1, "src", "src", 0, 1);
  expect_rel(roots, 1, "src/..", "", 0, 1);
  /* out of the repository */
  expect_denied(roots, 1, "src/out.txt");
  expect_denied(roots, 1, "src/outdir/secret.txt");
  expect_denied(roots, 1, "src/outdir/not-yet.txt"); /* not on disk, but its directory is outside */
  expect_denied(roots, 1, "src/dangling");
  expect_denied(roots, 1, "../outside/secret.txt");
  expect_denied(roots, 1, "missing/../../outside/x.txt");
  expect_denied(roots, 1, "/etc/passwd");
  snprintf(p, sizeof p, "%s/secret.txt", outside);
  expect_denied(roots, 1, p);
  snprintf(p, sizeof p, "%s/../outside/secret.txt", repo);
  expect_denied(roots, 1, p);
  snprintf(p, sizeof p, "%s-evil/x", repo); /* a sibling sharing the root's spelling as a prefix */
  expect_denied(roots, 1, p);
  /* a symlinked root is canonicalized like the path */
  char rl[1024];
  snprintf(rl, sizeof rl, "%s/repolink", top);
  const char *lroots[] = {rl};
  snprintf(p, sizeof p, "%s/src/main.c", repo);
  expect_rel(lroots, 1, p, "src/main.c", 0, 1);
  expect_rel(lroots, 1, "src/../deploy/key.txt", "deploy/key.txt", 0, 1);
  /* several roots: the deepest holding the path wins; relative paths start at roots[0] */
  char sub[1024];
  snprintf(sub, sizeof sub, "%s/sub", repo);
  const char *two[] = {repo, sub, outside};
  snprintf(p, sizeof p, "%s/sub/x.c", repo);
  expect_rel(two, 3, p, "x.c", 1, 0);
  expect_rel(two, 3, "src/out.txt", "secret.txt", 2, 1); /* outside is registered here */
  expect_rel(two, 3, "deploy/key.txt", "deploy/key.txt", 0, 1);
  /* bad arguments */
  pol_resolved r;
  kv_err err;
  assert_int_equal(pol_path_resolve(roots, 1, "", &r, &err), KV_EINVAL);
  const char *rel_root[] = {"repo"};
  assert_int_equal(pol_path_resolve(rel_root, 1, "x", &r, &err), KV_EINVAL);
  assert_int_equal(pol_path_resolve(roots, 0, "x", &r, &err), KV_EINVAL);
}

static const char CONFIG[] = "tiers:\n  cloud: {base_url: https://api.example.com/v1, model: m, api_key_env: K}\n";

static pol_policy *load(const char *policy, const char *project) {
  pol_policy *p = NULL;
  kv_err err;
  int rc = pol_policy_from_buffers(&p, CONFIG, strlen(CONFIG), "config.yaml", policy, strlen(policy), "policy.yaml",
                                   project, &err);
  if (rc) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(rc, 0);
  return p;
}

/* The spellings the issue found, each with the forbidden file's content. */
static const struct { const char *path, *content; } SNEAKY[] = {
    {"src/../deploy/key.txt", "CANARY-DEPLOY-1"}, {"./deploy/key.txt", "CANARY-DEPLOY-1"},
    {"deploy//key.txt", "CANARY-DEPLOY-1"},       {"src/link.txt", "CANARY-ENV-2"},
    {"deploy/new/not-yet.txt", "CANARY-NEW-4"},   {"src/./../deploy/key.txt", "CANARY-DEPLOY-1"},
};

static void never_send_sees_the_file(void **state) {
  (void)state;
  pol_policy *p = load("default: cloud\nnever_send: [\"deploy/**\"]\n", repo);
  char abs[1024];
  snprintf(abs, sizeof abs, "%s/src/../deploy/key.txt", repo);
  for (size_t i = 0; i <= sizeof SNEAKY / sizeof *SNEAKY; i++) {
    const char *path = i < sizeof SNEAKY / sizeof *SNEAKY ? SNEAKY[i].path : abs;
    const char *content = i < sizeof SNEAKY / sizeof *SNEAKY ? SNEAKY[i].content : "CANARY-DEPLOY-1";
    pol_file f[] = {{path, content, strlen(content), NULL}, {"src/main.c", "int main(void);", 15, NULL}};
    pol_request req = {.kind = POL_KIND_ASK, .question = "why?", .files = f, .n_files = 2};
    pol_payload *pl = NULL;
    kv_err err;
    assert_int_equal(pol_payload_prepare(p, &req, "m", 64, &pl, &err), 0);
    if (strstr(pl->body, "CANARY")) fprintf(stderr, "%s leaked: %s\n", path, pl->body);
    assert_null(strstr(pl->body, "CANARY"));
    assert_int_equal(pl->n_stripped, 1);
    /* listed by what it is (the .env default never_send catches the symlink) */
    assert_string_equal(pl->stripped[0], !strcmp(path, "src/link.txt")          ? ".env"
                                         : !strcmp(path, "deploy/new/not-yet.txt") ? "deploy/new/not-yet.txt"
                                                                                   : "deploy/key.txt");
    assert_non_null(strstr(pl->body, "int main(void);"));
    pol_payload_free(pl);
  }
  pol_policy_free(p);
}

static void outside_is_refused(void **state) {
  (void)state;
  pol_policy *p = load("default: cloud\n", repo);
  char abs[1024];
  snprintf(abs, sizeof abs, "%s/secret.txt", outside);
  const char *paths[] = {abs, "src/out.txt", "../outside/secret.txt", "src/outdir/secret.txt", "src/outdir/new.txt",
                         "src/dangling"};
  for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
    pol_file f[] = {{"src/main.c", "int x;", 6, NULL}, {paths[i], "CANARY-OUTSIDE-3", 16, NULL}};
    pol_request req = {.kind = POL_KIND_ASK, .question = "q", .files = f, .n_files = 2};
    pol_decision d;
    kv_err err;
    assert_int_equal(pol_decide(p, &req, &d, &err), KV_EDENIED);
    assert_non_null(strstr(err.msg, paths[i]));
    assert_int_equal(d.tier_kind, POL_TIER_REFUSE); /* even a caller ignoring rc does not send */
    assert_string_equal(d.rule, "path");
    pol_payload *pl = (pol_payload *)1;
    assert_int_equal(pol_payload_prepare(p, &req, "m", 64, &pl, &err), KV_EDENIED);
    assert_null(pl);
    char *out = NULL;
    assert_int_equal(pol_explain(p, &req, 0, &out, &err), KV_EDENIED);
    assert_null(out);
  }
  pol_policy_free(p);
}

/* `paths:` rules and label_paths match the resolved path too. */
static void rules_and_labels_see_the_file(void **state) {
  (void)state;
  pol_policy *p = load("default: cloud\n"
                       "rules:\n"
                       "  - {name: deploy-local, paths: [\"deploy/**\"], tier: flash}\n"
                       "  - {name: env-refused, labels: [secret], tier: refuse}\n"
                       "label_paths:\n"
                       "  secret: [\".env\"]\n",
                       repo);
  for (size_t i = 0; i < sizeof SNEAKY / sizeof *SNEAKY; i++) {
    pol_file f = {SNEAKY[i].path, "x", 1, NULL};
    pol_request req = {.kind = POL_KIND_ASK, .question = "q", .files = &f, .n_files = 1};
    pol_decision d;
    kv_err err;
    assert_int_equal(pol_decide(p, &req, &d, &err), 0);
    const char *want = !strcmp(SNEAKY[i].path, "src/link.txt") ? "env-refused" : "deploy-local";
    if (strcmp(d.rule, want)) fprintf(stderr, "%s: rule %s, want %s\n", SNEAKY[i].path, d.rule, want);
    assert_string_equal(d.rule, want);
  }
  /* explain shows what the given path resolved to */
  pol_file f = {"src/../deploy/key.txt", "x", 1, NULL};
  pol_request req = {.kind = POL_KIND_ASK, .question = "q", .files = &f, .n_files = 1};
  char *out;
  kv_err err;
  assert_int_equal(pol_explain(p, &req, 0, &out, &err), 0);
  assert_non_null(strstr(out, "file deploy/key.txt given as src/../deploy/key.txt"));
  free(out);
  pol_policy_free(p);
}

/* Without a project directory the paths are normalized lexically, and
 * what cannot be judged without the filesystem is refused. */
static void no_project_is_lexical(void **state) {
  (void)state;
  pol_policy *p = load("default: cloud\nnever_send: [\"deploy/**\"]\n", NULL);
  const char *caught[] = {"src/../deploy/key.txt", "./deploy/key.txt", "deploy//key.txt", "a/b/../../deploy/k"};
  for (size_t i = 0; i < sizeof caught / sizeof *caught; i++) {
    pol_file f = {caught[i], "CANARY-DEPLOY-1", 15, NULL};
    pol_request req = {.kind = POL_KIND_ASK, .question = "q", .files = &f, .n_files = 1};
    pol_payload *pl;
    kv_err err;
    assert_int_equal(pol_payload_prepare(p, &req, "m", 64, &pl, &err), 0);
    assert_int_equal(pl->n_stripped, 1);
    assert_null(strstr(pl->body, "CANARY"));
    pol_payload_free(pl);
  }
  const char *refused[] = {"../x", "a/../../x", "/etc/passwd"};
  for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
    pol_file f = {refused[i], "CANARY", 6, NULL};
    pol_request req = {.kind = POL_KIND_ASK, .question = "q", .files = &f, .n_files = 1};
    pol_decision d;
    kv_err err;
    assert_int_equal(pol_decide(p, &req, &d, &err), KV_EDENIED);
    assert_non_null(strstr(err.msg, refused[i]));
  }
  pol_policy_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(resolve),
      cmocka_unit_test(never_send_sees_the_file),
      cmocka_unit_test(outside_is_refused),
      cmocka_unit_test(rules_and_labels_see_the_file),
      cmocka_unit_test(no_project_is_lexical),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
