/*
 * Updates, user actions and deadlines of the deployment engine, on the sim
 * driver over an on-disk store: scale out keeps the existing instances and
 * adds new ones, scale in removes the instances removal_list names first and
 * then the newest (their rows go, the sim cloud holds exactly what is left),
 * a changed workload specification restarts the workload only, a changed
 * compute specification replaces the compute node and restarts what runs on
 * it, an update left in progress by a stop is finished by the next start
 * without duplicates, stop/start of a compute node takes its workloads along,
 * providerTimeoutMins moves to the next site and timeoutMins ends the create.
 */
#include "testutil.h"
#include "engine_fixture.h"

static const char scale_tpl[] =
    "tosca_definitions_version: tosca_simple_yaml_1_3\n"
    "topology_template:\n"
    "  inputs:\n"
    "    count: {type: integer, default: 1}\n"
    "    cpus: {type: integer, default: 1}\n"
    "    command: {type: string, default: serve v1}\n"
    "    removal: {type: list, entry_schema: {type: string}, default: []}\n"
    "  node_templates:\n"
    "    worker:\n"
    "      type: orc.nodes.GPUCompute\n"
    "      capabilities:\n"
    "        host: {properties: {num_cpus: {get_input: cpus}, mem_size: 1 GB}}\n"
    "        scalable: {properties: {count: {get_input: count},\n"
    "                                removal_list: {get_input: removal}}}\n"
    "    app:\n"
    "      type: orc.nodes.Service\n"
    "      properties: {command: {get_input: command}, port: 8000}\n"
    "      requirements: [{host: worker}]\n"
    "  outputs:\n"
    "    address: {value: {get_attribute: [worker, public_address]}}\n";

static const char one_site[] =
    "sites:\n"
    "  - name: one\n"
    "    driver: sim\n"
    "    config: {inventory: \"@DIR@/one.json\", capacity: {cpus: 64, mem: 256 GB}}\n";

static const char slow_site[] =
    "sites:\n"
    "  - name: one\n"
    "    driver: sim\n"
    "    config: {inventory: \"@DIR@/one.json\", capacity: {cpus: 64, mem: 256 GB},\n"
    "             latency: {default: {fixed_ms: 150}}}\n";

static orc_dep_status_t final_status(struct fx *f, const char *uuid)
{
    orc_deployment_t *d = wait_final(f, uuid);
    orc_dep_status_t st = d->status;

    if (st != ORC_DEP_CREATE_COMPLETE && st != ORC_DEP_UPDATE_COMPLETE &&
        st != ORC_DEP_DELETE_COMPLETE)
        fprintf(stderr, "status %s: %s\n", orc_dep_status_name(st),
                d->status_reason ? d->status_reason : "");
    orc_deployment_free(d);
    return st;
}

static void create_scaled(struct fx *f, const char *inputs, char *uuid)
{
    orc_deployment_t dep = {.provider_timeout_mins = 5};

    submit_text(f, scale_tpl, inputs, &dep, uuid);
    assert_int_equal(final_status(f, uuid), ORC_DEP_CREATE_COMPLETE);
}

/* Indices of a node's resources, as "0,2" (all STARTED, or the test fails). */
static void indices(struct fx *f, const char *uuid, const char *node, char *out, size_t size)
{
    orc_resource_list_t l;
    size_t n = 0;

    node_resources(f, uuid, node, &l);
    out[0] = '\0';
    for (size_t i = 0; i < l.count; i++) {
        assert_string_equal(orc_res_state_name(l.items[i].state), "STARTED");
        n += (size_t)snprintf(out + n, size - n, "%s%d", i ? "," : "", l.items[i].instance_index);
    }
    orc_resource_list_clear(&l);
}

static void uuid_at(struct fx *f, const char *uuid, const char *node, int index, char *out)
{
    orc_resource_list_t l;

    node_resources(f, uuid, node, &l);
    out[0] = '\0';
    for (size_t i = 0; i < l.count; i++)
        if (l.items[i].instance_index == index)
            strcpy(out, l.items[i].uuid);
    orc_resource_list_clear(&l);
    assert_true(out[0] != '\0');
}

