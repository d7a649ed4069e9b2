/*
 * The template catalog (/templates, docs/api.md "Templates") against the real daemon
 * over HTTP: seeded from a catalog directory (valid templates in, an invalid one and a
 * badly named one left out with a logged reason, other files ignored), the default
 * directory (the examples), list with search, tags, paging and the retired filter, show
 * with the inputs as written and as a JSON Schema, the template text; deploying an entry
 * by name (POST /deployments with templateName) to CREATE_COMPLETE on a sim site, and
 * the refusals (unknown, retired, both template and templateName, a parameter its input
 * refuses); publishing (201, again 200, an invalid template 400 with file:line:col, bad
 * names and bodies), retiring (seeded and published), publishing back, and all of it kept
 * across a restart. The last test holds every exchange against /openapi.json.
 */
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "daemon_fixture.h"
#include "openapi_check.h"

static const char site[] = "sites:\n"
                           "  - name: sim-a\n"
                           "    driver: sim\n"
                           "    config: {inventory: \"@DIR@/sim-a.json\", capacity: {cpus: 64,\n"
                           "             mem: 256 GiB, gpus: {A100: 8}}}\n";

/* A training job on one node; epochs limited to 1..100, the GPU model to two. */
static const char trainer[] = "tosca_definitions_version: tosca_simple_yaml_1_3\n"
                              "description: Trains a model on one node\n"
                              "metadata:\n"
                              "  display_name: Trainer\n"
                              "  tag: training\n"
                              "  icon: https://example.org/trainer.png\n"
                              "topology_template:\n"
                              "  inputs:\n"
                              "    epochs:\n"
                              "      type: integer\n"
                              "      description: Passes over the data\n"
                              "      default: 2\n"
                              "      constraints: [ { in_range: [1, 100] } ]\n"
                              "    gpu_model:\n"
                              "      type: string\n"
                              "      constraints: [ { valid_values: [A100, H100] } ]\n"
                              "  node_templates:\n"
                              "    node:\n"
                              "      type: tosca.nodes.Compute\n"
                              "      capabilities:\n"
                              "        host:\n"
                              "          properties: {num_cpus: 1, mem_size: 1 GB}\n";

static const char server[] = "tosca_definitions_version: tosca_simple_yaml_1_3\n"
                             "description: Serves a model\n"
                             "metadata: {display_name: Model server, tags: [serving, http]}\n"
                             "topology_template:\n"
                             "  node_templates:\n"
                             "    node:\n"
                             "      type: tosca.nodes.Compute\n";

static const char broken[] = "tosca_definitions_version: tosca_simple_yaml_1_3\n"
                             "topology_template:\n"
                             "  node_templates:\n"
                             "    node:\n"
                             "      type: no.such.Type\n";

/* ---- helpers ---- */

static const char *env_dir[2];
static char env_buf[256];

/* A catalog directory in a fresh temporary folder: trainer.yaml, server.yml, broken.yaml,
 * -hidden.yaml (no valid name), notes.txt, sub/other.yaml. */
static void make_catalog(char dir[64])
{
    char path[160], sub[96];

    snprintf(dir, 64, "/tmp/test-catalog-XXXXXX");
    assert_non_null(mkdtemp(dir));
    fx_write_file(dir, "trainer.yaml", trainer, path, sizeof(path));
    fx_write_file(dir, "server.yml", server, path, sizeof(path));
    fx_write_file(dir, "broken.yaml", broken, path, sizeof(path));
    fx_write_file(dir, "-hidden.yaml", server, path, sizeof(path));
    fx_write_file(dir, "notes.txt", "not a template", path, sizeof(path));
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    fx_write_file(sub, "other.yaml", server, path, sizeof(path));
    snprintf(env_buf, sizeof(env_buf), "ORCHESTRATOR_CATALOG_DIR=%s", dir);
    env_dir[0] = env_buf;
    env_dir[1] = NULL;
}

static void remove_dir(const char *dir)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* The daemon is ready once its catalog directory is read. */
static void wait_ready(struct fx_daemon *d)
{
    struct fx_resp r;

    for (int i = 0; i < 500; i++) {
        long s = fx_get(d, "/readyz", &r);
        fx_resp_free(&r);
        if (s == 200)
            return;
        fx_sleep_ms(10);
    }
    fx_dump_log(d);
    fail_msg("the daemon did not get ready");
}

