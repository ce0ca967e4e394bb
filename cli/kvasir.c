/*
 * kvasir.c — entry point of the `kvasir` command: a table from command name
 * to handler and a one-line description, used both to dispatch and to print
 * `kvasir --help`.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static const struct {
  const char *name;
  cli_fn fn;
  const char *help;
} CMDS[] = {
    {"daemon", cmd_daemon, "start kvasird (the daemon) in the background or --foreground"},
    {"status", cmd_status, "show the daemon's state"},
    {"repo", cmd_repo, "add|list|remove|sync repositories the daemon indexes"},
    {"ask", cmd_ask, "ask a question about a repository (streams the answer with citations)"},
    {"bridge", cmd_bridge, "relay stdio to the encrypted socket (for Neovim)"},
    {"shutdown", cmd_shutdown, "stop the daemon"},
    {"run", cmd_run, "run a GGUF model on a prompt, streaming tokens"},
    {"chat", cmd_chat, "interactive chat with a GGUF model"},
    {"ppl", cmd_ppl, "perplexity of a model on a text file (llama-perplexity's method)"},
    {"bench", cmd_bench, "prompt-processing and generation speed (like llama-bench)"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"models", cmd_models, "list|add|remove the registered GGUF models that tiers name"},
    {"eval", cmd_eval, "evaluations (eval needle: long-context retrieval on your data)"},
    {"index", cmd_index, "index a git repository"},
    {"search", cmd_search, "search an indexed repository"},
    {"symbols", cmd_symbols, "list symbols of an indexed repository"},
    {"repomap", cmd_repomap, "print the ranked repository map"},
    {"logs", cmd_logs, "ingest, parse, query and triage log files"},
    {"policy", cmd_policy, "policy explain: which tier a request would go to, and why"},
    {"audit", cmd_audit, "list what left the machine"},
};

static void usage(FILE *out) {
  fprintf(out, "usage: kvasir <command> [options]   (kvasir <command> --help for details)\n\ncommands:\n");
  for (size_t i = 0; i < sizeof CMDS / sizeof CMDS[0]; i++) fprintf(out, "  %-10s %s\n", CMDS[i].name, CMDS[i].help);
}

int cli_has_flag(int argc, char **argv, const char *flag) {
  for (int i = 1; i < argc; i++)
    if (!strcmp(argv[i], flag)) return 1;
  return 0;
}

int cli_not_implemented(const char *cmd) {
  fprintf(stderr, "kvasir %s: not implemented yet\n", cmd);
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("kvasir 0.1.0\n");
    return 0;
  }
  for (size_t i = 0; i < sizeof CMDS / sizeof CMDS[0]; i++)
    if (!strcmp(argv[1], CMDS[i].name)) return CMDS[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "kvasir: unknown command '%s'\n", argv[1]);
  usage(stderr);
  return 2;
}
