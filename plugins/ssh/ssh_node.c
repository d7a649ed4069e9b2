/*
 * Nodes of an ssh site (ssh.h): provision (allocate on a host, install the
 * runtime there when it is the host's first node, create the work
 * directory and its node.json marker), deprovision (stop every workload's
 * gpu-agent, then kill whatever still runs from the directory or carries
 * its ORC_NODE_DIR, remove it, verify it is gone), status and adopt (the
 * marker on the host says), and the pool's inventory. A deletion that
 * cannot reach its host is retried in the background until it succeeds.
 */
#include <stdio.h>
#include <string.h>

#include "ssh.h"

#define SH_DOOM_RETRY_MS 15000

static const char ensure_script[] =
    "umask 077; mkdir -p \"$D\" && printf '%s' \"$M\" > \"$D/node.json.tmp\" && "
    "mv -f \"$D/node.json.tmp\" \"$D/node.json\" && echo ready";

/* Stops the agents (SIGTERM: each stops its workloads within its grace),
 * waits up to $T tenths of a second, then SIGKILLs every process whose
 * cwd is the directory or whose environment names it, removes it, checks.
 * The sweep forks one grep for the whole process table, not one per
 * process: forty deletions at once on a busy host stay cheap. */
static const char delete_script[] =
    "if [ ! -d \"$D\" ]; then echo absent; exit 0; fi; "
    "for f in \"$D\"/*.pid; do [ -f \"$f\" ] && read -r p < \"$f\" && kill -TERM \"$p\" 2>/dev/null; "
    "done; i=0; while [ $i -lt \"$T\" ]; do a=0; for f in \"$D\"/*.pid; do "
    "[ -f \"$f\" ] && read -r p < \"$f\" && kill -0 \"$p\" 2>/dev/null && a=1; done; "
    "[ $a = 0 ] && break; sleep 0.1; i=$((i+1)); done; "
    "sweep() { for p in /proc/[0-9]*; do q=${p#/proc/}; "
    "[ \"$q\" != $$ ] && [ \"$p/cwd\" -ef \"$D\" ] && kill -KILL \"$q\" 2>/dev/null; done; "
    "for f in $(grep -lzxF -- \"ORC_NODE_DIR=$D\" /proc/[0-9]*/environ 2>/dev/null); do "
    "q=${f#/proc/}; q=${q%/environ}; [ \"$q\" = $$ ] || kill -KILL \"$q\" 2>/dev/null; done; }; "
    "sweep; sleep 0.1; sweep; rm -rf \"$D\"; if [ -e \"$D\" ]; then echo left; exit 1; fi; "
    "echo removed";

static const char status_script[] = "if [ -f \"$D/node.json\" ]; then echo present; "
                                    "else echo absent; fi";

int sh_report(struct sh *s, orc_op_t *op, const struct sh_node *n)
{
    const struct sh_host *h = &s->hosts[n->host];
    char gpus[SH_MAX_GPUS * 4 + 1] = "", *id;
    size_t len = 0;

    op->exists = true;
    op->res_state = n->failed ? ORC_DRV_RES_FAILED : ORC_DRV_RES_READY;
    for (uint32_t i = 0; i < n->ngpus; i++)
        len += (size_t)snprintf(gpus + len, sizeof(gpus) - len, "%s%u", i ? "," : "", n->gpus[i]);
    id = sh_printf(s, "%s:%s", h->name, n->dir);
    if (id == NULL)
        return ORC_ENOMEM;
    if (s->host->op_attr_set(op, ORC_ATTR_PRIVATE_ADDRESS, h->address) < 0 ||
        s->host->op_attr_set(op, ORC_ATTR_PUBLIC_ADDRESS, h->address) < 0 ||
        s->host->op_attr_set(op, ORC_ATTR_PROVIDER_ID, id) < 0 ||
        s->host->op_attr_set(op, ORC_ATTR_FLAVOR, h->name) < 0 ||
        s->host->op_attr_set(op, "host", h->name) < 0 ||
        s->host->op_attr_set(op, "work_dir", n->dir) < 0 ||
        (n->ngpus && (s->host->op_attr_set(op, ORC_ATTR_GPU_MODEL, n->model) < 0 ||
                      s->host->op_attr_set(op, "gpus", gpus) < 0))) {
        s->host->free(id);
        return ORC_ENOMEM;
    }
    s->host->free(id);
    return 0;
}

