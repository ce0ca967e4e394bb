/* cmd_index.c — command family stub from the foundation issue. */
#include "cli/cli.h"
#include <stdio.h>
int cmd_index(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) { printf("usage: kvasir index ... (not implemented yet)\n"); return 0; }
  return cli_not_implemented("index");
}
int cmd_search(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) { printf("usage: kvasir search ... (not implemented yet)\n"); return 0; }
  return cli_not_implemented("search");
}
int cmd_symbols(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) { printf("usage: kvasir symbols ... (not implemented yet)\n"); return 0; }
  return cli_not_implemented("symbols");
}
int cmd_repomap(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) { printf("usage: kvasir repomap ... (not implemented yet)\n"); return 0; }
  return cli_not_implemented("repomap");
}
