/*
 * A federation of two clouds over REST: the real daemon with an openstack site
 * (tests/sim/openstack_sim.py: servers that boot their user data as local
 * processes) and a kubernetes site (tests/sim/k8s_sim.py: pods as local
 * processes), both driven through their public APIs.
 *   - failover: a training job asks for an A100; the OpenStack cloud, ranked
 *     first, has no host with one left ("No valid host"); the deployment fails
 *     over to the cluster, runs there as a Job, and its statusReason says where
 *     it runs and why the cloud failed;
 *   - faults: with 20% of both APIs' answers faulty (5xx, 429, connection
 *     resets, timeouts, before or after the effect; CLOUD_SITES_FAULT_RATE, 0 for
 *     a baseline), CLOUD_SITES_N deployments
 *     (default 40; half GPU serving on OpenStack, half GPU training on
 *     Kubernetes) each reach CREATE_COMPLETE with the right site and outputs
 *     (every serving endpoint answers), and after DELETE both simulators hold
 *     nothing: no server, floating IP, security group, port, job, pod, service,
 *     ConfigMap or process. The figures (time, faults seen) are printed;
 *   - in both, the daemon's log never shows a credential.
 * Skipped (with a message) when python3 or the simulators are not there.
 */
#define _GNU_SOURCE /* asprintf */
#include "testutil.h"
#include "daemon_fixture.h"
#include "cloudsim_fixture.h"

#define TOKEN "k8s-fed-token-81d3"

static struct cloudsim os_sim, k8s_sim;
static char top_dir[128], os_dir[200], k8s_dir[200];

static int setup(void **state)
{
    (void)state;
    if (!cloudsim_available("openstack_sim.py") || !cloudsim_available("k8s_sim.py")) {
        print_message("python3 or the simulators of tests/sim missing: federation tests skipped\n");
        skip();
    }
    snprintf(top_dir, sizeof(top_dir), "/tmp/fed-sim-XXXXXX");
    assert_non_null(mkdtemp(top_dir));
    snprintf(os_dir, sizeof(os_dir), "%s/openstack", top_dir);
    snprintf(k8s_dir, sizeof(k8s_dir), "%s/k8s", top_dir);
    return 0;
}

static int teardown(void **state)
{
    char cmd[320];

    cloudsim_stop(&os_sim);
    cloudsim_stop(&k8s_sim);
    kill_leftover(state);
    if (!getenv("FX_KEEP_DIRS")) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top_dir);
        if (system(cmd) != 0)
            print_message("cannot remove %s\n", top_dir);
    }
    return 0;
}

/* ---- the two clouds ---- */

/* The OpenStack simulator: servers boot their user data, floating IPs on loopback;
 * more knobs (JSON members) in knobs. */
static void start_openstack(const char *knobs)
{
    char conf[4096];

    snprintf(conf, sizeof(conf),
             "{\"build_ms\": 150, \"delete_ms\": 50, \"boot\": \"exec\", "
             "\"floating_cidr\": \"127.77.0.0/24\"%s%s}",
             knobs[0] ? ", " : "", knobs);
    cloudsim_start(&os_sim, "openstack_sim.py", os_dir, conf, NULL);
}

/* The Kubernetes simulator: pods run as local processes with the runtime on their
 * PATH; nodes (a JSON array) as given. */
static void start_kubernetes(const char *nodes, const char *knobs)
{
    char conf[4096], rt[512], path[2048];
    const char *old = getenv("PATH");
    const char *const args[] = {"--token", TOKEN, NULL};

    cloudsim_runtime_dir(rt, sizeof(rt));
    snprintf(path, sizeof(path), "%s:%s", rt, old ? old : "/usr/bin:/bin");
    setenv("PATH", path, 1);
    snprintf(conf, sizeof(conf),
             "{\"mode\": \"exec\", \"schedule_ms\": 50, \"pull_ms\": 50, \"max_grace_s\": 1, "
             "\"nodes\": %s%s%s}",
             nodes, knobs[0] ? ", " : "", knobs);
    cloudsim_start(&k8s_sim, "k8s_sim.py", k8s_dir, conf, args);
    setenv("PATH", old ? old : "/usr/bin:/bin", 1);
}

static const char *const fed_env[] = {"ORC_SECRET_OS_DEMO=secret",
                                         "ORC_SECRET_K8S_TOKEN=" TOKEN, NULL};

/* The daemon with the two sites: OpenStack first (priority 10), then Kubernetes; more
 * config members for each (JSON members, "" for none). */
