/*
 * cmd_index.c — the offline indexer commands: `kvasir index`, `search`,
 * `symbols`, `repomap`. Each opens the index of one repository
 * ($XDG_DATA_HOME/kvasir/repos/<id>/index.db, or --db), does one thing and
 * prints text, or JSON with --json. Exit codes: 0 ok, 1 failure, 2 usage.
 */
#include "cli/cli.h"
#include "engine/engine.h"
#include "indexer/indexer.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct args {
  const char *repo, *db, *encoder;
  int json, full, grep, dense;
  long k, tokens, max_kb, threads;
  const char *pos[64];
  int npos;
} args;

/* Parse the options shared by the four commands; returns 0, or 2 on a usage error. */
static int parse_args(int argc, char **argv, args *a, const char *cmd) {
  memset(a, 0, sizeof *a);
  a->repo = ".";
  a->k = 10;
  a->tokens = 1024;
  for (int i = 1; i < argc; i++) {
    const char *s = argv[i];
    int more = i + 1 < argc;
    if (!strcmp(s, "--json")) a->json = 1;
    else if (!strcmp(s, "--full")) a->full = 1;
    else if (!strcmp(s, "--grep")) a->grep = 1;
    else if (!strcmp(s, "--dense")) a->dense = 1;
    else if (!strcmp(s, "--encoder") && more) a->encoder = argv[++i], a->dense = 1;
    else if (!strcmp(s, "--repo") && more) a->repo = argv[++i];
    else if (!strcmp(s, "--db") && more) a->db = argv[++i];
    else if (!strcmp(s, "-k") && more) a->k = strtol(argv[++i], NULL, 10);
    else if (!strcmp(s, "--tokens") && more) a->tokens = strtol(argv[++i], NULL, 10);
    else if (!strcmp(s, "--max-kb") && more) a->max_kb = strtol(argv[++i], NULL, 10);
    else if (!strcmp(s, "--threads") && more) a->threads = strtol(argv[++i], NULL, 10);
    else if (s[0] == '-' && s[1]) {
      fprintf(stderr, "kvasir %s: unknown or incomplete option '%s' (try --help)\n", cmd, s);
      return 2;
    } else if (a->npos < 64) a->pos[a->npos++] = s;
  }
  if (a->k <= 0 || a->tokens <= 0 || a->max_kb < 0 || a->threads < 0) {
    fprintf(stderr, "kvasir %s: numbers must be positive\n", cmd);
    return 2;
  }
  return 0;
}

static int open_index(const args *a, const char *repo, idx_index **ix) {
  idx_options o = {0};
  o.db_path = a->db;
  o.max_file_bytes = (size_t)a->max_kb * 1024;
  o.threads = (int)a->threads;
  kv_err err = {0};
  if (idx_open(ix, repo, &o, &err) != 0) {
    fprintf(stderr, "kvasir: %s\n", err.msg);
    return 1;
  }
  return 0;
}

/* JSON strings must be UTF-8: paths and chunk text need not be (they are
 * stored as git has them), so invalid bytes become U+FFFD here. */
static cJSON *add_str(cJSON *o, const char *key, const char *v) {
  const unsigned char *p = (const unsigned char *)(v ? v : "");
  size_t n = strlen((const char *)p);
  char *buf = malloc(n * 3 + 1), *q = buf;
  if (!buf) return cJSON_AddStringToObject(o, key, "");
  while (*p) {
    size_t k = 0;
    if (*p < 0x80) k = 1;
    else if ((*p & 0xE0) == 0xC0 && (p[1] & 0xC0) == 0x80 && *p >= 0xC2) k = 2;
    else if ((*p & 0xF0) == 0xE0 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80) k = 3;
    else if ((*p & 0xF8) == 0xF0 && *p <= 0xF4 && (p[1] & 0xC0) == 0x80 && (p[2] & 0xC0) == 0x80 &&
             (p[3] & 0xC0) == 0x80) k = 4;
    if (k) {
      memcpy(q, p, k);
      q += k;
      p += k;
    } else {
      memcpy(q, "\xEF\xBF\xBD", 3);
      q += 3;
      p++;
    }
  }
  *q = 0;
  cJSON *r = cJSON_AddStringToObject(o, key, buf);
  free(buf);
  return r;
}

static void print_json(cJSON *j) {
  char *s = cJSON_PrintUnformatted(j);
  if (s) puts(s);
  free(s);
  cJSON_Delete(j);
}

