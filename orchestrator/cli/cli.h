/*
 * orchctl internals: the command table and the helpers commands share.
 * Exit codes are part of the interface (scripts use them): 0 success,
 * 1 the request was refused / a template is invalid, 2 usage error,
 * 3 the server could not be reached or failed.
 */
#ifndef ORCHCTL_CLI_H
#define ORCHCTL_CLI_H

#include <stdbool.h>
#include <stdio.h>

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2
#define CLI_EXIT_SERVER 3

struct cli_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the command name */
};

int cmd_validate(int argc, char **argv);
int cmd_plan(int argc, char **argv);

/* Prints "orchctl: <message>" to stderr and returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
