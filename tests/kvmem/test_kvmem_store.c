/* test_kvmem_store.c — snapshots and resident prefixes: a snapshot round
 * trip gives back exactly the same attention; flipping any byte of a
 * snapshot (every position in turn), truncating it, or loading it for
 * another model or KV config is detected; forks are copy-on-write and
 * exact; the segment hash chain reuses the longest matching run; the store
 * stays under its byte budget with 10 prefixes larger than it, and evicted
 * or restarted prefixes come back from disk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include "kvmem/internal.h"

enum { H = 2, KVH = 1, D = 8, KVD = KVH * D, QD = H * D };

static float tokval(int32_t tok, int t, int i) { /* K/V as a function of (token, position) */
  uint32_t x = (uint32_t)tok * 2654435761u ^ (uint32_t)(t * 40503 + i * 97);
  x ^= x >> 13;
  x *= 0x5bd1e995u;
  x ^= x >> 15;
  return (float)(x % 2000) / 1000.0f - 1.0f;
}

static void small_cfg(kvm_config *c, int max_tokens) {
  kvm_config_default(c, 3, H, KVH, D, max_tokens, KVM_COMPRESSED);
  c->sinks = 2;
  c->window = 8;
  c->block = 8;
  c->top_k = 2;
  c->layer_mode[0] = KVM_FULL;
  c->layer_mode[2] = KVM_LOCAL;
  c->layer_window[2] = 12;
}

/* Append tokens toks[from..to) at positions from..to-1 to every layer. */
static void feed(kvm_cache *c, const int32_t *toks, int from, int to) {
  kv_err e;
  float k[KVD], v[KVD];
  for (int t = from; t < to; t++) {
    for (int i = 0; i < KVD; i++) {
      k[i] = tokval(toks[t], t, i);
      v[i] = tokval(toks[t] + 7, t, i + 100);
    }
    for (int l = 0; l < kvm_cache_config(c)->n_layers; l++) assert_int_equal(kvm_cache_append(c, l, k, v, &e), 0);
  }
}

/* Attention outputs of all layers for a fixed query. */
static void probe(kvm_cache *c, float *out) {
  float q[QD];
  for (int i = 0; i < QD; i++) q[i] = tokval(99, i, 3) * 2;
  for (int l = 0; l < kvm_cache_config(c)->n_layers; l++) kvm_cache_attend(c, l, q, 0.5f, out + l * QD);
}

static char g_dir[64];
static int setup(void **st) {
  strcpy(g_dir, "/tmp/kvm-test-XXXXXX");
  assert_non_null(mkdtemp(g_dir));
  return 0;
}
static int teardown(void **st) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  return system(cmd) == 0 ? 0 : -1;
}

static int32_t *toks_make(int n, int seed) {
  int32_t *t = malloc(sizeof(int32_t) * (size_t)n);
  for (int i = 0; i < n; i++) t[i] = (int32_t)((i * 31 + seed * 1009) % 5000);
  return t;
}

