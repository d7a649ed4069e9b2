/*
 * The openstack driver against the OpenStack simulator of tests/sim
 * (openstack_sim.py: Keystone v3, Nova, Neutron, Glance on one port, servers
 * that boot their user data as local processes in "exec" mode).
 * Through the core's wrappers on a real loop (every test: no contract
 * violation, the loop closes clean):
 *   - a GPU node with a port and a public address: flavor g1.a100x1, its
 *     security group with the port open, a floating IP on its port, the
 *     attributes; provision again answers the same server; status and adopt;
 *     the cloud-init script ran (the console shows the GPU check) and a
 *     hostile flavor name stayed data; deprovision leaves nothing, twice;
 *   - the inventory: one pool per GPU model, bounded by the quota;
 *   - no fitting flavor, "No valid host", a quota refusal: capacity errors
 *     naming what was asked, nothing left behind; ERROR with Nova's fault;
 *     BUILD past build_timeout_ms;
 *   - tokens that expire in seconds or are revoked are renewed; application
 *     credentials by id and by name; a catalog without the network service
 *     and an endpoint override; config and credential errors at open;
 *   - cancel, and close with operations in flight.
 * Through the real daemon over HTTP:
 *   - a plain and a GPU compute template reach CREATE_COMPLETE on the
 *     OpenStack site with their server, floating IP and security group;
 *     DELETE leaves the cloud empty;
 *   - no A100 capacity: the deployment fails over to a second cloud and the
 *     first one's error ("No valid host") is in the attempt's record; a server
 *     that goes to ERROR fails the deployment with Nova's fault;
 *   - a bad config key and missing credentials are logged as site errors;
 *   - 30% of the API answers faulty (5xx, 429, resets, timeouts, before or
 *     after the effect) over 20 deployments: each reaches its final state,
 *     and after DELETE the cloud holds nothing.
 * Skipped (with a message) when python3 or the simulator is not there.
 */
#define _GNU_SOURCE /* asprintf */
#include "testutil.h"
#include "daemon_fixture.h"
#include "cloudsim_fixture.h"
#include "loop_fixture.h"

#include <uv.h>

#include "engine/../base.h" /* orchestrator/base.h */
#include "engine/drivers.h"

#define DEP "01936a4e-7b2c-7def-8123-456789abcdef"
#define SIM "openstack_sim.py"

static struct cloudsim sim, sim2;
static char sim_dir[256], sim2_dir[300];

/* ---- the simulator ---------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    if (!cloudsim_available(SIM)) {
        print_message("python3 or tests/sim/" SIM " missing: openstack tests skipped\n");
        skip();
    }
    snprintf(sim_dir, sizeof(sim_dir), "/tmp/os-sim-XXXXXX");
    assert_non_null(mkdtemp(sim_dir));
    snprintf(sim2_dir, sizeof(sim2_dir), "%s/second", sim_dir);
    return 0;
}

static int teardown(void **state)
{
    char cmd[320];

    cloudsim_stop(&sim);
    cloudsim_stop(&sim2);
    kill_leftover(state);
    fx_teardown(state);
    if (!getenv("FX_KEEP_DIRS")) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", sim_dir);
        if (system(cmd) != 0)
            print_message("cannot remove %s\n", sim_dir);
    }
    return 0;
}

/* Starts the simulator with knobs (JSON object members, or ""): fast builds. */
static void start_sim_in(struct cloudsim *s, const char *dir, const char *knobs)
{
    char conf[4096];

    snprintf(conf, sizeof(conf), "{\"build_ms\": 100, \"delete_ms\": 50%s%s}", knobs[0] ? ", " : "",
             knobs);
    cloudsim_start(s, SIM, dir, conf, NULL);
}

static void start_sim(const char *knobs)
{
    start_sim_in(&sim, sim_dir, knobs);
}

static long sim_count(const struct cloudsim *s, const char *what)
{
    return cloudsim_count(s, what);
}

/* Nothing of ours left in the cloud, nothing left running in its servers. */
static void assert_empty(const struct cloudsim *s)
{
    cloudsim_assert_empty(s, cloudsim_os_kinds, 5000);
}

static long sim_stat(const struct cloudsim *s, const char *key)
{
    json_t *st = cloudsim_call(s, "GET", "/_sim/stats", NULL);
    long v = (long)json_integer_value(json_object_get(st, key));

    json_decref(st);
    return v;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    char *tok = ud;

    if (strncasecmp(p, "X-Subject-Token:", 16) == 0) {
        size_t len = sz * n - 16;
        const char *v = p + 16;
        while (len && (*v == ' '))
            v++, len--;
        while (len && (v[len - 1] == '\r' || v[len - 1] == '\n'))
            len--;
        snprintf(tok, 1024, "%.*s", (int)len, v);
    }
    return sz * n;
}

/* GET path + name of the simulator's API as the demo user (caller decrefs). */
static json_t *sim_api(const struct cloudsim *s, const char *path, const char *name)
{
    static const char auth[] =
        "{\"auth\": {\"identity\": {\"methods\": [\"password\"], \"password\": {\"user\": "
        "{\"name\": \"demo\", \"domain\": {\"name\": \"Default\"}, \"password\": "
        "\"secret\"}}}, \"scope\": {\"project\": {\"name\": \"demo\", \"domain\": "
        "{\"name\": \"Default\"}}}}}";
    char url[600], tok[1024] = "", hdr[1100];
    struct body b = {NULL, 0};
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    CURL *c = curl_easy_init();
    json_t *out;

    snprintf(url, sizeof(url), "%s/identity/v3/auth/tokens", s->url);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, auth);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, (void *)tok);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_slist_free_all(h);
    free(b.data);
    b.data = NULL;
    b.len = 0;
    assert_true(tok[0] != '\0');
    snprintf(hdr, sizeof(hdr), "X-Auth-Token: %s", tok);
    h = curl_slist_append(NULL, hdr);
    snprintf(url, sizeof(url), "%s%s%s", s->url, path, name);
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    out = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(b.data);
    assert_non_null(out);
    return out;
}

/* The site config's JSON text for sim s: the demo user, fast polls, more members. */
static char *site_config_of(const struct cloudsim *s, const char *extra)
{
    char *c;

    assert_true(asprintf(&c,
                         "{\"auth_url\": \"%s/identity/v3\", \"username\": \"demo\", "
                         "\"project_name\": \"demo\", \"image\": \"ubuntu-22.04\", "
                         "\"poll_ms\": 30, \"poll_max_ms\": 200, \"agent_check\": \"none\"%s%s}",
                         s->url, extra && *extra ? ", " : "", extra ? extra : "") > 0);
    return c;
}

/* ---- the driver through the core's wrappers ----------------------------------------- */

struct env {
    uv_loop_t loop;
    struct orc_drv_registry *reg;
    struct orc_drv_site *site;
    char *config;
};

static bool run_until(struct env *e, const int *counter, int target, uint64_t timeout_ms)
{
    return loop_run_until(&e->loop, counter, target, timeout_ms);
}

static void run_for(struct env *e, uint64_t ms)
{
    loop_run_for(&e->loop, ms);
}

static void wait_call(struct env *e, struct loop_call *c, uint64_t ms)
{
    if (!run_until(e, &c->calls, 1, ms))
        fail_msg("no callback within %llu ms", (unsigned long long)ms);
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
    snprintf(path, sizeof(path), "%s/openstack.so", env_or("PLUGIN_DIR", "build/release/plugins"));
    assert_int_equal(orc_drv_load_file(e->reg, path), 0);
}

