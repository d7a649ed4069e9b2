/*
 * The deployment engine seen through the REST API of the real daemon: every
 * status transition it makes (CREATE_IN_PROGRESS to COMPLETE and FAILED,
 * DELETE_IN_PROGRESS to DELETE_COMPLETE and DELETE_FAILED, a delete during a
 * create, a delete of a failed deployment, the PATCH reset of a stuck
 * deletion) and the resource states it reports on the way; failover across
 * three sim sites (one full for the GPU model, one failing, one good),
 * statusReason listing every site's error, maxProvidersRetry, keepLastAttempt
 * (the sim inventory shows what is kept); providerTimeoutMins and
 * timeoutMins on a shortened minute; callbacks to a real local HTTP
 * receiver that fails the first tries, and to one that always fails. The
 * engine settings come from the daemon's environment (300 ms minutes, 4
 * callback tries 50 ms apart). The last test holds every exchange against
 * /openapi.json.
 */
#define _GNU_SOURCE /* strcasestr */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "testutil.h"
#include "daemon_fixture.h"
#include "openapi_check.h"

static const char *const engine_env[] = {
    "ORCHESTRATOR_DEADLINE_MINUTE=300ms", "ORCHESTRATOR_CALLBACK_ATTEMPTS=4",
    "ORCHESTRATOR_CALLBACK_BACKOFF=50ms", "ORCHESTRATOR_MAX_PARALLEL_OPS=4", NULL};

static const char *str_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s ? s : "";
}

/* The state of the resource of node name in a deployment ("" if none). */
static void resource_state(struct fx_daemon *d, const char *uuid, const char *node, char *out,
                           size_t size)
{
    char path[160];
    json_t *page, *res;
    size_t i;

    snprintf(path, sizeof(path), "/deployments/%s/resources", uuid);
    page = fx_get_json(d, path);
    out[0] = '\0';
    json_array_foreach(json_object_get(page, "content"), i, res)
    {
        if (strcmp(str_of(res, "toscaNodeName"), node) == 0)
            snprintf(out, size, "%s", str_of(res, "state"));
    }
    json_decref(page);
}

/* An attribute of a node's resource (from /extrainfo), copied to out ("" when absent). */
static void node_attr(struct fx_daemon *d, const char *uuid, const char *node, const char *key,
                      char *out, size_t size)
{
    char path[160];
    json_t *arr, *e;
    size_t i;

    snprintf(path, sizeof(path), "/deployments/%s/extrainfo", uuid);
    arr = fx_get_json(d, path);
    out[0] = '\0';
    json_array_foreach(arr, i, e)
        if (strcmp(str_of(e, "node"), node) == 0)
            snprintf(out, size, "%s", str_of(json_object_get(e, "attributes"), key));
    json_decref(arr);
}

/* The states a node's resource went through, from the events: "A>B>C". */
static void state_path(struct fx_daemon *d, const char *uuid, const char *node, char *out,
                       size_t size)
{
    json_t *ev = fx_events(d, uuid, NULL), *e;
    size_t i, n = 0;

    out[0] = '\0';
    json_array_foreach(ev, i, e)
    {
        const json_t *data = json_object_get(e, "data");
        const char *type = str_of(e, "type");
        if ((strcmp(type, "resource.created") != 0 && strcmp(type, "resource.state") != 0) ||
            strcmp(str_of(data, "node"), node) != 0)
            continue;
        n += (size_t)snprintf(out + n, n < size ? size - n : 0, "%s%s", n ? ">" : "",
                              str_of(data, "state"));
    }
    json_decref(ev);
}

/* The sites of a deployment's attempts, in order ("a,b"), from its events. */
static void attempted_sites(struct fx_daemon *d, const char *uuid, char *out, size_t size)
{
    json_t *ev = fx_events(d, uuid, "attempt.started"), *e;
    size_t i, n = 0;

    out[0] = '\0';
    json_array_foreach(ev, i, e)
    {
        n += (size_t)snprintf(out + n, n < size ? size - n : 0, "%s%s", n ? "," : "",
                              str_of(json_object_get(e, "data"), "site"));
    }
    json_decref(ev);
}

static void assert_contains(const char *text, const char *want)
{
    if (text == NULL || strstr(text, want) == NULL)
        fail_msg("\"%s\" does not contain \"%s\"", text ? text : "(null)", want);
}

static void assert_lacks(const char *text, const char *unwanted)
{
    if (text != NULL && strstr(text, unwanted) != NULL)
        fail_msg("\"%s\" contains \"%s\"", text, unwanted);
}

static void delete_ok(struct fx_daemon *d, const char *uuid)
{
    char path[160];
    struct fx_resp r;

    snprintf(path, sizeof(path), "/deployments/%s", uuid);
    if (fx_http(d, "DELETE", path, NULL, NULL, &r) != 204)
        fail_msg("DELETE %s: %ld %s", path, r.status, r.body);
    fx_resp_free(&r);
}

/* ---- status transitions ---- */

static const char slow_site[] =
    "sites:\n"
    "  - name: sim-a\n"
    "    driver: sim\n"
    "    config: {inventory: \"@DIR@/sim-a.json\",\n"
    "             latency: {provision: 400, start_workload: 100, deprovision: 400}}\n";

