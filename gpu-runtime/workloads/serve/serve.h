/*
 * gpu-serve's library (libgpuserve.a): the DEEPaaS v2 model API over a
 * small HTTP/1.1 server.
 *   api.c     the routes and their JSON (no I/O: request in, response out)
 *   http.c    the server: one thread, poll(), non-blocking sockets,
 *             keep-alive and pipelining, Content-Length bodies, size limits
 *             and timeouts; a malformed request gets a 4xx and never a crash
 *   form.c    application/x-www-form-urlencoded bodies
 * Routes (a trailing slash is optional; HEAD works where GET does):
 *   GET  /                          {"versions": [the v2 version]}
 *   GET  /v2/                       {"version": "stable", "id": "v2", "links": [...]}
 *   GET  /v2/models/                {"models": [metadata]}
 *   GET  /v2/models/{name}/         metadata: {"id", "name", "description", "license",
 *                                   "author", "version", "links", "inputs", "classes", ...}
 *   POST /v2/models/{name}/predict/ body {"inputs": [[x1..xD], ...]} or {"input": [x1..xD]}
 *                                   (JSON; or a form, urlencoded or multipart, or the
 *                                   query string, whose field "inputs" holds that JSON)
 *                                   -> {"status": "OK", "predictions": [{"label": k,
 *                                   "probabilities": [p0..pK-1]}, ...]}
 * Errors: {"status": "error", "message": "..."} with 400 (bad input), 404
 * (unknown route or model), 405 (with Allow), 411, 413, 415, 431, 503, 505.
 * Memory goes through orc_malloc (base.h); JSON is jansson.
 */
#ifndef GR_SERVE_H
#define GR_SERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gm_model.h"

#define GPU_SERVE_VERSION "0.1.0"

struct gs_config {
    const char *host;    /* "127.0.0.1" */
    uint16_t port;       /* 5000; 0 picks a free port */
    uint32_t max_rows;   /* rows per predict request: 1024 */
    size_t max_body;     /* bytes: 1 MiB */
    size_t max_header;   /* bytes of request line and headers: 16 KiB */
    uint32_t max_conns;  /* connections at once: 256 */
    uint32_t idle_ms;    /* a keep-alive connection with no request: 30000 */
    uint32_t request_ms; /* to receive a whole request once it began: 10000 */
};

void gs_config_default(struct gs_config *c);

/* What the API serves: one model under one name. */
struct gs_app {
    struct gm_model model;
    char name[GM_NAME_MAX];
    char license[64];
    uint32_t file_crc; /* CRC-32 of the checkpoint file: the model's version */
    uint32_t max_rows;
    float *work; /* forward-pass work space */
};

/* Loads and checks the checkpoint at path into app (caller memory); name
 * NULL or "": the checkpoint's model name. Release with gs_app_free().
 * 0 or < 0 with err saying what is wrong with the file. */
int gs_app_load(struct gs_app *app, const char *path, const char *name, struct gm_error *err);

/* The same from a model already in memory (copied). */
int gs_app_from_model(struct gs_app *app, const struct gm_model *m, const char *name,
                      struct gm_error *err);

void gs_app_free(struct gs_app *app);

struct gs_request {
    const char *method;       /* "GET", ... */
    const char *path;         /* without the query string */
    const char *query;        /* after '?', NULL when none: predict reads inputs= from it too */
    const char *content_type; /* NULL when absent */
    const char *body;
    size_t body_len;
};

struct gs_response {
    int status;
    char *body;        /* JSON text, orc_free() it; NULL only on OOM */
    const char *allow; /* the Allow header of a 405, else NULL */
};

/* Answers one request (no I/O; the app is not changed, apart from its work
 * space, so one thread at a time). */
void gs_handle(struct gs_app *app, const struct gs_request *req, struct gs_response *resp);

/* {"status": "error", "message": msg} as a new string (orc_free it). */
char *gs_error_body(const char *msg);

/* Decodes application/x-www-form-urlencoded text: the value of field name
 * (percent-decoding and '+' as space) into a new string *out (orc_free it).
 * 0; ORC_ENOTFOUND when there is no such field; ORC_EFORMAT on a bad escape;
 * ORC_ENOMEM. */
int gs_form_field(const char *body, size_t len, const char *name, char **out, size_t *out_len);

/* The same for a multipart/form-data body (content_type carries the
 * boundary): the raw content of the part named name. ORC_ENOTFOUND, or
 * ORC_EFORMAT when the body does not follow the boundary. */
int gs_multipart_field(const char *body, size_t len, const char *content_type, const char *name,
                       char **out, size_t *out_len);

/* ---- the server (http.c) ---- */

struct gs_server;

/* Binds host:port and prepares to serve app (which must outlive the server).
 * *out owns the server; free it with gs_server_free(). 0 or < 0 with err. */
int gs_server_open(struct gs_server **out, struct gs_app *app, const struct gs_config *c,
                   struct gm_error *err);

/* The port actually bound (useful with port 0). */
uint16_t gs_server_port(const struct gs_server *s);

/* Serves until gs_server_stop(); then lets responses in flight finish (at
 * most a second) and returns 0 (or < 0 when poll fails). */
int gs_server_run(struct gs_server *s);

/* Asks gs_server_run() to return. Async-signal-safe: call it from a SIGTERM
 * handler or another thread. */
void gs_server_stop(struct gs_server *s);

void gs_server_free(struct gs_server *s);

#endif
