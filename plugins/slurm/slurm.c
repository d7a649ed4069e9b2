/*
 * slurm: an HPC site reached only by SSH to its login node
 * (docs/slurm-site.md). This file: the vtable, site open (config, the
 * runtime found locally, the work directory made and resolved on the
 * cluster, the Slurm commands checked) and close, the operations in flight
 * (each waits on one thing at a time: an SSH request, a runtime install or
 * a host timer, so that cancel and close end exactly that), cancel, and
 * small helpers. Every operation answers from a callback, never inside its
 * slot call. The node and job work is in slurm_node.c and slurm_job.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "slurm.h"

/* ---- helpers ------------------------------------------------------------------------ */

int64_t sl_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sl_mono_ms(void)
{
    return (int64_t)(uv_hrtime() / 1000000);
}

int sl_ready(struct slurm *s, orc_op_t *op)
{
    if (s->closing)
        return orc_op_failf(op, ORC_ECONFLICT, "slurm site %s: closing", s->host->site);
    if (!s->opened)
        return orc_op_failf(op, ORC_ECONFLICT, "slurm site %s: not open", s->host->site);
    return 0;
}

char *sl_strdup(const struct orc_host_api *host, const char *str)
{
    size_t n = strlen(str) + 1;
    char *d = host->malloc(n);

    if (d != NULL)
        memcpy(d, str, n);
    return d;
}

char *sl_printf(const struct orc_host_api *host, const char *fmt, ...)
{
    va_list ap;
    int n;
    char *out;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    out = host->malloc((size_t)n + 1);
    if (out == NULL)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return out;
}

/* [A-Za-z0-9_.-], 1-63 characters, not starting with '.' or '-' */
static bool word_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > SL_NAME_MAX || s[0] == '.' || s[0] == '-')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '-'))
            return false;
    return true;
}

bool sl_name_ok(const char *name)
{
    return word_ok(name);
}

bool sl_wl_ok(const char *id)
{
    return word_ok(id);
}

char *sl_path(struct slurm *s, const char *name, const char *leaf)
{
    return leaf ? sl_printf(s->host, "%s/%s/%s", s->work, name, leaf)
                : sl_printf(s->host, "%s/%s", s->work, name);
}

/* ---- operations in flight ------------------------------------------------------------ */

struct sop *sop_new(struct slurm *s, orc_op_t *op, enum sop_kind kind)
{
    struct sop *so = s->host->calloc(1, sizeof(*so));

    if (so == NULL)
        return NULL;
    so->s = s;
    so->op = op;
    so->kind = kind;
    so->next = s->ops;
    if (s->ops)
        s->ops->prev = so;
    s->ops = so;
    op->drv = so;
    return so;
}

int sop_begin_wl(struct slurm *s, orc_op_t *op, enum sop_kind kind, const char *name,
                 const char *wl, struct sop **out)
{
    int rc = sl_ready(s, op);

    *out = NULL;
    if (rc < 0)
        return rc;
    if (!sl_name_ok(name) || !sl_wl_ok(wl))
        return orc_op_failf(op, ORC_EINVAL, "slurm site %s: bad resource name or workload id",
                            s->host->site);
    *out = sop_new(s, op, kind);
    if (*out == NULL)
        return ORC_ENOMEM;
    snprintf((*out)->name, sizeof((*out)->name), "%s", name);
    snprintf((*out)->wl_id, sizeof((*out)->wl_id), "%s", wl);
    return 0;
}

static void sop_free(struct sop *so)
{
    struct slurm *s = so->s;

    if (so->timer != 0)
        s->host->timer_stop(s->host, so->timer);
    if (so->req_out)
        s->host->ssh->release(s->host, &so->req);
    s->host->free(so->cmd);
    s->host->free(so->input);
    sl_wl_free(s, so->w);
    if (so->prev)
        so->prev->next = so->next;
    else
        s->ops = so->next;
    if (so->next)
        so->next->prev = so->prev;
    so->op->drv = NULL;
    s->host->free(so);
}

void sop_drop(struct sop *so)
{
    sop_free(so);
}

/* Everything the open made (site_close, or a failed open). */
static void site_release(struct slurm *s)
{
    if (s->rt_found)
        rmt_runtime_free(s->host, &s->rt);
    s->rt_found = false;
    s->host->free(s->work);
    s->host->free(s->rt_dir);
    s->work = s->rt_dir = NULL;
    sl_conf_free(s->host, &s->c);
}

static void close_check(struct slurm *s)
{
    struct sop *so = s->close_so;

    if (so == NULL || so->deferring || s->ops != so || so->next != NULL)
        return;
    sop_complete(so, 0);
}

