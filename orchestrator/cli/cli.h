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
/* Prints the server's error message of an answer ("orchctl: server answered
 * 404: ..."), from its JSON {"message"} or its body. */
void cli_report_error(long status, const char *body);
/* The request headers: accept (NULL: "Accept: application/json"), the JSON
 * Content-Type when has_body, the bearer token. curl_slist_free_all() them. */
struct curl_slist;
struct curl_slist *cli_http_headers(const struct cli_server *srv, const char *accept,
                                    bool has_body);

/* ---- sse.c: server-sent event streams ---- */
struct cli_sse_event {
    const char *id;   /* the last event id seen ("" before any) */
    const char *type; /* "message" when the event names none */
    const char *data; /* its data lines joined with \n */
};
/* Gets each event; returns true to stop reading. */
typedef bool (*cli_stream_cb)(const struct cli_sse_event *ev, void *ud);
struct cli_stream {
    char last_id[64];  /* in/out: sent as Last-Event-ID unless ""; the last id seen */
    unsigned retry_ms; /* in/out: the server's reconnection delay (retry:), 0 before any */
    /* out, per call */
    long status;    /* HTTP status; 0: no answer */
    bool sse;       /* the answer was a text/event-stream */
    bool stopped;   /* cb asked to stop */
    size_t events;  /* events delivered */
    char error[256]; /* why the connection failed or dropped */
};
/* GETs path as a server-sent event stream, resuming after st->last_id, and
 * hands each event to cb until the server ends the stream. Prints nothing.
 * Returns CLI_EXIT_OK when the server ended it (or cb stopped it);
 * CLI_EXIT_SERVER when no answer came, the connection dropped, or for a 5xx;
 * CLI_EXIT_FAIL for a 4xx or for an answer that is not a stream (st->sse
 * false); st->error then says why (the server's message for an error status).
 * A stream silent for 45 s counts as dropped. */
int cli_stream(const struct cli_server *srv, const char *path, struct cli_stream *st,
               cli_stream_cb cb, void *ud);

/* ---- cmd_watch.c ---- */
/* orchctl watch: the deployment's events as they come (a stream, else by
 * polling), until a final status; with deleting, a deployment that is gone
 * counts as DELETE_COMPLETE. Returns CLI_EXIT_OK for *_COMPLETE,
 * CLI_EXIT_FAIL for *_FAILED, else CLI_EXIT_* of what went wrong. */
int cli_watch(const struct cli_server *srv, const char *id, bool deleting);

#endif
