/*
 * cmd_engine.c — the offline engine commands: run, chat, ppl, bench,
 * tokenize. Each parses its own flags, opens the model (-m, default: the
 * fetched SmolLM2) and drives engine/engine.h; none talks to the daemon.
 * Exit codes: 0 ok, 1 failure, 2 usage error.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "engine/engine.h"

typedef struct opts {
  const char *model, *prompt, *file, *text;
  int n, n_ctx, threads, chat, json, ids, no_special, reps, pp, tg;
  eng_sampler_params sp;
} opts;

static int usage(const char *cmd, int rc) {
  FILE *o = rc ? stderr : stdout;
  if (!strcmp(cmd, "run"))
    fprintf(o, "usage: kvasir run [-m MODEL] -p PROMPT [-n N] [--chat] [--temp T] [--top-k K] [--top-p P]\n"
               "                  [--min-p P] [--repeat-penalty R] [--seed S] [-c CTX] [-t THREADS] [--json]\n"
               "  Stream a continuation of PROMPT (with --chat: as a user turn in the model's chat format).\n");
  else if (!strcmp(cmd, "chat"))
    fprintf(o, "usage: kvasir chat [-m MODEL] [-n N] [--temp T] [--seed S] [-c CTX] [-t THREADS]\n"
               "  Interactive chat on stdin; one line per user turn, empty line or EOF ends.\n");
  else if (!strcmp(cmd, "ppl"))
    fprintf(o, "usage: kvasir ppl [-m MODEL] -f FILE [-c CTX] [-n MAX_CHUNKS] [-t THREADS] [--json]\n"
               "  Perplexity as llama-perplexity computes it: chunks of CTX tokens (BOS first when the\n"
               "  model uses one), each scored on its second half.\n");
  else if (!strcmp(cmd, "bench"))
    fprintf(o, "usage: kvasir bench [-m MODEL] [--pp N] [--tg N] [-r REPS] [-t THREADS] [--json]\n"
               "  Prompt processing (pp) and generation (tg) speed in tokens/s, as llama-bench measures.\n");
  else
    fprintf(o, "usage: kvasir tokenize [-m MODEL] [--ids] [--json] [--no-special] [-f FILE | TEXT]\n"
               "  Print the token ids of TEXT (BOS added when the model uses one; special tokens parsed).\n");
  return rc;
}

static int parse(const char *cmd, int argc, char **argv, opts *o) {
  memset(o, 0, sizeof *o);
  eng_sampler_params_default(&o->sp);
  o->sp.top_k = 40;
  o->sp.top_p = 0.95f;
  o->sp.min_p = 0.05f;
  o->sp.temp = 0.8f;
  o->n = -1;
  o->reps = 3;
  o->pp = 128;
  o->tg = 32;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(flag) (!strcmp(a, flag) && v && (i++, 1))
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(cmd, 0) - 1;
    else if (ARG("-m") || ARG("--model")) o->model = v;
    else if (ARG("-p") || ARG("--prompt")) o->prompt = v;
    else if (ARG("-f") || ARG("--file")) o->file = v;
    else if (ARG("-n")) o->n = atoi(v);
    else if (ARG("-c") || ARG("--ctx")) o->n_ctx = atoi(v);
    else if (ARG("-t") || ARG("--threads")) o->threads = atoi(v);
    else if (ARG("-r")) o->reps = atoi(v);
    else if (ARG("--pp")) o->pp = atoi(v);
    else if (ARG("--tg")) o->tg = atoi(v);
    else if (ARG("--temp")) o->sp.temp = (float)atof(v);
    else if (ARG("--top-k")) o->sp.top_k = atoi(v);
    else if (ARG("--top-p")) o->sp.top_p = (float)atof(v);
    else if (ARG("--min-p")) o->sp.min_p = (float)atof(v);
    else if (ARG("--repeat-penalty")) o->sp.repeat_penalty = (float)atof(v);
    else if (ARG("--seed")) o->sp.seed = strtoull(v, NULL, 10);
    else if (!strcmp(a, "--chat")) o->chat = 1;
    else if (!strcmp(a, "--json")) o->json = 1;
    else if (!strcmp(a, "--ids")) o->ids = 1;
    else if (!strcmp(a, "--no-special")) o->no_special = 1;
    else if (a[0] == '-' && a[1]) { fprintf(stderr, "kvasir %s: unknown or incomplete option %s\n", cmd, a); return usage(cmd, 2); }
    else if (!o->text) o->text = a;
    else { fprintf(stderr, "kvasir %s: unexpected argument %s\n", cmd, a); return usage(cmd, 2); }
#undef ARG
  }
  return 0;
}

static int open_model(const opts *o, eng_model **m) {
  char def[4096];
  const char *path = o->model;
  if (!path) {
    if (eng_default_model_path(def, sizeof def)) { fprintf(stderr, "kvasir: cannot build the default model path\n"); return 1; }
    path = def;
  }
  kv_err err = {0};
  if (eng_model_open(m, path, &err)) {
    fprintf(stderr, "kvasir: %s\n", err.msg);
    if (err.code == KV_ENOTFOUND && !o->model) fprintf(stderr, "  fetch it with: scripts/fetch-model smollm2\n");
    return 1;
  }
  return 0;
}

static int tokenize_all(eng_model *m, const char *text, size_t len, int add, int parse_special, int32_t **out,
                        size_t *n) {
  kv_err err = {0};
  size_t cap = len + 16;
  *out = malloc(cap * sizeof **out);
  if (!*out) return 1;
  if (eng_tokenize(m, text, len, add, parse_special, *out, cap, n, &err)) {
    fprintf(stderr, "kvasir: %s\n", err.msg);
    free(*out);
    return 1;
  }
  return 0;
}

static int print_cb(void *user, int32_t tok, const char *piece, size_t len) {
  (void)user; (void)tok;
  fwrite(piece, 1, len, stdout);
  fflush(stdout);
  return 0;
}

static int generate_text(eng_model *m, eng_ctx *c, eng_sampler *s, const char *text, int n, int print,
                         eng_gen_result *res) {
  int32_t *toks;
  size_t nt;
  if (tokenize_all(m, text, strlen(text), 1, 1, &toks, &nt)) return 1;
  eng_gen_params gp = {0};
  gp.max_tokens = n;
  gp.on_token = print ? print_cb : NULL;
  kv_err err = {0};
  int rc = eng_generate(c, s, toks, nt, &gp, res, &err);
  free(toks);
  if (rc) { fprintf(stderr, "\nkvasir: %s\n", err.msg); return 1; }
  return 0;
}

int cmd_run(int argc, char **argv) {
  opts o;
  int rc = parse("run", argc, argv, &o);
  if (rc) return rc < 0 ? 0 : rc;
  if (!o.prompt) o.prompt = o.text;
  if (!o.prompt) { fprintf(stderr, "kvasir run: -p PROMPT is required\n"); return usage("run", 2); }
  eng_model *m;
  if (open_model(&o, &m)) return 1;
  kv_err err = {0};
  eng_ctx_params cp = {o.n_ctx, o.threads, NULL, NULL};
  eng_ctx *c = NULL;
  eng_sampler *s = NULL;
  char *text = NULL;
  rc = 1;
  if (eng_ctx_create(&c, m, &cp, &err) || eng_sampler_create(&s, &o.sp, eng_n_vocab(m), &err)) {
    fprintf(stderr, "kvasir run: %s\n", err.msg);
    goto out;
  }
  const char *prompt = o.prompt;
  if (o.chat) {
    eng_chat_msg msg = {"user", o.prompt};
    if (eng_chat_apply(m, &msg, 1, 1, &text, &err)) { fprintf(stderr, "kvasir run: %s\n", err.msg); goto out; }
    prompt = text;
  }
  eng_gen_result res;
  if (!o.json && !o.chat) fputs(o.prompt, stdout);
  if (generate_text(m, c, s, prompt, o.n < 0 ? 128 : o.n, !o.json, &res)) goto out;
  if (o.json)
    printf("{\"n_prompt\":%d,\"n_gen\":%d,\"mean_logprob\":%.6f,\"stop\":%d,\"prompt_tps\":%.2f,\"gen_tps\":%.2f}\n",
           res.n_prompt, res.n_gen, res.mean_logprob, res.stop_reason,
           res.t_prompt > 0 ? res.n_prompt / res.t_prompt : 0, res.t_gen > 0 ? res.n_gen / res.t_gen : 0);
  else
    fprintf(stderr, "\n[%d prompt tokens %.1f t/s, %d generated %.1f t/s, mean logprob %.3f]\n", res.n_prompt,
            res.t_prompt > 0 ? res.n_prompt / res.t_prompt : 0, res.n_gen, res.t_gen > 0 ? res.n_gen / res.t_gen : 0,
            res.mean_logprob);
  rc = 0;
out:
  free(text);
  eng_sampler_free(s);
  eng_ctx_free(c);
  eng_model_free(m);
  return rc;
}

int cmd_chat(int argc, char **argv) {
  opts o;
  int rc = parse("chat", argc, argv, &o);
  if (rc) return rc < 0 ? 0 : rc;
  eng_model *m;
  if (open_model(&o, &m)) return 1;
  kv_err err = {0};
  eng_ctx_params cp = {o.n_ctx, o.threads, NULL, NULL};
  eng_ctx *c = NULL;
  eng_sampler *s = NULL;
  size_t nmsg = 0, cap = 64;
  eng_chat_msg *msgs = calloc(cap, sizeof *msgs);
  rc = 1;
  if (!msgs || eng_ctx_create(&c, m, &cp, &err) || eng_sampler_create(&s, &o.sp, eng_n_vocab(m), &err)) {
    fprintf(stderr, "kvasir chat: %s\n", err.msg);
    goto out;
  }
  char line[8192];
  for (;;) {
    fprintf(stderr, "> ");
    if (!fgets(line, sizeof line, stdin)) break;
    line[strcspn(line, "\n")] = 0;
    if (!line[0]) break;
    if (nmsg + 2 > cap) break;
    msgs[nmsg].role = "user";
    msgs[nmsg++].content = strdup(line);
    char *text = NULL;
    if (eng_chat_apply(m, msgs, nmsg, 1, &text, &err)) { fprintf(stderr, "kvasir chat: %s\n", err.msg); goto out; }
    int32_t *toks;
    size_t nt;
    if (tokenize_all(m, text, strlen(text), 1, 1, &toks, &nt)) { free(text); goto out; }
    free(text);
    size_t len = 0;
    eng_gen_params gp = {0};
    gp.max_tokens = o.n < 0 ? 512 : o.n;
    gp.on_token = print_cb;
    eng_gen_result res;
    int grc = eng_generate(c, s, toks, nt, &gp, &res, &err);
    free(toks);
    if (grc) { fprintf(stderr, "kvasir chat: %s\n", err.msg); goto out; }
    /* the reply text is re-derived from the cache's tokens after the prompt */
    char *rt = NULL;
    const int32_t *all = eng_ctx_tokens(c);
    int n_past = eng_ctx_n_past(c);
    if (n_past > (int)nt) eng_detokenize(m, all + nt, (size_t)(n_past - (int)nt), &rt, &len, &err);
    msgs[nmsg].role = "assistant";
    msgs[nmsg++].content = rt ? rt : strdup("");
    printf("\n");
  }
  rc = 0;
