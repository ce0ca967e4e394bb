/*
 * server.c — the event loop: the single-instance lock, the listening socket,
 * connections (peer uid check, handshake, encrypted frames, msgpack-rpc
 * decoding), the outbox through which workers reply, signals and the drain
 * on shutdown; and the daemon's logger.
 *
 * The bottom of the daemon: it calls no other file of daemon/ (params.c
 * aside). Requests, cancellations, departed connections, the drain and
 * SIGHUP reach the layers above through the dmn_hooks given to
 * dmn_server_open (daemon.c wires them to the router and the job queue).
 *
 * Invariants:
 *  - only the loop thread touches connections and sessions; workers reach a
 *    connection only through dmn_post(), by connection id, so a reply for a
 *    connection that has gone is dropped, never written to a freed struct;
 *  - a connection that sends one bad byte (oversize frame, garbage before
 *    the handshake, a failed MAC, an undecodable message) is logged and
 *    closed; no other connection notices;
 *  - the socket is created with umask 077 (0600) inside a 0700 directory and
 *    every accepted peer's uid is checked with SO_PEERCRED;
 *  - at most max_unauth connections are unauthenticated (accepted, handshake
 *    not done) at once: accepting one more drops the one that has made the
 *    least progress (nothing received, then the oldest), so a flood of idle
 *    connections cannot lock out a real client, which sends its HELLO at
 *    once and finishes the handshake in about a millisecond (closing the
 *    new connection instead would refuse every real client for as long as
 *    the flood refills the slots); every unauthenticated connection is also
 *    closed HANDSHAKE_TIMEOUT after accept however many bytes it dribbles
 *    (slowloris);
 *  - at most ACCEPT_BURST connections are accepted per loop iteration (libuv
 *    would accept for as long as the backlog refills, starving every other
 *    connection and the timers): a real client's HELLO is read, at the
 *    latest, after 2 bursts of newer connections, well inside the cap;
 *  - an authenticated connection with no request in flight that has neither
 *    completed a frame nor been sent anything for idle_timeout_ms is closed
 *    (with a final message, so the client sees a clean close).
 */
#define _GNU_SOURCE /* struct ucred */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/server_internal.h"
#include "daemon/params_internal.h"

#define HANDSHAKE_TIMEOUT 5.0   /* seconds from accept to an established session */
#define MAX_UNAUTH_DEFAULT 64   /* unauthenticated connections at once */
#define IDLE_TIMEOUT_DEFAULT_MS (10 * 60 * 1000)
#define SWEEP_MS 250            /* handshake and idle timeouts are checked this often */
#define DROP_LOG_S 10.0         /* drops over the cap are logged at most this often */
#define ACCEPT_BURST 16         /* connections accepted per loop iteration */
#define DRAIN_TIMEOUT 5.0       /* seconds running jobs get on shutdown */
#define WRITE_QUEUE_MAX (64u << 20)
#define READ_CHUNK 65536

typedef struct dmn_conn dmn_conn;
struct dmn_conn {
  dmn_server *srv;
  uint64_t id;
  uv_pipe_t pipe;
  ipc_framer *fr;
  ipc_session *sess;  /* created when the first bytes arrive: an idle connection costs no crypto */
  double t_accept;
  double t_active;    /* last complete frame received or message sent */
  int closing, ready; /* ready: the handshake completed (the session may die later) */
  int got_bytes;      /* anything received (a real client's HELLO comes at once) */
  int pending;        /* requests routed and not yet answered */
  dmn_conn *prev, *next;
};

typedef struct outmsg {
  uint64_t conn_id;
  uint8_t *msg;
  size_t n;
  int response; /* answers one of the connection's pending requests */
  struct outmsg *next;
} outmsg;

struct dmn_server {
  dmn_config cfg;
  char runtime_dir[2048], sock_path[2200], lock_path[2200], secret_path[2048], data_dir[2048];
  char model_path[2048];
  int lock_fd;
  ipc_secret secret;
  uv_loop_t loop;
  uv_pipe_t listener;
  uv_async_t wake;
  uv_timer_t sweep, drain;
  uv_check_t accept_check; /* after each poll phase: the next burst of accepts */
  int accepts, accept_pending; /* this iteration's accepts; one is waiting in the backlog */
  uv_signal_t sig_term, sig_int, sig_hup;
  int listening, stopping, closed;
  int loop_ready; /* the loop is initialised and not yet closed */
  double drain_t0;
  atomic_int stop_requested;
  dmn_conn *conns;
  uint64_t next_conn_id;
  int n_conns, n_unauth; /* n_unauth: open, not closing, handshake not done */
  int max_unauth;
  double idle_timeout; /* seconds; <= 0: never */
  pthread_mutex_t out_mu;
  outmsg *out_head, *out_tail;
  dmn_hooks hooks;
  dmn_app app; /* the layers above: held, never called */
  char rbuf[READ_CHUNK]; /* the loop reads into one buffer: on_read consumes it before the next read */
  pthread_t loop_thread; /* set by dmn_server_run: posts from it skip the outbox */
  int loop_running;
  double t_start;
  uint64_t n_accepted, n_rejected, n_bad_frames, n_requests, n_truncated;
  uint64_t n_dropped, n_dropped_logged, n_idle_closed;
  double t_drop_log;
};

