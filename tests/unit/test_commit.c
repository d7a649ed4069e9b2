/*
 * Unit tests of the loop-level group committer (orchestrator/store/commit.c)
 * on a real libuv loop and a real SQLite file: waits run after the commit
 * that made their writes durable (checked through a second connection), in
 * order, never inside orc_commit_after; callbacks that write again go to the
 * next group and cannot starve the loop; early commits at max_group_writes;
 * disabled mode; a failed group_begin; a failed commit (the WAL may not grow,
 * as on a full disk) reaching the waits; flush; close with waits pending; the
 * loop is not kept alive by an idle committer; a child killed with SIGKILL
 * while it writes loses nothing that a wait acknowledged. Last, the figures of
 * docs/store.md: durable writes per second one by one and in groups of 10,
 * 100 and 1000 through the committer (median of 5 runs, printed, never
 * asserted).
 */
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#include <uv.h>

#include "testutil.h"

#include "store/commit.h"
#include "store/sqlite_internal.h" /* the connection, to interrupt its BEGIN */
#include "store/store.h"

/* ---- fixture: a temporary folder, a store in it and a loop ---------------- */

struct fx {
    char dir[256];
    char path[320];
    orc_store_t *s;
    uv_loop_t loop;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    char err[256];

    if (f == NULL)
        return -1;
    if (test_mkdtemp(f->dir, sizeof(f->dir), "orc-commit") < 0 || uv_loop_init(&f->loop) != 0) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/store.db", f->dir);
    if (orc_store_open(f->path, &f->s, err, sizeof(err)) != 0) {
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
    test_rm_tree(f->dir);
    free(f);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------ */

static const char TEMPLATE[] = "tosca_definitions_version: tosca_simple_yaml_1_0\n";

static void insert_dep(orc_store_t *s)
{
    orc_deployment_t d = {0};
    int rc;

    d.created_by.issuer = (char *)"iss";
    d.created_by.subject = (char *)"commit";
    d.template_text = (char *)TEMPLATE;
    rc = orc_store_deployment_insert(s, &d);
    if (rc != 0)
        fprintf(stderr, "insert: %s\n", orc_store_errmsg(s));
    assert_int_equal(rc, 0);
}

/* Rows another connection sees: what is committed. */
static int64_t committed(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;

    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM deployments", -1, &st, NULL),
                     SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* What the tests record of each wait callback. */
enum { MAX_WAITS = 64 };

struct rec {
    struct fx *f;
    orc_commit_t *c;
    orc_commit_wait_t w[MAX_WAITS];
    int n;                   /* callbacks so far */
    int order[MAX_WAITS];    /* index of the wait, per callback */
    int status[MAX_WAITS];   /* its status */
    int64_t rows[MAX_WAITS]; /* committed rows when it ran */
    bool group[MAX_WAITS];   /* a group was open when it ran */
    bool inside;             /* inside orc_commit_after */
    int done;                /* close's done calls */
    int n_at_done;
    void (*step)(struct rec *r); /* what the timer does */
    int chain_steps;
    int timer_fired_at;
};

static void on_wait(orc_commit_wait_t *w, int status)
{
    struct rec *r = w->data;
    int i = r->n++;

    assert_false(r->inside); /* never inside orc_commit_after */
    assert_true(i < MAX_WAITS);
    r->order[i] = (int)(w - r->w);
    r->status[i] = status;
    r->rows[i] = committed(r->f->path);
    r->group[i] = orc_store_group_active(r->f->s);
}

static void after(struct rec *r, int i)
{
    r->w[i].data = r;
    r->inside = true;
    orc_commit_after(r->c, &r->w[i], on_wait);
    r->inside = false;
}

static void on_done(void *ud)
{
    struct rec *r = ud;

    r->done++;
    r->n_at_done = r->n;
}

static void on_timer(uv_timer_t *t)
{
    struct rec *r = t->data;

    r->step(r);
}

/* Runs r->step from a timer on the loop, then the loop until nothing is
 * left to do. */
static void run_step(struct rec *r)
{
    uv_timer_t t;

    assert_int_equal(uv_timer_init(&r->f->loop, &t), 0);
    t.data = r;
    assert_int_equal(uv_timer_start(&t, on_timer, 0, 0), 0);
    uv_run(&r->f->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&r->f->loop, UV_RUN_DEFAULT);
}

static void new_committer(struct rec *r, struct fx *f, const struct orc_commit_opts *opts)
{
    memset(r, 0, sizeof(*r));
    r->f = f;
    assert_int_equal(orc_commit_new(&f->loop, f->s, opts, &r->c), 0);
}

static void close_committer(struct rec *r)
{
    orc_commit_close(r->c, on_done, r);
    uv_run(&r->f->loop, UV_RUN_DEFAULT);
    assert_int_equal(r->done, 1);
    orc_commit_free(r->c);
    r->c = NULL;
}

/* ---- waits ------------------------------------------------------------------------- */

static void three_writes_three_waits(struct rec *r)
{
    insert_dep(r->f->s);
    after(r, 0);
    assert_int_equal(r->n, 0);
    insert_dep(r->f->s);
    after(r, 1);
    insert_dep(r->f->s);
    after(r, 2);
    assert_int_equal(r->n, 0);
    assert_true(orc_store_group_active(r->f->s));
    assert_int_equal(orc_store_group_writes(r->f->s), 3);
    assert_int_equal(committed(r->f->path), 0); /* nothing durable yet */
}

static void waits_run_after_the_commit_in_order(void **state)
{
    struct rec r;
    struct orc_commit_stats st;

    new_committer(&r, *state, NULL);
    r.step = three_writes_three_waits;
    run_step(&r);
    assert_int_equal(r.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r.order[i], i);
        assert_int_equal(r.status[i], 0);
        assert_int_equal(r.rows[i], 3); /* every write before it is durable */
        assert_false(r.group[i]);
    }
    orc_commit_stats(r.c, &st);
    assert_int_equal(st.groups, 1);
    assert_int_equal(st.writes, 3);
    assert_int_equal(st.waits, 3);
    assert_int_equal(st.failed_groups, 0);
    assert_int_equal(st.largest_group, 3);
    assert_true(st.commit_seconds_total > 0);
    close_committer(&r);
}

static void wait_without_writes(struct rec *r)
{
    after(r, 0); /* nothing to commit: a later iteration, status 0 */
    assert_int_equal(r->n, 0);
    assert_false(orc_store_group_active(r->f->s));
}

static void waits_without_a_group_run_later(void **state)
{
    struct rec r;
    struct orc_commit_stats st;

    new_committer(&r, *state, NULL);
    r.step = wait_without_writes;
    run_step(&r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.status[0], 0);
    orc_commit_stats(r.c, &st);
    assert_int_equal(st.groups, 0);
    assert_int_equal(st.waits, 1);
    close_committer(&r);
}

/* Each callback checks that the write before it is durable, writes again
 * and queues the next wait on the same struct. */
static void on_chain(orc_commit_wait_t *w, int status)
{
    struct rec *r = w->data;

    assert_int_equal(status, 0);
    assert_false(orc_store_group_active(r->f->s)); /* its group is committed */
    r->chain_steps++;
    assert_int_equal(committed(r->f->path), r->chain_steps);
    if (r->chain_steps == 50)
        return;
    insert_dep(r->f->s);
    assert_true(orc_store_group_active(r->f->s)); /* a new group */
    assert_int_equal(orc_store_group_writes(r->f->s), 1);
    r->inside = true;
    orc_commit_after(r->c, w, on_chain);
    r->inside = false;
}

static void on_other_timer(uv_timer_t *t)
{
    struct rec *r = t->data;

    r->timer_fired_at = r->chain_steps;
}

static void start_chain(struct rec *r)
{
    insert_dep(r->f->s);
    r->w[0].data = r;
    orc_commit_after(r->c, &r->w[0], on_chain);
}

static void callbacks_that_write_go_to_the_next_group(void **state)
{
    struct rec r;
    struct orc_commit_stats st;

    new_committer(&r, *state, NULL);
    r.step = start_chain;
    run_step(&r);
    assert_int_equal(r.chain_steps, 50);
    assert_int_equal(committed(r.f->path), 50);
    orc_commit_stats(r.c, &st);
    assert_int_equal(st.groups, 50); /* one group per step: no recursion into a commit */
    assert_int_equal(st.largest_group, 1);
    close_committer(&r);
}

/* A timer due now fires while a chain of writing waits goes on. */
static void timer_then_chain(struct rec *r)
{
    static uv_timer_t other;

    assert_int_equal(uv_timer_init(&r->f->loop, &other), 0);
    other.data = r;
    assert_int_equal(uv_timer_start(&other, on_other_timer, 0, 0), 0);
    insert_dep(r->f->s);
    r->w[0].data = r;
    orc_commit_after(r->c, &r->w[0], on_chain);
    r->w[1].data = &other;
}

static void a_chain_of_waits_does_not_starve_the_loop(void **state)
{
    struct rec r;

    new_committer(&r, *state, NULL);
    r.step = timer_then_chain;
    r.timer_fired_at = -1;
    run_step(&r);
    assert_int_equal(r.chain_steps, 50);
    assert_true(r.timer_fired_at >= 0);
    assert_true(r.timer_fired_at < 50);
    uv_close((uv_handle_t *)r.w[1].data, NULL);
    close_committer(&r);
}

/* ---- early commits, disabled mode, flush ---------------------------------------------- */

static void thirty_five_writes(struct rec *r)
{
    for (int i = 0; i < 35; i++) {
        insert_dep(r->f->s);
        after(r, i);
        if (i == 10) {
            /* the 11th write call committed the first ten before it ran */
            assert_int_equal(committed(r->f->path), 10);
            assert_int_equal(orc_store_group_writes(r->f->s), 1);
        }
    }
    assert_int_equal(r->n, 0); /* none ran inside the writes */
    assert_int_equal(committed(r->f->path), 30);
    assert_int_equal(orc_store_group_writes(r->f->s), 5);
}

static void max_group_writes_commits_early(void **state)
{
    struct orc_commit_opts opts = {.max_group_writes = 10};
    struct rec r;
    struct orc_commit_stats st;

    new_committer(&r, *state, &opts);
    r.step = thirty_five_writes;
    run_step(&r);
    assert_int_equal(r.n, 35);
    for (int i = 0; i < 35; i++) {
        assert_int_equal(r.order[i], i);
        assert_int_equal(r.status[i], 0);
    }
    orc_commit_stats(r.c, &st);
    assert_int_equal(st.groups, 4);
    assert_int_equal(st.writes, 35);
    assert_int_equal(st.largest_group, 10);
    close_committer(&r);
}

static void disabled_write(struct rec *r)
{
    insert_dep(r->f->s);
    assert_false(orc_store_group_active(r->f->s));
    assert_int_equal(committed(r->f->path), 1); /* durable on return */
    after(r, 0);
    assert_int_equal(r->n, 0);
}

static void disabled_mode_writes_one_by_one(void **state)
{
    struct orc_commit_opts opts = {.disabled = true};
    struct rec r;
    struct orc_commit_stats st;

    new_committer(&r, *state, &opts);
    r.step = disabled_write;
    run_step(&r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.status[0], 0);
    orc_commit_stats(r.c, &st);
    assert_int_equal(st.groups, 0);
    assert_int_equal(orc_commit_flush(r.c), 0);
    close_committer(&r);
}

static void flush_commits_and_runs_waits_now(void **state)
{
    struct rec r;

    new_committer(&r, *state, NULL);
    insert_dep(r.f->s);
    after(&r, 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(orc_commit_flush(r.c), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.rows[0], 1);
    assert_false(orc_store_group_active(r.f->s));
    assert_int_equal(orc_commit_flush(r.c), 0); /* nothing open */
    close_committer(&r);
}

static void the_loop_is_not_kept_alive_by_an_idle_committer(void **state)
{
    struct rec r;

    new_committer(&r, *state, NULL);
    assert_int_equal(uv_run(&r.f->loop, UV_RUN_DEFAULT), 0); /* returns at once */
    /* a write made outside any callback: the loop runs until it is durable */
    insert_dep(r.f->s);
    assert_true(orc_store_group_active(r.f->s));
    uv_run(&r.f->loop, UV_RUN_DEFAULT);
    assert_false(orc_store_group_active(r.f->s));
    assert_int_equal(committed(r.f->path), 1);
    close_committer(&r);
}

/* ---- failures --------------------------------------------------------------------------- */

static off_t wal_size(const char *db_path)
{
    char wal[400];
    struct stat st;

    snprintf(wal, sizeof(wal), "%s-wal", db_path);
    assert_int_equal(stat(wal, &st), 0);
    return st.st_size;
}

static struct rlimit saved_limit;
static void (*saved_handler)(int);

static void on_failed_wait(orc_commit_wait_t *w, int status)
{
    struct rec *r = w->data;

    /* the commit ran: the WAL may grow again */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved_limit), 0);
    signal(SIGXFSZ, saved_handler);
    on_wait(w, status);
    /* the committer goes on: the next write opens a new group */
    insert_dep(r->f->s);
    assert_true(orc_store_group_active(r->f->s));
    after(r, 1);
}

static void writes_then_full_disk(struct rec *r)
{
    struct rlimit lim;

    insert_dep(r->f->s);
    insert_dep(r->f->s);
    r->w[0].data = r;
    orc_commit_after(r->c, &r->w[0], on_failed_wait);
    /* the group's pages are in memory; its commit appends them to the WAL,
     * which may not grow now (a write past the limit fails with EFBIG, as on
     * a full disk) */
    saved_handler = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved_limit), 0);
    lim = saved_limit;
    lim.rlim_cur = (rlim_t)wal_size(r->f->path);
    fflush(stdout);
    fflush(stderr);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
}

