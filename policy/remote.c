/*
 * remote.c — the hosted client: POST {base_url}/chat/completions (or
 * /completions for a completion, read from choices[].text) with
 * "stream": true over libcurl, parse the server-sent events as they arrive
 * and hand each content delta to the caller in order. Invariants: nothing
 * is sent unless the decision is a hosted tier, the project is not offline,
 * the API key is not stored inside the project, and the per-day budget
 * allows it; every attempt is audited (sha256 and length of the exact body)
 * before the request starts. Failures (connection errors, timeouts, 429,
 * 5xx) are retried at most `retries` times with doubling backoff, and only
 * while no token has reached the caller; after that the result carries a
 * fallback signal naming the local tier and a note for the answer. Each
 * attempt is limited by timeout_ms (whole request) and connect_timeout_ms.
 * A server that ignores "stream" and answers with one JSON completion is
 * accepted too (its message arrives as a single token).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "policy/internal.h"

#define SSE_LINE_MAX (1u << 20)
#define ERR_BODY_MAX 2048

typedef struct stream {
  CURL *h;
  pol_token_cb cb;
  void *user;
  char *line;            /* partial SSE line */
  size_t n, cap;
  char errbody[ERR_BODY_MAX + 1];
  size_t errlen;
  uint64_t tokens;
  int done, aborted, overflow, bad_json;
  kv_buf raw;            /* the 200 body as received (up to SSE_LINE_MAX), for servers that ignore "stream" */
} stream;

/* Deliver the content of one JSON chunk: a streamed delta, or (whole) the
 * message of a plain, non-streamed completion. */
static int deliver_json(stream *s, const char *json, size_t len, int whole) {
  cJSON *root = cJSON_ParseWithLength(json, len);
  if (!root) { s->bad_json = 1; return 0; }
  cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
  cJSON *m = cJSON_GetObjectItemCaseSensitive(ch, whole ? "message" : "delta");
  cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
  if (!m) c = cJSON_GetObjectItemCaseSensitive(ch, "text"); /* /completions: choices[].text */
  int rc = 0;
  if (cJSON_IsString(c) && c->valuestring[0]) {
    s->tokens++;
    if (s->cb && s->cb(c->valuestring, strlen(c->valuestring), s->user)) s->aborted = 1, rc = -1;
  }
  cJSON_Delete(root);
  return rc;
}

static int sse_line(stream *s, char *line, size_t n) {
  if (n && line[n - 1] == '\r') line[--n] = 0;
  if (n < 5 || memcmp(line, "data:", 5)) return 0; /* comments, event:, id:, blank */
  char *v = line + 5;
  if (*v == ' ') v++;
  if (!strcmp(v, "[DONE]")) { s->done = 1; return 0; }
  return deliver_json(s, v, strlen(v), 0);
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud) {
  stream *s = ud;
  size_t len = size * nmemb;
  long code = 0;
  curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code);
  if (code != 200) { /* keep the start of an error body for the message */
    size_t k = len < ERR_BODY_MAX - s->errlen ? len : ERR_BODY_MAX - s->errlen;
    memcpy(s->errbody + s->errlen, ptr, k);
    s->errlen += k;
    s->errbody[s->errlen] = 0;
    return len;
  }
  if (s->raw.len + len <= SSE_LINE_MAX) kv_buf_append(&s->raw, ptr, len); /* a failure only loses the fallback */
  for (size_t i = 0; i < len; i++) {
    if (s->n + 2 > s->cap && (s->cap >= SSE_LINE_MAX || KV_GROW(s->line, s->cap, s->n + 2))) {
      s->overflow = 1;
      return 0;
    }
    if (ptr[i] == '\n') {
      s->line[s->n] = 0;
      if (sse_line(s, s->line, s->n)) return 0;
      s->n = 0;
    } else s->line[s->n++] = ptr[i];
  }
  return len;
}

static void sleep_ms(unsigned ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static int key_inside_project(const pol_policy *p, const pol_tier *t) {
  if (!t->api_key_file || !p->project[0]) return 0;
  char abs[PATH_MAX];
  if (!realpath(t->api_key_file, abs)) return 0;
  size_t l = strlen(p->project);
  return !strncmp(abs, p->project, l) && abs[l] == '/';
}

/* One HTTP attempt. Returns 0 ok, 1 retryable failure, 2 final failure. */
static int attempt(const pol_tier *t, const char *url, struct curl_slist *hdrs, const pol_payload *pl, stream *s,
                   long *http, char *why, size_t wn) {
  CURL *h = curl_easy_init();
  if (!h) return snprintf(why, wn, "curl init failed"), 2;
  s->h = h, s->n = 0, s->errlen = 0, s->errbody[0] = 0, s->done = 0, s->bad_json = 0;
  kv_buf_reset(&s->raw);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, pl->body);
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)pl->body_len);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)t->timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)(t->connect_timeout_ms ? t->connect_timeout_ms : t->timeout_ms));
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* a redirect is an error, never followed */
  curl_easy_setopt(h, CURLOPT_MAXREDIRS, 0L);
  int plain = !strncasecmp(url, "http://", 7);
  /* https:// stays https; plaintext was allowed by config (loopback or allow_plaintext) and is
   * never handed to a proxy from the environment, which would carry it off the machine. */
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, plain ? "http" : "https");
  if (plain && pol_url_loopback(url)) curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(h, CURLOPT_USERAGENT, "kvasir/0.1");
  CURLcode cc = curl_easy_perform(h);
  *http = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, http);
  curl_easy_cleanup(h);
  if (s->aborted) return snprintf(why, wn, "canceled by the caller"), 2;
  if (s->overflow) return snprintf(why, wn, "response line longer than %u bytes", SSE_LINE_MAX), 2;
  if (cc != CURLE_OK) return snprintf(why, wn, "%s", curl_easy_strerror(cc)), s->tokens ? 2 : 1;
  if (*http != 200) {
    snprintf(why, wn, "HTTP %ld%s%.200s", *http, s->errlen ? ": " : "", s->errbody);
    return (*http == 429 || *http >= 500) ? 1 : 2;
  }
  if (s->n) { s->line[s->n] = 0; sse_line(s, s->line, s->n); s->n = 0; } /* last line without '\n' */
  if (!s->done && s->tokens == 0 && kv_buf_ok(&s->raw) && s->raw.len && s->raw.data[0] == '{') /* plain JSON */
    if (deliver_json(s, s->raw.data, s->raw.len, 1) == 0 && s->tokens) return 0;
  if (s->aborted) return snprintf(why, wn, "canceled by the caller"), 2;
  if (!s->done && s->tokens == 0) return snprintf(why, wn, "stream ended without data"), 1;
  return 0;
}