out:
  for (size_t i = 0; msgs && i < nmsg; i++) free((char *)msgs[i].content);
  free(msgs);
  eng_sampler_free(s);
  eng_ctx_free(c);
  eng_model_free(m);
  return rc;
}

int cmd_tokenize(int argc, char **argv) {
  opts o;
  int rc = parse("tokenize", argc, argv, &o);
  if (rc) return rc < 0 ? 0 : rc;
  char *buf = NULL;
  size_t len = 0;
  kv_err err = {0};
  if (o.file) {
    if (kv_read_file(o.file, 64u << 20, &buf, &len, &err)) { fprintf(stderr, "kvasir tokenize: %s\n", err.msg); return 1; }
  } else if (o.text) {
    buf = strdup(o.text);
    len = strlen(o.text);
  } else return usage("tokenize", 2);
  eng_model *m;
  if (open_model(&o, &m)) { free(buf); return 1; }
  int32_t *toks;
  size_t n;
  rc = tokenize_all(m, buf, len, 1, !o.no_special, &toks, &n);
  if (!rc) {
    if (o.ids || o.json) {
      printf("[");
      for (size_t i = 0; i < n; i++) printf("%s%d", i ? ", " : "", toks[i]);
      printf("]\n");
    } else {
      char piece[512];
      for (size_t i = 0; i < n; i++) {
        int l = eng_token_piece(m, toks[i], piece, sizeof piece - 1);
        if (l < 0) l = 0;
        if ((size_t)l > sizeof piece - 1) l = (int)sizeof piece - 1;
        piece[l] = 0;
        printf("%6d -> '%s'\n", toks[i], piece);
      }
    }
    free(toks);
  }
  free(buf);
  eng_model_free(m);
  return rc;
}

