/*
 * logs — private log ingest, parsing, template mining, query and triage.
 * Prefix: log_. This is the module's single public header.
 *
 * Pipeline: bytes (file, .gz, .zst, stdin) -> lines -> records (a learned
 * per-file header: timestamp, level, component, pid/thread; continuation
 * lines join the record above) -> content tokens with typed variables
 * masked -> online template mining (Drain-like prefix tree plus a
 * frequency merge) -> SQLite store (records, templates, parameters, FTS5
 * on text). Nothing needs per-system configuration: the header layout is
 * learned from the first lines of each file.
 *
 * Every call returns 0 or a negative KV_E* code and fills kv_err with a
 * message naming the file, line or field. Long calls take a progress
 * callback and a cancellation flag (checked between batches).
 */
#ifndef KVASIR_LOGS_H
#define KVASIR_LOGS_H
#include "base/base.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

const char *log_version(void);

/* ---- timestamps --------------------------------------------------------- */

/* Find a timestamp starting at s[0] (ISO 8601, syslog, Apache/ctime, nginx
 * access, log4j, Windows CBS, Android logcat, yymmdd HHMMSS, yy/mm/dd,
 * dotted BGL, epoch s/ms as a whole token). On success returns the number of
 * bytes consumed and stores milliseconds since the epoch (UTC; a missing year
 * is taken from `year_hint`, a missing zone is UTC) in *ms; 0 if none. */
size_t log_ts_parse(const char *s, size_t n, int year_hint, int64_t *ms);

/* ---- header learning and records --------------------------------------- */

/* Levels, normalised. */
enum { LOG_LVL_NONE = 0, LOG_LVL_TRACE, LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_NOTICE,
       LOG_LVL_WARN, LOG_LVL_ERROR, LOG_LVL_FATAL };
const char *log_level_name(int lvl);
/* Normalised level of a word ("WARNING", "[error]", "E", "Info"), or NONE. */
int log_level_word(const char *s, size_t n);

/* ---- heuristics that can be switched off ------------------------------- */

/* Every rule of header learning, timestamp recognition and template mining
 * that was added while measuring on the LogHub samples, as a bit. All are on
 * by default (rules_off = 0); the leave-one-system-out benchmark
 * (bench_logparse --loo) switches off, for each system, the rules that system
 * motivated. docs/logs.md records which system each came from. */
