/*
 * local: the embedded default site, this machine (docs/local-site.md). A
 * node is a sandboxed work directory, work_dir/<name>/ (mode 0700), holding
 * a share of the machine's CPUs, memory and GPUs; workloads are processes
 * the driver starts and supervises itself (until gpu-agent exists), each in
 * its own process group, pinned to the node's GPUs with
 * CUDA_VISIBLE_DEVICES. Capacity and workloads are persisted in
 * work_dir/state.json so that a restarted daemon re-attaches to what kept
 * running. Closing the site never stops workloads.
 *
 * This file: the vtable, the operations in flight (every slot answers
 * through a host timer or a child/fs callback, never from inside the
 * call), site open (config, work_dir, GPU detection with an asynchronous
 * `nvidia-smi -L`) and close, provision, deprovision (stop the process
 * groups, SIGKILL after stop_timeout_ms, remove the directory), status,
 * adopt, inventory, and the entry points of start_workload (which waits
 * for a service's readiness, local_ready.c), exec, logs and cancel
 * (local_proc.c does the process work, local_power.c the ABI 2 slots).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "local.h"

/* ---- operations in flight ----------------------------------------------------------- */

struct lop *lop_new(struct local *s, orc_op_t *op, enum lop_kind kind)
{
    struct lop *lo = s->host->calloc(1, sizeof(*lo));

    if (lo == NULL)
        return NULL;
    lo->s = s;
    lo->op = op;
    lo->kind = kind;
    lo->next = s->ops;
    if (s->ops)
        s->ops->prev = lo;
    s->ops = lo;
    op->drv = lo;
    return lo;
}

void lop_free(struct lop *lo)
{
    struct local *s = lo->s;

    if (lo->timer != 0)
        s->host->timer_stop(s->host, lo->timer);
    if (lo->prev)
        lo->prev->next = lo->next;
    else
        s->ops = lo->next;
    if (lo->next)
        lo->next->prev = lo->prev;
    lo->op->drv = NULL;
    s->host->free(lo);
}

void lop_complete(struct lop *lo, int status)
{
    struct local *s = lo->s;
    orc_op_t *op = lo->op;
    bool check = s->closing && lo->kind != LOP_CLOSE && lo->kind != LOP_OPEN;

    lo->timer = 0; /* fired, or never armed */
    if (status == ORC_ECANCELED && op->error[0] == '\0')
        snprintf(op->error, sizeof(op->error), "local: canceled");
    lop_free(lo);
    orc_op_done(op, status);
    if (check)
        local_close_check(s); /* last: it may complete the close */
}

static void lop_fire(void *arg)
{
    struct lop *lo = arg;

    lo->timer = 0;
    lop_complete(lo, lo->status);
}

int lop_defer(struct lop *lo, int status)
{
    struct local *s = lo->s;

    lo->status = status;
    if (lo->timer != 0)
        return 0;
    lo->timer = s->host->timer_start(s->host, 0, lop_fire, lo);
    return lo->timer != 0 ? 0 : ORC_ENOMEM;
}

void lop_finish(struct lop *lo, int status)
{
    lo->work = NULL;
    if (lop_defer(lo, status) < 0)
        lop_complete(lo, status);
}

/* ---- site close ---------------------------------------------------------------------- */

void local_close_check(struct local *s)
{
    struct lop *lo = s->close_lo;
    orc_op_t *op;

    if (!s->closing || s->close_kicking || lo == NULL || lo->timer != 0 || s->handles > 0 ||
        s->fs_reqs > 0)
        return;
    if (s->ops != lo || lo->next != NULL)
        return; /* operations still completing */
    op = lo->op;
    s->close_lo = NULL;
    local_store_close(s);
    local_config_free(s);
    lop_free(lo);
    orc_op_done(op, 0); /* the core frees s now */
}

static void close_kick(void *arg)
{
    struct local *s = arg;
    struct lop *lo, *again;

    s->close_lo->timer = 0;
    s->close_kicking = true; /* no close check from inside this loop */
    do {                     /* whatever could not be deferred in site_close */
        again = NULL;
        for (lo = s->ops; lo != NULL && again == NULL; lo = lo->next)
            if (lo != s->close_lo && lo->timer == 0 && lo->work == NULL)
                again = lo;
        if (again != NULL) {
            snprintf(again->op->error, sizeof(again->op->error), "local: site closing");
            lop_complete(again, ORC_ECANCELED);
        }
    } while (again != NULL);
    s->close_kicking = false;
    local_close_check(s);
}

