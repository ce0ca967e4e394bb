/*
 * test_streams64.c — 64 clients stream an ask each at the same time through
 * the real kvasird (stub generator, 50 tokens at 5 ms, 16 workers, private
 * XDG dirs). The repository has one file per client with a word of its own;
 * client i asks about its word with a request id of its own (distinct
 * across clients, sent as a raw request rather than through
 * ipc_client_call, which would give every connection the same ids). Every
 * client must see only notifications carrying its id (ask.context,
 * ask.facts, ask.token), its own file among the citations, the streamed
 * text (facts lead + generated tokens) equal to the final answer (so none
 * lost, none repeated, in order), exactly 50 generated tokens, and one
 * response, carrying its id, that cites its own file. The streams must
 * really overlap (checked from the first/last token times).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "ipc/ipc.h"
#include "itest.h"

#define CLIENTS 64
#define TOKENS 50

static char root[64], repo[128];
static pid_t daemon_pid;
static pthread_barrier_t go;

typedef struct client {
  int i;
  uint32_t id;
  char word[16], file[32]; /* its word, its file (relative) */
  ipc_client *c;
  /* what it saw */
  int rc, foreign, tokens, context_ok, facts, responses;
  kv_buf stream;
  char answer_err[600];
  cJSON *result;
  double t_first, t_last;
} client;

static client C[CLIENTS];

/* A word no other file holds: 5 letters from i. */
static void word_of(int i, char *w) {
  unsigned x = (unsigned)i * 2654435761u + 12345u;
  w[0] = 'q';
  for (int k = 1; k < 6; k++, x /= 26) w[k] = (char)('a' + x % 26);
  w[6] = 0;
}

static int cites_file(const cJSON *cites, const char *file) {
  const cJSON *c;
  cJSON_ArrayForEach(c, cites) {
    const cJSON *p = cJSON_GetObjectItem(c, "path");
    if (cJSON_IsString(p) && strstr(p->valuestring, file)) return 1;
  }
  return 0;
}

static void on_note(client *k, const char *method, const cJSON *p) {
  const cJSON *id = cJSON_GetObjectItem(p, "id");
  if (!cJSON_IsNumber(id) || (uint32_t)id->valuedouble != k->id) {
    k->foreign++;
    return;
  }
  if (!strcmp(method, "ask.context")) {
    k->context_ok = cites_file(cJSON_GetObjectItem(p, "citations"), k->file);
  } else if (!strcmp(method, "ask.facts")) {
    k->facts++;
  } else if (!strcmp(method, "ask.token")) {
    const cJSON *kind = cJSON_GetObjectItem(p, "kind"), *t = cJSON_GetObjectItem(p, "text");
    if (cJSON_IsString(t)) kv_buf_puts(&k->stream, t->valuestring);
    if (!(cJSON_IsString(kind) && !strcmp(kind->valuestring, "facts"))) { /* the grounded lead is not generated */
      k->tokens++;
      double now = kv_now();
      if (!k->t_first) k->t_first = now;
      k->t_last = now;
    }
  }
}

static void *client_run(void *arg) {
  client *k = arg;
  kv_err e;
  cJSON *p = cJSON_CreateObject();
  char q[128];
  snprintf(q, sizeof q, "what does %s do", k->word);
  cJSON_AddStringToObject(p, "question", q);
  cJSON_AddStringToObject(p, "repo", repo);
  cJSON_AddNumberToObject(p, "max_tokens", TOKENS);
  uint8_t *m;
  size_t n;
  k->rc = ipc_encode_request(k->id, "ask", p, &m, &n, &e);
  cJSON_Delete(p);
  pthread_barrier_wait(&go); /* all 64 send at once */
  if (k->rc || (k->rc = ipc_client_send(k->c, m, n, &e))) {
    free(m);
    snprintf(k->answer_err, sizeof k->answer_err, "send: %s", e.msg);
    return NULL;
  }
  free(m);
  while (!k->result) {
    uint8_t *pt;
    if ((k->rc = ipc_client_recv(k->c, &pt, &n, 60000, &e))) {
      snprintf(k->answer_err, sizeof k->answer_err, "recv: %s", e.msg);
      return NULL;
    }
    ipc_msg msg;
    k->rc = ipc_msg_decode(pt, n, &msg, &e);
    free(pt);
    if (k->rc) return NULL;
    if (msg.type == IPC_NOTIFY) {
      on_note(k, msg.method, msg.params);
    } else if (msg.type == IPC_RESPONSE) {
      k->responses++;
      if (msg.id != k->id) {
        k->foreign++;
      } else if (msg.error) {
        int code;
        const char *text;
        ipc_error_parse(msg.error, &code, &text);
        snprintf(k->answer_err, sizeof k->answer_err, "error %d: %s", code, text);
        k->rc = code ? code : -1;
        ipc_msg_clear(&msg);
        return NULL;
      } else {
        k->result = msg.result;
        msg.result = NULL;
      }
    }
    ipc_msg_clear(&msg);
  }
  return NULL;
}

