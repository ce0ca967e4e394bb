/*
 * bench_ipc.c — load on the protocol: N clients (default 64), each on its
 * own thread and connection, send R requests each (4 of 5 `status`, the rest
 * `repo.list` / `cache.stats`) while one more client streams an `ask`
 * (stub generator, one token per --token-ms). Every response is matched to
 * its request by id: a response with another id, a notification on a
 * non-ask connection or a missing response counts as misrouted / dropped.
 *
 * Reference on the same machine, same run: the same client threads against
 * a plain libuv echo server (4-byte length frames, no crypto, no msgpack),
 * so "ratio" = what the encryption + msgpack-rpc + routing cost per call.
 *
 * usage: bench_ipc [--clients N] [--requests R] [--token-ms MS]
 */
#include <poll.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <uv.h>

#include "tests/daemon/harness.h"

static int n_clients = 64, n_requests = 500, token_ms = 1;

typedef struct lat {
  double *v;
  size_t n;
} lat;

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(lat *l, double p) {
  if (!l->n) return 0;
  size_t i = (size_t)(p * (double)(l->n - 1) + 0.5);
  return l->v[i];
}

/* ------------------------------------------------------------ kvasir side */

typedef struct worker_arg {
  int idx;
  double *lat_status;
  size_t n_status;
  atomic_int *misrouted, *dropped;
} worker_arg;

static void *client_thread(void *p) {
  worker_arg *a = p;
  ipc_client *c;
  kv_err e;
  if (ipc_client_connect(&c, NULL, NULL, &e)) {
    fprintf(stderr, "connect: %s\n", e.msg);
    atomic_fetch_add(a->dropped, n_requests);
    return NULL;
  }
  static const char *const methods[] = {"status", "status", "status", "status", "repo.list", "status",
                                        "status", "status", "status", "cache.stats"};
  for (int i = 0; i < n_requests; i++) {
    const char *m = methods[(i + a->idx) % 10];
    uint32_t id = ipc_client_next_id(c);
    uint8_t *buf;
    size_t n;
    ipc_encode_request(id, m, NULL, &buf, &n, &e);
    double t0 = kv_now();
    if (ipc_client_send(c, buf, n, &e)) {
      free(buf);
      atomic_fetch_add(a->dropped, n_requests - i);
      break;
    }
    free(buf);
    for (;;) {
      uint8_t *r;
      size_t rn;
      if (ipc_client_recv(c, &r, &rn, 10000, &e)) {
        atomic_fetch_add(a->dropped, 1);
        goto done;
      }
      ipc_msg msg;
      int ok = ipc_msg_decode(r, rn, &msg, &e) == 0;
      free(r);
      if (!ok || msg.type != IPC_RESPONSE || msg.id != id || msg.error) {
        atomic_fetch_add(a->misrouted, 1);
        if (ok) ipc_msg_clear(&msg);
        if (ok && msg.type == IPC_NOTIFY) continue;
        break;
      }
      ipc_msg_clear(&msg);
      if (!strcmp(m, "status")) a->lat_status[a->n_status++] = kv_now() - t0;
      break;
    }
  }
done:
  ipc_client_close(c);
  return NULL;
}

typedef struct ask_arg {
  const char *repo;
  int tokens, bad_ids, ok;
  double seconds;
} ask_arg;

static int on_ask(void *ud, const char *method, const cJSON *params) {
  ask_arg *a = ud;
  if (!strcmp(method, "ask.token")) a->tokens++;
  if (cJSON_GetObjectItem(params, "id")->valueint != 1) a->bad_ids++;
  return 0;
}

static void *ask_thread(void *p) {
  ask_arg *a = p;
  ipc_client *c;
  kv_err e;
  if (ipc_client_connect(&c, NULL, NULL, &e)) return NULL;
  cJSON *params = cJSON_CreateObject(), *r = NULL;
  cJSON_AddStringToObject(params, "question", "how are frames decoded");
  cJSON_AddStringToObject(params, "repo", a->repo);
  cJSON_AddNumberToObject(params, "max_tokens", 4000);
  double t0 = kv_now();
  a->ok = ipc_client_call(c, "ask", params, on_ask, a, 120000, &r, &e) == 0;
  a->seconds = kv_now() - t0;
  if (!a->ok) fprintf(stderr, "ask: %s\n", e.msg);
  cJSON_Delete(params);
  cJSON_Delete(r);
  ipc_client_close(c);
  return NULL;
}

/* --------------------------------------------------------- echo reference */

typedef struct echo_conn {
  uv_pipe_t pipe;
  ipc_framer *fr;
} echo_conn;

typedef struct echo_srv {
  uv_loop_t loop;
  uv_pipe_t listener;
  uv_async_t stop;
  char path[128];
} echo_srv;