/* CREATE_IN_PROGRESS -> CREATE_COMPLETE -> DELETE_IN_PROGRESS -> gone, and
 * the resource states on the way. */
static void create_complete_then_delete_complete(void **state)
{
    char uuid[64], st[64], path[3000];
    struct fx_daemon d;
    json_t *dep;

    (void)state;
    fx_start(&d, "test-rest-life", slow_site, engine_env);
    dep = fx_create(&d, fx_serving, NULL, uuid);
    assert_string_equal(str_of(dep, "status"), "CREATE_IN_PROGRESS");
    json_decref(dep);
    fx_status(&d, uuid, st, sizeof(st), NULL);
    assert_string_equal(st, "CREATE_IN_PROGRESS"); /* the provision takes 400 ms */
    resource_state(&d, uuid, "serve_node", st, sizeof(st));
    if (strcmp(st, "INITIAL") != 0 && strcmp(st, "CREATING") != 0)
        fail_msg("serve_node is %s while it is being provisioned", st);
    resource_state(&d, uuid, "model_api", st, sizeof(st));
    assert_string_equal(st, "INITIAL"); /* waits for its host */
    dep = fx_wait_status(&d, uuid, "CREATE_COMPLETE", 10000);
    assert_string_equal(str_of(dep, "cloudProviderName"), "sim-a");
    assert_null(json_object_get(dep, "statusReason"));
    json_decref(dep);
    state_path(&d, uuid, "serve_node", path, sizeof(path));
    assert_string_equal(path, "INITIAL>CREATING>STARTED");
    /* the compute node was asked for the port of the service it hosts, and for a public
     * address, which an output reads */
    node_attr(&d, uuid, "serve_node", "ports", path, sizeof(path));
    assert_string_equal(path, "[5000]");
    node_attr(&d, uuid, "serve_node", "public_address", path, sizeof(path));
    assert_true(path[0] != '\0');
    state_path(&d, uuid, "model_api", path, sizeof(path));
    assert_string_equal(path, "INITIAL>STARTING>STARTED");
    assert_int_equal(fx_sim_count(&d, "sim-a", uuid), 1);
    /* delete: DELETE_IN_PROGRESS while the provider works, then gone */
    delete_ok(&d, uuid);
    fx_status(&d, uuid, st, sizeof(st), NULL);
    assert_string_equal(st, "DELETE_IN_PROGRESS");
    fx_sleep_ms(50);
    resource_state(&d, uuid, "serve_node", st, sizeof(st));
    assert_string_equal(st, "DELETING");
    assert_null(fx_wait_status(&d, uuid, "", 10000));
    assert_int_equal(fx_sim_count(&d, "sim-a", NULL), 0);
    fx_stop(&d);
}

/* A delete while the create runs stops the create and removes what it made. */
static void delete_during_create(void **state)
{
    char uuid[64];
    struct fx_daemon d;

    (void)state;
    fx_start(&d, "test-rest-midway", slow_site, engine_env);
    json_decref(fx_create(&d, fx_serving, NULL, uuid));
    fx_sleep_ms(50);
    delete_ok(&d, uuid);
    assert_null(fx_wait_status(&d, uuid, "", 10000));
    for (int i = 0; i < 100 && fx_sim_count(&d, "sim-a", NULL) > 0; i++)
        fx_sleep_ms(20);
    assert_int_equal(fx_sim_count(&d, "sim-a", NULL), 0);
    fx_stop(&d);
}

/* A request no site can hold fails at once, naming each site's reason. */
static void create_failed_when_nothing_fits(void **state)
{
    static const char sites[] =
        "sites:\n"
        "  - name: small\n"
        "    driver: sim\n"
        "    config: {inventory: \"@DIR@/small.json\", capacity: {cpus: 8, mem: 32 GiB,\n"
        "             gpus: {T4: 2}}}\n"
        "  - name: medium\n"
        "    driver: sim\n"
        "    config: {inventory: \"@DIR@/medium.json\", capacity: {cpus: 64, mem: 256 GiB,\n"
        "             gpus: {A100: 2}}}\n";
    char h100[64], a100[64];
    struct fx_daemon d;
    json_t *dep;

    (void)state;
    fx_start(&d, "test-rest-nofit", sites, engine_env);
    json_decref(fx_create(&d, fx_training,
                          "{\"parameters\":{\"num_gpus\":4,\"gpu_model\":\"H100\"}}", h100));
    json_decref(fx_create(&d, fx_training,
                          "{\"parameters\":{\"num_gpus\":4,\"gpu_model\":\"A100\"}}", a100));
    dep = fx_wait_status(&d, h100, "CREATE_FAILED", 5000);
    assert_contains(str_of(dep, "statusReason"), "no site can run this deployment");
    assert_contains(str_of(dep, "statusReason"), "small:");
    assert_contains(str_of(dep, "statusReason"), "medium:");
    assert_contains(str_of(dep, "statusReason"), "H100");
    json_decref(dep);
    dep = fx_wait_status(&d, a100, "CREATE_FAILED", 5000);
    assert_contains(str_of(dep, "statusReason"), "medium: 2 GPUs A100 free, needs 4");
    json_decref(dep);
    /* a failed deployment can be deleted: DELETE_IN_PROGRESS, then gone */
    delete_ok(&d, a100);
    assert_null(fx_wait_status(&d, a100, "", 5000));
    fx_stop(&d);
}