/* ---------------------------------------------------------------- logging */

void dmn_log(const dmn_server *s, int level, const char *event, const char *fmt, ...) {
  static const char *const names[] = {"debug", "info", "warn", "error"};
  if (level == DMN_DEBUG && (!s || !s->cfg.verbose)) return;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  for (char *p = msg; *p; p++)
    if (*p == '"' || *p == '\n') *p = *p == '"' ? '\'' : ' ';
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  fprintf(stderr, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s msg=\"%s\"\n", tm.tm_year + 1900,
          tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[level & 3],
          event, msg);
}

/* --------------------------------------------------------------- accessors */

dmn_app *dmn_server_app(dmn_server *s) { return &s->app; }
const dmn_config *dmn_server_config(const dmn_server *s) { return &s->cfg; }
uv_loop_t *dmn_server_loop(dmn_server *s) { return &s->loop; }
const char *dmn_server_socket(const dmn_server *s) { return s->sock_path; }

void dmn_server_status(dmn_server *s, cJSON *o) {
  cJSON_AddStringToObject(o, "version", "0.1.0");
  cJSON_AddNumberToObject(o, "protocol", IPC_PROTOCOL_VERSION);
  cJSON_AddNumberToObject(o, "pid", (double)getpid());
  cJSON_AddNumberToObject(o, "uptime_s", kv_now() - s->t_start);
  cJSON_AddStringToObject(o, "socket", s->sock_path);
  cJSON_AddNumberToObject(o, "connections", s->n_conns);
  cJSON_AddNumberToObject(o, "unauthenticated", s->n_unauth);
  cJSON_AddNumberToObject(o, "dropped_unauthenticated", (double)s->n_dropped);
  cJSON_AddNumberToObject(o, "idle_closed", (double)s->n_idle_closed);
  cJSON_AddNumberToObject(o, "accepted", (double)s->n_accepted);
  cJSON_AddNumberToObject(o, "rejected", (double)s->n_rejected);
  cJSON_AddNumberToObject(o, "bad_frames", (double)s->n_bad_frames);
  cJSON_AddNumberToObject(o, "truncated", (double)s->n_truncated);
  cJSON_AddNumberToObject(o, "requests", (double)s->n_requests);
  cJSON_AddBoolToObject(o, "draining", s->stopping);
}

/* ----------------------------------------------------------------- writing */

static int established(const dmn_conn *c) { return c->sess && ipc_session_established(c->sess); }

typedef struct wreq {
  uv_write_t req;
  uv_buf_t buf;
} wreq;

static void conn_close(dmn_conn *c, const char *why);

static void on_write(uv_write_t *req, int status) {
  wreq *w = (wreq *)req;
  if (status < 0 && status != UV_ECANCELED) {
    dmn_conn *c = req->handle->data;
    if (c) conn_close(c, "write failed");
  }
  free(w->buf.base);
  free(w);
}

/* Writes one frame (header + payload) without copying the payload twice:
 * buf holds 4 free bytes followed by n payload bytes, and is taken. */
static int conn_write_frame(dmn_conn *c, uint8_t *buf, size_t n) {
  if (c->closing) {
    free(buf);
    return KV_EIO;
  }
  if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) > WRITE_QUEUE_MAX) {
    free(buf);
    conn_close(c, "client does not read its replies (write queue over 64 MiB)");
    return KV_ELIMIT;
  }
  ipc_frame_header(buf, (uint32_t)n);
  wreq *w = malloc(sizeof *w);
  if (!w) {
    free(buf);
    conn_close(c, "out of memory");
    return KV_ENOMEM;
  }
  w->buf = uv_buf_init((char *)buf, (unsigned)(n + 4));
  int rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &w->buf, 1, on_write);
  if (rc < 0) {
    free(buf);
    free(w);
    conn_close(c, uv_strerror(rc));
    return KV_EIO;
  }
  return 0;
}