static bool name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n > SH_NAME_MAX)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
            return false;
    return true;
}

static int bad_name(orc_op_t *op, const char *name)
{
    return orc_op_failf(op, ORC_EINVAL, "ssh: bad resource name '%.80s' (expected [a-z0-9-], 1-63)",
                        name ? name : "(null)");
}

static void unlink_node(struct sh *s, struct sh_node *n)
{
    for (struct sh_node **pp = &s->nodes; *pp; pp = &(*pp)->next)
        if (*pp == n) {
            *pp = n->next;
            return;
        }
}

/* ---- provision --------------------------------------------------------------------------------
 */

static void on_ensured(struct sop *o, int status)
{
    struct sh *s = o->s;
    struct sh_node *n = o->node;

    if (status == 0 && (o->req.exit_status != 0 || !o->req.out || !strstr(o->req.out, "ready"))) {
        snprintf(o->op->error, sizeof(o->op->error), "ssh: host %s: cannot create %s: %.150s",
                 s->hosts[n->host].name, n->dir, o->req.err ? o->req.err : "");
        status = ORC_EDRIVER;
    }
    if (status < 0) {
        n->failed = true; /* the engine deprovisions it: that cleans the host */
        sop_done(o, status);
        return;
    }
    n->failed = false;
    status = sh_report(s, o->op, n);
    sop_done(o, status);
}

/* The work directory and its marker: one command. 0 or < 0. */
static int ensure(struct sop *o)
{
    struct sh_node *n = o->node;
    char *marker = sh_node_json(n);
    const char *vars[] = {"D", n->dir, "M", marker ? marker : "", NULL};
    int rc = marker ? sop_run(o, &o->s->hosts[n->host], vars, ensure_script, NULL, on_ensured)
                    : ORC_ENOMEM;

    o->s->host->free(marker);
    return rc;
}

/* The node's GPUs are still there after gpu-agent's discovery. */
static bool gpus_confirmed(const struct sh_node *n)
{
    const struct sh_host *h = &n->s->hosts[n->host];

    for (uint32_t i = 0; i < n->ngpus; i++)
        if (n->gpus[i] >= h->ngpus)
            return false;
    return true;
}

static void on_runtime(struct sop *o, int status)
{
    struct sh_node *n = o->node;

    o->install_wait = false;
    if (status == 0 && !gpus_confirmed(n)) {
        snprintf(o->op->error, sizeof(o->op->error),
                 "ssh: host %s: gpu-agent found fewer %s GPUs than declared (see the site's log)",
                 o->s->hosts[n->host].name, n->model);
        status = ORC_DRV_ENOCAPACITY;
    }
    if (status == 0)
        status = ensure(o);
    if (status < 0) {
        n->failed = true;
        sop_done(o, status);
    }
}

static int node_new(struct sh *s, orc_op_t *op, const struct orc_node_req *req,
                    struct sh_node **out)
{
    struct sh_node *n = s->host->calloc(1, sizeof(*n));
    int rc;

    if (n == NULL)
        return ORC_ENOMEM;
    n->s = s;
    n->kind = req->kind;
    snprintf(n->name, sizeof(n->name), "%s", req->name);
    rc = sh_allocate(s, op, req, n);
    if (rc < 0) {
        s->host->free(n);
        return rc;
    }
    n->dir = sh_printf(s, "%s/%s", s->work_dir, n->name);
    if (n->dir == NULL) {
        sh_release(n);
        s->host->free(n);
        return ORC_ENOMEM;
    }
    n->next = s->nodes;
    s->nodes = n;
    *out = n;
    return 0;
}

