/*
 * Reading a request: query strings, headers, the JSON body under the depth
 * limit, the base URL for absolute links, request-lifetime memory. Strings
 * handed out live in the h2o request's pool and go away with the request.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

/* ---- query strings ------------------------------------------------------------------- */

size_t orc_query_max_pairs(const char *qs, size_t len)
{
    size_t n = 1;

    for (size_t i = 0; i < len; i++)
        n += qs[i] == '&';
    return n;
}

int orc_query_parse(const char *qs, size_t len, orc_query_pair_t *items, size_t *count, char *buf)
{
    size_t i = 0, used = 0, n = 0;

    while (i <= len) {
        size_t end = i, eq, outlen;
        while (end < len && qs[end] != '&')
            end++;
        eq = i;
        while (eq < end && qs[eq] != '=')
            eq++;
        if (eq > i) { /* skips "" and "=x" */
            if (orc_pct_decode(qs + i, eq - i, true, buf + used, &outlen) < 0)
                return ORC_EFORMAT;
            items[n].name = buf + used;
            used += outlen;
            buf[used++] = '\0';
            if (eq < end &&
                orc_pct_decode(qs + eq + 1, end - eq - 1, true, buf + used, &outlen) < 0)
                return ORC_EFORMAT;
            items[n].value = buf + used;
            used += eq < end ? outlen : 0;
            buf[used++] = '\0';
            n++;
        }
        i = end + 1;
    }
    *count = n;
    return 0;
}

/* ---- JSON bodies ----------------------------------------------------------------------- */

/* Finds where nesting first goes deeper than max; returns false then, with
 * the 1-based line and column of the opening bracket. */
static bool depth_within(const char *s, size_t len, unsigned max, int *line, int *col)
{
    unsigned depth = 0;
    bool in_string = false, escaped = false;
    size_t line_start = 0;

    *line = 1;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\n') {
            (*line)++;
            line_start = i + 1;
        }
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            if (++depth > max) {
                *col = (int)(i - line_start) + 1;
                return false;
            }
        } else if ((c == '}' || c == ']') && depth > 0) {
            depth--;
        }
    }
    return true;
}

int orc_json_parse_limited(const char *data, size_t len, unsigned max_depth, json_t **out,
                           char *why, size_t whylen)
{
    json_error_t error;
    int line, col;
    size_t blank = 0;

    *out = NULL;
    while (blank < len && strchr(" \t\r\n", data[blank]) != NULL && data[blank] != '\0')
        blank++;
    if (blank == len) {
        snprintf(why, whylen, "the request body is empty: a JSON document is expected");
        return ORC_EFORMAT;
    }
    if (!depth_within(data, len, max_depth, &line, &col)) {
        snprintf(why, whylen,
                 "the JSON request body nests deeper than %u levels at line %d, "
                 "column %d",
                 max_depth, line, col);
        return ORC_ELIMIT;
    }
    *out = json_loadb(data, len, JSON_REJECT_DUPLICATES, &error);
    if (*out == NULL) {
        snprintf(why, whylen, "invalid JSON in the request body at line %d, column %d: %s",
                 error.line, error.column, error.text);
        return ORC_EFORMAT;
    }
    return 0;
}

bool orc_media_type_is_json(const char *type, size_t len)
{
    size_t n = 0;

    while (n < len && type[n] != ';' && type[n] != ' ' && type[n] != '\t')
        n++;
    if (n == 16 && strncasecmp(type, "application/json", 16) == 0)
        return true;
    return n > 17 && strncasecmp(type, "application/", 12) == 0 &&
           strncasecmp(type + n - 5, "+json", 5) == 0;
}

int orc_api_req_json(orc_api_req_t *req, json_t **out)
{
    const char *type = orc_api_req_header(req, "content-type");
    char why[512];
    int rc;

    *out = NULL;
    if (type != NULL && !orc_media_type_is_json(type, strlen(type)))
        return orc_api_req_fail(req, 415, "the request body must be application/json, not %s",
                                type);
    rc = orc_json_parse_limited(req->h2o->entity.base ? req->h2o->entity.base : "",
                                req->h2o->entity.len, req->api->cfg->limits.json_max_depth, out,
                                why, sizeof(why));
    if (rc < 0)
        orc_api_req_fail(req, 400, "%s", why);
    return rc;
}

/* ---- accessors -------------------------------------------------------------------------- */

const char *orc_api_req_method(const orc_api_req_t *req)
{
    return req->method_name;
}

const char *orc_api_req_path(const orc_api_req_t *req)
{
    return req->path;
}

const char *orc_api_req_route(const orc_api_req_t *req)
{
    return req->route ? req->route->pattern : NULL;
}

const char *orc_api_req_param(const orc_api_req_t *req, const char *name)
{
    for (size_t i = 0; i < req->match.nparams; i++)
        if (strcmp(req->match.names[i], name) == 0)
            return req->match.values[i];
    return NULL;
}

const char *orc_api_req_query(const orc_api_req_t *req, const char *name)
{
    for (size_t i = 0; i < req->nquery; i++)
        if (strcmp(req->query[i].name, name) == 0)
            return req->query[i].value;
    return NULL;
}

size_t orc_api_req_query_count(const orc_api_req_t *req)
{
    return req->nquery;
}

void orc_api_req_query_at(const orc_api_req_t *req, size_t i, const char **name, const char **value)
{
    *name = i < req->nquery ? req->query[i].name : NULL;
    *value = i < req->nquery ? req->query[i].value : NULL;
}

