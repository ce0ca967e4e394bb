/*
 * indexer — the repository index behind retrieval and the repo prefix.
 * Prefix: idx_
 *
 * One idx_index per git repository (worktree, linked worktree or bare).
 * idx_sync() walks HEAD's tree (diffing tree-to-tree when HEAD moved) and
 * the working-tree changes (git status), and keys every file by its blob
 * OID: a blob that the index has seen once — on any branch, at any path — is
 * never read or parsed again. Parsed blobs give symbols (definitions with
 * kind, scope, signature and line range; references) from each grammar's
 * tags query, and chunks cut along syntax boundaries, which go into SQLite
 * FTS5 tables. The schema is documented in docs/index.md.
 *
 * Threads: idx_sync() is the one writer (it may use worker threads to parse
 * internally). Every read call (search, symbols, repomap, files, read_lines)
 * may run concurrently with a sync from another thread: readers use their
 * own SQLite connection and WAL gives them the last committed state.
 * Results are owned by the caller and freed with the matching _free.
 */
#ifndef KVASIR_INDEXER_H
#define KVASIR_INDEXER_H

#include "base/base.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

const char *idx_version(void);

typedef struct idx_index idx_index;

typedef struct idx_options {
  const char *db_path;      /* NULL: $XDG_DATA_HOME/kvasir/repos/<id>/index.db */
  size_t max_file_bytes;    /* files above are skipped ("too-large"); 0 = 1 MiB */
  int threads;              /* parse threads; 0 = one per core (at most 8) */
  int history_commits;      /* commits walked for recency; 0 = 2000 */
  int batch_files;          /* files per write transaction (also at most 2 s);
                               0 = 2048. What a kill can lose. */
} idx_options;

/* Open (creating or migrating) the index of the git repository that contains
 * repo_path. The id of the index directory is derived from the repository's
 * absolute path (see idx_repo_id). Nothing is indexed until idx_sync. */
int idx_open(idx_index **out, const char *repo_path, const idx_options *opt, kv_err *err);
/* The indexer's libraries (libgit2) stay initialised from idx_global_init to
 * idx_global_shutdown (counted; idx_open/idx_close hold them too). A process
 * whose threads open indexes holds them for its whole life and shuts them
 * down after the last such thread has ended, so no thread's libgit2 state
 * outlives the library (the daemon does, around its workers). */
void idx_global_init(void);
void idx_global_shutdown(void);
void idx_close(idx_index *ix);

/* Path of the index database and the repository's working directory (or
 * git dir when bare); valid until idx_close. */
const char *idx_db_path(const idx_index *ix);
const char *idx_repo_root(const idx_index *ix);

/* The id used under $XDG_DATA_HOME/kvasir/repos/: 16 hex digits of a hash of
 * the absolute path. buf must hold 17 bytes. */
void idx_repo_id(const char *abs_path, char buf[17]);

/* ---- sync ---------------------------------------------------------------- */

enum { IDX_SYNC_FULL = 1 /* re-walk every path even if HEAD did not move */ };

typedef struct idx_progress {
  uint64_t files_done, files_total;
  uint64_t bytes_done, bytes_total;   /* bytes of blobs read so far / to read */
  const char *path;                   /* last file handled (may be NULL) */
} idx_progress;
/* Called from the syncing thread, at most every few milliseconds. */
typedef void (*idx_progress_fn)(const idx_progress *p, void *ud);

/* Why a file is not (fully) indexed. Stable strings, stored in the index. */
enum {
  IDX_SKIP_NONE = 0,
  IDX_SKIP_BINARY,       /* NUL bytes in the first 8000 bytes */
  IDX_SKIP_TOO_LARGE,    /* above max_file_bytes */
  IDX_SKIP_VENDORED,     /* vendor/, node_modules/, third_party/ ... */
  IDX_SKIP_MINIFIED,     /* very long lines (e.g. *.min.js) */
  IDX_SKIP_GENERATED,    /* "@generated", "Code generated ... DO NOT EDIT", lockfiles */
  IDX_SKIP_IGNORED,      /* .gitignore / .kvasirignore */
  IDX_SKIP_SYMLINK,      /* symlinks are recorded, never followed */
  IDX_SKIP_SUBMODULE,    /* listed, not followed */
  IDX_SKIP_UNREADABLE,   /* blob or worktree file could not be read */
  IDX_SKIP__COUNT
};
/* Notes on files that *are* indexed, but only as text or imperfectly. */
enum {
  IDX_NOTE_NONE = 0,
  IDX_NOTE_TEXT_ONLY,    /* no grammar for this language: chunks, no symbols */
  IDX_NOTE_INVALID_UTF8, /* indexed as text; invalid bytes shown as '?' */
  IDX_NOTE_PARSE_ERROR,  /* the grammar reported syntax errors / timed out */
  IDX_NOTE_PATH_NOT_UTF8,/* the path itself is not UTF-8 */
  IDX_NOTE__COUNT
};
const char *idx_skip_name(int reason);
const char *idx_note_name(int note);

