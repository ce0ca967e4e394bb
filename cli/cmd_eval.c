/* cmd_eval.c — `kvasir eval`: evaluations of the engine on the user's own
 * data. `eval needle` plants key/value needles at depths 0–100% of
 * haystacks (1k → the model's context) built from a file or a repository,
 * and reports, for full f16 KV memory and for the compressed memory,
 * retrieval accuracy, answer log-probability (teacher-forced), KV bytes per
 * token and decode tokens/s (engine/kvmem_eval.c does the measuring).
 * Owned by the KV-memory work (issue #5). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "engine/kvmem_eng.h"
#include "policy/policy.h"
#include <limits.h>
#include <unistd.h>

/* --record: the accuracy the evaluation measured at each haystack length,
 * stored with pol_calibration_record for the project around the current
 * directory (r is the full-memory result unless only the compressed memory
 * was evaluated). */
static int calibrate(const kvm_eval_result *r, const char *as, int json, kv_err *err) {
  char cwd[PATH_MAX], project[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) return kv_err_set(err, KV_EIO, "getcwd failed");
  kv_err fe;
  if (pol_find_project(cwd, project, sizeof project, &fe)) snprintf(project, sizeof project, "%s", cwd);
  for (int i = 0; i < r->n_lens; i++) {
    double acc = r->len_needles[i] ? (double)r->len_correct[i] / r->len_needles[i] : 0;
    int rc = pol_calibration_record(as, project, (uint64_t)r->len_ctx[i], acc, err);
    if (rc) return rc;
    fprintf(json ? stderr : stdout, "recorded: %s @ %s ctx %d accuracy %.3f\n", as, project, r->len_ctx[i], acc);
  }
  return 0;
}

static void usage(FILE *o) {
  fprintf(o,
          "usage: kvasir eval needle [-m MODEL] --data FILE|DIR [--ctx N] [--min-ctx N] [--depths N]\n"
          "                          [--mode both|full|compressed] [--top-k K] [--key-bits 2|4|8]\n"
          "                          [--val-bits 2|4|8] [--window W] [--block B] [--sinks S]\n"
          "                          [-t THREADS] [--seed N] [--json] [--record [--as TIER_MODEL]]\n"
          "  Long-context retrieval on your own data: needles 'key 7f3a9 -> value 91824' planted at\n"
          "  depths 0-100%% of haystacks from --min-ctx (default 1024) doubling to --ctx (default: the\n"
          "  model's context), asked back at the end. Reports for full f16 and compressed KV memory:\n"
          "  accuracy (0-1), answer_logprob, kv_bytes_per_token, decode_tok_s.\n"
          "  --json prints {\"full\": {...}, \"compressed\": {...}}.\n"
          "  --record stores the accuracy measured at each haystack length for this project\n"
          "  (.kvasir/policy.yaml found upward from the current directory, else the current directory)\n"
          "  under the local tier's model name (--as, default \"flash\"), where a policy rule with\n"
          "  `max_context: calibrated` reads it.\n");
}

/* Append the text files under dir (sorted, recursive; hidden and build*
 * directories skipped) to *buf until it holds cap bytes. */
