/*
 * Workloads on the slurm site: exec (a job: calls back when it ended, with
 * its exit status and the end of its log), start_workload (a service:
 * calls back once the job runs and gpu-agent's status file says the
 * service is running, or ready when it has a port, with its endpoint) and
 * stop_workload (scancel of the workload's job, until squeue says it ended).
 * Steps, one remote command each: the env file is written (stdin, mode
 * 0600) and the node's marker and job id file are read; the batch script
 * is written (stdin) and submitted with sbatch --parsable; the job is then
 * followed with scontrol show job (sacct when Slurm no longer knows it and
 * accounting answers) and the status file every poll_ms. A job PENDING past
 * queue_timeout_ms is canceled and the operation fails with
 * ORC_DRV_ENOCAPACITY and the pending reason. The job id is kept in
 * WORK/NAME/WORKLOAD.jobid, so that a start_workload of a service, or an
 * exec re-driven after a daemon restart, follows the job an earlier call
 * submitted while it has not ended instead of submitting a second one; and
 * so that a deprovision after a restart cancels it.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "slurm.h"

static void poll_job(struct sop *so, int status);

/* ---- the workload's copy of the request ------------------------------------------------- */

static char **strv_dup(const struct orc_host_api *host, const char *const *v)
{
    size_t n = 0;
    char **d;

    while (v[n] != NULL)
        n++;
    d = host->calloc(n + 1, sizeof(*d));
    for (size_t i = 0; d && i < n; i++) {
        d[i] = sl_strdup(host, v[i]);
        if (d[i] == NULL) {
            for (size_t k = 0; k < i; k++)
                host->free(d[k]);
            host->free(d);
            return NULL;
        }
    }
    return d;
}

void sl_wl_free(struct slurm *s, struct sl_wl *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; w->argv && w->argv[i]; i++)
        s->host->free(w->argv[i]);
    s->host->free(w->argv);
    s->host->free(w->envfile);
    s->host->free(w->workdir);
    s->host->free(w->ready_path);
    s->host->free(w);
}

/* "WORKLOAD.suffix" as one quoted word */
static void wl_file(struct sop *so, struct rmt_cmd *c, const char *suffix)
{
    char f[SL_NAME_MAX + 32];

    snprintf(f, sizeof(f), "%s%s", so->wl_id, suffix);
    rmt_cmd_word(c, f);
}

/* WORK/NAME/WORKLOAD.suffix as one quoted word */
static void wl_path(struct sop *so, struct rmt_cmd *c, const char *suffix)
{
    char p[SL_PATH_LEN + 128];

    snprintf(p, sizeof(p), "%s/%s/%s%s", so->s->work, so->name, so->wl_id, suffix);
    rmt_cmd_word(c, p);
}

/* ---- results -------------------------------------------------------------------------- */

static const char *first_host(const struct sl_wl *w)
{
    return w->ji.batch_host[0] ? w->ji.batch_host : w->ji.nodelist;
}

static int job_attrs(struct sop *so)
{
    struct slurm *s = so->s;
    struct sl_wl *w = so->w;
    int rc = s->host->op_attr_set(so->op, "slurm_job_id", w->jobid);

    if (rc == 0 && first_host(w)[0])
        rc = s->host->op_attr_set(so->op, "slurm_node", first_host(w));
    if (rc == 0 && w->ji.state[0])
        rc = s->host->op_attr_set(so->op, "slurm_state", w->ji.state);
    return rc;
}

static void service_up(struct sop *so, int status)
{
    struct slurm *s = so->s;
    struct sl_wl *w = so->w;
    const char *out;
    size_t len;
    char url[SL_FIELD_LEN + 32], ports[16];
    int rc;

    if (!sop_reply_ok(so, status, "scontrol show node"))
        return;
    out = sop_out(so, &len);
    if (!sl_parse_node_addr(out, len, w->addr, sizeof(w->addr)))
        snprintf(w->addr, sizeof(w->addr), "%.63s", first_host(w));
    so->op->exit_status = -1;
    rc = job_attrs(so);
    if (rc == 0)
        rc = s->host->op_attr_set(so->op, ORC_ATTR_PRIVATE_ADDRESS, w->addr);
    if (rc == 0 && w->port != 0) {
        snprintf(url, sizeof(url), "http://%s:%u", w->addr, w->port);
        snprintf(ports, sizeof(ports), "[%u]", w->port);
        rc = s->host->op_attr_set(so->op, ORC_ATTR_ENDPOINT, url);
        if (rc == 0)
            rc = s->host->op_attr_set(so->op, ORC_ATTR_PORTS, ports);
    }
    if (rc < 0)
        sop_oom(so);
    else
        sop_complete(so, 0);
}