typedef struct idx_sync_stats {
  uint64_t files;            /* files in the current view (HEAD + worktree) */
  uint64_t files_indexed;    /* of which indexed (with or without a note) */
  uint64_t bytes_indexed;
  uint64_t blobs_parsed;     /* blobs read and parsed by this sync */
  uint64_t blobs_reused;     /* files whose blob was already in the index */
  uint64_t paths_changed;    /* paths (re)examined by this sync */
  uint64_t symbols, refs, chunks;  /* rows added by this sync */
  uint64_t skipped[IDX_SKIP__COUNT];
  uint64_t noted[IDX_NOTE__COUNT];
  int head_moved;            /* HEAD's tree differs from the last sync */
  int full_walk;             /* the whole tree was walked (first sync or FULL) */
  double seconds;
  /* where the CPU went (thread CPU seconds): plan + classify (git walk,
   * status, blob headers), parse (all parse threads: read, tree-sitter,
   * tags, chunks, FTS side strings), write (the writer: SQLite inserts, FTS
   * tokenizing, commits), recency + meta */
  double cpu_plan, cpu_parse, cpu_write, cpu_finish;
} idx_sync_stats;

/* Bring the index up to date with HEAD and the working tree. cancel (may be
 * NULL) is polled between files; when it becomes non-zero the sync stops at
 * the next commit point and returns KV_ECANCELED — what was committed stays
 * valid and the next sync resumes. Killing the process has the same effect. */
int idx_sync(idx_index *ix, int flags, idx_progress_fn fn, void *ud,
             const volatile int *cancel, idx_sync_stats *st, kv_err *err);
/* What a sync did, as the JSON object every caller prints: files,
 * files_indexed, bytes_indexed, paths_changed, blobs_parsed, blobs_reused,
 * symbols, refs, chunks, full_walk, head_moved, seconds, skipped {reason: n},
 * notes {note: n}. NULL when out of memory. */
struct cJSON *idx_sync_stats_json(const idx_sync_stats *st);

/* Total blobs parsed by this handle since idx_open (for tests of reuse). */
uint64_t idx_parse_count(const idx_index *ix);

/* ---- files --------------------------------------------------------------- */

typedef struct idx_file {
  char *path;
  char oid[41];         /* blob OID (hex) of the current content */
  char lang[16];        /* "c", "python", ... or "" */
  uint64_t size;
  int skip;             /* IDX_SKIP_* */
  int note;             /* IDX_NOTE_* */
  int64_t changed;      /* unix time of the last commit touching it (0: unknown;
                           worktree changes count as now) */
  int worktree;         /* content comes from the working tree, not HEAD */
} idx_file;
typedef struct idx_file_list { size_t n; idx_file *v; } idx_file_list;

enum {
  IDX_FILES_ALL = 0,
  IDX_FILES_INDEXED = 1,
  IDX_FILES_SKIPPED = 2,
  IDX_FILES_BY_RECENCY = 4,   /* order: least recently changed first */
};
/* Files of the current view, by path (or by recency with the flag). */
int idx_files(idx_index *ix, int flags, idx_file_list *out, kv_err *err);
void idx_file_list_free(idx_file_list *l);

/* Lines [line0, line1] (1-based, inclusive; clamped) of path, from the working
 * tree when from_worktree and the file exists there (and resolves inside the
 * working tree: symlinks out of it are not followed), else from HEAD.
 * Absolute paths and ".." are refused (KV_EINVAL). */
