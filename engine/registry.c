/*
 * registry.c — the models registry: the GGUF files the user registered with
 * `kvasir models add`, by name, so that config.yaml's local tiers can say
 * `model: NAME` and `kvasir models list` / the daemon's `models.list` can
 * show them. Adding a file checks it first: it must open as GGUF, its
 * general.architecture must have a row in the architecture table (arch.c;
 * otherwise the error names it and the supported ones), and its sha256 and
 * size are computed and stored.
 *
 * The file, $XDG_DATA_HOME/kvasir/models.tsv (format version 1), is text,
 * one record a line, fields separated by one TAB:
 *
 *   kvasir-models<TAB>1                                  (header, line 1)
 *   <name><TAB><sha256 hex><TAB><size bytes><TAB><arch><TAB><absolute path>
 *
 * Names are 1-63 characters of [A-Za-z0-9._+-], not starting with '.' or
 * '-'; a path holds no TAB or newline. Lines are in registration order.
 *
 * Invariants: writers take an exclusive flock on <file>.lock, read the
 * current file, write <file>.tmp and rename it into place, so readers
 * (which take no lock) see the old or the new file whole and two concurrent
 * `models add` never lose one another's entry. A malformed file is an
 * error naming file:line, never silently dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "engine/engine.h"

#define REG_MAGIC "kvasir-models"
#define REG_VERSION 1
#define REG_MAX_BYTES (4u << 20)

int eng_registry_path(char *buf, size_t n) {
  char dir[4000];
  if (kv_xdg_dir(dir, sizeof dir, "data")) return KV_ELIMIT;
  return snprintf(buf, n, "%s/models.tsv", dir) < (int)n ? 0 : KV_ELIMIT;
}

static int valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > 63 || s[0] == '.' || s[0] == '-') return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
          c == '+' || c == '-'))
      return 0;
  }
  return 1;
}

void eng_registry_free(eng_registry *r) {
  free(r->v);
  memset(r, 0, sizeof *r);
}

const eng_reg_entry *eng_registry_find(const eng_registry *r, const char *name) {
  for (size_t i = 0; i < r->n; i++)
    if (!strcmp(r->v[i].name, name)) return &r->v[i];
  return NULL;
}

const eng_reg_entry *eng_registry_find_path(const eng_registry *r, const char *abs_path) {
  for (size_t i = 0; i < r->n; i++)
    if (!strcmp(r->v[i].path, abs_path)) return &r->v[i];
  return NULL;
}

/* Splits line into exactly n TAB-separated fields (in place). */
static int split(char *line, char **f, int n) {
  int k = 0;
  f[k++] = line;
  for (char *p = line; *p; p++)
    if (*p == '\t') {
      if (k == n) return 0;
      *p = 0;
      f[k++] = p + 1;
    }
  return k == n;
}

static int parse(eng_registry *r, char *buf, const char *file, kv_err *err) {
  int lineno = 0;
  char *save = NULL;
  for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    lineno++;
    char *f[5];
    if (lineno == 1) {
      if (!split(line, f, 2) || strcmp(f[0], REG_MAGIC))
        return kv_err_set(err, KV_EFORMAT, "%s:1: not a kvasir models registry (header '%s<TAB>%d' expected)", file,
                          REG_MAGIC, REG_VERSION);
      if (atoi(f[1]) != REG_VERSION)
        return kv_err_set(err, KV_EFORMAT, "%s:1: registry version %s; this kvasir reads version %d", file, f[1],
                          REG_VERSION);
      continue;
    }
    if (!split(line, f, 5))
      return kv_err_set(err, KV_EFORMAT, "%s:%d: expected 5 TAB-separated fields (name, sha256, size, arch, path)",
                        file, lineno);
    char *end;
    errno = 0;
    unsigned long long size = strtoull(f[2], &end, 10);
    if (!valid_name(f[0]) || strlen(f[1]) != 64 || errno || *end || !f[2][0] || strlen(f[3]) >= 32 ||
        f[4][0] != '/' || strlen(f[4]) >= 4096)
      return kv_err_set(err, KV_EFORMAT, "%s:%d: malformed entry '%.64s'", file, lineno, f[0]);
    if (eng_registry_find(r, f[0]))
      return kv_err_set(err, KV_EFORMAT, "%s:%d: model name '%s' given twice", file, lineno, f[0]);
    if (KV_GROW(r->v, r->cap, r->n + 1)) return kv_err_set(err, KV_ENOMEM, "%s: out of memory", file);
    eng_reg_entry *e = &r->v[r->n++];
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", f[0]);
    snprintf(e->sha256, sizeof e->sha256, "%s", f[1]);
    e->size = size;
    snprintf(e->arch, sizeof e->arch, "%s", f[3]);
    snprintf(e->path, sizeof e->path, "%s", f[4]);
  }
  if (lineno == 0) return kv_err_set(err, KV_EFORMAT, "%s:1: empty file (header expected)", file);
  return 0;
}

