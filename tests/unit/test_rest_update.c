/*
 * Update (PUT /deployments/{id}) and resource actions (POST
 * /deployments/{id}/resources/{rid}/actions) of API.md against the real
 * daemon on a sim site: PUT is 202 from CREATE_COMPLETE, UPDATE_COMPLETE and
 * UPDATE_FAILED and 409 from every other status, with the body rules of a
 * create; parameters are merged into the stored ones; scale out keeps the
 * old instance (same uuid), scale in removes what removal_list names, else
 * the newest; an input change restarts the service it reaches; start only
 * from STOPPED and stop only from STARTED (400 otherwise), unknown types
 * 400. The sim inventory shows what the provider holds after each step.
 * The last test holds every exchange against /openapi.json.
 */
#include <unistd.h>

#include "testutil.h"
#include "daemon_fixture.h"
#include "openapi_check.h"

/* A worker node scaled by `count` (and `removal_list`, resource uuids) with a
 * service on each worker. */
static const char scalable[] =
    "tosca_definitions_version: tosca_simple_yaml_1_3\n"
    "capability_types:\n"
    "  test.capabilities.Scalable:\n"
    "    derived_from: tosca.capabilities.Scalable\n"
    "    properties:\n"
    "      count: {type: integer, required: false}\n"
    "      removal_list: {type: list, entry_schema: {type: string}, required: false}\n"
    "node_types:\n"
    "  test.nodes.Worker:\n"
    "    derived_from: orc.nodes.GPUCompute\n"
    "    capabilities:\n"
    "      scalable: {type: test.capabilities.Scalable}\n"
    "topology_template:\n"
    "  inputs:\n"
    "    count: {type: integer, default: 1}\n"
    "    removal_list: {type: list, entry_schema: {type: string}, default: []}\n"
    "    command: {type: string, default: serve-v1}\n"
    "  node_templates:\n"
    "    worker:\n"
    "      type: test.nodes.Worker\n"
    "      capabilities:\n"
    "        scalable:\n"
    "          properties:\n"
    "            min_instances: 0\n"
    "            max_instances: 10\n"
    "            count: {get_input: count}\n"
    "            removal_list: {get_input: removal_list}\n"
    "        host:\n"
    "          properties: {num_cpus: 1, mem_size: 1 GB}\n"
    "    app:\n"
    "      type: orc.nodes.Service\n"
    "      properties: {command: {get_input: command}, port: 8080}\n"
    "      requirements:\n"
    "        - host: worker\n";

/* Room for four workers (one cpu each); provisions take 200 ms and
 * deletions 200 ms, so that in-progress statuses can be seen. */
static const char site[] =
    "sites:\n"
    "  - name: sim-a\n"
    "    driver: sim\n"
    "    config: {inventory: \"@DIR@/sim-a.json\", capacity: {cpus: 4, mem: 64 GiB, gpus: {}},\n"
    "             latency: {provision: 200, deprovision: 200}}\n";

static const char *const env[] = {"ORCHESTRATOR_DEADLINE_MINUTE=300ms", NULL};
static const char *const no_id = "01a23af1-0000-7000-8000-000000000000";