static int add_tree(const char *dir, char **buf, size_t *len, size_t cap, int depth) {
  if (depth > 12 || *len >= cap) return 0;
  struct dirent **ents;
  int n = scandir(dir, &ents, NULL, alphasort);
  if (n < 0) return -1;
  static const char *const exts[] = {".c", ".h", ".py", ".md", ".txt", ".js", ".ts", ".go", ".rs", ".java",
                                     ".cmake", ".sh", ".yaml", ".yml", ".toml", ".lua", ".log", ".cpp", ".hpp"};
  for (int i = 0; i < n; i++) {
    const char *nm = ents[i]->d_name;
    char path[4096];
    if (nm[0] == '.' || !strncmp(nm, "build", 5) || !strcmp(nm, "node_modules") || *len >= cap) goto next;
    snprintf(path, sizeof path, "%s/%s", dir, nm);
    struct stat st;
    if (lstat(path, &st)) goto next;
    if (S_ISDIR(st.st_mode)) {
      add_tree(path, buf, len, cap, depth + 1);
    } else if (S_ISREG(st.st_mode) && st.st_size > 0 && st.st_size < (4 << 20)) {
      const char *dot = strrchr(nm, '.');
      int ok = 0;
      for (size_t e = 0; dot && e < sizeof exts / sizeof exts[0]; e++) ok |= !strcmp(dot, exts[e]);
      if (!ok && strcmp(nm, "CMakeLists.txt") && strcmp(nm, "Makefile")) goto next;
      char *t;
      size_t tl;
      kv_err err;
      if (kv_read_file(path, 4 << 20, &t, &tl, &err)) goto next;
      if (memchr(t, 0, tl) == NULL) {
        size_t take = tl < cap - *len ? tl : cap - *len;
        memcpy(*buf + *len, t, take);
        *len += take;
      }
      free(t);
    }
  next:
    free(ents[i]);
  }
  free(ents);
  return 0;
}

static void print_result(const char *name, const kvm_eval_result *r, int json, int last) {
  if (json) {
    printf("\"%s\": {\"accuracy\": %.4f, \"answer_logprob\": %.4f, \"kv_bytes_per_token\": %.1f, "
           "\"f16_bytes_per_token\": %.1f, \"decode_tok_s\": %.3f, \"needles\": %d, \"correct\": %d, \"max_ctx\": %d}%s",
           name, r->accuracy, r->answer_logprob, r->kv_bytes_per_token, r->f16_bytes_per_token, r->decode_tok_s,
           r->n_needles, r->n_correct, r->max_ctx, last ? "" : ", ");
  } else {
    printf("%-10s accuracy %.3f (%d/%d)  answer logprob %.3f  KV %.1f bytes/token (%.1f%% of f16)  decode %.2f tok/s\n",
           name, r->accuracy, r->n_correct, r->n_needles, r->answer_logprob, r->kv_bytes_per_token,
           r->f16_bytes_per_token > 0 ? 100 * r->kv_bytes_per_token / r->f16_bytes_per_token : 0, r->decode_tok_s);
  }
}

