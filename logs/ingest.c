/*
 * ingest.c — streaming ingest of files, directories, globs, .gz/.zst and
 * stdin into a log store.
 *
 * Three threads (internal.h). This one, the caller's, reads, splits
 * lines, learns each file's header from its first 2000 lines, parses each
 * line's header, joins continuation lines (stack traces, indented lines)
 * to the record above and hands records over in batches, with a commit
 * marker every `batch` records carrying the resume point = offset of the
 * first line of the record still being assembled. The mining stage mines
 * templates and fills blocks, the writer stage writes each commit's
 * records, templates, miner and resume point in one transaction, so after
 * kill -9 the store holds exactly the records before its resume point and
 * the next ingest starts there: nothing lost, nothing twice. The SQLite
 * connection belongs to the writer, except at the start of each file,
 * when this thread waits for both stages to finish and reads/updates the
 * files row itself.
 *
 * A file is recognised by (dev, inode) and a hash of its first head_len
 * (<= 4096) bytes; if those changed (rotated, rewritten), it is read again
 * from the start. Bad bytes are counted, never fatal: NUL/control-heavy
 * (binary) lines, invalid UTF-8 (replaced by '?'), over-long lines (cut),
 * records without a timestamp (take the previous one), clock jumps, and
 * truncated compressed streams.
 */
#define _GNU_SOURCE
#include "logs/internal.h"
#include "logs/internal.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define HEAD_MAX 4096
#define LEARN_LINES 2000
#define RECORD_MAX ((1u << 20) + 2)

typedef struct ing {
  log_db *db;
  const log_ingest_opts *o;
  log_ingest_stats *st;
  log_pipe *pipe;
  log_rbatch *rb;      /* records not yet handed to the mining stage */
  uint64_t total_bytes, done_bytes;
  /* current file */
  int64_t file_id;
  log_fmt *fmt;
  int year;
  int64_t last_ts;
  /* pending record */
  char *rec;
  size_t rlen, rcap;
  size_t first_len;  /* bytes of the first line in rec */
  uint64_t rstart;   /* decoded offset of its first line */
  int64_t rline;     /* its line number (1-based) */
  int have;
  log_line pl; /* parsed first line of the pending record; offsets below */
  size_t pl_content, pl_comp, pl_thread;
  size_t since_commit;
  char *clean;
  size_t cleancap;
} ing;

/* files.head_hash (persisted): 63 bits, so it fits SQLite's signed integer */
static uint64_t hash_bytes(const void *p, size_t n) { return kv_hash64(p, n) & 0x7fffffffffffffffULL; }

/* Copy with invalid UTF-8 and control bytes replaced by '?'; returns the
 * number of replacements; *binary set if the line looks like binary data. */
static size_t sanitize(const char *s, size_t n, char *o, int *binary) {
  size_t bad = 0, ctl = 0;
  for (size_t i = 0; i < n;) {
    /* fast path: 8 printable ASCII bytes (no high bit, none below 0x20) */
    if (i + 8 <= n) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if (!((w | ((w - 0x2020202020202020ULL) & ~w)) & 0x8080808080808080ULL)) {
        memcpy(o + i, &w, 8);
        i += 8;
        continue;
      }
    }
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
      if (c < 0x20 && c != '\t') {
        ctl++;
        o[i++] = '?';
      } else {
        o[i] = (char)c;
        i++;
      }
      continue;
    }
    size_t need = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
    int ok = need && i + need <= n;
    for (size_t k = 1; ok && k < need; k++)
      if (((unsigned char)s[i + k] & 0xc0) != 0x80) ok = 0;
    if (ok && need == 3 && c == 0xe0 && (unsigned char)s[i + 1] < 0xa0) ok = 0;
    if (ok && need == 3 && c == 0xed && (unsigned char)s[i + 1] >= 0xa0) ok = 0;
    if (ok && need == 4 && c == 0xf0 && (unsigned char)s[i + 1] < 0x90) ok = 0;
    if (ok && need == 4 && c == 0xf4 && (unsigned char)s[i + 1] >= 0x90) ok = 0;
    if (!ok) {
      bad++;
      o[i++] = '?';
      continue;
    }
    memcpy(o + i, s + i, need);
    i += need;
  }
  *binary = n > 0 && (ctl + bad) * 4 > n;
  return bad;
}

/* ---- handing records over ----------------------------------------------------- */

#define RB_RECORDS 8192
#define RB_BYTES (2u << 20)

static int flush(ing *g, kv_err *err) {
  if (!g->rb || !g->rb->n) return 0;
  log_rbatch *b = g->rb;
  g->rb = NULL;
  return log_pipe_push(g->pipe, b, err);
}

