/*
 * /sites (docs/api.md "Sites") against the real daemon over HTTP, on four sim sites: one
 * active with GPUs of two models, one whose inventory fails, one disabled in the sites
 * file, one that cannot open. The list keeps the sites file's order and says each state;
 * the active site's GPUs by model, CPUs and memory are what its inventory reports, and
 * its free GPUs go down while a deployment holds one; a failing inventory is told with
 * the driver's error; 404 for a site that is not there. An operator drains a site (no new
 * deployment placed there, the reason says so; what is on it stays and deletes) and
 * takes it back. An operator registers a site through the API (it opens, takes the next
 * deployment, is refused removal while that holds resources there, is disabled and
 * enabled in place, survives a restart, and goes once empty); the sites file's own are
 * not the API's to change. The last test holds every
 * exchange against /openapi.json.
 */
#include <unistd.h>

#include "testutil.h"
#include "daemon_fixture.h"
#include "openapi_check.h"

static const char sites[] =
    "sites:\n"
    "  - name: sim-a\n"
    "    driver: sim\n"
    "    description: two A100 and a T4\n"
    "    priority: 5\n"
    "    credentials: sim-a-token\n"
    "    config: {inventory: \"@DIR@/sim-a.json\", capacity: {cpus: 64, mem: 256 GiB,\n"
    "             gpus: {A100: 2, T4: 1}}}\n"
    "  - name: sim-flaky\n"
    "    driver: sim\n"
    "    config: {inventory: \"@DIR@/sim-f.json\", failures: {inventory: 1}}\n"
    "  - name: sim-off\n"
    "    driver: sim\n"
    "    enabled: false\n"
    "    config: {inventory: \"@DIR@/sim-o.json\"}\n"
    "  - name: sim-broken\n"
    "    driver: sim\n"
    "    config: {inventory: \"@DIR@/sim-b.json\", no_such_key: 1}\n";

static const char *const env[] = {"ORC_SECRET_SIM_A_TOKEN=x", NULL};

static json_t *site_named(json_t *list, const char *name)
{
    size_t i;
    json_t *s;

    json_array_foreach(json_object_get(list, "content"), i, s)
    {
        if (strcmp(json_string_value(json_object_get(s, "name")), name) == 0)
            return s;
    }
    fail_msg("no site %s in the list", name);
    return NULL;
}

static json_int_t gpus(const json_t *site, const char *model, const char *which)
{
    size_t i;
    json_t *g;

    json_array_foreach(json_object_get(site, "gpus"), i, g)
    {
        if (strcmp(json_string_value(json_object_get(g, "model")), model) == 0)
            return json_integer_value(json_object_get(g, which));
    }
    return -1;
}

