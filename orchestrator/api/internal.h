/*
 * What the files of orchestrator/api share and what the unit tests reach:
 * the route table and its matcher, query and percent-decoding, the bounded
 * JSON reader, the metric series, the orc_api_s / orc_api_req_s structs, and
 * the hooks between the server (http.c), the router and streams (stream.c).
 * Nothing outside orchestrator/api includes this (subsystems use api.h, the
 * daemon server.h).
 */
#ifndef ORC_API_INTERNAL_H
#define ORC_API_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <h2o.h>
#include <uv.h>

#include "../base.h"
#include "../config.h"
#include "api.h"
#include "auth.h"
#include "ratelimit.h"
#include "server.h"

#define ORC_API_MAX_SEGMENTS 32 /* path segments of a pattern (and of a matched path) */
#define ORC_API_MAX_PARAMS 8    /* {params} in one pattern */
#define ORC_API_ALL_METHODS 0x7fu

/* ---- routes ---------------------------------------------------------------------- */

struct orc_metric_series;

struct orc_route {
    unsigned method; /* one ORC_HTTP_* bit */
    const char *method_name;
    char *pattern;
    char *segs[ORC_API_MAX_SEGMENTS]; /* literal text, or the {param}'s name */
    uint32_t param_mask;              /* bit i set: segment i is a parameter */
    size_t nseg;
    orc_api_handler_fn handler;
    void *data;
    orc_api_access_t access;
    json_t *op;                          /* the OpenAPI operation object */
    struct orc_metric_series *series[2]; /* [0] the route's method, [1] HEAD on a GET route */
};

struct orc_router {
    struct orc_route **routes;
    size_t count;
    size_t cap;
};

typedef struct orc_route_match_s {
    const struct orc_route *route; /* NULL: nothing for this method */
    unsigned allow;                /* methods the path takes (0: unknown path) */
    size_t nparams;
    const char *names[ORC_API_MAX_PARAMS];
    char *values[ORC_API_MAX_PARAMS]; /* decoded, inside the caller's buffer */
} orc_route_match_t;

void orc_router_init(struct orc_router *r);
void orc_router_fini(struct orc_router *r);
/* Parses and adds a route (see orc_api_register). On failure why says why. */
int orc_router_add(struct orc_router *r, const orc_api_route_t *def, struct orc_route **out,
                   char *why, size_t whylen);
/* Matches method (one ORC_HTTP_* bit, or 0 for an unknown method) and path
 * (no query string). buf receives decoded parameter values; buflen >= len is
 * always enough. Returns 0 with m->route set;
 * ORC_ENOTFOUND (no route has this path: 404); ORC_ENOTSUP (the path exists
 * for the methods in m->allow: 405); ORC_EFORMAT (bad percent-encoding: 400).
 * HEAD falls back to GET routes. */
int orc_router_match(const struct orc_router *r, unsigned method, const char *path, size_t len,
                     orc_route_match_t *m, char *buf, size_t buflen);
/* "GET, HEAD, OPTIONS" for an allow mask (HEAD and OPTIONS added as the
 * router answers them). Returns buf. */
const char *orc_api_allow_text(unsigned allow, char *buf, size_t len);
/* The name of a method bit ("GET"); "OTHER" for anything else. */
const char *orc_http_method_name(unsigned bit);

/* ---- decoding -------------------------------------------------------------------- */

/* Percent-decodes s[0..len) into out (room for len bytes), '+' as a space if
 * plus_space. Fails with ORC_EFORMAT on a bad escape or an encoded NUL. */
int orc_pct_decode(const char *s, size_t len, bool plus_space, char *out, size_t *outlen);

typedef struct orc_query_pair_s {
    char *name;
    char *value;
} orc_query_pair_t;

/* Upper bound of the pairs in a query string of len bytes. */
size_t orc_query_max_pairs(const char *qs, size_t len);
/* Parses "a=1&b=x%20y&flag" (no leading '?') into items (room for
 * orc_query_max_pairs) with strings decoded into buf (room for len + 2 *
 * pairs bytes). Empty pieces ("a=1&&b") are skipped. Returns 0 and *count,
 * or ORC_EFORMAT. */
int orc_query_parse(const char *qs, size_t len, orc_query_pair_t *items, size_t *count, char *buf);

