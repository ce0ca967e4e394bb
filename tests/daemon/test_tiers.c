/* test_tiers.c — the `pro` tier loads the model its config names: two tiny
 * GGUFs (tiny_gguf.h: a llama and a qwen2) are registered as tiny-flash and
 * tiny-pro, config.yaml's tiers name them, and a project policy sends
 * `depth: think` to pro. A plain ask is answered by tiny-flash, a think ask
 * by tiny-pro (the answers' `model` and `tier`, the daemon's status). Then,
 * in the same daemon, config.yaml's model_memory is set to fit one model
 * and pro names a third: loading it unloads both idle models, and each
 * switch unloads the other (status lists one model, unloads counts); a cap
 * below one model alone is refused naming the cap; an unregistered name is
 * refused naming config.yaml:line:col. models.list shows the registry with
 * each entry's tier. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../engine/tiny_gguf.h"
#include "harness.h"

static th h;

/* A tiny model whose context fits an ask's prompt (the tiny vocabulary
 * spells text out letter by letter). */
static void write_model(const char *path, const char *arch, unsigned groups) {
  tg g;
  tg_init(&g);
  char k[96];
  tg_str(&g, "general.architecture", arch);
  tg_str(&g, "general.name", "tiny");
#define K(sfx) (snprintf(k, sizeof k, "%s.%s", arch, sfx), k)
  tg_u32(&g, K("block_count"), TG_NL);
  tg_u32(&g, K("context_length"), 16384);
  tg_u32(&g, K("embedding_length"), TG_D);
  tg_u32(&g, K("feed_forward_length"), TG_FF);
  tg_u32(&g, K("attention.head_count"), TG_NH);
  tg_u32(&g, K("attention.head_count_kv"), TG_NKV);
  tg_u32(&g, K("attention.key_length"), TG_HD);
  tg_f32(&g, K("rope.freq_base"), 10000.0f);
  tg_f32(&g, K("attention.layer_norm_rms_epsilon"), 1e-6f);
#undef K
  tg_vocab(&g, NULL, 0);
  tg_tensors(&g, groups, NULL);
  assert_int_equal(tg_write(&g, path), 0);
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  assert_int_equal(fclose(f), 0);
}

static void write_config_text(const char *t) {
  char p[256];
  snprintf(p, sizeof p, "%s/kvasir", getenv("XDG_CONFIG_HOME"));
  kv_mkdirs(p, 0700, NULL);
  snprintf(p, sizeof p, "%s/kvasir/config.yaml", getenv("XDG_CONFIG_HOME"));
  write_text(p, t);
}

static void write_config(const char *extra) {
  char t[1024];
  snprintf(t, sizeof t, "tiers:\n  flash:\n    model: tiny-flash\n  pro:\n    model: tiny-pro\n    context: 2048\n%s",
           extra ? extra : "");
  write_config_text(t);
}

static cJSON *call(const char *method, cJSON *params, int *rc, kv_err *e) {
  ipc_client *c;
  assert_int_equal(ipc_client_connect(&c, NULL, NULL, e), 0);
  cJSON *r = NULL;
  *rc = ipc_client_call(c, method, params, NULL, NULL, 120000, &r, e);
  ipc_client_close(c);
  cJSON_Delete(params);
  return r;
}

static cJSON *ask(const char *depth) {
  cJSON *p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "question", "what does kv_hash64 do?");
  cJSON_AddStringToObject(p, "repo", h.repo);
  cJSON_AddNumberToObject(p, "max_tokens", 3);
  if (depth) cJSON_AddStringToObject(p, "depth", depth);
  int rc;
  kv_err e;
  cJSON *r = call("ask", p, &rc, &e);
  if (rc) fail_msg("ask: %s", e.msg);
  return r;
}

static const char *str(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : "(none)";
}

/* Names of the models status lists as loaded, "a,b". */
static void loaded(char *out, size_t n, double *unloads, double bytes[2]) {
  cJSON *s = th_status();
  assert_non_null(s);
  const cJSON *m = cJSON_GetObjectItem(s, "models");
  out[0] = 0;
  const cJSON *e;
  int i = 0;
  cJSON_ArrayForEach(e, cJSON_GetObjectItem(m, "loaded")) {
    if (strcmp(str(e, "state"), "loaded")) continue;
    size_t l = strlen(out);
    snprintf(out + l, n - l, "%s%s", l ? "," : "", str(e, "name"));
    if (bytes && i < 2) bytes[i] = th_num(e, "file_bytes") + th_num(e, "kv_bytes");
    i++;
  }
  if (unloads) *unloads = th_num(m, "unloads");
  cJSON_Delete(s);
}

static void start(void) {
  kv_err e;
  if (th_start(&h, 0, 2, &e)) fail_msg("start: %s", e.msg);
}