static int setup_all(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

static int free_all(void **state)
{
    (void)state;
    fx_log_clear();
    curl_global_cleanup();
    return 0;
}

static const char *str_of(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s ? s : "";
}

/* {"template": scalable, "parameters": params, FIELDS} */
static char *update_body(const char *params, const char *fields)
{
    json_t *t = json_string(scalable);
    char *quoted = json_dumps(t, JSON_ENCODE_ANY), *out;
    size_t n = strlen(quoted) + strlen(params) + strlen(fields) + 64;

    json_decref(t);
    out = malloc(n);
    assert_non_null(out);
    snprintf(out, n, "{\"template\":%s,\"parameters\":%s%s%s}", quoted, params,
             fields[0] ? "," : "", fields);
    free(quoted);
    return out;
}

static long put(struct fx_daemon *d, const char *uuid, const char *params, const char *fields,
                struct fx_resp *r)
{
    char path[160], *body = update_body(params, fields);
    long status;

    snprintf(path, sizeof(path), "/deployments/%s", uuid);
    status = fx_http(d, "PUT", path, NULL, body, r);
    free(body);
    return status;
}

/* PUT that must be accepted: 202 and no body. */
static void put_ok(struct fx_daemon *d, const char *uuid, const char *params)
{
    struct fx_resp r;

    if (put(d, uuid, params, "", &r) != 202)
        fail_msg("PUT %s with %s: %ld %s", uuid, params, r.status, r.body);
    assert_int_equal(r.len, 0);
    fx_resp_free(&r);
}

static void create_complete(struct fx_daemon *d, const char *params, char uuid[64])
{
    char extra[512];

    snprintf(extra, sizeof(extra), "{\"parameters\":%s}", params);
    json_decref(fx_create(d, scalable, extra, uuid));
    json_decref(fx_wait_status(d, uuid, "CREATE_COMPLETE", 10000));
}

/* The instance index in a physicalId (".../name-<hash>-<index>"). */
static int index_of(const json_t *res)
{
    const char *pid = str_of(res, "physicalId"), *dash = strrchr(pid, '-');

    assert_non_null(dash);
    return atoi(dash + 1);
}

/* The resources of node in a deployment, by index: uuids[i] ("" if none)
 * and their states; returns how many there are. */
static size_t node_resources(struct fx_daemon *d, const char *uuid, const char *node,
                             char uuids[8][64], char states[8][32])
{
    char path[200];
    json_t *page, *res;
    size_t i, n = 0;

    for (i = 0; i < 8; i++)
        uuids[i][0] = states[i][0] = '\0';
    snprintf(path, sizeof(path), "/deployments/%s/resources?size=100", uuid);
    page = fx_get_json(d, path);
    json_array_foreach(json_object_get(page, "content"), i, res)
    {
        int k = index_of(res);
        if (strcmp(str_of(res, "toscaNodeName"), node) != 0)
            continue;
        assert_true(k >= 0 && k < 8);
        snprintf(uuids[k], 64, "%s", str_of(res, "uuid"));
        snprintf(states[k], 32, "%s", str_of(res, "state"));
        n++;
    }
    json_decref(page);
    return n;
}

/* The commands of the running workloads the sim holds for a deployment. */
static size_t running_commands(struct fx_daemon *d, const char *uuid, const char *command)
{
    json_t *inv = fx_sim_inventory(d, "sim-a"), *rec, *wl;
    const char *name, *id;
    size_t n = 0;

    json_object_foreach(json_object_get(inv, "resources"), name, rec)
    {
        if (strcmp(str_of(rec, "deployment"), uuid) != 0)
            continue;
        json_object_foreach(json_object_get(rec, "workloads"), id, wl)
        {
            if (strcmp(str_of(wl, "state"), "running") == 0 &&
                strstr(str_of(wl, "command"), command) != NULL)
                n++;
        }
    }
    json_decref(inv);
    return n;
}

/* When the sim created the resource of node[index] of a deployment (its
 * created_ms; 0 when it holds none): a kept instance keeps its value. */
static long long sim_created(struct fx_daemon *d, const char *uuid, const char *node, int index)
{
    json_t *inv = fx_sim_inventory(d, "sim-a"), *rec;
    const char *name;
    long long at = 0;

    json_object_foreach(json_object_get(inv, "resources"), name, rec)
    {
        if (strcmp(str_of(rec, "deployment"), uuid) == 0 &&
            strcmp(str_of(rec, "node"), node) == 0 &&
            json_integer_value(json_object_get(rec, "index")) == index)
            at = (long long)json_integer_value(json_object_get(rec, "created_ms"));
    }
    json_decref(inv);
    return at;
}

/* ---- PUT: statuses ---- */

static void put_allowed_only_from_complete_statuses(void **state)
{
    char done[64], busy[64], failed[64], path[160];
    struct fx_daemon d;
    struct fx_resp r;

    (void)state;
    fx_start(&d, "test-rest-put", site, env);
    /* CREATE_IN_PROGRESS: 409 */
    json_decref(fx_create(&d, scalable, NULL, busy));
    put(&d, busy, "{}", "", &r);
    fx_assert_error(&r, 409, "CREATE_IN_PROGRESS");
    fx_resp_free(&r);
    /* CREATE_FAILED (five workers do not fit): 409 */
    json_decref(fx_create(&d, scalable, "{\"parameters\":{\"count\":5}}", failed));
    json_decref(fx_wait_status(&d, failed, "CREATE_FAILED", 10000));
    put(&d, failed, "{\"count\":1}", "", &r);
    fx_assert_error(&r, 409, "CREATE_FAILED");
    fx_resp_free(&r);
    json_decref(fx_wait_status(&d, busy, "CREATE_COMPLETE", 10000));
    /* CREATE_COMPLETE: 202, UPDATE_IN_PROGRESS (409 meanwhile), UPDATE_COMPLETE */
    create_complete(&d, "{}", done);
    put_ok(&d, done, "{\"count\":2}");
    put(&d, done, "{\"count\":2}", "", &r);
    fx_assert_error(&r, 409, NULL);
    fx_resp_free(&r);
    json_decref(fx_wait_status(&d, done, "UPDATE_COMPLETE", 10000));
    /* UPDATE_COMPLETE: 202 again (with a trailing slash) */
    snprintf(path, sizeof(path), "/deployments/%s/", done);
    {
        char *body = update_body("{\"count\":1}", "");
        assert_int_equal(fx_http(&d, "PUT", path, NULL, body, &r), 202);
        fx_resp_free(&r);
        free(body);
    }
    json_decref(fx_wait_status(&d, done, "UPDATE_COMPLETE", 10000));
    /* DELETE_IN_PROGRESS: 409 */
    snprintf(path, sizeof(path), "/deployments/%s", busy);
    assert_int_equal(fx_http(&d, "DELETE", path, NULL, NULL, &r), 204);
    fx_resp_free(&r);
    put(&d, busy, "{}", "", &r);
    fx_assert_error(&r, 409, "DELETE_IN_PROGRESS");
    fx_resp_free(&r);
    /* unknown, malformed */
    put(&d, no_id, "{}", "", &r);
    fx_assert_error(&r, 404, "doesn't exist");
    fx_resp_free(&r);
    fx_expect_error(&d, "PUT", "/deployments/nope", "{}", 404, "doesn't exist");
    fx_stop(&d);
}

/* UPDATE_FAILED (a scale out past the capacity) takes a PUT that fixes it. */
static void put_from_update_failed(void **state)
{
    char uuid[64], uuids[8][64], states[8][32];
    struct fx_daemon d;
    json_t *dep;

    (void)state;
    fx_start(&d, "test-rest-putfail", site, env);
    create_complete(&d, "{}", uuid);
    put_ok(&d, uuid, "{\"count\":6}");
    dep = fx_wait_status(&d, uuid, "UPDATE_FAILED", 10000);
    assert_true(str_of(dep, "statusReason")[0] != '\0');
    json_decref(dep);
    put_ok(&d, uuid, "{\"count\":2}");
    json_decref(fx_wait_status(&d, uuid, "UPDATE_COMPLETE", 10000));
    assert_int_equal(node_resources(&d, uuid, "worker", uuids, states), 2);
    assert_int_equal(fx_sim_count(&d, "sim-a", uuid), 2);
    fx_stop(&d);
}

/* The body of a PUT follows the rules of a create. */
static void put_body_rules(void **state)
{
    char uuid[64], path[160];
    struct fx_daemon d;
    struct fx_resp r;

    (void)state;
    fx_start(&d, "test-rest-putbody", site, env);
    create_complete(&d, "{}", uuid);
    snprintf(path, sizeof(path), "/deployments/%s", uuid);
    fx_expect_error(&d, "PUT", path, "{\"template\":", 400, "invalid JSON");
    fx_expect_error(&d, "PUT", path, "[]", 400, "the body must be a JSON object");
    fx_expect_error(&d, "PUT", path, "{\"template\":\"\"}", 400,
                    "A TOSCA template must be provided");
    fx_expect_error(&d, "PUT", path, "{\"template\":7}", 400, "A TOSCA template must be provided");
    put(&d, uuid, "[1]", "", &r);
    fx_assert_error(&r, 400, "parameters must be a JSON object");
    fx_resp_free(&r);
    put(&d, uuid, "{}", "\"timeoutMins\":0", &r);
    fx_assert_error(&r, 400, "timeoutMins must be an integer >= 1");
    fx_resp_free(&r);
    put(&d, uuid, "{}", "\"keepLastAttempt\":\"maybe\"", &r);
    fx_assert_error(&r, 400, "keepLastAttempt must be true or false");
    fx_resp_free(&r);
    put(&d, uuid, "{}", "\"callback\":\"gopher://x\"", &r);
    fx_assert_error(&r, 400, "callback must be an http:");
    fx_resp_free(&r);
    put(&d, uuid, "{\"count\":\"many\"}", "", &r);
    fx_assert_error(&r, 400, "template.yaml:");
    fx_resp_free(&r);
    fx_expect_error(&d, "PUT", path,
                    "{\"template\":\"tosca_definitions_version: tosca_simple_yaml_1_3\\n"
                    "topology_template:\\n  node_templates:\\n    a: {type: Nope}\\n\"}",
                    400, "template.yaml:4:15");
    /* none of that changed it */
    json_decref(fx_wait_status(&d, uuid, "CREATE_COMPLETE", 1000));
    /* unknown fields are ignored */
    put(&d, uuid, "{}", "\"colour\":\"red\"", &r);
    assert_int_equal(r.status, 202);
    fx_resp_free(&r);
    json_decref(fx_wait_status(&d, uuid, "UPDATE_COMPLETE", 10000));
    fx_stop(&d);
}

/* ---- PUT: what it does ---- */

/* Parameters are merged: a PUT naming only count keeps the command, one
 * naming only the command keeps the count; the changed command restarts the
 * services (same resources, same compute nodes). */
static void put_merges_parameters_and_restarts_services(void **state)
{
    char uuid[64], w[8][64], ws[8][32], a[8][64], as[8][32], w2[8][64], a2[8][64];
    struct fx_daemon d;
    long provisioned;

    (void)state;
    fx_start(&d, "test-rest-merge", site, env);
    create_complete(&d, "{\"command\":\"serve-a\"}", uuid);
    put_ok(&d, uuid, "{\"count\":2}");
    json_decref(fx_wait_status(&d, uuid, "UPDATE_COMPLETE", 10000));
    assert_int_equal(node_resources(&d, uuid, "worker", w, ws), 2);
    assert_int_equal(node_resources(&d, uuid, "app", a, as), 2);
    assert_string_equal(as[0], "STARTED");
    assert_string_equal(as[1], "STARTED");
    assert_int_equal(running_commands(&d, uuid, "serve-a"), 2); /* the command was kept */
    provisioned = fx_sim_counter(&d, "sim-a", "provisioned");
    /* a new command: the services restart with it, nothing else changes */
    put_ok(&d, uuid, "{\"command\":\"serve-b\"}");
    json_decref(fx_wait_status(&d, uuid, "UPDATE_COMPLETE", 10000));
    assert_int_equal(node_resources(&d, uuid, "worker", w2, ws), 2); /* the count was kept */
    assert_int_equal(node_resources(&d, uuid, "app", a2, as), 2);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(w2[i], w[i]);
        assert_string_equal(a2[i], a[i]);
        assert_string_equal(as[i], "STARTED");
    }
    assert_int_equal(running_commands(&d, uuid, "serve-b"), 2);
    assert_int_equal(running_commands(&d, uuid, "serve-a"), 0);
    assert_int_equal(fx_sim_counter(&d, "sim-a", "provisioned"), provisioned);
    fx_stop(&d);
}