int sh_provision(void *state, orc_op_t *op, const struct orc_node_req *req)
{
    struct sh *s = state;
    struct sh_node *n;
    struct sop *o;
    int rc;

    if (s->closing)
        return orc_op_failf(op, ORC_ECONFLICT, "ssh: the site is closing");
    if (!name_ok(req->name))
        return bad_name(op, req->name);
    if (req->kind != ORC_KIND_COMPUTE)
        return orc_op_failf(op, ORC_ENOTSUP, "ssh: provision makes compute nodes only");
    n = sh_node_find(s, req->name);
    if (n && n->deleting)
        return orc_op_failf(op, ORC_ECONFLICT, "ssh: %s is being deleted", req->name);
    if (n == NULL && (rc = node_new(s, op, req, &n)) < 0)
        return rc;
    o = sop_new(s, op, SOP_PROVISION);
    if (o == NULL)
        return ORC_ENOMEM;
    o->node = n;
    o->h = &s->hosts[n->host];
    rc = sh_runtime_ready(o, o->h, on_runtime);
    if (rc == 1) {
        if (!gpus_confirmed(n)) {
            rc = orc_op_failf(op, ORC_DRV_ENOCAPACITY,
                              "ssh: host %s: gpu-agent found fewer %s GPUs than declared",
                              o->h->name, n->model);
        } else {
            rc = ensure(o);
        }
    }
    if (rc < 0) {
        n->failed = true;
        return sop_started(o, rc);
    }
    return 0;
}

/* ---- deprovision --------------------------------------------------------------------------------
 */

static void doom_tick(void *arg);

static void doom_later(struct sh *s)
{
    if (s->doom_timer == 0 && !s->closing)
        s->doom_timer = s->host->timer_start(s->host, SH_DOOM_RETRY_MS, doom_tick, s);
}

static void on_deleted(struct sop *o, int status)
{
    struct sh *s = o->s;
    struct sh_node *n = o->node;

    if (status == 0 && o->req.exit_status != 0) {
        if (o->op)
            snprintf(o->op->error, sizeof(o->op->error),
                     "ssh: host %s: %s is still there after rm -rf: %.120s", s->hosts[n->host].name,
                     n->dir, o->req.err ? o->req.err : "");
        status = ORC_EDRIVER;
    }
    n->deleting = false;
    if (status < 0) {
        if (status != ORC_ECANCELED) {
            n->doomed = true; /* the background retry finishes it */
            doom_later(s);
        }
        sop_done(o, status);
        return;
    }
    if (o->op)
        o->op->exists = true;
    unlink_node(s, n);
    sh_release(n);
    sh_node_free(n);
    sop_done(o, 0);
}

static int delete_node(struct sop *o, struct sh_node *n)
{
    struct sh *s = o->s;
    char ticks[16];
    const char *vars[] = {"D", n->dir, "T", ticks, NULL};

    snprintf(ticks, sizeof(ticks), "%u", s->stop_timeout_ms / 100);
    n->deleting = true;
    o->node = n;
    o->h = &s->hosts[n->host];
    return sop_run(o, o->h, vars, delete_script, NULL, on_deleted);
}

static void doom_tick(void *arg)
{
    struct sh *s = arg;

    s->doom_timer = 0;
    for (struct sh_node *n = s->nodes; n && !s->closing; n = n->next) {
        struct sop *o;
        if (!n->doomed || n->deleting)
            continue;
        o = sop_new(s, NULL, SOP_DEPROVISION);
        if (o == NULL || delete_node(o, n) < 0) {
            if (o)
                sop_done(o, ORC_EDRIVER);
            doom_later(s);
            return;
        }
        n->doomed = false;
    }
}

/* The start of a slot on a node by name: the name checked, the sop made,
 * the node looked up (*n NULL: this site holds none of that name). NULL
 * with *rc the error when the slot cannot start. */
static struct sop *named_sop(struct sh *s, orc_op_t *op, const char *name, enum sop_kind kind,
                             struct sh_node **n, int *rc)
{
    struct sop *o;

    *n = NULL;
    if (!name_ok(name)) {
        *rc = bad_name(op, name);
        return NULL;
    }
    o = sop_new(s, op, kind);
    if (o == NULL) {
        *rc = ORC_ENOMEM;
        return NULL;
    }
    *n = sh_node_find(s, name);
    return o;
}

