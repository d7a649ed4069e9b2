/*
 * The REST contract of API.md against the real daemon over real HTTP: the
 * server endpoints, every body rule of POST /deployments (its exact
 * messages, the bounds of the timeouts and their relation, keepLastAttempt
 * as a boolean and as a string, unknown fields, bad JSON, wrong types, and a
 * template error that names file:line:col), one deployment and each of its
 * sub-resources (template, log, extrainfo, outputs, events, resources,
 * resource) with 404s for unknown and malformed ids and a trailing slash on
 * each, the list with its filters, sorting and paging links followed to the
 * end, DELETE and PATCH rules, the time format, absolute links from Host,
 * and the error JSON with the reason phrase as title. Each test runs its own
 * orchestratord on a sim site (plugins/sim); every exchange is recorded, and
 * the last test holds them all against the daemon's /openapi.json.
 */
#include <dirent.h>
#include <unistd.h>

#include "testutil.h"
#include "daemon_fixture.h"
#include "openapi_check.h"

#include "api/internal.h" /* orc_api_openapi, for the generation rules */

/* One fast sim site with room for everything the tests ask; deletions take
 * 300 ms, so that a second DELETE finds the first still in progress. */
static const char one_site[] =
    "sites:\n"
    "  - name: sim-a\n"
    "    driver: sim\n"
    "    config: {inventory: \"@DIR@/sim-a.json\", capacity: {cpus: 512, mem: 2048 GiB,\n"
    "             gpus: {A100: 64, T4: 16}}, latency: {deprovision: 300}}\n";

static const char *const no_id = "01a23af1-0000-7000-8000-000000000000"; /* valid, unknown */

/* {"template": tpl, FIELDS} as a new string ("" fields: none). */
static char *with_template(const char *tpl, const char *fields)
{
    json_t *s = json_string(tpl);
    char *quoted = json_dumps(s, JSON_ENCODE_ANY), *out;
    size_t n;

    json_decref(s);
    assert_non_null(quoted);
    n = strlen(quoted) + strlen(fields) + 32;
    out = malloc(n);
    assert_non_null(out);
    snprintf(out, n, "{\"template\":%s%s%s}", quoted, fields[0] ? "," : "", fields);
    free(quoted);
    return out;
}

/* POSTs {"template": fx_serving, FIELDS}; returns the status, r filled. */
static long post_with(struct fx_daemon *d, const char *fields, struct fx_resp *r)
{
    char *body = with_template(fx_serving, fields);
    long status = fx_http(d, "POST", "/deployments", NULL, body, r);

    free(body);
    return status;
}

static void expect_post_ok(struct fx_daemon *d, const char *fields)
{
    struct fx_resp r;

    if (post_with(d, fields, &r) != 201)
        fail_msg("POST with %s: %ld %s", fields, r.status, r.body);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "CREATE_IN_PROGRESS");
    fx_resp_free(&r);
}

static void expect_post_400(struct fx_daemon *d, const char *fields, const char *want)
{
    struct fx_resp r;

    post_with(d, fields, &r);
    fx_assert_error(&r, 400, want);
    fx_resp_free(&r);
}

/* ---- the server's own endpoints ---- */

static void server_endpoints(void **state)
{
    static const char *const paths[] = {"/",       "/info",    "/configuration", "/healthz",
                                        "/readyz", "/metrics", "/openapi.json"};
    char cfgdir[64] = "/tmp/test-rest-cfg-XXXXXX", cfg[128], env[160], path[128];
    const char *const envs[] = {env, NULL};
    struct fx_daemon d;
    struct fx_resp r;
    json_t *j;

    (void)state;
    assert_non_null(mkdtemp(cfgdir));
    fx_write_file(cfgdir, "orc.yaml",
                  "configuration:\n  cprUrl: http://cpr.example.org\n  imUrl: \"\"\n", cfg,
                  sizeof(cfg));
    snprintf(env, sizeof(env), "ORCHESTRATOR_CONFIG=%s", cfg);
    fx_start(&d, "test-rest-server", one_site, envs);
    assert_int_equal(fx_get(&d, "/", &r), 200);
    assert_int_equal(strncmp(r.ctype, "text/plain", 10), 0);
    assert_string_equal(r.body, "orchestratord");
    fx_resp_free(&r);
    j = fx_get_json(&d, "/info");
    assert_non_null(json_string_value(json_object_get(json_object_get(j, "build"), "version")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "build"), "name")),
                        "orchestratord");
    assert_non_null(json_object_get(json_object_get(j, "git"), "commit"));
    json_decref(j);
    j = fx_get_json(&d, "/configuration");
    assert_string_equal(json_string_value(json_object_get(j, "cprUrl")), "http://cpr.example.org");
    assert_string_equal(json_string_value(json_object_get(j, "imUrl")), "");
    assert_int_equal(json_object_size(j), 2);
    json_decref(j);
    j = fx_get_json(&d, "/readyz");
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ready");
    json_decref(j);
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        snprintf(path, sizeof(path), "%s%s", paths[i], strcmp(paths[i], "/") ? "/" : "");
        assert_int_equal(fx_get(&d, path, &r), 200); /* and with a trailing slash */
        fx_resp_free(&r);
        assert_int_equal(fx_http(&d, "HEAD", paths[i], NULL, NULL, &r), 200);
        assert_int_equal(r.len, 0);
        fx_resp_free(&r);
    }
    fx_stop(&d);
    snprintf(path, sizeof(path), "rm -rf '%s'", cfgdir);
    assert_int_equal(system(path), 0);
}

/* ---- POST /deployments: the body ---- */

