/*
 * cmd_daemon.c — the daemon's clients: `kvasir daemon` (start kvasird),
 * `status`, `repo add|list|remove|sync`, `ask`, `bridge` (stdio <-> the
 * encrypted socket, for Neovim) and `shutdown`. All talk to the daemon
 * through the ipc client (ipc/ipc.h); none of them reads the index itself.
 * Exit codes: 0 ok, 1 failure (including "daemon not running"), 2 usage.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>

#include "cli/cli.h"
#include "ipc/ipc.h"

/* ------------------------------------------------------------------ helpers */

static ipc_client *connect_or_explain(const char *cmd) {
  ipc_client *c;
  kv_err e;
  int rc = ipc_client_connect(&c, getenv("KVASIR_SOCKET"), NULL, &e);
  if (rc == 0) return c;
  if (rc == KV_ENOTFOUND) /* e.msg: "the daemon is not running (...); start it with `kvasir daemon`" */
    fprintf(stderr, "kvasir %s: %s\n", cmd, e.msg);
  else
    fprintf(stderr, "kvasir %s: cannot talk to the daemon: %s\n", cmd, e.msg);
  return NULL;
}

static void print_json(const cJSON *v) {
  char *s = cJSON_Print(v);
  if (s) {
    puts(s);
    free(s);
  }
}

/* Calls method and prints an error; returns 0/1 as an exit code. */
static int call_simple(const char *cmd, const char *method, const cJSON *params, cJSON **result) {
  ipc_client *c = connect_or_explain(cmd);
  if (!c) return 1;
  kv_err e;
  int rc = ipc_client_call(c, method, params, NULL, NULL, 0, result, &e);
  ipc_client_close(c);
  if (rc) {
    fprintf(stderr, "kvasir %s: %s\n", cmd, e.msg);
    return 1;
  }
  return 0;
}

static double num(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *str(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
  return cJSON_IsString(v) ? v->valuestring : "";
}

/* ------------------------------------------------------------------- daemon */

/* kvasird next to this binary (installed), in ../daemon/ (build tree), or on PATH. */
static void find_kvasird(char *out, size_t n) {
  char self[PATH_MAX];
  ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
  if (l > 0) {
    self[l] = 0;
    char *slash = strrchr(self, '/');
    if (slash) {
      *slash = 0;
      int w = snprintf(out, n, "%s/kvasird", self);
      if (w > 0 && (size_t)w < n && access(out, X_OK) == 0) return;
      w = snprintf(out, n, "%s/../daemon/kvasird", self);
      if (w > 0 && (size_t)w < n && access(out, X_OK) == 0) return;
    }
  }
  snprintf(out, n, "kvasird");
}

int cmd_daemon(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) {
    printf("usage: kvasir daemon [--foreground] [--model PATH] [--workers N] [--no-watch] [--verbose]\n"
           "  Start kvasird. Without --foreground it detaches once its socket listens and\n"
           "  logs to $XDG_RUNTIME_DIR/kvasir/kvasird.log. Stop it with `kvasir shutdown`.\n");
    return 0;
  }
  ipc_client *c;
  kv_err e;
  if (ipc_client_connect(&c, getenv("KVASIR_SOCKET"), NULL, &e) == 0) {
    cJSON *st = NULL;
    ipc_client_call(c, "status", NULL, NULL, NULL, 5000, &st, &e);
    ipc_client_close(c);
    fprintf(stderr, "kvasir daemon: already running (pid %.0f)\n", num(st, "pid"));
    cJSON_Delete(st);
    return 0;
  }
  char exe[PATH_MAX];
  find_kvasird(exe, sizeof exe);
  char **args = calloc((size_t)argc + 1, sizeof *args);
  if (!args) return 1;
  args[0] = exe;
  for (int i = 1; i < argc; i++) args[i] = argv[i];
  execvp(exe, args);
  fprintf(stderr, "kvasir daemon: cannot run %s: %s\n", exe, strerror(errno));
  free(args);
  return 1;
}

