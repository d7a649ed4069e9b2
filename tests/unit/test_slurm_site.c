/*
 * The slurm driver end to end: the real daemon over HTTP, a real OpenSSH
 * server as the login node (deploy/testbed/sshd.sh) and a real one-node
 * Slurm 22.05 cluster (deploy/testbed/slurm.sh) behind it; the node's work
 * directory is a local folder (the "shared filesystem"). Each test starts
 * both testbeds in fresh directories and its tear-down stops them, always.
 *   - the training example reaches CREATE_COMPLETE on the Slurm site, its
 *     output is in GET /deployments/{id}/log; DELETE leaves no job in the
 *     queue, no work directory and no process;
 *   - a GPU job runs in the partition of its model with its gres, and gets
 *     a GPU of the allocation;
 *   - a service gets its endpoint (the node's address and its port) and
 *     answers there;
 *   - a job that exits 1 fails the deployment with its exit status; with
 *     the local site as a second site the engine fails over (it does so for
 *     every failed attempt, run.c), where it fails again: CREATE_FAILED
 *     with both sites' errors;
 *   - a node that is down: the job pends; past queue_timeout_ms it is
 *     canceled and the deployment lands on the local site;
 *   - the node goes down (scontrol) or crashes (slurmd killed) while the
 *     job runs: NODE_FAIL, the deployment fails over, nothing leaks;
 *   - DELETE while the job still runs: scancel, nothing left.
 * Skipped (with a message) only when the testbed scripts or the daemon's
 * SSH client are not in this tree yet.
 */
#define _GNU_SOURCE /* asprintf */
#include "testutil.h"
#include "daemon_fixture.h"
#include "testbed_fixture.h"

#include <glob.h>
#include <libgen.h>

static const char *const no_env[] = {NULL};

/* ---- the testbeds ---------------------------------------------------------------------------- */

struct slurm_tb {
    char dir[256];
    char log[300];
    char *conf, *node;
};

static struct env {
    struct tb_sshd ssh;
    struct slurm_tb slurm;
    char work[300]; /* the site's work_dir: the cluster's "shared filesystem" */
    char rt[1024];  /* where gpu-agent and gpu-train are */
} E;

static bool have_testbeds(void)
{
    return access("deploy/testbed/sshd.sh", R_OK) == 0 &&
           access("deploy/testbed/slurm.sh", R_OK) == 0;
}

static bool slurm_start(struct slurm_tb *tb)
{
    char args[400], env[300];

    memset(tb, 0, sizeof(*tb));
    snprintf(tb->dir, sizeof(tb->dir), "/tmp/orc-tb-slurm-XXXXXX");
    if (mkdtemp(tb->dir) == NULL)
        return false;
    snprintf(tb->log, sizeof(tb->log), "%s.log", tb->dir);
    snprintf(args, sizeof(args), "start %s --gpus a100:2", tb->dir);
    if (tb_run("slurm.sh", args, tb->log) != 0)
        return false;
    snprintf(env, sizeof(env), "%s/slurm.env", tb->dir);
    tb->conf = tb_env(env, "SLURM_CONF");
    tb->node = tb_env(env, "SLURM_NODE");
    return tb->conf && tb->node;
}

static void slurm_stop(struct slurm_tb *tb)
{
    char args[300];

    if (tb->dir[0] == '\0')
        return;
    snprintf(args, sizeof(args), "stop %s", tb->dir);
    tb_run("slurm.sh", args, tb->log);
    free(tb->conf);
    free(tb->node);
    unlink(tb->log);
    memset(tb, 0, sizeof(*tb));
}

/* slurm.sh node DIR down|fail|resume */
static void slurm_node(const char *what)
{
    char args[300];

    snprintf(args, sizeof(args), "node %s %s", E.slurm.dir, what);
    if (tb_run("slurm.sh", args, E.slurm.log) != 0) {
        static char msg[4096];
        char *log = test_read_file(E.slurm.log, NULL);
        snprintf(msg, sizeof(msg), "%s", log ? log : ""); /* fail_msg does not come back */
        free(log);
        fail_msg("slurm.sh node %s failed: %s", what, msg);
    }
}

static void fail_with_log(const char *what, const char *log)
{
    static char msg[4096];
    char *text = test_read_file(log, NULL);

    snprintf(msg, sizeof(msg), "%s", text ? text : "(no log)"); /* fail_msg does not come back */
    free(text);
    fail_msg("%s did not start: %s", what, msg);
}

