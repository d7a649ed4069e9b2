/*
 * Usage (docs/api.md "Usage") against the real daemon over HTTP: a training deployment
 * of two A100 GPUs whose job cannot start at the first site (sim-a fails every exec,
 * which runs jobs) fails over to sim-b; its usage shows two intervals, sim-a's ended at the
 * clean-up and sim-b's still held and growing, node-hours and GPU-hours (two GPUs: twice the
 * node-hours) in all and per site and model. Once deleted, every interval has ended,
 * the figures stay put, and the usage is still readable (the deployment itself is a
 * 404). The engine's usage events are in the deployment's events. The last test holds
 * every exchange against /openapi.json.
 */
#include <math.h>
#include <unistd.h>

#include "testutil.h"
#include "daemon_fixture.h"
#include "openapi_check.h"

static const char sites[] =
    "sites:\n"
    "  - name: sim-a\n"
    "    driver: sim\n"
    "    priority: 10\n"
    "    config: {inventory: \"@DIR@/sim-a.json\", capacity: {cpus: 64, mem: 256 GiB,\n"
    "             gpus: {A100: 4}}, failures: {exec: 1}}\n"
    "  - name: sim-b\n"
    "    driver: sim\n"
    "    priority: 1\n"
    "    config: {inventory: \"@DIR@/sim-b.json\", capacity: {cpus: 64, mem: 256 GiB,\n"
    "             gpus: {A100: 4}}}\n";

static json_t *usage_of(struct fx_daemon *d, const char *uuid)
{
    char path[128];

    snprintf(path, sizeof(path), "/deployments/%s/usage", uuid);
    return fx_get_json(d, path);
}

/* Prints the usage and the events, then fails. */
static void dump_and_fail(struct fx_daemon *d, const char *uuid, const json_t *u)
{
    json_t *events = fx_events(d, uuid, NULL);
    char *a = json_dumps(u, JSON_INDENT(1)), *b = json_dumps(events, JSON_INDENT(1));

    fprintf(stderr, "usage: %s\nevents: %s\n", a, b);
    free(a);
    free(b);
    json_decref(events);
    fail();
}

static double num(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    assert_true(json_is_number(v));
    return json_number_value(v);
}

static json_t *interval_at(json_t *u, const char *site)
{
    size_t i;
    json_t *it;

    json_array_foreach(json_object_get(u, "intervals"), i, it)
    {
        if (strcmp(json_string_value(json_object_get(it, "site")), site) == 0)
            return it;
    }
    fail_msg("no interval at %s", site);
    return NULL;
}

static void assert_gpu_hours_twice_node_hours(const json_t *o)
{
    assert_true(fabs(num(o, "gpuSeconds") - 2 * num(o, "nodeSeconds")) < 1e-6);
    assert_true(fabs(num(o, "nodeHours") - num(o, "nodeSeconds") / 3600) < 1e-9);
    assert_true(fabs(num(o, "gpuHours") - num(o, "gpuSeconds") / 3600) < 1e-9);
}

static void usage_across_a_failover_and_after_delete(void **state)
{
    struct fx_daemon d;
    char uuid[64];
    json_t *u, *a, *b, *later, *events;
    double held_before;
    size_t i, nsites;
    json_t *s;

    (void)state;
    fx_start(&d, "test-usage", sites, NULL);
    json_decref(fx_create(&d, fx_training,
                          "{\"parameters\": {\"num_gpus\": 2, \"gpu_model\": \"A100\"}}", uuid));
    json_decref(fx_wait_status(&d, uuid, "CREATE_COMPLETE", 30000));

    u = usage_of(&d, uuid);
    assert_string_equal(json_string_value(json_object_get(u, "uuid")), uuid);
    if (json_array_size(json_object_get(u, "intervals")) != 2)
        dump_and_fail(&d, uuid, u);
    a = interval_at(u, "sim-a");
    b = interval_at(u, "sim-b");
    assert_string_equal(json_string_value(json_object_get(a, "node")), "train_node");
    assert_int_equal(json_integer_value(json_object_get(a, "gpus")), 2);
    assert_string_equal(json_string_value(json_object_get(a, "gpuModel")), "A100");
    assert_false(json_is_true(json_object_get(a, "held"))); /* cleaned up at sim-a */
    assert_true(json_is_integer(json_object_get(a, "endMs")));
    assert_true(json_is_true(json_object_get(b, "held")));
    assert_true(json_is_null(json_object_get(b, "end")));
    assert_gpu_hours_twice_node_hours(u);
    nsites = json_array_size(json_object_get(u, "sites"));
    assert_int_equal(nsites, 2);
    json_array_foreach(json_object_get(u, "sites"), i, s)
    {
        assert_gpu_hours_twice_node_hours(s);
        assert_true(fabs(num(json_object_get(s, "gpuHoursByModel"), "A100") - num(s, "gpuHours")) <
                    1e-9);
    }
    held_before = num(b, "hours");

    fx_sleep_ms(1100); /* sim-b's interval goes on */
    later = usage_of(&d, uuid);
    assert_true(num(interval_at(later, "sim-b"), "hours") >= held_before + 1.0 / 3600);
    assert_true(fabs(num(interval_at(later, "sim-a"), "hours") - num(a, "hours")) < 1e-9);
    json_decref(later);
    json_decref(u);

    events = fx_events(&d, uuid, "usage.started");
    assert_int_equal(json_array_size(events), 2);
    json_decref(events);
    events = fx_events(&d, uuid, "usage.ended");
    assert_int_equal(json_array_size(events), 1);
    json_decref(events);

    fx_undeploy(&d, uuid, 20000);
    u = usage_of(&d, uuid); /* the deployment is gone; its account is not */
    json_array_foreach(json_object_get(u, "intervals"), i, s)
        assert_false(json_is_true(json_object_get(s, "held")));
    fx_sleep_ms(300);
    later = usage_of(&d, uuid);
    assert_true(num(later, "nodeSeconds") == num(u, "nodeSeconds"));
    assert_true(num(later, "nodeSeconds") > 1.0);
    json_decref(later);
    json_decref(u);
    fx_expect_error(&d, "GET", "/deployments/0190b5b4-7e4c-7000-8000-000000000000/usage", NULL, 404,
                    "doesn't exist");
    fx_stop(&d);
}

static void openapi_documents_every_exchange(void **state)
{
    struct fx_daemon d;

    (void)state;
    fx_start(&d, "test-usage-openapi", sites, NULL);
    oa_check_recorded(&d);
    fx_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(usage_across_a_failover_and_after_delete, fx_teardown),
        cmocka_unit_test_teardown(openapi_documents_every_exchange, fx_teardown),
    };

    return cmocka_run_group_tests(tests, fx_examples_load, fx_examples_free);
}