int sh_deprovision(void *state, orc_op_t *op, const char *name)
{
    struct sh *s = state;
    struct sh_node *n;
    int rc;
    struct sop *o = named_sop(s, op, name, SOP_DEPROVISION, &n, &rc);

    if (o == NULL)
        return rc;
    if (n == NULL) { /* never here, or gone already */
        op->exists = false;
        rc = sop_defer(o, 0);
    } else if (n->deleting) {
        o->op = NULL;
        sop_done(o, 0);
        return orc_op_failf(op, ORC_ECONFLICT, "ssh: %s is being deleted", name);
    } else {
        n->doomed = false;
        rc = delete_node(o, n);
    }
    return sop_started(o, rc);
}

/* ---- status and adopt -------------------------------------------------------------------------
 */

static void on_status(struct sop *o, int status)
{
    struct sh_node *n = o->node;

    if (status == 0 && o->req.out && strstr(o->req.out, "present"))
        status = sh_report(o->s, o->op, n);
    else if (status == 0) {
        o->op->exists = true; /* we hold it, the host lost it */
        o->op->res_state = ORC_DRV_RES_FAILED;
    }
    sop_done(o, status);
}

int sh_status(void *state, orc_op_t *op, const char *name)
{
    struct sh *s = state;
    struct sh_node *n;
    int rc;
    struct sop *o = named_sop(s, op, name, SOP_STATUS, &n, &rc);

    if (o == NULL)
        return rc;
    if (n == NULL) {
        op->exists = false;
        rc = sop_defer(o, 0);
    } else if (n->deleting || n->failed) {
        op->exists = true;
        op->res_state = n->deleting ? ORC_DRV_RES_DELETING : ORC_DRV_RES_FAILED;
        rc = sop_defer(o, 0);
    } else {
        const char *vars[] = {"D", n->dir, NULL};
        o->node = n;
        rc = sop_run(o, &s->hosts[n->host], vars, status_script, NULL, on_status);
    }
    return sop_started(o, rc);
}

/* ---- inventory
 * ------------------------------------------------------------------------------------ */

static int add_model_pool(struct sh *s, orc_op_t *op, const char *model)
{
    struct orc_pool p = {.name = model, .gpu_model = model, .price_hour = -1};

    for (int i = 0; i < s->nhosts; i++) {
        const struct sh_host *h = &s->hosts[i];
        uint32_t base = 0;
        for (uint32_t m = 0; m < h->nmodels; m++) {
            if (strcmp(h->models[m].model, model) == 0) {
                uint32_t fr = 0;
                for (uint32_t g = base; g < base + h->models[m].count; g++)
                    fr += !h->gpu_used[g];
                p.gpus_total += h->models[m].count;
                p.gpus_free += h->down ? 0 : fr;
                if (h->models[m].count > p.max_gpus_per_node)
                    p.max_gpus_per_node = h->models[m].count;
            }
            base += h->models[m].count;
        }
    }
    return s->host->op_pool_add(op, &p);
}

int sh_inventory(void *state, orc_op_t *op)
{
    struct sh *s = state;
    struct orc_pool cpu = {.name = "cpu", .price_hour = -1};
    struct sop *o;
    int rc = 0;

    for (int i = 0; i < s->nhosts; i++) {
        const struct sh_host *h = &s->hosts[i];
        cpu.cpus_total += h->cpus;
        cpu.mem_total += h->mem;
        if (!h->down) {
            cpu.cpus_free += h->cpus - (h->cpus_used < h->cpus ? h->cpus_used : h->cpus);
            cpu.mem_free += h->mem > h->mem_used ? h->mem - h->mem_used : 0;
        }
        for (uint32_t m = 0; m < h->nmodels && rc == 0; m++) {
            bool seen = false;
            for (int j = 0; j < i && !seen; j++)
                for (uint32_t k = 0; k < s->hosts[j].nmodels; k++)
                    seen = seen || strcmp(s->hosts[j].models[k].model, h->models[m].model) == 0;
            for (uint32_t k = 0; k < m && !seen; k++)
                seen = strcmp(h->models[k].model, h->models[m].model) == 0;
            if (!seen)
                rc = add_model_pool(s, op, h->models[m].model);
        }
    }
    if (rc == 0)
        rc = s->host->op_pool_add(op, &cpu);
    if (rc < 0)
        return rc;
    o = sop_new(s, op, SOP_INVENTORY);
    if (o == NULL)
        return ORC_ENOMEM;
    rc = sop_defer(o, 0);
    return sop_started(o, rc);
}