/* A set of rules (bits), switched off when set; LOG_R_* below. */
typedef uint64_t log_rules;
#define LOG_R_H_ODD_FIRST      ((log_rules)1 << 0) /* header: ignore lines whose first column is unusual */
#define LOG_R_H_ABSORB_COMP    ((log_rules)1 << 1) /* header: a component with spaces ("Google Chrome Helper[1]:") */
#define LOG_R_H_DASH_MSG       ((log_rules)1 << 2) /* header: "- message" after the header is not content */
#define LOG_R_H_BRACKET_TS     ((log_rules)1 << 3) /* header: "[timestamp]" */
#define LOG_R_H_TRAIL          ((log_rules)1 << 4) /* header: header-like columns after the last anchor */
#define LOG_R_H_IDSHARE        ((log_rules)1 << 5) /* header: columns between anchors need only be "not a time" */
#define LOG_R_TS_YY_SLASH      ((log_rules)1 << 6) /* time: yy/mm/dd HH:MM:SS */
#define LOG_R_TS_YYMMDD        ((log_rules)1 << 7) /* time: yymmdd HHMMSS */
#define LOG_R_TS_MMDD          ((log_rules)1 << 8) /* time: MM-DD HH:MM:SS.mmm (logcat) */
#define LOG_R_TS_DOTTED        ((log_rules)1 << 9) /* time: YYYY-MM-DD-HH.MM.SS.ffffff */
#define LOG_R_M_TS_IN_MSG      ((log_rules)1 << 10) /* mine: a timestamp inside a message is one token */
#define LOG_R_M_KEYVAL         ((log_rules)1 << 11) /* mine: split after '=' and after "key:" */
#define LOG_R_M_COLONS         ((log_rules)1 << 12) /* mine: tokens with >= 3 colons keep them (IPv6, MAC) */
#define LOG_R_M_PATH_WHOLE     ((log_rules)1 << 13) /* mine: a path or URL is one token */
#define LOG_R_M_VAR_FILL       ((log_rules)1 << 14) /* mine: join a template whose variables cover the difference */
#define LOG_R_M_COMPAT         ((log_rules)1 << 15) /* merge: unite templates compatible where both are constant */
#define LOG_R_M_NEAR_DUPS      ((log_rules)1 << 16) /* merge: > 3 templates differing at one dotted name */
#define LOG_R_M_SKELETON       ((log_rules)1 << 17) /* merge: variable runs that differ only in length */
#define LOG_R_M_LIST_SEP       ((log_rules)1 << 18) /* merge: separators between variables belong to them */
#define LOG_R_M_FREQ_SPLIT     ((log_rules)1 << 19) /* merge: a position with <= 3 distinct words is constant */
#define LOG_R_M_SPLIT_TYPED    ((log_rules)1 << 20) /* merge: ... unless typed variables are the majority */
/* added for the header-robustness set (bench/logparse/header_layouts.py), not from a LogHub system */
#define LOG_R_H_DASH_ANCHOR    ((log_rules)1 << 21) /* header: a " - " column in >= 80% of lines ends a header part */
#define LOG_R_H_DELIM          ((log_rules)1 << 22) /* header: '|' or tab separated fields */
#define LOG_R_H_LOGFMT         ((log_rules)1 << 23) /* header: logfmt lines (key=value ... msg="...") */
#define LOG_R_H_SIGNED         ((log_rules)1 << 24) /* header: a signed integer ("-1") is a number column (found on HPC) */
#define LOG_R_H_MIXED          ((log_rules)1 << 25) /* header: several layouts in one file, one learnt per line shape */
#define LOG_R_H_TIME_SHAPE     ((log_rules)1 << 26) /* header: a column of one digit shape with a clock (HH:MM) is a time */
#define LOG_R_M_ESC_QUOTE      ((log_rules)1 << 27) /* mine: an escaped quote (\") reads as the quote */
#define LOG_R_M_CLOSED_VOCAB   ((log_rules)1 << 28) /* merge: <= 6 distinct words, each frequent, are constants (OpenStack) */
#define LOG_R_M_TIME_PIECE     ((log_rules)1 << 29) /* mine: a weekday/month name next to a number or another time piece is a time (Linux) */
#define LOG_R_H_BEST_FIT       ((log_rules)1 << 30) /* header: of several layouts, a line takes the one it fits best (mixed-layout set) */
#define LOG_R_H_TRAILER        ((log_rules)1 << 31) /* header: a "(logger)" trailer ending >= 90% of lines is not content */
#define LOG_R_H_MSG_SHAPE      ((log_rules)1 << 32) /* header: no header through a quoted string; a group layout's trailing columns in >= 95% of its lines (Go + klog mix) */
#define LOG_R_H_FANOUT         ((log_rules)1 << 33) /* header: a word column after the level followed by many messages is a field (compact_date) */
#define LOG_R_M_UNIT_VAR       ((log_rules)1 << 34) /* merge: unit words after a variable (B|KB|MB) are not split (Spark) */
enum { LOG_R_COUNT = 35 }; /* bits in use; log_rules has room for 64 */
/* Name of rule bit i (0 <= i < LOG_R_COUNT), e.g. "h_odd_first"; NULL past the end. */
const char *log_rule_name(int i);
/* Comma-separated rule names (or "all") into a mask. KV_EINVAL naming the
 * unknown one. */
int log_rules_parse(const char *names, log_rules *mask, kv_err *err);

/* A learned header layout for one file (opaque). */
typedef struct log_fmt log_fmt;

/* Learn the header layout from sample lines (the first ~2000 of a file).
 * Lines need not be NUL-terminated. Never fails on odd input: with no
 * consistent header, the layout is "whole line is content". A file that
 * mixes layouts gets several, tried in order by log_line_parse. */
int log_fmt_learn(log_fmt **out, const char *const *lines, const size_t *lens, size_t n, kv_err *err);
/* The same with some rules switched off (LOG_R_H_*, LOG_R_TS_*): the layout
 * keeps the mask, so log_line_parse follows it too. */
int log_fmt_learn_rules(log_fmt **out, const char *const *lines, const size_t *lens, size_t n, log_rules rules_off,
                        kv_err *err);
void log_fmt_free(log_fmt *f);
/* Number of header columns learned (0 = none) and a printable description. */
int log_fmt_columns(const log_fmt *f);
void log_fmt_describe(const log_fmt *f, char *buf, size_t n);

