/*
 * The ssh driver end to end: the real daemon over HTTP, a pool of real
 * OpenSSH servers (deploy/testbed/sshd.sh) as its hosts. The train-then-
 * serve example lands on the pool and its endpoint answers; its output is
 * in GET /deployments/{id}/log; delete leaves no directory and no process
 * on the hosts. Hostile values reach the workload as data. Faults: a wrong
 * host key, sshd killed while a node is provisioned, the network cut in the
 * middle of the runtime's upload; each fails over to the local site and
 * leaks nothing. A daemon killed with SIGKILL adopts its nodes by name.
 */
#define _GNU_SOURCE /* asprintf */
#include "testutil.h"
#include "daemon_fixture.h"
#include "testbed_fixture.h"

static const char *const no_env[] = {NULL};

/* ---- the pool's sites file ---------------------------------------------------------------- */

/* A sites file: the pool (hosts of tb, their nodes under work) first, then
 * (with fallback) the local site. known_hosts NULL: the testbed's. */
static char *pool_sites(const struct tb_sshd *tb, int nhosts, const char *work,
                        const char *known_hosts, bool fallback)
{
    char *y = NULL, *hosts = strdup(""), *h;

    for (int i = 0; i < nhosts; i++) {
        char addr[160];
        unsigned port;
        tb_sshd_host(tb, i, addr, sizeof(addr), &port);
        assert_true(asprintf(&h,
                             "%s        - {name: h%d, address: \"%s\", port: %u, cpus: 8, "
                             "mem: 16 GiB, gpus: {A100: 2}}\n",
                             hosts, i + 1, addr, port) > 0);
        free(hosts);
        hosts = h;
    }
    assert_true(
        asprintf(&y,
                 "sites:\n"
                 "  - name: pool\n"
                 "    driver: ssh\n"
                 "    priority: 10\n"
                 "    config:\n"
                 "      user: %s\n"
                 "      identity: %s\n"
                 "      known_hosts: %s\n"
                 "      work_dir: %s\n"
                 "      trust_declared_gpus: true\n"
                 "      agent_check: none\n"
                 "      poll_ms: 100\n"
                 "      keepalive_s: 1\n"
                 "      retries: 1\n"
                 "      connect_timeout_ms: 3000\n"
                 "      command_timeout_ms: 20000\n"
                 "      stop_timeout_ms: 3000\n"
                 "      hosts:\n%s"
                 "%s",
                 tb->user, tb->key, known_hosts ? known_hosts : tb->known_hosts, work, hosts,
                 fallback ? "  - name: local\n    driver: local\n    priority: 0\n" : "") > 0);
    free(hosts);
    return y;
}

/* A compute node and a job on it that runs command. */
static char *job_template(const char *command, const char *env_input)
{
    char *t = NULL;

    assert_true(asprintf(&t,
                         "tosca_definitions_version: tosca_simple_yaml_1_3\n"
                         "topology_template:\n"
                         "  inputs:\n"
                         "    value: {type: string, default: \"\"}\n"
                         "  node_templates:\n"
                         "    box:\n"
                         "      type: orc.nodes.GPUCompute\n"
                         "      capabilities:\n"
                         "        host:\n"
                         "          properties: {num_cpus: 1, mem_size: 64 MB}\n"
                         "    work:\n"
                         "      type: orc.nodes.Job\n"
                         "      properties:\n"
                         "        command: '%s'\n"
                         "        environment:\n"
                         "          VALUE: %s\n"
                         "      requirements:\n"
                         "        - host: box\n",
                         command, env_input) > 0);
    return t;
}

/* ---- what the hosts hold ------------------------------------------------------------------- */

static void wait_clean(const char *work, int ms)
{
    double end = fx_now_ms() + ms;

    while ((tb_node_dirs(work) > 0 || tb_node_procs(work) > 0) && fx_now_ms() < end)
        fx_sleep_ms(100);
    assert_int_equal(tb_node_dirs(work), 0);
    assert_int_equal(tb_node_procs(work), 0);
}

/* The site a node's instance 0 landed on. */
static char *site_of(struct fx_daemon *d, const char *uuid, const char *node)
{
    char path[160];
    json_t *arr, *e;
    size_t i;
    char *site = NULL;

    snprintf(path, sizeof(path), "/deployments/%s/extrainfo", uuid);
    arr = fx_get_json(d, path);
    json_array_foreach(arr, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "node")), node) == 0)
            site = strdup(json_string_value(json_object_get(e, "site")) ?: "");
    }
    json_decref(arr);
    assert_non_null(site);
    return site;
}

