/*
 * kvmem_eval.c — measurements of the KV memory on a real model: needle
 * retrieval on the user's own text and perplexity + decode speed, each run
 * the same way for full f16 memory (KVM_FULL) and for a compressed config so
 * the two can be compared in one run (`kvasir eval needle`, bench/kvmem).
 *
 * Needle protocol: haystack = the user's tokens (cycled if short); the
 * needle "\nThe value for key K is V.\n" (K 5 hex digits, V 5 decimal
 * digits) is planted at depth d of the haystack; the prompt ends with
 * "Question: What is the value for key K?\nAnswer: The value for key K is"
 * and the answer " V" is scored token by token: correct iff every answer
 * token is the greedy argmax given the ones before (= greedy generation
 * reproduces it), log-probability = sum of log p(answer token). Trials at
 * increasing depth reuse the common prefix of the previous trial
 * (eng_generate does the same), so a compressed run sees rows restored
 * from its blocks where a cut falls in compressed history.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kvmem_eng.h"

static double log_softmax_at(const float *lg, int n, int32_t tok, int32_t *argmax) {
  float mx = lg[0];
  int am = 0;
  for (int i = 1; i < n; i++)
    if (lg[i] > mx) { mx = lg[i]; am = i; }
  double s = 0;
  for (int i = 0; i < n; i++) s += exp((double)(lg[i] - mx));
  if (argmax) *argmax = am;
  return (double)(lg[tok] - mx) - log(s);
}

static int make_ctx(eng_ctx **c, eng_model *m, int n_ctx, int n_threads, const kvm_config *cfg, kv_err *err) {
  eng_ctx_params p;
  eng_ctx_params_default(&p);
  p.n_ctx = n_ctx;
  p.n_threads = n_threads;
  kvm_config full;
  if (!cfg) {
    kvm_eng_config(&full, m, n_ctx, KVM_FULL);
    cfg = &full;
  }
  kvm_config k = *cfg;
  k.max_tokens = n_ctx;
  return kvm_eng_ctx_create(c, m, &p, &k, err);
}

static void cache_bytes(eng_ctx *c, eng_model *m, int n, kvm_eval_result *out) {
  kvm_cache *kc = kvm_eng_ctx_cache(c);
  if (!kc || n <= 0) return;
  out->kv_bytes_per_token = (double)kvm_cache_bytes(kc) / n;
  out->f16_bytes_per_token = (double)kvm_f16_bytes(kvm_cache_config(kc), 1);
  (void)m;
}

int kvm_eval_ppl(eng_model *m, const int32_t *toks, size_t n, size_t score_from, int decode_n, int n_threads,
                 const kvm_config *cfg, kvm_eval_result *out, kv_err *err) {
  memset(out, 0, sizeof *out);
  if (n < 2) return kv_err_set(err, KV_EINVAL, "kvm_eval_ppl: %zu tokens", n);
  eng_ctx *c;
  int rc = make_ctx(&c, m, (int)n + decode_n + 1, n_threads, cfg, err);
  if (rc) return rc;
  int V = eng_n_vocab(m);
  double nll = 0;
  size_t count = 0;
  int32_t next = 0;
  for (size_t off = 0; off < n && !rc; off += 64) {
    size_t k = n - off < 64 ? n - off : 64;
    rc = eng_ctx_eval(c, toks + off, k, 1, err);
    for (size_t i = 0; i < k && !rc; i++) {
      size_t p = off + i + 1; /* predicted position */
      if (p < n && p >= score_from) {
        nll -= log_softmax_at(eng_ctx_logits(c, i), V, toks[p], NULL);
        count++;
      }
      if (p == n) log_softmax_at(eng_ctx_logits(c, i), V, 0, &next);
    }
  }
  if (!rc) {
    out->ppl = count ? exp(nll / (double)count) : 0;
    cache_bytes(c, m, (int)n, out);
    out->max_ctx = (int)n;
    double t0 = kv_now();
    for (int i = 0; i < decode_n && !rc; i++) {
      rc = eng_ctx_eval(c, &next, 1, 0, err);
      if (!rc) log_softmax_at(eng_ctx_logits(c, 0), V, 0, &next);
    }
    double dt = kv_now() - t0;
    out->decode_tok_s = decode_n > 0 && dt > 0 ? decode_n / dt : 0;
  }
  eng_ctx_free(c);
  return rc;
}

static int tok(eng_model *m, const char *s, int32_t *buf, size_t cap, size_t *n, kv_err *err) {
  return eng_tokenize(m, s, strlen(s), 0, 0, buf, cap, n, err);
}

/* xorshift64* */
static uint64_t rnd(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ULL;
}

