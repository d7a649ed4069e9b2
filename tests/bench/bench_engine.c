/*
 * Engine throughput bench (docs/performance.md, "Engine throughput"): the
 * deployment engine over an on-disk store (SQLite, WAL, synchronous=FULL)
 * and one site on the sim driver with zero latency. Each round stores N
 * CREATE_IN_PROGRESS deployments whose plan (libtosca, as the API makes it)
 * has four COMPUTE nodes, starts them all at once and runs the loop until
 * the engine has none left; node operations/s = 4N / elapsed.
 *
 * It fails (exit 1) when something is wrong, never because of a figure:
 * every deployment must be CREATE_COMPLETE with four resources, and the sim
 * site, whose capacity is exactly 4N cpus, must then be full (one more node
 * is refused with "0 of 4N free"), so it holds exactly 4N nodes.
 *
 * Environment: PLUGIN_DIR (sim.so), BENCH_DEPLOYMENTS (10000), BENCH_ROUNDS
 * (3), BENCH_TMPDIR (where the stores go; default /tmp), BENCH_TEMPLATE_DIR
 * (tests/bench/templates). Figures go to stdout, one "result: KEY VALUE"
 * line each for tests/bench/run.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "engine/engine.h"
#include "tosca/tosca.h"

#define NODES_PER_DEPLOYMENT 4
#define INSERT_BATCH 256
#define POLL_MS 5

struct bench {
    uv_loop_t loop;
    uv_timer_t poll;
    orc_store_t *store;
    struct orc_drv_registry *reg;
    struct orc_sites sites;
    struct orc_engine *eng;
    char dir[512];
    size_t n;
    char (*uuids)[ORC_UUID_LEN];
    bool ready, closed, drained;
};

struct figures {
    double insert_s, run_s;
};

static const char *env_or(const char *name, const char *dflt)
{
    const char *v = getenv(name);

    return v && *v ? v : dflt;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *fmt, const char *arg)
{
    fprintf(stderr, "bench_engine: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return -1;
}

/* ---- the template and its plan --------------------------------------------- */

static int read_file(const char *path, char **text, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    long n = -1;
    int rc = -1;

    if (fp == NULL)
        return fail("cannot open %s", path);
    if (fseek(fp, 0, SEEK_END) == 0)
        n = ftell(fp);
    if (n > 0 && fseek(fp, 0, SEEK_SET) == 0) {
        *text = orc_calloc(1, (size_t)n + 1);
        if (*text && fread(*text, 1, (size_t)n, fp) == (size_t)n) {
            *len = (size_t)n;
            rc = 0;
        }
    }
    fclose(fp);
    if (rc < 0)
        fail("cannot read %s", path);
    return rc;
}

/* Loads and plans a template as the API does; *plan is the plan JSON. */
static int plan_template(const char *path, char **text, json_t **plan)
{
    tosca_ctx_t *ctx = NULL;
    tosca_template_t *t = NULL;
    tosca_diags_t d;
    size_t len = 0;
    int rc;

    if (read_file(path, text, &len) < 0)
        return -1;
    tosca_diags_init(&d, false);
    rc = tosca_ctx_new(NULL, &ctx, &d);
    if (rc == 0)
        rc = tosca_load_buffer(ctx, path, *text, len, &t, &d);
    if (rc == 0)
        rc = tosca_plan(t, NULL, plan, &d);
    if (rc < 0) {
        char buf[512];
        for (size_t i = 0; i < d.count; i++)
            fprintf(stderr, "bench_engine: %s\n", tosca_diag_format(&d.items[i], buf, sizeof(buf)));
        fail("%s does not plan", path);
    }
    tosca_template_free(t);
    tosca_ctx_free(ctx);
    tosca_diags_fini(&d);
    return rc < 0 ? -1 : 0;
}

/* ---- engine set-up and tear-down ----------------------------------------------- */

static void on_ready(struct orc_engine *e, void *ud)
{
    (void)e;
    ((struct bench *)ud)->ready = true;
}

static void on_closed(struct orc_engine *e, void *ud)
{
    (void)e;
    ((struct bench *)ud)->closed = true;
}