/* A site whose deprovision fails: DELETE_FAILED with the reason; a second
 * DELETE is allowed from there. */
static void delete_failed_when_the_provider_fails(void **state)
{
    static const char sites[] =
        "sites:\n"
        "  - name: sticky\n"
        "    driver: sim\n"
        "    config: {inventory: \"@DIR@/sticky.json\", failures: {deprovision: 1.0}}\n";
    char uuid[64];
    struct fx_daemon d;
    json_t *dep;

    (void)state;
    fx_start(&d, "test-rest-delfail", sites, engine_env);
    json_decref(fx_create(&d, fx_serving, NULL, uuid));
    json_decref(fx_wait_status(&d, uuid, "CREATE_COMPLETE", 10000));
    delete_ok(&d, uuid);
    dep = fx_wait_status(&d, uuid, "DELETE_FAILED", 5000);
    assert_contains(str_of(dep, "statusReason"), "deprovision");
    json_decref(dep);
    assert_int_equal(fx_sim_count(&d, "sticky", uuid), 1); /* it is still there */
    delete_ok(&d, uuid);
    json_decref(fx_wait_status(&d, uuid, "DELETE_FAILED", 5000));
    fx_stop(&d);
}

/* A deletion that never ends (the provider hangs): PATCH resets it to
 * DELETE_FAILED, once. */
static void patch_resets_a_stuck_deletion(void **state)
{
    static const char sites[] =
        "sites:\n"
        "  - name: stuck\n"
        "    driver: sim\n"
        "    config: {inventory: \"@DIR@/stuck.json\", hangs: {deprovision: 1.0}}\n";
    char uuid[64], st[64], path[160];
    struct fx_daemon d;
    struct fx_resp r;
    json_t *dep;

    (void)state;
    fx_start(&d, "test-rest-reset", sites, engine_env);
    json_decref(fx_create(&d, fx_serving, NULL, uuid));
    json_decref(fx_wait_status(&d, uuid, "CREATE_COMPLETE", 10000));
    delete_ok(&d, uuid);
    fx_sleep_ms(300);
    fx_status(&d, uuid, st, sizeof(st), NULL);
    assert_string_equal(st, "DELETE_IN_PROGRESS");
    snprintf(path, sizeof(path), "/deployments/%s", uuid);
    fx_http(&d, "PATCH", path, NULL, "{\"status\":\"DELETE_FAILED\"}", &r);
    if (r.status != 204)
        fail_msg("PATCH of a stuck deletion: %ld %s (API.md: 204 from DELETE_IN_PROGRESS)",
                 r.status, r.body);
    fx_resp_free(&r);
    dep = fx_get_json(&d, path);
    assert_string_equal(str_of(dep, "status"), "DELETE_FAILED");
    assert_true(str_of(dep, "statusReason")[0] != '\0');
    json_decref(dep);
    fx_expect_error(&d, "PATCH", path, "{\"status\":\"DELETE_FAILED\"}", 409, "DELETE_FAILED");
    fx_stop(&d); /* the hung deprovision is cancelled at close */
}

/* ---- failover ---- */

static const char failover_sites[] =
    "sites:\n"
    "  - name: full\n"
    "    driver: sim\n"
    "    priority: 30\n"
    "    config: {inventory: \"@DIR@/full.json\", capacity: {cpus: 64, mem: 256 GiB,\n"
    "             gpus: {A100: 2}}}\n"
    "  - name: broken\n"
    "    driver: sim\n"
    "    priority: 20\n"
    "    config: {inventory: \"@DIR@/broken.json\", capacity: {cpus: 64, mem: 256 GiB,\n"
    "             gpus: {A100: 8}}, failures: {provision: 1.0}}\n"
    "  - name: good\n"
    "    driver: sim\n"
    "    priority: 10\n"
    "    config: {inventory: \"@DIR@/good.json\", capacity: {cpus: 64, mem: 256 GiB,\n"
    "             gpus: {A100: 8}}}\n";

