/*
 * Existing INDIGO clients against the real daemon (../shared/API.md, docs/api.md
 * "Compatibility"): the requests the orchent CLI and the orchestrator dashboards send,
 * replayed as they send them, with authentication on (an OIDC issuer whose keys are in a
 * file), and the answers they rely on checked the way they read them.
 *
 * - orchent: "Authorization: Bearer", JSON bodies with parameters as strings, keepLastAttempt
 *   as a string, paths with and without a trailing slash; depls follows rel=next to the
 *   end; depshow reads the deployment's fields; deptemplate, resls, resshow, depupdate
 *   (202), depdel (204) and depreset (PATCH to DELETE_FAILED, 409 when not deleting).
 * - the dashboard: "Authorization: bearer" (lower case), a create with keepLastAttempt
 *   "false", maxProvidersRetry, timeoutMins and providerTimeoutMins; the list with
 *   size=999999 and excludedStatus; times cut by position (yyyy-MM-ddTHH:mm); the log,
 *   the template and extrainfo; DELETE with force=true.
 */
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "daemon_fixture.h"
#include "jwt_fixture.h"

#define ISS "https://iam.example.org/"

static const char site[] = "sites:\n"
                           "  - name: sim-a\n"
                           "    driver: sim\n"
                           "    config: {inventory: \"@DIR@/sim-a.json\", capacity: {cpus: 256,\n"
                           "             mem: 1024 GiB, gpus: {A100: 16}}}\n";

/* A node with a command input and a count: what a user's template looks like. */
static const char tpl[] =
    "tosca_definitions_version: tosca_simple_yaml_1_0\n"
    "topology_template:\n"
    "  inputs:\n"
    "    num_cpus: {type: integer, default: 1}\n"
    "    label: {type: string, default: none}\n"
    "  node_templates:\n"
    "    vm:\n"
    "      type: tosca.nodes.Compute\n"
    "      capabilities:\n"
    "        host:\n"
    "          properties: {num_cpus: {get_input: num_cpus}, mem_size: 1 GB}\n"
    "  outputs:\n"
    "    label: {value: {get_input: label}}\n";

static EVP_PKEY *key;
static char *key_pem, key_dir[64];

static int setup(void **state)
{
    char path[128], *text;
    json_t *set;
    FILE *f;

    fx_examples_load(state);
    key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    assert_non_null(key);
    key_pem = pem_of(key, false);
    snprintf(key_dir, sizeof(key_dir), "/tmp/test-compat-keys-XXXXXX");
    assert_non_null(mkdtemp(key_dir));
    set = json_pack("{s[o]}", "keys", rsa_jwk(key, "k1"));
    text = json_dumps(set, 0);
    snprintf(path, sizeof(path), "%s/keys.json", key_dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(text);
    json_decref(set);
    snprintf(path, sizeof(path), "%s/orchestrator.yaml", key_dir);
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "auth:\n  issuers:\n    - {issuer: \"%s\", jwks_file: \"%s/keys.json\"}\n", ISS,
            key_dir);
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", key_dir);
    assert_int_equal(system(cmd), 0);
    free(key_pem);
    EVP_PKEY_free(key);
    return fx_examples_free(state);
}

static char *token_of(const char *sub)
{
    json_t *c = json_pack("{ss ss sI sI s[s]}", "iss", ISS, "sub", sub, "exp",
                          (json_int_t)time(NULL) + 3600, "iat", (json_int_t)time(NULL) - 5,
                          "groups", "users");

    return sign(c, JWT_ALG_RS256, key_pem, "k1");
}

static void start(struct fx_daemon *d, const char *name)
{
    static char env_cfg[160];
    const char *env[] = {env_cfg, NULL};

    snprintf(env_cfg, sizeof(env_cfg), "ORCHESTRATOR_CONFIG=%s/orchestrator.yaml", key_dir);
    fx_start(d, name, site, env);
}

/* A client: its authorization header. */
struct client {
    struct fx_daemon *d;
    char auth[4096];
};

static long call(struct client *c, const char *method, const char *path, const char *body,
                 struct fx_resp *r)
{
    const char *headers[] = {c->auth, body ? "Content-Type: application/json" : NULL, NULL};