static void test_64_streams(void **st) {
  kv_err e;
  /* connect first, one by one: the handshakes are not what is measured */
  for (int i = 0; i < CLIENTS; i++) {
    C[i].i = i;
    C[i].id = 1000 + 7 * (uint32_t)i;
    word_of(i, C[i].word);
    snprintf(C[i].file, sizeof C[i].file, "src/w%02d.c", i);
    C[i].stream = (kv_buf)KV_BUF_INIT;
    if (ipc_client_connect(&C[i].c, NULL, NULL, &e)) fail_msg("connect %d: %s", i, e.msg);
  }
  assert_int_equal(pthread_barrier_init(&go, NULL, CLIENTS), 0);
  pthread_t t[CLIENTS];
  double t0 = kv_now();
  for (int i = 0; i < CLIENTS; i++) assert_int_equal(pthread_create(&t[i], NULL, client_run, &C[i]), 0);
  for (int i = 0; i < CLIENTS; i++) pthread_join(t[i], NULL);
  double wall = kv_now() - t0;
  pthread_barrier_destroy(&go);
  /* how many streams were under way at once: at each stream's first token,
   * the streams that had started and not yet finished */
  int overlap = 0;
  for (int i = 0; i < CLIENTS; i++) {
    int live = 0;
    for (int j = 0; j < CLIENTS; j++)
      if (C[j].t_first && C[j].t_first <= C[i].t_first && C[j].t_last >= C[i].t_first) live++;
    if (live > overlap) overlap = live;
  }
  print_message("%d asks of %d tokens in %.2f s; up to %d streams at once\n", CLIENTS, TOKENS, wall, overlap);
  for (int i = 0; i < CLIENTS; i++) {
    client *k = &C[i];
    if (k->rc) fail_msg("client %d: rc %d %s", i, k->rc, k->answer_err);
    if (k->foreign) fail_msg("client %d (id %u) received %d messages of another request", i, k->id, k->foreign);
    assert_int_equal(k->responses, 1);
    assert_non_null(k->result);
    if (!k->context_ok) fail_msg("client %d: its ask.context does not cite %s", i, k->file);
    assert_int_equal(k->facts, 1);
    assert_int_equal(k->tokens, TOKENS);
    const char *answer = cJSON_GetObjectItem(k->result, "answer")->valuestring;
    if (strcmp(kv_buf_str(&k->stream), answer))
      fail_msg("client %d: the streamed text is not the answer:\n--- streamed\n%s\n--- answer\n%s", i,
               kv_buf_str(&k->stream), answer);
    assert_int_equal((int)cJSON_GetObjectItem(k->result, "tokens")->valuedouble, TOKENS);
    if (!cites_file(cJSON_GetObjectItem(k->result, "citations"), k->file) || !strstr(answer, k->file))
      fail_msg("client %d: its result does not cite %s: %s", i, k->file, answer);
  }
  assert_true(overlap >= 8); /* 16 workers: the streams did interleave */
  for (int i = 0; i < CLIENTS; i++) {
    cJSON_Delete(C[i].result);
    kv_buf_free(&C[i].stream);
    ipc_client_close(C[i].c);
  }
}

static int setup(void **st) {
  signal(SIGPIPE, SIG_IGN);
  if (itest_xdg_root(root, sizeof root, "/tmp/kvasir-s64-XXXXXX")) return 1;
  snprintf(repo, sizeof repo, "%s/repo", root);
  char p[256];
  snprintf(p, sizeof p, "%s/src", repo);
  if (kv_mkdirs(p, 0700, NULL)) return 1;
  for (int i = 0; i < CLIENTS; i++) {
    char w[16];
    word_of(i, w);
    snprintf(p, sizeof p, "%s/src/w%02d.c", repo, i);
    FILE *f = fopen(p, "w");
    if (!f) return 1;
    fprintf(f, "/* %s: the %s counter of part %d. */\nint %s(int x) {\n  return x * %d + 1;\n}\n", w, w, i, w, i + 2);
    fclose(f);
  }
  char cmd[512];
  snprintf(cmd, sizeof cmd,
           "cd %s && git init -q . && git add -A && git -c user.name=t -c user.email=t@example.com commit -qm init",
           repo);
  if (system(cmd) != 0) return 1;
  daemon_pid = itest_spawn_daemon(root, "--stub-generator", "5", "--workers", "16", (char *)NULL);
  if (itest_wait_daemon()) return 1;
  ipc_client *c;
  kv_err e;
  if (ipc_client_connect(&c, NULL, NULL, &e)) return 1;
  cJSON *prm = cJSON_CreateObject(), *r = NULL;
  cJSON_AddStringToObject(prm, "path", repo);
  cJSON_AddBoolToObject(prm, "wait", 1);
  int rc = ipc_client_call(c, "repo.add", prm, NULL, NULL, 120000, &r, &e);
  cJSON_Delete(prm);
  cJSON_Delete(r);
  ipc_client_close(c);
  return rc != 0;
}

static int teardown(void **st) {
  itest_stop_daemon(&daemon_pid);
  if (getenv("KVASIR_TEST_KEEP")) return 0;
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  return system(cmd) != 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_64_streams)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