typedef struct ppl_ui {
  kv_progress pr;
  int json;
} ppl_ui;

static int ppl_cb(void *user, int chunk, int n_chunks, double ppl) {
  ppl_ui *u = user;
  char extra[64];
  snprintf(extra, sizeof extra, "ppl %.4f", ppl);
  kv_progress_update(&u->pr, (uint64_t)chunk, extra);
  if (!u->json) fprintf(stderr, "[%d]%.4f%s", chunk, ppl, chunk == n_chunks ? "\n" : ",");
  return 0;
}

int cmd_ppl(int argc, char **argv) {
  opts o;
  int rc = parse("ppl", argc, argv, &o);
  if (rc) return rc < 0 ? 0 : rc;
  if (!o.file) { fprintf(stderr, "kvasir ppl: -f FILE is required\n"); return usage("ppl", 2); }
  int n_ctx = o.n_ctx > 0 ? o.n_ctx : 512;
  char *buf;
  size_t len;
  kv_err err = {0};
  if (kv_read_file(o.file, 256u << 20, &buf, &len, &err)) { fprintf(stderr, "kvasir ppl: %s\n", err.msg); return 1; }
  eng_model *m;
  if (open_model(&o, &m)) { free(buf); return 1; }
  int32_t *toks = NULL;
  size_t n;
  eng_ctx *c = NULL;
  rc = 1;
  if (tokenize_all(m, buf, len, 1, 1, &toks, &n)) goto out;
  eng_ctx_params cp = {n_ctx, o.threads, NULL, NULL};
  if (eng_ctx_create(&c, m, &cp, &err)) { fprintf(stderr, "kvasir ppl: %s\n", err.msg); goto out; }
  ppl_ui ui;
  kv_progress_init(&ui.pr, stderr, "ppl", (uint64_t)(n / (size_t)n_ctx));
  ui.pr.quiet = o.json;
  ui.json = o.json;
  double t0 = kv_now(), ppl;
  if (eng_perplexity(c, toks, n, o.n > 0 ? o.n : 0, ppl_cb, &ui, &ppl, NULL, NULL, &err)) {
    fprintf(stderr, "kvasir ppl: %s: %s\n", o.file, err.msg);
    goto out;
  }
  kv_progress_finish(&ui.pr, NULL);
  double dt = kv_now() - t0;
  if (o.json) printf("{\"ppl\":%.6f,\"n_ctx\":%d,\"tokens\":%zu,\"seconds\":%.3f}\n", ppl, n_ctx, n, dt);
  else printf("Final estimate: PPL = %.4f (n_ctx %d, %zu tokens, %.1f s)\n", ppl, n_ctx, n, dt);
  rc = 0;
out:
  eng_ctx_free(c);
  free(toks);
  free(buf);
  eng_model_free(m);
  return rc;
}