static void echo_alloc(uv_handle_t *h, size_t s, uv_buf_t *b) {
  b->base = malloc(65536);
  b->len = 65536;
}
static void echo_closed(uv_handle_t *h) {
  echo_conn *c = h->data;
  ipc_framer_free(c->fr);
  free(c);
}
static void echo_written(uv_write_t *w, int st) {
  free(w->data);
  free(w);
}
static void echo_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  echo_conn *c = s->data;
  kv_err e;
  if (n < 0) {
    free(b->base);
    uv_close((uv_handle_t *)s, echo_closed);
    return;
  }
  ipc_framer_feed(c->fr, (uint8_t *)b->base, (size_t)n, &e);
  free(b->base);
  const uint8_t *p;
  size_t len;
  while (ipc_framer_next(c->fr, &p, &len, &e) == 1) {
    uint8_t *out = malloc(len + 4);
    ipc_frame_header(out, (uint32_t)len);
    memcpy(out + 4, p, len);
    uv_write_t *w = malloc(sizeof *w);
    w->data = out;
    uv_buf_t buf = uv_buf_init((char *)out, (unsigned)(len + 4));
    uv_write(w, s, &buf, 1, echo_written);
  }
}
static void echo_conn_cb(uv_stream_t *l, int st) {
  echo_conn *c = calloc(1, sizeof *c);
  kv_err e;
  ipc_framer_new(&c->fr, 1 << 20, &e);
  uv_pipe_init(l->loop, &c->pipe, 0);
  c->pipe.data = c;
  uv_accept(l, (uv_stream_t *)&c->pipe);
  uv_read_start((uv_stream_t *)&c->pipe, echo_alloc, echo_read);
}
static void echo_walk_close(uv_handle_t *h, void *arg) {
  if (!uv_is_closing(h)) uv_close(h, h->type == UV_NAMED_PIPE && h->data ? echo_closed : NULL);
}
static void echo_stop_cb(uv_async_t *a) { uv_walk(a->loop, echo_walk_close, NULL); }
static void *echo_run(void *p) {
  echo_srv *s = p;
  uv_run(&s->loop, UV_RUN_DEFAULT);
  return NULL;
}

static void *echo_client(void *p) {
  worker_arg *a = p;
  echo_srv *s = (echo_srv *)(void *)a->misrouted; /* reused slot: see main */
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un ad = {.sun_family = AF_UNIX};
  memcpy(ad.sun_path, s->path, strlen(s->path) + 1);
  if (connect(fd, (struct sockaddr *)&ad, sizeof ad)) return NULL;
  uint8_t msg[64] = {0, 0, 0, 20}, back[64];
  for (int i = 0; i < n_requests; i++) {
    double t0 = kv_now();
    if (send(fd, msg, 24, MSG_NOSIGNAL) != 24) break;
    size_t got = 0;
    while (got < 24) {
      ssize_t r = recv(fd, back + got, 24 - got, 0);
      if (r <= 0) goto out;
      got += (size_t)r;
    }
    a->lat_status[a->n_status++] = kv_now() - t0;
  }
out:
  close(fd);
  return NULL;
}

static void collect(worker_arg *args, lat *l) {
  size_t total = 0;
  for (int i = 0; i < n_clients; i++) total += args[i].n_status;
  l->v = malloc((total + 1) * sizeof *l->v);
  l->n = 0;
  for (int i = 0; i < n_clients; i++) {
    memcpy(l->v + l->n, args[i].lat_status, args[i].n_status * sizeof *l->v);
    l->n += args[i].n_status;
  }
  qsort(l->v, l->n, sizeof *l->v, cmp_d);
}

