/*
 * path.c — what file a context path really names. The editor and the
 * index hand the policy path strings; a rule, never_send or label_paths
 * glob must see the file itself, not the spelling: "src/../deploy/key.txt",
 * "./deploy/key.txt", "deploy//key.txt" and a symlink src/link.txt ->
 * ../.env all name files that the globs would otherwise miss, and a path
 * (or a symlink) leading out of the repository would put a foreign file
 * under this repository's policy.
 *
 * pol_path_resolve follows every symlink (realpath), then requires the
 * result to lie under one of the registered roots (canonicalized the same
 * way) and returns the deepest such root and the path relative to it:
 * '/'-separated, without ".", ".." or empty segments. A path that does not
 * exist yet is resolved through its deepest existing ancestor (the rest is
 * appended segment by segment; ".." there can only undo a missing segment,
 * and a missing segment cannot be a symlink), so a file about to be created
 * is judged by the directory it would land in. A dangling symlink is
 * refused: where it points cannot be judged from inside the root.
 *
 * pol_path_normalize is the lexical half, for a policy without a project
 * directory (tests, buffers): it cannot see symlinks, so it refuses what it
 * cannot judge (absolute paths, ".." above the top).
 *
 * pol_request_paths applies this to a request (pol_decide, pol_payload_prepare
 * and pol_explain call it): every file's path as the globs must see it.
 *
 * Invariants: pol_path_resolve allocates nothing; every output fits its
 * buffer or the call fails with KV_ELIMIT; on any failure *out holds no
 * usable path (rel and abs are ""), so a caller that ignores the return
 * value matches nothing. The answer is as true as the filesystem at the
 * moment of the call: a caller should read the file from out->abs right
 * after resolving it, not from the path it was given.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "policy/internal.h"

/* Append one segment to an absolute canonical path held in buf (len *n). */
static int push_seg(char *buf, size_t *n, size_t cap, const char *seg, size_t sl) {
  size_t need = *n + (*n > 1 ? 1 : 0) + sl;
  if (need + 1 > cap) return -1;
  if (*n > 1) buf[(*n)++] = '/';
  memcpy(buf + *n, seg, sl);
  *n += sl;
  buf[*n] = 0;
  return 0;
}

static void pop_seg(char *buf, size_t *n) {
  char *s = strrchr(buf, '/');
  if (!s) return;
  *n = s == buf ? 1 : (size_t)(s - buf);
  buf[*n] = 0;
}

/* Canonical absolute form of the absolute path `in`, symlinks followed;
 * *exists = 1 when the whole path exists. */
static int canon(const char *in, char *out, size_t cap, int *exists, kv_err *err) {
  char tmp[PATH_MAX];
  *exists = 0;
  out[0] = 0;
  if (realpath(in, tmp)) {
    if (strlen(tmp) + 1 > cap) return kv_err_set(err, KV_ELIMIT, "%.200s: path too long", in);
    strcpy(out, tmp);
    *exists = 1;
    return 0;
  }
  if (errno != ENOENT) return kv_err_set(err, KV_EDENIED, "%.200s: cannot resolve: %s", in, strerror(errno));
  /* Walk segment by segment: realpath while the prefix exists, lexically after. */
  size_t n = 1, missing = 0; /* missing: segments appended that do not exist */
  strcpy(out, "/");
  const char *s = in;
  while (*s) {
    while (*s == '/') s++;
    size_t sl = strcspn(s, "/");
    if (!sl) break;
    if (sl == 1 && s[0] == '.') {
    } else if (sl == 2 && s[0] == '.' && s[1] == '.') {
      if (missing) missing--;
      pop_seg(out, &n);
    } else if (missing) {
      if (push_seg(out, &n, cap, s, sl)) return kv_err_set(err, KV_ELIMIT, "%.200s: path too long", in);
      missing++;
    } else {
      char cand[PATH_MAX];
      size_t cn = n;
      memcpy(cand, out, n + 1);
      if (push_seg(cand, &cn, sizeof cand, s, sl)) return kv_err_set(err, KV_ELIMIT, "%.200s: path too long", in);
      if (realpath(cand, tmp)) {
        if (strlen(tmp) + 1 > cap) return kv_err_set(err, KV_ELIMIT, "%.200s: path too long", in);
        strcpy(out, tmp);
        n = strlen(out);
      } else if (errno == ENOENT) {
        struct stat st;
        if (lstat(cand, &st) == 0) { /* it is there, so it is a symlink to nothing */
          out[0] = 0;
          return kv_err_set(err, KV_EDENIED, "%.200s: %.200s is a dangling symlink", in, cand);
        }
        if (push_seg(out, &n, cap, s, sl)) return kv_err_set(err, KV_ELIMIT, "%.200s: path too long", in);
        missing = 1;
      } else {
        int e = errno;
        out[0] = 0;
        return kv_err_set(err, KV_EDENIED, "%.200s: cannot resolve %.200s: %s", in, cand, strerror(e));
      }
    }
    s += sl;
  }
  return 0;
}