/* ---- fixtures ----------------------------------------------------------------------------------
 */

static struct tb_sshd pool;
static bool pool_ok;
static char work[300];

static int group_setup(void **state)
{
    fx_examples_load(state);
    pool_ok = tb_sshd_start(&pool, 2, false);
    return 0;
}

static int group_teardown(void **state)
{
    tb_sshd_stop(&pool);
    return fx_examples_free(state);
}

#define NEED(tb, ok)                                                                               \
    do {                                                                                           \
        if (!(ok)) {                                                                               \
            char *log_ = test_read_file((tb)->log, NULL);                                          \
            fail_msg("the sshd testbed did not start: %s", log_ ? log_ : "(no log)");              \
        }                                                                                          \
    } while (0)

static void fresh_work(const char *name)
{
    snprintf(work, sizeof(work), "%s/%s", pool.dir, name);
}

/* ---- the main path ------------------------------------------------------------------------------
 */

static void test_train_serve_on_pool(void **state)
{
    struct fx_daemon d;
    char uuid[64], extra[128], url[600], *text = NULL, *sites, *site, *log;
    char *tmpl = fx_example("examples/gpu-train-serve.yaml");
    json_t *dep, *models;

    (void)state;
    NEED(&pool, pool_ok);
    fresh_work("work-main");
    sites = pool_sites(&pool, 2, work, NULL, false);
    fx_start(&d, "ssh-main", sites, no_env);
    free(sites);
    snprintf(extra, sizeof(extra), "{\"parameters\": {\"port\": %u, \"epochs\": 2}}",
             (unsigned)test_free_port());
    json_decref(fx_create(&d, tmpl, extra, uuid));
    free(tmpl);
    dep = fx_wait_status(&d, uuid, "CREATE_COMPLETE|CREATE_FAILED", 120000);
    if (strcmp(json_string_value(json_object_get(dep, "status")), "CREATE_COMPLETE") != 0) {
        fx_dump_log(&d);
        fail_msg("%s", json_string_value(json_object_get(dep, "statusReason")));
    }
    site = site_of(&d, uuid, "model_api");
    assert_string_equal(site, "pool");
    free(site);
    const char *endpoint =
        json_string_value(json_object_get(json_object_get(dep, "outputs"), "endpoint"));
    assert_non_null(endpoint);
    assert_int_equal(fx_url_fetch(endpoint, NULL, &text), 200);
    models = json_loads(text, 0, NULL);
    free(text);
    const char *name = json_string_value(
        json_object_get(json_array_get(json_object_get(models, "models"), 0), "name"));
    assert_non_null(name);
    snprintf(url, sizeof(url), "%s%s/predict/", endpoint, name);
    json_decref(models);
    assert_int_equal(fx_url_fetch(url, "{\"inputs\": [[0.5, 0.25]]}", &text), 200);
    assert_non_null(strstr(text, "\"OK\""));
    free(text);
    json_decref(dep);
    /* the training's output reached the deployment's log */
    double end = fx_now_ms() + 10000;
    do {
        log = fx_dep_log(&d, uuid);
        if (strstr(log, "workload training-0 output") && strstr(log, "epoch"))
            break;
        free(log);
        log = NULL;
        fx_sleep_ms(200);
    } while (fx_now_ms() < end);
    if (log == NULL)
        fail_msg("no training output in /log: %s", fx_dep_log(&d, uuid));
    free(log);
    assert_true(tb_node_dirs(work) > 0);
    assert_true(tb_node_procs(work) > 0); /* the service */
    fx_undeploy(&d, uuid, 60000);
    wait_clean(work, 5000);
    fx_stop(&d);
}

/* Values with quotes, $(), backticks, ; and newlines reach the job as they
 * are, and nothing of them runs. */
