/*
 * internal.h — private: the idx_index handle shared by indexer.c (open,
 * files, read_lines), sync.c (the writer), search.c and repomap.c (readers).
 *
 * Locking: `wlock` serialises syncs (one writer); `rlock` guards the reader
 * connection and the reader git handle, so read calls from several threads
 * queue on it while a sync runs on the writer connection.
 */
#ifndef KVASIR_INDEXER_INTERNAL_H
#define KVASIR_INDEXER_INTERNAL_H

#include "indexer/indexer.h"
#include "store_internal.h"

#include <git2.h>
#include <pthread.h>
#include <stdatomic.h>

struct idx_index {
  char *root;       /* working directory (with trailing '/'), or git dir when bare */
  char *gitdir;
  char db_path[4096];
  int bare;
  idx_options opt;
  git_repository *repo;   /* writer's */
  git_repository *rrepo;  /* readers' (under rlock) */
  idx_store *w, *r;
  struct idx_ranker *ranker;  /* search's second stage on r (under rlock), made on first use */
  int ranker_failed;
  idx_langset *langs;
  pthread_mutex_t wlock, rlock;
  atomic_uint_fast64_t parsed;
};

/* Small helpers shared by the readers. */
char *idx_strdup0(const char *s);   /* strdup of s, or of "" when s is NULL */
/* A test file (tests/, test_*.py, *.spec.js, conftest.py, ...; indexer.c). */
int idx_is_test_path(const char *path);
/* A file of declarations: .h, .hpp, .d.ts, .pyi ... (indexer.c). */
int idx_is_decl_path(const char *path);

/* An open-addressing set of strings (paths, names). */
typedef struct idx_strset {
  char **v;
  size_t cap, n;
} idx_strset;
int idx_strset_add(idx_strset *s, const char *k); /* 1 added, 0 present, <0 ENOMEM */
int idx_strset_has(const idx_strset *s, const char *k);
void idx_strset_free(idx_strset *s);

#endif