int cmd_bench(int argc, char **argv) {
  opts o;
  int rc = parse("bench", argc, argv, &o);
  if (rc) return rc < 0 ? 0 : rc;
  if (o.pp <= 0 || o.tg <= 0 || o.reps <= 0) return usage("bench", 2);
  eng_model *m;
  if (open_model(&o, &m)) return 1;
  kv_err err = {0};
  eng_ctx_params cp = {o.pp + o.tg + 8, o.threads, NULL, NULL};
  eng_ctx *c = NULL;
  rc = 1;
  if (eng_ctx_create(&c, m, &cp, &err)) { fprintf(stderr, "kvasir bench: %s\n", err.msg); goto out; }
  int32_t *toks = malloc((size_t)o.pp * sizeof *toks);
  if (!toks) goto out;
  uint64_t r = 12345;
  for (int i = 0; i < o.pp; i++) { r = r * 6364136223846793005ull + 1; toks[i] = (int32_t)((r >> 33) % (uint64_t)eng_n_vocab(m)); }
  double pp_best = 0, tg_best = 0, pp_sum = 0, tg_sum = 0;
  /* warm-up run, as llama-bench does */
  eng_ctx_truncate(c, 0);
  if (eng_ctx_eval(c, toks, (size_t)(o.pp < 16 ? o.pp : 16), 0, &err)) { fprintf(stderr, "kvasir bench: %s\n", err.msg); free(toks); goto out; }
  for (int rep = 0; rep < o.reps; rep++) {
    eng_ctx_truncate(c, 0);
    double t0 = kv_now();
    if (eng_ctx_eval(c, toks, (size_t)o.pp, 0, &err)) { fprintf(stderr, "kvasir bench: %s\n", err.msg); free(toks); goto out; }
    double pp = o.pp / (kv_now() - t0);
    eng_ctx_truncate(c, 0);
    int32_t t = toks[0];
    t0 = kv_now();
    for (int i = 0; i < o.tg; i++)
      if (eng_ctx_eval(c, &t, 1, 0, &err)) { fprintf(stderr, "kvasir bench: %s\n", err.msg); free(toks); goto out; }
    double tg = o.tg / (kv_now() - t0);
    pp_sum += pp; tg_sum += tg;
    if (pp > pp_best) pp_best = pp;
    if (tg > tg_best) tg_best = tg;
  }
  free(toks);
  const eng_model_info *I = eng_model_get_info(m);
  size_t rss = kv_peak_rss();
  if (o.json)
    printf("{\"model\":\"%s\",\"arch\":\"%s\",\"threads\":%d,\"pp\":%d,\"tg\":%d,\"pp_tps\":%.3f,\"tg_tps\":%.3f,"
           "\"peak_rss\":%zu,\"file_size\":%zu}\n",
           I->name, I->arch, o.threads, o.pp, o.tg, pp_sum / o.reps, tg_sum / o.reps, rss, I->file_size);
  else
    printf("%s (%s): pp%d %.2f t/s, tg%d %.2f t/s (mean of %d), peak RSS %.1f MiB, file %.1f MiB\n", I->name, I->arch,
           o.pp, pp_sum / o.reps, o.tg, tg_sum / o.reps, o.reps, rss / 1048576.0, I->file_size / 1048576.0);
  rc = 0;
out:
  eng_ctx_free(c);
  eng_model_free(m);
  return rc;
}