static void create_body_rules(void **state)
{
    struct fx_daemon d;
    struct fx_resp r;

    (void)state;
    fx_start(&d, "test-rest-body", one_site, NULL);
    /* the template: required, with this exact message */
    static const char *const no_template[] = {"{}",
                                              "{\"parameters\":{}}",
                                              "{\"template\":\"\"}",
                                              "{\"template\":42}",
                                              "{\"template\":null}",
                                              "{\"template\":[\"a\"]}",
                                              "{\"template\":{}}"};
    for (size_t i = 0; i < sizeof(no_template) / sizeof(no_template[0]); i++)
        fx_expect_error(&d, "POST", "/deployments", no_template[i], 400,
                        "A TOSCA template must be provided");
    fx_http(&d, "POST", "/deployments", NULL, "{}", &r);
    assert_string_equal(json_string_value(json_object_get(r.json, "message")),
                        "A TOSCA template must be provided");
    fx_resp_free(&r);
    /* the body itself */
    fx_expect_error(&d, "POST", "/deployments", "{\"template\": ", 400, "invalid JSON");
    fx_expect_error(&d, "POST", "/deployments", "[1, 2]", 400, "the body must be a JSON object");
    fx_expect_error(&d, "POST", "/deployments", "\"text\"", 400, NULL);
    fx_expect_error(&d, "POST", "/deployments", "", 400, NULL);
    {
        const char *const text[] = {"Content-Type: text/plain", NULL};
        char *body = with_template(fx_serving, "");
        fx_http(&d, "POST", "/deployments", text, body, &r);
        fx_assert_error(&r, 415, NULL);
        fx_resp_free(&r);
        free(body);
    }
    /* parameters */
    expect_post_ok(&d, "\"parameters\":{\"port\":8080}");
    expect_post_ok(&d, "\"parameters\":null");
    expect_post_400(&d, "\"parameters\":[1]", "parameters must be a JSON object");
    expect_post_400(&d, "\"parameters\":\"port=1\"", "parameters must be a JSON object");
    /* callback: http: or https: only; the deployment shows it */
    assert_int_equal(post_with(&d, "\"callback\":\"http://127.0.0.1:9/hook\"", &r), 201);
    assert_string_equal(json_string_value(json_object_get(r.json, "callback")),
                        "http://127.0.0.1:9/hook");
    fx_resp_free(&r);
    expect_post_ok(&d, "\"callback\":\"https://portal.example.org/hook\"");
    expect_post_400(&d, "\"callback\":\"ftp://example.org/x\"", "callback must be an http:");
    expect_post_400(&d, "\"callback\":\"example.org\"", "callback must be an http:");
    expect_post_400(&d, "\"callback\":7", "callback must be an http:");
    /* timeouts: integers >= 1, providerTimeoutMins <= timeoutMins */
    expect_post_ok(&d, "\"timeoutMins\":1");
    expect_post_ok(&d, "\"timeoutMins\":60,\"providerTimeoutMins\":60");
    expect_post_ok(&d, "\"timeoutMins\":60,\"providerTimeoutMins\":5");
    expect_post_ok(&d, "\"providerTimeoutMins\":99999");
    expect_post_400(&d, "\"timeoutMins\":0", "timeoutMins must be an integer >= 1");
    expect_post_400(&d, "\"timeoutMins\":-5", "timeoutMins must be an integer >= 1");
    expect_post_400(&d, "\"timeoutMins\":1.5", "timeoutMins must be an integer >= 1");
    expect_post_400(&d, "\"timeoutMins\":\"10\"", "timeoutMins must be an integer >= 1");
    expect_post_400(&d, "\"providerTimeoutMins\":0", "providerTimeoutMins must be an integer");
    expect_post_400(&d, "\"providerTimeoutMins\":true", "providerTimeoutMins must be an integer");
    expect_post_400(&d, "\"timeoutMins\":10,\"providerTimeoutMins\":11",
                    "providerTimeoutMins (11) must not exceed timeoutMins (10)");
    /* maxProvidersRetry */
    expect_post_ok(&d, "\"maxProvidersRetry\":1");
    expect_post_400(&d, "\"maxProvidersRetry\":0", "maxProvidersRetry must be an integer >= 1");
    expect_post_400(&d, "\"maxProvidersRetry\":\"2\"", "maxProvidersRetry must be an integer");
    /* keepLastAttempt: a boolean, or the strings clients send */
    expect_post_ok(&d, "\"keepLastAttempt\":true");
    expect_post_ok(&d, "\"keepLastAttempt\":false");
    expect_post_ok(&d, "\"keepLastAttempt\":\"true\"");
    expect_post_ok(&d, "\"keepLastAttempt\":\"false\"");
    expect_post_400(&d, "\"keepLastAttempt\":\"yes\"", "keepLastAttempt must be true or false");
    expect_post_400(&d, "\"keepLastAttempt\":1", "keepLastAttempt must be true or false");
    expect_post_400(&d, "\"keepLastAttempt\":\"\"", "keepLastAttempt must be true or false");
    /* userGroup */
    assert_int_equal(post_with(&d, "\"userGroup\":\"team-a\"", &r), 201);
    assert_string_equal(json_string_value(json_object_get(r.json, "userGroup")), "team-a");
    fx_resp_free(&r);
    expect_post_400(&d, "\"userGroup\":5", "userGroup must be a string");
    /* unknown fields are ignored */
    expect_post_ok(&d, "\"colour\":\"blue\",\"nested\":{\"a\":[1,2]},\"timeoutMinutes\":\"x\"");
    /* a trailing slash */
    {
        char *body = with_template(fx_serving, "");
        assert_int_equal(fx_http(&d, "POST", "/deployments/", NULL, body, &r), 201);
        fx_resp_free(&r);
        free(body);
    }
    fx_stop(&d);
}

/* A template error is a 400 (never 500) whose message names file:line:col. */
static void template_errors_name_the_place(void **state)
{
    static const struct {
        const char *yaml, *want;
    } cases[] = {
        {"tosca_definitions_version: tosca_simple_yaml_1_3\n"
         "topology_template:\n  node_templates:\n    a: {type: Nope}\n",
         "template.yaml:4:15"},
        {"tosca_definitions_version: tosca_simple_yaml_1_3\n"
         "topology_template:\n  node_templates:\n    a: [unclosed\n",
         "template.yaml:"},
        {"tosca_definitions_version: tosca_simple_yaml_9_9\n", "template.yaml:1:"},
        {"just text\n", "template.yaml:"},
    };
    struct fx_daemon d;
    struct fx_resp r;

    (void)state;
    fx_start(&d, "test-rest-tosca", one_site, NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *body = with_template(cases[i].yaml, "");
        fx_http(&d, "POST", "/deployments", NULL, body, &r);
        fx_assert_error(&r, 400, cases[i].want);
        fx_resp_free(&r);
        free(body);
    }
    /* inputs that break the template's constraints name the place too */
    {
        char *body = with_template(fx_serving, "\"parameters\":{\"num_gpus\":99}");
        fx_http(&d, "POST", "/deployments", NULL, body, &r);
        fx_assert_error(&r, 400, "template.yaml:");
        assert_non_null(strstr(json_string_value(json_object_get(r.json, "message")), "num_gpus"));
        fx_resp_free(&r);
        free(body);
    }
    fx_stop(&d);
}

/* ---- one deployment and what hangs off it ---- */

/* The fields API.md says are always there, the times, and the three links
 * (absolute, from base). */
static void check_deployment(const json_t *dep, const char *base)
{
    const char *uuid = json_string_value(json_object_get(dep, "uuid"));
    const json_t *links = json_object_get(dep, "links");
    static const char *const rels[] = {"self", "resources", "template"};
    static const char *const tails[] = {"", "/resources", "/template"};
    char want[256];

    assert_non_null(uuid);
    assert_int_equal(strlen(uuid), 36);
    assert_int_equal(uuid[14], '7'); /* time-ordered: version 7 */
    fx_assert_time(json_string_value(json_object_get(dep, "creationTime")));
    fx_assert_time(json_string_value(json_object_get(dep, "updateTime")));
    assert_non_null(json_string_value(json_object_get(dep, "status")));
    assert_string_equal(json_string_value(json_object_get(dep, "task")), "DEPLOYER");
    assert_true(json_is_object(json_object_get(dep, "outputs")));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(dep, "createdBy"), "subject")),
        "anonymous");
    assert_non_null(
        json_string_value(json_object_get(json_object_get(dep, "createdBy"), "issuer")));
    assert_int_equal(json_array_size(links), 3);
    for (size_t i = 0; i < 3; i++) {
        const json_t *l = json_array_get(links, i);
        snprintf(want, sizeof(want), "%s/deployments/%s%s", base, uuid, tails[i]);
        assert_string_equal(json_string_value(json_object_get(l, "rel")), rels[i]);
        assert_string_equal(json_string_value(json_object_get(l, "href")), want);
    }
}