static log_rrec *add(ing *g, int kind, kv_err *err) {
  if (!g->rb && !(g->rb = log_pipe_rbatch(g->pipe))) {
    kv_err_set(err, KV_ENOMEM, "logs: out of memory");
    return NULL;
  }
  log_rrec *r = log_rbatch_add(g->rb, kind);
  if (!r) kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  return r;
}

/* A commit point before the record still being assembled: the resume point
 * is where it starts. */
static int commit(ing *g, kv_err *err, uint64_t resume_off, int64_t resume_line) {
  log_rrec *r = add(g, RR_COMMIT, err);
  if (!r) return KV_ENOMEM;
  r->off = resume_off;
  r->line = resume_line;
  int rc = flush(g, err);
  if (rc) return rc;
  g->since_commit = 0;
  if (g->o && g->o->progress) g->o->progress(g->o->progress_ud, g->done_bytes, g->total_bytes, g->st->records);
  return 0;
}

/* Hand the pending record over. */
static int emit(ing *g, kv_err *err) {
  if (!g->have) return 0;
  g->have = 0;
  int64_t ts = g->pl.ts_ms;
  if (ts == INT64_MIN) {
    g->st->no_timestamp++;
    ts = g->last_ts;
  } else if (g->last_ts != INT64_MIN && (ts < g->last_ts - 3600000LL || ts > g->last_ts + 30LL * 86400000LL)) {
    g->st->clock_jumps++;
  }
  if (ts != INT64_MIN) g->last_ts = ts;
  log_rrec *r = add(g, RR_REC, err);
  if (!r) return KV_ENOMEM;
  kv_buf *a = &g->rb->arena;
  uint32_t base = (uint32_t)a->len;
  if (kv_buf_append(a, g->rec, g->rlen)) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  r->ts = ts;
  r->level = (uint8_t)g->pl.level;
  r->pid = g->pl.pid >= 0 ? g->pl.pid : -1;
  r->line = g->rline;
  r->text = base, r->tlen = (uint32_t)g->rlen;
  r->content = base + (uint32_t)g->pl_content, r->clen = (uint32_t)g->pl.content_len;
  if (g->pl.comp && g->pl.comp_len) r->comp = base + (uint32_t)g->pl_comp, r->complen = (uint32_t)g->pl.comp_len;
  g->st->records++;
  g->since_commit++;
  if (g->rb->n >= RB_RECORDS || a->len >= RB_BYTES) return flush(g, err);
  return 0;
}

static int append(ing *g, const char *p, size_t n) {
  if (g->rlen + 2 > RECORD_MAX) return 0; /* record full: the rest is dropped */
  if (g->rlen + n + 2 > RECORD_MAX) n = RECORD_MAX - g->rlen - 2;
  if (KV_GROW(g->rec, g->rcap, g->rlen + n + 1)) return KV_ENOMEM;
  if (g->rlen) g->rec[g->rlen++] = '\n';
  memcpy(g->rec + g->rlen, p, n);
  g->rlen += n;
  return 0;
}

/* Learn the header from the first lines of the file (a separate read). */
static int learn(ing *g, const char *path, log_lines *main, int from_main, kv_err *err) {
  const char *lp[LEARN_LINES];
  size_t ll[LEARN_LINES];
  size_t n = 0;
  log_src hs;
  log_lines H;
  log_lines *L = main;
  int rc;
  if (!from_main) {
    if ((rc = log_src_open(&hs, path, err))) return rc;
    if ((rc = log_lines_init(&H, &hs, 1u << 16, 0, err))) {
      log_src_close(&hs);
      return rc;
    }
    L = &H;
  }
  log_lines_fill(L);
  size_t i = L->beg;
  while (n < LEARN_LINES && i < L->end) {
    char *nl = memchr(L->buf + i, '\n', L->end - i);
    if (!nl) break;
    lp[n] = L->buf + i;
    ll[n] = (size_t)(nl - (L->buf + i));
    n++;
    i = (size_t)(nl - L->buf) + 1;
  }
  if (n == 0 && L->end > L->beg) lp[0] = L->buf + L->beg, ll[0] = L->end - L->beg, n = 1;
  rc = log_fmt_learn(&g->fmt, lp, ll, n, err);
  if (!from_main) {
    log_lines_free(&H);
    log_src_close(&hs);
  }
  return rc;
}

