/*
 * ask.c — `ask`, end to end: the editor's focus and retrieval from the
 * repo's index, the facts the index holds about the best definitions
 * (answer.c) streamed first once the policy gate let the ask go on, then
 * the model's short text generated on the compressed KV memory from the
 * resident prefix (prefix.c) and passed through the verifier (verify.c,
 * stream.c); the result carries the facts, the citations, how sure
 * retrieval was and what verification removed.
 *
 * Invariants: nothing is streamed before the policy decided; one
 * generation per repo context at a time (dmn_prefix.mu).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon/answer_internal.h"
#include "daemon/conv_internal.h"
#include "daemon/model_internal.h"
#include "engine/kvmem_eng.h"
#include "daemon/policy_internal.h"
#include "daemon/prefix_internal.h"
#include "daemon/stream_internal.h"
#include "daemon/verify_internal.h"
#include "policy/policy.h"

#define MAX_CONTEXT_BYTES 1200  /* retrieved text given to the model (the facts lead) */
/* With facts, which carry the best definitions' names, signatures, docs,
 * callers and callees, the local model's prompt keeps only this much of the
 * excerpts (best first, cut at a line end): each excerpt byte is prefill
 * the question waits for before the first token. */
#define ASK_EXCERPT_BYTES_FACTS 480
#define MAX_CHUNK_BYTES 600
#define ASK_MAX_TOKENS 96    /* the model writes a short text: the facts lead */

static void emit_facts(dmn_stream *g);

static int on_gate_token(void *user, const char *piece, size_t len) {
  dmn_stream *g = user;
  emit_facts(g);
  if (!g->model_label) g->model_label = "Hosted model's summary";
  return dmn_stream_token(user, piece, len);
}

/* --------------------------------------------------------------- retrieval */

static cJSON *citation(const char *path, int l0, int l1, const char *symbol, double score) {
  cJSON *c = cJSON_CreateObject();
  cJSON_AddStringToObject(c, "path", path);
  cJSON_AddNumberToObject(c, "start_line", l0);
  cJSON_AddNumberToObject(c, "end_line", l1);
  if (symbol && *symbol) cJSON_AddStringToObject(c, "symbol", symbol);
  cJSON_AddNumberToObject(c, "score", score);
  return c;
}

/* ---------------------------------------------------------------------- ask */

#define ASK_FACTS 3 /* definitions whose facts lead the answer */
#define ASK_CUTS 40

typedef struct ask_ctx {
  const char *question, *file;
  int max_tokens, k;
  char repo[1024];
  idx_index *ix;     /* open for the whole ask: facts, and the verifier's lookups */
  idx_fact facts[ASK_FACTS];
  double fscore[ASK_FACTS];
  size_t nfacts;
  dmn_confidence conf;
  size_t cut[ASK_CUTS]; /* context.len after each excerpt, best first (trimming) */
  dmn_conv *conv;       /* the conversation this ask continues (or starts) */
  char query[16384 + 2048]; /* what retrieval searches: a follow-up adds the last question */
  size_t ncut;
  cJSON *cites;      /* array */
  kv_buf context;      /* excerpts for the prompt */
  char *prefix_text; /* built for this ask (owned) */
  dmn_gate_ctx gate; /* the same excerpts, per file, for the policy gate */
  struct {           /* where the time went (the result's `timing`) */
    double retrieval, prefix, prefill, gen; /* seconds */
    int prompt, reused, gen_tokens;
    size_t excerpt_bytes;
  } tm;
} ask_ctx;

/* The editor's focus: lines of `file` around the cursor or the selection
 * (from the "text" param when the buffer is unsaved, else from disk) go
 * first into the prompt and into the citations, path relative to the repo. */