static void check_resource(const json_t *res, const char *base, const char *dep_uuid)
{
    const char *uuid = json_string_value(json_object_get(res, "uuid"));
    const json_t *links = json_object_get(res, "links");
    char want[256];

    assert_non_null(uuid);
    assert_int_equal(strlen(uuid), 36);
    fx_assert_time(json_string_value(json_object_get(res, "creationTime")));
    fx_assert_time(json_string_value(json_object_get(res, "updateTime")));
    assert_non_null(json_string_value(json_object_get(res, "state")));
    assert_non_null(json_string_value(json_object_get(res, "toscaNodeType")));
    assert_non_null(json_string_value(json_object_get(res, "toscaNodeName")));
    assert_true(json_is_array(json_object_get(res, "requiredBy")));
    assert_int_equal(json_array_size(links), 2);
    snprintf(want, sizeof(want), "%s/deployments/%s", base, dep_uuid);
    assert_string_equal(json_string_value(json_object_get(json_array_get(links, 0), "href")), want);
    snprintf(want, sizeof(want), "%s/deployments/%s/resources/%s", base, dep_uuid, uuid);
    assert_string_equal(json_string_value(json_object_get(json_array_get(links, 1), "href")), want);
}

/* Creates a serving deployment and waits for CREATE_COMPLETE. */
static void deploy_serving(struct fx_daemon *d, char uuid[64])
{
    json_t *dep = fx_create(d, fx_serving, NULL, uuid);

    assert_string_equal(json_string_value(json_object_get(dep, "status")), "CREATE_IN_PROGRESS");
    check_deployment(dep, d->url);
    json_decref(dep);
    json_decref(fx_wait_status(d, uuid, "CREATE_COMPLETE", 10000));
}

static void show_and_links_from_host(void **state)
{
    const char *const host[] = {"Host: orchestrator.example.org:8443", NULL};
    char uuid[64], path[160];
    struct fx_daemon d;
    struct fx_resp r;
    json_t *dep;

    (void)state;
    fx_start(&d, "test-rest-show", one_site, NULL);
    deploy_serving(&d, uuid);
    snprintf(path, sizeof(path), "/deployments/%s", uuid);
    dep = fx_get_json(&d, path);
    check_deployment(dep, d.url);
    assert_string_equal(json_string_value(json_object_get(dep, "cloudProviderName")), "sim-a");
    assert_non_null(json_object_get(json_object_get(dep, "outputs"), "endpoint"));
    assert_null(json_object_get(dep, "statusReason"));
    json_decref(dep);
    /* links follow the Host header */
    assert_int_equal(fx_http(&d, "GET", path, host, NULL, &r), 200);
    check_deployment(r.json, "http://orchestrator.example.org:8443");
    fx_resp_free(&r);
    /* a trailing slash is the same resource */
    snprintf(path, sizeof(path), "/deployments/%s/", uuid);
    assert_int_equal(fx_get(&d, path, &r), 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "uuid")), uuid);
    fx_resp_free(&r);
    /* unknown and malformed ids */
    snprintf(path, sizeof(path), "/deployments/%s", no_id);
    fx_get(&d, path, &r);
    fx_assert_error(&r, 404, "doesn't exist");
    assert_non_null(strstr(json_string_value(json_object_get(r.json, "message")), no_id));
    fx_resp_free(&r);
    fx_expect_error(&d, "GET", "/deployments/not-a-uuid", NULL, 404, "doesn't exist");
    fx_expect_error(&d, "GET", "/deployments/01A23AF1-0000-7000-8000-00000000000Z", NULL, 404,
                    NULL);
    fx_expect_error(&d, "GET", "/deployments/%20", NULL, 404, NULL);
    fx_stop(&d);
}

static void check_text_routes(struct fx_daemon *d, const char *uuid, const char *slash)
{
    char path[160];
    struct fx_resp r;

    snprintf(path, sizeof(path), "/deployments/%s/template%s", uuid, slash);
    assert_int_equal(fx_get(d, path, &r), 200);
    assert_int_equal(strncmp(r.ctype, "text/plain", 10), 0);
    assert_string_equal(r.body, fx_serving);
    fx_resp_free(&r);
    snprintf(path, sizeof(path), "/deployments/%s/log%s", uuid, slash);
    assert_int_equal(fx_get(d, path, &r), 200);
    assert_int_equal(strncmp(r.ctype, "text/plain", 10), 0);
    /* one line per event: "time type message" */
    assert_int_equal(r.body[21], ' ');
    r.body[21] = '\0';
    fx_assert_time(r.body);
    r.body[21] = ' ';
    assert_non_null(strstr(r.body, " deployment.created "));
    assert_non_null(strstr(r.body, "CREATE_COMPLETE"));
    assert_int_equal(r.body[r.len - 1], '\n');
    fx_resp_free(&r);
}

/* extrainfo: JSON per node, whether the client asks for JSON or text. */
static void check_extrainfo(struct fx_daemon *d, const char *uuid, const char *accept)
{
    const char *const headers[] = {accept, NULL};
    char path[160];
    struct fx_resp r;
    json_error_t je;
    json_t *arr;

    snprintf(path, sizeof(path), "/deployments/%s/extrainfo", uuid);
    assert_int_equal(fx_http(d, "GET", path, headers, NULL, &r), 200);
    assert_true(strncmp(r.ctype, "application/json", 16) == 0 ||
                strncmp(r.ctype, "text/plain", 10) == 0);
    arr = json_loads(r.body, 0, &je);
    assert_true(json_is_array(arr));
    assert_int_equal(json_array_size(arr), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "node")),
                        "serve_node");
    assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "site")),
                        "sim-a");
    assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 1), "node")),
                        "model_api");
    json_decref(arr);
    fx_resp_free(&r);
}

static void check_events(struct fx_daemon *d, const char *uuid)
{
    json_t *ev = fx_events(d, uuid, NULL), *e;
    json_int_t last_id = 0;
    size_t i;

    assert_true(json_array_size(ev) >= 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ev, 0), "type")),
                        "deployment.created");
    json_array_foreach(ev, i, e)
    {
        assert_true(json_integer_value(json_object_get(e, "id")) > last_id);
        last_id = json_integer_value(json_object_get(e, "id"));
        fx_assert_time(json_string_value(json_object_get(e, "time")));
        assert_true(json_is_integer(json_object_get(e, "timeMs")));
        assert_non_null(json_string_value(json_object_get(e, "message")));
    }
    e = json_array_get(ev, json_array_size(ev) - 1);
    assert_string_equal(json_string_value(json_object_get(e, "type")), "deployment.status");
    assert_string_equal(json_string_value(json_object_get(json_object_get(e, "data"), "status")),
                        "CREATE_COMPLETE");
    json_decref(ev);
}