static int ingest_file(ing *g, const char *path, kv_err *err) {
  struct stat sb;
  int is_stdin = !strcmp(path, "-");
  char rpath[4096];
  if (is_stdin) snprintf(rpath, sizeof rpath, "<stdin>");
  else if (!realpath(path, rpath)) return kv_err_set(err, KV_EIO, "%s: %s", path, strerror(errno));
  if (!is_stdin && stat(rpath, &sb)) return kv_err_set(err, KV_EIO, "%s: %s", path, strerror(errno));
  log_src s;
  int rc = log_src_open(&s, path, err);
  if (rc) return rc;
  /* head of the raw file, for recognising it next time */
  unsigned char head[HEAD_MAX];
  ssize_t hl = is_stdin ? 0 : pread(s.fd, head, HEAD_MAX, 0);
  if (hl < 0) hl = 0;
  struct tm tmv;
  time_t mt = is_stdin ? time(NULL) : sb.st_mtime;
  gmtime_r(&mt, &tmv);
  g->year = tmv.tm_year + 1900;
  uint64_t off = 0;
  int64_t line = 0;
  sqlite3_stmt *q;
  /* the connection is the writer's while it works: wait for it */
  if ((rc = flush(g, err)) || (rc = log_pipe_drain(g->pipe, err))) goto out_src;
  if ((rc = log_db_prepare(g->db, &q,
                           "SELECT id, dev, inode, offset, head_len, head_hash, line_no FROM files WHERE path = ?",
                           err)))
    goto out_src;
  sqlite3_bind_text(q, 1, rpath, -1, SQLITE_TRANSIENT);
  g->file_id = 0;
  if (sqlite3_step(q) == SQLITE_ROW && !is_stdin) {
    g->file_id = sqlite3_column_int64(q, 0);
    int64_t dev = sqlite3_column_int64(q, 1), ino = sqlite3_column_int64(q, 2);
    int64_t ohl = sqlite3_column_int64(q, 4), ohh = sqlite3_column_int64(q, 5);
    int same = dev == (int64_t)sb.st_dev && ino == (int64_t)sb.st_ino && ohl <= hl &&
               (int64_t)hash_bytes(head, (size_t)ohl) == ohh;
    if (same) {
      off = (uint64_t)sqlite3_column_int64(q, 3);
      line = sqlite3_column_int64(q, 6);
    }
  }
  sqlite3_finalize(q);
  if ((rc = log_db_exec(g->db, "BEGIN IMMEDIATE", err))) goto out_src;
  if (!g->file_id || is_stdin) {
    sqlite3_stmt *ins;
    if ((rc = log_db_prepare(g->db, &ins, "INSERT OR REPLACE INTO files(path) VALUES(?)", err))) goto out_src;
    char tag[64];
    if (is_stdin) snprintf(tag, sizeof tag, "<stdin %lld>", (long long)time(NULL));
    sqlite3_bind_text(ins, 1, is_stdin ? tag : rpath, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(ins) != SQLITE_DONE)
      rc = kv_err_set(err, KV_EIO, "%s: files: %s", g->db->path, sqlite3_errmsg(g->db->db));
    sqlite3_finalize(ins);
    if (rc) goto out_txn;
    g->file_id = sqlite3_last_insert_rowid(g->db->db);
  }
  {
    sqlite3_stmt *u;
    /* the resume point is written with the identity it belongs to: a
     * replaced file starts over at 0 even if no batch commits */
    if ((rc = log_db_prepare(g->db, &u,
                             "UPDATE files SET dev=?, inode=?, head_len=?, head_hash=?, year=?, offset=?, line_no=? "
                             "WHERE id=?",
                             err)))
      goto out_txn;
    sqlite3_bind_int64(u, 1, is_stdin ? 0 : (int64_t)sb.st_dev);
    sqlite3_bind_int64(u, 2, is_stdin ? 0 : (int64_t)sb.st_ino);
    sqlite3_bind_int64(u, 3, hl);
    sqlite3_bind_int64(u, 4, (int64_t)hash_bytes(head, (size_t)hl));
    sqlite3_bind_int(u, 5, g->year);
    sqlite3_bind_int64(u, 6, (int64_t)off);
    sqlite3_bind_int64(u, 7, line);
    sqlite3_bind_int64(u, 8, g->file_id);
    if (sqlite3_step(u) != SQLITE_DONE)
      rc = kv_err_set(err, KV_EIO, "%s: files: %s", g->db->path, sqlite3_errmsg(g->db->db));
    sqlite3_finalize(u);
  }
out_txn:
  if (rc) {
    log_db_exec(g->db, "ROLLBACK", NULL);
    goto out_src;
  }
  if ((rc = log_db_exec(g->db, "COMMIT", err))) goto out_src;
  {
    log_rrec *fr = add(g, RR_FILE, err);
    if (!fr) {
      rc = KV_ENOMEM;
      goto out_src;
    }
    fr->line = g->file_id;
  }
  if (!is_stdin && off > 0 && off == (uint64_t)sb.st_size && s.kind == SRC_PLAIN) {
    g->st->files_skipped++; /* nothing new */
    goto out_src;
  }
  log_lines L;
  size_t max_line = g->o && g->o->max_line ? g->o->max_line : (1u << 20);
  if ((rc = log_lines_init(&L, &s, max_line, off, err))) goto out_src;
  if (off > 0) {
    if ((rc = learn(g, path, NULL, 0, err))) goto out_lines;
    if (log_src_skip(&s, off)) {
      /* shorter than the resume point: the file was truncated, start over */
      log_src_close(&s);
      if ((rc = log_src_open(&s, path, err))) goto out_lines;
      L.s = &s, L.off = 0, L.eof = 0, L.beg = L.end = 0;
      off = 0, line = 0;
    }
  } else if ((rc = learn(g, path, &L, 1, err))) {
    goto out_lines;
  }
  int headered = log_fmt_columns(g->fmt) > 0;
  g->last_ts = INT64_MIN;
  g->have = 0;
  const char *p;
  size_t n;
  uint64_t start;
  int cut;
  size_t batch = g->o && g->o->batch ? g->o->batch : 20000;
  while (log_lines_next(&L, &p, &n, &start, &cut)) {
    line++;
    g->st->lines++;
    g->st->bytes += n + 1;
    g->done_bytes += n + 1;
    if (cut) g->st->long_lines++;
    while (n > 0 && p[n - 1] == '\r') n--;
    if (KV_GROW(g->clean, g->cleancap, n + 1)) {
      rc = kv_err_set(err, KV_ENOMEM, "%s: line %lld: out of memory", path, (long long)line);
      break;
    }
    int binary;
    if (sanitize(p, n, g->clean, &binary)) g->st->invalid_utf8++;
    if (binary) g->st->binary_lines++;
    log_line ln;
    int cont = 0;
    log_line_parse(g->fmt, g->clean, n, g->year, &ln);
    if (g->have) {
      if (headered) {
        cont = !ln.has_header && log_is_continuation(g->clean, n);
        if (!ln.has_header && !cont && n > 0 && (g->clean[0] == ' ' || g->clean[0] == '\t')) cont = 1;
      } else {
        cont = log_is_continuation(g->clean, n) && n > 0;
      }
    }
    if (cont) {
      if ((rc = append(g, g->clean, n))) break;
      continue;
    }
    if (g->have && g->since_commit + 1 >= batch) {
      /* commit before this line: the resume point is the pending record */
      if ((rc = emit(g, err))) break;
      if ((rc = commit(g, err, start, line - 1))) break;
      if (g->o && g->o->cancel && *g->o->cancel) {
        rc = kv_err_set(err, KV_ECANCELED, "%s: ingest canceled at line %lld", path, (long long)line);
        break;
      }
    } else if ((rc = emit(g, err))) {
      break;
    }
    g->rlen = 0;
    if ((rc = append(g, g->clean, n))) break;
    g->first_len = g->rlen;
    g->pl = ln;
    g->pl_content = (size_t)(ln.content - g->clean);
    if (g->pl_content > g->rlen) g->pl_content = g->rlen; /* a cut record */
    if (ln.content_len > g->rlen - g->pl_content) g->pl.content_len = g->rlen - g->pl_content;
    if (ln.comp && (size_t)(ln.comp - g->clean) + ln.comp_len > g->rlen) g->pl.comp = NULL, g->pl.comp_len = 0;
    if (ln.thread && (size_t)(ln.thread - g->clean) + ln.thread_len > g->rlen) g->pl.thread = NULL;
    g->pl_comp = ln.comp ? (size_t)(ln.comp - g->clean) : 0;
    g->pl_thread = ln.thread ? (size_t)(ln.thread - g->clean) : 0;
    g->rstart = start;
    g->rline = line;
    g->have = 1;
  }
  if (!rc) rc = emit(g, err);
  if (!rc) rc = commit(g, err, L.off, line);
  if (s.truncated) g->st->truncated++;
  if (!rc) g->st->files++;
out_lines:
  log_lines_free(&L);
out_src:
  if (rc && rc != KV_ECANCELED && g->pipe) {
    /* what was not committed is dropped, as a rolled back transaction */
    log_rbatch_free(g->rb);
    g->rb = NULL;
    if (add(g, RR_ABORT, NULL)) flush(g, NULL);
  }
  g->have = 0;
  g->since_commit = 0;
  log_fmt_free(g->fmt);
  g->fmt = NULL;
  log_src_close(&s);
  return rc;
}

