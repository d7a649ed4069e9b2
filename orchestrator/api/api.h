/*
 * The daemon's HTTP API as other subsystems see it: one orc_api_t owns the
 * route table, the HTTP server (libh2o on the daemon's libuv loop), the
 * metrics, the readiness checks and the OpenAPI document. A subsystem adds
 * its endpoints with orc_api_register() and writes handlers against the
 * request and response helpers below; it never touches h2o.
 *
 * A handler runs on the loop thread and must not block. It either answers
 * before returning (orc_api_send_*), or defers (orc_api_req_defer) and answers
 * later on the loop thread, or returns a negative ORC_E* code without
 * answering: the router then sends the error JSON of API.md for that code
 * ({"code":404,"title":"Not Found","message":"..."}), with the status and
 * message recorded by orc_api_req_fail() or by a request helper that failed.
 *
 * Threading: everything here is loop-thread only. Errors: 0 or negative
 * ORC_E* (orc/errno.h).
 */
#ifndef ORC_API_API_H
#define ORC_API_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "orc/errno.h"

typedef struct orc_api_s orc_api_t;
typedef struct orc_api_req_s orc_api_req_t;

/* HTTP methods as bits (for Allow headers and route tables). */
typedef enum {
    ORC_HTTP_GET = 1u << 0,
    ORC_HTTP_HEAD = 1u << 1,
    ORC_HTTP_POST = 1u << 2,
    ORC_HTTP_PUT = 1u << 3,
    ORC_HTTP_PATCH = 1u << 4,
    ORC_HTTP_DELETE = 1u << 5,
    ORC_HTTP_OPTIONS = 1u << 6,
} orc_http_method_t;

/* ---- routes ---------------------------------------------------------------- */

/* A handler: see the top of this file for what it must do. data is the
 * route's data pointer. */
typedef int (*orc_api_handler_fn)(orc_api_req_t *req, void *data);

/* One documented response of a route, for /openapi.json. */
typedef struct orc_api_response_doc_s {
    int status;               /* 200, 201, 202, 204, ...; 0 ends a list */
    const char *description;  /* "The deployment" */
    const char *content_type; /* "application/json", "text/plain"; NULL: no body */
    const char *schema;       /* OpenAPI 3.0 schema as JSON text, may use
                               * {"$ref":"#/components/schemas/Name"}; NULL: none */
} orc_api_response_doc_t;

/* One documented query parameter. Path parameters come from the pattern. */
typedef struct orc_api_param_doc_s {
    const char *name; /* NULL ends a list */
    const char *description;
    const char *schema; /* JSON text; NULL: {"type":"string"} */
    bool required;
} orc_api_param_doc_t;

/* Who may call a route (docs/security.md). With authentication off every caller is
 * the anonymous local user, who has every role. */
typedef enum {
    ORC_API_ACCESS_USER = 0, /* a valid bearer token of a user (the default) */
    ORC_API_ACCESS_PUBLIC,   /* anyone; the handler checks what it needs itself */
    ORC_API_ACCESS_OPERATOR, /* an operator (or admin) */
    ORC_API_ACCESS_ADMIN,    /* an admin */
} orc_api_access_t;

/* Roles, as bits: admin implies operator and user; operator implies user. */
enum {
    ORC_ROLE_USER = 1u << 0,
    ORC_ROLE_OPERATOR = 1u << 1,
    ORC_ROLE_ADMIN = 1u << 2,
};

/* The caller of a request. */
typedef struct orc_identity_s {
    const char *issuer;  /* "local" when authentication is off */
    const char *subject; /* "anonymous" when authentication is off */
    const json_t *groups; /* array of strings (borrowed); never NULL */
    unsigned roles;       /* ORC_ROLE_* */
    bool anonymous;       /* authentication is off */
} orc_identity_t;

typedef struct orc_api_route_s {
    const char *method;  /* "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS" */
    const char *pattern; /* "/deployments/{id}/resources/{rid}": literal
                          * segments and whole-segment {name} parameters */
    orc_api_handler_fn handler;
    void *data; /* handed to handler; owned by the registering subsystem */
    /* documentation (copied at registration; schemas must be valid JSON) */
    const char *summary;
    const char *description;
    const char *tag;                         /* OpenAPI tag: "Deployments" */
    const char *request_schema;              /* JSON body schema; NULL: no body */
    const orc_api_param_doc_t *query;        /* NULL or {NULL}-terminated */
    const orc_api_response_doc_t *responses; /* NULL or {0}-terminated; NULL
                                              * documents a plain 200 */
    orc_api_access_t access; /* who may call it; 0: a user */
} orc_api_route_t;

