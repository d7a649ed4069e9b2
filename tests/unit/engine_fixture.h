/*
 * The fixture of the engine tests (test_engine.c, test_update.c): an engine
 * on a real loop over an on-disk store and the sim driver from $PLUGIN_DIR,
 * sites from YAML (@DIR@ is the test's temp directory), deployments stored
 * from templates and driven to a final status, the sim inventory files read
 * to count what a site holds. Header-only: each test program includes it
 * once, after testutil.h.
 */
#ifndef ENGINE_FIXTURE_H
#define ENGINE_FIXTURE_H

#include <arpa/inet.h>
#include <dirent.h>
#include <unistd.h>

#include <uv.h>

#include "engine/engine.h"

struct fx {
    uv_loop_t loop;
    orc_store_t *store;
    struct orc_drv_registry *reg;
    struct orc_sites sites;
    struct orc_engine *eng;
    tosca_ctx_t *tosca;
    char dir[64];
    bool ready, closed;
    struct orc_engine_opts opts; /* set before start_engine; callbacks default to 4 x 20 ms */
};

static inline void on_ready(struct orc_engine *e, void *ud)
{
    (void)e;
    ((struct fx *)ud)->ready = true;
}

static inline void on_closed(struct orc_engine *e, void *ud)
{
    (void)e;
    ((struct fx *)ud)->closed = true;
}