static void subresources(void **state)
{
    static const char *const subs[] = {"template", "log",       "extrainfo", "outputs",
                                       "events",   "resources", "resources/" /* + rid */};
    char uuid[64], path[256];
    struct fx_daemon d;
    struct fx_resp r;
    json_t *j;

    (void)state;
    fx_start(&d, "test-rest-sub", one_site, NULL);
    deploy_serving(&d, uuid);
    check_text_routes(&d, uuid, "");
    check_text_routes(&d, uuid, "/");
    check_extrainfo(&d, uuid, "Accept: application/json");
    check_extrainfo(&d, uuid, "Accept: text/plain");
    check_events(&d, uuid);
    snprintf(path, sizeof(path), "/deployments/%s/outputs", uuid);
    j = fx_get_json(&d, path);
    assert_non_null(strstr(json_string_value(json_object_get(j, "endpoint")), ":5000/v2/models/"));
    json_decref(j);
    /* a trailing slash on each */
    for (size_t i = 0; i < 6; i++) {
        snprintf(path, sizeof(path), "/deployments/%s/%s/", uuid, subs[i]);
        assert_int_equal(fx_get(&d, path, &r), 200);
        fx_resp_free(&r);
    }
    /* 404 for an unknown and a malformed deployment id on each */
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        const char *ids[] = {no_id, "nope"};
        for (size_t k = 0; k < 2; k++) {
            snprintf(path, sizeof(path), "/deployments/%s/%s%s", ids[k], subs[i],
                     i == 6 ? no_id : "");
            fx_expect_error(&d, "GET", path, NULL, 404, "doesn't exist");
        }
    }
    fx_stop(&d);
}

/* The resources of a deployment: paged, filtered by type, one by one. */
static void resources_paged_and_filtered(void **state)
{
    const char *const host[] = {"Host: orc.example.org", NULL};
    char uuid[64], other[64], path[256], next[512];
    struct fx_daemon d;
    struct fx_resp r;
    json_t *page, *res;
    size_t i;

    (void)state;
    fx_start(&d, "test-rest-res", one_site, NULL);
    deploy_serving(&d, uuid);
    deploy_serving(&d, other);
    snprintf(path, sizeof(path), "/deployments/%s/resources", uuid);
    page = fx_get_json(&d, path);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(page, "page"), "totalElements")), 2);
    json_array_foreach(json_object_get(page, "content"), i, res)
    {
        char one[512];
        const char *name = json_string_value(json_object_get(res, "toscaNodeName"));
        const char *st = json_string_value(json_object_get(res, "state"));
        check_resource(res, d.url, uuid);
        /* a completed deployment: its node and its service run */
        assert_non_null(name);
        assert_string_equal(st, "STARTED");
        snprintf(one, sizeof(one), "%s/%s", path, json_string_value(json_object_get(res, "uuid")));
        json_t *got = fx_get_json(&d, one);
        assert_true(json_equal(got, res));
        json_decref(got);
        strcat(one, "/");
        assert_int_equal(fx_get(&d, one, &r), 200);
        fx_resp_free(&r);
        /* the resource of one deployment is not found under another */
        snprintf(one, sizeof(one), "/deployments/%s/resources/%s", other,
                 json_string_value(json_object_get(res, "uuid")));
        fx_expect_error(&d, "GET", one, NULL, 404, "doesn't exist");
    }
    json_decref(page);
    /* ?type= */
    snprintf(path, sizeof(path), "/deployments/%s/resources?type=orc.nodes.Service", uuid);
    page = fx_get_json(&d, path);
    assert_int_equal(json_array_size(json_object_get(page, "content")), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(page, "content"), 0), "toscaNodeName")),
                        "model_api");
    json_decref(page);
    snprintf(path, sizeof(path), "/deployments/%s/resources?type=tosca.nodes.Nope", uuid);
    page = fx_get_json(&d, path);
    assert_int_equal(json_array_size(json_object_get(page, "content")), 0);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(page, "page"), "totalElements")), 0);
    json_decref(page);
    /* paging: one per page, following next to the end, links from Host */
    snprintf(next, sizeof(next), "/deployments/%s/resources?size=1", uuid);
    for (int n = 0; n < 2; n++) {
        const json_t *links, *l;
        bool has_next = false;
        size_t k;
        assert_int_equal(fx_http(&d, "GET", next, host, NULL, &r), 200);
        assert_int_equal(json_array_size(json_object_get(r.json, "content")), 1);
        assert_int_equal(
            json_integer_value(json_object_get(json_object_get(r.json, "page"), "number")), n);
        links = json_object_get(r.json, "links");
        json_array_foreach(links, k, l)
        {
            const char *href = json_string_value(json_object_get(l, "href"));
            assert_int_equal(strncmp(href, "http://orc.example.org/deployments/", 35), 0);
            if (strcmp(json_string_value(json_object_get(l, "rel")), "next") == 0) {
                snprintf(next, sizeof(next), "%s", href + strlen("http://orc.example.org"));
                has_next = true;
            }
        }
        assert_true(has_next == (n == 0));
        fx_resp_free(&r);
    }
    /* unknown and malformed resource ids */
    snprintf(path, sizeof(path), "/deployments/%s/resources/%s", uuid, no_id);
    fx_expect_error(&d, "GET", path, NULL, 404, "doesn't exist");
    snprintf(path, sizeof(path), "/deployments/%s/resources/zzz", uuid);
    fx_expect_error(&d, "GET", path, NULL, 404, "doesn't exist");
    snprintf(path, sizeof(path), "/deployments/%s/resources?page=-1", uuid);
    fx_expect_error(&d, "GET", path, NULL, 400, "page must be a number");
    snprintf(path, sizeof(path), "/deployments/%s/resources?size=ten", uuid);
    fx_expect_error(&d, "GET", path, NULL, 400, "size must be a number");
    fx_stop(&d);
}

/* requiredBy names the nodes that need a resource (API.md's Resource). */
static void resources_say_what_requires_them(void **state)
{
    char uuid[64], path[256];
    struct fx_daemon d;
    json_t *page, *res;
    size_t i;

    (void)state;
    fx_start(&d, "test-rest-reqby", one_site, NULL);
    deploy_serving(&d, uuid);
    snprintf(path, sizeof(path), "/deployments/%s/resources", uuid);
    page = fx_get_json(&d, path);
    json_array_foreach(json_object_get(page, "content"), i, res)
    {
        const char *name = json_string_value(json_object_get(res, "toscaNodeName"));
        const json_t *rb = json_object_get(res, "requiredBy");
        if (strcmp(name, "serve_node") == 0) {
            if (json_array_size(rb) != 1)
                fail_msg("serve_node hosts model_api: requiredBy is %zu long, not [model_api]",
                         json_array_size(rb));
            assert_string_equal(json_string_value(json_array_get(rb, 0)), "model_api");
        } else {
            assert_int_equal(json_array_size(rb), 0);
        }
    }
    json_decref(page);
    fx_stop(&d);
}