static void test_snapshot_roundtrip_and_flips(void **st) {
  kvm_config cf;
  small_cfg(&cf, 128);
  int32_t *toks = toks_make(60, 1);
  kvm_cache *c;
  kv_err e;
  assert_int_equal(kvm_cache_open(&c, &cf, &e), 0);
  feed(c, toks, 0, 50);
  char path[128], bad[160];
  snprintf(path, sizeof path, "%s/snap.kvm", g_dir);
  snprintf(bad, sizeof bad, "%s/bad.kvm", g_dir);
  uint64_t chain[1] = {123}, ends[1] = {50};
  assert_int_equal(kvm_snapshot_write(path, c, 0xabc, 0x77, chain, ends, 1, &e), 0);
  kvm_prefix *p;
  assert_int_equal(kvm_snapshot_load(path, &cf, 0xabc, &p, &e), 0);
  assert_true(kvm_prefix_from_disk(p));
  assert_int_equal(kvm_prefix_len(p), 50);
  kvm_cache *f;
  assert_int_equal(kvm_prefix_fork(p, 50, &f, &e), 0);
  kvm_prefix_unref(p); /* the fork keeps it alive */
  feed(c, toks, 50, 60);
  feed(f, toks, 50, 60);
  float o1[3 * QD], o2[3 * QD];
  probe(c, o1);
  probe(f, o2);
  for (int i = 0; i < 3 * QD; i++) assert_true(fabsf(o1[i] - o2[i]) < 1e-6f); /* tiles split differently */
  kvm_cache_free(f);

  /* stale: another model, another config */
  assert_int_equal(kvm_snapshot_load(path, &cf, 0xabd, &p, &e), KV_EFORMAT);
  assert_non_null(strstr(e.msg, "model hash"));
  kvm_config cf2 = cf;
  cf2.key_bits = 8;
  assert_int_equal(kvm_snapshot_load(path, &cf2, 0xabc, &p, &e), KV_EFORMAT);
  assert_non_null(strstr(e.msg, "config"));

  /* every byte flipped in turn, and truncations */
  char *buf;
  size_t len;
  assert_int_equal(kv_read_file(path, 1 << 22, &buf, &len, &e), 0);
  assert_true(len > 1000 && len < 20000);
  FILE *fp = fopen(bad, "wb");
  assert_non_null(fp);
  assert_int_equal(fwrite(buf, 1, len, fp), len);
  fclose(fp);
  int fd = open(bad, O_RDWR);
  assert_true(fd >= 0);
  for (size_t i = 0; i < len; i++) { /* flip byte i in place, load, restore */
    char x = (char)(buf[i] ^ (char)(1 + i % 255));
    assert_int_equal(pwrite(fd, &x, 1, (off_t)i), 1);
    int rc = kvm_snapshot_load(bad, &cf, 0xabc, &p, &e);
    if (rc == 0) fail_msg("flip at byte %zu of %zu not detected", i, len);
    assert_int_equal(rc, KV_EFORMAT);
    assert_null(p);
    assert_int_equal(pwrite(fd, &buf[i], 1, (off_t)i), 1);
  }
  assert_int_equal(kvm_snapshot_load(bad, &cf, 0xabc, &p, &e), 0); /* restored: loads */
  kvm_prefix_unref(p);
  /* a well-formed file of the previous format (version 2: 8-bit pooled
   * summaries, blocks of another size; header checksum consistent) is
   * refused by its version, never read with this layout */
  {
    char old[64];
    memcpy(old, buf, 64);
    uint32_t v2 = 2;
    memcpy(old + 8, &v2, 4);
    uint64_t hh = kvm_hash64(old, 56, 0);
    memcpy(old + 56, &hh, 8);
    assert_int_equal(pwrite(fd, old, 64, 0), 64);
    assert_int_equal(kvm_snapshot_load(bad, &cf, 0xabc, &p, &e), KV_EFORMAT);
    assert_null(p);
    assert_non_null(strstr(e.msg, "version 2 at offset 8, expected 3"));
    assert_int_equal(pwrite(fd, buf, 64, 0), 64);
  }
  for (size_t cut = 0; cut < len; cut += len / 7) { /* truncations */
    assert_int_equal(ftruncate(fd, (off_t)cut), 0);
    assert_int_equal(kvm_snapshot_load(bad, &cf, 0xabc, &p, &e), KV_EFORMAT);
  }
  close(fd);
  print_message("snapshot of %zu bytes: all %zu single-byte flips detected\n", len, len);
  free(buf);
  free(toks);
  kvm_cache_free(c);
}

/* Forks share blocks (owned bytes small) and are exact for FULL layers at
 * any truncation point; truncated compressed forks stay close. */
static void test_fork_cow_and_truncate(void **st) {
  kvm_config cf;
  small_cfg(&cf, 256);
  int32_t *toks = toks_make(200, 2);
  kvm_cache *c, *cold, *f;
  kv_err e;
  assert_int_equal(kvm_cache_open(&c, &cf, &e), 0);
  feed(c, toks, 0, 150);
  kvm_store *s;
  assert_int_equal(kvm_store_open(&s, &cf, 42, 1 << 20, g_dir, &e), 0);
  kvm_segment seg = {toks, 150};
  kvm_prefix *p;
  assert_int_equal(kvm_store_put(s, &seg, 1, c, &p, &e), 0);
  assert_int_equal(kvm_prefix_fork(p, 150, &f, &e), 0);
  assert_true(kvm_cache_owned_bytes(f) < kvm_cache_bytes(f) / 2);
  kvm_cache_free(f);
  for (int cut = 0; cut <= 150; cut += 15) {
    assert_int_equal(kvm_prefix_fork(p, (size_t)cut, &f, &e), 0);
    assert_int_equal(kvm_cache_open(&cold, &cf, &e), 0);
    feed(cold, toks, 0, cut);
    feed(cold, toks, cut, 200);
    feed(f, toks, cut, 200);
    float o1[3 * QD], o2[3 * QD];
    probe(cold, o1);
    probe(f, o2);
    for (int i = 0; i < QD; i++) assert_true(fabsf(o1[i] - o2[i]) < 1e-6f); /* FULL layer 0: exact */
    for (int i = QD; i < 2 * QD; i++) assert_true(fabsf(o1[i] - o2[i]) < 0.05f);
    kvm_cache_free(f);
    kvm_cache_free(cold);
  }
  assert_int_equal(kvm_prefix_fork(p, 151, &f, &e), KV_EINVAL);
  kvm_prefix_unref(p);
  kvm_store_free(s);
  free(toks);
}

