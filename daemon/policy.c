/*
 * policy.c — the daemon's side of policy/: policy.explain (the policy
 * module's own JSON explanation of a decision), and the gate the daemon
 * passes before every generation. The project's policy (.kvasir/policy.yaml
 * + the user's config.yaml) decides where an ask may be answered: `refuse` ends it with an error naming the
 * rule; a hosted tier gets the request with never_send files stripped and
 * secrets redacted, streamed back as ask.token, and falls back to the local
 * tier (said in the answer) when the endpoint fails; a local tier answers
 * with the engine. Every decision is written to the audit database before
 * anything is generated or sent.
 *
 * Caching: a repo's policy is parsed once and kept until one of its two files
 * changes. Each ask stats both files (device, inode, size, mtime, ctime; a
 * file may be absent) and compares them with what the cached policy was read
 * from; a file modified within RACY_S of its load could have changed again
 * inside one timestamp tick, so its policy is read again until it is older.
 * SIGHUP (dmn_gate_reload) re-reads every cached policy at once. Audit
 * database connections are pooled: one connection is used by one ask at a
 * time (checked out, then back), so SQLite state such as last_insert_rowid
 * is never shared between threads.
 *
 * Invariants: nothing leaves the machine except through pol_hosted_send
 * (which re-checks offline, budgets and keys and audits the exact bytes);
 * a policy that has never loaded refuses the ask, naming the file (a broken
 * policy must not silently widen what may be sent); a policy that breaks
 * after loading leaves the last good one in force (the error is logged with
 * file:line:col and the ask's result carries it as `policy_warning`). A
 * cached pol_policy is never modified: a reload builds a new one, and the
 * old one is freed when the last ask using it releases it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "daemon/policy_internal.h"
#include "policy/policy.h"

#define RACY_S 2          /* seconds a fresh edit's timestamps are not trusted */
#define MAX_ENTRIES 64    /* cached repos; the least recently used goes first */
#define MAX_IDLE_AUDIT 8  /* pooled audit connections */
#define REPO_MAX 1024

/* What stat said about one file (absent files compare equal to each other). */
typedef struct gate_stamp {
  int exists;
  dev_t dev;
  ino_t ino;
  off_t size;
  int64_t mtime_ns, ctime_ns;
} gate_stamp;

/* A loaded policy; refs counts the entry holding it plus every ask using it. */
typedef struct gate_pol {
  pol_policy *p;
  int refs;
} gate_pol;

typedef struct gate_entry {
  char repo[REPO_MAX];
  char config[4096];   /* config.yaml path the policy was read with */
  gate_pol *cur;       /* the last good policy; NULL until one loaded */
  gate_stamp st[2];    /* config.yaml, policy.yaml as last read (good or not) */
  int racy, force;     /* read again at next use */
  int failed;          /* st describes a failed read; cur is older */
  char last_err[512];  /* the error of that read (logged once) */
  double used;
  struct gate_entry *next;
} gate_entry;

struct dmn_gate {
  dmn_server *srv;
  pthread_mutex_t mu; /* guards everything below */
  gate_entry *entries;
  size_t n_entries;
  uint64_t hits, loads, load_errors;
  char audit_path[4096];
  gate_stamp audit_st;   /* identity of audit_path when the pool was filled */
  uint64_t audit_gen;    /* bumped whenever the pool is emptied */
  pol_audit *idle[MAX_IDLE_AUDIT];
  size_t n_idle;
  uint64_t audit_opens, audit_reuses;
};

int dmn_gate_new(dmn_gate **out, dmn_server *s, kv_err *err) {
  dmn_gate *g = calloc(1, sizeof *g);
  if (!g) return kv_err_set(err, KV_ENOMEM, "gate: out of memory");
  g->srv = s;
  pthread_mutex_init(&g->mu, NULL);
  *out = g;
  return 0;
}

static void pol_release(gate_pol *gp) { /* with g->mu held */
  if (gp && --gp->refs == 0) {
    pol_policy_free(gp->p);
    free(gp);
  }
}

