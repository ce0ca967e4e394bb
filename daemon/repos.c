/*
 * repos.c — the registry of repositories the daemon indexes, persisted in
 * $XDG_DATA_HOME/kvasir/repos.json ({"version":1,"repos":[{"path":...}]}),
 * and the watchers that re-index a repository when HEAD moves (events on
 * .git/HEAD, ORIG_HEAD, COMMIT_EDITMSG, packed-refs, ...) or a file is saved
 * (events in the worktree's directories, up to MAX_WATCH of them, depth
 * MAX_DEPTH, hidden and build directories skipped: inotify is not
 * recursive). Events are debounced (DEBOUNCE_MS) into one background sync.
 *
 * The registry does not sync anything itself: when a repo needs a sync (it
 * was loaded, or its watchers fired) it calls the dmn_repo_changed_fn it was
 * given (index_jobs.c queues the job), so the registry sits below the index
 * jobs that use it.
 *
 * Invariants: the list is guarded by a mutex (workers read it to resolve a
 * repo for an ask); watchers and timers belong to the loop thread and are
 * closed with callbacks that free them; repos.json is replaced atomically.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/internal.h"

#define MAX_WATCH 128
#define MAX_DEPTH 3
#define DEBOUNCE_MS 400

typedef struct repo repo;
typedef struct watch {
  uv_fs_event_t ev;
  repo *r;
  int in_git;
} watch;

struct repo {
  char path[1024];
  dmn_repos *owner;
  watch *w[MAX_WATCH];
  int n_watch;
  uv_timer_t *debounce;
  double last_sync;
  uint64_t syncs;
  cJSON *last_stats;
  repo *next;
};

struct dmn_repos {
  dmn_server *srv;
  dmn_repo_changed_fn changed;
  char file[2100];
  pthread_mutex_t mu;
  repo *list;
  int n;
};

/* Handles are the first member of their allocation. */
static void on_handle_free(uv_handle_t *h) { free(h); }

static void on_debounce(uv_timer_t *t) {
  repo *r = t->data;
  dmn_log(r->owner->srv, DMN_INFO, "repo.changed", "%s changed: queueing a sync", r->path);
  r->owner->changed(r->owner->srv, r->path);
}

static int interesting(const char *name, int in_git) {
  if (!name) return 1;
  if (in_git) {
    static const char *const names[] = {"HEAD", "ORIG_HEAD", "COMMIT_EDITMSG", "FETCH_HEAD", "MERGE_HEAD", "packed-refs"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
      if (!strcmp(name, names[i])) return 1;
    return 0;
  }
  size_t n = strlen(name);
  if (name[0] == '.' || (n && name[n - 1] == '~') || !strcmp(name, "4913")) return 0;
  if (n > 4 && (!strcmp(name + n - 4, ".swp") || !strcmp(name + n - 4, ".swx"))) return 0;
  return 1;
}

static void on_fs_event(uv_fs_event_t *h, const char *filename, int events, int status) {
  watch *w = h->data;
  if (status < 0 || !interesting(filename, w->in_git)) return;
  repo *r = w->r;
  if (r->debounce) uv_timer_start(r->debounce, on_debounce, DEBOUNCE_MS, 0);
}

static void add_watch(repo *r, const char *dir, int in_git) {
  if (r->n_watch >= MAX_WATCH) return;
  watch *w = calloc(1, sizeof *w);
  if (!w) return;
  w->r = r;
  w->in_git = in_git;
  uv_fs_event_init(dmn_server_loop(r->owner->srv), &w->ev);
  w->ev.data = w;
  if (uv_fs_event_start(&w->ev, on_fs_event, dir, 0) != 0) {
    uv_close((uv_handle_t *)&w->ev, on_handle_free);
    return;
  }
  r->w[r->n_watch++] = w;
}

static int skip_dir(const char *name) {
  return name[0] == '.' || !strncmp(name, "build", 5) || !strcmp(name, "node_modules") || !strcmp(name, "target") ||
         !strcmp(name, "vendor") || !strcmp(name, "third_party");
}

static void watch_tree(repo *r, const char *dir, int depth) {
  add_watch(r, dir, 0);
  if (depth >= MAX_DEPTH) return;
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) && r->n_watch < MAX_WATCH) {
    if (skip_dir(e->d_name)) continue;
    char sub[PATH_MAX];
    if (snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name) >= (int)sizeof sub) continue;
    struct stat st;
    if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)) watch_tree(r, sub, depth + 1);
  }
  closedir(d);
}