int idx_read_lines(idx_index *ix, const char *path, int line0, int line1, int from_worktree,
                   char **out, size_t *len, kv_err *err);

/* ---- symbols ------------------------------------------------------------- */

typedef struct idx_symbol {
  char *name, *kind, *scope, *signature, *path;
  char lang[16];
  int line0, line1;     /* 1-based inclusive */
} idx_symbol;
typedef struct idx_symbol_list { size_t n; idx_symbol *v; } idx_symbol_list;

/* Definitions named `name` (exact; NULL or "" = all, up to limit; 0 = no
 * limit), ordered by path and line. */
int idx_symbols(idx_index *ix, const char *name, size_t limit, idx_symbol_list *out, kv_err *err);
void idx_symbol_list_free(idx_symbol_list *l);

/* ---- retrieval ----------------------------------------------------------- */

typedef struct idx_hit {
  char *path;
  int line0, line1;     /* 1-based inclusive line range of the chunk */
  char *symbol;         /* first definition in the chunk ("" if none) */
  char *text;           /* the chunk's text */
  double score;         /* higher is better */
} idx_hit;
typedef struct idx_hits { size_t n; idx_hit *v; } idx_hits;

/* Top-k chunks for a free-text or identifier query: BM25 over the chunk text
 * and its identifier sub-words, plus symbol-name, path and recency signals. */
int idx_search(idx_index *ix, const char *query, size_t k, idx_hits *out, kv_err *err);
/* Chunks whose text contains `needle` literally (trigram index; >= 3 bytes). */
int idx_grep(idx_index *ix, const char *needle, size_t k, idx_hits *out, kv_err *err);
void idx_hits_free(idx_hits *h);

/* ---- dense retrieval (optional; indexer/dense.c) ------------------------- */

/* An embedding the caller supplies (the indexer links no model): out[dim] =
 * the unit-length embedding of text[0..len). 0 or a KV_E* code (err set). */
typedef int (*idx_embed_fn)(void *ud, const char *text, size_t len, float *out, kv_err *err);
typedef struct idx_dense {
  idx_embed_fn embed;
  void *ud;
  int dim;
  const char *model;    /* names the vectors: another name re-embeds everything */
  int rrf_k;            /* reciprocal rank fusion constant; 0 = 5 (dense.c) */
  double weight;        /* the dense list's weight in the fusion; 0 = 0.3 */
  int unit;             /* IDX_DENSE_DEFS (0): a vector per definition, a chunk scoring its best;
                           IDX_DENSE_CHUNKS: a vector per chunk (docs/dense.md compares them) */
} idx_dense;
enum { IDX_DENSE_DEFS = 0, IDX_DENSE_CHUNKS = 1 };
typedef struct idx_dense_stats {
  uint64_t embedded;    /* chunks embedded by this call */
  uint64_t dropped;     /* vectors dropped (chunk gone, or another model) */
  uint64_t vectors;     /* vectors stored after the call */
  double seconds;
} idx_dense_stats;
/* Give every code chunk of the current view a vector (only those without
 * one: after an idx_sync, the chunks of the blobs it parsed). Takes the
 * writer's lock; cancel (may be NULL) is polled between chunks. */
int idx_dense_sync(idx_index *ix, const idx_dense *d, const volatile int *cancel, idx_dense_stats *st,
                   kv_err *err);
/* idx_search's ranking fused with the chunks nearest the query's embedding
 * (reciprocal rank fusion, dense.c). d NULL: idx_search. */
int idx_search_fused(idx_index *ix, const idx_dense *d, const char *query, size_t k, idx_hits *out, kv_err *err);

/* Token counter for the repo map; default: bytes / 4. */
typedef size_t (*idx_token_fn)(const char *text, size_t len, void *ud);

/* The repo map: files and their most important definitions (PageRank over
 * the file graph of symbol references, as in Aider), one signature per line,
 * cut to token_budget. *out is malloc'd text. */
int idx_repomap(idx_index *ix, size_t token_budget, idx_token_fn fn, void *ud, char **out,
                kv_err *err);

/* ---- facts (grounded answers) --------------------------------------------- */

