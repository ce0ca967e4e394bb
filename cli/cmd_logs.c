/*
 * cmd_logs.c — `kvasir logs ingest|parse|query|triage`: the offline front
 * end of the logs module. Stores live at $XDG_DATA_HOME/kvasir/logs/<name>.db
 * (--db NAME, default "default"; a value with '/' is taken as a path).
 * `triage --repo PATH` joins the two offline modules: each template is
 * linked to the source lines that print it (idx_log_sites over the
 * repository's index; logs/ itself knows nothing of the indexer).
 * Exit codes: 0 ok, 1 failure, 2 usage.
 */
#include "cli/cli.h"
#include "indexer/indexer.h"
#include "logs/logs.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *opt(int argc, char **argv, const char *name) {
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], name)) return argv[i + 1];
  return NULL;
}

/* Flags that take a value, so positional arguments can be told apart. */
static int takes_value(const char *a) {
  static const char *const V[] = {"--db", "--since", "--until", "--level", "--template", "--component", "--param",
                                  "--text", "--limit", "--bins", "--batch", "--repo", NULL};
  for (int i = 0; V[i]; i++)
    if (!strcmp(a, V[i])) return 1;
  return 0;
}

static int open_db(int argc, char **argv, log_db **db) {
  const char *name = opt(argc, argv, "--db");
  if (!name) name = "default";
  char path[4096];
  kv_err err = {0};
  if (strchr(name, '/')) snprintf(path, sizeof path, "%s", name);
  else if (log_db_path(path, sizeof path, name, &err)) {
    fprintf(stderr, "kvasir logs: %s\n", err.msg);
    return 1;
  }
  if (log_db_open(db, path, &err)) {
    fprintf(stderr, "kvasir logs: %s\n", err.msg);
    return 1;
  }
  return 0;
}

static void print_json(cJSON *j) {
  char *s = j ? cJSON_PrintUnformatted(j) : NULL;
  printf("%s\n", s ? s : "null");
  free(s);
  cJSON_Delete(j);
}

/* Signal handlers can only reach a static; this flag is the one exception
 * to "no globals" in the CLI, set by SIGINT/SIGTERM to cancel an ingest. */
static volatile int g_cancel;
static void on_signal(int sig) {
  (void)sig;
  g_cancel = 1;
}

static void on_progress(void *ud, uint64_t done, uint64_t total, uint64_t records) {
  kv_progress *p = ud;
  char extra[64];
  snprintf(extra, sizeof extra, "%llu records", (unsigned long long)records);
  p->total = total;
  kv_progress_update(p, done, extra);
}

static int cmd_ingest(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) {
    printf("usage: kvasir logs ingest PATH... [--db NAME] [--batch N] [--json]\n"
           "  PATH: files, directories (recursive), globs, .gz/.zst, or - for stdin.\n"
           "  Resumes each file where the last ingest stopped; appends are read incrementally.\n");
    return 0;
  }
  const char *paths[256];
  int np = 0;
  for (int i = 1; i < argc && np < 256; i++) {
    if (takes_value(argv[i])) {
      i++;
      continue;
    }
    if (!strcmp(argv[i], "-") || strncmp(argv[i], "--", 2)) paths[np++] = argv[i];
  }
  if (!np) {
    fprintf(stderr, "kvasir logs ingest: no PATH given (see --help)\n");
    return 2;
  }
  log_db *db;
  if (open_db(argc, argv, &db)) return 1;
  kv_progress prog;
  kv_progress_init(&prog, stderr, "ingest", 0);
  log_ingest_opts o = {0};
  o.progress = on_progress;
  o.progress_ud = &prog;
  o.cancel = &g_cancel;
  const char *b = opt(argc, argv, "--batch");
  if (b) o.batch = (size_t)strtoul(b, NULL, 10);
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  log_ingest_stats st;
  kv_err err = {0};
  int rc = log_ingest(db, paths, np, &o, &st, &err);
  kv_progress_finish(&prog, NULL);
  log_db_close(db);
  if (cli_has_flag(argc, argv, "--json")) print_json(log_ingest_stats_json(&st));
  else
    printf("%llu files, %llu lines, %llu records, %llu new templates in %.2fs (%.1f MB/s); "
           "binary %llu, invalid utf-8 %llu, long %llu, no timestamp %llu, clock jumps %llu, truncated %llu\n",
           (unsigned long long)st.files, (unsigned long long)st.lines, (unsigned long long)st.records,
           (unsigned long long)st.new_templates, st.seconds, st.seconds > 0 ? st.bytes / 1e6 / st.seconds : 0.0,
           (unsigned long long)st.binary_lines, (unsigned long long)st.invalid_utf8,
           (unsigned long long)st.long_lines, (unsigned long long)st.no_timestamp,
           (unsigned long long)st.clock_jumps, (unsigned long long)st.truncated);
  if (rc) {
    fprintf(stderr, "kvasir logs ingest: %s\n", err.msg);
    return 1;
  }
  return 0;
}

