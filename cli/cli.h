/*
 * cli — the `kvasir` command. kvasir.c dispatches on the first argument to
 * one function per command; each command family lives in its own file
 * (cmd_engine.c, cmd_index.c, cmd_logs.c, cmd_policy.c, cmd_daemon.c) so the
 * families evolve independently. Every command prints usage on --help and
 * returns a process exit code (0 ok, 1 failure, 2 usage error).
 */
#ifndef KVASIR_CLI_H
#define KVASIR_CLI_H

typedef int (*cli_fn)(int argc, char **argv);

/* engine (offline) */
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_ppl(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_eval(int argc, char **argv);
/* the models registry (offline: engine/registry.c) */
int cmd_models(int argc, char **argv);
/* indexer (offline) */
int cmd_index(int argc, char **argv);
int cmd_search(int argc, char **argv);
int cmd_symbols(int argc, char **argv);
int cmd_repomap(int argc, char **argv);
/* logs (offline, or through the daemon) */
int cmd_logs(int argc, char **argv);
/* policy */
int cmd_policy(int argc, char **argv);
int cmd_audit(int argc, char **argv);
/* daemon clients */
int cmd_daemon(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_repo(int argc, char **argv);
int cmd_ask(int argc, char **argv);
int cmd_bridge(int argc, char **argv);
int cmd_shutdown(int argc, char **argv);

/* Helpers shared by the command files. */
int cli_has_flag(int argc, char **argv, const char *flag);
int cli_not_implemented(const char *cmd);

#endif
