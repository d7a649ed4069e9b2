/*
 * Crash safety of the real daemon: 50 deployments in flight on two sim
 * sites (latency and injected failures), the daemon killed with SIGKILL at
 * random moments and restarted on the same data directory; every deployment
 * must reach a final state, the sim clouds must hold exactly the resources of
 * the completed ones, and after deleting everything nothing may be left at
 * either provider (no leak, no duplicate).
 */
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "daemon_fixture.h"

#define N_DEPLOYMENTS 50
#define N_KILLS 4

struct daemon {
    pid_t pid;
    char dir[64];
    char url[64];
    int starts;
};

static void daemon_start(struct daemon *d)
{
    char log[128], sites[128];

    snprintf(log, sizeof(log), "%s/daemon-%d.log", d->dir, d->starts++);
    snprintf(sites, sizeof(sites), "%s/sites.yaml", d->dir);
    d->pid = daemon_spawn(d->dir, sites, log, d->url, sizeof(d->url));
}

static void daemon_kill(struct daemon *d)
{
    int status;

    kill(d->pid, SIGKILL);
    assert_int_equal(waitpid(d->pid, &status, 0), d->pid);
    live_pid = 0;
}

/* One request to d; 0 when it did not answer (it may be dead). */
static long http(const struct daemon *d, const char *method, const char *path, const char *json,
                 json_t **out)
{
    return fx_call(d->url, method, path, json, out);
}

/* Every deployment the daemon knows, with its status. */
static json_t *all_deployments(const struct daemon *d)
{
    json_t *page = NULL;
    long code = 0;

    for (int i = 0; i < 100 && code != 200; i++) {
        json_decref(page);
        page = NULL;
        code = http(d, "GET", "/deployments?size=100", NULL, &page);
        if (code != 200)
            usleep(50000);
    }
    assert_int_equal(code, 200);
    return page;
}

static bool all_final(const json_t *page, size_t *complete, size_t *failed)
{
    const json_t *content = json_object_get(page, "content"), *d;
    size_t i;
    bool final = true;

    *complete = *failed = 0;
    json_array_foreach(content, i, d)
    {
        const char *st = json_string_value(json_object_get(d, "status"));
        if (strcmp(st, "CREATE_COMPLETE") == 0)
            (*complete)++;
        else if (strcmp(st, "CREATE_FAILED") == 0) {
            (*failed)++;
            assert_non_null(json_object_get(d, "statusReason"));
        } else
            final = false;
    }
    return final;
}

/* Resources a sim cloud holds, from its inventory file. */
static size_t cloud_resources(const struct daemon *d, const char *site)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s.json", d->dir, site);
    return test_sim_resources(path);
}

static void write_sites(const struct daemon *d)
{
    char path[128];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/sites.yaml", d->dir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp,
            "sites:\n"
            "  - name: flaky\n"
            "    driver: sim\n"
            "    priority: 10\n"
            "    config: {inventory: \"%s/flaky.json\", seed: 7, failures: {provision: 0.3},\n"
            "             latency: {default: {fixed_ms: 20, jitter_ms: 80}}}\n"
            "  - name: steady\n"
            "    driver: sim\n"
            "    config: {inventory: \"%s/steady.json\", latency: {default: {fixed_ms: 10, "
            "jitter_ms: 60}}}\n",
            d->dir, d->dir);
    fclose(fp);
}

static char *read_template(void)
{
    FILE *fp = fopen("examples/gpu-serving.yaml", "rb");
    char *text = calloc(1, 65536);

    assert_non_null(fp);
    assert_true(fread(text, 1, 65535, fp) > 0);
    fclose(fp);
    return text;
}

static void submit_all(struct daemon *d)
{
    char *text = read_template();
    json_t *body = json_pack("{s:s,s:{}}", "template", text, "parameters");
    char *payload = json_dumps(body, JSON_COMPACT);
    int kills = 0;

    srand((unsigned)time(NULL));
    for (int i = 0; i < N_DEPLOYMENTS; i++) {
        long code = http(d, "POST", "/deployments", payload, NULL);
        assert_true(code == 201 || code == 0); /* 0: killed under it */
        if (kills < N_KILLS && rand() % (N_DEPLOYMENTS / N_KILLS) == 0) {
            usleep((useconds_t)(rand() % 150000));
            daemon_kill(d);
            daemon_start(d);
            kills++;
        }
    }
    while (kills++ < N_KILLS) { /* the rest while they run */
        usleep((useconds_t)(50000 + rand() % 200000));
        daemon_kill(d);
        daemon_start(d);
    }
    free(payload);
    json_decref(body);
    free(text);
}

static void kill9_loses_and_leaks_nothing(void **state)
{
    struct daemon d = {0};
    json_t *page = NULL;
    size_t complete = 0, failed = 0, total;
    char cmd[128];

    (void)state;
    snprintf(d.dir, sizeof(d.dir), "/tmp/test-crash-XXXXXX");
    assert_non_null(mkdtemp(d.dir));
    write_sites(&d);
    daemon_start(&d);
    submit_all(&d);
    for (int i = 0; i < 600; i++) {
        json_decref(page);
        page = all_deployments(&d);
        if (all_final(page, &complete, &failed))
            break;
        usleep(100000);
    }
    total = json_array_size(json_object_get(page, "content"));
    fprintf(stderr, "%zu deployments: %zu complete, %zu failed after %d restarts\n", total,
            complete, failed, N_KILLS);
    assert_true(total >= N_DEPLOYMENTS - N_KILLS); /* a POST cut by a kill may be lost */
    assert_int_equal(complete + failed, total);
    /* one compute node per completed deployment, nothing of the failed ones */
    assert_int_equal(cloud_resources(&d, "flaky") + cloud_resources(&d, "steady"), complete);
    /* delete everything: the clouds end empty */
    {
        const json_t *content = json_object_get(page, "content"), *dep;
        size_t i;
        json_array_foreach(content, i, dep)
        {
            char path[128];
            snprintf(path, sizeof(path), "/deployments/%s",
                     json_string_value(json_object_get(dep, "uuid")));
            assert_int_equal(http(&d, "DELETE", path, NULL, NULL), 204);
        }
    }
    daemon_kill(&d); /* once more in the middle of the deletes */
    daemon_start(&d);
    for (int i = 0; i < 600; i++) {
        json_decref(page);
        page = all_deployments(&d);
        if (json_array_size(json_object_get(page, "content")) == 0)
            break;
        usleep(100000);
    }
    assert_int_equal(json_array_size(json_object_get(page, "content")), 0);
    assert_int_equal(cloud_resources(&d, "flaky") + cloud_resources(&d, "steady"), 0);
    json_decref(page);
    daemon_kill(&d);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d.dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(kill9_loses_and_leaks_nothing, kill_leftover)};
    int rc;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