static void service_addr(struct sop *so)
{
    struct rmt_cmd c;

    sl_cmd_begin(so->s, &c);
    rmt_cmd_raw(&c, " scontrol show node -o");
    rmt_cmd_word(&c, first_host(so->w)[0] ? first_host(so->w) : "(none)");
    sop_run_or_fail(so, &c, NULL, 0, service_up);
}

static void job_done(struct sop *so, int status)
{
    const char *out;
    size_t len;

    if (!sop_reply_ok(so, status, "reading the job's log"))
        return;
    out = sop_out(so, &len);
    if (so->s->host->op_output_set(so->op, out, len) < 0 || job_attrs(so) < 0)
        sop_oom(so);
    else
        sop_complete(so, 0);
}

/* A job ended with exit_status: its log's end is its output. */
static void job_finish(struct sop *so, int exit_status)
{
    struct rmt_cmd c;

    so->op->exit_status = exit_status;
    orc_host_log_resource(so->s->host, so->name, ORC_DRV_LOG_INFO,
                          "slurm: job %s of %s/%s ended %s, status %d", so->w->jobid, so->name,
                          so->wl_id, so->w->ji.state[0] ? so->w->ji.state : "?", exit_status);
    sl_cmd_begin(so->s, &c);
    rmt_cmd_rawf(&c, " tail -c %u", SL_TAIL_BYTES);
    wl_path(so, &c, ".log");
    rmt_cmd_raw(&c, " 2>/dev/null; true");
    sop_run_or_fail(so, &c, NULL, 0, job_done);
}

/* ---- submission ----------------------------------------------------------------------- */

/* sbatch refusals that no retry here can fix: the next site may. */
static bool capacity_refusal(const char *err)
{
    static const char *const says[] = {
        "Requested node configuration is not available",
        "Requested partition configuration not available",
        "Invalid generic resource",
        "More processors requested than permitted",
        "Memory required by task is not available",
        "Node count specification invalid",
        "Invalid partition name",
    };

    for (size_t i = 0; err && i < sizeof(says) / sizeof(says[0]); i++)
        if (strstr(err, says[i]) != NULL)
            return true;
    return false;
}

static void submitted(struct sop *so, int status)
{
    struct sl_wl *w = so->w;
    const char *out, *id;
    size_t len, n;

    if (status == 0 && so->req.exit_status != 0 && capacity_refusal(so->req.err)) {
        sop_failf(so, ORC_DRV_ENOCAPACITY, "insufficient capacity at site %s: sbatch: %.160s",
                  so->s->host->site, so->req.err + strspn(so->req.err, "sbatch: error: "));
        return;
    }
    if (!sop_reply_ok(so, status, "sbatch"))
        return;
    out = sop_out(so, &len);
    sl_section(out, len, "@@id", &id, &n);
    if (sl_parse_sbatch(id, n, w->jobid) < 0) {
        sop_failf(so, ORC_EFORMAT, "slurm site %s: sbatch printed no job id", so->s->host->site);
        return;
    }
    w->since_ms = sl_mono_ms();
    orc_host_log_resource(so->s->host, so->name, ORC_DRV_LOG_INFO,
                          "slurm: submitted job %s for %s/%s", w->jobid, so->name, so->wl_id);
    sop_wait_poll(so, poll_job);
}

static int script_of(struct sop *so, char **out)
{
    struct slurm *s = so->s;
    struct sl_wl *w = so->w;
    char *dir = sl_path(s, so->name, NULL);
    struct sl_script_in in = {.dir = dir,
                              .runtime = so->node.runtime,
                              .wl = so->wl_id,
                              .service = w->service,
                              .check = s->c.agent_check,
                              .gpus = so->node.gpus,
                              .port = w->port,
                              .ready_path = w->ready_path,
                              .workdir = w->workdir,
                              .argv = (const char *const *)w->argv};
    int rc = dir ? sl_script_build(s->host, &in, out) : ORC_ENOMEM;

    s->host->free(dir);
    return rc;
}