void sop_complete(struct sop *so, int status)
{
    struct slurm *s = so->s;
    orc_op_t *op = so->op;
    bool check = s->closing && so->kind != SOP_CLOSE;

    if (status == ORC_ECANCELED && op->error[0] == '\0')
        snprintf(op->error, sizeof(op->error), "slurm site %s: canceled", s->host->site);
    if (so->kind == SOP_CLOSE || (so->kind == SOP_OPEN && status < 0)) {
        s->close_so = NULL;
        sop_free(so);
        site_release(s);
        orc_op_done(op, status); /* the core may free s now */
        return;
    }
    sop_free(so);
    orc_op_done(op, status);
    if (check)
        close_check(s); /* last: it may complete the close */
}

static void sop_fire(void *arg)
{
    struct sop *so = arg;

    so->timer = 0;
    so->deferring = false;
    sop_complete(so, so->status);
}

int sop_defer(struct sop *so, int status)
{
    so->status = status;
    so->deferring = true;
    so->timer = so->s->host->timer_start(so->s->host, 0, sop_fire, so);
    return so->timer != 0 ? 0 : ORC_ENOMEM;
}

void sop_failf(struct sop *so, int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(so->op->error, sizeof(so->op->error), fmt, ap);
    va_end(ap);
    sop_complete(so, code);
}

void sop_oom(struct sop *so)
{
    sop_failf(so, ORC_ENOMEM, "slurm site %s: out of memory", so->s->host->site);
}

/* Ends whatever so waits on: it completes with ORC_ECANCELED, later. */
static void sop_cancel(struct sop *so, const char *why)
{
    struct slurm *s = so->s;

    if (so->canceled || so->deferring)
        return; /* completing already, with its own status */
    so->canceled = true;
    snprintf(so->op->error, sizeof(so->op->error), "slurm site %s: %s", s->host->site, why);
    if (so->req_busy) {
        s->host->ssh->cancel(s->host, &so->req); /* its callback completes so */
    } else if (so->inst != NULL) {
        rmt_install_cancel(so->inst); /* likewise */
    } else {
        if (so->timer != 0)
            s->host->timer_stop(s->host, so->timer);
        so->timer = 0;
        if (sop_defer(so, ORC_ECANCELED) < 0)
            s->host->log(s->host, ORC_DRV_LOG_ERROR, "slurm: cannot arm a timer to cancel an op");
    }
}

static int sl_cancel(void *state, orc_op_t *target)
{
    struct slurm *s = state;
    struct sop *so = target->drv;

    for (struct sop *o = s->ops; o != NULL; o = o->next)
        if (o == so && o->op == target && o->kind != SOP_CLOSE && o->kind != SOP_OPEN) {
            sop_cancel(o, "canceled");
            return 0;
        }
    return ORC_ENOTFOUND;
}

/* ---- site open ------------------------------------------------------------------------- */