static void start_watch(dmn_repos *rs, repo *r) {
  if (!dmn_server_config(rs->srv)->watch) return;
  r->debounce = calloc(1, sizeof *r->debounce);
  if (!r->debounce) return;
  uv_timer_init(dmn_server_loop(rs->srv), r->debounce);
  r->debounce->data = r;
  char git[1100];
  snprintf(git, sizeof git, "%s/.git", r->path);
  struct stat st;
  if (stat(git, &st) == 0 && S_ISDIR(st.st_mode)) add_watch(r, git, 1);
  watch_tree(r, r->path, 0);
  dmn_log(rs->srv, DMN_DEBUG, "repo.watch", "%s: %d directories watched", r->path, r->n_watch);
}

static void stop_watch(repo *r) {
  for (int i = 0; i < r->n_watch; i++) {
    r->w[i]->ev.data = r->w[i];
    uv_fs_event_stop(&r->w[i]->ev);
    uv_close((uv_handle_t *)&r->w[i]->ev, on_handle_free);
  }
  r->n_watch = 0;
  if (r->debounce) {
    uv_timer_stop(r->debounce);
    uv_close((uv_handle_t *)r->debounce, on_handle_free);
    r->debounce = NULL;
  }
}

static int save(dmn_repos *rs, kv_err *err) {
  cJSON *root = cJSON_CreateObject();
  cJSON_AddNumberToObject(root, "version", 1);
  cJSON *arr = cJSON_AddArrayToObject(root, "repos");
  pthread_mutex_lock(&rs->mu);
  for (repo *r = rs->list; r; r = r->next) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", r->path);
    cJSON_AddItemToArray(arr, o);
  }
  pthread_mutex_unlock(&rs->mu);
  char *text = cJSON_Print(root);
  cJSON_Delete(root);
  if (!text) return kv_err_set(err, KV_ENOMEM, "repos.json: out of memory");
  char tmp[2200];
  snprintf(tmp, sizeof tmp, "%s.tmp", rs->file);
  FILE *f = fopen(tmp, "w");
  int ok = f && fputs(text, f) >= 0;
  if (f && fclose(f) != 0) ok = 0;
  free(text);
  if (!ok || rename(tmp, rs->file) != 0)
    return kv_err_set(err, KV_EIO, "%s: cannot write: %s", rs->file, strerror(errno));
  return 0;
}

static repo *find(dmn_repos *rs, const char *abs) {
  for (repo *r = rs->list; r; r = r->next)
    if (!strcmp(r->path, abs)) return r;
  return NULL;
}

/* Loop thread. Adds abs (already canonical) without saving. */
static repo *insert(dmn_repos *rs, const char *abs) {
  repo *r = find(rs, abs);
  if (r) return r;
  r = calloc(1, sizeof *r);
  if (!r) return NULL;
  snprintf(r->path, sizeof r->path, "%s", abs);
  r->owner = rs;
  pthread_mutex_lock(&rs->mu);
  r->next = rs->list;
  rs->list = r;
  rs->n++;
  pthread_mutex_unlock(&rs->mu);
  start_watch(rs, r);
  return r;
}

static int load(dmn_repos *rs, kv_err *err) {
  char *text;
  size_t len;
  int rc = kv_read_file(rs->file, 1 << 20, &text, &len, err);
  if (rc == KV_ENOTFOUND || (rc && access(rs->file, F_OK) != 0)) return 0;
  if (rc) return rc;
  cJSON *root = cJSON_Parse(text);
  free(text);
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "repos");
  if (!cJSON_IsArray(arr)) {
    cJSON_Delete(root);
    return kv_err_set(err, KV_EFORMAT, "%s: field 'repos' is missing or not an array", rs->file);
  }
  int i = 0;
  const cJSON *o;
  cJSON_ArrayForEach(o, arr) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "path");
    if (!cJSON_IsString(p) || p->valuestring[0] != '/' || strlen(p->valuestring) >= 1024) {
      dmn_log(rs->srv, DMN_WARN, "repo.load", "%s: repos[%d].path is not an absolute path; skipped", rs->file, i);
    } else if (insert(rs, p->valuestring)) {
      rs->changed(rs->srv, p->valuestring);
    }
    i++;
  }
  cJSON_Delete(root);
  return 0;
}

