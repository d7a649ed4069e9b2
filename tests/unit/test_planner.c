/*
 * The planner (orchestrator/api/planner.h) on a real libuv loop and worker pool: jobs
 * answer in the order submitted with their plans or problems, abandoned jobs never
 * answer, close ends the waiting ones with ORC_ECANCELED and lets the running one finish,
 * the queue is bounded, and a libuv pool whose every worker is stuck does not hold it up.
 */
#include "testutil.h"

#include <unistd.h>
#include <uv.h>

#include "api/planner.h"
#include "base.h"

static const char good[] = "tosca_definitions_version: tosca_simple_yaml_1_3\n"
                           "topology_template:\n"
                           "  inputs:\n"
                           "    n: {type: integer, default: 1}\n"
                           "  node_templates:\n"
                           "    box: {type: tosca.nodes.Compute}\n";
static const char bad[] = "tosca_definitions_version: tosca_simple_yaml_1_3\n"
                          "topology_template:\n"
                          "  node_templates:\n"
                          "    box: {type: no.such.Type}\n";

struct answers {
    int order[ORC_PLANNER_MAX_WAITING + 2];
    int rc[ORC_PLANNER_MAX_WAITING + 2];
    bool planned[ORC_PLANNER_MAX_WAITING + 2];
    bool named_type[ORC_PLANNER_MAX_WAITING + 2]; /* the problem named no.such.Type */
    int count;
};

struct tag {
    struct answers *a;
    int id;
};

static void on_done(void *data, int rc, json_t *plan, const tosca_diags_t *d)
{
    struct tag *t = data;
    struct answers *a = t->a;

    a->order[a->count] = t->id;
    a->rc[a->count] = rc;
    a->planned[a->count] = plan != NULL;
    for (size_t i = 0; i < d->count; i++)
        if (strstr(d->items[i].message, "no.such.Type"))
            a->named_type[a->count] = true;
    a->count++;
    json_decref(plan);
}

static struct orc_planner *planner_new(uv_loop_t *loop)
{
    struct orc_planner *p = NULL;
    tosca_ctx_t *ctx = NULL;
    tosca_diags_t d;

    tosca_diags_init(&d, false);
    assert_int_equal(tosca_ctx_new(NULL, &ctx, &d), 0);
    tosca_diags_fini(&d);
    assert_int_equal(orc_planner_new(loop, ctx, &p), 0);
    return p;
}

static void run_until(uv_loop_t *loop, const struct answers *a, int want)
{
    for (int i = 0; i < 100000 && a->count < want; i++)
        uv_run(loop, UV_RUN_ONCE);
    assert_int_equal(a->count, want);
}

