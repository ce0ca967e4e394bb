/*
 * bench_kvm_select_dump — the data for measuring block choice offline: a
 * needle prompt (kvm_eval_needle's protocol: "The value for key K is V."
 * planted at depth d of a haystack from --data, the question at the end) is
 * run through the model on the dense f16 cache, and every key of every layer
 (and value)
 * plus the queries of the prompt's last token (the one that predicts the
 * answer) are written to one file per depth. bench/kvmem/select_eval.py then
 * builds the compressed memory's blocks from those keys and says, per layer
 * and query head, where the block holding the needle (and the block holding
 * the most attention mass) ranks under each block-choice rule.
 *
 * File (little-endian): "KVMSEL1\0", i32 n_layer, n_head, n_kv, head_dim,
 * n_pos, needle_start, needle_len, pad; then K and V, each
 * [n_layer][n_pos][n_kv*D] f32, then Q [n_layer][n_head*D] f32 (rope applied to both, as the cache sees
 * them).
 *
 * The tap is a cache wrapper (eng_ctx_params.kv_create has no user pointer,
 * so its state is one file-level struct: this program runs one context).
 *
 * usage: bench_kvm_select_dump -m MODEL --data FILE --ctx N --depths N -o PREFIX [-t T]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/kvmem_eng.h"

static struct {
  void *inner;
  const eng_kv_ops *ops;
  int n_layer, n_kv, n_head, D, n_ctx;
  float *K, *V; /* [n_layer][n_ctx][n_kv*D] */
  float *Q;   /* [n_layer][n_head*D] */
  int tap_pos; /* queries at this position are kept */
} g;

static int w_append(void *kv, int layer, int pos, const float *k, const float *v) {
  size_t kvd = (size_t)g.n_kv * g.D;
  if (pos < g.n_ctx) {
    memcpy(g.K + ((size_t)layer * g.n_ctx + pos) * kvd, k, kvd * sizeof(float));
    memcpy(g.V + ((size_t)layer * g.n_ctx + pos) * kvd, v, kvd * sizeof(float));
  }
  return g.ops->append(kv, layer, pos, k, v);
}

/* The last token's query heads may come from several threads in any order:
 * each call takes a slot; main() orders a layer's slots by the query's
 * address (head j of the token sits at q + j*head_dim). */
#define TAP_MAX 64
static int tap_n[KVM_MAX_LAYERS];
static const float *tap_ptr[KVM_MAX_LAYERS][TAP_MAX];
static float *tap_q[KVM_MAX_LAYERS][TAP_MAX];
static void w_attend(void *kv, int layer, int kvh, const float *q, int pos, int window, float scale, float *out) {
  if (pos == g.tap_pos) {
    int i = __atomic_fetch_add(&tap_n[layer], 1, __ATOMIC_RELAXED);
    if (i < TAP_MAX) {
      tap_ptr[layer][i] = q;
      memcpy(tap_q[layer][i], q, sizeof(float) * (size_t)g.D);
    }
  }
  g.ops->attend(kv, layer, kvh, q, pos, window, scale, out);
}
static void w_truncate(void *kv, int n) { g.ops->truncate(kv, n); }
static int w_copy(void *dst, const void *src, int n) { return g.ops->copy_prefix(dst, src, n); }
static void w_free(void *kv) { g.ops->free(kv); }
static const eng_kv_ops k_tap = {"tap", w_append, w_attend, w_truncate, w_copy, w_free, NULL};

static int tap_create(void **out, const eng_kv_shape *s, const eng_kv_ops **ops, kv_err *err) {
  int rc = kvm_eng_create_full(out, s, &g.ops, err); /* the needle eval's "full" memory */
  *ops = &k_tap;
  return rc;
}

static uint64_t rnd(uint64_t *s) {
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 2685821657736338717ULL;
}