static int csv_field(const char *s) {
  int q = strpbrk(s, ",\"\n\r") != NULL;
  if (!q) return fputs(s, stdout);
  putchar('"');
  for (; *s; s++) {
    if (*s == '"') putchar('"');
    putchar(*s);
  }
  return putchar('"');
}

static int cmd_parse(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help") || argc < 2) {
    printf("usage: kvasir logs parse FILE [--csv|--json]\n"
           "  Prints LineId,EventId,EventTemplate per line (LogHub's _structured.csv columns); stores nothing.\n");
    return argc < 2 ? 2 : 0;
  }
  const char *file = NULL;
  for (int i = 1; i < argc; i++)
    if (strncmp(argv[i], "--", 2)) file = argv[i];
  if (!file) {
    fprintf(stderr, "kvasir logs parse: no FILE given\n");
    return 2;
  }
  char *buf;
  size_t len;
  kv_err err = {0};
  if (kv_read_file(file, (size_t)4 << 30, &buf, &len, &err)) {
    fprintf(stderr, "kvasir logs parse: %s\n", err.msg);
    return 1;
  }
  log_miner *m;
  uint32_t *ids;
  size_t n;
  int rc = log_parse_buffer(buf, len, &m, &ids, &n, &err);
  free(buf);
  if (rc) {
    fprintf(stderr, "kvasir logs parse: %s: %s\n", file, err.msg);
    return 1;
  }
  if (cli_has_flag(argc, argv, "--json")) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddNumberToObject(o, "line", (double)(i + 1));
      cJSON_AddNumberToObject(o, "template_id", ids[i]);
      cJSON_AddStringToObject(o, "template", log_miner_template(m, ids[i]));
      cJSON_AddItemToArray(a, o);
    }
    print_json(a);
  } else {
    printf("LineId,EventId,EventTemplate\n");
    for (size_t i = 0; i < n; i++) {
      printf("%zu,E%u,", i + 1, ids[i]);
      csv_field(log_miner_template(m, ids[i]));
      putchar('\n');
    }
  }
  free(ids);
  log_miner_free(m);
  return 0;
}

/* A time argument: any format log_ts_parse knows, or epoch ms/s. */
static int64_t parse_time(const char *s) {
  int64_t ms;
  time_t now = time(NULL);
  struct tm tmv;
  gmtime_r(&now, &tmv);
  if (s && log_ts_parse(s, strlen(s), tmv.tm_year + 1900, &ms)) return ms;
  return s ? strtoll(s, NULL, 10) : 0;
}

static void fmt_time(int64_t ms, char *buf, size_t n) {
  if (ms == INT64_MIN) {
    snprintf(buf, n, "-");
    return;
  }
  time_t t = (time_t)(ms / 1000);
  struct tm tmv;
  gmtime_r(&t, &tmv);
  strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tmv);
}

