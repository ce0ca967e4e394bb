/* test_session.c — the handshake and the encrypted streams in memory:
 * wrong key, tampered / replayed / reordered / cross-session frames,
 * truncation, malformed handshakes, and the secret file's modes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ipc/ipc.h"

typedef struct pair {
  ipc_session *c, *s;
} pair;

static int handshake(pair *p, const ipc_secret *ck, const ipc_secret *sk, kv_err *e) {
  assert_int_equal(ipc_session_new(&p->c, IPC_CLIENT, ck, e), 0);
  assert_int_equal(ipc_session_new(&p->s, IPC_SERVER, sk, e), 0);
  uint8_t a[IPC_HANDSHAKE_MAX], b[IPC_HANDSHAKE_MAX];
  size_t an, bn;
  assert_int_equal(ipc_session_step(p->c, NULL, 0, a, sizeof a, &an, e), IPC_HS_CONTINUE);
  assert_int_equal(an, 37);
  assert_int_equal(ipc_session_step(p->s, a, an, b, sizeof b, &bn, e), IPC_HS_CONTINUE);
  assert_int_equal(bn, 93);
  int rc = ipc_session_step(p->c, b, bn, a, sizeof a, &an, e);
  if (rc != IPC_HS_DONE) return rc;
  assert_int_equal(an, 60);
  return ipc_session_step(p->s, a, an, b, sizeof b, &bn, e);
}

static void pair_free(pair *p) {
  ipc_session_free(p->c);
  ipc_session_free(p->s);
}

static void secret(ipc_secret *k, uint8_t fill) { memset(k->key, fill, sizeof k->key); }

static size_t seal(ipc_session *s, const char *m, uint8_t *out, int final) {
  size_t n;
  kv_err e;
  assert_int_equal(ipc_session_seal(s, (const uint8_t *)m, strlen(m), final, out, 256, &n, &e), 0);
  assert_int_equal(n, strlen(m) + 17);
  return n;
}

static int open_(ipc_session *s, const uint8_t *c, size_t n, char *out, int *final) {
  size_t on;
  kv_err e;
  int rc = ipc_session_open(s, c, n, (uint8_t *)out, 256, &on, final, &e);
  if (!rc) out[on] = 0;
  return rc;
}

static void test_roundtrip(void **st) {
  pair p;
  kv_err e;
  ipc_secret k;
  secret(&k, 7);
  assert_int_equal(handshake(&p, &k, &k, &e), IPC_HS_DONE);
  assert_true(ipc_session_established(p.c) && ipc_session_established(p.s));
  uint8_t ct[256];
  char pt[256];
  int fin;
  size_t n = seal(p.c, "hello daemon", ct, 0);
  assert_int_equal(open_(p.s, ct, n, pt, &fin), 0);
  assert_string_equal(pt, "hello daemon");
  assert_int_equal(fin, 0);
  n = seal(p.s, "hello client", ct, 0);
  assert_int_equal(open_(p.c, ct, n, pt, &fin), 0);
  assert_string_equal(pt, "hello client");
  pair_free(&p);
}

/* Different secrets: the client refuses the server (server MAC mismatch). */
static void test_wrong_key(void **st) {
  pair p;
  kv_err e;
  ipc_secret a, b;
  secret(&a, 1);
  secret(&b, 2);
  assert_int_equal(handshake(&p, &a, &b, &e), KV_ECRYPTO);
  assert_non_null(strstr(e.msg, "secret"));
  pair_free(&p);
}