/* The value of one series in a /metrics text (its whole name and labels), -1 if absent. */
static double metric(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

/* What the failover above shows in /metrics: the failed provision of the broken site,
 * the two that worked, both deployments complete, the store's commits. */
static void assert_failover_metrics(struct fx_daemon *d)
{
    struct fx_resp r;
    const char *text;

    assert_int_equal(fx_get(d, "/metrics", &r), 200);
    text = r.body;
    assert_true(metric(text, "orchestrator_driver_operations_total{driver=\"sim\","
                             "slot=\"provision\",outcome=\"error\"}") >= 1);
    assert_true(metric(text, "orchestrator_driver_operations_total{driver=\"sim\","
                             "slot=\"provision\",outcome=\"ok\"}") >= 2);
    assert_true(metric(text, "orchestrator_driver_operation_duration_seconds_count{"
                             "driver=\"sim\",slot=\"provision\"}") >= 3);
    assert_true(metric(text, "orchestrator_deployments{status=\"CREATE_COMPLETE\"}") == 2);
    assert_true(metric(text, "orchestrator_deployments{status=\"CREATE_FAILED\"}") == 0);
    assert_true(metric(text, "orchestrator_store_commit_duration_seconds_count") > 0);
    /* store_commit: wait by default, on both backends */
    assert_true(metric(text, "orchestrator_store_commits_sent_total") == 0);
    assert_true(metric(text, "orchestrator_driver_operations_in_flight{site=\"good\","
                             "driver=\"sim\"}") >= 0);
    assert_true(metric(text, "orchestrator_planner_queue") == 0);
    fx_resp_free(&r);
}

static void failover_full_then_failing_then_good(void **state)
{
    static const char two_a100[] = "{\"parameters\":{\"num_gpus\":2,\"gpu_model\":\"A100\"}}";
    char filler[64], uuid[64], sites[256];
    struct fx_daemon d;
    json_t *dep, *ended, *e;
    size_t i;

    (void)state;
    fx_start(&d, "test-rest-failover", failover_sites, engine_env);
    /* the first site's two A100 taken: it is full for this model */
    json_decref(fx_create(&d, fx_training, two_a100, filler));
    dep = fx_wait_status(&d, filler, "CREATE_COMPLETE", 10000);
    assert_string_equal(str_of(dep, "cloudProviderName"), "full");
    json_decref(dep);
    json_decref(fx_create(&d, fx_training, two_a100, uuid));
    dep = fx_wait_status(&d, uuid, "CREATE_COMPLETE", 10000);
    assert_string_equal(str_of(dep, "cloudProviderName"), "good");
    /* the reason says where it runs, and why the site before failed */
    assert_contains(str_of(dep, "statusReason"), "running on site good after failover");
    assert_contains(str_of(dep, "statusReason"), "broken: ");
    assert_contains(str_of(dep, "statusReason"), "injected provision failure");
    json_decref(dep);
    dep = fx_wait_status(&d, filler, "CREATE_COMPLETE", 10000); /* no failover: none */
    assert_null(json_object_get(dep, "statusReason"));
    json_decref(dep);
    attempted_sites(&d, uuid, sites, sizeof(sites));
    assert_string_equal(sites, "broken,good"); /* full: left out at ranking */
    ended = fx_events(&d, uuid, "attempt.ended");
    assert_int_equal(json_array_size(ended), 2);
    json_array_foreach(ended, i, e)
    {
        assert_true(json_is_true(json_object_get(json_object_get(e, "data"), "ok")) == (i == 1));
    }
    json_decref(ended);
    /* what each cloud holds */
    assert_int_equal(fx_sim_count(&d, "full", filler), 1);
    assert_int_equal(fx_sim_count(&d, "full", uuid), 0);
    assert_int_equal(fx_sim_count(&d, "broken", NULL), 0);
    assert_int_equal(fx_sim_count(&d, "good", uuid), 1);
    assert_failover_metrics(&d);
    fx_stop(&d);
}

/* store_commit: overlap: on PostgreSQL the loop works on while a commit is at the
 * server (commits sent); SQLite always waits (none). */
static void commits_overlap_when_configured(void **state)
{
    static const char *const env[] = {"ORCHESTRATOR_STORE_COMMIT=overlap", NULL};
    char uuid[64];
    struct fx_daemon d;
    struct fx_resp r;

    (void)state;
    fx_start(&d, "test-rest-commit-overlap", slow_site, env);
    json_decref(fx_create(&d, fx_training, NULL, uuid));
    json_decref(fx_wait_status(&d, uuid, "CREATE_COMPLETE", 10000));
    assert_int_equal(fx_get(&d, "/metrics", &r), 200);
    assert_true(metric(r.body, "orchestrator_store_commit_duration_seconds_count") > 0);
    if (getenv("ORC_TEST_PG_URL") != NULL)
        assert_true(metric(r.body, "orchestrator_store_commits_sent_total") > 0);
    else
        assert_true(metric(r.body, "orchestrator_store_commits_sent_total") == 0);
    fx_resp_free(&r);
    fx_stop(&d);
}

static const char failing_sites[] =
    "sites:\n"
    "  - name: alpha\n"
    "    driver: sim\n"
    "    priority: 30\n"
    "    config: {inventory: \"@DIR@/alpha.json\", failures: {provision: 1.0}}\n"
    "  - name: beta\n"
    "    driver: sim\n"
    "    priority: 20\n"
    "    config: {inventory: \"@DIR@/beta.json\", failures: {start_workload: 1.0}}\n"
    "  - name: gamma\n"
    "    driver: sim\n"
    "    priority: 10\n"
    "    config: {inventory: \"@DIR@/gamma.json\", failures: {provision: 1.0}}\n";

/* All three fail: the reason lists every site with its error; with
 * maxProvidersRetry only that many sites are tried. Three in parallel. */
static void all_sites_fail_and_max_providers_retry(void **state)
{
    char all[64], two[64], one[64], sites[256];
    struct fx_daemon d;
    json_t *dep;
    const char *why;

    (void)state;
    fx_start(&d, "test-rest-allfail", failing_sites, engine_env);
    json_decref(fx_create(&d, fx_serving, NULL, all));
    json_decref(fx_create(&d, fx_serving, "{\"maxProvidersRetry\":2}", two));
    json_decref(fx_create(&d, fx_serving, "{\"maxProvidersRetry\":1}", one));
    dep = fx_wait_status(&d, all, "CREATE_FAILED", 10000);
    why = str_of(dep, "statusReason");
    assert_contains(why, "alpha: ");
    assert_contains(why, "injected provision failure");
    assert_contains(why, "beta: ");
    assert_contains(why, "model_api[0]: sim: injected start");
    assert_contains(why, "gamma: ");
    assert_true(strstr(why, "alpha: ") < strstr(why, "beta: ") &&
                strstr(why, "beta: ") < strstr(why, "gamma: "));
    json_decref(dep);
    attempted_sites(&d, all, sites, sizeof(sites));
    assert_string_equal(sites, "alpha,beta,gamma");
    dep = fx_wait_status(&d, two, "CREATE_FAILED", 10000);
    why = str_of(dep, "statusReason");
    assert_contains(why, "alpha: ");
    assert_contains(why, "beta: ");
    assert_lacks(why, "gamma");
    json_decref(dep);
    attempted_sites(&d, two, sites, sizeof(sites));
    assert_string_equal(sites, "alpha,beta");
    dep = fx_wait_status(&d, one, "CREATE_FAILED", 10000);
    assert_contains(str_of(dep, "statusReason"), "alpha: ");
    assert_lacks(str_of(dep, "statusReason"), "beta");
    json_decref(dep);
    attempted_sites(&d, one, sites, sizeof(sites));
    assert_string_equal(sites, "alpha");
    /* every failed attempt was cleaned up */
    assert_int_equal(fx_sim_count(&d, "alpha", NULL) + fx_sim_count(&d, "beta", NULL) +
                         fx_sim_count(&d, "gamma", NULL),
                     0);
    fx_stop(&d);
}

/* keepLastAttempt keeps what the last site made (here the compute node of a
 * service that failed to start); without it nothing is left anywhere. */
static void keep_last_attempt(void **state)
{
    static const char sites[] =
        "sites:\n"
        "  - name: first\n"
        "    driver: sim\n"
        "    priority: 20\n"
        "    config: {inventory: \"@DIR@/first.json\", failures: {start_workload: 1.0}}\n"
        "  - name: last\n"
        "    driver: sim\n"
        "    priority: 10\n"
        "    config: {inventory: \"@DIR@/last.json\", failures: {start_workload: 1.0}}\n";
    char kept[64], asbool[64], plain[64];
    struct fx_daemon d;

    (void)state;
    fx_start(&d, "test-rest-keep", sites, engine_env);
    json_decref(fx_create(&d, fx_serving, "{\"keepLastAttempt\":\"true\"}", kept));
    json_decref(fx_create(&d, fx_serving, "{\"keepLastAttempt\":true}", asbool));
    json_decref(fx_create(&d, fx_serving, "{\"keepLastAttempt\":\"false\"}", plain));
    json_decref(fx_wait_status(&d, kept, "CREATE_FAILED", 10000));
    json_decref(fx_wait_status(&d, asbool, "CREATE_FAILED", 10000));
    json_decref(fx_wait_status(&d, plain, "CREATE_FAILED", 10000));
    assert_int_equal(fx_sim_count(&d, "first", kept), 0);
    assert_int_equal(fx_sim_count(&d, "last", kept), 1);
    assert_int_equal(fx_sim_count(&d, "first", asbool), 0);
    assert_int_equal(fx_sim_count(&d, "last", asbool), 1);
    assert_int_equal(fx_sim_count(&d, "first", plain) + fx_sim_count(&d, "last", plain), 0);
    /* deleting the failed deployment removes what was kept */
    delete_ok(&d, kept);
    assert_null(fx_wait_status(&d, kept, "", 5000));
    assert_int_equal(fx_sim_count(&d, "last", kept), 0);
    fx_stop(&d);
}

/* ---- deadlines (a minute is 300 ms here) ---- */

static const char slow_sites[] =
    "sites:\n"
    "  - name: slow1\n"
    "    driver: sim\n"
    "    priority: 30\n"
    "    config: {inventory: \"@DIR@/slow1.json\", latency: {provision: 5000}}\n"
    "  - name: slow2\n"
    "    driver: sim\n"
    "    priority: 20\n"
    "    config: {inventory: \"@DIR@/slow2.json\", latency: {provision: 5000}}\n"
    "  - name: fast\n"
    "    driver: sim\n"
    "    priority: 10\n"
    "    config: {inventory: \"@DIR@/fast.json\"}\n";

/* providerTimeoutMins: each slow site gets one minute, then the next is tried. */
static void provider_timeout_moves_on(void **state)
{
    char uuid[64], sites[256];
    struct fx_daemon d;
    json_t *dep, *ended, *e;
    double t0;
    size_t i;

    (void)state;
    fx_start(&d, "test-rest-ptimeout", slow_sites, engine_env);
    t0 = fx_now_ms();
    json_decref(fx_create(&d, fx_serving, "{\"providerTimeoutMins\":1}", uuid));
    dep = fx_wait_status(&d, uuid, "CREATE_COMPLETE", 10000);
    assert_true(fx_now_ms() - t0 >= 550); /* two minutes of 300 ms went by */
    assert_true(fx_now_ms() - t0 < 4000); /* far less than the 5 s provisions */
    assert_string_equal(str_of(dep, "cloudProviderName"), "fast");
    json_decref(dep);
    attempted_sites(&d, uuid, sites, sizeof(sites));
    assert_string_equal(sites, "slow1,slow2,fast");
    ended = fx_events(&d, uuid, "attempt.ended");
    json_array_foreach(ended, i, e)
    {
        if (i < 2)
            assert_contains(str_of(e, "message"), "providerTimeoutMins");
    }
    json_decref(ended);
    /* the abandoned provisions were cancelled and removed */
    for (int k = 0; k < 100 && fx_sim_count(&d, "slow1", NULL) + fx_sim_count(&d, "slow2", NULL);
         k++)
        fx_sleep_ms(20);
    assert_int_equal(fx_sim_count(&d, "slow1", NULL) + fx_sim_count(&d, "slow2", NULL), 0);
    fx_stop(&d);
}

/* timeoutMins ends the whole create, whatever sites are left. */
static void timeout_ends_the_create(void **state)
{
    char uuid[64], sites[256];
    struct fx_daemon d;
    json_t *dep;
    double t0;

    (void)state;
    fx_start(&d, "test-rest-timeout", slow_sites, engine_env);
    t0 = fx_now_ms();
    json_decref(fx_create(&d, fx_serving, "{\"timeoutMins\":2,\"providerTimeoutMins\":1}", uuid));
    dep = fx_wait_status(&d, uuid, "CREATE_FAILED", 10000);
    assert_true(fx_now_ms() - t0 >= 550);
    assert_true(fx_now_ms() - t0 < 4000);
    assert_contains(str_of(dep, "statusReason"), "slow1: ");
    assert_contains(str_of(dep, "statusReason"), "providerTimeoutMins");
    assert_contains(str_of(dep, "statusReason"), "slow2: ");
    assert_contains(str_of(dep, "statusReason"), "(timeoutMins)");
    assert_lacks(str_of(dep, "statusReason"), "fast");
    json_decref(dep);
    attempted_sites(&d, uuid, sites, sizeof(sites));
    assert_string_equal(sites, "slow1,slow2"); /* fast never tried: the time was up */
    fx_stop(&d);
}

/* ---- callbacks: a real HTTP receiver on loopback ---- */

struct receiver {
    int fd, port;
    pthread_t thread;
    pthread_mutex_t mu;
    int fail_first; /* answer 500 to this many requests, then 200; < 0: always 500 */
    int requests;
    char last_body[16384];
    char last_ctype[128];
    bool stop;
};

/* Reads one request (headers, then Content-Length bytes of body) from c. */
static size_t read_request(int c, char *buf, size_t size, char **body)
{
    size_t len = 0;
    char *end = NULL;

    *body = NULL;
    while (len < size - 1) {
        struct pollfd p = {c, POLLIN, 0};
        ssize_t n;
        if (poll(&p, 1, 5000) <= 0)
            break;
        n = read(c, buf + len, size - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
        if (end != NULL) {
            const char *cl = strcasestr(buf, "\r\ncontent-length:");
            size_t want = cl ? (size_t)atol(cl + 17) : 0;
            if (strlen(end + 4) >= want) {
                *body = end + 4;
                break;
            }
        }
    }
    return len;
}

static void *receiver_main(void *arg)
{
    struct receiver *rv = arg;
    char buf[32768], *body;

    for (;;) {
        struct pollfd p = {rv->fd, POLLIN, 0};
        bool stop, fail;
        int c;
        pthread_mutex_lock(&rv->mu);
        stop = rv->stop;
        pthread_mutex_unlock(&rv->mu);
        if (stop)
            break;
        if (poll(&p, 1, 50) <= 0 || (c = accept(rv->fd, NULL, NULL)) < 0)
            continue;
        read_request(c, buf, sizeof(buf), &body);
        pthread_mutex_lock(&rv->mu);
        fail = rv->fail_first < 0 || rv->requests < rv->fail_first;
        rv->requests++;
        snprintf(rv->last_body, sizeof(rv->last_body), "%s", body ? body : "");
        {
            const char *ct = strcasestr(buf, "\r\ncontent-type:");
            ct = ct ? ct + 15 + strspn(ct + 15, " ") : "";
            snprintf(rv->last_ctype, sizeof(rv->last_ctype), "%.*s", (int)strcspn(ct, "\r"), ct);
        }
        pthread_mutex_unlock(&rv->mu);
        {
            const char *reply = fail ? "HTTP/1.1 500 Internal Server Error\r\nContent-Length: "
                                       "0\r\nConnection: close\r\n\r\n"
                                     : "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: "
                                       "close\r\n\r\n";
            ssize_t w = write(c, reply, strlen(reply));
            (void)w;
        }
        close(c);
    }
    return NULL;
}

static void receiver_start(struct receiver *rv, int fail_first)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);

    memset(rv, 0, sizeof(*rv));
    rv->fail_first = fail_first;
    pthread_mutex_init(&rv->mu, NULL);
    rv->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(rv->fd >= 0);
    assert_int_equal(bind(rv->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(rv->fd, 16), 0);
    assert_int_equal(getsockname(rv->fd, (struct sockaddr *)&a, &len), 0);
    rv->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&rv->thread, NULL, receiver_main, rv), 0);
}

