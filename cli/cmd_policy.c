/* cmd_policy.c — command family stub from the foundation issue. */
#include "cli/cli.h"
#include <stdio.h>
int cmd_policy(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) { printf("usage: kvasir policy ... (not implemented yet)\n"); return 0; }
  return cli_not_implemented("policy");
}
int cmd_audit(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) { printf("usage: kvasir audit ... (not implemented yet)\n"); return 0; }
  return cli_not_implemented("audit");
}