/* Opens the site "os1" on config (JSON text) with the secret named cred. */
static int open_cfg(struct env *e, const char *config, const char *cred, char *error)
{
    struct orc_site_conf conf;
    struct loop_call c;
    int rc;

    free(e->config);
    e->config = strdup(config);
    conf = (struct orc_site_conf){"os1", e->config, cred};
    assert_int_equal(orc_drv_site_new(e->reg, "openstack", &conf, &e->site), 0);
    loop_call_init(&c);
    c.in_call = true;
    rc = orc_drv_site_open(e->site, &c.op, loop_call_cb);
    c.in_call = false;
    if (rc == 0) {
        wait_call(e, &c, 30000);
        rc = c.status;
    }
    if (error)
        snprintf(error, ORC_OP_ERROR_LEN, "%s", c.op.error);
    if (rc < 0) {
        assert_int_equal(orc_drv_site_free(e->site), 0);
        e->site = NULL;
    }
    orc_drv_op_reset(&c.op);
    return rc;
}

static void open_ok(struct env *e, const char *extra)
{
    char err[ORC_OP_ERROR_LEN], *cfg = site_config_of(&sim, extra);
    int rc = open_cfg(e, cfg, "os.demo", err);

    free(cfg);
    if (rc != 0)
        fail_msg("site_open: %s: %s", orc_strerror(rc), err);
}

static void site_close(struct env *e)
{
    struct loop_call c;

    loop_call_init(&c);
    assert_int_equal(orc_drv_site_close(e->site, &c.op, loop_call_cb), 0);
    wait_call(e, &c, 10000);
    assert_int_equal(c.status, 0);
    assert_int_equal(orc_drv_site_free(e->site), 0);
    e->site = NULL;
}

static void env_fini(struct env *e)
{
    if (e->site != NULL)
        site_close(e);
    assert_int_equal(orc_drv_violations(e->reg), 0);
    assert_int_equal(orc_drv_registry_close(e->reg), 0);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    free(e->config);
}

static void name_of(uint32_t index, char out[ORC_DRV_NAME_LEN])
{
    assert_int_equal(orc_drv_resource_name(DEP, "box", index, out), 0);
}

struct want {
    uint32_t cpus, gpus;
    uint64_t mem;
    const char *model, *instance_type;
    bool public_ip;
    const uint16_t *ports;
    size_t nports;
};

/* Starts a provision of name (c->status after wait_call). */
static void provision_start(struct env *e, struct loop_call *c, const char *name, const struct want *w)
{
    struct orc_node_req r = {.deployment = DEP,
                             .node = "box",
                             .name = name,
                             .kind = ORC_KIND_COMPUTE,
                             .num_cpus = w->cpus,
                             .mem_size = w->mem,
                             .num_gpus = w->gpus,
                             .gpu_model = w->model,
                             .instance_type = w->instance_type,
                             .public_ip = w->public_ip,
                             .ports = w->ports,
                             .nports = w->nports};

    loop_call_init(c);
    c->in_call = true;
    assert_int_equal(orc_drv_provision(e->site, &c->op, &r, loop_call_cb), 0);
    c->in_call = false;
}

static int provision(struct env *e, struct loop_call *c, const char *name, const struct want *w)
{
    provision_start(e, c, name, w);
    wait_call(e, c, 30000);
    return c->status;
}

static int by_name(struct env *e, struct loop_call *c, const char *slot, const char *name)
{
    int rc;

    loop_call_init(c);
    c->in_call = true;
    if (strcmp(slot, "deprovision") == 0)
        rc = orc_drv_deprovision(e->site, &c->op, name, loop_call_cb);
    else if (strcmp(slot, "adopt") == 0)
        rc = orc_drv_adopt(e->site, &c->op, name, loop_call_cb);
    else
        rc = orc_drv_status(e->site, &c->op, name, loop_call_cb);
    c->in_call = false;
    assert_int_equal(rc, 0);
    wait_call(e, c, 30000);
    return c->status;
}

static const char *attr(const struct loop_call *c, const char *key)
{
    const char *v = orc_drv_op_attr(&c->op, key);

    return v ? v : "";
}

static void assert_contains(const char *text, const char *want)
{
    if (text == NULL || strstr(text, want) == NULL)
        fail_msg("\"%s\" does not contain \"%s\"", text ? text : "(null)", want);
}

/* The absolute path of a binary of the runtime (the servers run it from their own
 * directory): gpu-agent, gpu-train, gpu-serve. */
static void binary_path(const char *file, char *out, size_t cap)
{
    char dir[512];

    cloudsim_runtime_dir(dir, sizeof(dir));
    snprintf(out, cap, "%.500s/%s", dir, file);
}

static void agent_path(char *out, size_t cap)
{
    binary_path("gpu-agent", out, cap);
}

/* The console log of the server with id (sim's DIR/servers/ID/console.log), waited for
 * until it holds want. */
static char *console_with(const char *id, const char *want)
{
    char path[600];
    char *text = NULL;

    snprintf(path, sizeof(path), "%s/servers/%s/console.log", sim_dir, id);
    for (int i = 0; i < 200; i++) {
        free(text);
        text = fx_read_file(path);
        if (text && strstr(text, want))
            return text;
        fx_sleep_ms(50);
    }
    fail_msg("%s does not say '%s': %s", path, want, text ? text : "(none)");
    return NULL;
}

/* How many security groups were posted to sim s so far. */
static long sg_posts(const struct cloudsim *s)
{
    json_t *st = cloudsim_call(s, "GET", "/_sim/stats", NULL);
    long n = (long)json_integer_value(
        json_object_get(json_object_get(st, "by_route"), "POST /security-groups"));

    json_decref(st);
    return n;
}

/* How many ingress rules of security group name (on sim s) open port. */
static int sg_opens(const struct cloudsim *s, const char *name, unsigned port)
{
    json_t *sgs = sim_api(s, "/network/v2.0/security-groups?name=", name), *r;
    json_t *rules = json_object_get(json_array_get(json_object_get(sgs, "security_groups"), 0),
                                    "security_group_rules");
    int open = 0;
    size_t i;

    json_array_foreach(rules, i, r) {
        json_int_t lo = json_integer_value(json_object_get(r, "port_range_min"));
        if (strcmp(json_string_value(json_object_get(r, "direction")), "ingress") == 0 &&
            lo == (json_int_t)port)
            open++;
    }
    json_decref(sgs);
    return open;
}

/* ---- driver tests ---------------------------------------------------------------------- */