/* Adds a route. Everything is copied; data is kept as is. Fails with
 * ORC_EINVAL (bad method, pattern, or documentation JSON; the reason is
 * logged) or ORC_ECONFLICT (a route with this method and path shape exists).
 * Matching ignores one trailing slash; literal segments win over {params}.
 * HEAD is answered by GET routes and OPTIONS by the router, unless a route
 * takes them itself. May be called before or after the server starts. */
int orc_api_register(orc_api_t *api, const orc_api_route_t *route);
/* Registers n routes; stops at the first failure and returns its code. */
int orc_api_register_all(orc_api_t *api, const orc_api_route_t *routes, size_t n);
/* Adds a schema under #/components/schemas/name in the OpenAPI document.
 * schema is JSON text. ORC_EINVAL if it does not parse, ORC_ECONFLICT if the
 * name is taken. */
int orc_api_register_schema(orc_api_t *api, const char *name, const char *schema);

/* ---- the request ------------------------------------------------------------- */

/* "GET", ...; a HEAD request handled by a GET route says "HEAD". */
const char *orc_api_req_method(const orc_api_req_t *req);
/* The request path without the query string, as received (not decoded). */
const char *orc_api_req_path(const orc_api_req_t *req);
/* The pattern of the matched route: "/deployments/{id}". */
const char *orc_api_req_route(const orc_api_req_t *req);
/* A path parameter by name, percent-decoded; NULL if the route has none. */
const char *orc_api_req_param(const orc_api_req_t *req, const char *name);
/* The first value of a query parameter, percent-decoded ('+' is a space);
 * "" for a bare "?flag"; NULL when absent. */
const char *orc_api_req_query(const orc_api_req_t *req, const char *name);
/* Number of query parameters and the i-th (name, value) pair, in order. */
size_t orc_api_req_query_count(const orc_api_req_t *req);
void orc_api_req_query_at(const orc_api_req_t *req, size_t i, const char **name,
                          const char **value);
/* A request header by name (any case) as a NUL-terminated string; the first
 * one if repeated; NULL when absent. "host" works; Content-Length,
 * Transfer-Encoding, Expect and Upgrade are consumed by the server (the body
 * comes whole through orc_api_req_body). */
const char *orc_api_req_header(orc_api_req_t *req, const char *name);
/* The request id: the client's X-Request-Id if it is sane, else a fresh
 * UUIDv7. Echoed in the X-Request-Id response header. */
const char *orc_api_req_id(const orc_api_req_t *req);
/* The raw body (may be empty, never NULL) and its length. */
const void *orc_api_req_body(const orc_api_req_t *req, size_t *len);
/* Parses the body as JSON with the configured depth limit. Returns 0 and a
 * new reference in *out (the caller json_decref()s it), or a negative code
 * with the HTTP error recorded for the router: 400 for an empty body, bad
 * JSON ("... at line L, column C: ...") or nesting beyond the limit; 415 for
 * a Content-Type that is not JSON. */
int orc_api_req_json(orc_api_req_t *req, json_t **out);
/* The absolute URL base for links: the configured public URL, else
 * "http://" + the request's Host header (or the local address). No trailing
 * slash. Lives as long as the request. */
const char *orc_api_req_base_url(orc_api_req_t *req);
/* base_url + the formatted path, e.g. orc_api_req_url(req, "/deployments/%s", id).
 * Lives as long as the request. */