const char *orc_api_req_header(orc_api_req_t *req, const char *name)
{
    h2o_req_t *h = req->h2o;
    size_t n = strlen(name);

    if (n == 4 && strcasecmp(name, "host") == 0)
        return h->input.authority.len
                   ? h2o_strdup(&h->pool, h->input.authority.base, h->input.authority.len).base
                   : NULL;
    for (size_t i = 0; i < h->headers.size; i++) {
        const h2o_header_t *hd = &h->headers.entries[i];
        if (hd->name->len == n && strncasecmp(hd->name->base, name, n) == 0)
            return h2o_strdup(&h->pool, hd->value.base, hd->value.len).base;
    }
    return NULL;
}

const char *orc_api_req_id(const orc_api_req_t *req)
{
    return req->id;
}

const void *orc_api_req_body(const orc_api_req_t *req, size_t *len)
{
    *len = req->h2o->entity.len;
    return req->h2o->entity.base ? req->h2o->entity.base : "";
}

void *orc_api_req_alloc(orc_api_req_t *req, size_t n)
{
    return h2o_mem_alloc_pool(&req->h2o->pool, n ? n : 1);
}

char *orc_api_req_strdup(orc_api_req_t *req, const char *s)
{
    return s ? h2o_strdup(&req->h2o->pool, s, strlen(s)).base : NULL;
}

const orc_identity_t *orc_api_req_identity(const orc_api_req_t *req)
{
    return &req->identity;
}

bool orc_identity_in_group(const orc_identity_t *id, const char *group)
{
    const json_t *g;
    size_t i;

    if (group == NULL)
        return false;
    json_array_foreach(id->groups, i, g)
        if (strcmp(json_string_value(g), group) == 0)
            return true;
    return false;
}

bool orc_identity_is(const orc_identity_t *id, const char *issuer, const char *subject)
{
    return (id->roles & ORC_ROLE_ADMIN) ||
           (issuer && subject && strcmp(id->issuer, issuer) == 0 &&
            strcmp(id->subject, subject) == 0);
}

orc_api_t *orc_api_req_api(const orc_api_req_t *req)
{
    return req->api;
}

/* ---- absolute links ---------------------------------------------------------------------- */

static bool is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-';
}

static bool is_v6_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
           c == '.';
}

/* A Host header we are willing to echo into links: host or [v6], then an
 * optional :port. s need not be NUL-terminated. */
static bool authority_is_sane(const char *s, size_t len)
{
    size_t i = 0;

    if (s == NULL || len == 0 || len > 255)
        return false;
    if (s[0] == '[') {
        for (i = 1; i < len && is_v6_char(s[i]); i++)
            ;
        if (i == 1 || i == len || s[i] != ']')
            return false;
        i++;
    } else {
        while (i < len && is_host_char(s[i]))
            i++;
        if (i == 0)
            return false;
    }
    if (i == len)
        return true;
    if (s[i] != ':' || i + 1 == len || len - i - 1 > 5)
        return false;
    for (i++; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

const char *orc_api_req_base_url(orc_api_req_t *req)
{
    h2o_req_t *h = req->h2o;
    const char *scheme = req->api->cfg->tls.cert_file ? "https" : "http";
    char local[96];

    if (req->base_url != NULL)
        return req->base_url;
    if (req->api->cfg->public_url != NULL) {
        req->base_url = orc_api_req_strdup(req, req->api->cfg->public_url);
    } else if (authority_is_sane(h->input.authority.base, h->input.authority.len)) {
        req->base_url = orc_api_req_alloc(req, h->input.authority.len + 9);
        snprintf(req->base_url, h->input.authority.len + 9, "%s://%.*s", scheme,
                 (int)h->input.authority.len, h->input.authority.base);
    } else {
        const char *a = orc_httpd_local_authority(h, local, sizeof(local));
        req->base_url = orc_api_req_alloc(req, sizeof(local) + 9);
        snprintf(req->base_url, sizeof(local) + 9, "%s://%s", scheme, a ? a : "localhost");
    }
    return req->base_url;
}

char *orc_api_req_url(orc_api_req_t *req, const char *fmt, ...)
{
    const char *base = orc_api_req_base_url(req);
    size_t blen = strlen(base);
    va_list ap;
    int n;
    char *out;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    out = orc_api_req_alloc(req, blen + (size_t)n + 1);
    memcpy(out, base, blen);
    va_start(ap, fmt);
    vsnprintf(out + blen, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return out;
}

/* ---- recorded failures -------------------------------------------------------------------- */

static int code_for_status(int status)
{
    switch (status) {
    case 400:
    case 422:
        return ORC_EINVAL;
    case 403:
        return ORC_EDENIED;
    case 404:
        return ORC_ENOTFOUND;
    case 409:
        return ORC_ECONFLICT;
    case 413:
        return ORC_ELIMIT;
    case 415:
        return ORC_EFORMAT;
    case 501:
        return ORC_ENOTSUP;
    default:
        return ORC_EHTTP;
    }
}

int orc_api_req_store_fail(orc_api_req_t *req, int rc, const char *detail)
{
    if (rc == ORC_EAGAIN) { /* busy, or the database cannot be reached (for now) */
        orc_log(ORC_LOG_WARN, "http", "%s %s: store unavailable: %s", req->method_name, req->path,
                detail);
        orc_api_set_header(req, "retry-after", "1");
        return orc_api_req_fail(req, 503, "the store is unavailable; retry shortly");
    }
    return orc_api_req_fail(req, 500, "store: %s", detail);
}

int orc_api_req_fail(orc_api_req_t *req, int status, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    req->fail_status = status;
    req->fail_msg = orc_api_req_alloc(req, n > 0 ? (size_t)n + 1 : 1);
    req->fail_msg[0] = '\0';
    if (n > 0) {
        va_start(ap, fmt);
        vsnprintf(req->fail_msg, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return code_for_status(status);
}
