/*
 * test_jobs.c — the job machinery through the real protocol: cancel stops
 * generation within one token, a client that disconnects mid-stream frees
 * its job, interactive jobs run before queued background work, repo
 * add/list/remove, and `ask` returning citations (stub generator, so the
 * test needs no model) or saying that retrieval found nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <time.h>

#include "daemon/internal.h"
#include "tests/daemon/harness.h"

#define TOKEN_MS 25

static th H;

static int setup(void **st) {
  kv_err e;
  th_env(&H);
  const char *files[] = {"ipc/frame.c", "base/base.c"};
  if (th_make_repo(&H, files, 2)) return 1;
  if (th_start(&H, TOKEN_MS, 3, &e)) {
    fprintf(stderr, "start: %s\n", e.msg);
    return 1;
  }
  ipc_client *c;
  if (ipc_client_connect(&c, NULL, NULL, &e)) return 1;
  cJSON *p = cJSON_CreateObject(), *r = NULL;
  cJSON_AddStringToObject(p, "path", H.repo);
  cJSON_AddBoolToObject(p, "wait", 1);
  int rc = ipc_client_call(c, "repo.add", p, NULL, NULL, 60000, &r, &e);
  if (rc) fprintf(stderr, "repo.add: %s\n", e.msg);
  cJSON_Delete(p);
  cJSON_Delete(r);
  ipc_client_close(c);
  return rc ? 1 : 0;
}

static int teardown(void **st) {
  th_stop(&H);
  th_cleanup(&H);
  return 0;
}

typedef struct counter {
  int tokens, cancel_at, context;
} counter;

static int count_tokens(void *ud, const char *method, const cJSON *params) {
  counter *c = ud;
  if (!strcmp(method, "ask.context")) c->context++;
  if (strcmp(method, "ask.token")) return 0;
  const cJSON *kind = cJSON_GetObjectItem(params, "kind");
  if (cJSON_IsString(kind) && !strcmp(kind->valuestring, "facts")) return 0; /* the grounded lead */
  c->tokens++;
  return c->cancel_at && c->tokens >= c->cancel_at;
}

static cJSON *ask_params(const char *q, int max_tokens) {
  cJSON *p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "question", q);
  cJSON_AddStringToObject(p, "repo", H.repo);
  cJSON_AddNumberToObject(p, "max_tokens", max_tokens);
  return p;
}

static void test_ask_citations(void **st) {
  ipc_client *c;
  kv_err e;
  assert_int_equal(ipc_client_connect(&c, NULL, NULL, &e), 0);
  cJSON *p = ask_params("ipc_framer_feed oversize frame cap", 4), *r = NULL;
  counter cnt = {0};
  assert_int_equal(ipc_client_call(c, "ask", p, count_tokens, &cnt, 30000, &r, &e), 0);
  assert_int_equal(cnt.context, 1);
  assert_int_equal(cnt.tokens, 4);
  const cJSON *cites = cJSON_GetObjectItem(r, "citations");
  assert_true(cJSON_GetArraySize(cites) >= 1);
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(cites, 0), "path")->valuestring, "frame.c");
  assert_string_equal(cJSON_GetObjectItem(r, "generator")->valuestring, "stub");
  cJSON_Delete(r);
  cJSON_Delete(p);
  /* nothing matches: the answer says so (params as [map], rpcrequest style) */
  p = cJSON_CreateArray();
  cJSON_AddItemToArray(p, ask_params("zzqqxxyy", 3));
  assert_int_equal(ipc_client_call(c, "ask", p, NULL, NULL, 30000, &r, &e), 0);
  assert_string_equal(cJSON_GetObjectItem(r, "repo")->valuestring, H.repo);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(r, "citations")), 0);
  assert_non_null(strstr(cJSON_GetObjectItem(r, "retrieval")->valuestring, "found nothing"));
  cJSON_Delete(r);
  cJSON_Delete(p);
  /* both asks used the same resident prefix: built once, then reused */
  assert_int_equal(ipc_client_call(c, "cache.stats", NULL, NULL, NULL, 30000, &r, &e), 0);
  assert_true(th_num(r, "prefix_builds") == 1);
  assert_true(th_num(r, "prefix_hits") >= 1);
  assert_true(th_num(r, "prefixes") == 1);
  cJSON_Delete(r);
  ipc_client_close(c);
}

/* The editor's cursor / selection: those lines come first in the context
 * the answer was given (`context`; `citations` keep what the answer names). */