/* copy_prefix and truncate give the state a cold run has at the cut (FULL
 * exact, compressed close), whatever the cut position. */
static void test_copy_and_truncate(void **st) {
  kvm_config cf;
  small_cfg(&cf, 256);
  int32_t *toks = toks_make(200, 9);
  kvm_cache *c, *cold, *d;
  kv_err e;
  assert_int_equal(kvm_cache_open(&c, &cf, &e), 0);
  feed(c, toks, 0, 150);
  for (int cut = 0; cut <= 150; cut += 13) {
    for (int how = 0; how < 2; how++) {
      assert_int_equal(kvm_cache_open(&d, &cf, &e), 0);
      if (how == 0) {
        assert_int_equal(kvm_cache_copy_prefix(d, c, cut, &e), 0);
      } else {
        assert_int_equal(kvm_cache_copy_prefix(d, c, 150, &e), 0);
        assert_int_equal(kvm_cache_truncate(d, cut, &e), 0);
      }
      for (int l = 0; l < 3; l++) assert_int_equal(kvm_cache_len(d, l), cut);
      assert_int_equal(kvm_cache_open(&cold, &cf, &e), 0);
      feed(cold, toks, 0, 200);
      feed(d, toks, cut, 200);
      assert_int_equal(kvm_cache_bytes(d), kvm_cache_bytes(cold)); /* same structure */
      float o1[3 * QD], o2[3 * QD];
      probe(cold, o1);
      probe(d, o2);
      for (int i = 0; i < QD; i++) assert_true(fabsf(o1[i] - o2[i]) < 1e-6f);
      for (int i = QD; i < 2 * QD; i++) assert_true(fabsf(o1[i] - o2[i]) < 0.05f);
      kvm_cache_free(d);
      kvm_cache_free(cold);
    }
  }
  assert_int_equal(kvm_cache_open(&d, &cf, &e), 0);
  assert_int_equal(kvm_cache_copy_prefix(d, c, 151, &e), KV_EINVAL);
  kvm_cache_free(d);
  kvm_cache_free(c);
  free(toks);
}

static void test_segments_longest_run(void **st) {
  kvm_config cf;
  small_cfg(&cf, 256);
  int32_t *a = toks_make(40, 3), *b = toks_make(30, 4), *c3 = toks_make(20, 5), *c3b = toks_make(20, 6);
  int32_t all[90];
  memcpy(all, a, 160);
  memcpy(all + 40, b, 120);
  memcpy(all + 70, c3, 80);
  kvm_cache *c;
  kv_err e;
  assert_int_equal(kvm_cache_open(&c, &cf, &e), 0);
  feed(c, all, 0, 90);
  kvm_store *s;
  assert_int_equal(kvm_store_open(&s, &cf, 43, 1 << 20, g_dir, &e), 0);
  kvm_segment segs[4] = {{a, 40}, {b, 30}, {c3, 20}, {c3b, 20}};
  assert_int_equal(kvm_store_put(s, segs, 3, c, NULL, &e), 0);
  kvm_prefix *p;
  int m;
  size_t nt;
  assert_int_equal(kvm_store_lookup(s, segs, 4, &p, &m, &nt, &e), 0); /* A B C + D: all 3 */
  assert_int_equal(m, 3);
  assert_int_equal(nt, 90);
  kvm_prefix_unref(p);
  kvm_segment edited[3] = {{a, 40}, {b, 30}, {c3b, 20}}; /* last segment changed */
  assert_int_equal(kvm_store_lookup(s, edited, 3, &p, &m, &nt, &e), 0);
  assert_int_equal(m, 2);
  assert_int_equal(nt, 70);
  kvm_prefix_unref(p);
  kvm_segment other[2] = {{b, 30}, {a, 40}}; /* order matters: no match */
  assert_int_equal(kvm_store_lookup(s, other, 2, &p, &m, &nt, &e), KV_ENOTFOUND);
  kvm_segment shorter[1] = {{a, 39}};
  assert_int_equal(kvm_store_lookup(s, shorter, 1, &p, &m, &nt, &e), KV_ENOTFOUND);
  kvm_store_free(s);

  /* after a restart the snapshot serves; a corrupted one is deleted, unused */
  assert_int_equal(kvm_store_open(&s, &cf, 43, 1 << 20, g_dir, &e), 0);
  assert_int_equal(kvm_store_lookup(s, edited, 3, &p, &m, &nt, &e), 0);
  assert_int_equal(m, 2);
  assert_true(kvm_prefix_from_disk(p));
  kvm_prefix_unref(p);
  kvm_store_free(s);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "for f in %s/*002b-*.kvm; do printf '\\x55' | dd of=$f bs=1 seek=900 conv=notrunc 2>/dev/null; done", g_dir);
  assert_int_equal(system(cmd), 0);
  assert_int_equal(kvm_store_open(&s, &cf, 43, 1 << 20, g_dir, &e), 0);
  assert_int_equal(kvm_store_lookup(s, edited, 3, &p, &m, &nt, &e), KV_ENOTFOUND);
  snprintf(cmd, sizeof cmd, "ls %s/*002b-*.kvm >/dev/null 2>&1", g_dir);
  assert_true(system(cmd) != 0); /* deleted */
  kvm_store_free(s);
  free(a); free(b); free(c3); free(c3b);
}

