/*
 * Unit tests of the store's reader threads (orchestrator/store/readers.c): reads run on
 * the pool's threads, each on its own handle, and their done callbacks on the loop
 * thread; the loop goes on (a timer fires) while every reader is stuck; the queue is
 * bounded (ORC_EAGAIN past max_waiting, counted); closing cancels the waiting reads
 * and lets the running one finish, and on PostgreSQL interrupts one stuck on a lock; a reader sees
 * only committed writes (a group open on the loop's handle is invisible until its commit); an
 * in-memory store is refused. Each test runs on a fresh SQLite file, then again on a real
 * PostgreSQL server (deploy/testbed/postgres.sh, started here), each on an emptied database.
 */
#include <pthread.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "testutil.h"

#include "testbed_fixture.h"

#include "store/readers.h"
#include "store/store.h"

static const char *pg_url; /* the PostgreSQL run's database; NULL: the SQLite run */

struct fx {
    char dir[256];
    char path[320];
    orc_store_t *s; /* the loop's handle */
    uv_loop_t loop;
    orc_readers_t *readers;
};

static void pg_reset(const char *url)
{
    PGconn *c = PQconnectdb(url);

    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    PQclear(PQexec(c, "DROP SCHEMA public CASCADE; CREATE SCHEMA public"));
    PQfinish(c);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char err[256];

    if (f == NULL || test_mkdtemp(f->dir, sizeof(f->dir), "orc-readers") < 0)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/data/store.db", f->dir);
    if (pg_url != NULL) {
        snprintf(f->path, sizeof(f->path), "%s", pg_url);
        pg_reset(pg_url);
    }
    if (uv_loop_init(&f->loop) != 0 || orc_store_open(f->path, &f->s, err, sizeof(err)) != 0) {
        fprintf(stderr, "open: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    orc_readers_close(f->readers);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* the pool's close */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    orc_store_close(f->s);
    test_rm_tree(f->dir);
    free(f);
    return 0;
}

static void open_pool(struct fx *f, unsigned threads, unsigned max_waiting)
{
    struct orc_readers_opts o = {.threads = threads, .max_waiting = max_waiting};
    char err[256];
    int rc = orc_readers_new(&f->loop, f->path, &o, &f->readers, err, sizeof(err));

    if (rc != 0)
        fprintf(stderr, "readers: %s\n", err);
    assert_int_equal(rc, 0);
}

static const char TEMPLATE[] = "tosca_definitions_version: tosca_simple_yaml_1_0\n"
                               "topology_template:\n  node_templates: {}\n";

static void insert_dep(orc_store_t *s, orc_deployment_t *d)
{
    memset(d, 0, sizeof(*d));
    d->created_by.issuer = (char *)"https://iam.example";
    d->created_by.subject = (char *)"alice";
    d->template_text = (char *)TEMPLATE;
    assert_int_equal(orc_store_deployment_insert(s, d), 0);
}

/* ---- one read record for every test ---- */

struct test_read {
    orc_read_t r;
    struct fx *f;
    char uuid[ORC_UUID_LEN];
    pthread_t ran_on;  /* the thread fn ran on */
    pthread_t done_on; /* the thread done ran on */
    uv_sem_t *gate;    /* fn waits for it first (NULL: no wait) */
    uint64_t total;    /* the list's total */
    int status;        /* the deployment's, ORC_DEP_* */
    int done;          /* done calls */
    int *done_count;   /* done calls of every read */
};

static int read_list(orc_store_t *s, orc_read_t *r)
{
    struct test_read *t = (struct test_read *)r;
    orc_deployment_list_t l;
    int rc;

    t->ran_on = pthread_self();
    if (t->gate)
        uv_sem_wait(t->gate);
    rc = orc_store_deployment_list(s, NULL, &l);
    if (rc == 0) {
        t->total = l.total;
        orc_deployment_list_clear(&l);
    }
    return rc;
}

static int read_head(orc_store_t *s, orc_read_t *r)
{
    struct test_read *t = (struct test_read *)r;
    orc_deployment_t *d = NULL;
    int rc;

    t->ran_on = pthread_self();
    rc = orc_store_deployment_get_head(s, t->uuid, &d);
    if (rc == 0)
        t->status = (int)d->status;
    orc_deployment_free(d);
    return rc;
}

static void on_done(orc_read_t *r)
{
    struct test_read *t = (struct test_read *)r;

    t->done_on = pthread_self();
    t->done++;
    (*t->done_count)++;
}

static void run_until(uv_loop_t *loop, const int *count, int want)
{
    for (int i = 0; i < 5000 && *count < want; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(*count, want);
}

/* ---- tests ---- */

static void reads_run_off_the_loop_and_answer_on_it(void **state)
{
    struct fx *f = *state;
    struct test_read t[12];
    orc_deployment_t d;
    struct orc_readers_stats st;
    int count = 0;

    insert_dep(f->s, &d);
    insert_dep(f->s, &d);
    open_pool(f, 3, 0);
    for (size_t i = 0; i < 12; i++) {
        memset(&t[i], 0, sizeof(t[i]));
        t[i].done_count = &count;
        if (i % 2 == 0) {
            assert_int_equal(orc_readers_submit(f->readers, &t[i].r, read_list, on_done), 0);
        } else {
            memcpy(t[i].uuid, d.uuid, ORC_UUID_LEN);
            assert_int_equal(orc_readers_submit(f->readers, &t[i].r, read_head, on_done), 0);
        }
    }
    assert_int_equal(count, 0); /* never inside submit */
    run_until(&f->loop, &count, 12);
    for (size_t i = 0; i < 12; i++) {
        assert_int_equal(t[i].done, 1);
        assert_int_equal(t[i].r.rc, 0);
        assert_false(pthread_equal(t[i].ran_on, pthread_self()));
        assert_true(pthread_equal(t[i].done_on, pthread_self()));
        if (i % 2 == 0)
            assert_int_equal(t[i].total, 2);
        else
            assert_int_equal(t[i].status, ORC_DEP_CREATE_IN_PROGRESS);
    }
    orc_readers_stats(f->readers, &st);
    assert_int_equal(st.threads, 3);
    assert_int_equal(st.done, 12);
    assert_int_equal(st.running + st.waiting, 0);
    assert_int_equal(st.refused, 0);
}

static void on_tick(uv_timer_t *timer)
{
    (*(int *)timer->data)++;
}

/* Waits (2 s at most) until a reader thread runs one read. */
static void wait_one_running(struct fx *f)
{
    struct orc_readers_stats st;

    for (int i = 0; i < 2000; i++) {
        orc_readers_stats(f->readers, &st);
        if (st.running == 1)
            return;
        usleep(1000);
    }
    fail_msg("no reader thread took the read within 2 s");
}

static void stuck_readers_leave_the_loop_running_and_the_queue_bounded(void **state)
{
    struct fx *f = *state;
    struct test_read t[4];
    uv_sem_t gate;
    uv_timer_t timer;
    struct orc_readers_stats st;
    int count = 0, ticks = 0;

    open_pool(f, 1, 2);
    assert_int_equal(uv_sem_init(&gate, 0), 0);
    for (size_t i = 0; i < 4; i++) {
        memset(&t[i], 0, sizeof(t[i]));
        t[i].gate = &gate;
        t[i].done_count = &count;
    }
    assert_int_equal(orc_readers_submit(f->readers, &t[0].r, read_list, on_done), 0);
    wait_one_running(f); /* the thread took it: it waits at the gate */
    assert_int_equal(orc_readers_submit(f->readers, &t[1].r, read_list, on_done), 0);
    assert_int_equal(orc_readers_submit(f->readers, &t[2].r, read_list, on_done), 0);
    assert_int_equal(orc_readers_submit(f->readers, &t[3].r, read_list, on_done), ORC_EAGAIN);
    orc_readers_stats(f->readers, &st);
    assert_int_equal(st.waiting, 2);
    assert_int_equal(st.refused, 1);
    /* the loop is not held: a timer fires again and again */
    uv_timer_init(&f->loop, &timer);
    timer.data = &ticks;
    uv_timer_start(&timer, on_tick, 5, 5);
    run_until(&f->loop, &ticks, 10);
    assert_int_equal(count, 0);
    uv_timer_stop(&timer);
    uv_close((uv_handle_t *)&timer, NULL);
    for (int i = 0; i < 3; i++)
        uv_sem_post(&gate);
    run_until(&f->loop, &count, 3);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(t[i].r.rc, 0);
    assert_int_equal(t[3].done, 0); /* refused: never done */
    uv_sem_destroy(&gate);
}

static void close_cancels_the_waiting_and_finishes_the_running(void **state)
{
    struct fx *f = *state;
    struct test_read t[3];
    uv_sem_t gate;
    int count = 0;

    open_pool(f, 1, 0);
    assert_int_equal(uv_sem_init(&gate, 0), 0);
    for (size_t i = 0; i < 3; i++) {
        memset(&t[i], 0, sizeof(t[i]));
        t[i].gate = &gate;
        t[i].done_count = &count;
        assert_int_equal(orc_readers_submit(f->readers, &t[i].r, read_list, on_done), 0);
    }
    wait_one_running(f);
    orc_readers_close(f->readers);
    /* the two waiting ones are done at once, canceled */
    assert_int_equal(count, 2);
    assert_int_equal(t[1].r.rc, ORC_ECANCELED);
    assert_int_equal(t[2].r.rc, ORC_ECANCELED);
    assert_string_equal(t[1].r.errmsg, "the daemon is stopping");
    uv_sem_post(&gate); /* the running one ends, then the pool is freed */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(count, 3);
    assert_int_equal(t[0].r.rc, 0);
    f->readers = NULL; /* freed */
    uv_sem_destroy(&gate);
}

/* On PostgreSQL, a read stuck on a lock another session holds: closing the pool
 * interrupts it (the daemon's stop does not wait for the lock). */
static void close_interrupts_a_stuck_read(void **state)
{
    struct fx *f = *state;
    struct test_read t;
    orc_deployment_t d;
    PGconn *lock;
    PGresult *r;
    int count = 0;
    uint64_t t0;

    if (pg_url == NULL)
        skip(); /* SQLite readers never wait for a lock (WAL) */
    insert_dep(f->s, &d);
    open_pool(f, 1, 0);
    lock = PQconnectdb(pg_url);
    assert_int_equal(PQstatus(lock), CONNECTION_OK);
    r = PQexec(lock, "BEGIN; LOCK TABLE deployments IN ACCESS EXCLUSIVE MODE");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    memset(&t, 0, sizeof(t));
    t.done_count = &count;
    assert_int_equal(orc_readers_submit(f->readers, &t.r, read_list, on_done), 0);
    wait_one_running(f);
    usleep(200 * 1000); /* it is waiting for the lock */
    assert_int_equal(count, 0);
    t0 = uv_hrtime();
    orc_readers_close(f->readers);
    f->readers = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(count, 1);
    assert_int_equal(t.r.rc, ORC_ECANCELED);
    assert_true(uv_hrtime() - t0 < 2000000000ull); /* well before any lock timeout */
    PQclear(PQexec(lock, "COMMIT"));
    PQfinish(lock);
}

static void readers_see_only_committed_writes(void **state)
{
    struct fx *f = *state;
    struct test_read t[2];
    orc_deployment_t d;
    int count = 0;

    open_pool(f, 2, 0);
    assert_int_equal(orc_store_group_begin(f->s), 0);
    insert_dep(f->s, &d);
    memset(t, 0, sizeof(t));
    memcpy(t[0].uuid, d.uuid, ORC_UUID_LEN);
    t[0].done_count = &count;
    assert_int_equal(orc_readers_submit(f->readers, &t[0].r, read_head, on_done), 0);
    run_until(&f->loop, &count, 1);
    assert_int_equal(t[0].r.rc, ORC_ENOTFOUND); /* the group is not committed */
    assert_int_equal(orc_store_group_commit(f->s), 0);
    memcpy(t[1].uuid, d.uuid, ORC_UUID_LEN);
    t[1].done_count = &count;
    assert_int_equal(orc_readers_submit(f->readers, &t[1].r, read_head, on_done), 0);
    run_until(&f->loop, &count, 2);
    assert_int_equal(t[1].r.rc, 0);
    assert_int_equal(t[1].status, ORC_DEP_CREATE_IN_PROGRESS);
}

static void bad_pools_are_refused(void **state)
{
    struct fx *f = *state;
    struct orc_readers_opts none = {.threads = 0}, one = {.threads = 1};
    orc_readers_t *p = (orc_readers_t *)1;
    char err[256], path[400];

    assert_int_equal(orc_readers_new(&f->loop, f->path, &none, &p, err, sizeof(err)), ORC_EINVAL);
    assert_null(p);
    assert_int_equal(orc_readers_new(&f->loop, ":memory:", &one, &p, err, sizeof(err)), ORC_EINVAL);
    assert_non_null(strstr(err, "in-memory"));
    assert_int_equal(orc_readers_new(&f->loop, "sqlite::memory:", &one, &p, err, sizeof(err)),
                     ORC_EINVAL);
    snprintf(path, sizeof(path), "%s/plain", f->dir); /* a file, where a folder should be */
    fclose(fopen(path, "w"));
    snprintf(path, sizeof(path), "%s/plain/store.db", f->dir);
    assert_true(orc_readers_new(&f->loop, path, &one, &p, err, sizeof(err)) < 0);
    assert_null(p);
    uv_run(&f->loop, UV_RUN_DEFAULT); /* a failed pool's close */
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(reads_run_off_the_loop_and_answer_on_it),
        T(stuck_readers_leave_the_loop_running_and_the_queue_bounded),
        T(close_cancels_the_waiting_and_finishes_the_running),
        T(close_interrupts_a_stuck_read),
        T(readers_see_only_committed_writes),
        T(bad_pools_are_refused),
    };
    struct tb_pg pg;
    int failed;

    orc_log_set_level(ORC_LOG_WARN);
    failed = cmocka_run_group_tests_name("store readers on sqlite", tests, NULL, NULL);
    if (!tb_pg_start_or_say(&pg))
        return 1;
    pg_url = pg.url;
    failed += cmocka_run_group_tests_name("store readers on postgresql", tests, NULL, NULL);
    pg_url = NULL;
    tb_pg_stop(&pg);
    return failed;
}
