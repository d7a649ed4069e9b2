/*
 * The slurm site's nodes: provision (the request fits a partition of the
 * partitions map and the largest node of it; WORK/NAME is made, the runtime
 * installed under WORK/.orc-runtime/ID and verified, the marker node.json
 * written last), deprovision (scancel of the node's jobs, wait until squeue
 * no longer lists them, rm -rf, verified), status and adopt (marker, job id
 * files, squeue), inventory (sinfo: one pool per GPU model of the map and a
 * CPU pool) and logs (the workload's log that gpu-agent writes, read with
 * tail/head on the login node). No allocation is held by a node: Slurm
 * allocates when a workload is submitted (slurm_job.c).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "slurm.h"

#define NODE_MARKER "node.json"

static int node_attrs(struct slurm *s, orc_op_t *op, const struct sl_node *n)
{
    char id[SL_PATH_LEN];
    int rc;

    op->exists = true;
    snprintf(id, sizeof(id), "%s/%s", s->work, n->name);
    rc = s->host->op_attr_set(op, ORC_ATTR_PROVIDER_ID, n->name);
    if (rc == 0 && n->model[0] != '\0')
        rc = s->host->op_attr_set(op, ORC_ATTR_GPU_MODEL, n->model);
    if (rc == 0)
        rc = s->host->op_attr_set(op, ORC_ATTR_FLAVOR,
                                  n->partition[0] ? n->partition : "(default partition)");
    if (rc == 0)
        rc = s->host->op_attr_set(op, "work_dir", id);
    if (rc == 0)
        rc = s->host->op_attr_set(op, "login", s->c.address);
    return rc;
}

/* What every slot on a named node checks first: the site takes operations
 * and name is a node name. 0, or < 0 with op->error. */
static int node_check(struct slurm *s, orc_op_t *op, const char *name)
{
    int rc = sl_ready(s, op);

    if (rc < 0)
        return rc;
    if (!sl_name_ok(name))
        return orc_op_failf(op, ORC_EINVAL, "slurm site %s: bad resource name '%s'", s->host->site,
                            name ? name : "(null)");
    return 0;
}

/* A new op of kind on node name (checked already), or NULL: out of memory. */
static struct sop *node_sop_new(struct slurm *s, orc_op_t *op, enum sop_kind kind,
                                const char *name)
{
    struct sop *so = sop_new(s, op, kind);

    if (so != NULL)
        snprintf(so->name, sizeof(so->name), "%s", name);
    return so;
}

/* node_check, then node_sop_new: 0 and *out, or < 0 (op->error set when
 * a check failed) and *out NULL. */
static int node_begin(struct slurm *s, orc_op_t *op, const char *name, enum sop_kind kind,
                      struct sop **out)
{
    int rc = node_check(s, op, name);

    *out = NULL;
    if (rc < 0)
        return rc;
    *out = node_sop_new(s, op, kind, name);
    return *out != NULL ? 0 : ORC_ENOMEM;
}

/* ---- provision ----------------------------------------------------------------------- */

static int no_model(struct slurm *s, orc_op_t *op, const char *model)
{
    char models[160];
    size_t k = 0;

    models[0] = '\0';
    for (size_t i = 0; i < s->c.nparts && k < sizeof(models); i++)
        k += (size_t)snprintf(models + k, sizeof(models) - k, "%s%s", i ? ", " : "",
                              s->c.parts[i].model);
    return orc_op_failf(op, ORC_DRV_ENOCAPACITY,
                        "insufficient capacity at site %s: no GPU model %s here (models: %s)",
                        s->host->site, model, models[0] ? models : "none");
}

/* The partitions map entry for a request without a model: the default
 * partition's, else the first. */
static const struct sl_part *any_part(const struct sl_conf *c)
{
    for (size_t i = 0; c->default_partition && i < c->nparts; i++)
        if (strcmp(c->parts[i].partition, c->default_partition) == 0)
            return &c->parts[i];
    return c->nparts > 0 ? &c->parts[0] : NULL;
}