/* One parsed line. Pointers point into the caller's line. */
typedef struct log_line {
  int has_header;          /* 1 if the line matched the learned header */
  int64_t ts_ms;           /* INT64_MIN if none */
  int level;               /* LOG_LVL_* */
  const char *comp;        /* component/process, may be NULL */
  size_t comp_len;
  int64_t pid;             /* -1 if none */
  const char *thread;      /* thread or bracketed context, may be NULL */
  size_t thread_len;
  const char *content;     /* message after the header */
  size_t content_len;
} log_line;

/* Split one line into header fields and content. `year_hint` fills yearless
 * timestamps. A line that does not match the header (a stack-trace frame, a
 * continuation) gets has_header = 0 and content = the whole line. JSON lines
 * ({"ts":..,"level":..,"msg":..}) use their own fields. */
void log_line_parse(const log_fmt *f, const char *line, size_t len, int year_hint, log_line *out);

/* 1 if a line that did not match the header is a continuation of the
 * previous record (indented, "at ...", "Caused by:", "Traceback", "...",
 * a Python frame): the multi-line rule. */
int log_is_continuation(const char *line, size_t len);

/* ---- template mining ---------------------------------------------------- */

/* Parameter types found by masking. */
enum { LOG_P_NONE = 0, LOG_P_NUM, LOG_P_HEX, LOG_P_IP, LOG_P_UUID, LOG_P_PATH,
       LOG_P_DURATION, LOG_P_ID, LOG_P_WORD, LOG_P_TIME };
const char *log_ptype_name(int t);

typedef struct log_miner log_miner;

typedef struct log_miner_opts {
  double sim;          /* Drain similarity threshold (0 = default 0.7) */
  int max_tokens;      /* longer contents are truncated for mining (0 = 256) */
  log_rules rules_off;  /* LOG_R_M_* (and LOG_R_TS_* for times inside messages) switched off */
} log_miner_opts;

int log_miner_new(log_miner **out, const log_miner_opts *opts, kv_err *err);
void log_miner_free(log_miner *m);

/* One variable of a mined message. */
typedef struct log_param {
  int pos;      /* token position in the template */
  int type;     /* LOG_P_* */
  const char *val;  /* points into the content */
  size_t len;
} log_param;

/* Mine one message (content only, no header). Returns in *pattern the id of
 * its exact masked token sequence (>= 1, stable for the life of the miner);
 * log_miner_resolve() maps a pattern to its current template, which can
 * change after log_miner_merge(). If params != NULL, up to max_params
 * variables (typed tokens and words at variable positions) are written and
 * their count stored in *nparams. */
int log_miner_add(log_miner *m, const char *content, size_t len, uint32_t *pattern, log_param *params,
                  int max_params, int *nparams, kv_err *err);
/* Re-cluster: unite templates that differ only where one has a variable or
 * whose variable runs differ only in length, then split a variable position
 * back into constants when it holds only a few values, each frequent (the
 * frequency rule: real variables are diverse). Call after a batch. */
void log_miner_merge(log_miner *m);
/* The template a pattern belongs to now (0 for an unknown pattern). */
uint32_t log_miner_resolve(const log_miner *m, uint32_t pattern);
uint32_t log_miner_patterns(const log_miner *m);  /* patterns handed out */
/* Template text with variables written <*> (valid until the next add). */
const char *log_miner_template(const log_miner *m, uint32_t id);
uint32_t log_miner_count(const log_miner *m);   /* template ids handed out so far */
uint64_t log_miner_size(const log_miner *m, uint32_t id); /* messages */

/* Serialise / restore a miner (format documented in mine.c). save returns
 * a malloc'd buffer; load validates every count and id. */
int log_miner_save(const log_miner *m, void **out, size_t *len, kv_err *err);
int log_miner_load(log_miner **out, const void *data, size_t len, kv_err *err);

/* Parse a whole file the LogHub way: learn the header from the first lines,
 * mine every line, merge, and write one template id per line into
 * ids[0..nlines) (caller frees *ids) and the miner into *mout (caller frees). */
int log_parse_buffer(const char *buf, size_t len, log_miner **mout, uint32_t **ids, size_t *nlines,
                     kv_err *err);
/* The same with rules switched off (LOG_R_*), and a Drain similarity (0 = default). */
int log_parse_buffer_rules(const char *buf, size_t len, log_rules rules_off, double sim, log_miner **mout,
                           uint32_t **ids, size_t *nlines, kv_err *err);

/* Accuracy against LogHub ground truth (<System>_2k.log and its
 * _structured.csv): grouping accuracy, parsing accuracy, parse time. */