static void states_and_capacity(void **state)
{
    struct fx_daemon d;
    char uuid[64];
    json_t *list, *s;

    (void)state;
    fx_start(&d, "test-sites", sites, env);
    list = fx_get_json(&d, "/sites");
    assert_int_equal(json_array_size(json_object_get(list, "content")), 4);
    /* the sites file's order */
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(list, "content"), 3), "name")),
                        "sim-broken");
    s = site_named(list, "sim-a");
    assert_string_equal(json_string_value(json_object_get(s, "state")), "active");
    assert_string_equal(json_string_value(json_object_get(s, "driver")), "sim");
    assert_string_equal(json_string_value(json_object_get(s, "description")), "two A100 and a T4");
    assert_int_equal(json_integer_value(json_object_get(s, "priority")), 5);
    assert_string_equal(json_string_value(json_object_get(s, "inventory")), "ok");
    assert_int_equal(gpus(s, "A100", "total"), 2);
    assert_int_equal(gpus(s, "A100", "free"), 2);
    assert_int_equal(gpus(s, "T4", "total"), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "cpus"), "total")), 64);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(s, "memory"), "total")),
                     256LL << 30);
    /* without authentication the caller is an admin: the operators' fields show */
    assert_string_equal(json_string_value(json_object_get(s, "credentials")), "sim-a-token");
    assert_true(json_array_size(json_object_get(s, "pools")) >= 3);
    s = site_named(list, "sim-flaky");
    assert_string_equal(json_string_value(json_object_get(s, "state")), "active");
    assert_non_null(strstr(json_string_value(json_object_get(s, "inventory")), "injected"));
    assert_null(json_object_get(s, "gpus"));
    s = site_named(list, "sim-off");
    assert_string_equal(json_string_value(json_object_get(s, "state")), "disabled");
    assert_true(json_is_null(json_object_get(s, "inventory")));
    s = site_named(list, "sim-broken");
    assert_string_equal(json_string_value(json_object_get(s, "state")), "unavailable");
    json_decref(list);
    /* a deployment holds an A100: one is free (once the shared answer is 2 s old) */
    json_decref(fx_create(&d, fx_training,
                          "{\"parameters\":{\"num_gpus\":1,\"gpu_model\":\"A100\"}}", uuid));
    json_decref(fx_wait_status(&d, uuid, "CREATE_COMPLETE", 10000));
    fx_sleep_ms(2100);
    s = fx_get_json(&d, "/sites/sim-a");
    assert_int_equal(gpus(s, "A100", "free"), 1);
    assert_int_equal(gpus(s, "T4", "free"), 1);
    json_decref(s);
    fx_undeploy(&d, uuid, 10000);
    fx_expect_error(&d, "GET", "/sites/nope", NULL, 404, "There is no site 'nope'");
    s = fx_get_json(&d, "/sites/sim-off/"); /* a trailing slash */
    assert_string_equal(json_string_value(json_object_get(s, "name")), "sim-off");
    json_decref(s);
    fx_stop(&d);
}

/* Draining: no new deployments there, those on it stay; active again, it takes them. */
static void drain_and_take_back(void **state)
{
    struct fx_daemon d;
    struct fx_resp r;
    char before[64], refused[64], after[64];
    json_t *s, *dep;

    (void)state;
    fx_start(&d, "test-sites-drain", sites, env);
    json_decref(fx_create(&d, fx_training,
                          "{\"parameters\":{\"num_gpus\":1,\"gpu_model\":\"A100\"}}", before));
    json_decref(fx_wait_status(&d, before, "CREATE_COMPLETE", 10000));
    assert_int_equal(fx_http(&d, "PATCH", "/sites/sim-a", NULL, "{\"state\":\"draining\"}", &r),
                     200);
    assert_string_equal(json_string_value(json_object_get(r.json, "state")), "draining");
    fx_resp_free(&r);
    s = fx_get_json(&d, "/sites/sim-a");
    assert_string_equal(json_string_value(json_object_get(s, "state")), "draining");
    json_decref(s);
    /* the other open site too (its inventory fails, so it could be tried) */
    assert_int_equal(fx_http(&d, "PATCH", "/sites/sim-flaky", NULL, "{\"state\":\"draining\"}", &r),
                     200);
    fx_resp_free(&r);
    json_decref(fx_create(&d, fx_training,
                          "{\"parameters\":{\"num_gpus\":1,\"gpu_model\":\"A100\"}}", refused));
    dep = fx_wait_status(&d, refused, "CREATE_FAILED", 10000);
    assert_non_null(strstr(json_string_value(json_object_get(dep, "statusReason")),
                           "; sim-a: draining; sim-flaky: draining"));
    json_decref(dep);
    /* what is on it stays, and deletes */
    dep = fx_wait_status(&d, before, "CREATE_COMPLETE", 1000);
    json_decref(dep);
    fx_undeploy(&d, before, 10000);
    /* refusals */
    fx_expect_error(&d, "PATCH", "/sites/sim-a", "{\"state\":\"gone\"}", 400,
                    "the body must be {\"state\": \"draining\"}");
    fx_expect_error(&d, "PATCH", "/sites/nope", "{\"state\":\"draining\"}", 404,
                    "There is no site 'nope'");
    /* active again */
    assert_int_equal(fx_http(&d, "PATCH", "/sites/sim-a/", NULL, "{\"state\":\"active\"}", &r),
                     200);
    fx_resp_free(&r);
    json_decref(fx_create(&d, fx_training,
                          "{\"parameters\":{\"num_gpus\":1,\"gpu_model\":\"A100\"}}", after));
    json_decref(fx_wait_status(&d, after, "CREATE_COMPLETE", 10000));
    s = fx_get_json(&d, "/sites/sim-a");
    assert_string_equal(json_string_value(json_object_get(s, "state")), "active");
    json_decref(s);
    fx_stop(&d);
}

