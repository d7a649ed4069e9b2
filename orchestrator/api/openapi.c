/*
 * The OpenAPI 3 document, generated from the route table: each route's
 * operation object is built once at registration from its documentation
 * (and its schemas parsed, so a typo fails registration, not a client), and
 * GET /openapi.json assembles the registered operations, so the document
 * lists exactly the routes the server answers. Every operation has the
 * error JSON as its default response; an error status documented with a
 * JSON body and no schema gets that schema too. operationIds are unique in
 * the document and every tag used is listed. The served text is built once
 * (again only when routes or schemas were added since): per request only the
 * server URL, which depends on the request's Host, is spliced in.
 */
#include <ctype.h>
#include <string.h>

#include "../daemon.h"
#include "internal.h"

static const char error_schema[] =
    "{\"type\":\"object\",\"required\":[\"code\",\"title\",\"message\"],"
    "\"properties\":{\"code\":{\"type\":\"integer\",\"description\":\"the HTTP status\"},"
    "\"title\":{\"type\":\"string\",\"description\":\"the HTTP reason phrase\"},"
    "\"message\":{\"type\":\"string\"}}}";

/* Parses schema text, naming what it is for in why on failure. */
static json_t *schema_parse(const char *text, const char *what, char *why, size_t whylen)
{
    json_error_t error;
    json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, &error);

    if (v == NULL)
        snprintf(why, whylen, "%s: bad JSON at %d:%d: %s", what, error.line, error.column,
                 error.text);
    return v;
}

/* "get_deployments_by_id_template" */
static json_t *operation_id(const struct orc_route *route)
{
    char buf[512];
    size_t used = 0;

    for (const char *m = route->method_name; *m && used < 16; m++)
        buf[used++] = (char)tolower((unsigned char)*m);
    if (route->nseg == 0)
        used += (size_t)snprintf(buf + used, sizeof(buf) - used, "_root");
    for (size_t i = 0; i < route->nseg && used < sizeof(buf) - 8; i++) {
        const char *s = route->segs[i];
        used += (size_t)snprintf(buf + used, sizeof(buf) - used, "_%s",
                                 route->param_mask >> i & 1 ? "by_" : "");
        for (; *s && used < sizeof(buf) - 1; s++)
            buf[used++] = isalnum((unsigned char)*s) ? *s : '_';
    }
    buf[used] = '\0';
    return json_string(buf);
}

static int add_path_params(json_t *params, const struct orc_route *route)
{
    for (size_t i = 0; i < route->nseg; i++) {
        if (!(route->param_mask >> i & 1))
            continue;
        if (json_array_append_new(params, json_pack("{s:s, s:s, s:b, s:{s:s}}", "name",
                                                    route->segs[i], "in", "path", "required", 1,
                                                    "schema", "type", "string")) < 0)
            return ORC_ENOMEM;
    }
    return 0;
}

static int add_query_params(json_t *params, const orc_api_param_doc_t *q, char *why, size_t whylen)
{
    for (; q != NULL && q->name != NULL; q++) {
        json_t *schema = q->schema ? schema_parse(q->schema, q->name, why, whylen)
                                   : json_pack("{s:s}", "type", "string");
        json_t *p;
        if (schema == NULL)
            return ORC_EINVAL;
        p = json_pack("{s:s, s:s, s:b, s:o}", "name", q->name, "in", "query", "required",
                      q->required, "schema", schema);
        if (p == NULL || (q->description &&
                          json_object_set_new(p, "description", json_string(q->description)) < 0)) {
            json_decref(p);
            return ORC_ENOMEM;
        }
        if (json_array_append_new(params, p) < 0)
            return ORC_ENOMEM;
    }
    return 0;
}

/* The schema of a response: its own, else the error JSON for an error
 * status with a JSON body (what the router sends for every error). */