static int cmd_query(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) {
    printf("usage: kvasir logs query [--db NAME] [--since T] [--until T] [--level L] [--template ID]\n"
           "                         [--component C] [--param VALUE] [--text S] [--limit N] [--json]\n");
    return 0;
  }
  log_query q = {0};
  q.since_ms = opt(argc, argv, "--since") ? parse_time(opt(argc, argv, "--since")) : 0;
  q.until_ms = opt(argc, argv, "--until") ? parse_time(opt(argc, argv, "--until")) : 0;
  const char *l = opt(argc, argv, "--level");
  if (l && !(q.min_level = log_level_word(l, strlen(l)))) {
    fprintf(stderr, "kvasir logs query: unknown level '%s'\n", l);
    return 2;
  }
  const char *t = opt(argc, argv, "--template");
  q.template_id = t ? strtoll(t, NULL, 10) : 0;
  q.component = opt(argc, argv, "--component");
  q.param = opt(argc, argv, "--param");
  q.text = opt(argc, argv, "--text");
  const char *lim = opt(argc, argv, "--limit");
  q.limit = lim ? atoi(lim) : 100;
  log_db *db;
  if (open_db(argc, argv, &db)) return 1;
  log_result r;
  kv_err err = {0};
  int rc = log_query_run(db, &q, &r, &err);
  log_db_close(db);
  if (rc) {
    fprintf(stderr, "kvasir logs query: %s\n", err.msg);
    return 1;
  }
  if (cli_has_flag(argc, argv, "--json")) print_json(log_result_json(&r));
  else
    for (size_t i = 0; i < r.n; i++) {
      char tb[32];
      fmt_time(r.rows[i].ts_ms, tb, sizeof tb);
      printf("%s %-5s T%-4lld %s:%lld  %s\n", tb, log_level_name(r.rows[i].level), (long long)r.rows[i].template_id,
             r.rows[i].file, (long long)r.rows[i].line_no, r.rows[i].text);
    }
  log_result_free(&r);
  return 0;
}

/* The code sites of every triage item (sites[i] for items[i]), from the
 * index of the repository at repo (built by `kvasir index` or the daemon). */
static int triage_sites(const char *repo, const log_triage *t, idx_sites *sites) {
  idx_index *ix;
  kv_err err = {0};
  if (idx_open(&ix, repo, NULL, &err)) {
    fprintf(stderr, "kvasir logs triage: %s\n", err.msg);
    return 1;
  }
  idx_file_list fl = {0};
  if (idx_files(ix, IDX_FILES_INDEXED, &fl, &err) == 0 && fl.n == 0)
    fprintf(stderr, "kvasir logs triage: %s is not indexed yet (kvasir index %s, or kvasir repo add): no code links\n",
            repo, repo);
  idx_file_list_free(&fl);
  int rc = 0;
  for (size_t i = 0; i < t->n && !rc; i++)
    if (idx_log_sites(ix, t->items[i].template_text ? t->items[i].template_text : "", "<*>",
                      log_level_name(t->items[i].level), 3, &sites[i], &err)) {
      fprintf(stderr, "kvasir logs triage: %s\n", err.msg);
      rc = 1;
    }
  idx_close(ix);
  return rc;
}

static void sites_free(idx_sites *sites, size_t n) {
  for (size_t i = 0; sites && i < n; i++) idx_sites_free(&sites[i]);
  free(sites);
}