static void test_budget_lru(void **st) {
  kvm_config cf;
  small_cfg(&cf, 512);
  kv_err e;
  kvm_store *s;
  /* measure one prefix */
  int32_t *t0 = toks_make(300, 100);
  kvm_cache *c;
  assert_int_equal(kvm_cache_open(&c, &cf, &e), 0);
  feed(c, t0, 0, 300);
  assert_int_equal(kvm_store_open(&s, &cf, 44, 1 << 30, g_dir, &e), 0);
  kvm_segment sg = {t0, 300};
  assert_int_equal(kvm_store_put(s, &sg, 1, c, NULL, &e), 0);
  size_t one = kvm_store_bytes(s);
  kvm_store_free(s);
  assert_true(one > 10000);
  size_t budget = one * 5 / 2;
  assert_int_equal(kvm_store_open(&s, &cf, 44, budget, g_dir, &e), 0);
  int32_t *tk[10];
  for (int i = 0; i < 10; i++) {
    tk[i] = toks_make(300, 200 + i);
    assert_int_equal(kvm_cache_open(&c, &cf, &e), 0);
    feed(c, tk[i], 0, 300);
    kvm_segment g = {tk[i], 300};
    assert_int_equal(kvm_store_put(s, &g, 1, c, NULL, &e), 0);
    assert_true(kvm_store_bytes(s) <= budget);
    assert_true(kvm_store_count(s) <= 2);
  }
  assert_int_equal(kvm_store_count(s), 2);
  /* the most recent two are resident; the first comes back from disk */
  kvm_prefix *p;
  int m;
  size_t nt;
  kvm_segment g9 = {tk[9], 300}, g0 = {tk[0], 300};
  assert_int_equal(kvm_store_lookup(s, &g9, 1, &p, &m, &nt, &e), 0);
  assert_false(kvm_prefix_from_disk(p));
  kvm_prefix_unref(p);
  assert_int_equal(kvm_store_lookup(s, &g0, 1, &p, &m, &nt, &e), 0);
  assert_true(kvm_prefix_from_disk(p));
  assert_int_equal(nt, 300);
  assert_true(kvm_store_bytes(s) <= budget);
  /* a fork keeps an evicted prefix alive without counting against the store */
  kvm_cache *f;
  assert_int_equal(kvm_prefix_fork(p, 300, &f, &e), 0);
  kvm_prefix_unref(p);
  for (int i = 1; i < 4; i++) {
    kvm_segment g = {tk[i], 300};
    assert_int_equal(kvm_store_lookup(s, &g, 1, &p, &m, &nt, &e), 0);
    kvm_prefix_unref(p);
    assert_true(kvm_store_bytes(s) <= budget);
  }
  float o[3 * QD];
  probe(f, o);
  kvm_cache_free(f);
  /* a prefix larger than the whole budget: handed out, never resident */
  kvm_store_free(s);
  assert_int_equal(kvm_store_open(&s, &cf, 44, one / 2, g_dir, &e), 0);
  assert_int_equal(kvm_cache_open(&c, &cf, &e), 0);
  feed(c, t0, 0, 300);
  assert_int_equal(kvm_store_put(s, &sg, 1, c, &p, &e), 0);
  assert_int_equal(kvm_store_bytes(s), 0);
  assert_int_equal(kvm_prefix_len(p), 300);
  kvm_prefix_unref(p);
  kvm_store_free(s);
  for (int i = 0; i < 10; i++) free(tk[i]);
  free(t0);
}

/* Several threads share one store whose budget holds one prefix and a half,
 * so every lookup of another prefix loads it from disk and evicts: forks are
 * made, extended and freed on all threads while the store drops prefixes,
 * and each fork still gives the outputs it gave single-threaded. */