    return fx_http(c->d, method, path, headers, body, r);
}

/* The path of an absolute link ("http://127.0.0.1:PORT/deployments?page=1..."). */
static const char *path_of(const char *href)
{
    const char *p = strstr(href, "://");

    return p ? strchr(p + 3, '/') : href;
}

static const char *link_of(const json_t *obj, const char *rel)
{
    size_t i;
    json_t *l;

    json_array_foreach(json_object_get(obj, "links"), i, l)
    {
        if (strcmp(json_string_value(json_object_get(l, "rel")), rel) == 0)
            return json_string_value(json_object_get(l, "href"));
    }
    return NULL;
}

static void wait_for(struct client *c, const char *uuid, const char *want)
{
    char path[128];
    struct fx_resp r;

    snprintf(path, sizeof(path), "/deployments/%s", uuid);
    for (int i = 0; i < 1000; i++) {
        long s = call(c, "GET", path, NULL, &r);
        bool done =
            s == 200 && strcmp(json_string_value(json_object_get(r.json, "status")), want) == 0;
        if (s == 200 && strstr(json_string_value(json_object_get(r.json, "status")), "FAILED"))
            fail_msg("%s: %s", uuid, r.body);
        fx_resp_free(&r);
        if (done)
            return;
        fx_sleep_ms(20);
    }
    fail_msg("%s never reached %s", uuid, want);
}

/* orchent depcreate: {"template", "parameters"} with the values as strings; the uuid. */
static void orchent_create(struct client *c, const char *params, char uuid[64])
{
    json_t *b = json_pack("{ss so ss}", "template", tpl, "parameters", json_loads(params, 0, NULL),
                          "keepLastAttempt", "false");
    char *body = json_dumps(b, JSON_COMPACT);
    struct fx_resp r;

    assert_int_equal(call(c, "POST", "/deployments", body, &r), 201);
    snprintf(uuid, 64, "%s", json_string_value(json_object_get(r.json, "uuid")));
    fx_resp_free(&r);
    free(body);
    json_decref(b);
}

/* ---- orchent ---- */

