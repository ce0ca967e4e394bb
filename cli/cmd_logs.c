/* cmd_logs.c — command family stub from the foundation issue. */
#include "cli/cli.h"
#include <stdio.h>
int cmd_logs(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) { printf("usage: kvasir logs ... (not implemented yet)\n"); return 0; }
  return cli_not_implemented("logs");
}