/* Both testbeds, fresh; the test is skipped when their scripts are not there. */
static void up(void)
{
    const char *agent = getenv("GPU_AGENT");
    char buf[1024];

    if (!have_testbeds()) {
        print_message("deploy/testbed/sshd.sh or slurm.sh missing: slurm site tests skipped\n");
        skip();
    }
    if (!tb_sshd_start(&E.ssh, 1, false))
        fail_with_log("the sshd testbed", E.ssh.log);
    if (!slurm_start(&E.slurm))
        fail_with_log("the Slurm testbed", E.slurm.log);
    snprintf(E.work, sizeof(E.work), "%s/work", E.ssh.dir);
    snprintf(buf, sizeof(buf), "%s", agent && *agent ? agent : "build/release/bin/gpu-agent");
    assert_non_null(realpath(dirname(buf), E.rt));
}

static int teardown(void **state)
{
    kill_leftover(state);
    fx_teardown(state);
    slurm_stop(&E.slurm);
    tb_sshd_stop(&E.ssh); /* removes the work directory with it */
    return 0;
}

/* ---- the daemon ------------------------------------------------------------------------------ */

/* The sites file: the Slurm site first (priority 10), then (fallback) the
 * local site; extra: more keys of the Slurm site's config. */
static char *sites_yaml(bool fallback, const char *extra)
{
    char addr[160], *y = NULL;
    unsigned port;

    tb_sshd_host(&E.ssh, 0, addr, sizeof(addr), &port);
    assert_true(asprintf(&y,
                         "version: 1\n"
                         "sites:\n"
                         "  - name: hpc\n"
                         "    driver: slurm\n"
                         "    priority: 10\n"
                         "    config:\n"
                         "      login: {address: \"%s\", port: %u, user: %s, identity: %s, "
                         "known_hosts: %s}\n"
                         "      work_dir: %s\n"
                         "      partitions: {A100: {partition: gpu, gres: a100}}\n"
                         "      default_partition: gpu\n"
                         "      poll_ms: 200\n"
                         "      agent_check: none\n"
                         "      cancel_timeout_ms: 30000\n"
                         "      env: {SLURM_CONF: \"%s\"}\n"
                         "      runtime_dir: \"%s\"\n"
                         "%s%s%s",
                         addr, port, E.ssh.user, E.ssh.key, E.ssh.known_hosts, E.work, E.slurm.conf,
                         E.rt, extra ? extra : "", extra ? "\n" : "",
                         fallback ? "  - name: local\n    driver: local\n    priority: 0\n" : "") >
                0);
    return y;
}

static void start_daemon(struct fx_daemon *d, const char *name, bool fallback, const char *extra)
{
    char *sites = sites_yaml(fallback, extra), *log;

    fx_start(d, name, sites, no_env);
    free(sites);
    log = fx_read_file(d->log);
    if (log && strstr(log, "no SSH client for drivers")) {
        free(log);
        print_message("this daemon has no SSH client (host->ssh): slurm site tests skipped\n");
        fx_stop(d);
        skip();
    }
    if (log == NULL || strstr(log, "site hpc open") == NULL) {
        fx_dump_log(d);
        free(log);
        fail_msg("the Slurm site did not open");
    }
    free(log);
}

/* ---- what the cluster holds ------------------------------------------------------------------ */

/* A Slurm client command's output (SLURM_CONF set), NUL-terminated. */
static char *slurm_out(const char *cmd)
{
    char *full = NULL, *out = malloc(1);
    size_t len = 0;
    FILE *p;
    char buf[4096];
    size_t n;

    assert_true(asprintf(&full, "SLURM_CONF='%s' %s 2>&1", E.slurm.conf, cmd) > 0);
    p = popen(full, "r");
    assert_non_null(p);
    while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
        out = realloc(out, len + n + 1);
        memcpy(out + len, buf, n);
        len += n;
    }
    out[len] = '\0';
    pclose(p);
    free(full);
    return out;
}

