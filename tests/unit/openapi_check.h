/*
 * Holds a running daemon to its own OpenAPI document. oa_document_check()
 * checks that the document is valid OpenAPI 3.0 as far as clients rely on
 * it: every $ref resolves, every schema is one json_schema.h can check,
 * every path parameter is declared (and only those), operationIds are
 * unique, every response has a description. oa_exchange_check() checks one
 * recorded HTTP exchange (daemon_fixture.h's fx_log) against it: the route
 * and method are documented, the status is among the documented responses,
 * the Content-Type is the documented one, the body validates against the
 * documented schema, and for a request that succeeded, its query parameters
 * are documented (their values valid) and its body validates against the
 * documented request schema. oa_check_recorded() runs both over everything
 * a test program sent. Include after daemon_fixture.h.
 */
#ifndef OPENAPI_CHECK_H
#define OPENAPI_CHECK_H

#include <ctype.h>
#include <errno.h>

#include "json_schema.h"

/* Statuses the router or the HTTP layer can give on any route (the
 * "default" response, the error JSON): they need no entry of their own. */
static inline bool oa_generic_status(long status)
{
    return status == 405 || status == 413 || status == 415 || status == 431 || status == 500 ||
           status == 503;
}

/* The n-th segment of a path ("/a/b/" has two); len gets its length. */
static inline size_t oa_segments(const char *path, const char *segs[], size_t lens[], size_t max)
{
    size_t n = 0, len = strlen(path);

    if (len > 1 && path[len - 1] == '/')
        len--; /* one trailing slash is ignored, as the router does */
    for (size_t i = 1; i <= len && n < max; n++) {
        size_t k = i;
        while (k < len && path[k] != '/')
            k++;
        segs[n] = path + i;
        lens[n] = k - i;
        i = k + 1;
    }
    return len <= 1 ? 0 : n;
}

/* The key of doc.paths that path matches (literal segments beat
 * parameters); NULL when none does. */
static inline const char *oa_match_path(const json_t *paths, const char *path)
{
    const char *rs[32], *ts[32], *best = NULL, *key;
    size_t rl[32], tl[32], nr = oa_segments(path, rs, rl, 32);
    int best_score = -1;
    json_t *item;

    for (size_t i = 0; i < nr; i++)
        if (rl[i] == 0)
            return NULL; /* "//": the router matches nothing */
    json_object_foreach((json_t *)paths, key, item)
    {
        size_t nt = oa_segments(key, ts, tl, 32);
        int score = 0;
        if (nt != nr)
            continue;
        for (size_t i = 0; i < nt && score >= 0; i++) {
            if (tl[i] > 1 && ts[i][0] == '{' && ts[i][tl[i] - 1] == '}')
                continue;
            score = tl[i] == rl[i] && memcmp(ts[i], rs[i], tl[i]) == 0 ? score + 1 : -1;
        }
        if (score > best_score) {
            best_score = score;
            best = key;
        }
    }
    return best;
}

/* Follows a $ref of an OpenAPI object (a response, a parameter). */
static inline const json_t *oa_deref(const json_t *doc, const json_t *obj)
{
    const json_t *ref = json_object_get(obj, "$ref");

    return ref ? js_pointer(doc, json_string_value(ref)) : obj;
}

/* The media type of a Content-Type, lower case, without parameters. */
static inline void oa_media_type(const char *ctype, char *out, size_t size)
{
    size_t n = 0;

    for (; ctype && *ctype && *ctype != ';' && *ctype != ' ' && n < size - 1; ctype++)
        out[n++] = (char)tolower((unsigned char)*ctype);
    out[n] = '\0';
}

/* ---- the document ---- */

static inline int oa_fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline int oa_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