static void start_daemon(struct fx_daemon *d, const char *name, const char *os_extra,
                         const char *k8s_extra)
{
    char rt[512], *sites, *log;

    cloudsim_runtime_dir(rt, sizeof(rt));
    assert_true(asprintf(&sites,
                         "sites:\n"
                         "  - name: os1\n    driver: openstack\n    priority: 10\n"
                         "    credentials: os.demo\n"
                         "    config: {\"auth_url\": \"%s/identity/v3\", \"username\": \"demo\", "
                         "\"project_name\": \"demo\", \"image\": \"ubuntu-22.04\", "
                         "\"poll_ms\": 50, \"poll_max_ms\": 300, \"agent_check\": \"none\", "
                         "\"agent_path\": \"%s/gpu-agent\"%s%s}\n"
                         "  - name: k8s\n    driver: kubernetes\n    priority: 0\n"
                         "    credentials: k8s.token\n"
                         "    config: {\"api_url\": \"%s\", \"agent\": \"%s/gpu-agent\", "
                         "\"agent_check\": \"none\", \"poll_ms\": 100, \"endpoint\": \"pod\", "
                         "\"delete_timeout_ms\": 30000%s%s}\n",
                         os_sim.url, rt, os_extra[0] ? ", " : "", os_extra, k8s_sim.url, rt,
                         k8s_extra[0] ? ", " : "", k8s_extra) > 0);
    fx_start(d, name, sites, fed_env);
    free(sites);
    log = fx_read_file(d->log);
    if (log == NULL || strstr(log, "site os1 open") == NULL || strstr(log, "site k8s open") == NULL) {
        fx_dump_log(d);
        free(log);
        fail_msg("the two sites did not open");
    }
    free(log);
}

static void assert_clouds_empty(int ms)
{
    cloudsim_assert_empty(&os_sim, cloudsim_os_kinds, ms);
    cloudsim_assert_empty(&k8s_sim, cloudsim_k8s_kinds, ms);
}

static void assert_contains(const char *text, const char *want)
{
    if (text == NULL || strstr(text, want) == NULL)
        fail_msg("\"%s\" does not contain \"%s\"", text ? text : "(null)", want);
}

/* The site a deployment's node runs on, and one of its attributes (NULL when absent). */
static void node_site(struct fx_daemon *d, const char *uuid, const char *node, char *site,
                      size_t cap)
{
    char path[160];
    json_t *arr, *e;
    size_t i;

    site[0] = '\0';
    snprintf(path, sizeof(path), "/deployments/%s/extrainfo", uuid);
    arr = fx_get_json(d, path);
    json_array_foreach(arr, i, e)
        if (strcmp(json_string_value(json_object_get(e, "node")), node) == 0)
            snprintf(site, cap, "%s", json_string_value(json_object_get(e, "site")));
    json_decref(arr);
}

static char *training_params(const char *model, int epochs)
{
    json_t *p = json_pack("{s{sisssi}}", "parameters", "num_gpus", 1, "gpu_model", model,
                          "epochs", epochs);
    char *text = json_dumps(p, 0);

    json_decref(p);
    return text;
}

/* The daemon's log never shows the sites' credentials: the bearer token, the Keystone
 * password in a request body, a token header. */
static void assert_no_secrets(struct fx_daemon *d)
{
    char *log = fx_read_file(d->log);

    assert_non_null(log);
    if (strstr(log, TOKEN) || strstr(log, "\"secret\"") || strstr(log, "X-Auth-Token:") ||
        strstr(log, "Bearer ")) {
        fx_dump_log(d);
        fail_msg("the daemon's log shows a credential");
    }
    free(log);
}

/* ---- failover ---- */