static int local_site_close(void *state, orc_op_t *op)
{
    struct local *s = state;
    struct lop *lo, *o, *next;

    if (s->closing)
        return orc_op_failf(op, ORC_ECONFLICT, "local: site is already closing");
    lo = lop_new(s, op, LOP_CLOSE);
    if (lo == NULL)
        return ORC_ENOMEM;
    lo->timer = s->host->timer_start(s->host, 0, close_kick, s);
    if (lo->timer == 0) {
        lop_free(lo);
        return ORC_ENOMEM;
    }
    s->closing = true;
    s->close_lo = lo;
    local_persist(s); /* pids and start times: the next open re-attaches */
    for (o = s->ops; o != NULL; o = next) {
        next = o->next;
        if (o == lo || o->timer != 0)
            continue; /* already completing with its own status */
        if (o->kind == LOP_DEPROVISION || o->kind == LOP_EXEC || o->kind == LOP_STOP_WL ||
            o->kind == LOP_STOP) {
            o->work = NULL; /* a deletion or a stop is resumed at the next open */
            o->canceled = true;
            snprintf(o->op->error, sizeof(o->op->error), "local: site closing");
            lop_defer(o, ORC_ECANCELED); /* else close_kick completes it */
        } else if (o->kind == LOP_LOGS) {
            o->canceled = true; /* its uv_fs chain completes it */
        } else if (o->work != NULL && (o->kind == LOP_START || o->kind == LOP_START_RES)) {
            o->canceled = true; /* a readiness wait: its handles close */
            local_ready_abort(o, ORC_ECANCELED, "local: site closing");
        }
    }
    for (struct local_node *n = s->nodes; n != NULL; n = n->next) {
        n->del_ops = NULL;
        n->stop_ops = NULL;
        if (n->kill_timer != 0)
            s->host->timer_stop(s->host, n->kill_timer);
        if (n->step_timer != 0)
            s->host->timer_stop(s->host, n->step_timer);
        n->kill_timer = n->step_timer = 0;
        for (struct local_wl *w = n->wls; w != NULL; w = w->next)
            local_wl_detach(w); /* workloads keep running */
    }
    local_children_abandon(s);
    s->host->log(s->host, ORC_DRV_LOG_INFO, "local: closing; %u node(s) left running in %s",
                 s->nnodes, s->work_dir);
    return 0;
}

/* ---- node deletion ------------------------------------------------------------------------ */

static void node_delete_step(struct local_node *n);

static void node_step_fire(void *arg)
{
    struct local_node *n = arg;

    n->step_timer = 0;
    if (n->deleting)
        node_delete_step(n);
    else
        local_stop_ops_step(n);
}

void local_node_kick_in(struct local_node *n, uint64_t delay_ms)
{
    struct local *s = n->s;

    if (s->closing || n->step_timer != 0)
        return;
    n->step_timer = s->host->timer_start(s->host, delay_ms, node_step_fire, n);
}

void local_node_kick(struct local_node *n)
{
    local_node_kick_in(n, 0);
}

static void node_kill_fire(void *arg)
{
    struct local_node *n = arg;

    n->kill_timer = 0;
    orc_host_log_resource(n->s->host, n->name, ORC_DRV_LOG_WARN,
                          "local: node %s: workloads still running after SIGTERM: SIGKILL",
                          n->name);
    for (struct local_wl *w = n->wls; w != NULL; w = w->next)
        local_wl_kill(w);
}

static void node_delete_start(struct local_node *n)
{
    struct local *s = n->s;

    n->deleting = true;
    local_stop_ops_abort(n, ORC_ECONFLICT, "is being deleted");
    for (struct local_wl *w = n->wls; w != NULL; w = w->next) {
        local_ready_fail_all(w, ORC_ECONFLICT, "its node is being deleted");
        local_wl_stop(w);
    }
    local_persist(s);
    if (n->kill_timer == 0)
        n->kill_timer = s->host->timer_start(s->host, s->stop_timeout_ms, node_kill_fire, n);
    local_node_kick(n);
}

static void containers_done(struct local *s, void *arg, struct local_child_result *r)
{
    (void)arg;
    s->host->free(r->out); /* best effort: --rm usually removed them already */
}