int eng_registry_load(eng_registry *r, const char *file, kv_err *err) {
  memset(r, 0, sizeof *r);
  char def[4096];
  if (!file) {
    if (eng_registry_path(def, sizeof def)) return kv_err_set(err, KV_ELIMIT, "models registry: path too long");
    file = def;
  }
  struct stat st;
  if (stat(file, &st) != 0)
    return errno == ENOENT ? 0 : kv_err_set(err, KV_EIO, "%s: %s", file, strerror(errno));
  char *buf = NULL;
  size_t len = 0;
  int rc = kv_read_file(file, REG_MAX_BYTES, &buf, &len, err);
  if (rc) return rc;
  rc = parse(r, buf, file, err);
  free(buf);
  if (rc) eng_registry_free(r);
  return rc;
}

/* sha256 of the whole file, hex. */
static int file_sha256(const char *path, char hex[65], uint64_t *size, kv_err *err) {
  if (sodium_init() < 0) return kv_err_set(err, KV_ECRYPTO, "libsodium failed to initialize");
  FILE *f = fopen(path, "rb");
  if (!f) return kv_err_set(err, KV_EIO, "%s: %s", path, strerror(errno));
  crypto_hash_sha256_state s;
  crypto_hash_sha256_init(&s);
  unsigned char *buf = malloc(1 << 20);
  if (!buf) {
    fclose(f);
    return kv_err_set(err, KV_ENOMEM, "out of memory");
  }
  size_t n;
  *size = 0;
  while ((n = fread(buf, 1, 1 << 20, f)) > 0) {
    crypto_hash_sha256_update(&s, buf, n);
    *size += n;
  }
  int bad = ferror(f);
  fclose(f);
  free(buf);
  if (bad) return kv_err_set(err, KV_EIO, "%s: read error", path);
  unsigned char d[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&s, d);
  sodium_bin2hex(hex, 65, d, sizeof d);
  return 0;
}

/* Opens the GGUF and checks its architecture (the model's own check, without
 * building the model). */
static int check_gguf(const char *path, char arch[32], kv_err *err) {
  eng_gguf *g;
  int rc = eng_gguf_open(&g, path, err);
  if (rc) return rc;
  eng_str s;
  rc = eng_gguf_get_str(g, "general.architecture", &s, err);
  if (!rc) {
    snprintf(arch, 32, "%.*s", (int)(s.n < 31 ? s.n : 31), s.p);
    if (!eng_arch_supported(arch))
      rc = kv_err_set(err, KV_EUNSUPPORTED, "%s: architecture '%s' is not supported (supported: %s)", path, arch,
                      eng_arch_list());
  }
  eng_gguf_free(g);
  return rc;
}

static int write_file(const char *file, const eng_registry *r, kv_err *err) {
  char tmp[4200];
  snprintf(tmp, sizeof tmp, "%s.tmp", file);
  FILE *f = fopen(tmp, "w");
  if (!f) return kv_err_set(err, KV_EIO, "%s: %s", tmp, strerror(errno));
  fprintf(f, "%s\t%d\n", REG_MAGIC, REG_VERSION);
  for (size_t i = 0; i < r->n; i++) {
    const eng_reg_entry *e = &r->v[i];
    fprintf(f, "%s\t%s\t%llu\t%s\t%s\n", e->name, e->sha256, (unsigned long long)e->size, e->arch, e->path);
  }
  int bad = ferror(f);
  if (fflush(f) || fsync(fileno(f))) bad = 1;
  if (fclose(f)) bad = 1;
  if (bad || rename(tmp, file)) {
    int e = errno;
    unlink(tmp);
    return kv_err_set(err, KV_EIO, "%s: %s", file, strerror(e));
  }
  return 0;
}