/* Seals a plaintext message and writes it. */
static int conn_send(dmn_conn *c, const uint8_t *msg, size_t n, int final) {
  if (c->closing || !established(c)) return KV_EIO;
  uint8_t *buf = malloc(4 + n + 17);
  if (!buf) {
    conn_close(c, "out of memory");
    return KV_ENOMEM;
  }
  size_t cn;
  kv_err e;
  if (ipc_session_seal(c->sess, msg, n, final, buf + 4, n + 17, &cn, &e)) {
    free(buf);
    dmn_log(c->srv, DMN_ERROR, "conn.seal", "conn=%llu %s", (unsigned long long)c->id, e.msg);
    conn_close(c, "seal failed");
    return e.code;
  }
  c->t_active = kv_now();
  return conn_write_frame(c, buf, cn);
}

static dmn_conn *conn_find(dmn_server *s, uint64_t id) {
  for (dmn_conn *c = s->conns; c; c = c->next)
    if (c->id == id) return c;
  return NULL;
}

/* Loop thread: one message (msg NULL: none, only the end of a request) to
 * the connection if it is still there. */
static void deliver(dmn_server *s, uint64_t conn_id, const uint8_t *msg, size_t n, int response) {
  dmn_conn *c = conn_find(s, conn_id);
  if (!c) return;
  if (response && c->pending > 0) c->pending--;
  if (msg) conn_send(c, msg, n, 0);
}

static void post(dmn_server *s, uint64_t conn_id, uint8_t *msg, size_t n, int response) {
  if (conn_id == 0) {
    free(msg);
    return;
  }
  if (__atomic_load_n(&s->loop_running, __ATOMIC_ACQUIRE) && pthread_equal(pthread_self(), s->loop_thread)) {
    /* Inline answers from the loop thread go straight out: no outbox hop. */
    deliver(s, conn_id, msg, n, response);
    free(msg);
    return;
  }
  outmsg *m = malloc(sizeof *m);
  if (!m) {
    free(msg);
    return;
  }
  m->conn_id = conn_id;
  m->msg = msg;
  m->n = n;
  m->response = response;
  m->next = NULL;
  pthread_mutex_lock(&s->out_mu);
  if (s->out_tail) s->out_tail->next = m;
  else s->out_head = m;
  s->out_tail = m;
  pthread_mutex_unlock(&s->out_mu);
  uv_async_send(&s->wake);
}

void dmn_post(dmn_server *s, uint64_t conn_id, uint8_t *msg, size_t n) { post(s, conn_id, msg, n, 0); }

void dmn_post_response(dmn_server *s, uint64_t conn_id, uint32_t req_id, int rc, const char *errmsg,
                       const cJSON *result) {
  if (conn_id == 0) return;
  cJSON *err = rc ? ipc_error_new(rc, errmsg) : NULL;
  uint8_t *b = NULL;
  size_t n = 0;
  kv_err e;
  if (ipc_encode_response(req_id, err, result, &b, &n, &e) != 0) {
    dmn_log(s, DMN_ERROR, "rpc.encode", "response to request %u: %s", req_id, e.msg);
    cJSON *fe = ipc_error_new(KV_EFORMAT, e.msg); /* the request still gets its one answer */
    kv_err e2;
    if (!fe || ipc_encode_response(req_id, fe, NULL, &b, &n, &e2) != 0) b = NULL, n = 0;
    cJSON_Delete(fe);
  }
  post(s, conn_id, b, n, 1);
  cJSON_Delete(err);
}

static void flush_outbox(dmn_server *s) {
  pthread_mutex_lock(&s->out_mu);
  outmsg *m = s->out_head;
  s->out_head = s->out_tail = NULL;
  pthread_mutex_unlock(&s->out_mu);
  while (m) {
    outmsg *next = m->next;
    deliver(s, m->conn_id, m->msg, m->n, m->response);
    free(m->msg);
    free(m);
    m = next;
  }
}

/* ------------------------------------------------------------- connections */

static void on_conn_closed(uv_handle_t *h) {
  dmn_conn *c = h->data;
  ipc_framer_free(c->fr);
  ipc_session_free(c->sess);
  free(c);
}

static void conn_close(dmn_conn *c, const char *why) {
  if (c->closing) return;
  c->closing = 1;
  dmn_server *s = c->srv;
  int canceled = s->hooks.conn_gone(s, c->id);
  dmn_log(s, why ? DMN_INFO : DMN_DEBUG, "conn.close", "conn=%llu %s%s%d job(s) canceled", (unsigned long long)c->id,
          why ? why : "closed", why ? "; " : "; ", canceled);
  if (c->prev) c->prev->next = c->next;
  else s->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  s->n_conns--;
  if (!c->ready) s->n_unauth--;
  uv_read_stop((uv_stream_t *)&c->pipe);
  uv_close((uv_handle_t *)&c->pipe, on_conn_closed);
}