/* ------------------------------------------------------------------- status */

int cmd_status(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) {
    printf("usage: kvasir status [--json]\n  Show the daemon's state: jobs, connections, repos, model.\n");
    return 0;
  }
  cJSON *r = NULL;
  if (call_simple("status", "status", NULL, &r)) return 1;
  if (cli_has_flag(argc, argv, "--json")) {
    print_json(r);
  } else {
    const cJSON *j = cJSON_GetObjectItem(r, "jobs"), *m = cJSON_GetObjectItem(r, "model");
    printf("kvasird %s (protocol %.0f), pid %.0f, up %.0f s\n", str(r, "version"), num(r, "protocol"), num(r, "pid"),
           num(r, "uptime_s"));
    printf("  socket       %s\n", str(r, "socket"));
    printf("  connections  %.0f open, %.0f accepted, %.0f rejected, %.0f bad frames\n", num(r, "connections"),
           num(r, "accepted"), num(r, "rejected"), num(r, "bad_frames"));
    printf("  jobs         %.0f running, %.0f queued (%.0f interactive), %.0f done, %.0f canceled\n",
           num(j, "running_interactive") + num(j, "running_background"),
           num(j, "queued_interactive") + num(j, "queued_background"), num(j, "queued_interactive"), num(j, "done"),
           num(j, "canceled"));
    printf("  repos        %.0f registered\n", num(r, "repos"));
    printf("  model        %s (%s)%s%s\n", str(m, "path")[0] ? str(m, "path") : "-", str(m, "state"),
           str(m, "error")[0] ? ": " : "", str(m, "error"));
    const cJSON *ms = cJSON_GetObjectItem(r, "models"), *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(ms, "loaded")) /* the tiers' models the daemon holds */
      printf("  %-12s %s (%s, tier %s, %.1f MiB + %.1f MiB KV)\n", e == cJSON_GetObjectItem(ms, "loaded")->child ? "loaded" : "",
             str(e, "name"), str(e, "state"), str(e, "tier"), num(e, "file_bytes") / 1048576, num(e, "kv_bytes") / 1048576);
    if (ms) printf("  memory cap   %.1f MiB (%s), %.1f MiB used\n", num(ms, "memory_cap") / 1048576,
                   str(ms, "memory_cap_source"), num(ms, "memory_used") / 1048576);
    if (str(m, "tier")[0]) printf("  last answer  tier %s, model %s\n", str(m, "tier"), str(m, "model"));
  }
  cJSON_Delete(r);
  return 0;
}

/* --------------------------------------------------------------------- repo */

typedef struct prog {
  kv_progress bar;
  int started;
} prog;

static int on_progress(void *ud, const char *method, const cJSON *params) {
  prog *p = ud;
  if (strcmp(method, "progress")) return 0;
  if (!p->started) {
    kv_progress_init(&p->bar, stderr, "indexing", (uint64_t)num(params, "total"));
    p->started = 1;
  }
  p->bar.total = (uint64_t)num(params, "total");
  kv_progress_update(&p->bar, (uint64_t)num(params, "done"), NULL);
  return 0;
}

static void print_index_stats(const cJSON *ix) {
  if (!ix) return;
  printf("  %.0f files (%.0f indexed, %.0f parsed, %.0f reused), %.0f symbols, %.0f chunks in %.2f s\n",
         num(ix, "files"), num(ix, "files_indexed"), num(ix, "blobs_parsed"), num(ix, "blobs_reused"),
         num(ix, "symbols"), num(ix, "chunks"), num(ix, "seconds"));
}