static int editor_context(dmn_job *j, ask_ctx *a, kv_err *err) {
  if (!a->file) return 0;
  const cJSON *sel = cJSON_IsObject(j->params) ? cJSON_GetObjectItemCaseSensitive(j->params, "selection") : NULL;
  const cJSON *cur = cJSON_IsObject(j->params) ? cJSON_GetObjectItemCaseSensitive(j->params, "cursor") : NULL;
  int l0 = dmn_param_int(sel, "start_line", -1, 0), l1 = dmn_param_int(sel, "end_line", -1, 0);
  int line = dmn_param_int(cur, "line", -1, dmn_param_int(j->params, "line", -1, 0));
  if (l0 <= 0 && line <= 0) return 0; /* a file alone only picks the repo */
  if (l0 <= 0) l0 = line - 10, l1 = line + 10;
  if (l0 < 1) l0 = 1;
  if (l1 < l0) l1 = l0;
  if (l1 - l0 > 200) l1 = l0 + 200;
  /* The path is resolved as the kernel would open it (symlinks followed,
   * "." and ".." gone) and must lie inside the ask's repository: the
   * policy matches the file itself, never the string the editor sent. */
  const char *root = a->repo;
  pol_resolved where;
  int rc = pol_path_resolve(&root, 1, a->file, &where, err);
  if (rc) return rc;
  const char *text = dmn_param_str(j->params, "text", -1);
  char *owned = NULL;
  size_t len;
  if (!text) {
    kv_err fe;
    if (kv_read_file(where.abs, 16 << 20, &owned, &len, &fe)) return 0; /* retrieval still answers */
    text = owned;
  }
  const char *p = text;
  for (int l = 1; l < l0 && *p; l++) {
    const char *nl = strchr(p, '\n');
    p = nl ? nl + 1 : p + strlen(p);
  }
  const char *q = p;
  int last = l0 - 1;
  for (int l = l0; l <= l1 && *q; l++) {
    const char *nl = strchr(q, '\n');
    q = nl ? nl + 1 : q + strlen(q);
    last = l;
  }
  if (last >= l0) {
    const char *rel = where.rel;
    size_t n = (size_t)(q - p) > MAX_CHUNK_BYTES * 2 ? dmn_utf8_complete(p, MAX_CHUNK_BYTES * 2) : (size_t)(q - p);
    rc = kv_buf_printf(&a->context, "### %s:%d-%d (where the user is working)\n```\n", rel, l0, last);
    if (!rc) rc = kv_buf_append(&a->context, p, n);
    if (!rc) rc = kv_buf_append(&a->context, "\n```\n\n", 6);
    if (!rc) rc = dmn_gate_add(&a->gate, rel, p, n);
    if (!rc) rc = dmn_gate_origin(&a->gate, text, strlen(text), (unsigned)l0);
    if (rc) {
      free(owned);
      return kv_err_set(err, KV_ENOMEM, "out of memory");
    }
    cJSON_AddItemToArray(a->cites, citation(rel, l0, last, "", 0));
  }
  free(owned);
  return 0;
}

/* The repo's prefix text, rebuilt only when the index changed since it was
 * built (the registry's sync count), so asks between syncs share the exact
 * same prefix and its KV cache stays valid. Copies it into a->prefix_text. */
static int prefix_text(dmn_job *j, ask_ctx *a, idx_index *ix, kv_err *err) {
  dmn_backend *b = dmn_server_backend(j->srv);
  dmn_prefix *pre;
  int rc = dmn_backend_prefix(b, a->repo, &pre, err);
  if (rc) return rc;
  uint64_t syncs = dmn_repos_syncs(dmn_server_repos(j->srv), a->repo);
  pthread_mutex_lock(&b->mu);
  if (pre->text && pre->index_syncs == syncs) {
    a->prefix_text = strdup(pre->text);
    b->prefix_hits++;
  }
  pthread_mutex_unlock(&b->mu);
  if (a->prefix_text) return 0;
  char *text = NULL;
  cJSON *stable = NULL;
  if ((rc = dmn_prefix_build_text(a->repo, ix, &text, &stable, err))) {
    cJSON_Delete(stable);
    return rc;
  }
  a->prefix_text = strdup(text);
  pthread_mutex_lock(&b->mu);
  free(pre->text);
  pre->text = text;
  cJSON_Delete(pre->stable);
  pre->stable = stable;
  pre->index_syncs = syncs;
  b->prefix_builds++;
  pthread_mutex_unlock(&b->mu);
  return a->prefix_text ? 0 : kv_err_set(err, KV_ENOMEM, "out of memory");
}

/* 1 when the question is about tests (then tests may lead). */
static int about_tests(const char *q) {
  for (const char *p = q; *p; p++)
    if ((p == q || !isalnum((unsigned char)p[-1])) && !strncasecmp(p, "test", 4)) return 1;
  return 0;
}

/* Facts for the best distinct definitions among the hits (same definition
 * reached by two chunks counts once); code leads, and test files follow,
 * unless the question is about tests. */