static void test_gpu_node_lifecycle(void **state)
{
    static const uint16_t ports[] = {8080, 8443};
    struct env e;
    struct loop_call c, again;
    char name[ORC_DRV_NAME_LEN], agent[600], extra[900], mark[400], *log;
    struct want w = {.cpus = 4, .mem = 16ull << 30, .gpus = 1, .model = "A100",
                     .public_ip = true, .ports = ports, .nports = 2};
    json_t *inv;

    (void)state;
    snprintf(mark, sizeof(mark), "%s/MARK", sim_dir);
    {
        char knobs[2400];
        /* a flavor whose name would run code if it reached the shell unquoted */
        snprintf(knobs, sizeof(knobs),
                 "\"boot\": \"exec\", \"flavors\": [{\"name\": \"m1.small\", \"vcpus\": 2, "
                 "\"ram\": 4096, \"disk\": 20}, {\"name\": \"g1.a100x1\", \"vcpus\": 8, \"ram\": "
                 "65536, \"disk\": 100, \"extra_specs\": {\"pci_passthrough:alias\": \"a100:1\"}}, "
                 "{\"name\": \"g1.a100x2\", \"vcpus\": 16, \"ram\": 131072, \"disk\": 100, "
                 "\"extra_specs\": {\"pci_passthrough:alias\": \"a100:2\"}}, {\"name\": "
                 "\"evil'$(touch %s)`touch %s`\", \"id\": \"evil1\", \"vcpus\": 1, \"ram\": 512, \"disk\": 1}]",
                 mark, mark);
        start_sim(knobs);
    }
    agent_path(agent, sizeof(agent));
    snprintf(extra, sizeof(extra),
             "\"agent_path\": \"%s\", \"agent_check\": \"quick\", \"gpu_aliases\": {\"a100\": "
             "\"A100\"}, \"state_dir\": \"state\"",
             agent);
    env_init(&e);
    open_ok(&e, extra);
    name_of(0, name);
    if (provision(&e, &c, name, &w) != 0)
        fail_msg("provision: %s", c.op.error);
    assert_true(c.op.exists);
    assert_int_equal(c.op.res_state, ORC_DRV_RES_READY);
    assert_string_equal(attr(&c, "flavor"), "g1.a100x1");
    assert_string_equal(attr(&c, "gpu_model"), "A100");
    assert_contains(attr(&c, "private_address"), "10.0.0.");
    assert_contains(attr(&c, "public_address"), "172.24.4.");
    assert_true(strlen(attr(&c, "provider_id")) > 30);
    assert_true(strlen(attr(&c, "security_group")) > 30);
    assert_true(strlen(attr(&c, "floating_ip")) > 30);
    inv = cloudsim_call(&sim, "GET", "/_sim/inventory", NULL);
    assert_int_equal(json_array_size(json_object_get(inv, "servers")), 1);
    assert_int_equal(json_array_size(json_object_get(inv, "floating_ips")), 1);
    assert_int_equal(json_array_size(json_object_get(inv, "security_groups")), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(inv, "floating_ips"), 0), "description")),
                        name);
    json_decref(inv);
    /* the group's rules open both ports */
    assert_int_equal(sg_opens(&sim, name, 8080), 1);
    assert_int_equal(sg_opens(&sim, name, 8443), 1);
    /* the user data ran: the GPU check's verdict is on the console */
    log = console_with(attr(&c, "provider_id"), "GPU check (quick)");
    assert_contains(log, "orc: node ");
    assert_contains(log, name);
    assert_contains(log, "inventory in state/info.json");
    free(log);
    /* provision again: the same server, nothing new */
    if (provision(&e, &again, name, &w) != 0)
        fail_msg("provision again: %s", again.op.error);
    assert_string_equal(attr(&again, "provider_id"), attr(&c, "provider_id"));
    assert_string_equal(attr(&again, "public_address"), attr(&c, "public_address"));
    assert_int_equal(sim_count(&sim, "servers"), 1);
    assert_int_equal(sim_count(&sim, "floating_ips"), 1);
    orc_drv_op_reset(&again.op);
    assert_int_equal(by_name(&e, &again, "status", name), 0);
    assert_true(again.op.exists);
    assert_int_equal(again.op.res_state, ORC_DRV_RES_READY);
    assert_string_equal(attr(&again, "public_address"), attr(&c, "public_address"));
    orc_drv_op_reset(&again.op);
    assert_int_equal(by_name(&e, &again, "adopt", name), 0);
    assert_true(again.op.exists);
    assert_string_equal(attr(&again, "flavor"), "g1.a100x1");
    assert_string_equal(attr(&again, "gpu_model"), "A100");
    orc_drv_op_reset(&again.op);
    /* the hostile flavor name reaches the script as data */
    {
        char name2[ORC_DRV_NAME_LEN];
        struct want hw = {.cpus = 1, .instance_type = "evil'$(touch "};
        char it[1000];
        snprintf(it, sizeof(it), "evil'$(touch %s)`touch %s`", mark, mark);
        hw.instance_type = it;
        name_of(1, name2);
        if (provision(&e, &again, name2, &hw) != 0)
            fail_msg("provision: %s", again.op.error);
        log = console_with(attr(&again, "provider_id"), "GPU check");
        assert_contains(log, it);
        free(log);
        assert_int_not_equal(access(mark, F_OK), 0);
        orc_drv_op_reset(&again.op);
        assert_int_equal(by_name(&e, &again, "deprovision", name2), 0);
        assert_true(again.op.exists);
        orc_drv_op_reset(&again.op);
    }
    orc_drv_op_reset(&c.op);
    assert_int_equal(by_name(&e, &c, "deprovision", name), 0);
    assert_true(c.op.exists);
    assert_empty(&sim);
    assert_int_equal(sim_count(&sim, "processes"), 0);
    orc_drv_op_reset(&c.op);
    assert_int_equal(by_name(&e, &c, "deprovision", name), 0);
    assert_false(c.op.exists);
    orc_drv_op_reset(&c.op);
    assert_int_equal(by_name(&e, &c, "status", name), 0);
    assert_false(c.op.exists);
    orc_drv_op_reset(&c.op);
    env_fini(&e);
}

static const struct orc_pool *pool_of(const struct loop_call *c, const char *model)
{
    for (uint32_t i = 0; i < c->op.npools; i++)
        if ((model == NULL && c->op.pools[i].gpu_model == NULL) ||
            (model && c->op.pools[i].gpu_model && strcmp(c->op.pools[i].gpu_model, model) == 0))
            return &c->op.pools[i];
    return NULL;
}

static void test_inventory_and_quota(void **state)
{
    struct env e;
    struct loop_call c;
    const struct orc_pool *p;
    char name[ORC_DRV_NAME_LEN];
    struct want w = {.cpus = 8, .gpus = 1, .model = "A100"};

    (void)state;
    start_sim("\"quotas\": {\"cores\": 20}");
    env_init(&e);
    open_ok(&e, "");
    loop_call_init(&c);
    assert_int_equal(orc_drv_inventory(e.site, &c.op, loop_call_cb), 0);
    wait_call(&e, &c, 10000);
    assert_int_equal(c.status, 0);
    p = pool_of(&c, "A100");
    assert_non_null(p);
    assert_int_equal(p->max_gpus_per_node, 2);
    assert_int_equal(p->gpus_free, 2); /* 20 cores: two g1.a100x1 (8 each), or one x2 (16) */
    assert_true(p->price_hour < 0);
    assert_non_null(pool_of(&c, "T4"));
    p = pool_of(&c, NULL);
    assert_non_null(p);
    assert_int_equal(p->cpus_total, 20);
    orc_drv_op_reset(&c.op);
    /* 16 of 20 cores used: the quota refuses a second g1.a100x1 */
    name_of(0, name);
    w.gpus = 2;
    assert_int_equal(provision(&e, &c, name, &w), 0);
    orc_drv_op_reset(&c.op);
    assert_int_equal(orc_drv_inventory(e.site, &c.op, loop_call_cb), 0);
    c.calls = 0;
    wait_call(&e, &c, 10000);
    assert_int_equal(pool_of(&c, "A100")->gpus_free, 0);
    assert_int_equal(pool_of(&c, NULL)->cpus_free, 4);
    orc_drv_op_reset(&c.op);
    {
        char name2[ORC_DRV_NAME_LEN];
        struct want one = {.cpus = 8, .gpus = 1, .model = "A100"};
        name_of(1, name2);
        assert_int_equal(provision(&e, &c, name2, &one), ORC_DRV_ENOCAPACITY);
        assert_contains(c.op.error, "Quota exceeded for cores");
        orc_drv_op_reset(&c.op);
    }
    assert_int_equal(sim_count(&sim, "servers"), 1);
    assert_int_equal(sim_count(&sim, "security_groups"), 1); /* the second one's went */
    assert_int_equal(by_name(&e, &c, "deprovision", name), 0);
    orc_drv_op_reset(&c.op);
    assert_empty(&sim);
    env_fini(&e);
}