static void submit(struct sop *so)
{
    struct slurm *s = so->s;
    struct sl_wl *w = so->w;
    struct rmt_cmd c;
    char *script = NULL;
    int rc = script_of(so, &script);

    if (rc < 0) {
        sop_failf(so, rc, "slurm site %s: building the batch script: %s", s->host->site,
                  orc_strerror(rc));
        return;
    }
    w->reused = false;
    sl_cmd_begin(s, &c);
    sl_cmd_cd(s, &c, so->name);
    rmt_cmd_raw(&c, " && rm -f");
    wl_file(so, &c, ".status.json");
    rmt_cmd_raw(&c, " && cat >");
    wl_file(so, &c, ".sbatch");
    rmt_cmd_raw(&c, " && id=$(");
    sl_sbatch_args(s, &c, &so->node, so->wl_id, w->time_min);
    rmt_cmd_raw(&c, ") && printf '%s %s\\n' \"$id\"");
    rmt_cmd_word(&c, w->service ? "service" : "job");
    rmt_cmd_raw(&c, " >");
    wl_file(so, &c, ".jobid.tmp");
    rmt_cmd_raw(&c, " && mv -f");
    wl_file(so, &c, ".jobid.tmp");
    wl_file(so, &c, ".jobid");
    rmt_cmd_raw(&c, " && echo @@id && printf '%s\\n' \"$id\"");
    sop_run_or_fail(so, &c, script, strlen(script), submitted);
}

/* ---- following the job ---------------------------------------------------------------- */

static void canceled_pending(struct sop *so, int status)
{
    struct slurm *s = so->s;
    struct sl_wl *w = so->w;
    bool ok = status == 0 && so->req.exit_status == 0;

    sop_failf(so, ORC_DRV_ENOCAPACITY,
              "insufficient capacity at site %s: job %s of %s pending for %" PRId64
              " s (%s), past queue_timeout_ms %" PRIu64 "; %s",
              s->host->site, w->jobid, so->name, (sl_mono_ms() - w->since_ms) / 1000,
              w->ji.reason[0] ? w->ji.reason : "no reason given", s->c.queue_timeout_ms,
              ok ? "canceled" : "scancel failed");
}

static void pending(struct sop *so)
{
    struct slurm *s = so->s;
    struct sl_wl *w = so->w;
    struct rmt_cmd c;

    if (s->c.queue_timeout_ms == 0 ||
        (uint64_t)(sl_mono_ms() - w->since_ms) <= s->c.queue_timeout_ms) {
        sop_wait_poll(so, poll_job);
        return;
    }
    orc_host_log_resource(s->host, so->name, ORC_DRV_LOG_INFO,
                          "slurm: job %s of %s pending too long (%s): scancel", w->jobid, so->name,
                          w->ji.reason);
    sl_cmd_begin(s, &c);
    rmt_cmd_raw(&c, " scancel");
    rmt_cmd_word(&c, w->jobid);
    sop_run_or_fail(so, &c, NULL, 0, canceled_pending);
}

/* A job's status: its exit code, 128 + N for a signal. */
static int exit_of(const struct sl_wl *w)
{
    int code = !w->ji.has_exit          ? -1
               : w->ji.exit_signal != 0 ? 128 + w->ji.exit_signal
                                        : w->ji.exit_code;

    if (w->ji.st == SJ_FAILED && code <= 0)
        code = w->as.exit_status > 0 ? w->as.exit_status : 1;
    if (w->ji.st == SJ_COMPLETED && code < 0)
        code = 0;
    return code;
}

static void ended(struct sop *so)
{
    struct slurm *s = so->s;
    struct sl_wl *w = so->w;

    if (w->reused) { /* what an earlier call submitted ended: submit it again */
        submit(so);
        return;
    }
    if (sl_jstate_broken(w->ji.st) || w->service)
        sop_failf(so, ORC_EDRIVER, "slurm site %s: job %s of %s/%s %s%s: %s%s%s%s", s->host->site,
                  w->jobid, so->name, so->wl_id, w->service ? "ended " : "", w->ji.state,
                  w->ji.reason[0] ? w->ji.reason : "no reason given",
                  first_host(w)[0] ? " (node " : "", first_host(w), first_host(w)[0] ? ")" : "");
    else
        job_finish(so, exit_of(w));
}

/* Slurm forgot the job (MinJobAge) and accounting does not answer. */
static void vanished(struct sop *so)
{
    struct sl_wl *w = so->w;

    if (w->reused) {
        submit(so);
        return;
    }
    if (!w->service && w->as.found && w->as.exit_status >= 0) {
        snprintf(w->ji.state, sizeof(w->ji.state), "%s", w->as.state);
        job_finish(so, w->as.exit_status);
        return;
    }
    sop_failf(so, ORC_EDRIVER,
              "slurm site %s: job %s of %s/%s is no longer known to Slurm (scontrol, sacct) and "
              "left no exit status",
              so->s->host->site, w->jobid, so->name, so->wl_id);
}