/* rel of abs under root, or NULL when abs is not root or below it. */
static const char *under(const char *abs, const char *root) {
  size_t l = strlen(root);
  if (l == 1 && root[0] == '/') return abs + 1;
  if (strncmp(abs, root, l)) return NULL;
  if (abs[l] == 0) return abs + l;
  return abs[l] == '/' ? abs + l + 1 : NULL;
}

int pol_path_resolve(const char *const *roots, size_t nroots, const char *path, pol_resolved *out, kv_err *err) {
  memset(out, 0, sizeof *out);
  if (!path || !path[0]) return kv_err_set(err, KV_EINVAL, "path: empty");
  if (!nroots || !roots || !roots[0] || roots[0][0] != '/')
    return kv_err_set(err, KV_EINVAL, "path %.200s: no absolute repository root to resolve it in", path);
  char full[PATH_MAX];
  int k = path[0] == '/' ? snprintf(full, sizeof full, "%s", path) : snprintf(full, sizeof full, "%s/%s", roots[0], path);
  if (k < 0 || (size_t)k >= sizeof full) return kv_err_set(err, KV_ELIMIT, "path %.200s: too long", path);
  char abs[PATH_MAX];
  int exists, rc = canon(full, abs, sizeof abs, &exists, err);
  if (rc) return rc;
  size_t best = (size_t)-1, best_len = 0;
  const char *rel = NULL;
  for (size_t i = 0; i < nroots; i++) {
    char root[PATH_MAX];
    int rex;
    kv_err re;
    if (!roots[i] || roots[i][0] != '/' || canon(roots[i], root, sizeof root, &rex, &re)) continue;
    const char *r = under(abs, root);
    if (r && (best == (size_t)-1 || strlen(root) > best_len)) best = i, best_len = strlen(root), rel = r;
  }
  if (!rel)
    return kv_err_set(err, KV_EDENIED, "path %.200s resolves to %.200s, outside the repository%s %.200s%s", path, abs,
                      nroots > 1 ? " roots (first:" : "", roots[0], nroots > 1 ? ")" : "");
  if (strlen(abs) + 1 > sizeof out->abs || strlen(rel) + 1 > sizeof out->rel)
    return kv_err_set(err, KV_ELIMIT, "path %.200s: too long", path);
  strcpy(out->abs, abs);
  strcpy(out->rel, rel);
  out->root = best;
  out->exists = exists;
  return 0;
}

int pol_path_normalize(const char *path, char *out, size_t cap, kv_err *err) {
  if (cap) out[0] = 0;
  if (!path || !path[0]) return kv_err_set(err, KV_EINVAL, "path: empty");
  if (path[0] == '/')
    return kv_err_set(err, KV_EDENIED, "path %.200s: absolute, and the policy has no project root to hold it", path);
  size_t n = 0;
  const char *s = path;
  while (*s) {
    while (*s == '/') s++;
    size_t sl = strcspn(s, "/");
    if (!sl) break;
    if (sl == 1 && s[0] == '.') {
    } else if (sl == 2 && s[0] == '.' && s[1] == '.') {
      if (!n) {
        out[0] = 0;
        return kv_err_set(err, KV_EDENIED, "path %.200s: leads above the project root", path);
      }
      char *sl2 = memchr(out, '/', n) ? strrchr(out, '/') : NULL;
      n = sl2 ? (size_t)(sl2 - out) : 0;
      out[n] = 0;
    } else {
      if (n + (n ? 1 : 0) + sl + 1 > cap) {
        out[0] = 0;
        return kv_err_set(err, KV_ELIMIT, "path %.200s: too long", path);
      }
      if (n) out[n++] = '/';
      memcpy(out + n, s, sl);
      n += sl;
      out[n] = 0;
    }
    s += sl;
  }
  return 0;
}

int pol_request_paths(const pol_policy *p, const pol_request *req, pol_paths *out, kv_err *err) {
  out->rel = NULL, out->n = 0;
  if (!req->n_files) return 0;
  out->rel = calloc(req->n_files, sizeof *out->rel);
  if (!out->rel) return kv_err_set(err, KV_ENOMEM, "out of memory");
  out->n = req->n_files;
  const char *root = p->project;
  for (size_t i = 0; i < req->n_files; i++) {
    const char *given = req->files[i].path;
    int rc;
    char rel[PATH_MAX];
    if (!given || !given[0]) {
      rc = kv_err_set(err, KV_EINVAL, "context file %zu has no path", i);
    } else if (root[0] == '/') {
      pol_resolved r;
      rc = pol_path_resolve(&root, 1, given, &r, err);
      if (!rc) snprintf(rel, sizeof rel, "%s", r.rel);
    } else {
      rc = pol_path_normalize(given, rel, sizeof rel, err);
    }
    if (!rc && !(out->rel[i] = pol_strdup(rel))) rc = kv_err_set(err, KV_ENOMEM, "out of memory");
    if (rc) {
      pol_paths_free(out);
      return rc;
    }
  }
  return 0;
}

void pol_paths_free(pol_paths *ps) {
  for (size_t i = 0; ps->rel && i < ps->n; i++) free(ps->rel[i]);
  free(ps->rel);
  ps->rel = NULL, ps->n = 0;
}