/* ---- the list ---- */

/* The uuids of a page's content, appended to out (a JSON array). */
static void collect(const json_t *page, json_t *out)
{
    const json_t *dep;
    size_t i;

    json_array_foreach(json_object_get(page, "content"), i, dep)
    {
        json_array_append_new(out, json_string(json_string_value(json_object_get(dep, "uuid"))));
    }
}

/* The href of rel in a page's links, as a path (base cut off), or NULL. */
static const char *link_path(const json_t *page, const char *rel, const char *base)
{
    const json_t *l;
    size_t i;

    json_array_foreach(json_object_get(page, "links"), i, l)
    {
        if (strcmp(json_string_value(json_object_get(l, "rel")), rel) == 0) {
            const char *href = json_string_value(json_object_get(l, "href"));
            assert_int_equal(strncmp(href, base, strlen(base)), 0);
            return href + strlen(base);
        }
    }
    return NULL;
}

/* Follows next from path to the last page; returns every uuid in order. */
static json_t *follow(struct fx_daemon *d, const char *path, size_t *pages)
{
    json_t *all = json_array(), *page = fx_get_json(d, path);
    json_int_t total = json_integer_value(
                   json_object_get(json_object_get(page, "page"), "totalElements")),
               npages =
                   json_integer_value(json_object_get(json_object_get(page, "page"), "totalPages"));
    const char *next;
    char buf[512];

    *pages = 0;
    for (;;) {
        (*pages)++;
        assert_int_equal(
            json_integer_value(json_object_get(json_object_get(page, "page"), "number")),
            (json_int_t)*pages - 1);
        assert_non_null(link_path(page, "first", d->url));
        assert_non_null(link_path(page, "self", d->url));
        assert_non_null(link_path(page, "last", d->url));
        collect(page, all);
        next = link_path(page, "next", d->url);
        if (next == NULL)
            break;
        snprintf(buf, sizeof(buf), "%s", next);
        json_decref(page);
        page = fx_get_json(d, buf);
        assert_true(*pages < 50);
    }
    json_decref(page);
    assert_int_equal(json_array_size(all), total);
    assert_int_equal(*pages, npages > 0 ? npages : 1);
    return all;
}

static json_int_t list_total(struct fx_daemon *d, const char *path)
{
    json_t *page = fx_get_json(d, path);
    json_int_t n =
        json_integer_value(json_object_get(json_object_get(page, "page"), "totalElements"));

    assert_int_equal(json_array_size(json_object_get(page, "content")), n < 10 ? n : 10);
    json_decref(page);
    return n;
}

static const char *first_status(struct fx_daemon *d, const char *path, char *buf, size_t size)
{
    json_t *page = fx_get_json(d, path);

    snprintf(buf, size, "%s",
             json_string_value(
                 json_object_get(json_array_get(json_object_get(page, "content"), 0), "status")));
    json_decref(page);
    return buf;
}

/* Eight deployments: five plain, two of group g1, one that fails at once. */
static void make_list(struct fx_daemon *d, json_t *newest_first)
{
    char uuid[64];
    json_t *made = json_array();

    for (int i = 0; i < 8; i++) {
        const char *extra = i == 2 || i == 5 ? "{\"userGroup\":\"g1\"}"
                            : i == 6 ? "{\"parameters\":{\"num_gpus\":4,\"gpu_model\":\"H100\"}}"
                                     : NULL;
        json_decref(fx_create(d, i == 6 ? fx_training : fx_serving, extra, uuid));
        json_array_append_new(made, json_string(uuid));
    }
    for (size_t i = 0; i < 8; i++) {
        const char *u = json_string_value(json_array_get(made, i));
        json_decref(fx_wait_status(d, u, i == 6 ? "CREATE_FAILED" : "CREATE_COMPLETE", 15000));
        json_array_insert_new(newest_first, 0, json_string(u));
    }
    json_decref(made);
}

static void list_filters_sorting_and_paging(void **state)
{
    struct fx_daemon d;
    json_t *newest = json_array(), *got, *page;
    char buf[64];
    size_t pages;

    (void)state;
    fx_start(&d, "test-rest-list", one_site, NULL);
    make_list(&d, newest);
    /* newest first by default, 10 a page */
    page = fx_get_json(&d, "/deployments");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(page, "page"), "size")),
                     10);
    json_decref(page);
    got = follow(&d, "/deployments", &pages);
    assert_true(json_equal(got, newest));
    assert_int_equal(pages, 1);
    json_decref(got);
    /* three a page: three pages, the same order, every link followed */
    got = follow(&d, "/deployments?size=3", &pages);
    assert_int_equal(pages, 3);
    assert_true(json_equal(got, newest));
    json_decref(got);
    got = follow(&d, "/deployments/?size=8", &pages); /* trailing slash */
    assert_int_equal(pages, 1);
    json_decref(got);
    /* oldest first (one page: paging_links_keep_the_filters follows sorted links) */
    got = follow(&d, "/deployments?sort=creationTime,asc", &pages);
    for (size_t i = 0; i < 8; i++)
        assert_string_equal(json_string_value(json_array_get(got, i)),
                            json_string_value(json_array_get(newest, 7 - i)));
    json_decref(got);
    got = follow(&d, "/deployments?sort=createdAt,desc", &pages);
    assert_true(json_equal(got, newest));
    json_decref(got);
    assert_string_equal(first_status(&d, "/deployments?sort=status,desc", buf, sizeof(buf)),
                        "CREATE_FAILED");
    assert_string_equal(first_status(&d, "/deployments?sort=status,asc", buf, sizeof(buf)),
                        "CREATE_COMPLETE");
    /* filters */
    assert_int_equal(list_total(&d, "/deployments?createdBy=me"), 8);
    assert_int_equal(list_total(&d, "/deployments?createdBy=anonymous@local"), 8);
    assert_int_equal(list_total(&d, "/deployments?createdBy=bob@example.org"), 0);
    assert_int_equal(list_total(&d, "/deployments?userGroup=g1"), 2);
    assert_int_equal(list_total(&d, "/deployments?userGroup=g2"), 0);
    assert_int_equal(list_total(&d, "/deployments?excludedStatus=CREATE_FAILED"), 7);
    assert_int_equal(list_total(&d, "/deployments?excludedStatus=CREATE_COMPLETE"), 1);
    assert_int_equal(list_total(&d, "/deployments?excludedStatus=CREATE_COMPLETE,CREATE_FAILED"),
                     0);
    assert_int_equal(list_total(&d, "/deployments?userGroup=g1&excludedStatus=CREATE_FAILED&"
                                    "createdBy=me"),
                     2);
    /* page and size */
    page = fx_get_json(&d, "/deployments?page=1&size=5");
    assert_int_equal(json_array_size(json_object_get(page, "content")), 3);
    json_decref(page);
    page = fx_get_json(&d, "/deployments?page=99");
    assert_int_equal(json_array_size(json_object_get(page, "content")), 0);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(page, "page"), "totalElements")), 8);
    json_decref(page);
    page = fx_get_json(&d, "/deployments?size=0");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(page, "page"), "size")),
                     10);
    json_decref(page);
    page = fx_get_json(&d, "/deployments?size=100000");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(page, "page"), "size")),
                     100);
    json_decref(page);
    /* bad values */
    fx_expect_error(&d, "GET", "/deployments?createdBy=nobody", NULL, 400, "createdBy");
    fx_expect_error(&d, "GET", "/deployments?excludedStatus=BOGUS", NULL, 400, "excludedStatus");
    fx_expect_error(&d, "GET", "/deployments?excludedStatus=CREATE_FAILED,", NULL, 400,
                    "excludedStatus");
    fx_expect_error(&d, "GET", "/deployments?page=-1", NULL, 400, "page must be a number");
    fx_expect_error(&d, "GET", "/deployments?page=one", NULL, 400, "page must be a number");
    fx_expect_error(&d, "GET", "/deployments?size=1x", NULL, 400, "size must be a number");
    fx_expect_error(&d, "GET", "/deployments?sort=colour", NULL, 400, "sort");
    fx_expect_error(&d, "GET", "/deployments?sort=status,sideways", NULL, 400, "sort");
    json_decref(newest);
    fx_stop(&d);
}