/* A client whose FINISH MAC is wrong is refused by the server. */
static void test_server_rejects_bad_finish(void **st) {
  kv_err e;
  ipc_secret k;
  secret(&k, 3);
  ipc_session *c, *s;
  assert_int_equal(ipc_session_new(&c, IPC_CLIENT, &k, &e), 0);
  assert_int_equal(ipc_session_new(&s, IPC_SERVER, &k, &e), 0);
  uint8_t a[IPC_HANDSHAKE_MAX], b[IPC_HANDSHAKE_MAX];
  size_t an, bn;
  ipc_session_step(c, NULL, 0, a, sizeof a, &an, &e);
  ipc_session_step(s, a, an, b, sizeof b, &bn, &e);
  assert_int_equal(ipc_session_step(c, b, bn, a, sizeof a, &an, &e), IPC_HS_DONE);
  a[an - 1] ^= 1;
  assert_int_equal(ipc_session_step(s, a, an, b, sizeof b, &bn, &e), KV_ECRYPTO);
  assert_false(ipc_session_established(s));
  ipc_session_free(c);
  ipc_session_free(s);
}

static void test_tamper_replay_reorder(void **st) {
  pair p;
  kv_err e;
  ipc_secret k;
  secret(&k, 9);
  assert_int_equal(handshake(&p, &k, &k, &e), IPC_HS_DONE);
  uint8_t c1[256], c2[256], c3[256];
  char pt[256];
  int fin;
  size_t n1 = seal(p.c, "one", c1, 0), n2 = seal(p.c, "two", c2, 0), n3 = seal(p.c, "three", c3, 0);
  /* reordered: "two" before "one" */
  pair q;
  assert_int_equal(handshake(&q, &k, &k, &e), IPC_HS_DONE);
  uint8_t q1[256], q2[256];
  seal(q.c, "one", q1, 0);
  size_t qn2 = seal(q.c, "two", q2, 0);
  assert_int_equal(open_(q.s, q2, qn2, pt, &fin), KV_ECRYPTO);
  pair_free(&q);
  /* replay */
  assert_int_equal(open_(p.s, c1, n1, pt, &fin), 0);
  assert_int_equal(open_(p.s, c1, n1, pt, &fin), KV_ECRYPTO);
  /* once broken, even the genuine next frame is refused */
  assert_int_equal(open_(p.s, c2, n2, pt, &fin), KV_ECRYPTO);
  pair_free(&p);
  /* tamper: every single bit flip of a frame is detected */
  assert_int_equal(handshake(&p, &k, &k, &e), IPC_HS_DONE);
  n1 = seal(p.c, "one", c1, 0);
  for (size_t bit = 0; bit < n1 * 8; bit++) {
    pair r;
    assert_int_equal(handshake(&r, &k, &k, &e), IPC_HS_DONE);
    uint8_t f[256];
    size_t fn = seal(r.c, "one", f, 0);
    f[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    assert_int_equal(open_(r.s, f, fn, pt, &fin), KV_ECRYPTO);
    pair_free(&r);
  }
  /* cross-session: a frame of session p is garbage to session q */
  assert_int_equal(handshake(&q, &k, &k, &e), IPC_HS_DONE);
  assert_int_equal(open_(q.s, c1, n1, pt, &fin), KV_ECRYPTO);
  /* too short to hold a tag */
  assert_int_equal(open_(p.s, c1, 5, pt, &fin), KV_ECRYPTO);
  pair_free(&q);
  pair_free(&p);
  (void)c3;
  (void)n3;
}

/* A clean close carries the final tag; a stream cut before it is told apart
 * (peer_closed stays 0), and nothing is accepted after the final frame. */
static void test_truncation(void **st) {
  pair p;
  kv_err e;
  ipc_secret k;
  secret(&k, 4);
  assert_int_equal(handshake(&p, &k, &k, &e), IPC_HS_DONE);
  uint8_t c1[256], c2[256], c3[256];
  char pt[256];
  int fin;
  size_t n1 = seal(p.c, "data", c1, 0), n2 = seal(p.c, "", c2, 1), n3 = seal(p.c, "late", c3, 0);
  assert_int_equal(open_(p.s, c1, n1, pt, &fin), 0);
  assert_int_equal(ipc_session_peer_closed(p.s), 0); /* EOF here = truncated */
  assert_int_equal(open_(p.s, c2, n2, pt, &fin), 0);
  assert_int_equal(fin, 1);
  assert_int_equal(ipc_session_peer_closed(p.s), 1);
  assert_int_equal(open_(p.s, c3, n3, pt, &fin), KV_ECRYPTO);
  pair_free(&p);
}

static void test_malformed_handshake(void **st) {
  kv_err e;
  ipc_secret k;
  secret(&k, 5);
  ipc_session *s;
  uint8_t out[IPC_HANDSHAKE_MAX];
  size_t on;
  uint8_t hello[37] = "KVh1";
  hello[4] = IPC_PROTOCOL_VERSION;
  assert_int_equal(ipc_session_new(&s, IPC_SERVER, &k, &e), 0);
  assert_int_equal(ipc_session_step(s, (const uint8_t *)"GET / HTTP/1.1\r\n", 16, out, sizeof out, &on, &e),
                   KV_EFORMAT);
  ipc_session_free(s);
  assert_int_equal(ipc_session_new(&s, IPC_SERVER, &k, &e), 0);
  hello[0] = 'X';
  assert_int_equal(ipc_session_step(s, hello, 37, out, sizeof out, &on, &e), KV_EFORMAT);
  assert_non_null(strstr(e.msg, "magic"));
  ipc_session_free(s);
  assert_int_equal(ipc_session_new(&s, IPC_SERVER, &k, &e), 0);
  hello[0] = 'K';
  hello[4] = 99;
  assert_int_equal(ipc_session_step(s, hello, 37, out, sizeof out, &on, &e), KV_EUNSUPPORTED);
  assert_non_null(strstr(e.msg, "version 99"));
  /* a dead session refuses to seal or open */
  uint8_t c[64];
  int fin;
  assert_true(ipc_session_seal(s, (const uint8_t *)"x", 1, 0, c, sizeof c, &on, &e) < 0);
  assert_true(ipc_session_open(s, c, 20, out, sizeof out, &on, &fin, &e) < 0);
  ipc_session_free(s);
}

static void test_secret_file(void **st) {
  char dir[] = "/tmp/kvasir-dmn-secret-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[512];
  snprintf(path, sizeof path, "%s/keys/secret", dir);
  ipc_secret a, b;
  kv_err e;
  assert_int_equal(ipc_secret_load(&a, path, 0, &e), KV_ENOTFOUND);
  assert_int_equal(ipc_secret_load(&a, path, 1, &e), 0);
  struct stat sb;
  assert_int_equal(stat(path, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  assert_int_equal(sb.st_size, 32);
  char kd[512];
  snprintf(kd, sizeof kd, "%s/keys", dir);
  assert_int_equal(stat(kd, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0700);
  assert_int_equal(ipc_secret_load(&b, path, 1, &e), 0); /* loaded, not recreated */
  assert_memory_equal(a.key, b.key, 32);
  chmod(path, 0644);
  assert_int_equal(ipc_secret_load(&b, path, 0, &e), KV_ECRYPTO);
  assert_non_null(strstr(e.msg, "0600"));
  chmod(path, 0600);
  truncate(path, 31);
  assert_int_equal(ipc_secret_load(&b, path, 0, &e), KV_ECRYPTO);
  assert_non_null(strstr(e.msg, "size"));
  char link[512];
  snprintf(link, sizeof link, "%s/link", dir);
  assert_int_equal(symlink(path, link), 0);
  assert_true(ipc_secret_load(&b, link, 0, &e) < 0); /* O_NOFOLLOW */
  unlink(link);
  unlink(path);
  rmdir(kd);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_wrong_key),
      cmocka_unit_test(test_server_rejects_bad_finish),
      cmocka_unit_test(test_tamper_replay_reorder),
      cmocka_unit_test(test_truncation),
      cmocka_unit_test(test_malformed_handshake),
      cmocka_unit_test(test_secret_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
