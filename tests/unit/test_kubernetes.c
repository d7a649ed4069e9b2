/*
 * The kubernetes driver end to end: the real daemon over HTTP, a site on the
 * driver `kubernetes` whose API server is the Kubernetes simulator of
 * tests/sim (k8s_sim.py, a real HTTP server following the API reference:
 * namespaces, ConfigMaps, Jobs, Deployments, Services, pods that a scheduler
 * binds to nodes and a kubelet runs, here as real local processes).
 *   - the training example lands as a batch/v1 Job that runs gpu-agent with
 *     the workload; CREATE_COMPLETE, its log is the job's output; DELETE
 *     leaves no namespace object, job, pod or ConfigMap;
 *   - a GPU request no node can ever hold fails fast, naming the model;
 *     with a second site the deployment fails over there;
 *   - an image that cannot be pulled fails with ImagePullBackOff; a job
 *     that exits 3 fails with its status;
 *   - a pod that stays Unschedulable past pending_timeout_ms is a capacity
 *     failure;
 *   - a service becomes a Deployment and a Service, ready through its probe;
 *   - the site's config and credentials are checked at open;
 *   - over TLS with client-certificate auth: the site with the CA and a client
 *     certificate runs the training job; without the CA the server cannot be
 *     verified, with a bearer token only the API refuses it;
 *   - with 20% of the API's answers faulty (5xx, 429, resets, timeouts,
 *     before or after the effect), every deployment reaches its final state
 *     and DELETE leaves nothing behind.
 * Skipped (with a message) when python3 or the simulator is not there.
 */
#define _GNU_SOURCE /* asprintf */
#include "testutil.h"
#include "daemon_fixture.h"
#include "cloudsim_fixture.h"

#define TOKEN "k8s-test-token-5f2c"

static struct cloudsim sim;
static char sim_dir[256];

static int setup(void **state)
{
    (void)state;
    if (!cloudsim_available("k8s_sim.py")) {
        print_message("python3 or tests/sim/k8s_sim.py missing: kubernetes tests skipped\n");
        skip();
    }
    snprintf(sim_dir, sizeof(sim_dir), "/tmp/k8s-sim-XXXXXX");
    assert_non_null(mkdtemp(sim_dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[320];

    cloudsim_stop(&sim);
    kill_leftover(state);
    if (!getenv("FX_KEEP_DIRS")) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sim_dir);
        if (system(cmd) != 0)
            print_message("cannot remove %s\n", sim_dir);
    }
    return 0;
}

/* The directory of gpu-agent, gpu-train and gpu-serve: the pods' PATH. */
static void runtime_dir(char *out, size_t cap)
{
    cloudsim_runtime_dir(out, cap);
}

/* Starts the simulator in exec mode (pods are local processes) with more knobs (a JSON
 * object's members, or "") and its arguments, the runtime on its PATH. */
static void start_sim_args(const char *knobs, const char *const *args)
{
    char conf[2048], rt[512], path[2048];
    const char *old = getenv("PATH");

    runtime_dir(rt, sizeof(rt));
    snprintf(path, sizeof(path), "%s:%s", rt, old ? old : "/usr/bin:/bin");
    setenv("PATH", path, 1);
    snprintf(conf, sizeof(conf),
             "{\"mode\": \"exec\", \"schedule_ms\": 50, \"pull_ms\": 50, \"max_grace_s\": 1,"
             " \"nodes\": [{\"name\": \"gpu-1\", \"cpu\": \"16\", \"memory\": \"64Gi\", \"gpus\": 4,"
             " \"labels\": {\"nvidia.com/gpu.product\": \"NVIDIA-A100-SXM4-80GB\"}, \"address\": \"10.0.0.11\"},"
             " {\"name\": \"cpu-1\", \"cpu\": \"8\", \"memory\": \"32Gi\", \"gpus\": 0, \"labels\": {},"
             " \"address\": \"10.0.0.12\"}]%s%s}",
             knobs[0] ? ", " : "", knobs);
    cloudsim_start(&sim, "k8s_sim.py", sim_dir, conf, args);
    setenv("PATH", old ? old : "/usr/bin:/bin", 1);
}