static void test_failover_openstack_to_kubernetes(void **state)
{
    struct fx_daemon d;
    char uuid[64], site[64], *params, *tmpl = fx_example("examples/gpu-training.yaml");
    json_t *dep;
    const char *reason;

    (void)state;
    start_openstack("\"hosts\": [{\"name\": \"cmp1\", \"vcpus\": 64, \"ram_mb\": 524288, "
                    "\"pci\": {\"a100\": 0}}]");
    start_kubernetes("[{\"name\": \"gpu-1\", \"cpu\": \"16\", \"memory\": \"64Gi\", \"gpus\": 4, "
                     "\"labels\": {\"nvidia.com/gpu.product\": \"NVIDIA-A100-SXM4-80GB\"}, "
                     "\"address\": \"10.0.0.11\"}]",
                     "");
    start_daemon(&d, "fed-failover", "", "");
    params = training_params("A100", 1);
    json_decref(fx_create(&d, tmpl, params, uuid));
    free(params);
    free(tmpl);
    dep = fx_wait_status(&d, uuid, "CREATE_COMPLETE|CREATE_FAILED", 90000);
    if (strcmp(json_string_value(json_object_get(dep, "status")), "CREATE_COMPLETE") != 0) {
        fx_dump_log(&d);
        fail_msg("%s", json_string_value(json_object_get(dep, "statusReason")));
    }
    reason = json_string_value(json_object_get(dep, "statusReason"));
    assert_contains(reason, "running on site k8s after failover");
    assert_contains(reason, "os1: ");
    assert_contains(reason, "No valid host was found");
    assert_string_equal(json_string_value(json_object_get(dep, "cloudProviderName")), "k8s");
    json_decref(dep);
    node_site(&d, uuid, "training", site, sizeof(site));
    assert_string_equal(site, "k8s");
    assert_int_equal(cloudsim_count(&os_sim, "servers"), 0); /* the failed attempt's server went */
    assert_int_equal(cloudsim_count(&k8s_sim, "jobs"), 1);
    fx_undeploy(&d, uuid, 60000);
    assert_clouds_empty(10000);
    assert_no_secrets(&d);
    fx_stop(&d);
}

/* ---- faults ---- */

struct dep {
    char uuid[64];
    bool serving;
    unsigned port;
};

/* Every serving endpoint of the deployments answers its model list. */
static int check_endpoints(struct fx_daemon *d, const struct dep *deps, int n)
{
    int ok = 0;

    for (int i = 0; i < n; i++) {
        char path[128], *text = NULL;
        json_t *dep;
        const char *ep;
        if (!deps[i].serving)
            continue;
        snprintf(path, sizeof(path), "/deployments/%s", deps[i].uuid);
        dep = fx_get_json(d, path);
        ep = json_string_value(json_object_get(json_object_get(dep, "outputs"), "endpoint"));
        if (ep && strstr(ep, "http://127.77.0.") == ep && fx_url_fetch(ep, NULL, &text) == 200 &&
            strstr(text, "mlp-classifier"))
            ok++;
        else
            print_message("deployment %s: endpoint %s does not answer\n", deps[i].uuid,
                          ep ? ep : "(none)");
        free(text);
        json_decref(dep);
    }
    return ok;
}

static long faults_of(const struct cloudsim *s, long *requests)
{
    json_t *st = cloudsim_call(s, "GET", "/_sim/stats", NULL), *v;
    const char *k;
    long n = 0;

    json_object_foreach(json_object_get(st, "faults"), k, v)
        n += (long)json_integer_value(v);
    *requests = (long)json_integer_value(json_object_get(st, "requests"));
    json_decref(st);
    return n;
}

