/*
 * The API's reads off the loop (store_readers, docs/engine.md "The store") against the
 * real daemon over HTTP: with two reader threads, the list and the GET of a deployment,
 * the list of its resources and the GET of one answer as on the loop (paging, 404 for a
 * deployment or resource that is not there or not its, a deleted deployment gone) and
 * /metrics counts the reads. On PostgreSQL, while another session holds an
 * exclusive lock on the deployments table, a list waits for it on a reader thread and
 * the daemon keeps answering /healthz at once; the list answers once the lock goes.
 * (On the loop, the same list would hold every answer until then.)
 */
#include <pthread.h>
#include <unistd.h>

#include "testutil.h"
#include "daemon_fixture.h"

static const char site[] = "sites:\n"
                           "  - name: sim-a\n"
                           "    driver: sim\n"
                           "    config: {inventory: \"@DIR@/sim-a.json\", capacity: {cpus: 64,\n"
                           "             mem: 256 GiB, gpus: {A100: 8}}}\n";

static const char *const env[] = {"ORCHESTRATOR_STORE_READERS=2", "ORCHESTRATOR_LEASE_TIME=600s",
                                  NULL};

static long metric(struct fx_daemon *d, const char *name)
{
    struct fx_resp r;
    const char *at;
    long v = -1;

    assert_int_equal(fx_get(d, "/metrics", &r), 200);
    at = strstr(r.body, name);
    while (at && at > r.body && at[-1] != '\n') /* the sample's line, not its HELP */
        at = strstr(at + 1, name);
    if (at && at[strlen(name)] == ' ')
        v = strtol(at + strlen(name) + 1, NULL, 10);
    fx_resp_free(&r);
    return v;
}

static json_int_t total(json_t *page)
{
    return json_integer_value(json_object_get(json_object_get(page, "page"), "totalElements"));
}

static void gets_answer_through_the_readers(void **state)
{
    struct fx_daemon d;
    char a[64], b[64], rid[64], path[200];
    struct fx_resp r;
    json_t *page;
    long before;

    (void)state;
    fx_start(&d, "test-readers", site, env);
    assert_int_equal(metric(&d, "orchestrator_store_readers"), 2);
    json_decref(fx_create(&d, fx_training, NULL, a));
    json_decref(fx_create(&d, fx_training, NULL, b));
    json_decref(fx_wait_status(&d, a, "CREATE_COMPLETE", 20000));
    json_decref(fx_wait_status(&d, b, "CREATE_COMPLETE", 20000));
    before = metric(&d, "orchestrator_store_reads_total");
    assert_true(before >= 2); /* fx_wait_status's GETs went through them */

    page = fx_get_json(&d, "/deployments?size=1");
    assert_int_equal(total(page), 2);
    assert_int_equal(json_array_size(json_object_get(page, "content")), 1);
    json_decref(page);
    snprintf(path, sizeof(path), "/deployments/%s", a);
    assert_int_equal(fx_get(&d, path, &r), 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "uuid")), a);
    assert_string_equal(json_string_value(json_object_get(r.json, "status")), "CREATE_COMPLETE");
    fx_resp_free(&r);
    fx_expect_error(&d, "GET", "/deployments/0190b5b4-7e4c-7000-8000-000000000000", NULL, 404,
                    "doesn't exist");
    fx_expect_error(&d, "GET", "/deployments/not-a-uuid", NULL, 404, "doesn't exist");
    snprintf(path, sizeof(path), "/deployments/%s/resources", a);
    page = fx_get_json(&d, path);
    assert_true(total(page) >= 1);
    snprintf(rid, sizeof(rid), "%s",
             json_string_value(
                 json_object_get(json_array_get(json_object_get(page, "content"), 0), "uuid")));
    json_decref(page);
    snprintf(path, sizeof(path), "/deployments/%s/resources/%s", a, rid);
    assert_int_equal(fx_get(&d, path, &r), 200);
    assert_string_equal(json_string_value(json_object_get(r.json, "uuid")), rid);
    fx_resp_free(&r);
    snprintf(path, sizeof(path), "/deployments/%s/resources/%s", b, rid); /* a's, not b's */
    fx_expect_error(&d, "GET", path, NULL, 404, "doesn't exist in deployment");
    snprintf(path, sizeof(path), "/deployments/%s/resources/x", a);
    fx_expect_error(&d, "GET", path, NULL, 404, "The resource x doesn't exist");
    snprintf(path, sizeof(path), "/deployments/%s", a);
    assert_true(metric(&d, "orchestrator_store_reads_total") >=
                before + 7); /* not-a-uuid never reached the store */
    assert_int_equal(metric(&d, "orchestrator_store_reads_refused_total"), 0);

    fx_undeploy(&d, a, 20000);
    fx_expect_error(&d, "GET", path, NULL, 404, "doesn't exist"); /* deleted: gone */
    page = fx_get_json(&d, "/deployments");
    assert_int_equal(total(page), 1);
    json_decref(page);
    fx_stop(&d);
}