static void gather_facts(ask_ctx *a, const idx_hits *hits) {
  int tests_ok = about_tests(a->question);
  for (int pass = 0; pass < 2 && !(tests_ok && pass); pass++) {
    for (size_t i = 0; i < hits->n && a->nfacts < ASK_FACTS; i++) {
      const idx_hit *h = &hits->v[i];
      if (!tests_ok && idx_path_is_test(h->path) != pass) continue;
      idx_fact f;
      kv_err fe;
      if (idx_fact_get(a->ix, h->path, h->line0, h->line1, a->question, &f, &fe)) continue;
      int dup = 0;
      for (size_t k = 0; k < a->nfacts; k++) /* the same definition, or its declaration again */
        dup |= (!strcmp(a->facts[k].def.path, f.def.path) && a->facts[k].def.line0 == f.def.line0) ||
               !strcmp(a->facts[k].def.name, f.def.name);
      if (dup) {
        idx_fact_free(&f);
        continue;
      }
      a->fscore[a->nfacts] = h->score;
      a->facts[a->nfacts++] = f;
    }
  }
}

static int retrieve(dmn_job *j, ask_ctx *a, kv_err *err) {
  int rc = idx_open(&a->ix, a->repo, NULL, err);
  if (rc) return rc;
  idx_hits hits = {0};
  rc = idx_search(a->ix, a->query, (size_t)a->k, &hits, err);
  if (rc) return rc;
  for (size_t i = 0; i < hits.n; i++) {
    idx_hit *h = &hits.v[i];
    cJSON_AddItemToArray(a->cites, citation(h->path, h->line0, h->line1, h->symbol, h->score));
    if (a->context.len < MAX_CONTEXT_BYTES && h->text) {
      size_t tl = strlen(h->text);
      if (tl > MAX_CHUNK_BYTES) tl = dmn_utf8_complete(h->text, MAX_CHUNK_BYTES);
      kv_buf_printf(&a->context, "### %s:%d-%d\n```\n", h->path, h->line0, h->line1);
      kv_buf_append(&a->context, h->text, tl);
      kv_buf_append(&a->context, "\n```\n\n", 6);
      if (a->ncut < ASK_CUTS) a->cut[a->ncut++] = a->context.len;
      /* the whole file, for redaction that sees past the chunk's edges */
      if (dmn_gate_add(&a->gate, h->path, h->text, tl) == 0) dmn_gate_origin_lazy(&a->gate, (unsigned)h->line0);
    }
  }
  gather_facts(a, &hits);
  idx_hits_free(&hits);
  return prefix_text(j, a, a->ix, err);
}

/* The gate's reader of an excerpt's whole file (as indexed), for file-level
 * redaction when a payload goes to a hosted tier. */
static int ask_read_file(void *ud, const char *path, char **text, size_t *len) {
  ask_ctx *a = ud;
  kv_err e;
  *text = NULL;
  if (idx_read_lines(a->ix, path, 1, 1 << 30, 0, text, len, &e)) return e.code ? e.code : KV_EIO;
  if (*len > (8u << 20)) { /* too large to redact whole: the excerpt alone */
    free(*text);
    *text = NULL;
    return KV_ELIMIT;
  }
  return 0;
}

/* The verifier's question: does this token exist in the repository? */
static int ask_known(void *ud, const char *tok, size_t n, int kind) {
  ask_ctx *a = ud;
  if (!a->ix) return 0;
  if (kind == DMN_TOK_QUOTE) return idx_quoted(a->ix, tok, n) > 0;
  return idx_known(a->ix, tok, n, kind == DMN_TOK_LOC) > 0;
}

/* Built-in generator for tests (dmn_config.stub_token_ms): streams words
 * naming the citations, one every stub_token_ms, until max_tokens. */
static int generate_stub(dmn_job *j, ask_ctx *a, dmn_stream *g, int ms) {
  kv_buf words = KV_BUF_INIT;
  int n = cJSON_GetArraySize(a->cites);
  if (n == 0) kv_buf_append(&words, " Retrieval found nothing relevant in the index.", 47);
  for (int i = 0; i < n; i++) {
    const cJSON *c = cJSON_GetArrayItem(a->cites, i);
    kv_buf_printf(&words, " See %s:%d-%d.", cJSON_GetObjectItem(c, "path")->valuestring,
              cJSON_GetObjectItem(c, "start_line")->valueint, cJSON_GetObjectItem(c, "end_line")->valueint);
  }
  const char *p = words.data ? words.data : "";
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  for (int t = 0; t < a->max_tokens; t++) {
    if (dmn_job_canceled(j)) break;
    nanosleep(&ts, NULL);
    if (!*p) p = words.data;
    size_t w = strcspn(p + 1, " ") + 1; /* a word with its leading space */
    if (dmn_stream_token(g, p, w)) break;
    p += w;
  }
  kv_buf_free(&words);
  return 0;
}

/* How many bytes of the excerpts go into the prompt with the first `ncut`
 * of them, at most `budget` (0: no limit): whole excerpts, best first, else
 * the best one cut at a line end (*cut_open: its fence is to be closed). */