/* "missing sbatch" lines of the open check, as "sbatch, squeue". */
static void missing_cmds(const char *out, size_t len, char *buf, size_t buflen)
{
    size_t k = 0;

    buf[0] = '\0';
    for (const char *p = out; p < out + len;) {
        const char *nl = memchr(p, '\n', (size_t)(out + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(out + len - p);
        if (n > 8 && strncmp(p, "missing ", 8) == 0 && k + n < buflen)
            k +=
                (size_t)snprintf(buf + k, buflen - k, "%s%.*s", k ? ", " : "", (int)(n - 8), p + 8);
        p += n + 1;
    }
}

static void open_reply(struct sop *so, int status)
{
    struct slurm *s = so->s;
    const char *pwd, *out;
    size_t n, len;
    char missing[160];

    if (!sop_reply_ok(so, status, "opening the site"))
        return;
    out = sop_out(so, &len);
    if (!sl_section(out, len, "@@work", &pwd, &n) || n < 2 || pwd[0] != '/' ||
        n > SL_PATH_LEN - 200) {
        sop_failf(so, ORC_EDRIVER, "slurm site %s: cannot resolve work_dir '%s' on %s",
                  s->host->site, s->c.work_dir, s->c.address);
        return;
    }
    missing_cmds(out, len, missing, sizeof(missing));
    if (missing[0] != '\0') {
        sop_failf(so, ORC_EDRIVER,
                  "slurm site %s: %s not found on the login node %s (is Slurm's bin on PATH? "
                  "the site's env can set PATH)",
                  s->host->site, missing, s->c.address);
        return;
    }
    s->work = sl_printf(s->host, "%.*s", (int)(n - 1), pwd);
    s->rt_dir = s->work ? rmt_runtime_dir(s->host, &s->rt, s->work) : NULL;
    if (s->rt_dir == NULL) {
        sop_oom(so);
        return;
    }
    s->opened = true;
    s->host->log(s->host, ORC_DRV_LOG_INFO, "slurm: login %s@%s, work directory %s", s->c.user,
                 s->c.address, s->work);
    sop_complete(so, 0);
}

static int open_check(struct slurm *s, struct sop *so)
{
    struct rmt_cmd c;

    sl_cmd_begin(s, &c);
    rmt_cmd_raw(&c, " mkdir -p");
    rmt_cmd_word(&c, s->c.work_dir);
    rmt_cmd_raw(&c, " && cd");
    rmt_cmd_word(&c, s->c.work_dir);
    rmt_cmd_raw(&c, " && echo @@work && pwd -P && echo @@cmds && for c in sbatch squeue scontrol "
                    "scancel sinfo srun; do command -v \"$c\" >/dev/null 2>&1 || echo \"missing "
                    "$c\"; done");
    return sop_run_cmd(so, &c, NULL, 0, open_reply);
}

static int open_conf(struct slurm *s, orc_op_t *op)
{
    const struct orc_host_api *host = s->host;
    int rc = sl_conf_parse(host, s->conf->config_json, &s->c, op->error, sizeof(op->error));

    if (rc < 0)
        return rc;
    if (s->conf->credentials != NULL &&
        host->secret_get(host, s->conf->credentials, &s->c.passphrase) < 0) {
        sl_conf_free(host, &s->c);
        return orc_op_failf(op, ORC_EDENIED,
                            "slurm site %s: credentials: no secret named '%s' (the passphrase "
                            "of login.identity)",
                            s->conf->name, s->conf->credentials);
    }
    rc = rmt_runtime_find(host, s->c.runtime_dir, &s->rt, op->error, sizeof(op->error));
    if (rc < 0) {
        sl_conf_free(host, &s->c);
        return rc;
    }
    s->rt_found = true;
    sl_conf_target(&s->c, &s->target);
    return 0;
}

static int sl_site_open(void *state, const struct orc_host_api *host,
                        const struct orc_site_conf *conf, orc_op_t *op)
{
    struct slurm *s = state;
    struct sop *so;
    int rc;

    s->host = host;
    s->conf = conf;
    if (host->version < 2 || host->size < sizeof(struct orc_host_api) || host->ssh == NULL)
        return orc_op_failf(op, ORC_ENOTSUP,
                            "slurm site %s: this daemon has no SSH client for drivers "
                            "(host->ssh is NULL)",
                            conf->name);
    rc = open_conf(s, op);
    if (rc < 0)
        return rc;
    so = sop_new(s, op, SOP_OPEN);
    rc = so ? open_check(s, so) : ORC_ENOMEM;
    if (rc < 0) {
        if (so)
            sop_drop(so);
        site_release(s);
    }
    return rc;
}

/* ---- site close ---------------------------------------------------------------------- */

static int sl_site_close(void *state, orc_op_t *op)
{
    struct slurm *s = state;
    struct sop *so, *o, *next;

    if (s->closing)
        return orc_op_failf(op, ORC_ECONFLICT, "slurm site %s: already closing", s->host->site);
    so = sop_new(s, op, SOP_CLOSE);
    if (so == NULL)
        return ORC_ENOMEM;
    s->closing = true;
    s->close_so = so;
    for (o = s->ops; o != NULL; o = next) {
        next = o->next;
        if (o != so)
            sop_cancel(o, "site closing");
    }
    if (s->ops == so && so->next == NULL && sop_defer(so, 0) < 0) {
        s->closing = false;
        s->close_so = NULL;
        sop_drop(so);
        return ORC_ENOMEM;
    }
    return 0;
}

/* ---- the vtable ---------------------------------------------------------------------- */

static const struct orc_driver slurm_driver = {
    ORC_DRIVER_HEADER,
    .name = "slurm",
    .version = "0.1",
    .caps = ORC_DRV_CAP_COMPUTE | ORC_DRV_CAP_SERVICE | ORC_DRV_CAP_JOB | ORC_DRV_CAP_GPU |
            ORC_DRV_CAP_ADOPT | ORC_DRV_CAP_MULTI_NODE,
    .state_size = sizeof(struct slurm),
    .site_open = sl_site_open,
    .site_close = sl_site_close,
    .inventory = sl_inventory,
    .provision = sl_provision,
    .deprovision = sl_deprovision,
    .status = sl_status,
    .adopt = sl_adopt,
    .start_workload = sl_start_workload,
    .exec = sl_exec,
    .logs = sl_logs,
    .cancel = sl_cancel,
    .stop_workload = sl_stop_workload,
};

ORC_DRIVER_EXPORT const struct orc_driver *orc_driver_entry(void);
ORC_DRIVER_EXPORT const struct orc_driver *orc_driver_entry(void)
{
    return &slurm_driver;
}