static void receiver_stop(struct receiver *rv)
{
    pthread_mutex_lock(&rv->mu);
    rv->stop = true;
    pthread_mutex_unlock(&rv->mu);
    pthread_join(rv->thread, NULL);
    close(rv->fd);
    pthread_mutex_destroy(&rv->mu);
}

static int receiver_requests(struct receiver *rv)
{
    int n;

    pthread_mutex_lock(&rv->mu);
    n = rv->requests;
    pthread_mutex_unlock(&rv->mu);
    return n;
}

/* Waits until the receiver got n requests; then checks no more come. */
static void receiver_expect(struct receiver *rv, int n)
{
    for (int i = 0; i < 500 && receiver_requests(rv) < n; i++)
        fx_sleep_ms(10);
    assert_int_equal(receiver_requests(rv), n);
    fx_sleep_ms(300); /* longer than the next backoff would be */
    assert_int_equal(receiver_requests(rv), n);
}

static size_t count_events(struct fx_daemon *d, const char *uuid, const char *type)
{
    json_t *ev = fx_events(d, uuid, type);
    size_t n = json_array_size(ev);

    json_decref(ev);
    return n;
}

static const char fast_site[] =
    "sites:\n"
    "  - name: sim-a\n"
    "    driver: sim\n"
    "    config: {inventory: \"@DIR@/sim-a.json\", capacity: {cpus: 64, mem: 256 GiB,\n"
    "             gpus: {A100: 8}}}\n";