static void a_failed_commit_reaches_its_waits(void **state)
{
    struct rec r;
    struct orc_commit_stats st;

    new_committer(&r, *state, NULL);
    r.step = writes_then_full_disk;
    run_step(&r);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.status[0], ORC_EIO); /* the two writes are lost */
    assert_int_equal(r.rows[0], 0);
    assert_int_equal(r.status[1], 0); /* the next group went through */
    assert_int_equal(r.rows[1], 1);
    orc_commit_stats(r.c, &st);
    assert_int_equal(st.groups, 2);
    assert_int_equal(st.failed_groups, 1);
    assert_int_equal(st.writes, 3);
    close_committer(&r);
}

/* Interrupts the statement running when it fires, once. */
static int interrupt_once(void *ud)
{
    int *shots = ud;

    return (*shots)-- > 0;
}

static void write_while_begin_fails(struct rec *r)
{
    struct sq_store *q = (struct sq_store *)r->f->s;
    int shots = 1;

    /* the hook's BEGIN is interrupted; the write then runs on its own */
    sqlite3_progress_handler(q->db, 1, interrupt_once, &shots);
    insert_dep(r->f->s);
    sqlite3_progress_handler(q->db, 0, NULL, NULL);
    assert_true(shots < 0); /* it fired */
    assert_false(orc_store_group_active(r->f->s));
    assert_int_equal(committed(r->f->path), 1); /* durable on return */
    after(r, 0);
    assert_int_equal(r->n, 0);
}