static void flush_audit(dmn_gate *g) { /* with g->mu held */
  while (g->n_idle) pol_audit_close(g->idle[--g->n_idle]);
}

void dmn_gate_free(dmn_gate *g) {
  if (!g) return;
  gate_entry *e = g->entries;
  while (e) {
    gate_entry *n = e->next;
    pol_release(e->cur);
    free(e);
    e = n;
  }
  flush_audit(g);
  pthread_mutex_destroy(&g->mu);
  free(g);
}

static void stamp_of(const char *path, gate_stamp *s) {
  struct stat st;
  memset(s, 0, sizeof *s);
  if (stat(path, &st) != 0) return;
  s->exists = 1;
  s->dev = st.st_dev;
  s->ino = st.st_ino;
  s->size = st.st_size;
  s->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
  s->ctime_ns = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
}

static int stamp_eq(const gate_stamp *a, const gate_stamp *b) {
  if (a->exists != b->exists) return 0;
  return !a->exists || (a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
                        a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns);
}

static int64_t wall_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Read e's policy again (with g->mu held). On success it replaces cur; on
 * failure cur stays and the error is logged once per distinct message.
 * Returns 0, or the error when there is no policy to fall back on. */
static int load_entry(dmn_gate *g, gate_entry *e, const char *config, const gate_stamp now[2], kv_err *err) {
  int64_t t0 = wall_ns();
  pol_policy *p = NULL;
  kv_err le;
  int rc = pol_policy_open(&p, e->repo, &le);
  int changed = e->force || !stamp_eq(&e->st[0], &now[0]) || !stamp_eq(&e->st[1], &now[1]);
  memcpy(e->st, now, sizeof e->st);
  snprintf(e->config, sizeof e->config, "%s", config);
  e->force = 0;
  e->racy = 0;
  for (int i = 0; i < 2; i++) /* edited within a timestamp tick of this read? */
    if (now[i].exists && (now[i].mtime_ns > t0 - (int64_t)RACY_S * 1000000000 ||
                          now[i].ctime_ns > t0 - (int64_t)RACY_S * 1000000000))
      e->racy = 1;
  if (rc == 0) {
    gate_pol *gp = calloc(1, sizeof *gp);
    if (!gp) {
      pol_policy_free(p);
      e->force = 1;
      return e->cur ? 0 : kv_err_set(err, KV_ENOMEM, "policy: out of memory");
    }
    gp->p = p;
    gp->refs = 1;
    if (e->cur && (changed || e->failed)) /* not for a re-read of a racy file */
      dmn_log(g->srv, DMN_INFO, "policy.reload", "%s: policy reloaded (%s)", e->repo,
              pol_policy_file(p)[0] ? pol_policy_file(p) : "default policy");
    pol_release(e->cur);
    e->cur = gp;
    e->failed = 0;
    e->last_err[0] = 0;
    g->loads++;
    return 0;
  }
  g->load_errors++;
  if (!e->cur) { /* nothing to fall back on: refuse, and read again next time */
    e->force = 1;
    return kv_err_set(err, KV_EDENIED, "policy: %.400s (fix the policy; nothing was generated or sent)",
                      le.msg);
  }
  if (strcmp(e->last_err, le.msg))
    dmn_log(g->srv, DMN_ERROR, "policy.reload", "%s: %s (the last good policy stays in force)", e->repo,
            le.msg);
  snprintf(e->last_err, sizeof e->last_err, "%s", le.msg);
  e->failed = 1;
  return 0;
}

static int find_entry(dmn_gate *g, const char *repo, gate_entry **out, kv_err *err) { /* with g->mu held */
  for (gate_entry *e = g->entries; e; e = e->next)
    if (!strcmp(e->repo, repo)) return *out = e, 0;
  if (strlen(repo) >= REPO_MAX) return kv_err_set(err, KV_ELIMIT, "policy: %.200s...: path too long", repo);
  if (g->n_entries >= MAX_ENTRIES) { /* drop the least recently used */
    gate_entry **pp = &g->entries, **lru = pp;
    for (; *pp; pp = &(*pp)->next)
      if ((*pp)->used < (*lru)->used) lru = pp;
    gate_entry *old = *lru;
    *lru = old->next;
    pol_release(old->cur);
    free(old);
    g->n_entries--;
  }
  gate_entry *e = calloc(1, sizeof *e);
  if (!e) return kv_err_set(err, KV_ENOMEM, "policy: out of memory");
  snprintf(e->repo, sizeof e->repo, "%s", repo);
  e->force = 1;
  e->next = g->entries;
  g->entries = e;
  g->n_entries++;
  *out = e;
  return 0;
}