/* ---- PostgreSQL: a locked table ---- */

struct pending_list {
    const char *url;
    long status;
    json_t *page;
    int ended; /* atomic */
};

static void *list_in_thread(void *arg)
{
    struct pending_list *p = arg;

    p->status = fx_call(p->url, "GET", "/deployments", NULL, &p->page);
    __atomic_store_n(&p->ended, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static PGconn *lock_deployments(const char *dir)
{
    char store[400];
    PGconn *c;
    PGresult *r;

    assert_true(fx_pg_store(dir, store, sizeof(store)));
    c = PQconnectdb(store + strlen("ORCHESTRATOR_STORE="));
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    r = PQexec(c, "BEGIN; LOCK TABLE deployments IN ACCESS EXCLUSIVE MODE");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    return c;
}

static void a_locked_store_holds_the_list_not_the_loop(void **state)
{
    struct fx_daemon d;
    struct pending_list p = {0};
    char uuid[64];
    pthread_t t;
    PGconn *lock;
    double asked, answered;
    long health;

    (void)state;
    if (getenv("ORC_TEST_PG_URL") == NULL || !*getenv("ORC_TEST_PG_URL"))
        skip(); /* SQLite: readers never wait for a writer */
    fx_start(&d, "test-readers-lock", site, env);
    json_decref(fx_create(&d, fx_training, NULL, uuid));
    json_decref(fx_wait_status(&d, uuid, "CREATE_COMPLETE", 20000));

    lock = lock_deployments(d.dir);
    p.url = d.url;
    assert_int_equal(pthread_create(&t, NULL, list_in_thread, &p), 0);
    fx_sleep_ms(300);
    assert_true(__atomic_load_n(&p.ended, __ATOMIC_SEQ_CST) == 0); /* it waits */
    asked = fx_now_ms();
    health = fx_call(d.url, "GET", "/healthz", NULL, NULL);
    answered = fx_now_ms();
    assert_int_equal(health, 200);
    printf("healthz answered in %.1f ms while the list waited for the lock\n", answered - asked);
    assert_true(answered - asked < 1000);
    assert_true(__atomic_load_n(&p.ended, __ATOMIC_SEQ_CST) == 0);

    PQclear(PQexec(lock, "COMMIT"));
    PQfinish(lock);
    pthread_join(t, NULL);
    assert_int_equal(p.status, 200);
    assert_int_equal(total(p.page), 1);
    json_decref(p.page);
    fx_undeploy(&d, uuid, 20000);
    fx_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(gets_answer_through_the_readers, fx_teardown),
        cmocka_unit_test_teardown(a_locked_store_holds_the_list_not_the_loop, fx_teardown),
    };

    return cmocka_run_group_tests(tests, fx_examples_load, fx_examples_free);
}