static void a_failed_group_begin_falls_back_to_single_writes(void **state)
{
    struct rec r;
    struct orc_commit_stats st;

    new_committer(&r, *state, NULL);
    r.step = write_while_begin_fails;
    run_step(&r);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.status[0], 0);
    orc_commit_stats(r.c, &st);
    assert_int_equal(st.groups, 0);
    /* the next write opens a group again */
    insert_dep(r.f->s);
    assert_true(orc_store_group_active(r.f->s));
    assert_int_equal(orc_commit_flush(r.c), 0);
    assert_int_equal(committed(r.f->path), 2);
    close_committer(&r);
}

/* ---- close --------------------------------------------------------------------------------- */

static void write_wait_close(struct rec *r)
{
    insert_dep(r->f->s);
    after(r, 0);
    orc_commit_close(r->c, on_done, r);
    /* close flushed: the group is committed and its wait ran */
    assert_int_equal(r->n, 1);
    assert_int_equal(r->status[0], 0);
    assert_int_equal(r->rows[0], 1);
    after(r, 1); /* after close started: canceled, later */
    assert_int_equal(r->n, 1);
    insert_dep(r->f->s); /* no hook any more: durable on return */
    assert_false(orc_store_group_active(r->f->s));
    assert_int_equal(committed(r->f->path), 2);
    orc_commit_close(r->c, on_done, r); /* a second close does nothing */
    assert_int_equal(r->done, 0);
}

