/*
 * Unit tests of the HTTP API's pieces that need no socket: route
 * registration and matching (trailing slashes, {params}, specificity, 404,
 * 405 with Allow, HEAD), percent-decoding and query strings, the bounded
 * JSON body reader, media types, the error JSON and status mapping, the
 * OpenAPI document (every registered route is in it) and the metrics text.
 * Then the handler API end to end, in process: a server on a libuv loop
 * with routes like those a subsystem adds (JSON bodies, path and query
 * parameters, recorded failures, deferred answers, cancellation at
 * shutdown), driven by libcurl from a second thread. The daemon binary is
 * driven over real sockets by test_daemon.
 */
#include <pthread.h>

#include <curl/curl.h>

#include "testutil.h"

#include "api/internal.h"

static int dummy(orc_api_req_t *req, void *data)
{
    (void)req;
    (void)data;
    return 0;
}

struct fixture {
    orc_config_t cfg;
    orc_api_t *api;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    assert_int_equal(orc_config_init(&f->cfg), 0);
    assert_int_equal(orc_api_new(NULL, &f->cfg, &f->api), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    orc_api_free(f->api);
    orc_config_fini(&f->cfg);
    free(f);
    return 0;
}

static int add(orc_api_t *api, const char *method, const char *pattern)
{
    orc_api_route_t r = {.method = method, .pattern = pattern, .handler = dummy};
    return orc_api_register(api, &r);
}

/* Matches and returns the result code; m and buf are the caller's. */
static int match(orc_api_t *api, unsigned method, const char *path, orc_route_match_t *m)
{
    static char buf[1024];
    return orc_router_match(&api->router, method, path, strlen(path), m, buf, sizeof(buf));
}

static const char *matched_pattern(orc_api_t *api, unsigned method, const char *path)
{
    orc_route_match_t m;
    return match(api, method, path, &m) == 0 ? m.route->pattern : NULL;
}

/* ---- routes ----------------------------------------------------------------------- */

static void register_deployment_routes(orc_api_t *api)
{
    assert_int_equal(add(api, "GET", "/deployments"), 0);
    assert_int_equal(add(api, "POST", "/deployments"), 0);
    assert_int_equal(add(api, "GET", "/deployments/{id}"), 0);
    assert_int_equal(add(api, "PUT", "/deployments/{id}"), 0);
    assert_int_equal(add(api, "DELETE", "/deployments/{id}"), 0);
    assert_int_equal(add(api, "GET", "/deployments/{id}/resources/{rid}"), 0);
    assert_int_equal(add(api, "GET", "/deployments/search"), 0);
}

static void route_matching_with_and_without_trailing_slash(void **state)
{
    struct fixture *f = *state;

    register_deployment_routes(f->api);
    assert_string_equal(matched_pattern(f->api, ORC_HTTP_GET, "/deployments"), "/deployments");
    assert_string_equal(matched_pattern(f->api, ORC_HTTP_GET, "/deployments/"), "/deployments");
    assert_string_equal(matched_pattern(f->api, ORC_HTTP_GET, "/info/"), "/info");
    assert_string_equal(matched_pattern(f->api, ORC_HTTP_GET, "/"), "/");
    assert_string_equal(matched_pattern(f->api, ORC_HTTP_POST, "/deployments/"), "/deployments");
    /* only one trailing slash, no empty segments */
    assert_null(matched_pattern(f->api, ORC_HTTP_GET, "/deployments//"));
    assert_null(matched_pattern(f->api, ORC_HTTP_GET, "//deployments"));
    assert_null(matched_pattern(f->api, ORC_HTTP_GET, "//"));
    assert_null(matched_pattern(f->api, ORC_HTTP_GET, "/deployments/x//resources/y"));
    assert_null(matched_pattern(f->api, ORC_HTTP_GET, ""));
    assert_null(matched_pattern(f->api, ORC_HTTP_GET, "*"));
}

static void route_params_are_captured_and_decoded(void **state)
{
    struct fixture *f = *state;
    orc_route_match_t m;

    register_deployment_routes(f->api);
    assert_int_equal(match(f->api, ORC_HTTP_GET, "/deployments/abc-123", &m), 0);
    assert_string_equal(m.route->pattern, "/deployments/{id}");
    assert_int_equal(m.nparams, 1);
    assert_string_equal(m.names[0], "id");
    assert_string_equal(m.values[0], "abc-123");

    assert_int_equal(match(f->api, ORC_HTTP_GET, "/deployments/a%2Fb%20c/resources/r1/", &m), 0);
    assert_string_equal(m.route->pattern, "/deployments/{id}/resources/{rid}");
    assert_int_equal(m.nparams, 2);
    assert_string_equal(m.values[0], "a/b c"); /* %2F stays inside the segment */
    assert_string_equal(m.values[1], "r1");
    /* '+' is not a space in paths */
    assert_int_equal(match(f->api, ORC_HTTP_GET, "/deployments/a+b", &m), 0);
    assert_string_equal(m.values[0], "a+b");
    /* literal segments are compared after decoding */
    assert_string_equal(matched_pattern(f->api, ORC_HTTP_GET, "/%69nfo"), "/info");
}

static void literal_segments_win_over_params(void **state)
{
    struct fixture *f = *state;

    register_deployment_routes(f->api);
    assert_string_equal(matched_pattern(f->api, ORC_HTTP_GET, "/deployments/search"),
                        "/deployments/search");
    assert_string_equal(matched_pattern(f->api, ORC_HTTP_GET, "/deployments/searchx"),
                        "/deployments/{id}");
    /* a PUT has only the {id} route */
    assert_string_equal(matched_pattern(f->api, ORC_HTTP_PUT, "/deployments/search"),
                        "/deployments/{id}");
    assert_int_equal(add(f->api, "GET", "/a/{x}/c"), 0);
    assert_int_equal(add(f->api, "GET", "/a/b/{y}"), 0);
    assert_string_equal(matched_pattern(f->api, ORC_HTTP_GET, "/a/b/c"), "/a/b/{y}");
    assert_string_equal(matched_pattern(f->api, ORC_HTTP_GET, "/a/z/c"), "/a/{x}/c");
}

static void unknown_paths_and_methods(void **state)
{
    struct fixture *f = *state;
    orc_route_match_t m;
    char allow[96];

    register_deployment_routes(f->api);
    assert_int_equal(match(f->api, ORC_HTTP_GET, "/nowhere", &m), ORC_ENOTFOUND);
    assert_int_equal(m.allow, 0);
    assert_int_equal(match(f->api, ORC_HTTP_GET, "/deployments/x/y", &m), ORC_ENOTFOUND);

    assert_int_equal(match(f->api, ORC_HTTP_PATCH, "/deployments/x", &m), ORC_ENOTSUP);
    assert_null(m.route);
    assert_int_equal(m.allow, ORC_HTTP_GET | ORC_HTTP_PUT | ORC_HTTP_DELETE);
    assert_string_equal(orc_api_allow_text(m.allow, allow, sizeof(allow)),
                        "GET, HEAD, PUT, DELETE, OPTIONS");
    assert_int_equal(match(f->api, ORC_HTTP_DELETE, "/deployments/", &m), ORC_ENOTSUP);
    assert_string_equal(orc_api_allow_text(m.allow, allow, sizeof(allow)),
                        "GET, HEAD, POST, OPTIONS");
    /* an unknown method on a known path is a 405 too */
    assert_int_equal(match(f->api, 0, "/info", &m), ORC_ENOTSUP);
    assert_int_equal(m.allow, ORC_HTTP_GET);
    /* HEAD is served by GET routes */
    assert_string_equal(matched_pattern(f->api, ORC_HTTP_HEAD, "/deployments/x"),
                        "/deployments/{id}");
    assert_int_equal(match(f->api, ORC_HTTP_HEAD, "/deployments/x/resources/y/", &m), 0);
    assert_int_equal(m.nparams, 2);
    /* broken percent-encoding */
    assert_int_equal(match(f->api, ORC_HTTP_GET, "/deployments/%zz", &m), ORC_EFORMAT);
    assert_int_equal(match(f->api, ORC_HTTP_GET, "/deployments/%2", &m), ORC_EFORMAT);
    assert_int_equal(match(f->api, ORC_HTTP_GET, "/deployments/a%00b", &m), ORC_EFORMAT);
}

static void bad_and_conflicting_registrations(void **state)
{
    struct fixture *f = *state;
    orc_api_route_t nohandler = {.method = "GET", .pattern = "/x"};

    assert_int_equal(add(f->api, "GET", "/things/{id}"), 0);
    assert_int_equal(add(f->api, "GET", "/things/{other}"), ORC_ECONFLICT);
    assert_int_equal(add(f->api, "GET", "/things/{id}/"), ORC_ECONFLICT);
    assert_int_equal(add(f->api, "DELETE", "/things/{id}"), 0);
    assert_int_equal(add(f->api, "GET", "/info"), ORC_ECONFLICT); /* built in */
    assert_int_equal(add(f->api, "GET", "things"), ORC_EINVAL);
    assert_int_equal(add(f->api, "GET", "/a/{b"), ORC_EINVAL);
    assert_int_equal(add(f->api, "GET", "/a/{1b}"), ORC_EINVAL);
    assert_int_equal(add(f->api, "GET", "/a/{}"), ORC_EINVAL);
    assert_int_equal(add(f->api, "GET", "/a/{x}/{x}"), ORC_EINVAL);
    assert_int_equal(add(f->api, "GET", "/a//b"), ORC_EINVAL);
    assert_int_equal(add(f->api, "GET", "/a/b%20c"), ORC_EINVAL);
    assert_int_equal(add(f->api, "GET", "/a/pre{x}"), ORC_EINVAL);
    assert_int_equal(add(f->api, "HEAD", "/a"), ORC_EINVAL);
    assert_int_equal(add(f->api, "get", "/a"), ORC_EINVAL);
    assert_int_equal(add(f->api, "BREW", "/a"), ORC_EINVAL);
    assert_int_equal(orc_api_register(f->api, &nohandler), ORC_EINVAL);
    assert_int_equal(orc_api_register(f->api, NULL), ORC_EINVAL);
}

static void method_names_and_bits(void **state)
{
    (void)state;
    assert_int_equal(orc_http_method_bit("GET", 3), ORC_HTTP_GET);
    assert_int_equal(orc_http_method_bit("DELETE", 6), ORC_HTTP_DELETE);
    assert_int_equal(orc_http_method_bit("GETX", 3), ORC_HTTP_GET); /* length-delimited */
    assert_int_equal(orc_http_method_bit("get", 3), 0);
    assert_int_equal(orc_http_method_bit("", 0), 0);
    assert_string_equal(orc_http_method_name(ORC_HTTP_PATCH), "PATCH");
    assert_string_equal(orc_http_method_name(0), "OTHER");
}

/* ---- decoding and query strings ----------------------------------------------------------- */

static void percent_decoding(void **state)
{
    char out[64];
    size_t n;

    (void)state;
    assert_int_equal(orc_pct_decode("a%20b%2fc%C3%A9", 15, false, out, &n), 0);
    assert_int_equal(n, 7);
    assert_memory_equal(out, "a b/c\xc3\xa9", 7);
    assert_int_equal(orc_pct_decode("a+b", 3, true, out, &n), 0);
    assert_memory_equal(out, "a b", 3);
    assert_int_equal(orc_pct_decode("a+b", 3, false, out, &n), 0);
    assert_memory_equal(out, "a+b", 3);
    assert_int_equal(orc_pct_decode("%", 1, false, out, &n), ORC_EFORMAT);
    assert_int_equal(orc_pct_decode("%4", 2, false, out, &n), ORC_EFORMAT);
    assert_int_equal(orc_pct_decode("%4g", 3, false, out, &n), ORC_EFORMAT);
    assert_int_equal(orc_pct_decode("%00", 3, false, out, &n), ORC_EFORMAT);
    /* only len bytes are read: "%41" cut after "%4" is truncated */
    assert_int_equal(orc_pct_decode("%41", 2, false, out, &n), ORC_EFORMAT);
    assert_int_equal(orc_pct_decode("", 0, false, out, &n), 0);
    assert_int_equal(n, 0);
}

static int parse_query(const char *qs, orc_query_pair_t **items, size_t *count, char **buf)
{
    size_t len = strlen(qs), max = orc_query_max_pairs(qs, len);

    *items = calloc(max, sizeof(**items));
    *buf = malloc(len + 2 * max + 1);
    return orc_query_parse(qs, len, *items, count, *buf);
}

static void query_parsing(void **state)
{
    orc_query_pair_t *q;
    size_t n;
    char *buf;

    (void)state;
    assert_int_equal(parse_query("a=1&b=x%20y&c=&flag&a=2&&=skip&d=p+q&e=%3D%26", &q, &n, &buf), 0);
    assert_int_equal(n, 7);
    assert_string_equal(q[0].name, "a");
    assert_string_equal(q[0].value, "1");
    assert_string_equal(q[1].name, "b");
    assert_string_equal(q[1].value, "x y");
    assert_string_equal(q[2].name, "c");
    assert_string_equal(q[2].value, "");
    assert_string_equal(q[3].name, "flag");
    assert_string_equal(q[3].value, "");
    assert_string_equal(q[4].name, "a");
    assert_string_equal(q[4].value, "2");
    assert_string_equal(q[5].value, "p q");
    assert_string_equal(q[6].value, "=&");
    free(q);
    free(buf);

    assert_int_equal(
        parse_query("excludedStatus=DELETE_COMPLETE%2CDELETE_FAILED&page=0", &q, &n, &buf), 0);
    assert_int_equal(n, 2);
    assert_string_equal(q[0].value, "DELETE_COMPLETE,DELETE_FAILED");
    free(q);
    free(buf);

    assert_int_equal(parse_query("", &q, &n, &buf), 0);
    assert_int_equal(n, 0);
    free(q);
    free(buf);

    assert_int_equal(parse_query("a=%zz", &q, &n, &buf), ORC_EFORMAT);
    free(q);
    free(buf);
    assert_int_equal(parse_query("a%0=1", &q, &n, &buf), ORC_EFORMAT);
    free(q);
    free(buf);
    assert_int_equal(parse_query("a=%00", &q, &n, &buf), ORC_EFORMAT);
    free(q);
    free(buf);
}

/* ---- JSON bodies -------------------------------------------------------------------------- */

static char *nested(unsigned depth, const char *open, const char *close)
{
    size_t len = strlen(open) * depth + strlen(close) * depth + 1;
    char *s = malloc(len), *p = s;

    for (unsigned i = 0; i < depth; i++)
        p += sprintf(p, "%s", open);
    for (unsigned i = 0; i < depth; i++)
        p += sprintf(p, "%s", close);
    return s;
}

static void json_body_limits_and_errors(void **state)
{
    char why[512];
    json_t *v;
    char *deep;

    (void)state;
    assert_int_equal(orc_json_parse_limited("{\"template\":\"x\"}", 16, 64, &v, why, sizeof(why)),
                     0);
    assert_string_equal(json_string_value(json_object_get(v, "template")), "x");
    json_decref(v);

    assert_int_equal(orc_json_parse_limited("", 0, 64, &v, why, sizeof(why)), ORC_EFORMAT);
    assert_null(v);
    assert_non_null(strstr(why, "empty"));
    assert_int_equal(orc_json_parse_limited(" \r\n\t", 4, 64, &v, why, sizeof(why)), ORC_EFORMAT);

    const char *bad = "{\n  \"a\": 1,\n  \"b\": ]\n}";
    assert_int_equal(orc_json_parse_limited(bad, strlen(bad), 64, &v, why, sizeof(why)),
                     ORC_EFORMAT);
    assert_non_null(strstr(why, "line 3, column 8"));
    const char *dup = "{\"a\":1,\"a\":2}";
    assert_int_equal(orc_json_parse_limited(dup, strlen(dup), 64, &v, why, sizeof(why)),
                     ORC_EFORMAT);
    assert_non_null(strstr(why, "duplicate"));
    /* only len bytes count: a valid prefix of a longer buffer */
    assert_int_equal(orc_json_parse_limited("[1]garbage", 3, 64, &v, why, sizeof(why)), 0);
    json_decref(v);

    deep = nested(64, "[", "]");
    assert_int_equal(orc_json_parse_limited(deep, strlen(deep), 64, &v, why, sizeof(why)), 0);
    json_decref(v);
    free(deep);
    deep = nested(65, "{\"k\":", "}");
    assert_int_equal(orc_json_parse_limited(deep, strlen(deep) - 1, 64, &v, why, sizeof(why)),
                     ORC_ELIMIT);
    assert_non_null(strstr(why, "deeper than 64 levels at line 1, column 321"));
    free(deep);
    /* brackets inside strings (and escaped quotes) do not nest */
    const char *strs = "[\"[[[[\\\"[[[[\", \"]]]\"]";
    assert_int_equal(orc_json_parse_limited(strs, strlen(strs), 1, &v, why, sizeof(why)), 0);
    json_decref(v);
    assert_int_equal(orc_json_parse_limited("[[1]]", 5, 1, &v, why, sizeof(why)), ORC_ELIMIT);
}

static void media_types(void **state)
{
    (void)state;
    assert_true(orc_media_type_is_json("application/json", 16));
    assert_true(orc_media_type_is_json("Application/JSON; charset=utf-8", 31));
    assert_true(orc_media_type_is_json("application/problem+json", 24));
    assert_false(orc_media_type_is_json("application/+json", 17));
    assert_false(orc_media_type_is_json("text/plain", 10));
    assert_false(orc_media_type_is_json("application/x-www-form-urlencoded", 33));
    assert_false(orc_media_type_is_json("application/jsonx", 17));
}

/* ---- errors ------------------------------------------------------------------------------- */

static void error_json_and_status_mapping(void **state)
{
    json_t *e = orc_api_error_json(404, "The deployment x doesn't exist");
    char *text = json_dumps(e, JSON_COMPACT);

    (void)state;
    assert_string_equal(text, "{\"code\":404,\"title\":\"Not Found\","
                              "\"message\":\"The deployment x doesn't exist\"}");
    free(text);
    json_decref(e);
    assert_string_equal(orc_http_reason(405), "Method Not Allowed");
    assert_string_equal(orc_http_reason(413), "Payload Too Large");
    assert_string_equal(orc_http_reason(431), "Request Header Fields Too Large");
    assert_string_equal(orc_http_reason(299), "Unknown");
    assert_int_equal(orc_api_status_for(ORC_ENOTFOUND), 404);
    assert_int_equal(orc_api_status_for(ORC_EINVAL), 400);
    assert_int_equal(orc_api_status_for(ORC_ETOSCA), 400);
    assert_int_equal(orc_api_status_for(ORC_ECONFLICT), 409);
    assert_int_equal(orc_api_status_for(ORC_ELIMIT), 413);
    assert_int_equal(orc_api_status_for(ORC_EDENIED), 403);
    assert_int_equal(orc_api_status_for(ORC_ENOTSUP), 501);
    assert_int_equal(orc_api_status_for(ORC_ENOMEM), 500);
    assert_int_equal(orc_api_status_for(-5), 500);
}

/* ---- OpenAPI ------------------------------------------------------------------------------- */

static const orc_api_param_doc_t list_query[] = {
    {"page", "0-based page", "{\"type\":\"integer\",\"minimum\":0}", false},
    {"size", "page size", NULL, false},
    {NULL, NULL, NULL, false}};
static const orc_api_response_doc_t get_responses[] = {
    {200, "The deployment", "application/json", "{\"$ref\":\"#/components/schemas/Deployment\"}"},
    {404, "No such deployment", "application/json", "{\"$ref\":\"#/components/schemas/Error\"}"},
    {0, NULL, NULL, NULL}};
static const orc_api_response_doc_t delete_responses[] = {{204, "Deleting", NULL, NULL},
                                                          {0, NULL, NULL, NULL}};

static void openapi_lists_every_route(void **state)
{
    struct fixture *f = *state;
    orc_api_route_t list = {.method = "GET",
                            .pattern = "/deployments",
                            .handler = dummy,
                            .summary = "List",
                            .tag = "Deployments",
                            .query = list_query};
    orc_api_route_t get = {.method = "GET",
                           .pattern = "/deployments/{id}/",
                           .handler = dummy,
                           .responses = get_responses};
    orc_api_route_t del = {.method = "DELETE",
                           .pattern = "/deployments/{id}",
                           .handler = dummy,
                           .responses = delete_responses};
    orc_api_route_t post = {.method = "POST",
                            .pattern = "/deployments",
                            .handler = dummy,
                            .request_schema = "{\"type\":\"object\",\"required\":[\"template\"]}"};
    json_t *doc, *paths, *op;

    assert_int_equal(orc_api_register_schema(f->api, "Deployment", "{\"type\":\"object\"}"), 0);
    assert_int_equal(orc_api_register_schema(f->api, "Deployment", "{}"), ORC_ECONFLICT);
    assert_int_equal(orc_api_register_schema(f->api, "Error", "{}"), ORC_ECONFLICT);
    assert_int_equal(orc_api_register_schema(f->api, "Bad", "{"), ORC_EINVAL);
    assert_int_equal(orc_api_register(f->api, &list), 0);
    assert_int_equal(orc_api_register(f->api, &get), 0);
    assert_int_equal(orc_api_register(f->api, &del), 0);
    assert_int_equal(orc_api_register(f->api, &post), 0);
    doc = orc_api_openapi(f->api, "http://127.0.0.1:8080");
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.0.3");
    paths = json_object_get(doc, "paths");
    /* every route of the table, and nothing else */
    size_t ops = 0;
    const char *key;
    json_t *item;
    json_object_foreach(paths, key, item) ops += json_object_size(item);
    assert_int_equal(ops, f->api->router.count);
    for (size_t i = 0; i < f->api->router.count; i++) {
        const struct orc_route *r = f->api->router.routes[i];
        char lower[16];
        size_t n = 0;
        for (const char *m = r->method_name; *m; m++)
            lower[n++] = (char)(*m - 'A' + 'a');
        lower[n] = '\0';
        op = json_object_get(json_object_get(paths, r->pattern), lower);
        assert_non_null(op);
        assert_non_null(json_object_get(json_object_get(op, "responses"), "default"));
    }
    op = json_object_get(json_object_get(paths, "/deployments/{id}/"), "get");
    assert_string_equal(json_string_value(json_object_get(op, "operationId")),
                        "get_deployments_by_id");
    json_t *p0 = json_array_get(json_object_get(op, "parameters"), 0);
    assert_string_equal(json_string_value(json_object_get(p0, "name")), "id");
    assert_string_equal(json_string_value(json_object_get(p0, "in")), "path");
    assert_true(json_is_true(json_object_get(p0, "required")));
    assert_non_null(json_object_get(json_object_get(op, "responses"), "404"));
    op = json_object_get(json_object_get(paths, "/deployments"), "get");
    assert_int_equal(json_array_size(json_object_get(op, "parameters")), 2);
    op = json_object_get(json_object_get(paths, "/deployments"), "post");
    assert_non_null(json_object_get(op, "requestBody"));
    op = json_object_get(json_object_get(paths, "/deployments/{id}"), "delete");
    assert_null(
        json_object_get(json_object_get(json_object_get(op, "responses"), "204"), "content"));
    json_t *schemas = json_object_get(json_object_get(doc, "components"), "schemas");
    assert_non_null(json_object_get(schemas, "Deployment"));
    assert_non_null(json_object_get(schemas, "Error"));
    json_decref(doc);
}

/* The served text: the same document as orc_api_openapi for each server URL, rebuilt
 * when a route or schema is added after it was first served. */
static void openapi_text_is_cached_per_route_table(void **state)
{
    struct fixture *f = *state;
    orc_api_route_t list = {.method = "GET", .pattern = "/things", .handler = dummy};
    orc_api_route_t get = {.method = "GET", .pattern = "/things/{id}", .handler = dummy};
    const char *urls[] = {"http://a.example:8080", "https://b.example/\"quoted\"", NULL,
                          "http://\xff\xfe/"};
    size_t len = 0;
    char *text;
    json_t *doc, *want;

    assert_int_equal(orc_api_register(f->api, &list), 0);
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        text = orc_api_openapi_text(f->api, urls[i], &len);
        assert_non_null(text);
        assert_int_equal(strlen(text), len);
        doc = json_loads(text, 0, NULL);
        assert_non_null(doc);
        /* not UTF-8, or none: the relative "/" */
        want = orc_api_openapi(f->api, i < 2 ? urls[i] : "/");
        assert_true(json_equal(doc, want));
        json_decref(want);
        json_decref(doc);
        orc_free(text);
    }
    assert_int_equal(orc_api_register(f->api, &get), 0);
    assert_int_equal(orc_api_register_schema(f->api, "Thing", "{\"type\":\"object\"}"), 0);
    text = orc_api_openapi_text(f->api, "/", &len);
    doc = json_loads(text, 0, NULL);
    assert_non_null(json_object_get(json_object_get(doc, "paths"), "/things/{id}"));
    assert_non_null(
        json_object_get(json_object_get(json_object_get(doc, "components"), "schemas"), "Thing"));
    json_decref(doc);
    orc_free(text);
}