static inline void run_until(struct fx *f, bool *flag)
{
    for (int i = 0; i < 200000 && !*flag; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(*flag);
}

static inline const char *plugin_dir(void)
{
    const char *d = getenv("PLUGIN_DIR");
    return d && *d ? d : "build/release/plugins";
}

/* Sites: YAML with @DIR@ replaced by the test's temp directory. */
static inline void start_engine(struct fx *f, const char *sites_yaml)
{
    char path[512], yaml[4096], err[256];
    struct orc_sites_errors errs = {0};
    const char *at;
    size_t n = 0;

    for (const char *p = sites_yaml; *p && n < sizeof(yaml) - 64; p++) {
        if (strncmp(p, "@DIR@", 5) == 0) {
            n += (size_t)snprintf(yaml + n, sizeof(yaml) - n, "%s", f->dir);
            p += 4;
        } else {
            yaml[n++] = *p;
        }
    }
    yaml[n] = '\0';
    (void)at;
    assert_int_equal(orc_sites_load_buffer("sites.yaml", yaml, n, &f->sites, &errs), 0);
    orc_sites_errors_free(&errs);
    snprintf(path, sizeof(path), "%s/store.db", f->dir);
    assert_int_equal(orc_store_open(path, &f->store, err, sizeof(err)), 0);
    assert_int_equal(orc_drv_registry_new(&f->loop, &f->reg), 0);
    snprintf(path, sizeof(path), "%s/sim.so", plugin_dir());
    assert_int_equal(orc_drv_load_file(f->reg, path), 0);
    {
        struct orc_engine_opts o = f->opts;
        if (o.callback_backoff_ms == 0)
            o.callback_backoff_ms = 20;
        if (o.callback_attempts == 0)
            o.callback_attempts = 4;
        assert_int_equal(orc_engine_new(&f->loop, f->store, f->reg, &f->sites, &o, &f->eng), 0);
    }
    f->ready = false;
    assert_int_equal(orc_engine_start(f->eng, on_ready, f), 0);
    run_until(f, &f->ready);
}

static inline void stop_engine(struct fx *f)
{
    f->closed = false;
    orc_engine_close(f->eng, on_closed, f);
    run_until(f, &f->closed);
    orc_engine_free(f->eng);
    f->eng = NULL;
    assert_int_equal(orc_drv_registry_close(f->reg), 0);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    orc_store_close(f->store);
    orc_sites_free(&f->sites);
}

static inline int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    tosca_diags_t d;

    snprintf(f->dir, sizeof(f->dir), "/tmp/test-engine-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    uv_loop_init(&f->loop);
    tosca_diags_init(&d, false);
    assert_int_equal(tosca_ctx_new(NULL, &f->tosca, &d), 0);
    tosca_diags_fini(&d);
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[128];

    tosca_ctx_free(f->tosca);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static inline void submit_full(struct fx *f, const char *file, const char *inputs_json,
                               const char *callback, char *uuid);

/* Stores a deployment of an example template with inputs; returns its uuid. */
static inline void submit(struct fx *f, const char *file, const char *inputs_json, char *uuid)
{
    submit_full(f, file, inputs_json, NULL, uuid);
}

static inline void submit_with_callback(struct fx *f, const char *file, const char *url, char *uuid)
{
    submit_full(f, file, "{}", url, uuid);
}

static inline void submit_full(struct fx *f, const char *file, const char *inputs_json,
                               const char *callback, char *uuid)
{
    tosca_template_t *t = NULL;
    tosca_diags_t d;
    json_error_t je;
    json_t *inputs = json_loads(inputs_json, 0, &je), *plan = NULL;
    orc_deployment_t dep = {0};
    size_t len = 0;
    char *text = test_read_file(file, &len);

    assert_non_null(text);
    tosca_diags_init(&d, false);
    assert_int_equal(tosca_load_buffer(f->tosca, file, text, (size_t)len, &t, &d), 0);
    assert_int_equal(tosca_plan(t, inputs, &plan, &d), 0);
    tosca_diags_fini(&d);
    dep.created_by.issuer = "https://issuer.test";
    dep.created_by.subject = "alice";
    dep.template_text = text;
    dep.parameters = inputs;
    dep.plan = plan;
    dep.provider_timeout_mins = 5;
    dep.callback = (char *)callback;
    assert_int_equal(orc_store_deployment_insert(f->store, &dep), 0);
    strcpy(uuid, dep.uuid);
    assert_int_equal(orc_engine_create(f->eng, uuid), 0);
    tosca_template_free(t);
    json_decref(plan);
    json_decref(inputs);
    free(text);
}

static inline orc_deployment_t *wait_final(struct fx *f, const char *uuid)
{
    for (int i = 0; i < 200000 && orc_engine_busy(f->eng, uuid); i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_false(orc_engine_busy(f->eng, uuid));
    {
        orc_deployment_t *d = NULL;
        assert_int_equal(orc_store_deployment_get(f->store, uuid, &d), 0);
        return d;
    }
}

/* Resources the sim cloud holds, from its inventory file. */
static inline size_t sim_resources(struct fx *f, const char *site)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s.json", f->dir, site);
    return test_sim_resources(path);
}

static inline bool has_event(struct fx *f, const char *uuid, const char *type)
{
    orc_event_list_t l = {0};
    bool found = false;

    assert_int_equal(orc_store_event_list(f->store, uuid, 0, 0, &l), 0);
    for (size_t k = 0; k < l.count; k++)
        found = found || strcmp(l.items[k].type, type) == 0;
    orc_event_list_clear(&l);
    return found;
}

/* Plans a template text with inputs (JSON text); returns the plan. */
static inline json_t *plan_text(struct fx *f, const char *text, const json_t *inputs)
{
    tosca_template_t *t = NULL;
    tosca_diags_t d;
    json_t *plan = NULL;

    tosca_diags_init(&d, false);
    assert_int_equal(tosca_load_buffer(f->tosca, "template.yaml", text, strlen(text), &t, &d), 0);
    assert_int_equal(tosca_plan(t, inputs, &plan, &d), 0);
    tosca_diags_fini(&d);
    tosca_template_free(t);
    return plan;
}

/* Stores a deployment of a template text as the API does (options in dep
 * are kept) and starts its create; returns its uuid. */
static inline void submit_text(struct fx *f, const char *text, const char *inputs_json,
                               orc_deployment_t *dep, char *uuid)
{
    json_error_t je;
    json_t *inputs = json_loads(inputs_json, 0, &je);

    assert_non_null(inputs);
    dep->created_by.issuer = "https://issuer.test";
    dep->created_by.subject = "alice";
    dep->template_text = (char *)text;
    dep->parameters = inputs;
    dep->plan = plan_text(f, text, inputs);
    assert_int_equal(orc_store_deployment_insert(f->store, dep), 0);
    strcpy(uuid, dep->uuid);
    assert_int_equal(orc_engine_create(f->eng, uuid), 0);
    json_decref(dep->plan);
    json_decref(inputs);
}

/* Stores an update as the API does (the inputs merged into the stored
 * parameters, the stored template planned again, UPDATE_IN_PROGRESS) and
 * starts it. */
static inline void update_with(struct fx *f, const char *uuid, const char *inputs_json)
{
    orc_deployment_t *d = NULL, v = {.status = ORC_DEP_UPDATE_IN_PROGRESS};
    orc_dep_update_t u = {.uuid = uuid,
                          .values = &v,
                          .set = ORC_DEP_F_STATUS | ORC_DEP_F_PARAMETERS | ORC_DEP_F_PLAN};
    json_error_t je;
    json_t *inputs = json_loads(inputs_json, 0, &je);

    assert_non_null(inputs);
    assert_int_equal(orc_store_deployment_get(f->store, uuid, &d), 0);
    v.parameters = json_deep_copy(d->parameters);
    json_object_update(v.parameters, inputs);
    v.plan = plan_text(f, d->template_text, v.parameters);
    assert_int_equal(orc_store_deployment_update(f->store, &u, NULL), 0);
    assert_int_equal(orc_engine_update(f->eng, uuid), 0);
    json_decref(v.plan);
    json_decref(v.parameters);
    json_decref(inputs);
    orc_deployment_free(d);
}

/* The resources of one node of a deployment, by index (oldest first). */
static inline void node_resources(struct fx *f, const char *uuid, const char *node,
                                  orc_resource_list_t *out)
{
    orc_res_query_t q = {.deployment_uuid = uuid, .oldest_first = true};
    orc_resource_list_t l = {0};
    size_t n = 0;

    assert_int_equal(orc_store_resource_list(f->store, &q, &l), 0);
    for (size_t i = 0; i < l.count; i++) {
        if (strcmp(l.items[i].node_name, node) != 0) {
            orc_resource_clear(&l.items[i]);
            continue;
        }
        l.items[n++] = l.items[i];
    }
    l.count = n;
    *out = l;
}

/* True when a "resource.state" event of the deployment says `text`. */
static inline bool has_message(struct fx *f, const char *uuid, const char *text)
{
    orc_event_list_t l = {0};
    bool found = false;

    assert_int_equal(orc_store_event_list(f->store, uuid, 0, 0, &l), 0);
    for (size_t k = 0; k < l.count; k++)
        found = found || (l.items[k].message && strstr(l.items[k].message, text));
    orc_event_list_clear(&l);
    return found;
}

#endif