int dmn_repos_new(dmn_repos **out, dmn_server *s, const char *data_dir, dmn_repo_changed_fn changed, kv_err *err) {
  dmn_repos *rs = calloc(1, sizeof *rs);
  if (!rs) return kv_err_set(err, KV_ENOMEM, "repos: out of memory");
  rs->srv = s;
  rs->changed = changed;
  pthread_mutex_init(&rs->mu, NULL);
  snprintf(rs->file, sizeof rs->file, "%s/repos.json", data_dir);
  int rc = kv_mkdirs(data_dir, 0700, err);
  if (!rc) rc = load(rs, err);
  if (rc) {
    dmn_repos_close_watchers(rs);
    dmn_repos_free(rs);
    return rc;
  }
  *out = rs;
  return 0;
}

void dmn_repos_close_watchers(dmn_repos *rs) {
  if (!rs) return;
  for (repo *r = rs->list; r; r = r->next) stop_watch(r);
}

void dmn_repos_free(dmn_repos *rs) {
  if (!rs) return;
  repo *r = rs->list;
  while (r) {
    repo *n = r->next;
    cJSON_Delete(r->last_stats);
    free(r);
    r = n;
  }
  pthread_mutex_destroy(&rs->mu);
  free(rs);
}

int dmn_repos_count(dmn_repos *rs) {
  pthread_mutex_lock(&rs->mu);
  int n = rs->n;
  pthread_mutex_unlock(&rs->mu);
  return n;
}

cJSON *dmn_repos_list(dmn_repos *rs) {
  cJSON *arr = cJSON_CreateArray();
  if (!arr) return NULL;
  pthread_mutex_lock(&rs->mu);
  for (repo *r = rs->list; r; r = r->next) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "path", r->path);
    cJSON_AddNumberToObject(o, "syncs", (double)r->syncs);
    cJSON_AddNumberToObject(o, "watched_dirs", r->n_watch);
    if (r->syncs) cJSON_AddNumberToObject(o, "last_sync_age_s", kv_now() - r->last_sync);
    if (r->last_stats) cJSON_AddItemToObject(o, "index", cJSON_Duplicate(r->last_stats, 1));
    cJSON_AddItemToArray(arr, o);
  }
  pthread_mutex_unlock(&rs->mu);
  return arr;
}

static int canonical(const char *path, char *abs, size_t n, kv_err *err) {
  char buf[PATH_MAX];
  if (!realpath(path, buf)) return kv_err_set(err, KV_ENOTFOUND, "%s: %s", path, strerror(errno));
  if (strlen(buf) >= n || strlen(buf) >= 1024) return kv_err_set(err, KV_ELIMIT, "%s: path too long", path);
  strcpy(abs, buf);
  return 0;
}

int dmn_repos_add(dmn_repos *rs, const char *path, char *abs, size_t n, kv_err *err) {
  int rc = canonical(path, abs, n, err);
  if (rc) return rc;
  struct stat st;
  if (stat(abs, &st) != 0 || !S_ISDIR(st.st_mode)) return kv_err_set(err, KV_EINVAL, "%s: not a directory", abs);
  char git[1100];
  snprintf(git, sizeof git, "%s/.git", abs);
  if (access(git, F_OK) != 0) {
    snprintf(git, sizeof git, "%s/HEAD", abs); /* a bare repository */
    if (access(git, F_OK) != 0) return kv_err_set(err, KV_EINVAL, "%s: not a git repository (no .git)", abs);
  }
  int existed = find(rs, abs) != NULL;
  if (!insert(rs, abs)) return kv_err_set(err, KV_ENOMEM, "repos: out of memory");
  if (!existed) {
    dmn_log(rs->srv, DMN_INFO, "repo.add", "%s registered", abs);
    return save(rs, err);
  }
  return 0;
}