static void openapi_rejects_bad_documentation(void **state)
{
    struct fixture *f = *state;
    static const orc_api_response_doc_t bad_schema[] = {{200, "x", "application/json", "{not json"},
                                                        {0, NULL, NULL, NULL}};
    static const orc_api_response_doc_t bad_status[] = {{42, "x", NULL, NULL},
                                                        {0, NULL, NULL, NULL}};
    static const orc_api_param_doc_t bad_param[] = {{"q", NULL, "[", false},
                                                    {NULL, NULL, NULL, false}};
    orc_api_route_t r = {.method = "GET", .pattern = "/x", .handler = dummy};
    size_t before = f->api->router.count;

    r.responses = bad_schema;
    assert_int_equal(orc_api_register(f->api, &r), ORC_EINVAL);
    r.responses = bad_status;
    assert_int_equal(orc_api_register(f->api, &r), ORC_EINVAL);
    r.responses = NULL;
    r.query = bad_param;
    assert_int_equal(orc_api_register(f->api, &r), ORC_EINVAL);
    r.query = NULL;
    r.request_schema = "{";
    assert_int_equal(orc_api_register(f->api, &r), ORC_EINVAL);
    assert_int_equal(f->api->router.count, before); /* nothing half-registered */
    r.request_schema = NULL;
    assert_int_equal(orc_api_register(f->api, &r), 0);
}