static void close_with_waits_pending(void **state)
{
    struct rec r;

    new_committer(&r, *state, NULL);
    r.step = write_wait_close;
    run_step(&r);
    assert_int_equal(r.done, 1);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.order[1], 1);
    assert_int_equal(r.status[1], ORC_ECANCELED);
    assert_int_equal(r.n_at_done, 2); /* the canceled wait ran before done */
    /* after done: the wait is canceled by free */
    after(&r, 2);
    assert_int_equal(r.n, 2);
    orc_commit_free(r.c);
    assert_int_equal(r.n, 3);
    assert_int_equal(r.status[2], ORC_ECANCELED);
}

static void bad_arguments(void **state)
{
    struct fx *f = *state;
    orc_commit_t *c = (orc_commit_t *)f; /* any non-NULL value: must be reset */
    struct orc_commit_stats st;
    orc_commit_wait_t w = {0};

    assert_int_equal(orc_commit_new(NULL, f->s, NULL, &c), ORC_EINVAL);
    assert_null(c);
    assert_int_equal(orc_commit_new(&f->loop, NULL, NULL, &c), ORC_EINVAL);
    assert_int_equal(orc_commit_new(&f->loop, f->s, NULL, NULL), ORC_EINVAL);
    assert_int_equal(orc_store_group_begin(f->s), 0);
    assert_int_equal(orc_commit_new(&f->loop, f->s, NULL, &c), ORC_ECONFLICT);
    assert_int_equal(orc_store_group_commit(f->s), 0);
    assert_int_equal(orc_commit_flush(NULL), ORC_EINVAL);
    orc_commit_after(NULL, &w, NULL); /* logged, nothing else */
    orc_commit_stats(NULL, &st);
    assert_int_equal(st.groups, 0);
    orc_commit_stats(NULL, NULL);
    orc_commit_close(NULL, NULL, NULL);
    orc_commit_free(NULL);
}

