/*
 * orchctl internals: the command table and the helpers commands share.
 * Exit codes are part of the interface (scripts use them): 0 success,
 * 1 the request was refused / a template is invalid, 2 usage error,
 * 3 the server could not be reached or failed.
 */
#ifndef ORCHCTL_CLI_H
#define ORCHCTL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "tosca/tosca.h"

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
/* deploy, list, show, watch, logs, outputs, template, resources, update, delete,
 * reset: argv[0] says which. */
int cmd_remote(int argc, char **argv);

/* Prints "orchctl: <message>" to stderr and returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- cli_util.c ---- */
/* Reads a whole file (at most 64 MiB) into a NUL-terminated malloc'd buffer.
 * Returns 0, or -1 with errno set (EFBIG when too large). */
int cli_read_file(const char *path, char **data, size_t *len);
/* Adds `--inputs KEY=VALUE` to inputs; VALUE is read as YAML (2, true, "x").
 * Returns 0 or CLI_EXIT_USAGE after a message. */
int cli_input_kv(json_t *inputs, const char *kv);
/* Merges a YAML or JSON mapping file into inputs; 0 or CLI_EXIT_USAGE. */
int cli_inputs_file(json_t *inputs, const char *path);
/* Prints diagnostics as file:line:col: severity: message [code]. */
void cli_print_diags(const tosca_diags_t *d, FILE *out);

/* ---- http.c: talking to orchestratord ---- */
struct cli_server {
    const char *url;   /* --url, else $ORCHESTRATOR_URL, else http://127.0.0.1:8080 */
    const char *token; /* --token, else $ORCHESTRATOR_TOKEN */
    bool json;         /* --json: print the server's JSON as it is */
    bool quiet_404;    /* a 404 is an expected answer: print nothing */
};

struct cli_response {
    long status;
    char *body; /* NUL-terminated, malloc'd */
    size_t len;
};

void cli_server_init(struct cli_server *srv);
/* Consumes --url V, --token V or --json at argv[*i]: 1 if it did, 0 if the
 * option is not one of these, -1 on a usage error (message printed). */
int cli_server_option(struct cli_server *srv, int argc, char **argv, int *i);
/* One request; body may be NULL. Returns CLI_EXIT_OK for 2xx, CLI_EXIT_FAIL
 * for 4xx, CLI_EXIT_SERVER for 5xx or no answer (the message is printed). */
int cli_request(const struct cli_server *srv, const char *method, const char *path,
                const json_t *body, struct cli_response *out);
json_t *cli_response_json(const struct cli_response *r);
void cli_response_free(struct cli_response *r);
/* Follows a server-sent event stream; cb gets each event's data and returns
 * true to stop. Returns a CLI_EXIT_* code. */
typedef bool (*cli_stream_cb)(const char *data, void *ud);
int cli_stream(const struct cli_server *srv, const char *path, cli_stream_cb cb, void *ud);

#endif