/* ---- metrics -------------------------------------------------------------------------------- */

static void extra_metrics(void *data, orc_api_text_t *out)
{
    orc_api_metrics_printf(out, "# TYPE test_metric gauge\ntest_metric %d\n", *(int *)data);
}

static void metrics_text(void **state)
{
    struct fixture *f = *state;
    struct orc_route *info = NULL;
    static int value = 42;
    size_t len = 0;
    char *text;

    for (size_t i = 0; i < f->api->router.count; i++)
        if (strcmp(f->api->router.routes[i]->pattern, "/info") == 0)
            info = f->api->router.routes[i];
    assert_non_null(info);
    orc_metrics_observe(orc_metrics_route_series(&f->api->metrics, info, false), 200, 0.003);
    orc_metrics_observe(orc_metrics_route_series(&f->api->metrics, info, false), 200, 0.2);
    orc_metrics_observe(orc_metrics_route_series(&f->api->metrics, info, true), 200, 0.0001);
    orc_metrics_observe(orc_metrics_unmatched(&f->api->metrics, 0), 405, -1);
    assert_int_equal(orc_api_add_metrics(f->api, extra_metrics, &value), 0);
    text = orc_api_metrics_text(f->api, &len);
    assert_non_null(text);
    assert_int_equal(strlen(text), len);
    assert_non_null(strstr(text, "orchestrator_http_requests_total{method=\"GET\",route=\"/info\","
                                 "status=\"200\"} 2\n"));
    assert_non_null(strstr(text, "orchestrator_http_requests_total{method=\"HEAD\","
                                 "route=\"/info\",status=\"200\"} 1\n"));
    assert_non_null(strstr(text, "{method=\"OTHER\",route=\"unmatched\",status=\"405\"} 1\n"));
    assert_non_null(strstr(text, "orchestrator_http_request_duration_seconds_bucket{method=\"GET\","
                                 "route=\"/info\",le=\"0.0025\"} 0\n"));
    assert_non_null(strstr(text, "orchestrator_http_request_duration_seconds_bucket{method=\"GET\","
                                 "route=\"/info\",le=\"0.005\"} 1\n"));
    assert_non_null(strstr(text, "orchestrator_http_request_duration_seconds_bucket{method=\"GET\","
                                 "route=\"/info\",le=\"+Inf\"} 2\n"));
    assert_non_null(strstr(text, "orchestrator_http_request_duration_seconds_count{method=\"GET\","
                                 "route=\"/info\"} 2\n"));
    assert_non_null(strstr(text, "orchestrator_http_request_duration_seconds_sum{method=\"GET\","
                                 "route=\"/info\"} 0.203000000\n"));
    assert_non_null(strstr(text, "orchestrator_http_request_duration_seconds_sum{method=\"HEAD\","
                                 "route=\"/info\"} 0.000100000\n"));
    assert_non_null(strstr(text, "# TYPE orchestrator_http_request_duration_seconds histogram\n"));
    assert_non_null(strstr(text, "orchestrator_http_connections_open 0\n"));
    assert_non_null(strstr(text, "process_start_time_seconds "));
    assert_non_null(strstr(text, "orchestrator_build_info{name=\"orchestratord\""));
    assert_non_null(strstr(text, "test_metric 42\n"));
    free(text);
}