static void orchent_session(void **state)
{
    struct fx_daemon d;
    struct client c = {.d = &d};
    char *tok = token_of("orchent-user"), uuid[12][64], path[256];
    struct fx_resp r;
    size_t seen = 0;
    const char *next;

    (void)state;
    start(&d, "test-compat-orchent");
    snprintf(c.auth, sizeof(c.auth), "Authorization: Bearer %s", tok);
    /* orchent test / info */
    assert_int_equal(call(&c, "GET", "/", NULL, &r), 200);
    fx_resp_free(&r);
    assert_int_equal(call(&c, "GET", "/info", NULL, &r), 200);
    assert_non_null(json_object_get(json_object_get(r.json, "build"), "version"));
    fx_resp_free(&r);
    for (int i = 0; i < 12; i++)
        orchent_create(&c, "{\"num_cpus\": \"1\", \"label\": \"run\"}", uuid[i]);
    /* depls: createdBy=me, then rel=next until there is none */
    snprintf(path, sizeof(path), "/deployments?createdBy=me");
    for (int page = 0; page < 10; page++) {
        size_t i;
        json_t *dep;
        assert_int_equal(call(&c, "GET", path, NULL, &r), 200);
        json_array_foreach(json_object_get(r.json, "content"), i, dep)
        {
            assert_non_null(json_object_get(dep, "uuid"));
            seen++;
        }
        next = link_of(r.json, "next");
        if (next)
            snprintf(path, sizeof(path), "%s", path_of(next));
        fx_resp_free(&r);
        if (next == NULL)
            break;
    }
    assert_int_equal(seen, 12);
    wait_for(&c, uuid[0], "CREATE_COMPLETE");
    /* depshow, with and without a trailing slash */
    snprintf(path, sizeof(path), "/deployments/%s/", uuid[0]);
    assert_int_equal(call(&c, "GET", path, NULL, &r), 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "uuid")), uuid[0]);
    assert_non_null(strstr(" NONE MONITORING QOS BROKERING DMS DEPLOYER UNKNOWN ",
                           json_string_value(json_object_get(r.json, "task"))));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.json, "createdBy"), "subject")),
        "orchent-user");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.json, "outputs"), "label")), "run");
    assert_string_equal(json_string_value(json_object_get(r.json, "cloudProviderName")), "sim-a");
    assert_non_null(link_of(r.json, "resources"));
    assert_non_null(link_of(r.json, "template"));
    fx_resp_free(&r);
    /* deptemplate */
    snprintf(path, sizeof(path), "/deployments/%s/template", uuid[0]);
    assert_int_equal(call(&c, "GET", path, NULL, &r), 200);
    assert_string_equal(r.body, tpl);
    fx_resp_free(&r);
    /* resls, resshow */
    snprintf(path, sizeof(path), "/deployments/%s/resources/", uuid[0]);
    assert_int_equal(call(&c, "GET", path, NULL, &r), 200);
    {
        json_t *res = json_array_get(json_object_get(r.json, "content"), 0);
        char rpath[256];
        assert_string_equal(json_string_value(json_object_get(res, "toscaNodeName")), "vm");
        snprintf(rpath, sizeof(rpath), "%s", path_of(link_of(res, "self")));
        fx_resp_free(&r);
        assert_int_equal(call(&c, "GET", rpath, NULL, &r), 200);
        assert_string_equal(json_string_value(json_object_get(r.json, "state")), "STARTED");
    }
    fx_resp_free(&r);
    /* depupdate: 202 with no body, parameters merged */
    snprintf(path, sizeof(path), "/deployments/%s", uuid[0]);
    assert_int_equal(
        call(&c, "PUT", path, "{\"template\":null,\"parameters\":{\"label\":\"two\"}}", &r), 202);
    fx_resp_free(&r);
    wait_for(&c, uuid[0], "UPDATE_COMPLETE");
    /* depreset: only while deleting */
    assert_int_equal(call(&c, "PATCH", path, "{\"status\":\"DELETE_FAILED\"}", &r), 409);
    fx_resp_free(&r);
    /* depdel: 204, then gone */
    for (int i = 0; i < 12; i++) {
        snprintf(path, sizeof(path), "/deployments/%.64s", uuid[i]);
        wait_for(&c, uuid[i], i == 0 ? "UPDATE_COMPLETE" : "CREATE_COMPLETE");
        assert_int_equal(call(&c, "DELETE", path, NULL, &r), 204);
        fx_resp_free(&r);
    }
    for (int i = 0; i < 12; i++) {
        snprintf(path, sizeof(path), "/deployments/%.64s", uuid[i]);
        for (int k = 0; k < 500 && call(&c, "GET", path, NULL, &r) != 404; k++) {
            fx_resp_free(&r);
            fx_sleep_ms(20);
        }
        assert_int_equal(r.status, 404);
        fx_assert_error(&r, 404, "doesn't exist");
        fx_resp_free(&r);
    }
    free(tok);
    fx_stop(&d);
}

/* ---- the dashboard ---- */

/* The dashboard cuts times by position: yyyy-MM-ddTHH:mm is the first 16 characters. */
static void cut_by_position(const char *t)
{
    char day[11], hm[6];

    assert_non_null(t);
    assert_true(strlen(t) >= 16);
    memcpy(day, t, 10);
    day[10] = '\0';
    memcpy(hm, t + 11, 5);
    hm[5] = '\0';
    assert_int_equal(strspn(day, "0123456789-"), 10);
    assert_int_equal(t[10], 'T');
    assert_int_equal(strspn(hm, "0123456789:"), 5);
    fx_assert_time(t);
}