static void delete_all(struct fx *f, const char *uuid, const char *site)
{
    assert_int_equal(
        orc_store_deployment_set_status(f->store, uuid, 0, ORC_DEP_DELETE_IN_PROGRESS, NULL, NULL),
        0);
    assert_int_equal(orc_engine_delete(f->eng, uuid), 0);
    assert_int_equal(final_status(f, uuid), ORC_DEP_DELETE_COMPLETE);
    assert_int_equal(sim_resources(f, site), 0);
}

static void scale_out_then_in_with_removal_list(void **state)
{
    struct fx *f = *state;
    char uuid[ORC_UUID_LEN], first[ORC_UUID_LEN], second[ORC_UUID_LEN], after[ORC_UUID_LEN];
    char idx[64], in[256];

    start_engine(f, one_site);
    create_scaled(f, "{}", uuid);
    uuid_at(f, uuid, "worker", 0, first);

    update_with(f, uuid, "{\"count\": 3}");
    assert_int_equal(final_status(f, uuid), ORC_DEP_UPDATE_COMPLETE);
    indices(f, uuid, "worker", idx, sizeof(idx));
    assert_string_equal(idx, "0,1,2");
    indices(f, uuid, "app", idx, sizeof(idx));
    assert_string_equal(idx, "0,1,2"); /* one workload per compute instance */
    uuid_at(f, uuid, "worker", 0, after);
    assert_string_equal(after, first); /* the old instance is kept, not made again */
    assert_false(has_message(f, uuid, "worker[0]: DELETING"));
    assert_false(has_message(f, uuid, "app[0]: STOPPING"));
    assert_int_equal(sim_resources(f, "one"), 3);

    /* removal_list names instance 1: it goes, though it is not the newest */
    uuid_at(f, uuid, "worker", 1, second);
    snprintf(in, sizeof(in), "{\"count\": 2, \"removal\": [\"%s\"]}", second);
    update_with(f, uuid, in);
    assert_int_equal(final_status(f, uuid), ORC_DEP_UPDATE_COMPLETE);
    indices(f, uuid, "worker", idx, sizeof(idx));
    assert_string_equal(idx, "0,2");
    indices(f, uuid, "app", idx, sizeof(idx));
    assert_string_equal(idx, "0,2");
    assert_int_equal(sim_resources(f, "one"), 2);

    /* without a list the newest goes; growing again takes the free index */
    update_with(f, uuid, "{\"count\": 1, \"removal\": []}");
    assert_int_equal(final_status(f, uuid), ORC_DEP_UPDATE_COMPLETE);
    indices(f, uuid, "worker", idx, sizeof(idx));
    assert_string_equal(idx, "0");
    assert_int_equal(sim_resources(f, "one"), 1);
    update_with(f, uuid, "{\"count\": 2}");
    assert_int_equal(final_status(f, uuid), ORC_DEP_UPDATE_COMPLETE);
    indices(f, uuid, "worker", idx, sizeof(idx));
    assert_string_equal(idx, "0,1");
    assert_int_equal(sim_resources(f, "one"), 2);

    delete_all(f, uuid, "one");
    stop_engine(f);
}

/* A new command restarts the service; the compute node stays. */
static void changed_workload_restarts_only_it(void **state)
{
    struct fx *f = *state;
    char uuid[ORC_UUID_LEN], before[ORC_UUID_LEN], after[ORC_UUID_LEN];

    start_engine(f, one_site);
    create_scaled(f, "{}", uuid);
    uuid_at(f, uuid, "worker", 0, before);
    assert_false(has_message(f, uuid, "app[0]: STOPPED"));
    update_with(f, uuid, "{\"command\": \"serve v2\"}");
    assert_int_equal(final_status(f, uuid), ORC_DEP_UPDATE_COMPLETE);
    assert_true(has_message(f, uuid, "app[0]: STOPPING"));
    assert_true(has_message(f, uuid, "app[0]: STOPPED"));
    assert_false(has_message(f, uuid, "worker[0]: DELETING"));
    uuid_at(f, uuid, "worker", 0, after);
    assert_string_equal(before, after);
    assert_int_equal(sim_resources(f, "one"), 1);

    /* the same parameters again: nothing to do, nothing restarts */
    update_with(f, uuid, "{\"command\": \"serve v2\"}");
    assert_int_equal(final_status(f, uuid), ORC_DEP_UPDATE_COMPLETE);
    delete_all(f, uuid, "one");
    stop_engine(f);
}