/* ---- the handler API in process ------------------------------------------------------------ */

struct live {
    uv_loop_t loop;
    orc_config_t cfg;
    orc_api_t *api;
    uv_async_t stop;  /* the client asks for the shutdown */
    uv_timer_t later; /* answers the deferred request */
    orc_api_req_t *pending;
    orc_api_req_t *hung;
    int cancels;
    int port;
    char failure[1024]; /* the client thread's first failed check */
    pthread_t client;
};

static int h_echo(orc_api_req_t *req, void *data)
{
    json_t *body;
    int rc = orc_api_req_json(req, &body);

    (void)data;
    if (rc < 0)
        return rc;
    orc_api_set_header(req, "Location",
                       orc_api_req_url(req, "/echo/%s", orc_api_req_param(req, "id")));
    return orc_api_send_json_new(
        req, 201,
        json_pack("{s:s, s:s?, s:o, s:s, s:s, s:i}", "id", orc_api_req_param(req, "id"), "x",
                  orc_api_req_query(req, "x"), "body", body, "route", orc_api_req_route(req),
                  "method", orc_api_req_method(req), "queries", (int)orc_api_req_query_count(req)));
}

static int h_fail(orc_api_req_t *req, void *data)
{
    const char *what = orc_api_req_param(req, "what");

    (void)data;
    if (strcmp(what, "recorded") == 0)
        return orc_api_req_fail(req, 409, "The deployment %s is busy", "d1");
    if (strcmp(what, "code") == 0)
        return ORC_ENOTFOUND;
    if (strcmp(what, "silent") == 0)
        return 0; /* a bug: no answer */
    if (strcmp(what, "twice") == 0) {
        orc_api_send_status(req, 204);
        return orc_api_send_status(req, 202) == ORC_EINVAL ? 0 : ORC_EHTTP;
    }
    return orc_api_send_error(req, 418, "%s", what);
}

