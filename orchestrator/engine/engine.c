/*
 * The deployment engine (engine.h): runs, their node DAG and the site
 * attempts. One struct run per deployment the engine works on; every driver
 * call goes through drivers.h and every transition is stored (store.h)
 * before the engine acts on it, so that a restart re-drives from the store.
 */
#include <stdio.h>
#include <string.h>

#include "engine_int.h"
#include "http_client.h"

#define LOG "engine"
#define DEFAULT_PARALLEL 8

static void run_step(struct run *r);
static void run_free(struct run *r);
#define maybe_done orc__engine_maybe_done
static void attempt_next(struct run *r);
static void start_rank(struct run *r);

/* ---- helpers ---- */

static void notify(struct run *r)
{
    if (r->eng->opts.notify)
        r->eng->opts.notify(r->eng->opts.notify_ud, r->uuid);
}

static void fail_attempt(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_attempt(struct run *r, const char *fmt, ...)
{
    va_list ap;

    if (r->failed)
        return; /* the first error is the attempt's error */
    r->failed = true;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof(r->error), fmt, ap);
    va_end(ap);
    orc_log(ORC_LOG_WARN, LOG, "deployment %s: %s", r->uuid, r->error);
    for (size_t n = 0; n < r->nnodes; n++)
        for (size_t i = 0; i < r->nodes[n].ninst; i++)
            if (orc_drv_op_inflight(&r->nodes[n].inst[i].op) && r->site)
                orc_drv_cancel(r->site->site, &r->nodes[n].inst[i].op);
}

static struct run *find_run(const struct orc_engine *eng, const char *uuid)
{
    for (struct run *r = eng->runs; r; r = r->next)
        if (strcmp(r->uuid, uuid) == 0)
            return r;
    return NULL;
}

static struct engine_site *site_by_name(struct orc_engine *eng, const char *name)
{
    for (size_t i = 0; name && i < eng->nsites; i++)
        if (strcmp(eng->esites[i].def->name, name) == 0)
            return eng->esites[i].open ? &eng->esites[i] : NULL;
    return NULL;
}

static int set_res(struct run *r, struct inst *in, orc_res_state_t st, bool with_site,
                   unsigned extra, const orc_resource_t *vals)
{
    orc_resource_t v;
    orc_res_update_t u = {.uuid = in->res_uuid, .set = ORC_RES_F_STATE | extra, .values = &v};
    int rc;

    if (vals)
        v = *vals;
    else
        memset(&v, 0, sizeof(v));
    v.state = st;
    if (with_site) {
        u.set |= ORC_RES_F_SITE | ORC_RES_F_PROVIDER;
        v.site_name = r->site ? (char *)r->site->def->name : NULL;
        v.provider_name = r->site ? (char *)r->site->def->driver : NULL;
    }
    rc = orc_store_resource_update(r->eng->store, &u, NULL);
    if (rc < 0)
        orc_log(ORC_LOG_ERROR, LOG, "deployment %s: storing %s: %s", r->uuid, in->name,
                orc_store_errmsg(r->eng->store));
    in->res_state = st;
    notify(r);
    return rc;
}

/* ---- building a run from the stored plan ---- */

static struct nrun *node_by_name(struct run *r, const char *name)
{
    for (size_t i = 0; name && i < r->nnodes; i++)
        if (strcmp(r->nodes[i].name, name) == 0)
            return &r->nodes[i];
    return NULL;
}

static int build_node(struct run *r, struct nrun *n, const json_t *pn)
{
    json_int_t count = json_integer_value(json_object_get(pn, "count"));

    n->run = r;
    n->plan_node = pn;
    n->name = json_string_value(json_object_get(pn, "name"));
    n->type = json_string_value(json_object_get(pn, "type"));
    n->kind = orc_rank_kind(json_string_value(json_object_get(pn, "kind")));
    if (n->name == NULL || n->type == NULL || n->kind < 0 || count < 0 || count > 100000)
        return ORC_EFORMAT;
    n->ninst = (size_t)count;
    n->inst = orc_calloc(n->ninst ? n->ninst : 1, sizeof(*n->inst));
    if (n->inst == NULL)
        return ORC_ENOMEM;
    for (size_t i = 0; i < n->ninst; i++) {
        struct inst *in = &n->inst[i];
        in->node = n;
        in->index = (uint32_t)i;
        orc_drv_op_init(&in->op);
        in->op.data = in;
        if (orc_drv_resource_name(r->uuid, n->name, (uint32_t)i, in->name) < 0)
            return ORC_EFORMAT;
    }
    return 0;
}

static int link_nodes(struct run *r)
{
    for (size_t i = 0; i < r->nnodes; i++) {
        struct nrun *n = &r->nodes[i];
        const json_t *deps = json_object_get(n->plan_node, "depends_on"), *d;
        size_t k;
        n->host = node_by_name(r, json_string_value(json_object_get(n->plan_node, "host")));
        n->deps = orc_calloc(json_array_size(deps) + 1, sizeof(*n->deps));
        if (n->deps == NULL)
            return ORC_ENOMEM;
        json_array_foreach(deps, k, d)
        {
            struct nrun *t = node_by_name(r, json_string_value(d));
            if (t)
                n->deps[n->ndeps++] = t;
        }
    }
    return 0;
}