/* A fatal protocol error on one connection: log it, count it, close it. */
static void conn_reject(dmn_conn *c, const char *what, const kv_err *e) {
  dmn_server *s = c->srv;
  if (c->ready) s->n_bad_frames++;
  else s->n_rejected++;
  dmn_log(s, DMN_WARN, "conn.reject", "conn=%llu %s: %s", (unsigned long long)c->id, what, e ? e->msg : "");
  conn_close(c, what);
}

static void send_response(dmn_conn *c, uint32_t id, int code, const char *msg, const cJSON *result) {
  cJSON *err = code ? ipc_error_new(code, msg) : NULL;
  uint8_t *b;
  size_t n;
  kv_err e;
  if (ipc_encode_response(id, err, result, &b, &n, &e) == 0) {
    conn_send(c, b, n, 0);
    free(b);
  }
  cJSON_Delete(err);
}

static void handle_message(dmn_conn *c, const uint8_t *pt, size_t n) {
  dmn_server *s = c->srv;
  ipc_msg m;
  kv_err e;
  if (ipc_msg_decode(pt, n, &m, &e)) {
    conn_reject(c, "undecodable message", &e);
    return;
  }
  if (m.type == IPC_REQUEST) {
    s->n_requests++;
    if (s->stopping) {
      send_response(c, m.id, KV_EBUSY, "the daemon is shutting down", NULL);
    } else {
      dmn_request r = {s, c->id, m.id, m.method, m.params};
      c->pending++; /* before routing: an inline answer comes back within the hook */
      s->hooks.request(s, &r);
    }
  } else if (m.type == IPC_NOTIFY) {
    if (!strcmp(m.method, "$/cancel")) {
      int id = dmn_param_int(m.params, "id", 0, -1);
      int found = id >= 0 && s->hooks.cancel(s, c->id, (uint32_t)id);
      dmn_log(s, DMN_INFO, "job.cancel", "conn=%llu request=%d %s", (unsigned long long)c->id, id,
              found ? "canceled" : "not found (already done)");
    } else {
      dmn_log(s, DMN_DEBUG, "rpc.notify", "conn=%llu ignored notification %s", (unsigned long long)c->id, m.method);
    }
  } /* responses from a client are ignored: the daemon sends no requests */
  ipc_msg_clear(&m);
}

/* One frame from a client. Until the handshake is done, the frame is a
 * handshake step (ipc_session_step, ipc/crypto.c): the client
 * authenticates by proving it holds this user's secret (a MAC over the
 * X25519 transcript), and a step that fails rejects the connection. After
 * it, every frame must open under the session's keys (ipc_session_open:
 * tampered, replayed or reordered frames are rejected) before its message
 * is decoded. */