/* The receiver fails twice: the deployment JSON arrives on the third try;
 * a failed deployment's callback carries CREATE_FAILED. */
static void callback_retried_until_delivered(void **state)
{
    char uuid[64], failed[64], extra[128];
    struct receiver rv;
    struct fx_daemon d;
    json_error_t je;
    json_t *got;

    (void)state;
    receiver_start(&rv, 2);
    fx_start(&d, "test-rest-callback", fast_site, engine_env);
    snprintf(extra, sizeof(extra), "{\"callback\":\"http://127.0.0.1:%d/hook\"}", rv.port);
    json_decref(fx_create(&d, fx_serving, extra, uuid));
    json_decref(fx_wait_status(&d, uuid, "CREATE_COMPLETE", 10000));
    receiver_expect(&rv, 3);
    pthread_mutex_lock(&rv.mu);
    got = json_loads(rv.last_body, 0, &je);
    assert_int_equal(strncmp(rv.last_ctype, "application/json", 16), 0);
    pthread_mutex_unlock(&rv.mu);
    assert_non_null(got);
    assert_string_equal(str_of(got, "uuid"), uuid);
    assert_string_equal(str_of(got, "status"), "CREATE_COMPLETE");
    json_decref(got);
    for (int i = 0; i < 100 && count_events(&d, uuid, "callback.delivered") == 0; i++)
        fx_sleep_ms(10);
    assert_int_equal(count_events(&d, uuid, "callback.retry"), 2);
    assert_int_equal(count_events(&d, uuid, "callback.delivered"), 1);
    /* on failure too */
    snprintf(extra, sizeof(extra),
             "{\"callback\":\"http://127.0.0.1:%d/hook\",\"parameters\":{\"num_gpus\":3,"
             "\"gpu_model\":\"H100\"}}",
             rv.port);
    json_decref(fx_create(&d, fx_training, extra, failed));
    json_decref(fx_wait_status(&d, failed, "CREATE_FAILED", 10000));
    receiver_expect(&rv, 4);
    pthread_mutex_lock(&rv.mu);
    got = json_loads(rv.last_body, 0, &je);
    pthread_mutex_unlock(&rv.mu);
    assert_string_equal(str_of(got, "uuid"), failed);
    assert_string_equal(str_of(got, "status"), "CREATE_FAILED");
    assert_true(str_of(got, "statusReason")[0] != '\0');
    json_decref(got);
    fx_stop(&d);
    receiver_stop(&rv);
}