/* The paging links keep the query's filters and sort: following next from
 * a filtered first page stays within the filter. */
static void paging_links_keep_the_filters(void **state)
{
    struct fx_daemon d;
    json_t *newest = json_array(), *got;
    size_t pages;

    (void)state;
    fx_start(&d, "test-rest-links", one_site, NULL);
    make_list(&d, newest);
    got = follow(&d, "/deployments?userGroup=g1&size=1", &pages);
    assert_int_equal(json_array_size(got), 2);
    assert_int_equal(pages, 2);
    json_decref(got);
    got = follow(&d, "/deployments?excludedStatus=CREATE_FAILED&size=2", &pages);
    assert_int_equal(json_array_size(got), 7);
    json_decref(got);
    got = follow(&d, "/deployments?sort=creationTime,asc&size=3", &pages);
    for (size_t i = 0; i < 8; i++)
        assert_string_equal(json_string_value(json_array_get(got, i)),
                            json_string_value(json_array_get(newest, 7 - i)));
    json_decref(got);
    json_decref(newest);
    fx_stop(&d);
}

/* ---- DELETE and PATCH ---- */

static void delete_and_patch_rules(void **state)
{
    char uuid[64], kept[64], path[160], second[256];
    struct fx_daemon d;
    struct fx_resp r;
    json_t *dep;

    (void)state;
    fx_start(&d, "test-rest-delete", one_site, NULL);
    deploy_serving(&d, uuid);
    deploy_serving(&d, kept);
    snprintf(path, sizeof(path), "/deployments/%s", kept);
    /* PATCH: only {"status":"DELETE_FAILED"}, only from DELETE_IN_PROGRESS */
    fx_expect_error(&d, "PATCH", path, "{\"status\":\"DELETE_FAILED\"}", 409, "CREATE_COMPLETE");
    fx_expect_error(&d, "PATCH", path, "{\"status\":\"CREATE_FAILED\"}", 400, "DELETE_FAILED");
    fx_expect_error(&d, "PATCH", path, "{\"status\":7}", 400, "DELETE_FAILED");
    fx_expect_error(&d, "PATCH", path, "{}", 400, "DELETE_FAILED");
    fx_expect_error(&d, "PATCH", path, "{\"status\"", 400, "invalid JSON");
    snprintf(path, sizeof(path), "/deployments/%s/", kept);
    fx_expect_error(&d, "PATCH", path, "{\"status\":\"DELETE_FAILED\"}", 409, NULL);
    snprintf(path, sizeof(path), "/deployments/%s", no_id);
    fx_expect_error(&d, "PATCH", path, "{\"status\":\"DELETE_FAILED\"}", 404, "doesn't exist");
    fx_expect_error(&d, "DELETE", path, NULL, 404, "doesn't exist");
    fx_expect_error(&d, "DELETE", "/deployments/bad-id", NULL, 404, "doesn't exist");
    /* DELETE: 204, then 409 while it is in progress (deletions take 300 ms) */
    snprintf(path, sizeof(path), "/deployments/%s/", uuid);
    assert_int_equal(fx_http(&d, "DELETE", path, NULL, NULL, &r), 204);
    assert_int_equal(r.len, 0);
    fx_resp_free(&r);
    dep = fx_get_json(&d, path);
    assert_string_equal(json_string_value(json_object_get(dep, "status")), "DELETE_IN_PROGRESS");
    check_deployment(dep, d.url);
    json_decref(dep);
    fx_expect_error(&d, "DELETE", path, NULL, 409, uuid);
    fx_http(&d, "DELETE", path, NULL, NULL, &r);
    fx_assert_error(&r, 409, uuid);
    snprintf(second, sizeof(second), "%s", json_string_value(json_object_get(r.json, "message")));
    fx_resp_free(&r);
    /* then it is gone: 404 everywhere, not listed, nothing left at the site */
    assert_null(fx_wait_status(&d, uuid, "", 10000));
    fx_expect_error(&d, "GET", path, NULL, 404, "doesn't exist");
    fx_expect_error(&d, "DELETE", path, NULL, 404, "doesn't exist");
    fx_expect_error(&d, "PATCH", path, "{\"status\":\"DELETE_FAILED\"}", 404, "doesn't exist");
    snprintf(path, sizeof(path), "/deployments/%s/resources", uuid);
    fx_expect_error(&d, "GET", path, NULL, 404, "doesn't exist");
    assert_int_equal(list_total(&d, "/deployments"), 1);
    assert_int_equal(fx_sim_count(&d, "sim-a", uuid), 0);
    assert_int_equal(fx_sim_count(&d, "sim-a", kept), 1);
    fx_stop(&d);
    /* the 409 says why, not "retry" */
    if (strstr(second, "already being deleted") == NULL)
        fail_msg("a second DELETE is answered \"%s\"", second);
}

/* ---- errors ---- */

static void errors_have_the_api_shape(void **state)
{
    const char *const env[] = {"ORCHESTRATOR_MAX_BODY_BYTES=64KiB", NULL};
    struct fx_daemon d;
    struct fx_resp r;
    char *big;

    (void)state;
    fx_start(&d, "test-rest-errors", one_site, env);
    fx_expect_error(&d, "GET", "/nope", NULL, 404, "no resource at /nope");
    fx_expect_error(&d, "GET", "/deployments/x/y/z/w", NULL, 404, NULL);
    fx_expect_error(&d, "GET", "/deployments//", NULL, 404, NULL);
    /* a known path, another method: 405 with Allow */
    fx_expect_error(&d, "PUT", "/deployments", "{}", 405, NULL);
    fx_expect_error(&d, "DELETE", "/deployments", NULL, 405, NULL);
    fx_expect_error(&d, "POST", "/info", "{}", 405, NULL);
    /* a body over the limit */
    big = malloc(100 * 1024);
    assert_non_null(big);
    memset(big, ' ', 100 * 1024 - 1);
    big[0] = '{';
    big[100 * 1024 - 2] = '}';
    big[100 * 1024 - 1] = '\0';
    fx_http(&d, "POST", "/deployments", NULL, big, &r);
    fx_assert_error(&r, 413, NULL);
    fx_resp_free(&r);
    free(big);
    /* the daemon is fine after all that */
    assert_int_equal(fx_get(&d, "/healthz", &r), 200);
    fx_resp_free(&r);
    fx_stop(&d);
}

