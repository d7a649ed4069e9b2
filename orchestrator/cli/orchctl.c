/*
 * orchctl: the command-line client. This file holds main() and the command
 * table; each command lives in a cmd_*.c file of its own.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const struct cli_command commands[] = {
    {"validate", "check TOSCA templates or CSARs; exit 1 if any is invalid", cmd_validate},
    {"plan", "print the deployment plan (JSON) of a template", cmd_plan},
    {"deploy", "submit a template (FILE [--inputs K=V] [--wait]); prints the uuid", cmd_remote},
    {"list", "list deployments (--all: not only yours; --page N --size N)", cmd_remote},
    {"show", "show a deployment (ID)", cmd_remote},
    {"watch", "follow a deployment's events until a final state (ID)", cmd_remote},
    {"logs", "print a deployment's log (ID)", cmd_remote},
    {"outputs", "print a deployment's outputs (ID)", cmd_remote},
    {"template", "print a deployment's template (ID)", cmd_remote},
    {"resources", "list a deployment's resources (ID)", cmd_remote},
    {"usage", "node-hours and GPU-hours a deployment held, per site (ID)", cmd_remote},
    {"update", "update a deployment (ID [FILE] [--inputs K=V] [--wait])", cmd_remote},
    {"delete", "delete a deployment (ID [--force] [--wait])", cmd_remote},
    {"reset", "mark a stuck deletion DELETE_FAILED (ID)", cmd_remote},
};

int cli_usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("orchctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n(run 'orchctl help' for usage)\n", stderr);
    return CLI_EXIT_USAGE;
}

static int usage(FILE *out)
{
    fputs("usage: orchctl COMMAND [ARGS]\n\ncommands:\n", out);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fputs("\nTemplate options (validate, plan):\n"
          "  --inputs K=V       set an input (V is read as YAML: 2, true, \"text\")\n"
          "  --inputs-file F    inputs from a YAML or JSON mapping\n"
          "  --import-map F     offline map of import URLs to local files\n"
          "  --allow-url P      fetch URL imports that start with P\n"
          "  --allow-root D     allow file imports under directory D\n"
          "  --strict           defects are errors, not warnings\n"
          "  --json             machine-readable output\n"
          "Server options (the other commands):\n"
          "  --url URL          the orchestrator (default $ORCHESTRATOR_URL or\n"
          "                     http://127.0.0.1:8080)\n"
          "  --token T          bearer token (default $ORCHESTRATOR_TOKEN)\n"
          "  --json             print the server's JSON\n"
          "deploy/update: --inputs K=V, --inputs-file F, --callback URL, --timeout-mins N,\n"
          "  --provider-timeout-mins N, --max-providers-retry N, --keep-last-attempt,\n"
          "  --user-group G, --wait (follow it like watch)\n"
          "Environment: ORCHCTL_IMPORT_MAP (default for --import-map)\n"
          "Exit status: 0 ok, 1 invalid or refused, 2 usage error, 3 server error\n",
          out);
    return out == stdout ? CLI_EXIT_OK : CLI_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage(stderr);
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0)
        return usage(stdout);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    return cli_usage_error("unknown command '%s'", argv[1]);
}
