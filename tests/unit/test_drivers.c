/*
 * Tests of the driver registry (orchestrator/engine/drivers.c) and the sites
 * file (orchestrator/engine/sites.c): loading the real drivers from
 * $PLUGIN_DIR (which holds nothing else) and each broken fixture of
 * plugins/broken from $TEST_PLUGIN_DIR (ABI 1 against ABI 2, signature
 * mismatch, missing symbol, NULL vtable or slot, duplicate names, bad names
 * and sizes), core default slots (ABI 2's too), the callback-contract checks
 * against the "rogue" fixture in old and new slots, the host services
 * table, resource names, and sites file validation. Every test runs its own
 * uv loop and closes every handle.
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "testutil.h"
#include "loop_fixture.h"

#include "engine/../base.h" /* orchestrator/base.h: "base.h" is libtosca's here */
#include "engine/drivers.h"
#include "engine/sites.h"
#include "orc/size.h"

/* ---- harness ------------------------------------------------------------------ */

static const char *plugin_dir(void)
{
    const char *d = getenv("PLUGIN_DIR");
    return d && *d ? d : "build/release/plugins";
}

/* The test fixtures' folder: $TEST_PLUGIN_DIR, else test-plugins next to
 * the plugin folder. */
static const char *test_plugin_dir(void)
{
    static char buf[512];
    const char *d = getenv("TEST_PLUGIN_DIR");
    const char *slash;

    if (d && *d)
        return d;
    slash = strrchr(plugin_dir(), '/');
    snprintf(buf, sizeof(buf), "%.*stest-plugins", slash ? (int)(slash - plugin_dir() + 1) : 0,
             plugin_dir());
    return buf;
}

static char *so_path(const char *dir, const char *name)
{
    static char buf[4][512];
    static int i;

    i = (i + 1) % 4;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s.so", dir, name);
    return buf[i];
}

static char *plugin(const char *name)
{
    return so_path(plugin_dir(), name);
}

/* The fixture shared object (plugins/broken). */
static char *fixture(void)
{
    return so_path(test_plugin_dir(), "broken");
}

struct env {
    uv_loop_t loop;
    struct orc_drv_registry *reg;
};

static void env_init(struct env *e)
{
    assert_int_equal(uv_loop_init(&e->loop), 0);
    assert_int_equal(orc_drv_registry_new(&e->loop, &e->reg), 0);
    orc_drv_set_strict(e->reg, false);
}

static void print_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    fprintf(stderr, "  handle left open: %s\n", uv_handle_type_name(h->type));
}

static void env_fini(struct env *e)
{
    assert_int_equal(orc_drv_registry_close(e->reg), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&e->loop) != 0) {
        uv_walk(&e->loop, print_handle, NULL);
        fail_msg("loop has handles left");
    }
}

static bool run_until(struct env *e, const int *counter, int target, uint64_t timeout_ms)
{
    return loop_run_until(&e->loop, counter, target, timeout_ms);
}

static void run_for(struct env *e, uint64_t ms)
{
    loop_run_for(&e->loop, ms);
}

static bool has_error(struct env *e, int code, const char *text)
{
    for (size_t i = 0; i < orc_drv_error_count(e->reg); i++) {
        const struct orc_drv_load_error *le = orc_drv_error_at(e->reg, i);
        if (le->code == code && strstr(le->message, text) != NULL)
            return true;
    }
    return false;
}

static struct orc_drv_site *open_site(struct env *e, const char *driver, const char *name,
                                      const char *config)
{
    struct orc_site_conf conf = {name, config, NULL};
    struct orc_drv_site *site;
    struct loop_call c;

    loop_call_init(&c);
    assert_int_equal(orc_drv_site_new(e->reg, driver, &conf, &site), 0);
    c.in_call = true;
    assert_int_equal(orc_drv_site_open(site, &c.op, loop_call_cb), 0);
    c.in_call = false;
    assert_true(run_until(e, &c.calls, 1, 5000));
    assert_false(c.sync);
    assert_int_equal(c.status, 0);
    assert_int_equal(site->st, ORC_DRV_SITE_OPEN);
    orc_drv_op_reset(&c.op);
    return site;
}

static void close_site(struct env *e, struct orc_drv_site *site)
{
    struct loop_call c;

    loop_call_init(&c);
    c.in_call = true;
    assert_int_equal(orc_drv_site_close(site, &c.op, loop_call_cb), 0);
    c.in_call = false;
    assert_true(run_until(e, &c.calls, 1, 5000));
    assert_false(c.sync);
    assert_int_equal(c.status, 0);
    assert_int_equal(orc_drv_site_free(site), 0);
}

/* ---- loading ----------------------------------------------------------------------- */

static void print_load_errors(struct env *e)
{
    for (size_t i = 0; i < orc_drv_error_count(e->reg); i++)
        fprintf(stderr, "  load error: %s\n", orc_drv_error_at(e->reg, i)->message);
}

/* The daemon's plugin folder holds real drivers only: they all load, with
 * their own ABI 2 slots, and nothing is reported. */
static void load_dir_loads_real_drivers_only(void **state)
{
    struct env e;
    const struct orc_drv *sim, *local;
    int n;

    (void)state;
    env_init(&e);
    n = orc_drv_load_dir(e.reg, plugin_dir());
    print_load_errors(&e);
    assert_int_equal(orc_drv_error_count(e.reg), 0);
    assert_true(n >= 2);
    assert_int_equal((size_t)n, orc_drv_count(e.reg));
    sim = orc_drv_find(e.reg, "sim");
    local = orc_drv_find(e.reg, "local");
    assert_non_null(sim);
    assert_non_null(local);
    assert_string_equal(sim->vt.name, "sim");
    assert_true(sim->vt.caps & ORC_DRV_CAP_GPU);
    assert_true(sim->vt.caps & ORC_DRV_CAP_ADOPT);
    assert_non_null(strstr(sim->path, "sim.so"));
    for (size_t i = 0; i < orc_drv_count(e.reg); i++) {
        const struct orc_drv *d = orc_drv_at(e.reg, i);
        assert_int_equal(d->orig->abi, ORC_DRIVER_ABI);
        assert_true(d->orig->size >= sizeof(struct orc_driver));
    }
    /* the copies keep the drivers' own ABI 2 slots: no core default there */
    assert_ptr_equal(sim->vt.stop_workload, sim->orig->stop_workload);
    assert_ptr_equal(sim->vt.stop, sim->orig->stop);
    assert_ptr_equal(sim->vt.start, sim->orig->start);
    assert_ptr_equal(local->vt.stop_workload, local->orig->stop_workload);
    assert_ptr_equal(local->vt.stop, local->orig->stop);
    assert_ptr_equal(local->vt.start, local->orig->start);
    assert_non_null(local->orig->stop_workload);
    assert_non_null(local->orig->stop);
    assert_non_null(local->orig->start);
    assert_null(orc_drv_find(e.reg, "minimal")); /* no fixture in the daemon's folder */
    env_fini(&e);
}