/* The simulator with bearer token auth. */
static void start_sim(const char *knobs)
{
    const char *const args[] = {"--token", TOKEN, NULL};

    start_sim_args(knobs, args);
}

/* The sites file: the kubernetes site (more config lines in extra), and the local site
 * as a fallback when asked. */
static char *sites_yaml(const char *extra, bool fallback)
{
    char *y, agent[600], rt[512];

    runtime_dir(rt, sizeof(rt));
    snprintf(agent, sizeof(agent), "%s/gpu-agent", rt);
    assert_true(asprintf(&y,
                         "sites:\n"
                         "  - name: k8s\n"
                         "    driver: kubernetes\n"
                         "    priority: 10\n"
                         "    credentials: k8s.token\n"
                         "    config:\n"
                         "      api_url: \"%s\"\n"
                         "      agent: \"%s\"\n"
                         "      agent_check: none\n"
                         "      poll_ms: 100\n"
                         "      endpoint: pod\n"
                         "      delete_timeout_ms: 30000\n"
                         "%s%s"
                         "%s",
                         sim.url, agent, extra ? extra : "", extra ? "\n" : "",
                         fallback ? "  - name: local\n    driver: local\n    priority: 0\n" : "") > 0);
    return y;
}

static const char *const daemon_env_k8s[] = {"ORC_SECRET_K8S_TOKEN=" TOKEN, NULL};

static void start_daemon(struct fx_daemon *d, const char *name, const char *extra, bool fallback)
{
    char *sites = sites_yaml(extra, fallback), *log;

    fx_start(d, name, sites, daemon_env_k8s);
    free(sites);
    log = fx_read_file(d->log);
    if (log == NULL || strstr(log, "site k8s open") == NULL) {
        fx_dump_log(d);
        free(log);
        fail_msg("the kubernetes site did not open");
    }
    free(log);
}

static json_t *wait_created(struct fx_daemon *d, const char *uuid, const char *want, int ms)
{
    json_t *dep = fx_wait_status(d, uuid, "CREATE_COMPLETE|CREATE_FAILED", ms);

    if (strcmp(json_string_value(json_object_get(dep, "status")), want) != 0) {
        fx_dump_log(d);
        fail_msg("deployment %s: %s, not %s: %s", uuid,
                 json_string_value(json_object_get(dep, "status")), want,
                 json_string_value(json_object_get(dep, "statusReason")));
    }
    return dep;
}

static const char *reason_of(const json_t *dep)
{
    const char *r = json_string_value(json_object_get(dep, "statusReason"));
    return r ? r : "";
}

/* Nothing of the orchestrator is left on the cluster (within ms). */
static void assert_cluster_empty(int ms)
{
    cloudsim_assert_empty(&sim, cloudsim_k8s_kinds, ms);
}

static const char *training_params(int epochs, const char *extra)
{
    static char buf[512];

    snprintf(buf, sizeof(buf), "{\"parameters\": {\"epochs\": %d%s%s}}", epochs,
             extra ? ", " : "", extra ? extra : "");
    return buf;
}

/* ---- tests ---- */

static void test_training_job(void **state)
{
    struct fx_daemon d;
    char uuid[64];
    json_t *dep, *inv, *jobs;
    char *log;

    (void)state;
    start_sim("");
    start_daemon(&d, "k8s-train", NULL, false);
    json_decref(fx_create(&d, fx_training, training_params(1, NULL), uuid));
    dep = wait_created(&d, uuid, "CREATE_COMPLETE", 60000);
    json_decref(dep);
    /* it ran as a Job: the cluster keeps it until the deployment goes */
    inv = cloudsim_call(&sim, "GET", "/_sim/inventory", NULL);
    jobs = json_object_get(inv, "jobs");
    assert_int_equal(json_array_size(jobs), 1);
    assert_non_null(strstr(json_string_value(json_array_get(jobs, 0)), "orchestrator/orc-"));
    assert_int_equal(json_array_size(json_object_get(inv, "configmaps")), 1);
    json_decref(inv);
    log = fx_dep_log(&d, uuid);
    assert_non_null(strstr(log, "epoch"));
    free(log);
    fx_undeploy(&d, uuid, 60000);
    assert_cluster_empty(10000);
    fx_stop(&d);
}