/* A receiver that always fails, and one that is not there: bounded tries,
 * then given up; the daemon stays healthy. */
static void callback_given_up_daemon_healthy(void **state)
{
    char uuid[64], nowhere[64], after[64], extra[128];
    struct receiver rv, closed;
    struct fx_daemon d;
    struct fx_resp r;
    json_t *ev;

    (void)state;
    receiver_start(&rv, -1);
    receiver_start(&closed, -1);
    receiver_stop(&closed); /* its port: nobody listens there now */
    fx_start(&d, "test-rest-giveup", fast_site, engine_env);
    snprintf(extra, sizeof(extra), "{\"callback\":\"http://127.0.0.1:%d/hook\"}", rv.port);
    json_decref(fx_create(&d, fx_serving, extra, uuid));
    snprintf(extra, sizeof(extra), "{\"callback\":\"http://127.0.0.1:%d/gone\"}", closed.port);
    json_decref(fx_create(&d, fx_serving, extra, nowhere));
    json_decref(fx_wait_status(&d, uuid, "CREATE_COMPLETE", 10000));
    json_decref(fx_wait_status(&d, nowhere, "CREATE_COMPLETE", 10000));
    receiver_expect(&rv, 4); /* ORCHESTRATOR_CALLBACK_ATTEMPTS */
    for (int i = 0; i < 200 && (count_events(&d, uuid, "callback.failed") == 0 ||
                                count_events(&d, nowhere, "callback.failed") == 0);
         i++)
        fx_sleep_ms(10);
    assert_int_equal(count_events(&d, uuid, "callback.retry"), 3);
    assert_int_equal(count_events(&d, uuid, "callback.failed"), 1);
    assert_int_equal(count_events(&d, uuid, "callback.delivered"), 0);
    ev = fx_events(&d, nowhere, "callback.failed");
    assert_int_equal(json_array_size(ev), 1);
    assert_contains(str_of(json_array_get(ev, 0), "message"), "giving up");
    json_decref(ev);
    assert_int_equal(count_events(&d, nowhere, "callback.retry"), 3);
    /* the daemon is fine */
    assert_int_equal(fx_get(&d, "/healthz", &r), 200);
    fx_resp_free(&r);
    json_decref(fx_create(&d, fx_serving, NULL, after));
    json_decref(fx_wait_status(&d, after, "CREATE_COMPLETE", 10000));
    fx_stop(&d);
    receiver_stop(&rv);
}