/* The fixtures' folder: broken.so has no standard entry symbol: reported,
 * not fatal. */
static void load_dir_reports_fixture(void **state)
{
    struct env e;

    (void)state;
    env_init(&e);
    assert_int_equal(orc_drv_load_dir(e.reg, test_plugin_dir()), 0);
    assert_int_equal(orc_drv_count(e.reg), 0);
    assert_true(has_error(&e, ORC_EDRIVER, "broken.so: no orc_driver_entry symbol"));
    assert_int_equal(orc_drv_error_count(e.reg), 1);
    env_fini(&e);
}

/* A folder with no driver in it loads nothing and is no error (the sort of its
 * empty list once passed NULL to qsort: UBSan, under make fuzz). */
static void load_dir_empty_folder(void **state)
{
    struct env e;
    char dir[256];

    (void)state;
    assert_int_equal(test_mkdtemp(dir, sizeof(dir), "orc-drv-empty"), 0);
    env_init(&e);
    assert_int_equal(orc_drv_load_dir(e.reg, dir), 0);
    assert_int_equal(orc_drv_count(e.reg), 0);
    assert_int_equal(orc_drv_error_count(e.reg), 0);
    env_fini(&e);
    rmdir(dir);
}

static void load_failures_are_recorded(void **state)
{
    struct env e;

    (void)state;
    env_init(&e);
    assert_int_equal(orc_drv_load_file(e.reg, "/nonexistent/x.so"), ORC_EDRIVER);
    assert_true(has_error(&e, ORC_EDRIVER, "/nonexistent/x.so: cannot load"));
    assert_true(orc_drv_load_dir(e.reg, "/nonexistent-dir") < 0);
    assert_int_equal(orc_drv_error_count(e.reg), 2);
    assert_int_equal(orc_drv_count(e.reg), 0);
    assert_non_null(orc_drv_error_at(e.reg, 0)->path);
    assert_null(orc_drv_error_at(e.reg, 2));
    env_fini(&e);
}

static void missing_entry_symbol(void **state)
{
    struct env e;

    (void)state;
    env_init(&e);
    assert_int_equal(orc_drv_load_file(e.reg, fixture()), ORC_EDRIVER);
    assert_true(has_error(&e, ORC_EDRIVER, "no orc_driver_entry symbol"));
    assert_int_equal(orc_drv_load_file_entry(e.reg, fixture(), "no_such_entry"), ORC_EDRIVER);
    assert_int_equal(orc_drv_count(e.reg), 0);
    env_fini(&e);
}

static void abi_and_signature_mismatch(void **state)
{
    struct env e;

    (void)state;
    env_init(&e);
    assert_int_equal(orc_drv_load_file_entry(e.reg, fixture(), "orc_broken_bad_abi"), ORC_EABI);
    assert_true(has_error(&e, ORC_EABI, "built for driver ABI 99, this daemon speaks ABI 3"));
    assert_int_equal(orc_drv_load_file_entry(e.reg, fixture(), "orc_broken_bad_sig"), ORC_EABI);
    assert_true(has_error(&e, ORC_EABI, "build signature 'orc-driver/1 ptr/4 be uv/0'"));
    assert_int_equal(orc_drv_count(e.reg), 0);
    env_fini(&e);
}

/* A driver built against the ABI 1 header is refused with a clear reason;
 * one that says ABI 2 with an ABI 1-sized vtable too (the core would read
 * its ABI 2 slots past its end). */
static void abi1_refused_by_abi2_loader(void **state)
{
    char need[64];
    struct env e;

    (void)state;
    env_init(&e);
    assert_int_equal(ORC_DRIVER_ABI, 3);
    assert_int_equal(orc_drv_load_file_entry(e.reg, fixture(), "orc_broken_abi1"), ORC_EABI);
    assert_true(has_error(&e, ORC_EABI, "built for driver ABI 1, this daemon speaks ABI 3"));
    assert_true(has_error(&e, ORC_EABI, "rebuild the driver"));
    assert_null(orc_drv_find(e.reg, "abi1"));
    assert_int_equal(orc_drv_load_file_entry(e.reg, fixture(), "orc_broken_abi2_short"),
                     ORC_EDRIVER);
    snprintf(need, sizeof(need), "vtable of %zu bytes, ABI %d needs %zu",
             offsetof(struct orc_driver, cancel) + sizeof(void *), ORC_DRIVER_ABI,
             offsetof(struct orc_driver, start) + sizeof(void *));
    if (!has_error(&e, ORC_EDRIVER, need)) {
        print_load_errors(&e);
        fail_msg("no error '%s'", need);
    }
    assert_null(orc_drv_find(e.reg, "abi2_short"));
    assert_int_equal(orc_drv_count(e.reg), 0);
    assert_int_equal(orc_drv_error_count(e.reg), 2);
    /* the same shared object still serves a correct driver of this ABI */
    assert_int_equal(orc_drv_load_file_entry(e.reg, fixture(), "orc_broken_minimal"), 0);
    assert_int_equal(orc_drv_find(e.reg, "minimal")->orig->abi, ORC_DRIVER_ABI);
    env_fini(&e);
}