/* Scale out 1 -> 3 keeps the first; scale in with removal_list removes that
 * one; scale in without removes the newest. */
static void scale_out_and_in(void **state)
{
    char uuid[64], first[64], w[8][64], ws[8][32], params[256];
    struct fx_daemon d;
    long long born;

    (void)state;
    fx_start(&d, "test-rest-scale", site, env);
    create_complete(&d, "{}", uuid);
    assert_int_equal(node_resources(&d, uuid, "worker", w, ws), 1);
    snprintf(first, sizeof(first), "%s", w[0]);
    born = sim_created(&d, uuid, "worker", 0);
    assert_true(born > 0);
    /* out to three: two more at the provider, the first one untouched */
    put_ok(&d, uuid, "{\"count\":3}");
    json_decref(fx_wait_status(&d, uuid, "UPDATE_COMPLETE", 10000));
    assert_int_equal(node_resources(&d, uuid, "worker", w, ws), 3);
    assert_string_equal(w[0], first);
    if (sim_created(&d, uuid, "worker", 0) != born)
        fail_msg("scaling out re-created worker[0] at the provider (provisioned %ld times)",
                 fx_sim_counter(&d, "sim-a", "provisioned"));
    assert_int_equal(fx_sim_counter(&d, "sim-a", "provisioned"), 3);
    for (int i = 0; i < 3; i++)
        assert_string_equal(ws[i], "STARTED");
    assert_int_equal(fx_sim_count(&d, "sim-a", uuid), 3);
    /* in to two, removing the middle one by its uuid */
    {
        char middle[64], last[64];
        snprintf(middle, sizeof(middle), "%s", w[1]);
        snprintf(last, sizeof(last), "%s", w[2]);
        snprintf(params, sizeof(params), "{\"count\":2,\"removal_list\":[\"%s\"]}", middle);
        put_ok(&d, uuid, params);
        json_decref(fx_wait_status(&d, uuid, "UPDATE_COMPLETE", 10000));
        assert_int_equal(node_resources(&d, uuid, "worker", w, ws), 2);
        assert_string_equal(w[0], first);
        assert_string_equal(w[1], "");
        assert_string_equal(w[2], last);
        snprintf(params, sizeof(params), "/deployments/%s/resources/%s", uuid, middle);
        fx_expect_error(&d, "GET", params, NULL, 404, "doesn't exist");
    }
    assert_int_equal(fx_sim_count(&d, "sim-a", uuid), 2);
    /* in to one, no removal_list: the newest goes, the first stays */
    put_ok(&d, uuid, "{\"count\":1,\"removal_list\":[]}");
    json_decref(fx_wait_status(&d, uuid, "UPDATE_COMPLETE", 10000));
    assert_int_equal(node_resources(&d, uuid, "worker", w, ws), 1);
    assert_string_equal(w[0], first);
    assert_int_equal(fx_sim_count(&d, "sim-a", uuid), 1);
    assert_int_equal(sim_created(&d, uuid, "worker", 0), born);
    fx_stop(&d);
}