/* ---- index --------------------------------------------------------------- */

/* The one global of the CLI: SIGINT cancels the sync through it (a signal
 * handler has no other way in); idx_sync stops at its next commit point. */
static volatile int g_cancel_flag;

static void on_sigint(int sig) {
  (void)sig;
  g_cancel_flag = 1;
}

static void on_progress(const idx_progress *p, void *ud) {
  kv_progress *bar = ud;
  char extra[96];
  bar->total = p->files_total;
  snprintf(extra, sizeof extra, "%.1f/%.1f MB", (double)p->bytes_done / 1e6, (double)p->bytes_total / 1e6);
  kv_progress_update(bar, p->files_done, extra);
}

int cmd_index(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) {
    printf("usage: kvasir index [--full] [--json] [--max-kb N] [--threads N] [--db FILE] [PATH]\n"
           "Index the git repository at PATH (default .): HEAD's tree and the working-tree\n"
           "changes, symbols and chunks, into $XDG_DATA_HOME/kvasir/repos/<id>/index.db.\n"
           "Incremental: blobs already indexed (on any branch) are not parsed again.\n"
           "  --full      re-walk every path (blobs are still reused)\n"
           "  --max-kb N  skip files above N KiB (default 1024), reported as too-large\n"
           "  --json      print the summary as JSON\n");
    return 0;
  }
  args a;
  if (parse_args(argc, argv, &a, "index")) return 2;
  const char *repo = a.npos ? a.pos[0] : ".";
  idx_index *ix;
  if (open_index(&a, repo, &ix)) return 1;
  kv_progress bar;
  kv_progress_init(&bar, stderr, "index", 0);
  if (a.json) bar.quiet = 1;
  idx_sync_stats st;
  kv_err err = {0};
  signal(SIGINT, on_sigint);
  int rc = idx_sync(ix, a.full ? IDX_SYNC_FULL : 0, on_progress, &bar, &g_cancel_flag, &st, &err);
  signal(SIGINT, SIG_DFL);
  char extra[128];
  snprintf(extra, sizeof extra, "%.1f MB indexed, %.0f files/s", (double)st.bytes_indexed / 1e6,
           st.seconds > 0 ? (double)st.paths_changed / st.seconds : 0.0);
  kv_progress_finish(&bar, extra);
  if (rc) {
    fprintf(stderr, "kvasir index: %s\n", err.msg);
    idx_close(ix);
    return 1;
  }
  idx_file_list sk = {0};
  idx_files(ix, IDX_FILES_SKIPPED, &sk, &err);
  if (a.json) {
    cJSON *j = idx_sync_stats_json(&st);
    if (!j) j = cJSON_CreateObject();
    add_str(j, "repo", idx_repo_root(ix));
    add_str(j, "db", idx_db_path(ix));
    cJSON *arr = cJSON_AddArrayToObject(j, "skipped_files");
    for (size_t i = 0; i < sk.n; i++) {
      cJSON *f = cJSON_CreateObject();
      add_str(f, "path", sk.v[i].path);
      cJSON_AddStringToObject(f, "reason", idx_skip_name(sk.v[i].skip));
      cJSON_AddNumberToObject(f, "size", (double)sk.v[i].size);
      cJSON_AddItemToArray(arr, f);
    }
    print_json(j);
  } else {
    printf("indexed %llu of %llu files (%.1f MB) in %.2fs: %llu blobs parsed, %llu reused; "
           "+%llu symbols, +%llu refs, +%llu chunks\n",
           (unsigned long long)st.files_indexed, (unsigned long long)st.files,
           (double)st.bytes_indexed / 1e6, st.seconds, (unsigned long long)st.blobs_parsed,
           (unsigned long long)st.blobs_reused, (unsigned long long)st.symbols,
           (unsigned long long)st.refs, (unsigned long long)st.chunks);
    for (int r = 1; r < IDX_SKIP__COUNT; r++)
      if (st.skipped[r]) printf("  skipped %-10s %llu\n", idx_skip_name(r), (unsigned long long)st.skipped[r]);
    for (int r = 1; r < IDX_NOTE__COUNT; r++)
      if (st.noted[r]) printf("  note    %-12s %llu (indexed)\n", idx_note_name(r), (unsigned long long)st.noted[r]);
    size_t shown = 0;
    for (size_t i = 0; i < sk.n && shown < 20; i++, shown++)
      printf("    %s: %s (%llu bytes)\n", sk.v[i].path, idx_skip_name(sk.v[i].skip), (unsigned long long)sk.v[i].size);
    if (sk.n > shown) printf("    ... and %zu more (--json lists all)\n", sk.n - shown);
  }
  idx_file_list_free(&sk);
  idx_close(ix);
  return 0;
}