int main(int argc, char **argv) {
  const char *model = NULL, *data = NULL, *prefix = "/tmp/kvmsel";
  int ctx = 8192, depths = 5, threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "-m")) model = argv[i + 1];
    else if (!strcmp(argv[i], "--data")) data = argv[i + 1];
    else if (!strcmp(argv[i], "--ctx")) ctx = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--depths")) depths = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "-o")) prefix = argv[i + 1];
    else if (!strcmp(argv[i], "-t")) threads = atoi(argv[i + 1]);
    else {
      fprintf(stderr, "usage: bench_kvm_select_dump -m MODEL --data FILE --ctx N --depths N -o PREFIX [-t T]\n");
      return 2;
    }
  }
  if (!model || !data || ctx < 512 || depths < 1) {
    fprintf(stderr, "bench_kvm_select_dump: -m MODEL and --data FILE are required (ctx >= 512, depths >= 1)\n");
    return 2;
  }
  kv_err err;
  eng_model *m;
  if (eng_model_open(&m, model, &err)) { fprintf(stderr, "bench_kvm_select_dump: %s\n", err.msg); return 1; }
  const eng_model_info *I = eng_model_get_info(m);
  FILE *f = fopen(data, "rb");
  if (!f) { fprintf(stderr, "bench_kvm_select_dump: cannot open %s\n", data); return 1; }
  size_t cap = (size_t)ctx * 6;
  char *buf = malloc(cap);
  size_t len = buf ? fread(buf, 1, cap, f) : 0;
  fclose(f);
  size_t nh = 0, hcap = (size_t)ctx + 4096;
  int32_t *hay = malloc(sizeof(int32_t) * hcap), *seq = malloc(sizeof(int32_t) * ((size_t)ctx + 512));
  int rc = eng_tokenize(m, buf, len, 0, 0, hay, hcap, &nh, &err);
  if (rc == KV_ELIMIT) rc = 0, nh = hcap;
  if (rc || nh == 0) { fprintf(stderr, "bench_kvm_select_dump: tokenize: %s\n", err.msg); return 1; }
  for (size_t i = nh; i < (size_t)ctx; i++) hay[i] = hay[i % nh];
  g.n_layer = I->n_layer, g.n_kv = I->n_head_kv, g.n_head = I->n_head, g.D = I->head_dim, g.n_ctx = ctx;
  g.K = malloc(sizeof(float) * (size_t)g.n_layer * ctx * g.n_kv * g.D);
  g.V = malloc(sizeof(float) * (size_t)g.n_layer * ctx * g.n_kv * g.D);
  g.Q = malloc(sizeof(float) * (size_t)g.n_layer * g.n_head * g.D);
  if (!g.K || !g.V || !g.Q || g.n_head > TAP_MAX || g.n_layer > KVM_MAX_LAYERS) return 1;
  for (int l = 0; l < g.n_layer; l++)
    for (int i = 0; i < g.n_head; i++)
      if (!(tap_q[l][i] = malloc(sizeof(float) * (size_t)g.D))) return 1;
  uint64_t rs = 0x6b766d6e6565646cULL;
  for (int di = 0; di < depths; di++) {
    char needle[96], question[192];
    unsigned key = (unsigned)(rnd(&rs) % 0xfffff), val = (unsigned)(10000 + rnd(&rs) % 90000);
    snprintf(needle, sizeof needle, "\nThe value for key %05x is %05u.\n", key, val);
    snprintf(question, sizeof question, "\n\nQuestion: What is the value for key %05x?\nAnswer: The value for key %05x is",
             key, key);
    int32_t nd[128], qs[192];
    size_t nn, nq;
    if (eng_tokenize(m, needle, strlen(needle), 0, 0, nd, 128, &nn, &err) ||
        eng_tokenize(m, question, strlen(question), 0, 0, qs, 192, &nq, &err))
      return 1;
    size_t s = 0, hay_n = (size_t)ctx - nn - nq - 8;
    int32_t bos = eng_token_bos(m);
    if (bos >= 0) seq[s++] = bos;
    double depth = depths == 1 ? 0.5 : (double)di / (depths - 1);
    size_t at = (size_t)(depth * (double)hay_n + 0.5);
    memcpy(seq + s, hay, at * sizeof *seq), s += at;
    size_t needle_start = s;
    memcpy(seq + s, nd, nn * sizeof *seq), s += nn;
    memcpy(seq + s, hay + at, (hay_n - at) * sizeof *seq), s += hay_n - at;
    memcpy(seq + s, qs, nq * sizeof *seq), s += nq;
    eng_ctx_params p;
    eng_ctx_params_default(&p);
    p.n_ctx = ctx;
    p.n_threads = threads;
    p.kv_create = tap_create;
    eng_ctx *c;
    if (eng_ctx_create(&c, m, &p, &err)) { fprintf(stderr, "bench_kvm_select_dump: %s\n", err.msg); return 1; }
    memset(tap_n, 0, sizeof tap_n);
    g.tap_pos = -1;
    if (eng_ctx_eval(c, seq, s - 1, 0, &err)) { fprintf(stderr, "bench_kvm_select_dump: %s\n", err.msg); return 1; }
    g.tap_pos = (int)s - 1;
    if (eng_ctx_eval(c, seq + s - 1, 1, 0, &err)) { fprintf(stderr, "bench_kvm_select_dump: %s\n", err.msg); return 1; }
    eng_ctx_free(c);
    for (int l = 0; l < g.n_layer; l++) {
      if (tap_n[l] != g.n_head) { fprintf(stderr, "bench_kvm_select_dump: layer %d: %d queries\n", l, tap_n[l]); return 1; }
      for (int j = 0; j < g.n_head; j++) { /* rank of slot j by address = its head */
        int r = 0;
        for (int i = 0; i < g.n_head; i++) r += tap_ptr[l][i] < tap_ptr[l][j];
        memcpy(g.Q + ((size_t)l * g.n_head + r) * g.D, tap_q[l][j], sizeof(float) * (size_t)g.D);
      }
    }
    char path[4096];
    snprintf(path, sizeof path, "%s-%02d.bin", prefix, di);
    FILE *o = fopen(path, "wb");
    if (!o) { fprintf(stderr, "bench_kvm_select_dump: cannot write %s\n", path); return 1; }
    int32_t hdr[8] = {g.n_layer, g.n_head, g.n_kv, g.D, (int32_t)s, (int32_t)needle_start, (int32_t)nn, 0};
    fwrite("KVMSEL1", 1, 8, o);
    fwrite(hdr, sizeof hdr, 1, o);
    size_t kvd = (size_t)g.n_kv * g.D;
    for (int l = 0; l < g.n_layer; l++) fwrite(g.K + (size_t)l * ctx * kvd, sizeof(float), s * kvd, o);
    for (int l = 0; l < g.n_layer; l++) fwrite(g.V + (size_t)l * ctx * kvd, sizeof(float), s * kvd, o);
    fwrite(g.Q, sizeof(float), (size_t)g.n_layer * g.n_head * g.D, o);
    fclose(o);
    printf("%s: depth %.2f, %zu positions, needle at %zu (+%zu)\n", path, depth, s, needle_start, nn);
    fflush(stdout);
  }
  free(buf); free(hay); free(seq); free(g.K); free(g.V); free(g.Q);
  eng_model_free(m);
  return 0;
}