/* `docker rm -f` of the node's workload containers. */
static void containers_remove(struct local_node *n)
{
    struct local *s = n->s;
    const char *argv[LOCAL_NAME_MAX + 8];
    char *names[LOCAL_NAME_MAX];
    size_t k = 0, i = 0;
    struct local_child_opts o = {.capture = 4096, .keep_on_close = true};

    if (n->image == NULL || s->rt_path == NULL || n->wls == NULL)
        return;
    argv[k++] = s->rt_path;
    argv[k++] = "rm";
    argv[k++] = "-f";
    for (struct local_wl *w = n->wls; w != NULL && i < LOCAL_NAME_MAX; w = w->next)
        if ((names[i] = local_printf(s, "orc-%s-%s", n->name, w->id)) != NULL)
            argv[k++] = names[i++];
    argv[k] = NULL;
    o.argv = argv;
    o.cwd = s->work_dir;
    if (local_child_run(s, &o, containers_done, NULL, NULL) < 0)
        s->host->log(s->host, ORC_DRV_LOG_WARN, "local: cannot run %s rm", s->rt_path);
    while (i > 0)
        s->host->free(names[--i]);
}

static void node_delete_fail(struct local_node *n, int err)
{
    struct local *s = n->s;
    struct lop *ops = n->del_ops;

    n->deleting = false;
    n->del_ops = NULL;
    local_persist(s);
    while (ops != NULL) {
        struct lop *next = ops->wnext;
        ops->work = NULL;
        orc_op_failf(ops->op, ORC_EIO, "local: cannot remove %s/%s: %s", s->work_dir, n->name,
                     strerror(-err));
        lop_complete(ops, ORC_EIO);
        ops = next;
    }
}

static void node_delete_step(struct local_node *n)
{
    struct local *s = n->s;
    struct lop *ops;
    int rc;

    if (!n->deleting)
        return;
    for (struct local_wl *w = n->wls; w != NULL; w = w->next)
        if (local_wl_live(w))
            return; /* its exit (or the poll) kicks again */
    if (n->kill_timer != 0)
        s->host->timer_stop(s->host, n->kill_timer);
    n->kill_timer = 0;
    containers_remove(n);
    rc = local_trash(s, n->name, true);
    if (rc < 0) {
        node_delete_fail(n, rc);
        return;
    }
    local_node_unlink(s, n);
    local_gpus_release(n);
    local_persist(s);
    orc_host_log_resource(s->host, n->name, ORC_DRV_LOG_INFO, "local: node %s deleted", n->name);
    ops = n->del_ops;
    n->del_ops = NULL;
    local_node_free(n);
    while (ops != NULL) {
        struct lop *next = ops->wnext;
        ops->work = NULL;
        lop_complete(ops, 0);
        ops = next;
    }
}

/* ---- site open ------------------------------------------------------------------------------ */

static void open_release(struct local *s)
{
    local_store_close(s);
    local_config_free(s);
}

static void summary(struct local *s)
{
    char gpus[256] = "none";
    size_t k = 0;

    for (uint32_t i = 0; i < s->ngpus && k < sizeof(gpus); i++)
        k += (size_t)snprintf(gpus + k, sizeof(gpus) - k, "%s%u:%s", i ? ", " : "",
                              s->gpus[i].index, s->gpus[i].model);
    s->host->log(s->host, ORC_DRV_LOG_INFO,
                 "local: work_dir %s, %u node(s); %u cpus, %.1f GiB; GPUs (%s): %s; container "
                 "runtime: %s",
                 s->work_dir, s->nnodes, s->cpus, (double)s->mem / 1073741824.0, s->gpu_source,
                 gpus, s->rt_path ? s->rt_path : "none");
}

/* A node whose deletion was under way when the daemon stopped: finish it. */
static void resume_delete(struct local_node *n)
{
    for (struct local_wl *w = n->wls; w != NULL; w = w->next) {
        int status;
        bool reaped;
        w->polled = w->pid > 0 && local_pid_alive(w->pid, w->start_time, &status, &reaped);
        if (!w->polled)
            w->pid = 0;
        w->st = w->polled ? LOCAL_WL_RUNNING : LOCAL_WL_STOPPED;
    }
    node_delete_start(n);
}

static void open_finish(struct local *s)
{
    struct local_node *n, *next;

    local_store_bind_gpus(s);
    s->opened = true;
    for (n = s->nodes; n != NULL; n = next) {
        next = n->next;
        if (n->deleting) {
            resume_delete(n);
            continue;
        }
        for (struct local_wl *w = n->wls; w != NULL; w = w->next)
            local_wl_attach(w);
    }
    local_persist(s);
    local_trash_sweep(s);
    summary(s);
}

static void probe_done(struct local *s, void *arg, struct local_child_result *r)
{
    struct lop *lo = arg;

    lo->work = NULL;
    if (lo->canceled) {
        s->host->free(r->out);
        open_release(s);
        snprintf(lo->op->error, sizeof(lo->op->error), "local: site open canceled");
        lop_complete(lo, ORC_ECANCELED);
        return;
    }
    if (r->exit_status == 0 && !r->timed_out)
        local_gpus_from_smi(s, r->out ? r->out : "", r->len);
    else
        s->host->log(s->host, ORC_DRV_LOG_WARN, "local: nvidia-smi -L %s: assuming no GPUs",
                     r->timed_out ? "timed out" : "failed");
    s->host->free(r->out);
    open_finish(s);
    lop_complete(lo, 0);
}