/* The deployment's jobs ("ID|STATE" lines) in squeue -t all. */
static char *jobs_of(const char *uuid)
{
    char hex[40], *all = slurm_out("squeue -h -t all -o '%i|%T|%j'"), *out = strdup("");
    size_t h = 0;

    for (const char *u = uuid; *u && h < sizeof(hex) - 1; u++)
        if (*u != '-')
            hex[h++] = *u;
    hex[h] = '\0';
    for (char *line = strtok(all, "\n"); line; line = strtok(NULL, "\n")) {
        if (strstr(line, hex) == NULL)
            continue;
        char *o = NULL;
        assert_true(asprintf(&o, "%s%s\n", out, line) > 0);
        free(out);
        out = o;
    }
    free(all);
    return out;
}

static bool job_active(const char *line)
{
    static const char *const ended[] = {"COMPLETED", "FAILED",    "CANCELLED",
                                        "TIMEOUT",   "NODE_FAIL", "PREEMPTED",
                                        "BOOT_FAIL", "DEADLINE",  "OUT_OF_MEMORY"};

    for (size_t i = 0; i < sizeof(ended) / sizeof(ended[0]); i++)
        if (strstr(line, ended[i]))
            return false;
    return true;
}

/* Jobs of the deployment that are not ended. */
static int active_jobs(const char *uuid)
{
    char *jobs = jobs_of(uuid);
    int n = 0;

    for (char *line = strtok(jobs, "\n"); line; line = strtok(NULL, "\n"))
        n += job_active(line);
    free(jobs);
    return n;
}

/* Fails the test with what unless one of the deployment's jobs is in state
 * (as squeue writes it between bars: "|CANCELLED|"). */
static void expect_job(const char *uuid, const char *state, const char *what)
{
    char *jobs = jobs_of(uuid);

    if (strstr(jobs, state) == NULL)
        fail_msg("%s: %s", what, jobs);
    free(jobs);
}

/* Nothing of the deployment is left on the cluster: no job in the queue, no
 * node directory, no process. */
static void wait_clean(const char *uuid, int ms)
{
    double end = fx_now_ms() + ms;

    while ((active_jobs(uuid) > 0 || tb_node_dirs(E.work) > 0 || tb_node_procs(E.work) > 0) && fx_now_ms() < end)
        fx_sleep_ms(200);
    if (active_jobs(uuid) > 0)
        fail_msg("jobs left: %s", jobs_of(uuid));
    assert_int_equal(tb_node_dirs(E.work), 0);
    assert_int_equal(tb_node_procs(E.work), 0);
}

/* Waits until one of the deployment's jobs is RUNNING. */
static void wait_running(struct fx_daemon *d, const char *uuid, int ms)
{
    double end = fx_now_ms() + ms;
    char *jobs = NULL;

    do {
        free(jobs);
        jobs = jobs_of(uuid);
        if (strstr(jobs, "|RUNNING|") && tb_node_procs(E.work) > 0) {
            free(jobs);
            return;
        }
        fx_sleep_ms(100);
    } while (fx_now_ms() < end);
    fx_dump_log(d);
    fail_msg("no job of %s running after %d ms: %s", uuid, ms, jobs);
}

/* ---- the API -----------------------------------------------------------------------------------
 */

/* Polls the log until it holds every needle (NULL-terminated). */
static void wait_log(struct fx_daemon *d, const char *uuid, const char *const *needles, int ms)
{
    double end = fx_now_ms() + ms;
    char *log = NULL;

    do {
        bool all = true;
        free(log);
        log = fx_dep_log(d, uuid);
        for (size_t i = 0; needles[i] && all; i++)
            all = strstr(log, needles[i]) != NULL;
        if (all) {
            free(log);
            return;
        }
        fx_sleep_ms(200);
    } while (fx_now_ms() < end);
    fx_dump_log(d);
    fail_msg("the log of %s lacks what was expected: %s", uuid, log);
}

/* The site and an attribute of a node's instance 0 (extrainfo). */
static char *node_info(struct fx_daemon *d, const char *uuid, const char *node, const char *attr)
{
    char path[160];
    json_t *arr, *e;
    size_t i;
    char *out = NULL;

    snprintf(path, sizeof(path), "/deployments/%s/extrainfo", uuid);
    arr = fx_get_json(d, path);
    json_array_foreach(arr, i, e)
    {
        if (strcmp(json_string_value(json_object_get(e, "node")), node) != 0)
            continue;
        json_t *v = attr ? json_object_get(json_object_get(e, "attributes"), attr)
                         : json_object_get(e, "site");
        out = strdup(json_is_string(v) ? json_string_value(v) : "");
    }
    json_decref(arr);
    assert_non_null(out);
    return out;
}

