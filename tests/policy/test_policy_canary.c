/*
 * test_policy_canary.c — the canary corpus (tests/reference/policy/canary,
 * made by gen_canary.py: 140 distinct secrets in 30 files of 15 formats and
 * 8 typed questions) must not leak through redaction, cut any way the
 * indexer and the daemon cut text:
 *   - the whole file, with pol_redact_file (the output keeps the line count
 *     and every decoy — commit ids, UUIDs, digests, plain settings — byte
 *     for byte);
 *   - every chunk the indexer can make, one redacted alone: every range of
 *     whole lines [k, j) (so every split point's two halves too);
 *   - every chunk the daemon can truncate: it cuts a retrieved chunk after
 *     MAX_CHUNK_BYTES (1000) bytes, so mid-line, but never inside the
 *     chunk's first line unless that line is longer: from every line start,
 *     cut at every byte of the next four lines (of the first one too when it
 *     is longer than 1000 bytes), and from the file's start at every byte;
 *   - each question through pol_payload_prepare's typed-text rules, and
 *     everything at once through pol_payload_prepare's JSON body.
 * Every file and whole-line chunk is redacted a second time too: that pass
 * may find nothing but entropy false alarms.
 * A leak is any 12-character piece of a secret (a window of one of its
 * lines) in an output. Every secret is first checked to be in its file, so
 * the test cannot pass on a corpus that lost its secrets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "policy/internal.h"

#define GRAM 12
#define MAX_CHUNK_BYTES 1000 /* daemon/ask.c: a retrieved chunk is cut after this many bytes */
#define DIR_ KVASIR_SOURCE_DIR "/tests/reference/policy/canary"

/* The 12-grams of a set of secrets, in an open-addressing table of hashes
 * (with a pointer back to the gram, so a hash collision is not a leak). */
typedef struct grams {
  uint64_t *h;
  const char **at;
  size_t cap, n;
} grams;

static uint64_t gh(const char *s) { return kv_hash64(s, GRAM) | 1; }

static void grams_add(grams *g, const char *s) {
  if (2 * (g->n + 1) > g->cap) {
    grams old = *g;
    g->cap = g->cap ? 2 * g->cap : 4096;
    g->h = calloc(g->cap, sizeof *g->h), g->at = calloc(g->cap, sizeof *g->at), g->n = 0;
    assert_non_null(g->h), assert_non_null(g->at);
    for (size_t i = 0; i < old.cap; i++)
      if (old.h[i]) grams_add(g, old.at[i]);
    free(old.h), free(old.at);
  }
  uint64_t h = gh(s);
  size_t i = h & (g->cap - 1);
  while (g->h[i]) {
    if (g->h[i] == h && !memcmp(g->at[i], s, GRAM)) return;
    i = (i + 1) & (g->cap - 1);
  }
  g->h[i] = h, g->at[i] = s, g->n++;
}

/* The first secret gram found in out[0..n), or NULL. */
static const char *grams_find(const grams *g, const char *out, size_t n) {
  for (size_t p = 0; p + GRAM <= n; p++) {
    uint64_t h = gh(out + p);
    size_t i = h & (g->cap - 1);
    while (g->h[i]) {
      if (g->h[i] == h && !memcmp(g->at[i], out + p, GRAM)) return g->at[i];
      i = (i + 1) & (g->cap - 1);
    }
  }
  return NULL;
}

/* Every window of every line of secret s (lines split at '\n' and at "\n" escapes). */
static void add_secret(grams *g, char *s) {
  for (char *q = s; *q; q++)
    if (q[0] == '\\' && q[1] == 'n') q[0] = '\n', q[1] = '\n';
  char *line = s;
  while (*line) {
    size_t l = strcspn(line, "\n");
    for (size_t p = 0; p + GRAM <= l; p++) grams_add(g, line + p);
    line += l;
    while (*line == '\n') line++;
  }
}

typedef struct stats { size_t outputs, leaks; } stats;

static void check(stats *st, const grams *g, const char *what, const char *path, const char *in, size_t from,
                  size_t to, const char *out, size_t olen) {
  st->outputs++;
  const char *hit = grams_find(g, out, olen);
  if (!hit) return;
  if (st->leaks++ < 8)
    fprintf(stderr, "LEAK %s %s [%zu,%zu): '%.12s'\n--- in ---\n%.*s\n--- out ---\n%.*s\n---\n", what, path, from, to,
            hit, (int)(to - from > 600 ? 600 : to - from), in + from, (int)(olen > 600 ? 600 : olen), out);
}