static void test_hostile_values_are_data(void **state)
{
    static const char *const values[] = {"it's \"quoted\"", "$(touch @M@)",    "`touch @M@`",
                                         "a; touch @M@",    "line\ntouch @M@", "'; touch @M@; '"};
    struct fx_daemon d;
    char uuid[64], mark[400], *sites, *tmpl, *log;

    (void)state;
    NEED(&pool, pool_ok);
    fresh_work("work-hostile");
    snprintf(mark, sizeof(mark), "%s/MARK", pool.dir);
    sites = pool_sites(&pool, 1, work, NULL, false);
    fx_start(&d, "ssh-hostile", sites, no_env);
    free(sites);
    tmpl = job_template("printf \"[%s]\" \"$VALUE\"", "{get_input: value}");
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        char value[200], *extra, *want, *p;
        snprintf(value, sizeof(value), "%s", values[i]);
        while ((p = strstr(value, "@M@")) != NULL) {
            char rest[200];
            snprintf(rest, sizeof(rest), "%s", p + 3);
            snprintf(p, sizeof(value) - (size_t)(p - value), "%s%s", mark, rest);
        }
        json_t *params = json_pack("{s{ss}}", "parameters", "value", value);
        extra = json_dumps(params, JSON_COMPACT);
        json_decref(params);
        json_decref(fx_create(&d, tmpl, extra, uuid));
        free(extra);
        json_decref(fx_wait_status(&d, uuid, "CREATE_COMPLETE", 60000));
        assert_true(asprintf(&want, "[%s]", value) > 0);
        double end = fx_now_ms() + 5000;
        do {
            log = fx_dep_log(&d, uuid);
            if (strstr(log, want))
                break;
            free(log);
            log = NULL;
            fx_sleep_ms(100);
        } while (fx_now_ms() < end);
        if (log == NULL)
            fail_msg("value %zu not in the log verbatim: %s", i, fx_dep_log(&d, uuid));
        free(log);
        free(want);
        assert_int_not_equal(access(mark, F_OK), 0);
        fx_undeploy(&d, uuid, 60000);
    }
    free(tmpl);
    wait_clean(work, 5000);
    fx_stop(&d);
}

/* ---- faults -------------------------------------------------------------------------------------
 */

static void expect_failover(struct fx_daemon *d, const char *uuid, const char *why)
{
    json_t *dep = fx_wait_status(d, uuid, "CREATE_COMPLETE|CREATE_FAILED", 90000);
    char *site, *log;

    if (strcmp(json_string_value(json_object_get(dep, "status")), "CREATE_COMPLETE") != 0) {
        fx_dump_log(d);
        fail_msg("%s", json_string_value(json_object_get(dep, "statusReason")));
    }
    json_decref(dep);
    site = site_of(d, uuid, "box");
    assert_string_equal(site, "local");
    free(site);
    log = fx_dep_log(d, uuid);
    if (why && strstr(log, why) == NULL) {
        fx_dump_log(d);
        fail_msg("the log does not say '%s': %s", why, log);
    }
    free(log);
}

static void test_wrong_host_key_fails_over(void **state)
{
    struct fx_daemon d;
    char uuid[64], wrong[400], *sites, *tmpl;

    (void)state;
    NEED(&pool, pool_ok);
    fresh_work("work-hostkey");
    snprintf(wrong, sizeof(wrong), "%s/wrong_known_hosts", pool.dir);
    sites = pool_sites(&pool, 2, work, wrong, true);
    fx_start(&d, "ssh-hostkey", sites, no_env);
    free(sites);
    tmpl = job_template("echo done", "x");
    json_decref(fx_create(&d, tmpl, NULL, uuid));
    free(tmpl);
    expect_failover(&d, uuid, NULL);
    {
        char *text = fx_read_file(d.log);
        assert_non_null(strstr(text, "host key changed"));
        free(text);
    }
    fx_undeploy(&d, uuid, 60000);
    assert_int_equal(tb_node_dirs(work), 0);
    fx_stop(&d);
}

/* The fault tests' own one-host testbed; fault_teardown stops it when an
 * assertion ended a test early. */
static struct tb_sshd own;

static int fault_teardown(void **state)
{
    tb_sshd_stop(&own);
    return fx_teardown(state);
}

/* The fault tests' set-up: the own testbed (netns: its host in a network
 * namespace), a daemon with a pool of it and the local site, and one job
 * deployed (uuid). */
static void fault_start(struct fx_daemon *d, bool netns, const char *name, char uuid[64])
{
    char *sites, *tmpl;
    bool ok = tb_sshd_start(&own, 1, netns);

    NEED(&own, ok);
    snprintf(work, sizeof(work), "%s/work", own.dir);
    sites = pool_sites(&own, 1, work, NULL, true);
    fx_start(d, name, sites, no_env);
    free(sites);
    tmpl = job_template("echo done", "x");
    json_decref(fx_create(d, tmpl, NULL, uuid));
    free(tmpl);
}

/* sshd dies while the node is being made (the runtime's upload or the
 * directory): the deployment goes to the local site; once sshd is back the
 * driver finishes the cleanup it could not do. */
