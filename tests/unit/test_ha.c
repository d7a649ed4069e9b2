/*
 * Several daemons on one PostgreSQL store (docs/engine.md, Several daemons): two
 * daemons share a database and a sim cloud (one inventory file, `shared: true`: each
 * turn of either daemon's driver works on the file under its lock); a deployment
 * created through the first is taken over by the second when the first is killed with
 * SIGKILL in the middle of its provisioning, and completes there, once (the cloud
 * provisioned each node once; one resource row per node; one attempt, resumed); a delete sent to
 * the second daemon while the first works on a deployment is done by the first, which holds the
 * lease; the live event stream of a deployment, opened on the second daemon while the first works
 * on it, shows the first's events as they happen (NOTIFY); a site registered through one daemon
 * reaches the other, and a change or a removal through either reaches both. The database is
 * ORC_TEST_PG_URL's (tests/run-pg.sh) or a server started here (deploy/testbed/postgres.sh).
 */
#include <signal.h>
#include <sys/wait.h>

#include "testutil.h"
#include "daemon_fixture.h"
#include "testbed_fixture.h"

#define LEASE_MS 1500

static struct tb_pg pg;
static const char *db_url;
static char shared_dir[64]; /* the sim cloud's inventory, seen by both daemons */
static char store_env[400], sites_yaml[512];

static int setup_all(void **state)
{
    (void)state;
    db_url = getenv("ORC_TEST_PG_URL");
    if (db_url == NULL || *db_url == '\0') {
        if (!tb_pg_start_or_say(&pg))
            return -1;
        db_url = pg.url;
    }
    snprintf(shared_dir, sizeof(shared_dir), "/tmp/test-ha-XXXXXX");
    if (mkdtemp(shared_dir) == NULL)
        return -1;
    snprintf(sites_yaml, sizeof(sites_yaml),
             "sites:\n"
             "  - name: cloud\n"
             "    driver: sim\n"
             "    config: {inventory: \"%s/cloud.json\", shared: true,\n"
             "             latency: {default: 50, provision: 2500}}\n",
             shared_dir);
    return fx_examples_load(state);
}

static int teardown_all(void **state)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", shared_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", shared_dir);
    tb_pg_stop(&pg);
    return fx_examples_free(state);
}

/* A fresh database for one test, shared by its daemons; its URL in store_env. */
static void fresh_database(const char *name)
{
    char fake_dir[96];

    snprintf(fake_dir, sizeof(fake_dir), "/tmp/%s-%ld", name, (long)getpid());
    if (!fx_pg_store(fake_dir, store_env, sizeof(store_env))) { /* ORC_TEST_PG_URL unset */
        setenv("ORC_TEST_PG_URL", db_url, 1);
        assert_true(fx_pg_store(fake_dir, store_env, sizeof(store_env)));
        unsetenv("ORC_TEST_PG_URL");
    }
}

static void start_daemon(struct fx_daemon *d, const char *name)
{
    char instance[64];
    const char *env[] = {store_env, "ORCHESTRATOR_LEASE_TIME=1500ms", instance, NULL};

    snprintf(instance, sizeof(instance), "ORCHESTRATOR_INSTANCE=%s", name);
    fx_start(d, name, sites_yaml, env);
}

static void remove_dir(const struct fx_daemon *d)
{
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
    assert_int_equal(system(cmd), 0);
}

static void kill_daemon(struct fx_daemon *d)
{
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    live_pid = 0;
    if (fx_cur_curl == d->curl)
        fx_cur_curl = NULL;
    curl_easy_cleanup(d->curl); /* fx_stop does not apply to it */
    d->curl = NULL;
}

/* The sim cloud's resources of a deployment (the inventory both daemons write). */
static size_t cloud_count(const char *uuid)
{
    struct fx_daemon view;

    memset(&view, 0, sizeof(view));
    snprintf(view.dir, sizeof(view.dir), "%s", shared_dir);
    return fx_sim_count(&view, "cloud", uuid);
}

/* How many provisions the sim cloud made, whichever daemon asked. */
static long cloud_provisioned(void)
{
    struct fx_daemon view;

    memset(&view, 0, sizeof(view));
    snprintf(view.dir, sizeof(view.dir), "%s", shared_dir);
    return fx_sim_counter(&view, "cloud", "provisioned");
}

