/*
 * Tests of the sim driver (plugins/sim) through the core's wrappers on a
 * real uv loop: provision / adopt / deprovision, capacity errors, seeded
 * failure injection, latency (and zero latency staying asynchronous),
 * idempotency by resource name, the inventory file across close/reopen and
 * across a killed process, cancel of a hung operation, close with
 * operations in flight, workloads, exec and logs, and the ABI 2 slots
 * (stop_workload, stop, start) with their latency, failures and hangs and
 * the state they leave in the inventory file. Every test checks that the
 * driver broke no contract rule and that the loop closes clean.
 */
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <uv.h>

#include "testutil.h"
#include "loop_fixture.h"

#include "engine/../base.h" /* orchestrator/base.h: "base.h" is libtosca's here */
#include "engine/drivers.h"

#define DEP "01936a4e-7b2c-7def-8123-456789abcdef"

/* ---- harness ------------------------------------------------------------------- */

struct env {
    uv_loop_t loop;
    struct orc_drv_registry *reg;
    struct orc_drv_site *site;
    char dir[64];
    char inv[128];
};

struct call {
    orc_op_t op;
    int calls;
    int status;
    bool in_call;
    bool sync;
    uint64_t done_at; /* uv_now when the callback ran */
    uv_loop_t *loop;
};

static void call_cb(orc_op_t *op, int status)
{
    struct call *c = op->data;

    c->calls++;
    c->status = status;
    c->done_at = uv_now(c->loop);
    if (c->in_call)
        c->sync = true;
}

static void call_init(struct env *e, struct call *c)
{
    memset(c, 0, sizeof(*c));
    orc_drv_op_init(&c->op);
    c->op.data = c;
    c->loop = &e->loop;
}

static bool run_until(struct env *e, const int *counter, int target, uint64_t timeout_ms)
{
    return loop_run_until(&e->loop, counter, target, timeout_ms);
}

static void run_for(struct env *e, uint64_t ms)
{
    loop_run_for(&e->loop, ms);
}

static void wait_call(struct env *e, struct call *c)
{
    if (!run_until(e, &c->calls, 1, 10000))
        fail_msg("no callback within 10 s");
    assert_int_equal(c->calls, 1);
    assert_false(c->sync);
}