/* ---- the OpenAPI document holds for every exchange above ---- */

static void openapi_documents_every_exchange(void **state)
{
    struct fx_daemon d;

    (void)state;
    fx_start(&d, "test-rest-openapi", one_site, NULL);
    oa_check_recorded(&d);
    fx_stop(&d);
}

/* An exchange the document does not describe must be caught. */
static void expect_caught(const json_t *doc, const char *method, const char *path,
                          const char *req_body, long status, const char *ctype, const char *body,
                          const char *want)
{
    struct fx_exchange e = {.status = status};
    char err[2048], *q = strchr(path, '?');

    snprintf(e.method, sizeof(e.method), "%s", method);
    e.path = q ? strndup(path, (size_t)(q - path)) : strdup(path);
    e.query = q ? q + 1 : NULL;
    e.req_body = (char *)req_body;
    e.req_ctype = req_body ? "application/json" : NULL;
    snprintf(e.ctype, sizeof(e.ctype), "%s", ctype);
    e.body = (char *)body;
    e.len = strlen(body);
    if (oa_exchange_check(doc, &e, err, sizeof(err)) == 0)
        fail_msg("%s %s -> %ld %s was not caught", method, path, status, body);
    if (strstr(err, want) == NULL)
        fail_msg("caught, but \"%s\" does not say \"%s\"", err, want);
    free(e.path);
}

/* The check has teeth: each kind of mismatch fails it, and what it names. */
static void openapi_check_catches_mismatches(void **state)
{
    static const char good[] =
        "{\"uuid\":\"01a23af1-2386-7184-98e6-b8225f6ccc68\",\"creationTime\":"
        "\"2026-12-03T08:06+0000\",\"updateTime\":\"2026-12-03T08:06+0000\",\"status\":"
        "\"CREATE_COMPLETE\",\"task\":\"DEPLOYER\",\"outputs\":{},\"createdBy\":{\"issuer\":"
        "\"local\",\"subject\":\"anonymous\"},\"links\":[{\"rel\":\"self\",\"href\":"
        "\"http://h/deployments/x\"}]%s}";
    const char *dep = "/deployments/01a23af1-2386-7184-98e6-b8225f6ccc68";
    char body[2048];
    struct fx_daemon d;
    json_t *doc;

    (void)state;
    fx_start(&d, "test-rest-teeth", one_site, NULL);
    doc = fx_get_json(&d, "/openapi.json");
    snprintf(body, sizeof(body), good, "");
    {
        struct fx_exchange e = {.method = "GET",
                                .path = (char *)dep,
                                .status = 200,
                                .ctype = "application/json",
                                .body = body,
                                .len = strlen(body)};
        char err[1024];
        if (oa_exchange_check(doc, &e, err, sizeof(err)) != 0)
            fail_msg("a good exchange failed: %s", err);
    }
    snprintf(body, sizeof(body), good, ",\"colour\":\"red\"");
    expect_caught(doc, "GET", dep, NULL, 200, "application/json", body, "colour");
    snprintf(body, sizeof(body), good, ",\"statusReason\":5");
    expect_caught(doc, "GET", dep, NULL, 200, "application/json", body, "statusReason");
    expect_caught(doc, "GET", dep, NULL, 200, "application/json", "{\"uuid\":\"x\"}",
                  "required property");
    snprintf(body, sizeof(body), good, "");
    memcpy(strstr(body, "08:06+0000"), "08:06Z    ", 10);
    expect_caught(doc, "GET", dep, NULL, 200, "application/json", body, "pattern");
    expect_caught(doc, "GET", dep, NULL, 418, "application/json", "{}", "status 418");
    expect_caught(doc, "GET", dep, NULL, 200, "text/plain", "hi", "Content-Type text/plain");
    expect_caught(doc, "GET", "/nope/x", NULL, 200, "text/plain", "", "the path");
    expect_caught(doc, "GET", "/deployments?colour=red", NULL, 200, "application/json", "{}",
                  "query parameter colour");
    expect_caught(doc, "GET", "/deployments?page=-3", NULL, 200, "application/json", "{}",
                  "minimum");
    expect_caught(doc, "POST", "/deployments", "{\"template\":5}", 201, "application/json", body,
                  "request body");
    expect_caught(doc, "DELETE", dep, NULL, 204, "application/json", "{}", "none is documented");
    expect_caught(doc, "GET", dep, NULL, 404, "application/json", "{\"code\":404}",
                  "required property 'title'");
    json_decref(doc);
    fx_stop(&d);
}

/* ---- the schema checker itself ---- */

static int valid(const json_t *root, const char *schema, const char *value)
{
    json_error_t je;
    json_t *s = json_loads(schema, 0, &je), *v = json_loads(value, JSON_DECODE_ANY, &je);
    char err[512];
    int rc;

    assert_non_null(s);
    assert_non_null(v);
    rc = js_validate(root ? root : s, s, v, err, sizeof(err));
    json_decref(s);
    json_decref(v);
    return rc;
}

static int well_formed(const char *schema)
{
    json_error_t je;
    json_t *s = json_loads(schema, 0, &je);
    char err[512];
    int rc;

    assert_non_null(s);
    rc = js_schema_check(s, s, "$", err, sizeof(err));
    json_decref(s);
    return rc;
}