/* Fails the test unless node's instance 0 is on site want. */
static void assert_site(struct fx_daemon *d, const char *uuid, const char *node, const char *want)
{
    char *site = node_info(d, uuid, node, NULL);

    assert_string_equal(want, site);
    free(site);
}

/* Prints the line of log at needle (from the log's start when needle is
 * not in it). */
static void print_line_at(const char *log, const char *needle)
{
    const char *at = strstr(log, needle) ? strstr(log, needle) : log;

    print_message("%.*s\n", (int)strcspn(at, "\n"), at);
}

/* Waits for the end of a creation; its status must be want. */
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

/* Creates a deployment of tmpl (params: its inputs, or NULL) and waits for
 * the end of the creation, whose status must be want; the deployment's JSON. */
static json_t *create_and_wait(struct fx_daemon *d, const char *tmpl, const char *params,
                               char uuid[64], const char *want, int ms)
{
    json_decref(fx_create(d, tmpl, params, uuid));
    return wait_created(d, uuid, want, ms);
}

/* DELETE, then nothing of the deployment may stay on the cluster (within
 * clean_ms); the daemon stopped. */
static void undeploy_and_stop(struct fx_daemon *d, const char *uuid, int clean_ms)
{
    fx_undeploy(d, uuid, 90000);
    wait_clean(uuid, clean_ms);
    fx_stop(d);
}

/* After an attempt on the cluster failed: nothing of it may stay there
 * (within clean_ms), then DELETE; the daemon stopped. */
static void clean_undeploy_and_stop(struct fx_daemon *d, const char *uuid, int clean_ms)
{
    wait_clean(uuid, clean_ms);
    fx_undeploy(d, uuid, 90000);
    fx_stop(d);
}

/* The head of a template: a compute node "box" of 1 CPU and 64 MB. */
#define BOX_TEMPLATE                                                                               \
    "tosca_definitions_version: tosca_simple_yaml_1_3\n"                                           \
    "topology_template:\n"                                                                         \
    "  node_templates:\n"                                                                          \
    "    box:\n"                                                                                   \
    "      type: orc.nodes.GPUCompute\n"                                                           \
    "      capabilities:\n"                                                                        \
    "        host:\n"                                                                              \
    "          properties: {num_cpus: 1, mem_size: 64 MB}\n"

/* A compute node and a job on it running command. */
static char *job_template(const char *command)
{
    char *t = NULL;

    assert_true(asprintf(&t,
                         BOX_TEMPLATE
                         "    work:\n"
                         "      type: orc.nodes.Job\n"
                         "      properties:\n"
                         "        command: '%s'\n"
                         "      requirements:\n"
                         "        - host: box\n",
                         command) > 0);
    return t;
}

/* Runs only inside a Slurm job: elsewhere (the local site) it succeeds. */
#define SLEEP_ON_SLURM "if [ -n \"$SLURM_JOB_ID\" ]; then sleep 300; fi; echo finished"

/* ---- the cases ---------------------------------------------------------------------------------
 */

static void test_training_on_slurm(void **state)
{
    static const char *const want[] = {"epoch 1/1", "done: 1 epochs", "CREATE_COMPLETE", NULL};
    struct fx_daemon d;
    char uuid[64], *tmpl, *site;
    json_t *dep;

    (void)state;
    up();
    start_daemon(&d, "slurm-train", false, NULL);
    tmpl = fx_example("examples/gpu-training.yaml");
    dep = create_and_wait(&d, tmpl, "{\"parameters\": {\"epochs\": 1}}", uuid, "CREATE_COMPLETE",
                          120000);
    free(tmpl);
    assert_int_equal(
        0, json_integer_value(json_object_get(json_object_get(dep, "outputs"), "exit_status")));
    json_decref(dep);
    assert_site(&d, uuid, "training", "hpc");
    site = node_info(&d, uuid, "training", "slurm_job_id");
    assert_true(site[0] >= '1' && site[0] <= '9');
    free(site);
    wait_log(&d, uuid, want, 20000);
    /* on the cluster: the job COMPLETED, the node's directory holds its log */
    expect_job(uuid, "|COMPLETED|", "no COMPLETED job");
    assert_int_equal(1, tb_node_dirs(E.work));
    undeploy_and_stop(&d, uuid, 10000);
}

