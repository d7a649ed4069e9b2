/*
 * The soak test of several daemons (issue 8, docs/engine.md): three daemons on one
 * PostgreSQL store and two shared sim clouds (one failing 10% of provisions); the
 * deployments (provisions of 1 to 3 s) are sent to the daemons in turn while one daemon,
 * chosen at random, is killed with SIGKILL every SOAK_KILL_EVERY_MS (700) and started
 * again; then everything is
 * deleted, with kills going on. Every deployment must reach a final state exactly once
 * (one final status event), each completed one must hold its node at the cloud once,
 * and at the end the clouds must be empty: nothing provisioned twice, nothing leaked.
 *
 * make test runs a short version (SOAK_DEPLOYMENTS=60); tests/soak/run.sh the long one
 * (1,000 deployments). The database is ORC_TEST_PG_URL's, or a server started here.
 */
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "testutil.h"
#include "daemon_fixture.h"
#include "testbed_fixture.h"

#define N_DAEMONS 3

struct soak_daemon {
    pid_t pid;
    char dir[96];
    char url[64];
    char instance[64];
    int starts;
};

static struct tb_pg pg;
static char store_env[400], top_dir[48];
static struct soak_daemon daemons[N_DAEMONS];
static int n_deployments, kill_every_ms;
static unsigned kills;

static int env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

static void write_sites(const struct soak_daemon *d)
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
            "    config: {inventory: \"%s/flaky.json\", shared: true, seed: %ld,\n"
            "             capacity: {cpus: 100000, mem: 100 TiB, gpus: {A100: 10000, T4: 10000}},\n"
            "             failures: {provision: 0.1},\n"
            "             latency: {default: {fixed_ms: 20, jitter_ms: 80}, provision: "
            "{fixed_ms: 1000, jitter_ms: 2000}}}\n"
            "  - name: steady\n"
            "    driver: sim\n"
            "    config: {inventory: \"%s/steady.json\", shared: true,\n"
            "             capacity: {cpus: 100000, mem: 100 TiB, gpus: {A100: 10000, T4: 10000}},\n"
            "             latency: {default: {fixed_ms: 10, jitter_ms: 60}, provision: "
            "{fixed_ms: 1000, jitter_ms: 2000}, deprovision: {fixed_ms: 300, jitter_ms: 700}}}\n",
            top_dir, (long)(d - daemons) + 1, top_dir);
    fclose(fp);
}

static void daemon_up(struct soak_daemon *d)
{
    char log[128], sites[128];
    const char *env[] = {store_env, "ORCHESTRATOR_LEASE_TIME=1500ms", d->instance, NULL};

    snprintf(log, sizeof(log), "%s/daemon-%d.log", d->dir, d->starts++);
    snprintf(sites, sizeof(sites), "%s/sites.yaml", d->dir);
    d->pid = daemon_spawn_env(d->dir, sites, log, d->url, sizeof(d->url), env);
    live_pid = 0; /* several: the test's teardown kills them */
}

static void daemon_kill9(struct soak_daemon *d)
{
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    d->pid = 0;
    kills++;
}

/* One request to d; 0 when it did not answer (it may be dead). */
static long http(const struct soak_daemon *d, const char *method, const char *path, const char *json,
                 json_t **out)
{
    return fx_call(d->url, method, path, json, out);
}

/* Every so often a random daemon dies and comes back. */
static void maybe_kill(double *next_kill)
{
    struct soak_daemon *d;

    if (fx_now_ms() < *next_kill)
        return;
    d = &daemons[rand() % N_DAEMONS];
    daemon_kill9(d);
    daemon_up(d);
    *next_kill = fx_now_ms() + kill_every_ms;
}

/* A daemon that answers (the others may be dying), round robin. */
static struct soak_daemon *any_daemon(unsigned *turn)
{
    return &daemons[(*turn)++ % N_DAEMONS];
}