static void handle_frame(dmn_conn *c, const uint8_t *p, size_t n) {
  kv_err e;
  if (!established(c)) {
    uint8_t out[IPC_HANDSHAKE_MAX];
    size_t on;
    int rc = ipc_session_step(c->sess, p, n, out, sizeof out, &on, &e);
    if (rc < 0) {
      conn_reject(c, "handshake failed", &e);
      return;
    }
    if (on) {
      uint8_t *buf = malloc(4 + on);
      if (!buf) {
        conn_close(c, "out of memory");
        return;
      }
      memcpy(buf + 4, out, on);
      if (conn_write_frame(c, buf, on)) return;
    }
    if (rc == IPC_HS_DONE) {
      c->ready = 1;
      c->t_active = kv_now();
      c->srv->n_unauth--;
      ipc_framer_set_max(c->fr, IPC_FRAME_MAX);
      dmn_log(c->srv, DMN_DEBUG, "conn.ready", "conn=%llu handshake done", (unsigned long long)c->id);
    }
    return;
  }
  c->t_active = kv_now();
  uint8_t *pt = malloc(n > 17 ? n - 17 : 1);
  if (!pt) {
    conn_close(c, "out of memory");
    return;
  }
  size_t pn;
  int final;
  if (ipc_session_open(c->sess, p, n, pt, n > 17 ? n - 17 : 1, &pn, &final, &e)) {
    free(pt);
    conn_reject(c, "bad frame", &e);
    return;
  }
  if (pn > 0) handle_message(c, pt, pn);
  free(pt);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  dmn_conn *c = h->data;
  (void)suggested;
  buf->base = c->srv->rbuf; /* libuv calls read_cb before the next alloc_cb */
  buf->len = READ_CHUNK;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
  dmn_conn *c = st->data;
  kv_err e;
  if (nread < 0) {
    if (c->closing) return;
    if (nread == UV_EOF) {
      if (established(c) && !ipc_session_peer_closed(c->sess)) {
        c->srv->n_truncated++;
        dmn_log(c->srv, DMN_WARN, "conn.truncated", "conn=%llu stream ended without a final message%s",
                (unsigned long long)c->id, ipc_framer_pending(c->fr) ? " (inside a frame)" : "");
        conn_close(c, "truncated stream");
      } else if (!established(c)) {
        conn_reject(c, "closed before the handshake completed", NULL);
      } else {
        conn_close(c, NULL);
      }
    } else {
      conn_close(c, uv_strerror((int)nread));
    }
    return;
  }
  if (nread > 0 && !c->closing) {
    c->got_bytes = 1;
    if (!c->sess && ipc_session_new(&c->sess, IPC_SERVER, &c->srv->secret, &e)) {
      conn_reject(c, "session setup failed", &e);
      return;
    }
    if (ipc_framer_feed(c->fr, (const uint8_t *)buf->base, (size_t)nread, &e)) {
      conn_reject(c, c->ready ? "oversize frame" : "garbage before the handshake", &e);
    } else {
      const uint8_t *p;
      size_t n;
      int rc;
      while (!c->closing && (rc = ipc_framer_next(c->fr, &p, &n, &e)) == 1) handle_frame(c, p, n);
      if (!c->closing && rc < 0) conn_reject(c, "oversize frame", &e);
    }
  }
}

/* The unauthenticated connection to give up for a new one: one that has
 * sent nothing before one that has (a real client's HELLO comes at once),
 * then the oldest. */
static void drop_unauthenticated(dmn_server *s) {
  dmn_conn *victim = NULL;
  for (dmn_conn *c = s->conns; c; c = c->next) {
    if (c->ready || c->closing) continue;
    if (!victim || c->got_bytes < victim->got_bytes || (c->got_bytes == victim->got_bytes && c->id < victim->id))
      victim = c;
  }
  if (!victim) return;
  s->n_dropped++;
  dmn_log(s, DMN_DEBUG, "conn.drop", "conn=%llu unauthenticated connections at the cap (%d): dropped",
          (unsigned long long)victim->id, s->max_unauth);
  conn_close(victim, NULL);
}

static void accept_one(dmn_server *s);

static void on_connection(uv_stream_t *server, int status) {
  dmn_server *s = server->data;
  if (status < 0) {
    dmn_log(s, DMN_ERROR, "conn.accept", "listen error: %s", uv_strerror(status));
    return;
  }
  if (s->accepts >= ACCEPT_BURST) { /* not taking it stops libuv's accept loop until on_accept_check */
    s->accept_pending = 1;
    return;
  }
  s->accepts++;
  accept_one(s);
}

/* After the poll phase (every other ready connection has been served): the
 * connection left waiting is taken, which restarts the listener's watcher. */
static void on_accept_check(uv_check_t *h) {
  dmn_server *s = h->data;
  s->accepts = 0;
  if (s->accept_pending && s->listening) {
    s->accept_pending = 0;
    s->accepts++;
    accept_one(s);
  }
}

/* Accepts one client on the socket. The first check of who connects: the
 * peer's uid (SO_PEERCRED) must be this user's, else the connection is
 * rejected before it may send anything; the handshake that authenticates
 * it follows in handle_frame. At most max_unauth connections wait
 * unauthenticated (drop_unauthenticated). */