static void bad_vtables(void **state)
{
    static const struct {
        const char *entry;
        const char *text;
    } cases[] = {
        {"orc_broken_null", "returned no vtable"},
        {"orc_broken_null_slot", "mandatory slot provision is NULL"},
        {"orc_broken_bad_name", "driver name missing or invalid"},
        {"orc_broken_small", "vtable of 16 bytes"},
        {"orc_broken_huge_state", "state_size 1073741824 exceeds"},
        {"orc_broken_adopt_cap", "caps say ADOPT but the adopt slot is NULL"},
    };
    struct env e;

    (void)state;
    env_init(&e);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(orc_drv_load_file_entry(e.reg, fixture(), cases[i].entry), ORC_EDRIVER);
        if (!has_error(&e, ORC_EDRIVER, cases[i].text))
            fail_msg("%s: no error containing '%s'", cases[i].entry, cases[i].text);
    }
    assert_int_equal(orc_drv_count(e.reg), 0);
    assert_int_equal(orc_drv_error_count(e.reg), sizeof(cases) / sizeof(cases[0]));
    env_fini(&e);
}

static void duplicate_names(void **state)
{
    struct env e;

    (void)state;
    env_init(&e);
    assert_int_equal(orc_drv_load_file(e.reg, plugin("sim")), 0);
    assert_int_equal(orc_drv_load_file_entry(e.reg, fixture(), "orc_broken_dup"), ORC_ECONFLICT);
    assert_true(has_error(&e, ORC_ECONFLICT, "driver 'sim' is already loaded from"));
    assert_int_equal(orc_drv_load_file(e.reg, plugin("sim")), ORC_ECONFLICT);
    assert_int_equal(orc_drv_count(e.reg), 1);
    /* the first one stays, with its own slots */
    assert_non_null(strstr(orc_drv_find(e.reg, "sim")->path, "sim.so"));
    assert_int_equal(orc_drv_load_file_entry(e.reg, fixture(), "orc_broken_minimal"), 0);
    assert_int_equal(orc_drv_load_file_entry(e.reg, fixture(), "orc_broken_minimal"),
                     ORC_ECONFLICT);
    assert_int_equal(orc_drv_count(e.reg), 2);
    env_fini(&e);
}

static void load_paths_counts(void **state)
{
    struct env e;
    const char *paths[3];

    (void)state;
    env_init(&e);
    paths[0] = plugin("sim");
    paths[1] = fixture();
    paths[2] = "/nonexistent.so";
    assert_int_equal(orc_drv_load_paths(e.reg, paths, 3), 1);
    assert_int_equal(orc_drv_error_count(e.reg), 2);
    env_fini(&e);
}

/* a vtable compiled into the test: registered like a built-in driver */
static int bi_open(void *state, const struct orc_host_api *host, const struct orc_site_conf *c,
                   orc_op_t *op)
{
    return ORC_EIO;
}
static int bi_close(void *state, orc_op_t *op)
{
    return ORC_EIO;
}
static int bi_provision(void *state, orc_op_t *op, const struct orc_node_req *req)
{
    return ORC_EIO;
}
static int bi_name(void *state, orc_op_t *op, const char *name)
{
    return ORC_EIO;
}

static const struct orc_driver builtin_vt = {
    ORC_DRIVER_HEADER,
    .name = "builtin",
    .state_size = 8,
    .site_open = bi_open,
    .site_close = bi_close,
    .provision = bi_provision,
    .deprovision = bi_name,
    .status = bi_name,
};

static void builtin_driver_and_failed_open(void **state)
{
    struct env e;
    struct orc_site_conf conf = {"b1", NULL, NULL};
    struct orc_drv_site *site;
    struct loop_call c;

    (void)state;
    env_init(&e);
    assert_int_equal(orc_drv_register_builtin(e.reg, &builtin_vt), 0);
    assert_int_equal(orc_drv_register_builtin(e.reg, &builtin_vt), ORC_ECONFLICT);
    assert_null(orc_drv_find(e.reg, "builtin")->dl);
    assert_int_equal(orc_drv_site_new(e.reg, "nope", &conf, &site), ORC_ENOTFOUND);
    assert_int_equal(orc_drv_site_new(e.reg, "builtin", &conf, &site), 0);
    assert_string_equal(site->conf.config_json, "{}");
    loop_call_init(&c);
    assert_int_equal(orc_drv_site_open(site, &c.op, loop_call_cb), ORC_EIO);
    assert_int_equal(c.calls, 0);
    assert_int_equal(site->st, ORC_DRV_SITE_FAILED);
    assert_string_equal(c.op.error, "site_open: input/output error");
    /* a failed site cannot be used, only freed */
    assert_int_equal(orc_drv_status(site, &c.op, "x", loop_call_cb), ORC_ECONFLICT);
    assert_non_null(strstr(c.op.error, "site 'b1' is failed"));
    assert_int_equal(orc_drv_registry_close(e.reg), ORC_ECONFLICT);
    assert_int_equal(orc_drv_site_free(site), 0);
    assert_int_equal(orc_drv_violations(e.reg), 0);
    env_fini(&e);
}

/* ---- default slots and the contract ---------------------------------------------------- */