/* Every "$ref" anywhere in v resolves in doc. */
static inline int oa_refs_resolve(const json_t *doc, const json_t *v, char *err, size_t errlen)
{
    const char *k;
    json_t *item;
    size_t i;

    if (json_is_object(v)) {
        const json_t *ref = json_object_get(v, "$ref");
        if (ref && js_pointer(doc, json_string_value(ref)) == NULL)
            return oa_fail(err, errlen, "$ref %s does not resolve",
                           json_string_value(ref) ? json_string_value(ref) : "(not a string)");
        json_object_foreach((json_t *)v, k, item)
        {
            if (oa_refs_resolve(doc, item, err, errlen) < 0)
                return -1;
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, item)
        {
            if (oa_refs_resolve(doc, item, err, errlen) < 0)
                return -1;
        }
    }
    return 0;
}

/* The content object of a response or request body: each media type has a
 * schema json_schema.h accepts. */
static inline int oa_content_check(const json_t *doc, const json_t *content, const char *where,
                                   char *err, size_t errlen)
{
    const char *mt;
    json_t *media;

    if (!json_is_object(content) || json_object_size(content) == 0)
        return oa_fail(err, errlen, "%s: content must be a non-empty object", where);
    json_object_foreach((json_t *)content, mt, media)
    {
        const json_t *schema = json_object_get(media, "schema");
        if (schema == NULL)
            return oa_fail(err, errlen, "%s: %s has no schema", where, mt);
        if (js_schema_check(doc, schema, where, err, errlen) < 0)
            return -1;
    }
    return 0;
}

static inline int oa_responses_check(const json_t *doc, const json_t *responses, const char *where,
                                     char *err, size_t errlen)
{
    const char *code;
    json_t *resp;
    char sub[700];

    if (!json_is_object(responses) || json_object_size(responses) == 0)
        return oa_fail(err, errlen, "%s: no responses", where);
    json_object_foreach((json_t *)responses, code, resp)
    {
        const json_t *r = oa_deref(doc, resp), *content;
        long c = strtol(code, NULL, 10);
        snprintf(sub, sizeof(sub), "%s %s", where, code);
        if (strcmp(code, "default") != 0 && (strlen(code) != 3 || c < 100 || c > 599))
            return oa_fail(err, errlen, "%s: not a status code", sub);
        if (!json_is_string(json_object_get(r, "description")))
            return oa_fail(err, errlen, "%s: no description", sub);
        content = json_object_get(r, "content");
        if (content && oa_content_check(doc, content, sub, err, errlen) < 0)
            return -1;
    }
    return 0;
}

/* Whether op declares a path parameter name (len bytes). */
static inline bool oa_declares(const json_t *doc, const json_t *op, const char *name, size_t len)
{
    const json_t *p;
    size_t i;

    json_array_foreach(json_object_get(op, "parameters"), i, p)
    {
        const json_t *pp = oa_deref(doc, p);
        const char *n = json_string_value(json_object_get(pp, "name"));
        const char *in = json_string_value(json_object_get(pp, "in"));
        if (n && in && strcmp(in, "path") == 0 && strlen(n) == len && memcmp(n, name, len) == 0)
            return true;
    }
    return false;
}

/* The {names} of a path template are exactly its path parameters, each
 * required; every parameter has a name, an "in" and a valid schema. */
static inline int oa_params_check(const json_t *doc, const char *path, const json_t *op,
                                  const char *where, char *err, size_t errlen)
{
    const char *segs[32];
    size_t lens[32], n = oa_segments(path, segs, lens, 32), i;
    const json_t *p;

    json_array_foreach(json_object_get(op, "parameters"), i, p)
    {
        const json_t *pp = oa_deref(doc, p);
        const char *name = json_string_value(json_object_get(pp, "name"));
        const char *in = json_string_value(json_object_get(pp, "in"));
        char brace[130];
        if (name == NULL || in == NULL)
            return oa_fail(err, errlen, "%s: parameter %zu without name or in", where, i);
        if (js_schema_check(doc, json_object_get(pp, "schema"), where, err, errlen) < 0)
            return -1;
        if (strcmp(in, "path") != 0)
            continue;
        snprintf(brace, sizeof(brace), "{%s}", name);
        if (strstr(path, brace) == NULL)
            return oa_fail(err, errlen, "%s: path parameter %s is not in the path", where, name);
        if (!json_is_true(json_object_get(pp, "required")))
            return oa_fail(err, errlen, "%s: path parameter %s is not required", where, name);
    }
    for (i = 0; i < n; i++)
        if (lens[i] > 2 && segs[i][0] == '{' && !oa_declares(doc, op, segs[i] + 1, lens[i] - 2))
            return oa_fail(err, errlen, "%s: path parameter %.*s is not declared", where,
                           (int)lens[i], segs[i]);
    return 0;
}