static void test_ask_editor_context(void **st) {
  ipc_client *c;
  kv_err e;
  assert_int_equal(ipc_client_connect(&c, NULL, NULL, &e), 0);
  char file[256];
  snprintf(file, sizeof file, "%s/base.c", H.repo);
  cJSON *p = ask_params("what does this code do", 2), *r = NULL;
  cJSON_AddStringToObject(p, "file", file);
  cJSON *cur = cJSON_AddObjectToObject(p, "cursor");
  cJSON_AddNumberToObject(cur, "line", 50);
  assert_int_equal(ipc_client_call(c, "ask", p, NULL, NULL, 30000, &r, &e), 0);
  const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "context"), 0);
  assert_string_equal(cJSON_GetObjectItem(c0, "path")->valuestring, "base.c");
  assert_true(th_num(c0, "start_line") == 40 && th_num(c0, "end_line") == 60);
  cJSON_Delete(r);
  cJSON_DeleteItemFromObject(p, "cursor");
  cJSON *sel = cJSON_AddObjectToObject(p, "selection");
  cJSON_AddNumberToObject(sel, "start_line", 3);
  cJSON_AddNumberToObject(sel, "end_line", 7);
  cJSON_AddStringToObject(p, "text", "l1\nl2\nl3\nl4\nl5\n"); /* unsaved buffer: 5 lines */
  assert_int_equal(ipc_client_call(c, "ask", p, NULL, NULL, 30000, &r, &e), 0);
  c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "context"), 0);
  assert_true(th_num(c0, "start_line") == 3 && th_num(c0, "end_line") == 5); /* clamped to the buffer */
  cJSON_Delete(r);
  cJSON_Delete(p);
  ipc_client_close(c);
}

/* Cancel after the 3rd token: at most one more token may arrive (the one in
 * flight), and the job reports how many it generated. */
static void test_cancel_within_one_token(void **st) {
  ipc_client *c;
  kv_err e;
  assert_int_equal(ipc_client_connect(&c, NULL, NULL, &e), 0);
  cJSON *p = ask_params("ipc_framer_next", 1000), *r = NULL;
  counter cnt = {0, 3, 0};
  double t0 = kv_now();
  int rc = ipc_client_call(c, "ask", p, count_tokens, &cnt, 30000, &r, &e);
  double dt = kv_now() - t0;
  assert_int_equal(rc, KV_ECANCELED);
  int generated = -1;
  const char *after = strstr(e.msg, "after ");
  assert_non_null(after);
  sscanf(after, "after %d", &generated);
  assert_true(generated >= 3 && generated <= 4);
  assert_true(cnt.tokens <= 4);
  assert_true(dt < 2.0); /* 1000 tokens would take 25 s */
  cJSON_Delete(p);
  ipc_client_close(c);
}

/* A client that disconnects mid-stream: its job is canceled and freed. */
static void test_disconnect_frees_job(void **st) {
  cJSON *s0 = th_status();
  double canceled0 = th_num(s0, "jobs.canceled");
  cJSON_Delete(s0);
  ipc_client *c;
  kv_err e;
  assert_int_equal(ipc_client_connect(&c, NULL, NULL, &e), 0);
  cJSON *p = ask_params("ipc_framer_next", 1000);
  uint8_t *m;
  size_t n;
  assert_int_equal(ipc_encode_request(ipc_client_next_id(c), "ask", p, &m, &n, &e), 0);
  assert_int_equal(ipc_client_send(c, m, n, &e), 0);
  free(m);
  cJSON_Delete(p);
  int tokens = 0;
  while (tokens < 2) { /* wait until it streams */
    assert_int_equal(ipc_client_recv(c, &m, &n, 5000, &e), 0);
    ipc_msg msg;
    assert_int_equal(ipc_msg_decode(m, n, &msg, &e), 0);
    if (msg.type == IPC_NOTIFY && !strcmp(msg.method, "ask.token")) tokens++;
    ipc_msg_clear(&msg);
    free(m);
  }
  cJSON *s1 = th_status();
  assert_true(th_num(s1, "jobs.running_interactive") == 1);
  cJSON_Delete(s1);
  close(ipc_client_fd(c)); /* vanish without a goodbye */
  double active = 1, canceled = canceled0;
  for (int i = 0; i < 100 && active != 0; i++) {
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    cJSON *s = th_status();
    active = th_num(s, "jobs.active");
    canceled = th_num(s, "jobs.canceled");
    cJSON_Delete(s);
  }
  assert_true(active == 0);
  assert_true(canceled == canceled0 + 1);
  ipc_client_close(c); /* frees; the fd is already closed (send fails quietly) */
}