/* A GPU job: the partitions map turns A100 into the gpu partition and
 * --gres=gpu:a100:1; Slurm gives it one of the node's (fake) GPUs, which
 * gpu-agent takes from CUDA_VISIBLE_DEVICES. */
static void test_gpu_job_gets_gres(void **state)
{
    struct fx_daemon d;
    char uuid[64], *tmpl, *id, *show, cmd[128], status[600];
    char *st;

    (void)state;
    up();
    start_daemon(&d, "slurm-gpu", false, NULL);
    tmpl = fx_example("examples/gpu-training.yaml");
    json_decref(create_and_wait(
        &d, tmpl, "{\"parameters\": {\"epochs\": 1, \"num_gpus\": 1, \"gpu_model\": \"a100\"}}",
        uuid, "CREATE_COMPLETE", 120000));
    free(tmpl);
    id = node_info(&d, uuid, "training", "slurm_job_id");
    snprintf(cmd, sizeof(cmd), "scontrol show job -o '%s'", id);
    show = slurm_out(cmd);
    if (strstr(show, "gres:gpu:a100:1") == NULL || strstr(show, "Partition=gpu") == NULL)
        fail_msg("job %s: %s", id, show);
    free(show);
    free(id);
    /* the agent ran the workload on GPU 0 of the allocation */
    id = node_info(&d, uuid, "train_node", "work_dir");
    snprintf(status, sizeof(status), "%s/training-0.status.json", id);
    st = test_read_file(status, NULL);
    if (st == NULL || strstr(st, "\"gpus\":[0]") == NULL)
        fail_msg("status file %s: %s", status, st ? st : "(none)");
    free(st);
    free(id);
    undeploy_and_stop(&d, uuid, 10000);
}

/* The HTTP status of a GET of url (0: no answer within 10 s). */
static long http_get_code(const char *url)
{
    CURL *c = curl_easy_init();
    struct body b = {NULL, 0};
    long code = 0;

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    free(b.data);
    return code;
}

/* A service: its endpoint is the node's address and its port, and it answers. */
static void test_service_endpoint(void **state)
{
    struct fx_daemon d;
    char uuid[64], *tmpl = NULL, *endpoint, *url = NULL;
    unsigned port = (unsigned)test_free_port();

    (void)state;
    up();
    start_daemon(&d, "slurm-service", false, NULL);
    assert_true(asprintf(&tmpl,
                         BOX_TEMPLATE
                         "    web:\n"
                         "      type: orc.nodes.Service\n"
                         "      properties:\n"
                         "        command: exec python3 -m http.server \"$PORT\"\n"
                         "        port: %u\n"
                         "        readiness_path: /\n"
                         "      requirements:\n"
                         "        - host: box\n",
                         port) > 0);
    json_decref(create_and_wait(&d, tmpl, NULL, uuid, "CREATE_COMPLETE", 90000));
    free(tmpl);
    endpoint = node_info(&d, uuid, "web", "endpoint");
    assert_true(asprintf(&url, "http://127.0.0.1:%u", port) > 0);
    assert_string_equal(url, endpoint);
    assert_int_equal(200, http_get_code(endpoint));
    free(url);
    free(endpoint);
    assert_int_equal(1, active_jobs(uuid));
    assert_true(tb_node_procs(E.work) > 0);
    undeploy_and_stop(&d, uuid, 20000);
}

/* exit 1: the deployment fails with the exit status. Alone, on the Slurm
 * site; with the local site second, the engine tries it there too. */
static void test_job_exit_1(void **state)
{
    struct fx_daemon d;
    char uuid[64], *tmpl = job_template("echo failing; exit 1"), *site;
    const char *reason;
    json_t *dep;

    (void)state;
    up();
    start_daemon(&d, "slurm-exit1", false, NULL);
    dep = create_and_wait(&d, tmpl, NULL, uuid, "CREATE_FAILED", 90000);
    reason = json_string_value(json_object_get(dep, "statusReason"));
    assert_non_null(reason);
    if (strstr(reason, "job exited with status 1") == NULL)
        fail_msg("statusReason: %s", reason);
    json_decref(dep);
    expect_job(uuid, "|FAILED|", "no FAILED job");
    clean_undeploy_and_stop(&d, uuid, 20000); /* the failed attempt was cleaned up */

    start_daemon(&d, "slurm-exit1b", true, NULL);
    dep = create_and_wait(&d, tmpl, NULL, uuid, "CREATE_FAILED", 90000);
    reason = json_string_value(json_object_get(dep, "statusReason"));
    if (reason == NULL || strstr(reason, "hpc") == NULL || strstr(reason, "local") == NULL ||
        strstr(reason, "status 1") == NULL)
        fail_msg("statusReason should name both sites' failures: %s", reason ? reason : "(none)");
    print_message("exit 1 on both sites: %s\n", reason);
    json_decref(dep);
    site = node_info(&d, uuid, "work", NULL);
    free(site);
    clean_undeploy_and_stop(&d, uuid, 20000);
    free(tmpl);
}