static void answer_later(uv_timer_t *t)
{
    struct live *l = t->data;

    orc_api_send_json_new(l->pending, 200, json_pack("{s:b}", "late", 1));
    l->pending = NULL;
}

static void on_cancel(orc_api_req_t *req, void *data)
{
    struct live *l = data;

    if (req == l->hung)
        l->hung = NULL;
    l->cancels++;
}

static int h_defer(orc_api_req_t *req, void *data)
{
    struct live *l = data;
    int rc = orc_api_req_defer(req, on_cancel, l);

    if (rc < 0)
        return rc;
    if (strcmp(orc_api_req_param(req, "how"), "hang") == 0) {
        l->hung = req; /* answered by nobody: the shutdown cancels it */
        return 0;
    }
    l->pending = req;
    uv_timer_start(&l->later, answer_later, 20, 0);
    return orc_api_req_defer(req, on_cancel, l) == ORC_EINVAL ? 0 : ORC_EHTTP;
}

static const orc_api_route_t live_routes[] = {
    {.method = "POST", .pattern = "/echo/{id}", .handler = h_echo},
    {.method = "GET", .pattern = "/fail/{what}", .handler = h_fail},
    {.method = "GET", .pattern = "/defer/{how}", .handler = h_defer},
};

struct got {
    long status;
    char body[4096];
    size_t len;
    char location[256];
};

