/* cmd_eval.c — `kvasir eval`: evaluations of the engine on the user's own
 * data (eval needle: long-context retrieval with full vs compressed KV
 * memory). Owned by the KV-memory work (issue #5); moved out of cmd_engine.c. */
#include "cli/cli.h"
#include <stdio.h>
int cmd_eval(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) { printf("usage: kvasir eval needle ... (not implemented yet)\n"); return 0; }
  return cli_not_implemented("eval");
}