static void env_init(struct env *e)
{
    char path[512];

    memset(e, 0, sizeof(*e));
    assert_int_equal(uv_loop_init(&e->loop), 0);
    assert_int_equal(orc_drv_registry_new(&e->loop, &e->reg), 0);
    orc_drv_set_strict(e->reg, false);
    snprintf(path, sizeof(path), "%s/sim.so",
             getenv("PLUGIN_DIR") && *getenv("PLUGIN_DIR") ? getenv("PLUGIN_DIR")
                                                           : "build/release/plugins");
    assert_int_equal(orc_drv_load_file(e->reg, path), 0);
    snprintf(e->dir, sizeof(e->dir), "/tmp/orc-test-sim-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->inv, sizeof(e->inv), "%s/cloud.json", e->dir);
}

/* Opens a sim site; config is JSON text where "@INV" stands for the
 * inventory path. Returns the status of site_open (0 or < 0). */
static int site_open_cfg(struct env *e, const char *name, const char *config, const char *cred,
                         char *error)
{
    char cfg[2048];
    const char *at = strstr(config, "@INV");
    struct orc_site_conf conf;
    struct call c;
    int rc;

    if (at != NULL)
        snprintf(cfg, sizeof(cfg), "%.*s%s%s", (int)(at - config), config, e->inv, at + 4);
    else
        snprintf(cfg, sizeof(cfg), "%s", config);
    conf = (struct orc_site_conf){name, cfg, cred};
    assert_int_equal(orc_drv_site_new(e->reg, "sim", &conf, &e->site), 0);
    call_init(e, &c);
    c.in_call = true;
    rc = orc_drv_site_open(e->site, &c.op, call_cb);
    c.in_call = false;
    if (rc == 0) {
        wait_call(e, &c);
        rc = c.status;
    }
    if (error != NULL)
        snprintf(error, ORC_OP_ERROR_LEN, "%s", c.op.error);
    if (rc < 0) {
        assert_int_equal(orc_drv_site_free(e->site), 0);
        e->site = NULL;
    }
    orc_drv_op_reset(&c.op);
    return rc;
}

static void site_open_ok(struct env *e, const char *config)
{
    char err[ORC_OP_ERROR_LEN];
    int rc = site_open_cfg(e, "sim-a", config, NULL, err);

    if (rc != 0)
        fail_msg("site_open: %s: %s", orc_strerror(rc), err);
}

static void site_close(struct env *e)
{
    struct call c;

    call_init(e, &c);
    assert_int_equal(orc_drv_site_close(e->site, &c.op, call_cb), 0);
    wait_call(e, &c);
    assert_int_equal(c.status, 0);
    assert_int_equal(orc_drv_site_free(e->site), 0);
    e->site = NULL;
}

static void env_fini(struct env *e)
{
    char path[256];

    if (e->site != NULL)
        site_close(e);
    assert_int_equal(orc_drv_violations(e->reg), 0);
    assert_int_equal(orc_drv_registry_close(e->reg), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    snprintf(path, sizeof(path), "%s.tmp", e->inv);
    unlink(path);
    unlink(e->inv);
    rmdir(e->dir);
}

static struct orc_node_req node(const char *name, uint32_t gpus, const char *model)
{
    struct orc_node_req r = {
        .deployment = DEP,
        .node = "train",
        .index = 0,
        .name = name,
        .kind = ORC_KIND_COMPUTE,
        .num_cpus = 4,
        .mem_size = (uint64_t)16 << 30,
        .num_gpus = gpus,
        .gpu_model = model,
    };
    return r;
}

/* Provisions and waits; returns the status; c holds the results. */
static int provision(struct env *e, struct call *c, const struct orc_node_req *req)
{
    int rc;

    call_init(e, c);
    c->in_call = true;
    rc = orc_drv_provision(e->site, &c->op, req, call_cb);
    c->in_call = false;
    if (rc < 0)
        return rc;
    wait_call(e, c);
    return c->status;
}

static int simple(struct env *e, struct call *c, const char *what, const char *name)
{
    int rc;

    call_init(e, c);
    c->in_call = true;
    if (strcmp(what, "deprovision") == 0)
        rc = orc_drv_deprovision(e->site, &c->op, name, call_cb);
    else if (strcmp(what, "status") == 0)
        rc = orc_drv_status(e->site, &c->op, name, call_cb);
    else if (strcmp(what, "adopt") == 0)
        rc = orc_drv_adopt(e->site, &c->op, name, call_cb);
    else if (strcmp(what, "stop") == 0)
        rc = orc_drv_stop(e->site, &c->op, name, call_cb);
    else if (strcmp(what, "start") == 0)
        rc = orc_drv_start(e->site, &c->op, name, call_cb);
    else
        rc = orc_drv_inventory(e->site, &c->op, call_cb);
    c->in_call = false;
    if (rc < 0)
        return rc;
    wait_call(e, c);
    return c->status;
}

/* The inventory file as JSON. */
static json_t *inventory_file(struct env *e)
{
    json_error_t jerr;
    json_t *doc = json_load_file(e->inv, 0, &jerr);

    if (doc == NULL)
        fail_msg("%s: %s", e->inv, jerr.text);
    return doc;
}

static size_t resources_in_file(struct env *e)
{
    json_t *doc = inventory_file(e);
    size_t n = json_object_size(json_object_get(doc, "resources"));

    json_decref(doc);
    return n;
}

static int64_t used_gpus_in_file(struct env *e, const char *model)
{
    json_t *doc = inventory_file(e);
    int64_t n = json_integer_value(
        json_object_get(json_object_get(json_object_get(doc, "used"), "gpus"), model));

    json_decref(doc);
    return n;
}

static const struct orc_pool *pool_of(const orc_op_t *op, const char *name)
{
    for (uint32_t i = 0; i < op->npools; i++)
        if (strcmp(op->pools[i].name, name) == 0)
            return &op->pools[i];
    return NULL;
}

/* ---- tests ---------------------------------------------------------------------------- */

static void provision_adopt_deprovision(void **state)
{
    struct env e;
    struct call c, d;
    struct orc_node_req r = node("orc-a-1", 2, "A100");
    char addr[64];

    (void)state;
    env_init(&e);
    site_open_ok(&e, "{\"inventory\": \"@INV\"}");
    assert_int_equal(resources_in_file(&e), 0); /* the file exists from site_open on */

    assert_int_equal(provision(&e, &c, &r), 0);
    assert_true(c.op.exists);
    assert_int_equal(c.op.res_state, ORC_DRV_RES_READY);
    assert_non_null(orc_drv_op_attr(&c.op, ORC_ATTR_PRIVATE_ADDRESS));
    assert_string_equal(orc_drv_op_attr(&c.op, ORC_ATTR_GPU_MODEL), "A100");
    assert_null(orc_drv_op_attr(&c.op, ORC_ATTR_PUBLIC_ADDRESS));
    snprintf(addr, sizeof(addr), "%s", orc_drv_op_attr(&c.op, ORC_ATTR_PRIVATE_ADDRESS));
    orc_drv_op_reset(&c.op);
    assert_int_equal(resources_in_file(&e), 1);
    assert_int_equal(used_gpus_in_file(&e, "A100"), 2);

    assert_int_equal(simple(&e, &d, "inventory", NULL), 0);
    assert_int_equal(pool_of(&d.op, "A100")->gpus_free, 6);
    assert_int_equal(pool_of(&d.op, "T4")->gpus_free, 4);
    assert_int_equal(pool_of(&d.op, "cpu")->cpus_free, 60);
    orc_drv_op_reset(&d.op);

    assert_int_equal(simple(&e, &d, "adopt", "orc-a-1"), 0);
    assert_true(d.op.exists);
    assert_int_equal(d.op.res_state, ORC_DRV_RES_READY);
    assert_string_equal(orc_drv_op_attr(&d.op, ORC_ATTR_PRIVATE_ADDRESS), addr);
    orc_drv_op_reset(&d.op);
    assert_int_equal(simple(&e, &d, "adopt", "orc-none"), 0);
    assert_false(d.op.exists);
    assert_int_equal(d.op.nattrs, 0);
    orc_drv_op_reset(&d.op);

    assert_int_equal(simple(&e, &d, "deprovision", "orc-a-1"), 0);
    assert_true(d.op.exists);
    orc_drv_op_reset(&d.op);
    assert_int_equal(resources_in_file(&e), 0);
    assert_int_equal(used_gpus_in_file(&e, "A100"), 0);
    /* idempotent: deleting what is gone succeeds */
    assert_int_equal(simple(&e, &d, "deprovision", "orc-a-1"), 0);
    assert_false(d.op.exists);
    orc_drv_op_reset(&d.op);
    assert_int_equal(simple(&e, &d, "status", "orc-a-1"), 0);
    assert_false(d.op.exists);
    orc_drv_op_reset(&d.op);
    env_fini(&e);
}

static void provision_is_idempotent(void **state)
{
    struct env e;
    struct call a, b, c[2];
    struct orc_node_req r = node("orc-idem", 1, NULL);
    struct orc_node_req s = node("orc-idem-2", 1, "T4");
    json_t *doc;

    (void)state;
    env_init(&e);
    site_open_ok(&e, "{\"inventory\": \"@INV\", \"latency\": {\"provision\": 20}}");
    assert_int_equal(provision(&e, &a, &r), 0);
    assert_int_equal(provision(&e, &b, &r), 0);
    assert_string_equal(orc_drv_op_attr(&a.op, ORC_ATTR_PROVIDER_ID),
                        orc_drv_op_attr(&b.op, ORC_ATTR_PROVIDER_ID));
    assert_string_equal(orc_drv_op_attr(&a.op, ORC_ATTR_PRIVATE_ADDRESS),
                        orc_drv_op_attr(&b.op, ORC_ATTR_PRIVATE_ADDRESS));
    orc_drv_op_reset(&a.op);
    orc_drv_op_reset(&b.op);

    /* two requests for one name in flight together: one resource */
    for (int i = 0; i < 2; i++) {
        call_init(&e, &c[i]);
        assert_int_equal(orc_drv_provision(e.site, &c[i].op, &s, call_cb), 0);
    }
    assert_true(run_until(&e, &c[1].calls, 1, 5000));
    assert_true(run_until(&e, &c[0].calls, 1, 5000));
    assert_int_equal(c[0].status, 0);
    assert_int_equal(c[1].status, 0);
    orc_drv_op_reset(&c[0].op);
    orc_drv_op_reset(&c[1].op);

    doc = inventory_file(&e);
    assert_int_equal(json_object_size(json_object_get(doc, "resources")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "counters"),
                                                        "provisioned")),
                     2);
    json_decref(doc);
    assert_int_equal(used_gpus_in_file(&e, "A100"), 1); /* any model: the first that fits */
    assert_int_equal(used_gpus_in_file(&e, "T4"), 1);
    assert_int_equal(simple(&e, &a, "deprovision", "orc-idem"), 0);
    assert_int_equal(simple(&e, &a, "deprovision", "orc-idem-2"), 0);
    assert_int_equal(resources_in_file(&e), 0);
    env_fini(&e);
}