static json_t *response_schema(const orc_api_response_doc_t *r, char *why, size_t whylen)
{
    char what[32];

    snprintf(what, sizeof(what), "response %d", r->status);
    if (r->schema != NULL)
        return schema_parse(r->schema, what, why, whylen);
    if (r->status >= 400 && orc_media_type_is_json(r->content_type, strlen(r->content_type)))
        return json_pack("{s:s}", "$ref", "#/components/schemas/Error");
    return json_object(); /* no schema: any body of that type */
}

/* One entry of "responses". A schema needs a content type to belong to. */
static json_t *response_object(const orc_api_response_doc_t *r, char *why, size_t whylen)
{
    json_t *obj, *schema, *content;

    if (r->content_type == NULL && r->schema != NULL) {
        snprintf(why, whylen, "response %d: a schema without a content type", r->status);
        return NULL;
    }
    obj = json_pack("{s:s}", "description", r->description ? r->description : "");
    if (obj == NULL || r->content_type == NULL)
        return obj;
    schema = response_schema(r, why, whylen);
    content = schema ? json_pack("{s:{s:o}}", r->content_type, "schema", schema) : NULL;
    if (content == NULL || json_object_set_new(obj, "content", content) < 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

static json_t *responses_object(const orc_api_response_doc_t *docs, char *why, size_t whylen)
{
    static const orc_api_response_doc_t plain_ok[] = {{200, "OK", NULL, NULL}, {0, 0, 0, 0}};
    json_t *all = json_pack("{s:{s:s}}", "default", "$ref", "#/components/responses/Error");
    char code[8];

    for (const orc_api_response_doc_t *r = docs ? docs : plain_ok; all && r->status; r++) {
        json_t *one = NULL;
        snprintf(code, sizeof(code), "%d", r->status);
        if (r->status < 100 || r->status > 599)
            snprintf(why, whylen, "response status %d", r->status);
        else if (json_object_get(all, code) != NULL)
            snprintf(why, whylen, "response %d documented twice", r->status);
        else
            one = response_object(r, why, whylen);
        if (one == NULL || json_object_set_new(all, code, one) < 0) {
            json_decref(all);
            return NULL;
        }
    }
    return all;
}

static int add_request_body(json_t *op, const orc_api_route_t *def, char *why, size_t whylen)
{
    json_t *schema;

    if (def->request_schema == NULL)
        return 0;
    schema = schema_parse(def->request_schema, "request body", why, whylen);
    if (schema == NULL)
        return ORC_EINVAL;
    return json_object_set_new(op, "requestBody",
                               json_pack("{s:b, s:{s:{s:o}}}", "required", 1, "content",
                                         "application/json", "schema", schema));
}

/* The x-access of an operation: anyone, user, operator or admin. */
static const char *access_name(orc_api_access_t a)
{
    switch (a) {
    case ORC_API_ACCESS_PUBLIC:
        return "anyone";
    case ORC_API_ACCESS_OPERATOR:
        return "operator";
    case ORC_API_ACCESS_ADMIN:
        return "admin";
    default:
        return "user";
    }
}

static int set_text(json_t *op, const char *key, const char *text)
{
    return text ? json_object_set_new(op, key, json_string(text)) : 0;
}

json_t *orc_openapi_operation(const orc_api_route_t *def, const struct orc_route *route, char *why,
                              size_t whylen)
{
    json_t *op = json_object(), *params = json_array(), *responses;
    int rc = op && params ? 0 : ORC_ENOMEM;

    if (rc == 0)
        rc = json_object_set_new(op, "operationId", operation_id(route));
    if (rc == 0)
        rc = set_text(op, "summary", def->summary);
    if (rc == 0)
        rc = set_text(op, "description", def->description);
    if (rc == 0 && def->tag)
        rc = json_object_set_new(op, "tags", json_pack("[s]", def->tag));
    if (rc == 0)
        rc = add_path_params(params, route);
    if (rc == 0)
        rc = add_query_params(params, def->query, why, whylen);
    if (rc == 0 && json_array_size(params) > 0)
        rc = json_object_set(op, "parameters", params);
    if (rc == 0)
        rc = add_request_body(op, def, why, whylen);
    if (rc == 0 && def->access != ORC_API_ACCESS_PUBLIC)
        rc = json_object_set_new(op, "security", json_pack("[{s:[]}]", "bearerAuth"));
    if (rc == 0) /* who may call it (docs/security.md "Roles") */
        rc = json_object_set_new(op, "x-access", json_string(access_name(def->access)));
    responses = rc == 0 ? responses_object(def->responses, why, whylen) : NULL;
    if (rc == 0 && (responses == NULL || json_object_set_new(op, "responses", responses) < 0))
        rc = ORC_EINVAL;
    json_decref(params);
    if (rc != 0) {
        json_decref(op);
        return NULL;
    }
    return op;
}

int orc_api_register_schema(orc_api_t *api, const char *name, const char *schema)
{
    char why[256];
    json_t *v;

    if (name == NULL || schema == NULL)
        return ORC_EINVAL;
    if (json_object_get(api->schemas, name) != NULL || strcmp(name, "Error") == 0)
        return ORC_ECONFLICT;
    v = schema_parse(schema, name, why, sizeof(why));
    if (v == NULL) {
        orc_log(ORC_LOG_ERROR, "api", "schema %s: %s", name, why);
        return ORC_EINVAL;
    }
    return json_object_set_new(api->schemas, name, v) < 0 ? ORC_ENOMEM : 0;
}

static json_t *components(orc_api_t *api)
{
    char why[256];
    json_t *schemas = json_deep_copy(api->schemas);
    json_t *error = schema_parse(error_schema, "Error", why, sizeof(why));

    if (schemas == NULL || error == NULL || json_object_set_new(schemas, "Error", error) < 0) {
        json_decref(schemas);
        return NULL;
    }
    return json_pack("{s:o, s:{s:{s:s, s:{s:{s:{s:s}}}}}, s:{s:{s:s, s:s, s:s, s:s}}}",
                     "schemas", schemas, "responses", "Error", "description",
                     "An error: {code, title, message}", "content", "application/json", "schema",
                     "$ref", "#/components/schemas/Error", "securitySchemes", "bearerAuth", "type",
                     "http", "scheme", "bearer", "bearerFormat", "JWT", "description",
                     "An access token of a configured OIDC issuer (none needed when "
                     "authentication is off)");
}

/* The operation of a route as the document lists it: operationIds are
 * unique in a document, so a route whose derived id is taken already (paths
 * that differ only in punctuation) gets a numbered copy. */
static json_t *unique_operation(const struct orc_route *route, json_t *ids)
{
    const char *id = json_string_value(json_object_get(route->op, "operationId"));
    char numbered[600];
    json_t *op;

    if (id == NULL || json_object_get(ids, id) == NULL) {
        if (id != NULL && json_object_set_new(ids, id, json_true()) < 0)
            return NULL;
        return json_incref(route->op);
    }
    for (int n = 2;; n++) {
        snprintf(numbered, sizeof(numbered), "%s_%d", id, n);
        if (json_object_get(ids, numbered) == NULL)
            break;
    }
    op = json_deep_copy(route->op);
    if (op == NULL || json_object_set_new(op, "operationId", json_string(numbered)) < 0 ||
        json_object_set_new(ids, numbered, json_true()) < 0) {
        json_decref(op);
        return NULL;
    }
    return op;
}

/* Adds the route's tag to tags (a list of {"name"}) unless it is there. */
static int add_tag(json_t *tags, const json_t *op)
{
    const json_t *tag = json_array_get(json_object_get(op, "tags"), 0), *t;
    size_t i;

    if (!json_is_string(tag))
        return 0;
    json_array_foreach(tags, i, t)
    {
        if (json_equal(json_object_get(t, "name"), tag))
            return 0;
    }
    return json_array_append_new(tags, json_pack("{s:O}", "name", tag)) < 0 ? ORC_ENOMEM : 0;
}

static int add_paths(orc_api_t *api, json_t *paths, json_t *tags)
{
    json_t *ids = json_object();
    char method[16];
    int rc = ids ? 0 : ORC_ENOMEM;

    for (size_t i = 0; rc == 0 && i < api->router.count; i++) {
        const struct orc_route *route = api->router.routes[i];
        json_t *item = json_object_get(paths, route->pattern);
        size_t n = 0;
        if (item == NULL) {
            item = json_object();
            if (item == NULL || json_object_set_new(paths, route->pattern, item) < 0) {
                rc = ORC_ENOMEM;
                break;
            }
        }
        for (const char *m = route->method_name; *m && n < sizeof(method) - 1; m++)
            method[n++] = (char)tolower((unsigned char)*m);
        method[n] = '\0';
        if (json_object_set_new(item, method, unique_operation(route, ids)) < 0 ||
            add_tag(tags, route->op) < 0)
            rc = ORC_ENOMEM;
    }
    json_decref(ids);
    return rc;
}

json_t *orc_api_openapi(orc_api_t *api, const char *server_url)
{
    json_t *paths = json_object(), *tags = json_array();
    json_t *doc;

    if (paths == NULL || tags == NULL || add_paths(api, paths, tags) < 0) {
        json_decref(paths);
        json_decref(tags);
        return NULL;
    }
    doc = json_pack("{s:s, s:{s:s, s:s, s:s}, s:[{s:s}], s:o, s:o, s:o*}", "openapi", "3.0.3",
                    "info", "title", ORC_NAME, "version", ORC_VERSION, "description",
                    "REST API of the orchestrator: TOSCA deployments of GPU training and serving "
                    "across federated sites (compatible with the INDIGO PaaS Orchestrator).",
                    "servers", "url", server_url ? server_url : "/", "tags", tags, "paths", paths,
                    "components", components(api));
    return doc;
}

/* The server URL that marks where a request's URL goes in the cached text. */
#define SERVER_URL_MARK "\x01server-url\x01"

static void openapi_cache_clear(struct orc_openapi_cache *c)
{
    orc_free(c->head);
    orc_free(c->tail);
    memset(c, 0, sizeof(*c));
}

/* Builds the document with the marker URL and cuts its text around the marker. */
static int openapi_cache_fill(orc_api_t *api, struct orc_openapi_cache *c)
{
    json_t *doc = orc_api_openapi(api, SERVER_URL_MARK);
    json_t *mark = json_string(SERVER_URL_MARK);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    char *mark_text = mark ? json_dumps(mark, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    char *at = text && mark_text ? strstr(text, mark_text) : NULL;
    int rc = ORC_ENOMEM;

    openapi_cache_clear(c);
    if (at != NULL) {
        c->head = orc_strndup(text, (size_t)(at - text));
        c->tail = orc_strdup(at + strlen(mark_text));
        if (c->head != NULL && c->tail != NULL) {
            c->routes = api->router.count;
            c->schemas = json_object_size(api->schemas);
            rc = 0;
        } else {
            openapi_cache_clear(c);
        }
    }
    free(mark_text);
    free(text);
    json_decref(mark);
    json_decref(doc);
    return rc;
}

char *orc_api_openapi_text(orc_api_t *api, const char *server_url, size_t *len)
{
    struct orc_openapi_cache *c = &api->openapi;
    json_t *url = json_string(server_url ? server_url : "/");
    char *url_text = url ? json_dumps(url, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    char *out = NULL;

    if (c->head == NULL || c->routes != api->router.count ||
        c->schemas != json_object_size(api->schemas))
        openapi_cache_fill(api, c);
    if (c->head != NULL) {
        const char *u = url_text ? url_text : "\"/\""; /* a Host that is not UTF-8 */
        size_t nh = strlen(c->head), nu = strlen(u), nt = strlen(c->tail);
        out = orc_malloc(nh + nu + nt + 1);
        if (out != NULL) {
            memcpy(out, c->head, nh);
            memcpy(out + nh, u, nu);
            memcpy(out + nh + nu, c->tail, nt + 1);
            *len = nh + nu + nt;
        }
    }
    free(url_text);
    json_decref(url);
    return out;
}

void orc_api_openapi_cache_free(orc_api_t *api)
{
    openapi_cache_clear(&api->openapi);
}