/* The sim driver's inventory operations so far, every site and outcome (/metrics). */
static long inventories(struct fx_daemon *d)
{
    static const char name[] = "orchestrator_driver_operations_total{driver=\"sim\","
                               "slot=\"inventory\"";
    struct fx_resp r;
    long total = 0;

    assert_int_equal(fx_get(d, "/metrics", &r), 200);
    for (const char *at = strstr(r.body, name); at; at = strstr(at + 1, name))
        total += strtol(strchr(at, '}') + 1, NULL, 10);
    fx_resp_free(&r);
    return total;
}

/* Requests that come together share one inventory per site. */
static void requests_together_share_one_inventory(void **state)
{
    struct fx_daemon d;
    long before, after;
    json_t *s;

    (void)state;
    fx_start(&d, "test-sites-share", sites, env);
    before = inventories(&d);
    s = fx_get_json(&d, "/sites");
    json_decref(s);
    after = inventories(&d);
    assert_int_equal(after - before, 2); /* the two open sites were asked */
    for (int i = 0; i < 20; i++)
        json_decref(fx_get_json(&d, "/sites"));
    /* within 2 s of the first answer: none asked again, or once if they took longer */
    assert_true(inventories(&d) - after <= 2);
    fx_stop(&d);
}

/* ---- sites registered through the API ---- */

/* A sim site's definition as the API takes it (JSON), with enabled set (caller frees). */
static char *sim_site(const struct fx_daemon *d, const char *name, bool enabled)
{
    char *text = malloc(1024);

    assert_non_null(text);
    assert_true(snprintf(text, 1024,
                         "{\"name\": \"%s\", \"driver\": \"sim\", \"priority\": 50,"
                         " \"enabled\": %s, \"description\": \"registered\","
                         " \"config\": {\"inventory\": \"%s/%s.json\", \"capacity\":"
                         " {\"cpus\": 32, \"mem\": \"128 GiB\", \"gpus\": {\"A100\": 4}}}}",
                         name, enabled ? "true" : "false", d->dir, name) < 1024);
    return text;
}

