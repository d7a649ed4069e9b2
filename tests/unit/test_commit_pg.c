/*
 * Commits that do not wait, on a real PostgreSQL (the testbed of
 * deploy/testbed/postgres.sh) and a real libuv loop: the committer sends a
 * group's COMMIT and the loop goes on (a timer fires while a COMMIT held at
 * the server by a deferred trigger is still pending); the waits run once the
 * answer came, after the rows are visible to another connection; a write made
 * meanwhile joins the next group and its wait runs after the first group's;
 * a COMMIT the server refuses reaches the waits with an error, and until the
 * owner took that answer no write goes through (store level); flush and close
 * wait for a pending commit; SQLite answers ORC_ENOTSUP and keeps its group.
 */
#include <libpq-fe.h>
#include <uv.h>

#include "testutil.h"

#include "testbed_fixture.h"

#include "store/commit.h"
#include "store/store.h"

static const char *pg_url;

struct fx {
    orc_store_t *s;
    uv_loop_t loop;
    PGconn *raw; /* another connection: what is committed, and the triggers */
};

static void raw_exec(struct fx *f, const char *sql)
{
    PGresult *r = PQexec(f->raw, sql);

    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "%s: %s\n", sql, PQerrorMessage(f->raw));
    assert_true(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
    PQclear(r);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char err[256];

    if (f == NULL)
        return -1;
    f->raw = PQconnectdb(pg_url);
    if (PQstatus(f->raw) != CONNECTION_OK)
        return -1;
    PQclear(PQexec(f->raw, "SET client_min_messages = warning"));
    raw_exec(f, "DROP SCHEMA public CASCADE; CREATE SCHEMA public");
    if (uv_loop_init(&f->loop) != 0 || orc_store_open(pg_url, &f->s, err, sizeof(err)) != 0) {
        fprintf(stderr, "open: %s\n", err);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0); /* every handle closed */
    orc_store_close(f->s);
    PQfinish(f->raw);
    free(f);
    return 0;
}

/* Each deployment inserted sleeps ms at the server when its transaction commits
 * (a deferred constraint trigger), or refuses the commit (ms < 0). */