static size_t got_body(char *data, size_t size, size_t n, void *userp)
{
    struct got *g = userp;
    size_t take = size * n < sizeof(g->body) - 1 - g->len ? size * n : sizeof(g->body) - 1 - g->len;

    memcpy(g->body + g->len, data, take);
    g->len += take;
    g->body[g->len] = '\0';
    return size * n;
}

static size_t got_header(char *data, size_t size, size_t n, void *userp)
{
    struct got *g = userp;

    if (size * n > 10 && strncasecmp(data, "location: ", 10) == 0)
        snprintf(g->location, sizeof(g->location), "%.*s", (int)strcspn(data + 10, "\r\n"),
                 data + 10);
    return size * n;
}

static CURL *easy(struct live *l, const char *method, const char *path, const char *body,
                  const char *ctype, struct got *g, struct curl_slist **hl)
{
    CURL *c = curl_easy_init();
    char url[256];

    memset(g, 0, sizeof(*g));
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", l->port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, got_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, g);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, got_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, g);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    *hl = curl_slist_append(NULL, "Expect:");
    if (ctype != NULL) { /* "": no Content-Type at all */
        char h[128];
        snprintf(h, sizeof(h), ctype[0] ? "Content-Type: %s" : "Content-Type:", ctype);
        *hl = curl_slist_append(*hl, h);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hl);
    if (body != NULL)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    return c;
}