int cmd_repo(int argc, char **argv) {
  const char *sub = argc > 1 ? argv[1] : NULL;
  if (!sub || cli_has_flag(argc, argv, "--help")) {
    printf("usage: kvasir repo add PATH [--no-wait] [--json]   register and index a git repository\n"
           "       kvasir repo sync [PATH] [--no-wait] [--json] re-index now\n"
           "       kvasir repo list [--json]\n"
           "       kvasir repo remove PATH\n");
    return sub ? 0 : 2;
  }
  int json = cli_has_flag(argc, argv, "--json"), wait = !cli_has_flag(argc, argv, "--no-wait");
  const char *path = argc > 2 && argv[2][0] != '-' ? argv[2] : NULL;
  char abs[PATH_MAX];
  if (path && realpath(path, abs)) path = abs;
  cJSON *params = cJSON_CreateObject(), *r = NULL;
  if (path) cJSON_AddStringToObject(params, "path", path);
  int rc = 0;
  if (!strcmp(sub, "list")) {
    rc = call_simple("repo list", "repo.list", params, &r);
    if (!rc && json) print_json(r);
    else if (!rc) {
      const cJSON *o;
      if (!cJSON_GetArraySize(r)) printf("no repositories registered (kvasir repo add PATH)\n");
      cJSON_ArrayForEach(o, r) {
        printf("%s  (%.0f syncs, %.0f dirs watched)\n", str(o, "path"), num(o, "syncs"), num(o, "watched_dirs"));
        print_index_stats(cJSON_GetObjectItem(o, "index"));
      }
    }
  } else if (!strcmp(sub, "remove")) {
    if (!path && argc > 2) cJSON_AddStringToObject(params, "path", argv[2]);
    if (argc < 3) rc = 2, fprintf(stderr, "usage: kvasir repo remove PATH\n");
    else if (!(rc = call_simple("repo remove", "repo.remove", params, &r))) printf("removed %s\n", str(r, "removed"));
  } else if (!strcmp(sub, "add") || !strcmp(sub, "sync")) {
    int add = !strcmp(sub, "add");
    if (add && !path) {
      fprintf(stderr, "kvasir repo add: PATH is required (and must exist)\n");
      cJSON_Delete(params);
      return 2;
    }
    cJSON_AddBoolToObject(params, "wait", wait);
    ipc_client *c = connect_or_explain(add ? "repo add" : "repo sync");
    if (!c) rc = 1;
    else {
      kv_err e;
      prog p = {0};
      int crc = ipc_client_call(c, add ? "repo.add" : "repo.sync", params, on_progress, &p, 0, &r, &e);
      if (p.started) kv_progress_finish(&p.bar, NULL);
      ipc_client_close(c);
      if (crc) {
        fprintf(stderr, "kvasir repo %s: %s\n", sub, e.msg);
        rc = 1;
      } else if (json) {
        print_json(r);
      } else {
        printf("%s %s\n", wait ? (add ? "indexed" : "synced") : "queued a sync of", str(r, "path"));
        print_index_stats(cJSON_GetObjectItem(r, "index"));
      }
    }
  } else {
    fprintf(stderr, "kvasir repo: unknown subcommand '%s' (add, list, remove, sync)\n", sub);
    rc = 2;
  }
  cJSON_Delete(params);
  cJSON_Delete(r);
  return rc;
}

/* ---------------------------------------------------------------------- ask */

static volatile sig_atomic_t g_interrupted; /* set by SIGINT during ask: the only global, a signal flag */

static void on_sigint(int sig) {
  (void)sig;
  g_interrupted = 1;
}

typedef struct ask_ud {
  int json, streamed, status_shown;
} ask_ud;

static int on_ask_note(void *ud, const char *method, const cJSON *params) {
  ask_ud *a = ud;
  if (!strcmp(method, "ask.context") && !a->json && isatty(2)) {
    /* the prompt may take seconds to evaluate: say what is happening */
    fprintf(stderr, "[%d source(s) retrieved; generating...]", cJSON_GetArraySize(cJSON_GetObjectItem(params, "citations")));
    fflush(stderr);
    a->status_shown = 1;
  } else if (!strcmp(method, "ask.token") && !a->json) {
    if (a->status_shown) {
      fputs("\r\033[K", stderr);
      a->status_shown = 0;
    }
    fputs(str(params, "text"), stdout);
    fflush(stdout);
    a->streamed = 1;
  }
  return g_interrupted != 0;
}