/* Matches the stored resources to the instances; inserts the missing ones. */
static int load_resources(struct run *r)
{
    orc_res_query_t q = {.deployment_uuid = r->uuid};
    orc_resource_list_t l = {0};
    int rc = orc_store_resource_list(r->eng->store, &q, &l);

    if (rc < 0)
        return rc;
    for (size_t k = 0; k < l.count; k++) {
        struct nrun *n = node_by_name(r, l.items[k].node_name);
        struct inst *in;
        if (n == NULL || l.items[k].instance_index < 0 ||
            (size_t)l.items[k].instance_index >= n->ninst)
            continue;
        in = &n->inst[l.items[k].instance_index];
        memcpy(in->res_uuid, l.items[k].uuid, ORC_UUID_LEN);
        in->res_state = l.items[k].state;
        in->on_site = l.items[k].site_name != NULL;
        snprintf(in->site, sizeof(in->site), "%s",
                 l.items[k].site_name ? l.items[k].site_name : "");
        if (l.items[k].attributes)
            in->attrs = json_deep_copy(l.items[k].attributes);
    }
    orc_resource_list_clear(&l);
    for (size_t i = 0; i < r->nnodes && rc == 0; i++)
        for (size_t k = 0; k < r->nodes[i].ninst && rc == 0; k++) {
            struct inst *in = &r->nodes[i].inst[k];
            orc_resource_t res = {.instance_index = (int)k, .state = ORC_RES_INITIAL};
            if (in->res_uuid[0])
                continue;
            memcpy(res.deployment_uuid, r->uuid, ORC_UUID_LEN);
            res.node_name = (char *)r->nodes[i].name;
            res.node_type = (char *)r->nodes[i].type;
            res.physical_id = in->name;
            rc = orc_store_resource_insert(r->eng->store, &res);
            memcpy(in->res_uuid, res.uuid, ORC_UUID_LEN);
        }
    return rc;
}

static int run_new(struct orc_engine *eng, const char *uuid, enum run_what what,
                   struct run **out)
{
    struct run *r = orc_calloc(1, sizeof(*r));
    const json_t *nodes;
    int rc;

    if (r == NULL)
        return ORC_ENOMEM;
    r->eng = eng;
    r->what = what;
    snprintf(r->uuid, sizeof(r->uuid), "%s", uuid);
    uv_timer_init(eng->loop, &r->timer);
    r->timer.data = r;
    rc = orc_store_deployment_get(eng->store, uuid, &r->dep);
    if (rc < 0)
        goto out_free;
    r->plan = json_incref(r->dep->plan);
    nodes = json_object_get(r->plan, "nodes");
    r->nnodes = json_array_size(nodes);
    r->nodes = orc_calloc(r->nnodes ? r->nnodes : 1, sizeof(*r->nodes));
    rc = r->nodes ? 0 : ORC_ENOMEM;
    for (size_t i = 0; i < r->nnodes && rc == 0; i++)
        rc = build_node(r, &r->nodes[i], json_array_get(nodes, i));
    if (rc == 0)
        rc = link_nodes(r);
    if (rc == 0)
        rc = load_resources(r);
    if (rc < 0)
        goto out_free;
    r->next = eng->runs;
    eng->runs = r;
    *out = r;
    return 0;
out_free:
    run_free(r);
    return rc;
}

static void timer_closed(uv_handle_t *h)
{
    struct run *r = h->data;

    for (size_t i = 0; i < r->nnodes; i++) {
        for (size_t k = 0; k < r->nodes[i].ninst; k++) {
            orc_drv_op_reset(&r->nodes[i].inst[k].op);
            json_decref(r->nodes[i].inst[k].attrs);
        }
        orc_free(r->nodes[i].inst);
        orc_free(r->nodes[i].deps);
    }
    orc_free(r->nodes);
    for (size_t i = 0; i < r->nprobes; i++)
        orc_drv_op_reset(&r->probes[i].op);
    orc_free(r->probes);
    json_decref(r->plan);
    orc_deployment_free(r->dep);
    r->eng->closing_timers--;
    maybe_done(r->eng);
    orc_free(r);
}

static void run_free(struct run *r)
{
    struct run **pp = &r->eng->runs;

    while (*pp && *pp != r)
        pp = &(*pp)->next;
    if (*pp)
        *pp = r->next;
    r->eng->closing_timers++; /* handle closes pending, counted for close */
    uv_close((uv_handle_t *)&r->timer, timer_closed);
}

/* ---- finishing ---- */

static void finish(struct run *r, orc_dep_status_t st, const char *reason, json_t *outputs)
{
    orc_deployment_t v = {.status = st, .status_reason = (char *)reason, .outputs = outputs};
    orc_dep_update_t u = {.uuid = r->uuid, .set = ORC_DEP_F_STATUS | ORC_DEP_F_STATUS_REASON,
                          .values = &v};

    if (outputs)
        u.set |= ORC_DEP_F_OUTPUTS;
    if (st == ORC_DEP_CREATE_COMPLETE && r->site) {
        v.cloud_provider_name = (char *)r->site->def->name;
        u.set |= ORC_DEP_F_PROVIDER_NAME;
    }
    if (orc_store_deployment_update(r->eng->store, &u, NULL) < 0)
        orc_log(ORC_LOG_ERROR, LOG, "deployment %s: storing %s: %s", r->uuid,
                orc_dep_status_name(st), orc_store_errmsg(r->eng->store));
    else
        orc_log(ORC_LOG_INFO, LOG, "deployment %s: %s%s%s", r->uuid, orc_dep_status_name(st),
                reason ? ": " : "", reason ? reason : "");
    json_decref(outputs);
    r->phase = PH_DONE;
    notify(r);
    if (r->dep->callback)
        orc_engine_callback(r->eng, r->uuid);
    run_free(r);
}