static void accept_one(dmn_server *s) {
  uv_stream_t *server = (uv_stream_t *)&s->listener;
  dmn_conn *c = calloc(1, sizeof *c);
  if (!c) { /* left in the backlog: the next iteration tries again */
    s->accept_pending = 1;
    return;
  }
  c->srv = s;
  c->id = ++s->next_conn_id;
  c->t_accept = kv_now();
  uv_pipe_init(&s->loop, &c->pipe, 0);
  c->pipe.data = c;
  kv_err e;
  if (uv_accept(server, (uv_stream_t *)&c->pipe) != 0 || ipc_framer_new(&c->fr, IPC_HANDSHAKE_MAX, &e)) {
    uv_close((uv_handle_t *)&c->pipe, on_conn_closed);
    return;
  }
  s->n_accepted++;
  if (s->n_unauth >= s->max_unauth) drop_unauthenticated(s);
  c->next = s->conns;
  if (s->conns) s->conns->prev = c;
  s->conns = c;
  s->n_conns++;
  s->n_unauth++;
  uv_os_fd_t fd;
  struct ucred cred;
  socklen_t cl = sizeof cred;
  int have_cred = uv_fileno((uv_handle_t *)&c->pipe, &fd) == 0 && getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0;
  if (!have_cred || cred.uid != getuid()) {
    kv_err pe;
    if (have_cred) kv_err_set(&pe, KV_EDENIED, "peer uid %u is not this user (%u)", (unsigned)cred.uid, (unsigned)getuid());
    else kv_err_set(&pe, KV_EDENIED, "peer credentials unreadable (SO_PEERCRED)");
    conn_reject(c, "peer credentials", &pe);
    return;
  }
  int queued = 0; /* a real client has sent its HELLO by the time it is accepted */
  if (ioctl(fd, FIONREAD, &queued) == 0 && queued > 0) c->got_bytes = 1;
  dmn_log(s, DMN_DEBUG, "conn.accept", "conn=%llu pid=%d", (unsigned long long)c->id, (int)cred.pid);
  uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read);
}

/* ------------------------------------------------------------- lifecycle */

static void on_closed_noop(uv_handle_t *h) { (void)h; }

/* Final step of shutdown: everything is drained; close all handles. */
static void close_all(dmn_server *s) {
  if (s->closed) return;
  s->closed = 1;
  s->hooks.closing(s); /* joins workers: their last replies are in the outbox */
  flush_outbox(s);
  while (s->conns) {
    dmn_conn *c = s->conns;
    conn_send(c, (const uint8_t *)"", 0, 1); /* final: a clean close for the client */
    conn_close(c, "daemon stopping");
  }
  uv_close((uv_handle_t *)&s->wake, on_closed_noop);
  uv_close((uv_handle_t *)&s->sweep, on_closed_noop);
  uv_close((uv_handle_t *)&s->drain, on_closed_noop);
  uv_close((uv_handle_t *)&s->accept_check, on_closed_noop);
  if (s->cfg.handle_signals) {
    uv_close((uv_handle_t *)&s->sig_term, on_closed_noop);
    uv_close((uv_handle_t *)&s->sig_int, on_closed_noop);
    uv_close((uv_handle_t *)&s->sig_hup, on_closed_noop);
  }
}

static void on_drain_tick(uv_timer_t *t) {
  dmn_server *s = t->data;
  int active = s->hooks.active(s);
  flush_outbox(s);
  if (active == 0 || kv_now() - s->drain_t0 > DRAIN_TIMEOUT) {
    if (active) dmn_log(s, DMN_WARN, "daemon.drain", "%d job(s) still running after %.0fs: canceling", active, DRAIN_TIMEOUT);
    uv_timer_stop(t);
    close_all(s);
  }
}

static void begin_stop(dmn_server *s, const char *why) {
  if (s->stopping) return;
  s->stopping = 1;
  dmn_log(s, DMN_INFO, "daemon.stop", "%s: draining (no new requests; background jobs canceled)", why);
  if (s->listening) {
    uv_close((uv_handle_t *)&s->listener, on_closed_noop);
    s->listening = 0;
    unlink(s->sock_path);
  }
  /* Background work (indexing) stops now; interactive answers may finish. */
  s->hooks.stopping(s);
  s->drain_t0 = kv_now();
  uv_timer_start(&s->drain, on_drain_tick, 0, 20);
}

static void on_wake(uv_async_t *a) {
  dmn_server *s = a->data;
  flush_outbox(s);
  if (atomic_load(&s->stop_requested) && !s->stopping) begin_stop(s, "stop requested");
}

void dmn_server_stop(dmn_server *s) {
  atomic_store(&s->stop_requested, 1);
  uv_async_send(&s->wake);
}