static void default_slots_return_enotsup(void **state)
{
    struct env e;
    struct orc_drv_site *site;
    struct loop_call c, p;
    struct orc_node_req req = {.name = "n1"};
    const char *argv[] = {"true", NULL};
    struct orc_exec_req ex = {.name = "n1", .argv = argv};
    struct orc_logs_req lg = {.name = "n1"};

    (void)state;
    env_init(&e);
    assert_int_equal(orc_drv_load_file_entry(e.reg, fixture(), "orc_broken_minimal"), 0);
    site = open_site(&e, "minimal", "m1", "{}");
    loop_call_init(&c);
    assert_int_equal(orc_drv_inventory(site, &c.op, loop_call_cb), ORC_ENOTSUP);
    assert_string_equal(c.op.error, "this driver has no inventory");
    assert_int_equal(orc_drv_adopt(site, &c.op, "n1", loop_call_cb), ORC_ENOTSUP);
    assert_int_equal(orc_drv_start_workload(site, &c.op, &ex, loop_call_cb), ORC_ENOTSUP);
    assert_int_equal(orc_drv_exec(site, &c.op, &ex, loop_call_cb), ORC_ENOTSUP);
    assert_int_equal(orc_drv_logs(site, &c.op, &lg, loop_call_cb), ORC_ENOTSUP);
    /* the ABI 2 slots the driver leaves NULL */
    assert_int_equal(orc_drv_stop_workload(site, &c.op, "n1", NULL, loop_call_cb), ORC_ENOTSUP);
    assert_string_equal(c.op.error, "this driver cannot stop workloads");
    assert_false(orc_drv_op_inflight(&c.op));
    assert_int_equal(orc_drv_stop(site, &c.op, "n1", loop_call_cb), ORC_ENOTSUP);
    assert_string_equal(c.op.error, "this driver cannot stop resources");
    assert_int_equal(orc_drv_start(site, &c.op, "n1", loop_call_cb), ORC_ENOTSUP);
    assert_string_equal(c.op.error, "this driver cannot start stopped resources");
    assert_false(orc_drv_op_inflight(&c.op));
    assert_int_equal(orc_drv_cancel(site, &c.op), ORC_ENOTFOUND);
    run_for(&e, 10);
    assert_int_equal(c.calls, 0);

    /* a real op: in flight until its callback; a second start is refused */
    loop_call_init(&p);
    p.in_call = true;
    assert_int_equal(orc_drv_provision(site, &p.op, &req, loop_call_cb), 0);
    p.in_call = false;
    assert_true(orc_drv_op_inflight(&p.op));
    assert_int_equal(orc_drv_provision(site, &p.op, &req, loop_call_cb), ORC_ECONFLICT);
    assert_int_equal(orc_drv_cancel(site, &p.op), ORC_ENOTSUP); /* default cancel */
    assert_true(run_until(&e, &p.calls, 1, 5000));
    assert_false(p.sync);
    assert_int_equal(p.status, 0);
    assert_string_equal(orc_drv_op_attr(&p.op, ORC_ATTR_PRIVATE_ADDRESS), "127.0.0.1");
    assert_false(orc_drv_op_inflight(&p.op));
    orc_drv_op_reset(&p.op);
    orc_drv_op_reset(&c.op);
    close_site(&e, site);
    assert_int_equal(orc_drv_violations(e.reg), 0);
    env_fini(&e);
}

static void contract_violations_are_caught(void **state)
{
    struct env e;
    struct orc_drv_site *site;
    struct loop_call c[7];
    struct orc_node_req req = {.name = "r1"};
    const char *argv[] = {"true", NULL};
    struct orc_exec_req ex = {.name = "r1", .argv = argv};
    struct orc_logs_req lg = {.name = "r1"};
    struct loop_call cl;

    (void)state;
    env_init(&e);
    assert_int_equal(orc_drv_load_file_entry(e.reg, fixture(), "orc_broken_rogue"), 0);
    site = open_site(&e, "rogue", "r", "{}");
    for (int i = 0; i < 7; i++)
        loop_call_init(&c[i]);

    /* a callback from inside the call is held and delivered later */
    c[0].in_call = true;
    assert_int_equal(orc_drv_provision(site, &c[0].op, &req, loop_call_cb), 0);
    c[0].in_call = false;
    assert_int_equal(c[0].calls, 0);
    assert_int_equal(orc_drv_violations(e.reg), 1);
    assert_true(run_until(&e, &c[0].calls, 1, 5000));
    assert_false(c[0].sync);

    /* a second callback is dropped */
    assert_int_equal(orc_drv_deprovision(site, &c[1].op, "r1", loop_call_cb), 0);
    run_for(&e, 30);
    assert_int_equal(c[1].calls, 1);
    assert_int_equal(orc_drv_violations(e.reg), 2);

    /* a callback after returning < 0 is dropped */
    assert_int_equal(orc_drv_status(site, &c[2].op, "r1", loop_call_cb), ORC_EDRIVER);
    assert_string_equal(c[2].op.error, "rogue: status refused");
    run_for(&e, 30);
    assert_int_equal(c[2].calls, 0);
    assert_int_equal(orc_drv_violations(e.reg), 3);

    /* a callback from inside, then < 0: the caller sees < 0 only */
    c[3].in_call = true;
    assert_int_equal(orc_drv_inventory(site, &c[3].op, loop_call_cb), ORC_EDRIVER);
    c[3].in_call = false;
    run_for(&e, 10);
    assert_int_equal(c[3].calls, 0);
    assert_int_equal(orc_drv_violations(e.reg), 5);

    /* > 0 is read as 0 (plus a leaked host timer, reaped at close) */
    assert_int_equal(orc_drv_logs(site, &c[4].op, &lg, loop_call_cb), 0);
    assert_int_equal(orc_drv_violations(e.reg), 6);
    assert_true(run_until(&e, &c[4].calls, 1, 5000));
    assert_int_equal(c[4].status, 0);

    /* cancel that completes the target from inside cancel: delivered later */
    assert_int_equal(orc_drv_adopt(site, &c[5].op, "r1", loop_call_cb), 0);
    c[5].in_call = true;
    assert_int_equal(orc_drv_cancel(site, &c[5].op), 0);
    c[5].in_call = false;
    assert_int_equal(c[5].calls, 0);
    assert_int_equal(orc_drv_violations(e.reg), 7);
    assert_true(run_until(&e, &c[5].calls, 1, 5000));
    assert_false(c[5].sync);
    assert_int_equal(c[5].status, ORC_ECANCELED);

    /* an op the driver never completes: the core cancels it at site close */
    assert_int_equal(orc_drv_exec(site, &c[6].op, &ex, loop_call_cb), 0);
    loop_call_init(&cl);
    assert_int_equal(orc_drv_site_close(site, &cl.op, loop_call_cb), 0);
    assert_true(run_until(&e, &c[6].calls, 1, 5000));
    assert_int_equal(cl.calls, 1);
    assert_int_equal(c[6].status, ORC_ECANCELED);
    assert_string_equal(c[6].op.error, "site closed");
    /* + op left in flight at close, + leaked host timer */
    assert_int_equal(orc_drv_violations(e.reg), 9);
    assert_int_equal(orc_drv_site_free(site), 0);
    for (int i = 0; i < 7; i++) {
        assert_true(c[i].calls <= 1);
        orc_drv_op_reset(&c[i].op);
    }
    env_fini(&e);
}