int pol_hosted_send(const pol_policy *p, pol_audit *audit, const pol_decision *d, const pol_payload *pl,
                    pol_token_cb cb, void *user, pol_send_result *res, kv_err *err) {
  memset(res, 0, sizeof *res);
  const pol_tier *t = pol_tier_find(p, d->tier);
  snprintf(res->fallback_tier, sizeof res->fallback_tier, "%s", t ? t->fallback : "flash");
#define FALLBACK(code, ...)                                                                                   \
  do {                                                                                                        \
    kv_err _le;                                                                                               \
    int _rc = kv_err_set(&_le, code, __VA_ARGS__);                                                            \
    if (err) *err = _le;                                                                                      \
    res->fallback = 1;                                                                                        \
    snprintf(res->note, sizeof res->note, "hosted tier '%s' not used (%.200s); answered by local tier '%s'",  \
             d->tier, _le.msg, res->fallback_tier);                                                           \
    return _rc;                                                                                               \
  } while (0)
  if (p->offline) FALLBACK(KV_EDENIED, "offline: true in %s forbids network calls", p->policy_path[0] ? p->policy_path : "policy");
  if (!t || t->kind != POL_TIER_HOSTED || d->tier_kind != POL_TIER_HOSTED)
    return kv_err_set(err, KV_EDENIED, "tier '%s' is not a hosted tier; nothing is sent", d->tier);
  if (key_inside_project(p, t))
    FALLBACK(KV_EDENIED, "tiers.%s.api_key_file lies inside the project; keys never come from the repo", t->name);
  char key[4096];
  kv_err kerr;
  if (pol_key_load(t, key, sizeof key, &kerr)) FALLBACK(kerr.code, "%s", kerr.msg);
  char url[2048];
  size_t bl = strlen(t->base_url);
  while (bl && t->base_url[bl - 1] == '/') bl--;
  if (snprintf(url, sizeof url, "%.*s/%s", (int)bl, t->base_url, pl->endpoint ? pl->endpoint : "chat/completions") >=
      (int)sizeof url)
    return kv_err_set(err, KV_ELIMIT, "tiers.%s.base_url too long", t->name);
  char auth[4200];
  snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
  memset(key, 0, sizeof key);
  struct curl_slist *hdrs = NULL, *h2;
  const char *hl[] = {"Content-Type: application/json", "Accept: text/event-stream", auth};
  for (size_t i = 0; i < 3; i++) {
    if (!(h2 = curl_slist_append(hdrs, hl[i]))) {
      curl_slist_free_all(hdrs);
      memset(auth, 0, sizeof auth);
      return kv_err_set(err, KV_ENOMEM, "out of memory");
    }
    hdrs = h2;
  }
  memset(auth, 0, sizeof auth);
  stream s;
  memset(&s, 0, sizeof s);
  s.cb = cb, s.user = user;
  uint64_t in_tokens = (pl->body_len + 3) / 4;
  double in_cost = (double)in_tokens * t->price_in / 1e6;
  char why[512] = "";
  int outcome = 2, rc = 0;
  for (unsigned a = 0; a <= t->retries; a++) {
    if (a) sleep_ms(t->backoff_ms << (a - 1 < 6 ? a - 1 : 6));
    kv_err berr;
    if (pol_budget_check(p, audit, in_tokens, in_cost, &berr)) {
      rc = berr.code, snprintf(why, sizeof why, "%s", berr.msg), outcome = 3;
      break;
    }
    int64_t row = 0;
    if (audit && (rc = pol_audit_outbound_begin(audit, p->project, d->rule, d->tier, url, pl, in_tokens, in_cost, &row, err)))
      break; /* no audit, no send */
    long http = 0;
    res->attempts++;
    outcome = attempt(t, url, hdrs, pl, &s, &http, why, sizeof why);
    res->http_status = (int)http;
    uint64_t out_tokens = s.tokens - res->tokens_streamed;
    res->tokens_streamed = s.tokens;
    if (audit) {
      kv_err e2;
      pol_audit_outbound_end(audit, row, outcome == 0 ? "ok" : why, (int)http, out_tokens,
                             (double)out_tokens * t->price_out / 1e6, &e2);
    }
    if (outcome != 1 || s.tokens) break;
  }
  curl_slist_free_all(hdrs);
  free(s.line);
  kv_buf_free(&s.raw);
  if (rc && outcome != 3) return rc; /* audit failure: nothing was sent */
  if (outcome == 0) return 0;
  if (outcome == 3) FALLBACK(KV_ELIMIT, "%s", why);
  if (s.aborted) return kv_err_set(err, KV_ECANCELED, "hosted tier '%s': %s", d->tier, why);
  FALLBACK(KV_EIO, "%s after %u attempt%s: %s", url, res->attempts, res->attempts == 1 ? "" : "s", why);
#undef FALLBACK
}
