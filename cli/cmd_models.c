/*
 * cmd_models.c — `kvasir models list|add|remove`: the models registry
 * (engine/registry.c, $XDG_DATA_HOME/kvasir/models.tsv) that config.yaml's
 * local tiers name (`tiers: pro: model: NAME`). The CLI writes the file
 * itself rather than through the daemon: registering needs no daemon state,
 * works before the daemon first starts, and hashing a multi-GB file here
 * keeps the daemon's workers free; the daemon reads the file again whenever
 * it changes (its `models.list` shows the same entries plus what is loaded).
 * Exit codes: 0 ok, 1 failure, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "engine/engine.h"
#include "ipc/ipc.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: kvasir models list [--json]\n"
          "       kvasir models add PATH [--name NAME] [--json]\n"
          "       kvasir models remove NAME\n"
          "  The models registry ($XDG_DATA_HOME/kvasir/models.tsv): GGUF files by name, for\n"
          "  config.yaml's local tiers (tiers: pro: model: NAME). `add` opens the file, checks\n"
          "  its architecture (%s) and stores its sha256 and size;\n"
          "  NAME defaults to the file name without .gguf.\n",
          eng_arch_list());
}

static cJSON *entry_json(const eng_reg_entry *e) {
  cJSON *o = cJSON_CreateObject();
  struct stat st;
  int present = stat(e->path, &st) == 0;
  cJSON_AddStringToObject(o, "name", e->name);
  cJSON_AddStringToObject(o, "path", e->path);
  cJSON_AddStringToObject(o, "arch", e->arch);
  cJSON_AddNumberToObject(o, "size", (double)e->size);
  cJSON_AddStringToObject(o, "sha256", e->sha256);
  /* a file that changed size since `add` is not the file that was hashed */
  cJSON_AddStringToObject(o, "state", !present ? "missing" : (uint64_t)st.st_size != e->size ? "changed" : "ok");
  return o;
}

static int print_json(cJSON *o) {
  char *s = cJSON_Print(o);
  if (s) puts(s);
  free(s);
  cJSON_Delete(o);
  return 0;
}

static int models_list(int json) {
  eng_registry r;
  kv_err e;
  if (eng_registry_load(&r, NULL, &e)) {
    fprintf(stderr, "kvasir models list: %s\n", e.msg);
    return 1;
  }
  if (json) {
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < r.n; i++) cJSON_AddItemToArray(a, entry_json(&r.v[i]));
    print_json(a);
  } else if (!r.n) {
    printf("no models registered (kvasir models add PATH)\n");
  } else {
    for (size_t i = 0; i < r.n; i++) {
      cJSON *o = entry_json(&r.v[i]);
      printf("%-24s %-7s %8.1f MiB  %.12s  %s%s%s\n", r.v[i].name, r.v[i].arch, (double)r.v[i].size / (1 << 20),
             r.v[i].sha256, r.v[i].path, strcmp(cJSON_GetObjectItem(o, "state")->valuestring, "ok") ? "  " : "",
             strcmp(cJSON_GetObjectItem(o, "state")->valuestring, "ok") ? cJSON_GetObjectItem(o, "state")->valuestring
                                                                       : "");
      cJSON_Delete(o);
    }
  }
  eng_registry_free(&r);
  return 0;
}

int cmd_models(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const char *sub = argv[1], *path = NULL, *name = NULL;
  int json = 0;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) json = 1;
    else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(argv[i], "--name") && i + 1 < argc) name = argv[++i];
    else if (argv[i][0] != '-' && !path) path = argv[i];
    else {
      fprintf(stderr, "kvasir models %s: unknown or incomplete option '%s'\n", sub, argv[i]);
      usage(stderr);
      return 2;
    }
  }
  kv_err e;
  if (!strcmp(sub, "list")) return models_list(json);
  if (!strcmp(sub, "add")) {
    if (!path) {
      usage(stderr);
      return 2;
    }
    eng_reg_entry ent;
    if (eng_registry_add(NULL, path, name, &ent, &e)) {
      fprintf(stderr, "kvasir models add: %s\n", e.msg);
      return 1;
    }
    if (json) return print_json(entry_json(&ent));
    printf("registered %s (%s, %.1f MiB, sha256 %s): %s\n", ent.name, ent.arch, (double)ent.size / (1 << 20),
           ent.sha256, ent.path);
    return 0;
  }
  if (!strcmp(sub, "remove")) {
    if (!path || name) {
      usage(stderr);
      return 2;
    }
    if (eng_registry_remove(NULL, path, &e)) {
      fprintf(stderr, "kvasir models remove: %s\n", e.msg);
      return 1;
    }
    if (json) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "removed", path);
      return print_json(o);
    }
    printf("removed %s\n", path);
    return 0;
  }
  fprintf(stderr, "kvasir models: unknown subcommand '%s'\n", sub);
  usage(stderr);
  return 2;
}