static void json_schema_subset(void **state)
{
    json_error_t je;
    json_t *root = json_loads("{\"components\":{\"schemas\":{\"N\":{\"type\":\"integer\","
                              "\"minimum\":1,\"maximum\":3},\"R\":{\"$ref\":"
                              "\"#/components/schemas/N\"}}}}",
                              0, &je);

    (void)state;
    assert_non_null(root);
    assert_int_equal(valid(NULL, "{\"type\":\"integer\"}", "1"), 0);
    assert_int_equal(valid(NULL, "{\"type\":\"integer\"}", "1.5"), -1);
    assert_int_equal(valid(NULL, "{\"type\":\"number\"}", "1"), 0);
    assert_int_equal(valid(NULL, "{\"type\":\"string\"}", "null"), -1);
    assert_int_equal(valid(NULL, "{\"type\":\"string\",\"nullable\":true}", "null"), 0);
    assert_int_equal(valid(NULL, "{\"enum\":[\"a\",2]}", "2"), 0);
    assert_int_equal(valid(NULL, "{\"enum\":[\"a\",2]}", "\"b\""), -1);
    assert_int_equal(valid(NULL, "{\"type\":\"string\",\"minLength\":2}", "\"a\""), -1);
    assert_int_equal(valid(NULL, "{\"type\":\"string\",\"pattern\":\"^a+$\"}", "\"aa\""), 0);
    assert_int_equal(valid(NULL, "{\"type\":\"string\",\"pattern\":\"^a+$\"}", "\"ab\""), -1);
    assert_int_equal(valid(NULL,
                           "{\"type\":\"array\",\"minItems\":1,\"items\":"
                           "{\"type\":\"boolean\"}}",
                           "[true,1]"),
                     -1);
    assert_int_equal(valid(NULL, "{\"type\":\"array\",\"minItems\":1}", "[]"), -1);
    assert_int_equal(valid(NULL,
                           "{\"required\":[\"a\"],\"additionalProperties\":"
                           "{\"type\":\"integer\"}}",
                           "{\"a\":1,\"b\":\"x\"}"),
                     -1);
    assert_int_equal(valid(NULL, "{\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}", "1"),
                     -1); /* both match: not exactly one */
    assert_int_equal(
        valid(NULL, "{\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}", "1.5"), 0);
    assert_int_equal(valid(NULL, "{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}", "1"),
                     0);
    assert_int_equal(valid(NULL, "{\"allOf\":[{\"type\":\"integer\"},{\"minimum\":5}]}", "4"), -1);
    assert_int_equal(valid(root, "{\"$ref\":\"#/components/schemas/R\"}", "2"), 0);
    assert_int_equal(valid(root, "{\"$ref\":\"#/components/schemas/R\"}", "4"), -1);
    assert_int_equal(valid(root, "{\"$ref\":\"#/components/schemas/Nope\"}", "4"), -1);
    assert_int_equal(well_formed("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":"
                                 "\"string\",\"description\":\"x\"}}}"),
                     0);
    assert_int_equal(well_formed("{\"type\":\"null\"}"), -1); /* not OpenAPI 3.0 */
    assert_int_equal(well_formed("{\"type\":\"string\",\"maxLength\":3}"), -1); /* unknown */
    assert_int_equal(well_formed("{\"pattern\":\"(\"}"), -1);
    assert_int_equal(well_formed("{\"$ref\":\"#/nowhere\"}"), -1);
    assert_int_equal(well_formed("{\"required\":\"a\"}"), -1);
    json_decref(root);
}

/* ---- how the document is generated (in process, no daemon) ---- */

static int no_handler(orc_api_req_t *req, void *data)
{
    (void)data;
    return orc_api_send_status(req, 204);
}

/* Error statuses documented without a schema get the error JSON's; a
 * schema without a content type and a status documented twice are refused;
 * operationIds stay unique when two paths derive the same one; tags are
 * listed; the result is a valid document. */
static void openapi_generation_rules(void **state)
{
    static const orc_api_response_doc_t plain_error[] = {
        {204, "Done", NULL, NULL}, {409, "Busy", "application/json", NULL}, {0, 0, 0, 0}};
    static const orc_api_response_doc_t typeless[] = {{200, "x", NULL, "{\"type\":\"string\"}"},
                                                      {0, 0, 0, 0}};
    static const orc_api_response_doc_t twice[] = {
        {404, "a", "application/json", NULL}, {404, "b", "application/json", NULL}, {0, 0, 0, 0}};
    orc_api_route_t dash = {.method = "GET",
                            .pattern = "/a-b",
                            .handler = no_handler,
                            .tag = "Tests",
                            .responses = plain_error};
    orc_api_route_t under = {
        .method = "GET", .pattern = "/a_b", .handler = no_handler, .tag = "Tests"};
    orc_api_route_t bad = {.method = "GET", .pattern = "/bad", .handler = no_handler};
    orc_config_t cfg;
    orc_api_t *api;
    const json_t *op, *schema;
    json_t *doc, *tags, *t;
    char err[1024];
    size_t i;
    bool listed = false;

    (void)state;
    assert_int_equal(orc_config_init(&cfg), 0);
    assert_int_equal(orc_api_new(NULL, &cfg, &api), 0);
    assert_int_equal(orc_api_register(api, &dash), 0);
    assert_int_equal(orc_api_register(api, &under), 0);
    bad.responses = typeless;
    assert_int_equal(orc_api_register(api, &bad), ORC_EINVAL);
    bad.responses = twice;
    assert_int_equal(orc_api_register(api, &bad), ORC_EINVAL);
    doc = orc_api_openapi(api, "http://127.0.0.1:1");
    assert_non_null(doc);
    if (oa_document_check(doc, err, sizeof(err)) < 0)
        fail_msg("invalid document: %s", err);
    op = json_object_get(json_object_get(json_object_get(doc, "paths"), "/a-b"), "get");
    schema = json_object_get(
        json_object_get(
            json_object_get(json_object_get(json_object_get(op, "responses"), "409"), "content"),
            "application/json"),
        "schema");
    assert_string_equal(json_string_value(json_object_get(schema, "$ref")),
                        "#/components/schemas/Error");
    assert_null(
        json_object_get(json_object_get(json_object_get(op, "responses"), "204"), "content"));
    assert_string_equal(json_string_value(json_object_get(op, "operationId")), "get_a_b");
    op = json_object_get(json_object_get(json_object_get(doc, "paths"), "/a_b"), "get");
    assert_string_equal(json_string_value(json_object_get(op, "operationId")), "get_a_b_2");
    tags = json_object_get(doc, "tags");
    json_array_foreach(tags, i, t)
    {
        listed = listed || strcmp(json_string_value(json_object_get(t, "name")), "Tests") == 0;
    }
    assert_true(listed);
    json_decref(doc);
    orc_api_free(api);
    orc_config_fini(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(server_endpoints, fx_teardown),
        cmocka_unit_test_teardown(create_body_rules, fx_teardown),
        cmocka_unit_test_teardown(template_errors_name_the_place, fx_teardown),
        cmocka_unit_test_teardown(show_and_links_from_host, fx_teardown),
        cmocka_unit_test_teardown(subresources, fx_teardown),
        cmocka_unit_test_teardown(resources_paged_and_filtered, fx_teardown),
        cmocka_unit_test_teardown(resources_say_what_requires_them, fx_teardown),
        cmocka_unit_test_teardown(list_filters_sorting_and_paging, fx_teardown),
        cmocka_unit_test_teardown(paging_links_keep_the_filters, fx_teardown),
        cmocka_unit_test_teardown(delete_and_patch_rules, fx_teardown),
        cmocka_unit_test_teardown(errors_have_the_api_shape, fx_teardown),
        cmocka_unit_test_teardown(openapi_documents_every_exchange, fx_teardown),
        cmocka_unit_test_teardown(openapi_check_catches_mismatches, fx_teardown),
        cmocka_unit_test(openapi_generation_rules),
        cmocka_unit_test(json_schema_subset),
    };

    return cmocka_run_group_tests(tests, fx_examples_load, fx_examples_free);
}