/* ---- search ------------------------------------------------------------- */

/* The retrieval encoder for --dense: the engine's bert row, one thread,
 * vectors named "<model>@64" (a vector per definition, its text cut to 64
 * tokens: the settings docs/dense.md measured, shared with bench_answers). */
typedef struct encoder {
  eng_model *m;
  eng_backend *be;
  char name[160];
} encoder;

static int encoder_embed(void *ud, const char *text, size_t len, float *out, kv_err *err) {
  encoder *e = ud;
  return eng_embed(e->m, e->be, text, len, 64, out, NULL, err);
}

static int encoder_open(encoder *e, const char *path, idx_dense *d, kv_err *err) {
  char def[4200], dir[4096];
  if (!path) {
    if (kv_xdg_dir(dir, sizeof dir, "cache")) return kv_err_set(err, KV_ENOTFOUND, "no cache directory for the encoder");
    snprintf(def, sizeof def, "%s/models/all-MiniLM-L6-v2.f16.gguf", dir);
    path = def;
    if (access(path, R_OK))
      return kv_err_set(err, KV_ENOTFOUND, "--dense: no encoder at %s (scripts/fetch-model minilm, or --encoder GGUF)", path);
  }
  int rc = eng_model_open(&e->m, path, err);
  if (!rc && eng_embed_dim(e->m) <= 0) rc = kv_err_set(err, KV_EINVAL, "--encoder: %s is not an encoder model", path);
  if (!rc) rc = eng_backend_cpu(&e->be, 1, err);
  if (rc) return rc;
  snprintf(e->name, sizeof e->name, "%s@64", eng_model_get_info(e->m)->name);
  memset(d, 0, sizeof *d);
  d->embed = encoder_embed;
  d->ud = e;
  d->dim = eng_embed_dim(e->m);
  d->model = e->name;
  return 0;
}

static void encoder_close(encoder *e) {
  eng_backend_free(e->be);
  eng_model_free(e->m);
}

int cmd_search(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) {
    printf("usage: kvasir search [--repo PATH] [-k N] [--grep] [--dense [--encoder GGUF]] [--json] QUERY...\n"
           "Search the index of the repository at PATH (default .). Prints path:line\n"
           "(and the chunk's line range and first symbol) per hit, best first.\n"
           "  --grep     literal substring search (trigram index) instead of ranked search\n"
           "  --dense    fuse the ranking with the definitions nearest the query's embedding\n"
           "             (docs/dense.md); definitions without a vector are embedded first\n"
           "             (once; about 50 ms CPU each)\n"
           "  --encoder  the encoder GGUF (default: the models dir's all-MiniLM-L6-v2.f16.gguf,\n"
           "             made by scripts/fetch-model minilm)\n");
    return 0;
  }
  args a;
  if (parse_args(argc, argv, &a, "search")) return 2;
  if (a.npos == 0) {
    fprintf(stderr, "kvasir search: no query (try --help)\n");
    return 2;
  }
  char q[4096] = "";
  for (int i = 0; i < a.npos; i++) {
    if (i) strncat(q, " ", sizeof q - strlen(q) - 1);
    strncat(q, a.pos[i], sizeof q - strlen(q) - 1);
  }
  idx_index *ix;
  if (open_index(&a, a.repo, &ix)) return 1;
  idx_hits h;
  kv_err err = {0};
  encoder enc = {0};
  idx_dense d;
  int rc = a.dense && !a.grep ? encoder_open(&enc, a.encoder, &d, &err) : 0;
  if (!rc && a.dense && !a.grep) {
    idx_dense_stats ds;
    rc = idx_dense_sync(ix, &d, NULL, &ds, &err);
    if (!rc && ds.embedded && !a.json)
      fprintf(stderr, "kvasir search: embedded %llu definitions in %.1f s\n", (unsigned long long)ds.embedded, ds.seconds);
    if (!rc) rc = idx_search_fused(ix, &d, q, (size_t)a.k, &h, &err);
  } else if (!rc) {
    rc = a.grep ? idx_grep(ix, q, (size_t)a.k, &h, &err) : idx_search(ix, q, (size_t)a.k, &h, &err);
  }
  encoder_close(&enc);
  if (rc) {
    fprintf(stderr, "kvasir search: %s\n", err.msg);
    idx_close(ix);
    return 1;
  }
  if (a.json) {
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < h.n; i++) {
      cJSON *o = cJSON_CreateObject();
      add_str(o, "path", h.v[i].path);
      cJSON_AddNumberToObject(o, "line", h.v[i].line0);
      cJSON_AddNumberToObject(o, "end_line", h.v[i].line1);
      add_str(o, "symbol", h.v[i].symbol);
      cJSON_AddNumberToObject(o, "score", h.v[i].score);
      add_str(o, "text", h.v[i].text);
      cJSON_AddItemToArray(arr, o);
    }
    print_json(arr);
  } else {
    for (size_t i = 0; i < h.n; i++)
      printf("%s:%d\t(-%d) %s\n", h.v[i].path, h.v[i].line0, h.v[i].line1, h.v[i].symbol);
  }
  idx_hits_free(&h);
  idx_close(ix);
  return 0;
}

