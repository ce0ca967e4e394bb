/*
 * test_peer_uid.c — kvasird refuses a client that runs as another user
 * (SO_PEERCRED), end to end, even one that holds the user's secret and
 * could otherwise complete the handshake. tests/daemon/test_security.c
 * checks the socket's and the key's modes in-process but never connects as
 * another uid; this does, with the real binary in private XDG dirs.
 *
 * Needs root: the test opens the runtime dirs (0711) and the socket (0666)
 * so that the file modes no longer keep uid 65534 (nobody) out, then a
 * forked child loads the secret, drops to uid/gid 65534 and sends its
 * handshake HELLO: the daemon must close the connection without an answer,
 * count it in status "rejected" and log the peer's uid. The same child,
 * without dropping its uid, completes the handshake (the control: what is
 * refused is the uid, not the child's procedure). Exits 77 (skipped, with
 * the reason) when not root or when the uid cannot be switched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "itest.h"

#define NOBODY 65534

enum { CHILD_ACCEPTED = 0, CHILD_REFUSED = 1, CHILD_NO_SETUID = 3, CHILD_NO_CONNECT = 4, CHILD_OTHER = 5 };

static char root[64];
static pid_t daemon_pid;
static ipc_secret secret;

static int drop_to_nobody(void) {
  return setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0 || getuid() != NOBODY;
}

static int send_frame(int fd, const uint8_t *p, size_t n) {
  uint8_t h[4];
  ipc_frame_header(h, (uint32_t)n);
  return send(fd, h, 4, MSG_NOSIGNAL) != 4 || send(fd, p, n, MSG_NOSIGNAL) != (ssize_t)n;
}

/* -1: the peer closed (or reset) before a whole frame came; else its length. */
static ssize_t recv_frame(int fd, uint8_t *buf, size_t cap) {
  uint8_t h[4];
  size_t got = 0, n = 4;
  uint8_t *dst = h;
  for (int phase = 0; phase < 2; phase++) {
    while (got < n) {
      struct pollfd p = {fd, POLLIN, 0};
      if (poll(&p, 1, 5000) <= 0) return -2; /* nothing within 5 s: neither answered nor closed */
      ssize_t r = recv(fd, dst + got, n - got, 0);
      if (r <= 0) return -1;
      got += (size_t)r;
    }
    if (phase == 0) {
      n = ((size_t)h[0] << 24) | ((size_t)h[1] << 16) | ((size_t)h[2] << 8) | h[3];
      if (n > cap) return -1;
      got = 0;
      dst = buf;
    }
  }
  return (ssize_t)n;
}

/* The child: connect (as nobody when asked), handshake with the secret. */
static int child_run(int as_nobody) {
  if (as_nobody && drop_to_nobody()) return CHILD_NO_SETUID;
  char path[256];
  ipc_socket_path(path, sizeof path);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  memcpy(a.sun_path, path, strlen(path) + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    fprintf(stderr, "child (uid %u): connect %s: %s\n", (unsigned)getuid(), path, strerror(errno));
    return CHILD_NO_CONNECT;
  }
  ipc_session *s;
  kv_err e;
  uint8_t out[IPC_HANDSHAKE_MAX], in[IPC_HANDSHAKE_MAX];
  size_t on;
  if (ipc_session_new(&s, IPC_CLIENT, &secret, &e) || ipc_session_step(s, NULL, 0, out, sizeof out, &on, &e) < 0)
    return CHILD_OTHER;
  if (send_frame(fd, out, on)) /* the daemon may close it before the HELLO is even sent */
    return errno == EPIPE || errno == ECONNRESET ? CHILD_REFUSED : CHILD_OTHER;
  ssize_t n = recv_frame(fd, in, sizeof in);
  if (n == -1) return CHILD_REFUSED;
  if (n < 0) {
    fprintf(stderr, "child (uid %u): neither an answer nor a close within 5 s\n", (unsigned)getuid());
    return CHILD_OTHER;
  }
  return ipc_session_step(s, in, (size_t)n, out, sizeof out, &on, &e) == IPC_HS_DONE ? CHILD_ACCEPTED : CHILD_OTHER;
}

static int child(int as_nobody) {
  fflush(NULL);
  pid_t pid = fork();
  if (pid == 0) _exit(child_run(as_nobody));
  int status;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -1;
  return WEXITSTATUS(status);
}

static double status_num(const char *key) {
  ipc_client *c;
  kv_err e;
  if (ipc_client_connect(&c, NULL, NULL, &e)) fail_msg("connect: %s", e.msg);
  cJSON *r = NULL;
  if (ipc_client_call(c, "status", NULL, NULL, NULL, 5000, &r, &e)) fail_msg("status: %s", e.msg);
  ipc_client_close(c);
  const cJSON *v = cJSON_GetObjectItem(r, key);
  double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
  cJSON_Delete(r);
  return d;
}

static int log_has(const char *needle) {
  char path[160], *text;
  size_t n;
  kv_err e;
  snprintf(path, sizeof path, "%s/kvasird.log", root);
  if (kv_read_file(path, 1 << 22, &text, &n, &e)) return 0;
  int found = strstr(text, needle) != NULL;
  free(text);
  return found;
}

static void test_other_uid_refused(void **st) {
  double rejected0 = status_num("rejected");
  assert_int_equal(child(0), CHILD_ACCEPTED); /* the control: this user, same procedure */
  int rc = child(1);
  print_message("child as uid %d: %s (exit %d)\n", NOBODY,
                rc == CHILD_REFUSED ? "closed before any answer" : rc == CHILD_ACCEPTED ? "ACCEPTED" : "other", rc);
  assert_int_equal(rc, CHILD_REFUSED);
  assert_true(status_num("rejected") >= rejected0 + 1);
  char want[64];
  snprintf(want, sizeof want, "peer uid %d is not this user", NOBODY);
  for (int i = 0; i < 50 && !log_has(want); i++) {
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
  }
  assert_true(log_has(want));
  assert_true(status_num("pid") > 0); /* and it keeps serving this user */
}

static int setup(void **st) {
  signal(SIGPIPE, SIG_IGN);
  if (itest_xdg_root(root, sizeof root, "/tmp/kvasir-peer-XXXXXX")) return 1;
  daemon_pid = itest_spawn_daemon(root, "--stub-generator", "1", (char *)NULL);
  if (itest_wait_daemon()) return 1;
  kv_err e;
  if (ipc_secret_load(&secret, NULL, 0, &e)) return 1;
  /* only the file modes change: everything on the way becomes traversable */
  char p[256];
  const char *dirs[] = {"", "/run", "/run/kvasir"};
  for (int i = 0; i < 3; i++) {
    snprintf(p, sizeof p, "%s%s", root, dirs[i]);
    if (chmod(p, 0711)) return 1;
  }
  ipc_socket_path(p, sizeof p);
  return chmod(p, 0666) != 0;
}

static int teardown(void **st) {
  itest_stop_daemon(&daemon_pid);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  return system(cmd) != 0;
}

int main(void) {
  if (geteuid() != 0) {
    printf("SKIP: needs root to connect as another uid (running as uid %u)\n", (unsigned)geteuid());
    return 77;
  }
  pid_t pid = fork(); /* can this process switch users at all (a user namespace may not map 65534)? */
  if (pid == 0) _exit(drop_to_nobody() ? 1 : 0);
  int status;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    printf("SKIP: cannot setuid(%d) here (no CAP_SETUID or the uid is not mapped)\n", NOBODY);
    return 77;
  }
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_other_uid_refused)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