static void test_gpu_fail_fast_and_failover(void **state)
{
    struct fx_daemon d;
    char uuid[64];
    json_t *dep;

    (void)state;
    start_sim("");
    start_daemon(&d, "k8s-fit", NULL, true);
    /* 8 A100 on one node: the cluster's largest has 4 */
    json_decref(fx_create(&d, fx_training,
                          training_params(1, "\"num_gpus\": 8, \"gpu_model\": \"A100\""), uuid));
    dep = wait_created(&d, uuid, "CREATE_FAILED", 60000);
    print_message("statusReason: %s\n", reason_of(dep));
    assert_non_null(strstr(reason_of(dep), "A100"));
    json_decref(dep);
    fx_undeploy(&d, uuid, 60000);
    /* a CPU job the cluster can run lands there, not on the fallback */
    json_decref(fx_create(&d, fx_training, training_params(1, NULL), uuid));
    dep = wait_created(&d, uuid, "CREATE_COMPLETE", 60000);
    json_decref(dep);
    fx_undeploy(&d, uuid, 60000);
    assert_cluster_empty(10000);
    fx_stop(&d);
}

static void test_image_pull_and_exit_status(void **state)
{
    struct fx_daemon d;
    char uuid[64];
    json_t *dep;

    (void)state;
    start_sim("\"bad_images\": [\"registry.invalid/*\"]");
    start_daemon(&d, "k8s-fail", "      image: registry.invalid/nothing:1", false);
    json_decref(fx_create(&d, fx_training, training_params(1, NULL), uuid));
    dep = wait_created(&d, uuid, "CREATE_FAILED", 60000);
    print_message("statusReason: %s\n", reason_of(dep));
    assert_non_null(strstr(reason_of(dep), "ImagePullBackOff") ? strstr(reason_of(dep), "ImagePullBackOff")
                                                               : strstr(reason_of(dep), "ErrImagePull"));
    json_decref(dep);
    fx_undeploy(&d, uuid, 60000);
    assert_cluster_empty(10000);
    fx_stop(&d);

    start_daemon(&d, "k8s-exit", NULL, false);
    json_decref(fx_create(&d, fx_training,
                          "{\"parameters\": {\"command\": \"echo failing; exit 3\"}}", uuid));
    dep = wait_created(&d, uuid, "CREATE_FAILED", 60000);
    print_message("statusReason: %s\n", reason_of(dep));
    assert_non_null(strstr(reason_of(dep), "status 3"));
    json_decref(dep);
    fx_undeploy(&d, uuid, 60000);
    assert_cluster_empty(10000);
    fx_stop(&d);
}

static void test_unschedulable(void **state)
{
    struct fx_daemon d;
    char uuid[64];
    json_t *dep;

    (void)state;
    /* the GPU node is tainted for maintenance: its GPUs are there, no pod lands on it */
    start_sim("\"nodes\": [{\"name\": \"gpu-1\", \"cpu\": \"16\", \"memory\": \"64Gi\","
              " \"gpus\": 4, \"labels\": {\"nvidia.com/gpu.product\": \"NVIDIA-A100-SXM4-80GB\"},"
              " \"taints\": [{\"key\": \"maintenance\", \"value\": \"true\", \"effect\":"
              " \"NoSchedule\"}]}]");
    start_daemon(&d, "k8s-pend", "      pending_timeout_ms: 1500", false);
    json_decref(fx_create(&d, fx_training,
                          training_params(1, "\"num_gpus\": 2, \"gpu_model\": \"A100\""), uuid));
    dep = wait_created(&d, uuid, "CREATE_FAILED", 60000);
    print_message("statusReason: %s\n", reason_of(dep));
    assert_non_null(strstr(reason_of(dep), "Unschedulable"));
    assert_non_null(strstr(reason_of(dep), "untolerated taint"));
    json_decref(dep);
    fx_undeploy(&d, uuid, 60000);
    assert_cluster_empty(10000);
    fx_stop(&d);
}