static int needle(int argc, char **argv) {
  const char *model = NULL, *data = NULL, *mode = "both";
  int ctx = 0, min_ctx = 1024, depths = 5, threads = 0, json = 0, record = 0;
  const char *as = "flash";
  long seed = 0;
  kvm_config over;
  memset(&over, 0, sizeof over);
  over.top_k = -1;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEXT_INT(dst) do { if (!v) goto bad; dst = atoi(v); i++; } while (0)
    if (!strcmp(a, "--json")) json = 1;
    else if (!strcmp(a, "--record")) record = 1;
    else if (!strcmp(a, "--as")) { if (!v) goto bad; as = v; i++; }
    else if (!strcmp(a, "-m")) { if (!v) goto bad; model = v; i++; }
    else if (!strcmp(a, "--data")) { if (!v) goto bad; data = v; i++; }
    else if (!strcmp(a, "--mode")) { if (!v) goto bad; mode = v; i++; }
    else if (!strcmp(a, "--ctx")) NEXT_INT(ctx);
    else if (!strcmp(a, "--min-ctx")) NEXT_INT(min_ctx);
    else if (!strcmp(a, "--depths")) NEXT_INT(depths);
    else if (!strcmp(a, "-t")) NEXT_INT(threads);
    else if (!strcmp(a, "--seed")) { if (!v) goto bad; seed = atol(v); i++; }
    else if (!strcmp(a, "--top-k")) NEXT_INT(over.top_k);
    else if (!strcmp(a, "--key-bits")) NEXT_INT(over.key_bits);
    else if (!strcmp(a, "--val-bits")) NEXT_INT(over.val_bits);
    else if (!strcmp(a, "--window")) NEXT_INT(over.window);
    else if (!strcmp(a, "--block")) NEXT_INT(over.block);
    else if (!strcmp(a, "--sinks")) NEXT_INT(over.sinks);
    else goto bad;
#undef NEXT_INT
  }
  if (!data) {
    fprintf(stderr, "kvasir eval needle: --data FILE|DIR is required\n");
    usage(stderr);
    return 2;
  }
  int do_full = strcmp(mode, "compressed") != 0, do_comp = strcmp(mode, "full") != 0;
  if (strcmp(mode, "both") && strcmp(mode, "full") && strcmp(mode, "compressed")) goto bad;
  char mpath[4096];
  if (!model) {
    if (eng_default_model_path(mpath, sizeof mpath)) { fprintf(stderr, "kvasir eval: no model path\n"); return 1; }
    model = mpath;
  }
  kv_err err;
  eng_model *m;
  if (eng_model_open(&m, model, &err)) { fprintf(stderr, "kvasir eval: %s\n", err.msg); return 1; }
  const eng_model_info *I = eng_model_get_info(m);
  if (ctx <= 0) ctx = I->n_ctx_train > 0 ? I->n_ctx_train : 4096;
  if (I->n_ctx_train > 0 && ctx > I->n_ctx_train) {
    fprintf(stderr, "kvasir eval: --ctx %d exceeds the model's context %d\n", ctx, I->n_ctx_train);
    eng_model_free(m);
    return 2;
  }
  if (min_ctx > ctx) min_ctx = ctx;
  size_t cap = (size_t)ctx * 6 + 4096, len = 0;
  char *buf = NULL;
  struct stat st;
  int rc = 1;
  if (stat(data, &st)) { fprintf(stderr, "kvasir eval: %s: not found\n", data); goto out; }
  if (S_ISDIR(st.st_mode)) {
    buf = malloc(cap);
    if (!buf || add_tree(data, &buf, &len, cap, 0)) { fprintf(stderr, "kvasir eval: cannot read %s\n", data); goto out; }
  } else if (kv_read_file(data, 256u << 20, &buf, &len, &err)) {
    fprintf(stderr, "kvasir eval: %s\n", err.msg);
    goto out;
  }
  if (len < 1024) { fprintf(stderr, "kvasir eval: %s holds only %zu bytes of text\n", data, len); goto out; }
  kvm_needle_params np = {min_ctx, ctx, depths, threads, (uint64_t)seed, json};
  kvm_config cfg;
  kvm_eng_config(&cfg, m, ctx, KVM_COMPRESSED);
  if (over.top_k >= 0) cfg.top_k = over.top_k;
  if (over.key_bits) cfg.key_bits = over.key_bits;
  if (over.val_bits) cfg.val_bits = over.val_bits;
  if (over.window) cfg.window = over.window;
  if (over.block) cfg.block = over.block;
  if (over.sinks) cfg.sinks = over.sinks;
  if (kvm_config_check(&cfg, &err)) { fprintf(stderr, "kvasir eval: %s\n", err.msg); goto out; }
  kvm_eval_result full, comp;
  memset(&full, 0, sizeof full);
  memset(&comp, 0, sizeof comp);
  if (do_full && kvm_eval_needle(m, buf, len, &np, NULL, &full, &err)) { fprintf(stderr, "kvasir eval: %s\n", err.msg); goto out; }
  if (do_comp && kvm_eval_needle(m, buf, len, &np, &cfg, &comp, &err)) { fprintf(stderr, "kvasir eval: %s\n", err.msg); goto out; }
  if (record && calibrate(do_full ? &full : &comp, as, json, &err)) {
    fprintf(stderr, "kvasir eval: %s\n", err.msg);
    goto out;
  }
  if (json) printf("{");
  if (do_full) print_result("full", &full, json, !do_comp);
  if (do_comp) print_result("compressed", &comp, json, 1);
  if (json) printf("}\n");
  rc = 0;
out:
  free(buf);
  eng_model_free(m);
  return rc;
bad:
  usage(stderr);
  return 2;
}

int cmd_eval(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "needle")) {
    if (cli_has_flag(argc, argv, "--help")) { usage(stdout); return 0; }
    return needle(argc, argv);
  }
  fprintf(stderr, "kvasir eval: unknown evaluation '%s' (try: needle)\n", argv[1]);
  return 2;
}