typedef struct log_eval {
  size_t lines, groups, truth_groups;
  double ga, pa, seconds;
} log_eval;
int log_eval_loghub(const char *logpath, const char *csvpath, log_eval *ev, kv_err *err);
/* The same with rules switched off (LOG_R_*) and a Drain similarity (0 = default). */
int log_eval_loghub_rules(const char *logpath, const char *csvpath, log_rules rules_off, double sim, log_eval *ev,
                          kv_err *err);

/* ---- store, ingest, query, triage --------------------------------------- */

typedef struct log_db log_db;

/* Open (create) a store. `path` is a file path; log_db_path() gives the
 * default $XDG_DATA_HOME/kvasir/logs/<name>.db. */
int log_db_path(char *buf, size_t n, const char *name, kv_err *err);
int log_db_open(log_db **out, const char *path, kv_err *err);
void log_db_close(log_db *db);

typedef void (*log_progress_fn)(void *ud, uint64_t done_bytes, uint64_t total_bytes, uint64_t records);

typedef struct log_ingest_opts {
  log_progress_fn progress;   /* may be NULL */
  void *progress_ud;
  volatile int *cancel;       /* may be NULL; non-zero stops between batches */
  size_t batch;               /* records per transaction (0 = 20000) */
  size_t max_line;            /* longer lines are cut and counted (0 = 1 MiB) */
} log_ingest_opts;

typedef struct log_ingest_stats {
  uint64_t files, files_skipped, bytes, lines, records, new_templates;
  uint64_t binary_lines, invalid_utf8, long_lines, no_timestamp, clock_jumps, truncated;
  double seconds;
} log_ingest_stats;

/* Ingest paths: files, directories (recursively), globs, .gz/.zst, and "-"
 * for stdin. Resumes each file where the last ingest stopped (inode, offset,
 * checksum of the first 4 KiB); a file whose head changed is read again from
 * the start; appends are read incrementally. Commits are atomic per batch
 * together with the resume offset, so kill -9 loses and duplicates nothing. */
int log_ingest(log_db *db, const char *const *paths, int npaths, const log_ingest_opts *opts,
               log_ingest_stats *stats, kv_err *err);

/* Query. Zero/NULL fields are not filters. */
typedef struct log_query {
  int64_t since_ms, until_ms;   /* 0 = open */
  int min_level;                /* LOG_LVL_*, 0 = any */
  int64_t template_id;          /* 0 = any */
  const char *component;        /* exact */
  const char *param;            /* a parameter value, exact */
  const char *text;             /* FTS5 (trigram) substring match */
  int limit;                    /* 0 = 100 */
} log_query;

typedef struct log_row {
  int64_t id, ts_ms, template_id, line_no;
  int level;
  char *file, *component, *text, *template_text;
} log_row;

typedef struct log_result {
  log_row *rows;
  size_t n;
} log_result;

int log_query_run(log_db *db, const log_query *q, log_result *out, kv_err *err);
void log_result_free(log_result *r);

/* Triage without a model. */
enum { LOG_TRI_NEW = 1, LOG_TRI_RARE, LOG_TRI_BURST, LOG_TRI_RATE, LOG_TRI_ERROR };
const char *log_triage_kind(int k);

typedef struct log_triage_item {
  int kind;
  double score;            /* higher = more interesting */
  int64_t template_id;
  char *template_text;
  int level;               /* max level seen */
  uint64_t count;
  int64_t first_ts, last_ts, burst_ts;
  int64_t first_record;    /* record id of the first occurrence */
  char *first_file;
  int64_t first_line;
  int nbins;
  uint32_t *bins;          /* rate over time, nbins buckets */
  char *why;
} log_triage_item;

typedef struct log_triage_opts {
  int64_t since_ms, until_ms;   /* 0 = all */
  int nbins;                    /* 0 = 24 */
  int limit;                    /* 0 = 20 */
} log_triage_opts;

typedef struct log_triage {
  log_triage_item *items;
  size_t n;
  int64_t t0, t1;
} log_triage;

int log_triage_run(log_db *db, const log_triage_opts *o, log_triage *out, kv_err *err);
void log_triage_free(log_triage *t);
/* Render ▁▂▃▄▅▆▇█ for bins into buf (UTF-8). */
void log_sparkline(const uint32_t *bins, int n, char *buf, size_t bufn);

/* JSON renderings (cJSON*, caller frees with cJSON_Delete). */
struct cJSON;
struct cJSON *log_result_json(const log_result *r);
struct cJSON *log_triage_json(const log_triage *t);
struct cJSON *log_ingest_stats_json(const log_ingest_stats *s);

#ifdef __cplusplus
}
#endif
#endif