static int node_fit(struct slurm *s, orc_op_t *op, const struct orc_node_req *req,
                    struct sl_node *n)
{
    const char *model = req->gpu_model && req->gpu_model[0] ? req->gpu_model : NULL;
    const struct sl_part *p = model ? sl_conf_part(&s->c, model) : NULL;

    if (model != NULL && p == NULL)
        return no_model(s, op, model);
    if (p == NULL && req->num_gpus > 0)
        p = any_part(&s->c);
    memset(n, 0, sizeof(*n));
    snprintf(n->name, sizeof(n->name), "%s", req->name);
    n->nodes = 1;
    n->gpus = req->num_gpus;
    n->cpus = req->num_cpus ? req->num_cpus : 1;
    n->mem = req->mem_size;
    snprintf(n->model, sizeof(n->model), "%s", p ? p->model : "");
    snprintf(n->partition, sizeof(n->partition), "%s",
             p                        ? p->partition
             : s->c.default_partition ? s->c.default_partition
                                      : "");
    snprintf(n->gres, sizeof(n->gres), "%s", p && p->gres ? p->gres : "");
    snprintf(n->runtime, sizeof(n->runtime), "%s", s->rt_dir);
    n->created_ms = sl_now_ms();
    return 0;
}

/* Requests larger than the largest node of the partition can never run. */
static bool too_big(struct sop *so, const char *text, size_t len)
{
    struct slurm *s = so->s;
    const struct sl_node *n = &so->node;
    const char *part = n->partition[0] ? n->partition : "(default)";
    struct sl_part_max m;

    sl_parse_part_max(text, len, n->gres[0] ? n->gres : NULL, &m);
    if (m.rows == 0)
        sop_failf(so, ORC_DRV_ENOCAPACITY,
                  "insufficient capacity at site %s: partition %s has no nodes", s->host->site,
                  part);
    else if (n->gpus > m.gpus)
        sop_failf(so, ORC_DRV_ENOCAPACITY,
                  "insufficient capacity at site %s: requested %u x %s on one node, partition %s "
                  "has at most %u per node",
                  s->host->site, n->gpus, n->model[0] ? n->model : "GPU", part, m.gpus);
    else if (n->cpus > m.cpus)
        sop_failf(so, ORC_DRV_ENOCAPACITY,
                  "insufficient capacity at site %s: requested %u cpus, partition %s has at most "
                  "%u per node",
                  s->host->site, n->cpus, part, m.cpus);
    else if (m.mem_mb > 0 && (n->mem >> 20) > m.mem_mb)
        sop_failf(so, ORC_DRV_ENOCAPACITY,
                  "insufficient capacity at site %s: requested %" PRIu64
                  " MiB of memory, partition %s has at most %" PRIu64 " MiB per node",
                  s->host->site, n->mem >> 20, part, m.mem_mb);
    else
        return false;
    return true;
}

static void provision_done(struct sop *so, int status)
{
    if (!sop_reply_ok(so, status, "writing the node marker"))
        return;
    so->op->res_state = ORC_DRV_RES_READY;
    if (node_attrs(so->s, so->op, &so->node) < 0)
        sop_oom(so);
    else
        sop_complete(so, 0);
}

static void marker_write(struct sop *so)
{
    struct slurm *s = so->s;
    struct rmt_cmd c;
    char *json = sl_node_json(s->host, &so->node);

    if (json == NULL) {
        sop_oom(so);
        return;
    }
    sl_cmd_begin(s, &c);
    sl_cmd_cd(s, &c, so->name);
    rmt_cmd_raw(&c, " && cat > " NODE_MARKER ".tmp && mv -f " NODE_MARKER ".tmp " NODE_MARKER);
    sop_run_or_fail(so, &c, json, strlen(json), provision_done);
}

static void installed(void *arg, int status, const char *error)
{
    struct sop *so = arg;

    so->inst = NULL;
    if (so->canceled)
        sop_complete(so, ORC_ECANCELED);
    else if (status < 0)
        sop_failf(so, status, "slurm site %s: installing the runtime in %s: %s", so->s->host->site,
                  so->s->rt_dir, error && error[0] ? error : orc_strerror(status));
    else
        marker_write(so);
}