/* Starts `nvidia-smi -L` when it is on PATH. The op's timer is armed
 * already: it answers if the probe cannot run. */
static void probe_start(struct local *s, struct lop *lo)
{
    char *smi = local_which(s, "nvidia-smi");
    const char *argv[] = {smi, "-L", NULL};
    struct local_child_opts o = {.argv = argv,
                                 .cwd = s->work_dir,
                                 .capture = 65536,
                                 .kill_group = true,
                                 .timeout_ms = LOCAL_PROBE_TIMEOUT_MS};
    struct local_child *c = NULL;

    if (smi == NULL)
        return;
    if (local_child_run(s, &o, probe_done, lo, &c) == 0) {
        s->host->timer_stop(s->host, lo->timer);
        lo->timer = 0;
        lo->work = c;
    } else {
        s->host->log(s->host, ORC_DRV_LOG_WARN, "local: cannot run %s: assuming no GPUs", smi);
    }
    s->host->free(smi);
}

static int local_site_open(void *state, const struct orc_host_api *host,
                           const struct orc_site_conf *conf, orc_op_t *op)
{
    struct local *s = state;
    struct lop *lo;
    int rc;

    s->host = host;
    s->conf = conf;
    s->lock_fd = -1;
    if (host->version < 1 || host->size < offsetof(struct orc_host_api, http))
        return orc_op_failf(op, ORC_EABI, "local: host services table too old");
    lo = lop_new(s, op, LOP_OPEN);
    if (lo == NULL)
        return ORC_ENOMEM;
    rc = lop_defer(lo, 0);
    if (rc == 0)
        rc = local_config(s, op);
    if (rc == 0)
        rc = local_store_open(s, op);
    if (rc < 0) {
        open_release(s);
        lop_free(lo);
        return rc;
    }
    if (!s->gpus_configured && local_gpus_from_procfs(s) == 0)
        probe_start(s, lo);
    if (lo->work == NULL)
        open_finish(s);
    return 0;
}

/* ---- provision --------------------------------------------------------------------------------
 */

static bool image_ok(const char *image)
{
    size_t n = 0;

    if (image == NULL || image[0] == '-' || image[0] == '\0')
        return false;
    for (; image[n] != '\0'; n++)
        if (!(('a' <= image[n] && image[n] <= 'z') || ('A' <= image[n] && image[n] <= 'Z') ||
              ('0' <= image[n] && image[n] <= '9') || strchr("._/:@-", image[n]) != NULL))
            return false;
    return n <= 255;
}

/* The port and image of a node from the plan's node object (properties). */
static int node_props(orc_op_t *op, const struct orc_node_req *req, uint16_t *port,
                      const char **image, json_t **doc)
{
    json_t *props;
    json_int_t p;

    *port = 0;
    *image = req->kind != ORC_KIND_COMPUTE ? req->image : NULL; /* COMPUTE: an OS image */
    *doc = NULL;
    if (req->node_json != NULL) {
        *doc = json_loads(req->node_json, 0, NULL);
        if (!json_is_object(*doc))
            return orc_op_failf(op, ORC_EINVAL, "local: node_json of %s is not a JSON object",
                                req->name);
        props = json_object_get(*doc, "properties");
        p = json_integer_value(json_object_get(props, "port"));
        if (json_object_get(props, "port") != NULL && (p < 1 || p > 65535))
            return orc_op_failf(op, ORC_EINVAL, "local: %s: port must be 1-65535", req->name);
        *port = (uint16_t)p;
        if (req->kind != ORC_KIND_COMPUTE && json_is_string(json_object_get(props, "image")))
            *image = json_string_value(json_object_get(props, "image"));
    }
    if (*port == 0 && req->kind != ORC_KIND_COMPUTE && req->nports > 0 && req->ports != NULL)
        *port = req->ports[0];
    if (*image != NULL && **image == '\0')
        *image = NULL;
    if (*image != NULL && !image_ok(*image))
        return orc_op_failf(op, ORC_EINVAL, "local: %s: bad image name '%s'", req->name, *image);
    return 0;
}