static void capacity_errors_name_model_and_counts(void **state)
{
    struct env e;
    struct call c;
    struct orc_node_req r;

    (void)state;
    env_init(&e);
    site_open_ok(&e, "{\"inventory\": \"@INV\", \"max_gpus_per_node\": 4, \"capacity\": "
                     "{\"cpus\": 64, \"mem\": \"256 GiB\", \"gpus\": {\"A100\": 8, \"T4\": 4}}}");
    r = node("orc-big", 9, "A100");
    assert_int_equal(provision(&e, &c, &r), ORC_DRV_ENOCAPACITY);
    assert_string_equal(c.op.error,
                        "insufficient capacity at site sim-a: requested 9 x A100, 8 of 8 free");
    r = node("orc-wide", 6, "a100"); /* model names are case-insensitive */
    assert_int_equal(provision(&e, &c, &r), ORC_DRV_ENOCAPACITY);
    assert_non_null(strstr(c.op.error, "requested 6 x A100 on one node, at most 4 per node"));
    r = node("orc-h100", 1, "H100");
    assert_int_equal(provision(&e, &c, &r), ORC_DRV_ENOCAPACITY);
    assert_string_equal(c.op.error,
                        "insufficient capacity at site sim-a: no GPU model H100 here (models: "
                        "A100, T4)");

    r = node("orc-a1", 4, "A100");
    assert_int_equal(provision(&e, &c, &r), 0);
    orc_drv_op_reset(&c.op);
    r = node("orc-a2", 4, "A100");
    assert_int_equal(provision(&e, &c, &r), 0);
    orc_drv_op_reset(&c.op);
    r = node("orc-a3", 1, "A100");
    assert_int_equal(provision(&e, &c, &r), ORC_DRV_ENOCAPACITY);
    assert_string_equal(c.op.error,
                        "insufficient capacity at site sim-a: requested 1 x A100, 0 of 8 free");
    r = node("orc-t", 4, NULL);
    assert_int_equal(provision(&e, &c, &r), 0); /* any model: T4 has 4 */
    orc_drv_op_reset(&c.op);
    r = node("orc-any", 1, NULL);
    assert_int_equal(provision(&e, &c, &r), ORC_DRV_ENOCAPACITY);
    assert_string_equal(c.op.error, "insufficient capacity at site sim-a: requested 1 GPUs of "
                                    "any model: A100 0 of 8 free, T4 0 of 4 free");
    r = node("orc-cpu", 0, NULL);
    r.num_cpus = 100;
    assert_int_equal(provision(&e, &c, &r), ORC_DRV_ENOCAPACITY);
    assert_string_equal(c.op.error,
                        "insufficient capacity at site sim-a: requested 100 cpus, 52 of 64 free");
    r.num_cpus = 1;
    r.mem_size = (uint64_t)300 << 30;
    assert_int_equal(provision(&e, &c, &r), ORC_DRV_ENOCAPACITY);
    assert_non_null(strstr(c.op.error, "requested 300.0 GiB memory, 208.0 of 256.0 GiB free"));
    assert_int_equal(resources_in_file(&e), 3); /* failed requests left nothing */

    /* deprovision frees capacity */
    assert_int_equal(simple(&e, &c, "deprovision", "orc-a1"), 0);
    r = node("orc-a3", 4, "A100");
    assert_int_equal(provision(&e, &c, &r), 0);
    orc_drv_op_reset(&c.op);
    const char *names[] = {"orc-a2", "orc-a3", "orc-t"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(simple(&e, &c, "deprovision", names[i]), 0);
    assert_int_equal(resources_in_file(&e), 0);
    env_fini(&e);
}

/* Runs 24 provisions (4 in flight at a time) with a 50% failure rate;
 * returns the bit mask of failures. */
static uint32_t failure_pattern(struct env *e, bool leave_failed)
{
    char cfg[256], name[32];
    struct call c[24];
    struct orc_node_req r;
    uint32_t mask = 0;
    json_t *doc, *res;

    snprintf(cfg, sizeof(cfg),
             "{\"inventory\": \"@INV\", \"seed\": 42, \"failures\": {\"provision\": 0.5}, "
             "\"leave_failed\": %s, \"capacity\": {\"cpus\": 256, \"mem\": \"1 TiB\"}}",
             leave_failed ? "true" : "false");
    site_open_ok(e, cfg);
    for (int i = 0; i < 24; i += 4) {
        for (int j = i; j < i + 4; j++) {
            snprintf(name, sizeof(name), "orc-f-%d", j);
            r = node(name, 0, NULL);
            call_init(e, &c[j]);
            assert_int_equal(orc_drv_provision(e->site, &c[j].op, &r, call_cb), 0);
        }
        assert_true(run_until(e, &c[i + 3].calls, 1, 5000));
        run_for(e, 5);
    }
    doc = inventory_file(e);
    res = json_object_get(doc, "resources");
    for (int j = 0; j < 24; j++) {
        json_t *rec;
        snprintf(name, sizeof(name), "orc-f-%d", j);
        rec = json_object_get(res, name);
        assert_int_equal(c[j].calls, 1);
        if (c[j].status < 0) {
            mask |= 1u << j;
            assert_int_equal(c[j].status, ORC_EDRIVER);
            assert_non_null(strstr(c[j].op.error, "injected provision failure for orc-f-"));
            assert_int_equal(c[j].op.exists, leave_failed);
            if (leave_failed)
                assert_string_equal(json_string_value(json_object_get(rec, "state")), "FAILED");
            else
                assert_null(rec); /* nothing leaked */
        } else {
            assert_string_equal(json_string_value(json_object_get(rec, "state")), "READY");
        }
        orc_drv_op_reset(&c[j].op);
    }
    json_decref(doc);
    /* clean up: everything, FAILED ones too */
    for (int j = 0; j < 24; j++) {
        snprintf(name, sizeof(name), "orc-f-%d", j);
        assert_int_equal(simple(e, &c[0], "deprovision", name), 0);
        orc_drv_op_reset(&c[0].op);
    }
    assert_int_equal(resources_in_file(e), 0);
    site_close(e);
    unlink(e->inv);
    return mask;
}

static void failure_injection_is_seeded(void **state)
{
    struct env e;
    uint32_t m1, m2, m3;
    int n = 0;

    (void)state;
    env_init(&e);
    m1 = failure_pattern(&e, false);
    m2 = failure_pattern(&e, false);
    m3 = failure_pattern(&e, true);
    assert_int_equal(m1, m2); /* same seed, same calls: same failures */
    assert_int_equal(m1, m3);
    for (int j = 0; j < 24; j++)
        n += (m1 >> j) & 1;
    assert_true(n > 3 && n < 21);
    env_fini(&e);
}

static void failed_resource_stays_until_deprovisioned(void **state)
{
    struct env e;
    struct call c;
    struct orc_node_req r = node("orc-bad", 1, "T4");

    (void)state;
    env_init(&e);
    site_open_ok(&e, "{\"inventory\": \"@INV\", \"failures\": {\"provision\": 1, \"deprovision\": "
                     "1}, \"leave_failed\": true}");
    assert_int_equal(provision(&e, &c, &r), ORC_EDRIVER);
    orc_drv_op_reset(&c.op);
    /* a retry sees the FAILED resource: no second one */
    assert_int_equal(provision(&e, &c, &r), ORC_EDRIVER);
    assert_true(c.op.exists);
    assert_int_equal(c.op.res_state, ORC_DRV_RES_FAILED);
    assert_non_null(strstr(c.op.error, "orc-bad is in state FAILED"));
    orc_drv_op_reset(&c.op);
    assert_int_equal(simple(&e, &c, "status", "orc-bad"), 0);
    assert_int_equal(c.op.res_state, ORC_DRV_RES_FAILED);
    orc_drv_op_reset(&c.op);
    assert_int_equal(used_gpus_in_file(&e, "T4"), 1);
    /* injected deprovision failure: still there */
    assert_int_equal(simple(&e, &c, "deprovision", "orc-bad"), ORC_EDRIVER);
    assert_true(c.op.exists);
    assert_string_equal(c.op.error, "sim: injected deprovision failure for orc-bad");
    assert_int_equal(resources_in_file(&e), 1);
    site_close(&e);
    /* the same cloud without failure injection */
    site_open_ok(&e, "{\"inventory\": \"@INV\"}");
    assert_int_equal(simple(&e, &c, "deprovision", "orc-bad"), 0);
    assert_int_equal(resources_in_file(&e), 0);
    env_fini(&e);
}

static void latency_fixed_jitter_and_zero(void **state)
{
    struct env e;
    struct call c;
    struct orc_node_req r = node("orc-lat", 0, NULL);
    uint64_t t0;

    (void)state;
    env_init(&e);
    site_open_ok(&e, "{\"latency\": {\"provision\": 60, \"status\": {\"fixed_ms\": 10, "
                     "\"jitter_ms\": 30}}}");
    uv_update_time(&e.loop);
    t0 = uv_now(&e.loop);
    assert_int_equal(provision(&e, &c, &r), 0);
    assert_true(c.done_at - t0 >= 60);
    orc_drv_op_reset(&c.op);
    for (int i = 0; i < 5; i++) {
        uv_update_time(&e.loop);
        t0 = uv_now(&e.loop);
        assert_int_equal(simple(&e, &c, "status", "orc-lat"), 0);
        assert_true(c.done_at - t0 >= 10);
        assert_true(c.done_at - t0 <= 40 + 1000); /* jitter bound, generous slack */
        orc_drv_op_reset(&c.op);
    }
    /* zero latency (the default): never inside the call (checked by wait_call) */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(simple(&e, &c, "adopt", "orc-lat"), 0);
        orc_drv_op_reset(&c.op);
    }
    assert_int_equal(simple(&e, &c, "deprovision", "orc-lat"), 0);
    env_fini(&e);
}