static void test_capacity_errors(void **state)
{
    struct env e;
    struct loop_call c;
    char name[ORC_DRV_NAME_LEN];
    struct want three = {.cpus = 4, .gpus = 3, .model = "A100"};
    struct want h100 = {.gpus = 1, .model = "H100"};
    struct want one = {.cpus = 4, .gpus = 1, .model = "A100"};

    (void)state;
    start_sim("\"hosts\": [{\"name\": \"cmp1\", \"vcpus\": 64, \"ram_mb\": 524288, "
              "\"pci\": {\"a100\": 0}}]");
    env_init(&e);
    open_ok(&e, "");
    name_of(0, name);
    assert_int_equal(provision(&e, &c, name, &three), ORC_DRV_ENOCAPACITY);
    assert_contains(c.op.error, "3 x A100");
    assert_contains(c.op.error, "g1.a100x2 (2 x A100)");
    orc_drv_op_reset(&c.op);
    assert_int_equal(provision(&e, &c, name, &h100), ORC_DRV_ENOCAPACITY);
    assert_contains(c.op.error, "1 x H100");
    orc_drv_op_reset(&c.op);
    /* the flavor exists, the hosts have no A100 free: Nova says No valid host */
    assert_int_equal(provision(&e, &c, name, &one), ORC_DRV_ENOCAPACITY);
    assert_contains(c.op.error, "No valid host was found");
    orc_drv_op_reset(&c.op);
    assert_empty(&sim);
    /* an unknown flavor asked by name */
    {
        struct want it = {.instance_type = "x9.huge"};
        assert_int_equal(provision(&e, &c, name, &it), ORC_DRV_ENOCAPACITY);
        assert_contains(c.op.error, "x9.huge");
        orc_drv_op_reset(&c.op);
    }
    env_fini(&e);
}

static void test_error_and_build_timeout(void **state)
{
    struct env e;
    struct loop_call c;
    char name[ORC_DRV_NAME_LEN];
    struct want w = {.cpus = 1};

    (void)state;
    start_sim("\"error_rate\": 1.0, \"error_fault\": \"Build of instance {id} aborted: disk "
              "image corrupt\"");
    env_init(&e);
    open_ok(&e, "\"build_timeout_ms\": 1500");
    name_of(0, name);
    assert_int_equal(provision(&e, &c, name, &w), ORC_EDRIVER);
    assert_contains(c.op.error, "ERROR: Build of instance");
    assert_contains(c.op.error, "disk image corrupt");
    orc_drv_op_reset(&c.op);
    assert_empty(&sim);
    /* a build that never ends */
    json_decref(cloudsim_call(&sim, "PUT", "/_sim/config",
                              "{\"error_rate\": 0.0, \"stuck_build_rate\": 1.0}"));
    assert_int_equal(provision(&e, &c, name, &w), ORC_EDRIVER);
    assert_contains(c.op.error, "still BUILD after 1 s");
    orc_drv_op_reset(&c.op);
    assert_empty(&sim);
    env_fini(&e);
}

static void test_tokens_renewed(void **state)
{
    struct env e;
    struct loop_call c;
    char name[ORC_DRV_NAME_LEN];
    struct want w = {.cpus = 1};
    long issued;

    (void)state;
    start_sim("\"token_ttl_s\": 2");
    env_init(&e);
    open_ok(&e, "");
    name_of(0, name);
    assert_int_equal(provision(&e, &c, name, &w), 0);
    orc_drv_op_reset(&c.op);
    issued = sim_stat(&sim, "tokens_issued");
    for (int i = 0; i < 6; i++) { /* 3 s: the token expired at least once */
        run_for(&e, 500);
        assert_int_equal(by_name(&e, &c, "status", name), 0);
        assert_true(c.op.exists);
        orc_drv_op_reset(&c.op);
    }
    assert_true(sim_stat(&sim, "tokens_issued") > issued);
    /* a token revoked early: the 401 gets a new one, once */
    json_decref(cloudsim_call(&sim, "PUT", "/_sim/config",
                              "{\"token_ttl_s\": 3600, \"revoke_tokens_after_s\": 0.3}"));
    run_for(&e, 2500); /* the current one expires and the next is long-lived */
    assert_int_equal(by_name(&e, &c, "status", name), 0);
    orc_drv_op_reset(&c.op);
    run_for(&e, 500); /* that one is revoked now */
    issued = sim_stat(&sim, "tokens_issued");
    assert_int_equal(by_name(&e, &c, "status", name), 0);
    assert_true(c.op.exists);
    orc_drv_op_reset(&c.op);
    assert_true(sim_stat(&sim, "tokens_issued") > issued);
    json_decref(cloudsim_call(&sim, "PUT", "/_sim/config", "{\"revoke_tokens_after_s\": null}"));
    assert_int_equal(by_name(&e, &c, "deprovision", name), 0);
    orc_drv_op_reset(&c.op);
    assert_empty(&sim);
    env_fini(&e);
}

static void test_app_credentials_and_catalog(void **state)
{
    struct env e;
    struct loop_call c;
    char name[ORC_DRV_NAME_LEN], *cfg, err[ORC_OP_ERROR_LEN];
    struct want w = {.cpus = 1};

    (void)state;
    start_sim("\"catalog_omit\": [\"network\"]");
    env_init(&e);
    /* without the network endpoint the site cannot work: it says what to set */
    assert_true(asprintf(&cfg,
                         "{\"auth_url\": \"%s/identity/v3\", \"auth_type\": "
                         "\"application_credential\", \"application_credential_id\": "
                         "\"3b1d2f0e9c8a4b7d8e6f5a4b3c2d1e0f\", \"image\": \"ubuntu-22.04\"}",
                         sim.url) > 0);
    assert_int_equal(open_cfg(&e, cfg, "os.app", err), ORC_EINVAL);
    assert_contains(err, "no network endpoint");
    assert_contains(err, "endpoints.network");
    free(cfg);
    /* by id, with the override */
    assert_true(asprintf(&cfg,
                         "{\"auth_url\": \"%s/identity/v3\", \"auth_type\": "
                         "\"application_credential\", \"application_credential_id\": "
                         "\"3b1d2f0e9c8a4b7d8e6f5a4b3c2d1e0f\", \"image\": \"ubuntu-22.04\", "
                         "\"poll_ms\": 30, \"endpoints\": {\"network\": \"%s/network\"}}",
                         sim.url, sim.url) > 0);
    if (open_cfg(&e, cfg, "os.app", err) != 0)
        fail_msg("open: %s", err);
    free(cfg);
    name_of(0, name);
    if (provision(&e, &c, name, &w) != 0)
        fail_msg("provision: %s", c.op.error);
    orc_drv_op_reset(&c.op);
    assert_int_equal(by_name(&e, &c, "deprovision", name), 0);
    orc_drv_op_reset(&c.op);
    site_close(&e);
    assert_empty(&sim);
    /* by name with the user; a wrong secret is refused at open */
    assert_true(asprintf(&cfg,
                         "{\"auth_url\": \"%s/identity/v3\", \"auth_type\": "
                         "\"application_credential\", \"application_credential_name\": "
                         "\"demo-appcred\", \"username\": \"demo\", \"endpoints\": "
                         "{\"network\": \"%s/network/\"}}",
                         sim.url, sim.url) > 0);
    if (open_cfg(&e, cfg, "os.app", err) != 0)
        fail_msg("open: %s", err);
    site_close(&e);
    assert_int_equal(open_cfg(&e, cfg, "os.demo", err), ORC_EDENIED);
    assert_contains(err, "Keystone refused the site's credentials (HTTP 401");
    assert_true(strstr(err, "secret") == NULL || strstr(err, "appsecret") == NULL);
    free(cfg);
    env_fini(&e);
}