static int node_create(struct local *s, orc_op_t *op, const struct orc_node_req *req,
                       const uint32_t *pick, uint16_t port, const char *image)
{
    struct local_node *n = s->host->calloc(1, sizeof(*n));
    char *dir = local_node_path(s, req->name, NULL);
    int rc = 0;

    if (n == NULL || dir == NULL || (image && (n->image = local_strdup(s, image)) == NULL)) {
        rc = ORC_ENOMEM;
        goto out;
    }
    n->s = s;
    snprintf(n->name, sizeof(n->name), "%s", req->name);
    n->kind = req->kind;
    n->cpus = req->num_cpus;
    n->mem = req->mem_size;
    n->port = port;
    n->created_ms = local_now_ms();
    for (uint32_t i = 0; i < req->num_gpus; i++) {
        n->gpus[n->ngpus++] = s->gpus[pick[i]].index;
        s->gpus[pick[i]].owner = n;
        snprintf(n->gpu_model, sizeof(n->gpu_model), "%s", s->gpus[pick[i]].model);
    }
    local_node_link(s, n);
    rc = local_persist(s);
    if (rc < 0) {
        rc = orc_op_failf(op, ORC_EIO, "local: cannot write %s/state.json", s->work_dir);
        goto out_unlink;
    }
    if ((mkdir(dir, 0700) != 0 && errno != EEXIST) || chmod(dir, 0700) != 0) {
        rc = orc_op_failf(op, ORC_EIO, "local: cannot create %s: %s", dir, strerror(errno));
        goto out_unlink;
    }
    rc = local_marker_write(n);
    if (rc < 0) {
        rc = orc_op_failf(op, ORC_EIO, "local: cannot write %s/node.json", dir);
        local_trash(s, n->name, true);
        goto out_unlink;
    }
    orc_host_log_resource(s->host, n->name, ORC_DRV_LOG_INFO,
                          "local: node %s created (%s, %u cpus, %" PRIu64 " bytes, %u GPU%s%s%s)",
                          n->name, local_kind_name(n->kind), n->cpus, n->mem, n->ngpus,
                          n->ngpus == 1 ? "" : "s", n->ngpus ? " " : "", n->gpu_model);
    rc = local_report(s, op, n);
    n = NULL;
    goto out;

out_unlink:
    local_node_unlink(s, n);
    local_persist(s);
out:
    local_node_free(n);
    s->host->free(dir);
    return rc;
}

/* *status: what the callback says (a capacity answer is one). */
static int provision_new(struct local *s, orc_op_t *op, const struct orc_node_req *req, int *status)
{
    uint32_t pick[LOCAL_MAX_GPUS];
    const char *image;
    uint16_t port;
    json_t *doc;
    int rc;

    if (req->kind != ORC_KIND_COMPUTE && req->kind != ORC_KIND_SERVICE && req->kind != ORC_KIND_JOB)
        return orc_op_failf(op, ORC_ENOTSUP, "local: cannot provision %s nodes",
                            local_kind_name(req->kind));
    rc = node_props(op, req, &port, &image, &doc);
    if (rc == 0) {
        *status = local_fit(s, op, req, pick);
        if (*status == 0)
            rc = node_create(s, op, req, pick, port, image);
    }
    json_decref(doc);
    return rc;
}

static int existing_status(struct local *s, orc_op_t *op, const struct local_node *n,
                           const struct orc_node_req *req)
{
    int rc = local_report(s, op, n);

    if (rc < 0)
        return rc;
    if (n->cpus != req->num_cpus || n->mem != req->mem_size || n->ngpus != req->num_gpus)
        orc_host_log_resource(s->host, n->name, ORC_DRV_LOG_WARN,
                              "local: %s exists with other requirements: returning it as it is",
                              n->name);
    if (n->deleting)
        return orc_op_failf(op, ORC_ECONFLICT, "local: %s is being deleted", n->name);
    if (n->failed)
        return orc_op_failf(op, ORC_EDRIVER, "local: %s is FAILED: %s", n->name, n->failed);
    return 0; /* a stopped node too, as it is (res_state STOPPED): start makes it usable */
}

int local_bad_name(orc_op_t *op, const char *what, const char *name)
{
    return orc_op_failf(op, ORC_EINVAL, "local: bad %s '%.64s' (want [A-Za-z0-9_-], 1-%d chars)",
                        what, name ? name : "(null)", LOCAL_NAME_MAX);
}

