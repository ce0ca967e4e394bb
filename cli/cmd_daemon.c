/* cmd_daemon.c — command family stub from the foundation issue. */
#include "cli/cli.h"
#include <stdio.h>
int cmd_daemon(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) { printf("usage: kvasir daemon ... (not implemented yet)\n"); return 0; }
  return cli_not_implemented("daemon");
}
int cmd_status(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) { printf("usage: kvasir status ... (not implemented yet)\n"); return 0; }
  return cli_not_implemented("status");
}
int cmd_repo(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) { printf("usage: kvasir repo ... (not implemented yet)\n"); return 0; }
  return cli_not_implemented("repo");
}
int cmd_ask(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) { printf("usage: kvasir ask ... (not implemented yet)\n"); return 0; }
  return cli_not_implemented("ask");
}
int cmd_bridge(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) { printf("usage: kvasir bridge ... (not implemented yet)\n"); return 0; }
  return cli_not_implemented("bridge");
}
int cmd_shutdown(int argc, char **argv) {
  if (cli_has_flag(argc, argv, "--help")) { printf("usage: kvasir shutdown ... (not implemented yet)\n"); return 0; }
  return cli_not_implemented("shutdown");
}