static int cmd_triage(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) {
    printf("usage: kvasir logs triage [--db NAME] [--since T] [--until T] [--bins N] [--limit N] [--repo PATH] [--json]\n"
           "  Ranks new and rare templates, bursts, rate changes and error clusters; each item points to\n"
           "  its first line. The sparkline is the template's rate over the time range. With --repo, each\n"
           "  template is linked to the source lines (path:line) that print it, from the repository's index.\n");
    return 0;
  }
  log_triage_opts o = {0};
  o.since_ms = opt(argc, argv, "--since") ? parse_time(opt(argc, argv, "--since")) : 0;
  o.until_ms = opt(argc, argv, "--until") ? parse_time(opt(argc, argv, "--until")) : 0;
  o.nbins = opt(argc, argv, "--bins") ? atoi(opt(argc, argv, "--bins")) : 24;
  o.limit = opt(argc, argv, "--limit") ? atoi(opt(argc, argv, "--limit")) : 20;
  const char *repo = opt(argc, argv, "--repo");
  log_db *db;
  if (open_db(argc, argv, &db)) return 1;
  log_triage t;
  kv_err err = {0};
  int rc = log_triage_run(db, &o, &t, &err);
  log_db_close(db);
  if (rc) {
    fprintf(stderr, "kvasir logs triage: %s\n", err.msg);
    return 1;
  }
  idx_sites *sites = NULL;
  if (repo) {
    sites = calloc(t.n ? t.n : 1, sizeof *sites);
    if (!sites || triage_sites(repo, &t, sites)) {
      sites_free(sites, t.n);
      log_triage_free(&t);
      return 1;
    }
  }
  if (cli_has_flag(argc, argv, "--json")) {
    cJSON *j = log_triage_json(&t);
    cJSON *items = j ? cJSON_GetObjectItemCaseSensitive(j, "items") : NULL;
    for (size_t i = 0; sites && i < t.n; i++) {
      cJSON *code = cJSON_AddArrayToObject(cJSON_GetArrayItem(items, (int)i), "code");
      for (size_t k = 0; code && k < sites[i].n; k++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "path", sites[i].v[k].path);
        cJSON_AddNumberToObject(c, "line", sites[i].v[k].line);
        cJSON_AddNumberToObject(c, "score", sites[i].v[k].score);
        cJSON_AddItemToArray(code, c);
      }
    }
    print_json(j);
  } else {
    char a[32], b[32];
    fmt_time(t.t0, a, sizeof a);
    fmt_time(t.t1, b, sizeof b);
    printf("triage %s .. %s\n", a, b);
    for (size_t i = 0; i < t.n; i++) {
      const log_triage_item *it = &t.items[i];
      char sp[4 * 512 + 1];
      log_sparkline(it->bins, it->nbins, sp, sizeof sp);
      printf("%2zu. %-5s %6.1f %-5s x%-6llu |%s| T%lld %s\n      %s:%lld  (%s)\n", i + 1, log_triage_kind(it->kind),
             it->score, log_level_name(it->level), (unsigned long long)it->count, sp, (long long)it->template_id,
             it->template_text, it->first_file ? it->first_file : "", (long long)it->first_line, it->why ? it->why : "");
      for (size_t k = 0; sites && k < sites[i].n; k++)
        printf("      code %s:%d  (%.2f)\n", sites[i].v[k].path, sites[i].v[k].line, sites[i].v[k].score);
    }
  }
  sites_free(sites, t.n);
  log_triage_free(&t);
  return 0;
}

int cmd_logs(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    printf("usage: kvasir logs <ingest|parse|query|triage> ... (--help on each)\n"
           "  ingest PATH... [--db NAME]   store records, templates and parameters (resumable)\n"
           "  parse FILE --csv             LineId,EventId,EventTemplate, nothing stored\n"
           "  query [filters] [--json]     by time, level, template, component, parameter, text\n"
           "  triage [--repo PATH] [--json] new/rare templates, bursts, rate changes, error clusters;\n"
           "                               --repo links each template to the code that prints it\n");
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "ingest")) return cmd_ingest(argc - 1, argv + 1);
  if (!strcmp(argv[1], "parse")) return cmd_parse(argc - 1, argv + 1);
  if (!strcmp(argv[1], "query")) return cmd_query(argc - 1, argv + 1);
  if (!strcmp(argv[1], "triage")) return cmd_triage(argc - 1, argv + 1);
  fprintf(stderr, "kvasir logs: unknown subcommand '%s'\n", argv[1]);
  return 2;
}