static int local_provision(void *state, orc_op_t *op, const struct orc_node_req *req)
{
    struct local *s = state;
    struct local_node *n;
    struct lop *lo;
    int rc, status = 0;

    if (req == NULL || !local_node_name_ok(req->name))
        return local_bad_name(op, "resource name", req ? req->name : NULL);
    if (s->closing)
        return orc_op_failf(op, ORC_ECONFLICT, "local: site is closing");
    lo = lop_new(s, op, LOP_PROVISION);
    if (lo == NULL)
        return ORC_ENOMEM;
    rc = lop_defer(lo, 0);
    n = local_node_find(s, req->name);
    if (rc == 0 && n != NULL)
        status = existing_status(s, op, n, req); /* idempotent: the same node */
    else if (rc == 0)
        rc = provision_new(s, op, req, &status);
    if (rc < 0) {
        lop_free(lo);
        return rc;
    }
    lo->status = status;
    return 0;
}

/* ---- deprovision, status, adopt, inventory
 * -------------------------------------------------------- */

static int local_deprovision(void *state, orc_op_t *op, const char *name)
{
    struct local *s = state;
    struct local_node *n;
    struct lop *lo;
    int rc = 0;

    if (!local_node_name_ok(name))
        return local_bad_name(op, "resource name", name);
    if (s->closing)
        return orc_op_failf(op, ORC_ECONFLICT, "local: site is closing");
    lo = lop_new(s, op, LOP_DEPROVISION);
    if (lo == NULL)
        return ORC_ENOMEM;
    n = local_node_find(s, name);
    op->exists = n != NULL;
    if (n == NULL) {
        local_trash(s, name, true); /* a directory without node.json: not a node */
        rc = lop_defer(lo, 0);
        if (rc < 0)
            lop_free(lo);
        return rc;
    }
    lo->work = n;
    lo->wnext = n->del_ops;
    n->del_ops = lo;
    if (!n->deleting)
        node_delete_start(n);
    else
        local_node_kick(n);
    return 0;
}

static int report_op(struct local *s, orc_op_t *op, enum lop_kind kind, const char *name)
{
    struct lop *lo;
    int rc;

    if (!local_node_name_ok(name))
        return local_bad_name(op, "resource name", name);
    if (s->closing)
        return orc_op_failf(op, ORC_ECONFLICT, "local: site is closing");
    lo = lop_new(s, op, kind);
    if (lo == NULL)
        return ORC_ENOMEM;
    rc = lop_defer(lo, 0);
    if (rc == 0) {
        struct local_node *n = local_node_find(s, name);
        if (n != NULL && kind == LOP_ADOPT && !n->deleting) {
            for (struct local_wl *w = n->wls; w != NULL; w = w->next)
                local_wl_attach(w); /* no-op for what is watched already */
            orc_host_log_resource(s->host, name, ORC_DRV_LOG_INFO, "local: node %s adopted", name);
        }
        rc = local_report(s, op, n);
    }
    if (rc < 0)
        lop_free(lo);
    return rc;
}

static int local_status(void *state, orc_op_t *op, const char *name)
{
    return report_op(state, op, LOP_STATUS, name);
}

static int local_adopt(void *state, orc_op_t *op, const char *name)
{
    return report_op(state, op, LOP_ADOPT, name);
}

static int local_inventory(void *state, orc_op_t *op)
{
    struct local *s = state;
    struct lop *lo;
    int rc;

    if (s->closing)
        return orc_op_failf(op, ORC_ECONFLICT, "local: site is closing");
    lo = lop_new(s, op, LOP_INVENTORY);
    if (lo == NULL)
        return ORC_ENOMEM;
    rc = lop_defer(lo, 0);
    if (rc == 0)
        rc = local_inventory_report(s, op);
    if (rc < 0)
        lop_free(lo);
    return rc;
}

/* ---- workloads, exec, logs
 * ----------------------------------------------------------------------- */

int local_node_for(struct local *s, orc_op_t *op, const char *name, const char *workload,
                   struct local_node **out)
{
    if (!local_node_name_ok(name))
        return local_bad_name(op, "resource name", name);
    if (workload != NULL && !local_wl_id_ok(workload))
        return local_bad_name(op, "workload id", workload);
    if (s->closing)
        return orc_op_failf(op, ORC_ECONFLICT, "local: site is closing");
    *out = local_node_find(s, name);
    if (*out == NULL)
        return orc_op_failf(op, ORC_ENOTFOUND, "local: no node %s", name);
    if ((*out)->deleting)
        return orc_op_failf(op, ORC_ECONFLICT, "local: %s is being deleted", name);
    return 0;
}

/* start_workload's results: the node, the workload's pid and state, and
 * where it answers when it has a port of its own. */