static long call(struct live *l, const char *method, const char *path, const char *body,
                 const char *ctype, struct got *g)
{
    struct curl_slist *hl;
    CURL *c = easy(l, method, path, body, ctype, g, &hl);

    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &g->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    return g->status;
}

#define CHECK(l, cond)                                                                             \
    do {                                                                                           \
        if (!(cond) && (l)->failure[0] == '\0')                                                    \
            snprintf((l)->failure, sizeof((l)->failure), "line %d: %s", __LINE__, #cond);          \
    } while (0)

static void client_requests(struct live *l)
{
    struct got g;
    char want[256];

    CHECK(l, call(l, "POST", "/echo/a%20b/?x=1&x=2&y", "{\"k\":[1,2]}", "application/json", &g) ==
                 201);
    CHECK(l, strstr(g.body, "\"id\":\"a b\"") && strstr(g.body, "\"x\":\"1\"") &&
                 strstr(g.body, "\"body\":{\"k\":[1,2]}") &&
                 strstr(g.body, "\"route\":\"/echo/{id}\"") && strstr(g.body, "\"queries\":3"));
    snprintf(want, sizeof(want), "http://127.0.0.1:%d/echo/a b", l->port);
    CHECK(l, strcmp(g.location, want) == 0);
    CHECK(l, call(l, "POST", "/echo/1", "{\"a\":", "application/json", &g) == 400);
    CHECK(l, strstr(g.body, "\"message\":\"invalid JSON in the request body at line 1, column 5"));
    CHECK(l, call(l, "POST", "/echo/2", "{}", "", &g) == 201); /* no Content-Type: accepted */
    CHECK(l, call(l, "POST", "/echo/1", "", "application/json", &g) == 400);
    CHECK(l, strstr(g.body, "the request body is empty"));
    CHECK(l, call(l, "POST", "/echo/1", "[[[[1]]]]", "application/json; charset=utf-8", &g) == 400);
    CHECK(l, strstr(g.body, "nests deeper than 3 levels at line 1, column 4"));
    CHECK(l, call(l, "POST", "/echo/1", "a=b", "application/x-www-form-urlencoded", &g) == 415);
    CHECK(l, strstr(g.body, "\"title\":\"Unsupported Media Type\""));
    CHECK(l, call(l, "GET", "/fail/recorded", NULL, NULL, &g) == 409);
    CHECK(l, strcmp(g.body, "{\"code\":409,\"title\":\"Conflict\",\"message\":\"The deployment d1 "
                            "is busy\"}") == 0);
    CHECK(l, call(l, "GET", "/fail/code", NULL, NULL, &g) == 404);
    CHECK(l, strstr(g.body, "\"message\":\"no such object\""));
    CHECK(l, call(l, "GET", "/fail/silent", NULL, NULL, &g) == 500);
    CHECK(l, call(l, "GET", "/fail/twice", NULL, NULL, &g) == 204);
    CHECK(l, call(l, "GET", "/fail/teapot", NULL, NULL, &g) == 418);
    CHECK(l, call(l, "GET", "/defer/later", NULL, NULL, &g) == 200);
    CHECK(l, strcmp(g.body, "{\"late\":true}") == 0);
    CHECK(l, call(l, "POST", "/fail/x", NULL, NULL, &g) == 405);
}

/* Starts a request that the server never answers, asks for the shutdown,
 * and expects the 503 the deadline gives it. */
static void client_hang_then_stop(struct live *l)
{
    struct curl_slist *hl;
    struct got g;
    CURL *c = easy(l, "GET", "/defer/hang", NULL, NULL, &g, &hl);
    CURLM *m = curl_multi_init();
    int running = 1, msgs;
    bool stop_sent = false;

    curl_multi_add_handle(m, c);
    for (int i = 0; running && i < 2000; i++) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 10, NULL);
        if (!stop_sent && i == 20) { /* the request is with the server by now */
            uv_async_send(&l->stop);
            stop_sent = true;
        }
    }
    CURLMsg *msg = curl_multi_info_read(m, &msgs);
    CHECK(l, msg != NULL && msg->data.result == CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &g.status);
    CHECK(l, g.status == 503);
    CHECK(l, strstr(g.body, "the server is shutting down"));
    curl_multi_remove_handle(m, c);
    curl_easy_cleanup(c);
    curl_multi_cleanup(m);
    curl_slist_free_all(hl);
    if (!stop_sent)
        uv_async_send(&l->stop);
}

