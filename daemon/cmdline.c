/*
 * cmdline.c — the kvasird command line: parse options into a dmn_config,
 * optionally detach (daemonize) once the socket is listening, run the loop.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "policy/policy.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: kvasird [--foreground] [--model PATH] [--model-memory SIZE] [--workers N] [--no-watch]\n"
          "               [--verbose] [--log FILE] [--stub-generator MS] [--idle-timeout S] [--max-unauth N]\n"
          "  The kvasir daemon: listens on $XDG_RUNTIME_DIR/kvasir/kvasird.sock (encrypted\n"
          "  msgpack-rpc, see docs/protocol.md), indexes registered repositories and answers\n"
          "  questions. Without --foreground it detaches once listening and logs to --log\n"
          "  (default $XDG_RUNTIME_DIR/kvasir/kvasird.log). SIGTERM drains and exits,\n"
          "  SIGHUP reloads the repo registry and the projects' policies, and retries a model that failed to load.\n"
          "  --model PATH is the default model (of tiers without `model:` in config.yaml).\n"
          "  --model-memory SIZE caps the loaded local models, files + KV (75%%, 8GiB, 512MiB;\n"
          "  default: config.yaml model_memory, else 75%% of RAM); the least recently used idle\n"
          "  model is unloaded when the next one would not fit.\n"
          "  --stub-generator streams citations instead of running a model (tests).\n"
          "  --idle-timeout S closes an authenticated connection that has had no request in\n"
          "  flight and no traffic for S seconds (default 600; 0: never).\n"
          "  --max-unauth N caps connections that have not completed the handshake (default 64);\n"
          "  one more drops the one that has sent nothing for longest.\n");
}

int dmn_main(int argc, char **argv) {
  dmn_config cfg;
  dmn_config_default(&cfg);
  cfg.handle_signals = 1;
  int foreground = 0;
  const char *logfile = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *next = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--foreground") || !strcmp(a, "-f")) foreground = 1;
    else if (!strcmp(a, "--no-watch")) cfg.watch = 0;
    else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) cfg.verbose = 1;
    else if (!strcmp(a, "--model") && next) cfg.model_path = argv[++i];
    else if (!strcmp(a, "--model-memory") && next) {
      if (pol_parse_size(argv[++i], &cfg.model_memory, &cfg.model_memory_frac)) {
        fprintf(stderr, "kvasird: --model-memory takes a size such as 75%%, 8GiB or 512MiB, not '%s'\n", argv[i]);
        return 2;
      }
    } else if (!strcmp(a, "--log") && next) logfile = argv[++i];
    else if (!strcmp(a, "--workers") && next) cfg.workers = atoi(argv[++i]);
    else if (!strcmp(a, "--stub-generator") && next) cfg.stub_token_ms = atoi(argv[++i]);
    else if (!strcmp(a, "--idle-timeout") && next) {
      char *end;
      double sec = strtod(argv[++i], &end);
      if (*end || !(sec >= 0 && sec <= 7 * 86400)) {
        fprintf(stderr, "kvasird: --idle-timeout takes seconds between 0 (never) and 604800\n");
        return 2;
      }
      cfg.idle_timeout_ms = sec == 0 ? -1 : (sec * 1000 < 1 ? 1 : (int)(sec * 1000));
    } else if (!strcmp(a, "--max-unauth") && next) {
      cfg.max_unauth = atoi(argv[++i]);
      if (cfg.max_unauth < 1 || cfg.max_unauth > 65536) {
        fprintf(stderr, "kvasird: --max-unauth must be between 1 and 65536\n");
        return 2;
      }
    }
    else {
      fprintf(stderr, "kvasird: unknown or incomplete option '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (cfg.workers < 0 || cfg.workers > 64) {
    fprintf(stderr, "kvasird: --workers must be between 1 and 64\n");
    return 2;
  }
  int ready[2] = {-1, -1};
  if (!foreground) {
    /* Detach: the parent waits until the child listens (or fails) so that
     * `kvasir daemon` returns only once clients can connect. */
    if (pipe(ready) != 0) {
      perror("kvasird: pipe");
      return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
      perror("kvasird: fork");
      return 1;
    }
    if (pid > 0) {
      close(ready[1]);
      char c = 0;
      ssize_t r = read(ready[0], &c, 1);
      close(ready[0]);
      return r == 1 && c == 'y' ? 0 : 1;
    }
    close(ready[0]);
    setsid();
    char path[4096];
    if (!logfile) {
      if (kv_xdg_dir(path, sizeof path, "runtime") == 0 && kv_mkdirs(path, 0700, NULL) == 0) {
        strncat(path, "/kvasird.log", sizeof path - strlen(path) - 1);
        logfile = path;
      }
    }
    int dn = open("/dev/null", O_RDWR);
    if (dn >= 0) {
      dup2(dn, 0);
      dup2(dn, 1);
      close(dn);
    }
    if (logfile) {
      int lf = open(logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (lf >= 0) {
        dup2(lf, 2);
        close(lf);
      }
    }
  }
  dmn_server *s;
  kv_err err;
  int rc = dmn_server_new(&s, &cfg, &err);
  if (rc) {
    fprintf(stderr, "kvasird: %s\n", err.msg);
    if (ready[1] >= 0) {
      if (write(ready[1], "n", 1) < 0) { /* parent sees failure either way */
      }
      close(ready[1]);
    }
    return rc == KV_EBUSY ? 3 : 1;
  }
  if (ready[1] >= 0) {
    if (write(ready[1], "y", 1) < 0) { /* the parent then reports failure */
    }
    close(ready[1]);
  }
  rc = dmn_server_run(s, &err);
  dmn_server_free(s);
  return rc ? 1 : 0;
}
