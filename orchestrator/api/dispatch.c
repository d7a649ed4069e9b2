/*
 * From an h2o request to a handler and back: builds the orc_api_req_t (in
 * the request's pool, with a dispose hook that runs when h2o is done with
 * the request), enforces the header limit, parses the query, routes (404,
 * 405 with Allow, automatic OPTIONS), runs the handler and turns a handler's
 * error code into the error JSON. Between routing and the handler, the caller is
 * authenticated (auth.h) as the route's access asks, waiting for an issuer's keys
 * when they are being fetched; failures are 401/403 with WWW-Authenticate (RFC 6750).
 * The dispose hook counts the request in the
 * metrics and tells the owner of a deferred request or of a stream that it is
 * gone.
 */
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "internal.h"

static void req_dispose(void *p)
{
    orc_api_req_t *req = p;
    orc_api_t *api = req->api;
    double seconds = (double)(uv_hrtime() - req->start_ns) / 1e9;
    bool streamed = req->stream != NULL;

    req->gone = true;
    json_decref(req->identity_groups);
    req->identity_groups = NULL;
    if (req->deferred) { /* the connection went away before the answer */
        orc_api_req_undefer(req);
        req->cancel(req, req->cancel_data);
    }
    if (streamed) /* its owner hears that it is over; a stream's length is no latency */
        orc_api_stream_gone(req->stream);
    /* 499: closed before an answer was sent (nginx's convention) */
    if (req->series != NULL)
        orc_metrics_observe(req->series, req->status ? req->status : 499, streamed ? -1 : seconds);
    api->metrics.requests_in_flight--;
    orc_httpd_request_done(api->http, req->conn);
}

