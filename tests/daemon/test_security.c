/*
 * test_security.c — the daemon under attack, in-process: wrong key, tampered,
 * replayed and truncated streams, oversize frames, garbage before the
 * handshake, undecodable messages. Each must be rejected (connection closed,
 * counted in `status`) while other clients keep being served. Also: file
 * modes of the socket, its directory and the key; the single-instance lock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "tests/daemon/harness.h"

static th H;

static int setup(void **st) {
  kv_err e;
  th_env(&H);
  if (th_start(&H, 0, 2, &e)) {
    fprintf(stderr, "start: %s\n", e.msg);
    return 1;
  }
  return 0;
}

static int teardown(void **st) {
  th_stop(&H);
  th_cleanup(&H);
  return 0;
}

static int raw_connect(void) {
  char path[256];
  ipc_socket_path(path, sizeof path);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  assert_true(strlen(path) < sizeof a.sun_path);
  memcpy(a.sun_path, path, strlen(path) + 1);
  assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
  return fd;
}

static void send_frame(int fd, const uint8_t *p, size_t n) {
  uint8_t h[4];
  ipc_frame_header(h, (uint32_t)n);
  assert_int_equal(send(fd, h, 4, MSG_NOSIGNAL), 4);
  if (n) assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Reads one frame (blocking, 5 s); returns its length or -1 on EOF/error. */
static ssize_t recv_frame(int fd, uint8_t *buf, size_t cap) {
  uint8_t h[4];
  size_t got = 0;
  while (got < 4) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) return -1;
    ssize_t r = recv(fd, h + got, 4 - got, 0);
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  size_t n = ((size_t)h[0] << 24) | ((size_t)h[1] << 16) | ((size_t)h[2] << 8) | h[3];
  if (n > cap) return -1;
  got = 0;
  while (got < n) {
    ssize_t r = recv(fd, buf + got, n - got, 0);
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return (ssize_t)n;
}

/* 1 when the server closed fd (EOF) within 5 s. */
static int closed_by_server(int fd) {
  uint8_t b[512];
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) return 0;
    ssize_t r = recv(fd, b, sizeof b, 0);
    if (r <= 0) return 1;
  }
}

/* A raw client that completed the handshake with the real secret. */
static ipc_session *raw_handshake(int fd) {
  ipc_secret k;
  kv_err e;
  assert_int_equal(ipc_secret_load(&k, NULL, 0, &e), 0);
  ipc_session *s;
  assert_int_equal(ipc_session_new(&s, IPC_CLIENT, &k, &e), 0);
  uint8_t out[IPC_HANDSHAKE_MAX], in[IPC_HANDSHAKE_MAX];
  size_t on;
  ipc_session_step(s, NULL, 0, out, sizeof out, &on, &e);
  send_frame(fd, out, on);
  ssize_t n = recv_frame(fd, in, sizeof in);
  assert_true(n > 0);
  assert_int_equal(ipc_session_step(s, in, (size_t)n, out, sizeof out, &on, &e), IPC_HS_DONE);
  send_frame(fd, out, on);
  return s;
}

static size_t sealed_status(ipc_session *s, uint32_t id, uint8_t *ct, size_t cap) {
  uint8_t *m;
  size_t n, cn;
  kv_err e;
  assert_int_equal(ipc_encode_request(id, "status", NULL, &m, &n, &e), 0);
  assert_int_equal(ipc_session_seal(s, m, n, 0, ct, cap, &cn, &e), 0);
  free(m);
  return cn;
}

/* The daemon still answers a well-behaved client. */
static void assert_serving(void) {
  cJSON *st = th_status();
  assert_non_null(st);
  assert_true(th_num(st, "pid") == (double)getpid());
  cJSON_Delete(st);
}

static double stat_of(const char *key) {
  cJSON *st = th_status();
  assert_non_null(st);
  double v = th_num(st, key);
  cJSON_Delete(st);
  return v;
}