static void test_faults_both_clouds(void **state)
{
    const int n = atoi(env_or("CLOUD_SITES_N", "40"));
    const char *seed = env_or("CLOUD_SITES_SEED", "11");
    const char *rate = env_or("CLOUD_SITES_FAULT_RATE", "0.2"); /* 0: the baseline */
    struct fx_daemon d;
    struct dep *deps = calloc((size_t)n, sizeof(*deps));
    char knobs[2048], ckpt[1200], rt[512], fault[512];
    char *serving = fx_example("examples/gpu-serving.yaml");
    char *training = fx_example("examples/gpu-training.yaml");
    unsigned base = (unsigned)test_free_port();
    int complete = 0, wrong_site = 0, serving_n = 0;
    long os_req, k8s_req, os_faults, k8s_faults;
    double t0, t_created, t_deleted;

    (void)state;
    assert_non_null(deps);
    cloudsim_runtime_dir(rt, sizeof(rt));
    snprintf(ckpt, sizeof(ckpt), "'%s/gpu-train' --epochs 1 --out '%s/model.bin' > /dev/null 2>&1",
             rt, top_dir);
    assert_int_equal(system(ckpt), 0);
    snprintf(fault, sizeof(fault),
             "\"faults\": {\"rate\": %s, \"kinds\": [\"500\", \"503\", \"429\", \"reset\", "
             "\"timeout\"], \"when\": \"mixed\", \"hang_ms\": 2000, \"retry_after_s\": 0, "
             "\"seed\": %s}", rate, seed);
    snprintf(knobs, sizeof(knobs),
             "%s, \"hosts\": [{\"name\": \"big\", \"vcpus\": 4096, \"ram_mb\": 40000000, "
             "\"pci\": {\"a100\": 1024}}], \"quotas\": {\"instances\": 2000, \"cores\": 20000, "
             "\"ram\": 40000000, \"floating_ips\": 250, \"security_groups\": 2000, "
             "\"security_group_rules\": 10000}", fault);
    start_openstack(knobs);
    start_kubernetes("[{\"name\": \"gpu-h100\", \"cpu\": \"4096\", \"memory\": \"40000Gi\", "
                     "\"gpus\": 1024, \"labels\": {\"nvidia.com/gpu.product\": "
                     "\"NVIDIA-H100-80GB-HBM3\"}, \"address\": \"10.0.0.21\"}]",
                     fault);
    start_daemon(&d, "fed-faults", "\"timeout_ms\": 1000, \"retries\": 8",
                 "\"timeout_ms\": 1500, \"retries\": 8");
    t0 = fx_now_ms();
    for (int i = 0; i < n; i++) {
        char *params;
        deps[i].serving = i % 2 == 0 && serving_n < 250;
        if (deps[i].serving) {
            char cmd[1400];
            json_t *p;
            deps[i].port = base + (unsigned)i;
            snprintf(cmd, sizeof(cmd),
                     "'%s/gpu-serve' --model '%s/model.bin' --host 0.0.0.0 --port \"$PORT\"", rt,
                     top_dir);
            p = json_pack("{s{sisssiss}}", "parameters", "num_gpus", 1, "gpu_model", "A100",
                          "port", (int)deps[i].port, "command", cmd);
            params = json_dumps(p, 0);
            json_decref(p);
            serving_n++;
        } else {
            params = training_params("H100", 1);
        }
        json_decref(fx_create(&d, deps[i].serving ? serving : training, params, deps[i].uuid));
        free(params);
    }
    for (int i = 0; i < n; i++) {
        json_t *dep = fx_wait_status(&d, deps[i].uuid, "CREATE_COMPLETE|CREATE_FAILED", 600000);
        char site[64];
        if (strcmp(json_string_value(json_object_get(dep, "status")), "CREATE_COMPLETE") == 0)
            complete++;
        else
            print_message("deployment %s (%s) failed: %s\n", deps[i].uuid,
                          deps[i].serving ? "serving" : "training",
                          json_string_value(json_object_get(dep, "statusReason")));
        json_decref(dep);
        node_site(&d, deps[i].uuid, deps[i].serving ? "serve_node" : "train_node", site,
                  sizeof(site));
        if (strcmp(site, deps[i].serving ? "os1" : "k8s") != 0)
            wrong_site++;
    }
    t_created = fx_now_ms();
    assert_int_equal(check_endpoints(&d, deps, n), serving_n);
    /* one server per serving deployment, one Job per training one: nothing sent twice */
    assert_int_equal(cloudsim_count(&os_sim, "servers"), serving_n);
    assert_int_equal(cloudsim_count(&k8s_sim, "jobs"), n - serving_n);
    for (int i = 0; i < n; i++) {
        char path[128];
        struct fx_resp r;
        snprintf(path, sizeof(path), "/deployments/%.63s", deps[i].uuid);
        fx_http(&d, "DELETE", path, NULL, NULL, &r);
        fx_resp_free(&r);
    }
    for (int i = 0; i < n; i++)
        assert_null(fx_wait_status(&d, deps[i].uuid, "", 600000));
    t_deleted = fx_now_ms();
    os_faults = faults_of(&os_sim, &os_req);
    k8s_faults = faults_of(&k8s_sim, &k8s_req);
    print_message("federation faults (rate %s): %d deployments (%d serving on os1, %d training on k8s): "
                  "%d CREATE_COMPLETE, %d on the wrong site; all created in %.1f s, all deleted "
                  "%.1f s later; OpenStack %ld of %ld answers faulty, Kubernetes %ld of %ld\n",
                  rate, n, serving_n, n - serving_n, complete, wrong_site, (t_created - t0) / 1000,
                  (t_deleted - t_created) / 1000, os_faults, os_req, k8s_faults, k8s_req);
    json_decref(cloudsim_call(&os_sim, "PUT", "/_sim/config", "{\"faults\": {\"rate\": 0.0}}"));
    json_decref(cloudsim_call(&k8s_sim, "PUT", "/_sim/config", "{\"faults\": {\"rate\": 0.0}}"));
    assert_clouds_empty(30000);
    assert_no_secrets(&d);
    assert_int_equal(complete, n);
    assert_int_equal(wrong_site, 0);
    assert_true(atof(rate) == 0 || (os_faults > 0 && k8s_faults > 0));
    free(serving);
    free(training);
    free(deps);
    fx_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_failover_openstack_to_kubernetes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faults_both_clouds, setup, teardown),
    };

    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (getenv("TEST_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