/* The uuid and status of every deployment, through whichever daemon answers. */
static json_t *all_deployments(unsigned *turn)
{
    json_t *all = json_array();

    for (int page = 0;; page++) {
        char path[96];
        json_t *p = NULL, *content;
        long code = 0;
        for (int i = 0; i < 50 && code != 200; i++) {
            json_decref(p);
            p = NULL;
            snprintf(path, sizeof(path), "/deployments?size=100&page=%d", page);
            code = http(any_daemon(turn), "GET", path, NULL, &p);
            if (code != 200)
                fx_sleep_ms(100);
        }
        assert_int_equal(code, 200);
        content = json_object_get(p, "content");
        json_array_extend(all, content);
        if (json_array_size(content) < 100) {
            json_decref(p);
            break;
        }
        json_decref(p);
    }
    return all;
}

static size_t count_status(const json_t *all, const char *prefix, size_t *in_progress)
{
    size_t n = 0, i;
    json_t *d;

    *in_progress = 0;
    json_array_foreach(all, i, d)
    {
        const char *st = json_string_value(json_object_get(d, "status"));
        n += strncmp(st, prefix, strlen(prefix)) == 0;
        *in_progress += strstr(st, "IN_PROGRESS") != NULL;
    }
    return n;
}

/* The final status events of a deployment: exactly one is right. */
static size_t final_status_events(unsigned *turn, const char *uuid)
{
    char path[128];
    json_t *list = NULL, *e;
    size_t n = 0, i;
    long code = 0;

    snprintf(path, sizeof(path), "/deployments/%s/events", uuid);
    for (int k = 0; k < 50 && code != 200; k++) {
        json_decref(list);
        list = NULL;
        code = http(any_daemon(turn), "GET", path, NULL, &list);
        if (code != 200)
            fx_sleep_ms(100);
    }
    assert_int_equal(code, 200);
    assert_true(json_is_array(list));
    json_array_foreach(list, i, e)
    {
        const char *type = json_string_value(json_object_get(e, "type"));
        const char *st =
            json_string_value(json_object_get(json_object_get(e, "data"), "status"));
        if (type && strcmp(type, "deployment.status") == 0 && st)
            n += strcmp(st, "CREATE_COMPLETE") == 0 || strcmp(st, "CREATE_FAILED") == 0;
    }
    json_decref(list);
    return n;
}

static size_t cloud(const char *site, const char *uuid)
{
    struct fx_daemon view;

    memset(&view, 0, sizeof(view));
    snprintf(view.dir, sizeof(view.dir), "%s", top_dir);
    return fx_sim_count(&view, site, uuid);
}

static void submit_all(unsigned *turn, double *next_kill)
{
    char *text = fx_example("examples/gpu-serving.yaml");
    json_t *body = json_pack("{s:s,s:{}}", "template", text, "parameters");
    char *payload = json_dumps(body, JSON_COMPACT);

    for (int i = 0; i < n_deployments; i++) {
        long code = 0;
        for (int k = 0; k < 20 && code != 201; k++) { /* another daemon when one is down */
            code = http(any_daemon(turn), "POST", "/deployments", payload, NULL);
            if (code != 201)
                fx_sleep_ms(50);
        }
        assert_int_equal(code, 201);
        maybe_kill(next_kill);
    }
    free(payload);
    json_decref(body);
    free(text);
}

static void wait_final(unsigned *turn, double *next_kill, const char *what, double deadline_ms)
{
    double end = fx_now_ms() + deadline_ms;
    size_t in_progress = 1;

    while (in_progress > 0) {
        json_t *all = all_deployments(turn);
        count_status(all, "", &in_progress);
        json_decref(all);
        if (in_progress == 0)
            break;
        if (fx_now_ms() > end)
            fail_msg("%s: %zu deployments still in progress", what, in_progress);
        maybe_kill(next_kill);
        fx_sleep_ms(200);
    }
}