static int start_report(struct local *s, orc_op_t *op, struct local_wl *w)
{
    char pid[24], url[48];
    int rc = local_report(s, op, w->node);

    snprintf(pid, sizeof(pid), "%ld", (long)(local_wl_live(w) ? w->pid : 0));
    if (rc == 0)
        rc = s->host->op_attr_set(op, "pid", pid);
    if (rc == 0 && w->port != 0) {
        snprintf(url, sizeof(url), "http://127.0.0.1:%u", w->port);
        rc = s->host->op_attr_set(op, ORC_ATTR_ENDPOINT, url);
    }
    if (rc == 0)
        rc = s->host->op_attr_set(op, "workload_state", local_wl_state_name(w->st));
    op->exit_status = -1;
    return rc;
}

void local_ready_done(struct lop *lo, struct local_wl *w)
{
    struct local *s = lo->s;
    int rc = lo->kind == LOP_START ? start_report(s, lo->op, w) : local_report(s, lo->op, w->node);

    lop_finish(lo, rc);
}

/* Checks of a start_workload that may start (or start again) a workload. */
static int start_check(struct local *s, orc_op_t *op, struct local_node *n, struct local_wl *w,
                       const struct orc_exec_req *req)
{
    if (n->stopped)
        return orc_op_failf(op, ORC_ECONFLICT, "local: node %s is STOPPED: start it first",
                            n->name);
    if (w == NULL && n->failed != NULL)
        return orc_op_failf(op, ORC_ECONFLICT, "local: %s is FAILED (%s): deprovision it", n->name,
                            n->failed);
    if (w != NULL && w->held && local_wl_live(w))
        return orc_op_failf(op, ORC_ECONFLICT, "local: workload %s of %s is still stopping", w->id,
                            n->name);
    if (w == NULL || w->held) /* a new workload, or one started anew after a stop */
        return local_req_check(s, op, n, req);
    if (w->service && w->st == LOCAL_WL_FAILED)
        return orc_op_failf(op, ORC_EDRIVER, "local: service %s of %s gave up: %s", w->id, n->name,
                            n->failed ? n->failed : "it kept failing");
    return 0;
}

/* Starts req's workload (new, or held by a stop) for lo. */
static int start_spawn(struct local *s, struct lop *lo, struct local_node *n,
                       const struct orc_exec_req *req, struct local_wl **w)
{
    char err[300];
    int rc;

    *w = local_wl_find(n, req->workload ? req->workload : "main");
    if (*w == NULL || !(*w)->held)
        return local_wl_start(s, lo->op, n, req, w); /* idempotent: started once */
    rc = local_wl_redefine(*w, req);                 /* after a stop: what the request says now */
    if (rc == 0)
        rc = local_wl_release(*w, err, sizeof(err));
    else
        snprintf(err, sizeof(err), "out of memory");
    local_persist(s);
    if (rc < 0)
        return orc_op_failf(lo->op, rc == ORC_ECONFLICT || rc == ORC_ENOMEM ? rc : ORC_EINVAL,
                            "local: cannot start workload %s on %s again: %s", (*w)->id, n->name,
                            err);
    return 0;
}

static int local_start_workload(void *state, orc_op_t *op, const struct orc_exec_req *req)
{
    struct local *s = state;
    struct local_node *n;
    struct local_wl *w;
    struct lop *lo;
    int rc;

    if (req == NULL)
        return orc_op_failf(op, ORC_EINVAL, "local: no request");
    rc = local_node_for(s, op, req->name, req->workload, &n);
    if (rc < 0)
        return rc;
    w = local_wl_find(n, req->workload ? req->workload : "main");
    rc = start_check(s, op, n, w, req);
    if (rc < 0)
        return rc;
    lo = lop_new(s, op, LOP_START);
    if (lo == NULL)
        return ORC_ENOMEM;
    rc = start_spawn(s, lo, n, req, &w);
    if (rc == 0 && w->service && (w->st == LOCAL_WL_RUNNING || w->st == LOCAL_WL_BACKOFF))
        rc = local_ready_wait(lo, w); /* calls back once it is ready */
    else if (rc == 0)
        rc = lop_defer(lo, start_report(s, op, w)); /* a job, or one that ended */
    if (rc < 0) {
        lop_free(lo);
        return rc;
    }
    return 0;
}

static int local_exec_slot(void *state, orc_op_t *op, const struct orc_exec_req *req)
{
    struct local *s = state;
    struct local_node *n;
    struct lop *lo;
    int rc;

    if (req == NULL)
        return orc_op_failf(op, ORC_EINVAL, "local: no request");
    rc = local_node_for(s, op, req->name, NULL, &n);
    if (rc == 0 && n->stopped)
        rc = orc_op_failf(op, ORC_ECONFLICT, "local: node %s is STOPPED: start it first", n->name);
    if (rc == 0)
        rc = local_req_check(s, op, n, req);
    if (rc < 0)
        return rc;
    lo = lop_new(s, op, LOP_EXEC);
    if (lo == NULL)
        return ORC_ENOMEM;
    rc = local_exec(s, lo, n, req);
    if (rc < 0)
        lop_free(lo);
    return rc;
}

