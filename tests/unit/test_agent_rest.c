/*
 * gpu-agent and the daemon together, through the real processes: the local
 * site launches workloads through gpu-agent (found beside orchestratord);
 * the agent reports to POST /agent/v1/deployments/{id}/reports with the
 * deployment's token, and the reports become resource attributes
 * (gpu_health, gpu_count, workload_state, agent.*). The endpoint refuses a
 * missing or foreign token (401), a malformed batch (400) and a resource of
 * another deployment (404). With the daemon stopped, the agent keeps its
 * workload running and queues its reports; once the daemon is back on the
 * same address they arrive.
 */
#include "testutil.h"
#include "daemon_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static const char *const agent_env[] = {NULL};

/* The resource of node `node` of a deployment (a new reference). */
static json_t *resource_of(struct fx_daemon *d, const char *uuid, const char *node)
{
    char path[160];
    json_t *page, *r, *found = NULL;
    size_t i;

    snprintf(path, sizeof(path), "/deployments/%s/resources", uuid);
    page = fx_get_json(d, path);
    json_array_foreach(json_object_get(page, "content"), i, r)
        if (strcmp(json_string_value(json_object_get(r, "toscaNodeName")), node) == 0)
            found = json_incref(r);
    json_decref(page);
    assert_non_null(found);
    return found;
}

/* The attributes of node `node` (instance 0), from GET .../extrainfo (a new
 * reference). */
static json_t *node_attrs(struct fx_daemon *d, const char *uuid, const char *node)
{
    char path[160];
    json_t *all, *e, *found = NULL;
    size_t i;

    snprintf(path, sizeof(path), "/deployments/%s/extrainfo", uuid);
    all = fx_get_json(d, path);
    json_array_foreach(all, i, e)
        if (strcmp(json_string_value(json_object_get(e, "node")), node) == 0 && found == NULL)
            found = json_incref(json_object_get(e, "attributes"));
    json_decref(all);
    return found ? found : json_object();
}

/* Polls until the node's attribute key equals want; its attributes. */
static json_t *wait_attr(struct fx_daemon *d, const char *uuid, const char *node, const char *key,
                         const char *want, int timeout_ms)
{
    double end = fx_now_ms() + timeout_ms;
    json_t *a = NULL;

    do {
        json_decref(a);
        a = node_attrs(d, uuid, node);
        const char *v = json_string_value(json_object_get(a, key));
        if (v && strcmp(v, want) == 0)
            return a;
        fx_sleep_ms(50);
    } while (fx_now_ms() < end);
    fx_dump_log(d);
    fail_msg("%s.%s is not %s after %d ms: %s", node, key, want, timeout_ms,
             json_dumps(a, JSON_COMPACT));
    return NULL;
}

/* The pid of the process the local site started for the deployment's
 * workload (the agent), from the site's state.json. */
static pid_t agent_pid(const struct fx_daemon *d, const char *uuid)
{
    char path[160], hex[40];
    size_t h = 0;
    json_t *state, *node, *wls, *w;
    const char *k, *k2;
    pid_t pid = 0;

    for (const char *u = uuid; *u && h < sizeof(hex) - 1; u++)
        if (*u != '-')
            hex[h++] = *u;
    hex[h] = '\0';
    snprintf(path, sizeof(path), "%s/var/sites/local/state.json", d->dir);
    state = json_load_file(path, 0, NULL);
    assert_non_null(state);
    json_object_foreach(json_object_get(state, "nodes"), k, node) {
        if (strstr(k, hex) == NULL)
            continue; /* another deployment's */
        wls = json_object_get(node, "workloads");
        json_object_foreach(wls, k2, w)
            if (json_integer_value(json_object_get(w, "pid")) > 0)
                pid = (pid_t)json_integer_value(json_object_get(w, "pid"));
    }
    json_decref(state);
    assert_true(pid > 0);
    return pid;
}

/* A variable of a process's environment (malloc'd), or NULL. */
static char *proc_env(pid_t pid, const char *name)
{
    char path[64], text[65536];
    size_t n = 0, len = strlen(name);
    char *out = NULL;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
    f = fopen(path, "rb"); /* procfs files have no size: read what comes */
    assert_non_null(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    for (char *p = text; p < text + n; p += strlen(p) + 1)
        if (strncmp(p, name, len) == 0 && p[len] == '=')
            out = strdup(p + len + 1);
    return out;
}

static long post_reports(struct fx_daemon *d, const char *uuid, const char *token,
                         const char *body, struct fx_resp *r)
{
    char path[160], auth[160];
    const char *headers[] = {auth, NULL};

    snprintf(path, sizeof(path), "/agent/v1/deployments/%s/reports", uuid);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token ? token : "");
    return fx_http(d, "POST", path, token ? headers : NULL, body, r);
}


static void deploy_service(struct fx_daemon *d, char uuid[64])
{
    char *tmpl = fx_service_template((unsigned)test_free_port());

    json_decref(fx_create(d, tmpl, NULL, uuid));
    free(tmpl);
    json_decref(fx_wait_status(d, uuid, "CREATE_COMPLETE", 30000));
}