static bool id_is_sane(const char *s, size_t len)
{
    if (len == 0 || len >= sizeof(((orc_api_req_t *)0)->id))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

/* A UUIDv7 for a request id, made cheaply (no system call, no printf, once
 * seeded): the millisecond clock, then bits that are random per process plus
 * a counter, so that ids never repeat within a process and differ between
 * processes. */
static void fast_uuid7(char out[ORC_UUID_LEN])
{
    static unsigned char seed[10];
    static uint64_t counter;
    unsigned char b[16];
    uint64_t ms = (uint64_t)orc_now_ms(), low = 0;

    if (counter == 0 && getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
        memcpy(seed, &ms, sizeof(ms)); /* no entropy: still unique in the process */
    for (int i = 4; i < 10; i++)
        low = low << 8 | seed[i];
    low += ++counter;
    for (int i = 0; i < 6; i++) {
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
        b[10 + i] = (unsigned char)(low >> (40 - 8 * i));
    }
    b[6] = (unsigned char)(0x70 | (seed[0] & 0x0f)); /* version 7 */
    b[7] = seed[1];
    b[8] = (unsigned char)(0x80 | (seed[2] & 0x3f)); /* RFC 9562 variant */
    b[9] = seed[3];
    orc_uuid_format(b, out);
}

static void set_request_id(orc_api_req_t *req)
{
    const h2o_req_t *h = req->h2o;

    for (size_t i = 0; i < h->headers.size; i++) {
        const h2o_header_t *hd = &h->headers.entries[i];
        if (hd->name->len == 12 && memcmp(hd->name->base, "x-request-id", 12) == 0 &&
            id_is_sane(hd->value.base, hd->value.len)) {
            memcpy(req->id, hd->value.base, hd->value.len);
            req->id[hd->value.len] = '\0';
            return;
        }
    }
    fast_uuid7(req->id);
}

/* Bytes of the request head as the limit counts them: the request line and
 * each header line (name, ": ", value, CRLF). */
static size_t head_bytes(const h2o_req_t *h)
{
    size_t n = h->input.method.len + h->input.path.len + sizeof(" HTTP/1.1\r\n");

    if (h->input.authority.len)
        n += sizeof("host: \r\n") - 1 + h->input.authority.len;
    for (size_t i = 0; i < h->headers.size; i++)
        n += h->headers.entries[i].name->len + h->headers.entries[i].value.len + 4;
    return n;
}

static orc_api_req_t *req_new(orc_api_t *api, h2o_req_t *h, struct orc_httpd_conn *conn)
{
    orc_api_req_t *req = h2o_mem_alloc_shared(&h->pool, sizeof(*req), req_dispose);
    size_t plen = h->query_at != SIZE_MAX ? h->query_at : h->path.len;

    memset(req, 0, sizeof(*req));
    req->api = api;
    req->h2o = h;
    req->conn = conn;
    req->start_ns = uv_hrtime();
    req->method = orc_http_method_bit(h->method.base, h->method.len);
    req->method_name = req->method ? orc_http_method_name(req->method)
                                   : h2o_strdup(&h->pool, h->method.base, h->method.len).base;
    req->path = h2o_strdup(&h->pool, h->path.base, plen).base;
    req->series = orc_metrics_unmatched(&api->metrics, req->method);
    api->metrics.requests_in_flight++;
    set_request_id(req);
    return req;
}

static int parse_query(orc_api_req_t *req)
{
    h2o_req_t *h = req->h2o;
    const char *qs;
    size_t len, max;

    if (h->query_at == SIZE_MAX)
        return 0;
    qs = h->path.base + h->query_at + 1;
    len = h->path.len - h->query_at - 1;
    max = orc_query_max_pairs(qs, len);
    req->query = h2o_mem_alloc_pool(&h->pool, max * sizeof(*req->query));
    return orc_query_parse(qs, len, req->query, &req->nquery,
                           h2o_mem_alloc_pool(&h->pool, len + 2 * max + 1));
}

/* Checks that come before routing; returns true when it answered. */
static bool refuse_early(orc_api_req_t *req)
{
    const orc_limits_t *lim = &req->api->cfg->limits;
    size_t head = head_bytes(req->h2o);

    if (head > lim->max_header_bytes) {
        req->h2o->http1_is_persistent = 0;
        orc_api_send_error(req, 431,
                           "the request line and headers take %zu bytes, more than the "
                           "limit of %zu (limits.max_header_bytes)",
                           head, lim->max_header_bytes);
        return true;
    }
    if (req->h2o->entity.len > lim->max_body_bytes) {
        req->h2o->http1_is_persistent = 0;
        orc_api_send_error(req, 413,
                           "the request body exceeds the limit of %zu bytes "
                           "(limits.max_body_bytes)",
                           lim->max_body_bytes);
        return true;
    }
    if (parse_query(req) < 0) {
        orc_api_send_error(req, 400, "malformed query string: bad percent-encoding");
        return true;
    }
    return false;
}

/* Answers 404, 405 or OPTIONS for a path without a route for this method. */
static void answer_unrouted(orc_api_req_t *req, int rc)
{
    char allow[96];

    if (rc == ORC_EFORMAT) {
        orc_api_send_error(req, 400, "malformed path %s: bad percent-encoding", req->path);
        return;
    }
    if (rc == ORC_ENOTFOUND) {
        orc_api_send_error(req, 404, "no resource at %s", req->path);
        return;
    }
    orc_api_allow_text(req->match.allow, allow, sizeof(allow));
    orc_api_set_header(req, "allow", allow);
    if (req->method == ORC_HTTP_OPTIONS)
        orc_api_send_status(req, 204);
    else
        orc_api_send_error(req, 405, "method %s is not allowed on %s (allowed: %s)",
                           req->method_name, req->path, allow);
}

/* After a handler (or a continuation) returned rc: nothing to do when it answered or
 * deferred; else the failure it recorded (orc_api_req_fail) is the answer. */
static void answer_after(orc_api_req_t *req, int rc)
{
    struct orc_route *route = (struct orc_route *)req->route;

    if (req->status != 0) {
        if (rc < 0)
            orc_log(ORC_LOG_WARN, "http", "%s %s: handler failed after answering: %s",
                    req->method_name, route->pattern, orc_strerror(rc));
        return;
    }
    if (rc == 0 && req->deferred)
        return;
    if (rc == 0) {
        orc_log(ORC_LOG_ERROR, "http", "%s %s: handler returned without answering",
                req->method_name, route->pattern);
        rc = ORC_EHTTP;
    }
    if (req->deferred) { /* deferred, then failed: the owner lets go, the router answers */
        orc_api_req_undefer(req);
        req->cancel(req, req->cancel_data);
    }
    if (req->fail_status != 0)
        orc_api_send_error(req, req->fail_status, "%s", req->fail_msg);
    else
        orc_api_send_error(req, orc_api_status_for(rc), "%s", orc_strerror(rc));
}

static void run_handler(orc_api_req_t *req)
{
    struct orc_route *route = (struct orc_route *)req->route;

    req->series = orc_metrics_route_series(
        &req->api->metrics, route, req->method == ORC_HTTP_HEAD && route->method != ORC_HTTP_HEAD);
    answer_after(req, route->handler(req, route->data));
}

void orc_api_req_continue(orc_api_req_t *req, orc_api_handler_fn run, void *data)
{
    if (req->deferred)
        orc_api_req_undefer(req);
    answer_after(req, run(req, data));
}

/* ---- authentication ---- */

/* Text of the caller's making (an issuer) made safe inside a quoted header value. */
static void header_safe(const char *in, char *out, size_t len)
{
    size_t i = 0;

    for (; *in && i + 1 < len; in++)
        out[i++] = (*in == '"' || *in == '\\' || (unsigned char)*in < 0x20 ||
                    (unsigned char)*in >= 0x7f) ? '?' : *in;
    out[i] = '\0';
}

/* 401 or 403 as RFC 6750 and API.md say: WWW-Authenticate and
 * {"error":..., "error_description":...}; 503 (keys unavailable) as every other error. */
static void send_auth_error(orc_api_req_t *req, int status, const char *error, const char *why)
{
    char safe[340], hdr[512];

    orc_log(ORC_LOG_INFO, "auth", "%d %s %s: %s", status, req->method_name, req->path, why);
    if (status == 503) {
        orc_api_set_header(req, "retry-after", "5");
        orc_api_send_error(req, 503, "%s", why);
        return;
    }
    header_safe(why, safe, sizeof(safe));
    if (error)
        snprintf(hdr, sizeof(hdr), "Bearer realm=\"orchestrator\", error=\"%s\", "
                 "error_description=\"%s\"", error, safe);
    else
        snprintf(hdr, sizeof(hdr), "Bearer realm=\"orchestrator\"");
    orc_api_set_header(req, "www-authenticate", hdr);
    orc_api_send_json_new(req, status, json_pack("{ssss}", "error",
                                                 error ? error : "invalid_token",
                                                 "error_description", why));
}

static unsigned roles_needed(orc_api_access_t access)
{
    switch (access) {
    case ORC_API_ACCESS_ADMIN:
        return ORC_ROLE_ADMIN;
    case ORC_API_ACCESS_OPERATOR:
        return ORC_ROLE_OPERATOR;
    case ORC_API_ACCESS_PUBLIC:
        return 0;
    default:
        return ORC_ROLE_USER;
    }
}

static void take_identity(orc_api_req_t *req, struct orc_auth_result *res)
{
    req->identity = (orc_identity_t){
        .issuer = orc_api_req_strdup(req, res->id.issuer),
        .subject = orc_api_req_strdup(req, res->id.subject),
        .groups = res->id.groups,
        .roles = res->roles,
    };
    req->identity_groups = res->id.groups; /* the request owns it now */
    res->id.groups = NULL;
}

/* limits.user_rate: true when it answered 429. */
static bool over_rate(orc_api_req_t *req)
{
    const orc_identity_t *id = &req->identity;
    const orc_limits_t *lim = &req->api->cfg->limits;
    char key[2 * ORC_JWT_SUBJECT_LEN + 2], retry[16];
    unsigned after = 1;

    snprintf(key, sizeof(key), "%s\n%s", id->issuer, id->subject);
    if (orc_ratelimit_take(req->api->ratelimit, key, uv_now(req->api->loop), &after))
        return false;
    snprintf(retry, sizeof(retry), "%u", after);
    orc_api_set_header(req, "retry-after", retry);
    orc_api_send_error(req, 429,
                       "%s sent more than %u requests per second (burst %u: limits.user_rate, "
                       "limits.user_burst); retry in %u s",
                       id->subject, lim->user_rate, lim->user_burst, after);
    return true;
}

static void authorize(orc_api_req_t *req, bool may_wait);

static void on_keys_ready(struct orc_auth_wait *w)
{
    orc_api_req_t *req = (orc_api_req_t *)((char *)w - offsetof(orc_api_req_t, auth_wait));

    orc_api_req_undefer(req);
    authorize(req, false);
}

static void on_wait_canceled(orc_api_req_t *req, void *data)
{
    (void)data;
    orc_auth_wait_cancel(&req->auth_wait);
}

/* Authenticates the caller as the route asks, then runs the handler. */
static void authorize(orc_api_req_t *req, bool may_wait)
{
    const struct orc_route *route = req->route;
    orc_api_t *api = req->api;
    struct orc_auth_result res;
    unsigned need = roles_needed(route->access);
    int rc;

    req->identity = (orc_identity_t){.issuer = "", .subject = "", .groups = api->no_groups};
    if (api->auth == NULL) {
        req->identity = (orc_identity_t){"local", "anonymous", api->no_groups,
                                         ORC_ROLE_USER | ORC_ROLE_OPERATOR | ORC_ROLE_ADMIN, true};
    } else if (need != 0) {
        req->auth_wait.ready = on_keys_ready;
        rc = orc_auth_check(api->auth, orc_api_req_header(req, "authorization"),
                            may_wait ? &req->auth_wait : NULL, &res);
        if (rc == ORC_EAGAIN) {
            orc_api_req_defer(req, on_wait_canceled, NULL);
            return;
        }
        if (res.status != 0) {
            send_auth_error(req, res.status, res.error, res.why);
            return;
        }
        take_identity(req, &res);
        orc_jwt_identity_clear(&res.id);
        if ((req->identity.roles & need) == 0) {
            send_auth_error(req, 403, "insufficient_scope",
                            need == ORC_ROLE_ADMIN ? "this needs the admin role"
                                                   : "this needs the operator role");
            return;
        }
        if (over_rate(req))
            return;
    }
    run_handler(req);
}

int orc_api_dispatch(orc_api_t *api, h2o_req_t *h, struct orc_httpd_conn *conn)
{
    orc_api_req_t *req = req_new(api, h, conn);
    size_t plen = strlen(req->path);
    char *buf;
    int rc;

    if (refuse_early(req))
        return 0;
    buf = h2o_mem_alloc_pool(&h->pool, plen + 1);
    rc = orc_router_match(&api->router, req->method, req->path, plen, &req->match, buf, plen + 1);
    if (rc < 0) {
        answer_unrouted(req, rc);
        return 0;
    }
    req->route = req->match.route;
    authorize(req, true);
    return 0;
}

void orc_api_cancel_deferred(orc_api_t *api)
{
    while (api->deferred != NULL) {
        orc_api_req_t *req = api->deferred;
        orc_api_req_undefer(req);
        req->cancel(req, req->cancel_data);
        req->h2o->http1_is_persistent = 0;
        orc_api_send_error(req, 503, "the server is shutting down");
    }
}

void orc_api_count_unrouted(orc_api_t *api, const h2o_req_t *h, int status)
{
    unsigned method = orc_http_method_bit(h->input.method.base, h->input.method.len);
    struct orc_metric_series *s = orc_metrics_unmatched(&api->metrics, method);

    if (s != NULL)
        orc_metrics_observe(s, status, -1);
}