int dmn_repos_remove(dmn_repos *rs, const char *path, kv_err *err) {
  char abs[1024];
  if (canonical(path, abs, sizeof abs, err)) snprintf(abs, sizeof abs, "%s", path); /* may be gone from disk */
  pthread_mutex_lock(&rs->mu);
  repo **pp = &rs->list;
  while (*pp && strcmp((*pp)->path, abs)) pp = &(*pp)->next;
  repo *r = *pp;
  if (r) {
    *pp = r->next;
    rs->n--;
  }
  pthread_mutex_unlock(&rs->mu);
  if (!r) return kv_err_set(err, KV_ENOTFOUND, "%s: not a registered repository (see `kvasir repo list`)", abs);
  stop_watch(r);
  cJSON_Delete(r->last_stats);
  free(r);
  dmn_log(rs->srv, DMN_INFO, "repo.remove", "%s unregistered", abs);
  return save(rs, err);
}

int dmn_repos_resolve(dmn_repos *rs, const char *path, char *abs, size_t n, kv_err *err) {
  char want[1024] = "";
  if (path && canonical(path, want, sizeof want, err)) return KV_ENOTFOUND;
  int rc = 0;
  size_t best = 0;
  pthread_mutex_lock(&rs->mu);
  if (!path) {
    if (rs->n == 1) snprintf(abs, n, "%s", rs->list->path);
    else if (rs->n == 0) rc = kv_err_set(err, KV_ENOTFOUND, "no repository is registered; run `kvasir repo add PATH`");
    else rc = kv_err_set(err, KV_EINVAL, "%d repositories are registered; say which one (param 'repo')", rs->n);
  } else {
    for (repo *r = rs->list; r; r = r->next) {
      size_t l = strlen(r->path);
      if (l > best && !strncmp(want, r->path, l) && (want[l] == 0 || want[l] == '/')) {
        best = l;
        snprintf(abs, n, "%s", r->path);
      }
    }
    if (!best) rc = kv_err_set(err, KV_ENOTFOUND, "%s is not inside a registered repository; run `kvasir repo add`", want);
  }
  pthread_mutex_unlock(&rs->mu);
  return rc;
}

int dmn_repos_reload(dmn_repos *rs, kv_err *err) {
  /* Re-read the registry: repos added by hand are picked up; removals too. */
  char *text;
  size_t len;
  if (kv_read_file(rs->file, 1 << 20, &text, &len, err)) return 0;
  cJSON *root = cJSON_Parse(text);
  free(text);
  const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "repos");
  if (!cJSON_IsArray(arr)) {
    cJSON_Delete(root);
    return kv_err_set(err, KV_EFORMAT, "%s: field 'repos' is missing or not an array", rs->file);
  }
  /* remove repos no longer listed */
  for (repo *r = rs->list, *next; r; r = next) {
    next = r->next;
    int listed = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, arr) {
      const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "path");
      if (cJSON_IsString(p) && !strcmp(p->valuestring, r->path)) listed = 1;
    }
    if (!listed) {
      kv_err e;
      dmn_repos_remove(rs, r->path, &e);
    }
  }
  cJSON_Delete(root);
  return load(rs, err);
}

uint64_t dmn_repos_syncs(dmn_repos *rs, const char *abs) {
  pthread_mutex_lock(&rs->mu);
  repo *r = find(rs, abs);
  uint64_t n = r ? r->syncs : 0;
  pthread_mutex_unlock(&rs->mu);
  return n;
}

void dmn_repos_synced(dmn_repos *rs, const char *abs, const cJSON *stats) {
  pthread_mutex_lock(&rs->mu);
  repo *r = find(rs, abs);
  if (r) {
    r->syncs++;
    r->last_sync = kv_now();
    cJSON_Delete(r->last_stats);
    r->last_stats = stats ? cJSON_Duplicate(stats, 1) : NULL;
  }
  pthread_mutex_unlock(&rs->mu);
}