static void answers_in_order(void **state)
{
    uv_loop_t loop;
    struct answers a = {0};
    struct tag tags[3] = {{&a, 0}, {&a, 1}, {&a, 2}};
    json_t *inputs = json_pack("{si}", "n", 3);
    struct orc_planner *p;

    (void)state;
    uv_loop_init(&loop);
    p = planner_new(&loop);
    assert_int_equal(orc_planner_submit(p, "a.yaml", good, NULL, on_done, &tags[0], NULL), 0);
    assert_int_equal(orc_planner_submit(p, "b.yaml", bad, NULL, on_done, &tags[1], NULL), 0);
    assert_int_equal(orc_planner_submit(p, "c.yaml", good, inputs, on_done, &tags[2], NULL), 0);
    json_decref(inputs); /* copied */
    assert_int_equal(orc_planner_pending(p), 3);
    assert_int_equal(a.count, 0); /* never from submit */
    run_until(&loop, &a, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(a.order[i], i);
    assert_int_equal(a.rc[0], 0);
    assert_true(a.planned[0]);
    assert_int_equal(a.rc[1], ORC_ETOSCA);
    assert_false(a.planned[1]);
    assert_true(a.named_type[1]);
    assert_int_equal(a.rc[2], 0);
    assert_int_equal(orc_planner_pending(p), 0);
    orc_planner_close(p); /* idle: freed now */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void abandoned_jobs_never_answer(void **state)
{
    uv_loop_t loop;
    struct answers a = {0};
    struct tag tags[4] = {{&a, 0}, {&a, 1}, {&a, 2}, {&a, 3}};
    orc_plan_job_t *jobs[4];
    struct orc_planner *p;

    (void)state;
    uv_loop_init(&loop);
    p = planner_new(&loop);
    for (int i = 0; i < 4; i++)
        assert_int_equal(orc_planner_submit(p, "t.yaml", good, NULL, on_done, &tags[i], &jobs[i]),
                         0);
    orc_planner_abandon(jobs[0]); /* running */
    orc_planner_abandon(jobs[2]); /* waiting, in the middle */
    orc_planner_abandon(jobs[3]); /* waiting, last */
    assert_int_equal(orc_planner_pending(p), 2);
    run_until(&loop, &a, 1);
    assert_int_equal(a.order[0], 1);
    assert_int_equal(a.rc[0], 0);
    /* the queue's tail is right after the last one went: a new job runs */
    assert_int_equal(orc_planner_submit(p, "t.yaml", good, NULL, on_done, &tags[3], NULL), 0);
    run_until(&loop, &a, 2);
    assert_int_equal(a.order[1], 3);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(a.count, 2);
    orc_planner_close(p);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void close_cancels_waiting_and_bounds_the_queue(void **state)
{
    uv_loop_t loop;
    static struct answers a;
    static struct tag tags[ORC_PLANNER_MAX_WAITING + 2];
    struct orc_planner *p;

    (void)state;
    memset(&a, 0, sizeof(a));
    uv_loop_init(&loop);
    p = planner_new(&loop);
    for (int i = 0; i < ORC_PLANNER_MAX_WAITING + 1; i++) { /* one runs, the rest wait */
        tags[i] = (struct tag){&a, i};
        assert_int_equal(orc_planner_submit(p, "t.yaml", good, NULL, on_done, &tags[i], NULL), 0);
    }
    tags[ORC_PLANNER_MAX_WAITING + 1] = (struct tag){&a, ORC_PLANNER_MAX_WAITING + 1};
    assert_int_equal(orc_planner_submit(p, "t.yaml", good, NULL, on_done,
                                        &tags[ORC_PLANNER_MAX_WAITING + 1], NULL),
                     ORC_ELIMIT);
    assert_int_equal(orc_planner_pending(p), ORC_PLANNER_MAX_WAITING + 1);
    orc_planner_close(p); /* the waiting ones end now, in order */
    assert_int_equal(a.count, ORC_PLANNER_MAX_WAITING);
    for (int i = 0; i < ORC_PLANNER_MAX_WAITING; i++) {
        assert_int_equal(a.order[i], i + 1);
        assert_int_equal(a.rc[i], ORC_ECANCELED);
    }
    /* the running one finishes, then the planner and its context are freed (ASan: no
     * leak) */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(a.count, ORC_PLANNER_MAX_WAITING + 1);
    assert_int_equal(a.order[ORC_PLANNER_MAX_WAITING], 0);
    assert_int_equal(a.rc[ORC_PLANNER_MAX_WAITING], 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The waiting texts are bounded in bytes too: large templates are refused once 64 MiB
 * wait, while one alone is always taken. */
static void the_queue_is_bounded_in_bytes(void **state)
{
    uv_loop_t loop;
    static struct answers a;
    static struct tag tags[8];
    size_t quarter = ORC_PLANNER_MAX_WAITING_BYTES / 4;
    char *big = malloc(ORC_PLANNER_MAX_WAITING_BYTES + 2);
    struct orc_planner *p;

    (void)state;
    assert_non_null(big);
    memset(big, '#', ORC_PLANNER_MAX_WAITING_BYTES + 1); /* a YAML comment */
    memset(&a, 0, sizeof(a));
    uv_loop_init(&loop);
    p = planner_new(&loop);
    tags[0] = (struct tag){&a, 0};
    assert_int_equal(orc_planner_submit(p, "t.yaml", good, NULL, on_done, &tags[0], NULL), 0);
    big[ORC_PLANNER_MAX_WAITING_BYTES + 1] = '\0'; /* alone, over the bound: taken */
    tags[1] = (struct tag){&a, 1};
    assert_int_equal(orc_planner_submit(p, "big.yaml", big, NULL, on_done, &tags[1], NULL), 0);
    big[quarter] = '\0';
    tags[2] = (struct tag){&a, 2}; /* behind it: refused */
    assert_int_equal(orc_planner_submit(p, "q.yaml", big, NULL, on_done, &tags[2], NULL),
                     ORC_ELIMIT);
    orc_planner_close(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    /* four quarters fit, a fifth does not */
    memset(&a, 0, sizeof(a));
    uv_loop_init(&loop);
    p = planner_new(&loop);
    assert_int_equal(orc_planner_submit(p, "t.yaml", good, NULL, on_done, &tags[0], NULL), 0);
    for (int i = 1; i <= 4; i++) {
        tags[i] = (struct tag){&a, i};
        assert_int_equal(orc_planner_submit(p, "q.yaml", big, NULL, on_done, &tags[i], NULL), 0);
    }
    tags[5] = (struct tag){&a, 5};
    assert_int_equal(orc_planner_submit(p, "q.yaml", big, NULL, on_done, &tags[5], NULL),
                     ORC_ELIMIT);
    orc_planner_close(p);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(a.count, 5);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(big);
}

/* libuv's pool, every worker stuck (as in getaddrinfo on a dead DNS server), does not
 * hold the planner up: it has a thread of its own. */
static int pool_release, pool_done;

static void stuck_work(uv_work_t *w)
{
    (void)w;
    for (int i = 0; i < 3000 && !__atomic_load_n(&pool_release, __ATOMIC_SEQ_CST); i++)
        usleep(10000);
}

static void stuck_done(uv_work_t *w, int status)
{
    (void)w;
    (void)status;
    pool_done++;
}

static void independent_of_the_pool(void **state)
{
    uv_loop_t loop;
    uv_work_t stuck[16];
    struct answers a = {0};
    struct tag tag = {&a, 0};
    struct orc_planner *p;

    (void)state;
    uv_loop_init(&loop);
    for (int i = 0; i < 16; i++) /* more than the pool has threads */
        assert_int_equal(uv_queue_work(&loop, &stuck[i], stuck_work, stuck_done), 0);
    p = planner_new(&loop);
    assert_int_equal(orc_planner_submit(p, "t.yaml", good, NULL, on_done, &tag, NULL), 0);
    run_until(&loop, &a, 1);
    assert_int_equal(a.rc[0], 0);
    assert_int_equal(pool_done, 0); /* answered while the pool was still stuck */
    __atomic_store_n(&pool_release, 1, __ATOMIC_SEQ_CST);
    orc_planner_close(p);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(answers_in_order),
        cmocka_unit_test(abandoned_jobs_never_answer),
        cmocka_unit_test(close_cancels_waiting_and_bounds_the_queue),
        cmocka_unit_test(the_queue_is_bounded_in_bytes),
        cmocka_unit_test(independent_of_the_pool),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