/* ---- structured logs ---- */

/* With log_format json every line of the daemon's log is one JSON object; the lines about a
 * deployment name it, those of its attempt the site, those of a node instance the node; a
 * driver's own line about a resource (host->log_resource) names all three. */
static void json_logs_name_deployment_site_and_node(void **state)
{
    const char *env[] = {"ORCHESTRATOR_LOG_FORMAT=json", "ORCHESTRATOR_LOG_LEVEL=debug", NULL};
    struct fx_daemon d;
    char uuid[64], *text, *line, *save = NULL;
    bool saw_complete = false, saw_site_line = false, saw_driver_node_line = false;
    size_t lines = 0;

    (void)state;
    fx_start(&d, "test-rest-jsonlog", fast_site, env);
    json_decref(fx_create(&d, fx_training, NULL, uuid));
    json_decref(fx_wait_status(&d, uuid, "CREATE_COMPLETE", 10000));
    text = fx_read_file(d.log); /* each line is written whole: the last one may be missing */
    assert_non_null(text);
    if (strrchr(text, '\n'))
        strrchr(text, '\n')[1] = '\0';
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t err;
        json_t *j = json_loads(line, 0, &err);
        const char *dep, *msg;
        if (j == NULL)
            fail_msg("not a JSON line: %s (%s)", line, err.text);
        assert_non_null(json_string_value(json_object_get(j, "time")));
        assert_non_null(json_string_value(json_object_get(j, "level")));
        assert_non_null(json_string_value(json_object_get(j, "subsystem")));
        msg = json_string_value(json_object_get(j, "message"));
        dep = json_string_value(json_object_get(j, "deployment"));
        assert_non_null(msg);
        if (dep && strcmp(dep, uuid) == 0 && strcmp(msg, "CREATE_COMPLETE") == 0) {
            assert_string_equal(json_string_value(json_object_get(j, "site")), "sim-a");
            saw_complete = true;
        }
        if (json_object_get(j, "site") && !dep) /* the driver's own lines */
            saw_site_line = true;
        if (strcmp(json_string_value(json_object_get(j, "subsystem")), "driver sim") == 0 &&
            strstr(msg, " created (") != NULL) { /* the sim's line about a node it made */
            assert_string_equal(dep, uuid);
            assert_string_equal(json_string_value(json_object_get(j, "site")), "sim-a");
            assert_string_equal(json_string_value(json_object_get(j, "node")), "train_node[0]");
            saw_driver_node_line = true;
        }
        json_decref(j);
        lines++;
    }
    assert_true(lines > 5);
    assert_true(saw_complete);
    assert_true(saw_site_line);
    assert_true(saw_driver_node_line);
    free(text);
    fx_stop(&d);
}

/* ---- the OpenAPI document holds for every exchange above ---- */

static void openapi_documents_every_exchange(void **state)
{
    struct fx_daemon d;

    (void)state;
    fx_start(&d, "test-rest-eng-openapi", fast_site, engine_env);
    oa_check_recorded(&d);
    fx_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(create_complete_then_delete_complete, fx_teardown),
        cmocka_unit_test_teardown(delete_during_create, fx_teardown),
        cmocka_unit_test_teardown(create_failed_when_nothing_fits, fx_teardown),
        cmocka_unit_test_teardown(delete_failed_when_the_provider_fails, fx_teardown),
        cmocka_unit_test_teardown(patch_resets_a_stuck_deletion, fx_teardown),
        cmocka_unit_test_teardown(failover_full_then_failing_then_good, fx_teardown),
        cmocka_unit_test_teardown(commits_overlap_when_configured, fx_teardown),
        cmocka_unit_test_teardown(all_sites_fail_and_max_providers_retry, fx_teardown),
        cmocka_unit_test_teardown(keep_last_attempt, fx_teardown),
        cmocka_unit_test_teardown(provider_timeout_moves_on, fx_teardown),
        cmocka_unit_test_teardown(timeout_ends_the_create, fx_teardown),
        cmocka_unit_test_teardown(callback_retried_until_delivered, fx_teardown),
        cmocka_unit_test_teardown(callback_given_up_daemon_healthy, fx_teardown),
        cmocka_unit_test_teardown(json_logs_name_deployment_site_and_node, fx_teardown),
        cmocka_unit_test_teardown(openapi_documents_every_exchange, fx_teardown),
    };

    return cmocka_run_group_tests(tests, fx_examples_load, fx_examples_free);
}