/* ---- kill -9 ------------------------------------------------------------------------------ */

enum { KILL_ACKS = 300, KILL_MAX = 60000, KILL_PER_ITERATION = 25 };

struct killer {
    orc_store_t *s;
    orc_commit_t *c;
    int fd; /* acknowledged uuids go here */
    int n;
    orc_deployment_t *ds;
    orc_commit_wait_t *ws;
};

static void on_child_ack(orc_commit_wait_t *w, int status)
{
    struct killer *k = w->data;
    const orc_deployment_t *d = &k->ds[w - k->ws];

    if (status != 0 || write(k->fd, d->uuid, ORC_UUID_LEN) != ORC_UUID_LEN)
        _exit(3);
}

static void child_iteration(uv_idle_t *h)
{
    struct killer *k = h->data;

    for (int i = 0; i < KILL_PER_ITERATION && k->n < KILL_MAX; i++, k->n++) {
        orc_deployment_t *d = &k->ds[k->n];
        d->created_by.issuer = (char *)"iss";
        d->created_by.subject = (char *)"kill";
        d->template_text = (char *)TEMPLATE;
        if (orc_store_deployment_insert(k->s, d) != 0)
            _exit(2);
        k->ws[k->n].data = k;
        orc_commit_after(k->c, &k->ws[k->n], on_child_ack);
    }
    if (k->n == KILL_MAX)
        uv_idle_stop(h);
}

/* The child: writes and acknowledges (through the pipe) what its waits
 * confirmed, until it is killed. */