static void start(struct fx_daemon *d, const char *name, const char *const *env)
{
    fx_start(d, name, site, env);
    wait_ready(d);
}

/* The names of a page of entries, "a,b,c". */
static void names_of(const json_t *page, char *out, size_t size)
{
    size_t i, n = 0;
    json_t *e;

    out[0] = '\0';
    json_array_foreach(json_object_get(page, "content"), i, e)
    {
        n += (size_t)snprintf(out + n, size - n, "%s%s", n ? "," : "",
                              json_string_value(json_object_get(e, "name")));
    }
}

static void expect_names(struct fx_daemon *d, const char *path, const char *want)
{
    char got[512];
    json_t *page = fx_get_json(d, path);

    names_of(page, got, sizeof(got));
    if (strcmp(got, want) != 0)
        fail_msg("GET %s: entries '%s', want '%s'", path, got, want);
    json_decref(page);
}

/* {"name": name, "template": text} */
static char *publish_body(const char *name, const char *text)
{
    json_t *b = json_pack("{ss ss}", "name", name, "template", text);
    char *s = json_dumps(b, JSON_COMPACT);

    json_decref(b);
    return s;
}

static long publish(struct fx_daemon *d, const char *name, const char *text, struct fx_resp *r)
{
    char *body = publish_body(name, text);
    long status = fx_http(d, "POST", "/templates", NULL, body, r);

    free(body);
    return status;
}

/* ---- seeding ---- */

static void seeded_from_the_directory(void **state)
{
    char dir[64], *log;
    struct fx_daemon d;
    struct fx_resp r;
    json_t *e;

    (void)state;
    make_catalog(dir);
    start(&d, "test-catalog-seed", env_dir);
    expect_names(&d, "/templates", "server,trainer");
    log = fx_read_file(d.log);
    /* the invalid template is left out with its error, file:line:col; the bad name too */
    assert_non_null(strstr(log, "broken.yaml is not a valid template"));
    assert_non_null(strstr(log, "broken.yaml:5:13: error:"));
    assert_non_null(strstr(log, "-hidden.yaml: '-hidden' must be a letter or digit"));
    assert_non_null(strstr(log, "2 templates in the catalog from its directory"));
    free(log);
    /* a summary: no inputs */
    e = fx_get_json(&d, "/templates?q=trainer");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(e, "page"), "totalElements")), 1);
    {
        json_t *s = json_array_get(json_object_get(e, "content"), 0);
        assert_string_equal(json_string_value(json_object_get(s, "display_name")), "Trainer");
        assert_string_equal(json_string_value(json_object_get(s, "source")), "catalog");
        assert_string_equal(json_string_value(json_object_get(s, "icon")),
                            "https://example.org/trainer.png");
        assert_null(json_object_get(s, "inputs"));
        assert_null(json_object_get(s, "template"));
    }
    json_decref(e);
    /* the whole entry */
    e = fx_get_json(&d, "/templates/trainer");
    assert_string_equal(json_string_value(json_object_get(e, "description")),
                        "Trains a model on one node");
    assert_string_equal(json_string_value(json_array_get(json_object_get(e, "tags"), 0)),
                        "training");
    {
        json_t *in = json_array_get(json_object_get(e, "inputs"), 0);
        json_t *prop =
            json_object_get(json_object_get(json_object_get(e, "schema"), "properties"), "epochs");
        assert_string_equal(json_string_value(json_object_get(in, "name")), "epochs");
        assert_false(json_is_true(json_object_get(in, "required")));
        assert_int_equal(json_integer_value(json_object_get(prop, "maximum")), 100);
        assert_int_equal(json_integer_value(json_object_get(prop, "default")), 2);
        assert_string_equal(json_string_value(json_array_get(
                                json_object_get(json_object_get(e, "schema"), "required"), 0)),
                            "gpu_model");
    }
    assert_null(json_object_get(e, "template"));
    json_decref(e);
    /* the text as it is in the file */
    assert_int_equal(fx_get(&d, "/templates/trainer/template", &r), 200);
    assert_string_equal(r.body, trainer);
    assert_non_null(strstr(r.ctype, "application/yaml"));
    fx_resp_free(&r);
    /* tags (any case), text search, paging */
    expect_names(&d, "/templates?tag=HTTP", "server");
    expect_names(&d, "/templates?q=MODEL", "server,trainer");
    expect_names(&d, "/templates?q=nothing-like-it", "");
    expect_names(&d, "/templates?size=1&page=1", "trainer");
    /* what is not there, and bad queries */
    fx_expect_error(&d, "GET", "/templates/broken", NULL, 404, "There is no template 'broken'");
    fx_expect_error(&d, "GET", "/templates/other", NULL, 404, "There is no template 'other'");
    fx_expect_error(&d, "GET", "/templates/no%20such/template", NULL, 404, "no template");
    fx_expect_error(&d, "GET", "/templates?retired=maybe", NULL, 400,
                    "retired must be true, false or all");
    fx_expect_error(&d, "GET", "/templates?size=x", NULL, 400, "size must be a number");
    fx_stop(&d);
    remove_dir(dir);
}

