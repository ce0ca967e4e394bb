/* cmd_engine.c — command family stub from the foundation issue. */
#include "cli/cli.h"
#include <stdio.h>
int cmd_run(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) { printf("usage: kvasir run ... (not implemented yet)\n"); return 0; }
  return cli_not_implemented("run");
}
int cmd_chat(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) { printf("usage: kvasir chat ... (not implemented yet)\n"); return 0; }
  return cli_not_implemented("chat");
}
int cmd_ppl(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) { printf("usage: kvasir ppl ... (not implemented yet)\n"); return 0; }
  return cli_not_implemented("ppl");
}
int cmd_bench(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) { printf("usage: kvasir bench ... (not implemented yet)\n"); return 0; }
  return cli_not_implemented("bench");
}
int cmd_tokenize(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) { printf("usage: kvasir tokenize ... (not implemented yet)\n"); return 0; }
  return cli_not_implemented("tokenize");
}