static void test_config_errors(void **state)
{
    static const struct {
        const char *extra, *cred, *want;
        int code;
    } cases[] = {
        {"\"flavour\": {}", "os.demo", "unknown key 'flavour'", ORC_EINVAL},
        {"\"auth_type\": \"token\"", "os.demo", "auth_type: expected one of", ORC_EINVAL},
        {"\"poll_ms\": 0", "os.demo", "poll_ms: expected an integer", ORC_EINVAL},
        {"\"flavors\": {\"g1\": {\"gpus\": 2}}", "os.demo", "gpus without gpu_model", ORC_EINVAL},
        {"\"endpoints\": {\"volume\": \"http://x\"}", "os.demo", "unknown service 'volume'",
         ORC_EINVAL},
        {"", NULL, "the site names no secret", ORC_EDENIED},
        {"", "os.nosuch", "no secret named 'os.nosuch'", ORC_EDENIED},
        {"", "os.wrong", "Keystone refused the site's credentials", ORC_EDENIED},
        {"\"network\": \"nosuch\"", "os.demo", "network 'nosuch' not found (private networks: "
                                               "private)",
         ORC_EINVAL},
        {"\"floating_ip\": \"always\", \"floating_network\": \"nope\"", "os.demo",
         "floating_network 'nope' not found", ORC_EINVAL},
    };
    struct env e;
    char err[ORC_OP_ERROR_LEN];

    (void)state;
    start_sim("");
    env_init(&e);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *cfg = site_config_of(&sim, cases[i].extra);
        int rc = open_cfg(&e, cfg, cases[i].cred, err);
        free(cfg);
        if (rc != cases[i].code)
            fail_msg("case %zu: %s: %s", i, orc_strerror(rc), err);
        assert_contains(err, cases[i].want);
        assert_true(strstr(err, "wrongpass") == NULL); /* the secret is never quoted */
    }
    {
        char *cfg = NULL;
        assert_true(asprintf(&cfg, "{\"username\": \"demo\", \"project_name\": \"demo\"}") > 0);
        assert_int_equal(open_cfg(&e, cfg, "os.demo", err), ORC_EINVAL);
        assert_contains(err, "auth_url: required");
        free(cfg);
    }
    env_fini(&e);
}

static void test_cancel_and_close(void **state)
{
    struct env e;
    struct loop_call a, b;
    char name[ORC_DRV_NAME_LEN], name2[ORC_DRV_NAME_LEN];
    struct want w = {.cpus = 1};

    (void)state;
    start_sim("\"stuck_build_rate\": 1.0");
    env_init(&e);
    open_ok(&e, "");
    name_of(0, name);
    name_of(1, name2);
    provision_start(&e, &a, name, &w);
    /* until the server is there (BUILD for ever) */
    for (int i = 0; i < 100 && sim_count(&sim, "servers") < 1; i++)
        run_for(&e, 50);
    assert_int_equal(sim_count(&sim, "servers"), 1);
    assert_int_equal(orc_drv_cancel(e.site, &a.op), 0);
    wait_call(&e, &a, 5000);
    assert_int_equal(a.status, ORC_ECANCELED);
    orc_drv_op_reset(&a.op);
    /* what it made stays until deprovisioned */
    assert_int_equal(sim_count(&sim, "servers"), 1);
    /* close with two ops in flight: both end canceled, the close after them */
    provision_start(&e, &a, name2, &w);
    provision_start(&e, &b, name, &w);
    run_for(&e, 30);
    site_close(&e);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, ORC_ECANCELED);
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.status, ORC_ECANCELED);
    orc_drv_op_reset(&a.op);
    orc_drv_op_reset(&b.op);
    open_ok(&e, "");
    assert_int_equal(by_name(&e, &a, "deprovision", name), 0);
    assert_true(a.op.exists);
    orc_drv_op_reset(&a.op);
    assert_int_equal(by_name(&e, &a, "deprovision", name2), 0);
    orc_drv_op_reset(&a.op);
    assert_empty(&sim);
    env_fini(&e);
}

/* ---- the daemon over HTTP ---------------------------------------------------------------- */

static const char plain_template[] =
    "tosca_definitions_version: tosca_simple_yaml_1_3\n"
    "topology_template:\n"
    "  node_templates:\n"
    "    vm:\n"
    "      type: tosca.nodes.Compute\n"
    "      capabilities:\n"
    "        host:\n"
    "          properties: {num_cpus: 2, mem_size: 2 GB}\n"
    "  outputs:\n"
    "    address: {value: {get_attribute: [vm, public_address]}}\n";

static const char gpu_template[] =
    "tosca_definitions_version: tosca_simple_yaml_1_3\n"
    "topology_template:\n"
    "  node_templates:\n"
    "    trainer:\n"
    "      type: orc.nodes.GPUCompute\n"
    "      capabilities:\n"
    "        host:\n"
    "          properties: {num_cpus: 4, mem_size: 8 GB, num_gpus: 1, gpu_model: A100}\n"
    "  outputs:\n"
    "    address: {value: {get_attribute: [trainer, private_address]}}\n";

static const char *const daemon_env_os[] = {"ORC_SECRET_OS_DEMO=secret", NULL};

/* A site entry on sim s (more config members in extra). */
static char *site_entry(const char *site, int priority, const struct cloudsim *s, const char *extra)
{
    char *cfg = site_config_of(s, extra), *y;

    assert_true(asprintf(&y,
                         "  - name: %s\n    driver: openstack\n    priority: %d\n"
                         "    credentials: os.demo\n    config: %s\n",
                         site, priority, cfg) > 0);
    free(cfg);
    return y;
}

static void start_daemon(struct fx_daemon *d, const char *name, const char *sites_body,
                         const char *must_open)
{
    char *y, *log, want[64];

    assert_true(asprintf(&y, "sites:\n%s", sites_body) > 0);
    fx_start(d, name, y, daemon_env_os);
    free(y);
    log = fx_read_file(d->log);
    snprintf(want, sizeof(want), "site %s open", must_open ? must_open : "");
    if (must_open && (log == NULL || strstr(log, want) == NULL)) {
        fx_dump_log(d);
        free(log);
        fail_msg("site %s did not open", must_open);
    }
    free(log);
}

/* The attributes of a deployment's node (from /extrainfo), a new object. */
static json_t *node_attrs(struct fx_daemon *d, const char *uuid, const char *node, char *site,
                          size_t cap)
{
    char path[160];
    json_t *arr, *e, *out = NULL;
    size_t i;

    snprintf(path, sizeof(path), "/deployments/%s/extrainfo", uuid);
    arr = fx_get_json(d, path);
    json_array_foreach(arr, i, e) {
        if (strcmp(json_string_value(json_object_get(e, "node")), node) == 0) {
            out = json_incref(json_object_get(e, "attributes"));
            snprintf(site, cap, "%s", json_string_value(json_object_get(e, "site")));
        }
    }
    json_decref(arr);
    assert_non_null(out);
    return out;
}

static void expect_complete(struct fx_daemon *d, const char *uuid, int ms)
{
    json_t *dep = fx_wait_status(d, uuid, "CREATE_COMPLETE|CREATE_FAILED", ms);

    if (strcmp(json_string_value(json_object_get(dep, "status")), "CREATE_COMPLETE") != 0) {
        fx_dump_log(d);
        fail_msg("%s", json_string_value(json_object_get(dep, "statusReason")));
    }
    json_decref(dep);
}