/* The agent's reports become attributes of the service and its node. */
static void test_reports_become_attributes(void **state)
{
    struct fx_daemon d;
    char uuid[64];
    json_t *box, *web;

    (void)state;
    fx_start(&d, "agent-attrs", NULL, agent_env);
    deploy_service(&d, uuid);
    box = wait_attr(&d, uuid, "box", "gpu_health", "none", 10000); /* no GPU here */
    assert_int_equal(json_integer_value(json_object_get(box, "gpu_count")), 0);
    json_t *inv = json_object_get(json_object_get(box, "agent"), "inventory");
    assert_non_null(json_object_get(inv, "host"));
    assert_int_equal(json_array_size(json_object_get(inv, "gpus")), 0);
    web = wait_attr(&d, uuid, "web", "workload_state", "ready", 10000);
    for (int i = 0; i < 100 && !json_object_get(json_object_get(web, "agent"), "status"); i++) {
        fx_sleep_ms(50); /* the first heartbeat may come after "ready" */
        json_decref(web);
        web = node_attrs(&d, uuid, "web");
    }
    json_t *agent = json_object_get(web, "agent");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(agent, "identity"), "version")),
                        "0.4.0");
    assert_non_null(json_object_get(agent, "status")); /* heartbeats */
    /* the endpoint the driver reported is still there beside them */
    assert_non_null(json_object_get(web, "endpoint"));
    json_decref(box);
    json_decref(web);
    fx_undeploy(&d, uuid, 30000);
    fx_stop(&d);
}

static void test_endpoint_refusals(void **state)
{
    struct fx_daemon d;
    char uuid[64], other[64], body[512];
    struct fx_resp r;
    json_t *web, *box;
    char *token;

    (void)state;
    fx_start(&d, "agent-auth", NULL, agent_env);
    deploy_service(&d, uuid);
    deploy_service(&d, other);
    web = resource_of(&d, uuid, "web");
    box = resource_of(&d, uuid, "box");
    pid_t pid = agent_pid(&d, uuid);
    token = proc_env(pid, "ORC_AGENT_TOKEN");
    assert_non_null(token);
    assert_true(strncmp(token, "orc-agent-v1.", 13) == 0);

    snprintf(body, sizeof(body),
             "{\"resource\":\"%s\",\"host_resource\":\"%s\",\"reports\":[{\"seq\":7,"
             "\"type\":\"workload\",\"time_ms\":1,\"data\":{\"name\":\"main\",\"state\":"
             "\"running\",\"restarts\":2}}]}",
             json_string_value(json_object_get(web, "uuid")),
             json_string_value(json_object_get(box, "uuid")));
    assert_int_equal(post_reports(&d, uuid, NULL, body, &r), 401);
    assert_string_equal(json_string_value(json_object_get(r.json, "error")), "invalid_token");
    fx_resp_free(&r);
    assert_int_equal(post_reports(&d, uuid, "orc-agent-v1.0000", body, &r), 401);
    fx_resp_free(&r);
    /* this deployment's token does not open another's */
    assert_int_equal(post_reports(&d, other, token, body, &r), 401);
    fx_resp_free(&r);
    assert_int_equal(post_reports(&d, uuid, token, "{\"resource\":\"x\"}", &r), 400);
    fx_resp_free(&r);
    assert_int_equal(post_reports(&d, uuid, token, "{\"resource\":1,\"reports\":[]}", &r), 400);
    fx_resp_free(&r);
    /* a resource of another deployment */
    json_t *theirs = resource_of(&d, other, "web");
    char foreign[512];
    snprintf(foreign, sizeof(foreign), "{\"resource\":\"%s\",\"reports\":[]}",
             json_string_value(json_object_get(theirs, "uuid")));
    assert_int_equal(post_reports(&d, uuid, token, foreign, &r), 404);
    assert_non_null(strstr(r.body, "is not in deployment"));
    fx_resp_free(&r);
    json_decref(theirs);
    /* a report that is malformed is named */
    char bad[512];
    snprintf(bad, sizeof(bad), "{\"resource\":\"%s\",\"reports\":[{\"type\":\"workload\"}]}",
             json_string_value(json_object_get(web, "uuid")));
    assert_int_equal(post_reports(&d, uuid, token, bad, &r), 400);
    assert_non_null(strstr(r.body, "reports[0]"));
    fx_resp_free(&r);
    /* a good batch is acknowledged with its highest seq */
    assert_int_equal(post_reports(&d, uuid, token, body, &r), 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "accepted")), 7);
    fx_resp_free(&r);
    free(token);
    json_decref(web);
    json_decref(box);
    fx_undeploy(&d, uuid, 30000);
    fx_undeploy(&d, other, 30000);
    fx_stop(&d);
}

