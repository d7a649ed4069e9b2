/*
 * Answering a request: every orc_api_send_* ends in orc_api_respond(), which
 * sets the status, the reason phrase, Content-Type, Content-Length and
 * X-Request-Id, suppresses the body for HEAD, 204 and 304, closes the
 * connection after the response while the server drains, and sends the
 * body in one piece. Also the reason phrases and the error JSON of API.md.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {100, "Continue"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {304, "Not Modified"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {406, "Not Acceptable"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {410, "Gone"},
    {411, "Length Required"},
    {412, "Precondition Failed"},
    {413, "Payload Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {416, "Range Not Satisfiable"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Entity"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

const char *orc_http_reason(int status)
{
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].status == status)
            return reasons[i].reason;
    return "Unknown";
}

int orc_api_status_for(int rc)
{
    switch (rc) {
    case ORC_EINVAL:
    case ORC_EFORMAT:
    case ORC_ETOSCA:
        return 400;
    case ORC_EDENIED:
        return 403;
    case ORC_ENOTFOUND:
        return 404;
    case ORC_ECONFLICT:
        return 409;
    case ORC_ELIMIT:
        return 413;
    case ORC_ENOTSUP:
        return 501;
    case ORC_ECANCELED:
    case ORC_EAGAIN:
        return 503;
    default:
        return 500;
    }
}

/* The message as a JSON string; bytes that are not valid UTF-8 (a path a
 * client sent, say) become '?' rather than losing the whole error. */
static json_t *message_string(const char *message)
{
    json_t *s = json_string(message ? message : "");
    char *copy;

    if (s != NULL)
        return s;
    copy = orc_strdup(message);
    if (copy == NULL)
        return NULL;
    for (char *p = copy; *p; p++)
        if ((unsigned char)*p >= 0x80 || (unsigned char)*p < 0x20)
            *p = '?';
    s = json_string(copy);
    orc_free(copy);
    return s;
}

json_t *orc_api_error_json(int status, const char *message)
{
    return json_pack("{s:i, s:s, s:o}", "code", status, "title", orc_http_reason(status), "message",
                     message_string(message));
}

static bool is_bodyless(int status)
{
    return status < 200 || status == 204 || status == 304;
}

static void access_log(const orc_api_req_t *req, int status)
{
    orc_log(status >= 500 ? ORC_LOG_WARN : ORC_LOG_DEBUG, "http", "%s %s -> %d (%s) id=%s",
            req->method_name, req->path, status, req->route ? req->route->pattern : "unmatched",
            req->id);
}

int orc_api_respond(orc_api_req_t *req, int status, const char *content_type, const void *body,
                    size_t len)
{
    static h2o_generator_t generator = {NULL, NULL};
    h2o_req_t *h = req->h2o;
    h2o_iovec_t buf;
    bool bodyless = is_bodyless(status);

    if (req->gone)
        return ORC_ECANCELED;
    if (req->status != 0 || status < 100 || status > 599)
        return ORC_EINVAL;
    req->status = status;
    if (req->deferred)
        orc_api_req_undefer(req);
    h->res.status = status;
    h->res.reason = orc_http_reason(status);
    if (content_type != NULL && !bodyless)
        h2o_add_header(&h->pool, &h->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                       strlen(content_type));
    h2o_add_header_by_str(&h->pool, &h->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, req->id,
                          strlen(req->id));
    h->res.content_length = bodyless ? SIZE_MAX : len;
    if (req->api->draining)
        h->http1_is_persistent = 0;
    access_log(req, status);
    h2o_start_response(h, &generator);
    if (bodyless || req->method == ORC_HTTP_HEAD || len == 0) {
        h2o_send(h, NULL, 0, H2O_SEND_STATE_FINAL);
    } else {
        buf = h2o_strdup(&h->pool, body, len);
        h2o_send(h, &buf, 1, H2O_SEND_STATE_FINAL);
    }
    return 0;
}

int orc_api_set_header(orc_api_req_t *req, const char *name, const char *value)
{
    h2o_req_t *h = req->h2o;
    h2o_iovec_t n, v;

    if (req->status != 0 || name == NULL || value == NULL || name[0] == '\0' ||
        strpbrk(name, " :\r\n") != NULL || strpbrk(value, "\r\n") != NULL)
        return ORC_EINVAL;
    n = h2o_strdup(&h->pool, name, strlen(name));
    v = h2o_strdup(&h->pool, value, strlen(value));
    h2o_strtolower(n.base, n.len);
    h2o_add_header_by_str(&h->pool, &h->res.headers, n.base, n.len, 1, NULL, v.base, v.len);
    return 0;
}

int orc_api_send_body(orc_api_req_t *req, int status, const char *content_type, const void *body,
                      size_t len)
{
    return orc_api_respond(req, status, content_type, body, len);
}

int orc_api_send_text(orc_api_req_t *req, int status, const char *text, size_t len)
{
    return orc_api_respond(req, status, "text/plain; charset=utf-8", text, len);
}

int orc_api_send_status(orc_api_req_t *req, int status)
{
    return orc_api_respond(req, status, NULL, NULL, 0);
}

/* Answers' JSON: compact, reals with 12 significant digits (3.094, not
 * 3.0939999999999999). */
#define API_JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(12))

int orc_api_send_json(orc_api_req_t *req, int status, const json_t *body)
{
    size_t len = body ? json_dumpb(body, NULL, 0, API_JSON_FLAGS) : 0;
    char *text;
    int rc;

    if (len == 0) /* NULL body, or a value jansson cannot encode */
        return orc_api_send_error(req, 500, "the response could not be encoded");
    text = orc_malloc(len);
    if (text == NULL)
        return orc_api_send_error(req, 503, "out of memory");
    json_dumpb(body, text, len, API_JSON_FLAGS);
    rc = orc_api_respond(req, status, "application/json", text, len);
    orc_free(text);
    return rc;
}

int orc_api_send_json_new(orc_api_req_t *req, int status, json_t *body)
{
    int rc = orc_api_send_json(req, status, body);

    json_decref(body);
    return rc;
}

static int send_error_v(orc_api_req_t *req, int status, const char *fmt, va_list ap)
{
    char msg[1024];
    json_t *body;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    body = orc_api_error_json(status, msg);
    if (body == NULL) /* out of memory: still answer */
        return orc_api_respond(req, status, "application/json", "{}", 2);
    return orc_api_send_json_new(req, status, body);
}

int orc_api_send_error(orc_api_req_t *req, int status, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = send_error_v(req, status, fmt, ap);
    va_end(ap);
    return rc;
}

void orc_api_req_undefer(orc_api_req_t *req)
{
    *req->dprev = req->dnext;
    if (req->dnext != NULL)
        req->dnext->dprev = req->dprev;
    req->dnext = NULL;
    req->dprev = NULL;
    req->deferred = false;
}

int orc_api_req_defer(orc_api_req_t *req, orc_api_cancel_fn cancel, void *data)
{
    orc_api_t *api = req->api;

    if (req->gone)
        return ORC_ECANCELED;
    if (req->status != 0 || req->deferred || cancel == NULL)
        return ORC_EINVAL;
    req->deferred = true;
    req->cancel = cancel;
    req->cancel_data = data;
    req->dnext = api->deferred;
    req->dprev = &api->deferred;
    if (api->deferred != NULL)
        api->deferred->dprev = &req->dnext;
    api->deferred = req;
    return 0;
}