static void test_service(void **state)
{
    struct fx_daemon d;
    char uuid[64], port[16], url[128], *body = NULL;
    json_t *inv;
    int p = 20000 + (int)(getpid() % 12000); /* below the ephemeral ports (32768-) */

    (void)state;
    start_sim("");
    start_daemon(&d, "k8s-serve", NULL, false);
    snprintf(port, sizeof(port), "%d", p);
    {
        char params[256];
        snprintf(params, sizeof(params),
                 "{\"parameters\": {\"port\": %d, \"command\": \"mkdir -p v2/models && exec "
                 "python3 -m http.server --bind 127.0.0.1 $PORT\"}}",
                 p);
        /* a plain HTTP server as the service: its readiness path must answer 2xx */
        json_decref(fx_create(&d, fx_serving, params, uuid));
    }
    json_decref(fx_wait_status(&d, uuid, "CREATE_COMPLETE|CREATE_FAILED", 60000));
    inv = cloudsim_call(&sim, "GET", "/_sim/inventory", NULL);
    assert_int_equal(json_array_size(json_object_get(inv, "deployments")), 1);
    assert_int_equal(json_array_size(json_object_get(inv, "services")), 1);
    json_decref(inv);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/", p);
    assert_int_equal(fx_url_fetch(url, NULL, &body), 200);
    free(body);
    fx_undeploy(&d, uuid, 60000);
    assert_cluster_empty(10000);
    fx_stop(&d);
}

/* A CA, the API server's certificate (for 127.0.0.1) and a client certificate, in
 * sim_dir: ca.pem, server.pem/.key, client.pem/.key. */
static void make_certs(void)
{
    char cmd[2048];

    snprintf(cmd, sizeof(cmd),
             "(cd '%s' && K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes' && "
             "openssl req -x509 $K -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca && "
             "openssl req $K -keyout server.key -out server.csr -subj /CN=127.0.0.1 && "
             "printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext && "
             "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-out server.pem -days 2 -extfile san.ext && "
             "openssl req $K -keyout client.key -out client.csr -subj /CN=orchestrator && "
             "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial "
             "-out client.pem -days 2) > /dev/null 2>&1",
             sim_dir);
    if (system(cmd) != 0) {
        print_message("openssl could not make the test certificates\n");
        skip();
    }
}

/* The API server over TLS with client-certificate auth: the site with the CA and a
 * client certificate runs the training job; one without the CA (the system's bundle)
 * cannot verify the server, one with a bearer token only is refused. */
static void test_tls_client_certificate(void **state)
{
    struct fx_daemon d;
    char cert[400], key[400], ca[400], srv_cert[400], srv_key[400], rt[512], *sites, *log;
    char uuid[64];
    json_t *dep;

    (void)state;
    make_certs();
    snprintf(ca, sizeof(ca), "%s/ca.pem", sim_dir);
    snprintf(cert, sizeof(cert), "%s/client.pem", sim_dir);
    snprintf(key, sizeof(key), "%s/client.key", sim_dir);
    snprintf(srv_cert, sizeof(srv_cert), "%s/server.pem", sim_dir);
    snprintf(srv_key, sizeof(srv_key), "%s/server.key", sim_dir);
    {
        const char *const args[] = {"--tls-cert", srv_cert, "--tls-key", srv_key,
                                    "--client-ca", ca, NULL};
        start_sim_args("", args);
    }
    assert_int_equal(strncmp(sim.url, "https://", 8), 0);
    runtime_dir(rt, sizeof(rt));
    assert_true(asprintf(&sites,
                         "sites:\n"
                         "  - name: k8s-tls\n    driver: kubernetes\n    priority: 10\n"
                         "    config: {api_url: \"%s\", ca_file: \"%s\", cert_file: \"%s\", "
                         "key_file: \"%s\", agent: \"%s/gpu-agent\", agent_check: none, "
                         "poll_ms: 100, endpoint: pod}\n"
                         "  - name: k8s-noca\n    driver: kubernetes\n    priority: 5\n"
                         "    config: {api_url: \"%s\", cert_file: \"%s\", key_file: \"%s\", "
                         "timeout_ms: 3000, retries: 0}\n"
                         "  - name: k8s-nocert\n    driver: kubernetes\n    priority: 0\n"
                         "    credentials: k8s.token\n"
                         "    config: {api_url: \"%s\", ca_file: \"%s\", timeout_ms: 3000}\n",
                         sim.url, ca, cert, key, rt, sim.url, cert, key, sim.url, ca) > 0);
    fx_start(&d, "k8s-tls", sites, daemon_env_k8s);
    free(sites);
    log = fx_read_file(d.log);
    assert_non_null(strstr(log, "site k8s-tls open"));
    if (strstr(log, "k8s-noca") == NULL || (strstr(log, "certificate") == NULL &&
                                             strstr(log, "SSL") == NULL)) {
        fx_dump_log(&d);
        fail_msg("no word of the unverified server certificate");
    }
    assert_non_null(strstr(log, "refused the site's credentials"));
    free(log);
    json_decref(fx_create(&d, fx_training, training_params(1, NULL), uuid));
    dep = wait_created(&d, uuid, "CREATE_COMPLETE", 60000);
    assert_string_equal(json_string_value(json_object_get(dep, "cloudProviderName")), "k8s-tls");
    json_decref(dep);
    fx_undeploy(&d, uuid, 60000);
    assert_cluster_empty(10000);
    fx_stop(&d);
}