static bool has_event(struct fx_daemon *d, const char *uuid, const char *type)
{
    json_t *ev = fx_events(d, uuid, type);
    bool yes = json_array_size(ev) > 0;

    json_decref(ev);
    return yes;
}

static void taken_over_when_its_daemon_dies(void **state)
{
    struct fx_daemon a, b;
    char uuid[64], warm[64], status[64];
    double killed, taken = 0;
    json_t *dep;

    (void)state;
    fresh_database("test-ha-takeover");
    start_daemon(&a, "ha-a");
    start_daemon(&b, "ha-b");
    /* one deployment made by a alone first: b's cloud must not forget it */
    json_decref(fx_create(&a, fx_training, NULL, warm));
    json_decref(fx_wait_status(&a, warm, "CREATE_COMPLETE", 20000));
    json_decref(fx_create(&a, fx_training, NULL, uuid));
    for (int i = 0; i < 500 && !has_event(&a, uuid, "attempt.started"); i++)
        fx_sleep_ms(10);
    assert_true(has_event(&a, uuid, "attempt.started"));
    fx_sleep_ms(300); /* its provision is under way at the cloud */
    kill_daemon(&a);
    killed = fx_now_ms();
    for (int i = 0; i < 1000 && taken == 0; i++) {
        if (has_event(&b, uuid, "deployment.takeover"))
            taken = fx_now_ms();
        else
            fx_sleep_ms(20);
    }
    assert_true(taken > 0);
    dep = fx_wait_status(&b, uuid, "CREATE_COMPLETE", 20000);
    json_decref(dep);
    fx_status(&b, uuid, status, sizeof(status), NULL);
    assert_string_equal(status, "CREATE_COMPLETE");
    /* once: the cloud made each node once (the second found the first's by name), one
     * resource row per node, and the second resumed the attempt the first had started */
    {
        char path[128];
        json_t *created = fx_events(&b, uuid, "resource.created");
        json_t *started = fx_events(&b, uuid, "attempt.started"), *res;
        snprintf(path, sizeof(path), "/deployments/%s/resources", uuid);
        res = fx_get_json(&b, path);
        assert_int_equal(json_array_size(created),
                         json_integer_value(json_object_get(json_object_get(res, "page"),
                                                            "totalElements")));
        assert_true(json_array_size(created) >= 1);
        assert_int_equal(json_array_size(started), 1);
        assert_int_equal(cloud_count(uuid), 1); /* the example's one compute node */
        assert_int_equal(cloud_count(warm), 1); /* kept: b worked on the file a wrote */
        assert_int_equal(cloud_provisioned(), 2); /* one node each, none twice */
        json_decref(created);
        json_decref(started);
        json_decref(res);
    }
    print_message("ha: taken over %.0f ms after the kill (lease %d ms: %.2fx)\n", taken - killed,
                  LEASE_MS, (taken - killed) / LEASE_MS);
    assert_true(taken - killed < 2.0 * LEASE_MS + 1000); /* the goal is < 2x; slack for a busy CI */
    {
        struct fx_resp r;
        assert_int_equal(fx_get(&b, "/metrics", &r), 200);
        assert_non_null(strstr(r.body, "\norchestrator_takeovers_total 1\n"));
        assert_non_null(strstr(r.body, "\norchestrator_leases_held "));
        fx_resp_free(&r);
    }
    /* the survivor goes on: delete there too */
    fx_undeploy(&b, uuid, 20000);
    assert_int_equal(cloud_count(uuid), 0); /* b's last write of the inventory */
    fx_stop(&b);
    remove_dir(&a); /* killed: fx_stop does not apply */
}

