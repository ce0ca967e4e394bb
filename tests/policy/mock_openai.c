/*
 * mock_openai.c — see mock_openai.h. Plain blocking sockets with poll()
 * timeouts so that mock_stop always returns promptly.
 */
#define _GNU_SOURCE /* strcasestr */
#include "mock_openai.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static int wait_readable(mock *m, int fd) {
  for (;;) {
    if (m->stop) return 0;
    struct pollfd p = {fd, POLLIN, 0};
    int r = poll(&p, 1, 20);
    if (r > 0) return 1;
    if (r < 0) return 0;
  }
}

static void send_all(int fd, const char *s, size_t n) {
  while (n) {
    ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
    if (w <= 0) return;
    s += w, n -= (size_t)w;
  }
}

static void serve(mock *m, int c) {
  char *buf = malloc(1 << 22);
  size_t n = 0, cap = (1 << 22) - 1;
  ssize_t r;
  char *hend = NULL;
  while (!hend && n < cap && wait_readable(m, c) && (r = recv(c, buf + n, cap - n, 0)) > 0) {
    n += (size_t)r, buf[n] = 0;
    hend = strstr(buf, "\r\n\r\n");
  }
  if (!hend) { free(buf); return; }
  size_t hlen = (size_t)(hend - buf) + 4, clen = 0;
  char *cl = strcasestr(buf, "\r\nContent-Length:");
  if (cl && cl < hend) clen = strtoul(cl + 17, NULL, 10);
  char *ex = strcasestr(buf, "\r\nExpect: 100-continue");
  if (ex && ex < hend) send_all(c, "HTTP/1.1 100 Continue\r\n\r\n", 25);
  while (n < hlen + clen && n < cap && wait_readable(m, c) && (r = recv(c, buf + n, cap - n, 0)) > 0) n += (size_t)r;
  if (n < hlen + clen) { free(buf); return; }
  pthread_mutex_lock(&m->mu);
  int i = m->n_req < MOCK_MAX_REQ ? m->n_req++ : -1;
  if (i >= 0) {
    m->body[i] = malloc(clen + 1);
    memcpy(m->body[i], buf + hlen, clen);
    m->body[i][clen] = 0;
    m->body_len[i] = clen;
    char *a = strcasestr(buf, "\r\nAuthorization: ");
    if (a && a < hend) {
      char *e = strstr(a + 2, "\r\n");
      snprintf(m->auth[i], sizeof m->auth[i], "%.*s", (int)(e - a - 17), a + 17);
    }
    char *sp = strchr(buf, ' '), *sp2 = sp ? strchr(sp + 1, ' ') : NULL;
    if (sp && sp2) snprintf(m->path[i], sizeof m->path[i], "%.*s", (int)(sp2 - sp - 1), sp + 1);
  }
  pthread_mutex_unlock(&m->mu);
  /* the legacy /completions endpoint streams choices[].text, not a delta */
  char target[128] = "";
  char *sp0 = strchr(buf, ' '), *sp1 = sp0 ? strchr(sp0 + 1, ' ') : NULL;
  if (sp0 && sp1) snprintf(target, sizeof target, "%.*s", (int)(sp1 - sp0 - 1), sp0 + 1);
  size_t tl = strlen(target);
  int legacy = tl >= 12 && !strcmp(target + tl - 12, "/completions") && !strstr(target, "/chat/");
  free(buf);
  if (m->mode == MOCK_500) {
    const char *resp = "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nContent-Length: 28\r\n"
                       "Connection: close\r\n\r\n{\"error\":{\"message\":\"boom\"}}";
    send_all(c, resp, strlen(resp));
  } else if (m->mode == MOCK_JSON) {
    const char *b = "{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"whole answer\"}}]}";
    char resp[512];
    int k = snprintf(resp, sizeof resp, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s", strlen(b), b);
    send_all(c, resp, (size_t)k);
  } else if (m->mode == MOCK_HANG) {
    char tmp[256];
    while (wait_readable(m, c) && recv(c, tmp, sizeof tmp, 0) > 0) {} /* until the client gives up */
  } else {
    const char *h = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n: keep-alive\n\n";
    send_all(c, h, strlen(h));
    for (size_t t = 0; t < m->n_tokens; t++) {
      char ev[512];
      int k = legacy ? snprintf(ev, sizeof ev, "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"text\":\"%s\"}]}\r\n\r\n",
                                m->tokens[t])
                     : snprintf(ev, sizeof ev,
                                "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"%s\"}}]}\r\n\r\n",
                                m->tokens[t]);
      size_t half = (size_t)k / 2; /* split events across writes */
      send_all(c, ev, half);
      usleep(1000);
      send_all(c, ev + half, (size_t)k - half);
    }
    send_all(c, "data: [DONE]\n\n", 14);
  }
}

static void *loop(void *ud) {
  mock *m = ud;
  while (!m->stop) {
    struct pollfd p = {m->fd, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) continue;
    int c = accept(m->fd, NULL, NULL);
    if (c < 0) continue;
    pthread_mutex_lock(&m->mu);
    m->connections++;
    pthread_mutex_unlock(&m->mu);
    serve(m, c);
    close(c);
  }
  return NULL;
}

int mock_start(mock *m, int mode, const char *const *tokens, size_t n_tokens) {
  memset(m, 0, sizeof *m);
  m->mode = mode, m->tokens = tokens, m->n_tokens = n_tokens;
  pthread_mutex_init(&m->mu, NULL);
  m->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (m->fd < 0) return -1;
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t al = sizeof a;
  if (bind(m->fd, (struct sockaddr *)&a, sizeof a) || listen(m->fd, 16) || getsockname(m->fd, (struct sockaddr *)&a, &al))
    return -1;
  m->port = ntohs(a.sin_port);
  return pthread_create(&m->th, NULL, loop, m);
}

void mock_stop(mock *m) {
  m->stop = 1;
  pthread_join(m->th, NULL);
  close(m->fd);
}

void mock_free(mock *m) {
  for (int i = 0; i < m->n_req; i++) free(m->body[i]);
  m->n_req = 0;
  pthread_mutex_destroy(&m->mu);
}

int mock_connections(mock *m) {
  pthread_mutex_lock(&m->mu);
  int c = m->connections;
  pthread_mutex_unlock(&m->mu);
  return c;
}