/* Without a setting the examples are the catalog; a configured directory that is not
 * there stops the start. */
static void default_directory_and_a_missing_one(void **state)
{
    char dir[64] = "/tmp/test-catalog-missing-XXXXXX";
    struct fx_daemon d;

    (void)state;
    start(&d, "test-catalog-default", NULL);
    expect_names(&d, "/templates", "gpu-serving,gpu-train-serve,gpu-training");
    fx_stop(&d);
    assert_non_null(mkdtemp(dir));
    free(fx_expect_no_start(dir, "--catalog-dir /nonexistent/catalog",
                            "cannot read the catalog directory /nonexistent/catalog"));
    remove_dir(dir);
}

/* ---- deploying by name ---- */

static void deploy_by_name(void **state)
{
    char dir[64], uuid[64], *log;
    struct fx_daemon d;
    struct fx_resp r;
    json_t *dep;

    (void)state;
    make_catalog(dir);
    start(&d, "test-catalog-deploy", env_dir);
    assert_int_equal(fx_http(&d, "POST", "/deployments", NULL,
                             "{\"templateName\":\"trainer\",\"parameters\":{\"epochs\":5,"
                             "\"gpu_model\":\"A100\"}}",
                             &r),
                     201);
    snprintf(uuid, sizeof(uuid), "%s", json_string_value(json_object_get(r.json, "uuid")));
    fx_resp_free(&r);
    dep = fx_wait_status(&d, uuid, "CREATE_COMPLETE", 10000);
    json_decref(dep);
    /* the deployment keeps the catalog's text */
    {
        char path[128];
        snprintf(path, sizeof(path), "/deployments/%s/template", uuid);
        assert_int_equal(fx_get(&d, path, &r), 200);
        assert_string_equal(r.body, trainer);
        fx_resp_free(&r);
    }
    /* refusals */
    fx_expect_error(&d, "POST", "/deployments", "{\"templateName\":\"nope\"}", 400,
                    "templateName: there is no template 'nope' in the catalog");
    fx_expect_error(&d, "POST", "/deployments", "{\"templateName\":\"../trainer\"}", 400,
                    "there is no template");
    fx_expect_error(&d, "POST", "/deployments", "{\"templateName\":7}", 400,
                    "templateName must be a string");
    fx_expect_error(&d, "POST", "/deployments", "{\"templateName\":\"trainer\",\"template\":\"x\"}",
                    400, "give template or templateName, not both");
    fx_expect_error(&d, "POST", "/deployments",
                    "{\"templateName\":\"trainer\",\"parameters\":{\"gpu_model\":\"T4\"}}", 400,
                    "gpu_model");
    fx_expect_error(&d, "POST", "/deployments", "{\"templateName\":\"trainer\"}", 400,
                    "input 'gpu_model' is required");
    log = fx_read_file(d.log);
    assert_null(strstr(log, "ERROR"));
    free(log);
    fx_undeploy(&d, uuid, 10000);
    fx_stop(&d);
    remove_dir(dir);
}

/* ---- publishing and retiring ---- */