static int run_until(struct bench *b, const bool *flag)
{
    while (!*flag)
        if (uv_run(&b->loop, UV_RUN_ONCE) == 0 && !*flag)
            return -1;
    return 0;
}

/* One sim site, zero latency, memory only (an inventory file would be
 * rewritten with all 4N resources at every change), capacity 4N cpus. */
static int load_sites(struct bench *b)
{
    struct orc_sites_errors errs = {0};
    char yaml[512];
    int n, rc;

    n = snprintf(yaml, sizeof(yaml),
                 "sites:\n"
                 "  - name: sim\n"
                 "    driver: sim\n"
                 "    config: {capacity: {cpus: %zu, mem: 1000000 TiB, gpus: {}}}\n",
                 b->n * NODES_PER_DEPLOYMENT);
    rc = orc_sites_load_buffer("bench-sites.yaml", yaml, (size_t)n, &b->sites, &errs);
    for (size_t i = 0; i < errs.count; i++)
        fprintf(stderr, "bench_engine: %s\n", errs.lines[i]);
    orc_sites_errors_free(&errs);
    return rc < 0 ? fail("%s", "the sites file is refused") : 0;
}

static int engine_up(struct bench *b)
{
    struct orc_engine_opts opts = {0};
    char path[1024], err[256];

    snprintf(path, sizeof(path), "%s/store.db", b->dir);
    if (orc_store_open(path, &b->store, err, sizeof(err)) < 0)
        return fail("store: %s", err);
    if (orc_drv_registry_new(&b->loop, &b->reg) < 0)
        return fail("%s", "out of memory");
    snprintf(path, sizeof(path), "%s/sim.so", env_or("PLUGIN_DIR", "build/release/plugins"));
    if (orc_drv_load_file(b->reg, path) < 0)
        return fail("cannot load the sim driver %s", path);
    if (load_sites(b) < 0)
        return -1;
    if (orc_engine_new(&b->loop, b->store, b->reg, &b->sites, &opts, &b->eng) < 0)
        return fail("%s", "orc_engine_new failed");
    b->ready = false;
    if (orc_engine_start(b->eng, on_ready, b) < 0 || run_until(b, &b->ready) < 0)
        return fail("%s", "the engine does not start");
    if (orc_engine_site_count(b->eng) != 1)
        return fail("%s", "the sim site did not open");
    return 0;
}

static void engine_down(struct bench *b)
{
    if (b->eng) {
        b->closed = false;
        if (orc_engine_close(b->eng, on_closed, b) == 0)
            run_until(b, &b->closed);
        orc_engine_free(b->eng);
        b->eng = NULL;
    }
    if (b->reg) {
        orc_drv_registry_close(b->reg);
        b->reg = NULL;
    }
    uv_run(&b->loop, UV_RUN_DEFAULT);
    orc_store_close(b->store);
    b->store = NULL;
    orc_sites_free(&b->sites);
}

/* ---- the measured parts ------------------------------------------------------------ */

static int insert_all(struct bench *b, char *text, json_t *plan)
{
    orc_deployment_t ds[INSERT_BATCH];
    int rcs[INSERT_BATCH];

    for (size_t done = 0; done < b->n;) {
        size_t k = b->n - done < INSERT_BATCH ? b->n - done : INSERT_BATCH;
        memset(ds, 0, sizeof(ds));
        for (size_t i = 0; i < k; i++) {
            ds[i].created_by.issuer = "https://bench.invalid";
            ds[i].created_by.subject = "bench";
            ds[i].template_text = text;
            ds[i].plan = plan;
        }
        if (orc_store_insert_deployments_batch(b->store, ds, k, rcs) < 0)
            return fail("insert: %s", orc_store_errmsg(b->store));
        for (size_t i = 0; i < k; i++) {
            if (rcs[i] < 0)
                return fail("insert: %s", orc_strerror(rcs[i]));
            memcpy(b->uuids[done + i], ds[i].uuid, ORC_UUID_LEN);
        }
        done += k;
    }
    return 0;
}

static void on_poll(uv_timer_t *t)
{
    struct bench *b = t->data;

    if (orc_engine_active(b->eng) == 0) {
        b->drained = true;
        uv_timer_stop(t);
    }
}