static inline int oa_operation_check(const json_t *doc, const char *path, const char *method,
                                     const json_t *op, json_t *ids, char *err, size_t errlen)
{
    const char *id = json_string_value(json_object_get(op, "operationId"));
    const json_t *body = json_object_get(op, "requestBody");
    char where[512];

    snprintf(where, sizeof(where), "%s %s", method, path);
    if (id == NULL)
        return oa_fail(err, errlen, "%s: no operationId", where);
    if (json_object_get(ids, id) != NULL)
        return oa_fail(err, errlen, "%s: operationId %s is used twice", where, id);
    json_object_set_new(ids, id, json_true());
    if (oa_params_check(doc, path, op, where, err, errlen) < 0)
        return -1;
    if (body && oa_content_check(doc, json_object_get(oa_deref(doc, body), "content"), where, err,
                                 errlen) < 0)
        return -1;
    return oa_responses_check(doc, json_object_get(op, "responses"), where, err, errlen);
}

/* 0 when doc is a valid OpenAPI 3.0 document in the sense above. */
static inline int oa_document_check(const json_t *doc, char *err, size_t errlen)
{
    static const char *const methods[] = {"get",  "put",   "post",    "delete",
                                          "head", "patch", "options", "trace"};
    const char *ver = json_string_value(json_object_get(doc, "openapi")), *path, *k;
    const json_t *info = json_object_get(doc, "info"), *schemas;
    json_t *item, *v, *ids = json_object();
    int rc = 0;

    if (ver == NULL || strncmp(ver, "3.0.", 4) != 0)
        rc = oa_fail(err, errlen, "openapi is not 3.0.x");
    else if (!json_is_string(json_object_get(info, "title")) ||
             !json_is_string(json_object_get(info, "version")))
        rc = oa_fail(err, errlen, "info needs title and version");
    else if (!json_is_object(json_object_get(doc, "paths")))
        rc = oa_fail(err, errlen, "no paths");
    else
        rc = oa_refs_resolve(doc, doc, err, errlen);
    schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    json_object_foreach((json_t *)schemas, k, v)
    {
        if (rc == 0)
            rc = js_schema_check(doc, v, k, err, errlen);
    }
    json_object_foreach(json_object_get(doc, "paths"), path, item)
    {
        if (rc == 0 && path[0] != '/')
            rc = oa_fail(err, errlen, "path %s does not start with /", path);
        for (size_t m = 0; rc == 0 && m < sizeof(methods) / sizeof(methods[0]); m++)
            if (json_object_get(item, methods[m]))
                rc = oa_operation_check(doc, path, methods[m], json_object_get(item, methods[m]),
                                        ids, err, errlen);
    }
    json_decref(ids);
    return rc;
}

/* ---- one exchange ---- */

/* A query value as the JSON its schema types (integer, boolean, string). */
static inline json_t *oa_query_value(const json_t *schema, const char *value)
{
    const char *type = json_string_value(json_object_get(schema, "type"));
    char *end;
    long long n;

    if (type && strcmp(type, "integer") == 0) {
        errno = 0;
        n = strtoll(value, &end, 10);
        return *value && !*end && errno == 0 ? json_integer(n) : json_string(value);
    }
    if (type && strcmp(type, "boolean") == 0 &&
        (strcmp(value, "true") == 0 || strcmp(value, "false") == 0))
        return json_boolean(value[0] == 't');
    return json_string(value);
}