static void child_writes_until_killed(const char *path, int fd)
{
    struct killer k = {.fd = fd};
    uv_loop_t loop;
    uv_idle_t idle;

    k.ds = calloc(KILL_MAX, sizeof(*k.ds));
    k.ws = calloc(KILL_MAX, sizeof(*k.ws));
    if (k.ds == NULL || k.ws == NULL || uv_loop_init(&loop) != 0 ||
        orc_store_open(path, &k.s, NULL, 0) != 0 || orc_commit_new(&loop, k.s, NULL, &k.c) != 0)
        _exit(1);
    uv_idle_init(&loop, &idle);
    idle.data = &k;
    uv_idle_start(&idle, child_iteration);
    uv_run(&loop, UV_RUN_DEFAULT);
    for (;;)
        pause();
}

static void kill_9_loses_nothing_acknowledged(void **state)
{
    struct fx *f = *state;
    static char acked[KILL_ACKS][ORC_UUID_LEN];
    orc_deployment_t *got = NULL;
    char err[256];
    int fds[2], status = 0;
    pid_t pid;

    /* no SQLite connection may cross fork(): the parent closes its own */
    orc_store_close(f->s);
    f->s = NULL;
    assert_int_equal(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        child_writes_until_killed(f->path, fds[1]);
    }
    close(fds[1]);
    for (int i = 0; i < KILL_ACKS; i++) {
        size_t got_bytes = 0;
        while (got_bytes < ORC_UUID_LEN) {
            ssize_t n = read(fds[0], acked[i] + got_bytes, ORC_UUID_LEN - got_bytes);
            assert_true(n > 0);
            got_bytes += (size_t)n;
        }
    }
    /* at whatever instant it is now: in a write, a commit, a sync */
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    close(fds[0]);
    assert_int_equal(orc_store_open(f->path, &f->s, err, sizeof(err)), 0);
    for (int i = 0; i < KILL_ACKS; i++) {
        assert_int_equal(orc_store_deployment_get(f->s, acked[i], &got), 0);
        assert_string_equal(got->created_by.subject, "kill");
        orc_deployment_free(got);
        got = NULL;
    }
    assert_true(committed(f->path) >= KILL_ACKS);
}

/* ---- figures (printed, never asserted) ------------------------------------------------------ */

enum { BENCH_RUNS = 5, BENCH_RESOURCES = 64 };

struct bench {
    orc_store_t *s;
    orc_commit_t *c;
    char uuids[BENCH_RESOURCES][ORC_UUID_LEN];
    bool creates;      /* deployment inserts, else resource transitions */
    int group;         /* writes per loop iteration */
    int total, writes; /* to do, done */
    int acked;         /* writes whose wait ran */
    orc_commit_wait_t *waits;
    uv_idle_t idle;
};

/* A resource transition (the engine's write: update + event), or a create
 * (the API's: deployment, template and event rows). */
static void bench_write(struct bench *b)
{
    int i = b->writes++;
    orc_res_state_t st = (i / BENCH_RESOURCES) % 2 ? ORC_RES_CREATED : ORC_RES_CREATING;

    if (b->creates)
        insert_dep(b->s);
    else
        assert_int_equal(
            orc_store_resource_set_state(b->s, b->uuids[i % BENCH_RESOURCES], 0, st, NULL), 0);
}

static void bench_ack(orc_commit_wait_t *w, int status)
{
    struct bench *b = w->data;

    assert_int_equal(status, 0);
    b->acked += b->group;
}