static void inventory_survives_close_and_reopen(void **state)
{
    struct env e;
    struct call c;
    struct orc_node_req r1 = node("orc-p-1", 2, "A100"), r2 = node("orc-p-2", 1, "T4");
    char addr[64];

    (void)state;
    env_init(&e);
    site_open_ok(&e, "{\"inventory\": \"@INV\", \"price\": {\"A100\": 2.5, \"cpu\": 0.02}}");
    r2.public_ip = true;
    r2.kind = ORC_KIND_SERVICE;
    r2.ports = (const uint16_t[]){8080, 8443};
    r2.nports = 2;
    assert_int_equal(provision(&e, &c, &r1), 0);
    orc_drv_op_reset(&c.op);
    assert_int_equal(provision(&e, &c, &r2), 0);
    snprintf(addr, sizeof(addr), "%s", orc_drv_op_attr(&c.op, ORC_ATTR_PUBLIC_ADDRESS));
    assert_int_equal(strncmp(addr, "203.0.113.", 10), 0);
    orc_drv_op_reset(&c.op);
    site_close(&e);
    assert_int_equal(resources_in_file(&e), 2);

    /* a new site on the same file: the cloud still has both */
    site_open_ok(&e, "{\"inventory\": \"@INV\", \"price\": {\"A100\": 2.5, \"cpu\": 0.02}}");
    assert_int_equal(simple(&e, &c, "adopt", "orc-p-2"), 0);
    assert_true(c.op.exists);
    assert_int_equal(c.op.res_state, ORC_DRV_RES_READY);
    assert_string_equal(orc_drv_op_attr(&c.op, ORC_ATTR_PUBLIC_ADDRESS), addr);
    assert_string_equal(orc_drv_op_attr(&c.op, ORC_ATTR_PORTS), "[8080,8443]");
    {
        char url[96];
        snprintf(url, sizeof(url), "http://%s:8080", addr);
        assert_string_equal(orc_drv_op_attr(&c.op, ORC_ATTR_ENDPOINT), url);
    }
    orc_drv_op_reset(&c.op);
    assert_int_equal(simple(&e, &c, "inventory", NULL), 0);
    assert_int_equal(pool_of(&c.op, "A100")->gpus_free, 6);
    assert_int_equal(pool_of(&c.op, "A100")->gpus_total, 8);
    assert_true(pool_of(&c.op, "A100")->price_hour == 2.5);
    assert_true(pool_of(&c.op, "T4")->price_hour < 0); /* unknown */
    assert_int_equal(pool_of(&c.op, "T4")->gpus_free, 3);
    assert_int_equal(pool_of(&c.op, "cpu")->cpus_free, 56);
    assert_int_equal(pool_of(&c.op, "cpu")->mem_free, ((uint64_t)256 - 32) << 30);
    assert_null(pool_of(&c.op, "cpu")->gpu_model);
    orc_drv_op_reset(&c.op);
    /* re-provision after the restart: adopts, never duplicates */
    assert_int_equal(provision(&e, &c, &r1), 0);
    orc_drv_op_reset(&c.op);
    assert_int_equal(resources_in_file(&e), 2);
    assert_int_equal(simple(&e, &c, "deprovision", "orc-p-1"), 0);
    assert_int_equal(simple(&e, &c, "deprovision", "orc-p-2"), 0);
    assert_int_equal(resources_in_file(&e), 0);
    env_fini(&e);
}

static void inventory_survives_kill(void **state)
{
    struct env e;
    struct call c;
    pid_t pid;
    int wstatus;
    json_t *doc;
    const char *cfg = "{\"inventory\": \"@INV\", \"latency\": {\"provision\": 300, "
                      "\"deprovision\": 300}}";

    (void)state;
    env_init(&e);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* the "daemon": starts 3 provisions and a deprovision, then dies mid-flight */
        struct call k[3];
        char name[32];
        assert_int_equal(uv_loop_fork(&e.loop), 0);
        site_open_ok(&e, cfg);
        for (int i = 0; i < 3; i++) {
            struct orc_node_req r;
            snprintf(name, sizeof(name), "orc-k-%d", i);
            r = node(name, 1, "A100");
            call_init(&e, &k[i]);
            if (orc_drv_provision(e.site, &k[i].op, &r, call_cb) != 0)
                _exit(2);
        }
        run_for(&e, 20);
        raise(SIGKILL);
        _exit(3);
    }
    assert_int_equal(waitpid(pid, &wstatus, 0), pid);
    assert_true(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL);

    /* the cloud kept the three, being created */
    doc = inventory_file(&e);
    assert_int_equal(json_object_size(json_object_get(doc, "resources")), 3);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(doc, "resources"), "orc-k-0"),
                            "state")),
                        "CREATING");
    json_decref(doc);

    /* the restarted daemon adopts them; creation completes in cloud time */
    site_open_ok(&e, cfg);
    run_for(&e, 350);
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof(name), "orc-k-%d", i);
        assert_int_equal(simple(&e, &c, "adopt", name), 0);
        assert_true(c.op.exists);
        assert_int_equal(c.op.res_state, ORC_DRV_RES_READY);
        orc_drv_op_reset(&c.op);
    }
    assert_int_equal(used_gpus_in_file(&e, "A100"), 3);
    /* a deprovision cut short by a second kill still completes in the cloud */
    {
        struct call d;
        call_init(&e, &d);
        assert_int_equal(orc_drv_deprovision(e.site, &d.op, "orc-k-0", call_cb), 0);
        run_for(&e, 10);
        assert_int_equal(d.calls, 0);
        /* the site goes away without waiting (as if killed): close cancels */
        site_close(&e);
        assert_int_equal(d.calls, 1);
        assert_int_equal(d.status, ORC_ECANCELED);
        orc_drv_op_reset(&d.op);
    }
    site_open_ok(&e, cfg);
    run_for(&e, 350);
    site_close(&e);
    site_open_ok(&e, cfg); /* settles on open: the deletion is done */
    assert_int_equal(resources_in_file(&e), 2);
    assert_int_equal(simple(&e, &c, "deprovision", "orc-k-1"), 0);
    assert_int_equal(simple(&e, &c, "deprovision", "orc-k-2"), 0);
    assert_int_equal(resources_in_file(&e), 0);
    env_fini(&e);
}

