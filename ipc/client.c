/*
 * client.c — a blocking client of kvasird: connect to the Unix socket, check
 * that the daemon runs as this user (SO_PEERCRED), handshake, then send and
 * receive encrypted msgpack-rpc messages. Used by the CLI, the bridge, the
 * tests and bench_ipc; one client per thread.
 *
 * Invariants: every received frame goes through the framer's size cap and
 * the session's authentication before it is decoded; once any of them fails
 * the client is unusable (every later call fails) and should be closed.
 */
#define _GNU_SOURCE /* struct ucred, SO_PEERCRED */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "ipc/ipc.h"

struct ipc_client {
  int fd;
  int broken;
  uint32_t next_id;
  ipc_session *sess;
  ipc_framer *fr;
  char path[108];
};

int ipc_client_fd(const ipc_client *c) { return c->fd; }
int ipc_client_buffered(const ipc_client *c) { return !c->broken && ipc_framer_ready(c->fr); }
uint32_t ipc_client_next_id(ipc_client *c) { return ++c->next_id; }

static int write_all(int fd, const uint8_t *p, size_t n, kv_err *err) {
  while (n > 0) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return kv_err_set(err, KV_EIO, "daemon socket: write failed: %s", strerror(errno));
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Header and payload leave in one sendmsg: two writes would wake the
 * daemon once for the 4-byte header alone. */
static int send_frame(int fd, const uint8_t *p, size_t n, kv_err *err) {
  uint8_t hdr[4];
  ipc_frame_header(hdr, (uint32_t)n);
  struct iovec iov[2] = {{hdr, 4}, {(void *)p, n}};
  struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
  ssize_t w;
  do w = sendmsg(fd, &mh, MSG_NOSIGNAL);
  while (w < 0 && errno == EINTR);
  if (w < 0) return kv_err_set(err, KV_EIO, "daemon socket: write failed: %s", strerror(errno));
  if ((size_t)w == n + 4) return 0;
  /* a partial write (large frames): finish with plain writes */
  size_t done = (size_t)w;
  if (done < 4) {
    int rc = write_all(fd, hdr + done, 4 - done, err);
    if (rc) return rc;
    done = 4;
  }
  return write_all(fd, p + (done - 4), n - (done - 4), err);
}

/* Reads until one whole frame is buffered; returns it via payload/len. */
static int recv_frame(ipc_client *c, const uint8_t **payload, size_t *len, int timeout_ms, kv_err *err) {
  for (;;) {
    int rc = ipc_framer_next(c->fr, payload, len, err);
    if (rc < 0) return rc;
    if (rc == 1) return 0;
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int pr = poll(&pfd, 1, timeout_ms > 0 ? timeout_ms : -1);
    if (pr < 0 && errno == EINTR) continue;
    if (pr == 0) return kv_err_set(err, KV_EBUSY, "daemon socket: no answer within %d ms", timeout_ms);
    uint8_t buf[65536];
    ssize_t r = recv(c->fd, buf, sizeof buf, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return kv_err_set(err, KV_EIO, "daemon socket: read failed: %s", strerror(errno));
    if (r == 0) {
      if (c->sess && ipc_session_peer_closed(c->sess))
        return kv_err_set(err, KV_ECANCELED, "the daemon closed the connection");
      return kv_err_set(err, KV_EIO, "the daemon closed the connection without a final message%s",
                        ipc_framer_pending(c->fr) ? " (truncated frame)" : "");
    }
    if ((rc = ipc_framer_feed(c->fr, buf, (size_t)r, err))) return rc;
  }
}

int ipc_client_connect(ipc_client **out, const char *sock_path, const char *secret_path, kv_err *err) {
  *out = NULL;
  char def[4096];
  if (!sock_path) {
    if (ipc_socket_path(def, sizeof def)) return kv_err_set(err, KV_ELIMIT, "socket path too long");
    sock_path = def;
  }
  ipc_client *c = calloc(1, sizeof *c);
  if (!c) return kv_err_set(err, KV_ENOMEM, "ipc client: out of memory");
  c->fd = -1;
  int rc = 0;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(sock_path) >= sizeof addr.sun_path) {
    rc = kv_err_set(err, KV_ELIMIT, "%s: socket path longer than %zu bytes", sock_path, sizeof addr.sun_path - 1);
    goto fail;
  }
  memcpy(addr.sun_path, sock_path, strlen(sock_path) + 1);
  memcpy(c->path, sock_path, strlen(sock_path) + 1);
  ipc_secret secret;
  memset(&secret, 0, sizeof secret);
  c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    rc = kv_err_set(err, KV_EIO, "socket: %s", strerror(errno));
    goto fail;
  }
  if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
    int e = errno;
    rc = kv_err_set(err, (e == ENOENT || e == ECONNREFUSED) ? KV_ENOTFOUND : KV_EIO,
                    "the daemon is not running (%s: %s); start it with `kvasir daemon`", sock_path, strerror(e));
    goto fail;
  }
  struct ucred cred;
  socklen_t cl = sizeof cred;
  if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 || cred.uid != getuid()) {
    rc = kv_err_set(err, KV_ECRYPTO, "%s: the process behind the socket does not run as this user", sock_path);
    goto fail;
  }
  /* The secret is read after connecting so that "not running" wins over
   * "no secret yet" (the daemon creates it on its first start). */
  if ((rc = ipc_secret_load(&secret, secret_path, 0, err))) goto fail;
  if ((rc = ipc_framer_new(&c->fr, IPC_HANDSHAKE_MAX, err))) goto fail;
  if ((rc = ipc_session_new(&c->sess, IPC_CLIENT, &secret, err))) goto fail;
  memset(&secret, 0, sizeof secret);
  uint8_t hs[IPC_HANDSHAKE_MAX];
  size_t hn;
  if ((rc = ipc_session_step(c->sess, NULL, 0, hs, sizeof hs, &hn, err)) < 0) goto fail;
  if ((rc = send_frame(c->fd, hs, hn, err))) goto fail;
  const uint8_t *reply;
  size_t rn;
  if ((rc = recv_frame(c, &reply, &rn, 10000, err))) goto fail;
  rc = ipc_session_step(c->sess, reply, rn, hs, sizeof hs, &hn, err);
  if (rc != IPC_HS_DONE) {
    if (rc >= 0) rc = kv_err_set(err, KV_EFORMAT, "handshake did not complete");
    goto fail;
  }
  if ((rc = send_frame(c->fd, hs, hn, err))) goto fail;
  ipc_framer_set_max(c->fr, IPC_FRAME_MAX);
  *out = c;
  return 0;