static void paths_of(const char *repo, char *config, size_t cn, char *policy, size_t pn) {
  char dir[4000];
  if (kv_xdg_dir(dir, sizeof dir, "config") != 0) dir[0] = 0;
  snprintf(config, cn, "%s/config.yaml", dir);
  snprintf(policy, pn, "%s/.kvasir/policy.yaml", repo);
}

/* The policy in force for repo (a reference: give it back with policy_put).
 * *warning gets the reload error when an older policy is in force. */
static int policy_get(dmn_gate *g, const char *repo, gate_pol **out, char *warning, size_t wn, kv_err *err) {
  char config[4096], policy[4096 + 32];
  paths_of(repo, config, sizeof config, policy, sizeof policy);
  gate_stamp now[2];
  stamp_of(config, &now[0]);
  stamp_of(policy, &now[1]);
  pthread_mutex_lock(&g->mu);
  gate_entry *e = NULL;
  int rc = find_entry(g, repo, &e, err);
  if (!rc && (e->force || e->racy || !e->cur || strcmp(e->config, config) || !stamp_eq(&e->st[0], &now[0]) ||
              !stamp_eq(&e->st[1], &now[1])))
    rc = load_entry(g, e, config, now, err);
  else if (!rc)
    g->hits++;
  if (!rc) {
    e->used = kv_now();
    e->cur->refs++;
    *out = e->cur;
    snprintf(warning, wn, "%s", e->failed ? e->last_err : "");
  }
  pthread_mutex_unlock(&g->mu);
  return rc;
}

static void policy_put(dmn_gate *g, gate_pol *gp) {
  pthread_mutex_lock(&g->mu);
  pol_release(gp);
  pthread_mutex_unlock(&g->mu);
}

void dmn_gate_reload(dmn_gate *g) {
  pthread_mutex_lock(&g->mu);
  for (gate_entry *e = g->entries; e; e = e->next) {
    char config[4096], policy[4096 + 32];
    paths_of(e->repo, config, sizeof config, policy, sizeof policy);
    gate_stamp now[2];
    stamp_of(config, &now[0]);
    stamp_of(policy, &now[1]);
    kv_err le;
    e->last_err[0] = 0; /* SIGHUP logs a standing error again */
    if (load_entry(g, e, config, now, &le))
      dmn_log(g->srv, DMN_ERROR, "policy.reload", "%s: %s", e->repo, le.msg);
  }
  flush_audit(g); /* audit.db is opened afresh too */
  g->audit_gen++;
  pthread_mutex_unlock(&g->mu);
}

/* An audit connection checked out by one ask. gen: the pool generation it
 * belongs to; a connection of an older generation is closed, not pooled. */
typedef struct audit_ref {
  pol_audit *a;
  uint64_t gen;
} audit_ref;

/* An audit connection for this ask (a = NULL when audit.db cannot be opened,
 * as before: the decision is then not recorded). Give it back with audit_put. */