static void on_sweep(uv_timer_t *t) {
  dmn_server *s = t->data;
  double now = kv_now();
  for (dmn_conn *c = s->conns, *next; c; c = next) {
    next = c->next;
    if (!c->ready && now - c->t_accept > HANDSHAKE_TIMEOUT) {
      kv_err e;
      kv_err_set(&e, KV_EBUSY, "no handshake within %.0f s", HANDSHAKE_TIMEOUT);
      conn_reject(c, "handshake timeout", &e);
    } else if (c->ready && !c->closing && s->idle_timeout > 0 && c->pending == 0 &&
               now - c->t_active > s->idle_timeout) {
      char why[96];
      snprintf(why, sizeof why, "idle for more than %.3g s", s->idle_timeout);
      s->n_idle_closed++;
      conn_send(c, (const uint8_t *)"", 0, 1); /* final: a clean close for the client */
      conn_close(c, why);
    }
  }
  /* Drops over the cap are counted, and logged in one line now and then:
   * a flood must not become a flood of log lines. */
  if (s->n_dropped != s->n_dropped_logged && now - s->t_drop_log >= DROP_LOG_S) {
    dmn_log(s, DMN_WARN, "conn.drop",
            "%llu unauthenticated connection(s) dropped at the cap of %d (%llu in all): a client is opening "
            "connections without completing the handshake",
            (unsigned long long)(s->n_dropped - s->n_dropped_logged), s->max_unauth,
            (unsigned long long)s->n_dropped);
    s->n_dropped_logged = s->n_dropped;
    s->t_drop_log = now;
  }
}

static void on_signal(uv_signal_t *h, int signum) {
  dmn_server *s = h->data;
  if (signum == SIGHUP) {
    dmn_log(s, DMN_INFO, "daemon.reload",
            "SIGHUP: reloading the repo registry and every cached policy; retrying a model that failed to load");
    s->hooks.reload(s);
    return;
  }
  begin_stop(s, signum == SIGTERM ? "SIGTERM" : "SIGINT");
}

/* Creates dir with mode 0700 and refuses one that others can enter. */
static int private_dir(const char *dir, kv_err *err) {
  int rc = kv_mkdirs(dir, 0700, err);
  if (rc) return rc;
  struct stat st;
  if (stat(dir, &st) != 0) return kv_err_set(err, KV_EIO, "%s: %s", dir, strerror(errno));
  if (st.st_uid != getuid()) return kv_err_set(err, KV_EDENIED, "%s: not owned by this user", dir);
  if ((st.st_mode & 077) && chmod(dir, 0700) != 0)
    return kv_err_set(err, KV_EDENIED, "%s: mode %03o and cannot chmod 0700", dir, (unsigned)(st.st_mode & 0777));
  return 0;
}