static void provision_reply(struct sop *so, int status)
{
    struct slurm *s = so->s;
    const char *out, *mk, *mx;
    size_t len, mkn, mxn;
    struct sl_node old;
    int rc;

    if (!sop_reply_ok(so, status, "making the node directory"))
        return;
    out = sop_out(so, &len);
    sl_section(out, len, "@@marker", &mk, &mkn);
    if (mkn > 1 && sl_node_parse(mk, mkn, &old) == 0 && strcmp(old.name, so->name) == 0) {
        so->node = old; /* it exists: that node, never a second one */
        provision_done(so, 0);
        return;
    }
    sl_section(out, len, "@@max", &mx, &mxn);
    if (too_big(so, mx, mxn))
        return;
    rc = rmt_runtime_install(s->host, &s->target, &s->rt, s->work, s->c.install_timeout_ms,
                             installed, so, &so->inst);
    if (rc < 0)
        sop_failf(so, rc, "slurm site %s: installing the runtime: %s", s->host->site,
                  orc_strerror(rc));
}

int sl_provision(void *state, orc_op_t *op, const struct orc_node_req *req)
{
    struct slurm *s = state;
    struct sop *so;
    struct rmt_cmd c;
    int rc = node_check(s, op, req->name);

    if (rc < 0)
        return rc;
    if (req->kind != ORC_KIND_COMPUTE)
        return orc_op_failf(op, ORC_ENOTSUP,
                            "slurm site %s: provisions compute nodes only; services and jobs run "
                            "on one (start_workload, exec)",
                            s->host->site);
    so = node_sop_new(s, op, SOP_PROVISION, req->name);
    if (so == NULL)
        return ORC_ENOMEM;
    rc = node_fit(s, op, req, &so->node);
    if (rc < 0) {
        sop_drop(so);
        return rc;
    }
    sl_cmd_begin_work(s, &c);
    rmt_cmd_raw(&c, " && mkdir -p");
    rmt_cmd_word(&c, so->name);
    rmt_cmd_raw(&c, " && echo @@marker && { cat");
    rmt_cmd_word(&c, so->name);
    rmt_cmd_raw(&c, "/" NODE_MARKER " 2>/dev/null; echo; } && echo @@max && sinfo -h");
    if (so->node.partition[0] != '\0')
        rmt_cmd_word(&c, "-p");
    if (so->node.partition[0] != '\0')
        rmt_cmd_word(&c, so->node.partition);
    rmt_cmd_raw(&c, " -o '%G|%c|%m'");
    return sop_start_cmd(so, &c, provision_reply);
}

/* ---- deprovision --------------------------------------------------------------------- */

static void deprovision_poll(struct sop *so, int status);

static void removed(struct sop *so, int status)
{
    const char *out, *at;
    size_t len, n;

    if (!sop_reply_ok(so, status, "removing the node directory"))
        return;
    out = sop_out(so, &len);
    if (!sl_section(out, len, "@@removed", &at, &n)) {
        sop_failf(so, ORC_EDRIVER, "slurm site %s: %s/%s is still there after rm -rf",
                  so->s->host->site, so->s->work, so->name);
        return;
    }
    so->op->exists = so->existed;
    sop_complete(so, 0);
}

static void remove_dir(struct sop *so)
{
    struct rmt_cmd c;

    sl_cmd_begin_work(so->s, &c);
    rmt_cmd_raw(&c, " && rm -rf --");
    rmt_cmd_word(&c, so->name);
    rmt_cmd_raw(&c, "; [ ! -e");
    rmt_cmd_word(&c, so->name);
    rmt_cmd_raw(&c, " ] && echo @@removed; true");
    sop_run_or_fail(so, &c, NULL, 0, removed);
}