static audit_ref audit_get(dmn_gate *g) {
  audit_ref r = {NULL, 0};
  char dir[4000], path[4096];
  if (kv_xdg_dir(dir, sizeof dir, "data") != 0) return r;
  snprintf(path, sizeof path, "%s/audit.db", dir);
  gate_stamp st; /* the file is identified by device and inode: our own writes change the rest */
  stamp_of(path, &st);
  pthread_mutex_lock(&g->mu);
  if (strcmp(path, g->audit_path) || !st.exists || !g->audit_st.exists || st.dev != g->audit_st.dev ||
      st.ino != g->audit_st.ino) { /* another data dir, or audit.db was removed or replaced */
    flush_audit(g);
    g->audit_gen++;
    snprintf(g->audit_path, sizeof g->audit_path, "%s", path);
    g->audit_st = st;
  }
  r.gen = g->audit_gen;
  if (g->n_idle) {
    r.a = g->idle[--g->n_idle];
    g->audit_reuses++;
  }
  pthread_mutex_unlock(&g->mu);
  if (r.a) return r;
  kv_err e;
  if (kv_mkdirs(dir, 0700, &e) || pol_audit_open(&r.a, path, &e)) return r;
  pthread_mutex_lock(&g->mu);
  g->audit_opens++;
  if (r.gen == g->audit_gen) stamp_of(path, &g->audit_st); /* it may have just been created */
  pthread_mutex_unlock(&g->mu);
  return r;
}

static void audit_put(dmn_gate *g, audit_ref r) {
  if (!r.a) return;
  pthread_mutex_lock(&g->mu);
  if (r.gen == g->audit_gen && g->n_idle < MAX_IDLE_AUDIT) {
    g->idle[g->n_idle++] = r.a;
    r.a = NULL;
  }
  pthread_mutex_unlock(&g->mu);
  pol_audit_close(r.a);
}

void dmn_gate_stats(dmn_gate *g, cJSON *out) {
  cJSON *o = cJSON_AddObjectToObject(out, "policy");
  if (!o) return;
  pthread_mutex_lock(&g->mu);
  cJSON_AddNumberToObject(o, "cached", (double)g->n_entries);
  cJSON_AddNumberToObject(o, "hits", (double)g->hits);
  cJSON_AddNumberToObject(o, "loads", (double)g->loads);
  cJSON_AddNumberToObject(o, "load_errors", (double)g->load_errors);
  cJSON_AddNumberToObject(o, "audit_opens", (double)g->audit_opens);
  cJSON_AddNumberToObject(o, "audit_reuses", (double)g->audit_reuses);
  pthread_mutex_unlock(&g->mu);
}

void dmn_gate_ctx_free(dmn_gate_ctx *g) {
  for (size_t i = 0; i < g->n; i++) {
    free(g->path[i]);
    free(g->text[i]);
    free(g->origin[i]);
    g->origin[i] = NULL;
    g->lazy[i] = 0;
  }
  g->n = 0;
}

void dmn_gate_origin_lazy(dmn_gate_ctx *g, unsigned line0) {
  if (!g->n || g->origin[g->n - 1]) return;
  g->lazy[g->n - 1] = 1;
  g->line0[g->n - 1] = line0;
}

/* The whole files of the lazily marked excerpts, read once per path into
 * owned[] (what origins[] then points at; the caller frees owned[]). */
static void read_origins(const dmn_gate_ctx *gc, pol_file_origin *origins, char **owned) {
  for (size_t i = 0; i < gc->n && gc->read_file; i++) {
    if (!gc->lazy[i] || origins[i].text) continue;
    size_t k = 0;
    while (k < i && !(gc->lazy[k] && origins[k].text && !strcmp(gc->path[k], gc->path[i]))) k++;
    if (k < i) { /* the same file as an earlier excerpt */
      origins[i].text = origins[k].text;
      origins[i].len = origins[k].len;
    } else if (gc->read_file(gc->read_ud, gc->path[i], &owned[i], &origins[i].len) == 0) {
      origins[i].text = owned[i];
    }
  }
}

int dmn_gate_origin(dmn_gate_ctx *g, const char *file, size_t len, unsigned line0) {
  if (!g->n || !file || g->origin[g->n - 1]) return 0;
  char *t = malloc(len + 1);
  if (!t) return KV_ENOMEM;
  memcpy(t, file, len);
  t[len] = 0;
  g->origin[g->n - 1] = t;
  g->origin_len[g->n - 1] = len;
  g->line0[g->n - 1] = line0;
  return 0;
}