static void three_daemons_killed_at_random(void **state)
{
    unsigned turn = 0;
    double t0 = fx_now_ms(), next_kill, t_created, t_deleted;
    size_t complete, failed, in_progress, i;
    json_t *all, *d;

    (void)state;
    srand((unsigned)time(NULL));
    next_kill = fx_now_ms() + kill_every_ms;
    submit_all(&turn, &next_kill);
    wait_final(&turn, &next_kill, "create", 120000.0 + n_deployments * 500.0);
    t_created = fx_now_ms();
    all = all_deployments(&turn);
    assert_int_equal(json_array_size(all), n_deployments);
    complete = count_status(all, "CREATE_COMPLETE", &in_progress);
    failed = count_status(all, "CREATE_FAILED", &in_progress);
    assert_int_equal(complete + failed, n_deployments);
    json_array_foreach(all, i, d)
    {
        const char *uuid = json_string_value(json_object_get(d, "uuid"));
        const char *st = json_string_value(json_object_get(d, "status"));
        size_t held = cloud("flaky", uuid) + cloud("steady", uuid);
        if (final_status_events(&turn, uuid) != 1)
            fail_msg("deployment %s: not exactly one final status", uuid);
        if (strcmp(st, "CREATE_COMPLETE") == 0 && held != 1)
            fail_msg("deployment %s is complete with %zu nodes at the clouds", uuid, held);
        if (strcmp(st, "CREATE_FAILED") == 0 && held != 0)
            fail_msg("deployment %s failed with %zu nodes left at the clouds", uuid, held);
    }
    /* everything goes, with the kills going on */
    json_array_foreach(all, i, d)
    {
        char path[128];
        long code = 0;
        snprintf(path, sizeof(path), "/deployments/%s",
                 json_string_value(json_object_get(d, "uuid")));
        for (int k = 0; k < 20 && code != 204; k++) {
            code = http(any_daemon(&turn), "DELETE", path, NULL, NULL);
            if (code != 204)
                fx_sleep_ms(50);
        }
        assert_int_equal(code, 204);
        maybe_kill(&next_kill);
    }
    json_decref(all);
    for (double end = fx_now_ms() + 120000.0 + n_deployments * 500.0;;) {
        json_t *left = all_deployments(&turn);
        size_t n = json_array_size(left);
        json_decref(left);
        if (n == 0)
            break;
        if (fx_now_ms() > end)
            fail_msg("delete: %zu deployments left", n);
        maybe_kill(&next_kill);
        fx_sleep_ms(200);
    }
    t_deleted = fx_now_ms();
    assert_int_equal(cloud("flaky", NULL), 0);
    assert_int_equal(cloud("steady", NULL), 0);
    print_message("soak: %d deployments on %d daemons, %zu complete, %zu failed (10%% of "
                  "provisions fail at one cloud), %u kills; created in %.1f s, deleted in "
                  "%.1f s; nothing twice, nothing left\n",
                  n_deployments, N_DAEMONS, complete, failed, kills, (t_created - t0) / 1000,
                  (t_deleted - t_created) / 1000);
}

static int setup(void **state)
{
    const char *url = getenv("ORC_TEST_PG_URL");
    char fake_dir[96];

    (void)state;
    n_deployments = env_int("SOAK_DEPLOYMENTS", 60);
    kill_every_ms = env_int("SOAK_KILL_EVERY_MS", 700);
    if (url == NULL || *url == '\0') {
        if (!tb_pg_start(&pg))
            return -1;
        setenv("ORC_TEST_PG_URL", pg.url, 1);
    }
    snprintf(top_dir, sizeof(top_dir), "/tmp/test-soak-XXXXXX");
    if (mkdtemp(top_dir) == NULL)
        return -1;
    snprintf(fake_dir, sizeof(fake_dir), "/tmp/test-soak-db-%ld", (long)getpid());
    if (!fx_pg_store(fake_dir, store_env, sizeof(store_env)))
        return -1;
    for (int i = 0; i < N_DAEMONS; i++) {
        struct soak_daemon *d = &daemons[i];
        snprintf(d->dir, sizeof(d->dir), "%s/d%d", top_dir, i);
        mkdir(d->dir, 0700);
        snprintf(d->instance, sizeof(d->instance), "ORCHESTRATOR_INSTANCE=soak-%d", i);
        write_sites(d);
        daemon_up(d);
    }
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    for (int i = 0; i < N_DAEMONS; i++)
        if (daemons[i].pid > 0) {
            kill(daemons[i].pid, SIGTERM);
            waitpid(daemons[i].pid, NULL, 0);
        }
    if (getenv("FX_KEEP_DIRS") == NULL) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", top_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cannot remove %s\n", top_dir);
    }
    if (pg.dir[0] != '\0') {
        unsetenv("ORC_TEST_PG_URL");
        tb_pg_stop(&pg);
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(three_daemons_killed_at_random),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