static void cancel_hung_operation(void **state)
{
    struct env e;
    struct call c, d;
    struct orc_node_req r = node("orc-hang", 1, "A100");

    (void)state;
    env_init(&e);
    site_open_ok(&e, "{\"inventory\": \"@INV\", \"hangs\": {\"provision\": 1}}");
    call_init(&e, &c);
    assert_int_equal(orc_drv_provision(e.site, &c.op, &r, call_cb), 0);
    run_for(&e, 100);
    assert_int_equal(c.calls, 0); /* hung */
    assert_true(orc_drv_op_inflight(&c.op));
    c.in_call = true;
    assert_int_equal(orc_drv_cancel(e.site, &c.op), 0);
    c.in_call = false;
    assert_int_equal(c.calls, 0); /* never inside cancel */
    wait_call(&e, &c);
    assert_int_equal(c.status, ORC_ECANCELED);
    assert_string_equal(c.op.error, "sim: orc-hang canceled");
    assert_int_equal(orc_drv_cancel(e.site, &c.op), ORC_ENOTFOUND);
    orc_drv_op_reset(&c.op);

    /* what the provider started stays: the engine deprovisions by name */
    assert_int_equal(simple(&e, &d, "status", "orc-hang"), 0);
    assert_true(d.op.exists);
    assert_int_equal(d.op.res_state, ORC_DRV_RES_CREATING);
    orc_drv_op_reset(&d.op);
    assert_int_equal(used_gpus_in_file(&e, "A100"), 1);
    assert_int_equal(simple(&e, &d, "deprovision", "orc-hang"), 0);
    assert_int_equal(resources_in_file(&e), 0);
    assert_int_equal(used_gpus_in_file(&e, "A100"), 0);
    env_fini(&e);
}

static void close_cancels_inflight(void **state)
{
    struct env e;
    struct call c[3], cl;
    struct orc_node_req r = node("orc-slow", 0, NULL);

    (void)state;
    env_init(&e);
    site_open_ok(&e, "{\"latency\": {\"provision\": 10000, \"status\": 10000}, \"hangs\": "
                     "{\"inventory\": 1}}");
    call_init(&e, &c[0]);
    call_init(&e, &c[1]);
    call_init(&e, &c[2]);
    assert_int_equal(orc_drv_provision(e.site, &c[0].op, &r, call_cb), 0);
    assert_int_equal(orc_drv_status(e.site, &c[1].op, "orc-slow", call_cb), 0);
    assert_int_equal(orc_drv_inventory(e.site, &c[2].op, call_cb), 0);
    call_init(&e, &cl);
    assert_int_equal(orc_drv_site_close(e.site, &cl.op, call_cb), 0);
    /* no new work while closing */
    assert_int_equal(orc_drv_status(e.site, &c[0].op, "x", call_cb), ORC_ECONFLICT);
    wait_call(&e, &cl);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(c[i].calls, 1);
        assert_int_equal(c[i].status, ORC_ECANCELED);
        assert_true(c[i].done_at <= cl.done_at);
        orc_drv_op_reset(&c[i].op);
    }
    assert_int_equal(orc_drv_site_free(e.site), 0);
    e.site = NULL;
    env_fini(&e);
}

static void workloads_exec_and_logs(void **state)
{
    struct env e;
    struct call c;
    struct orc_node_req r = node("orc-w", 1, "T4");
    const char *serve[] = {"serve", "--port", "8080", NULL};
    const char *fail[] = {"false", NULL};
    struct orc_exec_req ex = {.name = "orc-w", .workload = "api", .argv = serve};
    struct orc_logs_req lg = {.name = "orc-w"};
    char *full;
    uint64_t total;

    (void)state;
    env_init(&e);
    site_open_ok(&e, "{\"inventory\": \"@INV\"}");
    assert_int_equal(provision(&e, &c, &r), 0);
    orc_drv_op_reset(&c.op);
    for (int i = 0; i < 2; i++) { /* the second start is a no-op */
        call_init(&e, &c);
        assert_int_equal(orc_drv_start_workload(e.site, &c.op, &ex, call_cb), 0);
        wait_call(&e, &c);
        assert_int_equal(c.status, 0);
        assert_int_equal(c.op.exit_status, -1);
        orc_drv_op_reset(&c.op);
    }
    call_init(&e, &c);
    assert_int_equal(orc_drv_exec(e.site, &c.op, &ex, call_cb), 0);
    wait_call(&e, &c);
    assert_int_equal(c.op.exit_status, 0);
    assert_string_equal(c.op.output, "sim exec on orc-w: serve --port 8080\n");
    orc_drv_op_reset(&c.op);
    ex.argv = fail;
    call_init(&e, &c);
    assert_int_equal(orc_drv_exec(e.site, &c.op, &ex, call_cb), 0);
    wait_call(&e, &c);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.op.exit_status, 1);
    orc_drv_op_reset(&c.op);

    call_init(&e, &c);
    assert_int_equal(orc_drv_logs(e.site, &c.op, &lg, call_cb), 0);
    wait_call(&e, &c);
    assert_int_equal(c.op.out_offset, 0);
    assert_int_equal(c.op.out_total, c.op.output_len);
    assert_non_null(strstr(c.op.output, "workload api started: serve --port 8080\n"));
    assert_null(strstr(strstr(c.op.output, "workload api started") + 1, "workload api started"));
    assert_non_null(strstr(c.op.output, "exec: false (exit 1)\n"));
    full = strdup(c.op.output);
    total = c.op.out_total;
    orc_drv_op_reset(&c.op);

    lg.offset = 10;
    lg.max_bytes = 5;
    call_init(&e, &c);
    assert_int_equal(orc_drv_logs(e.site, &c.op, &lg, call_cb), 0);
    wait_call(&e, &c);
    assert_int_equal(c.op.out_offset, 10);
    assert_int_equal(c.op.output_len, 5);
    assert_memory_equal(c.op.output, full + 10, 5);
    orc_drv_op_reset(&c.op);
    lg.offset = ORC_LOGS_TAIL;
    lg.max_bytes = 8;
    call_init(&e, &c);
    assert_int_equal(orc_drv_logs(e.site, &c.op, &lg, call_cb), 0);
    wait_call(&e, &c);
    assert_int_equal(c.op.out_offset, total - 8);
    assert_string_equal(c.op.output, full + total - 8);
    orc_drv_op_reset(&c.op);
    lg.offset = total + 100; /* past the end: nothing, not an error */
    call_init(&e, &c);
    assert_int_equal(orc_drv_logs(e.site, &c.op, &lg, call_cb), 0);
    wait_call(&e, &c);
    assert_int_equal(c.op.output_len, 0);
    assert_int_equal(c.op.out_offset, total);
    orc_drv_op_reset(&c.op);
    free(full);

    /* no such resource */
    ex.name = lg.name = "orc-none";
    call_init(&e, &c);
    assert_int_equal(orc_drv_exec(e.site, &c.op, &ex, call_cb), 0);
    wait_call(&e, &c);
    assert_int_equal(c.status, ORC_ENOTFOUND);
    orc_drv_op_reset(&c.op);
    ex.argv = NULL;
    assert_int_equal(orc_drv_exec(e.site, &c.op, &ex, call_cb), ORC_EINVAL);
    assert_int_equal(simple(&e, &c, "deprovision", "orc-w"), 0);
    env_fini(&e);
}