static void delete_through_the_other_daemon(void **state)
{
    struct fx_daemon a, b;
    struct fx_resp r;
    char uuid[64], path[128];
    long code;

    (void)state;
    fresh_database("test-ha-delete");
    start_daemon(&a, "ha-a");
    start_daemon(&b, "ha-b");
    json_decref(fx_create(&a, fx_training, NULL, uuid));
    for (int i = 0; i < 500 && !has_event(&a, uuid, "attempt.started"); i++)
        fx_sleep_ms(10);
    assert_true(has_event(&a, uuid, "attempt.started"));
    /* a works on it (holds its lease); the delete reaches b, which stores it and leaves
     * it to a; a sees it at its next renewal and turns its create into the delete */
    snprintf(path, sizeof(path), "/deployments/%s", uuid);
    code = fx_http(&b, "DELETE", path, NULL, NULL, &r);
    fx_resp_free(&r);
    assert_int_equal(code, 204);
    assert_null(fx_wait_status(&a, uuid, "", 20000)); /* gone, through either daemon */
    assert_int_equal(cloud_count(uuid), 0);
    fx_stop(&b);
    fx_stop(&a);
}

/* A site registered through one daemon reaches the other (and goes from it) without a
 * restart: each applies what the store holds every few seconds. */
static void registered_site_reaches_the_other_daemon(void **state)
{
    struct fx_daemon a, b;
    struct fx_resp r;

    (void)state;
    fresh_database("test-ha-sites");
    start_daemon(&a, "ha-a");
    start_daemon(&b, "ha-b");
    assert_int_equal(
        fx_http(&a, "POST", "/sites", NULL, "{\"name\": \"extra\", \"driver\": \"sim\"}", &r), 201);
    fx_resp_free(&r);
    fx_wait_site(&a, "extra", "active", 15000);
    fx_wait_site(&b, "extra", "active", 15000);
    assert_int_equal(
        fx_http(&b, "PUT", "/sites/extra", NULL, "{\"driver\": \"sim\", \"enabled\": false}", &r),
        200);
    fx_resp_free(&r);
    fx_wait_site(&a, "extra", "disabled", 15000);
    assert_int_equal(fx_http(&a, "DELETE", "/sites/extra", NULL, NULL, &r), 204);
    fx_resp_free(&r);
    fx_wait_site(&b, "extra", "", 15000);
    fx_stop(&b);
    fx_stop(&a);
}

/* An event stream read until its text holds want (then cut), or the time runs out. */
struct stream_read {
    char text[65536];
    size_t len;
    const char *want;
};

static size_t on_stream(char *p, size_t size, size_t n, void *ud)
{
    struct stream_read *sr = ud;
    size_t k = size * n;

    if (sr->len + k >= sizeof(sr->text))
        k = sizeof(sr->text) - 1 - sr->len;
    memcpy(sr->text + sr->len, p, k);
    sr->len += k;
    sr->text[sr->len] = '\0';
    return strstr(sr->text, sr->want) ? 0 : size * n; /* 0: enough, cut */
}

static void stream_on_the_other_daemon(void **state)
{
    static struct stream_read sr;
    struct fx_daemon a, b;
    struct curl_slist *h = curl_slist_append(NULL, "Accept: text/event-stream");
    char uuid[64], url[256];
    CURL *c = curl_easy_init();

    (void)state;
    fresh_database("test-ha-stream");
    start_daemon(&a, "ha-a");
    start_daemon(&b, "ha-b");
    json_decref(fx_create(&a, fx_training, NULL, uuid));
    memset(&sr, 0, sizeof(sr));
    sr.want = "CREATE_COMPLETE";
    snprintf(url, sizeof(url), "%s/deployments/%s/events", b.url, uuid);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_stream);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sr);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L); /* the create takes about 3 s */
    curl_easy_perform(c);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    if (strstr(sr.text, "CREATE_COMPLETE") == NULL)
        fail_msg("b's stream did not show a's CREATE_COMPLETE: %s", sr.text);
    assert_non_null(strstr(sr.text, "attempt.started"));
    fx_stop(&b);
    fx_stop(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(taken_over_when_its_daemon_dies, fx_teardown),
        cmocka_unit_test_teardown(delete_through_the_other_daemon, fx_teardown),
        cmocka_unit_test_teardown(stream_on_the_other_daemon, fx_teardown),
        cmocka_unit_test_teardown(registered_site_reaches_the_other_daemon, fx_teardown),
    };

    return cmocka_run_group_tests(tests, setup_all, teardown_all);
}