static void fail_deployment(struct run *r)
{
    orc_attempt_list_t l = {0};
    char *reason = NULL;

    if (orc_store_attempt_list(r->eng->store, r->uuid, &l) == 0)
        reason = orc_attempt_list_reason(&l);
    orc_attempt_list_clear(&l);
    finish(r, ORC_DEP_CREATE_FAILED, reason && *reason ? reason : r->error, NULL);
    orc_free(reason);
}

/* ---- node actions ---- */

static json_t *attrs_of(const orc_op_t *op)
{
    json_t *o = json_object();

    for (uint32_t i = 0; o && i < op->nattrs; i++)
        json_object_set_new(o, op->attrs[i].key, json_string(op->attrs[i].value));
    return o;
}

/* An operation that ended because the engine is closing: nothing is stored,
 * the next start re-drives the deployment from what the store says. */
static bool stopped(struct run *r, orc_op_t *op)
{
    if (!r->stopping)
        return false;
    r->inflight--;
    orc_drv_op_reset(op);
    run_step(r);
    return true;
}

static void on_action(orc_op_t *op, int status)
{
    struct inst *in = op->data;
    struct run *r = in->node->run;
    bool workload = in->node->host != NULL;
    orc_resource_t v = {0};

    if (stopped(r, op))
        return;
    r->inflight--;
    if (status == 0 && op->exists == false && !workload)
        status = ORC_EDRIVER;
    if (status == 0 && in->node->kind == ORC_KIND_JOB && workload && op->exit_status != 0) {
        fail_attempt(r, "node %s[%u]: job exited with status %d", in->node->name, in->index,
                     op->exit_status);
        in->st = I_FAILED;
        set_res(r, in, ORC_RES_ERROR, false, 0, NULL);
    } else if (status < 0) {
        in->st = I_FAILED;
        if (status != ORC_ECANCELED || !r->failed)
            fail_attempt(r, "node %s[%u]: %s", in->node->name, in->index,
                         op->error[0] ? op->error : orc_strerror(status));
        set_res(r, in, ORC_RES_ERROR, false, 0, NULL);
    } else {
        in->st = I_DONE;
        json_decref(in->attrs);
        in->attrs = attrs_of(op);
        if (in->node->kind == ORC_KIND_JOB && workload && in->attrs)
            json_object_set_new(in->attrs, "exit_status", json_integer(op->exit_status));
        v.attributes = in->attrs;
        set_res(r, in, workload ? ORC_RES_STARTED : ORC_RES_CREATED, false,
                ORC_RES_F_ATTRIBUTES, &v);
    }
    orc_drv_op_reset(op);
    run_step(r);
}

static uint64_t jint(const json_t *o, const char *k)
{
    json_int_t v = json_integer_value(json_object_get(o, k));
    return v > 0 ? (uint64_t)v : 0;
}

static int provision(struct run *r, struct inst *in)
{
    const json_t *pn = in->node->plan_node, *c = json_object_get(pn, "compute");
    const json_t *props = json_object_get(pn, "properties");
    char *node_json = json_dumps(pn, JSON_COMPACT);
    struct orc_node_req req = {
        .deployment = r->uuid,
        .node = in->node->name,
        .index = in->index,
        .name = in->name,
        .kind = (enum orc_node_kind)in->node->kind,
        .type = in->node->type,
        .num_cpus = (uint32_t)jint(c, "num_cpus"),
        .mem_size = jint(c, "mem_size"),
        .disk_size = jint(c, "disk_size"),
        .num_gpus = (uint32_t)jint(c, "num_gpus"),
        .gpu_model = json_string_value(json_object_get(c, "gpu_model")),
        .gpu_vendor = json_string_value(json_object_get(c, "gpu_vendor")),
        .instance_type = json_string_value(json_object_get(c, "instance_type")),
        .image = json_string_value(json_object_get(props, "image")),
        .node_json = node_json,
    };
    int rc;

    if (req.gpu_model && !*req.gpu_model)
        req.gpu_model = NULL;
    rc = orc_drv_provision(r->site->site, &in->op, &req, on_action);
    free(node_json);
    return rc;
}

/* Environment of a workload: its `environment` property (values as text). */
static size_t workload_env(const json_t *props, struct orc_kv *env, size_t max, char **owned)
{
    const json_t *e = json_object_get(props, "environment"), *v;
    const char *k;
    size_t n = 0;

    json_object_foreach((json_t *)e, k, v)
    {
        if (n == max)
            break;
        env[n].key = k;
        if (json_is_string(v)) {
            env[n].value = json_string_value(v);
        } else {
            owned[n] = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            env[n].value = owned[n] ? owned[n] : "";
        }
        n++;
    }
    return n;
}

static int start_workload(struct run *r, struct inst *in)
{
    const json_t *props = json_object_get(in->node->plan_node, "properties");
    const char *command = json_string_value(json_object_get(props, "command"));
    struct nrun *host = in->node->host;
    struct inst *hin = &host->inst[in->index % (host->ninst ? host->ninst : 1)];
    const char *argv[] = {"/bin/sh", "-c", command, NULL};
    struct orc_kv env[64];
    char *owned[64] = {0}, workload[128], port[16];
    struct orc_exec_req req = {.name = hin->name, .workload = workload, .argv = argv, .env = env};
    int rc;

    if (command == NULL || !*command)
        return orc_op_failf(&in->op, ORC_EINVAL, "node %s has no command to run",
                            in->node->name);
    snprintf(workload, sizeof(workload), "%s-%u", in->node->name, in->index);
    req.nenv = workload_env(props, env, 63, owned);
    if (json_integer_value(json_object_get(props, "port")) > 0) {
        snprintf(port, sizeof(port), "%lld",
                 (long long)json_integer_value(json_object_get(props, "port")));
        env[req.nenv].key = "PORT";
        env[req.nenv++].value = port;
    }
    if (in->node->kind == ORC_KIND_JOB)
        rc = orc_drv_exec(r->site->site, &in->op, &req, on_action);
    else
        rc = orc_drv_start_workload(r->site->site, &in->op, &req, on_action);
    for (size_t i = 0; i < 64; i++)
        free(owned[i]);
    return rc;
}