static void test_rest_compute(void **state)
{
    struct fx_daemon d;
    char uuid[64], uuid2[64], site[64], *entry;
    json_t *a, *dep;

    (void)state;
    start_sim("");
    entry = site_entry("os1", 10, &sim, "\"floating_ip\": \"always\"");
    start_daemon(&d, "os-rest", entry, "os1");
    free(entry);
    json_decref(fx_create(&d, plain_template, NULL, uuid));
    json_decref(fx_create(&d, gpu_template, NULL, uuid2));
    expect_complete(&d, uuid, 60000);
    expect_complete(&d, uuid2, 60000);
    a = node_attrs(&d, uuid, "vm", site, sizeof(site));
    assert_string_equal(site, "os1");
    assert_string_equal(json_string_value(json_object_get(a, "flavor")), "m1.small");
    assert_contains(json_string_value(json_object_get(a, "public_address")), "172.24.4.");
    assert_non_null(json_object_get(a, "security_group"));
    assert_non_null(json_object_get(a, "floating_ip"));
    dep = fx_get_json(&d, "/deployments");
    json_decref(dep);
    {
        char path[128];
        snprintf(path, sizeof(path), "/deployments/%s", uuid);
        dep = fx_get_json(&d, path);
        assert_string_equal(json_string_value(json_object_get(json_object_get(dep, "outputs"),
                                                              "address")),
                            json_string_value(json_object_get(a, "public_address")));
        json_decref(dep);
    }
    json_decref(a);
    a = node_attrs(&d, uuid2, "trainer", site, sizeof(site));
    assert_string_equal(json_string_value(json_object_get(a, "flavor")), "g1.a100x1");
    assert_string_equal(json_string_value(json_object_get(a, "gpu_model")), "A100");
    assert_contains(json_string_value(json_object_get(a, "private_address")), "10.0.0.");
    json_decref(a);
    assert_int_equal(sim_count(&sim, "servers"), 2);
    assert_int_equal(sim_count(&sim, "floating_ips"), 2);
    assert_int_equal(sim_count(&sim, "security_groups"), 2);
    fx_undeploy(&d, uuid, 60000);
    fx_undeploy(&d, uuid2, 60000);
    assert_empty(&sim);
    fx_stop(&d);
}

/* The error of the attempt on site (from the attempt.ended events), or "". */
static char *attempt_error(struct fx_daemon *d, const char *uuid, const char *site)
{
    json_t *ev = fx_events(d, uuid, "attempt.ended"), *e;
    char *out = strdup("");
    size_t i;

    json_array_foreach(ev, i, e) {
        json_t *data = json_object_get(e, "data");
        if (strcmp(json_string_value(json_object_get(data, "site")) ?: "", site) == 0 &&
            json_string_value(json_object_get(data, "error"))) {
            free(out);
            out = strdup(json_string_value(json_object_get(data, "error")));
        }
    }
    json_decref(ev);
    return out;
}

static void test_rest_failover_and_fault(void **state)
{
    struct fx_daemon d;
    char uuid[64], site[64], *sites, *one, *two, *err;
    json_t *a, *dep;

    (void)state;
    start_sim("\"hosts\": [{\"name\": \"cmp1\", \"vcpus\": 64, \"ram_mb\": 524288, "
              "\"pci\": {\"a100\": 0}}]");
    start_sim_in(&sim2, sim2_dir, "");
    one = site_entry("os1", 10, &sim, "");
    two = site_entry("os2", 0, &sim2, "");
    assert_true(asprintf(&sites, "%s%s", one, two) > 0);
    start_daemon(&d, "os-failover", sites, "os2");
    free(one);
    free(two);
    free(sites);
    json_decref(fx_create(&d, gpu_template, NULL, uuid));
    expect_complete(&d, uuid, 60000);
    a = node_attrs(&d, uuid, "trainer", site, sizeof(site));
    assert_string_equal(site, "os2");
    json_decref(a);
    err = attempt_error(&d, uuid, "os1");
    assert_contains(err, "No valid host was found");
    free(err);
    assert_empty(&sim); /* the failed attempt left nothing */
    assert_int_equal(sim_count(&sim2, "servers"), 1);
    fx_undeploy(&d, uuid, 60000);
    assert_empty(&sim2);
    /* every server fails: the deployment fails with Nova's fault on both */
    json_decref(cloudsim_call(&sim, "PUT", "/_sim/config", "{\"error_rate\": 1.0}"));
    json_decref(cloudsim_call(&sim2, "PUT", "/_sim/config", "{\"error_rate\": 1.0}"));
    json_decref(fx_create(&d, plain_template, NULL, uuid));
    dep = fx_wait_status(&d, uuid, "CREATE_COMPLETE|CREATE_FAILED", 60000);
    assert_string_equal(json_string_value(json_object_get(dep, "status")), "CREATE_FAILED");
    assert_contains(json_string_value(json_object_get(dep, "statusReason")),
                    "Exceeded maximum number of retries");
    assert_contains(json_string_value(json_object_get(dep, "statusReason")), "os2:");
    json_decref(dep);
    fx_undeploy(&d, uuid, 60000);
    assert_empty(&sim);
    assert_empty(&sim2);
    fx_stop(&d);
}

/* The sites.yaml entry of a cloud whose servers boot their user data as local
 * processes with floating IPs on loopback, and gpu-agent from this build. */
static void start_booting_daemon(struct fx_daemon *d, const char *name)
{
    char agent[300], extra[600], *entry;

    agent_path(agent, sizeof(agent));
    snprintf(extra, sizeof(extra), "\"agent_path\": \"%s\", \"state_dir\": \"state\"", agent);
    entry = site_entry("os1", 10, &sim, extra);
    start_daemon(d, name, entry, "os1");
    free(entry);
}

/* examples/gpu-serving.yaml on one A100: a server with its security group (the
 * service's port open) and floating IP; its user data starts gpu-serve under
 * gpu-agent, whose report makes the endpoint output, which answers predictions. */