/* The ABI 2 slots go through the same checks as the others. */
static void contract_checks_cover_abi2_slots(void **state)
{
    struct env e;
    struct orc_drv_site *site;
    struct loop_call c[3];

    (void)state;
    env_init(&e);
    assert_int_equal(orc_drv_load_file_entry(e.reg, fixture(), "orc_broken_rogue"), 0);
    site = open_site(&e, "rogue", "r", "{}");
    for (int i = 0; i < 3; i++)
        loop_call_init(&c[i]);

    /* stop_workload calls back from inside the call: held, delivered later */
    c[0].in_call = true;
    assert_int_equal(orc_drv_stop_workload(site, &c[0].op, "r1", "main", loop_call_cb), 0);
    c[0].in_call = false;
    assert_int_equal(c[0].calls, 0);
    assert_int_equal(orc_drv_violations(e.reg), 1);
    assert_true(orc_drv_op_inflight(&c[0].op));
    assert_true(run_until(&e, &c[0].calls, 1, 5000));
    assert_false(c[0].sync);
    assert_int_equal(c[0].status, 0);

    /* stop calls back twice: the second is dropped */
    assert_int_equal(orc_drv_stop(site, &c[1].op, "r1", loop_call_cb), 0);
    run_for(&e, 30);
    assert_int_equal(c[1].calls, 1);
    assert_int_equal(orc_drv_violations(e.reg), 2);

    /* start returns < 0 and calls back anyway: dropped */
    assert_int_equal(orc_drv_start(site, &c[2].op, "r1", loop_call_cb), ORC_EDRIVER);
    assert_string_equal(c[2].op.error, "rogue: start refused");
    assert_false(orc_drv_op_inflight(&c[2].op));
    run_for(&e, 30);
    assert_int_equal(c[2].calls, 0);
    assert_int_equal(orc_drv_violations(e.reg), 3);

    /* the site still works and closes clean */
    close_site(&e, site);
    assert_int_equal(orc_drv_violations(e.reg), 3);
    for (int i = 0; i < 3; i++)
        orc_drv_op_reset(&c[i].op);
    env_fini(&e);
}

/* Shutdown as the engine does it: from the close callback, free the site and
 * close the registry at once. An op the driver never completed still gets
 * its one callback (ORC_ECANCELED) before the drivers are unloaded. */
struct shutdown {
    struct orc_drv_registry *reg;
    struct orc_drv_site *site;
    struct loop_call close;
};

static void shutdown_on_close(orc_op_t *op, int status)
{
    struct shutdown *sd = op->data;

    sd->close.calls++;
    sd->close.status = status;
    assert_int_equal(orc_drv_site_free(sd->site), 0);
    assert_int_equal(orc_drv_registry_close(sd->reg), 0);
}

static void orphans_delivered_at_registry_close(void **state)
{
    struct env e;
    struct shutdown sd;
    struct loop_call x;
    const char *argv[] = {"true", NULL};
    struct orc_exec_req ex = {.name = "r1", .argv = argv};

    (void)state;
    env_init(&e);
    assert_int_equal(orc_drv_load_file_entry(e.reg, fixture(), "orc_broken_rogue"), 0);
    sd.reg = e.reg;
    sd.site = open_site(&e, "rogue", "r", "{}");
    loop_call_init(&x);
    assert_int_equal(orc_drv_exec(sd.site, &x.op, &ex, loop_call_cb), 0);
    loop_call_init(&sd.close);
    sd.close.op.data = &sd;
    assert_int_equal(orc_drv_site_close(sd.site, &sd.close.op, shutdown_on_close), 0);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    assert_int_equal(sd.close.calls, 1);
    assert_int_equal(x.calls, 1);
    assert_int_equal(x.status, ORC_ECANCELED);
    assert_int_equal(uv_loop_close(&e.loop), 0);
}

static void strict_mode_aborts(void **state)
{
    pid_t pid;
    int wstatus;

    (void)state;
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct env e;
        struct orc_drv_site *site;
        struct loop_call c;
        struct orc_node_req req = {.name = "r1"};

        env_init(&e); /* a fresh loop: nothing inherited */
        orc_drv_load_file_entry(e.reg, fixture(), "orc_broken_rogue");
        site = open_site(&e, "rogue", "r", "{}");
        orc_drv_set_strict(e.reg, true);
        loop_call_init(&c);
        orc_drv_provision(site, &c.op, &req, loop_call_cb); /* aborts here */
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &wstatus, 0), pid);
    assert_true(WIFSIGNALED(wstatus));
    assert_int_equal(WTERMSIG(wstatus), SIGABRT);
}

/* ---- host services ---------------------------------------------------------------------- */

struct tick {
    int fired;
};

static void tick_cb(void *arg)
{
    ((struct tick *)arg)->fired++;
}

static void http_tick(orc_http_req_t *req, int status)
{
    struct tick *t = req->data;

    t->fired = status == ORC_EHTTP ? 1 : -1;
}

static int my_agents(void *ctx, const char *deployment, const char *resource, char **json)
{
    if (strcmp(resource, "r1") != 0)
        return ORC_ENOTFOUND;
    *json = orc_strdup((const char *)ctx);
    (void)deployment;
    return 0;
}

static int my_secrets(void *ctx, const char *name, char **value)
{
    if (strcmp(name, "known") != 0)
        return ORC_ENOTFOUND;
    *value = orc_strdup((const char *)ctx);
    return 0;
}

/* orc/size.h: the sizes every site config reads. */
static void size_units(void **state)
{
    static const struct {
        const char *text;
        uint64_t bytes;
    } good[] = {{"0", 0},
                {"512", 512},
                {"64 MB", 64000000},
                {"64MB", 64000000},
                {"16 GiB", 17179869184ull},
                {"1.5 KiB", 1536},
                {"2 tb", 2000000000000ull},
                {"3 B", 3}};
    static const char *const bad[] = {"", "GiB", "-1 GiB", "1.5", "12 parsecs", "1e30 TB",
                                      "nan GB", "16 GiB extra"};
    uint64_t n;
    json_t *j;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        n = 7;
        assert_int_equal(orc_size_text(good[i].text, &n), 0);
        assert_true(n == good[i].bytes);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(orc_size_text(bad[i], &n), ORC_EINVAL);
    j = json_integer(4096);
    assert_int_equal(orc_size_json(j, &n), 0);
    assert_true(n == 4096);
    json_decref(j);
    j = json_integer(-1);
    assert_int_equal(orc_size_json(j, &n), ORC_EINVAL);
    json_decref(j);
    j = json_true();
    assert_int_equal(orc_size_json(j, &n), ORC_EINVAL);
}