enum { TH = 4, TH_ITERS = 60, TH_PREFIXES = 3 };
typedef struct th_arg {
  kvm_store *s;
  int32_t **tk;
  const float *ref; /* [TH_PREFIXES][3*QD] */
  int id, bad;
  char why[600];
} th_arg;

static void *th_run(void *v) {
  th_arg *a = v;
  for (int it = 0; it < TH_ITERS && !a->bad; it++) {
    int i = (a->id + it) % TH_PREFIXES;
    kvm_segment g = {a->tk[i], 300};
    kvm_prefix *p;
    int m;
    size_t nt;
    kvm_cache *f;
    kv_err e;
    if (kvm_store_lookup(a->s, &g, 1, &p, &m, &nt, &e) || nt != 300) {
      snprintf(a->why, sizeof a->why, "lookup %d: %s", i, e.msg);
      a->bad = 1;
      break;
    }
    int rc = kvm_prefix_fork(p, 300, &f, &e);
    kvm_prefix_unref(p); /* the fork's reference may be the last one soon */
    if (rc) {
      snprintf(a->why, sizeof a->why, "fork %d: %s", i, e.msg);
      a->bad = 1;
      break;
    }
    float k[KVD], v2[KVD], o[3 * QD];
    for (int t = 300; t < 310; t++) {
      for (int x = 0; x < KVD; x++) {
        k[x] = tokval(a->tk[i][t], t, x);
        v2[x] = tokval(a->tk[i][t] + 7, t, x + 100);
      }
      for (int l = 0; l < 3; l++) rc |= kvm_cache_append(f, l, k, v2, NULL);
    }
    probe(f, o);
    for (int x = 0; x < 3 * QD && !rc; x++)
      if (fabsf(o[x] - a->ref[i * 3 * QD + x]) > 1e-6f) rc = 1;
    if (rc) {
      snprintf(a->why, sizeof a->why, "prefix %d iteration %d: outputs differ", i, it);
      a->bad = 1;
    }
    kvm_cache_free(f);
  }
  return NULL;
}

static void test_threads_share_store(void **st) {
  kvm_config cf;
  small_cfg(&cf, 512);
  kv_err e;
  kvm_store *s;
  int32_t *tk[TH_PREFIXES];
  float ref[TH_PREFIXES * 3 * QD];
  assert_int_equal(kvm_store_open(&s, &cf, 45, (size_t)1 << 30, g_dir, &e), 0);
  for (int i = 0; i < TH_PREFIXES; i++) {
    tk[i] = toks_make(310, 300 + i);
    kvm_cache *c;
    assert_int_equal(kvm_cache_open(&c, &cf, &e), 0);
    feed(c, tk[i], 0, 300);
    kvm_segment g = {tk[i], 300};
    kvm_prefix *p;
    assert_int_equal(kvm_store_put(s, &g, 1, c, &p, &e), 0);
    kvm_cache *f;
    assert_int_equal(kvm_prefix_fork(p, 300, &f, &e), 0);
    kvm_prefix_unref(p);
    feed(f, tk[i], 300, 310);
    probe(f, ref + i * 3 * QD);
    kvm_cache_free(f);
  }
  size_t one = kvm_store_bytes(s) / TH_PREFIXES;
  kvm_store_free(s);
  assert_int_equal(kvm_store_open(&s, &cf, 45, one * 3 / 2, g_dir, &e), 0);
  pthread_t th[TH];
  th_arg args[TH];
  for (int t = 0; t < TH; t++) {
    args[t] = (th_arg){s, tk, ref, t, 0, ""};
    assert_int_equal(pthread_create(&th[t], NULL, th_run, &args[t]), 0);
  }
  for (int t = 0; t < TH; t++) pthread_join(th[t], NULL);
  for (int t = 0; t < TH; t++)
    if (args[t].bad) fail_msg("thread %d: %s", t, args[t].why);
  assert_true(kvm_store_count(s) <= 1);
  assert_true(kvm_store_bytes(s) <= one * 3 / 2);
  kvm_store_free(s);
  for (int i = 0; i < TH_PREFIXES; i++) free(tk[i]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_snapshot_roundtrip_and_flips, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fork_cow_and_truncate, setup, teardown),
      cmocka_unit_test(test_copy_and_truncate),
      cmocka_unit_test_setup_teardown(test_segments_longest_run, setup, teardown),
      cmocka_unit_test_setup_teardown(test_budget_lru, setup, teardown),
      cmocka_unit_test_setup_teardown(test_threads_share_store, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