static void queue_reply(struct sop *so, int status)
{
    struct slurm *s = so->s;
    const char *out;
    size_t len;
    unsigned left;

    if (!sop_reply_ok(so, status, "squeue"))
        return;
    out = sop_out(so, &len);
    left = sl_parse_squeue_active(out, len);
    if (left == 0) {
        remove_dir(so);
        return;
    }
    if ((uint64_t)(sl_mono_ms() - so->t0_ms) > s->c.cancel_timeout_ms) {
        sop_failf(so, ORC_EDRIVER,
                  "slurm site %s: %u job(s) of %s still in squeue %" PRIu64 " ms after scancel",
                  s->host->site, left, so->name, s->c.cancel_timeout_ms);
        return;
    }
    sop_wait_poll(so, deprovision_poll);
}

static void deprovision_poll(struct sop *so, int status)
{
    struct rmt_cmd c;

    (void)status;
    sl_cmd_begin(so->s, &c);
    rmt_cmd_raw(&c, " squeue -h -t all -n");
    rmt_cmd_word(&c, so->name);
    rmt_cmd_raw(&c, " -o '%i|%T'");
    sop_run_or_fail(so, &c, NULL, 0, queue_reply);
}

static void canceled_jobs(struct sop *so, int status)
{
    const char *out, *at;
    size_t len, n;

    if (!sop_reply_ok(so, status, "scancel"))
        return;
    out = sop_out(so, &len);
    if (!sl_section(out, len, "@@exists", &at, &n)) {
        so->op->exists = false; /* nothing by that name: done */
        sop_complete(so, 0);
        return;
    }
    so->existed = true;
    so->t0_ms = sl_mono_ms();
    deprovision_poll(so, 0);
}

int sl_deprovision(void *state, orc_op_t *op, const char *name)
{
    struct slurm *s = state;
    struct sop *so;
    struct rmt_cmd c;
    int rc = node_begin(s, op, name, SOP_DEPROVISION, &so);

    if (rc < 0)
        return rc;
    sl_cmd_begin_work(s, &c);
    rmt_cmd_raw(&c, " 2>/dev/null || exit 0; [ -d");
    rmt_cmd_word(&c, name);
    rmt_cmd_raw(&c, " ] || exit 0; echo @@exists; scancel -u \"$(id -un)\" -n");
    rmt_cmd_word(&c, name);
    rmt_cmd_raw(&c, "; for f in");
    rmt_cmd_word(&c, name);
    rmt_cmd_raw(&c, "/*.jobid; do [ -f \"$f\" ] || continue; read -r id kind < \"$f\"; "
                    "case \"$id\" in ''|*[!0-9]*) ;; *) scancel \"$id\" 2>/dev/null;; esac; "
                    "done; true");
    return sop_start_cmd(so, &c, canceled_jobs);
}

/* ---- status and adopt ------------------------------------------------------------------ */