static int local_logs_slot(void *state, orc_op_t *op, const struct orc_logs_req *req)
{
    struct local *s = state;
    struct local_node *n;
    struct lop *lo;
    int rc;

    if (req == NULL)
        return orc_op_failf(op, ORC_EINVAL, "local: no request");
    if (!local_node_name_ok(req->name))
        return local_bad_name(op, "resource name", req->name);
    if (req->workload != NULL && !local_wl_id_ok(req->workload))
        return local_bad_name(op, "workload id", req->workload);
    if (s->closing)
        return orc_op_failf(op, ORC_ECONFLICT, "local: site is closing");
    n = local_node_find(s, req->name);
    if (n == NULL)
        return orc_op_failf(op, ORC_ENOTFOUND, "local: no node %s", req->name);
    lo = lop_new(s, op, LOP_LOGS);
    if (lo == NULL)
        return ORC_ENOMEM;
    rc = local_logs(s, lo, n, req);
    if (rc < 0)
        lop_free(lo);
    return rc;
}

/* ---- cancel
 * ---------------------------------------------------------------------------------------- */

static int cancel_deprovision(struct lop *lo)
{
    struct local_node *n = lo->work;
    struct lop **pp;
    int rc;

    for (pp = &n->del_ops; *pp != NULL && *pp != lo; pp = &(*pp)->wnext)
        ;
    if (*pp == NULL)
        return ORC_ENOTFOUND;
    snprintf(lo->op->error, sizeof(lo->op->error),
             "local: deprovision of %s canceled (its deletion goes on)", n->name);
    rc = lop_defer(lo, ORC_ECANCELED);
    if (rc < 0)
        return rc;
    *pp = lo->wnext;
    lo->work = NULL;
    lo->canceled = true;
    return 0;
}

static int local_cancel(void *state, orc_op_t *target)
{
    struct local *s = state;
    struct lop *lo;

    for (lo = s->ops; lo != NULL && lo->op != target; lo = lo->next)
        ;
    if (lo == NULL || lo->kind == LOP_CLOSE)
        return ORC_ENOTFOUND;
    if (lo->timer != 0 || lo->canceled)
        return 0; /* completing already, or canceled already */
    switch (lo->kind) {
    case LOP_OPEN:
    case LOP_EXEC:
        lo->canceled = true;
        if (lo->work != NULL)
            local_child_kill(lo->work, SIGKILL); /* its callback answers ECANCELED */
        return 0;
    case LOP_LOGS:
        lo->canceled = true; /* the read finishes soon and answers ECANCELED */
        return 0;
    case LOP_DEPROVISION:
        return lo->work != NULL ? cancel_deprovision(lo) : 0;
    case LOP_STOP_WL:
    case LOP_STOP:
        return lo->work != NULL ? local_stop_cancel(lo) : 0;
    case LOP_START:
    case LOP_START_RES:
        if (lo->work == NULL)
            return 0;        /* answered already */
        lo->canceled = true; /* what started stays started */
        local_ready_abort(lo, ORC_ECANCELED, "local: start canceled while waiting for readiness");
        return 0;
    default:
        return ORC_ENOTFOUND;
    }
}

/* ---- the vtable
 * ------------------------------------------------------------------------------------ */

static const struct orc_driver local_driver = {
    ORC_DRIVER_HEADER,
    .name = "local",
    .version = "1.0",
    .caps = ORC_DRV_CAP_COMPUTE | ORC_DRV_CAP_SERVICE | ORC_DRV_CAP_JOB | ORC_DRV_CAP_GPU |
            ORC_DRV_CAP_ADOPT | ORC_DRV_CAP_MULTI_NODE | ORC_DRV_CAP_NODE_JSON,
    .state_size = sizeof(struct local),
    .site_open = local_site_open,
    .site_close = local_site_close,
    .inventory = local_inventory,
    .provision = local_provision,
    .deprovision = local_deprovision,
    .status = local_status,
    .adopt = local_adopt,
    .start_workload = local_start_workload,
    .exec = local_exec_slot,
    .logs = local_logs_slot,
    .cancel = local_cancel,
    .stop_workload = local_stop_workload,
    .stop = local_stop,
    .start = local_start,
};

ORC_DRIVER_EXPORT const struct orc_driver *orc_driver_entry(void);

ORC_DRIVER_EXPORT const struct orc_driver *orc_driver_entry(void)
{
    return &local_driver;
}