static void publish_retire_and_restart(void **state)
{
    char dir[64], uuid[64];
    struct fx_daemon d;
    struct fx_resp r;
    json_t *e;

    (void)state;
    make_catalog(dir);
    start(&d, "test-catalog-publish", env_dir);
    /* published: 201 with the entry; the same name again replaces it: 200 */
    assert_int_equal(publish(&d, "my-server", server, &r), 201);
    assert_string_equal(json_string_value(json_object_get(r.json, "source")), "published");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.json, "published"), "subject")),
        "anonymous");
    fx_assert_time(json_string_value(json_object_get(json_object_get(r.json, "published"), "at")));
    fx_resp_free(&r);
    assert_int_equal(publish(&d, "my-server", trainer, &r), 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "display_name")), "Trainer");
    fx_resp_free(&r);
    expect_names(&d, "/templates", "my-server,server,trainer");
    /* refusals: an invalid template names where, bad names and bodies */
    assert_int_equal(publish(&d, "bad", broken, &r), 400);
    assert_non_null(strstr(json_string_value(json_object_get(r.json, "message")),
                           "template.yaml:5:13: error:"));
    fx_resp_free(&r);
    fx_expect_error(&d, "POST", "/templates", "{\"name\":\"a b\",\"template\":\"x\"}", 400,
                    "name 'a b' must be a letter or digit");
    fx_expect_error(&d, "POST", "/templates", "{\"name\":\"\",\"template\":\"x\"}", 400,
                    "name '' is empty");
    fx_expect_error(&d, "POST", "/templates", "{\"template\":\"x\"}", 400, "name must be a string");
    fx_expect_error(&d, "POST", "/templates", "{\"name\":\"x\"}", 400,
                    "A TOSCA template must be provided");
    fx_expect_error(&d, "POST", "/templates", "[1]", 400, "the body must be a JSON object");
    expect_names(&d, "/templates", "my-server,server,trainer");
    /* retired: still readable, not listed, not deployable */
    assert_int_equal(fx_http(&d, "DELETE", "/templates/trainer", NULL, NULL, &r), 200);
    assert_true(json_is_true(json_object_get(r.json, "retired")));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r.json, "retired_by"), "subject")),
        "anonymous");
    fx_resp_free(&r);
    assert_int_equal(fx_http(&d, "DELETE", "/templates/trainer", NULL, NULL, &r), 200);
    fx_resp_free(&r);
    fx_expect_error(&d, "DELETE", "/templates/nope", NULL, 404, "There is no template 'nope'");
    expect_names(&d, "/templates", "my-server,server");
    expect_names(&d, "/templates?retired=true", "trainer");
    expect_names(&d, "/templates?retired=all", "my-server,server,trainer");
    e = fx_get_json(&d, "/templates/trainer");
    assert_true(json_is_true(json_object_get(e, "retired")));
    json_decref(e);
    fx_expect_error(&d, "POST", "/deployments", "{\"templateName\":\"trainer\"}", 409,
                    "the template 'trainer' is retired");
    /* kept across a restart: published, replaced, retired */
    fx_restart(&d, env_dir);
    wait_ready(&d);
    expect_names(&d, "/templates", "my-server,server");
    expect_names(&d, "/templates?retired=true", "trainer");
    e = fx_get_json(&d, "/templates/my-server");
    assert_string_equal(json_string_value(json_object_get(e, "display_name")), "Trainer");
    json_decref(e);
    /* published again, it is back */
    assert_int_equal(publish(&d, "trainer", trainer, &r), 200);
    assert_false(json_is_true(json_object_get(r.json, "retired")));
    fx_resp_free(&r);
    assert_int_equal(fx_http(&d, "POST", "/deployments", NULL,
                             "{\"templateName\":\"my-server\",\"parameters\":{\"gpu_model\":"
                             "\"H100\"}}",
                             &r),
                     201);
    snprintf(uuid, sizeof(uuid), "%s", json_string_value(json_object_get(r.json, "uuid")));
    fx_resp_free(&r);
    json_decref(fx_wait_status(&d, uuid, "CREATE_COMPLETE", 10000));
    fx_undeploy(&d, uuid, 10000);
    fx_stop(&d);
    remove_dir(dir);
}

static void openapi_documents_every_exchange(void **state)
{
    struct fx_daemon d;

    (void)state;
    start(&d, "test-catalog-openapi", NULL);
    oa_check_recorded(&d);
    fx_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(seeded_from_the_directory, fx_teardown),
        cmocka_unit_test_teardown(default_directory_and_a_missing_one, fx_teardown),
        cmocka_unit_test_teardown(deploy_by_name, fx_teardown),
        cmocka_unit_test_teardown(publish_retire_and_restart, fx_teardown),
        cmocka_unit_test_teardown(openapi_documents_every_exchange, fx_teardown),
    };

    return cmocka_run_group_tests(tests, fx_examples_load, fx_examples_free);
}