/* A defer of one loop iteration for nodes with nothing to run. */
static void on_noop(orc_op_t *op, int status)
{
    orc_drv_op_reset(op); /* the answer is not about this node */
    on_action(op, status == ORC_ECANCELED ? status : 0);
}

static int start_action(struct run *r, struct inst *in)
{
    struct nrun *n = in->node;
    int rc;

    set_res(r, in, n->host ? ORC_RES_STARTING : ORC_RES_CREATING, true, 0, NULL);
    in->on_site = true;
    snprintf(in->site, sizeof(in->site), "%s", r->site->def->name);
    in->st = I_RUNNING;
    if (n->host && (n->kind == ORC_KIND_SERVICE || n->kind == ORC_KIND_JOB))
        rc = start_workload(r, in);
    else if (n->host || n->kind == ORC_KIND_SOFTWARE)
        /* lifecycle scripts of software components are run by gpu-agent on
         * the node (not in this build): the component counts as configured */
        rc = orc_drv_status(r->site->site, &in->op, in->name, on_noop);
    else
        rc = provision(r, in);
    if (rc < 0) {
        in->st = I_FAILED;
        fail_attempt(r, "node %s[%u]: %s", n->name, in->index,
                     in->op.error[0] ? in->op.error : orc_strerror(rc));
        set_res(r, in, ORC_RES_ERROR, false, 0, NULL);
        return rc;
    }
    r->inflight++;
    return 0;
}

/* ---- the DAG walk ---- */

static bool node_done(const struct nrun *n)
{
    for (size_t i = 0; i < n->ninst; i++)
        if (n->inst[i].st != I_DONE)
            return false;
    return true;
}

static bool node_ready(const struct nrun *n)
{
    for (size_t d = 0; d < n->ndeps; d++)
        if (!node_done(n->deps[d]))
            return false;
    return n->host == NULL || node_done(n->host);
}

static unsigned max_parallel(const struct run *r)
{
    return r->eng->opts.max_parallel_ops ? r->eng->opts.max_parallel_ops : DEFAULT_PARALLEL;
}

/* Starts what is ready; returns true when every instance is done. */
static bool schedule(struct run *r)
{
    bool all = true;

    for (size_t i = 0; i < r->nnodes; i++) {
        struct nrun *n = &r->nodes[i];
        bool can = node_ready(n);
        for (size_t k = 0; k < n->ninst; k++) {
            struct inst *in = &n->inst[k];
            all = all && in->st == I_DONE;
            if (in->st != I_PENDING || !can || r->failed || r->inflight >= max_parallel(r))
                continue;
            start_action(r, in);
        }
    }
    return all;
}

/* ---- cleanup of a failed attempt, and delete ---- */

static void on_deprovision(orc_op_t *op, int status)
{
    struct inst *in = op->data;
    struct run *r = in->node->run;
    orc_resource_t v = {0};

    if (stopped(r, op))
        return;
    r->inflight--;
    if (status < 0) {
        orc_log(ORC_LOG_WARN, LOG, "deployment %s: deprovision %s: %s", r->uuid, in->name,
                op->error[0] ? op->error : orc_strerror(status));
        snprintf(r->error + strlen(r->error), sizeof(r->error) - strlen(r->error),
                 "%scannot delete %s[%u]: %s", r->error[0] ? "; " : "", in->node->name,
                 in->index, op->error[0] ? op->error : orc_strerror(status));
        r->failed = true;
        set_res(r, in, ORC_RES_ERROR, false, 0, NULL);
    } else {
        in->on_site = false;
        in->st = I_PENDING;
        json_decref(in->attrs);
        in->attrs = NULL;
        /* back to INITIAL, placed nowhere: the next site starts afresh */
        v.state = ORC_RES_INITIAL;
        set_res(r, in, ORC_RES_INITIAL, false,
                ORC_RES_F_SITE | ORC_RES_F_PROVIDER | ORC_RES_F_ATTRIBUTES, &v);
    }
    orc_drv_op_reset(op);
    run_step(r);
}

/* Deprovisions what may exist: top-level nodes only (workloads go with
 * their host). Returns true when nothing is left to wait for. */
static bool deprovision_all(struct run *r)
{
    for (size_t i = 0; i < r->nnodes; i++) {
        struct nrun *n = &r->nodes[i];
        for (size_t k = 0; k < n->ninst; k++) {
            struct inst *in = &n->inst[k];
            struct engine_site *s = site_by_name(r->eng, in->site);
            if (!in->on_site || orc_drv_op_inflight(&in->op))
                continue;
            if (n->host || n->kind == ORC_KIND_SOFTWARE) {
                in->on_site = false;
                set_res(r, in, ORC_RES_INITIAL, false, ORC_RES_F_SITE | ORC_RES_F_PROVIDER,
                        &(orc_resource_t){0});
                continue;
            }
            if (s == NULL) { /* its site is gone: nothing we can reach */
                r->failed = true;
                snprintf(r->error, sizeof(r->error), "%s[%u] is on site '%s', which is not open",
                         n->name, in->index, in->site);
                continue;
            }
            set_res(r, in, ORC_RES_DELETING, false, 0, NULL);
            orc_drv_op_init(&in->op);
            in->op.data = in;
            if (orc_drv_deprovision(s->site, &in->op, in->name, on_deprovision) == 0)
                r->inflight++;
        }
    }
    return r->inflight == 0;
}