fail:
  memset(&secret, 0, sizeof secret);
  if (c->fd >= 0) close(c->fd);
  ipc_session_free(c->sess);
  ipc_framer_free(c->fr);
  free(c);
  return rc;
}

static int seal_send(ipc_client *c, const uint8_t *m, size_t n, int final, kv_err *err) {
  if (c->broken) return kv_err_set(err, KV_EIO, "ipc client: connection already failed");
  uint8_t *ct = malloc(n + 17);
  if (!ct) return kv_err_set(err, KV_ENOMEM, "ipc client: out of memory");
  size_t cn;
  int rc = ipc_session_seal(c->sess, m, n, final, ct, n + 17, &cn, err);
  if (!rc) rc = send_frame(c->fd, ct, cn, err);
  free(ct);
  if (rc) c->broken = 1;
  return rc;
}

int ipc_client_send(ipc_client *c, const uint8_t *msg, size_t n, kv_err *err) {
  return seal_send(c, msg, n, 0, err);
}

int ipc_client_recv(ipc_client *c, uint8_t **msg, size_t *n, int timeout_ms, kv_err *err) {
  *msg = NULL;
  if (c->broken) return kv_err_set(err, KV_EIO, "ipc client: connection already failed");
  const uint8_t *ct;
  size_t cn;
  int rc = recv_frame(c, &ct, &cn, timeout_ms, err);
  if (rc) {
    if (rc != KV_EBUSY) c->broken = 1;
    return rc;
  }
  uint8_t *pt = malloc(cn > 17 ? cn - 17 : 1);
  if (!pt) return kv_err_set(err, KV_ENOMEM, "ipc client: out of memory");
  int final;
  if ((rc = ipc_session_open(c->sess, ct, cn, pt, cn > 17 ? cn - 17 : 1, n, &final, err))) {
    free(pt);
    c->broken = 1;
    return rc;
  }
  if (final && *n == 0) {
    free(pt);
    return kv_err_set(err, KV_ECANCELED, "the daemon closed the connection");
  }
  *msg = pt;
  return 0;
}

int ipc_client_notify(ipc_client *c, const char *method, const cJSON *params, kv_err *err) {
  uint8_t *m;
  size_t n;
  int rc = ipc_encode_notify(method, params, &m, &n, err);
  if (rc) return rc;
  rc = seal_send(c, m, n, 0, err);
  free(m);
  return rc;
}

int ipc_client_call(ipc_client *c, const char *method, const cJSON *params, ipc_notify_fn fn, void *ud,
                    int timeout_ms, cJSON **result, kv_err *err) {
  if (result) *result = NULL;
  uint32_t id = ipc_client_next_id(c);
  uint8_t *m;
  size_t n;
  int rc = ipc_encode_request(id, method, params, &m, &n, err);
  if (rc) return rc;
  rc = seal_send(c, m, n, 0, err);
  free(m);
  if (rc) return rc;
  int canceled = 0;
  for (;;) {
    uint8_t *pt;
    size_t pn;
    if ((rc = ipc_client_recv(c, &pt, &pn, timeout_ms, err))) return rc;
    ipc_msg msg;
    rc = ipc_msg_decode(pt, pn, &msg, err);
    free(pt);
    if (rc) {
      c->broken = 1;
      return rc;
    }
    if (msg.type == IPC_NOTIFY) {
      if (fn && fn(ud, msg.method, msg.params) && !canceled) {
        cJSON *p = cJSON_CreateObject();
        if (p) cJSON_AddNumberToObject(p, "id", id);
        kv_err e2;
        ipc_client_notify(c, "$/cancel", p, &e2);
        cJSON_Delete(p);
        canceled = 1;
      }
    } else if (msg.type == IPC_RESPONSE && msg.id == id) {
      if (msg.error) {
        int code;
        const char *text;
        ipc_error_parse(msg.error, &code, &text);
        rc = kv_err_set(err, code, "%s: %s", method, text);
      } else if (result) {
        *result = msg.result;
        msg.result = NULL;
      }
      ipc_msg_clear(&msg);
      return rc;
    }
    ipc_msg_clear(&msg); /* stale responses and stray requests are ignored */
  }
}

void ipc_client_close(ipc_client *c) {
  if (!c) return;
  if (!c->broken && c->sess && ipc_session_established(c->sess)) {
    kv_err e;
    seal_send(c, (const uint8_t *)"", 0, 1, &e); /* final: a clean close, not a truncation */
  }
  if (c->fd >= 0) close(c->fd);
  ipc_session_free(c->sess);
  ipc_framer_free(c->fr);
  free(c);
}