/* ---- resource actions ---- */

static long action(struct fx_daemon *d, const char *uuid, const char *rid, const char *body,
                   struct fx_resp *r)
{
    char path[200];

    snprintf(path, sizeof(path), "/deployments/%s/resources/%s/actions", uuid, rid);
    return fx_http(d, "POST", path, NULL, body, r);
}

static void action_ok(struct fx_daemon *d, const char *uuid, const char *rid, const char *type)
{
    char body[64];
    struct fx_resp r;

    snprintf(body, sizeof(body), "{\"type\":\"%s\"}", type);
    if (action(d, uuid, rid, body, &r) != 202)
        fail_msg("%s of %s: %ld %s", type, rid, r.status, r.body);
    assert_int_equal(r.len, 0);
    fx_resp_free(&r);
}

static void action_400(struct fx_daemon *d, const char *uuid, const char *rid, const char *body,
                       const char *want)
{
    struct fx_resp r;

    action(d, uuid, rid, body, &r);
    fx_assert_error(&r, 400, want);
    fx_resp_free(&r);
}

/* Waits until the resource of node index 0 is in state st. */
static void wait_state(struct fx_daemon *d, const char *uuid, const char *node, const char *st)
{
    char u[8][64], s[8][32];

    for (int i = 0; i < 500; i++) {
        node_resources(d, uuid, node, u, s);
        if (strcmp(s[0], st) == 0)
            return;
        fx_sleep_ms(10);
    }
    fail_msg("%s[0] of %s is %s, not %s", node, uuid, s[0], st);
}