static void test_bad_config(void **state)
{
    struct fx_daemon d;
    char *log;

    (void)state;
    start_sim("");
    {
        char *sites = sites_yaml("      colour: blue", false);
        fx_start(&d, "k8s-badconf", sites, daemon_env_k8s);
        free(sites);
    }
    log = fx_read_file(d.log);
    assert_non_null(strstr(log, "colour: unknown key"));
    free(log);
    fx_stop(&d);
    {
        char *sites = sites_yaml(NULL, false);
        static const char *const wrong[] = {"ORC_SECRET_K8S_TOKEN=not-the-token", NULL};
        fx_start(&d, "k8s-badtoken", sites, wrong);
        free(sites);
    }
    log = fx_read_file(d.log);
    assert_non_null(strstr(log, "refused the site's credentials"));
    free(log);
    fx_stop(&d);
}

static void test_faults(void **state)
{
    enum { N = 12 };
    struct fx_daemon d;
    struct { char s[64]; } uuid[N];
    json_t *stats;

    (void)state;
    start_sim("\"faults\": {\"rate\": 0.2, \"kinds\": [\"500\", \"503\", \"429\", \"reset\", "
              "\"timeout\"], \"when\": \"mixed\", \"hang_ms\": 3000, \"retry_after_s\": 0}");
    start_daemon(&d, "k8s-faults", "      timeout_ms: 1500\n      retries: 8", false);
    for (int i = 0; i < N; i++)
        json_decref(fx_create(&d, fx_training, training_params(1, NULL), uuid[i].s));
    for (int i = 0; i < N; i++) {
        json_t *dep = fx_wait_status(&d, uuid[i].s, "CREATE_COMPLETE|CREATE_FAILED", 120000);
        if (strcmp(json_string_value(json_object_get(dep, "status")), "CREATE_COMPLETE") != 0)
            print_message("%s: %s\n", uuid[i].s, reason_of(dep));
        json_decref(dep);
    }
    for (int i = 0; i < N; i++)
        fx_undeploy(&d, uuid[i].s, 120000);
    stats = cloudsim_call(&sim, "GET", "/_sim/stats", NULL);
    {
        char *faults = json_dumps(json_object_get(stats, "faults"), JSON_COMPACT);
        print_message("simulator: %lld requests, faults %s\n",
                      (long long)json_integer_value(json_object_get(stats, "requests")),
                      faults ? faults : "?");
        free(faults);
    }
    json_decref(stats);
    assert_cluster_empty(30000);
    fx_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_training_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gpu_fail_fast_and_failover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_image_pull_and_exit_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unschedulable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_service, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_config, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_client_certificate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_faults, setup, teardown),
    };

    if (getenv("TEST_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    return cmocka_run_group_tests(tests, fx_examples_load, fx_examples_free);
}
