/*
 * Secrets against the real daemon (docs/security.md): site credentials come from a
 * secrets file that must be the daemon's own with mode 0600 (a looser mode, another
 * owner's file, a value that is not a string stop the start, naming the file but never
 * a value); template inputs that are secrets (named so, or declared with metadata
 * secret: true) are masked in outputs, extrainfo and the log, and in what drivers say
 * about the deployment (statusReason, events). Every API response the
 * test received and the daemon's whole log are then searched for each secret.
 */
#define _GNU_SOURCE /* memmem */
#include "testutil.h"

#include <sys/stat.h>

#include "daemon_fixture.h"

#define SITE_TOKEN "S3cr3t-sim-Tok3n-0001"
#define DB_PASSWORD "hunter2-Very-Secret"
#define ACCESS_CODE "Z9-code-777"

static const char sites[] =
    "sites:\n"
    "  - name: sim-a\n"
    "    driver: sim\n"
    "    credentials: sim.token\n"
    "    config: {inventory: \"@DIR@/sim-a.json\", capacity: {cpus: 64, mem: 256 GiB,\n"
    "             gpus: {A100: 8}}}\n";

static const char tmpl[] =
    "tosca_definitions_version: tosca_simple_yaml_1_3\n"
    "topology_template:\n"
    "  inputs:\n"
    "    db_password: {type: string}\n"
    "    access_code: {type: string, metadata: {secret: true}}\n"
    "    size: {type: string, default: small}\n"
    "  node_templates:\n"
    "    box:\n"
    "      type: orc.nodes.GPUCompute\n"
    "      capabilities:\n"
    "        host:\n"
    "          properties: {num_cpus: 1, mem_size: 64 MB}\n"
    "  outputs:\n"
    "    dsn: {value: {concat: [\"postgres://u:\", {get_input: db_password}, \"@db\"]}}\n"
    "    code: {value: {get_input: access_code}}\n"
    "    size: {value: {get_input: size}}\n";

static char dir[64], secrets[128];