/* Parses a JSON text of len bytes, refusing nesting deeper than max_depth.
 * Returns 0 and *out; ORC_EFORMAT for empty or bad JSON; ORC_ELIMIT for
 * depth. why gets "... at line L, column C: ..." for the client. */
int orc_json_parse_limited(const char *data, size_t len, unsigned max_depth, json_t **out,
                           char *why, size_t whylen);
/* True for application/json and application/<x>+json (parameters ignored). */
bool orc_media_type_is_json(const char *type, size_t len);

/* ---- metrics --------------------------------------------------------------------- */

#define ORC_METRIC_BUCKETS 12

struct orc_status_count {
    int status;
    uint64_t count;
};

/* Counters and the duration histogram of one (method, route) pair. */
struct orc_metric_series {
    struct orc_metric_series *next;
    const char *method; /* label values (static or owned by the route) */
    const char *route;
    struct orc_status_count *statuses;
    size_t nstatuses;
    uint64_t buckets[ORC_METRIC_BUCKETS]; /* cumulative at render time */
    uint64_t observations;
    double sum_seconds;
};

struct orc_metrics {
    struct orc_metric_series *series; /* every series, creation order */
    struct orc_metric_series **tail;
    struct orc_metric_series *unmatched[8]; /* per method label, route "unmatched" */
    uint64_t connections_total;
    uint64_t connections_rejected;
    uint64_t requests_in_flight;
};

void orc_metrics_init(struct orc_metrics *m);
void orc_metrics_fini(struct orc_metrics *m);
/* The series for a route (and HEAD) or for unmatched requests; NULL on OOM. */
struct orc_metric_series *orc_metrics_route_series(struct orc_metrics *m, struct orc_route *route,
                                                   bool head);
struct orc_metric_series *orc_metrics_unmatched(struct orc_metrics *m, unsigned method_bit);
/* Counts a finished request; seconds < 0: no duration known. */
void orc_metrics_observe(struct orc_metric_series *s, int status, double seconds);

/* ---- the api and its requests ---------------------------------------------------------- */

struct orc_httpd; /* the server (http.c) */
struct orc_httpd_conn;

struct orc_ready_check {
    char *name;
    orc_api_ready_fn fn;
    void *data;
};

struct orc_metrics_source {
    orc_api_metrics_fn fn;
    void *data;
};

/* Streams of an api (stream.c). */
struct orc_api_streams {
    orc_api_stream_t *list; /* open streams, a list */
    size_t open;
    uint64_t total;    /* started */
    uint64_t rejected; /* refused: too many, or shutting down */
    uint64_t cut;      /* cut off: the client did not read (fast enough) */
    uint64_t lost;     /* the client went away before the end */
};

/* The served /openapi.json text around its server URL, and what it was built from. */
struct orc_openapi_cache {
    char *head, *tail;
    size_t routes, schemas;
};

struct orc_api_s {
    uv_loop_t *loop;
    const orc_config_t *cfg;
    struct orc_router router;
    json_t *schemas; /* components.schemas of the OpenAPI document */
    struct orc_openapi_cache openapi;
    struct orc_ready_check *checks;
    size_t nchecks;
    struct orc_metrics_source *sources;
    size_t nsources;
    struct orc_metrics metrics;
    int64_t start_ms;        /* wall clock at creation, for process_start_time_seconds */
    orc_api_req_t *deferred; /* requests answered later, a list */
    struct orc_httpd *http;
    struct orc_api_streams streams;
    struct orc_auth *auth; /* NULL: authentication is off */
    struct orc_ratelimit *ratelimit; /* per user; NULL: none */
    json_t *no_groups;     /* [] for callers without groups */
    bool draining; /* shutting down: responses close their connection */
    bool ready;    /* the daemon's own readiness (orc_api_set_ready) */
};