int dmn_server_open(dmn_server **out, const dmn_config *cfg, const dmn_hooks *hooks, kv_err *err) {
  *out = NULL;
  dmn_server *s = calloc(1, sizeof *s);
  if (!s) return kv_err_set(err, KV_ENOMEM, "daemon: out of memory");
  s->cfg = *cfg;
  s->hooks = *hooks;
  s->max_unauth = cfg->max_unauth > 0 ? cfg->max_unauth : MAX_UNAUTH_DEFAULT;
  s->idle_timeout = cfg->idle_timeout_ms < 0 ? 0
                    : (cfg->idle_timeout_ms ? cfg->idle_timeout_ms : IDLE_TIMEOUT_DEFAULT_MS) / 1000.0;
  s->lock_fd = -1;
  s->t_start = kv_now();
  pthread_mutex_init(&s->out_mu, NULL);
  int rc = 0;
  if (cfg->runtime_dir) snprintf(s->runtime_dir, sizeof s->runtime_dir, "%s", cfg->runtime_dir);
  else if (kv_xdg_dir(s->runtime_dir, sizeof s->runtime_dir, "runtime")) {
    rc = kv_err_set(err, KV_ELIMIT, "runtime dir path too long");
    goto fail;
  }
  if (cfg->data_dir) snprintf(s->data_dir, sizeof s->data_dir, "%s", cfg->data_dir);
  else kv_xdg_dir(s->data_dir, sizeof s->data_dir, "data");
  if (cfg->secret_path) snprintf(s->secret_path, sizeof s->secret_path, "%s", cfg->secret_path);
  else ipc_secret_path(s->secret_path, sizeof s->secret_path);
  s->cfg.runtime_dir = s->runtime_dir;
  s->cfg.data_dir = s->data_dir;
  s->cfg.secret_path = s->secret_path;
  if (cfg->model_path) {
    snprintf(s->model_path, sizeof s->model_path, "%s", cfg->model_path);
    s->cfg.model_path = s->model_path;
  }
  snprintf(s->sock_path, sizeof s->sock_path, "%s/kvasird.sock", s->runtime_dir);
  snprintf(s->lock_path, sizeof s->lock_path, "%s/kvasird.lock", s->runtime_dir);
  if (strlen(s->sock_path) >= 108) {
    rc = kv_err_set(err, KV_ELIMIT, "%s: socket path longer than 107 bytes", s->sock_path);
    goto fail;
  }
  if ((rc = private_dir(s->runtime_dir, err))) goto fail;
  s->lock_fd = open(s->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (s->lock_fd < 0) {
    rc = kv_err_set(err, KV_EIO, "%s: %s", s->lock_path, strerror(errno));
    goto fail;
  }
  if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
    rc = kv_err_set(err, KV_EBUSY, "another kvasird is running (%s is locked)", s->lock_path);
    goto fail;
  }
  char pid[32];
  int pl = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
  if (ftruncate(s->lock_fd, 0) == 0 && write(s->lock_fd, pid, (size_t)pl) < 0) { /* informational only */
  }
  if ((rc = ipc_secret_load(&s->secret, s->secret_path, 1, err))) goto fail;
  if (uv_loop_init(&s->loop) != 0) {
    rc = kv_err_set(err, KV_EIO, "uv_loop_init failed");
    goto fail;
  }
  uv_pipe_init(&s->loop, &s->listener, 0);
  s->listener.data = s;
  unlink(s->sock_path); /* stale: we hold the lock, so no live daemon owns it */
  mode_t old = umask(077);
  int b = uv_pipe_bind(&s->listener, s->sock_path);
  umask(old);
  if (b == 0) chmod(s->sock_path, 0600);
  if (b != 0 || uv_listen((uv_stream_t *)&s->listener, 256, on_connection) != 0) {
    rc = kv_err_set(err, KV_EIO, "%s: cannot listen: %s", s->sock_path, uv_strerror(b));
    uv_close((uv_handle_t *)&s->listener, NULL);
    uv_run(&s->loop, UV_RUN_NOWAIT);
    uv_loop_close(&s->loop);
    goto fail;
  }
  s->listening = 1;
  uv_async_init(&s->loop, &s->wake, on_wake);
  s->wake.data = s;
  uv_timer_init(&s->loop, &s->sweep);
  s->sweep.data = s;
  uv_timer_start(&s->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
  uv_unref((uv_handle_t *)&s->sweep);
  uv_timer_init(&s->loop, &s->drain);
  s->drain.data = s;
  uv_check_init(&s->loop, &s->accept_check);
  s->accept_check.data = s;
  uv_check_start(&s->accept_check, on_accept_check);
  uv_unref((uv_handle_t *)&s->accept_check);
  if (s->cfg.handle_signals) {
    uv_signal_init(&s->loop, &s->sig_term);
    uv_signal_init(&s->loop, &s->sig_int);
    uv_signal_init(&s->loop, &s->sig_hup);
    s->sig_term.data = s->sig_int.data = s->sig_hup.data = s;
    uv_signal_start(&s->sig_term, on_signal, SIGTERM);
    uv_signal_start(&s->sig_int, on_signal, SIGINT);
    uv_signal_start(&s->sig_hup, on_signal, SIGHUP);
  }
  /* A client that vanishes mid-write must not kill the daemon (libuv writes
   * with write(2), which raises SIGPIPE); errors come back as EPIPE instead. */
  signal(SIGPIPE, SIG_IGN);
  s->loop_ready = 1;
  *out = s;
  return 0;
fail:
  if (s->lock_fd >= 0) close(s->lock_fd);
  pthread_mutex_destroy(&s->out_mu);
  free(s);
  return rc;
}

int dmn_server_run(dmn_server *s, kv_err *err) {
  s->loop_thread = pthread_self();
  __atomic_store_n(&s->loop_running, 1, __ATOMIC_RELEASE);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  __atomic_store_n(&s->loop_running, 0, __ATOMIC_RELEASE);
  dmn_log(s, DMN_INFO, "daemon.exit", "stopped cleanly after %.1f s", kv_now() - s->t_start);
  return 0;
}

void dmn_server_shutdown(dmn_server *s) {
  if (!s || !s->loop_ready) return;
  if (!s->closed) {
    s->stopping = 1;
    if (s->listening) {
      uv_close((uv_handle_t *)&s->listener, on_closed_noop);
      s->listening = 0;
    }
    close_all(s);
    uv_run(&s->loop, UV_RUN_DEFAULT);
  }
  if (uv_loop_close(&s->loop) != 0) dmn_log(s, DMN_WARN, "daemon.exit", "loop closed with live handles");
  s->loop_ready = 0;
}

void dmn_server_close(dmn_server *s) {
  if (!s) return;
  dmn_server_shutdown(s);
  unlink(s->sock_path);
  flush_outbox(s); /* frees anything left */
  pthread_mutex_destroy(&s->out_mu);
  if (s->lock_fd >= 0) close(s->lock_fd);
  free(s); /* the lock file stays: unlinking it would let two daemons lock different inodes */
}