static size_t lines_of(const char *s, size_t n) {
  size_t k = 0;
  for (size_t i = 0; i < n; i++) k += s[i] == '\n';
  return k;
}

/* A second pass over redacted text finds nothing but entropy false alarms
 * (a marker never hides, or turns into, another secret). */
static void idempotent(const char *path, const char *out, size_t olen) {
  char *again;
  pol_redactions c = {{0}, 0};
  kv_err err;
  assert_int_equal(pol_redact_file(path, out, olen, &again, NULL, &c, &err), 0);
  if (c.total != c.counts[POL_RED_ENTROPY]) fprintf(stderr, "second pass changed %s:\n%s\n", path, out);
  assert_int_equal(c.total, c.counts[POL_RED_ENTROPY]);
  free(again);
}

static void redact_range(stats *st, const grams *g, const char *what, const char *path, const char *text, size_t a,
                         size_t b) {
  char *out;
  size_t olen;
  kv_err err;
  assert_int_equal(pol_redact_file(path, text + a, b - a, &out, &olen, NULL, &err), 0);
  check(st, g, what, path, text, a, b, out, olen);
  assert_int_equal(lines_of(out, olen), lines_of(text + a, b - a)); /* chunks keep their line count too */
  if (what[0] == 'l') idempotent(path, out, olen);
  free(out);
}

static cJSON *manifest(void) {
  char *buf;
  size_t len;
  kv_err err;
  assert_int_equal(kv_read_file(DIR_ "/canary.json", 8u << 20, &buf, &len, &err), 0);
  cJSON *root = cJSON_Parse(buf);
  free(buf);
  assert_non_null(root);
  return root;
}

static void corpus(void **state) {
  (void)state;
  cJSON *root = manifest(), *f;
  stats file_level = {0, 0}, chunks = {0, 0}, cuts = {0, 0};
  size_t n_secrets = 0, n_files = 0, decoys = 0;
  cJSON_ArrayForEach(f, cJSON_GetObjectItem(root, "files")) {
    const char *path = cJSON_GetObjectItem(f, "path")->valuestring;
    char fp[1024], *text;
    size_t len;
    kv_err err;
    snprintf(fp, sizeof fp, "%s/%s", DIR_, cJSON_GetObjectItem(f, "file")->valuestring);
    assert_int_equal(kv_read_file(fp, 1u << 20, &text, &len, &err), 0);
    grams g = {0};
    cJSON *s;
    char *owned[64];
    size_t no = 0;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(f, "secrets")) {
      assert_true(no < 64);
      owned[no] = strdup(s->valuestring);
      add_secret(&g, owned[no]);
      no++, n_secrets++;
    }
    /* the corpus really holds its secrets */
    assert_non_null(grams_find(&g, text, len));
    /* 1. the whole file */
    char *out;
    size_t olen;
    assert_int_equal(pol_redact_file(path, text, len, &out, &olen, NULL, &err), 0);
    check(&file_level, &g, "file", path, text, 0, len, out, olen);
    assert_int_equal(lines_of(out, olen), lines_of(text, len));
    idempotent(path, out, olen);
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(f, "decoys")) {
      if (!strstr(out, s->valuestring)) fprintf(stderr, "decoy lost in %s: %s\n", path, s->valuestring);
      assert_non_null(strstr(out, s->valuestring));
      decoys++;
    }
    free(out);
    /* line starts */
    size_t off[4096], L = 0;
    off[L++] = 0;
    for (size_t i = 0; i < len && L < 4095; i++)
      if (text[i] == '\n' && i + 1 < len) off[L++] = i + 1;
    off[L] = len;
    /* 2. every range of whole lines */
    for (size_t k = 0; k < L; k++)
      for (size_t j = k + 1; j <= L; j++) redact_range(&chunks, &g, "lines", path, text, off[k], off[j]);
    /* 3. truncated mid-line: from each line start, every byte of the next four lines; from 0, every byte */
    for (size_t k = 0; k < L; k++) {
      size_t end = off[k + 4 <= L ? k + 4 : L];
      size_t first = off[k + 1] - off[k] > MAX_CHUNK_BYTES ? off[k] + 1 : off[k + 1];
      for (size_t c = first; c <= end; c++) redact_range(&cuts, &g, "cut", path, text, off[k], c);
    }
    for (size_t c = 1; c <= len; c++) redact_range(&cuts, &g, "prefix", path, text, 0, c);
    for (size_t i = 0; i < no; i++) free(owned[i]);
    free(g.h), free(g.at);
    free(text);
    n_files++;
  }
  fprintf(stderr,
          "canary: %zu secrets in %zu files; leaks: file level %zu of %zu, line chunks %zu of %zu, cut chunks %zu of "
          "%zu; %zu decoys intact\n",
          n_secrets, n_files, file_level.leaks, file_level.outputs, chunks.leaks, chunks.outputs, cuts.leaks,
          cuts.outputs, decoys);
  assert_true(n_secrets >= 100 && n_files >= 10);
  assert_int_equal(file_level.leaks, 0);
  assert_int_equal(chunks.leaks, 0);
  assert_int_equal(cuts.leaks, 0);
  cJSON_Delete(root);
}