/* SIGTERM, wait for the exit; the directory stays (the restart uses it). */
static void daemon_down(struct fx_daemon *d)
{
    int status;

    curl_easy_cleanup(d->curl);
    d->curl = fx_cur_curl = NULL;
    kill(d->pid, SIGTERM);
    assert_int_equal(waitpid(d->pid, &status, 0), d->pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    live_pid = 0;
}

static void daemon_up_again(struct fx_daemon *d, const char *listen)
{
    char plugins[512];
    const char *env[] = {"ORC_DRV_STRICT=1", plugins, NULL};

    snprintf(plugins, sizeof(plugins), "ORCHESTRATOR_PLUGIN_DIR=%s", env_or("PLUGIN_DIR", ""));
    fx_listen = listen;
    d->pid = daemon_spawn_env(d->dir, NULL, d->log, d->url, sizeof(d->url), env);
    fx_listen = NULL;
    fx_wait_engine(d);
    d->curl = curl_easy_init();
    fx_cur_curl = d->curl;
}

/* The orchestrator goes away and comes back: the agent's reports made
 * meanwhile wait in its queue and arrive. */
static void test_reports_survive_orchestrator_restart(void **state)
{
    struct fx_daemon d;
    char uuid[64], listen[256];
    json_t *web;

    (void)state;
    fx_start(&d, "agent-offline", NULL, agent_env);
    deploy_service(&d, uuid);
    json_decref(wait_attr(&d, uuid, "web", "workload_state", "ready", 10000));
    pid_t pid = agent_pid(&d, uuid);
    snprintf(listen, sizeof(listen), "%s", d.url + strlen("http://"));
    daemon_down(&d);
    int64_t down_ms = (int64_t)time(NULL) * 1000;
    fx_sleep_ms(1500); /* heartbeats fail and wait */
    assert_int_equal(kill(pid, 0), 0); /* the agent and its workload run on */
    daemon_up_again(&d, listen);
    /* the next retry (backoff at most a few seconds by now) delivers */
    double end = fx_now_ms() + 15000;
    int64_t last = 0;
    do {
        web = node_attrs(&d, uuid, "web");
        last = json_integer_value(json_object_get(json_object_get(web, "agent"), "last_report_ms"));
        json_decref(web);
        if (last > down_ms + 1000)
            break;
        fx_sleep_ms(100);
    } while (fx_now_ms() < end);
    assert_true(last > down_ms + 1000);
    assert_int_equal(agent_pid(&d, uuid), pid); /* the same agent, adopted */
    fx_undeploy(&d, uuid, 30000);
    fx_stop(&d);
}


/* examples/gpu-train-serve.yaml on the local site with its defaults: the
 * training job (gpu-train, on the CPU here) writes the checkpoint, the
 * serving service (gpu-serve) loads it; the endpoint output answers the
 * DEEPaaS v2 API and predicts. */
static void test_train_then_serve_example(void **state)
{
    struct fx_daemon d;
    char uuid[64], extra[128], url[512], *text = NULL;
    char *tmpl = fx_example("examples/gpu-train-serve.yaml");
    json_t *dep, *models;

    (void)state;
    fx_start(&d, "agent-example", NULL, agent_env);
    snprintf(extra, sizeof(extra), "{\"parameters\": {\"port\": %u}}", (unsigned)test_free_port());
    json_decref(fx_create(&d, tmpl, extra, uuid));
    free(tmpl);
    dep = fx_wait_status(&d, uuid, "CREATE_COMPLETE|CREATE_FAILED", 120000);
    if (strcmp(json_string_value(json_object_get(dep, "status")), "CREATE_COMPLETE") != 0) {
        fx_dump_log(&d);
        fail_msg("%s", json_string_value(json_object_get(dep, "statusReason")));
    }
    const char *endpoint =
        json_string_value(json_object_get(json_object_get(dep, "outputs"), "endpoint"));
    assert_non_null(endpoint);
    assert_int_equal(fx_url_fetch(endpoint, NULL, &text), 200);
    models = json_loads(text, 0, NULL);
    free(text);
    const char *name =
        json_string_value(json_object_get(json_array_get(json_object_get(models, "models"), 0),
                                          "name"));
    assert_non_null(name);
    snprintf(url, sizeof(url), "%s%s/predict/", endpoint, name);
    json_decref(models);
    assert_int_equal(fx_url_fetch(url, "{\"inputs\": [[0.5, 0.25], [-0.75, 0.1]]}", &text), 200);
    json_t *answer = json_loads(text, 0, NULL);
    free(text);
    assert_string_equal(json_string_value(json_object_get(answer, "status")), "OK");
    assert_int_equal(json_array_size(json_object_get(answer, "predictions")), 2);
    json_decref(answer);
    json_decref(dep);
    fx_undeploy(&d, uuid, 30000);
    fx_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_reports_become_attributes, fx_teardown),
        cmocka_unit_test_teardown(test_endpoint_refusals, fx_teardown),
        cmocka_unit_test_teardown(test_reports_survive_orchestrator_restart, fx_teardown),
        cmocka_unit_test_teardown(test_train_then_serve_example, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