static void attempt_end(struct run *r, bool ok)
{
    if (r->timer_on) {
        uv_timer_stop(&r->timer);
        r->timer_on = false;
    }
    if (r->attempt_ended) /* re-driven after the end was stored */
        return;
    r->attempt_ended = true;
    if (orc_store_attempt_end(r->eng->store, r->uuid, r->attempt, ok, ok ? NULL : r->error) < 0)
        orc_log(ORC_LOG_ERROR, LOG, "deployment %s: storing attempt %d: %s", r->uuid,
                r->attempt, orc_store_errmsg(r->eng->store));
    notify(r);
}

static bool last_site(const struct run *r)
{
    if (r->dep->max_providers_retry > 0 && r->attempt >= r->dep->max_providers_retry)
        return true;
    return r->pos >= r->norder && !r->resumed;
}

static void after_cleanup(struct run *r)
{
    attempt_end(r, false);
    r->failed = false;
    r->error[0] = '\0';
    attempt_next(r);
}

/* ---- the step function: called after every completion ---- */

static void run_step(struct run *r)
{
    if (r->stopping) {
        if (r->inflight == 0)
            run_free(r);
        return;
    }
    if (r->phase == PH_DELETE) {
        if (deprovision_all(r)) {
            if (r->failed)
                finish(r, ORC_DEP_DELETE_FAILED, r->error, NULL);
            else if (orc_store_deployment_mark_deleted(r->eng->store, r->uuid, 0) == 0)
                finish(r, ORC_DEP_DELETE_COMPLETE, NULL, NULL);
            else
                finish(r, ORC_DEP_DELETE_FAILED, orc_store_errmsg(r->eng->store), NULL);
        }
        return;
    }
    if (r->phase == PH_CLEANUP) {
        if (r->inflight == 0)
            after_cleanup(r);
        return;
    }
    if (r->phase != PH_DEPLOY)
        return;
    if (r->failed) {
        if (r->inflight > 0)
            return;
        if (r->what == RUN_DELETE) { /* a delete arrived during the create */
            attempt_end(r, false);
            r->failed = false;
            r->phase = PH_DELETE;
            run_step(r);
            return;
        }
        if (last_site(r) && r->dep->keep_last_attempt) {
            attempt_end(r, false);
            fail_deployment(r);
            return;
        }
        r->phase = PH_CLEANUP;
        r->failed = false; /* cleanup errors are appended to r->error */
        if (deprovision_all(r))
            after_cleanup(r);
        return;
    }
    if (schedule(r) && r->inflight == 0) {
        attempt_end(r, true);
        finish(r, ORC_DEP_CREATE_COMPLETE, NULL, orc_engine_outputs(r));
    }
}

/* ---- site attempts ---- */

/* Milliseconds left before the deployment's overall deadline (timeoutMins,
 * counted from its creation); INT64_MAX when it has none. */
static int64_t overall_left(const struct run *r)
{
    int64_t left;

    if (r->dep->timeout_mins <= 0)
        return INT64_MAX;
    left = r->dep->created_ms + (int64_t)r->dep->timeout_mins * 60000 - orc_now_ms();
    return left > 0 ? left : 0;
}

static void on_deadline(uv_timer_t *t);

/* The attempt's deadline: providerTimeoutMins, or what is left of timeoutMins. */
static void start_deadline(struct run *r)
{
    int mins = r->dep->provider_timeout_mins > 0 ? r->dep->provider_timeout_mins
                                                 : ORC_DEFAULT_PROVIDER_TIMEOUT_MINS;
    int64_t ms = (int64_t)mins * 60000, left = overall_left(r);

    uv_timer_start(&r->timer, on_deadline, (uint64_t)(left < ms ? left : ms), 0);
    r->timer_on = true;
}

static void on_deadline(uv_timer_t *t)
{
    struct run *r = t->data;

    r->timer_on = false;
    if (overall_left(r) == 0) {
        r->pos = r->norder; /* no site is tried after this */
        r->resumed = false;
        fail_attempt(r, "no result after %d minutes (timeoutMins)", r->dep->timeout_mins);
    } else {
        fail_attempt(r, "no result after %d minutes (providerTimeoutMins)",
                     r->dep->provider_timeout_mins);
    }
    run_step(r);
}

static void attempt_next(struct run *r)
{
    if (last_site(r)) {
        fail_deployment(r);
        return;
    }
    if (r->pos >= r->norder) { /* resumed: rank the sites not tried yet */
        r->resumed = false;
        start_rank(r);
        return;
    }
    r->site = &r->eng->esites[r->order[r->pos++]];
    r->attempt++;
    r->attempt_ended = false;
    while (orc_store_attempt_start(r->eng->store, r->uuid, r->attempt, r->site->def->name) ==
           ORC_ECONFLICT)
        r->attempt++; /* numbers of an earlier life of this deployment */
    orc_log(ORC_LOG_INFO, LOG, "deployment %s: attempt %d on site %s", r->uuid, r->attempt,
            r->site->def->name);
    for (size_t i = 0; i < r->nnodes; i++)
        for (size_t k = 0; k < r->nodes[i].ninst; k++)
            r->nodes[i].inst[k].st = I_PENDING;
    r->phase = PH_DEPLOY;
    start_deadline(r);
    notify(r);
    run_step(r);
}