/* The queue itself: with one worker busy, a queued interactive job runs
 * before background jobs queued earlier. */
static int order[8], n_order;
static volatile int release;
static pthread_mutex_t order_mu = PTHREAD_MUTEX_INITIALIZER;

static int job_record(dmn_job *j, cJSON **result, kv_err *err) {
  if (!strcmp(j->method, "blocker"))
    while (!__atomic_load_n(&release, __ATOMIC_ACQUIRE)) {
      struct timespec ts = {0, 1000000L};
      nanosleep(&ts, NULL);
    }
  pthread_mutex_lock(&order_mu);
  order[n_order++] = (int)j->req_id;
  pthread_mutex_unlock(&order_mu);
  return 0;
}

static void test_priority_order(void **st) {
  dmn_jobs *q;
  kv_err e;
  assert_int_equal(dmn_jobs_new(&q, NULL, 1, &e), 0);
  assert_int_equal(dmn_jobs_submit(q, dmn_job_new(NULL, 0, 1, "blocker", DMN_PRIO_BACKGROUND, NULL, job_record), &e), 0);
  struct timespec ts = {0, 20 * 1000000L};
  nanosleep(&ts, NULL); /* the blocker is running */
  assert_int_equal(dmn_jobs_submit(q, dmn_job_new(NULL, 0, 2, "bg", DMN_PRIO_BACKGROUND, NULL, job_record), &e), 0);
  assert_int_equal(dmn_jobs_submit(q, dmn_job_new(NULL, 0, 3, "bg", DMN_PRIO_BACKGROUND, NULL, job_record), &e), 0);
  assert_int_equal(dmn_jobs_submit(q, dmn_job_new(NULL, 0, 4, "ask", DMN_PRIO_INTERACTIVE, NULL, job_record), &e), 0);
  /* canceling a queued job ends it without running it */
  assert_int_equal(dmn_jobs_cancel(q, 0, 3), 1);
  __atomic_store_n(&release, 1, __ATOMIC_RELEASE);
  for (int i = 0; i < 200 && n_order < 3; i++) nanosleep(&ts, NULL);
  dmn_jobs_free(q);
  assert_int_equal(n_order, 3);
  assert_int_equal(order[0], 1);
  assert_int_equal(order[1], 4); /* interactive first */
  assert_int_equal(order[2], 2);
}

/* Two syncs of one repository never overlap (one index writer); a job on
 * another repository runs beside them. */
static int inflight_same, max_same, other_overlapped;
static volatile int other_running;

static int job_sync_like(dmn_job *j, cJSON **result, kv_err *err) {
  int same = !strcmp(j->repo, "/repo/a");
  if (same) {
    int now = __atomic_add_fetch(&inflight_same, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&order_mu);
    if (now > max_same) max_same = now;
    pthread_mutex_unlock(&order_mu);
  } else {
    __atomic_store_n(&other_running, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&inflight_same, __ATOMIC_SEQ_CST)) __atomic_store_n(&other_overlapped, 1, __ATOMIC_SEQ_CST);
  }
  struct timespec ts = {0, 100 * 1000000L};
  nanosleep(&ts, NULL);
  if (same) __atomic_sub_fetch(&inflight_same, 1, __ATOMIC_SEQ_CST);
  else __atomic_store_n(&other_running, 0, __ATOMIC_SEQ_CST);
  return 0;
}

static void test_one_sync_per_repo(void **st) {
  dmn_jobs *q;
  kv_err e;
  assert_int_equal(dmn_jobs_new(&q, NULL, 3, &e), 0); /* 2 background slots */
  for (int i = 0; i < 3; i++) {
    dmn_job *j = dmn_job_new(NULL, 0, (uint32_t)(10 + i), "repo.sync", DMN_PRIO_BACKGROUND, NULL, job_sync_like);
    snprintf(j->repo, sizeof j->repo, "/repo/a");
    assert_int_equal(dmn_jobs_submit(q, j, &e), 0);
  }
  dmn_job *o = dmn_job_new(NULL, 0, 20, "repo.sync", DMN_PRIO_BACKGROUND, NULL, job_sync_like);
  snprintf(o->repo, sizeof o->repo, "/repo/b");
  assert_int_equal(dmn_jobs_submit(q, o, &e), 0);
  dmn_job_counts c;
  for (int i = 0; i < 200; i++) {
    dmn_jobs_counts(q, &c);
    if (c.done == 4) break;
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
  }
  dmn_jobs_free(q);
  assert_int_equal(c.done, 4);
  assert_int_equal(max_same, 1);
  assert_int_equal(other_overlapped, 1); /* /repo/b ran beside a /repo/a sync */
}