/* Starts every stored deployment as the API does (with the plan it has just
 * stored, not read back) and runs the loop until the engine is idle. The
 * idle check runs every POLL_MS, so elapsed is exact to that. */
static int run_all(struct bench *b, json_t *plan, double *elapsed)
{
    double t0 = now_s();

    for (size_t i = 0; i < b->n; i++)
        if (orc_engine_create_plan(b->eng, b->uuids[i], plan) < 0)
            return fail("orc_engine_create %s refused", b->uuids[i]);
    b->drained = false;
    uv_timer_init(&b->loop, &b->poll);
    b->poll.data = b;
    uv_timer_start(&b->poll, on_poll, POLL_MS, POLL_MS);
    if (run_until(b, &b->drained) < 0)
        return fail("%s", "the loop ran dry with deployments in flight");
    *elapsed = now_s() - t0;
    uv_close((uv_handle_t *)&b->poll, NULL);
    return 0;
}

/* ---- checks ---------------------------------------------------------------------- */

static int check_one(struct bench *b, const char *uuid)
{
    orc_deployment_t *d = NULL;
    orc_res_query_t q = {.deployment_uuid = uuid};
    orc_resource_list_t l = {0};
    int rc = -1;

    if (orc_store_deployment_get(b->store, uuid, &d) < 0)
        return fail("deployment %s is not in the store", uuid);
    if (d->status != ORC_DEP_CREATE_COMPLETE) {
        fprintf(stderr, "bench_engine: deployment %s is %s: %s\n", uuid,
                orc_dep_status_name(d->status), d->status_reason ? d->status_reason : "");
        goto out;
    }
    if (orc_store_resource_list(b->store, &q, &l) < 0 || l.count != NODES_PER_DEPLOYMENT) {
        fail("deployment %s does not have four resources", uuid);
        goto out;
    }
    rc = 0;
    for (size_t i = 0; i < l.count; i++)
        if (l.items[i].state != ORC_RES_CREATED && l.items[i].state != ORC_RES_STARTED)
            rc = fail("a resource of %s is not created", uuid);
out:
    orc_resource_list_clear(&l);
    orc_deployment_free(d);
    return rc;
}

/* One more one-node deployment must be refused for capacity: the site then
 * holds exactly 4N nodes (every one of the 4N completed and reserved a cpu). */
static int check_site_full(struct bench *b, const char *small)
{
    char *text = NULL, want[96];
    json_t *plan = NULL;
    orc_deployment_t dep = {0}, *d = NULL;
    int rc = -1;

    if (plan_template(small, &text, &plan) < 0)
        goto out;
    dep.created_by.issuer = "https://bench.invalid";
    dep.created_by.subject = "bench";
    dep.template_text = text;
    dep.plan = plan;
    if (orc_store_deployment_insert(b->store, &dep) < 0 || orc_engine_create(b->eng, dep.uuid) < 0)
        goto out;
    while (orc_engine_busy(b->eng, dep.uuid))
        uv_run(&b->loop, UV_RUN_ONCE);
    if (orc_store_deployment_get(b->store, dep.uuid, &d) < 0)
        goto out;
    snprintf(want, sizeof(want), "requested 1 cpus, 0 of %zu free", b->n * NODES_PER_DEPLOYMENT);
    if (d->status == ORC_DEP_CREATE_FAILED && d->status_reason && strstr(d->status_reason, want))
        rc = 0;
    else
        fprintf(stderr, "bench_engine: the sim site is not full (want \"%s\"): %s %s\n", want,
                orc_dep_status_name(d->status), d->status_reason ? d->status_reason : "");
out:
    orc_deployment_free(d);
    json_decref(plan);
    orc_free(text);
    return rc;
}

static int check_all(struct bench *b, const char *small)
{
    for (size_t i = 0; i < b->n; i++)
        if (check_one(b, b->uuids[i]) < 0)
            return -1;
    return check_site_full(b, small);
}

/* ---- rounds ---------------------------------------------------------------------- */