static size_t excerpt_len(const ask_ctx *a, size_t ncut, size_t budget, int *cut_open) {
  size_t clen = ncut ? a->cut[ncut - 1] : (a->ncut ? 0 : a->context.len);
  *cut_open = 0;
  if (!budget || clen <= budget) return clen;
  while (ncut > 1 && a->cut[ncut - 1] > budget) ncut--;
  if (ncut && a->cut[ncut - 1] <= budget) return a->cut[ncut - 1];
  /* the first excerpt alone is longer: up to its last line end within
   * budget, past its opening fence (else it goes whole) */
  const char *c = a->context.data, *nl = NULL;
  size_t code = 0; /* where the excerpt's code starts */
  for (size_t i = 0; i + 4 <= budget && !code; i++)
    if (!memcmp(c + i, "```\n", 4)) code = i + 4;
  for (size_t i = budget; code && i > code && !nl; i--)
    if (c[i - 1] == '\n') nl = c + i;
  if (!nl) return clen;
  *cut_open = 1;
  return (size_t)(nl - c);
}

/* The prompt with the facts and the first `ncut` excerpts (at most
 * `budget` bytes of them, 0: no limit), tokenized; *used: the excerpt
 * bytes that went in. */
static int build_prompt(eng_model *model, const ask_ctx *a, size_t ncut, size_t budget, int32_t **toks, size_t *n,
                        size_t *used, kv_err *err) {
  kv_buf user = KV_BUF_INIT;
  if (a->nfacts) {
    kv_buf_puts(&user, "Facts from the index:\n");
    dmn_facts_prompt(&user, a->facts, a->nfacts);
    kv_buf_putc(&user, '\n');
  }
  int cut_open;
  size_t clen = excerpt_len(a, ncut, budget, &cut_open);
  *used = clen;
  if (clen) {
    kv_buf_puts(&user, "Code excerpts from the repository:\n\n");
    kv_buf_append(&user, a->context.data, clen);
    if (cut_open) kv_buf_puts(&user, "...\n```\n\n");
  } else if (!a->nfacts) {
    kv_buf_puts(&user, "(Retrieval found no code excerpts for this question.)\n\n");
  }
  kv_buf_printf(&user,
                "Question: %s\n\nAnswer in at most three short sentences, from the facts and excerpts above only. "
                "Write names of code in backticks exactly as they appear above, with their path:line.",
                a->question);
  if (!kv_buf_ok(&user)) {
    kv_buf_free(&user);
    return kv_err_set(err, KV_ENOMEM, "out of memory");
  }
  /* a follow-up: the conversation's earlier turns come first */
  eng_chat_msg msgs[2 + 2 * DMN_CONV_TURNS];
  size_t nm = 0;
  msgs[nm++] = (eng_chat_msg){"system", a->prefix_text};
  for (int t = 0; a->conv && t < a->conv->nturns; t++) {
    msgs[nm++] = (eng_chat_msg){"user", a->conv->q[t]};
    msgs[nm++] = (eng_chat_msg){"assistant", a->conv->a[t]};
  }
  msgs[nm++] = (eng_chat_msg){"user", user.data};
  char *prompt = NULL;
  int rc = eng_chat_apply(model, msgs, nm, 1, &prompt, err);
  kv_buf_free(&user);
  if (rc) return rc;
  size_t cap = strlen(prompt) + 16;
  *toks = malloc(cap * sizeof **toks);
  if (!*toks) rc = kv_err_set(err, KV_ENOMEM, "out of memory");
  if (!rc) rc = eng_tokenize(model, prompt, strlen(prompt), 1, 1, *toks, cap, n, err);
  free(prompt);
  return rc;
}