static void test_repo_list_remove(void **st) {
  ipc_client *c;
  kv_err e;
  assert_int_equal(ipc_client_connect(&c, NULL, NULL, &e), 0);
  cJSON *r = NULL;
  assert_int_equal(ipc_client_call(c, "repo.list", NULL, NULL, NULL, 5000, &r, &e), 0);
  assert_int_equal(cJSON_GetArraySize(r), 1);
  const cJSON *ix = cJSON_GetObjectItem(cJSON_GetArrayItem(r, 0), "index");
  assert_true(th_num(ix, "files_indexed") == 2);
  cJSON_Delete(r);
  cJSON *p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "path", "/nonexistent/repo");
  assert_int_equal(ipc_client_call(c, "repo.add", p, NULL, NULL, 5000, &r, &e), KV_ENOTFOUND);
  cJSON_Delete(p);
  p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "path", H.root); /* a directory, not a git repository */
  assert_int_equal(ipc_client_call(c, "repo.add", p, NULL, NULL, 5000, &r, &e), KV_EINVAL);
  assert_non_null(strstr(e.msg, "not a git repository"));
  cJSON_Delete(p);
  /* repos.json on disk lists the repo */
  char path[256], *text;
  size_t len;
  snprintf(path, sizeof path, "%s/data/kvasir/repos.json", H.root);
  assert_int_equal(kv_read_file(path, 1 << 20, &text, &len, &e), 0);
  assert_non_null(strstr(text, H.repo));
  free(text);
  ipc_client_close(c);
}


static const char *conv_field(const cJSON *r, const char *k) {
  const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "conversation"), k);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Conversations: an ask starts one and returns its id; the id continues it
 * (turns counted); an unknown id starts a new one and says so. */
static void test_conversations(void **st) {
  ipc_client *c;
  kv_err e;
  assert_int_equal(ipc_client_connect(&c, NULL, NULL, &e), 0);
  cJSON *p = ask_params("ipc_framer_feed oversize frame cap", 2), *r = NULL;
  counter cnt = {0};
  assert_int_equal(ipc_client_call(c, "ask", p, count_tokens, &cnt, 30000, &r, &e), 0);
  const cJSON *cv = cJSON_GetObjectItem(r, "conversation");
  assert_non_null(cv);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cv, "new")));
  char id[64];
  snprintf(id, sizeof id, "%s", conv_field(r, "id"));
  assert_true(strlen(id) > 8);
  cJSON_Delete(r);
  cJSON_Delete(p);
  p = ask_params("and where is the cap checked", 2);
  cJSON_AddStringToObject(p, "conversation", id);
  assert_int_equal(ipc_client_call(c, "ask", p, count_tokens, &cnt, 30000, &r, &e), 0);
  cv = cJSON_GetObjectItem(r, "conversation");
  assert_string_equal(conv_field(r, "id"), id);
  assert_true(cJSON_IsFalse(cJSON_GetObjectItem(cv, "new")));
  assert_int_equal(cJSON_GetObjectItem(cv, "turns")->valueint, 2);
  assert_null(conv_field(r, "note"));
  cJSON_Delete(r);
  cJSON_Delete(p);
  p = ask_params("ipc_framer_feed", 2);
  cJSON_AddStringToObject(p, "conversation", "c-no-such-conversation");
  assert_int_equal(ipc_client_call(c, "ask", p, count_tokens, &cnt, 30000, &r, &e), 0);
  assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "conversation"), "new")));
  assert_string_not_equal(conv_field(r, "id"), "c-no-such-conversation");
  assert_non_null(strstr(conv_field(r, "note"), "unknown conversation 'c-no-such-conversation'"));
  cJSON_Delete(r);
  cJSON_Delete(p);
  ipc_client_close(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ask_citations),
      cmocka_unit_test(test_ask_editor_context),
      cmocka_unit_test(test_conversations),
      cmocka_unit_test(test_cancel_within_one_token),
      cmocka_unit_test(test_disconnect_frees_job),
      cmocka_unit_test(test_priority_order),
      cmocka_unit_test(test_one_sync_per_repo),
      cmocka_unit_test(test_repo_list_remove),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