/* Secrets typed into the question, alone and inside a whole payload with
 * every canary file, as the JSON body a hosted tier would get. */
static void questions_and_payload(void **state) {
  (void)state;
  cJSON *root = manifest(), *q, *f;
  grams g = {0};
  char *owned[256];
  size_t no = 0, leaks = 0, nq = 0;
  stats st = {0, 0};
  cJSON_ArrayForEach(q, cJSON_GetObjectItem(root, "questions")) {
    const char *text = cJSON_GetObjectItem(q, "text")->valuestring;
    grams one = {0};
    cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(q, "secrets")) {
      owned[no] = strdup(s->valuestring);
      add_secret(&one, owned[no]);
      add_secret(&g, owned[no]);
      no++;
    }
    char *out;
    size_t olen;
    kv_err err;
    assert_int_equal(pol_redact_question(text, strlen(text), &out, &olen, NULL, &err), 0);
    size_t before = st.leaks;
    check(&st, &one, "question", "-", text, 0, strlen(text), out, olen);
    leaks += st.leaks > before;
    free(out), free(one.h), free(one.at);
    nq++;
  }
  /* one payload with the first question and every file */
  pol_file files[64];
  char *texts[64];
  size_t nf = 0;
  cJSON_ArrayForEach(f, cJSON_GetObjectItem(root, "files")) {
    char fp[1024];
    size_t len;
    kv_err err;
    snprintf(fp, sizeof fp, "%s/%s", DIR_, cJSON_GetObjectItem(f, "file")->valuestring);
    assert_int_equal(kv_read_file(fp, 1u << 20, &texts[nf], &len, &err), 0);
    files[nf] = (pol_file){cJSON_GetObjectItem(f, "path")->valuestring, texts[nf], len, NULL};
    cJSON *s;
    cJSON_ArrayForEach(s, cJSON_GetObjectItem(f, "secrets")) {
      assert_true(no < 256);
      owned[no] = strdup(s->valuestring);
      add_secret(&g, owned[no]);
      no++;
    }
    nf++;
  }
  const char *np = "never_send: [\"nothing/**\"]\n"; /* no default stripping beyond the built-in list */
  pol_policy *p;
  kv_err err;
  assert_int_equal(pol_policy_from_buffers(&p, NULL, 0, NULL, np, strlen(np), "policy.yaml", NULL, &err), 0);
  pol_request req = {.kind = POL_KIND_ASK,
                     .question = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "questions"), 0), "text")
                                     ->valuestring,
                     .files = files,
                     .n_files = nf};
  pol_payload *pl;
  assert_int_equal(pol_payload_prepare(p, &req, "m", 64, &pl, &err), 0);
  check(&st, &g, "payload", "-", pl->body, 0, pl->body_len, pl->body, pl->body_len);
  fprintf(stderr, "questions: %zu, %zu leaked; payload of %zu files (%zu stripped by default never_send): %zu "
                  "redactions, %s\n",
          nq, leaks, nf, pl->n_stripped, (size_t)pl->redactions.total, st.leaks ? "LEAKED" : "no leak");
  assert_true(nq >= 8);
  assert_int_equal(st.leaks, 0);
  pol_payload_free(pl);
  pol_policy_free(p);
  for (size_t i = 0; i < no; i++) free(owned[i]);
  for (size_t i = 0; i < nf; i++) free(texts[i]);
  free(g.h), free(g.at);
  cJSON_Delete(root);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(corpus), cmocka_unit_test(questions_and_payload)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