static void *client_main(void *arg)
{
    struct live *l = arg;

    client_requests(l);
    client_hang_then_stop(l);
    return NULL;
}

static void on_closed(orc_api_t *api, void *data)
{
    struct live *l = data;

    (void)api;
    uv_close((uv_handle_t *)&l->stop, NULL);
    uv_close((uv_handle_t *)&l->later, NULL);
}

static void on_stop(uv_async_t *a)
{
    struct live *l = a->data;

    orc_api_shutdown(l->api, on_closed, l);
}

static void handlers_end_to_end(void **state)
{
    struct live *l = calloc(1, sizeof(*l));
    char why[128];

    (void)state;
    assert_int_equal(uv_loop_init(&l->loop), 0);
    assert_int_equal(orc_config_init(&l->cfg), 0);
    assert_int_equal(orc_config_parse_listen("127.0.0.1:0", &l->cfg.listen[0], why, sizeof(why)),
                     0);
    l->cfg.limits.json_max_depth = 3;
    l->cfg.limits.shutdown_timeout_ms = 200;
    orc_log_set_level(ORC_LOG_ERROR);
    assert_int_equal(orc_api_new(&l->loop, &l->cfg, &l->api), 0);
    for (size_t i = 0; i < sizeof(live_routes) / sizeof(live_routes[0]); i++) {
        orc_api_route_t r = live_routes[i];
        r.data = l;
        assert_int_equal(orc_api_register(l->api, &r), 0);
    }
    assert_int_equal(orc_api_start(l->api), 0);
    assert_int_equal(orc_api_listener_count(l->api), 1);
    l->port = orc_api_listener_port(l->api, 0);
    assert_true(l->port > 0);
    uv_async_init(&l->loop, &l->stop, on_stop);
    l->stop.data = l;
    uv_timer_init(&l->loop, &l->later);
    l->later.data = l;
    assert_int_equal(pthread_create(&l->client, NULL, client_main, l), 0);
    uv_run(&l->loop, UV_RUN_DEFAULT);
    pthread_join(l->client, NULL);
    orc_api_free(l->api);
    assert_int_equal(uv_loop_close(&l->loop), 0); /* every handle closed */
    orc_config_fini(&l->cfg);
    if (l->failure[0] != '\0')
        fail_msg("client: %s", l->failure);
    assert_int_equal(l->cancels, 1);
    assert_null(l->hung);
    free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(route_matching_with_and_without_trailing_slash, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(route_params_are_captured_and_decoded, setup, teardown),
        cmocka_unit_test_setup_teardown(literal_segments_win_over_params, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_paths_and_methods, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_and_conflicting_registrations, setup, teardown),
        cmocka_unit_test(method_names_and_bits),
        cmocka_unit_test(percent_decoding),
        cmocka_unit_test(query_parsing),
        cmocka_unit_test(json_body_limits_and_errors),
        cmocka_unit_test(media_types),
        cmocka_unit_test(error_json_and_status_mapping),
        cmocka_unit_test_setup_teardown(openapi_lists_every_route, setup, teardown),
        cmocka_unit_test_setup_teardown(openapi_text_is_cached_per_route_table, setup, teardown),
        cmocka_unit_test_setup_teardown(openapi_rejects_bad_documentation, setup, teardown),
        cmocka_unit_test_setup_teardown(metrics_text, setup, teardown),
        cmocka_unit_test(handlers_end_to_end),
    };
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