/* A running service: true when it moved on (ready, or given up). */
static bool service_moves(struct sop *so)
{
    struct sl_wl *w = so->w;
    const char *st = w->as.state;

    if (!w->as.found)
        return false;
    if (strcmp(st, "ready") == 0 || (w->port == 0 && strcmp(st, "running") == 0)) {
        service_addr(so);
        return true;
    }
    if (strcmp(st, "unready") == 0 || strcmp(st, "failed") == 0) {
        sop_failf(so, ORC_EDRIVER,
                  "slurm site %s: service %s on %s is %s (job %s); its log: %s/%s/%s.log",
                  so->s->host->site, so->wl_id, so->name, st, w->jobid, so->s->work, so->name,
                  so->wl_id);
        return true;
    }
    return false;
}

static void read_job(struct sop *so)
{
    struct sl_wl *w = so->w;
    const char *out, *at;
    size_t len, n;

    out = sop_out(so, &len);
    sl_section(out, len, "@@job", &at, &n);
    if (!sl_parse_scontrol_job(at, n, &w->ji) && sl_section(out, len, "@@acct", &at, &n))
        sl_parse_sacct(at, n, &w->ji);
    sl_section(out, len, "@@status", &at, &n);
    sl_parse_agent_status(at, n, so->wl_id, &w->as);
}

static void job_state(struct sop *so, int status)
{
    struct sl_wl *w = so->w;

    if (!sop_reply_ok(so, status, "scontrol show job"))
        return;
    read_job(so);
    if (w->ji.found && !sl_jstate_ended(w->ji.st))
        w->reused = false; /* an earlier call's job, not ended: ours from now on */
    if (!w->ji.found)
        vanished(so);
    else if (sl_jstate_ended(w->ji.st))
        ended(so);
    else if (w->ji.st == SJ_PENDING)
        pending(so);
    else if (!(w->service && w->ji.st == SJ_RUNNING && service_moves(so)))
        sop_wait_poll(so, poll_job);
}

static void poll_job(struct sop *so, int status)
{
    struct rmt_cmd c;

    (void)status;
    sl_cmd_begin(so->s, &c);
    rmt_cmd_raw(&c, " echo @@job; scontrol show job -o");
    rmt_cmd_word(&c, so->w->jobid);
    rmt_cmd_raw(&c, " 2>/dev/null || { echo @@acct; sacct -n -P -X -o JobID,State,ExitCode -j");
    rmt_cmd_word(&c, so->w->jobid);
    rmt_cmd_raw(&c, " 2>/dev/null; }; echo @@status; cat");
    wl_path(so, &c, ".status.json");
    rmt_cmd_raw(&c, " 2>/dev/null; echo; true");
    sop_run_or_fail(so, &c, NULL, 0, job_state);
}

/* ---- the first step: env file, marker, earlier job ------------------------------------------ */

static void prepared(struct sop *so, int status)
{
    struct slurm *s = so->s;
    struct sl_wl *w = so->w;
    const char *out, *at;
    size_t len, n;
    char id[SL_JOBID_LEN], kind[16];

    if (!sop_reply_ok(so, status, "writing the env file"))
        return;
    out = sop_out(so, &len);
    if (!sl_section(out, len, "@@marker", &at, &n)) {
        sop_failf(so, ORC_ENOTFOUND, "slurm site %s: no node %s here", s->host->site, so->name);
        return;
    }
    if (sl_node_parse(at, n, &so->node) < 0) {
        sop_failf(so, ORC_ECONFLICT,
                  "slurm site %s: node %s has no marker (its provision did "
                  "not finish)",
                  s->host->site, so->name);
        return;
    }
    sl_section(out, len, "@@job", &at, &n);
    if (n > 0 && n < 64 && sscanf(at, "%23s %15s", id, kind) == 2 &&
        strcmp(kind, w->service ? "service" : "job") == 0 &&
        sl_parse_sbatch(id, strlen(id), w->jobid) == 0) {
        w->reused = true; /* submitted before (a re-drive): follow it while it is not ended */
        w->since_ms = sl_mono_ms();
        poll_job(so, 0);
        return;
    }
    submit(so);
}

