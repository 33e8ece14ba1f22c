/* spendcli.h: the `spend` subcommand (budgets' spend in Redis; I/O). */
#ifndef SPOA_SPENDCLI_H
#define SPOA_SPENDCLI_H

struct config;

/* argv[0] is "spend". cfg holds the defaults. Returns the process exit code. */
int spend_cli(struct config *cfg, int argc, char **argv);

#endif
