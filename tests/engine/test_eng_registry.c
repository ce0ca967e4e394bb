/* test_eng_registry.c — the models registry (engine/registry.c) on tiny
 * GGUFs written here (tiny_gguf.h): add stores the sha256 (checked against
 * libsodium's over the same bytes), size and architecture; list reads them
 * back; an unsupported architecture is refused naming it and the supported
 * ones; a taken or invalid name is refused; remove drops exactly one entry;
 * a malformed file is an error naming file:line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sodium.h>
#include <sys/stat.h>
#include <limits.h>

#include "tiny_gguf.h"

static char dir[64], reg[128];

static void sha_hex(const char *path, char hex[65]) {
  char *buf;
  size_t len;
  kv_err e;
  assert_int_equal(kv_read_file(path, 1 << 24, &buf, &len, &e), 0);
  unsigned char d[32];
  crypto_hash_sha256(d, (const unsigned char *)buf, len);
  sodium_bin2hex(hex, 65, d, 32);
  free(buf);
}

static void test_add_list_remove(void **st) {
  (void)st;
  char a[160], b[160];
  snprintf(a, sizeof a, "%s/tiny-flash.gguf", dir);
  snprintf(b, sizeof b, "%s/other.gguf", dir);
  assert_int_equal(tg_model_at(a, "llama", 0, NULL), 0);
  assert_int_equal(tg_model_at(b, "qwen2", TG_BIAS, NULL), 0);
  eng_reg_entry e1, e2;
  kv_err e;
  if (eng_registry_add(reg, a, NULL, &e1, &e)) fail_msg("%s", e.msg);
  assert_string_equal(e1.name, "tiny-flash"); /* the file name without .gguf */
  assert_string_equal(e1.arch, "llama");
  if (eng_registry_add(reg, b, "tiny-pro", &e2, &e)) fail_msg("%s", e.msg);
  assert_string_equal(e2.arch, "qwen2");
  char hex[65];
  sha_hex(a, hex);
  assert_string_equal(e1.sha256, hex);
  struct stat sb;
  assert_int_equal(stat(a, &sb), 0);
  assert_int_equal(e1.size, (uint64_t)sb.st_size);
  /* the same name again, and a name that is not one */
  assert_int_equal(eng_registry_add(reg, b, "tiny-flash", NULL, &e), KV_EINVAL);
  assert_non_null(strstr(e.msg, "already registered"));
  assert_int_equal(eng_registry_add(reg, b, "bad name", NULL, &e), KV_EINVAL);
  eng_registry r;
  assert_int_equal(eng_registry_load(&r, reg, &e), 0);
  assert_int_equal(r.n, 2);
  const eng_reg_entry *f = eng_registry_find(&r, "tiny-pro");
  assert_non_null(f);
  sha_hex(b, hex);
  assert_string_equal(f->sha256, hex);
  char abs[4096];
  assert_non_null(realpath(a, abs));
  assert_ptr_equal(eng_registry_find_path(&r, abs), eng_registry_find(&r, "tiny-flash"));
  eng_registry_free(&r);
  assert_int_equal(eng_registry_remove(reg, "tiny-flash", &e), 0);
  assert_int_equal(eng_registry_remove(reg, "tiny-flash", &e), KV_ENOTFOUND);
  assert_int_equal(eng_registry_load(&r, reg, &e), 0);
  assert_int_equal(r.n, 1);
  assert_string_equal(r.v[0].name, "tiny-pro");
  eng_registry_free(&r);
  unlink(a);
  unlink(b);
}

static void test_unsupported_arch(void **st) {
  (void)st;
  char p[160];
  snprintf(p, sizeof p, "%s/mamba.gguf", dir);
  assert_int_equal(tg_model_at(p, "mamba", 0, NULL), 0);
  kv_err e;
  assert_int_equal(eng_registry_add(reg, p, NULL, NULL, &e), KV_EUNSUPPORTED);
  assert_non_null(strstr(e.msg, "'mamba'"));
  assert_non_null(strstr(e.msg, "llama, qwen2, qwen3, gemma3"));
  /* not a GGUF at all */
  FILE *f = fopen(p, "w");
  fputs("not a model\n", f);
  fclose(f);
  assert_int_not_equal(eng_registry_add(reg, p, "x", NULL, &e), 0);
  eng_registry r;
  assert_int_equal(eng_registry_load(&r, reg, &e), 0);
  assert_null(eng_registry_find(&r, "mamba"));
  eng_registry_free(&r);
  unlink(p);
}

static void test_malformed(void **st) {
  (void)st;
  char p[160];
  snprintf(p, sizeof p, "%s/bad.tsv", dir);
  FILE *f = fopen(p, "w");
  fputs("kvasir-models\t1\nonly\ttwo\n", f);
  fclose(f);
  eng_registry r;
  kv_err e;
  assert_int_equal(eng_registry_load(&r, p, &e), KV_EFORMAT);
  assert_non_null(strstr(e.msg, "bad.tsv:2:"));
  f = fopen(p, "w");
  fputs("kvasir-models\t9\n", f);
  fclose(f);
  assert_int_equal(eng_registry_load(&r, p, &e), KV_EFORMAT);
  assert_non_null(strstr(e.msg, "version 9"));
  /* absent = empty */
  snprintf(p, sizeof p, "%s/none.tsv", dir);
  assert_int_equal(eng_registry_load(&r, p, &e), 0);
  assert_int_equal(r.n, 0);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/kvasir-reg-XXXXXX");
  if (!mkdtemp(dir) || sodium_init() < 0) return 1;
  snprintf(reg, sizeof reg, "%s/models.tsv", dir);
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_add_list_remove), cmocka_unit_test(test_unsupported_arch),
                                     cmocka_unit_test(test_malformed)};
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd)) rc = 1;
  return rc;
}