static void test_pro_tier_loads_its_model(void **st) {
  (void)st;
  char a[160], b[160], pol[256];
  snprintf(a, sizeof a, "%s/flash.gguf", h.root);
  snprintf(b, sizeof b, "%s/pro.gguf", h.root);
  write_model(a, "llama", 0);
  write_model(b, "qwen2", TG_BIAS);
  kv_err e;
  if (eng_registry_add(NULL, a, "tiny-flash", NULL, &e) || eng_registry_add(NULL, b, "tiny-pro", NULL, &e))
    fail_msg("%s", e.msg);
  write_config(NULL);
  const char *files[] = {"base/hash.h", "base/vec.c"};
  assert_int_equal(th_make_repo(&h, files, 2), 0);
  snprintf(pol, sizeof pol, "%s/.kvasir", h.repo);
  kv_mkdirs(pol, 0700, NULL);
  snprintf(pol, sizeof pol, "%s/.kvasir/policy.yaml", h.repo);
  write_text(pol, "rules:\n  - name: think-goes-pro\n    depth: think\n    tier: pro\n");
  start();
  cJSON *p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "path", h.repo);
  cJSON_AddBoolToObject(p, "wait", 1);
  int rc;
  cJSON_Delete(call("repo.add", p, &rc, &e));
  assert_int_equal(rc, 0);

  cJSON *r = ask(NULL);
  assert_string_equal(str(r, "generator"), "engine");
  assert_string_equal(str(r, "tier"), "flash");
  assert_string_equal(str(r, "model"), "tiny-flash");
  cJSON_Delete(r);
  r = ask("think");
  assert_string_equal(str(r, "tier"), "pro");
  assert_string_equal(str(r, "rule"), "think-goes-pro");
  assert_string_equal(str(r, "model"), "tiny-pro");
  assert_string_equal(str(r, "generator"), "engine");
  cJSON_Delete(r);

  char names[256];
  double unloads, bytes[2] = {0, 0};
  loaded(names, sizeof names, &unloads, bytes);
  assert_string_equal(names, "tiny-flash,tiny-pro"); /* the default cap (75% of RAM) holds both */
  assert_true(unloads == 0);
  cJSON *s = th_status();
  assert_string_equal(str(cJSON_GetObjectItem(s, "model"), "tier"), "pro"); /* who answered last */
  assert_string_equal(str(cJSON_GetObjectItem(s, "model"), "model"), "tiny-pro");
  cJSON_Delete(s);

  /* models.list: the registry, each entry with the tier naming it */
  r = call("models.list", NULL, &rc, &e);
  assert_int_equal(rc, 0);
  const cJSON *x;
  int seen = 0;
  cJSON_ArrayForEach(x, cJSON_GetObjectItem(r, "registered")) {
    const cJSON *t = cJSON_GetArrayItem(cJSON_GetObjectItem(x, "tiers"), 0);
    assert_non_null(t);
    assert_string_equal(t->valuestring, !strcmp(str(x, "name"), "tiny-pro") ? "pro" : "flash");
    assert_string_equal(str(x, "state"), "loaded");
    seen++;
  }
  assert_int_equal(seen, 2);
  cJSON_Delete(r);

  /* The same daemon (config.yaml is read again when it changes): a cap that
   * holds one model but not two, and pro now names a third model of
   * flash's size. Loading it unloads both idle models, least recently used
   * (flash) first; then each switch unloads the other. */
  char c3[160];
  snprintf(c3, sizeof c3, "%s/third.gguf", h.root);
  write_model(c3, "llama", 0);
  if (eng_registry_add(NULL, c3, "tiny-third", NULL, &e)) fail_msg("%s", e.msg);
  double cap = (bytes[0] > bytes[1] ? bytes[0] : bytes[1]) + 1;
  assert_true(cap < bytes[0] + bytes[1]);
  char cfg[256];
  snprintf(cfg, sizeof cfg, "tiers:\n  flash:\n    model: tiny-flash\n  pro:\n    model: tiny-third\nmodel_memory: %.0f\n", cap);
  write_config_text(cfg);
  r = ask("think");
  assert_string_equal(str(r, "model"), "tiny-third");
  cJSON_Delete(r);
  loaded(names, sizeof names, &unloads, NULL);
  assert_string_equal(names, "tiny-third");
  assert_true(unloads == 2);
  r = ask(NULL);
  assert_string_equal(str(r, "model"), "tiny-flash");
  cJSON_Delete(r);
  loaded(names, sizeof names, &unloads, NULL);
  assert_string_equal(names, "tiny-flash");
  assert_true(unloads == 3);
  r = ask("think");
  assert_string_equal(str(r, "model"), "tiny-third");
  cJSON_Delete(r);
  loaded(names, sizeof names, &unloads, NULL);
  assert_string_equal(names, "tiny-third");
  assert_true(unloads == 4);
  s = th_status();
  assert_true(th_num(s, "models.memory_used") <= cap);
  assert_true(th_num(s, "models.memory_cap") == cap);
  cJSON_Delete(s);

  /* a cap below the pro model alone: the ask is answered without it, saying why */
  write_config("model_memory: 4KiB\n");
  r = ask("think");
  assert_string_equal(str(r, "tier"), "pro");
  assert_non_null(strstr(str(r, "note"), "more than the cap of 4.0 KiB"));
  assert_null(cJSON_GetObjectItem(r, "model"));
  cJSON_Delete(r);

  /* a tier naming a model nobody registered: the note names config.yaml:line:col and the field */
  write_config_text("tiers:\n  pro:\n    model: nope\n");
  r = ask("think");
  assert_non_null(strstr(str(r, "note"), "config.yaml:2:3: tiers.pro.model: 'nope' is not a registered model"));
  cJSON_Delete(r);
  r = ask(NULL); /* flash has no model: the daemon's default (none here) */
  assert_non_null(strstr(str(r, "note"), "no model"));
  cJSON_Delete(r);
}

int main(void) {
  th_env(&h);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_pro_tier_loads_its_model)};
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  th_stop(&h);
  th_cleanup(&h);
  return rc;
}