int dmn_gate_add(dmn_gate_ctx *g, const char *path, const char *text, size_t len) {
  if (g->n >= DMN_GATE_MAX_FILES) return 0; /* the excerpts given to the model are capped too */
  char *p = strdup(path ? path : "");
  char *t = malloc(len + 1);
  if (!p || !t) {
    free(p);
    free(t);
    return KV_ENOMEM;
  }
  memcpy(t, text ? text : "", len);
  t[len] = 0;
  g->path[g->n] = p;
  g->text[g->n] = t;
  g->len[g->n] = len;
  g->n++;
  return 0;
}

static int stream_cb(const char *tok, size_t len, void *user) {
  dmn_gate_io *io = user;
  return io->on_token(io->user, tok, len);
}

int dmn_gate_run(dmn_gate *g, const char *repo, const char *question, const char *depth,
                 const dmn_gate_ctx *gc, dmn_gate_io *io, cJSON *res, int *answered, kv_err *err) {
  *answered = 0;
  int d = depth ? pol_depth_parse(depth) : POL_DEPTH_FAST;
  if (d < 0) return kv_err_set(err, KV_EINVAL, "ask: unknown depth '%s' (fast, think, think-max)", depth);
  pol_file files[DMN_GATE_MAX_FILES];
  pol_file_origin origins[DMN_GATE_MAX_FILES];
  memset(files, 0, sizeof files);
  memset(origins, 0, sizeof origins);
  for (size_t i = 0; i < gc->n; i++) {
    files[i].path = gc->path[i];
    files[i].content = gc->text[i];
    files[i].len = gc->len[i];
    origins[i].text = gc->origin[i];
    origins[i].len = gc->origin_len[i];
    origins[i].line0 = gc->line0[i];
  }
  pol_request req;
  memset(&req, 0, sizeof req);
  req.kind = gc->kind == POL_KIND_COMPLETE ? POL_KIND_COMPLETE : POL_KIND_ASK;
  req.depth = (pol_depth)d;
  req.has_cursor = req.kind == POL_KIND_COMPLETE;
  req.cursor = gc->cursor;
  req.question = question;
  req.files = files;
  req.n_files = gc->n;
  req.origins = origins;

  gate_pol *gp = NULL;
  char warning[512];
  int rc = policy_get(g, repo, &gp, warning, sizeof warning, err);
  if (rc) return rc;
  const pol_policy *p = gp->p;
  if (warning[0]) cJSON_AddStringToObject(res, "policy_warning", warning);
  pol_decision dec;
  if ((rc = pol_decide(p, &req, &dec, err))) goto out;
  audit_ref ar = audit_get(g);
  pol_audit *audit = ar.a;
  kv_err ae;
  if (audit) pol_audit_decision(audit, repo, &req, &dec, &ae);
  cJSON_AddStringToObject(res, "tier", dec.tier);
  cJSON_AddStringToObject(res, "rule", dec.rule);
  if (dec.tier_kind == POL_TIER_REFUSE) {
    rc = kv_err_set(err, KV_EDENIED, "refused by policy rule '%s' (%s)", dec.rule,
                    pol_policy_file(p)[0] ? pol_policy_file(p) : "default policy");
  } else if (dec.tier_kind == POL_TIER_HOSTED) {
    char *owned[DMN_GATE_MAX_FILES] = {0};
    read_origins(gc, origins, owned);
    pol_payload *pl = NULL;
    if (req.kind == POL_KIND_COMPLETE && !origins[0].text) /* never the window redacted alone */
      rc = kv_err_set(err, KV_EDENIED, "the buffer around the cursor could not be read whole");
    else
      rc = pol_payload_prepare(p, &req, dec.model, gc->max_tokens > 0 ? (unsigned)gc->max_tokens : 512, &pl, err);
    for (size_t i = 0; i < gc->n; i++) free(owned[i]);
    if (rc == KV_EDENIED && req.kind == POL_KIND_COMPLETE) { /* nothing may go out: complete locally */
      const char *fb = pol_tier_fallback(p, dec.tier);
      cJSON_ReplaceItemInObject(res, "tier", cJSON_CreateString(fb));
      char note[640];
      snprintf(note, sizeof note, "hosted tier '%s' not used (%.400s); completed by local tier '%s'", dec.tier, err->msg, fb);
      cJSON_AddStringToObject(res, "fallback", note);
      rc = 0;
    } else if (!rc) {
      pol_send_result sr;
      memset(&sr, 0, sizeof sr);
      kv_err se;
      int src = pol_hosted_send(p, audit, &dec, pl, stream_cb, io, &sr, &se);
      if (src == KV_ECANCELED) {
        rc = kv_err_set(err, KV_ECANCELED, "%s canceled", req.kind == POL_KIND_COMPLETE ? "complete" : "ask");
      } else if (src == 0 && !sr.fallback) {
        *answered = 1;
        cJSON_AddStringToObject(res, "model", dec.model); /* the hosted tier's model answered */
        cJSON_AddNumberToObject(res, "redactions", (double)pl->redactions.total);
        cJSON_AddNumberToObject(res, "stripped_files", (double)pl->n_stripped);
      } else if (req.kind == POL_KIND_COMPLETE && sr.tokens_streamed > 0) {
        /* the editor already shows the hosted pieces: a local completion
         * from the cursor would not continue them; keep what came */
        *answered = 1;
        cJSON_AddStringToObject(res, "model", dec.model);
        cJSON_AddStringToObject(res, "note", sr.note[0] ? sr.note : se.msg);
      } else {
        /* answer locally and say so */
        cJSON_ReplaceItemInObject(res, "tier", cJSON_CreateString(sr.fallback_tier[0] ? sr.fallback_tier : "flash"));
        cJSON_AddStringToObject(res, "fallback", sr.note[0] ? sr.note : se.msg);
      }
      pol_payload_free(pl);
    }
  }
  audit_put(g, ar);
out:
  policy_put(g, gp);
  return rc;
}