/* The node is down: the job pends; past queue_timeout_ms it is canceled
 * and the deployment lands on the local site. */
static void test_pending_fails_over(void **state)
{
    struct fx_daemon d;
    char uuid[64], *tmpl = job_template("echo done"), *log;

    (void)state;
    up();
    slurm_node("down");
    start_daemon(&d, "slurm-pending", true, "      queue_timeout_ms: 3000");
    json_decref(create_and_wait(&d, tmpl, NULL, uuid, "CREATE_COMPLETE", 90000));
    free(tmpl);
    assert_site(&d, uuid, "work", "local");
    log = fx_dep_log(&d, uuid);
    if (strstr(log, "pending for") == NULL || strstr(log, "queue_timeout_ms") == NULL)
        fail_msg("the log does not say why the Slurm site was left: %s", log);
    print_line_at(log, "insufficient");
    free(log);
    expect_job(uuid, "|CANCELLED|", "the pending job was not canceled");
    clean_undeploy_and_stop(&d, uuid, 20000);
}

/* The node fails under a running job (how: slurm.sh node down|fail): the
 * job ends NODE_FAIL, the deployment goes to the local site, nothing of it
 * stays on the cluster. */
static void node_fails_while_running(const char *how, const char *name)
{
    struct fx_daemon d;
    char uuid[64], *tmpl = job_template(SLEEP_ON_SLURM), *log;

    up();
    start_daemon(&d, name, true, NULL);
    json_decref(fx_create(&d, tmpl, NULL, uuid));
    free(tmpl);
    wait_running(&d, uuid, 60000);
    slurm_node(how);
    json_decref(wait_created(&d, uuid, "CREATE_COMPLETE", 120000));
    assert_site(&d, uuid, "work", "local");
    log = fx_dep_log(&d, uuid);
    if (strstr(log, "NODE_FAIL") == NULL)
        fail_msg("the log does not say NODE_FAIL: %s", log);
    print_line_at(log, "NODE_FAIL");
    free(log);
    expect_job(uuid, "|NODE_FAIL|", "no NODE_FAIL job");
    clean_undeploy_and_stop(&d, uuid, 30000);
}

static void test_node_down_while_running(void **state)
{
    (void)state;
    node_fails_while_running("down", "slurm-down");
}

static void test_node_crash_while_running(void **state)
{
    (void)state;
    node_fails_while_running("fail", "slurm-crash");
}

/* DELETE while the job runs: the job is canceled, its processes end, the
 * directory goes. */
static void test_delete_running(void **state)
{
    struct fx_daemon d;
    char uuid[64], *tmpl = job_template(SLEEP_ON_SLURM);

    (void)state;
    up();
    start_daemon(&d, "slurm-delete", false, NULL);
    json_decref(fx_create(&d, tmpl, NULL, uuid));
    free(tmpl);
    wait_running(&d, uuid, 60000);
    assert_int_equal(1, active_jobs(uuid));
    fx_undeploy(&d, uuid, 90000);
    wait_clean(uuid, 20000);
    expect_job(uuid, "|CANCELLED|", "the job was not canceled");
    fx_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_training_on_slurm, teardown),
        cmocka_unit_test_teardown(test_gpu_job_gets_gres, teardown),
        cmocka_unit_test_teardown(test_service_endpoint, teardown),
        cmocka_unit_test_teardown(test_job_exit_1, teardown),
        cmocka_unit_test_teardown(test_pending_fails_over, teardown),
        cmocka_unit_test_teardown(test_node_down_while_running, teardown),
        cmocka_unit_test_teardown(test_node_crash_while_running, teardown),
        cmocka_unit_test_teardown(test_delete_running, teardown),
    };

    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    fx_log_clear();
    return rc;
}