static void host_services(void **state)
{
    struct env e;
    struct orc_drv_site *site;
    const struct orc_host_api *h;
    struct tick t = {0};
    uint64_t a, b;
    char *v = NULL;
    orc_op_t op;
    struct orc_pool pool = {.name = "A100", .gpu_model = "A100", .gpus_total = 8};

    (void)state;
    env_init(&e);
    assert_int_equal(orc_drv_load_file_entry(e.reg, fixture(), "orc_broken_minimal"), 0);
    site = open_site(&e, "minimal", "hs", "{}");
    h = &site->host;
    assert_int_equal(h->version, ORC_HOST_API_VERSION);
    assert_int_equal(h->size, sizeof(struct orc_host_api));
    assert_ptr_equal(h->loop, &e.loop);
    assert_string_equal(h->site, "hs");
    assert_non_null(h->http);
    assert_true(h->http->size >= sizeof(struct orc_http_api));
    assert_non_null(h->ssh);
    assert_true(h->ssh->size >= sizeof(struct orc_ssh_api));
    h->log(h, ORC_DRV_LOG_DEBUG, "a debug line from %s", "the test");

    /* timers: one fires, one is stopped, ids are never reused */
    a = h->timer_start(h, 0, tick_cb, &t);
    b = h->timer_start(h, 0, tick_cb, &t);
    assert_true(a > 0 && b > a);
    assert_int_equal(t.fired, 0); /* never inside the call */
    assert_int_equal(h->timer_stop(h, b), 0);
    assert_int_equal(h->timer_stop(h, b), ORC_ENOTFOUND);
    assert_true(run_until(&e, &t.fired, 1, 1000));
    run_for(&e, 5);
    assert_int_equal(t.fired, 1);
    assert_int_equal(h->timer_stop(h, a), ORC_ENOTFOUND); /* fired */

    /* the HTTP client: a refused connection is an answerless ORC_EHTTP */
    {
        char url[64];
        struct tick ht = {0};
        orc_http_req_t req = {.data = &ht, .cb = http_tick};
        struct orc_http_request r = {.method = "GET", .url = url};
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/", test_free_port());
        assert_int_equal(h->http->request(h, &req, &r), 0);
        assert_true(run_until(&e, &ht.fired, 1, 5000));
        assert_int_equal(ht.fired, 1);
        assert_non_null(strstr(req.error, url));
        h->http->release(h, &req);
    }

    /* secrets: the environment by default; a lookup function first, then the environment */
    setenv("ORC_SECRET_MY_SITE_KEY", "s3cret", 1);
    assert_int_equal(h->secret_get(h, "my-site.key", &v), 0);
    assert_string_equal(v, "s3cret");
    h->free(v);
    assert_int_equal(h->secret_get(h, "absent", &v), ORC_ENOTFOUND);
    assert_null(v);
    assert_int_equal(h->secret_get(h, "", &v), ORC_EINVAL);
    orc_drv_set_secret_lookup(e.reg, my_secrets, "from-store");
    assert_int_equal(h->secret_get(h, "known", &v), 0);
    assert_string_equal(v, "from-store");
    h->free(v);
    assert_int_equal(h->secret_get(h, "my-site.key", &v), 0); /* not in the store */
    assert_string_equal(v, "s3cret");
    h->free(v);
    unsetenv("ORC_SECRET_MY_SITE_KEY");
    assert_int_equal(h->secret_get(h, "my-site.key", &v), ORC_ENOTFOUND);

    /* the agents' reports: none without a source, then what the source says */
    assert_non_null(h->agent_state);
    assert_int_equal(h->agent_state(h, "d", "r1", &v), ORC_ENOTSUP);
    assert_null(v);
    orc_drv_set_agent_source(e.reg, my_agents, "{\"workload_state\":\"ready\"}");
    assert_int_equal(h->agent_state(h, "d", "r1", &v), 0);
    assert_string_equal(v, "{\"workload_state\":\"ready\"}");
    h->free(v);
    assert_int_equal(h->agent_state(h, "d", "r2", &v), ORC_ENOTFOUND);
    assert_int_equal(h->agent_state(h, NULL, "r1", &v), ORC_EINVAL);
    orc_drv_set_agent_source(e.reg, NULL, NULL);

    /* op result storage */
    orc_drv_op_init(&op);
    assert_int_equal(h->op_attr_set(&op, "k", "v1"), 0);
    assert_int_equal(h->op_attr_set(&op, "k", "v2"), 0);
    for (int i = 0; i < 20; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        assert_int_equal(h->op_attr_set(&op, key, key), 0);
    }
    assert_int_equal(op.nattrs, 21);
    assert_string_equal(orc_drv_op_attr(&op, "k"), "v2");
    assert_string_equal(orc_drv_op_attr(&op, "k19"), "k19");
    assert_null(orc_drv_op_attr(&op, "nope"));
    assert_int_equal(h->op_attr_set(&op, "k", NULL), ORC_EINVAL);
    assert_int_equal(h->op_pool_add(&op, &pool), 0);
    pool.gpu_model = NULL;
    pool.name = "cpu";
    assert_int_equal(h->op_pool_add(&op, &pool), 0);
    assert_int_equal(op.npools, 2);
    assert_string_equal(op.pools[0].gpu_model, "A100");
    assert_null(op.pools[1].gpu_model);
    assert_int_equal(h->op_output_set(&op, "abc", 3), 0);
    assert_int_equal(h->op_output_set(&op, "hello", 5), 0);
    assert_string_equal(op.output, "hello");
    assert_int_equal(op.output_len, 5);
    orc_drv_op_reset(&op);
    assert_int_equal(op.nattrs, 0);
    assert_null(op.output);

    close_site(&e, site);
    assert_int_equal(orc_drv_violations(e.reg), 0);
    env_fini(&e);
}

/* ---- resource names ----------------------------------------------------------------------- */