/* Each query parameter of a request is documented and its value valid. */
static inline int oa_query_check(const json_t *doc, const json_t *op, const char *query,
                                 const char *where, char *err, size_t errlen)
{
    char *copy = fx_strdup(query), *save = NULL;
    int rc = 0;

    for (char *pair = strtok_r(copy, "&", &save); pair && rc == 0;
         pair = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(pair, '=');
        const json_t *params = json_object_get(op, "parameters"), *p, *schema = NULL;
        size_t i;
        bool found = false;
        if (eq)
            *eq = '\0';
        json_array_foreach(params, i, p)
        {
            const json_t *pp = oa_deref(doc, p);
            if (strcmp(json_string_value(json_object_get(pp, "in")), "query") == 0 &&
                strcmp(json_string_value(json_object_get(pp, "name")), pair) == 0) {
                found = true;
                schema = json_object_get(pp, "schema");
            }
        }
        if (!found) {
            rc = oa_fail(err, errlen, "%s: query parameter %s is not documented", where, pair);
        } else if (schema) {
            json_t *v = oa_query_value(schema, eq ? eq + 1 : "");
            char e2[512];
            if (js_validate(doc, schema, v, e2, sizeof(e2)) < 0)
                rc = oa_fail(err, errlen, "%s: query %s: %s", where, pair, e2);
            json_decref(v);
        }
    }
    free(copy);
    return rc;
}

/* The body of a request that succeeded validates against its requestBody. */
static inline int oa_request_check(const json_t *doc, const json_t *op, const struct fx_exchange *e,
                                   const char *where, char *err, size_t errlen)
{
    const json_t *rb = oa_deref(doc, json_object_get(op, "requestBody")), *schema;
    char media[128], e2[1024];
    json_error_t je;
    json_t *v;
    int rc;

    if (e->req_body == NULL)
        return 0;
    if (rb == NULL)
        return oa_fail(err, errlen, "%s: a body was accepted but none is documented", where);
    oa_media_type(e->req_ctype, media, sizeof(media));
    schema = json_object_get(json_object_get(json_object_get(rb, "content"), media), "schema");
    if (schema == NULL)
        return oa_fail(err, errlen, "%s: request body of type %s is not documented", where, media);
    v = json_loads(e->req_body, JSON_DECODE_ANY, &je);
    if (v == NULL)
        return oa_fail(err, errlen, "%s: an invalid JSON body was accepted", where);
    rc = js_validate(doc, schema, v, e2, sizeof(e2));
    json_decref(v);
    return rc < 0 ? oa_fail(err, errlen, "%s: request body: %s", where, e2) : 0;
}

/* The response's Content-Type and body against the documented response. */
static inline int oa_response_check(const json_t *doc, const json_t *resp,
                                    const struct fx_exchange *e, const char *where, char *err,
                                    size_t errlen)
{
    const json_t *content = json_object_get(resp, "content"), *media, *schema;
    char mt[128], e2[1024];
    json_error_t je;
    json_t *v;
    int rc;

    oa_media_type(e->ctype, mt, sizeof(mt));
    if (content == NULL)
        return e->len == 0 && mt[0] == '\0'
                   ? 0
                   : oa_fail(err, errlen, "%s: a %s body is sent, none is documented", where, mt);
    media = json_object_get(content, mt);
    if (media == NULL)
        return strcmp(e->method, "HEAD") == 0 && mt[0] == '\0'
                   ? 0
                   : oa_fail(err, errlen, "%s: Content-Type %s is not documented", where,
                             mt[0] ? mt : "(none)");
    schema = json_object_get(media, "schema");
    if (schema == NULL || strcmp(e->method, "HEAD") == 0)
        return 0;
    if (strcmp(mt, "application/json") == 0 || strstr(mt, "+json") != NULL)
        v = json_loadb(e->body, e->len, JSON_DECODE_ANY, &je);
    else
        v = json_stringn(e->body, e->len);
    if (v == NULL)
        return oa_fail(err, errlen, "%s: the body does not parse as %s", where, mt);
    rc = js_validate(doc, schema, v, e2, sizeof(e2));
    json_decref(v);
    return rc < 0 ? oa_fail(err, errlen, "%s: body: %s", where, e2) : 0;
}