/* One loop iteration: a group of writes and the wait for it. */
static void bench_iteration(uv_idle_t *h)
{
    struct bench *b = h->data;
    orc_commit_wait_t *w = &b->waits[b->writes / b->group];

    for (int i = 0; i < b->group; i++)
        bench_write(b);
    w->data = b;
    orc_commit_after(b->c, w, bench_ack);
    if (b->writes >= b->total)
        uv_idle_stop(h);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Durable writes per second: group 1 without a committer (each write its
 * own transaction), else groups of `group` per loop iteration. */
static double bench_run(struct fx *f, struct bench *b, int group, int total)
{
    double t0;

    b->group = group;
    b->total = total;
    b->writes = b->acked = 0;
    t0 = now_s();
    if (group == 1) {
        while (b->writes < total)
            bench_write(b);
        return total / (now_s() - t0);
    }
    b->waits = calloc((size_t)(total / group + 1), sizeof(*b->waits));
    assert_non_null(b->waits);
    assert_int_equal(orc_commit_new(&f->loop, b->s, NULL, &b->c), 0);
    assert_int_equal(uv_idle_init(&f->loop, &b->idle), 0);
    b->idle.data = b;
    t0 = now_s();
    assert_int_equal(uv_idle_start(&b->idle, bench_iteration), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    t0 = now_s() - t0;
    assert_int_equal(b->acked, total);
    uv_close((uv_handle_t *)&b->idle, NULL);
    orc_commit_close(b->c, NULL, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    orc_commit_free(b->c);
    free(b->waits);
    return total / t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* Under valgrind or the sanitizers the figures mean nothing: one short run
 * (the code paths still run). */
static bool bench_short(void)
{
    const char *v = getenv("VALGRIND"), *san = getenv("SANITIZE");

    return (v && strcmp(v, "1") == 0) || (san && strcmp(san, "1") == 0);
}

/* Medians of BENCH_RUNS runs of each group size, in writes per second. */
static void bench_medians(struct fx *f, struct bench *b, double median[4])
{
    static const struct {
        int group, total;
    } cases[] = {{1, 400}, {10, 3000}, {100, 10000}, {1000, 20000}};
    int nruns = bench_short() ? 1 : BENCH_RUNS, scale = bench_short() ? 10 : 1;
    double runs[BENCH_RUNS];

    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < nruns; i++)
            runs[i] = bench_run(f, b, cases[k].group, cases[k].total / scale);
        qsort(runs, (size_t)nruns, sizeof(runs[0]), cmp_double);
        median[k] = runs[nruns / 2];
    }
}

static void throughput_single_vs_groups(void **state)
{
    struct fx *f = *state;
    struct bench b = {.s = f->s};
    orc_deployment_t d = {0};
    double m[4];

    d.created_by.issuer = (char *)"iss";
    d.created_by.subject = (char *)"bench";
    d.template_text = (char *)TEMPLATE;
    assert_int_equal(orc_store_deployment_insert(f->s, &d), 0);
    for (int i = 0; i < BENCH_RESOURCES; i++) {
        orc_resource_t r = {.node_name = (char *)"worker", .node_type = (char *)"T"};
        r.instance_index = i;
        memcpy(r.deployment_uuid, d.uuid, ORC_UUID_LEN);
        assert_int_equal(orc_store_resource_insert(f->s, &r), 0);
        memcpy(b.uuids[i], r.uuid, ORC_UUID_LEN);
    }
    bench_medians(f, &b, m);
    printf("commit: durable resource transitions (update + event), median of %d runs: "
           "single %.0f/s, groups of 10 %.0f/s, 100 %.0f/s, 1000 %.0f/s\n",
           bench_short() ? 1 : BENCH_RUNS, m[0], m[1], m[2], m[3]);
    b.creates = true;
    bench_medians(f, &b, m);
    printf("commit: durable deployment creates (3 rows), median of %d runs: "
           "single %.0f/s, groups of 10 %.0f/s, 100 %.0f/s, 1000 %.0f/s\n",
           bench_short() ? 1 : BENCH_RUNS, m[0], m[1], m[2], m[3]);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    orc_log_set_level(ORC_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        T(waits_run_after_the_commit_in_order),
        T(waits_without_a_group_run_later),
        T(callbacks_that_write_go_to_the_next_group),
        T(a_chain_of_waits_does_not_starve_the_loop),
        T(max_group_writes_commits_early),
        T(disabled_mode_writes_one_by_one),
        T(flush_commits_and_runs_waits_now),
        T(the_loop_is_not_kept_alive_by_an_idle_committer),
        T(a_failed_commit_reaches_its_waits),
        T(a_failed_group_begin_falls_back_to_single_writes),
        T(close_with_waits_pending),
        T(bad_arguments),
        T(kill_9_loses_nothing_acknowledged),
        T(throughput_single_vs_groups),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