static void resource_names(void **state)
{
    const char *dep = "01936a4e-7b2c-7def-8123-456789abcdef";
    char a[ORC_DRV_NAME_LEN], b[ORC_DRV_NAME_LEN];

    (void)state;
    assert_int_equal(orc_drv_resource_name(dep, "train_node", 0, a), 0);
    assert_int_equal(strncmp(a, "orc-01936a4e7b2c7def8123456789abcdef-train-node-", 48), 0);
    assert_int_equal(a[strlen(a) - 1], '0');
    assert_int_equal(orc_drv_resource_name(dep, "train_node", 0, b), 0);
    assert_string_equal(a, b); /* deterministic */
    assert_int_equal(orc_drv_resource_name("01936A4E-7B2C-7DEF-8123-456789ABCDEF", "train_node",
                                           0, b),
                     0);
    assert_string_equal(a, b); /* case of the UUID does not matter */
    assert_int_equal(orc_drv_resource_name(dep, "train_node", 1, b), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(orc_drv_resource_name(dep, "train-node", 0, b), 0);
    assert_string_not_equal(a, b); /* same sanitized text, another hash */
    assert_int_equal(orc_drv_resource_name("01936a4e-7b2c-7def-8123-456789abcdee", "train_node",
                                           0, b),
                     0);
    assert_string_not_equal(a, b);
    /* long names, big indexes: at most 63 characters of [a-z0-9-] */
    assert_int_equal(orc_drv_resource_name(dep, "A very long node name with $ymbols & more!!",
                                           4294967295u, a),
                     0);
    assert_true(strlen(a) <= 63);
    for (const char *p = a; *p; p++)
        assert_true((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-');
    assert_non_null(strstr(a, "-4294967295"));
    assert_int_equal(orc_drv_resource_name(dep, "___", 3, a), 0);
    assert_non_null(strstr(a, "-x-"));
    assert_int_equal(orc_drv_resource_name("not-a-uuid", "n", 0, a), ORC_EINVAL);
    assert_int_equal(orc_drv_resource_name(dep, "", 0, a), ORC_EINVAL);
    assert_int_equal(orc_drv_resource_name(NULL, "n", 0, a), ORC_EINVAL);
}

/* A name says whose deployment it is (host->log_resource reads it); other names do not. */
static void resource_names_say_their_deployment(void **state)
{
    const char *dep = "01936a4e-7b2c-7def-8123-456789abcdef";
    char name[ORC_DRV_NAME_LEN], back[37];

    (void)state;
    assert_int_equal(orc_drv_resource_name(dep, "A very long node name indeed", 12, name), 0);
    assert_true(orc_drv_resource_deployment(name, back));
    assert_string_equal(back, dep);
    assert_false(orc_drv_resource_deployment("vm-1", back));
    assert_false(orc_drv_resource_deployment("orc-01936a4e7b2c7def8123456789abcdeX-n-0", back));
    assert_false(orc_drv_resource_deployment("orc-01936a4e7b2c7def8123456789abcdef", back));
    assert_false(orc_drv_resource_deployment("orc-01936a4e", back));
    assert_false(orc_drv_resource_deployment(NULL, back));
}

/* ---- sites file ----------------------------------------------------------------------------- */

static bool errs_have(const struct orc_sites_errors *e, const char *text)
{
    for (size_t i = 0; i < e->count; i++)
        if (strstr(e->lines[i], text) != NULL)
            return true;
    return false;
}

static void dump_errs(const struct orc_sites_errors *e)
{
    for (size_t i = 0; i < e->count; i++)
        fprintf(stderr, "  %s\n", e->lines[i]);
}

static void sites_valid_file(void **state)
{
    static const char text[] =
        "version: 1\n"
        "sites:\n"
        "  - name: gpu-cloud\n"
        "    driver: sim\n"
        "    description: a simulated cloud\n"
        "    priority: 10\n"
        "    credentials: sim-cloud.key\n"
        "    config:\n"
        "      inventory: /tmp/x.json\n"
        "      capacity: {cpus: 64, gpus: {A100: 8}}\n"
        "    capacity:\n"
        "      cpus: 64\n"
        "      mem: 256 GiB\n"
        "      disk: 1000000\n"
        "      gpus: {A100: 8, T4: 4}\n"
        "  - name: spare\n"
        "    driver: local\n"
        "    enabled: false\n";
    struct orc_sites s;
    struct orc_sites_errors errs;
    const struct orc_site_def *d;
    struct orc_site_conf conf;
    int rc;

    (void)state;
    rc = orc_sites_load_buffer("sites.yaml", text, sizeof(text) - 1, &s, &errs);
    if (rc != 0)
        dump_errs(&errs);
    assert_int_equal(rc, 0);
    assert_int_equal(errs.count, 0);
    assert_int_equal(s.count, 2);
    d = orc_sites_find(&s, "gpu-cloud");
    assert_non_null(d);
    assert_string_equal(d->driver, "sim");
    assert_string_equal(d->description, "a simulated cloud");
    assert_int_equal(d->priority, 10);
    assert_true(d->enabled);
    assert_string_equal(d->credentials, "sim-cloud.key");
    assert_string_equal(d->config_json,
                        "{\"inventory\":\"/tmp/x.json\",\"capacity\":{\"cpus\":64,\"gpus\":{"
                        "\"A100\":8}}}");
    assert_int_equal(d->capacity.cpus, 64);
    assert_int_equal(d->capacity.mem, (int64_t)256 << 30);
    assert_int_equal(d->capacity.disk, 1000000);
    assert_int_equal(d->capacity.ngpus, 2);
    assert_string_equal(d->capacity.gpus[1].model, "T4");
    assert_int_equal(d->capacity.gpus[1].count, 4);
    conf = orc_site_def_conf(d);
    assert_string_equal(conf.name, "gpu-cloud");
    d = orc_sites_find(&s, "spare");
    assert_false(d->enabled);
    assert_int_equal(d->priority, 0);
    assert_string_equal(d->config_json, "{}");
    assert_null(d->credentials);
    assert_int_equal(d->capacity.cpus, -1);
    assert_null(orc_sites_find(&s, "nope"));
    orc_sites_free(&s);
    orc_sites_errors_free(&errs);
}

static void sites_every_error_reported(void **state)
{
    static const char text[] =
        "sites:\n"
        "  - name: a\n"
        "    driver: sim\n"
        "    priority: high\n"
        "    enabled: maybe\n"
        "    colour: blue\n"
        "    capacity: {cpus: -1, mem: lots, gpus: {A100: x}, ram: 1}\n"
        "  - name: a\n"
        "    driver: Bad Driver\n"
        "  - name: Bad_Name\n"
        "    config: [1, 2]\n"
        "    credentials: \"has space\"\n"
        "  - 42\n";
    struct orc_sites s;
    struct orc_sites_errors errs;

    (void)state;
    assert_int_equal(orc_sites_load_buffer("sites.yaml", text, sizeof(text) - 1, &s, &errs),
                     ORC_EFORMAT);
    assert_int_equal(s.count, 0);
    assert_null(s.items);
    assert_true(errs_have(&errs, "sites.yaml: sites[0] (a): priority: expected an integer"));
    assert_true(errs_have(&errs, "sites[0] (a): enabled: expected true or false"));
    assert_true(errs_have(&errs, "sites[0] (a): unknown key 'colour'"));
    assert_true(errs_have(&errs, "capacity.cpus: expected an integer >= 0"));
    assert_true(errs_have(&errs, "capacity.mem: expected bytes or a size"));
    assert_true(errs_have(&errs, "capacity.gpus.A100: expected an integer >= 0"));
    assert_true(errs_have(&errs, "capacity: unknown key 'ram'"));
    assert_true(errs_have(&errs, "sites[1]: name 'a' is already used by sites[0]"));
    assert_true(errs_have(&errs, "sites[1] (a): driver: expected a driver name"));
    assert_true(errs_have(&errs, "sites[2] (Bad_Name): name: expected [a-z0-9]"));
    assert_true(errs_have(&errs, "sites[2] (Bad_Name): driver is required"));
    assert_true(errs_have(&errs, "sites[2] (Bad_Name): config: expected a mapping"));
    assert_true(errs_have(&errs, "sites[2] (Bad_Name): credentials: expected a secret name"));
    assert_true(errs_have(&errs, "sites[3]: expected a mapping"));
    assert_int_equal(errs.count, 14);
    orc_sites_errors_free(&errs);
    orc_sites_free(&s);
}

static void sites_shapes_and_syntax(void **state)
{
    static const char list[] = "- {name: one, driver: sim}\n- {name: two, driver: sim}\n";
    static const char bad_yaml[] = "sites:\n  - name: x\n    driver: [unclosed\n";
    static const char empty[] = "sites: []\n";
    static const char top[] = "version: 2\nsite: {}\n";
    struct orc_sites s;
    struct orc_sites_errors errs;

    (void)state;
    assert_int_equal(orc_sites_load_buffer("l.yaml", list, sizeof(list) - 1, &s, &errs), 0);
    assert_int_equal(s.count, 2);
    orc_sites_free(&s);
    orc_sites_errors_free(&errs);

    assert_int_equal(orc_sites_load_buffer("b.yaml", bad_yaml, sizeof(bad_yaml) - 1, &s, &errs),
                     ORC_EFORMAT);
    assert_true(errs.count >= 1);
    /* file:line:col from the YAML loader, without a second file name */
    assert_non_null(strstr(errs.lines[0], "b.yaml:4:1: error: YAML syntax error"));
    assert_int_equal(strncmp(errs.lines[0], "b.yaml:4:1:", 11), 0);
    orc_sites_errors_free(&errs);

    assert_int_equal(orc_sites_load_buffer("e.yaml", empty, sizeof(empty) - 1, &s, &errs),
                     ORC_EFORMAT);
    assert_true(errs_have(&errs, "e.yaml: no sites defined"));
    orc_sites_errors_free(&errs);

    assert_int_equal(orc_sites_load_buffer("t.yaml", top, sizeof(top) - 1, &s, NULL),
                     ORC_EFORMAT);
    assert_int_equal(orc_sites_load_buffer("t.yaml", top, sizeof(top) - 1, &s, &errs),
                     ORC_EFORMAT);
    assert_true(errs_have(&errs, "version: only version 1 is known"));
    assert_true(errs_have(&errs, "unknown top-level key 'site'"));
    orc_sites_errors_free(&errs);

    assert_int_equal(orc_sites_load_file("/nonexistent/sites.yaml", &s, &errs), ORC_EIO);
    assert_true(errs_have(&errs, "/nonexistent/sites.yaml: cannot open"));
    orc_sites_errors_free(&errs);
}

static void sites_default_and_example(void **state)
{
    struct orc_sites s;
    struct orc_sites_errors errs;
    int rc;

    (void)state;
    assert_int_equal(orc_sites_default(&s), 0);
    assert_int_equal(s.count, 1);
    assert_string_equal(s.items[0].name, "local");
    assert_string_equal(s.items[0].driver, "local");
    assert_true(s.items[0].enabled);
    assert_string_equal(s.items[0].config_json, "{}");
    orc_sites_free(&s);

    rc = orc_sites_load_file("deploy/sites.example.yaml", &s, &errs);
    if (rc != 0)
        dump_errs(&errs);
    assert_int_equal(rc, 0);
    assert_true(s.count >= 2);
    assert_non_null(orc_sites_find(&s, "local"));
    orc_sites_free(&s);
    orc_sites_errors_free(&errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(load_dir_loads_real_drivers_only),
        cmocka_unit_test(load_dir_reports_fixture),
        cmocka_unit_test(load_dir_empty_folder),
        cmocka_unit_test(load_failures_are_recorded),
        cmocka_unit_test(missing_entry_symbol),
        cmocka_unit_test(abi_and_signature_mismatch),
        cmocka_unit_test(abi1_refused_by_abi2_loader),
        cmocka_unit_test(bad_vtables),
        cmocka_unit_test(duplicate_names),
        cmocka_unit_test(load_paths_counts),
        cmocka_unit_test(builtin_driver_and_failed_open),
        cmocka_unit_test(default_slots_return_enotsup),
        cmocka_unit_test(contract_violations_are_caught),
        cmocka_unit_test(contract_checks_cover_abi2_slots),
        cmocka_unit_test(orphans_delivered_at_registry_close),
        cmocka_unit_test(strict_mode_aborts),
        cmocka_unit_test(size_units),
        cmocka_unit_test(host_services),
        cmocka_unit_test(resource_names),
        cmocka_unit_test(resource_names_say_their_deployment),
        cmocka_unit_test(sites_valid_file),
        cmocka_unit_test(sites_every_error_reported),
        cmocka_unit_test(sites_shapes_and_syntax),
        cmocka_unit_test(sites_default_and_example),
    };

    if (getenv("TEST_LOG") == NULL) /* the violations tested here log errors */
        orc_log_set_level((orc_log_level_t)(ORC_LOG_ERROR + 1));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