/* ---- ABI 2: stop_workload, stop, start ----------------------------------------------- */

static int start_wl(struct env *e, struct call *c, const char *name, const char *workload)
{
    static const char *const argv[] = {"serve", NULL};
    struct orc_exec_req ex = {.name = name, .workload = workload, .argv = argv};
    int rc;

    call_init(e, c);
    c->in_call = true;
    rc = orc_drv_start_workload(e->site, &c->op, &ex, call_cb);
    c->in_call = false;
    if (rc < 0)
        return rc;
    wait_call(e, c);
    return c->status;
}

static int stop_wl(struct env *e, struct call *c, const char *name, const char *workload)
{
    int rc;

    call_init(e, c);
    c->in_call = true;
    rc = orc_drv_stop_workload(e->site, &c->op, name, workload, call_cb);
    c->in_call = false;
    if (rc < 0)
        return rc;
    wait_call(e, c);
    return c->status;
}

/* A field of the inventory file's record of name (a new reference). */
static json_t *record_field(struct env *e, const char *name, const char *field)
{
    json_t *doc = inventory_file(e);
    json_t *v = json_object_get(json_object_get(json_object_get(doc, "resources"), name), field);

    json_incref(v);
    json_decref(doc);
    return v;
}

static void assert_record_state(struct env *e, const char *name, const char *want)
{
    json_t *v = record_field(e, name, "state");

    assert_non_null(v);
    assert_string_equal(json_string_value(v), want);
    json_decref(v);
}

/* The state of a workload in the file: "running", "stopped"; *resume. */
static const char *wl_state_in_file(struct env *e, const char *name, const char *wl, bool *resume)
{
    static char buf[32];
    json_t *wls = record_field(e, name, "workloads"), *w = json_object_get(wls, wl);

    snprintf(buf, sizeof(buf), "%s", w ? json_string_value(json_object_get(w, "state")) : "(none)");
    if (resume)
        *resume = json_is_true(json_object_get(w, "resume"));
    json_decref(wls);
    return buf;
}

static int64_t stopped_in_file(struct env *e, const char *what, const char *model)
{
    json_t *doc = inventory_file(e), *st = json_object_get(doc, "stopped");
    int64_t n = model ? json_integer_value(json_object_get(json_object_get(st, "gpus"), model))
                      : json_integer_value(json_object_get(st, what));

    json_decref(doc);
    return n;
}

