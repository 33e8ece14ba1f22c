/* keyscli.h: the `keys` subcommand (file management; I/O). */
#ifndef SPOA_KEYSCLI_H
#define SPOA_KEYSCLI_H

/* argv[0] is "keys". Returns the process exit code. */
int keys_cli(int argc, char **argv);

#endif