static int generate_engine(dmn_job *j, ask_ctx *a, eng_model *model, dmn_stream *g, cJSON *res, kv_err *err) {
  dmn_backend *b = dmn_server_backend(j->srv);
  dmn_prefix *pre;
  int rc = dmn_backend_prefix(b, a->repo, &pre, err);
  if (rc) return rc;
  /* a follow-up runs in the conversation's own context (its first tokens a
   * fork of the repo's resident prefix); a first question in the repo's */
  if (a->conv && a->conv->nturns > 0) pre = &a->conv->slot;
  int n_ctx = dmn_prefix_n_ctx(model, dmn_backend_context(b, model));
  /* The prompt is trimmed to the context, lowest-ranked excerpts first,
   * never refused: the facts and the question always go in. */
  int32_t *toks = NULL;
  size_t n = 0, ncut = a->ncut, used = 0, budget = a->nfacts ? ASK_EXCERPT_BYTES_FACTS : 0;
  int trimmed = 0;
  for (;;) {
    free(toks);
    toks = NULL;
    if ((rc = build_prompt(model, a, ncut, budget, &toks, &n, &used, err))) break;
    if ((int)n + a->max_tokens <= n_ctx || ncut == 0) break;
    ncut--;
    trimmed++;
  }
  if (!rc && (int)n + 16 > n_ctx) /* even without excerpts: keep the prompt's tail (question last) */
    rc = kv_err_set(err, KV_ELIMIT, "the question alone takes %zu tokens, more than the context of %d", n, n_ctx);
  if (rc) {
    free(toks);
    return rc;
  }
  if ((int)n + a->max_tokens > n_ctx) a->max_tokens = n_ctx - (int)n;
  if (trimmed) cJSON_AddNumberToObject(res, "excerpts_trimmed", trimmed);
  pthread_mutex_lock(&pre->mu);
  if (pre->ctx && (eng_ctx_n_ctx(pre->ctx) != n_ctx || eng_ctx_model(pre->ctx) != model)) {
    eng_ctx_free(pre->ctx);
    pre->ctx = NULL;
  }
  if (!pre->ctx) {
    eng_ctx_params cp;
    eng_ctx_params_default(&cp);
    cp.n_ctx = n_ctx;
    rc = kvm_eng_ctx_create(&pre->ctx, model, &cp, NULL, err);
    pre->n_ctx = n_ctx;
  }
  if (!rc) {
    double tp = kv_now();
    pre->prefix_tokens = dmn_prefix_len(model, a->prefix_text, toks, n);
    dmn_prefix_ensure(b, pre, toks, pre->prefix_tokens);
    a->tm.prefix = kv_now() - tp;
    cJSON_AddNumberToObject(res, "prefix_seconds", a->tm.prefix);
    cJSON_AddNumberToObject(res, "prefix_tokens", (double)pre->prefix_tokens);
  }
  eng_sampler *smp = NULL;
  eng_gen_result gr;
  memset(&gr, 0, sizeof gr);
  if (!rc) {
    eng_sampler_params sp;
    eng_sampler_params_default(&sp);
    sp.repeat_penalty = 1.1f;
    sp.repeat_last_n = 64;
    rc = eng_sampler_create(&smp, &sp, eng_n_vocab(model), err);
  }
  if (!rc) {
    eng_gen_params gp;
    memset(&gp, 0, sizeof gp);
    gp.max_tokens = a->max_tokens;
    gp.on_token = dmn_stream_on_engine_token;
    gp.user = g;
    rc = eng_generate(pre->ctx, smp, toks, n, &gp, &gr, err);
    pre->uses++;
    pre->tokens = (size_t)gr.n_reused;
    kvm_eng_stats ks;
    kv_err se;
    if (kvm_eng_stats_get(pre->ctx, NULL, &ks, &se) == 0) {
      pthread_mutex_lock(&b->mu);
      pre->kv_bytes = ks.kv_bytes;
      pre->f16_bytes = ks.f16_bytes;
      pthread_mutex_unlock(&b->mu);
    }
  }
  pthread_mutex_unlock(&pre->mu);
  eng_sampler_free(smp);
  free(toks);
  if (rc) return rc;
  pthread_mutex_lock(&b->mu);
  b->tokens_prompt += (uint64_t)gr.n_prompt;
  b->tokens_reused += (uint64_t)gr.n_reused;
  b->tokens_gen += (uint64_t)gr.n_gen;
  pthread_mutex_unlock(&b->mu);
  a->tm.prefill = gr.t_prompt;
  a->tm.gen = gr.t_gen;
  a->tm.prompt = gr.n_prompt;
  a->tm.reused = gr.n_reused;
  a->tm.gen_tokens = gr.n_gen;
  a->tm.excerpt_bytes = used;
  cJSON_AddNumberToObject(res, "prompt_tokens", gr.n_prompt);
  cJSON_AddNumberToObject(res, "reused_tokens", gr.n_reused);
  cJSON_AddNumberToObject(res, "prompt_seconds", gr.t_prompt);
  cJSON_AddStringToObject(res, "kv_memory", "compressed");
  cJSON_AddStringToObject(res, "prefix_source", pre->prefix_source);
  cJSON_AddNumberToObject(res, "n_ctx", n_ctx);
  cJSON_AddNumberToObject(res, "gen_seconds", gr.t_gen);
  cJSON_AddNumberToObject(res, "mean_logprob", gr.mean_logprob);
  return 0;
}