static void test_sshd_killed_during_provisioning(void **state)
{
    struct fx_daemon d;
    char uuid[64];

    (void)state;
    fault_start(&d, false, "ssh-kill", uuid);
    fx_sleep_ms(50);
    assert_int_equal(tb_sshd_ctl(&own, "kill", 0, NULL), 0);
    expect_failover(&d, uuid, NULL);
    assert_int_equal(tb_sshd_ctl(&own, "restart", 0, NULL), 0);
    fx_undeploy(&d, uuid, 60000);
    wait_clean(work, 40000);
    fx_stop(&d);
    tb_sshd_stop(&own);
}

/* The host's link goes down while the runtime is uploaded: the keepalive
 * finds the peer silent, the provision fails, the local site takes it. */
static void test_network_cut_mid_upload(void **state)
{
    struct fx_daemon d;
    char uuid[64], pattern[400];
    bool seen = false;
    glob_t g;

    (void)state;
    fault_start(&d, true, "ssh-cut", uuid);
    snprintf(pattern, sizeof(pattern), "%s/.orc-runtime/*/*.part.*", work);
    for (int i = 0; i < 2000 && !seen; i++) {
        seen = glob(pattern, 0, NULL, &g) == 0;
        if (seen)
            globfree(&g);
        else
            fx_sleep_ms(2);
    }
    assert_true(seen);
    assert_int_equal(tb_sshd_ctl(&own, "link", 0, "down"), 0);
    expect_failover(&d, uuid, NULL);
    assert_int_equal(tb_sshd_ctl(&own, "link", 0, "up"), 0);
    fx_undeploy(&d, uuid, 60000);
    wait_clean(work, 40000);
    fx_stop(&d);
    tb_sshd_stop(&own);
}

/* ---- crash ------------------------------------------------------------------------------------
 */

static void test_adopt_after_daemon_kill(void **state)
{
    struct fx_daemon d;
    char uuid[64], extra[128], *sites, *tmpl = fx_example("examples/gpu-train-serve.yaml");
    const char *listen_env[4] = {NULL};
    char listen[256];
    json_t *dep;
    int status;

    (void)state;
    NEED(&pool, pool_ok);
    fresh_work("work-adopt");
    sites = pool_sites(&pool, 2, work, NULL, false);
    fx_start(&d, "ssh-adopt", sites, no_env);
    snprintf(extra, sizeof(extra), "{\"parameters\": {\"port\": %u, \"epochs\": 1}}",
             (unsigned)test_free_port());
    json_decref(fx_create(&d, tmpl, extra, uuid));
    free(tmpl);
    json_decref(fx_wait_status(&d, uuid, "CREATE_COMPLETE", 120000));
    int procs = tb_node_procs(work);
    assert_true(procs > 0);
    /* kill -9 and start again on the same data and sites file */
    kill(d.pid, SIGKILL);
    waitpid(d.pid, &status, 0);
    snprintf(listen, sizeof(listen), "%s", d.url + strlen("http://"));
    fx_listen = listen;
    {
        char path[300];
        snprintf(path, sizeof(path), "%s/sites.yaml", d.dir);
        const char *all[] = {"ORC_DRV_STRICT=1", NULL, NULL};
        char plugins[512];
        snprintf(plugins, sizeof(plugins), "ORCHESTRATOR_PLUGIN_DIR=%s", getenv("PLUGIN_DIR"));
        all[1] = plugins;
        (void)listen_env;
        d.pid = daemon_spawn_env(d.dir, path, d.log, d.url, sizeof(d.url), all);
    }
    fx_listen = NULL;
    fx_wait_engine(&d);
    dep = fx_wait_status(&d, uuid, "CREATE_COMPLETE", 30000);
    json_decref(dep);
    assert_int_equal(tb_node_procs(work), procs); /* the same service, not a second one */
    fx_undeploy(&d, uuid, 60000);
    wait_clean(work, 5000);
    free(sites);
    fx_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_train_serve_on_pool, fx_teardown),
        cmocka_unit_test_teardown(test_hostile_values_are_data, fx_teardown),
        cmocka_unit_test_teardown(test_wrong_host_key_fails_over, fx_teardown),
        cmocka_unit_test_teardown(test_sshd_killed_during_provisioning, fault_teardown),
        cmocka_unit_test_teardown(test_network_cut_mid_upload, fault_teardown),
        cmocka_unit_test_teardown(test_adopt_after_daemon_kill, fx_teardown),
    };
    if (getenv("TEST_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
