/*
 * Runs of the deployment engine (engine.h): one struct run per deployment
 * the engine works on: a create with its site attempts (ranking, the node
 * DAG, cleanup, failover), an update (scale-in, then the DAG of what to
 * create, restart or replace), a delete, or a user action on one resource.
 * Every driver call goes through drivers.h and every transition is stored
 * (store.h) before the engine acts on it, so that a restart re-drives from
 * the store. What a run works on comes from instances.c.
 */
#include <stdio.h>
#include <string.h>

#include "engine_int.h"
#include "http_client.h"

#define LOG "engine"

/* A line of the engine's log about run r: its deployment, its site once it has one, and
 * the node instance in ("vm[0]") when not NULL. */
static void run_log(const struct run *r, orc_log_level_t level, const struct inst *in,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void run_log(const struct run *r, orc_log_level_t level, const struct inst *in,
                    const char *fmt, ...)
{
    orc_log_ctx_t ctx = {.deployment = r->uuid, .site = r->site ? r->site->def->name : NULL};
    char msg[1536], node[ORC_DRV_NAME_LEN + 16];
    va_list ap;

    if (in != NULL) {
        snprintf(node, sizeof(node), "%s[%u]", in->node->name, in->index);
        ctx.node = node;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    orc_log_ctx(level, LOG, &ctx, "%s", msg);
}
#define DEFAULT_PARALLEL 8

static void run_step(struct run *r);
#define run_free orc__run_free
#define maybe_done orc__engine_maybe_done
static void attempt_next(struct run *r);
static void start_rank(struct run *r);
static void call_after_commit(struct run *r, struct inst *in, enum inst_call call);

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
    {
        char *masked = orc_engine_mask_text(r->secrets, r->error); /* drivers quote values */
        if (masked)
            snprintf(r->error, sizeof(r->error), "%s", masked);
        free(masked);
    }
    run_log(r, ORC_LOG_WARN, NULL, "%s", r->error);
    for (size_t n = 0; n < r->nnodes; n++)
        for (size_t i = 0; i < r->nodes[n].ninst; i++)
            if (orc_drv_op_inflight(&r->nodes[n].inst[i].op) && r->site)
                orc_drv_cancel(r->site->site, &r->nodes[n].inst[i].op);
}

/* ---- the engine's runs: a list, and an index by uuid (tens of thousands
 * can be in flight: no lookup walks them) ---- */

static size_t uuid_bucket(const char *uuid, size_t size)
{
    uint64_t h = 1469598103934665603ull;

    for (; *uuid; uuid++)
        h = (h ^ (unsigned char)*uuid) * 1099511628211ull;
    return (size_t)(h % size);
}

struct run *orc__engine_find_run(const struct orc_engine *eng, const char *uuid)
{
    if (eng->rindex_size == 0)
        return NULL;
    for (struct run *r = eng->rindex[uuid_bucket(uuid, eng->rindex_size)]; r; r = r->hnext)
        if (strcmp(r->uuid, uuid) == 0)
            return r;
    return NULL;
}

/* Doubles the index when it holds twice as many runs as buckets. */
static int index_grow(struct orc_engine *eng)
{
    size_t size = eng->rindex_size ? eng->rindex_size * 2 : 256;
    struct run **idx;

    if (eng->rindex_size > 0 && eng->nruns < eng->rindex_size * 2)
        return 0;
    idx = orc_calloc(size, sizeof(*idx));
    if (idx == NULL)
        return ORC_ENOMEM;
    for (struct run *r = eng->runs; r; r = r->next) {
        size_t b = uuid_bucket(r->uuid, size);
        r->hnext = idx[b];
        idx[b] = r;
    }
    orc_free(eng->rindex);
    eng->rindex = idx;
    eng->rindex_size = size;
    return 0;
}

static int runs_add(struct orc_engine *eng, struct run *r)
{
    size_t b;
    int rc = index_grow(eng);

    if (rc < 0)
        return rc;
    b = uuid_bucket(r->uuid, eng->rindex_size);
    r->hnext = eng->rindex[b];
    eng->rindex[b] = r;
    r->prev = NULL;
    r->next = eng->runs;
    if (eng->runs)
        eng->runs->prev = r;
    eng->runs = r;
    r->listed = true;
    eng->nruns++;
    return 0;
}

/* Off the list and the index; nothing when it is not on them. */
static void runs_remove(struct orc_engine *eng, struct run *r)
{
    struct run **pp;

    if (!r->listed)
        return;
    pp = &eng->rindex[uuid_bucket(r->uuid, eng->rindex_size)];
    while (*pp != r)
        pp = &(*pp)->hnext;
    *pp = r->hnext;
    if (r->prev)
        r->prev->next = r->next;
    else
        eng->runs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = r->hnext = NULL;
    r->listed = false;
    eng->nruns--;
}

static struct engine_site *site_by_name(struct orc_engine *eng, const char *name)
{
    for (size_t i = 0; name && i < eng->nsites; i++)
        if (!eng->esites[i]->removed && strcmp(eng->esites[i]->def->name, name) == 0)
            return eng->esites[i]->open ? eng->esites[i] : NULL;
    return NULL;
}

static int set_res_msg(struct run *r, struct inst *in, orc_res_state_t st, bool with_site,
                       unsigned extra, const orc_resource_t *vals, const char *message)
{
    char *masked = orc_engine_mask_text(r->secrets, message);
    orc_resource_t v;
    orc_res_update_t u = {.uuid = in->res_uuid,
                          .set = ORC_RES_F_STATE | extra,
                          .values = &v,
                          .event_message = masked ? masked : message};
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
    free(masked);
    if (rc < 0)
        run_log(r, ORC_LOG_ERROR, in, "storing %s: %s", in->name, orc_store_errmsg(r->eng->store));
    in->res_state = st;
    notify(r);
    return rc;
}

static int set_res(struct run *r, struct inst *in, orc_res_state_t st, bool with_site,
                   unsigned extra, const orc_resource_t *vals)
{
    return set_res_msg(r, in, st, with_site, extra, vals, NULL);
}

/* A node instance is up: STARTED with its attributes, the specification it
 * runs and what it is at its provider. */
static void store_up(struct run *r, struct inst *in)
{
    char pid[ORC_DRV_NAME_LEN + WORKLOAD_LEN + 2];
    orc_resource_t v = {.attributes = in->attrs, .spec = in->node->spec, .physical_id = pid};

    orc__inst_physical_id(in, pid, sizeof(pid));
    snprintf(in->spec, sizeof(in->spec), "%s", in->node->spec);
    set_res(r, in, ORC_RES_STARTED, false,
            ORC_RES_F_ATTRIBUTES | ORC_RES_F_SPEC | ORC_RES_F_PHYSICAL_ID, &v);
}

/* After the build the run keeps no JSON of the deployment: its memory is
 * the per-node fields and instances (docs/performance.md). */
static void drop_spec(struct run *r)
{
    r->planned = r->plan != NULL;
    r->secrets = orc_engine_secret_values(r->plan ? r->plan : r->dep->plan);
    json_decref(r->plan);
    r->plan = NULL;
    orc_free(r->dep->template_text);
    r->dep->template_text = NULL;
    json_decref(r->dep->parameters);
    r->dep->parameters = NULL;
    json_decref(r->dep->plan);
    r->dep->plan = NULL;
    json_decref(r->dep->outputs);
    r->dep->outputs = NULL;
}

/* A run of a stored deployment. plan: the deployment's plan when the caller
 * has it at hand (it was just stored), else NULL: read from the store. */
static int run_new_planned(struct orc_engine *eng, const char *uuid, enum run_what what,
                           json_t *plan, struct run **out)
{
    struct run *r = orc_calloc(1, sizeof(*r));
    int rc;

    if (r == NULL)
        return ORC_ENOMEM;
    r->eng = eng;
    r->what = what;
    snprintf(r->uuid, sizeof(r->uuid), "%s", uuid);
    uv_timer_init(eng->loop, &r->timer);
    r->timer.data = r;
    rc = plan ? orc_store_deployment_get_head(eng->store, uuid, &r->dep)
              : orc_store_deployment_get(eng->store, uuid, &r->dep);
    if (rc < 0)
        goto out_free;
    r->plan = json_incref(plan ? plan : r->dep->plan);
    rc = orc__run_build(r);
    drop_spec(r);
    if (rc < 0)
        goto out_free;
    rc = runs_add(eng, r);
    if (rc < 0)
        goto out_free;
    *out = r;
    return 0;
out_free:
    run_free(r);
    return rc;
}

static int run_new(struct orc_engine *eng, const char *uuid, enum run_what what, struct run **out)
{
    return run_new_planned(eng, uuid, what, NULL, out);
}

static void timer_closed(uv_handle_t *h)
{
    struct run *r = h->data;

    orc__run_nodes_free(r);
    if (r->abandoned)
        r->eng->abandoned--;
    for (size_t i = 0; i < r->nprobes; i++)
        orc_drv_op_reset(&r->probes[i].op);
    orc_free(r->probes);
    json_decref(r->plan);
    orc_engine_secret_values_free(r->secrets);
    orc_deployment_free(r->dep);
    r->eng->closing_timers--;
    maybe_done(r->eng);
    orc_free(r);
}

void orc__run_free(struct run *r)
{
    if (!r->stopping && !r->abandoned) /* ended: another daemon may take it from here */
        orc__lease_release(r->eng, r->uuid);
    runs_remove(r->eng, r);
    r->eng->closing_timers++; /* handle closes pending, counted for close */
    uv_close((uv_handle_t *)&r->timer, timer_closed);
}

/* ---- finishing ---- */

/* The outputs, evaluated with the plan read again (the run keeps none). */
static json_t *run_outputs(struct run *r)
{
    orc_deployment_t *d = NULL;
    json_t *out;

    if (!r->has_outputs)
        return json_object();
    if (orc_store_deployment_get(r->eng->store, r->uuid, &d) < 0) {
        run_log(r, ORC_LOG_ERROR, NULL, "reading its plan for the outputs: %s",
                orc_store_errmsg(r->eng->store));
        return json_object();
    }
    out = orc_engine_outputs(r, d->plan);
    orc_deployment_free(d);
    return out;
}

static void finish(struct run *r, orc_dep_status_t st, const char *reason_in, json_t *outputs)
{
    char *masked = orc_engine_mask_text(r->secrets, reason_in);
    const char *reason = masked ? masked : reason_in;
    orc_deployment_t v = {.status = st, .status_reason = (char *)reason, .outputs = outputs};
    orc_dep_update_t u = {
        .uuid = r->uuid, .set = ORC_DEP_F_STATUS | ORC_DEP_F_STATUS_REASON, .values = &v};

    if (outputs)
        u.set |= ORC_DEP_F_OUTPUTS;
    if (st == ORC_DEP_CREATE_COMPLETE && r->site) {
        v.cloud_provider_name = (char *)r->site->def->name;
        u.set |= ORC_DEP_F_PROVIDER_NAME;
    }
    if (orc_store_deployment_update(r->eng->store, &u, NULL) < 0)
        run_log(r, ORC_LOG_ERROR, NULL, "storing %s: %s", orc_dep_status_name(st),
                orc_store_errmsg(r->eng->store));
    else
        run_log(r, ORC_LOG_INFO, NULL, "%s%s%s", orc_dep_status_name(st), reason ? ": " : "",
                reason ? reason : "");
    free(masked);
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

/* CREATE_COMPLETE (or UPDATE_COMPLETE); after a failover, statusReason says where the
 * deployment runs and why the sites before failed. */
static void complete_deployment(struct run *r)
{
    orc_attempt_list_t l = {0};
    char *failed = NULL, *reason = NULL;

    if (r->what != RUN_UPDATE && orc_store_attempt_list(r->eng->store, r->uuid, &l) == 0)
        failed = orc_attempt_list_reason(&l);
    orc_attempt_list_clear(&l);
    if (failed && *failed && r->site)
        reason = orc_asprintf("running on site %s after failover; earlier attempts: %s",
                              r->site->def->name, failed);
    orc_free(failed);
    finish(r, r->what == RUN_UPDATE ? ORC_DEP_UPDATE_COMPLETE : ORC_DEP_CREATE_COMPLETE, reason,
           run_outputs(r));
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

/* An instance's operation failed: the attempt fails with this error unless
 * it is a cancel that follows an earlier failure (that one says why). */
static void inst_failed(struct run *r, struct inst *in, int status, const char *what)
{
    in->st = I_FAILED;
    if (status != ORC_ECANCELED || !r->failed)
        fail_attempt(r, "node %s[%u]: %s%s", in->node->name, in->index, what,
                     in->op.error[0] ? in->op.error : orc_strerror(status));
    set_res(r, in, ORC_RES_ERROR, false, 0, NULL);
}

static void on_action(orc_op_t *op, int status)
{
    struct inst *in = op->data;
    struct run *r = in->node->run;
    bool workload = in->node->hosted;

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
        inst_failed(r, in, status, "");
    } else {
        json_t *fresh = attrs_of(op);
        in->st = I_DONE;
        orc__agent_keep_attrs(in->attrs, fresh);
        json_decref(in->attrs);
        in->attrs = fresh;
        if (in->node->kind == ORC_KIND_JOB && workload && in->attrs)
            json_object_set_new(in->attrs, "exit_status", json_integer(op->exit_status));
        store_up(r, in);
        orc__usage_started(r, in);
    }
    orc_drv_op_reset(op);
    run_step(r);
}

/* What a compute instance exposes: its endpoint capability's ports and those of the
 * services it hosts; a public address when the node wants one (node_fields). */
static size_t exposed(struct run *r, const struct inst *in, uint16_t ports[32], bool *public_ip)
{
    const struct node_fields *f = &in->node->f;
    size_t n = 0;

    for (size_t i = 0; i < f->nports && n < 32; i++)
        ports[n++] = f->ports[i];
    for (size_t i = 0; i < r->nnodes && n < 32; i++) {
        const struct nrun *w = &r->nodes[i];
        bool dup = false;
        if (w->top != in->node || w->f.port == 0 || w->orphan)
            continue;
        for (size_t k = 0; k < n; k++)
            dup = dup || ports[k] == w->f.port;
        if (!dup)
            ports[n++] = w->f.port;
    }
    *public_ip = f->public_ip;
    return n;
}

static int provision(struct run *r, struct inst *in)
{
    const struct node_fields *f = &in->node->f;
    struct orc_node_req req = {
        .deployment = r->uuid,
        .node = in->node->name,
        .index = in->index,
        .name = in->name,
        .kind = (enum orc_node_kind)in->node->kind,
        .type = in->node->type,
        .num_cpus = f->num_cpus,
        .mem_size = f->mem_size,
        .disk_size = f->disk_size,
        .num_gpus = f->num_gpus,
        .gpu_model = f->gpu_model,
        .gpu_vendor = f->gpu_vendor,
        .instance_type = f->instance_type,
        .image = f->image,
        .node_json = (r->site->site->drv->vt.caps & ORC_DRV_CAP_NODE_JSON) ? f->node_json : NULL,
    };
    char *boot = NULL;
    uint16_t ports[32];
    int rc;

    if (in->node->kind == ORC_KIND_COMPUTE) {
        req.nports = exposed(r, in, ports, &req.public_ip);
        req.ports = ports;
    } else if (f->port) {
        req.ports = &f->port;
        req.nports = 1;
    }
    if ((r->site->site->drv->vt.caps & ORC_DRV_CAP_AGENT_BOOT) && in->node->kind == ORC_KIND_COMPUTE &&
        (boot = orc__boot_spec(r, in)) == NULL)
        return orc_op_failf(&in->op, ORC_ENOMEM, "out of memory");
    req.boot_json = boot;
    rc = orc_drv_provision(r->site->site, &in->op, &req, on_action);
    orc_free(boot);
    return rc;
}

/* Starts a hosted service (or runs a hosted job) on the compute instance
 * with the same index. */
/* The environment of a workload: the template's, PORT, the agent's variables. How many
 * pairs went into env (72 of room); port and token hold their texts. */
static size_t workload_env(struct run *r, struct inst *in, struct orc_kv env[72], char port[16],
                           char token[ORC_AGENT_TOKEN_LEN])
{
    const struct node_fields *f = &in->node->f;
    size_t n;

    for (n = 0; n < f->nenv && n < 64; n++)
        env[n] = f->env[n];
    if (f->port) {
        snprintf(port, 16, "%u", f->port);
        env[n].key = "PORT";
        env[n++].value = port;
    }
    return n + orc__agent_env(r, in, env + n, 72 - n, token);
}

static int start_workload(struct run *r, struct inst *in, orc_op_cb cb)
{
    const struct node_fields *f = &in->node->f;
    const char *argv[] = {"/bin/sh", "-c", f->command, NULL};
    struct orc_kv env[72];
    char port[16], token[ORC_AGENT_TOKEN_LEN];
    struct orc_exec_req req = {
        .name = in->host_name, .workload = in->workload, .argv = argv, .env = env};
    int rc;

    if (f->command == NULL)
        return orc_op_failf(&in->op, ORC_EINVAL, "node %s has no command to run", in->node->name);
    req.nenv = workload_env(r, in, env, port, token);
    if (f->port) {
        req.port = f->port;
        req.ready_path = f->ready_path;
    }
    if (in->node->kind == ORC_KIND_JOB)
        rc = orc_drv_exec(r->site->site, &in->op, &req, cb);
    else
        rc = orc_drv_start_workload(r->site->site, &in->op, &req, cb);
    return rc;
}

/* A defer of one loop iteration for nodes with nothing to run. */
static void on_noop(orc_op_t *op, int status)
{
    orc_drv_op_reset(op); /* the answer is not about this node */
    on_action(op, status == ORC_ECANCELED ? status : 0);
}

static bool is_workload(const struct nrun *n)
{
    return n->hosted && (n->kind == ORC_KIND_SERVICE || n->kind == ORC_KIND_JOB);
}

static json_t *boot_workload(struct run *r, struct inst *in)
{
    const struct node_fields *f = &in->node->f;
    struct orc_kv env[72];
    char port[16], token[ORC_AGENT_TOKEN_LEN];
    size_t n = workload_env(r, in, env, port, token);
    json_t *jenv = json_object();
    json_t *w = json_pack("{ss ss ss s[sss] si ss?}", "id", in->workload, "kind",
                          in->node->kind == ORC_KIND_JOB ? "job" : "service", "resource",
                          in->res_uuid, "argv", "/bin/sh", "-c", f->command, "port", (int)f->port,
                          "ready_path", f->ready_path);

    for (size_t i = 0; jenv && i < n; i++)
        json_object_set_new(jenv, env[i].key, json_string(env[i].value ? env[i].value : ""));
    if (w == NULL || jenv == NULL || json_object_set_new(w, "env", jenv) < 0) {
        json_decref(w);
        return NULL;
    }
    return w;
}

char *orc__boot_spec(struct run *r, const struct inst *host)
{
    json_t *wls = json_array(), *spec;
    char *text, *copy = NULL;

    for (size_t i = 0; wls && i < r->nnodes; i++) {
        struct nrun *n = &r->nodes[i];
        if (!is_workload(n) || n->top != host->node || n->f.command == NULL)
            continue;
        for (size_t k = 0; k < n->ninst; k++) {
            json_t *w;
            if (n->inst[k].index != host->index || n->inst[k].act == ACT_REMOVE)
                continue;
            if ((w = boot_workload(r, &n->inst[k])) == NULL || json_array_append_new(wls, w) < 0) {
                json_decref(wls);
                return NULL;
            }
        }
    }
    spec = wls ? json_pack("{so}", "workloads", wls) : NULL;
    text = spec ? json_dumps(spec, JSON_COMPACT) : NULL;
    json_decref(spec);
    if (text)
        copy = orc_strdup(text);
    free(text); /* jansson's allocator */
    return copy;
}

/* A compute instance went (to be made again): what the agents of the workloads on it
 * reported is of the past; the new node's agents report afresh. */
static void forget_hosted(struct run *r, const struct inst *top)
{
    for (size_t i = 0; i < r->nnodes; i++) {
        struct nrun *h = &r->nodes[i];
        if (!h->hosted || h->top != top->node)
            continue;
        for (size_t k = 0; k < h->ninst; k++)
            if (h->inst[k].index == top->index && h->inst[k].act != ACT_REMOVE &&
                orc__agent_forget(r->eng, r->uuid, &h->inst[k]) < 0)
                run_log(r, ORC_LOG_WARN, &h->inst[k], "%s[%u]: forgetting its agent's reports: %s",
                        h->name, h->inst[k].index, orc_store_errmsg(r->eng->store));
    }
}

/* Restart and replace first stop the workload or deprovision the node. */
static void on_prepared(orc_op_t *op, int status)
{
    struct inst *in = op->data;
    struct run *r = in->node->run;

    if (stopped(r, op))
        return;
    r->inflight--;
    if (status < 0) {
        inst_failed(r, in, status,
                    in->act == ACT_RESTART ? "cannot stop it: " : "cannot delete it: ");
    } else if (in->act == ACT_RESTART) {
        in->prepared = true;
        in->st = I_PENDING;
        set_res(r, in, ORC_RES_STOPPED, false, 0, NULL);
    } else {
        in->prepared = true;
        in->st = I_PENDING;
        orc__usage_ended(r, in);
        in->on_site = false;
        json_decref(in->attrs);
        in->attrs = NULL;
        set_res(r, in, ORC_RES_INITIAL, false,
                ORC_RES_F_SITE | ORC_RES_F_PROVIDER | ORC_RES_F_ATTRIBUTES, &(orc_resource_t){0});
        if (!in->node->hosted)
            forget_hosted(r, in);
    }
    orc_drv_op_reset(op);
    run_step(r);
}

static int issue_prepare(struct run *r, struct inst *in)
{
    if (in->act == ACT_RESTART)
        return orc_drv_stop_workload(r->site->site, &in->op, in->host_name, in->workload,
                                     on_prepared);
    return orc_drv_deprovision(r->site->site, &in->op, in->name, on_prepared);
}

static void prepare(struct run *r, struct inst *in)
{
    in->st = I_RUNNING;
    set_res(r, in, in->act == ACT_RESTART ? ORC_RES_STOPPING : ORC_RES_DELETING, false, 0, NULL);
    call_after_commit(r, in, CALL_PREPARE);
}

static int issue_action(struct run *r, struct inst *in)
{
    struct nrun *n = in->node;

    if (is_workload(n))
        return start_workload(r, in, on_action);
    if (n->hosted || n->kind == ORC_KIND_SOFTWARE)
        /* lifecycle scripts of software components are run by gpu-agent on
         * the node (not in this build): the component counts as configured */
        return orc_drv_status(r->site->site, &in->op, in->name, on_noop);
    return provision(r, in);
}

static void start_action(struct run *r, struct inst *in)
{
    struct nrun *n = in->node;

    if (!in->prepared && (in->act == ACT_REPLACE || (in->act == ACT_RESTART && is_workload(n)))) {
        prepare(r, in);
        return;
    }
    set_res(r, in, n->hosted ? ORC_RES_STARTING : ORC_RES_CREATING, true, 0, NULL);
    in->on_site = true;
    snprintf(in->site, sizeof(in->site), "%s", r->site->def->name);
    in->st = I_RUNNING;
    call_after_commit(r, in, CALL_ACTION);
}

/* ---- the DAG walk ---- */

static bool node_done(const struct nrun *n)
{
    for (size_t i = 0; i < n->ninst; i++)
        if (n->inst[i].act != ACT_REMOVE && n->inst[i].st != I_DONE)
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
            if (in->act == ACT_REMOVE)
                continue;
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
        run_log(r, ORC_LOG_WARN, in, "deprovision %s: %s", in->name,
                op->error[0] ? op->error : orc_strerror(status));
        snprintf(r->error + strlen(r->error), sizeof(r->error) - strlen(r->error),
                 "%scannot delete %s[%u]: %s", r->error[0] ? "; " : "", in->node->name, in->index,
                 op->error[0] ? op->error : orc_strerror(status));
        r->failed = true;
        in->undeletable = true; /* not tried again by this run */
        set_res(r, in, ORC_RES_ERROR, false, 0, NULL);
    } else {
        orc__usage_ended(r, in);
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
            if (!in->on_site || in->undeletable || in->call != CALL_NONE ||
                orc_drv_op_inflight(&in->op))
                continue;
            if (n->hosted || n->kind == ORC_KIND_SOFTWARE) {
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
            call_after_commit(r, in, CALL_DEPROVISION);
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
    if (r->attempt_ended || r->attempt == 0) /* stored already, or no attempt (update) */
        return;
    r->attempt_ended = true;
    {
        char *masked = ok ? NULL : orc_engine_mask_text(r->secrets, r->error);
        if (orc_store_attempt_end(r->eng->store, r->uuid, r->attempt, ok,
                                  ok ? NULL : masked ? masked : r->error) < 0)
            run_log(r, ORC_LOG_ERROR, NULL, "storing attempt %d: %s", r->attempt,
                    orc_store_errmsg(r->eng->store));
        free(masked);
    }
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
    if (r->what == RUN_DELETE) { /* deleted while it cleaned up: no next site */
        r->phase = PH_DELETE;
        run_step(r);
        return;
    }
    attempt_next(r);
}

/* ---- scale-in of an update ---- */

/* A removed instance's row goes: the resource is no more. */
static void drop_row(struct run *r, struct inst *in)
{
    in->st = I_DONE;
    orc__usage_ended(r, in);
    in->on_site = false;
    if (orc_store_resource_delete(r->eng->store, in->res_uuid, NULL) < 0)
        run_log(r, ORC_LOG_ERROR, in, "removing %s[%u]: %s", in->node->name, in->index,
                orc_store_errmsg(r->eng->store));
    notify(r);
}

static void on_removed(orc_op_t *op, int status)
{
    struct inst *in = op->data;
    struct run *r = in->node->run;

    if (stopped(r, op))
        return;
    r->inflight--;
    if (status < 0) {
        inst_failed(r, in, status, "cannot remove it: ");
    } else {
        drop_row(r, in);
    }
    orc_drv_op_reset(op);
    run_step(r);
}

/* The compute instance a hosted instance runs on, or NULL. */
static const struct inst *host_of(const struct inst *in)
{
    const struct nrun *top = in->node->top;

    for (size_t i = 0; top && i < top->ninst; i++)
        if (top->inst[i].index == in->index)
            return &top->inst[i];
    return NULL;
}

static void remove_one(struct run *r, struct inst *in)
{
    struct engine_site *s = site_by_name(r->eng, in->site);
    const struct inst *h = host_of(in);

    in->st = I_RUNNING;
    if (!in->on_site || (in->node->hosted && !is_workload(in->node)) ||
        (in->node->hosted && h && h->act == ACT_REMOVE)) {
        drop_row(r, in); /* never placed, nothing runs, or it goes with its compute */
        return;
    }
    if (s == NULL) {
        in->st = I_FAILED;
        fail_attempt(r, "node %s[%u]: cannot remove it: its site '%s' is not open", in->node->name,
                     in->index, in->site);
        return;
    }
    set_res(r, in, ORC_RES_DELETING, false, 0, NULL);
    call_after_commit(r, in, CALL_REMOVE);
}

static bool victims_left(const struct run *r, bool hosted)
{
    for (size_t i = 0; i < r->nnodes; i++)
        for (size_t k = 0; r->nodes[i].hosted == hosted && k < r->nodes[i].ninst; k++)
            if (r->nodes[i].inst[k].act == ACT_REMOVE && r->nodes[i].inst[k].st != I_DONE)
                return true;
    return false;
}

static void start_removals(struct run *r, bool hosted)
{
    for (size_t i = 0; i < r->nnodes; i++)
        for (size_t k = 0; r->nodes[i].hosted == hosted && k < r->nodes[i].ninst; k++) {
            struct inst *in = &r->nodes[i].inst[k];
            if (r->failed || r->inflight >= max_parallel(r))
                return;
            if (in->act == ACT_REMOVE && in->st == I_PENDING)
                remove_one(r, in);
        }
}

/* Removes what the update drops, workloads before their computes; true
 * when all of it is gone. */
static bool shrink(struct run *r)
{
    start_removals(r, true);
    if (!victims_left(r, true))
        start_removals(r, false);
    return r->inflight == 0 && !victims_left(r, true) && !victims_left(r, false);
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
            if (r->failed && r->force)
                run_log(r, ORC_LOG_WARN, NULL, "deleted by force, despite: %s", r->error);
            if (r->failed && !r->force)
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
    if (r->phase == PH_SHRINK && !r->failed) {
        if (shrink(r)) {
            r->phase = PH_DEPLOY;
            run_step(r);
        }
        return;
    }
    if (r->phase != PH_DEPLOY && r->phase != PH_SHRINK)
        return;
    if (r->failed) {
        if (r->inflight > 0)
            return;
        if (r->what == RUN_DELETE) { /* a delete arrived during the create or update */
            attempt_end(r, false);
            r->failed = false;
            r->phase = PH_DELETE;
            run_step(r);
            return;
        }
        if (r->what == RUN_UPDATE) {
            attempt_end(r, false); /* stops the deadline */
            finish(r, ORC_DEP_UPDATE_FAILED, r->error, NULL);
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
        complete_deployment(r);
    }
}

/* ---- site attempts ---- */

static int64_t minute_ms(const struct run *r)
{
    return r->eng->opts.deadline_minute_ms ? (int64_t)r->eng->opts.deadline_minute_ms : 60000;
}

/* Milliseconds left before the deployment's overall deadline (timeoutMins,
 * counted from its creation); INT64_MAX when it has none. */
static int64_t overall_left(const struct run *r)
{
    int64_t left;

    if (r->dep->timeout_mins <= 0)
        return INT64_MAX;
    left = r->dep->created_ms + (int64_t)r->dep->timeout_mins * minute_ms(r) - orc_now_ms();
    return left > 0 ? left : 0;
}

static void on_deadline(uv_timer_t *t);

/* The attempt's deadline: providerTimeoutMins, or what is left of timeoutMins. */
static void start_deadline(struct run *r)
{
    int mins = r->dep->provider_timeout_mins > 0 ? r->dep->provider_timeout_mins
                                                 : ORC_DEFAULT_PROVIDER_TIMEOUT_MINS;
    int64_t ms = (int64_t)mins * minute_ms(r), left = overall_left(r);

    r->deadline_overall = left <= ms; /* which of the two the timer is for */
    uv_timer_start(&r->timer, on_deadline, (uint64_t)(left < ms ? left : ms), 0);
    r->timer_on = true;
}

static void on_deadline(uv_timer_t *t)
{
    struct run *r = t->data;

    r->timer_on = false;
    if (r->deadline_overall) {
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
    /* a site ranked, then removed or closed meanwhile (docs/api.md "Sites"): skipped */
    while (r->pos < r->norder &&
           (r->eng->esites[r->order[r->pos]]->removed || !r->eng->esites[r->order[r->pos]]->open))
        r->pos++;
    if (last_site(r)) {
        fail_deployment(r);
        return;
    }
    if (r->pos >= r->norder) { /* resumed: rank the sites not tried yet */
        r->resumed = false;
        start_rank(r);
        return;
    }
    r->site = r->eng->esites[r->order[r->pos++]];
    r->attempt++;
    r->attempt_ended = false;
    while (orc_store_attempt_start(r->eng->store, r->uuid, r->attempt, r->site->def->name) ==
           ORC_ECONFLICT)
        r->attempt++; /* numbers of an earlier life of this deployment */
    run_log(r, ORC_LOG_INFO, NULL, "attempt %d on site %s", r->attempt, r->site->def->name);
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
    need = r->need;
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
        r->order[i] = r->probes[r->order[i]].site->index;
    for (size_t i = 0; i < r->nprobes; i++)
        orc_drv_op_reset(&r->probes[i].op);
    orc_free(r->probes);
    r->probes = NULL;
    r->nprobes = 0;
    if (r->norder == 0) {
        if (r->draining[0] == '\0')
            snprintf(r->error, sizeof(r->error), "no site can run this deployment: %s", reason);
        else /* the draining sites last, cut first when it is long */
            snprintf(r->error, sizeof(r->error), "no site can run this deployment: %.318s%.160s",
                     reason, r->draining);
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
    r->draining[0] = '\0';
    for (size_t i = 0; i < r->eng->nsites; i++) {
        struct rank_probe *p = &r->probes[r->nprobes];
        if (!r->eng->esites[i]->open || r->eng->esites[i]->removed)
            continue;
        if (orc_engine_site_draining(r->eng, r->eng->esites[i]->def->name)) {
            size_t at = strlen(r->draining);
            snprintf(r->draining + at, sizeof(r->draining) - at, "; %s: draining",
                     r->eng->esites[i]->def->name);
            continue;
        }
        p->run = r;
        p->site = r->eng->esites[i];
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
            r->order[0] = s->index;
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
    return orc_engine_create_plan(eng, uuid, NULL);
}

int orc_engine_create_plan(struct orc_engine *eng, const char *uuid, json_t *plan)
{
    struct run *r;
    int rc;

    if (orc__engine_find_run(eng, uuid))
        return ORC_ECONFLICT;
    if (!eng->started)
        return 0; /* stored: the start picks it up with the others in progress */
    rc = orc__lease_take(eng, uuid);
    if (rc != 0)
        return rc < 0 ? rc : 0; /* 1: another daemon works on it */
    rc = run_new_planned(eng, uuid, RUN_CREATE, plan, &r);
    if (rc == ORC_EFORMAT)
        orc__engine_fail_unrunnable(eng, uuid, false);
    if (rc < 0)
        return rc;
    if (r->dep->status != ORC_DEP_CREATE_IN_PROGRESS || !r->planned) {
        run_free(r);
        return ORC_ECONFLICT;
    }
    if (!resume_attempt(r))
        start_rank(r);
    return 0;
}

int orc_engine_delete(struct orc_engine *eng, const char *uuid)
{
    return orc_engine_delete_opts(eng, uuid, false);
}

int orc_engine_delete_opts(struct orc_engine *eng, const char *uuid, bool force)
{
    struct run *r = orc__engine_find_run(eng, uuid);
    int rc;

    if (r && r->what == RUN_DELETE)
        return ORC_ECONFLICT;
    if (!eng->started)
        return 0; /* stored as DELETE_IN_PROGRESS: the start resumes it */
    if (r) {      /* stop the create, then delete what it made */
        r->what = RUN_DELETE;
        r->force = force;
        if (r->phase == PH_DEPLOY || r->phase == PH_CLEANUP || r->phase == PH_SHRINK) {
            fail_attempt(r, "deleted by the user");
            run_step(r);
        }
        return 0;
    }
    rc = orc__lease_take(eng, uuid);
    if (rc != 0)
        return rc < 0 ? rc : 0; /* 1: its owner sees the delete stored and does it */
    rc = run_new(eng, uuid, RUN_DELETE, &r);
    if (rc < 0)
        return rc;
    r->force = force;
    r->phase = PH_DELETE;
    run_step(r);
    return 0;
}

void orc_engine_abandon(struct orc_engine *eng, const char *uuid)
{
    struct run *r = orc__engine_find_run(eng, uuid);

    if (r == NULL)
        return;
    run_log(r, ORC_LOG_WARN, NULL, "the engine lets go of it");
    runs_remove(eng, r); /* not found any more: the deployment is free */
    r->abandoned = true;
    eng->abandoned++;
    r->stopping = true;
    if (r->timer_on) {
        uv_timer_stop(&r->timer);
        r->timer_on = false;
    }
    for (size_t n = 0; n < r->nnodes; n++)
        for (size_t i = 0; i < r->nodes[n].ninst; i++) {
            struct inst *in = &r->nodes[n].inst[i];
            struct engine_site *s = site_by_name(eng, in->site);
            if (orc_drv_op_inflight(&in->op) && (s || r->site))
                orc_drv_cancel((s ? s : r->site)->site, &in->op);
        }
    if (r->inflight == 0 && r->probes_pending == 0)
        run_free(r);
}

int orc_engine_update(struct orc_engine *eng, const char *uuid)
{
    struct run *r;
    int rc;

    if (orc__engine_find_run(eng, uuid))
        return ORC_ECONFLICT;
    if (!eng->started)
        return 0; /* stored: the start picks it up with the others in progress */
    rc = orc__lease_take(eng, uuid);
    if (rc != 0)
        return rc < 0 ? rc : 0; /* 1: its owner sees the update stored and does it */
    rc = run_new(eng, uuid, RUN_UPDATE, &r);
    if (rc == ORC_EFORMAT)
        orc__engine_fail_unrunnable(eng, uuid, true);
    if (rc < 0)
        return rc;
    if (r->dep->status != ORC_DEP_UPDATE_IN_PROGRESS || !r->planned) {
        run_free(r);
        return ORC_ECONFLICT;
    }
    r->attempt_ended = true; /* an update makes no site attempt */
    r->site = site_by_name(eng, r->dep->cloud_provider_name);
    if (r->site && (r->site->site->drv->vt.caps & ORC_DRV_CAP_AGENT_BOOT))
        orc__boot_replace(r);
    for (size_t i = 0; i < r->nnodes; i++)
        for (size_t k = 0; k < r->nodes[i].ninst; k++) {
            struct inst *in = &r->nodes[i].inst[k];
            in->st = in->act == ACT_KEEP ? I_DONE : I_PENDING;
        }
    r->phase = PH_SHRINK;
    if (r->site == NULL) {
        snprintf(r->error, sizeof(r->error), "the deployment's site '%s' is not open",
                 r->dep->cloud_provider_name ? r->dep->cloud_provider_name : "");
        finish(r, ORC_DEP_UPDATE_FAILED, r->error, NULL);
        return 0;
    }
    run_log(r, ORC_LOG_INFO, NULL, "update on site %s", r->site->def->name);
    start_deadline(r);
    run_step(r);
    return 0;
}

bool orc_engine_busy(const struct orc_engine *eng, const char *uuid)
{
    return orc__engine_find_run(eng, uuid) != NULL;
}

size_t orc_engine_active(const struct orc_engine *eng)
{
    return eng->nruns;
}

/* ---- user actions on one resource: start, stop ---- */

/* A compute node's workloads follow it: stopped with it, started with it. */
static void follow_host(struct run *r, const struct inst *host, orc_res_state_t from,
                        orc_res_state_t to)
{
    for (size_t i = 0; i < r->nnodes; i++) {
        struct nrun *n = &r->nodes[i];
        if (!n->hosted)
            continue;
        for (size_t k = 0; k < n->ninst; k++)
            if (n->inst[k].index == host->index && host_of(&n->inst[k]) == host &&
                n->inst[k].res_state == from)
                set_res(r, &n->inst[k], to, false, 0, NULL);
    }
}

static void on_user_action(orc_op_t *op, int status)
{
    struct inst *in = op->data;
    struct run *r = in->node->run;
    const char *verb = r->action_start ? "start" : "stop";
    char msg[ORC_OP_ERROR_LEN + 128];

    if (stopped(r, op))
        return;
    r->inflight--;
    if (status < 0) { /* back where it was, and why in the event */
        snprintf(msg, sizeof(msg), "node %s[%u]: %s failed: %s", in->node->name, in->index, verb,
                 op->error[0] ? op->error : orc_strerror(status));
        run_log(r, ORC_LOG_WARN, in, "%s", msg);
        set_res_msg(r, in, r->action_start ? ORC_RES_STOPPED : ORC_RES_STARTED, false, 0, NULL,
                    msg);
    } else if (r->action_start) {
        json_decref(in->attrs);
        in->attrs = attrs_of(op);
        set_res(r, in, ORC_RES_STARTED, false, ORC_RES_F_ATTRIBUTES,
                &(orc_resource_t){.attributes = in->attrs});
        if (!in->node->hosted)
            follow_host(r, in, ORC_RES_STOPPED, ORC_RES_STARTED);
    } else {
        set_res(r, in, ORC_RES_STOPPED, false, 0, NULL);
        if (!in->node->hosted)
            follow_host(r, in, ORC_RES_STARTED, ORC_RES_STOPPED);
    }
    orc_drv_op_reset(op);
    if (r->what == RUN_DELETE) { /* a delete came meanwhile */
        r->phase = PH_DELETE;
        run_step(r);
        return;
    }
    r->phase = PH_DONE;
    run_free(r);
}

static int issue_user(struct run *r, struct inst *in)
{
    struct orc_drv_site *site = r->site->site;

    if (in->node->hosted && r->action_start)
        return start_workload(r, in, on_user_action);
    if (in->node->hosted)
        return orc_drv_stop_workload(site, &in->op, in->host_name, in->workload, on_user_action);
    if (r->action_start)
        return orc_drv_start(site, &in->op, in->name, on_user_action);
    return orc_drv_stop(site, &in->op, in->name, on_user_action);
}

static struct inst *inst_by_uuid(struct run *r, const char *res_uuid)
{
    for (size_t i = 0; i < r->nnodes; i++)
        for (size_t k = 0; k < r->nodes[i].ninst; k++)
            if (strcmp(r->nodes[i].inst[k].res_uuid, res_uuid) == 0)
                return &r->nodes[i].inst[k];
    return NULL;
}

/* start from STOPPED, stop from STARTED; the state in between is allowed
 * too, so that an action a restart interrupted can be asked again. */
static bool action_allowed(orc_res_state_t st, bool start)
{
    return start ? st == ORC_RES_STOPPED || st == ORC_RES_STARTING
                 : st == ORC_RES_STARTED || st == ORC_RES_STOPPING;
}

static int action_check(struct run *r, struct inst *in, bool start, char *why, size_t whylen)
{
    if (!action_allowed(in->res_state, start)) {
        snprintf(why, whylen, "the resource is %s: %s needs it %s",
                 orc_res_state_name(in->res_state), start ? "start" : "stop",
                 start ? "STOPPED" : "STARTED");
        return ORC_EINVAL;
    }
    r->site = site_by_name(r->eng, in->site);
    if (r->site == NULL) {
        snprintf(why, whylen, "the resource's site '%s' is not open", in->site);
        return ORC_EINVAL;
    }
    return 0;
}

int orc_engine_resource_action(struct orc_engine *eng, const char *uuid, const char *res_uuid,
                               bool start, char *why, size_t whylen)
{
    struct run *r;
    struct inst *in;
    int rc;

    snprintf(why, whylen, "%s", "");
    if (orc__engine_find_run(eng, uuid) || !eng->started)
        return ORC_ECONFLICT;
    rc = orc__lease_take(eng, uuid);
    if (rc == 1)
        snprintf(why, whylen, "another daemon is working on this deployment; retry shortly");
    if (rc != 0)
        return rc < 0 ? rc : ORC_ECONFLICT;
    rc = run_new(eng, uuid, RUN_ACTION, &r);
    if (rc < 0)
        return rc;
    in = inst_by_uuid(r, res_uuid);
    rc = in ? action_check(r, in, start, why, whylen) : ORC_ENOTFOUND;
    if (rc == 0) {
        r->target = in;
        r->action_start = start;
        r->phase = PH_ACTION;
        set_res(r, in, start ? ORC_RES_STARTING : ORC_RES_STOPPING, false, 0, NULL);
        call_after_commit(r, in, CALL_USER);
    }
    if (rc < 0)
        run_free(r);
    return rc;
}

/* ---- group commit: a driver call waits until what was stored before it is durable ---- */

static int issue_deprovision(struct run *r, struct inst *in)
{
    struct engine_site *s = site_by_name(r->eng, in->site);

    if (s == NULL)
        return orc_op_failf(&in->op, ORC_ECONFLICT, "its site '%s' is not open", in->site);
    return orc_drv_deprovision(s->site, &in->op, in->name, on_deprovision);
}

/* A workload removed from a node that started it at boot: it ends with its node (which
 * the update removes or replaces); a status read of the node stands for the stop. */
static void on_removed_with_node(orc_op_t *op, int status)
{
    orc_drv_op_reset(op); /* the answer is about the node */
    on_removed(op, status == ORC_ECANCELED ? status : 0);
}

static int issue_remove(struct run *r, struct inst *in)
{
    struct engine_site *s = site_by_name(r->eng, in->site);

    if (s == NULL)
        return orc_op_failf(&in->op, ORC_ECONFLICT, "its site '%s' is not open", in->site);
    if (in->node->hosted && (s->site->drv->vt.caps & ORC_DRV_CAP_AGENT_BOOT))
        return orc_drv_status(s->site, &in->op, in->host_name, on_removed_with_node);
    if (in->node->hosted)
        return orc_drv_stop_workload(s->site, &in->op, in->host_name, in->workload, on_removed);
    return orc_drv_deprovision(s->site, &in->op, in->name, on_removed);
}

/* Makes the call an instance waited for; a call that fails at once ends
 * through the callback it would have had. An attempt that failed meanwhile
 * does not start new work on its site. */
static void issue(struct run *r, struct inst *in)
{
    enum inst_call call = in->call;
    orc_op_cb cb;
    int rc;

    in->call = CALL_NONE;
    orc_drv_op_init(&in->op);
    in->op.data = in;
    switch (call) {
    case CALL_ACTION:
        cb = on_action;
        rc = r->failed ? ORC_ECANCELED : issue_action(r, in);
        break;
    case CALL_PREPARE:
        cb = on_prepared;
        rc = r->failed ? ORC_ECANCELED : issue_prepare(r, in);
        break;
    case CALL_DEPROVISION:
        cb = on_deprovision;
        rc = issue_deprovision(r, in);
        break;
    case CALL_REMOVE:
        cb = on_removed;
        rc = issue_remove(r, in);
        break;
    default:
        cb = on_user_action;
        rc = issue_user(r, in);
        break;
    }
    if (rc < 0)
        cb(&in->op, rc);
}

static void on_durable(orc_commit_wait_t *w, int status)
{
    struct inst *in = w->data;
    struct run *r = in->node->run;

    if (status < 0)
        orc__engine_store_lost(r->eng, status);
    if (r->stopping) { /* nothing is called while the engine closes */
        in->call = CALL_NONE;
        r->inflight--;
        run_step(r);
        return;
    }
    issue(r, in);
}

/* The instance's next driver call, made once the transitions stored so far
 * are durable (the same loop iteration's group commit): a crash between the
 * two finds the store ahead of the provider, never behind it. Counts as in
 * flight from now. */
static void call_after_commit(struct run *r, struct inst *in, enum inst_call call)
{
    in->call = call;
    in->wait.data = in;
    r->inflight++;
    orc_commit_after(r->eng->commit, &in->wait, on_durable);
}