static int has_glob(const char *p) { return strpbrk(p, "*?[") != NULL; }

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int walk(ing *g, const char *path, int depth, kv_err *err);

static int walk_dir(ing *g, const char *path, int depth, kv_err *err) {
  DIR *d = opendir(path);
  if (!d) return kv_err_set(err, KV_EIO, "%s: %s", path, strerror(errno));
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  int rc = 0;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (KV_GROW(names, cap, n + 1)) {
      rc = kv_err_set(err, KV_ENOMEM, "%s: out of memory listing", path);
      break;
    }
    names[n] = malloc(strlen(path) + strlen(e->d_name) + 2);
    if (!names[n]) {
      rc = kv_err_set(err, KV_ENOMEM, "%s: out of memory listing", path);
      break;
    }
    sprintf(names[n], "%s/%s", path, e->d_name);
    n++;
  }
  closedir(d);
  if (!rc) qsort(names, n, sizeof *names, cmp_str);
  for (size_t i = 0; i < n && !rc; i++) rc = walk(g, names[i], depth + 1, err);
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  return rc;
}

static int walk(ing *g, const char *path, int depth, kv_err *err) {
  struct stat sb;
  if (!strcmp(path, "-")) return ingest_file(g, path, err);
  if (stat(path, &sb) == 0) {
    if (S_ISDIR(sb.st_mode)) return depth < 32 ? walk_dir(g, path, depth, err) : 0;
    if (!S_ISREG(sb.st_mode)) {
      g->st->files_skipped++;
      return 0;
    }
    int rc = ingest_file(g, path, err);
    if (rc && rc != KV_ECANCELED && rc != KV_ENOMEM) {
      /* one unreadable file does not stop the others */
      fprintf(stderr, "kvasir logs: %s\n", err ? err->msg : path);
      g->st->files_skipped++;
      return 0;
    }
    return rc;
  }
  if (has_glob(path)) {
    glob_t gl;
    int r = glob(path, 0, NULL, &gl);
    if (r == GLOB_NOMATCH) return kv_err_set(err, KV_ENOTFOUND, "%s: no file matches", path);
    if (r) return kv_err_set(err, KV_EIO, "%s: glob failed", path);
    int rc = 0;
    for (size_t i = 0; i < gl.gl_pathc && !rc; i++) rc = walk(g, gl.gl_pathv[i], depth + 1, err);
    globfree(&gl);
    return rc;
  }
  return kv_err_set(err, KV_ENOTFOUND, "%s: %s", path, strerror(errno));
}