static void dashboard_session(void **state)
{
    struct fx_daemon d;
    struct client c = {.d = &d};
    char *tok = token_of("dashboard-user"), uuid[64], path[256], *body;
    struct fx_resp r;
    json_t *b;

    (void)state;
    start(&d, "test-compat-dashboard");
    snprintf(c.auth, sizeof(c.auth), "Authorization: bearer %s", tok); /* lower case */
    /* the create of its deploy form */
    b = json_pack("{ss s{ss ss} ss si si si ss}", "template", tpl, "parameters", "num_cpus", "2",
                  "label", "dash", "keepLastAttempt", "false", "maxProvidersRetry", 1,
                  "timeoutMins", 720, "providerTimeoutMins", 60, "callback",
                  "https://dashboard.example.org/home/callback");
    body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    assert_int_equal(call(&c, "POST", "/deployments", body, &r), 201);
    free(body);
    snprintf(uuid, sizeof(uuid), "%s", json_string_value(json_object_get(r.json, "uuid")));
    cut_by_position(json_string_value(json_object_get(r.json, "creationTime")));
    fx_resp_free(&r);
    wait_for(&c, uuid, "CREATE_COMPLETE");
    /* its list: everything of the user at once, deleted ones left out */
    assert_int_equal(call(&c, "GET",
                          "/deployments?createdBy=me&page=0&size=999999&excludedStatus="
                          "DELETE_COMPLETE,DELETE_FAILED",
                          NULL, &r),
                     200);
    {
        json_t *dep = json_array_get(json_object_get(r.json, "content"), 0);
        json_t *page = json_object_get(r.json, "page");
        assert_int_equal(json_array_size(json_object_get(r.json, "content")), 1);
        assert_string_equal(json_string_value(json_object_get(dep, "uuid")), uuid);
        assert_string_equal(json_string_value(json_object_get(dep, "status")), "CREATE_COMPLETE");
        cut_by_position(json_string_value(json_object_get(dep, "creationTime")));
        cut_by_position(json_string_value(json_object_get(dep, "updateTime")));
        assert_int_equal(json_integer_value(json_object_get(page, "totalElements")), 1);
        assert_int_equal(json_integer_value(json_object_get(page, "number")), 0);
        assert_true(json_integer_value(json_object_get(page, "size")) >= 1);
        assert_string_equal(json_string_value(json_object_get(dep, "callback")),
                            "https://dashboard.example.org/home/callback");
    }
    fx_resp_free(&r);
    /* its deployment page: the template, the log, extrainfo (JSON, or text holding JSON) */
    snprintf(path, sizeof(path), "/deployments/%s/template", uuid);
    assert_int_equal(call(&c, "GET", path, NULL, &r), 200);
    assert_string_equal(r.body, tpl);
    fx_resp_free(&r);
    snprintf(path, sizeof(path), "/deployments/%s/log", uuid);
    assert_int_equal(call(&c, "GET", path, NULL, &r), 200);
    assert_int_equal(strncmp(r.ctype, "text/plain", 10), 0);
    assert_non_null(strstr(r.body, "CREATE_COMPLETE"));
    fx_resp_free(&r);
    snprintf(path, sizeof(path), "/deployments/%s/extrainfo", uuid);
    assert_int_equal(call(&c, "GET", path, NULL, &r), 200);
    {
        json_t *info = json_loads(r.body, 0, NULL);
        assert_true(json_is_array(info));
        assert_true(json_array_size(info) >= 1);
        json_decref(info);
    }
    fx_resp_free(&r);
    /* its delete: force=true */
    snprintf(path, sizeof(path), "/deployments/%s?force=true", uuid);
    assert_int_equal(call(&c, "DELETE", path, NULL, &r), 204);
    fx_resp_free(&r);
    snprintf(path, sizeof(path), "/deployments/%s", uuid);
    for (int k = 0; k < 500 && call(&c, "GET", path, NULL, &r) != 404; k++) {
        fx_resp_free(&r);
        fx_sleep_ms(20);
    }
    assert_int_equal(r.status, 404);
    fx_resp_free(&r);
    /* an expired session's token: 401 with the OAuth error JSON it shows */
    snprintf(c.auth, sizeof(c.auth), "Authorization: bearer not-a-token");
    assert_int_equal(call(&c, "GET", "/deployments?createdBy=me", NULL, &r), 401);
    assert_string_equal(json_string_value(json_object_get(r.json, "error")), "invalid_token");
    fx_resp_free(&r);
    free(tok);
    fx_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(orchent_session, fx_teardown),
        cmocka_unit_test_teardown(dashboard_session, fx_teardown),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