static void operators_register_change_and_remove_sites(void **state)
{
    struct fx_daemon d;
    struct fx_resp r;
    char uuid[64], *def;
    json_t *s, *dep;

    (void)state;
    fx_start(&d, "test-sites-register", sites, env);
    def = sim_site(&d, "sim-new", true);
    assert_int_equal(fx_http(&d, "POST", "/sites", NULL, def, &r), 201);
    assert_string_equal(json_string_value(json_object_get(r.json, "source")), "api");
    fx_resp_free(&r);
    fx_wait_site(&d, "sim-new", "active", 10000);
    s = fx_get_json(&d, "/sites/sim-new");
    assert_string_equal(json_string_value(json_object_get(s, "source")), "api");
    assert_string_equal(json_string_value(json_object_get(s, "description")), "registered");
    assert_int_equal(gpus(s, "A100", "total"), 4);
    json_decref(s);
    s = fx_get_json(&d, "/sites/sim-a");
    assert_string_equal(json_string_value(json_object_get(s, "source")), "file");
    json_decref(s);
    /* refusals */
    fx_expect_error(&d, "POST", "/sites", def, 409, "there is a site 'sim-new' already");
    fx_expect_error(&d, "POST", "/sites", "{\"name\": \"sim-a\", \"driver\": \"sim\"}", 409,
                    "there is a site 'sim-a' already");
    fx_expect_error(&d, "POST", "/sites", "{\"name\": \"x\"}", 400, "driver");
    fx_expect_error(&d, "POST", "/sites", "[1]", 400, "the body must be a site");
    fx_expect_error(&d, "PUT", "/sites/sim-a", "{\"driver\": \"sim\"}", 409,
                    "defined in the sites file");
    fx_expect_error(&d, "DELETE", "/sites/sim-a", NULL, 409, "defined in the sites file");
    fx_expect_error(&d, "DELETE", "/sites/nope", NULL, 404, "There is no site 'nope'");
    fx_expect_error(&d, "PUT", "/sites/sim-new", "{\"name\": \"other\", \"driver\": \"sim\"}", 400,
                    "is not the site of the path");

    /* a deployment goes there (the highest priority) */
    json_decref(fx_create(&d, fx_training,
                          "{\"parameters\":{\"num_gpus\":1,\"gpu_model\":\"A100\"}}", uuid));
    dep = fx_wait_status(&d, uuid, "CREATE_COMPLETE", 10000);
    assert_string_equal(json_string_value(json_object_get(dep, "cloudProviderName")), "sim-new");
    json_decref(dep);
    fx_expect_error(&d, "DELETE", "/sites/sim-new", NULL, 409,
                    "resources of deployments are at site sim-new");
    /* disabled and enabled again: changed in place */
    free(def);
    def = sim_site(&d, "sim-new", false);
    assert_int_equal(fx_http(&d, "PUT", "/sites/sim-new", NULL, def, &r), 200);
    fx_resp_free(&r);
    fx_wait_site(&d, "sim-new", "disabled", 10000);
    free(def);
    def = sim_site(&d, "sim-new", true);
    assert_int_equal(fx_http(&d, "PUT", "/sites/sim-new/", NULL, def, &r), 200);
    fx_resp_free(&r);
    fx_wait_site(&d, "sim-new", "active", 10000);
    assert_int_equal(fx_sim_count(&d, "sim-new", uuid), 1); /* its node is still there */

    /* kept across a restart */
    fx_restart(&d, env);
    fx_wait_site(&d, "sim-new", "active", 10000);
    fx_undeploy(&d, uuid, 10000);
    assert_int_equal(fx_sim_count(&d, "sim-new", uuid), 0);
    assert_int_equal(fx_http(&d, "PATCH", "/sites/sim-new", NULL, "{\"state\":\"draining\"}", &r),
                     200);
    fx_resp_free(&r);
    assert_int_equal(fx_http(&d, "DELETE", "/sites/sim-new", NULL, NULL, &r), 204);
    fx_resp_free(&r);
    fx_wait_site(&d, "sim-new", "", 10000);
    assert_int_equal(fx_http(&d, "POST", "/sites", NULL, def, &r), 201); /* a new one: */
    fx_resp_free(&r);
    fx_wait_site(&d, "sim-new", "active", 10000); /* not draining */
    assert_int_equal(fx_http(&d, "DELETE", "/sites/sim-new", NULL, NULL, &r), 204);
    fx_resp_free(&r);
    fx_restart(&d, env); /* and gone after one */
    fx_wait_site(&d, "sim-new", "", 10000);
    s = fx_get_json(&d, "/sites");
    assert_int_equal(json_array_size(json_object_get(s, "content")), 4); /* the file's */
    json_decref(s);
    free(def);
    fx_stop(&d);
}

static void openapi_documents_every_exchange(void **state)
{
    struct fx_daemon d;

    (void)state;
    fx_start(&d, "test-sites-openapi", sites, env);
    oa_check_recorded(&d);
    fx_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(states_and_capacity, fx_teardown),
        cmocka_unit_test_teardown(requests_together_share_one_inventory, fx_teardown),
        cmocka_unit_test_teardown(drain_and_take_back, fx_teardown),
        cmocka_unit_test_teardown(operators_register_change_and_remove_sites, fx_teardown),
        cmocka_unit_test_teardown(openapi_documents_every_exchange, fx_teardown),
    };

    return cmocka_run_group_tests(tests, fx_examples_load, fx_examples_free);
}