char *orc_api_req_url(orc_api_req_t *req, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Memory that lives as long as the request (freed after the response is
 * sent); never NULL (h2o aborts on exhaustion). */
void *orc_api_req_alloc(orc_api_req_t *req, size_t n);
char *orc_api_req_strdup(orc_api_req_t *req, const char *s);
/* The caller: routes that are not ORC_API_ACCESS_PUBLIC run only once it is known.
 * Never NULL; lives as long as the request. */
const orc_identity_t *orc_api_req_identity(const orc_api_req_t *req);
/* True when the caller's token lists group. */
bool orc_identity_in_group(const orc_identity_t *id, const char *group);
/* True when the caller is subject@issuer, or an admin. */
bool orc_identity_is(const orc_identity_t *id, const char *issuer, const char *subject);

/* The api the request came through. */
orc_api_t *orc_api_req_api(const orc_api_req_t *req);

/* Fails req for a store error rc whose message is detail: 503 with Retry-After
 * when the store is busy or unreachable (ORC_EAGAIN, logged), else 500. */
int orc_api_req_store_fail(orc_api_req_t *req, int rc, const char *detail);
/* Records the error the router sends if the handler returns the result:
 * returns the ORC_E* code matching status (400 ORC_EINVAL, 404 ORC_ENOTFOUND,
 * 409 ORC_ECONFLICT, 413 ORC_ELIMIT, 403 ORC_EDENIED, 501 ORC_ENOTSUP, other
 * ORC_EHTTP), so that `return orc_api_req_fail(req, 404, "...")` reads well. */
int orc_api_req_fail(orc_api_req_t *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- deferred answers ----------------------------------------------------------- */

/* Called when the server gives up on a deferred request (shutdown deadline,
 * or the connection went away). After it returns req is gone: forget it. */
typedef void (*orc_api_cancel_fn)(orc_api_req_t *req, void *data);

/* Marks req as answered later: the handler returns 0 without sending, and
 * some later loop callback sends exactly one response. cancel (not NULL) runs
 * at most once, only if the answer has not been sent yet. Returns 0, or
 * ORC_EINVAL if req was already answered or deferred. */
int orc_api_req_defer(orc_api_req_t *req, orc_api_cancel_fn cancel, void *data);

/* Takes a deferred request up again on the loop (its cancel will not run): run(req,
 * data) works as a handler does — answers, defers again, or returns the failure of
 * orc_api_req_fail, which the router then sends. */
void orc_api_req_continue(orc_api_req_t *req, orc_api_handler_fn run, void *data);

/* ---- responses ---------------------------------------------------------------- */

/* Each send answers the request once: a second one fails with ORC_EINVAL.
 * They return 0 or a negative code; on failure nothing was sent unless said. */

/* Adds a response header (before sending). name in lower case. Copied. */
int orc_api_set_header(orc_api_req_t *req, const char *name, const char *value);
/* application/json; the body is serialized (compact); not stolen. */
int orc_api_send_json(orc_api_req_t *req, int status, const json_t *body);
/* The same, stealing the reference; a NULL body (failed json_pack) sends 500. */
int orc_api_send_json_new(orc_api_req_t *req, int status, json_t *body);
/* text/plain; charset=utf-8. */
int orc_api_send_text(orc_api_req_t *req, int status, const char *text, size_t len);
/* Any content type; body is copied. */
int orc_api_send_body(orc_api_req_t *req, int status, const char *content_type, const void *body,
                      size_t len);
/* No body: 202, 204, ... */
int orc_api_send_status(orc_api_req_t *req, int status);
/* The error JSON of API.md with title = the status's reason phrase. */
int orc_api_send_error(orc_api_req_t *req, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- helpers usable without a request (also for tests) --------------------------- */

/* The reason phrase of a status ("Not Found"); "Unknown" if not known. */
const char *orc_http_reason(int status);
/* The error body {"code":status,"title":reason,"message":message}; NULL on OOM. */
json_t *orc_api_error_json(int status, const char *message);
/* The HTTP status a negative ORC_E* code maps to (ORC_ENOTFOUND 404, ...). */
int orc_api_status_for(int rc);
/* Method bit for a method name (exact, upper case), 0 if unknown. */
unsigned orc_http_method_bit(const char *name, size_t len);

/* ---- readiness and metrics --------------------------------------------------------- */

/* A readiness check: true when ready; else *reason says why (static text).
 * GET /readyz answers 200 only when every check passes. */
typedef bool (*orc_api_ready_fn)(void *data, const char **reason);
int orc_api_add_ready_check(orc_api_t *api, const char *name, orc_api_ready_fn fn, void *data);

/* A metrics source: appends Prometheus text (HELP/TYPE lines included) to
 * out with orc_api_metrics_printf. Called for every GET /metrics. */
typedef struct orc_api_text_s orc_api_text_t;
typedef void (*orc_api_metrics_fn)(void *data, orc_api_text_t *out);
int orc_api_add_metrics(orc_api_t *api, orc_api_metrics_fn fn, void *data);
/* Removes what orc_api_add_metrics(api, fn, data) added (nothing if it is not there). */
void orc_api_remove_metrics(orc_api_t *api, orc_api_metrics_fn fn, void *data);
void orc_api_metrics_printf(orc_api_text_t *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));


/* ---- streaming responses ------------------------------------------------------------ */

/* A response whose body is written piece by piece while the connection stays
 * open (server-sent events, logs that follow, ...). The server sends the
 * status and headers at once, then each piece as it is written (chunked
 * transfer encoding on HTTP/1.1; HTTP/1.0 ends the body by closing).
 *
 * Backpressure: what a client has not read yet stays buffered in the server;
 * orc_api_stream_buffered() says how much. The owner writes while that is
 * small and waits for drained() otherwise. Past ORC_API_STREAM_MAX_BUFFER
 * bytes a write fails with ORC_ELIMIT and the stream is cut off (the
 * connection closes); a connection whose writes make no progress for
 * limits.request_timeout is closed as every other one. The kernel's send
 * buffer of a streaming connection is ORC_API_STREAM_SNDBUF (not
 * autotuned), so that it does not hold megabytes for a client that stalls.
 *
 * Shutdown: when the server starts draining it ends every open stream (what
 * was written still goes out, then the end of the body, then the connection
 * closes); new streams are refused with 503. At most limits.max_streams
 * streams are open at once: orc_api_stream_start() refuses more with 503.
 *
 * Metrics: orchestrator_http_streams_open, _total, _rejected_total,
 * _cut_total (cut off by the server), _lost_total (the client went away
 * first) and _limit. A stream counts once in orchestrator_http_requests_total, with
 * its status, but not in the duration histogram. */
#define ORC_API_STREAM_MAX_BUFFER (1024 * 1024) /* bytes buffered per stream */
#define ORC_API_STREAM_SNDBUF (64 * 1024)       /* SO_SNDBUF of a streaming connection */

typedef struct orc_api_stream_s orc_api_stream_t;

typedef struct orc_api_stream_cbs_s {
    /* Optional: everything written so far has been handed to the socket
     * (orc_api_stream_buffered() is 0) and the stream still takes writes.
     * Runs after writes only, from a loop callback. */
    void (*drained)(orc_api_stream_t *s, void *data);
    /* Required: the stream is over. status 0: it was ended (by the owner or
     * at shutdown) and its data went out; ORC_ECANCELED: the client went away
     * or the stream was cut off first. Runs exactly once, from a loop
     * callback, never from inside an orc_api_stream_* call; after it returns
     * the stream is freed: forget it. */
    void (*closed)(orc_api_stream_t *s, int status, void *data);
} orc_api_stream_cbs_t;

/* Answers req with a stream: status (200, ...), content_type (copied), the
 * headers set so far, X-Request-Id. cbs must outlive the stream; data is
 * handed to them. Works from the handler or later on a deferred request.
 * Returns 0 and *out (the callbacks then run as said above; req itself must
 * not be touched any more, only s), or a negative code with nothing sent and
 * no callback to come: ORC_EINVAL (answered already, bad status, no closed
 * callback), ORC_ECANCELED (the request is gone), ORC_ENOMEM, or ORC_EHTTP
 * with 503 recorded for the router (too many open streams, or the server is
 * shutting down), so that a handler can return the code as it is. A HEAD
 * request gets the headers and an empty body: the stream is ended at once
 * and writes are dropped. */
int orc_api_stream_start(orc_api_req_t *req, int status, const char *content_type,
                         const orc_api_stream_cbs_t *cbs, void *data, orc_api_stream_t **out);
/* Queues len bytes (copied) for the client. Returns 0; ORC_ECANCELED once
 * the stream was ended, cut off or lost (nothing is queued; closed() comes or
 * came); ORC_ELIMIT when the client is that far behind (the stream is cut
 * off); ORC_ENOMEM (likewise). */
int orc_api_stream_write(orc_api_stream_t *s, const void *data, size_t len);
/* The same with printf formatting. */
int orc_api_stream_printf(orc_api_stream_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Ends the body after what was written. closed() follows once it went out.
 * Returns 0, or ORC_ECANCELED if the stream was already ended or lost. */
int orc_api_stream_end(orc_api_stream_t *s);
/* True while the stream takes writes (not ended, cut off or lost). */
bool orc_api_stream_open(const orc_api_stream_t *s);
/* Bytes written and not yet handed to the socket. */
size_t orc_api_stream_buffered(const orc_api_stream_t *s);
/* The request id of the stream's request (for logs). */
const char *orc_api_stream_id(const orc_api_stream_t *s);

#endif
