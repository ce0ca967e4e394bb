/*
 * mock_openai.h — a tiny OpenAI-compatible endpoint for tests: one thread,
 * one loopback socket on an ephemeral port. It records every request body
 * and Authorization header exactly as received on the wire, and answers
 * /v1/chat/completions with an SSE stream of the given tokens (split into
 * awkward chunks; /v1/completions streams them as choices[].text), a plain JSON completion, a 500, or nothing at all (a hang).
 */
#ifndef KVASIR_TEST_MOCK_OPENAI_H
#define KVASIR_TEST_MOCK_OPENAI_H
#include <pthread.h>
#include <stddef.h>

enum { MOCK_STREAM = 0, MOCK_500, MOCK_HANG, MOCK_JSON };
#define MOCK_MAX_REQ 16

typedef struct mock {
  int fd, port, mode;
  pthread_t th;
  volatile int stop;
  const char *const *tokens;
  size_t n_tokens;
  pthread_mutex_t mu;
  int connections;           /* accepted TCP connections */
  int n_req;                 /* complete requests read */
  char *body[MOCK_MAX_REQ];
  size_t body_len[MOCK_MAX_REQ];
  char auth[MOCK_MAX_REQ][512];
  char path[MOCK_MAX_REQ][128];
} mock;

int mock_start(mock *m, int mode, const char *const *tokens, size_t n_tokens);
void mock_stop(mock *m);   /* joins the thread; recorded requests stay readable */
void mock_free(mock *m);   /* frees what mock_stop left readable */
int mock_connections(mock *m);
#endif