/* 0 when the exchange is what doc documents; else -1 and err. */
static inline int oa_exchange_check(const json_t *doc, const struct fx_exchange *e, char *err,
                                    size_t errlen)
{
    const json_t *paths = json_object_get(doc, "paths"), *op, *responses, *resp;
    const char *tpl = oa_match_path(paths, e->path);
    char method[8], where[700], code[8];
    size_t n = 0;

    for (const char *m = strcmp(e->method, "HEAD") == 0 ? "get" : e->method; *m && n < 7; m++)
        method[n++] = (char)tolower((unsigned char)*m);
    method[n] = '\0';
    snprintf(where, sizeof(where), "%s %s -> %ld", e->method, e->path, e->status);
    op = tpl ? json_object_get(json_object_get(paths, tpl), method) : NULL;
    if (op == NULL) {
        /* no such route: the router's 404 (unknown path), 405 (other
         * methods) or 204 (OPTIONS), with the error JSON */
        const json_t *err_resp = js_pointer(doc, "#/components/responses/Error");
        if ((tpl == NULL && e->status == 404) || (tpl != NULL && e->status == 405))
            return oa_response_check(doc, err_resp, e, where, err, errlen);
        if (tpl != NULL && strcmp(e->method, "OPTIONS") == 0 && e->status == 204)
            return 0;
        return oa_fail(err, errlen, "%s: %s is not documented", where,
                       tpl ? "the method" : "the path");
    }
    snprintf(where, sizeof(where), "%s %s (%s) -> %ld", e->method, e->path, tpl, e->status);
    if (e->status >= 200 && e->status < 300) {
        if (e->query && oa_query_check(doc, op, e->query, where, err, errlen) < 0)
            return -1;
        if (oa_request_check(doc, op, e, where, err, errlen) < 0)
            return -1;
    }
    responses = json_object_get(op, "responses");
    snprintf(code, sizeof(code), "%ld", e->status);
    resp = json_object_get(responses, code);
    if (resp == NULL && oa_generic_status(e->status))
        resp = json_object_get(responses, "default");
    if (resp == NULL)
        return oa_fail(err, errlen, "%s: status %ld is not documented", where, e->status);
    return oa_response_check(doc, oa_deref(doc, resp), e, where, err, errlen);
}

/* Fetches /openapi.json from d, checks the document, then every exchange
 * recorded so far; fails the test listing each distinct problem. */
static inline void oa_check_recorded(struct fx_daemon *d)
{
    json_t *doc = fx_get_json(d, "/openapi.json"), *seen = json_object(), *v;
    size_t problems = 0, exchanges = fx_nlog;
    char err[2048];
    const char *k;

    if (oa_document_check(doc, err, sizeof(err)) < 0)
        fail_msg("the OpenAPI document is invalid: %s", err);
    for (size_t i = 0; i < exchanges; i++) {
        if (oa_exchange_check(doc, &fx_log[i], err, sizeof(err)) == 0)
            continue;
        problems++;
        v = json_object_get(seen, err);
        json_object_set_new(seen, err, json_integer(v ? json_integer_value(v) + 1 : 1));
    }
    json_object_foreach(seen, k, v)
    {
        fprintf(stderr, "openapi: %s (%lld exchange%s)\n", k, (long long)json_integer_value(v),
                json_integer_value(v) == 1 ? "" : "s");
    }
    fprintf(stderr, "openapi: %zu exchanges checked, %zu not as documented\n", exchanges, problems);
    json_decref(seen);
    json_decref(doc);
    assert_true(exchanges > 0);
    assert_int_equal(problems, 0);
}

#endif