/* ---- ranking ---- */

/* Keeps the ranked sites (probe indices) that no earlier attempt used. */
static size_t drop_tried(struct run *r, size_t *order, size_t n)
{
    orc_attempt_list_t l = {0};
    size_t kept = 0;

    if (orc_store_attempt_list(r->eng->store, r->uuid, &l) < 0 || l.count == 0) {
        orc_attempt_list_clear(&l);
        return n;
    }
    for (size_t i = 0; i < n; i++) {
        bool tried = false;
        for (size_t k = 0; k < l.count && !tried; k++)
            tried = strcmp(l.items[k].site_name, r->probes[order[i]].site->def->name) == 0;
        if (!tried)
            order[kept++] = order[i];
    }
    orc_attempt_list_clear(&l);
    return kept;
}

static void rank_now(struct run *r)
{
    struct orc_rank_site sites[64];
    struct orc_rank_need need;
    char reason[440];
    size_t n = 0;

    if (r->what == RUN_DELETE) { /* deleted while ranking: nothing was made */
        for (size_t i = 0; i < r->nprobes; i++)
            orc_drv_op_reset(&r->probes[i].op);
        orc_free(r->probes);
        r->probes = NULL;
        r->nprobes = 0;
        r->phase = PH_DELETE;
        run_step(r);
        return;
    }
    orc_rank_need_from_plan(r->plan, &need);
    for (size_t i = 0; i < r->nprobes && n < 64; i++) {
        struct rank_probe *p = &r->probes[i];
        sites[n].name = p->site->def->name;
        sites[n].priority = p->site->def->priority;
        sites[n].caps = p->site->site->drv->vt.caps;
        sites[n].pools = p->answered ? p->op.pools : NULL;
        sites[n].npools = p->answered ? p->op.npools : 0;
        n++;
    }
    r->norder = orc_rank_sites(&need, sites, n, r->order, reason, sizeof(reason));
    r->norder = drop_tried(r, r->order, r->norder);
    r->pos = 0;
    /* order holds probe indices: map them to engine sites */
    for (size_t i = 0; i < r->norder; i++)
        r->order[i] = (size_t)(r->probes[r->order[i]].site - r->eng->esites);
    for (size_t i = 0; i < r->nprobes; i++)
        orc_drv_op_reset(&r->probes[i].op);
    orc_free(r->probes);
    r->probes = NULL;
    r->nprobes = 0;
    if (r->norder == 0) {
        snprintf(r->error, sizeof(r->error), "no site can run this deployment: %s", reason);
        finish(r, ORC_DEP_CREATE_FAILED, r->error, NULL);
        return;
    }
    attempt_next(r);
}

static void on_inventory(orc_op_t *op, int status)
{
    struct rank_probe *p = op->data;
    struct run *r = p->run;

    p->answered = status == 0;
    if (--r->probes_pending == 0) {
        if (r->stopping)
            run_step(r);
        else
            rank_now(r);
    }
}

static void start_rank(struct run *r)
{
    r->phase = PH_RANK;
    r->probes = orc_calloc(r->eng->nsites ? r->eng->nsites : 1, sizeof(*r->probes));
    if (r->probes == NULL) {
        finish(r, ORC_DEP_CREATE_FAILED, "out of memory while ranking sites", NULL);
        return;
    }
    for (size_t i = 0; i < r->eng->nsites; i++) {
        struct rank_probe *p = &r->probes[r->nprobes];
        if (!r->eng->esites[i].open)
            continue;
        p->run = r;
        p->site = &r->eng->esites[i];
        orc_drv_op_init(&p->op);
        p->op.data = p;
        r->nprobes++;
        if (orc_drv_inventory(p->site->site, &p->op, on_inventory) == 0)
            r->probes_pending++;
    }
    if (r->probes_pending == 0)
        rank_now(r);
}

/* A create re-driven after a restart goes back to the site of its running
 * attempt: provision is idempotent by name, so what exists is found again. */
static bool resume_attempt(struct run *r)
{
    orc_attempt_list_t l = {0};
    bool resumed = false;

    if (orc_store_attempt_list(r->eng->store, r->uuid, &l) < 0 || l.count == 0)
        return false;
    r->attempt = l.items[l.count - 1].attempt;
    /* a running attempt, or one that succeeded just before the stop (the
     * deployment's own status was not stored yet): go back to its site */
    r->attempt_ended = l.items[l.count - 1].result == ORC_ATTEMPT_OK;
    if (l.items[l.count - 1].result != ORC_ATTEMPT_FAILED) {
        struct engine_site *s = site_by_name(r->eng, l.items[l.count - 1].site_name);
        if (s) {
            r->site = s;
            r->order[0] = (size_t)(s - r->eng->esites);
            r->norder = 1;
            r->pos = 1;
            r->resumed = true;
            r->phase = PH_DEPLOY;
            start_deadline(r);
            resumed = true;
        } else {
            orc_store_attempt_end(r->eng->store, r->uuid, r->attempt, false,
                                  "the site is no longer available");
        }
    }
    orc_attempt_list_clear(&l);
    if (resumed) {
        for (size_t i = 0; i < r->nnodes; i++)
            for (size_t k = 0; k < r->nodes[i].ninst; k++)
                r->nodes[i].inst[k].st = I_PENDING;
        run_step(r);
    }
    return resumed;
}