static void test_rest_serving(void **state)
{
    struct fx_daemon d;
    char uuid[64], site[64], serve[600], train[600], cmd[1600], url[600], *extra, *text = NULL;
    char *tmpl = fx_example("examples/gpu-serving.yaml");
    unsigned port = (unsigned)test_free_port();
    json_t *a, *dep, *inv, *answer, *params;
    const char *endpoint, *pub;

    (void)state;
    binary_path("gpu-serve", serve, sizeof(serve));
    binary_path("gpu-train", train, sizeof(train));
    snprintf(cmd, sizeof(cmd), "'%s' --epochs 1 --out '%s/model.bin' > /dev/null 2>&1", train,
             sim_dir);
    assert_int_equal(system(cmd), 0);
    start_sim("\"boot\": \"exec\", \"floating_cidr\": \"127.77.0.0/24\"");
    start_booting_daemon(&d, "os-serve");
    snprintf(cmd, sizeof(cmd), "'%s' --model '%s/model.bin' --host 0.0.0.0 --port \"$PORT\"",
             serve, sim_dir);
    params = json_pack("{s{sisssiss}}", "parameters", "num_gpus", 1, "gpu_model", "A100", "port",
                       (int)port, "command", cmd);
    extra = json_dumps(params, 0);
    json_decref(params);
    json_decref(fx_create(&d, tmpl, extra, uuid));
    free(extra);
    free(tmpl);
    expect_complete(&d, uuid, 90000);
    a = node_attrs(&d, uuid, "serve_node", site, sizeof(site));
    assert_string_equal(site, "os1");
    assert_string_equal(json_string_value(json_object_get(a, "flavor")), "g1.a100x1");
    pub = json_string_value(json_object_get(a, "public_address"));
    assert_contains(pub, "127.77.0.");
    assert_int_equal(sim_count(&sim, "servers"), 1);
    assert_int_equal(sim_count(&sim, "floating_ips"), 1);
    assert_int_equal(sim_count(&sim, "security_groups"), 1);
    inv = cloudsim_call(&sim, "GET", "/_sim/inventory", NULL);
    assert_int_equal(sg_opens(&sim,
                              json_string_value(json_object_get(json_array_get(
                                  json_object_get(inv, "security_groups"), 0), "name")), port), 1);
    json_decref(inv);
    /* the endpoint output: the floating IP and the service's port, from the agent's report */
    dep = fx_get_json(&d, (snprintf(url, sizeof(url), "/deployments/%s", uuid), url));
    endpoint = json_string_value(json_object_get(json_object_get(dep, "outputs"), "endpoint"));
    snprintf(url, sizeof(url), "http://%s:%u/v2/models/", pub, port);
    assert_string_equal(endpoint, url);
    assert_int_equal(fx_url_fetch(endpoint, NULL, &text), 200);
    assert_contains(text, "mlp-classifier");
    free(text);
    snprintf(url, sizeof(url), "%smlp-classifier/predict/", endpoint);
    assert_int_equal(fx_url_fetch(url, "{\"inputs\": [[0.5, 0.25], [-0.75, 0.1]]}", &text), 200);
    answer = json_loads(text, 0, NULL);
    free(text);
    assert_string_equal(json_string_value(json_object_get(answer, "status")), "OK");
    assert_int_equal(json_array_size(json_object_get(answer, "predictions")), 2);
    json_decref(answer);
    json_decref(dep);
    /* in the server: the agent's own log and the workload's, under state_dir/logs */
    {
        char *log;
        snprintf(url, sizeof(url), "%s/servers/%s/state/logs/agent-model_api-0.log", sim_dir,
                 json_string_value(json_object_get(a, "provider_id")));
        log = fx_read_file(url);
        assert_non_null(log);
        free(log);
        snprintf(url, sizeof(url), "%s/servers/%s/console.log", sim_dir,
                 json_string_value(json_object_get(a, "provider_id")));
        log = fx_read_file(url);
        assert_contains(log, "orc: starting workload model_api-0 (");
        free(log);
    }
    json_decref(a);
    a = node_attrs(&d, uuid, "model_api", site, sizeof(site));
    assert_string_equal(json_string_value(json_object_get(a, "workload_state")), "ready");
    json_decref(a);
    /* DELETE: the VM and what ran in it are gone */
    fx_undeploy(&d, uuid, 60000);
    assert_empty(&sim); /* no process left either */
    snprintf(url, sizeof(url), "http://%s:%u/v2/models/", "127.0.0.1", port);
    assert_int_not_equal(fx_url_fetch(url, NULL, &text), 200);
    free(text);
    fx_stop(&d);
}

/* The PUT body of an update of examples/gpu-serving.yaml with the serving command cmd. */
static char *serving_update(const char *tmpl, unsigned port, const char *cmd)
{
    json_t *b = json_pack("{ss s{sisssiss}}", "template", tmpl, "parameters", "num_gpus", 1,
                          "gpu_model", "A100", "port", (int)port, "command", cmd);
    char *text = json_dumps(b, 0);

    json_decref(b);
    return text;
}

/* An update that changes the served model's name: nothing reaches into the running
 * server, so it is replaced and the new one boots the new command; the endpoint then
 * answers with the new name, and the cloud holds one server. */
static void test_rest_update_serving(void **state)
{
    struct fx_daemon d;
    char uuid[64], site[64], serve[600], train[600], cmd[1600], path[128], url[600], id1[80];
    char *body, *text = NULL, *tmpl = fx_example("examples/gpu-serving.yaml");
    unsigned port = (unsigned)test_free_port();
    struct fx_resp r;
    json_t *a, *dep;

    (void)state;
    binary_path("gpu-serve", serve, sizeof(serve));
    binary_path("gpu-train", train, sizeof(train));
    snprintf(cmd, sizeof(cmd), "'%s' --epochs 1 --out '%s/model.bin' > /dev/null 2>&1", train,
             sim_dir);
    assert_int_equal(system(cmd), 0);
    start_sim("\"boot\": \"exec\", \"floating_cidr\": \"127.77.0.0/24\"");
    start_booting_daemon(&d, "os-update");
    snprintf(cmd, sizeof(cmd), "'%s' --model '%s/model.bin' --host 0.0.0.0 --port \"$PORT\"",
             serve, sim_dir);
    body = serving_update(tmpl, port, cmd);
    {
        json_t *b = json_loads(body, 0, NULL);
        json_object_del(b, "template");
        free(body);
        body = json_dumps(b, 0);
        json_decref(b);
    }
    json_decref(fx_create(&d, tmpl, body, uuid));
    free(body);
    expect_complete(&d, uuid, 90000);
    a = node_attrs(&d, uuid, "serve_node", site, sizeof(site));
    snprintf(id1, sizeof(id1), "%s", json_string_value(json_object_get(a, "provider_id")));
    json_decref(a);
    /* the update: the same node, another command */
    snprintf(cmd, sizeof(cmd),
             "'%s' --model '%s/model.bin' --name renamed-model --host 0.0.0.0 --port \"$PORT\"",
             serve, sim_dir);
    body = serving_update(tmpl, port, cmd);
    snprintf(path, sizeof(path), "/deployments/%s", uuid);
    assert_int_equal(fx_http(&d, "PUT", path, NULL, body, &r), 202);
    fx_resp_free(&r);
    free(body);
    dep = fx_wait_status(&d, uuid, "UPDATE_COMPLETE|UPDATE_FAILED", 90000);
    if (strcmp(json_string_value(json_object_get(dep, "status")), "UPDATE_COMPLETE") != 0) {
        fx_dump_log(&d);
        fail_msg("%s", json_string_value(json_object_get(dep, "statusReason")));
    }
    json_decref(dep);
    a = node_attrs(&d, uuid, "serve_node", site, sizeof(site));
    assert_string_not_equal(json_string_value(json_object_get(a, "provider_id")), id1);
    snprintf(url, sizeof(url), "http://%s:%u/v2/models/",
             json_string_value(json_object_get(a, "public_address")), port);
    json_decref(a);
    assert_int_equal(fx_url_fetch(url, NULL, &text), 200);
    assert_contains(text, "renamed-model");
    free(text);
    assert_int_equal(sim_count(&sim, "servers"), 1);
    assert_int_equal(sim_count(&sim, "floating_ips"), 1);
    fx_undeploy(&d, uuid, 60000);
    assert_empty(&sim);
    free(tmpl);
    fx_stop(&d);
}

/* examples/gpu-training.yaml: the job runs in the server under gpu-agent; its exit
 * status comes from the agent's report (0: CREATE_COMPLETE; 3: CREATE_FAILED). */