/* ---- symbols ------------------------------------------------------------- */

int cmd_symbols(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) {
    printf("usage: kvasir symbols [--repo PATH] [--json] [NAME]\n"
           "List the definitions named NAME (all without NAME) in the index of the\n"
           "repository at PATH: path:line kind name (scope) signature.\n");
    return 0;
  }
  args a;
  if (parse_args(argc, argv, &a, "symbols")) return 2;
  idx_index *ix;
  if (open_index(&a, a.repo, &ix)) return 1;
  idx_symbol_list l;
  kv_err err = {0};
  if (idx_symbols(ix, a.npos ? a.pos[0] : NULL, 0, &l, &err)) {
    fprintf(stderr, "kvasir symbols: %s\n", err.msg);
    idx_close(ix);
    return 1;
  }
  if (a.json) {
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < l.n; i++) {
      cJSON *o = cJSON_CreateObject();
      add_str(o, "name", l.v[i].name);
      cJSON_AddStringToObject(o, "kind", l.v[i].kind);
      add_str(o, "scope", l.v[i].scope);
      add_str(o, "signature", l.v[i].signature);
      add_str(o, "path", l.v[i].path);
      cJSON_AddStringToObject(o, "lang", l.v[i].lang);
      cJSON_AddNumberToObject(o, "line", l.v[i].line0);
      cJSON_AddNumberToObject(o, "end_line", l.v[i].line1);
      cJSON_AddItemToArray(arr, o);
    }
    print_json(arr);
  } else {
    for (size_t i = 0; i < l.n; i++)
      printf("%s:%d\t%s %s%s%s%s\t%s\n", l.v[i].path, l.v[i].line0, l.v[i].kind, l.v[i].name,
             l.v[i].scope[0] ? " (in " : "", l.v[i].scope, l.v[i].scope[0] ? ")" : "", l.v[i].signature);
  }
  idx_symbol_list_free(&l);
  idx_close(ix);
  return 0;
}

/* ---- repomap ------------------------------------------------------------- */

int cmd_repomap(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) {
    printf("usage: kvasir repomap [--repo PATH] [--tokens N] [--json]\n"
           "Print the repository map (files and their most referenced definitions,\n"
           "ranked by PageRank over the reference graph) cut to N tokens (default\n"
           "1024; a token is estimated as 4 bytes).\n");
    return 0;
  }
  args a;
  if (parse_args(argc, argv, &a, "repomap")) return 2;
  idx_index *ix;
  if (open_index(&a, a.repo, &ix)) return 1;
  char *map = NULL;
  kv_err err = {0};
  if (idx_repomap(ix, (size_t)a.tokens, NULL, NULL, &map, &err)) {
    fprintf(stderr, "kvasir repomap: %s\n", err.msg);
    idx_close(ix);
    return 1;
  }
  if (a.json) {
    cJSON *o = cJSON_CreateObject();
    add_str(o, "map", map);
    cJSON_AddNumberToObject(o, "tokens_estimate", (double)(strlen(map) / 4));
    print_json(o);
  } else {
    fputs(map, stdout);
  }
  free(map);
  idx_close(ix);
  return 0;
}