static void commit_trigger(struct fx *f, int ms)
{
    char body[128], sql[512];

    if (ms < 0)
        snprintf(body, sizeof(body), "RAISE EXCEPTION 'refused at commit by the test'");
    else
        snprintf(body, sizeof(body), "PERFORM pg_sleep(%.3f)", ms / 1000.0);
    snprintf(sql, sizeof(sql),
             "CREATE OR REPLACE FUNCTION orc_test_at_commit() RETURNS trigger LANGUAGE plpgsql "
             "AS $$ BEGIN %s; RETURN NULL; END $$",
             body);
    raw_exec(f, sql);
    raw_exec(f, "DROP TRIGGER IF EXISTS orc_test_at_commit ON deployments");
    raw_exec(f, "CREATE CONSTRAINT TRIGGER orc_test_at_commit AFTER INSERT ON deployments "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION orc_test_at_commit()");
}

static void no_commit_trigger(struct fx *f)
{
    raw_exec(f, "DROP TRIGGER IF EXISTS orc_test_at_commit ON deployments");
}

static int insert_dep(orc_store_t *s)
{
    orc_deployment_t d = {0};

    d.created_by.issuer = (char *)"iss";
    d.created_by.subject = (char *)"commit";
    d.template_text = (char *)"tosca_definitions_version: tosca_simple_yaml_1_0\n";
    return orc_store_deployment_insert(s, &d);
}

/* Deployments another connection sees: what is committed. */
static int64_t committed(struct fx *f)
{
    PGresult *r = PQexec(f->raw, "SELECT count(*) FROM deployments");
    int64_t n = PQresultStatus(r) == PGRES_TUPLES_OK ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : -1;

    PQclear(r);
    return n;
}

/* ---- what the loop saw, in order ------------------------------------------------------ */

enum { MAX_SEEN = 16 };

struct run {
    struct fx *f;
    orc_commit_t *c;
    orc_commit_wait_t w[2];
    uv_timer_t start, tick;
    char seen[MAX_SEEN]; /* 'a', 'b': the waits; 't': the timer */
    int n;
    int status[2];
    int64_t rows[2]; /* committed when the wait ran */
    bool write_on_tick;
};

static void see(struct run *r, char what)
{
    assert_true(r->n < MAX_SEEN - 1);
    r->seen[r->n++] = what;
}

static void on_wait(orc_commit_wait_t *w, int status)
{
    struct run *r = w->data;
    int i = (int)(w - r->w);

    see(r, (char)('a' + i));
    r->status[i] = status;
    r->rows[i] = committed(r->f);
}

static void queue_wait(struct run *r, int i)
{
    r->w[i].data = r;
    orc_commit_after(r->c, &r->w[i], on_wait);
}

/* 50 ms in: the first group's COMMIT is still at the server (it sleeps 400). */
static void on_tick(uv_timer_t *t)
{
    struct run *r = t->data;

    see(r, 't');
    if (r->write_on_tick) {
        assert_true(orc_store_commit_pending(r->f->s));
        assert_int_equal(insert_dep(r->f->s), 0); /* waits for the answer, then the next group */
        queue_wait(r, 1);
    }
}

static void on_start(uv_timer_t *t)
{
    struct run *r = t->data;

    assert_int_equal(insert_dep(r->f->s), 0);
    queue_wait(r, 0);
    uv_timer_start(&r->tick, on_tick, 50, 0);
}

static void run_loop(struct run *r, struct fx *f)
{
    r->f = f;
    assert_int_equal(orc_commit_new(&f->loop, f->s, NULL, &r->c), 0);
    uv_timer_init(&f->loop, &r->start);
    uv_timer_init(&f->loop, &r->tick);
    r->start.data = r->tick.data = r;
    uv_timer_start(&r->start, on_start, 0, 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&r->start, NULL);
    uv_close((uv_handle_t *)&r->tick, NULL);
    orc_commit_close(r->c, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

/* ---- tests -------------------------------------------------------------------------------- */

/* The COMMIT takes 400 ms at the server: the timer of 50 ms fires meanwhile
 * (a committer that waited would run it after the wait). */
static void the_loop_runs_while_the_commit_is_pending(void **state)
{
    struct fx *f = *state;
    struct run r = {0};
    struct orc_commit_stats st;

    commit_trigger(f, 400);
    run_loop(&r, f);
    assert_int_equal(r.n, 2);
    assert_memory_equal(r.seen, "ta", 2);
    assert_int_equal(r.status[0], 0);
    assert_int_equal(r.rows[0], 1); /* durable when its wait ran */
    orc_commit_stats(r.c, &st);
    assert_int_equal(st.groups, 1);
    assert_int_equal(st.sent_groups, 1);
    assert_true(st.commit_seconds_total >= 0.4);
    orc_commit_free(r.c);
}

/* A write while the commit is pending waits for its answer and joins the next
 * group; the first group's wait runs first, each after its rows are durable. */
static void a_write_meanwhile_joins_the_next_group(void **state)
{
    struct fx *f = *state;
    struct run r = {.write_on_tick = true};
    struct orc_commit_stats st;

    commit_trigger(f, 400);
    run_loop(&r, f);
    assert_int_equal(r.n, 3);
    assert_memory_equal(r.seen, "tab", 3);
    assert_int_equal(r.status[0], 0);
    assert_int_equal(r.status[1], 0);
    assert_int_equal(r.rows[0], 1);
    assert_int_equal(r.rows[1], 2);
    orc_commit_stats(r.c, &st);
    assert_int_equal(st.groups, 2);
    assert_int_equal(st.sent_groups, 2);
    orc_commit_free(r.c);
}

/* The server refuses the COMMIT: the wait hears it, nothing is stored. */
static void a_refused_commit_reaches_the_wait(void **state)
{
    struct fx *f = *state;
    struct run r = {0};
    struct orc_commit_stats st;

    commit_trigger(f, -1);
    run_loop(&r, f);
    assert_int_equal(r.n, 2);
    assert_memory_equal(r.seen, "at", 2); /* refused at once, before the timer */
    assert_true(r.status[0] < 0);
    assert_int_equal(r.rows[0], 0);
    orc_commit_stats(r.c, &st);
    assert_int_equal(st.failed_groups, 1);
    orc_commit_free(r.c);
    no_commit_trigger(f);
    assert_int_equal(insert_dep(f->s), 0); /* the handle works on */
    assert_int_equal(committed(f), 1);
}

/* Store level: after a refused COMMIT no write goes through until its answer
 * was taken, reads do; then writes work again. */
static void writes_wait_until_a_refusal_is_taken(void **state)
{
    struct fx *f = *state;
    orc_deployment_list_t list = {0};
    orc_dep_query_t q = {0};

    commit_trigger(f, -1);
    assert_int_equal(orc_store_group_begin(f->s), 0);
    assert_int_equal(insert_dep(f->s), 0);
    assert_int_equal(orc_store_group_commit_send(f->s), 0);
    assert_false(orc_store_group_active(f->s));
    assert_true(orc_store_commit_pending(f->s));
    assert_true(orc_store_commit_fd(f->s) >= 0);
    no_commit_trigger(f); /* waits on the pending transaction's lock: ends with it */
    assert_true(insert_dep(f->s) < 0);
    assert_non_null(strstr(orc_store_errmsg(f->s), "not written: the group of writes before it"));
    assert_non_null(strstr(orc_store_errmsg(f->s), "refused at commit by the test"));
    assert_int_equal(orc_store_deployment_list(f->s, &q, &list), 0); /* reads go on */
    assert_int_equal(list.count, 0);
    orc_deployment_list_clear(&list);
    assert_true(orc_store_commit_result(f->s) < 0);
    assert_non_null(strstr(orc_store_errmsg(f->s), "the group of 1 writes was rolled back"));
    assert_false(orc_store_commit_pending(f->s));
    assert_int_equal(orc_store_commit_result(f->s), ORC_EINVAL);
    assert_int_equal(insert_dep(f->s), 0);
    assert_int_equal(committed(f), 1);
}

/* Flush waits for the commit sent; its wait runs inside the flush. */
static void flush_waits_for_a_pending_commit(void **state)
{
    struct fx *f = *state;
    struct run r = {.f = f};

    commit_trigger(f, 200);
    assert_int_equal(orc_commit_new(&f->loop, f->s, NULL, &r.c), 0);
    assert_int_equal(insert_dep(f->s), 0); /* opens the group */
    queue_wait(&r, 0);
    uv_run(&f->loop, UV_RUN_NOWAIT); /* a commit point: sent */
    assert_true(orc_store_commit_pending(f->s));
    assert_int_equal(r.n, 0);
    assert_int_equal(orc_commit_flush(r.c), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.status[0], 0);
    assert_int_equal(r.rows[0], 1);
    assert_false(orc_store_commit_pending(f->s));
    orc_commit_close(r.c, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    orc_commit_free(r.c);
}

/* Close with a commit pending: its wait gets the answer, not a cancel. */
static void close_waits_for_a_pending_commit(void **state)
{
    struct fx *f = *state;
    struct run r = {.f = f};

    commit_trigger(f, 200);
    assert_int_equal(orc_commit_new(&f->loop, f->s, NULL, &r.c), 0);
    assert_int_equal(insert_dep(f->s), 0);
    queue_wait(&r, 0);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_true(orc_store_commit_pending(f->s));
    orc_commit_close(r.c, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.status[0], 0);
    assert_int_equal(r.rows[0], 1);
    orc_commit_free(r.c);
}

/* SQLite commits only by waiting: send says so and leaves the group open. */
static void sqlite_commits_by_waiting(void **state)
{
    char dir[256], path[320], err[256];
    orc_store_t *s;

    (void)state;
    assert_int_equal(test_mkdtemp(dir, sizeof(dir), "orc-commit-pg"), 0);
    snprintf(path, sizeof(path), "%s/store.db", dir);
    assert_int_equal(orc_store_open(path, &s, err, sizeof(err)), 0);
    assert_int_equal(orc_store_group_begin(s), 0);
    assert_int_equal(insert_dep(s), 0);
    assert_int_equal(orc_store_group_commit_send(s), ORC_ENOTSUP);
    assert_true(orc_store_group_active(s));
    assert_false(orc_store_commit_pending(s));
    assert_int_equal(orc_store_commit_fd(s), -1);
    assert_int_equal(orc_store_group_commit(s), 0);
    orc_store_close(s);
    test_rm_tree(dir);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(the_loop_runs_while_the_commit_is_pending), T(a_write_meanwhile_joins_the_next_group),
        T(a_refused_commit_reaches_the_wait),         T(writes_wait_until_a_refusal_is_taken),
        T(flush_waits_for_a_pending_commit),          T(close_waits_for_a_pending_commit),
    };
    const struct CMUnitTest local[] = {cmocka_unit_test(sqlite_commits_by_waiting)};
    struct tb_pg pg;
    int failed;

    orc_log_set_level(ORC_LOG_ERROR);
    failed = cmocka_run_group_tests_name("commits that do not wait, sqlite", local, NULL, NULL);
    if (!tb_pg_start_or_say(&pg))
        return 1;
    pg_url = pg.url;
    failed +=
        cmocka_run_group_tests_name("commits that do not wait, postgresql", tests, NULL, NULL);
    pg_url = NULL;
    tb_pg_stop(&pg);
    return failed;
}