/* More CPUs replace the compute node, and its service starts on the new one. */
static void changed_compute_is_replaced(void **state)
{
    struct fx *f = *state;
    char uuid[ORC_UUID_LEN];
    orc_deployment_t *d;

    start_engine(f, one_site);
    create_scaled(f, "{}", uuid);
    update_with(f, uuid, "{\"cpus\": 2}");
    assert_int_equal(final_status(f, uuid), ORC_DEP_UPDATE_COMPLETE);
    assert_true(has_message(f, uuid, "worker[0]: DELETING"));
    assert_true(has_message(f, uuid, "app[0]: STARTING"));
    assert_int_equal(sim_resources(f, "one"), 1);
    assert_int_equal(orc_store_deployment_get(f->store, uuid, &d), 0);
    assert_non_null(json_object_get(d->outputs, "address")); /* evaluated again */
    orc_deployment_free(d);
    delete_all(f, uuid, "one");
    stop_engine(f);
}

/* An update in flight when the engine stops is finished by the next start. */
static void update_resumes_after_restart(void **state)
{
    struct fx *f = *state;
    char uuid[ORC_UUID_LEN], idx[64];

    start_engine(f, slow_site);
    create_scaled(f, "{}", uuid);
    update_with(f, uuid, "{\"count\": 3}");
    for (int i = 0; i < 40; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_true(orc_engine_busy(f->eng, uuid));
    stop_engine(f);
    start_engine(f, slow_site);
    assert_true(orc_engine_busy(f->eng, uuid));
    assert_int_equal(final_status(f, uuid), ORC_DEP_UPDATE_COMPLETE);
    indices(f, uuid, "worker", idx, sizeof(idx));
    assert_string_equal(idx, "0,1,2");
    assert_int_equal(sim_resources(f, "one"), 3); /* nothing made twice */
    delete_all(f, uuid, "one");
    stop_engine(f);
}

/* An update is only taken from UPDATE_IN_PROGRESS, and not while busy. */
static void update_needs_its_status(void **state)
{
    struct fx *f = *state;
    char uuid[ORC_UUID_LEN];

    start_engine(f, one_site);
    create_scaled(f, "{}", uuid);
    assert_int_equal(orc_engine_update(f->eng, uuid), ORC_ECONFLICT); /* CREATE_COMPLETE */
    assert_int_equal(orc_engine_update(f->eng, "01234567-89ab-7def-8123-456789abcdef"),
                     ORC_ENOTFOUND);
    stop_engine(f);
}

static orc_res_state_t state_of(struct fx *f, const char *uuid, const char *node)
{
    orc_resource_list_t l;
    orc_res_state_t st;

    node_resources(f, uuid, node, &l);
    assert_int_equal(l.count, 1);
    st = l.items[0].state;
    orc_resource_list_clear(&l);
    return st;
}

static void act(struct fx *f, const char *uuid, const char *node, bool start)
{
    char rid[ORC_UUID_LEN], why[256];

    uuid_at(f, uuid, node, 0, rid);
    assert_int_equal(orc_engine_resource_action(f->eng, uuid, rid, start, why, sizeof(why)), 0);
    for (int i = 0; i < 200000 && orc_engine_busy(f->eng, uuid); i++)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static void stop_and_start_follow_the_host(void **state)
{
    struct fx *f = *state;
    char uuid[ORC_UUID_LEN], rid[ORC_UUID_LEN], why[256];

    start_engine(f, one_site);
    create_scaled(f, "{}", uuid);
    uuid_at(f, uuid, "worker", 0, rid);
    assert_int_equal(orc_engine_resource_action(f->eng, uuid, rid, true, why, sizeof(why)),
                     ORC_EINVAL); /* start needs STOPPED */
    assert_non_null(strstr(why, "STARTED"));

    act(f, uuid, "worker", false);
    assert_int_equal(state_of(f, uuid, "worker"), ORC_RES_STOPPED);
    assert_int_equal(state_of(f, uuid, "app"), ORC_RES_STOPPED);
    act(f, uuid, "worker", true);
    assert_int_equal(state_of(f, uuid, "worker"), ORC_RES_STARTED);
    assert_int_equal(state_of(f, uuid, "app"), ORC_RES_STARTED);

    act(f, uuid, "app", false); /* a workload alone */
    assert_int_equal(state_of(f, uuid, "app"), ORC_RES_STOPPED);
    assert_int_equal(state_of(f, uuid, "worker"), ORC_RES_STARTED);
    act(f, uuid, "app", true);
    assert_int_equal(state_of(f, uuid, "app"), ORC_RES_STARTED);
    delete_all(f, uuid, "one");
    stop_engine(f);
}

/* providerTimeoutMins: a site slower than the deadline is left for the next
 * one (minutes of 300 ms here). */
static void slow_site_times_out_to_the_next(void **state)
{
    struct fx *f = *state;
    static const char sites[] =
        "sites:\n"
        "  - name: slow\n"
        "    driver: sim\n"
        "    priority: 20\n"
        "    config: {inventory: \"@DIR@/slow.json\", latency: {default: {fixed_ms: 1500}}}\n"
        "  - name: fast\n"
        "    driver: sim\n"
        "    priority: 10\n"
        "    config: {inventory: \"@DIR@/fast.json\"}\n";
    orc_deployment_t dep = {.provider_timeout_mins = 1};
    orc_attempt_list_t l = {0};
    char uuid[ORC_UUID_LEN];

    f->opts.deadline_minute_ms = 300;
    start_engine(f, sites);
    submit_text(f, scale_tpl, "{}", &dep, uuid);
    assert_int_equal(final_status(f, uuid), ORC_DEP_CREATE_COMPLETE);
    assert_int_equal(orc_store_attempt_list(f->store, uuid, &l), 0);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[0].site_name, "slow");
    assert_int_equal(l.items[0].result, ORC_ATTEMPT_FAILED);
    assert_non_null(strstr(l.items[0].error, "providerTimeoutMins"));
    assert_string_equal(l.items[1].site_name, "fast");
    orc_attempt_list_clear(&l);
    assert_int_equal(sim_resources(f, "slow"), 0); /* cleaned up before the next site */
    stop_engine(f);
}

/* timeoutMins ends the whole create, whatever sites are left. */
static void overall_timeout_fails_the_create(void **state)
{
    struct fx *f = *state;
    static const char sites[] =
        "sites:\n"
        "  - name: slow\n"
        "    driver: sim\n"
        "    config: {inventory: \"@DIR@/slow.json\", latency: {default: {fixed_ms: 1500}}}\n"
        "  - name: slow2\n"
        "    driver: sim\n"
        "    config: {inventory: \"@DIR@/slow2.json\", latency: {default: {fixed_ms: 1500}}}\n";
    orc_deployment_t dep = {.timeout_mins = 1, .provider_timeout_mins = 1};
    orc_deployment_t *d;
    char uuid[ORC_UUID_LEN];

    f->opts.deadline_minute_ms = 300;
    start_engine(f, sites);
    submit_text(f, scale_tpl, "{}", &dep, uuid);
    d = wait_final(f, uuid);
    assert_int_equal(d->status, ORC_DEP_CREATE_FAILED);
    assert_non_null(strstr(d->status_reason, "timeoutMins"));
    assert_null(strstr(d->status_reason, "slow2")); /* no second site after the deadline */
    orc_deployment_free(d);
    stop_engine(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(scale_out_then_in_with_removal_list, setup, teardown),
        cmocka_unit_test_setup_teardown(changed_workload_restarts_only_it, setup, teardown),
        cmocka_unit_test_setup_teardown(changed_compute_is_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(update_resumes_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(update_needs_its_status, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_and_start_follow_the_host, setup, teardown),
        cmocka_unit_test_setup_teardown(slow_site_times_out_to_the_next, setup, teardown),
        cmocka_unit_test_setup_teardown(overall_timeout_fails_the_create, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
