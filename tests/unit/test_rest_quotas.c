/*
 * Quotas per user group (/quotas, docs/api.md "Quotas") against the real daemon on a sim
 * site: an admin sets a group's most deployments and GPUs (by model and in all); creates
 * of that group past either are a 403 that names the limit, the usage and the ask, while
 * other groups and deployments without a group are not held; an update counts what the
 * deployment holds already; the quota shows its usage; bad bodies are 400s; removed, the
 * group has no limit. The last test holds every exchange against /openapi.json.
 */
#include <unistd.h>

#include "testutil.h"
#include "daemon_fixture.h"
#include "openapi_check.h"

static const char site[] = "sites:\n"
                           "  - name: sim-a\n"
                           "    driver: sim\n"
                           "    config: {inventory: \"@DIR@/sim-a.json\", capacity: {cpus: 256,\n"
                           "             mem: 1024 GiB, gpus: {A100: 16, T4: 8}}}\n";

/* A training deployment of group (NULL: none) asking for gpus of model: its status. */
static long create(struct fx_daemon *d, const char *group, int gpus, const char *model,
                   char uuid[64], struct fx_resp *r)
{
    json_t *b = json_pack("{ss s{si ss}}", "template", fx_training, "parameters", "num_gpus", gpus,
                          "gpu_model", model);
    char *body;
    long status;

    if (group)
        json_object_set_new(b, "userGroup", json_string(group));
    body = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    status = fx_http(d, "POST", "/deployments", NULL, body, r);
    free(body);
    if (uuid && status == 201)
        snprintf(uuid, 64, "%s", json_string_value(json_object_get(r->json, "uuid")));
    return status;
}

static void create_ok(struct fx_daemon *d, const char *group, int gpus, const char *model,
                      char uuid[64])
{
    struct fx_resp r;

    if (create(d, group, gpus, model, uuid, &r) != 201)
        fail_msg("create (%s, %d %s): %ld %s", group ? group : "-", gpus, model, r.status, r.body);
    fx_resp_free(&r);
}

static void create_refused(struct fx_daemon *d, const char *group, int gpus, const char *model,
                           const char *want)
{
    struct fx_resp r;

    create(d, group, gpus, model, NULL, &r);
    fx_assert_error(&r, 403, want);
    fx_resp_free(&r);
}

static void limits_by_group(void **state)
{
    struct fx_daemon d;
    struct fx_resp r;
    char first[64], uuid[64], path[128];
    json_t *q;

    (void)state;
    fx_start(&d, "test-quotas", site, NULL);
    q = fx_get_json(&d, "/quotas");
    assert_int_equal(json_array_size(json_object_get(q, "content")), 0);
    json_decref(q);
    assert_int_equal(fx_http(&d, "PUT", "/quotas/team-a", NULL,
                             "{\"max_deployments\": 2, \"max_gpus\": {\"A100\": 3, \"*\": 4}}", &r),
                     200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "max_deployments")), 2);
    fx_resp_free(&r);
    /* GPUs by model */
    create_ok(&d, "team-a", 2, "A100", first);
    create_refused(&d, "team-a", 2, "A100",
                   "quota of group team-a: A100 GPUs: 2 in use and 2 asked, the most is 3");
    create_ok(&d, "team-a", 1, "A100", uuid);
    /* deployments */
    create_refused(&d, "team-a", 0, "",
                   "quota of group team-a: deployments: 2 in use and 1 "
                   "asked, the most is 2");
    /* others are not held */
    create_ok(&d, "team-b", 8, "A100", uuid);
    create_ok(&d, NULL, 4, "A100", uuid);
    /* the usage */
    q = fx_get_json(&d, "/quotas/team-a");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(q, "usage"), "deployments")), 2);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(q, "usage"), "gpus"), "A100")),
                     3);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_object_get(q, "usage"), "gpus"), "*")),
                     3);
    json_decref(q);
    q = fx_get_json(&d, "/quotas");
    assert_int_equal(json_array_size(json_object_get(q, "content")), 1);
    json_decref(q);
    /* an update counts what the deployment holds: 2 of the 3 A100 are its own */
    json_decref(fx_wait_status(&d, first, "CREATE_COMPLETE", 10000));
    snprintf(path, sizeof(path), "/deployments/%s", first);
    fx_expect_error(&d, "PUT", path, "{\"parameters\": {\"num_gpus\": 3}}", 403,
                    "A100 GPUs: 1 in use and 3 asked, the most is 3");
    assert_int_equal(fx_http(&d, "PUT", path, NULL, "{\"parameters\": {\"num_gpus\": 2}}", &r),
                     202);
    fx_resp_free(&r);
    /* bad bodies and names */
    fx_expect_error(&d, "PUT", "/quotas/team-a", "{\"max_deployments\": -1}", 400,
                    "max_deployments must be an integer >= 0");
    fx_expect_error(&d, "PUT", "/quotas/team-a", "{\"max_gpus\": {\"A100\": \"x\"}}", 400,
                    "max_gpus.A100 must be an integer >= 0");
    fx_expect_error(&d, "PUT", "/quotas/team-a", "{\"max_gpus\": [1]}", 400,
                    "max_gpus must be an object");
    fx_expect_error(&d, "PUT", "/quotas/team-a", "[1]", 400, "the body must be a JSON object");
    fx_expect_error(&d, "GET", "/quotas/team-z", NULL, 404, "group team-z has no quota");
    /* removed: no limit */
    assert_int_equal(fx_http(&d, "DELETE", "/quotas/team-a", NULL, NULL, &r), 204);
    fx_resp_free(&r);
    fx_expect_error(&d, "DELETE", "/quotas/team-a", NULL, 404, "has no quota");
    create_ok(&d, "team-a", 4, "A100", uuid);
    fx_stop(&d);
}

static void openapi_documents_every_exchange(void **state)
{
    struct fx_daemon d;

    (void)state;
    fx_start(&d, "test-quotas-openapi", site, NULL);
    oa_check_recorded(&d);
    fx_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(limits_by_group, fx_teardown),
        cmocka_unit_test_teardown(openapi_documents_every_exchange, fx_teardown),
    };

    return cmocka_run_group_tests(tests, fx_examples_load, fx_examples_free);
}