/* Locks the registry for a read-modify-write; returns the lock fd or < 0. */
static int lock_registry(const char *file, kv_err *err) {
  char dir[4096], lk[4200];
  snprintf(dir, sizeof dir, "%s", file);
  char *slash = strrchr(dir, '/');
  if (slash && slash != dir) {
    *slash = 0;
    if (kv_mkdirs(dir, 0700, err)) return -1;
  }
  snprintf(lk, sizeof lk, "%s.lock", file);
  int fd = open(lk, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0 || flock(fd, LOCK_EX)) {
    kv_err_set(err, KV_EIO, "%s: %s", lk, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

int eng_registry_add(const char *file, const char *path, const char *name, eng_reg_entry *out, kv_err *err) {
  char def[4096], abs[PATH_MAX];
  if (!file) {
    if (eng_registry_path(def, sizeof def)) return kv_err_set(err, KV_ELIMIT, "models registry: path too long");
    file = def;
  }
  if (!realpath(path, abs)) return kv_err_set(err, KV_EIO, "%s: %s", path, strerror(errno));
  if (strchr(abs, '\t') || strchr(abs, '\n'))
    return kv_err_set(err, KV_EINVAL, "%s: a path with a TAB or a newline cannot be registered", abs);
  eng_reg_entry e;
  memset(&e, 0, sizeof e);
  if (name) {
    snprintf(e.name, sizeof e.name, "%s", name);
  } else {
    const char *base = strrchr(abs, '/') + 1;
    size_t bl = strlen(base);
    if (bl > 5 && !strcasecmp(base + bl - 5, ".gguf")) bl -= 5;
    snprintf(e.name, sizeof e.name, "%.*s", (int)(bl < 63 ? bl : 63), base);
  }
  if (!valid_name(e.name) || (name && strlen(name) > 63))
    return kv_err_set(err, KV_EINVAL,
                      "'%s' is not a valid model name (1-63 of A-Z a-z 0-9 . _ + -, not starting with . or -): "
                      "give one with --name",
                      name ? name : e.name);
  int rc = check_gguf(abs, e.arch, err);
  if (!rc) rc = file_sha256(abs, e.sha256, &e.size, err);
  if (rc) return rc;
  snprintf(e.path, sizeof e.path, "%s", abs);
  int fd = lock_registry(file, err);
  if (fd < 0) return KV_EIO;
  eng_registry r;
  rc = eng_registry_load(&r, file, err);
  if (!rc && eng_registry_find(&r, e.name))
    rc = kv_err_set(err, KV_EINVAL, "a model named '%s' is already registered (%s): remove it first or use --name",
                    e.name, eng_registry_find(&r, e.name)->path);
  if (!rc && KV_PUSH(r.v, r.n, r.cap, e)) rc = kv_err_set(err, KV_ENOMEM, "out of memory");
  if (!rc) rc = write_file(file, &r, err);
  eng_registry_free(&r);
  close(fd);
  if (!rc && out) *out = e;
  return rc;
}

int eng_registry_remove(const char *file, const char *name, kv_err *err) {
  char def[4096];
  if (!file) {
    if (eng_registry_path(def, sizeof def)) return kv_err_set(err, KV_ELIMIT, "models registry: path too long");
    file = def;
  }
  int fd = lock_registry(file, err);
  if (fd < 0) return KV_EIO;
  eng_registry r;
  int rc = eng_registry_load(&r, file, err);
  size_t i = 0;
  while (!rc && i < r.n && strcmp(r.v[i].name, name)) i++;
  if (!rc && i == r.n) rc = kv_err_set(err, KV_ENOTFOUND, "no model named '%s' is registered (kvasir models list)", name);
  if (!rc) {
    memmove(&r.v[i], &r.v[i + 1], (r.n - i - 1) * sizeof *r.v);
    r.n--;
    rc = write_file(file, &r, err);
  }
  eng_registry_free(&r);
  close(fd);
  return rc;
}