/* The ask.facts event and the lead of the answer, once. */
static void emit_facts(dmn_stream *g) {
  ask_ctx *a = (ask_ctx *)g->ask;
  if (!a || g->facts_sent) return;
  g->facts_sent = 1;
  cJSON *fn = cJSON_CreateObject();
  cJSON_AddNumberToObject(fn, "id", g->j->req_id);
  cJSON_AddItemToObject(fn, "facts", dmn_facts_json(a->facts, a->nfacts));
  cJSON_AddBoolToObject(fn, "unsure", a->conf.unsure);
  dmn_job_notify(g->j, "ask.facts", fn);
  dmn_answer_lead(&g->answer, a->facts, a->nfacts, &a->conf);
  g->kind = "facts";
  dmn_stream_flush(g, 1);
  g->kind = NULL;
  g->t_facts = kv_now() - g->t0;
}

/* A registered repository that was never indexed is indexed now, with the
 * sync's progress events on this request, before anything is answered. */
static int ensure_indexed(dmn_job *j, const char *repo, cJSON *res, kv_err *err) {
  dmn_server *s = j->srv;
  if (dmn_repos_syncs(dmn_server_repos(s), repo) > 0) return 0;
  cJSON *stats = NULL;
  int rc = dmn_index_sync(j, repo, &stats, err);
  if (!rc) {
    dmn_repos_synced(dmn_server_repos(s), repo, stats);
    cJSON_AddBoolToObject(res, "indexed_first", 1);
  }
  cJSON_Delete(stats);
  return rc;
}

/* What an escalation would do, in the policy's words, for an unsure or a
 * reasoning question: the tier `policy explain` gives at depth think-max. */
static void escalation(dmn_job *j, ask_ctx *a, const char *depth) {
  if (!a->conf.unsure && !a->conf.reasoning) return;
  cJSON *params = cJSON_CreateObject(), *out = NULL;
  cJSON_AddStringToObject(params, "repo", a->repo);
  cJSON_AddStringToObject(params, "question", a->question);
  cJSON_AddStringToObject(params, "depth", a->conf.reasoning && depth ? depth : "think-max");
  kv_err e;
  dmn_request r = {j->srv, 0, 0, "policy.explain", params};
  if (dmn_policy_explain(&r, &out, &e) == 0 && out) {
    const cJSON *tier = cJSON_GetObjectItemCaseSensitive(out, "tier");
    const cJSON *rule = cJSON_GetObjectItemCaseSensitive(out, "rule");
    if (cJSON_IsString(tier))
      snprintf(a->conf.escalate, sizeof a->conf.escalate,
               "%sAt depth think-max, policy explain sends this question to the %s tier%s%s%s.",
               a->conf.reasoning ? "It needs reasoning that the local model cannot do well: " : "",
               tier->valuestring, cJSON_IsString(rule) ? " (rule " : "",
               cJSON_IsString(rule) ? rule->valuestring : "", cJSON_IsString(rule) ? ")" : "");
  }
  cJSON_Delete(out);
  cJSON_Delete(params);
}

/* The result's `timing` (docs/protocol.md): milliseconds since the ask
 * began, and what the model's prompt and generation cost. */
static cJSON *timing_json(const ask_ctx *a, const dmn_stream *g, double total) {
  cJSON *t = cJSON_CreateObject();
  cJSON_AddNumberToObject(t, "retrieval_ms", 1e3 * a->tm.retrieval);
  cJSON_AddNumberToObject(t, "facts_ms", 1e3 * g->t_facts);
  if (a->tm.prompt) {
    cJSON_AddNumberToObject(t, "prefix_ms", 1e3 * a->tm.prefix);
    cJSON_AddNumberToObject(t, "prompt_tokens", a->tm.prompt);
    cJSON_AddNumberToObject(t, "prefill_tokens", a->tm.prompt - a->tm.reused);
    cJSON_AddNumberToObject(t, "prefill_ms", 1e3 * a->tm.prefill);
    cJSON_AddNumberToObject(t, "excerpt_bytes", (double)a->tm.excerpt_bytes);
    cJSON_AddNumberToObject(t, "gen_tokens", a->tm.gen_tokens);
    if (a->tm.gen_tokens)
      cJSON_AddNumberToObject(t, "decode_ms_per_token", 1e3 * a->tm.gen / a->tm.gen_tokens);
  }
  if (g->t_token) cJSON_AddNumberToObject(t, "first_token_ms", 1e3 * g->t_token);
  if (g->t_text) {
    cJSON_AddNumberToObject(t, "first_text_ms", 1e3 * g->t_text);
    if (g->t_token) cJSON_AddNumberToObject(t, "held_ms", 1e3 * (g->t_text - g->t_token));
  }
  cJSON_AddNumberToObject(t, "total_ms", 1e3 * total);
  return t;
}