static void start_and_stop_actions(void **state)
{
    char uuid[64], w[8][64], ws[8][32], a[8][64], as[8][32], path[256];
    struct fx_daemon d;
    struct fx_resp r;

    (void)state;
    fx_start(&d, "test-rest-actions", site, env);
    create_complete(&d, "{}", uuid);
    node_resources(&d, uuid, "worker", w, ws);
    node_resources(&d, uuid, "app", a, as);
    assert_string_equal(as[0], "STARTED");
    /* a service: start only from STOPPED, stop only from STARTED */
    action_400(&d, uuid, a[0], "{\"type\":\"start\"}", NULL);
    action_ok(&d, uuid, a[0], "stop");
    wait_state(&d, uuid, "app", "STOPPED");
    assert_int_equal(running_commands(&d, uuid, "serve-v1"), 0);
    action_400(&d, uuid, a[0], "{\"type\":\"stop\"}", NULL);
    action_ok(&d, uuid, a[0], "start");
    wait_state(&d, uuid, "app", "STARTED");
    assert_int_equal(running_commands(&d, uuid, "serve-v1"), 1);
    /* a compute node: its workload follows it */
    action_ok(&d, uuid, w[0], "stop");
    wait_state(&d, uuid, "worker", "STOPPED");
    wait_state(&d, uuid, "app", "STOPPED");
    action_400(&d, uuid, w[0], "{\"type\":\"stop\"}", NULL);
    snprintf(path, sizeof(path), "/deployments/%s/resources/%s/actions/", uuid, w[0]);
    assert_int_equal(fx_http(&d, "POST", path, NULL, "{\"type\":\"start\"}", &r), 202);
    fx_resp_free(&r);
    wait_state(&d, uuid, "worker", "STARTED");
    wait_state(&d, uuid, "app", "STARTED");
    /* bad requests */
    action_400(&d, uuid, a[0], "{\"type\":\"reboot\"}", "type must be");
    action_400(&d, uuid, a[0], "{}", "type must be");
    action_400(&d, uuid, a[0], "{\"type\":5}", "type must be");
    action_400(&d, uuid, a[0], "{\"type\"", "invalid JSON");
    action(&d, uuid, no_id, "{\"type\":\"stop\"}", &r);
    fx_assert_error(&r, 404, "doesn't exist");
    fx_resp_free(&r);
    action(&d, uuid, "bad", "{\"type\":\"stop\"}", &r);
    fx_assert_error(&r, 404, "doesn't exist");
    fx_resp_free(&r);
    action(&d, no_id, a[0], "{\"type\":\"stop\"}", &r);
    fx_assert_error(&r, 404, "doesn't exist");
    fx_resp_free(&r);
    fx_stop(&d);
}

/* ---- the OpenAPI document holds for every exchange above ---- */

static void openapi_documents_every_exchange(void **state)
{
    struct fx_daemon d;

    (void)state;
    fx_start(&d, "test-rest-upd-openapi", site, env);
    oa_check_recorded(&d);
    fx_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(put_allowed_only_from_complete_statuses, fx_teardown),
        cmocka_unit_test_teardown(put_from_update_failed, fx_teardown),
        cmocka_unit_test_teardown(put_body_rules, fx_teardown),
        cmocka_unit_test_teardown(put_merges_parameters_and_restarts_services, fx_teardown),
        cmocka_unit_test_teardown(scale_out_and_in, fx_teardown),
        cmocka_unit_test_teardown(start_and_stop_actions, fx_teardown),
        cmocka_unit_test_teardown(openapi_documents_every_exchange, fx_teardown),
    };

    return cmocka_run_group_tests(tests, setup_all, free_all);
}