static void test_modes(void **st) {
  char p[256];
  struct stat sb;
  ipc_socket_path(p, sizeof p);
  assert_int_equal(stat(p, &sb), 0);
  assert_true(S_ISSOCK(sb.st_mode));
  assert_int_equal(sb.st_mode & 0777, 0600);
  *strrchr(p, '/') = 0;
  assert_int_equal(stat(p, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0700);
  ipc_secret_path(p, sizeof p);
  assert_int_equal(stat(p, &sb), 0);
  assert_int_equal(sb.st_mode & 0777, 0600);
  assert_int_equal(sb.st_size, 32);
  assert_serving();
}

static void test_single_instance(void **st) {
  dmn_config c;
  dmn_config_default(&c);
  c.watch = 0;
  dmn_server *s2;
  kv_err e;
  assert_int_equal(dmn_server_new(&s2, &c, &e), KV_EBUSY);
  assert_non_null(strstr(e.msg, "another kvasird"));
  assert_serving();
}

static void test_wrong_key(void **st) {
  char other[256];
  snprintf(other, sizeof other, "%s/other-secret", H.root);
  ipc_secret k;
  kv_err e;
  assert_int_equal(ipc_secret_load(&k, other, 1, &e), 0);
  double before = stat_of("rejected");
  ipc_client *c;
  int rc = ipc_client_connect(&c, NULL, other, &e);
  assert_int_equal(rc, KV_ECRYPTO); /* the client refuses a daemon that cannot prove the same secret */
  /* and the daemon refuses a client that proves the wrong one: */
  int fd = raw_connect();
  ipc_session *s;
  assert_int_equal(ipc_session_new(&s, IPC_CLIENT, &k, &e), 0);
  uint8_t out[IPC_HANDSHAKE_MAX], in[IPC_HANDSHAKE_MAX];
  size_t on;
  ipc_session_step(s, NULL, 0, out, sizeof out, &on, &e);
  send_frame(fd, out, on);
  ssize_t n = recv_frame(fd, in, sizeof in);
  assert_true(n > 0);
  /* forge a FINISH with a random MAC: the server must close */
  uint8_t fin[60] = "KVf1";
  for (int i = 4; i < 60; i++) fin[i] = (uint8_t)(i * 7);
  send_frame(fd, fin, sizeof fin);
  assert_true(closed_by_server(fd));
  close(fd);
  ipc_session_free(s);
  assert_true(stat_of("rejected") >= before + 2);
  assert_serving();
}

static void test_tampered_frame(void **st) {
  double before = stat_of("bad_frames");
  int fd = raw_connect();
  ipc_session *s = raw_handshake(fd);
  uint8_t ct[256], buf[4096];
  size_t n = sealed_status(s, 1, ct, sizeof ct);
  send_frame(fd, ct, n); /* genuine: answered */
  assert_true(recv_frame(fd, buf, sizeof buf) > 0);
  n = sealed_status(s, 2, ct, sizeof ct);
  ct[n / 2] ^= 0x20;
  send_frame(fd, ct, n);
  assert_true(closed_by_server(fd));
  close(fd);
  ipc_session_free(s);
  assert_true(stat_of("bad_frames") >= before + 1);
  assert_serving();
}

static void test_replayed_frame(void **st) {
  int fd = raw_connect();
  ipc_session *s = raw_handshake(fd);
  uint8_t ct[256], buf[4096];
  size_t n = sealed_status(s, 1, ct, sizeof ct);
  send_frame(fd, ct, n);
  assert_true(recv_frame(fd, buf, sizeof buf) > 0);
  send_frame(fd, ct, n); /* the same frame again */
  assert_true(closed_by_server(fd));
  close(fd);
  ipc_session_free(s);
  assert_serving();
}

static void test_truncated_stream(void **st) {
  double before = stat_of("truncated");
  int fd = raw_connect();
  ipc_session *s = raw_handshake(fd);
  uint8_t ct[256];
  size_t n = sealed_status(s, 1, ct, sizeof ct);
  uint8_t h[4];
  ipc_frame_header(h, (uint32_t)n);
  send(fd, h, 4, MSG_NOSIGNAL);
  send(fd, ct, n / 2, MSG_NOSIGNAL); /* half a frame, then EOF */
  shutdown(fd, SHUT_WR);
  assert_true(closed_by_server(fd));
  close(fd);
  ipc_session_free(s);
  /* the counter is bumped on the loop thread before the close */
  assert_true(stat_of("truncated") >= before + 1);
  assert_serving();
}

static void test_oversize_frames(void **st) {
  /* before the handshake the cap is IPC_HANDSHAKE_MAX */
  int fd = raw_connect();
  uint8_t h[4];
  ipc_frame_header(h, IPC_HANDSHAKE_MAX + 1);
  send(fd, h, 4, MSG_NOSIGNAL);
  assert_true(closed_by_server(fd));
  close(fd);
  /* after it, IPC_FRAME_MAX */
  fd = raw_connect();
  ipc_session *s = raw_handshake(fd);
  ipc_frame_header(h, IPC_FRAME_MAX + 1);
  send(fd, h, 4, MSG_NOSIGNAL);
  assert_true(closed_by_server(fd));
  close(fd);
  ipc_session_free(s);
  assert_serving();
}

static void test_garbage_before_handshake(void **st) {
  double before = stat_of("rejected");
  int fd = raw_connect();
  const char *g = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
  send(fd, g, strlen(g), MSG_NOSIGNAL); /* "GET " = a 1.2 GB frame header */
  assert_true(closed_by_server(fd));
  close(fd);
  fd = raw_connect();
  send_frame(fd, (const uint8_t *)"hello daemon", 12); /* small frame, wrong message */
  assert_true(closed_by_server(fd));
  close(fd);
  assert_true(stat_of("rejected") >= before + 2);
  assert_serving();
}

static void test_undecodable_and_unknown(void **st) {
  ipc_client *c;
  kv_err e;
  assert_int_equal(ipc_client_connect(&c, NULL, NULL, &e), 0);
  cJSON *r = NULL;
  assert_int_equal(ipc_client_call(c, "no.such.method", NULL, NULL, NULL, 5000, &r, &e), IPC_ERR_METHOD);
  assert_non_null(strstr(e.msg, "no.such.method"));
  /* the connection survives an unknown method */
  assert_int_equal(ipc_client_call(c, "status", NULL, NULL, NULL, 5000, &r, &e), 0);
  cJSON_Delete(r);
  /* a validly encrypted message that is not msgpack-rpc closes it */
  assert_int_equal(ipc_client_send(c, (const uint8_t *)"\xc1\xc1", 2, &e), 0);
  uint8_t *m;
  size_t n;
  assert_true(ipc_client_recv(c, &m, &n, 5000, &e) < 0);
  ipc_client_close(c);
  assert_serving();
}

static void test_daemon_not_running_message(void **st) {
  ipc_client *c;
  kv_err e;
  char p[256];
  snprintf(p, sizeof p, "%s/nowhere.sock", H.root);
  assert_int_equal(ipc_client_connect(&c, p, NULL, &e), KV_ENOTFOUND);
  assert_non_null(strstr(e.msg, "not running"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_modes),
      cmocka_unit_test(test_single_instance),
      cmocka_unit_test(test_wrong_key),
      cmocka_unit_test(test_tampered_frame),
      cmocka_unit_test(test_replayed_frame),
      cmocka_unit_test(test_truncated_stream),
      cmocka_unit_test(test_oversize_frames),
      cmocka_unit_test(test_garbage_before_handshake),
      cmocka_unit_test(test_undecodable_and_unknown),
      cmocka_unit_test(test_daemon_not_running_message),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
