/*
 * Workloads on ssh nodes (ssh.h): start_workload (a service) and exec (a
 * job) both start `gpu-agent run` detached on the node's host, once per
 * (node, workload): its environment goes into WL.env (mode 0600, values
 * quoted), its pid into WL.pid. start_workload then waits, through the
 * host's shared status poll, until the agent says the service is ready (or
 * running, without a port); exec waits until the job exited and answers
 * its exit status and the tail of its log. stop_workload signals the agent
 * (it stops its processes within its grace) and waits for its end; logs
 * reads WL.log with one remote command.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ssh.h"

#define SH_EXEC_TAIL 65536u

static const char start_script[] =
    "cd \"$D\" || exit 1; "
    "if [ -f \"$W.pid\" ] && kill -0 \"$(cat \"$W.pid\")\" 2>/dev/null; then echo running; exit 0; "
    "fi; "
    "if [ -f \"$W.status.json\" ] && [ -n \"$KEEP\" ]; then echo ended; exit 0; fi; "
    "umask 077; printf '%s' \"$E\" > \"$W.env\" || exit 1; rm -f \"$W.status.json\"; "
    "[ -z \"$WD\" ] || mkdir -p \"$WD\" || exit 1; "
    "( . \"./$W.env\"; PATH=\"$RT:$PATH\"; ORC_NODE_DIR=\"$D\"; export PATH ORC_NODE_DIR; "
    "exec setsid \"$RT/gpu-agent\" \"$@\" </dev/null >>\"$W.agent.log\" 2>&1 ) & "
    "echo $! > \"$W.pid\"; echo started";

static const char stop_script[] =
    "cd \"$D\" 2>/dev/null || { echo absent; exit 0; }; "
    "[ -f \"$W.pid\" ] || { echo absent; exit 0; }; p=$(cat \"$W.pid\"); "
    "kill -0 \"$p\" 2>/dev/null || { rm -f \"$W.pid\"; echo absent; exit 0; }; "
    "kill -TERM \"$p\"; i=0; while kill -0 \"$p\" 2>/dev/null && [ $i -lt \"$T\" ]; do "
    "sleep 0.1; i=$((i+1)); done; kill -KILL \"$p\" 2>/dev/null; rm -f \"$W.pid\"; echo stopped";

static const char logs_script[] =
    "f=\"$D/$W.log\"; s=$(stat -c %s \"$f\" 2>/dev/null || echo 0); o=$O; "
    "if [ \"$o\" = tail ]; then o=$((s > M ? s - M : 0)); fi; "
    "if [ \"$o\" -gt \"$s\" ]; then o=$s; fi; echo \"$s $o\"; "
    "[ \"$s\" -gt 0 ] && tail -c +$((o + 1)) \"$f\" 2>/dev/null | head -c \"$M\"; true";

static bool wl_id_ok(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > SH_NAME_MAX)
        return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return false;
    return id[0] != '.';
}

static bool relpath_ok(const char *p)
{
    if (p[0] == '/' || p[0] == '\0')
        return false;
    for (const char *s = p; *s; s = strchr(s, '/') ? strchr(s, '/') + 1 : s + strlen(s))
        if (strncmp(s, "..", 2) == 0 && (s[2] == '/' || s[2] == '\0'))
            return false;
    return true;
}

/* The node and workload of a request; < 0 with op->error. */
static int find_target(struct sh *s, orc_op_t *op, const char *name, const char *workload,
                       struct sh_node **out, const char **wl)
{
    struct sh_node *n;

    *wl = workload ? workload : "main";
    if (!wl_id_ok(*wl))
        return orc_op_failf(op, ORC_EINVAL,
                            "ssh: bad workload id '%.64s' (expected [A-Za-z0-9._-], 1-63)", *wl);
    if (s->closing)
        return orc_op_failf(op, ORC_ECONFLICT, "ssh: the site is closing");
    n = name ? sh_node_find(s, name) : NULL;
    if (n == NULL)
        return orc_op_failf(op, ORC_ENOTFOUND, "ssh: no node named '%.80s'",
                            name ? name : "(null)");
    if (n->deleting || n->failed)
        return orc_op_failf(op, ORC_ECONFLICT, "ssh: node %s is %s", n->name,
                            n->deleting ? "being deleted" : "failed");
    *out = n;
    return 0;
}