struct orc_api_req_s {
    orc_api_t *api;
    h2o_req_t *h2o;
    struct orc_httpd_conn *conn;
    const struct orc_route *route;
    struct orc_metric_series *series;
    unsigned method;
    const char *method_name;
    char *path; /* without the query string, NUL-terminated */
    orc_route_match_t match;
    orc_query_pair_t *query;
    size_t nquery;
    char *base_url;
    char id[80];
    uint64_t start_ns;
    int status; /* sent status; 0: not answered yet */
    bool deferred;
    bool gone; /* h2o is disposing of the request: nothing may be sent */
    orc_api_cancel_fn cancel;
    void *cancel_data;
    orc_api_req_t *dnext; /* deferred list links */
    orc_api_req_t **dprev;
    int fail_status;
    char *fail_msg;
    orc_api_stream_t *stream; /* the response is this stream (stream.c) */
    orc_identity_t identity;  /* the caller (dispatch.c) */
    json_t *identity_groups;  /* owned: what identity.groups points to */
    struct orc_auth_wait auth_wait; /* waiting for an issuer's keys */
};

/* dispatch.c: the h2o handler of every request. */
int orc_api_dispatch(orc_api_t *api, h2o_req_t *hreq, struct orc_httpd_conn *conn);
/* Takes a deferred request off the api's list. */
void orc_api_req_undefer(orc_api_req_t *req);
/* Called by the server when a request's pool is cleared (http.c). */
void orc_httpd_request_done(struct orc_httpd *http, struct orc_httpd_conn *conn);
/* Answers every deferred request with 503 after telling its owner. */
void orc_api_cancel_deferred(orc_api_t *api);
/* response.c: sends a fully built response (the core of every orc_api_send_*). */
int orc_api_respond(orc_api_req_t *req, int status, const char *content_type, const void *body,
                    size_t len);
/* Counts a response that h2o produced before routing (400, 413, ...). */
void orc_api_count_unrouted(orc_api_t *api, const h2o_req_t *hreq, int status);

/* stream.c: the server's side of streams. */
/* The request of s is being disposed of: tell the owner, free s. */
void orc_api_stream_gone(orc_api_stream_t *s);
/* The client closed its end: cut s off. */
void orc_api_stream_lost(orc_api_stream_t *s);
/* Its writes made no progress for limits.request_timeout: cut s off. */
void orc_api_stream_stalled(orc_api_stream_t *s);
/* Draining starts: end every stream. */
void orc_api_streams_drain(orc_api_t *api);
/* The kick timer fired: send what streams left for a loop callback. */
void orc_api_streams_kick(orc_api_t *api);
/* The stream metrics (an orc_api_metrics_fn; data is the api). */
void orc_api_streams_metrics(void *data, orc_api_text_t *out);

/* http.c: the server. */
/* Runs orc_api_streams_kick() from a loop callback soon. */
void orc_httpd_kick(struct orc_httpd *http);
/* Shuts a connection down both ways: h2o's next write fails and closes it. */
void orc_httpd_conn_abort(struct orc_httpd_conn *conn);
/* The stream a connection carries (NULL: none): the sweep watches such a
 * connection for the client closing its end. */
void orc_httpd_conn_set_stream(struct orc_httpd_conn *conn, orc_api_stream_t *s);
int orc_httpd_new(orc_api_t *api, struct orc_httpd **out);
void orc_httpd_free(struct orc_httpd *http);
/* Open client connections. */
size_t orc_httpd_open_connections(const struct orc_httpd *http);
/* The local address of a request's connection as "host:port" (for links
 * when there is no usable Host header). Returns buf or NULL. */
const char *orc_httpd_local_authority(h2o_req_t *hreq, char *buf, size_t len);

/* tls.c: the server's TLS context from a PEM chain and key; NULL with err. */
SSL_CTX *orc_tls_server_ctx(const char *cert_file, const char *key_file, char *err,
                            size_t errlen);

/* endpoints.c, openapi.c, metrics.c */
int orc_api_register_builtin(orc_api_t *api);
json_t *orc_api_openapi(orc_api_t *api, const char *server_url);
/* The document's text for a request whose base URL is server_url ("/" when NULL or not
 * UTF-8), from a cache; caller frees. NULL when out of memory. */
char *orc_api_openapi_text(orc_api_t *api, const char *server_url, size_t *len);
void orc_api_openapi_cache_free(orc_api_t *api);
json_t *orc_openapi_operation(const orc_api_route_t *def, const struct orc_route *route, char *why,
                              size_t whylen);
/* Renders every metric (built in and sources) as Prometheus text; caller frees. */
char *orc_api_metrics_text(orc_api_t *api, size_t *len);

#endif