/* ---- public ---- */

int orc_engine_create(struct orc_engine *eng, const char *uuid)
{
    struct run *r;
    int rc;

    if (find_run(eng, uuid))
        return ORC_ECONFLICT;
    if (!eng->started)
        return 0; /* stored: the start picks it up with the others in progress */
    rc = run_new(eng, uuid, RUN_CREATE, &r);
    if (rc < 0)
        return rc;
    if (r->dep->status != ORC_DEP_CREATE_IN_PROGRESS || r->plan == NULL) {
        run_free(r);
        return ORC_ECONFLICT;
    }
    if (!resume_attempt(r))
        start_rank(r);
    return 0;
}

int orc_engine_delete(struct orc_engine *eng, const char *uuid)
{
    struct run *r = find_run(eng, uuid);
    int rc;

    if (r && r->what == RUN_DELETE)
        return ORC_ECONFLICT;
    if (!eng->started)
        return 0; /* stored as DELETE_IN_PROGRESS: the start resumes it */
    if (r) { /* stop the create, then delete what it made */
        r->what = RUN_DELETE;
        if (r->phase == PH_DEPLOY || r->phase == PH_CLEANUP) {
            fail_attempt(r, "deleted by the user");
            run_step(r);
        }
        return 0;
    }
    rc = run_new(eng, uuid, RUN_DELETE, &r);
    if (rc < 0)
        return rc;
    r->phase = PH_DELETE;
    run_step(r);
    return 0;
}

bool orc_engine_busy(const struct orc_engine *eng, const char *uuid)
{
    return find_run(eng, uuid) != NULL;
}

size_t orc_engine_active(const struct orc_engine *eng)
{
    size_t n = 0;

    for (const struct run *r = eng->runs; r; r = r->next)
        n++;
    return n;
}

/* ---- the engine: sites, start, resume, close ---- */

int orc_engine_new(uv_loop_t *loop, orc_store_t *store, struct orc_drv_registry *reg,
                   const struct orc_sites *sites, const struct orc_engine_opts *opts,
                   struct orc_engine **out)
{
    struct orc_engine *eng = orc_calloc(1, sizeof(*eng));

    *out = NULL;
    if (eng == NULL)
        return ORC_ENOMEM;
    eng->loop = loop;
    eng->store = store;
    eng->reg = reg;
    eng->sites = sites;
    if (opts)
        eng->opts = *opts;
    eng->esites = orc_calloc(sites->count ? sites->count : 1, sizeof(*eng->esites));
    if (eng->esites == NULL || orc_http_new(loop, &eng->http) < 0) {
        orc_free(eng->esites);
        orc_free(eng);
        return ORC_ENOMEM;
    }
    *out = eng;
    return 0;
}

static void resume_all(struct orc_engine *eng)
{
    orc_deployment_list_t l = {0};

    if (orc_store_deployment_list_in_status(eng->store, ORC_DEP_MASK_IN_PROGRESS, &l) < 0) {
        orc_log(ORC_LOG_ERROR, LOG, "cannot list deployments to resume: %s",
                orc_store_errmsg(eng->store));
        return;
    }
    eng->started = true;
    for (size_t i = 0; i < l.count; i++) {
        const orc_deployment_t *d = &l.items[i];
        int rc;
        if (find_run(eng, d->uuid))
            continue; /* already running */
        rc = d->status == ORC_DEP_DELETE_IN_PROGRESS ? orc_engine_delete(eng, d->uuid)
                                                      : orc_engine_create(eng, d->uuid);
        orc_log(rc < 0 ? ORC_LOG_ERROR : ORC_LOG_INFO, LOG, "resuming %s (%s): %s", d->uuid,
                orc_dep_status_name(d->status), rc < 0 ? orc_strerror(rc) : "ok");
        if ((rc == ORC_EFORMAT || rc == ORC_ENOTFOUND) &&
            d->status == ORC_DEP_CREATE_IN_PROGRESS)
            orc_store_deployment_set_status(eng->store, d->uuid, 0, ORC_DEP_CREATE_FAILED,
                                            "its stored plan cannot be read", NULL);
    }
    orc_deployment_list_clear(&l);
}

static void on_site_closed(orc_op_t *op, int status);

/* A site whose open completes while the engine is closing: close it now. */
static void close_late_site(struct orc_engine *eng, struct engine_site *s)
{
    if (s->open) {
        orc_drv_op_init(&s->op);
        s->op.data = s;
        if (orc_drv_site_close(s->site, &s->op, on_site_closed) == 0)
            return; /* closing_sites counted it already */
    }
    orc_drv_site_free(s->site);
    s->site = NULL;
    s->open = false;
    eng->closing_sites--;
    maybe_done(eng);
}

static void on_site_open(orc_op_t *op, int status)
{
    struct engine_site *s = op->data;
    struct orc_engine *eng = s->eng;

    s->opening = false;
    if (eng->closing) {
        s->open = status == 0;
        orc_drv_op_reset(op);
        eng->opening--;
        close_late_site(eng, s);
        return;
    }

    s->open = status == 0;
    if (status < 0)
        orc_log(ORC_LOG_ERROR, LOG, "site %s (driver %s) did not open: %s", s->def->name,
                s->def->driver, op->error[0] ? op->error : orc_strerror(status));
    else
        orc_log(ORC_LOG_INFO, LOG, "site %s open (driver %s)", s->def->name, s->def->driver);
    orc_drv_op_reset(op);
    if (--eng->opening == 0) {
        resume_all(eng);
        if (eng->ready)
            eng->ready(eng, eng->ready_ud);
    }
}