/* ---- the start command ---------------------------------------------------------------------- */

/* "export K='V'\n" lines: the request's environment. */
static int env_file(struct sh *s, orc_op_t *op, const struct orc_exec_req *req, struct rmt_cmd *e)
{
    rmt_cmd_init(e, s->host);
    for (size_t i = 0; i < req->nenv; i++) {
        if (!rmt_env_name_ok(req->env[i].key))
            return orc_op_failf(op, ORC_EINVAL, "ssh: environment: '%.64s' is not a variable name",
                                req->env[i].key ? req->env[i].key : "(null)");
        rmt_cmd_raw(e, "export ");
        rmt_cmd_raw(e, req->env[i].key);
        rmt_cmd_raw(e, "=");
        rmt_cmd_quoted(e, req->env[i].value ? req->env[i].value : "");
        rmt_cmd_raw(e, "\n");
    }
    rmt_cmd_raw(e, "");
    return e->rc;
}

static void arg(struct rmt_cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void arg(struct rmt_cmd *c, const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    rmt_cmd_word(c, buf);
}

/* "set -- run --name W ... -- ARGV; " : the agent's arguments as quoted words. */
static void agent_args(struct sh *s, struct sh_node *n, const char *wl, bool service,
                       const struct orc_exec_req *req, const char *workdir, struct rmt_cmd *c)
{
    char gpus[SH_MAX_GPUS * 4 + 8] = "";
    size_t len = 0;
    const uint32_t *g = req->gpus ? req->gpus : n->gpus;
    size_t ng = req->gpus ? req->ngpus : n->ngpus;

    for (size_t i = 0; i < ng && len < sizeof(gpus) - 8; i++)
        len += (size_t)snprintf(gpus + len, sizeof(gpus) - len, "%s%u", i ? "," : "", g[i]);
    rmt_cmd_raw(c, "set --");
    rmt_cmd_word(c, "run");
    rmt_cmd_word(c, "--name");
    rmt_cmd_word(c, wl);
    rmt_cmd_word(c, "--kind");
    rmt_cmd_word(c, service ? "service" : "job");
    rmt_cmd_word(c, "--gpus");
    rmt_cmd_word(c, ng ? gpus : "none");
    rmt_cmd_word(c, "--check");
    rmt_cmd_word(c, s->agent_check ? s->agent_check : "quick");
    rmt_cmd_word(c, "--log-dir");
    rmt_cmd_word(c, n->dir);
    arg(c, "--status-file=%s/%s.status.json", n->dir, wl);
    arg(c, "--stop-grace-ms=%u", s->stop_timeout_ms * 3 / 4);
    if (workdir)
        arg(c, "--workdir=%s", workdir);
    if (service) {
        arg(c, "--ready-timeout-ms=%u", s->ready_timeout_ms);
        if (req->port && req->ready_path)
            arg(c, "--ready-http=%u:%s", req->port, req->ready_path);
        else if (req->port)
            arg(c, "--ready-tcp=%u", req->port);
    }
    rmt_cmd_word(c, "--");
    for (size_t i = 0; req->argv[i]; i++)
        rmt_cmd_word(c, req->argv[i]);
    rmt_cmd_raw(c, "; ");
}

static int start_cmd(struct sop *o, const struct orc_exec_req *req, sop_cb cb)
{
    struct sh *s = o->s;
    struct sh_node *n = o->node;
    struct sh_host *h = &s->hosts[n->host];
    struct rmt_cmd c, e;
    const char *text, *envtext = "";
    char *workdir = NULL;
    int rc;

    if (req->workdir && !relpath_ok(req->workdir))
        return orc_op_failf(o->op, ORC_EINVAL, "ssh: workdir '%.80s' must be relative to the node",
                            req->workdir);
    if (req->workdir && (workdir = sh_printf(s, "%s/%s", n->dir, req->workdir)) == NULL)
        return ORC_ENOMEM;
    rc = env_file(s, o->op, req, &e);
    if (rc == 0)
        rc = rmt_cmd_done(&e, &envtext);
    rmt_cmd_init(&c, s->host);
    if (rc == 0) {
        rmt_cmd_var(&c, "D", n->dir);
        rmt_cmd_var(&c, "W", o->wl);
        rmt_cmd_var(&c, "RT", h->rt_dir ? h->rt_dir : "");
        rmt_cmd_var(&c, "E", envtext);
        rmt_cmd_var(&c, "WD", workdir ? workdir : "");
        rmt_cmd_var(&c, "KEEP", o->service ? "" : "1");
        agent_args(s, n, o->wl, o->service, req, workdir, &c);
        rmt_cmd_raw(&c, start_script);
        rc = rmt_cmd_done(&c, &text);
    }
    if (rc == 0)
        rc = sop_run(o, h, NULL, text, NULL, cb);
    else if (o->op->error[0] == '\0')
        orc_op_failf(o->op, rc, "ssh: the start command is too long or out of memory");
    rmt_cmd_free(&c);
    rmt_cmd_free(&e);
    s->host->free(workdir);
    return rc;
}

/* ---- waiting for the agent ----------------------------------------------------------------------
 */

/* The workload's entry of the status file ({"workloads": [...]}), rank 0. */
static json_t *wl_entry(json_t *st, const char *wl)
{
    json_t *all = json_object_get(st, "workloads"), *w;
    size_t i;

    json_array_foreach(all, i, w)
    {
        const char *name = json_string_value(json_object_get(w, "name"));
        if (name && strcmp(name, wl) == 0 && json_integer_value(json_object_get(w, "rank")) == 0)
            return w;
    }
    return json_array_get(all, 0);
}

static const char *wl_state(struct sop *o, json_t **entry)
{
    json_t *w = o->poll_json ? wl_entry(o->poll_json, o->wl) : NULL;

    if (entry)
        *entry = w;
    return w ? json_string_value(json_object_get(w, "state")) : NULL;
}

static int start_report(struct sop *o, const char *state)
{
    struct sh *s = o->s;
    char url[300];
    int rc = sh_report(s, o->op, o->node);

    if (rc == 0 && o->port) {
        snprintf(url, sizeof(url), "http://%s:%u", s->hosts[o->node->host].address, o->port);
        rc = s->host->op_attr_set(o->op, ORC_ATTR_ENDPOINT, url);
        snprintf(url, sizeof(url), "[%u]", o->port);
        if (rc == 0)
            rc = s->host->op_attr_set(o->op, ORC_ATTR_PORTS, url);
    }
    if (rc == 0 && state)
        rc = s->host->op_attr_set(o->op, "workload_state", state);
    o->op->exit_status = -1;
    return rc;
}

static void on_service_poll(struct sop *o, int status);

static void service_wait(struct sop *o)
{
    int rc = sh_poll_join(o, on_service_poll);

    if (rc < 0)
        sop_done(o, rc);
}

static void on_service_poll(struct sop *o, int status)
{
    const char *st;

    if (status < 0 || o->canceled) {
        sop_done(o, o->canceled ? ORC_ECANCELED : status);
        return;
    }
    st = wl_state(o, NULL);
    if (st && (strcmp(st, "ready") == 0 || (o->port == 0 && strcmp(st, "running") == 0))) {
        sop_done(o, start_report(o, st));
        return;
    }
    if ((st && (strcmp(st, "unready") == 0 || strcmp(st, "failed") == 0)) ||
        (!o->poll_alive && st && strcmp(st, "starting") != 0) ||
        (!o->poll_alive && sh_now_ms() > o->deadline_ms - (int64_t)o->s->ready_timeout_ms + 5000)) {
        snprintf(o->op->error, sizeof(o->op->error),
                 "ssh: %s on %s: the service is %s (see its log %s/%s.log)", o->wl, o->node->name,
                 st ? st : (o->poll_alive ? "starting" : "not running: gpu-agent ended"),
                 o->node->dir, o->wl);
        sop_done(o, ORC_EDRIVER);
        return;
    }
    if (sh_now_ms() > o->deadline_ms) {
        snprintf(o->op->error, sizeof(o->op->error), "ssh: %s on %s: not ready within %u ms", o->wl,
                 o->node->name, o->s->ready_timeout_ms);
        sop_done(o, ORC_EDRIVER);
        return;
    }
    service_wait(o);
}

static void on_logs_for_exec(struct sop *o, int status);

static void job_end(struct sop *o, json_t *w)
{
    json_t *ex = json_object_get(w, "exit_status"), *sig = json_object_get(w, "signal");
    char off[24], max[24];
    const char *vars[] = {"D", o->node->dir, "W", o->wl, "O", "tail", "M", max, NULL};
    int rc;

    o->op->exit_status = (int32_t)json_integer_value(ex);
    if (json_integer_value(sig) > 0)
        o->op->exit_status = 128 + (int32_t)json_integer_value(sig);
    (void)off;
    snprintf(max, sizeof(max), "%u", SH_EXEC_TAIL);
    rc = sop_run(o, &o->s->hosts[o->node->host], vars, logs_script, NULL, on_logs_for_exec);
    if (rc < 0)
        sop_done(o, rc);
}

static void on_job_poll(struct sop *o, int status);

static void job_wait(struct sop *o)
{
    int rc = sh_poll_join(o, on_job_poll);

    if (rc < 0)
        sop_done(o, rc);
}

static void on_job_poll(struct sop *o, int status)
{
    json_t *w = NULL;
    const char *st;

    if (status < 0 || o->canceled) {
        sop_done(o, o->canceled ? ORC_ECANCELED : status);
        return;
    }
    st = wl_state(o, &w);
    if (st && strcmp(st, "exited") == 0 && json_is_integer(json_object_get(w, "exit_status"))) {
        job_end(o, w);
        return;
    }
    if (!o->poll_alive && !(st && strcmp(st, "exited") == 0)) {
        /* one more poll: the agent may have ended between its last write and our look */
        if (o->step++ < 2) {
            job_wait(o);
            return;
        }
        snprintf(o->op->error, sizeof(o->op->error),
                 "ssh: job %.40s on %.63s: gpu-agent ended without an exit status (state %.16s; "
                 "see its WL.agent.log)",
                 o->wl, o->node->name, st ? st : "unknown");
        sop_done(o, ORC_EDRIVER);
        return;
    }
    o->step = 0;
    job_wait(o);
}

static void on_logs_for_exec(struct sop *o, int status)
{
    const char *out = o->req.out ? o->req.out : "", *nl = strchr(out, '\n');

    if (status == 0 && nl)
        status = o->s->host->op_output_set(o->op, nl + 1, o->req.out_len - (size_t)(nl + 1 - out));
    else
        status = 0; /* the exit status is what matters; the output is a courtesy */
    sop_done(o, status);
}

static void on_started(struct sop *o, int status)
{
    const char *out = o->req.out ? o->req.out : "";

    if (status == 0 && o->req.exit_status != 0) {
        snprintf(o->op->error, sizeof(o->op->error), "ssh: cannot start %s on %s: %.150s", o->wl,
                 o->node->name, o->req.err && *o->req.err ? o->req.err : out);
        status = ORC_EDRIVER;
    }
    if (status < 0) {
        sop_done(o, status);
        return;
    }
    o->deadline_ms = sh_now_ms() + (int64_t)o->s->ready_timeout_ms + 2000;
    if (o->service)
        service_wait(o);
    else
        job_wait(o);
}

static int start_common(struct sh *s, orc_op_t *op, const struct orc_exec_req *req, bool service)
{
    struct sh_node *n;
    const char *wl;
    struct sop *o;
    int rc = find_target(s, op, req->name, req->workload, &n, &wl);

    if (rc < 0)
        return rc;
    if (req->argv == NULL || req->argv[0] == NULL)
        return orc_op_failf(op, ORC_EINVAL, "ssh: empty argv");
    o = sop_new(s, op, service ? SOP_START : SOP_EXEC);
    if (o == NULL)
        return ORC_ENOMEM;
    o->node = n;
    o->h = &s->hosts[n->host];
    o->service = service;
    o->port = req->port;
    snprintf(o->wl, sizeof(o->wl), "%s", wl);
    if (o->h->install != 2)
        rc = orc_op_failf(op, ORC_ECONFLICT, "ssh: the runtime is not installed on host %s",
                          o->h->name);
    else
        rc = start_cmd(o, req, on_started);
    return sop_started(o, rc);
}

int sh_start_workload(void *state, orc_op_t *op, const struct orc_exec_req *req)
{
    return start_common(state, op, req, true);
}

int sh_exec(void *state, orc_op_t *op, const struct orc_exec_req *req)
{
    return start_common(state, op, req, false);
}

/* ---- stop_workload
 * ---------------------------------------------------------------------------------- */

static void on_stopped(struct sop *o, int status)
{
    if (status == 0)
        o->op->exists = o->req.out && strstr(o->req.out, "stopped") != NULL;
    sop_done(o, status);
}

int sh_stop_workload(void *state, orc_op_t *op, const char *name, const char *workload)
{
    struct sh *s = state;
    struct sh_node *n;
    const char *wl;
    char ticks[16];
    struct sop *o;
    int rc = find_target(s, op, name, workload, &n, &wl);

    if (rc == ORC_ENOTFOUND) { /* unknown: nothing runs */
        op->error[0] = '\0';
        op->exists = false;
        o = sop_new(s, op, SOP_STOP_WL);
        return o ? sop_defer(o, 0) : ORC_ENOMEM;
    }
    if (rc < 0)
        return rc;
    o = sop_new(s, op, SOP_STOP_WL);
    if (o == NULL)
        return ORC_ENOMEM;
    o->node = n;
    snprintf(o->wl, sizeof(o->wl), "%s", wl);
    snprintf(ticks, sizeof(ticks), "%u", s->stop_timeout_ms / 100);
    {
        const char *vars[] = {"D", n->dir, "W", o->wl, "T", ticks, NULL};
        rc = sop_run(o, &s->hosts[n->host], vars, stop_script, NULL, on_stopped);
    }
    return sop_started(o, rc);
}

/* ---- logs
 * --------------------------------------------------------------------------------------------- */

static void on_logs(struct sop *o, int status)
{
    const char *out = o->req.out ? o->req.out : "", *nl = strchr(out, '\n');
    unsigned long long total = 0, off = 0;

    if (status == 0 &&
        (o->req.exit_status != 0 || nl == NULL || sscanf(out, "%llu %llu", &total, &off) != 2)) {
        snprintf(o->op->error, sizeof(o->op->error), "ssh: cannot read the log of %s on %s: %.120s",
                 o->wl, o->node->name, o->req.err ? o->req.err : "");
        status = ORC_EDRIVER;
    }
    if (status == 0) {
        size_t len = o->req.out_len - (size_t)(nl + 1 - out);
        o->op->out_total = total;
        o->op->out_offset = off;
        status = o->s->host->op_output_set(o->op, nl + 1, len);
    }
    sop_done(o, status);
}

int sh_logs(void *state, orc_op_t *op, const struct orc_logs_req *req)
{
    struct sh *s = state;
    struct sh_node *n;
    const char *wl;
    char off[24], max[24];
    struct sop *o;
    uint32_t m = req->max_bytes ? req->max_bytes : 65536;
    int rc = find_target(s, op, req->name, req->workload, &n, &wl);

    if (rc < 0)
        return rc;
    if (m > (1u << 20) - 64)
        m = (1u << 20) - 64;
    o = sop_new(s, op, SOP_LOGS);
    if (o == NULL)
        return ORC_ENOMEM;
    o->node = n;
    snprintf(o->wl, sizeof(o->wl), "%s", wl);
    if (req->offset == ORC_LOGS_TAIL)
        snprintf(off, sizeof(off), "tail");
    else
        snprintf(off, sizeof(off), "%" PRIu64, req->offset);
    snprintf(max, sizeof(max), "%u", m);
    {
        const char *vars[] = {"D", n->dir, "W", o->wl, "O", off, "M", max, NULL};
        rc = sop_run(o, &s->hosts[n->host], vars, logs_script, NULL, on_logs);
    }
    return sop_started(o, rc);
}