static void test_rest_training_job(void **state)
{
    struct fx_daemon d;
    char uuid[64], uuid2[64], site[64], train[600], cmd[800], path[128], *extra;
    char *tmpl = fx_example("examples/gpu-training.yaml");
    json_t *a, *dep, *params;

    (void)state;
    binary_path("gpu-train", train, sizeof(train));
    start_sim("\"boot\": \"exec\"");
    start_booting_daemon(&d, "os-train");
    snprintf(cmd, sizeof(cmd), "'%s' --epochs \"$EPOCHS\" --out checkpoint.bin", train);
    params = json_pack("{s{sissss}}", "parameters", "num_gpus", 1, "gpu_model", "A100", "command",
                       cmd, "epochs", "2");
    extra = json_dumps(params, 0);
    json_decref(params);
    json_decref(fx_create(&d, tmpl, extra, uuid));
    free(extra);
    params = json_pack("{s{ss}}", "parameters", "command", "echo failing on purpose; exit 3");
    extra = json_dumps(params, 0);
    json_decref(params);
    json_decref(fx_create(&d, tmpl, extra, uuid2));
    free(extra);
    free(tmpl);
    expect_complete(&d, uuid, 90000);
    a = node_attrs(&d, uuid, "training", site, sizeof(site));
    assert_string_equal(site, "os1");
    assert_int_equal(json_integer_value(json_object_get(a, "exit_status")), 0);
    json_decref(a);
    snprintf(path, sizeof(path), "/deployments/%s", uuid);
    dep = fx_get_json(&d, path);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(dep, "outputs"),
                                                        "exit_status")), 0);
    json_decref(dep);
    dep = fx_wait_status(&d, uuid2, "CREATE_COMPLETE|CREATE_FAILED", 90000);
    assert_string_equal(json_string_value(json_object_get(dep, "status")), "CREATE_FAILED");
    assert_contains(json_string_value(json_object_get(dep, "statusReason")),
                    "job exited with status 3");
    json_decref(dep);
    fx_undeploy(&d, uuid, 60000);
    fx_undeploy(&d, uuid2, 60000);
    assert_empty(&sim);
    /* a command too long for Nova's 64 KiB of user data fails before anything is made */
    {
        long groups = sg_posts(&sim);
        assert_true(groups > 0); /* the two jobs above made theirs */
        char *big = malloc(70001);
        memset(big, 'x', 70000);
        memcpy(big, "echo ", 5);
        big[70000] = '\0';
        params = json_pack("{s{ss}}", "parameters", "command", big);
        extra = json_dumps(params, 0);
        json_decref(params);
        free(big);
        tmpl = fx_example("examples/gpu-training.yaml");
        json_decref(fx_create(&d, tmpl, extra, uuid));
        free(extra);
        free(tmpl);
        dep = fx_wait_status(&d, uuid, "CREATE_COMPLETE|CREATE_FAILED", 60000);
        assert_string_equal(json_string_value(json_object_get(dep, "status")), "CREATE_FAILED");
        assert_contains(json_string_value(json_object_get(dep, "statusReason")),
                        "bytes of base64, over Nova's 65535");
        json_decref(dep);
        assert_int_equal(sg_posts(&sim), groups); /* no security group was made for it */
        fx_undeploy(&d, uuid, 60000);
    }
    fx_stop(&d);
}

static void test_rest_site_errors(void **state)
{
    struct fx_daemon d;
    char *sites, *cfg, *log;
    json_t *dep;
    char uuid[64];

    (void)state;
    start_sim("");
    cfg = site_config_of(&sim, "\"bogus_key\": 1");
    assert_true(asprintf(&sites,
                         "  - name: osbad\n    driver: openstack\n    credentials: os.demo\n"
                         "    config: %s\n"
                         "  - name: osnocred\n    driver: openstack\n    config: %s\n",
                         cfg, cfg) > 0);
    free(cfg);
    cfg = site_config_of(&sim, "");
    {
        char *more;
        assert_true(asprintf(&more,
                             "%s  - name: osnocred2\n    driver: openstack\n    config: %s\n",
                             sites, cfg) > 0);
        free(sites);
        sites = more;
    }
    free(cfg);
    start_daemon(&d, "os-errors", sites, NULL);
    free(sites);
    log = fx_read_file(d.log);
    assert_contains(log, "site osbad (driver openstack) cannot open: openstack: config: unknown "
                         "key 'bogus_key'");
    assert_contains(log, "site osnocred2 (driver openstack) cannot open: openstack: credentials: "
                         "the site names no secret");
    assert_true(strstr(log, "secret\"") == NULL);
    free(log);
    json_decref(fx_create(&d, plain_template, NULL, uuid));
    dep = fx_wait_status(&d, uuid, "CREATE_FAILED", 20000);
    assert_contains(json_string_value(json_object_get(dep, "statusReason")),
                    "no site can run this deployment");
    json_decref(dep);
    fx_stop(&d);
}

#define NFAULTY 20

static void test_rest_faults(void **state)
{
    struct fx_daemon d;
    char uuids[NFAULTY][64], *entry, knobs[1024];
    int complete = 0, failed = 0;

    (void)state;
    snprintf(knobs, sizeof(knobs), "\"build_ms\": 200, \"faults\": {\"rate\": 0.3, \"kinds\": [\"500\", \"503\", "
              "\"429\", \"reset\", \"timeout\"], \"when\": \"mixed\", \"hang_ms\": 1500, "
              "\"retry_after_s\": 0, \"seed\": %s}, \"hosts\": [{\"name\": \"big\", \"vcpus\": 512, "
              "\"ram_mb\": 4000000, \"pci\": {\"a100\": 32}}], \"quotas\": {\"instances\": 40, \"cores\": "
              "200, \"ram\": 2000000, \"floating_ips\": 40, \"security_groups\": 40}",
             env_or("OST_FAULT_SEED", "7"));
    start_sim(knobs);
    entry = site_entry("os1", 10, &sim,
                       "\"timeout_ms\": 800, \"retries\": 8, \"floating_ip\": \"always\"");
    start_daemon(&d, "os-faults", entry, NULL);
    free(entry);
    for (int i = 0; i < NFAULTY; i++)
        json_decref(fx_create(&d, i % 2 ? gpu_template : plain_template, NULL, uuids[i]));
    for (int i = 0; i < NFAULTY; i++) {
        json_t *dep = fx_wait_status(&d, uuids[i], "CREATE_COMPLETE|CREATE_FAILED", 120000);
        const char *st = json_string_value(json_object_get(dep, "status"));
        if (strcmp(st, "CREATE_COMPLETE") == 0)
            complete++;
        else {
            failed++;
            print_message("deployment %d failed: %s\n", i,
                          json_string_value(json_object_get(dep, "statusReason")));
        }
        json_decref(dep);
    }
    {
        json_t *st = cloudsim_call(&sim, "GET", "/_sim/stats", NULL), *v;
        const char *k;
        long faults = 0;
        json_object_foreach(json_object_get(st, "faults"), k, v) faults += (long)json_integer_value(v);
        print_message("faults: %d complete, %d failed; %ld of %ld answers faulty\n", complete,
                      failed, faults, (long)json_integer_value(json_object_get(st, "requests")));
        json_decref(st);
    }
    /* one server per deployment: a create sent again never leaves a duplicate */
    assert_int_equal(sim_count(&sim, "servers"), complete);
    assert_true(complete >= NFAULTY - 2);
    for (int i = 0; i < NFAULTY; i++) {
        char path[128];
        struct fx_resp r;
        snprintf(path, sizeof(path), "/deployments/%.63s", uuids[i]);
        fx_http(&d, "DELETE", path, NULL, NULL, &r);
        fx_resp_free(&r);
    }
    for (int i = 0; i < NFAULTY; i++)
        assert_null(fx_wait_status(&d, uuids[i], "", 120000));
    json_decref(cloudsim_call(&sim, "PUT", "/_sim/config", "{\"faults\": {\"rate\": 0.0}}"));
    assert_empty(&sim);
    fx_stop(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gpu_node_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inventory_and_quota, setup, teardown),
        cmocka_unit_test_setup_teardown(test_capacity_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_and_build_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens_renewed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_app_credentials_and_catalog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rest_compute, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rest_failover_and_fault, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rest_serving, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rest_training_job, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rest_update_serving, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rest_site_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rest_faults, setup, teardown),
    };

    setenv("ORC_SECRET_OS_DEMO", "secret", 1);
    setenv("ORC_SECRET_OS_APP", "appsecret", 1);
    setenv("ORC_SECRET_OS_WRONG", "wrongpass", 1);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (getenv("TEST_FILTER"))
        cmocka_set_test_filter(getenv("TEST_FILTER"));
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    fx_log_clear();
    curl_global_cleanup();
    return rc;
}