#define IDX_FACT_MAX 8      /* callers, tests and callees kept, each */
#define IDX_FACT_COMMITS 3

typedef struct idx_ref {
  char *path;
  int line;
  char *in;             /* the definition enclosing the reference ("" if none) */
} idx_ref;
typedef struct idx_commit {
  char id[13];          /* abbreviated hex */
  int64_t time;         /* unix seconds */
  char *summary;
} idx_commit;
typedef struct idx_fact {
  idx_symbol def;       /* the definition: path, lines, signature, kind */
  char *doc;            /* its doc comment or docstring, NULL if none */
  idx_ref *callers; size_t ncallers;  /* references from code (not tests) */
  idx_ref *tests; size_t ntests;      /* references from test files */
  char **callees; size_t ncallees;    /* defined names it references */
  idx_commit commits[IDX_FACT_COMMITS]; size_t ncommits; /* newest first */
  int ndefs;            /* definitions of this name in the repository (>= 1):
                         * refs are by name, so with ndefs > 1 a caller may
                         * mean another definition of the same name */
} idx_fact;

/* What the index knows about a definition of path: among those starting in
 * [line0, line1], the one whose name parts best match the words of
 * `question` (may be NULL: the first), else the one enclosing line0.
 * KV_ENOTFOUND when there is none. */
int idx_fact_get(idx_index *ix, const char *path, int line0, int line1, const char *question, idx_fact *out,
                 kv_err *err);
void idx_fact_free(idx_fact *f);
/* 1 when path looks like a test file (tests/, test_*, *_test.*, *.spec.*). */
int idx_path_is_test(const char *path);
/* 1 when the code-like token exists in the repository: an identifier (or a
 * chain a.b, a::b, a->b: every part) among the index's identifiers, or, when
 * is_location, "path:line[-line]" naming an indexed file (or a path suffix of
 * one) and lines inside it. 0 when not, <0 on a database error. */
int idx_known(idx_index *ix, const char *tok, size_t n, int is_location);
/* 1 when a file of the current view that is not documentation (.md,
 * .rst, .txt, .adoc, README/CHANGES) holds the line line[0..n), white
 * space runs collapsed on both sides: a quoted line of code. Looked up
 * through the line's longest identifier (FTS, at most 256 chunks), so it
 * is cheap on any repository; a line with no identifier of 3+ bytes or
 * one too common to look up (a brace, `i++;`), or over 4000 bytes, has
 * nothing distinctive to judge and gives 1. 0 when not found, <0 on a
 * database error. */
int idx_quoted(idx_index *ix, const char *line, size_t n);

/* ---- log lines to code (strings.c) ---------------------------------------- */

typedef struct idx_site {
  char *path;
  int line;             /* 1-based: the line the string literal starts on */
  double score;         /* (0, 1]: alignment quality x evidence of the words matched */
} idx_site;
typedef struct idx_sites { size_t n; idx_site *v; } idx_sites;

/* The source lines that print a log template: `tmpl` is constant text with
 * variable slots written `slot` (logs/ writes "<*>"). Candidates are chunks
 * holding the template's constant words (chunks_fts), confirmed on their
 * string literals (format strings, f-strings, printf/logger calls, `+`
 * concatenations): the literal's constant pieces must appear in order and
 * its format slots line up with the template's slots. At most k sites (0 =
 * 3), best first; none when nothing matches well — a template of variables
 * only, or of one common word, links to nothing. `level` (may be NULL: "info",
 * "warn", ...) breaks ties between equal literals: the call that names it
 * (log.info(, DMN_INFO) first. */
int idx_log_sites(idx_index *ix, const char *tmpl, const char *slot, const char *level, size_t k, idx_sites *out,
                  kv_err *err);
void idx_sites_free(idx_sites *s);
/* The literal matcher alone, on source text in language `lang` ("c",
 * "python", "javascript", "go", "java", "ruby", "rust", "bash", ...): the
 * alignment quality in [0.8, 1] of the best literal that matches the
 * template and the 1-based line (of text) it starts on; 0 when none does.
 * No evidence threshold (that needs the index's word counts). */
double idx_literal_match(const char *lang, const char *text, size_t len, const char *tmpl, const char *slot,
                         int *line);

#ifdef __cplusplus
}
#endif
#endif