/* FAILED when a service the node ran is no longer in the queue. */
static int32_t node_state(const char *ids, size_t idn, const char *queue, size_t qn)
{
    char line[128], id[SL_JOBID_LEN], kind[16];

    for (const char *p = ids; p < ids + idn;) {
        const char *nl = memchr(p, '\n', (size_t)(ids + idn - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(ids + idn - p);
        if (n < sizeof(line)) {
            memcpy(line, p, n);
            line[n] = '\0';
            if (sscanf(line, "%23s %15s", id, kind) == 2 && strcmp(kind, "service") == 0 &&
                !sl_squeue_job_active(queue, qn, id))
                return ORC_DRV_RES_FAILED;
        }
        p += n + 1;
    }
    return ORC_DRV_RES_READY;
}

static void status_reply(struct sop *so, int status)
{
    struct slurm *s = so->s;
    const char *out, *mk, *ids, *q;
    size_t len, mkn, idn, qn;
    struct sl_node n;

    if (!sop_reply_ok(so, status, "looking the node up"))
        return;
    out = sop_out(so, &len);
    if (!sl_section(out, len, "@@marker", &mk, &mkn)) {
        so->op->exists = false;
        so->op->res_state = ORC_DRV_RES_UNKNOWN;
        sop_complete(so, 0);
        return;
    }
    so->op->exists = true;
    if (sl_node_parse(mk, mkn, &n) < 0) { /* a provision that did not finish */
        so->op->res_state = ORC_DRV_RES_CREATING;
        sop_complete(so, 0);
        return;
    }
    sl_section(out, len, "@@ids", &ids, &idn);
    sl_section(out, len, "@@queue", &q, &qn);
    so->op->res_state = node_state(ids, idn, q, qn);
    if (node_attrs(s, so->op, &n) < 0)
        sop_oom(so);
    else
        sop_complete(so, 0);
}

static int lookup(struct slurm *s, orc_op_t *op, const char *name, enum sop_kind kind)
{
    struct sop *so;
    struct rmt_cmd c;
    int rc = node_begin(s, op, name, kind, &so);

    if (rc < 0)
        return rc;
    sl_cmd_begin(s, &c);
    sl_cmd_cd(s, &c, name);
    rmt_cmd_raw(&c,
                " 2>/dev/null || exit 0; echo @@marker; cat " NODE_MARKER " 2>/dev/null; "
                "echo; echo @@ids; cat ./*.jobid 2>/dev/null; echo @@queue; squeue -h -t all -n");
    rmt_cmd_word(&c, name);
    rmt_cmd_raw(&c, " -o '%i|%T'");
    return sop_start_cmd(so, &c, status_reply);
}

int sl_status(void *state, orc_op_t *op, const char *name)
{
    return lookup(state, op, name, SOP_STATUS);
}

/* Nothing is watched between operations: adopting is looking it up. */
int sl_adopt(void *state, orc_op_t *op, const char *name)
{
    return lookup(state, op, name, SOP_ADOPT);
}

/* ---- inventory ---------------------------------------------------------------------- */

struct inv {
    struct slurm *s;
    struct orc_pool pools[64]; /* the map's models, then the CPU pool */
    size_t n;
    const char *cpu_part; /* NULL: the cluster's default (sinfo's '*') */
};

static void add_row(struct orc_pool *p, const struct sl_sinfo_row *r, uint32_t total, uint32_t used)
{
    p->gpus_total += total;
    p->cpus_total += r->cpus_total;
    p->mem_total += r->mem_mb << 20;
    if (total > p->max_gpus_per_node)
        p->max_gpus_per_node = total;
    if (!r->usable)
        return;
    p->gpus_free += used < total ? total - used : 0;
    p->cpus_free += r->cpus_alloc < r->cpus_total ? r->cpus_total - r->cpus_alloc : 0;
    p->mem_free += r->mem_alloc_mb < r->mem_mb ? (r->mem_mb - r->mem_alloc_mb) << 20 : 0;
}

static void inv_row(void *arg, const struct sl_sinfo_row *r)
{
    struct inv *v = arg;
    struct slurm *s = v->s;
    struct orc_pool *cpu = &v->pools[v->n - 1];

    for (size_t i = 0; i + 1 < v->n; i++) {
        const struct sl_part *p = &s->c.parts[i];
        if (strcmp(p->partition, r->partition) == 0)
            add_row(&v->pools[i], r, sl_gres_count(r->gres, p->gres),
                    sl_gres_count(r->gres_used, p->gres));
    }
    if (v->cpu_part ? strcmp(v->cpu_part, r->partition) == 0 : r->default_part)
        add_row(cpu, r, 0, 0);
}

static void inventory_reply(struct sop *so, int status)
{
    struct slurm *s = so->s;
    struct inv v = {.s = s, .cpu_part = s->c.default_partition};
    const char *out;
    size_t len;
    int rc = 0;

    if (!sop_reply_ok(so, status, "sinfo"))
        return;
    v.n = (s->c.nparts < 63 ? s->c.nparts : 63) + 1;
    for (size_t i = 0; i < v.n; i++) {
        v.pools[i].price_hour = -1;
        v.pools[i].name = i + 1 < v.n ? s->c.parts[i].model : "cpu";
        v.pools[i].gpu_model = i + 1 < v.n ? s->c.parts[i].model : NULL;
    }
    out = sop_out(so, &len);
    sl_parse_sinfo(out, len, inv_row, &v);
    for (size_t i = 0; rc == 0 && i < v.n; i++)
        rc = s->host->op_pool_add(so->op, &v.pools[i]);
    if (rc < 0)
        sop_failf(so, rc, "slurm site %s: out of memory", s->host->site);
    else
        sop_complete(so, 0);
}

int sl_inventory(void *state, orc_op_t *op)
{
    struct slurm *s = state;
    struct sop *so;
    struct rmt_cmd c;
    int rc = sl_ready(s, op);

    if (rc < 0)
        return rc;
    so = sop_new(s, op, SOP_INVENTORY);
    if (so == NULL)
        return ORC_ENOMEM;
    sl_cmd_begin(s, &c);
    rmt_cmd_raw(&c, " sinfo -h -N -O");
    rmt_cmd_word(&c, SL_SINFO_FORMAT);
    return sop_start_cmd(so, &c, inventory_reply);
}

/* ---- logs -------------------------------------------------------------------------------- */

static void logs_reply(struct sop *so, int status)
{
    struct slurm *s = so->s;
    const char *out, *nl;
    size_t len;
    uint64_t size = 0, off = 0;

    if (!sop_reply_ok(so, status, "reading the log"))
        return;
    out = sop_out(so, &len);
    if (len >= 6 && strncmp(out, "@@gone", 6) == 0) {
        sop_failf(so, ORC_ENOTFOUND, "slurm site %s: no node %s here", s->host->site, so->name);
        return;
    }
    nl = memchr(out, '\n', len);
    if (nl == NULL || sscanf(out, "@@log %" SCNu64 " %" SCNu64, &size, &off) != 2) {
        sop_failf(so, ORC_EFORMAT, "slurm site %s: unexpected answer reading %s's log",
                  s->host->site, so->wl_id);
        return;
    }
    len -= (size_t)(nl + 1 - out);
    so->op->out_offset = off;
    so->op->out_total = size > off + len ? size : off + len;
    if (s->host->op_output_set(so->op, nl + 1, len) < 0)
        sop_oom(so);
    else
        sop_complete(so, 0);
}

static void logs_cmd(struct slurm *s, struct sop *so, struct rmt_cmd *c, bool tail)
{
    char file[SL_NAME_MAX + 8];

    snprintf(file, sizeof(file), "%s.log", so->wl_id);
    sl_cmd_begin(s, c);
    sl_cmd_cd(s, c, so->name);
    rmt_cmd_raw(c, " 2>/dev/null || { echo @@gone; exit 0; }; ");
    rmt_cmd_var(c, "f", file);
    rmt_cmd_raw(c, "s=0; [ -f \"$f\" ] && s=$(wc -c < \"$f\"); s=$((s)); ");
    if (tail)
        rmt_cmd_rawf(c, "o=$((s > %u ? s - %u : 0)); ", so->log_max, so->log_max);
    else
        rmt_cmd_rawf(c, "o=%" PRIu64 "; [ \"$o\" -gt \"$s\" ] && o=$s; ", so->log_offset);
    rmt_cmd_rawf(c,
                 "printf '@@log %%s %%s\\n' \"$s\" \"$o\"; [ -f \"$f\" ] && "
                 "tail -c +$((o + 1)) \"$f\" | head -c %u; true",
                 so->log_max);
}

int sl_logs(void *state, orc_op_t *op, const struct orc_logs_req *req)
{
    struct slurm *s = state;
    const char *wl = req->workload ? req->workload : "main";
    struct sop *so;
    struct rmt_cmd c;
    int rc = sop_begin_wl(s, op, SOP_LOGS, req->name, wl, &so);

    if (rc < 0)
        return rc;
    so->log_max = req->max_bytes ? req->max_bytes : SL_LOGS_DEFAULT;
    if (so->log_max > SL_LOGS_MAX)
        so->log_max = SL_LOGS_MAX;
    so->log_offset = req->offset == ORC_LOGS_TAIL || req->offset > (UINT64_C(1) << 62)
                         ? (UINT64_C(1) << 62)
                         : req->offset;
    logs_cmd(s, so, &c, req->offset == ORC_LOGS_TAIL);
    return sop_start_cmd(so, &c, logs_reply);
}