static void open_site(struct orc_engine *eng, struct engine_site *s)
{
    struct orc_site_conf conf = orc_site_def_conf(s->def);
    int rc = orc_drv_site_new(eng->reg, s->def->driver, &conf, &s->site);

    if (rc == 0) {
        orc_drv_op_init(&s->op);
        s->op.data = s;
        rc = orc_drv_site_open(s->site, &s->op, on_site_open);
    }
    if (rc == 0) {
        s->opening = true;
        eng->opening++;
        return;
    }
    orc_log(ORC_LOG_ERROR, LOG, "site %s (driver %s) cannot open: %s", s->def->name,
            s->def->driver, s->op.error[0] ? s->op.error : orc_strerror(rc));
}

static void idle_closed(uv_handle_t *h)
{
    struct orc_engine *eng = h->data;

    orc_free(h);
    eng->closing_timers--;
    maybe_done(eng);
}

static void close_ready_idle(struct orc_engine *eng)
{
    if (eng->ready_idle == NULL)
        return;
    uv_idle_stop(eng->ready_idle);
    eng->closing_timers++;
    uv_close((uv_handle_t *)eng->ready_idle, idle_closed);
    eng->ready_idle = NULL;
}

static void on_ready_idle(uv_idle_t *h)
{
    struct orc_engine *eng = h->data;

    close_ready_idle(eng);
    resume_all(eng);
    if (eng->ready)
        eng->ready(eng, eng->ready_ud);
}

int orc_engine_start(struct orc_engine *eng, orc_engine_done_fn ready, void *ud)
{
    eng->ready = ready;
    eng->ready_ud = ud;
    for (size_t i = 0; i < eng->sites->count; i++) {
        struct engine_site *s = &eng->esites[eng->nsites++];
        s->def = &eng->sites->items[i];
        s->eng = eng;
        if (s->def->enabled)
            open_site(eng, s);
    }
    if (eng->opening == 0) { /* nothing to wait for: still answer later */
        uv_idle_t *idle = orc_calloc(1, sizeof(*idle));
        if (idle == NULL)
            return ORC_ENOMEM;
        uv_idle_init(eng->loop, idle);
        idle->data = eng;
        uv_idle_start(idle, on_ready_idle);
        eng->ready_idle = idle;
    }
    return 0;
}

size_t orc_engine_site_count(const struct orc_engine *eng)
{
    size_t n = 0;

    for (size_t i = 0; i < eng->nsites; i++)
        n += eng->esites[i].open;
    return n;
}

const char *orc_engine_site_name(const struct orc_engine *eng, size_t i)
{
    for (size_t k = 0; k < eng->nsites; k++)
        if (eng->esites[k].open && i-- == 0)
            return eng->esites[k].def->name;
    return NULL;
}

/* Closed when the sites, the runs, the callbacks and the http client are. */
void orc__engine_maybe_done(struct orc_engine *eng)
{
    if (eng->closing && eng->closing_sites == 0 && eng->closing_timers == 0 &&
        eng->runs == NULL && eng->callbacks == NULL && eng->http == NULL && eng->done) {
        orc_engine_done_fn done = eng->done;
        eng->done = NULL;
        done(eng, eng->done_ud);
    }
}

static void on_site_closed(orc_op_t *op, int status)
{
    struct engine_site *s = op->data;
    struct orc_engine *eng = s->eng;

    (void)status;
    s->open = false;
    orc_drv_op_reset(op);
    orc_drv_site_free(s->site);
    s->site = NULL;
    eng->closing_sites--;
    maybe_done(eng);
}

static void close_sites(struct orc_engine *eng)
{
    for (size_t i = 0; i < eng->nsites; i++) {
        struct engine_site *s = &eng->esites[i];
        if (s->site == NULL)
            continue;
        if (s->opening) { /* closed when its open completes */
            eng->closing_sites++;
            continue;
        }
        if (!s->open) {
            orc_drv_site_free(s->site);
            s->site = NULL;
            continue;
        }
        orc_drv_op_init(&s->op);
        s->op.data = s;
        if (orc_drv_site_close(s->site, &s->op, on_site_closed) == 0)
            eng->closing_sites++;
    }
    maybe_done(eng);
}

static void on_http_closed(void *ud)
{
    struct orc_engine *eng = ud;

    eng->http = NULL;
    eng->closing_timers--;
    maybe_done(eng);
}

int orc_engine_close(struct orc_engine *eng, orc_engine_done_fn done, void *ud)
{
    eng->closing = true;
    eng->done = done;
    eng->done_ud = ud;
    /* runs stop where they are: the store keeps them in progress for the
     * next start; site_close cancels their operations in flight */
    for (struct run *r = eng->runs; r; r = r->next) {
        r->stopping = true;
        if (r->timer_on) {
            uv_timer_stop(&r->timer);
            r->timer_on = false;
        }
    }
    for (struct run *r = eng->runs, *next; r; r = next) {
        next = r->next;
        if (r->inflight == 0 && r->probes_pending == 0)
            run_free(r);
    }
    close_ready_idle(eng);
    orc_engine_callbacks_close(eng);
    eng->closing_timers++;
    orc_http_close(eng->http, on_http_closed, eng);
    close_sites(eng); /* cancels what is in flight: those runs free themselves */
    return 0;
}

void orc_engine_free(struct orc_engine *eng)
{
    if (eng == NULL)
        return;
    orc_free(eng->esites);
    orc_free(eng);
}