/* ---------------------------------------------------------- policy.explain */

int dmn_policy_explain(const dmn_request *r, cJSON **result, kv_err *err) {
  const cJSON *params = r->params;
  const char *dir = dmn_param_str(params, "repo", 0);
  char abs[1024];
  if (!dir) {
    if (dmn_repos_resolve(dmn_server_repos(r->srv), NULL, abs, sizeof abs, err) == 0) dir = abs;
    else return kv_err_set(err, IPC_ERR_PARAMS, "policy.explain: param 'repo' (a project directory) is required");
  }
  const char *kind = dmn_param_str(params, "kind", 1);
  const char *depth = dmn_param_str(params, "depth", 2);
  pol_request req;
  memset(&req, 0, sizeof req);
  int k = kind ? pol_kind_parse(kind) : POL_KIND_ASK;
  int d = depth ? pol_depth_parse(depth) : POL_DEPTH_FAST;
  if (k < 0) return kv_err_set(err, IPC_ERR_PARAMS, "policy.explain: unknown kind '%s'", kind);
  if (d < 0) return kv_err_set(err, IPC_ERR_PARAMS, "policy.explain: unknown depth '%s'", depth);
  req.kind = (pol_kind)k;
  req.depth = (pol_depth)d;
  req.question = dmn_param_str(params, "question", 3);
  const char *file = dmn_param_str(params, "file", 4);
  pol_file pf;
  char *content = NULL;
  if (file) {
    size_t len;
    kv_err fe;
    memset(&pf, 0, sizeof pf);
    pf.path = file;
    if (kv_read_file(file, 16 << 20, &content, &len, &fe) == 0) {
      pf.content = content;
      pf.len = len;
    }
    req.files = &pf;
    req.n_files = 1;
  }
  pol_policy *p;
  int rc = pol_policy_open(&p, dir, err);
  if (rc) {
    free(content);
    return rc;
  }
  char *out = NULL;
  rc = pol_explain(p, &req, 1, &out, err);
  pol_policy_free(p);
  free(content);
  if (rc) return rc;
  cJSON *o = cJSON_Parse(out);
  if (!o) {
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "text", out);
  }
  free(out);
  *result = o;
  return 0;
}