static void stop_start_and_workloads(void **state)
{
    const char *cfg = "{\"inventory\": \"@INV\"}";
    struct orc_node_req r = node("orc-s-1", 2, "A100");
    struct env e;
    struct call c;
    bool resume;

    (void)state;
    env_init(&e);
    site_open_ok(&e, cfg);
    assert_int_equal(provision(&e, &c, &r), 0);
    orc_drv_op_reset(&c.op);
    assert_int_equal(start_wl(&e, &c, "orc-s-1", "api"), 0);
    assert_int_equal(start_wl(&e, &c, "orc-s-1", "batch"), 0);
    assert_string_equal(wl_state_in_file(&e, "orc-s-1", "api", NULL), "running");

    /* stop_workload: exists says whether it ran; idempotent */
    assert_int_equal(stop_wl(&e, &c, "orc-s-1", "batch"), 0);
    assert_true(c.op.exists);
    assert_string_equal(wl_state_in_file(&e, "orc-s-1", "batch", NULL), "stopped");
    assert_int_equal(stop_wl(&e, &c, "orc-s-1", "batch"), 0);
    assert_false(c.op.exists);
    assert_int_equal(stop_wl(&e, &c, "orc-s-1", "never-started"), 0);
    assert_false(c.op.exists);
    assert_int_equal(stop_wl(&e, &c, "orc-none", NULL), ORC_ENOTFOUND);
    assert_string_equal(c.op.error, "sim: no resource orc-none");
    /* start_workload afterwards runs it again, as the request now says */
    {
        static const char *const argv[] = {"serve", "--port", "9090", NULL};
        struct orc_exec_req ex = {
            .name = "orc-s-1", .workload = "batch", .argv = argv, .port = 9090};
        char url[64];
        json_t *wls, *addr;
        call_init(&e, &c);
        assert_int_equal(orc_drv_start_workload(e.site, &c.op, &ex, call_cb), 0);
        wait_call(&e, &c);
        assert_int_equal(c.status, 0);
        addr = record_field(&e, "orc-s-1", "private_address");
        wls = record_field(&e, "orc-s-1", "workloads");
        snprintf(url, sizeof(url), "http://%s:9090", json_string_value(addr));
        json_decref(addr);
        assert_string_equal(orc_drv_op_attr(&c.op, ORC_ATTR_ENDPOINT), url);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(wls, "batch"), "command")),
            "serve --port 9090");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(wls, "batch"), "port")),
                         9090);
        json_decref(wls);
        orc_drv_op_reset(&c.op);
    }
    assert_string_equal(wl_state_in_file(&e, "orc-s-1", "batch", NULL), "running");
    assert_int_equal(stop_wl(&e, &c, "orc-s-1", "batch"), 0); /* stopped before the node */
    assert_true(c.op.exists);

    /* stop: STOPPED everywhere; the capacity stays reserved */
    assert_int_equal(simple(&e, &c, "stop", "orc-s-1"), 0);
    assert_true(c.op.exists);
    assert_int_equal(c.op.res_state, ORC_DRV_RES_STOPPED);
    assert_non_null(orc_drv_op_attr(&c.op, ORC_ATTR_PRIVATE_ADDRESS));
    orc_drv_op_reset(&c.op);
    assert_record_state(&e, "orc-s-1", "STOPPED");
    assert_string_equal(wl_state_in_file(&e, "orc-s-1", "api", &resume), "stopped");
    assert_true(resume);
    assert_string_equal(wl_state_in_file(&e, "orc-s-1", "batch", &resume), "stopped");
    assert_false(resume);
    assert_int_equal(stopped_in_file(&e, "resources", NULL), 1);
    assert_int_equal(stopped_in_file(&e, NULL, "A100"), 2);
    assert_int_equal(used_gpus_in_file(&e, "A100"), 2);
    assert_int_equal(simple(&e, &c, "inventory", NULL), 0);
    assert_int_equal(pool_of(&c.op, "A100")->gpus_free, 6);
    orc_drv_op_reset(&c.op);
    assert_int_equal(simple(&e, &c, "status", "orc-s-1"), 0);
    assert_int_equal(c.op.res_state, ORC_DRV_RES_STOPPED);
    orc_drv_op_reset(&c.op);
    assert_int_equal(simple(&e, &c, "stop", "orc-s-1"), 0); /* idempotent */
    assert_int_equal(c.op.res_state, ORC_DRV_RES_STOPPED);
    orc_drv_op_reset(&c.op);
    /* a stopped resource runs nothing */
    assert_int_equal(start_wl(&e, &c, "orc-s-1", "api"), ORC_ECONFLICT);
    assert_string_equal(c.op.error, "sim: orc-s-1 is STOPPED, not READY");
    assert_int_equal(stop_wl(&e, &c, "orc-s-1", "api"), 0);
    assert_false(c.op.exists);
    /* provision of its name: the same resource, as it is */
    assert_int_equal(provision(&e, &c, &r), 0);
    assert_int_equal(c.op.res_state, ORC_DRV_RES_STOPPED);
    orc_drv_op_reset(&c.op);

    /* it survives a close and reopen: adopt says STOPPED */
    site_close(&e);
    site_open_ok(&e, cfg);
    assert_int_equal(simple(&e, &c, "adopt", "orc-s-1"), 0);
    assert_int_equal(c.op.res_state, ORC_DRV_RES_STOPPED);
    orc_drv_op_reset(&c.op);

    /* start: READY, and what ran before the stop runs again */
    assert_int_equal(simple(&e, &c, "start", "orc-s-1"), 0);
    assert_true(c.op.exists);
    assert_int_equal(c.op.res_state, ORC_DRV_RES_READY);
    assert_non_null(orc_drv_op_attr(&c.op, ORC_ATTR_PRIVATE_ADDRESS));
    orc_drv_op_reset(&c.op);
    assert_record_state(&e, "orc-s-1", "READY");
    assert_string_equal(wl_state_in_file(&e, "orc-s-1", "api", &resume), "running");
    assert_false(resume);
    assert_string_equal(wl_state_in_file(&e, "orc-s-1", "batch", NULL), "stopped");
    assert_int_equal(stopped_in_file(&e, "resources", NULL), 0);
    assert_int_equal(simple(&e, &c, "start", "orc-s-1"), 0); /* running: at once */
    assert_int_equal(c.op.res_state, ORC_DRV_RES_READY);
    orc_drv_op_reset(&c.op);

    /* names that do not exist */
    assert_int_equal(simple(&e, &c, "stop", "orc-none"), 0);
    assert_false(c.op.exists);
    assert_int_equal(simple(&e, &c, "start", "orc-none"), ORC_ENOTFOUND);
    assert_string_equal(c.op.error, "sim: no resource orc-none");
    call_init(&e, &c);
    assert_int_equal(orc_drv_stop(e.site, &c.op, "", call_cb), ORC_EINVAL);

    /* a stopped resource is deleted like any other: nothing leaks */
    assert_int_equal(simple(&e, &c, "stop", "orc-s-1"), 0);
    orc_drv_op_reset(&c.op);
    assert_int_equal(simple(&e, &c, "deprovision", "orc-s-1"), 0);
    assert_true(c.op.exists);
    assert_int_equal(resources_in_file(&e), 0);
    assert_int_equal(used_gpus_in_file(&e, "A100"), 0);
    assert_int_equal(stopped_in_file(&e, "resources", NULL), 0);
    env_fini(&e);
}

/* Runs 16 stop/start pairs with a 50% failure rate on each: the bit mask of
 * failed calls (stop: even bits, start: odd bits). */
static uint32_t power_failure_pattern(struct env *e)
{
    struct orc_node_req r = node("orc-pf", 0, NULL);
    struct call c;
    uint32_t mask = 0;

    site_open_ok(e, "{\"inventory\": \"@INV\", \"seed\": 7, \"failures\": {\"stop\": 0.5, "
                    "\"start\": 0.5}}");
    assert_int_equal(provision(e, &c, &r), 0);
    orc_drv_op_reset(&c.op);
    for (int i = 0; i < 16; i++) {
        const char *what = i % 2 ? "start" : "stop";
        int rc = simple(e, &c, what, "orc-pf");
        if (rc < 0) {
            mask |= 1u << i;
            assert_int_equal(rc, ORC_EDRIVER);
            assert_non_null(strstr(c.op.error, "injected"));
            /* a failed stop or start left the state as it was */
            assert_record_state(e, "orc-pf", i % 2 ? "STOPPED" : "READY");
        }
        orc_drv_op_reset(&c.op);
        /* back to READY for the next stop when this stop failed, or to
         * STOPPED for the next start when this start failed */
        if (rc < 0) {
            site_close(e);
            site_open_ok(e, "{\"inventory\": \"@INV\", \"seed\": 99}");
            assert_int_equal(simple(e, &c, what, "orc-pf"), 0);
            orc_drv_op_reset(&c.op);
            site_close(e);
            site_open_ok(e, "{\"inventory\": \"@INV\", \"seed\": 7, \"failures\": {\"stop\": "
                            "0.5, \"start\": 0.5}}");
            /* a fresh generator: both runs make the same calls, so the
             * same draws */
            for (int j = 0; j <= i; j++) {
                assert_int_equal(simple(e, &c, "status", "orc-pf"), 0);
                orc_drv_op_reset(&c.op);
            }
        }
    }
    assert_int_equal(simple(e, &c, "deprovision", "orc-pf"), 0);
    assert_int_equal(resources_in_file(e), 0);
    site_close(e);
    unlink(e->inv);
    return mask;
}

