/*
 * generate.c — the generation loop: evaluate the prompt (re-using the cached
 * common prefix), then sample, report and evaluate one token at a time until
 * end of generation, a stop string, the length limit, a full context or the
 * callback asks to stop (checked before the next token is evaluated, so a
 * cancel costs at most one token). Tracks the mean log-probability of the
 * generated tokens as the confidence measure.
 */
#define _GNU_SOURCE /* memmem, qsort_r */
#include <stdlib.h>
#include <string.h>

#include "engine/ctx_internal.h"

static int hit_stop(const char *out, size_t n, size_t new_len, const eng_gen_params *gp) {
  for (size_t i = 0; i < gp->n_stop; i++) {
    const char *s = gp->stop[i];
    size_t l = s ? strlen(s) : 0;
    if (!l) continue;
    size_t from = n > new_len + l ? n - new_len - l + 1 : 0;
    if (n >= l && memmem(out + from, n - from, s, l)) return 1;
  }
  return 0;
}

int eng_generate(eng_ctx *c, eng_sampler *s, const int32_t *prompt, size_t n_prompt, const eng_gen_params *gp,
                 eng_gen_result *res, kv_err *err) {
  eng_gen_params defp = {0};
  if (!gp) gp = &defp;
  memset(res, 0, sizeof *res);
  res->n_prompt = (int)n_prompt;
  if (!n_prompt) return kv_err_set(err, KV_EINVAL, "generate: empty prompt");
  double t0 = kv_now();
  size_t keep = eng_ctx_common_prefix(c, prompt, n_prompt);
  if (keep == n_prompt) keep--; /* the last prompt token is re-run for its logits */
  eng_ctx_truncate(c, (int)keep);
  res->n_reused = (int)keep;
  int rc = eng_ctx_eval(c, prompt + keep, n_prompt - keep, 0, err);
  if (rc) return rc;
  res->t_prompt = kv_now() - t0;
  t0 = kv_now();
  kv_buf text = KV_BUF_INIT; /* the generated text, for the stop strings */
  char piece[256];
  if (kv_buf_reserve(&text, 4096)) return kv_err_set(err, KV_ENOMEM, "generate: out of memory");
  double lp_sum = 0;
  for (;;) {
    if (gp->max_tokens > 0 && res->n_gen >= gp->max_tokens) { res->stop_reason = ENG_STOP_LENGTH; break; }
    float lp;
    int32_t tok = eng_sample(s, eng_ctx_logits(c, 0), c->toks, (size_t)c->n_past, &lp);
    if (eng_token_is_eog(c->m, tok)) { res->stop_reason = ENG_STOP_EOG; break; }
    lp_sum += lp;
    res->n_gen++;
    int pl = eng_token_piece(c->m, tok, piece, sizeof piece);
    if (pl < 0) pl = 0;
    if ((size_t)pl > sizeof piece) pl = (int)sizeof piece;
    if (kv_buf_append(&text, piece, (size_t)pl)) {
      kv_buf_free(&text);
      return kv_err_set(err, KV_ENOMEM, "generate: out of memory");
    }
    if (gp->on_token && gp->on_token(gp->user, tok, piece, (size_t)pl)) {
      res->stop_reason = ENG_STOP_CALLBACK;
      break;
    }
    if (hit_stop(text.data, text.len, (size_t)pl, gp)) { res->stop_reason = ENG_STOP_STRING; break; }
    if (gp->max_tokens > 0 && res->n_gen >= gp->max_tokens) { res->stop_reason = ENG_STOP_LENGTH; break; }
    if (c->n_past >= c->n_ctx) { res->stop_reason = ENG_STOP_CTX; break; }
    if ((rc = eng_ctx_eval(c, &tok, 1, 0, err))) { kv_buf_free(&text); return rc; }
  }
  kv_buf_free(&text);
  res->mean_logprob = res->n_gen ? lp_sum / res->n_gen : 0;
  res->t_gen = kv_now() - t0;
  return 0;
}