int kvm_eval_needle(eng_model *m, const char *data, size_t len, const kvm_needle_params *p, const kvm_config *cfg,
                    kvm_eval_result *out, kv_err *err) {
  memset(out, 0, sizeof *out);
  if (p->min_ctx < 256 || p->max_ctx < p->min_ctx || p->n_depths < 1)
    return kv_err_set(err, KV_EINVAL, "eval needle: contexts %d..%d, %d depths", p->min_ctx, p->max_ctx, p->n_depths);
  if (len < 64) return kv_err_set(err, KV_EINVAL, "eval needle: %zu bytes of data is too little for a haystack", len);
  /* the haystack: enough of the data's tokens, cycled if short */
  size_t want = (size_t)p->max_ctx, cap = want + 4096, nh = 0, n;
  int32_t *hay = malloc(sizeof(int32_t) * cap), *seq = malloc(sizeof(int32_t) * ((size_t)p->max_ctx + 512));
  int32_t nd[128], qs[192], an[32];
  int rc = hay && seq ? 0 : kv_err_set(err, KV_ENOMEM, "eval needle: haystack");
  size_t chunk = len < (size_t)p->max_ctx * 6 ? len : (size_t)p->max_ctx * 6;
  if (!rc && (rc = eng_tokenize(m, data, chunk, 0, 0, hay, cap, &n, err)) == KV_ELIMIT) rc = 0, n = cap;
  if (!rc && n == 0) rc = kv_err_set(err, KV_EINVAL, "eval needle: the data has no tokens");
  for (nh = n; !rc && nh < want; nh++) hay[nh] = hay[nh % n];
  eng_ctx *c = NULL;
  if (!rc) rc = make_ctx(&c, m, p->max_ctx, p->n_threads, cfg, err); /* prompt + answer fit in max_ctx */
  int V = eng_n_vocab(m);
  uint64_t rs = p->seed ? p->seed : 0x6b766d6e6565646cULL;
  int n_len = 0;
  for (int L = p->min_ctx; L <= p->max_ctx; L *= 2) n_len++;
  if (n_len > KVM_EVAL_MAX_LENS) rc = kv_err_set(err, KV_EINVAL, "eval needle: more than %d lengths", KVM_EVAL_MAX_LENS);
  kv_progress pr;
  kv_progress_init(&pr, stderr, cfg ? "needle (compressed)" : "needle (full)", (uint64_t)(n_len * p->n_depths));
  pr.quiet = p->quiet;
  double lp_sum = 0, dec_t = 0;
  int dec_n = 0, trial = 0;
  for (int L = p->min_ctx; L <= p->max_ctx && !rc; L *= 2) {
    int li = out->n_lens++;
    out->len_ctx[li] = L;
    for (int di = 0; di < p->n_depths && !rc; di++, trial++) {
      char key[8], val[8], needle[96], question[192], answer[16];
      snprintf(key, sizeof key, "%05x", (unsigned)(rnd(&rs) % 0xfffff));
      snprintf(val, sizeof val, "%05u", (unsigned)(10000 + rnd(&rs) % 90000));
      snprintf(needle, sizeof needle, "\nThe value for key %s is %s.\n", key, val);
      snprintf(question, sizeof question, "\n\nQuestion: What is the value for key %s?\nAnswer: The value for key %s is",
               key, key);
      snprintf(answer, sizeof answer, " %s", val);
      size_t nn, nq, na;
      if ((rc = tok(m, needle, nd, 128, &nn, err)) || (rc = tok(m, question, qs, 192, &nq, err)) ||
          (rc = tok(m, answer, an, 32, &na, err)))
        break;
      int32_t bos = eng_token_bos(m);
      size_t s = 0, hay_n = (size_t)L - nn - nq - na - 2;
      if (bos >= 0) seq[s++] = bos;
      double depth = p->n_depths == 1 ? 0.5 : (double)di / (p->n_depths - 1);
      size_t at = (size_t)(depth * (double)hay_n + 0.5);
      memcpy(seq + s, hay, at * sizeof *seq), s += at;
      memcpy(seq + s, nd, nn * sizeof *seq), s += nn;
      memcpy(seq + s, hay + at, (hay_n - at) * sizeof *seq), s += hay_n - at;
      memcpy(seq + s, qs, nq * sizeof *seq), s += nq;
      size_t keep = eng_ctx_common_prefix(c, seq, s);
      if (keep == s) keep--;
      eng_ctx_truncate(c, (int)keep);
      if ((rc = eng_ctx_eval(c, seq + keep, s - keep, 0, err))) break;
      int ok = 1;
      double lp = 0;
      for (size_t i = 0; i < na && !rc; i++) {
        int32_t am;
        lp += log_softmax_at(eng_ctx_logits(c, 0), V, an[i], &am);
        ok &= am == an[i];
        double t0 = kv_now();
        rc = eng_ctx_eval(c, &an[i], 1, 0, err);
        if (L * 2 > p->max_ctx) dec_t += kv_now() - t0, dec_n++;
      }
      if (rc) break;
      out->n_needles++;
      out->n_correct += ok;
      out->len_needles[li]++;
      out->len_correct[li] += ok;
      lp_sum += lp;
      if (L * 2 > p->max_ctx) cache_bytes(c, m, eng_ctx_n_past(c), out);
      char extra[64];
      snprintf(extra, sizeof extra, "ctx %d depth %.0f%%: %s", L, depth * 100, ok ? "ok" : "miss");
      kv_progress_update(&pr, (uint64_t)trial + 1, extra);
    }
  }
  if (!rc) {
    kv_progress_finish(&pr, NULL);
    out->accuracy = out->n_needles ? (double)out->n_correct / out->n_needles : 0;
    out->answer_logprob = out->n_needles ? lp_sum / out->n_needles : 0;
    out->decode_tok_s = dec_t > 0 ? dec_n / dec_t : 0;
    out->max_ctx = p->max_ctx;
  }
  eng_ctx_free(c);
  free(hay);
  free(seq);
  return rc;
}