static void print_citations(const cJSON *cites) {
  const cJSON *c;
  cJSON_ArrayForEach(c, cites) {
    const char *sym = str(c, "symbol");
    printf("  %s:%.0f-%.0f%s%s%s\n", str(c, "path"), num(c, "start_line"), num(c, "end_line"), *sym ? "  (" : "", sym,
           *sym ? ")" : "");
  }
}

int cmd_ask(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help") || argc < 2) {
    printf("usage: kvasir ask [--repo PATH] [--file F] [--line N] [--max-tokens N] [--depth D] [--json] QUESTION...\n"
           "  Ask the daemon about a registered repository; the answer streams, then the\n"
           "  path:line ranges it refers to (its citations). Ctrl-C cancels.\n"
           "  --depth fast|think|think-max is what the project's policy rules see (e.g. think -> pro).\n");
    return argc < 2 ? 2 : 0;
  }
  int json = cli_has_flag(argc, argv, "--json");
  cJSON *params = cJSON_CreateObject();
  char q[8192] = "", abs[PATH_MAX], fabs_[PATH_MAX];
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if ((!strcmp(a, "--repo") || !strcmp(a, "--file") || !strcmp(a, "--line") || !strcmp(a, "--max-tokens") ||
         !strcmp(a, "--depth")) &&
        i + 1 < argc) {
      const char *v = argv[++i];
      if (!strcmp(a, "--repo")) cJSON_AddStringToObject(params, "repo", realpath(v, abs) ? abs : v);
      else if (!strcmp(a, "--file")) cJSON_AddStringToObject(params, "file", realpath(v, fabs_) ? fabs_ : v);
      else if (!strcmp(a, "--line")) cJSON_AddNumberToObject(params, "line", atoi(v));
      else if (!strcmp(a, "--depth")) cJSON_AddStringToObject(params, "depth", v);
      else cJSON_AddNumberToObject(params, "max_tokens", atoi(v));
    } else if (!strcmp(a, "--json")) {
    } else {
      if (*q) strncat(q, " ", sizeof q - strlen(q) - 1);
      strncat(q, a, sizeof q - strlen(q) - 1);
    }
  }
  if (!*q) {
    fprintf(stderr, "kvasir ask: QUESTION is required\n");
    cJSON_Delete(params);
    return 2;
  }
  if (!cJSON_GetObjectItem(params, "repo") && !cJSON_GetObjectItem(params, "file")) {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd)) cJSON_AddStringToObject(params, "repo", cwd);
  }
  cJSON_AddStringToObject(params, "question", q);
  ipc_client *c = connect_or_explain("ask");
  if (!c) {
    cJSON_Delete(params);
    return 1;
  }
  struct sigaction sa = {0}, old;
  sa.sa_handler = on_sigint;
  sigaction(SIGINT, &sa, &old);
  ask_ud ud = {json, 0, 0};
  cJSON *r = NULL;
  kv_err e;
  int rc = ipc_client_call(c, "ask", params, on_ask_note, &ud, 0, &r, &e);
  sigaction(SIGINT, &old, NULL);
  ipc_client_close(c);
  cJSON_Delete(params);
  if (ud.status_shown) fputs("\r\033[K", stderr);
  if (rc) {
    if (ud.streamed) putchar('\n');
    fprintf(stderr, "kvasir ask: %s\n", e.msg);
    return 1;
  }
  if (json) {
    print_json(r);
  } else {
    if (ud.streamed) printf("\n");
    const char *note = str(r, "note");
    if (*note) printf("note: %s\n      showing the retrieved locations instead of a generated answer.\n", note);
    const char *none = str(r, "retrieval");
    if (*none) printf("note: %s\n", none);
    if (*str(r, "tier")) printf("answered by tier %s%s%s%s\n", str(r, "tier"), *str(r, "model") ? " (" : "", str(r, "model"),
                               *str(r, "model") ? ")" : "");
    const cJSON *cites = cJSON_GetObjectItem(r, "citations");
    if (cJSON_GetArraySize(cites)) {
      printf("\nSources (%.0f retrieved, %s):\n", num(r, "retrieved"), str(r, "generator"));
      print_citations(cites);
    }
  }
  cJSON_Delete(r);
  return 0;
}