static cJSON *verification_json(const dmn_verify_stats *st) {
  cJSON *v = cJSON_CreateObject();
  cJSON_AddNumberToObject(v, "units", st->sentences);
  cJSON_AddNumberToObject(v, "dropped", st->dropped);
  cJSON_AddNumberToObject(v, "cut", st->cut);
  cJSON_AddNumberToObject(v, "tokens_checked", st->tokens);
  cJSON_AddNumberToObject(v, "tokens_unknown", st->unknown);
  cJSON_AddBoolToObject(v, "repetition_stopped", st->repeated);
  cJSON_AddNumberToObject(v, "unanchored", st->unanchored);
  return v;
}

int dmn_job_ask(dmn_job *j, cJSON **result, kv_err *err) {
  dmn_server *s = j->srv;
  dmn_backend *b = dmn_server_backend(s);
  ask_ctx a;
  eng_model *model = NULL; /* held from dmn_backend_model_for until out: */
  memset(&a, 0, sizeof a);
  a.gate.read_file = ask_read_file;
  a.gate.read_ud = &a;
  a.question = dmn_param_str(j->params, "question", 0);
  if (!a.question || !*a.question) return kv_err_set(err, IPC_ERR_PARAMS, "missing string param 'question'");
  if (strlen(a.question) > 16384)
    return kv_err_set(err, IPC_ERR_PARAMS, "param 'question' is %zu bytes; the limit is 16384 (send code as 'file' + 'selection')",
                      strlen(a.question));
  a.file = dmn_param_str(j->params, "file", 1);
  a.max_tokens = dmn_param_int(j->params, "max_tokens", -1, ASK_MAX_TOKENS);
  a.k = dmn_param_int(j->params, "k", -1, 4);
  if (a.max_tokens < 1 || a.max_tokens > 4096) a.max_tokens = ASK_MAX_TOKENS;
  if (a.k < 1 || a.k > 32) a.k = 4;
  const char *depth = dmn_param_str(j->params, "depth", -1);
  const char *conv_id = dmn_param_str(j->params, "conversation", -1);
  const char *repo = dmn_param_str(j->params, "repo", -1);
  int rc = dmn_repos_resolve(dmn_server_repos(s), repo ? repo : a.file, a.repo, sizeof a.repo, err);
  if (rc) return rc;
  pthread_mutex_lock(&b->mu);
  b->asks++;
  pthread_mutex_unlock(&b->mu);
  int conv_new = 0;
  char conv_note[256];
  if ((rc = dmn_conv_acquire(b, a.repo, conv_id, &a.conv, &conv_new, conv_note, sizeof conv_note, err))) return rc;
  if (a.conv->nturns > 0)
    snprintf(a.query, sizeof a.query, "%s %s", a.conv->q[a.conv->nturns - 1], a.question);
  else
    snprintf(a.query, sizeof a.query, "%s", a.question);
  cJSON *res = cJSON_CreateObject();
  dmn_stream g = {j, "ask.token", KV_BUF_INIT, 0, 0, NULL, NULL, NULL, 0, 0, NULL, 0, 0, 0, 0};
  dmn_verifier ver;
  dmn_verifier_init(&ver, ask_known, &a);
  double t0 = kv_now();
  a.cites = cJSON_CreateArray();
  if (!a.cites || !res) {
    rc = kv_err_set(err, KV_ENOMEM, "out of memory");
    goto out;
  }
  if ((rc = ensure_indexed(j, a.repo, res, err)) || (rc = editor_context(j, &a, err)) || (rc = retrieve(j, &a, err)))
    goto out;
  a.tm.retrieval = kv_now() - t0;
  cJSON *ctxn = cJSON_CreateObject();
  cJSON_AddNumberToObject(ctxn, "id", j->req_id);
  cJSON_AddItemToObject(ctxn, "citations", cJSON_Duplicate(a.cites, 1));
  dmn_job_notify(j, "ask.context", ctxn);

  /* Facts first: what the index knows, before any model runs (sent once the
   * policy let the ask go on, so a refused ask shows nothing). */
  dmn_confidence_judge(&a.conf, a.fscore, a.nfacts, depth);
  if (a.conf.unsure && a.nfacts && dmn_names_word(a.question, a.facts[0].def.name))
    a.conf.unsure = 0; /* the question names the definition that leads: no guess */
  escalation(j, &a, depth);
  g.ask = &a;
  g.t0 = t0;
  const char *gen = "none";
  kv_err me;
  int stub_ms = dmn_server_config(s)->stub_token_ms;
  /* The project's policy decides before anything is generated or sent. */
  int answered = 0;
  dmn_gate_io gio = {on_gate_token, &g};
  g.ver = &ver; /* hosted text is verified like local text */
  rc = dmn_gate_run(dmn_server_gate(s), a.repo, a.question, depth, &a.gate, &gio, res, &answered, err);
  if (rc) goto out;
  emit_facts(&g);
  if (answered) {
    gen = "hosted";
  } else if (stub_ms > 0) {
    gen = "stub";
    g.ver = NULL; /* the protocol tests' generator streams word by word */
    rc = generate_stub(j, &a, &g, stub_ms);
  } else if (dmn_backend_model_for(b, cJSON_GetStringValue(cJSON_GetObjectItem(res, "tier")), &model, &me) == 0) {
    gen = "engine";
    g.model_label = "Local model's summary";
    /* below 1B parameters a model cannot reason about code: show only what it
     * ties to code the index holds */
    ver.require_anchor = ver.require_quotes = eng_model_get_info(model)->n_params < 1000000000ull;
    rc = generate_engine(j, &a, model, &g, res, err);
  } else {
    cJSON_AddStringToObject(res, "note", me.msg);
  }
  if (!rc && g.ver) {
    kv_buf unit = KV_BUF_INIT;
    rc = dmn_verifier_finish(&ver, &unit);
    dmn_stream_model_text(&g, &unit);
    kv_buf_free(&unit);
  }
  dmn_stream_flush(&g, 1);
  if (!rc && dmn_job_canceled(j))
    rc = kv_err_set(err, KV_ECANCELED, "ask canceled after %d tokens", g.tokens);
  if (rc) goto out;
  int nc = cJSON_GetArraySize(a.cites);
  cJSON_AddStringToObject(res, "answer", kv_buf_str(&g.answer));
  cJSON_AddStringToObject(res, "repo", a.repo);
  /* citations: the places the answer refers to; context: all it was given */
  cJSON_AddItemToObject(res, "citations", dmn_answer_citations(kv_buf_str(&g.answer), a.cites, a.facts, a.nfacts));
  cJSON_AddItemToObject(res, "context", a.cites);
  a.cites = NULL;
  cJSON_AddNumberToObject(res, "retrieved", nc);
  if (nc == 0)
    cJSON_AddStringToObject(res, "retrieval", "retrieval found nothing in the index for this question");
  cJSON_AddStringToObject(res, "confidence", a.conf.unsure ? "low" : "high");
  if (a.conf.escalate[0]) cJSON_AddStringToObject(res, "escalation", a.conf.escalate);
  cJSON_AddItemToObject(res, "verification", verification_json(&ver.st));
  cJSON_AddStringToObject(res, "generator", gen);
  if (model || (stub_ms > 0 && !answered))
    cJSON_AddStringToObject(res, "model", model ? dmn_backend_model_name(b, model) : "stub");
  cJSON_AddNumberToObject(res, "tokens", g.tokens);
  cJSON_AddItemToObject(res, "facts", dmn_facts_json(a.facts, a.nfacts));
  cJSON_AddNumberToObject(res, "facts_seconds", g.t_facts);
  double total = kv_now() - t0;
  cJSON_AddNumberToObject(res, "seconds", total);
  cJSON_AddItemToObject(res, "timing", timing_json(&a, &g, total));
  cJSON *cv = cJSON_AddObjectToObject(res, "conversation");
  cJSON_AddStringToObject(cv, "id", a.conv->id);
  cJSON_AddBoolToObject(cv, "new", conv_new);
  cJSON_AddNumberToObject(cv, "turns", a.conv->nturns + 1);
  if (conv_note[0]) cJSON_AddStringToObject(cv, "note", conv_note);
  dmn_conv_release(b, a.conv, a.question, kv_buf_str(&g.answer));
  a.conv = NULL;
  *result = res;
  res = NULL;
out:
  dmn_backend_release(b, model);
  if (a.conv) dmn_conv_release(b, a.conv, NULL, NULL);
  cJSON_Delete(res);
  kv_buf_free(&g.answer);
  dmn_verifier_free(&ver);
  for (size_t i = 0; i < a.nfacts; i++) idx_fact_free(&a.facts[i]);
  if (a.ix) idx_close(a.ix);
  dmn_gate_ctx_free(&a.gate);
  cJSON_Delete(a.cites);
  kv_buf_free(&a.context);
  free(a.prefix_text);
  return rc;
}