int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--clients")) n_clients = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--requests")) n_requests = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--token-ms")) token_ms = atoi(argv[i + 1]);
  }
  if (n_clients < 1 || n_clients > 1024 || n_requests < 1) {
    fprintf(stderr, "usage: bench_ipc [--clients 1..1024] [--requests R] [--token-ms MS]\n");
    return 2;
  }
  th h;
  kv_err e;
  th_env(&h);
  const char *files[] = {"ipc/frame.c", "ipc/rpc.c", "base/base.c"};
  if (th_make_repo(&h, files, 3) || th_start(&h, token_ms, 3, &e)) {
    fprintf(stderr, "bench_ipc: cannot start the daemon: %s\n", e.msg);
    return 1;
  }
  {
    ipc_client *c;
    cJSON *p = cJSON_CreateObject(), *r = NULL;
    cJSON_AddStringToObject(p, "path", h.repo);
    cJSON_AddBoolToObject(p, "wait", 1);
    if (ipc_client_connect(&c, NULL, NULL, &e) || ipc_client_call(c, "repo.add", p, NULL, NULL, 60000, &r, &e)) {
      fprintf(stderr, "bench_ipc: repo.add: %s\n", e.msg);
      return 1;
    }
    cJSON_Delete(p);
    cJSON_Delete(r);
    ipc_client_close(c);
  }
  atomic_int misrouted = 0, dropped = 0;
  worker_arg *args = calloc((size_t)n_clients, sizeof *args);
  pthread_t *t = calloc((size_t)n_clients, sizeof *t);
  for (int i = 0; i < n_clients; i++) {
    args[i] = (worker_arg){i, malloc((size_t)n_requests * sizeof(double)), 0, &misrouted, &dropped};
  }
  ask_arg aa = {h.repo, 0, 0, 0, 0};
  pthread_t at;
  pthread_create(&at, NULL, ask_thread, &aa);
  struct timespec ts = {0, 50 * 1000000L};
  nanosleep(&ts, NULL); /* the ask is streaming */
  double t0 = kv_now();
  for (int i = 0; i < n_clients; i++) pthread_create(&t[i], NULL, client_thread, &args[i]);
  for (int i = 0; i < n_clients; i++) pthread_join(t[i], NULL);
  double wall = kv_now() - t0;
  cJSON *st = th_status();
  int streaming = th_num(st, "jobs.running_interactive") == 1;
  cJSON_Delete(st);
  lat lk;
  collect(args, &lk);
  size_t expected = (size_t)n_clients * (size_t)n_requests;
  size_t done = 0;
  for (int i = 0; i < n_clients; i++) done += args[i].n_status;
  th_stop(&h); /* drains: the ask finishes or is canceled after the drain timeout */
  pthread_join(at, NULL);

  /* reference: plain libuv echo server, same clients */
  echo_srv es;
  memset(&es, 0, sizeof es);
  snprintf(es.path, sizeof es.path, "%s/echo.sock", h.root);
  uv_loop_init(&es.loop);
  uv_pipe_init(&es.loop, &es.listener, 0);
  uv_pipe_bind(&es.listener, es.path);
  uv_listen((uv_stream_t *)&es.listener, 256, echo_conn_cb);
  uv_async_init(&es.loop, &es.stop, echo_stop_cb);
  pthread_t et;
  pthread_create(&et, NULL, echo_run, &es);
  worker_arg *ea = calloc((size_t)n_clients, sizeof *ea);
  for (int i = 0; i < n_clients; i++)
    ea[i] = (worker_arg){i, malloc((size_t)n_requests * sizeof(double)), 0, (atomic_int *)(void *)&es, NULL};
  double r0 = kv_now();
  for (int i = 0; i < n_clients; i++) pthread_create(&t[i], NULL, echo_client, &ea[i]);
  for (int i = 0; i < n_clients; i++) pthread_join(t[i], NULL);
  double rwall = kv_now() - r0;
  uv_async_send(&es.stop);
  pthread_join(et, NULL);
  uv_loop_close(&es.loop);
  lat le;
  collect(ea, &le);

  double p50 = pct(&lk, 0.50) * 1e6, p99 = pct(&lk, 0.99) * 1e6;
  double e50 = pct(&le, 0.50) * 1e6, e99 = pct(&le, 0.99) * 1e6;
  printf("bench_ipc: %d clients x %d requests (80%% status, 20%% repo.list/cache.stats) while one ask streams\n",
         n_clients, n_requests);
  printf("  kvasir  status p50 %8.1f us  p99 %8.1f us  throughput %9.0f req/s (all methods)\n", p50, p99,
         (double)expected / wall);
  printf("  echo    frame  p50 %8.1f us  p99 %8.1f us  throughput %9.0f req/s (plain libuv, reference)\n", e50, e99,
         (double)((size_t)n_clients * (size_t)n_requests) / rwall);
  printf("  ratio   p50 %.2fx  p99 %.2fx  throughput %.2fx (kvasir / reference)\n", p50 / (e50 > 0 ? e50 : 1),
         p99 / (e99 > 0 ? e99 : 1), ((double)expected / wall) / ((double)expected / rwall));
  printf("  ask     %d tokens streamed in %.2f s while loaded (still streaming at the end: %s), %d notifications with a wrong id\n",
         aa.tokens, aa.seconds, streaming ? "yes" : "no", aa.bad_ids);
  printf("  checks  status answered %zu/%zu, misrouted %d, dropped %d\n", lk.n, done, (int)misrouted, (int)dropped);
  int ok = misrouted == 0 && dropped == 0 && aa.bad_ids == 0;
  printf("  goal    p99 status < 1000 us: %s; no dropped or misrouted responses: %s\n", p99 < 1000 ? "MET" : "MISSED",
         ok ? "MET" : "MISSED");
  th_cleanup(&h);
  return ok ? 0 : 1;
}