static void total_size(const char *path, uint64_t *tot, int depth) {
  struct stat sb;
  if (depth > 32 || stat(path, &sb)) return;
  if (S_ISREG(sb.st_mode)) *tot += (uint64_t)sb.st_size;
  else if (S_ISDIR(sb.st_mode)) {
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    char sub[4096];
    while ((e = readdir(d)))
      if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        total_size(sub, tot, depth + 1);
      }
    closedir(d);
  }
}

int log_ingest(log_db *db, const char *const *paths, int npaths, const log_ingest_opts *opts,
               log_ingest_stats *stats, kv_err *err) {
  log_ingest_stats local;
  if (!stats) stats = &local;
  memset(stats, 0, sizeof *stats);
  double t0 = kv_now();
  int rc = log_db_miner(db, err);
  if (rc) return rc;
  ing g;
  memset(&g, 0, sizeof g);
  g.db = db;
  g.o = opts;
  g.st = stats;
  uint32_t nt0 = log_miner_count(db->miner);
  for (int i = 0; i < npaths; i++) total_size(paths[i], &g.total_bytes, 0);
  rc = log_db_exec(db, "PRAGMA cache_size=-65536", err);
  if (!rc) rc = log_pipe_start(&g.pipe, db, err);
  for (int i = 0; i < npaths && !rc; i++) rc = walk(&g, paths[i], 0, err);
  kv_err perr = {0};
  int prc = flush(&g, &perr);
  log_rbatch_free(g.rb);
  int src = log_pipe_stop(g.pipe, prc ? NULL : &perr);
  if (!prc) prc = src;
  if (prc && (!rc || rc == KV_ECANCELED)) {
    rc = prc;
    if (err) *err = perr;
  }
  uint32_t nt1 = db->miner ? log_miner_count(db->miner) : nt0;
  if (rc && rc != KV_ECANCELED) log_db_forget(db);
  free(g.rec);
  free(g.clean);
  stats->new_templates = nt1 - nt0;
  stats->seconds = kv_now() - t0;
  return rc;
}