/* ------------------------------------------------------------------- bridge */

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

int cmd_bridge(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) {
    printf("usage: kvasir bridge\n"
           "  Relay plain msgpack-rpc on stdin/stdout to the daemon's encrypted socket\n"
           "  (for editors that speak msgpack-rpc over a job's stdio, e.g. Neovim).\n");
    return 0;
  }
  ipc_client *c = connect_or_explain("bridge");
  if (!c) return 1;
  msgpack_unpacker up;
  if (!msgpack_unpacker_init(&up, 65536)) {
    ipc_client_close(c);
    return 1;
  }
  msgpack_unpacked obj;
  msgpack_unpacked_init(&obj);
  int rc = 0;
  kv_err e;
  for (;;) {
    struct pollfd pf[2] = {{.fd = 0, .events = POLLIN}, {.fd = ipc_client_fd(c), .events = POLLIN}};
    if (poll(pf, 2, -1) < 0) {
      if (errno == EINTR) continue;
      rc = 1;
      break;
    }
    if (pf[1].revents) {
      int r = 0, w = 0;
      do { /* one read may carry several messages: relay all buffered ones */
        uint8_t *m;
        size_t n;
        r = ipc_client_recv(c, &m, &n, 0, &e);
        if (r) break;
        w = write_all(1, m, n);
        free(m);
      } while (!w && ipc_client_buffered(c));
      if (r == KV_ECANCELED || w) break;
      if (r) {
        fprintf(stderr, "kvasir bridge: %s\n", e.msg);
        rc = 1;
        break;
      }
    }
    if (pf[0].revents) {
      if (!msgpack_unpacker_reserve_buffer(&up, 65536)) {
        rc = 1;
        break;
      }
      ssize_t r = read(0, msgpack_unpacker_buffer(&up), 65536);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break; /* editor closed stdin */
      msgpack_unpacker_buffer_consumed(&up, (size_t)r);
      if (msgpack_unpacker_message_size(&up) > IPC_MSG_MAX) {
        fprintf(stderr, "kvasir bridge: message over %u bytes\n", IPC_MSG_MAX);
        rc = 1;
        break;
      }
      msgpack_unpack_return ur;
      while ((ur = msgpack_unpacker_next(&up, &obj)) == MSGPACK_UNPACK_SUCCESS) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_object(&pk, obj.data);
        int s = ipc_client_send(c, (const uint8_t *)sb.data, sb.size, &e);
        msgpack_sbuffer_destroy(&sb);
        if (s) {
          fprintf(stderr, "kvasir bridge: %s\n", e.msg);
          rc = 1;
          goto done;
        }
      }
      if (ur == MSGPACK_UNPACK_PARSE_ERROR) {
        fprintf(stderr, "kvasir bridge: stdin is not a msgpack stream\n");
        rc = 1;
        break;
      }
    }
  }
done:
  msgpack_unpacked_destroy(&obj);
  msgpack_unpacker_destroy(&up);
  ipc_client_close(c);
  return rc;
}

/* ----------------------------------------------------------------- shutdown */

int cmd_shutdown(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) {
    printf("usage: kvasir shutdown\n  Ask the daemon to finish running answers and exit; waits until it has.\n");
    return 0;
  }
  cJSON *r = NULL;
  if (call_simple("shutdown", "shutdown", NULL, &r)) return 1;
  cJSON_Delete(r);
  /* Wait until the socket is gone (the daemon unlinks it when draining). */
  char sock[4096];
  const char *env = getenv("KVASIR_SOCKET");
  if (env) snprintf(sock, sizeof sock, "%s", env);
  else ipc_socket_path(sock, sizeof sock);
  for (int i = 0; i < 200 && access(sock, F_OK) == 0; i++) usleep(50000);
  printf("kvasird stopped\n");
  return 0;
}