static int prepare(struct sop *so)
{
    struct slurm *s = so->s;
    struct sl_wl *w = so->w;
    struct rmt_cmd c;
    char *env = w->envfile;

    w->envfile = NULL; /* the request owns it now */
    sl_cmd_begin(s, &c);
    sl_cmd_cd(s, &c, so->name);
    rmt_cmd_raw(&c, " 2>/dev/null || exit 0; cat >");
    wl_file(so, &c, ".env.tmp");
    rmt_cmd_raw(&c, " && mv -f");
    wl_file(so, &c, ".env.tmp");
    wl_file(so, &c, ".env");
    rmt_cmd_raw(&c, " || exit 1; echo @@marker; cat node.json 2>/dev/null; echo; echo @@job; cat");
    wl_file(so, &c, ".jobid");
    rmt_cmd_raw(&c, " 2>/dev/null; true");
    return sop_run_cmd(so, &c, env, strlen(env), prepared);
}

/* ---- the slots ------------------------------------------------------------------------------ */

static bool path_ok(const char *p)
{
    if (p[0] != '/')
        return false;
    for (; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

static int wl_check(struct slurm *s, orc_op_t *op, const struct orc_exec_req *req, const char *wl)
{
    if (!sl_name_ok(req->name))
        return orc_op_failf(op, ORC_EINVAL, "slurm site %s: bad resource name '%s'", s->host->site,
                            req->name ? req->name : "(null)");
    if (!sl_wl_ok(wl))
        return orc_op_failf(op, ORC_EINVAL,
                            "slurm site %s: workload id '%s' is not 1-63 of [A-Za-z0-9_.-]",
                            s->host->site, wl);
    if (req->argv == NULL || req->argv[0] == NULL)
        return orc_op_failf(op, ORC_EINVAL, "slurm site %s: nothing to run (empty argv)",
                            s->host->site);
    if (req->ngpus > 0)
        return orc_op_failf(op, ORC_ENOTSUP,
                            "slurm site %s: GPU pinning is Slurm's (the job gets the GPUs of its "
                            "gres)",
                            s->host->site);
    if (req->workdir != NULL && !sl_relpath_ok(req->workdir))
        return orc_op_failf(op, ORC_EINVAL,
                            "slurm site %s: workdir '%s' is not a relative path "
                            "inside the node",
                            s->host->site, req->workdir);
    if (req->ready_path != NULL && !path_ok(req->ready_path))
        return orc_op_failf(op, ORC_EINVAL,
                            "slurm site %s: ready_path '%s' is not /PATH without "
                            "spaces",
                            s->host->site, req->ready_path);
    return 0;
}

static int wl_copy(struct slurm *s, orc_op_t *op, struct sl_wl *w, const struct orc_exec_req *req)
{
    char err[160];
    int rc;

    w->port = req->port;
    w->argv = strv_dup(s->host, req->argv);
    w->workdir = req->workdir ? sl_strdup(s->host, req->workdir) : NULL;
    w->ready_path = req->ready_path ? sl_strdup(s->host, req->ready_path) : NULL;
    if (w->argv == NULL || (req->workdir && !w->workdir) || (req->ready_path && !w->ready_path))
        return ORC_ENOMEM;
    rc = sl_envfile_build(s->host, req->env, req->nenv, &w->envfile, err, sizeof(err));
    if (rc == ORC_EINVAL)
        return orc_op_failf(op, rc, "slurm site %s: %s", s->host->site, err);
    w->time_min = op->timeout_ms ? (op->timeout_ms + 59999) / 60000 : s->c.time_limit_min;
    return rc;
}

static int wl_begin(void *state, orc_op_t *op, const struct orc_exec_req *req, bool service)
{
    struct slurm *s = state;
    const char *wl = req->workload ? req->workload : "main";
    struct sop *so;
    int rc = sl_ready(s, op);

    if (rc == 0)
        rc = wl_check(s, op, req, wl);
    if (rc < 0)
        return rc;
    so = sop_new(s, op, service ? SOP_START : SOP_EXEC);
    if (so == NULL)
        return ORC_ENOMEM;
    snprintf(so->name, sizeof(so->name), "%s", req->name);
    snprintf(so->wl_id, sizeof(so->wl_id), "%s", wl);
    so->w = s->host->calloc(1, sizeof(*so->w));
    rc = so->w ? 0 : ORC_ENOMEM;
    if (rc == 0) {
        so->w->service = service;
        rc = wl_copy(s, op, so->w, req);
    }
    if (rc == 0)
        rc = prepare(so);
    if (rc < 0)
        sop_drop(so);
    return rc;
}

/* ---- stop_workload ----------------------------------------------------------------------- */

static void stop_poll(struct sop *so, int status);

static void stop_reply(struct sop *so, int status)
{
    struct slurm *s = so->s;
    const char *out;
    size_t len;

    if (!sop_reply_ok(so, status, "squeue"))
        return;
    out = sop_out(so, &len);
    if (!sl_squeue_job_active(out, len, so->w->jobid)) {
        so->op->exists = so->existed;
        sop_complete(so, 0);
    } else if ((uint64_t)(sl_mono_ms() - so->t0_ms) > s->c.cancel_timeout_ms) {
        sop_failf(so, ORC_EDRIVER,
                  "slurm site %s: job %s of %s/%s still in squeue %" PRIu64 " ms after scancel",
                  s->host->site, so->w->jobid, so->name, so->wl_id, s->c.cancel_timeout_ms);
    } else {
        sop_wait_poll(so, stop_poll);
    }
}

/* scancel (the first time only), then the job's state */
static void stop_poll(struct sop *so, int status)
{
    struct rmt_cmd c;

    (void)status;
    sl_cmd_begin(so->s, &c);
    rmt_cmd_raw(&c, " squeue -h -t all -o '%i|%T' -j");
    rmt_cmd_word(&c, so->w->jobid);
    rmt_cmd_raw(&c, " 2>/dev/null; true");
    sop_run_or_fail(so, &c, NULL, 0, stop_reply);
}

static void stop_first(struct sop *so, int status)
{
    const char *out;
    size_t len;

    if (!sop_reply_ok(so, status, "scancel"))
        return;
    out = sop_out(so, &len);
    so->existed = sl_squeue_job_active(out, len, so->w->jobid);
    so->t0_ms = sl_mono_ms();
    stop_poll(so, 0);
}

static void stop_found(struct sop *so, int status)
{
    const char *out, *at;
    size_t len, n;
    char id[SL_JOBID_LEN], kind[16];
    struct rmt_cmd c;

    if (!sop_reply_ok(so, status, "reading the job id"))
        return;
    out = sop_out(so, &len);
    if (!sl_section(out, len, "@@job", &at, &n)) {
        sop_failf(so, ORC_ENOTFOUND, "slurm site %s: no node %s here", so->s->host->site, so->name);
        return;
    }
    if (n == 0 || n >= 64 || sscanf(at, "%23s %15s", id, kind) != 2 ||
        sl_parse_sbatch(id, strlen(id), so->w->jobid) < 0) {
        so->op->exists = false; /* never started: nothing runs */
        sop_complete(so, 0);
        return;
    }
    sl_cmd_begin(so->s, &c);
    rmt_cmd_raw(&c, " squeue -h -t all -o '%i|%T' -j");
    rmt_cmd_word(&c, so->w->jobid);
    rmt_cmd_raw(&c, " 2>/dev/null; scancel");
    rmt_cmd_word(&c, so->w->jobid);
    rmt_cmd_raw(&c, " 2>/dev/null; true");
    sop_run_or_fail(so, &c, NULL, 0, stop_first);
}

int sl_stop_workload(void *state, orc_op_t *op, const char *name, const char *workload)
{
    struct slurm *s = state;
    const char *wl = workload ? workload : "main";
    struct sop *so;
    struct rmt_cmd c;
    int rc = sop_begin_wl(s, op, SOP_STOP_WL, name, wl, &so);

    if (rc < 0)
        return rc;
    so->w = s->host->calloc(1, sizeof(*so->w));
    if (so->w == NULL) {
        sop_drop(so);
        return ORC_ENOMEM;
    }
    sl_cmd_begin(s, &c);
    sl_cmd_cd(s, &c, name);
    rmt_cmd_raw(&c, " 2>/dev/null || exit 0; echo @@job; cat");
    wl_file(so, &c, ".jobid");
    rmt_cmd_raw(&c, " 2>/dev/null; true");
    return sop_start_cmd(so, &c, stop_found);
}

int sl_exec(void *state, orc_op_t *op, const struct orc_exec_req *req)
{
    return wl_begin(state, op, req, false);
}

int sl_start_workload(void *state, orc_op_t *op, const struct orc_exec_req *req)
{
    return wl_begin(state, op, req, true);
}