static long file_kib(const char *dir, const char *name)
{
    char path[1024];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &st) == 0 ? (long)(st.st_size / 1024) : 0;
}

static int round_run(struct bench *b, const char *tdir, struct figures *f)
{
    char path[1024], *text = NULL;
    json_t *plan = NULL;
    double t0;
    int rc = -1;

    snprintf(b->dir, sizeof(b->dir), "%s/bench-engine-XXXXXX", env_or("BENCH_TMPDIR", "/tmp"));
    if (mkdtemp(b->dir) == NULL)
        return fail("cannot create a directory under %s", env_or("BENCH_TMPDIR", "/tmp"));
    snprintf(path, sizeof(path), "%s/cluster4.yaml", tdir);
    if (plan_template(path, &text, &plan) < 0 || engine_up(b) < 0)
        goto out;
    t0 = now_s();
    if (insert_all(b, text, plan) < 0)
        goto out;
    f->insert_s = now_s() - t0;
    if (run_all(b, plan, &f->run_s) < 0)
        goto out;
    snprintf(path, sizeof(path), "%s/small.yaml", tdir);
    if (check_all(b, path) < 0)
        goto out;
    printf("  round: %zu deployments stored in %.2f s, run in %.2f s: %.0f node ops/s, "
           "%.0f deployments/s; store %ld KiB + WAL %ld KiB\n",
           b->n, f->insert_s, f->run_s, (double)(b->n * NODES_PER_DEPLOYMENT) / f->run_s,
           (double)b->n / f->run_s, file_kib(b->dir, "store.db"),
           file_kib(b->dir, "store.db-wal"));
    fflush(stdout);
    rc = 0;
out:
    engine_down(b);
    json_decref(plan);
    orc_free(text);
    snprintf(path, sizeof(path), "rm -rf '%s'", b->dir);
    if (system(path) != 0)
        fail("cannot remove %s", b->dir);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void report(const struct bench *b, const struct figures *f, int rounds)
{
    double run[16], ins[16], nodes = (double)(b->n * NODES_PER_DEPLOYMENT), m;

    for (int i = 0; i < rounds; i++) {
        run[i] = f[i].run_s;
        ins[i] = f[i].insert_s;
    }
    m = median(run, rounds);
    printf("  median of %d rounds: %.2f s, %.0f node ops/s, %.0f deployments/s "
           "(goal >= 10000 node ops/s); stores of %zu deployments: %.0f /s\n",
           rounds, m, nodes / m, (double)b->n / m, b->n, (double)b->n / median(ins, rounds));
    printf("result: engine_node_ops_per_s %.0f\n", nodes / m);
    printf("result: engine_deployments_per_s %.0f\n", (double)b->n / m);
    printf("result: engine_run_s %.2f\n", m);
}

int main(void)
{
    struct bench b = {0};
    struct figures f[16];
    const char *tdir = env_or("BENCH_TEMPLATE_DIR", "tests/bench/templates");
    int rounds = atoi(env_or("BENCH_ROUNDS", "3"));
    long n = atol(env_or("BENCH_DEPLOYMENTS", "10000"));
    int rc = 0;

    if (rounds < 1 || rounds > 16 || n < 1 || n > 1000000) {
        fprintf(stderr, "bench_engine: BENCH_ROUNDS must be 1..16, BENCH_DEPLOYMENTS 1..1000000\n");
        return 2;
    }
    orc_log_set_level(ORC_LOG_ERROR);
    b.n = (size_t)n;
    b.uuids = orc_calloc(b.n, sizeof(*b.uuids));
    if (b.uuids == NULL || uv_loop_init(&b.loop) != 0)
        return 1;
    printf("== bench_engine: %zu deployments x %d nodes on the sim driver (latency 0), on-disk "
           "store under %s ==\n",
           b.n, NODES_PER_DEPLOYMENT, env_or("BENCH_TMPDIR", "/tmp"));
    for (int i = 0; i < rounds && rc == 0; i++)
        rc = round_run(&b, tdir, &f[i]);
    if (rc == 0)
        report(&b, f, rounds);
    uv_loop_close(&b.loop);
    orc_free(b.uuids);
    return rc == 0 ? 0 : 1;
}