static void stop_start_latency_failures_hangs(void **state)
{
    struct orc_node_req r = node("orc-h", 1, "T4");
    struct env e;
    struct call c, cl;
    uint64_t t0;
    uint32_t m1, m2;
    int n = 0;

    (void)state;
    env_init(&e);
    /* seeded failures: the same pattern twice, some of each */
    m1 = power_failure_pattern(&e);
    m2 = power_failure_pattern(&e);
    assert_int_equal(m1, m2);
    for (int i = 0; i < 16; i++)
        n += (m1 >> i) & 1;
    assert_true(n > 1 && n < 15);

    /* latency per slot name */
    site_open_ok(&e, "{\"inventory\": \"@INV\", \"latency\": {\"stop\": 60, \"start\": 40, "
                     "\"stop_workload\": 30, \"start_workload\": 20}}");
    assert_int_equal(provision(&e, &c, &r), 0);
    orc_drv_op_reset(&c.op);
    uv_update_time(&e.loop);
    t0 = uv_now(&e.loop);
    assert_int_equal(start_wl(&e, &c, "orc-h", NULL), 0);
    assert_true(c.done_at - t0 >= 20);
    uv_update_time(&e.loop);
    t0 = uv_now(&e.loop);
    assert_int_equal(stop_wl(&e, &c, "orc-h", NULL), 0);
    assert_true(c.op.exists);
    assert_true(c.done_at - t0 >= 30);
    uv_update_time(&e.loop);
    t0 = uv_now(&e.loop);
    assert_int_equal(simple(&e, &c, "stop", "orc-h"), 0);
    assert_true(c.done_at - t0 >= 60);
    orc_drv_op_reset(&c.op);
    uv_update_time(&e.loop);
    t0 = uv_now(&e.loop);
    assert_int_equal(simple(&e, &c, "start", "orc-h"), 0);
    assert_true(c.done_at - t0 >= 40);
    orc_drv_op_reset(&c.op);
    site_close(&e);

    /* failures and hangs of the ABI 2 slots */
    site_open_ok(&e, "{\"inventory\": \"@INV\", \"failures\": {\"stop_workload\": 1, "
                     "\"deprovision\": 1}, \"hangs\": {\"start\": 1, \"stop\": 1}}");
    assert_int_equal(start_wl(&e, &c, "orc-h", NULL), 0);
    assert_int_equal(stop_wl(&e, &c, "orc-h", NULL), ORC_EDRIVER);
    assert_string_equal(c.op.error, "sim: injected stop_workload failure for orc-h/main");
    assert_string_equal(wl_state_in_file(&e, "orc-h", "main", NULL), "running");
    /* a hung stop: nothing changes until cancel */
    call_init(&e, &c);
    assert_int_equal(orc_drv_stop(e.site, &c.op, "orc-h", call_cb), 0);
    run_for(&e, 50);
    assert_int_equal(c.calls, 0);
    assert_int_equal(orc_drv_cancel(e.site, &c.op), 0);
    wait_call(&e, &c);
    assert_int_equal(c.status, ORC_ECANCELED);
    orc_drv_op_reset(&c.op);
    assert_record_state(&e, "orc-h", "READY");
    /* the deprovision that must fail (DELETE_FAILED for the engine) */
    assert_int_equal(simple(&e, &c, "deprovision", "orc-h"), ORC_EDRIVER);
    assert_string_equal(c.op.error, "sim: injected deprovision failure for orc-h");
    assert_int_equal(resources_in_file(&e), 1);
    /* a hung start still in flight at close: ECANCELED, before the close */
    call_init(&e, &c);
    assert_int_equal(orc_drv_start(e.site, &c.op, "orc-h", call_cb), 0);
    call_init(&e, &cl);
    assert_int_equal(orc_drv_site_close(e.site, &cl.op, call_cb), 0);
    wait_call(&e, &cl);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.status, ORC_ECANCELED);
    assert_true(c.done_at <= cl.done_at);
    orc_drv_op_reset(&c.op);
    assert_int_equal(orc_drv_site_free(e.site), 0);
    e.site = NULL;

    site_open_ok(&e, "{\"inventory\": \"@INV\"}");
    assert_int_equal(simple(&e, &c, "deprovision", "orc-h"), 0);
    assert_int_equal(resources_in_file(&e), 0);
    env_fini(&e);
}

static void config_and_credentials(void **state)
{
    static const struct {
        const char *config;
        const char *text;
    } bad[] = {
        {"{\"bogus\": 1}", "unknown config key 'bogus'"},
        {"[1]", "config is not a JSON object"},
        {"{\"latency\": {\"provision\": -1}}", "latency.provision: expected milliseconds"},
        {"{\"latency\": {\"teleport\": 1}}", "latency: unknown operation 'teleport'"},
        {"{\"hangs\": {\"power\": 1}}", "hangs: unknown operation 'power' (inventory"},
        {"{\"failures\": {\"stop\": -1}}", "failures.stop: expected a rate in [0, 1]"},
        {"{\"failures\": {\"provision\": 2}}", "failures.provision: expected a rate in [0, 1]"},
        {"{\"capacity\": {\"gpus\": {\"A100\": -1}}}", "capacity.gpus.A100"},
        {"{\"capacity\": {\"mem\": \"lots\"}}", "capacity.mem"},
        {"{\"price\": {\"H100\": 1}}", "price.H100: no such GPU model"},
        {"{\"seed\": \"x\"}", "seed: expected an integer"},
    };
    struct env e;
    char err[ORC_OP_ERROR_LEN];
    struct call c;
    struct orc_node_req r = node("orc-pub", 0, NULL);

    (void)state;
    env_init(&e);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(site_open_cfg(&e, "bad", bad[i].config, NULL, err), ORC_EINVAL);
        if (strstr(err, bad[i].text) == NULL)
            fail_msg("%s: got '%s'", bad[i].config, err);
    }
    /* a corrupt inventory file is refused, not overwritten */
    {
        FILE *f = fopen(e.inv, "w");
        fputs("{not json", f);
        fclose(f);
        assert_int_equal(site_open_cfg(&e, "bad", "{\"inventory\": \"@INV\"}", NULL, err),
                         ORC_EFORMAT);
        assert_non_null(strstr(err, "cloud.json:1:"));
        unlink(e.inv);
    }
    unsetenv("ORC_SECRET_SIM_CRED");
    assert_int_equal(site_open_cfg(&e, "cred", "{}", "sim-cred", err), ORC_EDENIED);
    assert_string_equal(err, "sim: credentials secret 'sim-cred' not found");
    setenv("ORC_SECRET_SIM_CRED", "t0ken", 1);
    assert_int_equal(site_open_cfg(&e, "cred", "{\"public_ip\": false}", "sim-cred", err), 0);
    unsetenv("ORC_SECRET_SIM_CRED");
    r.public_ip = true;
    assert_int_equal(provision(&e, &c, &r), ORC_ENOTSUP);
    assert_string_equal(c.op.error, "site cred gives no public addresses");
    /* bad requests fail at once, without a callback */
    r.name = "";
    call_init(&e, &c);
    assert_int_equal(orc_drv_provision(e.site, &c.op, &r, call_cb), ORC_EINVAL);
    assert_int_equal(orc_drv_deprovision(e.site, &c.op, NULL, call_cb), ORC_EINVAL);
    run_for(&e, 5);
    assert_int_equal(c.calls, 0);
    env_fini(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(provision_adopt_deprovision),
        cmocka_unit_test(provision_is_idempotent),
        cmocka_unit_test(capacity_errors_name_model_and_counts),
        cmocka_unit_test(failure_injection_is_seeded),
        cmocka_unit_test(failed_resource_stays_until_deprovisioned),
        cmocka_unit_test(latency_fixed_jitter_and_zero),
        cmocka_unit_test(inventory_survives_close_and_reopen),
        cmocka_unit_test(inventory_survives_kill),
        cmocka_unit_test(cancel_hung_operation),
        cmocka_unit_test(close_cancels_inflight),
        cmocka_unit_test(workloads_exec_and_logs),
        cmocka_unit_test(stop_start_and_workloads),
        cmocka_unit_test(stop_start_latency_failures_hangs),
        cmocka_unit_test(config_and_credentials),
    };

    if (getenv("TEST_LOG") == NULL)
        orc_log_set_level(ORC_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