static void write_secrets(const char *text, mode_t mode)
{
    FILE *f;

    unlink(secrets);
    f = fopen(secrets, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(chmod(secrets, mode), 0);
}

static int group_setup(void **state)
{
    fx_examples_load(state);
    snprintf(dir, sizeof(dir), "/tmp/orc-secrets-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(secrets, sizeof(secrets), "%s/secrets.yaml", dir);
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    return fx_examples_free(state);
}

/* Fails when needle is in text (named what). */
static void no_leak(const char *what, const char *text, size_t len, const char *needle)
{
    if (text && memmem(text, len, needle, strlen(needle)) != NULL)
        fail_msg("%s contains the secret %s", what, needle);
}

static void test_no_secret_leaves(void **state)
{
    struct fx_daemon d;
    char env[200], uuid[64], path[160], *log, *text;
    const char *extra[] = {env, NULL};
    json_t *body, *dep, *outs;
    struct fx_resp r;

    (void)state;
    write_secrets("sim.token: \"" SITE_TOKEN "\"\nother: |\n  -----BEGIN KEY-----\n  abc\n",
                  0600);
    snprintf(env, sizeof(env), "ORCHESTRATOR_SECRETS_FILE=%s", secrets);
    fx_start(&d, "orc-secrets", sites, extra);
    body = json_pack("{ss s{ssss}}", "template", tmpl, "parameters", "db_password", DB_PASSWORD,
                     "access_code", ACCESS_CODE);
    text = json_dumps(body, 0);
    json_decref(body);
    assert_int_equal(fx_http(&d, "POST", "/deployments", NULL, text, &r), 201);
    free(text);
    snprintf(uuid, sizeof(uuid), "%s", json_string_value(json_object_get(r.json, "uuid")));
    fx_resp_free(&r);
    /* the site opened with the token from the file: the deployment completes */
    dep = fx_wait_status(&d, uuid, "CREATE_COMPLETE", 30000);
    outs = json_object_get(dep, "outputs");
    assert_string_equal(json_string_value(json_object_get(outs, "dsn")), "postgres://u:******@db");
    assert_string_equal(json_string_value(json_object_get(outs, "code")), "******");
    assert_string_equal(json_string_value(json_object_get(outs, "size")), "small");
    json_decref(dep);
    /* every endpoint that shows the deployment */
    static const char *const reads[] = {"", "/outputs", "/extrainfo", "/log", "/events",
                                        "/resources", NULL};
    for (size_t i = 0; reads[i]; i++) {
        snprintf(path, sizeof(path), "/deployments/%s%s", uuid, reads[i]);
        assert_int_equal(fx_get(&d, path, &r), 200);
        fx_resp_free(&r);
    }
    assert_int_equal(fx_get(&d, "/deployments", &r), 200);
    fx_resp_free(&r);
    /* a template error that quotes the parameters does not echo them either */
    body = json_pack("{ss s{sisi}}", "template", tmpl, "parameters", "db_password", 5,
                     "access_code", 6);
    text = json_dumps(body, 0);
    json_decref(body);
    fx_http(&d, "POST", "/deployments", NULL, text, &r);
    fx_resp_free(&r);
    free(text);
    fx_undeploy(&d, uuid, 20000);
    /* the daemon's log, and every response of this test */
    log = fx_read_file(d.log);
    assert_non_null(log);
    for (size_t i = 0; i < fx_nlog; i++)
        for (const char *const *s = (const char *const[]){SITE_TOKEN, DB_PASSWORD, ACCESS_CODE,
                                                           "BEGIN KEY", NULL};
             *s; s++)
            no_leak(fx_log[i].path, fx_log[i].body, fx_log[i].len, *s);
    no_leak("the daemon's log", log, strlen(log), SITE_TOKEN);
    no_leak("the daemon's log", log, strlen(log), DB_PASSWORD);
    no_leak("the daemon's log", log, strlen(log), ACCESS_CODE);
    if (strstr(log, "secrets file") == NULL || strstr(log, "1 secrets") != NULL)
        fail_msg("the log says nothing of the secrets file (2 secrets): %s", log);
    free(log);
    fx_stop(&d);
}

/* The daemon must not start with this secrets file, and say want (never a value). */
/* A secret input that reaches a driver's error message: the local site refuses the
 * image name it was given, and the deployment's statusReason, its events, its log and
 * the daemon's log show the value masked. */
static void test_driver_messages_masked(void **state)
{
    static const char bad_image[] =
        "tosca_definitions_version: tosca_simple_yaml_1_3\n"
        "topology_template:\n"
        "  inputs:\n"
        "    registry_token: {type: string}\n"
        "  node_templates:\n"
        "    job:\n"
        "      type: orc.nodes.Job\n"
        "      properties:\n"
        "        command: \"true\"\n"
        "        image: {get_input: registry_token}\n";
    static const char token[] = "Reg Tok3n!Value";
    struct fx_daemon d;
    char uuid[64], path[160], *text, *log;
    json_t *dep;
    struct fx_resp r;

    (void)state;
    fx_start(&d, "orc-secrets", NULL, NULL);
    json_decref(fx_create(&d, bad_image,
                          "{\"parameters\": {\"registry_token\": \"Reg Tok3n!Value\"}, "
                          "\"maxProvidersRetry\": 1}",
                          uuid));
    dep = fx_wait_status(&d, uuid, "CREATE_FAILED", 30000);
    text = json_dumps(dep, 0);
    if (strstr(text, "bad image name '******'") == NULL)
        fail_msg("the reason does not show the masked image: %s", text);
    free(text);
    json_decref(dep);
    static const char *const reads[] = {"", "/log", "/events", "/resources", "/extrainfo", NULL};
    for (size_t i = 0; reads[i]; i++) {
        snprintf(path, sizeof(path), "/deployments/%s%s", uuid, reads[i]);
        assert_int_equal(fx_get(&d, path, &r), 200);
        no_leak(path, r.body, r.len, token);
        fx_resp_free(&r);
    }
    log = fx_read_file(d.log);
    assert_non_null(log);
    no_leak("the daemon's log", log, strlen(log), token);
    free(log);
    fx_stop(&d);
}

static void refused(const char *want)
{
    char args[200], *text;

    snprintf(args, sizeof(args), "--secrets-file '%s'", secrets);
    text = fx_expect_no_start(dir, args, want);
    no_leak("the refusal", text, strlen(text), SITE_TOKEN);
    free(text);
}

static void test_bad_secrets_files(void **state)
{
    (void)state;
    write_secrets("sim.token: \"" SITE_TOKEN "\"\n", 0644);
    refused("is mode 0644: it must not be readable by group or others (chmod 600 it)");
    write_secrets("sim.token: \"" SITE_TOKEN "\"\n", 0640);
    refused("is mode 0640");
    write_secrets("sim.token: [\"" SITE_TOKEN "\"]\n", 0600);
    refused("the value of 'sim.token' must be a string");
    write_secrets("sim.token: \"" SITE_TOKEN "\n", 0600);
    refused("is not valid YAML");
    write_secrets("- \"" SITE_TOKEN "\"\n", 0600);
    refused("a map of secret names to values is expected");
    unlink(secrets);
    refused("No such file or directory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_secrets_files),
        cmocka_unit_test_teardown(test_no_secret_leaves, fx_teardown),
        cmocka_unit_test_teardown(test_driver_messages_masked, fx_teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
